/* test_store.c -- the storage interface over SQLite (store/store.c, store/store_sqlite.c):
 * migrations, CRUD and cursors, execution + job atomicity, checkpoints, logs, retention, group
 * commit. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

/* ---- fixtures ------------------------------------------------------------------------------- */

static int64_t fake_now = 1700000000000;

static int64_t fake_clock(void *ud) {
    (void)ud;
    return fake_now;
}

typedef struct {
    char dir[64];
    char db[96];
    af_store_t *s;
} fx_t;

static af_store_t *open_store(fx_t *f, af_store_durability_t d) {
    af_store_options_t o = {sizeof o, d, 0, fake_clock, NULL};
    af_store_t *s = NULL;
    af_error_t err = {0};
    int rc = af_store_open(f->dir, &o, &s, &err);
    if (rc != 0) {
        fail_msg("open: %s", err.msg);
    }
    return s;
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
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            char p[512];
            snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
            unlink(p);
        }
    }
    if (d) {
        closedir(d);
    }
    rmdir(f->dir);
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
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM schema_migrations"), 1);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"
                                    " AND name IN ('workflows', 'workflow_versions',"
                                    " 'workflow_executions', 'step_checkpoints', 'execution_logs',"
                                    " 'triggers', 'webhook_registrations', 'jobs', 'dead_letters',"
                                    " 'events')"),
                     10);

    /* Re-opening is idempotent: nothing applied again, data kept, no commit at all. */
    char id[AF_STORE_ID_MAX];
    make_workflow(f->s, "keep", NULL, id);
    af_store_close(f->s);
    f->s = open_store(f, AF_STORE_DURABLE_DEFAULT);
    assert_int_equal(af_store_info(f->s, &info), 0);
    assert_int_equal(info.schema_version, AF_STORE_SCHEMA_VERSION);
    assert_int_equal(info.commits, 0);
    assert_int_equal(raw_int(f->db, "SELECT COUNT(*) FROM schema_migrations"), 1);
    af_workflow_t w;
    assert_int_equal(af_store_workflow_get(f->s, id, &w, NULL), 0);
    assert_string_equal(w.name, "keep");
    af_workflow_clear(&w);

    /* A store given a file path (not a directory) opens that file. */
    af_store_t *s2 = NULL;
    af_store_options_t o = {sizeof o, AF_STORE_DURABLE_DEFAULT, 0, fake_clock, NULL};
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
    assert_int_equal(af_store_execution_set_status(f->s, e.id, "running", NULL, NULL, 0, &err), 0);
    int64_t started = fake_now;
    fake_now += 5;
    assert_int_equal(
        af_store_execution_set_status(f->s, e.id, "waiting", NULL, NULL, fake_now + 60000, &err),
        0);
    assert_int_equal(af_store_execution_get(f->s, e.id, &got, &err), 0);
    assert_int_equal(got.wake_at, fake_now + 60000);
    af_execution_clear(&got);
    fake_now += 5;
    assert_int_equal(af_store_execution_set_status(f->s, e.id, "running", NULL, NULL, 0, &err), 0);
    fake_now += 5;
    json_t *result = json_pack("{s:b}", "ok", 1);
    assert_int_equal(af_store_execution_set_status(f->s, e.id, "succeeded", result, NULL, 0, &err),
                     0);
    json_decref(result);
    assert_int_equal(af_store_execution_get(f->s, e.id, &got, &err), 0);
    assert_string_equal(got.status, "succeeded");
    assert_int_equal(got.started_at, started);
    assert_int_equal(got.completed_at, fake_now);
    assert_int_equal(got.wake_at, 0);
    assert_int_equal(got.attempt, 2);
    assert_true(json_is_true(json_object_get(got.result, "ok")));
    af_execution_clear(&got);
    assert_int_equal(af_store_execution_set_status(f->s, e.id, "nope", NULL, NULL, 0, &err),
                     AF_EINVAL);
    assert_int_equal(af_store_execution_set_status(f->s, "missing", "failed", NULL, "x", 0, &err),
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
                af_store_execution_set_status(f->s, e.id, "succeeded", NULL, NULL, 0, &err), 0);
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
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_thread, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
