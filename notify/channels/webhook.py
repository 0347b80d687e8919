"""A plain JSON webhook for other systems: the alert as data, plus the rendered text."""

from __future__ import annotations

import httpx

from firewatch.notify.channels.base import ChannelError, Outgoing


class WebhookChannel:
    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self.url = url
        self.http = http

    async def send(self, out: Outgoing) -> None:
        body = {
            "purpose": out.purpose,
            "severity": out.severity,
            "title": out.title,
            "text": out.body,
            "ack_url": out.link,
            "alert": out.alert,
        }
        try:
            resp = await self.http.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise ChannelError(f"webhook unreachable: {exc!r}") from None
        if resp.status_code >= 300:
            raise ChannelError(f"webhook answered {resp.status_code}: {resp.text[:200]}")
