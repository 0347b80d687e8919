"""The `[notify]` settings: routes, escalation chains, channels, language, limits.

`Settings.notify` is a free dict in the shared contract; this model gives it a
shape and refuses a bad value with the key named, because the person reading
the error is an installer editing firewatch.toml.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from firewatch.contract.db import Severity
from firewatch.contract.settings import Settings, SettingsError

MATCH_FIELDS = ("severity", "kind", "district", "site", "department")
GROUP_FIELDS = ("district", "site", "department", "kind", "rule", "device_id", "zone", "severity")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


DEFAULT_FALLBACK = ("group:console", "group:leaders")
"""Who is paged when a step reaches nobody: the center's console operators and every leader."""


def _targets(targets: list[str]) -> list[str]:
    for t in targets:
        prefix, _, name = t.partition(":")
        if prefix not in ("group", "person", "channel") or not name:
            raise ValueError(f"target {t!r} is not group:ID, person:ID or channel:NAME")
    return targets


Targets = Annotated[list[str], Field(min_length=1), AfterValidator(_targets)]
"""`group:ID`, `person:ID` or `channel:NAME` (a named URL), at least one."""


class Step(_Model):
    """Notify these targets, then wait before the next step."""

    notify: Targets
    """`group:ID` (who of the group is on duty), `person:ID`, or `channel:NAME` (a named URL)."""
    wait_min: float = Field(5.0, gt=0, le=24 * 60)


class Route(_Model):
    """Which alerts go to whom; an empty match list matches everything."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    severity: list[Severity] = []
    kind: list[str] = []
    district: list[str] = []
    site: list[str] = []
    department: list[str] = []
    """Supervising departments (行业主管部门) as the units name them: a unit's overdue hazard orders."""
    steps: list[Step] = Field(min_length=1)
    repeat: int = Field(3, ge=1, le=100)
    """How many times the whole chain runs while nobody acknowledges."""
    group_by: list[str] = ["district", "rule"]
    group_wait_s: float = Field(30.0, ge=0, le=3600)
    """Non-fire alerts with the same group_by values within this wait become one message."""
    reminder_min: float = Field(30.0, ge=0, le=7 * 24 * 60)
    """Reminder for critical/fire alerts acknowledged but not resolved; 0 turns it off."""
    fallback: Targets | None = None
    """Paged when a step of this route reaches nobody; unset: `[notify] fallback`."""

    @field_validator("group_by")
    @classmethod
    def _group_fields(cls, fields: list[str]) -> list[str]:
        bad = [f for f in fields if f not in GROUP_FIELDS]
        if bad:
            raise ValueError(f"cannot group by {bad}; use {list(GROUP_FIELDS)}")
        return fields


class Inhibit(_Model):
    """While a `source` alert is open, `target` alerts with the same `equal` fields are not paged."""

    source_rules: list[str] = Field(min_length=1)
    """Rule names or shell patterns (`offline*`)."""
    target_rules: list[str] = Field(min_length=1)
    target_kind: list[str] = []
    equal: list[str] = ["device_id"]

    @field_validator("equal")
    @classmethod
    def _equal_fields(cls, fields: list[str]) -> list[str]:
        bad = [f for f in fields if f not in GROUP_FIELDS]
        if bad:
            raise ValueError(f"cannot compare {bad}; use {list(GROUP_FIELDS)}")
        return fields


class Gateway(_Model):
    """An SMS or voice gateway Apprise lacks: `adapter` is `module:factory`, called with `options`."""

    adapter: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    options: dict[str, Any] = {}


class RateLimit(_Model):
    per_person: int = Field(20, ge=1)
    """Messages one person gets per window before non-fire ones are held back (fire always goes)."""
    window_s: float = Field(600.0, gt=0)


class FireBrigade(_Model):
    """The 119 command center: a fire confirmed real is handed to it (GB 50440 asks within 3 s)."""

    url: str = ""
    """`webhook+https://…` (a JSON POST to the 119 side's system) or `gateway://NAME/TO` (an adapter of
    your own); empty: no hand-off. A GB/T 26875.3 link to a 火警信息终端 is the later option."""
    timeout_s: float = Field(1.0, gt=0, le=30)
    """Per attempt: a 119 side that does not answer within this is tried again."""
    retries: int = Field(8, ge=1, le=50)
    backoff_s: float = Field(0.2, ge=0, le=30)
    """First wait between attempts; doubles each time."""

    @field_validator("url")
    @classmethod
    def _system_url(cls, url: str) -> str:
        if url and not url.startswith(("webhook+http://", "webhook+https://", "gateway://")):
            raise ValueError(f"{url!r} is not webhook+https://… or gateway://NAME/…")
        return url


def _default_routes() -> list[Route]:
    return [Route(name="duty", severity=[Severity.WARNING, Severity.CRITICAL, Severity.FIRE], steps=[Step(notify=["group:duty"])])]


def _default_inhibits() -> list[Inhibit]:
    return [Inhibit(source_rules=["*offline*"], target_rules=["*fault*"], target_kind=["panel"])]


class NotifyConfig(_Model):
    language: Literal["zh", "en"] = "zh"
    timezone: str = "Asia/Shanghai"
    routes: list[Route] = Field(default_factory=_default_routes)
    inhibit: list[Inhibit] = Field(default_factory=_default_inhibits)
    fallback: Targets = list(DEFAULT_FALLBACK)
    """Paged when a step reaches nobody (no one on duty with a channel): an always-on group, every
    member whatever the shifts say, so a fire always reaches a person; the console says 无人可达."""
    channels: dict[str, str] = {}
    """Named channel URLs (Apprise, `webhook+https://...`, `gateway://NAME/RECIPIENT`)."""
    gateways: dict[str, Gateway] = {}
    fire_brigade: FireBrigade = FireBrigade()
    """Where a confirmed fire is handed on (`[notify.fire_brigade] url`)."""
    rate_limit: RateLimit = RateLimit()
    link_expiry_h: float = Field(24.0, gt=0, le=24 * 30)
    send_timeout_s: float = Field(10.0, gt=0, le=120)
    retries: int = Field(3, ge=1, le=10)
    """Attempts per message and channel."""
    backoff_s: float = Field(1.0, ge=0, le=60)
    """First wait between attempts; doubles each time."""
    tick_s: float = Field(1.0, gt=0, le=60)
    embedded: bool = True
    """notify runs inside `firewatch alerting`; false when it runs as its own service (`firewatch notify`)."""
    poll_s: float = Field(0.25, gt=0, le=60)
    """How often notify looks at the audit trail for alert changes when nothing nudges it (its own service)."""
    metrics_port: int = Field(9468, ge=0, le=65535)
    """`firewatch notify`'s Prometheus endpoint on 0.0.0.0 (0: none); embedded, alerting's port serves them."""
    public_url: str = ""
    """Filled from `[api] public_url`."""
    secret: str = ""
    """Filled from `[api] secret`, or a key kept in the data folder."""

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}") from None
        return name

    @model_validator(mode="after")
    def _unique_routes(self) -> NotifyConfig:
        names = [r.name for r in self.routes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"route names must be unique: {dupes}")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def fallback_of(self, route: Route) -> list[str]:
        """The route's own fallback, or the center's."""
        return route.fallback if route.fallback is not None else self.fallback


def notify_config(settings: Settings) -> NotifyConfig:
    """Validate `[notify]` and fill the link base and signing key from `[api]`."""
    data = dict(settings.notify)
    data.setdefault("public_url", settings.api.public_url)
    data.setdefault("secret", settings.api.secret or _kept_secret(settings.up.data_dir))
    try:
        return NotifyConfig(**data)
    except ValidationError as exc:
        lines = ["bad setting (notify section):"]
        for e in exc.errors():
            key = ".".join(str(p) for p in ("notify", *e["loc"]))
            got = e.get("input")
            shown = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
            lines.append(f"  {key}: {e['msg']}{shown}")
        raise SettingsError("\n".join(lines)) from None


def _kept_secret(data_dir: Path) -> str:
    """One random key per data folder, so links survive restarts without anyone choosing a key.

    The api and alerting may start together: the key is written aside and linked into place,
    which fails for the later one, who then reads the earlier one's key.
    """
    path = Path(data_dir) / "ack-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        aside = path.with_name(f".ack-secret.{os.getpid()}")
        aside.write_text(secrets.token_urlsafe(32), encoding="utf-8")
        aside.chmod(0o600)
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
        finally:
            aside.unlink()
    return path.read_text(encoding="utf-8").strip()
