"""Supervision settings (`[supervision]`): hazard thresholds, deadlines, verification, photos, public reports.

Every hazard threshold is written here once with its default; the rest of the part
reads them from `SupervisionConfig`. Errors name the key, as contract/settings.py does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from firewatch.contract.settings import Settings, SettingsError
from firewatch.supervision.score_settings import InspectionSettings, ScoreSettings


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Thresholds(_Model):
    """When a condition the platform sees becomes a hazard (火灾隐患) rather than an emergency."""

    fault_unrepaired_h: float = Field(24, gt=0, le=24 * 90)
    """A panel fault still open after this long (GB 50440: faults repaired within a day)."""
    shielded_h: float = Field(0, ge=0, le=24 * 90)
    """Hours beyond alerting's `shield_left_on` (which already waits for points shielded 24 h,
    `[alerting.panel.shield_left_on] for_s`) before shielded points (屏蔽) become a hazard."""
    pressure_low_h: float = Field(4, gt=0, le=24 * 90)
    """Hydrant or pump pressure below its floor (alerting's pressure_low level) this long."""
    offline_h: float = Field(24, gt=0, le=24 * 90)
    """A device silent this long."""
    duty_check_missed_h: float = Field(0, ge=0, le=24 * 90)
    """A control room that did not answer the gateway's duty check (查岗) and has not answered one since."""
    false_alarms_per_day: int = Field(5, ge=1, le=1000)
    """More false alarms than this from one device within 24 h (GB 50440: agree a plan with the unit)."""


class Deadlines(_Model):
    """Hours to rectify, by severity; an order past its deadline escalates."""

    major_h: float = Field(24, gt=0, le=24 * 365)
    general_h: float = Field(72, gt=0, le=24 * 365)


class PublicReports(_Model):
    per_phone_per_day: int = Field(5, ge=1, le=1000)
    per_address_per_hour: int = Field(10, ge=1, le=10_000)
    """Per client IP address."""
    total_per_minute: int = Field(60, ge=1, le=100_000)
    """All reporters together: a flood from many addresses is refused too."""
    max_photos: int = Field(3, ge=0, le=20)


class SupervisionConfig(_Model):
    enabled: bool = True
    """The supervisor (opening, escalating) runs inside the api process."""
    clock: Literal["event", "wall"] = "event"
    """event: the newest event time the platform stored, alerts and readings (replays give the same
    orders as live); wall: the machine's clock."""
    interval_s: float = Field(30, ge=0.05, le=3600)
    hazards: Thresholds = Thresholds()
    deadlines: Deadlines = Deadlines()
    verify_clear_h: float = Field(1, ge=0, le=24 * 30)
    """How long the platform's data must show the condition cleared before an order may close."""
    reopen_within_h: float = Field(72, ge=0, le=24 * 365)
    """The condition back within this long after closing reopens the order instead of a new one."""
    photo_dir: Path = Path(".firewatch/photos")
    max_photo_bytes: int = Field(5 * 1024 * 1024, ge=1024, le=50 * 1024 * 1024)
    public: PublicReports = PublicReports()
    link_valid_h: float = Field(7 * 24, gt=0, le=24 * 90)
    """How long a one-tap link in a dispatch opens its order (wall-clock hours from sending)."""
    scores: ScoreSettings = ScoreSettings()
    inspections: InspectionSettings = InspectionSettings()
    monthly_reports: bool = True
    """When the supervisor's clock passes the 1st, the month that ended is scored and its district and unit
    reports written to `report_dir` (one api worker does it; supervision/monthly.py)."""
    report_dir: Path = Path(".firewatch/reports")
    """The monthly reports, one folder per month (`2026-03/unit-12.pdf`, `2026-03/district-510104.pdf`);
    the console's downloads are served from here when the month's report is there."""

    def hold_ms(self, category: str) -> int:
        h = self.hazards
        hours = {"fault_unrepaired": h.fault_unrepaired_h, "shielded": h.shielded_h,
                 "pressure_low": h.pressure_low_h, "offline": h.offline_h,
                 "duty_check": h.duty_check_missed_h}[category]
        return int(hours * 3_600_000)

    def deadline_ms(self, severity: str) -> int:
        return int((self.deadlines.major_h if severity == "major" else self.deadlines.general_h) * 3_600_000)


def load(settings: Settings) -> SupervisionConfig:
    data: dict[str, Any] = settings.supervision
    try:
        return SupervisionConfig(**data)
    except ValidationError as exc:
        lines = ["bad setting in [supervision]:"]
        for e in exc.errors():
            key = ".".join(["supervision", *(str(p) for p in e["loc"])])
            lines.append(f"  {key}: {e['msg']}")
        raise SettingsError("\n".join(lines)) from None
