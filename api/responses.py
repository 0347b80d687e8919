"""JSON straight from rows for the hot endpoints (alert queue, console snapshot, readings), reused while true.

FastAPI validates a returned model again against `response_model`; for a queue
of hundreds of alerts or a city of 20,000 devices that doubles the cost of the
request. These endpoints build plain dicts from SQL rows and hand them to
orjson; their `response_model` still documents the shape in the OpenAPI.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response


class ChangeCache:
    """Answers of hot queries, reused while nothing has changed.

    Every alert and device change writes an audit row, so `max(audit.id)` (one
    index lookup) tells whether a cached answer is still the truth; the short
    age limit covers what changes without an audit row (a firing alert's latest
    value, new readings). Fifty consoles asking for the same queue then cost
    one query. When the audit trail moved they wait for one rebuild instead of
    each starting its own (fifty rebuilds of a 500-alert queue at once were the
    api's slowest seconds under load); when only the age ran out, the one
    request that starts the rebuild waits for it and the others keep the
    previous answer meanwhile.
    """

    def __init__(self, max_age_s: float = 1.0, size: int = 256) -> None:
        self.max_age_s = max_age_s
        self.size = size
        self._entries: dict[str, tuple[int, float, bytes, str]] = {}
        self._building: dict[tuple[str, int], asyncio.Task[tuple[bytes, str]]] = {}

    async def answer(
        self, request: Request, key: str, head: int, build: Callable[[], Awaitable[bytes]]
    ) -> Response:
        """The answer to `key` at audit id `head`: reused while true, 304 when the client has it.

        The ETag is the body's hash, so a client holding the same bytes (from any
        worker, before or after a restart) gets a bodiless 304 instead of them.
        A build that fails (404, InfluxDB down) fails every request waiting on it and is not kept.
        """
        hit = self._entries.get(key)
        task = self._building.get((key, head))
        if hit and hit[0] == head and (task is not None or time.monotonic() - hit[1] < self.max_age_s):
            body, etag = hit[2], hit[3]  # still the truth by the audit trail, maybe a rebuild's time older
        else:
            if task is None:
                task = asyncio.ensure_future(self._build(key, head, build))
                self._building[(key, head)] = task
                task.add_done_callback(lambda _: self._building.pop((key, head), None))
            # shielded: a client that disconnects must not cancel the others' answer
            body, etag = await asyncio.shield(task)
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    async def _build(self, key: str, head: int, build: Callable[[], Awaitable[bytes]]) -> tuple[bytes, str]:
        body = await build()
        etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[key] = (head, time.monotonic(), body, etag)
        return body, etag
