"""JSON straight from rows for the hot endpoints (alert queue, console snapshot), reused while true.

FastAPI validates a returned model again against `response_model`; for a queue
of hundreds of alerts or a city of 20,000 devices that doubles the cost of the
request. These endpoints build plain dicts from SQL rows and hand them to
orjson; their `response_model` still documents the shape in the OpenAPI.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response


class ChangeCache:
    """Answers of hot list queries, reused while nothing has changed.

    Every alert and device change writes an audit row, so `max(audit.id)` (one
    index lookup) tells whether a cached answer is still the truth; the short
    age limit covers in-place refreshes that write no audit row (a firing
    alert's latest value). Fifty consoles asking for the same queue then cost
    one query.
    """

    def __init__(self, max_age_s: float = 1.0, size: int = 256) -> None:
        self.max_age_s = max_age_s
        self.size = size
        self._entries: dict[str, tuple[int, float, bytes, str]] = {}

    async def answer(
        self, request: Request, key: str, head: int, build: Callable[[], Awaitable[bytes]]
    ) -> Response:
        """The answer to `key` at audit id `head`: reused while true, 304 when the client has it.

        The ETag is the body's hash, so a client holding the same bytes (from any
        worker, before or after a restart) gets a bodiless 304 instead of them.
        """
        hit = self._entries.get(key)
        if hit and hit[0] == head and time.monotonic() - hit[1] < self.max_age_s:
            body, etag = hit[2], hit[3]
        else:
            body = await build()
            etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
            if len(self._entries) >= self.size:
                self._entries.clear()
            self._entries[key] = (head, time.monotonic(), body, etag)
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)
