"""Settings: a TOML file, overridden by FIREWATCH_* environment variables.

`FIREWATCH_INFLUX__URL` sets `[influx] url`. A bad value stops the program with
the key and what is wrong (SettingsError), never a traceback, because the
person reading it is an installer editing a file, not a developer.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from firewatch.contract.payload import MAX_PAYLOAD_BYTES

ENV_FILE_VAR = "FIREWATCH_CONFIG"
DEFAULT_FILE = "firewatch.toml"
ENV_PREFIX = "FIREWATCH_"
OTHER_ENV = frozenset({ENV_FILE_VAR, "FIREWATCH_BROKER_PASSWORD_FILE", "FIREWATCH_BROWSER", "FIREWATCH_VERSION"})
"""FIREWATCH_* names that are not settings: the file's name, `device passwd`'s file, setup's
browser switch, the compose image tag."""


def _url(schemes: tuple[str, ...], optional: bool = False) -> AfterValidator:
    """A URL an installer typed: without its scheme (`db:8086`) it would fail later, far from the key."""

    def check(value: str) -> str:
        if optional and not value:
            return value
        parts = urlsplit(value)
        scheme = parts.scheme.split("+")[0]
        if scheme not in schemes or not (parts.netloc or scheme == "sqlite"):
            raise ValueError(f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
        return value

    return AfterValidator(check)


HttpUrl = Annotated[str, _url(("http", "https"))]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: Path | None = None
    keepalive_s: int = Field(30, ge=5, le=3600)
    client_id_prefix: str = "firewatch"
    connect_timeout_s: float = Field(10.0, gt=0, le=300)
    """TCP, TLS, CONNECT and SUBSCRIBE together; a broker silent past it counts as down."""
    password_file: Path | None = None
    """The broker's password file (Mosquitto `password_file`), which firewatch rewrites with its
    ACL beside it (`acl`) whenever a device is registered or retired; None: the broker's
    credentials are kept by hand."""
    reconnect_max_s: float = Field(0.5, gt=0, le=300)
    """Longest wait between reconnect tries (jittered): a local broker back from a restart is
    used within this, before the devices' queued messages find no subscriber."""


class InfluxSettings(_Section):
    url: HttpUrl = "http://127.0.0.1:8086"
    api: Literal["v1", "v2"] = "v1"
    database: str = Field("firewatch", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """Database (1.x) or bucket (2.x/3.x)."""
    org: str = ""
    token: str = ""
    timeout_s: float = Field(10.0, gt=0, le=300)
    retention: str = Field("400d", pattern=r"^(\d+[dhw]|INF)$")


class IngestSettings(_Section):
    share_group: str = Field("", pattern=r"^[A-Za-z0-9_-]{0,64}$")
    """Empty: one ingest process on a plain persistent subscription, the only kind Mosquitto
    2.0.11 restores after a restart. A name: several processes share `$share/{name}/…`, for
    brokers that restore shared subscriptions (Mosquitto >= 2.0.12); see docs/ingest.md."""
    share_session_expiry_s: int = Field(10, ge=0, le=7 * 24 * 3600)
    """With a share group: how long the broker keeps a vanished member's session, and so how
    long its share still goes to it before the others get it."""
    batch_size: int = Field(20_000, ge=1, le=100_000)
    """Lines per InfluxDB write; larger costs InfluxDB less CPU per point, and a batch
    is written after flush_interval_s however few lines it holds."""
    flush_interval_s: float = Field(0.2, gt=0, le=60)
    spool_dir: Path = Path(".firewatch/spool")
    dead_letter_file: Path = Path(".firewatch/dead-letter.jsonl")
    max_payload_bytes: int = Field(MAX_PAYLOAD_BYTES, ge=64, le=MAX_PAYLOAD_BYTES)
    """Messages larger than this are rejected `oversized`; at most what payload parsing accepts."""
    metrics_port: int = Field(9464, ge=0, le=65535)
    """0 turns the Prometheus endpoint off."""
    client_id: str = ""
    """Empty: derived from the host name, so a restarted process resumes its session."""


class StoreSettings(_Section):
    url: Annotated[str, _url(("sqlite", "postgresql", "postgres"))] = "sqlite:///.firewatch/firewatch.db"


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)
    """Processes serving the port (`firewatch api --workers N` wins); device statuses are still recorded once."""
    public_url: HttpUrl = "http://127.0.0.1:8080"
    """Where phones reach the acknowledge pages."""
    secret: str = ""
    """Signs acknowledge links; empty makes one per data folder."""
    map_tile_url: Annotated[str, _url(("http", "https"), optional=True)] = ""
    map_layer: Path | None = None
    """A GeoJSON file of district boundaries (Polygon, property `district`) and roads (LineString)
    drawn under the devices; `firewatch up` uses the simulated city's."""


class UpSettings(_Section):
    data_dir: Path = Path(".firewatch")
    start_services: bool | None = None
    """When nothing answers at the broker's or InfluxDB's address: None starts one of its own only
    at the default loopback address (asking first at any other, when run at a terminal), true
    starts one at the configured address, false never does."""
    simulate_devices: int = Field(200, ge=0, le=1_000_000)
    simulate_rate: float = Field(0.0, ge=0)
    """Messages per second of the demo city; 0 uses each kind's own interval."""


class Gb26875Variant(_Section):
    """How one vendor's transmission devices deviate from GB/T 26875.3-2011 (the defaults)."""

    time: Literal["binary", "bcd"] = "binary"
    """The 6-byte time fields: one binary byte each (the standard), or BCD."""
    checksum: Literal["sum", "xor"] = "sum"
    """Sum mod 256 of the bytes from the serial through the data unit (the standard), or their XOR."""
    max_unit_bytes: int = Field(1024, ge=2, le=1024)
    """Longest data unit accepted; some vendors stop at 512."""
    address_order: Literal["little", "big"] = "little"
    """Byte order of the 6-byte source and destination addresses."""
    loop_bytes: tuple[int, int] = (2, 3)
    """Which bytes of the 4-byte component address hold the loop (little-endian, first to last)."""
    point_bytes: tuple[int, int] = (0, 1)
    """Which bytes of the 4-byte component address hold the point."""
    vendor_commands: Literal["deny", "confirm"] = "deny"
    """Commands 128-255 (login frames with user and password on some models): deny, or confirm and
    otherwise ignore them."""
    test_bit: bool = True
    """Bit 0 of a state word clear means test mode (the standard); False for vendors that send 0
    for normal."""


class Gb26875Settings(Gb26875Variant):
    """`[gateway.gb26875]`: the transmission-device gateway; variant keys here are every port's default."""

    listen: list[str] = Field(default_factory=lambda: ["0.0.0.0:8181"], min_length=1)
    """HOST:PORT to accept transmission devices on (there is no standard port; 8181 is common)."""
    center_address: str = Field("000000000000", pattern=r"^[0-9a-fA-F]{12}$")
    """This center's 6-byte address (12 hex digits), the destination devices send to."""
    timezone: str = "Asia/Shanghai"
    """Device clocks are local time without a zone; this names it."""
    timeout_s: float = Field(10.0, gt=0, le=10)
    """How long the center waits for an answer to its own request (GB/T 26875.3: <= 10 s)."""
    retries: int = Field(3, ge=0, le=3)
    """How often the center repeats a request that got no answer (GB/T 26875.3: <= 3)."""
    inspection_period_s: float = Field(600.0, ge=5, le=7200)
    """A link silent this long is inspected (81); one silent past inspection plus its retries goes
    offline (GB 50440: <= 2 h)."""
    duty_window_s: float = Field(600.0, ge=10, le=3600)
    """How long a control room has to answer a duty check (the device sounds for up to 10 min)."""
    duty_shifts: list[str] = Field(default_factory=lambda: ["08:00-20:00", "20:00-08:00"])
    """Shifts (HH:MM-HH:MM, local time) in each of which every connected device gets one duty check
    at a random moment; empty turns the random checks off."""
    clock_skew_s: float = Field(60.0, ge=1)
    """A device whose clock is off by more than this gets a clock sync (90)."""
    max_connections: int = Field(20_000, ge=1, le=1_000_000)
    metrics_port: int = Field(9467, ge=0, le=65535)
    """Prometheus endpoint; 0 turns it off."""
    ports: dict[int, Gb26875Variant] = Field(default_factory=dict)
    """Variant per listening port: `[gateway.gb26875.ports.8182] checksum = "xor"`."""
    devices: dict[str, Gb26875Variant] = Field(default_factory=dict)
    """Variant per device address (12 hex digits), over its port's."""

    @field_validator("devices")
    @classmethod
    def _addresses(cls, v: dict[str, Gb26875Variant]) -> dict[str, Gb26875Variant]:
        bad = [k for k in v if not re.fullmatch(r"[0-9a-fA-F]{12}", k)]
        if bad:
            raise ValueError(f"device address {bad[0]!r} must be 12 hex digits")
        return {k.lower(): x for k, x in v.items()}

    @field_validator("duty_shifts")
    @classmethod
    def _shifts(cls, v: list[str]) -> list[str]:
        for shift in v:
            if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d", shift):
                raise ValueError(f"shift {shift!r} must be HH:MM-HH:MM")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v


class GatewaySettings(_Section):
    gb26875: Gb26875Settings = Gb26875Settings()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FIREWATCH_", env_nested_delimiter="__", extra="forbid", nested_model_default_partial_update=True
    )
    mqtt: MqttSettings = MqttSettings()
    influx: InfluxSettings = InfluxSettings()
    ingest: IngestSettings = IngestSettings()
    store: StoreSettings = StoreSettings()
    api: ApiSettings = ApiSettings()
    up: UpSettings = UpSettings()
    gateway: GatewaySettings = GatewaySettings()
    alerting: dict[str, Any] = Field(default_factory=dict)
    """Owned and validated by the alerting part (thresholds per kind, district, site, device)."""
    notify: dict[str, Any] = Field(default_factory=dict)
    """Owned and validated by the notify part."""
    supervision: dict[str, Any] = Field(default_factory=dict)
    """Owned and validated by the supervision part (hazard thresholds, deadlines, photos)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment outranks the file (passed as init values): deployments override files.
        return (env_settings, init_settings)


class SettingsError(Exception):
    """A setting is wrong; the message names the key. The CLI exits 2 on it."""


def _describe(err: ValidationError, source: str) -> str:
    lines = [f"bad setting in {source}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        got = e.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {key}: {e['msg'].removeprefix('Value error, ')}{shown}")
    return "\n".join(lines)


def _known_key(model: Any, path: list[str]) -> bool:
    """A key path inside a section (`gb26875__metrics_port` in [gateway]); below a dict, anything goes."""
    for name in path:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return True
        field = model.model_fields.get(name)
        if field is None:
            return False
        model = field.annotation
    return True


def unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """FIREWATCH_* variables that set nothing, each with what was probably meant.

    pydantic-settings ignores them, so `FIREWATCH_MQTT_PORT=1884` (one underscore) would
    leave the port at 1883 without a word.
    """
    sections = {name: field.annotation for name, field in Settings.model_fields.items()}
    known = [
        f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
        for section, model in sections.items()
        if isinstance(model, type) and issubclass(model, BaseModel)
        for key in model.model_fields
    ]
    out = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in OTHER_ENV:
            continue
        section, sep, key = upper[len(ENV_PREFIX):].partition("__")
        model = sections.get(section.lower())
        if sep and key and model is not None:
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                continue  # [alerting] and [notify]: their parts check what lies beneath
            if _known_key(model, key.lower().split("__")):
                continue
        guess = difflib.get_close_matches(upper, known, n=1, cutoff=0.85)
        out.append(f"{name}: not a setting" + (f" (did you mean {guess[0]}?)" if guess else ""))
    return out


def load_settings(path: Path | str | None = None) -> Settings:
    """Read the file named by `path`, $FIREWATCH_CONFIG or ./firewatch.toml if present."""
    chosen = path or os.environ.get(ENV_FILE_VAR)
    file = Path(chosen) if chosen else Path(DEFAULT_FILE)
    data: dict[str, Any] = {}
    if file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"bad setting file {file}: {exc}") from None
    elif chosen:
        raise SettingsError(f"setting file {file} does not exist")
    unknown = [f"  {u}" for u in unknown_environment(os.environ)]
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise SettingsError("\n".join([_describe(exc, f"{file} or FIREWATCH_* environment"), *unknown])) from None
    if unknown:
        raise SettingsError("\n".join(["bad setting in the FIREWATCH_* environment:", *unknown]))
    return settings
