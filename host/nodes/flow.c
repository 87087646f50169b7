/* flow.c -- engine node types that wait: delay (a timer ending at a wall-clock time the engine
 * records, so a resumed execution wakes at the original time) and call (a sub-workflow, run by
 * the engine through call->run_child). */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "nodes/nodes_internal.h"

typedef struct delay_s {
    uv_timer_t timer;
    int64_t ms;
    af_node_call_t *call;
} delay_t;

static void delay_closed(uv_handle_t *h) {
    free(h->data);
}

static void delay_fired(uv_timer_t *t) {
    delay_t *d = t->data;
    af_node_call_t *c = d->call;
    c->node_data = NULL;
    json_t *out = json_pack("{s:I}", "delayed_ms", (json_int_t)d->ms);
    uv_close((uv_handle_t *)&d->timer, delay_closed);
    af_node_succeed(c, out, NULL);
}

static int delay_execute(af_node_call_t *call) {
    json_t *dur = json_object_get(call->config, "duration");
    int64_t ms = -1;
    if (json_is_number(dur) && json_number_value(dur) >= 0) {
        ms = (int64_t)json_number_value(dur);
    } else if (json_is_string(dur) && af_duration_parse(json_string_value(dur), &ms) != 0) {
        ms = -1;
    }
    if (ms < 0) {
        af_node_failf(call, 0, "CONFIG", "delay: invalid duration (use e.g. \"500ms\", \"5s\")");
        return AF_NODE_DONE;
    }
    delay_t *d = malloc(sizeof *d);
    if (d == NULL) {
        af_node_failf(call, 1, "NOMEM", "delay: out of memory");
        return AF_NODE_DONE;
    }
    d->call = call;
    d->ms = ms;
    uv_timer_init(call->loop, &d->timer);
    d->timer.data = d;
    uv_update_time(call->loop);
    int64_t now = af_wall_ms();
    int64_t wake = call->wake_at > 0 ? call->wake_at : now + ms;
    if (call->waiting) {
        call->waiting(call, wake);
    }
    af_clock_timer_start(&d->timer, delay_fired, wake);
    call->node_data = d;
    return AF_NODE_PENDING;
}

static void delay_cancel(af_node_call_t *call) {
    delay_t *d = call->node_data;
    if (d) {
        af_clock_timer_stop(&d->timer);
        uv_close((uv_handle_t *)&d->timer, delay_closed);
        call->node_data = NULL;
    }
}

static int call_execute(af_node_call_t *call) {
    const char *file = json_string_value(json_object_get(call->config, "workflow"));
    if (file == NULL) {
        af_node_failf(call, 0, "CONFIG", "call: 'workflow' must be a file name");
        return AF_NODE_DONE;
    }
    if (call->run_child == NULL) {
        af_node_failf(call, 0, "UNSUPPORTED", "call: sub-workflows are not available here");
        return AF_NODE_DONE;
    }
    af_fault_t fault;
    int rc = call->run_child(call, file, json_object_get(call->config, "input"), &fault);
    if (rc < 0) {
        af_node_fail(call, &fault);
        return AF_NODE_DONE;
    }
    return AF_NODE_PENDING;
}

/* Cancelling a sub-workflow is the engine's, which started it. */
static void call_cancel(af_node_call_t *call) {
    if (call->cancel_child) {
        call->cancel_child(call);
    }
}

const af_nodedef_t af__flow_node_types[] = {
    {.name = "delay",
     .description = "Waits for a duration without holding a worker",
     .schema = "{\"type\":\"object\",\"required\":[\"duration\"],\"properties\":{\"duration\":"
               "{\"type\":[\"string\",\"number\"]}}}",
     .execute = delay_execute,
     .cancel = delay_cancel},
    {.name = "call",
     .description = "Runs another workflow and returns its result",
     .schema = "{\"type\":\"object\",\"required\":[\"workflow\"],\"properties\":{\"workflow\":"
               "{\"type\":\"string\"},\"input\":{}}}",
     .execute = call_execute,
     .cancel = call_cancel},
    {.name = NULL},
};
