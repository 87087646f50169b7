/* api_live.c -- the triggers that start executions by themselves while the server runs: which
 * ones run (rebuilt from the store after every definition change) and schedules, fired from
 * the scheduler's heap by one timer, with their state written in the creating transaction. */
#include "api/api_live.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "triggers/schedule.h"
#include "triggers/scheduler.h"

struct af__lives_s {
    af__live_t **b; /* hash buckets by id */
    size_t nb, count;
    af_scheduler_t *sched;
    uv_timer_t timer;   /* the scheduler's next due time */
    uv_timer_t refresh; /* a rebuild on the next loop turn after definition changes */
    int mark;           /* this rebuild's mark in af__live_t.seen */
    int closing;        /* handles still closing */
    /* what changed since the last rebuild: these workflows, or everything (full) */
#define AF__LIVE_CHANGED_MAX 16
    char changed[AF__LIVE_CHANGED_MAX][AF_STORE_ID_MAX];
    int nchanged, full;
};

/* ---- the running triggers by id ---- */

af__live_t *af__live_find(af_api_t *api, const char *id) {
    af__lives_t *lv = api->lives;
    if (lv == NULL) {
        return NULL;
    }
    for (af__live_t *l = lv->b[af_hash_str(id) & (lv->nb - 1)]; l; l = l->next) {
        if (strcmp(l->id, id) == 0) {
            return l;
        }
    }
    return NULL;
}

af__live_t *af__live_find_copy(af_api_t *api, const char *id, uint64_t serial) {
    af__live_t *l = af__live_find(api, id);
    return l && l->serial == serial ? l : NULL;
}

static int grow(af__lives_t *lv) {
    size_t nb = lv->nb * 2;
    af__live_t **b = calloc(nb, sizeof *b);
    if (b == NULL) {
        return AF_ENOMEM;
    }
    for (size_t i = 0; i < lv->nb; i++) {
        for (af__live_t *l = lv->b[i], *next; l; l = next) {
            next = l->next;
            size_t k = af_hash_str(l->id) & (nb - 1);
            l->next = b[k];
            b[k] = l;
        }
    }
    free(lv->b);
    lv->b = b;
    lv->nb = nb;
    return 0;
}

static void unlink_live(af__lives_t *lv, af__live_t *l) {
    af__live_t **p = &lv->b[af_hash_str(l->id) & (lv->nb - 1)];
    while (*p != l) {
        p = &(*p)->next;
    }
    *p = l->next;
    lv->count--;
}

/* ---- inputs ---- */

/* 1 when the trigger's script gives it a function `field`: a script trigger's functions read
 * "<function>" in its config. */
static int has_fn(const af__live_t *l, const char *field) {
    const char *v = json_string_value(json_object_get(l->config, field));
    return l->position >= 0 && v && strcmp(v, "<function>") == 0;
}

int af__live_call(af__live_t *l, const char *field, json_t *arg, json_t **out, af_fault_t *fault) {
    *out = NULL;
    if (!has_fn(l, field)) {
        return 0;
    }
    af_engine_t *e = af_worker_engine(l->api->o.worker);
    return af_engine_trigger_call(e, l->file, l->position, field, arg, out, fault);
}

json_t *af__live_input(af__live_t *l, json_t *arg, af_fault_t *fault) {
    json_t *out, *fixed = json_object_get(l->config, "input");
    int rc = af__live_call(l, "input", arg, &out, fault);
    if (rc != 0 || fixed) { /* the function's result, or a constant input */
        json_decref(arg);
        return rc < 0 ? NULL : rc == 1 ? out : json_deep_copy(fixed);
    }
    return arg;
}

/* ---- schedules ---- */

static void on_due(uv_timer_t *t);

static void arm(af_api_t *api) {
    af__lives_t *lv = api->lives;
    int64_t due = af_scheduler_next_due(lv->sched);
    if (due == INT64_MAX) {
        af_clock_timer_stop(&lv->timer);
    } else {
        af_clock_timer_start(&lv->timer, on_due, due);
    }
}

static json_t *queued_json(const af__live_t *l) {
    if (l->nqueued == 0) {
        return NULL;
    }
    json_t *q = json_array();
    for (int i = 0; i < l->nqueued; i++) {
        json_array_append_new(q, json_integer(l->queued[i]));
    }
    return json_pack("{s:o}", "queued", q);
}

static void created(af_create_t *c, int rc);

/* A creation of the fire's execution (input stolen; NULL: none, only the state is written) with
 * what the trigger remembers, in one transaction. */
static af_create_t *creation(af__live_t *l, json_t *input, int64_t due) {
    af_create_t *c = input ? af__api_create_one(l->api, l->workflow_id, l->version, input)
                           : af__api_create_new(l->api, l->workflow_id, l->version, NULL, 0);
    if (c == NULL) {
        af_log(AF_LEVEL_ERROR, "schedule %s: out of memory: the fire is lost", l->id);
        return NULL;
    }
    af_strlcpy(c->state_trigger, l->id, sizeof c->state_trigger);
    af_strlcpy(c->state.last_execution_id, l->last_execution_id, sizeof c->state.last_execution_id);
    c->state.last_fire_at = due;
    c->state.state = queued_json(l);
    c->done = created;
    return c;
}

/* Saves what the trigger remembers without starting anything (a skipped or queued fire). */
static void save_state(af__live_t *l) {
    af_create_t *c = creation(l, NULL, l->last_fire_at);
    if (c) {
        af__api_create_submit(c);
    }
}

static void previous_ended(void *ud, const char *status, const af_outcome_t *outcome);
static void start_queued(af__live_t *l);

/* Appends a fire to wait for the previous execution; AF_ELIMIT when AF__LIVE_QUEUE_MAX wait. */
static int queue_push(af__live_t *l, int64_t due) {
    if (l->nqueued >= AF__LIVE_QUEUE_MAX) {
        return AF_ELIMIT;
    }
    if (l->queued == NULL && (l->queued = malloc(AF__LIVE_QUEUE_MAX * sizeof *l->queued)) == NULL) {
        return AF_ENOMEM;
    }
    l->queued[l->nqueued++] = due;
    return 0;
}

/* 1 when the trigger's last execution still runs (the worker holds it). keep: go on watching
 * it, to start what queued behind it when it ends. */
static int still_running(af__live_t *l, int keep) {
    if (l->watch) {
        return 1;
    }
    if (!l->last_execution_id[0]) {
        return 0;
    }
    af_watch_t *w = af_worker_watch(l->api->o.worker, l->last_execution_id, previous_ended, l);
    if (w && keep) {
        l->watch = w;
    } else if (w) {
        af_worker_unwatch(l->api->o.worker, w);
    }
    return w != NULL;
}

/* Starts an execution for the fire due at due: its input, then the row, the job and the state
 * (with the fire's time as a seen id, so no fire is written twice) in one transaction. */
static void start_fire(af__live_t *l, int64_t due, int catchup) {
    json_t *arg = json_pack("{s:s, s:s, s:o, s:o, s:b}", "trigger", "schedule", "trigger_id", l->id,
                            "scheduled_at", af__api_iso(due), "fired_at", af__api_iso(af_wall_ms()),
                            "catchup", catchup);
    af_fault_t fault;
    json_t *input = af__live_input(l, arg, &fault);
    l->last_fire_at = due;
    if (input == NULL) {
        af_log(AF_LEVEL_ERROR, "schedule %s: the input function failed: %s", l->id, fault.message);
        save_state(l);
        start_queued(l); /* the fires queued behind it go on */
        return;
    }
    char seen[32];
    snprintf(seen, sizeof seen, "%lld", (long long)due);
    af_create_t *c = creation(l, input, due);
    if (c == NULL || af__api_create_seen(c, "schedule:", l->id, seen) != 0) {
        if (c) {
            af_log(AF_LEVEL_ERROR, "schedule %s: out of memory: the fire is lost", l->id);
            af__api_create_written(c, AF_ENOMEM); /* frees it */
        }
        return;
    }
    af_strlcpy(l->last_execution_id, c->ids[0], sizeof l->last_execution_id);
    af_strlcpy(l->creating, c->ids[0], sizeof l->creating); /* running, for overlap, from now */
    af__api_create_submit(c);
}

/* The fire's execution is committed and with the worker (or failed): overlap watches it now. */
static void created(af_create_t *c, int rc) {
    af__live_t *l = af__live_find(c->api, c->state_trigger);
    if (rc != 0 && rc != AF_ENOTFOUND) { /* a trigger deleted meanwhile has no state to keep */
        af_log(AF_LEVEL_ERROR, "schedule %s: %s was not written: %s", c->state_trigger,
               c->n ? "the fire's execution" : "its state", af_strerror(rc));
    }
    if (l == NULL || c->n == 0) {
        return;
    }
    if (strcmp(l->creating, c->ids[0]) == 0) {
        l->creating[0] = '\0';
    }
    start_queued(l); /* it failed or ended already: the next one */
}

/* The oldest queued fire starts. */
static void start_next(af__live_t *l) {
    int64_t due = l->queued[0];
    memmove(l->queued, l->queued + 1, (size_t)--l->nqueued * sizeof l->queued[0]);
    start_fire(l, due, 0);
}

static void start_queued(af__live_t *l) {
    if (l->nqueued > 0 && !l->watch && !l->creating[0] && !still_running(l, 1)) {
        start_next(l);
    }
}

static void previous_ended(void *ud, const char *status, const af_outcome_t *outcome) {
    af__live_t *l = ud;
    (void)outcome;
    l->watch = NULL;
    if (status != NULL && l->nqueued > 0) { /* NULL: the worker stops; the queue is saved */
        start_next(l);
    }
}

static void fire(af__live_t *l, int64_t due, int catchup) {
    if (l->overlap != AF_OVERLAP_ALLOW &&
        (l->creating[0] || still_running(l, l->overlap == AF_OVERLAP_QUEUE))) {
        l->last_fire_at = due;
        if (l->overlap == AF_OVERLAP_SKIP) {
            af_log(AF_LEVEL_INFO, "schedule %s: skipped a fire: execution %s still runs", l->id,
                   l->last_execution_id);
        } else if (queue_push(l, due) != 0) {
            af_log(AF_LEVEL_WARN, "schedule %s: %d fires wait already: this one is dropped", l->id,
                   AF__LIVE_QUEUE_MAX);
        }
        save_state(l);
        return;
    }
    start_fire(l, due, catchup);
}

typedef struct {
    char id[AF_STORE_ID_MAX];
    int64_t due;
    int catchup;
} fired_t;

typedef struct {
    fired_t *v;
    size_t n, cap;
} fires_t;

static void collect(void *ud, const char *id, int64_t due, int catchup) {
    fires_t *f = ud;
    if (af_grow((void **)&f->v, &f->cap, f->n + 1, sizeof *f->v) != 0) {
        af_log(AF_LEVEL_ERROR, "schedule %s: out of memory: a fire is lost", id);
        return;
    }
    af_strlcpy(f->v[f->n].id, id, sizeof f->v[0].id);
    f->v[f->n].due = due;
    f->v[f->n++].catchup = catchup;
}

/* Everything due fires (the scheduler moves each to its next time), then the timer is armed
 * again: collected first, since firing may change the set of schedules. */
static void on_due(uv_timer_t *t) {
    af_api_t *api = t->data;
    fires_t f = {0};
    af_scheduler_run(api->lives->sched, af_wall_ms(), collect, &f);
    for (size_t i = 0; i < f.n; i++) {
        af__live_t *l = af__live_find(api, f.v[i].id);
        if (l) {
            fire(l, f.v[i].due, f.v[i].catchup);
        }
    }
    free(f.v);
    arm(api);
}

static int schedule_start(af__live_t *l, af_error_t *err) {
    af_trigger_state_t st;
    af_error_t e;
    af_api_t *api = l->api;
    l->overlap = af_schedule_overlap(l->config, err);
    if (l->overlap < 0) {
        return l->overlap;
    }
    if (!l->carried && af_store_trigger_state_get(api->o.store, l->id, &st, &e) == 0) {
        l->last_fire_at = st.last_fire_at;
        af_strlcpy(l->last_execution_id, st.last_execution_id, sizeof l->last_execution_id);
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(st.state, "queued"), i, v) {
            if (json_is_integer(v)) {
                queue_push(l, json_integer_value(v));
            }
        }
        json_decref(st.state);
    }
    int rc =
        af_scheduler_put(api->lives->sched, l->id, l->config, l->last_fire_at, af_wall_ms(), err);
    if (rc == 0) {
        start_queued(l); /* if its predecessor ended while the server was down */
    }
    return rc;
}

int64_t af__api_live_next_run(af_api_t *api, const char *id, int *live) {
    af__live_t *l = af__live_find(api, id);
    *live = l != NULL && l->kind == AF__LIVE_SCHEDULE;
    return *live ? af_scheduler_due_of(api->lives->sched, id) : 0;
}

/* ---- plugin trigger types: the plugin fires, each fire starts an execution ---- */

static int plugin_fire(void *ud, json_t *input) {
    af__live_t *l = ud;
    af_fault_t fault;
    json_t *in = af__live_input(l, json_incref(input), &fault);
    if (in == NULL) {
        af_log(AF_LEVEL_WARN, "trigger %s: the input function failed: %s", l->id, fault.message);
        return AF_ERUNTIME;
    }
    af_create_t *c = af__api_create_one(l->api, l->workflow_id, l->version, in);
    if (c == NULL) {
        return AF_ENOMEM;
    }
    af__api_create_submit(c);
    return 0;
}

static int plugin_start(af__live_t *l, af_error_t *err) {
    const char *name = json_string_value(json_object_get(l->config, "type"));
    const af_triggerdef_t *def = name ? af_trigger_find(name) : NULL;
    char msg[512] = "";
    if (def == NULL) {
        return af_error_set(err, AF_ENOTFOUND, "no trigger type '%s' is loaded", name ? name : "");
    }
    if (def->start(def, json_object_get(l->config, "config"), plugin_fire, l, &l->plugin_instance,
                   msg, sizeof msg) != 0) {
        return af_error_set(err, AF_EINVAL, "trigger type '%s' did not start: %s", name, msg);
    }
    l->plugin_type = def;
    return 0;
}

static void plugin_stop(af__live_t *l) {
    if (l->plugin_type) {
        l->plugin_type->stop(l->plugin_type, l->plugin_instance); /* no fire after this */
    }
    l->plugin_type = NULL;
}

/* ---- starting and stopping ---- */

static int live_start(af__live_t *l, af_error_t *err) {
    switch (l->kind) {
    case AF__LIVE_SCHEDULE:
        return schedule_start(l, err);
    case AF__LIVE_PLUGIN:
        return plugin_start(l, err);
    case AF__LIVE_EVENT:
        return af__events_subscribe(l, err);
    default:
        return af__polls_start(l, err);
    }
}

static void live_free(af__live_t *l) {
    af_api_t *api = l->api;
    if (l->kind == AF__LIVE_SCHEDULE) {
        af_scheduler_remove(api->lives->sched, l->id);
    } else if (l->kind == AF__LIVE_EVENT) {
        af__events_unsubscribe(l);
    } else if (l->kind == AF__LIVE_PLUGIN) {
        plugin_stop(l);
    } else {
        json_t *config = l->config; /* the node call may read it while it is cancelled */
        char *file = l->file;
        l->config = NULL;
        l->file = NULL;
        af__polls_stop(l); /* frees l once its timer closed */
        json_decref(config);
        free(file);
        return;
    }
    if (l->watch) {
        af_worker_unwatch(api->o.worker, l->watch);
    }
    json_decref(l->config);
    free(l->queued);
    free(l->file);
    free(l);
}

/* The kind of a trigger type that runs by itself, or -1 (webhooks and manual triggers wait for
 * requests). */
static int live_kind(const char *type) {
    static const char *const kinds[] = {"schedule", "event", "poll", "plugin"}; /* enum order */
    for (int i = 0; i < 4; i++) {
        if (strcmp(type, kinds[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* The workflow of a trigger, read once per rebuild for a run of its triggers. */
typedef struct {
    char id[AF_STORE_ID_MAX];
    int active, version;
    char file[4096];
} wf_t;

static void workflow_of(af_api_t *api, const char *id, wf_t *wf) {
    if (strcmp(wf->id, id) == 0) {
        return;
    }
    af_workflow_t w = {0};
    af_error_t err;
    af_strlcpy(wf->id, id, sizeof wf->id);
    wf->active = 0;
    if (af_store_workflow_get(api->o.store, id, &w, &err) == 0 && w.current_version > 0 &&
        strcmp(w.status, "paused") != 0) {
        wf->version = w.current_version;
        wf->active = af_worker_version_file(api->o.worker, id, wf->version, wf->file,
                                            sizeof wf->file, &err) == 0;
        if (!wf->active) {
            af_log(AF_LEVEL_ERROR, "workflow %s: its triggers do not run: %s", id, err.msg);
        }
    }
    af_workflow_clear(&w);
}

static af__live_t *live_new(af_api_t *api, const af_trigger_rec_t *t, const wf_t *wf) {
    static uint64_t serials;
    af__live_t *l = calloc(1, sizeof *l);
    if (l == NULL) {
        return NULL;
    }
    l->api = api;
    l->serial = ++serials;
    af_strlcpy(l->id, t->id, sizeof l->id);
    af_strlcpy(l->workflow_id, t->workflow_id, sizeof l->workflow_id);
    l->kind = live_kind(t->type);
    l->version = wf->version;
    l->position = strcmp(t->source, "script") == 0 ? t->position : -1;
    l->updated_at = t->updated_at;
    l->config = json_incref(t->config);
    if ((l->file = strdup(wf->file)) == NULL) {
        json_decref(l->config);
        free(l);
        return NULL;
    }
    return l;
}

/* A schedule rebuilt (new config or version) goes on from the old copy's memory rather than the
 * store's, which may lag behind it by writes in flight: its last fire, fires queued, the
 * execution being created. */
static void carry(af__live_t *l, af__live_t *prev) {
    if (l->kind != prev->kind) {
        return;
    }
    if (l->kind == AF__LIVE_POLL) { /* what it saw; a write in flight comes to the new copy */
        l->carried = 1;
        l->poll_state = json_incref(prev->poll_state);
        l->last_fire_at = prev->last_fire_at;
        if (prev->writing) {
            l->serial = prev->serial;
            l->polling = l->writing = 1;
        }
        return;
    }
    if (l->kind != AF__LIVE_SCHEDULE) {
        return;
    }
    l->carried = 1;
    l->last_fire_at = prev->last_fire_at;
    af_strlcpy(l->last_execution_id, prev->last_execution_id, sizeof l->last_execution_id);
    af_strlcpy(l->creating, prev->creating, sizeof l->creating);
    l->queued = prev->queued;
    l->nqueued = prev->nqueued;
    prev->queued = NULL;
    prev->nqueued = 0;
}

/* One declared trigger: kept when unchanged, else (re)started. */
static void refresh_one(af_api_t *api, const af_trigger_rec_t *t, wf_t *wf) {
    af__lives_t *lv = api->lives;
    workflow_of(api, t->workflow_id, wf);
    if (!wf->active || !t->is_active || live_kind(t->type) < 0) {
        return;
    }
    af__live_t *l = af__live_find(api, t->id);
    if (l && l->updated_at == t->updated_at && l->version == wf->version) {
        l->seen = lv->mark;
        return;
    }
    af__live_t *prev = l;
    af_error_t err = {0};
    if ((lv->count >= lv->nb && grow(lv) != 0) || (l = live_new(api, t, wf)) == NULL) {
        af_log(AF_LEVEL_ERROR, "trigger %s: out of memory", t->id);
        if (prev) {
            prev->seen = lv->mark; /* it goes on as it was */
        }
        return;
    }
    if (prev) {
        carry(l, prev); /* what it remembers may not be written yet */
        unlink_live(lv, prev);
        live_free(prev);
    }
    size_t k = af_hash_str(l->id) & (lv->nb - 1);
    l->next = lv->b[k];
    lv->b[k] = l;
    lv->count++;
    l->seen = lv->mark;
    if (live_start(l, &err) != 0) {
        af_log(AF_LEVEL_ERROR, "trigger %s of workflow %s does not run: %s", t->id, t->workflow_id,
               err.msg);
        unlink_live(lv, l);
        live_free(l);
    }
}

/* Rebuilds the triggers of one workflow (workflow_id), or of all (NULL): what the store
 * declares runs, what it no longer declares stops. */
static int refresh(af_api_t *api, const char *workflow_id) {
    af__lives_t *lv = api->lives;
    af_trigger_rec_t *ts = NULL;
    size_t n = 0;
    af_error_t err;
    int rc = af_store_trigger_list(api->o.store, workflow_id, &ts, &n, &err);
    if (rc != 0) {
        af_log(AF_LEVEL_ERROR, "triggers: %s (tried again in a second)", err.msg);
        return rc;
    }
    lv->mark++;
    wf_t wf;
    memset(&wf, 0, sizeof wf);
    for (size_t i = 0; i < n; i++) {
        refresh_one(api, &ts[i], &wf);
    }
    af_trigger_recs_free(ts, n);
    for (size_t i = 0; i < lv->nb; i++) { /* what is no longer declared stops */
        for (af__live_t *l = lv->b[i], *next; l; l = next) {
            next = l->next;
            if (l->seen != lv->mark &&
                (workflow_id == NULL || strcmp(l->workflow_id, workflow_id) == 0)) {
                unlink_live(lv, l);
                live_free(l);
            }
        }
    }
    return 0;
}

void af__api_live_refresh(af_api_t *api) {
    if (api->lives) {
        refresh(api, NULL);
        arm(api);
    }
}

/* The changes since the last turn: of a few workflows, each rebuilt alone, or of everything;
 * what could not be read is tried again (all of it) a second later. */
static void on_refresh(uv_timer_t *t) {
    af_api_t *api = t->data;
    af__lives_t *lv = api->lives;
    int failed = lv->full && refresh(api, NULL) != 0;
    for (int i = 0; !lv->full && i < lv->nchanged; i++) {
        failed |= refresh(api, lv->changed[i]) != 0;
    }
    lv->full = failed;
    lv->nchanged = 0;
    if (failed) {
        uv_timer_start(&lv->refresh, on_refresh, 1000, 0);
    }
    arm(api);
}

void af__api_live_changed(af_api_t *api, const char *workflow_id) {
    af__lives_t *lv = api->lives;
    if (lv == NULL) {
        return;
    }
    int known = 0;
    for (int i = 0; workflow_id && i < lv->nchanged; i++) {
        known |= strcmp(lv->changed[i], workflow_id) == 0;
    }
    if (workflow_id == NULL || (!known && lv->nchanged == AF__LIVE_CHANGED_MAX)) {
        lv->full = 1;
    } else if (!known) {
        af_strlcpy(lv->changed[lv->nchanged++], workflow_id, sizeof lv->changed[0]);
    }
    uv_timer_start(&lv->refresh, on_refresh, 0, 0);
}

int af__api_live_new(af_api_t *api, af_error_t *err) {
    af__lives_t *lv = calloc(1, sizeof *lv);
    if (lv == NULL || (lv->b = calloc(1024, sizeof *lv->b)) == NULL ||
        (lv->sched = af_scheduler_new()) == NULL) {
        if (lv) {
            free(lv->b);
        }
        free(lv);
        return af_error_set(err, AF_ENOMEM, "out of memory");
    }
    lv->nb = 1024;
    uv_timer_init(api->o.loop, &lv->timer);
    uv_timer_init(api->o.loop, &lv->refresh);
    lv->timer.data = lv->refresh.data = api;
    api->lives = lv;
    int rc = af__events_start(api);
    if (rc != 0) {
        af__api_live_free(api);
        return af_error_set(err, rc, "the event bus did not start");
    }
    return 0;
}

/* Both timers live in lv: it goes when the second has closed. */
static void lives_closed(uv_handle_t *h) {
    af__lives_t *lv = h->data;
    if (--lv->closing == 0) {
        free(lv);
    }
}

void af__api_live_free(af_api_t *api) {
    af__lives_t *lv = api->lives;
    if (lv == NULL) {
        return;
    }
    for (size_t i = 0; i < lv->nb; i++) {
        for (af__live_t *l = lv->b[i], *next; l; l = next) {
            next = l->next;
            live_free(l);
        }
    }
    af__events_stop(api);
    af_scheduler_free(lv->sched);
    free(lv->b);
    api->lives = NULL;
    af_clock_timer_stop(&lv->timer);
    lv->closing = 2;
    lv->timer.data = lv->refresh.data = lv;
    uv_close((uv_handle_t *)&lv->timer, lives_closed);
    uv_close((uv_handle_t *)&lv->refresh, lives_closed);
}
