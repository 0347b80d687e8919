#!/bin/sh
# Broker start-up: write the service accounts into the password file (devices are
# added by `firewatch device add` and the api, which also write the ACL beside it),
# enable TLS if certificates are mounted, then run Mosquitto, which drops to the
# `mosquitto` user (uid 1883, shared with the firewatch image so both can write
# the auth folder). Mosquitto 2.0 rereads its password file and ACL only on
# SIGHUP, so this script watches both and sends it when either changes: a retired
# device's password stops working within a few seconds.
set -eu
auth=/mosquitto/auth
mkdir -p "$auth/conf.d"
touch "$auth/passwd"
mosquitto_passwd -b "$auth/passwd" firewatch "$MQTT_SERVICE_PASSWORD"
if [ -n "${MQTT_SIMULATOR_PASSWORD:-}" ]; then
    mosquitto_passwd -b "$auth/passwd" simulator "$MQTT_SIMULATOR_PASSWORD"
fi
# Outside systems read alerts (fire/v1/_alerts/#) as `alerts`, and nothing else.
if [ -n "${MQTT_ALERTS_PASSWORD:-}" ]; then
    mosquitto_passwd -b "$auth/passwd" alerts "$MQTT_ALERTS_PASSWORD"
fi
# No device is admitted until firewatch writes the ACL from the registry.
[ -f "$auth/acl" ] || cp /mosquitto/config/acl "$auth/acl"
certs=/mosquitto/certs
if [ -f "$certs/server.crt" ] && [ -f "$certs/server.key" ]; then
    {
        echo "listener 8883"
        echo "certfile $certs/server.crt"
        echo "keyfile $certs/server.key"
        echo "tls_version tlsv1.2"
    } > "$auth/conf.d/tls.conf"
else
    rm -f "$auth/conf.d/tls.conf"
fi
chown -R mosquitto:mosquitto "$auth"
chmod 700 "$auth"
chmod 600 "$auth/passwd" "$auth/acl"
mosquitto -c /mosquitto/config/mosquitto.conf &
broker=$!
trap 'kill -TERM "$broker" 2>/dev/null' TERM INT
stamp() { cat "$auth/passwd" "$auth/acl" 2>/dev/null | cksum; }
seen=$(stamp)
while kill -0 "$broker" 2>/dev/null; do
    sleep 2 &
    wait $! || true
    now=$(stamp)
    if [ "$now" != "$seen" ]; then
        seen=$now
        kill -HUP "$broker" 2>/dev/null || true
    fi
done
wait "$broker"
