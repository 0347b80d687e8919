"""The adapter interface for an SMS or voice gateway Apprise does not know.

An adapter is any object with `async send(to, text)`; `[notify.gateways.NAME]`
names its factory (`module:callable`) and the options it is called with, and a
roster channel `gateway://NAME/13800000000` sends through it.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from firewatch.notify.channels.base import ChannelError, Outgoing
from firewatch.notify.config import Gateway as GatewaySpec


class Gateway(Protocol):
    async def send(self, to: str, text: str) -> None:
        """Send `text` to `to` (a phone number); raise on failure."""


def load_gateway(spec: GatewaySpec) -> Gateway:
    module, _, attr = spec.adapter.partition(":")
    try:
        factory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ChannelError(f"gateway adapter {spec.adapter!r} cannot be loaded: {exc}") from None
    return factory(**spec.options)


class GatewayChannel:
    def __init__(self, gateway: Gateway, to: str) -> None:
        self.gateway = gateway
        self.to = to

    async def send(self, out: Outgoing) -> None:
        try:
            await self.gateway.send(self.to, f"{out.title}\n{out.body}")
        except ChannelError:
            raise
        except Exception as exc:  # noqa: BLE001 - an adapter's failure of any kind is a failed send
            raise ChannelError(f"gateway failed: {exc!r}") from None
