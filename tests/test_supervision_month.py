"""A simulated month of a district: alerting's real pipeline in event time writes its alerts to
PostgreSQL and the readings to InfluxDB, the api's supervisor opens and escalates orders, and the
people act on them over HTTP (the calls the phone page and the board make) at their event times.

Five units: a well-kept mall whose short fault opens nothing and whose long one is fixed and
verified; a neglected shop whose fault is never repaired and escalates; a unit that left points
shielded; a hydrant below its floor for six hours (a major hazard); a panel that false-alarms six
times in a morning. At the end the board tells each story, as a supervisor would read it.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, expect

from firewatch.alerting.config import load as alerting_config
from firewatch.alerting.pipeline import Pipeline
from firewatch.alerting.registry import DeviceInfo, Registry
from firewatch.contract.db import open_store
from firewatch.contract.influx import Influx
from firewatch.contract.kinds import Kind
from firewatch.contract.lineproto import record_line
from firewatch.contract.payload import PanelEvent, Reading, Record
from tests import supervision_world
from tests.conftest import wait_for
from tests.supervision_world import DEPARTMENT_A, DISTRICT, PNG, SITE_A, SITE_B, NotifyThread, World
from tests.test_supervision import text
from tests.test_supervision_pages import browser, shot, signed_in

pytestmark = pytest.mark.postgres
T = TypeVar("T")
HOUR = 3_600_000
DAY = 24 * HOUR
T0 = 1_772_294_400_000
"""2026-03-01 00:00 +08:00."""
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
world_settings = supervision_world.world_settings
__all__ = ["browser"]  # a fixture used by name
DEPARTMENTS = {DEPARTMENT_A: "dept@commerce.example.org", "锦江区市场监管局": "dept-market@gov.example.org",
               "锦江区文化广电旅游局": "dept-tourism@gov.example.org"}
"""The supervising departments the units name, and where notify's routes page each."""


@pytest.fixture
def world(world_settings: Any, inbox: Any) -> Iterator[World]:
    """The district, with notify's hazard routes to each unit's supervising department, and notify running."""
    for w in supervision_world.build_world(world_settings, inbox, DEPARTMENTS):
        notify = NotifyThread(w.api.settings).start()
        try:
            yield w
        finally:
            notify.stop()
SITES = {"P-1": SITE_A, "H-9": SITE_B, "P-3": "老街杂货店", "P-4": "东门酒店", "P-5": "西城网吧",
         **{f"H-{k}": SITE_B for k in range(10, 16)}}
"""Alerting's event clock follows most devices' clocks (a percentile), so the district has several
hydrants reporting every half hour, as a real one has hundreds."""


def at(day: int, hour: float) -> int:
    return T0 + day * DAY + int(hour * HOUR)


def panel(device: str, ts: int, event: str, point: int | None = None) -> PanelEvent:
    return PanelEvent(DISTRICT, device, ts, None, event, 1 if point else None, point, "1F", "smoke")


class District:
    """Alerting's pipeline on a loop of its own, fed hour by hour of event time."""

    def __init__(self, w: World) -> None:
        self.w = w
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.events: list[Record] = []
        self.hour = 0
        self.call(self._start())

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    async def _start(self) -> None:
        s = self.w.api.settings
        self.store = await open_store(s.store.url)
        self.influx = Influx(s.influx)
        registry = Registry([DeviceInfo(d, "hydrant" if d.startswith("H") else "panel", DISTRICT, site,
                                        report_interval_s=1800 if d.startswith("H") else 60 * 86400)
                             for d, site in SITES.items()])
        self.pipeline = Pipeline(alerting_config({"clock": "event", "lateness_s": 0}), self.store, registry)
        await self.pipeline.start()

    @staticmethod
    def hydrants(ts: int) -> list[Reading]:
        """Every hydrant's half-hourly reading; H-9 is below its floor on day 15 from 02:00 to 08:00."""
        out = []
        for device in (d for d in SITES if d.startswith("H")):
            low = device == "H-9" and at(15, 2) <= ts < at(15, 8)
            p = 0.05 if low else 0.35 + 0.003 * math.sin(ts / HOUR + len(out))
            out.append(Reading(DISTRICT, device, Kind.HYDRANT, ts, None, {"pressure_mpa": round(p, 4)}))
        return out

    def until(self, day: int, hour: float) -> None:
        """Feed every record up to this event time, half an hour at a time, as ingest and alerting would."""
        end = at(day, hour)
        while T0 + self.hour * HOUR // 2 <= end:
            t = T0 + self.hour * HOUR // 2
            batch = sorted([r for r in self.events if t - HOUR // 2 < r.ts_ms <= t] + self.hydrants(t),
                           key=lambda r: r.ts_ms)
            self.call(self._feed(batch))
            self.hour += 1

    async def _feed(self, batch: list[Record]) -> None:
        await self.influx.write("\n".join(record_line(r, SITES[r.device_id]) for r in batch))
        await self.pipeline.process(batch)

    def close(self) -> None:
        async def stop() -> None:
            await self.influx.aclose()
            await self.store.aclose()

        self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def act(who: httpx.Client, order: int, action: str, **extra: Any) -> httpx.Response:
    return who.post(f"/api/v1/hazards/{order}/actions", json={"action": action, **extra})


def link_path(w: World, address: str, order: int) -> str:
    """The path of the one-tap link to `order` in the mail `address` got (a phone opens it on the api)."""
    found = re.compile(rf"/m/o/{order}/\S+")
    return wait_for(lambda: [m.group(0) for mail in w.inbox.to(address) if (m := found.search(text(mail)))])[0]


def order_of(w: World, device: str) -> dict[str, Any]:
    return wait_for(lambda: [o for o in w.hazards() if o["device_id"] == device])[0]


def test_a_simulated_month_of_a_district_flows_its_orders_to_closure_and_escalates_the_neglected(
    world: World, browser: Browser,
) -> None:
    w = world
    for name, lat, department in (("老街杂货店", 30.650, "锦江区市场监管局"), ("东门酒店", 30.660, "锦江区文化广电旅游局"),
                                  ("西城网吧", 30.645, "锦江区文化广电旅游局")):
        w.add_unit(name, latitude=lat, longitude=104.07, company_id=w.company["id"], department=department)
    d = District(w)
    try:
        d.events = [
            panel("P-1", at(1, 8), "fault", 7), panel("P-1", at(1, 14), "fault_cleared", 7),   # 6 h: nothing
            panel("P-3", at(2, 9), "fault", 2),                                               # never repaired
            panel("P-1", at(5, 8), "fault", 9), panel("P-1", at(6, 16), "fault_cleared", 9),
            panel("P-1", at(7, 20), "fault", 9), panel("P-1", at(9, 9), "fault_cleared", 9),  # it comes back
            panel("P-4", at(10, 8), "shield", 3), panel("P-4", at(11, 12), "unshield", 3),
            *[e for h in range(9, 15) for e in (panel("P-5", at(20, h), "fire", 4),
                                                 panel("P-5", at(20, h + 1 / 30), "reset"))],
        ]
        d.until(1, 23)
        assert w.hazards() == [], "a fault repaired in 6 h is no hazard"

        d.until(3, 10)
        neglected = order_of(w, "P-3")
        assert neglected["opened_ms"] == at(3, 9) and neglected["unit"] == "老街杂货店"

        # The mall's long fault: opened at 24 h, refused while faulting, verified an hour after clearing.
        d.until(6, 9)
        mall = order_of(w, "P-1")
        assert mall["opened_ms"] == at(6, 8)
        assert act(w.maintenance, mall["id"], "accept").status_code == 200
        d.until(6, 9.5)
        assert act(w.maintenance, mall["id"], "report_fixed", note="更换探测器").status_code == 409
        d.until(6, 16.5)
        assert act(w.maintenance, mall["id"], "report_fixed", note="更换9号点探测器").status_code == 200
        early = act(w.operator, mall["id"], "approve")
        assert early.status_code == 409 and "clear for 30 min" in early.json()["message"]
        d.until(6, 17.5)
        assert act(w.operator, mall["id"], "approve", note="数据核验通过").json()["state"] == "closed"

        # The neglected shop's order passed its 72 h deadline at day 6 09:00: an overdue alert, which
        # notify routes to the district office and the shop's supervising department, once.
        mail = wait_for(lambda: w.inbox.to("dept-market@gov.example.org"))
        assert len(mail) == 1 and "老街杂货店" in str(mail[0]["Subject"])

        # The same fault comes back within 72 h of closing: the closed order is reopened, not a new one.
        d.until(8, 20.5)
        again = wait_for(lambda: [o for o in w.hazards() if o["device_id"] == "P-1" and o["state"] == "reopened"])[0]
        assert (again["id"], again["opened_ms"]) == (mall["id"], at(6, 8))
        assert again["deadline_ms"] == at(11, 20) and again["escalated_ms"] is None
        assert act(w.maintenance, mall["id"], "accept").status_code == 200
        d.until(9, 9.5)
        assert act(w.maintenance, mall["id"], "report_fixed", note="更换9号点底座").status_code == 200
        d.until(9, 10.5)
        assert act(w.operator, mall["id"], "approve", note="复查通过").json()["state"] == "closed"

        # Shielded points: alerting's shield_left_on after 24 h, then the hazard, worked on the phone page
        # the engineer's mail opens and reviewed on the board: sent back once for want of a photo, then closed.
        d.until(11, 9)
        hotel = order_of(w, "P-4")
        assert hotel["category"] == "shielded" and hotel["opened_ms"] == at(11, 8)
        assert hotel["title"] == "点位长期屏蔽：P-4 点位屏蔽时间过长", "in Chinese: the monthly report prints it"
        phone = browser.new_page(viewport={"width": 412, "height": 915}, is_mobile=True, has_touch=True)
        phone.goto(w.api.url + link_path(w, "wang@rongan.example.org", hotel["id"]))
        expect(phone.locator("#order h2")).to_contain_text(f"#{hotel['id']} 点位长期屏蔽：P-4")
        phone.click("button[data-action=accept]")
        expect(phone.locator("#order .state").first).to_have_text("已接收")
        d.until(11, 12.5)
        phone.fill("#note", "已解除屏蔽")
        phone.click("button[data-action=report_fixed]")
        expect(phone.locator("#order .state").first).to_have_text("待审核")
        board = signed_in(browser, w, f"/static/hazards.html#{hotel['id']}", w.keys["operator"])
        board.fill("#act-note", "请补充解除屏蔽后的控制器照片")
        board.click("button[data-action=reject]")
        expect(board.locator(f".col[data-state=rejected] .card[data-id='{hotel['id']}']")).to_be_visible()
        phone.reload()
        expect(phone.locator("#order")).to_contain_text("处理结果：请补充解除屏蔽后的控制器照片")
        phone.fill("#note", "已补充控制器照片")
        phone.set_input_files("#photo", files={"name": "panel.png", "mimeType": "image/png", "buffer": PNG})
        phone.click("button[data-action=report_fixed]")
        expect(phone.locator("#order .state").first).to_have_text("待审核")
        d.until(11, 13.5)
        board.reload()
        expect(board.locator("#order img")).to_have_count(1)
        board.fill("#act-note", "照片清晰，数据核验通过")
        board.click("button[data-action=approve]")
        expect(board.locator(f".col[data-state=closed] .card[data-id='{hotel['id']}']")).to_be_visible()
        phone.reload()
        expect(phone.locator("#order .state").first).to_have_text("已闭环")
        for step in ("王工 接收", "王工 提交整改", "operator-tester 驳回", "operator-tester 审核通过"):
            expect(phone.locator("#order .history")).to_contain_text(step)
        shot(phone, "supervision-month-phone.png")

        # Fire water below its floor from 02:00: a major hazard at 06:00, 24 h to fix.
        d.until(15, 6.5)
        water = order_of(w, "H-9")
        assert (water["category"], water["severity"], water["opened_ms"]) == ("pressure_low", "major", at(15, 6))
        assert water["deadline_ms"] == at(16, 6)
        assert act(w.unit_b, water["id"], "accept").status_code == 200
        d.until(15, 7)
        assert act(w.unit_b, water["id"], "report_fixed").status_code == 409
        d.until(15, 9)
        assert act(w.unit_b, water["id"], "report_fixed", note="更换减压阀").status_code == 200
        d.until(15, 9.5)
        assert act(w.operator, water["id"], "approve").json()["state"] == "closed"

        # Six false alarms in a morning (GB 50440: more than five a day).
        d.until(20, 15)
        cafe = order_of(w, "P-5")
        assert cafe["category"] == "false_alarms"
        assert act(w.maintenance, cafe["id"], "accept").status_code == 200
        d.until(20, 16)
        refused = act(w.maintenance, cafe["id"], "report_fixed")
        assert refused.status_code == 409 and "false-alarmed 6 times" in refused.json()["message"]
        d.until(21, 15)
        assert act(w.maintenance, cafe["id"], "report_fixed", note="清洗探测器，调整点位").status_code == 200
        d.until(21, 16)
        assert act(w.operator, cafe["id"], "approve").json()["state"] == "closed"

        d.until(30, 23.5)
    finally:
        d.close()
    orders = {o["device_id"]: o for o in w.hazards()}
    assert set(orders) == {"P-1", "P-3", "P-4", "H-9", "P-5"}, orders
    assert not [o["title"] for o in orders.values() if re.search("[A-Za-z]{4,}", o["title"])], "titles in Chinese"
    assert {k: o["state"] for k, o in orders.items()} == {
        "P-1": "closed", "P-3": "dispatched", "P-4": "closed", "H-9": "closed", "P-5": "closed"}
    assert orders["P-3"]["overdue"] and orders["P-3"]["escalated_ms"] is not None
    assert all(o["escalated_ms"] is None for k, o in orders.items() if k != "P-3")
    assert len(w.inbox.to("district@fire.example.org")) == 1
    assert len(w.inbox.to("dept-market@gov.example.org")) == 1
    assert w.inbox.to("dept-tourism@gov.example.org") == [] == w.inbox.to("dept@commerce.example.org")
    units = {u["name"]: u for u in w.operator.get("/api/v1/units-map").json()}
    assert (units["老街杂货店"]["open_hazards"], units["老街杂货店"]["overdue"]) == (1, 1)
    assert units["春熙商场有限公司"]["open_hazards"] == 0
    page = signed_in(browser, w, f"/static/hazards.html#{orders['P-3']['id']}", w.keys["viewer"])
    expect(page.locator(".col[data-state=closed] .card")).to_have_count(4)
    expect(page.locator(".col[data-state=dispatched] .card.overdue")).to_have_count(1)
    expect(page.locator("#units-map circle[fill='#ff2d2d']")).to_have_count(1)
    expect(page.locator("#order .history")).to_contain_text("超期上报")  # the neglected shop's, escalated
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "supervision-month-board.png"), full_page=True)
