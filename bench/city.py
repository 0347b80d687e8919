"""`firewatch bench city`: a whole city on one box, every part a real process, scored against the truth.

Mosquitto and InfluxDB start here (firewatch/services.py); the SQL store is a
database created on PostgreSQL at 127.0.0.1:5432 and dropped afterwards, as a
centre would deploy (`--store URL` uses another). The simulator's city
(`Fleet.build`: electrical detectors, hydrants, panels and pump rooms, each
at its kind's reporting period from contract/kinds.py) is registered, then
these run together: `firewatch ingest`, `firewatch alerting` (one worker, or
`--alerting-workers K` over disjoint districts), `firewatch notify` paging a
webhook served here, `firewatch api --workers 2` with a console-like client
polling the open alert list, and the simulator in a process of its own,
publishing at the wall clock's pace. After `--warmup` seconds (the fleet's
retained online statuses go first, one per device), panel fires and arc
faults start on random devices through `--seconds`: the ground truth.

publish→alert is an alert's arrival on fire/v1/_alerts against its
`started_ms` (the publish time of the reading or event that raised it: the
simulator publishes at event time); page is the webhook's first page of that
alert against the same. CPU per part is over the measured window (cores, and
µs per message for ingest and alerting); peak RSS is each part's VmHWM.
`holds` says whether each target of issue 14 held.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import numpy as np
import orjson
import psutil

from firewatch.bench.evaluate import EXPECT, STANDARD, _stored_points
from firewatch.bench.part import PartProcess
from firewatch.contract.influx import Influx
from firewatch.contract.settings import Settings
from firewatch.contract.topics import ALERTS, PREFIX
from firewatch.services import InfluxD, Mosquitto, free_port

POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
SEED = 14
INCIDENT_TYPES = ("panel_fire", "arc_fault")
"""Incidents a real-time run can score: a fire alarm alerts on its first event, an arc fault on the
detector's next report (60 s). A hydrant reports every 5 minutes, so its incidents would be missed for
want of a reading within a two-minute run, not for want of detection."""
POLL_S = 1.0
"""How often the console-like client asks for the open alert list."""
TARGET_P99_MS = 1000


@dataclass
class Seen:
    """What came back, by wall ms: alerts on fire/v1/_alerts, pages at the webhook, the poller's answers."""

    alerts: dict[int, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    pages: dict[int, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    polls: list[float] = field(default_factory=list)
    poll_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _hook(seen: Seen) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            at = time.time() * 1000
            doc = orjson.loads(body)
            if doc.get("purpose") == "page":
                with seen.lock:
                    seen.pages.setdefault(doc["alert"]["id"], (at, doc["alert"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def _scenario(seconds: float, warmup: float) -> dict[str, Any]:
    """Incidents spread over the measured window, each early enough to be detectable before it ends."""
    rng = np.random.default_rng(SEED)
    fires = rng.uniform(warmup, warmup + seconds - 5, max(2, int(seconds // 15)))
    # an arc fault shows in its detector's next report (60 s): only those that start 70 s before the end
    arcs = rng.uniform(warmup, warmup + seconds - 70, int((seconds - 70) // 5)) if seconds > 75 else []
    return {"seed": SEED, "incidents": [
        *({"type": "panel_fire", "at": f"{t:.1f}s"} for t in fires),
        *({"type": "arc_fault", "at": f"{t:.1f}s"} for t in arcs),
    ]}


def _simulate(port: int, devices: int, districts: int, doc: dict[str, Any], span_ms: int, out: str,
              start: Connection) -> None:
    """Child process: the city published at the wall clock's pace; what it published goes to `out`.

    The run's start is fixed here, after the fleet is built (half a minute for 100,000 devices), and the
    first message waits for it, so a reading goes on the wire at its own timestamp and an alert's delay
    from its reading's time is its delay from the publish (the links' connect, milliseconds, counts in
    it). A start fixed by the parent before the child was ready made every delay include the child's
    setup: 30-45 s at 100,000 devices."""
    from firewatch.simulators import Fleet, Pace, Scenario, generate, publish

    fleet = Fleet.build(devices, SEED, districts)
    start_ms = int(time.time() * 1000) + 1000
    end_ms = start_ms + span_ms
    start.send(start_ms)
    incidents = Scenario.from_dict(doc).resolve(fleet, start_ms, end_ms)
    points = 0

    def counted(messages: Iterator[Any]) -> Iterator[Any]:
        nonlocal points
        for m in messages:
            if not m.topic.endswith("/status"):
                points += m.records
            yield m

    settings = Settings(mqtt={"host": "127.0.0.1", "port": port, "client_id_prefix": "city-sim"})

    async def paced() -> Any:
        await asyncio.sleep(max(0.0, start_ms / 1000 - time.time()))
        # no goodbye: every device's retained `online: false` at the end is not the city being measured
        return await publish(settings, fleet, counted(generate(fleet, None, start_ms, end_ms, incidents=incidents)),
                             Pace(start_ms, 1.0, end_ms), offline_at_end=False)

    tally = asyncio.run(paced())
    Path(out).write_bytes(orjson.dumps({"published": tally.published, "points": points}))


def _create_postgres() -> str:
    import psycopg

    name = f"fw_bench_city_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return POSTGRES.rsplit("/", 1)[0] + f"/{name}"


def _drop_postgres(url: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def _config(folder: Path, broker: Mosquitto, influx: InfluxD, store_url: str) -> Path:
    path = folder / "firewatch.toml"
    path.write_text(f"""
[mqtt]
host = "127.0.0.1"
port = {broker.port}
[influx]
url = "{influx.url}"
database = "city"
[store]
url = "{store_url}"
[up]
data_dir = "{folder}/data"
[api]
secret = "bench-city"
[ingest]
spool_dir = "{folder}/spool"
dead_letter_file = "{folder}/dead-letter.jsonl"
[notify]
embedded = false
secret = "bench-city"
[notify.rate_limit]
per_person = 1000000
[[notify.routes]]
name = "fire-and-critical"
severity = ["fire", "critical"]
steps = [{{ notify = ["group:duty"] }}]
""", encoding="utf-8")
    return path


async def _prepare(settings: Settings, fleet: Any, folder: Path, hook: str) -> str:
    """The city registered, the duty officer on the webhook, an admin token for the poller."""
    from firewatch.api.auth import issue
    from firewatch.notify import load_file

    async with Influx(settings.influx) as influx:
        await influx.create_database()
    await fleet.register(settings.store.url)
    roster = folder / "roster.yaml"
    roster.write_text(f'people: [{{id: duty, channels: ["webhook+{hook}"]}}]\ngroups: [{{id: duty, members: [duty]}}]\n')
    await load_file(settings.store.url, roster)
    return await issue(settings.store.url, "bench-city", "admin")


def _parts(config: Path, folder: Path, district_codes: list[str], workers: int) -> dict[str, list[PartProcess]]:
    def part(name: str, args: list[str], env: dict[str, str], port: int | None) -> PartProcess:
        return PartProcess(name, ["--config", str(config), *args], env, folder, port)

    ports = {k: free_port() for k in ("ingest", "notify", "api")}
    shares = [district_codes[k::workers] for k in range(workers)]
    alerting = []
    for k, share in enumerate(shares):
        port = free_port()
        alerting.append(part(f"alerting-{k}", ["alerting", "--districts", ",".join(share)],
                             {"FIREWATCH_ALERTING__METRICS_PORT": str(port),
                              "FIREWATCH_MQTT__CLIENT_ID_PREFIX": f"city-alerting-{k}"}, port))
    return {
        "ingest": [part("ingest", ["ingest"], {"FIREWATCH_INGEST__METRICS_PORT": str(ports["ingest"]),
                                              "FIREWATCH_INGEST__CLIENT_ID": "city-ingest"}, ports["ingest"])],
        "alerting": alerting,
        "notify": [part("notify", ["notify"], {"FIREWATCH_NOTIFY__METRICS_PORT": str(ports["notify"]),
                                              "FIREWATCH_MQTT__CLIENT_ID_PREFIX": "city-notify"}, ports["notify"])],
        "api": [part("api", ["api", "--workers", "2"], {"FIREWATCH_API__PORT": str(ports["api"]),
                                                       "FIREWATCH_MQTT__CLIENT_ID_PREFIX": "city-api"}, None)],
    }


def _api_up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v1/health", timeout=1).status_code in (200, 503)
    except httpx.HTTPError:
        return False


async def _watch_alerts(port: int, seen: Seen, ready: asyncio.Event) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier="city-watch") as client:
        await client.subscribe(f"{PREFIX}/{ALERTS}/#", qos=1)
        ready.set()
        async for message in client.messages:
            at = time.time() * 1000
            doc = orjson.loads(bytes(message.payload))  # type: ignore[arg-type]
            if doc.get("change") == "fired":
                seen.alerts.setdefault(doc["id"], (at, doc))


async def _poll(url: str, token: str, seen: Seen) -> None:
    """A console's light load: the open alert list, once a second."""
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        while True:
            t = time.perf_counter()
            try:
                r = await client.get("/api/v1/alerts", params={"state": "open", "limit": 200})
                if r.status_code == 200:
                    seen.polls.append((time.perf_counter() - t) * 1000)
                else:
                    seen.poll_errors += 1
            except httpx.HTTPError:
                seen.poll_errors += 1
            await asyncio.sleep(POLL_S)


def _percentiles(values: list[float], name: str) -> dict[str, float | None]:
    if not values:
        return {f"{name}_p50_ms": None, f"{name}_p99_ms": None, f"{name}_max_ms": None}
    a = np.array(values)
    return {f"{name}_p50_ms": round(float(np.percentile(a, 50)), 1),
            f"{name}_p99_ms": round(float(np.percentile(a, 99)), 1),
            f"{name}_max_ms": round(float(a.max()), 1)}


def score(truth: list[dict[str, Any]], seen: Seen, interval_s: dict[str, int]) -> dict[str, Any]:
    """Incidents alerted or missed, false alerts, and the latencies of the alerts that matched one."""
    by_device: dict[str, list[dict[str, Any]]] = {}
    for t in truth:
        by_device.setdefault(t["device_id"], []).append(t)
    alerted: set[int] = set()
    matched: list[int] = []
    false_alerts = 0
    for alert_id, (_, a) in seen.alerts.items():
        hits = [n for n, t in enumerate(truth) if t["device_id"] == a["device_id"]
                and a["started_ms"] >= t["start_ms"] - 60_000
                and a["started_ms"] <= t["end_ms"] + 2 * interval_s.get(a["kind"], 300) * 1000]
        if not hits:
            false_alerts += a["device_id"] not in by_device
            continue
        matched.append(alert_id)
        alerted.update(n for n in hits if a["rule"] in EXPECT[truth[n]["incident"]].rules)
    scored = [n for n, t in enumerate(truth) if t["incident"] in INCIDENT_TYPES]
    standard = [n for n in scored if EXPECT[truth[n]["incident"]].group == STANDARD]
    return {
        "incidents": len(scored),
        "incidents_alerted": sum(1 for n in scored if n in alerted),
        "incidents_missed": sum(1 for n in scored if n not in alerted),
        "standard_incidents_missed": sum(1 for n in standard if n not in alerted),
        "missed": [f"{truth[n]['incident']} {truth[n]['device_id']}" for n in scored if n not in alerted][:20],
        "alerts": len(seen.alerts),
        "false_alerts": false_alerts,
        **_percentiles([seen.alerts[i][0] - seen.alerts[i][1]["started_ms"] for i in matched], "publish_to_alert"),
        "slowest_alerts": [f"{a['rule']} {a['device_id']} {at - a['started_ms']:.0f} ms" for at, a in
                           sorted((seen.alerts[i] for i in matched), key=lambda x: x[1]["started_ms"] - x[0])[:3]],
        "pages": len(seen.pages),
        "fire_alerts": sum(1 for i in matched if seen.alerts[i][1]["severity"] == "fire"),
        "fire_alerts_paged": len(_paged(seen, matched, fire=True)),
        **_percentiles(_paged(seen, matched, fire=True), "page"),
        **_percentiles(_paged(seen, matched, fire=False), "page_grouped"),
    }


def _paged(seen: Seen, matched: list[int], fire: bool) -> list[float]:
    """Publish→first page of the matched alerts: fire alerts page at once; the others wait for their
    route's group (`group_wait_s`, 30 s by default) by design."""
    return [at - seen.alerts[i][1]["started_ms"] for i, (at, _) in seen.pages.items()
            if i in matched and (seen.alerts[i][1]["severity"] == "fire") == fire]


def _received(parts: list[PartProcess], name: str) -> float:
    return sum(max(p.metric(name), 0) for p in parts)


def run(devices: int, seconds: float, warmup: float, workers: int, store: str | None, folder: Path,
        districts: int = 5) -> dict[str, Any]:
    from firewatch.contract.kinds import SPECS
    from firewatch.simulators import Fleet, Scenario

    seen = Seen()
    http = ThreadingHTTPServer(("127.0.0.1", 0), _hook(seen))
    threading.Thread(target=http.serve_forever, daemon=True).start()
    store_url = store or _create_postgres()
    t_setup = time.monotonic()
    try:
        with Mosquitto(folder / "mosquitto") as broker, InfluxD(folder / "influxd") as influxd:
            config = _config(folder, broker, influxd, store_url)
            settings = Settings(mqtt={"host": "127.0.0.1", "port": broker.port},
                                influx={"url": influxd.url, "database": "city"}, store={"url": store_url})
            fleet = Fleet.build(devices, SEED, districts)
            token = asyncio.run(_prepare(settings, fleet, folder, f"http://127.0.0.1:{http.server_address[1]}/duty"))
            parts = _parts(config, folder, [d.code for d in fleet.districts], workers)
            every = [p for group in parts.values() for p in group]
            try:
                for p in every:
                    p.start()
                parts["ingest"][0].wait_metric("firewatch_ingest_broker_connected", "subscribed", 300)
                for p in parts["alerting"]:
                    p.wait_metric("firewatch_alerting_broker_connected", "subscribed", 300)
                parts["notify"][0].wait(lambda: parts["notify"][0].metric("firewatch_notify_audit_cursor") >= 0,
                                        "serving", 300)
                api_url = f"http://127.0.0.1:{parts['api'][0].env['FIREWATCH_API__PORT']}"
                parts["api"][0].wait(lambda: _api_up(api_url), "serving", 300)
                out = asyncio.run(_live(broker, influxd, parts, fleet, devices, districts, seconds, warmup,
                                        folder, api_url, token, seen))
                out["setup_s"] = round(out.pop("_started") - t_setup, 1)
                out["peak_rss_mb"] = {k: round(sum(p.peak_rss_mb() for p in g), 1) for k, g in parts.items()}
            finally:
                for p in every:
                    if p.proc is not None:
                        p.stop()
    finally:
        http.shutdown()
        http.server_close()
        if store is None:
            _drop_postgres(store_url)
    incidents = Scenario.from_dict(_scenario(seconds, warmup)).resolve(fleet, out.pop("_start_ms"), out.pop("_end_ms"))
    out |= score([i.truth() for i in incidents], seen, {k: s.report_interval_s for k, s in SPECS.items()})
    out["holds"] = {
        "nothing_lost": out["lost"] == 0,
        "publish_to_alert_p99_le_1s": (out["publish_to_alert_p99_ms"] or 1e9) <= TARGET_P99_MS,
        "every_incident_alerted": out["incidents_missed"] == 0,
        "every_fire_paged": out["fire_alerts_paged"] == out["fire_alerts"],
    }
    return out


async def _live(broker: Mosquitto, influxd: InfluxD, parts: dict[str, list[PartProcess]], fleet: Any, devices: int,
                districts: int, seconds: float, warmup: float, folder: Path, api_url: str, token: str,
                seen: Seen) -> dict[str, Any]:
    """The run itself: the simulator publishing, the watchers, and the measured window."""
    ready = asyncio.Event()
    watcher = asyncio.create_task(_watch_alerts(broker.port, seen, ready))
    poller = asyncio.create_task(_poll(api_url, token, seen))
    await asyncio.wait_for(ready.wait(), 30)
    started = time.monotonic()
    span_ms = int((warmup + seconds) * 1000)
    tally_file = folder / "published.json"
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe(duplex=False)
    sim = ctx.Process(target=_simulate, args=(broker.port, devices, districts, _scenario(seconds, warmup), span_ms,
                                              str(tally_file), theirs))
    sim.start()
    try:
        if not await asyncio.to_thread(ours.poll, 300):
            raise RuntimeError("the simulator did not build its city within 300 s")
        start_ms = ours.recv()
        end_ms = start_ms + span_ms
        await asyncio.sleep(max(0.0, start_ms / 1000 + warmup - time.time()))
        own = {"mosquitto": broker.proc, "influxd": influxd.proc}
        others = {k: psutil.Process(p.pid) for k, p in own.items() if p is not None}
        others["simulator"] = psutil.Process(sim.pid)

        def cpu() -> dict[str, float]:
            out = {k: sum(p.cpu_seconds() for p in g) for k, g in parts.items()}
            for k, p in others.items():
                with contextlib.suppress(psutil.NoSuchProcess):
                    t = p.cpu_times()
                    out[k] = t.user + t.system
            return out

        def received() -> dict[str, float]:
            return {"ingest": _received(parts["ingest"], "firewatch_ingest_messages_received_total"),
                    "alerting": _received(parts["alerting"], "firewatch_alerting_messages_received_total")}

        def sample() -> tuple[dict[str, float], dict[str, float], float]:
            """In a thread: the scrapes are blocking HTTP, and this loop timestamps the alerts' arrival."""
            return cpu(), received(), time.monotonic()

        cpu0, rec0, t0 = await asyncio.to_thread(sample)
        await asyncio.sleep(max(0.0, end_ms / 1000 - time.time()))
        cpu1, rec1, t1 = await asyncio.to_thread(sample)
        elapsed = t1 - t0
        load = os.getloadavg()
        await asyncio.to_thread(sim.join, 120)
        if sim.exitcode != 0 or not tally_file.exists():  # else 0 published would read as nothing lost
            raise RuntimeError(f"the simulator failed (exit code {sim.exitcode}); nothing can be counted")
        published = orjson.loads(tally_file.read_bytes())
        async with Influx(Settings(influx={"url": influxd.url, "database": "city"}).influx) as influx:
            stored, last, deadline = 0, -1, time.monotonic() + 60
            while stored < published["points"] and time.monotonic() < deadline:
                stored = await _stored_points(influx)
                if stored == last:
                    await asyncio.sleep(1)
                last = stored
        await asyncio.sleep(5)  # the last alerts and their pages
    finally:
        watcher.cancel()
        poller.cancel()
        if sim.is_alive():
            sim.kill()
    cores = {k: round((cpu1[k] - cpu0[k]) / elapsed, 3) for k in cpu1 if k in cpu0}
    delivered = {k: (rec1[k] - rec0[k]) / elapsed for k in rec1}
    offered = sum(s for s in _rates(fleet).values())
    return {
        "devices": devices,
        "districts": districts,
        "alerting_workers": len(parts["alerting"]),
        "seconds": seconds,
        "warmup_s": warmup,
        "published": published["published"],
        "published_points": published["points"],
        "stored": stored,
        "lost": published["points"] - stored,
        "msgs_per_s_offered": round(offered, 1),
        "msgs_per_s_delivered": {k: round(v, 1) for k, v in delivered.items()},
        "cpu_cores": cores,
        "cpu_us_per_msg": {k: round((cpu1[k] - cpu0[k]) / max(rec1[k] - rec0[k], 1) * 1e6, 1) for k in rec1},
        "api_polls": len(seen.polls),
        "api_poll_errors": seen.poll_errors,
        **_percentiles(seen.polls, "api_poll"),
        "load_average": [round(x, 2) for x in load],
        "_started": started,
        "_start_ms": start_ms,
        "_end_ms": end_ms,
    }


def _rates(fleet: Any) -> dict[str, float]:
    """Messages/s each kind offers at its reporting period."""
    out: dict[str, float] = {}
    for d in fleet.devices:
        out[d.kind.value] = out.get(d.kind.value, 0.0) + 1 / d.report_interval_s
    return out


def main(devices: int, seconds: float, warmup: float, workers: int, store: str | None, as_json: bool) -> None:
    folder = Path(tempfile.mkdtemp(prefix="firewatch-bench-city-"))
    try:
        result = run(devices, seconds, warmup, workers, store, folder)
    except RuntimeError as exc:  # the parts' logs stay in the folder it names
        print(f"bench city: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    shutil.rmtree(folder, ignore_errors=True)
    if as_json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
    else:
        for k, v in result.items():
            print(f"{k:>26}  {v}")
