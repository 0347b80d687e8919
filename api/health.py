"""Health (is the broker, InfluxDB and the SQL store reachable) and Prometheus metrics."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from firewatch.api.context import Ctx
from firewatch.api.metrics import Metrics

router = APIRouter(tags=["health"])


class RequestMetrics:
    """ASGI middleware: counts and times requests by route template (not raw path: bounded labels)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                route = scope.get("route")
                path = getattr(route, "path", "unmatched")
                if path != "/api/v1/stream":
                    self.metrics.latency.labels(path).observe(time.perf_counter() - start)
                self.metrics.requests.labels(scope["method"], path, str(status[0])).inc()
            await send(message)

        await self.app(scope, receive, send_wrapper)


class Health(BaseModel):
    ok: bool
    broker: bool
    influx: bool
    store: bool


@router.get(
    "/api/v1/health",
    response_model=Health,
    summary="Reachability of the broker, InfluxDB and the SQL store (503 when any is down)",
    responses={503: {"model": Health}},
)
async def health(c: Ctx) -> Any:
    checks = {
        "broker": c.listener.connected,
        "influx": await c.influx.ping(),
        "store": await c.store.ping(),
    }
    out = Health(ok=all(checks.values()), **checks)
    return JSONResponse(out.model_dump(), status_code=200 if out.ok else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(c: Ctx) -> Response:
    c.metrics.mqtt_connected.set(1 if c.listener.connected else 0)
    c.metrics.status_changes.set(c.listener.status_changes)
    c.metrics.statuses_refused.set(c.listener.statuses_refused)
    return Response(generate_latest(c.metrics.registry), media_type=CONTENT_TYPE_LATEST)
