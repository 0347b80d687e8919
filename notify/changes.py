"""The alert changes notify follows: read from the audit trail, with a cursor kept in the store.

Every alert change writes an `audit` row (subject `alert:{id}`) in the transaction of
the change, so the audit table is a change feed any process can follow, and notify
needs nothing from the process that made the change. `AuditFollower.read` returns
the changes after its position, one per alert, with the alert as stored now;
`done` marks changes handled, and the cursor (`notify_cursor`) moves over every
audit id handled or not about an alert. After a restart notify reads on from the
cursor; a change handled but not yet past the cursor is handled again, which pages
nobody twice (an alert joins one escalation, a step's messages have idempotency keys).

Audit ids are given out before commit: on PostgreSQL a transaction can commit a
lower id after a higher one became visible. An id missing below the newest read is a
gap, looked for again on every read until `GAP_S` passes (a rolled-back insert never
fills its gap), and the cursor waits below it meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import String, func, or_, select
from sqlalchemy.orm import Mapped, mapped_column

from firewatch.contract.db import (
    Alert,
    AlertState,
    AuditEntry,
    Base,
    ChangeKind,
    Severity,
    Silence,
    Store,
    now_ms,
)
from firewatch.notify.handoff import confirms
from firewatch.notify.route import covers

GAP_S = 10.0
"""How long a missing audit id may still be a transaction committing late."""
CATCH_UP_MS = 3_600_000
"""A first start (no cursor yet) reads the audit trail of this last stretch of wall time."""
READ_LIMIT = 2_000
"""Audit rows per read at most, so a long backlog is handled (fires first) a piece at a time."""
MAX_GAP = 1_000
"""A run of missing ids longer than this is a jump of the id sequence, not transactions in flight."""
ACTOR = "notify"
"""notify's own audit rows (`not_paged`, `not_acknowledged`) are no change to follow."""
LIFECYCLE = ("alerting", "supervision")
"""Who fires alerts: alerting's lifecycle, and supervision's overdue hazard orders (rule `hazard_overdue`)."""


class Change(Protocol):
    """An alert change: `alerting.changes.AlertChange` in tests, `AuditChange` when following the audit trail."""

    kind: str
    alert: Alert
    silenced: bool


@dataclass(frozen=True, slots=True)
class AuditChange:
    kind: ChangeKind
    alert: Alert
    """The row as stored when it was read (detached)."""
    silenced: bool
    audit_ids: tuple[int, ...]
    """The audit rows this change stands for; `AuditFollower.done` takes them."""
    confirmed: tuple[str, int] | None = None
    """Who confirmed the fire real, and when (wall ms), when one of the rows says so: hand it to 119."""


class NotifyCursor(Base):
    """Up to which audit id a notify stage has handled every change; one row per stage (districts)."""

    __tablename__ = "notify_cursor"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    audit_id: Mapped[int] = mapped_column()
    updated_ms: Mapped[int] = mapped_column(default=now_ms, onupdate=now_ms)


def cursor_name(districts: Iterable[str]) -> str:
    """One cursor per set of districts, so workers that split a city keep theirs apart."""
    ds = sorted(set(districts))
    return "notify:" + ",".join(ds) if ds else "notify"


class AuditFollower:
    def __init__(self, store: Store, clock: Callable[[], int] = now_ms, districts: Iterable[str] = ()) -> None:
        self.store = store
        self.clock = clock
        self.districts = frozenset(districts)
        self.name = cursor_name(self.districts)
        self.cursor = -1
        """Every audit id up to here is handled; -1 until `start`."""
        self._saved = -1
        self._read_upto = 0
        self._gaps: dict[int, float] = {}
        """Missing ids above the cursor → when first missed (monotonic)."""
        self._open: set[int] = set()
        """Ids read and handed out in a change not yet done."""

    async def start(self) -> int:
        """Take up the stored cursor, or on a first start the beginning of the last `CATCH_UP_MS`."""
        async with self.store.session() as s:
            row = await s.get(NotifyCursor, self.name)
            if row is not None:
                self.cursor = row.audit_id
            else:
                since = int(time.time() * 1000) - CATCH_UP_MS
                first = await s.scalar(select(func.min(AuditEntry.id)).where(AuditEntry.at_ms >= since))
                last = await s.scalar(select(func.max(AuditEntry.id)))
                self.cursor = first - 1 if first is not None else (last or 0)
        self._saved = self.cursor if row is not None else -1
        self._read_upto = self.cursor
        return self.cursor

    async def read(self) -> list[AuditChange]:
        """The changes written since the last read (and any late commit below it), fires first."""
        gaps = sorted(self._gaps)
        async with self.store.session() as s:
            q = select(AuditEntry.id, AuditEntry.actor, AuditEntry.action, AuditEntry.subject, AuditEntry.at_ms,
                       AuditEntry.detail)
            recent = AuditEntry.id > self._read_upto
            rows = (await s.execute(
                q.where(or_(recent, AuditEntry.id.in_(gaps)) if gaps else recent)
                .order_by(AuditEntry.id).limit(READ_LIMIT)
            )).all()
            about: dict[int, list[tuple[int, str, str]]] = {}
            confirmed: dict[int, tuple[str, int]] = {}
            for audit_id, actor, action, subject, at_ms, detail in rows:
                self._saw(audit_id)
                alert_id = _alert_id(subject) if actor != ACTOR else None
                if alert_id is None:
                    continue
                about.setdefault(alert_id, []).append((audit_id, actor, action))
                if confirms(action, detail or {}):
                    confirmed.setdefault(alert_id, (actor, at_ms))
            alerts = (await s.scalars(select(Alert).where(Alert.id.in_(about)))).all() if about else []
            now = self.clock()
            silences = (await s.scalars(
                select(Silence).where(Silence.starts_ms <= now, Silence.ends_ms > now)
            )).all() if alerts else []
        changes = []
        found = {a.id: a for a in alerts}
        for alert_id, entries in about.items():
            alert = found.get(alert_id)
            ids = tuple(e[0] for e in entries)
            if alert is None or (self.districts and alert.district not in self.districts):
                continue
            self._open.update(ids)
            changes.append(AuditChange(
                _kind(alert, entries), alert, any(covers(x, alert, now) for x in silences), ids,
                confirmed.get(alert_id),
            ))
        self._advance()
        changes.sort(key=lambda c: (c.alert.severity != Severity.FIRE, c.audit_ids[0]))
        return changes

    def done(self, change: AuditChange) -> None:
        """The change is handled: the cursor may move past its audit rows."""
        self._open.difference_update(change.audit_ids)
        self._advance()

    async def save(self) -> None:
        """Store the cursor if it moved (a crash before this re-reads, and re-handles, what came after)."""
        if self.cursor == self._saved:
            return
        async with self.store.session() as s, s.begin():
            row = await s.get(NotifyCursor, self.name)
            if row is None:
                s.add(NotifyCursor(name=self.name, audit_id=self.cursor))
            else:
                row.audit_id = self.cursor
        self._saved = self.cursor

    def _saw(self, audit_id: int) -> None:
        self._gaps.pop(audit_id, None)
        if audit_id > self._read_upto:
            missing = audit_id - self._read_upto - 1
            if 0 < missing <= MAX_GAP:
                noticed = time.monotonic()
                self._gaps.update(dict.fromkeys(range(self._read_upto + 1, audit_id), noticed))
            self._read_upto = audit_id

    def _advance(self) -> None:
        """Move the cursor up to the lowest id still open or still possibly committing."""
        old = time.monotonic() - GAP_S
        for gap in [g for g, noticed in self._gaps.items() if noticed < old]:
            del self._gaps[gap]
        waiting = [*self._open, *self._gaps]
        self.cursor = max(self.cursor, min(waiting) - 1 if waiting else self._read_upto)


def _alert_id(subject: str) -> int | None:
    kind, _, rest = subject.partition(":")
    return int(rest) if kind == "alert" and rest.isdigit() else None


def _kind(alert: Alert, entries: list[tuple[int, str, str]]) -> ChangeKind:
    """The change as the escalator needs it: what the alert is now, and whether it is new."""
    if alert.state == AlertState.RESOLVED:
        return ChangeKind.RESOLVED
    if alert.state == AlertState.ACKNOWLEDGED:
        return ChangeKind.ACKNOWLEDGED
    fired = any(actor in LIFECYCLE and action == ChangeKind.FIRED for _, actor, action in entries)
    return ChangeKind.FIRED if fired else ChangeKind.UPDATED
