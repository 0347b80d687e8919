"""The paging state machine: open, group, step, remind and all-clear an escalation, recording its messages.

Every transition is one transaction that moves the `Escalation` row (see
`notify.escalations` for the states) and records the messages it causes
(`notify.delivery.Message`, each under an idempotency key), so a transition
replayed after a restart or a second look at the same change finds its work done
and records nothing twice. Sending is not done here: the caller hands the
returned pending messages to the dispatcher.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from firewatch.contract.db import Alert, AlertState, Device, Severity, Store
from firewatch.notify.acklink import AckSigner, Claim
from firewatch.notify.acknowledge import AckKind
from firewatch.notify.config import NotifyConfig, Route
from firewatch.notify.delivery import Message, MessageState
from firewatch.notify.escalations import (
    JOINABLE,
    OPEN,
    Escalation,
    EscalationMember,
    PagingState,
    stop_paging,
)
from firewatch.notify.metrics import NotifyMetrics
from firewatch.notify.roster import Duty, Person, resolve_targets
from firewatch.notify.route import Router, covering_silence
from firewatch.notify.templates import Purpose, render, word

log = logging.getLogger(__name__)

NOBODY_REACHABLE = "nobody_reachable"
"""The audit action of a step that reached nobody and paged the fallback instead."""
SILENCE_RECHECK_MS = 60_000
"""A silence set while an escalation runs pauses it; paging goes on this soon after the silence ends."""


class Pager:
    """Moves escalations through their states; shared by everything that pages (one lock per process)."""

    def __init__(
        self, store: Store, config: NotifyConfig, clock: Callable[[], int], metrics: NotifyMetrics,
        lock: asyncio.Lock, recent_duty: Callable[[int], Duty | None],
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.metrics = metrics
        self.router = Router(config)
        self.signer = AckSigner(config.secret, config.public_url)
        self._lock = lock
        self._recent_duty = recent_duty
        """Who was on duty a moment ago (None when that is too old), saving a fire's first page the roster queries."""

    async def open(self, alert: Alert, silenced: bool, explain: bool) -> list[Message]:
        """Start or join an escalation for a firing alert; a fire's first step is recorded in the same transaction.

        An update of an alert that was not paged is routed again (its inhibitor may be gone);
        only the first decision is audited (`explain`).
        """
        now = self.clock()
        async with self._lock, self.store.session() as s, s.begin():
            stored = await s.get(Alert, alert.id)
            if stored is None or stored.state != AlertState.FIRING:
                return []
            alert = stored
            member = await s.get(EscalationMember, alert.id)
            if member is not None:
                esc = await s.get(Escalation, member.escalation_id)
                if esc is None or not (esc.state == PagingState.GROUPING and alert.severity == Severity.FIRE):
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
            grouping = alert.severity != Severity.FIRE and route.group_wait_s > 0
            if grouping:
                esc = (await s.scalars(
                    select(Escalation).where(Escalation.group_key == key, Escalation.state.in_(JOINABLE))
                )).first()
                if esc is not None:
                    s.add(EscalationMember(alert_id=alert.id, escalation_id=esc.id))
                    return []
            esc = Escalation(
                alert_id=alert.id, route=route.name, group_key=key, created_ms=now,
                state=PagingState.GROUPING if grouping else PagingState.ACTIVE,
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

    async def step(self, esc_id: int) -> list[Message]:
        """The escalation's timer came due: page the next step, remind, pause for a silence, or give up."""
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
            if alert.state == AlertState.ACKNOWLEDGED and esc.state != PagingState.ACKNOWLEDGED:
                await stop_paging(s, self.config, esc.id, now)
                return []
            if esc.state == PagingState.ACKNOWLEDGED:
                return await self._remind(s, esc, alert, route, now)
            if esc.state in JOINABLE and await covering_silence(s, alert, now) is not None:
                esc.next_ms = now + SILENCE_RECHECK_MS
                return []
            if esc.state == PagingState.EXHAUSTED:
                esc.next_ms = None
                await self.store.audit(s, "notify", "not_acknowledged", f"alert:{alert.id}", rounds=route.repeat)
                return []
            return await self._page(s, esc, alert, route, now)

    async def acknowledged(self, alert_id: int) -> None:
        async with self.store.session() as s:
            member = await s.get(EscalationMember, alert_id)
        if member is not None:
            await self.acknowledged_escalation(member.escalation_id)

    async def acknowledged_escalation(self, esc_id: int) -> None:
        async with self._lock, self.store.session() as s, s.begin():
            await stop_paging(s, self.config, esc_id, self.clock())

    async def resolved(self, alert_id: int) -> list[Message]:
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
            if any(st != AlertState.RESOLVED for st in states):
                return []
            alert = await s.get(Alert, esc.alert_id)
            esc.state, esc.next_ms = PagingState.RESOLVED, None
            told = (await s.execute(
                select(Message.person_id, Message.channel)
                .where(Message.escalation_id == esc.id, Message.state == MessageState.SENT).distinct()
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

    def claim(self, alert_id: int, person_id: str, now: int) -> Claim:
        """What an acknowledge link for this person and alert says, valid `link_expiry_h` from now."""
        return Claim(alert_id, person_id, now + int(self.config.link_expiry_h * 3_600_000))

    async def over_limit(self, s: AsyncSession, person_id: str, now: int) -> bool:
        """The person got `rate_limit.per_person` messages within the window: hold back the next non-fire one."""
        since = now - int(self.config.rate_limit.window_s * 1000)
        recent = (await s.scalars(
            select(Message.id).where(Message.person_id == person_id, Message.created_ms > since,
                                     Message.state != MessageState.HELD)
        )).all()
        return len(recent) >= self.config.rate_limit.per_person

    async def _join_parent(self, s: AsyncSession, alert: Alert) -> None:
        """An alert paged on its own whose parent (a water main) is now known joins the parent's messages."""
        if alert.parent_id is None or alert.severity == Severity.FIRE:
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
            esc.state, esc.next_ms = PagingState.MERGED, None
        elif esc.alert_id == member.alert_id:
            esc.alert_id = left

    async def _absorb_children(self, s: AsyncSession, parent_id: int, esc: Escalation) -> None:
        """Alerts paged before their parent (a water main) was known count in the parent's messages from now on."""
        rows = (await s.execute(
            select(EscalationMember, Escalation)
            .join(Escalation, Escalation.id == EscalationMember.escalation_id)
            .join(Alert, Alert.id == EscalationMember.alert_id)
            .where(Alert.parent_id == parent_id, Alert.severity != Severity.FIRE, Escalation.id != esc.id,
                   Escalation.state.in_(JOINABLE))
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
                old.state, old.next_ms = PagingState.MERGED, None
            elif old.alert_id in moved:
                old.alert_id = left

    async def _open_leader(self, s: AsyncSession, esc: Escalation) -> Alert | None:
        """The alert the messages are about; when it resolved, an open one of its group takes its place."""
        alert = await s.get(Alert, esc.alert_id)
        if alert is not None and alert.state != AlertState.RESOLVED:
            return alert
        other = (await s.scalars(
            select(Alert).join(EscalationMember, EscalationMember.alert_id == Alert.id)
            .where(EscalationMember.escalation_id == esc.id, Alert.state != AlertState.RESOLVED)
            .order_by(Alert.severity != Severity.FIRE, Alert.severity != Severity.CRITICAL, Alert.id)
        )).first()
        if other is not None:
            esc.alert_id = other.id
        return other

    async def _page(
        self, s: AsyncSession, esc: Escalation, alert: Alert, route: Route, now: int, members: int | None = None,
    ) -> list[Message]:
        step = route.steps[esc.step % len(route.steps)]
        people = await resolve_targets(s, step.notify, now, self.config.zone, self._recent_duty(now))
        pairs = self._pairs(esc, people, step.notify)
        if not pairs:
            pairs = await self._fallback(s, esc, alert, route, step.notify, now)
        prefix = f"esc{esc.id}:c{esc.cycle}:s{esc.step}"
        sent = await self._write(s, esc, alert, Purpose.PAGE, prefix, pairs, now, members)
        esc.state = PagingState.ACTIVE
        esc.next_ms = now + int(step.wait_min * 60_000)
        esc.step += 1
        if esc.step >= len(route.steps):
            esc.step, esc.cycle = 0, esc.cycle + 1
            if esc.cycle >= route.repeat:
                esc.state = PagingState.EXHAUSTED
        return sent

    async def _fallback(
        self, s: AsyncSession, esc: Escalation, alert: Alert, route: Route, targets: list[str], now: int,
    ) -> list[tuple[str, str, str]]:
        """A step that reaches nobody pages the route's fallback, every member of it, and says so.

        The audit row (`nobody_reachable`) is what the console's 无人可达 banner shows until someone
        acknowledges; the escalation's timers go on as if the step had reached someone.
        """
        fallback = self.config.fallback_of(route)
        people = await resolve_targets(s, fallback, now, self.config.zone, always_on=True)
        pairs = self._pairs(esc, people, fallback)
        self.metrics.nobody_on_duty.inc()
        log.warning("escalation %s: nobody reachable through %s; paging the fallback %s (%d channels)",
                    esc.id, targets, fallback, len(pairs))
        await self.store.audit(
            s, "notify", NOBODY_REACHABLE, f"alert:{alert.id}", step=esc.step, cycle=esc.cycle,
            targets=targets, fallback=fallback, paged=list(dict.fromkeys(pid for pid, _, _ in pairs if pid)),
        )
        return pairs

    async def _remind(self, s: AsyncSession, esc: Escalation, alert: Alert, route: Route, now: int) -> list[Message]:
        people: list[Person] = []
        taker = await s.get(Person, alert.acknowledged_by) if alert.acknowledged_by else None
        if taker is not None:
            people = [taker]
        else:
            people = await self._told(s, esc.id)
        sent = await self._write(
            s, esc, alert, Purpose.REMINDER, f"esc{esc.id}:r{esc.reminders}", self._pairs(esc, people, []), now
        )
        esc.reminders += 1
        esc.next_ms = now + int(route.reminder_min * 60_000)
        return sent

    async def _told(self, s: AsyncSession, esc_id: int) -> list[Person]:
        ids = (await s.scalars(
            select(Message.person_id).where(Message.escalation_id == esc_id, Message.state == MessageState.SENT,
                                            Message.person_id != "").distinct()
        )).all()
        return [p for p in [await s.get(Person, i) for i in ids] if p is not None]

    def _pairs(self, esc: Escalation, people: list[Person], targets: list[str]) -> list[tuple[str, str, str]]:
        """(person, channel URL, language) for each of the people's channels and each `channel:` target."""
        pairs = [(p.id, url, p.language) for p in people for url in p.channels]
        for t in targets:
            kind, _, name = t.partition(":")
            if kind == "channel":
                url = self.config.channels.get(name)
                if url is None:
                    log.warning("escalation %s: no channel named %r in [notify.channels]", esc.id, name)
                else:
                    pairs.append(("", url, ""))
        return pairs

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
                claim = self.claim(alert.id, pid, now)
                link = self.signer.page_url(claim)
                actions = [(word(language, a), self.signer.action_url(claim, a)) for a in (AckKind.ACK, AckKind.ON_WAY)]
            text = render(
                alert, purpose, language, self.config.zone,
                address=device.address if device else "", link=link, more=max(0, members - 1),
            )
            state = MessageState.PENDING
            if pid and alert.severity != Severity.FIRE and await self.over_limit(s, pid, now):
                state = MessageState.HELD
            msg = Message(
                key=key, escalation_id=esc.id, alert_id=alert.id, person_id=pid, channel=url,
                purpose=purpose.value, severity=alert.severity, title=text.title, body=text.body,
                link=link, actions=actions, alert=snapshot, state=state, created_ms=now,
            )
            s.add(msg)
            written.append(msg)
        await s.flush()
        return [m for m in written if m.state == MessageState.PENDING]


def alert_dict(alert: Alert) -> dict[str, Any]:
    """Every column of the alert, for a webhook's `alert` field."""
    return {c.name: getattr(alert, c.name) for c in Alert.__table__.columns}
