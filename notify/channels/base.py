"""What every channel gets and promises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class ChannelError(Exception):
    """A send failed; the message says why, for the delivery log."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    title: str
    body: str
    severity: str
    purpose: str
    alert: dict[str, Any]
    link: str = ""
    """The signed acknowledge page for this person; empty for all-clear and system channels."""
    actions: list[tuple[str, str]] = field(default_factory=list)
    """(label, URL) pairs that act on a bare POST, for channels with buttons (ntfy)."""


class Channel(Protocol):
    async def send(self, out: Outgoing) -> None:
        """Deliver or raise ChannelError; the caller owns timeouts and retries."""
