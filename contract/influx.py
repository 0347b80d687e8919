"""A small async InfluxDB HTTP client: line protocol in, InfluxQL out.

InfluxQL over `/query` is the one read dialect that InfluxDB 1.x, 2.x (v1
compatibility + DBRP) and 3.x all answer, and the one Grafana speaks; writes go
to `/write` (1.x) or `/api/v2/write` (2.x/3.x) as the settings choose.
Query values are always bound as InfluxQL parameters, never pasted into text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

import httpx
import orjson

from firewatch.contract.settings import InfluxSettings


def _error_text(resp: httpx.Response) -> str:
    try:
        doc = resp.json()
    except ValueError:
        return resp.text
    return str(doc.get("error") or doc.get("message") or resp.text) if isinstance(doc, dict) else resp.text


class InfluxError(RuntimeError):
    """InfluxDB answered, but refused; `retryable` tells a full disk from a bad point."""

    def __init__(self, message: str, retryable: bool, status: int = 0, answer: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        """The HTTP status: 400 is a bad point, 404 a missing database, 401/403 credentials."""
        self.answer = answer
        """InfluxDB's whole error text, which names the lines or the field it refused."""


@dataclass(slots=True)
class Series:
    name: str
    tags: dict[str, str]
    columns: list[str]
    values: list[list[Any]]

    def rows(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, v)) for v in self.values]


class Influx:
    def __init__(self, settings: InfluxSettings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        headers = {"Authorization": f"Token {settings.token}"} if settings.token else {}
        self._http = client or httpx.AsyncClient(
            base_url=settings.url, timeout=settings.timeout_s, headers=headers
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def ping(self) -> bool:
        try:
            return (await self._http.get("/ping")).status_code == 204
        except httpx.HTTPError:
            return False

    async def create_database(self) -> None:
        """Create the database with the configured retention (1.x; on 2.x/3.x the bucket is made by its admin)."""
        if self.settings.api != "v1":
            return
        db = self.settings.database
        await self.query(f'CREATE DATABASE "{db}"', database=None, method="POST")
        await self.query(
            f'ALTER RETENTION POLICY "autogen" ON "{db}" DURATION {self.settings.retention}',
            database=None,
            method="POST",
        )

    async def write(self, body: bytes | str) -> None:
        """Write line protocol (ms precision); raises httpx.TransportError when unreachable."""
        s = self.settings
        if s.api == "v1":
            url, params = "/write", {"db": s.database, "precision": "ms"}
        else:
            url, params = "/api/v2/write", {"bucket": s.database, "org": s.org, "precision": "ms"}
        resp = await self._http.post(url, params=params, content=body)
        if resp.status_code >= 300:
            raise InfluxError(
                f"write refused ({resp.status_code}): {resp.text[:300]}",
                retryable=resp.status_code >= 500 or resp.status_code == 429,
                status=resp.status_code,
                answer=_error_text(resp),
            )

    async def query(
        self,
        q: str,
        params: dict[str, Any] | None = None,
        database: str | None = "",
        method: str = "GET",
        timeout_s: float | None = None,
    ) -> list[Series]:
        """Run InfluxQL; `$name` placeholders in `q` take their values from `params`. `timeout_s`: longer than
        the settings' for a query known to scan much (a month's readings of a city), not for interactive ones."""
        args: dict[str, Any] = {"q": q, "epoch": "ms"}
        db = self.settings.database if database == "" else database
        if db:
            args["db"] = db
        if params:
            args["params"] = orjson.dumps(params).decode()
        timeout = httpx.USE_CLIENT_DEFAULT if timeout_s is None else timeout_s
        if method == "GET":
            resp = await self._http.get("/query", params=args, timeout=timeout)
        else:
            resp = await self._http.post("/query", data=args, timeout=timeout)
        if resp.status_code >= 300:
            raise InfluxError(f"query refused ({resp.status_code}): {resp.text[:300]}", retryable=False)
        series: list[Series] = []
        for result in orjson.loads(resp.content).get("results", []):
            if "error" in result:
                raise InfluxError(f"query error: {result['error']}", retryable=False)
            for s in result.get("series", []):
                series.append(Series(s["name"], s.get("tags", {}), s["columns"], s.get("values", [])))
        return series
