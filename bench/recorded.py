"""`firewatch eval --recorded FILE.csv --labels FILE.json`: labelled real recordings through replay, scored.

A recording is replayed exactly as `firewatch replay` does (same reader, same
pipeline, same settings, event time, an optional `--learn` training window) and
its alerts are scored against labels given either as anomaly windows (JSON:
`{"file.csv": [[start, end], ...]}` as the Numenta Anomaly Benchmark ships them,
or one list `[[start, end], ...]`) or as a per-row column (`--label-column
anomaly`, 1 = anomalous, as the SKAB pump rig ships them).

Two views of the same alerts:

- per point: a row is predicted anomalous while any alert of its device is
  open (started at or before it, not yet resolved); precision, recall, F1 and
  the false-alarm rate (the share of normal rows alarmed) over every scored row;
- per window: a window is found by the first alert that starts inside it, worth
  2/(1+e^(5y)) − 1 where y runs from −1 at the window's start to 0 at its end
  (0.99 for detecting at once, 0 at the very end); a missed window costs 1, an
  alert starting outside every window 0.11 (NAB's standard profile). The score
  is normalised to 0 (report nothing) .. 100 (every window at its start); below 0
  is worse than saying nothing.

Rows of the training window are neither scored nor alarmed. With `--scale` each
column is mapped linearly into its metric's physical range (5 % .. 95 % of it
over the training window, or the whole file without one): recordings in units
no device kind has (bytes, requests, °F) can then be replayed as a metric. The
scaled numbers are in no unit, so the rules whose levels are written in the
metric's unit (`rules.UNIT_FEATURES`: a standard's 70 °C, a rate per minute) are
off for the kind unless the settings name them; what judges is scale-free
(deviations from what was learned). Before, every scaled temperature over 45 %
of its file's range was a 70 °C pump alarm.
"""

from __future__ import annotations

import asyncio
import io
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from firewatch.alerting import replay
from firewatch.contract.db import Alert
from firewatch.contract.kinds import SPECS
from firewatch.contract.rules import READING_RULES, UNIT_FEATURES
from firewatch.contract.settings import Settings, SettingsError

FP_COST = 0.11
UNSCORED = frozenset({"offline"})
"""A gap in a recording is the transport's, not the process's anomaly, and holds no rows to score."""
WEEK_MS = 7 * 86_400_000
DETECT_AT_ONCE = 2 / (1 + math.exp(-5)) - 1


class RecordedError(ValueError):
    pass


@dataclass
class Options:
    kind: str
    maps: list[str]
    device_column: str | None
    time_column: str | None
    label_column: str | None
    learn: tuple[int, int]
    scale: bool


def windows_for(labels: Any, path: Path) -> list[tuple[int, int]] | None:
    """The windows of `path` in a labels document (a list, or a mapping keyed by file path or name)."""
    if isinstance(labels, list):
        raw = labels
    elif isinstance(labels, dict):
        key = next((k for k in labels if path.as_posix().endswith(k) or k == path.name
                    or Path(k).name == path.name), None)
        if key is None:
            return None
        raw = labels[key]
    else:
        raise RecordedError("labels: a JSON list of [start, end] windows or a mapping of file to such lists")
    out = []
    for w in raw:
        if not isinstance(w, list | tuple) or len(w) != 2:
            raise RecordedError(f"labels: window {w!r} is not [start, end]")
        a, b = (replay.parse_time(str(x)) for x in w)
        if b < a:
            raise RecordedError(f"labels: window {w!r} ends before it starts")
        out.append((a, b))
    return sorted(out)


def _open_mask(ts: np.ndarray, alerts: Sequence[Alert]) -> np.ndarray:
    mask = np.zeros(len(ts), dtype=bool)
    for a in alerts:
        end = a.resolved_ms if a.resolved_ms is not None else np.iinfo(np.int64).max
        mask |= (ts >= a.started_ms) & (ts < end)
    return mask


def _runs(ts: np.ndarray, labels: np.ndarray) -> list[tuple[int, int]]:
    """Windows as the first and last time of each run of anomalous rows."""
    edges = np.flatnonzero(np.diff(np.r_[0, labels.astype(np.int8), 0]))
    return [(int(ts[a]), int(ts[b - 1])) for a, b in zip(edges[::2], edges[1::2])]


@dataclass
class _File:
    path: Path
    rec: replay.Recording
    windows: list[tuple[int, int]] | None
    """Anomaly windows in the recording's own time; None: labels from `label_column`."""
    shift_ms: int = 0


def load_file(path: Path, labels: Any, opt: Options) -> _File | None:
    """A recording and its windows; None when the labels say nothing about it."""
    windows = None
    if opt.label_column is None:
        windows = windows_for(labels, path)
        if windows is None:
            return None
    with open(path, newline="", encoding="utf-8-sig") as f:
        text = f.read()
    device = None if opt.device_column else path.stem
    rec = replay.read(io.StringIO(text), device, opt.kind, "replay", opt.maps, opt.time_column, opt.device_column,
                      opt.label_column, quiet=True, scale=opt.learn if opt.scale else None)
    return _File(path, rec, windows)


def fleet(files: list[_File]) -> replay.Recording:
    """All recordings side by side as the devices of one fleet, as the live service runs them.

    Each file's times move by whole weeks onto the first file's week (time of
    day and weekday are kept), so the detectors run vectorised across files
    instead of one reading at a time; a device id is `file:device`.
    """
    starts = [min((int(t[0]) for t in f.rec.rows.values() if len(t)), default=0) for f in files]
    base = min(starts, default=0)
    out = replay.Recording(files[0].rec.kind if files else "pump", [], [], {}, {})
    for f, start in zip(files, starts):
        f.shift_ms = (start - base) // WEEK_MS * WEEK_MS
        name = {d: f"{f.path.name}:{d}" for d in f.rec.rows}
        for r in f.rec.readings:
            r.device_id = name[r.device_id]
            r.ts_ms -= f.shift_ms
        out.readings += f.rec.readings
        out.refused += [(ts - f.shift_ms, name[d], why) for ts, d, why in f.rec.refused]
        for d, ts in f.rec.rows.items():
            out.rows[name[d]] = ts - f.shift_ms
            if d in f.rec.labels:
                out.labels[name[d]] = f.rec.labels[d]
        out.bad.update(f.rec.bad)
    out.readings.sort(key=lambda r: r.ts_ms)
    out.refused.sort(key=lambda x: x[0])
    return out


def score_file(f: _File, rec: replay.Recording, result: replay.Result) -> dict[str, Any]:
    """One recording's devices of a fleet's replay, pooled."""
    tp = fp = fn = tn = 0
    found, reward, false_alarms, n_windows = 0, 0.0, 0, 0
    delays: list[float] = []
    rules: dict[str, int] = {}
    mine_all = [d for d in rec.rows if d.startswith(f"{f.path.name}:")]
    for dev in mine_all:
        ts = rec.rows[dev]
        start = result.learned_until.get(dev, 0)
        scored = ts >= start
        if f.windows is None:
            truth = rec.labels[dev].astype(bool)
            wins = _runs(ts[scored], truth[scored])
        else:
            truth = np.zeros(len(ts), dtype=bool)
            wins = []
            for a, b in f.windows:
                a, b = a - f.shift_ms, b - f.shift_ms
                truth |= (ts >= a) & (ts <= b)
                if b >= start:
                    wins.append((a, b))
        mine = [a for a in result.alerts if a.device_id == dev and a.rule not in UNSCORED]
        for a in mine:
            rules[a.rule] = rules.get(a.rule, 0) + 1
        pred = _open_mask(ts, mine)
        t, p = truth[scored], pred[scored]
        tp += int((t & p).sum())
        fp += int((~t & p).sum())
        fn += int((t & ~p).sum())
        tn += int((~t & ~p).sum())
        starts = np.array(sorted(a.started_ms for a in mine if a.started_ms >= start), dtype=np.int64)
        inside = np.zeros(len(starts), dtype=bool)
        for a, b in wins:
            n_windows += 1
            hit = (starts >= a) & (starts <= b)
            inside |= hit
            if hit.any():
                first = int(starts[hit][0])
                found += 1
                y = (first - b) / (b - a) if b > a else -1.0
                reward += 2 / (1 + math.exp(5 * y)) - 1
                delays.append((first - a) / 1000)
            else:
                reward -= 1
        false_alarms += int((~inside).sum())
        reward -= FP_COST * int((~inside).sum())
    return {"file": str(f.path), "rows": tp + fp + fn + tn, "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "windows": n_windows, "windows_found": found, "false_alarms": false_alarms,
            "reward": reward, "alerts": sum(rules.values()), "delays_s": delays, "rules": dict(sorted(rules.items())),
            **_rates(tp, fp, fn, tn, reward, n_windows)}


def _rates(tp: int, fp: int, fn: int, tn: int, reward: float, windows: int) -> dict[str, Any]:
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    null, perfect = -float(windows), DETECT_AT_ONCE * windows
    return {
        "precision": None if precision is None else round(precision, 4),
        "recall": None if recall is None else round(recall, 4),
        "f1": round(f1, 4),
        "false_alarm_rate": round(fp / (fp + tn), 4) if fp + tn else None,
        "window_score": round(100 * (reward - null) / (perfect - null), 1) if windows else None,
    }


def unitless(settings: Settings, kind: str) -> Settings:
    """`settings` with the kind's rules of fixed levels in the metric's unit turned off, for scaled recordings;
    a rule the settings name for the kind keeps what they say."""
    own = settings.alerting.get(kind, {})
    off = {r.name: {"enabled": False} for r in READING_RULES[kind] if r.feature in UNIT_FEATURES and r.name not in own}
    return settings.model_copy(update={"alerting": {**settings.alerting, kind: {**own, **off}}})


def files_of(paths: Sequence[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(p.rglob("*.csv"))
        elif p.exists():
            out.append(p)
        else:
            raise RecordedError(f"{p}: no such file or folder")
    if not out:
        raise RecordedError("no CSV recordings found")
    return out


def evaluate(settings: Settings, paths: Sequence[Path], labels_path: Path | None, opt: Options) -> dict[str, Any]:
    if opt.kind not in SPECS or not SPECS[opt.kind].metrics:
        raise RecordedError(f"--kind {opt.kind!r}: one of electrical, hydrant, pump")
    labels: Any = None
    if opt.label_column is None:
        if labels_path is None:
            raise RecordedError("give --labels FILE.json (anomaly windows) or --label-column NAME")
        try:
            labels = orjson.loads(labels_path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise RecordedError(f"--labels {labels_path}: {exc}") from None
    if opt.scale:
        settings = unitless(settings, opt.kind)
    files = files_of(paths)
    loaded = [(p, load_file(p, labels, opt)) for p in files]
    usable = [f for _, f in loaded if f is not None]
    rows = [{"file": str(p), "skipped": "no labels for this file"} for p, f in loaded if f is None]
    if usable:
        rec = fleet(usable)
        result = asyncio.run(replay.run(settings, rec, opt.learn))
        rows = [score_file(f, rec, result) for f in usable] + rows
    scored = [r for r in rows if "skipped" not in r]
    total = {k: sum(r[k] for r in scored) for k in ("rows", "tp", "fp", "fn", "tn", "windows", "windows_found",
                                                   "false_alarms", "alerts")}
    reward = sum(r["reward"] for r in scored)
    delays = sorted(d for r in scored for d in r["delays_s"])
    total |= _rates(total["tp"], total["fp"], total["fn"], total["tn"], reward, total["windows"])
    total["delay_s_p50"] = round(float(np.median(delays)), 1) if delays else None
    total["f1_mean_per_file"] = round(float(np.mean([r["f1"] for r in scored])), 4) if scored else None
    for r in rows:
        r.pop("reward", None)
    return {"files": rows, "total": total}


def main(settings: Settings, paths: Sequence[Path], labels: Path | None, label_column: str | None, kind: str,
         maps: list[str], device_column: str | None, time_column: str | None, learn: str | None, scale: bool,
         as_json: bool) -> int:
    try:
        opt = Options(kind, maps, device_column, time_column, label_column, replay.parse_learn(learn), scale)
        result = evaluate(settings, paths, labels, opt)
    except (RecordedError, replay.ReplayError, OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"eval: {exc}") from None
    if as_json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
    else:
        print_table(result)
    return 0


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def print_table(result: dict[str, Any], out: Any = None) -> None:
    out = out or sys.stdout
    print(f"{'recording':52} {'rows':>6} {'prec':>6} {'recall':>6} {'F1':>6} {'FAR':>6} {'windows':>8} "
          f"{'false':>5} {'score':>6}", file=out)
    for r in [*result["files"], {"file": "all", **result["total"]}]:
        if "skipped" in r:
            print(f"{Path(r['file']).name[-52:]:52} skipped: {r['skipped']}", file=out)
            continue
        score = "-" if r["window_score"] is None else f"{r['window_score']:.1f}"
        print(f"{Path(r['file']).name[-52:]:52} {r['rows']:>6} {_pct(r['precision']):>6} {_pct(r['recall']):>6} "
              f"{r['f1']:>6.3f} {_pct(r['false_alarm_rate']):>6} {r['windows_found']:>3}/{r['windows']:<4} "
              f"{r['false_alarms']:>5} {score:>6}", file=out)
