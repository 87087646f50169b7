/* hello.c -- the smallest useful agentflow plugin in C: one node type that answers at once and
 * one that completes later from a timer. Build it out of tree against the installed SDK:
 *   cmake -S examples/plugins/hello-c -B /tmp/hello-c -DCMAKE_PREFIX_PATH=<sdk prefix>
 *   cmake --build /tmp/hello-c
 *   agentflow run examples/plugins/hello-c/hello.lua --plugins /tmp/hello-c */
#include <agentflow/plugin.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

static const af_host_t *host;

/* hello.greet: {"name": "Ada"} -> {"greeting": "Hello, Ada!"} */
static int greet_execute(void *instance, af_call_t *call, const char *config_json) {
    (void)instance;
    json_t *config = json_loads(config_json, 0, NULL);
    const char *name = json_string_value(json_object_get(config, "name"));
    char out[512];
    json_t *o = json_pack("{s:s}", "greeting", "");
    snprintf(out, sizeof out, "Hello, %s!", name ? name : "world");
    json_object_set_new(o, "greeting", json_string(out));
    char *text = json_dumps(o, JSON_COMPACT);
    host->log(call, AF_LOG_INFO, "greeting %s", name ? name : "world");
    host->call_succeed(call, text, NULL);
    free(text);
    json_decref(o);
    json_decref(config);
    return AF_DONE;
}

/* hello.wait: {"ms": 50} -> {"waited_ms": 50}, completed later by a host timer. */
typedef struct wait_s {
    af_call_t *call;
    af_timer_t *timer;
    long ms;
} wait_t;

static void wait_done(void *ud) {
    wait_t *w = ud;
    char out[64];
    snprintf(out, sizeof out, "{\"waited_ms\": %ld}", w->ms);
    host->call_succeed(w->call, out, NULL);
    free(w);
}

static int wait_execute(void *instance, af_call_t *call, const char *config_json) {
    (void)instance;
    json_t *config = json_loads(config_json, 0, NULL);
    wait_t *w = calloc(1, sizeof *w);
    w->call = call;
    w->ms = (long)json_integer_value(json_object_get(config, "ms"));
    json_decref(config);
    if (host->timer_start((uint64_t)w->ms, wait_done, w, &w->timer) != 0) {
        free(w);
        host->call_fail(call, AF_RETRYABLE, "TIMER", "could not start a timer");
        return AF_DONE;
    }
    host->call_set_data(call, w);
    return AF_PENDING;
}

/* The engine gave up (a timeout): stop the timer and complete, as the ABI asks. */
static void wait_cancel(void *instance, af_call_t *call) {
    (void)instance;
    wait_t *w = host->call_get_data(call);
    host->timer_stop(w->timer);
    host->call_fail(call, AF_RETRYABLE, "CANCELLED", "cancelled");
    free(w);
}

static const af_node_type_t greet = {
    .size = sizeof(af_node_type_t),
    .name = "hello.greet",
    .description = "Greets someone by name",
    .config_schema = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"}}}",
    .execute = greet_execute,
};

static const af_node_type_t wait = {
    .size = sizeof(af_node_type_t),
    .name = "hello.wait",
    .description = "Waits for `ms` milliseconds without blocking anything",
    .config_schema = "{\"type\":\"object\",\"required\":[\"ms\"],"
                     "\"properties\":{\"ms\":{\"type\":\"integer\",\"minimum\":0}}}",
    .execute = wait_execute,
    .cancel = wait_cancel,
};

static int init(const af_host_t *h, af_registrar_t *reg) {
    host = h;
    if (h->register_node(reg, &greet) != 0 || h->register_node(reg, &wait) != 0) {
        return AF_ERR;
    }
    return 0;
}

static const af_plugin_t plugin = {
    .size = sizeof(af_plugin_t),
    .abi_major = AF_ABI_MAJOR,
    .abi_minor = 0, /* uses nothing newer than ABI 1.0 */
    .name = "hello-c",
    .version = "1.0.0",
    .description = "Example plugin: a greeting and a timer",
    .init = init,
    .shutdown = NULL, /* nothing to release */
};

AF_PLUGIN_DECLARE(plugin)
