"""EMQX's authentication and authorization, written from the rights Mosquitto's ACL is written from.

The cluster profile (docker-compose.cluster.yml) runs EMQX 5, which reads what Mosquitto reads
from files written on every registration (contract/credentials.py) in other forms:

- the service accounts' rights as a file authorization source, `acl.conf`, rendered from
  SERVICE_RIGHTS: the same grants, in EMQX's first-match rule terms (a deny is put before
  the allows of its account, since Mosquitto's deny wins wherever it stands);
- each device's login and its one right as SQL on the device registry itself, so EMQX asks
  PostgreSQL at connect (and on an authorization cache miss) and a device registered or
  retired counts at once on every node, with no file to copy between nodes. The login query
  splits the registry's Mosquitto `$7$` hash into the hex digest and raw salt EMQX's pbkdf2
  check takes; the admission rule is `_admitted`'s (retired, no credentials, a service
  account's name: refused).

Service accounts log in through EMQX's built-in database, bootstrapped from the broker
container's environment (deploy/cluster/emqx/entrypoint.sh) and hashed the same way.
"""

from __future__ import annotations

import re

from firewatch.contract.credentials import DEVICE_TOPIC, ITERATIONS, SERVICE_RIGHTS, Grant
from firewatch.contract.topics import DEVICE_RE, DISTRICT_RE

_RULE = {
    "read": ("allow", "subscribe"),
    "write": ("allow", "publish"),
    "readwrite": ("allow", "all"),
    "deny": ("deny", "all"),
}
_REGISTRY_COLUMN = {"district": "district", "device": "id"}
PBKDF2 = f"{{name = pbkdf2, mac_fun = sha512, iterations = {ITERATIONS}, dk_length = 64}}"
"""Mosquitto's `$7$` parameters, as EMQX's `password_hash_algorithm`."""


def _rule(user: str, grant: Grant) -> str:
    permission, action = _RULE[grant.access]
    return f'{{{permission}, {{username, "{user}"}}, {action}, ["{grant.topic}"]}}.'


def acl_conf() -> str:
    """EMQX's file authorization: the service accounts' rights; devices are the registry's query."""
    lines = [
        "%% Written by firewatch from contract/credentials.py's SERVICE_RIGHTS (contract/emqx.py);",
        "%% the same rights as deploy/mosquitto/acl. Devices' rights come from the registry (AUTHZ_QUERY).",
    ]
    for account in SERVICE_RIGHTS:
        lines += ["", *(f"%% {line}" for line in account.why.splitlines())]
        ordered = sorted(account.grants, key=lambda g: g.access != "deny")
        lines += [_rule(account.name, g) for g in ordered]
    return "\n".join(lines) + "\n"


def _sql_topic(template: str) -> str:
    """DEVICE_TOPIC as a SQL expression over the registry's columns."""
    parts = re.split(r"\{(\w+)\}", template)
    terms = [_REGISTRY_COLUMN[p] if i % 2 else f"'{p}'" for i, p in enumerate(parts) if p]
    return " || ".join(terms)


_SERVICE_NAMES = ", ".join(f"'{a.name}'" for a in SERVICE_RIGHTS)
_ADMITTED = (
    "id = ${username} AND retired_ms IS NULL AND mqtt_password_hash <> ''"
    f" AND id NOT IN ({_SERVICE_NAMES})"
    f" AND id ~ '^{DEVICE_RE.pattern}$' AND district ~ '^{DISTRICT_RE.pattern}$'"
)
AUTHN_QUERY = (
    "SELECT encode(decode(split_part(mqtt_password_hash, '$', 5), 'base64'), 'hex') AS password_hash,"
    " decode(split_part(mqtt_password_hash, '$', 4), 'base64') AS salt"
    f" FROM devices WHERE {_ADMITTED}"
    f" AND split_part(mqtt_password_hash, '$', 2) = '7' AND split_part(mqtt_password_hash, '$', 3) = '{ITERATIONS}'"
    " LIMIT 1"
)
"""A device's login, for EMQX's PostgreSQL authenticator (`${username}` is its placeholder)."""
AUTHZ_QUERY = (
    f"SELECT 'allow' AS permission, 'publish' AS action, {_sql_topic(DEVICE_TOPIC)} AS topic"
    f" FROM devices WHERE {_ADMITTED}"
)
"""A device's one right, for EMQX's PostgreSQL authorization source."""


def auth_conf() -> str:
    """The `authentication` and `authorization` part of deploy/cluster/emqx/emqx.conf."""
    return f'''# Written by firewatch (contract/emqx.py); the rest of this file is the deployment's.
authentication = [
  {{
    # The service accounts (firewatch, simulator, alerts), from the broker's environment.
    mechanism = password_based
    backend = built_in_database
    user_id_type = username
    password_hash_algorithm = {PBKDF2}
    bootstrap_file = "/tmp/firewatch/service-accounts.csv"
    bootstrap_type = plain
  }},
  {{
    # Devices: the registry itself, read with the broker's SELECT-only role.
    mechanism = password_based
    backend = postgresql
    server = "postgres:5432"
    database = firewatch
    username = emqx
    password = ${{EMQX_REGISTRY_PASSWORD}}
    password_hash_algorithm = {PBKDF2}
    query = """{AUTHN_QUERY}"""
  }}
]
authorization {{
  no_match = deny
  deny_action = ignore
  cache {{ enable = true, ttl = 10s }}
  sources = [
    {{ type = file, enable = true, path = "/opt/emqx/etc/firewatch/acl.conf" }},
    {{
      type = postgresql
      enable = true
      server = "postgres:5432"
      database = firewatch
      username = emqx
      password = ${{EMQX_REGISTRY_PASSWORD}}
      query = """{AUTHZ_QUERY}"""
    }}
  ]
}}
'''
