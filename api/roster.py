"""The duty roster over HTTP: read it, replace it, change one person, and who is on duty now.

The models and storage are alerting's (`notify.roster`), so the api and every
alerting worker read and write the same roster.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel
from sqlalchemy import delete

from firewatch.api.auth import RANK, Admin, Viewer
from firewatch.api.context import Ctx
from firewatch.api.errors import ApiError, not_found
from firewatch.contract.db import now_ms
from firewatch.notify.config import notify_config
from firewatch.notify.roster import (
    Person,
    PersonIn,
    RosterIn,
    export_roster,
    on_duty,
    replace_roster,
)

router = APIRouter(prefix="/api/v1/roster", tags=["roster"])
PersonPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class OnDutyPerson(BaseModel):
    id: str
    name: str


class OnDuty(BaseModel):
    at_ms: int
    groups: dict[str, list[OnDutyPerson]]


@router.get(
    "",
    response_model=RosterIn,
    summary="The whole duty roster: people, groups, shifts (channel addresses for admins only)",
)
async def get_roster(c: Ctx, who: Viewer) -> RosterIn:
    async with c.store.session() as s:
        roster = await export_roster(s)
    if RANK[who.role] < RANK["admin"]:
        for person in roster.people:
            person.channels = [redacted(ch) for ch in person.channels]
    return roster


def redacted(channel: str) -> str:
    """What a non-admin sees of a channel: its type, never the number, address or token in its URL."""
    scheme, sep, _ = channel.partition(":")
    return f"{scheme}://…" if sep else "…"


@router.put(
    "", response_model=RosterIn, summary="Replace the duty roster (references are checked first)"
)
async def put_roster(body: RosterIn, c: Ctx, who: Admin) -> RosterIn:
    async with c.store.session() as s, s.begin():
        await replace_roster(s, body)
        await c.store.audit(
            s,
            who.name,
            "roster_replace",
            "roster",
            people=len(body.people),
            groups=len(body.groups),
            shifts=len(body.shifts),
        )
    return body


@router.get("/on-duty", response_model=OnDuty, summary="Who is on duty in each group now")
async def get_on_duty(c: Ctx, _: Viewer) -> OnDuty:
    zone = notify_config(c.settings).zone
    async with c.store.session() as s:
        duty = await on_duty(s, now_ms(), zone)
    return OnDuty(
        at_ms=duty.at_ms,
        groups={
            g: [OnDutyPerson(id=p.id, name=p.name) for p in people]
            for g, people in duty.groups.items()
        },
    )


@router.put(
    "/people/{person_id}",
    response_model=PersonIn,
    summary="Add or change one person (name, channels)",
)
async def put_person(person_id: PersonPath, body: PersonIn, c: Ctx, who: Admin) -> PersonIn:
    if body.id != person_id:
        raise ApiError(422, f"body id {body.id!r} differs from the path's {person_id!r}")
    async with c.store.session() as s, s.begin():
        row = await s.get(Person, person_id)
        if row is None:
            s.add(
                Person(id=body.id, name=body.name, channels=body.channels, language=body.language)
            )
        else:
            row.name, row.channels, row.language = body.name, body.channels, body.language
        await c.store.audit(s, who.name, "roster_person", f"person:{person_id}", name=body.name)
    return body


@router.delete("/people/{person_id}", status_code=204, summary="Remove a person (and their shifts)")
async def delete_person(person_id: PersonPath, c: Ctx, who: Admin) -> Response:
    async with c.store.session() as s, s.begin():
        done = await s.execute(delete(Person).where(Person.id == person_id))
        if done.rowcount == 0:
            raise not_found(f"person {person_id}")
        await c.store.audit(s, who.name, "roster_person_delete", f"person:{person_id}")
    return Response(status_code=204)
