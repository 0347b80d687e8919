"""The `[alerting]` settings: thresholds per kind with overrides per district, site and device.

    [alerting.electrical.residual_current]        # every electrical detector
    warning = 200
    alarm = 300
    [alerting.districts.510104.hydrant.pressure_low]
    alarm = 0.12
    [alerting.sites."Mall-3".electrical.cable_temp]
    alarm = 80
    [alerting.devices.E1001.overcurrent]          # a device's own circuit
    alarm = 63

A device's rated values (its nameplate) move the levels of the rules that
derive from them (contract/rules.py, NAMEPLATE), at any of the same scopes:

    [alerting.devices.RIG1.nameplate]            # a 230 V pump test rig
    voltage_v = 230
    pressure_mpa = 0.3
    temp_c = 85

The nameplate resolves key by key first (most specific wins), the rule
settings then apply over the levels it derived.
A device's `thresholds` column in the registry (same shape as a devices entry:
`{"overcurrent": {"alarm": 63}}`) wins over all of these. The most specific
setting wins key by key. A bad value is refused with its key, e.g.
`alerting.electrical.residual_current.alarm: must be > 0`.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from firewatch.contract.kinds import SPECS
from firewatch.contract.rules import LEVELS, NAMEPLATE, RULES, Params, Rule, rated_params
from firewatch.contract.settings import SettingsError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleOverride(_Model):
    warning: float | None = None
    alarm: float | None = None
    deadband: float | None = Field(None, ge=0)
    for_s: float | None = Field(None, ge=0)
    keep_s: float | None = Field(None, ge=0)
    window_s: float | None = Field(None, gt=0)
    warmup_s: float | None = Field(None, ge=0)
    enabled: bool | None = None

    def over(self, p: Params) -> Params:
        return replace(p, **self.model_dump(exclude_none=True))


class Correlation(_Model):
    probable_score: float = Field(0.6, gt=0, le=1)
    """A panel fire alarm at or above this score is marked probable."""
    zone_window_s: float = Field(300, gt=0)
    """Other points of the same zone in alarm within this time count as confirmation."""
    site_window_s: float = Field(1800, gt=0)
    """Electrical alerts at the same site this close to a fire alarm count as confirmation."""
    quick_reset_s: float = Field(60, gt=0)
    """A fire alarm reset this soon is ranked down."""
    false_reset_s: float = Field(600, gt=0)
    """A single-point fire alarm reset this soon counts as a false alarm in the point's history."""
    unreset_s: float = Field(300, gt=0)
    """A fire alarm still not reset after this long is ranked up."""
    history_s: float = Field(7 * 86400, gt=0)
    """How far back a point's false alarms count against it."""
    water_main_hydrants: int = Field(3, ge=2)
    """This many hydrants of one district losing pressure together make a water-main alert."""
    water_main_window_s: float = Field(900, gt=0)


class Flap(_Model):
    changes: int = Field(3, ge=2)
    """An alert that fired this many times within `window_s` is flapping..."""
    window_s: float = Field(3600, gt=0)
    hold_s: float = Field(900, ge=0)
    """...and then resolves only after its condition stayed clear this long."""


class KindOptions(_Model):
    report_interval_s: int | None = Field(None, gt=0)
    """Expected period between reports (default: the kind's); offline after `offline.warning` missed."""


class AlertingConfig(_Model):
    clock: Literal["wall", "event"] = "wall"
    """wall: timers (heartbeats, minimum durations) follow the wall clock, for live service;
    event: they follow the newest device timestamp seen, for replays and evaluations."""
    lateness_s: float = Field(5, ge=0)
    """Event clock: how far behind the newest timestamp timers run, for messages arriving out of order."""
    max_clock_skew_s: float = Field(300, gt=0)
    """Wall clock: a device timestamp further ahead than this is replaced by the receive time."""
    baseline_save_s: float = Field(300, gt=0)
    batch_s: float = Field(0.1, gt=0, le=5)
    """The live service starts a detection pass at most this often: longer costs less CPU per message
    (a pass has a fixed cost), shorter less publish→alert latency in a steady stream."""
    metrics_port: int = Field(9466, ge=0, le=65535)
    """`firewatch alerting`'s Prometheus endpoint on 0.0.0.0 (0: none); ingest's is 9464, a second ingest's 9465."""
    correlation: Correlation = Correlation()
    flap: Flap = Flap()
    kinds: dict[str, KindOptions] = Field(default_factory=dict)
    rules: dict[str, dict[str, RuleOverride]] = Field(default_factory=dict)
    districts: dict[str, dict[str, dict[str, RuleOverride]]] = Field(default_factory=dict)
    sites: dict[str, dict[str, dict[str, RuleOverride]]] = Field(default_factory=dict)
    devices: dict[str, dict[str, RuleOverride]] = Field(default_factory=dict)
    nameplates: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Rated values by where they were set: `pump`, `districts.510104.pump`, `sites.Mall-3.pump`, `devices.P1`."""

    def report_interval_ms(self, kind: str, registered_s: int | None = None) -> int:
        """A device's reporting period: its registry entry's (`registered_s`), else its kind's setting,
        else the kind's catalogue period."""
        if registered_s:
            return registered_s * 1000
        opt = self.kinds.get(kind)
        s = opt.report_interval_s if opt and opt.report_interval_s else SPECS[kind].report_interval_s
        return s * 1000

    def params(self, kind: str, district: str = "", site: str = "", device_id: str = "",
               registry: dict[str, Any] | None = None) -> dict[str, Params]:
        """Effective parameters of every rule of `kind` for one device, most specific last.

        A device without settings of its own shares its district's and site's (the same object), so a
        detector configures such devices together."""
        own = device_id in self.devices or f"devices.{device_id}" in self.nameplates
        return _resolve(self, kind, district, site, device_id if own else "", _freeze(registry or {}))

    def __hash__(self) -> int:
        return id(self)


def _freeze(d: dict[str, Any]) -> tuple:
    return tuple(sorted((k, tuple(sorted(v.items())) if isinstance(v, dict) else v) for k, v in d.items()))


@lru_cache(maxsize=4096)
def _resolve(cfg: AlertingConfig, kind: str, district: str, site: str, device_id: str,
             registry: tuple) -> dict[str, Params]:
    out = {}
    nameplate: dict[str, float] = {}
    for scope in (kind, f"districts.{district}.{kind}", f"sites.{site}.{kind}", f"devices.{device_id}"):
        nameplate |= cfg.nameplates.get(scope, {})
    layers = [
        cfg.rules.get(kind, {}),
        cfg.districts.get(district, {}).get(kind, {}),
        cfg.sites.get(site, {}).get(kind, {}),
        cfg.devices.get(device_id, {}),
    ]
    reg = {}
    for name, values in registry:
        if name in RULES[kind] and isinstance(values, tuple):
            try:
                reg[name] = RuleOverride(**dict(values))
            except ValidationError:
                continue
    layers.append(reg)
    for name, rule in RULES[kind].items():
        p = rated_params(rule, kind, rule.defaults, nameplate)
        for layer in layers:
            if name in layer:
                p = layer[name].over(p)
        out[name] = p
    return out


_TOP = {"clock", "lateness_s", "max_clock_skew_s", "baseline_save_s", "batch_s", "metrics_port", "correlation", "flap"}


def load(raw: dict[str, Any]) -> AlertingConfig:
    """Validate `settings().alerting`; raises SettingsError naming the first bad key."""
    top = {k: v for k, v in raw.items() if k in _TOP}
    kinds: dict[str, Any] = {}
    rules: dict[str, Any] = {}
    plates: dict[str, dict[str, float]] = {}
    for key, value in raw.items():
        if key in _TOP or key in ("districts", "sites", "devices"):
            continue
        if key not in RULES:
            raise SettingsError(f"alerting.{key}: not a setting nor a device kind ({', '.join(sorted(RULES))})")
        opts, rules[key] = _split_kind(_nameplate(value, key, (key,), plates), f"alerting.{key}", key)
        try:
            kinds[key] = KindOptions(**opts)
        except ValidationError as exc:
            e = exc.errors()[0]
            raise SettingsError(f"alerting.{key}.{'.'.join(map(str, e['loc']))}: {e['msg']}") from None
    try:
        cfg = AlertingConfig(**top, kinds=kinds)
    except ValidationError as exc:
        e = exc.errors()[0]
        raise SettingsError(f"alerting.{'.'.join(map(str, e['loc']))}: {e['msg']}") from None
    cfg.rules = rules
    cfg.nameplates = plates
    for scope in ("districts", "sites"):
        for name, per_kind in _table(raw.get(scope, {}), f"alerting.{scope}").items():
            out = {}
            for kind, value in _table(per_kind, f"alerting.{scope}.{name}").items():
                if kind not in RULES:
                    raise SettingsError(f"alerting.{scope}.{name}.{kind}: not a device kind")
                table = _nameplate(value, f"{scope}.{name}.{kind}", (kind,), plates)
                out[kind] = _rule_table(table, f"alerting.{scope}.{name}.{kind}", kind, rules.get(kind, {}))
            getattr(cfg, scope)[name] = out
    for device, value in _table(raw.get("devices", {}), "alerting.devices").items():
        names = {n for k in RULES for n in RULES[k]}
        table = _nameplate(value, f"devices.{device}", tuple(NAMEPLATE), plates)
        for name in table:
            if name not in names:
                raise SettingsError(f"alerting.devices.{device}.{name}: no rule of that name")
        cfg.devices[device] = {n: _override(v, f"alerting.devices.{device}.{n}") for n, v in table.items()}
    return cfg


def _table(value: Any, key: str) -> dict[str, Any]:
    if isinstance(value, str):  # FIREWATCH_ALERTING__ELECTRICAL='{"residual_current": {"alarm": 400}}'
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if not isinstance(value, dict):
        raise SettingsError(f"{key}: must be a table")
    return value


def _nameplate(value: Any, scope: str, kinds: tuple[str, ...], plates: dict[str, dict[str, float]]) -> dict[str, Any]:
    """`value` without its `nameplate` table, which goes into `plates[scope]` once it is valid for `kinds`."""
    table = dict(_table(value, f"alerting.{scope}"))
    if "nameplate" not in table:
        return table
    key = f"alerting.{scope}.nameplate"
    plate = _table(table.pop("nameplate"), key)
    known = {n for k in kinds for n in NAMEPLATE.get(k, {})}
    for name, v in plate.items():
        if name not in known:
            raise SettingsError(f"{key}.{name}: not a rated value ({', '.join(sorted(known)) or 'none for ' + scope})")
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
            raise SettingsError(f"{key}.{name}: must be a number > 0")
    plate = {n: float(v) for n, v in plate.items()}
    for kind in kinds:
        for rule in RULES[kind].values():
            if rule.rated in plate:
                try:
                    _check(rule, rated_params(rule, kind, rule.defaults, plate), kind, rule.name)
                except SettingsError as exc:
                    raise SettingsError(f"{key}.{rule.rated}: the levels it gives are refused ({exc})") from None
    plates[scope] = plate
    return table


def _split_kind(value: Any, key: str, kind: str) -> tuple[dict[str, Any], dict[str, RuleOverride]]:
    table = _table(value, key)
    opts = {k: v for k, v in table.items() if k in KindOptions.model_fields}
    rules = {k: v for k, v in table.items() if k not in KindOptions.model_fields}
    return opts, _rule_table(rules, key, kind, {})


def _rule_table(value: Any, key: str, kind: str, base: dict[str, RuleOverride]) -> dict[str, RuleOverride]:
    out = {}
    for name, v in _table(value, key).items():
        rule = RULES[kind].get(name)
        if rule is None:
            raise SettingsError(f"{key}.{name}: {kind} has no rule of that name ({', '.join(RULES[kind])})")
        o = _override(v, f"{key}.{name}")
        p = o.over(base[name].over(rule.defaults) if name in base else rule.defaults)
        _check(rule, p, kind, f"{key}.{name}")
        out[name] = o
    return out


def _override(value: Any, key: str) -> RuleOverride:
    try:
        return RuleOverride(**_table(value, key))
    except ValidationError as exc:
        e = exc.errors()[0]
        raise SettingsError(f"{key}.{'.'.join(map(str, e['loc']))}: {e['msg']}") from None


def _check(rule: Rule, p: Params, kind: str, key: str) -> None:
    """Refuse levels that can never be reached or that contradict each other."""
    for level in LEVELS:
        v = getattr(p, level)
        if v is None:
            continue
        if not math.isfinite(v):
            raise SettingsError(f"{key}.{level}: must be a finite number")
        if rule.feature == "value":
            m = SPECS[kind].metrics[rule.metrics[0]]
            if not m.low <= v <= m.high:
                raise SettingsError(
                    f"{key}.{level}: {v} is outside what a {m.name} sensor reports ({m.low}..{m.high} {m.unit})"
                )
        elif v <= 0:
            raise SettingsError(f"{key}.{level}: must be > 0")
    if p.warning is not None and p.alarm is not None and (p.warning - p.alarm) * rule.worse > 0:
        word = "above" if rule.worse > 0 else "below"
        raise SettingsError(f"{key}.warning: {p.warning} must not be {word} the alarm level {p.alarm}")
