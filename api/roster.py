"""The duty roster over HTTP: read it, replace it, change one person, and who is on duty now.

The roster is notify's (`firewatch.notify`), kept in the SQL store, so the api and every
alerting worker read and write the same roster.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel

from firewatch import notify
from firewatch.api.auth import RANK, Admin, Viewer
from firewatch.api.context import Ctx
from firewatch.api.errors import ApiError, not_found
from firewatch.contract.db import now_ms
from firewatch.notify import PersonIn, RosterIn

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
    roster = await notify.get_roster(c.store)
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
    await notify.put_roster(c.store, body, who.name)
    return body


@router.get("/on-duty", response_model=OnDuty, summary="Who is on duty in each group now")
async def get_on_duty(c: Ctx, _: Viewer) -> OnDuty:
    duty = await notify.duty_at(c.store, now_ms(), notify.notify_config(c.settings).zone)
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
    await notify.put_person(c.store, body, who.name)
    return body


@router.delete("/people/{person_id}", status_code=204, summary="Remove a person (and their shifts)")
async def delete_person(person_id: PersonPath, c: Ctx, who: Admin) -> Response:
    if not await notify.delete_person(c.store, person_id, who.name):
        raise not_found(f"person {person_id}")
    return Response(status_code=204)
