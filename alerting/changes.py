"""The alert change feed: what the lifecycle tells everyone downstream.

Every change the lifecycle stores (an alert fired, its severity or score
changed, an operator acknowledged or resolved it, the condition cleared) is
published as an `AlertChange` once it is committed to the SQL store. The
outputs (InfluxDB `alert` measurement, MQTT `fire/v1/_alerts/...`) and the
notify stages (routing, roster, escalation) are consumers of this feed:

    pipeline = Pipeline(...)
    changes = pipeline.feed.subscribe()          # before the pipeline starts
    async for change in changes:                  # in the consumer's own task
        ...

Each subscriber has its own unbounded queue, so a slow consumer never slows
detection and never misses a change; `Subscription.close()` detaches it.
The `alert` is a detached snapshot taken at the change: consumers may keep it,
and must not write it back (the SQL row is the truth; `audit_id` is the id of
the audit row of this change, the position in the api's live stream).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry

from firewatch.contract.db import Alert, ChangeKind


@dataclass(frozen=True, slots=True)
class AlertChange:
    kind: ChangeKind
    """fired: a new alert; updated: severity, value, score, reasons or group changed;
    acknowledged / resolved: the state changed (by an operator or the condition clearing)."""
    alert: Alert
    audit_id: int | None
    actor: str = "alerting"
    """`alerting` for automatic changes, the operator's name otherwise."""
    silenced: bool = False
    """A silence covers this alert: recorded and shown, not to be notified."""


def snapshot(alert: Alert) -> Alert:
    """A detached copy with every column, safe to hand to another task."""
    return Alert(**{c.key: getattr(alert, c.key) for c in Alert.__table__.columns})


class Subscription:
    """One consumer's queue of changes, in the order they were committed."""

    def __init__(self, feed: ChangeFeed) -> None:
        self._feed = feed
        self.queue: asyncio.Queue[AlertChange] = asyncio.Queue()

    def __aiter__(self) -> AsyncIterator[AlertChange]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[AlertChange]:
        while True:
            yield await self.queue.get()

    async def get(self) -> AlertChange:
        return await self.queue.get()

    def drain(self) -> list[AlertChange]:
        """Every change waiting now, without waiting for more."""
        out = []
        while not self.queue.empty():
            out.append(self.queue.get_nowait())
        return out

    def close(self) -> None:
        self._feed._subs.discard(self)


class ChangeFeed:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()

    def subscribe(self) -> Subscription:
        sub = Subscription(self)
        self._subs.add(sub)
        return sub

    def publish(self, changes: Iterable[AlertChange]) -> None:
        changes = list(changes)
        for sub in self._subs:
            for c in changes:
                sub.queue.put_nowait(c)


class Follower(Protocol):
    """A stage of another part that follows the change feed inside the alerting process.

    notify, embedded, is one: the `firewatch` command hands it to `AlertingService`, so
    detection never imports the parts downstream of it.
    """

    name: str

    @property
    def registry(self) -> CollectorRegistry:
        """Its metrics, served on alerting's metrics port beside alerting's own."""
        ...

    async def serve(self, changes: Subscription) -> None: ...
