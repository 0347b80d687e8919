"""Per-device state in numpy arrays, indexed by device slot, that grow as devices appear."""

from __future__ import annotations

import numpy as np


def grown(a: np.ndarray, n: int, fill: float | bool) -> np.ndarray:
    """`a` with at least `n` rows, new rows set to `fill`; capacity doubles to keep growth rare."""
    if a.shape[0] >= n:
        return a
    cap = max(n, 2 * a.shape[0], 64)
    out = np.full((cap, *a.shape[1:]), fill, dtype=a.dtype)
    out[: a.shape[0]] = a
    return out
