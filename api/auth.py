"""API tokens and roles: viewer < operator < admin, and the scoped roles unit and maintenance.

A viewer watches; an operator acknowledges, resolves, comments and silences;
an admin also manages devices, the duty roster and tokens. A `unit` token (a
unit's manager) or a `maintenance` token (a maintenance company's engineer) ranks
below viewer, so every center endpoint refuses it; the supervision endpoints let it
see its own units only (api/scope.py). The token's name is
the actor written to the audit trail. The console logs in once with a token and
then rides on an HttpOnly, SameSite=Strict cookie, which is also how the
browser's EventSource (which cannot send headers) authenticates the stream.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update

from firewatch.api.context import Ctx
from firewatch.api.errors import ApiError, not_found
from firewatch.api.fields import IdPath, Name
from firewatch.api.tables import ApiToken
from firewatch.contract.db import Store, now_ms, open_store
from firewatch.contract.links import LinkError

Role = Literal["unit", "maintenance", "viewer", "operator", "admin"]
RANK: dict[str, int] = {"unit": -1, "maintenance": -1, "viewer": 0, "operator": 1, "admin": 2}
SCOPED_ROLES = ("unit", "maintenance")
"""Roles whose token sees only the units its scope names (supervision's TokenScope)."""
COOKIE = "firewatch_token"
LINK_COOKIE = "firewatch_link"
"""Set by a tapped one-tap hazard link (api/hazard_link.py): signs the phone in to that one order."""
SESSION_S = 7 * 86400
"""How long a console stays signed in without asking; each GET /session starts it again."""
CACHE_S = 10.0
"""A token revoked by another process stops working within this long; via the api, at once."""


def token_hash(token: str) -> str:
    """SHA-256 suffices: tokens are 256 random bits, so there is nothing to brute-force."""
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(
    store: Store, name: str, role: Role, created_by: str
) -> tuple[ApiToken, str]:
    """Make a token; the plain text is returned once and never stored."""
    if role not in RANK:
        raise ValueError(f"role must be one of {', '.join(RANK)}")
    plain = "fw_" + secrets.token_urlsafe(32)
    async with store.session() as s, s.begin():
        row = ApiToken(name=name, role=role, token_hash=token_hash(plain), created_by=created_by)
        s.add(row)
        await s.flush()
        await store.audit(s, created_by, "create", f"token:{row.id}", name=name, role=role)
    return row, plain


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: int
    name: str
    role: str
    order_id: int | None = None
    """Signed in by a one-tap link: this order alone (no token behind it, token_id 0)."""


class Authenticator:
    """Looks tokens up by hash, remembering answers briefly so each request costs no query."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._valid: dict[int, tuple[float, bool]] = {}

    async def principal(self, token: str) -> Principal | None:
        digest = token_hash(token)
        hit = self._cache.get(digest)
        if hit and time.monotonic() - hit[0] < CACHE_S:
            return hit[1]
        async with self.store.session() as s:
            row = (
                await s.execute(
                    select(ApiToken).where(
                        ApiToken.token_hash == digest, ApiToken.revoked_ms.is_(None)
                    )
                )
            ).scalar_one_or_none()
        found = Principal(row.id, row.name, row.role) if row else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (time.monotonic(), found)
        return found

    async def valid(self, who: Principal) -> bool:
        """Whether the token behind `who` is still unrevoked: an open live stream asks on every
        wake, so a revoked token loses the stream it opened too (at once via the api)."""
        hit = self._valid.get(who.token_id)
        if hit and time.monotonic() - hit[0] < CACHE_S:
            return hit[1]
        async with self.store.session() as s:
            revoked = (
                await s.execute(select(ApiToken.revoked_ms).where(ApiToken.id == who.token_id))
            ).one_or_none()
        ok = revoked is not None and revoked[0] is None
        if len(self._valid) > 10_000:
            self._valid.clear()
        self._valid[who.token_id] = (time.monotonic(), ok)
        return ok

    def forget(self) -> None:
        self._cache.clear()
        self._valid.clear()


_bearer = HTTPBearer(auto_error=False, description="API token: `Authorization: Bearer fw_...`")
_cookie = APIKeyCookie(name=COOKIE, auto_error=False, description="set by POST /api/v1/session")


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    async def dependency(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        cookie: Annotated[str | None, Depends(_cookie)],
    ) -> Principal:
        token = bearer.credentials if bearer else cookie
        link = request.cookies.get(LINK_COOKIE)
        if not token and link:
            return await _link_principal(request, link, role)
        if not token:
            raise ApiError(401, "an API token is required (Authorization: Bearer ... or log in)")
        who = await request.app.state.auth.principal(token)
        if who is None:
            raise ApiError(401, "the API token is unknown or revoked")
        if RANK[who.role] < RANK[role]:
            raise ApiError(403, f"this needs the {role} role; the token {who.name!r} is {who.role}")
        return who

    return dependency


async def _link_principal(request: Request, link: str, role: Role) -> Principal:
    """The holder of a tapped hazard link: a scoped role, so it passes only where a unit token would."""
    try:
        p = await request.app.state.hazard_links.read(link, now_ms())
    except LinkError as err:
        raise ApiError(401, f"the one-tap link is {err.problem.value.replace('_', ' ')}; tap the link "
                            "in a newer message or sign in with a token") from None
    if p.role not in SCOPED_ROLES or RANK[p.role] < RANK[role]:
        raise ApiError(403, f"this needs the {role} role; a one-tap link opens one hazard order only")
    return Principal(0, p.person, p.role, p.order_id)


Member = Annotated[Principal, Depends(require("unit"))]
"""Any valid token, scoped or not."""
Viewer = Annotated[Principal, Depends(require("viewer"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]

router = APIRouter(prefix="/api/v1", tags=["auth"])


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=200)


class Me(BaseModel):
    name: str
    role: Role


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    role: Literal["viewer", "operator", "admin"] = Field(
        description="unit and maintenance tokens are made per unit or company: "
        "POST /api/v1/units/{id}/tokens, POST /api/v1/companies/{id}/tokens"
    )


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    role: Role
    created_ms: int
    created_by: str
    revoked_ms: int | None


class TokenCreated(TokenOut):
    token: str = Field(description="shown this once; only its hash is kept")


@router.post("/session", response_model=Me, summary="Log in with a token (sets the console cookie)")
async def login(body: LoginIn, request: Request, response: Response) -> Me:
    who = await request.app.state.auth.principal(body.token)
    if who is None:
        raise ApiError(401, "the API token is unknown or revoked")
    _keep_cookie(request, response, body.token)
    return Me(name=who.name, role=who.role)


def _keep_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=SESSION_S,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


@router.delete("/session", status_code=204, summary="Log out (clears the console cookie)")
async def logout(response: Response) -> Response:
    response.delete_cookie(COOKIE)
    response.status_code = 204
    return response


@router.get(
    "/session",
    response_model=Me,
    summary="Who the presented token belongs to; renews the console cookie",
)
async def me(who: Member, request: Request, response: Response) -> Me:
    # A wall screen asks every hour: while its token is valid it is never signed out.
    token = request.cookies.get(COOKIE)
    if token:
        _keep_cookie(request, response, token)
    return Me(name=who.name, role=who.role)


@router.get(
    "/tokens", response_model=list[TokenOut], summary="List API tokens (never their values)"
)
async def list_tokens(c: Ctx, _: Admin) -> list[ApiToken]:
    async with c.store.session() as s:
        return list((await s.execute(select(ApiToken).order_by(ApiToken.id))).scalars())


@router.post("/tokens", response_model=TokenCreated, status_code=201, summary="Create an API token")
async def new_token(body: TokenIn, c: Ctx, who: Admin) -> TokenCreated:
    row, plain = await create_token(c.store, body.name, body.role, who.name)
    return TokenCreated(**TokenOut.model_validate(row).model_dump(), token=plain)


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke an API token")
async def revoke(token_id: IdPath, c: Ctx, request: Request, who: Admin) -> Response:
    async with c.store.session() as s, s.begin():
        done = await s.execute(
            update(ApiToken)
            .where(ApiToken.id == token_id, ApiToken.revoked_ms.is_(None))
            .values(revoked_ms=now_ms())
        )
        if done.rowcount == 0:
            raise not_found(f"active token {token_id}")
        await c.store.audit(s, who.name, "revoke", f"token:{token_id}")
    request.app.state.auth.forget()
    return Response(status_code=204)


async def issue(store_url: str, name: str, role: Role) -> str:
    """For `firewatch api token create`: the first admin token has to come from somewhere."""
    store = await open_store(store_url)
    try:
        return (await create_token(store, name, role, "cli"))[1]
    finally:
        await store.aclose()


async def tokens(store_url: str) -> list[ApiToken]:
    store = await open_store(store_url)
    try:
        async with store.session() as s:
            return list((await s.execute(select(ApiToken).order_by(ApiToken.id))).scalars())
    finally:
        await store.aclose()


async def revoke_id(store_url: str, token_id: int) -> bool:
    store = await open_store(store_url)
    try:
        async with store.session() as s, s.begin():
            done = await s.execute(
                update(ApiToken)
                .where(ApiToken.id == token_id, ApiToken.revoked_ms.is_(None))
                .values(revoked_ms=now_ms())
            )
            if done.rowcount:
                await store.audit(s, "cli", "revoke", f"token:{token_id}")
            return bool(done.rowcount)
    finally:
        await store.aclose()
