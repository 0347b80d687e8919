"""What the supervision endpoints share inside the api process: settings, the supervisor, photos."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from firewatch.supervision import PhotoStore, SupervisionConfig, Supervisor


@dataclass(slots=True)
class Runtime:
    config: SupervisionConfig
    supervisor: Supervisor
    photos: PhotoStore


def _runtime(request: Request) -> Runtime:
    return request.app.state.supervision


Rt = Annotated[Runtime, Depends(_runtime)]
