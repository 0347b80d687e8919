"""What is normal at this time of day: a baseline per hour of the day, for load-driven signals.

Phase currents and cable temperatures follow the building's load: an evening
peak is normal, the same current at 4 a.m. may not be (a heater left on, a
fault drawing current, a cable warming with nothing on it). Per device, metric
and hour of the day (`BINS` bins of event time, UTC: every bin is learned, so
the time zone does not matter) this stage keeps an exponentially weighted mean
and mean absolute deviation (each bin remembers about `window_s` of days; residuals
clipped at `CLIP` deviations so a fault barely moves it, and nothing learned
while the device has an alert open). The feature is how many deviations the
reading lies above its hour's mean (the largest over the rule's metrics);
NaN until `warmup_s` of history and `MIN_PER_BIN` readings in the hour's bin.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from firewatch.alerting.detect.baseline import OneRule
from firewatch.alerting.detect.levels import LevelEngine
from firewatch.contract.kinds import SPECS
from firewatch.contract.rules import Rule

BINS = 24
CLIP = 4.0
MIN_PER_BIN = 12
_DAY_MS = 86_400_000
LEARN_GAP_MS = 240_000
"""A bin learns from at most one reading per device in this much event time (a bin's memory is days)."""


class TimeOfDay(OneRule):
    """The `daily` rule of a kind (at most one)."""

    ARRAYS: ClassVar[dict[str, float]] = dict.fromkeys(("count", "mean", "dev", "last", "learned_ts"), 0)

    def __init__(self, kind: str, rules: list[Rule], columns: dict[str, int]) -> None:
        super().__init__(kind, rules, columns)
        spec = SPECS[kind].metrics
        self.floor = np.array([(spec[m].high - spec[m].low) / 1000 for m in self.names], dtype=np.float32)
        m = len(self.names)
        self.engine: LevelEngine | None = None
        self.count = np.zeros((0, BINS, m), dtype=np.float32)
        self.mean = np.zeros((0, BINS, m), dtype=np.float32)
        self.dev = np.zeros((0, BINS, m), dtype=np.float32)
        self.last = np.zeros((0, m), dtype=np.float32)
        self.learned_ts = np.zeros(0, dtype=np.int64)
        """Each device's latest reading of the metrics, for `explain` when a minimum duration completes."""

    def compute(self, slots: np.ndarray, ts: np.ndarray, v: np.ndarray) -> np.ndarray:
        if not self.rules:
            return np.empty((len(slots), 0))
        x = v[:, self.cols].astype(np.float32)
        have = ~np.isnan(x)
        b = (ts % _DAY_MS) * BINS // _DAY_MS
        cell = (slots, b)
        count = self.count[cell]
        first = self.first_ts.take(slots, 0)
        ready = (count >= MIN_PER_BIN) & ((ts - first >= self.warmup_ms.take(slots, 0)) | self.teaching)[:, None]
        feature = np.full(len(slots), np.nan, dtype=np.float32)
        judged = np.flatnonzero(ready.any(axis=1))
        if len(judged):
            c = (slots[judged], b[judged])
            scale = np.maximum(self.dev[c] * np.float32(1.25), self.floor)
            with np.errstate(invalid="ignore"):
                z = np.where(ready[judged] & have[judged], (x[judged] - self.mean[c]) / scale, np.nan)
            feature[judged] = np.fmax.reduce(z, axis=1) if z.shape[1] > 1 else z[:, 0]
        self.first_ts[slots] = np.where(first == 0, ts, first)
        self.last[slots] = np.where(have, x, self.last.take(slots, 0))
        busy = (self.engine.level[slots].any(axis=1) if self.engine is not None and not self.teaching
                else np.zeros(len(slots), bool))
        rows = np.flatnonzero(~busy & (ts - self.learned_ts.take(slots, 0) >= LEARN_GAP_MS))
        if len(rows):
            self._learn(slots[rows], b[rows], ts[rows], x[rows], have[rows], count[rows])
        return feature[:, None].astype(float)

    def _learn(self, slots: np.ndarray, b: np.ndarray, ts: np.ndarray, x: np.ndarray, have: np.ndarray,
               count: np.ndarray) -> None:
        cell = (slots, b)
        mean, dev = self.mean[cell], self.dev[cell]
        scale = np.maximum(dev * np.float32(1.25), self.floor)
        self.learned_ts[slots] = ts
        days = np.maximum(self.tau_ms.take(slots, 0) / _DAY_MS, 1)
        alpha = np.maximum(1 / (count + 1), 1 / days[:, None]).astype(np.float32)
        resid = np.clip(np.where(have, x - mean, 0), -CLIP * scale, CLIP * scale)
        new = have & (count == 0)
        self.mean[cell] = np.where(new, x, mean + alpha * resid)
        self.dev[cell] = np.where(have & ~new, dev + alpha * (np.abs(resid) - dev), dev)
        self.count[cell] = count + have

    def explain(self, slot: int, ts: int) -> str:
        b = (ts % _DAY_MS) * BINS // _DAY_MS
        x = self.last[slot]
        z = (x - self.mean[slot, b]) / np.maximum(self.dev[slot, b] * 1.25, self.floor)
        i = int(np.nanargmax(z)) if not np.isnan(z).all() else 0
        m = SPECS[self.kind].metrics[self.names[i]]
        return (f"{m.label} {x[i]:.4g} {m.unit} at {b:02d}:00-{b + 1:02d}:00 UTC, "
                f"usually {self.mean[slot, b, i]:.4g} at this hour")

    def commission(self, n: int) -> None:
        if self.rules:
            first = self.first_ts[:n]
            first[first > 0] = 1

    def export(self, slot: int) -> dict[str, list[float]]:
        if not self.rules or not self.count[slot].any():
            return {}
        values = np.concatenate([self.count[slot].ravel(), self.mean[slot].ravel(), self.dev[slot].ravel()])
        return {self.rules[0].name + ":bins": [float(self.first_ts[slot]), *values.astype(float).tolist()]}

    def restore(self, slot: int, saved: dict[str, list[float]]) -> None:
        row = saved.get(self.rules[0].name + ":bins") if self.rules else None
        size = BINS * len(self.names)
        if not row or len(row) != 1 + 3 * size:
            return
        self.first_ts[slot] = int(row[0])
        for i, k in enumerate(("count", "mean", "dev")):
            getattr(self, k)[slot] = np.array(row[1 + i * size: 1 + (i + 1) * size]).reshape(BINS, -1)
