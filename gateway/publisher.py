"""The gateway's one MQTT connection: QoS 1 publishes that resolve on PUBACK, and duty-check requests in.

It is the project's one MQTT client (`contract.mqtt`, issue 17): `supervise` keeps the
connection and reconnects with backoff, `Connection.publish` resolves on the broker's
PUBACK. `publish()` returns True once the broker has acknowledged every message, and
False at once when there is no connection, or within the timeout when the broker is slow
or goes away, so the device's own resend takes over: nothing is queued for the broker
while it is away, and a send is confirmed to its device only after its PUBACK.

The session is clean (no expiry): the gateway's client id names its host and process,
so a kept session would outlive every restart on the broker, and a duty check asked while
no gateway listened is one nobody is waiting on any more.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from firewatch.contract.mqtt import Connection, MqttError, Session, connect, supervise, tls_context
from firewatch.contract.mqtt import Message as Received
from firewatch.contract.settings import MqttSettings
from firewatch.gateway.adaptor import Message
from firewatch.gateway.duty import DutyRequest

log = logging.getLogger("firewatch.gateway.publisher")
DUTY_REQUESTS = "firewatch/gateway/gb26875/duty-check"
"""Where the api and `firewatch gateway duty-check` ask gateways for duty checks; outside
`fire/v1/` so no device's broker ACL reaches it."""


def _session(m: MqttSettings, role: str) -> Session:
    client_id = f"{m.client_id_prefix}-{role}-{socket.gethostname()}-{os.getpid()}"
    return Session.from_settings(m, client_id, session_expiry_s=0, clean_start=True)


class Publisher:
    def __init__(self, m: MqttSettings, timeout_s: float,
                 on_request: Callable[[bytes], Awaitable[None]] | None = None) -> None:
        self.settings = m
        self.timeout_s = timeout_s
        self.on_request = on_request
        self.connected = asyncio.Event()
        self._conn: Connection | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.acknowledged = 0
        """Messages the broker has acknowledged (what subscribers will have seen)."""

    def _on_up(self, conn: Connection) -> None:
        self._conn = conn
        self.connected.set()

    def _on_down(self, conn: Connection) -> None:
        """Kept, closed, until the next one is up: `publish` refuses at once, and a stop still says goodbye."""
        self.connected.clear()

    def _on_messages(self, conn: Connection, messages: list[Received]) -> None:
        """Duty-check requests: each handed to the gateway, and acknowledged once it has it."""
        acks = []
        for topic, payload, ack, _dup, _retained in messages:
            if ack is not None:
                acks.append(ack)
            if self.on_request is not None and topic == DUTY_REQUESTS:
                t = asyncio.ensure_future(self.on_request(payload))
                self._tasks.add(t)
                t.add_done_callback(self._tasks.discard)
        conn.ack(acks)

    async def run(self) -> None:
        """Stay connected until cancelled."""
        m = self.settings
        try:
            await supervise(_session(m, "gateway"), [DUTY_REQUESTS], self._on_messages, tls=tls_context(m),
                            on_up=self._on_up, on_down=self._on_down, name="gateway")
        finally:
            if self._conn is not None:
                self._conn.close(graceful=True)
            self._conn = None

    async def publish(self, messages: Sequence[Message]) -> bool:
        """True once the broker has acknowledged them all; False if it did not in time."""
        conn = self._conn
        if conn is None or not conn.open:
            return False
        try:
            async with asyncio.timeout(self.timeout_s):
                if len(messages) == 1:  # the usual frame: no task to gather
                    await conn.publish(messages[0].topic, messages[0].payload, 1, messages[0].retain)
                else:
                    await asyncio.gather(*(conn.publish(m.topic, m.payload, 1, m.retain) for m in messages))
        except (MqttError, TimeoutError) as exc:
            log.debug("publish failed: %s", exc)
            return False
        self.acknowledged += len(messages)
        return True


async def request_duty_check(m: MqttSettings, request: DutyRequest) -> None:
    """Hand a duty-check request to every gateway (QoS 1: the broker has it when this returns).

    Raises MqttError at once when the broker is away: the operator who asked is told, not kept waiting.
    """
    try:
        conn = await connect(_session(m, "duty"), [], lambda _c, _m: None, tls_context(m))
    except MqttError:
        raise
    except OSError as exc:
        raise MqttError(f"broker {m.host}:{m.port} unreachable: {exc}") from exc
    try:
        await conn.publish(DUTY_REQUESTS, request.encode(), qos=1)
    finally:
        conn.close(graceful=True)
