"""Duty checks through the real api server and the device registry's transmitter addresses:
register a panel with its transmission device's address, ask its site for a duty check over
HTTP, and read the control room's answer back."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from firewatch.contract.mqtt import MqttError
from firewatch.contract.settings import Settings
from firewatch.gateway import DutyRequest
from firewatch.gateway.publisher import request_duty_check
from firewatch.services import free_port
from firewatch.simulators.gb26875 import TransmissionDevice
from tests import test_api_server
from tests.test_api_server import ApiThread, tokens
from tests.test_gateway import CENTER, gateway_settings, running

api = test_api_server.api


async def test_a_duty_check_from_the_api_reaches_the_sites_control_room_and_is_recorded(
        api: ApiThread, settings: Settings) -> None:
    keys = tokens(api.settings)
    auth = {role: {"Authorization": f"Bearer {key}"} for role, key in keys.items()}
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
        r = await http.post("/api/v1/devices", headers=auth["admin"], json={
            "id": "P-9", "kind": "panel", "district": "510107", "site": "Tower A",
            "transmitter_address": "00000000E001"})
        assert r.status_code == 201, r.text
        assert r.json()["transmitter_address"] == "00000000e001"
        r = await http.post("/api/v1/devices", headers=auth["admin"], json={
            "id": "P-11", "kind": "panel", "district": "510107", "transmitter_address": "00000000e001"})
        assert r.status_code == 409 and "belongs to device P-9" in r.json()["message"]
        csv = ("id,kind,district,transmitter_address\nP-10,panel,510107,00000000E001\n"
               "P-12,panel,510107,00000000e002\nP-13,panel,510107,not-hex\n")
        r = await http.post("/api/v1/devices/import", headers={**auth["admin"], "Content-Type": "text/csv"},
                            content=csv)
        report = r.json()
        assert report["created"] == 1
        assert [(x["id"], "belongs to device P-9" in x["reason"]) for x in report["rejected"]] == [
            ("P-10", True), ("P-13", False)]

        s = gateway_settings(settings)
        async with running(s) as gw:
            device = TransmissionDevice("00000000e001", CENTER, duty_delay_s=0.4)
            await device.connect("127.0.0.1", gw.ports[0])
            try:
                await device.heartbeat()
                r = await http.post("/api/v1/duty-checks", headers=auth["viewer"], json={"site": "Tower A"})
                assert r.status_code == 403
                r = await http.post("/api/v1/duty-checks", headers=auth["operator"], json={"device_id": "bad id!"})
                assert r.status_code == 422 and r.json()["status"] == 422
                r = await http.post("/api/v1/duty-checks", headers=auth["operator"], json={"site": "Tower A"})
                assert r.status_code == 202, r.text
                sent = r.json()
                assert sent["scope"] == "site Tower A"
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    rows = (await http.get("/api/v1/duty-checks", headers=auth["viewer"],
                                           params={"request_id": sent["request_id"]})).json()
                    if rows and rows[0]["result"] != "pending":
                        break
                    await asyncio.sleep(0.2)
            finally:
                await device.close()
        (row,) = rows
        assert (row["device_id"], row["district"], row["result"], row["requested_by"]) == (
            "P-9", "510107", "answered", "operator-tester")
        assert 0.3 < row["response_s"] < 5
        assert device.duty_checks == 1


async def test_a_duty_check_asked_while_the_broker_is_away_fails_at_once_naming_it(settings: Settings) -> None:
    """The api answers 503 from this error; the operator is told, not kept waiting for the broker."""
    away = settings.mqtt.model_copy(update={"port": free_port(), "connect_timeout_s": 5.0})
    started = time.monotonic()
    with pytest.raises(MqttError, match=f"127.0.0.1:{away.port}"):
        await request_duty_check(away, DutyRequest("r1", "operator", None, None, None))
    assert time.monotonic() - started < away.connect_timeout_s


def test_the_duty_check_command_says_the_broker_is_away_and_exits_1(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "none.toml").write_text("")
    env = {**os.environ, "FIREWATCH_CONFIG": str(tmp_path / "none.toml"), "FIREWATCH_MQTT__PORT": str(port)}
    out = subprocess.run([sys.executable, "-m", "firewatch", "gateway", "duty-check", "--district", "510104"],
                         capture_output=True, text=True, env=env, timeout=60, check=False)
    assert out.returncode == 1, out.stderr
    said = " ".join(out.stderr.split())
    assert f"duty check not sent: broker 127.0.0.1:{port} unreachable" in said and "mqtt.port" in said, said
