"""`firewatch bench notify`: from a panel's fire alarm published on MQTT to the first page handed to a channel.

A city's background telemetry (default 20,000 electrical detectors at 2,000
messages/s) and panel fire alarms (each from a new panel) are published by a
separate process through a real Mosquitto. This process runs what the alerting
service runs: subscribe → parse → the alerting pipeline → the change feed →
routing → escalation → a JSON webhook to a local HTTP server. The latency of a
fire is the time from its publish (its `ts`) to the moment the webhook channel
accepted the first message about it. Prints one JSON object with --json.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import orjson

from alerting.config import load as alerting_config
from alerting.escalation import Escalator
from alerting.notify.config import NotifyConfig, Route, Step
from alerting.notify.delivery import Message
from alerting.pipeline import Pipeline
from alerting.roster import load_yaml
from contract.db import open_store
from contract.payload import Record, parse
from firewatch.services import Mosquitto

DISTRICTS = ("510104", "510105", "510106", "510107", "510108")


def _publish(port: int, devices: int, rate: float, fires_per_s: float, seconds: float, start_at: float) -> None:
    """Child process: background telemetry plus fire alarms, paced by the wall clock."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-notify-pub-{port}")
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    rng = random.Random(7)
    while time.time() < start_at:
        time.sleep(0.01)
    sent = fires = 0
    t0 = time.time()
    while (now := time.time()) - t0 < seconds:
        due = int((now - t0) * rate)
        while sent < due:
            d = sent % devices
            body = {"ts": int(time.time() * 1000), "seq": sent // devices, "kind": "electrical",
                    "m": {"residual_ma": 90 + rng.random() * 40, "temp1_c": 30 + rng.random() * 3,
                          "current_a_a": 20 + rng.random() * 5, "voltage_a_v": 220 + rng.random() * 4}}
            client.publish(f"fire/v1/{DISTRICTS[d % 5]}/E{d:06d}/telemetry", orjson.dumps(body), qos=1)
            sent += 1
        if fires < int((now - t0) * fires_per_s):
            body = {"ts": int(time.time() * 1000), "seq": 1, "kind": "panel", "event": "fire", "loop": 1,
                    "point": 1 + fires % 200, "zone": f"{1 + fires % 30}F", "component": "smoke"}
            client.publish(f"fire/v1/{DISTRICTS[fires % 5]}/P{fires:06d}/event", orjson.dumps(body), qos=1)
            fires += 1
        time.sleep(0.002)
    client.loop_stop()
    client.disconnect()


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


async def _run(devices: int, rate: float, fires_per_s: float, seconds: float, folder: Path) -> dict[str, Any]:
    http = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    broker = Mosquitto(folder / "mosquitto")
    broker.start()
    store = await open_store(f"sqlite:///{folder}/bench.db")
    try:
        await load_yaml(store, f"""
people: [{{id: duty, channels: ["webhook+http://127.0.0.1:{http.server_address[1]}/duty"]}}]
groups: [{{id: duty, members: [duty]}}]
""")
        config = NotifyConfig(routes=[Route(name="all", steps=[Step(notify=["group:duty"])])], secret="bench",
                              public_url="http://127.0.0.1", rate_limit={"per_person": 1_000_000})
        pipeline = Pipeline(alerting_config({"clock": "wall"}), store)
        await pipeline.start()
        escalator = Escalator(store, config)
        latencies: dict[int, float] = {}

        def handed(msg: Message) -> None:
            if msg.severity == "fire" and msg.alert_id not in latencies:
                latencies[msg.alert_id] = time.time() * 1000 - msg.alert["started_ms"]

        escalator.dispatcher.on_handed = handed
        notify = asyncio.create_task(escalator.serve(pipeline.feed.subscribe()))
        batch: list[Record] = []
        received = 0

        async def subscribe() -> None:
            nonlocal received
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier="bench-notify-sub") as client:
                await client.subscribe("fire/v1/+/+/+", qos=1)
                ready.set()
                async for m in client.messages:
                    received += 1
                    batch.extend(parse(str(m.topic), m.payload, int(time.time() * 1000)).records)  # type: ignore[arg-type]

        async def process() -> None:
            while True:
                await asyncio.sleep(0.02)
                if batch:
                    records = batch[:]
                    batch.clear()
                    await pipeline.process(records, now_ms=int(time.time() * 1000))

        ready = asyncio.Event()
        tasks = [asyncio.create_task(subscribe()), asyncio.create_task(process())]
        await ready.wait()
        start_at = time.time() + 1
        pub = multiprocessing.get_context("spawn").Process(
            target=_publish, args=(broker.port, devices, rate, fires_per_s, seconds, start_at)
        )
        pub.start()
        await asyncio.to_thread(pub.join)
        expected = int(seconds * fires_per_s)
        deadline = time.time() + 15
        while len(latencies) < expected and time.time() < deadline:
            await asyncio.sleep(0.1)
        for t in (*tasks, notify):
            t.cancel()
        await asyncio.gather(*tasks, notify, return_exceptions=True)
        lat = np.array(sorted(latencies.values())) if latencies else np.array([np.nan])
        return {
            "devices": devices,
            "background_msgs_per_s": rate,
            "fires_published": expected,
            "fires_paged": len(latencies),
            "messages_received": received,
            "fire_first_page_p50_ms": round(float(np.percentile(lat, 50)), 1),
            "fire_first_page_p99_ms": round(float(np.percentile(lat, 99)), 1),
            "fire_first_page_max_ms": round(float(lat.max()), 1),
            "target_p99_ms": 1000,
        }
    finally:
        await store.aclose()
        broker.stop()
        http.shutdown()


def main(devices: int, rate: float, fires_per_s: float, seconds: float, as_json: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-notify-") as tmp:
        result = asyncio.run(_run(devices, rate, fires_per_s, seconds, Path(tmp)))
    if as_json:
        print(orjson.dumps(result).decode())
    else:
        for k, v in result.items():
            print(f"{k:28} {v}")
