/* main.c -- the `agentflow` command line: run, check, --help, --version.
 * Exit codes: 0 success, 1 the workflow failed, 2 usage or definition error. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/file.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/core.h"
#include "dsl/dsl.h"
#include "engine/engine.h"
#include "graph/graph.h"
#include "nodes/nodes.h"
#include "api/api.h"
#include "net/http.h"
#include "net/http_server.h"
#include "core/clock.h"
#include "core/config.h"
#include "engine/worker.h"
#include "store/store_async.h"
#include "plugin/plugin.h"
#include "cli/execute.h"
#include "cli/input.h"
#include "triggers/schedule.h"

#include <luajit.h>

#define EXIT_FAILED 1
#define EXIT_USAGE  2

static const char *USAGE =
    "usage: agentflow [--version] [--help] COMMAND [ARGS]\n"
    "\n"
    "Runs AI-agent workflows written in Lua.\n"
    "\n"
    "commands:\n"
    "  run FILE.lua     run a workflow once, in this process\n"
    "  check FILE.lua   validate a workflow and print its graph\n"
    "  serve            run the REST API with embedded storage (SQLite in --data DIR)\n"
    "  execute WF       run a stored workflow on a running server (--server URL)\n"
    "  plugin list      the loaded plugins, their versions and types\n"
    "  plugin info TYPE a node or trigger type's description and config schema\n"
    "\n"
    "--plugins DIR (any command, repeatable) loads plugins (.so, .lua) from DIR as well as from\n"
    "the default directories ($AGENTFLOW_PLUGIN_PATH, else <bin>/plugins and\n"
    "<bin>/../lib/agentflow/plugins).\n"
    "\n"
    "`agentflow COMMAND --help` shows a command's options. Docs: docs/cli.md, docs/dsl.md.\n";

static const char *RUN_USAGE =
    "usage: agentflow run FILE.lua [--input JSON | --input @FILE.json] [--json] [--quiet]\n"
    "                     [--max-instructions N] [--max-memory SIZE]\n"
    "\n"
    "Loads the workflow, runs it once and prints its result (JSON) on stdout; a per-step\n"
    "progress log (step, status, attempt, duration) goes to stderr.\n"
    "\n"
    "  --input JSON        the trigger input (ctx.trigger); @FILE reads it from a file;\n"
    "                      default: the workflow's sample_input, else {}\n"
    "  --json              print the whole execution record instead of the result\n"
    "  --quiet             no progress log\n"
    "  --max-instructions  Lua instruction budget of the execution (default 200000000)\n"
    "  --max-memory        Lua memory budget of the execution, e.g. 64MB (default)\n"
    "\n"
    "Secrets (af.secret \"NAME\") are read from the environment variable NAME.\n"
    "exit status: 0 succeeded, 1 the workflow failed, 2 usage or definition error\n";

static const char *PLUGIN_USAGE =
    "usage: agentflow plugin list [--json] [--plugins DIR]...\n"
    "       agentflow plugin info TYPE [--plugins DIR]...\n"
    "\n"
    "list: each plugin with its version, kind (c or lua), file and types.\n"
    "info: a node or trigger type's plugin, description and config schema (JSON Schema).\n";

static const char *SERVE_USAGE =
    "usage: agentflow serve [--listen HOST:PORT] [--data DIR] [--durability normal|strict]\n"
    "                       [--config FILE] [--print-config]\n"
    "\n"
    "Serves the REST API (docs/api.md), webhooks and the workers, with the storage in\n"
    "DIR/agentflow.db (SQLite, WAL). Settings come from FILE (or $AGENTFLOW_CONFIG), then the\n"
    "AGENTFLOW_* environment, then these flags (docs/operations.md lists them all).\n"
    "  --listen        address to listen on (default 127.0.0.1:8080; port 0 picks a free one)\n"
    "  --data          data directory (default ./agentflow-data; created when missing)\n"
    "  --durability    normal: survives any process crash (default); strict: also power loss\n"
    "  --config        a config file (TOML subset: [section] and key = value lines)\n"
    "  --print-config  prints the effective settings and where each came from, then exits\n";

static const char *CHECK_USAGE =
    "usage: agentflow check FILE.lua [--format text|json|dot]\n"
    "\n"
    "Validates the workflow (syntax, node types, dependencies, cycles, config) and prints its\n"
    "graph: steps, edges and triggers. `dot` output renders with Graphviz (dot -Tsvg).\n"
    "exit status: 0 valid, 2 usage or definition error\n";

typedef struct run_opts_s {
    const char *file, *input;
    int json, quiet;
    int64_t max_instructions;
    size_t max_memory;
} run_opts_t;

static int usage_error(const char *usage, const char *fmt, const char *arg) {
    fprintf(stderr, "agentflow: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", usage);
    return EXIT_USAGE;
}

static int print_error(const af_error_t *err) {
    char text[1400];
    fprintf(stderr, "agentflow: error: %s\n", af_error_text(err, text, sizeof text));
    return EXIT_USAGE;
}

/* ---- progress log ---- */

static void on_event(void *ud, const af_event_t *ev) {
    const run_opts_t *o = ud;
    if (o->quiet) {
        return;
    }
    char d[32], d2[32];
    int ind = 2 + 4 * ev->depth;
    switch (ev->kind) {
    case AF_EV_EXEC_START:
        fprintf(stderr, "%*s%s %s  execution %s\n", ind - 2, "", ev->depth ? "call" : "run",
                ev->workflow, ev->execution_id);
        break;
    case AF_EV_STEP_START:
        break;
    case AF_EV_STEP_END:
        if (ev->status == AF_STEP_SKIPPED || ev->attempt == 0) {
            fprintf(stderr, "%*s%-10s %-24s\n", ind, "", af_step_status_name(ev->status), ev->step);
            break;
        }
        fprintf(stderr, "%*s%-10s %-24s attempt %d  %s", ind, "", af_step_status_name(ev->status),
                ev->step, ev->attempt, af_duration_format(ev->duration_ms, d, sizeof d));
        if (ev->port) {
            fprintf(stderr, "  -> %s", ev->port);
        }
        if (ev->error) {
            fprintf(stderr, "  %s", ev->error);
        }
        fputc('\n', stderr);
        break;
    case AF_EV_STEP_RETRY:
        fprintf(stderr, "%*s%-10s %-24s attempt %d  %s  %s; retrying in %s\n", ind, "", "retry",
                ev->step, ev->attempt, af_duration_format(ev->duration_ms, d, sizeof d),
                ev->error ? ev->error : "",
                af_duration_format((double)ev->retry_in_ms, d2, sizeof d2));
        break;
    case AF_EV_LOG:
        fprintf(stderr, "%*s| %s%s%s\n", ind, "", ev->step ? ev->step : "", ev->step ? ": " : "",
                ev->text);
        break;
    case AF_EV_EXEC_END:
        fprintf(stderr, "%*s%s %s in %s%s%s\n", ind - 2, "",
                af_exec_status_name((af_exec_status_t)ev->attempt), ev->workflow,
                af_duration_format(ev->duration_ms, d, sizeof d), ev->error ? ": " : "",
                ev->error ? ev->error : "");
        break;
    }
}

static const char *env_secret(void *ud, const char *name) {
    (void)ud;
    return getenv(name);
}

/* ---- plugins ---- */

static int is_help(const char *a);

#define MAX_PLUGIN_DIRS 32

static const char *plugin_dirs[MAX_PLUGIN_DIRS];
static int nplugin_dirs;

static void plugin_refused(const af_error_t *err, void *ud) {
    (void)ud;
    fprintf(stderr, "agentflow: warning: plugin refused: %s\n", err->msg);
}

/* Takes `--plugins DIR` out of argv (any position after the command). */
static int take_plugin_dirs(int *argc, char **argv) {
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--plugins") == 0) {
            if (i + 1 == *argc || nplugin_dirs == MAX_PLUGIN_DIRS) {
                fprintf(stderr, "agentflow: --plugins needs a directory\n");
                return EXIT_USAGE;
            }
            plugin_dirs[nplugin_dirs++] = argv[++i];
        } else {
            argv[out++] = argv[i];
        }
    }
    *argc = out;
    return 0;
}

static af_http_client_t *http_client;

/* The client (and with it libcurl and OpenSSL) starts with the first request: most runs make
 * none, and starting them costs more than the rest of a cold start. */
static int http_request(void *ud, const af_http_request_t *req, af_http_done_fn done, void *cb_ud,
                        af_http_t **handle) {
    if (http_client == NULL && (http_client = af_http_client_new(ud)) == NULL) {
        return AF_ERR;
    }
    return af_http_client_request(http_client, req, done, cb_ud, handle);
}

static void http_cancel(void *ud, af_http_t *handle) {
    (void)ud;
    af_http_client_cancel(handle);
}

static af_api_t *serve_api; /* serve: events go to the bus; run: to the log */

static int emit_event(void *ud, af_node_call_t *call, const char *type, json_t *data) {
    (void)ud;
    if (serve_api) {
        return af_api_emit(serve_api, call ? call->root_execution_id : NULL,
                           call ? call->event_depth : 0, type, data);
    }
    char *text = af_json_dumps(data, 0);
    if (call && call->log) {
        char line[1200];
        snprintf(line, sizeof line, "event %s %.1000s (no subscribers in run mode)", type,
                 text ? text : "");
        call->log(call, line);
    }
    free(text);
    return 0;
}

static int load_plugins(uv_loop_t *loop) {
    af_error_t err = {0};
    af_lua_plugins_set_loop(loop);
    af_plugins_opts_t po = {.loop = loop,
                            .load_lua = af_lua_plugin_load,
                            .http_request = http_request,
                            .http_cancel = http_cancel,
                            .emit_event = emit_event,
                            .ud = loop};
    if (af_plugins_init(&po, &err) != 0) {
        return print_error(&err);
    }
    const char *defaults[8];
    int n = af_plugins_default_dirs(defaults, 8);
    for (int i = 0; i < n; i++) {
        af_plugins_load_dir(defaults[i], plugin_refused, NULL); /* absent is fine */
    }
    for (int i = 0; i < nplugin_dirs; i++) {
        if (af_plugins_load_dir(plugin_dirs[i], plugin_refused, NULL) < 0) {
            fprintf(stderr, "agentflow: error: --plugins %s: cannot read the directory\n",
                    plugin_dirs[i]);
            return EXIT_USAGE;
        }
    }
    return 0;
}

static void unload_plugins(uv_loop_t *loop) {
    af_plugins_shutdown();
    if (http_client) {
        af_http_client_free(http_client);
        http_client = NULL;
    }
    uv_run(loop, UV_RUN_DEFAULT);
}

static int cmd_plugin(int argc, char **argv) {
    if (argc < 3 || is_help(argv[2])) {
        fputs(PLUGIN_USAGE, argc < 3 ? stderr : stdout);
        return argc < 3 ? EXIT_USAGE : 0;
    }
    int list = strcmp(argv[2], "list") == 0, info = strcmp(argv[2], "info") == 0;
    int json = argc > 3 && strcmp(argv[argc - 1], "--json") == 0;
    if (!list && !info) {
        return usage_error(PLUGIN_USAGE, "unknown plugin command '%s'", argv[2]);
    }
    if (info && argc < 4) {
        return usage_error(PLUGIN_USAGE, "%s", "plugin info needs a type name");
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    int rc = load_plugins(&loop);
    if (rc == 0 && list) {
        json_t *all = af_plugins_to_json();
        if (json) {
            char *text = af_json_dumps(all, AF_JSON_PRETTY);
            printf("%s\n", text);
            free(text);
        } else if (json_array_size(all) == 0) {
            printf("no plugins loaded\n");
        }
        size_t i;
        json_t *p;
        json_array_foreach(all, i, p) {
            if (json) {
                break;
            }
            printf("%s %s (%s)  %s\n    %s\n", json_string_value(json_object_get(p, "name")),
                   json_string_value(json_object_get(p, "version")),
                   json_string_value(json_object_get(p, "kind")),
                   json_string_value(json_object_get(p, "file")),
                   json_string_value(json_object_get(p, "description")));
            const char *kinds[] = {"nodes", "triggers"};
            for (int k = 0; k < 2; k++) {
                size_t j;
                json_t *t;
                json_array_foreach(json_object_get(p, kinds[k]), j, t) {
                    printf("    %s %s\n", k ? "trigger" : "node   ", json_string_value(t));
                }
            }
        }
        json_decref(all);
    } else if (rc == 0) {
        json_t *t = af_plugin_type_info(argv[3]);
        if (t == NULL) {
            fprintf(stderr, "agentflow: error: no node or trigger type '%s' is loaded\n", argv[3]);
            rc = EXIT_USAGE;
        } else {
            char *text = af_json_dumps(t, AF_JSON_PRETTY);
            printf("%s\n", text);
            free(text);
            json_decref(t);
        }
    }
    unload_plugins(&loop);
    uv_loop_close(&loop);
    return rc;
}

/* ---- run ---- */

static void run_done(af_exec_t *x, void *ud) {
    (void)x;
    (void)ud;
}

static int cmd_run(run_opts_t *o) {
    af_error_t err = {0};
    json_t *input = NULL;
    if (o->input && af_cli_parse_input(o->input, &input, &err) != 0) {
        return print_error(&err);
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    int prc = load_plugins(&loop);
    if (prc != 0) {
        json_decref(input);
        return prc;
    }
    af_engine_opts_t eo = {.loop = &loop,
                           .max_instructions = o->max_instructions,
                           .max_memory = o->max_memory,
                           .secret = env_secret,
                           .on_event = on_event,
                           .ud = o};
    af_engine_t *e = af_engine_new(&eo);
    af_exec_t *x = NULL;
    int rc = af_exec_start_file(e, o->file, input, run_done, NULL, &x, &err);
    json_decref(input);
    if (rc != 0) {
        af_engine_free(e);
        unload_plugins(&loop);
        uv_loop_close(&loop);
        return print_error(&err);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    json_t *out = o->json ? af_exec_to_json(x) : af_exec_result(x);
    char *text = af_json_dumps(out, AF_JSON_PRETTY);
    printf("%s\n", text ? text : "null");
    free(text);
    json_decref(out);
    int status = af_exec_status(x) == AF_EXEC_SUCCEEDED ? 0 : EXIT_FAILED;
    af_exec_free(x);
    af_engine_free(e);
    unload_plugins(&loop); /* and let closed handles finish */
    uv_loop_close(&loop);
    return status;
}

/* ---- check ---- */

/* When each schedule fires next (three times, from now): after the graph in text, as
 * "next_runs" in each schedule trigger's JSON. */
static void check_next_runs(const af_graph_t *g, json_t *triggers_json) {
    int64_t now = af_wall_ms();
    int header = 0;
    for (int i = 0; i < g->ntriggers; i++) {
        const af_trigger_t *t = &g->triggers[i];
        if (strcmp(t->type, "schedule") != 0 || !json_object_get(t->config, "cron")) {
            continue; /* an `every` schedule's next run depends on its last one */
        }
        af_error_t err = {0};
        json_t *runs = af_schedule_next_runs_json(t->config, now, 3, &err);
        if (runs == NULL) {
            continue; /* the definition check has said what is wrong */
        }
        if (triggers_json) {
            json_object_set_new(json_array_get(triggers_json, (size_t)i), "next_runs", runs);
            continue;
        }
        if (!header) {
            printf("next runs:\n");
            header = 1;
        }
        printf("  schedule (%s):", t->where ? t->where : "");
        size_t k;
        json_t *v;
        json_array_foreach(runs, k, v) {
            printf("%s %s", k ? "," : "", json_string_value(v));
        }
        printf("\n");
        json_decref(runs);
    }
}

static int cmd_check(const char *file, const char *format) {
    af_error_t err = {0};
    uv_loop_t loop;
    uv_loop_init(&loop);
    int prc = load_plugins(&loop);
    if (prc != 0) {
        return prc;
    }
    af_vm_opts_t vo = {.loop = &loop};
    af_vm_t *vm = af_vm_new(&vo, &err);
    af_graph_t *g = NULL;
    int rc = vm ? af_dsl_load_file(vm, file, &g, &err) : err.code;
    if (rc == 0) {
        if (strcmp(format, "json") == 0) {
            json_t *j = af_graph_to_json(g);
            check_next_runs(g, json_object_get(j, "triggers"));
            char *text = af_json_dumps(j, AF_JSON_PRETTY);
            printf("%s\n", text);
            free(text);
            json_decref(j);
        } else if (strcmp(format, "dot") == 0) {
            af_graph_print_dot(g, stdout);
        } else {
            af_graph_print_text(g, stdout);
            check_next_runs(g, NULL);
        }
    }
    af_graph_free(g);
    af_vm_free(vm);
    unload_plugins(&loop);
    uv_loop_close(&loop);
    return rc == 0 ? 0 : print_error(&err);
}

/* ---- arguments ---- */

static int is_help(const char *a) {
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

static int parse_run(int argc, char **argv, run_opts_t *o) {
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) {
            fputs(RUN_USAGE, stdout);
            exit(0);
        } else if (strcmp(a, "--json") == 0) {
            o->json = 1;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            o->quiet = 1;
        } else if (strcmp(a, "--input") == 0 || strcmp(a, "-i") == 0) {
            if (++i == argc) {
                return usage_error(RUN_USAGE, "%s needs a value", a);
            }
            o->input = argv[i];
        } else if (strcmp(a, "--max-instructions") == 0) {
            char *end;
            if (++i == argc || (o->max_instructions = strtoll(argv[i], &end, 10)) < 100000 ||
                *end) {
                return usage_error(RUN_USAGE, "%s needs a number >= 100000", a);
            }
        } else if (strcmp(a, "--max-memory") == 0) {
            if (++i == argc || af_bytes_parse(argv[i], &o->max_memory) != 0 ||
                o->max_memory < (4u << 20)) {
                return usage_error(RUN_USAGE, "%s needs a size of at least 4MB", a);
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error(RUN_USAGE, "unknown option '%s'", a);
        } else if (o->file == NULL) {
            o->file = a;
        } else {
            return usage_error(RUN_USAGE, "unexpected argument '%s'", a);
        }
    }
    return o->file ? 0 : usage_error(RUN_USAGE, "%s", "run needs a workflow file");
}

/* ---- serve ---- */

typedef enum { MAINT_CHECKPOINT, MAINT_PRUNE } maint_job_t;

typedef struct serve_s {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    uv_timer_t retention, wal;
    uint64_t wal_seen; /* writes submitted when the last checkpoint started */
    int prune_due;     /* a retention turn waits for the running maintenance job */
    uv_work_t maint;   /* one maintenance job at a time, on the thread pool ... */
    int maint_busy;    /* ... while this is set */
    maint_job_t maint_job;
    af_store_t *maintenance; /* its own database connection */
    int64_t pruned;
    af_config_t cfg;
    af_http_server_t *server;
    af_store_async_t *writer;
    af_worker_t *worker;
    af_api_t *api;
    int stopping;
} serve_t;

/* On the thread pool: copies the write-ahead log into the database (off the writer thread, so
 * no commit waits for it), or applies retention. */
static void maint_work(uv_work_t *req) {
    serve_t *sv = req->data;
    af_error_t err;
    af_store_options_t so = {.size = sizeof so, .durability = (int)sv->cfg.durability};
    if (sv->maintenance == NULL && af_store_open(sv->cfg.data, &so, &sv->maintenance, &err) != 0) {
        af_log(AF_LEVEL_ERROR, "maintenance: %s", err.msg);
        return;
    }
    if (sv->maint_job == MAINT_CHECKPOINT) {
        if (af_store_checkpoint_wal(sv->maintenance, NULL, &err) != 0) {
            af_log(AF_LEVEL_ERROR, "wal checkpoint: %s", err.msg);
        }
        return;
    }
    sv->pruned = 0;
    if (af_store_prune(sv->maintenance, sv->cfg.retention.max_age_ms, sv->cfg.retention.max_count,
                       &sv->pruned, &err) != 0) {
        af_log(AF_LEVEL_ERROR, "retention: %s", err.msg);
    }
    af_store_webhook_seen_prune(sv->maintenance, af_wall_ms() - sv->cfg.webhooks.seen_ttl_ms, NULL,
                                &err);
    if (af_store_event_prune(sv->maintenance, af_wall_ms() - sv->cfg.events.retention_ms, NULL,
                             &err) != 0) {
        af_log(AF_LEVEL_ERROR, "event retention: %s", err.msg);
    }
}

static int maint_start(serve_t *sv, maint_job_t job);

static void maint_done(uv_work_t *req, int status) {
    serve_t *sv = req->data;
    (void)status;
    sv->maint_busy = 0;
    if (sv->maint_job == MAINT_PRUNE && sv->pruned > 0) {
        af_log(AF_LEVEL_INFO, "retention: removed %lld finished executions", (long long)sv->pruned);
    }
    if (sv->prune_due && maint_start(sv, MAINT_PRUNE)) {
        sv->prune_due = 0;
    }
}

/* Returns 1 when the job started, 0 when another one runs (or the server stops). */
static int maint_start(serve_t *sv, maint_job_t job) {
    if (sv->maint_busy || sv->stopping) {
        return 0;
    }
    sv->maint_busy = 1;
    sv->maint_job = job;
    sv->maint.data = sv;
    uv_queue_work(&sv->loop, &sv->maint, maint_work, maint_done);
    return 1;
}

/* Every 20 ms after writes: the log is copied in small steps, each with little to sync, so the
 * writer seldom has to checkpoint (and wait for the disk) itself. */
static void on_wal_timer(uv_timer_t *t) {
    serve_t *sv = t->data;
    uint64_t n = af_store_async_submitted(sv->writer);
    if (n != sv->wal_seen && maint_start(sv, MAINT_CHECKPOINT)) {
        sv->wal_seen = n;
    }
}

/* A retention turn that finds a checkpoint running comes right after it. */
static void on_retention(uv_timer_t *t) {
    serve_t *sv = t->data;
    sv->prune_due = !maint_start(sv, MAINT_PRUNE);
}

static void worker_stopped(void *ud) {
    serve_t *sv = ud;
    af_store_async_close(sv->writer); /* everything written and answered */
    uv_close((uv_handle_t *)&sv->sigterm, NULL);
    uv_close((uv_handle_t *)&sv->sigint, NULL);
    uv_close((uv_handle_t *)&sv->retention, NULL);
    uv_close((uv_handle_t *)&sv->wal, NULL);
}

static void server_stopped(af_http_server_t *s, void *ud) {
    (void)s;
    serve_t *sv = ud;
    af_worker_stop(sv->worker, 10000, worker_stopped, sv);
}

static void on_signal(uv_signal_t *h, int signum) {
    serve_t *sv = h->data;
    if (!sv->stopping) {
        sv->stopping = 1;
        fprintf(stderr, "agentflow: %s: stopping\n", signum == SIGTERM ? "SIGTERM" : "SIGINT");
        uv_timer_stop(&sv->retention);
        uv_timer_stop(&sv->wal);
        af_api_stop_triggers(sv->api); /* nothing fires from now on */
        af_http_server_stop(sv->server, server_stopped, sv);
    }
}

static int split_listen(const char *listen, char *host, size_t size, int *port) {
    const char *colon = strrchr(listen, ':');
    char *end;
    if (colon == NULL || colon == listen || (size_t)(colon - listen) >= size) {
        return -1;
    }
    long p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || p < 0 || p > 65535 || end == colon + 1) {
        return -1;
    }
    snprintf(host, size, "%.*s", (int)(colon - listen), listen);
    *port = (int)p;
    return 0;
}

/* One process per data directory: the lock is held while it runs, so the leases found at start
 * are a dead process's and can be taken back at once. */
static int lock_data(const char *data, int *fd) {
    char path[2048];
    snprintf(path, sizeof path, "%s/agentflow.lock", data);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*fd < 0 || flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "agentflow: error: %s is in use by another agentflow serve\n", data);
        return EXIT_USAGE;
    }
    return 0;
}

/* Opens the writer's connection and takes back the leases of a process that died. */
static int open_stores(serve_t *sv, af_store_t **writer, af_store_t **reader, af_error_t *err) {
    af_store_options_t so = {.size = sizeof so, .durability = (int)sv->cfg.durability};
    af_store_options_t wo = so;
    wo.manual_wal_checkpoints = 1; /* on_wal_timer does them */
    int n = 0;
    int rc = af_store_open(sv->cfg.data, &wo, writer, err);
    if (rc == 0) {
        rc = af_queue_release_all(af_store_queue(*writer), NULL, &n, err);
    }
    if (rc == 0) {
        rc = af_store_open(sv->cfg.data, &so, reader, err);
    }
    if (rc == 0 && n > 0) {
        fprintf(stderr,
                "agentflow: %d executions of a stopped process go on from their "
                "checkpoints\n",
                n);
    }
    return rc;
}

static int serve_run(serve_t *sv) {
    af_config_t *cfg = &sv->cfg;
    char host[256];
    int port, lock = -1;
    af_error_t err = {0};
    if (split_listen(cfg->listen, host, sizeof host, &port) != 0) {
        return usage_error(SERVE_USAGE, "--listen: '%s' is not HOST:PORT", cfg->listen);
    }
    if (mkdir(cfg->data, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "agentflow: error: --data %s: %s\n", cfg->data, strerror(errno));
        return EXIT_USAGE;
    }
    int rc = lock_data(cfg->data, &lock);
    af_store_t *wstore = NULL, *store = NULL;
    if (rc == 0 && open_stores(sv, &wstore, &store, &err) != 0) {
        rc = print_error(&err);
    }
    uv_loop_init(&sv->loop);
    if (rc == 0) {
        rc = load_plugins(&sv->loop);
    }
    sv->writer = rc == 0 ? af_store_async_new(&sv->loop, wstore, cfg->store.batch, &err) : NULL;
    af_worker_opts_t wo = {
        .loop = &sv->loop,
        .engine = {.secret = env_secret, .keep_loaded = 256, .immutable_files = 1},
        .reader = store,
        .writer = sv->writer,
        .data_dir = cfg->data,
        .concurrency = cfg->worker.concurrency,
        .lease_ms = cfg->worker.lease_ms,
        .heartbeat_ms = cfg->worker.heartbeat_ms,
        .park_after_ms = cfg->worker.park_after_ms};
    sv->worker = sv->writer ? af_worker_new(&wo, &err) : NULL;
    af_http_router_t *router = af_http_router_new();
    af_api_opts_t ao = {.loop = &sv->loop,
                        .store = store,
                        .writer = sv->writer,
                        .worker = sv->worker,
                        .router = router,
                        .max_wait_ms = cfg->webhooks.max_wait_ms,
                        .seen_ttl_ms = cfg->webhooks.seen_ttl_ms,
                        .tolerance_ms = cfg->webhooks.tolerance_ms,
                        .secret = env_secret,
                        .event_max_depth = cfg->events.max_depth,
                        .poll_max_per_host = cfg->polls.max_per_host,
                        .poll_host_period_ms = cfg->polls.host_period_ms,
                        .http_request = http_request,
                        .http_cancel = http_cancel,
                        .http_ud = &sv->loop};
    af_api_t *api = sv->worker ? af_api_new(&ao, &err) : NULL;
    sv->api = serve_api = api;
    af_http_server_config_t hc = {.max_body_bytes = cfg->http.max_body,
                                  .max_header_bytes = cfg->http.max_header,
                                  .max_headers = (uint32_t)cfg->http.max_headers,
                                  .read_timeout_ms = (uint64_t)cfg->http.read_timeout_ms,
                                  .idle_timeout_ms = (uint64_t)cfg->http.idle_timeout_ms};
    sv->server = api ? af_http_server_new(&sv->loop, &hc, af_http_router_handle, router) : NULL;
    if (rc == 0 &&
        (sv->server == NULL || af_http_server_listen(sv->server, host, port, &err) != 0 ||
         af_worker_load(sv->worker, &err) != 0 || af_api_start_triggers(api, &err) != 0)) {
        rc = print_error(&err);
    }
    if (rc == 0) {
        fprintf(stderr, "agentflow: listening on http://%s:%d (data %s/agentflow.db)\n", host,
                af_http_server_port(sv->server), cfg->data);
        uv_signal_init(&sv->loop, &sv->sigterm);
        uv_signal_init(&sv->loop, &sv->sigint);
        uv_timer_init(&sv->loop, &sv->retention);
        uv_timer_init(&sv->loop, &sv->wal);
        sv->sigterm.data = sv->sigint.data = sv->retention.data = sv->wal.data = sv;
        uv_timer_start(&sv->wal, on_wal_timer, 20, 20);
        uv_signal_start(&sv->sigterm, on_signal, SIGTERM);
        uv_signal_start(&sv->sigint, on_signal, SIGINT);
        uv_timer_start(&sv->retention, on_retention, (uint64_t)cfg->retention.interval_ms,
                       (uint64_t)cfg->retention.interval_ms);
        uv_run(&sv->loop, UV_RUN_DEFAULT);
    }
    af_store_async_close(sv->writer);
    af_worker_free(sv->worker); /* executions still running go on from checkpoints next time */
    af_http_server_free(sv->server);
    uv_run(&sv->loop, UV_RUN_DEFAULT); /* the handles closed above */
    af_store_async_free(sv->writer);
    serve_api = NULL;
    af_api_free(api);
    af_http_router_free(router);
    unload_plugins(&sv->loop);
    uv_loop_close(&sv->loop);
    af_store_close(store);
    af_store_close(wstore);
    af_store_close(sv->maintenance);
    if (lock >= 0) {
        close(lock);
    }
    return rc;
}

static int main_serve(int argc, char **argv) {
    static const struct {
        const char *flag, *key;
    } flags[] = {{"--listen", "listen"}, {"--data", "data"}, {"--durability", "durability"}};
    serve_t *sv = calloc(1, sizeof *sv);
    af_error_t err = {0};
    const char *file = getenv("AGENTFLOW_CONFIG");
    int print = 0;
    af_config_defaults(&sv->cfg);
    for (int i = 2; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(SERVE_USAGE, stdout);
            free(sv);
            return 0;
        }
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            file = argv[++i];
        } else if (strcmp(argv[i], "--print-config") == 0) {
            print = 1;
        }
    }
    extern char **environ;
    int rc = file ? af_config_load_file(&sv->cfg, file, &err) : 0;
    if (rc == 0) {
        rc = af_config_load_env(&sv->cfg, (const char *const *)environ, &err);
    }
    for (int i = 2; rc == 0 && i < argc; i++) {
        size_t k = 0;
        while (k < sizeof flags / sizeof flags[0] && strcmp(argv[i], flags[k].flag) != 0) {
            k++;
        }
        if (strcmp(argv[i], "--print-config") == 0) {
            continue;
        }
        if (k == sizeof flags / sizeof flags[0] && strcmp(argv[i], "--config") != 0) {
            free(sv);
            return usage_error(SERVE_USAGE, "unknown option '%s'", argv[i]);
        }
        if (++i == argc) {
            free(sv);
            return usage_error(SERVE_USAGE, "%s needs a value", argv[i - 1]);
        }
        if (k < sizeof flags / sizeof flags[0]) {
            rc = af_config_set_from(&sv->cfg, flags[k].key, argv[i], AF_CONFIG_FROM_FLAG,
                                    flags[k].flag, &err);
        }
    }
    if (rc == 0) {
        rc = af_config_check(&sv->cfg, &err);
    }
    int64_t clock_start = rc == 0 ? af_config_clock_start(&sv->cfg) : 0;
    if (clock_start > 0 && !print) {
        af_clock_set_manual(clock_start); /* tests: time moves by POST /api/clock */
    }
    if (rc != 0) {
        free(sv);
        char text[1400];
        return usage_error(SERVE_USAGE, "%s", af_error_text(&err, text, sizeof text));
    }
    if (print) {
        json_t *j = af_config_to_json(&sv->cfg);
        char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
        puts(text);
        free(text);
        json_decref(j);
        free(sv);
        return 0;
    }
    rc = serve_run(sv);
    free(sv);
    return rc;
}

static int main_check(int argc, char **argv) {
    const char *file = NULL, *format = "text";
    for (int i = 2; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(CHECK_USAGE, stdout);
            return 0;
        } else if (strcmp(argv[i], "--format") == 0 || strcmp(argv[i], "-f") == 0) {
            if (++i == argc ||
                (strcmp(argv[i], "text") && strcmp(argv[i], "json") && strcmp(argv[i], "dot"))) {
                return usage_error(CHECK_USAGE, "%s", "--format is text, json or dot");
            }
            format = argv[i];
        } else if (argv[i][0] == '-') {
            return usage_error(CHECK_USAGE, "unknown option '%s'", argv[i]);
        } else if (file == NULL) {
            file = argv[i];
        } else {
            return usage_error(CHECK_USAGE, "unexpected argument '%s'", argv[i]);
        }
    }
    if (file == NULL) {
        return usage_error(CHECK_USAGE, "%s", "check needs a workflow file");
    }
    return cmd_check(file, format);
}

int main(int argc, char **argv) {
    af_error_t err;
    if (af_nodes_register(&err) != 0) {
        return print_error(&err);
    }
    if (take_plugin_dirs(&argc, argv) != 0) {
        return EXIT_USAGE;
    }
    if (argc < 2 || is_help(argv[1])) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("agentflow %s (%s)\n", AF_VERSION, LUAJIT_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "plugin") == 0) {
        return cmd_plugin(argc, argv);
    }
    if (strcmp(argv[1], "run") == 0) {
        run_opts_t o = {0};
        int rc = parse_run(argc, argv, &o);
        return rc ? rc : cmd_run(&o);
    }
    if (strcmp(argv[1], "check") == 0) {
        return main_check(argc, argv);
    }
    if (strcmp(argv[1], "serve") == 0) {
        return main_serve(argc, argv);
    }
    if (strcmp(argv[1], "execute") == 0) {
        return af_cli_execute(argc - 1, argv + 1);
    }
    return usage_error(USAGE, "unknown command '%s'", argv[1]);
}
