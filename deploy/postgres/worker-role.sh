#!/bin/sh
# Run by the postgres image on the first start of its volume (docker-entrypoint-initdb.d):
# the worker's login role, with its password. Migration 0004 grants it its privileges
# (and creates it without a password when this script never ran). On a volume that
# existed before, set the password once by hand:
#   ALTER ROLE recon_worker PASSWORD '<RECON_WORKER_PASSWORD>';
set -e
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set=password="$RECON_WORKER_PASSWORD" <<'SQL'
CREATE ROLE recon_worker LOGIN PASSWORD :'password';
SQL
