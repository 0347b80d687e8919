"""Routing: which route an alert takes, and whether it is paged at all.

An alert is not paged while an inhibiting alert stands for it (the panel is
offline, so its points' faults say nothing new), or while its parent (a
district water-main alert) is open and is paged instead. A fire is never
inhibited and never folded into a parent: every panel fire alarm reaches a
person. Whether a silence covers a new alert is judged by the lifecycle
(`AlertChange.silenced`); a silence set while an escalation runs pauses it
(`covering_silence`).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from firewatch.contract.db import OPEN_STATES, Alert, Severity, Silence
from firewatch.notify.config import MATCH_FIELDS, Inhibit, NotifyConfig, Route


@dataclass(frozen=True, slots=True)
class Decision:
    route: Route | None
    suppressed_by: str = ""
    """`alert:12` (an inhibiting alert) or `no route`; empty when the alert is paged."""
    parent_id: int | None = None
    """Set when an open parent alert stands for this one: it joins the parent's message."""


class Router:
    def __init__(self, config: NotifyConfig) -> None:
        self.config = config

    def match(self, alert: Alert) -> Route | None:
        """The first route whose lists all contain the alert's value (an empty list matches all)."""
        for route in self.config.routes:
            if all(not getattr(route, f) or getattr(alert, f) in getattr(route, f)
                   for f in MATCH_FIELDS):
                return route
        return None

    def route(self, name: str) -> Route | None:
        return next((r for r in self.config.routes if r.name == name), None)

    async def decide(self, session: AsyncSession, alert: Alert) -> Decision:
        route = self.match(alert)
        if route is None:
            return Decision(None, "no route")
        if alert.severity == Severity.FIRE:
            return Decision(route)
        for rule in self.config.inhibit:
            source = await _inhibitor(session, alert, rule)
            if source is not None:
                return Decision(route, f"alert:{source.id}")
        if alert.parent_id is not None:
            parent = await session.get(Alert, alert.parent_id)
            if parent is not None and parent.state in OPEN_STATES:
                return Decision(route, parent_id=parent.id)
        return Decision(route)

    @staticmethod
    def group_key(route: Route, alert: Alert) -> str:
        """Alerts with one key share a message; a fire or an ungrouped route gets a key of its own."""
        if alert.severity == Severity.FIRE or route.group_wait_s == 0 or not route.group_by:
            return f"{route.name}|alert:{alert.id}"
        return route.name + "|" + "|".join(f"{f}={getattr(alert, f)}" for f in route.group_by)


async def _inhibitor(session: AsyncSession, alert: Alert, rule: Inhibit) -> Alert | None:
    if rule.target_kind and alert.kind not in rule.target_kind:
        return None
    if not any(fnmatchcase(alert.rule, p) for p in rule.target_rules):
        return None
    q = select(Alert).where(Alert.state.in_(OPEN_STATES), Alert.id != alert.id)
    for field in rule.equal:
        q = q.where(getattr(Alert, field) == getattr(alert, field))
    for source in (await session.scalars(q)).all():
        if any(fnmatchcase(source.rule, p) for p in rule.source_rules):
            return source
    return None


def covers(silence: Silence, alert: Alert, now_ms: int) -> bool:
    """The silence mutes this alert now (an empty field matches anything): `covering_silence` without the store."""
    return (
        silence.starts_ms <= now_ms < silence.ends_ms
        and (not silence.device_id or silence.device_id == alert.device_id)
        and (not silence.site or silence.site == alert.site)
        and (not silence.district or silence.district == alert.district)
        and (not silence.rule or silence.rule == alert.rule)
    )


async def covering_silence(session: AsyncSession, alert: Alert, now_ms: int) -> Silence | None:
    """A silence covering `alert` now (an empty field matches anything), for escalations already running."""
    q = select(Silence).where(
        Silence.starts_ms <= now_ms,
        Silence.ends_ms > now_ms,
        or_(Silence.device_id == "", Silence.device_id == alert.device_id),
        or_(Silence.site == "", Silence.site == alert.site),
        or_(Silence.district == "", Silence.district == alert.district),
        or_(Silence.rule == "", Silence.rule == alert.rule),
    ).limit(1)
    return (await session.scalars(q)).first()
