#!/usr/bin/env bash
# Set up, then run the whole test suite against real Mosquitto, InfluxDB, SQL, HTTP, SMTP and Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p test-artifacts
exec .venv/bin/pytest -ra "$@"
