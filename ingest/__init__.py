"""Ingest: MQTT readings into InfluxDB, at least once, with nothing lost and nothing counted twice.

`Ingestor(settings)` with `start()`/`stop()` runs inside a process of yours;
`run(settings)` runs until SIGINT/SIGTERM, and `python -m ingest` or
`firewatch ingest` runs it as a process of its own.
"""

from firewatch.ingest.ingestor import Ingestor, run

__all__ = ["Ingestor", "run"]
