"""Grafana dashboards as code, their installation, and the platform metrics they read.

`boards.all_dashboards()` builds the five dashboards; `push.export` writes them
for file provisioning and `push.install` puts them in a running Grafana;
`platform.relay` copies the services' Prometheus metrics into InfluxDB; `grafana`
holds the building blocks and the data sources' uids.
"""

__all__ = ["boards", "grafana", "platform", "push"]
