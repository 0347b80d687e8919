"""The audit-trail follower: one change per alert as stored now, fires first, a cursor that never skips a change.

Audit rows are inserted with explicit ids to play a transaction that commits a lower
id after a higher one was read, as PostgreSQL allows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from firewatch.contract.db import AlertState, AuditEntry, ChangeKind, Store, open_store
from firewatch.notify.changes import AuditFollower
from tests.notify_servers import add_alert, set_state


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    st = await open_store(f"sqlite:///{tmp_path}/fw.db")
    yield st
    await st.aclose()


async def audit(store: Store, audit_id: int, subject: str, action: str = "fired", actor: str = "alerting") -> None:
    async with store.session() as s, s.begin():
        s.add(AuditEntry(id=audit_id, actor=actor, action=action, subject=subject, detail={}))


async def test_changes_come_once_per_alert_fires_first_and_not_notify_s_own(store: Store) -> None:
    follower = AuditFollower(store)
    assert await follower.start() == 0
    warning = await add_alert(store, 0, severity="warning", rule="residual", device_id="E1")
    fire = await add_alert(store, 0, device_id="P1")
    await audit(store, 1, f"alert:{warning.id}")
    await audit(store, 2, f"alert:{warning.id}", action="updated")
    await audit(store, 3, f"alert:{fire.id}")
    await audit(store, 4, f"alert:{fire.id}", action="not_paged", actor="notify")
    await audit(store, 5, "device:E1", action="device_add", actor="admin")
    changes = await follower.read()
    assert [(c.alert.id, c.kind, c.audit_ids) for c in changes] == [
        (fire.id, ChangeKind.FIRED, (3,)), (warning.id, ChangeKind.FIRED, (1, 2)),
    ]
    assert follower.cursor == 0, "nothing handled yet"
    follower.done(changes[1])
    assert follower.cursor == 2
    follower.done(changes[0])
    assert follower.cursor == 5, "rows about no alert, or notify's own, are passed over"
    assert await follower.read() == []


async def test_a_late_commit_below_the_newest_is_read_and_the_cursor_waits_for_it(store: Store) -> None:
    follower = AuditFollower(store)
    await follower.start()
    a, b = await add_alert(store, 0, device_id="P1"), await add_alert(store, 0, device_id="P2")
    await audit(store, 1, f"alert:{a.id}")
    await audit(store, 3, f"alert:{a.id}", action="updated")
    [first] = await follower.read()
    follower.done(first)
    assert follower.cursor == 1, "id 2 may still be committing"
    await set_state(store, b.id, AlertState.ACKNOWLEDGED, 0, by="zhang")
    await audit(store, 2, f"alert:{b.id}", action="notify_ack", actor="zhang")
    [late] = await follower.read()
    assert (late.alert.id, late.kind) == (b.id, ChangeKind.ACKNOWLEDGED)
    follower.done(late)
    assert follower.cursor == 3


async def test_a_restart_takes_up_the_stored_cursor_and_reads_what_came_after(store: Store) -> None:
    first = AuditFollower(store, districts=["510104"])
    await first.start()
    a = await add_alert(store, 0, device_id="P1", district="510104")
    elsewhere = await add_alert(store, 0, device_id="P9", district="510199")
    await audit(store, 1, f"alert:{a.id}")
    await audit(store, 2, f"alert:{elsewhere.id}")
    [change] = await first.read()
    assert change.alert.id == a.id, "only the follower's districts"
    first.done(change)
    await first.save()
    await set_state(store, a.id, AlertState.RESOLVED, 0)
    await audit(store, 3, f"alert:{a.id}", action="resolved")

    again = AuditFollower(store, districts=["510104"])
    assert await again.start() == 2
    [resolved] = await again.read()
    assert (resolved.kind, resolved.audit_ids) == (ChangeKind.RESOLVED, (3,))
    other = AuditFollower(store)
    assert await other.start() == 0, "a stage for other districts keeps a cursor of its own"
