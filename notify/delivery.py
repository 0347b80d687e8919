"""Sending recorded messages: every message is written down before it is sent, every attempt is logged.

A `Message` row is the intent to tell one person (or one named channel) one
thing on one channel, under a unique idempotency key; the escalation writes it
in the same transaction that moves its timer on, so a step is never planned
twice. `Dispatcher.deliver` then sends pending messages, each in its own task
with a timeout and retries with backoff, so a dead channel never delays the
others. A crash after a channel accepted a message but before `sent` was
recorded leaves it pending, and the restart sends it once more: that single
resend is the only duplicate a crash can cause.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Integer, String, Text, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from firewatch.contract.db import Base, Store, now_ms
from firewatch.notify.channels import ChannelError, Channels, Outgoing, redact
from firewatch.notify.config import NotifyConfig
from firewatch.notify.metrics import NotifyMetrics
from firewatch.notify.templates import Purpose

HANDED_OFF = "handed_to_119"
"""The audit action of a confirmed fire the 119 side accepted (`notify.handoff`)."""
HANDOFF_FAILED = "handoff_failed"

log = logging.getLogger(__name__)


class MessageState(StrEnum):
    """Where a recorded message is; the values are what `notify_messages.state` stores."""

    PENDING = "pending"
    """Recorded, not yet handed to its channel (or a crash came between the two)."""
    SENT = "sent"
    FAILED = "failed"
    """Every attempt failed."""
    HELD = "held"
    """Past the person's rate limit, not sent; never a fire."""


class Message(Base):
    __tablename__ = "notify_messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    """Idempotency key: escalation, cycle, step (or reminder/all-clear), person, channel."""
    escalation_id: Mapped[int] = mapped_column(index=True)
    alert_id: Mapped[int] = mapped_column(index=True)
    """Both 0 for a handover briefing, which is about every open alert."""
    person_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    """Empty for a named system channel."""
    channel: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    link: Mapped[str] = mapped_column(Text, default="")
    actions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    alert: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), default=MessageState.PENDING, index=True)
    """A `MessageState`."""
    created_ms: Mapped[int] = mapped_column(index=True)
    sent_ms: Mapped[int | None] = mapped_column(nullable=True)


class Delivery(Base):
    """One attempt to hand one message to its channel."""

    __tablename__ = "notify_deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    at_ms: Mapped[int] = mapped_column()
    channel: Mapped[str] = mapped_column(String(256))
    """The URL with its tokens and passwords masked (`channels.redact`)."""
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str] = mapped_column(Text, default="")
    duration_ms: Mapped[float] = mapped_column()


class Dispatcher:
    def __init__(self, store: Store, config: NotifyConfig, clock: Callable[[], int] = now_ms,
                 metrics: NotifyMetrics | None = None) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.channels = Channels(config)
        self.metrics = metrics or NotifyMetrics()
        self._in_flight: set[int] = set()

    async def aclose(self) -> None:
        await self.channels.aclose()

    async def deliver(self, messages: list[Message]) -> None:
        """Send these recorded, pending messages concurrently; returns when each is sent or out of attempts.

        A message is claimed before the first await, so two deliveries started together
        (a step's own send and a restart's `pending`) send it once.
        """
        mine = [m for m in messages if m.id not in self._in_flight]
        self._in_flight.update(m.id for m in mine)
        await asyncio.gather(*(self._one(m) for m in mine))

    async def pending(self) -> list[Message]:
        async with self.store.session() as s:
            return list((await s.scalars(select(Message).where(Message.state == MessageState.PENDING))).all())

    async def _one(self, msg: Message) -> None:
        try:
            async with self.store.session() as s, s.begin():
                if await self._claim(s, msg.id):
                    await self._attempts(s, msg)
        except Exception:
            log.exception("message %s: its delivery could not be recorded; it stays pending for the next start", msg.id)
        finally:
            self._in_flight.discard(msg.id)

    @staticmethod
    async def _claim(s: AsyncSession, message_id: int) -> bool:
        """Still pending (`pending` may have read it before another send finished), and nobody else's to send.

        On PostgreSQL the row stays locked in `s` until its send is recorded there, and another
        notify process skips it: one that starts while this one sends (its `pending` reads the
        message too) paged the step a second time. A process that dies lets go of the lock with
        its connection, so the next start sends the message again: the one resend a crash causes.
        SQLite locks no rows: there, one notify process per district set.
        """
        q = select(Message.state).where(Message.id == message_id).with_for_update(skip_locked=True)
        return await s.scalar(q) == MessageState.PENDING

    async def _attempts(self, s: AsyncSession, msg: Message) -> None:
        out = Outgoing(
            title=msg.title, body=msg.body, severity=msg.severity, purpose=msg.purpose,
            alert=msg.alert, link=msg.link, actions=[tuple(a) for a in msg.actions],
        )
        handoff = msg.purpose == Purpose.HANDOFF
        brigade = self.config.fire_brigade
        retries = brigade.retries if handoff else self.config.retries
        timeout = brigade.timeout_s if handoff else self.config.send_timeout_s
        wait = brigade.backoff_s if handoff else self.config.backoff_s
        for attempt in range(1, retries + 1):
            started = time.perf_counter()
            error = ""
            try:
                channel = self.channels.get(msg.channel)
                await asyncio.wait_for(channel.send(out), timeout)
            except ChannelError as exc:
                error = str(exc)
            except TimeoutError:
                error = f"no answer within {timeout:g} s"
            except Exception as exc:
                log.exception("channel %s raised", redact(msg.channel))
                error = f"channel raised {exc!r}"
            took = (time.perf_counter() - started) * 1000
            await self._log(s, msg, attempt, error, took, done=not error or attempt >= retries)
            scheme = msg.channel.partition(":")[0]
            if not error:
                self.metrics.messages.labels("sent", scheme).inc()
                return
            self.metrics.attempts_failed.labels(scheme).inc()
            if attempt < retries:
                await asyncio.sleep(wait)
                wait *= 2
        self.metrics.messages.labels("failed", scheme).inc()
        log.warning("message %s to %s failed after %d attempts", msg.id, redact(msg.channel), retries)

    async def _log(self, s: AsyncSession, msg: Message, attempt: int, error: str, took_ms: float, done: bool) -> None:
        """Written in the claim's transaction: on PostgreSQL the claim is the row lock that holds until it commits."""
        at = self.clock()
        s.add(Delivery(
            message_id=msg.id, attempt=attempt, at_ms=at, channel=redact(msg.channel),
            ok=not error, error=error, duration_ms=took_ms,
        ))
        if done:
            await s.execute(
                update(Message).where(Message.id == msg.id)
                .values(state=MessageState.FAILED if error else MessageState.SENT, sent_ms=None if error else at)
            )
        if done and msg.purpose == Purpose.HANDOFF:
            # wall time on both ends: the confirmation's audit row and now
            elapsed = now_ms() - msg.created_ms
            await self.store.audit(
                s, "notify", HANDOFF_FAILED if error else HANDED_OFF, f"alert:{msg.alert_id}",
                elapsed_ms=elapsed, attempts=attempt, to=redact(msg.channel), error=error,
            )
            if not error:
                self.metrics.handoff_seconds.observe(elapsed / 1000)
            self.metrics.handoffs.labels("failed" if error else "sent").inc()
