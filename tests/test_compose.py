"""The docker-compose deployments, checked without Docker: every command, file, secret and mount.

No Docker engine runs here or in CI, so both compose files (one machine, docker-compose.yml;
the cluster, docker-compose.cluster.yml) are parsed and checked against the repository, the
real `firewatch` CLI and its settings; the broker configuration the first mounts is started
with the real Mosquitto. The cluster's EMQX auth is checked in tests/test_emqx_auth.py.
"""

from __future__ import annotations

import getpass
import os
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import typer
import yaml

from firewatch.alerting.config import load as load_alerting
from firewatch.cli import app
from firewatch.contract.credentials import new_credentials, write_password_line
from firewatch.contract.settings import load_settings, unknown_environment
from firewatch.dashboards.boards import all_dashboards
from firewatch.dashboards.grafana import INFLUX_UID, REGISTRY_UID
from firewatch.dashboards.push import InfluxSource, RegistrySource
from firewatch.notify import notify_config
from firewatch.services import Mosquitto, free_port

ROOT = Path(__file__).resolve().parent.parent
FILES = ("docker-compose.yml", "docker-compose.cluster.yml")
TEXTS = {f: (ROOT / f).read_text() for f in FILES}
PARSED: dict[str, dict[str, Any]] = {f: yaml.safe_load(t) for f, t in TEXTS.items()}
COMPOSE_TEXT, COMPOSE = TEXTS[FILES[0]], PARSED[FILES[0]]
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
OWN_IMAGE = [(f, name) for f in FILES for name, s in PARSED[f]["services"].items() if "build" in s]


def _host_path(source: str) -> str:
    """`${VAR:-./default}` is the default the repository ships; anything else as written."""
    m = re.fullmatch(r"\$\{\w+:-([^}]*)\}", source)
    return m.group(1) if m else source


_VOLUME = re.compile(r"(\$\{[^}]*\}|[^:]+):([^:]+)(?::(?:ro|rw))?")


def _mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path or volume name, container path) of each short-syntax volume."""
    out = []
    for v in service.get("volumes", []):
        m = _VOLUME.fullmatch(v)
        assert m, f"volume {v!r} is not in short syntax"
        out.append((_host_path(m.group(1)), m.group(2)))
    return out


def _resolve(command: list[str]) -> tuple[Any, list[str]]:
    """Walk the real CLI (as it is at test time) down the command's words.

    Returns the command reached and the words left over; Typer's click groups
    are told apart by having subcommands, since Typer may vendor its own click.
    """
    cmd = typer.main.get_command(app)
    words = list(command)
    while words and words[0] in getattr(cmd, "commands", {}):
        cmd = cmd.commands[words.pop(0)]
    return cmd, words


@pytest.mark.parametrize(
    ("file", "name"), [(f, n) for f, n in OWN_IMAGE if "command" in PARSED[f]["services"][n]]
)
def test_every_firewatch_service_runs_a_command_the_cli_has(file: str, name: str) -> None:
    command = [_defaults(word) for word in PARSED[file]["services"][name]["command"]]
    shown = "firewatch " + " ".join(command)
    cmd, rest = _resolve(command)
    assert len(rest) < len(command), f"{name}: `{shown}`: {command[0]} is no command of the CLI"
    if getattr(cmd, "commands", None) and not cmd.invoke_without_command:
        assert not rest or rest[0].startswith("-"), (
            f"{name}: `{shown}`: no such subcommand {rest[0]}"
        )
        pytest.fail(f"{name}: `{shown}` needs a subcommand")
    options = {opt for p in cmd.params for opt in p.opts}
    for word in rest:
        if word.startswith("--"):
            assert word in options, f"{name}: `{shown}` has no option {word}"


def _defaults(text: str, secret: str = "secret") -> str:
    """`${VAR:-default}` as its default, any other `${VAR...}` as a stand-in secret."""
    return re.sub(
        r"(?<!\$)\$\{(\w+)(?::-([^}]*)|[^}]*)\}",
        lambda m: m.group(2) if m.group(2) is not None else secret,
        text,
    )


@pytest.mark.parametrize(("file", "name"), OWN_IMAGE)
def test_every_firewatch_environment_key_is_a_setting_the_services_accept(
    file: str, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {k: _defaults(str(v)) for k, v in (PARSED[file]["services"][name].get("environment") or {}).items()}
    assert not unknown_environment(env), f"{file} {name}: {unknown_environment(env)}"
    monkeypatch.chdir(tmp_path)  # no firewatch.toml: the environment alone, as in the container
    for key in [k for k in os.environ if k.startswith("FIREWATCH_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    load_alerting(settings.alerting)
    notify_config(settings.model_copy(update={"api": settings.api.model_copy(update={"secret": "x"})}))


@pytest.mark.parametrize("file", FILES)
def test_every_mounted_file_and_build_input_exists(file: str) -> None:
    for name, service in PARSED[file]["services"].items():
        for source, _ in _mounts(service):
            if source.startswith("."):
                assert (ROOT / source).exists(), (
                    f"{file}: {name} mounts {source}, which is not in the repository"
                )
            else:
                assert source in PARSED[file]["volumes"], f"{file}: {name} uses volume {source}, not declared"
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), (
                    f"Dockerfile copies {source}, which is not in the repository"
                )


def test_every_secret_is_in_env_example_and_nothing_stale() -> None:
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    both = "".join(TEXTS.values())
    used = set(re.findall(r"(?<!\$)\$\{(\w+)", both))
    required = set(re.findall(r"(?<!\$)\$\{(\w+):\?", both))
    assert required <= set(example), f"secrets missing from .env.example: {required - set(example)}"
    assert set(example) <= used, (
        f".env.example names what compose never reads: {set(example) - used}"
    )
    assert all(not example[k] for k in required), ".env.example must not ship a secret's value"


@pytest.mark.parametrize("file", FILES)
def test_services_restart_and_are_health_checked(file: str) -> None:
    services = PARSED[file]["services"]
    for name, service in services.items():
        assert "restart" in service, f"{name} has no restart policy"
        if (
            service["restart"] != "no"
            and "profiles" not in service
            and name != "metrics"
        ):
            assert "healthcheck" in service, f"{name} has no health check"
    for name, service in services.items():
        for dep, how in (service.get("depends_on") or {}).items():
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], (
                    f"{name} waits for {dep} to be healthy, which it never is"
                )


def test_grafana_provisioning_points_at_the_exported_dashboards_and_known_sources() -> None:
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "firewatch.yaml").read_text())[
        "datasources"
    ]
    by_uid = {s["uid"]: s for s in sources}
    assert set(by_uid) == {INFLUX_UID, REGISTRY_UID}
    pushed = [
        InfluxSource("http://x:8086", "firewatch").datasource(),
        RegistrySource("postgresql://u:p@x/firewatch").datasource(),
    ]
    for ds in pushed:
        assert by_uid[ds["uid"]]["type"] == ds["type"], (
            "provisioning and push must define the same data source"
        )
    assert by_uid[INFLUX_UID]["jsonData"] == pushed[0]["jsonData"] | {"dbName": "firewatch"}

    provider = yaml.safe_load((provisioning / "dashboards" / "firewatch.yaml").read_text())[
        "providers"
    ][0]
    grafana_mounts = {t: s for s, t in _mounts(SERVICES["grafana"])}
    folder = provider["options"]["path"]
    volume = grafana_mounts[folder]
    exporter = SERVICES["dashboards"]
    target = dict(_mounts(exporter))[volume]
    assert exporter["command"] == ["dashboards", "export", target], (
        "the export must write into the volume Grafana reads"
    )
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert Path(home).parent == Path(folder)
    assert Path(home).stem in {b["uid"] for b in all_dashboards()}
    assert grafana_mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"


def test_firewatch_services_reach_each_other_by_compose_names() -> None:
    env = SERVICES["ingest"]["environment"]
    assert (
        env["FIREWATCH_MQTT__HOST"] in SERVICES and env["FIREWATCH_MQTT__USERNAME"] == "firewatch"
    )
    assert env["FIREWATCH_INFLUX__URL"].split("//")[1].split(":")[0] in SERVICES
    acl = (ROOT / "deploy" / "mosquitto" / "acl").read_text()
    assert "user firewatch" in acl and "user simulator" in acl
    assert SERVICES["simulator"]["environment"]["FIREWATCH_MQTT__USERNAME"] == "simulator"
    password_file = Path(SERVICES["firewatch"]["environment"]["FIREWATCH_MQTT__PASSWORD_FILE"])
    broker = {t: s for s, t in _mounts(SERVICES["mosquitto"])}
    conf = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    assert f"password_file {password_file}" in conf
    assert f"acl_file {password_file.with_name('acl')}" in conf
    for writer in ("firewatch", "api"):  # `device add` / `device retire`, and the api's retire
        mounts = {t: s for s, t in _mounts(SERVICES[writer])}
        assert mounts[str(password_file.parent)] == broker[str(password_file.parent)], (
            f"{writer} must write the password file and ACL the broker reads"
        )


class ShippedMosquitto(Mosquitto):
    """The compose broker as its container starts it: the shipped entrypoint.sh, mosquitto.conf and
    ACL, with the container's /mosquitto paths moved under a test folder and free ports."""

    def __init__(self, data_dir: Path, tls_port: int) -> None:
        super().__init__(data_dir)
        self.tls_port = tls_port

    def _configure(self) -> None:
        root, deploy = self.dir, ROOT / "deploy" / "mosquitto"
        (root / "config").mkdir(parents=True, exist_ok=True)
        (root / "data").mkdir(exist_ok=True)
        conf = (deploy / "mosquitto.conf").read_text()
        conf = conf.replace("/mosquitto/", f"{root}/").replace(
            "listener 1883", f"listener {self.port} 127.0.0.1"
        )
        (root / "config" / "mosquitto.conf").write_text(f"user {getpass.getuser()}\n{conf}")
        (root / "config" / "acl").write_text((deploy / "acl").read_text())
        script = (deploy / "entrypoint.sh").read_text().replace("/mosquitto/", f"{root}/")
        (root / "entrypoint.sh").write_text(
            script.replace("listener 8883", f"listener {self.tls_port} 127.0.0.1")
        )

    def _command(self) -> list[str]:
        return ["sh", str(self.dir / "entrypoint.sh")]


def _connects(port: int, username: str, password: str, ca: Path | None = None) -> bool:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    if ca:
        client.tls_set(ca_certs=str(ca))
    answered, result = threading.Event(), []
    client.on_connect = lambda _c, _u, _f, reason, _p: (result.append(reason.value), answered.set())
    client.connect("localhost", port)
    client.loop_start()
    try:
        assert answered.wait(10)
        return result[0] == 0
    finally:
        client.loop_stop()
        client.disconnect()


@pytest.mark.skipif(
    os.geteuid() != 0, reason="the entrypoint chowns the password file, as root in its container"
)
def test_shipped_broker_starts_with_service_accounts_devices_and_tls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MQTT_SERVICE_PASSWORD", "service-secret")
    monkeypatch.setenv("MQTT_SIMULATOR_PASSWORD", "simulator-secret")
    monkeypatch.setenv("MQTT_ALERTS_PASSWORD", "alerts-secret")
    broker = ShippedMosquitto(tmp_path / "broker", tls_port=free_port())
    certs = broker.dir / "certs"
    certs.mkdir(parents=True)
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(certs / "server.key"),
            "-out",
            str(certs / "server.crt"),
        ],
        check=True,
        capture_output=True,
    )
    device = new_credentials("HY-510104-0001")
    write_password_line(broker.dir / "auth" / "passwd", device.username, device.hash)
    broker.start()
    try:
        assert _connects(broker.port, "firewatch", "service-secret")
        assert _connects(broker.port, "simulator", "simulator-secret")
        assert _connects(broker.port, "alerts", "alerts-secret"), "outside systems' alert reader"
        assert _connects(broker.port, device.username, device.password), (
            "a device added before start stays"
        )
        assert not _connects(broker.port, device.username, "wrong")
        assert _connects(broker.tls_port, device.username, device.password, ca=certs / "server.crt")
    finally:
        broker.stop()
    assert (broker.dir / "auth" / "passwd").stat().st_mode & 0o077 == 0


CLUSTER: dict[str, dict[str, Any]] = PARSED["docker-compose.cluster.yml"]["services"]


def _of(command: str) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in CLUSTER.items() if s.get("command", [None])[0] == command}


def test_cluster_ingest_processes_share_one_group_each_on_a_session_of_its_own() -> None:
    ingests = _of("ingest")
    assert len(ingests) >= 2
    envs = [s["environment"] for s in ingests.values()]
    assert {e["FIREWATCH_INGEST__SHARE_GROUP"] for e in envs} == {"ingest"}
    assert len({e["FIREWATCH_INGEST__CLIENT_ID"] for e in envs}) == len(envs), "a session each"
    assert len({_mounts(s)[0][0] for s in ingests.values()}) == len(envs), "a spool each"


def test_cluster_gives_every_district_to_one_alerting_worker_with_its_notify_beside_it() -> None:
    from firewatch.simulators.citymap import DISTRICTS_FILE

    def districts(service: dict[str, Any]) -> list[str]:
        command = service["command"]
        return _defaults(command[command.index("--districts") + 1]).split(",")

    alerting, notify = _of("alerting"), _of("notify")
    assert len(alerting) >= 2 and len(notify) == len(alerting)
    owned = [d for s in alerting.values() for d in districts(s)]
    assert len(owned) == len(set(owned)), "a district given to two workers is judged on half its data"
    city = [line.split(",")[0] for line in DISTRICTS_FILE.read_text().splitlines()[1:]]
    assert sorted(owned) == sorted(city), "the default split covers the simulated city"
    assert sorted(map(districts, alerting.values())) == sorted(map(districts, notify.values()))
    for s in alerting.values():
        assert s["environment"]["FIREWATCH_NOTIFY__EMBEDDED"] == "false", "pages go out from notify"
    example = dict(ln.split("=", 1) for ln in (ROOT / ".env.example").read_text().splitlines()
                   if ln and not ln.startswith("#"))
    assert sorted(example[k] for k in ("ALERTING_DISTRICTS_A", "ALERTING_DISTRICTS_B")) == sorted(
        ",".join(districts(s)) for s in alerting.values())


def test_cluster_proxy_reaches_every_api_replica_and_broker_node() -> None:
    conf = (ROOT / "deploy" / "cluster" / "proxy" / "nginx.conf").read_text()
    upstreams = dict(re.findall(r"upstream (\w+) \{(.*?)\}", conf, re.DOTALL))
    servers = {name: set(re.findall(r"server ([\w-]+):(\d+)", body)) for name, body in upstreams.items()}
    apis = {(n, s["environment"]["FIREWATCH_API__PORT"]) for n, s in _of("api").items()}
    assert len(apis) >= 2 and servers["api"] == apis
    nodes = {n for n, s in CLUSTER.items() if str(s.get("image", "")).startswith("emqx/emqx:5")}
    assert len(nodes) >= 2 and servers["mqtt"] == {(n, "1883") for n in nodes}
    proxy = CLUSTER["proxy"]
    assert {p.rsplit(":", 1)[1] for p in proxy["ports"]} >= {"1883", "8080"}
    assert re.search(r"listen 8080;", conf) and re.search(r"listen 1883;", conf)
    for name, s in CLUSTER.items():
        if "build" in s:
            assert s["environment"]["FIREWATCH_MQTT__HOST"] == "proxy", f"{name} must reach every node"
            assert "FIREWATCH_MQTT__PASSWORD_FILE" not in s["environment"], "EMQX reads the registry"


def test_cluster_emqx_nodes_seed_each_other_by_names_that_resolve() -> None:
    nodes = {n: s for n, s in CLUSTER.items() if str(s.get("image", "")).startswith("emqx/emqx:5")}
    names = {s["environment"]["EMQX_NODE__NAME"] for s in nodes.values()}
    seeds = CLUSTER[next(iter(nodes))]["environment"]["EMQX_CLUSTER__STATIC__SEEDS"]
    assert set(seeds.strip("[]").split(",")) == names
    for s in nodes.values():
        host = s["environment"]["EMQX_NODE__NAME"].split("@")[1]
        assert host in s["networks"]["default"]["aliases"], "a node name other nodes can resolve"
        assert s["environment"]["EMQX_CLUSTER__DISCOVERY_STRATEGY"] == "static"
        mounts = dict(_mounts(s))
        assert mounts["./deploy/cluster/emqx/emqx.conf"] == "/opt/emqx/etc/emqx.conf"
        conf = (ROOT / "deploy" / "cluster" / "emqx" / "emqx.conf").read_text()
        acl_path = re.search(r'type = file, enable = true, path = "([^"]+)"', conf)
        assert acl_path and mounts["./deploy/cluster/emqx/acl.conf"] == acl_path.group(1)
        assert s["entrypoint"] == ["sh", mounts["./deploy/cluster/emqx/entrypoint.sh"]]
    entrypoint = (ROOT / "deploy" / "cluster" / "emqx" / "entrypoint.sh").read_text()
    bootstrap = re.search(r'bootstrap_file = "([^"]+)"', conf)
    assert bootstrap and bootstrap.group(1) == '/tmp/firewatch/service-accounts.csv'
    assert 'dir=/tmp/firewatch' in entrypoint and '"$dir/service-accounts.csv"' in entrypoint
    postgres = CLUSTER["postgres"]
    assert "EMQX_REGISTRY_PASSWORD" in postgres["environment"], "the registry role EMQX logs in with"
    assert any(t.startswith("/docker-entrypoint-initdb.d/") for _, t in _mounts(postgres))
