"""The api part: REST API, live stream and the monitoring-center console (`firewatch api`)."""

from firewatch.api.app import create_app, serve

__all__ = ["auth", "create_app", "serve"]
"""`auth`: API tokens, which `firewatch api token` and `firewatch up` issue."""
