"""The simulated city's map layer and district registry, as files a center would load for its own city.

A center loads its district registry (code → name, a CSV) with `firewatch districts
load` and points `[api] map_layer` at a GeoJSON file of its boundaries and roads.
For the simulated city (Chengdu's districts round Tianfu Square, see fleet.py) both
are generated here and shipped in simulators/data/: the boundaries are the Voronoi
cells of the district centres cut to a disc round each, the roads the ring roads at
their usual distances from the centre and one radial road to each outer district.
It is a schematic, offline and good enough to tell districts apart on the wall
screen, not surveyed geography.

    python -m firewatch.simulators.citymap      # rewrites simulators/data/
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from firewatch.simulators.fleet import CITY_CENTRE, District, districts_of_city

DATA = Path(__file__).resolve().parent / "data"
LAYER_FILE = DATA / "demo-city.geojson"
DISTRICTS_FILE = DATA / "districts.csv"
DEMO_DISTRICTS = 11
"""Every district of the simulated city that has a real name."""
RINGS_KM = (("一环路", 2.4), ("二环路", 4.6), ("三环路", 7.8), ("绕城高速", 12.5))
CELL_RADIUS_KM = 13.0
KM_PER_DEG = 111.32


def _km(lat: float, lon: float) -> tuple[float, float]:
    c_lat, c_lon = CITY_CENTRE
    return (lon - c_lon) * KM_PER_DEG * math.cos(math.radians(c_lat)), (lat - c_lat) * KM_PER_DEG


def _lonlat(x: float, y: float) -> list[float]:
    c_lat, c_lon = CITY_CENTRE
    return [round(c_lon + x / (KM_PER_DEG * math.cos(math.radians(c_lat))), 5), round(c_lat + y / KM_PER_DEG, 5)]


def _circle(cx: float, cy: float, r: float, n: int = 48) -> list[tuple[float, float]]:
    return [(cx + r * math.cos(2 * math.pi * k / n), cy + r * math.sin(2 * math.pi * k / n)) for k in range(n)]


def _clip(poly: list[tuple[float, float]], a: tuple[float, float], b: tuple[float, float]) -> list[tuple[float, float]]:
    """Keep the part of `poly` nearer to `a` than to `b` (one Sutherland–Hodgman step)."""
    mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
    nx, ny = b[0] - a[0], b[1] - a[1]

    def side(p: tuple[float, float]) -> float:
        return (p[0] - mx) * nx + (p[1] - my) * ny

    out: list[tuple[float, float]] = []
    for k, p in enumerate(poly):
        q = poly[(k + 1) % len(poly)]
        sp, sq = side(p), side(q)
        if sp <= 0:
            out.append(p)
        if sp * sq < 0:
            t = sp / (sp - sq)
            out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
    return out


def layer(districts: list[District]) -> dict[str, Any]:
    """GeoJSON: one Polygon per district (code, name) and LineStrings for the roads (name, road)."""
    centres = [_km(d.latitude, d.longitude) for d in districts]
    features: list[dict[str, Any]] = []
    for d, c in zip(districts, centres, strict=True):
        cell = _circle(*c, CELL_RADIUS_KM)
        for other in centres:
            if other != c:
                cell = _clip(cell, c, other)
        ring = [_lonlat(*p) for p in cell]
        features.append({
            "type": "Feature",
            "properties": {"district": d.code, "name": d.name_zh, "name_en": d.name},
            "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
        })
    for name, r in RINGS_KM:
        ring = [_lonlat(*p) for p in _circle(0, 0, r, 64)]
        features.append({
            "type": "Feature",
            "properties": {"road": "ring", "name": name},
            "geometry": {"type": "LineString", "coordinates": [*ring, ring[0]]},
        })
    for d, (x, y) in zip(districts, centres, strict=True):
        if math.hypot(x, y) > RINGS_KM[-2][1]:
            features.append({
                "type": "Feature",
                "properties": {"road": "radial", "name": f"至{d.name_zh}"},
                "geometry": {"type": "LineString", "coordinates": [_lonlat(0, 0), _lonlat(x, y)]},
            })
    return {"type": "FeatureCollection", "name": "firewatch demo city (schematic)", "features": features}


def registry_csv(districts: list[District]) -> str:
    """The district registry as `firewatch districts load` takes it: code,name,name_en,latitude,longitude."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["code", "name", "name_en", "latitude", "longitude"])
    for d in districts:
        w.writerow([d.code, d.name_zh, d.name, d.latitude, d.longitude])
    return out.getvalue()


def layer_text(districts: list[District]) -> str:
    return json.dumps(layer(districts), ensure_ascii=False, separators=(",", ":")) + "\n"


def write(folder: Path = DATA) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    city = districts_of_city(DEMO_DISTRICTS)
    (folder / LAYER_FILE.name).write_text(layer_text(city), encoding="utf-8")
    (folder / DISTRICTS_FILE.name).write_text(registry_csv(city), encoding="utf-8")


if __name__ == "__main__":
    write()
