#!/bin/sh
# First start of the database only: logins that read the device registry and nothing else.
# Grafana's maps need the registry's place columns; it gets no other table and no other column
# (not the broker password hashes in `devices`, not the API token hashes, not the message
# bodies with live acknowledge links in `deliveries`). In the cluster profile EMQX checks
# device logins and rights against the registry (contract/emqx.py): its role `emqx` reads the
# id, district, password hash and retirement of devices, and nothing else.
# firewatch creates its tables later, at its first start, so an event trigger grants the
# columns when `devices` is created (and at once if it already exists).
set -eu
psql -v ON_ERROR_STOP=1 -v pw="$GRAFANA_DB_PASSWORD" -v role="${GRAFANA_DB_USER:-grafana}" \
  -v emqx_pw="${EMQX_REGISTRY_PASSWORD:-}" -v emqx_role="${EMQX_REGISTRY_USER:-emqx}" \
  --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE TABLE firewatch_registry_readers (role name NOT NULL, columns text NOT NULL);
CREATE ROLE :"role" LOGIN PASSWORD :'pw';
INSERT INTO firewatch_registry_readers
  VALUES (:'role', 'id, kind, district, site, address, latitude, longitude, retired_ms');
SELECT :'emqx_pw' <> '' AS emqx \gset
\if :emqx
CREATE ROLE :"emqx_role" LOGIN PASSWORD :'emqx_pw';
INSERT INTO firewatch_registry_readers VALUES (:'emqx_role', 'id, district, mqtt_password_hash, retired_ms');
\endif
CREATE FUNCTION firewatch_grant_registry_columns() RETURNS void LANGUAGE plpgsql AS $$
DECLARE reader record;
BEGIN
  FOR reader IN SELECT role, columns FROM firewatch_registry_readers LOOP
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), reader.role);
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', reader.role);
    IF to_regclass('public.devices') IS NOT NULL THEN
      EXECUTE format('GRANT SELECT (%s) ON public.devices TO %I', reader.columns, reader.role);
    END IF;
  END LOOP;
END $$;
CREATE FUNCTION firewatch_on_create_table() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() WHERE object_identity = 'public.devices') THEN
    PERFORM firewatch_grant_registry_columns();
  END IF;
END $$;
CREATE EVENT TRIGGER firewatch_registry_readers ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
  EXECUTE FUNCTION firewatch_on_create_table();
SELECT firewatch_grant_registry_columns();
SQL
