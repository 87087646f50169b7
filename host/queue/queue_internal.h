/* queue_internal.h -- what a queue backend implements: the method table behind queue.h and the
 * head every backend's queue struct starts with. Not part of the interface. */
#ifndef AF_QUEUE_INTERNAL_H
#define AF_QUEUE_INTERNAL_H

#include "queue/queue.h"

typedef struct af_queue_vt_s {
    const char *name;
    int (*enqueue)(af_queue_t *q, const af_job_t *job, char *id_out, af_error_t *err);
    int (*dequeue)(af_queue_t *q, const char *queue, const char *worker, int64_t lease_ms,
                   af_job_t *job, af_error_t *err);
    int (*heartbeat)(af_queue_t *q, const char *job_id, const char *worker, int64_t lease_ms,
                     af_error_t *err);
    int (*complete)(af_queue_t *q, const char *job_id, const char *worker, af_error_t *err);
    int (*fail)(af_queue_t *q, const char *job_id, const char *worker, const char *error,
                int64_t retry_in_ms, int *dead, af_error_t *err);
    int (*reap)(af_queue_t *q, int *reaped, af_error_t *err);
    int (*dead_list)(af_queue_t *q, const char *queue, const char *after, int limit, af_job_t **out,
                     size_t *n, af_error_t *err);
    int (*dead_retry)(af_queue_t *q, const char *job_id, af_error_t *err);
    int (*count)(af_queue_t *q, const char *queue, int64_t *ready, int64_t *leased, int64_t *dead,
                 af_error_t *err);
    int (*claim)(af_queue_t *q, const char *job_id, const char *worker, int64_t lease_ms,
                 af_job_t *job, af_error_t *err);
    int (*heartbeat_all)(af_queue_t *q, const char *worker, int64_t lease_ms, int *n,
                         af_error_t *err);
    int (*release_all)(af_queue_t *q, const char *except_worker, int *n, af_error_t *err);
    int (*list)(af_queue_t *q, const char *queue, const char *after, int limit, af_job_t **out,
                size_t *n, af_error_t *err);
    int (*get)(af_queue_t *q, const char *job_id, af_job_t *job, af_error_t *err);
    int (*remove)(af_queue_t *q, const char *job_id, af_error_t *err);
    int (*dead_get)(af_queue_t *q, const char *job_id, af_job_t *job, af_error_t *err);
    int (*reschedule)(af_queue_t *q, const char *job_id, const char *worker, int64_t run_at,
                      af_error_t *err);
} af_queue_vt_t;

/* The head of every backend's queue. */
struct af_queue_s {
    const af_queue_vt_t *vt;
    af_queue_options_t opts;
    uint64_t rng; /* jitter state */
};

/* Fills q->opts with the defaults and seeds the jitter. */
void af__queue_init(af_queue_t *q, const af_queue_vt_t *vt);
/* The wait before the next attempt after `attempts` failed ones: full jitter over
 * min(max, base * 2^(attempts-1)). */
int64_t af__queue_backoff(af_queue_t *q, int attempts);

#endif
