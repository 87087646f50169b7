/* schedule.h -- what a schedule trigger's config ({"cron", "timezone"} or {"every"}) says about
 * when it fires. */
#ifndef AF_SCHEDULE_H
#define AF_SCHEDULE_H

#include <jansson.h>
#include <stdint.h>
#include "core/core.h"

/* A schedule compiled from its config: expression or interval, zone, window, missed policy. */
typedef struct af_schedule_s af_schedule_t;
/* NULL with err when the config is invalid (as af_schedule_check says). */
af_schedule_t *af_schedule_new(const json_t *config, af_error_t *err);
void af_schedule_free(af_schedule_t *s);
/* The first fire time after after_ms inside the window: 0, or AF_ENOTFOUND when none is left. */
int af_schedule_next(const af_schedule_t *s, int64_t after_ms, int64_t *next_ms);
/* How many missed fire times the schedule's missed policy runs at most (0 for skip). */
int af_schedule_max_catchup(const af_schedule_t *s);
/* The missed fire times in (last_ms, now_ms] to run now by the missed policy (see
 * af_schedule_missed), oldest first, at most max, into out; *n gets how many. */
void af_schedule_catchup(const af_schedule_t *s, int64_t last_ms, int64_t now_ms, int64_t *out,
                         int max, int *n);

/* Validates a schedule's config as the scheduler reads it: cron or every, timezone, window.
 * Returns 0 or a negative code with err. */
int af_schedule_check(const json_t *config, af_error_t *err);

/* The next n fire times after after_ms (Unix ms) into out: the cron expression in its zone, or
 * after_ms + k * every, skipping those outside its window (window.h). Returns how many it found
 * (fewer when none is left: an expression that never fires, a window past its last date), or a
 * negative code with err (an invalid expression, zone, interval or window). */
int af_schedule_next_runs(const json_t *config, int64_t after_ms, int64_t *out, int n,
                          af_error_t *err);

/* What a schedule does about fire times it missed (the server was down, the workflow paused):
 * the due times in (last_ms, now_ms] of config, chosen by its `missed` policy — "skip" (the
 * default: none), "run_once" (the latest one) or "run_all" (all, or the latest `max_catchup`
 * of them, default 100) — oldest first into out (at most max). It looks back a year at most,
 * and at the first million due times in that year at most. Sets *n. Returns 0 or a negative
 * code with err (an invalid config). */
int af_schedule_missed(const json_t *config, int64_t last_ms, int64_t now_ms, int64_t *out, int max,
                       int *n, af_error_t *err);

/* What a fire does while the trigger's previous execution still runs (`overlap`): start anyway
 * ("allow", the default), drop the fire ("skip") or start it when the previous one ends
 * ("queue"). Returns the policy, or AF_EINVAL with err. */
enum { AF_OVERLAP_ALLOW = 0, AF_OVERLAP_SKIP = 1, AF_OVERLAP_QUEUE = 2 };
int af_schedule_overlap(const json_t *config, af_error_t *err);

/* The same as a JSON array of ISO-8601 UTC times (new reference), or NULL with err. */
json_t *af_schedule_next_runs_json(const json_t *config, int64_t after_ms, int n, af_error_t *err);

#endif
