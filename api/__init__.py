"""The api part: REST API, live stream and the monitoring-center console (`firewatch api`)."""

from firewatch.api.app import create_app, serve
from firewatch.api.supervision_runtime import pressure_floor

__all__ = ["auth", "create_app", "pressure_floor", "serve"]
"""`auth`: API tokens, which `firewatch api token` and `firewatch up` issue; `pressure_floor`: alerting's
pressure floors for the scores `firewatch scores` and `firewatch report` compute."""
