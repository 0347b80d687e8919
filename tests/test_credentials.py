"""Device broker credentials, checked by the real Mosquitto with the shipped ACL."""

from __future__ import annotations

import getpass
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from firewatch.contract.credentials import (
    SERVICE_ACL,
    acl_file_for,
    device_acl,
    hash_password,
    new_credentials,
    register_device,
    retire_device,
    verify_password,
    write_password_line,
)
from firewatch.contract.db import Device, open_store
from firewatch.services import Mosquitto
from tests.conftest import wait_for

ACL = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto" / "acl"


class AuthMosquitto(Mosquitto):
    """The test broker, but with the deployment's password file and ACL instead of anonymous access."""

    def __init__(self, data_dir: Path, password_file: Path) -> None:
        super().__init__(data_dir)
        self.password_file = password_file

    def _configure(self) -> None:
        acl = acl_file_for(self.password_file)
        if not acl.exists():  # what the shipped entrypoint does before firewatch wrote one
            acl.write_text(ACL.read_text())
        (self.dir / "mosquitto.conf").write_text(
            f"""user {getpass.getuser()}
listener {self.port} 127.0.0.1
allow_anonymous false
password_file {self.password_file}
acl_file {acl}
persistence false
log_dest stderr
"""
        )


def test_hash_is_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    pw_file = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw_file), "dev1", "s3cret"], check=True)
    hashed = pw_file.read_text().strip().split(":", 1)[1]
    assert hashed.startswith("$7$")
    assert verify_password("s3cret", hashed)
    assert not verify_password("s3cret!", hashed)
    assert not verify_password("s3cret", "plain-text")


def test_password_file_keeps_other_devices_and_replaces_the_same_one(tmp_path: Path) -> None:
    pw_file = tmp_path / "auth" / "passwd"
    write_password_line(pw_file, "a", hash_password("1"))
    write_password_line(pw_file, "b", hash_password("2"))
    write_password_line(pw_file, "a", hash_password("3"))
    lines = dict(ln.split(":", 1) for ln in pw_file.read_text().splitlines())
    assert sorted(lines) == ["a", "b"]
    assert verify_password("3", lines["a"]) and verify_password("2", lines["b"])
    assert pw_file.stat().st_mode & 0o077 == 0
    with pytest.raises(ValueError):
        write_password_line(pw_file, "a:b", hash_password("x"))


def _connect(port: int, username: str, password: str) -> tuple[mqtt.Client, int]:
    """Connect and wait for the broker's answer; returns the client and the CONNACK reason code."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    answered = threading.Event()
    result: list[int] = []

    def on_connect(
        _c: mqtt.Client, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object
    ) -> None:
        result.append(reason.value)
        answered.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert answered.wait(10), "broker did not answer CONNECT"
    return client, result[0]


def test_the_shipped_acl_is_the_generated_one_for_an_empty_registry() -> None:
    assert ACL.read_text() == device_acl([]) and ACL.read_text().startswith(SERVICE_ACL)
    assert "pattern" not in ACL.read_text(), "no rule may admit a device the registry does not list"


def _publishes(client: mqtt.Client, topic: str) -> int:
    """Publish QoS 1 and return the PUBACK's reason code (Mosquitto answers 135 to a denied one)."""
    codes: list[int] = []
    done = threading.Event()
    client.on_publish = lambda _c, _u, _mid, reason, _p: (codes.append(reason.value), done.set())
    client.publish(topic, b'{"kind": "hydrant", "m": {}}', qos=1)
    assert done.wait(10)
    return codes[0]


async def test_real_broker_admits_each_device_to_its_own_topics_only_and_forgets_it_when_retired(
    tmp_path: Path,
) -> None:
    """The ACL comes from the registry: a device publishes under its own district and id, nowhere
    else (not another district, not another device, not the alert topics), the service account
    alone publishes alerts, and a retired device cannot log in once the broker reread its files."""
    import asyncio
    import signal

    store_url = f"sqlite:///{tmp_path}/firewatch.db"
    pw_file = tmp_path / "auth" / "passwd"
    service = new_credentials("firewatch")
    write_password_line(pw_file, service.username, service.hash)
    dev1 = await register_device(store_url, Device(id="dev1", kind="hydrant", district="d1"), pw_file, "t")
    dev2 = await register_device(store_url, Device(id="dev2", kind="hydrant", district="d2"), pw_file, "t")
    broker = AuthMosquitto(tmp_path / "broker", pw_file)
    broker.start()
    clients: list[mqtt.Client] = []
    try:
        sub, code = _connect(broker.port, service.username, service.password)
        clients.append(sub)
        assert code == 0
        received: list[str] = []
        subscribed = threading.Event()
        sub.on_message = lambda _c, _u, msg: received.append(msg.topic)
        sub.on_subscribe = lambda *_: subscribed.set()
        sub.subscribe("fire/v1/#", qos=1)
        assert subscribed.wait(10)

        for username, password in (("dev1", dev2.password), ("nobody", dev1.password)):
            refused, code = _connect(broker.port, username, password)
            clients.append(refused)
            assert code != 0, f"{username} with a wrong password must be refused"

        device, code = _connect(broker.port, dev1.username, dev1.password)
        clients.append(device)
        assert code == 0
        for forged in ("fire/v1/d1/dev2/telemetry", "fire/v1/d2/dev1/telemetry",
                       "fire/v1/_alerts/d1/dev1/residual_current", "fire/v1/_alerts/d1/dev2/x"):
            assert _publishes(device, forged) == 135, f"dev1 may not publish to {forged}"
        assert _publishes(device, "fire/v1/d1/dev1/telemetry") == 0
        assert _publishes(sub, "fire/v1/_alerts/d1/dev1/residual_current") == 0
        wait_for(lambda: len(received) == 2)
        assert received == ["fire/v1/d1/dev1/telemetry", "fire/v1/_alerts/d1/dev1/residual_current"]

        store = await open_store(store_url)
        await retire_device(store, "dev1", pw_file, "t")
        await store.aclose()
        assert "dev1" not in pw_file.read_text() and "dev1" not in acl_file_for(pw_file).read_text()
        assert "dev2:" in pw_file.read_text() and "firewatch:" in pw_file.read_text()
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGHUP)

        def refused() -> bool:
            c, code = _connect(broker.port, dev1.username, dev1.password)
            clients.append(c)
            return code != 0

        await asyncio.to_thread(wait_for, refused, 10, 0.2)
    finally:
        for c in clients:
            c.loop_stop()
            c.disconnect()
        broker.stop()


async def test_an_outside_system_reading_alerts_sees_only_those_firewatch_published(tmp_path: Path) -> None:
    """How a consumer trusts fire/v1/_alerts/: it reads as `alerts`, and the generated ACL lets only
    the firewatch account write there. A device, the demo fleet and the reader itself are refused
    (PUBACK 135), so the reader gets the service's alerts and nothing forged between them."""
    store_url = f"sqlite:///{tmp_path}/firewatch.db"
    pw_file = tmp_path / "auth" / "passwd"
    accounts = {name: new_credentials(name) for name in ("firewatch", "simulator", "alerts")}
    for c in accounts.values():
        write_password_line(pw_file, c.username, c.hash)
    dev = await register_device(store_url, Device(id="dev1", kind="panel", district="d1"), pw_file, "t")
    broker = AuthMosquitto(tmp_path / "broker", pw_file)
    broker.start()
    clients: list[mqtt.Client] = []
    try:
        connected = {name: _connect(broker.port, c.username, c.password) for name, c in
                     {**accounts, "dev1": dev}.items()}
        clients += [c for c, _ in connected.values()]
        assert {name: code for name, (_, code) in connected.items()} == dict.fromkeys(connected, 0)
        reader = connected["alerts"][0]
        received: list[tuple[str, bytes]] = []
        subscribed = threading.Event()
        reader.on_message = lambda _c, _u, msg: received.append((msg.topic, msg.payload))
        reader.on_subscribe = lambda *_: subscribed.set()
        reader.subscribe("fire/v1/#", qos=1)
        assert subscribed.wait(10)

        topic = "fire/v1/_alerts/d1/dev1/fire"
        for forger in ("dev1", "simulator", "alerts"):
            assert _publishes(connected[forger][0], topic) == 135, f"{forger} may not publish alerts"
        assert _publishes(connected["dev1"][0], "fire/v1/d1/dev1/event") == 0  # not the reader's to see
        for _ in range(2):
            assert _publishes(connected["firewatch"][0], topic) == 0
        wait_for(lambda: len(received) >= 2)
        assert [t for t, _ in received] == [topic, topic]
    finally:
        for c in clients:
            c.loop_stop()
            c.disconnect()
        broker.stop()


async def test_no_device_takes_a_service_accounts_name(tmp_path: Path) -> None:
    """A device registered as `firewatch` would share the service's login and its right to publish alerts."""
    for name in ("firewatch", "simulator", "alerts"):
        with pytest.raises(ValueError, match="service account"):
            await register_device(f"sqlite:///{tmp_path}/firewatch.db",
                                  Device(id=name, kind="panel", district="d1"), tmp_path / "passwd", "t")
    assert not (tmp_path / "passwd").exists()


def _cli(*args: str, store_url: str) -> Any:
    from typer.testing import CliRunner

    from firewatch.cli import app

    return CliRunner().invoke(
        app, list(args), env={"FIREWATCH_STORE__URL": store_url, "FIREWATCH_CONFIG": ""}
    )


def test_device_add_registers_the_device_and_its_broker_login(tmp_path: Path) -> None:
    import asyncio

    from firewatch.contract.db import Device, open_store

    store_url = f"sqlite:///{tmp_path}/firewatch.db"
    pw_file = tmp_path / "auth" / "passwd"
    args = [
        "device",
        "add",
        "HY-510104-0042",
        "--kind",
        "hydrant",
        "--district",
        "510104",
        "--site",
        "510104-st03",
        "--address",
        "Renmin Rd hydrant 42",
        "--lat",
        "30.65",
        "--lon",
        "104.07",
        "--password-file",
        str(pw_file),
    ]
    first = _cli(*args, store_url=store_url)
    assert first.exit_code == 0, first.output
    password = re.search(r"password: (\S+)", first.output).group(1)  # type: ignore[union-attr]
    again = _cli(*args, store_url=store_url)
    new_password = re.search(r"password: (\S+)", again.output).group(1)  # type: ignore[union-attr]
    assert new_password != password
    assert len(pw_file.read_text().splitlines()) == 1, "re-adding replaces the device's line"

    async def row() -> Device | None:
        store = await open_store(store_url)
        async with store.session() as s:
            d = await s.get(Device, "HY-510104-0042")
        await store.aclose()
        return d

    device = asyncio.run(row())
    assert device is not None and device.kind == "hydrant" and device.latitude == 30.65
    assert verify_password(new_password, device.mqtt_password_hash)
    listed = _cli("device", "list", store_url=store_url)
    assert (
        "HY-510104-0042\thydrant\t510104\t510104-st03\t30.65,104.07\tcredentials" in listed.output
    )

    broker = AuthMosquitto(tmp_path / "broker", pw_file)
    broker.start()
    try:
        for pw, accepted in ((new_password, True), (password, False)):
            client, code = _connect(broker.port, "HY-510104-0042", pw)
            client.loop_stop()
            client.disconnect()
            assert (code == 0) is accepted
    finally:
        broker.stop()


def test_device_add_refuses_bad_input_by_name(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path}/firewatch.db"
    base = ["device", "add", "EL-1", "--district", "510104"]
    bad_kind = _cli(*base, "--kind", "toaster", store_url=store_url)
    assert bad_kind.exit_code == 2 and "kind" in bad_kind.output
    bad_district = _cli(
        "device",
        "add",
        "EL-1",
        "--kind",
        "electrical",
        "--district",
        "Jin Jiang",
        store_url=store_url,
    )
    assert bad_district.exit_code == 2 and "district" in bad_district.output
    bad_id = _cli(
        "device", "add", "EL/1", "--kind", "electrical", "--district", "510104", store_url=store_url
    )
    assert bad_id.exit_code == 2 and "device id" in bad_id.output
    assert not (tmp_path / "passwd").exists()


def test_a_running_broker_takes_a_new_device_after_sighup(tmp_path: Path) -> None:
    """What the installer does after `device add`: `docker compose kill -s HUP mosquitto`."""
    import signal

    pw_file = tmp_path / "passwd"
    first, later = new_credentials("EL-1"), new_credentials("EL-2")
    write_password_line(pw_file, first.username, first.hash)
    broker = AuthMosquitto(tmp_path / "broker", pw_file)
    broker.start()
    clients: list[mqtt.Client] = []
    try:
        client, code = _connect(broker.port, later.username, later.password)
        clients.append(client)
        assert code != 0, "not in the password file yet"
        write_password_line(pw_file, later.username, later.hash)
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGHUP)

        def admitted() -> bool:
            c, code = _connect(broker.port, later.username, later.password)
            clients.append(c)
            return code == 0

        wait_for(admitted, timeout_s=10, interval_s=0.2)
    finally:
        for c in clients:
            c.loop_stop()
            c.disconnect()
        broker.stop()
