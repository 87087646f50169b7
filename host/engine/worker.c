/* worker.c -- the execution worker of `agentflow serve`: an in-memory schedule (due times in a
 * heap, one FIFO per workflow for its concurrency limit) over the durable queue, and the
 * engine's storage seam (checkpoints, durable waits, logs, results) written by group commit. */
#include "engine/worker.h"

#include "core/clock.h"
#include "engine/outcome.h"

#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

typedef enum { ITEM_WAITING, ITEM_RUNNING, ITEM_PARKING, ITEM_ENDING } item_state_t;

struct af_watch_s {
    void (*cb)(void *ud, const char *status, const af_outcome_t *outcome);
    void *ud;
    struct af_watch_s *next;
    struct item_s *item;
};

typedef struct wfstate_s wfstate_t;
typedef struct af_worker_s af_worker_t;

typedef struct item_s {
    af_worker_t *w;
    char id[AF_STORE_ID_MAX];
    char workflow_id[AF_STORE_ID_MAX];
    int version;
    json_t *input;         /* given by this process just now (no checkpoints yet), else NULL: the
                            * input and checkpoints are read from the store when it starts */
    int leased;            /* its job was leased to this worker when it was created */
    af_outcome_t *outcome; /* what it wrote, when it ran here from its creation; else NULL */
    int leaf_lost;         /* writer thread only: checkpoints of leaf steps that failed */
    int64_t run_at;
    int event_depth; /* of the event that started it */
    item_state_t state;
    int heap_index; /* -1 when not in the heap */
    int cancel;     /* cancelled while its park was being written */
    af_exec_t *x;
    wfstate_t *wf;
    af_watch_t *watches;
    struct item_s *hash_next, *fifo_next;
    struct item_s *park_next; /* quiet, to be parked on the next loop turn */
    int64_t park_wake;
} item_t;

struct wfstate_s {
    char workflow_id[AF_STORE_ID_MAX];
    int limit;       /* 0: none (learnt from the graph of its first execution) */
    int limit_known; /* an execution has started: limit is the graph's */
    int running;
    item_t *head, *tail; /* due, waiting for a slot */
    struct wfstate_s *hash_next, *ready_next;
    int in_ready;
};

struct af_worker_s {
    af_worker_opts_t o;
    char worker_id[AF_STORE_ID_MAX];
    char *data_dir;
    af_engine_t *engine;
    item_t **items; /* hash by execution id */
    size_t nitems, cap;
    wfstate_t **wfs; /* hash by workflow id */
    size_t wfcap;
    wfstate_t *ready; /* workflows with due items */
    item_t **heap;    /* by run_at */
    size_t nheap, heapcap;
    int running, waiting;
    uv_timer_t *due_timer, *beat_timer, *park_timer, *stop_timer;
    item_t *to_park;
    struct {
        char workflow_id[AF_STORE_ID_MAX];
        int version;
    } written[256]; /* version scripts known to be on disk (they never change); as many as the
                     * engine keeps loaded */
    int stopping;
    void (*stop_cb)(void *ud);
    void *stop_ud;
};

static void dispatch(af_worker_t *w);

/* ---- tables ---- */

static item_t *item_find(af_worker_t *w, const char *id) {
    for (item_t *it = w->items[af_hash_str(id) & (w->cap - 1)]; it; it = it->hash_next) {
        if (strcmp(it->id, id) == 0) {
            return it;
        }
    }
    return NULL;
}

static int items_grow(af_worker_t *w) {
    size_t cap = w->cap * 2;
    item_t **t = calloc(cap, sizeof *t);
    if (t == NULL) {
        return AF_ENOMEM;
    }
    for (size_t i = 0; i < w->cap; i++) {
        for (item_t *it = w->items[i], *next; it; it = next) {
            next = it->hash_next;
            size_t b = af_hash_str(it->id) & (cap - 1);
            it->hash_next = t[b];
            t[b] = it;
        }
    }
    free(w->items);
    w->items = t;
    w->cap = cap;
    return 0;
}

static wfstate_t *wf_get(af_worker_t *w, const char *workflow_id) {
    size_t b = af_hash_str(workflow_id) & (w->wfcap - 1);
    for (wfstate_t *s = w->wfs[b]; s; s = s->hash_next) {
        if (strcmp(s->workflow_id, workflow_id) == 0) {
            return s;
        }
    }
    wfstate_t *s = calloc(1, sizeof *s);
    if (s) {
        af_strlcpy(s->workflow_id, workflow_id, sizeof s->workflow_id);
        s->hash_next = w->wfs[b];
        w->wfs[b] = s;
    }
    return s;
}

static item_t *item_add(af_worker_t *w, const char *id, const char *workflow_id, int version) {
    if (w->nitems * 2 >= w->cap && items_grow(w) != 0) {
        return NULL;
    }
    item_t *it = calloc(1, sizeof *it);
    wfstate_t *wf = it ? wf_get(w, workflow_id) : NULL;
    if (wf == NULL) {
        free(it);
        return NULL;
    }
    it->w = w;
    af_strlcpy(it->id, id, sizeof it->id);
    af_strlcpy(it->workflow_id, workflow_id, sizeof it->workflow_id);
    it->version = version;
    it->heap_index = -1;
    it->wf = wf;
    size_t b = af_hash_str(id) & (w->cap - 1);
    it->hash_next = w->items[b];
    w->items[b] = it;
    w->nitems++;
    return it;
}

static void notify(item_t *it, const char *status) {
    af_watch_t *list = it->watches;
    it->watches = NULL;
    const af_outcome_t *o = it->outcome;
    if (status == NULL || o == NULL || strcmp(o->execution.status, status) != 0) {
        o = NULL; /* not (all) written by this process: the store tells */
    }
    while (list) {
        af_watch_t *next = list->next;
        list->cb(list->ud, status, o);
        free(list);
        list = next;
    }
}

static void item_remove(af_worker_t *w, item_t *it, const char *status) {
    item_t **pp = &w->items[af_hash_str(it->id) & (w->cap - 1)];
    while (*pp && *pp != it) {
        pp = &(*pp)->hash_next;
    }
    if (*pp) {
        *pp = it->hash_next;
        w->nitems--;
    }
    notify(it, status);
    json_decref(it->input);
    af_outcome_free(it->outcome);
    free(it);
}

/* ---- the heap of due times ---- */

static void heap_swap(af_worker_t *w, size_t a, size_t b) {
    item_t *t = w->heap[a];
    w->heap[a] = w->heap[b];
    w->heap[b] = t;
    w->heap[a]->heap_index = (int)a;
    w->heap[b]->heap_index = (int)b;
}

static void heap_up(af_worker_t *w, size_t i) {
    while (i > 0 && w->heap[(i - 1) / 2]->run_at > w->heap[i]->run_at) {
        heap_swap(w, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(af_worker_t *w, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < w->nheap && w->heap[l]->run_at < w->heap[m]->run_at) {
            m = l;
        }
        if (r < w->nheap && w->heap[r]->run_at < w->heap[m]->run_at) {
            m = r;
        }
        if (m == i) {
            return;
        }
        heap_swap(w, i, m);
        i = m;
    }
}

static void heap_remove(af_worker_t *w, item_t *it) {
    size_t i = (size_t)it->heap_index;
    it->heap_index = -1;
    w->nheap--;
    if (i != w->nheap) {
        w->heap[i] = w->heap[w->nheap];
        w->heap[i]->heap_index = (int)i;
        heap_down(w, i);
        heap_up(w, i);
    }
}

static void arm_due_timer(af_worker_t *w);

static void schedule(af_worker_t *w, item_t *it) {
    it->state = ITEM_WAITING;
    w->waiting++;
    if (it->run_at > af_wall_ms()) {
        if (w->nheap == w->heapcap) {
            size_t cap = w->heapcap ? w->heapcap * 2 : 64;
            item_t **h = realloc(w->heap, cap * sizeof *h);
            if (h == NULL) {
                it->run_at = 0; /* out of memory: run it now rather than lose it */
                schedule(w, it);
                return;
            }
            w->heap = h;
            w->heapcap = cap;
        }
        w->heap[w->nheap] = it;
        it->heap_index = (int)w->nheap++;
        heap_up(w, w->nheap - 1);
        arm_due_timer(w);
        return;
    }
    wfstate_t *wf = it->wf;
    it->fifo_next = NULL;
    if (wf->tail) {
        wf->tail->fifo_next = it;
    } else {
        wf->head = it;
    }
    wf->tail = it;
    if (!wf->in_ready) {
        wf->in_ready = 1;
        wf->ready_next = w->ready;
        w->ready = wf;
    }
}

static void unschedule(af_worker_t *w, item_t *it) {
    if (it->state != ITEM_WAITING) {
        return;
    }
    w->waiting--;
    if (it->heap_index >= 0) {
        heap_remove(w, it);
    } else { /* due: in its workflow's FIFO */
        wfstate_t *wf = it->wf;
        item_t *prev = NULL;
        for (item_t *c = wf->head; c; prev = c, c = c->fifo_next) {
            if (c == it) {
                if (prev) {
                    prev->fifo_next = c->fifo_next;
                } else {
                    wf->head = c->fifo_next;
                }
                if (wf->tail == c) {
                    wf->tail = prev;
                }
                break;
            }
        }
    }
}

static void on_due(uv_timer_t *t) {
    af_worker_t *w = t->data;
    int64_t now = af_wall_ms();
    while (w->nheap > 0 && w->heap[0]->run_at <= now) {
        item_t *it = w->heap[0];
        heap_remove(w, it);
        w->waiting--;
        schedule(w, it);
    }
    arm_due_timer(w);
    dispatch(w);
}

static void arm_due_timer(af_worker_t *w) {
    if (w->nheap == 0) {
        af_clock_timer_stop(w->due_timer);
        return;
    }
    af_clock_timer_start(w->due_timer, on_due, w->heap[0]->run_at);
}

/* ---- writes ---- */

/* One write for the writer thread; what it needs is copied in. */
typedef struct op_s {
    af_worker_t *w;
    item_t *item;
    af_exec_t *x;
    int step;
    char id[AF_STORE_ID_MAX];
    char status[AF_STORE_STATUS_MAX];
    char *text, *text2; /* step name, error, log line ... */
    json_t *json;
    int attempts;
    int leased; /* write_start: the job was leased to this worker when it was created */
    int *lost;  /* a leaf step's checkpoint: its item's leaf_lost (counted while failed) */
    int counted;
    int64_t at, wake_at;
} op_t;

static op_t *op_new(af_worker_t *w, item_t *it, const char *id) {
    op_t *op = calloc(1, sizeof *op);
    if (op) {
        op->w = w;
        op->item = it;
        af_strlcpy(op->id, id, sizeof op->id);
    }
    return op;
}

static void op_free(op_t *op) {
    free(op->text);
    free(op->text2);
    json_decref(op->json);
    free(op);
}

static void op_done_free(void *ud, int rc) {
    (void)rc;
    op_free(ud);
}

static void submit(af_worker_t *w, op_t *op, af_store_op_fn fn, af_store_async_done_fn done) {
    if (op == NULL) {
        af_log(AF_LEVEL_ERROR, "worker: out of memory for a store write");
        return;
    }
    if (af_store_async_submit(w->o.writer, fn, done ? done : op_done_free, op) != 0) {
        af_log(AF_LEVEL_ERROR, "worker: the store's writer refused a write for %s", op->id);
        if (done) {
            done(op, AF_ESTATE);
        } else {
            op_free(op);
        }
    }
}

/* An execution starts: its job is claimed (unless it was leased to this worker when it was
 * created) and it is recorded as running. */
static int write_start(af_store_t *s, void *ud) {
    op_t *op = ud;
    af_error_t err;
    if (!op->leased) {
        int rc = af_queue_claim(af_store_queue(s), op->id, op->w->worker_id, op->w->o.lease_ms,
                                NULL, &err);
        if (rc != 0 && rc != AF_ENOTFOUND) { /* not found: already ours (a resumed run) */
            return rc;
        }
    }
    return af_store_execution_set_status(s, op->id, "running", NULL, NULL, 0, op->at, &err);
}

/* The checkpoint an op writes (borrowing the op's strings). */
static void checkpoint_of(const op_t *op, af_checkpoint_t *c) {
    *c = (af_checkpoint_t){.step = op->text,
                           .attempts = op->attempts,
                           .output = op->json,
                           .error = op->text2,
                           .wake_at = op->wake_at,
                           .ended_at = op->at};
    af_strlcpy(c->execution_id, op->id, sizeof c->execution_id);
    af_strlcpy(c->status, op->status, sizeof c->status);
    if (op->status[0] == 's') { /* succeeded: text2 is the port */
        c->port = op->text2;
        c->error = NULL;
    }
}

static int write_checkpoint(af_store_t *s, void *ud) {
    op_t *op = ud;
    af_checkpoint_t c;
    checkpoint_of(op, &c);
    af_error_t err;
    int rc = af_store_checkpoint_save(s, &c, &err);
    if (op->lost && (rc != 0) != op->counted) { /* a batch may run twice: count once */
        op->counted = rc != 0;
        *op->lost += op->counted ? 1 : -1;
    }
    return rc;
}

/* A write for the execution failed: what this process kept of it no longer says what is stored,
 * so its waiters read the store. */
static void outcome_drop(af_worker_t *w, const char *id) {
    item_t *it = item_find(w, id);
    if (it && it->outcome) {
        af_outcome_free(it->outcome);
        it->outcome = NULL;
    }
}

/* Keeps what an op writes in the outcome of an execution that has one. */
static void record(item_t *it, const op_t *op) {
    if (it && it->outcome) {
        af_checkpoint_t c;
        checkpoint_of(op, &c);
        if (af_outcome_step(it->outcome, &c) != 0) {
            af_outcome_free(it->outcome); /* out of memory: waiters read the store */
            it->outcome = NULL;
        }
    }
}

static void checkpoint_written(void *ud, int rc) {
    op_t *op = ud;
    if (rc != 0) {
        outcome_drop(op->w, op->id);
    }
    af_exec_checkpoint_done(op->x, op->step, rc);
    op_free(op);
}

/* A checkpoint nothing waits for (the step has no dependents) is not waited for either: the
 * writer commits in submission order, so it is durable no later than the execution's end. If it
 * fails, the end (written after it, on the same thread) records the execution as failed. */
static void leaf_checkpoint_written(void *ud, int rc) {
    op_t *op = ud;
    if (rc != 0) {
        af_log(AF_LEVEL_ERROR, "worker: could not checkpoint step '%s' of execution %s: %s",
               op->text, op->id, af_strerror(rc));
        outcome_drop(op->w, op->id);
    }
    op_free(op);
}

static int engine_checkpoint(void *ud, const af_exec_t *x, int step, const json_t *output) {
    af_worker_t *w = ud;
    op_t *op = op_new(w, NULL, af_exec_id(x));
    if (op == NULL) {
        return AF_ENOMEM;
    }
    af_step_status_t st = af_exec_step_status(x, step);
    op->x = (af_exec_t *)x;
    op->step = step;
    op->text = strdup(af_exec_graph(x)->steps[step].name);
    af_strlcpy(op->status, st == AF_STEP_SUCCEEDED ? "succeeded" : "failed", sizeof op->status);
    if (st == AF_STEP_SUCCEEDED) {
        const char *port = af_exec_step_port(x, step);
        op->text2 = port ? strdup(port) : NULL;
    } else {
        op->text2 = af_exec_step_error(x, step);
    }
    op->json = output ? json_incref((json_t *)output) : NULL;
    op->attempts = af_exec_step_attempts(x, step);
    op->at = af_wall_ms();
    item_t *it = item_find(w, op->id); /* once: the outcome and a leaf's lost count */
    record(it, op);
    int leaf = it && af_exec_graph(x)->steps[step].ndependents == 0;
    op->lost = leaf ? &it->leaf_lost : NULL;
    if (af_store_async_submit(w->o.writer, write_checkpoint,
                              leaf ? leaf_checkpoint_written : checkpoint_written, op) != 0) {
        outcome_drop(w, op->id);
        op_free(op);
        return AF_ESTATE;
    }
    return leaf ? 0 : AF_CHECKPOINT_PENDING;
}

static void engine_wait(void *ud, const af_exec_t *x, int step, int64_t wake_at) {
    af_worker_t *w = ud;
    op_t *op = op_new(w, NULL, af_exec_id(x));
    if (op) {
        op->text = strdup(af_exec_graph(x)->steps[step].name);
        snprintf(op->status, sizeof op->status, "waiting");
        op->attempts = af_exec_step_attempts(x, step);
        op->wake_at = wake_at;
        op->at = af_wall_ms();
        record(item_find(w, op->id), op);
    }
    submit(w, op, write_checkpoint, NULL);
}

static int write_log(af_store_t *s, void *ud) {
    op_t *op = ud;
    af_error_t err;
    return af_store_log_append(s, op->id, op->at, op->text2, op->status, op->text, NULL, &err);
}

/* Logs what the steps' checkpoints do not say already: log lines, retries, failures, the end. */
static void engine_event(void *ud, const af_event_t *ev) {
    af_worker_t *w = ud;
    char line[1600];
    char d[32];
    if (ev->depth > 0) {
        return;
    }
    switch (ev->kind) {
    case AF_EV_STEP_END:
        if (ev->status != AF_STEP_FAILED && ev->status != AF_STEP_CANCELLED) {
            return;
        }
        snprintf(line, sizeof line, "%s attempt %d %s%s%s", af_step_status_name(ev->status),
                 ev->attempt, af_duration_format(ev->duration_ms, d, sizeof d),
                 ev->error ? " " : "", ev->error ? ev->error : "");
        break;
    case AF_EV_STEP_RETRY:
        snprintf(line, sizeof line, "retry in %s after attempt %d: %s",
                 af_duration_format((double)ev->retry_in_ms, d, sizeof d), ev->attempt,
                 ev->error ? ev->error : "");
        break;
    case AF_EV_LOG:
        af_strlcpy(line, ev->text ? ev->text : "", sizeof line);
        break;
    case AF_EV_EXEC_END:
        if (ev->error == NULL) {
            return; /* the execution's row says it succeeded, and when */
        }
        snprintf(line, sizeof line, "finished in %s%s%s",
                 af_duration_format(ev->duration_ms, d, sizeof d), ev->error ? ": " : "",
                 ev->error ? ev->error : "");
        break;
    default:
        return;
    }
    op_t *op = op_new(w, NULL, ev->execution_id);
    if (op) {
        op->text = strdup(line);
        op->text2 = ev->step ? strdup(ev->step) : NULL;
        af_strlcpy(op->status, ev->error ? "error" : "info", sizeof op->status);
        op->at = af_wall_ms();
    }
    submit(w, op, write_log, NULL);
}

/* ---- ends ---- */

static void slot_free(af_worker_t *w, item_t *it) {
    w->running--;
    it->wf->running--;
}

static int write_end(af_store_t *s, void *ud) {
    op_t *op = ud;
    af_error_t err;
    if (op->item->leaf_lost > 0 && strcmp(op->status, "succeeded") == 0) {
        af_strlcpy(op->status, "failed", sizeof op->status); /* its result is not all stored */
        free(op->text);
        op->text = strdup("CHECKPOINT: a step's checkpoint could not be written");
    }
    int rc =
        af_store_execution_set_status(s, op->id, op->status, op->json, op->text, 0, op->at, &err);
    if (rc == 0) { /* the job is done: ours to complete, or (a cancelled queued one) removed */
        af_queue_t *q = af_store_queue(s);
        rc = af_queue_complete(q, op->id, op->w->worker_id, &err);
        rc = rc == AF_ESTATE ? af_queue_remove(q, op->id, &err) : rc;
        rc = rc == AF_ENOTFOUND ? 0 : rc;
    }
    return rc;
}

static void end_written(void *ud, int rc) {
    op_t *op = ud;
    if (rc != 0) {
        af_log(AF_LEVEL_ERROR, "worker: could not record the end of execution %s: %s", op->id,
               af_strerror(rc));
        outcome_drop(op->w, op->id);
    }
    item_remove(op->w, op->item, op->status);
    op_free(op);
}

/* Records a final status (result and error may be NULL) and then forgets the execution. */
static void end_item(af_worker_t *w, item_t *it, const char *status, json_t *result,
                     const char *error) {
    it->state = ITEM_ENDING;
    op_t *op = op_new(w, it, it->id);
    if (op == NULL) {
        json_decref(result);
        return;
    }
    af_strlcpy(op->status, status, sizeof op->status);
    op->json = result;
    op->text = error ? strdup(error) : NULL;
    op->at = af_wall_ms();
    af_outcome_t *o = it->outcome;
    if (o) {
        af_execution_t *e = &o->execution;
        af_strlcpy(e->status, status, sizeof e->status);
        e->result = result ? json_incref(result) : NULL;
        e->error = error ? strdup(error) : NULL;
        e->completed_at = op->at;
        af_outcome_sort(o);
    }
    submit(w, op, write_end, end_written);
}

static void maybe_stopped(af_worker_t *w);

static void exec_done(af_exec_t *x, void *ud) {
    item_t *it = ud;
    af_worker_t *w = it->w;
    it->x = NULL;
    const af_fault_t *f = af_exec_fault(x);
    char error[1200];
    char *masked = NULL;
    if (f) {
        snprintf(error, sizeof error, "%s: %s", f->code, f->message);
        masked = af_engine_mask(w->engine, error);
    }
    json_t *result = af_exec_result(x);
    const char *status = af_exec_status_name(af_exec_status(x));
    slot_free(w, it);
    end_item(w, it, status, result, masked);
    af_exec_free(x);
    free(masked);
    dispatch(w);
    maybe_stopped(w);
}

/* ---- parking ---- */

static int write_park(af_store_t *s, void *ud) {
    op_t *op = ud;
    af_error_t err;
    int rc = af_store_execution_set_status(s, op->id, "waiting", NULL, NULL, op->wake_at, 0, &err);
    if (rc == 0) {
        rc = af_queue_reschedule(af_store_queue(s), op->id, op->w->worker_id, op->wake_at, &err);
    }
    return rc;
}

static void park_written(void *ud, int rc) {
    op_t *op = ud;
    af_worker_t *w = op->w;
    item_t *it = op->item;
    if (rc != 0) {
        af_log(AF_LEVEL_ERROR, "worker: could not park execution %s: %s", it->id, af_strerror(rc));
    }
    if (it->cancel) {
        end_item(w, it, "cancelled", NULL, "CANCELLED: cancelled through the API");
    } else if (!w->stopping) {
        it->run_at = op->wake_at;
        schedule(w, it);
        dispatch(w);
    } else {
        item_remove(w, it, NULL); /* the store holds it; the next start resumes it */
    }
    op_free(op);
    maybe_stopped(w);
}

static void park(af_worker_t *w, item_t *it, int64_t wake_at) {
    if (it->x == NULL || af_exec_park(it->x) != 0) {
        return; /* no longer quiet */
    }
    it->x = NULL;
    it->state = ITEM_PARKING;
    json_decref(it->input);
    it->input = NULL;
    af_outcome_free(it->outcome); /* it goes on from the store */
    it->outcome = NULL;
    slot_free(w, it);
    op_t *op = op_new(w, it, it->id);
    if (op) {
        op->wake_at = wake_at;
    }
    submit(w, op, write_park, park_written);
}

static void on_park_timer(uv_timer_t *t) {
    af_worker_t *w = t->data;
    item_t *list = w->to_park;
    w->to_park = NULL;
    while (list) {
        item_t *next = list->park_next;
        list->park_next = NULL;
        park(w, list, list->park_wake);
        list = next;
    }
    dispatch(w);
}

static int in_park_list(af_worker_t *w, item_t *it) {
    for (item_t *c = w->to_park; c; c = c->park_next) {
        if (c == it) {
            return 1;
        }
    }
    return 0;
}

static void engine_quiet(void *ud, af_exec_t *x, int64_t wake_at) {
    af_worker_t *w = ud;
    item_t *it = item_find(w, af_exec_id(x));
    if (it == NULL || it->x != x || (!w->stopping && wake_at - af_wall_ms() < w->o.park_after_ms) ||
        in_park_list(w, it)) {
        return;
    }
    it->park_wake = wake_at;
    it->park_next = w->to_park;
    w->to_park = it;
    uv_timer_start(w->park_timer, on_park_timer, 0, 0);
}

/* ---- starting ---- */

static int write_fail(af_store_t *s, void *ud) {
    op_t *op = ud;
    af_error_t err;
    int rc = af_store_execution_set_status(s, op->id, "failed", NULL, op->text, 0, 0, &err);
    if (rc == 0) {
        rc = af_queue_fail(af_store_queue(s), op->id, op->w->worker_id, op->text, AF_QUEUE_NO_RETRY,
                           NULL, &err);
        rc = rc == AF_ESTATE ? 0 : rc;
    }
    return rc;
}

static void fail_written(void *ud, int rc) {
    op_t *op = ud;
    af_worker_t *w = op->w;
    (void)rc;
    item_remove(w, op->item, "failed");
    op_free(op);
    dispatch(w); /* its slot is free */
    maybe_stopped(w);
}

/* The checkpoints of a stored execution as the engine's resume object (new; NULL if none). */
static json_t *resume_of(af_worker_t *w, item_t *it, int64_t *started_at) {
    af_error_t err;
    af_execution_t e = {0};
    if (af_store_execution_get(w->o.reader, it->id, &e, &err) == 0) {
        if (it->input == NULL) {
            it->input = e.input ? json_incref(e.input) : NULL;
        }
        *started_at = e.started_at;
        it->event_depth = e.event_depth;
    }
    af_execution_clear(&e);
    af_checkpoint_t *cs = NULL;
    size_t n = 0;
    if (af_store_checkpoints_load(w->o.reader, it->id, &cs, &n, &err) != 0 || n == 0) {
        return NULL;
    }
    json_t *resume = json_object();
    for (size_t i = 0; i < n; i++) {
        json_object_set_new(resume, cs[i].step,
                            json_pack("{s:s, s:O?, s:s?, s:s?, s:i, s:I}", "status", cs[i].status,
                                      "output", cs[i].output, "port", cs[i].port, "error",
                                      cs[i].error, "attempts", cs[i].attempts, "wake_at",
                                      (json_int_t)cs[i].wake_at));
    }
    af_checkpoints_free(cs, n);
    return resume;
}

/* Runs an item that holds a slot, from its input or its checkpoints. */
static void run_item(af_worker_t *w, item_t *it) {
    char path[4096];
    af_error_t err = {0};
    int64_t started_at = 0;
    json_t *resume = it->input ? NULL : resume_of(w, it, &started_at);
    it->state = ITEM_RUNNING;
    int rc = af_worker_version_file(w, it->workflow_id, it->version, path, sizeof path, &err);
    if (rc == 0) {
        af_exec_start_t st = {.file = path,
                              .input = it->input,
                              .id = it->id,
                              .resume = resume,
                              .started_at = started_at,
                              .event_depth = it->event_depth,
                              .on_done = exec_done,
                              .ud = it};
        rc = af_exec_start(w->engine, &st, &it->x, &err);
    }
    json_decref(resume);
    if (rc != 0) { /* the version cannot run: a dead letter, with the reason */
        slot_free(w, it);
        it->state = ITEM_ENDING;
        op_t *op = op_new(w, it, it->id);
        if (op) {
            op->text = strdup(err.msg[0] ? err.msg : af_strerror(rc));
        }
        submit(w, op, write_fail, fail_written);
        return;
    }
    const af_graph_t *g = af_exec_graph(it->x);
    it->wf->limit = g->concurrency;
    it->wf->limit_known = 1;
}

static void start_written(void *ud, int rc) {
    op_t *op = ud;
    if (rc != 0) {
        outcome_drop(op->w, op->id);
    }
    op_free(op);
}

/* A due item takes a slot, is recorded as running (its job claimed unless it was leased to this
 * worker at creation) and runs. */
static void start_item(af_worker_t *w, item_t *it) {
    w->running++;
    it->wf->running++;
    op_t *start = op_new(w, it, it->id);
    if (start) {
        start->leased = it->leased;
        start->at = af_wall_ms();
        if (it->outcome) {
            it->outcome->execution.started_at = start->at;
            it->outcome->execution.attempt = 1;
        }
    }
    it->leased = 0;
    submit(w, start, write_start, start_written);
    run_item(w, it);
}

/* Starts due executions while there are slots: the process's and each workflow's. */
static void dispatch(af_worker_t *w) {
    if (w->stopping) {
        return;
    }
    int progress = 1;
    while (progress && w->running < w->o.concurrency) {
        progress = 0;
        wfstate_t **pp = &w->ready;
        while (*pp && w->running < w->o.concurrency) {
            wfstate_t *wf = *pp;
            if (wf->head == NULL) { /* drained: off the ready list */
                wf->in_ready = 0;
                *pp = wf->ready_next;
                continue;
            }
            if (wf->limit > 0 && wf->running >= wf->limit) {
                pp = &wf->ready_next;
                continue;
            }
            item_t *it = wf->head;
            wf->head = it->fifo_next;
            if (wf->head == NULL) {
                wf->tail = NULL;
            }
            w->waiting--;
            start_item(w, it);
            progress = 1;
            pp = &wf->ready_next;
        }
    }
}

/* ---- the public side ---- */

af_engine_t *af_worker_engine(af_worker_t *w) {
    return w->engine;
}

int64_t af_worker_lease_ms(const af_worker_t *w) {
    return w->o.lease_ms;
}

const char *af_worker_id(const af_worker_t *w) {
    return w->worker_id;
}

int af_worker_version_file(af_worker_t *w, const char *workflow_id, int version, char *path,
                           size_t size, af_error_t *err) {
    size_t slot =
        (af_hash_str(workflow_id) + (size_t)version) % (sizeof w->written / sizeof w->written[0]);
    snprintf(path, size, "%s/versions/%s-v%d.lua", w->data_dir, workflow_id, version);
    if (w->written[slot].version == version &&
        strcmp(w->written[slot].workflow_id, workflow_id) == 0) {
        return 0;
    }
    struct stat st;
    if (stat(path, &st) == 0) {
        snprintf(w->written[slot].workflow_id, AF_STORE_ID_MAX, "%s", workflow_id);
        w->written[slot].version = version;
        return 0;
    }
    snprintf(path, size, "%s/versions", w->data_dir);
    mkdir(path, 0700);
    snprintf(path, size, "%s/versions/%s-v%d.lua", w->data_dir, workflow_id, version);
    af_workflow_version_t v = {0};
    int rc = af_store_version_get(w->o.reader, workflow_id, version, &v, err);
    if (rc != 0) {
        return rc;
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int ok = f != NULL && fputs(v.lua_source ? v.lua_source : "", f) >= 0;
    ok = f != NULL && fclose(f) == 0 && ok && rename(tmp, path) == 0;
    af_workflow_version_clear(&v);
    return ok ? 0 : af_error_set(err, AF_EIO, "cannot write %s", path);
}

/* A slot is free for the workflow now: the process's, the workflow's (once its limit is known)
 * and nothing of the workflow waits ahead. */
static int slot_free_for(af_worker_t *w, wfstate_t *wf) {
    return !w->stopping && w->running < w->o.concurrency && wf->limit_known &&
           (wf->limit == 0 || wf->running < wf->limit) && wf->head == NULL;
}

int af_worker_reserve(af_worker_t *w, const char *workflow_id) {
    wfstate_t *wf = wf_get(w, workflow_id);
    if (wf == NULL || !slot_free_for(w, wf)) {
        return 0;
    }
    w->running++;
    wf->running++;
    return 1;
}

void af_worker_unreserve(af_worker_t *w, const char *workflow_id) {
    wfstate_t *wf = wf_get(w, workflow_id);
    w->running--;
    if (wf) {
        wf->running--;
    }
    dispatch(w);
    maybe_stopped(w);
}

/* What a new execution's row says when it was created (the outcome its run goes on filling). */
static af_outcome_t *outcome_of(item_t *it, json_t *input, int64_t created_at, int started) {
    af_outcome_t *o = af_outcome_new();
    if (o) {
        af_execution_t *e = &o->execution;
        af_strlcpy(e->id, it->id, sizeof e->id);
        af_strlcpy(e->workflow_id, it->workflow_id, sizeof e->workflow_id);
        af_strlcpy(e->status, started ? "running" : "queued", sizeof e->status);
        e->version = it->version;
        e->input = json_incref(input);
        e->attempt = started; /* an attempt is counted when it starts */
        e->created_at = created_at;
        e->started_at = started ? created_at : 0;
    }
    return o;
}

void af_worker_enqueue(af_worker_t *w, const af_worker_job_t *job) {
    const char *execution_id = job->execution_id, *workflow_id = job->workflow_id;
    json_t *input = job->input;
    int how = job->how;
    if (item_find(w, execution_id)) {
        if (how == AF_WORKER_STARTED) {
            af_worker_unreserve(w, workflow_id);
        }
        return;
    }
    item_t *it = item_add(w, execution_id, workflow_id, job->version);
    if (it == NULL) {
        af_log(AF_LEVEL_ERROR, "worker: out of memory; execution %s waits for the next start",
               execution_id);
        if (how == AF_WORKER_STARTED) {
            af_worker_unreserve(w, workflow_id);
        }
        return;
    }
    it->input = input ? json_incref(input) : NULL;
    it->event_depth = job->event_depth;
    if (input && job->created_at > 0) {
        it->outcome = outcome_of(it, input, job->created_at, how == AF_WORKER_STARTED);
    }
    it->leased = how != AF_WORKER_QUEUED;
    it->run_at = job->run_at;
    if (how == AF_WORKER_STARTED) {
        if (!w->stopping) { /* its slot was reserved and its row says running */
            it->leased = 0;
            run_item(w, it);
            return;
        }
        af_worker_unreserve(w, workflow_id); /* stopping: it goes on at the next start */
    }
    schedule(w, it);
    dispatch(w);
}

/* A job started max_attempts times whose process died each time: a dead letter, not a crash loop.
 */
static int write_dead(af_store_t *s, void *ud) {
    op_t *op = ud;
    af_error_t err;
    af_queue_t *q = af_store_queue(s);
    int rc = af_queue_claim(q, op->id, op->w->worker_id, op->w->o.lease_ms, NULL, &err);
    if (rc == 0) {
        rc = af_queue_fail(q, op->id, op->w->worker_id, op->text, AF_QUEUE_NO_RETRY, NULL, &err);
    }
    if (rc == 0) {
        rc = af_store_execution_set_status(s, op->id, "failed", NULL, op->text, 0, 0, &err);
    }
    return rc;
}

int af_worker_load(af_worker_t *w, af_error_t *err) {
    char after[AF_QUEUE_ID_MAX] = "";
    for (;;) {
        af_job_t *jobs = NULL;
        size_t n = 0;
        int rc = af_queue_list(af_store_queue(w->o.reader), AF_WORKER_QUEUE,
                               after[0] ? after : NULL, 1000, &jobs, &n, err);
        if (rc != 0) {
            return rc;
        }
        for (size_t i = 0; i < n; i++) {
            af_execution_t e = {0};
            af_error_t ignored;
            if (jobs[i].attempts >= jobs[i].max_attempts) {
                op_t *op = op_new(w, NULL, jobs[i].id);
                char why[200];
                snprintf(why, sizeof why,
                         "DEAD: started %d times and the process stopped during each run",
                         jobs[i].attempts);
                if (op) {
                    op->text = strdup(why);
                }
                af_log(AF_LEVEL_WARN, "execution %s: %s", jobs[i].id, why);
                submit(w, op, write_dead, NULL);
            } else if (af_store_execution_get(w->o.reader, jobs[i].id, &e, &ignored) == 0) {
                item_t *it = item_add(w, e.id, e.workflow_id, e.version);
                if (it) {
                    it->run_at = jobs[i].run_at;
                    schedule(w, it);
                }
            }
            af_execution_clear(&e);
        }
        if (n > 0) {
            af_strlcpy(after, jobs[n - 1].id, sizeof after);
        }
        af_jobs_free(jobs, n);
        if (n < 1000) {
            break;
        }
    }
    dispatch(w);
    return 0;
}

af_watch_t *af_worker_watch(af_worker_t *w, const char *execution_id,
                            void (*cb)(void *ud, const char *status, const af_outcome_t *outcome),
                            void *ud) {
    item_t *it = item_find(w, execution_id);
    af_watch_t *watch = it ? calloc(1, sizeof *watch) : NULL;
    if (watch) {
        watch->cb = cb;
        watch->ud = ud;
        watch->item = it;
        watch->next = it->watches;
        it->watches = watch;
    }
    return watch;
}

void af_worker_unwatch(af_worker_t *w, af_watch_t *watch) {
    (void)w;
    for (af_watch_t **pp = &watch->item->watches; *pp; pp = &(*pp)->next) {
        if (*pp == watch) {
            *pp = watch->next;
            free(watch);
            return;
        }
    }
}

int af_worker_cancel(af_worker_t *w, const char *execution_id) {
    item_t *it = item_find(w, execution_id);
    if (it == NULL || it->state == ITEM_ENDING) {
        return AF_ENOTFOUND;
    }
    switch (it->state) {
    case ITEM_RUNNING:
        af_exec_cancel(it->x, "cancelled through the API");
        break;
    case ITEM_PARKING:
        it->cancel = 1;
        break;
    default:
        unschedule(w, it);
        end_item(w, it, "cancelled", NULL, "CANCELLED: cancelled through the API");
        break;
    }
    return 0;
}

void af_worker_counts(const af_worker_t *w, int *running, int *waiting) {
    *running = w->running;
    *waiting = w->waiting;
}

/* ---- heartbeats, stopping ---- */

static int write_heartbeat(af_store_t *s, void *ud) {
    op_t *op = ud;
    af_error_t err;
    return af_queue_heartbeat_all(af_store_queue(s), op->w->worker_id, op->w->o.lease_ms, NULL,
                                  &err);
}

static void on_beat(uv_timer_t *t) {
    af_worker_t *w = t->data;
    submit(w, op_new(w, NULL, ""), write_heartbeat, NULL);
}

static void on_stop_timer(uv_timer_t *t) {
    af_worker_t *w = t->data;
    void (*cb)(void *) = w->stop_cb;
    w->stop_cb = NULL;
    uv_timer_stop(w->stop_timer);
    if (cb) {
        cb(w->stop_ud);
    }
}

static void maybe_stopped(af_worker_t *w) {
    if (w->stopping && w->stop_cb && w->running == 0 && w->to_park == NULL) {
        uv_timer_start(w->stop_timer, on_stop_timer, 0, 0);
    }
}

void af_worker_stop(af_worker_t *w, int64_t grace_ms, void (*cb)(void *ud), void *ud) {
    w->stopping = 1;
    w->stop_cb = cb;
    w->stop_ud = ud;
    af_clock_timer_stop(w->due_timer);
    uv_timer_stop(w->beat_timer);
    for (size_t i = 0; i < w->cap; i++) { /* quiet ones are parked now, whatever their wait */
        for (item_t *it = w->items[i]; it; it = it->hash_next) {
            if (it->x && !in_park_list(w, it)) {
                int64_t wake = 0;
                if (af_exec_quiet(it->x, &wake)) {
                    it->park_wake = wake;
                    it->park_next = w->to_park;
                    w->to_park = it;
                }
            }
        }
    }
    if (w->to_park) {
        uv_timer_start(w->park_timer, on_park_timer, 0, 0);
    }
    uv_timer_start(w->stop_timer, on_stop_timer, (uint64_t)(grace_ms > 0 ? grace_ms : 0), 0);
    maybe_stopped(w);
}

static void handle_closed(uv_handle_t *h) {
    free(h);
}

static uv_timer_t *timer_make(af_worker_t *w) {
    uv_timer_t *t = malloc(sizeof *t);
    if (t) {
        uv_timer_init(w->o.loop, t);
        t->data = w;
    }
    return t;
}

af_worker_t *af_worker_new(const af_worker_opts_t *opts, af_error_t *err) {
    af_worker_t *w = calloc(1, sizeof *w);
    if (w == NULL) {
        af_error_set(err, AF_ENOMEM, "out of memory");
        return NULL;
    }
    w->o = *opts;
    w->o.concurrency = opts->concurrency > 0 ? opts->concurrency : 1000;
    w->o.lease_ms = opts->lease_ms > 0 ? opts->lease_ms : 30000;
    w->o.heartbeat_ms = opts->heartbeat_ms > 0 ? opts->heartbeat_ms : 10000;
    w->o.park_after_ms = opts->park_after_ms > 0 ? opts->park_after_ms : 2000;
    if (opts->worker_id) {
        af_strlcpy(w->worker_id, opts->worker_id, sizeof w->worker_id);
    } else {
        af_uuid_v4(w->worker_id);
    }
    w->data_dir = strdup(opts->data_dir ? opts->data_dir : ".");
    w->cap = 1024;
    w->wfcap = 256;
    w->items = calloc(w->cap, sizeof *w->items);
    w->wfs = calloc(w->wfcap, sizeof *w->wfs);
    af_engine_opts_t eo = opts->engine;
    eo.loop = opts->loop;
    eo.checkpoint = engine_checkpoint;
    eo.on_wait = engine_wait;
    eo.on_quiet = engine_quiet;
    eo.on_event = engine_event;
    eo.ud = w;
    w->engine = af_engine_new(&eo);
    w->due_timer = timer_make(w);
    w->beat_timer = timer_make(w);
    w->park_timer = timer_make(w);
    w->stop_timer = timer_make(w);
    if (w->items == NULL || w->wfs == NULL || w->engine == NULL || w->due_timer == NULL ||
        w->beat_timer == NULL || w->park_timer == NULL || w->stop_timer == NULL) {
        af_worker_free(w);
        af_error_set(err, AF_ENOMEM, "out of memory");
        return NULL;
    }
    uv_timer_start(w->beat_timer, on_beat, (uint64_t)w->o.heartbeat_ms,
                   (uint64_t)w->o.heartbeat_ms);
    return w;
}

void af_worker_free(af_worker_t *w) {
    if (w == NULL) {
        return;
    }
    uv_timer_t *timers[] = {w->due_timer, w->beat_timer, w->park_timer, w->stop_timer};
    for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++) {
        if (timers[i]) {
            af_clock_timer_stop(timers[i]);
            uv_close((uv_handle_t *)timers[i], handle_closed);
        }
    }
    for (size_t i = 0; w->items && i < w->cap; i++) {
        for (item_t *it = w->items[i], *next; it; it = next) {
            next = it->hash_next;
            if (it->x) {
                af_exec_free(it->x); /* still running after the grace: resumed next time */
            }
            notify(it, NULL);
            json_decref(it->input);
            af_outcome_free(it->outcome);
            free(it);
        }
    }
    for (size_t i = 0; w->wfs && i < w->wfcap; i++) {
        for (wfstate_t *s = w->wfs[i], *next; s; s = next) {
            next = s->hash_next;
            free(s);
        }
    }
    af_engine_free(w->engine);
    free(w->items);
    free(w->wfs);
    free(w->heap);
    free(w->data_dir);
    free(w);
}
