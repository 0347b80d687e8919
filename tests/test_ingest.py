"""Ingest against a real Mosquitto and a real InfluxDB: what goes in comes out, once, tagged."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, Self

import orjson
import paho.mqtt.client as paho
import pytest

from firewatch.bench.ingest import IngestProcess
from firewatch.contract.credentials import (
    acl_file_for,
    hash_password,
    register_device,
    write_password_line,
)
from firewatch.contract.db import Device, open_store
from firewatch.contract.influx import Influx
from firewatch.contract.settings import MqttSettings, Settings
from firewatch.ingest import Ingestor
from firewatch.services import InfluxD, Mosquitto
from tests.conftest import OwnServices, make_settings

NOW = int(time.time() * 1000) - 3_600_000
_publishers = itertools.count()


def telemetry(kind: str, ts: int, seq: int, **metrics: float | bool) -> bytes:
    return orjson.dumps({"ts": ts, "seq": seq, "kind": kind, "m": metrics})


class Publisher:
    """A paho client (not ours) publishing QoS 1, so the test checks interoperation too."""

    def __init__(self, settings: Settings) -> None:
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=f"testpub{next(_publishers)}",
            protocol=paho.MQTTv5,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.connect(settings.mqtt.host, settings.mqtt.port)
        self.client.loop_start()
        self.sent: list[paho.MQTTMessageInfo] = []

    def send(self, topic: str, payload: bytes, *, retain: bool = False,
             properties: paho.Properties | None = None) -> None:
        """Publish at QoS 1; leaving the `with` waits for every PUBACK (a message still in flight at
        the DISCONNECT is lost, and a test would count one message short)."""
        self.sent.append(self.client.publish(topic, payload, qos=1, retain=retain, properties=properties))

    def wait(self) -> None:
        for info in self.sent:
            info.wait_for_publish(10)
        self.sent.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.wait()
        self.client.disconnect()
        self.client.loop_stop()


async def eventually(check: Callable[[], Any], expected: Any, timeout_s: float = 20.0) -> None:
    """Poll `check` (plain or async) until it returns `expected`; fail with the last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if inspect.isawaitable(got):
            got = await got
        if got == expected:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {expected!r}, still {got!r} after {timeout_s} s")
        await asyncio.sleep(0.05)


async def count_points(influx: Influx, measurement: str, field: str) -> int:
    series = await influx.query(f'SELECT count("{field}") FROM "{measurement}"')
    return series[0].values[0][1] if series else 0


@pytest.fixture
async def ingestor(settings: Settings) -> AsyncIterator[Ingestor]:
    ing = Ingestor(settings)
    await ing.start()
    await asyncio.wait_for(ing.ready.wait(), 10)
    yield ing
    await ing.stop()


async def test_every_message_becomes_one_point_with_tags_fields_and_time(
    settings: Settings,
) -> None:
    store = await open_store(settings.store.url)
    async with store.session() as s:
        s.add(Device(id="E1", kind="electrical", district="510104", site="mall-7"))
        await s.commit()
    await store.aclose()
    ing = Ingestor(settings)
    await ing.start()
    await asyncio.wait_for(ing.ready.wait(), 10)
    n = 300
    with Publisher(settings) as pub:
        for i in range(n):
            pub.send(
                "fire/v1/510104/E1/telemetry",
                telemetry("electrical", NOW + i, i, temp1_c=20.0 + i / 10, residual_ma=i),
            )
            pub.send(
                f"fire/v1/510105/H{i % 7}/telemetry",
                telemetry("hydrant", NOW + i, i, pressure_mpa=0.3, cover_open=i % 2 == 0),
            )
        pub.send(
            "fire/v1/510104/P1/event",
            orjson.dumps(
                {
                    "ts": NOW,
                    "seq": 1,
                    "kind": "panel",
                    "event": "fire",
                    "loop": 1,
                    "point": 23,
                    "zone": "3F east",
                    "component": "smoke",
                }
            ),
        )
        pub.send(
            "fire/v1/510104/P1/status", orjson.dumps({"ts": NOW, "online": True, "fw": "2.1.0"})
        )
        pub.wait()
    async with Influx(settings.influx) as influx:
        await eventually(lambda: count_points(influx, "electrical", "residual_ma"), n)
        await eventually(lambda: count_points(influx, "hydrant", "pressure_mpa"), n)
        await eventually(lambda: count_points(influx, "device_status", "online"), 1)
        rows = (
            await influx.query(
                "SELECT * FROM electrical WHERE time = $t", {"t": (NOW + 42) * 1_000_000}
            )
        )[0].rows()
        assert rows == [
            {
                "time": NOW + 42,
                "device_id": "E1",
                "district": "510104",
                "site": "mall-7",
                "residual_ma": 42.0,
                "temp1_c": pytest.approx(24.2),
                "seq": 42,
            }
        ]
        hydrant = (
            await influx.query("SELECT * FROM hydrant WHERE device_id = $d LIMIT 1", {"d": "H2"})
        )[0].rows()
        assert "site" not in hydrant[0] and hydrant[0]["district"] == "510105"
        assert hydrant[0]["cover_open"] == 1.0
        event = (await influx.query("SELECT * FROM panel_event"))[0].rows()
        assert event == [
            {
                "time": NOW,
                "device_id": "P1",
                "district": "510104",
                "event": "fire",
                "loop": 1,
                "point": 23,
                "zone": "3F east",
                "component": "smoke",
                "seq": 1,
            }
        ]
        status = (await influx.query("SELECT online, fw FROM device_status"))[0].rows()
        assert status == [{"time": NOW, "online": True, "fw": "2.1.0"}]
    await ing.stop()
    assert ing.metrics.value("firewatch_ingest_messages_received_total") == 2 * n + 2
    assert ing.metrics.value("firewatch_ingest_records_written_total") == 2 * n + 2


async def test_a_message_sent_again_is_stored_once_and_counted_as_duplicate(
    settings: Settings, ingestor: Ingestor
) -> None:
    with Publisher(settings) as pub:
        for _ in range(3):
            pub.send("fire/v1/d1/H1/telemetry", telemetry("hydrant", NOW, 7, pressure_mpa=0.31))
        pub.wait()
    async with Influx(settings.influx) as influx:
        await eventually(
            lambda: ingestor.metrics.value("firewatch_ingest_messages_received_total"), 3
        )
        await eventually(lambda: count_points(influx, "hydrant", "pressure_mpa"), 1)
    assert ingestor.metrics.value("firewatch_ingest_duplicates_total") == 2


BAD_INPUTS: list[tuple[str, bytes, str]] = [
    ("fire/v1/d1/H1/gps", telemetry("hydrant", NOW, 1, pressure_mpa=0.3), "bad_topic"),
    ("fire/v1/D_1/H1/telemetry", telemetry("hydrant", NOW, 1, pressure_mpa=0.3), "bad_topic"),
    ("fire/v1/d1/H1/telemetry", b'{"ts": 1, "kind": "hydrant", "m": {', "bad_json"),
    ("fire/v1/d1/H1/telemetry", b"\xff\xfe\x00garbage", "bad_json"),
    ("fire/v1/d1/H1/telemetry", b'{"kind": "hydrant"}', "bad_schema"),
    ("fire/v1/d1/H1/telemetry", telemetry("toaster", NOW, 1, crumbs=3), "unknown_kind"),
    (
        "fire/v1/d1/H1/telemetry",
        telemetry("hydrant", NOW, 1, flux_capacitor=1.21),
        "unknown_metric",
    ),
    ("fire/v1/d1/H1/telemetry", telemetry("hydrant", NOW, 1, pressure_mpa=99.0), "out_of_range"),
    (
        "fire/v1/d1/H1/telemetry",
        telemetry("hydrant", 1_700_000_000, 1, pressure_mpa=0.3),
        "bad_timestamp",
    ),
    (
        "fire/v1/d1/P1/event",
        orjson.dumps({"ts": NOW, "kind": "panel", "event": "explode"}),
        "unknown_event",
    ),
    (
        "fire/v1/d1/H1/telemetry",
        b'{"kind": "hydrant", "m": {"temp_c": 1.0}, "pad": "' + b"x" * 2000 + b'"}',
        "oversized",
    ),
]


async def test_bad_input_is_rejected_with_its_reason_and_never_blocks_good_messages(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings.model_copy(
        update={"ingest": settings.ingest.model_copy(update={"max_payload_bytes": 1024})}
    )
    async with Influx(settings.influx) as influx:
        # A field InfluxDB already holds as an integer makes our float a type conflict it refuses.
        await influx.write(f"hydrant,device_id=seed battery_pct=5i {NOW - 1}")
        ing = Ingestor(settings)
        await ing.start()
        await asyncio.wait_for(ing.ready.wait(), 10)
        good = 0
        with Publisher(settings) as pub:
            for topic, payload, _ in BAD_INPUTS:
                pub.send(
                    "fire/v1/d1/G1/telemetry",
                    telemetry("hydrant", NOW + good, good, pressure_mpa=0.3),
                )
                good += 1
                pub.send(topic, payload)
            pub.send(
                "fire/v1/d1/G1/telemetry", telemetry("hydrant", NOW + good, good, battery_pct=50.0)
            )
            pub.send(
                "fire/v1/d1/G1/telemetry",
                telemetry("hydrant", NOW + good + 1, good + 1, pressure_mpa=0.3),
            )
            good += 1
        await eventually(lambda: count_points(influx, "hydrant", "pressure_mpa"), good)
        await ing.stop()
    reasons = [reason for _, _, reason in BAD_INPUTS] + ["influx_refused"]
    summaries = [
        r for r in caplog.records if r.name == "firewatch.ingest" and "rejected" in r.message
    ]
    assert 1 <= len(summaries) <= 3, "rejections are summarised, not logged one by one"
    for reason in set(reasons):
        assert ing.metrics.value("firewatch_ingest_rejected_total", reason=reason) == reasons.count(
            reason
        ), reason
    dead = [
        orjson.loads(line) for line in settings.ingest.dead_letter_file.read_bytes().splitlines()
    ]
    assert sorted(d["reason"] for d in dead) == sorted(reasons)
    by_reason = {d["reason"]: d for d in dead}
    assert by_reason["out_of_range"]["topic"] == "fire/v1/d1/H1/telemetry"
    assert "pressure_mpa" in by_reason["out_of_range"]["detail"]
    assert (
        by_reason["out_of_range"]["payload"]
        == telemetry("hydrant", NOW, 1, pressure_mpa=99.0).decode()
    )
    assert any("payload_b64" in d for d in dead if d["reason"] == "bad_json")
    assert (
        by_reason["oversized"]["payload_bytes"] > 2000
        and "G1" in by_reason["influx_refused"]["payload"]
    )


async def test_influxdb_down_mid_stream_loses_nothing(
    tmp_path: Path, own_services: OwnServices
) -> None:
    broker, influxd = own_services.mosquitto(), own_services.influxd()
    settings = own_services.settings(tmp_path, broker, influxd)
    ing = Ingestor(settings)
    await ing.start()
    await asyncio.wait_for(ing.ready.wait(), 10)
    async with Influx(settings.influx) as influx:
        with Publisher(settings) as pub:
            for i in range(200):
                pub.send(
                    f"fire/v1/d1/H{i % 10}/telemetry",
                    telemetry("hydrant", NOW + i, i, pressure_mpa=0.3),
                )
            await eventually(lambda: count_points(influx, "hydrant", "pressure_mpa"), 200)
            await asyncio.to_thread(influxd.stop)
            for i in range(200, 500):
                pub.send(
                    f"fire/v1/d1/H{i % 10}/telemetry",
                    telemetry("hydrant", NOW + i, i, pressure_mpa=0.3),
                )
            await asyncio.to_thread(pub.wait)
        await eventually(lambda: ing.metrics.value("firewatch_ingest_spool_records"), 300)
        assert list((settings.ingest.spool_dir / ing.client_id).glob("*.lp"))
        await asyncio.to_thread(influxd.start)
        await eventually(lambda: count_points(influx, "hydrant", "pressure_mpa"), 500)
        await eventually(lambda: ing.metrics.value("firewatch_ingest_spool_records"), 0)
        assert not list((settings.ingest.spool_dir / ing.client_id).glob("*.lp"))

        # The spool is on disk: an ingest restarted while InfluxDB is still down replays it later.
        await asyncio.to_thread(influxd.stop)
        with Publisher(settings) as pub:
            for i in range(500, 600):
                pub.send(
                    f"fire/v1/d1/H{i % 10}/telemetry",
                    telemetry("hydrant", NOW + i, i, pressure_mpa=0.3),
                )
        await eventually(lambda: ing.metrics.value("firewatch_ingest_spool_records"), 100)
        await ing.stop()
        await asyncio.to_thread(influxd.start)
        ing = Ingestor(settings)
        await ing.start()
        await eventually(lambda: count_points(influx, "hydrant", "pressure_mpa"), 600)
        await eventually(lambda: ing.metrics.value("firewatch_ingest_spool_records"), 0)
        await ing.stop()


@pytest.fixture
def processes() -> Iterator[list[IngestProcess]]:
    started: list[IngestProcess] = []
    yield started
    for p in started:
        if p.proc is not None and p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()


async def test_ingest_killed_mid_stream_loses_nothing(
    settings: Settings, tmp_path: Path, processes: list[IngestProcess]
) -> None:
    ingest = IngestProcess(settings, "killme", tmp_path)
    processes.append(ingest)
    ingest.start()
    await asyncio.to_thread(ingest.wait_subscribed)
    n = 6000
    received = "firewatch_ingest_messages_received_total"

    killed = threading.Event()

    def publish_steadily() -> None:
        """Half while ingest runs (it dies somewhere in it), half while it is dead."""
        with Publisher(settings) as pub:
            for i in range(n):
                if i == n // 2:
                    killed.wait(30)
                pub.send(
                    f"fire/v1/d2/E{i % 50}/telemetry",
                    telemetry("electrical", NOW + i, i, temp1_c=25.0),
                )
                if i % 20 == 0:
                    time.sleep(0.002)

    async def received_some() -> bool:
        return await asyncio.to_thread(ingest.metric, received) > n / 4

    publishing = asyncio.create_task(asyncio.to_thread(publish_steadily))
    await eventually(received_some, True)
    assert ingest.stop(signal.SIGKILL) == -signal.SIGKILL
    killed.set()
    await publishing
    async with Influx(settings.influx) as influx:
        assert await count_points(influx, "electrical", "temp1_c") < n
        ingest.start()
        await eventually(lambda: count_points(influx, "electrical", "temp1_c"), n)
    assert ingest.stop() == 0
    assert "subscribed" in ingest.log.read_text() and "session resumed" in ingest.log.read_text()


async def test_two_ingest_processes_share_the_stream_and_store_each_message_once(
    settings: Settings, tmp_path: Path, processes: list[IngestProcess]
) -> None:
    processes += [
        IngestProcess(settings, "one", tmp_path),
        IngestProcess(settings, "two", tmp_path),
    ]
    for p in processes:
        p.start()
    for p in processes:
        await asyncio.to_thread(p.wait_subscribed)
    n = 4000
    with Publisher(settings) as pub:
        for i in range(n):
            pub.send(
                f"fire/v1/d3/H{i % 100}/telemetry",
                telemetry("hydrant", NOW + i, i, pressure_mpa=0.3),
            )
    async with Influx(settings.influx) as influx:
        await eventually(lambda: count_points(influx, "hydrant", "pressure_mpa"), n)
    received = [
        await asyncio.to_thread(p.metric, "firewatch_ingest_messages_received_total")
        for p in processes
    ]
    assert sum(received) == n and min(received) > 0, received
    for p in processes:
        assert p.stop() == 0


async def test_sigterm_stores_what_is_buffered_before_exiting(
    settings: Settings, tmp_path: Path, processes: list[IngestProcess]
) -> None:
    patient = settings.model_copy(
        update={"ingest": settings.ingest.model_copy(update={"flush_interval_s": 60})}
    )
    ingest = IngestProcess(patient, "patient", tmp_path)
    processes.append(ingest)
    ingest.start()
    await asyncio.to_thread(ingest.wait_subscribed)
    with Publisher(settings) as pub:
        for i in range(100):
            pub.send(f"fire/v1/d4/H{i % 5}/telemetry", telemetry("hydrant", NOW + i, i, temp_c=3.5))
    await eventually(
        lambda: asyncio.to_thread(ingest.metric, "firewatch_ingest_messages_received_total"), 100
    )
    async with Influx(settings.influx) as influx:
        assert await count_points(influx, "hydrant", "temp_c") == 0
        assert await asyncio.to_thread(ingest.stop, signal.SIGTERM) == 0
        assert await count_points(influx, "hydrant", "temp_c") == 100


async def test_gateway_arrays_and_publish_properties_arrive_whole(
    settings: Settings, ingestor: Ingestor
) -> None:
    """A 100 kB gateway batch spans many socket reads; user properties make a long header."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("gateway", "g" * 200), ("site", "x" * 100)]
    batch = [
        {"ts": NOW + i, "seq": i, "kind": "pump", "m": {"pressure_mpa": 0.6, "flow_lps": 12.5}}
        for i in range(2000)
    ]
    with Publisher(settings) as pub:
        pub.send("fire/v1/d5/PUMP1/telemetry", orjson.dumps(batch), properties=props)
    async with Influx(settings.influx) as influx:
        await eventually(lambda: count_points(influx, "pump", "flow_lps"), 2000)


async def test_broker_restart_mid_stream_loses_nothing(
    tmp_path: Path, own_services: OwnServices
) -> None:
    """Unacknowledged messages survive in the broker's saved session; ingest resubscribes.

    Mosquitto 2.0 does not restore shared subscriptions from its persistence
    file, so this publishes the second half once ingest is back (see the README).
    """
    broker, influxd = own_services.mosquitto(), own_services.influxd()
    settings = own_services.settings(tmp_path, broker, influxd)
    ing = Ingestor(settings)
    await ing.start()
    await asyncio.wait_for(ing.ready.wait(), 10)
    connected = "firewatch_ingest_broker_connected"

    def publish(first: int, last: int) -> None:
        with Publisher(settings) as pub:
            for i in range(first, last):
                pub.send(
                    f"fire/v1/d6/H{i % 10}/telemetry",
                    telemetry("hydrant", NOW + i, i, rssi_dbm=-80.0),
                )

    await asyncio.to_thread(publish, 0, 300)
    await asyncio.to_thread(broker.restart)
    await eventually(lambda: ing.metrics.value(connected), 1.0)
    await asyncio.to_thread(publish, 300, 600)
    async with Influx(settings.influx) as influx:
        await eventually(lambda: count_points(influx, "hydrant", "rssi_dbm"), 600)
    await ing.stop()


async def test_a_device_registered_while_running_gets_its_site(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("firewatch.ingest.ingestor.SITES_REFRESH_S", 0.2)
    store = await open_store(settings.store.url)
    ing = Ingestor(settings)
    await ing.start()
    await asyncio.wait_for(ing.ready.wait(), 10)
    async with Influx(settings.influx) as influx:
        await asyncio.to_thread(publish_one, settings, NOW)
        await eventually(lambda: count_points(influx, "pump", "temp_c"), 1)
        async with store.session() as s:
            s.add(Device(id="PUMP9", kind="pump", district="d7", site="station-3"))
            await s.commit()
        sites: list[Any] = []

        async def site_of_latest() -> Any:
            await asyncio.to_thread(publish_one, settings, NOW + len(sites) + 1)
            rows = (await influx.query('SELECT last("temp_c"), "site" FROM "pump"'))[0].rows()
            sites.append(rows[0]["site"])
            return rows[0]["site"]

        await eventually(site_of_latest, "station-3")
        first = (await influx.query('SELECT first("temp_c"), "site" FROM "pump"'))[0].rows()
        assert first[0]["site"] is None
    await ing.stop()
    await store.aclose()


def publish_one(settings: Settings, ts: int) -> None:
    with Publisher(settings) as pub:
        pub.send("fire/v1/d7/PUMP9/telemetry", telemetry("pump", ts, ts - NOW, temp_c=15.0))


class _AuthMosquitto(Mosquitto):
    """The deployment's rules: passwords for everyone, and the ACL written from the registry."""

    def _configure(self) -> None:
        super()._configure()
        conf = self.dir / "mosquitto.conf"
        passwd = self.dir / "auth" / "passwd"
        conf.write_text(
            conf.read_text().replace("allow_anonymous true", "allow_anonymous false")
            + f"password_file {passwd}\nacl_file {acl_file_for(passwd)}\n"
        )


async def test_ingest_logs_in_and_the_deployment_acl_allows_its_shared_subscription(
    tmp_path: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    broker = _AuthMosquitto(tmp_path / "auth-mosquitto")
    passwd = broker.dir / "auth" / "passwd"
    write_password_line(passwd, "firewatch", hash_password("ingest-secret"))
    h1 = await register_device(settings.store.url, Device(id="H1", kind="hydrant", district="d8"), passwd, "t")
    broker.start()
    try:
        mqtt = {"host": broker.host, "port": broker.port, "username": "firewatch"}
        wrong = Ingestor(
            settings.model_copy(update={"mqtt": MqttSettings(**mqtt, password="nope")})
        )
        await wrong.start()
        await eventually(
            lambda: "0x87 NOT_AUTHORIZED; see mqtt.username, mqtt.password" in caplog.text, True
        )
        assert not wrong.ready.is_set()
        await wrong.stop()

        right = settings.model_copy(update={"mqtt": MqttSettings(**mqtt, password="ingest-secret")})
        ing = Ingestor(right)
        await ing.start()
        await asyncio.wait_for(ing.ready.wait(), 10)
        device = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="H1", protocol=paho.MQTTv5)
        device.username_pw_set("H1", h1.password)
        device.connect(broker.host, broker.port)
        device.loop_start()
        device.publish("fire/v1/d8/H1/telemetry", telemetry("hydrant", NOW, 1, tilt_deg=2.0), qos=1)
        async with Influx(settings.influx) as influx:
            await eventually(lambda: count_points(influx, "hydrant", "tilt_deg"), 1)
        device.disconnect()
        device.loop_stop()
        await ing.stop()
    finally:
        broker.stop()


async def test_a_stale_retained_status_without_device_time_is_not_stored_as_new(
    tmp_path: Path, own_services: OwnServices, influxd: InfluxD
) -> None:
    """On subscribing, the broker hands ingest every retained status it keeps: a device's last will
    may be days old, and without `ts` it used to be stored at the moment ingest (re)subscribed, a
    fresh 'offline' point for every restart. A retained copy with `ts` is stored (the same point
    again, if it was stored before); one without is counted and left out; a status published live
    is stored whatever its retain flag."""
    broker = own_services.mosquitto()
    settings = make_settings(tmp_path, broker.port, influxd.url, f"retained{next(_publishers)}")
    with Publisher(settings) as pub:
        pub.send("fire/v1/510104/H1/status", b'{"online": false}', retain=True)
        pub.send("fire/v1/510104/H2/status", orjson.dumps({"ts": NOW, "online": True}), retain=True)
    ing = Ingestor(settings)
    await ing.start()
    try:
        await asyncio.wait_for(ing.ready.wait(), 10)
        await eventually(lambda: ing.metrics.value("firewatch_ingest_messages_received_total"), 2)
        with Publisher(settings) as pub:
            pub.send("fire/v1/510104/H3/status", b'{"online": false}', retain=True)
        await eventually(lambda: ing.metrics.value("firewatch_ingest_messages_received_total"), 3)
        async with Influx(settings.influx) as influx:
            async def stored() -> dict[str, int]:
                series = await influx.query('SELECT count("online") FROM "device_status" GROUP BY "device_id"')
                return {s.tags["device_id"]: s.values[0][1] for s in series}

            await eventually(stored, {"H2": 1, "H3": 1})
        assert ing.metrics.value("firewatch_ingest_retained_clockless_total") == 1
    finally:
        await ing.stop()
