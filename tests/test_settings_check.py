"""Settings checked as a whole, as an installer meets them: `firewatch config --check` and `firewatch up`.

Each case is a typo from a real first install that used to pass silently and fail later,
far from the key (or never: a variable with one underscore set nothing at all).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firewatch.contract.db import open_store
from firewatch.notify.roster import load_yaml
from firewatch.services import free_port, port_open

ROSTER = """people:
  - {id: zhang, name: 张伟, channels: ["mailto://u:p@127.0.0.1?to=z@example.org"]}
  - {id: boss, name: 刘主任, channels: ["mailto://u:p@127.0.0.1?to=l@example.org"]}
groups:
  - {id: duty, members: [zhang]}
  - {id: leaders, members: [boss]}
"""


def firewatch(folder: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FIREWATCH_")}
    return subprocess.run(
        [sys.executable, "-m", "firewatch", *args],
        check=False,
        cwd=folder,
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def settings_file(folder: Path, body: str) -> None:
    (folder / "firewatch.toml").write_text(
        f'[store]\nurl = "sqlite:///{folder}/fw.db"\n[up]\ndata_dir = "{folder}/data"\n' + body
    )


ROUTE = """[[notify.routes]]
name = "fire"
severity = ["fire"]
steps = [{{ notify = ["{first}"], {wait} = 3 }}, {{ notify = ["{second}"] }}]
"""


@pytest.mark.parametrize(
    ("body", "env", "named"),
    [
        (ROUTE.format(first="group:duty", wait="wait_minutes", second="group:leaders"), {}, "notify.routes.0.steps.0.wait_minutes"),
        (ROUTE.format(first="group:duty", wait="wait_min", second="team:leaders"), {}, "notify.routes.0.steps.1.notify"),
        ("[alerting.electrical.residual_curent]\nalarm = 300\n", {}, "alerting.electrical.residual_curent"),
        ("[alerting.electrical.residual_current]\nwarning = 350\nalarm = 300\n", {}, "alerting.electrical.residual_current.warning"),
        ('[influx]\nurl = "db.example.org:8086"\n', {}, "influx.url"),
        ('[notify.channels]\nleaders = "dingtalk-SECRET"\n', {}, "notify.channels.leaders"),
        ("", {"FIREWATCH_MQTT_PORT": "1884"}, "FIREWATCH_MQTT_PORT: not a setting (did you mean FIREWATCH_MQTT__PORT?)"),
        ("", {"FIREWATCH_INFLUX__URLL": "http://db:8086"}, "FIREWATCH_INFLUX__URLL"),
        ('[notify]\nfallback = ["team:leaders"]\n', {}, "notify.fallback: Value error, target 'team:leaders'"),
        ("[notify]\nfallback = []\n", {}, "notify.fallback: List should have at least 1 item"),
        ('[notify.fire_brigade]\nurl = "https://119.example.org/in"\n', {}, "notify.fire_brigade.url: Value error"),
        ("[notify.fire_brigade]\nretries = 0\n", {}, "notify.fire_brigade.retries"),
        ('[notify]\nfallback = "group:leaders"\n', {}, "notify.fallback: Input should be a valid list"),
        (ROUTE.format(first="group:duty", wait="wait_min", second="group:leaders") + 'fallback = ["leaders"]\n', {},
         "notify.routes.0.fallback: Value error, target 'leaders'"),
    ],
)
def test_config_check_exits_2_and_names_the_key(tmp_path: Path, body: str, env: dict[str, str], named: str) -> None:
    settings_file(tmp_path, body)
    done = firewatch(tmp_path, "config", "--check", env=env)
    assert done.returncode == 2, done.stderr
    assert named in done.stderr


def test_route_targets_are_checked_against_the_stored_roster(tmp_path: Path) -> None:
    async def store_roster() -> None:
        store = await open_store(f"sqlite:///{tmp_path}/fw.db")
        await load_yaml(store, ROSTER)
        await store.aclose()

    settings_file(tmp_path, ROUTE.format(first="group:duty", wait="wait_min", second="group:leader"))
    assert firewatch(tmp_path, "config", "--check").returncode == 0  # no roster stored yet: nothing to check
    asyncio.run(store_roster())
    done = firewatch(tmp_path, "config", "--check")
    assert done.returncode == 2
    assert "notify.routes.0.steps.1.notify.0: 'group:leader': no group 'leader' in the stored roster" in done.stderr
    settings_file(tmp_path, ROUTE.format(first="group:duty", wait="wait_min", second="person:boss"))
    done = firewatch(tmp_path, "config", "--check")
    assert (done.returncode, done.stderr.strip()) == (0, "settings OK")
    # The default fallback names a `console` group this roster lacks: no mistake. Set by hand, it is checked.
    settings_file(tmp_path, '[notify]\nfallback = ["group:leader", "person:boss"]\n')
    done = firewatch(tmp_path, "config", "--check")
    assert done.returncode == 2
    assert "notify.fallback.0: 'group:leader': no group 'leader' in the stored roster" in done.stderr


def test_up_refuses_bad_settings_before_starting_anything(tmp_path: Path) -> None:
    settings_file(tmp_path, "[alerting.hydrant.pressure_low]\nwarning = 0.05\nalarm = 0.10\n")
    done = firewatch(tmp_path, "up")
    assert done.returncode == 2
    assert "alerting.hydrant.pressure_low.warning" in done.stderr
    assert "is up" not in done.stdout
    assert not (tmp_path / "data").exists()


def test_up_with_an_unreachable_configured_broker_fails_instead_of_starting_a_private_one(tmp_path: Path) -> None:
    port = free_port()
    settings_file(tmp_path, "")
    start = time.monotonic()
    done = firewatch(tmp_path, "up", env={"FIREWATCH_MQTT__PORT": str(port)})
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"no MQTT broker answers at mqtt://127.0.0.1:{port}" in done.stdout
    assert "start_services" in done.stdout and "is up" not in done.stdout
    assert not port_open(port)
    assert not (tmp_path / "data" / "mosquitto").exists()
    assert time.monotonic() - start < 30
