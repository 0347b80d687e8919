"""The 119 hand-off: a fire someone confirmed real goes to the fire brigade's command center at once.

GB 50440 asks a monitoring center to pass a confirmed fire to the 119 command center
within 3 s. A confirmation is an audit row like every other alert change: an operator's
真实火警 in the console (`resolve` with outcome `real_fire`) or a duty officer's 真实火警 on
the phone page (`notify_real_fire`). notify reads it on the trail, records one hand-off
message per alert (key `handoff:{id}`, created at the moment of the confirmation, so a
second notify or a re-read hands nothing off twice) and sends it to
`[notify.fire_brigade] url` with its own short timeout and quick retries. The dispatcher
writes `handed_to_119` (with `elapsed_ms` from the confirmation) or `handoff_failed` into
the audit trail, which the console shows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from firewatch.contract.db import Alert, Device, Store
from firewatch.notify.acknowledge import AckKind
from firewatch.notify.config import NotifyConfig
from firewatch.notify.delivery import HANDED_OFF, HANDOFF_FAILED, Message, MessageState
from firewatch.notify.paging import alert_dict
from firewatch.notify.roster import Person
from firewatch.notify.templates import TEXTS, Purpose, render

CONFIRM_ON_PHONE = f"notify_{AckKind.REAL_FIRE}"
__all__ = ["CONFIRM_ON_PHONE", "HANDED_OFF", "HANDOFF_FAILED", "confirms", "record"]


def confirms(action: str, detail: dict[str, Any]) -> bool:
    """This audit row says someone confirmed the fire is real."""
    return action == CONFIRM_ON_PHONE or (action == "resolve" and detail.get("outcome") == "real_fire")


async def record(store: Store, config: NotifyConfig, alert: Alert, by: str, at_ms: int) -> list[Message]:
    """The hand-off message for a confirmed alert, once per alert; none when no 119 side is set."""
    url = config.fire_brigade.url
    if not url:
        return []
    key = f"handoff:{alert.id}"
    try:
        async with store.session() as s, s.begin():
            if await s.scalar(select(Message.id).where(Message.key == key)) is not None:
                return []
            device = await s.get(Device, alert.device_id) if alert.device_id else None
            who = await s.get(Person, by)
            text = render(alert, Purpose.HANDOFF, config.language, config.zone,
                          address=device.address if device else "")
            at = datetime.fromtimestamp(at_ms / 1000, config.zone).strftime("%Y-%m-%d %H:%M:%S")
            confirmed = TEXTS[config.language]["confirmed"].format(by=(who.name if who else "") or by, at=at)
            msg = Message(
                key=key, escalation_id=0, alert_id=alert.id, person_id="", channel=url,
                purpose=Purpose.HANDOFF.value, severity=alert.severity, title=text.title,
                body=f"{confirmed}\n{text.body}", link="", actions=[], alert=alert_dict(alert),
                state=MessageState.PENDING, created_ms=at_ms,
            )
            s.add(msg)
    except IntegrityError:  # another notify stage recorded it first
        return []
    return [msg]
