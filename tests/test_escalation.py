"""Escalation against real receivers: e-mail through a real SMTP server, ntfy and webhooks over real HTTP.

Time is the test's clock: the escalation's timers only move when the test turns it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from email.header import decode_header, make_header
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from firewatch.alerting.changes import AlertChange
from firewatch.contract.db import AuditEntry, Device, Store, open_store
from firewatch.notify import acknowledge
from firewatch.notify.config import NotifyConfig, Route, Step
from firewatch.notify.delivery import Delivery, Dispatcher, Message, MessageState
from firewatch.notify.escalations import Escalation, PagingState
from firewatch.notify.escalator import Escalator
from firewatch.notify.roster import load_yaml
from tests.notify_servers import Clock, HttpSink, SmtpInbox, add_alert, ntfy_posts, set_state
from tests.postgres import database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        st = await open_store(f"sqlite:///{tmp_path}/fw.db")
        yield st
        await st.aclose()
        return
    with database("fw_escalation") as url:
        st = await open_store(url)
        yield st
        await st.aclose()


def roster_yaml(inbox: SmtpInbox, sink: HttpSink) -> str:
    return f"""
people:
  - id: zhang
    name: 张伟
    channels: ["{inbox.url('zhang@example.org')}", "ntfy://127.0.0.1:{sink.port}/zhang"]
  - id: li
    name: 李娜
    channels: ["{inbox.url('li@example.org')}"]
  - id: wang
    name: 王强
    language: en
    channels: ["{inbox.url('wang@example.org')}"]
groups:
  - id: duty
    members: [zhang]
  - id: leaders
    members: [li, wang]
"""


def config(sink: HttpSink, **over: object) -> NotifyConfig:
    route = Route(
        name="fire", severity=["fire", "critical"], repeat=2, reminder_min=30, group_wait_s=0,
        steps=[Step(notify=["group:duty", "channel:center"], wait_min=5), Step(notify=["group:leaders"], wait_min=10)],
    )
    values: dict[str, object] = {
        "routes": [route], "channels": {"center": f"webhook+{sink.base}/center"},
        "public_url": "https://fw.example.org", "secret": "test-secret", "backoff_s": 0.01,
    }
    return NotifyConfig(**(values | over))


async def setup(store: Store, inbox: SmtpInbox, sink: HttpSink) -> None:
    await load_yaml(store, roster_yaml(inbox, sink))
    async with store.session() as s, s.begin():
        s.add(Device(id="P1", kind="panel", district="510104", site="万达广场", address="锦江区红星路三段1号"))


async def test_fire_pages_duty_on_every_channel_with_what_where_and_link(
    store: Store, inbox: SmtpInbox, sink: HttpSink
) -> None:
    await setup(store, inbox, sink)
    clock = Clock()
    esc = Escalator(store, config(sink), clock)
    alert = await add_alert(store, clock.now, probable=True, score=87, reasons=["3 points in zone", "no reset"])
    await esc.handle(AlertChange("fired", alert, None))
    await esc.drain()

    [mail] = inbox.to("zhang@example.org")
    body = mail.get_body(preferencelist=("plain",)).get_content()
    assert "【火警】火灾报警 3F east" in mail["Subject"]
    for expected in ("万达广场", "510104", "锦江区红星路三段1号", "3F east", "疑似真实火情", "no reset",
                     f"https://fw.example.org/ack/{alert.id}/"):
        assert expected in body
    [push] = ntfy_posts(sink, "zhang")
    assert push.headers["X-Priority"] == "max"
    actions = str(make_header(decode_header(push.headers["X-Actions"])))
    assert f"https://fw.example.org/ack/{alert.id}/" in actions and "确认" in actions
    assert "method=POST" in actions
    [hook] = sink.at("/center")
    data = json.loads(hook.body)
    assert data["alert"]["id"] == alert.id and data["severity"] == "fire" and data["purpose"] == "page"
    assert inbox.to("li@example.org") == []


async def test_unanswered_alert_climbs_the_chain_repeats_then_stops(
    store: Store, inbox: SmtpInbox, sink: HttpSink
) -> None:
    await setup(store, inbox, sink)
    clock = Clock()
    esc = Escalator(store, config(sink), clock)
    alert = await add_alert(store, clock.now)
    await esc.handle(AlertChange("fired", alert, None))
    await esc.drain()

    clock.advance(minutes=4, seconds=59)
    await esc.tick()
    await esc.drain()
    assert inbox.to("li@example.org") == []

    clock.advance(seconds=1)
    await esc.tick()
    await esc.drain()
    assert len(inbox.to("li@example.org")) == 1
    assert "[FIRE]" in inbox.to("wang@example.org")[0]["Subject"]

    clock.advance(minutes=10)
    await esc.tick()
    await esc.drain()
    assert len(inbox.to("zhang@example.org")) == 2

    clock.advance(minutes=5)
    await esc.tick()
    clock.advance(minutes=60)
    await esc.tick()
    await esc.tick()
    await esc.drain()
    assert len(inbox.to("zhang@example.org")) == 2
    assert len(inbox.to("li@example.org")) == 2
    async with store.session() as s:
        assert (await s.scalar(select(Escalation.state))) == PagingState.EXHAUSTED
        gave_up = (await s.scalars(select(AuditEntry).where(AuditEntry.action == "not_acknowledged"))).all()
    assert [(a.subject, a.detail["rounds"]) for a in gave_up] == [(f"alert:{alert.id}", 2)]


async def test_ack_stops_paging_reminds_then_all_clear_to_everyone_told(
    store: Store, inbox: SmtpInbox, sink: HttpSink
) -> None:
    await setup(store, inbox, sink)
    clock = Clock()
    cfg = config(sink)
    esc = Escalator(store, cfg, clock)
    alert = await add_alert(store, clock.now)
    await esc.handle(AlertChange("fired", alert, None))
    clock.advance(minutes=5)
    await esc.tick()
    await esc.drain()

    clock.advance(minutes=1)
    await acknowledge(store, cfg, alert.id, "li", "on_way", "", clock.now)
    for _ in range(4):
        clock.advance(minutes=9)
        await esc.tick()
    await esc.drain()
    assert len(inbox.to("zhang@example.org")) == 1, "paging went on after the acknowledgement"
    reminders = [m for m in inbox.to("li@example.org") if "提醒" in m["Subject"]]
    assert len(reminders) == 1, "a fire acknowledged but not resolved is reminded after 30 min"

    resolved = await set_state(store, alert.id, "resolved", clock.now)
    await esc.handle(AlertChange("resolved", resolved, None))
    await esc.drain()
    for who in ("zhang", "li", "wang"):
        assert any("已解除" in m["Subject"] or "All clear" in m["Subject"] for m in inbox.to(f"{who}@example.org")), who
    assert any(json.loads(r.body)["purpose"] == "all_clear" for r in sink.at("/center"))


async def test_restart_mid_escalation_loses_no_step_and_doubles_none(
    store: Store, inbox: SmtpInbox, sink: HttpSink
) -> None:
    await setup(store, inbox, sink)
    clock = Clock()
    first = Escalator(store, config(sink), clock)
    alert = await add_alert(store, clock.now)
    await first.handle(AlertChange("fired", alert, None))
    await first.drain()
    await store.aclose()

    clock.advance(minutes=7)
    reopened = await open_store(store.url)
    second = Escalator(reopened, config(sink), clock)
    await second.resume()
    await second.tick()
    await second.drain()
    assert len(inbox.to("zhang@example.org")) == 1, "step 1 was sent again after the restart"
    assert len(inbox.to("li@example.org")) == 1, "step 2 came due while down and must go out once"
    await reopened.aclose()


class _DiesBeforeSending(Dispatcher):
    """The process dies right after the step was recorded, before any channel was called."""

    async def deliver(self, messages: list[Message]) -> None:
        return None


async def test_crash_between_recording_and_sending_sends_each_message_once_after_restart(
    store: Store, inbox: SmtpInbox, sink: HttpSink
) -> None:
    await setup(store, inbox, sink)
    clock = Clock()
    cfg = config(sink)
    doomed = Escalator(store, cfg, clock, dispatcher=_DiesBeforeSending(store, cfg, clock))
    alert = await add_alert(store, clock.now)
    await doomed.handle(AlertChange("fired", alert, None))
    await doomed.drain()
    assert inbox.messages == []

    restarted = Escalator(store, cfg, clock)
    await restarted.resume()
    await restarted.drain()
    await restarted.resume()
    await restarted.tick()
    await restarted.drain()
    assert len(inbox.to("zhang@example.org")) == 1
    assert len(ntfy_posts(sink, "zhang")) == 1 and len(sink.at("/center")) == 1
    assert inbox.to("li@example.org") == [], "the next step is not due yet"


async def test_failing_channel_is_retried_logged_and_delays_nobody(
    store: Store, inbox: SmtpInbox, sink: HttpSink
) -> None:
    await setup(store, inbox, sink)
    sink.hang.add("/center")
    clock = Clock()
    esc = Escalator(store, config(sink, send_timeout_s=3.0, retries=2), clock)
    alert = await add_alert(store, clock.now)
    await esc.handle(AlertChange("fired", alert, None))
    await esc.drain()

    assert len(inbox.to("zhang@example.org")) == 1
    async with store.session() as s:
        rows = (await s.execute(
            select(Delivery, Message).join(Message, Message.id == Delivery.message_id).order_by(Delivery.id)
        )).all()
    hook = [(d, m) for d, m in rows if m.channel.endswith("/center")]
    assert [d.ok for d, _ in hook] == [False, False]
    assert all("no answer" in d.error for d, _ in hook)
    assert await _state(store, hook[-1][1].id) == "failed"
    mail = next(d for d, m in rows if m.channel.startswith("mailto"))
    assert mail.ok and mail.id < hook[0][0].id, "the e-mail waited for the stuck webhook"
    assert "test-secret" not in " ".join(d.channel for d, _ in rows)


async def _state(store: Store, message_id: int) -> str:
    async with store.session() as s:
        return (await s.get(Message, message_id)).state


async def test_flood_is_rate_limited_per_person_but_fire_always_goes(
    store: Store, inbox: SmtpInbox, sink: HttpSink
) -> None:
    await setup(store, inbox, sink)
    clock = Clock()
    route = Route(name="all", steps=[Step(notify=["person:li"])], group_wait_s=0)
    esc = Escalator(store, config(sink, routes=[route], rate_limit={"per_person": 2, "window_s": 600}), clock)
    for i in range(5):
        a = await add_alert(store, clock.now, device_id=f"E{i}", rule="residual_current", severity="warning",
                            kind="electrical", summary=f"剩余电流 E{i}")
        await esc.handle(AlertChange("fired", a, None))
    for i in range(3):
        a = await add_alert(store, clock.now, device_id=f"P{i}", summary=f"火警 P{i}")
        await esc.handle(AlertChange("fired", a, None))
    await esc.drain()
    subjects = [m["Subject"] for m in inbox.to("li@example.org")]
    assert sum("预警" in s for s in subjects) == 2
    assert sum("火警" in s for s in subjects) == 3
    async with store.session() as s:
        held = (await s.scalars(select(Message).where(Message.state == MessageState.HELD))).all()
    assert len(held) == 3 and all(m.severity == "warning" for m in held)


async def test_an_alert_whose_change_a_crash_lost_is_paged_on_restart(
    store: Store, inbox: SmtpInbox, sink: HttpSink
) -> None:
    await setup(store, inbox, sink)
    clock = Clock()
    await add_alert(store, clock.now)  # stored by the lifecycle; the process died before notify saw it
    quiet = await add_alert(store, clock.now, device_id="P2", severity="info", rule="panel_test")
    restarted = Escalator(store, config(sink), clock)
    await restarted.resume()
    await restarted.drain()
    assert len(inbox.to("zhang@example.org")) == 1
    await restarted.resume()
    await restarted.drain()
    assert len(inbox.to("zhang@example.org")) == 1, "caught up once, not at every restart"
    async with store.session() as s:
        why = (await s.scalars(select(AuditEntry).where(AuditEntry.subject == f"alert:{quiet.id}"))).all()
    assert [a.action for a in why] == ["not_paged"]


async def test_whoever_comes_on_duty_is_briefed_on_open_alerts_once(
    store: Store, inbox: SmtpInbox, sink: HttpSink
) -> None:
    await setup(store, inbox, sink)
    await load_yaml(store, roster_yaml(inbox, sink) + """
shifts:
  - {group: duty, person: zhang, start: "08:00", end: "20:00"}
  - {group: duty, person: li, start: "20:00", end: "08:00"}
""".replace("members: [zhang]", "members: [zhang, li]"))
    evening = int(datetime(2026, 11, 23, 19, 50, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)
    clock = Clock(evening)
    esc = Escalator(store, config(sink), clock)
    fire = await add_alert(store, clock.now, summary="火灾报警 3F east")
    await esc.handle(AlertChange("fired", fire, None))
    await esc.tick()
    clock.advance(minutes=10, seconds=30)
    await esc.tick()
    await esc.tick()
    await esc.drain()
    briefings = [m for m in inbox.to("li@example.org") if "交接班" in m["Subject"]]
    assert len(briefings) == 1
    body = briefings[0].get_body(preferencelist=("plain",)).get_content()
    assert "火灾报警 3F east" in body and "未确认" in body and f"https://fw.example.org/ack/{fire.id}/" in body
    assert not [m for m in inbox.to("zhang@example.org") if "交接班" in m["Subject"]], "the one leaving is not briefed"


NIGHT_ROSTER = """
people:
  - {{id: zhang, name: 张伟, channels: ["webhook+{base}/zhang"]}}
  - {{id: chen, name: 陈新, channels: []}}
  - {{id: op, name: 值机员小周, channels: ["webhook+{base}/op"]}}
  - {{id: liu, name: 刘主任, channels: ["webhook+{base}/liu"]}}
groups:
  - {{id: duty, members: [zhang]}}
  - {{id: night, members: [{night}]}}
  - {{id: console, members: [op]}}
  - {{id: leaders, members: [liu]}}
shifts:
  - {{group: duty, person: zhang, start: "08:00", end: "20:00"}}
  - {{group: leaders, person: liu, start: "08:30", end: "17:30"}}
{night_shift}
"""


@pytest.mark.parametrize(
    ("night", "night_shift"),
    [("", ""), ("chen", '  - {group: night, person: chen, start: "20:00", end: "08:00"}')],
    ids=["night group empty", "on duty without a channel"],
)
async def test_a_fire_at_3am_with_nobody_reachable_pages_the_fallback_and_keeps_its_timers(
    store: Store, sink: HttpSink, night: str, night_shift: str
) -> None:
    await load_yaml(store, NIGHT_ROSTER.format(base=sink.base, night=night, night_shift=night_shift))
    three_am = int(datetime(2026, 11, 25, 3, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)
    clock = Clock(three_am)
    route = Route(name="fire", severity=["fire"], group_wait_s=0, repeat=2,
                  steps=[Step(notify=["group:night"], wait_min=5), Step(notify=["group:night"], wait_min=10)])
    cfg = NotifyConfig(routes=[route], public_url="https://fw.example.org", secret="s", backoff_s=0.01)
    esc = Escalator(store, cfg, clock)
    alert = await add_alert(store, clock.now)
    await esc.handle(AlertChange("fired", alert, None))
    await esc.drain()

    # The default fallback: the console operators and every leader, shifts or not (liu's ends at 17:30).
    assert [json.loads(r.body)["purpose"] for r in sink.at("/op")] == ["page"]
    assert [json.loads(r.body)["alert"]["id"] for r in sink.at("/liu")] == [alert.id]
    assert sink.at("/zhang") == [], "the day officer is in no fallback"
    async with store.session() as s:
        why = (await s.scalars(select(AuditEntry).where(AuditEntry.action == "nobody_reachable"))).all()
        row = (await s.scalars(select(Escalation))).one()
    assert [(a.subject, a.detail["targets"], a.detail["paged"]) for a in why] == [
        (f"alert:{alert.id}", ["group:night"], ["op", "liu"])
    ]
    assert (row.state, row.next_ms) == (PagingState.ACTIVE, three_am + 5 * 60_000), "the timers go on"
    assert esc.metrics.nobody_on_duty._value.get() == 1

    clock.advance(minutes=5)
    await esc.tick()
    await esc.drain()
    assert len(sink.at("/op")) == len(sink.at("/liu")) == 2, "the next step, on time, reaches the fallback again"
    await acknowledge(store, cfg, alert.id, "liu", "on_way", "", clock.now)
    clock.advance(minutes=10)
    await esc.tick()
    await esc.drain()
    assert len(sink.at("/op")) == 2, "an acknowledgement stops the fallback's paging too"


async def test_a_route_of_its_own_fallback_pages_that_one(store: Store, sink: HttpSink) -> None:
    await load_yaml(store, NIGHT_ROSTER.format(base=sink.base, night="", night_shift=""))
    route = Route(name="fire", severity=["fire"], group_wait_s=0, fallback=["person:zhang"],
                  steps=[Step(notify=["group:night"])])
    clock = Clock()
    esc = Escalator(store, NotifyConfig(routes=[route], secret="s", backoff_s=0.01), clock)
    await esc.handle(AlertChange("fired", await add_alert(store, clock.now), None))
    await esc.drain()
    assert (len(sink.at("/zhang")), sink.at("/op"), sink.at("/liu")) == (1, [], [])


async def test_messages_say_the_alert_and_its_reasons_in_the_readers_language_with_the_score(
    store: Store, inbox: SmtpInbox, sink: HttpSink
) -> None:
    """zh: from the rule's Chinese label, reasons translated, the score as 30 % (not rounded to 0); en as alerting said it."""
    await setup(store, inbox, sink)
    clock = Clock()
    route = Route(name="fire", severity=["fire"], group_wait_s=0,
                  steps=[Step(notify=["group:duty", "person:wang"])])
    esc = Escalator(store, NotifyConfig(routes=[route], secret="s", backoff_s=0.01), clock)
    alert = await add_alert(store, clock.now, rule="fire", summary="fire alarm: loop 1, point 23, 3F east, smoke",
                            probable=True, score=0.3, reasons=["3 points in zone 3F east within 120 s"])
    await esc.handle(AlertChange("fired", alert, None))
    await esc.drain()
    [zh] = inbox.to("zhang@example.org")
    body = zh.get_body(preferencelist=("plain",)).get_content()
    assert zh["Subject"] == "【火警】火警：3F east"
    assert "火警概率 30%：3F east 区 120 秒内 3 个点位报警" in body
    assert "fire alarm" not in body and "points in zone" not in body
    [en] = inbox.to("wang@example.org")  # wang reads English
    assert en["Subject"] == "[FIRE] fire alarm: loop 1, point 23, 3F east, smoke"
    assert "fire score 30%: 3 points in zone 3F east within 120 s" in en.get_body(preferencelist=("plain",)).get_content()
