/* test_config.c -- the settings of `agentflow serve` (core/config.c): defaults, the TOML subset of
 * config files and its errors, the AGENTFLOW_* environment, flags, precedence, JSON output. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"

static int load(af_config_t *cfg, const char *text, af_error_t *err) {
    return af_config_load_text(cfg, "agentflow.toml", text, strlen(text), err);
}

/* Loads text into fresh defaults and expects it to fail with "agentflow.toml:LINE: MESSAGE". */
static void expect_file_error(const char *text, int code, const char *expected) {
    af_config_t cfg;
    af_error_t err = {0};
    char buf[1400];
    af_config_defaults(&cfg);
    int rc = load(&cfg, text, &err);
    af_error_text(&err, buf, sizeof buf);
    if (rc != code || strcmp(buf, expected) != 0) {
        fail_msg("for:\n%s\nexpected %d \"%s\"\n     got %d \"%s\"", text, code, expected, rc, buf);
    }
}

static void test_defaults(void **state) {
    (void)state;
    af_config_t cfg;
    af_config_defaults(&cfg);
    assert_string_equal(cfg.listen, "127.0.0.1:8080");
    assert_string_equal(cfg.data, "agentflow-data");
    assert_int_equal(cfg.durability, AF_CONFIG_DURABILITY_NORMAL);
    assert_int_equal(cfg.http.max_body, 1 << 20);
    assert_int_equal(cfg.http.max_header, 16 << 10);
    assert_int_equal(cfg.http.max_headers, 100);
    assert_int_equal(cfg.http.read_timeout_ms, 30000);
    assert_int_equal(cfg.http.idle_timeout_ms, 60000);
    assert_int_equal(cfg.worker.concurrency, 1000);
    assert_int_equal(cfg.worker.lease_ms, 30000);
    assert_int_equal(cfg.worker.heartbeat_ms, 10000);
    assert_int_equal(cfg.worker.park_after_ms, 2000);
    assert_int_equal(cfg.retention.max_age_ms, 30LL * 86400000);
    assert_int_equal(cfg.retention.max_count, -1);
    assert_int_equal(cfg.retention.interval_ms, 60000);
    assert_int_equal(cfg.webhooks.max_wait_ms, 30000);
    assert_int_equal(cfg.webhooks.seen_ttl_ms, 24LL * 3600000);
    assert_int_equal(cfg.webhooks.tolerance_ms, 300000);
    assert_int_equal(cfg.store.batch, 1024);
    assert_string_equal(af_config_source(&cfg, "worker.lease"), "default");
    assert_null(af_config_source(&cfg, "worker.nope"));
    af_error_t err = {0};
    assert_int_equal(af_config_check(&cfg, &err), 0);

    /* the table: every key has its env name, a default that parses, a description */
    size_t n;
    const af_config_setting_t *s = af_config_settings(&n);
    assert_int_equal(n, AF_CONFIG_SETTINGS);
    for (size_t i = 0; i < n; i++) {
        char env[128] = "AGENTFLOW_";
        size_t k = strlen(env);
        for (const char *c = s[i].key; *c; c++) {
            env[k++] = *c == '.' ? '_' : (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
        }
        env[k] = '\0';
        assert_string_equal(s[i].env, env);
        assert_non_null(s[i].description);
        af_config_t c2;
        af_config_defaults(&c2);
        assert_int_equal(af_config_set(&c2, s[i].key, s[i].fallback, &err), 0);
        assert_memory_equal(&c2, &cfg, offsetof(af_config_t, af__origin));
    }
}

static void test_file_values(void **state) {
    (void)state;
    af_config_t cfg;
    af_error_t err = {0};
    af_config_defaults(&cfg);
    const char *text = "# agentflow.toml\n"
                       "listen = \"0.0.0.0:9000\"   # all interfaces\n"
                       "data = 'C:\\data\\af'\n"
                       "durability = \"strict\"\n"
                       "\n"
                       "  [http]\n"
                       "max_body = \"2MB\"\n"
                       "max_header = 8192\n"
                       "max_headers = 1_000\n"
                       "read_timeout = \"1.5s\"\r\n"
                       "idle_timeout=\"2m\"\n"
                       "[ worker ]  # spaces in headers are fine\n"
                       "concurrency = +50\n"
                       "lease = \"45s\"\n"
                       "heartbeat = \"15s\"\n"
                       "park_after = \"0\"\n"
                       "[retention]\n"
                       "max_age = \"0\"\n"
                       "max_count = -1\n"
                       "interval = \"500ms\"\n"
                       "[webhooks]\n"
                       "max_wait = \"1m\"\n"
                       "seen_ttl = \"7d\"\n"
                       "tolerance = \"5m\"\n"
                       "[store]\n"
                       "batch = 64\n"
                       "\t# indented comment\n";
    int rc = load(&cfg, text, &err);
    if (rc != 0) {
        char buf[1400];
        fail_msg("%s", af_error_text(&err, buf, sizeof buf));
    }
    assert_string_equal(cfg.listen, "0.0.0.0:9000");
    assert_string_equal(cfg.data, "C:\\data\\af"); /* literal strings take no escapes */
    assert_int_equal(cfg.durability, AF_CONFIG_DURABILITY_STRICT);
    assert_int_equal(cfg.http.max_body, 2 << 20);
    assert_int_equal(cfg.http.max_header, 8192);
    assert_int_equal(cfg.http.max_headers, 1000);
    assert_int_equal(cfg.http.read_timeout_ms, 1500);
    assert_int_equal(cfg.http.idle_timeout_ms, 120000);
    assert_int_equal(cfg.worker.concurrency, 50);
    assert_int_equal(cfg.worker.lease_ms, 45000);
    assert_int_equal(cfg.worker.heartbeat_ms, 15000);
    assert_int_equal(cfg.worker.park_after_ms, 0);
    assert_int_equal(cfg.retention.max_age_ms, 0);
    assert_int_equal(cfg.retention.max_count, -1);
    assert_int_equal(cfg.retention.interval_ms, 500);
    assert_int_equal(cfg.webhooks.max_wait_ms, 60000);
    assert_int_equal(cfg.webhooks.seen_ttl_ms, 7LL * 86400000);
    assert_int_equal(cfg.store.batch, 64);
    assert_string_equal(af_config_source(&cfg, "listen"), "file agentflow.toml:2");
    assert_string_equal(af_config_source(&cfg, "worker.lease"), "file agentflow.toml:14");
    assert_string_equal(af_config_source(&cfg, "webhooks.tolerance"), "file agentflow.toml:24");
    assert_int_equal(af_config_check(&cfg, &err), 0);
}

static void test_file_strings_and_keys(void **state) {
    (void)state;
    af_config_t cfg;
    af_error_t err = {0};
    af_config_defaults(&cfg);
    /* escapes, '#' inside strings, dotted keys at the top level, an empty file's worth of lines */
    const char *text = "data = \"/srv/a \\\"q\\\" b\\\\c\\n#not-a-comment\\td\"\n"
                       "http.max_body = \"64KB\" # dotted key\n"
                       "worker.lease = \"1h\"\n";
    assert_int_equal(load(&cfg, text, &err), 0);
    assert_string_equal(cfg.data, "/srv/a \"q\" b\\c\n#not-a-comment\td");
    assert_int_equal(cfg.http.max_body, 64 << 10);
    assert_int_equal(cfg.worker.lease_ms, 3600000);
    /* no trailing newline; empty text */
    af_config_defaults(&cfg);
    assert_int_equal(load(&cfg, "[store]\nbatch = 2", &err), 0);
    assert_int_equal(cfg.store.batch, 2);
    assert_int_equal(load(&cfg, "", &err), 0);
    assert_int_equal(load(&cfg, "\n\n# only comments\n", &err), 0);
    assert_int_equal(cfg.store.batch, 2);
}

static void test_file_errors(void **state) {
    (void)state;
    /* the example of the docs */
    expect_file_error("[worker]\n\n\n\n\n\nlease = \"abc\"\n", AF_EINVAL,
                      "agentflow.toml:7: worker.lease: invalid duration 'abc' (use e.g. \"30s\")");
    /* unknown keys and sections name the key and the line */
    expect_file_error("listen = \"127.0.0.1:1\"\n[http]\nmax_bodyy = \"1MB\"\n", AF_EINVAL,
                      "agentflow.toml:3: unknown key 'http.max_bodyy'");
    expect_file_error("colour = \"blue\"\n", AF_EINVAL, "agentflow.toml:1: unknown key 'colour'");
    expect_file_error("# c\n[nope]\n", AF_EINVAL, "agentflow.toml:2: unknown section [nope]");
    expect_file_error("[http]\nlisten = \"x:1\"\n", AF_EINVAL,
                      "agentflow.toml:2: unknown key 'http.listen'");
    /* wrong types */
    expect_file_error("[http]\nmax_headers = \"100\"\n", AF_EINVAL,
                      "agentflow.toml:2: http.max_headers: expected an integer, got a string");
    expect_file_error("[worker]\nlease = 30\n", AF_EINVAL,
                      "agentflow.toml:2: worker.lease: expected a duration string (e.g. \"30s\"), "
                      "got an integer");
    expect_file_error("listen = 8080\n", AF_EINVAL,
                      "agentflow.toml:1: listen: expected a string, got an integer");
    expect_file_error("[store]\nbatch = true\n", AF_EINVAL,
                      "agentflow.toml:2: store.batch: expected an integer, got a boolean");
    expect_file_error("[http]\nmax_body = false\n", AF_EINVAL,
                      "agentflow.toml:2: http.max_body: expected a size (\"1MB\" or a number of "
                      "bytes), got a boolean");
    /* bad values */
    expect_file_error("[http]\nmax_body = \"1TB\"\n", AF_EINVAL,
                      "agentflow.toml:2: http.max_body: invalid size '1TB' (use e.g. \"1MB\")");
    expect_file_error("[http]\nmax_body = 0\n", AF_EINVAL,
                      "agentflow.toml:2: http.max_body: must be at least 1 (got '0')");
    expect_file_error("durability = \"fast\"\n", AF_EINVAL,
                      "agentflow.toml:1: durability: invalid value 'fast' (one of normal/strict)");
    expect_file_error("[worker]\nconcurrency = 0\n", AF_EINVAL,
                      "agentflow.toml:2: worker.concurrency: must be at least 1 (got '0')");
    expect_file_error("[worker]\nconcurrency = 99999999999\n", AF_EINVAL,
                      "agentflow.toml:2: worker.concurrency: '99999999999' is too large");
    expect_file_error("[worker]\nlease = \"0\"\n", AF_EINVAL,
                      "agentflow.toml:2: worker.lease: must be longer than 0 (got '0')");
    expect_file_error("[retention]\nmax_count = -2\n", AF_EINVAL,
                      "agentflow.toml:2: retention.max_count: must be at least -1 (got '-2')");
    expect_file_error("listen = \"localhost\"\n", AF_EINVAL,
                      "agentflow.toml:1: listen: 'localhost' is not HOST:PORT (e.g. "
                      "\"127.0.0.1:8080\")");
    expect_file_error("data = \"\"\n", AF_EINVAL, "agentflow.toml:1: data: must not be empty");
    /* syntax */
    expect_file_error("[store]\nbatch = 1\nbatch = 2\n", AF_EINVAL,
                      "agentflow.toml:3: store.batch: given twice");
    expect_file_error("[store\n", AF_ESYNTAX,
                      "agentflow.toml:1: a section header is [name] alone on its line");
    expect_file_error("[store] x\n", AF_ESYNTAX,
                      "agentflow.toml:1: a section header is [name] alone on its line");
    expect_file_error("[[store]]\n", AF_ESYNTAX,
                      "agentflow.toml:1: arrays of tables are not supported");
    expect_file_error("\nlisten\n", AF_ESYNTAX, "agentflow.toml:2: expected key = value");
    expect_file_error("listen =\n", AF_ESYNTAX,
                      "agentflow.toml:1: listen: missing value after '='");
    expect_file_error("data = \"abc\n", AF_ESYNTAX, "agentflow.toml:1: data: unterminated string");
    expect_file_error("data = \"a\\qb\"\n", AF_ESYNTAX,
                      "agentflow.toml:1: data: unknown escape '\\q' (use \\\" \\\\ \\n or \\t)");
    expect_file_error("data = \"\"\"x\"\"\"\n", AF_ESYNTAX,
                      "agentflow.toml:1: data: multi-line strings are not supported");
    expect_file_error("[store]\nbatch = 1.5\n", AF_ESYNTAX,
                      "agentflow.toml:2: store.batch: unsupported value '1.5' (a value is a "
                      "\"string\", an integer, true or false)");
    expect_file_error("[store]\nbatch = [1]\n", AF_ESYNTAX,
                      "agentflow.toml:2: store.batch: unsupported value '[' (a value is a "
                      "\"string\", an integer, true or false)");
    expect_file_error("[store]\nbatch = 1_\n", AF_ESYNTAX,
                      "agentflow.toml:2: store.batch: unsupported value '1_' (a value is a "
                      "\"string\", an integer, true or false)");
    expect_file_error("[store]\nbatch = 1 2\n", AF_ESYNTAX,
                      "agentflow.toml:2: store.batch: unexpected text after the value");
    expect_file_error("data = \"x\" y\n", AF_ESYNTAX,
                      "agentflow.toml:1: data: unexpected text after the value");
    expect_file_error("# ok\ndata = \"\xff\"\n", AF_ESYNTAX, "agentflow.toml:2: invalid UTF-8");
    {
        static const char nul[] = "data = \"a\0b\"\n";
        af_config_t cfg;
        af_error_t err = {0};
        af_config_defaults(&cfg);
        assert_int_equal(af_config_load_text(&cfg, "x.toml", nul, sizeof nul - 1, &err),
                         AF_ESYNTAX);
        assert_string_equal(err.where, "x.toml:1");
    }
}

static void test_file_on_disk(void **state) {
    (void)state;
    char path[] = "/tmp/af-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "[worker]\nlease = \"1m\"\nheartbeat = \"x\"\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    af_config_t cfg;
    af_error_t err = {0};
    af_config_defaults(&cfg);
    assert_int_equal(af_config_load_file(&cfg, path, &err), AF_EINVAL);
    char where[300];
    snprintf(where, sizeof where, "%s:3", path);
    assert_string_equal(err.where, where);
    assert_string_equal(err.msg, "worker.heartbeat: invalid duration 'x' (use e.g. \"10s\")");
    assert_int_equal(cfg.worker.lease_ms, 60000); /* the lines before the error were applied */
    unlink(path);
    assert_int_equal(af_config_load_file(&cfg, path, &err), AF_EIO);
    assert_non_null(strstr(err.msg, path));
}

static void test_env(void **state) {
    (void)state;
    af_config_t cfg;
    af_error_t err = {0};
    af_config_defaults(&cfg);
    const char *env[] = {"PATH=/usr/bin",
                         "AGENTFLOW_LISTEN=0.0.0.0:1234",
                         "AGENTFLOW_WORKER_LEASE=2m",
                         "AGENTFLOW_HTTP_MAX_BODY=512KB",
                         "AGENTFLOW_DURABILITY=strict",
                         "AGENTFLOW_RETENTION_MAX_COUNT=10",
                         "AGENTFLOW_DATA=",          /* empty: ignored */
                         "AGENTFLOW_PLUGIN_PATH=/x", /* other agentflow variables: ignored */
                         "AGENTFLOW_SERVER=http://h:1",
                         "AGENTFLOW_NO_SUCH_SETTING",
                         "AGENTFLOW_",
                         "AGENTFLOW_=",
                         "agentflow_store_batch=3", /* names are upper case */
                         "=",
                         "",
                         NULL};
    assert_int_equal(af_config_load_env(&cfg, env, &err), 0);
    assert_string_equal(cfg.listen, "0.0.0.0:1234");
    assert_int_equal(cfg.worker.lease_ms, 120000);
    assert_int_equal(cfg.http.max_body, 512 << 10);
    assert_int_equal(cfg.durability, AF_CONFIG_DURABILITY_STRICT);
    assert_int_equal(cfg.retention.max_count, 10);
    assert_string_equal(cfg.data, "agentflow-data");
    assert_int_equal(cfg.store.batch, 1024);
    assert_string_equal(af_config_source(&cfg, "worker.lease"), "env AGENTFLOW_WORKER_LEASE");
    assert_string_equal(af_config_source(&cfg, "data"), "default");

    /* errors name the variable */
    static const struct {
        const char *var, *msg;
    } bad[] = {
        {"AGENTFLOW_HTTP_MAX_BODY=lots", "AGENTFLOW_HTTP_MAX_BODY: invalid size 'lots' (use e.g. "
                                         "\"1MB\")"},
        {"AGENTFLOW_WORKER_LEASE=30x", "AGENTFLOW_WORKER_LEASE: invalid duration '30x' (use e.g. "
                                       "\"30s\")"},
        {"AGENTFLOW_STORE_BATCH=1k", "AGENTFLOW_STORE_BATCH: invalid integer '1k'"},
        {"AGENTFLOW_STORE_BATCH= 5", "AGENTFLOW_STORE_BATCH: invalid integer ' 5'"},
        {"AGENTFLOW_DURABILITY=NORMAL", "AGENTFLOW_DURABILITY: invalid value 'NORMAL' (one of "
                                        "normal/strict)"},
        {"AGENTFLOW_LISTEN=host:99999", "AGENTFLOW_LISTEN: 'host:99999' is not HOST:PORT (e.g. "
                                        "\"127.0.0.1:8080\")"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *one[] = {"AGENTFLOW_STORE_BATCH=7", bad[i].var, NULL};
        char buf[1400];
        af_config_defaults(&cfg);
        assert_int_equal(af_config_load_env(&cfg, one, &err), AF_EINVAL);
        assert_string_equal(af_error_text(&err, buf, sizeof buf), bad[i].msg);
        assert_int_equal(cfg.store.batch, 7); /* the variables before it were applied */
    }
}

static void test_env_from_process(void **state) {
    (void)state;
    af_config_t cfg;
    af_error_t err = {0};
    af_config_defaults(&cfg);
    setenv("AGENTFLOW_STORE_BATCH", "99", 1);
    assert_int_equal(af_config_load_env(&cfg, NULL, &err), 0);
    unsetenv("AGENTFLOW_STORE_BATCH");
    assert_int_equal(cfg.store.batch, 99);
}

static void test_set(void **state) {
    (void)state;
    af_config_t cfg;
    af_error_t err = {0};
    char buf[1400];
    af_config_defaults(&cfg);
    assert_int_equal(af_config_set(&cfg, "worker.park_after", "5s", &err), 0);
    assert_int_equal(cfg.worker.park_after_ms, 5000);
    assert_string_equal(af_config_source(&cfg, "worker.park_after"), "flag");
    assert_int_equal(
        af_config_set_from(&cfg, "listen", "[::1]:0", AF_CONFIG_FROM_FLAG, "--listen", &err), 0);
    assert_string_equal(cfg.listen, "[::1]:0");
    assert_string_equal(af_config_source(&cfg, "listen"), "flag --listen");

    /* errors: the key first; the config is unchanged */
    af_config_t before = cfg;
    assert_int_equal(af_config_set(&cfg, "worker.lease", "abc", &err), AF_EINVAL);
    assert_string_equal(af_error_text(&err, buf, sizeof buf),
                        "worker.lease: invalid duration 'abc' (use e.g. \"30s\")");
    assert_int_equal(af_config_set_from(&cfg, "http.max_headers", "-5", AF_CONFIG_FROM_FLAG,
                                        "--max-headers", &err),
                     AF_EINVAL);
    assert_string_equal(af_error_text(&err, buf, sizeof buf),
                        "--max-headers: http.max_headers: must be at least 1 (got '-5')");
    assert_int_equal(af_config_set(&cfg, "worker.nope", "1", &err), AF_ENOTFOUND);
    assert_string_equal(err.msg, "unknown setting 'worker.nope'");
    assert_int_equal(af_config_set(&cfg, "worker", "1", &err), AF_ENOTFOUND);
    assert_int_equal(af_config_set(&cfg, NULL, "1", &err), AF_ENOTFOUND);
    assert_int_equal(af_config_set(&cfg, "store.batch", NULL, &err), AF_EINVAL);
    assert_int_equal(af_config_set(&cfg, "store.batch", "", &err), AF_EINVAL);
    assert_int_equal(af_config_set(&cfg, "store.batch", "12abc", &err), AF_EINVAL);
    assert_int_equal(af_config_set(&cfg, "store.batch", "99999999999999999999999", &err),
                     AF_EINVAL);
    assert_int_equal(af_config_set(&cfg, "http.max_body", "-1MB", &err), AF_EINVAL);
    assert_int_equal(af_config_set(&cfg, "http.max_body", "1 MB", &err), AF_EINVAL);
    assert_int_equal(af_config_set(&cfg, "http.read_timeout", "-1s", &err), AF_EINVAL);
    assert_int_equal(af_config_set(&cfg, "http.read_timeout", "1e400s", &err), AF_EINVAL);
    assert_int_equal(af_config_set(&cfg, "durability", "", &err), AF_EINVAL);
    assert_int_equal(af_config_set(&cfg, "listen", ":80", &err), AF_EINVAL);
    assert_int_equal(af_config_set(&cfg, "listen", "h:-1", &err), AF_EINVAL);
    assert_int_equal(af_config_set(&cfg, "listen", "h:", &err), AF_EINVAL);
    char longer[2000];
    memset(longer, 'd', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    assert_int_equal(af_config_set(&cfg, "data", longer, &err), AF_EINVAL);
    assert_string_equal(err.msg, "data: too long (at most 1023 bytes)");
    assert_memory_equal(&cfg, &before, sizeof cfg);
}

/* file < env < flags, whatever order the loaders run in */
static void test_precedence(void **state) {
    (void)state;
    const char *file = "[worker]\nlease = \"40s\"\nheartbeat = \"4s\"\nconcurrency = 4\n"
                       "[store]\nbatch = 8\n";
    const char *env[] = {"AGENTFLOW_WORKER_LEASE=50s", "AGENTFLOW_WORKER_HEARTBEAT=5s", NULL};
    for (int order = 0; order < 2; order++) {
        af_config_t cfg;
        af_error_t err = {0};
        af_config_defaults(&cfg);
        if (order == 0) { /* the natural order */
            assert_int_equal(load(&cfg, file, &err), 0);
            assert_int_equal(af_config_load_env(&cfg, env, &err), 0);
            assert_int_equal(af_config_set(&cfg, "worker.lease", "60s", &err), 0);
        } else { /* flags first, then env, then the file */
            assert_int_equal(af_config_set(&cfg, "worker.lease", "60s", &err), 0);
            assert_int_equal(af_config_load_env(&cfg, env, &err), 0);
            assert_int_equal(load(&cfg, file, &err), 0);
        }
        assert_int_equal(cfg.worker.lease_ms, 60000);       /* flag */
        assert_int_equal(cfg.worker.heartbeat_ms, 5000);    /* env */
        assert_int_equal(cfg.worker.concurrency, 4);        /* file */
        assert_int_equal(cfg.store.batch, 8);               /* file */
        assert_int_equal(cfg.retention.interval_ms, 60000); /* default */
        assert_string_equal(af_config_source(&cfg, "worker.lease"), "flag");
        assert_string_equal(af_config_source(&cfg, "worker.heartbeat"),
                            "env AGENTFLOW_WORKER_HEARTBEAT");
        assert_string_equal(af_config_source(&cfg, "worker.concurrency"), "file agentflow.toml:4");
        assert_string_equal(af_config_source(&cfg, "retention.interval"), "default");
        /* a later flag replaces an earlier flag */
        assert_int_equal(af_config_set(&cfg, "worker.lease", "70s", &err), 0);
        assert_int_equal(cfg.worker.lease_ms, 70000);
        /* a value of a lower rank is still checked */
        assert_int_equal(load(&cfg, "[worker]\nlease = \"bad\"\n", &err), AF_EINVAL);
    }
}

static void test_check(void **state) {
    (void)state;
    af_config_t cfg;
    af_error_t err = {0};
    af_config_defaults(&cfg);
    assert_int_equal(af_config_set(&cfg, "worker.lease", "10s", &err), 0);
    assert_int_equal(af_config_check(&cfg, &err), AF_EINVAL);
    assert_string_equal(err.msg, "worker.heartbeat (10.00s, default) must be shorter than "
                                 "worker.lease (10.00s, flag)");
}

static void test_json(void **state) {
    (void)state;
    af_config_t cfg;
    af_error_t err = {0};
    af_config_defaults(&cfg);
    const char *env[] = {"AGENTFLOW_HTTP_MAX_BODY=1536", NULL};
    assert_int_equal(load(&cfg, "durability = \"strict\"\n[worker]\nlease = \"90s\"\n", &err), 0);
    assert_int_equal(af_config_load_env(&cfg, env, &err), 0);
    assert_int_equal(af_config_set(&cfg, "webhooks.tolerance", "1.5s", &err), 0);
    /* too long to keep as written: shown in the largest unit that is exact */
    assert_int_equal(
        af_config_set(&cfg, "http.read_timeout", "00000000000000000000000000000090s", &err), 0);
    assert_int_equal(
        af_config_set(&cfg, "http.idle_timeout", "0000000000000000000000000001500ms", &err), 0);
    assert_int_equal(
        af_config_set(&cfg, "http.max_header", "00000000000000000000000000000000002048", &err), 0);
    json_t *j = af_config_to_json(&cfg);
    assert_non_null(j);
    char *text = af_json_dumps(j, AF_JSON_SORT);
    json_t *l = json_object_get(j, "listen");
    assert_string_equal(json_string_value(json_object_get(l, "value")), "127.0.0.1:8080");
    assert_string_equal(json_string_value(json_object_get(l, "source")), "default");
#define VALUE(section, key)                                                                        \
    json_object_get(json_object_get(json_object_get(j, section), key), "value")
#define SOURCE(section, key)                                                                       \
    json_string_value(json_object_get(json_object_get(json_object_get(j, section), key), "sourc"   \
                                                                                         "e"))
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "durability"), "value")), "strict");
    assert_string_equal(json_string_value(VALUE("worker", "lease")), "90s");
    assert_string_equal(SOURCE("worker", "lease"), "file agentflow.toml:3");
    assert_string_equal(json_string_value(VALUE("http", "max_body")), "1536");
    assert_string_equal(SOURCE("http", "max_body"), "env AGENTFLOW_HTTP_MAX_BODY");
    assert_string_equal(json_string_value(VALUE("http", "max_header")), "2KB");
    assert_int_equal(json_integer_value(VALUE("http", "max_headers")), 100);
    assert_string_equal(json_string_value(VALUE("retention", "max_age")), "30d");
    assert_int_equal(json_integer_value(VALUE("retention", "max_count")), -1);
    assert_string_equal(json_string_value(VALUE("webhooks", "seen_ttl")), "24h");
    assert_string_equal(json_string_value(VALUE("webhooks", "tolerance")), "1.5s");
    assert_string_equal(json_string_value(VALUE("http", "read_timeout")), "90s");
    assert_string_equal(json_string_value(VALUE("http", "idle_timeout")), "1500ms");
    assert_string_equal(SOURCE("webhooks", "tolerance"), "flag");
    assert_string_equal(json_string_value(VALUE("worker", "park_after")), "2s");
    assert_int_equal(json_integer_value(VALUE("store", "batch")), 1024);
    /* every setting is there, and each value reads back to the same config */
    size_t n;
    const af_config_setting_t *s = af_config_settings(&n);
    af_config_t again;
    af_config_defaults(&again);
    for (size_t i = 0; i < n; i++) {
        const char *dot = strchr(s[i].key, '.');
        json_t *e;
        if (dot) {
            char section[32];
            snprintf(section, sizeof section, "%.*s", (int)(dot - s[i].key), s[i].key);
            e = json_object_get(json_object_get(j, section), dot + 1);
        } else {
            e = json_object_get(j, s[i].key);
        }
        assert_non_null(e);
        json_t *v = json_object_get(e, "value");
        char vbuf[1100];
        if (json_is_integer(v)) {
            snprintf(vbuf, sizeof vbuf, "%lld", (long long)json_integer_value(v));
        } else {
            snprintf(vbuf, sizeof vbuf, "%s", json_string_value(v));
        }
        assert_int_equal(af_config_set(&again, s[i].key, vbuf, &err), 0);
    }
    assert_memory_equal(&again, &cfg, offsetof(af_config_t, af__origin));
    free(text);
    json_decref(j);
#undef VALUE
#undef SOURCE
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_values),
        cmocka_unit_test(test_file_strings_and_keys),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_file_on_disk),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_env_from_process),
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
