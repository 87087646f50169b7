/* core_nodes.c -- small node types implemented in C and called by name (af.node "core.echo"):
 * they show and test the path every plugin type takes. */
#include <string.h>

#include "nodes/nodes_internal.h"
#include "plugin/plugin.h"

static int echo_execute(af_node_call_t *call) {
    af_node_succeed(call, json_deep_copy(call->config), NULL);
    return AF_NODE_DONE;
}

static int noop_execute(af_node_call_t *call) {
    af_node_succeed(call, NULL, NULL);
    return AF_NODE_DONE;
}

static int fail_execute(af_node_call_t *call) {
    const char *msg = json_string_value(json_object_get(call->config, "message"));
    const char *code = json_string_value(json_object_get(call->config, "code"));
    json_t *retryable = json_object_get(call->config, "retryable");
    json_t *until = json_object_get(call->config, "until_attempt");
    if (json_is_integer(until) && call->attempt >= json_integer_value(until)) {
        af_node_succeed(call, json_pack("{s:i}", "attempt", call->attempt), NULL);
        return AF_NODE_DONE;
    }
    af_node_failf(call, retryable == NULL || json_is_true(retryable), code ? code : "FAILED", "%s",
                  msg ? msg : "core.fail");
    return AF_NODE_DONE;
}

/* Publishes an event (the step form of af.emit): downstream workflows' event triggers start. */
static int emit_execute(af_node_call_t *call) {
    const char *type = json_string_value(json_object_get(call->config, "type"));
    json_t *data = json_object_get(call->config, "data");
    int rc = af_event_emit(call, type, data ? data : json_null());
    if (rc == AF_ELIMIT) {
        af_node_failf(call, 0, "EVENT_DEPTH",
                      "core.emit: '%s' not published: the chain of events that started this "
                      "execution is at the depth limit (events.max_depth)",
                      type);
    } else if (rc != 0) {
        af_node_failf(call, 0, "EVENT", "core.emit: '%s' not published: %s", type ? type : "",
                      rc == AF_EINVAL ? "not an event type (dot-separated names)"
                                      : "events are not served here");
    } else {
        af_node_succeed(call, json_pack("{s:b, s:s}", "emitted", 1, "type", type), NULL);
    }
    return AF_NODE_DONE;
}

const af_nodedef_t af__core_node_types[] = {
    {.name = "core.emit",
     .description = "Publishes the event {type, data} for event triggers (as af.emit does)",
     .schema = "{\"type\":\"object\",\"required\":[\"type\"],\"properties\":{\"type\":"
               "{\"type\":\"string\",\"minLength\":1},\"data\":{}},"
               "\"additionalProperties\":false}",
     .execute = emit_execute},
    {.name = "core.echo",
     .description = "Outputs its config (resolved): constants, or values computed from ctx",
     .schema = "{\"type\":\"object\"}",
     .execute = echo_execute},
    {.name = "core.noop", .description = "Does nothing; outputs null", .execute = noop_execute},
    {.name = "core.fail",
     .description = "Fails with a message and code (retryable unless retryable = false); "
                    "succeeds from attempt `until_attempt` on",
     .schema = "{\"type\":\"object\",\"properties\":{\"message\":{\"type\":\"string\"},"
               "\"code\":{\"type\":\"string\"},\"retryable\":{\"type\":\"boolean\"},"
               "\"until_attempt\":{\"type\":\"integer\"}}}",
     .execute = fail_execute},
    {.name = NULL},
};
