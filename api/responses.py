"""JSON straight from rows for the hot endpoints (alert queue, console snapshot).

FastAPI validates a returned model again against `response_model`; for a queue
of hundreds of alerts or a city of 20,000 devices that doubles the cost of the
request. These endpoints build plain dicts from SQL rows and hand them to
orjson; their `response_model` still documents the shape in the OpenAPI.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import Response


def fast_json(content: Any | bytes, status_code: int = 200) -> Response:
    body = content if isinstance(content, bytes) else orjson.dumps(content)
    return Response(body, status_code=status_code, media_type="application/json")


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
        self._entries: dict[str, tuple[int, float, bytes]] = {}

    def get(self, key: str, head: int) -> bytes | None:
        hit = self._entries.get(key)
        if hit and hit[0] == head and time.monotonic() - hit[1] < self.max_age_s:
            return hit[2]
        return None

    def put(self, key: str, head: int, body: bytes) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[key] = (head, time.monotonic(), body)
