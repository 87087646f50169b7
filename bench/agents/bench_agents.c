/* bench_agents.c -- (a) N concurrent executions of a one-agent-step workflow against the mock LLM
 * answering each request after a delay: wall time until all finish, peak RSS and bytes per
 * in-flight execution; (b) per-call overhead of a plugin node versus a Lua transform, on
 * 10,000-step chains. Prints figures next to their targets; never fails on timings.
 * Usage: bench_agents BUILD_DIR [N=10000] [DELAY_MS=1000] */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/proc_status.h"
#include "dsl/dsl.h"
#include "engine/engine.h"
#include "net/http.h"
#include "nodes/nodes.h"
#include "plugin/plugin.h"

static uv_loop_t loop;
static af_http_client_t *client;
static int done_count, ok_count;

static int http_request(void *ud, const af_http_request_t *req, af_http_done_fn done, void *cb_ud,
                        af_http_t **handle) {
    (void)ud;
    return af_http_client_request(client, req, done, cb_ud, handle);
}

static void http_cancel(void *ud, af_http_t *h) {
    (void)ud;
    af_http_client_cancel(h);
}

static const char *env_secret(void *ud, const char *name) {
    (void)ud;
    return getenv(name);
}

static void on_done(af_exec_t *x, void *ud) {
    (void)ud;
    done_count++;
    ok_count += af_exec_status(x) == AF_EXEC_SUCCEEDED;
    af_exec_free(x);
}

static long rss_kb(void) {
    long kb = proc_rss_kb(0);
    return kb > 0 ? kb : 0;
}

static long peak_kb;
static void sample_rss(uv_timer_t *t) {
    (void)t;
    long kb = rss_kb();
    peak_kb = kb > peak_kb ? kb : peak_kb;
}

static pid_t start_mock(const char *build, int *port) {
    int fds[2];
    if (pipe(fds) != 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        char bin[1024];
        snprintf(bin, sizeof bin, "%s/spec/tools/af-mockserver", build);
        execl(bin, bin, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[64] = "";
    if (f == NULL || fgets(line, sizeof line, f) == NULL || sscanf(line, "port=%d", port) != 1) {
        return -1;
    }
    return pid;
}

static const char *write_file(const char *name, const char *text) {
    static char path[256];
    snprintf(path, sizeof path, "/tmp/bench-agents-%d-%s", (int)getpid(), name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static double run_one(af_engine_t *e, const char *file) {
    af_exec_t *x = NULL;
    af_error_t err;
    int before = done_count;
    if (af_exec_start_file(e, file, NULL, NULL, NULL, &x, &err) != 0) {
        fprintf(stderr, "bench: %s: %s\n", err.where, err.msg);
        return -1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    (void)before;
    json_t *rec = af_exec_to_json(x);
    double ms = json_number_value(json_object_get(rec, "duration_ms"));
    int ok = af_exec_status(x) == AF_EXEC_SUCCEEDED;
    json_decref(rec);
    af_exec_free(x);
    return ok ? ms : -1;
}

static void chain_overhead(af_engine_t *e) {
    static char src[4096];
    const char *kinds[2][2] = {
        {"lua", "function(ctx) return (ctx.steps[prev] or 0) + 1 end"},
        {"plugin", "af.node 'fixture.echo' { n = i }"},
    };
    double per[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        snprintf(
            src, sizeof src,
            "local af = require 'agentflow'\n"
            "local wf = af.workflow 'chain' { limits = { instructions = 1e9, memory = '512MB' } }\n"
            "local prev_step\n"
            "for i = 1, 10000 do\n"
            "  local prev = prev_step and prev_step.name\n"
            "  prev_step = wf:step('s' .. i, %s, { after = prev_step })\n"
            "end\n"
            "return wf\n",
            kinds[k][1]);
        const char *file = write_file("chain.lua", src);
        double best = -1;
        for (int run = 0; run < 3; run++) {
            double ms = run_one(e, file);
            best = best < 0 || (ms >= 0 && ms < best) ? ms : best;
        }
        per[k] = best * 1000.0 / 10000.0;
        printf("chain_10k_%s_per_step_us %.2f\n", kinds[k][0], per[k]);
        unlink(file);
    }
    printf("plugin_node_overhead_vs_lua_us %.2f (a .so node call, JSON text both ways)\n",
           per[1] - per[0]);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_agents BUILD_DIR [N] [DELAY_MS]\n");
        return 2;
    }
    const char *build = argv[1];
    int n = argc > 2 ? atoi(argv[2]) : 10000;
    int delay = argc > 3 ? atoi(argv[3]) : 1000;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int port = 0;
    pid_t mock = start_mock(build, &port);
    if (mock < 0) {
        fprintf(stderr, "bench: cannot start af-mockserver from %s\n", build);
        return 2;
    }
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", port);
    setenv("OPENAI_BASE_URL", url, 1);
    setenv("OPENAI_API_KEY", "sk-bench", 1);

    af_error_t err;
    uv_loop_init(&loop);
    client = af_http_client_new(&loop);
    af_plugins_opts_t po = {.loop = &loop,
                            .load_lua = af_lua_plugin_load,
                            .http_request = http_request,
                            .http_cancel = http_cancel};
    char dir[1024];
    af_lua_plugins_set_loop(&loop);
    if (af_nodes_register(&err) != 0 || af_plugins_init(&po, &err) != 0) {
        return 2;
    }
    snprintf(dir, sizeof dir, "%s/plugins", build);
    af_plugins_load_dir(dir, NULL, NULL);
    snprintf(dir, sizeof dir, "%s/spec/plugins/fixture-good.so", build);
    af_plugin_load(dir, &err); /* for the plugin-node chain; absent without tests */

    af_engine_opts_t eo = {.loop = &loop, .secret = env_secret};
    af_engine_t *e = af_engine_new(&eo);
    char src[512];
    snprintf(src, sizeof src,
             "local af = require 'agentflow'\n"
             "local wf = af.workflow 'one-agent' {}\n"
             "wf:step('ask', af.agent { model = 'openai:mock-1', prompt = '#delay %d\\nhello' })\n"
             "return wf\n",
             delay);
    const char *file = write_file("agent.lua", src);
    long base_kb = rss_kb();
    uv_timer_t sampler;
    uv_timer_init(&loop, &sampler);
    uv_timer_start(&sampler, sample_rss, 20, 20);
    double t0 = af_mono_ms();
    for (int i = 0; i < n; i++) {
        af_exec_t *x;
        if (af_exec_start_file(e, file, NULL, on_done, NULL, &x, &err) != 0) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return 2;
        }
    }
    double started = af_mono_ms() - t0;
    while (done_count < n && uv_run(&loop, UV_RUN_ONCE)) {
    }
    double wall = af_mono_ms() - t0;
    uv_timer_stop(&sampler);
    uv_close((uv_handle_t *)&sampler, NULL);
    sample_rss(NULL);
    printf("# agentflow agents benchmark: %d executions, mock LLM answering after %d ms\n", n,
           delay);
    printf("agents_completed %d/%d (succeeded %d)\n", done_count, n, ok_count);
    printf("agents_wall_s %.2f (target <= 5; starting them took %.2f s)\n", wall / 1000,
           started / 1000);
    printf("agents_peak_rss_mb %.0f (target <= 500)\n", peak_kb / 1024.0);
    printf("agents_bytes_per_execution %.0f\n", (double)(peak_kb - base_kb) * 1024.0 / n);
    unlink(file);
    if (af_registry_find("fixture.echo")) {
        chain_overhead(e);
    }
    af_engine_free(e);
    af_plugins_shutdown();
    af_http_client_free(client);
    uv_run(&loop, UV_RUN_DEFAULT);
    kill(mock, SIGTERM);
    waitpid(mock, NULL, 0);
    return 0;
}
