/* store.c -- the backend-independent side of store.h: argument checks and dispatch through the
 * method table, execution + job in one transaction, group commit, and freeing of records. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/store_internal.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            return af_error_set(err, AF_EINVAL, "invalid argument: %s", #cond);                    \
        }                                                                                          \
    } while (0)

/* ---- open and close ------------------------------------------------------------------------- */

int af_store_open(const char *location, const af_store_options_t *opts, af_store_t **out,
                  af_error_t *err) {
    CHECK(location != NULL && location[0] != '\0' && out != NULL);
    *out = NULL;
    if (strncmp(location, "postgres://", 11) == 0 || strncmp(location, "postgresql://", 13) == 0) {
        return af_error_set(err, AF_EINVAL, "this build has no PostgreSQL storage backend");
    }
    const char *path = location;
    char *joined = NULL;
    struct stat sb;
    if (stat(location, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        size_t n = strlen(location) + sizeof "/agentflow.db";
        if ((joined = malloc(n)) == NULL) {
            return af_error_set(err, AF_ENOMEM, "out of memory");
        }
        snprintf(joined, n, "%s/agentflow.db", location);
        path = joined;
    }
    int rc = af__store_sqlite_open(path, opts, out, err);
    free(joined);
    return rc;
}

void af_store_close(af_store_t *s) {
    if (s) {
        s->vt->close(s);
    }
}

int af_store_info(af_store_t *s, af_store_info_t *info) {
    if (s == NULL || info == NULL) {
        return AF_EINVAL;
    }
    return s->vt->info(s, info);
}

af_queue_t *af_store_queue(af_store_t *s) {
    return s ? s->vt->queue(s) : NULL;
}

int af_store_begin(af_store_t *s, af_error_t *err) {
    CHECK(s != NULL);
    return s->vt->begin(s, err);
}

int af_store_commit(af_store_t *s, af_error_t *err) {
    CHECK(s != NULL);
    return s->vt->commit(s, err);
}

void af_store_rollback(af_store_t *s) {
    if (s) {
        s->vt->rollback(s);
    }
}

/* ---- workflows ------------------------------------------------------------------------------ */

int af_store_workflow_create(af_store_t *s, const af_workflow_t *w, char *id_out, af_error_t *err) {
    CHECK(s != NULL && w != NULL);
    return s->vt->workflow_create(s, w, id_out, err);
}

int af_store_workflow_get(af_store_t *s, const char *id, af_workflow_t *out, af_error_t *err) {
    CHECK(s != NULL && id != NULL && out != NULL);
    return s->vt->workflow_get(s, id, out, err);
}

int af_store_workflow_list(af_store_t *s, const char *project_id, const char *cursor, int limit,
                           af_workflow_t **out, size_t *n, char *next_cursor, af_error_t *err) {
    CHECK(s != NULL && out != NULL && n != NULL && next_cursor != NULL);
    return s->vt->workflow_list(s, project_id, cursor, limit, out, n, next_cursor, err);
}

int af_store_workflow_update(af_store_t *s, const af_workflow_t *w, af_error_t *err) {
    CHECK(s != NULL && w != NULL && w->id[0] != '\0');
    return s->vt->workflow_update(s, w, err);
}

int af_store_workflow_delete(af_store_t *s, const char *id, af_error_t *err) {
    CHECK(s != NULL && id != NULL);
    return s->vt->workflow_delete(s, id, err);
}

int af_store_workflow_find(af_store_t *s, const char *name, af_workflow_t *out, af_error_t *err) {
    CHECK(s != NULL && name != NULL && out != NULL);
    return s->vt->workflow_find(s, name, out, err);
}

int af_store_version_add(af_store_t *s, const char *workflow_id, const char *lua_source,
                         const json_t *definition, int *version, af_error_t *err) {
    CHECK(s != NULL && workflow_id != NULL);
    return s->vt->version_add(s, workflow_id, lua_source, definition, version, err);
}

int af_store_version_get(af_store_t *s, const char *workflow_id, int version,
                         af_workflow_version_t *out, af_error_t *err) {
    CHECK(s != NULL && workflow_id != NULL && out != NULL && version >= 0);
    return s->vt->version_get(s, workflow_id, version, out, err);
}

int af_store_version_list(af_store_t *s, const char *workflow_id, af_workflow_version_t **out,
                          size_t *n, af_error_t *err) {
    CHECK(s != NULL && workflow_id != NULL && out != NULL && n != NULL);
    *out = NULL;
    *n = 0;
    return s->vt->version_list(s, workflow_id, out, n, err);
}

/* ---- executions ----------------------------------------------------------------------------- */

/* An optional filter: "" means the same as NULL (any), as an empty query parameter would. */
static const char *filter(const char *v) {
    return v && v[0] ? v : NULL;
}

int af_store_execution_create(af_store_t *s, af_execution_t *e, const af_job_t *job,
                              char *job_id_out, af_error_t *err) {
    CHECK(s != NULL && e != NULL);
    char given_id[AF_STORE_ID_MAX];
    memcpy(given_id, e->id, sizeof given_id);
    int rc = s->vt->begin(s, err);
    if (rc != 0) {
        return rc;
    }
    rc = s->vt->execution_insert(s, e, err);
    if (rc == 0) {
        af_job_t j;
        json_t *payload = NULL;
        if (job) {
            j = *job;
        } else {
            memset(&j, 0, sizeof j);
            snprintf(j.queue, sizeof j.queue, "executions");
        }
        if (j.payload == NULL) {
            payload = json_pack("{s:s}", "execution_id", e->id);
            if (payload == NULL) {
                rc = af_error_set(err, AF_ENOMEM, "out of memory");
            }
            j.payload = payload;
        }
        if (rc == 0) {
            rc = af_queue_enqueue(s->vt->queue(s), &j, job_id_out, err);
        }
        json_decref(payload);
    }
    if (rc != 0) {
        s->vt->rollback(s);
        memcpy(e->id, given_id, sizeof given_id);
        return rc;
    }
    rc = s->vt->commit(s, err);
    if (rc != 0) {
        memcpy(e->id, given_id, sizeof given_id);
    }
    return rc;
}

int af_store_execution_get(af_store_t *s, const char *id, af_execution_t *out, af_error_t *err) {
    CHECK(s != NULL && id != NULL && out != NULL);
    return s->vt->execution_get(s, id, out, err);
}

int af_store_execution_set_status(af_store_t *s, const char *id, const char *status,
                                  const json_t *result, const char *error, int64_t wake_at,
                                  int64_t at, af_error_t *err) {
    CHECK(s != NULL && id != NULL && status != NULL);
    return s->vt->execution_set_status(s, id, status, result, error, wake_at, at, err);
}

int af_store_execution_list(af_store_t *s, const char *workflow_id, const char *status,
                            const char *cursor, int limit, af_execution_t **out, size_t *n,
                            char *next_cursor, af_error_t *err) {
    CHECK(s != NULL && out != NULL && n != NULL && next_cursor != NULL);
    *out = NULL;
    *n = 0;
    if (next_cursor != cursor) { /* they may be one buffer: the backend reads cursor first */
        next_cursor[0] = '\0';
    }
    return s->vt->execution_list(s, filter(workflow_id), filter(status), cursor, limit, out, n,
                                 next_cursor, err);
}

int af_store_execution_count(af_store_t *s, const char *workflow_id, const char *status, int64_t *n,
                             af_error_t *err) {
    CHECK(s != NULL && n != NULL);
    return s->vt->execution_count(s, filter(workflow_id), filter(status), n, err);
}

int af_store_checkpoint_save(af_store_t *s, const af_checkpoint_t *c, af_error_t *err) {
    CHECK(s != NULL && c != NULL);
    return s->vt->checkpoint_save(s, c, err);
}

int af_store_checkpoints_load(af_store_t *s, const char *execution_id, af_checkpoint_t **out,
                              size_t *n, af_error_t *err) {
    CHECK(s != NULL && execution_id != NULL && out != NULL && n != NULL);
    return s->vt->checkpoints_load(s, execution_id, out, n, err);
}

int af_store_log_append(af_store_t *s, const char *execution_id, int64_t at, const char *step,
                        const char *level, const char *message, int64_t *seq, af_error_t *err) {
    CHECK(s != NULL && execution_id != NULL);
    return s->vt->log_append(s, execution_id, at, step, level, message, seq, err);
}

int af_store_logs_load(af_store_t *s, const char *execution_id, int64_t after_seq, int limit,
                       af_log_entry_t **out, size_t *n, af_error_t *err) {
    CHECK(s != NULL && execution_id != NULL && out != NULL && n != NULL);
    return s->vt->logs_load(s, execution_id, after_seq, limit, out, n, err);
}

/* ---- triggers and webhooks ------------------------------------------------------------------ */

int af_store_trigger_create(af_store_t *s, const af_trigger_rec_t *t, char *id_out,
                            af_error_t *err) {
    CHECK(s != NULL && t != NULL && t->workflow_id[0] != '\0');
    return s->vt->trigger_create(s, t, id_out, err);
}

int af_store_trigger_get(af_store_t *s, const char *id, af_trigger_rec_t *out, af_error_t *err) {
    CHECK(s != NULL && id != NULL && out != NULL);
    return s->vt->trigger_get(s, id, out, err);
}

int af_store_trigger_list(af_store_t *s, const char *workflow_id, af_trigger_rec_t **out, size_t *n,
                          af_error_t *err) {
    CHECK(s != NULL && out != NULL && n != NULL);
    *out = NULL;
    *n = 0;
    return s->vt->trigger_list(s, workflow_id, out, n, err);
}

int af_store_trigger_update(af_store_t *s, const af_trigger_rec_t *t, af_error_t *err) {
    CHECK(s != NULL && t != NULL && t->id[0] != '\0');
    return s->vt->trigger_update(s, t, err);
}

int af_store_trigger_delete(af_store_t *s, const char *id, af_error_t *err) {
    CHECK(s != NULL && id != NULL);
    return s->vt->trigger_delete(s, id, err);
}

int af_store_trigger_delete_source(af_store_t *s, const char *workflow_id, const char *source,
                                   af_error_t *err) {
    CHECK(s != NULL && workflow_id != NULL && source != NULL);
    return s->vt->trigger_delete_source(s, workflow_id, source, err);
}

int af_store_webhook_register(af_store_t *s, const af_webhook_rec_t *w, char *id_out,
                              af_error_t *err) {
    CHECK(s != NULL && w != NULL && w->workflow_id[0] != '\0');
    return s->vt->webhook_register(s, w, id_out, err);
}

int af_store_webhook_find(af_store_t *s, const char *path, af_webhook_rec_t *out, af_error_t *err) {
    CHECK(s != NULL && path != NULL && out != NULL);
    return s->vt->webhook_find(s, path, out, err);
}

int af_store_webhook_list(af_store_t *s, const char *cursor, int limit, af_webhook_rec_t **out,
                          size_t *n, char *next_cursor, af_error_t *err) {
    CHECK(s != NULL && out != NULL && n != NULL && next_cursor != NULL);
    *out = NULL;
    *n = 0;
    if (next_cursor != cursor) { /* they may be one buffer: the backend reads cursor first */
        next_cursor[0] = '\0';
    }
    return s->vt->webhook_list(s, cursor, limit, out, n, next_cursor, err);
}

int af_store_webhook_seen(af_store_t *s, const char *scope, const char *msg_id,
                          const char *execution_id, int *duplicate, char *first_execution_id,
                          af_error_t *err) {
    CHECK(s != NULL && scope != NULL && msg_id != NULL && duplicate != NULL);
    if (first_execution_id) {
        first_execution_id[0] = '\0';
    }
    return s->vt->webhook_seen(s, scope, msg_id, execution_id, duplicate, first_execution_id, err);
}

int af_store_webhook_seen_prune(af_store_t *s, int64_t older_than_ms, int64_t *removed,
                                af_error_t *err) {
    CHECK(s != NULL);
    return s->vt->webhook_seen_prune(s, older_than_ms, removed, err);
}

/* ---- trigger state, events ------------------------------------------------------------------- */

int af_store_trigger_state_get(af_store_t *s, const char *trigger_id, af_trigger_state_t *out,
                               af_error_t *err) {
    CHECK(s != NULL && trigger_id != NULL && out != NULL);
    memset(out, 0, sizeof *out);
    return s->vt->trigger_state_get(s, trigger_id, out, err);
}

int af_store_trigger_state_put(af_store_t *s, const char *trigger_id, const af_trigger_state_t *st,
                               af_error_t *err) {
    CHECK(s != NULL && trigger_id != NULL && st != NULL);
    return s->vt->trigger_state_put(s, trigger_id, st, err);
}

void af_event_rec_clear(af_event_rec_t *e) {
    if (e) {
        json_decref(e->data);
        json_decref(e->meta);
        memset(e, 0, sizeof *e);
    }
}

void af_event_recs_free(af_event_rec_t *es, size_t n) {
    for (size_t i = 0; es && i < n; i++) {
        af_event_rec_clear(&es[i]);
    }
    free(es);
}

int af_store_event_put(af_store_t *s, const af_event_rec_t *e, int *duplicate, af_error_t *err) {
    CHECK(s != NULL && e != NULL && e->id[0] && e->type[0] && duplicate != NULL);
    return s->vt->event_put(s, e, duplicate, err);
}

int af_store_event_list(af_store_t *s, int64_t from_ms, int64_t to_ms, const char *cursor,
                        int limit, af_event_rec_t **out, size_t *n, char *next_cursor,
                        af_error_t *err) {
    CHECK(s != NULL && out != NULL && n != NULL && next_cursor != NULL);
    *out = NULL;
    *n = 0; /* next_cursor may be the cursor's buffer: the backend clears it after reading */
    return s->vt->event_list(s, from_ms, to_ms, cursor, limit <= 0 ? 100 : limit, out, n,
                             next_cursor, err);
}

int af_store_event_prune(af_store_t *s, int64_t older_than_ms, int64_t *removed, af_error_t *err) {
    CHECK(s != NULL);
    return s->vt->event_prune(s, older_than_ms, removed, err);
}

/* ---- retention ------------------------------------------------------------------------------ */

int af_store_prune(af_store_t *s, int64_t max_age_ms, int64_t max_count, int64_t *removed,
                   af_error_t *err) {
    CHECK(s != NULL);
    return s->vt->prune(s, max_age_ms, max_count, removed, err);
}

int af_store_checkpoint_wal(af_store_t *s, int64_t *frames, af_error_t *err) {
    CHECK(s != NULL);
    return af__store_sqlite_checkpoint_wal(s, frames, err);
}

int af_store_compact(af_store_t *s, af_error_t *err) {
    CHECK(s != NULL);
    return s->vt->compact(s, err);
}

/* ---- records -------------------------------------------------------------------------------- */

void af_workflow_clear(af_workflow_t *w) {
    if (w) {
        free(w->name);
        free(w->description);
        free(w->project_id);
        memset(w, 0, sizeof *w);
    }
}

void af_workflows_free(af_workflow_t *ws, size_t n) {
    for (size_t i = 0; ws && i < n; i++) {
        af_workflow_clear(&ws[i]);
    }
    free(ws);
}

void af_workflow_version_clear(af_workflow_version_t *v) {
    if (v) {
        free(v->lua_source);
        json_decref(v->definition);
        memset(v, 0, sizeof *v);
    }
}

void af_workflow_versions_free(af_workflow_version_t *vs, size_t n) {
    for (size_t i = 0; vs && i < n; i++) {
        af_workflow_version_clear(&vs[i]);
    }
    free(vs);
}

void af_execution_clear(af_execution_t *e) {
    if (e) {
        json_decref(e->input);
        json_decref(e->result);
        free(e->error);
        memset(e, 0, sizeof *e);
    }
}

void af_executions_free(af_execution_t *es, size_t n) {
    for (size_t i = 0; es && i < n; i++) {
        af_execution_clear(&es[i]);
    }
    free(es);
}

void af_checkpoints_free(af_checkpoint_t *cs, size_t n) {
    for (size_t i = 0; cs && i < n; i++) {
        free(cs[i].step);
        json_decref(cs[i].output);
        free(cs[i].error);
        free(cs[i].port);
    }
    free(cs);
}

void af_trigger_rec_clear(af_trigger_rec_t *t) {
    if (t) {
        json_decref(t->config);
        memset(t, 0, sizeof *t);
    }
}

void af_trigger_recs_free(af_trigger_rec_t *ts, size_t n) {
    for (size_t i = 0; ts && i < n; i++) {
        af_trigger_rec_clear(&ts[i]);
    }
    free(ts);
}

void af_webhook_rec_clear(af_webhook_rec_t *w) {
    if (w) {
        free(w->path);
        free(w->methods);
        json_decref(w->config);
        memset(w, 0, sizeof *w);
    }
}

void af_webhook_recs_free(af_webhook_rec_t *ws, size_t n) {
    for (size_t i = 0; ws && i < n; i++) {
        af_webhook_rec_clear(&ws[i]);
    }
    free(ws);
}

void af_log_entries_free(af_log_entry_t *ls, size_t n) {
    for (size_t i = 0; ls && i < n; i++) {
        free(ls[i].step);
        free(ls[i].message);
    }
    free(ls);
}

/* ---- group commit --------------------------------------------------------------------------- */

typedef struct group_op_s {
    af_store_op_fn op;
    af_store_done_fn done;
    void *ud;
    int rc;
    struct group_op_s *next;
} group_op_t;

struct af_store_group_s {
    af_store_t *store;
    int max_batch;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    group_op_t *head, *tail;
    int closing;
    int started;
    pthread_t thread;
};

af_store_group_t *af_store_group_new(af_store_t *s, int max_batch) {
    if (s == NULL) {
        return NULL;
    }
    af_store_group_t *g = calloc(1, sizeof *g);
    if (g == NULL) {
        return NULL;
    }
    g->store = s;
    g->max_batch = max_batch > 0 ? max_batch : 1024;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    return g;
}

int af_store_group_submit(af_store_group_t *g, af_store_op_fn op, af_store_done_fn done, void *ud) {
    if (g == NULL || op == NULL) {
        return AF_EINVAL;
    }
    group_op_t *o = calloc(1, sizeof *o);
    if (o == NULL) {
        return AF_ENOMEM;
    }
    o->op = op;
    o->done = done;
    o->ud = ud;
    pthread_mutex_lock(&g->mu);
    if (g->closing) {
        pthread_mutex_unlock(&g->mu);
        free(o);
        return AF_ESTATE;
    }
    if (g->tail) { /* the thread waits only on an empty list: no wake-up needed */
        g->tail->next = o;
    } else {
        g->head = o;
        pthread_cond_signal(&g->cv);
    }
    g->tail = o;
    pthread_mutex_unlock(&g->mu);
    return 0;
}

/* The batch in one transaction with a savepoint per operation: a failing one undoes only its own
 * writes. */
static int group_run_nested(af_store_t *s, group_op_t *batch) {
    int rc = s->vt->begin(s, NULL);
    if (rc != 0) {
        return rc;
    }
    for (group_op_t *o = batch; o; o = o->next) {
        o->rc = s->vt->begin(s, NULL);
        if (o->rc == 0) {
            o->rc = o->op(s, o->ud);
            if (o->rc == 0) {
                o->rc = s->vt->commit(s, NULL);
            } else {
                s->vt->rollback(s);
            }
        }
    }
    return s->vt->commit(s, NULL);
}

/* Savepoints cost a statement each and a copy of every page an operation touches, so the batch
 * first runs without them; only when an operation fails (rare: a constraint, a vanished row) is
 * it all rolled back and run again with one savepoint per operation. */
static int group_run(af_store_t *s, group_op_t *batch) {
    int rc = s->vt->begin(s, NULL);
    if (rc != 0) {
        return rc;
    }
    int failed = 0;
    s->vt->flat(s, 1);
    for (group_op_t *o = batch; o && !failed; o = o->next) {
        o->rc = o->op(s, o->ud);
        failed = o->rc != 0;
    }
    failed |= s->vt->flat(s, 0);
    if (!failed) {
        return s->vt->commit(s, NULL);
    }
    s->vt->rollback(s);
    return group_run_nested(s, batch);
}

int af_store_group_flush(af_store_group_t *g) {
    if (g == NULL) {
        return AF_EINVAL;
    }
    pthread_mutex_lock(&g->mu);
    group_op_t *batch = g->head, *last = NULL;
    int count = 0;
    for (group_op_t *o = batch; o && count < g->max_batch; o = o->next) {
        last = o;
        count++;
    }
    if (last) {
        g->head = last->next;
        if (g->head == NULL) {
            g->tail = NULL;
        }
        last->next = NULL;
    }
    pthread_mutex_unlock(&g->mu);
    if (count == 0) {
        return 0;
    }
    int rc = group_run(g->store, batch);
    for (group_op_t *o = batch, *next; o; o = next) {
        next = o->next;
        if (o->done) {
            o->done(o->ud, rc != 0 ? rc : o->rc);
        }
        free(o);
    }
    return rc != 0 ? rc : count;
}

static void *group_thread(void *arg) {
    af_store_group_t *g = arg;
    for (;;) {
        pthread_mutex_lock(&g->mu);
        while (g->head == NULL && !g->closing) {
            pthread_cond_wait(&g->cv, &g->mu);
        }
        int stop = g->head == NULL && g->closing;
        pthread_mutex_unlock(&g->mu);
        if (stop) {
            return NULL;
        }
        af_store_group_flush(g);
    }
}

int af_store_group_start(af_store_group_t *g) {
    if (g == NULL) {
        return AF_EINVAL;
    }
    if (g->started) {
        return AF_ESTATE;
    }
    if (pthread_create(&g->thread, NULL, group_thread, g) != 0) {
        return AF_ENOMEM;
    }
    g->started = 1;
    return 0;
}

void af_store_group_free(af_store_group_t *g) {
    if (g == NULL) {
        return;
    }
    pthread_mutex_lock(&g->mu);
    g->closing = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (g->started) {
        pthread_join(g->thread, NULL);
    }
    /* Every flush takes its batch off the list, even one that fails (its done callbacks then get
     * the error), so this ends. */
    while (g->head) {
        af_store_group_flush(g);
    }
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}
