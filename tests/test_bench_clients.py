"""`firewatch bench ingest --clients`: each MQTT client library it compares receives the whole stream.

Only that the measurement measures something: every message of a real QoS 1 stream reaches each
client and is acknowledged (the broker would otherwise hold the rest back). Rates are the bench's.
"""

from __future__ import annotations

import pytest

from firewatch.bench.clients import RECEIVERS, receive_rate
from firewatch.bench.ingest import publish, stream
from tests.conftest import OwnServices

MESSAGES = 3_000


@pytest.mark.parametrize("name", list(RECEIVERS))
def test_each_compared_client_receives_and_acknowledges_the_whole_stream(name: str, own_services: OwnServices) -> None:
    broker = own_services.mosquitto()
    data = stream(MESSAGES, 50)
    rate = receive_rate(name, broker.host, broker.port, MESSAGES,
                        lambda: publish(broker.host, broker.port, data, MESSAGES), timeout_s=60)
    assert rate > 0
