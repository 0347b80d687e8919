"""Platform metrics into InfluxDB, so a single box needs no Prometheus for its health dashboard.

The services expose Prometheus text (ingest on `[ingest] metrics_port`); the
relay scrapes each endpoint every few seconds and writes one point per label set
into the measurement `platform`: tags `service`, `instance` and the sample's
labels, one field per sample name. Grafana then reads platform health with the
same InfluxQL data source as everything else. A site that runs Prometheus can
scrape the same endpoints and ignore this. Losing a scrape while InfluxDB is
down costs one point of a dashboard, so failures are logged and skipped.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from firewatch.contract.influx import Influx
from firewatch.contract.lineproto import line

MEASUREMENT = "platform"
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Target:
    service: str
    url: str

    @property
    def instance(self) -> str:
        return urlsplit(self.url).netloc

    @classmethod
    def parse(cls, text: str) -> Target:
        """`ingest=http://ingest:9464/metrics`, as the command line takes it."""
        service, sep, url = text.partition("=")
        if not sep or not service or not url.startswith(("http://", "https://")):
            raise ValueError(f"expected SERVICE=http://host:port/metrics, got {text!r}")
        return cls(service, url)


def exposition_lines(target: Target, text: str, ts_ms: int) -> list[str]:
    """Line protocol for one scrape; `_created` timestamps and non-finite values are left out."""
    points: dict[tuple[tuple[str, str], ...], dict[str, object]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created") or not math.isfinite(sample.value):
                continue
            key = tuple(sorted(sample.labels.items()))
            points.setdefault(key, {})[sample.name] = float(sample.value)
    base = {"service": target.service, "instance": target.instance}
    return [
        line(MEASUREMENT, {**base, **dict(key)}, fields, ts_ms) for key, fields in points.items()
    ]


async def scrape_once(
    targets: list[Target], http: httpx.AsyncClient, influx: Influx, ts_ms: int
) -> int:
    """Scrape every target and write what answered; returns the number of points written."""
    answers = await asyncio.gather(*(http.get(t.url) for t in targets), return_exceptions=True)
    lines: list[str] = []
    for target, answer in zip(targets, answers):
        if isinstance(answer, BaseException) or answer.status_code != 200:
            log.warning("metrics of %s at %s not scraped: %s", target.service, target.url, answer)
            continue
        lines += exposition_lines(target, answer.text, ts_ms)
    if lines:
        try:
            await influx.write("\n".join(lines))
        except Exception as exc:  # noqa: BLE001 - a lost scrape must not stop the relay
            log.warning("platform metrics not written: %s", exc)
            return 0
    return len(lines)


async def relay(targets: list[Target], influx: Influx, every_s: float) -> None:
    """Scrape and write every `every_s` seconds until cancelled."""
    async with httpx.AsyncClient(timeout=max(1.0, every_s / 2)) as http:
        while True:
            started = time.monotonic()
            await scrape_once(targets, http, influx, int(time.time() * 1000))
            await asyncio.sleep(max(0.0, every_s - (time.monotonic() - started)))
