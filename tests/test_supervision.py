"""Units and hazard work orders against the real stack: PostgreSQL, the api over HTTP, Mosquitto,
InfluxDB, ingest and alerting, and a real SMTP server for the messages people get."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.publish as mqtt_publish
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from firewatch.supervision import validate
from firewatch.supervision.credit_code import ALPHABET, CreditCodeError, check_character
from firewatch.supervision.registry import CSV_COLUMNS, read_csv
from firewatch.supervision.states import (
    ASSIGNEE,
    CENTER,
    MOVES,
    Action,
    HazardState,
    MoveError,
    move,
)
from tests import supervision_world
from tests.conftest import wait_for
from tests.supervision_world import CODE_A, CODE_MC, DISTRICT, PNG, SITE_A, NotifyThread, World
from tests.test_api_server import PipelineThread
from tests.test_settings_check import firewatch, settings_file

world, world_settings = supervision_world.world, supervision_world.world_settings

pytestmark = pytest.mark.postgres
HOUR = 3_600_000


def publish(w: World, device: str, channel: str, body: dict[str, Any]) -> None:
    mqtt_publish.single(f"fire/v1/{DISTRICT}/{device}/{channel}", orjson.dumps(body), qos=1,
                        hostname="127.0.0.1", port=w.api.settings.mqtt.port)


def alerts(w: World, **params: Any) -> list[dict[str, Any]]:
    return w.operator.get("/api/v1/alerts", params=params).json()["items"]


def text(mail: Any) -> str:
    return mail.get_body(preferencelist=("plain", "html")).get_content()


def act(who: httpx.Client, order: int, action: str, **extra: Any) -> httpx.Response:
    return who.post(f"/api/v1/hazards/{order}/actions", json={"action": action, **extra})


# --- the loop, driven by the real pipeline ------------------------------------


def test_a_fault_unrepaired_24_h_in_event_time_opens_an_order_that_closes_only_when_the_data_says_fixed(
    world: World,
) -> None:
    w = world
    # The 24 h pass in event time: on the wall clock a fault stamped three days ago is unrepaired at once.
    pipeline = PipelineThread(w.api.settings.model_copy(update={"alerting": {"clock": "event"}})).start()
    try:
        t0 = int(time.time() * 1000) - 3 * 24 * HOUR
        publish(w, "P-1", "event", {"ts": t0, "kind": "panel", "event": "fault", "loop": 1, "point": 7,
                                    "zone": "B1 pump room", "component": "smoke"})
        wait_for(lambda: any(a["rule"] == "fault" for a in alerts(w, device_id="P-1")))
        # 23 h later the panel reports again (a supervisory signal): not yet a hazard.
        publish(w, "P-1", "event", {"ts": t0 + 23 * HOUR, "kind": "panel", "event": "supervisory",
                                    "loop": 2, "point": 1})
        wait_for(lambda: any(a["rule"] == "supervisory" for a in alerts(w, device_id="P-1")))
        time.sleep(0.5)  # five sweeps of the supervisor: nothing may open before 24 h
        assert w.hazards() == []
        # A reading elsewhere moves event time past 24 h: alerting marks the fault unrepaired.
        publish(w, "H-9", "telemetry", {"ts": t0 + 24 * HOUR + 5 * 60_000, "kind": "hydrant",
                                        "m": {"pressure_mpa": 0.35}})
        orders = wait_for(lambda: w.hazards(category="fault_unrepaired"))
        assert len(orders) == 1
        order = orders[0]
        assert (order["state"], order["unit"], order["device_id"], order["severity"]) == (
            "dispatched", "春熙商场有限公司", "P-1", "general")
        assert order["opened_ms"] == t0 + 24 * HOUR
        assert order["deadline_ms"] == t0 + 24 * HOUR + 72 * HOUR
        # The engineer and the unit's manager got it on their phones (mail here), with the page link.
        mail = wait_for(lambda: w.inbox.to("wang@rongan.example.org"))
        assert f"/m/o/{order['id']}/" in text(mail[0])
        wait_for(lambda: w.inbox.to("qian@mall.example.org"))
        # The maintenance company accepts on its page and reports it fixed: refused, the panel still faults.
        oid = order["id"]
        assert act(w.maintenance, oid, "accept").json()["state"] == "accepted"
        refused = act(w.maintenance, oid, "report_fixed", note="已更换探测器")
        assert refused.status_code == 409
        assert "still reports fault" in refused.json()["message"]
        # The fault clears on the panel.
        publish(w, "P-1", "event", {"ts": t0 + 25 * HOUR, "kind": "panel", "event": "fault_cleared",
                                    "loop": 1, "point": 7})
        wait_for(lambda: all(a["state"] == "resolved" for a in alerts(w, device_id="P-1", rule="fault")))
        photo = w.maintenance.post("/api/v1/photos", content=PNG, headers={"Content-Type": "image/png"})
        assert photo.status_code == 201, photo.text
        fixed = act(w.maintenance, oid, "report_fixed", note="已更换7号点烟感", photos=[photo.json()["name"]])
        assert fixed.status_code == 200, fixed.text
        assert fixed.json()["state"] == "awaiting_review"
        # The center reviews at once: the data has shown it clear for minutes, not the hour required.
        early = act(w.operator, oid, "approve", note="核查通过")
        assert early.status_code == 409 and "closing needs 1 h clear" in early.json()["message"]
        # An hour of event time later (an ordinary reading elsewhere moves the clock), it closes.
        publish(w, "H-9", "telemetry", {"ts": t0 + 26 * HOUR + 60_000, "kind": "hydrant",
                                        "m": {"pressure_mpa": 0.35}})
        closed = wait_for(lambda: (r := act(w.operator, oid, "approve", note="核查通过")).status_code == 200
                          and r)
        page = closed.json()
        assert page["state"] == "closed" and page["closed_ms"] >= t0 + 26 * HOUR
        steps = [(h["actor"], h["action"], h["after"]) for h in page["history"]]
        assert steps[0] == ("supervision", "open", "dispatched")
        assert ("王工", "accept", "accepted") in steps
        assert ("王工", "report_fixed", "awaiting_review") in steps
        assert steps[-1] == ("operator-tester", "approve", "closed")
        shot = w.operator.get(f"/api/v1/hazards/{oid}/photos/{photo.json()['name']}")
        assert shot.status_code == 200 and shot.content == PNG
    finally:
        pipeline.stop()


# --- escalation, roles, manual orders ------------------------------------------


def test_an_overdue_order_raises_an_alert_that_notify_routes_to_the_department_and_the_district(
    world: World,
) -> None:
    w = world
    notify = NotifyThread(w.api.settings).start()
    try:
        t = 1_780_000_000_000
        fault = w.insert_alert(rule="fault", device_id="P-1", site=SITE_A, started_ms=t,
                               summary="fault: loop 1 point 3")
        # Event time moves on to 100 h: the order opens at 24 h, its 72 h deadline passed at 96 h.
        w.insert_alert(rule="supervisory", device_id="P-2", site="", started_ms=t + 100 * HOUR)
        order = wait_for(lambda: [o for o in w.hazards() if o["escalated_ms"]])[0]
        assert order["overdue"] is True and order["state"] == "dispatched"
        raised = wait_for(lambda: alerts(w, rule="hazard_overdue"))
        assert [(a["kind"], a["severity"], a["state"], a["site"], a["started_ms"]) for a in raised] == [
            ("hazard", "warning", "firing", SITE_A, t + 96 * HOUR)]
        assert "隐患工单超期未整改" in raised[0]["summary"] and "锦江区商务局" in raised[0]["summary"]
        dept = wait_for(lambda: w.inbox.to("dept@commerce.example.org"))
        district = wait_for(lambda: w.inbox.to("district@fire.example.org"))
        assert "隐患工单超期" in str(dept[0]["Subject"]) and "春熙商场有限公司" in str(dept[0]["Subject"])
        assert len(district) == 1
        history = w.operator.get(f"/api/v1/hazards/{order['id']}").json()["history"]
        assert [h["action"] for h in history].count("escalate") == 1
        time.sleep(0.5)  # more sweeps raise nothing more
        assert len(alerts(w, rule="hazard_overdue")) == 1 and len(w.inbox.to("dept@commerce.example.org")) == 1
        assert w.hazards(overdue=True)[0]["id"] == order["id"]
        # The engineer gets it done: once the order is in review the overdue alert resolves.
        assert act(w.maintenance, order["id"], "accept").status_code == 200
        w.resolve_alert(fault, t + 100 * HOUR)
        assert act(w.maintenance, order["id"], "report_fixed", note="已修复").status_code == 200
        wait_for(lambda: alerts(w, rule="hazard_overdue")[0]["state"] == "resolved")
    finally:
        notify.stop()


def test_an_overdue_order_pages_the_channel_of_the_department_the_unit_names(
    world_settings: Any, inbox: Any, sink: Any,
) -> None:
    """A school under the education bureau: no route names its site, the route naming its department
    pages the bureau's webhook; the commerce bureau (unit A's) hears nothing of it."""
    departments = {"锦江区商务局": "dept@commerce.example.org", "锦江区教育局": f"webhook+{sink.base}/edu"}
    for w in supervision_world.build_world(world_settings, inbox, departments):
        school_overdue_pages_its_department(w, sink)


def school_overdue_pages_its_department(w: World, sink: Any) -> None:
    school = w.admin.post("/api/v1/units", json={
        "name": "锦江区实验小学", "credit_code": "12510104MB0000010" + check_character("12510104MB0000010"),
        "district": DISTRICT, "sites": ["实验小学"], "department": "锦江区教育局"})
    assert school.status_code == 201, school.text
    w.add_device("P-7", "panel", "实验小学")
    notify = NotifyThread(w.api.settings).start()
    try:
        t = 1_780_000_000_000
        w.insert_alert(rule="fault", device_id="P-7", site="实验小学", started_ms=t, loop=1, point=4,
                       summary="fault: loop 1 point 4")
        w.insert_alert(rule="supervisory", device_id="P-2", site="", started_ms=t + 100 * HOUR)
        paged = wait_for(lambda: sink.at("/edu"))
        body = orjson.loads(paged[0].body)
        assert body["alert"]["rule"] == "hazard_overdue" and body["alert"]["department"] == "锦江区教育局"
        assert "锦江区实验小学" in body["title"] and "故障超时未修复" in body["title"]
        assert len(wait_for(lambda: w.inbox.to("district@fire.example.org"))) == 1
        order = w.hazards(unit_id=school.json()["id"])[0]
        assert order["title"] == "故障超时未修复：P-7 故障（1回路4号）"
        assert w.inbox.to("dept@commerce.example.org") == [] and len(sink.at("/edu")) == 1
    finally:
        notify.stop()


def test_a_route_matching_a_department_is_checked_like_any_route_key(tmp_path: Path) -> None:
    settings_file(tmp_path, '[[notify.routes]]\nname = "schools"\nkind = ["hazard"]\n'
                            'departmnt = ["锦江区教育局"]\nsteps = [{ notify = ["group:duty"] }]\n')
    done = firewatch(tmp_path, "config", "--check")
    assert done.returncode == 2 and "notify.routes.0.departmnt" in done.stderr, done.stderr
    settings_file(tmp_path, '[[notify.routes]]\nname = "schools"\nkind = ["hazard"]\n'
                            'department = ["锦江区教育局"]\nsteps = [{ notify = ["group:duty"] }]\n')
    assert firewatch(tmp_path, "config", "--check").returncode == 0


def test_a_control_room_that_misses_a_duty_check_is_a_hazard_until_it_answers(world: World) -> None:
    w = world
    t = 1_780_000_000_000
    missed = w.insert_alert(rule="duty_check_missed", device_id="P-1", site=SITE_A, started_ms=t,
                            severity="critical", summary="control room did not answer the duty check")
    order = wait_for(lambda: w.hazards(category="duty_check"))[0]
    assert (order["unit"], order["opened_ms"], order["state"]) == ("春熙商场有限公司", t, "dispatched")
    assert act(w.unit_a, order["id"], "accept").status_code == 200
    assert act(w.unit_a, order["id"], "report_fixed").status_code == 409
    w.resolve_alert(missed, t + 60_000)
    assert act(w.unit_a, order["id"], "report_fixed", note="值班人员已到岗").json()["state"] == "awaiting_review"


def test_only_the_center_reviews_and_a_viewer_cannot_act(world: World) -> None:
    w = world
    r = w.operator.post("/api/v1/hazards", json={"unit_id": w.a["id"], "title": "疏散通道堵塞",
                                                 "note": "三楼东侧通道堆放货物", "severity": "major"})
    assert r.status_code == 201, r.text
    oid = r.json()["id"]
    assert r.json()["deadline_ms"] - r.json()["opened_ms"] == 24 * HOUR
    told = text(wait_for(lambda: w.inbox.to("wang@rongan.example.org"))[0])
    assert "疏散通道堵塞" in told and f"/m/o/{oid}/" in told, "an inspection finding reaches the engineer's phone"
    viewer = httpx.Client(base_url=w.api.url, headers={"Authorization": f"Bearer {w.keys['viewer']}"})
    assert act(viewer, oid, "accept").status_code == 403
    assert act(w.unit_a, oid, "approve").status_code == 409
    assert act(w.unit_a, oid, "accept").json()["state"] == "accepted"
    assert act(w.unit_a, oid, "start").json()["state"] == "rectifying"
    assert act(w.unit_a, oid, "report_fixed", note="已清理").json()["state"] == "awaiting_review"
    rejected = act(w.operator, oid, "reject", note="照片不清晰，请补充")
    assert rejected.json()["state"] == "rejected" and rejected.json()["outcome"] == "照片不清晰，请补充"
    assert act(w.unit_a, oid, "report_fixed", note="补充照片").json()["state"] == "awaiting_review"
    assert act(w.operator, oid, "approve").json()["state"] == "closed"
    assert act(w.operator, oid, "reopen", note="复查发现复发").json()["state"] == "reopened"
    bad = act(w.operator, oid, "fly")
    assert bad.status_code == 422


def test_unit_and_maintenance_tokens_see_only_their_own_units_on_every_endpoint(world: World) -> None:
    w = world
    order = w.operator.post("/api/v1/hazards", json={"unit_id": w.a["id"], "title": "喷淋末端压力不足"}).json()
    photo = w.unit_a.post("/api/v1/photos", content=PNG, headers={"Content-Type": "image/png"}).json()["name"]
    act(w.unit_a, order["id"], "note", note="已通知维保", photos=[photo])
    secrets = (CODE_A, "春熙商场", SITE_A, "喷淋末端")
    values = {"unit_id": w.a["id"], "order_id": order["id"], "company_id": w.company["id"], "name": photo,
              "device_id": "P-1", "alert_id": 1, "token_id": 1, "site": SITE_A, "silence_id": 1}
    spec = w.admin.get("/openapi.json").json()
    checked = 0
    for path, methods in spec["paths"].items():
        if path.startswith("/api/v1/public") or path in ("/api/v1/session", "/api/v1/health", "/metrics"):
            continue
        url = path
        for key, value in values.items():
            url = url.replace("{" + key + "}", str(value))
        url = re.sub(r"\{[a-z_]+\}", "1", url)  # the center's own things (roster people, ...)
        for method in methods:
            body = {"action": "accept"} if path.endswith("/actions") else {}
            r = w.unit_b.request(method.upper(), url, json=body, timeout=15)
            checked += 1
            text = r.text
            assert r.status_code in (200, 403, 404, 405, 409, 422), f"{method} {path}: {r.status_code} {text[:200]}"
            assert not any(s in text for s in secrets), f"{method} {path} leaks unit A: {text[:300]}"
            if r.status_code == 200:
                assert path in ("/api/v1/units", "/api/v1/hazards", "/api/v1/companies", "/api/v1/units-map"), path
    assert checked > 40
    # The same token sees its own unit, and the maintenance company sees unit A but not B.
    assert [u["name"] for u in w.unit_b.get("/api/v1/units").json()] == ["锦江大厦物业"]
    assert [u["name"] for u in w.maintenance.get("/api/v1/units").json()] == ["春熙商场有限公司"]
    assert w.maintenance.get(f"/api/v1/units/{w.b['id']}").status_code == 404
    assert w.unit_a.get(f"/api/v1/hazards/{order['id']}/photos/{photo}").content == PNG
    assert w.unit_b.get("/api/v1/session").json()["role"] == "unit"


def test_csv_import_reports_each_rejected_row(world: World) -> None:
    w = world
    rows = [
        ",".join(CSV_COLUMNS),
        (f"新华书店,91510104MA6E00020N,key,春熙路2号,{DISTRICT},网格2,30.66,104.08,书店一楼;书店二楼,{CODE_MC},"
         "文旅局,周总,13900000011,吴经理,13900000012,028-1234567"),
        f"错码单位,91510104MA6E00021N,general,,{DISTRICT},,,,,,,,,,,",
        "缺区单位,91510104MA6F00030A,general,,,,,,,,,,,,,",
        f"类别错,91510104MA6F00030A,airport,,{DISTRICT},,,,,,,,,,,",
        f"重复,91510104MA6E00020N,general,,{DISTRICT},,,,,,,,,,,",
        f"抢站点,91510105MA6D00010H,general,,{DISTRICT},,,,{SITE_A},,,,,,,",
        f"未知维保,91510104MA6F00030A,general,,{DISTRICT},,,,,911100001000013428,,,,,,",
        f"坐标错,91510104MA6F00030A,general,,{DISTRICT},,north,,,,,,,,,",
    ]
    r = w.admin.post("/api/v1/units/import", content="\n".join(rows).encode(),
                     headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    rep = r.json()
    assert (rep["created"], rep["updated"]) == (1, 0)
    reasons = {x["line"]: x["reason"] for x in rep["rejected"]}
    assert "check character" in reasons[3]
    assert "missing district" in reasons[4]
    assert "category" in reasons[5]
    assert "duplicate of line 2" in reasons[6]
    assert "already belongs to another unit" in reasons[7]
    assert "check character" in reasons[8]  # the company's code is checked too
    assert "latitude" in reasons[9]
    units = {u["name"]: u for u in w.admin.get("/api/v1/units").json()}
    assert units["新华书店"]["sites"] == ["书店一楼", "书店二楼"]
    assert units["新华书店"]["company"] == "成都蓉安消防维保有限公司"
    assert {c["role"] for c in units["新华书店"]["contacts"]} == {"responsible", "manager", "control_room"}
    again = w.admin.post("/api/v1/units/import", content="\n".join(rows[:2]).encode())
    assert (again.json()["created"], again.json()["updated"]) == (0, 1)
    for hostile in (b"\xff\xfe", b"name,credit_code\n", b"", b'name,credit_code,district\n"a\x00",b,c'):
        r = w.admin.post("/api/v1/units/import", content=hostile)
        assert r.status_code == 422 and r.json()["message"], hostile


# --- public reports ------------------------------------------------------------


def report(w: World, phone: str = "13700000000", photos: list[bytes] | None = None,
           **fields: str) -> httpx.Response:
    data = {"phone": phone, "note": "楼梯间防火门被锁", "address": "春熙路1号"} | fields
    files = [("photos", (f"p{i}.png", p, "image/png")) for i, p in enumerate(photos or [])]
    return httpx.post(f"{w.api.url}/api/v1/public/hazard-reports", data=data, files=files or None, timeout=15)


def test_a_public_report_lands_for_review_and_the_reporter_follows_it_by_receipt(world: World) -> None:
    w = world
    r = report(w, photos=[PNG], latitude="30.6571", longitude="104.0801")
    assert r.status_code == 201, r.text
    receipt = r.json()["receipt"]
    assert r.json()["state"] == "awaiting_review"
    order = w.hazards(category="public")[0]
    assert order["unit_id"] == w.a["id"] and order["photos"]
    assert act(w.operator, order["id"], "dispatch", note="已派发至单位整改").json()["state"] == "dispatched"
    # Dispatched by hand, the order reaches the unit's manager as a dispatch does: its title, its link.
    told = text(wait_for(lambda: w.inbox.to("qian@mall.example.org"))[0])
    assert order["title"].startswith("群众举报：") and order["title"] in told and f"/m/o/{order['id']}/" in told
    follow = httpx.get(f"{w.api.url}/api/v1/public/hazard-reports/{receipt}").json()
    assert follow["state"] == "dispatched" and follow["outcome"] == "已派发至单位整改"
    assert "春熙" not in str(follow)
    assert httpx.get(f"{w.api.url}/api/v1/public/hazard-reports/AAAAAAAAAA").status_code == 404
    missing = report(w, note="")
    assert missing.status_code == 422 and "note" in missing.json()["message"]
    nowhere = report(w, address="")
    assert nowhere.status_code == 422 and "address" in nowhere.json()["message"]
    fake = report(w, photos=[b"MZ\x90\x00 not a photo"])
    assert fake.status_code == 422 and "JPEG, PNG or WebP" in fake.json()["message"]


def test_an_oversized_photo_or_a_flood_of_reports_is_refused_with_a_clear_message(world: World) -> None:
    w = world
    big = PNG + b"\x00" * (5 * 1024 * 1024)
    r = report(w, photos=[big])
    assert r.status_code == 413 and "limit is 5.0 MiB" in r.json()["message"]
    too_many = report(w, photos=[PNG] * 4)
    assert too_many.status_code == 413 and "at most 3 photos" in too_many.json()["message"]
    codes = [report(w, phone=f"1370000{k:04d}").status_code for k in range(12)]
    assert codes[:10] == [201] * 10
    flood = report(w, phone="13711112222")
    assert flood.status_code == 429 and "too many reports" in flood.json()["message"]
    assert len(w.hazards(category="public")) == 10


# --- pure parts: the credit code, the state table, hostile CSV -------------------


def test_credit_codes_are_checked_by_their_check_character() -> None:
    assert validate("91350100M000100Y43") == "91350100M000100Y43"
    assert validate(" 91110000802100433b ") == "91110000802100433B"
    for bad, why in (("91350100M000100Y44", "check character"), ("9135010", "18 characters"),
                     ("91350100M0001O0Y43", "cannot contain"), ("Z1350100M000100Y43", "cannot contain"),
                     ("913501A0M000100Y43", "administrative division")):
        with pytest.raises(CreditCodeError, match=why):
            validate(bad)


@given(st.text(alphabet=ALPHABET, min_size=11, max_size=11), st.integers(0, 17), st.sampled_from(ALPHABET))
def test_any_one_character_changed_in_a_valid_code_is_caught(body: str, pos: int, ch: str) -> None:
    first17 = "9" + "1" + "510104" + body[:9]
    code = first17 + check_character(first17)
    assert validate(code) == code
    changed = code[:pos] + ch + code[pos + 1:]
    if changed != code:
        with pytest.raises(CreditCodeError):
            validate(changed)


@given(st.lists(st.sampled_from(list(Action)), max_size=30), st.sampled_from([CENTER, ASSIGNEE]))
def test_no_sequence_of_actions_leaves_the_state_table(actions: list[Action], by: str) -> None:
    state = HazardState.DISPATCHED
    for a in actions:
        if a is Action.NOTE:
            continue
        try:
            nxt = move(state, a, by)
        except MoveError:
            continue
        assert (state, a) in MOVES and nxt == MOVES[(state, a)][0]
        if nxt is HazardState.CLOSED:
            assert by == CENTER
        state = nxt


@hsettings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.text(max_size=30), max_size=20), max_size=15), st.booleans())
def test_hostile_csv_is_rejected_row_by_row_and_never_crashes(rows: list[list[str]], header: bool) -> None:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf)
    if header:
        writer.writerow(CSV_COLUMNS)
    writer.writerows(rows)
    try:
        good, bad = read_csv(buf.getvalue().encode())
    except ValueError as exc:
        assert str(exc)
        return
    lines = {ln for ln, *_ in good} | {ln for ln, *_ in bad}
    assert len(lines) == len(good) + len(bad)
    for _, reason_code, reason in bad:
        assert reason


# --- bounded atheris runs over the parsers at the edge ---------------------------


def fuzz(target: str, tmp_path: Path, seeds: dict[str, bytes]) -> None:
    """A coverage-guided atheris run of `tests.fuzz.<target>` for FIREWATCH_FUZZ_SECONDS (5) from `seeds`."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, data in seeds.items():
        (corpus / name).write_bytes(data)
    seconds = os.environ.get("FIREWATCH_FUZZ_SECONDS", "5")
    result = subprocess.run(
        [sys.executable, "-m", f"tests.fuzz.{target}", f"-max_total_time={seconds}", "-rss_limit_mb=1024",
         f"-artifact_prefix={tmp_path}/", str(corpus)],
        check=False, capture_output=True, text=True, timeout=int(seconds) + 90, cwd=Path(__file__).parent.parent,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done" in result.stderr and not list(tmp_path.glob("crash-*")), result.stderr[-3000:]


def test_the_unit_csv_fuzz_target_finds_nothing_in_a_bounded_run(tmp_path: Path) -> None:
    row = f"春熙商场,{CODE_A},key,{DISTRICT},春熙商场;B座,{CODE_MC},13900000002\n".encode()
    fuzz("unit_csv", tmp_path, {"row": b"h" + row, "bad": b"h" + row.replace(b"key", b"huge"),
                                "file": ",".join(CSV_COLUMNS).encode() + b"\n" + row})


def test_the_public_report_form_fuzz_target_finds_nothing_in_a_bounded_run(tmp_path: Path) -> None:
    part = '--fw\r\nContent-Disposition: form-data; name="{}"\r\n\r\n{}\r\n'
    form = "".join(part.format(k, v) for k, v in (("phone", "13900000009"), ("note", "楼道堆放杂物"),
                                                   ("latitude", "30.657"), ("longitude", "104.08")))
    photo = (b'--fw\r\nContent-Disposition: form-data; name="photos"; filename="a.png"\r\n'
             b"Content-Type: image/png\r\n\r\n") + PNG + b"\r\n"
    fuzz("report_form", tmp_path, {"multipart": b"\x00" + (form + "--fw--\r\n").encode(),
                                   "photo": b"\x00" + form.encode() + photo + b"--fw--\r\n",
                                   "urlencoded": b"\x02phone=13900000009&note=x&address=%E6%98%A5"})
