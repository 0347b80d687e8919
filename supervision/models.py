"""Supervision's tables on the shared store: units, their people and sites, maintenance companies,
hazard work orders, photos, and the scope of the `unit` and `maintenance` API tokens.

Devices keep their `site` name; a site belongs to a unit through `UnitSite`, so a
device's unit is found without changing the device registry.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from firewatch.contract.db import Base, now_ms


class MaintenanceCompany(Base):
    """维保单位: maintains the fire systems of the units that name it."""

    __tablename__ = "sv_companies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)
    phone: Mapped[str] = mapped_column(String(32), default="")
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_ms: Mapped[int] = mapped_column(default=now_ms)


class Unit(Base):
    """A social unit (社会单位) whose buildings the center watches."""

    __tablename__ = "sv_units"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)
    category: Mapped[str] = mapped_column(String(16), index=True)
    """A `UnitCategory`."""
    address: Mapped[str] = mapped_column(String(256), default="")
    district: Mapped[str] = mapped_column(String(32), index=True)
    grid: Mapped[str] = mapped_column(String(64), default="", index=True)
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("sv_companies.id", ondelete="SET NULL"), nullable=True, index=True
    )
    department: Mapped[str] = mapped_column(String(200), default="")
    """行业主管部门, the supervising department overdue orders escalate to: notify's routes name it
    (`department = [...]`) with the department's channels, written once for all its units."""
    created_ms: Mapped[int] = mapped_column(default=now_ms)
    retired_ms: Mapped[int | None] = mapped_column(nullable=True)


class Contact(Base):
    """A person of a unit (责任人, 管理人, control room) or of a maintenance company (engineer)."""

    __tablename__ = "sv_contacts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    unit_id: Mapped[int | None] = mapped_column(
        ForeignKey("sv_units.id", ondelete="CASCADE"), nullable=True, index=True
    )
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("sv_companies.id", ondelete="CASCADE"), nullable=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    """A `ContactRole`."""
    name: Mapped[str] = mapped_column(String(128))
    phone: Mapped[str] = mapped_column(String(32), default="")
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Apprise URLs: where orders and reminders reach this person's phone."""


class UnitSite(Base):
    __tablename__ = "sv_unit_sites"
    site: Mapped[str] = mapped_column(String(128), primary_key=True)
    """The `Device.site` name."""
    unit_id: Mapped[int] = mapped_column(ForeignKey("sv_units.id", ondelete="CASCADE"), index=True)


class HazardOrder(Base):
    """A hazard work order; its history (every move, who, when, note, photos) is in `audit` as `hazard:{id}`.

    `opened_ms` and `deadline_ms` are on the supervisor's clock (event time by default),
    so a replayed month opens and escalates the same orders as it did live.
    """

    __tablename__ = "sv_hazards"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    unit_id: Mapped[int | None] = mapped_column(
        ForeignKey("sv_units.id", ondelete="SET NULL"), nullable=True, index=True
    )
    category: Mapped[str] = mapped_column(String(24), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(24), index=True)
    source_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    """What opened it (`alert:42`, `false_alarms:P-7:20401`): one order per source, even with two supervisors."""
    alert_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    device_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    site: Mapped[str] = mapped_column(String(128), default="")
    district: Mapped[str] = mapped_column(String(32), default="", index=True)
    title: Mapped[str] = mapped_column(Text, default="")
    note: Mapped[str] = mapped_column(Text, default="")
    photos: Mapped[list[str]] = mapped_column(JSON, default=list)
    opened_ms: Mapped[int] = mapped_column()
    deadline_ms: Mapped[int] = mapped_column(index=True)
    escalated_ms: Mapped[int | None] = mapped_column(nullable=True)
    closed_ms: Mapped[int | None] = mapped_column(nullable=True)
    opened_by: Mapped[str] = mapped_column(String(128), default="supervision")
    receipt: Mapped[str | None] = mapped_column(String(16), unique=True, nullable=True)
    """A public report's receipt code, for the reporter to follow the outcome."""
    reporter_phone: Mapped[str] = mapped_column(String(32), default="")
    address: Mapped[str] = mapped_column(String(256), default="")
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    outcome: Mapped[str] = mapped_column(Text, default="")
    """What the reporter of a public report sees: the center's last word on it."""
    updated_ms: Mapped[int] = mapped_column(default=now_ms, onupdate=now_ms, index=True)
    __table_args__ = (Index("ix_sv_hazards_open", "device_id", "category", "state"),)


class HazardLink(Base):
    """A one-tap link sent to one person for one order (supervision/links.py), kept so that one link can be
    revoked (an engineer who left the company) while every other link keeps working."""

    __tablename__ = "sv_hazard_links"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("sv_hazards.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    person: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """SHA-256 of the token: the link itself is only in the message."""
    sent_ms: Mapped[int] = mapped_column()
    expires_ms: Mapped[int] = mapped_column()
    revoked_ms: Mapped[int | None] = mapped_column(nullable=True)
    revoked_by: Mapped[str] = mapped_column(String(128), default="")


class TokenScope(Base):
    """What a `unit` or `maintenance` API token may see: one unit, or every unit of one company."""

    __tablename__ = "sv_token_scopes"
    token_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int | None] = mapped_column(nullable=True)
    company_id: Mapped[int | None] = mapped_column(nullable=True)
    person: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
