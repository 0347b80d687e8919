"""The simulator against a real Mosquitto: what it says it sent arrives, statuses and last wills behave."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import aiomqtt
import orjson

from firewatch.contract.settings import Settings
from firewatch.simulators import Chaos, Fleet, Pace, generate, publish

T0 = 1_763_800_000_000
HOUR = 3_600_000


async def _until(check, timeout_s: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _collect(client: aiomqtt.Client, into: list[tuple[str, bytes]]) -> None:
    async for m in client.messages:
        if not m.retain:  # retained leftovers of earlier tests on the shared broker are not ours
            into.append((str(m.topic), bytes(m.payload)))


async def test_everything_the_simulator_counts_arrives_at_a_subscriber(settings: Settings) -> None:
    fleet = Fleet.build(30, seed=21)
    chaos = Chaos(malformed=0.03, duplicates=0.02, out_of_order=0.02, batch=2, seed=3)
    expected = list(generate(fleet, None, T0, T0 + 2 * HOUR, chaos))
    received: list[tuple[str, bytes]] = []
    async with aiomqtt.Client(settings.mqtt.host, settings.mqtt.port, identifier="sim-test-sub") as sub:
        await sub.subscribe("fire/v1/#", qos=1)
        reader = asyncio.create_task(_collect(sub, received))
        tally = await publish(settings, fleet, iter(expected), Pace(T0, speed=0), connections=3)
        await _until(lambda: len(received) >= tally.published)
        reader.cancel()
    statuses = {f"fire/v1/{d.district}/{d.id}/status" for d in fleet.devices}
    goodbyes = [t for t, p in received if t in statuses and not orjson.loads(p)["online"]]
    rest = [(t, p) for t, p in received if not (t in statuses and not orjson.loads(p)["online"])]
    assert tally.published == len(expected) + len(statuses) == len(received)
    assert tally.invalid and tally.duplicates
    assert Counter(rest) == Counter((m.topic, m.payload) for m in expected)
    assert sorted(goodbyes) == sorted(statuses)


def _simulator(settings: Settings, tmp_path: Path, seed: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FIREWATCH_MQTT__PORT": str(settings.mqtt.port),
        "FIREWATCH_MQTT__CLIENT_ID_PREFIX": f"{settings.mqtt.client_id_prefix}x{seed}",
    }
    env.pop("FIREWATCH_CONFIG", None)
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "firewatch"), "simulate", "--devices", "4", "--seed", str(seed), "--rate", "8",
         "--connections", "0"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


async def _statuses(settings: Settings, fleet: Fleet, stop_process) -> tuple[dict, dict]:
    """Status payloads per device while the simulator runs, and after `stop_process` ends it."""
    topics = {f"fire/v1/{d.district}/{d.id}/status": d.id for d in fleet.devices}
    live: dict[str, dict] = {}
    after: dict[str, dict] = {}
    async with aiomqtt.Client(settings.mqtt.host, settings.mqtt.port, identifier=f"st{fleet.seed}") as sub:
        for t in topics:
            await sub.subscribe(t, qos=1)

        async def read() -> None:
            async for m in sub.messages:
                doc = orjson.loads(bytes(m.payload))
                (after if stopped.is_set() else live)[topics[str(m.topic)]] = doc

        stopped = asyncio.Event()
        reader = asyncio.create_task(read())
        await _until(lambda: len(live) == len(topics) and all(s["online"] for s in live.values()))
        stopped.set()
        stop_process()
        await _until(lambda: len(after) == len(topics) and not any(s["online"] for s in after.values()))
        reader.cancel()
    return live, after


async def test_each_device_has_a_retained_status_and_a_last_will(settings: Settings, tmp_path: Path) -> None:
    proc = _simulator(settings, tmp_path, seed=31)
    try:
        live, after = await _statuses(settings, Fleet.build(4, seed=31), proc.kill)
    finally:
        proc.kill()
        proc.wait()
    assert all(s["fw"] and "ts" in s for s in live.values())
    assert all("ts" not in s for s in after.values())  # the broker sent each device's will


async def test_a_stopped_simulator_marks_its_devices_offline(settings: Settings, tmp_path: Path) -> None:
    proc = _simulator(settings, tmp_path, seed=32)
    try:
        _, after = await _statuses(settings, Fleet.build(4, seed=32), lambda: proc.send_signal(signal.SIGINT))
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    assert all("ts" in s for s in after.values())  # a clean goodbye, not the will
    out = proc.stdout.read().decode() + proc.stderr.read().decode()  # type: ignore[union-attr]
    assert "published" in out


def _persistent_subscriber(port: int, out) -> subprocess.Popen[bytes]:
    """The broker's own client with a persistent session: it resumes after a broker restart."""
    return subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", "fire/v1/#", "-q", "1",
                             "-c", "-i", "restart-sub", "-v"], stdout=out)


def _probe(port: int, received: Path) -> bool:
    """Publish a probe and tell whether the subscriber got one: it is subscribed once it does."""
    subprocess.run(["mosquitto_pub", "-p", str(port), "-t", "fire/v1/probe/p/status", "-m", "{}", "-q", "1"],
                   check=True)
    return b"fire/v1/probe/p/status" in received.read_bytes()


async def test_a_broker_restart_mid_stream_loses_nothing(own_services, tmp_path: Path, caplog) -> None:
    """The simulator reconnects and resends what the broker had not acknowledged (QoS 1, at least once)."""
    broker = own_services.mosquitto()
    settings = Settings(mqtt={"host": "127.0.0.1", "port": broker.port, "client_id_prefix": "restart"})
    out = (tmp_path / "received.txt").open("wb")
    sub = _persistent_subscriber(broker.port, out)
    try:
        await _until(lambda: _probe(broker.port, tmp_path / "received.txt"))
        fleet = Fleet.build(20, seed=41)
        expected = list(generate(fleet, None, T0, T0 + 200_000, rate=150))
        publishing = asyncio.create_task(
            publish(settings, fleet, iter(expected), Pace(T0, speed=40), connections=2))
        await asyncio.sleep(1.5)
        await asyncio.to_thread(broker.restart)
        tally = await asyncio.wait_for(publishing, 60)

        def received() -> set[tuple[str, str]]:
            lines = (tmp_path / "received.txt").read_bytes().decode().splitlines()
            return {tuple(line.split(" ", 1)) for line in lines}  # type: ignore[misc]

        wanted = {(m.topic, m.payload.decode()) for m in expected}
        await _until(lambda: wanted <= received(), timeout_s=30)
    finally:
        sub.kill()
        sub.wait()
        out.close()
    assert tally.published == len(expected) + len(fleet.devices)
    assert "reconnected" in caplog.text


async def test_an_accelerated_run_keeps_to_its_speed(settings: Settings) -> None:
    """40 s of event time at 20x last 2 s, and no reading reaches a subscriber before its time."""
    fleet = Fleet.build(10, seed=51)
    end = T0 + 40_000
    loop = asyncio.get_running_loop()
    arrivals: list[tuple[float, int]] = []
    messages = list(generate(fleet, None, T0, end, rate=20))
    telemetry = sum(m.topic.endswith("/telemetry") for m in messages)

    async def collect(client: aiomqtt.Client) -> None:
        async for m in client.messages:
            if str(m.topic).endswith("/telemetry"):
                arrivals.append((loop.time(), orjson.loads(bytes(m.payload))["ts"]))

    async with aiomqtt.Client(settings.mqtt.host, settings.mqtt.port, identifier="sim-speed-sub") as sub:
        await sub.subscribe("fire/v1/+/+/telemetry", qos=1)
        reader = asyncio.create_task(collect(sub))
        began = loop.time()
        await publish(settings, fleet, iter(messages), Pace(T0, speed=20, end_ms=end), connections=1)
        elapsed = loop.time() - began
        await _until(lambda: len(arrivals) >= telemetry)
        reader.cancel()
    assert elapsed >= 2.0 and telemetry > 500
    early = [(at - began, ts) for at, ts in arrivals if at - began < (ts - T0) / 20_000 - 0.01]
    assert not early
