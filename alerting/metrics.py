"""The alerting process's Prometheus endpoint: one registry per service, served on `alerting.metrics_port`.

The metrics themselves are defined beside the code they count and registered by
it into the registry it is handed: the service's messages, backlog, broker
connection, batch time and event lag (alerting/service.py), the pipeline's
records and findings (alerting/pipeline.py), the lifecycle's alert changes and
open alerts (alerting/lifecycle.py), the task supervisor's restarts
(contract/supervisor.py). This module knows none of them; it holds the registry,
serves it, and turns the notify stage's delivery counts into metrics. A registry
of its own per service lets several services share a process (tests, the
evaluation, the benchmark).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from firewatch.contract.settings import SettingsError
from firewatch.contract.supervisor import Supervisor, serve

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

PREFIX = "firewatch_alerting_"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._server: WSGIServer | None = None

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


class NotifyCounts(Collector):
    """The notify stage's deliveries: a page that does not get out is the failure that matters most.

    Reads the escalator's (what, channel) counts at scrape time; copying the dict is atomic under the GIL.
    """

    def __init__(self, counts: Mapping[tuple[str, str], int]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        counts = dict(self._counts)
        messages = CounterMetricFamily(PREFIX + "notify_messages", "Messages to people and channels by result "
                                       "(sent, or failed after every retry) and channel type",
                                       labels=["result", "channel"])
        attempts = CounterMetricFamily(PREFIX + "notify_attempts_failed",
                                       "Failed attempts to hand a message to its channel (retried)",
                                       labels=["channel"])
        for (what, channel), n in sorted(counts.items()):
            if what in ("sent", "failed"):
                messages.add_metric([what, channel], n)
            elif what == "attempt_failed":
                attempts.add_metric([channel], n)
        yield messages
        yield attempts
        yield CounterMetricFamily(PREFIX + "notify_nobody_on_duty",
                                  "Escalation steps that found nobody on duty to page",
                                  value=counts.get(("nobody_on_duty", ""), 0))
        yield CounterMetricFamily(PREFIX + "notify_changes_dropped",
                                  "Alert changes notify gave up on after 7 attempts: nobody was paged for them",
                                  value=counts.get(("dropped", ""), 0))
