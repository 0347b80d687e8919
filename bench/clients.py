"""The MQTT client libraries measured against contract/mqtt.py on `firewatch bench ingest`'s stream.

Issue 17 asks that the product's one MQTT client be chosen by measurement. Each
candidate receives the same pre-encoded QoS 1 stream as the ceiling
(`mosquitto_sub -q 1`), in a child process of its own, subscribed before the
publisher starts, acknowledging every message, and doing nothing else with it:
the rate is what the library alone can take from this broker. The clock runs
from the first byte published to the last message received.

- `contract.mqtt`: the product's client (the `mqtt5` codec, batched PUBACKs).
- `paho`: paho-mqtt 2.x, MQTT 5, `manual_ack` (a message is acknowledged only
  when the caller says so, as ingest needs), one PUBACK per message.
- `gmqtt`: gmqtt, MQTT 5, acknowledging when its callback returns (it has no
  manual acknowledgement: it could not hold a PUBACK until the points are stored).
"""

from __future__ import annotations

import asyncio
import importlib.util
import multiprocessing as mp
import queue
import time
from collections.abc import Callable
from multiprocessing.synchronize import Event

from firewatch.contract import mqtt
from firewatch.contract.topics import subscription

FILTER = subscription()[0]


def _contract(host: str, port: int, messages: int, ready: Event) -> float:
    async def go() -> float:
        received = 0
        done = asyncio.Event()

        def on_messages(conn: mqtt.Connection, batch: list[mqtt.Message]) -> None:
            nonlocal received
            received += len(batch)
            conn.ack([ack for _, _, ack, _, _ in batch if ack is not None])
            if received >= messages:
                done.set()

        session = mqtt.Session(host, port, "bench-client-contract", session_expiry_s=0, clean_start=True)
        conn = await mqtt.connect(session, [FILTER], on_messages)
        ready.set()
        await done.wait()
        end = time.perf_counter()
        conn.close(graceful=True)
        return end

    return asyncio.run(go())


def _paho(host: str, port: int, messages: int, ready: Event) -> float:
    import paho.mqtt.client as paho

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, "bench-client-paho", protocol=paho.MQTTv5,
                         manual_ack=True)
    received, end = 0, 0.0

    def on_message(c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        nonlocal received, end
        c.ack(message.mid, message.qos)
        received += 1
        if received >= messages:
            end = time.perf_counter()
            c.disconnect()

    client.on_message = on_message
    client.on_subscribe = lambda *_: ready.set()
    client.on_connect = lambda c, *_: c.subscribe(FILTER, qos=1)
    client.connect(host, port)
    client.loop_forever()
    return end


def _gmqtt(host: str, port: int, messages: int, ready: Event) -> float:
    import gmqtt

    async def go() -> float:
        client = gmqtt.Client("bench-client-gmqtt")
        received = 0
        done = asyncio.Event()

        def on_message(_c: object, _topic: str, _payload: bytes, _qos: int, _props: object) -> int:
            nonlocal received
            received += 1
            if received >= messages:
                done.set()
            return 0  # PUBACK: success

        client.on_message = on_message
        client.on_subscribe = lambda *_: ready.set()
        await client.connect(host, port)
        client.subscribe(FILTER, qos=1)
        await done.wait()
        end = time.perf_counter()
        await client.disconnect()
        return end

    return asyncio.run(go())


RECEIVERS: dict[str, Callable[[str, int, int, Event], float]] = {
    "contract.mqtt": _contract, "paho": _paho, "gmqtt": _gmqtt}


def _child(name: str, host: str, port: int, messages: int, ready: Event, out: mp.Queue) -> None:
    out.put(RECEIVERS[name](host, port, messages, ready))


MODULES = {"contract.mqtt": "firewatch.contract.mqtt", "paho": "paho.mqtt", "gmqtt": "gmqtt"}


def installed(name: str) -> bool:
    """gmqtt is no dependency of firewatch: `pip install gmqtt` to measure it."""
    return importlib.util.find_spec(MODULES[name]) is not None


def receive_rate(name: str, host: str, port: int, messages: int,
                 publish: Callable[[], float], timeout_s: float = 600) -> float:
    """Messages/s the client `name` received while `publish()` sent the stream (`messages` long)."""
    ctx = mp.get_context("spawn")
    ready, out = ctx.Event(), ctx.Queue()
    child = ctx.Process(target=_child, args=(name, host, port, messages, ready, out), daemon=True)
    child.start()
    try:
        if not ready.wait(30):
            raise RuntimeError(f"bench ingest: the {name} client did not subscribe")
        started = time.perf_counter()
        publish()
        try:
            end = out.get(timeout=timeout_s)
        except queue.Empty:
            raise RuntimeError(f"bench ingest: the {name} client did not receive all {messages} messages") from None
        return messages / (end - started)
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
