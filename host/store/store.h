/* store.h -- the storage interface: workflows and their versions, executions, step checkpoints,
 * execution logs, retention, transactions and group commit. One vtable behind it; the embedded
 * backend (SQLite, WAL, versioned migrations) lives in store_sqlite.c.
 *
 * Every call blocks (disk I/O): run them on a worker thread, never on the loop thread. An
 * af_store_t is one database connection and is NOT thread-safe: use it (and its queue) from one
 * thread at a time, and open one store per thread that needs its own connection (SQLite
 * serialises writers across connections; readers never wait in WAL mode). af_store_group_submit
 * is the exception: it may be called from any thread.
 *
 * Times are milliseconds since the Unix epoch (from the clock in the options). Ids are UUID text.
 * Record structs are filled by get/list calls and own their strings and JSON (new references);
 * release them with the matching _clear/_free. Structs passed in are borrowed for the call. */
#ifndef AF_STORE_H
#define AF_STORE_H

#include <stdint.h>
#include <jansson.h>
#include "core/core.h"
#include "queue/queue.h"

#define AF_STORE_ID_MAX     64  /* ids, including the NUL */
#define AF_STORE_STATUS_MAX 16  /* status words, including the NUL */
#define AF_STORE_CURSOR_MAX 128 /* pagination cursors, including the NUL */

/* The newest schema version this build knows; a database with a newer one is refused.
 * 1: initial schema. 2: checkpoint port and wake_at, trigger source and position, webhook
 * trigger_id and methods, seen webhook ids, execution list indexes. */
#define AF_STORE_SCHEMA_VERSION 3

typedef struct af_store_s af_store_t;

typedef enum {
    AF_STORE_DURABLE_DEFAULT = 0, /* WAL + synchronous=NORMAL: survives process crashes */
    AF_STORE_DURABLE_STRICT = 1   /* WAL + synchronous=FULL: also survives power loss */
} af_store_durability_t;

/* Options of af_store_open, all optional (NULL options = defaults). size = sizeof. */
typedef struct af_store_options_s {
    size_t size;
    af_store_durability_t durability;
    int busy_timeout_ms;              /* wait for other writers; default 5000 */
    int64_t (*clock)(void *clock_ud); /* wall-clock ms; default af_wall_ms (tests inject one) */
    void *clock_ud;
    /* 1: the caller runs af_store_checkpoint_wal often from another connection (so commits
     * seldom wait for a checkpoint); a commit still checkpoints itself once the log holds ~8 MB
     * (right after such a copy) or ~16 MB, since under writes that never pause only the writer
     * can let the log start over. */
    int manual_wal_checkpoints;
} af_store_options_t;

/* Opens (creating it if missing) the store at `location`: a directory (the database is
 * DIR/agentflow.db) or a database file path. Applies pending migrations, each in its own
 * transaction; re-opening an up-to-date database changes nothing. Refuses a database whose schema
 * is newer than AF_STORE_SCHEMA_VERSION with AF_ESTATE and an explanation in err. On success
 * *out is a new store (af_store_close). */
int af_store_open(const char *location, const af_store_options_t *opts, af_store_t **out,
                  af_error_t *err);

/* Closes the store (and its queue). A transaction left open is rolled back. s may be NULL. */
void af_store_close(af_store_t *s);

/* What the store is running with (tests, `agentflow doctor`). */
typedef struct af_store_info_s {
    const char *backend;   /* "sqlite" (static) */
    int schema_version;    /* applied */
    char journal_mode[16]; /* "wal" */
    int synchronous;       /* 1 NORMAL, 2 FULL */
    int auto_vacuum;       /* 2 INCREMENTAL */
    uint64_t commits;      /* transactions committed on this connection since open */
    int64_t page_count, freelist_count, page_size;
} af_store_info_t;

int af_store_info(af_store_t *s, af_store_info_t *info);

/* The queue sharing this store's connection (borrowed; lives as long as s). Jobs enqueued while
 * a store transaction is open commit or roll back with it. */
af_queue_t *af_store_queue(af_store_t *s);

/* ---- transactions ---------------------------------------------------------------------------
 * begin/commit/rollback nest: the outermost level is a real (immediate, write-locking)
 * transaction, inner levels are savepoints. Every store call that writes more than one row uses
 * them, so it joins an open transaction. Rollback of an inner level undoes only that level. */
int af_store_begin(af_store_t *s, af_error_t *err);
int af_store_commit(af_store_t *s, af_error_t *err);
void af_store_rollback(af_store_t *s);

/* ---- group commit ---------------------------------------------------------------------------
 * Many writes from many callers, one transaction: callers submit operations from any thread;
 * a flush runs all pending ones inside one transaction, commits once, then calls every done
 * callback with the outcome: an operation is acknowledged only after the commit that made it
 * durable. A failing operation undoes only itself: the batch first runs without savepoints, and
 * when one fails it is all rolled back and run again with a savepoint per operation. */
typedef struct af_store_group_s af_store_group_t;

/* Runs inside the group's transaction on the flushing thread; returns 0 or a negative code. It
 * may run twice (after a rollback of its batch): it writes what ud says and keeps no state of its
 * own between runs. */
typedef int (*af_store_op_fn)(af_store_t *s, void *ud);
/* Called once per operation on the flushing thread, after the commit: rc is the operation's own
 * error, or the commit's, or 0. Hand the result to the loop with uv_async_send. */
typedef void (*af_store_done_fn)(void *ud, int rc);

/* A group over s (borrowed; must outlive the group). max_batch bounds the operations of one
 * transaction (<= 0: 1024). While the group's thread runs (af_store_group_start) the store belongs
 * to it: call nothing else on s. Returns a new group, or NULL when out of memory. */
af_store_group_t *af_store_group_new(af_store_t *s, int max_batch);

/* Queues an operation; thread-safe. done is called exactly once later, unless this returns an
 * error (AF_EINVAL, AF_ENOMEM, AF_ESTATE after the group began closing). */
int af_store_group_submit(af_store_group_t *g, af_store_op_fn op, af_store_done_fn done, void *ud);

/* Runs the pending operations (up to max_batch) in one transaction on the calling thread, which
 * must be the one allowed to use the store, outside any open transaction (else the batch would
 * only be a savepoint and acknowledged before it is durable). Returns how many ran (0 when none),
 * or a negative code when the transaction could not begin or commit (their done callbacks then get
 * that code). */
int af_store_group_flush(af_store_group_t *g);

/* Starts a writer thread that flushes whenever operations are pending: a batch collects what
 * arrived while the previous one was committing. Returns 0, or AF_ESTATE if already started. */
int af_store_group_start(af_store_group_t *g);

/* Stops the thread (if any) after it has flushed everything submitted, flushes what is left,
 * and frees the group. g may be NULL. */
void af_store_group_free(af_store_group_t *g);

/* ---- workflows ------------------------------------------------------------------------------ */
typedef struct af_workflow_s {
    char id[AF_STORE_ID_MAX]; /* empty on create: a new UUID */
    char *name;
    char *description;                /* may be NULL */
    char *project_id;                 /* may be NULL */
    char status[AF_STORE_STATUS_MAX]; /* "active" (default when empty) or "paused" */
    int current_version;              /* 0 before the first version */
    int64_t created_at, updated_at;
} af_workflow_t;

void af_workflow_clear(af_workflow_t *w);
void af_workflows_free(af_workflow_t *ws, size_t n);

/* Creates a workflow from w (borrowed). Writes the id into id_out (may be NULL; at least
 * AF_STORE_ID_MAX bytes). Returns 0, AF_EINVAL (no name, bad status) or AF_EEXISTS. */
int af_store_workflow_create(af_store_t *s, const af_workflow_t *w, char *id_out, af_error_t *err);
/* Fills *out (caller clears). Returns 0 or AF_ENOTFOUND. */
int af_store_workflow_get(af_store_t *s, const char *id, af_workflow_t *out, af_error_t *err);
/* Newest first. project_id NULL lists all. cursor NULL or "" starts at the newest; otherwise it is
 * a next_cursor from a previous call. *out is a new array of *n (af_workflows_free). next_cursor
 * (AF_STORE_CURSOR_MAX bytes; may be the cursor's own buffer) receives the cursor of the next
 * page, or "" when this was the last. limit <= 0 means 50. Returns 0 or AF_EINVAL (malformed
 * cursor). */
int af_store_workflow_list(af_store_t *s, const char *project_id, const char *cursor, int limit,
                           af_workflow_t **out, size_t *n, char *next_cursor, af_error_t *err);
/* Updates the workflow w->id: name (NULL keeps it), status ("" keeps it), description and
 * project_id (set as given, NULL clears); updated_at becomes now. Returns 0, AF_EINVAL or
 * AF_ENOTFOUND. */
int af_store_workflow_update(af_store_t *s, const af_workflow_t *w, af_error_t *err);
/* Deletes the workflow with its versions, triggers and webhook registrations (executions stay
 * until retention removes them). Returns 0 or AF_ENOTFOUND. */
int af_store_workflow_delete(af_store_t *s, const char *id, af_error_t *err);
/* Fills *out (caller clears) with the workflow named `name` (exact match); when several have that
 * name, the newest (created_at, then id). Returns 0 or AF_ENOTFOUND. */
int af_store_workflow_find(af_store_t *s, const char *name, af_workflow_t *out, af_error_t *err);

typedef struct af_workflow_version_s {
    char workflow_id[AF_STORE_ID_MAX];
    int version;
    char *lua_source;   /* may be NULL */
    json_t *definition; /* may be NULL */
    int64_t created_at;
} af_workflow_version_t;

void af_workflow_version_clear(af_workflow_version_t *v);
/* Clears and frees an array of n versions returned by af_store_version_list. vs may be NULL. */
void af_workflow_versions_free(af_workflow_version_t *vs, size_t n);

/* Adds the next version (1, 2, ...) of a workflow and makes it current, in one transaction.
 * lua_source and definition are borrowed (either may be NULL). Sets *version (may be NULL).
 * Returns 0 or AF_ENOTFOUND (no such workflow). */
int af_store_version_add(af_store_t *s, const char *workflow_id, const char *lua_source,
                         const json_t *definition, int *version, af_error_t *err);
/* Fills *out with a version (0: the current one). Returns 0 or AF_ENOTFOUND. */
int af_store_version_get(af_store_t *s, const char *workflow_id, int version,
                         af_workflow_version_t *out, af_error_t *err);
/* Every version of a workflow, newest first, with its lua_source and definition. *out is a new
 * array of *n (af_workflow_versions_free), NULL when *n is 0 (a workflow with no version yet).
 * Returns 0 or AF_ENOTFOUND (no such workflow). */
int af_store_version_list(af_store_t *s, const char *workflow_id, af_workflow_version_t **out,
                          size_t *n, af_error_t *err);

/* ---- executions ----------------------------------------------------------------------------- */
/* Statuses: queued, running, waiting, succeeded, failed, cancelled (the last three terminal). */
typedef struct af_execution_s {
    char id[AF_STORE_ID_MAX]; /* empty on create: a new UUID */
    char workflow_id[AF_STORE_ID_MAX];
    int version;
    char status[AF_STORE_STATUS_MAX]; /* empty on create: "queued" */
    json_t *input, *result;           /* may be NULL */
    char *error;                      /* may be NULL */
    int attempt;
    int64_t created_at, started_at, completed_at, wake_at; /* 0 = not set */
    int event_depth; /* started by an event: that event's depth (0 for outside events) */
} af_execution_t;

void af_execution_clear(af_execution_t *e);
/* Clears and frees an array of n executions returned by af_store_execution_list. es may be NULL. */
void af_executions_free(af_execution_t *es, size_t n);

/* Creates the execution *e (borrowed; on success e->id, e->status and e->created_at are filled)
 * and enqueues its job in ONE transaction: both are stored or neither. e->created_at may be 0
 * (now) or given; e->status may be empty
 * ("queued") or "running" (started at once: started_at = created_at, attempt 1). job may be NULL
 * (a job on queue "executions"); a job whose payload is NULL gets {"execution_id": id}; a job with
 * a lease_owner is created leased (af_job_t). Writes the job id
 * into job_id_out (may be NULL). Joins an open transaction (as a savepoint). */
int af_store_execution_create(af_store_t *s, af_execution_t *e, const af_job_t *job,
                              char *job_id_out, af_error_t *err);
/* Fills *out (caller clears). Returns 0 or AF_ENOTFOUND. */
int af_store_execution_get(af_store_t *s, const char *id, af_execution_t *out, af_error_t *err);
/* Sets the status of an execution, and result / error when not NULL (borrowed). "running" sets
 * started_at (first time) and counts an attempt; a terminal status sets completed_at; both to at,
 * or now when at is 0. "waiting" sets wake_at to the given time (ignored otherwise). Returns 0,
 * AF_EINVAL or AF_ENOTFOUND. */
int af_store_execution_set_status(af_store_t *s, const char *id, const char *status,
                                  const json_t *result, const char *error, int64_t wake_at,
                                  int64_t at, af_error_t *err);
/* Lists executions newest first (created_at, then id, descending), of one workflow and/or in one
 * status when workflow_id / status are given (NULL or "": any). Cursors work as in
 * af_store_workflow_list: cursor NULL or "" starts at the newest, next_cursor
 * (AF_STORE_CURSOR_MAX bytes) receives the cursor of the next page or "" after the last one.
 * limit <= 0 means 50. *out is a new array of *n (af_executions_free), NULL when *n is 0.
 * Returns 0 or AF_EINVAL (malformed cursor, unknown status). */
int af_store_execution_list(af_store_t *s, const char *workflow_id, const char *status,
                            const char *cursor, int limit, af_execution_t **out, size_t *n,
                            char *next_cursor, af_error_t *err);
/* Counts the executions of one workflow and/or in one status (NULL or "": any) into *n.
 * Returns 0 or AF_EINVAL (unknown status). */
int af_store_execution_count(af_store_t *s, const char *workflow_id, const char *status, int64_t *n,
                             af_error_t *err);

/* ---- checkpoints ---------------------------------------------------------------------------- */
/* Statuses: succeeded, failed, skipped, waiting (free text: the store does not check them). */
typedef struct af_checkpoint_s {
    char execution_id[AF_STORE_ID_MAX];
    char *step;
    char status[AF_STORE_STATUS_MAX];
    int attempts;
    json_t *output; /* may be NULL */
    char *error;    /* may be NULL */
    int64_t started_at, ended_at;
    char *port;      /* the port a condition/switch step took; may be NULL */
    int64_t wake_at; /* status "waiting": when the delay or retry wait ends; else 0 */
} af_checkpoint_t;

void af_checkpoints_free(af_checkpoint_t *cs, size_t n);

/* Saves (inserts or replaces) the checkpoint of one step (borrowed). */
int af_store_checkpoint_save(af_store_t *s, const af_checkpoint_t *c, af_error_t *err);
/* Loads every checkpoint of an execution, ordered by step name. *out is a new array of *n
 * (af_checkpoints_free), NULL when *n is 0. */
int af_store_checkpoints_load(af_store_t *s, const char *execution_id, af_checkpoint_t **out,
                              size_t *n, af_error_t *err);

/* ---- triggers -------------------------------------------------------------------------------
 * A workflow's triggers: those its script declares (source "script", replaced as a whole when a
 * new version is deployed, with af_store_trigger_delete_source) and those added through the API
 * (source "api"). */
typedef struct af_trigger_rec_s {
    char id[AF_STORE_ID_MAX]; /* empty on create: a new UUID */
    char workflow_id[AF_STORE_ID_MAX];
    char type[AF_STORE_STATUS_MAX]; /* webhook, schedule, event, poll, manual */
    json_t *config;                 /* may be NULL */
    int is_active;
    char source[AF_STORE_STATUS_MAX]; /* "script" or "api" (empty on create: "api") */
    int position;                     /* script triggers: index in the script; -1 for api */
    int64_t created_at, updated_at;
} af_trigger_rec_t;

/* Frees what a trigger record owns (config) and zeroes it. t may be NULL. */
void af_trigger_rec_clear(af_trigger_rec_t *t);
/* Clears and frees an array of n triggers returned by af_store_trigger_list. ts may be NULL. */
void af_trigger_recs_free(af_trigger_rec_t *ts, size_t n);

/* Creates the trigger *t (borrowed) of workflow t->workflow_id; created_at = updated_at = now. An
 * "api" trigger's position is not stored (it reads back as -1), nor a negative one. Writes the id
 * into id_out (may be NULL; AF_STORE_ID_MAX bytes). Returns 0, AF_ENOTFOUND (no such workflow),
 * AF_EINVAL (unknown type or source) or AF_EEXISTS (the id is taken). */
int af_store_trigger_create(af_store_t *s, const af_trigger_rec_t *t, char *id_out,
                            af_error_t *err);
/* Fills *out (caller clears with af_trigger_rec_clear). Returns 0 or AF_ENOTFOUND. */
int af_store_trigger_get(af_store_t *s, const char *id, af_trigger_rec_t *out, af_error_t *err);
/* The triggers of a workflow (workflow_id NULL: of every workflow), ordered by created_at then id.
 * *out is a new array of *n (af_trigger_recs_free), NULL when *n is 0. Returns 0. */
int af_store_trigger_list(af_store_t *s, const char *workflow_id, af_trigger_rec_t **out, size_t *n,
                          af_error_t *err);
/* Sets config (borrowed; NULL clears it) and is_active of the trigger t->id; updated_at becomes
 * now. The trigger's webhook registration, if any, gets the new config too (its path and methods
 * stay: re-register to change them). Returns 0 or AF_ENOTFOUND. */
int af_store_trigger_update(af_store_t *s, const af_trigger_rec_t *t, af_error_t *err);
/* Deletes a trigger with its webhook registration. Returns 0 or AF_ENOTFOUND. */
int af_store_trigger_delete(af_store_t *s, const char *id, af_error_t *err);
/* Deletes every trigger of `source` ("script" or "api") of a workflow, with their webhook
 * registrations, in one transaction. Deleting none is not an error. Returns 0 or AF_EINVAL. */
int af_store_trigger_delete_source(af_store_t *s, const char *workflow_id, const char *source,
                                   af_error_t *err);

/* ---- webhook registrations ------------------------------------------------------------------
 * The path a webhook trigger listens on; one registration per path. */
typedef struct af_webhook_rec_s {
    char id[AF_STORE_ID_MAX]; /* empty on register: a new UUID */
    char workflow_id[AF_STORE_ID_MAX];
    char trigger_id[AF_STORE_ID_MAX];
    char *path;     /* without leading slash, e.g. "support/inbound" */
    char *methods;  /* comma separated upper-case methods, e.g. "POST,PUT"; NULL = "POST" */
    json_t *config; /* the trigger's config, may be NULL */
    int64_t created_at;
} af_webhook_rec_t;

/* Frees what a registration owns (path, methods, config) and zeroes it. w may be NULL. */
void af_webhook_rec_clear(af_webhook_rec_t *w);
/* Clears and frees an array of n registrations returned by af_store_webhook_list. */
void af_webhook_recs_free(af_webhook_rec_t *ws, size_t n);

/* Registers w->path (borrowed record; leading slashes are ignored) for trigger w->trigger_id of
 * workflow w->workflow_id. Registering a path again for the same trigger of the same workflow
 * updates its methods and config and keeps its id. Writes the id into id_out (may be NULL;
 * AF_STORE_ID_MAX bytes). Returns 0, AF_EINVAL (no path), AF_ENOTFOUND (no such workflow) or
 * AF_EEXISTS when another trigger holds the path (err names the path and the workflow holding
 * it). */
int af_store_webhook_register(af_store_t *s, const af_webhook_rec_t *w, char *id_out,
                              af_error_t *err);
/* Fills *out (caller clears) with the registration of `path` (leading slashes ignored).
 * Returns 0 or AF_ENOTFOUND. */
int af_store_webhook_find(af_store_t *s, const char *path, af_webhook_rec_t *out, af_error_t *err);
/* Lists registrations ordered by path. Cursors work as in af_store_workflow_list (opaque; NULL or
 * "" starts at the first path; next_cursor of AF_STORE_CURSOR_MAX bytes, "" after the last page).
 * limit <= 0 means 50. *out is a new array of *n (af_webhook_recs_free), NULL when *n is 0.
 * Returns 0 or AF_EINVAL (malformed cursor). */
int af_store_webhook_list(af_store_t *s, const char *cursor, int limit, af_webhook_rec_t **out,
                          size_t *n, char *next_cursor, af_error_t *err);

/* Records that message msg_id (a Standard Webhooks "webhook-id") arrived for `scope` (e.g. the
 * path) and started execution_id (may be NULL). The first time *duplicate = 0; when it was seen
 * before *duplicate = 1, nothing changes and first_execution_id (may be NULL; AF_STORE_ID_MAX
 * bytes) receives the execution id stored the first time ("" if none). Joins an open transaction,
 * so the record commits or rolls back with the execution it started. */
int af_store_webhook_seen(af_store_t *s, const char *scope, const char *msg_id,
                          const char *execution_id, int *duplicate, char *first_execution_id,
                          af_error_t *err);
/* Forgets message ids seen before older_than_ms (absolute epoch ms), except event deliveries
 * (scopes "event:..."), which go with their events (af_store_event_prune). Sets *removed (may be
 * NULL). */
int af_store_webhook_seen_prune(af_store_t *s, int64_t older_than_ms, int64_t *removed,
                                af_error_t *err);

/* ---- trigger state --------------------------------------------------------------------------
 * What a running trigger remembers across restarts: a schedule its last fire and the execution
 * it started, a poll the items it has seen. Deleted with its trigger. */
typedef struct af_trigger_state_s {
    int64_t last_fire_at;                    /* a schedule's last due time fired; 0: never */
    char last_execution_id[AF_STORE_ID_MAX]; /* "" for none */
    json_t *state;                           /* anything else (a poll's known items); may be NULL */
} af_trigger_state_t;

/* Fills *out (caller releases out->state) with the state of a trigger; AF_ENOTFOUND when none
 * was ever put. */
int af_store_trigger_state_get(af_store_t *s, const char *trigger_id, af_trigger_state_t *out,
                               af_error_t *err);
/* Writes (creates or replaces) the state of a trigger (st borrowed); joins an open transaction,
 * so it commits with the executions it started. Returns 0 or AF_ENOTFOUND (no such trigger). */
int af_store_trigger_state_put(af_store_t *s, const char *trigger_id, const af_trigger_state_t *st,
                               af_error_t *err);

/* ---- events ---------------------------------------------------------------------------------
 * Every event published is stored (for replay) until retention removes it. */
typedef struct af_event_rec_s {
    char id[AF_STORE_ID_MAX];
    char type[256];
    json_t *data; /* may be NULL */
    json_t *meta; /* {"depth", "source", ...}; may be NULL */
    int64_t created_at;
} af_event_rec_t;

void af_event_rec_clear(af_event_rec_t *e);
void af_event_recs_free(af_event_rec_t *es, size_t n);

/* Stores an event (borrowed; created_at 0: now). *duplicate = 1 when its id is stored already
 * (nothing changes). Joins an open transaction. */
int af_store_event_put(af_store_t *s, const af_event_rec_t *e, int *duplicate, af_error_t *err);
/* Events created in [from_ms, to_ms], oldest first, after the cursor (opaque; NULL or "" from
 * the first), at most limit (<= 0: 100). next_cursor (AF_STORE_CURSOR_MAX bytes) is "" after the
 * last page. *out is a new array of *n (af_event_recs_free). Returns 0 or AF_EINVAL (cursor). */
int af_store_event_list(af_store_t *s, int64_t from_ms, int64_t to_ms, const char *cursor,
                        int limit, af_event_rec_t **out, size_t *n, char *next_cursor,
                        af_error_t *err);
/* Deletes events created before older_than_ms, and the records of their deliveries (seen ids of
 * scopes "event:..."). Sets *removed (may be NULL) to the events deleted. */
int af_store_event_prune(af_store_t *s, int64_t older_than_ms, int64_t *removed, af_error_t *err);

/* ---- logs ----------------------------------------------------------------------------------- */
typedef struct af_log_entry_s {
    int64_t seq; /* 1, 2, ... per execution */
    int64_t at;
    char *step; /* may be NULL */
    char level[AF_STORE_STATUS_MAX];
    char *message;
} af_log_entry_t;

void af_log_entries_free(af_log_entry_t *ls, size_t n);

/* Appends a log line to an execution (at 0: now; step may be NULL). Sets *seq (may be NULL). */
int af_store_log_append(af_store_t *s, const char *execution_id, int64_t at, const char *step,
                        const char *level, const char *message, int64_t *seq, af_error_t *err);
/* Loads at most limit (<= 0: 1000) log lines with seq > after_seq, in order. */
int af_store_logs_load(af_store_t *s, const char *execution_id, int64_t after_seq, int limit,
                       af_log_entry_t **out, size_t *n, af_error_t *err);

/* ---- retention ------------------------------------------------------------------------------ */
/* Deletes finished (succeeded, failed, cancelled) executions with their checkpoints and logs:
 * those created more than max_age_ms ago (<= 0: no age bound) and those beyond the newest
 * max_count finished ones (< 0: no count bound). With an age bound, seen webhook message ids
 * older than it go too. Then compacts (af_store_compact). Sets *removed (may be NULL) to the
 * number of executions removed. Must not be called inside a transaction. */
int af_store_prune(af_store_t *s, int64_t max_age_ms, int64_t max_count, int64_t *removed,
                   af_error_t *err);
/* Copies what the write-ahead log holds into the database without blocking anyone (a passive
 * checkpoint), syncing as the durability mode says. Sets *frames (may be NULL) to the frames
 * copied. Must not be called inside a transaction. */
int af_store_checkpoint_wal(af_store_t *s, int64_t *frames, af_error_t *err);

/* Gives free pages back to the file system and truncates the write-ahead log, so the files do
 * not grow without bound. Must not be called inside a transaction. */
int af_store_compact(af_store_t *s, af_error_t *err);

#endif
