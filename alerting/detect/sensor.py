"""Sensor faults: a value frozen at one number, or jumping away and straight back.

A live analog sensor jitters; the same float for hours means a stuck ADC or a
gateway repeating its cache (feature: seconds since any watched metric last
changed). A jump is a single reading a quarter of the sensor's full scale away
from both neighbours, in opposite directions; the feature counts such spikes
with an exponential decay of `window_s`. Values outside the physical range
never get here (the parser rejects them); the pipeline counts those per device
as `sensor_impossible`.
"""

from __future__ import annotations

import numpy as np

from firewatch.alerting.detect.arrays import grown
from firewatch.contract.kinds import SPECS
from firewatch.contract.rules import Params, Rule

JUMP_FRACTION = 0.25


class Frozen:
    def __init__(self, kind: str, rules: list[Rule], columns: dict[str, int]) -> None:
        self.rules = rules
        self.cols = [np.array([columns[m] for m in r.metrics]) for r in rules]
        self.prev = [np.full((0, len(c)), np.nan) for c in self.cols]
        self.since = [np.zeros((0, len(c)), dtype=np.int64) for c in self.cols]

    def grow(self, n: int) -> None:
        self.prev = [grown(p, n, np.nan) for p in self.prev]
        self.since = [grown(s, n, 0) for s in self.since]

    def set_params(self, slots: np.ndarray, params: dict[str, Params]) -> None:
        pass

    def compute(self, slots: np.ndarray, ts: np.ndarray, v: np.ndarray) -> np.ndarray:
        out = np.empty((v.shape[0], len(self.rules)))
        t = ts[:, None]
        for i, cols in enumerate(self.cols):
            x = v[:, cols]
            prev, since = self.prev[i][slots], self.since[i][slots]
            have = ~np.isnan(x)
            same = have & (x == prev)
            since = np.where(have & ~same, t, since)
            self.since[i][slots] = since
            self.prev[i][slots] = np.where(have, x, prev)
            frozen = np.where(same, (t - since) / 1000, np.where(have, 0.0, np.nan))
            out[:, i] = np.fmax.reduce(frozen, axis=1)
        return out


class Jumps:
    def __init__(self, kind: str, rules: list[Rule], columns: dict[str, int]) -> None:
        self.rules = rules
        metrics = SPECS[kind].metrics
        self.cols = [np.array([columns[m] for m in r.metrics]) for r in rules]
        self.step = [
            np.array([(metrics[m].high - metrics[m].low) * JUMP_FRACTION for m in r.metrics]) for r in rules
        ]
        k = len(rules)
        self.p1 = [np.full((0, len(c)), np.nan) for c in self.cols]
        self.p2 = [np.full((0, len(c)), np.nan) for c in self.cols]
        self.count = np.zeros((0, k))
        self.last_ts = np.zeros((0, k), dtype=np.int64)
        self.tau_ms = np.ones((0, k))

    def grow(self, n: int) -> None:
        self.p1 = [grown(p, n, np.nan) for p in self.p1]
        self.p2 = [grown(p, n, np.nan) for p in self.p2]
        self.count = grown(self.count, n, 0.0)
        self.last_ts = grown(self.last_ts, n, 0)
        self.tau_ms = grown(self.tau_ms, n, 1.0)

    def set_params(self, slots: np.ndarray, params: dict[str, Params]) -> None:
        for i, r in enumerate(self.rules):
            self.tau_ms[slots, i] = max(params[r.name].window_s, 1) * 1000

    def compute(self, slots: np.ndarray, ts: np.ndarray, v: np.ndarray) -> np.ndarray:
        out = np.empty((v.shape[0], len(self.rules)))
        for i, cols in enumerate(self.cols):
            x, p1, p2 = v[:, cols], self.p1[i][slots], self.p2[i][slots]
            with np.errstate(invalid="ignore"):
                a, b = p1 - p2, x - p1
                spike = (np.abs(a) > self.step[i]) & (np.abs(b) > self.step[i]) & (a * b < 0)
            spikes = spike.sum(axis=1)
            have = ~np.isnan(x)
            self.p2[i][slots] = np.where(have, p1, p2)
            self.p1[i][slots] = np.where(have, x, p1)
            dt = np.maximum(ts - self.last_ts[slots, i], 0)
            c = self.count[slots, i] * np.exp(-dt / self.tau_ms[slots, i]) + spikes
            self.count[slots, i] = c
            self.last_ts[slots, i] = ts
            out[:, i] = c
        return out
