"""The `firewatch` command: composes the parts (ingest, alerting, api, dashboards, simulators)."""
