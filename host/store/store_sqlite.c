/* store_sqlite.c -- the embedded storage backend: one SQLite connection in WAL mode, versioned
 * migrations applied at open, cached statements, nesting transactions, workflows, executions,
 * checkpoints, logs and retention. Triggers and webhooks are in store_sqlite_triggers.c. */
#include <limits.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_sqlite_internal.h"

/* ---- schema --------------------------------------------------------------------------------
 * Migrations are append-only: never edit a released one, add the next version. Times are integer
 * milliseconds since the Unix epoch; JSON columns hold compact JSON text. */
static const char MIGRATION_1[] =
    "CREATE TABLE workflows ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  description TEXT,"
    "  project_id TEXT,"
    "  status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active','paused')),"
    "  current_version INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE INDEX workflows_created ON workflows(created_at, id);"
    "CREATE INDEX workflows_project ON workflows(project_id, created_at, id);"
    "CREATE TABLE workflow_versions ("
    "  workflow_id TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  lua_source TEXT,"
    "  definition TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (workflow_id, version)) WITHOUT ROWID;"
    "CREATE TABLE workflow_executions ("
    "  id TEXT PRIMARY KEY,"
    "  workflow_id TEXT NOT NULL,"
    "  version INTEGER NOT NULL DEFAULT 0,"
    "  status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued','running','waiting',"
    "    'succeeded','failed','cancelled')),"
    "  input TEXT,"
    "  result TEXT,"
    "  error TEXT,"
    "  attempt INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  started_at INTEGER,"
    "  completed_at INTEGER,"
    "  wake_at INTEGER);"
    "CREATE INDEX executions_workflow ON workflow_executions(workflow_id, created_at);"
    "CREATE INDEX executions_status ON workflow_executions(status, created_at);"
    "CREATE INDEX executions_wake ON workflow_executions(wake_at) WHERE status = 'waiting';"
    "CREATE TABLE step_checkpoints ("
    "  execution_id TEXT NOT NULL,"
    "  step TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  output TEXT,"
    "  error TEXT,"
    "  started_at INTEGER,"
    "  ended_at INTEGER,"
    "  PRIMARY KEY (execution_id, step)) WITHOUT ROWID;"
    "CREATE TABLE execution_logs ("
    "  execution_id TEXT NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  at INTEGER NOT NULL,"
    "  step TEXT,"
    "  level TEXT NOT NULL,"
    "  message TEXT NOT NULL,"
    "  PRIMARY KEY (execution_id, seq)) WITHOUT ROWID;"
    "CREATE TABLE triggers ("
    "  id TEXT PRIMARY KEY,"
    "  workflow_id TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  config TEXT,"
    "  is_active INTEGER NOT NULL DEFAULT 1,"
    "  created_at INTEGER,"
    "  updated_at INTEGER);"
    "CREATE INDEX triggers_workflow ON triggers(workflow_id);"
    "CREATE INDEX triggers_active ON triggers(type) WHERE is_active;"
    "CREATE TABLE webhook_registrations ("
    "  id TEXT PRIMARY KEY,"
    "  workflow_id TEXT NOT NULL,"
    "  path TEXT NOT NULL UNIQUE,"
    "  secret TEXT,"
    "  config TEXT,"
    "  created_at INTEGER);"
    "CREATE INDEX webhooks_workflow ON webhook_registrations(workflow_id);"
    "CREATE TABLE jobs ("
    "  id TEXT PRIMARY KEY,"
    "  queue TEXT NOT NULL,"
    "  priority INTEGER NOT NULL DEFAULT 0,"
    "  payload TEXT,"
    "  run_at INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  max_attempts INTEGER NOT NULL DEFAULT 5,"
    "  status TEXT NOT NULL DEFAULT 'ready' CHECK (status IN ('ready','leased')),"
    "  lease_owner TEXT,"
    "  lease_until INTEGER,"
    "  last_error TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE INDEX jobs_ready ON jobs(queue, priority DESC, run_at) WHERE status = 'ready';"
    "CREATE INDEX jobs_leased ON jobs(lease_until) WHERE status = 'leased';"
    "CREATE TABLE dead_letters ("
    "  id TEXT PRIMARY KEY,"
    "  queue TEXT NOT NULL,"
    "  priority INTEGER NOT NULL,"
    "  payload TEXT,"
    "  attempts INTEGER NOT NULL,"
    "  max_attempts INTEGER NOT NULL,"
    "  last_error TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  failed_at INTEGER NOT NULL);"
    "CREATE INDEX dead_letters_queue ON dead_letters(queue, failed_at, id);"
    "CREATE INDEX dead_letters_failed ON dead_letters(failed_at, id);"
    "CREATE TABLE events ("
    "  id TEXT PRIMARY KEY,"
    "  type TEXT NOT NULL,"
    "  data TEXT,"
    "  created_at INTEGER NOT NULL);"
    "CREATE INDEX events_type ON events(type, created_at);"
    "CREATE INDEX events_created ON events(created_at);";

/* Checkpoints record the port a branching step took and when a waiting step wakes; triggers say
 * who declared them (the workflow's script, or the API) and where in the script; webhook
 * registrations belong to a trigger and accept given methods; seen webhook message ids make
 * deliveries idempotent. The execution indexes serve lists filtered by workflow and/or status in
 * cursor order (created_at, id) and replace the two of migration 1, which they extend. */
static const char MIGRATION_2[] =
    "ALTER TABLE step_checkpoints ADD COLUMN port TEXT;"
    "ALTER TABLE step_checkpoints ADD COLUMN wake_at INTEGER;"
    "ALTER TABLE triggers ADD COLUMN source TEXT NOT NULL DEFAULT 'api';"
    "ALTER TABLE triggers ADD COLUMN position INTEGER;"
    "ALTER TABLE webhook_registrations ADD COLUMN trigger_id TEXT;"
    "ALTER TABLE webhook_registrations ADD COLUMN methods TEXT;"
    "CREATE INDEX webhooks_trigger ON webhook_registrations(trigger_id);"
    "CREATE TABLE webhook_seen ("
    "  scope TEXT NOT NULL,"
    "  msg_id TEXT NOT NULL,"
    "  execution_id TEXT,"
    "  seen_at INTEGER NOT NULL,"
    "  PRIMARY KEY (scope, msg_id)) WITHOUT ROWID;"
    "CREATE INDEX webhook_seen_at ON webhook_seen(seen_at);"
    "CREATE INDEX workflows_name ON workflows(name, created_at, id);"
    "DROP INDEX executions_workflow;"
    "DROP INDEX executions_status;"
    "CREATE INDEX executions_created ON workflow_executions(created_at, id);"
    "CREATE INDEX executions_workflow_created ON workflow_executions(workflow_id, created_at, id);"
    "CREATE INDEX executions_status_created ON workflow_executions(status, created_at, id);"
    "CREATE INDEX executions_workflow_status ON workflow_executions(workflow_id, status,"
    "  created_at, id);";

/* What schedules and polls remember across restarts; events carry metadata (the depth of the
 * chain that emitted them, their source) and are listed for replay in (created_at, id) order;
 * an execution an event started knows that event's depth, so what it emits is one deeper. */
static const char MIGRATION_3[] =
    "CREATE TABLE trigger_state ("
    "  trigger_id TEXT PRIMARY KEY,"
    "  last_fire_at INTEGER,"
    "  last_execution_id TEXT,"
    "  state TEXT,"
    "  updated_at INTEGER NOT NULL) WITHOUT ROWID;"
    "ALTER TABLE events ADD COLUMN meta TEXT;"
    "ALTER TABLE workflow_executions ADD COLUMN event_depth INTEGER NOT NULL DEFAULT 0;"
    "DROP INDEX events_created;"
    "CREATE INDEX events_created ON events(created_at, id);";

static const struct {
    int version;
    const char *name;
    const char *sql;
} MIGRATIONS[] = {
    {1, "initial schema", MIGRATION_1},
    {2, "triggers, webhooks, checkpoint ports, execution lists", MIGRATION_2},
    {3, "trigger state, event metadata", MIGRATION_3},
};
#define NMIGRATIONS ((int)(sizeof MIGRATIONS / sizeof MIGRATIONS[0]))

typedef af__sqlite_store_t sqlite_store_t;

#define CONN(s) AF__STORE_CONN(s)

/* ---- shared helpers (also used by queue_sqlite.c) ------------------------------------------- */

int64_t af__sqlite_now(af__sqlite_t *c) {
    return c->clock ? c->clock(c->clock_ud) : af_wall_ms();
}

int af__sqlite_fail(af__sqlite_t *c, int rc, const char *what, af_error_t *err) {
    int code;
    switch (rc) {
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE:
        code = AF_EEXISTS;
        break;
    case SQLITE_CONSTRAINT_CHECK:
    case SQLITE_CONSTRAINT_NOTNULL:
        code = AF_EINVAL;
        break;
    default:
        switch (rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
            code = AF_ETIMEOUT;
            break;
        case SQLITE_NOMEM:
            code = AF_ENOMEM;
            break;
        default:
            code = AF_EIO;
        }
    }
    return af_error_set(err, code, "%s: %s", what, sqlite3_errmsg(c->db));
}

/* The home slot of a statement's SQL address (Fibonacci hashing; literals are aligned, so the
 * low bits carry little). */
static unsigned cache_slot(const char *sql) {
    uint64_t h = (uint64_t)(uintptr_t)sql * 0x9e3779b97f4a7c15ULL;
    return (unsigned)(h >> 40) & (AF__SQLITE_CACHE_SLOTS - 1);
}

int af__sqlite_prep(af__sqlite_t *c, const char *sql, sqlite3_stmt **st, af_error_t *err) {
    unsigned i = cache_slot(sql);
    while (c->cache[i].sql != NULL) {
        if (c->cache[i].sql == sql) {
            *st = c->cache[i].st;
            sqlite3_reset(*st);
            sqlite3_clear_bindings(*st);
            return 0;
        }
        i = (i + 1) & (AF__SQLITE_CACHE_SLOTS - 1);
    }
    if (c->ncache == AF__SQLITE_CACHE_MAX) {
        return af_error_set(err, AF_ELIMIT, "statement cache full");
    }
    int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc != SQLITE_OK) {
        return af__sqlite_fail(c, rc, "prepare", err);
    }
    c->cache[i].sql = sql;
    c->cache[i].st = *st;
    c->ncache++;
    return 0;
}

void af__sqlite_cache_free(af__sqlite_t *c) {
    for (int i = 0; i < AF__SQLITE_CACHE_SLOTS; i++) {
        if (c->cache[i].sql != NULL) {
            sqlite3_finalize(c->cache[i].st);
            c->cache[i].sql = NULL;
            c->cache[i].st = NULL;
        }
    }
    c->ncache = 0;
}

int af__sqlite_exec(af__sqlite_t *c, const char *sql, af_error_t *err) {
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : af__sqlite_fail(c, sqlite3_extended_errcode(c->db), sql, err);
}

int af__sqlite_run(af__sqlite_t *c, sqlite3_stmt *st, const char *what, af_error_t *err) {
    int rc = sqlite3_step(st);
    int out = 0;
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        out = af__sqlite_fail(c, sqlite3_extended_errcode(c->db), what, err);
    }
    sqlite3_reset(st);
    return out;
}

int af__sqlite_first(af__sqlite_t *c, sqlite3_stmt *st, int *row, const char *what,
                     af_error_t *err) {
    int rc = sqlite3_step(st);
    *row = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW) {
        return 0;
    }
    int out = 0;
    if (rc != SQLITE_DONE) {
        out = af__sqlite_fail(c, sqlite3_extended_errcode(c->db), what, err);
    }
    sqlite3_reset(st);
    return out;
}

/* Transaction statements are run thousands of times a second by group commit: prepared once
 * (the cache is keyed by these static texts), not parsed each time. */
#define SP_CACHED 16
static const char *const SP_BEGIN[SP_CACHED + 1] = {
    "BEGIN IMMEDIATE", "SAVEPOINT sp1",  "SAVEPOINT sp2",  "SAVEPOINT sp3",  "SAVEPOINT sp4",
    "SAVEPOINT sp5",   "SAVEPOINT sp6",  "SAVEPOINT sp7",  "SAVEPOINT sp8",  "SAVEPOINT sp9",
    "SAVEPOINT sp10",  "SAVEPOINT sp11", "SAVEPOINT sp12", "SAVEPOINT sp13", "SAVEPOINT sp14",
    "SAVEPOINT sp15",  "SAVEPOINT sp16"};
static const char *const SP_END[SP_CACHED + 1] = {
    "COMMIT",       "RELEASE sp1",  "RELEASE sp2",  "RELEASE sp3",  "RELEASE sp4",  "RELEASE sp5",
    "RELEASE sp6",  "RELEASE sp7",  "RELEASE sp8",  "RELEASE sp9",  "RELEASE sp10", "RELEASE sp11",
    "RELEASE sp12", "RELEASE sp13", "RELEASE sp14", "RELEASE sp15", "RELEASE sp16"};

static int exec_cached(af__sqlite_t *c, const char *sql, af_error_t *err) {
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, sql, &st, err);
    if (rc != 0) {
        return af__sqlite_exec(c, sql, err);
    }
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW
               ? 0
               : af__sqlite_fail(c, sqlite3_extended_errcode(c->db), sql, err);
}

int af__sqlite_flat(af__sqlite_t *c, int on) {
    int undone = c->flat_undone;
    c->flat = on;
    c->flat_undone = 0;
    return undone;
}

int af__sqlite_begin(af__sqlite_t *c, af_error_t *err) {
    char sql[32];
    int rc;
    if (c->flat && c->depth > 0) {
        c->depth++;
        return 0;
    }
    if (c->depth < SP_CACHED) {
        /* depth 0 begins the transaction; depth d opens savepoint sp(d + 1) */
        rc = exec_cached(c, c->depth == 0 ? SP_BEGIN[0] : SP_BEGIN[c->depth + 1], err);
    } else {
        snprintf(sql, sizeof sql, "SAVEPOINT sp%d", c->depth + 1);
        rc = af__sqlite_exec(c, sql, err);
    }
    if (rc == 0) {
        c->depth++;
    }
    return rc;
}

void af__sqlite_rollback(af__sqlite_t *c) {
    char sql[64];
    if (c->depth <= 0) {
        return;
    }
    if (sqlite3_get_autocommit(c->db)) {
        c->depth = 0; /* SQLite already rolled the whole transaction back (I/O error, full disk) */
        return;
    }
    if (c->flat && c->depth > 1) {
        c->flat_undone = 1;
    } else if (c->depth == 1) {
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    } else {
        snprintf(sql, sizeof sql, "ROLLBACK TO sp%d; RELEASE sp%d", c->depth, c->depth);
        sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    }
    c->depth--;
}

int af__sqlite_commit(af__sqlite_t *c, af_error_t *err) {
    char sql[32];
    if (c->depth <= 0) {
        return af_error_set(err, AF_ESTATE, "commit without a transaction");
    }
    if (sqlite3_get_autocommit(c->db)) {
        c->depth = 0;
        return af_error_set(err, AF_EIO, "the transaction was rolled back by the database");
    }
    int rc;
    if (c->flat && c->depth > 1) {
        rc = 0;
    } else if (c->depth <= SP_CACHED) {
        rc = exec_cached(c, c->depth == 1 ? SP_END[0] : SP_END[c->depth], err);
    } else {
        snprintf(sql, sizeof sql, "RELEASE sp%d", c->depth);
        rc = af__sqlite_exec(c, sql, err);
    }
    if (rc != 0) {
        af__sqlite_rollback(c);
        return rc;
    }
    c->depth--;
    return 0;
}

int af__sqlite_end(af__sqlite_t *c, int rc, af_error_t *err) {
    if (rc != 0) {
        af__sqlite_rollback(c);
        return rc;
    }
    return af__sqlite_commit(c, err);
}

int af__sqlite_bind_text(sqlite3_stmt *st, int i, const char *s) {
    return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

int af__sqlite_bind_json(sqlite3_stmt *st, int i, const json_t *v) {
    if (v == NULL) {
        sqlite3_bind_null(st, i);
        return 0;
    }
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL) {
        return AF_ENOMEM;
    }
    sqlite3_bind_text(st, i, text, -1, free);
    return 0;
}

char *af__sqlite_col_dup(sqlite3_stmt *st, int i, int *oom) {
    const unsigned char *t = sqlite3_column_text(st, i);
    if (t == NULL) {
        return NULL;
    }
    char *d = strdup((const char *)t);
    if (d == NULL) {
        *oom = 1;
    }
    return d;
}

json_t *af__sqlite_col_json(sqlite3_stmt *st, int i) {
    const char *t = (const char *)sqlite3_column_text(st, i);
    if (t == NULL) {
        return NULL;
    }
    return json_loads(t, JSON_DECODE_ANY, NULL);
}

void af__sqlite_col_copy(sqlite3_stmt *st, int i, char *buf, size_t size) {
    const char *t = (const char *)sqlite3_column_text(st, i);
    snprintf(buf, size, "%s", t ? t : "");
}

static int64_t col_i64(sqlite3_stmt *st, int i) {
    return sqlite3_column_int64(st, i);
}

int af__sqlite_one(af__sqlite_t *c, sqlite3_stmt *st, af__sqlite_row_fn row, void *record,
                   const char *what, af_error_t *err) {
    int rc = sqlite3_step(st);
    int out = rc == SQLITE_ROW    ? (row(st, record) < 0 ? AF_ENOMEM : 0)
              : rc == SQLITE_DONE ? AF_ENOTFOUND
                                  : af__sqlite_fail(c, sqlite3_extended_errcode(c->db), what, err);
    sqlite3_reset(st);
    return out == AF_ENOMEM ? af_error_set(err, AF_ENOMEM, "out of memory") : out;
}

int af__sqlite_rows(af__sqlite_t *c, sqlite3_stmt *st, size_t size, af__sqlite_row_fn row,
                    const char *what, void **out, size_t *n, size_t *rows, af_error_t *err) {
    void *arr = NULL;
    size_t got = 0, cap = 0, stepped = 0;
    int rc, kept = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        stepped++;
        if (af_grow(&arr, &cap, got + 1, size) != 0 ||
            (kept = row(st, (char *)arr + got * size)) < 0) {
            rc = AF_ENOMEM;
            break;
        }
        got += kept == 0;
    }
    int ecode = rc == SQLITE_DONE || rc == AF_ENOMEM ? 0 : sqlite3_extended_errcode(c->db);
    sqlite3_reset(st);
    if (got == 0) {
        free(arr);
        arr = NULL;
    }
    *out = arr;
    *n = got;
    if (rows) {
        *rows = stepped;
    }
    if (rc == AF_ENOMEM) {
        return af_error_set(err, AF_ENOMEM, "out of memory");
    }
    return rc == SQLITE_DONE ? 0 : af__sqlite_fail(c, ecode, what, err);
}

int af__sqlite_fits(const char *s, size_t max) {
    return s != NULL && strlen(s) < max;
}

const char *af__sqlite_id(const char *given, char *buf, size_t size) {
    if (given != NULL && given[0] != '\0') {
        snprintf(buf, size, "%s", given);
        return buf;
    }
    return af_uuid_v4(buf);
}

int af__sqlite_word_in(const char *s, const char *const *words) {
    for (; *words; words++) {
        if (strcmp(s, *words) == 0) {
            return 1;
        }
    }
    return 0;
}

static const char *const WORKFLOW_STATUSES[] = {"active", "paused", NULL};
static const char *const EXEC_STATUSES[] = {"queued", "running",   "waiting", "succeeded",
                                            "failed", "cancelled", NULL};

/* ---- open, migrations, close ---------------------------------------------------------------- */

static int commit_hook(void *ud) {
    ((af__sqlite_t *)ud)->commits++;
    return 0; /* let it commit */
}

static int schema_version(af__sqlite_t *c, int *version, af_error_t *err) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(c->db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return af__sqlite_fail(c, rc, "schema version", err);
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *version = sqlite3_column_int(st, 0);
        rc = 0;
    } else {
        rc = af__sqlite_fail(c, sqlite3_extended_errcode(c->db), "schema version", err);
    }
    sqlite3_finalize(st);
    return rc;
}

static int too_new(int version, const char *path, af_error_t *err) {
    return af_error_set(err, AF_ESTATE,
                        "%s: database schema version %d is newer than this agentflow knows (%d); "
                        "upgrade agentflow or use another data directory",
                        path, version, AF_STORE_SCHEMA_VERSION);
}

static int migrate(af__sqlite_t *c, const char *path, af_error_t *err) {
    int rc = af__sqlite_exec(c,
                             "CREATE TABLE IF NOT EXISTS schema_migrations ("
                             "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                             "applied_at INTEGER NOT NULL)",
                             err);
    int version = 0;
    if (rc == 0) {
        rc = schema_version(c, &version, err);
    }
    if (rc != 0) {
        return rc;
    }
    if (version > AF_STORE_SCHEMA_VERSION) {
        return too_new(version, path, err);
    }
    for (int i = 0; i < NMIGRATIONS; i++) {
        if (MIGRATIONS[i].version <= version) {
            continue;
        }
        if ((rc = af__sqlite_begin(c, err)) != 0) {
            return rc;
        }
        /* Another process may have migrated since we looked: look again under the write lock. */
        rc = schema_version(c, &version, err);
        if (rc == 0 && version > AF_STORE_SCHEMA_VERSION) {
            rc = too_new(version, path, err);
        }
        if (rc == 0 && MIGRATIONS[i].version > version) {
            rc = af__sqlite_exec(c, MIGRATIONS[i].sql, err);
            if (rc == 0) {
                char sql[256];
                snprintf(sql, sizeof sql,
                         "INSERT INTO schema_migrations(version, name, applied_at) "
                         "VALUES (%d, '%s', %lld)",
                         MIGRATIONS[i].version, MIGRATIONS[i].name, (long long)af__sqlite_now(c));
                rc = af__sqlite_exec(c, sql, err);
            }
            if (rc != 0 && err) {
                char msg[sizeof err->msg];
                af_strlcpy(msg, err->msg, sizeof msg);
                af_error_set(err, rc, "migration %d (%s): %s", MIGRATIONS[i].version,
                             MIGRATIONS[i].name, msg);
            }
        }
        if ((rc = af__sqlite_end(c, rc, err)) != 0) {
            return rc;
        }
    }
    return 0;
}

static void sqlite_close(af_store_t *base) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    while (s->c.depth > 0) {
        af__sqlite_rollback(&s->c);
    }
    af__queue_sqlite_free(s->queue);
    af__sqlite_cache_free(&s->c);
    sqlite3_close(s->c.db);
    free(s);
}

static const af_store_vt_t SQLITE_VT;

/* ---- write-ahead log ------------------------------------------------------------------------
 * With manual checkpoints another connection copies the log often (af_store_checkpoint_wal). The
 * log only starts over when a checkpoint finishes with no newer frame, which under writes that
 * never pause only the writer's own checkpoint achieves: it runs one once the log passes
 * WAL_RESTART frames, right after a background copy (little left to copy and sync, so a short
 * stall), or at WAL_LIMIT frames whatever happens. */
#define WAL_RESTART 2000
#define WAL_LIMIT   4000
static _Atomic int64_t last_copy_us; /* when a background copy ended (monotonic us) */

static int wal_hook(void *ud, sqlite3 *db, const char *name, int frames) {
    (void)ud;
    if (frames < WAL_RESTART) {
        return SQLITE_OK;
    }
    int64_t since_us = (int64_t)(af_mono_ms() * 1000) - atomic_load(&last_copy_us);
    if (frames < WAL_LIMIT && since_us > 5000) {
        return SQLITE_OK;
    }
    sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

int af__store_sqlite_checkpoint_wal(af_store_t *s, int64_t *frames, af_error_t *err) {
    int log = 0, done = 0;
    af__sqlite_t *c = CONN(s);
    int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    if (rc == SQLITE_OK) {
        atomic_store(&last_copy_us, (int64_t)(af_mono_ms() * 1000));
    }
    if (frames) {
        *frames = done;
    }
    return rc == SQLITE_OK || rc == SQLITE_BUSY
               ? 0
               : af__sqlite_fail(c, sqlite3_extended_errcode(c->db), "checkpoint", err);
}

int af__store_sqlite_open(const char *path, const af_store_options_t *opts, af_store_t **out,
                          af_error_t *err) {
    /* No allocation statistics: they take a global mutex on every SQLite malloc, which the
     * writer thread does thousands of times a second. Only possible before SQLite initialises;
     * afterwards the call is refused and changes nothing. */
    static int configured;
    if (!configured) {
        configured = 1;
        sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    }
    af_store_options_t o = {sizeof o, AF_STORE_DURABLE_DEFAULT, 5000, NULL, NULL, 0};
    if (opts) {
        size_t n = opts->size < sizeof o ? opts->size : sizeof o;
        memcpy(&o, opts, n);
        o.size = sizeof o;
        if (o.busy_timeout_ms <= 0) {
            o.busy_timeout_ms = 5000;
        }
    }
    sqlite_store_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return af_error_set(err, AF_ENOMEM, "out of memory");
    }
    s->base.vt = &SQLITE_VT;
    s->c.clock = o.clock;
    s->c.clock_ud = o.clock_ud;
    int rc = sqlite3_open_v2(
        path, &s->c.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = af_error_set(err, AF_EIO, "%s: %s", path,
                          s->c.db ? sqlite3_errmsg(s->c.db) : sqlite3_errstr(rc));
        sqlite3_close(s->c.db);
        free(s);
        return rc;
    }
    sqlite3_extended_result_codes(s->c.db, 1);
    sqlite3_busy_timeout(s->c.db, o.busy_timeout_ms);
    /* auto_vacuum only takes effect before the first table exists, so it comes first; on an
     * existing database it changes nothing (the mode chosen at creation stays). */
    rc = af__sqlite_exec(&s->c, "PRAGMA auto_vacuum = INCREMENTAL", err);
    if (rc == 0) {
        rc = af__sqlite_exec(&s->c, "PRAGMA journal_mode = WAL", err);
    }
    if (rc == 0) {
        rc =
            af__sqlite_exec(&s->c,
                            o.durability == AF_STORE_DURABLE_STRICT ? "PRAGMA synchronous = FULL"
                                                                    : "PRAGMA synchronous = NORMAL",
                            err);
    }
    if (rc == 0) {
        rc = af__sqlite_exec(&s->c, "PRAGMA temp_store = MEMORY", err);
    }
    if (rc == 0) { /* up to 8 MB of pages (64 MB for the server's writer, grown only as used);
                    * the log is checkpointed by the commit that takes it past ~16 MB, or see
                    * wal_hook */
        rc = af__sqlite_exec(&s->c,
                             o.manual_wal_checkpoints
                                 ? "PRAGMA cache_size = -65536"
                                 : "PRAGMA cache_size = -8192; PRAGMA wal_autocheckpoint = 4000",
                             err);
    }
    if (rc == 0 && o.manual_wal_checkpoints) {
        sqlite3_wal_hook(s->c.db, wal_hook, NULL);
    }
    if (rc == 0) {
        rc = migrate(&s->c, path, err);
    }
    if (rc == 0) {
        rc = af__sqlite_exec(&s->c, "CREATE TEMP TABLE af_prune (id TEXT PRIMARY KEY)", err);
    }
    if (rc == 0 && (s->queue = af__queue_sqlite_new(&s->c)) == NULL) {
        rc = af_error_set(err, AF_ENOMEM, "out of memory");
    }
    if (rc != 0) {
        sqlite_close(&s->base);
        return rc;
    }
    /* Counted from here, so tests see the commits of their own calls. */
    sqlite3_commit_hook(s->c.db, commit_hook, &s->c);
    *out = &s->base;
    return 0;
}

static int pragma_int(af__sqlite_t *c, const char *sql, int64_t *v) {
    sqlite3_stmt *st;
    *v = 0;
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
        return AF_EIO;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        *v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return 0;
}

static int sqlite_info(af_store_t *base, af_store_info_t *info) {
    af__sqlite_t *c = CONN(base);
    int64_t v;
    memset(info, 0, sizeof *info);
    info->backend = "sqlite";
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            af__sqlite_col_copy(st, 0, info->journal_mode, sizeof info->journal_mode);
        }
        sqlite3_finalize(st);
    }
    pragma_int(c, "PRAGMA synchronous", &v);
    info->synchronous = (int)v;
    pragma_int(c, "PRAGMA auto_vacuum", &v);
    info->auto_vacuum = (int)v;
    pragma_int(c, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &v);
    info->schema_version = (int)v;
    pragma_int(c, "PRAGMA page_count", &info->page_count);
    pragma_int(c, "PRAGMA freelist_count", &info->freelist_count);
    pragma_int(c, "PRAGMA page_size", &info->page_size);
    info->commits = c->commits;
    return 0;
}

static af_queue_t *sqlite_queue(af_store_t *base) {
    return ((sqlite_store_t *)base)->queue;
}

static int sqlite_flat(af_store_t *s, int on) {
    return af__sqlite_flat(CONN(s), on);
}

static int sqlite_begin(af_store_t *s, af_error_t *err) {
    return af__sqlite_begin(CONN(s), err);
}

static int sqlite_commit(af_store_t *s, af_error_t *err) {
    return af__sqlite_commit(CONN(s), err);
}

static void sqlite_rollback(af_store_t *s) {
    af__sqlite_rollback(CONN(s));
}

/* ---- workflows ------------------------------------------------------------------------------ */

#define WORKFLOW_COLS                                                                              \
    "id, name, description, project_id, status, current_version, created_at, updated_at"

static int row_workflow(sqlite3_stmt *st, void *record) {
    af_workflow_t *w = record;
    int oom = 0;
    memset(w, 0, sizeof *w);
    af__sqlite_col_copy(st, 0, w->id, sizeof w->id);
    w->name = af__sqlite_col_dup(st, 1, &oom);
    w->description = af__sqlite_col_dup(st, 2, &oom);
    w->project_id = af__sqlite_col_dup(st, 3, &oom);
    af__sqlite_col_copy(st, 4, w->status, sizeof w->status);
    w->current_version = sqlite3_column_int(st, 5);
    w->created_at = col_i64(st, 6);
    w->updated_at = col_i64(st, 7);
    if (oom) {
        af_workflow_clear(w);
        return AF_ENOMEM;
    }
    return 0;
}

static int sqlite_workflow_create(af_store_t *s, const af_workflow_t *w, char *id_out,
                                  af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] =
        "INSERT INTO workflows (" WORKFLOW_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?6)";
    char id[AF_STORE_ID_MAX];
    const char *status = w->status[0] ? w->status : "active";
    if (w->name == NULL || !af__sqlite_word_in(status, WORKFLOW_STATUSES)) {
        return af_error_set(err, AF_EINVAL, "a workflow needs a name and status active|paused");
    }
    af__sqlite_id(w->id, id, sizeof id);
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, id);
    af__sqlite_bind_text(st, 2, w->name);
    af__sqlite_bind_text(st, 3, w->description);
    af__sqlite_bind_text(st, 4, w->project_id);
    af__sqlite_bind_text(st, 5, status);
    sqlite3_bind_int64(st, 6, af__sqlite_now(c));
    rc = af__sqlite_run(c, st, "create workflow", err);
    if (rc == 0 && id_out) {
        memcpy(id_out, id, sizeof id);
    }
    return rc;
}

static int sqlite_workflow_get(af_store_t *s, const char *id, af_workflow_t *out, af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] = "SELECT " WORKFLOW_COLS " FROM workflows WHERE id = ?1";
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, id);
    rc = af__sqlite_one(c, st, row_workflow, out, "get workflow", err);
    return rc == AF_ENOTFOUND ? af_error_set(err, rc, "no workflow %s", id) : rc;
}

static int sqlite_workflow_find(af_store_t *s, const char *name, af_workflow_t *out,
                                af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] = "SELECT " WORKFLOW_COLS " FROM workflows WHERE name = ?1"
                              " ORDER BY created_at DESC, id DESC LIMIT 1";
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, name);
    rc = af__sqlite_one(c, st, row_workflow, out, "find workflow", err);
    return rc == AF_ENOTFOUND ? af_error_set(err, rc, "no workflow named '%s'", name) : rc;
}

/* Cursors are "<created_at>:<id>" of the last row of the previous page. */
int af__sqlite_parse_cursor(const char *cursor, int64_t *at, char *id, size_t size,
                            af_error_t *err) {
    const char *colon = strchr(cursor, ':');
    char *end;
    long long v = strtoll(cursor, &end, 10);
    if (colon == NULL || end != colon || end == cursor || colon[1] == '\0' ||
        !af__sqlite_fits(colon + 1, size)) {
        return af_error_set(err, AF_EINVAL, "malformed cursor");
    }
    *at = v;
    snprintf(id, size, "%s", colon + 1);
    return 0;
}

static int sqlite_workflow_list(af_store_t *s, const char *project_id, const char *cursor,
                                int limit, af_workflow_t **out, size_t *n, char *next_cursor,
                                af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] = "SELECT " WORKFLOW_COLS " FROM workflows"
                              " WHERE (?1 IS NULL OR project_id = ?1)"
                              "   AND (?2 IS NULL OR (created_at, id) < (?2, ?3))"
                              " ORDER BY created_at DESC, id DESC LIMIT ?4";
    int64_t at = 0;
    char cid[AF_STORE_ID_MAX] = "";
    *out = NULL;
    *n = 0;
    if (limit <= 0) {
        limit = 50;
    }
    int paged = cursor && cursor[0];
    if (paged && af__sqlite_parse_cursor(cursor, &at, cid, sizeof cid, err) != 0) {
        return AF_EINVAL;
    }
    next_cursor[0] = '\0'; /* after reading cursor: they may be one buffer */
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, project_id);
    if (paged) {
        sqlite3_bind_int64(st, 2, at);
        af__sqlite_bind_text(st, 3, cid);
    }
    sqlite3_bind_int64(st, 4, (int64_t)limit + 1);
    af_workflow_t *arr;
    size_t got;
    rc = af__sqlite_rows(c, st, sizeof *arr, row_workflow, "list workflows", (void **)&arr, &got,
                         NULL, err);
    if (rc != 0) {
        af_workflows_free(arr, got);
        return rc;
    }
    if (got > (size_t)limit) {
        af_workflow_clear(&arr[limit]);
        got = (size_t)limit;
        snprintf(next_cursor, AF_STORE_CURSOR_MAX, "%lld:%s", (long long)arr[got - 1].created_at,
                 arr[got - 1].id);
    }
    *out = arr;
    *n = got;
    return 0;
}

static int sqlite_workflow_update(af_store_t *s, const af_workflow_t *w, af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] = "UPDATE workflows SET name = COALESCE(?2, name), description = ?3,"
                              " project_id = ?4, status = COALESCE(?5, status), updated_at = ?6"
                              " WHERE id = ?1";
    if (w->status[0] && !af__sqlite_word_in(w->status, WORKFLOW_STATUSES)) {
        return af_error_set(err, AF_EINVAL, "workflow status must be active or paused");
    }
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, w->id);
    af__sqlite_bind_text(st, 2, w->name);
    af__sqlite_bind_text(st, 3, w->description);
    af__sqlite_bind_text(st, 4, w->project_id);
    af__sqlite_bind_text(st, 5, w->status[0] ? w->status : NULL);
    sqlite3_bind_int64(st, 6, af__sqlite_now(c));
    rc = af__sqlite_run(c, st, "update workflow", err);
    if (rc == 0 && sqlite3_changes(c->db) == 0) {
        rc = af_error_set(err, AF_ENOTFOUND, "no workflow %s", w->id);
    }
    return rc;
}

int af__sqlite_exec_id(af__sqlite_t *c, const char *sql, const char *id, int *changes,
                       af_error_t *err) {
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, sql, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, id);
    rc = af__sqlite_run(c, st, sql, err);
    if (changes) {
        *changes = sqlite3_changes(c->db);
    }
    return rc;
}

int af__sqlite_delete_cascade(af__sqlite_t *c, const char *what, const char *id,
                              const char *const *sql, af_error_t *err) {
    int rc = af__sqlite_begin(c, err);
    if (rc != 0) {
        return rc;
    }
    int changes = 0;
    rc = af__sqlite_exec_id(c, sql[0], id, &changes, err);
    if (rc == 0 && changes == 0) {
        rc = af_error_set(err, AF_ENOTFOUND, "no %s %s", what, id);
    }
    for (size_t i = 1; rc == 0 && sql[i]; i++) {
        rc = af__sqlite_exec_id(c, sql[i], id, NULL, err);
    }
    return af__sqlite_end(c, rc, err);
}

static int sqlite_workflow_delete(af_store_t *s, const char *id, af_error_t *err) {
    static const char *const SQL[] = {
        "DELETE FROM workflows WHERE id = ?1",
        "DELETE FROM workflow_versions WHERE workflow_id = ?1",
        "DELETE FROM trigger_state WHERE trigger_id IN"
        " (SELECT id FROM triggers WHERE workflow_id = ?1)",
        "DELETE FROM triggers WHERE workflow_id = ?1",
        "DELETE FROM webhook_registrations WHERE workflow_id = ?1",
        NULL,
    };
    return af__sqlite_delete_cascade(CONN(s), "workflow", id, SQL, err);
}

static int sqlite_version_add(af_store_t *s, const char *workflow_id, const char *lua_source,
                              const json_t *definition, int *version, af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char INS[] =
        "INSERT INTO workflow_versions (workflow_id, version, lua_source, definition, created_at)"
        " SELECT ?1, COALESCE(MAX(version), 0) + 1, ?2, ?3, ?4 FROM workflow_versions"
        " WHERE workflow_id = ?1 RETURNING version";
    static const char UPD[] =
        "UPDATE workflows SET current_version = ?2, updated_at = ?3 WHERE id = ?1";
    int rc = af__sqlite_begin(c, err);
    if (rc != 0) {
        return rc;
    }
    int64_t now = af__sqlite_now(c);
    int v = 0;
    sqlite3_stmt *st;
    rc = af__sqlite_prep(c, INS, &st, err);
    if (rc == 0) {
        af__sqlite_bind_text(st, 1, workflow_id);
        af__sqlite_bind_text(st, 2, lua_source);
        rc = af__sqlite_bind_json(st, 3, definition);
        sqlite3_bind_int64(st, 4, now);
        int row = 0;
        if (rc == 0 && (rc = af__sqlite_first(c, st, &row, "add version", err)) == 0 && row) {
            v = sqlite3_column_int(st, 0);
            rc = af__sqlite_run(c, st, "add version", err);
        }
    }
    if (rc == 0 && (rc = af__sqlite_prep(c, UPD, &st, err)) == 0) {
        af__sqlite_bind_text(st, 1, workflow_id);
        sqlite3_bind_int(st, 2, v);
        sqlite3_bind_int64(st, 3, now);
        rc = af__sqlite_run(c, st, "set current version", err);
        if (rc == 0 && sqlite3_changes(c->db) == 0) {
            rc = af_error_set(err, AF_ENOTFOUND, "no workflow %s", workflow_id);
        }
    }
    rc = af__sqlite_end(c, rc, err);
    if (rc == 0 && version) {
        *version = v;
    }
    return rc;
}

static int sqlite_version_get(af_store_t *s, const char *workflow_id, int version,
                              af_workflow_version_t *out, af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] =
        "SELECT v.workflow_id, v.version, v.lua_source, v.definition, v.created_at"
        " FROM workflow_versions v WHERE v.workflow_id = ?1 AND v.version = CASE WHEN ?2 > 0"
        " THEN ?2 ELSE (SELECT current_version FROM workflows WHERE id = ?1) END";
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, workflow_id);
    sqlite3_bind_int(st, 2, version);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int oom = 0;
        memset(out, 0, sizeof *out);
        af__sqlite_col_copy(st, 0, out->workflow_id, sizeof out->workflow_id);
        out->version = sqlite3_column_int(st, 1);
        out->lua_source = af__sqlite_col_dup(st, 2, &oom);
        out->definition = af__sqlite_col_json(st, 3);
        out->created_at = col_i64(st, 4);
        rc = 0;
        if (oom) {
            af_workflow_version_clear(out);
            rc = af_error_set(err, AF_ENOMEM, "out of memory");
        }
    } else if (rc == SQLITE_DONE) {
        rc = af_error_set(err, AF_ENOTFOUND, "no version %d of workflow %s", version, workflow_id);
    } else {
        rc = af__sqlite_fail(c, sqlite3_extended_errcode(c->db), "get version", err);
    }
    sqlite3_reset(st);
    return rc;
}

/* One statement, so the workflow's existence and its versions come from the same snapshot: the
 * workflow joined with its versions, one row with a NULL version when it has none. */
static int row_version(sqlite3_stmt *st, void *record) {
    af_workflow_version_t *v = record;
    int oom = 0;
    if (sqlite3_column_type(st, 1) == SQLITE_NULL) {
        return 1; /* the workflow, without a version */
    }
    af__sqlite_col_copy(st, 0, v->workflow_id, sizeof v->workflow_id);
    v->version = sqlite3_column_int(st, 1);
    v->lua_source = af__sqlite_col_dup(st, 2, &oom);
    v->definition = af__sqlite_col_json(st, 3);
    v->created_at = col_i64(st, 4);
    if (oom) {
        af_workflow_version_clear(v);
        return AF_ENOMEM;
    }
    return 0;
}

static int sqlite_version_list(af_store_t *s, const char *workflow_id, af_workflow_version_t **out,
                               size_t *n, af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] =
        "SELECT w.id, v.version, v.lua_source, v.definition, v.created_at"
        " FROM workflows w LEFT JOIN workflow_versions v ON v.workflow_id = w.id"
        " WHERE w.id = ?1 ORDER BY v.version DESC";
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, workflow_id);
    size_t rows = 0;
    rc = af__sqlite_rows(c, st, sizeof **out, row_version, "list versions", (void **)out, n, &rows,
                         err);
    if (rc != 0) {
        af_workflow_versions_free(*out, *n);
        *out = NULL;
        *n = 0;
        return rc;
    }
    if (rows == 0) {
        return af_error_set(err, AF_ENOTFOUND, "no workflow %s", workflow_id);
    }
    return 0;
}

/* ---- executions ----------------------------------------------------------------------------- */

#define EXEC_COLS                                                                                  \
    "id, workflow_id, version, status, input, result, error, attempt, created_at, started_at,"     \
    " completed_at, wake_at, event_depth"

static int row_execution(sqlite3_stmt *st, void *record) {
    af_execution_t *e = record;
    int oom = 0;
    memset(e, 0, sizeof *e);
    af__sqlite_col_copy(st, 0, e->id, sizeof e->id);
    af__sqlite_col_copy(st, 1, e->workflow_id, sizeof e->workflow_id);
    e->version = sqlite3_column_int(st, 2);
    af__sqlite_col_copy(st, 3, e->status, sizeof e->status);
    e->input = af__sqlite_col_json(st, 4);
    e->result = af__sqlite_col_json(st, 5);
    e->error = af__sqlite_col_dup(st, 6, &oom);
    e->attempt = sqlite3_column_int(st, 7);
    e->created_at = col_i64(st, 8);
    e->started_at = col_i64(st, 9);
    e->completed_at = col_i64(st, 10);
    e->wake_at = col_i64(st, 11);
    e->event_depth = sqlite3_column_int(st, 12);
    if (oom) {
        af_execution_clear(e);
        return AF_ENOMEM;
    }
    return 0;
}

static int sqlite_execution_insert(af_store_t *s, af_execution_t *e, af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] =
        "INSERT INTO workflow_executions (id, workflow_id, version, status, input, attempt,"
        " created_at, started_at, event_depth) VALUES (?1, ?2, ?3, ?4, ?5, ?4 = 'running', ?6,"
        " IIF(?4 = 'running', ?6, NULL), ?7)";
    char id[AF_STORE_ID_MAX];
    const char *status = e->status[0] ? e->status : "queued";
    if (!af__sqlite_word_in(status, EXEC_STATUSES) || e->workflow_id[0] == '\0') {
        return af_error_set(err, AF_EINVAL, "an execution needs a workflow id and a valid status");
    }
    af__sqlite_id(e->id, id, sizeof id);
    int64_t now = e->created_at > 0 ? e->created_at : af__sqlite_now(c);
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, id);
    af__sqlite_bind_text(st, 2, e->workflow_id);
    sqlite3_bind_int(st, 3, e->version);
    af__sqlite_bind_text(st, 4, status);
    if ((rc = af__sqlite_bind_json(st, 5, e->input)) != 0) {
        return af_error_set(err, rc, "out of memory");
    }
    sqlite3_bind_int64(st, 6, now);
    sqlite3_bind_int(st, 7, e->event_depth);
    rc = af__sqlite_run(c, st, "create execution", err);
    if (rc == 0) {
        memcpy(e->id, id, sizeof id);
        if (status != e->status) {
            af_strlcpy(e->status, status, sizeof e->status);
        }
        e->created_at = now;
        e->started_at = strcmp(status, "running") == 0 ? now : 0;
    }
    return rc;
}

static int sqlite_execution_get(af_store_t *s, const char *id, af_execution_t *out,
                                af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] = "SELECT " EXEC_COLS " FROM workflow_executions WHERE id = ?1";
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, id);
    rc = af__sqlite_one(c, st, row_execution, out, "get execution", err);
    return rc == AF_ENOTFOUND ? af_error_set(err, rc, "no execution %s", id) : rc;
}

static int sqlite_execution_set_status(af_store_t *s, const char *id, const char *status,
                                       const json_t *result, const char *error, int64_t wake_at,
                                       int64_t at, af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] =
        "UPDATE workflow_executions SET status = ?2,"
        " result = COALESCE(?3, result), error = COALESCE(?4, error),"
        " started_at = CASE WHEN ?2 = 'running' THEN COALESCE(started_at, ?5) ELSE started_at END,"
        " attempt = attempt + (?2 = 'running'),"
        " completed_at = CASE WHEN ?2 IN ('succeeded', 'failed', 'cancelled') THEN ?5"
        "   ELSE completed_at END,"
        " wake_at = CASE WHEN ?2 = 'waiting' THEN ?6 ELSE NULL END"
        " WHERE id = ?1";
    if (!af__sqlite_word_in(status, EXEC_STATUSES)) {
        return af_error_set(err, AF_EINVAL, "unknown execution status '%s'", status);
    }
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, id);
    af__sqlite_bind_text(st, 2, status);
    if ((rc = af__sqlite_bind_json(st, 3, result)) != 0) {
        return af_error_set(err, rc, "out of memory");
    }
    af__sqlite_bind_text(st, 4, error);
    sqlite3_bind_int64(st, 5, at > 0 ? at : af__sqlite_now(c));
    sqlite3_bind_int64(st, 6, wake_at);
    rc = af__sqlite_run(c, st, "set execution status", err);
    if (rc == 0 && sqlite3_changes(c->db) == 0) {
        rc = af_error_set(err, AF_ENOTFOUND, "no execution %s", id);
    }
    return rc;
}

/* One statement per combination of filters, each with an index that serves both its equality
 * filters and the cursor order, so a page costs the same however deep it is: no cursor is the
 * range below (INT64_MAX, ""). ?1 workflow, ?2 status, ?3 ?4 cursor, ?5 limit. */
#define EXEC_LIST(where)                                                                           \
    "SELECT " EXEC_COLS " FROM workflow_executions WHERE " where " (created_at, id) < (?3, ?4)"    \
    " ORDER BY created_at DESC, id DESC LIMIT ?5"
static const char *const EXEC_LIST_SQL[4] = {
    EXEC_LIST(""),
    EXEC_LIST("workflow_id = ?1 AND"),
    EXEC_LIST("status = ?2 AND"),
    EXEC_LIST("workflow_id = ?1 AND status = ?2 AND"),
};
static const char *const EXEC_COUNT_SQL[4] = {
    "SELECT COUNT(*) FROM workflow_executions",
    "SELECT COUNT(*) FROM workflow_executions WHERE workflow_id = ?1",
    "SELECT COUNT(*) FROM workflow_executions WHERE status = ?2",
    "SELECT COUNT(*) FROM workflow_executions WHERE workflow_id = ?1 AND status = ?2",
};

static int exec_filter(const char *workflow_id, const char *status, af_error_t *err) {
    if (status && !af__sqlite_word_in(status, EXEC_STATUSES)) {
        return af_error_set(err, AF_EINVAL, "unknown execution status '%s'", status);
    }
    return (workflow_id ? 1 : 0) | (status ? 2 : 0);
}

static int sqlite_execution_list(af_store_t *s, const char *workflow_id, const char *status,
                                 const char *cursor, int limit, af_execution_t **out, size_t *n,
                                 char *next_cursor, af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    int64_t at = INT64_MAX;
    char cid[AF_STORE_ID_MAX] = "";
    int which = exec_filter(workflow_id, status, err);
    if (which < 0) {
        return which;
    }
    if (limit <= 0) {
        limit = 50;
    }
    if (cursor && cursor[0] && af__sqlite_parse_cursor(cursor, &at, cid, sizeof cid, err) != 0) {
        return AF_EINVAL;
    }
    next_cursor[0] = '\0'; /* after reading cursor: they may be one buffer */
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, EXEC_LIST_SQL[which], &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, workflow_id);
    af__sqlite_bind_text(st, 2, status);
    sqlite3_bind_int64(st, 3, at);
    af__sqlite_bind_text(st, 4, cid);
    sqlite3_bind_int64(st, 5, (int64_t)limit + 1); /* INT_MAX + 1 must not overflow */
    af_execution_t *arr;
    size_t got;
    rc = af__sqlite_rows(c, st, sizeof *arr, row_execution, "list executions", (void **)&arr, &got,
                         NULL, err);
    if (rc != 0) {
        af_executions_free(arr, got);
        return rc;
    }
    if (got > (size_t)limit) { /* one more than asked: there is a next page */
        af_execution_clear(&arr[limit]);
        got = (size_t)limit;
        snprintf(next_cursor, AF_STORE_CURSOR_MAX, "%lld:%s", (long long)arr[got - 1].created_at,
                 arr[got - 1].id);
    }
    *out = arr;
    *n = got;
    return 0;
}

static int sqlite_execution_count(af_store_t *s, const char *workflow_id, const char *status,
                                  int64_t *n, af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    int which = exec_filter(workflow_id, status, err);
    if (which < 0) {
        return which;
    }
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, EXEC_COUNT_SQL[which], &st, err);
    if (rc != 0) {
        return rc;
    }
    if (workflow_id) {
        af__sqlite_bind_text(st, 1, workflow_id);
    }
    if (status) {
        af__sqlite_bind_text(st, 2, status);
    }
    int row = 0;
    if ((rc = af__sqlite_first(c, st, &row, "count executions", err)) == 0 && row) {
        *n = sqlite3_column_int64(st, 0);
        rc = af__sqlite_run(c, st, "count executions", err);
    }
    return rc;
}

/* ---- checkpoints and logs ------------------------------------------------------------------- */

static int row_checkpoint(sqlite3_stmt *st, void *record) {
    af_checkpoint_t *cp = record;
    int oom = 0;
    af__sqlite_col_copy(st, 0, cp->execution_id, sizeof cp->execution_id);
    cp->step = af__sqlite_col_dup(st, 1, &oom);
    af__sqlite_col_copy(st, 2, cp->status, sizeof cp->status);
    cp->attempts = sqlite3_column_int(st, 3);
    cp->output = af__sqlite_col_json(st, 4);
    cp->error = af__sqlite_col_dup(st, 5, &oom);
    cp->started_at = col_i64(st, 6);
    cp->ended_at = col_i64(st, 7);
    cp->port = af__sqlite_col_dup(st, 8, &oom);
    cp->wake_at = col_i64(st, 9);
    if (oom) {
        free(cp->step);
        json_decref(cp->output);
        free(cp->error);
        free(cp->port);
        memset(cp, 0, sizeof *cp);
        return AF_ENOMEM;
    }
    return 0;
}

static int row_log(sqlite3_stmt *st, void *record) {
    af_log_entry_t *l = record;
    int oom = 0;
    l->seq = col_i64(st, 0);
    l->at = col_i64(st, 1);
    l->step = af__sqlite_col_dup(st, 2, &oom);
    af__sqlite_col_copy(st, 3, l->level, sizeof l->level);
    l->message = af__sqlite_col_dup(st, 4, &oom);
    if (oom) {
        free(l->step);
        free(l->message);
        memset(l, 0, sizeof *l);
        return AF_ENOMEM;
    }
    return 0;
}

static int sqlite_checkpoint_save(af_store_t *s, const af_checkpoint_t *cp, af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] =
        "INSERT OR REPLACE INTO step_checkpoints (execution_id, step, status, attempts, output,"
        " error, started_at, ended_at, port, wake_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
        " ?10)";
    if (cp->step == NULL || cp->execution_id[0] == '\0' || cp->status[0] == '\0') {
        return af_error_set(err, AF_EINVAL, "a checkpoint needs an execution, a step, a status");
    }
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, cp->execution_id);
    af__sqlite_bind_text(st, 2, cp->step);
    af__sqlite_bind_text(st, 3, cp->status);
    sqlite3_bind_int(st, 4, cp->attempts);
    if ((rc = af__sqlite_bind_json(st, 5, cp->output)) != 0) {
        return af_error_set(err, rc, "out of memory");
    }
    af__sqlite_bind_text(st, 6, cp->error);
    sqlite3_bind_int64(st, 7, cp->started_at);
    sqlite3_bind_int64(st, 8, cp->ended_at);
    af__sqlite_bind_text(st, 9, cp->port);
    sqlite3_bind_int64(st, 10, cp->wake_at);
    return af__sqlite_run(c, st, "save checkpoint", err);
}

static int sqlite_checkpoints_load(af_store_t *s, const char *execution_id, af_checkpoint_t **out,
                                   size_t *n, af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] =
        "SELECT execution_id, step, status, attempts, output, error, started_at, ended_at, port,"
        " wake_at FROM step_checkpoints WHERE execution_id = ?1 ORDER BY step";
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, execution_id);
    rc = af__sqlite_rows(c, st, sizeof **out, row_checkpoint, "load checkpoints", (void **)out, n,
                         NULL, err);
    if (rc != 0) {
        af_checkpoints_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

static int sqlite_log_append(af_store_t *s, const char *execution_id, int64_t at, const char *step,
                             const char *level, const char *message, int64_t *seq,
                             af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] =
        "INSERT INTO execution_logs (execution_id, seq, at, step, level, message)"
        " SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5 FROM execution_logs"
        " WHERE execution_id = ?1 RETURNING seq";
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, execution_id);
    sqlite3_bind_int64(st, 2, at > 0 ? at : af__sqlite_now(c));
    af__sqlite_bind_text(st, 3, step);
    af__sqlite_bind_text(st, 4, level ? level : "info");
    af__sqlite_bind_text(st, 5, message ? message : "");
    int64_t got = 0;
    int row = 0;
    if ((rc = af__sqlite_first(c, st, &row, "append log", err)) == 0 && row) {
        got = sqlite3_column_int64(st, 0);
        rc = af__sqlite_run(c, st, "append log", err);
    }
    if (rc == 0 && seq) {
        *seq = got;
    }
    return rc;
}

static int sqlite_logs_load(af_store_t *s, const char *execution_id, int64_t after_seq, int limit,
                            af_log_entry_t **out, size_t *n, af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char SQL[] = "SELECT seq, at, step, level, message FROM execution_logs"
                              " WHERE execution_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3";
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = af__sqlite_prep(c, SQL, &st, err);
    if (rc != 0) {
        return rc;
    }
    af__sqlite_bind_text(st, 1, execution_id);
    sqlite3_bind_int64(st, 2, after_seq);
    sqlite3_bind_int(st, 3, limit > 0 ? limit : 1000);
    rc = af__sqlite_rows(c, st, sizeof **out, row_log, "load logs", (void **)out, n, NULL, err);
    if (rc != 0) {
        af_log_entries_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

/* ---- retention ------------------------------------------------------------------------------ */

static int sqlite_compact(af_store_t *s, af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    if (c->depth > 0) {
        return af_error_set(err, AF_ESTATE, "compact inside a transaction");
    }
    int rc = af__sqlite_exec(c, "PRAGMA incremental_vacuum", err);
    if (rc == 0) {
        /* Readers on other connections may keep part of the log; it is truncated next time. */
        rc = af__sqlite_exec(c, "PRAGMA wal_checkpoint(TRUNCATE)", err);
    }
    return rc;
}

static int sqlite_prune(af_store_t *s, int64_t max_age_ms, int64_t max_count, int64_t *removed,
                        af_error_t *err) {
    af__sqlite_t *c = CONN(s);
    static const char BY_AGE[] =
        "INSERT OR IGNORE INTO af_prune (id) SELECT id FROM workflow_executions"
        " WHERE status IN ('succeeded', 'failed', 'cancelled') AND created_at < ?1";
    static const char BY_COUNT[] =
        "INSERT OR IGNORE INTO af_prune (id) SELECT id FROM workflow_executions"
        " WHERE status IN ('succeeded', 'failed', 'cancelled')"
        " ORDER BY created_at DESC, id DESC LIMIT -1 OFFSET ?1";
    static const char DEL_C[] =
        "DELETE FROM step_checkpoints WHERE execution_id IN (SELECT id FROM af_prune)";
    static const char DEL_L[] =
        "DELETE FROM execution_logs WHERE execution_id IN (SELECT id FROM af_prune)";
    static const char DEL_E[] =
        "DELETE FROM workflow_executions WHERE id IN (SELECT id FROM af_prune)";
    static const char CLEAR[] = "DELETE FROM af_prune";
    if (c->depth > 0) {
        return af_error_set(err, AF_ESTATE, "prune inside a transaction");
    }
    int rc = af__sqlite_begin(c, err);
    if (rc != 0) {
        return rc;
    }
    sqlite3_stmt *st;
    int64_t gone = 0;
    if (rc == 0 && max_age_ms > 0 && (rc = af__sqlite_prep(c, BY_AGE, &st, err)) == 0) {
        sqlite3_bind_int64(st, 1, af__sqlite_now(c) - max_age_ms);
        rc = af__sqlite_run(c, st, "prune by age", err);
    }
    if (rc == 0 && max_count >= 0 && (rc = af__sqlite_prep(c, BY_COUNT, &st, err)) == 0) {
        sqlite3_bind_int64(st, 1, max_count);
        rc = af__sqlite_run(c, st, "prune by count", err);
    }
    if (rc == 0) {
        rc = af__sqlite_exec_id(c, DEL_C, NULL, NULL, err);
    }
    if (rc == 0) {
        rc = af__sqlite_exec_id(c, DEL_L, NULL, NULL, err);
    }
    if (rc == 0 && (rc = af__sqlite_prep(c, DEL_E, &st, err)) == 0) {
        rc = af__sqlite_run(c, st, "prune executions", err);
        gone = sqlite3_changes(c->db);
    }
    if (rc == 0) {
        rc = af__sqlite_exec_id(c, CLEAR, NULL, NULL, err);
    }
    if (rc == 0 && max_age_ms > 0) {
        rc = af__sqlite_webhook_seen_prune(s, af__sqlite_now(c) - max_age_ms, NULL, err);
    }
    if ((rc = af__sqlite_end(c, rc, err)) != 0) {
        return rc;
    }
    if (removed) {
        *removed = gone;
    }
    return sqlite_compact(s, err);
}

static const af_store_vt_t SQLITE_VT = {
    .name = "sqlite",
    .close = sqlite_close,
    .info = sqlite_info,
    .queue = sqlite_queue,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .workflow_create = sqlite_workflow_create,
    .workflow_get = sqlite_workflow_get,
    .workflow_list = sqlite_workflow_list,
    .workflow_update = sqlite_workflow_update,
    .workflow_delete = sqlite_workflow_delete,
    .workflow_find = sqlite_workflow_find,
    .version_add = sqlite_version_add,
    .version_get = sqlite_version_get,
    .version_list = sqlite_version_list,
    .flat = sqlite_flat,
    .execution_insert = sqlite_execution_insert,
    .execution_get = sqlite_execution_get,
    .execution_set_status = sqlite_execution_set_status,
    .execution_list = sqlite_execution_list,
    .execution_count = sqlite_execution_count,
    .checkpoint_save = sqlite_checkpoint_save,
    .checkpoints_load = sqlite_checkpoints_load,
    .log_append = sqlite_log_append,
    .logs_load = sqlite_logs_load,
    .trigger_create = af__sqlite_trigger_create,
    .trigger_get = af__sqlite_trigger_get,
    .trigger_list = af__sqlite_trigger_list,
    .trigger_update = af__sqlite_trigger_update,
    .trigger_delete = af__sqlite_trigger_delete,
    .trigger_delete_source = af__sqlite_trigger_delete_source,
    .webhook_register = af__sqlite_webhook_register,
    .webhook_find = af__sqlite_webhook_find,
    .webhook_list = af__sqlite_webhook_list,
    .webhook_seen = af__sqlite_webhook_seen,
    .webhook_seen_prune = af__sqlite_webhook_seen_prune,
    .trigger_state_get = af__sqlite_trigger_state_get,
    .trigger_state_put = af__sqlite_trigger_state_put,
    .event_put = af__sqlite_event_put,
    .event_list = af__sqlite_event_list,
    .event_prune = af__sqlite_event_prune,
    .prune = sqlite_prune,
    .compact = sqlite_compact,
};
