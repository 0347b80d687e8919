"""The district registry and the map layer: what the console draws under the devices and calls places.

The registry (code → name) is read by the console, the phone pages and messages, so a
district reads 锦江区 everywhere; PUT replaces it from the same CSV `firewatch districts
load` takes. The layer is the GeoJSON file named by `[api] map_layer`, served as it is.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from firewatch.api.auth import Admin, Viewer
from firewatch.api.context import Context, Ctx
from firewatch.api.errors import invalid, not_found
from firewatch.contract.db import District
from firewatch.contract.districts import RegistryError, parse_csv, replace_registry

router = APIRouter(prefix="/api/v1", tags=["districts"])
MAX_CSV = 2 * 1024 * 1024


class DistrictOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    code: str
    name: str
    name_en: str
    latitude: float | None
    longitude: float | None


async def registry(c: Context) -> list[DistrictOut]:
    async with c.store.session() as s:
        rows = (await s.scalars(select(District).order_by(District.code))).all()
    return [DistrictOut.model_validate(r) for r in rows]


@router.get("/districts", response_model=list[DistrictOut], summary="The district registry (code → name, centre)")
async def list_districts(c: Ctx, _: Viewer) -> list[DistrictOut]:
    return await registry(c)


@router.put(
    "/districts",
    response_model=list[DistrictOut],
    summary="Replace the district registry from CSV (code,name,name_en,latitude,longitude)",
    openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def put_districts(request: Request, c: Ctx, who: Admin) -> list[DistrictOut]:
    raw = await request.body()
    if len(raw) > MAX_CSV:
        raise invalid(f"the CSV is larger than {MAX_CSV} bytes")
    try:
        rows = parse_csv(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise invalid("the CSV is not UTF-8") from None
    except RegistryError as exc:
        raise invalid(str(exc)) from None
    await replace_registry(c.store, rows, who.name)
    c.feed.poke()
    return await registry(c)


@router.get(
    "/map/layer",
    summary="The map layer: district boundaries and roads (GeoJSON from [api] map_layer)",
    responses={200: {"content": {"application/geo+json": {}}}},
)
async def map_layer(c: Ctx, _: Viewer) -> Response:
    return layer_response(c)


def layer_response(c: Context) -> Response:
    """The `[api] map_layer` file as it is (also the public report page's map: boundaries and roads only)."""
    path = c.settings.api.map_layer
    if path is None:
        raise not_found("map layer ([api] map_layer is not set)")
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise not_found(f"map layer {path}: {exc.strerror}") from None
    return Response(body, media_type="application/geo+json", headers={"Cache-Control": "max-age=3600"})
