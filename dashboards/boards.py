"""The five firewatch dashboards, with the rule catalogue's default levels drawn on the panels.

Every threshold line, threshold in a query and level quoted in a description is
read from contract/rules.py, so a dashboard cannot disagree with what alerting
judges by.

Queries are InfluxQL against the storage schema of DESIGN.md. Where InfluxQL
cannot say something in one statement (a ratio of conditions, a join with the
device registry), a subquery or a Grafana transformation does it, never a copy
of data into another measurement.
"""

from __future__ import annotations

from functools import partial

from firewatch.contract.kinds import SPECS
from firewatch.contract.rules import RULES, default_level
from firewatch.dashboards.grafana import (
    FILTER,
    Json,
    dashboard,
    device_variables,
    influx,
    limits,
    panel,
    registry_sql,
    stat,
    thresholds,
)
from firewatch.dashboards.platform import MEASUREMENT as PLATFORM

ACTIVE_WINDOW = "30d"
"""How far back an alert or a fault still counts as open if nothing closed it."""

ONLINE_FIELD = {
    "electrical": "residual_ma",
    "hydrant": "pressure_mpa",
    "pump": "pressure_mpa",
    "panel": "event",
}
"""The field each kind always reports; counting it counts reports."""

RED, ORANGE, YELLOW, GREEN, BLUE = "red", "orange", "yellow", "green", "blue"
HYDRANT_LOW = default_level("hydrant", "pressure_low", "warning")
HYDRANT_CRITICAL = default_level("hydrant", "pressure_low", "alarm")
HYDRANT_HIGH = default_level("hydrant", "pressure_high", "warning")
PRESSURE = limits("suffix: MPa", (None, RED), (HYDRANT_CRITICAL, ORANGE), (HYDRANT_LOW, GREEN), (HYDRANT_HIGH, RED))
PUMP_PRESSURE = limits(
    "suffix: MPa",
    (None, RED),
    (default_level("pump", "pressure_low", "alarm"), ORANGE),
    (default_level("pump", "pressure_low", "warning"), GREEN),
)
WHERE = f"WHERE $timeFilter AND {FILTER}"
PER_DISTRICT = 'GROUP BY time($__interval), "district" fill(none)'
NARROW = "Pick a site or device above to see it alone."
COARSE = "2m"
"""Minimum interval of the per-minute kinds' time series (6 h default: 180 points a line)."""
HYDRANT_INTERVAL = "5m"
"""Hydrants report every 5 minutes at best; finer buckets only cost."""
"""Time series aggregate per district: a line per device stops being readable (and cheap) at city size."""


def _open_alerts(select: str, group_by: str) -> str:
    """Alerts whose latest state is not resolved, in the last ACTIVE_WINDOW."""
    return (
        f'SELECT {select} FROM (SELECT last("state") AS "state" FROM "alert" '
        f"WHERE time > now() - {ACTIVE_WINDOW} AND {FILTER} "
        f'GROUP BY "district", "site", "device_id", "rule", "severity") '
        f"WHERE \"state\" <> 'resolved'{group_by}"
    )


def _online_rate(kind: str) -> str:
    """Per district, the share of devices heard from in their last two report periods, among
    those heard in the dashboard's range.

    Two subqueries give one row per device each (`recent`, `seen`); InfluxQL unions
    them, so one count over the other is the rate, in one cheap statement.
    """
    spec = SPECS[kind]
    field, m = ONLINE_FIELD[kind], spec.measurement
    per_device = 'GROUP BY "device_id", "district"'
    return (
        f'SELECT count("recent") * 100 / count("seen") FROM '
        f'(SELECT last("{field}") AS "recent" FROM "{m}" WHERE time > now() - {2 * spec.report_interval_s}s '
        f"AND {FILTER} {per_device}), "
        f'(SELECT last("{field}") AS "seen" FROM "{m}" {WHERE} {per_device}) GROUP BY "district"'
    )


def _marker_layer(name: str, color_field: str) -> Json:
    return {
        "type": "markers",
        "name": name,
        "location": {"mode": "coords", "latitude": "latitude", "longitude": "longitude"},
        "config": {
            "showLegend": True,
            "style": {
                "color": {"field": color_field, "fixed": "green"},
                "size": {"fixed": 6},
                "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
                "opacity": 0.8,
            },
        },
        "tooltip": True,
    }


def _geomap(
    title: str, registry: str, readings: str, join_on: str, color_field: str, steps: Json
) -> Json:
    """Places come from the device registry (PostgreSQL), values from InfluxDB, joined by tag."""
    return panel(
        "geomap",
        title,
        [registry_sql(registry, "A"), influx(readings, "B", table=True)],
        width=12,
        height=12,
        description="Coordinates from the device registry; colour from InfluxDB in the selected range.",
        field_config={
            "defaults": {"thresholds": steps, "color": {"mode": "thresholds"}},
            "overrides": [],
        },
        options={
            "view": {"id": "fit", "lat": 0, "lon": 0, "zoom": 11},
            "controls": {"showZoom": True, "mouseWheelZoom": True},
            "basemap": {"type": "default", "name": "Basemap"},
            "layers": [_marker_layer(title, color_field)],
            "tooltip": {"mode": "details"},
        },
        transformations=[{"id": "joinByField", "options": {"byField": join_on, "mode": "inner"}}],
    )


def city_overview() -> Json:
    hydrants = _geomap(
        "Hydrants by pressure",
        "SELECT id AS device_id, site, address, latitude, longitude FROM devices "
        "WHERE kind = 'hydrant' AND retired_ms IS NULL AND latitude IS NOT NULL",
        f'SELECT last("pressure_mpa") AS "pressure_mpa" FROM "hydrant" {WHERE} GROUP BY "device_id"',
        "device_id",
        "pressure_mpa",
        PRESSURE["defaults"]["thresholds"],
    )
    sites = _geomap(
        "Sites by alarm state",
        "SELECT site, district, AVG(latitude) AS latitude, AVG(longitude) AS longitude, "
        "COUNT(*) AS devices FROM devices WHERE retired_ms IS NULL AND latitude IS NOT NULL "
        "AND site <> '' GROUP BY site, district",
        _open_alerts('count("state") AS "open_alerts"', ' GROUP BY "site"'),
        "site",
        "open_alerts",
        thresholds((None, GREEN), (1, ORANGE), (3, RED)),
    )
    online = panel(
        "bargauge",
        "Online now, by district and kind",
        [
            influx(_online_rate(kind), chr(ord("A") + i), alias=f"$tag_district {kind}")
            for i, kind in enumerate(SPECS)
        ],
        description="Devices heard from in their last two report periods (offline after two missed), "
        "as a share of the devices heard from in the selected range.",
        field_config={
            "defaults": {
                "unit": "percent",
                "min": 0,
                "max": 100,
                "thresholds": thresholds((None, RED), (90, ORANGE), (98, GREEN)),
            },
            "overrides": [],
        },
        options={"displayMode": "gradient", "orientation": "horizontal", "showUnfilled": True},
    )
    active_count = stat(
        "Active alerts",
        [influx(_open_alerts('count("state")', ""))],
        ((None, GREEN), (1, ORANGE), (10, RED)),
        width=4,
    )
    fire_now = stat(
        "Panel fire alarms in range",
        [influx(f'SELECT count("event") FROM "panel_event" {WHERE} AND "event" = \'fire\'')],
        ((None, GREEN), (1, RED)),
        width=4,
    )
    firing = panel(
        "timeseries",
        "Alerts fired, by severity",
        [
            influx(
                'SELECT count("change") FROM "alert" '
                f'{WHERE} AND "change" = \'fired\' GROUP BY time($__interval), "severity" fill(0)',
                alias="$tag_severity",
            )
        ],
        width=16,
        field_config={
            "defaults": {"custom": {"drawStyle": "bars", "stacking": {"mode": "normal"}}},
            "overrides": [],
        },
    )
    active_table = panel(
        "table",
        "Active alerts",
        [
            influx(
                'SELECT * FROM (SELECT last("state") AS "state", last("summary") AS "summary", '
                'last("value") AS "value", last("threshold") AS "threshold" FROM "alert" '
                f"WHERE time > now() - {ACTIVE_WINDOW} AND {FILTER} "
                'GROUP BY "district", "site", "device_id", "rule", "severity") '
                "WHERE \"state\" <> 'resolved'",
                table=True,
            )
        ],
        width=24,
        options={"showHeader": True, "sortBy": [{"displayName": "severity", "desc": False}]},
        transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True}}}],
    )
    return dashboard(
        "firewatch-city",
        "City overview",
        [hydrants, sites, online, active_count, fire_now, firing, active_table],
        device_variables(),
        time_from="now-6h",
        refresh="30s",
        tags=("overview",),
    )


def electrical() -> Json:
    m = '"electrical"'
    rules = RULES["electrical"]
    residual_rule, cable_rule, arc_rule = rules["residual_current"], rules["cable_temp"], rules["arc_fault"]
    level = partial(default_level, "electrical")
    residual_warn, residual_alarm = level("residual_current", "warning"), level("residual_current", "alarm")
    cable_warn, cable_alarm = level("cable_temp", "warning"), level("cable_temp", "alarm")
    arc_alarm = level("arc_fault", "alarm")
    volt_rule = rules["overvoltage"]
    under_v, over_v = level("undervoltage", "warning"), level("overvoltage", "warning")
    residual = panel(
        "timeseries",
        "Residual current, highest per district",
        [
            influx(
                f'SELECT max("residual_ma") FROM {m} {WHERE} {PER_DISTRICT}', alias="$tag_district"
            )
        ],
        description=f"Warning at {residual_warn:g} {residual_rule.unit}, alarm at {residual_alarm:g} "
        f"{residual_rule.unit} ({residual_rule.source}); natural leakage is often 100–200 mA. " + NARROW,
        interval=COARSE,
        field_config=limits("mamp", (None, GREEN), (residual_warn, YELLOW), (residual_alarm, RED)),
    )
    temps = ", ".join(f'max("temp{i}_c") AS "T{i}"' for i in range(1, 5))
    cable = panel(
        "timeseries",
        "Cable temperature, hottest per district",
        [influx(f"SELECT {temps} FROM {m} {WHERE} {PER_DISTRICT}", alias="$tag_district $col")],
        description=f"Warning at {cable_warn:g} {cable_rule.unit}, alarm at {cable_alarm:g} {cable_rule.unit} "
        f"({cable_rule.source}). " + NARROW,
        interval=COARSE,
        field_config=limits("celsius", (None, GREEN), (cable_warn, YELLOW), (cable_alarm, RED)),
    )
    lasts = ", ".join(f'last("temp{i}_c") AS "T{i}"' for i in range(1, 5))
    hottest = panel(
        "table",
        "Hottest circuits now",
        [
            influx(
                f'SELECT {lasts}, last("residual_ma") AS "residual_ma" FROM {m} {WHERE} '
                'GROUP BY "district", "site", "device_id"',
                table=True,
            )
        ],
        description="Latest reading of each detector, hottest circuit first.",
        field_config={
            "defaults": {
                "thresholds": thresholds((None, GREEN), (cable_warn, YELLOW), (cable_alarm, RED)),
                "custom": {"cellOptions": {"type": "color-background"}},
            },
            "overrides": [],
        },
        transformations=[
            {
                "id": "calculateField",
                "options": {
                    "mode": "reduceRow",
                    "reduce": {"include": ["T1", "T2", "T3", "T4"], "reducer": "max"},
                    "alias": "hottest °C",
                },
            },
            {"id": "sortBy", "options": {"sort": [{"field": "hottest °C", "desc": True}]}},
            {"id": "limit", "options": {"limitField": 20}},
            {"id": "organize", "options": {"excludeByName": {"Time": True}}},
        ],
    )
    over = stat(
        f"Detectors at or above {residual_alarm:g} {residual_rule.unit} now",
        [
            influx(
                f'SELECT count("r") FROM (SELECT last("residual_ma") AS "r" FROM {m} {WHERE} '
                f'GROUP BY "device_id") WHERE "r" >= {residual_alarm:g}'
            )
        ],
        ((None, GREEN), (1, RED)),
        width=6,
    )
    arcs = panel(
        "timeseries",
        "Arcing half-cycles per second",
        [influx(f'SELECT max("arc_count") FROM {m} {WHERE} {PER_DISTRICT}', alias="$tag_district")],
        width=6,
        description=f"Alarm at {arc_alarm:g} {arc_rule.unit} ({arc_rule.source}). Highest per district.",
        interval=COARSE,
        field_config=limits("none", (None, GREEN), (arc_alarm, RED)),
    )
    phases = ", ".join(f'max("current_{p}_a") AS "{p.upper()}"' for p in "abc")
    currents = panel(
        "timeseries",
        "Phase currents, highest per district",
        [influx(f"SELECT {phases} FROM {m} {WHERE} {PER_DISTRICT}", alias="$tag_district $col")],
        description="A phase far above its siblings points to a loose terminal. " + NARROW,
        interval=COARSE,
        field_config={"defaults": {"unit": "amp"}, "overrides": []},
    )
    volts = ", ".join(
        f'{f}("voltage_{p}_v") AS "{f} {p.upper()}"' for f in ("min", "max") for p in "abc"
    )
    voltages = panel(
        "timeseries",
        "Phase voltage extremes",
        [
            influx(
                f"SELECT {volts} FROM {m} {WHERE} GROUP BY time($__interval) fill(none)",
                alias="$col",
            )
        ],
        description=f"Lowest and highest of the selected detectors; under {under_v:g} {volt_rule.unit} or over "
        f"{over_v:g} {volt_rule.unit} ({volt_rule.source}).",
        interval="5m",
        field_config=limits("volt", (None, RED), (under_v, GREEN), (over_v, RED), style="line"),
    )
    return dashboard(
        "firewatch-electrical",
        "Electrical fire",
        [residual, cable, hottest, over, arcs, currents, voltages],
        device_variables('"electrical"'),
        time_from="now-6h",
        refresh="30s",
        tags=("electrical",),
    )


def water() -> Json:
    h, p = '"hydrant"', '"pump"'
    low, high, tilt = RULES["hydrant"]["pressure_low"], RULES["hydrant"]["pressure_high"], RULES["hydrant"]["tilt"]
    tilted = default_level("hydrant", "tilt", "alarm")
    by_district = panel(
        "timeseries",
        "Hydrant pressure by district",
        [
            influx(
                f'SELECT mean("pressure_mpa") FROM {h} {WHERE} GROUP BY time($__interval), "district" fill(none)',
                alias="$tag_district mean",
            ),
            influx(
                f'SELECT min("pressure_mpa") FROM {h} {WHERE} GROUP BY time($__interval), "district" fill(none)',
                "B",
                alias="$tag_district lowest",
            ),
        ],
        description=f"Warn below {HYDRANT_LOW:g} {low.unit} ({low.source}), critical below {HYDRANT_CRITICAL:.2f} "
        f"{low.unit}, high above {HYDRANT_HIGH:.1f} {high.unit}.",
        interval=HYDRANT_INTERVAL,
        field_config=PRESSURE,
    )
    low_now = panel(
        "table",
        f"Hydrants below {HYDRANT_LOW:g} {low.unit} now",
        [
            influx(
                f'SELECT "p" AS "pressure_mpa" FROM (SELECT last("pressure_mpa") AS "p" FROM {h} {WHERE} '
                f'GROUP BY "district", "site", "device_id") WHERE "p" < {HYDRANT_LOW:g} '
                'GROUP BY "district", "site", "device_id"',
                table=True,
            )
        ],
        field_config={
            "defaults": {
                "unit": "suffix: MPa",
                "thresholds": PRESSURE["defaults"]["thresholds"],
                "custom": {"cellOptions": {"type": "color-background"}},
            },
            "overrides": [],
        },
        transformations=[
            {"id": "sortBy", "options": {"sort": [{"field": "pressure_mpa", "desc": False}]}},
            {"id": "organize", "options": {"excludeByName": {"Time": True}}},
        ],
    )

    def below(limit: float, color: str) -> Json:
        return stat(
            f"Hydrants below {limit} {low.unit}",
            [
                influx(
                    f'SELECT count("p") FROM (SELECT last("pressure_mpa") AS "p" FROM {h} {WHERE} '
                    f'GROUP BY "device_id") WHERE "p" < {limit}'
                )
            ],
            ((None, GREEN), (1, color)),
            width=6,
            height=4,
        )

    events = panel(
        "timeseries",
        "Flow, tilt and cover events",
        [
            influx(
                f'SELECT count("water_flow") FROM {h} {WHERE} AND "water_flow" = 1 '
                "GROUP BY time($__interval) fill(0)",
                "A",
                alias="water flowing",
            ),
            influx(
                f'SELECT count("tilt_deg") FROM {h} {WHERE} AND "tilt_deg" >= {tilted:g} '
                "GROUP BY time($__interval) fill(0)",
                "B",
                alias=f"tilted ≥ {tilted:g}{tilt.unit}",
            ),
            influx(
                f'SELECT count("cover_open") FROM {h} {WHERE} AND "cover_open" = 1 '
                "GROUP BY time($__interval) fill(0)",
                "C",
                alias="cover open",
            ),
        ],
        description="Reports with water flowing (theft or leak when no fire is logged), knocked over, cover open.",
        interval=HYDRANT_INTERVAL,
        field_config={
            "defaults": {"custom": {"drawStyle": "bars", "stacking": {"mode": "normal"}}},
            "overrides": [],
        },
    )
    pump_pressure = panel(
        "timeseries",
        "Pump outlet pressure, lowest per district",
        [
            influx(
                f'SELECT min("pressure_mpa") FROM {p} {WHERE} {PER_DISTRICT}', alias="$tag_district"
            )
        ],
        description="A pump running at rated current with no outlet pressure has failed. " + NARROW,
        interval=COARSE,
        field_config=PUMP_PRESSURE,
    )
    pump_current = panel(
        "timeseries",
        "Pump motor current and flow, highest per district",
        [
            influx(
                f'SELECT max("current_a") FROM {p} {WHERE} {PER_DISTRICT}',
                "A",
                alias="$tag_district A",
            ),
            influx(
                f'SELECT max("flow_lps") FROM {p} {WHERE} {PER_DISTRICT}',
                "B",
                alias="$tag_district L/s",
            ),
        ],
        description=NARROW,
        interval=COARSE,
        field_config={
            "defaults": {"unit": "amp"},
            "overrides": [
                {
                    "matcher": {"id": "byRegexp", "options": ".*L/s$"},
                    "properties": [
                        {"id": "unit", "value": "suffix: L/s"},
                        {"id": "custom.axisPlacement", "value": "right"},
                    ],
                }
            ],
        },
    )
    return dashboard(
        "firewatch-water",
        "Hydrants and pump rooms",
        [
            by_district,
            low_now,
            below(HYDRANT_LOW, ORANGE),
            below(HYDRANT_CRITICAL, RED),
            events,
            pump_pressure,
            pump_current,
        ],
        device_variables("/^(hydrant|pump)$/"),
        time_from="now-24h",
        refresh="1m",
        tags=("hydrant", "pump"),
    )


EVENT_GROUPS = {
    "fire": "fire",
    "fault, supervisory, power": "fault|supervisory|main_power_fault|backup_power_fault",
    "linkage start/feedback": "start|feedback",
    "reset": "reset",
}


def alarm_panels() -> Json:
    m = '"panel_event"'
    by_type = panel(
        "timeseries",
        "Panel events by type",
        [
            influx(
                f'SELECT count("event") FROM {m} {WHERE} AND "event" =~ /^({events})$/ '
                "GROUP BY time($__interval) fill(0)",
                chr(ord("A") + i),
                alias=name,
            )
            for i, (name, events) in enumerate(EVENT_GROUPS.items())
        ],
        width=24,
        field_config={
            "defaults": {"custom": {"drawStyle": "bars", "stacking": {"mode": "normal"}}},
            "overrides": [
                {
                    "matcher": {"id": "byName", "options": "fire"},
                    "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": RED}}],
                }
            ],
        },
    )
    leaders = panel(
        "table",
        "False-alarm leaders",
        [
            influx(
                f'SELECT count("event") AS "fire alarms" FROM {m} {WHERE} AND "event" = \'fire\' '
                'GROUP BY "district", "site", "device_id"',
                table=True,
            )
        ],
        description=(
            "Panels with the most fire alarms in the range: nearly all panel fire alarms are false, "
            "and a unit with more than 5 a day needs a handling plan (GB 50440)."
        ),
        transformations=[
            {"id": "sortBy", "options": {"sort": [{"field": "fire alarms", "desc": True}]}},
            {"id": "limit", "options": {"limitField": 15}},
            {"id": "organize", "options": {"excludeByName": {"Time": True}}},
        ],
    )
    fault_events = '"event" =~ /^(fault|fault_cleared)$/'
    faults = panel(
        "table",
        "Faults open longer than 24 h",
        [
            influx(
                f'SELECT "event", "zone", "point" FROM (SELECT last("event") AS "event", last("zone") AS "zone", '
                f'last("point") AS "point" FROM {m} WHERE time > now() - {ACTIVE_WINDOW} AND {fault_events} '
                f'AND {FILTER} GROUP BY "district", "site", "device_id") WHERE "event" = \'fault\' '
                'GROUP BY "district", "site", "device_id"',
                "A",
                table=True,
            ),
            influx(
                f'SELECT count("event") AS "recent" FROM {m} WHERE time > now() - 24h AND {fault_events} '
                f'AND {FILTER} GROUP BY "device_id"',
                "B",
                table=True,
            ),
        ],
        description=(
            "Panels whose last fault event is an uncleared fault and which reported no fault "
            "or clearance in the last 24 h; work for the maintenance company."
        ),
        transformations=[
            {"id": "joinByField", "options": {"byField": "device_id", "mode": "outer"}},
            {
                "id": "filterByValue",
                "options": {
                    "type": "include",
                    "match": "all",
                    "filters": [
                        {
                            "fieldName": "event",
                            "config": {"id": "equal", "options": {"value": "fault"}},
                        },
                        {"fieldName": "recent", "config": {"id": "isNull", "options": {}}},
                    ],
                },
            },
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True, "recent": True, "Time 1": True, "Time 2": True}
                },
            },
        ],
    )
    return dashboard(
        "firewatch-panels",
        "Alarm panels",
        [by_type, leaders, faults],
        device_variables('"panel_event"'),
        time_from="now-7d",
        refresh="1m",
        tags=("panel",),
    )


def platform_health() -> Json:
    m = f'"{PLATFORM}"'
    per_instance = 'GROUP BY time($__interval), "instance" fill(none)'
    ingest, alerts = "firewatch_ingest_", "firewatch_alerting_"

    def rate(metric: str, by: str = per_instance) -> str:
        return f'SELECT non_negative_derivative(last("{ingest}{metric}_total"), 1s) FROM {m} WHERE $timeFilter {by}'

    rates = panel(
        "timeseries",
        "Ingest rate",
        [
            influx(rate("messages_received"), "A", alias="$tag_instance received msg/s"),
            influx(rate("records_written"), "B", alias="$tag_instance written records/s"),
        ],
        field_config={"defaults": {"unit": "ops"}, "overrides": []},
    )
    rejects = panel(
        "timeseries",
        "Rejects by reason",
        [
            influx(
                rate("rejected", 'GROUP BY time($__interval), "reason" fill(none)'),
                alias="$tag_reason",
            )
        ],
        field_config={
            "defaults": {
                "unit": "ops",
                "custom": {"drawStyle": "bars", "stacking": {"mode": "normal"}},
            },
            "overrides": [],
        },
    )
    spool = panel(
        "timeseries",
        "Spool depth",
        [
            influx(
                f'SELECT last("{ingest}spool_records") FROM {m} WHERE $timeFilter {per_instance}',
                alias="$tag_instance records",
            )
        ],
        description="Records waiting for InfluxDB; grows while the database is down, drains after.",
        field_config=limits("short", (None, GREEN), (10_000, ORANGE), (1_000_000, RED)),
    )
    latency = panel(
        "timeseries",
        "Write latency (mean per batch)",
        [
            influx(
                f'SELECT non_negative_derivative(last("{ingest}batch_write_seconds_sum"), 1s) / '
                f'non_negative_derivative(last("{ingest}batch_write_seconds_count"), 1s) '
                f"FROM {m} WHERE $timeFilter {per_instance}",
                alias="$tag_instance",
            )
        ],
        field_config=limits("s", (None, GREEN), (0.5, ORANGE), (2, RED)),
    )
    alerting = panel(
        "timeseries",
        "Alerting rate",
        [
            influx(
                'SELECT count("change") FROM "alert" WHERE $timeFilter AND "change" = \'fired\' '
                'GROUP BY time($__interval), "severity" fill(0)',
                alias="$tag_severity",
            )
        ],
        description="Alerts fired per interval, by severity (alerting writes one point per alert change).",
        field_config={
            "defaults": {"custom": {"drawStyle": "bars", "stacking": {"mode": "normal"}}},
            "overrides": [],
        },
    )
    lag = panel(
        "timeseries",
        "Alerting behind the devices",
        [
            influx(
                f'SELECT last("{alerts}event_lag_seconds") FROM {m} WHERE $timeFilter {per_instance}',
                alias="$tag_instance event lag",
            ),
            influx(
                f'SELECT non_negative_derivative(last("{alerts}batch_seconds_sum"), 1s) / '
                f'non_negative_derivative(last("{alerts}batch_seconds_count"), 1s) '
                f"FROM {m} WHERE $timeFilter {per_instance}",
                "B",
                alias="$tag_instance mean batch",
            ),
        ],
        description="Wall clock minus the device time of what alerting last processed (it includes the "
        "devices' own reporting delay), and the detect + correlate + lifecycle time per batch. A lag "
        "that keeps growing means alarms reach the center late.",
        field_config=limits("s", (None, GREEN), (10, ORANGE), (60, RED)),
    )
    connected = stat(
        "Connected to broker",
        [
            influx(
                f'SELECT last("{ingest}broker_connected") FROM {m} WHERE $timeFilter GROUP BY "instance"',
                alias="ingest $tag_instance",
            ),
            influx(
                f'SELECT last("{alerts}broker_connected") FROM {m} WHERE $timeFilter GROUP BY "instance"',
                "B",
                alias="alerting $tag_instance",
            ),
        ],
        ((None, RED), (1, GREEN)),
        width=12,
        mappings=[{"type": "value", "options": {"0": {"text": "down"}, "1": {"text": "up"}}}],
    )
    return dashboard(
        "firewatch-platform",
        "Platform health",
        [rates, rejects, spool, latency, alerting, lag, connected],
        [],
        time_from="now-1h",
        refresh="10s",
        tags=("platform",),
    )


def all_dashboards() -> list[Json]:
    return [city_overview(), electrical(), water(), alarm_panels(), platform_health()]
