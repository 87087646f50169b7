/* worker.h -- runs stored executions: takes their jobs from the queue, starts them on the engine
 * (going on from their checkpoints), writes checkpoints, waits and results through the store's
 * writer thread, parks executions in long waits and limits executions per process and workflow.
 */
#ifndef AF_WORKER_H
#define AF_WORKER_H

#include <uv.h>
#include <jansson.h>
#include "core/core.h"
#include "engine/engine.h"
#include "engine/outcome.h"
#include "store/store.h"
#include "store/store_async.h"

#define AF_WORKER_QUEUE "executions" /* the queue execution jobs live on; job id = execution id */

typedef struct af_worker_s af_worker_t;
typedef struct af_watch_s af_watch_t;

typedef struct af_worker_opts_s {
    uv_loop_t *loop;
    af_engine_opts_t engine;  /* budgets and secrets; the worker sets the callbacks and loop */
    af_store_t *reader;       /* the loop thread's connection: reads only (borrowed) */
    af_store_async_t *writer; /* every write goes here (borrowed) */
    const char *data_dir;     /* version scripts are written under DATA/versions */
    const char *worker_id;    /* the lease owner's name; NULL: a new UUID */
    int concurrency;          /* executions running at once in this process; <= 0: 1000 */
    int64_t lease_ms;         /* job leases [30 s] ... */
    int64_t heartbeat_ms;     /* ... renewed this often [10 s] */
    int64_t park_after_ms;    /* waits at least this long park the execution in storage [2 s] */
} af_worker_opts_t;

/* A worker with its own engine. Returns NULL with err. */
af_worker_t *af_worker_new(const af_worker_opts_t *opts, af_error_t *err);

/* The worker's engine (borrowed), e.g. for af_engine_mask. */
af_engine_t *af_worker_engine(af_worker_t *w);
/* The lease owner name (borrowed). */
const char *af_worker_id(const af_worker_t *w);

/* Schedules every live job of AF_WORKER_QUEUE found in the store (at start-up, after leases of
 * dead processes were released): due ones start, the others wait for their run_at. */
int af_worker_load(af_worker_t *w, af_error_t *err);

/* The script file of a workflow version, written from the store on first use (one immutable file
 * per version, so the engine caches it by path). Returns 0, AF_ENOTFOUND or AF_EIO with err. */
int af_worker_version_file(af_worker_t *w, const char *workflow_id, int version, char *path,
                           size_t size, af_error_t *err);

/* How an execution handed to af_worker_enqueue was created. */
enum {
    AF_WORKER_QUEUED = 0,  /* its job is ready in the queue: starting it claims the job */
    AF_WORKER_LEASED = 1,  /* its job was leased to this worker (af_worker_id, lease
                            * af_worker_lease_ms) in the creating transaction: no claim needed */
    AF_WORKER_STARTED = 2, /* leased, and created "running" in a slot af_worker_reserve gave */
};

/* An execution whose row and job were just committed, handed to the worker. Borrowed. */
typedef struct af_worker_job_s {
    const char *execution_id, *workflow_id;
    int version;
    json_t *input;      /* NULL when unknown: the row and its checkpoints are read at the start */
    int64_t run_at;     /* 0: now */
    int how;            /* AF_WORKER_QUEUED, _LEASED or _STARTED */
    int64_t created_at; /* the row's, for a new execution with its input (then what it writes is
                         * also kept for its watches), else 0 */
    int event_depth;    /* with input: the depth of the event that started it (the row's) */
} af_worker_job_t;

void af_worker_enqueue(af_worker_t *w, const af_worker_job_t *job);
/* Takes a slot for an execution of the workflow about to be created, when one is free now (the
 * process's and the workflow's limits, nothing of the workflow waiting ahead): the execution is
 * then created "running" and handed over with AF_WORKER_STARTED, or the slot given back with
 * af_worker_unreserve if its creation fails. Returns 1 when reserved, else 0. */
int af_worker_reserve(af_worker_t *w, const char *workflow_id);
void af_worker_unreserve(af_worker_t *w, const char *workflow_id);
/* The lease the worker takes on jobs, in ms. */
int64_t af_worker_lease_ms(const af_worker_t *w);

/* Calls cb(ud, status, outcome) once, on the loop, when the execution's end is committed (status
 * "succeeded", "failed" or "cancelled"), or with NULL when the watch ends otherwise (the worker
 * stops). outcome (borrowed for the call) is the row and checkpoints as committed when this
 * process ran the execution from its creation to its end, else NULL (read the store). Returns
 * NULL (and never calls cb) when the worker does not hold the execution. */
af_watch_t *af_worker_watch(af_worker_t *w, const char *execution_id,
                            void (*cb)(void *ud, const char *status, const af_outcome_t *outcome),
                            void *ud);
/* Ends a watch before its callback ran; cb is not called. */
void af_worker_unwatch(af_worker_t *w, af_watch_t *watch);

/* Cancels an execution the worker holds: a running one is stopped (its node calls cancelled), a
 * queued or parked one is taken off the queue; either way it ends "cancelled". Returns 0, or
 * AF_ENOTFOUND when the worker does not hold it. */
int af_worker_cancel(af_worker_t *w, const char *execution_id);

/* Executions running now, and held waiting (queued, parked or over a concurrency limit). */
void af_worker_counts(const af_worker_t *w, int *running, int *waiting);

/* Stops taking work: nothing new starts, quiet executions are parked, and running ones get
 * grace_ms to finish; cb(ud) follows on the loop once none runs or the grace ended (what still
 * runs then goes on from its checkpoints at the next start). */
void af_worker_stop(af_worker_t *w, int64_t grace_ms, void (*cb)(void *ud), void *ud);

/* Frees the worker (after stop's callback); executions still held are dropped from memory and
 * stay in the store. Run the loop once more so its handles close. */
void af_worker_free(af_worker_t *w);

#endif
