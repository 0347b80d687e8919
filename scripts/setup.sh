#!/usr/bin/env bash
# Sets up a Debian machine for firewatch: system packages when missing, a virtual
# environment, the package and its dev dependencies. Safe to run again: it only
# does what is not done yet.
set -euo pipefail
cd "$(dirname "$0")/.."

# fonts-wqy-microhei: the CJK font of the monthly PDF reports (and of the console's screenshots)
packages=(mosquitto mosquitto-clients influxdb fonts-wqy-microhei)
# chromium for the browser tests
[ "${FIREWATCH_BROWSER:-1}" = 1 ] && packages+=(chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$python" -m venv .venv
fi
stamp=.venv/.firewatch-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing firewatch and its dev dependencies into .venv"
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[dev]'
  touch "$stamp"
fi
