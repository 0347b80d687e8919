"""The day's cycle lost: a room or machine that no longer cools at night, against the week it has learned.

An office's or a plant room's temperature rises through the working day and
sets back at night. When the setback is lost (heating or a machine left on, a
control stuck) the night stays as warm as the day: no reading leaves the day's
range, the level moves by less than the day's own swing, and a change point on
the level sees little. What changes is the shape: the day no longer follows
its cycle.

Per device and metric this stage fits the recent readings (an exponentially
weighted window, time constant `window_s`, a day; each reading weighted by its
share of an hour, at most one, so a logger every 5 minutes counts as an hourly
one) as level + trend × age + β × the hour of the week's profile that the
temperature's change points learned (`changepoint.ChangePoints` with `weekly`).
β is how much of its usual cycle the day keeps: 1 is the usual day, 0 a flat
one. The trend is the weather's: a warm spell rising through a weekend's small
cycle read as a cycle lost while the level was held flat (six of the nine
`temp_cycle` alerts outside a failure on generated years, docs/alerting.md).
The feature is the share lost, 100 × (1 − β) %, while the window is warmer
than the learned level (a night as warm as the day raises it; a holiday, a flat
day at the night's level, lowers it and is no fault). It is NaN, which neither
raises nor clears, while the window is not warmer (the level learns a lost setback within days, and
the alert must not clear and rise again as it does: it clears when the cycle is
back), and where nothing can be said: before the week's profile is complete and
a day of it is in the window, and where the cycle expected over the window is
not at least `VISIBLE` × the reading-to-reading noise (a weekend's small swing).
The noise is half the mean squared step between successive readings, a week's
memory, each step the smaller of the reading's own and its residual's after the
profile: neither the weather nor the level enters it, and neither does the
cycle, kept (the residual is flat) or lost (the reading is; the residual's
steps alone grew with the loss until it no longer counted as visible). It is 0
where no day of the learned week shows a cycle that clearly
(`ChangePoints.cyclic`): a machine with no cycle has none to lose, and a setback
lost for good clears once the week has learned it, about three months on (NaN
held that alert open for ever).

Nothing here is learned beyond the window itself, so nothing is saved across a
restart: a restarted service judges again a day after the week's profile is
back (`export`).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from firewatch.alerting.detect.baseline import OneRule
from firewatch.alerting.detect.changepoint import BINS, HOUR_MS, ChangePoints, hour_share
from firewatch.contract.kinds import SPECS
from firewatch.contract.rules import Rule

VISIBLE = 2
"""The cycle expected over the window, in standard deviations, must be this many times the reading-to-reading
noise: a cycle not clearly seen cannot be said to be lost. It was 3 while a slow departure could hide in
`temp_shift`'s inflated deviation; with that fixed (`changepoint.DEV_MEMORY`) 2 finds more lost setbacks and
raises no more alerts outside them on years not used to choose it, 1.5 more again but outside them too
(docs/alerting.md); a real day's cycle varies more than white noise says."""
MIN_HOURS = 20.0
"""Weight (hours of readings) the window needs, after the week's profile is complete, before it judges."""


class DayCycle(OneRule):
    """The `cycle` rule of a kind (at most one), over the metrics the kind's `weekly_shift` rule profiles."""

    ARRAYS: ClassVar[dict[str, float]] = {"last_ts": 0, "sums": 0, "beta": 1.0, "prev": np.nan, "jitter": 0}

    def __init__(self, kind: str, rules: list[Rule], columns: dict[str, int], week: ChangePoints) -> None:
        super().__init__(kind, rules, columns)
        self.week = week
        self.at = np.array([week.names.index(m) for m in self.names], dtype=np.int64)
        """Each metric's column in the week's profile."""
        m = len(self.names)
        self.last_ts = np.zeros(0, dtype=np.int64)
        self.sums = np.zeros((0, 9, m))
        """The window's weighted sums of 1, x, p, x·p, p², a, a², x·a and p·a (x the reading, p its hour's profile,
        a its age in days), together: one gather and one scatter a batch."""
        self.prev = np.zeros((0, 2, m))
        """Each metric's last reading and its residual after its hour's profile (NaN: none yet)."""
        self.jitter = np.zeros((0, m))
        """Half the mean squared step of successive readings or of their residuals, whichever is smaller: the
        reading-to-reading noise (`VISIBLE`)."""
        self.beta = np.zeros((0, m))
        """The latest fit's share of the usual cycle, for `explain`."""

    def compute(self, slots: np.ndarray, ts: np.ndarray, v: np.ndarray) -> np.ndarray:
        if not self.rules:
            return np.empty((len(slots), 0))
        week = self.week
        complete = week.complete[slots][:, None]
        if not complete.any():  # a device's first fortnight: nothing to fit against yet
            return np.full((len(slots), 1), np.nan)
        x = v[:, self.cols]
        have = ~np.isnan(x) & complete
        p = week.profile[slots, (ts // HOUR_MS) % BINS][:, self.at].astype(float)
        last = self.last_ts.take(slots, 0)
        dt = np.maximum(ts - np.where(last > 0, last, ts), 0)
        seen = have.any(axis=1)
        moves = np.where(seen, dt, 0)  # the window moves on with a reading of its metrics, as `last_ts` does
        tau = self.tau_ms.take(slots, 0)
        decay = np.exp(-moves / tau)[:, None]
        weight = np.where(have, hour_share(last, dt)[:, None], 0)
        x0 = np.where(have, x, 0)
        w, sx, sp, sxp, spp, su, suu, sxu, spu = self.sums.take(slots, 0).transpose(1, 0, 2)
        d = (moves / (24 * HOUR_MS))[:, None]  # every age in the window grows by this
        moved = np.stack([w, sx, sp, sxp, spp, su - d * w, suu - 2 * d * su + d * d * w, sxu - d * sx, spu - d * sp],
                         axis=1)
        terms = np.stack([np.ones_like(p), x0, p, x0 * p, p * p], axis=1)
        sums = moved * decay[:, :, None]
        sums[:, :5] += weight[:, None, :] * terms
        self.sums[slots] = sums
        w, sx, sp, sxp, spp, su, suu, sxu, spu = sums.transpose(1, 0, 2)
        self.last_ts[slots] = np.where(seen, ts, last)
        r = x - p
        prev = self.prev.take(slots, 0)
        step = have & (dt[:, None] <= HOUR_MS) & ~np.isnan(prev[:, 0])
        jitter = self.jitter.take(slots, 0)
        d2 = np.where(step, np.minimum((x - prev[:, 0]) ** 2, (r - prev[:, 1]) ** 2) / 2, 0)
        a = np.where(step, np.maximum(1 - np.exp(-dt[:, None] / (7 * tau[:, None])), 1e-3), 0)
        jitter = np.where(jitter == 0, d2, jitter + a * (np.minimum(d2, 16 * jitter) - jitter))
        self.jitter[slots] = jitter
        self.prev[slots] = np.where(have[:, None], np.stack([x, r], axis=1), prev)
        with np.errstate(invalid="ignore", divide="ignore"):
            cuu, cup, cxu = suu - su * su / w, spu - su * sp / w, sxu - sx * su / w
            vp = spp - sp * sp / w - cup * cup / cuu
            beta = (sxp - sx * sp / w - cup * cxu / cuu) / vp
            noise = jitter * w
            judged = (w >= MIN_HOURS) & (vp > VISIBLE * VISIBLE * noise) & complete & ~self.teaching
            warmer = sx / w > week.mean[slots][:, self.at] + sp / w
        flat = have & (week.cyclic[slots][:, self.at] <= VISIBLE * VISIBLE * jitter)
        self.beta[slots] = np.where(judged, beta, np.where(flat, 1.0, self.beta.take(slots, 0)))
        lost = np.where(judged & warmer, 100 * (1 - beta), np.where(flat, 0.0, np.nan))
        return np.fmax.reduce(lost, axis=1)[:, None]

    def explain(self, slot: int) -> str:
        """How much of its usual cycle the day keeps, and what that cycle is."""
        i = int(np.argmin(self.beta[slot]))
        m = SPECS[self.kind].metrics[self.names[i]]
        swing = float(self.week.swing[slot, self.at[i]])
        return (f"{m.label} keeps {max(self.beta[slot, i], 0) * 100:.0f}% of its usual daily cycle "
                f"(usually {swing:.2g} {m.unit} from night to day)")

    def metric(self, slot: int) -> str:
        return self.names[int(np.argmin(self.beta[slot]))] if self.names else ""

    def commission(self, n: int) -> None:
        """Nothing to do: the window judges once the week's profile is complete, training window or not."""

    def export(self, slot: int) -> dict[str, list[float]]:
        return {}

    def restore(self, slot: int, saved: dict[str, list[float]]) -> None:
        """Nothing saved: the window is a day of readings, not a model (the module's docstring)."""
