"""notify running: the timers and the alert changes of the audit trail, embedded in alerting or on its own.

Embedded (the default, `[notify] embedded = true`), `firewatch alerting` starts a
`Stage` on a thread of its own, with its own event loop and database connections:
detection keeps the service's loop busy in long stretches, and a fire's page must
not wait for them. Each batch on alerting's change feed only nudges the stage to
read the audit trail at once, so it pages a fire within milliseconds of its commit.

On its own (`firewatch notify`, with `embedded = false` for alerting), the stage
reads the audit trail every `poll_s` and serves its metrics on `notify.metrics_port`.
Either way the cursor in the store says how far it got: a restart misses no change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from firewatch.contract.db import Severity, now_ms, open_store
from firewatch.contract.settings import Settings
from firewatch.notify.changes import AuditChange, AuditFollower
from firewatch.notify.config import NotifyConfig, notify_config
from firewatch.notify.escalator import Escalator
from firewatch.notify.metrics import NotifyMetrics

log = logging.getLogger("notify")
SAVE_S = 1.0
"""The cursor is stored at most this often (and at a stop): a write per change would slow the next page."""
RETRY_S = 2.0


class Nudges(Protocol):
    """Something that yields whenever alert changes were committed (alerting's change feed subscription)."""

    async def get(self) -> Any: ...

    def drain(self) -> list[Any]: ...


class Stage:
    """One notify stage: a follower of the audit trail and an escalator, on connections of its own.

    Embedded, it is one of the `followers` of `firewatch.alerting.service.AlertingService`
    (see `embedded`): `name`, `registry` and `serve` are what alerting asks of it.
    """

    name = "notify"

    def __init__(
        self, store_url: str, config: NotifyConfig, clock: Callable[[], int] = now_ms,
        metrics: NotifyMetrics | None = None, districts: Iterable[str] = (),
    ) -> None:
        self.store_url = store_url
        self.config = config
        self.clock = clock
        self.metrics = metrics or NotifyMetrics()
        self.districts = tuple(districts)
        self.started = threading.Event()
        """Set once the stage follows the audit trail (its cursor is taken up)."""

    @property
    def registry(self) -> CollectorRegistry:
        return self.metrics.registry

    async def run(self, stop: asyncio.Event, wake: asyncio.Event | None = None) -> None:
        """Follow the audit trail and keep the timers until `stop`; `wake` set means: read the trail now."""
        wake = wake or asyncio.Event()
        store = await _patiently(lambda: open_store(self.store_url), stop, "open the store")
        if store is None:
            return
        escalator = Escalator(store, self.config, self.clock, metrics=self.metrics)
        follower = AuditFollower(store, self.clock, self.districts)
        try:
            if await _patiently(follower.start, stop, "read the notify cursor") is None:
                return
            self.metrics.audit_cursor.set(follower.cursor)
            self.started.set()
            log.info("notify follows the audit trail from id %d (%s)", follower.cursor, follower.name)
            timers = asyncio.create_task(escalator.run(stop), name="notify-timers")
            try:
                await self._follow(escalator, follower, stop, wake)
            finally:
                if not stop.is_set():  # the follower failed: the timers would wait for a stop forever
                    timers.cancel()
                await asyncio.gather(timers, return_exceptions=True)
                await escalator.drain()
                with contextlib.suppress(Exception):
                    await follower.save()
        finally:
            await escalator.dispatcher.aclose()
            await store.aclose()

    async def _follow(self, escalator: Escalator, follower: AuditFollower, stop: asyncio.Event,
                      wake: asyncio.Event) -> None:
        """Hand changes to the escalator one at a time, fires before everything waiting."""
        fires: deque[AuditChange] = deque()
        others: deque[AuditChange] = deque()
        read_at = saved_at = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if wake.is_set() or now - read_at >= self.config.poll_s or not (fires or others):
                wake.clear()
                read_at = now
                try:
                    for change in await follower.read():
                        (fires if change.alert.severity == Severity.FIRE else others).append(change)
                except Exception:
                    log.exception("notify could not read the audit trail; trying again")
            if fires or others:
                change = fires.popleft() if fires else others.popleft()
                await escalator.handle_patiently(change)
                follower.done(change)
            self.metrics.audit_cursor.set(follower.cursor)
            if time.monotonic() - saved_at >= SAVE_S:
                try:
                    await follower.save()
                    saved_at = time.monotonic()
                except Exception:
                    log.exception("notify could not store its cursor; trying again")
            if not (fires or others):
                await _either(stop, wake, self.config.poll_s)

    async def serve(self, nudges: Nudges) -> None:
        """Embedded: run on a thread of its own, read the trail at each nudge, until cancelled.

            stage = Stage(settings.store.url, notify_config(settings))
            task = asyncio.create_task(stage.serve(pipeline.feed.subscribe()))
        """
        ready = threading.Event()
        box: dict[str, Any] = {}

        async def main() -> None:
            box.update(loop=asyncio.get_running_loop(), stop=asyncio.Event(), wake=asyncio.Event())
            ready.set()
            await self.run(box["stop"], box["wake"])

        thread = threading.Thread(target=lambda: asyncio.run(main()), name="notify", daemon=True)
        thread.start()
        await asyncio.to_thread(ready.wait)
        loop: asyncio.AbstractEventLoop = box["loop"]
        try:
            while True:
                await nudges.get()
                nudges.drain()
                try:
                    loop.call_soon_threadsafe(box["wake"].set)
                except RuntimeError:  # the thread's loop is closed: it ended without being asked to
                    raise RuntimeError("the notify thread ended on its own") from None
        finally:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(box["stop"].set)
            await asyncio.to_thread(thread.join, 60)


async def _either(stop: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(wake.wait())]
    await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for w in waits:
        w.cancel()


async def _patiently(step: Callable[[], Any], stop: asyncio.Event, what: str) -> Any:
    """A database that is not up yet is waited for, not fatal; None when stopped first."""
    while not stop.is_set():
        try:
            return await step()
        except Exception as exc:  # noqa: BLE001 - any failure of the store is waited out the same way
            log.warning("notify could not %s (%s); trying again in %.0f s", what, exc, RETRY_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RETRY_S)
    return None


async def run(settings: Settings, districts: list[str] | None = None, stop: asyncio.Event | None = None) -> None:
    """`firewatch notify`: until SIGINT/SIGTERM (or `stop`), with metrics on `notify.metrics_port` (0: none)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    config = notify_config(settings)
    stage = Stage(settings.store.url, config, districts=districts or [])
    if config.metrics_port:
        stage.metrics.serve(config.metrics_port)
    if config.embedded:
        log.warning("notify runs on its own while [notify] embedded is true: alerting pages too "
                    "(no page goes out twice, but set FIREWATCH_NOTIFY__EMBEDDED=false for alerting)")
    try:
        await stage.run(stop)
    finally:
        await asyncio.to_thread(stage.metrics.close)


def embedded(settings: Settings, districts: Iterable[str] = ()) -> list[Stage]:
    """The stage `firewatch alerting` runs in its own process: none when `[notify] embedded = false`."""
    config = notify_config(settings)
    return [Stage(settings.store.url, config, districts=districts)] if config.embedded else []
