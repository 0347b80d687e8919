"""The simulated city: which devices exist, where they stand, and what is normal for each.

Everything follows from (devices, seed, districts, mix), so two runs with the
same arguments build the same city down to the last baseline; parts that only
need the registry (alerting's sites, the api's map) rebuild it instead of
reading it from somewhere.
"""

from __future__ import annotations

import csv
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from firewatch.contract.kinds import SPECS, Kind

CITY_CENTRE = (30.6586, 104.0647)
"""Latitude, longitude of the simulated city's centre (Chengdu, Tianfu Square)."""

_DISTRICTS = [
    # code, name, Chinese name, km east, km north of the centre
    ("510104", "Jinjiang", "锦江区", 3.0, -1.5),
    ("510105", "Qingyang", "青羊区", -3.5, 0.5),
    ("510106", "Jinniu", "金牛区", -1.0, 4.5),
    ("510107", "Wuhou", "武侯区", -1.5, -4.5),
    ("510108", "Chenghua", "成华区", 4.5, 3.5),
    ("510112", "Longquanyi", "龙泉驿区", 18.0, -3.0),
    ("510113", "Qingbaijiang", "青白江区", 21.0, 22.0),
    ("510114", "Xindu", "新都区", 5.0, 18.0),
    ("510115", "Wenjiang", "温江区", -16.0, -2.0),
    ("510116", "Shuangliu", "双流区", -3.0, -18.0),
    ("510117", "Pidu", "郫都区", -16.0, 10.0),
]
_STREETS = [
    "Chunxi", "Renmin", "Shuncheng", "Hongxing", "Jianshe", "Shuangqing", "Yulin", "Kehua",
    "Tianfu", "Jiaozi", "Guanghua", "Qingjiang", "Shawan", "Fuqin", "Jinsha", "Wangjiang",
]
PREFIX = {Kind.ELECTRICAL: "EL", Kind.HYDRANT: "HY", Kind.PANEL: "FP", Kind.PUMP: "PU"}
DEFAULT_MIX = {Kind.ELECTRICAL: 0.40, Kind.HYDRANT: 0.35, Kind.PANEL: 0.15, Kind.PUMP: 0.10}
ZONES = ["B1 garage", "1F lobby", "1F kitchen", "2F east", "2F west", "3F east", "3F west", "5F office",
         "roof plant"]
_FIRMWARE = {Kind.ELECTRICAL: "3.2.1", Kind.HYDRANT: "1.8.4", Kind.PANEL: "2.1.0", Kind.PUMP: "1.4.2"}


@dataclass(frozen=True, slots=True)
class District:
    code: str
    name: str
    latitude: float
    longitude: float
    name_zh: str = ""


@dataclass(slots=True)
class Device:
    """One simulated device; `params` holds its baseline (see simulators.signals for their use)."""

    id: str
    kind: Kind
    district: str
    site: str
    address: str
    latitude: float
    longitude: float
    report_interval_s: int
    fw: str
    params: dict[str, float] = field(default_factory=dict)
    zones: list[str] = field(default_factory=list)
    """Panel zones; the fire and false-alarm incidents pick from them."""

    def registry_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "district": self.district,
            "site": self.site,
            "address": self.address,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "report_interval_s": self.report_interval_s,
        }


REGISTRY_COLUMNS = ["id", "kind", "district", "site", "address", "latitude", "longitude", "report_interval_s"]


def _offset(lat: float, lon: float, east_km: float, north_km: float) -> tuple[float, float]:
    return lat + north_km / 111.32, lon + east_km / (111.32 * math.cos(math.radians(lat)))


def districts_of_city(count: int) -> list[District]:
    """The first `count` districts; beyond the real table, numbered ones on a ring round the city."""
    out = []
    for i in range(count):
        if i < len(_DISTRICTS):
            code, name, name_zh, east, north = _DISTRICTS[i]
        else:
            angle = i * 2.399963  # golden angle spreads them evenly
            code, name, name_zh = f"5101{i + 50:02d}", f"District {i + 1}", f"第{i + 1}区"
            east, north = 30 * math.cos(angle), 30 * math.sin(angle)
        lat, lon = _offset(*CITY_CENTRE, east, north)
        out.append(District(code, name, round(lat, 6), round(lon, 6), name_zh))
    return out


def _counts(total: int, mix: dict[Kind, float]) -> dict[Kind, int]:
    """Split `total` by `mix`, every kind with a share getting one device before any gets two."""
    kinds = [k for k, share in mix.items() if share > 0]
    weight = sum(mix[k] for k in kinds)
    if total >= len(kinds):
        counts = {k: 1 for k in kinds}
        rest = total - len(kinds)
    else:
        counts, rest = {k: 0 for k in kinds}, total
    exact = {k: rest * mix[k] / weight for k in kinds}
    for k in kinds:
        counts[k] += int(exact[k])
    left = total - sum(counts.values())
    for k in sorted(kinds, key=lambda k: exact[k] - int(exact[k]), reverse=True)[:left]:
        counts[k] += 1
    return counts


def _params(kind: Kind, rng: np.random.Generator) -> dict[str, float]:
    """Per-device baseline. Ranges keep a healthy device well inside every DOMAIN.md threshold."""
    u = rng.uniform
    if kind is Kind.ELECTRICAL:
        return {
            "rated_a": float(rng.choice([63, 100, 160, 250, 400])),
            "load_night": round(u(0.12, 0.25), 3),
            "load_peak": round(u(0.45, 0.70), 3),
            "weight_a": round(u(0.92, 1.08), 3),
            "weight_b": round(u(0.92, 1.08), 3),
            "weight_c": round(u(0.92, 1.08), 3),
            "rise_c": round(u(18, 30), 2),
            "ambient_c": round(u(20, 27), 2),
            "residual_ma": round(u(25, 160), 1),
            "volt_a": round(u(-4, 4), 2),
            "volt_b": round(u(-4, 4), 2),
            "volt_c": round(u(-4, 4), 2),
        }
    if kind is Kind.HYDRANT:
        return {
            "pressure_mpa": round(u(0.24, 0.45), 3),
            "tilt_deg": round(u(0.3, 4.0), 2),
            "ground_c": round(u(-0.8, 0.8), 2),
            "battery_pct": float(rng.integers(55, 101)),
            "rssi_dbm": float(rng.integers(-105, -68)),
        }
    if kind is Kind.PUMP:
        return {
            "pressure_mpa": round(u(0.55, 0.85), 3),
            "rated_a": round(u(30, 90), 1),
            "flow_lps": round(u(20, 40), 1),
            "ambient_c": round(u(16, 24), 2),
            "test_day": float(rng.integers(0, 7)),
            "test_hour": float(rng.integers(9, 16)),
        }
    return {"loops": float(rng.integers(1, 5))}


@dataclass(slots=True)
class Fleet:
    """A city of devices; build it with `Fleet.build`, never by hand in tests."""

    devices: list[Device]
    districts: list[District]
    seed: int

    @classmethod
    def build(
        cls,
        devices: int,
        seed: int = 1,
        districts: int = 5,
        mix: dict[Kind, float] | dict[str, float] | None = None,
        intervals_s: dict[Kind, int] | dict[str, int] | None = None,
    ) -> Fleet:
        """Same arguments, same city: ids, sites, addresses, coordinates and baselines.

        `mix` weighs the kinds (default 40 % electrical, 35 % hydrant, 15 % panel,
        10 % pump); `intervals_s` overrides a kind's reporting period.
        """
        if devices < 0:
            raise ValueError("devices must be >= 0")
        if districts < 1:
            raise ValueError("districts must be >= 1")
        shares = {Kind(k): float(v) for k, v in (mix or DEFAULT_MIX).items()}
        every = {Kind(k): int(v) for k, v in (intervals_s or {}).items()}
        rng = np.random.default_rng(seed)
        city = districts_of_city(districts)
        fleet: list[Device] = []
        counter: dict[tuple[Kind, str], int] = {}
        for kind, n in _counts(devices, shares).items():
            for _ in range(n):
                d = city[int(rng.integers(len(city)))]
                number = counter[(kind, d.code)] = counter.get((kind, d.code), 0) + 1
                fleet.append(_device(kind, d, number, every.get(kind), seed, rng))
        fleet.sort(key=lambda dev: dev.id)
        return cls(fleet, city, seed)

    def by_id(self) -> dict[str, Device]:
        return {d.id: d for d in self.devices}

    def of_kind(self, kind: Kind | str) -> list[Device]:
        return [d for d in self.devices if d.kind == kind]

    def write_csv(self, path: Path | str) -> None:
        """The registry as CSV: id, kind, district, site, address, latitude, longitude, report_interval_s."""
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=REGISTRY_COLUMNS)
            w.writeheader()
            w.writerows(d.registry_row() for d in self.devices)

    async def register(self, store_url: str) -> int:
        """Upsert every device into the SQL store's registry; returns how many rows it wrote.

        Only the registry columns change on a device that exists, so thresholds and
        broker credentials set by operators survive a restarted simulator.
        """
        from sqlalchemy import insert, select

        from firewatch.contract.db import Device as DeviceRow
        from firewatch.contract.db import open_store

        store = await open_store(store_url)
        try:
            async with store.session() as s, s.begin():
                # every lookup before any insert: a table filled in the same transaction keeps the
                # planner's "empty" estimate, and its lookups became scans (minutes for 100,000 devices)
                rows: dict[str, DeviceRow] = {}
                for n in range(0, len(self.devices), 500):
                    query = select(DeviceRow).where(DeviceRow.id.in_([d.id for d in self.devices[n:n + 500]]))
                    rows |= {row.id: row for row in (await s.execute(query)).scalars()}
                new = [d.registry_row() for d in self.devices if d.id not in rows]
                for n in range(0, len(new), 5000):  # executemany, not one ORM object a row
                    await s.execute(insert(DeviceRow), new[n:n + 5000])
                for d in self.devices:
                    if (row := rows.get(d.id)) is not None:
                        for key, value in d.registry_row().items():
                            setattr(row, key, value)
        finally:
            await store.aclose()
        return len(self.devices)


def _device(
    kind: Kind, d: District, number: int, every: int | None, seed: int, rng: np.random.Generator
) -> Device:
    if kind is Kind.HYDRANT:
        site = f"{d.code}-st{number % 12:02d}"
        street = _STREETS[zlib.crc32(f"{seed}:{site}".encode()) % len(_STREETS)]
        address = f"{street} Rd hydrant {number}, {d.name}"
        spread_km = 2.5
    else:
        site = f"{d.code}-b{int(rng.integers(1, 13)):02d}"
        place = zlib.crc32(f"{seed}:{site}".encode())
        address = f"{place % 300 + 1} {_STREETS[place % len(_STREETS)]} Rd, {d.name}"
        spread_km = 1.5
    # Devices of one building share its place to a few metres; hydrants spread along their street.
    east, north = np.random.default_rng(zlib.crc32(f"{seed}:{site}".encode())).normal(0, spread_km, 2)
    jitter = rng.normal(0, 0.3 if kind is Kind.HYDRANT else 0.01, 2)
    lat, lon = _offset(d.latitude, d.longitude, east + jitter[0], north + jitter[1])
    zones = list(rng.choice(ZONES, size=int(rng.integers(3, 7)), replace=False)) if kind is Kind.PANEL else []
    return Device(
        id=f"{PREFIX[kind]}-{d.code}-{number:04d}",
        kind=kind,
        district=d.code,
        site=site,
        address=address,
        latitude=round(float(lat), 6),
        longitude=round(float(lon), 6),
        report_interval_s=every or SPECS[kind.value].report_interval_s,
        fw=_FIRMWARE[kind],
        params=_params(kind, rng),
        zones=[str(z) for z in zones],
    )
