-- One login role per service schema, with rights on its own schema only; the role running this
-- file (the database owner, DATABASE_URL) keeps owning every table and runs the migrations.
-- Run it once, connected to KeyLM's database as that owner, before or after the first migration:
--   psql "$DATABASE_URL" -v auth_password=... -v keys_password=... -v chat_password=... \
--        -v quota_password=... -f deploy/postgres/roles.sql
-- docker compose runs it when the Postgres volume is first created (deploy/postgres/init-roles.sh).

CREATE ROLE keylm_auth LOGIN PASSWORD :'auth_password';
CREATE ROLE keylm_keys LOGIN PASSWORD :'keys_password';
CREATE ROLE keylm_chat LOGIN PASSWORD :'chat_password';
CREATE ROLE keylm_quota LOGIN PASSWORD :'quota_password';

-- Nothing in the public schema for anyone (the default before Postgres 15).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

CREATE SCHEMA IF NOT EXISTS auth;
CREATE SCHEMA IF NOT EXISTS keys;
CREATE SCHEMA IF NOT EXISTS chat;
CREATE SCHEMA IF NOT EXISTS quota;

GRANT USAGE ON SCHEMA auth TO keylm_auth;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA auth TO keylm_auth;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA auth TO keylm_auth;
ALTER DEFAULT PRIVILEGES IN SCHEMA auth GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO keylm_auth;
ALTER DEFAULT PRIVILEGES IN SCHEMA auth GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO keylm_auth;

GRANT USAGE ON SCHEMA keys TO keylm_keys;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA keys TO keylm_keys;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA keys TO keylm_keys;
ALTER DEFAULT PRIVILEGES IN SCHEMA keys GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO keylm_keys;
ALTER DEFAULT PRIVILEGES IN SCHEMA keys GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO keylm_keys;

GRANT USAGE ON SCHEMA chat TO keylm_chat;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA chat TO keylm_chat;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA chat TO keylm_chat;
ALTER DEFAULT PRIVILEGES IN SCHEMA chat GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO keylm_chat;
ALTER DEFAULT PRIVILEGES IN SCHEMA chat GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO keylm_chat;

GRANT USAGE ON SCHEMA quota TO keylm_quota;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA quota TO keylm_quota;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA quota TO keylm_quota;
ALTER DEFAULT PRIVILEGES IN SCHEMA quota GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO keylm_quota;
ALTER DEFAULT PRIVILEGES IN SCHEMA quota GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO keylm_quota;
