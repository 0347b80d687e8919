"""An atheris fuzz target for the unit registry's CSV reader (`POST /api/v1/units/import`).

`python -m tests.fuzz.unit_csv -max_total_time=5` fuzzes for five seconds. The reader may
refuse a whole file (ValueError, OverflowError, with a reason) or reject rows (each with
its line and a reason); anything else out of it, or a row taken with a credit code whose
check character is wrong, is a finding. tests/test_supervision.py runs it bounded in CI.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["firewatch.supervision"]):
    from firewatch.supervision import validate
    from firewatch.supervision.registry import read_csv

HEADER = b"name,credit_code,category,district,sites,company_credit_code,manager_phone\n"


def one_input(data: bytes) -> None:
    raw = HEADER + data[1:] if data[:1] == b"h" else data
    try:
        good, bad = read_csv(raw)
    except (ValueError, OverflowError) as exc:
        assert str(exc), "a refused file says why"
        return
    for line, unit, _company in good:
        assert line >= 2, line
        validate(unit.credit_code)
    for line, _given, reason in bad:
        assert line >= 2 and reason, (line, reason)


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
