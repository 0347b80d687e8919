"""The alerting process's Prometheus endpoint: one registry per service, served on `alerting.metrics_port`.

The metrics themselves are defined beside the code they count and registered by
it into the registry it is handed: the service's messages, backlog, broker
connection, batch time and event lag (alerting/service.py), the pipeline's
records and findings (alerting/pipeline.py), the lifecycle's alert changes and
open alerts (alerting/lifecycle.py), the task supervisor's restarts
(contract/supervisor.py), and an embedded notify stage's own (firewatch.notify).
This module knows none of them; it holds the registry and serves it. A registry
of its own per service lets several services share a process (tests, the
evaluation, the benchmark).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

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

