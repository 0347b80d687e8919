"""What a detector or the correlator says about one fingerprint at one event time.

Detectors emit a Signal only when their verdict changes (a level is crossed,
a heartbeat is missed, a panel point goes into alarm), so the number of
signals is proportional to alert changes, not to readings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from firewatch.contract.db import Severity


@dataclass(slots=True)
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
    metric: str = ""
    value: float | None = None
    threshold: float | None = None
    unit: str = ""
    summary: str = ""
    score: float | None = None
    """Set by correlation on panel fire alarms; None leaves the alert's score alone."""
    probable: bool | None = None
    reasons: list[str] | None = None
    group: str | None = None
    """Fingerprint of the alert this one belongs to (a district water main)."""
    annotate: bool = False
    """True: change score/reasons/group of the open alert only, never open or resolve one."""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.device_id or self.district, self.rule)


def fingerprint(owner: str, rule: str) -> str:
    """`{device_id}:{rule}` or `{district}:{rule}`: one open alert per fingerprint."""
    return f"{owner}:{rule}"
