"""The device registry as alerting needs it: where a device is and its own thresholds.

Loaded from the SQL store's `devices` table at start and refreshed now and then.
A device that is not registered still gets detection with its kind's defaults
(a monitoring center would rather see an alarm from an unknown device than
miss it); it is counted so the installer can register it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from firewatch.contract.db import Device, Store


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    id: str
    kind: str
    district: str
    site: str = ""
    zone: str = ""
    thresholds: dict[str, Any] = field(default_factory=dict)
    report_interval_s: int | None = None

    def __post_init__(self) -> None:
        """The id interned, as parsed topics' are (contract.topics.parse_topic): the detectors' slot
        lookups then match a reading's device on identity."""
        object.__setattr__(self, "id", sys.intern(self.id))


class Registry:
    def __init__(self, devices: list[DeviceInfo] | None = None) -> None:
        self.devices: dict[str, DeviceInfo] = {d.id: d for d in devices or ()}
        self.unknown: set[str] = set()

    def get(self, device_id: str, kind: str, district: str) -> DeviceInfo:
        d = self.devices.get(device_id)
        if d is None:
            self.unknown.add(device_id)
            d = DeviceInfo(device_id, kind, district)
        return d

    def replace(self, devices: list[DeviceInfo]) -> None:
        self.devices = {d.id: d for d in devices}
        self.unknown -= self.devices.keys()


async def load_registry(store: Store, districts: Sequence[str] = ()) -> list[DeviceInfo]:
    """The active devices, of `districts` only when given (a worker owns its districts' devices alone)."""
    q = select(Device).where(Device.retired_ms.is_(None))
    if districts:
        q = q.where(Device.district.in_(districts))
    async with store.session() as s:
        rows = (await s.execute(q)).scalars().all()
    return [
        DeviceInfo(d.id, d.kind, d.district, d.site or "", "", dict(d.thresholds or {}), d.report_interval_s)
        for d in rows
    ]
