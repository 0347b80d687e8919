"""Warning and alarm levels with hysteresis and a minimum duration, for all devices of a kind at once.

Each rule contributes one feature column (the reading, a rate, a deviation...);
this engine holds the current level (0 clear, 1 warning, 2 alarm) of every
(device, rule) and moves it with vectorised comparisons. Only the cells whose
level changed come back to Python, so the cost per reading is a few numpy
operations shared by the whole batch.

A level rises when the feature reaches it and falls only when the feature is
`deadband` back past it. With `for_s` the rise waits until the condition has
held that long in event time, decided by the clock (`tick`) or by the next
reading, whichever comes first, and is stamped with the event time the
duration completed: a cover left open fires 10 s after it opened even if the
monitor says nothing more, and one closed after 30 s still fired.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alerting.detect.arrays import grown
from alerting.rules import Params, Rule

NAN = float("nan")


@dataclass(slots=True)
class Change:
    slot: int
    rule: int
    old: int
    new: int
    value: float
    row: int = -1
    """Row of the batch that moved the level; -1 when the clock did."""
    at_ms: int = 0
    """When the clock did: the event time the minimum duration was complete."""


class LevelEngine:
    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        r = len(rules)
        self.sign = np.array([float(x.direction) if x.feature in ("value", "spread", "unbalance") else 1.0 for x in rules])
        self.levels = np.full((0, 4, r), NAN)
        """Per device and rule: warning, alarm, and both less the deadband (where a level holds)."""
        self.for_ms = np.zeros((0, r), dtype=np.int64)
        self.level = np.zeros((0, r), dtype=np.int8)
        self.pend_since = np.zeros((0, r), dtype=np.int64)
        self.pend_level = np.zeros((0, r), dtype=np.int8)
        self.last = np.full((0, r), NAN)
        self.timed = np.zeros(0, dtype=np.int64)
        """Rules with a minimum duration for some device: the only columns that need pending state."""

    def grow(self, n: int) -> None:
        self.levels = grown(self.levels, n, NAN)
        self.for_ms = grown(self.for_ms, n, 0)
        self.level = grown(self.level, n, 0)
        self.pend_since = grown(self.pend_since, n, 0)
        self.pend_level = grown(self.pend_level, n, 0)
        self.last = grown(self.last, n, NAN)

    def set_params(self, slot: int, params: dict[str, Params]) -> None:
        for i, rule in enumerate(self.rules):
            p = params[rule.name]
            on = p.enabled
            s = self.sign[i]
            alarm = s * p.alarm if on and p.alarm is not None else NAN
            warn = s * p.warning if on and p.warning is not None else alarm
            self.levels[slot, :, i] = (warn, alarm, warn - p.deadband, alarm - p.deadband)
            self.for_ms[slot, i] = int(p.for_s * 1000)
            if p.for_s > 0 and i not in self.timed:
                self.timed = np.union1d(self.timed, [i]).astype(np.int64)

    def threshold(self, slot: int, rule: int, level: int) -> float | None:
        v = self.levels[slot, 0 if level == 1 else 1, rule] * self.sign[rule]
        return None if np.isnan(v) else float(v)

    def step(self, slots: np.ndarray, ts: np.ndarray, f: np.ndarray) -> list[Change]:
        """Move levels for one reading per slot (`slots` unique); `f` is [n, rules] features."""
        out = self._matured(slots, ts)
        x = f * self.sign
        th = self.levels[slots]
        with np.errstate(invalid="ignore"):
            up = (x >= th[:, 0]).astype(np.int8) + (x >= th[:, 1])
            hold = (x >= th[:, 2]).astype(np.int8) + (x >= th[:, 3])
        cur = self.level[slots]
        gap = np.isnan(x)
        new = np.where(gap, cur, np.maximum(up, np.minimum(cur, hold)))
        j = self.timed
        if len(j):
            cells = np.ix_(slots, j)
            target, now = new[:, j], cur[:, j]
            rising = target > now
            t = ts[:, None]
            pending = self.pend_since[cells]
            since = np.where(rising, np.where(pending > 0, pending, t), 0)
            ok = ~rising | (t - since >= self.for_ms[cells])
            new[:, j] = np.where(ok, target, now)
            self.pend_since[cells] = np.where(ok, 0, since)
            self.pend_level[cells] = target
            self.last[cells] = np.where(gap[:, j], self.last[cells], f[:, j])
        self.level[slots] = new
        rows, cols = np.nonzero(new != cur)
        return out + [
            Change(int(slots[i]), int(c), int(cur[i, c]), int(new[i, c]), float(f[i, c]), int(i))
            for i, c in zip(rows, cols)
        ]

    def _matured(self, slots: np.ndarray, ts: np.ndarray) -> list[Change]:
        """Rises whose minimum duration completed before this reading (the clock had not looked yet)."""
        j = self.timed
        if not len(j):
            return []
        cells = np.ix_(slots, j)
        ps = self.pend_since[cells]
        due = (ps > 0) & (ts[:, None] - ps >= self.for_ms[cells])
        if not due.any():
            return []
        out = []
        for i, k in zip(*np.nonzero(due)):
            s, c = slots[i], j[k]
            old, new = int(self.level[s, c]), int(self.pend_level[s, c])
            self.pend_since[s, c] = 0
            if new > old:
                self.level[s, c] = new
                out.append(Change(int(s), int(c), old, new, float(self.last[s, c]),
                                  at_ms=int(ps[i, k] + self.for_ms[s, c])))
        return out

    def tick(self, now_ms: int, n: int) -> list[Change]:
        """Commit pending rises whose minimum duration has passed by `now_ms`."""
        ps = self.pend_since[:n]
        due = (ps > 0) & (now_ms - ps >= self.for_ms[:n])
        out = []
        for s, j in zip(*np.nonzero(due)):
            old, new = int(self.level[s, j]), int(self.pend_level[s, j])
            since = int(ps[s, j])
            self.pend_since[s, j] = 0
            if new > old:
                self.level[s, j] = new
                out.append(Change(int(s), int(j), old, new, float(self.last[s, j]),
                                  at_ms=since + int(self.for_ms[s, j])))
        return out

    def restore(self, slot: int, rule: int, level: int) -> None:
        """Set a level remembered from an open alert, so a restart neither refires nor forgets it."""
        self.level[slot, rule] = level
