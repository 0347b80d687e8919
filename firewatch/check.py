"""The settings checked as a whole: every part's section, and the names one part takes from another.

Each part validates its own section when it starts, so a typo in `[notify]` used to
surface only when a fire needed paging. `firewatch config --check` and `firewatch up`
run every part's validation at once, before anything starts, and also check what no
single part can: that a route's `group:`/`person:` targets exist in the stored roster
(where there is one) and its `channel:` targets in `[notify] channels`, the fallbacks' too.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy.engine import make_url

from firewatch.alerting.config import load as load_alerting
from firewatch.contract.db import Store
from firewatch.contract.settings import Settings, SettingsError
from firewatch.notify import NotifyConfig, RosterIn, get_roster, notify_config


def problems(settings: Settings) -> list[str]:
    """Every problem found, each naming its key; empty when the settings are sound."""
    out: list[str] = []
    try:
        load_alerting(settings.alerting)
    except SettingsError as exc:
        out.append(str(exc))
    # Any secret will do for checking: an empty one would make notify write a key to the data folder.
    unsigned = settings.model_copy(update={"api": settings.api.model_copy(update={"secret": "checking"})})
    try:
        notify = notify_config(unsigned)
    except SettingsError as exc:
        out.extend(str(exc).splitlines()[1:] or [str(exc)])
        return [p.strip() for p in out]
    out.extend(_channel_urls(notify))
    out.extend(_targets(notify, asyncio.run(_stored_roster(settings.store.url))))
    return [p.strip() for p in out]


def check(settings: Settings) -> None:
    """Raise SettingsError listing every problem, for the CLI's exit code 2."""
    found = problems(settings)
    if found:
        raise SettingsError("\n".join(["bad setting:", *(f"  {p}" for p in found)]))


def _channel_urls(notify: NotifyConfig) -> list[str]:
    return [
        f"notify.channels.{name}: {url!r} is not a channel URL (scheme://…)"
        for name, url in notify.channels.items()
        if "://" not in url
    ]


def _targets(notify: NotifyConfig, roster: RosterIn | None) -> list[str]:
    people = {p.id for p in roster.people} if roster else set()
    groups = {g.id for g in roster.groups} if roster else set()
    out = []
    for where, target in _named_targets(notify):
        kind, _, name = target.partition(":")
        known = {"channel": set(notify.channels), "group": groups, "person": people}[kind]
        if kind != "channel" and roster is None:
            continue  # no roster stored yet: nothing to check against
        if name not in known:
            have = ", ".join(sorted(known)) or "none"
            source = "[notify] channels" if kind == "channel" else "the stored roster"
            out.append(f"{where}: {target!r}: no {kind} {name!r} in {source} (there: {have})")
    return out


def _named_targets(notify: NotifyConfig) -> list[tuple[str, str]]:
    """Every target the settings name, with its key; the default fallback only where it was set,
    since a roster without a `console` group is no mistake (the console shows 无人可达 anyway)."""
    out = [
        (f"notify.routes.{r}.steps.{s}.notify.{t}", target)
        for r, route in enumerate(notify.routes)
        for s, step in enumerate(route.steps)
        for t, target in enumerate(step.notify)
    ]
    out += [
        (f"notify.routes.{r}.fallback.{t}", target)
        for r, route in enumerate(notify.routes)
        for t, target in enumerate(route.fallback or [])
    ]
    if "fallback" in notify.model_fields_set:
        out += [(f"notify.fallback.{t}", target) for t, target in enumerate(notify.fallback)]
    return out


async def _stored_roster(url: str) -> RosterIn | None:
    """The roster in the SQL store, or None where none is stored or the store does not answer."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and not (u.database and Path(u.database).exists()):
        return None  # a check creates nothing
    store = Store(url)
    try:
        roster = await get_roster(store)
    except Exception:  # noqa: BLE001 - no store, no tables yet: the roster is not known
        return None
    finally:
        await store.engine.dispose()
    return roster if roster.people or roster.groups else None
