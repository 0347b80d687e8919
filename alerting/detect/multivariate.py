"""A device's metrics judged together: PCA with Hotelling's T² and the residual Q (SPE), per device.

A fault often shows in how metrics move together before any one leaves its
range: a pump's flow falls while its motor current stays up (a closed valve,
cavitation), one cable warms while its current does not. Per device (and per
operating state, see `operating.py`) this stage learns the mean and the
correlation of the rule's metrics on a warm-up window, keeps the principal
components that explain 90 % of the variance, and scores each reading by

- T², the squared distance inside the learned plane (every metric plausible,
  their combination unusual), against its chi-square limit, and
- Q, the squared residual off the plane (the usual relation between metrics
  broken), against Jackson and Mudholkar's limit,

both at 1 − `ALPHA`. The feature is max(T²/limit, Q/limit), smoothed over the
last few readings; 1 is the statistical limit and `warning` (default 2) is the
sensitivity. After the warm-up the model keeps learning slowly (time constant
`window_s`) and is refitted now and then, from readings that raise nothing:
never from a reading over half the warning level nor while the device has an
alert of another rule. A metric a reading lacks (a broken probe, a refused
value) counts as its learned mean, so the others are still judged; a reading
with fewer than two of the metrics is not scored. Until a device has
`warmup_s` of history (a whole day by default: metrics that follow the day's
load must have been seen through all of it), or `WARMUP_READINGS` readings
within a quarter of an hour (a test rig), and at least `MIN_READINGS`, the
feature is NaN (`baseline.warmed_up`).

`explain` names the metrics that drive a score in words: each metric's share
of T²/limit + Q/limit, and whether it is above or below what was learned.
Everything is numpy across devices; eigen-decompositions run only for the
devices due a refit, batched.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import ClassVar

import numpy as np

from firewatch.alerting.detect.baseline import OneRule, resolution, scale_floor, warmed_up
from firewatch.alerting.detect.levels import LevelEngine
from firewatch.alerting.detect.operating import OperatingStates
from firewatch.contract.kinds import SPECS
from firewatch.contract.rules import Params, Rule

ALPHA = 0.001
VARIANCE = 0.90
MIN_READINGS = 30
"""And ten per metric: a state fits on no fewer readings."""
REFIT_READINGS = 200
LEARN_GAP_MS = 240_000
"""Once fitted, a model learns from at most one reading per device in this much event time (its memory is days)."""
SMOOTH = 0.5
"""Weight of the newest reading in the smoothed score."""
CAP = 50.0
"""A single wild reading adds at most this much to the smoothed score."""
_Z = NormalDist().inv_cdf(1 - ALPHA)


def chi2_limit(k: np.ndarray) -> np.ndarray:
    """Wilson–Hilferty's chi-square quantile at 1 − ALPHA for k degrees of freedom."""
    k = np.maximum(k, 1).astype(float)
    return k * (1 - 2 / (9 * k) + _Z * np.sqrt(2 / (9 * k))) ** 3


def q_limit(lam: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """Jackson–Mudholkar's limit of the squared prediction error from the residual eigenvalues."""
    r = np.where(residual, lam, 0.0)
    t1, t2, t3 = r.sum(-1), (r**2).sum(-1), (r**3).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        h0 = np.clip(1 - 2 * t1 * t3 / (3 * t2**2), 0.1, None)
        base = _Z * np.sqrt(2 * t2 * h0**2) / t1 + 1 + t2 * h0 * (h0 - 1) / t1**2
        q = t1 * np.maximum(base, 1e-6) ** (1 / h0)
    return np.where(t1 > 1e-9, q, np.inf)


class Multivariate(OneRule):
    """The `multivariate` rule of a kind (at most one), over the rule's metrics; `h` is its warning level."""

    teaching = False
    """Set during a training window: every reading is learned and nothing is fitted until `commission`."""
    ARRAYS: ClassVar[dict[str, float]] = {"last_ts": 0, "n": 0, "s1": 0, "c1": 0, "s2": 0, "ref": np.nan, "fitted": 0, "since_fit": 0, "mu": 0,
              "sd": 1, "vec": 0, "w_t": 0, "w_q": 0, "lim_t": 1, "lim_q": 1, "score": 0}

    def __init__(self, kind: str, rules: list[Rule], columns: dict[str, int]) -> None:
        super().__init__(kind, rules, columns)
        self.states = OperatingStates(kind, columns)
        self.engine: LevelEngine | None = None
        """The detector's level engine, set by ReadingDetector: a device with an alert open teaches nothing."""
        self.resolution = resolution(kind, self.names)
        m, s = len(self.names), self.states.n
        self.shape = (s, m)
        self.last_ts = np.zeros((0, s), dtype=np.int64)
        self.n = np.zeros((0, s))
        self.s1 = np.zeros((0, s, m))
        self.c1 = np.zeros((0, s, m))
        self.pairs = np.triu_indices(m)
        self.s2 = np.zeros((0, s, len(self.pairs[0])), dtype=np.float32)
        """Sums of products of the readings less `ref` (centred, so float32 keeps the precision), the upper
        triangle of each cell's symmetric matrix only (`pairs`): every reading adds to them, and half the
        memory moved is a twentieth of detection's time for a city (`full` gives the matrix)."""
        self.ref = np.full((0, s, m), np.nan)
        """Per cell and metric, the first value learned: what the sums are centred on."""
        self.fitted = np.zeros((0, s), dtype=bool)
        self.since_fit = np.zeros((0, s))
        self.mu = np.zeros((0, s, m))
        self.sd = np.ones((0, s, m))
        self.vec = np.zeros((0, s, m, m), dtype=np.float32)
        self.w_t = np.zeros((0, s, m))
        """1/λ of the kept components (their T² weight), 0 for the residual ones."""
        self.w_q = np.zeros((0, s, m))
        """1 for the residual components (their Q weight), 0 for the kept ones."""
        self.lim_t = np.ones((0, s))
        self.lim_q = np.ones((0, s))
        self.score = np.zeros(0)

    def set_params(self, slots: np.ndarray, params: dict[str, Params]) -> None:
        super().set_params(slots, params)
        self.states.set_params(slots, params)

    def compute(self, slots: np.ndarray, ts: np.ndarray, v: np.ndarray) -> np.ndarray:
        if not self.rules:
            return np.empty((len(slots), 0))
        x = v[:, self.cols]
        have = ~np.isnan(x)
        st = self.states.of(slots, v)
        self.states.note(slots, st)
        # a disabled rule learns nothing
        enough = (have.sum(axis=1) >= min(2, x.shape[1])) & np.isfinite(self.h.take(slots, 0))
        cell = slots * self.shape[0] + st
        fitted = self.cells("fitted")[cell]
        raw = np.zeros(len(slots))
        scored = np.flatnonzero(fitted & enough)
        if len(scored):
            _, raw[scored] = self._scores(slots[scored], st[scored], x[scored], have[scored])
        prev = self.score.take(slots, 0)
        sm = np.where(fitted & enough, prev + SMOOTH * (np.minimum(raw, CAP) - prev), 0.0)
        self.score[slots] = sm
        settled = self.states.settled(slots)
        out = np.where(fitted & enough & settled, sm, np.nan)
        if self.teaching:
            learn = enough
        else:
            busy = self.engine.level[slots].any(axis=1) if self.engine is not None else np.zeros(len(slots), bool)
            spaced = ts - self.cells("last_ts")[cell] >= LEARN_GAP_MS
            learn = enough & ~busy & settled & (~fitted | ((sm < self.h.take(slots, 0) / 2) & spaced))
        self._learn(slots[learn], st[learn], ts[learn], x[learn], have[learn])
        return out[:, None]

    def _scores(self, slots: np.ndarray, st: np.ndarray, x: np.ndarray,
                have: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cell = slots * self.shape[0] + st
        m = len(self.names)
        mu, sd, vec, w_t, w_q, lim_t, lim_q = (self.cells(a)[cell] for a in
                                               ("mu", "sd", "vec", "w_t", "w_q", "lim_t", "lim_q"))
        z = np.where(have, (x - mu) / sd, 0.0)
        t = np.einsum("nm,nmk->nk", z.astype(np.float32), vec.reshape(-1, m, m)).astype(float)
        t2 = (t * t * w_t).sum(axis=1)
        q = (t * t * w_q).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            raw = np.maximum(t2 / lim_t, q / lim_q)
        return z, np.nan_to_num(raw, nan=0.0, posinf=CAP)

    def _learn(self, slots: np.ndarray, st: np.ndarray, ts: np.ndarray, x: np.ndarray, have: np.ndarray) -> None:
        if not len(slots):
            return
        cell = slots * self.shape[0] + st
        n_, s1, c1, s2 = (self.cells(a) for a in ("n", "s1", "c1", "s2"))
        last_ts, ref_, fitted_, since_fit = (self.cells(a) for a in ("last_ts", "ref", "fitted", "since_fit"))
        first = self.first_ts.take(slots, 0)
        self.first_ts[slots] = np.where(first == 0, ts, first)
        last = last_ts[cell]
        last_ts[cell] = ts
        ref = ref_[cell]
        unset = np.isnan(ref) & have
        if unset.any():  # a cell's first readings only: the rest leave `ref` as it is
            ref = np.where(unset, x, ref)
            ref_[cell] = ref
        x0 = np.where(have, x - ref, 0.0)
        x32 = x0.astype(np.float32)
        outer = x32[:, self.pairs[0]] * x32[:, self.pairs[1]]
        fitted = fitted_[cell]
        if fitted.any():
            dt = np.where(last > 0, np.maximum(ts - last, 0), 0)
            keep = np.where(fitted, np.exp(-dt / self.tau_ms.take(slots, 0)), 1.0)
            n = n_[cell] * keep + 1
            s1[cell] = s1[cell] * keep[:, None] + x0
            c1[cell] = c1[cell] * keep[:, None] + have
            s2[cell] = s2[cell] * keep.astype(np.float32)[:, None] + outer
        else:  # warming up: nothing decays yet, the sums only add
            n = n_[cell] + 1
            s1[cell] += x0
            c1[cell] += have
            s2[cell] += outer
        n_[cell] = n
        since_fit[cell] += 1
        if self.teaching:
            return
        due = np.where(fitted, since_fit[cell] >= REFIT_READINGS,
                       (n >= max(MIN_READINGS, 10 * len(self.names)))
                       & warmed_up(n, ts - self.first_ts.take(slots, 0), self.warmup_ms.take(slots, 0)))
        if due.any():
            self._fit(slots[due], st[due])

    def full(self, packed: np.ndarray) -> np.ndarray:
        """Symmetric [..., m, m] matrices from their upper triangles (`s2`'s layout; saved models keep the whole matrix)."""
        m = len(self.names)
        out = np.empty((*packed.shape[:-1], m, m))
        out[..., self.pairs[0], self.pairs[1]] = packed
        out[..., self.pairs[1], self.pairs[0]] = packed
        return out

    def cells(self, name: str) -> np.ndarray:
        """Array `name` as one row per (slot, state) cell, a view: one index array gathers far faster than
        the pair (slots, states), and 11 x 11 sums of products are then a row of 121 numbers."""
        a = getattr(self, name)
        return a.reshape(a.shape[0] * self.shape[0], -1) if a.ndim > 2 else a.reshape(-1)

    def commission(self, n: int) -> None:
        """A training window ended: fit every (device, state) that saw enough readings."""
        if not self.rules:
            return
        slots, st = np.nonzero(self.n[:n] >= min(MIN_READINGS, 10))
        self._fit(slots, st)
        self.score[:n] = 0

    def _fit(self, slots: np.ndarray, st: np.ndarray) -> None:
        """Mean, scale, principal components and both limits of each (slot, state) cell, batched."""
        if not len(slots):
            return
        cell = (slots, st)
        c1 = np.maximum(self.c1[cell], 1e-9)
        d = self.s1[cell] / c1
        mu = np.nan_to_num(self.ref[cell]) + d
        together = np.minimum(c1[:, :, None], c1[:, None, :])  # exact while a metric is missing from some time on
        cov = self.full(self.s2[cell]) / together - d[:, :, None] * d[:, None, :]
        var = np.diagonal(cov, axis1=1, axis2=2)
        sd = np.sqrt(np.maximum(var, scale_floor(self.resolution, mu) ** 2))
        corr = cov / (sd[:, :, None] * sd[:, None, :])
        seen = self.c1[cell] >= 2
        pair = seen[:, :, None] & seen[:, None, :]
        m = corr.shape[1]
        eye = np.eye(m, dtype=bool)
        corr = np.where(pair & ~eye, np.clip(corr, -1, 1), 0.0) + np.where(eye & pair, 1.0, 0.0)
        lam, vec = np.linalg.eigh(corr)
        lam, vec = lam[:, ::-1], vec[:, :, ::-1]
        lam = np.maximum(lam, 1e-3)
        # components over the metrics the cell has seen: a metric it never had is no part of its model
        real = (vec**2 * seen[:, :, None]).sum(axis=1) > 0.5
        share = np.cumsum(lam, axis=1) / lam.sum(axis=1, keepdims=True)
        k = np.minimum((share < VARIANCE).sum(axis=1) + 1, np.maximum(seen.sum(axis=1) - 1, 1))
        kept = np.arange(m)[None, :] < k[:, None]
        self.mu[cell] = mu
        self.sd[cell] = sd
        self.vec[cell] = vec
        self.w_t[cell] = np.where(kept, 1 / lam, 0.0)
        self.w_q[cell] = np.where(~kept & real, 1.0, 0.0)
        self.lim_t[cell] = chi2_limit(k)
        self.lim_q[cell] = q_limit(lam, ~kept & real)
        self.fitted[cell] = True
        self.since_fit[cell] = 0

    def explain(self, slot: int, row: np.ndarray) -> str:
        """The metrics behind a reading's score, largest share first, in an operator's words."""
        if not self.rules:
            return ""
        x = row[self.cols][None, :]
        have = ~np.isnan(x)
        st = self.states.of(np.array([slot]), row[None, :])
        cell = (np.array([slot]), st)
        z, _ = self._scores(cell[0], st, x, have)
        vec, w_t, w_q = self.vec[cell][0], self.w_t[cell][0], self.w_q[cell][0]
        t = vec.T @ z[0]
        c_t = z[0] * (vec @ (w_t * t)) / self.lim_t[cell][0]
        resid = vec @ (w_q * t)
        c_q = resid**2 / self.lim_q[cell][0]
        c = np.maximum(c_t, 0) + c_q
        total = c.sum()
        if total <= 0:
            return "no single metric stands out"
        spec = SPECS[self.kind].metrics
        parts = []
        for i in np.argsort(-c)[:3]:
            if c[i] / total < 0.15 and parts:
                break
            m = spec[self.names[i]]
            word = "higher" if z[0, i] > 0 else "lower"
            mean = self.mu[cell][0, i]
            value = "missing" if not have[0, i] else f"{x[0, i]:.4g} {m.unit}"
            parts.append(f"{m.label} {word} than usual ({value}, usually {mean:.4g}; {c[i] / total:.0%})")
        state = self.states.label(int(st[0]))
        return ", ".join(parts) + (f" [{state}]" if state else "")

    def export(self, slot: int) -> dict[str, list[float]]:
        if not self.rules or not self.n[slot].any():
            return {}
        values = np.concatenate([[self.first_ts[slot]], self.last_ts[slot], self.n[slot], self.s1[slot].ravel(),
                                 self.c1[slot].ravel(), self.full(self.s2[slot]).ravel(), np.nan_to_num(self.ref[slot].ravel()),
                                 self.fitted[slot]]).astype(float)
        return {self.rules[0].name + ":model": values.tolist()}

    def restore(self, slot: int, saved: dict[str, list[float]]) -> None:
        if not self.rules:
            return
        row = saved.get(self.rules[0].name + ":model")
        s, m = self.shape
        sizes = [1, s, s, s * m, s * m, s * m * m, s * m, s]
        if not row or len(row) != sum(sizes):
            return
        parts = np.split(np.array(row), np.cumsum(sizes)[:-1])
        self.first_ts[slot] = int(parts[0][0])
        self.last_ts[slot] = parts[1].astype(np.int64)
        self.n[slot] = parts[2]
        self.s1[slot] = parts[3].reshape(s, m)
        self.c1[slot] = parts[4].reshape(s, m)
        self.s2[slot] = parts[5].reshape(s, m, m)[:, *self.pairs]
        self.ref[slot] = np.where(parts[2][:, None] > 0, parts[6].reshape(s, m), np.nan)
        fitted = np.flatnonzero(parts[7] > 0)
        if len(fitted):
            self._fit(np.full(len(fitted), slot), fitted)

