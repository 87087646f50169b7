/* refusals.c -- one plugin per reason the loader must refuse, chosen at build time. */
#include <agentflow/plugin.h>

static int echo_execute(void *instance, af_call_t *call, const char *config_json);
static const af_host_t *host;

static const af_node_type_t echo = {
    .size = sizeof(af_node_type_t),
#ifdef REFUSE_DUP_TYPE
    .name = "core.echo", /* the engine's own */
#else
    .name = "refusal.echo",
#endif
    .execute = echo_execute,
};

static int echo_execute(void *instance, af_call_t *call, const char *config_json) {
    (void)instance;
    host->call_succeed(call, config_json, NULL);
    return AF_DONE;
}

static int init(const af_host_t *h, af_registrar_t *reg) {
    host = h;
#ifdef REFUSE_INIT_FAILS
    (void)reg;
    (void)echo;
    return AF_ERR;
#else
    return h->register_node(reg, &echo);
#endif
}

static const af_plugin_t plugin = {
    .size = sizeof(af_plugin_t),
#ifdef REFUSE_OTHER_MAJOR
    .abi_major = AF_ABI_MAJOR + 1,
#else
    .abi_major = AF_ABI_MAJOR,
#endif
#ifdef REFUSE_NEWER_MINOR
    .abi_minor = AF_ABI_MINOR + 1,
#else
    .abi_minor = AF_ABI_MINOR,
#endif
    .name = "refusal",
#ifdef REFUSE_BAD_VERSION
    .version = "one",
#else
    .version = "0.1.0",
#endif
    .description = "refused on purpose",
    .init = init,
};

AF_PLUGIN_DECLARE(plugin)
