/* test_webhook_verify.c -- webhook triggers' pure logic (triggers/webhook_verify.c): GitHub and
 * Standard Webhooks signatures with published vectors, header rules, body and query decoding. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "triggers/webhook_verify.h"

/* ---- helpers ---- */

/* Headers for one check: up to 8 name/value pairs, NULL-terminated. */
typedef struct hdrs_s {
    const char *names[8];
    const char *values[8];
    af_webhook_headers_t h;
} hdrs_t;

static af_webhook_headers_t *headers(hdrs_t *s, ...) {
    va_list ap;
    va_start(ap, s);
    size_t n = 0;
    const char *name;
    while ((name = va_arg(ap, const char *)) != NULL) {
        assert_true(n < 8);
        s->names[n] = name;
        s->values[n] = va_arg(ap, const char *);
        n++;
    }
    va_end(ap);
    s->h.names = s->names;
    s->h.values = s->values;
    s->h.count = n;
    return &s->h;
}

/* Fails unless rc and err are `code` with a message containing every given piece. */
static void expect_error(int rc, const af_error_t *err, int code, const char *piece,
                         const char *piece2) {
    if (rc != code || err->code != code) {
        fail_msg("expected %s, got rc %d (%s) \"%s\"", af_err_name(code), rc, af_err_name(rc),
                 err->msg);
    }
    if (piece != NULL && strstr(err->msg, piece) == NULL) {
        fail_msg("message \"%s\" lacks \"%s\"", err->msg, piece);
    }
    if (piece2 != NULL && strstr(err->msg, piece2) == NULL) {
        fail_msg("message \"%s\" lacks \"%s\"", err->msg, piece2);
    }
}

static void expect_ok(int rc, const af_error_t *err) {
    if (rc != 0) {
        fail_msg("unexpected rc %d: %s", rc, err->msg);
    }
}

static json_t *load(const char *text) {
    af_error_t err = {0};
    json_t *v = af_json_loads(text, strlen(text), 128, &err);
    if (v == NULL) {
        fail_msg("loading %s: %s", text, err.msg);
    }
    return v;
}

/* Fails unless got (stolen) equals the JSON text want. */
static void expect_json(json_t *got, const char *want) {
    json_t *w = load(want);
    if (got == NULL || !json_equal(got, w)) {
        char *text = got != NULL ? af_json_dumps(got, AF_JSON_SORT) : NULL;
        fail_msg("got %s, want %s", text != NULL ? text : "NULL", want);
    }
    json_decref(w);
    json_decref(got);
}

/* ---- GitHub-style HMAC ---- */

/* GitHub's documented example ("Validating webhook deliveries"), checked with
 * `printf 'Hello, World!' | openssl dgst -sha256 -hmac "It's a Secret to Everybody"`. */
#define GH_SECRET "It's a Secret to Everybody"
#define GH_BODY   "Hello, World!"
#define GH_HEX    "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

static const char *const gh_secrets[] = {GH_SECRET};

static int gh_verify(const char *header_value, const char *body, af_error_t *err) {
    hdrs_t s;
    af_webhook_hmac_t cfg = {.secrets = gh_secrets, .nsecrets = 1};
    af_webhook_headers_t *h = header_value != NULL
                                  ? headers(&s, "X-Hub-Signature-256", header_value, NULL)
                                  : headers(&s, "Content-Type", "text/plain", NULL);
    return af_webhook_hmac_verify(&cfg, af_webhook_headers_get, h, body, strlen(body), err);
}

static void test_hmac_github_vector(void **state) {
    af_error_t err = {0};
    expect_ok(gh_verify("sha256=" GH_HEX, GH_BODY, &err), &err);

    /* Upper-case hex and a lower-case header name both pass. */
    hdrs_t s;
    af_webhook_hmac_t cfg = {.secrets = gh_secrets, .nsecrets = 1};
    char upper[] = "sha256=" GH_HEX;
    for (char *p = upper + 7; *p != '\0'; p++) {
        *p = (char)(*p >= 'a' && *p <= 'f' ? *p - 32 : *p);
    }
    expect_ok(af_webhook_hmac_verify(&cfg, af_webhook_headers_get,
                                     headers(&s, "x-hub-signature-256", upper, NULL), GH_BODY,
                                     strlen(GH_BODY), &err),
              &err);
}

static void test_hmac_refusals(void **state) {
    af_error_t err = {0};
    /* One digit changed; the body changed. */
    expect_error(
        gh_verify("sha256=657107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
                  GH_BODY, &err),
        &err, AF_EINVAL, "X-Hub-Signature-256: the signature does not match", NULL);
    expect_error(
        gh_verify("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e18",
                  GH_BODY, &err),
        &err, AF_EINVAL, "does not match", NULL);
    expect_error(gh_verify("sha256=" GH_HEX, "Hello, World?", &err), &err, AF_EINVAL,
                 "does not match", NULL);
    expect_error(gh_verify(NULL, GH_BODY, &err), &err, AF_EINVAL,
                 "missing header X-Hub-Signature-256", NULL);
    expect_error(gh_verify("sha1=" GH_HEX, GH_BODY, &err), &err, AF_EINVAL,
                 "does not start with \"sha256=\"", NULL);
    expect_error(gh_verify(GH_HEX, GH_BODY, &err), &err, AF_EINVAL, "does not start with", NULL);
    /* 63 digits: odd; 62: too short; a non-hex character. */
    expect_error(gh_verify("sha256=57107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
                           GH_BODY, &err),
                 &err, AF_EINVAL, "odd number of hex digits (63)", NULL);
    expect_error(gh_verify("sha256=7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
                           GH_BODY, &err),
                 &err, AF_EINVAL, "has 62 hex digits, expected 64", NULL);
    expect_error(gh_verify("sha256=z57107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
                           GH_BODY, &err),
                 &err, AF_EINVAL, "not hexadecimal", NULL);
    expect_error(gh_verify("sha256=", GH_BODY, &err), &err, AF_EINVAL, "has 0 hex digits", NULL);
}

static void test_hmac_custom_header_and_rotation(void **state) {
    af_error_t err = {0};
    hdrs_t s;
    const char *const rotated[] = {"the old secret", GH_SECRET};
    af_webhook_hmac_t cfg = {
        .header = "X-Signature", .prefix = "", .secrets = rotated, .nsecrets = 2};
    af_webhook_headers_t *h = headers(&s, "x-signature", GH_HEX, NULL);
    expect_ok(
        af_webhook_hmac_verify(&cfg, af_webhook_headers_get, h, GH_BODY, strlen(GH_BODY), &err),
        &err);

    /* Only the old secret: no match. The default header is not looked at. */
    cfg.nsecrets = 1;
    expect_error(
        af_webhook_hmac_verify(&cfg, af_webhook_headers_get, h, GH_BODY, strlen(GH_BODY), &err),
        &err, AF_EINVAL, "X-Signature: the signature does not match", NULL);
    h = headers(&s, "X-Hub-Signature-256", "sha256=" GH_HEX, NULL);
    cfg.nsecrets = 2;
    expect_error(
        af_webhook_hmac_verify(&cfg, af_webhook_headers_get, h, GH_BODY, strlen(GH_BODY), &err),
        &err, AF_EINVAL, "missing header X-Signature", NULL);

    /* Configurations that cannot work. */
    af_webhook_hmac_t none = {.secrets = rotated, .nsecrets = 0};
    expect_error(af_webhook_hmac_verify(&none, af_webhook_headers_get, h, "", 0, &err), &err,
                 AF_EDEFINITION, "no HMAC secret", NULL);
    const char *const empty[] = {GH_SECRET, ""};
    af_webhook_hmac_t with_empty = {.secrets = empty, .nsecrets = 2};
    expect_error(af_webhook_hmac_verify(&with_empty, af_webhook_headers_get, h, "", 0, &err), &err,
                 AF_EDEFINITION, "secret #2 is empty", NULL);
}

static void test_hmac_sign(void **state) {
    af_error_t err = {0};
    char out[80];
    expect_ok(
        af_webhook_hmac_sign(GH_SECRET, NULL, GH_BODY, strlen(GH_BODY), out, sizeof out, &err),
        &err);
    assert_string_equal(out, "sha256=" GH_HEX);
    expect_ok(af_webhook_hmac_sign(GH_SECRET, "", GH_BODY, strlen(GH_BODY), out, 65, &err), &err);
    assert_string_equal(out, GH_HEX);
    expect_error(af_webhook_hmac_sign(GH_SECRET, NULL, GH_BODY, strlen(GH_BODY), out, 71, &err),
                 &err, AF_EINVAL, "need 72", NULL);
    expect_error(af_webhook_hmac_sign("", NULL, GH_BODY, strlen(GH_BODY), out, sizeof out, &err),
                 &err, AF_EDEFINITION, "empty", NULL);
}

/* ---- Standard Webhooks ---- */

/* The test vector of the Standard Webhooks reference libraries, checked with
 * `openssl dgst -sha256 -mac HMAC -macopt hexkey:<decoded secret> -binary | base64`. */
#define SW_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SW_ID     "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SW_TS     1614265330
#define SW_TS_S   "1614265330"
#define SW_BODY   "{\"test\": 2432232314}"
#define SW_SIG    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
/* Another valid secret (of 24 zero bytes) and a well-formed signature that matches nothing. */
#define SW_OTHER_SECRET "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define SW_ZERO_SIG     "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

static const char *const sw_secrets[] = {SW_SECRET};

/* Verifies the vector's id and body with the given timestamp and signature headers at `now`. */
static int sw_verify_at(const char *const *secrets, size_t n, int64_t now, int64_t tolerance,
                        const char *ts, const char *sig, const char *body, af_error_t *err) {
    hdrs_t s;
    af_webhook_headers_t *h =
        headers(&s, "Webhook-Id", SW_ID, "Webhook-Timestamp", ts, "Webhook-Signature", sig, NULL);
    af_webhook_std_t cfg = {.secrets = secrets, .nsecrets = n, .now = now, .tolerance = tolerance};
    return af_webhook_std_verify(&cfg, af_webhook_headers_get, h, body, strlen(body), err);
}

static int sw_verify(int64_t now, const char *sig, af_error_t *err) {
    return sw_verify_at(sw_secrets, 1, now, 0, SW_TS_S, sig, SW_BODY, err);
}

static void test_std_vector(void **state) {
    af_error_t err = {0};
    expect_ok(sw_verify(SW_TS, SW_SIG, &err), &err);

    char sig[AF_WEBHOOK_STD_SIG_SIZE];
    expect_ok(af_webhook_std_sign(SW_SECRET, SW_ID, SW_TS, SW_BODY, strlen(SW_BODY), sig,
                                  sizeof sig, &err),
              &err);
    assert_string_equal(sig, SW_SIG);
    expect_error(af_webhook_std_sign(SW_SECRET, SW_ID, SW_TS, SW_BODY, strlen(SW_BODY), sig,
                                     sizeof sig - 1, &err),
                 &err, AF_EINVAL, "buffer", NULL);

    /* The same key given as bare base64 (no whsec_ prefix). */
    const char *const bare[] = {"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"};
    expect_ok(sw_verify_at(bare, 1, SW_TS, 0, SW_TS_S, SW_SIG, SW_BODY, &err), &err);

    /* A changed body or id does not verify. */
    expect_error(
        sw_verify_at(sw_secrets, 1, SW_TS, 0, SW_TS_S, SW_SIG, "{\"test\": 2432232315}", &err),
        &err, AF_EINVAL, "no signature in webhook-signature matches", NULL);
    hdrs_t s;
    af_webhook_std_t cfg = {.secrets = sw_secrets, .nsecrets = 1, .now = SW_TS};
    af_webhook_headers_t *h = headers(&s, "webhook-id", "msg_other", "webhook-timestamp", SW_TS_S,
                                      "webhook-signature", SW_SIG, NULL);
    expect_error(
        af_webhook_std_verify(&cfg, af_webhook_headers_get, h, SW_BODY, strlen(SW_BODY), &err),
        &err, AF_EINVAL, "matches", NULL);
}

static void test_std_several_signatures(void **state) {
    af_error_t err = {0};
    /* The valid one second, third, after unknown versions and malformed entries. */
    expect_ok(sw_verify(SW_TS, SW_ZERO_SIG " " SW_SIG, &err), &err);
    expect_ok(sw_verify(SW_TS, "v1a,abcd  v1,!!! v2,xyz garbage v1, " SW_SIG, &err), &err);
    expect_ok(sw_verify(SW_TS, SW_SIG " " SW_ZERO_SIG, &err), &err);

    /* Only well-formed, wrong ones: the message counts them. */
    expect_error(sw_verify(SW_TS, SW_ZERO_SIG " " SW_ZERO_SIG, &err), &err, AF_EINVAL,
                 "(2 v1 signatures checked against 1 secret)", NULL);
    /* v1a (asymmetric) entries are ignored even when they carry the right bytes. */
    expect_error(sw_verify(SW_TS, "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", &err), &err,
                 AF_EINVAL, "webhook-signature has no v1 signature", NULL);
    /* Malformed headers. */
    expect_error(sw_verify(SW_TS, "", &err), &err, AF_EINVAL, "no v1 signature", NULL);
    expect_error(sw_verify(SW_TS, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", &err), &err,
                 AF_EINVAL, "no v1 signature", NULL);
    expect_error(sw_verify(SW_TS, "v1,not*base64", &err), &err, AF_EINVAL,
                 "(1 v1 signature checked", NULL);
    /* The right signature, truncated or padded out, does not pass. */
    expect_error(sw_verify(SW_TS, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1O", &err), &err,
                 AF_EINVAL, "matches", NULL);
    expect_error(sw_verify(SW_TS, SW_SIG "AAAA", &err), &err, AF_EINVAL, "matches", NULL);
    /* The padding may be left off. */
    expect_ok(sw_verify(SW_TS, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE", &err), &err);
}

static void test_std_rotated_secrets(void **state) {
    af_error_t err = {0};
    const char *const rotated[] = {SW_OTHER_SECRET, SW_SECRET};
    expect_ok(sw_verify_at(rotated, 2, SW_TS, 0, SW_TS_S, SW_SIG, SW_BODY, &err), &err);
    const char *const reversed[] = {SW_SECRET, SW_OTHER_SECRET};
    expect_ok(sw_verify_at(reversed, 2, SW_TS, 0, SW_TS_S, SW_SIG, SW_BODY, &err), &err);
    expect_error(sw_verify_at(rotated, 1, SW_TS, 0, SW_TS_S, SW_SIG, SW_BODY, &err), &err,
                 AF_EINVAL, "checked against 1 secret)", NULL);

    /* A signature made with the other secret passes with both configured. */
    char sig[AF_WEBHOOK_STD_SIG_SIZE];
    expect_ok(af_webhook_std_sign(SW_OTHER_SECRET, SW_ID, SW_TS, SW_BODY, strlen(SW_BODY), sig,
                                  sizeof sig, &err),
              &err);
    assert_string_not_equal(sig, SW_SIG);
    expect_ok(sw_verify_at(reversed, 2, SW_TS, 0, SW_TS_S, sig, SW_BODY, &err), &err);
    expect_error(sw_verify_at(reversed, 1, SW_TS, 0, SW_TS_S, sig, SW_BODY, &err), &err, AF_EINVAL,
                 "matches", NULL);
}

static void test_std_secret_errors(void **state) {
    af_error_t err = {0};
    const char *const bad[] = {SW_SECRET, "whsec_not*base64!"};
    expect_error(sw_verify_at(bad, 2, SW_TS, 0, SW_TS_S, SW_SIG, SW_BODY, &err), &err,
                 AF_EDEFINITION, "secret #2 is not valid", "base64");
    assert_null(strstr(err.msg, "not*base64"));
    /* The secret is checked before the request: a bad secret shows even with headers missing. */
    hdrs_t s;
    af_webhook_std_t cfg = {.secrets = bad, .nsecrets = 2, .now = SW_TS};
    expect_error(
        af_webhook_std_verify(&cfg, af_webhook_headers_get, headers(&s, NULL), "", 0, &err), &err,
        AF_EDEFINITION, "secret #2", NULL);

    expect_ok(af_webhook_std_secret_check(SW_SECRET, &err), &err);
    expect_ok(af_webhook_std_secret_check("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &err), &err);
    expect_error(af_webhook_std_secret_check("hunter2 is my password", &err), &err, AF_EDEFINITION,
                 "not valid", NULL);
    assert_null(strstr(err.msg, "hunter2"));
    expect_error(af_webhook_std_secret_check("whsec_", &err), &err, AF_EDEFINITION, "not valid",
                 NULL);
    expect_error(af_webhook_std_secret_check("whsec_abcde", &err), &err, AF_EDEFINITION,
                 "not valid", NULL);
    /* Padding, when present, must complete a group of four. */
    expect_ok(af_webhook_std_secret_check("whsec_ab==", &err), &err);
    expect_ok(af_webhook_std_secret_check("whsec_ab", &err), &err);
    expect_error(af_webhook_std_secret_check("whsec_ab=", &err), &err, AF_EDEFINITION, "not valid",
                 NULL);
    expect_error(af_webhook_std_secret_check("whsec_a===", &err), &err, AF_EDEFINITION, "not valid",
                 NULL);
    expect_error(af_webhook_std_secret_check("whsec_ab==ab==", &err), &err, AF_EDEFINITION,
                 "not valid", NULL);
    expect_error(af_webhook_std_secret_check("", &err), &err, AF_EDEFINITION, "empty", NULL);
    expect_error(af_webhook_std_secret_check(NULL, &err), &err, AF_EDEFINITION, "empty", NULL);
    char sig[AF_WEBHOOK_STD_SIG_SIZE];
    expect_error(af_webhook_std_sign("whsec_%%%", SW_ID, SW_TS, "", 0, sig, sizeof sig, &err), &err,
                 AF_EDEFINITION, "not valid", NULL);

    cfg.secrets = sw_secrets;
    cfg.nsecrets = 0;
    expect_error(af_webhook_std_verify(&cfg, af_webhook_headers_get, &s.h, "", 0, &err), &err,
                 AF_EDEFINITION, "no Standard Webhooks secret", NULL);
    cfg.nsecrets = 1;
    cfg.tolerance = -1;
    expect_error(af_webhook_std_verify(&cfg, af_webhook_headers_get, &s.h, "", 0, &err), &err,
                 AF_EDEFINITION, "negative", NULL);
}

static void test_std_tolerance(void **state) {
    af_error_t err = {0};
    /* Exactly 300 s either way passes; 301 s does not. */
    expect_ok(sw_verify(SW_TS + 300, SW_SIG, &err), &err);
    expect_ok(sw_verify(SW_TS - 300, SW_SIG, &err), &err);
    expect_error(sw_verify(SW_TS + 301, SW_SIG, &err), &err, AF_EINVAL,
                 "webhook-timestamp is 301 s old", "1 s beyond the tolerance of 300 s");
    expect_error(sw_verify(SW_TS - 301, SW_SIG, &err), &err, AF_EINVAL,
                 "webhook-timestamp is 301 s in the future", "1 s beyond");
    expect_error(sw_verify(SW_TS + 86400, SW_SIG, &err), &err, AF_EINVAL, "86400 s old",
                 "86100 s beyond");
    /* The time is checked before the signature: a stale, badly signed request says stale. */
    expect_error(sw_verify(SW_TS + 301, SW_ZERO_SIG, &err), &err, AF_EINVAL, "301 s old", NULL);

    /* A tolerance of our own. */
    expect_ok(sw_verify_at(sw_secrets, 1, SW_TS + 10, 10, SW_TS_S, SW_SIG, SW_BODY, &err), &err);
    expect_error(sw_verify_at(sw_secrets, 1, SW_TS + 11, 10, SW_TS_S, SW_SIG, SW_BODY, &err), &err,
                 AF_EINVAL, "11 s old, 1 s beyond the tolerance of 10 s", NULL);
    /* Extreme values of now do not overflow. */
    expect_error(sw_verify(INT64_MIN, SW_SIG, &err), &err, AF_EINVAL, "in the future", NULL);
    expect_error(sw_verify(INT64_MAX, SW_SIG, &err), &err, AF_EINVAL, "s old", NULL);
}

static void test_std_malformed_and_missing(void **state) {
    af_error_t err = {0};
    static const char *const bad_ts[] = {"abc",
                                         "",
                                         "-5",
                                         "+1614265330",
                                         " 1614265330",
                                         "1614265330 ",
                                         "1614265330.5",
                                         "1.6e9",
                                         "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad_ts / sizeof bad_ts[0]; i++) {
        int rc = sw_verify_at(sw_secrets, 1, SW_TS, 0, bad_ts[i], SW_SIG, SW_BODY, &err);
        expect_error(rc, &err, AF_EINVAL, "malformed header webhook-timestamp", NULL);
    }

    hdrs_t s;
    af_webhook_std_t cfg = {.secrets = sw_secrets, .nsecrets = 1, .now = SW_TS};
    expect_error(
        af_webhook_std_verify(&cfg, af_webhook_headers_get, headers(&s, NULL), "", 0, &err), &err,
        AF_EINVAL, "missing headers webhook-id, webhook-timestamp, webhook-signature", NULL);
    expect_error(af_webhook_std_verify(
                     &cfg, af_webhook_headers_get,
                     headers(&s, "webhook-timestamp", SW_TS_S, "webhook-signature", SW_SIG, NULL),
                     SW_BODY, strlen(SW_BODY), &err),
                 &err, AF_EINVAL, "missing header webhook-id", NULL);
    assert_null(strstr(err.msg, "headers"));
    expect_error(
        af_webhook_std_verify(&cfg, af_webhook_headers_get,
                              headers(&s, "webhook-id", SW_ID, "webhook-timestamp", SW_TS_S, NULL),
                              SW_BODY, strlen(SW_BODY), &err),
        &err, AF_EINVAL, "missing header webhook-signature", NULL);
}

static void test_secret_equal(void **state) {
    assert_int_equal(af_webhook_secret_equal("s3cret", "s3cret"), 1);
    assert_int_equal(af_webhook_secret_equal("s3cret", "s3creT"), 0);
    assert_int_equal(af_webhook_secret_equal("s3cret", "s3cre"), 0);
    assert_int_equal(af_webhook_secret_equal("s3cret", "s3crets3cret"), 0);
    assert_int_equal(af_webhook_secret_equal("s3cret", ""), 0);
    assert_int_equal(af_webhook_secret_equal("", "x"), 0);
    assert_int_equal(af_webhook_secret_equal("", ""), 1);
    assert_int_equal(af_webhook_secret_equal(NULL, "x"), 0);
    assert_int_equal(af_webhook_secret_equal("x", NULL), 0);
}

/* ---- header rules ---- */

static af_webhook_rules_t *rules(const char *text) {
    af_error_t err = {0};
    json_t *spec = load(text);
    af_webhook_rules_t *r = af_webhook_rules_compile(spec, &err);
    json_decref(spec);
    if (r == NULL) {
        fail_msg("compiling %s: %s", text, err.msg);
    }
    return r;
}

static int check(const af_webhook_rules_t *r, af_webhook_headers_t *h, af_error_t *err) {
    return af_webhook_rules_check(r, af_webhook_headers_get, h, err);
}

static void expect_bad_rules(const char *text, const char *piece, const char *piece2) {
    af_error_t err = {0};
    json_t *spec = load(text);
    af_webhook_rules_t *r = af_webhook_rules_compile(spec, &err);
    json_decref(spec);
    if (r != NULL) {
        af_webhook_rules_free(r);
        fail_msg("%s compiled", text);
    }
    expect_error(AF_EDEFINITION, &err, AF_EDEFINITION, piece, piece2);
}

static void test_rules_each_kind(void **state) {
    af_error_t err = {0};
    hdrs_t s;
    af_webhook_rules_t *r = rules("{\"X-Event\": true}");
    expect_ok(check(r, headers(&s, "X-Event", "", NULL), &err), &err);
    expect_error(check(r, headers(&s, "X-Other", "push", NULL), &err), &err, AF_EINVAL,
                 "missing header X-Event", NULL);
    af_webhook_rules_free(r);

    /* An exact value is never echoed: it may be a shared token. Nor is the value sent. */
    r = rules("{\"X-Token\": \"s3cret-token\"}");
    expect_ok(check(r, headers(&s, "X-Token", "s3cret-token", NULL), &err), &err);
    expect_error(check(r, headers(&s, "X-Token", "s3cret-toke", NULL), &err), &err, AF_EINVAL,
                 "header X-Token does not have the expected value", NULL);
    assert_null(strstr(err.msg, "s3cret"));
    expect_error(check(r, headers(&s, "X-Token", "s3cret-token ", NULL), &err), &err, AF_EINVAL,
                 "expected value", NULL);
    expect_error(check(r, headers(&s, NULL), &err), &err, AF_EINVAL, "missing header X-Token",
                 NULL);
    af_webhook_rules_free(r);

    r = rules("{\"X-Event\": {\"pattern\": \"^(push|ping)$\"}}");
    expect_ok(check(r, headers(&s, "X-Event", "ping", NULL), &err), &err);
    expect_error(check(r, headers(&s, "X-Event", "pushed", NULL), &err), &err, AF_EINVAL,
                 "header X-Event must match ^(push|ping)$", NULL);
    assert_null(strstr(err.msg, "pushed"));
    af_webhook_rules_free(r);

    /* Unanchored patterns match anywhere. */
    r = rules("{\"User-Agent\": {\"pattern\": \"GitHub-Hookshot/[0-9a-f]+\"}}");
    expect_ok(check(r, headers(&s, "user-agent", "GitHub-Hookshot/abc123", NULL), &err), &err);
    expect_error(check(r, headers(&s, "user-agent", "curl/8.0", NULL), &err), &err, AF_EINVAL,
                 "header User-Agent must match", NULL);
    af_webhook_rules_free(r);

    r = rules("{\"X-Kind\": {\"one_of\": [\"issue\", \"pull_request\"]}}");
    expect_ok(check(r, headers(&s, "X-Kind", "pull_request", NULL), &err), &err);
    expect_ok(check(r, headers(&s, "X-Kind", "issue", NULL), &err), &err);
    expect_error(check(r, headers(&s, "X-Kind", "issues", NULL), &err), &err, AF_EINVAL,
                 "header X-Kind must be one of issue, pull_request", NULL);
    af_webhook_rules_free(r);

    /* An empty object passes everything. */
    r = rules("{}");
    expect_ok(check(r, headers(&s, NULL), &err), &err);
    af_webhook_rules_free(r);
    af_webhook_rules_free(NULL);
}

static void test_rules_names_and_order(void **state) {
    af_error_t err = {0};
    hdrs_t s;
    af_webhook_rules_t *r =
        rules("{\"X-GitHub-Event\": \"push\", \"x-gitlab-token\": true, \"X-C\": true}");
    expect_ok(check(r,
                    headers(&s, "x-github-event", "push", "X-GITLAB-TOKEN", "t", "x-c", "1", NULL),
                    &err),
              &err);
    /* The first unmet one, in the order of the definition, is named. */
    expect_error(check(r, headers(&s, "X-GitHub-Event", "push", NULL), &err), &err, AF_EINVAL,
                 "missing header x-gitlab-token", NULL);
    expect_error(check(r, headers(&s, "X-GitHub-Event", "ping", NULL), &err), &err, AF_EINVAL,
                 "header X-GitHub-Event does not have", NULL);
    af_webhook_rules_free(r);
}

static void test_rules_bad_definitions(void **state) {
    expect_bad_rules("{\"X-Event\": {\"pattern\": \"(unclosed\"}}",
                     "header rule \"X-Event\": invalid pattern", NULL);
    expect_bad_rules("{\"X-Event\": {\"pattern\": \"a{2,1}\"}}", "\"X-Event\": invalid pattern",
                     NULL);
    expect_bad_rules("{\"X-A\": 42}", "header rule \"X-A\": must be true, a string", NULL);
    expect_bad_rules("{\"X-A\": false}", "\"X-A\": must be true", NULL);
    expect_bad_rules("{\"X-A\": null}", "\"X-A\": must be true", NULL);
    expect_bad_rules("{\"X-A\": {\"pattern\": 1}}", "\"X-A\": \"pattern\" must be a string", NULL);
    expect_bad_rules("{\"X-A\": {\"one_of\": []}}", "\"X-A\": \"one_of\" must be a non-empty",
                     NULL);
    expect_bad_rules("{\"X-A\": {\"one_of\": \"a\"}}", "\"one_of\" must be a non-empty", NULL);
    expect_bad_rules("{\"X-A\": {\"one_of\": [\"a\", 2]}}", "\"X-A\": \"one_of\"[1]", NULL);
    expect_bad_rules("{\"X-A\": {\"pattern\": \"a\", \"one_of\": [\"a\"]}}", "exactly one key",
                     NULL);
    expect_bad_rules("{\"X-A\": {\"regex\": \"a\"}}", "\"X-A\"", "exactly one key");
    expect_bad_rules("{\"X-A\": {}}", "exactly one key", NULL);
    expect_bad_rules("{\"X-A\": \"a\\u0000b\"}", "\"X-A\": the value must not contain NUL", NULL);
    expect_bad_rules("{\"X-A\": true, \"x-a\": true}", "\"x-a\": same header as \"X-A\"", NULL);
    expect_bad_rules("{\"bad name\": true}", "\"bad name\": not a header name", NULL);
    expect_bad_rules("{\"\": true}", "not a header name", NULL);
    expect_bad_rules("[\"X-A\"]", "header rules must be a JSON object", NULL);
}

/* ---- bodies ---- */

/* Decodes body (len bytes) with type and expects JSON text want and the base64 flag. */
static void expect_body(const char *type, const char *body, size_t len, const char *want,
                        int want_base64) {
    af_error_t err = {0};
    json_t *out = NULL;
    int base64 = -1;
    int rc = af_webhook_body_decode(type, body, len, &out, &base64, &err);
    if (rc != 0) {
        fail_msg("decoding as %s: %s", type != NULL ? type : "(none)", err.msg);
    }
    assert_int_equal(base64, want_base64);
    expect_json(out, want);
}

static void expect_body_error(const char *type, const char *body, size_t len, int code,
                              const char *piece) {
    af_error_t err = {0};
    json_t *out = json_true();
    int base64 = -1;
    int rc = af_webhook_body_decode(type, body, len, &out, &base64, &err);
    expect_error(rc, &err, code, piece, NULL);
    assert_null(out);
}

#define S(text) text, sizeof text - 1

static void test_body_json(void **state) {
    expect_body("application/json", S("{\"a\": [1, 2.5, \"x\"], \"b\": null}"),
                "{\"a\": [1, 2.5, \"x\"], \"b\": null}", 0);
    expect_body("Application/JSON; charset=utf-8", S("[true]"), "[true]", 0);
    expect_body(" application/json ;charset=UTF-8", S("3"), "3", 0);
    expect_body("application/vnd.github+json", S("{\"k\": \"v\"}"), "{\"k\": \"v\"}", 0);
    expect_body("application/cloudevents+JSON", S("\"s\""), "\"s\"", 0);

    expect_body_error("application/json", S("{\"a\": }"), AF_ESYNTAX, "JSON body: line 1, column");
    expect_body_error("application/json", S("{\"a\": 1}\n{"), AF_ESYNTAX, "line 2");
    expect_body_error("application/json", S("\"\xff\""), AF_EUTF8, "JSON body");
}

/* 64 levels pass, 65 do not. */
static void test_body_json_depth(void **state) {
    char deep[2 * 65];
    af_error_t err = {0};
    json_t *out = NULL;
    int base64 = -1;
    memset(deep, '[', 64);
    memset(deep + 64, ']', 64);
    expect_ok(af_webhook_body_decode("application/json", deep, 128, &out, &base64, &err), &err);
    assert_true(json_is_array(out));
    json_decref(out);
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    expect_body_error("application/json", deep, 130, AF_ELIMIT, "deeper than 64");
}

static void test_body_form(void **state) {
    expect_body(
        "application/x-www-form-urlencoded", S("a=1&b=hello+world&c=%41%2b%26%3D&d=caf%C3%A9"),
        "{\"a\": \"1\", \"b\": \"hello world\", \"c\": \"A+&=\", \"d\": \"caf\xc3\xa9\"}", 0);
    expect_body("application/x-www-form-urlencoded; charset=utf-8", S("k=1&k=2&j=x&k=3"),
                "{\"k\": [\"1\", \"2\", \"3\"], \"j\": \"x\"}", 0);
    expect_body("application/x-www-form-urlencoded", S("flag&a+b=%20"),
                "{\"flag\": \"\", \"a b\": \" \"}", 0);

    expect_body_error("application/x-www-form-urlencoded", S("a=%4"), AF_ESYNTAX,
                      "form body: malformed %-escape at byte 2");
    expect_body_error("application/x-www-form-urlencoded", S("a=1&b=%zz"), AF_ESYNTAX,
                      "malformed %-escape at byte 6");
    expect_body_error("application/x-www-form-urlencoded", S("a=%"), AF_ESYNTAX, "byte 2");
    expect_body_error("application/x-www-form-urlencoded", S("%G1=1"), AF_ESYNTAX, "byte 0");
    expect_body_error("application/x-www-form-urlencoded", S("a=1&b=%FF"), AF_EUTF8,
                      "the pair at byte 4 is not valid UTF-8");
    expect_body_error("application/x-www-form-urlencoded", S("a%00=1"), AF_ESYNTAX, "%00");
}

static void test_body_text_binary_empty(void **state) {
    expect_body("text/plain", S("h\xc3\xa9llo\nworld"), "\"h\xc3\xa9llo\\nworld\"", 0);
    expect_body("TEXT/csv; charset=utf-8", S("a,b\n1,2"), "\"a,b\\n1,2\"", 0);
    expect_body_error("text/plain", S("ok\xff"), AF_EUTF8, "text body: invalid UTF-8 at byte 2");
    expect_body_error("text/plain", S("\xc3"), AF_EUTF8, "byte 0");

    /* Everything else is base64, with the RFC 4648 vectors for the padding. */
    expect_body("application/octet-stream", S("\x00\x01\x02\xff\xfe"), "\"AAEC//4=\"", 1);
    expect_body(NULL, S("f"), "\"Zg==\"", 1);
    expect_body(NULL, S("fo"), "\"Zm8=\"", 1);
    expect_body(NULL, S("foo"), "\"Zm9v\"", 1);
    expect_body(NULL, S("foobar"), "\"Zm9vYmFy\"", 1);
    expect_body("multipart/form-data; boundary=x", S("--x--"), "\"LS14LS0=\"", 1);
    expect_body("text", S("abc"), "\"YWJj\"", 1);
    expect_body("text/", S("abc"), "\"YWJj\"", 1);
    expect_body("application/jsonx", S("{}"), "\"e30=\"", 1);
    expect_body("image/png", S("\x89PNG"), "\"iVBORw==\"", 1);

    /* An empty body is null whatever the type, even one that would not parse. */
    expect_body("application/json", "", 0, "null", 0);
    expect_body(NULL, NULL, 0, "null", 0);
    expect_body("application/x-www-form-urlencoded", "", 0, "null", 0);
}

/* ---- query strings ---- */

static void expect_query(const char *text, const char *want) {
    af_error_t err = {0};
    json_t *q = af_webhook_query_parse(text, strlen(text), &err);
    if (q == NULL) {
        fail_msg("parsing %s: %s", text, err.msg);
    }
    expect_json(q, want);
}

static void test_query(void **state) {
    expect_query("a=1&b=2", "{\"a\": \"1\", \"b\": \"2\"}");
    expect_query("?a=1", "{\"a\": \"1\"}");
    expect_query("", "{}");
    expect_query("?", "{}");
    expect_query("&&a=&b&", "{\"a\": \"\", \"b\": \"\"}");
    expect_query("x=%20y+z&y==", "{\"x\": \" y z\", \"y\": \"=\"}");
    expect_query("a=1&a=2&a=", "{\"a\": [\"1\", \"2\", \"\"]}");
    expect_query("q=%E2%9C%93", "{\"q\": \"\xe2\x9c\x93\"}");

    af_error_t err = {0};
    assert_null(af_webhook_query_parse("a=%2", 4, &err));
    expect_error(err.code, &err, AF_ESYNTAX, "byte 2", NULL);
    assert_null(af_webhook_query_parse("a=%C3", 5, &err));
    expect_error(err.code, &err, AF_EUTF8, "byte 0", NULL);
    json_t *q = af_webhook_query_parse(NULL, 0, &err);
    expect_json(q, "{}");
}

/* ---- the request object ---- */

static void test_request_json(void **state) {
    af_error_t err = {0};
    const char *names[] = {"Content-Type", "X-Forwarded-For", "x-forwarded-for", "X-Empty"};
    const char *values[] = {"application/json", "1.1.1.1", "2.2.2.2", ""};
    af_webhook_request_t req = {
        .method = "POST",
        .path = "/hooks/a%20b",
        .query = "a=1&a=2&c=x+y",
        .headers = {names, values, 4},
        .body = "{\"k\": true}",
        .body_len = 11,
    };
    expect_json(af_webhook_request_json(&req, &err),
                "{\"method\": \"POST\", \"path\": \"/hooks/a%20b\","
                " \"query\": {\"a\": [\"1\", \"2\"], \"c\": \"x y\"},"
                " \"headers\": {\"content-type\": \"application/json\","
                " \"x-forwarded-for\": \"1.1.1.1, 2.2.2.2\", \"x-empty\": \"\"},"
                " \"body\": {\"k\": true}}");

    /* No content type: base64 in body_base64, body null; no query: {}. */
    const char *names2[] = {"X-A"};
    const char *values2[] = {"1"};
    af_webhook_request_t bin = {
        .method = "PUT",
        .path = "/",
        .headers = {names2, values2, 1},
        .body = "\x00\xff",
        .body_len = 2,
    };
    expect_json(af_webhook_request_json(&bin, &err),
                "{\"method\": \"PUT\", \"path\": \"/\", \"query\": {}, \"headers\": {\"x-a\": "
                "\"1\"}, \"body\": null, \"body_base64\": \"AP8=\"}");

    /* No headers, no body. */
    af_webhook_request_t bare = {.method = "GET", .path = "/x", .query = ""};
    expect_json(af_webhook_request_json(&bare, &err),
                "{\"method\": \"GET\", \"path\": \"/x\", \"query\": {}, \"headers\": {},"
                " \"body\": null}");

    /* Errors from the parts come through. */
    req.body = "{\"k\": tru}";
    req.body_len = 10;
    assert_null(af_webhook_request_json(&req, &err));
    expect_error(err.code, &err, AF_ESYNTAX, "JSON body: line 1", NULL);
    req.body = "{}";
    req.body_len = 2;
    values[1] = "caf\xe9";
    assert_null(af_webhook_request_json(&req, &err));
    expect_error(err.code, &err, AF_EUTF8, "header x-forwarded-for", NULL);
    values[1] = "1.1.1.1";
    req.query = "a=%";
    assert_null(af_webhook_request_json(&req, &err));
    expect_error(err.code, &err, AF_ESYNTAX, "query: malformed %-escape", NULL);
    req.query = NULL;
    req.path = "/\xff";
    assert_null(af_webhook_request_json(&req, &err));
    expect_error(err.code, &err, AF_EUTF8, "the path", NULL);
    req.path = NULL;
    assert_null(af_webhook_request_json(&req, &err));
    expect_error(err.code, &err, AF_EINVAL, NULL, NULL);
    names[0] = "Bad Name";
    req.path = "/";
    assert_null(af_webhook_request_json(&req, &err));
    expect_error(err.code, &err, AF_EINVAL, "header #1", NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_github_vector),
        cmocka_unit_test(test_hmac_refusals),
        cmocka_unit_test(test_hmac_custom_header_and_rotation),
        cmocka_unit_test(test_hmac_sign),
        cmocka_unit_test(test_std_vector),
        cmocka_unit_test(test_std_several_signatures),
        cmocka_unit_test(test_std_rotated_secrets),
        cmocka_unit_test(test_std_secret_errors),
        cmocka_unit_test(test_std_tolerance),
        cmocka_unit_test(test_std_malformed_and_missing),
        cmocka_unit_test(test_secret_equal),
        cmocka_unit_test(test_rules_each_kind),
        cmocka_unit_test(test_rules_names_and_order),
        cmocka_unit_test(test_rules_bad_definitions),
        cmocka_unit_test(test_body_json),
        cmocka_unit_test(test_body_json_depth),
        cmocka_unit_test(test_body_form),
        cmocka_unit_test(test_body_text_binary_empty),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_request_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
