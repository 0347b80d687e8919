"""The ingest service: MQTT in, validated line protocol out to InfluxDB, nothing acknowledged early.

Messages arrive on a shared subscription and go into the open batch: their
records as lines, their rejections as dead letters, their packet ids as acks
owed. A batch is sealed when it holds `batch_size` lines or is
`flush_interval_s` old, and committer tasks store sealed batches: to InfluxDB,
or to the spool when InfluxDB cannot take it. Only then are its dead letters
written and its messages acknowledged, in the order they came, on the
connection they came on; after a reconnect the broker redelivers whatever was
not acknowledged, and a redelivered record is the same point, so nothing is
lost and nothing counts twice.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import socket
import time
from dataclasses import dataclass, field

import httpx

from firewatch.contract import mqtt
from firewatch.contract.influx import Influx, InfluxError
from firewatch.contract.lineproto import record_line, tag
from firewatch.contract.payload import Reason, parse
from firewatch.contract.settings import Settings, SettingsError
from firewatch.contract.supervisor import Supervisor
from firewatch.contract.topics import subscription
from firewatch.ingest.dead_letter import DeadLetters, RejectionLog, entry
from firewatch.ingest.metrics import Metrics
from firewatch.ingest.registry import load_sites
from firewatch.ingest.spool import Spool
from firewatch.ingest.stamps import ArrivalStamps

log = logging.getLogger("firewatch.ingest")
INFLUX_REFUSED = "influx_refused"
"""Dead-letter reason of a line InfluxDB refused on its own (a field type conflict)."""
UNPARSEABLE = "unparseable"
"""Dead-letter reason of a message the parser failed on: acknowledged once, never redelivered forever."""
_BAD_POINT_STATUS = frozenset({400, 413, 422})
"""Answers that blame the body, so splitting it finds the culprit; any other refusal
(missing database, credentials) is InfluxDB's state, and the batch waits in the spool."""
SPLIT_WRITES = 32
"""Writes one refused body may cost while looking for its bad lines: a few bad lines among
thousands are found in about 2·log2(n) each; many are dead-lettered in chunks instead."""
SITES_REFRESH_S = 60.0
WRITES_IN_FLIGHT = 2
"""Batches written at once: InfluxDB spends part of each write waiting on its WAL fsync."""


_UNPARSED = "unable to parse '"
_CONFLICT = re.compile(r'field type conflict: input field "([^"]+)" on measurement "([^"]+)"')


def refused_lines(lines: list[bytes], answer: str) -> set[int]:
    """Which of `lines` InfluxDB's error names: lines it could not parse, or, for a field
    type conflict, the lines of that measurement carrying that field (ingest writes each
    field with one type, so all of them conflict)."""
    named = set()
    for part in answer.removeprefix("partial write: ").split("\n"):
        if part.startswith(_UNPARSED) and "': " in part:
            named.add(part[len(_UNPARSED) : part.rindex("': ")].encode())
    blamed = {i for i, line in enumerate(lines) if line in named}
    for name, measurement in _CONFLICT.findall(answer):
        m, f = tag(measurement).encode(), tag(name).encode()
        for i, line in enumerate(lines):
            if line.startswith((m + b",", m + b" ")) and (b" " + f + b"=" in line or b"," + f + b"=" in line):
                blamed.add(i)
    return blamed


@dataclass(slots=True)
class _Batch:
    number: int = 0
    conn: mqtt.Connection | None = None
    lines: list[str] = field(default_factory=list)
    acks: list[bytes] = field(default_factory=list)
    dead: list[bytes] = field(default_factory=list)


class Ingestor:
    """`await start()`, then `await stop()`: flushes, acknowledges and disconnects.

    `ready` is set once subscribed; `metrics` holds the Prometheus counters.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        s = settings.ingest
        self.client_id = (
            s.client_id or f"{settings.mqtt.client_id_prefix}-ingest-{socket.gethostname()}"
        )
        everything = subscription()[0]
        self.topic_filter = f"$share/{s.share_group}/{everything}" if s.share_group else everything
        self.metrics = Metrics()
        self.supervisor = Supervisor(self.metrics.registry, "firewatch_ingest_", log)
        self.ready = asyncio.Event()
        self._batch_size = s.batch_size
        self._max_payload = s.max_payload_bytes
        self._spool = Spool(s.spool_dir / self.client_id)
        self._dead = DeadLetters(s.dead_letter_file)
        self._rejections = RejectionLog()
        self._influx = Influx(settings.influx)
        self._sites: dict[str, str] = {}
        self._last_seq: dict[str, int] = {}
        self._stamps = ArrivalStamps()
        self._batch = _Batch()
        self._sealed: asyncio.Queue[_Batch] = asyncio.Queue()
        self._stored: dict[int, _Batch] = {}
        self._next_ack = 0
        self._spooled = asyncio.Event()
        self._store_failure: float | None = None
        self._conn: mqtt.Connection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._update_spool_gauges()

    async def start(self) -> None:
        port = self.settings.ingest.metrics_port
        if port:
            try:
                self.metrics.serve(port, self.supervisor)
            except OSError as exc:
                raise SettingsError(
                    f"ingest.metrics_port: cannot serve on {port} ({exc.strerror})"
                ) from None
        await self._refresh_sites()
        if len(self._spool):
            log.info("spool holds %d records from before; replaying", self._spool.records)
            self._spooled.set()
        jobs = [self._connect_loop, self._replay_loop, self._flush_loop, self._sites_loop]
        named = [(f"ingest{job.__name__}", job) for job in jobs]
        named += [(f"ingest_commit_loop{k}", self._commit_loop) for k in range(WRITES_IN_FLIGHT)]
        for name, job in named:
            self._tasks.append(self.supervisor.start(name, job))

    async def stop(self) -> None:
        """Store and acknowledge what was received; what was not stays with the broker."""
        conn = self._conn
        if conn is not None:
            conn.pause()
        self._seal()
        await self._sealed.join()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if conn is not None:
            conn.close(graceful=True)
        self._rejections.flush()
        await self._influx.aclose()
        self.metrics.connected.set(0)

    # -- receiving: the hot path -------------------------------------------------

    def _on_messages(self, conn: mqtt.Connection, messages: list[mqtt.Message]) -> None:
        batch = self._batch
        if batch.conn is not conn:
            if batch.acks:
                self._seal()
                batch = self._batch
            batch.conn = conn
        now_ms = int(time.time() * 1000)
        lines = batch.lines
        acks = batch.acks
        sites = self._sites
        last_seq = self._last_seq
        stamps = self._stamps
        duplicates = redelivered = stale = 0
        for topic, payload, packet_id, dup, retained in messages:
            redelivered += dup
            if len(payload) > self._max_payload:
                self._reject(
                    topic,
                    Reason.OVERSIZED,
                    f"{len(payload)} bytes > {self._max_payload}",
                    now_ms,
                    payload,
                )
            else:
                try:
                    parsed = parse(topic, payload, now_ms)
                except Exception as exc:  # noqa: BLE001 - one message must not stop the stream
                    self._reject(topic, UNPARSEABLE, f"{exc.__class__.__name__}: {exc}"[:200], now_ms,
                                 payload)
                    parsed = None
                for record in parsed.records if parsed is not None else ():
                    device = record.device_id
                    seq = getattr(record, "seq", None)
                    if record.ts_ms == now_ms:  # no device time: a stamp of its own, see stamps.py
                        if retained:  # a copy from the broker's retained store, said who knows when
                            stale += 1
                            continue
                        record.ts_ms = stamps.stamp(device, seq, now_ms, dup)
                    lines.append(record_line(record, sites.get(device, "")))
                    if seq is not None:
                        duplicates += last_seq.get(device) == seq
                        last_seq[device] = seq
                for rejection in parsed.rejections if parsed is not None else ():
                    self._reject(topic, rejection.reason, rejection.detail, now_ms, payload)
            if packet_id is not None:
                acks.append(packet_id)
        m = self.metrics
        m.received.inc(len(messages))
        if redelivered:
            m.redelivered.inc(redelivered)
        if duplicates:
            m.duplicates.inc(duplicates)
        if stale:
            m.retained_clockless.inc(stale)
        if len(lines) >= self._batch_size:
            self._seal()

    def _reject(self, topic: str, reason: str, detail: str, now_ms: int, payload: bytes) -> None:
        self.metrics.rejected.labels(reason).inc()
        self._rejections.note(reason, topic, detail)
        self._batch.dead.append(entry(topic, reason, detail, now_ms, payload))

    def _seal(self) -> None:
        batch = self._batch
        if batch.lines or batch.acks or batch.dead:
            self._sealed.put_nowait(batch)
            self._batch = _Batch(number=batch.number + 1, conn=batch.conn)

    async def _flush_loop(self) -> None:
        interval = self.settings.ingest.flush_interval_s
        while True:
            await asyncio.sleep(interval)
            self._seal()
            self._rejections.tick()

    # -- storing -----------------------------------------------------------------

    async def _commit_loop(self) -> None:
        while True:
            batch = await self._sealed.get()
            while True:
                try:
                    await self._store(batch)
                    break
                except Exception as exc:  # noqa: BLE001 - held and retried, never dropped
                    self._cannot_store(exc, len(batch.lines))
                    await asyncio.sleep(1.0)
            if self._store_failure is not None:
                log.warning("storing again after %.1f s (%s)",
                            time.monotonic() - self._store_failure, "InfluxDB or the spool is back")
                self._store_failure = None
                self.metrics.spool_full.set(0)
            self._acknowledge(batch)
            self._sealed.task_done()

    def _cannot_store(self, exc: Exception, records: int) -> None:
        """One log line when storing starts failing, not one per retry; the gauge says it meanwhile.

        The batch stays unacknowledged, so the broker holds it and everything after it.
        """
        if self._store_failure is None:
            self._store_failure = time.monotonic()
            self.metrics.spool_full.set(1)
            log.error("cannot store a batch of %d records (InfluxDB down and the spool failing: %s: %s); "
                      "holding it, retrying every second", records, exc.__class__.__name__, exc)

    async def _store(self, batch: _Batch) -> None:
        if batch.lines:
            body = "\n".join(batch.lines).encode()
            if len(self._spool) or not await self._write(body, len(batch.lines)):
                await asyncio.to_thread(self._spool.append, body, len(batch.lines))
                self.metrics.spooled.inc(len(batch.lines))
                self._update_spool_gauges()
                self._spooled.set()
        if batch.dead:
            await asyncio.to_thread(self._dead.write, batch.dead)

    def _acknowledge(self, batch: _Batch) -> None:
        """Acks go out in batch order, as MQTT requires, whichever write finished first."""
        self._stored[batch.number] = batch
        while self._next_ack in self._stored:
            done = self._stored.pop(self._next_ack)
            self._next_ack += 1
            if done.conn is not None:
                done.conn.ack(done.acks)

    async def _write(self, body: bytes, records: int) -> bool:
        """True once InfluxDB holds every line it will ever accept; False: try again later.

        A body InfluxDB blames loses the lines its answer names (a field of the wrong
        type, a line it cannot read) as dead letters, and the rest is written again.
        When the answer names nothing, the body is split in halves until the refused
        lines stand alone, but for at most `SPLIT_WRITES` writes: what is still refused
        then is dead-lettered whole, so one hostile message costs a bounded number of
        writes, never a stall for everyone queued behind it (InfluxDB 1.x has already
        stored the good lines of a refused body; the dead letters keep the rest).
        """
        started = time.perf_counter()
        chunks = [body.split(b"\n")]
        splits = 0
        while chunks:
            chunk = chunks.pop()
            try:
                await self._influx.write(b"\n".join(chunk))
            except httpx.TransportError as exc:
                log.warning("InfluxDB unreachable (%s); spooling", exc.__class__.__name__)
                self.metrics.influx_writes.labels("unreachable").inc()
                return False
            except InfluxError as exc:
                if exc.status not in _BAD_POINT_STATUS:
                    log.warning("InfluxDB refused a batch (%s); spooling", exc)
                    self.metrics.influx_writes.labels("failed").inc()
                    return False
                self.metrics.influx_writes.labels("refused").inc()
                blamed = refused_lines(chunk, exc.answer)
                if blamed:
                    await self._refuse([chunk[i] for i in sorted(blamed)], exc)
                    rest = [line for i, line in enumerate(chunk) if i not in blamed]
                    if rest:
                        chunks.append(rest)
                elif len(chunk) == 1 or splits >= SPLIT_WRITES:
                    await self._refuse(chunk, exc)
                else:
                    half = len(chunk) // 2
                    chunks += [chunk[half:], chunk[:half]]
                    splits += 2
                continue
            self.metrics.influx_writes.labels("ok").inc()
        self.metrics.write_seconds.observe(time.perf_counter() - started)
        self.metrics.written.inc(records)
        return True

    async def _refuse(self, lines: list[bytes], exc: InfluxError) -> None:
        now_ms = int(time.time() * 1000)
        reason = str(exc)
        self.metrics.rejected.labels(INFLUX_REFUSED).inc(len(lines))
        self._rejections.note(INFLUX_REFUSED, "", reason)
        await asyncio.to_thread(
            self._dead.write, [entry("", INFLUX_REFUSED, reason, now_ms, line) for line in lines]
        )

    async def _replay_loop(self) -> None:
        """Oldest segment first; a segment is deleted only after InfluxDB took all of it."""
        delay = 0.5
        while True:
            segment = self._spool.oldest()
            if segment is None:
                self._spooled.clear()
                await self._spooled.wait()
                continue
            body = await asyncio.to_thread(segment.read)
            if await self._write(body, segment.records):
                await asyncio.to_thread(self._spool.remove, segment)
                self._update_spool_gauges()
                if not len(self._spool):
                    log.info("spool replayed into InfluxDB")
                delay = 0.5
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _update_spool_gauges(self) -> None:
        self.metrics.spool_bytes.set(self._spool.bytes)
        self.metrics.spool_records.set(self._spool.records)

    # -- connecting and the device registry ---------------------------------------

    def _session(self) -> mqtt.Session:
        # Room for a batch filling, two being written and one waiting: more would only
        # hold memory while InfluxDB is the slower side, less would idle the writers.
        s = self.settings.ingest
        extra = {"session_expiry_s": s.share_session_expiry_s} if s.share_group else {}
        return mqtt.Session.from_settings(
            self.settings.mqtt, self.client_id,
            receive_maximum=min(65535, max(1000, 4 * self._batch_size)), **extra,
        )

    async def _connect_loop(self) -> None:
        await mqtt.supervise(
            self._session(), self.topic_filter, self._on_messages,
            tls=mqtt.tls_context(self.settings.mqtt), on_up=self._up, on_down=self._down,
            name="ingest",
        )

    def _up(self, conn: mqtt.Connection) -> None:
        self._conn = conn
        self.metrics.connected.set(1)
        self.ready.set()

    def _down(self, conn: mqtt.Connection) -> None:
        self.metrics.connected.set(0)

    async def _refresh_sites(self) -> None:
        try:
            self._sites = await asyncio.wait_for(load_sites(self.settings.store.url), 10)
        except Exception as exc:  # noqa: BLE001 - a registry outage must not stop recording
            reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            log.warning(
                "device registry unavailable (%s); keeping %d known sites", reason, len(self._sites)
            )

    async def _sites_loop(self) -> None:
        while True:
            await asyncio.sleep(SITES_REFRESH_S)
            await self._refresh_sites()


async def run(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Ingest until `stop` is set, or SIGINT/SIGTERM when no event is given."""
    ingestor = Ingestor(settings)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    await ingestor.start()
    try:
        await stop.wait()
    finally:
        await ingestor.stop()
