/* test_store.c -- the storage interface over SQLite (store/store.c, store/store_sqlite*.c):
 * migrations, CRUD and cursors, execution + job atomicity, checkpoints, logs, triggers, webhook
 * registrations and seen message ids, retention, group commit. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_fixture.h"
#include "store/store.h"

/* ---- fixtures ------------------------------------------------------------------------------- */

typedef struct {
    char dir[64];
    char db[96];
    af_store_t *s;
} fx_t;

static af_store_t *open_store(fx_t *f, af_store_durability_t d) {
    return fixture_open(f->dir, d, 1);
}

static int setup(void **state) {
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/af_store_XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        return -1;
    }
    snprintf(f->db, sizeof f->db, "%s/agentflow.db", f->dir);
    fake_now = 1700000000000;
    f->s = open_store(f, AF_STORE_DURABLE_DEFAULT);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx_t *f = *state;
    af_store_close(f->s);
    fixture_rmdir(f->dir);
    free(f);
    return 0;
}

static int64_t raw_int(const char *db, const char *sql) {
    sqlite3 *h;
    sqlite3_stmt *st;
    int64_t v = -1;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

static void raw_exec(const char *db, const char *sql) {
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
}

static int64_t file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (int64_t)sb.st_size : 0;
}

static void make_workflow(af_store_t *s, const char *name, const char *project, char *id) {
    af_workflow_t w = {0};
    w.name = (char *)name;
    w.project_id = (char *)project;
    af_error_t err = {0};
    if (af_store_workflow_create(s, &w, id, &err) != 0) {
        fail_msg("create workflow: %s", err.msg);
    }
}

/* ---- migrations and pragmas ----------------------------------------------------------------- */

static void test_migrations(void **state) {
    fx_t *f = *state;
    af_store_info_t info;
    assert_int_equal(af_store_info(f->s, &info), 0);
    assert_string_equal(info.backend, "sqlite");
    assert_int_equal(info.schema_version, AF_STORE_SCHEMA_VERSION);
    assert_string_equal(info.journal_mode, "wal");
    assert_int_equal(info.auto_vacuum, 2); /* INCREMENTAL */
    assert_int_equal(info.synchronous, 1); /* NORMAL */
    assert_int_equal(info.schema_version, 3);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM schema_migrations"), 3);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"
                                    " AND name IN ('workflows', 'workflow_versions',"
                                    " 'workflow_executions', 'step_checkpoints', 'execution_logs',"
                                    " 'triggers', 'webhook_registrations', 'jobs', 'dead_letters',"
                                    " 'events', 'webhook_seen')"),
                     11);

    /* Re-opening is idempotent: nothing applied again, data kept, no commit at all. */
    char id[AF_STORE_ID_MAX];
    make_workflow(f->s, "keep", NULL, id);
    af_store_close(f->s);
    f->s = open_store(f, AF_STORE_DURABLE_DEFAULT);
    assert_int_equal(af_store_info(f->s, &info), 0);
    assert_int_equal(info.schema_version, AF_STORE_SCHEMA_VERSION);
    assert_int_equal(info.commits, 0);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM schema_migrations"), 3);
    af_workflow_t w;
    assert_int_equal(af_store_workflow_get(f->s, id, &w, NULL), 0);
    assert_string_equal(w.name, "keep");
    af_workflow_clear(&w);

    /* A store given a file path (not a directory) opens that file. */
    af_store_t *s2 = NULL;
    af_store_options_t o = {sizeof o, AF_STORE_DURABLE_DEFAULT, 0, fake_clock, NULL, 0};
    assert_int_equal(af_store_open(f->db, &o, &s2, NULL), 0);
    assert_int_equal(af_store_workflow_get(s2, id, &w, NULL), 0);
    af_workflow_clear(&w);
    af_store_close(s2);
}

static void test_newer_schema_refused(void **state) {
    fx_t *f = *state;
    af_store_close(f->s);
    f->s = NULL;
    raw_exec(f->db, "INSERT INTO schema_migrations (version, name, applied_at)"
                    " VALUES (99, 'from the future', 0)");
    af_store_t *s = NULL;
    af_error_t err = {0};
    assert_int_equal(af_store_open(f->dir, NULL, &s, &err), AF_ESTATE);
    assert_null(s);
    assert_non_null(strstr(err.msg, "schema version 99 is newer"));
    raw_exec(f->db, "DELETE FROM schema_migrations WHERE version = 99");
    f->s = open_store(f, AF_STORE_DURABLE_DEFAULT);
}

static void test_durability_modes(void **state) {
    fx_t *f = *state;
    af_store_t *strict = open_store(f, AF_STORE_DURABLE_STRICT);
    af_store_info_t info;
    assert_int_equal(af_store_info(strict, &info), 0);
    assert_int_equal(info.synchronous, 2); /* FULL */
    assert_string_equal(info.journal_mode, "wal");
    af_store_close(strict);
    assert_int_equal(af_store_info(f->s, &info), 0);
    assert_int_equal(info.synchronous, 1);
    /* Not built with PostgreSQL: a clear refusal, not a file named postgres:. */
    af_store_t *pg = NULL;
    af_error_t err = {0};
    assert_int_equal(af_store_open("postgres://localhost/x", NULL, &pg, &err), AF_EINVAL);
    assert_non_null(strstr(err.msg, "PostgreSQL"));
}

/* ---- workflows ------------------------------------------------------------------------------ */

static void test_workflow_crud(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    af_workflow_t w = {0};
    w.name = "orders";
    w.description = "handles orders";
    w.project_id = "p1";
    char id[AF_STORE_ID_MAX];
    assert_int_equal(af_store_workflow_create(f->s, &w, id, &err), 0);
    assert_int_equal(strlen(id), 36);

    af_workflow_t got;
    assert_int_equal(af_store_workflow_get(f->s, id, &got, &err), 0);
    assert_string_equal(got.name, "orders");
    assert_string_equal(got.description, "handles orders");
    assert_string_equal(got.project_id, "p1");
    assert_string_equal(got.status, "active");
    assert_int_equal(got.current_version, 0);
    assert_int_equal(got.created_at, fake_now);
    af_workflow_clear(&got);

    /* Same id again, bad status, no name. */
    snprintf(w.id, sizeof w.id, "%s", id);
    assert_int_equal(af_store_workflow_create(f->s, &w, NULL, &err), AF_EEXISTS);
    memset(w.id, 0, sizeof w.id);
    snprintf(w.status, sizeof w.status, "weird");
    assert_int_equal(af_store_workflow_create(f->s, &w, NULL, &err), AF_EINVAL);
    af_workflow_t noname = {0};
    assert_int_equal(af_store_workflow_create(f->s, &noname, NULL, &err), AF_EINVAL);

    /* Update. */
    fake_now += 1000;
    af_workflow_t up = {0};
    snprintf(up.id, sizeof up.id, "%s", id);
    up.name = "orders2";
    snprintf(up.status, sizeof up.status, "paused");
    assert_int_equal(af_store_workflow_update(f->s, &up, &err), 0);
    assert_int_equal(af_store_workflow_get(f->s, id, &got, &err), 0);
    assert_string_equal(got.name, "orders2");
    assert_string_equal(got.status, "paused");
    assert_null(got.description);
    assert_int_equal(got.updated_at, fake_now);
    af_workflow_clear(&got);
    snprintf(up.status, sizeof up.status, "nope");
    assert_int_equal(af_store_workflow_update(f->s, &up, &err), AF_EINVAL);
    snprintf(up.id, sizeof up.id, "missing");
    up.status[0] = '\0';
    assert_int_equal(af_store_workflow_update(f->s, &up, &err), AF_ENOTFOUND);

    /* Versions: numbered 1, 2; the last is current; 0 reads the current one. */
    json_t *def = json_pack("{s:s}", "entry", "main");
    int v = 0;
    assert_int_equal(af_store_version_add(f->s, id, "return 1", def, &v, &err), 0);
    assert_int_equal(v, 1);
    assert_int_equal(af_store_version_add(f->s, id, "return 2", NULL, &v, &err), 0);
    assert_int_equal(v, 2);
    assert_int_equal(af_store_version_add(f->s, "missing", "x", NULL, &v, &err), AF_ENOTFOUND);
    af_workflow_version_t ver;
    assert_int_equal(af_store_version_get(f->s, id, 0, &ver, &err), 0);
    assert_int_equal(ver.version, 2);
    assert_string_equal(ver.lua_source, "return 2");
    assert_null(ver.definition);
    af_workflow_version_clear(&ver);
    assert_int_equal(af_store_version_get(f->s, id, 1, &ver, &err), 0);
    assert_string_equal(ver.lua_source, "return 1");
    assert_true(json_equal(ver.definition, def));
    af_workflow_version_clear(&ver);
    assert_int_equal(af_store_version_get(f->s, id, 3, &ver, &err), AF_ENOTFOUND);
    assert_int_equal(af_store_workflow_get(f->s, id, &got, &err), 0);
    assert_int_equal(got.current_version, 2);
    af_workflow_clear(&got);
    json_decref(def);

    /* Delete takes the versions along. */
    assert_int_equal(af_store_workflow_delete(f->s, id, &err), 0);
    assert_int_equal(af_store_workflow_get(f->s, id, &got, &err), AF_ENOTFOUND);
    assert_int_equal(af_store_workflow_delete(f->s, id, &err), AF_ENOTFOUND);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM workflow_versions"), 0);
}

static void test_workflow_pagination(void **state) {
    fx_t *f = *state;
    enum { N = 25 };
    char ids[N][AF_STORE_ID_MAX];
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0) {
            fake_now += 10; /* some share a timestamp: the id breaks the tie */
        }
        make_workflow(f->s, "wf", i % 2 ? "odd" : "even", ids[i]);
    }
    int seen[N] = {0};
    char cursor[AF_STORE_CURSOR_MAX] = "";
    int pages = 0, total = 0;
    int64_t last_at = INT64_MAX;
    do {
        af_workflow_t *ws = NULL;
        size_t n = 0;
        char next[AF_STORE_CURSOR_MAX];
        af_error_t err = {0};
        assert_int_equal(af_store_workflow_list(f->s, NULL, cursor, 10, &ws, &n, next, &err), 0);
        pages++;
        for (size_t i = 0; i < n; i++) {
            assert_true(ws[i].created_at <= last_at);
            last_at = ws[i].created_at;
            int found = 0;
            for (int j = 0; j < N; j++) {
                if (strcmp(ids[j], ws[i].id) == 0) {
                    assert_int_equal(seen[j], 0);
                    seen[j] = found = 1;
                }
            }
            assert_true(found);
        }
        total += (int)n;
        af_workflows_free(ws, n);
        snprintf(cursor, sizeof cursor, "%s", next);
    } while (cursor[0]);
    assert_int_equal(pages, 3);
    assert_int_equal(total, N);

    /* Filtered by project. */
    af_workflow_t *ws = NULL;
    size_t n = 0;
    char next[AF_STORE_CURSOR_MAX];
    assert_int_equal(af_store_workflow_list(f->s, "odd", NULL, 100, &ws, &n, next, NULL), 0);
    assert_int_equal(n, 12);
    assert_string_equal(next, "");
    af_workflows_free(ws, n);
    assert_int_equal(af_store_workflow_list(f->s, NULL, "garbage", 10, &ws, &n, next, NULL),
                     AF_EINVAL);
}

/* ---- executions ----------------------------------------------------------------------------- */

static void test_execution_and_job_atomic(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    af_queue_t *q = af_store_queue(f->s);
    assert_non_null(q);
    assert_string_equal(af_queue_backend(q), "sqlite");

    af_execution_t e = {0};
    snprintf(e.workflow_id, sizeof e.workflow_id, "wf-1");
    e.version = 1;
    e.input = json_pack("{s:i}", "n", 7);
    char job_id[AF_QUEUE_ID_MAX];
    assert_int_equal(af_store_execution_create(f->s, &e, NULL, job_id, &err), 0);
    assert_string_equal(e.status, "queued");
    assert_int_equal(strlen(e.id), 36);
    json_decref(e.input);
    e.input = NULL;

    af_execution_t got;
    assert_int_equal(af_store_execution_get(f->s, e.id, &got, &err), 0);
    assert_string_equal(got.workflow_id, "wf-1");
    assert_int_equal(json_integer_value(json_object_get(got.input, "n")), 7);
    af_execution_clear(&got);

    af_job_t job;
    assert_int_equal(af_queue_dequeue(q, "executions", "w1", 1000, &job, &err), 0);
    assert_string_equal(job.id, job_id);
    assert_string_equal(json_string_value(json_object_get(job.payload, "execution_id")), e.id);
    af_job_clear(&job);

    /* The job step fails (its id is taken) inside the transaction: no execution either. */
    af_job_t dup = {0};
    snprintf(dup.id, sizeof dup.id, "%s", job_id);
    af_execution_t e2 = {0};
    snprintf(e2.id, sizeof e2.id, "exec-2");
    snprintf(e2.workflow_id, sizeof e2.workflow_id, "wf-1");
    assert_int_equal(af_store_execution_create(f->s, &e2, &dup, NULL, &err), AF_EEXISTS);
    assert_string_equal(e2.id, "exec-2");
    assert_int_equal(af_store_execution_get(f->s, "exec-2", &got, &err), AF_ENOTFOUND);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM workflow_executions"), 1);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM jobs"), 1);

    /* The execution step fails (bad status): no job. */
    af_execution_t bad = {0};
    snprintf(bad.workflow_id, sizeof bad.workflow_id, "wf-1");
    snprintf(bad.status, sizeof bad.status, "bogus");
    assert_int_equal(af_store_execution_create(f->s, &bad, NULL, NULL, &err), AF_EINVAL);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM jobs"), 1);

    /* Inside a caller's transaction that rolls back: neither. */
    assert_int_equal(af_store_begin(f->s, &err), 0);
    af_execution_t e3 = {0};
    snprintf(e3.workflow_id, sizeof e3.workflow_id, "wf-1");
    assert_int_equal(af_store_execution_create(f->s, &e3, NULL, NULL, &err), 0);
    af_store_rollback(f->s);
    assert_int_equal(af_store_execution_get(f->s, e3.id, &got, &err), AF_ENOTFOUND);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM workflow_executions"), 1);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM jobs"), 1);

    /* Status changes set their timestamps. */
    fake_now += 5;
    assert_int_equal(af_store_execution_set_status(f->s, e.id, "running", NULL, NULL, 0, 0, &err),
                     0);
    int64_t started = fake_now;
    fake_now += 5;
    assert_int_equal(
        af_store_execution_set_status(f->s, e.id, "waiting", NULL, NULL, fake_now + 60000, 0, &err),
        0);
    assert_int_equal(af_store_execution_get(f->s, e.id, &got, &err), 0);
    assert_int_equal(got.wake_at, fake_now + 60000);
    af_execution_clear(&got);
    fake_now += 5;
    assert_int_equal(af_store_execution_set_status(f->s, e.id, "running", NULL, NULL, 0, 0, &err),
                     0);
    fake_now += 5;
    json_t *result = json_pack("{s:b}", "ok", 1);
    assert_int_equal(
        af_store_execution_set_status(f->s, e.id, "succeeded", result, NULL, 0, 0, &err), 0);
    json_decref(result);
    assert_int_equal(af_store_execution_get(f->s, e.id, &got, &err), 0);
    assert_string_equal(got.status, "succeeded");
    assert_int_equal(got.started_at, started);
    assert_int_equal(got.completed_at, fake_now);
    assert_int_equal(got.wake_at, 0);
    assert_int_equal(got.attempt, 2);
    assert_true(json_is_true(json_object_get(got.result, "ok")));
    af_execution_clear(&got);
    assert_int_equal(af_store_execution_set_status(f->s, e.id, "nope", NULL, NULL, 0, 0, &err),
                     AF_EINVAL);
    assert_int_equal(
        af_store_execution_set_status(f->s, "missing", "failed", NULL, "x", 0, 0, &err),
        AF_ENOTFOUND);
}

static void test_checkpoints_and_logs(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    const char *steps[] = {"fetch", "classify", "notify"};
    for (int i = 0; i < 3; i++) {
        af_checkpoint_t c = {0};
        snprintf(c.execution_id, sizeof c.execution_id, "ex-1");
        c.step = (char *)steps[i];
        snprintf(c.status, sizeof c.status, "%s", i == 2 ? "failed" : "succeeded");
        c.attempts = i + 1;
        c.output = json_pack("{s:i, s:[s]}", "i", i, "tags", steps[i]);
        c.error = i == 2 ? "timeout" : NULL;
        c.started_at = 100 + i;
        c.ended_at = 200 + i;
        assert_int_equal(af_store_checkpoint_save(f->s, &c, &err), 0);
        json_decref(c.output);
    }
    /* A retried step overwrites its checkpoint. */
    af_checkpoint_t again = {0};
    snprintf(again.execution_id, sizeof again.execution_id, "ex-1");
    again.step = "notify";
    snprintf(again.status, sizeof again.status, "succeeded");
    again.attempts = 4;
    again.output = json_string("sent");
    assert_int_equal(af_store_checkpoint_save(f->s, &again, &err), 0);
    json_decref(again.output);

    af_checkpoint_t *cs = NULL;
    size_t n = 0;
    assert_int_equal(af_store_checkpoints_load(f->s, "ex-1", &cs, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(cs[0].step, "classify");
    assert_string_equal(cs[1].step, "fetch");
    assert_string_equal(cs[2].step, "notify");
    assert_int_equal(cs[1].attempts, 1);
    assert_int_equal(json_integer_value(json_object_get(cs[1].output, "i")), 0);
    assert_string_equal(json_string_value(json_array_get(json_object_get(cs[0].output, "tags"), 0)),
                        "classify");
    assert_int_equal(cs[1].started_at, 100);
    assert_int_equal(cs[1].ended_at, 200);
    assert_string_equal(cs[2].status, "succeeded");
    assert_int_equal(cs[2].attempts, 4);
    assert_string_equal(json_string_value(cs[2].output), "sent");
    assert_null(cs[2].error);
    af_checkpoints_free(cs, n);
    assert_int_equal(af_store_checkpoints_load(f->s, "none", &cs, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(cs);

    int64_t seq = 0;
    assert_int_equal(af_store_log_append(f->s, "ex-1", 0, "fetch", "info", "start", &seq, &err), 0);
    assert_int_equal(seq, 1);
    assert_int_equal(af_store_log_append(f->s, "ex-1", 5, NULL, "warn", "slow", &seq, &err), 0);
    assert_int_equal(seq, 2);
    assert_int_equal(af_store_log_append(f->s, "ex-2", 0, NULL, NULL, "other", &seq, &err), 0);
    assert_int_equal(seq, 1);
    assert_int_equal(af_store_log_append(f->s, "ex-1", 0, "notify", "error", "boom", &seq, &err),
                     0);
    assert_int_equal(seq, 3);
    af_log_entry_t *ls = NULL;
    assert_int_equal(af_store_logs_load(f->s, "ex-1", 1, 0, &ls, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ls[0].seq, 2);
    assert_int_equal(ls[0].at, 5);
    assert_null(ls[0].step);
    assert_string_equal(ls[0].level, "warn");
    assert_string_equal(ls[1].message, "boom");
    assert_string_equal(ls[1].step, "notify");
    assert_int_equal(ls[1].at, fake_now);
    af_log_entries_free(ls, n);
}

/* ---- retention ------------------------------------------------------------------------------ */

static void test_retention_bounds_file(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    enum { N = 3000 };
    char pad[2048];
    memset(pad, 'x', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    char keep_running[AF_STORE_ID_MAX] = "";
    assert_int_equal(af_store_begin(f->s, &err), 0);
    for (int i = 0; i < N; i++) {
        fake_now += 1;
        af_execution_t e = {0};
        snprintf(e.workflow_id, sizeof e.workflow_id, "wf");
        e.input = json_pack("{s:s}", "pad", pad);
        assert_int_equal(af_store_execution_create(f->s, &e, NULL, NULL, &err), 0);
        json_decref(e.input);
        af_checkpoint_t c = {0};
        snprintf(c.execution_id, sizeof c.execution_id, "%s", e.id);
        c.step = "s";
        snprintf(c.status, sizeof c.status, "succeeded");
        c.output = json_string(pad);
        assert_int_equal(af_store_checkpoint_save(f->s, &c, &err), 0);
        json_decref(c.output);
        assert_int_equal(af_store_log_append(f->s, e.id, 0, "s", "info", pad, NULL, &err), 0);
        if (i == 5) {
            snprintf(keep_running, sizeof keep_running, "%s", e.id); /* old but unfinished */
        } else {
            assert_int_equal(
                af_store_execution_set_status(f->s, e.id, "succeeded", NULL, NULL, 0, 0, &err), 0);
        }
    }
    assert_int_equal(af_store_commit(f->s, &err), 0);
    raw_exec(f->db, "DELETE FROM jobs"); /* the queue is not what we measure here */
    assert_int_equal(af_store_compact(f->s, &err), 0);
    int64_t before = file_size(f->db);
    assert_true(before > (int64_t)N * 3 * 2048);

    /* Age bound: created_at runs from start+1 to start+N = now; those before now-1000 go, except
     * the unfinished one. */
    int64_t removed = 0;
    assert_int_equal(af_store_prune(f->s, 1000, -1, &removed, &err), 0);
    assert_int_equal(removed, N - 1002);
    /* Count bound: keep the newest 50 finished. */
    assert_int_equal(af_store_prune(f->s, 0, 50, &removed, &err), 0);
    assert_int_equal(removed, 1001 - 50);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM workflow_executions"), 51);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM step_checkpoints"), 51);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM execution_logs"), 51);
    af_execution_t got;
    assert_int_equal(af_store_execution_get(f->s, keep_running, &got, &err), 0);
    af_execution_clear(&got);

    int64_t after = file_size(f->db);
    char wal[128];
    snprintf(wal, sizeof wal, "%s-wal", f->db);
    af_store_info_t info;
    af_store_info(f->s, &info);
    print_message("db %lld -> %lld bytes, wal %lld, free pages %lld\n", (long long)before,
                  (long long)after, (long long)file_size(wal), (long long)info.freelist_count);
    assert_true(after < before / 10);
    assert_true(after < 51 * 3 * 8192 + 256 * 1024);
    assert_true(file_size(wal) == 0);
    assert_int_equal(info.freelist_count, 0);
    assert_int_equal(af_store_begin(f->s, &err), 0);
    assert_int_equal(af_store_prune(f->s, 0, 0, NULL, &err), AF_ESTATE);
    af_store_rollback(f->s);
}

/* ---- migration 2 ---------------------------------------------------------------------------- */

/* A database as a version-1 build left it: the fresh one with migrations 3 and 2 undone by hand,
 * then rows written the way version 1 wrote them. Re-opening applies both and keeps them. */
static void test_migration_from_v1(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    char wf[AF_STORE_ID_MAX];
    make_workflow(f->s, "old", NULL, wf);
    af_store_close(f->s);
    f->s = NULL;
    raw_exec(f->db,
             "DROP TABLE trigger_state;"
             "ALTER TABLE events DROP COLUMN meta;"
             "DROP INDEX events_created;"
             "CREATE INDEX events_created ON events(created_at);"
             "ALTER TABLE workflow_executions DROP COLUMN event_depth;"
             "DELETE FROM schema_migrations WHERE version = 3;"
             "DROP TABLE webhook_seen;"
             "DROP INDEX webhooks_trigger;"
             "DROP INDEX workflows_name;"
             "DROP INDEX executions_created;"
             "DROP INDEX executions_workflow_created;"
             "DROP INDEX executions_status_created;"
             "DROP INDEX executions_workflow_status;"
             "CREATE INDEX executions_workflow ON workflow_executions(workflow_id, created_at);"
             "CREATE INDEX executions_status ON workflow_executions(status, created_at);"
             "ALTER TABLE step_checkpoints DROP COLUMN port;"
             "ALTER TABLE step_checkpoints DROP COLUMN wake_at;"
             "ALTER TABLE triggers DROP COLUMN source;"
             "ALTER TABLE triggers DROP COLUMN position;"
             "ALTER TABLE webhook_registrations DROP COLUMN trigger_id;"
             "ALTER TABLE webhook_registrations DROP COLUMN methods;"
             "DELETE FROM schema_migrations WHERE version = 2;");
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM pragma_table_info('step_checkpoints')"
                                    " WHERE name IN ('port', 'wake_at')"),
                     0);
    char sql[1024];
    snprintf(
        sql, sizeof sql,
        "INSERT INTO workflow_executions (id, workflow_id, status, created_at)"
        " VALUES ('ex-old', '%s', 'succeeded', 5);"
        "INSERT INTO step_checkpoints (execution_id, step, status, attempts, output,"
        " started_at, ended_at) VALUES ('ex-old', 'fetch', 'succeeded', 1, '{\"n\":1}', 10, 20);"
        "INSERT INTO triggers (id, workflow_id, type, config, is_active, created_at, updated_at)"
        " VALUES ('t-old', '%s', 'schedule', '{\"cron\":\"* * * * *\"}', 1, 7, 7);"
        "INSERT INTO webhook_registrations (id, workflow_id, path, config, created_at)"
        " VALUES ('h-old', '%s', 'old/hook', NULL, 8);",
        wf, wf, wf);
    raw_exec(f->db, sql);

    f->s = open_store(f, AF_STORE_DURABLE_DEFAULT);
    af_store_info_t info;
    assert_int_equal(af_store_info(f->s, &info), 0);
    assert_int_equal(info.schema_version, 3);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM schema_migrations"), 3);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index'"
                                    " AND name IN ('executions_workflow', 'executions_status')"),
                     0);
    af_execution_t old = {0};
    assert_int_equal(af_store_execution_get(f->s, "ex-old", &old, &err), 0);
    assert_int_equal(old.event_depth, 0);
    af_execution_clear(&old);
    af_trigger_state_t ts = {.last_fire_at = 60000};
    assert_int_equal(af_store_trigger_state_put(f->s, "t-old", &ts, &err), 0);

    af_checkpoint_t *cs = NULL;
    size_t n = 0;
    assert_int_equal(af_store_checkpoints_load(f->s, "ex-old", &cs, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(cs[0].step, "fetch");
    assert_int_equal(json_integer_value(json_object_get(cs[0].output, "n")), 1);
    assert_null(cs[0].port);
    assert_int_equal(cs[0].wake_at, 0);
    assert_int_equal(cs[0].ended_at, 20);
    af_checkpoints_free(cs, n);

    af_execution_t *es = NULL;
    char next[AF_STORE_CURSOR_MAX];
    assert_int_equal(af_store_execution_list(f->s, wf, "succeeded", NULL, 0, &es, &n, next, &err),
                     0);
    assert_int_equal(n, 1);
    assert_string_equal(es[0].id, "ex-old");
    af_executions_free(es, n);

    af_trigger_rec_t t;
    assert_int_equal(af_store_trigger_get(f->s, "t-old", &t, &err), 0);
    assert_string_equal(t.source, "api"); /* the column's default for rows made before it */
    assert_int_equal(t.position, -1);
    assert_string_equal(t.type, "schedule");
    assert_string_equal(json_string_value(json_object_get(t.config, "cron")), "* * * * *");
    af_trigger_rec_clear(&t);

    af_webhook_rec_t h;
    assert_int_equal(af_store_webhook_find(f->s, "old/hook", &h, &err), 0);
    assert_string_equal(h.id, "h-old");
    assert_string_equal(h.workflow_id, wf);
    assert_string_equal(h.trigger_id, "");
    assert_null(h.methods);
    assert_int_equal(h.created_at, 8);
    af_webhook_rec_clear(&h);

    af_workflow_t w;
    assert_int_equal(af_store_workflow_find(f->s, "old", &w, &err), 0);
    assert_string_equal(w.id, wf);
    af_workflow_clear(&w);
    int dup = -1;
    assert_int_equal(af_store_webhook_seen(f->s, "old/hook", "m1", "ex-old", &dup, NULL, &err), 0);
    assert_int_equal(dup, 0);
}

/* ---- workflows: find, versions -------------------------------------------------------------- */

static void test_workflow_find_and_versions(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    char first[AF_STORE_ID_MAX], second[AF_STORE_ID_MAX], other[AF_STORE_ID_MAX];
    make_workflow(f->s, "support", NULL, first);
    fake_now += 10;
    make_workflow(f->s, "support", "p", second);
    make_workflow(f->s, "supporting", NULL, other);
    af_workflow_t w;
    assert_int_equal(af_store_workflow_find(f->s, "support", &w, &err), 0);
    assert_string_equal(w.id, second); /* the newest of the two */
    assert_string_equal(w.project_id, "p");
    af_workflow_clear(&w);
    assert_int_equal(af_store_workflow_find(f->s, "supp", &w, &err), AF_ENOTFOUND);
    assert_non_null(strstr(err.msg, "supp"));
    assert_int_equal(af_store_workflow_delete(f->s, second, &err), 0);
    assert_int_equal(af_store_workflow_find(f->s, "support", &w, &err), 0);
    assert_string_equal(w.id, first);
    af_workflow_clear(&w);

    /* Versions, newest first, sources included; none yet is an empty list, not an error. */
    af_workflow_version_t *vs = NULL;
    size_t n = 99;
    assert_int_equal(af_store_version_list(f->s, first, &vs, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(vs);
    json_t *def = json_pack("{s:i}", "v", 2);
    for (int i = 1; i <= 3; i++) {
        char src[32];
        snprintf(src, sizeof src, "return %d", i);
        fake_now += 1;
        assert_int_equal(af_store_version_add(f->s, first, src, i == 2 ? def : NULL, NULL, &err),
                         0);
    }
    assert_int_equal(af_store_version_add(f->s, other, "other", NULL, NULL, &err), 0);
    assert_int_equal(af_store_version_list(f->s, first, &vs, &n, &err), 0);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        char src[32];
        snprintf(src, sizeof src, "return %d", 3 - i);
        assert_int_equal(vs[i].version, 3 - i);
        assert_string_equal(vs[i].workflow_id, first);
        assert_string_equal(vs[i].lua_source, src);
        assert_int_equal(vs[i].created_at, fake_now - i);
    }
    assert_true(json_equal(vs[1].definition, def));
    assert_null(vs[0].definition);
    af_workflow_versions_free(vs, n);
    json_decref(def);
    assert_int_equal(af_store_version_list(f->s, "missing", &vs, &n, &err), AF_ENOTFOUND);
    assert_null(vs);
    assert_int_equal(n, 0);
}

/* ---- executions: list and count ------------------------------------------------------------- */

enum { NEXEC = 30 };
static const char *const EXEC_ST[] = {"queued", "running", "succeeded"};

/* Pages through af_store_execution_list with the filters, `limit` a page, checking each row
 * matches, comes in order (created_at, id descending) and comes once. Returns the rows seen;
 * *pages gets the number of calls. */
static int list_pages(af_store_t *s, const char *wf, const char *status, int limit, int *pages) {
    char cursor[AF_STORE_CURSOR_MAX] = "";
    char last_id[AF_STORE_ID_MAX] = "";
    int64_t last_at = INT64_MAX;
    int total = 0;
    *pages = 0;
    do {
        af_execution_t *es = NULL;
        size_t n = 0;
        char next[AF_STORE_CURSOR_MAX] = "junk";
        af_error_t err = {0};
        if (af_store_execution_list(s, wf, status, cursor, limit, &es, &n, next, &err) != 0) {
            fail_msg("list: %s", err.msg);
        }
        (*pages)++;
        assert_true(n > 0 || *pages == 1);
        assert_true(n <= (size_t)(limit > 0 ? limit : 50));
        for (size_t i = 0; i < n; i++) {
            if (wf && wf[0]) {
                assert_string_equal(es[i].workflow_id, wf);
            }
            if (status && status[0]) {
                assert_string_equal(es[i].status, status);
            }
            assert_true(es[i].created_at < last_at ||
                        (es[i].created_at == last_at && strcmp(es[i].id, last_id) < 0));
            last_at = es[i].created_at;
            snprintf(last_id, sizeof last_id, "%s", es[i].id);
            total++;
        }
        af_executions_free(es, n);
        snprintf(cursor, sizeof cursor, "%s", next);
    } while (cursor[0]);
    return total;
}

static void test_execution_list(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    char first[AF_STORE_ID_MAX] = "";
    for (int i = 0; i < NEXEC; i++) {
        if (i % 4 == 0) {
            fake_now += 10; /* four at a time share a timestamp: the id orders them */
        }
        af_execution_t e = {0};
        snprintf(e.workflow_id, sizeof e.workflow_id, "%s", i % 2 ? "wf-a" : "wf-b");
        snprintf(e.status, sizeof e.status, "%s", EXEC_ST[i % 3]);
        e.input = json_pack("{s:i}", "i", i);
        assert_int_equal(af_store_execution_create(f->s, &e, NULL, NULL, &err), 0);
        json_decref(e.input);
        if (i == 0) {
            snprintf(first, sizeof first, "%s", e.id);
        }
    }
    int pages = 0;
    assert_int_equal(list_pages(f->s, NULL, NULL, 7, &pages), NEXEC);
    assert_int_equal(pages, 5); /* 7 7 7 7 2 */
    /* "" is any; limit 0 is 50 a page. */
    assert_int_equal(list_pages(f->s, "", "", 0, &pages), NEXEC);
    assert_int_equal(pages, 1);
    assert_int_equal(list_pages(f->s, "wf-a", NULL, 5, &pages), NEXEC / 2);
    assert_int_equal(pages, 3); /* exactly three full pages: no empty fourth */
    assert_int_equal(list_pages(f->s, NULL, "queued", 3, &pages), NEXEC / 3);
    assert_int_equal(pages, 4);
    /* odd i with i % 3 == 0: 3 9 15 21 27 */
    assert_int_equal(list_pages(f->s, "wf-a", "queued", 2, &pages), 5);
    assert_int_equal(pages, 3);
    assert_int_equal(list_pages(f->s, "wf-none", NULL, 2, &pages), 0);
    assert_int_equal(pages, 1);
    assert_int_equal(list_pages(f->s, NULL, "cancelled", 2, &pages), 0);

    /* Rows are whole records; the oldest comes last. */
    af_execution_t *es = NULL;
    size_t n = 0;
    char next[AF_STORE_CURSOR_MAX];
    assert_int_equal(
        af_store_execution_list(f->s, "wf-b", "queued", NULL, 100, &es, &n, next, &err), 0);
    assert_int_equal(n, 5); /* even i with i % 3 == 0: 0 6 12 18 24 */
    assert_string_equal(next, "");
    assert_string_equal(es[n - 1].id, first);
    assert_int_equal(json_integer_value(json_object_get(es[n - 1].input, "i")), 0);
    assert_int_equal(json_integer_value(json_object_get(es[0].input, "i")), 24);
    af_executions_free(es, n);

    /* The cursor may be read from the buffer the next one is written to; any limit works. */
    char cur[AF_STORE_CURSOR_MAX] = "";
    int total = 0;
    do {
        assert_int_equal(af_store_execution_list(f->s, NULL, NULL, cur, 8, &es, &n, cur, &err), 0);
        total += (int)n;
        af_executions_free(es, n);
    } while (cur[0]);
    assert_int_equal(total, NEXEC);
    assert_int_equal(af_store_execution_list(f->s, NULL, NULL, NULL, INT_MAX, &es, &n, next, &err),
                     0);
    assert_int_equal(n, NEXEC);
    assert_string_equal(next, "");
    af_executions_free(es, n);

    /* Malformed cursors and unknown statuses are refused. */
    const char *bad[] = {"garbage", "12", ":abc", "12:", "x1:abc", "12x:abc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        es = (af_execution_t *)1;
        assert_int_equal(af_store_execution_list(f->s, NULL, NULL, bad[i], 5, &es, &n, next, &err),
                         AF_EINVAL);
        assert_null(es);
    }
    assert_int_equal(af_store_execution_list(f->s, NULL, "nope", NULL, 5, &es, &n, next, &err),
                     AF_EINVAL);
    assert_non_null(strstr(err.msg, "nope"));

    /* Counts, and a status change moves an execution from one filter to another. */
    int64_t c = -1;
    assert_int_equal(af_store_execution_count(f->s, NULL, NULL, &c, &err), 0);
    assert_int_equal(c, NEXEC);
    assert_int_equal(af_store_execution_count(f->s, "wf-a", NULL, &c, &err), 0);
    assert_int_equal(c, 15);
    assert_int_equal(af_store_execution_count(f->s, NULL, "queued", &c, &err), 0);
    assert_int_equal(c, 10);
    assert_int_equal(af_store_execution_count(f->s, "wf-a", "queued", &c, &err), 0);
    assert_int_equal(c, 5);
    assert_int_equal(af_store_execution_count(f->s, "", "", &c, &err), 0);
    assert_int_equal(c, NEXEC);
    assert_int_equal(af_store_execution_count(f->s, "wf-none", NULL, &c, &err), 0);
    assert_int_equal(c, 0);
    assert_int_equal(af_store_execution_count(f->s, NULL, "nope", &c, &err), AF_EINVAL);
    assert_int_equal(
        af_store_execution_set_status(f->s, first, "succeeded", NULL, NULL, 0, 0, &err), 0);
    assert_int_equal(af_store_execution_count(f->s, "wf-b", "queued", &c, &err), 0);
    assert_int_equal(c, 4);
    assert_int_equal(list_pages(f->s, "wf-b", "succeeded", 100, &pages), 6);
}

/* ---- checkpoints: port and wake_at ---------------------------------------------------------- */

static void test_checkpoint_port_wake(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    af_checkpoint_t c = {0};
    snprintf(c.execution_id, sizeof c.execution_id, "ex-p");
    c.step = "route";
    snprintf(c.status, sizeof c.status, "succeeded");
    c.port = "true";
    assert_int_equal(af_store_checkpoint_save(f->s, &c, &err), 0);
    c.step = "pause";
    snprintf(c.status, sizeof c.status, "waiting");
    c.port = NULL;
    c.wake_at = fake_now + 3600000;
    assert_int_equal(af_store_checkpoint_save(f->s, &c, &err), 0);
    c.step = "unused";
    snprintf(c.status, sizeof c.status, "skipped");
    c.wake_at = 0;
    assert_int_equal(af_store_checkpoint_save(f->s, &c, &err), 0);

    af_checkpoint_t *cs = NULL;
    size_t n = 0;
    assert_int_equal(af_store_checkpoints_load(f->s, "ex-p", &cs, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(cs[0].step, "pause");
    assert_string_equal(cs[0].status, "waiting");
    assert_null(cs[0].port);
    assert_int_equal(cs[0].wake_at, fake_now + 3600000);
    assert_string_equal(cs[1].step, "route");
    assert_string_equal(cs[1].port, "true");
    assert_int_equal(cs[1].wake_at, 0);
    assert_string_equal(cs[2].status, "skipped");
    af_checkpoints_free(cs, n);

    /* The wait ended: the same step saved again replaces port and wake_at. */
    c.step = "pause";
    snprintf(c.status, sizeof c.status, "succeeded");
    c.port = "default";
    c.wake_at = 0;
    assert_int_equal(af_store_checkpoint_save(f->s, &c, &err), 0);
    assert_int_equal(af_store_checkpoints_load(f->s, "ex-p", &cs, &n, &err), 0);
    assert_string_equal(cs[0].port, "default");
    assert_int_equal(cs[0].wake_at, 0);
    assert_string_equal(cs[0].status, "succeeded");
    af_checkpoints_free(cs, n);
}

/* ---- triggers ------------------------------------------------------------------------------- */

static void make_trigger(af_store_t *s, const char *wf, const char *type, const char *source,
                         int position, json_t *config, char *id) {
    af_trigger_rec_t t = {0};
    snprintf(t.workflow_id, sizeof t.workflow_id, "%s", wf);
    snprintf(t.type, sizeof t.type, "%s", type);
    snprintf(t.source, sizeof t.source, "%s", source);
    t.position = position;
    t.is_active = 1;
    t.config = config;
    af_error_t err = {0};
    if (af_store_trigger_create(s, &t, id, &err) != 0) {
        fail_msg("create trigger: %s", err.msg);
    }
    json_decref(config);
}

static void make_webhook(af_store_t *s, const char *wf, const char *trigger, const char *path,
                         char *id) {
    af_webhook_rec_t w = {0};
    snprintf(w.workflow_id, sizeof w.workflow_id, "%s", wf);
    snprintf(w.trigger_id, sizeof w.trigger_id, "%s", trigger ? trigger : "");
    w.path = (char *)path;
    af_error_t err = {0};
    if (af_store_webhook_register(s, &w, id, &err) != 0) {
        fail_msg("register %s: %s", path, err.msg);
    }
}

static void test_triggers(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    char wf[AF_STORE_ID_MAX], other[AF_STORE_ID_MAX];
    make_workflow(f->s, "triggered", NULL, wf);
    make_workflow(f->s, "other", NULL, other);
    char s0[AF_STORE_ID_MAX], s1[AF_STORE_ID_MAX], a0[AF_STORE_ID_MAX], o0[AF_STORE_ID_MAX];
    int64_t t0 = fake_now;
    make_trigger(f->s, wf, "webhook", "script", 0, json_pack("{s:s}", "path", "in/hook"), s0);
    assert_int_equal(strlen(s0), 36);
    fake_now += 1;
    make_trigger(f->s, wf, "schedule", "script", 1, json_pack("{s:s}", "cron", "0 * * * *"), s1);
    fake_now += 1;
    make_trigger(f->s, wf, "manual", "", 5, NULL, a0); /* api: the position is not kept */
    fake_now += 1;
    make_trigger(f->s, other, "event", "api", -1, json_pack("{s:s}", "type", "x.*"), o0);

    af_trigger_rec_t t = {0};
    snprintf(t.workflow_id, sizeof t.workflow_id, "%s", wf);
    snprintf(t.type, sizeof t.type, "cron");
    assert_int_equal(af_store_trigger_create(f->s, &t, NULL, &err), AF_EINVAL);
    assert_non_null(strstr(err.msg, "cron"));
    snprintf(t.type, sizeof t.type, "poll");
    snprintf(t.source, sizeof t.source, "user");
    assert_int_equal(af_store_trigger_create(f->s, &t, NULL, &err), AF_EINVAL);
    t.source[0] = '\0';
    snprintf(t.workflow_id, sizeof t.workflow_id, "missing");
    assert_int_equal(af_store_trigger_create(f->s, &t, NULL, &err), AF_ENOTFOUND);
    snprintf(t.workflow_id, sizeof t.workflow_id, "%s", wf);
    snprintf(t.id, sizeof t.id, "%s", s0);
    assert_int_equal(af_store_trigger_create(f->s, &t, NULL, &err), AF_EEXISTS);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM triggers"), 4);

    af_trigger_rec_t got;
    assert_int_equal(af_store_trigger_get(f->s, s1, &got, &err), 0);
    assert_string_equal(got.id, s1);
    assert_string_equal(got.workflow_id, wf);
    assert_string_equal(got.type, "schedule");
    assert_string_equal(got.source, "script");
    assert_int_equal(got.position, 1);
    assert_int_equal(got.is_active, 1);
    assert_string_equal(json_string_value(json_object_get(got.config, "cron")), "0 * * * *");
    assert_int_equal(got.created_at, t0 + 1);
    assert_int_equal(got.updated_at, t0 + 1);
    af_trigger_rec_clear(&got);
    assert_int_equal(af_store_trigger_get(f->s, a0, &got, &err), 0);
    assert_string_equal(got.source, "api");
    assert_int_equal(got.position, -1);
    assert_null(got.config);
    af_trigger_rec_clear(&got);
    assert_int_equal(af_store_trigger_get(f->s, "missing", &got, &err), AF_ENOTFOUND);

    af_trigger_rec_t *ts = NULL;
    size_t n = 0;
    assert_int_equal(af_store_trigger_list(f->s, wf, &ts, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(ts[0].id, s0);
    assert_string_equal(ts[1].id, s1);
    assert_string_equal(ts[2].id, a0);
    assert_int_equal(ts[0].position, 0);
    af_trigger_recs_free(ts, n);
    assert_int_equal(af_store_trigger_list(f->s, NULL, &ts, &n, &err), 0);
    assert_int_equal(n, 4);
    assert_string_equal(ts[3].id, o0);
    af_trigger_recs_free(ts, n);
    assert_int_equal(af_store_trigger_list(f->s, "none", &ts, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(ts);

    /* Update: config and is_active, updated_at; the trigger's registration follows the config. */
    char h0[AF_STORE_ID_MAX], ha[AF_STORE_ID_MAX], ho[AF_STORE_ID_MAX];
    make_webhook(f->s, wf, s0, "in/hook", h0);
    make_webhook(f->s, wf, a0, "api/hook", ha);
    make_webhook(f->s, other, o0, "other/hook", ho);
    fake_now += 100;
    af_trigger_rec_t up = {0};
    snprintf(up.id, sizeof up.id, "%s", s0);
    up.config = json_pack("{s:s, s:s}", "path", "in/hook", "secret", "s2");
    up.is_active = 0;
    assert_int_equal(af_store_trigger_update(f->s, &up, &err), 0);
    assert_int_equal(af_store_trigger_get(f->s, s0, &got, &err), 0);
    assert_int_equal(got.is_active, 0);
    assert_true(json_equal(got.config, up.config));
    assert_int_equal(got.updated_at, fake_now);
    assert_int_equal(got.created_at, t0);
    assert_string_equal(got.source, "script"); /* not touched */
    af_trigger_rec_clear(&got);
    af_webhook_rec_t h;
    assert_int_equal(af_store_webhook_find(f->s, "in/hook", &h, &err), 0);
    assert_true(json_equal(h.config, up.config));
    assert_string_equal(h.id, h0);
    af_webhook_rec_clear(&h);
    json_decref(up.config);
    snprintf(up.id, sizeof up.id, "missing");
    up.config = NULL;
    assert_int_equal(af_store_trigger_update(f->s, &up, &err), AF_ENOTFOUND);

    /* A new version replaces the script's triggers; the API's stay, with their registrations. */
    assert_int_equal(af_store_trigger_delete_source(f->s, wf, "script", &err), 0);
    assert_int_equal(af_store_trigger_list(f->s, wf, &ts, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ts[0].id, a0);
    af_trigger_recs_free(ts, n);
    assert_int_equal(af_store_webhook_find(f->s, "in/hook", &h, &err), AF_ENOTFOUND);
    assert_int_equal(af_store_webhook_find(f->s, "api/hook", &h, &err), 0);
    af_webhook_rec_clear(&h);
    assert_int_equal(af_store_trigger_delete_source(f->s, wf, "script", &err), 0); /* none left */
    assert_int_equal(af_store_trigger_delete_source(f->s, wf, "scripts", &err), AF_EINVAL);
    assert_int_equal(af_store_trigger_get(f->s, o0, &got, &err), 0); /* other workflow: kept */
    af_trigger_rec_clear(&got);

    /* Delete one: its registration goes with it. */
    assert_int_equal(af_store_trigger_delete(f->s, a0, &err), 0);
    assert_int_equal(af_store_trigger_delete(f->s, a0, &err), AF_ENOTFOUND);
    assert_int_equal(af_store_webhook_find(f->s, "api/hook", &h, &err), AF_ENOTFOUND);

    /* Deleting a workflow takes its triggers and registrations along. */
    assert_int_equal(af_store_workflow_delete(f->s, other, &err), 0);
    assert_int_equal(af_store_trigger_get(f->s, o0, &got, &err), AF_ENOTFOUND);
    assert_int_equal(af_store_webhook_find(f->s, "other/hook", &h, &err), AF_ENOTFOUND);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM triggers"), 0);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM webhook_registrations"), 0);
}

/* ---- webhook registrations ------------------------------------------------------------------ */

static void test_webhook_register_find(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    char wf1[AF_STORE_ID_MAX], wf2[AF_STORE_ID_MAX], t1[AF_STORE_ID_MAX], t2[AF_STORE_ID_MAX];
    make_workflow(f->s, "orders", NULL, wf1);
    make_workflow(f->s, "billing", NULL, wf2);
    make_trigger(f->s, wf1, "webhook", "script", 0, NULL, t1);
    make_trigger(f->s, wf2, "webhook", "api", -1, NULL, t2);

    af_webhook_rec_t w = {0};
    snprintf(w.workflow_id, sizeof w.workflow_id, "%s", wf1);
    snprintf(w.trigger_id, sizeof w.trigger_id, "%s", t1);
    w.path = "/support/inbound";
    w.methods = "POST,PUT";
    w.config = json_pack("{s:s}", "path", "/support/inbound");
    char id[AF_STORE_ID_MAX];
    assert_int_equal(af_store_webhook_register(f->s, &w, id, &err), 0);
    assert_int_equal(strlen(id), 36);

    af_webhook_rec_t h;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(
            af_store_webhook_find(f->s, i ? "//support/inbound" : "support/inbound", &h, &err), 0);
        assert_string_equal(h.id, id);
        assert_string_equal(h.path, "support/inbound"); /* stored without the slash */
        assert_string_equal(h.methods, "POST,PUT");
        assert_string_equal(h.workflow_id, wf1);
        assert_string_equal(h.trigger_id, t1);
        assert_true(json_equal(h.config, w.config));
        assert_int_equal(h.created_at, fake_now);
        af_webhook_rec_clear(&h);
    }
    assert_int_equal(af_store_webhook_find(f->s, "support", &h, &err), AF_ENOTFOUND);

    /* Another trigger wants the path: refused, saying who holds it. */
    af_webhook_rec_t taker = {0};
    snprintf(taker.workflow_id, sizeof taker.workflow_id, "%s", wf2);
    snprintf(taker.trigger_id, sizeof taker.trigger_id, "%s", t2);
    taker.path = "support/inbound";
    assert_int_equal(af_store_webhook_register(f->s, &taker, NULL, &err), AF_EEXISTS);
    assert_non_null(strstr(err.msg, "support/inbound"));
    assert_non_null(strstr(err.msg, "orders"));
    assert_non_null(strstr(err.msg, wf1));
    /* Same workflow, other trigger: refused too. */
    snprintf(taker.workflow_id, sizeof taker.workflow_id, "%s", wf1);
    assert_int_equal(af_store_webhook_register(f->s, &taker, NULL, &err), AF_EEXISTS);
    assert_int_equal(af_store_webhook_find(f->s, "support/inbound", &h, &err), 0);
    assert_string_equal(h.trigger_id, t1);
    assert_string_equal(h.methods, "POST,PUT");
    af_webhook_rec_clear(&h);

    /* The holder registering again updates methods and config, keeping the id. */
    fake_now += 5;
    w.methods = NULL;
    json_decref(w.config);
    w.config = json_pack("{s:b}", "v2", 1);
    char again[AF_STORE_ID_MAX];
    assert_int_equal(af_store_webhook_register(f->s, &w, again, &err), 0);
    assert_string_equal(again, id);
    assert_int_equal(af_store_webhook_find(f->s, "support/inbound", &h, &err), 0);
    assert_null(h.methods); /* NULL: POST */
    assert_true(json_is_true(json_object_get(h.config, "v2")));
    assert_int_equal(h.created_at, fake_now - 5);
    af_webhook_rec_clear(&h);
    json_decref(w.config);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM webhook_registrations"), 1);

    /* No workflow, no path. */
    af_webhook_rec_t bad = {0};
    snprintf(bad.workflow_id, sizeof bad.workflow_id, "missing");
    bad.path = "x/y";
    assert_int_equal(af_store_webhook_register(f->s, &bad, NULL, &err), AF_ENOTFOUND);
    snprintf(bad.workflow_id, sizeof bad.workflow_id, "%s", wf2);
    bad.path = "/";
    assert_int_equal(af_store_webhook_register(f->s, &bad, NULL, &err), AF_EINVAL);
    bad.path = NULL;
    assert_int_equal(af_store_webhook_register(f->s, &bad, NULL, &err), AF_EINVAL);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM webhook_registrations"), 1);
}

/* Pages through af_store_webhook_list; checks the path order. Returns the rows seen. */
static int webhook_pages(af_store_t *s, int limit, const char *start, int *pages,
                         char (*paths)[256]) {
    char cursor[AF_STORE_CURSOR_MAX];
    snprintf(cursor, sizeof cursor, "%s", start ? start : "");
    int total = 0;
    *pages = 0;
    do {
        af_webhook_rec_t *ws = NULL;
        size_t n = 0;
        char next[AF_STORE_CURSOR_MAX] = "junk";
        af_error_t err = {0};
        if (af_store_webhook_list(s, cursor, limit, &ws, &n, next, &err) != 0) {
            fail_msg("list webhooks: %s", err.msg);
        }
        (*pages)++;
        assert_true(strlen(next) < AF_STORE_CURSOR_MAX);
        for (size_t i = 0; i < n; i++) {
            if (total > 0) {
                assert_true(strcmp(paths[total - 1], ws[i].path) < 0);
            }
            snprintf(paths[total++], 256, "%s", ws[i].path);
        }
        af_webhook_recs_free(ws, n);
        snprintf(cursor, sizeof cursor, "%s", next);
    } while (cursor[0]);
    return total;
}

static void test_webhook_list(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    char wf[AF_STORE_ID_MAX];
    make_workflow(f->s, "hooks", NULL, wf);
    /* 23 short paths in scrambled order, then 3 long ones (longer than a cursor) that sort last
     * and share their first 200 bytes. */
    enum { SHORT = 23, LONG = 3, ALL = SHORT + LONG };
    for (int i = 0; i < SHORT; i++) {
        char p[32];
        snprintf(p, sizeof p, "p/%02d", (i * 7) % SHORT);
        make_webhook(f->s, wf, NULL, p, NULL);
    }
    char longp[LONG][256];
    char long_ids[LONG][AF_STORE_ID_MAX];
    for (int i = 0; i < LONG; i++) {
        memset(longp[i], 'x', 200);
        longp[i][0] = 'q';
        snprintf(longp[i] + 200, 56, "/%d", i);
        make_webhook(f->s, wf, NULL, longp[i], long_ids[i]);
    }
    static char paths[ALL + 8][256];
    int pages = 0;
    assert_int_equal(webhook_pages(f->s, 5, NULL, &pages, paths), ALL);
    assert_int_equal(pages, 6);
    assert_string_equal(paths[0], "p/00");
    assert_string_equal(paths[SHORT - 1], "p/22");
    assert_string_equal(paths[ALL - 1], longp[LONG - 1]);
    /* Pages of 3 end on long paths (items 23 and 26): their cursors still continue exactly. */
    assert_int_equal(webhook_pages(f->s, 3, NULL, &pages, paths), ALL);
    assert_int_equal(pages, 9);
    assert_int_equal(webhook_pages(f->s, 0, NULL, &pages, paths), ALL);
    assert_int_equal(pages, 1);

    /* The registration a cursor ends on is deleted before the next page: nothing is skipped. */
    af_webhook_rec_t *ws = NULL;
    size_t n = 0;
    char next[AF_STORE_CURSOR_MAX];
    assert_int_equal(af_store_webhook_list(f->s, NULL, SHORT + 1, &ws, &n, next, &err), 0);
    assert_int_equal(n, SHORT + 1);
    assert_string_equal(ws[SHORT].path, longp[0]);
    af_webhook_recs_free(ws, n);
    char sql[128];
    snprintf(sql, sizeof sql, "DELETE FROM webhook_registrations WHERE id = '%s'", long_ids[0]);
    raw_exec(f->db, sql);
    assert_int_equal(af_store_webhook_list(f->s, next, 10, &ws, &n, next, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(ws[0].path, longp[1]);
    assert_string_equal(ws[1].path, longp[2]);
    assert_string_equal(next, "");
    af_webhook_recs_free(ws, n);
    /* Same for a short path. */
    assert_int_equal(af_store_webhook_list(f->s, NULL, 4, &ws, &n, next, &err), 0);
    assert_string_equal(ws[3].path, "p/03");
    af_webhook_recs_free(ws, n);
    raw_exec(f->db, "DELETE FROM webhook_registrations WHERE path = 'p/03'");
    assert_int_equal(af_store_webhook_list(f->s, next, 1, &ws, &n, next, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ws[0].path, "p/04");
    af_webhook_recs_free(ws, n);

    const char *bad[] = {"x", "p:", "i:", "i:5:ab", "i:0:abc", "i:abc", "i:-1:abc", "12:abc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ws = (af_webhook_rec_t *)1;
        assert_int_equal(af_store_webhook_list(f->s, bad[i], 5, &ws, &n, next, &err), AF_EINVAL);
        assert_null(ws);
        assert_int_equal(n, 0);
    }
    af_store_t *empty_check = f->s;
    raw_exec(f->db, "DELETE FROM webhook_registrations");
    assert_int_equal(af_store_webhook_list(empty_check, NULL, 5, &ws, &n, next, &err), 0);
    assert_int_equal(n, 0);
    assert_null(ws);
    assert_string_equal(next, "");
}

/* ---- seen webhook message ids --------------------------------------------------------------- */

/* A trigger's state: absent, written (joining a transaction), replaced, gone with its trigger;
 * a workflow's delete takes its triggers' state too. */
static void test_trigger_state(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    char wf[AF_STORE_ID_MAX];
    make_workflow(f->s, "stateful", NULL, wf);
    af_trigger_rec_t t = {.is_active = 1, .config = json_pack("{s:s}", "cron", "* * * * *")};
    snprintf(t.workflow_id, sizeof t.workflow_id, "%s", wf);
    snprintf(t.type, sizeof t.type, "schedule");
    assert_int_equal(af_store_trigger_create(f->s, &t, t.id, &err), 0);
    json_decref(t.config);
    af_trigger_state_t st = {0};
    assert_int_equal(af_store_trigger_state_get(f->s, t.id, &st, &err), AF_ENOTFOUND);

    af_trigger_state_t put = {.last_fire_at = 120000, .state = json_pack("{s:[i]}", "queued", 7)};
    snprintf(put.last_execution_id, sizeof put.last_execution_id, "ex-1");
    assert_int_equal(af_store_begin(f->s, &err), 0);
    assert_int_equal(af_store_trigger_state_put(f->s, t.id, &put, &err), 0);
    af_store_rollback(f->s); /* it joins the transaction: nothing stays */
    assert_int_equal(af_store_trigger_state_get(f->s, t.id, &st, &err), AF_ENOTFOUND);
    assert_int_equal(af_store_trigger_state_put(f->s, t.id, &put, &err), 0);
    assert_int_equal(af_store_trigger_state_get(f->s, t.id, &st, &err), 0);
    assert_int_equal(st.last_fire_at, 120000);
    assert_string_equal(st.last_execution_id, "ex-1");
    assert_true(json_equal(st.state, put.state));
    json_decref(st.state);
    json_decref(put.state);

    af_trigger_state_t next = {.last_fire_at = 180000}; /* replaces all of it */
    assert_int_equal(af_store_trigger_state_put(f->s, t.id, &next, &err), 0);
    assert_int_equal(af_store_trigger_state_get(f->s, t.id, &st, &err), 0);
    assert_int_equal(st.last_fire_at, 180000);
    assert_string_equal(st.last_execution_id, "");
    assert_null(st.state);
    assert_int_equal(af_store_trigger_state_put(f->s, "no-such-trigger", &next, &err),
                     AF_ENOTFOUND);

    assert_int_equal(af_store_trigger_delete(f->s, t.id, &err), 0);
    assert_int_equal(af_store_trigger_state_get(f->s, t.id, &st, &err), AF_ENOTFOUND);
    t.id[0] = '\0';
    t.config = NULL;
    assert_int_equal(af_store_trigger_create(f->s, &t, t.id, &err), 0);
    assert_int_equal(af_store_trigger_state_put(f->s, t.id, &next, &err), 0);
    assert_int_equal(af_store_workflow_delete(f->s, wf, &err), 0);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM trigger_state"), 0);
}

/* Events: stored once per id, listed in (created_at, id) order by range and page, pruned by
 * age with the records of their deliveries (and only those: webhook ids stay). */
static void test_events(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    int dup = -1;
    for (int i = 0; i < 5; i++) {
        af_event_rec_t e = {.created_at = 1000 + i * 100, .data = json_pack("{s:i}", "n", i)};
        snprintf(e.id, sizeof e.id, "ev-%d", i);
        snprintf(e.type, sizeof e.type, i % 2 ? "order.created" : "order.paid");
        e.meta = i == 4 ? json_pack("{s:i}", "depth", 2) : NULL;
        assert_int_equal(af_store_event_put(f->s, &e, &dup, &err), 0);
        assert_int_equal(dup, 0);
        af_event_rec_clear(&e);
    }
    af_event_rec_t again = {.created_at = 5000};
    snprintf(again.id, sizeof again.id, "ev-1");
    snprintf(again.type, sizeof again.type, "other.type");
    assert_int_equal(af_store_event_put(f->s, &again, &dup, &err), 0);
    assert_int_equal(dup, 1);

    af_event_rec_t *es = NULL;
    size_t n = 0;
    char cursor[AF_STORE_CURSOR_MAX] = "";
    assert_int_equal(af_store_event_list(f->s, 1100, 1400, NULL, 2, &es, &n, cursor, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(es[0].id, "ev-1");
    assert_string_equal(es[0].type, "order.created"); /* the first put stands */
    assert_int_equal(json_integer_value(json_object_get(es[1].data, "n")), 2);
    assert_string_not_equal(cursor, "");
    af_event_recs_free(es, n);
    assert_int_equal(af_store_event_list(f->s, 1100, 1400, cursor, 2, &es, &n, cursor, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(es[0].id, "ev-3");
    assert_int_equal(json_integer_value(json_object_get(es[1].meta, "depth")), 2);
    af_event_recs_free(es, n);
    assert_int_equal(af_store_event_list(f->s, 1100, 1400, cursor, 2, &es, &n, cursor, &err), 0);
    assert_int_equal(n, 0);
    assert_string_equal(cursor, "");
    assert_int_equal(af_store_event_list(f->s, 0, 10, "garbage", 2, &es, &n, cursor, &err),
                     AF_EINVAL);
    /* the range is exact: an event 1 ms before `from` is not in it */
    assert_int_equal(af_store_event_list(f->s, 1001, 1100, NULL, 10, &es, &n, cursor, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(es[0].id, "ev-1");
    af_event_recs_free(es, n);

    /* Deliveries of events are pruned with them; webhook ids follow their own retention. */
    fake_now = 1150;
    assert_int_equal(af_store_webhook_seen(f->s, "event:t1", "ev-0", "x1", &dup, NULL, &err), 0);
    assert_int_equal(af_store_webhook_seen(f->s, "hooks/a", "m-1", "x2", &dup, NULL, &err), 0);
    fake_now = 1500;
    assert_int_equal(af_store_webhook_seen(f->s, "event:t1", "ev-4", "x3", &dup, NULL, &err), 0);
    assert_int_equal(af_store_webhook_seen_prune(f->s, 1300, NULL, &err), 0);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM webhook_seen"), 2); /* m-1 went */
    int64_t removed = -1;
    assert_int_equal(af_store_event_prune(f->s, 1250, &removed, &err), 0);
    assert_int_equal(removed, 3); /* ev-0, ev-1, ev-2 */
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM events"), 2);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM webhook_seen WHERE msg_id = 'ev-4'"), 1);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM webhook_seen"), 1);
}

static void test_webhook_seen(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    int dup = -1;
    char first[AF_STORE_ID_MAX] = "junk";
    assert_int_equal(af_store_webhook_seen(f->s, "hooks/a", "msg-1", "ex-1", &dup, first, &err), 0);
    assert_int_equal(dup, 0);
    assert_string_equal(first, "");
    fake_now += 10;
    assert_int_equal(af_store_webhook_seen(f->s, "hooks/a", "msg-1", "ex-2", &dup, first, &err), 0);
    assert_int_equal(dup, 1);
    assert_string_equal(first, "ex-1");
    assert_int_equal(raw_int(f->db, "SELECT seen_at FROM webhook_seen WHERE msg_id = 'msg-1'"),
                     fake_now - 10); /* nothing changed */
    assert_int_equal(af_store_webhook_seen(f->s, "hooks/a", "msg-1", "ex-3", &dup, NULL, &err), 0);
    assert_int_equal(dup, 1);
    /* Another scope has its own ids. */
    assert_int_equal(af_store_webhook_seen(f->s, "hooks/b", "msg-1", "ex-4", &dup, first, &err), 0);
    assert_int_equal(dup, 0);
    /* No execution recorded: a duplicate reports "". */
    assert_int_equal(af_store_webhook_seen(f->s, "hooks/a", "msg-n", NULL, &dup, first, &err), 0);
    assert_int_equal(af_store_webhook_seen(f->s, "hooks/a", "msg-n", "ex-5", &dup, first, &err), 0);
    assert_int_equal(dup, 1);
    assert_string_equal(first, "");

    /* Inside a transaction that rolls back (at the top, or as a savepoint), nothing stays. */
    assert_int_equal(af_store_begin(f->s, &err), 0);
    assert_int_equal(af_store_webhook_seen(f->s, "hooks/a", "msg-2", "ex-6", &dup, first, &err), 0);
    assert_int_equal(dup, 0);
    af_store_rollback(f->s);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM webhook_seen WHERE msg_id = 'msg-2'"), 0);
    assert_int_equal(af_store_begin(f->s, &err), 0);
    assert_int_equal(af_store_begin(f->s, &err), 0);
    assert_int_equal(af_store_webhook_seen(f->s, "hooks/a", "msg-2", "ex-6", &dup, first, &err), 0);
    assert_int_equal(af_store_commit(f->s, &err), 0);
    af_store_rollback(f->s);
    assert_int_equal(af_store_webhook_seen(f->s, "hooks/a", "msg-2", "ex-7", &dup, first, &err), 0);
    assert_int_equal(dup, 0);

    /* With the execution it starts, in one transaction. */
    assert_int_equal(af_store_begin(f->s, &err), 0);
    af_execution_t e = {0};
    snprintf(e.workflow_id, sizeof e.workflow_id, "wf");
    assert_int_equal(af_store_execution_create(f->s, &e, NULL, NULL, &err), 0);
    assert_int_equal(af_store_webhook_seen(f->s, "hooks/a", "msg-3", e.id, &dup, first, &err), 0);
    assert_int_equal(af_store_commit(f->s, &err), 0);
    assert_int_equal(af_store_webhook_seen(f->s, "hooks/a", "msg-3", "ex-x", &dup, first, &err), 0);
    assert_int_equal(dup, 1);
    assert_string_equal(first, e.id);

    /* Pruning by absolute time: msg-1 (hooks/a) was seen 10 ms before the others. */
    int64_t removed = -1;
    assert_int_equal(af_store_webhook_seen_prune(f->s, fake_now - 10, &removed, &err), 0);
    assert_int_equal(removed, 0); /* strictly older only */
    assert_int_equal(af_store_webhook_seen_prune(f->s, fake_now - 9, &removed, &err), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(af_store_webhook_seen(f->s, "hooks/a", "msg-1", "ex-8", &dup, first, &err), 0);
    assert_int_equal(dup, 0); /* forgotten, so new again */
    assert_int_equal(af_store_webhook_seen_prune(f->s, fake_now, NULL, &err), 0);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM webhook_seen"), 5);

    /* Retention: an age bound takes old ids along, no age bound keeps them. */
    fake_now += 5000;
    assert_int_equal(af_store_webhook_seen(f->s, "hooks/c", "fresh", "ex-9", &dup, NULL, &err), 0);
    assert_int_equal(af_store_prune(f->s, 0, 100, &removed, &err), 0);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM webhook_seen"), 6);
    assert_int_equal(af_store_prune(f->s, 1000, -1, &removed, &err), 0);
    assert_int_equal(removed, 0); /* no finished executions */
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM webhook_seen"), 1);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM webhook_seen WHERE msg_id = 'fresh'"), 1);
}

/* Created running in a worker's slot, with a given creation time, its job leased to that worker:
 * started at its creation, one attempt, no claim needed; an explicit end time is kept. */
static void test_execution_created_running(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    af_execution_t e = {.version = 1, .created_at = 1600000000123};
    snprintf(e.id, sizeof e.id, "run-1");
    snprintf(e.workflow_id, sizeof e.workflow_id, "wf-1");
    snprintf(e.status, sizeof e.status, "running");
    af_job_t job = {.lease_until = fake_now + 30000};
    snprintf(job.id, sizeof job.id, "run-1");
    snprintf(job.queue, sizeof job.queue, "executions");
    snprintf(job.lease_owner, sizeof job.lease_owner, "worker-a");
    assert_int_equal(af_store_execution_create(f->s, &e, &job, NULL, &err), 0);
    assert_int_equal(e.created_at, 1600000000123);
    assert_int_equal(e.started_at, 1600000000123);
    af_execution_t got;
    assert_int_equal(af_store_execution_get(f->s, "run-1", &got, &err), 0);
    assert_string_equal(got.status, "running");
    assert_int_equal(got.created_at, 1600000000123);
    assert_int_equal(got.started_at, 1600000000123);
    assert_int_equal(got.attempt, 1);
    af_execution_clear(&got);
    af_job_t j;
    assert_int_equal(af_queue_get(af_store_queue(f->s), "run-1", &j, &err), 0);
    assert_string_equal(j.lease_owner, "worker-a");
    assert_int_equal(j.lease_until, fake_now + 30000);
    assert_int_equal(j.attempts, 1);
    af_job_clear(&j);
    assert_int_equal(af_queue_complete(af_store_queue(f->s), "run-1", "worker-a", &err), 0);
    assert_int_equal(af_store_execution_set_status(f->s, "run-1", "succeeded", NULL, NULL, 0,
                                                   1600000000999, &err),
                     0);
    assert_int_equal(af_store_execution_get(f->s, "run-1", &got, &err), 0);
    assert_int_equal(got.completed_at, 1600000000999);
    assert_int_equal(got.attempt, 1);
    af_execution_clear(&got);
}

/* ---- group commit --------------------------------------------------------------------------- */

typedef struct {
    af_store_t *s;
    int index;
    int fail; /* write, then fail: the savepoint must undo the write */
    int rc;
    int done;
    pthread_mutex_t *mu;
    int *ndone;
} op_t;

static int op_create(af_store_t *s, void *ud) {
    op_t *o = ud;
    af_execution_t e = {0};
    snprintf(e.id, sizeof e.id, "g-%d", o->index);
    snprintf(e.workflow_id, sizeof e.workflow_id, "wf");
    int rc = af_store_execution_create(s, &e, NULL, NULL, NULL);
    return rc != 0 ? rc : o->fail ? AF_ERUNTIME : 0;
}

static void op_done(void *ud, int rc) {
    op_t *o = ud;
    o->rc = rc;
    o->done++;
    if (o->mu) {
        pthread_mutex_lock(o->mu);
        (*o->ndone)++;
        pthread_mutex_unlock(o->mu);
    }
}

static void test_group_commit(void **state) {
    fx_t *f = *state;
    enum { N = 500 };
    static op_t ops[N];
    af_store_group_t *g = af_store_group_new(f->s, 0);
    assert_non_null(g);
    af_store_info_t info;
    af_store_info(f->s, &info);
    uint64_t commits0 = info.commits;
    for (int i = 0; i < N; i++) {
        ops[i] = (op_t){.s = f->s, .index = i, .fail = i == 17};
        assert_int_equal(af_store_group_submit(g, op_create, op_done, &ops[i]), 0);
    }
    assert_int_equal(ops[0].done, 0); /* nothing acknowledged before the commit */
    assert_int_equal(af_store_group_flush(g), N);
    af_store_info(f->s, &info);
    assert_int_equal(info.commits - commits0, 1); /* N operations, one transaction */
    for (int i = 0; i < N; i++) {
        assert_int_equal(ops[i].done, 1);
        assert_int_equal(ops[i].rc, i == 17 ? AF_ERUNTIME : 0);
    }
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM workflow_executions"), N - 1);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM jobs"), N - 1);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM workflow_executions WHERE id = 'g-17'"),
                     0);
    assert_int_equal(af_store_group_flush(g), 0);
    af_store_group_free(g);
}

/* Like a retry: a nested write that fails and is rolled back, then the operation goes on. */
static int op_nested_undo(af_store_t *s, void *ud) {
    op_t *o = ud;
    af_error_t err;
    af_execution_t e = {0};
    snprintf(e.id, sizeof e.id, "g-%d", o->index);
    snprintf(e.workflow_id, sizeof e.workflow_id, "wf");
    int rc = af_store_begin(s, &err);
    if (rc == 0) {
        af_execution_t tmp = {0};
        snprintf(tmp.id, sizeof tmp.id, "undone-%d", o->index);
        snprintf(tmp.workflow_id, sizeof tmp.workflow_id, "wf");
        af_store_execution_create(s, &tmp, NULL, NULL, &err);
        af_store_rollback(s);
    }
    return rc != 0 ? rc : af_store_execution_create(s, &e, NULL, NULL, &err);
}

/* A batch runs without savepoints until an operation fails or rolls a nested write back: then it
 * runs again with one savepoint each, and only the failed operation's writes are gone. */
static void test_group_commit_redo(void **state) {
    fx_t *f = *state;
    static op_t ops[6];
    af_store_group_t *g = af_store_group_new(f->s, 0);
    for (int i = 0; i < 6; i++) {
        ops[i] = (op_t){.s = f->s, .index = i, .fail = i == 4};
        assert_int_equal(
            af_store_group_submit(g, i == 2 ? op_nested_undo : op_create, op_done, &ops[i]), 0);
    }
    assert_int_equal(af_store_group_flush(g), 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(ops[i].done, 1);
        assert_int_equal(ops[i].rc, i == 4 ? AF_ERUNTIME : 0);
    }
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM workflow_executions"), 5);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM workflow_executions WHERE id LIKE "
                                    "'undone-%' OR id = 'g-4'"),
                     0);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM jobs"), 5);
    /* Only a nested rollback, no failure: still redone, the rolled-back write stays undone. */
    ops[0] = (op_t){.s = f->s, .index = 10};
    ops[1] = (op_t){.s = f->s, .index = 11};
    assert_int_equal(af_store_group_submit(g, op_nested_undo, op_done, &ops[0]), 0);
    assert_int_equal(af_store_group_submit(g, op_create, op_done, &ops[1]), 0);
    assert_int_equal(af_store_group_flush(g), 2);
    assert_int_equal(ops[0].rc, 0);
    assert_int_equal(ops[1].rc, 0);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM workflow_executions WHERE id IN "
                                    "('g-10', 'g-11')"),
                     2);
    assert_int_equal(
        raw_int(f->db, "SELECT COUNT(*) FROM workflow_executions WHERE id = 'undone-10'"), 0);
    af_store_group_free(g);
}

typedef struct {
    af_store_group_t *g;
    op_t *ops;
    int n;
} submitter_t;

static void *submit_thread(void *arg) {
    submitter_t *t = arg;
    for (int i = 0; i < t->n; i++) {
        if (af_store_group_submit(t->g, op_create, op_done, &t->ops[i]) != 0) {
            t->ops[i].rc = -100;
        }
    }
    return NULL;
}

static void test_group_commit_thread(void **state) {
    fx_t *f = *state;
    enum { T = 4, PER = 1000 };
    static op_t ops[T * PER];
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    int ndone = 0;
    af_store_group_t *g = af_store_group_new(f->s, 256);
    assert_int_equal(af_store_group_start(g), 0);
    assert_int_equal(af_store_group_start(g), AF_ESTATE);
    for (int i = 0; i < T * PER; i++) {
        ops[i] = (op_t){.s = f->s, .index = i, .mu = &mu, .ndone = &ndone};
    }
    pthread_t th[T];
    submitter_t sub[T];
    double t0 = af_mono_ms();
    for (int t = 0; t < T; t++) {
        sub[t] = (submitter_t){g, &ops[t * PER], PER};
        pthread_create(&th[t], NULL, submit_thread, &sub[t]);
    }
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
    }
    af_store_group_free(g); /* flushes everything submitted */
    double ms = af_mono_ms() - t0;
    assert_int_equal(ndone, T * PER);
    for (int i = 0; i < T * PER; i++) {
        assert_int_equal(ops[i].rc, 0);
        assert_int_equal(ops[i].done, 1);
    }
    af_store_info_t info;
    af_store_info(f->s, &info);
    print_message("%d executions+jobs in %.0f ms over %llu commits (%.0f/s)\n", T * PER, ms,
                  (unsigned long long)info.commits, T * PER / (ms / 1000.0));
    assert_true(info.commits >= (T * PER) / 256);
    assert_true(info.commits <= T * PER);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM workflow_executions"), T * PER);
    pthread_mutex_destroy(&mu);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durability_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workflow_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workflow_pagination, setup, teardown),
        cmocka_unit_test_setup_teardown(test_execution_and_job_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoints_and_logs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_bounds_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workflow_find_and_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_execution_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_port_wake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_triggers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_register_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_seen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trigger_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_execution_created_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_redo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_thread, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
