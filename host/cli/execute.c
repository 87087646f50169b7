/* execute.c -- `agentflow execute`: finds a workflow by id or name on a running server, starts an
 * execution with POST /api/workflows/ID/execute?wait=S, waits for it and prints it. */
#include "cli/execute.h"
#include "cli/input.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "core/core.h"
#include "core/tz.h"

#define EXIT_FAILED 1
#define EXIT_USAGE  2

#define DEFAULT_SERVER     "http://127.0.0.1:8080"
#define DEFAULT_WAIT_S     30.0
#define INPUT_MAX_BYTES    (64u << 20)
#define RESPONSE_MAX_BYTES (256u << 20)
#define PAGES_MAX          10000 /* a server that keeps answering a cursor is a broken one */

static const char *USAGE =
    "usage: agentflow execute WORKFLOW [--input JSON | --input @FILE.json] [--server URL]\n"
    "                         [--wait SECONDS] [--json]\n"
    "\n"
    "Runs a stored workflow on a running `agentflow serve` and prints the execution.\n"
    "WORKFLOW is a workflow id, or a name (the newest workflow with that name).\n"
    "\n"
    "  --input JSON    the execution's input (ctx.trigger); @FILE reads it from a file;\n"
    "                  default: the workflow's sample_input\n"
    "  --server URL    the server (default $AGENTFLOW_SERVER, else " DEFAULT_SERVER ")\n"
    "  --wait SECONDS  how long to wait for the end (default 30); 0: do not wait\n"
    "  --json          print the execution record as JSON instead of a summary\n"
    "\n"
    "exit status: 0 succeeded (or accepted with --wait 0), 1 failed, cancelled or not finished\n"
    "within --wait, 2 usage error, unknown workflow, bad --input or unreachable server\n";

typedef struct opts_s {
    const char *workflow, *input, *server;
    double wait_s;
    int json;
} opts_t;

/* One blocking request's answer. */
typedef struct reply_s {
    long status;
    af_buf_t body;
    json_t *json; /* the body parsed, when it is JSON */
} reply_t;

static void reply_clear(reply_t *r) {
    af_buf_free(&r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "agentflow: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", USAGE);
    return EXIT_USAGE;
}

static int print_error(const af_error_t *err) {
    char text[1400];
    fprintf(stderr, "agentflow: error: %s\n", af_error_text(err, text, sizeof text));
    return EXIT_USAGE;
}

/* ---- HTTP ---- */

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
    af_buf_t *b = ud;
    size_t len = size * n;
    if (b->len + len > RESPONSE_MAX_BYTES || af_buf_add(b, data, len) != 0) {
        return 0; /* curl fails the transfer */
    }
    return len;
}

/* Sends one request to server + path (path already escaped). body may be NULL. A transport
 * failure is AF_EIO with a message naming the URL; any HTTP status is a reply. */
static int request(const char *server, const char *method, const char *path, const json_t *body,
                   double timeout_s, reply_t *r, af_error_t *err) {
    memset(r, 0, sizeof *r);
    char url[4096];
    snprintf(url, sizeof url, "%s%s", server, path);
    CURL *curl = curl_easy_init();
    if (curl == NULL) {
        return af_error_set(err, AF_ENOMEM, "cannot start libcurl");
    }
    char *text = body ? af_json_dumps(body, 0) : NULL;
    struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/json");
    if (text) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "agentflow/" AF_VERSION);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000));
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text ? text : "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)(text ? strlen(text) : 0));
    }
    CURLcode cc = curl_easy_perform(curl);
    int rc = 0;
    if (cc != CURLE_OK) {
        rc = af_error_set(err, AF_EIO, "cannot reach the server at %s: %s", server,
                          errbuf[0] ? errbuf : curl_easy_strerror(cc));
    } else {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
        if (r->body.len > 0) {
            af_error_t ignored;
            r->json = af_json_loads(r->body.data, r->body.len, 512, &ignored);
        }
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    free(text);
    if (rc != 0) {
        reply_clear(r);
    }
    return rc;
}

/* The message of an {"error": {"code", "message"}} answer, else the status. */
static const char *reply_message(const reply_t *r, char *buf, size_t size) {
    const char *msg =
        json_string_value(json_object_get(json_object_get(r->json, "error"), "message"));
    if (msg) {
        snprintf(buf, size, "%s", msg);
    } else {
        snprintf(buf, size, "HTTP %ld", r->status);
    }
    return buf;
}

/* ---- finding the workflow ---- */

static int is_uuid(const char *s) {
    if (strlen(s) != 36) {
        return 0;
    }
    for (int i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

/* The newest workflow named `name`: asks for ?name= and also matches names itself, so it works
 * with servers that ignore the filter (they list every workflow, newest first). */
static int find_by_name(const char *server, const char *name, char *id, size_t size,
                        af_error_t *err) {
    CURL *esc = curl_easy_init();
    char *ename = esc ? curl_easy_escape(esc, name, 0) : NULL;
    char cursor[1024] = "";
    int found = 0, rc = 0, more = 0;
    if (ename == NULL) {
        rc = af_error_set(err, AF_ENOMEM, "out of memory");
    }
    for (int page = 0; rc == 0 && page < PAGES_MAX; page++) {
        char path[2048];
        char *ecursor = cursor[0] ? curl_easy_escape(esc, cursor, 0) : NULL;
        snprintf(path, sizeof path, "/api/workflows?limit=200&name=%s%s%s", ename,
                 ecursor ? "&cursor=" : "", ecursor ? ecursor : "");
        curl_free(ecursor);
        reply_t r;
        rc = request(server, "GET", path, NULL, 30, &r, err);
        if (rc != 0) {
            break;
        }
        if (r.status != 200 || !json_is_array(json_object_get(r.json, "items"))) {
            char msg[1100];
            rc = af_error_set(err, AF_EIO, "GET %s%s answered %ld: %s", server, path, r.status,
                              reply_message(&r, msg, sizeof msg));
            reply_clear(&r);
            break;
        }
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(r.json, "items"), i, w) {
            const char *wname = json_string_value(json_object_get(w, "name"));
            const char *wid = json_string_value(json_object_get(w, "id"));
            if (wname && wid && strcmp(wname, name) == 0) {
                if (!found) {
                    snprintf(id, size, "%s", wid);
                }
                found++;
            }
        }
        const char *next = json_string_value(json_object_get(r.json, "next_cursor"));
        more = next && *next && strcmp(next, cursor) != 0;
        if (more) {
            snprintf(cursor, sizeof cursor, "%s", next);
        }
        reply_clear(&r);
        if (found || !more) {
            break; /* newest first: the first page with a match has the newest one */
        }
    }
    curl_free(ename);
    if (esc) {
        curl_easy_cleanup(esc);
    }
    if (rc != 0) {
        return rc;
    }
    if (!found) {
        return af_error_set(err, AF_ENOTFOUND, "no workflow named '%s' on %s", name, server);
    }
    if (found > 1) {
        fprintf(stderr, "agentflow: warning: %d workflows are named '%s'; running the newest, %s\n",
                found, name, id);
    }
    return 0;
}

/* ---- input ---- */

/* ---- output ---- */

/* RFC 3339 UTC ("2026-11-26T04:02:53.846Z") as Unix milliseconds; -1 when it is not one. */
static int64_t parse_time(const json_t *v) {
    int64_t ms;
    return json_is_string(v) && af_time_parse(json_string_value(v), &ms) == 0 ? ms : -1;
}

static const char *error_text(const json_t *e, char *buf, size_t size) {
    if (json_is_string(e)) {
        snprintf(buf, size, "%s", json_string_value(e));
    } else if (json_is_object(e)) {
        const char *code = json_string_value(json_object_get(e, "code"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        snprintf(buf, size, "%s%s%s", code ? code : "", code && msg ? ": " : "", msg ? msg : "");
    } else {
        buf[0] = '\0';
    }
    return buf;
}

static int is_final(const char *status) {
    return strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0 ||
           strcmp(status, "cancelled") == 0;
}

static void print_summary(const json_t *x, int waited) {
    const char *id = json_string_value(json_object_get(x, "id"));
    const char *status = json_string_value(json_object_get(x, "status"));
    status = status ? status : "unknown";
    printf("%s  execution %s", status, id ? id : "?");
    int64_t start = parse_time(json_object_get(x, "started_at"));
    int64_t end = parse_time(json_object_get(x, "completed_at"));
    if (start < 0) {
        start = parse_time(json_object_get(x, "created_at"));
    }
    if (is_final(status) && start >= 0 && end >= start) {
        char d[32];
        printf(" in %s", af_duration_format((double)(end - start), d, sizeof d));
    } else if (!waited) {
        printf(" (not waited for)");
    }
    putchar('\n');
    char text[2400];
    const char *step;
    json_t *s;
    json_object_foreach(json_object_get(x, "steps"), step, s) {
        const char *st = json_string_value(json_object_get(s, "status"));
        if (st && strcmp(st, "failed") == 0) {
            printf("  step %s failed after %lld attempt(s)%s%s\n", step,
                   (long long)json_integer_value(json_object_get(s, "attempts")),
                   json_object_get(s, "error") ? ": " : "",
                   error_text(json_object_get(s, "error"), text, sizeof text));
        }
    }
    if (strcmp(status, "succeeded") == 0) {
        char *out = af_json_dumps(json_object_get(x, "result"), AF_JSON_PRETTY);
        printf("%s\n", out ? out : "null");
        free(out);
    } else if (error_text(json_object_get(x, "error"), text, sizeof text)[0]) {
        printf("error: %s\n", text);
    }
}

/* ---- the command ---- */

static int is_opt(const char *a, const char *name, const char *short_name) {
    return strcmp(a, name) == 0 || strcmp(a, short_name) == 0;
}

/* Returns 0 to go on, -1 after --help, or EXIT_USAGE. */
static int parse_args(int argc, char **argv, opts_t *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int takes_value =
            is_opt(a, "--input", "-i") || is_opt(a, "--server", "-s") || is_opt(a, "--wait", "-w");
        if (is_opt(a, "--help", "-h")) {
            fputs(USAGE, stdout);
            return -1;
        } else if (strcmp(a, "--json") == 0) {
            o->json = 1;
        } else if (takes_value && ++i == argc) {
            return usage_error("%s needs a value", a);
        } else if (is_opt(a, "--input", "-i")) {
            o->input = argv[i];
        } else if (is_opt(a, "--server", "-s")) {
            o->server = argv[i];
        } else if (is_opt(a, "--wait", "-w")) {
            char *end;
            o->wait_s = strtod(argv[i], &end);
            if (end == argv[i] || *end || !isfinite(o->wait_s) || o->wait_s < 0 ||
                o->wait_s > 86400) {
                return usage_error("--wait needs a number of seconds from 0 to 86400, not '%s'",
                                   argv[i]);
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error("unknown option '%s'", a);
        } else if (o->workflow == NULL) {
            o->workflow = a;
        } else {
            return usage_error("unexpected argument '%s'", a);
        }
    }
    if (o->workflow == NULL || o->workflow[0] == '\0') {
        return usage_error("%s", "execute needs a workflow id or name");
    }
    if (strncmp(o->server, "http://", 7) != 0 && strncmp(o->server, "https://", 8) != 0) {
        return usage_error("--server needs an http:// or https:// URL, not '%s'", o->server);
    }
    return 0;
}

/* After a 202 with --wait S: polls the execution until it ends or the wait is over (a server may
 * bound ?wait below what was asked). Returns the last record seen (new reference) or NULL. */
static json_t *poll_until(const char *server, const char *eid, double deadline_ms, json_t *last,
                          af_error_t *err) {
    char path[256];
    snprintf(path, sizeof path, "/api/executions/%s", eid);
    unsigned delay_ms = 50;
    json_t *x = json_incref(last);
    while (af_mono_ms() < deadline_ms) {
        const char *st = json_string_value(json_object_get(x, "status"));
        if (st && is_final(st)) {
            break;
        }
        usleep(delay_ms * 1000);
        delay_ms = delay_ms < 1000 ? delay_ms * 2 : 1000;
        reply_t r;
        if (request(server, "GET", path, NULL, 30, &r, err) != 0) {
            json_decref(x);
            return NULL;
        }
        if (r.status == 200 && json_is_object(r.json)) {
            json_decref(x);
            x = json_incref(r.json);
        }
        reply_clear(&r);
    }
    return x;
}

/* Resolves the workflow, starts the execution, waits and prints. Returns the exit status. */
static int execute(const opts_t *o, const char *server, const json_t *input) {
    af_error_t err = {0};
    char id[128];
    if (is_uuid(o->workflow)) {
        snprintf(id, sizeof id, "%s", o->workflow);
    } else if (find_by_name(server, o->workflow, id, sizeof id, &err) != 0) {
        return print_error(&err);
    }
    char path[512], wait[64] = "";
    if (o->wait_s > 0) {
        snprintf(wait, sizeof wait, "?wait=%g", o->wait_s);
    }
    snprintf(path, sizeof path, "/api/workflows/%s/execute%s", id, wait);
    json_t *body = input ? json_pack("{s:O}", "input", input) : NULL;
    double deadline = af_mono_ms() + o->wait_s * 1000;
    reply_t r;
    int rc = request(server, "POST", path, body, o->wait_s + 30, &r, &err);
    json_decref(body);
    if (rc != 0) {
        return print_error(&err);
    }
    if (r.status == 404) {
        reply_clear(&r);
        fprintf(stderr, "agentflow: error: no workflow %s on %s\n", id, server);
        return EXIT_USAGE;
    }
    if ((r.status != 200 && r.status != 202) || !json_is_object(r.json) ||
        !json_is_string(json_object_get(r.json, "id"))) {
        char msg[1100];
        fprintf(stderr, "agentflow: error: %s answered %ld: %s\n", server, r.status,
                reply_message(&r, msg, sizeof msg));
        reply_clear(&r);
        return EXIT_USAGE;
    }
    json_t *x = json_incref(r.json);
    int accepted = r.status == 202;
    reply_clear(&r);
    if (accepted && o->wait_s > 0) {
        json_t *polled =
            poll_until(server, json_string_value(json_object_get(x, "id")), deadline, x, &err);
        json_decref(x);
        if (polled == NULL) {
            return print_error(&err);
        }
        x = polled;
    }
    const char *eid = json_string_value(json_object_get(x, "id"));
    const char *st = json_string_value(json_object_get(x, "status"));
    st = st ? st : "";
    if (o->json) {
        char *text = af_json_dumps(x, AF_JSON_PRETTY);
        printf("%s\n", text ? text : "null");
        free(text);
    } else {
        print_summary(x, o->wait_s > 0);
    }
    fflush(stdout);
    int status = 0;
    if (strcmp(st, "succeeded") == 0 || (o->wait_s == 0 && !is_final(st))) {
        status = 0;
    } else if (is_final(st)) {
        status = EXIT_FAILED;
    } else {
        fprintf(stderr,
                "agentflow: execution %s is still %s after %gs; see GET %s/api/executions/%s\n",
                eid, st, o->wait_s, server, eid);
        status = EXIT_FAILED;
    }
    json_decref(x);
    return status;
}

int af_cli_execute(int argc, char **argv) {
    const char *env_server = getenv("AGENTFLOW_SERVER");
    opts_t o = {.server = env_server && *env_server ? env_server : DEFAULT_SERVER,
                .wait_s = DEFAULT_WAIT_S};
    int rc = parse_args(argc, argv, &o);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    char server[2048];
    snprintf(server, sizeof server, "%s", o.server);
    for (size_t n = strlen(server); n > 0 && server[n - 1] == '/'; n--) {
        server[n - 1] = '\0';
    }
    af_error_t err = {0};
    json_t *input = NULL;
    if (o.input && af_cli_parse_input(o.input, &input, &err) != 0) {
        return print_error(&err);
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        json_decref(input);
        fprintf(stderr, "agentflow: error: cannot start libcurl\n");
        return EXIT_USAGE;
    }
    int status = execute(&o, server, input);
    json_decref(input);
    curl_global_cleanup();
    return status;
}
