"""Alerting: detect → correlate → lifecycle, in event time, alerts kept in the SQL store.

Public surface (what other parts may import, tests/test_layout.py holds them to it):
`pipeline.Pipeline` (the composed stages; its `feed` is where consumers such as
notify attach), `changes` (`AlertChange`, `ChangeKind`, `ChangeFeed`, the change
feed's values), `config` (`load`, the `[alerting]` settings and the levels in force
for a device), `registry` (`DeviceInfo`, `Registry`), `outputs` (the InfluxDB and
MQTT forms of a change), `service` (`AlertingService`, `run`: `firewatch alerting`)
and `replay` (`firewatch replay`). Detection, correlation, the lifecycle and the
metrics are private; the rule catalogue is the contract's (contract/rules.py).
"""

__all__ = ["changes", "config", "outputs", "pipeline", "registry", "replay", "service"]
