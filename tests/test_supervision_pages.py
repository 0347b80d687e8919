"""The supervision pages in real headless Chromium: the engineer's phone page, the center's hazard
board and unit page, the public report page. Screenshots land in test-artifacts/ to be looked at."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests import supervision_world
from tests.conftest import wait_for
from tests.supervision_world import PNG, SITE_A, World

pytestmark = [pytest.mark.browser, pytest.mark.postgres]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
HOUR = 3_600_000
T = 1_780_000_000_000
world, world_settings = supervision_world.world, supervision_world.world_settings


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()


def signed_in(browser: Browser, w: World, path: str, token: str, phone: bool = False) -> Page:
    size = {"width": 412, "height": 915} if phone else {"width": 1600, "height": 900}
    page = browser.new_page(viewport=size, is_mobile=phone, has_touch=phone)
    page.goto(w.api.url + path)
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")
    return page


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_the_engineer_accepts_on_the_phone_is_refused_while_faulting_then_the_center_closes_it(
    world: World, browser: Browser, tmp_path: Path
) -> None:
    w = world
    fault = w.insert_alert(rule="fault", device_id="P-1", site=SITE_A, started_ms=T,
                           summary="fault: loop 1 point 7, B1 pump room")
    w.insert_alert(rule="supervisory", device_id="P-2", site="", started_ms=T + 24 * HOUR + 60_000)
    oid = wait_for(lambda: w.hazards())[0]["id"]
    mt_token = w.maintenance.headers["Authorization"].removeprefix("Bearer ")
    phone = signed_in(browser, w, f"/m#hazard={oid}", mt_token, phone=True)
    expect(phone.locator("#order")).to_contain_text("故障超时未修复")
    expect(phone.locator("#list")).to_contain_text("春熙商场有限公司")
    phone.click("button[data-action=accept]")
    expect(phone.locator("#order .state").first).to_have_text("已接收")
    photo = tmp_path / "fixed.png"
    photo.write_bytes(PNG)
    phone.fill("#note", "已更换7号点烟感探测器")
    phone.set_input_files("#photo", str(photo))
    phone.click("button[data-action=report_fixed]")
    expect(phone.locator("#msg")).to_contain_text("still reports fault")
    shot(phone, "supervision-phone-refused.png")
    # The fault clears on the panel; the engineer reports again and it waits for the center's review.
    w.resolve_alert(fault, T + 25 * HOUR)
    phone.fill("#note", "已更换7号点烟感探测器")
    phone.set_input_files("#photo", str(photo))
    phone.click("button[data-action=report_fixed]")
    expect(phone.locator("#order .state").first).to_have_text("待审核")
    expect(phone.locator("#order .history")).to_contain_text("王工")
    shot(phone, "supervision-phone-awaiting-review.png")
    # Event time moves two hours on; the center reviews on the board and closes it.
    w.insert_alert(rule="supervisory", device_id="P-3", site="", started_ms=T + 27 * HOUR)
    wait_for(lambda: w.operator.get(f"/api/v1/hazards/{oid}").json()["history"])
    board = signed_in(browser, w, f"/static/hazards.html#{oid}", w.keys["operator"])
    expect(board.locator(f".col[data-state=awaiting_review] .card[data-id='{oid}']")).to_be_visible()
    expect(board.locator("#units-map circle[fill='#ffd21a']")).to_have_count(1)
    expect(board.locator("#order img")).to_have_count(1)
    # 单位分布 on the city's district layer, each unit labelled
    expect(board.locator("#units-map .layer polygon.district")).to_have_count(11)
    expect(board.locator("#units-map .layer .district-name").filter(has_text="锦江区")).to_have_count(1)
    expect(board.locator("#units-map .unit-label").filter(has_text="春熙商场有限公司 (1)")).to_have_count(1)
    shot(board, "supervision-board.png")
    board.fill("#act-note", "核查通过，数据显示故障已消除")
    board.click("button[data-action=approve]")
    expect(board.locator(f".col[data-state=closed] .card[data-id='{oid}']")).to_be_visible()
    expect(board.locator("#units-map circle[fill='#2ecc71']")).to_have_count(2)
    assert w.operator.get(f"/api/v1/hazards/{oid}").json()["state"] == "closed"
    # The unit page tells the whole story, in Chinese, and in English on the switch.
    unit = signed_in(browser, w, f"/static/unit.html#{w.a['id']}", w.keys["operator"])
    expect(unit.locator("#facts")).to_contain_text("重点单位")
    expect(unit.locator("#contacts")).to_contain_text("消防安全管理人")
    expect(unit.locator("#hazards")).to_contain_text("已闭环")
    expect(unit.locator("#devices")).to_contain_text("P-1")
    shot(unit, "supervision-unit.png")
    unit.click("#lang")
    expect(unit.locator("#hazards")).to_contain_text("closed")


def test_a_citizen_reports_on_the_public_page_and_follows_it_by_receipt(
    world: World, browser: Browser, tmp_path: Path
) -> None:
    w = world
    page = browser.new_page(viewport={"width": 412, "height": 915}, is_mobile=True)
    page.goto(w.api.url + "/report")
    expect(page.locator(".banner")).to_have_text("如遇火情请立即拨打 119")
    big = tmp_path / "big.png"
    big.write_bytes(PNG + b"\x00" * (6 * 1024 * 1024))
    page.fill("input[name=phone]", "13700000000")
    page.fill("input[name=address]", "春熙路1号 地下车库")
    page.fill("textarea[name=note]", "消防通道被车辆长期占用")
    page.set_input_files("input[name=photos]", str(big))
    page.click("#report button[type=submit]")
    expect(page.locator("#report-msg")).to_contain_text("每张不超过5MB")
    small = tmp_path / "ok.png"
    small.write_bytes(PNG)
    page.set_input_files("input[name=photos]", str(small))
    # The place by a tap on the city's district layer (the console's offline GeoJSON): the first tap
    # zooms in on it, the second, at the same spot, places it.
    expect(page.locator("#place-map polygon.district")).to_have_count(11)
    box = page.locator("#place-map polygon[data-district='510104']").bounding_box()
    assert box is not None
    for _ in range(2):
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.locator("#located")).to_contain_text("已选择地点")
    expect(page.locator("#place-mark")).to_have_count(1)
    shot(page, "supervision-public-place.png")
    page.click("#report button[type=submit]")
    expect(page.locator("#receipt")).to_have_text(re.compile(r"^[2-9A-Z]{10}$"))
    receipt = page.locator("#receipt").inner_text()
    shot(page, "supervision-public-report.png")
    order = w.hazards(category="public")[0]
    assert order["state"] == "awaiting_review" and order["address"] == "春熙路1号 地下车库"
    assert 30.54 < order["latitude"] < 30.675 and 104.06 < order["longitude"] < 104.176, order  # 锦江区
    w.operator.post(f"/api/v1/hazards/{order['id']}/actions",
                    json={"action": "dispatch", "unit_id": w.a["id"], "note": "已派发春熙商场整改"})
    page.fill("#follow input[name=receipt]", receipt)
    page.click("#follow button[type=submit]")
    expect(page.locator("#follow-out")).to_contain_text("已派发春熙商场整改")
    expect(page.locator("#follow-out")).to_contain_text("已派发")
