"""Who sees which units: the center's roles see every unit, a `unit` or `maintenance` token its own.

Every supervision endpoint takes a `Seen` and filters by `Scope.units`; a unit that is
out of scope answers 404, as if it did not exist, so a token learns nothing about
other units (not even which ids are taken).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from sqlalchemy import select

from firewatch.api.auth import RANK, SCOPED_ROLES, Member, Principal
from firewatch.api.context import Ctx
from firewatch.api.errors import ApiError
from firewatch.supervision import ASSIGNEE, CENTER, TokenScope, Unit


@dataclass(frozen=True, slots=True)
class Scope:
    who: Principal
    units: frozenset[int] | None
    """None: every unit (the center); otherwise the only units this token may see."""
    order_id: int | None = None
    """A one-tap link's holder: this hazard order alone, and no unit (api/hazard_link.py)."""

    @property
    def center(self) -> bool:
        return self.who.role not in SCOPED_ROLES

    def sees(self, unit_id: int | None) -> bool:
        return self.units is None or (unit_id is not None and unit_id in self.units)

    def sees_order(self, order_id: int, unit_id: int | None) -> bool:
        return self.sees(unit_id) or order_id == self.order_id

    def acting_as(self) -> str:
        """CENTER for an operator or admin, ASSIGNEE for a unit or maintenance token; 403 for a viewer."""
        if not self.center:
            return ASSIGNEE
        if RANK[self.who.role] >= RANK["operator"]:
            return CENTER
        raise ApiError(403, f"this needs the operator role; the token {self.who.name!r} is {self.who.role}")


async def _scope(c: Ctx, who: Member) -> Scope:
    if who.order_id is not None:
        return Scope(who, frozenset(), who.order_id)
    if who.role not in SCOPED_ROLES:
        return Scope(who, None)
    async with c.store.session() as s:
        row = await s.get(TokenScope, who.token_id)
        if row is None:
            return Scope(who, frozenset())
        if who.role == "unit":
            return Scope(who, frozenset([row.unit_id]) if row.unit_id else frozenset())
        ids = (await s.scalars(select(Unit.id).where(Unit.company_id == row.company_id))).all()
        return Scope(who, frozenset(ids) if row.company_id else frozenset())


Seen = Annotated[Scope, Depends(_scope)]
