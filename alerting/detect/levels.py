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
monitor says nothing more, and one closed after 30 s still fired. With
`keep_s` (Prometheus's `keep_firing_for`) a fall waits until the feature has
stayed past the deadband that long, decided by the device's next reading: a
room's temperature whose night no longer cools is away from its normal every
night and at it every afternoon, and that is one alert, not one a night. A
reading without the feature (NaN) neither starts nor ends a fall's wait, and it
ends a rise's, as a series missing from a Prometheus evaluation ends its pending
alert: the condition has not been seen to hold. Carried through instead, it
found more of `temp_cycle`'s lost setbacks on generated years (a weekend says
nothing of a cycle) and raised more alerts outside their windows where holidays
are (docs/alerting.md, 2026-12-07).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firewatch.alerting.detect.arrays import grown
from firewatch.contract.rules import Params, Rule

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
        self.sign = np.array([float(x.worse) for x in rules])
        self.table = np.zeros((0, 4, r))
        """Per group of devices whose levels are the same, and rule: warning, alarm, and both less the
        deadband (where a level holds). A city has a few such groups, so the table stays in cache where
        a copy per device (a few MB for a kind) would be gathered from memory at every reading."""
        self.group = np.zeros(0, dtype=np.int64)
        """Each device's row of `table`."""
        self._groups: dict[bytes, int] = {}
        self.level = np.zeros((0, r), dtype=np.int8)
        self.timed = np.zeros(0, dtype=np.int64)
        """Rules with a minimum duration for some device; only they keep pending state, in the
        columns of the arrays below (one per timed rule), so untimed rules cost nothing for it."""
        self.for_ms = np.zeros((0, 0), dtype=np.int64)
        self.pend_since = np.zeros((0, 0), dtype=np.int64)
        self.pend_level = np.zeros((0, 0), dtype=np.int8)
        self.last = np.full((0, 0), NAN)
        self.keep_ms = np.zeros((0, 0), dtype=np.int64)
        self.fall_since = np.zeros((0, 0), dtype=np.int64)
        """When a kept level's feature first came back past the deadband (0: it has not)."""

    _TIMED = ("for_ms", "pend_since", "pend_level", "last", "keep_ms", "fall_since")
    _FILL = (0, 0, 0, NAN, 0, 0)

    def grow(self, n: int) -> None:
        if not self._groups:
            self._row(np.full((4, len(self.rules)), NAN))
        self.group = grown(self.group, n, 0)
        self.level = grown(self.level, n, 0)
        for name, fill in zip(self._TIMED, self._FILL):
            setattr(self, name, grown(getattr(self, name), n, fill))

    def _time(self, rule: int) -> int:
        """The pending-state column of `rule`, added the first time a device gives it a duration to rise or
        to fall."""
        hit = np.flatnonzero(self.timed == rule)
        if len(hit):
            return int(hit[0])
        self.timed = np.append(self.timed, rule)
        for name, fill in zip(self._TIMED, self._FILL):
            a = getattr(self, name)
            setattr(self, name, np.concatenate([a, np.full((a.shape[0], 1), fill, dtype=a.dtype)], axis=1))
        return len(self.timed) - 1

    def _row(self, levels: np.ndarray) -> int:
        """The row of `table` holding `levels` ([4, rules]), added when no group has them yet."""
        key = levels.tobytes()
        g = self._groups.get(key)
        if g is None:  # devices with thresholds of their own make a group each: grow by doubling
            g = self._groups[key] = len(self._groups)
            self.table = grown(self.table, g + 1, NAN)
            self.table[g] = levels
        return g

    def set_params(self, slots: np.ndarray, params: dict[str, Params]) -> None:
        levels = np.empty((4, len(self.rules)))
        for i, rule in enumerate(self.rules):
            p = params[rule.name]
            on = p.enabled
            s = self.sign[i]
            alarm = s * p.alarm if on and p.alarm is not None else NAN
            warn = s * p.warning if on and p.warning is not None else alarm
            levels[:, i] = (warn, alarm, warn - p.deadband, alarm - p.deadband)
            if p.for_s > 0 or p.keep_s > 0 or i in self.timed:
                k = self._time(i)
                self.for_ms[slots, k] = int(p.for_s * 1000)
                self.keep_ms[slots, k] = int(p.keep_s * 1000)
        self.group[slots] = self._row(levels)

    def threshold(self, slot: int, rule: int, level: int) -> float | None:
        v = self.table[self.group[slot], 0 if level == 1 else 1, rule] * self.sign[rule]
        return None if np.isnan(v) else float(v)

    def step(self, slots: np.ndarray, ts: np.ndarray, f: np.ndarray) -> list[Change]:
        """Move levels for one reading per slot (`slots` unique); `f` is [n, rules] features."""
        j = self.timed
        none = np.zeros((len(slots), 0), dtype=np.int64)
        pending = self.pend_since.take(slots, 0) if len(j) else none
        falls = self.fall_since.take(slots, 0) if len(j) else none
        out = self._matured(slots, ts, pending)
        x = f * self.sign
        g = self.group.take(slots, 0)
        th = self.table[g[:1]] if len(g) and g.min() == g.max() else self.table[g]
        with np.errstate(invalid="ignore"):
            up = (x >= th[:, 0]).astype(np.int8) + (x >= th[:, 1])
            hold = (x >= th[:, 2]).astype(np.int8) + (x >= th[:, 3])
        cur = self.level.take(slots, 0)
        gap = np.isnan(x)
        new = np.where(gap, cur, np.maximum(up, np.minimum(cur, hold)))
        rising = new[:, j] > cur[:, j]
        falling = new[:, j] < cur[:, j]
        busy = np.flatnonzero(rising.any(axis=1) | falling.any(axis=1) | (pending > 0).any(axis=1)
                              | (falls > 0).any(axis=1))
        if len(busy):  # only rows rising, falling or pending have timed state to move; the rest stays as it is
            at, rise, fall, t = slots[busy], rising[busy], falling[busy], ts[busy, None]
            target, now, p, f0, blank = new[busy][:, j], cur[busy][:, j], pending[busy], falls[busy], gap[busy][:, j]
            since = np.where(rise, np.where(p > 0, p, t), 0)
            ok = ~rise | (t - since >= self.for_ms[at])
            back = np.where(fall, np.where(f0 > 0, f0, t), np.where(blank, f0, 0))
            kept = fall & (t - back < self.keep_ms[at])
            held = new[busy]
            held[:, j] = np.where(ok & ~kept, target, now)
            new[busy] = held
            self.pend_since[at] = np.where(ok, 0, since)
            self.fall_since[at] = np.where(kept | blank, back, 0)
            self.pend_level[at] = target
            self.last[at] = np.where(gap[busy][:, j], self.last[at], f[busy][:, j])
            renewed = (f0 > 0) & ~fall & ~blank & (held[:, j] == now)
            if renewed.any():  # back at its level within the wait: the same alert, told what it is now
                r, k = np.nonzero(renewed)
                out = out + [Change(int(at[i]), int(j[c]), int(now[i, c]), int(now[i, c]),
                                    float(f[busy[i], j[c]]), int(busy[i])) for i, c in zip(r, k)]
        self.level[slots] = new
        rows, cols = np.nonzero(new != cur)
        return out + [
            Change(int(slots[i]), int(c), int(cur[i, c]), int(new[i, c]), float(f[i, c]), int(i))
            for i, c in zip(rows, cols)
        ]

    def _commit(self, cells: tuple[np.ndarray, np.ndarray], since: np.ndarray) -> list[Change]:
        """Raise the pending levels of (slot, timed column) cells whose duration is complete."""
        out = []
        for s, k, t0 in zip(*cells, since):
            c = int(self.timed[k])
            old, new = int(self.level[s, c]), int(self.pend_level[s, k])
            self.pend_since[s, k] = 0
            if new > old:
                self.level[s, c] = new
                out.append(Change(int(s), c, old, new, float(self.last[s, k]),
                                  at_ms=int(t0 + self.for_ms[s, k])))
        return out

    def _matured(self, slots: np.ndarray, ts: np.ndarray, pending: np.ndarray) -> list[Change]:
        """Rises whose minimum duration completed before this reading (the clock had not looked yet);
        `pending` is `pend_since` of `slots`, cleared here where they are committed."""
        rows = np.flatnonzero((pending > 0).any(axis=1))
        if not len(rows):
            return []
        ps = pending[rows]
        due = (ps > 0) & (ts[rows, None] - ps >= self.for_ms[slots[rows]])
        if not due.any():
            return []
        r, ks = np.nonzero(due)
        pending[rows[r], ks] = 0
        return self._commit((slots[rows[r]], ks), ps[r, ks])

    def tick(self, now_ms: int, n: int) -> list[Change]:
        """Commit pending rises whose minimum duration has passed by `now_ms`."""
        ps = self.pend_since[:n]
        due = (ps > 0) & (now_ms - ps >= self.for_ms[:n])
        if not due.any():
            return []
        cells = np.nonzero(due)
        return self._commit(cells, ps[cells])

    def clear(self, n: int) -> None:
        """Every level of the first `n` slots back to clear, nothing pending (the end of a training window)."""
        self.level[:n] = 0
        self.pend_since[:n] = 0
        self.pend_level[:n] = 0
        self.fall_since[:n] = 0

    def restore(self, slot: int, rule: int, level: int) -> None:
        """Set a level remembered from an open alert, so a restart neither refires nor forgets it."""
        self.level[slot, rule] = level
