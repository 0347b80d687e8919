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


# --- api (api/, bench/api.py) ---
api_app = typer.Typer(invoke_without_command=True, help="The REST API, live stream and console.")
token_app = typer.Typer(no_args_is_help=True, help="API tokens (roles viewer, operator, admin).")
api_app.add_typer(token_app, name="token")
app.add_typer(api_app, name="api")


@api_app.callback()
def api_cmd(ctx: typer.Context) -> None:
    """Serve the API and the console at [api] host:port."""
    if ctx.invoked_subcommand is None:
        import logging

        import api

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        api.serve(settings())


@token_app.command("create")
def api_token_create(
    role: Annotated[str, typer.Option(help="viewer, operator or admin.")],
    name: Annotated[str, typer.Option(help="Who holds it; the actor in the audit trail.")],
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    import asyncio

    from api.auth import RANK, issue

    if role not in RANK:
        raise typer.BadParameter(f"role must be one of {', '.join(RANK)}", param_hint="--role")
    print(asyncio.run(issue(settings().store.url, name, role)))  # type: ignore[arg-type]


@token_app.command("list")
def api_token_list() -> None:
    """List tokens: id, role, name, revoked or not."""
    import asyncio

    from api.auth import tokens

    for t in asyncio.run(tokens(settings().store.url)):
        print(f"{t.id}\t{t.role}\t{t.name}\t{'revoked' if t.revoked_ms else 'active'}")


@token_app.command("revoke")
def api_token_revoke(token_id: Annotated[int, typer.Argument(help="Token id from `token list`.")]) -> None:
    """Revoke a token (running apis stop accepting it within 10 s)."""
    import asyncio

    from api.auth import revoke_id

    if not asyncio.run(revoke_id(settings().store.url, token_id)):
        err.print(f"no active token {token_id}")
        raise typer.Exit(1)


@bench_app.command("api")
def bench_api(
    devices: Annotated[int, typer.Option(help="Registered devices (and on the console map).")] = 20_000,
    alerts: Annotated[int, typer.Option(help="Open alerts.")] = 500,
    clients: Annotated[int, typer.Option(help="Concurrent HTTP clients.")] = 50,
    requests: Annotated[int, typer.Option(help="Requests per measured endpoint.")] = 2_000,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """API p50/p99 latency under concurrent clients, and the console's first render with many devices."""
    from bench import api as bench

    bench.main(devices, alerts, clients, requests, json)
# --- end api ---


def main() -> None:
    try:
        app()
    except SettingsError as exc:
        err.print(f"[red]{exc}[/red]", highlight=False)
        raise SystemExit(2) from None
