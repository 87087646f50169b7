/* old_minor.c -- a plugin built against the frozen ABI 1.0 header: its descriptor and host table
 * are the 1.0 ones. It must keep loading and working in every 1.x host. */
#include <agentflow/plugin.h>

static const af_host_t *host;

static int execute(void *instance, af_call_t *call, const char *config_json) {
    (void)instance;
    (void)config_json;
    host->call_succeed(call, "{\"built_for\": \"1.0\"}", NULL);
    return AF_DONE;
}

static const af_node_type_t node = {
    .size = sizeof(af_node_type_t),
    .name = "old.hello",
    .description = "built against ABI 1.0",
    .execute = execute,
};

static int init(const af_host_t *h, af_registrar_t *reg) {
    host = h;
    return h->register_node(reg, &node);
}

static const af_plugin_t plugin = {
    .size = sizeof(af_plugin_t),
    .abi_major = AF_ABI_MAJOR,
    .abi_minor = AF_ABI_MINOR,
    .name = "abi-1-0",
    .version = "1.0.0",
    .description = "built against the frozen 1.0 header",
    .init = init,
};

AF_PLUGIN_DECLARE(plugin)
