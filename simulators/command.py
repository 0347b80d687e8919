"""`firewatch simulate`: build the city, write its registry and truth, publish it with a progress bar."""

from __future__ import annotations

import asyncio
import math
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from firewatch.contract.kinds import SPECS
from firewatch.contract.mqtt import MqttError
from firewatch.contract.settings import Settings
from firewatch.simulators.chaos import Chaos
from firewatch.simulators.fleet import Fleet
from firewatch.simulators.publisher import Pace, publish
from firewatch.simulators.scenario import Scenario, parse_duration, parse_time, write_truth
from firewatch.simulators.stream import Message, Tally, generate


class UsageError(ValueError):
    """A bad command-line value; the message names the option."""


@dataclass(slots=True)
class Options:
    devices: int = 200
    seed: int = 1
    districts: int = 5
    rate: float = 0.0
    duration: str | None = None
    start: str | None = None
    speed: float | None = None
    scenario: Path | None = None
    truth: Path | None = None
    registry_csv: Path | None = None
    register: bool = False
    out: Path | None = None
    qos: int = 1
    connections: int | None = None
    chaos: Chaos = field(default_factory=Chaos)
    json: bool = False
    intervals: list[str] = field(default_factory=list)
    """`kind=seconds` overrides of the reporting periods."""


def _intervals(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items:
        kind, _, seconds = item.partition("=")
        if kind not in SPECS or not seconds.isdigit() or int(seconds) < 1:
            raise UsageError(f"--interval: {item!r} is not KIND=SECONDS with KIND one of {', '.join(SPECS)}")
        out[kind] = int(seconds)
    return out


def _range(o: Options) -> tuple[int, int | None, float]:
    """Start, end (None: until stopped) and speed, from --start, --duration and --speed."""
    now = int(time.time() * 1000)
    try:
        start = parse_time(o.start, now) if o.start else now
    except ValueError as exc:
        raise UsageError(f"--start: {exc}") from None
    try:
        length = parse_duration(o.duration) if o.duration is not None else None
    except ValueError as exc:
        raise UsageError(f"--duration: {exc}") from None
    if o.start and length is None:
        length = parse_duration("1d")
    speed = o.speed if o.speed is not None else (0.0 if o.start else 1.0)
    if speed < 0:
        raise UsageError("--speed must be >= 0 (0: as fast as the broker takes it)")
    return start, (start + length if length is not None else None), speed


def run(settings: Settings, o: Options) -> int:
    """The whole command; returns the exit code."""
    console = Console(stderr=True)
    if o.qos not in (0, 1):
        raise UsageError("--qos must be 0 or 1")
    if o.rate < 0:
        raise UsageError("--rate must be >= 0")
    if o.devices < 0 or o.districts < 1:
        raise UsageError("--devices must be >= 0 and --districts >= 1")
    c = o.chaos
    if not all(0 <= share <= 1 for share in (c.malformed, c.duplicates, c.out_of_order, c.late, c.skew)):
        raise UsageError("chaos shares (--malformed, --duplicates, --out-of-order, --late, --skew) are 0..1")
    fleet = Fleet.build(o.devices, o.seed, o.districts, intervals_s=_intervals(o.intervals))
    if o.rate > len(fleet.devices) * 1000:
        raise UsageError(f"--rate: at most 1000 msgs/s per device ({len(fleet.devices) * 1000} for this fleet)")
    if o.rate > 0:  # the registry tells alerting how often to expect each device
        every_s = max(1, math.ceil(len(fleet.devices) / o.rate))
        for d in fleet.devices:
            d.report_interval_s = every_s
    start, end, speed = _range(o)
    scenario = Scenario.load(o.scenario) if o.scenario else None
    incidents = scenario.resolve(fleet, start, end) if scenario else []
    if o.registry_csv:
        fleet.write_csv(o.registry_csv)
    if o.register:
        n = asyncio.run(fleet.register(settings.store.url))
        console.print(f"registered {n} devices in {settings.store.url}", highlight=False)
    if o.truth:
        write_truth(incidents, o.truth)
    if end == start:
        return 0
    messages = generate(fleet, None, start, end, o.chaos, rate=o.rate, incidents=incidents)
    if o.out:
        tally = _write(messages, o.out)
    else:
        try:
            tally = asyncio.run(_publish(settings, fleet, messages, Pace(start, speed, end), o, start, end, console))
        except MqttError as exc:
            console.print(f"[red]{exc}[/red]", highlight=False)
            return 1
    if o.json:
        sys.stdout.write(orjson.dumps(tally.as_dict()).decode() + "\n")
    else:
        console.print(_summary(tally), highlight=False)
    return 0


def _write(messages: Iterator[Message], path: Path) -> Tally:
    """Messages as JSON lines (topic, payload text, ts_ms, retain, invalid), for replays without a broker."""
    tally = Tally()
    with open(path, "wb") as f:
        for m in messages:
            tally.add(m)
            f.write(orjson.dumps({
                "topic": m.topic, "payload": m.payload.decode(errors="replace"), "ts_ms": m.ts_ms,
                "retain": m.retain, "invalid": m.invalid,
            }) + b"\n")
    return tally


def _summary(t: Tally) -> str:
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(t.by_kind.items()))
    bad = ", ".join(f"{r} {n}" for r, n in sorted(t.invalid.items())) or "none"
    return (f"published {t.published} messages ({kinds}); {t.records} valid records, "
            f"{t.duplicates} duplicates, invalid: {bad}")


async def _publish(settings: Settings, fleet: Fleet, messages: Iterator[Message], pace: Pace, o: Options, start: int,
                   end: int | None, console: Console) -> Tally:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if end is not None:
        columns += [BarColumn(bar_width=24), TaskProgressColumn()]
    columns += [TimeElapsedColumn(), TextColumn("{task.fields[stats]}")]
    began = time.monotonic()
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task("simulating", total=(end - start) if end is not None else None, stats="")

        def show(t: Tally) -> None:
            rate = t.published / max(time.monotonic() - began, 1e-6)
            kinds = " ".join(f"{k}:{n}" for k, n in sorted(t.by_kind.items()))
            bad = sum(t.invalid.values())
            reached = pace.now(began, t.last_ts_ms or start) - start
            progress.update(task, completed=max(0, reached),
                            stats=f"{rate:,.0f}/s  {kinds}" + (f"  invalid:{bad}" if bad else ""))

        try:
            tally = await publish(settings, fleet, messages, pace, qos=o.qos, connections=o.connections,
                                  on_progress=show, stop=stop)
            if not stop.is_set() and end is not None:
                progress.update(task, completed=end - start)
            return tally
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

