"""The gateway's Prometheus metrics, in a registry of its own so tests and the bench can read them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        p = "firewatch_gateway_"
        self.frames = Counter(p + "frames", "Frames received, by command", ["command"], registry=r)
        self.rejected = Counter(p + "rejected", "Frames denied or bytes skipped, by reason", ["reason"],
                                registry=r)
        self.unknown_analog = Counter(p + "analog_unknown", "Analog values of a type outside GB/T 26875.3's "
                                      "table (reserved or the vendor's), not published", ["type"], registry=r)
        self.confirmed = Counter(p + "confirmed", "Sends confirmed after the broker's PUBACK", registry=r)
        self.unconfirmed = Counter(p + "unconfirmed", "Sends left unconfirmed (broker down or slow)",
                                   registry=r)
        self.published = Counter(p + "published", "Messages the broker acknowledged", registry=r)
        self.connections = Gauge(p + "connections", "Open transmission-device connections", registry=r)
        self.unregistered = Gauge(p + "unregistered_devices",
                                  "Transmission devices seen whose address is in no registered device",
                                  registry=r)
        self.offline = Counter(p + "links_offline", "Links that went silent past their inspection", registry=r)
        self.duty = Counter(p + "duty_checks", "Duty checks, by result", ["result"], registry=r)
        self.clock_syncs = Counter(p + "clock_syncs", "Clock syncs sent to devices off by too much", registry=r)
        self.connected = Gauge(p + "broker_connected", "1 while connected to the broker", registry=r)

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def serve(self, port: int) -> None:
        start_http_server(port, addr="0.0.0.0", registry=self.registry)
