"""`firewatch dashboards push` against an HTTP server that answers as Grafana's API does.

No Grafana runs in CI: this server checks what Grafana's HTTP API requires of
each request (bearer token, paths, bodies, uid rules) and keeps the state a
Grafana would, so pushing twice can be compared with pushing once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from firewatch.cli import app
from firewatch.dashboards.boards import all_dashboards
from firewatch.dashboards.grafana import FOLDER_UID, INFLUX_UID, REGISTRY_UID

TOKEN = "glsa_test_token"


class FakeGrafana:
    """The slice of Grafana's HTTP API the push uses, with its validation rules."""

    def __init__(self) -> None:
        self.datasources: dict[str, dict[str, Any]] = {}
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self._ids = iter(range(1, 10_000))

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path))
        parts = path.strip("/").split("/")
        if parts[:3] == ["api", "datasources", "uid"] and method == "GET":
            ds = self.datasources.get(parts[3])
            return (200, ds) if ds else (404, {"message": "Data source not found"})
        if parts == ["api", "datasources"] and method == "POST":
            missing = {"name", "type", "access", "url"} - body.keys()
            if missing:
                return 400, {"message": f"missing {sorted(missing)}"}
            if body.get("uid") in self.datasources:
                return 409, {"message": "data source with the same uid already exists"}
            ds = {**body, "id": next(self._ids), "readOnly": False}
            ds.pop("secureJsonData", None)
            self.datasources[body["uid"]] = ds
            return 200, {"datasource": ds, "id": ds["id"], "message": "Datasource added"}
        if parts[:3] == ["api", "datasources", "uid"] and method == "PUT":
            ds = self.datasources.get(parts[3])
            if not ds:
                return 404, {"message": "Data source not found"}
            if ds["readOnly"]:
                return 403, {"message": "Cannot update read-only data source"}
            if {"name", "type", "access"} - body.keys():
                return 400, {"message": "name, type and access are required"}
            self.datasources[parts[3]] = {**body, "id": ds["id"], "readOnly": False}
            return 200, {"message": "Datasource updated"}
        if parts[:2] == ["api", "folders"] and len(parts) == 3 and method == "GET":
            folder = self.folders.get(parts[2])
            return (200, folder) if folder else (404, {"message": "folder not found"})
        if parts == ["api", "folders"] and method == "POST":
            if body.get("uid") in self.folders:
                return 409, {"message": "a folder with the same uid already exists"}
            self.folders[body["uid"]] = {
                "uid": body["uid"],
                "title": body["title"],
                "id": next(self._ids),
            }
            return 200, self.folders[body["uid"]]
        if parts == ["api", "dashboards", "db"] and method == "POST":
            return self._save_dashboard(body)
        return 404, {"message": "Not found"}

    def _save_dashboard(self, body: dict[str, Any]) -> tuple[int, Any]:
        board = body.get("dashboard") or {}
        if not board.get("title") or not board.get("uid"):
            return 400, {"message": "Dashboard title and uid cannot be empty"}
        if body.get("folderUid") and body["folderUid"] not in self.folders:
            return 400, {"message": "folder not found"}
        existing = self.dashboards.get(board["uid"])
        if board.get("id") is not None and (not existing or existing["id"] != board["id"]):
            return 404, {"message": "Dashboard not found"}
        if existing and not body.get("overwrite"):
            return 412, {
                "status": "name-exists",
                "message": "A dashboard with the same uid already exists",
            }
        version = existing["version"] + 1 if existing else 1
        dash_id = existing["id"] if existing else next(self._ids)
        self.dashboards[board["uid"]] = {
            "id": dash_id,
            "version": version,
            "folderUid": body.get("folderUid"),
            "dashboard": board,
        }
        return 200, {
            "id": dash_id,
            "uid": board["uid"],
            "status": "success",
            "version": version,
            "url": f"/d/{board['uid']}",
        }


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    state = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                status, answer = 401, {"message": "Unauthorized"}
            elif raw and self.headers.get("Content-Type", "").split(";")[0] != "application/json":
                status, answer = 415, {"message": "expected application/json"}
            else:
                status, answer = state.handle(
                    self.command, self.path, json.loads(raw) if raw else None
                )
            out = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _push(url: str, *extra: str, token: str = TOKEN) -> Any:
    args = [
        "dashboards",
        "push",
        "--url",
        url,
        "--token",
        token,
        "--influx-url",
        "http://influxdb:8086",
        "--influx-user",
        "grafana",
        "--influx-password",
        "pw",
        *extra,
    ]
    return CliRunner().invoke(app, args, env={"FIREWATCH_CONFIG": ""})


REGISTRY = "postgresql://grafana:secret@postgres:5432/firewatch"


def test_push_installs_everything_once_and_twice_changes_nothing_but_versions(
    grafana: tuple[FakeGrafana, str],
) -> None:
    state, url = grafana
    first = _push(url, "--registry-url", REGISTRY)
    assert first.exit_code == 0, first.output
    assert set(state.datasources) == {INFLUX_UID, REGISTRY_UID}
    assert state.datasources[INFLUX_UID]["url"] == "http://influxdb:8086"
    assert state.datasources[INFLUX_UID]["jsonData"]["dbName"] == "firewatch"
    assert state.datasources[REGISTRY_UID]["url"] == "postgres:5432"
    assert state.datasources[REGISTRY_UID]["jsonData"]["database"] == "firewatch"
    assert set(state.folders) == {FOLDER_UID}
    assert {uid: d["version"] for uid, d in state.dashboards.items()} == {
        b["uid"]: 1 for b in all_dashboards()
    }
    ids = {uid: d["id"] for uid, d in state.dashboards.items()}

    second = _push(url, "--registry-url", REGISTRY)
    assert second.exit_code == 0, second.output
    assert "updated" in second.output and "created" not in second.output
    assert set(state.datasources) == {INFLUX_UID, REGISTRY_UID} and len(state.folders) == 1
    assert {uid: d["id"] for uid, d in state.dashboards.items()} == ids
    assert all(
        d["version"] == 2 and d["folderUid"] == FOLDER_UID for d in state.dashboards.values()
    )
    used = {
        t["datasource"]["uid"]
        for d in state.dashboards.values()
        for p in d["dashboard"]["panels"]
        for t in p["targets"]
    }
    assert used <= set(state.datasources), "every panel's data source is in Grafana"


def test_push_leaves_a_provisioned_data_source_alone(grafana: tuple[FakeGrafana, str]) -> None:
    state, url = grafana
    state.datasources[INFLUX_UID] = {
        "uid": INFLUX_UID,
        "id": 1,
        "readOnly": True,
        "url": "http://kept:8086",
    }
    result = _push(url)
    assert result.exit_code == 0, result.output
    assert state.datasources[INFLUX_UID]["url"] == "http://kept:8086"
    assert ("PUT", f"/api/datasources/uid/{INFLUX_UID}") not in state.requests
    assert len(state.dashboards) == 5


def test_push_with_a_wrong_token_says_so_and_fails(grafana: tuple[FakeGrafana, str]) -> None:
    state, url = grafana
    result = _push(url, token="wrong")
    assert result.exit_code == 1
    assert "refused" in result.output and "Unauthorized" in result.output
    assert not state.dashboards


def test_push_to_nothing_says_unreachable() -> None:
    from firewatch.services import free_port

    result = _push(f"http://127.0.0.1:{free_port()}")
    assert result.exit_code == 1 and "not reachable" in result.output


def test_registry_must_be_postgresql(grafana: tuple[FakeGrafana, str]) -> None:
    _, url = grafana
    result = _push(url, "--registry-url", "sqlite:///x.db")
    assert result.exit_code == 2 and "postgresql" in result.output


def test_export_writes_the_dashboards_the_provisioning_reads(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["dashboards", "export", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = {json.loads(p.read_text())["uid"] for p in tmp_path.glob("*.json")}
    assert written == {b["uid"] for b in all_dashboards()}
