"""`firewatch alerting`: the pipeline on a live broker.

Subscribes to `fire/v1/+/+/+` (or only some districts, so workers can split a
city) with the shared MQTT client (contract/mqtt.py; aiomqtt received ~1,300 QoS 1
messages/s here, too few for a city), parses every message with the shared contract (a bad one is counted by
reason and skipped, never a crash), and feeds the pipeline in batches: a
detection pass starts at most every `alerting.batch_s` and takes whatever
arrived since the previous one (a message after a quiet spell goes at once). Around
it: a wall-clock tick for timers, the pick-up of operators' acknowledgements,
registry refreshes, baseline saves, the InfluxDB and MQTT outputs, the
`followers` the command hands it (notify's embedded stage, nudged by the change feed;
none when `firewatch notify` runs on its own), and the Prometheus
metrics, which `run` serves on `alerting.metrics_port` (alerting/metrics.py): the
service counts its messages here, the pipeline and lifecycle count theirs, notify its own.
The MQTT session is persistent (fixed client id) and a message is acknowledged
only after its batch went through the pipeline, so messages published while
the service restarts are delivered when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from functools import partial
from operator import attrgetter
from typing import Any

import numpy as np
from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from firewatch.alerting.changes import Follower
from firewatch.alerting.config import AlertingConfig, load
from firewatch.alerting.metrics import PREFIX, Metrics
from firewatch.alerting.outputs import to_influx, to_mqtt
from firewatch.alerting.pipeline import Pipeline
from firewatch.alerting.registry import Registry, load_registry
from firewatch.contract.db import Store, open_store
from firewatch.contract.influx import Influx
from firewatch.contract.mqtt import Connection, Message, Publisher, Session, supervise, tls_context
from firewatch.contract.payload import Reason, Record, Rejection, parse
from firewatch.contract.settings import Settings
from firewatch.contract.supervisor import Supervisor
from firewatch.contract.topics import TopicError, parse_topic, subscription

log = logging.getLogger("alerting")
TICK_S = 1.0
SYNC_S = 1.0
REGISTRY_S = 60.0
REPORT_S = 60.0
STOP_S = 10.0
"""How long a stop waits for the tasks; one stuck past that is reported, not waited on."""
MAX_BATCH = 5000
"""Messages per detection pass at most, so a backlog never holds the event loop for long."""


LAG_SAMPLE = 256
_ts = attrgetter("ts_ms")


def wall_ms() -> int:
    return int(time.time() * 1000)


class AlertingService:
    def __init__(self, settings: Settings, districts: list[str] | None = None,
                 config: AlertingConfig | None = None, followers: Sequence[Follower] = ()) -> None:
        self.settings = settings
        self.followers = list(followers)
        """Other parts' stages on the change feed in this process (notify, embedded)."""
        self.districts = districts or []
        self.config = config or load(settings.alerting)
        self.rejected: Counter[str] = Counter()
        self.received = 0
        self.store: Store | None = None
        self.pipeline: Pipeline | None = None
        self._pending: deque[tuple[Connection, list[Message], int, int]] = deque()
        """Chunks as the connections handed them over: (connection, messages, received ms, retained ms)."""
        self._backlog = 0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._writers: list[asyncio.Task[None]] = []
        """The tasks that write to the SQL store: asked to end at a stop, never cancelled mid-write."""
        self._stopping = asyncio.Event()
        self._conns: set[Connection] = set()
        self.ready = asyncio.Event()
        self._connected: set[int] = set()
        self.idle = asyncio.Event()
        """Set whenever every received message has been processed."""
        self.metrics = Metrics()
        self._counts = _Counts(self)
        self.metrics.registry.register(self._counts)
        self.supervisor = Supervisor(self.metrics.registry, PREFIX, log)
        """Restarts a task that died; the metrics port's /health answers 503 until it runs again."""

    @property
    def backlog(self) -> int:
        """Messages received and not yet taken into a batch."""
        return self._backlog

    @property
    def subscribed(self) -> bool:
        """Every subscription is up (`ready` stays set once it was)."""
        return len(self._connected) == len(subscription(self.districts))

    async def start(self) -> None:
        self.store = await open_store(self.settings.store.url)
        registry = Registry(await load_registry(self.store, self.districts))
        self.pipeline = Pipeline(self.config, self.store, registry, self.metrics.registry, self.districts)
        await self.pipeline.start()
        if self.config.clock == "wall":
            self.pipeline.expect(wall_ms())
        influx = Influx(self.settings.influx)
        self._influx = influx
        to_influx_sub = self.pipeline.feed.subscribe()
        to_mqtt_sub = self.pipeline.feed.subscribe()
        start = self.supervisor.start
        for follower in self.followers:
            self.metrics.registry.register(follower.registry)
        self._tasks = [start(f"alerting-{f.name}", partial(f.serve, self.pipeline.feed.subscribe()))
                       for f in self.followers]
        self._tasks += [
            *(start(f"alerting-in{n}", partial(self._subscribe, n, f))
              for n, f in enumerate(subscription(self.districts))),
            start("alerting-out", partial(self._publish, to_mqtt_sub)),
            start("alerting-influx", partial(to_influx, to_influx_sub, influx)),
        ]
        self._writers = [start("alerting-process", self._process), start("alerting-housekeeping", self._housekeeping)]
        log.info("alerting: %d devices registered, %d open alerts, clock %s, districts %s",
                 len(registry.devices), len(self.pipeline.lifecycle.open), self.config.clock,
                 ",".join(self.districts) or "all")

    async def stop(self) -> None:
        """Take no more messages, finish the batch in hand, store and acknowledge the rest, close.

        The store's writers are asked to end, not cancelled: a write cancelled inside its
        transaction left SQLite's write lock behind, and every write after it (the drain here,
        the baselines) waited out the busy timeout and failed.
        """
        self._stopping.set()
        self._wake.set()
        for conn in self._conns:
            conn.pause()  # what the broker still holds is delivered at the next start
        for t in self._tasks:
            t.cancel()
        stuck: set[asyncio.Task[None]] = set()
        if self._tasks or self._writers:
            # A stop must end: a task stuck past its cancellation is reported, not waited on.
            done, stuck = await asyncio.wait(self._tasks + self._writers, timeout=STOP_S)
            for t in stuck:
                log.error("alerting: task %s did not stop within %.0f s", t.get_name(), STOP_S)
            for t in done:
                if not t.cancelled() and t.exception() is not None:
                    log.error("alerting: task %s had failed: %r", t.get_name(), t.exception())
        try:
            if self.pipeline is not None and not stuck & set(self._writers):
                await self._drain()
                await self.pipeline.save_baselines()
        finally:
            for conn in self._conns:
                conn.close(graceful=True)
            if self.store is not None:
                await self.store.aclose()
            with contextlib.suppress(Exception):
                await self._influx.aclose()

    async def _pause(self, seconds: float) -> None:
        """Sleep, but not past a stop: a loop that retries must not outlive its service."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    def _client_id(self, role: str) -> str:
        m = self.settings.mqtt
        return f"{m.client_id_prefix}-alerting-{role}-{socket.gethostname()}-{'-'.join(self.districts) or 'all'}"[:128]

    def _session_id(self, n: int) -> str:
        """A district's MQTT session is named after the district alone, not after the worker holding it.

        Moving a district to another worker (settings, then a restart of both) hands its session
        over: what the district's devices published while neither worker held it waits there for
        the new owner. (Two workers given the same district by mistake take that session from
        each other in turn, reconnecting again and again: loud in both logs, never a quiet double.)
        """
        if not self.districts:
            return self._client_id(f"in{n}")
        return f"{self.settings.mqtt.client_id_prefix}-alerting-in-{self.districts[n]}"

    async def _subscribe(self, n: int, topic_filter: str) -> None:
        """One persistent session per filter; messages are acknowledged once their batch is processed."""
        session = Session.from_settings(self.settings.mqtt, self._session_id(n))

        def up(conn: Connection) -> None:
            self._conns.add(conn)  # stop() acknowledges the last batch on it, then closes it
            if self.config.clock == "wall" and self.pipeline is not None:
                self.pipeline.expect(conn.subscribed_ms)  # after a broker outage: a grace, not an offline storm
            self._connected.add(n)
            if len(self._connected) == len(subscription(self.districts)):
                self.ready.set()

        def down(conn: Connection) -> None:
            self._connected.discard(n)
            if not self._stopping.is_set():
                self._conns.discard(conn)

        await supervise(session, topic_filter, self._on_messages, tls=tls_context(self.settings.mqtt),
                        on_up=up, on_down=down, name=f"alerting in{n}")

    def _on_messages(self, conn: Connection, messages: list[Message]) -> None:
        """A retained copy the broker sent on subscribing is dated just before the subscription when
        it has no device time: a device's old last will then waits out its grace (`expect`), as one
        with a `ts` from before the restart does, instead of taking the device offline at once."""
        self._pending.append((conn, messages, wall_ms(), conn.subscribed_ms - 1))
        self._backlog += len(messages)
        self.idle.clear()
        self._wake.set()

    async def _publish(self, changes: Any) -> None:
        """Alert changes out on MQTT, on a connection of its own (publishing is rare, receiving is not)."""
        session = Session.from_settings(self.settings.mqtt, self._client_id("out"), session_expiry_s=0,
                                        clean_start=True)
        async with Publisher(session, tls_context(self.settings.mqtt), name="alerting out") as publisher:
            await to_mqtt(changes, publisher)

    async def _process(self) -> None:
        """A pass costs ~3 ms of CPU for 100,000 devices however few readings it holds (each stage's numpy
        calls, per kind), so passes start at most every `batch_s`: a steady stream pays that
        1 / `batch_s` times a second whatever its rate, and what arrives meanwhile joins the next
        pass. The first message after a quiet spell goes at once; a backlog is taken at once."""
        last = -self.config.batch_s
        while not self._stopping.is_set():
            await self._wake.wait()
            wait = last + self.config.batch_s - time.monotonic()
            if wait > 0 and self._backlog < MAX_BATCH:
                await self._pause(wait)
            self._wake.clear()
            last = time.monotonic()
            await self._drain()

    def _take(self) -> tuple[list[tuple[Connection, list[Message], int, int]], int]:
        """The oldest chunks, `MAX_BATCH` messages at most (a chunk over that is split), and their count.

        Kept as the connections' chunks, not a tuple per message: at 20,000 messages/s the
        per-message copies were a tenth of what the service spent outside detection."""
        chunks, n = [], 0
        while self._pending and n < MAX_BATCH:
            conn, messages, received, before = self._pending.popleft()
            room = MAX_BATCH - n
            if len(messages) > room:
                self._pending.appendleft((conn, messages[room:], received, before))
                messages = messages[:room]
            chunks.append((conn, messages, received, before))
            n += len(messages)
        self._backlog -= n
        return chunks, n

    async def _drain(self) -> None:
        assert self.pipeline is not None
        while self._pending:
            chunks, n = self._take()
            records: list[Record] = []
            impossible: list[tuple[str, str, str, str]] = []
            now = wall_ms()
            for _, messages, received, before in chunks:
                for topic, payload, _, _, retained in messages:
                    parsed = parse(topic, payload, before if retained else received)
                    records += parsed.records
                    if parsed.rejections:
                        self._refused(topic, parsed.rejections, impossible)
            self.received += n
            started = time.perf_counter()
            try:
                await self.pipeline.process(records, impossible, now if self.config.clock == "wall" else None)
            except Exception:
                log.exception("alerting: a batch of %d messages failed", n)
            self._counts.processed(records, started, now)
            acks: dict[Connection, list[bytes]] = {}
            for conn, messages, _, _ in chunks:
                acks.setdefault(conn, []).extend(ack for _, _, ack, _, _ in messages if ack is not None)
            for conn, ids in acks.items():
                conn.ack(ids)
        self.idle.set()

    def _refused(self, topic: str, rejections: list[Rejection], impossible: list[tuple[str, str, str, str]]) -> None:
        """Count a message's rejections; an impossible value also goes to its device's sensor_impossible."""
        for r in rejections:
            self.rejected[r.reason.value] += 1
            if r.reason is Reason.OUT_OF_RANGE:
                with contextlib.suppress(TopicError):
                    t = parse_topic(topic)
                    impossible.append((t.district, t.device_id, r.kind, r.detail))

    async def _housekeeping(self) -> None:
        assert self.pipeline is not None and self.store is not None
        last = {"registry": time.monotonic(), "baselines": time.monotonic(), "report": time.monotonic()}
        while True:
            await self._pause(min(TICK_S, SYNC_S))
            if self._stopping.is_set():
                return
            now = time.monotonic()
            try:
                if self.config.clock == "wall" and self.subscribed:
                    # without the broker alerting hears no device: it must not call them offline
                    await self.pipeline.tick(wall_ms())
                await self.pipeline.sync()
                if now - last["registry"] >= REGISTRY_S:
                    last["registry"] = now
                    self.pipeline.registry.replace(await load_registry(self.store, self.districts))
                    self.pipeline.reconfigure()
                if now - last["baselines"] >= self.config.baseline_save_s:
                    last["baselines"] = now
                    await self.pipeline.save_baselines()
                if now - last["report"] >= REPORT_S:
                    last["report"] = now
                    log.info("alerting: %d messages, %s, rejected %s, %d unknown devices", self.received,
                             dict(self.pipeline.counts), dict(self.rejected), len(self.pipeline.registry.unknown))
            except Exception:
                log.exception("alerting housekeeping failed")


class _Counts(Collector):
    """The service's own numbers: messages in and refused, backlog, broker connection, time per batch,
    event lag. Read at scrape time on the HTTP server's thread; copying a dict is atomic under the GIL."""

    def __init__(self, service: AlertingService) -> None:
        self._service = service
        self.event_ms = 0
        """The median device timestamp of the latest batch (at most its processing time); 0 before any."""
        self.batch_seconds = Histogram(
            PREFIX + "batch_seconds", "Detect, correlate and lifecycle time per batch of messages",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=service.metrics.registry,
        )

    def processed(self, records: list[Any], started: float, now_ms: int) -> None:
        """After each batch: its processing time (`started` from perf_counter) and where in event time it was.

        The median rather than the newest timestamp, so that a few devices with clocks running
        ahead cannot hide that alerting falls behind. Taken over an even sample of at most
        `LAG_SAMPLE` records: this runs on the batch path, and a gauge needs no exact median.
        """
        self.batch_seconds.observe(time.perf_counter() - started)
        if records:
            sample = records[:: len(records) // LAG_SAMPLE + 1]
            ts = np.fromiter(map(_ts, sample), np.int64, len(sample))
            self.event_ms = min(int(np.median(ts)), now_ms)

    def collect(self) -> Iterator[Metric]:
        s = self._service
        yield CounterMetricFamily(PREFIX + "messages_received", "MQTT messages taken into a batch",
                                  value=s.received)
        rejected = CounterMetricFamily(PREFIX + "messages_rejected",
                                       "Messages refused by the contract, by reason", labels=["reason"])
        for reason, n in (dict.fromkeys(Reason, 0) | dict(s.rejected)).items():
            rejected.add_metric([str(reason)], n)
        yield rejected
        yield GaugeMetricFamily(PREFIX + "backlog_messages", "Messages received and waiting for a batch",
                                value=s.backlog)
        yield GaugeMetricFamily(PREFIX + "broker_connected", "1 while every subscription is up",
                                value=int(s.subscribed))
        yield GaugeMetricFamily(
            PREFIX + "event_lag_seconds",
            "Wall clock minus the median device timestamp of the latest batch: grows while alerting "
            "falls behind or receives nothing",
            value=(time.time() * 1000 - self.event_ms) / 1000 if self.event_ms else float("nan"),
        )


async def run(settings: Settings, districts: list[str] | None = None, stop: asyncio.Event | None = None,
              followers: Sequence[Follower] = ()) -> None:
    """Run until SIGINT/SIGTERM (or `stop`), with the metrics endpoint on `alerting.metrics_port` (0: none).

    The endpoint belongs to the process, not to `AlertingService`: the evaluation, the benchmark
    and tests embed services without taking a port. A port in use raises SettingsError naming the key.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    service = AlertingService(settings, districts, followers=followers)
    if service.config.metrics_port:
        service.metrics.serve(service.config.metrics_port, service.supervisor)
    try:
        await service.start()
        try:
            await stop.wait()
        finally:
            await service.stop()
    finally:
        await asyncio.to_thread(service.metrics.close)
