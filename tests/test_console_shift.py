"""The console through a twelve-hour night shift, in real headless Chromium.

The queue keeps what nobody has handled on top, a wall screen reloaded at night
keeps its sound and its mode, and a stream that drops says so and comes back by itself.
"""

from __future__ import annotations

import itertools
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from playwright.sync_api import Browser, expect

from firewatch.simulators.fleet import Fleet
from tests.notify_servers import HttpSink
from tests.test_api import insert_alerts
from tests.test_api_server import ApiThread, client, run
from tests.test_console import ARTIFACTS, CHROMIUM, browser, city, open_console, panel_alert

__all__ = ["browser", "city"]  # fixtures used by name

CityFixture = tuple[ApiThread, Fleet, dict[str, str]]


def test_an_unacknowledged_fire_sits_above_an_acknowledged_one_which_looks_calmer(
    browser: Browser, city: CityFixture
) -> None:
    api, fleet, keys = city
    now = int(time.time() * 1000)
    older, newer = insert_alerts(
        api.settings,
        panel_alert(fleet, 0, score=0.3, started_ms=now - 600_000, last_seen_ms=now - 600_000),
        panel_alert(fleet, 1, score=0.9, probable=True, started_ms=now - 60_000, last_seen_ms=now),
    )
    operator = client(api, keys["operator"])
    assert operator.post(f"/api/v1/alerts/{newer}/acknowledge", json={}).status_code == 200
    queue = operator.get("/api/v1/alerts", params={"state": "open"}).json()["items"]
    assert [a["id"] for a in queue] == [older, newer]

    page = open_console(browser, api, keys["operator"])
    items = page.locator("#queue li.alert")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_have_attribute("data-id", str(older))
    expect(items.nth(1)).to_have_class("alert sev-fire state-acknowledged")
    # read both at once: the queue re-renders (stream events, the 15 s age refresh), a detached item has no style
    opacity = page.eval_on_selector_all("#queue li.alert", "els => els.map((e) => Number(getComputedStyle(e).opacity))")
    assert opacity[1] < 0.7 < opacity[0], opacity
    # Once both have a person on them, the probable fire leads again.
    page.click(f"#queue li[data-id='{older}'] button[data-act=ack]")
    expect(items.nth(0)).to_have_attribute("data-id", str(newer))


def test_sound_and_wall_mode_survive_a_reload(browser: Browser, city: CityFixture) -> None:
    api, _, keys = city
    page = open_console(browser, api, keys["viewer"])
    expect(page.locator("#sound")).to_have_text("声音已开")  # the login click started it
    page.click("#wall")
    expect(page.locator("body")).to_have_class("wall")
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    expect(page.locator("body")).to_have_class("wall")
    expect(page.locator("#logout")).to_be_hidden()
    # Without a click the browser keeps audio suspended: the screen says so, a click restores it.
    expect(page.locator("#sound-blocked")).to_be_visible()
    page.mouse.click(600, 400)
    expect(page.locator("#sound-blocked")).to_be_hidden()
    expect(page.locator("#sound")).to_have_text("声音已开")
    assert page.evaluate("() => localStorage.getItem('firewatch.sound')") == "on"
    # Switched off, it stays off after a reload, with no banner.
    page.click("#sound")
    expect(page.locator("#sound")).to_have_text("开启声音")
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    expect(page.locator("#sound")).to_have_text("开启声音")
    expect(page.locator("#sound-blocked")).to_be_hidden()


def test_a_kiosk_wall_screen_rings_after_a_reload_without_any_click(
    city: CityFixture,
) -> None:
    """The kiosk flag the docs give for wall screens lets the remembered sound start unattended."""
    from playwright.sync_api import sync_playwright

    api, _, keys = city
    with sync_playwright() as p:
        kiosk = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        try:
            page = kiosk.new_page(viewport={"width": 1920, "height": 1080})
            page.goto(api.url + "/?wall=1")
            page.fill("#token", keys["viewer"])
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("body[data-ready='1']")
            page.reload()
            page.wait_for_selector("body[data-ready='1']")
            expect(page.locator("#sound")).to_have_text("声音已开")
            expect(page.locator("#sound-blocked")).to_be_hidden()
            assert page.evaluate("() => document.body.classList.contains('wall')")
        finally:
            kiosk.close()


def test_the_stream_going_down_is_visible_and_the_console_reconnects_by_itself(
    browser: Browser, city: CityFixture
) -> None:
    api, fleet, keys = city
    page = open_console(browser, api, keys["viewer"])
    expect(page.locator("#link")).to_have_class("link live")
    api.stop()
    expect(page.locator("#stream-down")).to_be_visible(timeout=10_000)
    expect(page.locator("#stream-down")).to_contain_text("实时连接中断")
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.screenshot(path=str(ARTIFACTS / "console-stream-down.png"))
    time.sleep(6)  # longer than EventSource's own retry: the console must keep trying
    api.start()
    (alert_id,) = insert_alerts(api.settings, panel_alert(fleet, 4))
    expect(page.locator(f"#queue li[data-id='{alert_id}']")).to_be_visible(timeout=20_000)
    expect(page.locator("#stream-down")).to_be_hidden()
    expect(page.locator("#link")).to_have_class("link live")


def test_the_history_speaks_chinese_and_names_people(browser: Browser, city: CityFixture) -> None:
    from firewatch.contract.db import open_store
    from tests.test_api_server import run

    api, fleet, keys = city
    roster = {"people": [{"id": "wang", "name": "王值班", "channels": []}], "groups": [], "shifts": []}
    assert client(api, keys["admin"]).put("/api/v1/roster", json=roster).status_code == 200
    now = int(time.time() * 1000)
    hydrant = fleet.of_kind("hydrant")[0]
    alert_id, low = insert_alerts(
        api.settings,
        panel_alert(fleet, 2, state="acknowledged", acknowledged_by="wang", acknowledged_ms=now),
        {"rule": "pressure_low", "severity": "critical", "kind": "hydrant", "device_id": hydrant.id,
         "district": hydrant.district, "summary": "low water pressure: 0.09 MPa, level 0.1", "metric": "pressure_mpa",
         "value": 0.09, "threshold": 0.10, "unit": "MPa"},
    )

    async def acknowledged_by_phone() -> None:
        store = await open_store(api.settings.store.url)
        async with store.session() as s, s.begin():
            await store.audit(s, "wang", "notify_ack", f"alert:{alert_id}", how="ack", note="", via="ack-link")
        await store.aclose()

    run(acknowledged_by_phone())
    page = open_console(browser, api, keys["viewer"])
    item = page.locator(f"#queue li[data-id='{alert_id}']")
    expect(item.locator(".acked")).to_have_text("已确认：王值班")
    expect(item.locator(".what")).to_have_text("火警：3F east")
    expect(page.locator(f"#queue li[data-id='{low}'] .what")).to_have_text("水压低：0.09 MPa（阈值 0.1 MPa）")
    page.click("#lang")
    expect(page.locator(f"#queue li[data-id='{low}'] .what")).to_have_text("low water pressure: 0.09 MPa, level 0.1")
    page.click("#lang")
    item.locator(".where").click()
    history = page.locator("#drill ul.history li")
    expect(history).to_have_count(2)
    expect(page.locator("#drill h2")).to_have_text("火警 · 火警：3F east")
    expect(history.nth(0)).to_contain_text("报警引擎 报警触发")
    expect(history.nth(1)).to_contain_text("王值班 手机确认")
    for english in ("fired", "notify_ack", "wang"):
        assert english not in page.locator("#drill ul.history").inner_text()
    page.set_viewport_size({"width": 1920, "height": 1080})
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-history-zh.png"))


def test_every_rule_has_a_chinese_label() -> None:
    from firewatch.contract.rules import LABELS_ZH, RULES

    assert {r.label for rules in RULES.values() for r in rules.values()} <= LABELS_ZH.keys()


def test_nobody_reachable_is_a_loud_banner_until_someone_acknowledges(
    browser: Browser, city: CityFixture, sink: HttpSink
) -> None:
    """A fire at 03:00 whose night group is empty pages the fallback, and every console says so."""
    api, fleet, keys = city
    roster = {
        "people": [
            {"id": "op", "name": "值机员小周", "channels": [f"webhook+{sink.base}/op"]},
            {"id": "liu", "name": "刘主任", "channels": [f"webhook+{sink.base}/liu"]},
        ],
        "groups": [{"id": "night", "members": []}, {"id": "console", "members": ["op"]},
                   {"id": "leaders", "members": ["liu"]}],
        "shifts": [{"group": "leaders", "person": "liu", "start": "08:30", "end": "17:30"}],
    }
    assert client(api, keys["admin"]).put("/api/v1/roster", json=roster).status_code == 200
    (fire,) = insert_alerts(api.settings, panel_alert(fleet, 3))
    page = open_console(browser, api, keys["operator"])
    expect(page.locator(f"#queue li[data-id='{fire}']")).to_be_visible()
    expect(page.locator("#unreachable")).to_be_hidden()

    three_am = int(datetime(2026, 11, 25, 3, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)
    run(page_at(api.settings.store.url, fire, three_am))
    assert (len(sink.at("/op")), len(sink.at("/liu"))) == (1, 1), sink.requests  # sent before page_at returned
    banner = page.locator("#unreachable")
    expect(banner).to_be_visible(timeout=10_000)  # from the live stream
    expect(banner).to_contain_text("无人可达")
    expect(banner).to_contain_text("值机员小周、刘主任")
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    expect(banner).to_be_visible()  # from the snapshot: a reloaded wall screen still shows it
    page.set_viewport_size({"width": 1920, "height": 1080})
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-nobody-reachable.png"))
    page.click(f"#queue li[data-id='{fire}'] button[data-act=ack]")
    expect(banner).to_be_hidden()
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    expect(banner).to_be_hidden()


async def page_at(store_url: str, alert_id: int, now: int) -> None:
    """notify's escalator on the api's store, at a moment the test picks, routing `alert_id` to the night group."""
    from firewatch.alerting.changes import AlertChange, snapshot
    from firewatch.contract.db import Alert, open_store
    from firewatch.notify.config import NotifyConfig, Route, Step
    from firewatch.notify.escalator import Escalator

    store = await open_store(store_url)
    try:
        async with store.session() as s:
            alert = snapshot(await s.get(Alert, alert_id))
        route = Route(name="fire", severity=["fire"], group_wait_s=0, steps=[Step(notify=["group:night"])])
        escalator = Escalator(store, NotifyConfig(routes=[route], secret="s", backoff_s=0.01), lambda: now)
        await escalator.handle(AlertChange("fired", alert, None))
        await escalator.drain()
    finally:
        await store.aclose()


def test_reasons_chart_titles_and_the_hazard_link_read_in_chinese(browser: Browser, city: CityFixture) -> None:
    from tests.test_api import write_lines

    api, fleet, keys = city
    now = int(time.time() * 1000)
    hydrant = fleet.of_kind("hydrant")[0]
    write_lines(api.settings, [f"hydrant,device_id={hydrant.id} pressure_mpa={0.3 - k * 0.01:.2f} {now - k * 600_000}"
                               for k in range(25)])
    fire, low = insert_alerts(
        api.settings,
        panel_alert(fleet, 5, score=0.85, probable=True,
                    reasons=["3 points in zone 3F east within 120 s", "not reset after 5 min", "no such reason"]),
        {"rule": "pressure_low", "severity": "critical", "kind": "hydrant", "device_id": hydrant.id,
         "district": hydrant.district, "site": hydrant.site, "metric": "pressure_mpa", "value": 0.06,
         "threshold": 0.10, "unit": "MPa", "started_ms": now - 3_600_000, "last_seen_ms": now},
    )
    pump = fleet.of_kind("pump")[0]
    (pattern,) = insert_alerts(api.settings, {
        "rule": "pattern_abnormal", "severity": "warning", "kind": "pump", "device_id": pump.id,
        "district": pump.district, "site": pump.site, "value": 3.2, "threshold": 1.0, "unit": "x limit",
        "summary": "readings unlike this device's learned normal: 3.2 x its limit; flow lower than usual "
                   "(21 L/s, usually 30; 71%), motor current higher than usual (46 A, usually 41; 20%) [running]",
        "started_ms": now - 600_000, "last_seen_ms": now})
    page = open_console(browser, api, keys["viewer"])
    expect(page.locator(f"#queue li[data-id='{pattern}'] .what")).to_have_text(
        "读数组合偏离本设备常态：达限值的 3.2 倍；流量低于常值（21 L/s，常值 30，占 71%）；"
        "电机电流高于常值（46 A，常值 41，占 20%）（运行）")
    reasons = page.locator(f"#queue li[data-id='{fire}'] ul.reasons li")
    expect(reasons).to_have_text(["3F east 区 120 秒内 3 个点位报警", "5 分钟未复位", "no such reason"])
    page.click(f"#queue li[data-id='{low}'] .where")
    expect(page.locator("#drill h3", has_text="MPa")).to_have_text(f"水压 (MPa) · {hydrant.id}")
    page.click("#lang")
    expect(page.locator(f"#queue li[data-id='{fire}'] ul.reasons li").first).to_have_text(
        "3 points in zone 3F east within 120 s")
    page.click("#lang")
    # The header's 隐患整改 link: readable on the dark header (WCAG AA, contrast ≥ 4.5).
    link = page.locator("header a[href='/static/hazards.html']")
    expect(link).to_have_text("隐患整改")
    fg, bg = page.evaluate("""() => {
      const rgb = (c) => c.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number);
      return [rgb(getComputedStyle(document.querySelector("header a")).color),
              rgb(getComputedStyle(document.querySelector("header")).backgroundColor)];
    }""")
    assert contrast(fg, bg) >= 4.5, (fg, bg, contrast(fg, bg))
    page.set_viewport_size({"width": 1920, "height": 1080})
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-reasons-zh.png"))


def contrast(fg: list[float], bg: list[float]) -> float:
    """WCAG 2 contrast ratio of two sRGB colours."""

    def lum(rgb: list[float]) -> float:
        c = [v / 255 for v in rgb]
        c = [v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4 for v in c]
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]

    hi, lo = sorted((lum(fg), lum(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_every_metric_and_correlation_reason_has_chinese() -> None:
    from firewatch.contract.kinds import METRIC_LABELS_ZH, SPECS
    from firewatch.contract.rules import reason_zh

    assert {m.label for spec in SPECS.values() for m in spec.metrics.values()} <= METRIC_LABELS_ZH.keys()
    # one of each reason alerting/correlate.py writes, with its numbers
    said = {
        "2 points in zone 3F east within 120 s": "3F east 区 120 秒内 2 个点位报警",
        "alarms in 3 zones": "3 个区域报警",
        "heat detector after smoke": "感烟之后感温探测器报警",
        "manual call point": "手动报警按钮",
        "linkage fan and pump without reset": "联动（fan and pump）未复位",
        "cable temp high at the same site": "同一单位另有：cable temp high",
        "not reset after 5 min": "5 分钟未复位",
        "reset within 30 s": "30 秒内复位",
        "point false-alarmed 4 times in 30 days": "该点位 30 天内误报 4 次",
    }
    assert {en: reason_zh(en) for en in said} == said


def test_level_labels_close_together_never_print_on_each_other(browser: Browser, city: CityFixture) -> None:
    """Issue 16, item 9: a warning at 0.14 and an alarm at 0.10 MPa on a wide axis printed one on the other."""
    api, _, keys = city
    page = open_console(browser, api, keys["viewer"])
    wanted = [100, 104, 106, 300, 12]
    rows = page.evaluate("async (ys) => (await import('/static/chart.js')).labelRows(ys, 20, 280)", wanted)
    placed = sorted(rows)
    assert all(b - a >= 12 for a, b in itertools.pairwise(placed)), rows
    assert all(20 <= y <= 280 for y in rows), rows
    assert rows[0] == 100, "a label with room stays beside its line"
    assert page.evaluate("async () => (await import('/static/chart.js')).labelRows([150], 20, 280)") == [150]
