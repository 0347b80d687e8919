"""A small supervised district for the supervision tests: PostgreSQL, the api over HTTP, two units.

Unit A (a key unit, 春熙商场) is maintained by 蓉安维保 and owns the site where panel
P-1 hangs; unit B owns another site. The maintenance company's engineer, unit A's
manager, the supervising department and the district office have mailboxes on a
real SMTP server, so dispatches and escalations are read as a person would.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from firewatch.contract.db import Alert, open_store
from firewatch.contract.settings import Settings
from firewatch.notify import Stage, notify_config
from firewatch.services import InfluxD, Mosquitto
from firewatch.simulators.citymap import LAYER_FILE
from tests.conftest import make_settings
from tests.notify_servers import SmtpInbox
from tests.postgres import database
from tests.test_api_server import ApiThread, client, run, tokens

CODE_A, CODE_B, CODE_MC = "91510104MA6C12340T", "91510104MA6C56780H", "91510105MA6D00010H"
DISTRICT = "510104"
SITE_A, SITE_B = "春熙商场", "锦江大厦"
SMALL_UNITS = {"老街杂货店": "91510104MA6E00020N", "东门酒店": "91510104MA6F00030A", "西城网吧": "91510104MA6G00040X"}
"""The district's small units by name (each owns the site of its name) and their credit codes, for the
scenarios that add them to A and B."""
DEPARTMENT_A = "锦江区商务局"


def pg_settings(tmp_path: Path, mosquitto: Mosquitto, influxd: InfluxD, **supervision: Any) -> Iterator[Settings]:
    """Settings on a PostgreSQL database of this test's own (never skipped: the store is required)."""
    with database("fw_sv") as url:
        s = make_settings(tmp_path, mosquitto.port, influxd.url, url.rsplit("/", 1)[1])
        yield s.model_copy(update={
            "store": s.store.model_copy(update={"url": url}),
            "api": s.api.model_copy(update={"map_layer": LAYER_FILE}),  # the demo city's district layer
            "supervision": {"interval_s": 0.1, "photo_dir": str(tmp_path / "photos"),
                            "report_dir": str(tmp_path / "reports"), **supervision},
        })


@dataclass
class World:
    api: ApiThread
    keys: dict[str, str]
    admin: httpx.Client
    operator: httpx.Client
    maintenance: httpx.Client
    unit_a: httpx.Client
    unit_b: httpx.Client
    a: dict[str, Any]
    b: dict[str, Any]
    company: dict[str, Any]
    inbox: SmtpInbox

    def insert_alert(self, **a: Any) -> int:
        """An alert row as alerting stores it (with its `fired` audit entry)."""

        async def go() -> int:
            store = await open_store(self.api.settings.store.url)
            async with store.session() as s, s.begin():
                row = Alert(**{"fingerprint": f"{a['device_id']}:{a['rule']}", "state": "firing",
                               "severity": "warning", "kind": "panel", "district": DISTRICT,
                               "last_seen_ms": a["started_ms"]} | a)
                s.add(row)
                await s.flush()
                await store.audit(s, "alerting", "fired", f"alert:{row.id}")
            await store.aclose()
            return row.id

        return run(go())

    def resolve_alert(self, alert_id: int, at_ms: int) -> None:
        """The condition cleared, as alerting records it."""

        async def go() -> None:
            store = await open_store(self.api.settings.store.url)
            async with store.session() as s, s.begin():
                row = await s.get(Alert, alert_id)
                row.state, row.resolved_ms, row.last_seen_ms = "resolved", at_ms, at_ms
                await store.audit(s, "alerting", "resolved", f"alert:{alert_id}")
            await store.aclose()

        run(go())

    def add_unit(self, name: str, **extra: Any) -> dict[str, Any]:
        """One of `SMALL_UNITS`, owning the site of its name, as the admin registers it (`POST /api/v1/units`)."""
        r = self.admin.post("/api/v1/units", json={"name": name, "credit_code": SMALL_UNITS[name], "district": DISTRICT,
                                                   "sites": [name], **extra})
        assert r.status_code == 201, r.text
        return r.json()

    def add_device(self, device: str, kind: str, site: str) -> None:
        """A device of the district hanging at a unit's site (`POST /api/v1/devices`)."""
        r = self.admin.post("/api/v1/devices", json={"id": device, "kind": kind, "district": DISTRICT, "site": site})
        assert r.status_code == 201, r.text

    def hazards(self, who: httpx.Client | None = None, **params: Any) -> list[dict[str, Any]]:
        r = (who or self.operator).get("/api/v1/hazards", params=params)
        assert r.status_code == 200, r.text
        return r.json()


def hazard_routes(inbox: SmtpInbox, departments: dict[str, str]) -> dict[str, Any]:
    """notify's routes as docs/supervision.md shows them: overdue orders (kind `hazard`) of the district go
    to its fire-supervision office and, by the unit's supervising department, to that department."""
    routes = [{"name": f"hazard-dept-{n}", "kind": ["hazard"], "department": [department], "group_wait_s": 0,
               "repeat": 1, "steps": [{"notify": ["channel:district-office", f"channel:dept-{n}"]}]}
              for n, department in enumerate(departments)]
    return {"routes": [*routes, {"name": "hazard-district", "kind": ["hazard"], "district": [DISTRICT],
                                 "group_wait_s": 0, "repeat": 1, "steps": [{"notify": ["channel:district-office"]}]},
                       {"name": "duty", "severity": ["warning", "critical", "fire"], "steps": [{"notify": ["group:duty"]}]}],
            "channels": {"district-office": inbox.url("district@fire.example.org"),
                         **{f"dept-{n}": a if "://" in a else inbox.url(a)
                            for n, a in enumerate(departments.values())}}}


class NotifyThread:
    """notify on its own, as `firewatch notify` runs it, on an event loop of its own thread."""

    def __init__(self, settings: Settings) -> None:
        self.stage = Stage(settings.store.url, notify_config(settings))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> NotifyThread:
        self.thread.start()
        self.stopping = asyncio.run_coroutine_threadsafe(self._event(), self.loop).result(10)
        self.running = asyncio.run_coroutine_threadsafe(self.stage.run(self.stopping), self.loop)
        assert self.stage.started.wait(30), f"notify did not start: {self.running}"
        return self

    @staticmethod
    async def _event() -> asyncio.Event:
        return asyncio.Event()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.running.result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def build_world(settings: Settings, inbox: SmtpInbox, departments: dict[str, str] | None = None) -> Iterator[World]:
    """`departments`: a supervising department as the units name it → its mailbox (or a channel URL), for
    notify's hazard routes (unit A's 锦江区商务局 by default)."""
    settings = settings.model_copy(update={"notify": settings.notify | hazard_routes(
        inbox, departments or {DEPARTMENT_A: "dept@commerce.example.org"})})
    api = ApiThread(settings).start()
    try:
        keys = tokens(api.settings)
        admin = client(api, keys["admin"])
        company = admin.post("/api/v1/companies", json={
            "name": "成都蓉安消防维保有限公司", "credit_code": CODE_MC, "phone": "028-86000000",
            "channels": [inbox.url("office@rongan.example.org")],
            "engineers": [{"role": "engineer", "name": "王工", "phone": "13800000001",
                           "channels": [inbox.url("wang@rongan.example.org")]}]})
        assert company.status_code == 201, company.text
        a = admin.post("/api/v1/units", json={
            "name": "春熙商场有限公司", "credit_code": CODE_A, "category": "key", "district": DISTRICT,
            "grid": "春熙路街道-01", "address": "成都市锦江区春熙路1号", "latitude": 30.657,
            "longitude": 104.080, "sites": [SITE_A], "company_id": company.json()["id"],
            "department": DEPARTMENT_A,
            "contacts": [{"role": "responsible", "name": "赵总", "phone": "13900000001"},
                         {"role": "manager", "name": "钱经理", "phone": "13900000002",
                          "channels": [inbox.url("qian@mall.example.org")]}]})
        assert a.status_code == 201, a.text
        b = admin.post("/api/v1/units", json={
            "name": "锦江大厦物业", "credit_code": CODE_B, "category": "general", "district": DISTRICT,
            "latitude": 30.640, "longitude": 104.090, "sites": [SITE_B],
            "contacts": [{"role": "manager", "name": "孙经理", "phone": "13900000003"}]})
        assert b.status_code == 201, b.text
        for dev in ({"id": "P-1", "kind": "panel", "district": DISTRICT, "site": SITE_A},
                    {"id": "H-9", "kind": "hydrant", "district": DISTRICT, "site": SITE_B}):
            assert admin.post("/api/v1/devices", json=dev).status_code == 201
        mt = admin.post(f"/api/v1/companies/{company.json()['id']}/tokens", json={"name": "王工"})
        ua = admin.post(f"/api/v1/units/{a.json()['id']}/tokens", json={"name": "钱经理"})
        ub = admin.post(f"/api/v1/units/{b.json()['id']}/tokens", json={"name": "孙经理"})
        assert mt.status_code == ub.status_code == ua.status_code == 201, mt.text
        yield World(api, keys, admin, client(api, keys["operator"]), client(api, mt.json()["token"]),
                    client(api, ua.json()["token"]), client(api, ub.json()["token"]), a.json(), b.json(),
                    company.json(), inbox)
    finally:
        api.stop()


@pytest.fixture
def world_settings(tmp_path: Path, mosquitto: Mosquitto, influxd: InfluxD) -> Iterator[Settings]:
    yield from pg_settings(tmp_path, mosquitto, influxd)


@pytest.fixture
def world(world_settings: Settings, inbox: SmtpInbox) -> Iterator[World]:
    yield from build_world(world_settings, inbox)


PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                    "0000000d49444154789c63f8cfc0f01f00050001ff89993d1d0000000049454e44ae426082")
"""A real 1×1 PNG."""
