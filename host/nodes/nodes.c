/* nodes.c -- registers the engine's node types. */
#include "nodes/nodes.h"
#include "nodes/nodes_internal.h"

int af_nodes_register(af_error_t *err) {
    const af_nodedef_t *tables[] = {af__lua_node_types, af__flow_node_types, af__core_node_types};
    for (size_t k = 0; k < sizeof tables / sizeof tables[0]; k++) {
        for (const af_nodedef_t *t = tables[k]; t->name; t++) {
            if (af_registry_find(t->name) == t) {
                continue;
            }
            int rc = af_registry_add(t, err);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}
