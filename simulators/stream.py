"""The offline generator: a fleet and a scenario over an event-time range, as MQTT messages.

No broker is involved; `generate` yields messages in the order they go on the
wire (event time, except where chaos delays some), so ingest's and alerting's
benchmarks, replays and evaluations use exactly what `firewatch simulate`
publishes. Readings are computed a chunk of event time at a time, vectorised
over all devices of a kind (simulators.signals), then serialised with orjson one
reading at a time, each dict dropped as soon as it is bytes: holding a chunk's
worth of dicts alive made the garbage collector cost more than the JSON.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import orjson

from firewatch.contract.kinds import Kind
from firewatch.contract.topics import Channel, device_topic
from firewatch.simulators import signals
from firewatch.simulators.chaos import Chaos, disorder
from firewatch.simulators.fleet import Device, Fleet
from firewatch.simulators.scenario import INCIDENTS, Incident, Scenario, panel_events

_ROWS_PER_CHUNK = 4000


class Message(NamedTuple):
    """One MQTT message as the simulator publishes it."""

    topic: str
    payload: bytes
    ts_ms: int
    """Event time at which it goes on the wire (its payload's `ts` may differ: skew, delays)."""
    kind: str
    retain: bool = False
    invalid: str | None = None
    """The contract.payload.Reason the platform must reject it with; None for a valid message."""
    records: int = 1
    """Valid records it holds (a gateway batch holds several; an invalid message none)."""
    duplicate: bool = False
    """A resend of an earlier message: it adds no new point."""


@dataclass(slots=True)
class Tally:
    """What a stream held: the figures a test or a benchmark checks the platform against."""

    published: int = 0
    records: int = 0
    """Distinct valid records (points the platform should store); duplicates excluded."""
    duplicates: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    last_ts_ms: int = 0
    """Event time of the latest message: how far a run has got."""

    def add(self, m: Message) -> None:
        self.published += 1
        self.last_ts_ms = m.ts_ms
        self.by_kind[m.kind] += 1
        if m.invalid is not None:
            self.invalid[m.invalid] += 1
        elif m.duplicate:
            self.duplicates += 1
        else:
            self.records += m.records

    def as_dict(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "records": self.records,
            "duplicates": self.duplicates,
            "invalid": dict(sorted(self.invalid.items())),
            "by_kind": dict(sorted(self.by_kind.items())),
        }


def status_payload(device: Device, online: bool, ts_ms: int | None) -> bytes:
    body: dict[str, Any] = {"online": online, "fw": device.fw}
    if ts_ms is not None:
        body = {"ts": ts_ms, **body}
    return orjson.dumps(body)


def intervals_ms(fleet: Fleet, rate: float = 0.0) -> np.ndarray:
    """Each device's reporting period; a total `rate` (msgs/s) gives every device the same one."""
    if rate > 0:
        every = max(1, round(len(fleet.devices) / rate * 1000))
        return np.full(len(fleet.devices), every, dtype=np.int64)
    return np.array([d.report_interval_s * 1000 for d in fleet.devices], dtype=np.int64)


class _Group:
    """The devices of one kind as arrays, so one chunk of their reports is a few numpy calls."""

    def __init__(self, kind: Kind, fleet: Fleet, every: np.ndarray) -> None:
        self.kind = kind
        self.index = np.array([i for i, d in enumerate(fleet.devices) if d.kind is kind], dtype=np.int64)
        devices = [fleet.devices[i] for i in self.index]
        self.every = every[self.index]
        keys = self.index.astype(np.uint64)
        self.phase = (signals.hashes(fleet.seed, keys, np.zeros_like(keys), 1) % self.every.astype(np.uint64)
                      ).astype(np.int64)
        names = devices[0].params.keys() if devices else ()
        self.params = {n: np.array([d.params[n] for d in devices], dtype=np.float64) for n in names}
        self.effects: list[tuple[int, Incident]] = []
        self.events: list[tuple[int, int, dict[str, Any]]] = []

    def reports(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(device position in group, report number, event time) of every report in [a, b)."""
        k0 = -((self.phase - a) // self.every)  # ceil((a - phase) / every)
        k1 = -((self.phase - b) // self.every)
        counts = np.maximum(k1 - k0, 0)
        pos = np.repeat(np.arange(len(self.index)), counts)
        first = np.repeat(np.cumsum(counts) - counts, counts)
        k = k0[pos] + (np.arange(len(pos)) - first)
        return pos, k, self.phase[pos] + k * self.every[pos]


def generate(
    fleet: Fleet,
    scenario: Scenario | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    chaos: Chaos | None = None,
    *,
    rate: float = 0.0,
    status: bool = True,
    incidents: list[Incident] | None = None,
) -> Iterator[Message]:
    """Every message of `fleet` from `start_ms` (default now) to `end_ms` (None: forever).

    `rate` > 0 replaces the kinds' reporting periods by one that makes `rate`
    messages per event-time second in total. With `status`, each device first
    sends its retained `online` status. Pass `incidents` (Scenario.resolve) when
    you also write the truth, so both come from one resolution.
    """
    start = int(time.time() * 1000) if start_ms is None else int(start_ms)
    if incidents is None:
        incidents = scenario.resolve(fleet, start, end_ms) if scenario is not None else []
    clean = _clean(fleet, start, end_ms, incidents, chaos or Chaos(), rate, status)
    if chaos is None or not chaos.disorders():
        return clean
    return disorder(clean, chaos)


def _clean(
    fleet: Fleet, start: int, end: int | None, incidents: list[Incident], chaos: Chaos, rate: float, status: bool
) -> Iterator[Message]:
    devices = fleet.devices
    every = intervals_ms(fleet, rate)
    groups = [g for g in (_Group(k, fleet, every) for k in Kind) if len(g.index)]
    if not groups:
        return
    position = {d.id: i for i, d in enumerate(devices)}
    group_of = {g.kind: g for g in groups}
    silent: dict[int, list[tuple[int, int]]] = {}
    rng = np.random.default_rng(fleet.seed + 17)
    for inc in incidents:
        i = position[inc.device.id]
        if inc.type == "silent":
            silent.setdefault(i, []).append((inc.start_ms, inc.end_ms))
        elif INCIDENTS[inc.type].effect is not None:
            g = group_of[inc.device.kind]
            g.effects.append((int(np.searchsorted(g.index, i)), inc))
        if inc.device.kind is Kind.PANEL:
            group_of[Kind.PANEL].events.extend((t, i, fields) for t, fields in panel_events(inc, rng))
    for g in groups:
        g.events.sort(key=lambda e: (e[0], e[1]))
    topics = {ch: [device_topic(d.district, d.id, ch) for d in devices] for ch in Channel}
    kinds = [d.kind.value for d in devices]
    out = _Output(np.array(chaos.skews(fleet), dtype=np.int64), len(devices), chaos.batch)

    if status:
        for i, d in enumerate(devices):
            yield Message(topics[Channel.STATUS][i], status_payload(d, True, start), start, kinds[i], retain=True)

    rows_per_ms = float(sum((1.0 / every[g.index]).sum() for g in groups)) or 1e-3
    chunk = int(min(max(_ROWS_PER_CHUNK / rows_per_ms, 1000), 6 * 3_600_000))
    a = start
    while end is None or a < end:
        b = a + chunk if end is None else min(a + chunk, end)
        parts = [_chunk(g, a, b, fleet.seed, silent, out) for g in groups]
        t = np.concatenate([p[0] for p in parts])
        index = np.concatenate([p[1] for p in parts]).tolist()
        channel = [ch for p in parts for ch in p[2]]
        payloads = [x for p in parts for x in p[3]]
        times = t.tolist()
        for j in np.argsort(t, kind="stable").tolist():
            i, ch = index[j], channel[j]
            if out.batch > 1 and ch is Channel.TELEMETRY:
                pending = out.pending.setdefault(i, [])
                pending.append(payloads[j])
                if len(pending) < out.batch:
                    continue
                del out.pending[i]
                yield Message(topics[ch][i], b"[" + b",".join(pending) + b"]", times[j], kinds[i], records=len(pending))
            else:
                yield Message(topics[ch][i], payloads[j], times[j], kinds[i])
        a = b
    for i, pending in sorted(out.pending.items()):
        yield Message(topics[Channel.TELEMETRY][i], b"[" + b",".join(pending) + b"]", end or a, kinds[i], records=len(pending))


class _Output:
    """Per-device state of the serialised stream: sequence numbers, clock skew, gateway batches."""

    def __init__(self, skew: np.ndarray, devices: int, batch: int) -> None:
        self.skew = skew
        self.seq = np.zeros(devices, dtype=np.int64)
        self.batch = batch
        self.pending: dict[int, list[bytes]] = {}

    def number(self, index: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Next sequence numbers per device, counting in event-time order."""
        n = len(index)
        order = np.lexsort((t, index))
        ordered = index[order]
        first = np.ones(n, dtype=bool)
        first[1:] = ordered[1:] != ordered[:-1]
        rank = np.arange(n) - np.maximum.accumulate(np.where(first, np.arange(n), 0))
        seq = np.empty(n, dtype=np.int64)
        seq[order] = self.seq[ordered] + rank + 1
        self.seq += np.bincount(index, minlength=len(self.seq))
        return seq


def _silence(g: _Group, silent: dict[int, list[tuple[int, int]]], pos: np.ndarray, t: np.ndarray) -> np.ndarray:
    keep = np.ones(len(pos), dtype=bool)
    for i, windows in silent.items():
        p = int(np.searchsorted(g.index, i))
        if p < len(g.index) and g.index[p] == i:
            for s, e in windows:
                keep &= ~((pos == p) & (t >= s) & (t < e))
    return keep


def _chunk(
    g: _Group, a: int, b: int, seed: int, silent: dict[int, list[tuple[int, int]]], out: _Output
) -> tuple[np.ndarray, np.ndarray, list[Channel], list[Any]]:
    """Event times, device indices, channels and payloads of one kind's messages in [a, b)."""
    pos, k, t = g.reports(a, b)
    keep = _silence(g, silent, pos, t)
    pos, k, t = pos[keep], k[keep], t[keep]
    index = g.index[pos]
    if g.kind is Kind.PANEL:
        lo = bisect.bisect_left(g.events, (a,))
        hi = bisect.bisect_left(g.events, (b,))
        evs = [e for e in g.events[lo:hi] if not _muted(silent, e[1], e[0])]
        t = np.concatenate([t, np.array([e[0] for e in evs], dtype=np.int64)])
        index = np.concatenate([index, np.array([e[1] for e in evs], dtype=np.int64)])
        seq = out.number(index, t).tolist()
        ts = (t + out.skew[index]).tolist()
        beats = len(t) - len(evs)
        payloads = [_HEARTBEAT % row for row in zip(ts[:beats], seq[:beats])] + [
            orjson.dumps({"ts": x, "seq": s, "kind": "panel", **e[2]})
            for x, s, e in zip(ts[beats:], seq[beats:], evs)
        ]
        return t, index, [Channel.EVENT] * len(t), payloads
    key = index.astype(np.uint64)
    values = signals.telemetry(g.kind, {n: v[pos] for n, v in g.params.items()}, key, k, t, seed)
    for p, inc in g.effects:
        if inc.end_ms <= a or inc.start_ms >= b:
            continue
        sel = np.nonzero((pos == p) & (t >= inc.start_ms) & (t < inc.end_ms))[0]
        if len(sel):
            noise = signals.uniform(seed, key[sel], k[sel], 90)
            INCIDENTS[inc.type].effect(values, sel, t[sel], inc, noise)  # type: ignore[misc]
    values = signals.finish(g.kind, values)
    columns = [
        v.astype(np.int64).tolist() if signals.DECIMALS.get(n) == 0 else v.tolist() for n, v in values.items()
    ]
    seq = out.number(index, t).tolist()
    ts = (t + out.skew[index]).tolist()
    kind = g.kind.value
    names = list(values)
    payloads = [orjson.dumps({"ts": x, "seq": s, "kind": kind, "m": dict(zip(names, row))})
                for x, s, *row in zip(ts, seq, *columns)]
    return t, index, [Channel.TELEMETRY] * len(t), payloads


_HEARTBEAT = b'{"ts":%d,"seq":%d,"kind":"panel","event":"heartbeat"}'


def _muted(silent: dict[int, list[tuple[int, int]]], i: int, t: int) -> bool:
    return any(s <= t < e for s, e in silent.get(i, ()))
