#!/usr/bin/env bash
# bench/triggers: the trigger system's three figures.
#   (a) `agentflow serve` with 100,000 schedules (100 workflows x 1,000), each once a minute at a
#       random second, whose workflows do nothing: lag from due time to execution start (p50,
#       p99, from the store: started_at - input.scheduled_at) and the process's CPU; then the
#       scheduler alone (bench_scheduler), whose CPU is the scheduler's own.
#   (b) the event bus alone (bench_bus): 1,000 subscriptions, 1% matching, events/s on one core.
#   (c) POST /api/events at 64 connections: accepted events/s, with no subscription matching and
#       with one workflow of ten started per event.
#   bench/triggers/run.sh [BUILD_DIR] [SECONDS_A] [SECONDS_C]
set -euo pipefail
BUILD=${1:-build}
SECS_A=${2:-70}
SECS_C=${3:-10}
BIN=$BUILD/agentflow
HERE=$(cd "$(dirname "$0")" && pwd)
for tool in wrk sqlite3 curl; do
    command -v $tool >/dev/null || { echo "bench/triggers needs $tool (scripts/deps.sh bench)" >&2; exit 1; }
done

start() { # start DATA -> sets PID, URL (env AGENTFLOW_* settings apply)
    "$BIN" serve --listen 127.0.0.1:0 --data "$1" 2>"$1/serve.log" &
    PID=$!
    for _ in $(seq 200); do
        URL=$(grep -o 'http://127.0.0.1:[0-9]*' "$1/serve.log" 2>/dev/null || true)
        [ -n "$URL" ] && return 0
        sleep 0.05
    done
    echo "agentflow serve did not start: $(cat "$1/serve.log")" >&2
    exit 1
}
stop() { kill -TERM "$PID"; wait "$PID" || true; }
deploy() { # deploy FILE -> workflow id
    curl -s -X POST -H 'Content-Type: text/x-lua' --data-binary @"$1" "$URL/api/workflows" |
        grep -o '"id": *"[^"]*"' | head -1 | grep -o '[0-9a-f-]\{36\}'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }

echo "# bench/triggers (a): 100000 schedules in agentflow serve, each once a minute at a random second"
DATA=$(mktemp -d)
# Each second ~1,667 schedules are due at once (whole seconds): more than the default process
# limit of 1,000 running executions, so the rest would wait in the queue by design (and count as
# lag); the limit is raised above the burst to measure the trigger path itself.
AGENTFLOW_WORKER_CONCURRENCY=${AGENTFLOW_WORKER_CONCURRENCY:-4000} start "$DATA"
t0=$(date +%s.%N)
for w in $(seq 100); do
    awk -v w="$w" 'BEGIN {
        srand(w); print "local af = require \"agentflow\""
        print "local wf = af.workflow \"tick-" w "\" {}"
        for (i = 0; i < 1000; i++) printf "wf:on(af.schedule { cron = \"%d * * * * *\" })\n", int(rand() * 60)
        print "wf:step(\"noop\", function() return true end)"; print "return wf" }' >"$DATA/wf.lua"
    deploy "$DATA/wf.lua" >/dev/null
done
t1=$(date +%s.%N)
printf 'deployed                 100 workflows, 100000 schedules in %.1f s\n' "$(echo "$t1 - $t0" | bc)"
sleep 2 # the last rebuild of the running schedules
from=$(($(date +%s%3N) + 1000))
c0=$(cpu_ticks)
sleep "$SECS_A"
c1=$(cpu_ticks)
to=$(date +%s%3N)
stop
HZ=$(getconf CLK_TCK)
Q="WITH l AS (SELECT started_at - CAST(ROUND((julianday(json_extract(input, '\$.scheduled_at'))
     - 2440587.5) * 86400000) AS INTEGER) AS lag FROM workflow_executions
     WHERE started_at IS NOT NULL AND json_extract(input, '\$.trigger') = 'schedule'
       AND created_at BETWEEN $from AND $to),
   w AS (SELECT lag FROM l WHERE lag > -1000000),
   n AS (SELECT COUNT(*) AS c FROM w)
   SELECT (SELECT c FROM n),
     (SELECT lag FROM w ORDER BY lag LIMIT 1 OFFSET (SELECT c / 2 FROM n)),
     (SELECT lag FROM w ORDER BY lag LIMIT 1 OFFSET (SELECT c * 99 / 100 FROM n)),
     (SELECT MAX(lag) FROM w),
     (SELECT COUNT(*) FROM workflow_executions WHERE status != 'succeeded'
       AND created_at BETWEEN $from AND $to)"
IFS='|' read -r n p50 p99 max bad < <(sqlite3 "$DATA/agentflow.db" "$Q")
printf 'executions               %s in %s s (%s not succeeded)\n' "$n" "$SECS_A" "$bad"
printf 'lag_p50_ms               %s\n' "$p50"
printf 'lag_p99_ms               %s (target <= 100)\n' "$p99"
printf 'lag_max_ms               %s\n' "$max"
printf 'process_cpu_pct          %.1f (scheduler, executions, store writes: all of serve)\n' \
    "$(echo "($c1 - $c0) * 100 / $HZ / $SECS_A" | bc -l)"
rm -rf "$DATA"
echo "the scheduler alone (bench_scheduler 100000 20):"
"$BUILD/bench/bench_scheduler" 100000 20 | grep -E 'scheduler_cpu|lag_p99'

echo
"$BUILD/bench/bench_bus" 1000 3

echo
echo "# bench/triggers (c): POST /api/events, 64 connections, ${SECS_C}s each"
DATA=$(mktemp -d)
start "$DATA"
for k in $(seq 0 9); do
    cat >"$DATA/wf.lua" <<LUA
local af = require "agentflow"
local wf = af.workflow "on-t$k" {}
wf:on(af.event { type = "bench.t$k.*", where = { amount = { gte = 100 }, tier = { ["in"] = { "gold", "silver" } } } })
wf:step("noop", function() return true end)
return wf
LUA
    deploy "$DATA/wf.lua" >/dev/null
done
printf '%-28s %10s %10s %10s %8s\n' case events/s p50 p99 errors
for case in bench.noise.seen bench.t3.created; do
    out=$(EVENT_TYPE=$case wrk -t2 -c64 -d"${SECS_C}s" --latency -s "$HERE/post_event.lua" "$URL/api/events")
    printf '%-28s %10.0f %10s %10s %8s\n' "$case" "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" \
        "$(echo "$out" | awk '$1 == "50%" {print $2}')" "$(echo "$out" | awk '$1 == "99%" {print $2}')" \
        "$(echo "$out" | awk '/Non-2xx/ {print $NF}' | grep . || echo 0)"
done
stop
printf 'stored events %s, executions %s\n' "$(sqlite3 "$DATA/agentflow.db" 'SELECT COUNT(*) FROM events')" \
    "$(sqlite3 "$DATA/agentflow.db" 'SELECT COUNT(*) FROM workflow_executions')"
rm -rf "$DATA"
