"""The values the alerting stages hand each other: detection's findings, correlation's decisions.

Detectors emit a Signal only when their verdict changes (a level is crossed,
a heartbeat is missed, a panel point goes into alarm), so the number of
signals is proportional to alert changes, not to readings. A panel fire alarm's
signal carries a `FireIncident`: a snapshot of what the panel reported, where,
and the evidence against it, taken when the signal was made, so correlation
ranks what detection saw at that event time and holds no detector state.
Correlation answers each signal with a `Decision` (its score, reasons and group),
which is what the lifecycle applies.
"""

from __future__ import annotations

from dataclasses import dataclass

from firewatch.contract.db import Severity

Point = tuple[int | None, int | None]
"""A panel's (loop, point)."""


@dataclass(frozen=True, slots=True)
class PointAlarm:
    point: Point
    zone: str
    component: str
    ts_ms: int


@dataclass(frozen=True, slots=True)
class FireIncident:
    """One panel fire alarm from its first point so far: what correlation ranks."""

    device_id: str
    district: str
    site: str
    started_ms: int
    alarms: tuple[PointAlarm, ...]
    linkage: tuple[tuple[str, int], ...]
    """Linkage `start` / `feedback` events with their times."""
    reset_ms: int | None
    quick_resets: tuple[tuple[Point, tuple[int, ...]], ...]
    """Evidence against it: when each of its points was reset soon after an alarm before."""

    def false_alarms(self, point: Point, since_ms: int) -> int:
        return sum(1 for p, times in self.quick_resets if p == point for t in times if t >= since_ms)


@dataclass(frozen=True, slots=True)
class Signal:
    rule: str
    device_id: str
    """Empty for a district-wide alert (a water main)."""
    district: str
    ts_ms: int
    """Event time of the reading or event that changed the verdict."""
    severity: Severity | None
    """None: the condition has cleared; the lifecycle resolves the alert."""
    kind: str = ""
    site: str = ""
    zone: str = ""
    loop: int | None = None
    """A panel event's loop and point (回路、点位), kept on the alert it opens."""
    point: int | None = None
    metric: str = ""
    value: float | None = None
    threshold: float | None = None
    unit: str = ""
    summary: str = ""
    annotate: bool = False
    """True: change score/reasons/group of the open alert only, never open or resolve one."""
    incident: FireIncident | None = None
    """A panel fire alarm's incident as detection saw it at `ts_ms`."""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.device_id or self.district, self.rule)


@dataclass(frozen=True, slots=True)
class Decision:
    """What correlation tells the lifecycle about one signal: rank and group it, or leave it as it is."""

    signal: Signal
    score: float | None = None
    """Set on panel fire alarms; None leaves the alert's score alone."""
    probable: bool | None = None
    reasons: tuple[str, ...] | None = None
    group: str | None = None
    """Fingerprint of the alert this one belongs to (a district water main)."""


def fingerprint(owner: str, rule: str) -> str:
    """`{device_id}:{rule}` or `{district}:{rule}`: one open alert per fingerprint."""
    return f"{owner}:{rule}"
