"""A PostgreSQL database of a test's own, on the server every machine of ours runs at 127.0.0.1:5432.

PostgreSQL is the production store, so no test skips when the server is missing: a suite that passed
without it would prove nothing about the store. A missing server fails the test and says so.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

SERVER = "postgresql://postgres@127.0.0.1:5432/test"
"""The maintenance database; tests connect here only to create and drop their own."""


def admin() -> psycopg.Connection:
    """A connection to the server as its superuser, for a test's own roles and grants."""
    try:
        return psycopg.connect(SERVER, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        pytest.fail(f"no PostgreSQL server at 127.0.0.1:5432, which every PostgreSQL test needs: {e}")


@contextmanager
def database(prefix: str) -> Iterator[str]:
    """The URL of a new, empty database, dropped with its connections afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield SERVER.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
