"""Learned detector state kept in the SQL store, so a restart does not forget what is normal."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, String, delete, select
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


async def save_baselines(store: Store, kind: str, rows: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Replace the saved state of `kind` with `rows` of (device_id, district, state)."""
    async with store.session() as s, s.begin():
        await s.execute(delete(Baseline).where(Baseline.kind == kind))
        s.add_all(Baseline(device_id=d, kind=kind, district=district, state=st) for d, district, st in rows)


async def load_baselines(store: Store) -> list[Baseline]:
    async with store.session() as s:
        return list((await s.execute(select(Baseline))).scalars())
