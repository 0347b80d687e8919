"""Learned detector state kept in the SQL store, so a restart does not forget what is normal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, String, delete, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from firewatch.contract.db import Base, Store, now_ms


class Baseline(Base):
    """One row per device: every learned feature's state (see alerting/detect/baseline.py)."""

    __tablename__ = "alerting_baselines"
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    district: Mapped[str] = mapped_column(String(32), default="")
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    saved_ms: Mapped[int] = mapped_column(default=now_ms)


async def save_baselines(store: Store, kind: str, devices: Sequence[str],
                         rows: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Replace the saved state of `devices` of `kind` with `rows` of (device_id, district, state); a
    device without a row has learnt nothing to keep.

    Only the devices named are touched: a worker saves its own (the other workers' rows are
    theirs), and a fleet is saved a share at a time, each in a short transaction of its own.
    SQL Core, not ORM objects: those were half of the 20 s a save of 100,000 devices took.
    """
    async with store.engine.begin() as conn:
        await conn.execute(delete(Baseline).where(Baseline.kind == kind, Baseline.device_id.in_(devices)))
        if rows:
            await conn.execute(insert(Baseline), [{"device_id": d, "kind": kind, "district": district, "state": st}
                                                  for d, district, st in rows])


async def load_baselines(store: Store, districts: Sequence[str] = ()) -> list[Baseline]:
    """Every device's learned state, of `districts` only when given (another worker saves the rest)."""
    q = select(Baseline).where(Baseline.district.in_(districts)) if districts else select(Baseline)
    async with store.session() as s:
        return list((await s.execute(q)).scalars())
