/* config.h -- the settings of `agentflow serve`: typed fields with defaults, loaded from a file
 * (a TOML subset), from AGENTFLOW_* environment variables and from flags, each value with its
 * source.
 */
#ifndef AF_CONFIG_H
#define AF_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "core/core.h"

/* How many settings there are (the length of af_config_settings()). */
#define AF_CONFIG_SETTINGS 24

/* Where a value came from. A value only replaces one from the same or a lower rank, so flags win
 * over the environment, the environment over the file, the file over the defaults, whatever the
 * order in which the loaders are called. */
typedef enum {
    AF_CONFIG_FROM_DEFAULT = 0,
    AF_CONFIG_FROM_FILE = 1,
    AF_CONFIG_FROM_ENV = 2,
    AF_CONFIG_FROM_FLAG = 3
} af_config_rank_t;

typedef enum {
    AF_CONFIG_DURABILITY_NORMAL = 0,
    AF_CONFIG_DURABILITY_STRICT = 1
} af_config_durability_t;

/* The type of a setting, as the file, the environment and flags write it. */
typedef enum {
    AF_CONFIG_STRING,   /* "text" */
    AF_CONFIG_INT,      /* 42, -1 */
    AF_CONFIG_SIZE,     /* "1MB", "16KB" (powers of 1024), or a number of bytes */
    AF_CONFIG_DURATION, /* "30s", "200ms", "5m", "24h", "30d" */
    AF_CONFIG_ENUM      /* one of a few words */
} af_config_type_t;

/* One setting as documentation and tooling see it. */
typedef struct af_config_setting_s {
    const char *key;         /* "worker.lease"; top-level settings have no section: "listen" */
    const char *env;         /* "AGENTFLOW_WORKER_LEASE" */
    af_config_type_t type;   /* how its value is written */
    const char *fallback;    /* the default, as it would be written in the file: "30s" */
    const char *choices;     /* AF_CONFIG_ENUM: "normal|strict"; else NULL */
    const char *description; /* one line for people */
} af_config_setting_t;

/* The effective settings. Durations are milliseconds, sizes bytes. Value type: copy it freely,
 * nothing to free. */
typedef struct af_config_s {
    char listen[256];                  /* HOST:PORT; port 0 picks a free one */
    char data[1024];                   /* data directory */
    af_config_durability_t durability; /* strict: each commit synced, survives power loss */
    struct {
        size_t max_body;         /* request bodies over this are refused with 413 */
        size_t max_header;       /* all headers of a request, in bytes */
        int max_headers;         /* header lines per request */
        int64_t read_timeout_ms; /* to receive a whole request once it started */
        int64_t idle_timeout_ms; /* a keep-alive connection with no request is closed */
    } http;
    struct {
        int concurrency;       /* executions running at once in this process */
        int64_t lease_ms;      /* a claimed job is another worker's again after this */
        int64_t heartbeat_ms;  /* how often a running job's lease is renewed */
        int64_t park_after_ms; /* waits at least this long park the execution in storage */
    } worker;
    struct {
        int64_t max_age_ms;  /* finished executions older than this are deleted; 0: no bound */
        int64_t max_count;   /* keep at most this many finished executions; -1: no bound */
        int64_t interval_ms; /* how often retention runs */
    } retention;
    struct {
        int64_t max_wait_ms;  /* upper bound of a wait-mode webhook's response time */
        int64_t seen_ttl_ms;  /* how long Standard Webhooks message ids are remembered */
        int64_t tolerance_ms; /* accepted clock skew of signed webhook timestamps */
    } webhooks;
    struct {
        int batch; /* operations per group commit */
    } store;
    struct {
        int64_t retention_ms; /* stored events older than this are deleted */
        int max_depth;        /* events a chain of workflows may emit in a row */
    } events;
    struct {
        int max_per_host;       /* polls of one host per period */
        int64_t host_period_ms; /* that period */
    } polls;
    char clock[64]; /* "system", or "manual[@EPOCH_MS]" */
    /* private: where each value came from, by setting index */
    struct {
        int rank;
        char source[300];
        char text[32]; /* durations and sizes as written, when short enough ("" otherwise) */
    } af__origin[AF_CONFIG_SETTINGS];
} af_config_t;

/* The start of a manual clock the `clock` setting asks for (epoch ms; "manual" alone: now), 0
 * for the system's clock, or -1 when the setting is not system, manual or manual@EPOCH_MS. */
int64_t af_config_clock_start(const af_config_t *cfg);

/* The table of settings (AF_CONFIG_SETTINGS entries, in file order), for help texts and docs.
 * Borrowed, static. *n (may be NULL) receives the count. */
const af_config_setting_t *af_config_settings(size_t *n);

/* Fills cfg with the defaults, every value's source "default". Cannot fail. */
void af_config_defaults(af_config_t *cfg);

/* Loads a config file: a TOML subset of `# comments`, `[section]` headers and `key = value`
 * lines, where a value is a "string" (escapes \" \\ \n \t), a 'literal string', an integer or
 * true/false; keys may also be written dotted (`http.max_body = "2MB"`) outside a section. Sizes
 * may be strings or integers (bytes), durations are strings. An unknown section or key, a value of
 * the wrong type, a bad value or a key given twice is an error whose location is "PATH:LINE" and
 * whose message names the key; cfg may then hold the values of the lines before it. AF_EIO when
 * the file cannot be read. Values of a higher rank (env, flags) already in cfg are kept. */
int af_config_load_file(af_config_t *cfg, const char *path, af_error_t *err);

/* As af_config_load_file, from text in memory; `name` is the file name used in messages. */
int af_config_load_text(af_config_t *cfg, const char *name, const char *text, size_t len,
                        af_error_t *err);

/* Loads AGENTFLOW_<SECTION>_<KEY> variables (AGENTFLOW_WORKER_LEASE, AGENTFLOW_LISTEN) from envp,
 * a NULL-terminated array of "NAME=value" strings (borrowed; NULL means this process's environ).
 * Empty values and AGENTFLOW_* names that are not settings are ignored. A bad value is an error
 * whose location is the variable's name; the variables before it have been applied. Values given
 * by flags already in cfg are kept. */
int af_config_load_env(af_config_t *cfg, const char *const *envp, af_error_t *err);

/* Sets one setting, "section.key" (or "listen"), from its text form, as a flag would: the rank is
 * AF_CONFIG_FROM_FLAG and its source "flag". AF_ENOTFOUND for an unknown key, AF_EINVAL for a bad
 * value; the message starts with the key: "worker.lease: invalid duration 'abc' (use e.g. "30s")".
 * cfg is unchanged on error. */
int af_config_set(af_config_t *cfg, const char *key, const char *value, af_error_t *err);

/* As af_config_set, with the rank and the source named: `origin` (e.g. "--listen") becomes the
 * error's location and the value's source ("flag --listen"). rank is an af_config_rank_t. */
int af_config_set_from(af_config_t *cfg, const char *key, const char *value, int rank,
                       const char *origin, af_error_t *err);

/* Checks what no single value shows: worker.heartbeat shorter than worker.lease. Call it once
 * everything is loaded. AF_EINVAL with a message naming both settings and their sources. */
int af_config_check(const af_config_t *cfg, af_error_t *err);

/* The effective settings as a new JSON object (caller decrefs), by section:
 * {"listen": {"value": "127.0.0.1:8080", "source": "default"},
 *  "worker": {"lease": {"value": "45s", "source": "file agentflow.toml:7"}, ...}, ...}.
 * Values are written as the file would take them: durations and sizes as they were given
 * ("24h", "1.5s", "1MB"; very long texts in a canonical form), integers as numbers; sources are
 * "default", "file PATH:LINE", "env NAME" or "flag [ORIGIN]". NULL on out of memory. */
json_t *af_config_to_json(const af_config_t *cfg);

/* The source of a setting's value ("default", "env AGENTFLOW_LISTEN"...), or NULL for an unknown
 * key. Borrowed from cfg. */
const char *af_config_source(const af_config_t *cfg, const char *key);

#endif
