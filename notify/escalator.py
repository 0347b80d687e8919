"""The escalator: hands each alert change to the paging state machine, keeps the timers, starts the sends.

It knows nothing of where changes come from (the audit trail, in `notify.stage`;
a test hands them in) and nothing of how a step pages (`notify.paging`): it decides
which transition a change or a due timer means, and sends what the transition
recorded beside everything else, so a slow channel never holds up the next alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sqlalchemy import String, cast, exists, literal, select
from sqlalchemy.orm.exc import StaleDataError

from firewatch.contract.db import Alert, AlertState, AuditEntry, ChangeKind, Severity, Store, now_ms
from firewatch.notify import handoff
from firewatch.notify.changes import CATCH_UP_MS, AuditChange, Change
from firewatch.notify.config import NotifyConfig
from firewatch.notify.delivery import Dispatcher, Message
from firewatch.notify.escalations import OPEN, UNANSWERED, Escalation, EscalationMember
from firewatch.notify.handover import Handover
from firewatch.notify.metrics import NotifyMetrics
from firewatch.notify.paging import Pager
from firewatch.notify.route import covering_silence

log = logging.getLogger(__name__)
ATTEMPTS = 7
"""Tries at one change before notify gives up on it (counted in `changes_dropped`)."""


class Escalator:
    """Consumes alert changes, keeps the timers, and hands messages to the dispatcher."""

    def __init__(
        self,
        store: Store,
        config: NotifyConfig,
        clock: Callable[[], int] = now_ms,
        dispatcher: Dispatcher | None = None,
        metrics: NotifyMetrics | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.metrics = metrics or (dispatcher.metrics if dispatcher is not None else NotifyMetrics())
        self.dispatcher = dispatcher or Dispatcher(store, config, clock, self.metrics)
        lock = asyncio.Lock()
        """One transition at a time per process: a tick and a change never move the same row at once."""
        self.pager = Pager(store, config, clock, self.metrics, lock, lambda now: self.handover.recent(now))
        self.handover = Handover(store, config, self.pager, lock)
        self._sending: set[asyncio.Task[None]] = set()

    async def handle(self, change: Change) -> None:
        """Route one change; a fire's messages are recorded and their sends started before this returns."""
        alert = change.alert
        if isinstance(change, AuditChange) and change.confirmed is not None:
            self._send(await handoff.record(self.store, self.config, alert, *change.confirmed))
        if change.kind in (ChangeKind.FIRED, ChangeKind.UPDATED):
            if alert.state == AlertState.FIRING:
                self._send(await self.pager.open(alert, change.silenced, explain=change.kind == ChangeKind.FIRED))
            elif alert.state == AlertState.ACKNOWLEDGED:
                await self.pager.acknowledged(alert.id)
        elif change.kind == ChangeKind.ACKNOWLEDGED:
            await self.pager.acknowledged(alert.id)
        elif change.kind == ChangeKind.RESOLVED:
            self._send(await self.pager.resolved(alert.id))

    async def handle_patiently(self, change: Change) -> None:
        """A change is never dropped for a passing database error: a lost change can be a fire nobody hears of."""
        wait = 0.5
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await self.handle(change)
                return
            except Exception:
                log.exception("notify could not handle %s of alert %s (attempt %d)", change.kind, change.alert.id,
                              attempt)
                await asyncio.sleep(wait)
                wait = min(wait * 2, 10)
        self.metrics.changes_dropped.inc()
        log.error("notify gave up on %s of alert %s after %d attempts; it is not paged", change.kind,
                  change.alert.id, ATTEMPTS)

    async def drain(self) -> None:
        """Wait for the sends under way (tests, shutdown)."""
        while self._sending:
            await asyncio.gather(*self._sending)

    def _send(self, messages: list[Message]) -> None:
        """Sends run beside the pipeline: a slow channel never holds up the next alert or timer."""
        if messages:
            task = asyncio.create_task(self.dispatcher.deliver(messages))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def tick(self) -> None:
        """Run every escalation whose timer is due on the platform clock, and brief whoever just came on duty."""
        now = self.clock()
        self._send(await self.handover.briefings(now))
        async with self.store.session() as s:
            due = (await s.scalars(
                select(Escalation.id).where(Escalation.state.in_(OPEN), Escalation.next_ms <= now)
                .order_by(Escalation.next_ms)
            )).all()
        messages: list[Message] = []
        for esc_id in due:
            try:
                messages += await self.pager.step(esc_id)
            except StaleDataError:
                log.info("escalation %s changed under a tick (acknowledged?); re-read next tick", esc_id)
        self._send(messages)

    async def resume(self) -> None:
        """After a restart: send what was recorded but not sent, and catch up with changes missed meanwhile."""
        async with self.store.session() as s:
            open_ = (await s.execute(
                select(Escalation.id, Alert.state)
                .join(Alert, Alert.id == Escalation.alert_id)
                .where(Escalation.state.in_(UNANSWERED))
            )).all()
        for esc_id, state in open_:
            if state == AlertState.ACKNOWLEDGED:
                await self.pager.acknowledged_escalation(esc_id)
        async with self.store.session() as s:
            leaders = (await s.scalars(
                select(Escalation.alert_id).where(Escalation.state.in_(OPEN))
            )).all()
        for alert_id in leaders:
            self._send(await self.pager.resolved(alert_id))
        self._send(await self.dispatcher.pending())
        await self._catch_up()
        await self.tick()

    async def _catch_up(self) -> None:
        """Route firing alerts stored while notify was down, or whose change a crash lost on the way here.

        Only alerts changed within `CATCH_UP_MS` count, so a first start does not page a backlog of old alerts.
        """
        now = self.clock()
        subject = literal("alert:") + cast(Alert.id, String)
        async with self.store.session() as s:
            missed = (await s.scalars(
                select(Alert).where(
                    Alert.state == AlertState.FIRING, Alert.updated_ms >= now - CATCH_UP_MS,
                    ~exists().where(EscalationMember.alert_id == Alert.id),
                    ~exists().where(AuditEntry.subject == subject, AuditEntry.action == "not_paged"),
                ).order_by(Alert.severity != Severity.FIRE, Alert.id)
            )).all()
            silenced = {a.id for a in missed if await covering_silence(s, a, now) is not None}
        for alert in missed:
            log.info("notify catches up with alert %s (%s)", alert.id, alert.severity)
            await self.handle(AuditChange(ChangeKind.FIRED, alert, alert.id in silenced, ()))

    async def run(self, stop: asyncio.Event) -> None:
        """Resume, then tick every `tick_s` until `stop` is set; a database outage is waited out, not fatal."""
        resumed = False
        while not stop.is_set():
            try:
                if resumed:
                    await self.tick()
                else:
                    await self.resume()
                    resumed = True
            except Exception:
                log.exception("escalation %s failed; trying again", "tick" if resumed else "resume")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.tick_s)
