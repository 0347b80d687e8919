"""JSON straight from rows for the hot endpoints (alert queue, console snapshot).

FastAPI validates a returned model again against `response_model`; for a queue
of hundreds of alerts or a city of 20,000 devices that doubles the cost of the
request. These endpoints build plain dicts from SQL rows and hand them to
orjson; their `response_model` still documents the shape in the OpenAPI.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Response


def fast_json(content: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")
