"""The one-tap link in a dispatch: `/m/o/{order_id}/{token}` signs the phone in to that one order.

A genuine, current link sets an HttpOnly cookie holding the token and sends the phone
on to `/m#hazard={id}`; from then on the phone page sees that order alone, and may act
on it as the unit's or the company's person the link was signed for (api/auth.py,
api/scope.py). A forged, cut-off, expired, revoked or another order's link gets a page
that says which, in Chinese and English, and signs nothing in.
"""

from __future__ import annotations

import html
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from firewatch.api.auth import LINK_COOKIE
from firewatch.api.pages import Page, document
from firewatch.contract.db import now_ms
from firewatch.contract.links import LinkError, LinkProblem
from firewatch.supervision import TZ, LinkRevoked

router = APIRouter(include_in_schema=False)
REFUSED = Page("工单链接无效 · firewatch", phone=True, private=True)
PROBLEM = {
    LinkProblem.EXPIRED: ("此工单链接已过期。请使用最新消息中的链接，或用登录令牌登录。",
                          "This order link has expired. Use the link in a newer message, or sign in with a token."),
    LinkProblem.TAMPERED: ("此工单链接无效（已被修改或不完整）。",
                           "This order link is not valid (edited or cut off)."),
    LinkProblem.OTHER_SUBJECT: ("此链接属于工单 #{other}，不能打开工单 #{order}。",
                                "This link belongs to order #{other}; it does not open order #{order}."),
    LinkProblem.REVOKED: ("此工单链接已于 {at} 被监控中心撤销，不能再使用。如仍需处理此工单，请联系消防监控中心。",
                          ("This order link was revoked by the monitoring center on {at}. If you still work on "
                           "this order, ask the center.")),
}


def _problem(err: LinkError, order_id: int) -> HTMLResponse:
    other = err.signed.subject if err.signed else 0
    at = (datetime.fromtimestamp(err.at_ms / 1000, TZ).strftime("%Y-%m-%d %H:%M")
          if isinstance(err, LinkRevoked) else "")
    zh, en = (text.format(other=other, order=order_id, at=at) for text in PROBLEM[err.problem])
    body = (f'<main><section class="panel" id="problem"><h2>{html.escape(zh)}</h2>'
            f'<p class="muted" lang="en">{html.escape(en)}</p>'
            '<p><a href="/m">用登录令牌登录 Sign in with a token</a></p></section></main>\n')
    doc = document(REFUSED, body)
    gone = err.problem in (LinkProblem.EXPIRED, LinkProblem.REVOKED)
    return HTMLResponse(doc, status_code=410 if gone else 403,
                        headers={"Cache-Control": "no-store"})


@router.get("/m/o/{order_id}/{token}", response_class=HTMLResponse)
async def open_order(order_id: int, token: str, request: Request) -> Response:
    now = now_ms()
    try:
        p = await request.app.state.hazard_links.verify(order_id, token, now)
    except LinkError as err:
        return _problem(err, order_id)
    to = RedirectResponse(f"/m#hazard={order_id}", status_code=303, headers={"Cache-Control": "no-store"})
    to.set_cookie(LINK_COOKIE, token, max_age=max(1, (p.expires_ms - now) // 1000), httponly=True,
                  samesite="strict", secure=request.url.scheme == "https")
    return to
