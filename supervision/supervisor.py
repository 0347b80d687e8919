"""The supervisor: follows the alerts through the store, opens hazard orders, escalates overdue ones.

It runs inside the api process (one task beside the live feed): it needs only the
store, and the api is already the process every console and phone talks to. Two api
processes may both run it: an order's `source_key` is unique and an escalation is
claimed by a guarded UPDATE, so nothing is opened or sent twice.

Its clock is event time by default (supervision/clock.py: the newest alert or reading
the platform has stored), so a fault left unrepaired 24 h in a replayed month opens
its order at the same event time as it did live.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import and_, exists, false, func, or_, select, update

from firewatch.contract.db import OPEN_STATES, Alert, AlertState, ChangeKind, Severity, Store
from firewatch.contract.influx import Influx
from firewatch.contract.rules import HAZARD, HAZARD_KIND, LABELS_ZH, rule_labels, summary_zh
from firewatch.supervision.clock import Clock
from firewatch.supervision.config import SupervisionConfig
from firewatch.supervision.hazards import (
    DAY_MS,
    FALSE_ALARM_RULE,
    OPEN_ALERT,
    SEVERITY,
    SOURCE_RULES,
)
from firewatch.supervision.indicators import TZ
from firewatch.supervision.links import HazardLinks
from firewatch.supervision.messages import Messenger, Outgoing
from firewatch.supervision.models import Contact, HazardOrder, MaintenanceCompany, Unit, UnitSite
from firewatch.supervision.states import ASSIGNEE_STATES, HazardCategory, HazardState

log = logging.getLogger(__name__)
ACTOR = "supervision"
OVERDUE = HAZARD[0]
RULE_LABELS = rule_labels()
LABEL = {
    HazardCategory.FAULT_UNREPAIRED: "故障超时未修复",
    HazardCategory.SHIELDED: "点位长期屏蔽",
    HazardCategory.PRESSURE_LOW: "消防水压长时间低于下限",
    HazardCategory.OFFLINE: "设备离线超过一天",
    HazardCategory.FALSE_ALARMS: "误报过多",
    HazardCategory.DUTY_CHECK: "消防控制室查岗未应答",
}
"""An order's title begins with its kind in Chinese: titles are printed in the monthly reports."""


async def every(interval_s: float, step: Callable[[], Awaitable[object]], what: str) -> None:
    """`step` again and again, `interval_s` apart, until cancelled: a failed pass is logged and tried again
    (the store or InfluxDB away for a while must not end the api's supervision)."""
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; retrying in %s s", what, interval_s)
        await asyncio.sleep(interval_s)


class Supervisor:
    def __init__(
        self,
        store: Store,
        config: SupervisionConfig,
        messenger: Messenger,
        public_url: str,
        influx: Influx | None = None,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        links: HazardLinks | None = None,
    ) -> None:
        self.store = store
        self.links = links
        self.wall_ms = wall_ms
        self.config = config
        self.messenger = messenger
        self.public_url = public_url.rstrip("/")
        self.clock = Clock(store, influx, config.clock, wall_ms)
        self._telling: set[asyncio.Task[None]] = set()

    async def now(self) -> int:
        """The supervisor's clock (event time by default, see supervision/clock.py)."""
        return await self.clock.now()

    async def run(self) -> None:
        await every(self.config.interval_s, self.sweep, "supervision sweep")

    async def sweep(self) -> list[HazardOrder]:
        """One pass: open what has become a hazard, escalate what is overdue; returns the orders opened."""
        now = await self.now()
        opened = await self._open_from_alerts(now) + await self._open_false_alarms(now)
        for order in opened:
            await self.tell_assignees(order)
        await self._escalate(now)
        await self._settle_overdue(now)
        return opened

    async def _open_from_alerts(self, now: int) -> list[HazardOrder]:
        opened: list[HazardOrder] = []
        for category, rules in SOURCE_RULES.items():
            async with self.store.session() as s:
                q = select(Alert).where(
                    Alert.rule.in_(rules),
                    Alert.state.in_(OPEN_ALERT),
                    Alert.device_id != "",
                    Alert.started_ms <= now - self.config.hold_ms(category),
                    ~exists().where(HazardOrder.alert_id == Alert.id),
                    ~exists().where(and_(HazardOrder.device_id == Alert.device_id,
                                         HazardOrder.category == category,
                                         HazardOrder.state != HazardState.CLOSED)),
                )
                alerts = list((await s.scalars(q)).all())
            for a in alerts:
                order = await self._open(category, a.device_id, a.site, a.district, f"alert:{a.id}",
                                         a.id, a.started_ms + self.config.hold_ms(category),
                                         _title(category, a))
                if order is not None:
                    opened.append(order)
        return opened

    async def _open_false_alarms(self, now: int) -> list[HazardOrder]:
        limit = self.config.hazards.false_alarms_per_day
        async with self.store.session() as s:
            q = (
                select(Alert.device_id, func.min(Alert.site), func.min(Alert.district), func.count())
                .where(Alert.rule == FALSE_ALARM_RULE, Alert.state == AlertState.RESOLVED,
                       Alert.probable.is_(False), Alert.started_ms > now - DAY_MS,
                       Alert.started_ms <= now, Alert.device_id != "")
                .group_by(Alert.device_id)
                .having(func.count() > limit)
            )
            rows = (await s.execute(q)).all()
        opened = []
        for device_id, site, district, n in rows:
            order = await self._open(
                HazardCategory.FALSE_ALARMS, device_id, site, district,
                f"false_alarms:{device_id}:{now // DAY_MS}", None, now,
                f"{LABEL[HazardCategory.FALSE_ALARMS]}：{device_id} 24 小时内误报 {n} 次",
            )
            if order is not None:
                opened.append(order)
        return opened

    async def _open(
        self, category: HazardCategory, device_id: str, site: str, district: str, key: str,
        alert_id: int | None, at_ms: int, title: str,
    ) -> HazardOrder | None:
        """A new order, or a closed one of the same device and kind reopened; None if one stands."""
        severity = SEVERITY[category]
        async with self.store.session() as s, s.begin():
            if await s.scalar(select(HazardOrder.id).where(HazardOrder.source_key == key)):
                return None
            same = select(HazardOrder).where(
                HazardOrder.device_id == device_id, HazardOrder.category == category
            )
            if (await s.scalars(same.where(HazardOrder.state != HazardState.CLOSED).limit(1))).first():
                return None
            recent = (
                await s.scalars(
                    same.where(HazardOrder.state == HazardState.CLOSED,
                               HazardOrder.closed_ms >= at_ms - int(self.config.reopen_within_h * 3_600_000))
                    .order_by(HazardOrder.closed_ms.desc()).limit(1)
                )
            ).first()
            deadline = at_ms + self.config.deadline_ms(severity)
            if recent is not None:
                recent.state, recent.deadline_ms, recent.escalated_ms = HazardState.REOPENED, deadline, None
                recent.closed_ms, recent.source_key, recent.alert_id = None, key, alert_id
                await self.store.audit(s, "supervision", "reopen", f"hazard:{recent.id}", before="closed",
                                       after="reopened", note=f"隐患复现：{title}", at=at_ms)
                return recent
            unit_id = await s.scalar(select(UnitSite.unit_id).where(UnitSite.site == site)) if site else None
            order = HazardOrder(
                unit_id=unit_id, category=category, severity=severity, state=HazardState.DISPATCHED,
                source_key=key, alert_id=alert_id, device_id=device_id, site=site, district=district,
                title=title, opened_ms=at_ms, deadline_ms=deadline,
            )
            s.add(order)
            await s.flush()
            await self.store.audit(s, "supervision", "open", f"hazard:{order.id}", after="dispatched",
                                   category=str(category), severity=str(severity), source=key, at=at_ms)
        return order

    async def link(self, order: HazardOrder, role: str, person: str) -> str:
        """The person's one-tap link to the order (supervision/links.py), or the plain page without a signer."""
        if self.links is None:
            return f"{self.public_url}/m#hazard={order.id}"
        return await self.links.issue(order.id, role, person, self.wall_ms())

    def tell_later(self, order: HazardOrder) -> None:
        """Send an order the center opened, dispatched or reopened by hand to its people, off the request that
        did it (a slow channel must not hold the console's answer)."""
        task = asyncio.create_task(self.tell_assignees(order))
        self._telling.add(task)
        task.add_done_callback(self._telling.discard)

    async def tell_assignees(self, order: HazardOrder) -> None:
        """One message per person (the unit's contacts, the company's engineers, the company's office), each
        with a link signed for that person alone."""
        if order.unit_id is None:
            return
        async with self.store.session() as s:
            unit = await s.get(Unit, order.unit_id)
            company_contacts = (
                Contact.company_id == unit.company_id if unit and unit.company_id else false()
            )
            contacts = (
                await s.scalars(select(Contact).where(or_(Contact.unit_id == order.unit_id, company_contacts)))
            ).all()
            company = await s.get(MaintenanceCompany, unit.company_id) if unit and unit.company_id else None
        people = [("unit" if c.unit_id else "maintenance", c.name, c.channels) for c in contacts]
        if company:
            people.append(("maintenance", company.name, company.channels))
        deadline = datetime.fromtimestamp(order.deadline_ms / 1000, TZ).strftime("%Y-%m-%d %H:%M")
        sent = failed = 0
        for role, person, channels in people:
            if not channels:
                continue
            link = await self.link(order, role, person)
            body = f"{order.title}\n整改期限：{deadline}\n{link}"
            bad = await self.messenger.send(
                Outgoing(tuple(dict.fromkeys(channels)), f"隐患工单 #{order.id}", body, link))
            sent, failed = sent + len(channels) - len(bad), failed + len(bad)
        if sent or failed:
            async with self.store.session() as s, s.begin():
                await self.store.audit(s, "supervision", "dispatch_sent", f"hazard:{order.id}",
                                       sent=sent, failed=failed, at=await self.now())

    async def _escalate(self, now: int) -> None:
        """An order past its deadline while with the unit raises one `hazard_overdue` alert (kind `hazard`,
        with the unit's district and supervising department); notify routes it (`[[notify.routes]]` with
        `kind = ["hazard"]` and `district` or `department`), repeats and escalates it until someone
        acknowledges, and audits every send."""
        async with self.store.session() as s:
            q = select(HazardOrder).where(
                HazardOrder.state.in_(ASSIGNEE_STATES), HazardOrder.deadline_ms < now,
                HazardOrder.escalated_ms.is_(None),
            )
            overdue = list((await s.scalars(q)).all())
        for order in overdue:
            async with self.store.session() as s, s.begin():
                claimed = await s.execute(
                    update(HazardOrder)
                    .where(HazardOrder.id == order.id, HazardOrder.escalated_ms.is_(None))
                    .values(escalated_ms=now)
                )
                if not claimed.rowcount:
                    continue
                unit = await s.get(Unit, order.unit_id) if order.unit_id else None
                alert = Alert(
                    fingerprint=_overdue_fingerprint(order.id), rule=OVERDUE.name, kind=HAZARD_KIND,
                    severity=Severity.CRITICAL if order.severity == "major" else Severity.WARNING,
                    state=AlertState.FIRING, device_id=order.device_id, site=order.site,
                    district=unit.district if unit else order.district,
                    department=unit.department if unit else "",
                    summary=" · ".join(x for x in (
                        f"{LABELS_ZH[OVERDUE.label]} #{order.id} {unit.name if unit else order.site}: {order.title}",
                        unit.department if unit else "", OVERDUE.label) if x),
                    started_ms=order.deadline_ms, last_seen_ms=now,
                )
                s.add(alert)
                await s.flush()
                await self.store.audit(s, ACTOR, ChangeKind.FIRED, f"alert:{alert.id}", hazard=order.id)
                await self.store.audit(s, ACTOR, "escalate", f"hazard:{order.id}", alert=alert.id,
                                       overdue_min=(now - order.deadline_ms) // 60000,
                                       department=unit.department if unit else "", at=now)

    async def _settle_overdue(self, now: int) -> None:
        """An overdue alert resolves once its order is no longer with the unit (in review, closed), so notify
        stops escalating it; a reopened order that falls due again raises a new one."""
        async with self.store.session() as s, s.begin():
            rows = (await s.scalars(select(Alert).where(
                Alert.rule == OVERDUE.name, Alert.kind == HAZARD_KIND, Alert.state.in_(OPEN_STATES)))).all()
            for alert in rows:
                order = await s.get(HazardOrder, int(alert.fingerprint.split(":")[1]))
                if order is not None and order.state in ASSIGNEE_STATES and order.escalated_ms is not None:
                    continue
                alert.state, alert.resolved_ms, alert.last_seen_ms = AlertState.RESOLVED, now, now
                await self.store.audit(s, ACTOR, ChangeKind.RESOLVED, f"alert:{alert.id}",
                                       hazard=order.id if order else None, state=order.state if order else "")


def _overdue_fingerprint(order_id: int) -> str:
    return f"hazard:{order_id}:{OVERDUE.name}"


def _title(category: HazardCategory, alert: Alert) -> str:
    """`故障超时未修复：P-3 故障（1回路2号）`: the kind, the device and the alert said in Chinese."""
    point = f"（{alert.loop}回路{alert.point}号）" if alert.loop is not None and alert.point is not None else ""
    return f"{LABEL[category]}：{alert.device_id} {_said(alert)}{point}"


def _said(alert: Alert) -> str:
    """The alert in Chinese: `contract.rules.summary_zh`, or its rule's Chinese label alone where that keeps
    alerting's English summary (`1 point(s) for over 24 h`), which a monthly report must not print."""
    said = summary_zh(alert)
    label = RULE_LABELS.get(f"{alert.kind}.{alert.rule}")
    return label["zh"] if label and said == (alert.summary or alert.rule) else said
