#!/usr/bin/env bash
# Install the Debian packages named as arguments that are not installed yet (one apt run).
# The servers the tests and `make fleet` start for real: redis-server, postgresql, haproxy;
# the deploy/ checks' tools: kubectl (kustomize rendering) and prometheus (promtool); chromium
# for the dashboard's browser test.
set -euo pipefail
missing=()
for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "installing Debian packages: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
