"""Where alert changes go besides notify: InfluxDB's `alert` measurement and MQTT.

Both are consumers of the change feed. InfluxDB gets one point per change
(tags device_id, district, site, rule, severity; fields state, value,
threshold, score, probable, summary, change, alert_id) at the change's event
time, so Grafana can annotate panels with it; points that cannot be written
wait and are retried (the SQL store already holds the alert). MQTT gets the
change as JSON on `fire/v1/_alerts/{district}/{device_id}/{rule}` (QoS 1, not
retained) for other systems; district alerts use the device id `_district`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Protocol

import httpx
import orjson

from firewatch.alerting.changes import AlertChange, ChangeKind, Subscription
from firewatch.contract.influx import Influx, InfluxError
from firewatch.contract.kinds import ALERT_MEASUREMENT
from firewatch.contract.lineproto import line
from firewatch.contract.topics import alert_topic

log = logging.getLogger("alerting.outputs")
MAX_BACKLOG = 100_000
DISTRICT_DEVICE = "_district"
PUBLISH_TIMEOUT_S = 30.0
"""How long one change waits for the broker's PUBACK before it is logged as not published."""


def change_time(c: AlertChange) -> int:
    a = c.alert
    if c.kind == ChangeKind.RESOLVED and a.resolved_ms:
        return a.resolved_ms
    return a.started_ms if c.kind == ChangeKind.FIRED else a.last_seen_ms


def change_dict(c: AlertChange) -> dict[str, Any]:
    a = c.alert
    return {
        "change": c.kind, "audit_id": c.audit_id, "actor": c.actor, "silenced": c.silenced,
        "id": a.id, "fingerprint": a.fingerprint, "rule": a.rule, "severity": a.severity, "state": a.state,
        "kind": a.kind, "device_id": a.device_id, "district": a.district, "site": a.site, "zone": a.zone,
        "metric": a.metric, "value": a.value, "threshold": a.threshold, "unit": a.unit, "summary": a.summary,
        "probable": a.probable, "score": a.score, "reasons": a.reasons, "parent_id": a.parent_id,
        "started_ms": a.started_ms, "last_seen_ms": a.last_seen_ms, "resolved_ms": a.resolved_ms,
        "acknowledged_ms": a.acknowledged_ms, "acknowledged_by": a.acknowledged_by,
    }


def _float(v: float | None) -> float | None:
    """InfluxDB fixes a field's type at its first point: numbers are always floats here."""
    return None if v is None else float(v)


def change_line(c: AlertChange) -> str:
    a = c.alert
    tags = {"device_id": a.device_id, "district": a.district, "site": a.site, "rule": a.rule,
            "severity": a.severity}
    fields = {"state": a.state, "change": c.kind, "value": _float(a.value), "threshold": _float(a.threshold),
              "score": _float(a.score), "probable": a.probable, "summary": a.summary, "alert_id": a.id}
    return line(ALERT_MEASUREMENT, tags, fields, change_time(c))


class Publisher(Protocol):
    async def publish(self, topic: str, payload: bytes, qos: int = ..., retain: bool = ...) -> None: ...


async def to_mqtt(changes: Subscription, client: Publisher) -> None:
    """Publish every change; runs until cancelled.

    A change waits at most PUBLISH_TIMEOUT_S for the broker (the publisher reconnects meanwhile);
    then it is logged as not published, since the SQL store and the change feed already hold it.
    """
    async for c in changes:
        a = c.alert
        topic = alert_topic(a.district or "unknown", a.device_id or DISTRICT_DEVICE, a.rule)
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                await client.publish(topic, orjson.dumps(change_dict(c)), qos=1, retain=False)
        except Exception as exc:  # noqa: BLE001 - a broker hiccup must not stop the alerting service
            log.warning("could not publish alert %s on MQTT: %s", a.id, exc or exc.__class__.__name__)


async def to_influx(changes: Subscription, influx: Influx, interval_s: float = 0.5) -> None:
    """Write changes as points in batches; keeps (bounded) what InfluxDB refused for later."""
    backlog: deque[str] = deque(maxlen=MAX_BACKLOG)
    delay = interval_s
    while True:
        await asyncio.sleep(delay)
        backlog.extend(change_line(c) for c in changes.drain())
        if not backlog:
            continue
        lines = list(backlog)
        try:
            await influx.write("\n".join(lines))
        except (httpx.TransportError, InfluxError) as exc:
            if isinstance(exc, InfluxError) and not exc.retryable:
                log.error("InfluxDB refused %d alert points, dropped: %s", len(lines), exc)
                backlog.clear()
            else:
                delay = min(delay * 2, 30)
                log.warning("InfluxDB unreachable, %d alert points wait: %s", len(lines), exc)
            continue
        for _ in lines:
            backlog.popleft()
        delay = interval_s
