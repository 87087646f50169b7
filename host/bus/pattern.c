/* pattern.c -- matching event types against subscription patterns, segment by segment. */
#include "bus/pattern.h"

#include <ctype.h>
#include <string.h>

int af_event_type_check(const char *text, int pattern, af_error_t *err) {
    const char *what = pattern ? "event type pattern" : "event type";
    size_t len = text ? strlen(text) : 0;
    if (len == 0 || len > AF_EVENT_TYPE_MAX) {
        return af_error_set(err, AF_EINVAL, "%s '%.64s' must have 1 to %d characters", what,
                            text ? text : "", AF_EVENT_TYPE_MAX);
    }
    const char *seg = text;
    int hashes = 0;
    for (const char *p = text;; p++) {
        if (*p != '.' && *p != '\0') {
            continue;
        }
        size_t n = (size_t)(p - seg);
        int wild = n == 1 && (*seg == '*' || *seg == '#');
        if (n == 0) {
            return af_error_set(err, AF_EINVAL, "%s '%s' has an empty segment", what, text);
        }
        if (wild && !pattern) {
            return af_error_set(err, AF_EINVAL,
                                "event type '%s' has a wildcard; only "
                                "subscriptions use * and #",
                                text);
        }
        for (size_t i = 0; !wild && i < n; i++) {
            unsigned char c = (unsigned char)seg[i];
            if (!isalnum(c) && c != '_' && c != '-') {
                return af_error_set(
                    err, AF_EINVAL, "%s '%s': segment '%.*s' may hold letters, digits, _ and -%s",
                    what, text, (int)n, seg, pattern ? ", or be a lone * or #" : "");
            }
        }
        hashes += n == 1 && *seg == '#';
        if (hashes > 2) {
            return af_error_set(err, AF_EINVAL, "%s '%s' has more than two #", what, text);
        }
        if (*p == '\0') {
            return 0;
        }
        seg = p + 1;
    }
}

/* The length of the segment at s (up to a dot or the end). */
static size_t seg_len(const char *s) {
    return strcspn(s, ".");
}

/* The segment after the one at s (or the end). */
static const char *next_seg(const char *s) {
    size_t n = seg_len(s);
    return s[n] ? s + n + 1 : s + n;
}

/* Matches the pattern from segment p against the type from segment t. */
static int match_from(const char *p, const char *t) {
    if (*p == '\0') {
        return *t == '\0';
    }
    size_t pn = seg_len(p);
    if (pn == 1 && *p == '#') { /* zero segments, then one more each time */
        for (;; t = next_seg(t)) {
            if (match_from(next_seg(p), t)) {
                return 1;
            }
            if (*t == '\0') {
                return 0;
            }
        }
    }
    size_t tn = seg_len(t);
    if (*t == '\0' || (!(pn == 1 && *p == '*') && (pn != tn || memcmp(p, t, pn) != 0))) {
        return 0;
    }
    return match_from(next_seg(p), next_seg(t));
}

int af_event_type_match(const char *pattern, const char *type) {
    return pattern && type && match_from(pattern, type);
}
