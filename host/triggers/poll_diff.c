/* poll_diff.c -- new and changed items of a poll against the state of the polls before:
 * {"items": {"<key>": "<content hash>", ...}}. */
#include "triggers/poll_diff.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The FNV-1a hash of the item's canonical JSON (keys sorted), as 16 hex digits. */
static int content_hash(const json_t *item, char out[17]) {
    char *text = json_dumps(item, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    if (text == NULL) {
        return AF_ENOMEM;
    }
    uint64_t h = (uint64_t)af_hash_str(text);
    free(text);
    snprintf(out, 17, "%016" PRIx64, h);
    return 0;
}

/* The key of an item into buf: its key field (string or number), or its content hash. */
static int key_of(const json_t *item, const af_poll_opts_t *o, const char *hash, char *buf,
                  size_t size, af_error_t *err) {
    if (o->key == NULL) {
        af_strlcpy(buf, hash, size);
        return 0;
    }
    const json_t *k = json_is_object(item) ? json_object_get(item, o->key) : NULL;
    if (json_is_string(k) && json_string_length(k) < size) {
        af_strlcpy(buf, json_string_value(k), size);
    } else if (json_is_integer(k)) {
        snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(k));
    } else {
        return af_error_set(err, AF_EINVAL,
                            "poll: every item needs '%s', a string (under %zu bytes) or an "
                            "integer",
                            o->key, size);
    }
    return 0;
}

int af_poll_diff(const json_t *state, const json_t *items, const af_poll_opts_t *o, json_t **emit,
                 json_t **next_state, af_error_t *err) {
    *emit = NULL;
    *next_state = NULL;
    if (!json_is_array(items)) {
        return af_error_set(err, AF_EINVAL, "poll: the poll must return a list of items");
    }
    const json_t *known = json_object_get(state, "items");
    int first = state == NULL;
    json_t *seen = json_object(), *out = json_array();
    size_t i;
    json_t *item;
    int rc = 0;
    json_array_foreach(items, i, item) {
        char hash[17] = "", key[512]; /* the content counts without a key, or with hash */
        if (((o->key == NULL || o->hash) && (rc = content_hash(item, hash)) != 0) ||
            (rc = key_of(item, o, hash, key, sizeof key, err)) != 0) {
            break;
        }
        if (json_object_get(seen, key)) {
            if (o->key == NULL) {
                continue; /* the same content twice: one item */
            }
            rc = af_error_set(err, AF_EINVAL, "poll: two items have %s '%s'", o->key, key);
            break;
        }
        json_object_set_new(seen, key, json_string(hash));
        const char *before = json_string_value(json_object_get(known, key));
        int fresh = before == NULL || (o->hash && strcmp(before, hash) != 0);
        if (first ? !o->baseline : fresh) {
            json_array_append(out, item);
        }
    }
    if (rc != 0) {
        json_decref(seen);
        json_decref(out);
        return rc == AF_ENOMEM ? af_error_set(err, rc, "out of memory") : rc;
    }
    *emit = out;
    *next_state = json_pack("{s:o}", "items", seen);
    return 0;
}
