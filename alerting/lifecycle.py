"""Lifecycle: one alert per fingerprint, from firing through acknowledged to resolved, kept in SQL.

Correlation's decisions on detection's signals become changes of `contract.db.Alert`
rows, each with an audit row (actor `alerting`, subject `alert:{id}`) in the
same transaction; the audit ids are the change feed the api's live stream
resumes from. The SQL row is the truth and other parts write it too (the api
acknowledges and resolves), so this stage only ever issues targeted UPDATEs of
the columns it owns, never writes `state` except to resolve an alert that is
still open, and picks up operators' changes from the audit trail (`sync`).

- A fingerprint has at most one open alert; a restart reloads the open ones
  (`load`) so nothing is raised twice or left open forever.
- Flap damping: an alert that fired `flap.changes` times within
  `flap.window_s` resolves only after its condition stayed clear `flap.hold_s`
  (at most `FLAP_HOLD_PERIODS` of its device's reporting periods).
- An alert an operator resolved while its condition persists is not raised
  again until the condition clears and returns (or gets worse).
- A signal whose alert the store refused (see `apply`) raises it at the
  condition's next signal: a panel's later alarms of the same incident are
  only evidence to its detector, and without this they would wait for a reset.
- Silences mute notification, never recording: the alert is stored, streamed
  and published as usual, with `AlertChange.silenced` set for the notify stages.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from firewatch.alerting.changes import AlertChange, ChangeKind, snapshot
from firewatch.alerting.config import Flap
from firewatch.alerting.metrics import PREFIX
from firewatch.alerting.signal import Decision, Signal
from firewatch.contract.db import (
    OPEN_STATES,
    Alert,
    AlertState,
    AuditEntry,
    Base,
    Severity,
    Silence,
    Store,
    now_ms,
)

ACTOR = "alerting"
FLAP_HOLD_PERIODS = 15
"""A flap hold is at most this many reporting periods of the device: `hold_s` (15 min) is 15 readings of a
minute device; a test rig at 1 Hz whose faults come minutes apart is held 15 s, not 900 of its readings."""
log = logging.getLogger("alerting")


@dataclass(slots=True)
class _Op:
    kind: ChangeKind
    alert: Alert
    values: dict[str, Any] = field(default_factory=dict)
    parent: Alert | None = None
    why: str = ""
    snap: Alert | None = None
    """The alert as this change left it (later ops of the same batch may change it again)."""


@dataclass(slots=True)
class _Memory:
    open: dict[str, Alert]
    held: dict[str, int]
    alerts: dict[str, dict[str, Any]]
    fired_at: dict[str, deque[int] | None]
    unraised: set[str]


def _columns(alert: Alert) -> dict[str, Any]:
    """The values of a new row: unset columns with a default are left out so they take it, and
    the rest are always given, so that every new alert lands in one multi-row INSERT."""
    return {c.key: v for c in Alert.__table__.columns
            if c.key != "id" and ((v := getattr(alert, c.key)) is not None or c.default is None)}


async def _insert(conn: AsyncConnection, table: type[Base], rows: list[dict[str, Any]]) -> list[int]:
    """INSERT rows (grouped by the columns they set) and return their new ids in row order.

    PostgreSQL hands the ids back in row order when asked. SQLite cannot be asked (SQLAlchemy
    then inserts row by row, about a millisecond each through aiosqlite), but it numbers the
    rows of an INSERT upwards in the order it inserts them, under the transaction's write lock,
    so its ids sorted are in row order.
    """
    ordered = conn.dialect.name != "sqlite"
    ids: dict[int, int] = {}
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(tuple(sorted(row)), []).append(i)
    for members in groups.values():
        stmt = insert(table).returning(table.id, sort_by_parameter_order=ordered)  # type: ignore[attr-defined]
        new = (await conn.execute(stmt, [rows[i] for i in members])).scalars().all()
        ids.update(zip(members, new if ordered else sorted(new)))
    return [ids[i] for i in range(len(rows))]


class Lifecycle:
    def __init__(self, store: Store, flap: Flap, metrics: CollectorRegistry | None = None,
                 districts: Sequence[str] = (), period_ms: Callable[[Signal], int] | None = None) -> None:
        self.store = store
        self.flap = flap
        self.period_ms = period_ms
        """The reporting period of a signal's device: a flap hold lasts at most `FLAP_HOLD_PERIODS` of them."""
        self.districts = tuple(districts)
        """Only these districts' alerts are this lifecycle's (none given: all); other workers own the rest."""
        r = metrics or CollectorRegistry()
        self._changes = Counter(PREFIX + "alert_changes", "Alert changes committed, by kind and the alert's severity",
                                ["kind", "severity"], registry=r)
        self._open = Gauge(PREFIX + "open_alerts", "Alerts firing or acknowledged, by severity", ["severity"],
                           registry=r)
        for severity in Severity:
            self._open.labels(severity)
            for kind in ChangeKind:
                self._changes.labels(kind, severity)
        self.open: dict[str, Alert] = {}
        self.fired_at: dict[str, deque[int]] = {}
        self.held: dict[str, int] = {}
        self.silences: list[Silence] = []
        self.audit_cursor = 0
        self.refused = 0
        """Signals the store refused on their own (see `apply`)."""
        self.unraised: set[str] = set()
        """Fingerprints whose condition holds but whose alert the store refused: raised at the next signal."""

    async def load(self) -> list[Alert]:
        """Reload the open alerts (newest per fingerprint) and the audit position; returns them."""
        async with self.store.session() as s:
            q = select(Alert).where(Alert.state.in_(OPEN_STATES))
            if self.districts:
                q = q.where(Alert.district.in_(self.districts))
            rows = (await s.execute(q.order_by(Alert.id))).scalars().all()
            self.audit_cursor = (await s.execute(select(func.max(AuditEntry.id)))).scalar() or 0
        self.open = {a.fingerprint: a for a in rows}
        self._counted([])
        await self._load_silences()
        return list(self.open.values())

    def _counted(self, changes: list[AlertChange]) -> list[AlertChange]:
        """Count committed changes, and recount the open alerts (on the loop that changes `open`)."""
        for c in changes:
            self._changes.labels(c.kind, c.alert.severity).inc()
        counts = dict.fromkeys(Severity, 0)
        for alert in self.open.values():
            counts[alert.severity] = counts.get(alert.severity, 0) + 1
        for severity, n in counts.items():
            self._open.labels(severity).set(n)
        return changes

    async def apply(self, decisions: list[Decision]) -> list[AlertChange]:
        """Commit the decisions' changes; a transaction the store refuses is split down to its bad one.

        A value the store will not take (a column too long, a constraint, a trigger) used to fail
        the whole transaction, so an innocent panel in the same batch lost its fire alert, and the
        planned alerts stayed in `open` without a row, so later signals only ever updated a ghost.
        Now the plan is undone and each half tried alone; the one signal the store refuses is
        logged and counted in `refused`. An unreachable store is not split: that raises as before.
        """
        before = self._memory(decisions)
        try:
            ops: list[_Op] = []
            for d in decisions:
                op = self._plan(d)
                if op is not None:
                    op.snap = snapshot(op.alert)
                    ops.append(op)
            return await self._commit(ops) if ops else []
        except DBAPIError as exc:
            self._restore(before)
            if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
                raise
            if len(decisions) == 1:
                self.refused += 1
                s = decisions[0].signal
                if s.severity is not None and s.fingerprint not in self.open:
                    self.unraised.add(s.fingerprint)
                log.error("alerting: the store refused %s for %s: %s", s.rule,
                          s.fingerprint, str(exc.orig).splitlines()[0] if exc.orig else exc)
                return []
        except BaseException:
            self._restore(before)
            raise
        half = len(decisions) // 2
        return await self.apply(decisions[:half]) + await self.apply(decisions[half:])

    def _memory(self, decisions: list[Decision]) -> _Memory:
        """What planning and committing these decisions may change, to put back if the commit fails."""
        columns = [c.key for c in Alert.__table__.columns]
        touched = {d.signal.fingerprint for d in decisions}
        alerts = {fp: {k: getattr(a, k) for k in columns} for fp in touched if (a := self.open.get(fp)) is not None}
        fired = {fp: deque(t, t.maxlen) if (t := self.fired_at.get(fp)) is not None else None for fp in touched}
        return _Memory(dict(self.open), dict(self.held), alerts, fired, set(self.unraised))

    def _restore(self, memory: _Memory) -> None:
        self.open, self.held, self.unraised = memory.open, memory.held, memory.unraised
        for fp, values in memory.alerts.items():
            for k, v in values.items():
                setattr(self.open[fp], k, v)
        for fp, times in memory.fired_at.items():
            if times is None:
                self.fired_at.pop(fp, None)
            else:
                self.fired_at[fp] = times

    def _plan(self, d: Decision) -> _Op | None:
        s = d.signal
        fp = s.fingerprint
        alert = self.open.get(fp)
        if s.annotate and fp not in self.unraised:
            return self._update(alert, d, "evidence") if alert is not None else None
        if s.severity is None:
            self.unraised.discard(fp)
            if alert is None:
                return None
            fired = self.fired_at.get(fp, ())
            if len(fired) >= self.flap.changes and self.flap.hold_s > 0:
                hold = int(self.flap.hold_s * 1000)
                if self.period_ms is not None:
                    hold = min(hold, FLAP_HOLD_PERIODS * self.period_ms(s))
                self.held[fp] = s.ts_ms + hold
                return None
            return self._resolve(fp, s.ts_ms, s.summary)
        self.held.pop(fp, None)
        if alert is not None:
            return self._update(alert, d, "level")
        times = self.fired_at.setdefault(fp, deque(maxlen=self.flap.changes))
        times.append(s.ts_ms)
        while times and s.ts_ms - times[0] > self.flap.window_s * 1000:
            times.popleft()
        alert = Alert(
            fingerprint=fp, rule=s.rule, severity=s.severity, state=AlertState.FIRING, kind=s.kind, device_id=s.device_id,
            district=s.district, site=s.site, zone=s.zone, loop=s.loop, point=s.point, metric=s.metric, value=s.value, threshold=s.threshold,
            unit=s.unit, summary=s.summary, probable=bool(d.probable), score=d.score or 0.0,
            reasons=list(d.reasons or []), started_ms=s.ts_ms, last_seen_ms=s.ts_ms,
        )
        self.open[fp] = alert
        self.unraised.discard(fp)
        return _Op(ChangeKind.FIRED, alert, parent=self.open.get(d.group) if d.group else None)

    def _update(self, alert: Alert, d: Decision, why: str) -> _Op | None:
        s = d.signal
        values: dict[str, Any] = {}
        if not s.annotate and (s.severity != alert.severity or s.summary != alert.summary):
            values.update(severity=s.severity, value=s.value, threshold=s.threshold, summary=s.summary,
                          metric=s.metric or alert.metric)
        reasons = list(d.reasons or [])
        if d.score is not None and (d.score != alert.score or reasons != alert.reasons):
            values.update(score=d.score, probable=bool(d.probable), reasons=reasons)
        parent = self.open.get(d.group) if d.group else None
        if parent is not None and (parent.id is None or parent.id != alert.parent_id):
            values["parent_id"] = parent.id
        if not values:
            return None
        values["last_seen_ms"] = max(alert.last_seen_ms, s.ts_ms)
        for k, v in values.items():
            setattr(alert, k, v)
        return _Op(ChangeKind.UPDATED, alert, values, parent, why)

    def _resolve(self, fp: str, ts_ms: int, why: str) -> _Op:
        alert = self.open.pop(fp)
        self.held.pop(fp, None)
        alert.state, alert.resolved_ms, alert.last_seen_ms = AlertState.RESOLVED, ts_ms, max(alert.last_seen_ms, ts_ms)
        values = {"state": AlertState.RESOLVED, "resolved_ms": ts_ms, "last_seen_ms": alert.last_seen_ms}
        return _Op(ChangeKind.RESOLVED, alert, values, why=why)

    async def tick(self, now_ms: int) -> list[AlertChange]:
        """Resolve flapping alerts whose condition stayed clear through the hold time."""
        due = [fp for fp, t in self.held.items() if t <= now_ms and fp in self.open]
        if not due:
            return []
        ops = [self._resolve(fp, self.held[fp], "clear through the flap hold") for fp in due]
        for op in ops:
            op.snap = snapshot(op.alert)
        return await self._commit(ops)

    async def _commit(self, ops: list[_Op]) -> list[AlertChange]:
        """One transaction of SQL Core statements: new alerts and audit rows in one executemany each."""
        done: list[tuple[_Op, dict[str, Any]]] = []
        async with self.store.engine.begin() as conn:
            fired = [op for op in ops if op.kind == ChangeKind.FIRED]
            for op, new_id in zip(fired, await _insert(conn, Alert, [_columns(op.snap or op.alert) for op in fired])):
                op.alert.id = new_id
            for op in ops:
                a = op.alert
                if op.kind == ChangeKind.FIRED:
                    if op.parent is not None:
                        a.parent_id = op.parent.id
                        await conn.execute(update(Alert).where(Alert.id == a.id).values(parent_id=a.parent_id))
                else:
                    if "parent_id" in op.values and op.parent is not None:
                        op.values["parent_id"] = a.parent_id = op.parent.id
                    stmt = (update(Alert).where(Alert.id == a.id, Alert.state.in_(OPEN_STATES))
                            .values(**op.values, updated_ms=now_ms()))
                    if (await conn.execute(stmt)).rowcount == 0:
                        self._closed_elsewhere(a)
                        continue
                snap = op.snap or snapshot(a)
                snap.id = a.id
                if op.kind == ChangeKind.FIRED or (op.parent is not None and "parent_id" in op.values):
                    snap.parent_id = a.parent_id
                detail = {k: getattr(snap, k) for k in ("severity", "value", "threshold", "score", "probable")}
                detail.update(rule=a.rule, fingerprint=a.fingerprint, summary=snap.summary, why=op.why or op.kind)
                if op.kind != ChangeKind.FIRED:
                    detail["changed"] = sorted(op.values)
                done.append((op, {"at_ms": now_ms(), "actor": ACTOR, "action": op.kind,
                                  "subject": f"alert:{a.id}", "detail": detail}))
            audit_ids = await _insert(conn, AuditEntry, [row for _, row in done])
        return self._counted([AlertChange(op.kind, op.snap, audit_id, ACTOR, self.silenced(op.alert))
                for (op, _), audit_id in zip(done, audit_ids)])

    def _closed_elsewhere(self, alert: Alert) -> None:
        """An operator resolved the row meanwhile: forget it here too."""
        if self.open.get(alert.fingerprint) is alert:
            del self.open[alert.fingerprint]

    async def sync(self) -> list[AlertChange]:
        """Pick up what operators did to open alerts (acknowledge, resolve) since the last look."""
        async with self.store.session() as s:
            entries = (await s.execute(
                select(AuditEntry).where(AuditEntry.id > self.audit_cursor, AuditEntry.actor != ACTOR,
                                         AuditEntry.subject.like("alert:%")).order_by(AuditEntry.id)
            )).scalars().all()
            if entries:
                self.audit_cursor = entries[-1].id
            by_id = {a.id: a for a in self.open.values()} if entries else {}  # every second: only when needed
            changes = []
            for e in entries:
                try:
                    alert = by_id.get(int(e.subject.split(":", 1)[1]))
                except ValueError:
                    continue
                if alert is None:
                    continue
                row = await s.get(Alert, alert.id)
                if row is None:
                    continue
                for k in ("state", "acknowledged_ms", "acknowledged_by", "resolved_ms"):
                    setattr(alert, k, getattr(row, k))
                if row.state == AlertState.RESOLVED:
                    self._closed_elsewhere(alert)
                    by_id.pop(alert.id, None)
                kind = {AlertState.RESOLVED: ChangeKind.RESOLVED, AlertState.ACKNOWLEDGED: ChangeKind.ACKNOWLEDGED}.get(
                    row.state, ChangeKind.UPDATED)
                changes.append(AlertChange(kind, snapshot(alert), e.id, e.actor, self.silenced(alert)))
        await self._load_silences()
        return self._counted(changes)

    async def _load_silences(self) -> None:
        async with self.store.session() as s:
            self.silences = list((await s.execute(select(Silence).where(Silence.ends_ms > now_ms()))).scalars())

    def silenced(self, a: Alert) -> bool:
        t = now_ms()
        return any(
            x.starts_ms <= t < x.ends_ms
            and (not x.device_id or x.device_id == a.device_id)
            and (not x.site or x.site == a.site)
            and (not x.district or x.district == a.district)
            and (not x.rule or x.rule == a.rule)
            for x in self.silences
        )
