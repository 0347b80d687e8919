#!/bin/sh
# Broker start-up: write the service accounts into the password file (devices are
# added by `firewatch device add`), enable TLS if certificates are mounted, then run
# Mosquitto, which drops to the `mosquitto` user (uid 1883, shared with the
# firewatch image so both can write the password file).
set -eu
auth=/mosquitto/auth
mkdir -p "$auth/conf.d"
touch "$auth/passwd"
mosquitto_passwd -b "$auth/passwd" firewatch "$MQTT_SERVICE_PASSWORD"
if [ -n "${MQTT_SIMULATOR_PASSWORD:-}" ]; then
    mosquitto_passwd -b "$auth/passwd" simulator "$MQTT_SIMULATOR_PASSWORD"
fi
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
chmod 600 "$auth/passwd"
exec mosquitto -c /mosquitto/config/mosquitto.conf
