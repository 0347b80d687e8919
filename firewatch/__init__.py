"""The `firewatch` command: composes the parts (ingest, alerting, api, dashboards, simulators).

No part imports this package; bench/ and the tests use the launcher behind `firewatch up`
(`services`: Mosquitto and InfluxDB on free ports, free ports themselves).
"""

__all__ = ["services"]
