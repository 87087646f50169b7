/* nodes_internal.h -- the type tables of each file in host/nodes, gathered by nodes.c. */
#ifndef AF_NODES_INTERNAL_H
#define AF_NODES_INTERNAL_H

#include "plugin/registry.h"

extern const af_nodedef_t af__lua_node_types[];
extern const af_nodedef_t af__flow_node_types[];
extern const af_nodedef_t af__core_node_types[];

#endif
