"""Chaos: what real fleets do to a platform, on purpose and counted.

Valid disorder (duplicates, out-of-order and late delivery, skewed device
clocks, gateway batches) must be stored like clean data; malformed messages
must be rejected with the reason each `Message.invalid` names. All choices come
from the chaos seed, so a test knows exactly how many of each it sent.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from firewatch.contract.kinds import SPECS
from firewatch.contract.payload import Reason

if TYPE_CHECKING:
    from firewatch.simulators.fleet import Fleet
    from firewatch.simulators.stream import Message

MALFORMED_REASONS = (
    Reason.BAD_JSON,
    Reason.BAD_TOPIC,
    Reason.BAD_SCHEMA,
    Reason.UNKNOWN_KIND,
    Reason.UNKNOWN_METRIC,
    Reason.OUT_OF_RANGE,
    Reason.BAD_TIMESTAMP,
    Reason.UNKNOWN_EVENT,
)


@dataclass(frozen=True, slots=True)
class Chaos:
    """Fractions of messages (or devices, for skew); all zero is a clean stream."""

    malformed: float = 0.0
    """An extra invalid message beside this share of messages, reasons in turn."""
    duplicates: float = 0.0
    """Sent twice, the copy up to 5 s later."""
    out_of_order: float = 0.0
    """Held back 2-60 s, so later readings overtake it."""
    late: float = 0.0
    """Held back 10 min - 2 h (a gateway that was offline)."""
    skew: float = 0.0
    """Share of devices whose clock is off by up to `skew_s` either way."""
    skew_s: float = 600.0
    batch: int = 1
    """Readings per telemetry message: a gateway's JSON array of one device's readings."""
    seed: int = 0

    def disorders(self) -> bool:
        return any((self.malformed, self.duplicates, self.out_of_order, self.late))

    def skews(self, fleet: Fleet) -> list[int]:
        """Each device's clock offset in ms (most are 0)."""
        rng = np.random.default_rng(self.seed + 101)
        n = len(fleet.devices)
        skewed = rng.uniform(0, 1, n) < self.skew
        offsets = rng.uniform(-self.skew_s, self.skew_s, n) * 1000
        return np.where(skewed, offsets, 0).astype(np.int64).tolist()


def malformed(m: Message, reason: Reason) -> Message:
    """An invalid sibling of a valid message `m`, rejected by contract.payload.parse with `reason`."""
    from firewatch.simulators.stream import Message

    prefix, version, district, device, channel = m.topic.split("/")
    event = channel == "event"
    body: dict[str, Any] = {"ts": m.ts_ms, "seq": 0, "kind": m.kind}
    topic = m.topic
    if reason is Reason.BAD_JSON:
        payload = orjson.dumps(body)[:-3]
    elif reason is Reason.BAD_TOPIC:
        topic = f"{prefix}/{version}/{district.upper()}X/{device}/{channel}"
        payload = m.payload
    elif reason is Reason.BAD_SCHEMA:
        payload = orjson.dumps(body)  # no `m`, no `event`
    elif reason is Reason.UNKNOWN_KIND:
        payload = orjson.dumps({**body, "kind": "toaster", **({"event": "fire"} if event else {"m": {"x": 1}})})
    elif reason is Reason.UNKNOWN_METRIC and not event:
        payload = orjson.dumps({**body, "m": {"smoke_ppm": 3}})
    elif reason is Reason.OUT_OF_RANGE and not event:
        name, metric = next(iter(SPECS[m.kind].metrics.items()))
        payload = orjson.dumps({**body, "m": {name: metric.high * 10 + 1}})
    elif reason is Reason.BAD_TIMESTAMP:
        extra = {"event": "heartbeat"} if event else {"m": {next(iter(SPECS[m.kind].metrics)): 0}}
        payload = orjson.dumps({**body, "ts": m.ts_ms // 1000, **extra})
    else:  # UNKNOWN_EVENT, and the metric reasons on an event topic
        reason = Reason.UNKNOWN_EVENT if event else Reason.UNKNOWN_METRIC
        payload = orjson.dumps({**body, "event": "explode"} if event else {**body, "m": {"smoke_ppm": 3}})
    return Message(topic, payload, m.ts_ms, m.kind, invalid=reason.value, records=0)


def disorder(messages: Iterator[Message], chaos: Chaos) -> Iterator[Message]:
    """Inject malformed messages, duplicates and delays into a clean stream (retained status exempt)."""
    rng = np.random.default_rng(chaos.seed + 202)
    held: list[tuple[int, int, Message]] = []
    order = 0
    turn = 0
    for m in messages:
        while held and held[0][0] <= m.ts_ms:
            yield heapq.heappop(held)[2]
        if m.retain:
            yield m
            continue
        u = rng.uniform(0, 1, 4)
        if u[0] < chaos.malformed:
            yield malformed(m, MALFORMED_REASONS[turn % len(MALFORMED_REASONS)])
            turn += 1
        delay = 0
        if u[1] < chaos.late:
            delay = int(rng.uniform(600, 7200) * 1000)
        elif u[2] < chaos.out_of_order:
            delay = int(rng.uniform(2, 60) * 1000)
        if delay:
            order += 1
            heapq.heappush(held, (m.ts_ms + delay, order, m._replace(ts_ms=m.ts_ms + delay)))
        else:
            yield m
        if u[3] < chaos.duplicates:
            order += 1
            again = int(rng.uniform(0, 5) * 1000) + delay
            heapq.heappush(held, (m.ts_ms + again, order, m._replace(ts_ms=m.ts_ms + again, duplicate=True)))
    while held:
        yield heapq.heappop(held)[2]
