#!/bin/sh
# Run by the postgres image once, when its data volume is created: the service roles of roles.sql.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v auth_password="$AUTH_DB_PASSWORD" -v keys_password="$KEYS_DB_PASSWORD" \
    -v chat_password="$CHAT_DB_PASSWORD" -v quota_password="$QUOTA_DB_PASSWORD" \
    -f /etc/keylm/postgres/roles.sql
