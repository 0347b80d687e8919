"""What is normal for this device: a learned baseline and slow drifts, vectorised across devices.

`baseline` rules keep, per device, an exponentially weighted mean and mean
absolute deviation of a metric (time constant `window_s`); the feature is how
many deviations a reading lies from the mean, in the rule's direction. The
update clips each residual at four deviations, so one wild reading or a fault
in progress barely moves what is normal. Until `warmup_s` of history (and ten
readings) exist the feature is NaN: a baseline does not speak before it knows.

`drift` rules compare a fast average (window/24) with a slow one (window) of a
metric: residual current creeping up over days (insulation ageing), pressure
sinking over hours (a slow leak). Both remain far under any fixed threshold
while a device is healthy, and both survive restarts (`export`/`restore`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from firewatch.alerting.detect.arrays import grown
from firewatch.contract.kinds import SPECS
from firewatch.contract.rules import Params, Rule

CLIP = 4.0
MIN_READINGS = 10
WARMUP_READINGS = 300
QUICK_MS = 900_000
"""A device that sends `WARMUP_READINGS` readings within this much event time (a test rig at 1 Hz) has shown
its normal before the day's load can move it; any other learned stage waits out its warm-up (a whole day)."""
RESOLUTION = 1e-6
RELATIVE = 1e-3
"""A metric's learned scale is at least `RELATIVE` of its learned level (and `RESOLUTION` of its physical
range, for a level of zero): a metric that never moved in the warm-up is not then called unusual for
its next step. Not a share of the range alone: the range covers the largest pumps, and at 1/5000 of it a
small pump's current (0-2000 A: 0.4 A, four times its noise) or a vibration in g weighed a quarter of
what it should; the score no longer depends on the unit a metric is recorded in."""


def resolution(kind: str, names: Sequence[str]) -> np.ndarray:
    """The smallest scale of each metric, `RESOLUTION` of its physical range: the floor for a level of zero."""
    spec = SPECS[kind].metrics
    return np.array([(spec[m].high - spec[m].low) * RESOLUTION for m in names])


def scale_floor(resolution: np.ndarray, level: np.ndarray) -> np.ndarray:
    """The least a learned scale may be, unit-free: a share of the learned level, or `resolution` near zero."""
    return np.maximum(resolution, RELATIVE * np.abs(level))


def weight(dt: np.ndarray, tau_ms: np.ndarray, count: np.ndarray) -> np.ndarray:
    """The newest reading's weight in an exponentially weighted mean of time constant `tau_ms`, `dt` after the
    last one: at least 1 / (count + 1), so a device's first readings are averaged rather than barely moving it."""
    return np.maximum(1 - np.exp(-dt / tau_ms), 1 / (count + 1))


def warmed_up(count: np.ndarray, span_ms: np.ndarray, warmup_ms: np.ndarray) -> np.ndarray:
    """Whether a learned model has seen enough to judge: `warmup_ms` of history, or a fast device's readings.

    A count alone is not enough for a device that reports every minute: 300 readings are five hours, and a
    model fitted on the night's five hours calls the morning's load a fault.
    """
    return (span_ms >= warmup_ms) | ((count >= WARMUP_READINGS) & (span_ms <= QUICK_MS))


class OneRule:
    """A learned stage of at most one rule per kind over several metrics (change points, time of day, the
    multivariate model): per device the rule's time constant, warm-up, sensitivity and first reading.

    A subclass makes its own per-device arrays in `__init__` and names them in `ARRAYS` with the value a new
    device's row starts at; they grow with these. A batch's rows are read with `take(slots, 0)`: numpy's
    indexing `a[slots]` of a 2-D array is about 3 times slower (20 against 7 µs for 2,000 rows of 20,000), and
    the stages read some sixty such arrays a batch.
    """

    teaching = False
    """Set during a training window (replay's `--learn`)."""
    ARRAYS: ClassVar[dict[str, float]] = {}

    def __init__(self, kind: str, rules: list[Rule], columns: dict[str, int]) -> None:
        self.rules = rules
        self.kind = kind
        self.names = list(rules[0].metrics) if rules else []
        self.cols = np.array([columns[m] for m in self.names], dtype=np.int64)
        self.tau_ms = np.zeros(0)
        self.warmup_ms = np.zeros(0)
        self.h = np.zeros(0)
        """The rule's `warning` level (its sensitivity); inf while the rule is disabled or has none."""
        self.first_ts = np.zeros(0, dtype=np.int64)

    def grow(self, n: int) -> None:
        if self.rules:
            for name, fill in {"tau_ms": 0, "warmup_ms": 0, "h": 0, "first_ts": 0, **self.ARRAYS}.items():
                setattr(self, name, grown(getattr(self, name), n, fill))

    def set_params(self, slots: np.ndarray, params: dict[str, Params]) -> None:
        if not self.rules:
            return
        p = params[self.rules[0].name]
        self.tau_ms[slots] = max(p.window_s, 1) * 1000
        self.warmup_ms[slots] = p.warmup_s * 1000
        self.h[slots] = p.warning if p.enabled and p.warning else np.inf


class _Learned:
    """Reduction of a rule's metrics to one value, and per-device time bookkeeping."""

    state_names: tuple[str, ...] = ()

    def __init__(self, kind: str, rules: list[Rule], columns: dict[str, int]) -> None:
        self.rules = rules
        self.cols = [np.array([columns[m] for m in r.metrics]) for r in rules]
        self.reduce = [np.fmin if r.reduce == "min" else np.fmax for r in rules]
        self.sign = np.array([float(r.direction) for r in rules])
        k = len(rules)
        self.tau_ms = np.zeros((0, k))
        self.warmup_ms = np.zeros((0, k))
        self.first_ts = np.zeros((0, k), dtype=np.int64)
        self.last_ts = np.zeros((0, k), dtype=np.int64)
        for name in self.state_names:
            setattr(self, name, np.zeros((0, k)))

    def grow(self, n: int) -> None:
        for name in ("tau_ms", "warmup_ms", "first_ts", "last_ts", *self.state_names):
            setattr(self, name, grown(getattr(self, name), n, 0))

    def set_params(self, slots: np.ndarray, params: dict[str, Params]) -> None:
        for i, r in enumerate(self.rules):
            self.tau_ms[slots, i] = max(params[r.name].window_s, 1) * 1000
            self.warmup_ms[slots, i] = params[r.name].warmup_s * 1000

    def values(self, v: np.ndarray) -> np.ndarray:
        x = np.empty((v.shape[0], len(self.rules)))
        for i, cols in enumerate(self.cols):
            x[:, i] = v[:, cols[0]] if len(cols) == 1 else self.reduce[i].reduce(v[:, cols], axis=1)
        return x

    teaching = False
    """Set during a training window (replay's `--learn`); these stages learn the same either way."""

    def commission(self, n: int) -> None:
        """The warm-up is over for every slot that has seen readings: a training window replaced it."""
        first = self.first_ts[:n]
        first[first > 0] = 1

    def export(self, slot: int) -> dict[str, list[float]]:
        names = ("first_ts", "last_ts", *self.state_names)
        return {
            r.name: [float(getattr(self, n)[slot, i]) for n in names]
            for i, r in enumerate(self.rules)
            if self.first_ts[slot, i] > 0
        }

    def restore(self, slot: int, saved: dict[str, list[float]]) -> None:
        names = ("first_ts", "last_ts", *self.state_names)
        for i, r in enumerate(self.rules):
            row = saved.get(r.name)
            if row and len(row) == len(names):
                for n, value in zip(names, row):
                    getattr(self, n)[slot, i] = value


class Baseline(_Learned):
    state_names = ("mean", "dev", "count")

    def __init__(self, kind: str, rules: list[Rule], columns: dict[str, int]) -> None:
        super().__init__(kind, rules, columns)
        metrics = SPECS[kind].metrics
        self.floor = np.array([(metrics[r.metrics[0]].high - metrics[r.metrics[0]].low) / 1000 for r in rules])

    def compute(self, slots: np.ndarray, ts: np.ndarray, v: np.ndarray) -> np.ndarray:
        x = self.values(v)
        t = ts[:, None]
        mean, dev, count = self.mean.take(slots, 0), self.dev.take(slots, 0), self.count.take(slots, 0)
        first, last = self.first_ts.take(slots, 0), self.last_ts.take(slots, 0)
        scale = np.maximum(dev, self.floor)
        ready = (count >= MIN_READINGS) & (t - first >= self.warmup_ms.take(slots, 0))
        with np.errstate(invalid="ignore"):
            z = np.where(ready, (x - mean) / scale * self.sign, np.nan)
        have = ~np.isnan(x)
        new = have & (first == 0)
        dt = np.maximum(t - last, 0)
        alpha = weight(dt, self.tau_ms.take(slots, 0), count)
        resid = np.clip(np.where(have, x - mean, 0), -CLIP * scale, CLIP * scale)
        resid = np.where(new, 0, resid)
        self.mean[slots] = np.where(new, x, np.where(have, mean + alpha * resid, mean))
        self.dev[slots] = np.where(have & ~new, dev + alpha * (np.abs(resid) - dev), dev)
        self.count[slots] = count + have
        self.first_ts[slots] = np.where(new, t, first)
        self.last_ts[slots] = np.where(have, t, last)
        return z


class Drift(_Learned):
    state_names = ("fast", "slow")

    def compute(self, slots: np.ndarray, ts: np.ndarray, v: np.ndarray) -> np.ndarray:
        x = self.values(v)
        t = ts[:, None]
        fast, slow = self.fast.take(slots, 0), self.slow.take(slots, 0)
        first, last = self.first_ts.take(slots, 0), self.last_ts.take(slots, 0)
        tau = self.tau_ms.take(slots, 0)
        have = ~np.isnan(x)
        new = have & (first == 0)
        dt = np.maximum(t - last, 0)
        a_fast = 1 - np.exp(-dt / (tau / 24))
        a_slow = 1 - np.exp(-dt / tau)
        fast = np.where(new, x, np.where(have, fast + a_fast * (x - fast), fast))
        slow = np.where(new, x, np.where(have, slow + a_slow * (x - slow), slow))
        self.fast[slots], self.slow[slots] = fast, slow
        self.first_ts[slots] = np.where(new, t, first)
        self.last_ts[slots] = np.where(have, t, last)
        first = self.first_ts.take(slots, 0)
        ready = have & (t - first >= self.warmup_ms.take(slots, 0))
        return np.where(ready, (fast - slow) * self.sign, np.nan)
