"""Hazard work orders: opening them, moving them through their states, and verifying from the data.

Verification asks the platform's own records, never the assignee's word: an order
opened from an alert may be reported fixed only when no alert of its kind stands on
the device, and closes only once the condition has stayed cleared for
`verify_clear_h` (the fault cleared, the pressure back above its floor).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from firewatch.contract.db import Alert, AlertState, AuditEntry, Store
from firewatch.supervision.config import SupervisionConfig
from firewatch.supervision.models import HazardOrder
from firewatch.supervision.states import (
    CENTER,
    Action,
    HazardCategory,
    HazardSeverity,
    HazardState,
    MoveError,
    move,
)

C = HazardCategory
SOURCE_RULES: dict[HazardCategory, tuple[str, ...]] = {
    C.FAULT_UNREPAIRED: ("fault", "fault_unrepaired"),
    C.SHIELDED: ("shield_left_on",),
    C.PRESSURE_LOW: ("pressure_low",),
    C.OFFLINE: ("offline",),
    C.DUTY_CHECK: ("duty_check_missed",),
}
"""Which alert rules stand for each hazard the platform opens by itself."""
FALSE_ALARM_RULE = "fire"
SEVERITY: dict[HazardCategory, HazardSeverity] = {
    C.PRESSURE_LOW: HazardSeverity.MAJOR,
    C.FAULT_UNREPAIRED: HazardSeverity.GENERAL,
    C.SHIELDED: HazardSeverity.GENERAL,
    C.OFFLINE: HazardSeverity.GENERAL,
    C.FALSE_ALARMS: HazardSeverity.GENERAL,
    C.DUTY_CHECK: HazardSeverity.GENERAL,
    C.PUBLIC: HazardSeverity.GENERAL,
}
"""Fire water below its floor leaves a building without its hydrants: major (重大); the rest general."""
OPEN_ALERT = (AlertState.FIRING, AlertState.ACKNOWLEDGED)
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Acted:
    order: HazardOrder
    before: HazardState


async def still_failing(
    s: AsyncSession, config: SupervisionConfig, order: HazardOrder, now_ms: int, closing: bool
) -> str | None:
    """Why the data says the hazard is not fixed, or None. `closing` also asks for time cleared."""
    category = HazardCategory(order.category)
    if not order.device_id:
        return None
    if category is C.FALSE_ALARMS:
        n = await false_alarms(s, order.device_id, now_ms)
        limit = config.hazards.false_alarms_per_day
        return (f"设备 {order.device_id} 近24小时误报 {n} 次 (device {order.device_id} false-alarmed {n} times "
                f"in the last 24 h)") if n > limit else None
    rules = SOURCE_RULES.get(category)
    if not rules:
        return None
    base = select(Alert).where(Alert.device_id == order.device_id, Alert.rule.in_(rules))
    open_alert = (
        await s.scalars(base.where(Alert.state.in_(OPEN_ALERT)).order_by(Alert.started_ms).limit(1))
    ).first()
    if open_alert is not None:
        return (f"设备 {order.device_id} 仍在报告{open_alert.rule}，隐患未消除 (device {order.device_id} still "
                f"reports {open_alert.rule}: alert {open_alert.id}, {open_alert.summary or open_alert.rule})")
    if not closing:
        return None
    cleared = await s.scalar(
        select(func.max(Alert.resolved_ms)).where(
            Alert.device_id == order.device_id, Alert.rule.in_(rules)
        )
    )
    need = int(config.verify_clear_h * 3_600_000)
    if cleared is not None and now_ms - cleared < need:
        minutes = (now_ms - cleared) / 60000
        return (f"设备 {order.device_id} 恢复正常仅 {minutes:.0f} 分钟，需持续 {config.verify_clear_h:g} 小时方可闭环 "
                f"(device {order.device_id} has been clear for {minutes:.0f} min; closing needs "
                f"{config.verify_clear_h:g} h clear)")
    return None


async def false_alarms(s: AsyncSession, device_id: str, now_ms: int) -> int:
    """Fire alarms of the device in the last 24 h that were reset and not judged probable."""
    return int(
        await s.scalar(
            select(func.count()).select_from(Alert).where(
                Alert.device_id == device_id,
                Alert.rule == FALSE_ALARM_RULE,
                Alert.state == AlertState.RESOLVED,
                Alert.probable.is_(False),
                Alert.started_ms > now_ms - DAY_MS,
                Alert.started_ms <= now_ms,
            )
        )
        or 0
    )


async def act(
    store: Store,
    config: SupervisionConfig,
    order_id: int,
    action: Action,
    actor: str,
    by: str,
    now_ms: int,
    note: str = "",
    photos: tuple[str, ...] = (),
    unit_id: int | None = None,
) -> Acted:
    """Move an order, audited with who, note and photos; MoveError when the state or the data forbid it.

    `unit_id` is required by a dispatch of an order that has no unit yet (a public report).
    """
    async with store.session() as s, s.begin():
        order = await s.get(HazardOrder, order_id, with_for_update=True)
        if order is None:
            raise LookupError(f"hazard order {order_id}")
        before = HazardState(order.state)
        after = before if action is Action.NOTE else move(order.state, action, by)
        if action is Action.DISPATCH:
            if unit_id is None and order.unit_id is None:
                raise MoveError("dispatching needs the unit to send the order to")
            order.unit_id = unit_id if unit_id is not None else order.unit_id
            order.deadline_ms = now_ms + config.deadline_ms(order.severity)
        if action in (Action.REPORT_FIXED, Action.APPROVE):
            reason = await still_failing(s, config, order, now_ms, closing=action is Action.APPROVE)
            if reason:
                raise MoveError(f"refused 不予通过: {reason}")
        if action is Action.REOPEN:
            order.deadline_ms = now_ms + config.deadline_ms(order.severity)
            order.escalated_ms = None
            order.closed_ms = None
        order.state = after
        if after is HazardState.CLOSED:
            order.closed_ms = now_ms
        if photos:
            order.photos = [*order.photos, *photos]
        if by == CENTER and note and action in (Action.APPROVE, Action.REJECT, Action.DISPATCH):
            order.outcome = note
        await store.audit(s, actor, str(action), f"hazard:{order.id}", before=str(before),
                          after=str(after), note=note, photos=list(photos), at=now_ms)
    return Acted(order, before)


def step_at(e: AuditEntry) -> int:
    """When an order's step happened at the supervisor's clock (event time in a simulated month),
    which `act` records beside the audit row's own wall-clock time."""
    return int(e.detail.get("at", e.at_ms))


async def history(store: Store, order_id: int) -> list[AuditEntry]:
    async with store.session() as s:
        q = select(AuditEntry).where(AuditEntry.subject == f"hazard:{order_id}").order_by(AuditEntry.id)
        return list((await s.scalars(q)).all())
