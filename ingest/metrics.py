"""Ingest's Prometheus metrics, in a registry of its own so several ingestors can share a process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from firewatch.contract.supervisor import Supervisor, serve


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        p = "firewatch_ingest_"
        self.received = Counter(p + "messages_received", "MQTT messages received", registry=r)
        self.redelivered = Counter(
            p + "messages_redelivered", "Messages the broker sent again (DUP flag)", registry=r
        )
        self.written = Counter(p + "records_written", "Records InfluxDB accepted", registry=r)
        self.spooled = Counter(p + "records_spooled", "Records put in the spool", registry=r)
        self.rejected = Counter(
            p + "rejected", "Rejected records and messages, by reason", ["reason"], registry=r
        )
        self.duplicates = Counter(
            p + "duplicates", "Records repeating their device's previous seq", registry=r
        )
        self.retained_clockless = Counter(
            p + "retained_clockless",
            "Records of a retained copy the broker sent on subscribing that carry no device time: "
            "not stored, since when they were said is unknown",
            registry=r,
        )
        self.spool_bytes = Gauge(p + "spool_bytes", "Bytes waiting in the spool", registry=r)
        self.spool_records = Gauge(p + "spool_records", "Records waiting in the spool", registry=r)
        self.spool_full = Gauge(
            p + "spool_full",
            "1 while a batch can go neither to InfluxDB nor to the spool (disk full); the broker holds the rest",
            registry=r,
        )
        self.connected = Gauge(
            p + "broker_connected", "1 while subscribed to the broker", registry=r
        )
        self.influx_writes = Counter(
            p + "influx_writes",
            "Write requests to InfluxDB by outcome: ok, refused (a bad line), failed, unreachable",
            ["outcome"],
            registry=r,
        )
        self.write_seconds = Histogram(
            p + "batch_write_seconds",
            "InfluxDB write latency per batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 if never set), for tests and the benchmark."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def serve(self, port: int, supervisor: Supervisor) -> None:
        """/metrics, and /health: 503 while one of ingest's tasks is down."""
        serve(port, self.registry, supervisor)
