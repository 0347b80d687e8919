"""The one-tap acknowledge page, served by the real api over HTTP, fed by a real escalation.

The escalator runs in the test with the test's clock; the api runs in its thread
on the same SQL store, as the alerting service and the api do in production.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import select

from firewatch.alerting.changes import AlertChange
from firewatch.contract.db import Alert, AuditEntry, Device, Store, open_store
from firewatch.contract.influx import Influx
from firewatch.contract.settings import Settings
from firewatch.notify import AckSigner, Claim, notify_config
from firewatch.notify.escalations import Escalation, PagingState
from firewatch.notify.escalator import Escalator
from firewatch.notify.roster import load_yaml
from tests.notify_servers import Clock, HttpSink, add_alert
from tests.test_api_server import ApiThread

ROUTE = {"name": "all", "steps": [{"notify": ["group:duty"], "wait_min": 5}], "group_wait_s": 0, "repeat": 5}


@pytest.fixture
def api(settings: Settings) -> Iterator[ApiThread]:
    server = ApiThread(settings)
    server.settings = server.settings.model_copy(
        update={"notify": {"public_url": server.url, "secret": "ack-test-secret", "routes": [ROUTE],
                           "backoff_s": 0.01}}
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def store(api: ApiThread) -> AsyncIterator[Store]:
    st = await open_store(api.settings.store.url)
    yield st
    await st.aclose()


class Paged:
    def __init__(self, escalator: Escalator, clock: Clock, alert: Alert, link: str) -> None:
        self.escalator, self.clock, self.alert, self.link = escalator, clock, alert, link


async def page_someone(api: ApiThread, store: Store, sink: HttpSink, **alert_fields: object) -> Paged:
    await load_yaml(store, f"""
people:
  - {{id: zhang, name: 张伟, channels: ["webhook+{sink.base}/zhang"]}}
groups:
  - {{id: duty, members: [zhang]}}
""")
    async with store.session() as s, s.begin():
        s.add(Device(id="E1", kind="electrical", district="510104", site="万达广场", address="红星路三段1号"))
    clock = Clock()
    escalator = Escalator(store, notify_config(api.settings), clock)
    fields = {"kind": "electrical", "device_id": "E1", "rule": "residual_current", "severity": "critical",
              "metric": "residual_ma", "value": 420.0, "threshold": 300.0, "unit": "mA",
              "summary": "剩余电流超限"} | alert_fields
    alert = await add_alert(store, clock.now - 5 * 60_000, **fields)
    await escalator.handle(AlertChange("fired", alert, None))
    await escalator.drain()
    [msg] = [json.loads(r.body) for r in sink.at("/zhang")]
    return Paged(escalator, clock, alert, msg["ack_url"])


async def stored(store: Store, alert_id: int) -> tuple[Alert, list[AuditEntry]]:
    async with store.session() as s:
        alert = await s.get(Alert, alert_id)
        audit = (await s.scalars(select(AuditEntry).where(AuditEntry.subject == f"alert:{alert_id}"))).all()
    return alert, list(audit)


async def test_page_shows_the_alert_and_false_alarm_tap_stops_escalation(
    api: ApiThread, store: Store, sink: HttpSink
) -> None:
    paged = await page_someone(api, store, sink)
    async with httpx.AsyncClient() as http:
        page = await http.get(paged.link)
        assert page.status_code == 200
        for expected in ("剩余电流超限", "万达广场", "红星路三段1号", "420mA", "300mA", "误报", "马上到"):
            assert expected in page.text
        done = await http.post(paged.link, data={"how": "false_alarm", "note": "检修时误碰"})
    assert done.status_code == 200 and "已记录为误报" in done.text
    alert, audit = await stored(store, paged.alert.id)
    assert alert.state == "acknowledged" and alert.acknowledged_by == "zhang"
    [entry] = [a for a in audit if a.action == "notify_false_alarm"]
    assert entry.actor == "zhang" and entry.detail["note"] == "检修时误碰" and entry.detail["via"] == "ack-link"

    paged.clock.advance(minutes=30)
    await paged.escalator.tick()
    await paged.escalator.drain()
    assert len(sink.at("/zhang")) == 1, "paging went on after the tap"


async def test_ntfy_action_url_acknowledges_with_a_bare_post(api: ApiThread, store: Store, sink: HttpSink) -> None:
    paged = await page_someone(api, store, sink)
    async with httpx.AsyncClient() as http:
        done = await http.post(paged.link + "/on_way")
    assert done.status_code == 200
    alert, audit = await stored(store, paged.alert.id)
    assert alert.state == "acknowledged"
    assert [a.detail["how"] for a in audit if a.action.startswith("notify_")] == ["on_way"]


async def test_expired_tampered_and_foreign_links_say_so_and_change_nothing(
    api: ApiThread, store: Store, sink: HttpSink
) -> None:
    paged = await page_someone(api, store, sink)
    other = await add_alert(store, paged.clock.now, device_id="E2", rule="cable_temp", summary="电缆温度高")
    signer = AckSigner("ack-test-secret", api.url)
    expired = signer.page_url(Claim(paged.alert.id, "zhang", paged.clock.now - 1))
    token = paged.link.rsplit("/", 1)[1]
    tampered = paged.link[:-2] + ("AA" if not paged.link.endswith("AA") else "BB")
    foreign = f"{api.url}/ack/{other.id}/{token}"
    longer = AckSigner("ack-test-secret", api.url).token(Claim(paged.alert.id, "zhang", paged.clock.now + 10**9))
    forged = f"{api.url}/ack/{paged.alert.id}/{longer.split('.')[0]}.{token.split('.')[1]}"
    async with httpx.AsyncClient() as http:
        for url, status, text in (
            (expired, 410, "已过期"), (tampered, 403, "无效"), (forged, 403, "无效"),
            (foreign, 403, f"属于告警 #{paged.alert.id}"),
        ):
            for response in (await http.get(url), await http.post(url, data={"how": "ack"}),
                             await http.post(url + "/ack")):
                assert response.status_code == status, url
                assert text in response.text
    for alert_id in (paged.alert.id, other.id):
        alert, audit = await stored(store, alert_id)
        assert alert.state == "firing"
        assert not [a for a in audit if a.action.startswith("notify_") and a.action != "notify_not_paged"]


async def _write_readings(api: ApiThread, start_ms: int) -> None:
    lines = "\n".join(
        f"electrical,device_id=E1,district=510104 residual_ma={120 + i * 15} {start_ms + i * 60_000}"
        for i in range(20)
    )
    async with Influx(api.settings.influx) as influx:
        await influx.write(lines)


@pytest.mark.browser
async def test_duty_officer_taps_acknowledge_on_a_phone_and_escalation_stops(
    api: ApiThread, store: Store, sink: HttpSink
) -> None:
    from playwright.async_api import async_playwright

    paged = await page_someone(api, store, sink, probable=False)
    await _write_readings(api, paged.alert.started_ms - 15 * 60_000)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                                has_touch=True, locale="zh-CN")
            page = await context.new_page()
            await page.goto(paged.link)
            assert await page.locator("h1").inner_text() == "剩余电流超限"
            assert await page.locator("#chart polyline").count() == 1, "the reading chart is drawn"
            button = page.get_by_role("button", name="确认", exact=True)
            box = await button.bounding_box()
            assert box is not None and box["y"] + box["height"] <= 844 and box["width"] >= 300, \
                "the button is reachable without scrolling on a phone"
            await button.tap()
            await page.wait_for_selector("#result")
            assert "升级通知已停止" in await page.locator("#result").inner_text()
            assert "张伟" in await page.locator("#state").inner_text(), "the page names who acknowledged"
        finally:
            await browser.close()

    alert, audit = await stored(store, paged.alert.id)
    assert alert.state == "acknowledged" and alert.acknowledged_by == "zhang"
    assert [a.detail["how"] for a in audit if a.action.startswith("notify_ack")] == ["ack"]
    paged.clock.advance(minutes=20)
    await paged.escalator.tick()
    await paged.escalator.drain()
    async with store.session() as s:
        assert (await s.scalar(select(Escalation.state))) == PagingState.ACKNOWLEDGED
    assert len(sink.at("/zhang")) == 1, "no further page after the tap"


@pytest.mark.browser
async def test_phone_page_shows_the_score_names_nobody_early_and_offers_no_second_acknowledge(
    api: ApiThread, store: Store, sink: HttpSink
) -> None:
    from pathlib import Path

    from playwright.async_api import async_playwright

    from firewatch.contract.districts import parse_csv, replace_registry
    from firewatch.simulators.citymap import DISTRICTS_FILE

    await replace_registry(store, parse_csv(DISTRICTS_FILE.read_text(encoding="utf-8")))
    paged = await page_someone(api, store, sink, probable=True, score=0.3, reasons=["同一防火分区两个探测器"])
    artifacts = Path(__file__).resolve().parent.parent / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                                has_touch=True, locale="zh-CN")
            page = await context.new_page()
            await page.goto(paged.link)
            text = await page.locator("main").inner_text()
            assert "0.3 · 同一防火分区两个探测器" in text, text
            assert "确认人" not in text, "nobody has confirmed yet"
            assert "本链接发给: 张伟" in text
            assert "万达广场 · 锦江区" in text and "510104" not in text
            await page.screenshot(path=str(artifacts / "phone-zh.png"))
            await page.get_by_role("button", name="马上到").tap()
            await page.wait_for_selector("#result")
            await page.goto(paged.link)  # the same link opened again later
            assert await page.get_by_role("button", name="确认", exact=True).count() == 0
            assert await page.get_by_role("button", name="误报").count() == 1
            assert "张伟" in await page.locator("#state").inner_text()
            await page.screenshot(path=str(artifacts / "phone-acknowledged-zh.png"))
        finally:
            await browser.close()
