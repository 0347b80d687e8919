"""A firewatch part (`python -m firewatch <part> ...`) run by a benchmark as a process of its own.

The benches measure parts as a centre runs them: configured only through FIREWATCH_*
variables (and a settings file when one is given), each its own process. What every bench
then needs of such a process is here once: start it, wait until a /metrics sample says it
is ready, read samples (one scrape per call, since every scrape costs the process being
measured), and its CPU seconds and peak RSS from /proc, its children included (the api's
supervisor and its workers are one part).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil


class PartProcess:
    """One part as a child process; `env` holds its settings over the inherited environment's."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], folder: Path,
                 metrics_port: int | None = None, pythonpath: Path | None = None) -> None:
        self.name, self.args, self.folder, self.metrics_port = name, args, folder, metrics_port
        self.env = {k: v for k, v in os.environ.items() if k != "FIREWATCH_CONFIG"} | env
        self.env["PYTHONUNBUFFERED"] = "1"
        if pythonpath is not None:
            self.env["PYTHONPATH"] = str(pythonpath)
        self.log = folder / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "firewatch", *self.args], env=self.env,
                                         cwd=self.folder, stdout=log, stderr=subprocess.STDOUT)

    def metric(self, *names: str) -> float:
        """The sum of these samples (labelled ones included) from one scrape; -1 while it is not serving."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return -1
        wanted = set(names)
        return sum(float(v) for k, _, v in (ln.rpartition(" ") for ln in text.splitlines())
                   if k.partition("{")[0] in wanted)

    def wait(self, ready: Callable[[], bool], what: str, timeout_s: float = 120) -> None:
        """Until `ready()`; a process that exits meanwhile, or the timeout, is an error naming its log."""
        deadline = time.monotonic() + timeout_s
        while not ready():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}) before {what}; see {self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: not {what} within {timeout_s:.0f} s; see {self.log}")
            time.sleep(0.1)

    def wait_metric(self, name: str, what: str, timeout_s: float = 120) -> None:
        """Until the sample `name` reads 1 (a broker_connected gauge: subscribed)."""
        self.wait(lambda: self.metric(name) == 1, what, timeout_s)

    def processes(self) -> list[psutil.Process]:
        """The process and its children, as running now."""
        assert self.proc is not None
        top = psutil.Process(self.proc.pid)
        return [top, *top.children(recursive=True)]

    def cpu_seconds(self) -> float:
        """User + system CPU of the process tree so far."""
        total = 0.0
        for p in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def peak_rss_mb(self) -> float:
        """The tree's peak resident memory (VmHWM of each process, summed)."""
        total = 0
        for p in self.processes():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) * 1024
        return round(total / 2**20, 1)

    def stop(self, sig: int = 15, timeout_s: float = 30) -> int:
        """Signal the process (a supervisor stops its workers), SIGKILL the tree if it outlives `timeout_s`."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            return self.proc.returncode
        children = self.processes()[1:]
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            for c in children:
                with contextlib.suppress(psutil.NoSuchProcess):
                    c.kill()
