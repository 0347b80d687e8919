"""The REST API against real Mosquitto, InfluxDB and a SQLite store: what a client would notice."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import paho.mqtt.publish as mqtt_publish
import pytest

from firewatch.contract.db import Alert, AuditEntry, open_store
from firewatch.contract.influx import Influx
from firewatch.contract.settings import Settings
from tests import test_api_server
from tests.conftest import wait_for
from tests.test_api_server import ApiThread, PipelineThread, client, read_events, run, tokens

api = test_api_server.api
"""The api fixture: a real server in a thread over this test's services."""


@pytest.fixture
def keys(api: ApiThread) -> dict[str, str]:
    return tokens(api.settings)


@pytest.fixture
def admin(api: ApiThread, keys: dict[str, str]) -> httpx.Client:
    return client(api, keys["admin"])


@pytest.fixture
def operator(api: ApiThread, keys: dict[str, str]) -> httpx.Client:
    return client(api, keys["operator"])


@pytest.fixture
def viewer(api: ApiThread, keys: dict[str, str]) -> httpx.Client:
    return client(api, keys["viewer"])


def now_ms() -> int:
    return int(time.time() * 1000)


def insert_alerts(settings: Settings, *alerts: dict[str, Any]) -> list[int]:
    """Alerts as alerting stores them: a row plus a `fired` audit entry each."""

    async def go() -> list[int]:
        store = await open_store(settings.store.url)
        ids = []
        async with store.session() as s, s.begin():
            for a in alerts:
                t = now_ms()
                row = Alert(
                    **{
                        "fingerprint": f"{a.get('device_id', 'x')}:{a['rule']}",
                        "state": "firing",
                        "started_ms": t,
                        "last_seen_ms": t,
                    }
                    | a
                )
                s.add(row)
                await s.flush()
                await store.audit(s, "alerting", "fired", f"alert:{row.id}")
                ids.append(row.id)
        await store.aclose()
        return ids

    return run(go())


def audit_rows(settings: Settings, subject: str) -> list[AuditEntry]:
    async def go() -> list[AuditEntry]:
        from sqlalchemy import select

        store = await open_store(settings.store.url)
        async with store.session() as s:
            rows = list(
                (await s.execute(select(AuditEntry).where(AuditEntry.subject == subject))).scalars()
            )
        await store.aclose()
        return rows

    return run(go())


def write_lines(settings: Settings, lines: list[str]) -> None:
    async def go() -> None:
        async with Influx(settings.influx) as influx:
            await influx.write("\n".join(lines))

    run(go())


HYDRANT = {
    "id": "H-1",
    "kind": "hydrant",
    "district": "510104",
    "site": "Jinjiang Park",
    "latitude": 30.65,
    "longitude": 104.08,
    "thresholds": {"pressure_low": {"alarm": 0.12}},
}


# --- auth and errors ---------------------------------------------------------


def test_every_call_needs_a_token_and_the_right_role(
    api: ApiThread, viewer: httpx.Client, keys: dict[str, str]
) -> None:
    r = httpx.get(f"{api.url}/api/v1/alerts")
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    assert client(api, "fw_nonsense").get("/api/v1/alerts").status_code == 401
    r = viewer.post("/api/v1/devices", json=HYDRANT)
    assert r.status_code == 403 and "admin" in r.json()["message"]
    assert viewer.get("/api/v1/session").json() == {"name": "viewer-tester", "role": "viewer"}


def test_console_login_sets_a_cookie_that_authenticates(
    api: ApiThread, keys: dict[str, str]
) -> None:
    with httpx.Client(base_url=api.url) as browser:
        assert browser.post("/api/v1/session", json={"token": "wrong"}).status_code == 401
        r = browser.post("/api/v1/session", json={"token": keys["operator"]})
        assert r.status_code == 200 and "httponly" in r.headers["set-cookie"].lower()
        assert browser.get("/api/v1/alerts").status_code == 200
        browser.delete("/api/v1/session")
        assert browser.get("/api/v1/alerts").status_code == 401


def test_admin_issues_and_revokes_tokens(admin: httpx.Client, api: ApiThread) -> None:
    r = admin.post("/api/v1/tokens", json={"name": "night shift", "role": "operator"})
    assert r.status_code == 201
    new = r.json()
    assert client(api, new["token"]).get("/api/v1/session").json()["name"] == "night shift"
    assert all("token" not in t for t in admin.get("/api/v1/tokens").json())
    assert admin.delete(f"/api/v1/tokens/{new['id']}").status_code == 204
    assert client(api, new["token"]).get("/api/v1/session").status_code == 401
    assert admin.delete(f"/api/v1/tokens/{new['id']}").status_code == 404


def test_errors_are_json_with_the_right_status(admin: httpx.Client) -> None:
    r = admin.get("/api/v1/nowhere")
    assert r.status_code == 404 and r.json()["status"] == 404
    assert admin.put("/api/v1/alerts").status_code == 405
    r = admin.post(
        "/api/v1/devices", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["errors"]
    r = admin.get("/api/v1/alerts", params={"limit": 10**30})
    assert r.status_code == 422 and "limit" in r.json()["message"]
    assert admin.get(f"/api/v1/alerts/{2**70}").status_code == 422


# --- devices -----------------------------------------------------------------


def test_device_lifecycle_is_validated_and_audited(admin: httpx.Client, api: ApiThread) -> None:
    r = admin.post("/api/v1/devices", json=HYDRANT)
    assert r.status_code == 201, r.text
    assert admin.post("/api/v1/devices", json=HYDRANT).status_code == 409
    bad = admin.post(
        "/api/v1/devices", json=HYDRANT | {"id": "H 2", "kind": "toaster", "latitude": 91}
    )
    assert bad.status_code == 422
    assert {e["loc"] for e in bad.json()["errors"]} == {"body.id", "body.kind", "body.latitude"}
    r = admin.patch(
        "/api/v1/devices/H-1",
        json={"site": "Wangjiang", "thresholds": {"pressure_low": {"alarm": 0.11}}},
    )
    assert r.json()["site"] == "Wangjiang"
    assert admin.patch("/api/v1/devices/H-1", json={"kind": "pump"}).status_code == 422
    for thresholds, says in (
        ({"residual_current": {"alarm": 300}}, "no rule"),
        ({"pressure_low": {"warning": 0.05, "alarm": 0.12}}, "must not be below"),
        ({"pressure_low": {"alarm": 9}}, "outside"),
    ):
        r = admin.patch("/api/v1/devices/H-1", json={"thresholds": thresholds})
        assert r.status_code == 422 and says in r.json()["message"], r.text
    assert admin.get("/api/v1/devices", params={"site": "Wangjiang"}).json()["total"] == 1
    assert admin.delete("/api/v1/devices/H-1").status_code == 200
    assert admin.get("/api/v1/devices").json()["total"] == 0
    assert admin.get("/api/v1/devices", params={"retired": True}).json()["items"][0]["id"] == "H-1"
    assert admin.delete("/api/v1/devices/H-1").status_code == 409
    assert admin.get("/api/v1/devices/H-404").status_code == 404
    actions = [(a.actor, a.action) for a in audit_rows(api.settings, "device:H-1")]
    assert actions == [
        ("admin-tester", "create"),
        ("admin-tester", "update"),
        ("admin-tester", "retire"),
    ]


def test_csv_import_reports_each_rejected_row(admin: httpx.Client) -> None:
    admin.post("/api/v1/devices", json=HYDRANT)
    csv_text = (
        "id,kind,district,site,address,latitude,longitude,thresholds\n"
        'E-1,electrical,510104,Mall,1 Road,30.6,104.1,"{""residual_current"": {""alarm"": 300}}"\n'
        "E-2,microwave,510104,Mall,,30.6,104.1,\n"
        "E 3,electrical,510104,Mall,,30.6,104.1,\n"
        "E-4,electrical,510104,Mall,,north,104.1,\n"
        "E-5,electrical,510104,Mall,,30.6,104.1,{oops\n"
        "E-1,electrical,510104,Mall,,30.6,104.1,\n"
        "H-1,hydrant,510105,Moved,,30.7,104.2,\n"
        ",pump,510104,,,,,\n"
    )
    r = admin.post(
        "/api/v1/devices/import", content=csv_text.encode(), headers={"content-type": "text/csv"}
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["created"], report["updated"]) == (1, 1)
    reasons = {(x["line"], x["id"]): x["reason"] for x in report["rejected"]}
    assert set(reasons) == {(3, "E-2"), (4, "E 3"), (5, "E-4"), (6, "E-5"), (7, "E-1"), (9, "")}
    assert "kind" in reasons[(3, "E-2")] and "latitude" in reasons[(5, "E-4")]
    assert "JSON" in reasons[(6, "E-5")] and "duplicate of line 2" in reasons[(7, "E-1")]
    assert "missing id" in reasons[(9, "")]
    assert admin.get("/api/v1/devices/E-1").json()["thresholds"] == {
        "residual_current": {"alarm": 300}
    }
    assert admin.get("/api/v1/devices/H-1").json()["district"] == "510105"
    r = admin.post(
        "/api/v1/devices/import", content=b"\xff\xfe", headers={"content-type": "text/csv"}
    )
    assert r.status_code == 422


# --- readings ----------------------------------------------------------------


def test_readings_are_aggregated_per_window_and_identifiers_are_checked(
    admin: httpx.Client, api: ApiThread
) -> None:
    admin.post("/api/v1/devices", json=HYDRANT)
    admin.post("/api/v1/devices", json=HYDRANT | {"id": "H-2"})
    t0 = now_ms() - 3_600_000
    t0 -= t0 % 3_600_000
    write_lines(
        api.settings,
        [
            f"hydrant,device_id=H-1,district=510104 pressure_mpa={0.30 + i / 100},battery_pct=80 {t0 + i * 60_000}"
            for i in range(20)
        ]
        + [f"hydrant,device_id=H-2,district=510104 pressure_mpa=0.5 {t0}"],
    )
    r = admin.get(
        "/api/v1/devices/H-1/readings",
        params={"start": t0, "end": t0 + 1_200_000, "window": "10m", "metric": "pressure_mpa"},
    )
    assert r.status_code == 200, r.text
    (series,) = r.json()["series"]
    assert series["times"] == [t0, t0 + 600_000]
    assert series["values"]["pressure_mpa"] == pytest.approx([0.345, 0.445])
    assert {(t["rule"], t["level"], t["value"]) for t in series["levels"]["pressure_mpa"]} == {
        ("pressure_low", "warning", 0.14),
        ("pressure_low", "alarm", 0.12),
        ("pressure_high", "warning", 1.0),
    }
    r = admin.get(
        "/api/v1/sites/Jinjiang Park/readings", params={"start": t0, "window": "1h", "agg": "max"}
    )
    assert {s["device_id"]: s["values"]["pressure_mpa"] for s in r.json()["series"]} == {
        "H-1": pytest.approx([0.49]),
        "H-2": [0.5],
    }
    for params in (
        {"metric": "residual_ma"},
        {"metric": 'x") OR 1=1'},
        {"window": "1h; DROP"},
        {"agg": "sum"},
        {"start": t0, "end": t0 - 1},
        {"window": "1s", "start": t0 - 86_400_000},
    ):
        r = admin.get("/api/v1/devices/H-1/readings", params=params)
        assert r.status_code == 422, (params, r.text)
    assert admin.get("/api/v1/devices/H-1'or'1'='1/readings").status_code == 422


def test_panel_readings_are_its_events(admin: httpx.Client, api: ApiThread) -> None:
    admin.post(
        "/api/v1/devices", json={"id": "P-1", "kind": "panel", "district": "510104", "site": "Mall"}
    )
    t = now_ms() - 60_000
    write_lines(
        api.settings,
        [f'panel_event,device_id=P-1 event="fire",loop=1i,point=23i,zone="3F east" {t}'],
    )
    (series,) = admin.get("/api/v1/devices/P-1/readings").json()["series"]
    assert series["events"] == [
        {"t": t, "event": "fire", "loop": 1, "point": 23, "zone": "3F east", "component": None}
    ]


# --- alerts ------------------------------------------------------------------


def test_queue_and_snapshot_answer_304_until_something_changes(
    admin: httpx.Client, operator: httpx.Client, api: ApiThread
) -> None:
    """A console holding the current bytes gets a bodiless 304; an acknowledge makes it 200 again."""
    (alert_id,) = insert_alerts(api.settings, {"rule": "panel_fire", "severity": "fire", "device_id": "P-1"})
    for path in ("/api/v1/alerts?state=open", "/api/v1/console/snapshot"):
        first = admin.get(path)
        etag = first.headers["etag"]
        again = admin.get(path, headers={"If-None-Match": etag})
        assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag), path
    queue_etag = admin.get("/api/v1/alerts?state=open").headers["etag"]
    assert operator.post(f"/api/v1/alerts/{alert_id}/acknowledge").status_code == 200
    changed = admin.get("/api/v1/alerts?state=open", headers={"If-None-Match": queue_etag})
    assert changed.status_code == 200 and changed.headers["etag"] != queue_etag
    assert changed.json()["items"][0]["state"] == "acknowledged"


def test_alert_queue_puts_fire_first_then_score_and_filters(
    admin: httpx.Client, api: ApiThread
) -> None:
    insert_alerts(
        api.settings,
        {
            "rule": "pressure_low",
            "severity": "warning",
            "kind": "hydrant",
            "device_id": "H-1",
            "district": "510104",
        },
        {
            "rule": "panel_fire",
            "severity": "fire",
            "kind": "panel",
            "device_id": "P-1",
            "score": 0.2,
            "district": "510104",
            "site": "Mall",
        },
        {
            "rule": "panel_fire",
            "severity": "fire",
            "kind": "panel",
            "device_id": "P-2",
            "score": 0.9,
            "probable": True,
            "reasons": ["3 detectors in zone 3F"],
            "district": "510105",
            "site": "Tower",
        },
        {
            "rule": "residual_high",
            "severity": "critical",
            "kind": "electrical",
            "device_id": "E-1",
            "district": "510104",
            "state": "resolved",
        },
    )
    queue = admin.get("/api/v1/alerts", params={"state": "open"}).json()
    assert [a["device_id"] for a in queue["items"]] == ["P-2", "P-1", "H-1"]
    assert queue["items"][0]["reasons"] == ["3 detectors in zone 3F"]
    assert admin.get("/api/v1/alerts", params={"district": "510105"}).json()["total"] == 1
    assert (
        admin.get("/api/v1/alerts", params={"severity": ["critical", "warning"]}).json()["total"]
        == 2
    )
    assert (
        admin.get("/api/v1/alerts", params={"kind": "panel", "site": "Mall"}).json()["total"] == 1
    )
    assert admin.get("/api/v1/alerts", params={"since": now_ms() + 60_000}).json()["total"] == 0
    assert admin.get("/api/v1/alerts", params={"state": "burning"}).status_code == 422


def test_acknowledge_resolve_comment_are_guarded_and_audited(
    operator: httpx.Client, viewer: httpx.Client, api: ApiThread
) -> None:
    (alert_id,) = insert_alerts(
        api.settings,
        {
            "rule": "panel_fire",
            "severity": "fire",
            "kind": "panel",
            "device_id": "P-1",
            "district": "510104",
        },
    )
    assert viewer.post(f"/api/v1/alerts/{alert_id}/acknowledge").status_code == 403
    r = operator.post(
        f"/api/v1/alerts/{alert_id}/acknowledge", json={"note": "calling control room"}
    )
    assert r.status_code == 200
    assert (r.json()["state"], r.json()["acknowledged_by"]) == ("acknowledged", "operator-tester")
    again = operator.post(f"/api/v1/alerts/{alert_id}/acknowledge")
    assert again.status_code == 409 and "operator-tester" in again.json()["message"]
    assert (
        operator.post(
            f"/api/v1/alerts/{alert_id}/comments", json={"text": "steam from kitchen"}
        ).status_code
        == 201
    )
    assert (
        operator.post(f"/api/v1/alerts/{alert_id}/comments", json={"text": ""}).status_code == 422
    )
    r = operator.post(f"/api/v1/alerts/{alert_id}/resolve", json={"outcome": "false_alarm"})
    assert r.json()["state"] == "resolved" and r.json()["resolved_ms"]
    assert operator.post(f"/api/v1/alerts/{alert_id}/resolve").status_code == 409
    assert operator.post("/api/v1/alerts/999999/acknowledge").status_code == 404
    detail = viewer.get(f"/api/v1/alerts/{alert_id}").json()
    history = [(h["actor"], h["action"], h["detail"]) for h in detail["history"]]
    assert history == [
        ("alerting", "fired", {}),
        ("operator-tester", "acknowledge", {"note": "calling control room"}),
        ("operator-tester", "comment", {"text": "steam from kitchen"}),
        ("operator-tester", "resolve", {"outcome": "false_alarm"}),
    ]


def test_alert_detail_carries_the_readings_behind_it(admin: httpx.Client, api: ApiThread) -> None:
    admin.post("/api/v1/devices", json=HYDRANT)
    t = now_ms() - 120_000
    write_lines(api.settings, [f"hydrant,device_id=H-1 pressure_mpa=0.08,battery_pct=70 {t}"])
    (alert_id,) = insert_alerts(
        api.settings,
        {
            "rule": "pressure_low",
            "severity": "critical",
            "kind": "hydrant",
            "device_id": "H-1",
            "metric": "pressure_mpa",
            "value": 0.08,
        },
    )
    readings = admin.get(f"/api/v1/alerts/{alert_id}").json()["readings"]
    (series,) = readings["series"]
    assert [m["name"] for m in series["metrics"]] == ["pressure_mpa"]
    assert 0.08 in series["values"]["pressure_mpa"]


def test_silences_need_a_scope_and_can_be_ended(
    operator: httpx.Client, viewer: httpx.Client
) -> None:
    t = now_ms()
    assert operator.post("/api/v1/silences", json={"ends_ms": t + 3_600_000}).status_code == 422
    assert (
        operator.post("/api/v1/silences", json={"site": "Mall", "ends_ms": t - 1}).status_code
        == 422
    )
    r = operator.post(
        "/api/v1/silences",
        json={"site": "Mall", "ends_ms": t + 3_600_000, "reason": "detector service"},
    )
    assert (
        r.status_code == 201 and r.json()["active"] and r.json()["created_by"] == "operator-tester"
    )
    sid = r.json()["id"]
    assert viewer.delete(f"/api/v1/silences/{sid}").status_code == 403
    assert (
        operator.patch(f"/api/v1/silences/{sid}", json={"ends_ms": t + 7_200_000}).json()["ends_ms"]
        == t + 7_200_000
    )
    assert operator.delete(f"/api/v1/silences/{sid}").status_code == 204
    assert viewer.get("/api/v1/silences").json() == []
    assert viewer.get("/api/v1/silences", params={"expired": True}).json()[0]["active"] is False


def test_roster_round_trips_and_tells_who_is_on_duty(
    admin: httpx.Client, viewer: httpx.Client
) -> None:
    roster = {
        "people": [
            {
                "id": "wang",
                "name": "Wang Wei",
                "channels": ["mailto://wang@example.org"],
                "language": "zh",
            }
        ],
        "groups": [{"id": "center", "name": "Center", "members": ["wang"]}],
        "shifts": [],
    }
    assert viewer.put("/api/v1/roster", json=roster).status_code == 403
    assert (
        admin.put(
            "/api/v1/roster", json=roster | {"groups": [{"id": "g", "members": ["nobody"]}]}
        ).status_code
        == 422
    )
    bad_days = {"group": "center", "person": "wang", "days": True, "start": "08:00", "end": "20:00"}
    refused = admin.put("/api/v1/roster", json=roster | {"shifts": [bad_days]})
    assert refused.status_code == 422 and "days" in refused.text  # was a 500 (schemathesis)
    assert admin.put("/api/v1/roster", json=roster).status_code == 200
    assert viewer.get("/api/v1/roster").json()["people"][0]["name"] == "Wang Wei"
    assert viewer.get("/api/v1/roster/on-duty").json()["groups"] == {
        "center": [{"id": "wang", "name": "Wang Wei"}]
    }


# --- live stream -------------------------------------------------------------


def test_stream_resumes_after_a_disconnect_without_missing_changes(
    operator: httpx.Client, api: ApiThread, keys: dict[str, str]
) -> None:
    first, second = insert_alerts(
        api.settings,
        {"rule": "panel_fire", "severity": "fire", "kind": "panel", "device_id": "P-1"},
        {"rule": "panel_fire", "severity": "fire", "kind": "panel", "device_id": "P-2"},
    )
    headers = {"Authorization": f"Bearer {keys['viewer']}"}
    with httpx.stream(
        "GET", f"{api.url}/api/v1/stream", params={"since": 0}, headers=headers, timeout=10
    ) as resp:
        lines = resp.iter_lines()
        events = read_events(lines, 3)
    assert [(e["event"], e.get("data", {}).get("alert", {}).get("id")) for e in events] == [
        ("cursor", None),
        ("alert", first),
        ("alert", second),
    ]
    last_id = events[-1]["id"]
    operator.post(f"/api/v1/alerts/{first}/acknowledge")
    operator.post(f"/api/v1/alerts/{second}/resolve")
    with httpx.stream(
        "GET", f"{api.url}/api/v1/stream", headers=headers | {"Last-Event-ID": last_id}, timeout=10
    ) as resp:
        lines = resp.iter_lines()
        events = read_events(lines, 3)
    changes = [
        (e["data"]["alert"]["id"], e["data"]["audit"]["action"], e["data"]["alert"]["state"])
        for e in events[1:]
    ]
    assert changes == [(first, "acknowledge", "acknowledged"), (second, "resolve", "resolved")]


def test_stream_wakes_on_a_published_alert_change(api: ApiThread, keys: dict[str, str]) -> None:
    headers = {"Authorization": f"Bearer {keys['viewer']}"}
    with httpx.stream("GET", f"{api.url}/api/v1/stream", headers=headers, timeout=10) as resp:
        lines = resp.iter_lines()
        read_events(lines, 1)
        (alert_id,) = insert_alerts(
            api.settings, {"rule": "panel_fire", "severity": "fire", "device_id": "P-9"}
        )
        mqtt_publish.single(
            "fire/v1/_alerts/510104/P-9/panel_fire",
            b"{}",
            hostname="127.0.0.1",
            port=api.settings.mqtt.port,
        )
        (event,) = read_events(lines, 1)
    assert event["event"] == "alert" and event["data"]["alert"]["id"] == alert_id


def test_device_status_changes_are_recorded_once_and_streamed(
    admin: httpx.Client, api: ApiThread, keys: dict[str, str]
) -> None:
    admin.post("/api/v1/devices", json=HYDRANT)
    wait_for(lambda: admin.get("/api/v1/health").json()["broker"])
    port = api.settings.mqtt.port
    headers = {"Authorization": f"Bearer {keys['viewer']}"}
    cursor = admin.get("/api/v1/console/snapshot").json()["cursor"]
    for online in (True, True, False):
        body = f'{{"ts": {now_ms()}, "online": {str(online).lower()}, "fw": "2.1.0"}}'.encode()
        mqtt_publish.single(
            "fire/v1/510104/H-1/status", body, qos=1, retain=True, hostname="127.0.0.1", port=port
        )
        time.sleep(0.3)
    with httpx.stream(
        "GET", f"{api.url}/api/v1/stream", params={"since": cursor}, headers=headers, timeout=10
    ) as resp:
        lines = resp.iter_lines()
        events = read_events(lines, 3)
    assert [
        (e["event"], e["data"]["audit"]["action"], e["data"]["online"]) for e in events[1:]
    ] == [("device", "online", False), ("device", "offline", False)]
    assert admin.get("/api/v1/devices/H-1").json()["status"]["online"] is False
    assert admin.get("/api/v1/devices", params={"online": False}).json()["total"] == 1
    mqtt_publish.single(
        "fire/v1/510104/H-1/status", b"", retain=True, hostname="127.0.0.1", port=port
    )


def test_snapshot_is_columnar_with_open_alerts(admin: httpx.Client, api: ApiThread) -> None:
    admin.post("/api/v1/devices", json=HYDRANT)
    insert_alerts(
        api.settings,
        {"rule": "panel_fire", "severity": "fire", "device_id": "P-1"},
        {"rule": "x", "severity": "info", "device_id": "P-1", "state": "resolved"},
    )
    snap = admin.get("/api/v1/console/snapshot").json()
    assert snap["devices"]["id"] == ["H-1"] and snap["devices"]["latitude"] == [30.65]
    assert [a["rule"] for a in snap["alerts"]] == ["panel_fire"] and snap["cursor"] >= 3


# --- statistics --------------------------------------------------------------


def test_statistics_for_the_shift_report(
    admin: httpx.Client, operator: httpx.Client, api: ApiThread
) -> None:
    admin.post("/api/v1/devices", json=HYDRANT)
    admin.post("/api/v1/devices", json=HYDRANT | {"id": "H-2"})
    mqtt_publish.single(
        "fire/v1/510104/H-1/status",
        f'{{"ts": {now_ms()}, "online": true}}'.encode(),
        hostname="127.0.0.1",
        port=api.settings.mqtt.port,
    )
    wait_for(lambda: admin.get("/api/v1/stats/online").json()[0]["online"] == 1)
    (row,) = admin.get("/api/v1/stats/online").json()
    assert (row["total"], row["online"], row["unknown"], row["rate"]) == (2, 1, 1, 1.0)
    ids = insert_alerts(
        api.settings,
        *[
            {
                "rule": "panel_fire",
                "severity": "fire",
                "kind": "panel",
                "device_id": "P-1",
                "zone": "kitchen",
            }
        ]
        * 3,
        {
            "rule": "panel_fire",
            "severity": "fire",
            "kind": "panel",
            "device_id": "P-2",
            "zone": "hall",
        },
    )
    for i in ids[:2]:
        operator.post(f"/api/v1/alerts/{i}/acknowledge")
    for i in ids[:3]:
        operator.post(f"/api/v1/alerts/{i}/resolve", json={"outcome": "false_alarm"})
    operator.post(f"/api/v1/alerts/{ids[3]}/resolve", json={"outcome": "real_fire"})
    top = admin.get("/api/v1/stats/false-alarms").json()
    assert [(p["device_id"], p["zone"], p["count"]) for p in top] == [("P-1", "kitchen", 3)]
    (ack,) = admin.get("/api/v1/stats/time-to-acknowledge").json()
    assert ack["severity"] == "fire" and ack["acknowledged"] == 2 and ack["mean_s"] >= 0
    days = admin.get("/api/v1/stats/alerts-per-day", params={"utc_offset_minutes": 480}).json()
    assert sum(d["count"] for d in days) == 4 and days[0]["rule"] == "panel_fire"


# --- the real pipeline -------------------------------------------------------


def test_a_device_reading_becomes_an_alert_an_operator_handles(
    admin: httpx.Client, operator: httpx.Client, api: ApiThread
) -> None:
    """Device -> broker -> ingest + alerting -> SQL/InfluxDB -> API, and the acknowledgement sticks."""
    admin.post("/api/v1/devices", json=HYDRANT)
    pipeline = PipelineThread(api.settings).start()
    try:
        port = api.settings.mqtt.port
        for k in range(3):
            body = orjson.dumps(
                {
                    "ts": now_ms() - (2 - k) * 1000,
                    "seq": k,
                    "kind": "hydrant",
                    "m": {"pressure_mpa": 0.05, "battery_pct": 80},
                }
            )
            mqtt_publish.single(
                "fire/v1/510104/H-1/telemetry", body, qos=1, hostname="127.0.0.1", port=port
            )
        alert = wait_for(
            lambda: next(
                iter(
                    operator.get(
                        "/api/v1/alerts", params={"device_id": "H-1", "rule": "pressure_low"}
                    ).json()["items"]
                ),
                None,
            )
        )
        assert (alert["severity"], alert["state"], alert["site"]) == (
            "critical",
            "firing",
            "Jinjiang Park",
        )
        wait_for(
            lambda: (
                0.05
                in (
                    operator.get(f"/api/v1/alerts/{alert['id']}").json()["readings"]
                    or {"series": [{"values": {"pressure_mpa": []}}]}
                )["series"][0]["values"]["pressure_mpa"]
            )
        )
        assert operator.post(f"/api/v1/alerts/{alert['id']}/acknowledge").status_code == 200
        body = orjson.dumps(
            {"ts": now_ms(), "seq": 3, "kind": "hydrant", "m": {"pressure_mpa": 0.04}}
        )
        mqtt_publish.single(
            "fire/v1/510104/H-1/telemetry", body, qos=1, hostname="127.0.0.1", port=port
        )
        time.sleep(2)
        again = operator.get(f"/api/v1/alerts/{alert['id']}").json()["alert"]
        assert (again["state"], again["acknowledged_by"]) == ("acknowledged", "operator-tester")
    finally:
        pipeline.stop()
