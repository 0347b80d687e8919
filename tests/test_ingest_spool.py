"""The spool on its own: what a crash leaves behind, and the order of replay."""

from __future__ import annotations

from pathlib import Path

from firewatch.ingest.spool import Spool


def test_segments_survive_a_restart_in_order_and_a_torn_write_is_discarded(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(b"a v=1 1\na v=2 2", 2)
    spool.append(b"a v=3 3", 1)
    (tmp_path / "000000000002-5.lp.tmp").write_bytes(b"a v=4 4\na v=")  # power cut mid-write

    reopened = Spool(tmp_path)
    assert (len(reopened), reopened.records, reopened.bytes) == (2, 3, 22)
    assert not list(tmp_path.glob("*.tmp")), "never acknowledged, so the broker still has it"
    first = reopened.oldest()
    assert first is not None and first.read() == b"a v=1 1\na v=2 2"
    reopened.remove(first)
    reopened.append(b"a v=5 5", 1)
    order = []
    while (segment := reopened.oldest()) is not None:
        order.append(segment.read())
        reopened.remove(segment)
    assert order == [b"a v=3 3", b"a v=5 5"]
    assert (reopened.records, reopened.bytes, list(tmp_path.iterdir())) == (0, 0, [])
