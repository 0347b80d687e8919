"""`firewatch bench …` and `firewatch eval`, added to the `firewatch` command from here.

The command finds `register` through the entry-point group `firewatch.commands`
(pyproject.toml) and never imports bench/, so the product does not depend on its
benchmarks and evaluations; they stay where a user reaches them. Each benchmark
prints one JSON object with --json.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from firewatch.contract.settings import Settings

bench = typer.Typer(no_args_is_help=True, help="Benchmarks; each prints one JSON object with --json.")


def register(app: typer.Typer, settings: Callable[[], Settings]) -> None:
    """Add `bench …` and `eval` to the command; `settings` reads the invocation's settings."""
    app.add_typer(bench, name="bench")

    @app.command("eval")
    def eval_cmd(
        scenario: Annotated[Path | None, typer.Option(help="Labelled scenario YAML (see bench/scenarios/).")] = None,
        recorded: Annotated[
            list[Path] | None, typer.Option(help="A labelled recording (CSV) or a folder of them, replayed and scored.")
        ] = None,
        labels: Annotated[
            Path | None, typer.Option(help="Anomaly windows as JSON: {file: [[start, end], ...]} or [[start, end], ...].")
        ] = None,
        label_column: Annotated[str | None, typer.Option(help="Per-row label column (1 = anomalous) instead.")] = None,
        kind: Annotated[str, typer.Option(help="Recordings: the device kind they are replayed as.")] = "pump",
        map_: Annotated[
            list[str] | None, typer.Option("--map", help="Recordings: column=metric or column=metric:unit.")
        ] = None,
        device_column: Annotated[str | None, typer.Option(help="Recordings: the column naming the device.")] = None,
        time_column: Annotated[str | None, typer.Option(help="Recordings: the time column.")] = None,
        learn: Annotated[str | None, typer.Option(help="Recordings: training window, ROWS or DURATION.")] = None,
        scale: Annotated[
            bool, typer.Option(help="Recordings: map each column linearly into its metric's physical range.")
        ] = False,
        json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    ) -> None:
        """Score alerts against the truth: a simulated scenario through broker, ingest and alerting, or
        labelled recordings through replay (per-point precision, recall, F1, false-alarm rate, window score)."""
        if recorded:
            from firewatch.bench import recorded as rec

            raise typer.Exit(rec.main(settings(), recorded, labels, label_column, kind, map_ or [], device_column,
                                      time_column, learn, scale, json))
        if scenario is None:
            raise typer.BadParameter("give --scenario FILE or --recorded FILE --labels FILE")
        from firewatch.bench import evaluate

        raise typer.Exit(evaluate.main(scenario, json))


@bench.command("ingest")
def bench_ingest(
    messages: Annotated[int, typer.Option(help="Messages to publish.")] = 400_000,
    devices: Annotated[int, typer.Option(help="Simulated devices sending them.")] = 5_000,
    processes: Annotated[int, typer.Option(help="Ingest processes on the shared subscription.")] = 1,
    batch_size: Annotated[int | None, typer.Option(help="Lines per InfluxDB write (default: the setting).")] = None,
    mqtt: Annotated[str | None, typer.Option(help="Use this broker (host:port) instead of starting one.")] = None,
    influx: Annotated[str | None, typer.Option(help="Use this InfluxDB URL instead of starting one.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    baseline: Annotated[str | None, typer.Option(
        help="Also run this git commit's ingest through the same stream, after this one's.")] = None,
    clients: Annotated[bool, typer.Option(
        "--clients", help="Also time the MQTT client libraries (contract.mqtt, paho, gmqtt) receiving it.")] = False,
) -> None:
    """Messages/s from MQTT into InfluxDB, against what mosquitto_sub receives (the ceiling)."""
    from firewatch.bench import ingest

    ingest.main(messages, devices, processes, batch_size, mqtt, influx, json, baseline, clients)


@bench.command("api")
def bench_api(
    devices: Annotated[int, typer.Option(help="Registered devices (and on the console map).")] = 20_000,
    alerts: Annotated[int, typer.Option(help="Open alerts.")] = 500,
    clients: Annotated[int, typer.Option(help="Concurrent HTTP clients.")] = 50,
    requests: Annotated[int, typer.Option(help="Requests per measured endpoint.")] = 2_000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="api worker processes (`firewatch api --workers`).")] = 2,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """API p50/p99 latency under concurrent clients, and the console's first render with many devices."""
    from firewatch.bench import api

    api.main(devices, alerts, clients, requests, workers, json)


@bench.command("notify")
def bench_notify(
    devices: Annotated[int, typer.Option(help="Electrical detectors sending background telemetry.")] = 20_000,
    rate: Annotated[float, typer.Option(help="Background messages per second.")] = 2_000.0,
    fires: Annotated[float, typer.Option(help="Panel fire alarms per second (each from a new panel).")] = 5.0,
    seconds: Annotated[float, typer.Option(help="How long to publish.")] = 30.0,
    standalone: Annotated[bool, typer.Option(help="notify as its own process (`firewatch notify`).")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Fire alarm published on MQTT -> first page received by a channel: p50/p99 under city load."""
    from firewatch.bench import notify

    notify.main(devices, rate, fires, seconds, json, standalone)


@bench.command("dashboards")
def bench_dashboards(
    devices: Annotated[int, typer.Option(help="Devices in the simulated city.")] = 1_000,
    hours: Annotated[float, typer.Option(min=1, help="Hours of history before now.")] = 30.0,
    districts: Annotated[int, typer.Option(min=1, help="Districts of the city.")] = 5,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Time every dashboard query on a simulated city, as Grafana sends it on first load."""
    from firewatch.bench import dashboards

    dashboards.main(devices, hours, districts, json)


@bench.command("alerting")
def bench_alerting(
    readings: Annotated[int, typer.Option(
        help="Readings for the in-process throughput run; 0: only the steady phase.")] = 400_000,
    devices: Annotated[int, typer.Option(help="Devices publishing in the end-to-end run.")] = 20_000,
    rate: Annotated[int, typer.Option(help="Messages per second in the end-to-end run.")] = 2_000,
    seconds: Annotated[float, typer.Option(help="Length of the end-to-end run.")] = 20.0,
    repeats: Annotated[int, typer.Option(min=1, help="Throughput runs per city; the median is reported.")] = 5,
    steady_devices: Annotated[int, typer.Option(min=1, help="Devices of the steady-rate phase.")] = 100_000,
    steady_rates: Annotated[str, typer.Option(
        help="Messages/s of the steady-rate phase, comma-separated; empty: no steady phase.")] = "2000,20000",
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Readings/s through detect+correlate+lifecycle, device-publish-to-alert-stored latency, and the running
    service's CPU per message at steady city rates beside ingest's."""
    from firewatch.bench import alerting

    rates = tuple(int(r) for r in steady_rates.split(",") if r.strip())
    alerting.main(readings, devices, rate, seconds, repeats, json, steady_devices, rates)


@bench.command("supervision")
def bench_supervision(
    units: Annotated[int, typer.Option(min=1, help="Units in the simulated city.")] = 10_000,
    devices: Annotated[int, typer.Option(min=1, help="Devices, shared evenly among the units.")] = 200_000,
    districts: Annotated[int, typer.Option(min=1, max=99, help="Districts of the city.")] = 10,
    reports: Annotated[int, typer.Option(min=0, help="Unit reports to render.")] = 1_000,
    reading_every_h: Annotated[float, typer.Option(help="Hours between a hydrant's or pump's readings.")] = 6.0,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """A month's scores for every unit of a simulated city, and its unit reports (PDF), with peak RSS."""
    from firewatch.bench import supervision

    supervision.main(units, devices, districts, reports, reading_every_h, json)


@bench.command("gateway")
def bench_gateway(
    connections: Annotated[int, typer.Option(help="Transmission devices connected at once.")] = 10_000,
    heartbeat_s: Annotated[float, typer.Option(help="Seconds between a device's heartbeats.")] = 20.0,
    hold_s: Annotated[float, typer.Option(help="How long to hold them.")] = 40.0,
    frames: Annotated[int, typer.Option(help="Fire frames in the throughput run.")] = 60_000,
    frame_connections: Annotated[int, typer.Option(help="Devices sending them.")] = 100,
    window: Annotated[int, typer.Option(help="Frames outstanding per device.")] = 16,
    rate: Annotated[float, typer.Option(help="Frames/s in the latency run.")] = 2_000.0,
    seconds: Annotated[float, typer.Option(help="Length of the latency run.")] = 15.0,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Connections held with heartbeats (and the gateway's RSS), frames/s confirmed, frame-to-MQTT latency."""
    from firewatch.bench import gateway

    gateway.main(connections, heartbeat_s, hold_s, frames, frame_connections, window, rate, seconds, json)


@bench.command("city")
def bench_city(
    devices: Annotated[int, typer.Option(min=10, help="Devices of the simulated city, at their kinds' real rates.")] = 100_000,
    seconds: Annotated[float, typer.Option(min=10, help="Length of the measured run, after the warm-up.")] = 120.0,
    warmup: Annotated[float, typer.Option(min=5, help="Seconds of the city publishing before the incidents start.")] = 30.0,
    alerting_workers: Annotated[int, typer.Option(min=1, max=5, help="Alerting processes over disjoint districts.")] = 1,
    store: Annotated[str | None, typer.Option(
        help="SQL store URL (default: a database created and dropped on PostgreSQL at 127.0.0.1:5432).")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """A whole city on one box: simulator, ingest, alerting, notify and the api as processes; published vs stored,
    alerts vs ground truth, publish→alert and page p50/p99, CPU and peak RSS per part."""
    from firewatch.bench import city

    city.main(devices, seconds, warmup, alerting_workers, store, json)
