"""The `firewatch` command. Each part keeps its logic; this module only wires options to it.

Settings are read once per command; a bad one ends the program with exit code 2
and a message that names the key.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

from firewatch.contract.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from firewatch.contract.db import Store
    from firewatch.contract.influx import Influx
    from firewatch.supervision import Draw, Period, PressureFloor, SupervisionConfig

T = TypeVar("T")

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__.splitlines()[0])
err = Console(stderr=True)
_config: Path | None = None


@app.callback()
def _root(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", envvar="FIREWATCH_CONFIG", help="TOML settings file."),
    ] = None,
) -> None:
    global _config
    _config = config


def settings() -> Settings:
    """The settings of this invocation; parts call it inside their commands."""
    return load_settings(_config)


def service_logging() -> None:
    """One log format for every long-running part; a line per HTTP request is noise to an operator."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)


@app.command("config")
def config_show(
    check_only: Annotated[
        bool, typer.Option("--check", help="Only check; print nothing but the problems (exit 2).")
    ] = False,
) -> None:
    """Check every part's settings and print them as the program sees them."""
    import orjson

    from firewatch.check import check

    s = settings()
    check(s)
    if check_only:
        err.print("settings OK", highlight=False)
        return
    sys.stdout.write(orjson.dumps(s.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode())
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


@app.command("ingest")
def ingest_cmd() -> None:
    """Store every MQTT reading in InfluxDB (shared subscription; run several to split the load)."""
    import asyncio

    from firewatch import ingest

    s = settings()
    service_logging()
    asyncio.run(ingest.run(s))


# --- end ingest ---


# --- api (api/, bench/api.py) ---
api_app = typer.Typer(invoke_without_command=True, help="The REST API, live stream and console.")
token_app = typer.Typer(no_args_is_help=True, help="API tokens (roles viewer, operator, admin).")
api_app.add_typer(token_app, name="token")
app.add_typer(api_app, name="api")


@api_app.callback()
def api_cmd(
    ctx: typer.Context,
    workers: Annotated[
        int | None, typer.Option(min=1, max=64, help="Processes serving the port (default [api] workers).")
    ] = None,
) -> None:
    """Serve the API and the console at [api] host:port."""
    if ctx.invoked_subcommand is None:
        from firewatch import api

        api.serve(settings(), workers, service_logging)


@token_app.command("create")
def api_token_create(
    role: Annotated[str, typer.Option(help="viewer, operator or admin.")],
    name: Annotated[str, typer.Option(help="Who holds it; the actor in the audit trail.")],
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    import asyncio

    from firewatch.api.auth import RANK, issue

    if role not in RANK:
        raise typer.BadParameter(f"role must be one of {', '.join(RANK)}", param_hint="--role")
    print(asyncio.run(issue(settings().store.url, name, role)))  # type: ignore[arg-type]


@token_app.command("list")
def api_token_list() -> None:
    """List tokens: id, role, name, revoked or not."""
    import asyncio

    from firewatch.api.auth import tokens

    for t in asyncio.run(tokens(settings().store.url)):
        print(f"{t.id}\t{t.role}\t{t.name}\t{'revoked' if t.revoked_ms else 'active'}")


@token_app.command("revoke")
def api_token_revoke(token_id: Annotated[int, typer.Argument(help="Token id from `token list`.")]) -> None:
    """Revoke a token (running apis stop accepting it within 10 s)."""
    import asyncio

    from firewatch.api.auth import revoke_id

    if not asyncio.run(revoke_id(settings().store.url, token_id)):
        err.print(f"no active token {token_id}")
        raise typer.Exit(1)


# --- end api ---


# --- notify (notify/) ---
@app.command("notify")
def notify_cmd(
    districts: Annotated[
        str | None, typer.Option(help="Only alerts of these districts, comma-separated (one stage per worker).")
    ] = None,
) -> None:
    """Page duty officers for alerts, as a service of its own (run alerting with [notify] embedded = false)."""
    import asyncio

    from firewatch import notify

    service_logging()
    asyncio.run(notify.run(settings(), [d for d in (districts or "").split(",") if d]))


roster_app = typer.Typer(no_args_is_help=True, help="The duty roster: people, channels, groups, shifts.")
app.add_typer(roster_app, name="roster")


@roster_app.command("load")
def roster_load(path: Annotated[Path, typer.Argument(help="Roster YAML (see docs/examples/roster.yaml).")]) -> None:
    """Replace the stored roster with a YAML file; nothing changes if the file is wrong."""
    import asyncio

    from firewatch.notify import RosterError, load_file

    try:
        roster = asyncio.run(load_file(settings().store.url, path))
    except (RosterError, OSError) as exc:
        err.print(f"[red]{exc}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    print(f"roster loaded: {len(roster.people)} people, {len(roster.groups)} groups, {len(roster.shifts)} shifts")


@roster_app.command("show")
def roster_show() -> None:
    """Print the stored roster as YAML (edit it and `roster load` it back)."""
    import asyncio

    from firewatch.notify import dump_yaml

    print(asyncio.run(dump_yaml(settings().store.url)), end="")


@roster_app.command("test")
def roster_test(person_id: Annotated[str, typer.Argument(help="Person id from the roster.")]) -> None:
    """Send a test message on each of a person's channels and say which arrived at their server."""
    import asyncio

    from firewatch.notify import Outgoing, notify_config, person, try_channels, word

    s = settings()
    config = notify_config(s)
    who = asyncio.run(person(s.store.url, person_id))
    if who is None or not who.channels:
        err.print(f"[red]no person {person_id!r} with channels in the roster[/red]", highlight=False)
        raise typer.Exit(2)
    lang = who.language or config.language
    test = Outgoing(word(lang, "test_title"), word(lang, "test_body"), "info", "test", {})
    results = asyncio.run(try_channels(config, who.channels, test))
    for url, outcome in results:
        print(f"{outcome:>4}  {url}" if outcome == "ok" else f"FAIL  {url}: {outcome}")
    if any(outcome != "ok" for _, outcome in results):
        raise typer.Exit(1)


@roster_app.command("now")
def roster_now() -> None:
    """Who is on duty now in each group, and the next handover."""
    import asyncio
    from datetime import datetime

    from firewatch.contract.db import now_ms
    from firewatch.notify import duty_now, notify_config

    s = settings()
    zone = notify_config(s).zone
    duty, handover = asyncio.run(duty_now(s.store.url, now_ms(), zone))
    for group, people in duty.groups.items():
        print(f"{group}: {', '.join(f'{p.name or p.id} ({p.id})' for p in people) or '-'}")
    if handover is not None:
        at = datetime.fromtimestamp(handover.at_ms / 1000, zone).strftime("%a %Y-%m-%d %H:%M %Z")
        print(f"next handover {at}:")
        for group, people in handover.groups.items():
            print(f"  {group}: {', '.join(p.name or p.id for p in people) or '-'}")


# --- end notify ---


# --- dashboards and devices (dashboards/, contract/credentials.py, deploy/) ---
dashboards_app = typer.Typer(no_args_is_help=True, help="Grafana dashboards: export, push, platform metrics.")
device_app = typer.Typer(no_args_is_help=True, help="The device registry and the devices' broker credentials.")
app.add_typer(dashboards_app, name="dashboards")
app.add_typer(device_app, name="device")
PasswordFile = Annotated[
    Path | None,
    typer.Option(
        envvar="FIREWATCH_BROKER_PASSWORD_FILE",
        help="Mosquitto password file to write, with its ACL beside it (default: mqtt.password_file); "
        "the shipped broker rereads both when they change.",
    ),
]


@dashboards_app.command("export")
def dashboards_export(folder: Annotated[Path, typer.Argument(help="Where to write <uid>.json files.")]) -> None:
    """Write the dashboards as JSON for Grafana's file provisioning."""
    from firewatch.dashboards.push import export

    for path in export(folder):
        print(path)


@dashboards_app.command("push")
def dashboards_push(
    url: Annotated[str, typer.Option(help="Grafana base URL, e.g. http://grafana:3000.")],
    token: Annotated[
        str, typer.Option(envvar="GRAFANA_TOKEN", help="Service-account token (Editor), or user:password.")
    ],
    influx_url: Annotated[str | None, typer.Option(help="InfluxDB as Grafana reaches it; default [influx] url.")] = None,
    influx_user: Annotated[str, typer.Option(envvar="GRAFANA_INFLUX_USER", help="InfluxDB read user.")] = "",
    influx_password: Annotated[str, typer.Option(envvar="GRAFANA_INFLUX_PASSWORD", help="Its password.")] = "",
    registry_url: Annotated[
        str | None,
        typer.Option(envvar="GRAFANA_REGISTRY_URL", help="postgresql:// URL of the device registry for the maps."),
    ] = None,
) -> None:
    """Install or update the data sources and dashboards in a running Grafana (idempotent)."""
    from firewatch.dashboards.push import InfluxSource, PushError, RegistrySource, install

    s = settings()
    sources = [InfluxSource(influx_url or s.influx.url, s.influx.database, influx_user, influx_password).datasource()]
    if registry_url:
        try:
            sources.append(RegistrySource(registry_url).datasource())
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--registry-url") from None
    try:
        report = install(url, token, sources)
    except PushError as exc:
        err.print(f"[red]{exc}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    print("\n".join(report))
    if not registry_url:
        err.print("no --registry-url: the two maps of the city overview stay empty until one is given")


@dashboards_app.command("relay")
def dashboards_relay(
    targets: Annotated[list[str], typer.Argument(help="SERVICE=URL of a Prometheus endpoint, e.g. ingest=http://ingest:9464/metrics.")],
    every: Annotated[float, typer.Option(min=1, help="Seconds between scrapes.")] = 15.0,
) -> None:
    """Copy the services' Prometheus metrics into InfluxDB for the platform-health dashboard."""
    import asyncio

    from firewatch.contract.influx import Influx
    from firewatch.dashboards.platform import Target, relay

    try:
        parsed = [Target.parse(t) for t in targets]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="TARGETS") from None
    service_logging()

    async def run() -> None:
        async with Influx(settings().influx) as influx:
            await relay(parsed, influx, every)

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


@device_app.command("add")
def device_add(
    device_id: Annotated[str, typer.Argument(help="Device id, also its MQTT username.")],
    kind: Annotated[str, typer.Option(help="electrical, hydrant, panel or pump.")],
    district: Annotated[str, typer.Option(help="District code, as in its topics.")],
    site: Annotated[str, typer.Option(help="Building or street it belongs to.")] = "",
    address: Annotated[str, typer.Option(help="Where to find it.")] = "",
    lat: Annotated[float | None, typer.Option(min=-90, max=90, help="Latitude.")] = None,
    lon: Annotated[float | None, typer.Option(min=-180, max=180, help="Longitude.")] = None,
    transmitter_address: Annotated[str | None, typer.Option(
        help="A panel's GB/T 26875.3 transmission device address (12 hex digits): the gateway "
             "publishes that device's events as this one.")] = None,
    password_file: PasswordFile = None,
) -> None:
    """Register a device (or re-register it with a new password) and print its broker credentials."""
    import asyncio
    import re

    from sqlalchemy.exc import IntegrityError

    from firewatch.contract.credentials import register_device
    from firewatch.contract.db import Device

    if transmitter_address is not None and not re.fullmatch(r"[0-9a-fA-F]{12}", transmitter_address):
        raise typer.BadParameter("must be 12 hex digits", param_hint="--transmitter-address")
    device = Device(id=device_id, kind=kind, district=district, site=site, address=address,
                    latitude=lat, longitude=lon)
    if transmitter_address:  # only when given: a re-registration keeps the address it had
        device.transmitter_address = transmitter_address.lower()
    password_file = password_file or settings().mqtt.password_file
    try:
        creds = asyncio.run(register_device(settings().store.url, device, password_file, actor="cli"))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    except IntegrityError:
        raise typer.BadParameter(f"transmitter address {transmitter_address} belongs to another device",
                                 param_hint="--transmitter-address") from None
    print(f"username: {creds.username}\npassword: {creds.password}\ntopics:   fire/v1/{district}/{device_id}/#")
    if password_file is None:
        err.print("no --password-file: add this line to the broker's password file, then reload it:")
        print(creds.password_file_line)
    else:
        err.print(f"added to {password_file} and its ACL; the shipped broker rereads them within seconds")


@device_app.command("retire")
def device_retire(
    device_id: Annotated[str, typer.Argument(help="Device id.")],
    password_file: PasswordFile = None,
) -> None:
    """Retire a device: off the map, and its broker password and ACL entry removed."""
    import asyncio

    from firewatch.contract.credentials import retire_device
    from firewatch.contract.db import open_store

    password_file = password_file or settings().mqtt.password_file

    async def retire() -> bool:
        store = await open_store(settings().store.url)
        try:
            return await retire_device(store, device_id, password_file, actor="cli") is not None
        finally:
            await store.aclose()

    if not asyncio.run(retire()):
        err.print(f"[red]no device {device_id}[/red]", highlight=False)
        raise typer.Exit(1)
    if password_file is None:
        err.print("no --password-file: remove its line from the broker's password file and ACL by hand")


@device_app.command("list")
def device_list() -> None:
    """Registered devices: id, kind, district, site, coordinates, whether they have broker credentials."""
    import asyncio

    from sqlalchemy import select

    from firewatch.contract.db import Device, open_store

    async def rows() -> list[Device]:
        store = await open_store(settings().store.url)
        try:
            async with store.session() as s:
                return list((await s.scalars(select(Device).order_by(Device.id))).all())
        finally:
            await store.aclose()

    for d in asyncio.run(rows()):
        place = f"{d.latitude},{d.longitude}" if d.latitude is not None else "-"
        creds = "credentials" if d.mqtt_password_hash else "no credentials"
        print(f"{d.id}\t{d.kind}\t{d.district}\t{d.site}\t{place}\t{creds}")
districts_app = typer.Typer(no_args_is_help=True, help="The district registry: code → name, for every screen and message.")
app.add_typer(districts_app, name="districts")


@districts_app.command("load")
def districts_load(
    path: Annotated[Path, typer.Argument(help="CSV: code,name,name_en,latitude,longitude (simulators/data/districts.csv).")],
) -> None:
    """Replace the district registry with a CSV file; a bad line names itself and nothing changes."""
    import asyncio

    from firewatch.contract.db import open_store
    from firewatch.contract.districts import RegistryError, parse_csv, replace_registry

    try:
        rows = parse_csv(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, RegistryError) as exc:
        err.print(f"[red]{path}: {exc}[/red]", highlight=False)
        raise typer.Exit(2) from None

    async def load() -> None:
        store = await open_store(settings().store.url)
        try:
            await replace_registry(store, rows)
        finally:
            await store.aclose()

    asyncio.run(load())
    print(f"loaded {len(rows)} districts")


store_app = typer.Typer(no_args_is_help=True, help="The SQL store: bring one made by an older firewatch up to date.")
app.add_typer(store_app, name="store")


@store_app.command("upgrade")
def store_upgrade(
    check: Annotated[bool, typer.Option("--check", help="Only say what is missing; exit 1 if anything is.")] = False,
) -> None:
    """Create missing tables, add the columns newer code needs and drop retired ones that would refuse new rows, in every part's tables."""
    import asyncio

    import firewatch.alerting.service
    import firewatch.api
    import firewatch.gateway
    import firewatch.notify
    import firewatch.supervision  # noqa: F401 - every part's tables, so none is left behind
    from firewatch.contract.db import Store

    async def upgrade() -> list[str]:
        store = Store(settings().store.url)
        try:
            return await (store.missing() if check else store.upgrade())
        finally:
            await store.aclose()

    changed = asyncio.run(upgrade())
    verb = "to change" if check else "changed"
    print(f"{verb}: {', '.join(changed)}" if changed else "the store is up to date")
    if check and changed:
        raise typer.Exit(1)


# --- end dashboards and devices ---


# --- simulators (simulators/) ---
@app.command("simulate")
def simulate(
    devices: Annotated[int, typer.Option(help="Devices in the city.")] = 200,
    seed: Annotated[int, typer.Option(help="Same seed, same city and same messages.")] = 1,
    districts: Annotated[int, typer.Option(help="Districts the devices spread over.")] = 5,
    rate: Annotated[float, typer.Option(help="Messages/s in total (event time); 0: each kind's own period.")] = 0.0,
    duration: Annotated[str | None, typer.Option(help="Event time to run: 90s, 10m, 2h, 3d; 0 publishes nothing. Default: until Ctrl-C (live), 1d (--start).")] = None,
    start: Annotated[str | None, typer.Option(help="Accelerated mode from this event time: ISO time or offset from now (-3d).")] = None,
    speed: Annotated[float | None, typer.Option(help="Event seconds per wall second; 0: as fast as the broker takes. Default 1 live, 0 with --start.")] = None,
    scenario: Annotated[Path | None, typer.Option(help="Scenario YAML with incidents to inject.")] = None,
    truth: Annotated[Path | None, typer.Option(help="Write the scenario's ground truth here (JSON lines).")] = None,
    registry_csv: Annotated[Path | None, typer.Option(help="Write the device registry here (CSV).")] = None,
    register: Annotated[bool, typer.Option("--register", help="Upsert the devices into the SQL store's registry.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write the messages to this JSON-lines file instead of publishing.")] = None,
    qos: Annotated[int, typer.Option(help="MQTT QoS, 0 or 1.")] = 1,
    connections: Annotated[int | None, typer.Option(help="MQTT connections; 0: one per device with its last will (default up to 200 devices, else 4).")] = None,
    malformed: Annotated[float, typer.Option(help="Chaos: share of messages followed by an invalid one.")] = 0.0,
    duplicates: Annotated[float, typer.Option(help="Chaos: share of messages sent twice.")] = 0.0,
    out_of_order: Annotated[float, typer.Option(help="Chaos: share held back 2-60 s.")] = 0.0,
    late: Annotated[float, typer.Option(help="Chaos: share held back 10 min - 2 h.")] = 0.0,
    skew: Annotated[float, typer.Option(help="Chaos: share of devices with a clock off by up to --skew-s.")] = 0.0,
    skew_s: Annotated[float, typer.Option(help="Chaos: largest clock skew in seconds.")] = 600.0,
    batch: Annotated[int, typer.Option(help="Chaos: readings per telemetry message (gateway JSON arrays).")] = 1,
    chaos_seed: Annotated[int, typer.Option(help="Seed of the chaos choices.")] = 0,
    json: Annotated[bool, typer.Option("--json", help="Print the tally as one JSON object.")] = False,
    interval: Annotated[list[str] | None, typer.Option(help="KIND=SECONDS reporting period (repeatable), e.g. hydrant=60.")] = None,
) -> None:
    """Run a simulated city over MQTT: electrical, hydrant, panel and pump devices, incidents and chaos."""
    from firewatch.simulators import Chaos, ScenarioError
    from firewatch.simulators.command import Options, UsageError, run

    chaos = Chaos(malformed, duplicates, out_of_order, late, skew, skew_s, max(1, batch), chaos_seed)
    options = Options(devices, seed, districts, rate, duration, start, speed, scenario, truth, registry_csv,
                      register, out, qos, connections, chaos, json, interval or [])
    try:
        raise typer.Exit(run(settings(), options))
    except (UsageError, ScenarioError, ValueError) as exc:
        err.print(f"[red]{exc}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
# --- end simulators ---


# --- alerting (alerting/, bench/alerting.py) ---
@app.command("alerting")
def alerting_cmd(
    districts: Annotated[
        str | None, typer.Option(help="Only these districts, comma-separated (workers split a city).")
    ] = None,
    clock: Annotated[str | None, typer.Option(help="wall (live, default) or event: what drives timers.")] = None,
) -> None:
    """Detect, correlate and keep alerts from the broker's device messages."""
    import asyncio

    from firewatch import notify
    from firewatch.alerting import service

    s = settings()
    if clock:
        s.alerting = {**s.alerting, "clock": clock}
    service_logging()
    only = [d for d in (districts or "").split(",") if d]
    asyncio.run(service.run(s, only, followers=notify.embedded(s, only)))


@app.command("replay")
def replay_cmd(
    file: Annotated[Path, typer.Argument(help="CSV of recorded readings, any separator, with a time column.")],
    kind: Annotated[str, typer.Option(help="Device kind: electrical, hydrant or pump.")],
    device: Annotated[str | None, typer.Option(help="Device id the readings belong to.")] = None,
    device_column: Annotated[
        str | None, typer.Option(help="Column naming each row's device, for a file of several devices.")
    ] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="column=metric, when a column is not named as the metric; "
                     "column=metric:unit (bar, L/min, degF...) when it is in another unit."),
    ] = None,
    time_column: Annotated[str | None, typer.Option(help="Time column (ISO-8601, epoch s or ms).")] = None,
    learn: Annotated[
        str | None, typer.Option(help="Training window: ROWS (400) or a DURATION (6h) per device; raises nothing.")
    ] = None,
    district: Annotated[str, typer.Option(help="District the device is in (for district overrides).")] = "replay",
    site: Annotated[str, typer.Option(help="Site of the device (for site overrides).")] = "",
) -> None:
    """Replay recorded readings through the detectors in event time; alerts as JSON lines, a summary on stderr."""
    from firewatch.alerting import replay

    replay.main(settings(), file, device, kind, map_ or [], time_column, district, site, device_column, learn)


# --- end alerting ---


# --- gateway (gateway/, bench/gateway.py) ---
gateway_app = typer.Typer(no_args_is_help=True, help="Protocol gateways: GB/T 26875.3 transmission devices.")
app.add_typer(gateway_app, name="gateway")


@gateway_app.command("gb26875")
def gateway_gb26875(
    listen: Annotated[list[str] | None, typer.Option(help="HOST:PORT to accept devices on (repeatable); "
                                                        "default [gateway.gb26875] listen.")] = None,
) -> None:
    """Accept user information transmission devices (GB/T 26875.3 over TCP) and publish their events."""
    import asyncio

    from firewatch.gateway import service

    s = settings()
    try:
        for address in listen or []:
            service.parse_listen(address)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--listen") from None
    service_logging()
    try:
        asyncio.run(service.run(s, listen or None))
    except KeyboardInterrupt:
        pass


@gateway_app.command("duty-check")
def gateway_duty_check(
    device: Annotated[str | None, typer.Option(help="One device: its id or transmitter address.")] = None,
    district: Annotated[str | None, typer.Option(help="Every device of this district.")] = None,
    by: Annotated[str, typer.Option(help="Who asks (kept with the result).")] = "cli",
) -> None:
    """Ask control rooms to answer a duty check (查岗): one device, a district, or all connected."""
    import asyncio
    import uuid

    from firewatch.contract.mqtt import MqttError
    from firewatch.gateway.duty import DutyRequest
    from firewatch.gateway.publisher import request_duty_check

    req = DutyRequest(uuid.uuid4().hex[:16], by, device, district)
    try:
        asyncio.run(request_duty_check(settings().mqtt, req))
    except MqttError as exc:
        err.print(f"duty check not sent: {exc} (mqtt.host, mqtt.port)")
        raise typer.Exit(1) from None
    print(f"duty check {req.request_id} sent to the gateways; results: GET /api/v1/duty-checks?request_id="
          f"{req.request_id}")
# --- end gateway ---


# --- unit scores and random inspections (supervision/) ---
inspect_app = typer.Typer(no_args_is_help=True, help="Random inspections (双随机): draws weighted by grade, replays.")
app.add_typer(inspect_app, name="inspect")


def _supervision_run(job: Callable[[Store, Influx, SupervisionConfig], Awaitable[T]]) -> T:
    """Run `job(store, influx, config)` against this invocation's store and InfluxDB."""
    import asyncio

    import firewatch.gateway  # noqa: F401 - its duty-check table is one the scores read
    from firewatch.contract.db import open_store
    from firewatch.contract.influx import Influx
    from firewatch.supervision import load as supervision_config

    s = settings()
    config = supervision_config(s)

    async def go() -> T:
        store = await open_store(s.store.url)
        influx = Influx(s.influx)
        try:
            return await job(store, influx, config)
        finally:
            await influx.aclose()
            await store.aclose()

    return asyncio.run(go())


def _pressure_floor() -> PressureFloor:
    """The floors alerting judges this invocation's hydrants and pumps by (its `[alerting]` settings)."""
    from firewatch.alerting import config as alerting_config
    from firewatch.api import pressure_floor

    return pressure_floor(alerting_config.load(settings().alerting))


def _month_or_exit(label: str) -> Period:
    from firewatch.supervision import month

    try:
        return month(label)
    except ValueError as exc:
        err.print(f"[red]--month: {exc}[/red]", highlight=False)
        raise typer.Exit(2) from None


@app.command("scores")
def scores_cmd(
    month_label: Annotated[str, typer.Option("--month", help="YYYY-MM (China Standard Time).")],
    district: Annotated[str | None, typer.Option(help="Only this district's units.")] = None,
) -> None:
    """Score every unit for a month from the platform's records (as of the month's end) and keep the scores."""
    import orjson

    from firewatch.supervision import month_scores

    period = _month_or_exit(month_label)
    floor = _pressure_floor()
    found = _supervision_run(lambda store, influx, c: month_scores(store, influx, c, period, district, floor=floor))
    for x in sorted(found, key=lambda x: x.score):
        print(orjson.dumps(x.as_dict()).decode())


@app.command("report")
def report_cmd(
    month_label: Annotated[str, typer.Option("--month", help="YYYY-MM (China Standard Time).")],
    out: Annotated[Path, typer.Option(help="Folder the PDFs are written to.")],
    district: Annotated[str | None, typer.Option(help="This district's report and its units'.")] = None,
    unit: Annotated[int | None, typer.Option(help="Only this unit's report.")] = None,
) -> None:
    """Monthly reports in Chinese as PDF: per unit and per district (neither option: every district and unit)."""
    import asyncio

    from firewatch.supervision import (
        ReportError,
        Unit,
        gather_district,
        gather_units,
        render_district,
        render_unit,
    )

    period = _month_or_exit(month_label)
    if district is not None and unit is not None:
        err.print("[red]--district and --unit: give one of them, or neither for every district[/red]")
        raise typer.Exit(2)
    out.mkdir(parents=True, exist_ok=True)
    floor = _pressure_floor()

    async def job(store: Store, influx: Influx, c: SupervisionConfig) -> list[Path]:
        from sqlalchemy import select

        async with store.session() as s:
            districts = ([district] if district is not None else [] if unit is not None else
                         sorted(set((await s.execute(select(Unit.district).where(Unit.retired_ms.is_(None))))
                                    .scalars())))
        written = []
        for d in districts:
            body = await asyncio.to_thread(render_district, await gather_district(store, influx, c, period, d, floor), c)
            written.append(out / f"district-{d}-{period.label}.pdf")
            written[-1].write_bytes(body)
        for d in districts or [None]:
            months = await gather_units(store, influx, c, period, d, [unit] if unit is not None else None, floor)
            if unit is not None and not months:
                err.print(f"[red]--unit: unit {unit} does not exist[/red]")
                raise typer.Exit(2)
            for m in months:
                written.append(out / f"unit-{m.unit.id}-{period.label}.pdf")
                written[-1].write_bytes(await asyncio.to_thread(render_unit, m, c))
        return written

    try:
        written = _supervision_run(job)
    except ReportError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    print(f"wrote {len(written)} reports to {out}")


@inspect_app.command("draw")
def inspect_draw(
    district: Annotated[str, typer.Option(help="District code.")],
    count: Annotated[int, typer.Option(min=1, help="Units to draw.")],
    seed: Annotated[int | None, typer.Option(min=0, help="Seed (omitted: a random one, recorded).")] = None,
    who: Annotated[str, typer.Option(help="Who draws (recorded).")] = "cli",
) -> None:
    """Draw units of a district for inspection, weighted by their latest grade; the draw is recorded."""
    from firewatch.supervision import draw

    row = _supervision_run(lambda store, _influx, c: draw(store, c.inspections, district, count, who, seed))
    print(f"draw {row.id}: seed {row.seed}, {len(row.candidates)} candidates, "
          f"{len(row.excluded)} excluded; drawn units {row.result}")


@inspect_app.command("replay")
def inspect_replay(draw_id: Annotated[int, typer.Argument(help="The recorded draw's id.")]) -> None:
    """Re-run a recorded draw from its record alone; exit 1 if it does not give the same units."""
    from firewatch.supervision import Draw, replay

    async def job(store: Store, _influx: Influx, _c: SupervisionConfig) -> Draw | None:
        async with store.session() as s:
            return await s.get(Draw, draw_id)

    row = _supervision_run(job)
    if row is None:
        err.print(f"[red]draw {draw_id} does not exist[/red]")
        raise typer.Exit(2)
    again = replay(row)
    print(f"draw {draw_id}: recorded {row.result}, replayed {again}")
    if again != row.result:
        raise typer.Exit(1)


def _add_plugins() -> None:
    """Commands other packages add, found by entry point (bench/ adds `bench …` and `eval`), so the
    product command depends on none of them and works without them."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="firewatch.commands"):
        ep.load()(app, settings)


_add_plugins()


def main() -> None:
    try:
        app()
    except SettingsError as exc:
        err.print(f"[red]{exc}[/red]", highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
