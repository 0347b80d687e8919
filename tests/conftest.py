"""Real services for the tests: Mosquitto and InfluxDB on free ports, a SQLite store per test.

The session-wide broker and database are shared; each test gets its own InfluxDB
database, client ids and share group so tests never see each other's points or
sessions, and the broker's retained messages are emptied after every test that
used it (simulated device ids recur across tests, and a retained status left by
one opened an offline order in another). Tests that stop, kill or restart a
service ask `own_services` for instances of their own.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import paho.mqtt.client as paho
import pytest

from firewatch.contract.settings import Settings
from firewatch.services import InfluxD, Mosquitto
from tests.notify_servers import HttpSink, SmtpInbox

_db_numbers = itertools.count()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path_factory.mktemp("mosquitto")) as m:
        yield m


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxD]:
    with InfluxD(tmp_path_factory.mktemp("influxd")) as i:
        yield i


def clear_retained(port: int, timeout_s: float = 10.0) -> list[str]:
    """Empty every retained message on the broker at `port`; returns the topics that held one.

    The broker sends the retained copies right after the SUBACK, so a marker this
    client publishes after subscribing comes back after the last of them.
    """
    marker = f"firewatch-tests/retained-cleared/{uuid.uuid4().hex}"
    retained: list[str] = []
    subscribed, seen_marker = threading.Event(), threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.on_subscribe = lambda *_: subscribed.set()

    def on_message(_c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        if message.topic == marker:
            seen_marker.set()
        elif message.retain and message.payload:
            retained.append(message.topic)

    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.subscribe("#", qos=0)
        if not subscribed.wait(timeout_s):
            raise AssertionError("the broker did not acknowledge the retained sweep's subscription")
        client.publish(marker, b"x", qos=0)
        if not seen_marker.wait(timeout_s):
            raise AssertionError("the retained sweep's marker never came back")
        for info in [client.publish(topic, b"", qos=1, retain=True) for topic in retained]:
            info.wait_for_publish(timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()
    return retained


@pytest.fixture(autouse=True)
def _no_retained_leftovers(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that used the `mosquitto` broker, empty its retained store for the next one."""
    yield
    if "mosquitto" in request.fixturenames:
        clear_retained(request.getfixturevalue("mosquitto").port)


def make_settings(tmp_path: Path, mqtt_port: int, influx_url: str, database: str) -> Settings:
    """Settings for one test: its own database, spool, dead letters and SQL store."""
    httpx.post(f"{influx_url}/query", data={"q": f'CREATE DATABASE "{database}"'}).raise_for_status()
    return Settings(
        mqtt={"host": "127.0.0.1", "port": mqtt_port, "client_id_prefix": f"t{database}"},
        influx={"url": influx_url, "database": database},
        ingest={
            "spool_dir": tmp_path / "spool",
            "dead_letter_file": tmp_path / "dead-letter.jsonl",
            "metrics_port": 0,
            "share_group": f"ingest{database}",
        },
        store={"url": f"sqlite:///{tmp_path}/firewatch.db"},
        up={"data_dir": tmp_path / "data"},
    )


@pytest.fixture
def settings(tmp_path: Path, mosquitto: Mosquitto, influxd: InfluxD) -> Settings:
    return make_settings(tmp_path, mosquitto.port, influxd.url, f"fw{next(_db_numbers)}")


class OwnServices:
    """Brokers and databases a test may stop, kill and restart; all stopped at teardown."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[Mosquitto | InfluxD] = []

    def mosquitto(self) -> Mosquitto:
        m = Mosquitto(self.root / f"mosquitto{len(self.started)}")
        m.start()
        self.started.append(m)
        return m

    def influxd(self) -> InfluxD:
        i = InfluxD(self.root / f"influxd{len(self.started)}")
        i.start()
        self.started.append(i)
        return i

    def settings(self, tmp_path: Path, m: Mosquitto, i: InfluxD) -> Settings:
        return make_settings(tmp_path, m.port, i.url, "firewatch")

    def close(self) -> None:
        for s in self.started:
            s.kill()


@pytest.fixture
def own_services(tmp_path: Path) -> Iterator[OwnServices]:
    own = OwnServices(tmp_path / "services")
    yield own
    own.close()


@pytest.fixture
def inbox() -> Iterator[SmtpInbox]:
    """A real SMTP server (aiosmtpd) on a free port, keeping what it receives."""
    box = SmtpInbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    """A real HTTP server on a free port, keeping every request (webhooks, ntfy, Grafana)."""
    s = HttpSink()
    s.start()
    yield s
    s.stop()


def wait_for(check: Callable[[], object], timeout_s: float = 20.0, interval_s: float = 0.05) -> object:
    """Poll until `check()` is truthy; tests wait on outcomes, never on fixed sleeps."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {check}")
        time.sleep(interval_s)
