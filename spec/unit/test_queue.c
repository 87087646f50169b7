/* test_queue.c -- the job queue over SQLite (queue/queue.c, queue/queue_sqlite.c): ordering,
 * leases and heartbeats, reaping, attempts and dead letters, claiming one job, start-up release,
 * listing, removal, rescheduling, and two workers on two connections. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue/queue.h"
#include "store_fixture.h"
#include "store/store.h"

typedef struct {
    char dir[64];
    af_store_t *s;
    af_queue_t *q;
} fx_t;

static af_store_t *open_store(const char *dir, int fake) {
    return fixture_open(dir, AF_STORE_DURABLE_DEFAULT, fake);
}

static int setup(void **state) {
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/af_queue_XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        return -1;
    }
    fake_now = 1700000000000;
    f->s = open_store(f->dir, 1);
    f->q = af_store_queue(f->s);
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

static void put(af_queue_t *q, const char *id, int priority, int64_t run_at, int max_attempts) {
    af_job_t j = {0};
    snprintf(j.id, sizeof j.id, "%s", id);
    snprintf(j.queue, sizeof j.queue, "work");
    j.priority = priority;
    j.run_at = run_at;
    j.max_attempts = max_attempts;
    j.payload = json_pack("{s:s}", "name", id);
    af_error_t err = {0};
    if (af_queue_enqueue(q, &j, NULL, &err) != 0) {
        fail_msg("enqueue %s: %s", id, err.msg);
    }
    json_decref(j.payload);
}

/* Dequeues from "work" and returns the id (static buffer), or NULL when nothing is due. */
static const char *take(af_queue_t *q, const char *worker, int64_t lease_ms, af_job_t *out) {
    static char id[AF_QUEUE_ID_MAX];
    af_job_t j;
    af_error_t err = {0};
    int rc = af_queue_dequeue(q, "work", worker, lease_ms, &j, &err);
    if (rc == AF_ENOTFOUND) {
        return NULL;
    }
    if (rc != 0) {
        fail_msg("dequeue: %s", err.msg);
    }
    snprintf(id, sizeof id, "%s", j.id);
    if (out) {
        *out = j;
    } else {
        af_job_clear(&j);
    }
    return id;
}

static void test_ordering(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    put(f->q, "a-low", 0, fake_now, 0);
    put(f->q, "b-high", 5, fake_now, 0);
    put(f->q, "c-high-earlier", 5, fake_now - 100, 0);
    put(f->q, "d-later", 9, fake_now + 1000, 0);
    put(f->q, "e-low", 0, fake_now, 0); /* same as a-low: first in, first out */
    af_job_t other = {0};
    snprintf(other.queue, sizeof other.queue, "elsewhere");
    assert_int_equal(af_queue_enqueue(f->q, &other, NULL, &err), 0);

    af_job_t j;
    assert_string_equal(take(f->q, "w", 1000, &j), "c-high-earlier");
    assert_string_equal(json_string_value(json_object_get(j.payload, "name")), "c-high-earlier");
    assert_int_equal(j.attempts, 1);
    assert_int_equal(j.max_attempts, 5);
    assert_int_equal(j.priority, 5);
    assert_string_equal(j.lease_owner, "w");
    assert_int_equal(j.lease_until, fake_now + 1000);
    af_job_clear(&j);
    assert_string_equal(take(f->q, "w", 1000, NULL), "b-high");
    assert_string_equal(take(f->q, "w", 1000, NULL), "a-low");
    assert_string_equal(take(f->q, "w", 1000, NULL), "e-low");
    assert_null(take(f->q, "w", 1000, NULL)); /* d-later is not due yet */
    fake_now += 1000;
    assert_string_equal(take(f->q, "w", 1000, NULL), "d-later");

    int64_t ready = -1, leased = -1, dead = -1;
    assert_int_equal(af_queue_count(f->q, "work", &ready, &leased, &dead, &err), 0);
    assert_int_equal(ready, 0);
    assert_int_equal(leased, 5);
    assert_int_equal(dead, 0);
    assert_int_equal(af_queue_count(f->q, NULL, &ready, NULL, NULL, &err), 0);
    assert_int_equal(ready, 1);

    /* Bad arguments. */
    assert_int_equal(af_queue_dequeue(f->q, "work", "", 1000, &j, &err), AF_EINVAL);
    assert_int_equal(af_queue_dequeue(f->q, "work", "w", 0, &j, &err), AF_EINVAL);
    put(f->q, "dup", 0, 0, 0);
    af_job_t dup = {0};
    snprintf(dup.id, sizeof dup.id, "dup");
    assert_int_equal(af_queue_enqueue(f->q, &dup, NULL, &err), AF_EEXISTS);
}

static void test_lease_heartbeat_reap(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    put(f->q, "job", 0, 0, 3);
    assert_string_equal(take(f->q, "w1", 1000, NULL), "job");
    assert_null(take(f->q, "w2", 1000, NULL)); /* leased: nobody else gets it */

    assert_int_equal(af_queue_heartbeat(f->q, "job", "w2", 1000, &err), AF_ESTATE);
    fake_now += 500;
    assert_int_equal(af_queue_heartbeat(f->q, "job", "w1", 1000, &err), 0); /* until +1500 */
    fake_now += 800;                                                        /* +1300 */
    int reaped = -1;
    assert_int_equal(af_queue_reap(f->q, &reaped, &err), 0);
    assert_int_equal(reaped, 0); /* the heartbeat kept it */
    fake_now += 300;             /* +1600: expired */
    assert_int_equal(af_queue_heartbeat(f->q, "job", "w1", 1000, &err), AF_ESTATE);
    assert_null(take(f->q, "w2", 1000, NULL)); /* not back before the reaper runs */
    assert_int_equal(af_queue_reap(f->q, &reaped, &err), 0);
    assert_int_equal(reaped, 1);

    af_job_t j;
    assert_string_equal(take(f->q, "w2", 1000, &j), "job");
    assert_int_equal(j.attempts, 2);
    assert_string_equal(j.last_error, "lease expired");
    af_job_clear(&j);
    /* The old holder can no longer finish it; the new one can. */
    assert_int_equal(af_queue_complete(f->q, "job", "w1", &err), AF_ESTATE);
    assert_int_equal(af_queue_fail(f->q, "job", "w1", "late", 0, NULL, &err), AF_ESTATE);
    assert_int_equal(af_queue_complete(f->q, "job", "w2", &err), 0);
    assert_int_equal(af_queue_complete(f->q, "job", "w2", &err), AF_ESTATE);
    int64_t ready = -1, leased = -1;
    assert_int_equal(af_queue_count(f->q, NULL, &ready, &leased, NULL, &err), 0);
    assert_int_equal(ready + leased, 0);

    /* A job whose last attempt's lease expires goes to the dead letters. */
    put(f->q, "last", 0, 0, 1);
    assert_string_equal(take(f->q, "w1", 100, NULL), "last");
    fake_now += 200;
    assert_int_equal(af_queue_reap(f->q, &reaped, &err), 0);
    assert_int_equal(reaped, 1);
    af_job_t *dl = NULL;
    size_t n = 0;
    assert_int_equal(af_queue_dead_list(f->q, "work", NULL, 0, &dl, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(dl[0].id, "last");
    assert_string_equal(dl[0].last_error, "lease expired");
    af_jobs_free(dl, n);
}

static void test_attempts_dead_letter_retry(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    put(f->q, "flaky", 0, 0, 3);
    int dead = -1;
    for (int attempt = 1; attempt <= 3; attempt++) {
        af_job_t j;
        assert_string_equal(take(f->q, "w", 1000, &j), "flaky");
        assert_int_equal(j.attempts, attempt);
        af_job_clear(&j);
        char msg[32];
        snprintf(msg, sizeof msg, "failure %d", attempt);
        assert_int_equal(af_queue_fail(f->q, "flaky", "w", msg, 50, &dead, &err), 0);
        assert_int_equal(dead, attempt == 3);
        if (attempt < 3) {
            assert_null(take(f->q, "w", 1000, NULL)); /* waits out its retry delay */
            fake_now += 50;
        }
    }
    assert_null(take(f->q, "w", 1000, NULL));

    /* Default backoff: full jitter within [0, base]. */
    af_queue_options_t o = {sizeof o, 0, 10000, 60000};
    assert_int_equal(af_queue_configure(f->q, &o), 0);
    put(f->q, "backoff", 0, 0, 5);
    assert_string_equal(take(f->q, "w", 1000, NULL), "backoff");
    assert_int_equal(af_queue_fail(f->q, "backoff", "w", "x", AF_QUEUE_BACKOFF, &dead, &err), 0);
    assert_int_equal(dead, 0);
    fake_now += 10000;
    assert_string_equal(take(f->q, "w", 1000, NULL), "backoff");
    /* No retry: dead at once, attempts left or not. */
    assert_int_equal(af_queue_fail(f->q, "backoff", "w", "fatal", AF_QUEUE_NO_RETRY, &dead, &err),
                     0);
    assert_int_equal(dead, 1);
    fake_now += 1;

    af_job_t *dl = NULL;
    size_t n = 0;
    assert_int_equal(af_queue_dead_list(f->q, NULL, NULL, 0, &dl, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(dl[0].id, "flaky");
    assert_string_equal(dl[0].last_error, "failure 3");
    assert_int_equal(dl[0].attempts, 3);
    assert_string_equal(json_string_value(json_object_get(dl[0].payload, "name")), "flaky");
    assert_true(dl[0].failed_at > 0);
    assert_string_equal(dl[1].id, "backoff");
    assert_string_equal(dl[1].last_error, "fatal");
    af_jobs_free(dl, n);
    /* Paged by the last id seen. */
    assert_int_equal(af_queue_dead_list(f->q, NULL, "flaky", 10, &dl, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(dl[0].id, "backoff");
    af_jobs_free(dl, n);
    assert_int_equal(af_queue_dead_list(f->q, "other", NULL, 10, &dl, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(dl);

    /* Retried by hand: ready now with fresh attempts, last error kept. */
    assert_int_equal(af_queue_dead_retry(f->q, "flaky", &err), 0);
    assert_int_equal(af_queue_dead_retry(f->q, "flaky", &err), AF_ENOTFOUND);
    af_job_t j;
    assert_string_equal(take(f->q, "w", 1000, &j), "flaky");
    assert_int_equal(j.attempts, 1);
    assert_string_equal(j.last_error, "failure 3");
    af_job_clear(&j);
    assert_int_equal(af_queue_complete(f->q, "flaky", "w", &err), 0);
    int64_t dead_n = -1;
    assert_int_equal(af_queue_count(f->q, NULL, NULL, NULL, &dead_n, &err), 0);
    assert_int_equal(dead_n, 1);
}

/* Enqueued inside a store transaction, a job commits or rolls back with it. */
static void test_enqueue_in_transaction(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    assert_int_equal(af_store_begin(f->s, &err), 0);
    put(f->q, "gone", 0, 0, 0);
    af_store_rollback(f->s);
    assert_null(take(f->q, "w", 1000, NULL));
    assert_int_equal(af_store_begin(f->s, &err), 0);
    put(f->q, "kept", 0, 0, 0);
    assert_int_equal(af_store_commit(f->s, &err), 0);
    assert_string_equal(take(f->q, "w", 1000, NULL), "kept");
}

/* ---- claim, heartbeat_all, release_all ------------------------------------------------------ */

static void test_claim(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    put(f->q, "later", 0, fake_now + 60000, 2);
    put(f->q, "other", 0, 0, 0);
    af_job_t j;
    assert_int_equal(af_queue_claim(f->q, "later", "w1", 1000, &j, &err), 0); /* not due: fine */
    assert_string_equal(j.id, "later");
    assert_string_equal(j.lease_owner, "w1");
    assert_int_equal(j.lease_until, fake_now + 1000);
    assert_int_equal(j.attempts, 1);
    assert_int_equal(j.max_attempts, 2);
    assert_string_equal(json_string_value(json_object_get(j.payload, "name")), "later");
    af_job_clear(&j);
    /* Leased now: nobody claims it again, not even its holder. */
    assert_int_equal(af_queue_claim(f->q, "later", "w2", 1000, &j, &err), AF_ENOTFOUND);
    assert_int_equal(af_queue_claim(f->q, "later", "w1", 1000, NULL, &err), AF_ENOTFOUND);
    assert_int_equal(af_queue_claim(f->q, "missing", "w1", 1000, NULL, &err), AF_ENOTFOUND);
    assert_int_equal(af_queue_claim(f->q, "other", "", 1000, NULL, &err), AF_EINVAL);
    assert_int_equal(af_queue_claim(f->q, "other", "w1", 0, NULL, &err), AF_EINVAL);
    /* job may be NULL; the claim still happens. */
    assert_int_equal(af_queue_claim(f->q, "other", "w2", 1000, NULL, &err), 0);
    assert_null(take(f->q, "w3", 1000, NULL));
    int64_t ready = -1, leased = -1;
    assert_int_equal(af_queue_count(f->q, "work", &ready, &leased, NULL, &err), 0);
    assert_int_equal(ready, 0);
    assert_int_equal(leased, 2);
    /* A claimed job is finished and failed like a dequeued one. */
    assert_int_equal(af_queue_complete(f->q, "other", "w2", &err), 0);
    int dead = -1;
    assert_int_equal(af_queue_fail(f->q, "later", "w1", "x", 10, &dead, &err), 0);
    assert_int_equal(dead, 0);
    assert_int_equal(af_queue_claim(f->q, "later", "w1", 1000, &j, &err), 0);
    assert_int_equal(j.attempts, 2);
    af_job_clear(&j);
}

/* A producer that runs the job itself enqueues it leased: its first attempt, no claim. */
static void test_enqueue_leased(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    af_job_t j = {.lease_until = fake_now + 5000};
    snprintf(j.id, sizeof j.id, "mine");
    snprintf(j.queue, sizeof j.queue, "work");
    snprintf(j.lease_owner, sizeof j.lease_owner, "w1");
    assert_int_equal(af_queue_enqueue(f->q, &j, NULL, &err), 0);
    assert_null(take(f->q, "w2", 1000, NULL)); /* not ready for anyone */
    assert_int_equal(af_queue_claim(f->q, "mine", "w2", 1000, NULL, &err), AF_ENOTFOUND);
    af_job_t got;
    assert_int_equal(af_queue_get(f->q, "mine", &got, &err), 0);
    assert_string_equal(got.lease_owner, "w1");
    assert_int_equal(got.lease_until, fake_now + 5000);
    assert_int_equal(got.attempts, 1);
    af_job_clear(&got);
    /* Its lease runs out like any other: reaped back to ready. */
    fake_now += 6000;
    int reaped = 0;
    assert_int_equal(af_queue_reap(f->q, &reaped, &err), 0);
    assert_int_equal(reaped, 1);
    assert_string_equal(take(f->q, "w2", 1000, NULL), "mine");
    assert_int_equal(af_queue_complete(f->q, "mine", "w2", &err), 0);
}

static void test_heartbeat_all(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    put(f->q, "a", 0, 0, 0);
    put(f->q, "b", 0, 0, 0);
    put(f->q, "c", 0, 0, 0);
    put(f->q, "d", 0, 0, 0);
    assert_int_equal(af_queue_claim(f->q, "a", "w1", 1000, NULL, &err), 0);
    assert_int_equal(af_queue_claim(f->q, "b", "w1", 1000, NULL, &err), 0);
    assert_int_equal(af_queue_claim(f->q, "c", "w2", 1000, NULL, &err), 0);
    fake_now += 1500; /* all three expired, none reaped yet */
    int n = -1;
    assert_int_equal(af_queue_heartbeat_all(f->q, "w1", 5000, &n, &err), 0);
    assert_int_equal(n, 2);
    af_job_t j;
    assert_int_equal(af_queue_get(f->q, "a", &j, &err), 0);
    assert_int_equal(j.lease_until, fake_now + 5000);
    assert_string_equal(j.lease_owner, "w1");
    af_job_clear(&j);
    assert_int_equal(af_queue_get(f->q, "c", &j, &err), 0);
    assert_int_equal(j.lease_until, fake_now - 500); /* w2's lease untouched */
    af_job_clear(&j);
    int reaped = -1;
    assert_int_equal(af_queue_reap(f->q, &reaped, &err), 0);
    assert_int_equal(reaped, 1); /* only c */
    assert_int_equal(af_queue_heartbeat_all(f->q, "w2", 5000, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(af_queue_heartbeat_all(f->q, "nobody", 5000, NULL, &err), 0);
    assert_int_equal(af_queue_heartbeat_all(f->q, "w1", 0, &n, &err), AF_EINVAL);
    assert_int_equal(af_queue_heartbeat_all(f->q, "", 10, &n, &err), AF_EINVAL);
}

static void test_release_all(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    put(f->q, "mine", 0, 0, 0);
    put(f->q, "dead1", 0, 0, 1); /* its only attempt is used: reap would dead-letter it */
    put(f->q, "dead2", 0, 0, 0);
    put(f->q, "idle", 0, fake_now + 100000, 0);
    assert_int_equal(af_queue_claim(f->q, "mine", "me", 60000, NULL, &err), 0);
    assert_int_equal(af_queue_claim(f->q, "dead1", "old-1", 60000, NULL, &err), 0);
    assert_int_equal(af_queue_claim(f->q, "dead2", "old-2", 60000, NULL, &err), 0);
    fake_now += 10;
    int n = -1;
    assert_int_equal(af_queue_release_all(f->q, "me", &n, &err), 0);
    assert_int_equal(n, 2);
    af_job_t j;
    assert_int_equal(af_queue_get(f->q, "dead1", &j, &err), 0);
    assert_string_equal(j.lease_owner, "");
    assert_int_equal(j.lease_until, 0);
    assert_int_equal(j.attempts, 1); /* kept */
    assert_int_equal(j.run_at, fake_now);
    af_job_clear(&j);
    assert_int_equal(af_queue_get(f->q, "mine", &j, &err), 0);
    assert_string_equal(j.lease_owner, "me");
    af_job_clear(&j);
    assert_int_equal(af_queue_get(f->q, "idle", &j, &err), 0);
    assert_int_equal(j.run_at, fake_now + 99990); /* ready jobs are left alone */
    af_job_clear(&j);
    int64_t ready = -1, leased = -1, dead = -1;
    assert_int_equal(af_queue_count(f->q, NULL, &ready, &leased, &dead, &err), 0);
    assert_int_equal(ready, 3);
    assert_int_equal(leased, 1);
    assert_int_equal(dead, 0);
    /* Released jobs are due again at once. */
    const char *a = take(f->q, "w", 1000, NULL);
    assert_non_null(a);
    assert_true(strcmp(a, "dead1") == 0 || strcmp(a, "dead2") == 0);
    assert_int_equal(af_queue_release_all(f->q, NULL, &n, &err), 0);
    assert_int_equal(n, 2); /* "mine" and the one just taken */
    assert_int_equal(af_queue_release_all(f->q, NULL, NULL, &err), 0);
    assert_int_equal(af_queue_count(f->q, NULL, &ready, &leased, &dead, &err), 0);
    assert_int_equal(ready, 4);
    assert_int_equal(leased + dead, 0);
}

/* ---- list, get, remove, dead_get ------------------------------------------------------------ */

static void test_list_get_remove(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    for (int i = 9; i >= 0; i--) { /* enqueued out of id order */
        char id[16];
        snprintf(id, sizeof id, "j%d", i);
        put(f->q, id, i % 3, 0, 1);
    }
    af_job_t other = {0};
    snprintf(other.id, sizeof other.id, "j5x");
    snprintf(other.queue, sizeof other.queue, "elsewhere");
    assert_int_equal(af_queue_enqueue(f->q, &other, NULL, &err), 0);
    assert_int_equal(af_queue_claim(f->q, "j3", "w", 1000, NULL, &err), 0);

    /* Pages of 4 in id order, leased jobs included. */
    char after[AF_QUEUE_ID_MAX] = "";
    int seen = 0, pages = 0;
    for (;;) {
        af_job_t *js = NULL;
        size_t n = 0;
        assert_int_equal(af_queue_list(f->q, "work", after, 4, &js, &n, &err), 0);
        if (n == 0) {
            assert_null(js);
            break;
        }
        pages++;
        for (size_t i = 0; i < n; i++) {
            char want[16];
            snprintf(want, sizeof want, "j%d", seen);
            assert_string_equal(js[i].id, want);
            assert_string_equal(js[i].queue, "work");
            assert_int_equal(js[i].priority, seen % 3);
            assert_string_equal(json_string_value(json_object_get(js[i].payload, "name")), want);
            if (seen == 3) {
                assert_string_equal(js[i].lease_owner, "w");
                assert_int_equal(js[i].lease_until, fake_now + 1000);
            } else {
                assert_string_equal(js[i].lease_owner, "");
            }
            seen++;
        }
        snprintf(after, sizeof after, "%s", js[n - 1].id);
        af_jobs_free(js, n);
    }
    assert_int_equal(seen, 10);
    assert_int_equal(pages, 3);
    af_job_t *js = NULL;
    size_t n = 0;
    assert_int_equal(af_queue_list(f->q, NULL, NULL, 0, &js, &n, &err), 0);
    assert_int_equal(n, 11); /* every queue */
    assert_string_equal(js[6].id, "j5x");
    af_jobs_free(js, n);

    af_job_t j;
    assert_int_equal(af_queue_get(f->q, "j3", &j, &err), 0);
    assert_string_equal(j.lease_owner, "w");
    assert_int_equal(j.attempts, 1);
    af_job_clear(&j);
    assert_int_equal(af_queue_get(f->q, "nope", &j, &err), AF_ENOTFOUND);

    /* Dead letters: found by dead_get, not by get. */
    assert_int_equal(af_queue_claim(f->q, "j4", "w", 1000, NULL, &err), 0);
    fake_now += 7;
    assert_int_equal(af_queue_fail(f->q, "j4", "w", "broken", 0, NULL, &err), 0); /* 1 attempt */
    assert_int_equal(af_queue_get(f->q, "j4", &j, &err), AF_ENOTFOUND);
    assert_int_equal(af_queue_dead_get(f->q, "j4", &j, &err), 0);
    assert_string_equal(j.id, "j4");
    assert_string_equal(j.queue, "work");
    assert_string_equal(j.last_error, "broken");
    assert_int_equal(j.failed_at, fake_now);
    assert_int_equal(j.attempts, 1);
    assert_string_equal(json_string_value(json_object_get(j.payload, "name")), "j4");
    af_job_clear(&j);
    assert_int_equal(af_queue_dead_get(f->q, "j5", &j, &err), AF_ENOTFOUND);

    /* Remove: a ready job, a leased one (whoever holds it), a dead letter. */
    assert_int_equal(af_queue_remove(f->q, "j5", &err), 0);
    assert_int_equal(af_queue_remove(f->q, "j3", &err), 0);
    assert_int_equal(af_queue_remove(f->q, "j4", &err), 0);
    assert_int_equal(af_queue_remove(f->q, "j4", &err), AF_ENOTFOUND);
    assert_int_equal(af_queue_remove(f->q, "nope", &err), AF_ENOTFOUND);
    assert_int_equal(af_queue_complete(f->q, "j3", "w", &err), AF_ESTATE);
    int64_t ready = -1, leased = -1, dead = -1;
    assert_int_equal(af_queue_count(f->q, "work", &ready, &leased, &dead, &err), 0);
    assert_int_equal(ready, 7);
    assert_int_equal(leased, 0);
    assert_int_equal(dead, 0);
}

/* ---- reschedule ----------------------------------------------------------------------------- */

static void test_reschedule(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    put(f->q, "park", 0, 0, 2);
    af_job_t j;
    assert_string_equal(take(f->q, "w", 1000, NULL), "park");
    assert_int_equal(af_queue_fail(f->q, "park", "w", "flaky", 0, NULL, &err), 0);
    assert_string_equal(take(f->q, "w", 1000, NULL), "park"); /* attempt 2 of 2 */
    /* Parked until a delay ends: no failure counted, attempts start over. */
    assert_int_equal(af_queue_reschedule(f->q, "park", "other", fake_now + 500, &err), AF_ESTATE);
    assert_int_equal(af_queue_reschedule(f->q, "park", "w", fake_now + 500, &err), 0);
    assert_int_equal(af_queue_reschedule(f->q, "park", "w", fake_now + 500, &err), AF_ESTATE);
    assert_int_equal(af_queue_reschedule(f->q, "missing", "w", 0, &err), AF_ESTATE);
    assert_int_equal(af_queue_get(f->q, "park", &j, &err), 0);
    assert_int_equal(j.attempts, 0);
    assert_int_equal(j.run_at, fake_now + 500);
    assert_string_equal(j.lease_owner, "");
    assert_string_equal(j.last_error, "flaky"); /* kept */
    af_job_clear(&j);
    assert_null(take(f->q, "w", 1000, NULL));
    fake_now += 500;
    assert_string_equal(take(f->q, "w", 1000, &j), "park");
    assert_int_equal(j.attempts, 1);
    af_job_clear(&j);
    /* Its attempts were reset: a failure now is retried, not dead-lettered. */
    int dead = -1;
    assert_int_equal(af_queue_fail(f->q, "park", "w", "again", 0, &dead, &err), 0);
    assert_int_equal(dead, 0);
    /* run_at <= 0 means now. */
    assert_string_equal(take(f->q, "w", 1000, NULL), "park");
    assert_int_equal(af_queue_reschedule(f->q, "park", "w", 0, &err), 0);
    assert_string_equal(take(f->q, "w", 1000, NULL), "park");
}

/* The new writes join a store transaction like enqueue does. */
static void test_new_calls_in_transaction(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    put(f->q, "t1", 0, 0, 0);
    put(f->q, "t2", 0, 0, 0);
    assert_int_equal(af_queue_claim(f->q, "t2", "w", 1000, NULL, &err), 0);
    assert_int_equal(af_store_begin(f->s, &err), 0);
    assert_int_equal(af_queue_claim(f->q, "t1", "w", 1000, NULL, &err), 0);
    assert_int_equal(af_queue_reschedule(f->q, "t2", "w", fake_now + 99, &err), 0);
    assert_int_equal(af_queue_remove(f->q, "t1", &err), 0);
    int n = -1;
    assert_int_equal(af_queue_release_all(f->q, NULL, &n, &err), 0);
    assert_int_equal(n, 0);
    af_store_rollback(f->s);
    af_job_t j;
    assert_int_equal(af_queue_get(f->q, "t1", &j, &err), 0);
    assert_string_equal(j.lease_owner, "");
    af_job_clear(&j);
    assert_int_equal(af_queue_get(f->q, "t2", &j, &err), 0);
    assert_string_equal(j.lease_owner, "w");
    assert_int_equal(j.attempts, 1);
    af_job_clear(&j);
    /* Nested (a savepoint) and committed. */
    assert_int_equal(af_store_begin(f->s, &err), 0);
    assert_int_equal(af_store_begin(f->s, &err), 0);
    assert_int_equal(af_queue_heartbeat_all(f->q, "w", 7000, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(af_queue_remove(f->q, "t1", &err), 0);
    assert_int_equal(af_store_commit(f->s, &err), 0);
    assert_int_equal(af_store_commit(f->s, &err), 0);
    assert_int_equal(af_queue_get(f->q, "t1", &j, &err), AF_ENOTFOUND);
    assert_int_equal(af_queue_get(f->q, "t2", &j, &err), 0);
    assert_int_equal(j.lease_until, fake_now + 7000);
    af_job_clear(&j);
}

/* ---- two workers, two connections ----------------------------------------------------------- */

enum { JOBS = 600 };

typedef struct {
    const char *dir;
    char worker[16];
    char (*ids)[AF_QUEUE_ID_MAX];
    int n;
    int errors;
    pthread_barrier_t *start;
} worker_t;

static void *worker_main(void *arg) {
    worker_t *w = arg;
    af_store_t *s = open_store(w->dir, 0); /* its own connection, real clock */
    af_queue_t *q = af_store_queue(s);
    pthread_barrier_wait(w->start); /* both connections open: claims race from here */
    for (;;) {
        af_job_t j;
        af_error_t err = {0};
        int rc = af_queue_dequeue(q, "work", w->worker, 60000, &j, &err);
        if (rc == AF_ENOTFOUND) {
            break;
        }
        if (rc != 0) {
            w->errors++;
            continue;
        }
        snprintf(w->ids[w->n++], AF_QUEUE_ID_MAX, "%s", j.id);
        usleep(100); /* "work": lets the other worker claim meanwhile */
        if (af_queue_complete(q, j.id, w->worker, &err) != 0) {
            w->errors++;
        }
        af_job_clear(&j);
    }
    af_store_close(s);
    return NULL;
}

static void test_two_workers(void **state) {
    fx_t *f = *state;
    af_error_t err = {0};
    assert_int_equal(af_store_begin(f->s, &err), 0);
    for (int i = 0; i < JOBS; i++) {
        char id[32];
        snprintf(id, sizeof id, "j%04d", i);
        put(f->q, id, i % 3, 1, 0); /* due since the epoch: the workers use the real clock */
    }
    assert_int_equal(af_store_commit(f->s, &err), 0);

    static char ids[2][JOBS][AF_QUEUE_ID_MAX];
    worker_t w[2];
    pthread_t th[2];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    for (int i = 0; i < 2; i++) {
        w[i] = (worker_t){.dir = f->dir, .ids = ids[i], .start = &start};
        snprintf(w[i].worker, sizeof w[i].worker, "worker-%d", i);
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
    }
    pthread_barrier_destroy(&start);
    print_message("worker-0 took %d, worker-1 took %d\n", w[0].n, w[1].n);
    assert_int_equal(w[0].errors + w[1].errors, 0);
    assert_true(w[0].n > 0 && w[1].n > 0); /* they really competed */
    assert_int_equal(w[0].n + w[1].n, JOBS);
    static unsigned char seen[JOBS];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < w[i].n; k++) {
            int idx = atoi(ids[i][k] + 1);
            assert_true(idx >= 0 && idx < JOBS);
            assert_int_equal(seen[idx], 0); /* claimed once */
            seen[idx] = 1;
        }
    }
    int64_t ready = -1, leased = -1;
    assert_int_equal(af_queue_count(f->q, NULL, &ready, &leased, NULL, &err), 0);
    assert_int_equal(ready + leased, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ordering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_heartbeat_reap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attempts_dead_letter_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enqueue_in_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enqueue_leased, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_get_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reschedule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_calls_in_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_workers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
