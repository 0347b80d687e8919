"""Broker credentials for devices: a password and the line Mosquitto's password file holds.

A device's MQTT username is its device id, so the broker ACL
`pattern write fire/v1/+/%u/#` keeps each device inside its own topics. The hash
is Mosquitto 2.0's `$7$` format (PBKDF2-HMAC-SHA512, base64 salt and digest), the
same `mosquitto_passwd` writes, so the broker reads our file without any tool of
its own. Passwords are 144 random bits: the iteration count guards nothing a
brute force could reach, so it stays at Mosquitto's default and reconnect storms
stay cheap for the broker.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

from firewatch.contract.db import Device, open_store
from firewatch.contract.kinds import SPECS
from firewatch.contract.topics import DEVICE_RE, DISTRICT_RE

ITERATIONS = 101
SALT_BYTES = 12


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(kept) + "\n", encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)


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
    if not DISTRICT_RE.fullmatch(device.district):
        raise ValueError(f"district {device.district!r} must match [a-z0-9-]{{1,32}}")
    if device.kind not in SPECS:
        raise ValueError(f"kind {device.kind!r} must be one of {', '.join(SPECS)}")
    creds = new_credentials(device.id)
    device.mqtt_password_hash = creds.hash
    store = await open_store(store_url)
    try:
        async with store.session() as s, s.begin():
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
    finally:
        await store.aclose()
    if password_file is not None:
        write_password_line(password_file, creds.username, creds.hash)
    return creds
