#!/bin/sh
# Runs once, when the postgres container initialises an empty data directory (official image or
# stand-in). It creates the least-privilege login that pipelines' SQL runs as (ETL_SOURCE_URL).
# etl_source may connect, use the source and target schemas, and SELECT their tables, including
# tables that the service's own login (POSTGRES_USER) creates there later, e.g. `etl-console demo`.
# It may not write, create, or read the service's own tables in public.
set -eu
: "${ETL_SOURCE_PASSWORD:?set ETL_SOURCE_PASSWORD (docker-compose.yml passes it)}"
psql -v ON_ERROR_STOP=1 -q --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v owner="$POSTGRES_USER" -v db="$POSTGRES_DB" -v password="$ETL_SOURCE_PASSWORD" <<'SQL'
CREATE ROLE etl_source LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION
  PASSWORD :'password';
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"owner";
GRANT CONNECT ON DATABASE :"db" TO etl_source;
CREATE SCHEMA IF NOT EXISTS content AUTHORIZATION :"owner";
CREATE SCHEMA IF NOT EXISTS ugc AUTHORIZATION :"owner";
CREATE SCHEMA IF NOT EXISTS analytics AUTHORIZATION :"owner";
GRANT USAGE ON SCHEMA content, ugc, analytics TO etl_source;
GRANT SELECT ON ALL TABLES IN SCHEMA content, ugc, analytics TO etl_source;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA content, ugc, analytics
  GRANT SELECT ON TABLES TO etl_source;
SQL
echo "etl_source login created (SELECT on content, ugc, analytics)"
