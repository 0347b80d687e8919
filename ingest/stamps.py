"""Timestamps for records that came without device time.

A device with no clock sends no `ts`, and the receive time alone is not enough:
a burst arriving in one millisecond, or a backlog redelivered after a reconnect,
would give several readings of one device the same timestamp, and InfluxDB keeps
only the last point per series and time. So each such record gets the receive
time, moved on by a millisecond past the device's previous stamp when needed,
and a record the broker marks as redelivered (DUP) whose (device, seq) was stamped
before gets the same stamp again, so it overwrites itself rather than adding a
copy. Only a redelivery looks the seq up: a device that rebooted starts its seq
again, and its new readings must not land on its old ones. The memory is
bounded and in process: a redelivery to a restarted ingest is a second point a
few seconds later, never a lost one.
"""

from __future__ import annotations

from collections import OrderedDict

REMEMBERED = 200_000
"""(device, seq) stamps kept for redeliveries: a few minutes of a large city's clockless devices."""


class ArrivalStamps:
    def __init__(self, remembered: int = REMEMBERED) -> None:
        self._last: dict[str, int] = {}
        self._seen: OrderedDict[tuple[str, int], int] = OrderedDict()
        self._remembered = remembered

    def stamp(self, device: str, seq: int | None, now_ms: int, redelivered: bool = False) -> int:
        """A millisecond timestamp no other record of this device has, the same for a redelivery."""
        if redelivered and seq is not None:
            known = self._seen.get((device, seq))
            if known is not None:
                return known
        ts = max(now_ms, self._last.get(device, 0) + 1)
        self._last[device] = ts
        if seq is not None:
            self._seen[(device, seq)] = ts
            if len(self._seen) > self._remembered:
                self._seen.popitem(last=False)
        return ts
