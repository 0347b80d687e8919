"""The api part's own tables: API tokens and each device's last reported status.

Both sit on the shared `contract.db.Base`, so `open_store` creates them with the rest.
"""

from __future__ import annotations

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from firewatch.contract.db import Base, now_ms
from firewatch.contract.kinds import FW_CHARS
from firewatch.contract.topics import DEVICE_ID_CHARS, DISTRICT_CHARS


class ApiToken(Base):
    """A bearer token; only its SHA-256 is kept, so a leaked database leaks no token."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    """Who holds it; recorded as the actor of every change made with it."""
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_ms: Mapped[int] = mapped_column(default=now_ms)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    revoked_ms: Mapped[int | None] = mapped_column(nullable=True)


class DeviceState(Base):
    """The last status a device reported, so a status change is noticed once and can be replayed.

    A change writes an audit row (`device:{id}`), which is what the live stream replays
    after a disconnect; this row only remembers what the previous status was.
    """

    __tablename__ = "device_state"
    device_id: Mapped[str] = mapped_column(String(DEVICE_ID_CHARS), primary_key=True)
    district: Mapped[str] = mapped_column(String(DISTRICT_CHARS), default="")
    online: Mapped[bool] = mapped_column()
    ts_ms: Mapped[int] = mapped_column()
    """Device time of the status message."""
    fw: Mapped[str] = mapped_column(String(FW_CHARS), default="")
    changed_ms: Mapped[int] = mapped_column(default=now_ms)
