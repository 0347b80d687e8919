"""`firewatch store upgrade` on a store made by the schema before the gateway (no
`devices.transmitter_address`), before alerts kept their panel point (`alerts.loop`,
`alerts.point`) and their unit's department (`alerts.department`, NOT NULL with a default), and
while units still had `department_channels` (NOT NULL, dropped since): on SQLite and on
PostgreSQL every service refuses it by name until the upgrade, which adds the columns, drops the
retired one that would refuse every new unit, keeps the rows, and keeps an address to one panel."""

from __future__ import annotations

import asyncio
import os

import pytest
from sqlalchemy import JSON, Column, MetaData, Table, select, text
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner, Result

import firewatch.alerting.service
import firewatch.api
import firewatch.gateway
import firewatch.notify
import firewatch.supervision  # noqa: F401 - every part's tables, as the command sees them
from firewatch.cli import app
from firewatch.contract.db import Alert, Base, Device, Store, StoreOutdated, open_store
from firewatch.supervision import Unit
from tests.test_notify_service import store_url

__all__ = ["store_url"]  # the fixture: SQLite, and PostgreSQL at 127.0.0.1:5432
NEW = {"devices": {"transmitter_address"}, "alerts": {"loop", "point", "department"}}
RETIRED = {"sv_units": Column("department_channels", JSON, nullable=False)}
CHANGES = {"devices.transmitter_address", "alerts.loop", "alerts.point", "alerts.department",
           "sv_units.department_channels (retired)"}


def old_schema() -> MetaData:
    """Today's tables without the columns added since and with the one retired: what an older firewatch created."""
    old = MetaData()
    for t in Base.metadata.sorted_tables:
        if t.name in NEW or t.name in RETIRED:
            Table(t.name, old, *[c._copy() for c in t.columns if c.name not in NEW.get(t.name, ())],
                  *[RETIRED[t.name]._copy()] if t.name in RETIRED else [])
        else:
            t.to_metadata(old)
    return old


async def upgrade(url: str, *args: str) -> Result:
    """The command as a user runs it (in a thread: it runs its own event loop)."""
    env = {"FIREWATCH_STORE__URL": url, "FIREWATCH_CONFIG": os.devnull}
    return await asyncio.to_thread(CliRunner().invoke, app, ["store", "upgrade", *args], env=env)


async def test_an_old_store_is_refused_by_name_until_upgraded_and_keeps_its_rows(store_url: str) -> None:
    store = Store(store_url)
    async with store.engine.begin() as conn:
        await conn.run_sync(old_schema().create_all)
        await conn.execute(text("INSERT INTO devices (id, kind, district, site, address, thresholds, "
                                "mqtt_password_hash, created_ms) VALUES ('P-OLD', 'panel', '510104', "
                                "'万达广场', '', '{}', '', 1)"))
    await store.aclose()

    with pytest.raises(StoreOutdated) as refused:
        await open_store(store_url)
    for said in (*CHANGES, "firewatch store upgrade"):
        assert said in str(refused.value)

    checked = await upgrade(store_url, "--check")
    assert checked.exit_code == 1, checked.output
    assert set(checked.stdout.removeprefix("to change: ").strip().split(", ")) == CHANGES
    done = await upgrade(store_url)
    assert done.exit_code == 0, done.output
    assert set(done.stdout.removeprefix("changed: ").strip().split(", ")) == CHANGES
    again = await upgrade(store_url)
    assert (again.exit_code, again.stdout.strip()) == (0, "the store is up to date")

    store = await open_store(store_url)
    try:
        async with store.session() as s, s.begin():
            old = await s.get(Device, "P-OLD")
            assert old is not None and old.site == "万达广场" and old.transmitter_address is None
            old.transmitter_address = "00000000a001"
            s.add(Unit(name="万达广场", credit_code="U" + "0" * 17, category="general", district="510104"))
            s.add(Alert(fingerprint="P-OLD:fire", rule="fire", severity="fire", state="firing", kind="panel",
                        device_id="P-OLD", loop=1, point=23, started_ms=1, last_seen_ms=1))
        async with store.session() as s:
            assert (await s.execute(select(Alert.loop, Alert.point, Alert.department))).one() == (1, 23, "")
            assert (await s.execute(select(Unit.name))).scalar_one() == "万达广场"
        with pytest.raises(IntegrityError):
            async with store.session() as s, s.begin():
                s.add(Device(id="P-NEW", kind="panel", district="510104", transmitter_address="00000000a001"))
    finally:
        await store.aclose()
