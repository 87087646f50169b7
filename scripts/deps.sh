#!/usr/bin/env bash
# Installs the Debian packages agentflow needs to build, run and test, skipping what is present.
# Usage: scripts/deps.sh [build|test|bench]   (test adds the test tools, bench the load generator)
set -euo pipefail
mode=${1:-build}
# the full build (binary, plugins, C tests, test servers, benchmarks)
pkgs=(cmake make gcc pkg-config libluajit2-5.1-dev libuv1-dev libjansson-dev
      libcurl4-openssl-dev libssl-dev libsqlite3-dev libcmocka-dev libhttp-parser-dev
      tzdata) # tzdata: the zoneinfo files schedules read their time zones from
if [ "$mode" = test ]; then
    pkgs+=(luajit2 lua-busted lua-dkjson graphviz curl openssl valgrind) # runners and tools
fi
if [ "$mode" = bench ]; then
    pkgs+=(wrk curl sqlite3 bc) # the HTTP load generator; sqlite3 reads bench/triggers' figures
fi
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
