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
