"""The local spool: batches InfluxDB could not take, kept on disk until it can.

Each batch becomes one segment file, written once and never changed: written to a
temporary name, fsynced, renamed, and the folder fsynced, so a segment either
exists whole or not at all, even across a power cut. Only then are its messages
acknowledged to the broker. Segments are replayed oldest first and deleted only
after InfluxDB accepted them. The methods block on the disk; ingest calls them
in a worker thread.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Segment:
    path: Path
    records: int
    size: int

    def read(self) -> bytes:
        return self.path.read_bytes()


class Spool:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        for partial in self.dir.glob("*.tmp"):
            partial.unlink()  # never acknowledged: the broker redelivers those messages
        self._segments = sorted(
            (
                Segment(p, int(p.stem.split("-")[1]), p.stat().st_size)
                for p in self.dir.glob("*.lp")
            ),
            key=lambda s: s.path.name,
        )
        self._next = int(self._segments[-1].path.stem.split("-")[0]) + 1 if self._segments else 0
        self.records = sum(s.records for s in self._segments)
        self.bytes = sum(s.size for s in self._segments)

    def __len__(self) -> int:
        return len(self._segments)

    def append(self, body: bytes, records: int) -> None:
        with self._lock:
            name = f"{self._next:012d}-{records}.lp"
            self._next += 1
        tmp = self.dir / (name + ".tmp")
        final = self.dir / name
        try:
            with tmp.open("wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            tmp.rename(final)
            _fsync_dir(self.dir)
        except BaseException:
            # A full disk: leave nothing behind, the caller tries again with the same batch.
            tmp.unlink(missing_ok=True)
            final.unlink(missing_ok=True)
            raise
        with self._lock:
            self._segments.append(Segment(final, records, len(body)))
            self.records += records
            self.bytes += len(body)

    def oldest(self) -> Segment | None:
        with self._lock:
            return self._segments[0] if self._segments else None

    def remove(self, segment: Segment) -> None:
        segment.path.unlink(missing_ok=True)
        with self._lock:
            self._segments.remove(segment)
            self.records -= segment.records
            self.bytes -= segment.size


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
