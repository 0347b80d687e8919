"""An atheris fuzz target for the public report form (`POST /api/v1/public/hazard-reports`, no sign-in).

The bytes are the request body, multipart or urlencoded (the first byte picks), read by
the same Starlette form parser and `read_form` the endpoint uses. A report, or an ApiError
of 413 or 422 with a message, is an answer; any other exception would be a 500 and is a
finding. `python -m tests.fuzz.report_form -max_total_time=5`; tests/test_supervision.py
runs it bounded in CI.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import atheris

with atheris.instrument_imports(include=["firewatch.api.reports_public", "multipart", "starlette.formparsers"]):
    from starlette.requests import Request

    from firewatch.api.errors import ApiError
    from firewatch.api.reports_public import read_form

TYPES = [b"multipart/form-data; boundary=fw", b"multipart/form-data; boundary=\"a b\"",
         b"application/x-www-form-urlencoded", b"multipart/form-data"]


async def _read(content_type: bytes, body: bytes) -> None:
    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    request = Request({"type": "http", "method": "POST", "path": "/", "headers": [
        (b"content-type", content_type), (b"content-length", str(len(body)).encode())]}, receive)
    try:
        report, photos = await read_form(request, 3)
    except ApiError as err:
        assert err.status in (413, 422) and str(err), (err.status, str(err))
        return
    assert report.phone and report.note and (report.address or report.latitude is not None)
    assert len(photos) <= 3


def one_input(data: bytes) -> None:
    if not data:
        return
    asyncio.run(_read(TYPES[data[0] % len(TYPES)], data[1:]))


def main() -> None:
    logging.disable(logging.CRITICAL)  # python-multipart logs every broken boundary it sees
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
