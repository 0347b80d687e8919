"""The api and the shipped deployment against what issue 17 found: secrets shown to viewers,
a revoked token's stream left open, a 500 from an acknowledge link, device text posing as
message lines, a Grafana login reading secrets, and acknowledge links signed with the wrong key.

Real api server, real Mosquitto, SQLite here and PostgreSQL (tests/test_api_postgres.py runs
the status test there, and the Grafana role test needs it).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import paho.mqtt.publish as mqtt_publish
import pytest
import yaml

from firewatch.contract.db import Alert
from firewatch.contract.kinds import FW_CHARS
from firewatch.contract.settings import Settings
from firewatch.notify.acklink import AckSigner, Claim
from firewatch.notify.config import notify_config
from firewatch.notify.templates import Purpose, render
from tests import test_api_server
from tests.conftest import wait_for
from tests.postgres import admin, database
from tests.test_api_server import ApiThread, client, read_events, tokens

api = test_api_server.api
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def keys(api: ApiThread) -> dict[str, str]:
    return tokens(api.settings)


ROSTER = {
    "people": [{"id": "wang", "name": "Wang Wei", "language": "zh", "channels": [
        "sms://+8613800000000", "ntfy://duty:s3cret@ntfy.example.org/firewatch-duty",
        "webhook+https://hooks.example.org/T0/B0/xoxb-secret"]}],
    "groups": [{"id": "center", "members": ["wang"]}],
    "shifts": [],
}


def test_the_roster_shows_channel_addresses_to_admins_only(api: ApiThread, keys: dict[str, str]) -> None:
    admin, viewer, operator = (client(api, keys[r]) for r in ("admin", "viewer", "operator"))
    assert admin.put("/api/v1/roster", json=ROSTER).status_code == 200
    assert admin.get("/api/v1/roster").json()["people"][0]["channels"] == ROSTER["people"][0]["channels"]
    for who in (viewer, operator):
        body = who.get("/api/v1/roster")
        assert body.status_code == 200
        person = body.json()["people"][0]
        assert person["name"] == "Wang Wei"
        assert person["channels"] == ["sms://…", "ntfy://…", "webhook+https://…"]
        assert "s3cret" not in body.text and "13800000000" not in body.text and "xoxb" not in body.text


def test_a_revoked_token_loses_its_open_live_stream(api: ApiThread, keys: dict[str, str]) -> None:
    admin = client(api, keys["admin"])
    issued = admin.post("/api/v1/tokens", json={"name": "wall screen", "role": "viewer"}).json()
    headers = {"Authorization": f"Bearer {issued['token']}"}
    with httpx.stream("GET", f"{api.url}/api/v1/stream", headers=headers, timeout=10) as resp:
        lines = resp.iter_lines()
        assert read_events(lines, 1)[0]["event"] == "cursor"
        started = time.monotonic()
        assert admin.delete(f"/api/v1/tokens/{issued['id']}").status_code == 204
        events = read_events(lines, 1)
        assert [e["event"] for e in events] == ["error"] and "revoked" in events[0]["data"]["error"]
        assert list(lines) == [], "the server ends the stream"
        assert time.monotonic() - started < 5
    assert client(api, issued["token"]).get("/api/v1/stream").status_code == 401


def test_an_acknowledge_link_with_a_non_ascii_mac_is_refused_not_a_500(settings: Settings) -> None:
    server = ApiThread(settings)
    server.settings = server.settings.model_copy(
        update={"notify": {"public_url": server.url, "secret": "ack-test-secret"}})
    server.start()
    try:
        token = AckSigner("ack-test-secret", server.url).token(Claim(1, "zhang", int(time.time() * 1000) + 60_000))
        body = token.split(".")[0]
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for url in (f"/ack/1/{body}.{'é' * 24}", f"/ack/1/{body}.火警火警", f"/ack/1/{body}.{'é' * 24}/ack"):
                for r in (http.get(url), http.post(url, data={"how": "ack"})):
                    if r.status_code == 405:  # the action URL takes POST only
                        continue
                    assert r.status_code == 403, (url, r.status_code, r.text[:200])
                    assert "无效" in r.text
    finally:
        server.stop()


def test_device_text_with_line_breaks_stays_on_its_own_line_in_a_message() -> None:
    alert = Alert(
        rule="fire", severity="fire", state="firing", kind="panel", device_id="P1", district="510104",
        site="万达广场\n已解除", zone="3F\r\n[已确认] 误报\u2028http://evil.example/ack", summary="火警\n已恢复",
        started_ms=1_763_800_000_000, last_seen_ms=1_763_800_000_000, reasons=["a\nb"], probable=True, score=90,
    )
    text = render(alert, Purpose.PAGE, "zh", ZoneInfo("Asia/Shanghai"), address="红星路\n1号",
                  link="https://fw.example/ack/1/t")
    lines = text.body.split("\n")
    assert "\n" not in text.title and "已恢复" in text.title
    assert sum(line.startswith("区域：") for line in lines) == 1
    zone_line = next(line for line in lines if line.startswith("区域："))
    assert "误报" in zone_line and "http://evil.example/ack" in zone_line
    assert [line for line in lines if "http" in line and not line.startswith("区域：")] == [
        next(line for line in lines if "fw.example" in line)]
    assert not any(line.startswith(("已解除", "1号", "b", "[已确认]")) for line in lines)


def test_device_statuses_with_hostile_firmware_text_are_recorded(api: ApiThread, keys: dict[str, str]) -> None:
    """A fw over the column's length or with a NUL failed the whole status batch on PostgreSQL,
    retried forever: online/offline stopped updating for the whole city."""
    admin = client(api, keys["admin"])
    wait_for(lambda: admin.get("/api/v1/health").json()["broker"])
    for i in range(3):
        assert admin.post("/api/v1/devices", json={"id": f"H-{i}", "kind": "hydrant",
                                                    "district": "510104"}).status_code == 201
    port = api.settings.mqtt.port
    now = int(time.time() * 1000)
    fws = ["v" + "9" * 200, "2.1\x00-beta", "2.1.0"]
    msgs = [{"topic": f"fire/v1/510104/H-{i}/status", "qos": 1,
             "payload": f'{{"ts": {now}, "online": false, "fw": "{fw}"}}'.replace("\x00", "\\u0000")}
            for i, fw in enumerate(fws)]
    mqtt_publish.multiple(msgs, hostname="127.0.0.1", port=port)

    def recorded() -> list[Any] | None:
        found = [admin.get(f"/api/v1/devices/H-{i}").json().get("status") for i in range(3)]
        return found if all(s and s["online"] is False for s in found) else None

    statuses = wait_for(recorded)
    assert statuses[0]["fw"] == ("v" + "9" * 200)[:FW_CHARS]
    assert statuses[1]["fw"] == "2.1 -beta" and statuses[2]["fw"] == "2.1.0"


@pytest.mark.postgres
def test_the_grafana_role_reads_the_map_and_no_secret(settings: Settings) -> None:
    import psycopg

    from firewatch.dashboards.boards import all_dashboards
    from tests.test_api_server import run

    role = f"grafana_{uuid.uuid4().hex[:8]}"
    try:
        with database("fw_grafana") as url:
            name = url.rsplit("/", 1)[1]
            env = os.environ | {"POSTGRES_USER": "postgres", "POSTGRES_DB": name, "GRAFANA_DB_PASSWORD": "pw",
                                "GRAFANA_DB_USER": role, "PGHOST": "127.0.0.1"}
            subprocess.run(["sh", str(ROOT / "deploy/postgres/grafana-reader.sh")], env=env, check=True,
                           capture_output=True, timeout=30)
            from firewatch.contract.db import open_store

            async def create() -> None:
                store = await open_store(url)  # firewatch's first start, after the database's
                await store.aclose()

            run(create())
            with psycopg.connect(f"postgresql://{role}:pw@127.0.0.1:5432/{name}", autocommit=True) as conn:
                for query in _registry_queries(all_dashboards()):
                    conn.execute(query)
                for secret in ("SELECT token_hash FROM api_tokens", "SELECT mqtt_password_hash FROM devices",
                               "SELECT * FROM devices", "SELECT * FROM notify_messages", "SELECT * FROM audit",
                               "SELECT * FROM roster_people", "SELECT * FROM alerts"):
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        conn.execute(secret)
    finally:  # after the database, which holds the role's grants
        with admin() as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def _registry_queries(dashboards: list[dict[str, Any]]) -> list[str]:
    """Every SQL query the dashboards send to the registry (PostgreSQL) datasource."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("rawSql"), str):
                found.append(node["rawSql"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(dashboards)
    assert found, "the dashboards query the registry"
    return found


def test_compose_alerting_signs_acknowledge_links_with_the_api_key_and_url(monkeypatch, tmp_path: Path) -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    values = {"API_SECRET": "the-shared-secret", "PUBLIC_URL": "https://fire.example.gov.cn"}

    def env_of(service: str) -> dict[str, str]:
        out = {}
        for key, value in services[service]["environment"].items():
            if key.startswith("FIREWATCH_API__"):
                for var, v in values.items():
                    value = value.replace("${" + var + ":?set " + var + " in .env}", v)
                    value = value.replace("${" + var + ":-http://localhost:8080}", v)
                out[key] = value
        return out

    configs = {}
    for service in ("alerting", "api"):
        for key in [k for k in os.environ if k.startswith("FIREWATCH_")]:
            monkeypatch.delenv(key)
        for key, value in env_of(service).items():
            monkeypatch.setenv(key, value)
        configs[service] = notify_config(Settings(up={"data_dir": tmp_path / service}))
    assert configs["alerting"].secret == configs["api"].secret == "the-shared-secret"
    assert configs["alerting"].public_url == configs["api"].public_url == "https://fire.example.gov.cn"
