"""Phone channels through Apprise: DingTalk, WeCom, Feishu, ntfy, e-mail, SMS providers.

ntfy gets its action buttons and a click-through to the acknowledge page, and a
fire gets ntfy's top priority so it rings through do-not-disturb. Apprise sends
ntfy's actions as an HTTP header, which must be Latin-1: labels in Chinese go as
an RFC 2047 encoded word, which the ntfy server decodes.
"""

from __future__ import annotations

import base64
from urllib.parse import quote, urlencode

import apprise

from firewatch.notify.channels.base import ChannelError, Outgoing

_NTFY_PRIORITY = {"fire": "max", "critical": "high", "warning": "default", "info": "low"}


class AppriseChannel:
    def __init__(self, url: str) -> None:
        self.url = url

    def _url_for(self, out: Outgoing) -> str:
        if not self.url.lower().startswith(("ntfy://", "ntfys://")):
            return self.url
        extra: dict[str, str] = {"priority": _NTFY_PRIORITY.get(out.severity, "default")}
        if out.link:
            extra["click"] = out.link
        if out.actions:
            extra["actions"] = _latin1("; ".join(
                f"http, {label}, {url}, method=POST, clear=true" for label, url in out.actions
            ))
        joiner = "&" if "?" in self.url else "?"
        return self.url + joiner + urlencode(extra, quote_via=quote)

    async def send(self, out: Outgoing) -> None:
        ap = apprise.Apprise()
        if not ap.add(self._url_for(out)):
            raise ChannelError("apprise does not understand this channel URL")
        result = await ap.async_notify(body=out.body, title=out.title, body_format=apprise.NotifyFormat.TEXT)
        if not result:
            raise ChannelError(_why(result))


def _latin1(header: str) -> str:
    if header.isascii():
        return header
    return "=?UTF-8?B?" + base64.b64encode(header.encode()).decode() + "?="


def _why(result: apprise.AppriseResult) -> str:
    """Apprise's own warnings of the last attempt, which say what the service answered."""
    said = [
        entry.message
        for service in result.results
        for entry in (service.attempts[-1].logs if service.attempts else [])
        if entry.level in ("WARNING", "ERROR")
    ]
    return "apprise: " + (" ".join(said[-3:]) or "the send failed")
