"""What the supervision endpoints share inside the api process: settings, the supervisor, photos, the one-tap
links; the supervisor's messenger over notify's channels (supervision may not import notify, the api may);
and the lock that lets one api worker of several run the sweep."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import text
from sqlalchemy.engine import make_url

from firewatch.alerting.config import AlertingConfig
from firewatch.contract.db import Store
from firewatch.notify import NotifyConfig, try_channels
from firewatch.notify import Outgoing as Page
from firewatch.supervision import (
    HazardLinks,
    Outgoing,
    PhotoStore,
    PressureFloor,
    SupervisionConfig,
    Supervisor,
    kind_floor,
)


@dataclass(slots=True)
class Runtime:
    config: SupervisionConfig
    supervisor: Supervisor
    photos: PhotoStore
    links: HazardLinks
    floor: PressureFloor
    """Each hydrant's and pump's pressure floor as alerting judges it (`pressure_floor`)."""


def pressure_floor(alerting: AlertingConfig) -> PressureFloor:
    """Pressure compliance judged by the level alerting warns at for that device: its `[alerting]` district,
    site and device settings and its registry thresholds, not only the kind's default."""

    def floor(kind: str, district: str, site: str, device_id: str, thresholds: dict[str, Any]) -> float:
        p = alerting.params(kind, district, site, device_id, thresholds)["pressure_low"]
        level = p.warning if p.warning is not None else p.alarm
        return level if level is not None else kind_floor(kind, district, site, device_id, thresholds)

    return floor


async def _runtime(request: Request) -> Runtime:
    """async, as api/context.py's: a plain-def dependency costs a thread hop per request."""
    return request.app.state.supervision


Rt = Annotated[Runtime, Depends(_runtime)]


class NotifyMessenger:
    """Dispatches leave through notify's channels: the same URL forms, gateways and timeouts as its pages."""

    def __init__(self, config: NotifyConfig) -> None:
        self.config = config

    async def send(self, message: Outgoing) -> list[str]:
        out = Page(message.title, message.body, "info", "dispatch", {}, link=message.link)
        results = await try_channels(self.config, list(message.targets), out)
        return [url for url, (_, how) in zip(message.targets, results, strict=True) if how != "ok"]


SWEEP_LOCK = 0x66770002
"""The PostgreSQL advisory lock of the api worker that runs the supervision sweep (live.py's status writers: ...01)."""


async def alone(store: Store, job: Callable[[], Awaitable[None]], retry_s: float) -> None:
    """Run `job` (a loop that never returns) in one api worker of all those on this store; the others wait.

    N workers each sweeping ran every pass N times, the passes racing each other over the same
    orders. The holder keeps the lock for as long as it lives and lets go when it dies (its
    connection or its file closed), and within `retry_s` another worker takes over. (A
    PostgreSQL restart drops the lock under a live holder, which sweeps on: until the api is
    restarted, two workers may sweep.)
    """
    while True:
        async with sweep_lock(store) as mine:
            if mine:
                await job()
                return
        await asyncio.sleep(retry_s)


@contextlib.asynccontextmanager
async def sweep_lock(store: Store) -> AsyncIterator[bool]:
    """Whether this process got the sweep's lock, held until the block ends: on PostgreSQL a session
    advisory lock on a connection of its own (autocommit: never idle in a transaction), on SQLite an
    flock on a file beside the database (SQLite's users share one machine)."""
    url = make_url(store.url)
    if url.get_backend_name() == "postgresql":
        async with store.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            got = bool((await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": SWEEP_LOCK})).scalar())
            try:
                yield got
            finally:
                if got:
                    await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": SWEEP_LOCK})
        return
    if not url.database or url.database == ":memory:":
        yield True  # a database of this process alone
        return
    fd = os.open(url.database + ".sweep.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
