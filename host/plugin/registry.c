/* registry.c -- the node type registry and the node call life cycle (execute, complete, cancel,
 * drop late completions). */
#include "plugin/registry.h"

#include "core/jsonschema.h"

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

/* Compiled schemas by type (a type's schema text never changes while it is registered). */
#define SCHEMA_CACHE 1024
static struct {
    const af_nodedef_t *type;
    af_schema_t *schema;
} schemas[SCHEMA_CACHE];
static int nschemas;

static void schema_forget(const af_nodedef_t *type) {
    for (int i = 0; i < nschemas; i++) {
        if (schemas[i].type == type) {
            af_schema_free(schemas[i].schema);
            schemas[i] = schemas[--nschemas];
            return;
        }
    }
}

static af_schema_t *schema_of(const af_nodedef_t *type, int *owned, af_error_t *err) {
    for (int i = 0; i < nschemas; i++) {
        if (schemas[i].type == type) {
            *owned = 0;
            return schemas[i].schema;
        }
    }
    af_schema_t *s = af_schema_compile_text(type->schema, err);
    *owned = s != NULL && nschemas == SCHEMA_CACHE; /* no room: the caller frees it */
    if (s != NULL && !*owned) {
        schemas[nschemas].type = type;
        schemas[nschemas++].schema = s;
    }
    return s;
}

int af_node_check_config(const af_nodedef_t *type, const json_t *config, af_error_t *err) {
    if (type->schema == NULL) {
        return 0;
    }
    af_error_t serr;
    int owned;
    af_schema_t *s = schema_of(type, &owned, &serr);
    if (s == NULL) {
        return af_error_set(err, AF_EINVAL, "node type '%s' has an invalid config schema: %s",
                            type->name, serr.msg);
    }
    int rc = af_schema_validate(s, config, 3, err);
    if (owned) {
        af_schema_free(s);
    }
    return rc;
}

void af_registry_remove(const af_nodedef_t *type) {
    schema_forget(type);
    for (int i = 0; i < ntypes; i++) {
        if (types[i] == type) {
            memmove(&types[i], &types[i + 1], sizeof types[0] * (size_t)(ntypes - i - 1));
            ntypes--;
            return;
        }
    }
}

void af_registry_clear(void) {
    while (nschemas > 0) {
        af_schema_free(schemas[--nschemas].schema);
    }
    ntypes = 0;
}
