/* bench_scheduler.c -- bench/triggers (a), the scheduler alone: N schedules, each firing once a
 * minute at a random second ("S * * * * *"), driven by a libuv timer on the wall clock as the
 * server will drive it. Prints the lag from due time to the fire callback (p50, p99, max) and the
 * CPU the process used per second of wall time while it ran (the scheduler is all it does).
 *   bench_scheduler [N=100000] [SECONDS=30] */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <uv.h>

#include "triggers/scheduler.h"

typedef struct {
    af_scheduler_t *s;
    uv_timer_t timer;
    int64_t end_ms;
    double *lags;
    size_t n, cap;
} bench_t;

static void fired(void *ud, const char *id, int64_t due, int catchup) {
    bench_t *b = ud;
    (void)id;
    (void)catchup;
    if (b->n < b->cap) {
        b->lags[b->n++] = (double)(af_wall_ms() - due);
    }
}

static void arm(bench_t *b);

static void on_timer(uv_timer_t *t) {
    bench_t *b = t->data;
    af_scheduler_run(b->s, af_wall_ms(), fired, b);
    if (af_wall_ms() < b->end_ms) {
        arm(b);
    }
}

static void arm(bench_t *b) {
    int64_t wait = af_scheduler_next_due(b->s) - af_wall_ms();
    uv_timer_start(&b->timer, on_timer, (uint64_t)(wait > 0 ? wait : 0), 0);
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 100000;
    int secs = argc > 2 ? atoi(argv[2]) : 30;
    bench_t b = {.s = af_scheduler_new(), .cap = (size_t)n * (size_t)(secs / 60 + 2)};
    b.lags = malloc(b.cap * sizeof *b.lags);
    srand(42);
    int64_t now = af_wall_ms();
    char id[32], json[64];
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "trigger-%d", i);
        snprintf(json, sizeof json, "{\"cron\": \"%d * * * * *\"}", rand() % 60);
        json_t *c = json_loads(json, 0, NULL);
        af_error_t err = {0};
        if (af_scheduler_put(b.s, id, c, 0, now, &err) != 0) {
            fprintf(stderr, "put: %s\n", err.msg);
            return 1;
        }
        json_decref(c);
    }
    double setup_s = (double)(af_wall_ms() - now) / 1000;
    uv_loop_t *loop = uv_default_loop();
    uv_timer_init(loop, &b.timer);
    b.timer.data = &b;
    double cpu0 = cpu_s();
    int64_t t0 = af_wall_ms();
    b.end_ms = t0 + (int64_t)secs * 1000;
    arm(&b);
    uv_run(loop, UV_RUN_DEFAULT);
    double wall = (double)(af_wall_ms() - t0) / 1000, cpu = cpu_s() - cpu0;
    qsort(b.lags, b.n, sizeof *b.lags, by_value);
    double p50 = b.n ? b.lags[b.n / 2] : 0, p99 = b.n ? b.lags[b.n * 99 / 100] : 0;
    printf("# bench/triggers (a): %d schedules, each once a minute at a random second\n", n);
    printf("schedules                %d (added in %.2f s)\n", n, setup_s);
    printf("fires                    %zu in %.1f s\n", b.n, wall);
    printf("lag_p50_ms               %.1f\n", p50);
    printf("lag_p99_ms               %.1f (target <= 100)\n", p99);
    printf("lag_max_ms               %.1f\n", b.n ? b.lags[b.n - 1] : 0);
    printf("scheduler_cpu_pct        %.2f (target <= 10 of one core)\n", 100 * cpu / wall);
    af_scheduler_free(b.s);
    free(b.lags);
    return 0;
}
