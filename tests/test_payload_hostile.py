"""What a careless or hostile device can send, and what the parser makes of it.

`parse()` must never raise, must keep what is good in a message and must hand on
only values every store downstream accepts: text cut to its column and free of
control characters, integers InfluxDB and PostgreSQL can hold, and line protocol
InfluxDB 1.x reads back as it was meant (tests/test_ingest_hostile.py writes it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firewatch.contract.kinds import COMPONENT_CHARS, FW_CHARS, SPECS, ZONE_CHARS
from firewatch.contract.lineproto import record_line, tag
from firewatch.contract.payload import DeviceStatus, PanelEvent, Reading, Reason, parse

NOW = 1_763_800_000_000
T = "fire/v1/510104/E-1/telemetry"
EV = "fire/v1/510104/P-1/event"
ST = "fire/v1/510104/P-1/status"
INT64_MAX = 2**63 - 1


def test_a_deeply_nested_message_is_refused_not_raised() -> None:
    for topic in (T, EV, ST):
        for payload in (
            b"[" * 3000 + b"]" * 3000,
            b'{"kind":"electrical","m":{"residual_ma":' + b"[" * 3000 + b"]" * 3000 + b"}}",
            b'[{"kind":"electrical","m":{"residual_ma":1}},' + b"[" * 3000 + b"]" * 3000 + b"]",
            b'{"kind":' + b"{\"a\":" * 3000 + b"1" + b"}" * 3000 + b"}",
        ):
            p = parse(topic, payload, NOW)
            assert p.records == [] and p.rejections, (topic, payload[:40])
            assert {r.reason for r in p.rejections} <= {Reason.BAD_JSON, Reason.BAD_SCHEMA}


def test_a_broken_probe_costs_only_its_own_metric() -> None:
    doc = {"ts": NOW, "seq": 9, "kind": "electrical",
           "m": {"residual_ma": 420.0, "temp1_c": 35.0, "temp4_c": -500.0, "humidity_pct": 40, "temp2_c": "err"}}
    p = parse(T, orjson.dumps(doc), NOW)
    (r,) = p.records
    assert isinstance(r, Reading) and r.metrics == {"residual_ma": 420.0, "temp1_c": 35.0} and r.seq == 9
    reasons = sorted((x.reason, x.kind) for x in p.rejections)
    assert reasons == [(Reason.BAD_SCHEMA, "electrical"), (Reason.OUT_OF_RANGE, "electrical"),
                       (Reason.UNKNOWN_METRIC, "electrical")]
    assert any("temp4_c=-500.0" in x.detail for x in p.rejections)
    assert any("humidity_pct" in x.detail for x in p.rejections)
    assert any("temp2_c" in x.detail for x in p.rejections)


def test_a_reading_with_no_good_metric_left_is_no_record() -> None:
    p = parse(T, orjson.dumps({"ts": NOW, "kind": "electrical", "m": {"temp4_c": -500}}), NOW)
    assert p.records == [] and [r.reason for r in p.rejections] == [Reason.OUT_OF_RANGE]


def test_integers_beyond_int64_cost_only_their_element() -> None:
    good = {"ts": NOW, "seq": INT64_MAX, "kind": "electrical", "m": {"residual_ma": 1}}
    bad = {"ts": NOW, "seq": 2**64 - 1, "kind": "electrical", "m": {"residual_ma": 2}}
    p = parse(T, orjson.dumps([good, bad, good]), NOW)
    assert [r.seq for r in p.records] == [INT64_MAX, INT64_MAX]  # type: ignore[union-attr]
    assert [(r.reason, r.kind) for r in p.rejections] == [(Reason.BAD_SCHEMA, "electrical")]
    assert "9223372036854775807" in p.rejections[0].detail
    for field in ("seq", "loop", "point"):
        p = parse(EV, orjson.dumps({"ts": NOW, "kind": "panel", "event": "fire", field: 2**63}), NOW)
        assert p.records == [] and [r.reason for r in p.rejections] == [Reason.BAD_SCHEMA]
        p = parse(EV, orjson.dumps({"ts": NOW, "kind": "panel", "event": "fire", field: -(2**63)}), NOW)
        assert len(p.records) == 1


def test_device_text_is_cut_to_its_column_and_loses_control_characters() -> None:
    zone = "3F\x00 east\r\nwing\u202e" + "z" * 500
    p = parse(EV, orjson.dumps({"ts": NOW, "kind": "panel", "event": "fire", "zone": zone,
                                "component": "smoke\n" * 40}), NOW)
    (e,) = p.records
    assert isinstance(e, PanelEvent)
    assert e.zone is not None and e.zone.startswith("3F  east wing z") and len(e.zone) == ZONE_CHARS
    assert e.component is not None and len(e.component) <= COMPONENT_CHARS and "\n" not in e.component
    p = parse(ST, orjson.dumps({"ts": NOW, "online": True, "fw": "v2\x00" + "9" * 100}), NOW)
    (s,) = p.records
    assert isinstance(s, DeviceStatus) and s.fw is not None and len(s.fw) == FW_CHARS
    assert "\x00" not in s.fw


def test_a_rejection_repeats_a_huge_string_only_briefly() -> None:
    p = parse(T, orjson.dumps({"kind": "x" * 100_000, "m": {"a": 1}}), NOW)
    assert [r.reason for r in p.rejections] == [Reason.UNKNOWN_KIND]
    assert len(p.rejections[0].detail) < 300


@pytest.mark.parametrize("site", ["mall\\", "a\\ b", "c\\,d", "e=f,g h", "line\nbreak", "\\"])
def test_a_tag_value_never_runs_into_the_next(site: str) -> None:
    (r,) = parse(T, orjson.dumps({"ts": NOW, "kind": "electrical", "m": {"residual_ma": 1}}), NOW).records
    text = record_line(r, site)
    series, fields, ts = _split(text)
    assert series.endswith(",site=" + tag(site)) and fields == "residual_ma=1.0" and ts == str(NOW)
    assert not tag(site).endswith("\\") or tag(site).endswith(("\\ ", "\\,", "\\="))


def _split(line: str) -> tuple[str, str, str]:
    """Split a line at its unescaped spaces, as InfluxDB 1.x's scanner does (it looks one byte back)."""
    parts, start = [], 0
    for i, ch in enumerate(line):
        if ch == " " and (i == 0 or line[i - 1] != "\\"):
            parts.append(line[start:i])
            start = i + 1
    parts.append(line[start:])
    assert len(parts) == 3, parts
    return parts[0], parts[1], parts[2]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_names = st.sampled_from(sorted({m for s in SPECS.values() for m in s.metrics}) + ["kind", "m", "x"])
_reading = st.fixed_dictionaries(
    {"kind": st.sampled_from([*SPECS, "boat"]),
     "m": st.dictionaries(_names, st.floats() | st.integers() | st.booleans() | st.text(max_size=3), max_size=5)},
    optional={"ts": st.integers(), "seq": st.integers(), "event": st.text(max_size=8), "zone": st.text(),
              "loop": st.integers(), "online": st.booleans(), "fw": st.text()},
)
_topics = st.one_of(
    st.sampled_from([T, EV, ST, "fire/v1/510104/E-1", "fire/v1/_alerts/x/y"]),
    st.text(max_size=80),
)


def _check(topic: str, payload: bytes) -> None:
    parsed = parse(topic, payload, NOW)
    for record in parsed.records:
        text = record_line(record, "mall\\")
        assert "\n" not in text
        _split(text)
        text.encode()
        for value in (getattr(record, "seq", None), getattr(record, "loop", None), getattr(record, "point", None)):
            assert value is None or -(2**63) <= value <= INT64_MAX
    for rejection in parsed.rejections:
        assert isinstance(rejection.reason, Reason) and rejection.detail


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=_topics, payload=st.binary(max_size=512))
def test_parse_never_raises_on_arbitrary_bytes(topic: str, payload: bytes) -> None:
    _check(topic, payload)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=_topics, doc=_json | _reading | st.lists(_reading | _json, max_size=5))
def test_parse_never_raises_on_arbitrary_json(topic: str, doc: object) -> None:
    try:
        payload = orjson.dumps(doc)
    except (TypeError, orjson.JSONEncodeError):  # integers orjson cannot write
        payload = repr(doc).encode()
    _check(topic, payload)


def test_the_payload_fuzz_target_finds_nothing_in_a_bounded_run(tmp_path: Path) -> None:
    """Coverage-guided fuzzing (atheris) of parse and the line protocol for a few seconds."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "reading").write_bytes(b"\x00" + orjson.dumps(
        [{"ts": NOW, "seq": 1, "kind": "electrical", "m": {"residual_ma": 1, "temp4_c": -500}}]))
    (corpus / "event").write_bytes(b"\x01" + orjson.dumps(
        {"ts": NOW, "kind": "panel", "event": "fire", "loop": 1, "point": 2, "zone": "3F", "component": "x"}))
    (corpus / "status").write_bytes(b"\x02" + orjson.dumps({"online": True, "fw": "1.0"}))
    seconds = os.environ.get("FIREWATCH_FUZZ_SECONDS", "5")
    result = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.payload", f"-max_total_time={seconds}", "-rss_limit_mb=1024",
         f"-artifact_prefix={tmp_path}/", str(corpus)],
        check=False, capture_output=True, text=True, timeout=int(seconds) + 60, cwd=Path(__file__).parent.parent,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done" in result.stderr and not list(tmp_path.glob("crash-*"))


def test_a_kind_that_is_not_a_string_is_an_unknown_kind() -> None:
    """Found by the fuzz target: an object as `kind` in a message that fails the schema."""
    p = parse(T, b'[{"ts":1763800000000,"3eq":1,"kind":{"residual_ma":1}}]', NOW)
    assert p.records == [] and [r.reason for r in p.rejections] == [Reason.UNKNOWN_KIND]
