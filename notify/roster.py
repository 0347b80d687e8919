"""The duty roster: people and their channels, groups, shifts, and who is on duty now.

Kept in the SQL store so the api can edit it and every alerting worker sees the
same roster; a YAML file is the way an installer writes it the first time.
Shifts are wall-clock times in the center's time zone (Asia/Shanghai unless set),
because that is how a duty schedule is written on paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import JSON, ForeignKey, Integer, String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from firewatch.contract.db import Base, Store

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_ID = r"^[A-Za-z0-9_.-]{1,64}$"


class Person(Base):
    __tablename__ = "roster_people"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Apprise URLs (`mailto://`, `ntfy://`, `dingtalk://`...), `webhook+https://...` or `gateway://NAME/TO`."""
    language: Mapped[str] = mapped_column(String(8), default="")
    """Empty: the `[notify] language` setting."""


class DutyGroup(Base):
    __tablename__ = "roster_groups"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")


class GroupMember(Base):
    __tablename__ = "roster_members"
    group_id: Mapped[str] = mapped_column(ForeignKey("roster_groups.id", ondelete="CASCADE"), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("roster_people.id", ondelete="CASCADE"), primary_key=True)


class Shift(Base):
    """A person on duty for a group on some weekdays between two local times (end <= start runs past midnight)."""

    __tablename__ = "roster_shifts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_id: Mapped[str] = mapped_column(ForeignKey("roster_groups.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("roster_people.id", ondelete="CASCADE"))
    days: Mapped[str] = mapped_column(String(32))
    """Comma-separated `mon`..`sun`: the days the shift starts on."""
    start: Mapped[str] = mapped_column(String(5))
    end: Mapped[str] = mapped_column(String(5))


class RosterError(ValueError):
    """The roster file or body is wrong; the message names the entry."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PersonIn(_In):
    id: str = Field(pattern=_ID)
    name: str = ""
    channels: list[str] = []
    language: str = Field("", pattern=r"^(|zh|en)$")


class GroupIn(_In):
    id: str = Field(pattern=_ID)
    name: str = ""
    members: list[str] = []


class ShiftIn(_In):
    group: str
    person: str
    days: list[str] = list(DAYS)
    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, days: Any) -> list[str]:
        if not isinstance(days, (str, list, tuple)):
            raise ValueError(  # noqa: TRY004 (pydantic reports a ValueError as the setting's error)
                "days is a list of weekdays (mon, tue, ...) or a comma-separated string")
        items = [str(d).strip().lower() for d in (days.split(",") if isinstance(days, str) else days)]
        bad = [d for d in items if d not in DAYS and d not in DAY_NAMES]
        if bad:
            raise ValueError(f"unknown day {bad}; use {list(DAYS)}")
        return [d[:3] for d in items]


class RosterIn(_In):
    """The whole roster as YAML or the api writes it; references are checked before anything is stored."""

    people: list[PersonIn] = []
    groups: list[GroupIn] = []
    shifts: list[ShiftIn] = []

    @model_validator(mode="after")
    def _references(self) -> RosterIn:
        people = {p.id for p in self.people}
        groups = {g.id for g in self.groups}
        for i, g in enumerate(self.groups):
            for m in g.members:
                if m not in people:
                    raise ValueError(f"groups[{i}] ({g.id}): member {m!r} is not in people")
        for i, s in enumerate(self.shifts):
            if s.person not in people:
                raise ValueError(f"shifts[{i}]: person {s.person!r} is not in people")
            if s.group not in groups:
                raise ValueError(f"shifts[{i}]: group {s.group!r} is not in groups")
        return self


def parse_roster(data: Any) -> RosterIn:
    try:
        return RosterIn.model_validate(data or {})
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            key = ".".join(str(p) for p in e["loc"]) or "roster"
            lines.append(f"{key}: {e['msg']}")
        raise RosterError("bad roster: " + "; ".join(lines)) from None


async def replace_roster(session: AsyncSession, roster: RosterIn) -> None:
    """Put `roster` in place of the stored one, inside the caller's transaction."""
    for table in (Shift, GroupMember, DutyGroup, Person):
        await session.execute(delete(table))
    session.add_all(Person(id=p.id, name=p.name, channels=p.channels, language=p.language) for p in roster.people)
    await session.flush()
    session.add_all(DutyGroup(id=g.id, name=g.name) for g in roster.groups)
    await session.flush()
    session.add_all(GroupMember(group_id=g.id, person_id=m) for g in roster.groups for m in g.members)
    session.add_all(
        Shift(group_id=s.group, person_id=s.person, days=",".join(s.days), start=s.start, end=s.end)
        for s in roster.shifts
    )


async def export_roster(session: AsyncSession) -> RosterIn:
    people = (await session.scalars(select(Person).order_by(Person.id))).all()
    groups = (await session.scalars(select(DutyGroup).order_by(DutyGroup.id))).all()
    members = (await session.scalars(select(GroupMember))).all()
    shifts = (await session.scalars(select(Shift).order_by(Shift.id))).all()
    return RosterIn(
        people=[PersonIn(id=p.id, name=p.name, channels=p.channels, language=p.language) for p in people],
        groups=[
            GroupIn(id=g.id, name=g.name, members=[m.person_id for m in members if m.group_id == g.id])
            for g in groups
        ],
        shifts=[
            ShiftIn(group=s.group_id, person=s.person_id, days=s.days.split(","), start=s.start, end=s.end)
            for s in shifts
        ],
    )


async def load_yaml(store: Store, source: Path | str, actor: str = "cli") -> RosterIn:
    """Replace the roster with a YAML file (a path) or YAML text, and audit who did it."""
    text = Path(source).read_text(encoding="utf-8") if isinstance(source, Path) else source
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RosterError(f"bad roster YAML: {exc}") from None
    roster = parse_roster(data)
    async with store.session() as s, s.begin():
        await replace_roster(s, roster)
        await store.audit(
            s, actor, "roster_load", "roster", people=len(roster.people), groups=len(roster.groups),
            shifts=len(roster.shifts),
        )
    return roster


def _hm(text: str) -> time:
    if text == "24:00":
        return time.max
    h, m = text.split(":")
    return time(int(h), int(m))


def _covers(shift: Shift, local: datetime) -> bool:
    days = shift.days.split(",")
    start, end = _hm(shift.start), _hm(shift.end)
    t = local.time()
    today = DAYS[local.weekday()]
    if start < end:
        return today in days and start <= t < end
    yesterday = DAYS[(local.weekday() - 1) % 7]
    return (today in days and t >= start) or (yesterday in days and t < end)


@dataclass(frozen=True, slots=True)
class Duty:
    """Who is on duty in each group at one moment."""

    at_ms: int
    groups: dict[str, list[Person]]


async def on_duty(session: AsyncSession, now_ms: int, zone: ZoneInfo) -> Duty:
    """Per group, the people whose shift covers `now_ms`; a group without shifts is always on duty."""
    local = datetime.fromtimestamp(now_ms / 1000, zone)
    people = {p.id: p for p in (await session.scalars(select(Person))).all()}
    groups = (await session.scalars(select(DutyGroup).order_by(DutyGroup.id))).all()
    members = (await session.scalars(select(GroupMember))).all()
    shifts = (await session.scalars(select(Shift).order_by(Shift.id))).all()
    out: dict[str, list[Person]] = {}
    for g in groups:
        own = [s for s in shifts if s.group_id == g.id]
        if own:
            ids = [s.person_id for s in own if _covers(s, local)]
        else:
            ids = [m.person_id for m in members if m.group_id == g.id]
        out[g.id] = [people[i] for i in dict.fromkeys(ids)]
    return Duty(now_ms, out)


async def next_handover(session: AsyncSession, now_ms: int, zone: ZoneInfo) -> Duty | None:
    """The next moment within a week when someone's shift starts or ends, with who is on duty then."""
    shifts = (await session.scalars(select(Shift))).all()
    local = datetime.fromtimestamp(now_ms / 1000, zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    edges: list[int] = []
    for day in range(-1, 8):
        base = midnight + timedelta(days=day)
        for s in shifts:
            for hm in (s.start, s.end):
                h, m = (int(x) for x in hm.split(":"))
                at = datetime(base.year, base.month, base.day, tzinfo=zone) + timedelta(hours=h, minutes=m)
                edges.append(int(at.timestamp() * 1000))
    current = await on_duty(session, now_ms, zone)
    for at in sorted(e for e in set(edges) if e > now_ms):
        then = await on_duty(session, at, zone)
        if _ids(then) != _ids(current):
            return then
    return None


def _ids(duty: Duty) -> dict[str, list[str]]:
    return {g: [p.id for p in ps] for g, ps in duty.groups.items()}


async def resolve_targets(
    session: AsyncSession, targets: list[str], now_ms: int, zone: ZoneInfo, duty: Duty | None = None,
    *, always_on: bool = False,
) -> list[Person]:
    """The people a step's `group:`/`person:` targets mean right now, each once.

    `duty` may be a moment-old answer of `on_duty`, which saves the store a round of queries.
    A group with nobody on duty at this moment (a gap in its shifts) means all its members:
    waking someone off duty beats paging no one. `always_on` (the fallback) means every
    member of each group whatever its shifts say.
    """
    found: dict[str, Person] = {}
    for target in targets:
        prefix, _, name = target.partition(":")
        if prefix == "person":
            p = await session.get(Person, name)
            if p is not None:
                found.setdefault(p.id, p)
        elif prefix == "group":
            on: list[Person] = []
            if not always_on:
                duty = duty or await on_duty(session, now_ms, zone)
                on = duty.groups.get(name, [])
            people = on or (await session.scalars(
                select(Person).join(GroupMember, GroupMember.person_id == Person.id)
                .where(GroupMember.group_id == name).order_by(Person.id)
            )).all()
            for p in people:
                found.setdefault(p.id, p)
    return list(found.values())


async def load_file(store_url: str, path: Path) -> RosterIn:
    """`firewatch roster load`: open the store, replace the roster, close."""
    from firewatch.contract.db import open_store

    store = await open_store(store_url)
    try:
        return await load_yaml(store, path)
    finally:
        await store.aclose()


async def duty_now(store_url: str, now_ms: int, zone: ZoneInfo) -> tuple[Duty, Duty | None]:
    """`firewatch roster now`: who is on duty, and the next handover."""
    from firewatch.contract.db import open_store

    store = await open_store(store_url)
    try:
        async with store.session() as s:
            return await on_duty(s, now_ms, zone), await next_handover(s, now_ms, zone)
    finally:
        await store.aclose()


async def dump_yaml(store_url: str) -> str:
    """`firewatch roster show`: the stored roster as YAML that `roster load` takes back."""
    from firewatch.contract.db import open_store

    store = await open_store(store_url)
    try:
        async with store.session() as s:
            roster = await export_roster(s)
    finally:
        await store.aclose()
    return yaml.safe_dump(roster.model_dump(), allow_unicode=True, sort_keys=False)


async def person(store_url: str, person_id: str) -> Person | None:
    """`firewatch roster test`: one person and their channels."""
    from firewatch.contract.db import open_store

    store = await open_store(store_url)
    try:
        async with store.session() as s:
            return await s.get(Person, person_id)
    finally:
        await store.aclose()


async def get_roster(store: Store) -> RosterIn:
    """The stored roster (the api's `GET /roster`)."""
    async with store.session() as s:
        return await export_roster(s)


async def put_roster(store: Store, roster: RosterIn, actor: str) -> None:
    """Replace the stored roster and audit who did it, in one transaction."""
    async with store.session() as s, s.begin():
        await replace_roster(s, roster)
        await store.audit(s, actor, "roster_replace", "roster", people=len(roster.people),
                          groups=len(roster.groups), shifts=len(roster.shifts))


async def put_person(store: Store, body: PersonIn, actor: str) -> None:
    """Add a person or change one's name, channels and language; audited."""
    async with store.session() as s, s.begin():
        row = await s.get(Person, body.id)
        if row is None:
            s.add(Person(id=body.id, name=body.name, channels=body.channels, language=body.language))
        else:
            row.name, row.channels, row.language = body.name, body.channels, body.language
        await store.audit(s, actor, "roster_person", f"person:{body.id}", name=body.name)


async def delete_person(store: Store, person_id: str, actor: str) -> bool:
    """Remove a person and their shifts and memberships; False when there was none."""
    async with store.session() as s, s.begin():
        done = await s.execute(delete(Person).where(Person.id == person_id))
        if done.rowcount == 0:
            return False
        await store.audit(s, actor, "roster_person_delete", f"person:{person_id}")
    return True


async def duty_at(store: Store, now_ms: int, zone: ZoneInfo) -> Duty:
    """Who is on duty in each group at `now_ms`."""
    async with store.session() as s:
        return await on_duty(s, now_ms, zone)


async def names(store: Store, *ids: str) -> dict[str, str]:
    """Roster names for person ids; an id not in the roster (a console user) stands for itself."""
    async with store.session() as s:
        found = dict((await s.execute(select(Person.id, Person.name).where(Person.id.in_(set(ids))))).all())
    return {i: found.get(i) or i for i in ids}


async def language_of(store: Store, person_id: str) -> str:
    """The person's own language, empty when unset or not in the roster."""
    async with store.session() as s:
        p = await s.get(Person, person_id)
    return p.language if p is not None else ""
