/* core_nodes.c -- small node types implemented in C and called by name (af.node "core.echo"):
 * they show and test the path every plugin type takes. */
#include <string.h>

#include "nodes/nodes_internal.h"

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

const af_nodedef_t af__core_node_types[] = {
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
