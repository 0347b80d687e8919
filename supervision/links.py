"""One-tap links in the phone messages: one hazard order, one person, signed, expiring.

A dispatch to a unit's manager or a maintenance engineer carries
`{public_url}/m/o/{order_id}/{token}`; tapping it opens that order on the phone page
already signed in to it, and to nothing else (no other order, no unit page). The
token is contract.links' for the purpose "hazard", so it opens no acknowledge page
either. Its expiry is on the wall clock (a phone taps it now, whatever event time the
supervisor runs on), `[supervision] link_valid_h` after it was sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from firewatch.contract.links import LinkSigner, Signed

PURPOSE = "hazard"


@dataclass(frozen=True, slots=True)
class HazardPass:
    """What a genuine, current link lets its holder do: see and act on one order, as `role` `person`."""

    order_id: int
    role: str
    """"unit" (the unit's own people) or "maintenance" (the company's)."""
    person: str
    expires_ms: int


def _pass(s: Signed) -> HazardPass:
    role, _, person = s.person.partition(":")
    return HazardPass(s.subject, role, person, s.expires_ms)


class HazardLinks:
    def __init__(self, secret: str, public_url: str, valid_ms: int) -> None:
        self._signer = LinkSigner(secret, PURPOSE)
        self.public_url = public_url.rstrip("/")
        self.valid_ms = valid_ms

    def token(self, order_id: int, role: str, person: str, now_ms: int) -> str:
        return self._signer.token(Signed(order_id, f"{role}:{person}", now_ms + self.valid_ms))

    def url(self, order_id: int, role: str, person: str, now_ms: int) -> str:
        return f"{self.public_url}/m/o/{order_id}/{self.token(order_id, role, person, now_ms)}"

    def verify(self, order_id: int, token: str, now_ms: int) -> HazardPass:
        """Raises contract.links.LinkError (expired, tampered, another order's) for anything but a good link."""
        return _pass(self._signer.verify(order_id, token, now_ms))

    def read(self, token: str, now_ms: int) -> HazardPass:
        """The pass a link's cookie carries (its order is whichever it was signed for)."""
        return _pass(self._signer.read(token, now_ms))
