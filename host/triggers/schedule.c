/* schedule.c -- fire times of a schedule trigger's config: its cron expression or interval in
 * its time zone, kept to its window. */
#include "triggers/schedule.h"

#include <stdlib.h>
#include <string.h>

#include "core/tz.h"
#include "triggers/cron.h"
#include "triggers/window.h"

#define WINDOW_TRIES 100000 /* closed stretches skipped for one fire time inside the window */

typedef struct {
    af_cron_t cron;
    int has_cron;
    int64_t every_ms;
    af_tz_t *tz;
    af_window_t window;
} plan_t;

static void plan_clear(plan_t *p) {
    af_tz_free(p->tz);
    af_window_clear(&p->window);
}

static int plan_of(const json_t *config, plan_t *p, af_error_t *err) {
    memset(p, 0, sizeof *p);
    const char *expr = json_string_value(json_object_get(config, "cron"));
    int rc = 0;
    if (expr) {
        p->has_cron = 1;
        rc = af_cron_parse(expr, &p->cron, err);
    } else {
        const json_t *every = json_object_get(config, "every");
        if (!json_is_string(every) || af_duration_parse(json_string_value(every), &p->every_ms) ||
            p->every_ms <= 0) {
            rc = af_error_set(err, AF_EINVAL, "every: a positive duration such as \"15m\"");
        }
    }
    const char *zone = json_string_value(json_object_get(config, "timezone"));
    if (rc == 0 && zone && (p->tz = af_tz_load(zone, err)) == NULL) {
        rc = err ? err->code : AF_EINVAL;
    }
    if (rc == 0) {
        rc = af_window_parse(json_object_get(config, "window"), &p->window, err);
    }
    if (rc != 0) {
        plan_clear(p);
    }
    return rc;
}

/* The first fire time after after_ms inside the window; 0, or -1 when there is none. */
static int plan_next(const plan_t *p, int64_t after_ms, int64_t *next) {
    for (int i = 0; i < WINDOW_TRIES; i++) {
        if (p->has_cron) {
            if (af_cron_next(&p->cron, p->tz, after_ms, next) != 0) {
                return -1;
            }
        } else {
            *next = after_ms + p->every_ms;
        }
        af_civil_t local, open;
        af_tz_to_civil(p->tz, *next / 1000, &local);
        if (af_window_allows(&p->window, &local)) {
            return 0;
        }
        if (af_window_next_open(&p->window, &local, &open) != 0) { /* skip what is closed */
            return -1;
        }
        int64_t open_s;
        af_tz_from_civil(p->tz, &open, &open_s);
        int64_t open_ms = open_s * 1000;
        if (open_ms <= *next) {
            after_ms = *next;
        } else if (p->has_cron) {
            after_ms = open_ms - 1;
        } else { /* the interval's last step before the opening */
            after_ms += (open_ms - after_ms - 1) / p->every_ms * p->every_ms;
        }
    }
    return -1;
}

#define MAX_CATCHUP       10000
#define MISSED_HORIZON_MS (366LL * 86400 * 1000)
#define MISSED_SCAN       1000000

/* The missed policy: 0 skip, 1 run_once, 2 run_all; *keep: how many run_all keeps. */
static int missed_policy(const json_t *config, int *policy, int *keep, af_error_t *err) {
    const char *missed = json_string_value(json_object_get(config, "missed"));
    const json_t *max = json_object_get(config, "max_catchup");
    *policy = missed == NULL || strcmp(missed, "skip") == 0 ? 0
              : strcmp(missed, "run_once") == 0             ? 1
              : strcmp(missed, "run_all") == 0              ? 2
                                                            : -1;
    if (*policy < 0 || (json_object_get(config, "missed") && missed == NULL)) {
        return af_error_set(err, AF_EINVAL, "missed is \"skip\", \"run_once\" or \"run_all\"");
    }
    *keep = 100;
    if (max && (!json_is_integer(max) || json_integer_value(max) < 1 ||
                json_integer_value(max) > MAX_CATCHUP)) {
        return af_error_set(err, AF_EINVAL, "max_catchup is a whole number from 1 to %d",
                            MAX_CATCHUP);
    }
    if (max) {
        *keep = (int)json_integer_value(max);
    }
    return af_schedule_overlap(config, err) < 0 ? AF_EINVAL : 0;
}

int af_schedule_overlap(const json_t *config, af_error_t *err) {
    const json_t *v = json_object_get(config, "overlap");
    const char *o = json_string_value(v);
    if (v == NULL || (o && strcmp(o, "allow") == 0)) {
        return AF_OVERLAP_ALLOW;
    }
    if (o && strcmp(o, "skip") == 0) {
        return AF_OVERLAP_SKIP;
    }
    if (o && strcmp(o, "queue") == 0) {
        return AF_OVERLAP_QUEUE;
    }
    return af_error_set(err, AF_EINVAL, "overlap is \"allow\", \"skip\" or \"queue\"");
}

struct af_schedule_s {
    plan_t plan;
    int keep; /* missed runs caught up: 0 skip, 1 run_once, n run_all */
};

/* The compiled schedule of config into *out; 0 or the error's code. */
static int schedule_open(const json_t *config, af_schedule_t **out, af_error_t *err) {
    af_schedule_t *s = calloc(1, sizeof *s);
    int policy, rc;
    *out = NULL;
    if (s == NULL) {
        return af_error_set(err, AF_ENOMEM, "out of memory");
    }
    if ((rc = missed_policy(config, &policy, &s->keep, err)) != 0 ||
        (rc = plan_of(config, &s->plan, err)) != 0) {
        free(s);
        return rc;
    }
    s->keep = policy == 0 ? 0 : policy == 1 ? 1 : s->keep;
    *out = s;
    return 0;
}

af_schedule_t *af_schedule_new(const json_t *config, af_error_t *err) {
    af_schedule_t *s;
    schedule_open(config, &s, err);
    return s;
}

int af_schedule_check(const json_t *config, af_error_t *err) {
    af_schedule_t *s;
    int rc = schedule_open(config, &s, err);
    af_schedule_free(s);
    return rc;
}

void af_schedule_free(af_schedule_t *s) {
    if (s) {
        plan_clear(&s->plan);
        free(s);
    }
}

int af_schedule_next(const af_schedule_t *s, int64_t after_ms, int64_t *next_ms) {
    return plan_next(&s->plan, after_ms, next_ms) == 0 ? 0 : AF_ENOTFOUND;
}

/* Reverses a[from..to). */
static void reverse(int64_t *a, int from, int to) {
    for (to--; from < to; from++, to--) {
        int64_t t = a[from];
        a[from] = a[to];
        a[to] = t;
    }
}

int af_schedule_max_catchup(const af_schedule_t *s) {
    return s->keep;
}

void af_schedule_catchup(const af_schedule_t *s, int64_t last_ms, int64_t now_ms, int64_t *out,
                         int max, int *n) {
    int keep = s->keep < max ? s->keep : max;
    *n = 0;
    /* a ring of the latest `keep` due times, looking back a year at most and at no more than
     * MISSED_SCAN of them (a schedule every second, down for weeks) */
    if (last_ms < now_ms - MISSED_HORIZON_MS) {
        last_ms = now_ms - MISSED_HORIZON_MS;
    }
    int64_t at;
    int64_t count = 0;
    while (keep > 0 && count < MISSED_SCAN && plan_next(&s->plan, last_ms, &at) == 0 &&
           at <= now_ms) {
        out[count % keep] = at;
        count++;
        last_ms = at;
    }
    int got = count < keep ? (int)count : keep;
    if (count > keep) { /* rotate the ring in place so the oldest kept comes first */
        int start = (int)(count % keep);
        reverse(out, 0, start);
        reverse(out, start, keep);
        reverse(out, 0, keep);
    }
    *n = got;
}

int af_schedule_missed(const json_t *config, int64_t last_ms, int64_t now_ms, int64_t *out, int max,
                       int *n, af_error_t *err) {
    af_schedule_t *s;
    *n = 0;
    int rc = schedule_open(config, &s, err);
    if (rc == 0) {
        af_schedule_catchup(s, last_ms, now_ms, out, max, n);
    }
    af_schedule_free(s);
    return rc;
}

int af_schedule_next_runs(const json_t *config, int64_t after_ms, int64_t *out, int n,
                          af_error_t *err) {
    af_schedule_t *s;
    int rc = schedule_open(config, &s, err);
    if (rc != 0) {
        return rc;
    }
    int found = 0;
    while (found < n && af_schedule_next(s, after_ms, &out[found]) == 0) {
        after_ms = out[found++];
    }
    af_schedule_free(s);
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
