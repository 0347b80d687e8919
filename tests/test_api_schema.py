"""Schemathesis against the OpenAPI description: no generated input may produce a server error.

Operations are driven with their Hypothesis strategies directly and sent with
httpx (the pytest plugin and the requests transport do not run in this
environment: urllib3-future replaces urllib3), 16 valid or invalid cases each.

The live stream never ends, and revoking tokens would lock the fuzzer out of
everything else, so those two operations are left to tests/test_api.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from firewatch.services import InfluxD, Mosquitto
from tests.conftest import make_settings
from tests.test_api import HYDRANT, insert_alerts
from tests.test_api_server import ApiThread, client, tokens


@pytest.fixture(scope="module")
def fuzzed(
    tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto, influxd: InfluxD
) -> Iterator[tuple[ApiThread, str]]:
    s = make_settings(tmp_path_factory.mktemp("schema"), mosquitto.port, influxd.url, "fwschema")
    server = ApiThread(s).start()
    admin = tokens(server.settings)["admin"]
    client(server, admin).post("/api/v1/devices", json=HYDRANT)
    insert_alerts(
        server.settings,
        {"rule": "fire", "severity": "fire", "kind": "panel", "device_id": "P-1"},
        {
            "rule": "pressure_low",
            "severity": "critical",
            "kind": "hydrant",
            "device_id": "H-1",
            "metric": "pressure_mpa",
        },
    )
    yield server, admin
    server.stop()


SKIPPED = {("GET", "/api/v1/stream"), ("DELETE", "/api/v1/tokens/{token_id}")}


def test_no_input_makes_a_server_error(fuzzed: tuple[ApiThread, str]) -> None:
    server, admin = fuzzed
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    http = httpx.Client(timeout=10)
    failures: list[str] = []
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        tried += 1

        @given(
            case=operation.as_strategy(GenerationMode.POSITIVE)
            | operation.as_strategy(GenerationMode.NEGATIVE)
        )
        @settings(
            max_examples=16, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def call(case: schemathesis.Case) -> None:
            kwargs = case.as_transport_kwargs(
                base_url=server.url, headers={"Authorization": f"Bearer {admin}"}
            )
            headers = dict(kwargs.get("headers") or {})
            if kwargs.get("cookies"):
                headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in kwargs["cookies"].items())
            response = http.request(
                kwargs["method"],
                kwargs["url"],
                params=kwargs.get("params"),
                headers=headers,
                json=kwargs.get("json"),
                content=kwargs.get("data"),
            )
            assert response.status_code < 500, (
                f"{case.as_curl_command()} -> {response.status_code} {response.text[:300]}"
            )
            pdf = case.path.endswith(".pdf") and response.status_code == 200
            assert response.headers.get("content-type", "").startswith(
                ("application/json", "text/plain")
            ) or (response.status_code == 204) or (pdf and response.headers["content-type"] == "application/pdf"), (
                f"{case.as_curl_command()} answered {response.headers.get('content-type')}"
            )

        try:
            call()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert tried > 30
    assert not failures, "\n\n".join(failures)
