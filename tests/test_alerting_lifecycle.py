"""The lifecycle on a real SQL store (SQLite and PostgreSQL): restarts,
acknowledgements, flapping, silences, grouping and fire ranking as an operator sees them in the table."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, update

from firewatch.alerting.config import load
from firewatch.alerting.pipeline import Pipeline
from firewatch.alerting.registry import DeviceInfo, Registry
from firewatch.contract.db import Alert, AuditEntry, Silence, Store, now_ms, open_store
from firewatch.contract.payload import PanelEvent, Reading
from tests.postgres import database

T0 = 1_763_800_000_000
MIN = 60_000


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store_url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/alerts.db"
        return
    with database("fw_alerting") as url:
        yield url


REGISTRY = [
    DeviceInfo("E1", "electrical", "d1", "Mall"),
    DeviceInfo("P1", "panel", "d1", "Mall"),
    DeviceInfo("P2", "panel", "d1", "Tower"),
    *[DeviceInfo(f"H{i}", "hydrant", "d2", f"street {i}") for i in range(4)],
]


async def pipeline(url: str, settings: dict | None = None) -> tuple[Pipeline, Store]:
    store = await open_store(url)
    p = Pipeline(load({"clock": "event", "lateness_s": 0, **(settings or {})}), store, Registry(REGISTRY))
    await p.start()
    return p, store


def residual(ts: int, ma: float, device: str = "E1") -> Reading:
    return Reading("d1", device, "electrical", ts, None, {"residual_ma": ma})


async def rows(store: Store) -> list[Alert]:
    async with store.session() as s:
        return list((await s.execute(select(Alert).order_by(Alert.id))).scalars())


async def audit(store: Store) -> list[AuditEntry]:
    async with store.session() as s:
        return list((await s.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars())


async def test_restart_neither_raises_twice_nor_forgets(store_url: str) -> None:
    p, store = await pipeline(store_url)
    sub = p.feed.subscribe()
    await p.process([residual(T0, 350)])
    assert [(c.kind, c.alert.rule, c.alert.severity) for c in sub.drain()] == [("fired", "residual_current", "critical")]
    await store.aclose()

    p2, store2 = await pipeline(store_url)
    sub2 = p2.feed.subscribe()
    await p2.process([residual(T0 + MIN, 360)])  # still above: the same alert, nothing new
    assert sub2.drain() == []
    await p2.process([residual(T0 + 2 * MIN, 100)])
    assert [c.kind for c in sub2.drain()] == ["resolved"]
    (alert,) = await rows(store2)
    assert (alert.state, alert.started_ms, alert.resolved_ms) == ("resolved", T0, T0 + 2 * MIN)
    trail = [(a.actor, a.action, a.subject) for a in await audit(store2)]
    assert trail == [("alerting", "fired", f"alert:{alert.id}"), ("alerting", "resolved", f"alert:{alert.id}")]
    await store2.aclose()


async def test_many_alerts_in_one_batch_each_get_their_own_row_and_audit_entry(store_url: str) -> None:
    """The ids handed back by one multi-row INSERT land on the right alerts, or an operator's
    acknowledgement in the console would hit another device's alert."""
    p, store = await pipeline(store_url)
    sub = p.feed.subscribe()
    devices = [f"E{i}" for i in range(2, 42)]
    await p.process([residual(T0 + i, 350 if i % 2 else 60, d) for i, d in enumerate(devices)]
                    + [Reading("d1", "E1", "electrical", T0, None, {"temp1_c": 95.0})])
    await p.process([residual(T0 + MIN + i, 10, d) for i, d in enumerate(devices)])
    changes = sub.drain()
    assert len([c for c in changes if c.kind == "fired"]) == 21
    by_id = {a.id: a for a in await rows(store)}
    trail = {e.id: e for e in await audit(store)}
    for c in changes:
        row, entry = by_id[c.alert.id], trail[c.audit_id]
        assert (row.device_id, row.rule) == (c.alert.device_id, c.alert.rule)
        assert (entry.subject, entry.action) == (f"alert:{c.alert.id}", c.kind)
    await store.aclose()


async def test_acknowledgement_survives_later_changes(store_url: str) -> None:
    p, store = await pipeline(store_url)
    sub = p.feed.subscribe()
    await p.process([residual(T0, 250)])
    (alert,) = await rows(store)
    async with store.session() as s, s.begin():  # what the api does
        await s.execute(update(Alert).where(Alert.id == alert.id).values(
            state="acknowledged", acknowledged_ms=now_ms(), acknowledged_by="op1"))
        await store.audit(s, "op1", "acknowledged", f"alert:{alert.id}")
    await p.process([residual(T0 + MIN, 320)])  # gets worse after the acknowledgement
    (alert,) = await rows(store)
    assert (alert.state, alert.severity, alert.acknowledged_by) == ("acknowledged", "critical", "op1")
    changes = await p.sync()
    assert [(c.kind, c.actor) for c in changes] == [("acknowledged", "op1")]
    assert [c.kind for c in sub.drain()] == ["fired", "updated", "acknowledged"]
    await p.process([residual(T0 + 2 * MIN, 50)])
    (alert,) = await rows(store)
    assert alert.state == "resolved"
    await store.aclose()


async def test_alert_resolved_by_an_operator_is_not_raised_again_while_the_condition_lasts(store_url: str) -> None:
    p, store = await pipeline(store_url)
    await p.process([residual(T0, 320)])
    (alert,) = await rows(store)
    async with store.session() as s, s.begin():
        await s.execute(update(Alert).where(Alert.id == alert.id).values(state="resolved", resolved_ms=T0))
        await store.audit(s, "op1", "resolved", f"alert:{alert.id}")
    assert [c.kind for c in await p.sync()] == ["resolved"]
    await p.process([residual(T0 + MIN, 330)])
    assert len(await rows(store)) == 1
    await p.process([residual(T0 + 2 * MIN, 50), ])
    await p.process([residual(T0 + 3 * MIN, 340)])
    assert [a.state for a in await rows(store)] == ["resolved", "firing"]
    await store.aclose()


async def test_flapping_alert_is_held_open(store_url: str) -> None:
    p, store = await pipeline(store_url, {"flap": {"changes": 3, "window_s": 3600, "hold_s": 600}})
    for i, ma in enumerate([320, 50, 320, 50, 320, 50]):
        await p.process([residual(T0 + i * MIN, ma)])
    alerts = await rows(store)
    assert [a.state for a in alerts] == ["resolved", "resolved", "firing"]  # the third one stays open
    await p.tick(T0 + 5 * MIN + 599_000)
    assert [a.state for a in await rows(store) if a.rule == "residual_current"][-1] == "firing"
    await p.tick(T0 + 5 * MIN + 600_000)
    assert [a.state for a in await rows(store) if a.rule == "residual_current"][-1] == "resolved"
    await store.aclose()


async def test_silenced_alert_is_recorded_and_flagged(store_url: str) -> None:
    store = await open_store(store_url)
    async with store.session() as s, s.begin():
        s.add(Silence(site="Mall", starts_ms=now_ms() - 1000, ends_ms=now_ms() + 3600_000, created_by="op1",
                      reason="maintenance"))
    await store.aclose()
    p, store = await pipeline(store_url)
    sub = p.feed.subscribe()
    await p.process([residual(T0, 400)])
    (change,) = sub.drain()
    assert change.silenced and change.kind == "fired"
    assert len(await rows(store)) == 1
    await store.aclose()


async def test_baselines_survive_a_restart(store_url: str) -> None:
    p, store = await pipeline(store_url)
    await p.process([residual(T0 + i * MIN, 60.0 + i % 3) for i in range(50)])
    det = p.readings["electrical"]
    before = det.learned[1].export(det.index["E1"])
    await p.save_baselines()
    await store.aclose()
    p2, store2 = await pipeline(store_url)
    det2 = p2.readings["electrical"]
    assert det2.learned[1].export(det2.index["E1"]) == before
    await store2.aclose()


async def test_hydrants_losing_pressure_together_are_grouped_under_one_water_main_alert(store_url: str) -> None:
    p, store = await pipeline(store_url)
    for i in range(4):
        await p.process([Reading("d2", f"H{i}", "hydrant", T0 + i * MIN, None, {"pressure_mpa": 0.06})])
    alerts = await rows(store)
    main = [a for a in alerts if a.rule == "water_main"]
    assert len(main) == 1 and main[0].fingerprint == "d2:water_main" and main[0].severity == "critical"
    members = [a for a in alerts if a.rule == "pressure_low"]
    assert len(members) == 4 and all(a.parent_id == main[0].id for a in members)
    for i in range(4):
        await p.process([Reading("d2", f"H{i}", "hydrant", T0 + (10 + i) * MIN, None, {"pressure_mpa": 0.3})])
    assert all(a.state == "resolved" for a in await rows(store))
    await store.aclose()


def fire(ts: int, point: int, component: str = "smoke", device: str = "P1", zone: str = "3F") -> PanelEvent:
    return PanelEvent("d1", device, ts, None, "fire", 1, point, zone, component)


async def test_real_fire_is_ranked_probable_and_a_false_alarm_is_not(store_url: str) -> None:
    p, store = await pipeline(store_url)
    await p.process([fire(T0, 1)])
    (alert,) = await rows(store)
    assert alert.severity == "fire" and not alert.probable  # shown at once, not yet judged
    await p.process([fire(T0 + 40_000, 2)])
    await p.process([PanelEvent("d1", "P1", T0 + 95_000, None, "start", zone="3F", component="fan")])
    await p.process([fire(T0 + 150_000, 3, "heat")])
    (alert,) = await rows(store)
    assert alert.probable and alert.score >= 0.6 and alert.state == "firing"
    assert any("points in zone 3F" in r for r in alert.reasons)
    assert any("heat detector after smoke" in r for r in alert.reasons)

    await p.process([fire(T0, 5, device="P2", zone="kitchen"), ])
    await p.process([PanelEvent("d1", "P2", T0 + 45_000, None, "reset")])
    false = (await rows(store))[-1]
    assert false.device_id == "P2" and not false.probable and false.state == "resolved"
    assert any("reset within" in r for r in false.reasons)
    await store.aclose()


async def test_fire_alarm_with_cable_overheating_at_the_same_site_is_probable(store_url: str) -> None:
    p, store = await pipeline(store_url)
    await p.process([fire(T0, 1)])
    await p.process([Reading("d1", "E1", "electrical", T0 + 30_000, None, {"temp1_c": 75.0})])
    fire_alert = next(a for a in await rows(store) if a.rule == "fire")
    assert fire_alert.probable and any("same site" in r for r in fire_alert.reasons)
    await store.aclose()


async def test_a_fire_alarm_is_ranked_the_same_however_its_messages_were_batched(tmp_path) -> None:
    """Correlation ranks the incident as each message left it, so one batch or one message per
    batch gives the operator the same history of scores (it once read the panel's state after the
    whole batch, and the first score of a batch already counted later points)."""
    events = [fire(T0, 1), fire(T0 + 40_000, 2),
              PanelEvent("d1", "P1", T0 + 95_000, None, "start", zone="3F", component="fan"),
              fire(T0 + 150_000, 3, "heat")]
    histories = []
    for name, batches in (("one", [events]), ("each", [[e] for e in events])):
        p, store = await pipeline(f"sqlite:///{tmp_path}/{name}.db")
        for batch in batches:
            await p.process(batch)
        histories.append([(e.action, e.detail["score"], e.detail["probable"]) for e in await audit(store)])
        await store.aclose()
    assert histories[0] == histories[1]
    assert histories[0][0] == ("fired", 0.3, False)  # the first point alone, as it arrived
    assert histories[0][-1][2] is True


async def test_a_panels_analog_values_are_stored_not_judged_and_do_not_stop_the_fire(tmp_path) -> None:
    """The gateway publishes a panel's component analog values; no rule watches them yet, so alerting
    counts them and goes on with the same batch's fire."""
    p, store = await pipeline(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    await p.process([Reading("d1", "P1", "panel", T0, None, {"temp_c": 61.5}, 1, 23), fire(T0, 1)])
    assert p.counts["unwatched"] == 1
    assert [a.rule for a in await rows(store)] == ["fire"]
    await store.aclose()
