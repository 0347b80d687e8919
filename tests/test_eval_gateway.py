"""`panels: gateway`: an evaluation whose panels are simulated transmission devices speaking
GB/T 26875.3 over real TCP to a real gateway, scored as the MQTT run is."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from firewatch.bench.evaluate import EvalError, evaluate
from firewatch.contract.rules import RULES

SCENARIO = Path(__file__).parent.parent / "bench" / "scenarios" / "gateway.yaml"


@pytest.mark.timeout(600)
async def test_panels_through_the_gateway_are_detected_ranked_and_never_silent() -> None:
    """The targets ci.yaml meets, met through the gateway: a day commissioned before the window, so
    the learned detectors see a fire's warm cables (fire_heat) and call nothing else abnormal."""
    r = await evaluate(SCENARIO)
    assert r["targets_met"], (r["missed_targets"], r["false_alerts_by_rule"])
    assert r["false_alerts_per_device_day"] <= 0.01, r["false_alerts_by_rule"]
    types = r["incident_types"]
    assert {"panel_fire", "false_alarm", "panel_fault", "silent", "fire_heat"} <= types.keys()
    for itype, row in types.items():
        assert row["recall"] == 1.0, (itype, row)
    for itype in ("panel_fire", "false_alarm", "panel_fault", "silent"):
        assert types[itype]["precision"] == 1.0, (itype, types[itype])
    assert types["panel_fire"]["delay_s_max"] <= 10, "GB 26875.1: at the center within 10 s"
    ranking = r["panel_fire_ranking"]
    assert ranking["real_fires_probable"] == ranking["real_fires"] == 2
    assert ranking["false_alarms_probable"] == 0
    panel_noise = {rule: n for rule, n in r["false_alerts_by_rule"].items() if rule in RULES["panel"]}
    assert panel_noise == {}, "a panel without an incident alerted (a heartbeat late through the gateway?)"
    gw = r["run"]["gateway"]
    assert gw["devices"] > 10 and gw["frames"] > 1000 and gw["rejected"] == {}
    assert gw["published"] == gw["frames"], "one message a frame (a link's first heartbeat: its online status)"


async def test_an_unknown_way_for_the_panels_is_refused_by_name(tmp_path: Path) -> None:
    doc = yaml.safe_load(SCENARIO.read_text(encoding="utf-8")) | {"panels": "udp"}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(EvalError, match="panels: 'udp' must be one of mqtt, gateway"):
        await evaluate(path)
