"""GB/T 26875.3 codec: a frame assembled byte by byte from the standard's layout, round trips of
every data-unit type, the vendor variants, and hostile bytes (hypothesis and a bounded atheris run)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firewatch.contract.settings import Gb26875Variant
from firewatch.gateway.adaptor import Adaptor, Target, loop_point
from firewatch.gateway.frame import Command, Decoder, Frame, Reason, Rejection, deny, encode
from firewatch.gateway.units import (
    Analog,
    ClockSync,
    ComponentConfig,
    ComponentState,
    DataUnit,
    DeviceCommand,
    DeviceConfig,
    DeviceOperation,
    DeviceStatus,
    DeviceTime,
    DeviceVersion,
    ReadComponent,
    ReadSystem,
    SoftwareVersion,
    State,
    SystemConfig,
    SystemOperation,
    SystemState,
    SystemTime,
    UnitError,
    decode_unit,
    encode_unit,
)

T = datetime(2026, 12, 1, 21, 5, 9)
DEVICE = "0000000a0b0c"
CENTER = "000000000001"


def test_a_frame_assembled_from_the_standards_layout_decodes() -> None:
    """The worked example: a send of one component state (fire, loop 1 point 23, 3F east smoke)."""
    description = "三楼东 烟感".encode("gb18030").ljust(31, b"\0")
    unit = (bytes([2, 1])  # type 2 component state, one object
            + bytes([1, 1, 40]) + bytes([23, 0, 1, 0])  # system type/address, smoke detector, address
            + bytes([0x03, 0x00]) + description  # running + fire
            + bytes([9, 5, 21, 1, 12, 26]))  # 2026-12-01 21:05:09: s, min, h, d, mon, yy
    body = (bytes([0x34, 0x12])  # serial 0x1234, little-endian
            + bytes([1, 1])  # version 1.1
            + bytes([9, 5, 21, 1, 12, 26])
            + bytes([0x0C, 0x0B, 0x0A, 0, 0, 0])  # source 00000a0b0c, least significant first
            + bytes([1, 0, 0, 0, 0, 0])
            + len(unit).to_bytes(2, "little") + bytes([Command.SEND]) + unit)
    raw = b"@@" + body + bytes([sum(body) % 256]) + b"##"

    (frame,) = Decoder().feed(raw)
    assert isinstance(frame, Frame)
    assert (frame.serial, frame.command, frame.source, frame.destination, frame.time) == (
        0x1234, Command.SEND, DEVICE, CENTER, T)
    (obj,) = decode_unit(frame.data).objects
    assert obj == ComponentState(1, 1, 40, (1 << 16) | 23, 0x0003, "三楼东 烟感", T)
    assert loop_point(obj.component_address, Gb26875Variant()) == (1, 23)
    assert encode(frame) == raw


ALL_UNITS = [
    DataUnit(1, [SystemState(1, 1, int(State.RUNNING | State.FIRE), T)]),
    DataUnit(2, [ComponentState(1, 1, 40, 0x00010017, 3, "3F east", T), ComponentState(1, 2, 30, 9, 1, "", T)]),
    DataUnit(3, [Analog(1, 1, 16, 5, 3, -125, T)]),
    DataUnit(4, [SystemOperation(1, 1, 0x01, 7, T)]),
    DataUnit(5, [SoftwareVersion(1, 1, 2, 3)]),
    DataUnit(6, [SystemConfig(1, 1, "海湾 GST200 控制器")]),
    DataUnit(7, [ComponentConfig(1, 1, 40, 12, "地下车库 B2")]),
    DataUnit(8, [SystemTime(1, 1, T)]),
    DataUnit(21, [DeviceStatus(0x01, T)]),
    DataUnit(24, [DeviceOperation(0x20, 1, T)]),
    DataUnit(25, [DeviceVersion(1, 4)]),
    DataUnit(26, [DeviceConfig("用户信息传输装置")]),
    DataUnit(28, [DeviceTime(T)]),
    *[DataUnit(t, [ReadSystem(1, 1)]) for t in (61, 64, 65, 66, 68)],
    *[DataUnit(t, [ReadComponent(1, 1, 23)]) for t in (62, 63, 67)],
    *[DataUnit(t, [DeviceCommand()]) for t in (81, 84, 85, 86, 88, 89, 91)],
    DataUnit(90, [ClockSync(T)]),
]


@pytest.mark.parametrize("unit", ALL_UNITS, ids=lambda u: f"type{u.type}")
@pytest.mark.parametrize("variant", [Gb26875Variant(), Gb26875Variant(time="bcd", checksum="xor",
                                                                       address_order="big")], ids=["std", "vendor"])
def test_every_data_unit_type_round_trips(unit: DataUnit, variant: Gb26875Variant) -> None:
    frame = Frame(7, Command.SEND, DEVICE, CENTER, encode_unit(unit, variant), T)
    (back,) = Decoder(variant).feed(encode(frame, variant))
    assert back == frame
    assert decode_unit(back.data, variant) == unit


def test_vendor_variants_change_the_bytes_and_a_mismatch_is_refused() -> None:
    frame = Frame(1, Command.SEND, DEVICE, CENTER, b"", T)
    std, bcd = encode(frame), encode(frame, Gb26875Variant(time="bcd"))
    assert std[6:12] == bytes([9, 5, 21, 1, 12, 26]) and bcd[6:12] == bytes([0x09, 0x05, 0x21, 0x01, 0x12, 0x26])
    assert encode(frame, Gb26875Variant(address_order="big"))[12:18] == bytes.fromhex(DEVICE)
    xor = encode(frame, Gb26875Variant(checksum="xor"))
    (rej,) = Decoder().feed(xor)
    assert isinstance(rej, Rejection) and rej.reason == Reason.BAD_CHECKSUM and rej.serial == 1
    small = Gb26875Variant(max_unit_bytes=512)
    big = Frame(2, Command.SEND, DEVICE, CENTER, encode_unit(DataUnit(2, [ComponentState(1, 1, 40, i, 3, "", T)
                                                                          for i in range(12)])), T)
    assert Decoder(small).feed(encode(big))[0].reason == Reason.BAD_LENGTH
    with pytest.raises(ValueError, match="512"):
        encode(big, small)


def test_every_kind_of_bad_frame_is_refused_with_its_reason_and_the_stream_goes_on() -> None:
    good = encode(Frame(5, Command.SEND, DEVICE, CENTER, b"", T))
    bad_end = good[:-2] + b"#!"
    bad_sum = good[:-3] + bytes([good[-3] ^ 0xFF]) + b"##"
    unknown = bytearray(good)
    unknown[26] = 99
    unknown[-3] = sum(unknown[2:-3]) % 256
    too_long = good[:24] + (2000).to_bytes(2, "little") + good[26:]
    stream = b"junk" + bad_end + bad_sum + bytes(unknown) + too_long + good
    d = Decoder()
    items = [i for n in range(0, len(stream), 7) for i in d.feed(stream[n : n + 7])]
    reasons = [i.reason for i in items if isinstance(i, Rejection)]
    assert Reason.SKIPPED in reasons
    for r in (Reason.BAD_END, Reason.BAD_CHECKSUM, Reason.UNKNOWN_COMMAND, Reason.BAD_LENGTH):
        assert r in reasons
    frames = [i for i in items if isinstance(i, Frame)]
    assert frames and frames[-1].serial == 5
    denial = deny(next(i for i in items if isinstance(i, Rejection) and i.reason == Reason.BAD_CHECKSUM), CENTER)
    (answer,) = Decoder().feed(denial)
    assert answer.command == Command.DENY and answer.serial == 5 and answer.destination == DEVICE


def test_a_data_unit_that_does_not_add_up_is_refused() -> None:
    unit = encode_unit(ALL_UNITS[1])
    with pytest.raises(UnitError) as e:
        decode_unit(unit[:-3])
    assert e.value.reason == Reason.BAD_DATA_UNIT
    with pytest.raises(UnitError) as e:
        decode_unit(bytes([77, 1, 0]))
    assert e.value.reason == Reason.UNKNOWN_TYPE
    # Undecodable description bytes are replaced, never fatal.
    raw = bytearray(encode_unit(DataUnit(2, [ComponentState(1, 1, 40, 1, 3, "", T)])))
    raw[13:15] = b"\xff\xff"
    assert decode_unit(bytes(raw)).objects[0].state == 3


def test_state_bits_become_panel_events_and_clears_follow_the_confirmed_state() -> None:
    from zoneinfo import ZoneInfo

    target = Target("510104", "P-1", Gb26875Variant(), ZoneInfo("Asia/Shanghai"))
    a = Adaptor()

    def events(state: int) -> list[str]:
        import orjson

        tr = a.translate(DataUnit(2, [ComponentState(1, 1, 40, 0x00010017, state, "3F east", T)]), target)
        a.confirm(tr)
        return [orjson.loads(m.payload)["event"] for m in tr.messages]

    assert events(int(State.RUNNING | State.FIRE | State.STARTED)) == ["fire", "start"]
    assert events(int(State.RUNNING | State.FAULT | State.SHIELDED)) == ["fault", "shield"]
    assert events(int(State.RUNNING)) == ["fault_cleared", "unshield"]
    assert events(int(State.RUNNING | State.MAIN_POWER_FAULT)) == ["main_power_fault"]
    assert events(int(State.RUNNING)) == ["power_restored"]
    assert events(0) == ["test"]
    # Unconfirmed (the broker was away): the same report gives the same events again.
    tr = a.translate(DataUnit(2, [ComponentState(1, 1, 40, 1, int(State.RUNNING | State.FAULT), "", T)]), target)
    again = a.translate(DataUnit(2, [ComponentState(1, 1, 40, 1, int(State.RUNNING), "", T)]), target)
    assert len(tr.messages) == 1 and again.messages == []


ANALOG_OBJECT = st.builds(
    Analog, st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), st.integers(0, 2**32 - 1),
    st.integers(0, 255), st.integers(-(2**15), 2**15 - 1), st.just(T),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ANALOG_OBJECT, min_size=1, max_size=12, unique_by=lambda o: (o.component_address, o.analog_type)),
       st.sampled_from(["bcd", "binary"]))
def test_analog_values_become_per_point_telemetry_scaled_or_rejected_with_a_reason(
        objects: list[Analog], time_code: str) -> None:
    """Every analog value of a frame is, at its loop and point, the raw value in its type's unit and
    resolution; one out of the type's range is refused by the wire contract (out_of_range, naming
    the metric) like any reading; a type outside the standard's table is counted, never published."""
    from zoneinfo import ZoneInfo

    from firewatch.contract.kinds import ANALOG_TYPES
    from firewatch.contract.payload import Reading, Reason, parse

    variant = Gb26875Variant(time=time_code)
    unit = decode_unit(encode_unit(DataUnit(3, list(objects)), variant), variant)
    tr = Adaptor().translate(unit, Target("510104", "P-1", variant, ZoneInfo("Asia/Shanghai")))
    stored: dict[tuple[int | None, int | None, str], float] = {}
    refused: list[str] = []
    for m in tr.messages:
        assert m.topic == "fire/v1/510104/P-1/telemetry"
        parsed = parse(m.topic, m.payload)
        for r in parsed.records:
            assert isinstance(r, Reading) and r.kind == "panel"
            stored |= {(r.loop, r.point, name): v for name, v in r.metrics.items()}
        for rej in parsed.rejections:
            assert rej.reason == Reason.OUT_OF_RANGE, rej
            refused.append(rej.detail.split("=", 1)[0])
    expected: dict[tuple[int | None, int | None, str], float] = {}
    out_of_range: list[str] = []
    for o in objects:
        analog = ANALOG_TYPES.get(o.analog_type)
        if analog is None:
            continue
        value = o.value / 10**analog.decimals
        if analog.metric.low <= value <= analog.metric.high:
            expected[(*loop_point(o.component_address, variant), analog.metric.name)] = value
        else:
            out_of_range.append(analog.metric.name)
    assert stored == expected
    assert sorted(refused) == sorted(out_of_range)
    assert sorted(tr.unknown_analog) == sorted(o.analog_type for o in objects if o.analog_type not in ANALOG_TYPES)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=300), max_size=8), st.sampled_from(["sum", "xor"]), st.booleans())
def test_arbitrary_bytes_never_crash_the_decoder(chunks: list[bytes], method: str, seed_frame: bool) -> None:
    variant = Gb26875Variant(checksum=method, max_unit_bytes=512)
    d = Decoder(variant)
    fed = 0
    prefix = encode(Frame(9, Command.SEND, DEVICE, CENTER, encode_unit(ALL_UNITS[0], variant), T), variant)
    for chunk in ([prefix] if seed_frame else []) + chunks:
        fed += len(chunk)
        for item in d.feed(chunk):
            assert isinstance(item, Frame | Rejection)
            if isinstance(item, Rejection):
                assert isinstance(item.reason, Reason) and item.detail
            else:
                try:
                    decode_unit(item.data, variant)
                except UnitError as exc:
                    assert isinstance(exc.reason, Reason)
    # Memory stays bounded by one frame, whatever was sent.
    assert len(d.buffer) <= 30 + variant.max_unit_bytes


def test_a_bounded_atheris_fuzz_run_finds_no_crash(tmp_path: Path) -> None:
    target = Path(__file__).with_name("fuzz_gateway.py")
    run = subprocess.run([sys.executable, str(target), "-atheris_runs=20000", "-max_len=1200", "-rss_limit_mb=1024"],
                         check=False, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Done 20000 in" in run.stderr
