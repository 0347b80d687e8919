"""The live side of the api: wake stream clients promptly, and record device status changes.

The audit table is the one ordered history of changes (alerting writes a row per
alert change, this module a row per device status change), so the stream can
resume from any audit id. MQTT only makes it prompt: an alert change on
`fire/v1/_alerts/#` or a status on `fire/v1/+/+/status` wakes the feed, and a
one-second poll of the audit table covers a missed or early wake-up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from sqlalchemy import func, select

from firewatch.api.tables import DeviceState
from firewatch.contract.db import AuditEntry, Store, now_ms
from firewatch.contract.mqtt import Connection, Message, Session, supervise, tls_context
from firewatch.contract.payload import DeviceStatus, parse
from firewatch.contract.settings import MqttSettings
from firewatch.contract.topics import ALERTS, PREFIX

log = logging.getLogger("firewatch.api.live")
POLL_S = 1.0
STATUS_FLUSH_S = 0.1
STATUS_CHUNK = 500


class Feed:
    """Tells waiting stream clients that the audit table has grown past `last_id`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.last_id = 0
        self._grown = asyncio.Event()
        self._poke = asyncio.Event()

    def poke(self) -> None:
        """Something may have changed; look now instead of at the next poll."""
        self._poke.set()

    def grown(self) -> asyncio.Event:
        """An event set at the next growth; take it before reading, then wait on it."""
        return self._grown

    async def head(self) -> int:
        async with self.store.session() as s:
            return (await s.execute(select(func.max(AuditEntry.id)))).scalar() or 0

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._poke.wait(), POLL_S)
            except TimeoutError:
                pass
            self._poke.clear()
            try:
                head = await self.head()
            except Exception as exc:  # noqa: BLE001 - the store may be down; keep polling
                log.warning("audit poll failed: %s", exc)
                continue
            if head != self.last_id:
                self.last_id = head
                grown, self._grown = self._grown, asyncio.Event()
                grown.set()


class Listener:
    """One MQTT connection: wake-ups from alert changes, and device statuses to record."""

    def __init__(self, settings: MqttSettings, store: Store, feed: Feed) -> None:
        self.settings = settings
        self.store = store
        self.feed = feed
        self.connected = False
        self.status_changes = 0
        self._pending: dict[str, DeviceStatus] = {}
        self._pending_set = asyncio.Event()

    async def run(self) -> None:
        s = self.settings
        session = Session.from_settings(
            s, f"{s.client_id_prefix}-api-{socket.gethostname()}-{os.getpid()}", session_expiry_s=0,
            clean_start=True,
        )
        await supervise(session, [f"{PREFIX}/{ALERTS}/#", f"{PREFIX}/+/+/status"], self._on_messages,
                        tls=tls_context(s), on_up=self._up, on_down=self._down, name="api live")

    def _up(self, _conn: Connection) -> None:
        self.connected = True
        self.feed.poke()

    def _down(self, _conn: Connection) -> None:
        self.connected = False

    def _on_messages(self, conn: Connection, messages: list[Message]) -> None:
        """Statuses are kept by device until written, so they are acknowledged at once."""
        for topic, payload, _, _, _ in messages:
            self._handle(topic, payload)
        conn.ack([ack for _, _, ack, _, _ in messages if ack is not None])

    def _handle(self, topic: str, payload: bytes) -> None:
        if topic.startswith(f"{PREFIX}/{ALERTS}/"):
            self.feed.poke()
            return
        try:
            parsed = parse(topic, payload)
        except Exception:  # noqa: BLE001 - a message we cannot read must not stop the live feed
            log.exception("api live: cannot parse a message on %s; skipped", topic)
            return
        for record in parsed.records:
            if isinstance(record, DeviceStatus):
                self._pending[record.device_id] = record
                self._pending_set.set()

    async def record_statuses(self) -> None:
        """Write each device's status change once: a DeviceState row plus an audit entry."""
        while True:
            await self._pending_set.wait()
            await asyncio.sleep(STATUS_FLUSH_S)
            self._pending_set.clear()
            batch, self._pending = self._pending, {}
            items = list(batch.values())
            try:
                for i in range(0, len(items), STATUS_CHUNK):
                    self.status_changes += await self._record(items[i : i + STATUS_CHUNK])
            except Exception as exc:  # noqa: BLE001 - store down: keep the newest, retry later
                log.warning("could not record device statuses: %s", exc)
                for item in items:
                    self._pending.setdefault(item.device_id, item)
                self._pending_set.set()
                await asyncio.sleep(POLL_S)
                continue
            self.feed.poke()

    async def _record(self, items: list[DeviceStatus]) -> int:
        changed = 0
        async with self.store.session() as s, s.begin():
            ids = [i.device_id for i in items]
            known = {
                r.device_id: r
                for r in (
                    await s.execute(select(DeviceState).where(DeviceState.device_id.in_(ids)))
                ).scalars()
            }
            for item in items:
                row = known.get(item.device_id)
                if row is not None and item.ts_ms < row.ts_ms:
                    continue
                if row is None:
                    row = DeviceState(
                        device_id=item.device_id, online=item.online, ts_ms=item.ts_ms
                    )
                    s.add(row)
                elif row.online == item.online:
                    row.ts_ms = item.ts_ms
                    row.fw = item.fw or row.fw
                    continue
                row.online, row.ts_ms, row.district = item.online, item.ts_ms, item.district
                row.fw, row.changed_ms = item.fw or row.fw or "", now_ms()
                changed += 1
                await self.store.audit(
                    s,
                    "device",
                    "online" if item.online else "offline",
                    f"device:{item.device_id}",
                    online=item.online,
                    ts_ms=item.ts_ms,
                    fw=item.fw,
                )
        return changed
