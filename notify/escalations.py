"""The escalation tables and the paging states an escalation moves through.

Each paged group of alerts has one `Escalation` row holding its timer (`next_ms`,
on the platform clock) and its place in the chain, and one `EscalationMember` row
per alert it pages for. The row moves on in the same transaction that records the
messages of a step (`notify.paging`), and its version column makes a tick that
raced with an acknowledgement give up instead of paging, so after a crash or a
restart the timers go on where they were: no step is lost and none is planned twice.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import Integer, String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from firewatch.contract.db import Alert, Base, Severity
from firewatch.notify.config import NotifyConfig


class PagingState(StrEnum):
    """Where an escalation is; the values are what `notify_escalations.state` stores."""

    GROUPING = "grouping"
    """Waiting `group_wait_s` for related non-fire alerts to join."""
    ACTIVE = "active"
    """Paging the chain step by step."""
    ACKNOWLEDGED = "acknowledged"
    """Someone took it: critical and fire alerts are reminded until resolved."""
    EXHAUSTED = "exhausted"
    """The chain ran `repeat` times and nobody answered."""
    RESOLVED = "resolved"
    """Every alert of it resolved; the all-clear went out."""
    MERGED = "merged"
    """Its alerts joined another escalation (a parent's, or a fire left its group)."""


OPEN = (PagingState.GROUPING, PagingState.ACTIVE, PagingState.ACKNOWLEDGED, PagingState.EXHAUSTED)
"""States with a timer that may still come due."""
UNANSWERED = (PagingState.GROUPING, PagingState.ACTIVE, PagingState.EXHAUSTED)
"""Open and nobody has acknowledged: an acknowledgement stops these."""
JOINABLE = (PagingState.GROUPING, PagingState.ACTIVE)
"""A later alert of the same group, or a child of the leader, joins these."""
REMIND_SEVERITIES = (Severity.CRITICAL, Severity.FIRE)


class Escalation(Base):
    __tablename__ = "notify_escalations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(index=True)
    """The alert the messages are about; the other members are counted in them."""
    route: Mapped[str] = mapped_column(String(64))
    group_key: Mapped[str] = mapped_column(String(400), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    """A `PagingState`."""
    step: Mapped[int] = mapped_column(Integer, default=0)
    """The next step of the chain to run."""
    cycle: Mapped[int] = mapped_column(Integer, default=0)
    reminders: Mapped[int] = mapped_column(Integer, default=0)
    next_ms: Mapped[int | None] = mapped_column(nullable=True, index=True)
    created_ms: Mapped[int] = mapped_column()
    version: Mapped[int] = mapped_column(Integer, default=1)
    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": version}


class EscalationMember(Base):
    """Which escalation pages for an alert; an alert belongs to at most one."""

    __tablename__ = "notify_escalation_members"
    alert_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    escalation_id: Mapped[int] = mapped_column(index=True)


async def stop_paging(s: AsyncSession, config: NotifyConfig, esc_id: int, now: int) -> None:
    """Acknowledged: stop paging; keep reminding if the alert is critical or a fire."""
    esc = await s.get(Escalation, esc_id)
    if esc is None or esc.state not in UNANSWERED:
        return
    alert = await s.get(Alert, esc.alert_id)
    route = next((r for r in config.routes if r.name == esc.route), None)
    esc.state = PagingState.ACKNOWLEDGED
    remind = (alert is not None and route is not None and alert.severity in REMIND_SEVERITIES
              and route.reminder_min > 0)
    esc.next_ms = now + int(route.reminder_min * 60_000) if remind and route else None
