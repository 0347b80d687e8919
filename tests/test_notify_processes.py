"""Several `firewatch notify` processes over the same alerts on PostgreSQL: each step paged once.

Real notify subprocesses follow the same audit trail (no districts: each would page every
alert) while a real alerting service raises fires from a real broker; the pages go to a real
HTTP server that counts them. A step's message is written once (its idempotency key), and the
process sending it holds its row until the send is recorded, so a process that starts while
another is sending (its restart catch-up reads every pending message) leaves it alone.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from firewatch.alerting.service import AlertingService
from firewatch.contract.db import AuditEntry, open_store
from firewatch.contract.settings import Settings
from firewatch.notify.delivery import Message
from firewatch.services import free_port
from tests.notify_servers import HttpSink
from tests.postgres import database
from tests.test_notify_service import (
    NotifyProcess,
    all_sent,
    fire,
    officer_and_alerting,
    paged,
    until,
    write_config,
)

FIRES = 6


async def _count(url: str, what: object) -> int:
    store = await open_store(url)
    try:
        async with store.session() as s:
            return await s.scalar(select(func.count()).select_from(what)) or 0  # type: ignore[arg-type]
    finally:
        await store.aclose()


@pytest.fixture
def url() -> Iterator[str]:
    with database("fw_processes") as url:
        yield url


@pytest.mark.postgres
async def test_notify_processes_starting_while_another_pages_page_each_fire_once(
        settings: Settings, sink: HttpSink, tmp_path: Path, url: str) -> None:
    """The first notify's page of the first fire hangs at the officer's webhook while two more notify
    processes start; then more fires come to all three. Every fire is paged once."""
    notifiers: list[NotifyProcess] = []
    service: AlertingService | None = None
    try:
        for k in range(3):
            folder = tmp_path / f"notify{k}"
            folder.mkdir()
            port = free_port()
            write_config(folder / "firewatch.toml", settings, url, port)
            notifiers.append(NotifyProcess(folder, folder / "firewatch.toml", port))
        service = await officer_and_alerting(settings, url, sink)

        def up(n: NotifyProcess) -> bool:
            return n.metric("firewatch_notify_audit_cursor") is not None

        async def caught_up(n: NotifyProcess) -> None:
            newest = await _newest(url)
            await until(lambda: (n.metric("firewatch_notify_audit_cursor") or 0) >= newest,
                        "a notify past the last change", lambda: n.log.read_text(errors="replace")[-2000:],
                        timeout_s=60)

        first = notifiers[0]
        first.start()
        await until(lambda: up(first), "the first notify up", timeout_s=60)
        sink.hang.add("/zhang")
        await fire(settings, "P0")
        await until(lambda: asyncio.run(_count(url, Message)) == 1, "the first fire's page recorded", timeout_s=30)
        for n in notifiers[1:]:
            n.start()
        for n in notifiers[1:]:
            await until(lambda n=n: up(n), "every notify up", timeout_s=60)
            await caught_up(n)
        sink.release()
        for k in range(1, FIRES):
            await fire(settings, f"P{k}")
        want = {f"P{k}" for k in range(FIRES)}
        await until(lambda: set(paged(sink)) == want, "every fire paged", lambda: f"paged {sorted(paged(sink))}",
                    timeout_s=60)
        while not await all_sent(url):
            await asyncio.sleep(0.05)
        for n in notifiers:  # every process has seen every fire: any of them could still page one again
            await caught_up(n)
    finally:
        sink.release()
        codes = [n.stop() for n in notifiers if n.proc is not None]
        if service is not None:
            await service.stop()
    assert Counter(paged(sink)) == Counter(want), f"pages per fire: {dict(Counter(paged(sink)))}"
    assert codes == [0, 0, 0], [n.log.read_text(errors="replace")[-2000:] for n in notifiers]


async def _newest(url: str) -> int:
    store = await open_store(url)
    try:
        async with store.session() as s:
            return await s.scalar(select(func.max(AuditEntry.id))) or 0
    finally:
        await store.aclose()
