"""Acknowledge: a duty officer took an alert (a tap on the link, an ntfy button, the console).

The api calls this; it writes the alert's state, an audit row per alert of the
message, and stops the escalation in one transaction, so the console and the
alerting lifecycle hear of it through the audit trail like of any other change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.orm.exc import StaleDataError

from firewatch.contract.db import Alert, AlertState, Store
from firewatch.notify.config import NotifyConfig
from firewatch.notify.escalations import EscalationMember, stop_paging

log = logging.getLogger(__name__)


class AckKind(StrEnum):
    """How someone took an alert; the audit action is `notify_{kind}`."""

    ACK = "ack"
    ON_WAY = "on_way"
    FALSE_ALARM = "false_alarm"
    REAL_FIRE = "real_fire"
    """The officer on the spot confirms the fire: acknowledged, and handed to 119 (`notify.handoff`)."""


@dataclass(frozen=True, slots=True)
class AckResult:
    alert_ids: list[int]
    already_by: str = ""
    """Set when the alert was acknowledged before this tap, by this person."""


async def acknowledge(
    store: Store, config: NotifyConfig, alert_id: int, person: str, how: str, note: str, now: int,
) -> AckResult:
    """Take the alert and the alerts paged with it: record who, when, how; stop paging."""
    try:
        kind = AckKind(how)
    except ValueError:
        raise ValueError(f"unknown acknowledgement {how!r}") from None
    for attempt in range(3):
        try:
            return await _acknowledge(store, config, alert_id, person, kind, note, now)
        except StaleDataError:
            if attempt == 2:
                raise
            log.info("escalation of alert %s moved during an acknowledgement; trying again", alert_id)
    raise AssertionError("unreachable")


async def _acknowledge(
    store: Store, config: NotifyConfig, alert_id: int, person: str, how: AckKind, note: str, now: int,
) -> AckResult:
    async with store.session() as s, s.begin():
        member = await s.get(EscalationMember, alert_id)
        ids = [alert_id]
        if member is not None:
            ids = list((await s.scalars(
                select(EscalationMember.alert_id).where(EscalationMember.escalation_id == member.escalation_id)
            )).all())
        leader = await s.get(Alert, alert_id)
        already = leader.acknowledged_by if leader is not None and leader.state == AlertState.ACKNOWLEDGED else ""
        for aid in ids:
            await store.audit(s, person, f"notify_{how}", f"alert:{aid}", how=how.value, note=note,
                              via="ack-link", at_ms=now)
        await s.execute(
            update(Alert).where(Alert.id.in_(ids), Alert.state == AlertState.FIRING)
            .values(state=AlertState.ACKNOWLEDGED, acknowledged_ms=now, acknowledged_by=person)
        )
        if member is not None:
            await stop_paging(s, config, member.escalation_id, now)
    return AckResult(ids, already)


async def paged_with(store: Store, alert_id: int) -> int:
    """How many alerts share the alert's messages (itself included; 0 when it was never paged)."""
    async with store.session() as s:
        member = await s.get(EscalationMember, alert_id)
        if member is None:
            return 0
        return (await s.scalar(
            select(func.count()).where(EscalationMember.escalation_id == member.escalation_id)
        )) or 0
