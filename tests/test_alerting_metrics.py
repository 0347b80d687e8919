"""`firewatch alerting`'s Prometheus endpoint as an operator scrapes it, on a real broker and SQL store;
and a metrics port that is bad or taken stops the program with the key named."""

from __future__ import annotations

import asyncio
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from firewatch import notify
from firewatch.alerting import service
from firewatch.alerting.config import load
from firewatch.contract.db import open_store
from firewatch.contract.settings import Settings, SettingsError
from firewatch.notify.roster import load_yaml
from firewatch.services import free_port, port_open
from tests.notify_servers import HttpSink

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(port: int) -> Samples:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics", timeout=5)).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape_until(port: int, ready, timeout_s: float = 20.0) -> Samples:
    """Scrape until `ready(samples)`; the endpoint may not be up yet at first."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            samples = await scrape(port)
            if ready(samples):
                return samples
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"metrics on :{port} never showed what was expected")
        await asyncio.sleep(0.1)



async def test_an_alert_and_a_bad_message_show_on_the_metrics_endpoint(settings: Settings) -> None:
    port = free_port()
    settings.alerting = {"metrics_port": port}
    stop = asyncio.Event()
    running = asyncio.create_task(service.run(settings, stop=stop))
    try:
        await scrape_until(port, lambda s: sample(s, "firewatch_alerting_broker_connected") == 1)
        now = int(time.time() * 1000)
        async with aiomqtt.Client("127.0.0.1", settings.mqtt.port) as client:
            await client.publish("fire/v1/510104/E1/telemetry", b"{not json", qos=1)
            await client.publish("fire/v1/510104/E1/telemetry", orjson.dumps(
                {"ts": now, "kind": "electrical", "m": {"residual_ma": 420.0, "temp1_c": 35.0}}), qos=1)
        s = await scrape_until(port, lambda s: sample(s, "firewatch_alerting_open_alerts", severity="critical") == 1
                               and sample(s, "firewatch_alerting_messages_received_total") == 2)
        assert sample(s, "firewatch_alerting_messages_rejected_total", reason="bad_json") == 1
        assert sample(s, "firewatch_alerting_messages_rejected_total", reason="out_of_range") == 0
        assert sample(s, "firewatch_alerting_records_processed_total", type="reading") == 1
        assert sample(s, "firewatch_alerting_alert_changes_total", kind="fired", severity="critical") == 1
        assert sample(s, "firewatch_alerting_alert_changes_total", kind="fired", severity="warning") == 0
        assert sample(s, "firewatch_alerting_open_alerts", severity="fire") == 0
        assert sample(s, "firewatch_alerting_broker_connected") == 1
        assert sample(s, "firewatch_alerting_unregistered_devices") == 1  # E1 is in no registry here
        assert sample(s, "firewatch_alerting_backlog_messages") == 0
        assert sample(s, "firewatch_alerting_batch_seconds_count") >= 1
        lag = sample(s, "firewatch_alerting_event_lag_seconds")
        assert math.isfinite(lag) and lag >= 0
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
    assert not port_open(port), "the metrics port stays open after the service stopped"


async def test_pages_sent_and_failed_show_on_the_metrics_endpoint(settings: Settings, sink: HttpSink) -> None:
    """The supervisor's question after a fire: did the pages get out? One officer's push server
    answers, the other's is down."""
    store = await open_store(settings.store.url)
    await load_yaml(store, f"""
people:
  - {{id: wang, name: 王芳, channels: ["ntfy://127.0.0.1:{sink.port}/wang"]}}
  - {{id: li, name: 李强, channels: ["ntfy://127.0.0.1:{free_port()}/li"]}}
groups:
  - {{id: duty, members: [wang, li]}}
""")
    await store.aclose()
    port = free_port()
    settings.alerting = {"metrics_port": port}
    settings.notify = {"routes": [{"name": "all", "group_wait_s": 0, "steps": [{"notify": ["group:duty"]}]}],
                       "retries": 2, "backoff_s": 0.01}
    stop = asyncio.Event()
    running = asyncio.create_task(service.run(settings, stop=stop, followers=notify.embedded(settings)))
    try:
        await scrape_until(port, lambda s: sample(s, "firewatch_alerting_broker_connected") == 1)
        async with aiomqtt.Client("127.0.0.1", settings.mqtt.port) as client:
            await client.publish("fire/v1/510104/E1/telemetry", orjson.dumps(
                {"ts": int(time.time() * 1000), "kind": "electrical", "m": {"residual_ma": 420.0}}), qos=1)
        s = await scrape_until(port, lambda s: sample(
            s, "firewatch_notify_messages_total", result="failed", channel="ntfy") == 1)
        assert sample(s, "firewatch_notify_messages_total", result="sent", channel="ntfy") == 1
        assert sample(s, "firewatch_notify_attempts_failed_total", channel="ntfy") == 2
        assert sample(s, "firewatch_notify_nobody_on_duty_total") == 0
        assert sample(s, "firewatch_notify_changes_dropped_total") == 0
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)


@pytest.mark.parametrize("value", [70000, -1, "nine"])
def test_a_bad_metrics_port_is_refused_naming_the_key(value: object) -> None:
    with pytest.raises(SettingsError, match=r"^alerting\.metrics_port: "):
        load({"metrics_port": value})


async def test_a_metrics_port_in_use_stops_the_service_naming_the_key(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings.alerting = {"metrics_port": port}
        with pytest.raises(SettingsError, match=rf"^alerting\.metrics_port: cannot serve on {port}"):
            await service.run(settings, stop=asyncio.Event())


def test_firewatch_alerting_exits_2_naming_the_key_of_a_bad_metrics_port(tmp_path: Path) -> None:
    env = {**os.environ, "FIREWATCH_ALERTING__METRICS_PORT": "70000"}
    env.pop("FIREWATCH_CONFIG", None)
    done = subprocess.run([sys.executable, "-m", "firewatch", "alerting"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "alerting.metrics_port" in done.stderr
