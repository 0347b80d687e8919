"""The seam through which supervision reaches people: order dispatches and overdue escalations.

notify/ is being reshaped and exports no sending surface yet, so supervision sends
its few messages (one per dispatch and per escalation, never a paging chain) through
`Messenger`. `AppriseMessenger` sends to the Apprise URLs kept on units, contacts and
`[supervision] districts`, the same URL forms as notify's channels. When notify
exports routes for non-alert messages, an implementation of `Messenger` over them
replaces this one and nothing else changes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outgoing:
    targets: tuple[str, ...]
    title: str
    body: str


class Messenger(Protocol):
    async def send(self, message: Outgoing) -> list[str]:
        """Send to every target; returns the targets that failed (the caller audits them)."""
        ...


class AppriseMessenger:
    async def send(self, message: Outgoing) -> list[str]:
        return await asyncio.to_thread(self._send, message)

    @staticmethod
    def _send(message: Outgoing) -> list[str]:
        import apprise

        failed = []
        for url in message.targets:
            a = apprise.Apprise()
            if not a.add(url) or not a.notify(title=message.title, body=message.body):
                log.warning("supervision message to %s failed", url.split("://", 1)[0])
                failed.append(url)
        return failed
