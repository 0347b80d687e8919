"""The contract every firewatch part shares: device kinds and metrics, topics, payloads,
line protocol, the InfluxDB client, settings and the SQL store."""

from firewatch.contract.kinds import PANEL_EVENTS, SPECS, Kind, KindSpec, Metric
from firewatch.contract.payload import (
    DeviceStatus,
    PanelEvent,
    Parsed,
    Reading,
    Reason,
    Record,
    Rejection,
    parse,
)
from firewatch.contract.settings import Settings, SettingsError, load_settings
from firewatch.contract.topics import (
    Channel,
    Topic,
    TopicError,
    alert_topic,
    device_topic,
    parse_topic,
    subscription,
)

__all__ = [
    "PANEL_EVENTS",
    "SPECS",
    "Channel",
    "DeviceStatus",
    "Kind",
    "KindSpec",
    "Metric",
    "PanelEvent",
    "Parsed",
    "Reading",
    "Reason",
    "Record",
    "Rejection",
    "Settings",
    "SettingsError",
    "Topic",
    "TopicError",
    "alert_topic",
    "device_topic",
    "load_settings",
    "parse",
    "parse_topic",
    "subscription",
]
