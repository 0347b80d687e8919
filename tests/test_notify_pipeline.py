"""A simulated panel fire alarm through the real alerting pipeline pages the duty officer, and nobody else.

Detect → correlate → lifecycle → change feed → route → escalation → e-mail (real SMTP) and ntfy (real HTTP).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from firewatch.alerting.config import load as alerting_config
from firewatch.alerting.pipeline import Pipeline
from firewatch.contract.db import Alert, Store, open_store
from firewatch.contract.payload import parse
from firewatch.notify import Stage, acknowledge
from firewatch.notify.config import NotifyConfig, Route, Step
from firewatch.notify.escalator import Escalator
from firewatch.notify.roster import load_yaml
from tests.notify_servers import Clock, HttpSink, SmtpInbox, ntfy_posts


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    st = await open_store(f"sqlite:///{tmp_path}/fw.db")
    yield st
    await st.aclose()


async def until(check: object, timeout_s: float = 20) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def test_panel_fire_event_pages_on_duty_officer_escalates_and_stops_on_ack(
    store: Store, inbox: SmtpInbox, sink: HttpSink
) -> None:
    await load_yaml(store, f"""
people:
  - {{id: zhang, name: 张伟, channels: ["{inbox.url('zhang@example.org')}", "ntfy://127.0.0.1:{sink.port}/zhang"]}}
  - {{id: boss, name: 刘主任, channels: ["{inbox.url('boss@example.org')}"]}}
groups:
  - {{id: duty, members: [zhang]}}
  - {{id: leaders, members: [boss]}}
""")
    clock = Clock()
    config = NotifyConfig(
        routes=[Route(name="fire", severity=["fire"], steps=[Step(notify=["group:duty"], wait_min=3),
                                                               Step(notify=["group:leaders"], wait_min=10)])],
        secret="s", public_url="https://fw.example.org", backoff_s=0.01,
    )
    pipeline = Pipeline(alerting_config({}), store)
    await pipeline.start()
    escalator = Escalator(store, config, clock)
    task = asyncio.create_task(Stage(store.url, config, clock).serve(pipeline.feed.subscribe()))
    try:
        event = {"ts": clock.now, "seq": 1, "kind": "panel", "event": "fire", "loop": 1, "point": 23,
                 "zone": "3F east", "component": "smoke"}
        parsed = parse("fire/v1/510104/P1/event", json.dumps(event).encode(), clock.now)
        assert not parsed.rejections
        changes = await pipeline.process(parsed.records, now_ms=clock.now)
        [fired] = [c for c in changes if c.kind == "fired"]
        assert fired.alert.severity == "fire"

        await until(lambda: inbox.to("zhang@example.org") and ntfy_posts(sink, "zhang"))
        assert "3F east" in inbox.to("zhang@example.org")[0]["Subject"] + inbox.to("zhang@example.org")[0].get_body(
            preferencelist=("plain",)).get_content()
        assert inbox.to("boss@example.org") == []

        clock.advance(minutes=3)
        await escalator.tick()
        await escalator.drain()
        assert len(inbox.to("boss@example.org")) == 1, "ignored for 3 minutes, the leader is paged"

        await acknowledge(store, config, fired.alert.id, "boss", "on_way", "", clock.now)
        for _ in range(3):
            clock.advance(minutes=10)
            await escalator.tick()
        await escalator.drain()
        assert len(inbox.to("zhang@example.org")) == 1, "the chain stopped at the acknowledgement"
        later = [m["Subject"] for m in inbox.to("boss@example.org")[1:]]
        assert len(later) == 1 and "提醒" in later[0], "only the 30-minute reminder to whoever took it"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_hydrants_losing_pressure_together_page_once_as_a_water_main(store: Store, sink: HttpSink) -> None:
    await load_yaml(store, f"""
people: [{{id: water, channels: ["webhook+{sink.base}/water"]}}]
groups: [{{id: water, members: [water]}}]
""")
    clock = Clock()
    config = NotifyConfig(routes=[Route(name="water", kind=["hydrant"], steps=[Step(notify=["group:water"])])],
                          secret="s", public_url="https://fw", backoff_s=0.01)
    pipeline = Pipeline(alerting_config({"clock": "event"}), store)
    await pipeline.start()
    changes = pipeline.feed.subscribe()
    escalator = Escalator(store, config, clock)
    t0 = clock.now
    for minute in range(12):
        for i in range(6):
            ts = t0 + minute * 60_000 + i * 1000
            body = {"ts": ts, "seq": minute, "kind": "hydrant",
                    "m": {"pressure_mpa": 0.32 if minute < 3 else 0.05, "battery_pct": 80}}
            await pipeline.process(parse(f"fire/v1/510104/H{i}/telemetry", json.dumps(body).encode(), ts).records,
                                   now_ms=ts)
    seen = changes.drain()
    assert any(c.alert.rule == "water_main" for c in seen)
    for change in seen:
        await escalator.handle(change)
    clock.advance(seconds=31)
    await escalator.tick()
    await escalator.drain()
    [page] = [json.loads(r.body) for r in sink.at("/water")]
    assert page["alert"]["rule"] == "water_main"
    still_open = {c.alert.id for c in seen if c.alert.device_id} - {c.alert.id for c in seen if c.kind == "resolved"}
    assert len(still_open) == 6
    assert f"另有 {len(still_open)} 条同类告警" in page["text"], page["text"]


async def test_an_acknowledgement_from_the_console_stops_the_escalation(store: Store, sink: HttpSink) -> None:
    await load_yaml(store, f"""
people: [{{id: zhang, channels: ["webhook+{sink.base}/zhang"]}}]
groups: [{{id: duty, members: [zhang]}}]
""")
    clock = Clock()
    config = NotifyConfig(routes=[Route(name="fire", steps=[Step(notify=["group:duty"], wait_min=2)], repeat=5)],
                          secret="s", public_url="https://fw", backoff_s=0.01)
    pipeline = Pipeline(alerting_config({}), store)
    await pipeline.start()
    changes = pipeline.feed.subscribe()
    escalator = Escalator(store, config, clock)
    event = {"ts": clock.now, "seq": 1, "kind": "panel", "event": "fire", "loop": 1, "point": 5, "zone": "B1"}
    await pipeline.process(parse("fire/v1/510104/P7/event", json.dumps(event).encode(), clock.now).records,
                           now_ms=clock.now)
    for change in changes.drain():
        await escalator.handle(change)

    async with store.session() as s, s.begin():  # what the api's acknowledge endpoint does
        alert = (await s.scalars(select(Alert).where(Alert.state == "firing"))).one()
        alert.state, alert.acknowledged_by, alert.acknowledged_ms = "acknowledged", "operator-1", clock.now
        await store.audit(s, "operator-1", "acknowledge", f"alert:{alert.id}")
    await pipeline.sync()
    for change in changes.drain():
        await escalator.handle(change)

    for _ in range(5):
        clock.advance(minutes=2)
        await escalator.tick()
    await escalator.drain()
    assert [json.loads(r.body)["alert"]["id"] for r in sink.at("/zhang")] == [alert.id], "one page, then quiet"
