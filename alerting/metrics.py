"""The alerting service's Prometheus metrics, in a registry of its own so several services can share a process.

Most numbers are counters the service and the pipeline keep anyway
(`AlertingService.received` and `.rejected`, `Pipeline.counts`,
`ReadingDetector.stale`): a collector reads them when Prometheus scrapes, so
the per-message path pays nothing for metrics. Per batch, the processing time
is observed and the batch's place in event time noted; alert changes are
counted from the change feed, like any other consumer, and the open alerts
recounted after each, on the service's own loop where `Lifecycle.open` changes.
`firewatch alerting` serves them on `alerting.metrics_port`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from operator import attrgetter
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from firewatch.alerting.changes import ChangeKind, Subscription
from firewatch.alerting.lifecycle import Lifecycle
from firewatch.contract.db import Severity
from firewatch.contract.payload import Reason, Record
from firewatch.contract.settings import SettingsError
from firewatch.contract.supervisor import Supervisor, serve

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from firewatch.alerting.service import AlertingService

PREFIX = "firewatch_alerting_"
RECORD_TYPES = {"readings": "reading", "events": "panel_event", "statuses": "status"}
"""`Pipeline.counts` key → the `type` label of records_processed."""
PIPELINE_COUNTS = {
    "clock_ahead": ("records_clock_ahead", "Records stamped over max_clock_skew_s ahead; receive time used"),
    "unknown_status": ("statuses_unknown_device", "Status messages of devices neither registered nor seen"),
    "impossible": ("readings_impossible", "Physically impossible readings, counted towards sensor_impossible"),
    "signals": ("signals", "Detector findings handed to correlation and the lifecycle"),
}
"""The other `Pipeline.counts` keys, each its own counter (`changes` is alert_changes by kind and severity)."""
_ts = attrgetter("ts_ms")
LAG_SAMPLE = 256


class Metrics:
    def __init__(self, service: AlertingService) -> None:
        self.registry = r = CollectorRegistry()
        self.event_ms = 0
        """The median device timestamp of the latest batch (at most its processing time); 0 before any."""
        self.batch_seconds = Histogram(
            PREFIX + "batch_seconds", "Detect, correlate and lifecycle time per batch of messages",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r,
        )
        self.changes = Counter(
            PREFIX + "alert_changes", "Alert changes committed, by kind and the alert's severity",
            ["kind", "severity"], registry=r,
        )
        self.open = Gauge(PREFIX + "open_alerts", "Alerts firing or acknowledged, by severity", ["severity"],
                          registry=r)
        for severity in Severity:
            self.open.labels(severity)
            for kind in ChangeKind:
                self.changes.labels(kind, severity)
        r.register(_Counts(service, self))
        self._server: WSGIServer | None = None

    def processed(self, records: list[Record], started: float, now_ms: int) -> None:
        """After each batch: its processing time (`started` from perf_counter) and where in event time it was.

        The median rather than the newest timestamp, so that a few devices with clocks running
        ahead cannot hide that alerting falls behind. Taken over an even sample of at most
        `LAG_SAMPLE` records: this runs on the batch path, and a gauge needs no exact median.
        """
        self.batch_seconds.observe(time.perf_counter() - started)
        if records:
            sample = records[:: len(records) // LAG_SAMPLE + 1]
            ts = np.fromiter(map(_ts, sample), np.int64, len(sample))
            self.event_ms = min(int(np.median(ts)), now_ms)

    async def follow(self, changes: Subscription, lifecycle: Lifecycle) -> None:
        """Count alert changes from the feed and recount the open alerts after each batch of them, until cancelled."""
        self._count_open(lifecycle)
        while True:
            for change in [await changes.get(), *changes.drain()]:
                self.changes.labels(change.kind, change.alert.severity).inc()
            self._count_open(lifecycle)

    def _count_open(self, lifecycle: Lifecycle) -> None:
        counts = dict.fromkeys(Severity, 0)
        for alert in lifecycle.open.values():
            counts[alert.severity] = counts.get(alert.severity, 0) + 1
        for severity, n in counts.items():
            self.open.labels(severity).set(n)

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 if never set), for tests and benchmarks."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def serve(self, port: int, supervisor: Supervisor) -> None:
        """Serve /metrics and /health (503 while a task is down) on 0.0.0.0 until `close`;
        a port that cannot be bound is a bad setting."""
        try:
            self._server = serve(port, self.registry, supervisor)
        except OSError as exc:
            raise SettingsError(f"alerting.metrics_port: cannot serve on {port} ({exc.strerror})") from None

    def close(self) -> None:
        """Stop serving (blocks up to half a second: run it in a thread)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Counts(Collector):
    """The service's and pipeline's own counters, read at scrape time (on the HTTP server's thread).

    It only reads ints and copies dicts, which the GIL keeps whole, so it needs no lock.
    """

    def __init__(self, service: AlertingService, metrics: Metrics) -> None:
        self._service = service
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        s = self._service
        yield CounterMetricFamily(PREFIX + "messages_received", "MQTT messages taken into a batch",
                                  value=s.received)
        rejected = CounterMetricFamily(PREFIX + "messages_rejected",
                                       "Messages refused by the contract, by reason", labels=["reason"])
        for reason, n in (dict.fromkeys(Reason, 0) | dict(s.rejected)).items():
            rejected.add_metric([str(reason)], n)
        yield rejected
        yield GaugeMetricFamily(PREFIX + "backlog_messages", "Messages received and waiting for a batch",
                                value=s.backlog)
        yield GaugeMetricFamily(PREFIX + "broker_connected", "1 while every subscription is up",
                                value=int(s.subscribed))
        event_ms = self._metrics.event_ms
        yield GaugeMetricFamily(
            PREFIX + "event_lag_seconds",
            "Wall clock minus the median device timestamp of the latest batch: grows while alerting "
            "falls behind or receives nothing",
            value=(time.time() * 1000 - event_ms) / 1000 if event_ms else float("nan"),
        )
        pipeline = s.pipeline
        if pipeline is None:
            return
        counts = dict(pipeline.counts)
        records = CounterMetricFamily(PREFIX + "records_processed", "Records through detection, by type",
                                      labels=["type"])
        for key, label in RECORD_TYPES.items():
            records.add_metric([label], counts.get(key, 0))
        yield records
        for key, (name, doc) in PIPELINE_COUNTS.items():
            yield CounterMetricFamily(PREFIX + name, doc, value=counts.get(key, 0))
        yield GaugeMetricFamily(
            PREFIX + "unregistered_devices",
            "Devices heard from but not in the registry (detected with their kind's defaults): register them",
            value=len(pipeline.registry.unknown),
        )
        yield CounterMetricFamily(
            PREFIX + "readings_stale",
            "Readings not newer than their device's last one (redeliveries, out of order), skipped",
            value=sum(d.stale for d in pipeline.readings.values()),
        )
        if s.escalator is not None:
            yield from _notify(dict(s.escalator.counts))


def _notify(counts: dict[tuple[str, str], int]) -> Iterator[Metric]:
    """The notify stage's deliveries: a page that does not get out is the failure that matters most."""
    messages = CounterMetricFamily(PREFIX + "notify_messages", "Messages to people and channels by result "
                                   "(sent, or failed after every retry) and channel type", labels=["result", "channel"])
    attempts = CounterMetricFamily(PREFIX + "notify_attempts_failed",
                                   "Failed attempts to hand a message to its channel (retried)", labels=["channel"])
    for (what, channel), n in sorted(counts.items()):
        if what in ("sent", "failed"):
            messages.add_metric([what, channel], n)
        elif what == "attempt_failed":
            attempts.add_metric([channel], n)
    yield messages
    yield attempts
    yield CounterMetricFamily(PREFIX + "notify_nobody_on_duty", "Escalation steps that found nobody on duty to page",
                              value=counts.get(("nobody_on_duty", ""), 0))
    yield CounterMetricFamily(PREFIX + "notify_changes_dropped",
                              "Alert changes notify gave up on after 7 attempts: nobody was paged for them",
                              value=counts.get(("dropped", ""), 0))
