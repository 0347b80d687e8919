"""The api's SQL against PostgreSQL (the production store): the same tests as on SQLite.

Each test gets a database of its own on the server at 127.0.0.1:5432 (tests/postgres.py).
The tests themselves are those of tests/test_api.py that exercise SQL the two dialects
could disagree on (queue ordering, guarded updates, JSON columns, per-day grouping, the
audit-ordered stream, CSV upserts).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from firewatch.contract.settings import Settings
from firewatch.services import InfluxD, Mosquitto
from tests import test_api, test_api_server
from tests.conftest import make_settings
from tests.postgres import database
from tests.test_api import (  # noqa: F401 - collected here to run against PostgreSQL
    test_acknowledge_resolve_comment_are_guarded_and_audited,
    test_alert_queue_puts_fire_first_then_score_and_filters,
    test_csv_import_reports_each_rejected_row,
    test_device_lifecycle_is_validated_and_audited,
    test_roster_round_trips_and_tells_who_is_on_duty,
    test_silences_need_a_scope_and_can_be_ended,
    test_statistics_for_the_shift_report,
    test_stream_resumes_after_a_disconnect_without_missing_changes,
)
from tests.test_api_hostile import (  # noqa: F401 - collected here to run against PostgreSQL
    test_a_revoked_token_loses_its_open_live_stream,
    test_device_statuses_with_hostile_firmware_text_are_recorded,
    test_the_roster_shows_channel_addresses_to_admins_only,
)

pytestmark = pytest.mark.postgres
api = test_api_server.api
keys, admin, operator, viewer = test_api.keys, test_api.admin, test_api.operator, test_api.viewer


@pytest.fixture
def settings(tmp_path: Path, mosquitto: Mosquitto, influxd: InfluxD) -> Iterator[Settings]:
    with database("fw_api") as url:
        s = make_settings(tmp_path, mosquitto.port, influxd.url, url.rsplit("/", 1)[1])
        yield s.model_copy(update={"store": s.store.model_copy(update={"url": url})})
