"""A service's long-lived tasks, restarted when one dies, and the health endpoint that tells.

A task that raised used to stay dead while the service looked alive: alerting's
processing task died on one hostile message and its metrics port kept answering,
so no fire alert was raised again until someone restarted it by hand. Here a task
that raises is logged, counted and started again after a short, growing pause, and
`/health` on the metrics port answers 503 naming it until it runs again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

RESTART_S = 0.5
MAX_RESTART_S = 10.0


class Supervisor:
    """Starts named jobs (coroutine functions); `down` holds those waiting to be restarted."""

    def __init__(self, registry: CollectorRegistry, prefix: str, log: logging.Logger,
                 restart_s: float = RESTART_S) -> None:
        self.log = log
        self.restart_s = restart_s
        self.down: set[str] = set()
        self.restarts = Counter(prefix + "task_restarts", "Tasks restarted after they failed", ["task"],
                                registry=registry)
        down = Gauge(prefix + "tasks_down", "Tasks that failed and are not running again yet", registry=registry)
        down.set_function(lambda: len(self.down))

    def start(self, name: str, job: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        self.restarts.labels(name)
        return asyncio.create_task(self._run(name, job), name=name)

    async def _run(self, name: str, job: Callable[[], Awaitable[None]]) -> None:
        pause = self.restart_s
        while True:
            try:
                await job()
                return
            except Exception:
                self.down.add(name)
                self.restarts.labels(name).inc()
                self.log.exception("task %s failed; restarting it in %.1f s", name, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, max(MAX_RESTART_S, self.restart_s))
                self.down.discard(name)

    def health(self) -> tuple[bool, bytes]:
        down = sorted(self.down)
        return not down, orjson.dumps({"healthy": not down, "tasks_down": down})


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Scrapes and health checks every few seconds are not news."""


def serve(port: int, registry: CollectorRegistry, supervisor: Supervisor) -> WSGIServer:
    """Serve `/metrics` (and every other path, as prometheus_client does) and `/health` on 0.0.0.0 in a thread.

    Raises OSError when the port cannot be bound; the caller names its setting.
    """
    metrics = make_wsgi_app(registry)

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/health":
            return metrics(environ, start_response)
        ok, body = supervisor.health()
        start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
        return [body]

    server = make_server("0.0.0.0", port, app, ThreadingWSGIServer, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name=f"metrics-{port}", daemon=True).start()
    return server
