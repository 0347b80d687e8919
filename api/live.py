"""The live side of the api: wake stream clients promptly, and record device status changes.

The audit table is the one ordered history of changes (alerting writes a row per
alert change, this module a row per device status change), so the stream can
resume from any audit id. MQTT only makes it prompt: an alert change on
`fire/v1/_alerts/#` or a status on `fire/v1/+/+/status` wakes the feed, and a
one-second poll of the audit table covers a missed or early wake-up.

With several api workers or replicas every one of them hears every status (a
shared subscription would not get the retained ones, which is how a restarted
api learns what changed while it was away), and they take turns writing them:
a lock (PostgreSQL) or the database's write lock (SQLite) taken before the
previous status is read, so each change is written and audited once.

A retained status without device time (a last will, typically) is dated just
before the subscription, as alerting dates it: when the device said it is
unknown. It is a change only if it differs from what the store holds; one that
agrees is not written, so restarting the api never moves a device's "offline
since" to the restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from sqlalchemy import false, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

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
STATUS_LOCK = 0x66770001
"""The PostgreSQL advisory lock the api's status writers take turns on."""


class Feed:
    """Tells waiting stream clients that the audit table has grown past `last_id`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.last_id = 0
        self._grown = asyncio.Event()
        self._poke = asyncio.Event()
        self._asking: asyncio.Task[int] | None = None

    def poke(self) -> None:
        """Something may have changed; look now instead of at the next poll."""
        self._poke.set()

    def grown(self) -> asyncio.Event:
        """An event set at the next growth; take it before reading, then wait on it."""
        return self._grown

    async def head(self) -> int:
        """`max(audit.id)`, one query for every caller that asks while it runs (the poller, the
        console snapshot, the cached alert list and readings).

        At 300 requests a second that query was a quarter of a worker's CPU. A caller
        joining a query already under way may miss a change committed just before it
        arrived, which the query would have missed a moment earlier anyway; callers one
        after another (a write, then a read) each ask anew.
        """
        if self._asking is None or self._asking.done():
            self._asking = asyncio.ensure_future(self._max_id())
        return await asyncio.shield(self._asking)

    async def _max_id(self) -> int:
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
        self.statuses_written = 0
        """Statuses written, changed or not (every worker writes every status; one of them audits it)."""
        self.statuses_refused = 0
        """Statuses the store refused alone (twice) while it answered: logged and dropped."""
        self._pending: dict[str, DeviceStatus] = {}
        self._clockless: set[str] = set()
        """Devices whose pending status is a retained copy without device time."""
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
        now, before = now_ms(), conn.subscribed_ms - 1
        for topic, payload, _, _, retained in messages:
            self._handle(topic, payload, before if retained else now, retained)
        conn.ack([ack for _, _, ack, _, _ in messages if ack is not None])

    def _handle(self, topic: str, payload: bytes, received_ms: int, retained: bool) -> None:
        if topic.startswith(f"{PREFIX}/{ALERTS}/"):
            self.feed.poke()
            return
        try:
            parsed = parse(topic, payload, received_ms)
        except Exception:  # a message we cannot read must not stop the live feed
            log.exception("api live: cannot parse a message on %s; skipped", topic)
            return
        for record in parsed.records:
            if isinstance(record, DeviceStatus):
                self.offer(record, clockless=retained and record.ts_ms == received_ms)

    def offer(self, status: DeviceStatus, clockless: bool = False) -> None:
        """Queue a status for the next write; a newer one of the same device replaces it.

        `clockless`: a retained copy without device time, written only if it changes the state.
        """
        self._pending[status.device_id] = status
        if clockless:
            self._clockless.add(status.device_id)
        else:
            self._clockless.discard(status.device_id)
        self._pending_set.set()

    async def record_statuses(self) -> None:
        """Write each device's status change once: a DeviceState row plus an audit entry."""
        while True:
            await self._pending_set.wait()
            await asyncio.sleep(STATUS_FLUSH_S)
            self._pending_set.clear()
            batch, self._pending = self._pending, {}
            clockless, self._clockless = self._clockless, set()
            items = list(batch.values())
            try:
                for i in range(0, len(items), STATUS_CHUNK):
                    self.status_changes += await self._record_split(items[i : i + STATUS_CHUNK], clockless)
            except Exception as exc:  # noqa: BLE001 - store down: keep the newest, retry later
                log.warning("could not record device statuses: %s", exc)
                for item in items:
                    if item.device_id not in self._pending:
                        self.offer(item, clockless=item.device_id in clockless)
                self._pending_set.set()
                await asyncio.sleep(POLL_S)
                continue
            self.feed.poke()

    async def _record_split(self, items: list[DeviceStatus], clockless: set[str]) -> int:
        """Record a chunk; one the store refuses is halved until the refused row stands alone.

        A row alone is tried twice (a lock timeout refuses the first try only) and
        then dropped with a log line, so one bad row never holds back the statuses
        beside it. When the store does not answer
        at all the error goes up, and the caller keeps everything for later.
        """
        try:
            return await self._record(items, clockless)
        except Exception:  # which row, or the store itself, is found out below
            if not await self.store.ping():
                raise
            if len(items) > 1:
                half = len(items) // 2
                return (await self._record_split(items[:half], clockless)
                        + await self._record_split(items[half:], clockless))
            try:
                return await self._record(items, clockless)
            except Exception as exc:  # noqa: BLE001 - the same row refused twice: drop it, keep the feed going
                self.statuses_refused += 1
                log.error("the store refused the status of device %s twice; dropped: %s", items[0].device_id, exc)
                return 0

    async def _record(self, items: list[DeviceStatus], clockless: set[str]) -> int:
        changed = 0
        async with self.store.session() as s, s.begin():
            await _take_turn(s)
            ids = [i.device_id for i in items]
            known = {
                r.device_id: r
                for r in (
                    await s.execute(select(DeviceState).where(DeviceState.device_id.in_(ids)))
                ).scalars()
            }
            for item in items:
                row = known.get(item.device_id)
                if row is not None and (item.ts_ms < row.ts_ms
                                        or (item.device_id in clockless and row.online == item.online)):
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
        self.statuses_written += len(items)
        return changed


async def _take_turn(s: AsyncSession) -> None:
    """Hold the status writers' lock until this transaction ends, before reading any previous status.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: a first write (matching
    no row) takes the database's write lock and a fresh view at once.
    """
    if s.bind.dialect.name == "postgresql":
        await s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": STATUS_LOCK})
    else:
        await s.execute(update(DeviceState).where(false()).values(ts_ms=DeviceState.ts_ms))
