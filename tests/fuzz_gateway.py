"""atheris fuzz target over the GB/T 26875.3 decoder and data units: any bytes, no exception.

Run bounded from tests/test_gateway_codec.py, or longer by hand:
`python tests/fuzz_gateway.py -max_total_time=600`.
"""

from __future__ import annotations

import sys

import atheris

from firewatch.contract.settings import Gb26875Variant  # not instrumented: pydantic takes a minute

with atheris.instrument_imports(include=["firewatch.gateway"]):
    from firewatch.gateway.adaptor import Adaptor, Target
    from firewatch.gateway.frame import Decoder, Frame, Rejection
    from firewatch.gateway.units import UnitError, decode_unit

VARIANTS = [Gb26875Variant(), Gb26875Variant(time="bcd", checksum="xor", max_unit_bytes=512,
                                             address_order="big")]


def one_input(data: bytes) -> None:
    from zoneinfo import ZoneInfo

    if not data:
        return
    variant = VARIANTS[data[0] & 1]
    d = Decoder(variant)
    target = Target("unassigned", "gb-000000000000", variant, ZoneInfo("Asia/Shanghai"))
    adaptor = Adaptor()
    cut = data[1] if len(data) > 1 else 0
    for chunk in (data[2 : 2 + cut], data[2 + cut :], b"@@" + data[2:], data):
        for item in d.feed(chunk):
            if isinstance(item, Rejection):
                assert item.reason and item.detail
                continue
            assert isinstance(item, Frame)
            try:
                unit = decode_unit(item.data, variant)
            except UnitError:
                continue
            adaptor.translate(unit, target)
    # A data unit straight from the fuzzer, without a frame around it.
    try:
        decode_unit(data[1:], variant)
    except UnitError:
        pass
    assert len(d.buffer) <= 30 + variant.max_unit_bytes


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
