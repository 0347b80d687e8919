#!/bin/sh
# EMQX node start-up: write the service accounts' logins where the built-in database's
# bootstrap reads them (deploy/cluster/emqx/emqx.conf), then run EMQX's own entrypoint.
# The file lives in /tmp, not on the data volume: EMQX hashes the passwords into its
# database (shared by the cluster) at start, and nothing keeps them in clear beyond that.
# Devices are not here: EMQX asks the registry in PostgreSQL (contract/emqx.py).
set -eu
dir=/tmp/firewatch
mkdir -p "$dir"
umask 077
{
    echo "user_id,password,is_superuser"
    echo "firewatch,$MQTT_SERVICE_PASSWORD,false"
    if [ -n "${MQTT_SIMULATOR_PASSWORD:-}" ]; then echo "simulator,$MQTT_SIMULATOR_PASSWORD,false"; fi
    # Outside systems read alerts (fire/v1/_alerts/#) as `alerts`, and nothing else.
    if [ -n "${MQTT_ALERTS_PASSWORD:-}" ]; then echo "alerts,$MQTT_ALERTS_PASSWORD,false"; fi
} > "$dir/service-accounts.csv"
exec /usr/bin/docker-entrypoint.sh /opt/emqx/bin/emqx foreground
