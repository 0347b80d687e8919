"""Duty checks (查岗): who was asked, when, whether the control room answered and how fast.

A check is one row per transmission device asked. The gateway writes them; the api
reads them for the console and the unit's record (GB 50440 duty log). A request
names its scope the way the console offers it: one device, a district, or all.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum

import orjson
from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from firewatch.contract.db import Base, now_ms


class DutyResult(StrEnum):
    PENDING = "pending"
    ANSWERED = "answered"
    MISSED = "missed"
    UNREACHABLE = "unreachable"
    """The device never confirmed the command (3 tries): the check did not reach the control room."""


class DutyCheck(Base):
    __tablename__ = "duty_checks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    district: Mapped[str] = mapped_column(String(32), index=True)
    address: Mapped[str] = mapped_column(String(12))
    requested_by: Mapped[str] = mapped_column(String(128), default="")
    sent_ms: Mapped[int] = mapped_column(index=True, default=now_ms)
    answered_ms: Mapped[int | None] = mapped_column(nullable=True)
    response_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    result: Mapped[str] = mapped_column(String(16), default=DutyResult.PENDING.value, index=True)


@dataclass(frozen=True, slots=True)
class DutyRequest:
    """`device`, `site` or `district` narrows the scope; none means every connected device."""

    request_id: str
    requested_by: str
    device: str | None = None
    district: str | None = None
    site: str | None = None

    def encode(self) -> bytes:
        return orjson.dumps({k: v for k in _REQUEST_FIELDS if (v := getattr(self, k)) is not None})

    @classmethod
    def decode(cls, raw: bytes) -> DutyRequest:
        """Raises ValueError for anything but an object with a string request_id."""
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"duty-check request is not JSON: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("request_id"), str):
            raise ValueError("duty-check request needs a request_id")  # noqa: TRY004 (a bad request, as documented)
        fields = {k: doc.get(k) for k in ("device", "district", "site")}
        if any(v is not None and not isinstance(v, str) for v in fields.values()):
            raise ValueError("device, district and site must be strings")
        return cls(doc["request_id"], str(doc.get("requested_by") or ""), **fields)

    def matches(self, device_id: str, district: str, site: str, address: str) -> bool:
        if self.device is not None and self.device not in (device_id, address):
            return False
        if self.site is not None and self.site != site:
            return False
        return self.district is None or self.district == district


_REQUEST_FIELDS = ("request_id", "requested_by", "device", "district", "site")


def next_shift_checks(shifts: list[str], now: datetime, rng: random.Random,
                      planned: Mapping[tuple[str, datetime], object]) -> dict[tuple[str, datetime], datetime]:
    """A random moment in each shift occurrence under way or starting within a day, not yet planned."""
    out: dict[tuple[str, datetime], datetime] = {}
    for shift in shifts:
        start_s, end_s = shift.split("-")
        start, end = time.fromisoformat(start_s), time.fromisoformat(end_s)
        for day in (now.date() - timedelta(days=1), now.date(), now.date() + timedelta(days=1)):
            begin = datetime.combine(day, start)
            finish = datetime.combine(day + timedelta(days=1 if end <= start else 0), end)
            key = (shift, begin)
            if key in planned or finish <= now or begin > now + timedelta(days=1):
                continue
            lo = max(begin, now)
            out[key] = lo + timedelta(seconds=rng.uniform(0, (finish - lo).total_seconds()))
    return out
