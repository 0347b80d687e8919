"""`firewatch up` as a newcomer runs it: everything starts, data flows, Ctrl-C stops it all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from firewatch.services import free_port, port_open
from tests.conftest import wait_for


def _count(influx: str, measurement: str) -> int:
    try:
        r = httpx.get(f"{influx}/query", params={"db": "firewatch", "q": f"SELECT count(*) FROM {measurement}"})
        series = r.json()["results"][0].get("series")
    except (httpx.HTTPError, KeyError, ValueError):
        return 0
    return max(series[0]["values"][0][1:]) if series else 0


def test_up_runs_the_platform_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    mqtt, influx_port, api_port, metrics, alerting = (free_port() for _ in range(5))
    influx = f"http://127.0.0.1:{influx_port}"
    (tmp_path / "firewatch.toml").write_text(
        f"""[mqtt]
port = {mqtt}
[influx]
url = "{influx}"
[ingest]
metrics_port = {metrics}
[alerting]
metrics_port = {alerting}
[api]
port = {api_port}
public_url = "http://127.0.0.1:{api_port}"
[up]
simulate_devices = 40
simulate_rate = 40
start_services = true
"""
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "firewatch", "up"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    banner: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            banner.append(line)
            if "firewatch is up" in line:
                break
        # "is up" means every part answers, the api first of all
        assert httpx.get(f"http://127.0.0.1:{api_port}/api/v1/health").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{alerting}/metrics").status_code == 200
        wait_for(lambda: _count(influx, "electrical") > 20, timeout_s=90, interval_s=0.5)
        token = (tmp_path / ".firewatch" / "admin-token").read_text().strip()
        me = httpx.get(f"http://127.0.0.1:{api_port}/api/v1/session", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.json()["role"] == "admin"
        assert httpx.get(f"http://127.0.0.1:{api_port}/").status_code == 200
        assert "firewatch_ingest_records_written_total" in httpx.get(f"http://127.0.0.1:{metrics}/metrics").text
        assert "firewatch_alerting_messages_received_total" in httpx.get(f"http://127.0.0.1:{alerting}/metrics").text
        proc.send_signal(signal.SIGINT)
        out = proc.stdout.read()  # not communicate(): it would skip what the line reader holds
        proc.wait(60)
    finally:
        if proc.poll() is None:  # a failed check: take down up, its parts and its services
            os.killpg(proc.pid, signal.SIGKILL)
            for leftover in (tmp_path / ".firewatch").glob("*/*.conf"):
                subprocess.run(["pkill", "-f", str(leftover)], check=False)
            proc.communicate()
    out = "".join(banner) + out
    assert proc.returncode == 0, out
    assert "firewatch is up" in out and token in out and "firewatch stopped." in out
    assert f"mqtt://127.0.0.1:{mqtt}  (started by firewatch up" in out
    for port in (mqtt, influx_port, api_port, metrics, alerting):
        assert not port_open(port), f"port {port} still open after Ctrl-C"
