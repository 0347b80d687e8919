"""The SQL store every part shares: one declarative base, the device registry, the audit trail.

Parts add their own tables to `Base` (alerting: alerts and silences; notify:
roster and deliveries) and `open_store` creates whatever is missing. SQLite is
the default for a single box; PostgreSQL is the production store. Access is
async so no part blocks its event loop on the database.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    String,
    Text,
    event,
    inspect,
    literal,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from firewatch.contract.kinds import ZONE_CHARS
from firewatch.contract.settings import SettingsError
from firewatch.contract.topics import DEVICE_ID_CHARS, DISTRICT_CHARS


def now_ms() -> int:
    return int(time.time() * 1000)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, int: BigInteger}


class Device(Base):
    """A registered device: where it is, what it is, and thresholds that override the defaults."""

    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(DEVICE_ID_CHARS), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    district: Mapped[str] = mapped_column(String(DISTRICT_CHARS), index=True)
    site: Mapped[str] = mapped_column(String(128), default="", index=True)
    address: Mapped[str] = mapped_column(String(256), default="")
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    thresholds: Mapped[dict[str, Any]] = mapped_column(default=dict)
    report_interval_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    mqtt_password_hash: Mapped[str] = mapped_column(Text, default="")
    transmitter_address: Mapped[str | None] = mapped_column(String(12), nullable=True, unique=True)
    """A panel's GB/T 26875.3 user information transmission device address (12 hex digits):
    how the gateway knows which registered panel a TCP connection speaks for."""
    created_ms: Mapped[int] = mapped_column(default=now_ms)
    retired_ms: Mapped[int | None] = mapped_column(nullable=True)


class District(Base):
    """The district registry: a code (the topic's and the registry's) and the name people use.

    The console, the phone pages and the messages say 锦江区, not 510104; the centre places
    devices that have no coordinates of their own. `firewatch districts load FILE.csv`.
    """

    __tablename__ = "districts"
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    name_en: Mapped[str] = mapped_column(String(128), default="")
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)


class AuditEntry(Base):
    """Who changed what, when and why: alerts, silences, devices, roster, tokens."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at_ms: Mapped[int] = mapped_column(default=now_ms)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(256))
    """`alert:42`, `device:H1`, `silence:7`: one string so one index finds a thing's history."""
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    __table_args__ = (Index("ix_audit_subject", "subject", "at_ms"),)


class Severity(StrEnum):
    """How urgent an alert is, least first: routing, the queue and the dashboards order by it."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"
    FIRE = "fire"


class AlertState(StrEnum):
    """An alert's place in its lifecycle; only the lifecycle and an acknowledgement move it."""

    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


OPEN_STATES = (AlertState.FIRING, AlertState.ACKNOWLEDGED)


class ChangeKind(StrEnum):
    """What happened to an alert: the `action` of the lifecycle's audit row (which notify follows),
    the `change` field of its InfluxDB point and a metric label."""

    FIRED = "fired"
    UPDATED = "updated"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
"""An alert in these states is open: the one alert of its fingerprint, still to be resolved."""


class Alert(Base):
    """One alert per (device, rule) fingerprint while open; its history is in `audit`.

    Times named `*_ms` without `updated` are event time (device clocks), so a replay
    gives the same alerts as live; `updated_ms` is wall time for change feeds.
    """

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(200), index=True)
    """`{device_id}:{rule}`, or `{district}:{rule}` for a district-wide alert."""
    rule: Mapped[str] = mapped_column(String(64), index=True)
    severity: Mapped[str] = mapped_column(String(16), index=True)
    """A `Severity`."""
    state: Mapped[str] = mapped_column(String(16), index=True)
    """An `AlertState`."""
    kind: Mapped[str] = mapped_column(String(16), default="")
    device_id: Mapped[str] = mapped_column(String(DEVICE_ID_CHARS), default="", index=True)
    district: Mapped[str] = mapped_column(String(DISTRICT_CHARS), default="", index=True)
    site: Mapped[str] = mapped_column(String(128), default="", index=True)
    department: Mapped[str] = mapped_column(String(200), default="")
    """The supervising department (行业主管部门) of the unit a supervision alert concerns, for notify's
    routes (`department = [...]`); empty for detection alerts."""
    zone: Mapped[str] = mapped_column(String(ZONE_CHARS), default="")
    loop: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """A panel alert's loop and point (回路、点位): the detector the duty officer walks to."""
    point: Mapped[int | None] = mapped_column(Integer, nullable=True)
    metric: Mapped[str] = mapped_column(String(64), default="")
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    unit: Mapped[str] = mapped_column(String(32), default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    probable: Mapped[bool] = mapped_column(default=False)
    """A panel fire alarm that correlation judges likely real."""
    score: Mapped[float] = mapped_column(Float, default=0.0, index=True)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    parent_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    """The grouping alert (a district water main) this one belongs to."""
    started_ms: Mapped[int] = mapped_column(index=True)
    last_seen_ms: Mapped[int] = mapped_column()
    resolved_ms: Mapped[int | None] = mapped_column(nullable=True)
    acknowledged_ms: Mapped[int | None] = mapped_column(nullable=True)
    acknowledged_by: Mapped[str] = mapped_column(String(128), default="")
    updated_ms: Mapped[int] = mapped_column(default=now_ms, onupdate=now_ms, index=True)


class Silence(Base):
    """Mutes routing (never detection) for a device, site or district until `ends_ms`."""

    __tablename__ = "silences"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(DEVICE_ID_CHARS), default="")
    site: Mapped[str] = mapped_column(String(128), default="")
    district: Mapped[str] = mapped_column(String(DISTRICT_CHARS), default="")
    rule: Mapped[str] = mapped_column(String(64), default="")
    """Empty matches every rule."""
    starts_ms: Mapped[int] = mapped_column()
    ends_ms: Mapped[int] = mapped_column(index=True)
    created_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")


def async_url(url: str) -> str:
    """Map a plain database URL to its async driver, so settings stay driver-free."""
    u = make_url(url)
    driver = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg"}.get(u.drivername)
    return str(u.set(drivername=driver)) if driver else url


class Store:
    """An async engine and its session factory; `async with store.session() as s` does the rest."""

    def __init__(self, url: str) -> None:
        self.url = async_url(url)
        u = make_url(self.url)
        sqlite = u.get_backend_name() == "sqlite"
        if sqlite and u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        # A server connection can die in the pool unnoticed; a SQLite file cannot, and the ping
        # would cost every transaction of the alert lifecycle a round trip through aiosqlite.
        self.engine: AsyncEngine = create_async_engine(self.url, pool_pre_ping=not sqlite)
        if sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.session = async_sessionmaker(self.engine, expire_on_commit=False)

    async def create_all(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    async def missing(self) -> list[str]:
        """What `firewatch store upgrade` would change: `table.column` for every column the code has and
        the store's existing tables lack, `table.column (retired)` for every one it dropped that would
        refuse new rows."""
        async with self.engine.connect() as conn:
            return (await conn.run_sync(Drift.read)).names()

    async def upgrade(self) -> list[str]:
        """Create missing tables, add missing columns and drop retired ones (`firewatch store upgrade`);
        what changed, named as `missing` names it."""
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
            return await conn.run_sync(lambda c: Drift.read(c).mend(c))

    async def ping(self) -> bool:
        from sqlalchemy import text

        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure means "not reachable" to a health check
            return False

    async def audit(
        self, session: AsyncSession, actor: str, action: str, subject: str, **detail: Any
    ) -> None:
        session.add(AuditEntry(actor=actor, action=action, subject=subject, detail=detail))

    async def aclose(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL lets the api read while alerting writes; the busy timeout rides out short locks."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class StoreOutdated(SettingsError):
    """The store was created by an older firewatch: `firewatch store upgrade` adds what it lacks
    (a SettingsError, so every command stops with its message and exit code 2)."""


@dataclass(frozen=True)
class Drift:
    """How the live tables differ from the code's, read off them in one inspection, since the store
    has no migration history: the columns the code has and they lack, and the retired ones (the
    code no longer has them) that are NOT NULL without a default — SQLAlchemy leaves those out of
    an INSERT, so every new row of their table would be refused. A retired column that takes NULL
    harms nothing and keeps its data."""

    missing: list[Column[Any]]
    retired: list[tuple[str, str]]

    @classmethod
    def read(cls, conn: Connection) -> Drift:
        insp = inspect(conn)
        tables = set(insp.get_table_names())
        missing: list[Column[Any]] = []
        retired: list[tuple[str, str]] = []
        for t in Base.metadata.sorted_tables:
            if t.name not in tables:
                continue
            live = insp.get_columns(t.name)
            have = {col["name"] for col in live}
            missing += [c for c in t.columns if c.name not in have]
            retired += [(t.name, col["name"]) for col in live if col["name"] not in t.columns
                        and not col["nullable"] and col.get("default") is None]
        return cls(missing, retired)

    def names(self) -> list[str]:
        """`table.column` to add, `table.column (retired)` to drop: what the CLI and the refusal print."""
        return [*(f"{c.table.name}.{c.name}" for c in self.missing),
                *(f"{t}.{c} (retired)" for t, c in self.retired)]

    def mend(self, conn: Connection) -> list[str]:
        """ALTER TABLE … ADD and DROP COLUMN, the same on SQLite (≥ 3.35) and PostgreSQL; `names()`.

        A column is added nullable, or NOT NULL with its scalar default for the rows already
        there; uniqueness and indexes come as indexes, since SQLite cannot add a UNIQUE column.
        """
        _add(conn, self.missing)
        prep = conn.dialect.identifier_preparer
        for table, column in self.retired:
            conn.exec_driver_sql(f"ALTER TABLE {prep.quote(table)} DROP COLUMN {prep.quote(column)}")
        return self.names()


def _add(conn: Connection, columns: list[Column[Any]]) -> None:
    prep = conn.dialect.identifier_preparer
    for c in columns:
        table, name = prep.format_table(c.table), prep.quote(c.name)
        ddl = f"ALTER TABLE {table} ADD COLUMN {name} {c.type.compile(conn.dialect)}"
        if not c.nullable:
            default = c.default.arg if c.default is not None and c.default.is_scalar else None
            if default is None:
                raise StoreOutdated(f"{c.table.name}.{c.name} is NOT NULL without a default: it cannot be"
                                    " added to rows that exist; add it by hand")
            value = literal(default, c.type).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            ddl += f" NOT NULL DEFAULT {value}"
        conn.exec_driver_sql(ddl)
        if c.unique or c.index:
            index = prep.quote(f"ix_{c.table.name}_{c.name}")
            conn.exec_driver_sql(f"CREATE {'UNIQUE ' if c.unique else ''}INDEX {index} ON {table} ({name})")


async def open_store(url: str) -> Store:
    """Create what is missing; refuse a store whose tables lack columns, naming them and the cure."""
    store = Store(url)
    await store.create_all()
    missing = await store.missing()
    if missing:
        await store.aclose()
        raise StoreOutdated(f"the SQL store {make_url(url).render_as_string(hide_password=True)} is older "
                            f"than this firewatch ({', '.join(missing)}): run `firewatch store upgrade`")
    return store
