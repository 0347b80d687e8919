"""Rates of change: temperature rise per minute, pressure drop per minute.

The rate is taken against an anchor reading at least a minute old, so a device
that reports every second in an alarm burst does not turn sensor noise into a
steep slope; readings further apart than `window_s` give no rate (a gap is not
a slope). Rules with direction -1 report a fall as a positive number.
"""

from __future__ import annotations

import numpy as np

from firewatch.alerting.detect.arrays import grown
from firewatch.contract.rules import Params, Rule

MIN_SPAN_MS = 60_000


class Rates:
    def __init__(self, rules: list[Rule], columns: dict[str, int]) -> None:
        self.rules = rules
        self.cols = [np.array([columns[m] for m in r.metrics]) for r in rules]
        self.reduce = [np.fmin if r.reduce == "min" else np.fmax for r in rules]
        self.sign = np.array([float(r.direction) for r in rules])
        k = len(rules)
        self.anchor = np.full((0, k), np.nan)
        self.anchor_ts = np.zeros((0, k), dtype=np.int64)
        self.max_gap_ms = np.zeros((0, k))

    def grow(self, n: int) -> None:
        self.anchor = grown(self.anchor, n, np.nan)
        self.anchor_ts = grown(self.anchor_ts, n, 0)
        self.max_gap_ms = grown(self.max_gap_ms, n, 0.0)

    def set_params(self, slots: np.ndarray, params: dict[str, Params]) -> None:
        for i, r in enumerate(self.rules):
            self.max_gap_ms[slots, i] = params[r.name].window_s * 1000

    def compute(self, slots: np.ndarray, ts: np.ndarray, v: np.ndarray) -> np.ndarray:
        x = np.empty((v.shape[0], len(self.rules)))
        for i, cols in enumerate(self.cols):
            x[:, i] = v[:, cols[0]] if len(cols) == 1 else self.reduce[i].reduce(v[:, cols], axis=1)
        a, ats = self.anchor.take(slots, 0), self.anchor_ts.take(slots, 0)
        span = (ts[:, None] - ats).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = (x - a) / span * 60_000 * self.sign
        valid = (span >= MIN_SPAN_MS) & (span <= self.max_gap_ms.take(slots, 0)) & ~np.isnan(rate)
        move = ~np.isnan(x) & ((span >= MIN_SPAN_MS) | np.isnan(a))
        self.anchor[slots] = np.where(move, x, a)
        self.anchor_ts[slots] = np.where(move, ts[:, None], ats)
        return np.where(valid, rate, np.nan)
