"""Signed, expiring acknowledge links: one alert, one person, no login.

The link is `{public_url}/ack/{alert_id}/{token}`; the token carries the alert
id, the person and the expiry, and an HMAC-SHA256 over them. The alert id is in
both the path and the signed part, so a link pasted onto another alert's
address is told apart from a link someone edited.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from firewatch.contract.links import LinkError, LinkSigner, Signed
from firewatch.contract.links import LinkProblem as _Problem


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


_PROBLEM = {_Problem.EXPIRED: LinkProblem.EXPIRED, _Problem.TAMPERED: LinkProblem.TAMPERED,
            _Problem.OTHER_SUBJECT: LinkProblem.OTHER_ALERT}


class AckSigner:
    """contract.links' signer for the purpose "ack": its tokens open acknowledge pages only."""

    def __init__(self, secret: str, public_url: str) -> None:
        if not secret:
            raise ValueError("an acknowledge link needs a secret")
        self._signer = LinkSigner(secret, "ack")
        self.public_url = public_url.rstrip("/")

    def token(self, claim: Claim) -> str:
        return self._signer.token(Signed(claim.alert_id, claim.person, claim.expires_ms))

    def page_url(self, claim: Claim) -> str:
        return f"{self.public_url}/ack/{claim.alert_id}/{self.token(claim)}"

    def action_url(self, claim: Claim, action: str) -> str:
        """A URL that acts on a POST alone (ntfy's `http` action buttons)."""
        return f"{self.page_url(claim)}/{action}"

    def verify(self, alert_id: int, token: str, now_ms: int) -> Claim:
        """The claim of a genuine, current link for `alert_id`; AckLinkError says what is wrong otherwise."""
        try:
            s = self._signer.verify(alert_id, token, now_ms)
        except LinkError as err:
            claim = Claim(err.signed.subject, err.signed.person, err.signed.expires_ms) if err.signed else None
            raise AckLinkError(_PROBLEM[err.problem], claim) from None
        return Claim(s.subject, s.person, s.expires_ms)
