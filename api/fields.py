"""Validated field types shared by the routes, so every bound on input is stated once.

Bounds keep every value inside what the SQL store and InfluxDB accept: ids fit
a 64-bit integer, times fall between 2000 and 2100, text carries no NUL (which
PostgreSQL refuses), and names match the contract's topic rules.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import Field, StringConstraints

from firewatch.contract.kinds import SPECS
from firewatch.contract.topics import DEVICE_RE, DISTRICT_RE

MAX_ID = 2**62
MIN_MS = 946_684_800_000
"""2000-01-01."""
MAX_MS = 4_102_444_800_000
"""2100-01-01."""
KIND_RE = "^(" + "|".join(sorted(SPECS)) + ")$"
NO_NUL = r"^[^\x00]*$"

DeviceId = Annotated[str, StringConstraints(pattern=f"^{DEVICE_RE.pattern}$")]
District = Annotated[str, StringConstraints(pattern=f"^{DISTRICT_RE.pattern}$")]
KindName = Annotated[str, StringConstraints(pattern=KIND_RE)]
Site = Annotated[str, StringConstraints(max_length=128, pattern=NO_NUL)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=NO_NUL)]
Note = Annotated[str, StringConstraints(max_length=4000, pattern=NO_NUL)]
EpochMs = Annotated[int, Field(ge=MIN_MS, le=MAX_MS, description="epoch milliseconds")]

IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
DevicePath = Annotated[str, Path(pattern=f"^{DEVICE_RE.pattern}$", description="device id")]
SitePath = Annotated[
    str, Path(min_length=1, max_length=128, pattern=NO_NUL, description="site name")
]
SinceQuery = Annotated[int | None, Query(ge=MIN_MS, le=MAX_MS, description="from, epoch ms")]
UntilQuery = Annotated[int | None, Query(ge=MIN_MS, le=MAX_MS, description="until, epoch ms")]
Limit = Annotated[int, Query(ge=1, le=5000)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
