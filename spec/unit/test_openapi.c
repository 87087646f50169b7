/* test_openapi.c -- the OpenAPI description built into the binary (api/openapi.c, from
 * docs/openapi.json): it parses, it is 3.1.0, every route is there with its methods, every $ref
 * resolves to a component, every operation has an operationId and responses. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/openapi.h"
#include "core/core.h"

static json_t *doc;

static int setup(void **state) {
    (void)state;
    size_t len;
    const char *text = af_openapi_json(&len);
    af_error_t err = {0};
    doc = af_json_loads(text, len, 64, &err);
    if (doc == NULL) {
        fprintf(stderr, "docs/openapi.json does not parse: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    json_decref(doc);
    return 0;
}

static const char *const METHODS[] = {"get",     "put",  "post",  "delete",
                                      "options", "head", "patch", "trace"};

static int is_method(const char *key) {
    for (size_t i = 0; i < sizeof METHODS / sizeof METHODS[0]; i++) {
        if (strcmp(key, METHODS[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static void test_embedded(void **state) {
    (void)state;
    size_t len = 0;
    const char *text = af_openapi_json(&len);
    assert_non_null(text);
    assert_true(len > 1000);
    assert_int_equal(strlen(text), len); /* NUL-terminated, no NUL inside */
    assert_ptr_equal(af_openapi_json(NULL), text);
    /* byte for byte the file in the source tree */
    const char *src = getenv("AF_SOURCE_DIR");
    if (src) {
        char path[4096];
        snprintf(path, sizeof path, "%s/docs/openapi.json", src);
        char *file = NULL;
        size_t flen = 0;
        af_error_t err = {0};
        assert_int_equal(af_read_file(path, 16u << 20, &file, &flen, &err), 0);
        assert_int_equal(flen, len);
        assert_memory_equal(file, text, len);
        free(file);
    }
}

static void test_version_and_info(void **state) {
    (void)state;
    assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
    json_t *info = json_object_get(doc, "info");
    assert_non_null(json_string_value(json_object_get(info, "title")));
    assert_non_null(json_string_value(json_object_get(info, "version")));
    assert_true(json_is_object(json_object_get(doc, "paths")));
    assert_true(json_is_object(json_object_get(json_object_get(doc, "components"), "schemas")));
}

static void test_routes(void **state) {
    (void)state;
    static const struct {
        const char *path, *methods;
    } routes[] = {
        {"/healthz", "get"},
        {"/readyz", "get"},
        {"/api/openapi.json", "get"},
        {"/api/workflows", "get post"},
        {"/api/workflows/{id}", "get put delete"},
        {"/api/workflows/{id}/versions", "get"},
        {"/api/workflows/{id}/stats", "get"},
        {"/api/workflows/{id}/activate", "post"},
        {"/api/workflows/{id}/pause", "post"},
        {"/api/workflows/{id}/execute", "post"},
        {"/api/workflows/{id}/execute/bulk", "post"},
        {"/api/workflows/{id}/triggers", "get post"},
        {"/api/triggers/{id}", "put delete"},
        {"/api/executions", "get"},
        {"/api/executions/{id}", "get"},
        {"/api/executions/{id}/cancel", "post"},
        {"/api/executions/{id}/retry", "post"},
        {"/api/executions/{id}/logs", "get"},
        {"/api/dead-letters", "get"},
        {"/api/webhooks", "get"},
        {"/webhooks/{path}", "post get put patch delete"},
        {"/api/events", "get post"},
        {"/api/events/replay", "post"},
        {"/api/clock", "get post"},
    };
    json_t *paths = json_object_get(doc, "paths");
    size_t nops = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        json_t *item = json_object_get(paths, routes[i].path);
        if (item == NULL) {
            fail_msg("no path %s", routes[i].path);
        }
        char methods[64];
        snprintf(methods, sizeof methods, "%s", routes[i].methods);
        size_t want = 0;
        for (char *save, *m = strtok_r(methods, " ", &save); m; m = strtok_r(NULL, " ", &save)) {
            if (!json_is_object(json_object_get(item, m))) {
                fail_msg("no %s %s", m, routes[i].path);
            }
            want++;
        }
        const char *key;
        json_t *v;
        size_t have = 0;
        json_object_foreach(item, key, v) {
            have += is_method(key);
        }
        if (have != want) {
            fail_msg("%s has %zu methods, expected %s", routes[i].path, have, routes[i].methods);
        }
        nops += have;
    }
    assert_int_equal(json_object_size(paths), sizeof routes / sizeof routes[0]);
    assert_int_equal(nops, 35);
}

/* Every path parameter of a template is declared, at the path or the operation. */
static int declares(json_t *params, const char *name) {
    size_t i;
    json_t *p;
    json_array_foreach(params, i, p) {
        json_t *r = json_object_get(p, "$ref");
        if (r) { /* "#/components/parameters/NAME" */
            const char *last = strrchr(json_string_value(r), '/');
            p = json_object_get(json_object_get(json_object_get(doc, "components"), "parameters"),
                                last ? last + 1 : "");
        }
        const char *in = json_string_value(json_object_get(p, "in"));
        const char *pname = json_string_value(json_object_get(p, "name"));
        if (in && pname && strcmp(in, "path") == 0 && strcmp(pname, name) == 0) {
            return json_is_true(json_object_get(p, "required"));
        }
    }
    return 0;
}

static void test_operations(void **state) {
    (void)state;
    json_t *paths = json_object_get(doc, "paths"), *ids = json_object();
    const char *path;
    json_t *item;
    json_object_foreach(paths, path, item) {
        const char *method;
        json_t *op;
        json_object_foreach(item, method, op) {
            if (!is_method(method)) {
                continue;
            }
            const char *id = json_string_value(json_object_get(op, "operationId"));
            if (id == NULL || *id == '\0') {
                fail_msg("%s %s has no operationId", method, path);
            }
            if (json_object_get(ids, id)) {
                fail_msg("operationId %s is used twice", id);
            }
            json_object_set_new(ids, id, json_true());
            json_t *responses = json_object_get(op, "responses");
            if (!json_is_object(responses) || json_object_size(responses) == 0) {
                fail_msg("%s %s has no responses", method, path);
            }
            int success = 0;
            const char *status;
            json_t *r;
            json_object_foreach(responses, status, r) {
                success |= status[0] == '2';
                if (!json_object_get(r, "$ref") && !json_object_get(r, "description")) {
                    fail_msg("%s %s: response %s has no description", method, path, status);
                }
            }
            if (!success) {
                fail_msg("%s %s has no 2xx response", method, path);
            }
            for (const char *p = strchr(path, '{'); p; p = strchr(p + 1, '{')) {
                char name[64];
                const char *end = strchr(p, '}');
                snprintf(name, sizeof name, "%.*s", (int)(end - p - 1), p + 1);
                if (!declares(json_object_get(item, "parameters"), name) &&
                    !declares(json_object_get(op, "parameters"), name)) {
                    fail_msg("%s %s: path parameter {%s} is not declared", method, path, name);
                }
            }
        }
    }
    json_decref(ids);
}

/* Resolves a local JSON pointer ("#/components/schemas/Error") against doc. */
static json_t *resolve(const char *ref) {
    if (strncmp(ref, "#/", 2) != 0) {
        return NULL;
    }
    json_t *at = doc;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", ref + 2);
    for (char *save, *tok = strtok_r(buf, "/", &save); tok && at;
         tok = strtok_r(NULL, "/", &save)) {
        char key[512];
        size_t k = 0;
        for (const char *c = tok; *c; c++) { /* ~1 is '/', ~0 is '~' */
            if (c[0] == '~' && (c[1] == '0' || c[1] == '1')) {
                key[k++] = c[1] == '1' ? '/' : '~';
                c++;
            } else {
                key[k++] = *c;
            }
        }
        key[k] = '\0';
        at = json_is_array(at) ? json_array_get(at, (size_t)atoi(key)) : json_object_get(at, key);
    }
    return at;
}

static void check_refs(json_t *v, const char *where, size_t *count) {
    if (json_is_object(v)) {
        const char *key;
        json_t *child;
        json_object_foreach(v, key, child) {
            if (strcmp(key, "$ref") == 0) {
                const char *ref = json_string_value(child);
                if (ref == NULL || strncmp(ref, "#/components/", 13) != 0) {
                    fail_msg("%s: $ref %s is not a component", where, ref ? ref : "(not text)");
                }
                if (resolve(ref) == NULL) {
                    fail_msg("%s: $ref %s does not resolve", where, ref);
                }
                (*count)++;
            } else {
                char sub[1024];
                snprintf(sub, sizeof sub, "%s/%s", where, key);
                check_refs(child, sub, count);
            }
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child) {
            check_refs(child, where, count);
        }
    }
}

static void test_refs(void **state) {
    (void)state;
    size_t count = 0;
    check_refs(doc, "#", &count);
    assert_true(count > 50);
    assert_null(resolve("#/components/schemas/NoSuchThing"));
    /* the schemas the API promises */
    static const char *const names[] = {
        "Workflow",      "WorkflowVersion", "Execution",   "StepState",     "LogEntry",
        "Trigger",       "Webhook",         "DeadLetter",  "Error",         "WorkflowList",
        "ExecutionList", "TriggerList",     "WebhookList", "DeadLetterList"};
    json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (json_object_get(schemas, names[i]) == NULL) {
            fail_msg("no schema %s", names[i]);
        }
    }
    /* the shapes: errors and pages */
    json_t *error =
        json_object_get(json_object_get(json_object_get(schemas, "Error"), "properties"), "error");
    assert_non_null(json_object_get(json_object_get(error, "properties"), "code"));
    assert_non_null(json_object_get(json_object_get(error, "properties"), "message"));
    json_t *page = json_object_get(json_object_get(schemas, "WorkflowList"), "properties");
    assert_non_null(json_object_get(page, "items"));
    assert_non_null(json_object_get(page, "next_cursor"));
    json_t *steps = json_object_get(
        json_object_get(json_object_get(schemas, "StepState"), "properties"), "status");
    assert_non_null(steps);
}

/* Each error status the API uses, where it applies. */
static void test_error_statuses(void **state) {
    (void)state;
    static const struct {
        const char *path, *method, *statuses;
    } want[] = {
        {"/api/workflows", "post", "201 400 413 415 422"},
        {"/api/workflows/{id}", "put", "200 404 422"},
        {"/api/workflows/{id}", "delete", "204 404"},
        {"/api/workflows/{id}/execute", "post", "200 202 404"},
        {"/api/workflows/{id}/execute/bulk", "post", "202 400 422"},
        {"/api/workflows/{id}/triggers", "post", "201 409"},
        {"/api/executions/{id}/cancel", "post", "202 409"},
        {"/api/executions/{id}/retry", "post", "202 409"},
        {"/api/workflows", "get", "200 400"},
        {"/webhooks/{path}", "post", "200 202 401 403 404 405 413"},
        {"/webhooks/{path}", "delete", "200 202 401 403 404 405 413"},
        {"/api/events", "post", "200 202 400 415 422"},
        {"/api/events/replay", "post", "200 400"},
    };
    json_t *paths = json_object_get(doc, "paths");
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        json_t *responses = json_object_get(
            json_object_get(json_object_get(paths, want[i].path), want[i].method), "responses");
        char statuses[64];
        snprintf(statuses, sizeof statuses, "%s", want[i].statuses);
        for (char *save, *s = strtok_r(statuses, " ", &save); s; s = strtok_r(NULL, " ", &save)) {
            if (json_object_get(responses, s) == NULL) {
                fail_msg("%s %s has no %s response", want[i].method, want[i].path, s);
            }
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedded), cmocka_unit_test(test_version_and_info),
        cmocka_unit_test(test_routes),   cmocka_unit_test(test_operations),
        cmocka_unit_test(test_refs),     cmocka_unit_test(test_error_statuses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
