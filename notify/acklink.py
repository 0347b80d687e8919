"""Signed, expiring acknowledge links: one alert, one person, no login.

The link is `{public_url}/ack/{alert_id}/{token}`; the token carries the alert
id, the person and the expiry, and an HMAC-SHA256 over them. The alert id is in
both the path and the signed part, so a link pasted onto another alert's
address is told apart from a link someone edited.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum


class LinkProblem(StrEnum):
    EXPIRED = "expired"
    TAMPERED = "tampered"
    OTHER_ALERT = "other_alert"


class AckLinkError(Exception):
    def __init__(self, problem: LinkProblem, claim: Claim | None = None) -> None:
        super().__init__(problem.value)
        self.problem = problem
        self.claim = claim


@dataclass(frozen=True, slots=True)
class Claim:
    alert_id: int
    person: str
    expires_ms: int


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AckSigner:
    def __init__(self, secret: str, public_url: str) -> None:
        if not secret:
            raise ValueError("an acknowledge link needs a secret")
        self._key = hashlib.sha256(b"firewatch-ack:" + secret.encode()).digest()
        self.public_url = public_url.rstrip("/")

    def _mac(self, payload: bytes) -> str:
        return _b64(hmac.new(self._key, payload, hashlib.sha256).digest()[:18])

    def token(self, claim: Claim) -> str:
        payload = f"{claim.alert_id}.{claim.expires_ms}.{claim.person}".encode()
        return f"{_b64(payload)}.{self._mac(payload)}"

    def page_url(self, claim: Claim) -> str:
        return f"{self.public_url}/ack/{claim.alert_id}/{self.token(claim)}"

    def action_url(self, claim: Claim, action: str) -> str:
        """A URL that acts on a POST alone (ntfy's `http` action buttons)."""
        return f"{self.page_url(claim)}/{action}"

    def verify(self, alert_id: int, token: str, now_ms: int) -> Claim:
        """The claim of a genuine, current link for `alert_id`; AckLinkError says what is wrong otherwise."""
        try:
            body, mac = token.split(".", 1)
            payload = _unb64(body)
            aid, exp, person = payload.decode().split(".", 2)
            claim = Claim(int(aid), person, int(exp))
        except (ValueError, UnicodeDecodeError):
            raise AckLinkError(LinkProblem.TAMPERED) from None
        # Bytes, not str: compare_digest raises TypeError for a str with non-ASCII characters.
        if not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            raise AckLinkError(LinkProblem.TAMPERED)
        if claim.alert_id != alert_id:
            raise AckLinkError(LinkProblem.OTHER_ALERT, claim)
        if now_ms >= claim.expires_ms:
            raise AckLinkError(LinkProblem.EXPIRED, claim)
        return claim
