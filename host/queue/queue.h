/* queue.h -- the job queue interface: priorities, run-at times, leases with heartbeats, attempts
 * with backoff, dead letters. One vtable behind it; the embedded backend lives in queue_sqlite.c.
 */
#ifndef AF_QUEUE_H
#define AF_QUEUE_H

#include <stdint.h>
#include <jansson.h>
#include "core/core.h"

/* Sizes of the fixed text fields of a job (including the NUL). */
#define AF_QUEUE_ID_MAX   64
#define AF_QUEUE_NAME_MAX 64

/* Special values of af_queue_fail's retry_in_ms. */
#define AF_QUEUE_BACKOFF  (-1) /* reschedule after the queue's exponential backoff */
#define AF_QUEUE_NO_RETRY (-2) /* move to the dead letters now, whatever the attempts left */

typedef struct af_queue_s af_queue_t;

/* One job. As input (enqueue) the pointers are borrowed for the call; as output (dequeue, dead
 * letter lists) payload and last_error are new and released by af_job_clear. Times are
 * milliseconds since the Unix epoch. */
typedef struct af_job_s {
    char id[AF_QUEUE_ID_MAX];          /* empty on enqueue: a new UUID is made */
    char queue[AF_QUEUE_NAME_MAX];     /* empty on enqueue: "default" */
    int priority;                      /* higher runs first; then earlier run_at; then FIFO */
    json_t *payload;                   /* NULL means JSON null */
    int64_t run_at;                    /* not before; 0 on enqueue: now */
    int attempts;                      /* claims so far, counting the current one */
    int max_attempts;                  /* 0 on enqueue: the queue's default (5) */
    char lease_owner[AF_QUEUE_ID_MAX]; /* the worker holding the lease, else empty; non-empty on
                                        * enqueue: the job is created leased to that worker, until
                                        * lease_until (its first attempt, no claim needed) */
    int64_t lease_until;               /* lease expiry, 0 when not leased */
    char *last_error;                  /* the error of the last failed attempt, or NULL */
    int64_t created_at;
    int64_t failed_at; /* dead letters only: when the job was moved there */
} af_job_t;

/* Frees what a job owns (payload, last_error) and zeroes it. job may be NULL. */
void af_job_clear(af_job_t *job);
/* Clears and frees an array of n jobs returned by a list call. jobs may be NULL. */
void af_jobs_free(af_job_t *jobs, size_t n);

/* Tunables, copied by af_queue_configure. size = sizeof(af_queue_options_t). */
typedef struct af_queue_options_s {
    size_t size;
    int default_max_attempts; /* default 5 */
    int64_t backoff_base_ms;  /* default 1000: attempt n waits up to base * 2^(n-1) ... */
    int64_t backoff_max_ms;   /* default 300000: ... capped here, with full jitter */
} af_queue_options_t;

/* Copies the options the caller was built with (honours opts->size); zero fields keep their
 * defaults. Not thread-safe against other calls on q. */
int af_queue_configure(af_queue_t *q, const af_queue_options_t *opts);

/* Backend name ("sqlite"). Never NULL. */
const char *af_queue_backend(const af_queue_t *q);

/* Adds a job. When q shares a store's connection (af_store_queue) and a store transaction is open,
 * the job commits or rolls back with it (so does every other call below that writes). Writes the
 * job id into id_out (may be NULL; at least AF_QUEUE_ID_MAX bytes). Returns 0, AF_EINVAL (name too
 * long), AF_EEXISTS (the id is taken) or AF_EIO. */
int af_queue_enqueue(af_queue_t *q, const af_job_t *job, char *id_out, af_error_t *err);

/* Atomically claims the best due job of `queue` (highest priority, then earliest run_at, then
 * oldest) for `worker`, with a lease until now + lease_ms, and counts an attempt. Safe against
 * other connections claiming from the same database: no two claims get the same job. Fills *job
 * (caller clears it) and returns 0, or AF_ENOTFOUND when nothing is due. */
int af_queue_dequeue(af_queue_t *q, const char *queue, const char *worker, int64_t lease_ms,
                     af_job_t *job, af_error_t *err);

/* Extends the lease of a job the worker holds to now + lease_ms. Returns 0, or AF_ESTATE when the
 * worker no longer holds it (lease expired and reaped, or the job is gone). */
int af_queue_heartbeat(af_queue_t *q, const char *job_id, const char *worker, int64_t lease_ms,
                       af_error_t *err);

/* Finishes a job the worker holds: it is removed. Returns 0 or AF_ESTATE (not held). */
int af_queue_complete(af_queue_t *q, const char *job_id, const char *worker, af_error_t *err);

/* Records a failed attempt of a job the worker holds. With attempts left the job is made ready
 * again at now + retry_in_ms (AF_QUEUE_BACKOFF: the queue's backoff); when the attempts are used
 * up, or with AF_QUEUE_NO_RETRY, it moves to the dead letters keeping `error` as its last error.
 * Sets *dead (may be NULL) to 1 when it was dead-lettered, else 0. Returns 0 or AF_ESTATE. */
int af_queue_fail(af_queue_t *q, const char *job_id, const char *worker, const char *error,
                  int64_t retry_in_ms, int *dead, af_error_t *err);

/* Claims the job job_id, if it is ready (whatever its run_at), for `worker` with a lease until
 * now + lease_ms, and counts an attempt, as af_queue_dequeue does for the best due job. Fills *job
 * (may be NULL; caller clears it). Returns 0, or AF_ENOTFOUND when there is no such ready job
 * (missing, or leased by anyone). */
int af_queue_claim(af_queue_t *q, const char *job_id, const char *worker, int64_t lease_ms,
                   af_job_t *job, af_error_t *err);

/* Extends, in one statement, every lease `worker` holds to now + lease_ms, including leases that
 * expired but were not reaped yet (nobody else can have those jobs). Sets *n (may be NULL) to how
 * many were extended. */
int af_queue_heartbeat_all(af_queue_t *q, const char *worker, int64_t lease_ms, int *n,
                           af_error_t *err);

/* Makes every leased job ready again now, keeping its attempts and never dead-lettering it: for
 * start-up, when this process holds the data directory's lock, so every lease is a dead
 * process's. Leases of except_worker (may be NULL) are kept. Sets *n (may be NULL) to how many
 * were released. */
int af_queue_release_all(af_queue_t *q, const char *except_worker, int *n, af_error_t *err);

/* Lists live jobs (ready and leased) of `queue` (NULL: all queues) in id order, starting after
 * the id `after` (NULL or "": from the start), at most limit (<= 0: 1000). A leased job has its
 * lease_owner and lease_until set. *out is a new array (af_jobs_free) of *n jobs; *out is NULL
 * when *n is 0. */
int af_queue_list(af_queue_t *q, const char *queue, const char *after, int limit, af_job_t **out,
                  size_t *n, af_error_t *err);

/* Fills *job (caller clears) with the live job (ready or leased) job_id. Returns 0 or
 * AF_ENOTFOUND. */
int af_queue_get(af_queue_t *q, const char *job_id, af_job_t *job, af_error_t *err);

/* Removes the job job_id, whoever holds it, and the dead letter with that id (both, when both
 * exist). Returns 0, or AF_ENOTFOUND when there was neither. */
int af_queue_remove(af_queue_t *q, const char *job_id, af_error_t *err);

/* Fills *job (caller clears) with the dead letter job_id (failed_at set, run_at 0). Returns 0 or
 * AF_ENOTFOUND. */
int af_queue_dead_get(af_queue_t *q, const char *job_id, af_job_t *job, af_error_t *err);

/* Gives back a job the worker holds without counting a failure (an execution parked until a
 * delay ends): it becomes ready at run_at (<= 0: now) with its attempts reset to 0; its last error
 * is kept. Returns 0 or AF_ESTATE (not held by worker). */
int af_queue_reschedule(af_queue_t *q, const char *job_id, const char *worker, int64_t run_at,
                        af_error_t *err);

/* Takes back jobs whose lease expired (a worker died or stalled): those with attempts left become
 * ready now, the others move to the dead letters ("lease expired"). Sets *reaped (may be NULL) to
 * how many were taken back. */
int af_queue_reap(af_queue_t *q, int *reaped, af_error_t *err);

/* Lists dead letters of `queue` (NULL: all queues), oldest first, at most limit (<= 0: 100),
 * starting after the dead letter whose id is `after` (NULL: from the start). *out is a new array
 * (af_jobs_free) of *n jobs; *out is NULL when *n is 0. */
int af_queue_dead_list(af_queue_t *q, const char *queue, const char *after, int limit,
                       af_job_t **out, size_t *n, af_error_t *err);

/* Moves a dead letter back into its queue, ready now, with its attempts reset to 0 (the last
 * error is kept until the next failure). Returns 0 or AF_ENOTFOUND. */
int af_queue_dead_retry(af_queue_t *q, const char *job_id, af_error_t *err);

/* Counts jobs of `queue` (NULL: all): ready ones in *ready, leased ones in *leased, dead letters
 * in *dead (each may be NULL). */
int af_queue_count(af_queue_t *q, const char *queue, int64_t *ready, int64_t *leased, int64_t *dead,
                   af_error_t *err);

#endif
