"""Random inspections (双随机、一公开 with key supervision): draws weighted by grade, recorded so anyone can re-run them.

A draw takes a district's units, leaves out those inspected within `[supervision.inspections]
exclude_days`, weights the rest by their latest grade (red, yellow, green; a unit not yet
scored counts as yellow) and draws with numpy's seeded generator. With `red_always` every red
candidate is taken first and only the remaining places are drawn. The record keeps who, when,
the seed, the settings, every candidate with its weight, the excluded and the result: `replay`
draws again from the record alone and must give the same units, which is what a published
draw is checked with.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from sqlalchemy import JSON, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, mapped_column

from firewatch.contract.db import Base, Store, now_ms
from firewatch.supervision.models import Unit
from firewatch.supervision.score_settings import InspectionSettings
from firewatch.supervision.scores import Grade, StoredScore

DAY_MS = 86_400_000


class InspectionResult(StrEnum):
    PASS = "pass"
    """合格."""
    FAIL = "fail"
    """不合格: hazards found (their orders are linked)."""


class Draw(Base):
    __tablename__ = "sv_draws"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    district: Mapped[str] = mapped_column(String(32), index=True)
    drawn_by: Mapped[str] = mapped_column(String(128))
    drawn_ms: Mapped[int] = mapped_column(default=now_ms)
    seed: Mapped[int] = mapped_column()
    count: Mapped[int] = mapped_column(Integer)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    """`{unit_id, grade, weight}` in unit order: what the generator drew from."""
    excluded: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    """`{unit_id, inspected_ms}`: inspected too recently to be a candidate."""
    result: Mapped[list[int]] = mapped_column(JSON)


class Inspection(Base):
    """One inspection of a unit (drawn or not) and what it found; findings open hazard orders."""

    __tablename__ = "sv_inspections"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    unit_id: Mapped[int] = mapped_column(Integer, index=True)
    draw_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    inspector: Mapped[str] = mapped_column(String(128))
    at_ms: Mapped[int] = mapped_column(index=True)
    result: Mapped[str] = mapped_column(String(16))
    """An `InspectionResult`."""
    findings: Mapped[str] = mapped_column(Text, default="")
    hazard_ids: Mapped[list[int]] = mapped_column(JSON, default=list)


@dataclass(frozen=True, slots=True)
class Candidate:
    unit_id: int
    grade: Grade | None

    def weight(self, s: InspectionSettings) -> float:
        return {Grade.RED: s.weight_red, Grade.GREEN: s.weight_green}.get(self.grade, s.weight_yellow)  # type: ignore[arg-type]


def pick(candidates: list[Candidate], count: int, seed: int, s: InspectionSettings) -> list[int]:
    """The drawn unit ids: a pure function of the candidates (in unit order), the count, the seed and the settings."""
    rng = np.random.default_rng(seed)
    ordered = sorted(candidates, key=lambda c: c.unit_id)
    red = [c for c in ordered if c.grade == Grade.RED] if s.red_always else []
    if len(red) >= count:
        return sorted(int(u) for u in rng.choice([c.unit_id for c in red], size=count, replace=False))
    rest = [c for c in ordered if c not in red]
    n = min(count - len(red), len(rest))
    if n == 0:
        return [c.unit_id for c in red]
    w = np.array([c.weight(s) for c in rest])
    chosen = rng.choice(len(rest), size=n, replace=False, p=w / w.sum())
    return sorted([c.unit_id for c in red] + [rest[i].unit_id for i in chosen])


async def candidates(store: Store, district: str, at_ms: int, s: InspectionSettings
                     ) -> tuple[list[Candidate], list[dict[str, Any]]]:
    """The district's units that may be drawn at `at_ms`, each with its latest grade; and those left out."""
    async with store.session() as ses:
        units = [u for (u,) in await ses.execute(select(Unit.id).where(
            Unit.district == district, Unit.retired_ms.is_(None)).order_by(Unit.id))]
        latest = (select(StoredScore.unit_id, func.max(StoredScore.period).label("period"))
                  .where(StoredScore.unit_id.in_(units), StoredScore.period.not_like("30d-%"))
                  .group_by(StoredScore.unit_id).subquery())
        grades = dict((await ses.execute(select(StoredScore.unit_id, StoredScore.grade).join(
            latest, (latest.c.unit_id == StoredScore.unit_id) & (latest.c.period == StoredScore.period)))).all())
        recent = dict((await ses.execute(select(Inspection.unit_id, func.max(Inspection.at_ms)).where(
            Inspection.unit_id.in_(units), Inspection.at_ms > at_ms - s.exclude_days * DAY_MS,
            Inspection.at_ms <= at_ms).group_by(Inspection.unit_id))).all())
    kept = [Candidate(u, Grade(grades[u]) if u in grades else None) for u in units if u not in recent]
    return kept, [{"unit_id": u, "inspected_ms": t} for u, t in sorted(recent.items())]


async def draw(store: Store, s: InspectionSettings, district: str, count: int, who: str,
               seed: int | None = None, at_ms: int | None = None) -> Draw:
    """Draw `count` units of a district and record the draw; without a seed a random one is chosen and kept."""
    if count < 1:
        raise ValueError("count must be at least 1")
    at = now_ms() if at_ms is None else at_ms
    seed = secrets.randbits(32) if seed is None else seed
    kept, excluded = await candidates(store, district, at, s)
    result = pick(kept, count, seed, s)
    row = Draw(district=district, drawn_by=who, drawn_ms=at, seed=seed, count=count,
               settings=s.model_dump(), excluded=excluded, result=result,
               candidates=[{"unit_id": c.unit_id, "grade": c.grade.value if c.grade else None,
                            "weight": c.weight(s)} for c in kept])
    async with store.session() as ses, ses.begin():
        ses.add(row)
    return row


def replay(row: Draw) -> list[int]:
    """Draw again from the record alone (its candidates, count, seed and settings)."""
    s = InspectionSettings(**row.settings)
    kept = [Candidate(c["unit_id"], Grade(c["grade"]) if c["grade"] else None) for c in row.candidates]
    return pick(kept, row.count, row.seed, s)
