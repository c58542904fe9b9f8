#!/bin/sh
# Run once by the postgres image on an empty data volume (ConfigMap cpr-postgres-init): the
# gateways' and the services' roles, each owning its database. Passwords come from the Secret
# cpr-postgres that create-secrets.sh made; psql quotes them (:'name'), so any character is safe.
set -eu
secrets=/run/secrets/postgres
psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v gateway_password="$(cat "$secrets/gateway-password")" \
    -v services_password="$(cat "$secrets/services-password")" <<'SQL'
CREATE ROLE cpr_gateway LOGIN PASSWORD :'gateway_password';
CREATE DATABASE shadow OWNER cpr_gateway;
CREATE ROLE cpr_services LOGIN PASSWORD :'services_password';
CREATE DATABASE modern OWNER cpr_services;
SQL
