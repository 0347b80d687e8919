"""Broker credentials and the broker's ACL, both written from the device registry.

A device's MQTT username is its device id, and the ACL gives each registered,
unretired device one right: to publish under `fire/v1/<its district>/<its id>/`.
Everything else is denied to it: another district, another device, and the
system topics such as `fire/v1/_alerts/`, which only the firewatch service
account may publish to, so an alert there is one firewatch raised. Retiring a
device drops its password line and its ACL entry at the next write of both
files (`sync_broker_auth`), which every registration and retirement does; the
broker rereads them on SIGHUP (deploy/mosquitto/entrypoint.sh sends it when
they change). The hash
is Mosquitto 2.0's `$7$` format (PBKDF2-HMAC-SHA512, base64 salt and digest), the
same `mosquitto_passwd` writes, so the broker reads our file without any tool of
its own. Passwords are 144 random bits: the iteration count guards nothing a
brute force could reach, so it stays at Mosquitto's default and reconnect storms
stay cheap for the broker. The cluster profile's EMQX is given the same rights and
logins from here too, in its own forms (contract/emqx.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy import select

from firewatch.contract.db import Device, Store, now_ms, open_store
from firewatch.contract.kinds import SPECS
from firewatch.contract.topics import ALERTS, DEVICE_RE, DISTRICT_RE, PREFIX

ITERATIONS = 101
SALT_BYTES = 12


@dataclass(frozen=True, slots=True)
class Grant:
    """One right of a broker account, in Mosquitto's words (`topic read|write|readwrite|deny`):
    Mosquitto's ACL lines and EMQX's rules (contract/emqx.py) are both written from these, so
    the two brokers cannot grant different things."""

    access: Literal["read", "write", "readwrite", "deny"]
    topic: str


@dataclass(frozen=True, slots=True)
class Account:
    """A broker user that is not a device, with why it has the rights it has."""

    name: str
    why: str
    grants: tuple[Grant, ...]


SERVICE_RIGHTS = (
    Account(
        "firewatch",
        "The firewatch services: ingest, alerting and the api read every device topic;\n"
        f"only this account publishes alerts, under {PREFIX}/{ALERTS}/.\n"
        "The GB/T 26875.3 gateway publishes for the panels it speaks for, and takes duty-check\n"
        "requests (from the api) under firewatch/gateway/; no device reaches either.",
        (
            Grant("read", f"{PREFIX}/#"),
            Grant("write", f"{PREFIX}/{ALERTS}/#"),
            Grant("write", f"{PREFIX}/+/+/+"),
            Grant("readwrite", "firewatch/gateway/#"),
        ),
    ),
    Account(
        "simulator",
        'The demo fleet (compose profile "simulator") speaks for many devices, never for firewatch.',
        (Grant("write", f"{PREFIX}/+/+/+"), Grant("deny", f"{PREFIX}/{ALERTS}/#")),
    ),
    Account(
        "alerts",
        "Outside systems (a city's emergency platform, a building's BMS) read firewatch's alerts\n"
        f"and publish nothing: what they read under {PREFIX}/{ALERTS}/ can only be firewatch's.",
        (Grant("read", f"{PREFIX}/{ALERTS}/#"),),
    ),
)
SERVICE_ACCOUNTS = tuple(a.name for a in SERVICE_RIGHTS)
"""Broker users that are not devices: their password lines are kept as they are (the broker's
entrypoint writes them), their rights are SERVICE_RIGHTS', and no device may take their names."""
DEVICE_TOPIC = f"{PREFIX}/{{district}}/{{device}}/#"
"""A device's one right: to publish under its own district and id."""


def _mosquitto_block(user: str, grants: tuple[Grant, ...], why: str = "") -> str:
    comments = [f"# {line}" for line in why.splitlines()]
    return "\n".join([*comments, f"user {user}", *(f"topic {g.access} {g.topic}" for g in grants)]) + "\n"


SERVICE_ACL = (
    "# Written by firewatch from the device registry (contract/credentials.py); edits are overwritten.\n"
    "# Reloaded on SIGHUP.\n\n" + "\n".join(_mosquitto_block(a.name, a.grants, a.why) for a in SERVICE_RIGHTS)
)


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str
    hash: str

    @property
    def password_file_line(self) -> str:
        return f"{self.username}:{self.hash}"


def new_password() -> str:
    return secrets.token_urlsafe(18)


def hash_password(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """True if `password` matches a `$7$` hash; any other format is a mismatch."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
    except ValueError:
        return False
    expected = hash_password(password, salt, int(parts[2]))
    return hmac.compare_digest(expected, hashed)


def new_credentials(device_id: str) -> Credentials:
    password = new_password()
    return Credentials(device_id, password, hash_password(password))


def _admitted(d: Device) -> bool:
    """On the broker: in service, with credentials, and not under a service account's name."""
    return d.retired_ms is None and bool(d.mqtt_password_hash) and d.id not in SERVICE_ACCOUNTS


def device_acl(devices: list[Device]) -> str:
    """The whole ACL file: the service accounts, then each device's own topics and nothing else."""
    blocks = [SERVICE_ACL]
    for d in sorted(devices, key=lambda d: d.id):
        if _admitted(d) and DEVICE_RE.fullmatch(d.id) and DISTRICT_RE.fullmatch(d.district):
            topic = DEVICE_TOPIC.format(district=d.district, device=d.id)
            blocks.append(_mosquitto_block(d.id, (Grant("write", topic),)))
    return "\n".join(blocks)


def _replace(path: Path, text: str) -> None:
    """Write beside, then rename, so a broker reloading on SIGHUP never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)


def acl_file_for(password_file: Path) -> Path:
    """The ACL lives beside the password file, on the volume both firewatch and the broker mount."""
    return password_file.with_name("acl")


async def sync_broker_auth(store: Store, password_file: Path) -> int:
    """Rewrite the password file and the ACL from the registry; returns the devices admitted.

    Service accounts' password lines are kept; every other line is the registry's: a device
    that is retired or has no credentials is left out of both files.
    """
    async with store.session() as s:
        devices = list((await s.scalars(select(Device))).all())
    admitted = {d.id: d.mqtt_password_hash for d in devices if _admitted(d) and ":" not in d.id}
    lines = password_file.read_text(encoding="utf-8").splitlines() if password_file.exists() else []
    kept = [ln for ln in lines if ln.split(":", 1)[0] in SERVICE_ACCOUNTS]
    kept += [f"{user}:{hashed}" for user, hashed in sorted(admitted.items())]
    _replace(password_file, "\n".join(kept) + "\n")
    _replace(acl_file_for(password_file), device_acl(devices))
    return len(admitted)


async def retire_device(store: Store, device_id: str, password_file: Path | None, actor: str) -> Device | None:
    """Retire a device and take its broker credentials away; None if there is no such device."""
    async with store.session() as s, s.begin():
        device = await s.get(Device, device_id)
        if device is None:
            return None
        if device.retired_ms is None:
            device.retired_ms = now_ms()
        device.mqtt_password_hash = ""
        await store.audit(s, actor, "retire", f"device:{device_id}")
    if password_file is not None:
        await sync_broker_auth(store, password_file)
    return device


def write_password_line(path: Path, username: str, hashed: str) -> None:
    """Add or replace `username` in a Mosquitto password file, keeping every other line.

    The file is replaced whole (write beside it, then rename) so a broker reloading
    it on SIGHUP never reads half a file.
    """
    if ":" in username or "\n" in username:
        raise ValueError(f"username {username!r} may not hold ':' or a newline")
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    kept = [ln for ln in lines if ln.split(":", 1)[0] != username]
    kept.append(f"{username}:{hashed}")
    _replace(path, "\n".join(kept) + "\n")


async def register_device(
    store_url: str, device: Device, password_file: Path | None, actor: str
) -> Credentials:
    """Add or update a device in the registry with fresh broker credentials.

    Registering an existing id replaces its password: the old one stops working
    when the broker next reads its password file. Only the fields set on
    `device` change, so thresholds set elsewhere survive a re-registration.
    """
    if not DEVICE_RE.fullmatch(device.id):
        raise ValueError(f"device id {device.id!r} must match [A-Za-z0-9_-]{{1,64}}")
    if device.id in SERVICE_ACCOUNTS:
        raise ValueError(f"device id {device.id!r} is a broker service account's name")
    if not DISTRICT_RE.fullmatch(device.district):
        raise ValueError(f"district {device.district!r} must match [a-z0-9-]{{1,32}}")
    if device.kind not in SPECS:
        raise ValueError(f"kind {device.kind!r} must be one of {', '.join(SPECS)}")
    creds = new_credentials(device.id)
    device.mqtt_password_hash = creds.hash
    store = await open_store(store_url)
    try:
        async with store.session() as s, s.begin():
            known = await s.get(Device, device.id)
            if known is not None and known.retired_ms is not None:
                raise ValueError(f"device {device.id} is retired; retired ids are never reused")
            await s.merge(device)
            await store.audit(
                s,
                actor,
                "device.register",
                f"device:{device.id}",
                kind=device.kind,
                district=device.district,
                site=device.site,
            )
        if password_file is not None:
            await sync_broker_auth(store, password_file)
    finally:
        await store.aclose()
    return creds
