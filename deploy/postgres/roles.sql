-- Two roles for openai-governor on Postgres (run once, as a superuser, in the service's
-- database, before the first migration):
--   owner: owns the schema; runs `openai-governor migrate`; never used by the service.
--   app:   what `serve` connects as (with OG_MIGRATE=false): reads and writes the service's
--          tables, but on the audit trail may only read and append. Not owning the tables,
--          it cannot drop or disable their triggers, alter them or truncate them.
-- psql variables: owner_role, owner_password, app_role, app_password, and dbname.
--   psql -v ON_ERROR_STOP=1 -v owner_role=governor_owner -v owner_password=... \
--        -v app_role=governor_app -v app_password=... -v dbname=governor -f roles.sql
\set ON_ERROR_STOP on
CREATE ROLE :"owner_role" LOGIN PASSWORD :'owner_password';
CREATE ROLE :"app_role" LOGIN PASSWORD :'app_password';
GRANT CONNECT ON DATABASE :"dbname" TO :"owner_role", :"app_role";
GRANT USAGE, CREATE ON SCHEMA public TO :"owner_role";
GRANT USAGE ON SCHEMA public TO :"app_role";
-- Every table and sequence the owner's migrations create is the app's to use; the audit
-- migration then takes back UPDATE, DELETE and TRUNCATE on `audit_events` from every role but
-- the owner (see migrations/postgres/20261202000030_audit_chain.sql).
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app_role";
