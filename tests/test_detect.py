"""Detectors, rule by rule, in event time: what an operator would see from a given stream of readings."""

from __future__ import annotations

import pytest

from firewatch.alerting.config import load
from firewatch.alerting.detect.panel import PanelDetector
from firewatch.alerting.detect.readings import ReadingDetector
from firewatch.alerting.registry import DeviceInfo, Registry
from firewatch.alerting.signal import Signal
from firewatch.contract.payload import PanelEvent, Reading
from firewatch.contract.settings import SettingsError

T0 = 1_763_800_000_000
MIN = 60_000


def det(kind: str, settings: dict | None = None, devices: list[DeviceInfo] | None = None) -> ReadingDetector:
    return ReadingDetector(kind, load(settings or {}), Registry(devices))


def feed(d: ReadingDetector, rows: list[tuple[int, dict[str, float]]], device: str = "D1") -> list[Signal]:
    out = []
    for ts, m in rows:
        out += d.detect([Reading("d1", device, d.kind, ts, None, m)])
    return out


def verdicts(signals: list[Signal], rule: str) -> list[tuple[int, str | None]]:
    return [(s.ts_ms, s.severity) for s in signals if s.rule == rule]


def test_residual_current_warning_alarm_and_hysteresis() -> None:
    d = det("electrical")
    values = [100, 250, 310, 285, 275, 235, 225, 100]
    sig = feed(d, [(T0 + i * MIN, {"residual_ma": v}) for i, v in enumerate(values)])
    assert verdicts(sig, "residual_current") == [
        (T0 + 1 * MIN, "warning"),      # 250 >= 240
        (T0 + 2 * MIN, "critical"),     # 310 >= 300
        (T0 + 4 * MIN, "warning"),      # 285 holds (deadband 20), 275 drops to warning
        (T0 + 7 * MIN, None),           # 235 and 225 hold the warning, 100 clears
    ]
    alarm = next(s for s in sig if s.severity == "critical")
    assert alarm.value == 310 and alarm.threshold == 300 and alarm.unit == "mA"


def test_hottest_cable_sensor_named_and_device_override() -> None:
    d = det("electrical", {"devices": {"D2": {"cable_temp": {"alarm": 90, "warning": 80}}}})
    hot = {"temp1_c": 40.0, "temp2_c": 72.0, "temp3_c": 41.0}
    first = feed(d, [(T0, hot)])
    assert [(s.rule, s.severity, s.metric) for s in first if s.rule == "cable_temp"] == [
        ("cable_temp", "critical", "temp2_c")
    ]
    assert not [s for s in feed(d, [(T0, hot)], device="D2") if s.rule == "cable_temp"]


def test_registry_thresholds_win_over_settings() -> None:
    reg = [DeviceInfo("E9", "electrical", "d1", "S", thresholds={"residual_current": {"alarm": 500}})]
    d = det("electrical", {"electrical": {"residual_current": {"alarm": 400, "warning": 350}}}, reg)
    assert verdicts(feed(d, [(T0, {"residual_ma": 450})], device="E9"), "residual_current") == [(T0, "warning")]


def test_arc_fault_fires_at_14_and_clears_at_9() -> None:
    d = det("electrical")
    sig = feed(d, [(T0 + i * 1000, {"arc_count": v}) for i, v in enumerate([3, 13, 14, 11, 9])])
    assert verdicts(sig, "arc_fault") == [(T0 + 2000, "critical"), (T0 + 4000, None)]


def test_low_pressure_falls_through_both_levels() -> None:
    d = det("hydrant")
    sig = feed(d, [(T0 + i * MIN, {"pressure_mpa": v}) for i, v in enumerate([0.3, 0.13, 0.05, 0.35])])
    assert verdicts(sig, "pressure_low") == [(T0 + MIN, "warning"), (T0 + 2 * MIN, "critical"),
                                            (T0 + 3 * MIN, None)]


def test_cover_open_waits_its_minimum_duration_on_the_clock() -> None:
    d = det("hydrant")
    assert not verdicts(feed(d, [(T0, {"cover_open": 1.0})]), "cover_open")
    assert not verdicts(d.tick(T0 + 9_000), "cover_open")
    assert verdicts(d.tick(T0 + 10_000), "cover_open") == [(T0 + 10_000, "warning")]
    # opened and closed again within 10 s: never an alert
    d2 = det("hydrant")
    feed(d2, [(T0, {"cover_open": 1.0}), (T0 + 5_000, {"cover_open": 0.0})])
    assert not verdicts(d2.tick(T0 + 60_000), "cover_open")


def test_readings_of_one_device_in_one_batch_are_taken_in_time_order() -> None:
    d = det("electrical")
    batch = [Reading("d1", "D1", "electrical", T0 + MIN * i, None, {"residual_ma": v})
             for i, v in [(2, 100.0), (0, 100.0), (1, 350.0)]]
    assert verdicts(d.detect(batch), "residual_current") == [(T0 + MIN, "critical"), (T0 + 2 * MIN, None)]


def test_redelivered_reading_is_ignored() -> None:
    d = det("electrical")
    feed(d, [(T0, {"residual_ma": 100}), (T0 + MIN, {"residual_ma": 100})])
    assert not feed(d, [(T0, {"residual_ma": 900})])
    assert d.stale == 1


def test_temperature_rise_rate() -> None:
    d = det("electrical")
    temps = [30, 30.5, 31, 40, 52]
    sig = feed(d, [(T0 + i * MIN, {"temp1_c": t}) for i, t in enumerate(temps)])
    assert verdicts(sig, "temp_rise") == [(T0 + 3 * MIN, "warning")]


def test_baseline_warms_up_before_it_speaks_then_flags_what_is_abnormal_for_this_device() -> None:
    d = det("electrical", {"electrical": {"residual_abnormal": {"warmup_s": 3600, "for_s": 0}}})
    quiet = [(T0 + i * MIN, {"residual_ma": 50.0 + (i % 5)}) for i in range(30)]
    # an odd reading during warm-up: the baseline does not know yet, so it says nothing
    assert not verdicts(feed(d, quiet[:20] + [(T0 + 20 * MIN + 1, {"residual_ma": 150.0})] + quiet[21:]),
                        "residual_abnormal")
    later = [(T0 + i * MIN, {"residual_ma": 50.0 + (i % 5)}) for i in range(30, 90)]
    assert not verdicts(feed(d, later), "residual_abnormal")
    sig = feed(d, [(T0 + 90 * MIN, {"residual_ma": 150.0})])
    assert verdicts(sig, "residual_abnormal") == [(T0 + 90 * MIN, "warning")]
    assert not verdicts(sig, "residual_current")  # far under the fixed 300 mA


def test_residual_creep_over_days_is_seen_before_the_alarm_level() -> None:
    d = det("electrical")
    rows, creep_start = [], T0 + 86400_000
    for i in range(5 * 24 * 12):
        t = T0 + i * 5 * MIN
        base = 80.0 + (5 if (i // 6) % 2 else -5)
        extra = max(0, (t - creep_start) / 86400_000) * 60
        rows.append((t, {"residual_ma": base + extra}))
    sig = feed(d, rows)
    creep = verdicts(sig, "residual_creep")
    alarm = verdicts(sig, "residual_current")
    assert creep and creep[0][1] == "warning" and creep[0][0] > creep_start
    assert not alarm or creep[0][0] < alarm[0][0]


def test_frozen_value_is_a_sensor_fault() -> None:
    d = det("hydrant")
    rows = [(T0 + i * 300_000, {"pressure_mpa": 0.321}) for i in range(12 * 24 + 2)]
    sig = feed(d, rows)
    assert verdicts(sig, "sensor_frozen")[0][1] == "warning"
    sig = feed(d, [(T0 + 400 * 300_000, {"pressure_mpa": 0.33})])
    assert verdicts(sig, "sensor_frozen")[0][1] is None


def test_jumping_value_is_a_sensor_fault() -> None:
    d = det("electrical")
    values = [50, 900, 50, 52, 950, 51, 50, 1000, 50, 51, 980, 50]
    sig = feed(d, [(T0 + i * MIN, {"residual_ma": v}) for i, v in enumerate(values)])
    assert ("sensor_jump", "warning") in [(s.rule, s.severity) for s in sig]


def test_missing_heartbeat_goes_offline_after_two_periods_and_recovers() -> None:
    d = det("electrical")  # 60 s period
    feed(d, [(T0, {"residual_ma": 50})])
    assert not verdicts(d.tick(T0 + 120_000), "offline")
    assert verdicts(d.tick(T0 + 120_001), "offline") == [(T0 + 120_000, "warning")]  # when it became overdue
    assert not d.tick(T0 + 500_000)
    assert verdicts(feed(d, [(T0 + 600_000, {"residual_ma": 50})]), "offline") == [(T0 + 600_000, None)]


def test_report_interval_setting_changes_when_offline() -> None:
    d = det("hydrant", {"hydrant": {"report_interval_s": 60, "offline": {"warning": 3}}})
    feed(d, [(T0, {"pressure_mpa": 0.3})])
    assert not d.tick(T0 + 180_000)
    assert verdicts(d.tick(T0 + 180_001), "offline")


def panel(events: list[tuple[int, str, dict]], settings: dict | None = None) -> tuple[PanelDetector, list[Signal]]:
    p = PanelDetector(load(settings or {}), Registry())
    out = []
    for ts, ev, kw in events:
        out += p.detect([PanelEvent("d1", "P1", ts, None, ev, **kw)])
    return p, out


def test_panel_fire_is_critical_at_once_and_reset_resolves_it() -> None:
    _, sig = panel([(T0, "fire", {"loop": 1, "point": 7, "zone": "3F", "component": "smoke"}),
                    (T0 + 30_000, "fire", {"loop": 1, "point": 8, "zone": "3F", "component": "smoke"}),
                    (T0 + 600_000, "reset", {})])
    fire = [s for s in sig if s.rule == "fire"]
    assert (fire[0].ts_ms, fire[0].severity, fire[0].annotate) == (T0, "fire", False)
    assert fire[1].annotate  # the second point updates the same alert
    assert (fire[-1].ts_ms, fire[-1].severity) == (T0 + 600_000, None)


def test_fault_unrepaired_for_24h_becomes_a_hazard() -> None:
    p, sig = panel([(T0, "fault", {"loop": 2, "point": 3, "component": "detector"})])
    assert verdicts(sig, "fault") == [(T0, "warning")]
    assert not verdicts(p.tick(T0 + 23 * 3600_000), "fault_unrepaired")
    assert verdicts(p.tick(T0 + 24 * 3600_000), "fault_unrepaired") == [(T0 + 24 * 3600_000, "critical")]
    sig = p.detect([PanelEvent("d1", "P1", T0 + 25 * 3600_000, None, "fault_cleared", 2, 3)])
    assert {(s.rule, s.severity) for s in sig} == {("fault", None), ("fault_unrepaired", None), ("offline", None)}


def test_shield_left_on_power_faults_and_supervisory() -> None:
    p, sig = panel([(T0, "shield", {"loop": 1, "point": 1}), (T0, "main_power_fault", {}),
                    (T0, "backup_power_fault", {}), (T0, "supervisory", {"zone": "pump room"})])
    assert {(s.rule, s.severity) for s in sig} == {("main_power", "critical"), ("backup_power", "warning"),
                                                   ("supervisory", "warning")}
    assert verdicts(p.tick(T0 + 86400_000), "shield_left_on") == [(T0 + 86400_000, "warning")]
    sig = p.detect([PanelEvent("d1", "P1", T0 + 86500_000, None, e, 1, 1) for e in ("power_restored", "unshield")])
    assert {(s.rule, s.severity) for s in sig if s.rule != "offline"} == {("main_power", None), ("backup_power", None),
                                                   ("shield_left_on", None)}


def test_point_that_false_alarms_repeatedly() -> None:
    day = 86400_000
    events = []
    for n in range(3):
        events += [(T0 + n * day, "fire", {"loop": 1, "point": 9, "zone": "kitchen", "component": "smoke"}),
                   (T0 + n * day + 180_000, "reset", {})]
    _, sig = panel(events)
    assert verdicts(sig, "false_alarm_repeated") == [(T0 + 2 * day + 180_000, "warning")]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"electrical": {"residual_current": {"alarm": 0.0, "warning": -5}}}, "alerting.electrical.residual_current.warning"),
        ({"electrical": {"residual_current": {"alarm": "high"}}}, "alerting.electrical.residual_current.alarm"),
        ({"hydrant": {"pressure_low": {"warning": 0.05}}}, "alerting.hydrant.pressure_low.warning: 0.05 must not be below"),
        ({"hydrant": {"pressure_drop": {"warning": 0.3}}}, "alerting.hydrant.pressure_drop.warning: 0.3 must not be above"),
        ({"districts": {"510104": {"pump": {"nope": {}}}}}, "alerting.districts.510104.pump.nope"),
        ({"devices": {"E1": {"residual_current": {"for_s": -1}}}}, "alerting.devices.E1.residual_current.for_s"),
        ({"electrical": {"residual_current": {"keep_s": -60}}}, "alerting.electrical.residual_current.keep_s"),
        ({"electrical": {"temp_rise": {"warning": -1}}}, "alerting.electrical.temp_rise.warning: must be > 0"),
        ({"clock": "sundial"}, "alerting.clock"),
    ],
)
def test_bad_threshold_settings_are_refused_by_key(raw: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace(".", r"\.")):
        load(raw)


def test_a_falling_rule_named_in_the_settings_keeps_its_levels() -> None:
    """A fall per minute is a positive number, worse as it grows: naming `pressure_drop` at all (to turn it off,
    or to move its for_s) was refused as "0.05 must not be below the alarm level 0.2", and so was every
    `eval --scale --kind hydrant`."""
    config = load({"hydrant": {"pressure_drop": {"enabled": False}, "pressure_leak": {"warning": 0.04}}})
    assert not config.params("hydrant")["pressure_drop"].enabled
    assert config.params("hydrant")["pressure_leak"].warning == 0.04


def test_a_kept_alert_is_one_alert_while_its_condition_comes_and_goes_and_says_what_it_is_now() -> None:
    """`keep_s` (settings, per rule): a residual current that falls back under its level for a few minutes and
    rises again is the same warning, told the latest value; a gap in the readings neither ends nor restarts the
    wait; ten minutes below the level resolve it, stamped with the reading that completed the wait."""
    d = det("electrical", {"electrical": {"residual_current": {"keep_s": 600}}})
    values = [250, 100, 100, 260, 100, None, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100]
    rows = [(T0 + i * MIN, {"residual_ma": v} if v is not None else {"temp1_c": 40.0}) for i, v in enumerate(values)]
    sig = feed(d, rows)
    assert verdicts(sig, "residual_current") == [
        (T0, "warning"),
        (T0 + 3 * MIN, "warning"),  # back within the wait: the same alert, renewed with what it is now
        (T0 + 14 * MIN, None),      # clear since minute 4: ten minutes later, the gap at minute 5 included
    ]
    assert sig[1].value == 260 and "260" in sig[1].summary
    again = det("electrical")
    assert verdicts(feed(again, rows), "residual_current") == [
        (T0, "warning"), (T0 + MIN, None), (T0 + 3 * MIN, "warning"), (T0 + 4 * MIN, None)]


def test_minimum_duration_completed_between_two_readings_still_fires_at_its_time() -> None:
    d = det("hydrant")
    sig = feed(d, [(T0, {"cover_open": 1.0}), (T0 + 30_000, {"cover_open": 0.0})])  # no tick in between
    assert verdicts(sig, "cover_open") == [(T0 + 10_000, "warning"), (T0 + 30_000, None)]


async def test_registered_device_that_never_reports_goes_offline(tmp_path) -> None:
    from firewatch.alerting.pipeline import Pipeline
    from firewatch.contract.db import open_store

    store = await open_store(f"sqlite:///{tmp_path}/a.db")
    reg = Registry([DeviceInfo("H5", "hydrant", "d1", "street"), DeviceInfo("P5", "panel", "d1", "mall")])
    p = Pipeline(load({}), store, reg)
    await p.start()
    p.expect(T0)
    assert not verdicts(p.timers(T0 + 600_000), "offline")
    assert {s.device_id for s in p.timers(T0 + 600_001) if s.rule == "offline"} == {"H5", "P5"}
    await store.aclose()


async def test_bad_input_is_counted_not_fatal(tmp_path) -> None:
    from firewatch.alerting.pipeline import Pipeline
    from firewatch.contract.db import open_store

    store = await open_store(f"sqlite:///{tmp_path}/a.db")
    p = Pipeline(load({"clock": "wall", "max_clock_skew_s": 300}), store, Registry())
    await p.start()
    now = T0
    changes = await p.process([
        Reading("d1", "NEW1", "electrical", now + 3600_000, None, {"residual_ma": 400.0}),  # clock an hour ahead
        Reading("d1", "NEW2", "electrical", now, None, {"temp1_c": 30.0}),  # no residual metric at all
    ], now_ms=now)
    assert p.counts["clock_ahead"] == 1
    (fired,) = [c for c in changes if c.kind == "fired"]
    assert (fired.alert.device_id, fired.alert.started_ms) == ("NEW1", now)  # stamped with the receive time
    assert p.registry.unknown == {"NEW1", "NEW2"}  # detected with defaults, and counted for the installer
    await store.aclose()


def test_devices_first_seen_together_keep_their_own_settings() -> None:
    """New devices are configured in groups that share settings: a device's own levels, its site's and its
    registry thresholds must still be its own when it first reports in the same batch as the others."""
    registry = [DeviceInfo("R3", "electrical", "d1", "Mall", thresholds={"residual_current": {"alarm": 150, "warning": 140}}),
                DeviceInfo("S4", "electrical", "d1", "Plant")]
    d = det("electrical", {"devices": {"D2": {"residual_current": {"alarm": 200, "warning": 190}}},
                           "sites": {"Plant": {"electrical": {"residual_current": {"alarm": 180, "warning": 170}}}}},
            registry)
    batch = [Reading("d1", dev, "electrical", T0, None, {"residual_ma": 210.0}) for dev in ("D1", "D2", "R3", "S4")]
    alarms = {s.device_id: s.threshold for s in d.detect(batch) if s.rule == "residual_current"}
    assert alarms == {"D2": 200, "R3": 150, "S4": 180}  # D1 keeps the default 240/300


def test_a_fleet_where_every_device_has_thresholds_of_its_own_alarms_each_at_its_own() -> None:
    """Registry thresholds per device make a levels group per device: 2,000 of them, each device alarming
    at its own level and not at its neighbour's, whether first seen together or one by one."""
    n = 2_000
    registry = [DeviceInfo(f"E{i}", "electrical", "d1", "S", thresholds={"residual_current": {"alarm": 100 + i / 10, "warning": 90 + i / 10}})
                for i in range(n)]
    d = det("electrical", devices=registry)
    first = [Reading("d1", f"E{i}", "electrical", T0, None, {"residual_ma": 50.0}) for i in range(n)]
    assert not [s for s in d.detect(first) if s.rule == "residual_current"]
    over = [Reading("d1", f"E{i}", "electrical", T0 + MIN, None, {"residual_ma": 100 + i / 10 + 0.05})
            for i in range(n)]
    alarms = {s.device_id: s.threshold for s in d.detect(over) if s.rule == "residual_current"}
    assert len(alarms) == n and all(alarms[f"E{i}"] == 100 + i / 10 for i in range(n))
