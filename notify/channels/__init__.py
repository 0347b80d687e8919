"""Channels: where a message leaves firewatch. One module per kind of channel.

A channel URL picks the kind: `webhook+http(s)://` is the plain JSON webhook,
`gateway://NAME/RECIPIENT` an SMS/voice gateway adapter, and everything else is
handed to Apprise (DingTalk, WeCom, Feishu, ntfy, e-mail, SMS providers).
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import apprise
import httpx

from firewatch.notify.channels.base import Channel, ChannelError, Outgoing
from firewatch.notify.channels.gateway import GatewayChannel, load_gateway
from firewatch.notify.channels.phone import AppriseChannel
from firewatch.notify.channels.webhook import WebhookChannel
from firewatch.notify.config import NotifyConfig

__all__ = ["Channel", "ChannelError", "Channels", "Outgoing", "redact", "try_channels"]


class Channels:
    """Turns channel URLs into channels; gateway adapters and the webhooks' HTTP client are made once and shared."""

    def __init__(self, config: NotifyConfig) -> None:
        self._config = config
        self._gateways: dict[str, object] = {}
        self._http: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def get(self, url: str) -> Channel:
        scheme = url.split("://", 1)[0].lower()
        if scheme in ("webhook+http", "webhook+https"):
            if self._http is None:
                self._http = httpx.AsyncClient(timeout=self._config.send_timeout_s)
            return WebhookChannel(url.removeprefix("webhook+"), self._http)
        if scheme == "gateway":
            parts = urlsplit(url)
            name, to = parts.hostname or "", parts.path.strip("/")
            spec = self._config.gateways.get(name)
            if spec is None:
                raise ChannelError(f"no gateway named {name!r} in [notify.gateways]")
            if name not in self._gateways:
                self._gateways[name] = load_gateway(spec)
            return GatewayChannel(self._gateways[name], to)  # type: ignore[arg-type]
        return AppriseChannel(url)


def redact(url: str) -> str:
    """A channel URL fit for a log: Apprise masks its tokens and passwords, webhooks keep only their host."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("webhook+http", "webhook+https", "gateway"):
        try:
            parts = urlsplit(url)
        except ValueError:
            return scheme + "://"
        tail = parts.path.strip("/")
        return f"{scheme}://{parts.hostname or ''}" + (f"/...{tail[-4:]}" if scheme == "gateway" else "")
    plugin = apprise.Apprise.instantiate(url)
    return plugin.url(privacy=True).split("?", 1)[0] if plugin else scheme + "://"


async def try_channels(config: NotifyConfig, urls: list[str], out: Outgoing) -> list[tuple[str, str]]:
    """Send `out` once on each URL, concurrently: (redacted URL, "ok" or why not), for an installer's check."""
    channels = Channels(config)

    async def one(url: str) -> tuple[str, str]:
        try:
            await asyncio.wait_for(channels.get(url).send(out), config.send_timeout_s)
            return redact(url), "ok"
        except ChannelError as exc:
            return redact(url), str(exc)
        except TimeoutError:
            return redact(url), f"no answer within {config.send_timeout_s:g} s"

    try:
        return list(await asyncio.gather(*(one(u) for u in urls)))
    finally:
        await channels.aclose()
