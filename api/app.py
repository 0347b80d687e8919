"""The api application: routes, error handlers, the console's files, and the background tasks.

`create_app(settings)` builds it (tests run it in-process); `serve(settings)`
runs it under uvicorn for `firewatch api`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections.abc import AsyncIterator, Callable
from importlib.resources import files
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from uvicorn.supervisors import Multiprocess

from firewatch.alerting import config as alerting_config
from firewatch.api import (
    ack,
    alerts,
    auth,
    devices,
    districts,
    duty,
    errors,
    hazard_link,
    hazards,
    health,
    pages,
    readings,
    reports_public,
    roster,
    scores,
    silences,
    stats,
    stream,
    units,
)
from firewatch.api.auth import Authenticator
from firewatch.api.context import Context
from firewatch.api.health import RequestMetrics
from firewatch.api.live import Feed, Listener
from firewatch.api.metrics import Metrics
from firewatch.api.reports_public import Limits
from firewatch.api.responses import ChangeCache
from firewatch.api.supervision_runtime import NotifyMessenger, Runtime, alone, pressure_floor
from firewatch.contract.db import open_store
from firewatch.contract.influx import Influx
from firewatch.contract.settings import Settings
from firewatch.notify import notify_config
from firewatch.supervision import HazardLinks, MonthlyReports, PhotoStore, Supervisor
from firewatch.supervision import load as supervision_config

STATIC = Path(str(files("firewatch.api") / "static"))


def create_app(settings: Settings) -> FastAPI:
    """Raises SettingsError (exit 2 from the CLI) when the [alerting] thresholds are wrong."""
    metrics = Metrics()
    thresholds = alerting_config.load(settings.alerting)
    supervision = supervision_config(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await open_store(settings.store.url)
        influx = Influx(settings.influx)
        feed = Feed(store)
        listener = Listener(settings.mqtt, store, feed)
        app.state.ctx = Context(
            settings, store, influx, feed, listener, metrics, thresholds, ChangeCache(),
            ChangeCache()
        )
        app.state.auth = Authenticator(store)
        # The same secret as the acknowledge links; the purpose in the key keeps the two apart.
        notifying = notify_config(settings)
        app.state.hazard_links = HazardLinks(notifying.secret, settings.api.public_url,
                                             int(supervision.link_valid_h * 3_600_000), store)
        supervisor = Supervisor(store, supervision, NotifyMessenger(notifying), settings.api.public_url, influx,
                                links=app.state.hazard_links)
        app.state.supervision = Runtime(
            supervision, supervisor, PhotoStore(supervision.photo_dir, supervision.max_photo_bytes),
            app.state.hazard_links,
            pressure_floor(thresholds),
        )
        p = supervision.public
        app.state.public_limits = Limits(p.per_address_per_hour, p.per_phone_per_day, p.total_per_minute)
        feed.last_id = await feed.head()
        jobs = [feed.run(), listener.run(), listener.record_statuses()]
        if supervision.enabled:
            jobs.append(alone(store, supervisor.run, supervision.interval_s))
            if supervision.monthly_reports:
                jobs.append(MonthlyReports(store, influx, supervision, supervisor.now, app.state.supervision.floor).run())
        tasks = [asyncio.create_task(t) for t in jobs]
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await influx.aclose()
            await store.aclose()

    app = FastAPI(
        title="firewatch",
        version="1",
        summary="City fire-warning center: devices, readings, alerts, live stream, statistics.",
        description="Authenticate with `Authorization: Bearer <token>` "
        "(`firewatch api token create --role viewer|operator|admin`). Errors are JSON: "
        '`{"status", "error", "message", "errors"?}`.',
        lifespan=lifespan,
        # FastAPI's OpenTelemetry hooks cost ~3 ms a request here; /metrics covers what operators need.
        telemetry={"tracing": False, "metrics": False, "logs": False, "auto_configure": False},
    )
    errors.install(app)
    for module in (auth, devices, districts, readings, alerts, silences, roster, stream, stats, health, ack,
                   units, hazards, hazard_link, reports_public, duty, scores, pages):
        app.include_router(module.router)
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def console() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    return app


def _worker_app(settings: Settings, setup: Callable[[], None] | None) -> FastAPI:
    """A worker process's app: it starts from nothing (spawned), so it sets up its own logging first."""
    if setup is not None:
        setup()
    return create_app(settings)


def serve(settings: Settings, workers: int | None = None, setup: Callable[[], None] | None = None) -> None:
    """Serve on [api] host:port with `workers` processes (default [api] workers) sharing one socket.

    Several workers are uvicorn's supervisor over spawned processes, each with the
    whole app; what must happen once (recording device statuses) is shared out by
    the broker (see live.py). `setup` runs first in every process (the command's logging).
    """
    n = workers or settings.api.workers
    if setup is not None:
        setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    config = uvicorn.Config(
        functools.partial(_worker_app, settings, setup),
        factory=True,
        host=settings.api.host,
        port=settings.api.port,
        workers=n,
        timeout_worker_healthcheck=120,  # a worker starting on a loaded machine is slow (25 s seen), not hung
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=3,
    )
    if n == 1:
        uvicorn.Server(config).run()
        return
    asyncio.run(_create_tables(settings.store.url))
    sock = config.bind_socket()
    # uvicorn makes the shared socket with protocol 0, not IPPROTO_TCP, so asyncio leaves Nagle on
    # for the connections the workers accept: every answer's body waited 40 ms for the client's
    # delayed ACK of its headers. Accepted connections take TCP_NODELAY from the listening socket.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    Multiprocess(config, sockets=[sock]).run()


async def _create_tables(url: str) -> None:
    """Before the workers start: N of them creating a new database's tables at once would collide."""
    store = await open_store(url)
    await store.aclose()
