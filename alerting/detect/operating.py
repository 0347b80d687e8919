"""Operating states: a fire pump at standby and a running pump are different normals.

A standby fire pump holds its pressure with the motor off (no current, no
flow); running, it draws current and moves water at a higher pressure. A
learned model of one state would call the other a fault, so learned stages
keep one model per state and score a reading only against its own state's.
The state is read off each reading: running while the motor current is over
`RUNNING_SHARE` of the rated current (the nameplate's; `RUNNING_CURRENT_A`
without one) or the flow over `RUNNING_FLOW_LPS`. A share of the rating, not
one number: a test rig's small motor runs on 1-2 A, which a fixed 2 A called
standby, so a valve closed on it (flow to nothing) moved its readings to a
state with no model, where nothing was scored. For `SETTLE_READINGS`
readings after a start or a stop nothing is scored (the start-up transient is
neither normal of the two). Other kinds have one state.
"""

from __future__ import annotations

import numpy as np

from firewatch.alerting.detect.arrays import grown
from firewatch.contract.rules import RULES, Params

RUNNING_CURRENT_A = 2.0
RUNNING_SHARE = 0.2
RUNNING_FLOW_LPS = 1.0
SETTLE_READINGS = 3
_LABELS = {"pump": ("standby", "running")}


class OperatingStates:
    def __init__(self, kind: str, columns: dict[str, int]) -> None:
        self.labels = _LABELS.get(kind, ("",))
        self.n = len(self.labels)
        self.current = columns.get("current_a") if self.n > 1 else None
        self.flow = columns.get("flow_lps") if self.n > 1 else None
        self.rated = next((r.name for r in RULES.get(kind, {}).values() if r.rated == "current_a"), None)
        """The rule whose alarm level is the rated current (set by the nameplate)."""
        self.state = np.zeros(0, dtype=np.int64)
        self.since = np.zeros(0, dtype=np.int64)
        """Readings since the last change of state (capped), per slot."""
        self.running_a = np.zeros(0)

    def _grow(self, n: int) -> None:
        if len(self.state) < n:
            self.state = grown(self.state, n, -1)
            self.since = grown(self.since, n, 0)
            self.running_a = grown(self.running_a, n, RUNNING_CURRENT_A)

    def set_params(self, slots: np.ndarray, params: dict[str, Params]) -> None:
        if self.n == 1 or not len(slots):
            return
        self._grow(int(slots.max()) + 1)
        rated = params[self.rated].alarm if self.rated else None
        self.running_a[slots] = RUNNING_SHARE * rated if rated else RUNNING_CURRENT_A

    def of(self, slots: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Each reading's state (0 standby, 1 running); a reading without current nor flow keeps the last."""
        if self.n == 1:
            return np.zeros(len(slots), dtype=np.int64)
        self._grow(int(slots.max()) + 1 if len(slots) else 0)
        cur = v[:, self.current] if self.current is not None else np.full(len(slots), np.nan)
        flow = v[:, self.flow] if self.flow is not None else np.full(len(slots), np.nan)
        known = ~(np.isnan(cur) & np.isnan(flow))
        with np.errstate(invalid="ignore"):
            running = (cur > self.running_a.take(slots, 0)) | (flow > RUNNING_FLOW_LPS)
        prev = self.state.take(slots, 0)
        st = np.where(known, running.astype(np.int64), np.maximum(prev, 0))
        return st

    def note(self, slots: np.ndarray, st: np.ndarray) -> None:
        """Record the readings' states once per reading (the stage that owns the states calls this)."""
        if self.n == 1:
            return
        prev = self.state.take(slots, 0)
        changed = (prev >= 0) & (prev != st)
        self.since[slots] = np.where(changed, 0, np.minimum(self.since.take(slots, 0) + 1, SETTLE_READINGS))
        self.state[slots] = st

    def settled(self, slots: np.ndarray) -> np.ndarray:
        if self.n == 1:
            return np.ones(len(slots), dtype=bool)
        return self.since.take(slots, 0) >= SETTLE_READINGS

    def label(self, state: int) -> str:
        return self.labels[state] if self.n > 1 else ""
