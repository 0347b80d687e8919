"""The simulated city without a broker: determinism, validity, chaos accounting, incident signatures."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from firewatch.cli import app
from firewatch.contract.kinds import Kind
from firewatch.contract.payload import PanelEvent, Reading, parse
from firewatch.simulators import INCIDENTS, Chaos, Fleet, Scenario, Tally, generate

T0 = 1_763_800_000_000  # 2025-11-22 08:26 UTC
HOUR = 3_600_000
DAY = 24 * HOUR
SCENARIOS = Path(__file__).resolve().parents[1] / "simulators" / "scenarios"
NOW = T0 + 30 * DAY  # parse() refuses timestamps more than a day ahead of "now"


def _records(messages):
    """(message, parsed) for every message, asserting nothing valid is rejected."""
    for m in messages:
        yield m, parse(m.topic, m.payload, NOW)


def _readings(messages) -> dict[str, list[Reading]]:
    out: dict[str, list[Reading]] = defaultdict(list)
    for _, p in _records(messages):
        for r in p.records:
            if isinstance(r, Reading):
                out[r.device_id].append(r)
    return out


def test_same_seed_builds_the_same_city_and_sends_the_same_messages() -> None:
    a, b, other = Fleet.build(60, seed=5), Fleet.build(60, seed=5), Fleet.build(60, seed=6)
    rows = [d.registry_row() for d in a.devices]
    assert rows == [d.registry_row() for d in b.devices]
    assert rows != [d.registry_row() for d in other.devices]
    assert {d.kind for d in a.devices} == set(Kind)
    assert len({d.id for d in a.devices}) == 60
    for d in a.devices:  # around Chengdu, within ~40 km
        assert 30.3 < d.latitude < 31.0 and 103.6 < d.longitude < 104.5

    first = list(generate(a, None, T0, T0 + 2 * HOUR))
    assert first == list(generate(b, None, T0, T0 + 2 * HOUR))
    assert first != list(generate(other, None, T0, T0 + 2 * HOUR))


def test_a_reading_does_not_depend_on_where_the_run_started() -> None:
    """Replaying a sub-range gives the very same values at the same event times (only seq restarts)."""
    fleet = Fleet.build(30, seed=2)
    whole = _readings(generate(fleet, None, T0, T0 + 3 * HOUR))
    tail = _readings(generate(fleet, None, T0 + HOUR + 12_345, T0 + 3 * HOUR))
    compared = 0
    for device, readings in tail.items():
        by_ts = {r.ts_ms: r.metrics for r in whole[device]}
        for r in readings:
            assert by_ts[r.ts_ms] == r.metrics
            compared += 1
    assert compared > 1000


def test_every_message_of_a_week_with_every_incident_is_valid() -> None:
    fleet = Fleet.build(60, seed=3, intervals_s={"electrical": 600, "pump": 600, "hydrant": 900})
    scenario = Scenario.load(SCENARIOS / "city-week.yaml")
    tally = Tally()
    seqs: dict[str, list[int]] = defaultdict(list)
    for m, p in _records(generate(fleet, scenario, T0, T0 + 7 * DAY)):
        tally.add(m)
        assert m.invalid is None and not p.rejections, (m.topic, m.payload, p.rejections)
        assert len(p.records) == 1
        r = p.records[0]
        if isinstance(r, (Reading, PanelEvent)):
            seqs[r.device_id].append(r.seq)
    assert tally.records == tally.published > 30_000
    assert set(tally.by_kind) == {k.value for k in Kind}
    for device, numbers in seqs.items():  # per-device sequence numbers count 1, 2, 3 ... without gaps
        assert numbers == list(range(1, len(numbers) + 1)), device


def test_a_healthy_city_crosses_no_alarm_threshold() -> None:
    """Every alarm in simulated data must come from an injected incident (DOMAIN.md thresholds)."""
    fleet = Fleet.build(80, seed=4, intervals_s={"electrical": 600, "hydrant": 600, "pump": 120})
    january = 1_768_435_200_000  # 2026-01-15, the coldest days
    for start in (T0, january):
        for readings in _readings(generate(fleet, None, start, start + 2 * DAY)).values():
            for r in readings:
                m = r.metrics
                if r.kind is Kind.ELECTRICAL:
                    assert m["residual_ma"] < 250 and m["arc_count"] <= 9
                    assert max(m[f"temp{i}_c"] for i in range(1, 5)) < 60
                    assert all(198 < m[f"voltage_{p}_v"] < 242 for p in "abc")
                elif r.kind is Kind.HYDRANT:
                    assert 0.15 < m["pressure_mpa"] < 1.0 and m["tilt_deg"] < 10
                    assert m["temp_c"] > 2.5 and not m["water_flow"] and not m["cover_open"]
                elif r.kind is Kind.PUMP:
                    assert m["pressure_mpa"] > 0.5
                    if m["current_a"] > 5:  # the weekly test run delivers pressure and flow
                        assert m["flow_lps"] > 10


def test_chaos_is_counted_and_every_invalid_message_is_rejected_with_its_reason() -> None:
    fleet = Fleet.build(40, seed=8)
    chaos = Chaos(malformed=0.05, duplicates=0.03, out_of_order=0.03, late=0.01, skew=0.3, batch=3, seed=4)
    messages = list(generate(fleet, None, T0, T0 + 6 * HOUR, chaos))
    tally = Tally()
    stored: set[tuple[str, int]] = set()
    seen_payloads: set[bytes] = set()
    for m, p in _records(messages):
        tally.add(m)
        if m.invalid is not None:
            assert not p.records and [r.reason.value for r in p.rejections] == [m.invalid], (m, p)
            continue
        assert not p.rejections and len(p.records) == m.records, (m, p)
        if m.duplicate:
            assert m.payload in seen_payloads
        seen_payloads.add(m.payload)
        stored.update((r.device_id, r.ts_ms) for r in p.records)
    assert set(tally.invalid) == {
        "bad_json", "bad_topic", "bad_schema", "unknown_kind", "unknown_metric", "out_of_range",
        "bad_timestamp", "unknown_event",
    }
    assert tally.duplicates > 0 and any(m.records == 3 for m in messages)
    assert len(stored) == tally.records  # every valid record is one distinct point
    telemetry_ts = [orjson.loads(m.payload)[0]["ts"] for m in messages
                    if m.invalid is None and m.topic.endswith("telemetry")]
    assert telemetry_ts != sorted(telemetry_ts)  # out of order and late deliveries happened


def _scenario_run(incidents: list[dict], mix: dict[str, float], devices: int, days: float = 1.0):
    fleet = Fleet.build(devices, seed=11, districts=2, mix=mix)
    scenario = Scenario.from_dict({"incidents": incidents})
    found = scenario.resolve(fleet, T0, T0 + int(days * DAY))
    readings = _readings(generate(fleet, None, T0, T0 + int(days * DAY), incidents=found))
    return fleet, found, readings


def _inside(readings: list[Reading], inc) -> list[Reading]:
    return [r for r in readings if inc.start_ms <= r.ts_ms < inc.end_ms]


def test_electrical_incidents_cross_the_gb14287_thresholds_inside_their_windows() -> None:
    _, found, readings = _scenario_run([
        {"type": "cable_overheat", "at": "2h", "duration": "40m", "phase": 2},
        {"type": "residual_creep", "at": "1h", "duration": "2d"},
        {"type": "arc_fault", "at": "5h", "duration": "5m"},
        {"type": "phase_imbalance", "at": "6h", "duration": "3h", "phase": "c"},
    ], {"electrical": 1}, devices=6, days=2.5)
    by_type = {i.type: i for i in found}
    assert {i.truth()["severity"] for i in found} == {"critical", "warning"}

    heat = by_type["cable_overheat"]
    series = readings[heat.device.id]
    assert max(r.metrics["temp2_c"] for r in series if r.ts_ms < heat.start_ms) < 60
    hot = [r for r in _inside(series, heat) if r.metrics["temp2_c"] >= 70]
    assert hot and hot[0].ts_ms > heat.start_ms + 10 * 60_000

    creep = by_type["residual_creep"]
    inside = _inside(readings[creep.device.id], creep)
    assert inside[0].metrics["residual_ma"] < 250 and inside[-1].metrics["residual_ma"] > 300

    arc = by_type["arc_fault"]
    assert all(r.metrics["arc_count"] >= 14 for r in _inside(readings[arc.device.id], arc))
    assert len(_inside(readings[arc.device.id], arc)) >= 4

    imb = by_type["phase_imbalance"]
    for r in _inside(readings[imb.device.id], imb):
        assert r.metrics["current_c_a"] > 2.2 * max(r.metrics["current_a_a"], r.metrics["current_b_a"])
        assert r.metrics["temp3_c"] > max(r.metrics["temp1_c"], r.metrics["temp2_c"]) + 7


def test_hydrant_and_pump_incidents_show_their_signatures() -> None:
    _, found, readings = _scenario_run([
        {"type": "pressure_drop", "at": "1h", "duration": "1h"},
        {"type": "slow_leak", "at": "1h", "duration": "1d"},
        {"type": "knocked_over", "at": "3h", "duration": "2h"},
        {"type": "water_theft", "at": "4h", "duration": "30m"},
        {"type": "freeze_risk", "at": "8h", "duration": "12h"},
        {"type": "water_main", "district": "510104", "at": "10h", "duration": "2h"},
        {"type": "pump_failure", "at": "2h", "duration": "20m"},
        {"type": "silent", "at": "6h", "duration": "2h"},
    ], {"hydrant": 0.9, "pump": 0.1}, devices=30, days=1.5)
    by_type = {i.type: i for i in found}

    drop = by_type["pressure_drop"]
    assert all(r.metrics["pressure_mpa"] < 0.10 for r in _inside(readings[drop.device.id], drop))

    leak = _inside(readings[by_type["slow_leak"].device.id], by_type["slow_leak"])
    assert leak[0].metrics["pressure_mpa"] > 0.15 and 0.10 < leak[-1].metrics["pressure_mpa"] < 0.14

    tilt = by_type["knocked_over"]
    assert all(r.metrics["tilt_deg"] >= 30 and r.metrics["water_flow"] for r in
               _inside(readings[tilt.device.id], tilt))

    theft = by_type["water_theft"]
    inside = _inside(readings[theft.device.id], theft)
    assert inside and all(r.metrics["water_flow"] and r.metrics["pressure_mpa"] > 0.14 for r in inside)

    cold = _inside(readings[by_type["freeze_risk"].device.id], by_type["freeze_risk"])
    assert cold[0].metrics["temp_c"] > 2 and min(r.metrics["temp_c"] for r in cold) <= 2

    mains = [i for i in found if i.type == "water_main"]
    assert len(mains) >= 3 and {i.device.district for i in mains} == {"510104"}
    assert max(i.start_ms for i in mains) - min(i.start_ms for i in mains) <= 4 * 60_000
    for inc in mains:
        assert all(r.metrics["pressure_mpa"] < 0.10 for r in _inside(readings[inc.device.id], inc))

    pump = by_type["pump_failure"]
    for r in _inside(readings[pump.device.id], pump):
        assert r.metrics["current_a"] > 25 and r.metrics["pressure_mpa"] < 0.10 and r.metrics["flow_lps"] < 1

    quiet = by_type["silent"]
    assert not _inside(readings.get(quiet.device.id, []), quiet)
    assert any(r.ts_ms >= quiet.end_ms for r in readings.get(quiet.device.id, []))
    assert {i.type for i in found} <= set(INCIDENTS)


def _panel_events(fleet, found, days: float) -> dict[str, list[PanelEvent]]:
    out: dict[str, list[PanelEvent]] = defaultdict(list)
    for _, p in _records(generate(fleet, None, T0, T0 + int(days * DAY), incidents=found)):
        for r in p.records:
            if isinstance(r, PanelEvent) and r.event != "heartbeat":
                out[r.device_id].append(r)
    return out


def test_panel_fire_false_alarm_and_fault_look_like_the_field() -> None:
    fleet = Fleet.build(8, seed=12, mix={"panel": 1})
    scenario = Scenario.from_dict({"incidents": [
        {"type": "panel_fire", "at": "3h"},
        {"type": "false_alarm", "at": "4h", "days": 3},
        {"type": "panel_fault", "at": "5h"},
    ]})
    found = scenario.resolve(fleet, T0, T0 + 4 * DAY)
    events = _panel_events(fleet, found, 4)

    fire = next(i for i in found if i.type == "panel_fire")
    assert fire.truth()["severity"] == "fire" and fire.truth()["zone"] == fire.zone
    seen = events[fire.device.id]
    fires = [e for e in seen if e.event == "fire"]
    assert len({e.point for e in fires}) >= 3 and {e.zone for e in fires} == {fire.zone}
    assert fires[-1].ts_ms - fires[0].ts_ms <= 5 * 60_000
    first_heat = min(e.ts_ms for e in fires if e.component == "heat")
    assert first_heat > min(e.ts_ms for e in fires if e.component == "smoke")
    assert {"start", "feedback"} <= {e.event for e in seen} and "reset" not in {e.event for e in seen}

    alarms = sorted((i for i in found if i.type == "false_alarm"), key=lambda i: i.start_ms)
    assert len(alarms) == 3 and len({i.device.id for i in alarms}) == 1
    own = events[alarms[0].device.id]
    for day, inc in enumerate(alarms):
        assert abs((inc.start_ms - alarms[0].start_ms) - day * DAY) <= 15 * 60_000
        window = [e for e in own if inc.start_ms <= e.ts_ms <= inc.end_ms]
        assert [e.event for e in window] == ["fire", "reset"]
        assert 2 * 60_000 <= inc.end_ms - inc.start_ms <= 6 * 60_000
    assert len({e.point for e in own if e.event == "fire"}) == 1

    fault = next(i for i in found if i.type == "panel_fault")
    kinds = [e.event for e in events[fault.device.id]]
    assert "fault" in kinds and "fault_cleared" not in kinds and fault.end_ms == T0 + 4 * DAY


def test_a_bad_scenario_names_the_incident_and_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("incidents:\n  - {type: cable_overheat, duration: soon}\n")
    fleet = Fleet.build(20, seed=1)
    with pytest.raises(ValueError, match=r"incidents\[0\] \(cable_overheat\).*soon"):
        Scenario.load(bad).resolve(fleet, T0, T0 + DAY)
    bad.write_text("incidents:\n  - {type: meteor}\n")
    with pytest.raises(ValueError, match=r"incidents\[0\]\.type: 'meteor'"):
        Scenario.load(bad)
    bad.write_text("incidents:\n  - {type: arc_fault}\n  - {type: slow_leak, durration: 2h}\n")
    with pytest.raises(ValueError, match=r"incidents\[1\]\.durration: not a key of slow_leak"):
        Scenario.load(bad)
    bad.write_text("incidents:\n  - {type: water_main, district: '999999'}\n")
    with pytest.raises(ValueError, match=r"district 999999 has no hydrants"):
        Scenario.load(bad).resolve(fleet, T0, T0 + DAY)


def test_simulate_writes_registry_truth_and_messages_without_a_broker(tmp_path: Path) -> None:
    env = {"FIREWATCH_STORE__URL": f"sqlite:///{tmp_path}/fw.db", "FIREWATCH_CONFIG": str(tmp_path / "none.toml")}
    (tmp_path / "none.toml").write_text("")
    runner = CliRunner()
    result = runner.invoke(app, [
        "simulate", "--devices", "40", "--seed", "3", "--start", "2025-11-22T00:00:00Z", "--duration", "2h",
        "--scenario", str(SCENARIOS / "quick.yaml"), "--truth", str(tmp_path / "truth.jsonl"),
        "--registry-csv", str(tmp_path / "registry.csv"), "--register", "--out", str(tmp_path / "out.jsonl"),
        "--malformed", "0.02", "--json",
    ], env=env)
    assert result.exit_code == 0, result.output
    tally = orjson.loads(result.stdout.strip().splitlines()[-1])

    with open(tmp_path / "registry.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == [d.id for d in Fleet.build(40, seed=3).devices]
    assert set(rows[0]) >= {"id", "kind", "district", "site", "address", "latitude", "longitude"}

    truth = [orjson.loads(line) for line in (tmp_path / "truth.jsonl").read_bytes().splitlines()]
    assert {t["incident"] for t in truth} - {"fire_heat"} == {"cable_overheat", "pressure_drop", "panel_fire", "false_alarm",
                                               "pump_failure"}
    for t in truth:
        assert set(t) >= {"device_id", "district", "site", "incident", "start_ms", "end_ms", "severity"}

    lines = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert len(lines) == tally["published"] and sum(tally["invalid"].values()) > 0
    bad = [line for line in lines if line["invalid"]]
    for line in bad:
        rejected = parse(line["topic"], line["payload"].encode(), NOW).rejections
        assert [r.reason.value for r in rejected] == [line["invalid"]]

    import asyncio

    from sqlalchemy import func, select

    from firewatch.contract.db import Device, open_store

    async def count() -> int:
        store = await open_store(env["FIREWATCH_STORE__URL"])
        async with store.session() as s:
            n = (await s.execute(select(func.count()).select_from(Device))).scalar_one()
        await store.aclose()
        return n

    assert asyncio.run(count()) == 40


def test_simulate_rejects_a_bad_option_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "none.toml").write_text("")
    result = CliRunner().invoke(app, ["simulate", "--duration", "soon"],
                                env={"FIREWATCH_CONFIG": str(tmp_path / "none.toml")})
    assert result.exit_code == 2 and "--duration" in result.output


def test_a_panel_fire_warms_the_cables_of_its_building_without_crossing_their_alarms() -> None:
    fleet = Fleet.build(40, seed=13, districts=1, mix={"panel": 0.3, "electrical": 0.7})
    panel = next(p for p in fleet.of_kind(Kind.PANEL)
                 if any(e.site == p.site for e in fleet.of_kind(Kind.ELECTRICAL)))
    scenario = Scenario.from_dict({"incidents": [{"type": "panel_fire", "device": panel.id, "at": "2h"}]})
    found = scenario.resolve(fleet, T0, T0 + 6 * HOUR)
    heated = [i for i in found if i.type == "fire_heat"]
    assert heated and {i.device.site for i in heated} == {panel.site}
    assert {i.device.id for i in heated} == {e.id for e in fleet.of_kind(Kind.ELECTRICAL) if e.site == panel.site}
    readings = _readings(generate(fleet, None, T0, T0 + 6 * HOUR, incidents=found))
    for inc in heated:
        before = [r for r in readings[inc.device.id] if r.ts_ms < inc.start_ms][-1].metrics
        inside = _inside(readings[inc.device.id], inc)
        assert inside[-1].metrics["temp1_c"] > before["temp1_c"] + 10
        assert all(r.metrics["temp1_c"] < 70 and r.metrics["residual_ma"] < 300 for r in inside)
        assert inside[-1].metrics["residual_ma"] > before["residual_ma"] + 60


async def test_registering_again_keeps_what_operators_set(tmp_path: Path) -> None:
    from sqlalchemy import select

    from firewatch.contract.db import Device, open_store

    url = f"sqlite:///{tmp_path}/fw.db"
    fleet = Fleet.build(12, seed=9)
    assert await fleet.register(url) == 12
    store = await open_store(url)
    async with store.session() as s, s.begin():
        row = (await s.execute(select(Device).where(Device.id == fleet.devices[0].id))).scalar_one()
        row.thresholds, row.mqtt_password_hash, row.site = {"temp_c": 60}, "$7$hash", "moved"
    await fleet.register(url)
    async with store.session() as s:
        rows = {d.id: d for d in (await s.execute(select(Device))).scalars()}
    await store.aclose()
    first = rows[fleet.devices[0].id]
    assert len(rows) == 12 and first.thresholds == {"temp_c": 60} and first.mqtt_password_hash == "$7$hash"
    assert first.site == fleet.devices[0].site  # registry columns follow the simulated city
