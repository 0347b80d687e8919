"""Signed, expiring one-tap links: one subject (an alert, a hazard order), one person, one purpose, no login.

A token carries the subject's id, the expiry and the person, and an HMAC-SHA256 over
them under a key derived from the secret *and the purpose*: an acknowledge link's
token opens nothing but an acknowledge page, a hazard order's nothing but that order.
The subject is both in the link's path and in the signed part, so a token pasted
onto another subject's address is told apart from one someone edited.
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
    OTHER_SUBJECT = "other_subject"
    REVOKED = "revoked"
    """Genuine and current, but withdrawn on its own by whoever keeps the links (the signer cannot tell)."""


@dataclass(frozen=True, slots=True)
class Signed:
    subject: int
    person: str
    expires_ms: int


class LinkError(Exception):
    def __init__(self, problem: LinkProblem, signed: Signed | None = None) -> None:
        super().__init__(problem.value)
        self.problem = problem
        self.signed = signed


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    def __init__(self, secret: str, purpose: str) -> None:
        if not secret:
            raise ValueError(f"a signed {purpose} link needs a secret")
        self._key = hashlib.sha256(f"firewatch-{purpose}:".encode() + secret.encode()).digest()

    def _mac(self, payload: bytes) -> str:
        return _b64(hmac.new(self._key, payload, hashlib.sha256).digest()[:18])

    def token(self, signed: Signed) -> str:
        payload = f"{signed.subject}.{signed.expires_ms}.{signed.person}".encode()
        return f"{_b64(payload)}.{self._mac(payload)}"

    @staticmethod
    def _claim(token: str) -> tuple[bytes, str, Signed]:
        try:
            body, mac = token.split(".", 1)
            payload = _unb64(body)
            subject, exp, person = payload.decode().split(".", 2)
            return payload, mac, Signed(int(subject), person, int(exp))
        except (ValueError, UnicodeDecodeError):
            raise LinkError(LinkProblem.TAMPERED) from None

    def _genuine(self, token: str) -> Signed:
        payload, mac, signed = self._claim(token)
        # Bytes, not str: compare_digest raises TypeError for a str with non-ASCII characters.
        if not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            raise LinkError(LinkProblem.TAMPERED)
        return signed

    def read(self, token: str, now_ms: int) -> Signed:
        """What a genuine, current token says, whatever its subject; LinkError otherwise."""
        return _current(self._genuine(token), now_ms)

    def verify(self, subject: int, token: str, now_ms: int) -> Signed:
        """The claim of a genuine, current token for `subject`; LinkError says what is wrong otherwise."""
        signed = self._genuine(token)
        if signed.subject != subject:
            raise LinkError(LinkProblem.OTHER_SUBJECT, signed)
        return _current(signed, now_ms)


def _current(signed: Signed, now_ms: int) -> Signed:
    if now_ms >= signed.expires_ms:
        raise LinkError(LinkProblem.EXPIRED, signed)
    return signed
