"""Missing heartbeats: a device that misses `offline.warning` reporting periods (default 2) is offline.

After any restart (alerting's, or the broker's: `Pipeline.expect`) every device gets that long
again before it is declared offline, so a restart is no offline storm.

Any message from the device counts as a sign of life (telemetry, an event, a
panel's link inspection, a status); a retained `online: false` status (the
device's last will) takes it offline at once. Recovery is the next sign of life.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from firewatch.alerting.detect.arrays import grown
from firewatch.contract.rules import Params


class Heartbeats:
    def __init__(self) -> None:
        self.grace_from = 0
        """When alerting last (re)started hearing devices: an `online: false` dated before it is a last
        will from an earlier connection (retained by the broker), so it waits out the device's grace."""
        self.last_seen = np.zeros(0, dtype=np.int64)
        self.limit_ms = np.zeros(0, dtype=np.int64)
        self.offline = np.zeros(0, dtype=bool)

    def grow(self, n: int) -> None:
        self.last_seen = grown(self.last_seen, n, 0)
        self.limit_ms = grown(self.limit_ms, n, 0)
        self.offline = grown(self.offline, n, False)

    def set_params(self, slots: np.ndarray, interval_ms: int, p: Params) -> None:
        periods = p.warning if p.enabled and p.warning else 0
        self.limit_ms[slots] = int(interval_ms * periods)

    def seen(self, slots: np.ndarray, ts: np.ndarray) -> list[int]:
        """Note signs of life (slots unique); returns the slots that came back online."""
        self.last_seen[slots] = np.maximum(self.last_seen.take(slots, 0), ts)
        back = slots[self.offline.take(slots, 0)]
        self.offline[back] = False
        return back.tolist()

    def went_offline(self, slot: int, ts: int) -> bool:
        """The device said it is offline (last will); True if that is news."""
        if ts < self.grace_from:
            return False  # said before the restart: offline only if it stays silent through its grace
        self.last_seen[slot] = max(self.last_seen[slot], ts)
        news = not self.offline[slot]
        self.offline[slot] = True
        return bool(news)

    def tick(self, now_ms: int, n: int) -> list[tuple[int, int]]:
        """(slot, event time it went offline) for slots whose silence has just exceeded their limit."""
        seen, limit = self.last_seen[:n], self.limit_ms[:n]
        due = ~self.offline[:n] & (seen > 0) & (limit > 0) & (now_ms - seen > limit)
        slots = np.nonzero(due)[0]
        self.offline[slots] = True
        return [(int(s), int(seen[s] + limit[s])) for s in slots]

    def restore(self, slot: int) -> None:
        self.offline[slot] = True

    def grace(self, now_ms: int) -> None:
        """Every device gets its grace again from `now_ms` (a start, a reconnect to the broker)."""
        self.grace_from = max(self.grace_from, now_ms)

    def expect(self, slot: int, now_ms: int) -> None:
        """Count the device as heard from at `now_ms`, so its silence from then on is noticed."""
        self.last_seen[slot] = max(int(self.last_seen[slot]), now_ms)

    def latest(self, n: int) -> np.ndarray:
        """A copy of the last-heard times of the first `n` slots (0: never heard from)."""
        return self.last_seen[:n].copy()


def silence(last_ms: int, at_ms: int) -> str:
    """How long a device has been silent, as a person reads it: 'no report for 4 min (since 21:03:04 UTC)'."""
    if last_ms <= 0:
        return "never reported"
    s = max(0, (at_ms - last_ms) // 1000)
    span = f"{s} s" if s < 120 else f"{s // 60} min" if s < 7200 else f"{s // 3600} h {s % 3600 // 60} min"
    since = datetime.fromtimestamp(last_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"no report for {span} (since {since})"
