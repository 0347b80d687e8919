"""The gateway's one MQTT connection: QoS 1 publishes that resolve on PUBACK, and duty-check requests in.

aiomqtt (paho underneath) keeps the connection; `publish()` returns only once the
broker has acknowledged every message, which is when the gateway may confirm a
device's `send`. A broker that is down or slow makes `publish()` return False
within the timeout instead of hanging, so the device's own resend takes over.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
from collections.abc import Awaitable, Callable, Sequence

import aiomqtt

from firewatch.contract.mqtt import tls_context
from firewatch.contract.settings import MqttSettings
from firewatch.gateway.adaptor import Message
from firewatch.gateway.duty import DutyRequest

log = logging.getLogger("firewatch.gateway.publisher")
DUTY_REQUESTS = "firewatch/gateway/gb26875/duty-check"
"""Where the api and `firewatch gateway duty-check` ask gateways for duty checks; outside
`fire/v1/` so no device's broker ACL reaches it."""
INFLIGHT = 2000
"""QoS 1 messages in flight before paho queues: enough for thousands of frames/s of round trips."""


class Publisher:
    def __init__(self, m: MqttSettings, timeout_s: float,
                 on_request: Callable[[bytes], Awaitable[None]] | None = None) -> None:
        self.settings = m
        self.timeout_s = timeout_s
        self.on_request = on_request
        self.client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self.published = 0
        self.failed = 0

    def _client(self) -> aiomqtt.Client:
        m = self.settings
        return aiomqtt.Client(
            m.host, m.port, username=m.username, password=m.password, keepalive=m.keepalive_s,
            identifier=f"{m.client_id_prefix}-gateway-{socket.gethostname()}-{os.getpid()}",
            tls_context=tls_context(m), max_inflight_messages=INFLIGHT, timeout=self.timeout_s,
        )

    async def run(self) -> None:
        """Stay connected until cancelled; duty-check requests go to `on_request`."""
        delay = 0.2
        while True:
            try:
                async with self._client() as client:
                    self.client = client
                    await client.subscribe(DUTY_REQUESTS, qos=1)
                    self.connected.set()
                    delay = 0.2
                    log.info("connected to the broker at %s:%d", self.settings.host, self.settings.port)
                    async for msg in client.messages:
                        if self.on_request is not None and isinstance(msg.payload, bytes):
                            await self.on_request(msg.payload)
            except aiomqtt.MqttError as exc:
                log.warning("broker unreachable (%s); retrying in %.1f s", exc, delay)
            finally:
                self.connected.clear()
                self.client = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def publish(self, messages: Sequence[Message]) -> bool:
        """True once the broker has acknowledged them all; False if it did not in time."""
        client = self.client
        if client is None:
            self.failed += len(messages)
            return False
        try:
            # Our own timeout, not aiomqtt's wait_for (Python 3.11 drops a cancel that lands with it).
            async with asyncio.timeout(self.timeout_s):
                await asyncio.gather(*(client.publish(m.topic, m.payload, qos=1, retain=m.retain,
                                                      timeout=math.inf) for m in messages))
        except (aiomqtt.MqttError, TimeoutError) as exc:
            self.failed += len(messages)
            log.debug("publish failed: %s", exc)
            return False
        self.published += len(messages)
        return True


async def request_duty_check(m: MqttSettings, request: DutyRequest) -> None:
    """Hand a duty-check request to every gateway (QoS 1: the broker has it when this returns)."""
    async with aiomqtt.Client(
        m.host, m.port, username=m.username, password=m.password, tls_context=tls_context(m),
        identifier=f"{m.client_id_prefix}-duty-{socket.gethostname()}-{os.getpid()}",
    ) as client:
        await client.publish(DUTY_REQUESTS, request.encode(), qos=1)
