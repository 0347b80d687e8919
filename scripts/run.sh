#!/usr/bin/env bash
# Set up, then run the embedded platform: broker, InfluxDB, ingest, alerting, api and a simulated city.
set -euo pipefail
cd "$(dirname "$0")/.."
FIREWATCH_BROWSER=0 bash scripts/setup.sh
exec .venv/bin/firewatch up "$@"
