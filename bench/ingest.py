"""`firewatch bench ingest`: how many messages a second end up in InfluxDB, against this machine's ceiling.

One stream of QoS 1 telemetry from many simulated devices is encoded up front,
so the publisher costs next to nothing while it runs. The same bytes are
published twice in one run: first to `mosquitto_sub -q 1` (the broker's own C
client: the most this broker can hand a QoS 1 subscriber here), then to
`firewatch ingest` processes on the shared subscription, timed until their
points are in InfluxDB and counted there with InfluxQL.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import psutil

from firewatch.bench.part import PartProcess
from firewatch.contract import mqtt
from firewatch.contract.settings import Settings
from firewatch.contract.topics import subscription
from firewatch.services import InfluxD, Mosquitto, free_port

FILTER = subscription()[0]


class IngestProcess(PartProcess):
    """`firewatch ingest` as a child process, configured only through FIREWATCH_* variables.

    Only the `[ingest]` keys that differ from their defaults are passed, so the same settings
    also start another commit's ingest (`pythonpath`, see `baseline_tree`), which may not know
    every key this one has.
    """

    def __init__(self, settings: Settings, client_id: str, folder: Path,
                 pythonpath: Path | None = None) -> None:
        s = settings
        port = free_port()
        ingest = s.ingest.model_dump(exclude_defaults=True, exclude={"client_id", "metrics_port"})
        super().__init__(f"ingest-{client_id}", ["ingest"], {
            "FIREWATCH_MQTT__HOST": s.mqtt.host,
            "FIREWATCH_MQTT__PORT": str(s.mqtt.port),
            "FIREWATCH_INFLUX__URL": s.influx.url,
            "FIREWATCH_INFLUX__DATABASE": s.influx.database,
            **{f"FIREWATCH_INGEST__{key.upper()}": str(value) for key, value in ingest.items()},
            "FIREWATCH_INGEST__CLIENT_ID": client_id,
            "FIREWATCH_INGEST__METRICS_PORT": str(port),
            "FIREWATCH_STORE__URL": s.store.url,
        }, folder, port, pythonpath)

    def wait_subscribed(self, timeout_s: float = 30) -> None:
        self.wait_metric("firewatch_ingest_broker_connected", "subscribed", timeout_s)


def stream(messages: int, devices: int, seed: int = 1) -> bytes:
    """QoS 1 PUBLISH packets from `devices` devices in turn, one reading each a minute apart."""
    rng = random.Random(seed)
    start_ms = int(time.time() * 1000) - 20 * 3600 * 1000
    kinds = ["electrical"] * 5 + ["hydrant"] * 4 + ["pump"]
    fleet = []
    for d in range(devices):
        kind = kinds[d % len(kinds)]
        fleet.append(
            (
                f"fire/v1/{510100 + d % 12}/{kind[0].upper()}{d:06d}/telemetry",
                kind,
                rng.uniform(0.8, 1.2),
            )
        )
    packets = []
    for i in range(messages):
        topic, kind, base = fleet[i % devices]
        seq = i // devices
        m: dict[str, float]
        if kind == "electrical":
            m = {"residual_ma": round(120 * base + rng.random() * 5, 1), "arc_count": 0.0}
            for p in "abc":
                m[f"current_{p}_a"] = round(40 * base + rng.random(), 2)
                m[f"voltage_{p}_v"] = round(220 + rng.random() * 4, 1)
            for t in range(1, 5):
                m[f"temp{t}_c"] = round(30 * base + rng.random(), 2)
        elif kind == "hydrant":
            m = {
                "pressure_mpa": round(0.3 * base, 3),
                "tilt_deg": 0.5,
                "cover_open": False,
                "temp_c": 12.0,
                "battery_pct": 87.0,
                "rssi_dbm": -85.0,
            }
        else:
            m = {
                "pressure_mpa": round(0.6 * base, 3),
                "flow_lps": 0.0,
                "current_a": 0.0,
                "voltage_v": 380.0,
                "temp_c": 18.0,
                "vibration_mm_s": 0.2,
            }
        payload = orjson.dumps({"ts": start_ms + seq * 60_000, "seq": seq, "kind": kind, "m": m})
        packets.append(mqtt.publish_packet(topic, payload, i % 65535 + 1, qos=1))
    return b"".join(packets)


def publish(host: str, port: int, data: bytes, messages: int, window: int = 20_000) -> float:
    """Send the pre-encoded stream over the product's MQTT client, at most `window` (and the
    broker's Receive Maximum) unacknowledged; seconds until all are acknowledged."""
    return asyncio.run(_publish(host, port, data, messages, window))


async def _publish(host: str, port: int, data: bytes, messages: int, window: int) -> float:
    acked = 0
    room = asyncio.Event()

    def settled(_packet_id: int, _code: int) -> None:
        nonlocal acked
        acked += 1
        room.set()

    session = mqtt.Session(host, port, "bench-publisher", session_expiry_s=0, clean_start=True)
    try:
        conn = await mqtt.connect(session, [], lambda _c, _m: None, on_acked=settled)
    except (OSError, mqtt.MqttError) as exc:
        raise RuntimeError(f"the broker refused the publisher: {exc}") from None
    window = min(window, conn.limits.receive_maximum)
    per_byte = messages / len(data)
    step = max(4096, int(window / 2 / per_byte))  # half a window per write, so it is never exceeded
    started = time.perf_counter()
    view, sent = memoryview(data), 0
    try:
        for offset in range(0, len(data), step):
            while sent - acked > window / 2 and conn.open:
                room.clear()
                await room.wait()
            conn.write(view[offset : offset + step])
            await conn.drain()
            sent = int((offset + step) * per_byte)
        while acked < messages and conn.open:
            room.clear()
            await room.wait()
        if acked < messages:
            raise RuntimeError(f"the broker dropped the publisher after {acked} of {messages} acks")
        return time.perf_counter() - started
    finally:
        conn.close(graceful=True)


@dataclass
class Services:
    host: str
    port: int
    influx_url: str
    own: list[Mosquitto | InfluxD]


def _services(folder: Path, mqtt: str | None, influx: str | None) -> Services:
    own: list[Mosquitto | InfluxD] = []
    if mqtt:
        host, _, port = mqtt.rpartition(":")
        host, mqtt_port = host or "127.0.0.1", int(port)
    else:
        broker = Mosquitto(folder / "mosquitto")
        broker.start()
        own.append(broker)
        host, mqtt_port = broker.host, broker.port
    if not influx:
        db = InfluxD(folder / "influxd")
        db.start()
        own.append(db)
        influx = db.url
    return Services(host, mqtt_port, influx, own)


def _query(url: str, q: str, db: str | None = None) -> dict:
    data = {"q": q, **({"db": db} if db else {})}
    resp = httpx.post(f"{url}/query", data=data, timeout=60)
    resp.raise_for_status()
    return resp.json()


def _count(url: str, db: str) -> int:
    doc = _query(url, 'SELECT count("seq") FROM "electrical", "hydrant", "pump"', db)
    return sum(s["values"][0][1] for r in doc["results"] for s in r.get("series", []))


def _cpu_seconds(procs: list[psutil.Process]) -> float:
    return sum(t.user + t.system for t in (p.cpu_times() for p in procs))


def ceiling(services: Services, data: bytes, messages: int) -> float:
    """Messages/s that mosquitto_sub receives at QoS 1; its session is made first, so none is missed."""
    base = ["mosquitto_sub", "-h", services.host, "-p", str(services.port), "-q", "1", "-t", FILTER]
    subprocess.run([*base, "-c", "-i", "bench-ceiling", "-E"], check=True, timeout=30)
    sub = subprocess.Popen(
        [*base, "-c", "-i", "bench-ceiling", "-C", str(messages)], stdout=subprocess.DEVNULL
    )
    started = time.perf_counter()
    publish(services.host, services.port, data, messages)
    try:
        sub.wait(max(60.0, 3 * (time.perf_counter() - started)))
        elapsed = time.perf_counter() - started
    except subprocess.TimeoutExpired:
        sub.kill()
        raise RuntimeError(
            "mosquitto_sub never got the whole stream: does the broker drop queued messages "
            "(max_queued_messages, max_queued_bytes)?"
        ) from None
    finally:
        _forget_session(services, "bench-ceiling")
    return messages / elapsed


def _forget_session(services: Services, client_id: str) -> None:
    """A clean-session connect drops what the broker kept for this client id."""
    subprocess.run(
        [
            "mosquitto_sub",
            "-h",
            services.host,
            "-p",
            str(services.port),
            "-i",
            client_id,
            "-t",
            FILTER,
            "-E",
        ],
        timeout=30,
        check=False,
    )


def baseline_tree(ref: str, folder: Path) -> Path:
    """Another commit's product, importable as `firewatch` with PYTHONPATH=<returned folder>.

    `git archive` of `ref` from this checkout, with the parts linked under `firewatch/` as its
    pyproject's package-dir maps them, so its `firewatch ingest` runs beside this one's.
    """
    repo = Path(__file__).resolve().parent.parent
    tree = folder / f"baseline-{ref.replace('/', '_')}"
    tree.mkdir()
    try:
        archive = subprocess.run(["git", "-C", str(repo), "archive", ref], check=True,
                                 capture_output=True, timeout=120).stdout
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        raise RuntimeError(f"--baseline {ref}: cannot read it from the git checkout {repo}: {exc}") from None
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True, timeout=120)
    layout = tomllib.loads((tree / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for package, part in layout.items():
        if package != "firewatch":
            (tree / "firewatch" / package.removeprefix("firewatch.")).symlink_to(tree / part)
    return tree


@dataclass
class Phase:
    """One ingest build through the same stream: how fast, how much stored, at what cost."""

    msgs_per_s: int
    stored: int
    spooled: int
    peak_rss_mb: float
    cpu_us_per_msg: dict[str, float]
    seconds: float
    publish_msgs_per_s: int | None


def measure(services: Services, settings: Settings, data: bytes, messages: int, processes: int,
            folder: Path, name: str, pythonpath: Path | None = None) -> Phase:
    """Publish the stream to `processes` ingest processes and time it until all is written."""
    workers = [IngestProcess(settings, f"bench-{name}-{k}", folder, pythonpath) for k in range(processes)]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.wait_subscribed()
        ps = [psutil.Process(w.proc.pid) for w in workers if w.proc is not None]
        peak_rss = 0
        cpu = {"ingest": ps} | {
            s.name: [psutil.Process(s.proc.pid)] for s in services.own if s.proc is not None
        }
        cpu_before = {key: _cpu_seconds(procs) for key, procs in cpu.items()}
        started = time.perf_counter()
        publish_seconds: list[float] = []
        publisher = threading.Thread(
            target=lambda: publish_seconds.append(
                publish(services.host, services.port, data, messages)
            )
        )
        publisher.start()
        written, last_progress, done_at = 0.0, time.monotonic(), None
        while time.monotonic() - last_progress < 15:
            peak_rss = max(peak_rss, sum(p.memory_info().rss for p in ps))
            now_written = sum(
                w.metric(
                    "firewatch_ingest_records_written_total",
                    "firewatch_ingest_records_spooled_total",
                )
                for w in workers
            )
            if now_written > written:
                written, last_progress = now_written, time.monotonic()
            if written >= messages:
                done_at = time.perf_counter()
                break
            time.sleep(0.25)
        publisher.join()
        elapsed = (done_at or time.perf_counter()) - started
        spooled = sum(w.metric("firewatch_ingest_records_spooled_total") for w in workers)
        cpu_us = {
            key: round((_cpu_seconds(procs) - cpu_before[key]) / messages * 1e6, 1)
            for key, procs in cpu.items()
        }
        for w in workers:
            w.stop()
            _forget_session(services, w.env["FIREWATCH_INGEST__CLIENT_ID"])
        stored = _count(services.influx_url, settings.influx.database)
        return Phase(round(stored / elapsed), stored, int(spooled), round(peak_rss / 2**20, 1), cpu_us,
                     round(elapsed, 2), round(messages / publish_seconds[0]) if publish_seconds else None)
    finally:
        for w in workers:
            if w.proc is not None and w.proc.poll() is None:
                w.proc.kill()


def run(
    messages: int,
    devices: int,
    processes: int,
    batch_size: int | None = None,
    mqtt: str | None = None,
    influx: str | None = None,
    baseline: str | None = None,
    clients: bool = False,
) -> dict[str, object]:
    folder = Path(tempfile.mkdtemp(prefix="firewatch-bench-"))
    services = _services(folder, mqtt, influx)
    stamp = int(time.time())
    databases = [f"bench_ingest_{stamp}", f"bench_ingest_{stamp}_baseline"]
    try:
        tree = baseline_tree(baseline, folder) if baseline else None
        data = stream(messages, devices)
        ceiling_rate = ceiling(services, data, messages)

        def settings(db: str) -> Settings:
            _query(services.influx_url, f'CREATE DATABASE "{db}"')
            return Settings(
                mqtt={"host": services.host, "port": services.port},
                influx={"url": services.influx_url, "database": db},
                ingest={
                    # one process: the shipped default, a plain persistent subscription
                    **({"share_group": f"bench{stamp}"} if processes > 1 else {}),
                    "spool_dir": folder / "spool",
                    "dead_letter_file": folder / "dead-letter.jsonl",
                    **({"batch_size": batch_size} if batch_size else {}),
                },
                store={"url": f"sqlite:///{folder}/firewatch.db"},
            )

        current = settings(databases[0])
        phase = measure(services, current, data, messages, processes, folder, "ingest")
        result: dict[str, object] = {
            "msgs_per_s": phase.msgs_per_s,
            "ceiling_msgs_per_s": round(ceiling_rate),
            "ratio": round(phase.msgs_per_s / ceiling_rate, 3),
            "published": messages,
            "stored": phase.stored,
            "lost": messages - phase.stored,
            "spooled": phase.spooled,
            "ingest_peak_rss_mb": phase.peak_rss_mb,
            "ingest_processes": processes,
            "batch_size": current.ingest.batch_size,
            "devices": devices,
            "cpu_us_per_msg": phase.cpu_us_per_msg,
            "seconds": phase.seconds,
            "publish_msgs_per_s": phase.publish_msgs_per_s,
        }
        if clients:
            result["clients"] = _clients(services, data, messages, ceiling_rate)
        if tree is not None:
            old = measure(services, settings(databases[1]), data, messages, processes, folder, "baseline", tree)
            result["baseline"] = {
                "ref": baseline,
                "msgs_per_s": old.msgs_per_s,
                "ratio": round(old.msgs_per_s / ceiling_rate, 3),
                "stored": old.stored,
                "lost": messages - old.stored,
                "ingest_peak_rss_mb": old.peak_rss_mb,
                "cpu_us_per_msg": old.cpu_us_per_msg,
                "seconds": old.seconds,
            }
            result["rate_vs_baseline"] = round(phase.msgs_per_s / old.msgs_per_s, 3)
        result["load_average_1m"] = round(os.getloadavg()[0], 2)
        return result
    finally:
        if influx:
            for db in databases:
                _query(services.influx_url, f'DROP DATABASE "{db}"')
        for s in services.own:
            s.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _clients(services: Services, data: bytes, messages: int, ceiling_rate: float) -> dict[str, object]:
    """Each MQTT client library's receive rate on the same stream, beside the same run's ceiling."""
    from firewatch.bench.clients import RECEIVERS, installed, receive_rate

    out: dict[str, object] = {}
    for name in RECEIVERS:
        if not installed(name):
            out[name] = "not installed"
            continue
        rate = receive_rate(name, services.host, services.port, messages,
                            lambda: publish(services.host, services.port, data, messages))
        out[name] = {"msgs_per_s": round(rate), "ratio": round(rate / ceiling_rate, 3)}
    return out


def main(
    messages: int,
    devices: int,
    processes: int,
    batch_size: int | None,
    mqtt: str | None,
    influx: str | None,
    as_json: bool,
    baseline: str | None = None,
    clients: bool = False,
) -> None:
    try:
        result = run(messages, devices, processes, batch_size, mqtt, influx, baseline, clients)
    except RuntimeError as exc:  # includes a broker or InfluxDB that would not start
        print(f"bench ingest: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    if as_json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
    else:
        for key, value in result.items():
            print(f"{key:>22}  {value}")
