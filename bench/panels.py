"""How an evaluation's panels reach the broker: `panels: mqtt` (the default, the simulator's
JSON) or `panels: gateway`, where each panel of the fleet is a simulated transmission device
speaking GB/T 26875.3 over real TCP to a real gateway, which publishes what they say.

With the gateway the panels' events go out as frames stamped with their event time on the
device's local clock, the gateway translates them back into the wire contract, and the run
is scored exactly as the MQTT one; a frame the gateway does not confirm fails the run.
The panels' own status messages are not sent: the gateway speaks for its links.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from sqlalchemy import update

from firewatch.contract.db import Device, open_store
from firewatch.contract.settings import Settings
from firewatch.contract.topics import parse_topic
from firewatch.gateway import Gateway, Reason
from firewatch.services import free_port
from firewatch.simulators import Fleet, Message
from firewatch.simulators.gb26875 import Outgoing, TransmissionDevice

CENTER = "000000000001"
WAYS = ("mqtt", "gateway")
CONFIRM_TIMEOUT_S = 120.0


class Panels:
    """`panels: mqtt`: every message goes to the broker as the simulator wrote it."""

    step_ms = 1 << 62

    def take(self, m: Message) -> bool:
        return False

    async def settle(self) -> None:
        """Return once everything taken is with the broker."""

    def published(self) -> int:
        """Messages that reached the broker besides the simulator's own."""
        return 0

    def figures(self) -> dict[str, Any]:
        return {}

    async def stop(self) -> None:
        pass


class GatewayPanels(Panels):
    """`panels: gateway`: a gateway on a free port and one transmission device per panel.

    Settled every two event minutes (a panel reports every 5): a panel's heartbeats reaching alerting minutes after the
    other devices' readings of the same time would look like a silent link."""

    step_ms = 120_000

    def __init__(self, settings: Settings, fleet: Fleet) -> None:
        self.settings = settings.model_copy(update={"gateway": type(settings.gateway)(gb26875={
            "listen": [f"127.0.0.1:{free_port()}"], "center_address": CENTER, "metrics_port": 0,
            "duty_shifts": [],  # a random duty check at a wall-clock moment would make runs differ
            "clock_skew_s": 10 * 365 * 86400.0,  # the devices replay a past day: their clocks are off by design
        })})
        self.fleet = fleet
        self.addresses = {d.id: f"{n + 1:012x}" for n, d in enumerate(d for d in fleet.devices if d.kind == "panel")}
        self.devices: dict[str, TransmissionDevice] = {}
        self.waiting: list[Outgoing] = []
        """Frames sent since the last settle."""
        self.frames = 0
        self.gateway: Gateway | None = None

    async def start(self) -> None:
        store = await open_store(self.settings.store.url)
        async with store.session() as s, s.begin():
            for device_id, address in self.addresses.items():
                await s.execute(update(Device).where(Device.id == device_id).values(transmitter_address=address))
        self.gateway = Gateway(self.settings, store)
        await self.gateway.start()
        await asyncio.wait_for(self.gateway.publisher.connected.wait(), 30)
        for device_id, address in self.addresses.items():
            d = TransmissionDevice(address, CENTER, timezone=self.gateway.config.timezone)
            await d.connect("127.0.0.1", self.gateway.ports[0])
            self.devices[device_id] = d

    def take(self, m: Message) -> bool:
        """A panel's valid event becomes its frames, its status nothing; a malformed one stays MQTT's."""
        device = self.devices.get(parse_topic(m.topic).device_id) if m.invalid is None else None
        if device is None:
            return False
        if m.topic.endswith("/event"):
            doc = orjson.loads(m.payload)
            events = doc if isinstance(doc, list) else [doc]
            self.waiting += [device.event(e) for e in events]
            self.frames += len(events)
        return True

    def published(self) -> int:
        assert self.gateway is not None
        return self.gateway.publisher.acknowledged

    async def settle(self) -> None:
        """Every frame confirmed (its events with the broker) and the gateway's own publishing done."""
        assert self.gateway is not None
        waiting = [o.confirmed.wait() for o in self.waiting if not o.confirmed.is_set()]
        tasks = [t for s in self.gateway.sessions for t in s.tasks]
        try:
            await asyncio.wait_for(asyncio.gather(*waiting, *tasks), CONFIRM_TIMEOUT_S)
        except TimeoutError:
            left = sum(not o.confirmed.is_set() for o in self.waiting)
            raise TimeoutError(f"the gateway left {left} of {self.frames} frames unconfirmed for "
                               f"{CONFIRM_TIMEOUT_S:.0f} s; rejected {self._rejected()}") from None
        self.waiting.clear()

    def _rejected(self) -> dict[str, float]:
        assert self.gateway is not None
        m = self.gateway.metrics
        return {r.value: v for r in Reason if (v := m.value("firewatch_gateway_rejected_total", reason=r.value))}

    def figures(self) -> dict[str, Any]:
        assert self.gateway is not None
        return {"gateway": {"devices": len(self.devices), "frames": self.frames,
                            "published": self.published(), "rejected": self._rejected()}}

    async def stop(self) -> None:
        for d in self.devices.values():
            await d.close()
        if self.gateway is not None:
            await self.gateway.stop()
            await self.gateway.store.aclose()


async def start(way: str, settings: Settings, fleet: Fleet) -> Panels:
    """The panels of an evaluation, started; `way` is the scenario's `panels:` value (one of WAYS)."""
    if way == "mqtt":
        return Panels()
    panels = GatewayPanels(settings, fleet)
    try:
        await panels.start()
    except BaseException:
        await panels.stop()
        raise
    return panels
