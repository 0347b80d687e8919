"""The duty roster: loading YAML, who is on duty at a given moment in the center's time zone, handover."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import apprise
import pytest
from typer.testing import CliRunner

from firewatch.cli import app
from firewatch.contract.db import Store, open_store
from firewatch.notify.roster import RosterError, load_yaml, next_handover, on_duty, resolve_targets

SHANGHAI = ZoneInfo("Asia/Shanghai")
ROSTER = """
people:
  - {id: zhang, name: 张伟, channels: ["mailto://zhang@example.org"]}
  - {id: li, name: 李娜, channels: ["ntfy://ntfy.example.org/li"]}
  - {id: chen, name: 陈静}
  - {id: boss, name: 刘主任}
groups:
  - {id: duty, name: 值班员, members: [zhang, li, chen]}
  - {id: leaders, name: 值班领导, members: [boss]}
shifts:
  - {group: duty, person: zhang, days: [mon, tue, wed, thu, fri], start: "08:00", end: "20:00"}
  - {group: duty, person: li, days: "mon,tue,wed,thu,fri", start: "20:00", end: "08:00"}
  - {group: duty, person: chen, days: [sat, sun], start: "00:00", end: "24:00"}
"""


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp() * 1000)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    st = await open_store(f"sqlite:///{tmp_path}/fw.db")
    await load_yaml(st, ROSTER)
    yield st
    await st.aclose()


async def who(store: Store, when: str, group: str = "duty") -> list[str]:
    async with store.session() as s:
        return [p.id for p in (await on_duty(s, at(when), SHANGHAI)).groups[group]]


async def test_on_duty_follows_shifts_in_shanghai_time(store: Store) -> None:
    assert await who(store, "2026-11-23 09:00") == ["zhang"]  # Monday
    assert await who(store, "2026-11-23 20:00") == ["li"]
    assert await who(store, "2026-11-24 07:59") == ["li"]  # Tuesday morning, Monday's night shift
    assert await who(store, "2026-11-28 03:00") == ["li", "chen"]  # Saturday: Friday's night + Saturday
    assert await who(store, "2026-11-28 12:00") == ["chen"]
    assert await who(store, "2026-11-23 09:00", "leaders") == ["boss"], "a group without shifts is always on"


async def test_the_same_instant_is_read_in_the_configured_zone(store: Store) -> None:
    utc_9am = int(datetime.fromisoformat("2026-11-23T09:00:00+00:00").timestamp() * 1000)  # 17:00 Shanghai
    async with store.session() as s:
        shanghai = (await on_duty(s, utc_9am, SHANGHAI)).groups["duty"]
        london = (await on_duty(s, utc_9am, ZoneInfo("Europe/London"))).groups["duty"]
    assert [p.id for p in shanghai] == ["zhang"]
    assert [p.id for p in london] == ["zhang"]
    async with store.session() as s:
        shanghai = (await on_duty(s, utc_9am + 4 * 3_600_000, SHANGHAI)).groups["duty"]
    assert [p.id for p in shanghai] == ["li"], "21:00 in Shanghai is the night shift"


async def test_next_handover_says_when_and_who_takes_over(store: Store) -> None:
    async with store.session() as s:
        nxt = await next_handover(s, at("2026-11-23 15:30"), SHANGHAI)
    assert nxt is not None and nxt.at_ms == at("2026-11-23 20:00")
    assert [p.id for p in nxt.groups["duty"]] == ["li"]


async def test_targets_resolve_to_people_on_duty_once_each(store: Store) -> None:
    async with store.session() as s:
        people = await resolve_targets(s, ["group:duty", "person:zhang", "group:leaders", "person:nobody"],
                                       at("2026-11-23 10:00"), SHANGHAI)
    assert [p.id for p in people] == ["zhang", "boss"]


async def test_a_gap_in_the_shifts_pages_the_whole_group_rather_than_nobody(store: Store) -> None:
    await load_yaml(store, ROSTER.replace('days: [sat, sun], start: "00:00", end: "24:00"',
                                          'days: [sat], start: "00:00", end: "24:00"'))
    async with store.session() as s:
        assert (await on_duty(s, at("2026-11-29 12:00"), SHANGHAI)).groups["duty"] == []  # Sunday
        people = await resolve_targets(s, ["group:duty"], at("2026-11-29 12:00"), SHANGHAI)
    assert sorted(p.id for p in people) == ["chen", "li", "zhang"]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("people: [{id: a}]\nshifts: [{group: duty, person: a, start: '08:00', end: '20:00'}]", "group 'duty'"),
        ("people: [{id: a}]\ngroups: [{id: g, members: [b]}]", "member 'b'"),
        ("people: [{id: a}]\ngroups: [{id: g}]\nshifts: [{group: g, person: a, start: '8am', end: '20:00'}]",
         "shifts.0.start"),
        ("people: [{id: a}]\ngroups: [{id: g}]\nshifts: [{group: g, person: a, days: [funday], start: '08:00', end: '09:00'}]",
         "funday"),
        ("people: [{id: 'a b'}]", "people.0.id"),
        ("people: [oops", "YAML"),
    ],
)
async def test_a_bad_roster_is_refused_naming_the_entry_and_keeps_the_old_one(
    store: Store, text: str, named: str
) -> None:
    with pytest.raises(RosterError, match=named):
        await load_yaml(store, text)
    assert await who(store, "2026-11-23 09:00") == ["zhang"]


def test_cli_loads_a_roster_file_and_tells_who_is_on_duty(tmp_path: Path) -> None:
    cfg = tmp_path / "firewatch.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path}/cli.db"\n[up]\ndata_dir = "{tmp_path}/data"\n')
    roster = tmp_path / "roster.yaml"
    roster.write_text(ROSTER.replace('start: "08:00", end: "20:00"', 'start: "00:00", end: "24:00"')
                      .replace("[mon, tue, wed, thu, fri]", "[mon, tue, wed, thu, fri, sat, sun]"), encoding="utf-8")
    runner = CliRunner()
    loaded = runner.invoke(app, ["--config", str(cfg), "roster", "load", str(roster)])
    assert loaded.exit_code == 0, loaded.output
    assert "4 people" in loaded.output
    shown = runner.invoke(app, ["--config", str(cfg), "roster", "show"])
    assert shown.exit_code == 0 and "name: 张伟" in shown.output
    roster.write_text(shown.output, encoding="utf-8")
    again = runner.invoke(app, ["--config", str(cfg), "roster", "load", str(roster)])
    assert again.exit_code == 0 and "4 people, 2 groups, 3 shifts" in again.output, "show gives what load takes"
    now = runner.invoke(app, ["--config", str(cfg), "roster", "now"])
    assert now.exit_code == 0, now.output
    assert "张伟" in now.output and "刘主任" in now.output

    roster.write_text("people: [{id: a}]\ngroups: [{id: g, members: [b]}]\n")
    bad = runner.invoke(app, ["--config", str(cfg), "roster", "load", str(roster)])
    assert bad.exit_code == 2 and "member 'b'" in bad.output


async def test_the_example_roster_in_the_docs_loads(tmp_path: Path) -> None:
    st = await open_store(f"sqlite:///{tmp_path}/example.db")
    try:
        roster = await load_yaml(st, Path(__file__).parent.parent / "docs" / "examples" / "roster.yaml")
        assert {g.id for g in roster.groups} == {"duty", "leaders"}
        urls = [u for p in roster.people for u in p.channels if not u.startswith("gateway://")]
        assert urls and all(apprise.Apprise.instantiate(u) for u in urls), "Apprise understands every example URL"
        async with st.session() as s:
            assert [p.id for p in (await on_duty(s, at("2026-11-28 12:00"), SHANGHAI)).groups["duty"]] == ["chen"]
    finally:
        await st.aclose()


def test_cli_test_sends_on_each_channel_and_says_which_failed(tmp_path: Path) -> None:
    from tests.notify_servers import HttpSink

    sink = HttpSink(status={"/broken": 500})
    sink.start()
    try:
        cfg = tmp_path / "firewatch.toml"
        cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path}/cli.db"\n[up]\ndata_dir = "{tmp_path}/data"\n')
        roster = tmp_path / "roster.yaml"
        roster.write_text(f'people: [{{id: zhang, channels: ["webhook+{sink.base}/ok", '
                          f'"webhook+{sink.base}/broken"]}}]\n')
        runner = CliRunner()
        assert runner.invoke(app, ["--config", str(cfg), "roster", "load", str(roster)]).exit_code == 0
        result = runner.invoke(app, ["--config", str(cfg), "roster", "test", "zhang"])
        assert result.exit_code == 1
        assert "ok  webhook+http://127.0.0.1" in result.output and "FAIL" in result.output
        assert "500" in result.output
        assert sorted(r.path for r in sink.requests) == ["/broken", "/ok"]
        missing = runner.invoke(app, ["--config", str(cfg), "roster", "test", "nobody"])
        assert missing.exit_code == 2
    finally:
        sink.stop()
