"""Settings of unit scores and random inspections (`[supervision.scores]`, `[supervision.inspections]`).

Every weight and limit is written here once with its default and why; `SupervisionConfig`
carries them, so a bad value is refused with its key named (`supervision.scores.weights.offline`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Weights(_Model):
    """Points of 100 each indicator can cost; they must add up to 100.

    Defaults follow what the center's evidence says about a unit's care for its systems: a
    broken panel or dead water supply (integrity, repair, pressure) weighs most, then the
    control room's diligence (duty checks), then nuisance and neglect (false alarms, shielding,
    offline), then how the unit treats hazard orders.
    """

    integrity: float = Field(20, ge=0, le=100)
    """完好率: share of device-time without an open fault."""
    repair: float = Field(10, ge=0, le=100)
    """Faults repaired within `repair_good_h`; the worst repair time counts."""
    false_alarms: float = Field(10, ge=0, le=100)
    """Days with more false alarms than `[supervision.hazards] false_alarms_per_day`."""
    offline: float = Field(10, ge=0, le=100)
    shielded: float = Field(10, ge=0, le=100)
    pressure: float = Field(15, ge=0, le=100)
    """Hydrant and pump readings at or above their floor (alerting's pressure_low warning level)."""
    duty_checks: float = Field(10, ge=0, le=100)
    """Duty checks (查岗) answered."""
    hazards: float = Field(15, ge=0, le=100)
    """Hazard orders closed on time rather than left overdue."""

    @model_validator(mode="after")
    def _sum_100(self) -> Weights:
        total = sum(self.model_dump().values())
        if abs(total - 100) > 1e-6:
            raise ValueError(f"the weights add up to {total:g}, not 100")
        return self


class ScoreSettings(_Model):
    weights: Weights = Weights()
    green_min: float = Field(85, ge=0, le=100)
    """A score at or above this is green (绿)."""
    yellow_min: float = Field(60, ge=0, le=100)
    """At or above this (and below green_min) yellow (黄); below it red (红)."""
    fire_response_s: float = Field(180, gt=0, le=86_400)
    """A fire alarm not acknowledged within this long is a missed fire response (GB 25506 asks the
    control room to confirm a fire alarm within 3 minutes): the unit is red whatever its sum."""
    integrity_bad: float = Field(0.8, ge=0, lt=1)
    """A facility integrity rate (完好率) this low or lower costs the whole integrity weight."""
    pressure_bad: float = Field(0.9, ge=0, lt=1)
    """A share of pressure readings at or above the floor this low costs the whole pressure weight."""
    repair_good_h: float = Field(24, gt=0, le=24 * 90)
    """Repairs within this long cost nothing (GB 50440: faults repaired within a day)."""
    repair_bad_h: float = Field(72, gt=0, le=24 * 365)
    """A worst repair this long or longer (or a fault still open) costs the whole repair weight."""
    offline_bad: float = Field(0.10, gt=0, le=1)
    """An offline share of device-time this high costs the whole offline weight."""
    shielded_bad_h: float = Field(72, gt=0, le=24 * 31)
    """Point-hours shielded that cost the whole shielded weight."""
    false_alarm_bad_days: int = Field(5, ge=1, le=31)
    """Days above the false-alarm limit that cost the whole false-alarm weight."""
    trend_step: float = Field(3, ge=0, le=100)
    """A change of at least this many points from the previous month is a trend up or down."""

    @model_validator(mode="after")
    def _ordered(self) -> ScoreSettings:
        if self.yellow_min > self.green_min:
            raise ValueError(f"yellow_min ({self.yellow_min:g}) is above green_min ({self.green_min:g})")
        if self.repair_bad_h <= self.repair_good_h:
            raise ValueError("repair_bad_h must be above repair_good_h")
        return self


class InspectionSettings(_Model):
    red_always: bool = True
    """Red units are always drawn (重点监管) before the weighted draw of the rest; false: red is
    only weighted (`weight_red`)."""
    weight_red: float = Field(6, gt=0, le=1000)
    weight_yellow: float = Field(3, gt=0, le=1000)
    weight_green: float = Field(1, gt=0, le=1000)
    """Units in good standing are drawn less often, never not at all."""
    exclude_days: float = Field(90, ge=0, le=3650)
    """Units inspected within this many days before the draw are not candidates."""
