"""`firewatch bench city` on a small city: every part a real process, the figures a user reads.

A few hundred devices at their real reporting rates through Mosquitto, ingest,
InfluxDB, alerting, notify, the api on two workers and PostgreSQL, with panel
fires as ground truth: nothing published is lost, every fire is alerted and
paged at the bench's webhook, and the JSON carries what the README quotes.
"""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest


@pytest.mark.postgres
def test_a_small_city_loses_nothing_and_every_fire_is_alerted_and_paged() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "firewatch", "bench", "city", "--devices", "300", "--seconds", "20",
         "--warmup", "5", "--json"], capture_output=True, timeout=240, check=False)
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-3000:]
    out = orjson.loads(run.stdout)
    assert out["published_points"] > 0
    assert out["stored"] == out["published_points"] and out["lost"] == 0
    assert out["incidents"] >= 1 and out["standard_incidents_missed"] == 0, out["missed"]
    assert out["incidents_alerted"] == out["incidents"]
    assert out["false_alerts"] == 0
    assert out["pages"] >= out["incidents"] and out["page_p99_ms"] is not None
    assert 0 < out["publish_to_alert_p50_ms"] <= out["publish_to_alert_p99_ms"]
    assert out["api_polls"] > 0 and out["api_poll_errors"] == 0
    for part in ("ingest", "alerting", "notify", "api"):
        assert out["cpu_cores"][part] > 0 and out["peak_rss_mb"][part] > 0, part
    assert set(out["cpu_us_per_msg"]) == {"ingest", "alerting"}
    assert out["holds"]["nothing_lost"] and out["holds"]["every_incident_alerted"] and out["holds"]["every_fire_paged"]
