/* queue.c -- the backend-independent side of queue.h: argument checks, dispatch through the
 * method table, options, backoff with full jitter, and freeing of jobs. */
#include <stdlib.h>
#include <string.h>

#include "queue/queue_internal.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            return af_error_set(err, AF_EINVAL, "invalid argument: %s", #cond);                    \
        }                                                                                          \
    } while (0)

void af__queue_init(af_queue_t *q, const af_queue_vt_t *vt) {
    q->vt = vt;
    q->opts.size = sizeof q->opts;
    q->opts.default_max_attempts = 5;
    q->opts.backoff_base_ms = 1000;
    q->opts.backoff_max_ms = 300000;
    q->rng = (uint64_t)af_wall_ms() ^ (uint64_t)(uintptr_t)q ^ 0x9e3779b97f4a7c15ULL;
}

int64_t af__queue_backoff(af_queue_t *q, int attempts) {
    int64_t cap = q->opts.backoff_base_ms;
    for (int i = 1; i < attempts && cap < q->opts.backoff_max_ms; i++) {
        cap *= 2;
    }
    if (cap > q->opts.backoff_max_ms) {
        cap = q->opts.backoff_max_ms;
    }
    if (cap <= 0) {
        return 0;
    }
    /* xorshift64*: jitter needs spread, not secrecy */
    q->rng ^= q->rng >> 12;
    q->rng ^= q->rng << 25;
    q->rng ^= q->rng >> 27;
    uint64_t r = q->rng * 2685821657736338717ULL;
    return (int64_t)(r % (uint64_t)(cap + 1));
}

int af_queue_configure(af_queue_t *q, const af_queue_options_t *opts) {
    if (q == NULL || opts == NULL) {
        return AF_EINVAL;
    }
    af_queue_options_t o = {0};
    memcpy(&o, opts, opts->size < sizeof o ? opts->size : sizeof o);
    if (o.default_max_attempts > 0) {
        q->opts.default_max_attempts = o.default_max_attempts;
    }
    if (o.backoff_base_ms > 0) {
        q->opts.backoff_base_ms = o.backoff_base_ms;
    }
    if (o.backoff_max_ms > 0) {
        q->opts.backoff_max_ms = o.backoff_max_ms;
    }
    return 0;
}

const char *af_queue_backend(const af_queue_t *q) {
    return q ? q->vt->name : "none";
}

int af_queue_enqueue(af_queue_t *q, const af_job_t *job, char *id_out, af_error_t *err) {
    CHECK(q != NULL && job != NULL);
    return q->vt->enqueue(q, job, id_out, err);
}

int af_queue_dequeue(af_queue_t *q, const char *queue, const char *worker, int64_t lease_ms,
                     af_job_t *job, af_error_t *err) {
    CHECK(q != NULL && queue != NULL && worker != NULL && worker[0] != '\0' && lease_ms > 0 &&
          job != NULL && strlen(worker) < AF_QUEUE_ID_MAX);
    return q->vt->dequeue(q, queue, worker, lease_ms, job, err);
}

int af_queue_heartbeat(af_queue_t *q, const char *job_id, const char *worker, int64_t lease_ms,
                       af_error_t *err) {
    CHECK(q != NULL && job_id != NULL && worker != NULL && lease_ms > 0);
    return q->vt->heartbeat(q, job_id, worker, lease_ms, err);
}

int af_queue_complete(af_queue_t *q, const char *job_id, const char *worker, af_error_t *err) {
    CHECK(q != NULL && job_id != NULL && worker != NULL);
    return q->vt->complete(q, job_id, worker, err);
}

int af_queue_fail(af_queue_t *q, const char *job_id, const char *worker, const char *error,
                  int64_t retry_in_ms, int *dead, af_error_t *err) {
    CHECK(q != NULL && job_id != NULL && worker != NULL && retry_in_ms >= AF_QUEUE_NO_RETRY);
    return q->vt->fail(q, job_id, worker, error, retry_in_ms, dead, err);
}

int af_queue_reap(af_queue_t *q, int *reaped, af_error_t *err) {
    CHECK(q != NULL);
    return q->vt->reap(q, reaped, err);
}

int af_queue_dead_list(af_queue_t *q, const char *queue, const char *after, int limit,
                       af_job_t **out, size_t *n, af_error_t *err) {
    CHECK(q != NULL && out != NULL && n != NULL);
    return q->vt->dead_list(q, queue, after, limit, out, n, err);
}

int af_queue_dead_retry(af_queue_t *q, const char *job_id, af_error_t *err) {
    CHECK(q != NULL && job_id != NULL);
    return q->vt->dead_retry(q, job_id, err);
}

int af_queue_count(af_queue_t *q, const char *queue, int64_t *ready, int64_t *leased, int64_t *dead,
                   af_error_t *err) {
    CHECK(q != NULL);
    return q->vt->count(q, queue, ready, leased, dead, err);
}

int af_queue_claim(af_queue_t *q, const char *job_id, const char *worker, int64_t lease_ms,
                   af_job_t *job, af_error_t *err) {
    CHECK(q != NULL && job_id != NULL && worker != NULL && worker[0] != '\0' && lease_ms > 0 &&
          strlen(worker) < AF_QUEUE_ID_MAX);
    return q->vt->claim(q, job_id, worker, lease_ms, job, err);
}

int af_queue_heartbeat_all(af_queue_t *q, const char *worker, int64_t lease_ms, int *n,
                           af_error_t *err) {
    CHECK(q != NULL && worker != NULL && worker[0] != '\0' && lease_ms > 0);
    return q->vt->heartbeat_all(q, worker, lease_ms, n, err);
}

int af_queue_release_all(af_queue_t *q, const char *except_worker, int *n, af_error_t *err) {
    CHECK(q != NULL);
    return q->vt->release_all(q, except_worker, n, err);
}

int af_queue_list(af_queue_t *q, const char *queue, const char *after, int limit, af_job_t **out,
                  size_t *n, af_error_t *err) {
    CHECK(q != NULL && out != NULL && n != NULL);
    return q->vt->list(q, queue, after, limit, out, n, err);
}

int af_queue_get(af_queue_t *q, const char *job_id, af_job_t *job, af_error_t *err) {
    CHECK(q != NULL && job_id != NULL && job != NULL);
    return q->vt->get(q, job_id, job, err);
}

int af_queue_remove(af_queue_t *q, const char *job_id, af_error_t *err) {
    CHECK(q != NULL && job_id != NULL);
    return q->vt->remove(q, job_id, err);
}

int af_queue_dead_get(af_queue_t *q, const char *job_id, af_job_t *job, af_error_t *err) {
    CHECK(q != NULL && job_id != NULL && job != NULL);
    return q->vt->dead_get(q, job_id, job, err);
}

int af_queue_reschedule(af_queue_t *q, const char *job_id, const char *worker, int64_t run_at,
                        af_error_t *err) {
    CHECK(q != NULL && job_id != NULL && worker != NULL);
    return q->vt->reschedule(q, job_id, worker, run_at, err);
}

void af_job_clear(af_job_t *job) {
    if (job) {
        json_decref(job->payload);
        free(job->last_error);
        memset(job, 0, sizeof *job);
    }
}

void af_jobs_free(af_job_t *jobs, size_t n) {
    for (size_t i = 0; jobs && i < n; i++) {
        af_job_clear(&jobs[i]);
    }
    free(jobs);
}
