"""Alerting: detect → correlate → lifecycle, in event time, alerts kept in the SQL store.

Public surface: `alerting.pipeline.Pipeline` (the composed stages; `feed` is where
consumers such as the notify stages attach), `alerting.changes.AlertChange` and
`ChangeFeed`, `alerting.service.AlertingService` / `run` (`firewatch alerting`),
`alerting.config.load` (the `[alerting]` settings) and `alerting.rules.RULES`.
Routing, roster and escalation (route.py, roster.py, escalation.py, notify/)
are the notify stages, kept beside it.
"""
