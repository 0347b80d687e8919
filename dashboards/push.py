"""Install or update the dashboards and their data sources in a running Grafana, by uid.

Pushing twice leaves Grafana as pushing once: data sources are created or
updated under their fixed uids (a provisioned one, which Grafana will not let
the API change, is left as it is), the folder is created once, and dashboards
are saved with `overwrite` under their own uids.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import niquests
from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException

from firewatch.dashboards.boards import all_dashboards
from firewatch.dashboards.grafana import FOLDER_UID, INFLUX_UID, REGISTRY_UID, Json

FOLDER_TITLE = "firewatch"


@dataclass(frozen=True, slots=True)
class InfluxSource:
    url: str
    database: str
    user: str = ""
    password: str = ""

    def datasource(self) -> Json:
        ds: Json = {
            "uid": INFLUX_UID,
            "name": "firewatch InfluxDB",
            "type": "influxdb",
            "access": "proxy",
            "url": self.url,
            "database": self.database,
            "user": self.user,
            "isDefault": True,
            "jsonData": {
                "dbName": self.database,
                "httpMode": "GET",
                "version": "InfluxQL",
                "timeInterval": "1m",
            },
        }
        if self.password:
            ds["secureJsonData"] = {"password": self.password}
        return ds


@dataclass(frozen=True, slots=True)
class RegistrySource:
    """The device registry in PostgreSQL, where the geomaps find each device's coordinates."""

    url: str

    def datasource(self) -> Json:
        u = urlsplit(self.url)
        if u.scheme.split("+")[0] not in ("postgresql", "postgres"):
            raise ValueError(
                f"the registry data source needs a postgresql:// URL, got {u.scheme}://"
            )
        ds: Json = {
            "uid": REGISTRY_UID,
            "name": "firewatch registry",
            "type": "grafana-postgresql-datasource",
            "access": "proxy",
            "url": f"{u.hostname}:{u.port or 5432}",
            "user": u.username or "",
            "jsonData": {
                "database": u.path.lstrip("/"),
                "sslmode": "prefer",
                "postgresVersion": 1500,
            },
        }
        if u.password:
            ds["secureJsonData"] = {"password": u.password}
        return ds


def _get_or_none(call: object, *args: str) -> Json | None:
    try:
        return call(*args)  # type: ignore[operator]
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            return None
        raise


def push(api: GrafanaApi, sources: list[Json], boards: list[Json] | None = None) -> list[str]:
    """Make Grafana hold these data sources and dashboards; returns one line per thing done."""
    report: list[str] = []
    for ds in sources:
        existing = _get_or_none(api.datasource.get_datasource_by_uid, ds["uid"])
        if existing is None:
            api.datasource.create_datasource(ds)
            report.append(f"data source {ds['uid']}: created")
        elif existing.get("readOnly"):
            report.append(f"data source {ds['uid']}: provisioned from a file, left as it is")
        else:
            api.datasource.update_datasource_by_uid(ds["uid"], {**ds, "id": existing["id"]})
            report.append(f"data source {ds['uid']}: updated")
    if _get_or_none(api.folder.get_folder, FOLDER_UID) is None:
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        report.append(f"folder {FOLDER_UID}: created")
    for board in boards if boards is not None else all_dashboards():
        api.dashboard.update_dashboard(
            {
                "dashboard": {**board, "id": None},
                "folderUid": FOLDER_UID,
                "overwrite": True,
                "message": "firewatch dashboards push",
            }
        )
        report.append(f"dashboard {board['uid']}: saved ({board['title']})")
    return report


def export(folder: Path) -> list[Path]:
    """Write each dashboard as `<uid>.json`, the files Grafana's file provider reads."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for board in all_dashboards():
        path = folder / f"{board['uid']}.json"
        path.write_text(json.dumps(board, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


class PushError(RuntimeError):
    """Grafana could not be reached or refused; the message says which and why."""


def install(url: str, token: str, sources: list[Json], timeout_s: float = 10.0) -> list[str]:
    """Push to the Grafana at `url`; `token` is a service-account token, or `user:password`."""
    credential: str | tuple[str, str] = token
    if ":" in token:
        user, _, password = token.partition(":")
        credential = (user, password)
    api = GrafanaApi.from_url(url, credential=credential, timeout=timeout_s)
    try:
        return push(api, sources)
    except GrafanaException as exc:
        raise PushError(f"Grafana at {url} refused: {exc}") from None
    except niquests.exceptions.RequestException as exc:
        raise PushError(f"Grafana at {url} not reachable: {exc}") from None
