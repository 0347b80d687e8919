"""`firewatch replay`: a recorded CSV through the detectors, alerts as JSON lines with event-time start and end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

T0 = 1_790_000_000  # epoch seconds


def run(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from firewatch.cli import main; main()", *args]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)


def test_replay_semicolon_csv_with_mapped_column_and_epoch_seconds(tmp_path: Path) -> None:
    lines = ["when;Leakage (mA);pressure"]
    for i in range(120):
        leak = 400 if 30 <= i < 40 else 90 + i % 3
        lines.append(f"{T0 + 60 * i};{leak};0.3")
    f = tmp_path / "feeder.csv"
    f.write_text("\n".join(lines) + "\n")
    r = run("replay", str(f), "--device", "E7", "--kind", "electrical", "--map", "Leakage (mA)=residual_ma",
            "--time-column", "when")
    assert r.returncode == 0, r.stderr
    alerts = [orjson.loads(x) for x in r.stdout.splitlines()]
    main = [a for a in alerts if a["rule"] == "residual_current"]
    assert len(main) == 1
    a = main[0]
    assert (a["device_id"], a["severity"], a["state"]) == ("E7", "critical", "resolved")
    assert (a["start_ms"], a["end_ms"]) == ((T0 + 60 * 30) * 1000, (T0 + 60 * 40) * 1000)
    assert a["start"].endswith("Z") and a["value"] == 400
    assert "ignoring columns pressure" in r.stderr


def test_replay_iso_times_tab_separated_and_a_tuned_threshold(tmp_path: Path) -> None:
    f = tmp_path / "hydrant.tsv"
    rows = ["time\tpressure_mpa"] + [f"2026-10-01T00:{m:02d}:00\t{0.13 if m >= 20 else 0.3}" for m in range(40)]
    f.write_text("\n".join(rows) + "\n")
    config = tmp_path / "fw.toml"
    config.write_text("[alerting.hydrant.pressure_low]\nwarning = 0.12\n")
    r = run("-c", str(config), "replay", str(f), "--device", "H1", "--kind", "hydrant")
    assert r.returncode == 0, r.stderr
    rules = [a["rule"] for a in map(orjson.loads, r.stdout.splitlines())]
    assert rules == ["pressure_drop"]  # 0.3 -> 0.13 in a minute; 0.13 itself is fine at 0.12
    r = run("replay", str(f), "--device", "H1", "--kind", "hydrant")
    (a,) = [x for x in map(orjson.loads, r.stdout.splitlines()) if x["rule"] == "pressure_low"]
    assert (a["rule"], a["severity"], a["start"], a["end"]) == (
        "pressure_low", "warning", "2026-10-01T00:20:00.000Z", None)


def test_replay_refuses_what_it_cannot_read_with_exit_2(tmp_path: Path) -> None:
    f = tmp_path / "x.csv"
    f.write_text("time,foo\n1790000000,1\n")
    r = run("replay", str(f), "--device", "E7", "--kind", "electrical")
    assert r.returncode == 2 and "no column is a electrical metric" in r.stderr
    r = run("replay", str(f), "--device", "E7", "--kind", "electrical", "--map", "foo=volts")
    assert r.returncode == 2 and "electrical has no metric 'volts'" in r.stderr


def test_a_recording_in_other_units_is_judged_in_the_metrics_own(tmp_path: Path) -> None:
    """A hydrant logger writing bar and °F: `--map column=metric:unit` converts each value (pint), so 1.1 bar is
    the 0.11 MPa under `pressure_low`'s 0.14 and 30 °F the -1 °C of a freezing hydrant. Before, a column was
    taken as in its metric's unit: 1.1 "MPa" was a healthy main and 30 "°C" a warm day."""
    rows = ["time;Druck (bar);Temp (F)"] + [
        f"2026-10-01T00:{m:02d}:00;{1.1 if m >= 20 else 3.0};{30 if m >= 20 else 50}" for m in range(40)]
    f = tmp_path / "hydrant.csv"
    f.write_text("\n".join(rows) + "\n")
    r = run("replay", str(f), "--device", "H1", "--kind", "hydrant", "--map", "Druck (bar)=pressure_mpa:bar",
            "--map", "Temp (F)=temp_c:degF")
    assert r.returncode == 0, r.stderr
    fired = {a["rule"]: a for a in map(orjson.loads, r.stdout.splitlines())}
    assert {"pressure_low", "freeze_risk"} <= set(fired), fired
    assert fired["pressure_low"]["value"] == 0.11 and fired["pressure_low"]["start"] == "2026-10-01T00:20:00.000Z"
    r = run("replay", str(f), "--device", "H1", "--kind", "hydrant", "--map", "Druck (bar)=pressure_mpa",
            "--map", "Temp (F)=temp_c")
    assert not {"pressure_low", "freeze_risk"} & {a["rule"] for a in map(orjson.loads, r.stdout.splitlines())}
    r = run("replay", str(f), "--device", "H1", "--kind", "hydrant", "--map", "Druck (bar)=pressure_mpa:degF")
    assert r.returncode == 2 and "cannot read 'degF' as MPa" in r.stderr


def _pump_rig(tmp_path: Path, n: int = 900, shuffle: bool = True) -> Path:
    """A 1 Hz pump rig: a 90 s vibration fault at rows 300..389 whose rows also carry a broken pressure value."""
    import random

    lines = []
    for i in range(n):
        vib = 12.0 if 300 <= i < 390 else 2.0 + 0.1 * (i % 5)
        pressure = "-0.27" if 300 <= i < 390 and i % 10 == 0 else f"{0.45 + 0.01 * (i % 3):.2f}"
        lines.append(f"{T0 + i};{pressure};{30 + i % 4};{20 + 0.2 * (i % 5):.1f};380;41;{vib}")
    if shuffle:
        random.Random(4).shuffle(lines)
    f = tmp_path / "rig.csv"
    f.write_text("datetime;pressure_mpa;flow_lps;current_a;voltage_v;temp_c;vibration_mm_s\n" + "\n".join(lines) + "\n")
    return f


def test_replay_of_a_1hz_rig_in_any_row_order_keeps_event_time(tmp_path: Path) -> None:
    """Issue 12: ends before starts, offline on a device reporting every second, rows dropped for one bad value."""
    r = run("replay", str(_pump_rig(tmp_path)), "--device", "RIG", "--kind", "pump")
    assert r.returncode == 0, r.stderr
    alerts = [orjson.loads(x) for x in r.stdout.splitlines()]
    assert all(a["end_ms"] is None or a["end_ms"] >= a["start_ms"] for a in alerts), alerts
    assert [a["start_ms"] for a in alerts] == sorted(a["start_ms"] for a in alerts)
    assert not [a for a in alerts if a["rule"] == "offline"]
    (vib,) = [a for a in alerts if a["rule"] == "vibration_high"]
    # the fault's rows with a broken pressure still carry their vibration: for_s 60 from row 300
    assert vib["start_ms"] == (T0 + 360) * 1000 and vib["end_ms"] == (T0 + 390) * 1000
    (bad,) = [a for a in alerts if a["rule"] == "sensor_impossible"]
    assert bad["start_ms"] == (T0 + 320) * 1000  # the third refused value, at its own time
    assert "reporting period 1 s (learned from the file)" in r.stderr
    assert "vibration_high: 1 alert(s) (1 critical), 30 s in alert" in r.stderr


def test_replay_learn_window_teaches_and_raises_nothing(tmp_path: Path) -> None:
    f = _pump_rig(tmp_path, shuffle=False)
    r = run("replay", str(f), "--device", "RIG", "--kind", "pump", "--learn", "400")
    assert r.returncode == 0, r.stderr
    alerts = [orjson.loads(x) for x in r.stdout.splitlines()]
    assert all(a["start_ms"] >= (T0 + 400) * 1000 for a in alerts)  # the fault in the window raised nothing
    assert "400 readings only taught the detectors" in r.stderr and "readings 900" in r.stderr
    # learned on the healthy first 250 s, the multivariate baseline sees the fault at its first reading,
    # names what drives it, and clears within a few readings of its end
    r = run("replay", str(f), "--device", "RIG", "--kind", "pump", "--learn", "250s")
    (pattern,) = [a for a in map(orjson.loads, r.stdout.splitlines()) if a["rule"] == "pattern_abnormal"]
    assert pattern["start_ms"] == (T0 + 300) * 1000
    assert (T0 + 390) * 1000 <= pattern["end_ms"] <= (T0 + 400) * 1000
    assert "vibration higher than usual (12 mm/s" in pattern["summary"] and "[running]" in pattern["summary"]
    r = run("replay", str(f), "--device", "RIG", "--kind", "pump", "--learn", "soon")
    assert r.returncode == 2 and "--learn 'soon'" in r.stderr


def test_replay_of_several_devices_in_one_file(tmp_path: Path) -> None:
    lines = ["ts,meter,residual_ma"]
    for i in range(200):
        lines.append(f"{T0 + 60 * i},A1,{400 if 50 <= i < 60 else 80}")
        if i % 2 == 0:  # B2 reports every two minutes and is never offline for it
            lines.append(f"{T0 + 60 * i + 7},B2,{350 if i >= 150 else 90}")
    f = tmp_path / "two.csv"
    f.write_text("\n".join(lines) + "\n")
    r = run("replay", str(f), "--device-column", "meter", "--kind", "electrical")
    assert r.returncode == 0, r.stderr
    alerts = [(a["device_id"], a["rule"], a["start_ms"], a["end_ms"]) for a in map(orjson.loads, r.stdout.splitlines())]
    assert alerts == [("A1", "residual_current", (T0 + 3000) * 1000, (T0 + 3600) * 1000),
                      ("B2", "residual_current", (T0 + 9007) * 1000, None)]
    assert "2 device(s)" in r.stderr and "reporting period 60 s/120 s" in r.stderr
    r = run("replay", str(f), "--kind", "electrical")
    assert r.returncode == 2 and "--device-column" in r.stderr


def test_replay_of_a_230v_rig_with_its_nameplate_set(tmp_path: Path) -> None:
    """Issue 12: on a 230 V rig at 0.09 MPa and 75 °C the default 380 V, 0.1 MPa and 70 °C levels fire at
    once; with the rig's nameplate in firewatch.toml they do not, and a supply sag under 90 % of its rated
    230 V is an under-voltage warning."""
    lines = ["time,pressure_mpa,flow_lps,current_a,voltage_v,temp_c,vibration_mm_s"]
    for i in range(600):
        volts = 195 if 400 <= i < 460 else 229 + i % 3
        lines.append(f"{T0 + i},{0.09 + 0.002 * (i % 3):.3f},{4 + 0.1 * (i % 4):.1f},{11 + 0.1 * (i % 5):.1f},"
                     f"{volts},{75 + 0.2 * (i % 4):.1f},{1.5 + 0.05 * (i % 3):.2f}")
    f = tmp_path / "rig230.csv"
    f.write_text("\n".join(lines) + "\n")
    fixed = {"undervoltage", "pressure_low", "motor_temp_high", "overvoltage", "motor_current_high"}

    r = run("replay", str(f), "--device", "RIG1", "--kind", "pump")
    assert r.returncode == 0, r.stderr
    at_once = {a["rule"] for a in map(orjson.loads, r.stdout.splitlines()) if a["start_ms"] <= (T0 + 30) * 1000}
    assert {"undervoltage", "pressure_low", "motor_temp_high"} <= at_once

    config = tmp_path / "firewatch.toml"
    config.write_text("[alerting.devices.RIG1.nameplate]\nvoltage_v = 230\npressure_mpa = 0.15\ntemp_c = 90\n"
                      "current_a = 14\n")
    r = run("-c", str(config), "replay", str(f), "--device", "RIG1", "--kind", "pump")
    assert r.returncode == 0, r.stderr
    alerts = [a for a in map(orjson.loads, r.stdout.splitlines()) if a["rule"] in fixed]
    assert [(a["rule"], a["severity"], a["start_ms"], a["end_ms"], a["threshold"]) for a in alerts] == [
        ("undervoltage", "warning", (T0 + 430) * 1000, (T0 + 460) * 1000, 207.0)]  # for_s 30 from row 400

    config.write_text("[alerting.pump.nameplate]\nvolts = 230\n")
    r = run("-c", str(config), "replay", str(f), "--device", "RIG1", "--kind", "pump")
    assert r.returncode == 2 and "alerting.pump.nameplate.volts: not a rated value" in r.stderr
