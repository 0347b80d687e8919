"""Level shifts on single metrics: a two-sided CUSUM per metric, vectorised across devices.

A pressure that settles 0.05 MPa lower after a valve was left half closed, a
residual current that steps up when a wet cable is connected: each reading is
within its band, the level has changed. Per device and metric this stage keeps
a slow baseline (an exponentially weighted mean, time constant `window_s`, and
mean absolute deviation, `DEV_MEMORY` times slower; residuals clipped at `CLIP`
deviations) and the CUSUM sums
S⁺ = max(0, S⁺ + z − k) and S⁻ = max(0, S⁻ − z − k) of the standardised
residual z, with the allowance k = `ALLOWANCE` deviations. The feature is the
largest sum over the rule's metrics, compared with `warning` (the decision
interval h). While a sum is over half of h the baseline learns nothing (a
shift in progress is not the new normal) and the sums are held at `HOLD` × h,
so the alert stays open while the level stays shifted (an operator sees a
valve left half closed until it is opened again; scoring per reading rewards
that too) and clears within a few readings of its return. Only a shift that
has lasted the rule's memory (`window_s`, a day) is taken as the new level:
the baseline restarts at the recent level and the sums at zero. For `PRIOR`
memories after that, a reading nearer the level before the shift than the new
one is the shift's end (the valve opened, the cooling repaired): the baseline
goes back to the level before, and no second alert is raised for the return. Warm-up as the other learned stages
(`baseline.warmed_up`: `warmup_s` of history, a whole day by default, or a
fast device's quarter of an hour), at least `MIN_READINGS`.

With `weekly` (the `weekly_shift` rules: a room's or machine's temperature) the
residual is taken after the metric's week: per device, metric and hour of the
week (`BINS` bins of event time; every bin is learned, so neither the time zone
nor which days are the weekend matters) a profile of how far that hour lies from
the level, learned from at most one reading per device and hour (so a bin counts
weeks, whatever the reporting period) over about `PROFILE_WEEKS`; once every bin
has seen `MIN_WEEKS` weeks it is what the residual is taken after (a shorter
training window does not replace that: a week's shape needs weeks). The afternoon's warmth and
the weekend's setback are then no part of the deviation, and a shift, a slow
departure, a collapse or a night as warm as the day stands out against the noise
and the weather alone. Each reading moves the sums by its share of an hour of
event time (at most one): a temperature's residuals are autocorrelated over
hours, and a logger every 5 minutes must not cross h twelve times faster than an
hourly one. An hour of the week was chosen over an hour of the day by
measurement: with the day alone every weekend of an office's temperature was a
level shift (`simulators/temps.py`). A reading is judged against the same hour
of the week's quietest day (the least swing) where that is nearer: a holiday is
a Sunday on a Thursday, and its working hours at the night's level were a shift
down. The level and its deviation still learn from the residual after the
reading's own hour, so the nearer choice does not shrink what noise is.

Until the week's profile is complete an hour-of-the-day profile (`DAY_BINS`,
learned the same way over about `PROFILE_DAYS`) stands in, once each hour has
seen `MIN_DAYS` days, with the allowance widened by the learned day's swing
(its highest hour less its lowest, in deviations): a departure within the day's
own range may be the part of the week not seen yet (a weekend's setback), a
failed cooling's step or collapse is not. A failure in a recording's first
fortnight is then found (a logger's first failure can come a week in); a lost
night setback is not (it stays within the day's range).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from firewatch.alerting.detect.arrays import grown
from firewatch.alerting.detect.baseline import OneRule, resolution, scale_floor, warmed_up, weight
from firewatch.contract.kinds import SPECS
from firewatch.contract.rules import Rule

ALLOWANCE = 2.0
CLIP = 4.0
DEV_MEMORY = 4
"""The deviation's memory, in the level's (`window_s`). A slow departure (a temperature falling 2 °C a day for
four days) drags the level behind it, and every residual after the lagging level is large while it lasts: a
deviation that learned as fast as the level grew with them (fivefold over such a fall, clipped at `CLIP` each
step) and kept every z under the allowance, so no sum reached h. Measured on generated years (docs/alerting.md):
drifts found 50 → 70 of 70 at 1 → 4, with `temp_shift`'s h raised 20 → 25 to keep the weather's spells out."""
MIN_READINGS = 30
HOLD = 1.5
PRIOR = 4
"""For this many level memories after a shift was taken as the new level, a reading nearer the level before it
than the new one is the shift's end: the level goes back to it and nothing is raised."""
RECENT = 0.2
"""Weight of the newest reading in the recent level a change restarts from."""
BINS = 168
"""Hours of the week."""
HOUR_MS = 3_600_000
PROFILE_WEEKS = 8
MIN_WEEKS = 2
DAY_BINS = 24
"""Hours of the day: the profile judged against until the week's is complete."""
PROFILE_DAYS = 7
MIN_DAYS = 3


class ChangePoints(OneRule):
    """The `changepoint` rule of a kind (at most one), one CUSUM per metric of it; `h` is its decision interval."""

    ARRAYS: ClassVar[dict[str, float]] = dict.fromkeys(
        ("last_ts", "count", "mean", "dev", "recent", "up", "down", "since", "ready", "prior", "until"), 0)

    def __init__(self, kind: str, rules: list[Rule], columns: dict[str, int], weekly: bool = False) -> None:
        super().__init__(kind, rules, columns)
        self.weekly = weekly and bool(rules)
        self.resolution = resolution(kind, self.names)
        m = len(self.names)
        self.last_ts = np.zeros(0, dtype=np.int64)
        self.count = np.zeros((0, m))
        self.mean = np.zeros((0, m))
        self.dev = np.zeros((0, m))
        self.recent = np.zeros((0, m))
        self.up = np.zeros((0, m))
        self.down = np.zeros((0, m))
        self.since = np.zeros((0, m), dtype=np.int64)
        """When each metric's sum reached h (0: it is below)."""
        self.prior = np.zeros((0, m))
        """The level a shift was last taken as the new level from, remembered `until` (0: nothing remembered)."""
        self.until = np.zeros((0, m), dtype=np.int64)
        self.ready = np.zeros(0, dtype=bool)
        self.profile = np.zeros((0, BINS, m), dtype=np.float32)
        """With `weekly`: how far each hour of the week lies from the level, per metric."""
        self.weeks = np.zeros((0, BINS), dtype=np.uint8)
        """Weeks each hour of the week has learned from (capped at 255)."""
        self.profiled = np.zeros(0, dtype=np.int64)
        """The hour (event time // 1 h) each device's profile last learned in."""
        self.complete = np.zeros(0, dtype=bool)
        """Every hour of the week has learned `MIN_WEEKS` weeks."""
        self.daily = np.zeros((0, DAY_BINS, m), dtype=np.float32)
        """How far each hour of the day lies from the level: judged against until the week's profile is complete."""
        self.days = np.zeros((0, DAY_BINS), dtype=np.uint8)
        self.daily_complete = np.zeros(0, dtype=bool)
        """Every hour of the day has learned `MIN_DAYS` days."""
        self.swing = np.zeros((0, m))
        """The day's profile's highest hour less its lowest: what the allowance widens by while it judges."""
        self.quiet = np.zeros(0, dtype=np.int64)
        """The first bin of the week's quietest day (the least swing), which a holiday resembles."""
        self.cyclic = np.zeros((0, m))
        """The variance of the week's most cyclic day (its profile's hours), per metric: where even that day's cycle
        is not clearly seen a day's cycle cannot be lost (`cycle.DayCycle`)."""

    def grow(self, n: int) -> None:
        super().grow(n)
        if self.weekly:
            for name in ("profile", "weeks", "profiled", "complete", "daily", "days", "daily_complete", "swing",
                         "quiet", "cyclic"):
                setattr(self, name, grown(getattr(self, name), n, 0))

    def compute(self, slots: np.ndarray, ts: np.ndarray, v: np.ndarray) -> np.ndarray:
        if not self.rules:
            return np.empty((len(slots), 0))
        x = v[:, self.cols]
        have = ~np.isnan(x)
        mean, dev, count = self.mean.take(slots, 0), self.dev.take(slots, 0), self.count.take(slots, 0)
        scale = np.maximum(dev * 1.25, scale_floor(self.resolution, mean))
        ready = self.ready.take(slots, 0)[:, None]
        k = ALLOWANCE
        judged = x
        if self.weekly:
            raw, hour = x, ts // HOUR_MS
            complete = self.complete.take(slots, 0)
            week = complete[:, None]
            if complete.any():
                own = self.profile[slots, hour % BINS]
                x = x - np.where(week, own, self.daily[slots, hour % DAY_BINS])
                judged = np.where(week, raw - self._nearest_day(slots, hour, own, raw - mean), x)
            else:  # every device still in its first fortnight
                x = judged = x - self.daily[slots, hour % DAY_BINS]
            ready = ready & (complete | self.daily_complete.take(slots, 0))[:, None]
            k = np.where(week, ALLOWANCE, ALLOWANCE + self.swing.take(slots, 0) / scale)
        last = self.last_ts.take(slots, 0)
        t = ts[:, None]
        up, down = self.up.take(slots, 0), self.down.take(slots, 0)
        until = self.until.take(slots, 0)
        remembered = until.any()
        if remembered:  # a shift was taken as the new level lately
            prior = self.prior.take(slots, 0)
            back = have & (t < until) & (np.abs(judged - prior) < np.abs(judged - mean))
            mean, until = np.where(back, prior, mean), np.where(back | (t >= until), 0, until)
            up, down = np.where(back, 0.0, up), np.where(back, 0.0, down)
        dt = np.maximum(ts - np.where(last > 0, last, ts), 0)[:, None]
        z = np.where(have, np.clip((judged - mean) / scale, -3 * CLIP, 3 * CLIP), 0.0)
        w = hour_share(last, dt[:, 0])[:, None] if self.weekly else 1.0
        up = np.where(ready & have, np.maximum(0, up + w * (z - k)), 0.0)
        down = np.where(ready & have, np.maximum(0, down - w * (z + k)), 0.0)
        h = self.h.take(slots, 0)[:, None]
        up, down = np.minimum(up, HOLD * h), np.minimum(down, HOLD * h)
        s = np.maximum(up, down)
        since = self.since.take(slots, 0)
        since = np.where(s >= h, np.where(since > 0, since, t), 0)
        recent = self.recent.take(slots, 0)
        recent = np.where(have, np.where(count == 0, x, recent + RECENT * (x - recent)), recent)
        tau = self.tau_ms.take(slots, 0)[:, None]
        accept = (since > 0) & (t - since >= tau)
        feature = np.where(ready[:, 0] & have.any(axis=1), np.where(have, s, 0).max(axis=1), np.nan)
        learn = have & (self.teaching | (s < h / 2))
        first = self.first_ts.take(slots, 0)
        alpha = weight(dt, tau, count)
        resid = np.clip(np.where(have, x - mean, 0), -CLIP * scale, CLIP * scale)
        new = have & (count == 0)
        mean = np.where(new, x, np.where(learn, mean + alpha * resid, mean))
        dev = np.where(learn & ~new, dev + weight(dt, DEV_MEMORY * tau, count) * (np.abs(resid) - dev), dev)
        if self.weekly:
            self._profile(slots, hour, have, np.where(have, raw - mean, 0), CLIP * scale)
        if accept.any():
            self.prior[slots] = np.where(accept, mean, self.prior.take(slots, 0))
            until = np.where(accept, t + PRIOR * tau, until)
            remembered = True
        if remembered:
            self.until[slots] = until
        mean = np.where(accept, recent, mean)
        up, down, since = (np.where(accept, 0, a) for a in (up, down, since))
        self.mean[slots], self.dev[slots], self.recent[slots] = mean, dev, recent
        self.up[slots], self.down[slots], self.since[slots] = up, down, since
        self.count[slots] = count + learn
        self.first_ts[slots] = np.where(first == 0, ts, first)
        self.last_ts[slots] = np.where(have.any(axis=1), ts, last)
        n = self.count.take(slots, 0).min(axis=1)
        due = ~self.ready.take(slots, 0) & (not self.teaching) & (n >= MIN_READINGS) & warmed_up(
            n, ts - self.first_ts.take(slots, 0), self.warmup_ms.take(slots, 0))
        self.ready[slots[due]] = True
        return feature[:, None]

    def _nearest_day(self, slots: np.ndarray, hour: np.ndarray, own: np.ndarray, off: np.ndarray) -> np.ndarray:
        """The week's profile at this hour (`own`), or at this hour of the week's quietest day if that is nearer
        to `off` (the reading less the level): a holiday is a Sunday on a Thursday, and no failure."""
        quiet = self.profile[slots, self.quiet.take(slots, 0) + hour % 24]
        return np.where(np.abs(off - quiet) < np.abs(off - own), quiet, own)

    def _profile(self, slots: np.ndarray, hour: np.ndarray, have: np.ndarray, off: np.ndarray,
                 clip: np.ndarray) -> None:
        """Teach each hour of the week and of the day how far it lies from the level (`off`, each profile's
        residual clipped at `clip`), once per device and hour.

        It learns whether or not a shift is under way: a profile that only learned outside alerts would keep a
        wrong hour wrong for ever (it raises the sum there, and the sum stops the learning)."""
        due = np.flatnonzero(have.any(axis=1) & (hour > self.profiled.take(slots, 0)))
        if not len(due):
            return
        s, known, off, clip = slots[due], have[due], off[due], clip[due]
        for profile, seen, b, memory in ((self.profile, self.weeks, hour[due] % BINS, PROFILE_WEEKS),
                                         (self.daily, self.days, hour[due] % DAY_BINS, PROFILE_DAYS)):
            n = seen[s, b].astype(np.int64)
            alpha = np.maximum(1 / (n + 1), 1 / memory)[:, None]
            profile[s, b] += np.where(known, alpha * np.clip(off - profile[s, b], -clip, clip), 0).astype(np.float32)
            seen[s, b] = np.minimum(n + 1, 255)
        self.profiled[s] = hour[due]
        self.complete[s] = self.weeks[s].min(axis=1) >= MIN_WEEKS
        self.daily_complete[s] = self.days[s].min(axis=1) >= MIN_DAYS
        self.swing[s] = np.ptp(self.daily[s], axis=1)
        known = s[self.complete[s]]
        if len(known):
            self.quiet[known], self.cyclic[known] = _days(self.profile[known])

    def explain(self, slot: int) -> str:
        """Which metric shifted, and from what level to what."""
        s = np.maximum(self.up[slot], self.down[slot])
        i = int(np.argmax(s))
        m = SPECS[self.kind].metrics[self.names[i]]
        word = "up" if self.up[slot, i] >= self.down[slot, i] else "down"
        return (f"{m.label} shifted {word}: now about {self.recent[slot, i]:.4g} {m.unit}, "
                f"usually {self.mean[slot, i]:.4g}")

    def metric(self, slot: int) -> str:
        return self.names[int(np.argmax(np.maximum(self.up[slot], self.down[slot])))] if self.names else ""

    def commission(self, n: int) -> None:
        if self.rules:
            self.ready[:n] = self.count[:n].min(axis=1) >= min(MIN_READINGS, 10)
            self.up[:n] = self.down[:n] = self.since[:n] = 0

    def export(self, slot: int) -> dict[str, list[float]]:
        if not self.rules or not self.count[slot].any():
            return {}
        names = ("count", "mean", "dev", "recent")
        values = np.concatenate([[self.first_ts[slot], self.last_ts[slot], self.ready[slot]],
                                 *(getattr(self, k)[slot] for k in names)]).astype(float)
        out = {self.rules[0].name + ":cusum": values.tolist()}
        if self.until[slot].any():
            out[self.rules[0].name + ":prior"] = [*self.prior[slot].tolist(), *self.until[slot].astype(float).tolist()]
        if self.weekly:
            out[self.rules[0].name + ":week"] = [float(self.profiled[slot]), *self.weeks[slot].astype(float).tolist(),
                                                 *self.profile[slot].ravel().astype(float).tolist()]
            out[self.rules[0].name + ":day"] = [*self.days[slot].astype(float).tolist(),
                                                *self.daily[slot].ravel().astype(float).tolist()]
        return out

    def restore(self, slot: int, saved: dict[str, list[float]]) -> None:
        row = saved.get(self.rules[0].name + ":cusum") if self.rules else None
        m = len(self.names)
        if not row or len(row) != 3 + 4 * m:
            return
        self.first_ts[slot], self.last_ts[slot], self.ready[slot] = int(row[0]), int(row[1]), row[2] > 0
        for i, k in enumerate(("count", "mean", "dev", "recent")):
            getattr(self, k)[slot] = row[3 + i * m: 3 + (i + 1) * m]
        prior = saved.get(self.rules[0].name + ":prior")
        if prior and len(prior) == 2 * m:
            self.prior[slot], self.until[slot] = prior[:m], prior[m:]
        week = saved.get(self.rules[0].name + ":week") if self.weekly else None
        if week and len(week) == 1 + BINS * (1 + m):
            self.profiled[slot] = int(week[0])
            self.weeks[slot] = week[1: 1 + BINS]
            self.profile[slot] = np.array(week[1 + BINS:]).reshape(BINS, m)
            self.complete[slot] = self.weeks[slot].min() >= MIN_WEEKS
            quiet, cyclic = _days(self.profile[slot][None])
            self.quiet[slot], self.cyclic[slot] = quiet[0], cyclic[0]
        day = saved.get(self.rules[0].name + ":day") if self.weekly else None
        if day and len(day) == DAY_BINS * (1 + m):
            self.days[slot] = day[:DAY_BINS]
            self.daily[slot] = np.array(day[DAY_BINS:]).reshape(DAY_BINS, m)
            self.daily_complete[slot] = self.days[slot].min() >= MIN_DAYS
            self.swing[slot] = np.ptp(self.daily[slot], axis=0)


def hour_share(last: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """Each reading's share of an hour of event time since its device's last one (`last`, 0: none yet, a whole
    hour), at most one: what it moves a sum judged per hour by, whatever the reporting period."""
    return np.minimum(np.where(last > 0, dt, HOUR_MS) / HOUR_MS, 1)


def _days(profiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Of each [week bins, metrics] profile: the first bin of its day with the least swing, and per metric the
    largest variance of one day's hours."""
    days = profiles.reshape(len(profiles), BINS // 24, 24, -1)
    return np.ptp(days, axis=2).sum(axis=2).argmin(axis=1) * 24, days.var(axis=2).max(axis=1)
