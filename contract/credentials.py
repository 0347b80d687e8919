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
