#!/usr/bin/env bash
# bench/webhook: wrk against a webhook that runs a 3-step Lua workflow, with durable SQLite
# storage (every execution and step result committed), in immediate and wait mode at 1, 16 and
# 64 connections, in both durability modes; then start-to-first-answer and idle RSS.
#   bench/webhook/run.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
BUILD=${1:-build}
SECS=${2:-5}
BIN=$BUILD/agentflow
HERE=$(cd "$(dirname "$0")" && pwd)
command -v wrk >/dev/null || { echo "bench/webhook needs wrk (scripts/deps.sh bench)" >&2; exit 1; }

start() { # start DATA DURABILITY -> sets PID, URL
    local log=$1/serve.log
    "$BIN" serve --listen 127.0.0.1:0 --data "$1" --durability "$2" 2>"$log" &
    PID=$!
    for _ in $(seq 200); do
        URL=$(grep -o 'http://127.0.0.1:[0-9]*' "$log" 2>/dev/null || true)
        [ -n "$URL" ] && return 0
        sleep 0.05
    done
    echo "agentflow serve did not start: $(cat "$log")" >&2
    exit 1
}

stop() { kill -TERM "$PID"; wait "$PID" || true; }

count() { # succeeded executions of the workflow
    curl -s "$URL/api/workflows/$WF/stats" | grep -o '"succeeded": *[0-9]*' | grep -o '[0-9]*$'
}

drain() { # waits until the workers have finished everything accepted
    for _ in $(seq 600); do
        local r
        r=$(curl -s "$URL/readyz")
        if echo "$r" | grep -q '"running": *0' && echo "$r" | grep -q '"waiting": *0' &&
            echo "$r" | grep -q '"pending_writes": *0'; then
            return 0
        fi
        sleep 0.05
    done
    echo "the workers did not finish" >&2
}

printf '%-8s %-10s %5s %12s %10s %10s %8s %s\n' durability mode conns "executions/s" p50 p99 \
    errors completed
for durability in normal strict; do
    DATA=$(mktemp -d)
    start "$DATA" "$durability"
    WF=$(curl -s -X POST -H 'Content-Type: text/x-lua' --data-binary @"$HERE/workflow.lua" \
        "$URL/api/workflows" | grep -o '"id": *"[^"]*"' | head -1 | grep -o '[0-9a-f-]\{36\}')
    for mode in immediate wait; do
        for c in 1 16 64; do
            before=$(count)
            threads=$((c < 2 ? 1 : 2))
            out=$(wrk -t"$threads" -c"$c" -d"${SECS}s" --latency -s "$HERE/post.lua" \
                "$URL/webhooks/bench/$mode")
            t0=$(date +%s.%N)
            drain
            t1=$(date +%s.%N)
            after=$(count)
            rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
            p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
            p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
            total=$(echo "$out" | awk '/requests in/ {print $1}')
            errors=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
            printf '%-8s %-10s %5d %12.0f %10s %10s %8s %s\n' "$durability" "$mode" "$c" "$rps" \
                "$p50" "$p99" "${errors:-0}" \
                "$((after - before))/$total (drained $(awk "BEGIN {printf \"%.2f\", $t1 - $t0}")s after)"
        done
    done
    stop
    if [ "$durability" = normal ]; then
        "$BUILD/bench/bench_webhook_start" "$BIN" "$DATA" bench/immediate
    fi
    rm -rf "$DATA"
done
