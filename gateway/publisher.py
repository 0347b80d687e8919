"""The gateway's one MQTT connection: QoS 1 publishes that resolve on PUBACK, and duty-check requests in.

paho-mqtt on this event loop through its external-loop socket callbacks (paho's own
asyncio pattern): the loop watches paho's socket and calls `loop_read`/`loop_write`,
and each PUBACK resolves the future of its message id. aiomqtt was the first choice;
it scans every pending call on each publish and logs a warning per publish above ten,
which held the gateway under 600 frames/s here. Only the blocking TCP connect runs in
a thread. `publish()` returns True once the broker has acknowledged every message, and
False at once when there is no connection or within the timeout when the broker is
slow, so the device's own resend takes over; nothing is queued inside paho while the
broker is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt

from firewatch.contract.mqtt import tls_context
from firewatch.contract.settings import MqttSettings
from firewatch.gateway.adaptor import Message
from firewatch.gateway.duty import DutyRequest

log = logging.getLogger("firewatch.gateway.publisher")
DUTY_REQUESTS = "firewatch/gateway/gb26875/duty-check"
"""Where the api and `firewatch gateway duty-check` ask gateways for duty checks; outside
`fire/v1/` so no device's broker ACL reaches it."""


def _quietly(fn: Callable[..., Any], *args: Any) -> None:
    """Watch or unwatch paho's socket; one it has closed meanwhile is simply gone."""
    with contextlib.suppress(ValueError, OSError):
        fn(*args)


class Publisher:
    def __init__(self, m: MqttSettings, timeout_s: float,
                 on_request: Callable[[bytes], Awaitable[None]] | None = None) -> None:
        self.settings = m
        self.timeout_s = timeout_s
        self.on_request = on_request
        self.connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: Any = None
        self._loop_thread = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self.acknowledged = 0
        """Messages the broker has acknowledged (what subscribers will have seen)."""
        self.client = self._client()

    def _client(self) -> mqtt.Client:
        m = self.settings
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311,
                        client_id=f"{m.client_id_prefix}-gateway-{socket.gethostname()}-{os.getpid()}")
        if m.username:
            c.username_pw_set(m.username, m.password)
        ctx = tls_context(m)
        if ctx is not None:
            c.tls_set_context(ctx)
        c.max_inflight_messages_set(0)  # unlimited: paho scans its whole queue per ack otherwise
        c.max_queued_messages_set(0)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        c.on_socket_open = self._on_socket_open
        c.on_socket_close = self._on_socket_close
        c.on_socket_register_write = self._on_register_write
        c.on_socket_unregister_write = self._on_unregister_write
        return c

    # --- paho's callbacks, all on the event loop's thread except socket-open (the connect thread) ---
    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Now on the loop's thread, or handed to it from the connect thread."""
        assert self._loop is not None
        if self._loop.is_closed():
            return  # paho closing its socket as it is collected, after the loop ended
        if threading.get_ident() == self._loop_thread:
            _quietly(fn, *args)
        else:
            self._loop.call_soon_threadsafe(_quietly, fn, *args)

    def _on_socket_open(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        self._sock = sock
        self._call(self._watch, sock)

    def _watch(self, sock: Any) -> None:
        assert self._loop is not None
        self._loop.add_reader(sock, self.client.loop_read)
        if self.client.want_write():
            self._loop.add_writer(sock, self.client.loop_write)

    def _on_socket_close(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        assert self._loop is not None
        self._call(self._loop.remove_reader, sock)
        self._call(self._loop.remove_writer, sock)

    def _on_register_write(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        self._call(self._loop.add_writer, sock, client.loop_write)  # type: ignore[union-attr]

    def _on_unregister_write(self, client: mqtt.Client, _u: Any, sock: Any) -> None:
        self._call(self._loop.remove_writer, sock)  # type: ignore[union-attr]

    def _on_connect(self, client: mqtt.Client, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused the gateway: %s", reason)
            return
        client.subscribe(DUTY_REQUESTS, qos=1)
        self._lost.clear()
        self.connected.set()
        log.info("connected to the broker at %s:%d", self.settings.host, self.settings.port)

    def _on_disconnect(self, client: mqtt.Client, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
        self.connected.clear()
        self._lost.set()
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(ConnectionError(f"broker connection lost: {reason}"))
        self._waiting.clear()

    def _on_publish(self, client: mqtt.Client, _u: Any, mid: int, _reason: Any, _p: Any) -> None:
        fut = self._waiting.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if self.on_request is not None and msg.topic == DUTY_REQUESTS:
            t = asyncio.ensure_future(self.on_request(msg.payload))
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    # --- running ---
    async def _misc(self) -> None:
        while True:
            await asyncio.sleep(1)
            if self.client.loop_misc() != mqtt.MQTT_ERR_SUCCESS and self.connected.is_set():
                self._lost.set()

    async def run(self) -> None:
        """Stay connected until cancelled (the connect itself in a thread: it blocks)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        misc = asyncio.create_task(self._misc())
        delay = 0.2
        m = self.settings
        try:
            while True:
                try:
                    self._lost.clear()
                    await self._loop.run_in_executor(None, self.client.connect, m.host, m.port, m.keepalive_s)
                    async with asyncio.timeout(self.timeout_s):
                        await self.connected.wait()
                    delay = 0.2
                    await self._lost.wait()
                    log.warning("broker connection lost; reconnecting")
                except (OSError, TimeoutError) as exc:
                    log.warning("broker unreachable (%s); retrying in %.1f s", exc, delay)
                self._drop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        finally:
            misc.cancel()
            with contextlib.suppress(Exception):
                self.client.disconnect()
            self._drop()

    def _drop(self) -> None:
        self.connected.clear()
        sock = self._sock
        if sock is not None and self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(sock)
                self._loop.remove_writer(sock)
        self._sock = None
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(ConnectionError("broker connection lost"))
        self._waiting.clear()

    async def publish(self, messages: Sequence[Message]) -> bool:
        """True once the broker has acknowledged them all; False if it did not in time."""
        if not self.connected.is_set() or self._loop is None:
            return False
        futures = []
        for m in messages:
            info = self.client.publish(m.topic, m.payload, qos=1, retain=m.retain)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return False
            if not info.is_published():
                fut = self._loop.create_future()
                self._waiting[info.mid] = fut
                futures.append(fut)
        try:
            async with asyncio.timeout(self.timeout_s):
                await asyncio.gather(*futures)
        except (ConnectionError, TimeoutError) as exc:
            log.debug("publish failed: %s", exc)
            return False
        self.acknowledged += len(messages)
        return True


async def request_duty_check(m: MqttSettings, request: DutyRequest) -> None:
    """Hand a duty-check request to every gateway (QoS 1: the broker has it when this returns)."""
    import aiomqtt

    async with aiomqtt.Client(
        m.host, m.port, username=m.username, password=m.password, tls_context=tls_context(m),
        identifier=f"{m.client_id_prefix}-duty-{socket.gethostname()}-{os.getpid()}",
    ) as client:
        await client.publish(DUTY_REQUESTS, request.encode(), qos=1)
