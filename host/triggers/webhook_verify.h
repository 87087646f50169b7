/* webhook_verify.h -- the pure logic of webhook triggers: signature checks (GitHub-style HMAC and
 * Standard Webhooks), header rules, and turning a request into the JSON a workflow receives.
 *
 * Nothing here does I/O or keeps state between calls; the HTTP server looks headers up, this
 * module decides. Error codes: a request that is refused (missing header, bad or stale
 * signature, unmet header rule) is AF_EINVAL; a body that cannot be decoded is AF_ESYNTAX,
 * AF_EUTF8 or AF_ELIMIT; a configuration that cannot work (no secret, a secret that is not
 * base64, a bad rule) is AF_EDEFINITION. Messages name headers and say what was expected, but
 * never echo a secret or the value a request sent. */
#ifndef AF_WEBHOOK_VERIFY_H
#define AF_WEBHOOK_VERIFY_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "core/core.h"

/* ---- headers ------------------------------------------------------------------------------ */

/* Looks up a request header: returns its value (borrowed, NUL-terminated, valid for the call that
 * was given the function) or NULL when absent. Names must compare ignoring case. */
typedef const char *(*af_webhook_get_header_fn)(void *ud, const char *name);

/* Headers as parallel arrays, e.g. from the HTTP server or a test. */
typedef struct af_webhook_headers_s {
    const char *const *names;
    const char *const *values;
    size_t count;
} af_webhook_headers_t;

/* An af_webhook_get_header_fn over an af_webhook_headers_t (passed as ud): the value of the first
 * header whose name equals `name` ignoring ASCII case, or NULL. */
const char *af_webhook_headers_get(void *ud, const char *name);

/* 1 when the NUL-terminated strings are equal, else 0 (also when either is NULL). The time taken
 * depends on the lengths only, never on where the strings differ: use it for tokens and secrets. */
int af_webhook_secret_equal(const char *expected, const char *given);

/* ---- GitHub-style HMAC-SHA256 signatures ------------------------------------------------------
 * The header holds prefix + hex(HMAC-SHA256(secret, raw body)); GitHub sends
 * "X-Hub-Signature-256: sha256=<64 hex digits>". Hex digits may be upper or lower case. */

#define AF_WEBHOOK_HMAC_HEADER "X-Hub-Signature-256"
#define AF_WEBHOOK_HMAC_PREFIX "sha256="

typedef struct af_webhook_hmac_s {
    const char *header;         /* NULL: AF_WEBHOOK_HMAC_HEADER */
    const char *prefix;         /* NULL: AF_WEBHOOK_HMAC_PREFIX; "" for a bare hex digest */
    const char *const *secrets; /* keys as text, used as bytes; several while rotating */
    size_t nsecrets;
} af_webhook_hmac_t;

/* Checks the signature header of a request against every configured secret (constant-time
 * comparison). Returns 0 when one matches; AF_EINVAL with a message for a missing header, a
 * missing prefix, a digest that is not 64 hex digits (odd length, wrong length, not hex) or no
 * match; AF_EDEFINITION when cfg has no secret or an empty one; AF_ENOMEM. The header is looked
 * up through get(ud, name). */
int af_webhook_hmac_verify(const af_webhook_hmac_t *cfg, af_webhook_get_header_fn get, void *ud,
                           const void *body, size_t len, af_error_t *err);

/* Writes the header value for body signed with secret: prefix (NULL: AF_WEBHOOK_HMAC_PREFIX)
 * followed by 64 lower-case hex digits, NUL-terminated, into out. Returns 0; AF_EINVAL when size
 * is too small (strlen(prefix) + 65 bytes are needed); AF_EDEFINITION for an empty secret. */
int af_webhook_hmac_sign(const char *secret, const char *prefix, const void *body, size_t len,
                         char *out, size_t size, af_error_t *err);

/* ---- Standard Webhooks (https://www.standardwebhooks.com) ---------------------------------------
 * Headers webhook-id, webhook-timestamp (Unix seconds, decimal digits) and webhook-signature (a
 * space-separated list of "v1,<base64 HMAC-SHA256>"; entries of other versions such as v1a are
 * ignored). The signed content is "{id}.{timestamp}.{body}", the timestamp written as a plain
 * decimal number. A secret is "whsec_<base64>", or base64 without the prefix; the key is the
 * decoded bytes. */

#define AF_WEBHOOK_STD_TOLERANCE 300 /* seconds either side of now */
/* "v1," + 44 base64 characters + NUL. */
#define AF_WEBHOOK_STD_SIG_SIZE 48

typedef struct af_webhook_std_s {
    const char *const *secrets; /* several while rotating: any one may match */
    size_t nsecrets;
    int64_t now;       /* the current time in Unix seconds */
    int64_t tolerance; /* seconds the timestamp may be off either way; 0: the default (300) */
} af_webhook_std_t;

/* Checks a Standard Webhooks request: the three headers are present, the timestamp is at most
 * `tolerance` seconds before or after `now` (exactly tolerance is accepted), and at least one v1
 * signature matches one of the secrets (constant-time comparison). Returns 0, or AF_EINVAL with a
 * distinct message: missing header(s) (all missing ones named), malformed timestamp, timestamp
 * too old or too far in the future (by how much), no v1 signature in the header, no matching
 * signature. AF_EDEFINITION when there is no secret, a secret is not valid base64 or decodes to
 * nothing, or tolerance is negative; AF_ENOMEM. Checks happen in that order: headers, timestamp,
 * signature. */
int af_webhook_std_verify(const af_webhook_std_t *cfg, af_webhook_get_header_fn get, void *ud,
                          const void *body, size_t len, af_error_t *err);

/* Writes the webhook-signature value ("v1,<base64>", NUL-terminated) for the message into out
 * (at least AF_WEBHOOK_STD_SIG_SIZE bytes). Returns 0; AF_EINVAL for a NULL id, a negative
 * timestamp or a short buffer; AF_EDEFINITION for a secret as af_webhook_std_verify refuses it. */
int af_webhook_std_sign(const char *secret, const char *id, int64_t timestamp, const void *body,
                        size_t len, char *out, size_t size, af_error_t *err);

/* Checks that a secret is usable for Standard Webhooks (for trigger definitions, before any
 * request comes). Returns 0 or AF_EDEFINITION with a message that does not contain the secret. */
int af_webhook_std_secret_check(const char *secret, af_error_t *err);

/* ---- header rules -------------------------------------------------------------------------------
 * Compiled from a JSON object mapping header name to rule:
 *   true                       the header must be present (any value, empty included)
 *   "text"                     the value must equal "text" (constant-time; a token may be secret)
 *   {"pattern": "<regex>"}     the value must match the POSIX extended regex (unanchored: write
 *                              ^...$ for the whole value)
 *   {"one_of": ["a", "b"]}     the value must equal one of the strings
 * Header names compare ignoring case (the lookup function's job); two rules for the same name in
 * different case are a definition error. Rules are checked in the object's order. */

typedef struct af_webhook_rules_s af_webhook_rules_t;

/* Compiles rules (borrowed; nothing of it is kept). Returns a new rules object (free with
 * af_webhook_rules_free), or NULL with err set: AF_EDEFINITION naming the header for a rule of
 * the wrong shape, an invalid regex (with regerror's text) or a duplicate name; AF_ENOMEM. An
 * empty object gives rules that always pass. */
af_webhook_rules_t *af_webhook_rules_compile(const json_t *rules, af_error_t *err);

/* Checks a request's headers, looked up through get(ud, name). Returns 0 when every rule holds,
 * else AF_EINVAL naming the first unmet header and what it expected ("missing header X-Event",
 * "header X-Event must match ^push$", "header X-Event must be one of push, ping", "header
 * X-Token does not have the expected value"): never the value sent, never an exact value. */
int af_webhook_rules_check(const af_webhook_rules_t *r, af_webhook_get_header_fn get, void *ud,
                           af_error_t *err);

/* Frees compiled rules; NULL is allowed. */
void af_webhook_rules_free(af_webhook_rules_t *r);

/* ---- request bodies and the request object -------------------------------------------------- */

/* JSON bodies may nest this deep; deeper is AF_ELIMIT. */
#define AF_WEBHOOK_JSON_MAX_DEPTH 64

/* Decodes a body by its Content-Type (NULL when the request had none; parameters such as charset
 * are ignored, the media type compares ignoring case) into *out, a new reference:
 *   empty body                         JSON null, whatever the type
 *   application/json, or a subtype     the parsed value (AF_ESYNTAX with line and column,
 *   ending in "+json"                  AF_EUTF8, AF_ELIMIT beyond AF_WEBHOOK_JSON_MAX_DEPTH)
 *   application/x-www-form-urlencoded  an object as af_webhook_query_parse makes it
 *   type "text", any subtype           a JSON string (AF_EUTF8 when not valid UTF-8)
 *   anything else, or no type          a JSON string of the body in base64 (RFC 4648, padded)
 * *base64 is set to 1 in the last case, else 0. Returns 0, or an error with *out NULL. */
int af_webhook_body_decode(const char *content_type, const void *body, size_t len, json_t **out,
                           int *base64, af_error_t *err);

/* Parses form-urlencoded text (a query string without or with its leading '?', or a form body)
 * into a new JSON object: '&'-separated key=value pairs, '+' decoded as space and %XX as the byte,
 * a key without '=' gets "", empty pairs are skipped, a key given twice or more becomes an array
 * of its values in order. Returns NULL with err set: AF_ESYNTAX for a '%' not followed by two hex
 * digits (with its byte offset), AF_EUTF8 when a decoded key or value is not valid UTF-8,
 * AF_ENOMEM. text may be NULL when len is 0. */
json_t *af_webhook_query_parse(const char *text, size_t len, af_error_t *err);

/* The parts of a request that came in. */
typedef struct af_webhook_request_s {
    const char *method;           /* "POST" */
    const char *path;             /* as sent, not percent-decoded */
    const char *query;            /* after '?', NULL or "" for none */
    af_webhook_headers_t headers; /* names in any case */
    const void *body;
    size_t body_len;
} af_webhook_request_t;

/* Builds the request object handed to the workflow: {"method", "path", "query": {...},
 * "headers": {lower-case name: value}, "body": <decoded>, "body_base64": <string>}. Headers that
 * appear more than once are joined with ", " in order. The body is decoded by the content-type
 * header as af_webhook_body_decode does; when that gives base64, "body" is null and
 * "body_base64" holds it, otherwise "body_base64" is absent. Returns a new reference, or NULL with
 * err set: AF_EINVAL for a NULL method or path, AF_EUTF8 for a path or header value that is not
 * valid UTF-8 (naming the header), the errors of af_webhook_query_parse and
 * af_webhook_body_decode, AF_ENOMEM. */
json_t *af_webhook_request_json(const af_webhook_request_t *req, af_error_t *err);

#endif
