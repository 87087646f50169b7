#!/bin/sh
# Runs the engine benchmark against an agentflow binary (builds nothing; see bench/README.md).
#   usage: bench/engine/run.sh BUILD_DIR/agentflow
# The bench_engine program comes from the same build tree: BUILD_DIR/bench_engine, or
# BUILD_DIR/bench/bench_engine where CMake puts it (bench/ is a subdirectory of the build).
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR/agentflow" >&2
    exit 2
fi
BIN=$1
BUILD=$(dirname "$BIN")
REPO=$(cd "$(dirname "$0")/../.." && pwd)

if [ ! -x "$BIN" ]; then
    echo "$0: $BIN: no such binary (run 'make build' first)" >&2
    exit 2
fi
for cand in "$BUILD/bench_engine" "$BUILD/bench/bench_engine"; do
    if [ -x "$cand" ]; then
        exec "$cand" "$BIN" "$REPO"
    fi
done
echo "$0: bench_engine not found in $BUILD or $BUILD/bench (configure with -DAF_BUILD_BENCH=ON and build)" >&2
exit 2
