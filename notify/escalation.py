"""Escalation: page the chain of a route step by step until someone acknowledges, then remind, then all-clear.

The last stage of the alerting pipeline. Each paged group of alerts has one
`Escalation` row holding its timer (`next_ms`, on the platform clock) and its
place in the chain; the row moves on in the same transaction that records the
messages of the step (see `notify.delivery`), and a version column
makes a tick that raced with an acknowledgement from the api give up instead
of paging. So after a crash or restart the timers go on where they were: no
step is lost and none is planned twice.

States: `grouping` (waiting for related non-fire alerts to join), `active`
(paging the chain), `acknowledged` (reminding critical/fire until resolved),
`exhausted` (chain repeated `repeat` times, nobody answered), `resolved`
(all-clear sent), `merged` (its alerts joined a parent's escalation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from sqlalchemy import Integer, String, cast, exists, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.orm.exc import StaleDataError

from firewatch.alerting.changes import AlertChange, Subscription
from firewatch.contract.db import Alert, AuditEntry, Base, Device, Store, now_ms
from firewatch.notify.acklink import AckSigner, Claim
from firewatch.notify.config import NotifyConfig, Route
from firewatch.notify.delivery import HELD, PENDING, SENT, Dispatcher, Message
from firewatch.notify.roster import Duty, DutyGroup, Person, on_duty, resolve_targets
from firewatch.notify.route import Router, covering_silence
from firewatch.notify.templates import Purpose, render, render_handover, word

log = logging.getLogger(__name__)

OPEN = ("grouping", "active", "acknowledged", "exhausted")
REMIND_SEVERITIES = ("critical", "fire")
ACK_HOWS = ("ack", "on_way", "false_alarm")
SILENCE_RECHECK_MS = 60_000
DUTY_REUSE_MS = 5_000
"""A fire's first page uses who was on duty at the last tick (at most this old) instead of asking the store."""
CATCH_UP_MS = 3_600_000
"""A silence set while an escalation runs pauses it; paging goes on this soon after the silence ends."""


class Escalation(Base):
    __tablename__ = "notify_escalations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(index=True)
    """The alert the messages are about; the other members are counted in them."""
    route: Mapped[str] = mapped_column(String(64))
    group_key: Mapped[str] = mapped_column(String(400), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
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


class Change(Protocol):
    """What the lifecycle emits (`alerting.changes.AlertChange`): kind fired/updated/acknowledged/resolved."""

    kind: str
    alert: Alert
    silenced: bool


@dataclass(frozen=True, slots=True)
class AckResult:
    alert_ids: list[int]
    already_by: str = ""
    """Set when the alert was acknowledged before this tap, by this person."""


class Escalator:
    """Consumes alert changes, keeps the timers, and hands messages to the dispatcher."""

    def __init__(
        self,
        store: Store,
        config: NotifyConfig,
        clock: Callable[[], int] = now_ms,
        dispatcher: Dispatcher | None = None,
        counts: Counter[tuple[str, str]] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.router = Router(config)
        self.signer = AckSigner(config.secret, config.public_url)
        self.counts: Counter[tuple[str, str]] = Counter() if counts is None else counts
        """Deliveries by result and channel type (the dispatcher's), steps with `nobody_on_duty` and
        changes `dropped`; the serving thread's twin counts into the same one, which the metrics read."""
        self.dispatcher = dispatcher or Dispatcher(store, config, clock, self.counts)
        self._lock = asyncio.Lock()
        self._sending: set[asyncio.Task[None]] = set()
        self._duty: Duty | None = None
        """Who was on duty at the last tick; None until the first tick after a start."""

    async def handle(self, change: Change) -> None:
        """Route one lifecycle change; a fire's messages are recorded and their sends started before this returns."""
        alert = change.alert
        if change.kind in ("fired", "updated"):
            if alert.state == "firing":
                self._send(await self._open(alert, change.silenced, explain=change.kind == "fired"))
            elif alert.state == "acknowledged":
                await self._acknowledged(alert.id)
        elif change.kind == "acknowledged":
            await self._acknowledged(alert.id)
        elif change.kind == "resolved":
            self._send(await self._resolved(alert.id))

    async def serve(self, changes: Subscription) -> None:
        """The notify stage of the alerting service: consume the change feed and keep the timers, until cancelled.

            escalator = Escalator(store, notify_config(settings))
            task = asyncio.create_task(escalator.serve(pipeline.feed.subscribe()))

        The stage runs on a thread of its own, with its own event loop and database
        connections: detection keeps the service's loop busy in long stretches, and a
        fire's page must not wait for them. This coroutine only hands changes over.
        """
        ready = threading.Event()
        box: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: asyncio.run(self._stage(box, ready)), name="notify", daemon=True)
        thread.start()
        await asyncio.to_thread(ready.wait)
        if "loop" not in box:
            raise RuntimeError(f"the notify thread did not start: {box.get('error')!r}")
        loop: asyncio.AbstractEventLoop = box["loop"]
        handover: asyncio.Queue[list[Change]] = box["queue"]
        try:
            while True:
                batch = [await changes.get(), *changes.drain()]
                loop.call_soon_threadsafe(handover.put_nowait, batch)
        finally:
            loop.call_soon_threadsafe(box["stop"].set)
            await asyncio.to_thread(thread.join, 60)

    async def _stage(self, box: dict[str, Any], ready: threading.Event) -> None:
        """The notify thread: a twin of this escalator on its own connections, fires before everything waiting."""
        try:
            own = Escalator(Store(self.store.url), self.config, self.clock, counts=self.counts)
            batches: asyncio.Queue[list[Change]] = asyncio.Queue()
            stop = asyncio.Event()
            box.update(loop=asyncio.get_running_loop(), queue=batches, stop=stop)
        except Exception as exc:
            box["error"] = exc
            raise
        finally:
            ready.set()
        timers = asyncio.create_task(own.run(stop))
        consumer = asyncio.create_task(own._consume(batches))
        await stop.wait()
        consumer.cancel()
        await asyncio.gather(consumer, timers, return_exceptions=True)
        await own.drain()
        await own.dispatcher.aclose()
        await own.store.aclose()

    async def _consume(self, batches: asyncio.Queue[list[Change]]) -> None:
        fires: deque[Change] = deque()
        others: deque[Change] = deque()
        while True:
            arrived = [] if fires or others else await batches.get()
            while not batches.empty():
                arrived += batches.get_nowait()
            for change in arrived:
                (fires if change.alert.severity == "fire" else others).append(change)
            await self._handle_patiently(fires.popleft() if fires else others.popleft())

    async def _handle_patiently(self, change: Change) -> None:
        """A change is never dropped for a passing database error: a lost change can be a fire nobody hears of."""
        wait = 0.5
        for attempt in range(1, 8):
            try:
                await self.handle(change)
                return
            except Exception:
                log.exception("notify could not handle %s of alert %s (attempt %d)", change.kind, change.alert.id,
                              attempt)
                await asyncio.sleep(wait)
                wait = min(wait * 2, 10)
        self.counts["dropped", ""] += 1
        log.error("notify gave up on %s of alert %s after 7 attempts; it is not paged", change.kind,
                  change.alert.id)

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
        self._send(await self._handover(now))
        async with self.store.session() as s:
            due = (await s.scalars(
                select(Escalation.id).where(Escalation.state.in_(OPEN), Escalation.next_ms <= now)
                .order_by(Escalation.next_ms)
            )).all()
        await self._run(list(due))

    async def resume(self) -> None:
        """After a restart: send what was recorded but not sent, and catch up with changes missed meanwhile."""
        async with self.store.session() as s:
            open_ = (await s.execute(
                select(Escalation.id, Alert.state)
                .join(Alert, Alert.id == Escalation.alert_id)
                .where(Escalation.state.in_(("grouping", "active", "exhausted")))
            )).all()
        for esc_id, state in open_:
            if state == "acknowledged":
                await self._acknowledged_escalation(esc_id)
        async with self.store.session() as s:
            leaders = (await s.scalars(
                select(Escalation.alert_id).where(Escalation.state.in_(OPEN))
            )).all()
        for alert_id in leaders:
            self._send(await self._resolved(alert_id))
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
                    Alert.state == "firing", Alert.updated_ms >= now - CATCH_UP_MS,
                    ~exists().where(EscalationMember.alert_id == Alert.id),
                    ~exists().where(AuditEntry.subject == subject, AuditEntry.action == "not_paged"),
                ).order_by(Alert.severity != "fire", Alert.id)
            )).all()
            silenced = {a.id for a in missed if await covering_silence(s, a, now) is not None}
        for alert in missed:
            log.info("notify catches up with alert %s (%s)", alert.id, alert.severity)
            await self.handle(AlertChange("fired", alert, None, silenced=alert.id in silenced))

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

    async def _run(self, escalation_ids: list[int]) -> None:
        messages: list[Message] = []
        for esc_id in escalation_ids:
            try:
                messages += await self._step(esc_id)
            except StaleDataError:
                log.info("escalation %s changed under a tick (acknowledged?); re-read next tick", esc_id)
        self._send(messages)

    async def _open(self, alert: Alert, silenced: bool, explain: bool) -> list[Message]:
        """Start or join an escalation for a firing alert; a fire's first step is recorded in the same transaction.

        An update of an alert that was not paged is routed again (its inhibitor may be gone);
        only the first decision is audited, since every audit entry comes back as an update.
        """
        now = self.clock()
        async with self._lock, self.store.session() as s, s.begin():
            stored = await s.get(Alert, alert.id)
            if stored is None or stored.state != "firing":
                return []
            alert = stored
            member = await s.get(EscalationMember, alert.id)
            if member is not None:
                esc = await s.get(Escalation, member.escalation_id)
                if esc is None or not (esc.state == "grouping" and alert.severity == "fire"):
                    await self._join_parent(s, alert)
                    return []
                await self._leave(s, member, esc)
            decision = await self.router.decide(s, alert)
            reason = "silence" if silenced else decision.suppressed_by
            if decision.route is None or reason:
                if explain:
                    await self.store.audit(s, "notify", "not_paged", f"alert:{alert.id}", reason=reason)
                return []
            route = decision.route
            if decision.parent_id is not None:
                parent = await s.get(EscalationMember, decision.parent_id)
                if parent is not None:
                    s.add(EscalationMember(alert_id=alert.id, escalation_id=parent.escalation_id))
                    return []
            key = self.router.group_key(route, alert)
            grouping = alert.severity != "fire" and route.group_wait_s > 0
            if grouping:
                esc = (await s.scalars(
                    select(Escalation).where(Escalation.group_key == key, Escalation.state.in_(("grouping", "active")))
                )).first()
                if esc is not None:
                    s.add(EscalationMember(alert_id=alert.id, escalation_id=esc.id))
                    return []
            esc = Escalation(
                alert_id=alert.id, route=route.name, group_key=key, created_ms=now,
                state="grouping" if grouping else "active",
                next_ms=now + int(route.group_wait_s * 1000) if grouping else now,
            )
            s.add(esc)
            await s.flush()
            s.add(EscalationMember(alert_id=alert.id, escalation_id=esc.id))
            if not alert.device_id:
                await self._absorb_children(s, alert.id, esc)
            if grouping:
                return []
            return await self._page(s, esc, alert, route, now, members=1 if alert.device_id else None)

    async def _join_parent(self, s: AsyncSession, alert: Alert) -> None:
        """An alert paged on its own whose parent (a water main) is now known joins the parent's messages."""
        if alert.parent_id is None or alert.severity == "fire":
            return
        parent = await s.get(EscalationMember, alert.parent_id)
        parent_esc = await s.get(Escalation, parent.escalation_id) if parent else None
        if parent_esc is not None and parent_esc.state in OPEN:
            await self._absorb_children(s, alert.parent_id, parent_esc)

    async def _leave(self, s: AsyncSession, member: EscalationMember, esc: Escalation) -> None:
        """A grouped alert that became a fire leaves its group to be paged at once on its own."""
        await s.delete(member)
        await s.flush()
        left = (await s.scalars(
            select(EscalationMember.alert_id).where(EscalationMember.escalation_id == esc.id)
        )).first()
        if left is None:
            esc.state, esc.next_ms = "merged", None
        elif esc.alert_id == member.alert_id:
            esc.alert_id = left

    async def _handover(self, now: int) -> list[Message]:
        """At a shift change, the officers coming on duty get the open alerts: unacknowledged ones with their links.

        Briefings are keyed by minute, group and person, so a second worker or a restart in
        the same minute does not brief twice; a restart exactly at the change may miss one.
        """
        async with self.store.session() as s:
            duty = await on_duty(s, now, self.config.zone)
        last, self._duty = self._duty, duty
        if last is None:
            return []
        before = {g: {p.id for p in people} for g, people in last.groups.items()}
        arriving = {g: [p for p in people if p.id not in before.get(g, set())] for g, people in duty.groups.items()}
        if not any(arriving.values()):
            return []
        async with self._lock, self.store.session() as s, s.begin():
            alerts = (await s.scalars(
                select(Alert).join(Escalation, Escalation.alert_id == Alert.id)
                .where(Escalation.state.in_(("active", "exhausted", "acknowledged")), Alert.state != "resolved")
                .order_by(Alert.severity != "fire", Alert.severity != "critical", Alert.started_ms)
            )).all()
            if not alerts:
                return []
            names = dict((await s.execute(select(DutyGroup.id, DutyGroup.name))).all())
            worst = alerts[0]
            written: list[Message] = []
            for group, people in arriving.items():
                for person in people:
                    language = person.language or self.config.language
                    text = render_handover(
                        names.get(group) or group,
                        [(a, self.signer.page_url(self._claim(a.id, person.id, now)) if a.state == "firing" else "")
                         for a in alerts],
                        language, self.config.zone,
                    )
                    held = worst.severity != "fire" and await self._over_limit(s, person.id, now)
                    for n, url in enumerate(person.channels):
                        key = f"handover:{now // 60_000}:{group}:{person.id}:{n}"
                        if (await s.scalars(select(Message.id).where(Message.key == key))).first() is None:
                            msg = Message(
                                key=key, escalation_id=0, alert_id=0, person_id=person.id, channel=url,
                                purpose=Purpose.HANDOVER.value, severity=worst.severity, title=text.title,
                                body=text.body, state=HELD if held else PENDING, created_ms=now,
                            )
                            s.add(msg)
                            written.append(msg)
            await s.flush()
            return [m for m in written if m.state == PENDING]

    def _claim(self, alert_id: int, person_id: str, now: int) -> Claim:
        return Claim(alert_id, person_id, now + int(self.config.link_expiry_h * 3_600_000))

    async def _absorb_children(self, s: AsyncSession, parent_id: int, esc: Escalation) -> None:
        """Alerts paged before their parent (a water main) was known count in the parent's messages from now on."""
        rows = (await s.execute(
            select(EscalationMember, Escalation)
            .join(Escalation, Escalation.id == EscalationMember.escalation_id)
            .join(Alert, Alert.id == EscalationMember.alert_id)
            .where(Alert.parent_id == parent_id, Alert.severity != "fire", Escalation.id != esc.id,
                   Escalation.state.in_(("grouping", "active")))
        )).all()
        moved = {member.alert_id for member, _ in rows}
        for member, _ in rows:
            member.escalation_id = esc.id
        await s.flush()
        for old in {old.id: old for _, old in rows}.values():
            left = (await s.scalars(
                select(EscalationMember.alert_id).where(EscalationMember.escalation_id == old.id)
            )).first()
            if left is None:
                old.state, old.next_ms = "merged", None
            elif old.alert_id in moved:
                old.alert_id = left

    async def _step(self, esc_id: int) -> list[Message]:
        now = self.clock()
        async with self._lock, self.store.session() as s, s.begin():
            esc = await s.get(Escalation, esc_id)
            if esc is None or esc.state not in OPEN or esc.next_ms is None or esc.next_ms > now:
                return []
            alert = await self._open_leader(s, esc)
            route = self.router.route(esc.route)
            if alert is None or route is None:
                esc.next_ms = None
                return []
            if alert.state == "acknowledged" and esc.state != "acknowledged":
                await stop_escalation(s, self.config, esc.id, now)
                return []
            if esc.state == "acknowledged":
                return await self._remind(s, esc, alert, route, now)
            if esc.state in ("grouping", "active") and await covering_silence(s, alert, now) is not None:
                esc.next_ms = now + SILENCE_RECHECK_MS
                return []
            if esc.state == "exhausted":
                esc.next_ms = None
                await self.store.audit(s, "notify", "not_acknowledged", f"alert:{alert.id}", rounds=route.repeat)
                return []
            return await self._page(s, esc, alert, route, now)

    async def _open_leader(self, s: AsyncSession, esc: Escalation) -> Alert | None:
        """The alert the messages are about; when it resolved, an open one of its group takes its place."""
        alert = await s.get(Alert, esc.alert_id)
        if alert is not None and alert.state != "resolved":
            return alert
        other = (await s.scalars(
            select(Alert).join(EscalationMember, EscalationMember.alert_id == Alert.id)
            .where(EscalationMember.escalation_id == esc.id, Alert.state != "resolved")
            .order_by(Alert.severity != "fire", Alert.severity != "critical", Alert.id)
        )).first()
        if other is not None:
            esc.alert_id = other.id
        return other

    async def _page(
        self, s: AsyncSession, esc: Escalation, alert: Alert, route: Route, now: int, members: int | None = None,
    ) -> list[Message]:
        step = route.steps[esc.step % len(route.steps)]
        recent = self._duty if self._duty is not None and 0 <= now - self._duty.at_ms < DUTY_REUSE_MS else None
        people = await resolve_targets(s, step.notify, now, self.config.zone, recent)
        if not people and not any(t.startswith("channel:") for t in step.notify):
            self.counts["nobody_on_duty", ""] += 1
            log.warning("escalation %s step %s: nobody on duty for %s", esc.id, esc.step, step.notify)
        prefix = f"esc{esc.id}:c{esc.cycle}:s{esc.step}"
        sent = await self._messages(s, esc, alert, Purpose.PAGE, prefix, people, step.notify, now, members)
        esc.state = "active"
        esc.next_ms = now + int(step.wait_min * 60_000)
        esc.step += 1
        if esc.step >= len(route.steps):
            esc.step, esc.cycle = 0, esc.cycle + 1
            if esc.cycle >= route.repeat:
                esc.state = "exhausted"
        return sent

    async def _remind(self, s: AsyncSession, esc: Escalation, alert: Alert, route: Route, now: int) -> list[Message]:
        people: list[Person] = []
        taker = await s.get(Person, alert.acknowledged_by) if alert.acknowledged_by else None
        if taker is not None:
            people = [taker]
        else:
            people = await self._told(s, esc.id)
        sent = await self._messages(
            s, esc, alert, Purpose.REMINDER, f"esc{esc.id}:r{esc.reminders}", people, [], now
        )
        esc.reminders += 1
        esc.next_ms = now + int(route.reminder_min * 60_000)
        return sent

    async def _acknowledged(self, alert_id: int) -> None:
        async with self.store.session() as s:
            member = await s.get(EscalationMember, alert_id)
        if member is not None:
            await self._acknowledged_escalation(member.escalation_id)

    async def _acknowledged_escalation(self, esc_id: int) -> None:
        async with self._lock, self.store.session() as s, s.begin():
            await stop_escalation(s, self.config, esc_id, self.clock())

    async def _told(self, s: AsyncSession, esc_id: int) -> list[Person]:
        ids = (await s.scalars(
            select(Message.person_id).where(Message.escalation_id == esc_id, Message.state == SENT,
                                            Message.person_id != "").distinct()
        )).all()
        return [p for p in [await s.get(Person, i) for i in ids] if p is not None]

    async def _resolved(self, alert_id: int) -> list[Message]:
        """When every alert of an escalation is resolved, tell everyone who was told."""
        now = self.clock()
        async with self._lock, self.store.session() as s, s.begin():
            member = await s.get(EscalationMember, alert_id)
            esc = await s.get(Escalation, member.escalation_id) if member else None
            if esc is None or esc.state not in OPEN:
                return []
            states = (await s.scalars(
                select(Alert.state).join(EscalationMember, EscalationMember.alert_id == Alert.id)
                .where(EscalationMember.escalation_id == esc.id)
            )).all()
            if any(st != "resolved" for st in states):
                return []
            alert = await s.get(Alert, esc.alert_id)
            esc.state, esc.next_ms = "resolved", None
            told = (await s.execute(
                select(Message.person_id, Message.channel)
                .where(Message.escalation_id == esc.id, Message.state == SENT).distinct()
            )).all()
            if alert is None or not told:
                return []
            languages = dict((await s.execute(
                select(Person.id, Person.language).where(Person.id.in_({pid for pid, _ in told}))
            )).all())
            return await self._write(
                s, esc, alert, Purpose.ALL_CLEAR, f"esc{esc.id}:clear",
                [(pid, url, languages.get(pid, "")) for pid, url in told], now,
            )

    async def _messages(
        self, s: AsyncSession, esc: Escalation, alert: Alert, purpose: Purpose, prefix: str,
        people: list[Person], targets: list[str], now: int, members: int | None = None,
    ) -> list[Message]:
        pairs = [(p.id, url, p.language) for p in people for url in p.channels]
        for t in targets:
            kind, _, name = t.partition(":")
            if kind == "channel":
                url = self.config.channels.get(name)
                if url is None:
                    log.warning("escalation %s: no channel named %r in [notify.channels]", esc.id, name)
                else:
                    pairs.append(("", url, ""))
        return await self._write(s, esc, alert, purpose, prefix, pairs, now, members)

    async def _write(
        self, s: AsyncSession, esc: Escalation, alert: Alert, purpose: Purpose, prefix: str,
        targets: list[tuple[str, str, str]], now: int, members: int | None = None,
    ) -> list[Message]:
        """Record one message per (person, channel URL, language); past the rate limit held back, never a fire.

        `members` (how many alerts this escalation pages for) is given only by the transaction that
        opened the escalation, which therefore has no messages yet; otherwise both are looked up.
        """
        device = await s.get(Device, alert.device_id) if alert.device_id else None
        done: set[str] = set()
        if members is None:
            members = len((await s.scalars(
                select(EscalationMember.alert_id).where(EscalationMember.escalation_id == esc.id)
            )).all())
            done = set((await s.scalars(
                select(Message.key).where(Message.escalation_id == esc.id, Message.key.startswith(prefix + ":"))
            )).all())
        snapshot = alert_dict(alert)
        written: list[Message] = []
        for n, (pid, url, language) in enumerate(targets):
            key = f"{prefix}:{pid or 'channel'}:{n}"
            if key in done:
                continue
            language = language or self.config.language
            link, actions = "", []
            if pid and purpose is not Purpose.ALL_CLEAR:
                claim = self._claim(alert.id, pid, now)
                link = self.signer.page_url(claim)
                actions = [(word(language, a), self.signer.action_url(claim, a)) for a in ("ack", "on_way")]
            text = render(
                alert, purpose, language, self.config.zone,
                address=device.address if device else "", link=link, more=max(0, members - 1),
            )
            state = PENDING
            if pid and alert.severity != "fire" and await self._over_limit(s, pid, now):
                state = HELD
            msg = Message(
                key=key, escalation_id=esc.id, alert_id=alert.id, person_id=pid, channel=url,
                purpose=purpose.value, severity=alert.severity, title=text.title, body=text.body,
                link=link, actions=actions, alert=snapshot, state=state, created_ms=now,
            )
            s.add(msg)
            written.append(msg)
        await s.flush()
        return [m for m in written if m.state == PENDING]

    async def _over_limit(self, s: AsyncSession, person_id: str, now: int) -> bool:
        since = now - int(self.config.rate_limit.window_s * 1000)
        recent = (await s.scalars(
            select(Message.id).where(Message.person_id == person_id, Message.created_ms > since,
                                     Message.state != HELD)
        )).all()
        return len(recent) >= self.config.rate_limit.per_person


async def stop_escalation(s: AsyncSession, config: NotifyConfig, esc_id: int, now: int) -> None:
    """Acknowledged: stop paging; keep reminding if the alert is critical or a fire."""
    esc = await s.get(Escalation, esc_id)
    if esc is None or esc.state not in ("grouping", "active", "exhausted"):
        return
    alert = await s.get(Alert, esc.alert_id)
    route = next((r for r in config.routes if r.name == esc.route), None)
    esc.state = "acknowledged"
    remind = (alert is not None and route is not None and alert.severity in REMIND_SEVERITIES
              and route.reminder_min > 0)
    esc.next_ms = now + int(route.reminder_min * 60_000) if remind and route else None


async def acknowledge(
    store: Store, config: NotifyConfig, alert_id: int, person: str, how: str, note: str, now: int,
) -> AckResult:
    """A duty officer took the alert (and the alerts paged with it): record who, when, how; stop paging."""
    if how not in ACK_HOWS:
        raise ValueError(f"unknown acknowledgement {how!r}")
    for attempt in range(3):
        try:
            return await _acknowledge(store, config, alert_id, person, how, note, now)
        except StaleDataError:
            if attempt == 2:
                raise
            log.info("escalation of alert %s moved during an acknowledgement; trying again", alert_id)
    raise AssertionError("unreachable")


async def _acknowledge(
    store: Store, config: NotifyConfig, alert_id: int, person: str, how: str, note: str, now: int,
) -> AckResult:
    async with store.session() as s, s.begin():
        member = await s.get(EscalationMember, alert_id)
        ids = [alert_id]
        if member is not None:
            ids = list((await s.scalars(
                select(EscalationMember.alert_id).where(EscalationMember.escalation_id == member.escalation_id)
            )).all())
        leader = await s.get(Alert, alert_id)
        already = leader.acknowledged_by if leader is not None and leader.state == "acknowledged" else ""
        for aid in ids:
            await store.audit(s, person, f"notify_{how}", f"alert:{aid}", how=how, note=note, via="ack-link",
                              at_ms=now)
        await s.execute(
            update(Alert).where(Alert.id.in_(ids), Alert.state == "firing")
            .values(state="acknowledged", acknowledged_ms=now, acknowledged_by=person)
        )
        if member is not None:
            await stop_escalation(s, config, member.escalation_id, now)
    return AckResult(ids, already)


def alert_dict(alert: Alert) -> dict[str, Any]:
    return {c.name: getattr(alert, c.name) for c in Alert.__table__.columns}
