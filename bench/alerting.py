"""`firewatch bench alerting`: alerting's throughput in one process, and its latency through a real broker.

readings_per_s: a city of 20,000 simulated devices (the offline generator,
simulators.generate, with a few dozen incidents so the lifecycle writes alerts)
is parsed up front; then detect + correlate + lifecycle
(SQLite store, event clock) take it in batches of 5,000 messages, as the
service does, on one core: the figure is readings per second of this
process's CPU time (the wall-clock figure is printed beside it, and is lower
when other work shares the core). Parsing is timed apart (`parse_per_s`);
`readings_per_s_no_alerts` is the same city without incidents (no SQL writes).

e2e_p50_ms / e2e_p99_ms: Mosquitto and the alerting service (wall clock) run
here; `firewatch simulate` publishes 20,000 devices at 2,000 messages/s live
in another process, while probe devices publish a residual current over the
alarm level and back every 100 ms. The latency of a probe is from its
publish (its `ts`) to the moment the lifecycle has committed the alert to the
SQL store and put it on the change feed. The notify stage is not attached:
it is another part's work, measured by its own benchmark.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import orjson

from alerting.config import load
from alerting.pipeline import Pipeline
from alerting.registry import DeviceInfo, Registry
from alerting.service import MAX_BATCH, AlertingService
from contract.db import open_store
from contract.payload import parse
from contract.settings import Settings
from firewatch.services import Mosquitto

PROBES = 20
INCIDENTS = [
    *({"type": "arc_fault", "at": f"{m}m", "duration": "5m"} for m in range(2, 40, 4)),
    *({"type": "pressure_drop", "at": f"{m}m", "duration": "10m"} for m in range(3, 40, 4)),
    *({"type": "panel_fire", "at": f"{m}m", "duration": "20m"} for m in range(1, 40, 8)),
    *({"type": "false_alarm", "at": f"{m}m", "days": 1} for m in range(5, 40, 3)),
    {"type": "water_main", "at": "20m", "duration": "20m", "count": 10},
]
"""Enough alert changes in the throughput run that the lifecycle and its SQL writes are in it."""
PROBE_EVERY_S = 0.1


async def throughput(readings: int, devices: int, folder: Path, with_incidents: bool = True) -> dict[str, Any]:
    from simulators import Fleet, Scenario, generate

    fleet = Fleet.build(devices, seed=3)
    start = (int(time.time() * 1000) // 60_000 - 24 * 60) * 60_000
    spec = {"seed": 3, "incidents": INCIDENTS if with_incidents else []}
    incidents = Scenario.from_dict(spec).resolve(fleet, start, start + 3600_000)
    messages = []
    for m in generate(fleet, start_ms=start, status=False, incidents=incidents):
        messages.append((m.topic, m.payload))
        if len(messages) >= readings:
            break
    now = int(time.time() * 1000)
    t = time.process_time()
    batches = [[r for topic, payload in messages[i:i + MAX_BATCH] for r in parse(topic, payload, now).records]
               for i in range(0, len(messages), MAX_BATCH)]
    parse_s = time.process_time() - t
    records = sum(len(b) for b in batches)
    store = await open_store(f"sqlite:///{folder}/throughput-{with_incidents}.db")
    registry = Registry([DeviceInfo(d.id, d.kind.value, d.district, d.site) for d in fleet.devices])
    pipeline = Pipeline(load({"clock": "event"}), store, registry)
    await pipeline.start()
    for d in fleet.devices:  # every device gets its slot at start-up, as after a registry load
        if d.kind.value == "panel":
            pipeline.panels.state(d.id, d.district)
        else:
            pipeline.readings[d.kind.value].slot(d.id, d.district)
    gc.collect()
    gc.freeze()  # the parsed backlog held for the run is not garbage the live service would scan
    t, cpu = time.perf_counter(), time.process_time()
    for b in batches:
        await pipeline.process(b)
    elapsed, cpu = time.perf_counter() - t, time.process_time() - cpu
    gc.unfreeze()
    timed = records
    await store.aclose()
    return {
        "readings_per_s": round(timed / cpu),
        "readings_per_wall_s": round(timed / elapsed),
        "parse_per_s": round(records / parse_s),
        "throughput_readings": timed,
        "throughput_alert_changes": pipeline.counts["changes"],
    }


async def latency(devices: int, rate: int, seconds: float, folder: Path) -> dict[str, Any]:
    with Mosquitto(folder / "mosquitto") as broker:
        settings = Settings(
            mqtt={"host": "127.0.0.1", "port": broker.port, "client_id_prefix": "bench"},
            influx={"url": "http://127.0.0.1:9"},  # no InfluxDB: the alert points wait in memory
            store={"url": f"sqlite:///{folder}/e2e.db"},
        )
        service = AlertingService(settings, notify=False)
        await service.start()
        await asyncio.wait_for(service.ready.wait(), 30)
        assert service.pipeline is not None
        changes = service.pipeline.feed.subscribe()
        env = {**os.environ, "FIREWATCH_MQTT__PORT": str(broker.port), "FIREWATCH_MQTT__CLIENT_ID_PREFIX": "load"}
        load_proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from firewatch.cli import main; main()", "simulate", "--devices", str(devices),
            "--rate", str(rate), "--duration", f"{int(seconds + 15)}s",
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        latencies: list[float] = []

        async def watch() -> None:
            """Time each probe's change the moment the lifecycle hands it over."""
            async for c in changes:
                if c.alert.device_id.startswith("PROBE-") and c.kind in ("fired", "resolved"):
                    sent = c.alert.started_ms if c.kind == "fired" else c.alert.resolved_ms
                    latencies.append(time.time() * 1000 - sent)

        watcher = asyncio.create_task(watch())
        try:
            await asyncio.sleep(8)  # the fleet's retained online statuses go first
            received_before = service.received
            t0 = time.monotonic()
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier="bench-probes") as client:
                n = 0
                while time.monotonic() - t0 < seconds:
                    probe = f"PROBE-{n % PROBES}"
                    high = (n // PROBES) % 2 == 0
                    body = {"ts": int(time.time() * 1000), "kind": "electrical",
                            "m": {"residual_ma": 500.0 if high else 50.0}}
                    await client.publish(f"fire/v1/bench/{probe}/telemetry", orjson.dumps(body), qos=1)
                    n += 1
                    await asyncio.sleep(PROBE_EVERY_S)
            load_rate = (service.received - received_before) / (time.monotonic() - t0)
            await asyncio.sleep(1)
        finally:
            watcher.cancel()
            load_proc.terminate()
            await asyncio.wait_for(load_proc.wait(), 30)
            await service.stop()
    if not latencies:
        raise RuntimeError("no probe alert came back")
    lat = np.array(latencies)
    return {
        "e2e_p50_ms": round(float(np.percentile(lat, 50)), 1),
        "e2e_p99_ms": round(float(np.percentile(lat, 99)), 1),
        "e2e_max_ms": round(float(lat.max()), 1),
        "e2e_samples": len(lat),
        "e2e_devices": devices,
        "e2e_msgs_per_s_received": round(load_rate),
    }


async def bench(readings: int, devices: int, rate: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="firewatch-bench-") as tmp:
        out = await throughput(readings, devices, Path(tmp))
        quiet = await throughput(readings, devices, Path(tmp), with_incidents=False)
        out["readings_per_s_no_alerts"] = quiet["readings_per_s"]
        out |= await latency(devices, rate, seconds, Path(tmp))
    out["cpu_count"] = os.cpu_count()
    return out


def main(readings: int, devices: int, rate: int, seconds: float, as_json: bool) -> None:
    result = asyncio.run(bench(readings, devices, rate, seconds))
    if as_json:
        print(orjson.dumps(result).decode())
    else:
        for k, v in result.items():
            print(f"{k:28} {v}")
