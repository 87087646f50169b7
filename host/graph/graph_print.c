/* graph_print.c -- showing a workflow graph for `agentflow check`: as JSON, as text for people
 * and as a Graphviz digraph. Nothing here changes the graph. */
#include "graph/graph.h"

#include <stdlib.h>
#include <string.h>

/* ---- JSON ---- */

/* A JSON string for s (null for NULL). Names come from user files, so bytes that are not UTF-8
 * become '?' rather than making the whole document fail. */
static json_t *jstr(const char *s) {
    if (s == NULL) {
        return json_null();
    }
    size_t len = strlen(s), bad;
    if (af_utf8_valid(s, len, &bad)) {
        return json_stringn(s, len);
    }
    char *copy = strdup(s);
    if (copy == NULL) {
        return NULL;
    }
    size_t at = bad;
    do {
        copy[at] = '?';
    } while (!af_utf8_valid(copy, len, &at));
    json_t *j = json_stringn(copy, len);
    free(copy);
    return j;
}

/* Sets key to a new reference; remembers a failure in *ok (value NULL means out of memory). */
static void put(json_t *obj, const char *key, json_t *value, int *ok) {
    if (value == NULL || json_object_set_new(obj, key, value) != 0) {
        *ok = 0;
    }
}

static void append(json_t *arr, json_t *value, int *ok) {
    if (value == NULL || json_array_append_new(arr, value) != 0) {
        *ok = 0;
    }
}

static json_t *retry_json(const af_retry_t *r) {
    int ok = 1;
    json_t *o = json_object();
    json_t *codes = json_array();
    if (o == NULL || codes == NULL) {
        json_decref(o);
        json_decref(codes);
        return NULL;
    }
    put(o, "attempts", json_integer(r->attempts), &ok);
    put(o, "backoff", json_string(r->backoff == AF_BACKOFF_FIXED ? "fixed" : "exponential"), &ok);
    put(o, "initial_ms", json_integer(r->initial_ms), &ok);
    put(o, "max_ms", json_integer(r->max_ms), &ok);
    for (int i = 0; i < r->n_non_retryable; i++) {
        append(codes, jstr(r->non_retryable[i]), &ok);
    }
    put(o, "non_retryable", codes, &ok);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *step_json(const af_step_t *s) {
    int ok = 1;
    json_t *o = json_object();
    json_t *after = json_array();
    json_t *ports = json_array();
    if (o == NULL || after == NULL || ports == NULL) {
        json_decref(o);
        json_decref(after);
        json_decref(ports);
        return NULL;
    }
    put(o, "name", jstr(s->name), &ok);
    put(o, "type", jstr(s->type), &ok);
    put(o, "where", jstr(s->where), &ok);
    for (int i = 0; i < s->ndeps; i++) {
        json_t *d = json_object();
        if (d != NULL) {
            put(d, "step", jstr(s->deps[i].step), &ok);
            put(d, "port", jstr(s->deps[i].port), &ok);
        }
        append(after, d, &ok);
    }
    put(o, "after", after, &ok);
    for (int i = 0; i < s->nports; i++) {
        append(ports, jstr(s->ports[i]), &ok);
    }
    put(o, "ports", ports, &ok);
    if (s->has_retry) {
        put(o, "retry", retry_json(&s->retry), &ok);
    }
    if (s->timeout_ms > 0) {
        put(o, "timeout_ms", json_integer(s->timeout_ms), &ok);
    }
    if (s->join == AF_JOIN_ALL) {
        put(o, "join", json_string("all"), &ok);
    }
    if (s->on_error_continue) {
        put(o, "on_error", json_string("continue"), &ok);
    }
    put(o, "config", s->config ? json_incref(s->config) : json_null(), &ok);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *af_graph_to_json(const af_graph_t *g) {
    int ok = 1;
    json_t *o = json_object();
    json_t *steps = json_array();
    json_t *triggers = json_array();
    if (o == NULL || steps == NULL || triggers == NULL) {
        json_decref(o);
        json_decref(steps);
        json_decref(triggers);
        return NULL;
    }
    put(o, "name", jstr(g->name), &ok);
    put(o, "description", jstr(g->description), &ok);
    put(o, "file", jstr(g->file), &ok);
    for (int i = 0; i < g->nsteps && ok; i++) {
        append(steps, step_json(&g->steps[i]), &ok);
    }
    put(o, "steps", steps, &ok);
    for (int i = 0; i < g->ntriggers && ok; i++) {
        const af_trigger_t *t = &g->triggers[i];
        json_t *to = json_object();
        if (to != NULL) {
            put(to, "type", jstr(t->type), &ok);
            put(to, "where", jstr(t->where), &ok);
            put(to, "config", t->config ? json_incref(t->config) : json_null(), &ok);
        }
        append(triggers, to, &ok);
    }
    put(o, "triggers", triggers, &ok);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- text ---- */

static int text_width(const char *s, int cap) {
    int n = s ? (int)strlen(s) : 0;
    return n < cap ? n : cap;
}

static void print_retry(FILE *out, const af_retry_t *r) {
    char a[32], b[32];
    fprintf(out, "%d attempts, %s %s..%s", r->attempts,
            r->backoff == AF_BACKOFF_FIXED ? "fixed" : "exponential",
            af_duration_format((double)r->initial_ms, a, sizeof a),
            af_duration_format((double)r->max_ms, b, sizeof b));
    for (int i = 0; i < r->n_non_retryable; i++) {
        fprintf(out, "%s%s", i ? ", " : ", never on ", r->non_retryable[i]);
    }
}

static void print_json_inline(FILE *out, const json_t *v) {
    if (v == NULL || json_is_null(v)) {
        return;
    }
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    if (text != NULL) {
        fprintf(out, "  %s", text);
        free(text);
    }
}

static void print_step_line(FILE *out, const af_step_t *s, int wname, int wtype) {
    char d[32];
    fprintf(out, "  %-*s  %-*s", wname, s->name, wtype, s->type);
    for (int j = 0; j < s->ndeps; j++) {
        const af_dep_t *dep = &s->deps[j];
        fprintf(out, "%s%s%s%s", j ? ", " : "  after: ", dep->step, dep->port ? "." : "",
                dep->port ? dep->port : "");
    }
    for (int j = 0; j < s->nports; j++) {
        fprintf(out, "%s%s", j ? ", " : "  ports: ", s->ports[j]);
    }
    if (s->join == AF_JOIN_ALL) {
        fprintf(out, "  join: all");
    }
    if (s->on_error_continue) {
        fprintf(out, "  on error: continue");
    }
    if (s->has_retry) {
        fprintf(out, "  retry: ");
        print_retry(out, &s->retry);
    }
    if (s->timeout_ms > 0) {
        fprintf(out, "  timeout: %s", af_duration_format((double)s->timeout_ms, d, sizeof d));
    }
    if (s->where && s->where[0]) {
        fprintf(out, "  (%s)", s->where);
    }
    fputc('\n', out);
}

void af_graph_print_text(const af_graph_t *g, FILE *out) {
    char d[32];
    fprintf(out, "workflow %s", g->name ? g->name : "");
    if (g->description && g->description[0]) {
        fprintf(out, ": %s", g->description);
    }
    fputc('\n', out);
    if (g->file && g->file[0]) {
        fprintf(out, "  file: %s\n", g->file);
    }
    if (g->retry.attempts > 1) {
        fprintf(out, "  retry: ");
        print_retry(out, &g->retry);
        fputc('\n', out);
    }
    if (g->step_timeout_ms > 0) {
        fprintf(out, "  step timeout: %s\n",
                af_duration_format((double)g->step_timeout_ms, d, sizeof d));
    }
    if (g->timeout_ms > 0) {
        fprintf(out, "  timeout: %s\n", af_duration_format((double)g->timeout_ms, d, sizeof d));
    }

    if (g->ntriggers == 0) {
        fprintf(out, "triggers: none\n");
    } else {
        int wtype = 0;
        for (int i = 0; i < g->ntriggers; i++) {
            int w = text_width(g->triggers[i].type, 16);
            wtype = w > wtype ? w : wtype;
        }
        fprintf(out, "triggers:\n");
        for (int i = 0; i < g->ntriggers; i++) {
            const af_trigger_t *t = &g->triggers[i];
            fprintf(out, "  %-*s", wtype, t->type);
            print_json_inline(out, t->config);
            if (t->where && t->where[0]) {
                fprintf(out, "  (%s)", t->where);
            }
            fputc('\n', out);
        }
    }

    /* columns sized to the longest name and type, within reason */
    int wname = 0, wtype = 0;
    for (int i = 0; i < g->nsteps; i++) {
        int wn = text_width(g->steps[i].name, 24), wt = text_width(g->steps[i].type, 16);
        wname = wn > wname ? wn : wname;
        wtype = wt > wtype ? wt : wtype;
    }
    fprintf(out, "steps (%d%s):\n", g->nsteps, g->order ? ", in order" : ", not validated");
    for (int i = 0; i < g->nsteps; i++) {
        print_step_line(out, &g->steps[g->order ? g->order[i] : i], wname, wtype);
    }
}

/* ---- Graphviz ---- */

/* Writes s escaped for the inside of a double-quoted DOT string. Backslashes are doubled so that
 * a name is never read as a label escape (\N, \l...); line breaks become \n. */
static void dot_escape(FILE *out, const char *s) {
    for (const char *p = s ? s : ""; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", out);
            break;
        case '\\':
            fputs("\\\\", out);
            break;
        case '\n':
            fputs("\\n", out);
            break;
        case '\r':
        case '\t':
            fputc(' ', out);
            break;
        default:
            fputc(*p, out);
        }
    }
}

static void dot_str(FILE *out, const char *s) {
    fputc('"', out);
    dot_escape(out, s);
    fputc('"', out);
}

/* Writes a label of the non-empty parts, one per line. */
static void dot_label(FILE *out, const char *const *parts, int n) {
    int first = 1;
    fputs("label=\"", out);
    for (int i = 0; i < n; i++) {
        if (parts[i] != NULL && parts[i][0] != '\0') {
            fputs(first ? "" : "\\n", out);
            dot_escape(out, parts[i]);
            first = 0;
        }
    }
    fputc('"', out);
}

static int is_branch(const char *type) {
    return type && (strcmp(type, "condition") == 0 || strcmp(type, "switch") == 0);
}

/* A short detail of a trigger's config for its label: the webhook path, the schedule... */
static const char *trigger_detail(const af_trigger_t *t) {
    static const char *const keys[] = {"path", "cron", "every", "event", "name", "url"};
    if (!json_is_object(t->config)) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = json_string_value(json_object_get(t->config, keys[i]));
        if (v != NULL) {
            return v;
        }
    }
    return NULL;
}

/* Trigger node ids must not be taken for step names, which are used as ids as they are. */
static void trigger_id(const af_graph_t *g, int i, char *buf, size_t size) {
    int extra = 0;
    do {
        snprintf(buf, size, "%.*strigger:%d", extra, "################", i);
        extra++;
    } while (af_graph_find(g, buf) >= 0 && extra < 16);
}

void af_graph_print_dot(const af_graph_t *g, FILE *out) {
    fputs("digraph ", out);
    dot_str(out, g->name);
    fputs(" {\n", out);
    fputs("    graph [rankdir=TB, labelloc=t, fontname=\"Helvetica\", ", out);
    const char *title[] = {g->name, g->description};
    dot_label(out, title, 2);
    fputs("];\n", out);
    fputs("    node [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=11];\n", out);
    fputs("    edge [fontname=\"Helvetica\", fontsize=10];\n", out);

    char id[64];
    for (int i = 0; i < g->ntriggers; i++) {
        const af_trigger_t *t = &g->triggers[i];
        trigger_id(g, i, id, sizeof id);
        fputs("    ", out);
        dot_str(out, id);
        fputs(" [shape=note, style=filled, fillcolor=\"#eef3ff\", ", out);
        const char *parts[] = {t->type, trigger_detail(t)};
        dot_label(out, parts, 2);
        fputs(", tooltip=", out);
        dot_str(out, t->where);
        fputs("];\n", out);
    }

    for (int i = 0; i < g->nsteps; i++) {
        const af_step_t *s = &g->steps[i];
        fputs("    ", out);
        dot_str(out, s->name);
        fprintf(out, " [shape=%s, ", is_branch(s->type) ? "diamond" : "box");
        if (s->on_error_continue) {
            fputs("peripheries=2, ", out);
        }
        const char *parts[] = {s->name, s->type, s->join == AF_JOIN_ALL ? "(join all)" : NULL};
        dot_label(out, parts, 3);
        fputs(", tooltip=", out);
        dot_str(out, s->where);
        fputs("];\n", out);
    }

    for (int i = 0; i < g->ntriggers; i++) {
        trigger_id(g, i, id, sizeof id);
        for (int j = 0; j < g->nsteps; j++) {
            if (g->steps[j].ndeps == 0) {
                fputs("    ", out);
                dot_str(out, id);
                fputs(" -> ", out);
                dot_str(out, g->steps[j].name);
                fputs(" [style=dotted];\n", out);
            }
        }
    }

    for (int i = 0; i < g->nsteps; i++) {
        const af_step_t *s = &g->steps[i];
        for (int j = 0; j < s->ndeps; j++) {
            const af_dep_t *d = &s->deps[j];
            fputs("    ", out);
            dot_str(out, d->step);
            fputs(" -> ", out);
            dot_str(out, s->name);
            if (d->port && strcmp(d->port, AF_PORT_ERROR) == 0) {
                fputs(" [label=\"error\", style=dashed, color=red, fontcolor=red]", out);
            } else if (d->port) {
                fputs(" [label=", out);
                dot_str(out, d->port);
                fputs("]", out);
            }
            fputs(";\n", out);
        }
    }
    fputs("}\n", out);
}
