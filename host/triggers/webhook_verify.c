/* webhook_verify.c -- webhook triggers' pure logic: GitHub-style and Standard Webhooks signatures,
 * header rules, and request bodies and query strings decoded into JSON. */
#include "triggers/webhook_verify.h"

#include <inttypes.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define SHA256_LEN 32
/* Base64 of a SHA-256 digest: 44 characters padded, 43 without the padding. */
#define SHA256_B64_LEN    44
#define STD_SECRET_PREFIX "whsec_"

/* ---- small helpers ---- */

static int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static unsigned char ascii_lower(unsigned char c) {
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* 1 when s[0..n) equals the NUL-terminated word ignoring ASCII case. */
static int span_ieq(const char *s, size_t n, const char *word) {
    return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

/* Pieces of a message fed to the MAC one after another, so "{id}.{ts}.{body}" needs no copy. */
typedef struct part_s {
    const void *data;
    size_t len;
} part_t;

static int hmac_sha256(const void *key, size_t key_len, const part_t *parts, size_t n,
                       unsigned char out[SHA256_LEN], af_error_t *err) {
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    size_t out_len = 0;
    int ok = ctx != NULL && EVP_MAC_init(ctx, key, key_len, params);
    for (size_t i = 0; ok && i < n; i++) {
        if (parts[i].len > 0) {
            ok = EVP_MAC_update(ctx, parts[i].data, parts[i].len);
        }
    }
    ok = ok && EVP_MAC_final(ctx, out, &out_len, SHA256_LEN) && out_len == SHA256_LEN;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok ? 0 : af_error_set(err, AF_ERUNTIME, "HMAC-SHA256 failed in OpenSSL");
}

/* ---- base64 (RFC 4648, standard alphabet) ---- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

/* Writes the padded encoding of in[0..n) and a NUL into out (4 * ceil(n / 3) + 1 bytes).
 * Returns the encoded length. */
static size_t b64_encode(const unsigned char *in, size_t n, char *out) {
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = B64[v >> 18];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = B64[(v >> 6) & 63];
        out[o++] = B64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = B64[v >> 18];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = B64[v >> 18];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = B64[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

/* Decodes in[0..n) into out (room for n / 4 * 3 + 2 bytes). Padding may be left off, but when
 * present it must complete the last group; no whitespace or other characters. Returns 0 and the
 * decoded length in *out_len, or -1 when the text is not base64. */
static int b64_decode(const char *in, size_t n, unsigned char *out, size_t *out_len) {
    size_t pad = 0;
    while (pad < 2 && n > pad && in[n - 1 - pad] == '=') {
        pad++;
    }
    if (pad > 0 && n % 4 != 0) {
        return -1;
    }
    n -= pad;
    if (n % 4 == 1) {
        return -1;
    }
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)in[i]);
        if (v < 0) {
            return -1;
        }
        acc = (acc << 6 | (uint32_t)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    *out_len = o;
    return 0;
}

/* ---- headers ---- */

const char *af_webhook_headers_get(void *ud, const char *name) {
    const af_webhook_headers_t *h = ud;
    if (h == NULL || name == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < h->count; i++) {
        if (h->names[i] != NULL && strcasecmp(h->names[i], name) == 0) {
            return h->values[i];
        }
    }
    return NULL;
}

int af_webhook_secret_equal(const char *expected, const char *given) {
    if (expected == NULL || given == NULL) {
        return 0;
    }
    size_t elen = strlen(expected), glen = strlen(given);
    if (elen == 0) {
        return glen == 0;
    }
    /* Walk all of `given` whatever happens, comparing against `expected` repeated, so neither the
     * position of the first difference nor an early length mismatch shows in the time. */
    unsigned char diff = elen != glen;
    for (size_t i = 0; i < glen; i++) {
        diff |= (unsigned char)given[i] ^ (unsigned char)expected[i % elen];
    }
    return diff == 0;
}

/* ---- GitHub-style HMAC ---- */

/* Every secret present and non-empty: a configuration error otherwise, whatever the request. */
static int check_secrets_present(const char *const *secrets, size_t n, const char *what,
                                 af_error_t *err) {
    if (secrets == NULL || n == 0) {
        return af_error_set(err, AF_EDEFINITION, "no %s secret configured", what);
    }
    for (size_t i = 0; i < n; i++) {
        if (secrets[i] == NULL || secrets[i][0] == '\0') {
            return af_error_set(err, AF_EDEFINITION, "%s secret #%zu is empty", what, i + 1);
        }
    }
    return 0;
}

int af_webhook_hmac_verify(const af_webhook_hmac_t *cfg, af_webhook_get_header_fn get, void *ud,
                           const void *body, size_t len, af_error_t *err) {
    if (cfg == NULL || get == NULL || (body == NULL && len > 0)) {
        return af_error_set(err, AF_EINVAL, "af_webhook_hmac_verify: NULL argument");
    }
    int rc = check_secrets_present(cfg->secrets, cfg->nsecrets, "HMAC", err);
    if (rc != 0) {
        return rc;
    }
    const char *header = cfg->header != NULL ? cfg->header : AF_WEBHOOK_HMAC_HEADER;
    const char *prefix = cfg->prefix != NULL ? cfg->prefix : AF_WEBHOOK_HMAC_PREFIX;
    const char *value = get(ud, header);
    if (value == NULL) {
        return af_error_set(err, AF_EINVAL, "missing header %s", header);
    }
    size_t plen = strlen(prefix);
    if (strncmp(value, prefix, plen) != 0) {
        return af_error_set(err, AF_EINVAL, "header %s does not start with \"%s\"", header, prefix);
    }
    const char *hex = value + plen;
    size_t hlen = strlen(hex);
    for (size_t i = 0; i < hlen; i++) {
        if (hex_value((unsigned char)hex[i]) < 0) {
            return af_error_set(err, AF_EINVAL, "header %s: the signature is not hexadecimal",
                                header);
        }
    }
    if (hlen % 2 != 0) {
        return af_error_set(err, AF_EINVAL,
                            "header %s: the signature has an odd number of hex digits (%zu)",
                            header, hlen);
    }
    if (hlen != 2 * SHA256_LEN) {
        return af_error_set(err, AF_EINVAL,
                            "header %s: the signature has %zu hex digits, expected %d", header,
                            hlen, 2 * SHA256_LEN);
    }
    unsigned char sent[SHA256_LEN];
    for (size_t i = 0; i < SHA256_LEN; i++) {
        sent[i] = (unsigned char)(hex_value((unsigned char)hex[2 * i]) << 4 |
                                  hex_value((unsigned char)hex[2 * i + 1]));
    }
    part_t part = {body, len};
    int matched = 0;
    for (size_t i = 0; i < cfg->nsecrets && !matched; i++) {
        unsigned char want[SHA256_LEN];
        rc = hmac_sha256(cfg->secrets[i], strlen(cfg->secrets[i]), &part, 1, want, err);
        if (rc != 0) {
            return rc;
        }
        matched = CRYPTO_memcmp(want, sent, SHA256_LEN) == 0;
    }
    if (!matched) {
        return af_error_set(err, AF_EINVAL, "header %s: the signature does not match", header);
    }
    return 0;
}

int af_webhook_hmac_sign(const char *secret, const char *prefix, const void *body, size_t len,
                         char *out, size_t size, af_error_t *err) {
    static const char digits[] = "0123456789abcdef";
    if (out == NULL || (body == NULL && len > 0)) {
        return af_error_set(err, AF_EINVAL, "af_webhook_hmac_sign: NULL argument");
    }
    if (secret == NULL || secret[0] == '\0') {
        return af_error_set(err, AF_EDEFINITION, "the HMAC secret is empty");
    }
    if (prefix == NULL) {
        prefix = AF_WEBHOOK_HMAC_PREFIX;
    }
    size_t plen = strlen(prefix);
    if (size < plen + 2 * SHA256_LEN + 1) {
        return af_error_set(err, AF_EINVAL, "af_webhook_hmac_sign: buffer of %zu bytes, need %zu",
                            size, plen + 2 * SHA256_LEN + 1);
    }
    unsigned char mac[SHA256_LEN];
    part_t part = {body, len};
    int rc = hmac_sha256(secret, strlen(secret), &part, 1, mac, err);
    if (rc != 0) {
        return rc;
    }
    memcpy(out, prefix, plen);
    for (size_t i = 0; i < SHA256_LEN; i++) {
        out[plen + 2 * i] = digits[mac[i] >> 4];
        out[plen + 2 * i + 1] = digits[mac[i] & 15];
    }
    out[plen + 2 * SHA256_LEN] = '\0';
    return 0;
}

/* ---- Standard Webhooks ---- */

/* Decodes a secret into a new malloc'd key. `label` names it in messages ("secret #2"); the
 * secret itself never appears in them. */
static int std_key(const char *secret, const char *label, unsigned char **key, size_t *key_len,
                   af_error_t *err) {
    *key = NULL;
    if (secret == NULL || secret[0] == '\0') {
        return af_error_set(err, AF_EDEFINITION, "Standard Webhooks %s is empty", label);
    }
    const char *b64 = secret;
    if (strncmp(b64, STD_SECRET_PREFIX, strlen(STD_SECRET_PREFIX)) == 0) {
        b64 += strlen(STD_SECRET_PREFIX);
    }
    size_t n = strlen(b64);
    unsigned char *buf = malloc(n / 4 * 3 + 3);
    if (buf == NULL) {
        return af_error_set(err, AF_ENOMEM, "out of memory");
    }
    if (b64_decode(b64, n, buf, key_len) != 0 || *key_len == 0) {
        free(buf);
        return af_error_set(err, AF_EDEFINITION,
                            "Standard Webhooks %s is not valid: expected \"" STD_SECRET_PREFIX
                            "\" followed by base64, or base64",
                            label);
    }
    *key = buf;
    return 0;
}

int af_webhook_std_secret_check(const char *secret, af_error_t *err) {
    unsigned char *key;
    size_t key_len;
    int rc = std_key(secret, "secret", &key, &key_len, err);
    free(key);
    return rc;
}

/* Parses Unix seconds: decimal digits only (no sign, no spaces), no overflow. */
static int parse_timestamp(const char *s, int64_t *out) {
    int64_t v = 0;
    if (*s == '\0') {
        return -1;
    }
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') {
            return -1;
        }
        int d = *s - '0';
        if (v > (INT64_MAX - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* The MAC of "{id}.{ts}.{body}", with ts written as a plain decimal number as the reference
 * libraries do (they parse the header and format it again). */
static int std_mac(const unsigned char *key, size_t key_len, const char *id, int64_t ts,
                   const void *body, size_t len, unsigned char out[SHA256_LEN], af_error_t *err) {
    char ts_text[24];
    int n = snprintf(ts_text, sizeof ts_text, "%" PRId64, ts);
    part_t parts[] = {{id, strlen(id)}, {".", 1}, {ts_text, (size_t)n}, {".", 1}, {body, len}};
    return hmac_sha256(key, key_len, parts, sizeof parts / sizeof parts[0], out, err);
}

/* Frees the first n keys and the arrays. */
static void free_keys(unsigned char **keys, size_t *lens, size_t n) {
    for (size_t i = 0; keys != NULL && i < n; i++) {
        free(keys[i]);
    }
    free(keys);
    free(lens);
}

/* Checks the timestamp against now +- tolerance. */
static int std_check_time(int64_t ts, int64_t now, int64_t tolerance, af_error_t *err) {
    /* Unsigned differences of two int64 values cannot overflow, whatever `now` is. */
    int future = ts > now;
    uint64_t off = future ? (uint64_t)ts - (uint64_t)now : (uint64_t)now - (uint64_t)ts;
    if (off <= (uint64_t)tolerance) {
        return 0;
    }
    return af_error_set(err, AF_EINVAL,
                        "webhook-timestamp is %" PRIu64 " s %s, %" PRIu64
                        " s beyond the tolerance of %" PRId64 " s",
                        off, future ? "in the future" : "old", off - (uint64_t)tolerance,
                        tolerance);
}

int af_webhook_std_verify(const af_webhook_std_t *cfg, af_webhook_get_header_fn get, void *ud,
                          const void *body, size_t len, af_error_t *err) {
    if (cfg == NULL || get == NULL || (body == NULL && len > 0)) {
        return af_error_set(err, AF_EINVAL, "af_webhook_std_verify: NULL argument");
    }
    if (cfg->secrets == NULL || cfg->nsecrets == 0) {
        return af_error_set(err, AF_EDEFINITION, "no Standard Webhooks secret configured");
    }
    if (cfg->tolerance < 0) {
        return af_error_set(err, AF_EDEFINITION, "negative timestamp tolerance (%" PRId64 " s)",
                            cfg->tolerance);
    }
    int64_t tolerance = cfg->tolerance == 0 ? AF_WEBHOOK_STD_TOLERANCE : cfg->tolerance;

    /* Secrets first: a bad one is the definition's fault and must show whatever the request. */
    size_t nkeys = cfg->nsecrets;
    unsigned char **keys = calloc(nkeys, sizeof *keys);
    size_t *key_lens = calloc(nkeys, sizeof *key_lens);
    if (keys == NULL || key_lens == NULL) {
        free_keys(keys, key_lens, 0);
        return af_error_set(err, AF_ENOMEM, "out of memory");
    }
    int rc = 0;
    for (size_t i = 0; i < nkeys && rc == 0; i++) {
        char label[32];
        snprintf(label, sizeof label, "secret #%zu", i + 1);
        rc = std_key(cfg->secrets[i], label, &keys[i], &key_lens[i], err);
    }
    if (rc != 0) {
        free_keys(keys, key_lens, nkeys);
        return rc;
    }

    static const char *const names[] = {"webhook-id", "webhook-timestamp", "webhook-signature"};
    const char *values[3];
    char missing[128] = "";
    int nmissing = 0;
    for (int i = 0; i < 3; i++) {
        values[i] = get(ud, names[i]);
        if (values[i] == NULL) {
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s",
                     nmissing > 0 ? ", " : "", names[i]);
            nmissing++;
        }
    }
    const char *id = values[0], *ts_text = values[1], *sig = values[2];
    int64_t ts = 0;
    if (nmissing > 0) {
        rc = af_error_set(err, AF_EINVAL, "missing header%s %s", nmissing > 1 ? "s" : "", missing);
    } else if (parse_timestamp(ts_text, &ts) != 0) {
        rc = af_error_set(err, AF_EINVAL,
                          "malformed header webhook-timestamp: expected Unix seconds (digits)");
    } else {
        rc = std_check_time(ts, cfg->now, tolerance, err);
    }

    unsigned char *macs = NULL;
    if (rc == 0) {
        macs = malloc(nkeys * SHA256_LEN);
        if (macs == NULL) {
            rc = af_error_set(err, AF_ENOMEM, "out of memory");
        }
    }
    for (size_t i = 0; i < nkeys && rc == 0; i++) {
        rc = std_mac(keys[i], key_lens[i], id, ts, body, len, macs + i * SHA256_LEN, err);
    }
    free_keys(keys, key_lens, nkeys);
    if (rc != 0) {
        free(macs);
        return rc;
    }

    /* Every "v1,<base64>" entry against every key; other versions (v1a, ...) are skipped. */
    size_t nv1 = 0;
    int matched = 0;
    const char *p = sig;
    while (*p != '\0' && !matched) {
        while (*p == ' ') {
            p++;
        }
        const char *end = p;
        while (*end != '\0' && *end != ' ') {
            end++;
        }
        size_t tlen = (size_t)(end - p);
        if (tlen > 3 && strncmp(p, "v1,", 3) == 0) {
            nv1++;
            unsigned char sent[SHA256_B64_LEN];
            size_t sent_len = 0;
            /* Longer text cannot be a SHA-256 digest: skip it before decoding anything. */
            if (tlen - 3 <= SHA256_B64_LEN && b64_decode(p + 3, tlen - 3, sent, &sent_len) == 0 &&
                sent_len == SHA256_LEN) {
                for (size_t k = 0; k < nkeys && !matched; k++) {
                    matched = CRYPTO_memcmp(macs + k * SHA256_LEN, sent, SHA256_LEN) == 0;
                }
            }
        }
        p = end;
    }
    free(macs);
    if (matched) {
        return 0;
    }
    if (nv1 == 0) {
        return af_error_set(err, AF_EINVAL, "header webhook-signature has no v1 signature");
    }
    return af_error_set(err, AF_EINVAL,
                        "no signature in webhook-signature matches (%zu v1 signature%s checked "
                        "against %zu secret%s)",
                        nv1, nv1 == 1 ? "" : "s", nkeys, nkeys == 1 ? "" : "s");
}

int af_webhook_std_sign(const char *secret, const char *id, int64_t timestamp, const void *body,
                        size_t len, char *out, size_t size, af_error_t *err) {
    if (id == NULL || out == NULL || (body == NULL && len > 0)) {
        return af_error_set(err, AF_EINVAL, "af_webhook_std_sign: NULL argument");
    }
    if (timestamp < 0) {
        return af_error_set(err, AF_EINVAL, "af_webhook_std_sign: negative timestamp");
    }
    if (size < AF_WEBHOOK_STD_SIG_SIZE) {
        return af_error_set(err, AF_EINVAL, "af_webhook_std_sign: buffer of %zu bytes, need %d",
                            size, AF_WEBHOOK_STD_SIG_SIZE);
    }
    unsigned char *key;
    size_t key_len;
    int rc = std_key(secret, "secret", &key, &key_len, err);
    if (rc != 0) {
        return rc;
    }
    unsigned char mac[SHA256_LEN];
    rc = std_mac(key, key_len, id, timestamp, body, len, mac, err);
    free(key);
    if (rc != 0) {
        return rc;
    }
    memcpy(out, "v1,", 3);
    b64_encode(mac, SHA256_LEN, out + 3);
    return 0;
}

/* ---- header rules ---- */

typedef enum { RULE_PRESENT, RULE_EXACT, RULE_PATTERN, RULE_ONE_OF } rule_kind_t;

typedef struct rule_s {
    char *name;
    rule_kind_t kind;
    char *text;      /* RULE_EXACT: the value; RULE_PATTERN: the source, for messages */
    regex_t re;      /* RULE_PATTERN */
    int has_re;      /* re needs regfree */
    char **choices;  /* RULE_ONE_OF */
    size_t nchoices; /* RULE_ONE_OF */
    char *expected;  /* RULE_ONE_OF: "a, b", for messages */
} rule_t;

struct af_webhook_rules_s {
    rule_t *rules;
    size_t count;
};

/* 1 for an HTTP field name: one or more token characters (RFC 9110 5.1). */
static int is_header_name(const char *s) {
    if (*s == '\0') {
        return 0;
    }
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        int alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alnum && strchr("!#$%&'*+-.^_`|~", c) == NULL) {
            return 0;
        }
    }
    return 1;
}

static void rule_clear(rule_t *r) {
    free(r->name);
    free(r->text);
    if (r->has_re) {
        regfree(&r->re);
    }
    for (size_t i = 0; i < r->nchoices; i++) {
        free(r->choices[i]);
    }
    free(r->choices);
    free(r->expected);
}

void af_webhook_rules_free(af_webhook_rules_t *r) {
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->count; i++) {
        rule_clear(&r->rules[i]);
    }
    free(r->rules);
    free(r);
}

/* A JSON string with no NUL in it (a header value can hold none), copied; NULL otherwise. */
static const char *plain_string(const json_t *v) {
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
        return NULL;
    }
    return json_string_value(v);
}

static int compile_one_of(rule_t *r, const json_t *list, af_error_t *err) {
    size_t n = json_array_size(list);
    if (!json_is_array(list) || n == 0) {
        return af_error_set(err, AF_EDEFINITION,
                            "header rule \"%s\": \"one_of\" must be a non-empty array of strings",
                            r->name);
    }
    r->choices = calloc(n, sizeof *r->choices);
    if (r->choices == NULL) {
        return af_error_set(err, AF_ENOMEM, "out of memory");
    }
    af_buf_t expected = {0};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *s = plain_string(json_array_get(list, i));
        if (s == NULL) {
            rc = af_error_set(err, AF_EDEFINITION,
                              "header rule \"%s\": \"one_of\"[%zu] must be a string without NUL",
                              r->name, i);
            break;
        }
        r->choices[i] = strdup(s);
        r->nchoices = i + 1;
        if (r->choices[i] == NULL || af_buf_addf(&expected, "%s%s", i > 0 ? ", " : "", s) != 0) {
            rc = af_error_set(err, AF_ENOMEM, "out of memory");
        }
    }
    if (rc != 0) {
        af_buf_free(&expected);
        return rc;
    }
    r->expected = expected.data;
    return 0;
}

static int compile_object_rule(rule_t *r, const json_t *spec, af_error_t *err) {
    const json_t *pattern = json_object_get(spec, "pattern");
    const json_t *one_of = json_object_get(spec, "one_of");
    if (json_object_size(spec) != 1 || (pattern == NULL && one_of == NULL)) {
        return af_error_set(err, AF_EDEFINITION,
                            "header rule \"%s\": an object rule must have exactly one key, "
                            "\"pattern\" or \"one_of\"",
                            r->name);
    }
    if (one_of != NULL) {
        r->kind = RULE_ONE_OF;
        return compile_one_of(r, one_of, err);
    }
    const char *source = plain_string(pattern);
    if (source == NULL) {
        return af_error_set(err, AF_EDEFINITION, "header rule \"%s\": \"pattern\" must be a string",
                            r->name);
    }
    r->kind = RULE_PATTERN;
    r->text = strdup(source);
    if (r->text == NULL) {
        return af_error_set(err, AF_ENOMEM, "out of memory");
    }
    int rc = regcomp(&r->re, source, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char why[256];
        regerror(rc, &r->re, why, sizeof why);
        return af_error_set(err, AF_EDEFINITION, "header rule \"%s\": invalid pattern: %s", r->name,
                            why);
    }
    r->has_re = 1;
    return 0;
}

static int compile_rule(rule_t *r, const json_t *spec, af_error_t *err) {
    if (json_is_true(spec)) {
        r->kind = RULE_PRESENT;
        return 0;
    }
    if (json_is_string(spec)) {
        const char *s = plain_string(spec);
        if (s == NULL) {
            return af_error_set(err, AF_EDEFINITION,
                                "header rule \"%s\": the value must not contain NUL", r->name);
        }
        r->kind = RULE_EXACT;
        r->text = strdup(s);
        return r->text != NULL ? 0 : af_error_set(err, AF_ENOMEM, "out of memory");
    }
    if (json_is_object(spec)) {
        return compile_object_rule(r, spec, err);
    }
    return af_error_set(err, AF_EDEFINITION,
                        "header rule \"%s\": must be true, a string, or an object with "
                        "\"pattern\" or \"one_of\"",
                        r->name);
}

af_webhook_rules_t *af_webhook_rules_compile(const json_t *rules, af_error_t *err) {
    if (!json_is_object(rules)) {
        af_error_set(err, AF_EDEFINITION, "header rules must be a JSON object");
        return NULL;
    }
    af_webhook_rules_t *out = calloc(1, sizeof *out);
    size_t n = json_object_size(rules);
    if (out == NULL || (n > 0 && (out->rules = calloc(n, sizeof *out->rules)) == NULL)) {
        free(out);
        af_error_set(err, AF_ENOMEM, "out of memory");
        return NULL;
    }
    const char *name;
    json_t *spec;
    int rc = 0;
    json_object_foreach((json_t *)rules, name, spec) {
        if (!is_header_name(name)) {
            rc = af_error_set(err, AF_EDEFINITION, "header rule \"%.100s\": not a header name",
                              name);
            break;
        }
        for (size_t i = 0; i < out->count && rc == 0; i++) {
            if (strcasecmp(out->rules[i].name, name) == 0) {
                rc = af_error_set(err, AF_EDEFINITION,
                                  "header rule \"%s\": same header as \"%s\" (names ignore case)",
                                  name, out->rules[i].name);
            }
        }
        if (rc != 0) {
            break;
        }
        rule_t *r = &out->rules[out->count++];
        r->name = strdup(name);
        if (r->name == NULL) {
            rc = af_error_set(err, AF_ENOMEM, "out of memory");
            break;
        }
        rc = compile_rule(r, spec, err);
        if (rc != 0) {
            break;
        }
    }
    if (rc != 0) {
        af_webhook_rules_free(out);
        return NULL;
    }
    return out;
}

int af_webhook_rules_check(const af_webhook_rules_t *r, af_webhook_get_header_fn get, void *ud,
                           af_error_t *err) {
    if (r == NULL || get == NULL) {
        return af_error_set(err, AF_EINVAL, "af_webhook_rules_check: NULL argument");
    }
    for (size_t i = 0; i < r->count; i++) {
        const rule_t *rule = &r->rules[i];
        const char *value = get(ud, rule->name);
        if (value == NULL) {
            return af_error_set(err, AF_EINVAL, "missing header %s", rule->name);
        }
        switch (rule->kind) {
        case RULE_PRESENT:
            break;
        case RULE_EXACT:
            if (!af_webhook_secret_equal(rule->text, value)) {
                return af_error_set(err, AF_EINVAL, "header %s does not have the expected value",
                                    rule->name);
            }
            break;
        case RULE_PATTERN:
            if (regexec(&rule->re, value, 0, NULL, 0) != 0) {
                return af_error_set(err, AF_EINVAL, "header %s must match %.300s", rule->name,
                                    rule->text);
            }
            break;
        case RULE_ONE_OF: {
            int found = 0;
            for (size_t k = 0; k < rule->nchoices; k++) {
                found |= af_webhook_secret_equal(rule->choices[k], value);
            }
            if (!found) {
                return af_error_set(err, AF_EINVAL, "header %s must be one of %.300s", rule->name,
                                    rule->expected);
            }
            break;
        }
        }
    }
    return 0;
}

/* ---- form-urlencoded text ---- */

/* Decodes text[from..to) ('+' as space, %XX as the byte) into b, replacing what it held. Offsets
 * in messages count from the start of the whole text. */
static int form_unescape(const char *text, size_t from, size_t to, af_buf_t *b, af_error_t *err) {
    b->len = 0;
    size_t run = from;
    for (size_t i = from; i < to; i++) {
        char c = text[i];
        if (c != '+' && c != '%') {
            continue;
        }
        char byte = ' ';
        if (c == '%') {
            int hi = i + 2 < to ? hex_value((unsigned char)text[i + 1]) : -1;
            int lo = i + 2 < to ? hex_value((unsigned char)text[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                return af_error_set(err, AF_ESYNTAX,
                                    "malformed %%-escape at byte %zu: expected %% and two hex "
                                    "digits",
                                    i);
            }
            byte = (char)(hi << 4 | lo);
        }
        if (af_buf_add(b, text + run, i - run) != 0 || af_buf_add(b, &byte, 1) != 0) {
            return af_error_set(err, AF_ENOMEM, "out of memory");
        }
        i += c == '%' ? 2 : 0;
        run = i + 1;
    }
    /* af_buf_add keeps b NUL-terminated, and allocates even for an empty run. */
    if (af_buf_add(b, text + run, to - run) != 0) {
        return af_error_set(err, AF_ENOMEM, "out of memory");
    }
    return 0;
}

/* Adds key = value, turning a repeated key into an array of its values. */
static int form_add(json_t *obj, const af_buf_t *key, const af_buf_t *value, size_t at,
                    af_error_t *err) {
    if (!af_utf8_valid(key->data, key->len, NULL) ||
        !af_utf8_valid(value->data, value->len, NULL)) {
        return af_error_set(err, AF_EUTF8, "the pair at byte %zu is not valid UTF-8 once decoded",
                            at);
    }
    if (memchr(key->data, '\0', key->len) != NULL) {
        return af_error_set(err, AF_ESYNTAX, "the key at byte %zu contains %%00", at);
    }
    /* The _new functions steal v even when they fail, so nothing leaks on the way out. */
    json_t *v = json_stringn_nocheck(value->data, value->len);
    json_t *old = json_object_get(obj, key->data);
    int rc;
    if (old == NULL) {
        rc = json_object_set_new_nocheck(obj, key->data, v);
    } else if (json_is_array(old)) {
        rc = json_array_append_new(old, v);
    } else {
        json_t *list = json_array();
        rc = json_array_append(list, old);
        rc |= json_array_append_new(list, v);
        rc |= json_object_set_new_nocheck(obj, key->data, list);
    }
    return rc == 0 ? 0 : af_error_set(err, AF_ENOMEM, "out of memory");
}

json_t *af_webhook_query_parse(const char *text, size_t len, af_error_t *err) {
    if (text == NULL && len > 0) {
        af_error_set(err, AF_EINVAL, "af_webhook_query_parse: NULL text");
        return NULL;
    }
    json_t *obj = json_object();
    if (obj == NULL) {
        af_error_set(err, AF_ENOMEM, "out of memory");
        return NULL;
    }
    af_buf_t key = {0}, value = {0};
    int rc = 0;
    size_t i = len > 0 && text[0] == '?' ? 1 : 0;
    while (i < len && rc == 0) {
        size_t end = i;
        while (end < len && text[end] != '&') {
            end++;
        }
        if (end > i) {
            const char *eq = memchr(text + i, '=', end - i);
            size_t key_end = eq != NULL ? (size_t)(eq - text) : end;
            size_t value_from = eq != NULL ? key_end + 1 : end;
            rc = form_unescape(text, i, key_end, &key, err);
            if (rc == 0) {
                rc = form_unescape(text, value_from, end, &value, err);
            }
            if (rc == 0) {
                rc = form_add(obj, &key, &value, i, err);
            }
        }
        i = end + 1;
    }
    af_buf_free(&key);
    af_buf_free(&value);
    if (rc != 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* ---- bodies ---- */

typedef enum { BODY_JSON, BODY_FORM, BODY_TEXT, BODY_BINARY } body_kind_t;

static body_kind_t body_kind(const char *content_type) {
    if (content_type == NULL) {
        return BODY_BINARY;
    }
    const char *s = content_type;
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    size_t n = strcspn(s, "; \t");
    const char *slash = memchr(s, '/', n);
    if (slash == NULL) {
        return BODY_BINARY;
    }
    size_t tlen = (size_t)(slash - s);
    const char *sub = slash + 1;
    size_t slen = n - tlen - 1;
    static const char suffix[] = "+json";
    size_t xlen = sizeof suffix - 1;
    if (span_ieq(s, tlen, "application") && span_ieq(sub, slen, "json")) {
        return BODY_JSON;
    }
    if (tlen > 0 && slen > xlen && strncasecmp(sub + slen - xlen, suffix, xlen) == 0) {
        return BODY_JSON;
    }
    if (span_ieq(s, tlen, "application") && span_ieq(sub, slen, "x-www-form-urlencoded")) {
        return BODY_FORM;
    }
    if (span_ieq(s, tlen, "text") && slen > 0) {
        return BODY_TEXT;
    }
    return BODY_BINARY;
}

static int body_base64(const unsigned char *body, size_t len, json_t **out, af_error_t *err) {
    if (len > (SIZE_MAX - 1) / 4 * 3 - 3) {
        return af_error_set(err, AF_ELIMIT, "body too large to encode");
    }
    char *text = malloc((len + 2) / 3 * 4 + 1);
    if (text == NULL) {
        return af_error_set(err, AF_ENOMEM, "out of memory");
    }
    size_t n = b64_encode(body, len, text);
    *out = json_stringn_nocheck(text, n);
    free(text);
    return *out != NULL ? 0 : af_error_set(err, AF_ENOMEM, "out of memory");
}

int af_webhook_body_decode(const char *content_type, const void *body, size_t len, json_t **out,
                           int *base64, af_error_t *err) {
    if (out == NULL || base64 == NULL || (body == NULL && len > 0)) {
        return af_error_set(err, AF_EINVAL, "af_webhook_body_decode: NULL argument");
    }
    *out = NULL;
    *base64 = 0;
    if (len == 0) {
        *out = json_null();
        return 0;
    }
    af_error_t inner = {0};
    size_t bad_at = 0;
    switch (body_kind(content_type)) {
    case BODY_JSON:
        *out = af_json_loads(body, len, AF_WEBHOOK_JSON_MAX_DEPTH, &inner);
        if (*out == NULL) {
            return af_error_set(err, inner.code, "JSON body: %s", inner.msg);
        }
        return 0;
    case BODY_FORM:
        *out = af_webhook_query_parse(body, len, &inner);
        if (*out == NULL) {
            return af_error_set(err, inner.code, "form body: %s", inner.msg);
        }
        return 0;
    case BODY_TEXT:
        if (!af_utf8_valid(body, len, &bad_at)) {
            return af_error_set(err, AF_EUTF8, "text body: invalid UTF-8 at byte %zu", bad_at);
        }
        *out = json_stringn_nocheck(body, len);
        return *out != NULL ? 0 : af_error_set(err, AF_ENOMEM, "out of memory");
    case BODY_BINARY:
        break;
    }
    int rc = body_base64(body, len, out, err);
    *base64 = rc == 0;
    return rc;
}

/* ---- the request object ---- */

/* Sets obj[key] = a new string of s, after checking its UTF-8 (`what` names it in messages). */
static int set_text(json_t *obj, const char *key, const char *s, const char *what,
                    af_error_t *err) {
    size_t n = strlen(s);
    if (!af_utf8_valid(s, n, NULL)) {
        return af_error_set(err, AF_EUTF8, "%s is not valid UTF-8", what);
    }
    if (json_object_set_new(obj, key, json_stringn_nocheck(s, n)) != 0) {
        return af_error_set(err, AF_ENOMEM, "out of memory");
    }
    return 0;
}

static int headers_json(const af_webhook_headers_t *h, json_t *obj, af_error_t *err) {
    af_buf_t name = {0}, joined = {0};
    int rc = 0;
    for (size_t i = 0; i < h->count && rc == 0; i++) {
        const char *n = h->names[i], *v = h->values[i] != NULL ? h->values[i] : "";
        if (n == NULL || !is_header_name(n)) {
            rc = af_error_set(err, AF_EINVAL, "header #%zu has no valid name", i + 1);
            break;
        }
        name.len = 0;
        for (const char *c = n; *c != '\0' && rc == 0; c++) {
            char lower = (char)ascii_lower((unsigned char)*c);
            rc = af_buf_add(&name, &lower, 1);
        }
        if (rc != 0 || af_buf_add(&name, "", 1) != 0) {
            rc = af_error_set(err, AF_ENOMEM, "out of memory");
            break;
        }
        size_t vlen = strlen(v);
        if (!af_utf8_valid(v, vlen, NULL)) {
            rc = af_error_set(err, AF_EUTF8, "header %s: the value is not valid UTF-8", name.data);
            break;
        }
        json_t *old = json_object_get(obj, name.data);
        json_t *value;
        if (old == NULL) {
            value = json_stringn_nocheck(v, vlen);
        } else {
            /* RFC 9110 5.3: repeated fields mean the same as one joined with commas. */
            joined.len = 0;
            if (af_buf_add(&joined, json_string_value(old), json_string_length(old)) != 0 ||
                af_buf_add(&joined, ", ", 2) != 0 || af_buf_add(&joined, v, vlen) != 0) {
                rc = af_error_set(err, AF_ENOMEM, "out of memory");
                break;
            }
            value = json_stringn_nocheck(joined.data, joined.len);
        }
        if (json_object_set_new_nocheck(obj, name.data, value) != 0) {
            rc = af_error_set(err, AF_ENOMEM, "out of memory");
        }
    }
    af_buf_free(&name);
    af_buf_free(&joined);
    return rc;
}

json_t *af_webhook_request_json(const af_webhook_request_t *req, af_error_t *err) {
    if (req == NULL || req->method == NULL || req->path == NULL ||
        (req->headers.count > 0 && (req->headers.names == NULL || req->headers.values == NULL)) ||
        (req->body == NULL && req->body_len > 0)) {
        af_error_set(err, AF_EINVAL, "af_webhook_request_json: missing method, path or parts");
        return NULL;
    }
    json_t *obj = json_object(), *headers = json_object(), *body = NULL;
    json_t *query = NULL;
    int rc = obj == NULL || headers == NULL ? af_error_set(err, AF_ENOMEM, "out of memory") : 0;
    if (rc == 0) {
        rc = set_text(obj, "method", req->method, "the method", err);
    }
    if (rc == 0) {
        rc = set_text(obj, "path", req->path, "the path", err);
    }
    if (rc == 0) {
        const char *q = req->query != NULL ? req->query : "";
        af_error_t inner = {0};
        query = af_webhook_query_parse(q, strlen(q), &inner);
        if (query == NULL) {
            rc = af_error_set(err, inner.code, "query: %s", inner.msg);
        }
    }
    if (rc == 0 && json_object_set_new(obj, "query", query) != 0) {
        rc = af_error_set(err, AF_ENOMEM, "out of memory");
    }
    if (rc == 0) {
        rc = headers_json(&req->headers, headers, err);
    }
    if (rc == 0) {
        rc = json_object_set(obj, "headers", headers) != 0
                 ? af_error_set(err, AF_ENOMEM, "out of memory")
                 : 0;
    }
    int base64 = 0;
    if (rc == 0) {
        /* The first Content-Type, not the joined text of several. */
        af_webhook_headers_t h = req->headers;
        const char *type = af_webhook_headers_get(&h, "content-type");
        rc = af_webhook_body_decode(type, req->body, req->body_len, &body, &base64, err);
    }
    if (rc == 0) {
        int bad = base64 ? json_object_set_new(obj, "body", json_null()) != 0 ||
                               json_object_set(obj, "body_base64", body) != 0
                         : json_object_set(obj, "body", body) != 0;
        rc = bad ? af_error_set(err, AF_ENOMEM, "out of memory") : 0;
    }
    json_decref(body);
    json_decref(headers);
    if (rc != 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}
