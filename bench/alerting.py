"""`firewatch bench alerting`: alerting's throughput in one process, and its latency through a real broker.

readings_per_s: a city of 20,000 simulated devices (the offline generator,
simulators.generate, with a few dozen incidents so the lifecycle writes alerts)
is parsed up front; then detect + correlate + lifecycle
(SQLite store, event clock) take it in batches of 5,000 messages, as the
service does, on one core: the figure is readings per second of this
process's CPU time (the wall-clock figure is printed beside it, and is lower
when other work shares the core). Parsing is timed apart (`parse_per_s`).
The ceiling beside it, `readings_per_s_no_alerts`, is the same city without
incidents (no SQL writes), run alternately with it in the same process; each
figure is the median of `--repeats` runs, each on a fresh pipeline and store.

e2e_p50_ms / e2e_p99_ms: Mosquitto and the alerting service (wall clock) run
here; `firewatch simulate` publishes 20,000 devices at 2,000 messages/s live
in another process, while probe devices publish a residual current over the
alarm level and back every 100 ms. The latency of a probe is from its
publish (its `ts`) to the moment the lifecycle has committed the alert to the
SQL store and put it on the change feed. The notify stage is not attached:
it is another part's work, measured by its own benchmark.

steady_*: the running services' cost at a steady city rate (issue 14 piece 3).
`firewatch alerting` and `firewatch ingest` run as processes of their own on
one Mosquitto (ingest writing to its own InfluxDB) while `firewatch simulate`
publishes `--steady-devices` devices at each of `--steady-rates` messages/s;
after both have taken a few seconds of the stream, each process's CPU time
over `--seconds` is divided by the messages it took in that time:
`steady_<rate>_alerting_us_per_msg` beside `steady_<rate>_ingest_us_per_msg`,
and the rate both actually received (a loaded machine may publish less than
asked).
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import orjson

from firewatch.alerting.changes import ChangeKind
from firewatch.alerting.config import load
from firewatch.alerting.pipeline import Pipeline
from firewatch.alerting.registry import DeviceInfo, Registry
from firewatch.alerting.service import MAX_BATCH, AlertingService
from firewatch.bench.ingest import IngestProcess
from firewatch.bench.part import PartProcess
from firewatch.contract.db import open_store
from firewatch.contract.influx import Influx
from firewatch.contract.payload import Record, parse
from firewatch.contract.settings import Settings
from firewatch.services import InfluxD, Mosquitto, free_port

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


def city(readings: int, devices: int, with_incidents: bool) -> tuple[Any, list[list[Record]], float]:
    """The fleet and its first `readings` messages, parsed into service-sized batches, and the
    CPU seconds parsing took."""
    from firewatch.simulators import Fleet, Scenario, generate

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
    return fleet, batches, time.process_time() - t


async def run_once(fleet: Any, batches: list[list[Record]], db: Path) -> tuple[float, float, int]:
    """One fresh pipeline (new SQLite store, every device's slot made as after a registry load)
    through all batches: (CPU seconds, wall seconds, alert changes)."""
    store = await open_store(f"sqlite:///{db}")
    registry = Registry([DeviceInfo(d.id, d.kind.value, d.district, d.site) for d in fleet.devices])
    pipeline = Pipeline(load({"clock": "event"}), store, registry)
    await pipeline.start()
    for d in fleet.devices:
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
    await store.aclose()
    return cpu, elapsed, pipeline.counts["changes"]


async def throughput(readings: int, devices: int, folder: Path, repeats: int) -> dict[str, Any]:
    """Each city `repeats` times, alternating, so both see the same state of a shared machine;
    the figures are medians."""
    cities = {inc: city(readings, devices, inc) for inc in (True, False)}
    runs: dict[bool, list[tuple[float, float, int]]] = {True: [], False: []}
    for i in range(repeats):
        for inc, (fleet, batches, _) in cities.items():
            runs[inc].append(await run_once(fleet, batches, folder / f"throughput-{inc}-{i}.db"))
    fleet, batches, parse_s = cities[True]
    records = sum(len(b) for b in batches)
    rates = [records / cpu for cpu, _, _ in runs[True]]
    quiet = float(np.median([sum(len(b) for b in cities[False][1]) / cpu for cpu, _, _ in runs[False]]))
    median = float(np.median(rates))
    return {
        "readings_per_s": round(median),
        "readings_per_s_min": round(min(rates)),
        "readings_per_s_max": round(max(rates)),
        "readings_per_wall_s": round(float(np.median([records / wall for _, wall, _ in runs[True]]))),
        "readings_per_s_no_alerts": round(quiet),
        "alerts_cost_ratio": round(median / quiet, 2),
        "parse_per_s": round(records / parse_s),
        "throughput_readings": records,
        "throughput_alert_changes": runs[True][0][2],
        "throughput_repeats": repeats,
    }


async def latency(devices: int, rate: int, seconds: float, folder: Path) -> dict[str, Any]:
    with Mosquitto(folder / "mosquitto") as broker:
        settings = Settings(
            mqtt={"host": "127.0.0.1", "port": broker.port, "client_id_prefix": "bench"},
            influx={"url": "http://127.0.0.1:9"},  # no InfluxDB: the alert points wait in memory
            store={"url": f"sqlite:///{folder}/e2e.db"},
        )
        service = AlertingService(settings)
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
                if c.alert.device_id.startswith("PROBE-") and c.kind in (ChangeKind.FIRED, ChangeKind.RESOLVED):
                    sent = c.alert.started_ms if c.kind == ChangeKind.FIRED else c.alert.resolved_ms
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
            try:
                if load_proc.returncode is None:
                    load_proc.terminate()
                try:
                    await asyncio.wait_for(load_proc.wait(), 30)
                except TimeoutError:  # a load that ignores SIGTERM must not skip the service's stop
                    load_proc.kill()
                    await load_proc.wait()
            finally:
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


class AlertingProcess(PartProcess):
    """`firewatch alerting` as a child process (notify not embedded), configured by FIREWATCH_* variables."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        port = free_port()
        super().__init__("alerting", ["alerting"], {
            "FIREWATCH_MQTT__HOST": settings.mqtt.host,
            "FIREWATCH_MQTT__PORT": str(settings.mqtt.port),
            "FIREWATCH_MQTT__CLIENT_ID_PREFIX": "steady",
            "FIREWATCH_INFLUX__URL": settings.influx.url,
            "FIREWATCH_STORE__URL": settings.store.url,
            "FIREWATCH_ALERTING__METRICS_PORT": str(port),
            "FIREWATCH_NOTIFY__EMBEDDED": "false",
        }, folder, port)
        self.start()


async def _create_database(settings: Settings) -> None:
    async with Influx(settings.influx) as influx:
        await influx.create_database()


def _settle(received: dict[str, Any], rate: int, devices: int, timeout_s: float = 300) -> None:
    """Until every process takes the stream at no more than its rate: the fleet's statuses (one a device)
    come first, in a burst."""
    deadline = time.monotonic() + timeout_s
    last = {k: count() for k, count in received.items()}
    while time.monotonic() < deadline:
        time.sleep(2)
        now = {k: count() for k, count in received.items()}
        rates = [(now[k] - last[k]) / 2 for k in now]
        last = now
        if min(now.values()) >= devices and all(0 < r <= 1.25 * rate for r in rates):
            return
    raise RuntimeError(f"steady phase: the stream at {rate} msgs/s did not settle within {timeout_s:.0f} s")


def steady(devices: int, rates: list[int], seconds: float, folder: Path) -> dict[str, Any]:
    """CPU per message of the alerting and ingest processes under a steady simulated city, per rate."""
    out: dict[str, Any] = {"steady_devices": devices}
    with Mosquitto(folder / "steady-mosquitto") as broker, InfluxD(folder / "steady-influxd") as influx:
        for rate in rates:
            settings = Settings(mqtt={"host": "127.0.0.1", "port": broker.port},
                                influx={"url": influx.url}, store={"url": f"sqlite:///{folder}/steady-{rate}.db"})
            asyncio.run(_create_database(settings))
            env = {**os.environ, "FIREWATCH_MQTT__PORT": str(broker.port), "FIREWATCH_STORE__URL": settings.store.url,
                   "FIREWATCH_MQTT__CLIENT_ID_PREFIX": f"steady-load-{rate}"}
            simulate = [sys.executable, "-m", "firewatch", "simulate", "--devices", str(devices)]
            # a commissioned city: every device in the registry before alerting starts, as in a center
            subprocess.run([*simulate, "--register", "--duration", "0"], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            alerting = AlertingProcess(settings, folder)
            ingest = IngestProcess(settings, f"steady-{rate}", folder)
            ingest.start()
            load_proc = None
            try:
                alerting.wait_metric("firewatch_alerting_broker_connected", "subscribed", 300)
                ingest.wait_subscribed(120)
                load_proc = subprocess.Popen([*simulate, "--rate", str(rate), "--duration", "1d"], env=env,
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                received = {"alerting": partial(alerting.metric, "firewatch_alerting_messages_received_total"),
                            "ingest": partial(ingest.metric, "firewatch_ingest_messages_received_total")}
                _settle(received, rate, devices)
                procs = {"alerting": alerting, "ingest": ingest}
                before = {k: (p.cpu_seconds(), received[k]()) for k, p in procs.items()}
                t0 = time.monotonic()
                time.sleep(seconds)  # a measuring window, not a wait for a condition
                elapsed = time.monotonic() - t0
                for k, p in procs.items():
                    cpu, n = p.cpu_seconds() - before[k][0], received[k]() - before[k][1]
                    out[f"steady_{rate}_{k}_us_per_msg"] = round(cpu / max(n, 1) * 1e6, 1)
                    out[f"steady_{rate}_{k}_msgs_per_s"] = round(n / elapsed)
                out[f"steady_{rate}_ratio"] = round(
                    out[f"steady_{rate}_alerting_us_per_msg"] / max(out[f"steady_{rate}_ingest_us_per_msg"], 0.1), 2)
            finally:
                if load_proc is not None:
                    load_proc.kill()  # its goodbye (every device's offline status) is not what is measured
                    load_proc.wait()
                alerting.stop()
                ingest.stop()
    return out


async def bench(readings: int, devices: int, rate: int, seconds: float, repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="firewatch-bench-") as tmp:
        out = await throughput(readings, devices, Path(tmp), repeats)
        out |= await latency(devices, rate, seconds, Path(tmp))
    out["cpu_count"] = os.cpu_count()
    return out


def main(readings: int, devices: int, rate: int, seconds: float, repeats: int, as_json: bool,
         steady_devices: int = 100_000, steady_rates: tuple[int, ...] = (2_000, 20_000)) -> None:
    result = asyncio.run(bench(readings, devices, rate, seconds, repeats)) if readings else {}
    if steady_rates:
        with tempfile.TemporaryDirectory(prefix="firewatch-bench-") as tmp:
            result |= steady(steady_devices, list(steady_rates), seconds, Path(tmp))
    result["load_average"] = round(os.getloadavg()[0], 1)
    if as_json:
        print(orjson.dumps(result).decode())
    else:
        for k, v in result.items():
            print(f"{k:28} {v}")
