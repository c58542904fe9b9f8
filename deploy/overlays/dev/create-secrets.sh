#!/bin/sh
# Throwaway secrets for the dev overlay, made on this machine and sent straight to the cluster:
# nothing secret is written into the repository. A Secret that already exists is left as it is
# (PostgreSQL keeps the passwords it was initialised with; delete the namespace to start over).
#
#   deploy/overlays/dev/create-secrets.sh           create what is missing in cpr-gateway-dev
#   deploy/overlays/dev/create-secrets.sh --print   print every Secret as YAML (no cluster needed)
#
# Needs the project's virtualenv (`make install`; its cpr-gateway makes the development CA) and
# kubectl. NAMESPACE and VENV override the defaults.
set -eu
root=$(cd "$(dirname "$0")/../../.." && pwd)
namespace=${NAMESPACE:-cpr-gateway-dev}
venv=${VENV:-$root/.venv}
mode=apply
if [ "${1:-}" = --print ]; then mode=print; fi

umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

token() { "$venv/bin/python" -c "import secrets; print(secrets.token_$1)"; }

# The development CA and its server certificates, valid for localhost (docs/deploy.md: the
# gateway verifies the emulator as server_name localhost, clients reach the gateway through
# port-forward on localhost).
"$venv/bin/cpr-gateway" certs --dir "$work/tls" >/dev/null
token 'hex(32)' >"$work/shadow.key"
printf 'ops:%s\n' "$(token 'urlsafe(32)')" >"$work/admin.token"
for role in postgres gateway services; do token 'urlsafe(24)' >"$work/$role-password"; done
printf '*:*:*:cpr_gateway:%s\n' "$(cat "$work/gateway-password")" >"$work/gateway.pgpass"
printf '*:*:*:cpr_services:%s\n' "$(cat "$work/services-password")" >"$work/services.pgpass"

secret() {
    name=$1
    shift
    if [ "$mode" = print ]; then
        echo ---
        kubectl create secret generic "$name" --namespace "$namespace" "$@" \
            --dry-run=client --output yaml
    elif kubectl get secret "$name" --namespace "$namespace" >/dev/null 2>&1; then
        echo "secret/$name exists, kept"
    else
        kubectl create secret generic "$name" --namespace "$namespace" "$@"
    fi
}

if [ "$mode" = apply ]; then
    kubectl create namespace "$namespace" --dry-run=client --output yaml | kubectl apply -f -
fi
secret cpr-gateway-tls --type kubernetes.io/tls \
    --from-file tls.crt="$work/tls/gateway.crt" --from-file tls.key="$work/tls/gateway.key" \
    --from-file ca.crt="$work/tls/ca.crt"
secret cpr-gateway-shadow-key --from-file shadow.key="$work/shadow.key"
secret cpr-gateway-admin-token --from-file admin.token="$work/admin.token"
secret cpr-gateway-store-credentials --from-file pgpass="$work/gateway.pgpass"
secret cpr-services-store-credentials --from-file pgpass="$work/services.pgpass"
secret cpr-emulator-tls --type kubernetes.io/tls \
    --from-file tls.crt="$work/tls/emulator.crt" --from-file tls.key="$work/tls/emulator.key"
secret cpr-postgres \
    --from-file postgres-password="$work/postgres-password" \
    --from-file gateway-password="$work/gateway-password" \
    --from-file services-password="$work/services-password"
if [ "$mode" = apply ]; then
    echo "clients trust this CA (also in secret/cpr-gateway-tls, ca.crt):"
    kubectl get secret cpr-gateway-tls --namespace "$namespace" \
        --output 'jsonpath={.data.ca\.crt}' | base64 -d
fi
