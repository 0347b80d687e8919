"""The cluster's EMQX logins and rights, held against the real Mosquitto's on the same cases.

EMQX cannot be installed here, so what EMQX would decide is computed from what it is given:
the shipped acl.conf (parsed, first match wins, no match denies, as `authorization.no_match =
deny`), and the registry queries of contract/emqx.py run on the real PostgreSQL as the `emqx`
role deploy/postgres/grafana-reader.sh creates, the login checked the way EMQX's pbkdf2 check
does (hex digest of PBKDF2-HMAC-SHA512 over the returned salt). The same registry is written
to Mosquitto's files, and a real Mosquitto answers every case too: the two must agree.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest

from firewatch.contract.credentials import (
    ITERATIONS,
    new_credentials,
    register_device,
    retire_device,
    write_password_line,
)
from firewatch.contract.db import Device, open_store
from firewatch.contract.emqx import AUTHN_QUERY, AUTHZ_QUERY, PBKDF2, acl_conf, auth_conf
from firewatch.notify import delivery  # noqa: F401  (its notify_messages table in the store, as notify has it)
from tests.postgres import admin, database
from tests.test_credentials import AuthMosquitto, _connect, _publishes

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parent.parent
EMQX = ROOT / "deploy" / "cluster" / "emqx"
RULE = re.compile(r'\{(allow|deny), \{username, "([^"]+)"\}, (publish|subscribe|all), \["([^"]+)"\]\}\.')

PROBE = "fire/v1/d1/dev1/telemetry"
CASES = [
    # (user, action, topic, allowed, for a subscription: what firewatch publishes to probe it)
    ("firewatch", "subscribe", "fire/v1/#", True, PROBE),
    ("firewatch", "subscribe", "fire/v1/+/+/+", True, PROBE),
    ("firewatch", "publish", "fire/v1/_alerts/d1/fire", True, ""),
    ("firewatch", "publish", "fire/v1/d1/dev1/telemetry", True, ""),  # the gateway, for its panels
    ("firewatch", "subscribe", "firewatch/gateway/#", True, "firewatch/gateway/duty"),
    ("firewatch", "publish", "elsewhere/d1", False, ""),
    ("simulator", "publish", "fire/v1/d1/dev2/telemetry", True, ""),
    ("simulator", "publish", "fire/v1/_alerts/d1/fire", False, ""),  # fire/v1/+/+/+ would match: deny wins
    ("simulator", "subscribe", "fire/v1/#", False, PROBE),
    ("alerts", "subscribe", "fire/v1/_alerts/#", True, "fire/v1/_alerts/d1/fire"),
    ("alerts", "publish", "fire/v1/_alerts/d1/fire", False, ""),
    ("alerts", "subscribe", "firewatch/gateway/#", False, "firewatch/gateway/duty"),
    ("dev1", "publish", "fire/v1/d1/dev1/telemetry", True, ""),
    ("dev1", "publish", "fire/v1/d1/dev1/event", True, ""),
    ("dev1", "publish", "fire/v1/d1/dev2/telemetry", False, ""),
    ("dev1", "publish", "fire/v1/d2/dev1/telemetry", False, ""),
    ("dev1", "publish", "fire/v1/_alerts/d1/fire", False, ""),
    ("dev1", "subscribe", "fire/v1/#", False, PROBE),
    ("dev2", "publish", "fire/v1/d2/dev2/telemetry", True, ""),
    ("dev2", "publish", "fire/v1/d1/dev1/telemetry", False, ""),
]


def test_the_shipped_emqx_files_are_the_generated_ones() -> None:
    assert (EMQX / "acl.conf").read_text() == acl_conf()
    conf = (EMQX / "emqx.conf").read_text()
    assert conf.endswith(auth_conf()), "emqx.conf's auth part is contract/emqx.py's, regenerated"
    assert conf.count(f"password_hash_algorithm = {PBKDF2}") == 2, "service accounts and devices alike"
    lines = [ln for ln in acl_conf().splitlines() if ln and not ln.startswith("%%")]
    assert len(RULE.findall(acl_conf())) == len(lines), "every rule is one the evaluator here reads"
    assert "{allow, all" not in acl_conf() and "no_match = deny" in conf


def _match(name: str, rule: str) -> bool:
    """EMQX's topic match of a topic or filter against a rule's filter."""
    words, filters = name.split("/"), rule.split("/")
    for i, f in enumerate(filters):
        if f == "#":
            return True
        if i >= len(words) or (f != "+" and f != words[i]) or (words[i] == "#"):
            return False
    return len(words) == len(filters)


def _query(text: str) -> str:
    return text.replace("${username}", "%(username)s")


class Emqx:
    """What EMQX decides from the shipped acl.conf and the registry queries."""

    def __init__(self, conn: psycopg.Connection[Any], service_passwords: dict[str, str]) -> None:
        self.conn, self.service_passwords = conn, service_passwords
        self.rules = RULE.findall((EMQX / "acl.conf").read_text())

    def logs_in(self, user: str, password: str) -> bool:
        if user in self.service_passwords:  # the built-in database comes first in the chain
            return password == self.service_passwords[user]
        row = self.conn.execute(_query(AUTHN_QUERY), {"username": user}).fetchone()
        if row is None:
            return False
        digest = hashlib.pbkdf2_hmac("sha512", password.encode(), bytes(row[1]), ITERATIONS, 64).hex()
        return hmac.compare_digest(digest, row[0])

    def allows(self, user: str, action: str, topic: str) -> bool:
        rules = [(p, a, t) for p, u, a, t in self.rules if u == user]
        rules += self.conn.execute(_query(AUTHZ_QUERY), {"username": user}).fetchall()
        for permission, act, rule in rules:
            if act in (action, "all") and _match(topic, rule):
                return permission == "allow"
        return False


def _reads(client: mqtt.Client, topic: str, publisher: mqtt.Client, probe: str) -> bool:
    """Whether a subscription to `topic` delivers what `publisher` sends to `probe`. Mosquitto
    grants the SUBSCRIBE and withholds what the ACL does not let the client read; EMQX refuses
    the SUBSCRIBE itself. What reaches the client is the same, and is what is compared."""
    subscribed, received = threading.Event(), threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, msg: received.set() if msg.topic == probe else None
    client.subscribe(topic, qos=1)
    try:
        assert subscribed.wait(10)
        assert _publishes(publisher, probe) < 128
        return received.wait(5.0)  # an allowed delivery returns at once; a refused one waits it out
    finally:
        client.unsubscribe(topic)


@pytest.fixture
def registry() -> Iterator[tuple[str, str]]:
    """A database of its own with the registry readers' roles; yields (url, emqx role)."""
    suffix = uuid.uuid4().hex[:8]
    grafana, emqx = f"grafana_{suffix}", f"emqx_{suffix}"
    try:
        with database("fw_emqx") as url:
            env = os.environ | {"POSTGRES_USER": "postgres", "POSTGRES_DB": url.rsplit("/", 1)[1],
                                "PGHOST": "127.0.0.1", "GRAFANA_DB_PASSWORD": "pw", "GRAFANA_DB_USER": grafana,
                                "EMQX_REGISTRY_PASSWORD": "pw", "EMQX_REGISTRY_USER": emqx}
            subprocess.run(["sh", str(ROOT / "deploy/postgres/grafana-reader.sh")], env=env, check=True,
                           capture_output=True, timeout=30)
            yield url, emqx
    finally:  # after the database, which holds the roles' grants
        with admin() as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{grafana}"')
            conn.execute(f'DROP ROLE IF EXISTS "{emqx}"')


async def test_emqx_admits_and_refuses_what_the_real_mosquitto_does(
    tmp_path: Path, registry: tuple[str, str]
) -> None:
    """Same registry, same cases: logins (right and wrong passwords, a retired device, an unknown
    user, a registry row under a service account's name) and every right of CASES."""
    url, role = registry
    pw_file = tmp_path / "auth" / "passwd"
    services = {name: new_credentials(name) for name in ("firewatch", "simulator", "alerts")}
    for c in services.values():
        write_password_line(pw_file, c.username, c.hash)
    devices = {
        d.id: await register_device(url, d, pw_file, "t")
        for d in (Device(id="dev1", kind="hydrant", district="d1"), Device(id="dev2", kind="panel", district="d2"),
                  Device(id="dev3", kind="panel", district="d1"))
    }
    store = await open_store(url)
    await retire_device(store, "dev3", pw_file, "t")
    await store.aclose()
    squatter = new_credentials("alerts")  # a row written past register_device's refusal
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO devices (id, kind, district, site, address, thresholds, mqtt_password_hash,"
                     " created_ms) SELECT 'alerts', kind, district, site, address, thresholds, %s, created_ms"
                     " FROM devices WHERE id = 'dev1'", (squatter.hash,))
    logins = [(u, c.password) for u, c in {**services, **devices}.items()]
    logins += [("dev1", devices["dev2"].password), ("nobody", devices["dev1"].password),
               ("alerts", squatter.password)]

    broker = AuthMosquitto(tmp_path / "broker", pw_file)
    broker.start()
    clients: list[mqtt.Client] = []
    try:
        with psycopg.connect(url.replace("postgres@", f"{role}:pw@"), autocommit=True) as conn:
            emqx = Emqx(conn, {u: c.password for u, c in services.items()})
            for user, password in logins:
                client, code = _connect(broker.port, user, password)
                clients.append(client)
                assert emqx.logs_in(user, password) == (code == 0), f"{user}: EMQX and Mosquitto disagree"
            assert [emqx.logs_in(u, c.password) for u, c in devices.items()] == [True, True, False]
            assert not emqx.logs_in("alerts", squatter.password)

            connected = {u: _connect(broker.port, u, c.password)[0] for u, c in {**services, **devices}.items()
                         if u != "dev3"}
            clients += connected.values()
            for user, action, topic, allowed, probe in CASES:
                if action == "publish":
                    mosquitto = _publishes(connected[user], topic) < 128  # 16: no subscriber, still taken
                else:
                    mosquitto = _reads(connected[user], topic, connected["firewatch"], probe)
                assert mosquitto == allowed, f"Mosquitto: {user} {action} {topic}"
                assert emqx.allows(user, action, topic) == allowed, f"EMQX: {user} {action} {topic}"
            assert not emqx.allows("dev3", "publish", "fire/v1/d1/dev3/telemetry"), "retired: no right left"
    finally:
        for c in clients:
            c.loop_stop()
            c.disconnect()
        broker.stop()


def test_the_emqx_role_reads_the_login_columns_and_nothing_else(registry: tuple[str, str]) -> None:
    import asyncio

    url, role = registry

    async def create() -> None:
        store = await open_store(url)
        await store.aclose()

    asyncio.run(create())
    with psycopg.connect(url.replace("postgres@", f"{role}:pw@"), autocommit=True) as conn:
        for query in (AUTHN_QUERY, AUTHZ_QUERY):
            conn.execute(_query(query), {"username": "dev1"})
        for secret in ("SELECT * FROM alerts", "SELECT * FROM devices", "SELECT * FROM audit",
                       "SELECT * FROM notify_messages", "SELECT address FROM devices"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(secret)
