"""What the supervision endpoints share inside the api process: settings, the supervisor, photos, the one-tap
links; and the
supervisor's messenger over notify's channels (supervision may not import notify, the api may)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from firewatch.alerting.config import AlertingConfig
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
