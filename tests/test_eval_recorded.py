"""`firewatch eval --recorded`: labelled recordings replayed and scored per point and per window."""

from __future__ import annotations

import io
import math
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firewatch.alerting import replay
from firewatch.bench import recorded
from firewatch.contract.kinds import SPECS
from firewatch.contract.settings import Settings
from firewatch.simulators import rig, temps

T0 = 1_790_000_000
NAB = Path("/work/shared/data/nab-dev")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from firewatch.cli import main; main()", *args]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)


def _hydrant(tmp_path: Path) -> Path:
    """Minute readings; pressure lost at rows 100..149; the label marks rows 90..149."""
    lines = ["time,pressure_mpa,anomaly"]
    for i in range(300):
        p = 0.08 if 100 <= i < 150 else 0.30 + 0.002 * (i % 3)
        lines.append(f"{T0 + 60 * i},{p},{1 if 90 <= i < 150 else 0}")
    f = tmp_path / "h.csv"
    f.write_text("\n".join(lines) + "\n")
    return f


def test_per_point_and_window_scores_of_a_labelled_column(tmp_path: Path) -> None:
    r = run("eval", "--recorded", str(_hydrant(tmp_path)), "--label-column", "anomaly", "--kind", "hydrant",
            "--json")
    assert r.returncode == 0, r.stderr
    total = orjson.loads(r.stdout)["total"]
    # alerted exactly while the pressure was lost: rows 100..149 of the 60 labelled
    assert (total["tp"], total["fp"], total["fn"], total["tn"]) == (50, 0, 10, 240)
    assert (total["precision"], total["recall"], total["f1"], total["false_alarm_rate"]) == (1.0, 0.8333, 0.9091, 0.0)
    assert (total["windows"], total["windows_found"], total["false_alarms"]) == (1, 1, 0)
    assert 0 < total["window_score"] < 100 and total["delay_s_p50"] == 600.0


def test_windows_from_json_and_an_early_alarm_scores_higher(tmp_path: Path) -> None:
    f = _hydrant(tmp_path)
    late = tmp_path / "late.json"
    iso = [datetime.fromtimestamp(T0 + 60 * i, UTC).strftime("%Y-%m-%d %H:%M:%S.%f") for i in (110, 160)]
    late.write_text(orjson.dumps({"realX/h.csv": [iso]}).decode())  # NAB's shape; starts after the alert did
    early = tmp_path / "early.json"
    early.write_text(orjson.dumps([[(T0 + 60 * 99) * 1000, (T0 + 60 * 149) * 1000]]).decode())
    scores = {}
    for name, labels in (("late", late), ("early", early)):
        r = run("eval", "--recorded", str(f), "--labels", str(labels), "--kind", "hydrant", "--json")
        assert r.returncode == 0, r.stderr
        scores[name] = orjson.loads(r.stdout)["total"]
    assert scores["early"]["windows_found"] == 1 and scores["early"]["window_score"] > 95
    assert scores["late"]["windows_found"] == 0 and scores["late"]["false_alarms"] >= 1
    assert scores["late"]["window_score"] < 0  # worse than reporting nothing


def test_bad_labels_and_missing_files_are_named(tmp_path: Path) -> None:
    f = _hydrant(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text('{"h.csv": [["2026-01-02", "2026-01-01"]]}')
    r = run("eval", "--recorded", str(f), "--labels", str(bad), "--kind", "hydrant")
    assert r.returncode == 2 and "ends before it starts" in r.stderr
    r = run("eval", "--recorded", str(tmp_path / "nope.csv"), "--labels", str(bad), "--kind", "hydrant")
    assert r.returncode == 2 and "no such file" in " ".join(r.stderr.split())
    r = run("eval", "--recorded", str(f), "--kind", "hydrant")
    assert r.returncode == 2 and "--labels" in r.stderr


@given(st.text(alphabet=st.sampled_from(list("0123456789,.;\t -:TZe\nabx")), max_size=400))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_replay_reader_takes_any_text_or_says_why(text: str) -> None:
    try:
        rec = replay.read(io.StringIO("time,pressure_mpa\n" + text), "H", "hydrant", "d", [], None, quiet=True)
    except replay.ReplayError:
        return
    pressure = SPECS["hydrant"].metrics["pressure_mpa"]
    assert all(pressure.low <= r.metrics.get("pressure_mpa", 0) <= pressure.high for r in rec.readings)
    assert [r.ts_ms for r in rec.readings] == sorted(r.ts_ms for r in rec.readings)


@given(st.one_of(st.text(max_size=20), st.sampled_from(["bar", "kPa", "psi", "degF", "m^3/h", "inch_Hg"])))
@settings(deadline=None)
def test_a_unit_given_to_map_converts_or_says_why(text: str) -> None:
    try:
        cols = replay.columns(["time", "p"], "hydrant", [f"p=pressure_mpa:{text}"], None)
    except replay.ReplayError as exc:
        assert str(exc).startswith("--map ") and "p=pressure_mpa:" in str(exc) and not str(exc).endswith(": ")
        return
    a, b = cols.units.get(1, (1.0, 0.0))
    assert math.isfinite(a) and a != 0 and math.isfinite(b)


@given(st.text(max_size=30))
def test_learn_option_parses_or_says_why(text: str) -> None:
    try:
        rows, ms = replay.parse_learn(text)
    except replay.ReplayError as exc:
        assert "--learn" in str(exc)
        return
    assert rows >= 0 and ms >= 0


def test_generated_pump_rig_runs_with_a_training_window_meet_the_targets(tmp_path: Path) -> None:
    """Issue 12's rig targets on recordings from the rig's physics (simulators/rig.py), as a user would run them:
    the nameplate set, the first 500 rows (fault-free) as `--learn`; valve and cavitation faults of every size."""
    rig.main([str(tmp_path), "--seeds", "8", "--first", "200"])
    r = run("-c", str(tmp_path / "firewatch.toml"), "eval", "--recorded", str(tmp_path), "--label-column", "anomaly",
            "--kind", "pump", "--learn", "500", "--json")
    assert r.returncode == 0, r.stderr
    result = orjson.loads(r.stdout)
    total = result["total"]
    assert total["f1"] >= 0.85 and total["false_alarm_rate"] <= 0.10, total  # the issue asks F1 0.80, 10 %
    assert total["windows_found"] >= 0.9 * total["windows"]
    # the model was fitted from the training rows: it speaks within seconds of a fault's start, not after hours
    assert total["delay_s_p50"] <= 30
    assert {rule for f in result["files"] for rule in f["rules"]} == {"pattern_abnormal"}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("gaps", [0, 3])
def test_a_year_of_hourly_temperatures_finds_failures_with_few_false_alarms(tmp_path: Path, gaps: int) -> None:
    """Issue 12's temperature target on generated years (simulators/temps.py: weather, seasons, an office's day
    and weekend; steps, slow departures, collapses, lost night setbacks), run as docs/alerting.md tells a user to
    run a lone temperature recording. Pooled over 12 seeds, since one alert a year decides a file. A real logger
    goes quiet: with three outages of 6-72 hours a recording and 2 % of its readings lost, the same holds."""
    temps.main([str(tmp_path), "--seeds", "12", "--first", "300", "--gaps", str(gaps)])
    r = run("eval", "--recorded", str(tmp_path), "--labels", str(tmp_path / "labels.json"), "--kind", "pump",
            "--map", "value=temp_c", "--scale", "--json")
    assert r.returncode == 0, r.stderr
    result = orjson.loads(r.stdout)
    total = result["total"]
    assert (total["rows"] < 0.97 * 12 * 365 * 24) == bool(gaps), total["rows"]
    # before: the scaled values were judged as °C, 70 °C pump alarms on every warm afternoon, no learned rule
    assert {rule for f in result["files"] for rule in f["rules"]} <= {"temp_shift", "temp_cycle"}
    assert total["windows_found"] >= 0.75 * total["windows"], total
    assert total["false_alarms"] <= total["windows"] / 4, total
    meeting = [f for f in result["files"] if f["windows_found"] == f["windows"] and f["false_alarms"] < f["windows"]]
    assert len(meeting) >= len(result["files"]) / 2


@pytest.mark.timeout(300)
def test_lost_night_setbacks_are_found_and_an_office_holiday_is_no_failure(tmp_path: Path) -> None:
    """The same years with ten holidays each (a weekday without its working day, as a Sunday). A holiday's
    working hours at the night's level used to be a level shift down; a night kept as warm as the day (the
    setback lost: within the day's range, the level hardly moves) used to pass."""
    temps.main([str(tmp_path), "--seeds", "12", "--first", "300", "--holidays", "10"])
    r = run("eval", "--recorded", str(tmp_path), "--labels", str(tmp_path / "labels.json"), "--kind", "pump",
            "--map", "value=temp_c", "--scale", "--json")
    assert r.returncode == 0, r.stderr
    result = orjson.loads(r.stdout)
    total = result["total"]
    assert total["false_alarms"] <= total["windows"] / 4, total
    assert total["windows_found"] >= 0.75 * total["windows"], total
    lost = [f for f in result["files"] if any(x.kind == "daily" for x in temps.recording(
        int(Path(f["file"]).stem[5:]), holidays=10)[1])]
    assert len(lost) >= 3
    assert sum(f["rules"].get("temp_cycle", 0) for f in lost) >= len(lost) / 2, lost


def test_pump_rig_alerts_do_not_depend_on_the_units_a_metric_is_recorded_in(tmp_path: Path) -> None:
    """The same runs with the vibration recorded 20 times smaller (another unit, as a rig's accelerometer in g)
    and the current 0.3 times (its nameplate with it): the learned model raises the same alerts on the same rows.
    Before, a metric's scale was at least 1/5000 of its physical range, four times this rig's current noise."""
    (tmp_path / "mm_s").mkdir()
    rig.main([str(tmp_path / "mm_s"), "--seeds", "3", "--first", "300"])
    scaled = tmp_path / "g"
    scaled.mkdir()
    factor = {"vibration_mm_s": 0.05, "current_a": 0.3}
    for f in sorted((tmp_path / "mm_s").glob("*.csv")):
        head, *rows = f.read_text().splitlines()
        cols = head.split(",")
        out = [head]
        for row in rows:
            cells = row.split(",")
            out.append(",".join(f"{float(c) * factor[k]:.6g}" if k in factor else c for k, c in zip(cols, cells)))
        (scaled / f.name).write_text("\n".join(out) + "\n")
    plate = (tmp_path / "mm_s" / "firewatch.toml").read_text().splitlines()
    (scaled / "firewatch.toml").write_text("\n".join(
        f"current_a = {float(line.split('=')[1]) * factor['current_a']:g}" if line.startswith("current_a") else line
        for line in plate) + "\n")
    scores = []
    for folder in (tmp_path / "mm_s", scaled):
        r = run("-c", str(folder / "firewatch.toml"), "eval", "--recorded", str(folder), "--label-column", "anomaly",
                "--kind", "pump", "--learn", "500", "--json")
        assert r.returncode == 0, r.stderr
        scores.append([(f["tp"], f["fp"], f["fn"]) for f in orjson.loads(r.stdout)["files"]])
    assert scores[0] == scores[1]
    assert all(tp > 0 for tp, _, _ in scores[0])


@pytest.mark.timeout(300)
def test_a_temperature_logged_every_5_minutes_is_judged_per_hour_as_an_hourly_one(tmp_path: Path) -> None:
    """Twelve autocorrelated readings an hour must not cross the decision interval twelve times faster."""
    labels = dict(temps.write(tmp_path, seed, rows=150 * 24, minutes=5) for seed in range(300, 304))
    (tmp_path / "labels.json").write_text(orjson.dumps(labels).decode())
    r = run("eval", "--recorded", str(tmp_path), "--labels", str(tmp_path / "labels.json"), "--kind", "pump",
            "--map", "value=temp_c", "--scale", "--json")
    assert r.returncode == 0, r.stderr
    total = orjson.loads(r.stdout)["total"]
    # counted per reading (every reading a whole step of the sums): 28 alerts outside windows here
    assert total["false_alarms"] <= 1 and total["windows_found"] >= 0.6 * total["windows"], total


@pytest.mark.timeout(300)
def test_a_temperature_failure_in_the_first_fortnight_is_found_and_a_healthy_fortnight_raises_nothing(
        tmp_path: Path) -> None:
    """A logger's first failure can come a week in: three-week recordings whose step or collapse (a failed
    cooling) starts after three days, and healthy fortnights. Before, `temp_shift` spoke only once every hour of
    the week had been seen twice: none of these failures was found."""
    early = [s for s in range(400, 460) if temps.recording(s, 21 * 24, 3)[1][0].kind in ("step", "collapse")][:8]
    totals = {}
    for name, seeds, days, healthy_days in (("early", early, 21, 3), ("healthy", range(400, 408), 14, 14)):
        folder = tmp_path / name
        folder.mkdir()
        labels = dict(temps.write(folder, seed, rows=days * 24, healthy_days=healthy_days) for seed in seeds)
        (folder / "labels.json").write_text(orjson.dumps(labels).decode())
        r = run("eval", "--recorded", str(folder), "--labels", str(folder / "labels.json"), "--kind", "pump",
                "--map", "value=temp_c", "--scale", "--json")
        assert r.returncode == 0, r.stderr
        totals[name] = orjson.loads(r.stdout)["total"]
    # half of these smaller steps (3.5..5 °C, within a day's swing and the weather) go unseen until the week is known
    assert totals["early"]["windows"] == 8 and totals["early"]["windows_found"] >= 4, totals
    assert totals["healthy"]["windows"] == 0 and totals["healthy"]["alerts"] == 0, totals


@pytest.mark.skipif(not NAB.exists(), reason="the development recordings are not on this machine")
@pytest.mark.timeout(300)
def test_nab_development_recordings(capsys: pytest.CaptureFixture[str]) -> None:
    """The 22 real recordings as a load-driven electrical metric; the figures are printed, never tuned per file."""
    opt = recorded.Options("electrical", ["value=current_a_a"], None, None, None, (0, 0), True)
    result = recorded.evaluate(Settings(), [NAB / "data"], NAB / "labels" / "combined_windows.json", opt)
    with capsys.disabled():
        print()
        recorded.print_table(result)
    total = result["total"]
    assert len(result["files"]) == 22 and total["windows"] == 43
    assert total["tp"] + total["fp"] + total["fn"] + total["tn"] == total["rows"]
