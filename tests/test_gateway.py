"""The GB/T 26875.3 gateway against real parts: simulated transmission devices over real TCP, a real
Mosquitto, the real SQL store and the real alerting service."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import orjson
from sqlalchemy import select

from firewatch.alerting.service import AlertingService
from firewatch.contract.db import Alert, AlertState, Device, Severity, open_store
from firewatch.contract.settings import Settings
from firewatch.gateway import DUTY_REQUESTS, DutyCheck, DutyRequest, DutyResult, Gateway
from firewatch.gateway.adaptor import Message
from firewatch.gateway.frame import Command, Frame, encode
from firewatch.gateway.publisher import Publisher, request_duty_check
from firewatch.gateway.units import State
from firewatch.services import free_port
from firewatch.simulators.gb26875 import TransmissionDevice
from tests.conftest import OwnServices

CENTER = "000000000001"


def gateway_settings(settings: Settings, **gb: object) -> Settings:
    port = free_port()
    conf = {"listen": [f"127.0.0.1:{port}"], "center_address": CENTER, "metrics_port": 0, "timeout_s": 1.0,
            "duty_shifts": [], **gb}
    return settings.model_copy(update={"gateway": type(settings.gateway)(gb26875=conf)})


@asynccontextmanager
async def running(settings: Settings, registered: dict[str, tuple[str, str]] | None = None
                  ) -> AsyncIterator[Gateway]:
    store = await open_store(settings.store.url)
    async with store.session() as s, s.begin():
        for address, (district, device_id) in (registered or {}).items():
            s.add(Device(id=device_id, kind="panel", district=district, transmitter_address=address))
    gateway = Gateway(settings, store)
    await gateway.start()
    try:
        await asyncio.wait_for(gateway.publisher.connected.wait(), 10)
        yield gateway
    finally:
        await gateway.stop()
        await store.aclose()
        # The statuses are retained: clear them, so later tests on the shared broker never see them.
        async with aiomqtt.Client("127.0.0.1", settings.mqtt.port) as client:
            for link in gateway.links.values():
                t = link.target
                await client.publish(f"fire/v1/{t.district}/{t.device_id}/status", b"", qos=1, retain=True)


@asynccontextmanager
async def device(gateway: Gateway, address: str, **kw: object) -> AsyncIterator[TransmissionDevice]:
    d = TransmissionDevice(address, CENTER, **kw)  # type: ignore[arg-type]
    await d.connect("127.0.0.1", gateway.ports[0])
    try:
        yield d
    finally:
        await d.close()


async def collect(client: aiomqtt.Client, n: int, timeout: float = 15.0) -> list[tuple[str, dict]]:
    got: list[tuple[str, dict]] = []
    async with asyncio.timeout(timeout):
        async for m in client.messages:
            got.append((m.topic.value, orjson.loads(m.payload)))
            if len(got) >= n:
                return got
    return got


async def test_a_fire_is_published_before_the_send_is_confirmed_and_bad_frames_are_denied(
        settings: Settings) -> None:
    s = gateway_settings(settings)
    async with running(s, {"00000000a001": ("510104", "P-100")}) as gw, \
            aiomqtt.Client("127.0.0.1", s.mqtt.port) as sub:
        await sub.subscribe("fire/v1/510104/P-100/#", qos=1)
        async with device(gw, "00000000a001") as d:
            d.send_raw(b"\x00garbage" + encode(Frame(77, Command.SEND, d.address, CENTER, b"\x02\x01\x00"))[:-3]
                       + b"\x00##")  # bad checksum: denied with its serial
            out = await d.component(State.RUNNING | State.FIRE, loop=1, point=23, zone="3F east")
            assert out.sends == 1
            got = await collect(sub, 2)
        events = {doc.get("event"): (topic, doc) for topic, doc in got if "event" in doc}
        topic, fire = events["fire"]
        assert topic == "fire/v1/510104/P-100/event"
        assert (fire["loop"], fire["point"], fire["zone"], fire["component"]) == (1, 23, "3F east", "smoke detector")
        assert abs(fire["ts"] - time.time() * 1000) < 5000
        assert any(topic.endswith("/status") and doc["online"] for topic, doc in got)
        assert [f.serial for f in d.denied] == [77]
        assert gw.metrics.value("firewatch_gateway_rejected_total", reason="bad_checksum") == 1
        assert gw.metrics.value("firewatch_gateway_rejected_total", reason="skipped") == 1
        assert gw.metrics.value("firewatch_gateway_confirmed_total") >= 1


async def test_broker_stopped_mid_stream_the_device_resends_and_nothing_is_lost(
        tmp_path: Path, own_services: OwnServices, settings: Settings) -> None:
    broker = own_services.mosquitto()
    s = gateway_settings(settings.model_copy(update={"mqtt": settings.mqtt.model_copy(update={"port": broker.port})}))
    received: list[dict] = []

    async def subscriber() -> None:
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", broker.port, identifier="gw-test-sub", clean_session=False) as c:
                    await c.subscribe("fire/v1/unassigned/+/event", qos=1)
                    async for m in c.messages:
                        received.append(orjson.loads(m.payload))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    sub = asyncio.create_task(subscriber())
    try:
        async with running(s) as gw, device(gw, "00000000b002", resend_s=1.5) as d:
            await d.component(State.RUNNING | State.FIRE, loop=2, point=1)
            broker.stop()
            sends = [asyncio.create_task(d.component(State.RUNNING | State.FIRE, loop=2, point=p)) for p in (2, 3, 4)]
            await asyncio.sleep(3)
            assert not any(t.done() for t in sends), "a send was confirmed while the broker was down"
            assert gw.metrics.value("firewatch_gateway_unconfirmed_total") >= 3
            broker.start()
            outs = await asyncio.wait_for(asyncio.gather(*sends), 30)
            assert all(o.sends >= 2 for o in outs)
            await asyncio.sleep(1)
    finally:
        sub.cancel()
    points = {doc["point"] for doc in received if doc["event"] == "fire"}
    assert points == {1, 2, 3, 4}


async def test_a_fire_from_an_unregistered_address_becomes_an_alert(settings: Settings) -> None:
    s = gateway_settings(settings)
    alerting = AlertingService(s)
    await alerting.start()
    try:
        await asyncio.wait_for(alerting.ready.wait(), 10)
        async with running(s) as gw, device(gw, "0000abcdef12") as d:
            await d.component(State.RUNNING | State.FIRE, loop=3, point=7, zone="地下车库")
            assert gw.metrics.value("firewatch_gateway_unregistered_devices") == 1

            async def fire() -> Alert | None:
                async with alerting.store.session() as ss:  # type: ignore[union-attr]
                    return (await ss.execute(select(Alert).where(Alert.rule == "fire"))).scalars().first()

            deadline = time.monotonic() + 15
            while (alert := await fire()) is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        assert alert is not None
        assert (alert.device_id, alert.district, alert.severity, alert.state) == (
            "gb-0000abcdef12", "unassigned", Severity.FIRE, AlertState.FIRING)
        assert "地下车库" in alert.summary
    finally:
        await alerting.stop()


async def duty_rows(gw: Gateway) -> list[DutyCheck]:
    async with gw.store.session() as s:
        return list((await s.execute(select(DutyCheck).order_by(DutyCheck.id))).scalars())


async def test_duty_check_round_trip_and_a_miss_becomes_an_alert(settings: Settings) -> None:
    s = gateway_settings(settings, duty_window_s=10)
    alerting = AlertingService(s)
    await alerting.start()
    try:
        await asyncio.wait_for(alerting.ready.wait(), 10)
        async with running(s, {"00000000c001": ("510105", "P-ANS"), "00000000c002": ("510105", "P-IGN")}) as gw, \
                device(gw, "00000000c001", duty_delay_s=0.3) as answers, \
                device(gw, "00000000c002", answers_duty=False) as ignores:
            await answers.heartbeat()
            await ignores.heartbeat()
            async with aiomqtt.Client("127.0.0.1", s.mqtt.port) as client:  # as the api and the CLI ask
                await client.publish(DUTY_REQUESTS, DutyRequest("r1", "desk 3", district="510105").encode(), qos=1)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                rows = await duty_rows(gw)
                if len(rows) == 2 and all(r.result != DutyResult.PENDING for r in rows):
                    break
                await asyncio.sleep(0.2)
            by = {r.device_id: r for r in rows}
            assert answers.duty_checks == 1 and ignores.duty_checks == 1
            assert by["P-ANS"].result == DutyResult.ANSWERED and 0.2 < by["P-ANS"].response_s < 5
            assert by["P-IGN"].result == DutyResult.MISSED and by["P-IGN"].requested_by == "desk 3"

            async def missed() -> Alert | None:
                async with alerting.store.session() as ss:  # type: ignore[union-attr]
                    return (await ss.execute(select(Alert).where(Alert.rule == "duty_check_missed"))).scalars().first()

            deadline = time.monotonic() + 15
            while (alert := await missed()) is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        assert alert is not None and alert.device_id == "P-IGN" and alert.severity == Severity.CRITICAL
        assert alert.summary == "control room did not answer the duty check"
    finally:
        await alerting.stop()


async def test_a_silent_link_goes_offline_and_comes_back(settings: Settings) -> None:
    s = gateway_settings(settings, inspection_period_s=5, clock_skew_s=30)
    async with running(s, {"00000000d001": ("510106", "P-OFF")}) as gw, \
            aiomqtt.Client("127.0.0.1", s.mqtt.port) as sub:
        await sub.subscribe("fire/v1/510106/P-OFF/status", qos=1)
        async with device(gw, "00000000d001", clock_offset_s=600) as d:
            await d.heartbeat()
            (_, online), = await collect(sub, 1)
            assert online["online"] is True
            deadline = time.monotonic() + 5
            while d.clock_syncs == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert d.clock_syncs == 1  # 10 minutes off: synced
            deadline = time.monotonic() + 10
            while not any(f.command == Command.REQUEST for f in d.received) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(4)  # silent but answering inspections: still online
            assert any(f.command == Command.REQUEST for f in d.received), "the gateway inspects a silent link"
        (_, offline), = await collect(sub, 1, timeout=15)  # disconnected: silent past its period
        assert offline["online"] is False
        async with device(gw, "00000000d001") as d:
            await d.heartbeat()
            (_, back), = await collect(sub, 1)
        assert back["online"] is True


async def test_a_stopped_gateway_leaves_the_broker_and_hears_no_more_requests(settings: Settings) -> None:
    """Its connection closed at stop, not left to the broker's keep-alive: a duty check asked after
    it stopped reaches the gateway that runs, never the stopped one."""
    heard: dict[str, list[bytes]] = {"stopped": [], "running": []}

    def publisher(name: str) -> Publisher:
        async def on_request(raw: bytes) -> None:
            heard[name].append(raw)
        # a client id of its own: one process's gateways would otherwise take each other's session over
        return Publisher(settings.mqtt.model_copy(update={"client_id_prefix": name}), 2.0, on_request)

    stopped, running_ = publisher("stopped"), publisher("running")
    tasks = [asyncio.create_task(p.run()) for p in (stopped, running_)]
    await asyncio.wait_for(asyncio.gather(stopped.connected.wait(), running_.connected.wait()), 10)
    tasks[0].cancel()
    await asyncio.gather(tasks[0], return_exceptions=True)
    try:
        await request_duty_check(settings.mqtt, DutyRequest("after-stop", "operator", None, None, None))
        async with asyncio.timeout(10):
            while not heard["running"]:
                await asyncio.sleep(0.01)
        assert heard["stopped"] == []
        assert not await stopped.publish([Message("fire/v1/d1/P1/event", b"{}")])
    finally:
        tasks[1].cancel()
        await asyncio.gather(tasks[1], return_exceptions=True)
