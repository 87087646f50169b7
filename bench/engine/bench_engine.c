/* bench_engine.c -- the engine benchmark (see bench/README.md).
 *
 *   usage: bench_engine AGENTFLOW_BIN REPO_ROOT
 *
 * Runs the `agentflow` binary on the fixtures in REPO_ROOT/bench/engine/ and prints one line per
 * figure, with its target:
 *
 *   chain_10k_per_step_us   execution duration_ms of a 10,000-step linear chain / 10,000, in us
 *                           (median of 5 runs)
 *   fanout_1k_join_ms       execution duration_ms of 1 root -> 1,000 steps -> 1 join
 *                           (median of 5 runs)
 *   cold_start_ms           wall time of fork/exec/wait of `agentflow run --quiet` on a
 *                           3-step workflow (median of 20 runs, after one unmeasured warm-up)
 *   cold_start_peak_rss_mb  ru_maxrss from wait4() over those 20 runs (max), in MiB
 *
 * duration_ms is the execution record's own figure (`agentflow run --quiet --json FILE`), so (a)
 * and (b) leave out process start-up, script loading and the printing of the record.
 *
 * Exits 0 whatever the timings (benchmarks never fail on timings); only a usage error exits 2.
 * Needs only libc/POSIX and jansson (for the record). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define CHAIN_STEPS    10000
#define FANOUT_WIDTH   1000
#define ENGINE_RUNS    5
#define COLD_RUNS      20
#define RUN_TIMEOUT_MS 300000 /* one agentflow run; killed after this */

/* Targets. */
#define TARGET_CHAIN_US  5.0
#define TARGET_FANOUT_MS 10.0
#define TARGET_COLD_MS   20.0
#define TARGET_RSS_MB    20.0

typedef struct {
    char *out; /* the child's stdout, NUL-terminated (malloc'd) */
    size_t len;
    int status;       /* from wait4() */
    struct rusage ru; /* from wait4() */
    double wall_ms;   /* fork .. wait4 returned */
    int timed_out;
} run_t;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Runs argv[0] with argv; stdin and stderr are /dev/null, stdout is captured. Returns 0 when
 * the child was started and reaped (see r->status), -1 on a system error. */
static int run_child(char *const argv[], run_t *r) {
    memset(r, 0, sizeof *r);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        perror("bench_engine: pipe");
        return -1;
    }
    double t0 = now_ms();
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench_engine: fork");
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
            dup2(devnull, STDERR_FILENO);
        }
        dup2(fds[1], STDOUT_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);

    size_t cap = 1 << 16;
    r->out = malloc(cap);
    double deadline = t0 + RUN_TIMEOUT_MS;
    for (;;) {
        if (r->len + 4096 > cap) {
            cap *= 2;
            r->out = realloc(r->out, cap);
        }
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        int left = (int)(deadline - now_ms());
        if (left <= 0) {
            kill(pid, SIGKILL);
            r->timed_out = 1;
            break;
        }
        int n = poll(&p, 1, left);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n == 0) {
            continue; /* deadline check above */
        }
        ssize_t got = read(fds[0], r->out + r->len, cap - r->len - 1);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            break;
        }
        r->len += (size_t)got;
    }
    r->out[r->len] = '\0';
    close(fds[0]);
    while (wait4(pid, &r->status, 0, &r->ru) < 0) {
        if (errno != EINTR) {
            perror("bench_engine: wait4");
            return -1;
        }
    }
    r->wall_ms = now_ms() - t0;
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static const char *why_failed(const run_t *r, char *buf, size_t size) {
    if (r->timed_out) {
        snprintf(buf, size, "timed out after %d s", RUN_TIMEOUT_MS / 1000);
    } else if (WIFEXITED(r->status)) {
        snprintf(buf, size, "exit status %d", WEXITSTATUS(r->status));
    } else if (WIFSIGNALED(r->status)) {
        snprintf(buf, size, "killed by signal %d", WTERMSIG(r->status));
    } else {
        snprintf(buf, size, "wait status %d", r->status);
    }
    return buf;
}

/* One `agentflow run --quiet --json FILE`: the execution's duration_ms, after checking that it
 * succeeded and that result[result_key] == want. Returns 0 or -1 (with a message in err). */
static int engine_run(const char *bin, const char *file, const char *result_key, long long want,
                      double *duration_ms, char *err, size_t errsize) {
    char *argv[] = {(char *)bin, "run", "--quiet", "--json", (char *)file, NULL};
    run_t r;
    if (run_child(argv, &r) != 0) {
        snprintf(err, errsize, "could not run %.300s", bin);
        free(r.out);
        return -1;
    }
    int rc = -1;
    json_error_t jerr;
    json_t *rec = NULL;
    if (r.timed_out || !WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0) {
        char why[64];
        snprintf(err, errsize, "agentflow run %.300s: %s", file, why_failed(&r, why, sizeof why));
        goto done;
    }
    rec = json_loadb(r.out, r.len, 0, &jerr);
    if (rec == NULL) {
        snprintf(err, errsize, "agentflow run --json %.300s: bad JSON: %.150s", file, jerr.text);
        goto done;
    }
    json_t *d = json_object_get(rec, "duration_ms");
    if (!json_is_number(d)) {
        snprintf(err, errsize, "agentflow run --json %.300s: no \"duration_ms\" in the record",
                 file);
        goto done;
    }
    json_t *got = json_object_get(json_object_get(rec, "result"), result_key);
    if (!json_is_integer(got) || json_integer_value(got) != want) {
        char *text = got ? json_dumps(got, JSON_ENCODE_ANY) : NULL;
        snprintf(err, errsize, "agentflow run %.300s: result.%s is %.60s, expected %lld", file,
                 result_key, text ? text : "missing", want);
        free(text);
        goto done;
    }
    *duration_ms = json_number_value(d);
    rc = 0;
done:
    json_decref(rec);
    free(r.out);
    return rc;
}

static void print_figure(const char *name, double value, const char *unit_fmt, double target,
                         const char *detail) {
    printf("%-24s ", name);
    printf(unit_fmt, value);
    printf(" (target <= %g) %s", target, value <= target ? "ok" : "MISSED");
    if (detail && *detail) {
        printf("  [%s]", detail);
    }
    putchar('\n');
    fflush(stdout);
}

static void print_failed(const char *name, const char *why) {
    printf("%-24s FAILED (%s)\n", name, why);
    fflush(stdout);
}

/* (a) and (b): median of ENGINE_RUNS executions' duration_ms, divided by `per`. */
static void bench_engine_figure(const char *name, const char *bin, const char *file,
                                const char *result_key, long long want, double scale,
                                const char *unit_fmt, double target) {
    double v[ENGINE_RUNS];
    char err[512];
    for (int i = 0; i < ENGINE_RUNS; i++) {
        double ms;
        if (engine_run(bin, file, result_key, want, &ms, err, sizeof err) != 0) {
            print_failed(name, err);
            return;
        }
        v[i] = ms * scale;
    }
    double med = median(v, ENGINE_RUNS);
    char detail[128];
    char fmt[64];
    snprintf(fmt, sizeof fmt, "%%d runs: min %s max %s", unit_fmt, unit_fmt);
    snprintf(detail, sizeof detail, fmt, ENGINE_RUNS, v[0], v[ENGINE_RUNS - 1]);
    print_figure(name, med, unit_fmt, target, detail);
}

/* (c) and (d). Measured first, while this process is still small: the kernel folds the RSS a
 * forked child had before exec() (a copy of ours) into its ru_maxrss, so our own resident
 * anonymous memory at fork time is a floor under (d). It is reported next to (d). */
typedef struct {
    int ok;
    char err[256];
    double wall_ms[COLD_RUNS];
    long max_rss_kb, self_rss_kb;
} cold_t;

static void measure_cold_start(const char *bin, const char *file, cold_t *c) {
    char *argv[] = {(char *)bin, "run", "--quiet", (char *)file, NULL};
    char why[64];
    memset(c, 0, sizeof *c);
    for (int i = -1; i < COLD_RUNS; i++) { /* run -1: warm-up (page cache), not counted */
        run_t r;
        int started = run_child(argv, &r) == 0;
        if (!started || r.timed_out || !WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0) {
            snprintf(c->err, sizeof c->err, "agentflow run --quiet %.150s: %s", file,
                     started ? why_failed(&r, why, sizeof why) : "could not run it");
            free(r.out);
            return;
        }
        free(r.out);
        if (i >= 0) {
            c->wall_ms[i] = r.wall_ms;
            if (r.ru.ru_maxrss > c->max_rss_kb) {
                c->max_rss_kb = r.ru.ru_maxrss; /* kilobytes on Linux */
            }
        }
    }
    struct rusage self;
    getrusage(RUSAGE_SELF, &self);
    c->self_rss_kb = self.ru_maxrss;
    c->ok = 1;
}

static void print_cold_start(cold_t *c) {
    if (!c->ok) {
        print_failed("cold_start_ms", c->err);
        print_failed("cold_start_peak_rss_mb", c->err);
        return;
    }
    double med = median(c->wall_ms, COLD_RUNS);
    char detail[160];
    snprintf(detail, sizeof detail, "%d runs: min %.2f max %.2f", COLD_RUNS, c->wall_ms[0],
             c->wall_ms[COLD_RUNS - 1]);
    print_figure("cold_start_ms", med, "%.2f", TARGET_COLD_MS, detail);
    snprintf(detail, sizeof detail, "ru_maxrss %ld KiB, max of %d runs; bench process %ld KiB",
             c->max_rss_kb, COLD_RUNS, c->self_rss_kb);
    print_figure("cold_start_peak_rss_mb", (double)c->max_rss_kb / 1024.0, "%.1f", TARGET_RSS_MB,
                 detail);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s AGENTFLOW_BIN REPO_ROOT\n", argv[0]);
        return 2;
    }
    const char *bin = argv[1], *root = argv[2];
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "bench_engine: %s: not an executable (build it first)\n", bin);
        return 2;
    }
    char chain[4096], fanout[4096], three[4096];
    snprintf(chain, sizeof chain, "%s/bench/engine/chain.lua", root);
    snprintf(fanout, sizeof fanout, "%s/bench/engine/fanout.lua", root);
    snprintf(three, sizeof three, "%s/bench/engine/three_steps.lua", root);
    const char *fixtures[] = {chain, fanout, three};
    for (int i = 0; i < 3; i++) {
        if (access(fixtures[i], R_OK) != 0) {
            fprintf(stderr, "bench_engine: %s: %s (is %s the repo root?)\n", fixtures[i],
                    strerror(errno), root);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);

    printf("# agentflow engine benchmark: %s, %ld cores\n", bin, sysconf(_SC_NPROCESSORS_ONLN));
    fflush(stdout);
    static cold_t cold;
    measure_cold_start(bin, three, &cold);
    /* duration_ms (ms) * 1000 / steps = us per step */
    bench_engine_figure("chain_10k_per_step_us", bin, chain, "s10000", CHAIN_STEPS,
                        1000.0 / CHAIN_STEPS, "%.2f", TARGET_CHAIN_US);
    bench_engine_figure("fanout_1k_join_ms", bin, fanout, "join", FANOUT_WIDTH, 1.0, "%.2f",
                        TARGET_FANOUT_MS);
    print_cold_start(&cold);
    return 0;
}
