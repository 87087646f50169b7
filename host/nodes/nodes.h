/* nodes.h -- the engine's own node types: Lua kinds (transform, condition, switch, foreach,
 * loop, parallel), delay, sub-workflow call, and the small core.* types. */
#ifndef AF_NODES_H
#define AF_NODES_H

#include "core/core.h"

/* Registers every engine node type in the registry (idempotent). */
int af_nodes_register(af_error_t *err);

#endif
