"""Unit scores and random inspections from a simulated month of a district (March 2026, event time).

Alerting's real pipeline turns the month's panel events and hydrant readings into alerts in
PostgreSQL and points in InfluxDB; the api's supervisor opens the orders; the scores are asked of
the api as a supervisor would. The scenario's truth:

- 春熙商场 (P-1): one fault repaired within six hours — green, nothing to say but the fault's minutes;
- 老街杂货店 (P-3): a panel fault from the 2nd never repaired, its order overdue — red by its sum,
  for integrity, repair and the overdue order;
- 锦江大厦 (the hydrants): six hours below the floor on the 15th, the major order left open — red
  whatever its sum (a major hazard overdue);
- 东门酒店 (P-4): a fire alarm nobody answered for two hours — red whatever its sum.

Then a draw weighted by those grades, reproducible from its seed, and an inspection result that
keeps the shop out of the next draw.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from playwright.sync_api import Browser, expect
from pypdf import PdfReader

from firewatch.contract.db import open_store
from firewatch.contract.influx import Influx
from firewatch.contract.kinds import Kind
from firewatch.contract.lineproto import record_line
from firewatch.contract.payload import Reading
from firewatch.contract.settings import Settings
from firewatch.simulators.citymap import DISTRICTS_FILE
from firewatch.supervision import Grade, InspectionResult, Unit, month
from firewatch.supervision.credit_code import check_character
from firewatch.supervision.draws import Candidate, pick
from firewatch.supervision.score_settings import InspectionSettings
from tests import supervision_world
from tests.supervision_world import DISTRICT, World
from tests.test_api_server import ApiThread, client, tokens
from tests.test_supervision_month import HOUR, SITES, District, at, order_of, panel
from tests.test_supervision_pages import browser, signed_in

world, world_settings = supervision_world.world, supervision_world.world_settings
__all__ = ["browser"]  # a fixture used by name
MARCH = "2026-03"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
SHOP, HOTEL = "老街杂货店", "东门酒店"


def by_name(scores: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["unit"]: s for s in scores}


def reasons(score: dict[str, Any]) -> list[str]:
    return [r["indicator"] for r in score["reasons"]]


@pytest.mark.postgres
@pytest.mark.browser
def test_a_simulated_month_scores_units_as_the_scenario_says_and_the_draw_replays(world: World, browser: Browser) -> None:
    w = world
    for name in (SHOP, HOTEL):
        w.add_unit(name, category="general")
    for device, site in SITES.items():
        if device in ("P-3", "P-4") or device.startswith("H-1"):
            w.add_device(device, "hydrant" if device.startswith("H") else "panel", site)
    d = District(w)
    try:
        d.events = [panel("P-1", at(1, 8), "fault", 7), panel("P-1", at(1, 14), "fault_cleared", 7),
                    panel("P-3", at(2, 9), "fault", 2),
                    panel("P-4", at(12, 10), "fire", 5), panel("P-4", at(12, 12), "reset")]
        d.until(3, 10)
        assert order_of(w, "P-3")["opened_ms"] == at(3, 9)
        d.until(15, 6.5)
        assert order_of(w, "H-9")["severity"] == "major"
        d.until(30, 23.5)
    finally:
        d.close()

    r = w.operator.get("/api/v1/scores", params={"month": MARCH, "district": DISTRICT})
    assert r.status_code == 200, r.text
    scores = by_name(r.json())
    mall, shop, tower, hotel = (scores[n] for n in ("春熙商场有限公司", "老街杂货店", "锦江大厦物业", "东门酒店"))

    assert mall["grade"] == "green" and mall["score"] >= 95, mall
    assert mall["indicators"]["faults"] == 1 and mall["indicators"]["repair_worst_h"] == pytest.approx(6)
    assert reasons(mall) == ["integrity"], mall["reasons"]

    assert shop["grade"] == "red" and shop["score"] < 60, shop
    assert reasons(shop)[:3] == ["integrity", "hazards", "repair"], shop["reasons"]
    assert shop["indicators"]["faults_open"] == 1 and shop["indicators"]["hazards_overdue"] == 1
    assert shop["indicators"]["integrity_rate"] == pytest.approx(57 / 744, abs=1e-3)
    assert "仍未修复" in shop["reasons"][2]["zh"] and "still unrepaired" in shop["reasons"][2]["en"]

    assert tower["grade"] == "red" and tower["score"] >= 60, "red whatever the sum, not by it"
    assert reasons(tower)[0] == "hazards_major_overdue" and "重大隐患" in tower["reasons"][0]["zh"]
    readings = 7 * 2 * 24 * 31
    assert tower["indicators"]["pressure_readings"] == readings
    assert tower["indicators"]["pressure_ok_rate"] == pytest.approx(1 - 12 / readings)

    assert hotel["grade"] == "red" and hotel["score"] >= 85, hotel
    assert reasons(hotel) == ["missed_fire_responses"] and "火警 1 次未在 180 秒内响应" in hotel["reasons"][0]["zh"]
    assert all(s["trend"] == "new" for s in scores.values()), "February holds no records to compare with"

    # Reproducible: the same month again gives the same figures and the same inputs' version.
    again = by_name(w.operator.get("/api/v1/scores", params={"month": MARCH, "district": DISTRICT}).json())
    assert {n: (s["score"], s["inputs_version"]) for n, s in again.items()} == {
        n: (s["score"], s["inputs_version"]) for n, s in scores.items()}
    one = w.operator.get(f"/api/v1/units/{shop['unit_id']}/score", params={"month": MARCH}).json()
    assert (one["score"], one["inputs_version"]) == (shop["score"], shop["inputs_version"])

    # The draw: red units always drawn, then weighted; the record replays to the same units.
    drawn = w.operator.post("/api/v1/inspections/draws", json={"district": DISTRICT, "count": 3, "seed": 20260331})
    assert drawn.status_code == 201, drawn.text
    row = drawn.json()
    assert sorted(row["result"]) == sorted(s["unit_id"] for s in (shop, tower, hotel))
    assert {c["unit_id"]: c["weight"] for c in row["candidates"]}[mall["unit_id"]] == 1
    replayed = w.operator.get(f"/api/v1/inspections/draws/{row['id']}/replay").json()
    assert replayed["same"] and replayed["replayed"] == row["result"]

    # The inspection of the shop is recorded against it and its order; the next draw leaves it out.
    order = order_of(w, "P-3")
    rec = w.operator.post("/api/v1/inspections", json={
        "unit_id": shop["unit_id"], "draw_id": row["id"], "result": InspectionResult.FAIL,
        "findings": "9号点故障未修复", "hazard_ids": [order["id"]], "at_ms": at(30, 23)})
    assert rec.status_code == 201, rec.text
    wrong = w.operator.post("/api/v1/inspections", json={
        "unit_id": mall["unit_id"], "draw_id": row["id"], "result": "pass"})
    assert wrong.status_code == 422 and "was not drawn" in wrong.json()["message"]
    nxt = w.operator.post("/api/v1/inspections/draws", json={"district": DISTRICT, "count": 4}).json()
    assert [e["unit_id"] for e in nxt["excluded"]] == [shop["unit_id"]]
    assert shop["unit_id"] not in nxt["result"] and len(nxt["result"]) == 3
    assert w.unit_a.get("/api/v1/scores", params={"month": MARCH}).status_code == 403

    # The monthly PDFs say the API's numbers, in Chinese, and the district by its registered name.
    named = w.admin.put("/api/v1/districts", content=DISTRICTS_FILE.read_bytes(), headers={"content-type": "text/csv"})
    assert named.status_code == 200, named.text
    ARTIFACTS.mkdir(exist_ok=True)
    texts = {}
    for name, path in (("district", f"/api/v1/reports/districts/{DISTRICT}.pdf"),
                       ("shop", f"/api/v1/reports/units/{shop['unit_id']}.pdf"),
                       ("mall", f"/api/v1/reports/units/{mall['unit_id']}.pdf")):
        r = w.operator.get(path, params={"month": MARCH}, timeout=60)
        assert r.status_code == 200 and r.headers["content-type"] == "application/pdf", r.text[:300]
        (ARTIFACTS / f"supervision-report-{name}.pdf").write_bytes(r.content)
        texts[name] = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(r.content)).pages)
    (ARTIFACTS / "supervision-report-text.txt").write_text("\n\n".join(texts.values()), encoding="utf-8")
    for s in scores.values():
        assert f"{s['unit']}\n{s['score']:.1f}\n{s['grade_zh']}" in texts["district"], (s, texts["district"])
    assert "单位 4 家：绿色 1 黄色 0 红色 3" in texts["district"]
    assert "种子 20260331，候选 4 家，排除 0 家" in texts["district"]
    for name, s in (("shop", shop), ("mall", mall)):
        text, x = texts[name], s["indicators"]
        assert f"综合评分 {s['score']:.1f} 分 等级 {s['grade_zh']}色" in text, text
        assert "辖区 锦江区" in text and "辖区 510104" not in text, text
        assert f"设施完好率\n{x['integrity_rate']:.1%}" in text
        assert f"故障次数 / 月末未修复\n{x['faults']} / {x['faults_open']}" in text
        assert all(f"· {r['zh']}" in text for r in s["reasons"]), (s["reasons"], text)
    # The console page: the month's units green to red, their PDFs, a draw that replays.
    page = signed_in(browser, w, "/static/scores.html", w.keys["operator"])
    # the sign-in dialog is modal: what is typed behind it before it closes is lost (seen at load 10)
    expect(page.locator("#login")).to_be_hidden()
    page.fill("#month", MARCH)
    page.fill("#district", DISTRICT)
    page.click("#load")
    expect(page.locator("#scores tbody tr")).to_have_count(4)
    expect(page.locator("#scores tbody tr[data-grade=red]")).to_have_count(3)
    expect(page.locator("#scores tbody tr").first).to_contain_text(f"春熙商场有限公司{mall['score']:.1f}绿")
    # the page may first show the default month: wait for the asked one's rows (CI read them too soon)
    expect(page.locator(f"tr[data-unit='{shop['unit_id']}'] a")).to_have_attribute(
        "href", f"/api/v1/reports/units/{shop['unit_id']}.pdf?month={MARCH}")
    page.fill("#count", "2")
    page.fill("#seed", "7")
    expect(page.locator("#district")).to_have_value(DISTRICT)
    page.click("#draw")
    expect(page.locator("#draw-result")).to_contain_text("按记录重新抽取，结果一致")
    page.screenshot(path=str(ARTIFACTS / "supervision-scores.png"), full_page=True)
    assert "故障 loop 1" not in texts["shop"] and "03-03 09:00\nP-3\n故障" in texts["shop"]
    bad = w.operator.get("/api/v1/scores", params={"month": "2026-13"})
    assert bad.status_code == 422 and "YYYY-MM" in bad.json()["message"]


def test_the_month_is_the_centers_calendar_month() -> None:
    march = month("2026-03")
    assert march.start_ms == at(0, 0) and march.end_ms == at(31, 0) and march.days == 31
    with pytest.raises(ValueError, match="YYYY-MM"):
        month("2026-3")


grades = st.sampled_from([Grade.RED, Grade.YELLOW, Grade.GREEN, None])


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.integers(1, 10_000), grades, max_size=60), st.integers(1, 80),
       st.integers(0, 2**63 - 1), st.booleans())
def test_a_draw_is_a_function_of_its_record(units: dict[int, Grade | None], count: int, seed: int,
                                             red_always: bool) -> None:
    s = InspectionSettings(red_always=red_always)
    cands = [Candidate(u, g) for u, g in units.items()]
    result = pick(cands, count, seed, s)
    assert result == pick(list(reversed(cands)), count, seed, s), "the order candidates came in does not matter"
    assert len(result) == len(set(result)) == min(count, len(units))
    assert set(result) <= set(units)
    red = {u for u, g in units.items() if g == Grade.RED}
    if red_always and len(red) <= count:
        assert red <= set(result)


def test_green_units_are_drawn_less_often_than_yellow_ones() -> None:
    s = InspectionSettings()
    cands = [Candidate(u, Grade.GREEN if u % 2 else Grade.YELLOW) for u in range(1, 101)]
    drawn = [u for seed in range(400) for u in pick(cands, 5, seed, s)]
    green = sum(u % 2 for u in drawn)
    assert 0.15 < green / len(drawn) < 0.35, f"weights 1:3 should give green about a quarter, got {green}/{len(drawn)}"


def test_inspect_draw_on_the_command_line_is_recorded_and_replays(tmp_path: Path) -> None:
    db = tmp_path / "fw.db"

    async def units() -> None:
        store = await open_store(f"sqlite:///{db}")
        async with store.session() as s, s.begin():
            s.add_all([Unit(name=f"单位{k}", credit_code=f"U{k:017d}", category="general", district="510104")
                       for k in range(12)])
        await store.aclose()

    asyncio.run(units())
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREWATCH_")}
    env["FIREWATCH_STORE__URL"] = f"sqlite:///{db}"

    def fw(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "firewatch", *args], cwd=tmp_path, env=env, check=False,
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

    first, second = (fw("inspect", "draw", "--district", "510104", "--count", "4", "--seed", "99") for _ in "ab")
    assert first.returncode == second.returncode == 0, first.stderr
    assert first.stdout.split("drawn units")[1] == second.stdout.split("drawn units")[1], (first.stdout, second.stdout)
    assert first.stdout.startswith("draw 1: seed 99, 12 candidates, 0 excluded")
    replayed = fw("inspect", "replay", "1")
    assert replayed.returncode == 0 and "replayed" in replayed.stdout, replayed.stdout + replayed.stderr


def test_pressure_compliance_is_judged_by_each_devices_own_floor(settings: Settings) -> None:
    """A hydrant is judged by the floor alerting warns at for it: its site's `[alerting]` setting or its own
    registry thresholds when set, the kind's 0.14 MPa otherwise (one source of the fact: alerting's settings)."""
    s = settings.model_copy(update={"alerting": {"sites": {"高层住宅": {"hydrant": {"pressure_low": {"warning": 0.30}}}}},
                                    "supervision": {"enabled": False}})
    api = ApiThread(s).start()
    try:
        admin = client(api, tokens(api.settings)["admin"])
        floors = {"低层商铺": None, "高层住宅": None, "厂房": {"pressure_low": {"warning": 0.25}}}
        for k, (site, thresholds) in enumerate(floors.items()):
            code = f"91510104MA6H0{k:04d}"
            r = admin.post("/api/v1/units", json={"name": site, "credit_code": code + check_character(code),
                                                  "category": "general", "district": DISTRICT, "sites": [site]})
            assert r.status_code == 201, r.text
            device = {"id": f"H-{k}", "kind": "hydrant", "district": DISTRICT, "site": site}
            r = admin.post("/api/v1/devices", json=device | ({"thresholds": thresholds} if thresholds else {}))
            assert r.status_code == 201, r.text

        def pressure(ts: int) -> float:
            """0.28 MPa the first ten days of March, 0.20 the next five, 0.35 after."""
            return 0.28 if ts < at(10, 0) else 0.20 if ts < at(15, 0) else 0.35

        lines = [record_line(Reading(DISTRICT, f"H-{k}", Kind.HYDRANT, ts, None, {"pressure_mpa": pressure(ts)}), site)
                 for k, site in enumerate(floors) for ts in range(at(0, 0), at(31, 0), HOUR)]

        async def write() -> None:
            influx = Influx(s.influx)
            await influx.write("\n".join(lines))
            await influx.aclose()

        asyncio.run(write())
        r = client(api, tokens(api.settings)["viewer"]).get("/api/v1/scores", params={"month": MARCH})
        assert r.status_code == 200, r.text
        rate = {x["unit"]: x["indicators"]["pressure_ok_rate"] for x in r.json()}
        assert rate == {"低层商铺": 1.0, "高层住宅": pytest.approx(16 / 31), "厂房": pytest.approx(26 / 31)}, rate
    finally:
        api.stop()
