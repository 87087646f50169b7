/* schedule.h -- what a schedule trigger's config ({"cron", "timezone"} or {"every"}) says about
 * when it fires. */
#ifndef AF_SCHEDULE_H
#define AF_SCHEDULE_H

#include <jansson.h>
#include <stdint.h>
#include "core/core.h"

/* The next n fire times after after_ms (Unix ms) into out: the cron expression in its zone, or
 * after_ms + k * every. Returns how many it found (fewer when the expression stops firing), or
 * a negative code with err (an invalid expression or zone). */
int af_schedule_next_runs(const json_t *config, int64_t after_ms, int64_t *out, int n,
                          af_error_t *err);

/* The same as a JSON array of ISO-8601 UTC times (new reference), or NULL with err. */
json_t *af_schedule_next_runs_json(const json_t *config, int64_t after_ms, int n, af_error_t *err);

#endif
