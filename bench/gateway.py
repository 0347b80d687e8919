"""`firewatch bench gateway`: the GB/T 26875.3 gateway under many transmission devices.

Real parts: Mosquitto as a child process, `firewatch gateway gb26875` as a child process
(its RSS is what `gateway_rss_mb` reports), and simulated transmission devices here on
real TCP connections (lean asyncio Protocols, pre-encoded frames, so the load generator
is not the limit). Four measurements, one JSON object:

- `connections`: devices connected at once, each sending an empty `send` (heartbeat)
  every `heartbeat_s` and getting every one confirmed while held for `hold_s`;
- `frames_per_s`: component-state fire frames confirmed per second (each one a panel
  event the broker acknowledged before the confirm), `window` outstanding per connection;
- `frame_to_mqtt_p50_ms`/`p99_ms`: paced at `rate` frames/s, from writing the frame to a
  subscriber receiving its event from the broker;
- `echo_frames_per_s`: the same frames and client against a raw asyncio TCP echo server
  (another child process): the ceiling of the machine's sockets and this client;
- `gateway_cpu_us_per_frame`: the gateway process's CPU time per confirmed frame (user +
  system), which holds on a busy machine where the rates do not.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import psutil

from firewatch.contract.mqtt import Connection, Message, Session
from firewatch.contract.mqtt import connect as subscribe
from firewatch.gateway.frame import Command, Decoder, Frame, encode
from firewatch.gateway.units import ComponentState, DataUnit, State, UnitType, encode_unit
from firewatch.services import Mosquitto, free_port, port_open

CENTER = "000000000001"
ZONE = ZoneInfo("Asia/Shanghai")


def raise_fd_limit(want: int) -> int:
    """Ten thousand devices are ten thousand sockets on each side; the default soft limit is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(want, soft)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def _address(i: int) -> str:
    return f"{0xB0000000 + i:012x}"


def _now() -> datetime:
    return datetime.now(ZONE).replace(tzinfo=None, microsecond=0)


def heartbeat(i: int, serial: int) -> bytes:
    return encode(Frame(serial, Command.SEND, _address(i), CENTER, b"", _now()))


def fire(i: int, serial: int, n: int) -> bytes:
    """A fire at loop/point numbered n: unique per device, so its event can be matched."""
    loop, point = divmod(n, 60000)
    obj = ComponentState(1, 1, 40, ((loop + 1) << 16) | (point + 1), int(State.RUNNING | State.FIRE), "", _now())
    return encode(Frame(serial, Command.SEND, _address(i), CENTER, encode_unit(DataUnit(UnitType.COMPONENT_STATE,
                                                                                        [obj])), _now()))


class Device(asyncio.Protocol):
    """One simulated transmission device: counts the answers (confirms, or its own frames echoed)."""

    def __init__(self, index: int, on_answer: Callable[[Device, int], None]) -> None:
        self.index = index
        self.on_answer = on_answer
        self.decoder = Decoder()
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True

    def data_received(self, data: bytes) -> None:
        for item in self.decoder.feed(data):
            if isinstance(item, Frame) and item.command in (Command.CONFIRM, Command.SEND):
                self.on_answer(self, item.serial)

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


async def connect(port: int, n: int, on_answer: Callable[[Device, int], None], first: int = 0) -> list[Device]:
    loop = asyncio.get_running_loop()
    out: list[Device] = []
    for start in range(first, first + n, 250):
        batch = await asyncio.gather(*(loop.create_connection(lambda i=i: Device(i, on_answer), "127.0.0.1", port)
                                       for i in range(start, min(start + 250, first + n))))
        out += [p for _, p in batch]
    return out


async def throughput(port: int, connections: int, frames: int, window: int) -> float:
    """Frames answered per second with `window` outstanding per connection."""
    per = frames // connections
    encoded = [[fire(c, s + 1, s) for s in range(per)] for c in range(connections)]
    sent = [0] * connections
    answered = [0] * connections
    done = asyncio.Event()
    total = per * connections
    count = 0

    def on_answer(dev: Device, serial: int) -> None:
        nonlocal count
        c = dev.index
        answered[c] += 1
        count += 1
        if sent[c] < per:
            dev.write(encoded[c][sent[c]])
            sent[c] += 1
        if count >= total:
            done.set()

    devices = await connect(port, connections, on_answer)
    t0 = time.perf_counter()
    for d in devices:
        for _ in range(window):
            d.write(encoded[d.index][sent[d.index]])
            sent[d.index] += 1
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - t0
    for d in devices:
        assert d.transport is not None
        d.transport.close()
    return total / elapsed


async def latency(port: int, mqtt_port: int, connections: int, rate: float, seconds: float) -> dict[str, float]:
    """Frame written → its event received from the broker, paced at `rate` frames/s.

    The subscriber is the platform's own lean one (contract.mqtt, what ingest and alerting
    use): aiomqtt here could not take 2,000 messages/s and measured its own queue.
    """
    first = 50_000  # addresses of their own: a fresh link for every device
    total = int(rate * seconds)
    devices = await connect(port, connections, lambda d, s: None, first)
    plan = []
    for n in range(total):
        d = devices[n % connections]
        k = n // connections
        plan.append((d, (f"gb-{_address(d.index)}", k // 60000 + 1, k % 60000 + 1),
                     fire(d.index, (k + 1) & 0xFFFF, k)))
    sent_at: dict[tuple[str, int, int], float] = {}
    lat: list[float] = []
    done = asyncio.Event()

    def on_messages(conn: Connection, msgs: list[Message]) -> None:
        now = time.perf_counter()
        acks = []
        for topic, payload, pid, _dup, _retained in msgs:
            if pid is not None:
                acks.append(pid)
            doc = orjson.loads(payload)
            if doc.get("event") == "fire":
                t = sent_at.pop((topic.split("/")[3], doc["loop"], doc["point"]), None)
                if t is not None:
                    lat.append((now - t) * 1000)
        if acks:
            conn.ack(acks)
        if len(lat) >= total:
            done.set()

    sub = await subscribe(Session("127.0.0.1", mqtt_port, f"bench-gw-sub-{os.getpid()}", session_expiry_s=0),
                          "fire/v1/unassigned/+/event", on_messages)
    t0 = time.perf_counter()
    n = 0
    while n < total:
        due = min(total, int((time.perf_counter() - t0) * rate))
        while n < due:
            d, key, frame = plan[n]
            sent_at[key] = time.perf_counter()
            d.write(frame)
            n += 1
        await asyncio.sleep(0.002)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), 30)
    sub.close()
    for d in devices:
        assert d.transport is not None
        d.transport.close()
    a = np.array(lat) if lat else np.array([float("nan")])
    return {"frame_to_mqtt_p50_ms": round(float(np.percentile(a, 50)), 2),
            "frame_to_mqtt_p99_ms": round(float(np.percentile(a, 99)), 2),
            "latency_frames": total, "latency_received": len(lat), "rate_frames_per_s": rate}


async def hold(port: int, n: int, heartbeat_s: float, hold_s: float, gateway: psutil.Process) -> dict[str, Any]:
    """Connect n devices, keep them confirmed with heartbeats, report how many held and the RSS."""
    confirmed = [0] * n
    devices = await connect(port, n, lambda d, s: confirmed.__setitem__(d.index, confirmed[d.index] + 1), 100_000)
    for d in devices:
        d.index -= 100_000
    serials = [0] * n
    beats = 0
    t0 = time.perf_counter()
    rss = 0.0
    while (elapsed := time.perf_counter() - t0) < hold_s:
        due = int(n * (1 + elapsed / heartbeat_s))  # all at once, then spread over each period
        while beats < due:
            i = beats % n
            serials[i] += 1
            devices[i].write(heartbeat(100_000 + i, serials[i]))
            beats += 1
        rss = max(rss, gateway.memory_info().rss / 2**20)
        await asyncio.sleep(0.01)
    await asyncio.sleep(min(5.0, heartbeat_s))
    held = sum(1 for d, c, s in zip(devices, confirmed, serials, strict=True) if not d.lost and c == s and s > 0)
    for d in devices:
        assert d.transport is not None
        d.transport.close()
    return {"connections": held, "connections_tried": n, "heartbeats_sent": beats,
            "heartbeats_confirmed": sum(confirmed), "gateway_rss_mb": round(rss, 1)}


def echo_server(port: int) -> None:
    """Child process: a raw asyncio TCP echo server, the ceiling."""
    raise_fd_limit(20_000)

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport

        def data_received(self, data: bytes) -> None:
            self.t.write(data)  # type: ignore[attr-defined]

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", port, backlog=4096)
        await server.serve_forever()

    asyncio.run(main())


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while not port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"child on port {port} did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.05)


def main(connections: int, heartbeat_s: float, hold_s: float, frames: int, frame_connections: int, window: int,
         rate: float, seconds: float, json: bool) -> None:
    limit = raise_fd_limit(connections * 2 + 1000)
    with tempfile.TemporaryDirectory(prefix="fw-bench-gw-") as tmp:
        root = Path(tmp)
        with Mosquitto(root / "mosquitto") as broker:
            gw_port, echo_port = free_port(), free_port()
            env = {**os.environ, "FIREWATCH_MQTT__PORT": str(broker.port),
                   "FIREWATCH_STORE__URL": f"sqlite:///{root}/fw.db",
                   "FIREWATCH_GATEWAY__GB26875__METRICS_PORT": "0",
                   "FIREWATCH_GATEWAY__GB26875__DUTY_SHIFTS": "[]",
                   "FIREWATCH_GATEWAY__GB26875__CENTER_ADDRESS": CENTER,
                   "FIREWATCH_CONFIG": str(root / "none.toml")}
            (root / "none.toml").write_text("")
            gw_log, echo_log = root / "gateway.log", root / "echo.log"
            with gw_log.open("wb") as out:
                gw = subprocess.Popen([sys.executable, "-m", "firewatch", "gateway", "gb26875", "--listen",
                                       f"127.0.0.1:{gw_port}"], env=env, stdout=out, stderr=subprocess.STDOUT)
            with echo_log.open("wb") as out:
                echo = subprocess.Popen([sys.executable, "-c", (f"from firewatch.bench.gateway import echo_server; "
                                         f"echo_server({echo_port})")], stdout=out, stderr=subprocess.STDOUT)
            try:
                _wait_port(gw_port, gw, gw_log)
                _wait_port(echo_port, echo, echo_log)
                time.sleep(1.0)  # the gateway's broker connection

                async def run() -> dict[str, Any]:
                    result: dict[str, Any] = {"fd_limit": limit}
                    result |= await hold(gw_port, connections, heartbeat_s, hold_s, psutil.Process(gw.pid))
                    result["echo_frames_per_s"] = round(await throughput(echo_port, frame_connections, frames, window))
                    proc = psutil.Process(gw.pid)
                    before = proc.cpu_times()
                    result["frames_per_s"] = round(await throughput(gw_port, frame_connections, frames, window))
                    after = proc.cpu_times()
                    cpu_s = (after.user - before.user) + (after.system - before.system)
                    result["gateway_cpu_us_per_frame"] = round(cpu_s / (frames // frame_connections
                                                                        * frame_connections) * 1e6, 1)
                    result["load_average_1m"] = round(os.getloadavg()[0], 2)
                    result["ratio_to_echo"] = round(result["frames_per_s"] / result["echo_frames_per_s"], 3)
                    result |= await latency(gw_port, broker.port, min(frame_connections, 200), rate, seconds)
                    return result

                result = asyncio.run(run())
            finally:
                for p in (gw, echo):
                    p.terminate()
                    try:
                        p.wait(10)
                    except subprocess.TimeoutExpired:
                        p.kill()
    result["targets"] = {"connections": ">= 10000 with gateway_rss_mb <= 500", "frames_per_s": ">= 5000",
                         "frame_to_mqtt_p99_ms": "<= 50 at 2000 frames/s"}
    if json:
        print(orjson.dumps(result).decode())
    else:
        for k, v in result.items():
            print(f"{k:24} {v}")
