"""Correlation: rank panel fire alarms, group hydrants that lose pressure together.

Fire alarms are never hidden or delayed; correlation only sets their score,
`probable` flag and reasons (an `updated` change whenever evidence arrives).
The evidence is what DOMAIN.md says a real fire looks like: several points of
one zone within minutes, heat after smoke, a manual call point, linkage
start/feedback, no reset, cable temperature or residual current rising at the
same site; against it: a reset within a minute, a point with a history of
such resets.

Hydrants: when `water_main_hydrants` hydrants of one district lose pressure
within `water_main_window_s`, one district alert `water_main` opens and every
hydrant pressure alert of that district is grouped under it (parent_id).
"""

from __future__ import annotations

from collections import defaultdict

from firewatch.alerting.config import Correlation
from firewatch.alerting.signal import Decision, FireIncident, Signal, fingerprint
from firewatch.contract.db import Severity

SITE_EVIDENCE = frozenset(
    {"cable_temp", "temp_rise", "residual_current", "arc_fault", "temp_imbalance", "cable_temp_abnormal",
     "residual_abnormal"}
)
PRESSURE_LOSS = frozenset({"pressure_low", "pressure_drop"})
HEAT = ("heat", "temp", "thermal")
SMOKE = ("smoke",)
MANUAL = ("manual", "call")


def _is(component: str, words: tuple[str, ...]) -> bool:
    c = component.lower()
    return any(w in c for w in words)


def rank(inc: FireIncident, site_evidence: list[tuple[int, str]], cfg: Correlation,
         now_ms: int) -> tuple[float, list[str]]:
    """Score a panel fire incident in [0, 1] with the reasons, strongest first."""
    score, reasons = 0.3, []
    first = inc.alarms[0] if inc.alarms else None
    zone_ms = cfg.zone_window_s * 1000
    points = {a.point for a in inc.alarms}
    if first is not None:
        same_zone = {a.point for a in inc.alarms if a.zone == first.zone and a.ts_ms - first.ts_ms <= zone_ms}
        if len(same_zone) >= 2:
            score += 0.3 + (0.1 if len(same_zone) >= 3 else 0)
            reasons.append(f"{len(same_zone)} points in zone {first.zone or '?'} within {cfg.zone_window_s:g} s")
        zones = {a.zone for a in inc.alarms}
        if len(zones) >= 2:
            score += 0.15
            reasons.append(f"alarms in {len(zones)} zones")
    smoke = [a.ts_ms for a in inc.alarms if _is(a.component, SMOKE)]
    if smoke and any(_is(a.component, HEAT) and a.ts_ms >= min(smoke) for a in inc.alarms):
        score += 0.2
        reasons.append("heat detector after smoke")
    if any(_is(a.component, MANUAL) for a in inc.alarms):
        score += 0.2
        reasons.append("manual call point")
    events = {e for e, _ in inc.linkage}
    if events and inc.reset_ms is None:
        score += 0.1 * len(events)
        reasons.append(f"linkage {' and '.join(sorted(events))} without reset")
    window = cfg.site_window_s * 1000
    near = sorted({rule for t, rule in site_evidence if abs(t - inc.started_ms) <= window})
    if near:
        score += 0.35
        reasons.append(f"{', '.join(near).replace('_', ' ')} at the same site")
    if inc.reset_ms is None and now_ms - inc.started_ms >= cfg.unreset_s * 1000:
        score += 0.1
        reasons.append(f"not reset after {cfg.unreset_s / 60:g} min")
    if inc.reset_ms is not None and inc.reset_ms - inc.started_ms <= cfg.quick_reset_s * 1000:
        score -= 0.3
        reasons.append(f"reset within {cfg.quick_reset_s:g} s")
    since = inc.started_ms - int(cfg.history_s * 1000)
    history = max((inc.false_alarms(p, since) for p in points), default=0)
    if history:
        score -= min(0.1 * history, 0.3)
        reasons.append(f"point false-alarmed {history} times in {cfg.history_s / 86400:g} days")
    return round(min(max(score, 0.0), 1.0), 3), reasons


class Correlator:
    """Keeps only what correlation itself learnt: site evidence, open fire incidents, hydrants losing pressure."""

    def __init__(self, cfg: Correlation) -> None:
        self.cfg = cfg
        self.site_evidence: dict[str, list[tuple[int, str]]] = defaultdict(list)
        self.fires_by_site: dict[str, dict[str, FireIncident]] = defaultdict(dict)
        """site -> panel -> its open fire incident as last reported."""
        self.losing: dict[str, dict[str, int]] = defaultdict(dict)
        """district -> hydrant -> since when it has been losing pressure."""
        self.losing_rules: dict[str, set[str]] = defaultdict(set)
        self.mains: set[str] = set()
        """Districts with an open water-main alert."""

    def correlate(self, signals: list[Signal]) -> list[Decision]:
        out: list[Decision] = []
        for s in signals:
            if s.kind == "panel" and s.rule == "fire":
                out += self._fire(s)
            elif s.kind == "hydrant" and s.rule in PRESSURE_LOSS and not s.annotate:
                out += self._hydrant(s)
            else:
                out.append(Decision(s))
                if s.kind == "electrical" and s.severity and s.rule in SITE_EVIDENCE and s.site:
                    out += self._site_evidence(s)
        return out

    def _fire(self, s: Signal) -> list[Decision]:
        inc = s.incident
        if s.severity is None:
            self.fires_by_site[s.site].pop(s.device_id, None)
            if inc is None:
                return [Decision(s)]
            return [self._annotate(inc, s.ts_ms), Decision(s)]
        if inc is None:
            return [Decision(s)]
        self.fires_by_site[inc.site][inc.device_id] = inc
        return [self._scored(s, inc, s.ts_ms)]

    def _scored(self, s: Signal, inc: FireIncident, now_ms: int) -> Decision:
        evidence = self.site_evidence.get(inc.site, []) if inc.site else []
        score, reasons = rank(inc, evidence, self.cfg, now_ms)
        return Decision(s, score, score >= self.cfg.probable_score, tuple(reasons))

    def _annotate(self, inc: FireIncident, ts: int) -> Decision:
        s = Signal("fire", inc.device_id, inc.district, ts, Severity.FIRE, kind="panel", site=inc.site,
                   annotate=True)
        return self._scored(s, inc, ts)

    def _site_evidence(self, s: Signal) -> list[Decision]:
        ev = self.site_evidence[s.site]
        ev.append((s.ts_ms, s.rule))
        horizon = s.ts_ms - int(self.cfg.site_window_s * 1000)
        ev[:] = [e for e in ev if e[0] >= horizon]
        return [self._annotate(inc, s.ts_ms) for inc in self.fires_by_site.get(s.site, {}).values()]

    def _hydrant(self, s: Signal) -> list[Decision]:
        district, main = s.district, fingerprint(s.district, "water_main")
        key = f"{s.device_id}:{s.rule}"
        members = self.losing[district]
        if s.severity is not None:
            self.losing_rules[district].add(key)
            members.setdefault(s.device_id, s.ts_ms)
        else:
            self.losing_rules[district].discard(key)
            if not any(k.startswith(f"{s.device_id}:") for k in self.losing_rules[district]):
                members.pop(s.device_id, None)
        if district in self.mains:
            if members:
                return [Decision(s, group=main if s.severity is not None else None)]
            self.mains.discard(district)
            return [Decision(s), Decision(Signal("water_main", "", district, s.ts_ms, None, kind="hydrant",
                                                 summary="hydrant pressures recovered"))]
        recent = [d for d, t in members.items() if s.ts_ms - t <= self.cfg.water_main_window_s * 1000]
        if s.severity is None or len(recent) < self.cfg.water_main_hydrants:
            return [Decision(s)]
        self.mains.add(district)
        out = [Decision(s, group=main),
               Decision(Signal("water_main", "", district, s.ts_ms, Severity.CRITICAL, kind="hydrant",
                               value=float(len(recent)), threshold=float(self.cfg.water_main_hydrants),
                               unit="hydrants", summary=f"{len(recent)} hydrants of district {district} losing "
                               "pressure together: water main?"))]
        for device in members:
            for rule in PRESSURE_LOSS:
                if f"{device}:{rule}" in self.losing_rules[district]:
                    out.append(Decision(Signal(rule, device, district, s.ts_ms, Severity.WARNING, kind="hydrant",
                                               annotate=True), group=main))
        return out

    def restore(self, rule: str, device_id: str, district: str, started_ms: int) -> None:
        if rule == "water_main":
            self.mains.add(district)
        elif rule in PRESSURE_LOSS:
            self.losing_rules[district].add(f"{device_id}:{rule}")
            self.losing[district].setdefault(device_id, started_ms)
