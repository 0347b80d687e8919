"""The wire contract as a device vendor meets it: what is accepted, what is refused and why."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from firewatch.contract import Reason, parse
from firewatch.contract.influx import Influx
from firewatch.contract.kinds import SPECS
from firewatch.contract.lineproto import record_line
from firewatch.contract.payload import DeviceStatus, PanelEvent, Reading

NOW = 1_763_800_000_000
T = "fire/v1/510104/H-001/telemetry"
PT = "fire/v1/510104/P1/telemetry"


def _one(topic: str, doc: object) -> tuple[list, list]:
    p = parse(topic, orjson.dumps(doc), NOW)
    return p.records, [r.reason for r in p.rejections]


def test_design_examples_are_accepted() -> None:
    (r,), _ = _one(T, {"ts": NOW + 123, "seq": 42, "kind": "hydrant", "m": {"pressure_mpa": 0.31, "battery_pct": 87}})
    assert isinstance(r, Reading) and r.ts_ms == NOW + 123 and r.seq == 42
    assert r.metrics == {"pressure_mpa": 0.31, "battery_pct": 87.0}
    (e,), _ = _one(
        "fire/v1/510104/P1/event",
        {"ts": NOW, "seq": 1, "kind": "panel", "event": "fire", "loop": 1, "point": 23, "zone": "3F east", "component": "smoke"},
    )
    assert isinstance(e, PanelEvent) and (e.event, e.loop, e.point, e.zone) == ("fire", 1, 23, "3F east")
    (a,), _ = _one(PT, {"ts": NOW, "seq": 2, "kind": "panel", "loop": 1, "point": 23, "m": {"temp_c": 23.5}})
    assert isinstance(a, Reading) and (a.loop, a.point, a.metrics) == (1, 23, {"temp_c": 23.5})
    (s,), _ = _one("fire/v1/510104/P1/status", {"ts": NOW, "online": True, "fw": "2.1.0"})
    assert isinstance(s, DeviceStatus) and s.online and s.fw == "2.1.0"


def test_missing_timestamp_takes_receive_time() -> None:
    (r,), _ = _one(T, {"kind": "hydrant", "m": {"pressure_mpa": 0.3}})
    assert r.ts_ms == NOW


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("fire/v1/510104/H-001", b"{}", Reason.BAD_TOPIC),
        ("fire/v1/DISTRICT/H-001/telemetry", b"{}", Reason.BAD_TOPIC),
        ("fire/v1/510104/H 001/telemetry", b"{}", Reason.BAD_TOPIC),
        ("fire/v1/510104/H-001/video", b"{}", Reason.BAD_TOPIC),
        (T, b'{"kind": "hydrant", "m": {', Reason.BAD_JSON),
        (T, b"\xff\xfe", Reason.BAD_JSON),
        (T, b'{"kind": "hydrant"}', Reason.BAD_SCHEMA),
        (T, b'{"kind": "hydrant", "m": {"pressure_mpa": "high"}}', Reason.BAD_SCHEMA),
        (T, b'{"kind": "hydrant", "m": {}, "extra": 1}', Reason.BAD_SCHEMA),
        (T, b'{"kind": "boat", "m": {"speed": 1}}', Reason.UNKNOWN_KIND),
        (T, b'{"kind": "hydrant", "m": {"speed_kmh": 1}}', Reason.UNKNOWN_METRIC),
        (T, b'{"kind": "hydrant", "m": {"pressure_mpa": 3.7}}', Reason.OUT_OF_RANGE),
        (T, b'{"kind": "hydrant", "m": {"battery_pct": -1}}', Reason.OUT_OF_RANGE),
        (T, b'{"kind": "pump", "m": {"pressure_mpa": -0.15}}', Reason.OUT_OF_RANGE),  # below a vacuum
        (T, b'{"ts": 1763800000, "kind": "hydrant", "m": {"pressure_mpa": 0.3}}', Reason.BAD_TIMESTAMP),
        (T, b'{"ts": 1863800000000, "kind": "hydrant", "m": {"pressure_mpa": 0.3}}', Reason.BAD_TIMESTAMP),
        ("fire/v1/510104/P1/event", b'{"kind": "panel", "event": "smoke"}', Reason.UNKNOWN_EVENT),
        ("fire/v1/510104/P1/event", b'{"kind": "hydrant", "event": "fire"}', Reason.UNKNOWN_KIND),
        (T, b"[" + b" " * (300 * 1024) + b"]", Reason.OVERSIZED),
        (PT, b'{"kind": "panel", "m": {"temp_c": 20}}', Reason.BAD_SCHEMA),  # a panel's analog is a point's
        (PT, b'{"kind": "panel", "loop": 1, "m": {"temp_c": 20}}', Reason.BAD_SCHEMA),
        (T, b'{"kind": "hydrant", "loop": 1, "point": 2, "m": {"pressure_mpa": 0.3}}', Reason.BAD_SCHEMA),
        (PT, b'{"kind": "panel", "loop": 1, "point": 2, "m": {"residual_ma": 20}}', Reason.UNKNOWN_METRIC),
        (PT, b'{"kind": "panel", "loop": 1, "point": 2, "m": {"gas_lel_pct": 120}}', Reason.OUT_OF_RANGE),
    ],
)
def test_bad_input_is_refused_with_its_reason(topic: str, payload: bytes, reason: Reason) -> None:
    p = parse(topic, payload, NOW)
    assert p.records == []
    assert [r.reason for r in p.rejections] == [reason]
    assert p.rejections[0].detail


def test_a_gauge_a_little_under_zero_or_under_suction_is_a_reading() -> None:
    """A pressure transmitter at no pressure reads either side of 0 within its accuracy, and a pump's suction or
    a drained main reads below it: these were refused as impossible (and each counted towards sensor_impossible)."""
    records, reasons = _one(T, [{"ts": NOW - 1000, "kind": "hydrant", "m": {"pressure_mpa": -0.004}},
                                {"ts": NOW, "kind": "hydrant", "m": {"pressure_mpa": -0.06}}])
    assert [r.metrics["pressure_mpa"] for r in records] == [-0.004, -0.06]
    assert reasons == []


def test_one_bad_reading_in_a_gateway_batch_costs_only_itself() -> None:
    records, reasons = _one(
        T,
        [
            {"ts": NOW - 2000, "kind": "hydrant", "m": {"pressure_mpa": 0.30}},
            {"ts": NOW - 1000, "kind": "hydrant", "m": {"pressure_mpa": 9.0}},
            {"ts": NOW, "kind": "hydrant", "m": {"pressure_mpa": 0.29, "cover_open": True}},
        ],
    )
    assert [r.metrics["pressure_mpa"] for r in records] == [0.30, 0.29]
    assert records[1].metrics["cover_open"] == 1.0
    assert reasons == [Reason.OUT_OF_RANGE]


def test_every_catalog_metric_has_a_unit_and_a_range() -> None:
    for spec in SPECS.values():
        for m in (*spec.metrics.values(), *spec.point_metrics.values()):
            assert m.unit and m.low < m.high, m


async def test_line_protocol_round_trips_through_real_influxdb(settings) -> None:
    records = parse(
        "fire/v1/510104/E-7/telemetry",
        orjson.dumps({"ts": NOW, "seq": 9, "kind": "electrical", "m": {"residual_ma": 123.5, "temp1_c": 41}}),
    ).records + parse(
        "fire/v1/510104/P-1/event",
        orjson.dumps({"ts": NOW, "kind": "panel", "event": "fire", "zone": 'Hall "A", 3F\\east', "point": 7}),
    ).records + parse(
        "fire/v1/510104/P-1/telemetry",
        orjson.dumps([{"ts": NOW, "kind": "panel", "loop": 1, "point": 7, "m": {"temp_c": 61.5}},
                      {"ts": NOW, "kind": "panel", "loop": 1, "point": 8, "m": {"temp_c": 22.0}}]),
    ).records
    async with Influx(settings.influx) as influx:
        await influx.write("\n".join(record_line(r, site="No. 1 Middle School") for r in records))
        (e,) = await influx.query("SELECT * FROM electrical WHERE device_id = $d", {"d": "E-7"})
        (p,) = await influx.query("SELECT * FROM panel_event WHERE site = $s", {"s": "No. 1 Middle School"})
        points = await influx.query('SELECT "temp_c" FROM panel_analog GROUP BY "loop", "point"')
    row = e.rows()[0]
    assert row["time"] == NOW and row["residual_ma"] == 123.5 and row["temp1_c"] == 41.0 and row["seq"] == 9
    assert row["district"] == "510104" and row["site"] == "No. 1 Middle School"
    assert p.rows()[0]["zone"] == 'Hall "A", 3F\\east' and p.rows()[0]["point"] == 7
    # a panel's points at the same moment are two series, not one point overwritten
    assert {(a.tags["loop"], a.tags["point"]): a.rows()[0]["temp_c"] for a in points} == {("1", "7"): 61.5,
                                                                                        ("1", "8"): 22.0}


def test_a_bad_setting_names_the_key_and_exits_2(tmp_path) -> None:
    cfg = tmp_path / "firewatch.toml"
    cfg.write_text('[influx]\napi = "v9"\n[mqtt]\nport = 70000\n')
    out = subprocess.run(
        [sys.executable, "-m", "firewatch", "--config", str(cfg), "config"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 2
    assert "influx.api" in out.stderr and "mqtt.port" in out.stderr
    assert "Traceback" not in out.stderr


def test_the_payload_size_setting_cannot_exceed_what_parsing_accepts() -> None:
    """A setting above the parser's limit would promise messages the parser then rejects."""
    from firewatch.contract.payload import MAX_PAYLOAD_BYTES
    from firewatch.contract.settings import IngestSettings

    assert IngestSettings().max_payload_bytes == MAX_PAYLOAD_BYTES
    IngestSettings(max_payload_bytes=MAX_PAYLOAD_BYTES)
    with pytest.raises(ValueError, match="max_payload_bytes"):
        IngestSettings(max_payload_bytes=MAX_PAYLOAD_BYTES + 1)
    body = b"[" + b" " * (MAX_PAYLOAD_BYTES - 2) + b"]"
    assert [r.reason for r in parse(T, body).rejections] != [Reason.OVERSIZED]
    assert [r.reason for r in parse(T, body + b" ").rejections] == [Reason.OVERSIZED]


def test_an_environment_variable_overrides_the_file(tmp_path) -> None:
    cfg = tmp_path / "firewatch.toml"
    cfg.write_text('[influx]\ndatabase = "fromfile"\n')
    out = subprocess.run(
        [sys.executable, "-m", "firewatch", "--config", str(cfg), "config"],
        check=False,
        capture_output=True,
        text=True,
        env={"FIREWATCH_INFLUX__DATABASE": "fromenv", "PATH": ""},
    )
    assert out.returncode == 0, out.stderr
    assert orjson.loads(out.stdout)["influx"]["database"] == "fromenv"
