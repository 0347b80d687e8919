"""The unit registry's input: units with their people, maintenance companies, and the CSV import.

Input models validate what a person types (the credit code by its check character,
phones, categories); `csv_row` turns one CSV line into a `UnitIn` or a reason a
person can act on, so an import reports each rejected row and keeps the others.
"""

from __future__ import annotations

import csv
import io
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from firewatch.contract.topics import DISTRICT_RE
from firewatch.supervision.credit_code import CreditCodeError, validate


class UnitCategory(StrEnum):
    KEY = "key"
    """消防安全重点单位."""
    HIGH_RISK = "high_risk"
    """火灾高危单位."""
    GENERAL = "general"
    """一般单位."""


class ContactRole(StrEnum):
    RESPONSIBLE = "responsible"
    """消防安全责任人."""
    MANAGER = "manager"
    """消防安全管理人."""
    CONTROL_ROOM = "control_room"
    """消防控制室."""
    ENGINEER = "engineer"
    """维保单位工程师."""


NO_NUL = r"^[^\x00]*$"
Text = Annotated[str, StringConstraints(max_length=256, pattern=NO_NUL, strip_whitespace=True)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL, strip_whitespace=True)]
Phone = Annotated[str, StringConstraints(max_length=32, pattern=r"^[0-9+\- ]*$", strip_whitespace=True)]
Channel = Annotated[str, StringConstraints(min_length=3, max_length=1000, pattern=r"^[a-z][a-z0-9+.-]*://\S+$")]
District = Annotated[str, StringConstraints(pattern=f"^{DISTRICT_RE.pattern}$")]
CSV_COLUMNS = (
    "name", "credit_code", "category", "address", "district", "grid", "latitude", "longitude",
    "sites", "company_credit_code", "department", "responsible_name", "responsible_phone",
    "manager_name", "manager_phone", "control_room_phone",
)
MAX_CSV_BYTES = 10 * 1024 * 1024


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContactIn(_In):
    role: ContactRole
    name: Name
    phone: Phone = ""
    channels: list[Channel] = Field(default_factory=list, max_length=10)


class CompanyIn(_In):
    name: Name
    credit_code: str
    phone: Phone = ""
    channels: list[Channel] = Field(default_factory=list, max_length=10)
    engineers: list[ContactIn] = Field(default_factory=list, max_length=50)

    @field_validator("credit_code")
    @classmethod
    def _code(cls, v: str) -> str:
        return _credit_code(v)


class UnitIn(_In):
    name: Name
    credit_code: str
    category: UnitCategory = UnitCategory.GENERAL
    address: Text = ""
    district: District
    grid: Annotated[str, StringConstraints(max_length=64, pattern=NO_NUL, strip_whitespace=True)] = ""
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    sites: list[Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=NO_NUL)]] = Field(
        default_factory=list, max_length=200
    )
    company_id: int | None = Field(None, ge=1, le=2**62)
    department: Text = ""
    contacts: list[ContactIn] = Field(default_factory=list, max_length=50)

    @field_validator("credit_code")
    @classmethod
    def _code(cls, v: str) -> str:
        return _credit_code(v)


def _credit_code(v: str) -> str:
    try:
        return validate(v)
    except CreditCodeError as exc:
        raise ValueError(f"统一社会信用代码 {v[:20]!r}: {exc}") from None


def csv_row(raw: dict[str | None, Any]) -> tuple[UnitIn, str]:
    """One CSV row as a UnitIn and its company's credit code ('' for none); ValueError with the reason."""
    if None in raw:
        raise ValueError("more fields than the header names")
    fields = {k: (raw.get(k) or "").strip() for k in CSV_COLUMNS}
    missing = [k for k in ("name", "credit_code", "district") if not fields[k]]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    data: dict[str, Any] = {k: fields[k] for k in ("name", "credit_code", "address", "district", "grid",
                                                    "department")}
    data["category"] = fields["category"] or UnitCategory.GENERAL
    for key in ("latitude", "longitude"):
        try:
            data[key] = float(fields[key]) if fields[key] else None
        except ValueError:
            raise ValueError(f"{key} {fields[key][:40]!r} is not a number") from None
    data["sites"] = [p.strip() for p in fields["sites"].split(";") if p.strip()]
    contacts = []
    for role, name_key, phone_key in (("responsible", "responsible_name", "responsible_phone"),
                                      ("manager", "manager_name", "manager_phone"),
                                      ("control_room", "", "control_room_phone")):
        name = fields[name_key] if name_key else ("消防控制室" if fields[phone_key] else "")
        if name:
            contacts.append({"role": role, "name": name, "phone": fields[phone_key]})
    data["contacts"] = contacts
    try:
        unit = UnitIn(**data)
    except ValidationError as exc:
        raise ValueError("; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )) from None
    company = fields["company_credit_code"]
    if company:
        company = _credit_code(company)
    return unit, company


def read_csv(raw: bytes) -> tuple[list[tuple[int, UnitIn, str]], list[tuple[int, str, str]]]:
    """Good rows (line, unit, company code) and rejected ones (line, credit code as given, reason).

    Raises ValueError for a file that cannot be read at all (not UTF-8, no header).
    """
    if len(raw) > MAX_CSV_BYTES:
        raise OverflowError(f"CSV larger than {MAX_CSV_BYTES // 1048576} MiB; split it")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"CSV must be UTF-8: {exc}") from None
    if "\x00" in text:
        raise ValueError("CSV contains NUL characters; is it a spreadsheet file rather than CSV?")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames or []
    except csv.Error as exc:
        raise ValueError(f"CSV header unreadable: {exc}") from None
    if not {"name", "credit_code", "district"} <= set(header):
        raise ValueError(f"CSV header must name at least name, credit_code, district (columns: "
                         f"{', '.join(CSV_COLUMNS)})")
    good: list[tuple[int, UnitIn, str]] = []
    bad: list[tuple[int, str, str]] = []
    seen: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            given = str(row.get("credit_code") or "")[:32]
            try:
                unit, company = csv_row(row)
            except ValueError as exc:
                bad.append((line, given, str(exc)))
                continue
            if unit.credit_code in seen:
                bad.append((line, given, f"duplicate of line {seen[unit.credit_code]}"))
                continue
            seen[unit.credit_code] = line
            good.append((line, unit, company))
    except csv.Error as exc:
        raise ValueError(f"CSV unreadable at line {reader.line_num}: {exc}") from None
    return good, bad
