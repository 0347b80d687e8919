"""The seam through which supervision reaches people one by one: order dispatches with their one-tap links.

A dispatch is a single message to a person's channels, not a paging chain, so it is
no alert; the api hands the supervisor a `Messenger` over notify's channels
(api/supervision_runtime.py), which supervision may not import. Overdue orders are
alerts instead (rule `hazard_overdue`), which notify routes, repeats and escalates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Outgoing:
    targets: tuple[str, ...]
    title: str
    body: str
    link: str = ""
    """The person's one-tap link (also in `body`), for channels that show a button."""


class Messenger(Protocol):
    async def send(self, message: Outgoing) -> list[str]:
        """Send to every target; returns the targets that failed (the caller audits them)."""
        ...
