"""Every error leaves the api as JSON: `{"status", "error", "message"[, "errors"]}`.

Clients (the console, integrations, schemathesis) can rely on one shape; a
failure of a backing service says which one (503) instead of a bare 500, and a
truly unexpected error is logged and still answered in the same shape.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException

from firewatch.contract.influx import InfluxError

log = logging.getLogger("firewatch.api")


class ApiError(Exception):
    """Raised by handlers for an answer other than success; `status` is the HTTP status."""

    def __init__(
        self, status: int, message: str, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} does not exist")


def conflict(message: str) -> ApiError:
    return ApiError(409, message)


def invalid(message: str, field: str = "body") -> ApiError:
    return ApiError(422, message, [{"loc": field, "message": message}])


def body(status: int, message: str, errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": status,
        "error": HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_"),
        "message": message,
    }
    if errors is not None:
        out["errors"] = errors
    return out


def _json(
    status: int, message: str, errors: list[dict[str, str]] | None = None, **headers: str
) -> JSONResponse:
    return JSONResponse(body(status, message, errors), status_code=status, headers=headers or None)


def _loc(parts: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in parts)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
    return _json(exc.status, exc.message, exc.errors, **headers)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return _json(exc.status_code, message, None, **(exc.headers or {}))


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": _loc(e.get("loc", ())), "message": str(e.get("msg", "invalid"))}
        for e in exc.errors()
    ]
    summary = "; ".join(f"{e['loc']}: {e['message']}" for e in errors[:5])
    return _json(422, f"invalid request: {summary}", errors)


async def _store_down(_: Request, exc: Exception) -> JSONResponse:
    log.warning("SQL store error: %s", exc)
    return _json(503, "the SQL store is unreachable or busy; retry shortly")


async def _store_conflict(_: Request, exc: Exception) -> JSONResponse:
    return _json(409, "the change conflicts with an existing record")


async def _store_refused(_: Request, exc: Exception) -> JSONResponse:
    log.warning("SQL store refused a value: %s", exc)
    return _json(422, "the SQL store refused a value of this request")


async def _influx_down(_: Request, exc: Exception) -> JSONResponse:
    log.warning("InfluxDB unreachable: %s", exc)
    return _json(503, "InfluxDB is unreachable; readings are unavailable for now")


async def _influx_refused(_: Request, exc: Exception) -> JSONResponse:
    log.warning("InfluxDB refused a query: %s", exc)
    return _json(502, f"InfluxDB refused the query: {exc}")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return _json(500, "internal error; it has been logged")


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(OperationalError, _store_down)
    app.add_exception_handler(IntegrityError, _store_conflict)
    app.add_exception_handler(DBAPIError, _store_refused)
    app.add_exception_handler(httpx.TransportError, _influx_down)
    app.add_exception_handler(InfluxError, _influx_refused)
    app.add_exception_handler(Exception, _unexpected)
