"""One-tap links in the phone messages: one hazard order, one person, signed, expiring.

A dispatch to a unit's manager or a maintenance engineer carries
`{public_url}/m/o/{order_id}/{token}`; tapping it opens that order on the phone page
already signed in to it, and to nothing else (no other order, no unit page). The
token is contract.links' for the purpose "hazard", so it opens no acknowledge page
either. Its expiry is on the wall clock (a phone taps it now, whatever event time the
supervisor runs on), `[supervision] link_valid_h` after it was sent.

Every link sent is kept (`HazardLink`, the token's hash), so the center can revoke one on
its own — an engineer who left the company — and the others keep working. A genuine link
with no record (sent before links were kept) works until it expires.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import select, update

from firewatch.contract.db import Store
from firewatch.contract.links import LinkError, LinkProblem, LinkSigner, Signed
from firewatch.supervision.models import HazardLink

PURPOSE = "hazard"


@dataclass(frozen=True, slots=True)
class HazardPass:
    """What a genuine, current link lets its holder do: see and act on one order, as `role` `person`."""

    order_id: int
    role: str
    """"unit" (the unit's own people) or "maintenance" (the company's)."""
    person: str
    expires_ms: int


class LinkRevoked(LinkError):
    """A genuine, current link the center withdrew: when and by whom, for the page that says so."""

    def __init__(self, signed: Signed, at_ms: int, by: str) -> None:
        super().__init__(LinkProblem.REVOKED, signed)
        self.at_ms = at_ms
        self.by = by


class LinkGone(LookupError):
    """No link of that id on that order, or it was already revoked."""


def _pass(s: Signed) -> HazardPass:
    role, _, person = s.person.partition(":")
    return HazardPass(s.subject, role, person, s.expires_ms)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class HazardLinks:
    def __init__(self, secret: str, public_url: str, valid_ms: int, store: Store) -> None:
        self._signer = LinkSigner(secret, PURPOSE)
        self.public_url = public_url.rstrip("/")
        self.valid_ms = valid_ms
        self.store = store

    def token(self, order_id: int, role: str, person: str, now_ms: int) -> str:
        return self._signer.token(Signed(order_id, f"{role}:{person}", now_ms + self.valid_ms))

    async def issue(self, order_id: int, role: str, person: str, now_ms: int) -> str:
        """A new link for one person, kept on record so it can be revoked on its own."""
        token = self.token(order_id, role, person, now_ms)
        async with self.store.session() as s, s.begin():
            s.add(HazardLink(order_id=order_id, role=role, person=person, token_hash=_digest(token),
                             sent_ms=now_ms, expires_ms=now_ms + self.valid_ms))
        return f"{self.public_url}/m/o/{order_id}/{token}"

    async def verify(self, order_id: int, token: str, now_ms: int) -> HazardPass:
        """Raises contract.links.LinkError (expired, tampered, another order's, revoked) for anything but a good
        link."""
        return await self._unrevoked(token, self._signer.verify(order_id, token, now_ms))

    async def read(self, token: str, now_ms: int) -> HazardPass:
        """The pass a link's cookie carries (its order is whichever it was signed for); LinkError as `verify`."""
        return await self._unrevoked(token, self._signer.read(token, now_ms))

    async def _unrevoked(self, token: str, signed: Signed) -> HazardPass:
        async with self.store.session() as s:
            row = (await s.scalars(select(HazardLink).where(HazardLink.token_hash == _digest(token)))).first()
        if row is not None and row.revoked_ms is not None:
            raise LinkRevoked(signed, row.revoked_ms, row.revoked_by)
        return _pass(signed)

    async def sent(self, order_id: int) -> list[HazardLink]:
        """The links sent for an order, oldest first."""
        async with self.store.session() as s:
            q = select(HazardLink).where(HazardLink.order_id == order_id).order_by(HazardLink.id)
            return list((await s.scalars(q)).all())

    async def revoke(self, order_id: int, link_id: int, by: str, now_ms: int, at_ms: int, reason: str) -> HazardLink:
        """Withdraw one link at once (the holder's next request is refused), audited on the order's history at
        `at_ms` (the supervisor's clock, as every move); `now_ms` is the wall clock links expire on."""
        async with self.store.session() as s, s.begin():
            done = await s.execute(
                update(HazardLink)
                .where(HazardLink.id == link_id, HazardLink.order_id == order_id, HazardLink.revoked_ms.is_(None))
                .values(revoked_ms=now_ms, revoked_by=by)
            )
            if not done.rowcount:
                raise LinkGone(f"order {order_id} has no unrevoked link {link_id}")
            row = await s.get(HazardLink, link_id)
            await self.store.audit(s, by, "revoke_link", f"hazard:{order_id}", link=link_id, role=row.role,
                                   person=row.person, note=" · ".join(x for x in (row.person, reason) if x), at=at_ms)
        return row
