"""Building blocks of Grafana dashboard JSON: panels, InfluxQL targets, variables, thresholds.

The dashboards are generated rather than kept as exported JSON so a threshold,
a filter or a data source uid is written once and reviewed as code; `export`
writes the JSON Grafana reads. Panels are laid out in rows of 24 grid units.
"""

from __future__ import annotations

from typing import Any

INFLUX_UID = "firewatch-influx"
REGISTRY_UID = "firewatch-registry"
INFLUX = {"type": "influxdb", "uid": INFLUX_UID}
REGISTRY = {"type": "grafana-postgresql-datasource", "uid": REGISTRY_UID}
MIXED = {"type": "datasource", "uid": "-- Mixed --"}
FOLDER_UID = "firewatch"
SCHEMA_VERSION = 39

Json = dict[str, Any]

FILTER = '"district" =~ /^$district$/ AND "site" =~ /^$site$/ AND "device_id" =~ /^$device$/'
"""Every device query honours the three template variables; 'All' is `.*`, so untagged points pass."""


def influx(query: str, ref: str = "A", alias: str = "", table: bool = False) -> Json:
    target: Json = {
        "refId": ref,
        "datasource": INFLUX,
        "query": query,
        "rawQuery": True,
        "resultFormat": "table" if table else "time_series",
    }
    if alias:
        target["alias"] = alias
    return target


def registry_sql(query: str, ref: str) -> Json:
    return {
        "refId": ref,
        "datasource": REGISTRY,
        "rawSql": query,
        "format": "table",
        "editorMode": "code",
    }


def thresholds(*steps: tuple[float | None, str]) -> Json:
    """Grafana threshold steps; the first step's value is None (from minus infinity)."""
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


def limits(unit: str, *steps: tuple[float | None, str], style: str = "line+area") -> Json:
    """Field defaults for a measured quantity with its alarm thresholds drawn on the graph."""
    return {
        "defaults": {
            "unit": unit,
            "thresholds": thresholds(*steps),
            "custom": {"thresholdsStyle": {"mode": style}},
        },
        "overrides": [],
    }


def stat(
    title: str,
    targets: list[Json],
    steps: tuple[tuple[float | None, str], ...],
    width: int = 4,
    height: int = 8,
    mappings: list[Json] | None = None,
) -> Json:
    """A number whose whole tile takes its threshold colour: readable across a wall screen."""
    defaults: Json = {"thresholds": thresholds(*steps)}
    if mappings:
        defaults["mappings"] = mappings
    return panel(
        "stat",
        title,
        targets,
        width=width,
        height=height,
        field_config={"defaults": defaults, "overrides": []},
        options={
            "colorMode": "background",
            "graphMode": "none",
            "reduceOptions": {"calcs": ["lastNotNull"]},
        },
    )


def panel(
    kind: str,
    title: str,
    targets: list[Json],
    width: int = 12,
    height: int = 8,
    description: str = "",
    field_config: Json | None = None,
    options: Json | None = None,
    transformations: list[Json] | None = None,
    interval: str = "",
) -> Json:
    """One panel; its id and grid position are set when the dashboard lays it out.

    `interval` is the panel's minimum `$__interval`: InfluxDB's cost grows with
    buckets times series, and max/min buckets keep every peak anyway.
    """
    sources = {t["datasource"]["uid"] for t in targets}
    p: Json = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": INFLUX if sources == {INFLUX_UID} else MIXED,
        "targets": targets,
        "gridPos": {"w": width, "h": height},
        "fieldConfig": field_config or {"defaults": {}, "overrides": []},
        "options": options or {},
    }
    if transformations:
        p["transformations"] = transformations
    if interval:
        p["interval"] = interval
    return p


def variable(name: str, label: str, query: str) -> Json:
    """A multi-value InfluxQL tag variable whose 'All' is the regex `.*`, cheap for InfluxDB."""
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": INFLUX,
        "query": query,
        "definition": query,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def device_variables(measurements: str = "") -> list[Json]:
    """district → site → device, each narrowed by the ones before it; `measurements` is an
    InfluxQL FROM operand (`"electrical"` or `/^(hydrant|pump)$/`), empty for all of them."""
    source = f" FROM {measurements}" if measurements else ""
    return [
        variable("district", "District", f'SHOW TAG VALUES{source} WITH KEY = "district"'),
        variable(
            "site",
            "Site",
            f'SHOW TAG VALUES{source} WITH KEY = "site" WHERE "district" =~ /^$district$/',
        ),
        variable(
            "device",
            "Device",
            f'SHOW TAG VALUES{source} WITH KEY = "device_id" '
            'WHERE "district" =~ /^$district$/ AND "site" =~ /^$site$/',
        ),
    ]


def alert_annotations(filtered: bool) -> Json:
    """Alerts as they fire, marked on every time series of the dashboard (and its filter).

    alerting writes one `alert` point per change (fired, updated, acknowledged,
    resolved); only `fired` is marked, once per alert.
    """
    query = 'SELECT "summary", "rule", "severity" FROM "alert" WHERE $timeFilter AND "change" = \'fired\''
    if filtered:
        query += " AND " + FILTER
    return {
        "list": [
            {
                "builtIn": 1,
                "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": True,
                "hide": True,
                "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts",
                "type": "dashboard",
            },
            {
                "name": "firewatch alerts",
                "datasource": INFLUX,
                "enable": True,
                "iconColor": "red",
                "query": query,
                "target": {
                    "refId": "Anno",
                    "query": query,
                    "rawQuery": True,
                    "fromAnnotations": True,
                    "textColumn": "summary",
                    "tagsColumn": "rule,severity",
                },
                "textColumn": "summary",
                "tagsColumn": "rule,severity",
            },
        ]
    }


def dashboard(
    uid: str,
    title: str,
    panels: list[Json],
    variables: list[Json],
    time_from: str = "now-6h",
    refresh: str = "30s",
    tags: tuple[str, ...] = (),
) -> Json:
    """Lay panels out left to right, wrapping at 24 units, and number them from 1."""
    x = y = row_height = 0
    laid: list[Json] = []
    for pid, p in enumerate(panels, start=1):
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24:
            x, y, row_height = 0, y + row_height, 0
        laid.append({**p, "id": pid, "gridPos": {"x": x, "y": y, "w": w, "h": h}})
        x, row_height = x + w, max(row_height, h)
    return {
        "uid": uid,
        "title": title,
        "tags": ["firewatch", *tags],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": time_from, "to": "now"},
        "refresh": refresh,
        "templating": {"list": variables},
        "annotations": alert_annotations(filtered=bool(variables)),
        "panels": laid,
    }
