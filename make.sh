#!/usr/bin/env bash
# The two quick-start commands, safe on a fresh Debian 12 machine (as root):
#   ./make.sh run    install what is missing, build, run the main example workflow
#   ./make.sh test   install what is missing, build, run every test
# Any other target is passed to make (see Makefile).
set -euo pipefail
cd "$(dirname "$0")"
target=${1:-run}
shift || true
case "$target" in
    test|test-*|bench) scripts/deps.sh test ;;
    *) scripts/deps.sh build ;;
esac
exec make --no-print-directory "$target" "$@"
