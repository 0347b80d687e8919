"""Fire alarm control panels: GB 26875 events turned into alerts, one state machine per panel.

- `fire` is an alert of severity fire at once; further points, linkage
  `start`/`feedback` and time without `reset` update the same alert (the
  correlator turns them into a score); `reset` resolves it.
- `fault` is a warning; a fault not cleared for `fault_unrepaired.for_s`
  (24 h) becomes a hazard (critical) until it is cleared.
- points shielded longer than `shield_left_on.for_s`; main and backup power
  faults until `power_restored`; `supervisory` until `reset`.
- `duty_check_missed` (the gateway's 查岗 went unanswered) is critical, a hazard on the
  unit's record, until the control room answers a later check.
- a point whose fire alarms keep being reset soon is a
  false-alarm point: `false_alarm_repeated` when it did so `warning` times in
  `window_s` (work for the maintenance company, and a GB 50440 handling plan).
Events arrive rarely (a panel reports changes, not periods), so this is plain Python.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from firewatch.alerting.config import AlertingConfig
from firewatch.alerting.detect.heartbeat import Heartbeats
from firewatch.alerting.registry import DeviceInfo, Registry
from firewatch.alerting.signal import FireIncident, Point, PointAlarm, Signal
from firewatch.contract.payload import PanelEvent
from firewatch.contract.rules import RULES, Params


@dataclass(slots=True)
class Incident:
    """One panel fire alarm from the first point to the reset; its signals carry a `FireIncident` of it."""

    started_ms: int
    alarms: list[PointAlarm] = field(default_factory=list)
    linkage: list[tuple[str, int]] = field(default_factory=list)
    reset_ms: int | None = None
    ranked_unreset: bool = False


@dataclass(slots=True)
class PanelState:
    device: DeviceInfo
    slot: int
    params: dict[str, Params]
    incident: Incident | None = None
    faults: dict[Point, int] = field(default_factory=dict)
    shields: dict[Point, int] = field(default_factory=dict)
    quick_resets: dict[Point, deque[int]] = field(default_factory=dict)
    active: set[str] = field(default_factory=set)

    def false_alarms(self, point: Point, since_ms: int) -> int:
        return sum(1 for t in self.quick_resets.get(point, ()) if t >= since_ms)

    def record(self, inc: Incident) -> FireIncident:
        """The incident as a value: what happened, where, and its points' history of quick resets."""
        d = self.device
        points = {a.point for a in inc.alarms}
        return FireIncident(d.id, d.district, d.site, inc.started_ms, tuple(inc.alarms), tuple(inc.linkage),
                            inc.reset_ms, tuple((pt, tuple(self.quick_resets[pt])) for pt in sorted(
                                points & self.quick_resets.keys(), key=str)))


def _where(e: PanelEvent) -> str:
    parts = [f"loop {e.loop}" if e.loop is not None else "", f"point {e.point}" if e.point is not None else "",
             e.zone or "", e.component or ""]
    return ", ".join(p for p in parts if p)


class PanelDetector:
    kind = "panel"

    def __init__(self, config: AlertingConfig, registry: Registry) -> None:
        self.config = config
        self.registry = registry
        self.panels: dict[str, PanelState] = {}
        self.by_slot: list[PanelState] = []
        self.heartbeats = Heartbeats()
        self.watch: set[str] = set()
        """Panels with an open incident, fault or shield: the only ones a tick looks at."""

    def state(self, device_id: str, district: str) -> PanelState:
        p = self.panels.get(device_id)
        if p is None:
            info = self.registry.get(device_id, "panel", district)
            params = self.config.params("panel", info.district, info.site, info.id, info.thresholds)
            p = PanelState(info, len(self.panels), params)
            self.panels[device_id] = p
            self.by_slot.append(p)
            self.heartbeats.grow(p.slot + 1)
            interval = (info.report_interval_s or 0) * 1000 or self.config.report_interval_ms("panel")
            self.heartbeats.set_params(p.slot, interval, params["offline"])
        return p

    def grace(self, now_ms: int) -> None:
        """No device of this kind is called offline for silence before its grace from `now_ms`."""
        self.heartbeats.grace(now_ms)

    def knows(self, device_id: str) -> bool:
        return device_id in self.panels

    def expect(self, device_id: str, district: str, now_ms: int) -> None:
        """The panel should report from `now_ms` on (the registry says it exists)."""
        self.heartbeats.expect(self.state(device_id, district).slot, now_ms)

    def latest_seen(self) -> np.ndarray:
        """When each panel was last heard from (event time, ms)."""
        return self.heartbeats.latest(len(self.panels))

    def _signal(self, p: PanelState, rule: str, ts: int, on: bool, summary: str, zone: str = "",
                annotate: bool = False, at: PanelEvent | None = None) -> Signal:
        if not annotate:
            (p.active.add if on else p.active.discard)(rule)
        sev = RULES["panel"][rule].severities[0] if on else None
        d = p.device
        incident = p.record(p.incident) if rule == "fire" and p.incident is not None else None
        return Signal(rule, d.id, d.district, ts, sev, kind="panel", site=d.site, zone=zone, summary=summary,
                      annotate=annotate, incident=incident, loop=at.loop if at else None,
                      point=at.point if at else None)

    def detect(self, events: list[PanelEvent]) -> list[Signal]:
        out: list[Signal] = []
        for e in events:
            p = self.state(e.device_id, e.district)
            for _ in self.heartbeats.seen(np.array([p.slot]), np.array([e.ts_ms])):
                out.append(self._signal(p, "offline", e.ts_ms, False, "back online"))
            out += self._event(p, e)
        return out

    def _event(self, p: PanelState, e: PanelEvent) -> list[Signal]:
        ts, key, ev = e.ts_ms, (e.loop, e.point), e.event
        if ev == "fire":
            first = p.incident is None
            if first:
                p.incident = Incident(ts)
                self.watch.add(p.device.id)
            p.incident.alarms.append(PointAlarm(key, e.zone or "", e.component or "", ts))
            return [self._signal(p, "fire", ts, True, f"fire alarm: {_where(e)}", e.zone or "", not first, e)]
        if ev in ("start", "feedback") and p.incident is not None:
            p.incident.linkage.append((ev, ts))
            return [self._signal(p, "fire", ts, True, f"linkage {ev}: {_where(e)}", e.zone or "", True)]
        if ev == "reset":
            return self._reset(p, ts)
        if ev == "fault":
            p.faults.setdefault(key, ts)
            self.watch.add(p.device.id)
            if "fault" not in p.active:
                return [self._signal(p, "fault", ts, True, f"fault: {_where(e)}", e.zone or "", at=e)]
            return []
        if ev == "fault_cleared":
            if key == (None, None):
                p.faults.clear()
            else:
                p.faults.pop(key, None)
            if not p.faults:
                return [self._signal(p, r, ts, False, "faults cleared") for r in ("fault", "fault_unrepaired")
                        if r in p.active]
            return []
        if ev == "shield":
            p.shields.setdefault(key, ts)
            self.watch.add(p.device.id)
            return []
        if ev == "unshield":
            if key == (None, None):
                p.shields.clear()
            else:
                p.shields.pop(key, None)
            if not p.shields and "shield_left_on" in p.active:
                return [self._signal(p, "shield_left_on", ts, False, "points unshielded")]
            return []
        if ev == "supervisory" and "supervisory" not in p.active:
            return [self._signal(p, "supervisory", ts, True, f"supervisory: {_where(e)}", e.zone or "", at=e)]
        if ev in ("main_power_fault", "backup_power_fault"):
            rule = ev.removesuffix("_fault")
            if rule not in p.active:
                return [self._signal(p, rule, ts, True, ev.replace("_", " "))]
            return []
        if ev == "duty_check_missed" and ev not in p.active:
            return [self._signal(p, ev, ts, True, "control room did not answer the duty check")]
        if ev == "duty_check_answered" and "duty_check_missed" in p.active:
            return [self._signal(p, "duty_check_missed", ts, False, "control room answered a duty check")]
        if ev == "power_restored":
            return [self._signal(p, r, ts, False, "power restored") for r in ("main_power", "backup_power")
                    if r in p.active]
        return []

    def _reset(self, p: PanelState, ts: int) -> list[Signal]:
        out = []
        inc = p.incident
        if inc is not None:
            inc.reset_ms = ts
            false_ms = self.config.correlation.false_reset_s * 1000
            rep = p.params["false_alarm_repeated"]
            single = len({a.point for a in inc.alarms}) == 1
            for a in inc.alarms[:1] if single else ():
                if ts - a.ts_ms <= false_ms:
                    q = p.quick_resets.setdefault(a.point, deque(maxlen=64))
                    q.append(ts)
                    n = p.false_alarms(a.point, ts - int(rep.window_s * 1000))
                    if rep.enabled and rep.warning and n >= rep.warning and "false_alarm_repeated" not in p.active:
                        out.append(self._signal(p, "false_alarm_repeated", ts, True,
                                                f"loop {a.point[0]} point {a.point[1]}: {n} false alarms "
                                                f"in {rep.window_s / 3600:g} h", a.zone))
            out.insert(0, self._signal(p, "fire", ts, False, "panel reset"))
            p.incident = None
        if "supervisory" in p.active:
            out.append(self._signal(p, "supervisory", ts, False, "panel reset"))
        return out

    def tick(self, now_ms: int) -> list[Signal]:
        out = []
        for s, at in self.heartbeats.tick(now_ms, len(self.panels)):
            out.append(self._signal(self.by_slot[s], "offline", at, True, "panel link silent: missed its inspections"))
        unreset = self.config.correlation.unreset_s * 1000
        for device_id in list(self.watch):
            p = self.panels[device_id]
            inc = p.incident
            if inc is not None and not inc.ranked_unreset and now_ms - inc.started_ms >= unreset:
                inc.ranked_unreset = True
                out.append(self._signal(p, "fire", inc.started_ms + unreset, True, "not reset", annotate=True))
            for rule, since in (("fault_unrepaired", p.faults), ("shield_left_on", p.shields)):
                par = p.params[rule]
                due = min(since.values()) + int(par.for_s * 1000) if since else None
                if due is not None and par.enabled and rule not in p.active and now_ms >= due:
                    out.append(self._signal(p, rule, due, True, f"{len(since)} point(s) for over "
                                                                f"{par.for_s / 3600:g} h"))
            if inc is None and not p.faults and not p.shields:
                self.watch.discard(device_id)
        return out

    def seen(self, device_id: str, district: str, ts_ms: int) -> list[Signal]:
        p = self.state(device_id, district)
        return [self._signal(p, "offline", ts_ms, False, "back online")
                for _ in self.heartbeats.seen(np.array([p.slot]), np.array([ts_ms]))]

    def offline(self, device_id: str, district: str, ts_ms: int) -> list[Signal]:
        p = self.state(device_id, district)
        if self.heartbeats.went_offline(p.slot, ts_ms):
            return [self._signal(p, "offline", ts_ms, True, "panel went offline")]
        return []

    def restore(self, device_id: str, district: str, rule: str, severity: str, started_ms: int) -> None:
        p = self.state(device_id, district)
        p.active.add(rule)
        if rule == "offline":
            self.heartbeats.restore(p.slot)
        elif rule == "fire":
            p.incident = Incident(started_ms, ranked_unreset=True)
            self.watch.add(device_id)
