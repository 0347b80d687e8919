"""The topic scheme `fire/v1/{district}/{device_id}/{channel}` and the alert topics beside it."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

PREFIX = "fire/v1"
DISTRICT_CHARS = 32
DEVICE_ID_CHARS = 64
"""The longest district and device id a topic may name, and so every SQL column holding one."""
DISTRICT_RE = re.compile(rf"[a-z0-9-]{{1,{DISTRICT_CHARS}}}")
DEVICE_RE = re.compile(rf"[A-Za-z0-9_-]{{1,{DEVICE_ID_CHARS}}}")
ALERTS = "_alerts"
"""Not a valid district (underscore), so alert topics never collide with device topics."""


class Channel(StrEnum):
    TELEMETRY = "telemetry"
    EVENT = "event"
    STATUS = "status"


@dataclass(frozen=True, slots=True)
class Topic:
    district: str
    device_id: str
    channel: Channel


class TopicError(ValueError):
    pass


@lru_cache(maxsize=1 << 18)
def parse_topic(topic: str) -> Topic:
    """Split a device topic, refusing anything a device may not publish to.

    Cached: a city's devices publish to the same topics all day, and checking them
    once each is a third of what validating a reading costs. Refusals are not cached.
    The district and device id are interned, as the registry's are (alerting.registry.DeviceInfo):
    every lookup by device id then matches on identity instead of comparing the strings (a tenth
    of detection's time for a city's batch).
    """
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != "fire" or parts[1] != "v1":
        raise TopicError(f"expected {PREFIX}/{{district}}/{{device_id}}/{{channel}}, got {topic[:200]!r}")
    _, _, district, device_id, channel = parts
    if not DISTRICT_RE.fullmatch(district):
        raise TopicError(f"district {district[:80]!r} must match {DISTRICT_RE.pattern}")
    if not DEVICE_RE.fullmatch(device_id):
        raise TopicError(f"device_id {device_id[:80]!r} must match {DEVICE_RE.pattern}")
    try:
        return Topic(sys.intern(district), sys.intern(device_id), Channel(channel))
    except ValueError:
        raise TopicError(f"channel {channel[:80]!r} must be telemetry, event or status") from None


def device_topic(district: str, device_id: str, channel: Channel | str) -> str:
    return f"{PREFIX}/{district}/{device_id}/{Channel(channel).value}"


def subscription(districts: list[str] | None = None) -> list[str]:
    """Filters for every device topic, or only those of some districts (alerting workers)."""
    if not districts:
        return [f"{PREFIX}/+/+/+"]
    return [f"{PREFIX}/{d}/+/+" for d in districts]


def alert_topic(district: str, device_id: str, rule: str) -> str:
    return f"{PREFIX}/{ALERTS}/{district}/{device_id}/{rule}"
