"""The supervision pages share one HTML shell (api/pages/shell.html): the head every page needs
(charset, the phone viewport, the stylesheet, its script) is written there once, and a page is
only its body (api/pages/{name}.html) and a line of `PAGES`.

`string.Template` and not a template engine: the shell has a few holes that the pages fill with
fixed text, so each document is put together once and then served as it is. The board and
the unit page keep their /static/ addresses (the console links there); the phone page is /m and
the public report page /report.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from string import Template

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

PAGES_DIR = Path(str(files("firewatch.api") / "pages"))
NO_CACHE = {"Cache-Control": "no-cache"}


@dataclass(frozen=True, slots=True)
class Page:
    title: str
    path: str = ""
    """Where it is served; none for a page an endpoint answers with (a refused link)."""
    script: str = ""
    """A module under /static/; none for a page that only says something."""
    phone: bool = False
    """Laid out for a phone (`<body class="phone">`)."""
    private: bool = False
    """Kept out of search engines and referrers: a page reached by a signed link."""


PAGES = {
    "hazards": Page("隐患整改看板 · firewatch", "/static/hazards.html", "hazards.js"),
    "unit": Page("单位详情 · firewatch", "/static/unit.html", "unit.js"),
    "mobile": Page("我的隐患工单 · firewatch", "/m", "mobile.js", phone=True),  # a unit's or an engineer's orders
    "report": Page("火灾隐患举报", "/report", "report.js", phone=True),  # public, no sign-in
}


@cache
def _shell() -> Template:
    return Template((PAGES_DIR / "shell.html").read_text(encoding="utf-8"))


def document(page: Page, body: str) -> str:
    """The whole HTML document of a page around its body (trusted markup: escape what a person typed)."""
    extra = '<meta name="robots" content="noindex">\n<meta name="referrer" content="no-referrer">\n'
    return _shell().substitute(
        title=html.escape(page.title),
        extra=extra if page.private else "",
        script=f'<script type="module" src="/static/{page.script}"></script>\n' if page.script else "",
        body_class=' class="phone"' if page.phone else "", body=body,
    )


@cache
def _named(name: str) -> str:
    return document(PAGES[name], (PAGES_DIR / f"{name}.html").read_text(encoding="utf-8"))


def _serve(name: str) -> Callable[[], Awaitable[HTMLResponse]]:
    async def page() -> HTMLResponse:
        return HTMLResponse(_named(name), headers=NO_CACHE)

    return page


router = APIRouter(include_in_schema=False)
for _name, _page in PAGES.items():
    # Registered before the /static mount, which serves files only: the board keeps its address.
    router.add_api_route(_page.path, _serve(_name), response_class=HTMLResponse, include_in_schema=False)
