"""`firewatch eval`: a labelled simulator scenario through the real pipeline, scored against its truth.

An evaluation file is a simulator scenario (the `incidents` list, see
simulators/scenario.py) plus the city it runs on:

    fleet: {devices: 90, seed: 11, districts: 2}      # simulators.Fleet.build arguments
    duration: 1d                                       # event time
    ends: 2026-06-01T00:00:00+08:00                    # optional; default ENDS
    commissioned: 1d                                   # optional; healthy history before the window
    chaos: {malformed: 0.002, duplicates: 0.01}        # simulators.Chaos, optional
    alerting: {...}                                    # [alerting] settings, optional
    incidents: [...]

It starts its own Mosquitto and InfluxDB (firewatch/services.py), registers the
fleet in a fresh SQLite store, runs ingest and the alerting service (event
clock) on the broker, publishes the scenario flat out, and scores the alerts:

- per incident type: recall (an alert of a rule that names the condition, on the
  device, within the incident), precision (alerts of those rules that match no
  incident count against it), and detection delay in event time from the onset:
  the first reading that meets the standard's condition (70 °C, 300 mA, 14
  half-cycles, < 0.10 MPa, ...), or the incident start for events and early signs;
- false alerts per device-day on the devices without any incident (every false
  alert of the run, `commissioned` history included, over the window's days);
- panel fire ranking: the share of real fires and of false alarms ever marked probable.

Targets (issue 3) are checked and listed; the exit code is 1 when one is missed.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import yaml
from sqlalchemy import select

from firewatch.alerting.service import AlertingService
from firewatch.contract.db import Alert, AuditEntry
from firewatch.contract.influx import Influx
from firewatch.contract.settings import Settings, SettingsError
from firewatch.contract.topics import parse_topic

MIN = 60_000
ENDS = "2026-06-01T00:00:00+08:00"
"""Where a scenario's event time ends unless it says `ends:`. The simulator's load follows
the local clock, its pump tests the weekday and its noise the report number, so an end
that moved with the wall clock made the same seed a different city at every run; a fixed
end makes a scenario one run, repeatable anywhere (ingest and alerting take past event time)."""
STANDARD, EARLY = "standard", "early"
COMMISSIONED = "0s"
"""How long the fleet reports, healthy, before the scenario's window unless it says `commissioned:`. A city's
devices have been running: the learned detectors speak only after a whole day of a device (docs/alerting.md),
so a scenario that scores them in its first hours says when its devices were commissioned."""


@dataclass(frozen=True, slots=True)
class Expect:
    rules: frozenset[str]
    group: str
    onset: str = ""
    """The standard's condition on a telemetry payload that starts the delay clock; '' = incident start."""
    response_s: float | None = None
    """The standard's response time, a target for the delay."""


def _e(rules: str, group: str, onset: str = "", response_s: float | None = None) -> Expect:
    return Expect(frozenset(rules.split()), group, onset, response_s)


PRESSURE = "pressure_low pressure_drop pressure_abnormal pressure_leak"
EXPECT: dict[str, Expect] = {
    "cable_overheat": _e("cable_temp temp_rise cable_temp_abnormal temp_imbalance", STANDARD, "temp", 40),
    "residual_creep": _e("residual_creep residual_abnormal residual_current", EARLY, "residual", 30),
    "arc_fault": _e("arc_fault", STANDARD, "arc", 30),
    "phase_imbalance": _e("current_imbalance temp_imbalance", EARLY),
    "pressure_drop": _e(PRESSURE, STANDARD, "pressure"),
    "slow_leak": _e(PRESSURE, EARLY),
    "knocked_over": _e(f"tilt water_flow {PRESSURE}", STANDARD, "tilt"),
    "water_theft": _e("cover_open water_flow", STANDARD, "cover"),
    "water_main": _e(PRESSURE, STANDARD, "pressure"),
    "freeze_risk": _e("freeze_risk", STANDARD, "freeze"),
    "pump_failure": _e("pressure_low pressure_drop pressure_abnormal vibration_high", EARLY),
    "panel_fire": _e("fire", STANDARD, "", 10),
    "false_alarm": _e("fire false_alarm_repeated", STANDARD, "", 10),
    "panel_fault": _e("fault fault_unrepaired", STANDARD),
    "silent": _e("offline", STANDARD),
    "fire_heat": _e("cable_temp temp_rise cable_temp_abnormal temp_imbalance residual_abnormal residual_current",
                    EARLY),
}
"""Incident types the simulator may add later and this table does not know are reported, not scored."""


def _onset(name: str, m: dict[str, Any]) -> bool:
    """Does one telemetry record meet the standard's condition of `name`?"""
    if name == "temp":
        return max((m.get(f"temp{i}_c", -99) for i in range(1, 5)), default=-99) >= 70
    if name == "residual":
        return m.get("residual_ma", 0) >= 300
    if name == "arc":
        return m.get("arc_count", 0) >= 14
    if name == "pressure":
        return m.get("pressure_mpa", 1) < 0.10
    if name == "tilt":
        return m.get("tilt_deg", 0) >= 30
    if name == "cover":
        return bool(m.get("cover_open"))
    if name == "freeze":
        return m.get("temp_c", 99) <= 2
    return False


class EvalError(ValueError):
    pass


@dataclass
class Run:
    incidents: list[dict[str, Any]]
    devices: dict[str, Any]
    start_ms: int
    end_ms: int
    alerts: list[Alert] = field(default_factory=list)
    probable_ever: set[int] = field(default_factory=set)
    onsets: dict[int, int] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)


def load_spec(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise EvalError(f"cannot read {path}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("incidents"), list):
        raise EvalError(f"{path}: an evaluation is a mapping with `fleet`, `duration` and `incidents`")
    return doc


def _ends(value: object) -> int:
    try:
        at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        raise EvalError(f"ends: {value!r} is not an ISO date and time (2026-06-01T00:00:00+08:00)") from None
    if at.tzinfo is None:
        raise EvalError(f"ends: {value!r} needs its UTC offset (+08:00)")
    end = int(at.timestamp() * 1000)
    if end > time.time() * 1000:
        raise EvalError(f"ends: {value!r} is in the future; a scenario replays past event time")
    return end // MIN * MIN


async def run(doc: dict[str, Any], workdir: Path, name: str = "") -> Run:
    """Publish the scenario through broker, ingest and alerting; collect the alerts."""
    from firewatch.bench import panels as panels_way
    from firewatch.ingest import Ingestor
    from firewatch.services import InfluxD, Mosquitto
    from firewatch.simulators import Chaos, Fleet, Pace, Scenario, generate, parse_duration, publish

    fleet = Fleet.build(**doc.get("fleet", {}))
    duration = parse_duration(doc.get("duration", "1d"))
    end = _ends(doc.get("ends", ENDS))
    start = end - duration
    try:
        history = parse_duration(doc.get("commissioned", COMMISSIONED))
    except ValueError as exc:
        raise EvalError(f"commissioned: {exc}") from None
    scenario = Scenario.from_dict(doc, name=name)
    incidents = scenario.resolve(fleet, start, end)
    truth = [i.truth() for i in incidents]
    chaos = Chaos(**doc["chaos"]) if doc.get("chaos") else None
    way = doc.get("panels", "mqtt")
    if way not in panels_way.WAYS:
        raise EvalError(f"panels: {way!r} must be one of {', '.join(panels_way.WAYS)}")
    out = Run(truth, {d.id: d for d in fleet.devices}, start, end)

    onset_of: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for n, t in enumerate(truth):
        if t["incident"] in EXPECT and EXPECT[t["incident"]].onset:
            onset_of[t["device_id"]].append((n, t))

    def watched(messages: Iterator[Any]) -> Iterator[Any]:
        for m in messages:
            if m.invalid is None and m.topic.endswith("/telemetry"):
                device = parse_topic(m.topic).device_id
                if device in onset_of:
                    doc_ = orjson.loads(m.payload)
                    for rec in doc_ if isinstance(doc_, list) else [doc_]:
                        for n, t in onset_of[device]:
                            ts = rec.get("ts", m.ts_ms)
                            if (n not in out.onsets and t["start_ms"] <= ts <= t["end_ms"]
                                    and _onset(EXPECT[t["incident"]].onset, rec.get("m", {}))):
                                out.onsets[n] = ts
            yield m

    with Mosquitto(workdir / "mosquitto") as broker, InfluxD(workdir / "influxd") as influxd:
        settings = Settings(
            mqtt={"host": "127.0.0.1", "port": broker.port, "client_id_prefix": "eval"},
            influx={"url": influxd.url, "database": "firewatch"},
            ingest={"spool_dir": workdir / "spool", "dead_letter_file": workdir / "dead.jsonl", "metrics_port": 0},
            store={"url": f"sqlite:///{workdir}/firewatch.db"},
            alerting={"lateness_s": 90, **doc.get("alerting", {}), "clock": "event"},
        )
        async with Influx(settings.influx) as influx:
            await influx.create_database()
            await fleet.register(settings.store.url)
            service = AlertingService(settings)
            await service.start()
            ingestor = Ingestor(settings)
            await ingestor.start()
            panels = panels_way.Panels()
            try:
                await asyncio.wait_for(service.ready.wait(), 30)
                await asyncio.wait_for(ingestor.ready.wait(), 30)
                panels = await panels_way.start(way, settings, fleet)
                t0 = time.monotonic()
                messages = generate(fleet, incidents=incidents, start_ms=start - history, end_ms=end, chaos=chaos)
                tally = await publish(settings, fleet, watched(messages), Pace(start - history, 0), connections=1,
                                      offline_at_end=False, elsewhere=panels)
                await panels.settle()
                published_s = time.monotonic() - t0
                # messages on malformed topics may not match the subscription at all
                expected = tally.published - tally.invalid.get("bad_topic", 0) + panels.published()
                while service.received < expected or not service.idle.is_set():
                    if time.monotonic() - t0 > 2 * published_s + 300:
                        raise EvalError(f"alerting received {service.received} of {expected} messages")
                    await asyncio.sleep(0.2)
                await asyncio.sleep(1)
                await service.idle.wait()
                assert service.pipeline is not None
                await service.pipeline.tick(end)
                out.figures = {
                    "messages": tally.published, "records": tally.records, "invalid": sum(tally.invalid.values()),
                    "duplicates": tally.duplicates, "wall_s": round(time.monotonic() - t0, 1),
                    "rejected": dict(service.rejected), "pipeline": dict(service.pipeline.counts),
                } | panels.figures()
            finally:
                await panels.stop()
                await ingestor.stop()
                store = service.store
                await service.stop()
            out.figures["stored_points"] = await _stored_points(influx)
    assert store is not None
    store = type(store)(settings.store.url)
    async with store.session() as s:
        out.alerts = list((await s.execute(select(Alert).order_by(Alert.id))).scalars())
        for e in (await s.execute(select(AuditEntry).where(AuditEntry.actor == "alerting"))).scalars():
            if e.detail.get("probable"):
                out.probable_ever.add(int(e.subject.split(":")[1]))
    await store.aclose()
    return out


async def _stored_points(influx: Influx) -> int:
    total = 0
    for m in ("electrical", "hydrant", "pump", "panel_event"):
        series = await influx.query(f'SELECT count("seq") FROM "{m}"')
        total += sum(int(v[1]) for s in series for v in s.values)
    return total


def _grace_ms(run: Run, device_id: str) -> int:
    d = run.devices.get(device_id)
    return 2 * (d.report_interval_s if d else 300) * 1000 + MIN


def score(run: Run) -> dict[str, Any]:
    """Recall, precision and delay per incident type; false alerts; fire ranking; the targets."""
    by_device: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for n, t in enumerate(run.incidents):
        by_device[t["device_id"]].append((n, t))

    def overlaps(a: Alert, t: dict[str, Any]) -> bool:
        end = a.resolved_ms or run.end_ms
        return a.started_ms <= t["end_ms"] + _grace_ms(run, t["device_id"]) and end >= t["start_ms"] - MIN

    matched: dict[int, list[int]] = defaultdict(list)
    """incident -> alerts on its device during it."""
    unmatched: list[Alert] = []
    for a in run.alerts:
        if not a.device_id:
            continue
        hits = [n for n, t in by_device.get(a.device_id, []) if overlaps(a, t)]
        for n in hits:
            matched[n].append(a.id)
        if not hits:
            unmatched.append(a)
    alerts = {a.id: a for a in run.alerts}

    types: dict[str, dict[str, Any]] = {}
    failures: list[str] = []
    for itype, exp in EXPECT.items():
        mine = [(n, t) for n, t in enumerate(run.incidents) if t["incident"] == itype]
        if not mine:
            continue
        found, delays, tp = 0, [], set()
        for n, t in mine:
            hits = [alerts[i] for i in matched[n] if alerts[i].rule in exp.rules]
            tp.update(a.id for a in hits)
            if not hits:
                continue
            found += 1
            onset = run.onsets.get(n, t["start_ms"])
            if itype == "silent":
                onset = t["start_ms"] + _grace_ms(run, t["device_id"]) - MIN
            new = [a.started_ms for a in hits if a.started_ms >= t["start_ms"] - MIN]  # not one already open
            if new:
                delays.append((min(new) - onset) / 1000)
        fp = [a for a in unmatched if a.rule in exp.rules]
        recall = found / len(mine)
        row: dict[str, Any] = {
            "incidents": len(mine), "detected": found, "recall": round(recall, 3),
            "precision": round(len(tp) / (len(tp) + len(fp)), 3) if tp or fp else None,
            "false_alerts": len(fp),
        }
        if delays:
            row |= {"delay_s_p50": round(statistics.median(delays), 1), "delay_s_max": round(max(delays), 1)}
        types[itype] = row
        need = 1.0 if exp.group == STANDARD else 0.95
        if recall < need:
            failures.append(f"{itype}: recall {recall:.0%} < {need:.0%}")
        if exp.response_s is not None and delays and max(delays) > exp.response_s:
            failures.append(f"{itype}: detection delay {max(delays):.0f} s > {exp.response_s:g} s")

    incident_devices = set(by_device)
    normal = [d for d in run.devices if d not in incident_devices]
    days = (run.end_ms - run.start_ms) / 86_400_000
    noise = [a for a in run.alerts if a.device_id in normal or (not a.device_id and a.rule != "water_main")]
    per_device_day = len(noise) / max(len(normal) * days, 1e-9)
    if per_device_day > 0.01:
        failures.append(f"false alerts on normal devices: {per_device_day:.4f} per device-day > 0.01")

    ranking = _ranking(run, matched, alerts)
    if ranking["real_fires"] and ranking["real_fires_probable"] < ranking["real_fires"]:
        failures.append(f"{ranking['real_fires'] - ranking['real_fires_probable']} real fires not marked probable")
    if ranking["false_alarms"] and ranking["false_alarms_probable_share"] > 0.05:
        failures.append(f"{ranking['false_alarms_probable_share']:.1%} of false alarms marked probable > 5%")

    mains = [t for t in run.incidents if t["incident"] == "water_main"]
    grouped = None
    if mains:
        members = [alerts[i] for n, t in enumerate(run.incidents) if t["incident"] == "water_main"
                   for i in matched[n] if alerts[i].rule in ("pressure_low", "pressure_drop")]
        grouped = round(sum(1 for a in members if a.parent_id) / max(len(members), 1), 3)
        if grouped < 1:
            failures.append(f"only {grouped:.0%} of the water-main hydrant alerts grouped")

    unknown = sorted({t["incident"] for t in run.incidents} - EXPECT.keys())
    return {
        "incident_types": types,
        "unscored_incident_types": unknown,
        "normal_devices": len(normal), "days": round(days, 2),
        "false_alerts_per_device_day": round(per_device_day, 5),
        "false_alerts_by_rule": dict(Counter(a.rule for a in noise)),
        "panel_fire_ranking": ranking,
        "water_main_grouped_share": grouped,
        "alerts": len(run.alerts),
        "run": run.figures,
        "targets_met": not failures,
        "missed_targets": failures,
    }


def _ranking(run: Run, matched: dict[int, list[int]], alerts: dict[int, Alert]) -> dict[str, Any]:
    def fire_alerts(itype: str) -> list[Alert]:
        out = []
        for n, t in enumerate(run.incidents):
            if t["incident"] == itype:
                fires = [alerts[i] for i in matched[n] if alerts[i].rule == "fire"]
                if fires:
                    out.append(min(fires, key=lambda a: abs(a.started_ms - t["start_ms"])))
        return out

    def probable(a: Alert) -> bool:
        return a.probable or a.id in run.probable_ever

    real, false = fire_alerts("panel_fire"), fire_alerts("false_alarm")
    share = sum(map(probable, false)) / len(false) if false else 0.0
    return {
        "real_fires": len(real), "real_fires_probable": sum(map(probable, real)),
        "false_alarms": len(false), "false_alarms_probable": sum(map(probable, false)),
        "false_alarms_probable_share": round(share, 4),
        "real_fire_score_min": min((a.score for a in real), default=None),
        "false_alarm_score_max": max((a.score for a in false), default=None),
    }


async def evaluate(path: Path) -> dict[str, Any]:
    doc = load_spec(path)
    with tempfile.TemporaryDirectory(prefix="firewatch-eval-") as tmp:
        result = score(await run(doc, Path(tmp), path.stem))
    result["scenario"] = str(path)
    return result


def main(path: Path, as_json: bool) -> int:
    try:
        result = asyncio.run(evaluate(path))
    except EvalError as exc:
        raise SettingsError(f"eval: {exc}") from None
    if as_json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
    else:
        _print(result)
    return 0 if result["targets_met"] else 1


def _print(r: dict[str, Any]) -> None:
    print(f"scenario {r['scenario']}: {r['alerts']} alerts from {r['run'].get('messages')} messages")
    print(f"{'incident':16} {'n':>3} {'recall':>7} {'precision':>9} {'delay p50':>10} {'max':>8}")
    for t, row in r["incident_types"].items():
        prec = "-" if row["precision"] is None else f"{row['precision']:.0%}"
        print(f"{t:16} {row['incidents']:>3} {row['recall']:>7.0%} {prec:>9} "
              f"{row.get('delay_s_p50', '-'):>10} {row.get('delay_s_max', '-'):>8}")
    print(f"false alerts per device-day on {r['normal_devices']} normal devices: {r['false_alerts_per_device_day']}"
          f" {r['false_alerts_by_rule'] or ''}")
    print(f"panel fire ranking: {r['panel_fire_ranking']}")
    print("targets met" if r["targets_met"] else "MISSED: " + "; ".join(r["missed_targets"]))
