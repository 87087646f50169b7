/* schedule.c -- fire times of a schedule trigger's config. */
#include "triggers/schedule.h"

#include "core/tz.h"
#include "triggers/cron.h"

static int every_runs(const json_t *every, int64_t after_ms, int64_t *out, int n, af_error_t *err) {
    int64_t ms = 0;
    if (!json_is_string(every) || af_duration_parse(json_string_value(every), &ms) != 0 ||
        ms <= 0) {
        return af_error_set(err, AF_EINVAL, "every: a positive duration such as \"15m\"");
    }
    for (int i = 0; i < n; i++) {
        out[i] = after_ms + (int64_t)(i + 1) * ms;
    }
    return n;
}

int af_schedule_next_runs(const json_t *config, int64_t after_ms, int64_t *out, int n,
                          af_error_t *err) {
    const char *expr = json_string_value(json_object_get(config, "cron"));
    if (expr == NULL) {
        return every_runs(json_object_get(config, "every"), after_ms, out, n, err);
    }
    af_cron_t cron;
    int rc = af_cron_parse(expr, &cron, err);
    if (rc != 0) {
        return rc;
    }
    const char *zone = json_string_value(json_object_get(config, "timezone"));
    af_tz_t *tz = zone ? af_tz_load(zone, err) : NULL;
    if (zone && tz == NULL) {
        return err ? err->code : AF_EINVAL;
    }
    int found = 0;
    while (found < n && af_cron_next(&cron, tz, after_ms, &out[found]) == 0) {
        after_ms = out[found++];
    }
    af_tz_free(tz);
    return found;
}

json_t *af_schedule_next_runs_json(const json_t *config, int64_t after_ms, int n, af_error_t *err) {
    int64_t at[16];
    n = n > 16 ? 16 : n;
    int found = af_schedule_next_runs(config, after_ms, at, n, err);
    if (found < 0) {
        return NULL;
    }
    json_t *out = json_array();
    for (int i = 0; i < found; i++) {
        char iso[40];
        json_array_append_new(out, json_string(af_time_iso(at[i], iso, sizeof iso)));
    }
    return out;
}
