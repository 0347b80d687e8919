#!/bin/sh
# First start of the database only: a login for Grafana that reads what the dashboards
# draw and nothing else. Its maps need the device registry's place columns; it gets no
# other table and no other column (not the broker password hashes in `devices`, not the
# API token hashes, not the message bodies with live acknowledge links in `deliveries`).
# firewatch creates its tables later, at its first start, so an event trigger grants the
# columns when `devices` is created (and at once if it already exists).
set -eu
psql -v ON_ERROR_STOP=1 -v pw="$GRAFANA_DB_PASSWORD" -v role="${GRAFANA_DB_USER:-grafana}" \
  -v db="$POSTGRES_DB" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'pw';
GRANT CONNECT ON DATABASE :"db" TO :"role";
GRANT USAGE ON SCHEMA public TO :"role";
CREATE TABLE firewatch_grafana_reader (role name NOT NULL);
INSERT INTO firewatch_grafana_reader VALUES (:'role');
CREATE FUNCTION firewatch_grant_map_columns() RETURNS void LANGUAGE plpgsql AS $$
DECLARE reader name := (SELECT role FROM firewatch_grafana_reader);
BEGIN
  IF to_regclass('public.devices') IS NOT NULL THEN
    EXECUTE format('GRANT SELECT (id, kind, district, site, address, latitude, longitude, retired_ms) '
                   'ON public.devices TO %I', reader);
  END IF;
END $$;
CREATE FUNCTION firewatch_on_create_table() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() WHERE object_identity = 'public.devices') THEN
    PERFORM firewatch_grant_map_columns();
  END IF;
END $$;
CREATE EVENT TRIGGER firewatch_grafana_map ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
  EXECUTE FUNCTION firewatch_on_create_table();
SELECT firewatch_grant_map_columns();
SQL
