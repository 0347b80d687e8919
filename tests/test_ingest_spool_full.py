"""InfluxDB down and the spool's disk full: nothing lost, one log line, a gauge, no file left.

A real `firewatch ingest` process whose file size limit (RLIMIT_FSIZE) is set below one spool
segment: every segment write fails part-way with an OSError, as on a full disk. Ingest must
then stop acknowledging (the broker holds the messages), say so once, and store everything
once InfluxDB is back.
"""

from __future__ import annotations

import asyncio
import resource
import time
from pathlib import Path

from firewatch.bench.ingest import IngestProcess
from firewatch.contract.influx import Influx
from tests.conftest import OwnServices
from tests.test_ingest import NOW, Publisher, count_points, eventually, telemetry

SEGMENT_LIMIT = 64 * 1024
"""Bytes a file of the ingest process may reach: more than its log will hold here, less than the
one batch of the readings below."""


class FullDisk(IngestProcess):
    """An ingest process that cannot write a file past `SEGMENT_LIMIT` bytes (set on it as soon as
    it runs, long before its imports are done and it could write a segment)."""

    def start(self) -> None:
        super().start()
        assert self.proc is not None
        resource.prlimit(self.proc.pid, resource.RLIMIT_FSIZE, (SEGMENT_LIMIT, SEGMENT_LIMIT))


async def test_a_full_spool_disk_loses_nothing_and_says_so_once(tmp_path: Path, own_services: OwnServices) -> None:
    broker, influxd = own_services.mosquitto(), own_services.influxd()
    settings = own_services.settings(tmp_path, broker, influxd)
    ingest = FullDisk(settings, "spool-full", tmp_path)
    try:
        IngestProcess.start(ingest)  # once without the limit, to make its session
        await asyncio.to_thread(ingest.wait_subscribed)
        assert ingest.stop() == 0
        await asyncio.to_thread(influxd.stop)
        n = 3000  # queued by the broker for ingest's session, then delivered in one burst: one batch
        with Publisher(settings) as pub:
            for i in range(n):
                pub.send(f"fire/v1/d5/H{i % 50}/telemetry", telemetry("hydrant", NOW + i, i, pressure_mpa=0.3))
        ingest.start()
        await eventually(lambda: ingest.metric("firewatch_ingest_spool_full"), 1.0, timeout_s=60)
        spool = settings.ingest.spool_dir / "spool-full"
        started = time.monotonic()
        while time.monotonic() - started < 3:  # a retry every second meanwhile; none may leave a file
            assert list(spool.glob("*")) == [], list(spool.glob("*"))
            await asyncio.sleep(0.2)
        await asyncio.to_thread(influxd.start)
        async with Influx(settings.influx) as influx:
            await eventually(lambda: count_points(influx, "hydrant", "pressure_mpa"), n, timeout_s=60)
        await eventually(lambda: ingest.metric("firewatch_ingest_spool_full"), 0.0)
        log = ingest.log.read_text()
        assert log.count("cannot store a batch") == 1, log[-3000:]
        assert log.count("storing again after") == 1, log[-3000:]
        assert ingest.stop() == 0
    finally:
        if ingest.proc is not None and ingest.proc.poll() is None:
            ingest.proc.kill()
