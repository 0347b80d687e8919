"""Shift handover: whoever comes on duty in a group is briefed on every open paged alert, worst first.

The briefing (「交接班」) carries acknowledge links for the alerts nobody has taken yet.
Briefings are keyed by minute, group and person, so a second worker or a restart in the
same minute does not brief twice; a restart exactly at the change may miss one.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from firewatch.contract.db import Alert, AlertState, Severity, Store
from firewatch.notify.config import NotifyConfig
from firewatch.notify.delivery import Message, MessageState
from firewatch.notify.escalations import Escalation, PagingState
from firewatch.notify.paging import Pager
from firewatch.notify.roster import Duty, DutyGroup, on_duty
from firewatch.notify.templates import Purpose, render_handover

DUTY_REUSE_MS = 5_000
"""A fire's first page uses who was on duty at the last tick (at most this old) instead of asking the store."""
BRIEFED = (PagingState.ACTIVE, PagingState.EXHAUSTED, PagingState.ACKNOWLEDGED)
"""Escalations whose alerts a briefing lists: someone was paged for them."""


class Handover:
    """Remembers who was on duty at the last tick, to see who came on since."""

    def __init__(self, store: Store, config: NotifyConfig, pager: Pager, lock: asyncio.Lock) -> None:
        self.store = store
        self.config = config
        self.pager = pager
        self._lock = lock
        self._duty: Duty | None = None
        """Who was on duty at the last tick; None until the first tick after a start."""

    def recent(self, now: int) -> Duty | None:
        """Who was on duty at the last tick, if that is at most `DUTY_REUSE_MS` ago."""
        duty = self._duty
        return duty if duty is not None and 0 <= now - duty.at_ms < DUTY_REUSE_MS else None

    async def briefings(self, now: int) -> list[Message]:
        """At a shift change, the officers coming on duty get the open alerts: unacknowledged ones with their links."""
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
                .where(Escalation.state.in_(BRIEFED), Alert.state != AlertState.RESOLVED)
                .order_by(Alert.severity != Severity.FIRE, Alert.severity != Severity.CRITICAL, Alert.started_ms)
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
                        [(a, self.pager.signer.page_url(self.pager.claim(a.id, person.id, now))
                          if a.state == AlertState.FIRING else "") for a in alerts],
                        language, self.config.zone,
                    )
                    held = worst.severity != Severity.FIRE and await self.pager.over_limit(s, person.id, now)
                    for n, url in enumerate(person.channels):
                        key = f"handover:{now // 60_000}:{group}:{person.id}:{n}"
                        if (await s.scalars(select(Message.id).where(Message.key == key))).first() is None:
                            msg = Message(
                                key=key, escalation_id=0, alert_id=0, person_id=person.id, channel=url,
                                purpose=Purpose.HANDOVER.value, severity=worst.severity, title=text.title,
                                body=text.body, state=MessageState.HELD if held else MessageState.PENDING,
                                created_ms=now,
                            )
                            s.add(msg)
                            written.append(msg)
            await s.flush()
            return [m for m in written if m.state == MessageState.PENDING]
