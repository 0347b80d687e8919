"""notify's Prometheus metrics, counted where the thing happens: a page that does not get out is the failure
that matters most.

One registry per notify stage, so several can share a process (tests, the benchmark).
Embedded, the alerting service serves it beside its own on `alerting.metrics_port`;
`firewatch notify` serves it on `notify.metrics_port`. The counters are prometheus_client's,
safe to count on notify's thread while the HTTP server's thread reads them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from firewatch.contract.settings import SettingsError

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

PREFIX = "firewatch_notify_"


class NotifyMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.messages = Counter(
            PREFIX + "messages", "Messages to people and channels by result (sent, or failed after every retry) "
            "and channel type", ["result", "channel"], registry=r,
        )
        self.attempts_failed = Counter(
            PREFIX + "attempts_failed", "Failed attempts to hand a message to its channel (retried)", ["channel"],
            registry=r,
        )
        self.nobody_on_duty = Counter(
            PREFIX + "nobody_on_duty", "Escalation steps that reached nobody and paged the fallback", registry=r,
        )
        self.changes_dropped = Counter(
            PREFIX + "changes_dropped", "Alert changes notify gave up on after 7 attempts: nobody was paged for them",
            registry=r,
        )
        self.handoffs = Counter(
            PREFIX + "handoffs", "Confirmed fires handed to the 119 command center, by result (sent, failed)",
            ["result"], registry=r,
        )
        self.handoff_seconds = Histogram(
            PREFIX + "handoff_seconds", "From a fire's confirmation to the 119 side accepting it (GB 50440: 3 s)",
            buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30), registry=r,
        )
        self.audit_cursor = Gauge(
            PREFIX + "audit_cursor", "The audit id up to which every alert change has been handled", registry=r,
        )
        self._server: WSGIServer | None = None

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 if never counted), for tests and benchmarks."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def serve(self, port: int) -> None:
        """Serve /metrics on 0.0.0.0 until `close`; a port that cannot be bound is a bad setting."""
        try:
            self._server, _ = start_http_server(port, addr="0.0.0.0", registry=self.registry)
        except OSError as exc:
            raise SettingsError(f"notify.metrics_port: cannot serve on {port} ({exc.strerror})") from None

    def close(self) -> None:
        """Stop serving (blocks up to half a second: run it in a thread)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
