/* good.c -- a plugin that uses every host service, for the loader and services tests. */
#include <agentflow/plugin.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const af_host_t *host;

static json_t *config_of(const char *text) {
    json_t *c = json_loads(text, 0, NULL);
    return c ? c : json_object();
}

static void succeed_json(af_call_t *call, json_t *out) {
    char *text = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);
    host->call_succeed(call, text, NULL);
    free(text);
    json_decref(out);
}

/* fixture.echo: outputs its config. */
static int echo_execute(void *inst, af_call_t *call, const char *config) {
    (void)inst;
    host->call_succeed(call, config, NULL);
    return AF_DONE;
}

/* fixture.async: completes after config.ms from a host timer; cancel stops it. */
typedef struct pending_s {
    af_call_t *call;
    af_timer_t *timer;
    long ms;
    int drop_on_cancel; /* fixture.late: keep running after cancel, complete anyway */
} pending_t;

static void async_fire(void *ud) {
    pending_t *p = ud;
    char out[64];
    snprintf(out, sizeof out, "{\"waited\": %ld}", p->ms);
    host->call_succeed(p->call, out, NULL); /* dropped by the host if cancelled */
    free(p);
}

static int start_pending(af_call_t *call, const char *config, int late) {
    json_t *c = config_of(config);
    pending_t *p = calloc(1, sizeof *p);
    p->call = call;
    p->ms = (long)json_integer_value(json_object_get(c, "ms"));
    p->drop_on_cancel = late;
    json_decref(c);
    host->timer_start((uint64_t)p->ms, async_fire, p, &p->timer);
    host->call_set_data(call, p);
    return AF_PENDING;
}

static int async_execute(void *inst, af_call_t *call, const char *config) {
    (void)inst;
    return start_pending(call, config, 0);
}

static int late_execute(void *inst, af_call_t *call, const char *config) {
    (void)inst;
    return start_pending(call, config, 1);
}

static void count_cancel(af_call_t *call) {
    char *v = NULL;
    long n = 0;
    if (host->state_get(call, AF_SCOPE_PLUGIN, "cancels", &v) == 0) {
        n = atol(v);
        host->free(v);
    }
    char text[32];
    snprintf(text, sizeof text, "%ld", n + 1);
    host->state_set(call, AF_SCOPE_PLUGIN, "cancels", text, 0);
}

static void pending_cancel(void *inst, af_call_t *call) {
    (void)inst;
    pending_t *p = host->call_get_data(call);
    count_cancel(call);
    if (!p->drop_on_cancel) { /* stop, and complete as the ABI asks */
        host->timer_stop(p->timer);
        host->call_fail(call, AF_RETRYABLE, "CANCELLED", "cancelled");
        free(p);
    } /* fixture.late: the timer still fires and completes: the host must drop it */
}

/* fixture.blocking: sums 1..n on a worker thread and completes from there. */
static int blocking_execute(void *inst, af_call_t *call, const char *config) {
    (void)inst;
    json_t *c = config_of(config);
    long long n = json_integer_value(json_object_get(c, "n")), sum = 0;
    json_decref(c);
    for (long long i = 1; i <= n; i++) {
        sum += i;
    }
    char out[64];
    snprintf(out, sizeof out, "{\"sum\": %lld}", sum);
    host->log(call, AF_LOG_INFO, "summed %lld numbers on a worker", n);
    host->metric_add("fixture_sums_total", "kind=blocking", 1);
    host->call_succeed(call, out, NULL);
    return AF_PENDING; /* the completion above is queued to the loop */
}

/* fixture.state: sets config.value under config.key (workflow scope) when given; outputs what
 * is stored, and the plugin-scope "cancels" counter. */
static int state_execute(void *inst, af_call_t *call, const char *config) {
    (void)inst;
    json_t *c = config_of(config);
    const char *key = json_string_value(json_object_get(c, "key"));
    json_t *value = json_object_get(c, "value");
    if (value) {
        char *text = json_dumps(value, JSON_ENCODE_ANY);
        host->state_set(call, AF_SCOPE_WORKFLOW, key, text, 0);
        free(text);
    }
    char *stored = NULL, *cancels = NULL;
    json_t *out = json_object();
    if (host->state_get(call, AF_SCOPE_WORKFLOW, key, &stored) == 0) {
        json_object_set_new(out, "value", json_loads(stored, JSON_DECODE_ANY, NULL));
        host->free(stored);
    }
    if (host->state_get(call, AF_SCOPE_PLUGIN, "cancels", &cancels) == 0) {
        json_object_set_new(out, "cancels", json_integer(atol(cancels)));
        host->free(cancels);
    }
    json_decref(c);
    succeed_json(call, out);
    return AF_DONE;
}

/* fixture.secret: reads a secret; outputs its value (the host masks it) and its length. */
static int secret_execute(void *inst, af_call_t *call, const char *config) {
    (void)inst;
    json_t *c = config_of(config);
    char *v = NULL;
    int rc = host->secret(call, json_string_value(json_object_get(c, "name")), &v);
    json_decref(c);
    if (rc != 0) {
        host->call_fail(call, AF_FATAL, "NO_SECRET", "secret not found");
        return AF_DONE;
    }
    succeed_json(call, json_pack("{s:s, s:i}", "value", v, "length", (int)strlen(v)));
    host->free(v);
    return AF_DONE;
}

/* fixture.fail: fails with config.code, retryable unless config.retryable is false. */
static int fail_execute(void *inst, af_call_t *call, const char *config) {
    (void)inst;
    json_t *c = config_of(config);
    json_t *r = json_object_get(c, "retryable");
    host->call_fail(call, r && json_is_false(r) ? AF_FATAL : AF_RETRYABLE,
                    json_string_value(json_object_get(c, "code")), "fixture failure");
    json_decref(c);
    return AF_DONE;
}

/* fixture.info: what the host says about the call, a trace entry and an event. */
static int info_execute(void *inst, af_call_t *call, const char *config) {
    (void)inst;
    (void)config;
    host->trace(call, "fixture", "{\"note\": \"traced\"}");
    int emitted = host->emit_event(call, "fixture.ran", "{\"ok\": true}");
    succeed_json(call, json_pack("{s:s, s:s, s:i, s:s, s:b}", "workflow", host->call_workflow(call),
                                 "step", host->call_step(call), "attempt", host->call_attempt(call),
                                 "key", host->call_idempotency_key(call), "emitted", emitted == 0));
    return AF_DONE;
}

/* fixture.prefix: create() checks the declared config once per step (a definition error). */
static int prefix_create(const char *config, void **instance, char *err, size_t errlen) {
    json_t *c = config_of(config);
    const char *p = json_string_value(json_object_get(c, "prefix"));
    if (p == NULL) {
        snprintf(err, errlen, "'prefix' (a string) is required");
        json_decref(c);
        return AF_ERR;
    }
    *instance = strdup(p);
    json_decref(c);
    return 0;
}

static int prefix_execute(void *inst, af_call_t *call, const char *config) {
    json_t *c = config_of(config);
    char out[512];
    snprintf(out, sizeof out, "%s%s", (const char *)inst,
             json_string_value(json_object_get(c, "text"))
                 ? json_string_value(json_object_get(c, "text"))
                 : "");
    json_decref(c);
    succeed_json(call, json_string(out));
    return AF_DONE;
}

static void prefix_destroy(void *inst) {
    free(inst);
}

#define NODE(n, fn, ...)                                                                           \
    { .size = sizeof(af_node_type_t), .name = n, .description = n, .execute = fn, __VA_ARGS__ }

static const af_node_type_t types[] = {
    NODE("fixture.echo", echo_execute),
    NODE("fixture.async", async_execute, .cancel = pending_cancel),
    NODE("fixture.late", late_execute, .cancel = pending_cancel),
    NODE("fixture.blocking", blocking_execute, .flags = AF_NODE_BLOCKING),
    NODE("fixture.state", state_execute),
    NODE("fixture.secret", secret_execute),
    NODE("fixture.fail", fail_execute),
    NODE("fixture.info", info_execute),
    NODE("fixture.prefix", prefix_execute, .create = prefix_create, .destroy = prefix_destroy,
         .config_schema = "{\"type\":\"object\",\"properties\":{\"prefix\":"
                          "{\"type\":\"string\"}}}"),
};

/* fixture.ticks: a trigger type that fires config.count times from timers. */
typedef struct ticks_s {
    af_trigger_sink_t *sink;
    af_timer_t *timer;
    int left, n;
} ticks_t;

static void tick(void *ud) {
    ticks_t *t = ud;
    char input[64];
    snprintf(input, sizeof input, "{\"tick\": %d}", ++t->n);
    t->timer = NULL;
    host->fire(t->sink, input);
    if (--t->left > 0) {
        host->timer_start(1, tick, t, &t->timer);
    }
}

static int ticks_start(const char *config, af_trigger_sink_t *sink, void **instance, char *err,
                       size_t errlen) {
    (void)err;
    (void)errlen;
    json_t *c = config_of(config);
    ticks_t *t = calloc(1, sizeof *t);
    t->sink = sink;
    t->left = (int)json_integer_value(json_object_get(c, "count"));
    json_decref(c);
    if (t->left > 0) {
        host->timer_start(1, tick, t, &t->timer);
    }
    *instance = t;
    return 0;
}

static void ticks_stop(void *instance) {
    ticks_t *t = instance;
    if (t->timer) {
        host->timer_stop(t->timer);
    }
    free(t);
}

static const af_trigger_type_t ticks = {
    .size = sizeof(af_trigger_type_t),
    .name = "fixture.ticks",
    .description = "fires `count` times",
    .start = ticks_start,
    .stop = ticks_stop,
};

static int init(const af_host_t *h, af_registrar_t *reg) {
    host = h;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (h->register_node(reg, &types[i]) != 0) {
            return AF_ERR;
        }
    }
    return h->register_trigger(reg, &ticks);
}

static const af_plugin_t plugin = {
    .size = sizeof(af_plugin_t),
    .abi_major = AF_ABI_MAJOR,
    .abi_minor = AF_ABI_MINOR,
    .name = "fixture-good",
    .version = "1.2.3",
    .description = "uses every host service",
    .init = init,
};

AF_PLUGIN_DECLARE(plugin)
