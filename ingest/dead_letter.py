"""Rejected messages: one JSON line each in the dead-letter file, and a log that does not flood.

A dead letter keeps what an integrator needs to fix a device: the topic, the
reason, the detail, when it came, and the payload (text, or base64 when it is not
UTF-8), cut at `MAX_KEPT_BYTES` so a hostile device cannot fill the disk at the
rate it can publish.
"""

from __future__ import annotations

import base64
import logging
import time
from collections import Counter
from pathlib import Path

import orjson

MAX_KEPT_BYTES = 4096
log = logging.getLogger("firewatch.ingest")


def entry(topic: str, reason: str, detail: str, received_ms: int, payload: bytes) -> bytes:
    doc: dict[str, object] = {
        "received_ms": received_ms,
        "topic": topic,
        "reason": reason,
        "detail": detail,
        "payload_bytes": len(payload),
    }
    kept = payload[:MAX_KEPT_BYTES]
    try:
        doc["payload"] = kept.decode()
    except UnicodeDecodeError:
        doc["payload_b64"] = base64.b64encode(kept).decode()
    return orjson.dumps(doc) + b"\n"


class DeadLetters:
    """Appends entries to the file; blocking, so ingest calls `write` in a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, entries: list[bytes]) -> None:
        with self.path.open("ab") as f:
            f.write(b"".join(entries))


class RejectionLog:
    """At most one log line per interval: counts by reason and one example."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self._counts: Counter[str] = Counter()
        self._example = ""
        self._last = 0.0

    def note(self, reason: str, topic: str, detail: str) -> None:
        if not self._counts:
            self._example = f"{reason} on {topic}: {detail}"
        self._counts[reason] += 1
        self.tick()

    def tick(self) -> None:
        """Log what is pending if the interval has passed; also called by a timer, so a
        burst followed by silence is reported within the interval, not at shutdown."""
        if self._counts and time.monotonic() - self._last >= self.interval_s:
            self.flush()

    def flush(self) -> None:
        if self._counts:
            summary = ", ".join(f"{r}={n}" for r, n in sorted(self._counts.items()))
            log.warning("rejected %s (e.g. %s); see the dead-letter file", summary, self._example)
            self._counts.clear()
        self._last = time.monotonic()
