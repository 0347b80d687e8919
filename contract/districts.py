"""Loading the district registry (code → name, centre) from the CSV a center keeps.

    code,name,name_en,latitude,longitude
    510104,锦江区,Jinjiang,30.645125,104.096028

A bad line is refused with its number and reason, and nothing is replaced: a
half-loaded registry would show codes for some districts and names for others.
"""

from __future__ import annotations

import csv
import io

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import delete

from firewatch.contract.db import District, Store

COLUMNS = ("code", "name", "name_en", "latitude", "longitude")


class DistrictIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    code: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    name: str = Field(min_length=1, max_length=128)
    name_en: str = Field("", max_length=128)
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)


class RegistryError(ValueError):
    """The CSV cannot be loaded; the message names the line."""


def parse_csv(text: str) -> list[DistrictIn]:
    try:
        return _parse(csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline="")))
    except csv.Error as exc:  # a stray carriage return, a NUL: said, never a crash
        raise RegistryError(f"not CSV: {exc}") from None


def _parse(reader: csv.DictReader[str]) -> list[DistrictIn]:
    missing = [c for c in ("code", "name") if c not in (reader.fieldnames or [])]
    if missing:
        raise RegistryError(f"the header lacks {', '.join(missing)} (columns: {', '.join(COLUMNS)})")
    out, seen = [], set()
    for line, row in enumerate(reader, start=2):
        values = {k: v for k, v in row.items() if k in COLUMNS and v not in (None, "")}
        try:
            d = DistrictIn(**values)
        except ValidationError as exc:
            e = exc.errors()[0]
            raise RegistryError(f"line {line}: {'.'.join(map(str, e['loc']))}: {e['msg']}") from None
        if d.code in seen:
            raise RegistryError(f"line {line}: code {d.code} appears twice")
        seen.add(d.code)
        out.append(d)
    return out


async def replace_registry(store: Store, rows: list[DistrictIn], actor: str = "cli") -> None:
    """Put `rows` in place of the stored registry, in one transaction, audited."""
    async with store.session() as s, s.begin():
        await s.execute(delete(District))
        s.add_all(District(**r.model_dump()) for r in rows)
        await store.audit(s, actor, "districts_load", "districts", count=len(rows))
