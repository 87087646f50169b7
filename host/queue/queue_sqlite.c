/* queue_sqlite.c -- the embedded queue backend: the jobs and dead_letters tables on the store's
 * SQLite connection, claimed by one UPDATE ... RETURNING so concurrent connections never share. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_internal.h"

typedef struct sqlite_queue_s {
    af_queue_t base;
    af__sqlite_t *c; /* borrowed from the store */
} sqlite_queue_t;

#define CONN(q) (((sqlite_queue_t *)(q))->c)

static int q_enqueue(af_queue_t *q, const af_job_t *job, char *id_out, af_error_t *err) {
    af__sqlite_t *c = CONN(q);
    static const char SQL[] =
        "INSERT INTO jobs (id, queue, priority, payload, run_at, attempts, max_attempts, status,"
        " lease_owner, lease_until, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5,"
        " ?8 IS NOT NULL, ?6, IIF(?8 IS NULL, 'ready', 'leased'), ?8, IIF(?8 IS NULL, NULL, ?9),"
        " ?7, ?7)";
    char id[AF_QUEUE_ID_MAX];
    if (!af__sqlite_fits(job->id, sizeof job->id) ||
        !af__sqlite_fits(job->queue, sizeof job->queue) ||
        !af__sqlite_fits(job->lease_owner, sizeof job->lease_owner)) {
        return af_error_set(err, AF_EINVAL, "job id or queue name too long");
    }
    af__sqlite_id(job->id, id, sizeof id);
    int64_t now = af__sqlite_now(c);
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, id);
    af__sqlite_bind_text(st, 2, job->queue[0] ? job->queue : "default");
    sqlite3_bind_int(st, 3, job->priority);
    if (job->payload) {
        rc = af__sqlite_bind_json(st, 4, job->payload);
    } else {
        sqlite3_bind_text(st, 4, "null", -1, SQLITE_STATIC);
    }
    if (rc != 0) {
        return af_error_set(err, rc, "out of memory");
    }
    sqlite3_bind_int64(st, 5, job->run_at > 0 ? job->run_at : now);
    sqlite3_bind_int(st, 6,
                     job->max_attempts > 0 ? job->max_attempts : q->opts.default_max_attempts);
    sqlite3_bind_int64(st, 7, now);
    if (job->lease_owner[0]) { /* claimed by its producer at once: its first attempt */
        af__sqlite_bind_text(st, 8, job->lease_owner);
        sqlite3_bind_int64(st, 9, job->lease_until);
    }
    rc = af__sqlite_run(c, st, "enqueue", err);
    if (rc == 0 && id_out) {
        memcpy(id_out, id, sizeof id);
    }
    return rc;
}

#define JOB_COLS                                                                                   \
    "id, queue, priority, payload, run_at, attempts, max_attempts, lease_owner, lease_until,"      \
    " last_error, created_at"

static int row_job(sqlite3_stmt *st, void *record) {
    af_job_t *job = record;
    int oom = 0;
    memset(job, 0, sizeof *job);
    af__sqlite_col_copy(st, 0, job->id, sizeof job->id);
    af__sqlite_col_copy(st, 1, job->queue, sizeof job->queue);
    job->priority = sqlite3_column_int(st, 2);
    job->payload = af__sqlite_col_json(st, 3);
    job->run_at = sqlite3_column_int64(st, 4);
    job->attempts = sqlite3_column_int(st, 5);
    job->max_attempts = sqlite3_column_int(st, 6);
    af__sqlite_col_copy(st, 7, job->lease_owner, sizeof job->lease_owner);
    job->lease_until = sqlite3_column_int64(st, 8);
    job->last_error = af__sqlite_col_dup(st, 9, &oom);
    job->created_at = sqlite3_column_int64(st, 10);
    if (oom) {
        af_job_clear(job);
        return AF_ENOMEM;
    }
    return 0;
}

/* A dead letter: a job row (JOB_COLS) followed by failed_at. */
static int row_dead(sqlite3_stmt *st, void *record) {
    int rc = row_job(st, record);
    ((af_job_t *)record)->failed_at = sqlite3_column_int64(st, 11);
    return rc;
}

/* Steps a bound statement that yields at most one job row (a SELECT, or an UPDATE ... RETURNING,
 * which makes all its changes on the first step). On a row fills *job (when not NULL) and sets
 * *found = 1; otherwise *found = 0. The statement is reset either way. */
static int one_job(af__sqlite_t *c, sqlite3_stmt *st, af_job_t *job, int *found, const char *what,
                   af_error_t *err) {
    af_job_t ignored;
    int rc = af__sqlite_one(c, st, row_job, job ? job : &ignored, what, err);
    if (rc == 0 && job == NULL) {
        af_job_clear(&ignored);
    }
    *found = rc == 0;
    return rc == AF_ENOTFOUND ? 0 : rc;
}
/* Runs a claiming statement (?1 its subject, ?2 worker, ?3 now, ?4 lease) that returns the
 * claimed job, if any. */
static int claim_by(af_queue_t *q, const char *sql, const char *subject, const char *worker,
                    int64_t lease_ms, af_job_t *job, int *found, const char *what,
                    af_error_t *err) {
    af__sqlite_t *c = CONN(q);
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, sql, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, subject);
    af__sqlite_bind_text(st, 2, worker);
    sqlite3_bind_int64(st, 3, af__sqlite_now(c));
    sqlite3_bind_int64(st, 4, lease_ms);
    return one_job(c, st, job, found, what, err);
}

/* One statement: SQLite takes the write lock before it reads, so the choice and the claim are
 * atomic against every other connection (they wait on the busy timeout, then see the claim). */
static int q_dequeue(af_queue_t *q, const char *queue, const char *worker, int64_t lease_ms,
                     af_job_t *job, af_error_t *err) {
    static const char SQL[] =
        "UPDATE jobs SET status = 'leased', lease_owner = ?2, lease_until = ?3 + ?4,"
        " attempts = attempts + 1, updated_at = ?3"
        " WHERE id = (SELECT id FROM jobs WHERE queue = ?1 AND status = 'ready' AND run_at <= ?3"
        "             ORDER BY priority DESC, run_at, rowid LIMIT 1)"
        " RETURNING " JOB_COLS;
    int found = 0;
    int rc = claim_by(q, SQL, queue, worker, lease_ms, job, &found, "dequeue", err);
    return rc == 0 && !found ? af_error_set(err, AF_ENOTFOUND, "no job due in queue %s", queue)
                             : rc;
}

/* Like q_dequeue for one given job, due or not. */
static int q_claim(af_queue_t *q, const char *job_id, const char *worker, int64_t lease_ms,
                   af_job_t *job, af_error_t *err) {
    static const char SQL[] =
        "UPDATE jobs SET status = 'leased', lease_owner = ?2, lease_until = ?3 + ?4,"
        " attempts = attempts + 1, updated_at = ?3 WHERE id = ?1 AND status = 'ready'"
        " RETURNING " JOB_COLS;
    int found = 0;
    int rc = claim_by(q, SQL, job_id, worker, lease_ms, job, &found, "claim", err);
    return rc == 0 && !found ? af_error_set(err, AF_ENOTFOUND, "no ready job %s", job_id) : rc;
}

static int q_get(af_queue_t *q, const char *job_id, af_job_t *job, af_error_t *err) {
    af__sqlite_t *c = CONN(q);
    static const char SQL[] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1";
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, job_id);
    int found = 0;
    if ((rc = one_job(c, st, job, &found, "get job", err)) == 0 && !found) {
        rc = af_error_set(err, AF_ENOTFOUND, "no job %s", job_id);
    }
    return rc;
}

/* Dead letters read with the JOB_COLS layout (run_at 0, no lease), then failed_at. */
#define DEAD_COLS                                                                                  \
    "id, queue, priority, payload, 0, attempts, max_attempts, NULL, 0, last_error, created_at,"    \
    " failed_at"

static int q_dead_get(af_queue_t *q, const char *job_id, af_job_t *job, af_error_t *err) {
    af__sqlite_t *c = CONN(q);
    static const char SQL[] = "SELECT " DEAD_COLS " FROM dead_letters WHERE id = ?1";
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, job_id);
    rc = af__sqlite_one(c, st, row_dead, job, "get dead letter", err);
    return rc == AF_ENOTFOUND ? af_error_set(err, rc, "no dead letter %s", job_id) : rc;
}

static int q_heartbeat(af_queue_t *q, const char *job_id, const char *worker, int64_t lease_ms,
                       af_error_t *err) {
    af__sqlite_t *c = CONN(q);
    static const char SQL[] = "UPDATE jobs SET lease_until = ?3 + ?4, updated_at = ?3"
                              " WHERE id = ?1 AND status = 'leased' AND lease_owner = ?2"
                              " AND lease_until > ?3";
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, job_id);
    af__sqlite_bind_text(st, 2, worker);
    sqlite3_bind_int64(st, 3, af__sqlite_now(c));
    sqlite3_bind_int64(st, 4, lease_ms);
    rc = af__sqlite_run(c, st, "heartbeat", err);
    if (rc == 0 && sqlite3_changes(c->db) == 0) {
        rc =
            af_error_set(err, AF_ESTATE, "job %s: lease not held by %s (expired?)", job_id, worker);
    }
    return rc;
}

static int q_complete(af_queue_t *q, const char *job_id, const char *worker, af_error_t *err) {
    af__sqlite_t *c = CONN(q);
    static const char SQL[] =
        "DELETE FROM jobs WHERE id = ?1 AND status = 'leased' AND lease_owner = ?2";
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, job_id);
    af__sqlite_bind_text(st, 2, worker);
    rc = af__sqlite_run(c, st, "complete", err);
    if (rc == 0 && sqlite3_changes(c->db) == 0) {
        rc = af_error_set(err, AF_ESTATE, "job %s: lease not held by %s", job_id, worker);
    }
    return rc;
}

/* Moves the jobs selected by `where` (bound: ?1 id or now) into dead_letters with ?2 as error. */
static const char DEAD_ONE[] =
    "INSERT OR REPLACE INTO dead_letters (id, queue, priority, payload, attempts, max_attempts,"
    " last_error, created_at, failed_at) SELECT id, queue, priority, payload, attempts,"
    " max_attempts, ?2, created_at, ?3 FROM jobs WHERE id = ?1";
static const char DELETE_ONE[] = "DELETE FROM jobs WHERE id = ?1";

static int bury(af__sqlite_t *c, const char *job_id, const char *error, int64_t now,
                af_error_t *err) {
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, DEAD_ONE, &st, err);
    if (rc == 0) {
        af__sqlite_bind_text(st, 1, job_id);
        af__sqlite_bind_text(st, 2, error);
        sqlite3_bind_int64(st, 3, now);
        rc = af__sqlite_run(c, st, "dead-letter", err);
    }
    if (rc == 0 && (rc = af__sqlite_prep(c, DELETE_ONE, &st, err)) == 0) {
        af__sqlite_bind_text(st, 1, job_id);
        rc = af__sqlite_run(c, st, "dead-letter", err);
    }
    return rc;
}

static int q_fail(af_queue_t *q, const char *job_id, const char *worker, const char *error,
                  int64_t retry_in_ms, int *dead, af_error_t *err) {
    af__sqlite_t *c = CONN(q);
    static const char HELD[] = "SELECT attempts, max_attempts FROM jobs"
                               " WHERE id = ?1 AND status = 'leased' AND lease_owner = ?2";
    static const char RETRY[] =
        "UPDATE jobs SET status = 'ready', lease_owner = NULL, lease_until = NULL, run_at = ?2,"
        " last_error = ?3, updated_at = ?4 WHERE id = ?1";
    int rc = af__sqlite_begin(c, err);
    if (rc != 0) {
        return rc;
    }
    int64_t now = af__sqlite_now(c);
    int attempts = 0, max_attempts = 0, held = 0, buried = 0;
    sqlite3_stmt *st;
    if ((rc = af__sqlite_prep(c, HELD, &st, err)) == 0) {
        af__sqlite_bind_text(st, 1, job_id);
        af__sqlite_bind_text(st, 2, worker);
        if ((rc = af__sqlite_first(c, st, &held, "fail", err)) == 0 && held) {
            attempts = sqlite3_column_int(st, 0);
            max_attempts = sqlite3_column_int(st, 1);
            rc = af__sqlite_run(c, st, "fail", err);
        }
    }
    if (rc == 0 && !held) {
        rc = af_error_set(err, AF_ESTATE, "job %s: lease not held by %s", job_id, worker);
    }
    if (rc == 0) {
        if (retry_in_ms == AF_QUEUE_NO_RETRY || attempts >= max_attempts) {
            buried = 1;
            rc = bury(c, job_id, error, now, err);
        } else if ((rc = af__sqlite_prep(c, RETRY, &st, err)) == 0) {
            int64_t delay = retry_in_ms >= 0 ? retry_in_ms : af__queue_backoff(q, attempts);
            af__sqlite_bind_text(st, 1, job_id);
            sqlite3_bind_int64(st, 2, now + delay);
            af__sqlite_bind_text(st, 3, error);
            sqlite3_bind_int64(st, 4, now);
            rc = af__sqlite_run(c, st, "reschedule", err);
        }
    }
    rc = af__sqlite_end(c, rc, err);
    if (rc == 0 && dead) {
        *dead = buried;
    }
    return rc;
}

static int q_reap(af_queue_t *q, int *reaped, af_error_t *err) {
    af__sqlite_t *c = CONN(q);
    static const char BURY[] =
        "INSERT OR REPLACE INTO dead_letters (id, queue, priority, payload, attempts,"
        " max_attempts, last_error, created_at, failed_at) SELECT id, queue, priority, payload,"
        " attempts, max_attempts, 'lease expired', created_at, ?1 FROM jobs"
        " WHERE status = 'leased' AND lease_until <= ?1 AND attempts >= max_attempts";
    static const char DROP[] = "DELETE FROM jobs WHERE status = 'leased' AND lease_until <= ?1"
                               " AND attempts >= max_attempts";
    static const char BACK[] =
        "UPDATE jobs SET status = 'ready', lease_owner = NULL, lease_until = NULL, run_at = ?1,"
        " last_error = 'lease expired', updated_at = ?1"
        " WHERE status = 'leased' AND lease_until <= ?1";
    const char *steps[] = {BURY, DROP, BACK};
    int rc = af__sqlite_begin(c, err);
    if (rc != 0) {
        return rc;
    }
    int64_t now = af__sqlite_now(c);
    int n = 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        sqlite3_stmt *st;
        if ((rc = af__sqlite_prep(c, steps[i], &st, err)) == 0) {
            sqlite3_bind_int64(st, 1, now);
            rc = af__sqlite_run(c, st, "reap", err);
            if (i != 1) {
                n += sqlite3_changes(c->db);
            }
        }
    }
    rc = af__sqlite_end(c, rc, err);
    if (rc == 0 && reaped) {
        *reaped = n;
    }
    return rc;
}

static int q_dead_list(af_queue_t *q, const char *queue, const char *after, int limit,
                       af_job_t **out, size_t *n, af_error_t *err) {
    af__sqlite_t *c = CONN(q);
    static const char SQL[] =
        "SELECT id, queue, priority, payload, 0, attempts, max_attempts, NULL, 0, last_error,"
        " created_at, failed_at FROM dead_letters"
        " WHERE (?1 IS NULL OR queue = ?1)"
        "   AND (?2 IS NULL OR (failed_at, id) > (SELECT failed_at, id FROM dead_letters"
        "                                          WHERE id = ?2))"
        " ORDER BY failed_at, id LIMIT ?3";
    *out = NULL;
    *n = 0;
    if (limit <= 0) {
        limit = 100;
    }
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, queue);
    af__sqlite_bind_text(st, 2, after);
    sqlite3_bind_int(st, 3, limit);
    rc = af__sqlite_rows(c, st, sizeof **out, row_dead, "list dead letters", (void **)out, n, NULL,
                         err);
    if (rc != 0) {
        af_jobs_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

static int q_dead_retry(af_queue_t *q, const char *job_id, af_error_t *err) {
    af__sqlite_t *c = CONN(q);
    static const char BACK[] =
        "INSERT INTO jobs (id, queue, priority, payload, run_at, attempts, max_attempts, status,"
        " last_error, created_at, updated_at) SELECT id, queue, priority, payload, ?2, 0,"
        " max_attempts, 'ready', last_error, created_at, ?2 FROM dead_letters WHERE id = ?1";
    static const char DROP[] = "DELETE FROM dead_letters WHERE id = ?1";
    static const char FIND[] = "SELECT 1 FROM dead_letters WHERE id = ?1";
    sqlite3_stmt *st;
    /* Not a dead letter is the common answer (a retry of a failed execution): say so before any
     * savepoint, so a group commit need not undo one and run its batch again. */
    int rc = af__sqlite_prep(c, FIND, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, job_id);
    int step = sqlite3_step(st);
    sqlite3_reset(st);
    if (step == SQLITE_DONE) {
        return af_error_set(err, AF_ENOTFOUND, "no dead letter %s", job_id);
    }
    rc = af__sqlite_begin(c, err);
    if (rc != 0) {
        return rc;
    }
    if ((rc = af__sqlite_prep(c, BACK, &st, err)) == 0) {
        af__sqlite_bind_text(st, 1, job_id);
        sqlite3_bind_int64(st, 2, af__sqlite_now(c));
        rc = af__sqlite_run(c, st, "retry dead letter", err);
        if (rc == 0 && sqlite3_changes(c->db) == 0) {
            rc = af_error_set(err, AF_ENOTFOUND, "no dead letter %s", job_id);
        }
    }
    if (rc == 0 && (rc = af__sqlite_prep(c, DROP, &st, err)) == 0) {
        af__sqlite_bind_text(st, 1, job_id);
        rc = af__sqlite_run(c, st, "retry dead letter", err);
    }
    return af__sqlite_end(c, rc, err);
}

static int q_count(af_queue_t *q, const char *queue, int64_t *ready, int64_t *leased, int64_t *dead,
                   af_error_t *err) {
    af__sqlite_t *c = CONN(q);
    static const char SQL[] =
        "SELECT (SELECT COUNT(*) FROM jobs WHERE status = 'ready' AND (?1 IS NULL OR queue = ?1)),"
        " (SELECT COUNT(*) FROM jobs WHERE status = 'leased' AND (?1 IS NULL OR queue = ?1)),"
        " (SELECT COUNT(*) FROM dead_letters WHERE ?1 IS NULL OR queue = ?1)";
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, queue);
    int row = 0;
    if ((rc = af__sqlite_first(c, st, &row, "count jobs", err)) == 0 && row) {
        if (ready) {
            *ready = sqlite3_column_int64(st, 0);
        }
        if (leased) {
            *leased = sqlite3_column_int64(st, 1);
        }
        if (dead) {
            *dead = sqlite3_column_int64(st, 2);
        }
        rc = af__sqlite_run(c, st, "count jobs", err);
    }
    return rc;
}

static int q_heartbeat_all(af_queue_t *q, const char *worker, int64_t lease_ms, int *n,
                           af_error_t *err) {
    af__sqlite_t *c = CONN(q);
    static const char SQL[] = "UPDATE jobs SET lease_until = ?2 + ?3, updated_at = ?2"
                              " WHERE status = 'leased' AND lease_owner = ?1";
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, worker);
    sqlite3_bind_int64(st, 2, af__sqlite_now(c));
    sqlite3_bind_int64(st, 3, lease_ms);
    rc = af__sqlite_run(c, st, "heartbeat all", err);
    if (rc == 0 && n) {
        *n = sqlite3_changes(c->db);
    }
    return rc;
}

static int q_release_all(af_queue_t *q, const char *except_worker, int *n, af_error_t *err) {
    af__sqlite_t *c = CONN(q);
    static const char SQL[] =
        "UPDATE jobs SET status = 'ready', lease_owner = NULL, lease_until = NULL, run_at = ?1,"
        " updated_at = ?1 WHERE status = 'leased' AND (?2 IS NULL OR lease_owner IS NOT ?2)";
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    sqlite3_bind_int64(st, 1, af__sqlite_now(c));
    af__sqlite_bind_text(st, 2, except_worker);
    rc = af__sqlite_run(c, st, "release all", err);
    if (rc == 0 && n) {
        *n = sqlite3_changes(c->db);
    }
    return rc;
}

static int q_list(af_queue_t *q, const char *queue, const char *after, int limit, af_job_t **out,
                  size_t *n, af_error_t *err) {
    af__sqlite_t *c = CONN(q);
    static const char SQL[] = "SELECT " JOB_COLS " FROM jobs"
                              " WHERE (?1 IS NULL OR queue = ?1) AND id > ?2 ORDER BY id LIMIT ?3";
    *out = NULL;
    *n = 0;
    if (limit <= 0) {
        limit = 1000;
    }
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, queue);
    af__sqlite_bind_text(st, 2, after ? after : "");
    sqlite3_bind_int(st, 3, limit);
    rc = af__sqlite_rows(c, st, sizeof **out, row_job, "list jobs", (void **)out, n, NULL, err);
    if (rc != 0) {
        af_jobs_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

static int q_remove(af_queue_t *q, const char *job_id, af_error_t *err) {
    af__sqlite_t *c = CONN(q);
    static const char DEAD[] = "DELETE FROM dead_letters WHERE id = ?1";
    int rc = af__sqlite_begin(c, err);
    if (rc != 0) {
        return rc;
    }
    int gone = 0;
    sqlite3_stmt *st;
    if ((rc = af__sqlite_prep(c, DELETE_ONE, &st, err)) == 0) {
        af__sqlite_bind_text(st, 1, job_id);
        rc = af__sqlite_run(c, st, "remove job", err);
        gone += sqlite3_changes(c->db);
    }
    if (rc == 0 && (rc = af__sqlite_prep(c, DEAD, &st, err)) == 0) {
        af__sqlite_bind_text(st, 1, job_id);
        rc = af__sqlite_run(c, st, "remove dead letter", err);
        gone += sqlite3_changes(c->db);
    }
    if (rc == 0 && gone == 0) {
        rc = af_error_set(err, AF_ENOTFOUND, "no job or dead letter %s", job_id);
    }
    return af__sqlite_end(c, rc, err);
}

static int q_reschedule(af_queue_t *q, const char *job_id, const char *worker, int64_t run_at,
                        af_error_t *err) {
    af__sqlite_t *c = CONN(q);
    static const char SQL[] =
        "UPDATE jobs SET status = 'ready', lease_owner = NULL, lease_until = NULL, run_at = ?3,"
        " attempts = 0, updated_at = ?4 WHERE id = ?1 AND status = 'leased' AND lease_owner = ?2";
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    int64_t now = af__sqlite_now(c);
    af__sqlite_bind_text(st, 1, job_id);
    af__sqlite_bind_text(st, 2, worker);
    sqlite3_bind_int64(st, 3, run_at > 0 ? run_at : now);
    sqlite3_bind_int64(st, 4, now);
    rc = af__sqlite_run(c, st, "reschedule", err);
    if (rc == 0 && sqlite3_changes(c->db) == 0) {
        rc = af_error_set(err, AF_ESTATE, "job %s: lease not held by %s", job_id, worker);
    }
    return rc;
}

static const af_queue_vt_t SQLITE_QUEUE_VT = {
    .name = "sqlite",
    .enqueue = q_enqueue,
    .dequeue = q_dequeue,
    .heartbeat = q_heartbeat,
    .complete = q_complete,
    .fail = q_fail,
    .reap = q_reap,
    .dead_list = q_dead_list,
    .dead_retry = q_dead_retry,
    .count = q_count,
    .claim = q_claim,
    .heartbeat_all = q_heartbeat_all,
    .release_all = q_release_all,
    .list = q_list,
    .get = q_get,
    .remove = q_remove,
    .dead_get = q_dead_get,
    .reschedule = q_reschedule,
};

af_queue_t *af__queue_sqlite_new(af__sqlite_t *c) {
    sqlite_queue_t *q = calloc(1, sizeof *q);
    if (q == NULL) {
        return NULL;
    }
    af__queue_init(&q->base, &SQLITE_QUEUE_VT);
    q->c = c;
    return &q->base;
}

void af__queue_sqlite_free(af_queue_t *q) {
    free(q);
}
