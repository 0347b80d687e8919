"""The `firewatch` command. Each part keeps its logic; this module only wires options to it.

Settings are read once per command; a bad one ends the program with exit code 2
and a message that names the key.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from contract.settings import Settings, SettingsError, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__.splitlines()[0])
err = Console(stderr=True)
_config: Path | None = None


@app.callback()
def _root(
    config: Annotated[
        Optional[Path],
        typer.Option("--config", "-c", envvar="FIREWATCH_CONFIG", help="TOML settings file."),
    ] = None,
) -> None:
    global _config
    _config = config


def settings() -> Settings:
    """The settings of this invocation; parts call it inside their commands."""
    return load_settings(_config)


@app.command("config")
def config_show() -> None:
    """Check the settings and print them as the program sees them."""
    import orjson

    sys.stdout.write(orjson.dumps(settings().model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode())
    sys.stdout.write("\n")


@app.command("up")
def up(
    devices: Annotated[int, typer.Option(help="Devices in the simulated city (0: none).")] = -1,
) -> None:
    """Run the whole platform here: broker, InfluxDB, ingest, alerting, api and a simulated city."""
    from firewatch import up as embedded

    s = settings()
    raise typer.Exit(embedded.run(s, _config, s.up.simulate_devices if devices < 0 else devices))


# --- ingest (ingest/, bench/ingest.py) ---
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks; each prints one JSON object with --json.")
app.add_typer(bench_app, name="bench")


@app.command("ingest")
def ingest_cmd() -> None:
    """Store every MQTT reading in InfluxDB (shared subscription; run several to split the load)."""
    import asyncio
    import logging

    import ingest

    s = settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(ingest.run(s))


@bench_app.command("ingest")
def bench_ingest(
    messages: Annotated[int, typer.Option(help="Messages to publish.")] = 400_000,
    devices: Annotated[int, typer.Option(help="Simulated devices sending them.")] = 5_000,
    processes: Annotated[int, typer.Option(help="Ingest processes on the shared subscription.")] = 2,
    mqtt: Annotated[Optional[str], typer.Option(help="Use this broker (host:port) instead of starting one.")] = None,
    influx: Annotated[Optional[str], typer.Option(help="Use this InfluxDB URL instead of starting one.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Messages/s from MQTT into InfluxDB, against what mosquitto_sub receives (the ceiling)."""
    from bench import ingest as bench

    bench.main(messages, devices, processes, mqtt, influx, json)
# --- end ingest ---


def main() -> None:
    try:
        app()
    except SettingsError as exc:
        err.print(f"[red]{exc}[/red]", highlight=False)
        raise SystemExit(2) from None
