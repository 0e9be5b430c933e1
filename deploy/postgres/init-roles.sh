#!/bin/sh
# Postgres image init hook (/docker-entrypoint-initdb.d): creates the owner and app roles of
# roles.sql in $POSTGRES_DB. Runs once, when the data volume is first initialised.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v owner_role="${OG_DB_OWNER:-governor_owner}" \
    -v owner_password="${OG_DB_OWNER_PASSWORD:?set OG_DB_OWNER_PASSWORD}" \
    -v app_role="${OG_DB_APP:-governor_app}" \
    -v app_password="${OG_DB_APP_PASSWORD:?set OG_DB_APP_PASSWORD}" \
    -v dbname="$POSTGRES_DB" \
    -f /etc/openai-governor/roles.sql
