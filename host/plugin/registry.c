/* registry.c -- the node type registry and the node call life cycle (execute, complete, cancel,
 * drop late completions). */
#include "plugin/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REGISTRY_MAX 1024

static const af_nodedef_t *types[REGISTRY_MAX];
static int ntypes;

void af_fault_set(af_fault_t *f, int retryable, const char *code, const char *fmt, ...) {
    va_list ap;
    f->retryable = retryable;
    f->retry_after_ms = 0;
    snprintf(f->code, sizeof f->code, "%s", code ? code : "ERROR");
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof f->message, fmt, ap);
    va_end(ap);
}

static void complete(af_node_call_t *call, json_t *output, const char *port,
                     const af_fault_t *fault) {
    if (call->finished || call->cancelled) {
        json_decref(output);
        return;
    }
    call->finished = 1;
    call->done(call, output, port, fault);
}

void af_node_succeed(af_node_call_t *call, json_t *output, const char *port) {
    complete(call, output ? output : json_null(), port, NULL);
}

void af_node_fail(af_node_call_t *call, const af_fault_t *fault) {
    complete(call, NULL, NULL, fault);
}

void af_node_failf(af_node_call_t *call, int retryable, const char *code, const char *fmt, ...) {
    af_fault_t f;
    va_list ap;
    f.retryable = retryable;
    f.retry_after_ms = 0;
    snprintf(f.code, sizeof f.code, "%s", code ? code : "ERROR");
    va_start(ap, fmt);
    vsnprintf(f.message, sizeof f.message, fmt, ap);
    va_end(ap);
    af_node_fail(call, &f);
}

int af_node_execute(af_node_call_t *call, af_fault_t *fault) {
    call->finished = 0;
    call->cancelled = 0;
    int rc = call->type->execute(call);
    if (rc < 0 && !call->finished) {
        af_fault_set(fault, 0, af_err_name(rc), "node type '%s' could not start: %s",
                     call->type->name, af_strerror(rc));
    }
    return rc;
}

void af_node_cancel(af_node_call_t *call) {
    if (call->finished || call->cancelled) {
        return;
    }
    call->cancelled = 1;
    if (call->type->cancel) {
        call->type->cancel(call);
    }
}

int af_registry_add(const af_nodedef_t *type, af_error_t *err) {
    if (af_registry_find(type->name)) {
        return af_error_set(err, AF_EEXISTS, "node type '%s' is already registered", type->name);
    }
    if (ntypes == REGISTRY_MAX) {
        return af_error_set(err, AF_ELIMIT, "too many node types (limit %d)", REGISTRY_MAX);
    }
    types[ntypes++] = type;
    return 0;
}

const af_nodedef_t *af_registry_find(const char *name) {
    for (int i = 0; i < ntypes; i++) {
        if (strcmp(types[i]->name, name) == 0) {
            return types[i];
        }
    }
    return NULL;
}

const af_nodedef_t *af_registry_at(int i) {
    return i >= 0 && i < ntypes ? types[i] : NULL;
}

void af_registry_remove(const af_nodedef_t *type) {
    for (int i = 0; i < ntypes; i++) {
        if (types[i] == type) {
            memmove(&types[i], &types[i + 1], sizeof types[0] * (size_t)(ntypes - i - 1));
            ntypes--;
            return;
        }
    }
}

void af_registry_clear(void) {
    ntypes = 0;
}
