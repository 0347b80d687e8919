#!/bin/sh
# First start of the database only: a login for Grafana that may read, never write,
# the tables firewatch creates (the device registry feeds the maps).
set -eu
psql -v ON_ERROR_STOP=1 -v pw="$GRAFANA_DB_PASSWORD" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE grafana LOGIN PASSWORD :'pw';
GRANT CONNECT ON DATABASE firewatch TO grafana;
GRANT USAGE ON SCHEMA public TO grafana;
ALTER DEFAULT PRIVILEGES FOR ROLE firewatch IN SCHEMA public GRANT SELECT ON TABLES TO grafana;
SQL
