"""What every request handler reaches: settings, the SQL store, InfluxDB, the live feed, metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from alerting.config import AlertingConfig
from api.responses import ChangeCache
from contract.db import Store
from contract.influx import Influx
from contract.settings import Settings

if TYPE_CHECKING:
    from api.health import Metrics
    from api.live import Feed, Listener


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


def _context(request: Request) -> Context:
    return request.app.state.ctx


Ctx = Annotated[Context, Depends(_context)]
