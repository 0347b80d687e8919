"""A unit's fire-safety score (信用积分) from its indicators: 0–100, a breakdown, reasons in words, a grade, a trend.

Each indicator costs up to its weight (`[supervision.scores.weights]`, adding up to 100),
linearly between "costs nothing" and "costs all" (the limits in `ScoreSettings`); the score is
100 minus what was lost. Grades (三色): green at or above `green_min`, yellow at or above
`yellow_min`, red below — and red whatever the sum for a missed fire response or a major
hazard order overdue. A month's score is computed as of the month's end and stored with the
version of its inputs (a hash of the indicators and the settings used), so recomputing a past
month later proves it unchanged, or shows that its records changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Self

import orjson
from sqlalchemy import JSON, Float, Integer, String, UniqueConstraint, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from firewatch.contract.db import Base, Store, now_ms
from firewatch.contract.influx import Influx
from firewatch.supervision.config import SupervisionConfig
from firewatch.supervision.indicators import (
    Indicators,
    Period,
    PressureFloor,
    compute,
    kind_floor,
    previous_month,
)
from firewatch.supervision.score_settings import ScoreSettings


class Labelled(StrEnum):
    """A value stored and served in English that reports print in Chinese: each member carries its label (`.zh`)."""

    zh: str

    def __new__(cls, value: str, zh: str) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.zh = zh
        return member


class Grade(Labelled):
    GREEN = "green", "绿"
    YELLOW = "yellow", "黄"
    RED = "red", "红"


class Trend(Labelled):
    UP = "up", "上升"
    DOWN = "down", "下降"
    FLAT = "flat", "持平"
    NEW = "new", "首次评分"
    """No score for the previous month."""


@dataclass(frozen=True, slots=True)
class Reason:
    indicator: str
    points: float
    """Points lost (0 for a reason that is an override)."""
    zh: str
    en: str


def _share(x: float, bad: float) -> float:
    """0 at none, 1 at `bad` or worse."""
    return min(max(x / bad, 0.0), 1.0)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


Loss = Callable[[Indicators, ScoreSettings, int], tuple[float, str, str] | None]


def _integrity(x: Indicators, c: ScoreSettings, _fa: int) -> tuple[float, str, str] | None:
    lost = _share(1 - x.integrity_rate, 1 - c.integrity_bad)
    return lost, f"设施完好率 {_pct(x.integrity_rate)}", f"facility integrity {_pct(x.integrity_rate)}"


def _repair(x: Indicators, c: ScoreSettings, _fa: int) -> tuple[float, str, str] | None:
    if x.repair_worst_h is None:
        return None
    lost = _share(x.repair_worst_h - c.repair_good_h, c.repair_bad_h - c.repair_good_h)
    still = f"，{x.faults_open} 个至月末仍未修复" if x.faults_open else ""
    still_en = f", {x.faults_open} still unrepaired at the end" if x.faults_open else ""
    return (lost, f"故障 {x.faults} 次，最长修复 {x.repair_worst_h:.1f} 小时{still}",
            f"{x.faults} faults, worst repair {x.repair_worst_h:.1f} h{still_en}")


def _false_alarms(x: Indicators, c: ScoreSettings, limit: int) -> tuple[float, str, str] | None:
    lost = _share(x.false_alarm_days_over, c.false_alarm_bad_days)
    return (lost, f"误报 {x.false_alarms} 次，{x.false_alarm_days_over} 天超过每日 {limit} 次",
            f"{x.false_alarms} false alarms, {x.false_alarm_days_over} days above {limit} a day")


def _offline(x: Indicators, c: ScoreSettings, _fa: int) -> tuple[float, str, str] | None:
    return _share(x.offline_rate, c.offline_bad), f"离线率 {_pct(x.offline_rate)}", f"offline {_pct(x.offline_rate)}"


def _shielded(x: Indicators, c: ScoreSettings, _fa: int) -> tuple[float, str, str] | None:
    return (_share(x.shielded_h, c.shielded_bad_h), f"点位屏蔽 {x.shielded_h:.1f} 点·小时",
            f"points shielded {x.shielded_h:.1f} point-hours")


def _pressure(x: Indicators, c: ScoreSettings, _fa: int) -> tuple[float, str, str] | None:
    if x.pressure_ok_rate is None:
        return None
    lost = _share(1 - x.pressure_ok_rate, 1 - c.pressure_bad)
    return (lost, f"水压达标率 {_pct(x.pressure_ok_rate)}（{x.pressure_readings} 次读数）",
            f"water pressure at or above its floor {_pct(x.pressure_ok_rate)} of {x.pressure_readings} readings")


def _duty(x: Indicators, _c: ScoreSettings, _fa: int) -> tuple[float, str, str] | None:
    if x.duty_answer_rate is None:
        return None
    return (1 - x.duty_answer_rate, f"查岗应答 {x.duty_answered}/{x.duty_checks}",
            f"duty checks answered {x.duty_answered} of {x.duty_checks}")


def _hazards(x: Indicators, _c: ScoreSettings, _fa: int) -> tuple[float, str, str] | None:
    judged = x.hazards_closed + x.hazards_overdue
    if not judged:
        return None
    late = x.hazards_closed - x.hazards_closed_on_time
    return ((x.hazards_overdue + late) / judged,
            f"隐患整改：按期关闭 {x.hazards_closed_on_time}，逾期关闭 {late}，逾期未改 {x.hazards_overdue}",
            (f"hazard orders: {x.hazards_closed_on_time} closed on time, {late} closed late, "
             f"{x.hazards_overdue} overdue"))


LOSSES: dict[str, Loss] = {
    "integrity": _integrity, "repair": _repair, "false_alarms": _false_alarms, "offline": _offline,
    "shielded": _shielded, "pressure": _pressure, "duty_checks": _duty, "hazards": _hazards,
}
"""One function per weight in `Weights`: the share of that weight the indicators cost, and why in words."""


@dataclass(frozen=True, slots=True)
class Score:
    unit_id: int
    period: str
    score: float
    grade: Grade
    breakdown: dict[str, float]
    """Points kept per indicator (each at most its weight; the sum is the score)."""
    reasons: list[Reason]
    """What cost points, most first; overrides (red whatever the sum) come first."""
    indicators: dict[str, Any]
    inputs_version: str
    trend: Trend = Trend.NEW
    previous: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"unit_id": self.unit_id, "period": self.period, "score": self.score, "grade": self.grade.value,
                "grade_zh": self.grade.zh, "trend": self.trend.value, "previous": self.previous,
                "breakdown": self.breakdown, "reasons": [asdict(r) for r in self.reasons],
                "indicators": self.indicators, "inputs_version": self.inputs_version}


def score(x: Indicators, config: SupervisionConfig, period: str) -> Score:
    """The score of one unit's indicators, with its reasons and grade (no trend: `with_trend` adds it)."""
    c = config.scores
    weights = c.weights.model_dump()
    limit = config.hazards.false_alarms_per_day
    breakdown: dict[str, float] = {}
    reasons: list[Reason] = []
    for name, loss in LOSSES.items():
        said = loss(x, c, limit)
        lost = 0.0 if said is None else round(said[0] * weights[name], 1)
        breakdown[name] = round(weights[name] - lost, 1)
        if said is not None and lost > 0:
            reasons.append(Reason(name, lost, f"{said[1]}（扣 {lost:g} 分）", f"{said[2]} (−{lost:g})"))
    reasons.sort(key=lambda r: -r.points)
    total = round(sum(breakdown.values()), 1)
    overrides = []
    if x.missed_fire_responses:
        overrides.append(Reason("missed_fire_responses", 0.0,
                                f"火警 {x.missed_fire_responses} 次未在 {c.fire_response_s:g} 秒内响应，直接评为红色",
                                f"{x.missed_fire_responses} fire alarms not answered within "
                                f"{c.fire_response_s:g} s: red whatever the sum"))
    if x.hazards_major_overdue:
        overrides.append(Reason("hazards_major_overdue", 0.0,
                                f"重大隐患 {x.hazards_major_overdue} 项逾期未整改，直接评为红色",
                                f"{x.hazards_major_overdue} major hazard orders overdue: red whatever the sum"))
    grade = (Grade.RED if overrides or total < c.yellow_min else Grade.YELLOW if total < c.green_min
             else Grade.GREEN)
    inputs = x.as_dict()
    version = hashlib.sha256(orjson.dumps({"indicators": inputs, "scores": c.model_dump(),
                                           "false_alarms_per_day": limit},
                                          option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
    return Score(x.unit_id, period, total, grade, breakdown, overrides + reasons, inputs, version)


def with_trend(s: Score, previous: float | None, config: SupervisionConfig) -> Score:
    if previous is None:
        return s
    step = config.scores.trend_step
    trend = Trend.UP if s.score - previous >= step else Trend.DOWN if previous - s.score >= step else Trend.FLAT
    return Score(s.unit_id, s.period, s.score, s.grade, s.breakdown, s.reasons, s.indicators,
                 s.inputs_version, trend, previous)


class StoredScore(Base):
    """A unit's score for a month as it was computed: the indicators it came from and their version."""

    __tablename__ = "sv_scores"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    unit_id: Mapped[int] = mapped_column(Integer, index=True)
    period: Mapped[str] = mapped_column(String(32), index=True)
    score: Mapped[float] = mapped_column(Float)
    grade: Mapped[str] = mapped_column(String(8), index=True)
    trend: Mapped[str] = mapped_column(String(8))
    previous: Mapped[float | None] = mapped_column(Float, nullable=True)
    breakdown: Mapped[dict[str, Any]] = mapped_column(JSON)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    indicators: Mapped[dict[str, Any]] = mapped_column(JSON)
    inputs_version: Mapped[str] = mapped_column(String(32))
    computed_ms: Mapped[int] = mapped_column(default=now_ms)
    __table_args__ = (UniqueConstraint("unit_id", "period"),)


async def month_scores(
    store: Store, influx: Influx | None, config: SupervisionConfig, period: Period,
    district: str | None = None, unit_ids: Iterable[int] | None = None, keep: bool = True,
    floor: PressureFloor = kind_floor,
) -> list[Score]:
    """Scores of a month's units as of its end, with the trend from the previous month; kept in `sv_scores`."""
    ids = list(unit_ids) if unit_ids is not None else None
    now = await compute(store, influx, config, period, district, ids, floor)
    prev_period = previous_month(period)
    async with store.session() as s:
        kept = (await s.execute(select(StoredScore.unit_id, StoredScore.score, StoredScore.indicators).where(
            StoredScore.period == prev_period.label, StoredScore.unit_id.in_(list(now))))).all()
    # A previous month without records of the unit is no score to compare with (the trend is new),
    # whether it was kept (the monthly job scores every unit) or is computed now.
    previous = {u: x for u, x, indicators in kept if indicators.get("evidence")}
    kept_units = {u for u, *_ in kept}
    missing = [u for u in now if u not in kept_units]
    if missing:
        before = await compute(store, influx, config, prev_period, district, missing, floor)
        previous |= {u: score(x, config, prev_period.label).score for u, x in before.items() if x.evidence}
    out = [with_trend(score(x, config, period.label), previous.get(u), config) for u, x in now.items()]
    if keep:
        await _keep(store, out)
    return out


async def _keep(store: Store, scores: list[Score]) -> None:
    if not scores:
        return
    async with store.session() as s, s.begin():
        await s.execute(delete(StoredScore).where(StoredScore.period == scores[0].period,
                                                  StoredScore.unit_id.in_([x.unit_id for x in scores])))
        s.add_all([StoredScore(unit_id=x.unit_id, period=x.period, score=x.score, grade=x.grade.value,
                               trend=x.trend.value, previous=x.previous, breakdown=x.breakdown,
                               reasons=x.as_dict()["reasons"], indicators=x.indicators,
                               inputs_version=x.inputs_version) for x in scores])
