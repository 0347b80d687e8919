"""One-tap links in the dispatch messages, tapped in real headless Chromium: the mail a maintenance
engineer gets (real SMTP) opens their order on /m already signed in to it, and to nothing else; a
forged, cut-off, expired or another order's link gets a page that says so and signs nothing in; the
center revokes one engineer's link from the board and that phone is signed out while the others work."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from playwright.sync_api import Browser, expect

from firewatch.notify import notify_config
from firewatch.supervision import HazardLinks
from tests import supervision_world
from tests.conftest import wait_for
from tests.supervision_world import SITE_A, World
from tests.test_supervision import text
from tests.test_supervision_pages import HOUR, T, browser, shot

pytestmark = [pytest.mark.browser, pytest.mark.postgres]
world, world_settings = supervision_world.world, supervision_world.world_settings
__all__ = ["browser"]  # a fixture used by name
LINK = re.compile(r"https?://\S+/m/o/(\d+)/(\S+)")


def link_in_mail(w: World, address: str) -> tuple[str, int, str]:
    mails = wait_for(lambda: w.inbox.to(address))
    found = LINK.search(text(mails[0]))
    assert found, f"no one-tap link in the mail to {address}: {text(mails[0])!r}"
    return found.group(0), int(found.group(1)), found.group(2)


def fetch_status(page: object, path: str) -> int:
    return page.evaluate("async (p) => (await fetch(p)).status", path)  # type: ignore[attr-defined]


def test_the_tapped_link_opens_that_order_signed_in_and_nothing_else(world: World, browser: Browser) -> None:
    w = world
    w.insert_alert(rule="fault", device_id="P-1", site=SITE_A, started_ms=T, summary="fault: loop 1 point 7")
    w.insert_alert(rule="supervisory", device_id="P-2", site="", started_ms=T + 24 * HOUR + 60_000)
    oid = wait_for(lambda: w.hazards())[0]["id"]
    url, linked, _token = link_in_mail(w, "wang@rongan.example.org")
    assert linked == oid and url.startswith(w.api.settings.api.public_url.rstrip("/") + "/m/o/")
    manager_url = link_in_mail(w, "qian@mall.example.org")[0]
    assert manager_url != url, "each person gets a link signed for them alone"
    other = w.operator.post("/api/v1/hazards", json={"unit_id": w.b["id"], "title": "锦江大厦消防通道堵塞"})
    assert other.status_code == 201, other.text
    phone = browser.new_page(viewport={"width": 412, "height": 915}, is_mobile=True, has_touch=True)
    phone.goto(w.api.url + url[url.index("/m/o/"):])  # the test's server, at the link's own path
    expect(phone.locator("#order")).to_contain_text("故障超时未修复")
    expect(phone.locator("#who")).to_have_text("王工")
    expect(phone.locator("#login")).not_to_be_visible()
    expect(phone.locator("#list .card")).to_have_count(1)
    phone.click("button[data-action=accept]")
    expect(phone.locator("#order .state").first).to_have_text("已接收")
    expect(phone.locator("#order .history")).to_contain_text("王工")
    shot(phone, "supervision-link-order.png")
    # Signed in to this order alone: another unit's order, the unit pages and the center's endpoints refuse.
    assert fetch_status(phone, f"/api/v1/hazards/{other.json()['id']}") == 404
    assert fetch_status(phone, f"/api/v1/units/{w.a['id']}") == 404
    assert phone.evaluate("async () => (await (await fetch('/api/v1/units')).json()).length") == 0
    assert fetch_status(phone, "/api/v1/alerts") == 403
    assert w.operator.get(f"/api/v1/hazards/{oid}").json()["state"] == "accepted"


def test_forged_expired_and_another_orders_links_get_a_clear_page(world: World, browser: Browser) -> None:
    w = world
    order = w.operator.post("/api/v1/hazards", json={"unit_id": w.a["id"], "title": "疏散指示灯损坏"}).json()
    other = w.operator.post("/api/v1/hazards", json={"unit_id": w.b["id"], "title": "消防通道堵塞"}).json()
    links = HazardLinks(notify_config(w.api.settings).secret, w.api.url, 3_600_000, store=None)  # type: ignore[arg-type]
    now = int(time.time() * 1000)
    good = links.token(order["id"], "unit", "钱经理", now)
    page = browser.new_page(viewport={"width": 412, "height": 915}, is_mobile=True)
    cases = [
        (f"/m/o/{order['id']}/{good[:-2]}", 403, "此工单链接无效"),
        (f"/m/o/{other['id']}/{good}", 403, f"此链接属于工单 #{order['id']}，不能打开工单 #{other['id']}"),
        (f"/m/o/{order['id']}/{links.token(order['id'], 'unit', '钱经理', now - 2 * 3_600_000)}", 410, "已过期"),
        (f"/m/o/{order['id']}/not-a-token", 403, "此工单链接无效"),
    ]
    for path, status, says in cases:
        response = page.goto(w.api.url + path)
        assert response is not None and response.status == status, path
        expect(page.locator("#problem")).to_contain_text(says)
        assert fetch_status(page, "/api/v1/session") == 401, f"{path} signed the browser in"
    shot(page, "supervision-link-refused.png")
    # A link signed for the purpose "hazard" opens no acknowledge page, and a tampered cookie signs nothing in.
    ack = httpx.get(f"{w.api.url}/ack/{order['id']}/{good}")
    assert ack.status_code == 403
    bad_cookie = httpx.get(f"{w.api.url}/api/v1/hazards", cookies={"firewatch_link": good[:-1] + "A"})
    assert bad_cookie.status_code == 401 and "one-tap link" in bad_cookie.json()["message"]


def test_the_center_revokes_one_link_and_only_that_phone_loses_the_order(world: World, browser: Browser) -> None:
    w = world
    w.insert_alert(rule="fault", device_id="P-1", site=SITE_A, started_ms=T, summary="fault: loop 1 point 7")
    w.insert_alert(rule="supervisory", device_id="P-2", site="", started_ms=T + 24 * HOUR + 60_000)
    oid = wait_for(lambda: w.hazards())[0]["id"]
    wang_url = link_in_mail(w, "wang@rongan.example.org")[0]
    qian_url = link_in_mail(w, "qian@mall.example.org")[0]
    sent = w.operator.get(f"/api/v1/hazards/{oid}/links").json()
    assert {(x["person"], x["role"], x["revoked_ms"]) for x in sent} >= {("王工", "maintenance", None),
                                                                        ("钱经理", "unit", None)}
    assert w.unit_a.get(f"/api/v1/hazards/{oid}/links").status_code == 403, "the unit's people cannot see them"
    wang = browser.new_page(viewport={"width": 412, "height": 915}, is_mobile=True)
    wang.goto(w.api.url + wang_url[wang_url.index("/m/o/"):])
    expect(wang.locator("#who")).to_have_text("王工")
    # The engineer left the company: the duty officer revokes his link from the board.
    board = browser.new_page(viewport={"width": 1400, "height": 900})
    board.goto(f"{w.api.url}/static/hazards.html#{oid}")
    board.fill("#token", w.keys["operator"])
    board.click("#login-form button[type=submit]")
    row = board.locator("#links li", has_text="王工")
    board.fill("#revoke-reason", "王工已离职")
    row.locator("button[data-revoke]").click()
    expect(board.locator("#links li.revoked")).to_contain_text("operator-tester")
    expect(board.locator("#order .history")).to_contain_text("王工 · 王工已离职")
    shot(board, "supervision-link-revoke.png")
    # His phone is refused at once and its link gets a page that says so; the manager's link still works.
    assert fetch_status(wang, f"/api/v1/hazards/{oid}") == 401
    wang.reload()
    expect(wang.locator("#login-error")).to_contain_text("此工单链接已失效")
    expect(wang.locator("#list .card")).to_have_count(0)
    response = wang.goto(w.api.url + wang_url[wang_url.index("/m/o/"):])
    assert response is not None and response.status == 410
    expect(wang.locator("#problem")).to_contain_text("已于")
    expect(wang.locator("#problem")).to_contain_text("被监控中心撤销")
    shot(wang, "supervision-link-revoked.png")
    qian = browser.new_page(viewport={"width": 412, "height": 915}, is_mobile=True)
    qian.goto(w.api.url + qian_url[qian_url.index("/m/o/"):])
    expect(qian.locator("#who")).to_have_text("钱经理")
    expect(qian.locator("#order")).to_contain_text("故障超时未修复")
    revoked = next(x for x in w.operator.get(f"/api/v1/hazards/{oid}/links").json() if x["person"] == "王工")
    again = w.operator.post(f"/api/v1/hazards/{oid}/links/{revoked['id']}/revoke", json={})
    assert again.status_code == 404 and "no unrevoked link" in again.json()["message"]
    steps = w.operator.get(f"/api/v1/hazards/{oid}").json()["history"]
    assert [(h["actor"], h["action"]) for h in steps].count(("operator-tester", "revoke_link")) == 1
