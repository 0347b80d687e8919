"""The standards' thresholds: a feature is the reading itself, or the worst of a group of sensors.

`value` rules take the highest (or, for rules that fire when falling, the
lowest) of their metrics: the hottest of four cable sensors, the lowest phase
voltage. `spread` rules take how far the worst sensor stands out from the next
one: one terminal much hotter than its siblings is a loose connection.
`unbalance` rules take (max - mean) / mean of the phases (NEMA's definition).
"""

from __future__ import annotations

import numpy as np

from firewatch.contract.rules import Params, Rule


class Thresholds:
    def __init__(self, rules: list[Rule], columns: dict[str, int]) -> None:
        self.rules = rules
        self.cols = [np.array([columns[m] for m in r.metrics]) for r in rules]
        self.ops = [r.feature for r in rules]
        self.reduce = [np.fmin if r.reduce == "min" else np.fmax for r in rules]

    def grow(self, n: int) -> None:
        pass

    def set_params(self, slots: np.ndarray, params: dict[str, Params]) -> None:
        pass

    def compute(self, slots: np.ndarray, ts: np.ndarray, v: np.ndarray) -> np.ndarray:
        out = np.empty((v.shape[0], len(self.rules)))
        for i, cols in enumerate(self.cols):
            if len(cols) == 1:
                out[:, i] = v[:, cols[0]]
            elif self.ops[i] == "spread":
                out[:, i] = spread(v[:, cols])
            elif self.ops[i] == "unbalance":
                out[:, i] = unbalance(v[:, cols])
            else:
                out[:, i] = self.reduce[i].reduce(v[:, cols], axis=1)
        return out


def spread(v: np.ndarray) -> np.ndarray:
    """Highest minus second highest of each row, ignoring missing sensors (NaN if < 2 present)."""
    s = np.sort(np.where(np.isnan(v), -np.inf, v), axis=1)
    with np.errstate(invalid="ignore"):
        d = s[:, -1] - s[:, -2]
    return np.where(np.isfinite(d), d, np.nan)


def unbalance(v: np.ndarray) -> np.ndarray:
    """(max - mean) / mean of each row's present values; NaN when nothing flows."""
    present = (~np.isnan(v)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(v, axis=1) / present
        u = (np.fmax.reduce(v, axis=1) - mean) / mean
    return np.where(mean > 1e-6, u, np.nan)
