"""Device broker credentials, checked by the real Mosquitto with the shipped ACL."""

from __future__ import annotations

import getpass
import subprocess
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from contract.credentials import (
    hash_password,
    new_credentials,
    verify_password,
    write_password_line,
)
from firewatch.services import Mosquitto
from tests.conftest import wait_for

ACL = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto" / "acl"


class AuthMosquitto(Mosquitto):
    """The test broker, but with the deployment's password file and ACL instead of anonymous access."""

    def __init__(self, data_dir: Path, password_file: Path) -> None:
        super().__init__(data_dir)
        self.password_file = password_file

    def _configure(self) -> None:
        (self.dir / "mosquitto.conf").write_text(
            f"""user {getpass.getuser()}
listener {self.port} 127.0.0.1
allow_anonymous false
password_file {self.password_file}
acl_file {ACL}
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

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object) -> None:
        result.append(reason.value)
        answered.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert answered.wait(10), "broker did not answer CONNECT"
    return client, result[0]


def test_real_broker_admits_devices_by_their_own_credentials_and_topics(tmp_path: Path) -> None:
    pw_file = tmp_path / "passwd"
    dev1, dev2, service = new_credentials("dev1"), new_credentials("dev2"), new_credentials("firewatch")
    for c in (dev1, dev2, service):
        write_password_line(pw_file, c.username, c.hash)
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
        device.publish("fire/v1/d1/dev2/telemetry", b"{}", qos=1).wait_for_publish(10)
        device.publish("fire/v1/d1/dev1/telemetry", b"{}", qos=1).wait_for_publish(10)
        wait_for(lambda: "fire/v1/d1/dev1/telemetry" in received)
        assert received == ["fire/v1/d1/dev1/telemetry"], "dev1 may publish only under its own id"
    finally:
        for c in clients:
            c.loop_stop()
            c.disconnect()
        broker.stop()
