"""Mosquitto and InfluxDB as child processes, for `firewatch up`, the tests and the benchmarks.

Each instance keeps its configuration, data and log under one folder and listens
only on loopback, on a port of its own, so several can run side by side and a
test can stop, kill or restart its own without touching anyone else's.
"""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Self

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceError(RuntimeError):
    pass


class _Child:
    """A server process with a config file, a log and a readiness check."""

    name = "service"
    binary = ""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / f"{self.name}.log"

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _configure(self) -> None:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s: float = 30.0) -> None:
        if shutil.which(self.binary) is None:
            raise ServiceError(f"{self.binary} is not installed (Debian package: see scripts/setup.sh)")
        self.dir.mkdir(parents=True, exist_ok=True)
        self._configure()
        log = self.log.open("ab")
        self.proc = subprocess.Popen(
            self._command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise ServiceError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")
            if self._ready():
                return
            time.sleep(0.05)
        self.stop()
        raise ServiceError(f"{self.name} not ready on port {self.port} after {timeout_s} s")

    def stop(self, timeout_s: float = 15.0) -> None:
        """Graceful stop: Mosquitto saves its persistence, InfluxDB closes its shards."""
        if not self.running:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        """SIGKILL, as a power cut or the OOM killer would."""
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def port_open(port: int) -> bool:
    """Something accepts connections on this local port (a service up, or one not yet gone)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Mosquitto(_Child):
    name = "mosquitto"
    binary = "mosquitto"
    autosave_s = 1
    extra_config = ""
    """More lines for mosquitto.conf (a password file, an ACL), for tests of the deployment's rules."""

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def _configure(self) -> None:
        # The deployment's bounds (deploy/mosquitto/mosquitto.conf, docs/ingest.md): the
        # in-memory state is saved every second, so a SIGKILL loses at most the last second's
        # messages that were neither delivered nor saved. Queues stay unbounded here: a test's
        # persistent session must hold everything while its ingest is down.
        # Run as whoever started us: as root, Mosquitto would drop to a user that
        # cannot write persistence into our folder.
        (self.dir / "mosquitto.conf").write_text(
            f"""user {getpass.getuser()}
listener {self.port} 127.0.0.1
allow_anonymous true
persistence true
persistence_location {self.dir}/
autosave_interval {self.autosave_s}
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 1000
log_dest stderr
log_type error
log_type warning
{self.extra_config}"""
        )

    def _command(self) -> list[str]:
        return ["mosquitto", "-c", str(self.dir / "mosquitto.conf")]

    def _ready(self) -> bool:
        return port_open(self.port)


class InfluxD(_Child):
    name = "influxd"
    binary = "influxd"

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        super().__init__(data_dir, port)
        self.rpc_port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _configure(self) -> None:
        d = self.dir
        (d / "influxdb.conf").write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  max-values-per-tag = 0
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  max-body-size = 0
[logging]
  level = "warn"
  suppress-logo = true
"""
        )

    def _command(self) -> list[str]:
        return ["influxd", "run", "-config", str(self.dir / "influxdb.conf")]

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/ping", timeout=0.5).status_code == 204
        except httpx.HTTPError:
            return False
