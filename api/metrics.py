"""The api's Prometheus metrics (requests, latency, live streams, the MQTT listener), served by api/health.py."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """One registry per app, so several apps in one process (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "firewatch_api_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "firewatch_api_request_seconds",
            "time to answer, per route",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.stream_clients = Gauge(
            "firewatch_api_stream_clients", "open live streams", registry=self.registry
        )
        self.mqtt_connected = Gauge(
            "firewatch_api_mqtt_connected",
            "1 when the MQTT listener is connected",
            registry=self.registry,
        )
        self.status_changes = Gauge(
            "firewatch_api_device_status_changes",
            "device status changes recorded since start",
            registry=self.registry,
        )
        self.statuses_refused = Gauge(
            "firewatch_api_device_statuses_refused",
            "device statuses the SQL store refused twice, alone, while it answered: logged and dropped",
            registry=self.registry,
        )
