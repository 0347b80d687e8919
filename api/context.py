"""What every request handler reaches: settings, the SQL store, InfluxDB, the live feed, metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from firewatch.alerting.config import AlertingConfig
from firewatch.api.responses import ChangeCache
from firewatch.contract.db import Store
from firewatch.contract.influx import Influx
from firewatch.contract.settings import Settings

if TYPE_CHECKING:
    from firewatch.api.live import Feed, Listener
    from firewatch.api.metrics import Metrics


@dataclass(slots=True)
class Context:
    settings: Settings
    store: Store
    influx: Influx
    feed: Feed
    listener: Listener
    metrics: Metrics
    alerting: AlertingConfig
    """Alerting's thresholds, so charts draw the levels alerting judges by."""
    cache: ChangeCache
    readings_cache: ChangeCache
    """Charts apart from the lists: a busy console's many charts must not push the queue out."""


async def _context(request: Request) -> Context:
    """async: FastAPI runs a plain-def dependency in its thread pool, a thread hop on every request."""
    return request.app.state.ctx


Ctx = Annotated[Context, Depends(_context)]
