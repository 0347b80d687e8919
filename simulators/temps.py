"""A year of hourly temperatures of a room or machine, with labelled failures: recordings to judge learned detection
of a lone temperature metric over many seeds, never on one file.

Issue 12 judges a lone temperature recording (a year, hourly, failures labelled
as NAB-style wide windows) by whether every failure window is found with fewer
alerts outside the windows than there are windows: one false alarm a year can
cost the target. Healthy here is what such a series does:

- a level that wanders over days (weather through the walls, Ornstein–Uhlenbeck)
  and moves with the seasons (a sine over the year);
- a daily cycle (occupancy, the machine's shifts), smaller at weekends;
- sensor noise, a 0.1 resolution, and now and then a lone spike (a door open, a
  hot part passing the probe).

Failures (one to three a year, from `FAILURES`) leave that normal: `step` (the
HVAC or cooling fails: the level moves by 3..8 and stays for 1..6 days), `drift`
(a slow departure, 1.5..4 per day, for 2..5 days), `collapse` (the temperature
falls by 6..15 within hours and stays for 1..3 days), `daily` (the night
setback lost: the night as warm as the day, for 3..7 days; nothing outside the
day's range). The labels are NAB's windows: each failure's start at the centre
of a window of 10 % of the recording divided by the number of failures.

A real logger also goes quiet: with `gaps` a recording loses that many outages of
6 to 72 hours (anywhere, failures included) and 2 % of its readings one by one.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson

from firewatch.simulators.rig import wander

T0_S = 1_767_225_600
"""2026-01-01 00:00 UTC."""
HOUR_S = 3600
FAILURES = ("step", "drift", "collapse", "daily")
HEALTHY_DAYS = 21
"""A recording's first failure comes no sooner (a user's recording starts healthy); `--healthy-days` moves it."""


@dataclass(frozen=True, slots=True)
class Failure:
    kind: str
    start: int
    """The row (hour) it begins."""
    hours: int
    size: float
    """step, collapse: how far the level moves; drift: how far per day; daily: ignored (the day's own swing)."""


def plan(rng: np.random.Generator, rows: int, healthy_days: int = HEALTHY_DAYS) -> list[Failure]:
    """One to three failures (as many as fit), none in the first `healthy_days`, a month apart."""
    slots = np.arange(healthy_days * 24, rows - 10 * 24, 30 * 24)
    n = min(int(rng.integers(1, 4)), len(slots))
    starts = np.sort(rng.choice(slots, n, replace=False))
    starts = starts + rng.integers(0, 30 * 24, n).clip(max=rows - 10 * 24 - starts)
    out = []
    for at in starts.tolist():
        kind = FAILURES[int(rng.integers(len(FAILURES)))]
        if kind == "step":
            out.append(Failure(kind, at, int(rng.integers(24, 6 * 24)), float(rng.choice([-1, 1]) * rng.uniform(3, 8))))
        elif kind == "drift":
            out.append(Failure(kind, at, int(rng.integers(2 * 24, 5 * 24)), float(rng.choice([-1, 1]) * rng.uniform(1.5, 4))))
        elif kind == "collapse":
            out.append(Failure(kind, at, int(rng.integers(24, 3 * 24)), -float(rng.uniform(6, 15))))
        else:
            out.append(Failure(kind, at, int(rng.integers(3 * 24, 7 * 24)), 0.0))
    return out


def recording(seed: int, rows: int = 365 * 24, healthy_days: int = HEALTHY_DAYS,
              holidays: int = 0) -> tuple[np.ndarray, list[Failure]]:
    """(hourly values, failures) of one recording; `holidays` weekdays (drawn apart, so a recording without
    them is unchanged) go as a weekend: the working day's warmth is missing, and that is no failure."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    hour, weekday = t % 24, (t // 24 + 3) % 7  # 2026-01-01 is a Thursday
    days = np.arange(rows // 24)
    off = np.random.default_rng([seed, 1]).choice(days[(days + 3) % 7 < 5], min(holidays, len(days)), replace=False)
    base = rng.uniform(18, 24)
    season = rng.uniform(0.5, 3) * np.sin(2 * np.pi * (t / (365 * 24) + rng.uniform()))
    weather = rng.uniform(0.3, 1.2) * wander(rng, rows, rng.uniform(48, 240))
    swing = rng.uniform(1, 3)
    day = np.clip((hour - 7) / 2, 0, 1) * np.clip((19 - hour) / 2, 0, 1)
    """0 at night, 1 through the working day, ramps of two hours."""
    weekend = np.where((weekday >= 5) | np.isin(t // 24, off), rng.uniform(0.2, 0.7), 1.0)
    cycle = swing * (day * weekend - 0.5)
    x = base + season + weather + cycle
    failures = plan(rng, rows, healthy_days)
    for f in failures:
        on = (t >= f.start) & (t < f.start + f.hours)
        since = (t - f.start).clip(0)
        if f.kind == "step":
            x = x + on * f.size * np.clip(since / rng.uniform(1, 6), 0, 1)
        elif f.kind == "drift":
            x = x + on * f.size * since / 24
        elif f.kind == "collapse":
            x = x + on * f.size * np.clip(since / rng.uniform(1, 4), 0, 1)
        else:
            x = x + on * swing * (1 - day * weekend)
    noise = rng.normal(0, rng.uniform(0.05, 0.3), rows)
    spikes = rng.random(rows) < rng.uniform(0, 0.003)
    noise += spikes * rng.normal(0, 4 * swing, rows)
    return np.round(x + noise, 1), failures


def windows(failures: list[Failure], rows: int) -> list[list[str]]:
    """NAB's labels: a window of 10 % of the rows / failures, centred on each failure's start."""
    half = rows // 10 // max(len(failures), 1) // 2
    iso = lambda r: datetime.fromtimestamp(T0_S + HOUR_S * min(max(r, 0), rows - 1), UTC).strftime(
        "%Y-%m-%d %H:%M:%S")
    return [[iso(f.start - half), iso(f.start + half)] for f in failures]


def write(folder: Path, seed: int, rows: int = 365 * 24, minutes: int = 60,
          healthy_days: int = HEALTHY_DAYS, holidays: int = 0, gaps: int = 0) -> tuple[str, list[list[str]]]:
    """One recording as `temps{seed}.csv` (NAB's columns: timestamp, value); its name and windows. With `minutes`
    under 60 the hours are interpolated to that reporting period, each reading with noise of its own (0.08)."""
    values, failures = recording(seed, rows, healthy_days, holidays)
    per_hour = 60 // minutes
    if per_hour > 1:
        t = np.arange(rows * per_hour) / per_hour
        values = np.interp(t, np.arange(rows), values) + np.random.default_rng(seed).normal(0, 0.08, len(t))
    kept = np.ones(len(values), dtype=bool)
    if gaps:  # drawn apart, so a recording without gaps is unchanged
        rng = np.random.default_rng([seed, 2])
        kept = rng.random(len(values)) >= 0.02
        for at, hours in zip(rng.integers(0, len(values), gaps), rng.integers(6, 73, gaps)):
            kept[at: at + hours * per_hour] = False
    name = f"temps{seed:03d}.csv"
    lines = ["timestamp,value"] + [
        f"{datetime.fromtimestamp(T0_S + 60 * minutes * i, UTC):%Y-%m-%d %H:%M:%S},{v:.2f}"
        for i, v in enumerate(values) if kept[i]]
    (folder / name).write_text("\n".join(lines) + "\n")
    return name, windows(failures, rows)


def main(argv: list[str] | None = None) -> None:
    """`python -m firewatch.simulators.temps DIR [--seeds 20] [--first 0] [--minutes 60] [--days 365]
    [--healthy-days 21] [--holidays 0] [--gaps 0]`: recordings and labels.json."""
    p = argparse.ArgumentParser(prog="python -m firewatch.simulators.temps", description=main.__doc__)
    p.add_argument("folder", type=Path)
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--minutes", type=int, default=60, choices=(1, 5, 10, 15, 30, 60), help="reporting period")
    p.add_argument("--days", type=int, default=365, help="length of each recording")
    p.add_argument("--healthy-days", type=int, default=HEALTHY_DAYS, help="no failure before this day")
    p.add_argument("--holidays", type=int, default=0, help="weekdays a year without the working day")
    p.add_argument("--gaps", type=int, default=0, help="outages of 6-72 hours a recording (and 2 %% of lone rows lost)")
    a = p.parse_args(argv)
    a.folder.mkdir(parents=True, exist_ok=True)
    labels = dict(write(a.folder, seed, a.days * 24, a.minutes, a.healthy_days, a.holidays, a.gaps)
                  for seed in range(a.first, a.first + a.seeds))
    (a.folder / "labels.json").write_text(orjson.dumps(labels, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
