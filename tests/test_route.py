"""Routing: which route, grouping a storm into one message, inhibition, parents, silences; fire never waits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from firewatch.alerting.changes import AlertChange, ChangeFeed
from firewatch.contract.db import AuditEntry, Silence, Store, open_store
from firewatch.notify import Stage
from firewatch.notify.config import NotifyConfig, Route, Step
from firewatch.notify.escalations import Escalation, EscalationMember
from firewatch.notify.escalator import Escalator
from firewatch.notify.roster import load_yaml
from firewatch.notify.route import Router
from tests.notify_servers import Clock, HttpSink, add_alert, audit_changes, set_state


@pytest.fixture
async def store(tmp_path: Path, sink: HttpSink) -> AsyncIterator[Store]:
    st = await open_store(f"sqlite:///{tmp_path}/fw.db")
    await load_yaml(st, f"""
people:
  - {{id: duty1, channels: ["webhook+{sink.base}/duty1"]}}
  - {{id: water, channels: ["webhook+{sink.base}/water"]}}
groups:
  - {{id: duty, members: [duty1]}}
  - {{id: water, members: [water]}}
""")
    yield st
    await st.aclose()


ROUTES = [
    Route(name="hydrants", kind=["hydrant"], district=["510104"], steps=[Step(notify=["group:water"])],
          group_by=["district", "rule"], group_wait_s=60),
    Route(name="all", severity=["warning", "critical", "fire"], steps=[Step(notify=["group:duty"])],
          group_by=["district", "rule"], group_wait_s=60),
]


def escalator(store: Store, clock: Clock) -> Escalator:
    return Escalator(store, NotifyConfig(routes=ROUTES, secret="s", public_url="https://fw", backoff_s=0.01), clock)


def texts(sink: HttpSink, who: str) -> list[dict[str, object]]:
    return [json.loads(r.body) for r in sink.at(f"/{who}")]


async def test_routes_match_in_order_and_unmatched_alerts_are_not_paged(store: Store) -> None:
    router = Router(NotifyConfig(routes=ROUTES, secret="s"))
    hydrant = await add_alert(store, 0, kind="hydrant", rule="pressure_low", severity="warning", device_id="H1")
    elsewhere = await add_alert(store, 0, kind="hydrant", rule="pressure_low", severity="warning",
                                device_id="H2", district="510105")
    info = await add_alert(store, 0, kind="electrical", rule="baseline", severity="info", device_id="E1")
    assert router.match(hydrant).name == "hydrants"
    assert router.match(elsewhere).name == "all"
    assert router.match(info) is None


async def test_a_storm_becomes_one_message_with_a_count(store: Store, sink: HttpSink) -> None:
    clock = Clock()
    esc = escalator(store, clock)
    for i in range(12):
        a = await add_alert(store, clock.now, kind="electrical", rule="residual_current", severity="warning",
                            device_id=f"E{i}", summary="剩余电流超限")
        await esc.handle(AlertChange("fired", a, None))
        clock.advance(seconds=2)
    await esc.tick()
    await esc.drain()
    assert texts(sink, "duty1") == [], "non-fire alerts wait for their group"

    clock.advance(seconds=60)
    await esc.tick()
    await esc.drain()
    [msg] = texts(sink, "duty1")
    assert "另有 11 条同类告警" in str(msg["text"])


async def test_a_fire_never_waits_for_grouping(store: Store, sink: HttpSink) -> None:
    clock = Clock()
    esc = escalator(store, clock)
    warning = await add_alert(store, clock.now, kind="panel", rule="panel_fault", severity="warning", device_id="P9")
    await esc.handle(AlertChange("fired", warning, None))
    fire = await add_alert(store, clock.now, device_id="P9")
    await esc.handle(AlertChange("fired", fire, None))
    await esc.drain()
    [msg] = texts(sink, "duty1")
    assert msg["severity"] == "fire"


async def test_panel_offline_inhibits_its_faults_but_never_its_fire_alarms(store: Store, sink: HttpSink) -> None:
    clock = Clock()
    esc = escalator(store, clock)
    offline = await add_alert(store, clock.now, rule="offline", severity="critical", device_id="P7",
                              summary="控制器离线")
    await esc.handle(AlertChange("fired", offline, None))
    fault = await add_alert(store, clock.now, rule="panel_fault", severity="warning", device_id="P7")
    await esc.handle(AlertChange("fired", fault, None))
    other = await add_alert(store, clock.now, rule="panel_fault", severity="warning", device_id="P8",
                            district="510199")
    await esc.handle(AlertChange("fired", other, None))
    fire = await add_alert(store, clock.now, device_id="P7")
    await esc.handle(AlertChange("fired", fire, None))
    clock.advance(minutes=2)
    await esc.tick()
    await esc.drain()
    about = sorted(m["alert"]["id"] for m in texts(sink, "duty1"))  # type: ignore[index]
    assert about == sorted([offline.id, other.id, fire.id])
    async with store.session() as s:
        why = (await s.scalars(select(AuditEntry).where(AuditEntry.subject == f"alert:{fault.id}"))).one()
    assert why.action == "not_paged" and why.detail["reason"] == f"alert:{offline.id}"


async def test_a_water_main_alert_stands_for_its_hydrants(store: Store, sink: HttpSink) -> None:
    clock = Clock()
    esc = escalator(store, clock)
    early = await add_alert(store, clock.now, kind="hydrant", rule="pressure_low", severity="critical",
                            device_id="H0", summary="消火栓压力低")
    await esc.handle(AlertChange("fired", early, None))
    main = await add_alert(store, clock.now, kind="hydrant", rule="water_main", severity="critical",
                           device_id="", fingerprint="510104:water_main", summary="市政供水管网压力下降")
    await esc.handle(AlertChange("fired", main, None))
    early.parent_id = main.id
    await _set_parent(store, early.id, main.id)
    await esc.handle(AlertChange("updated", early, None))
    for i in range(1, 6):
        h = await add_alert(store, clock.now, kind="hydrant", rule="pressure_low", severity="critical",
                            device_id=f"H{i}", parent_id=main.id)
        await esc.handle(AlertChange("fired", h, None))
    clock.advance(minutes=2)
    await esc.tick()
    await esc.drain()
    [msg] = texts(sink, "water")
    assert msg["alert"]["id"] == main.id  # type: ignore[index]
    assert "另有 6 条同类告警" in str(msg["text"])


async def _set_parent(store: Store, alert_id: int, parent_id: int) -> None:
    from firewatch.contract.db import Alert

    async with store.session() as s, s.begin():
        (await s.get(Alert, alert_id)).parent_id = parent_id


async def test_silenced_alerts_are_not_paged_and_say_why(store: Store, sink: HttpSink) -> None:
    clock = Clock()
    esc = escalator(store, clock)
    fire = await add_alert(store, clock.now, device_id="P3")
    await esc.handle(AlertChange("fired", fire, None, silenced=True))
    await esc.drain()
    assert texts(sink, "duty1") == []
    async with store.session() as s:
        why = (await s.scalars(select(AuditEntry).where(AuditEntry.subject == f"alert:{fire.id}"))).one()
    assert why.detail["reason"] == "silence"


async def test_a_silence_set_while_paging_pauses_it_until_it_ends(store: Store, sink: HttpSink) -> None:
    clock = Clock()
    esc = Escalator(store, NotifyConfig(
        routes=[Route(name="all", steps=[Step(notify=["group:duty"], wait_min=5)], repeat=10)],
        secret="s", public_url="https://fw", backoff_s=0.01), clock)
    fire = await add_alert(store, clock.now, device_id="P4", site="Tower")
    await esc.handle(AlertChange("fired", fire, None))
    async with store.session() as s, s.begin():
        s.add(Silence(site="Tower", starts_ms=clock.now, ends_ms=clock.now + 30 * 60_000, created_by="ops",
                      reason="maintenance"))
    for _ in range(5):
        clock.advance(minutes=5)
        await esc.tick()
    await esc.drain()
    assert len(texts(sink, "duty1")) == 1, "paged during the maintenance window"
    clock.advance(minutes=6)
    await esc.tick()
    await esc.drain()
    assert len(texts(sink, "duty1")) == 2, "paging goes on once the silence ends"


async def test_a_group_goes_on_paging_when_the_alert_it_was_about_resolves(store: Store, sink: HttpSink) -> None:
    clock = Clock()
    esc = Escalator(store, NotifyConfig(
        routes=[Route(name="all", steps=[Step(notify=["group:duty"], wait_min=5)], repeat=3)],
        secret="s", public_url="https://fw", backoff_s=0.01), clock)
    first = await add_alert(store, clock.now, kind="electrical", rule="residual_current", severity="warning",
                            device_id="E1", summary="E1 剩余电流")
    second = await add_alert(store, clock.now, kind="electrical", rule="residual_current", severity="warning",
                             device_id="E2", summary="E2 剩余电流")
    for a in (first, second):
        await esc.handle(AlertChange("fired", a, None))
    clock.advance(seconds=30)
    await esc.tick()
    resolved = await set_state(store, first.id, "resolved", clock.now)
    await esc.handle(AlertChange("resolved", resolved, None))
    clock.advance(minutes=5)
    await esc.tick()
    await esc.drain()
    pages = texts(sink, "duty1")
    assert [p["alert"]["id"] for p in pages] == [first.id, second.id]  # type: ignore[index]
    assert pages[1]["title"] == "【预警】E2 剩余电流"


async def test_in_a_storm_the_fire_is_handled_before_the_changes_queued_ahead_of_it(
    store: Store, sink: HttpSink
) -> None:
    clock = Clock()
    esc = escalator(store, clock)
    feed = ChangeFeed()
    changes = feed.subscribe()
    storm = [await add_alert(store, clock.now, kind="hydrant", rule="offline", severity="warning",
                             device_id=f"H{i}", district="510199") for i in range(40)]
    fire = await add_alert(store, clock.now, device_id="P1")
    await audit_changes(store, "fired", [*storm, fire])
    feed.publish([*(AlertChange("fired", a, None) for a in storm), AlertChange("fired", fire, None)])
    task = asyncio.create_task(Stage(store.url, esc.config, clock).serve(changes))
    try:
        async with asyncio.timeout(30):
            while len(await _members(store)) < 41:
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    async with store.session() as s:
        first = (await s.scalars(select(Escalation).order_by(Escalation.id))).first()
    assert first is not None and first.alert_id == fire.id


async def _members(store: Store) -> list[int]:
    async with store.session() as s:
        return list((await s.scalars(select(EscalationMember.alert_id))).all())
