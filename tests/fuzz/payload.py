"""An atheris fuzz target for the payload parser and the line protocol behind it.

`python -m tests.fuzz.payload -max_total_time=5` fuzzes for five seconds; any exception
out of `parse`, or a record whose line InfluxDB could not read, is a finding.
tests/test_payload_hostile.py runs it for a bounded time in CI.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from firewatch.contract.lineproto import record_line
    from firewatch.contract.payload import parse

NOW = 1_763_800_000_000
TOPICS = [f"fire/v1/510104/D-1/{c}" for c in ("telemetry", "event", "status")] + ["fire/v1/x/y"]


def one_input(data: bytes) -> None:
    if not data:
        return
    topic = TOPICS[data[0] % len(TOPICS)]
    parsed = parse(topic, data[1:], NOW)
    for record in parsed.records:
        text = record_line(record, "site\\")
        if "\n" in text:
            raise AssertionError(f"a record became more than one line: {text!r}")
        text.encode()
    for rejection in parsed.rejections:
        assert rejection.detail, rejection


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
