"""Hazards the live pipeline finds, end to end: the simulator publishes a district over real
Mosquitto, ingest stores it in InfluxDB, alerting raises its alerts in PostgreSQL, and the api's
supervisor opens the orders. Nothing is inserted by hand: a panel that falls silent for more than a
day becomes an offline hazard (离线超过一天), one that false-alarms six times in a morning a
false-alarm hazard (误报过多, GB 50440), each on the unit that owns the panel's site."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from firewatch.services import Mosquitto
from firewatch.simulators.fleet import Fleet
from firewatch.simulators.publisher import Pace, publish
from firewatch.simulators.scenario import HOUR, Scenario
from firewatch.simulators.stream import generate
from firewatch.supervision.credit_code import check_character
from tests import supervision_world
from tests.conftest import wait_for
from tests.supervision_world import DISTRICT, World
from tests.test_api_server import PipelineThread

pytestmark = pytest.mark.postgres
world, world_settings = supervision_world.world, supervision_world.world_settings
START = 1_780_000_000_000 - 1_780_000_000_000 % HOUR
END = START + 30 * HOUR
FALSE_ALARMS, SILENT = "FP-510104-0001", "FP-510104-0002"


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A broker of this module's own. The session's broker keeps other tests' retained statuses, and
    simulated panels share their ids across tests: one's offline status stamped in 2025 made this
    district's silent panel an offline hazard months before the scenario began (CI saw it)."""
    with Mosquitto(tmp_path_factory.mktemp("mosquitto-live")) as m:
        yield m


def register_units(w: World, fleet: Fleet) -> dict[str, int]:
    """One unit per panel's site, as a district registers them; returns site → unit id."""
    ids = {}
    for n, device in enumerate(d for d in fleet.devices if d.id in (FALSE_ALARMS, SILENT)):
        code = f"91510104MA7Q0{n:02d}00"
        r = w.admin.post("/api/v1/units", json={
            "name": f"在线监测单位{n + 1}", "credit_code": code + check_character(code), "category": "general",
            "district": DISTRICT, "sites": [device.site], "company_id": w.company["id"]})
        assert r.status_code == 201, r.text
        ids[device.site] = r.json()["id"]
    return ids


def test_offline_for_a_day_and_six_false_alarms_a_morning_become_orders_through_the_live_pipeline(
    world: World,
) -> None:
    w = world
    fleet = Fleet.build(8, seed=1, districts=1, intervals_s={k: 600 for k in ("electrical", "hydrant", "pump",
                                                                              "panel")})
    assert {FALSE_ALARMS, SILENT} <= {d.id for d in fleet.devices}
    asyncio.run(fleet.register(w.api.settings.store.url))
    units = register_units(w, fleet)
    scenario = Scenario.from_dict({"incidents": [
        # two hours apart, so alerting never folds them into one flapping alert ([alerting.flap])
        *({"type": "false_alarm", "device": FALSE_ALARMS, "at": f"{8 + 2 * i}h", "days": 1} for i in range(6)),
        {"type": "silent", "device": SILENT, "at": "2h", "duration": "2d"},  # still silent at the end
    ]})
    messages = generate(fleet, None, START, END, incidents=scenario.resolve(fleet, START, END))
    # alerting's timers (the offline one) on the devices' clock, as in a replay: the run is hours of event time
    pipeline = PipelineThread(w.api.settings.model_copy(update={"alerting": {"clock": "event"}})).start()
    try:
        tally = asyncio.run(publish(w.api.settings, fleet, messages, Pace(START, speed=0, end_ms=END),
                                    offline_at_end=False))
        assert tally.published > 8 * 30 * 6 // 2, tally
        try:
            wait_for(lambda: {("offline", SILENT), ("false_alarms", FALSE_ALARMS)}
                     <= {(o["category"], o["device_id"]) for o in w.hazards()}, timeout_s=90)
        except AssertionError:
            seen = w.operator.get("/api/v1/alerts", params={"limit": 200}).json()["items"]
            alerts = [(a["device_id"], a["rule"], a["state"], a["probable"], (a["started_ms"] - START) / HOUR)
                      for a in seen]
            orders = [(o["category"], o["device_id"]) for o in w.hazards()]
            raise AssertionError(f"orders {orders}; alerts (device, rule, state, probable, h) {alerts}") from None
        # other devices may fall due too (a pump's sparse reports): these two are the scenario's
        orders = {(o["category"], o["device_id"]): o for o in w.hazards()}
    finally:
        pipeline.stop()
    by_site = {d.id: d.site for d in fleet.devices}
    offline, false_alarms = orders[("offline", SILENT)], orders[("false_alarms", FALSE_ALARMS)]
    assert (offline["device_id"], offline["unit_id"], offline["state"]) == (SILENT, units[by_site[SILENT]],
                                                                            "dispatched")
    assert START + 24 * HOUR <= offline["opened_ms"] <= END, offline  # silent a day: held 24 h
    assert (false_alarms["device_id"], false_alarms["unit_id"]) == (FALSE_ALARMS, units[by_site[FALSE_ALARMS]])
    assert false_alarms["title"] == f"误报过多：{FALSE_ALARMS} 24 小时内误报 6 次", false_alarms["title"]
    # The engineer cannot report the silent panel fixed while it is still offline.
    accepted = w.maintenance.post(f"/api/v1/hazards/{offline['id']}/actions", json={"action": "accept"})
    assert accepted.status_code == 200, accepted.text
    refused = w.maintenance.post(f"/api/v1/hazards/{offline['id']}/actions", json={"action": "report_fixed"})
    assert refused.status_code == 409 and "offline" in refused.json()["message"]
