/* test_core.c -- the host's base layer (core/core.c): durations, byte sizes, UTF-8, ids, error
 * codes and error text, buffers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

static void test_hash_str(void **state) {
    (void)state;
    if (sizeof(size_t) == 8) { /* the published FNV-1a 64 values */
        assert_true(af_hash_str("") == (size_t)0xcbf29ce484222325ULL);
        assert_true(af_hash_str("a") == (size_t)0xaf63dc4c8601ec8cULL);
    }
    assert_true(af_hash_str("t1") != af_hash_str("t2"));
}

static void test_strlcpy(void **state) {
    (void)state;
    char buf[6];
    memset(buf, 'x', sizeof buf);
    assert_int_equal(af_strlcpy(buf, "abc", sizeof buf), 3);
    assert_string_equal(buf, "abc");
    assert_int_equal(af_strlcpy(buf, "abcdefgh", sizeof buf), 8); /* cut short, terminated */
    assert_string_equal(buf, "abcde");
    assert_int_equal(af_strlcpy(buf, "", sizeof buf), 0);
    assert_string_equal(buf, "");
    assert_int_equal(af_strlcpy(buf, "abc", 1), 3);
    assert_string_equal(buf, "");
}

static void test_duration_parse(void **state) {
    (void)state;
    static const struct {
        const char *text;
        int64_t ms;
    } ok[] = {
        {"200ms", 200}, {"1.5s", 1500}, {"2m", 120000}, {"1h", 3600000}, {"1d", 86400000},
        {"250", 250},   {"0", 0},       {"0.5s", 500},  {"90s", 90000},  {"7d", 604800000},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t ms = -1;
        assert_int_equal(af_duration_parse(ok[i].text, &ms), 0);
        assert_int_equal(ms, ok[i].ms);
    }
    static const char *bad[] = {"",       "-1s", "1x",  "s",   " 1s", "1e400s", "1s ",  "+1s",
                                "1.5.2s", "ms",  "nan", "inf", "1 s", "1S",     "1e13d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 12345;
        if (af_duration_parse(bad[i], &ms) != AF_EINVAL) {
            fail_msg("\"%s\" was accepted", bad[i]);
        }
        assert_int_equal(ms, 12345); /* untouched on refusal */
    }
    int64_t ms;
    assert_int_equal(af_duration_parse(NULL, &ms), AF_EINVAL);
}

static void test_duration_format(void **state) {
    (void)state;
    char buf[32];
    assert_string_equal(af_duration_format(850, buf, sizeof buf), "850ms");
    assert_string_equal(af_duration_format(1500, buf, sizeof buf), "1.50s");
    assert_string_equal(af_duration_format(123000, buf, sizeof buf), "2m03s");
    assert_string_equal(af_duration_format(0.25, buf, sizeof buf), "0.25ms");
}

static void test_bytes_parse(void **state) {
    (void)state;
    static const struct {
        const char *text;
        size_t bytes;
    } ok[] = {
        {"64MB", (size_t)64 << 20},
        {"512KB", 512 << 10},
        {"1GB", (size_t)1 << 30},
        {"1048576", 1048576},
        {"0", 0},
        {"10B", 10},
        {"2K", 2048},
        {"3M", (size_t)3 << 20},
        {"1.5KB", 1536},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        size_t n = 1;
        assert_int_equal(af_bytes_parse(ok[i].text, &n), 0);
        assert_int_equal(n, ok[i].bytes);
    }
    static const char *bad[] = {"", "MB", "-1", "1TB", "1 MB", "1e400", " 1", "1mb", "x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = 77;
        if (af_bytes_parse(bad[i], &n) != AF_EINVAL) {
            fail_msg("\"%s\" was accepted", bad[i]);
        }
        assert_int_equal(n, 77);
    }
    size_t n;
    assert_int_equal(af_bytes_parse(NULL, &n), AF_EINVAL);
}

/* Checks af_utf8_valid on `len` bytes: `valid`, and when invalid, the offset reported. */
static void check_utf8(const char *s, size_t len, int valid, size_t bad_at) {
    size_t at = 999;
    assert_int_equal(af_utf8_valid(s, len, &at), valid);
    if (!valid) {
        assert_int_equal(at, bad_at);
    } else {
        assert_int_equal(at, 999);
    }
    assert_int_equal(af_utf8_valid(s, len, NULL), valid);
}

static void test_utf8_valid(void **state) {
    (void)state;
    check_utf8("", 0, 1, 0);
    check_utf8("plain ascii", 11, 1, 0);
    check_utf8("a\0b", 3, 1, 0);
    check_utf8("h\xc3\xa9llo", 6, 1, 0);             /* 2 bytes */
    check_utf8("\xe2\x82\xac", 3, 1, 0);             /* 3 bytes */
    check_utf8("\xf0\x9f\x98\x80", 4, 1, 0);         /* 4 bytes */
    check_utf8("\xf4\x8f\xbf\xbf", 4, 1, 0);         /* U+10FFFF */
    check_utf8("\xed\x9f\xbf\xee\x80\x80", 6, 1, 0); /* around the surrogates */
    check_utf8("ab\xc0\xaf", 4, 0, 2);               /* overlong '/' */
    check_utf8("\xe0\x80\xaf", 3, 0, 0);             /* overlong, 3 bytes */
    check_utf8("\xf0\x80\x80\xaf", 4, 0, 0);         /* overlong, 4 bytes */
    check_utf8("x\xed\xa0\x80", 4, 0, 1);            /* high surrogate */
    check_utf8("\xed\xbf\xbf", 3, 0, 0);             /* low surrogate */
    check_utf8("ab\xe2\x82", 4, 0, 2);               /* truncated at the end */
    check_utf8("\xf0\x9f\x98", 3, 0, 0);             /* truncated at the end */
    check_utf8("\xc3", 1, 0, 0);                     /* truncated at the end */
    check_utf8("\xe2\x82\xac\xe2\x82\xac", 5, 0, 3); /* cut by len */
    check_utf8("\xf8\x88\x80\x80\x80", 5, 0, 0);     /* 5 bytes */
    check_utf8("\xfc\x84\x80\x80\x80\x80", 6, 0, 0); /* 6 bytes */
    check_utf8("\xf4\x90\x80\x80", 4, 0, 0);         /* above U+10FFFF */
    check_utf8("a\x80", 2, 0, 1);                    /* stray continuation */
    check_utf8("\xc3(", 2, 0, 0);                    /* bad continuation */
    check_utf8("\xff", 1, 0, 0);
}

static void test_uuid_v7_sorts_by_time(void **state) {
    (void)state;
    char prev[37], id[37];
    af_uuid_v7(prev);
    assert_int_equal(strlen(prev), 36);
    assert_int_equal(prev[14], '7');
    assert_non_null(strchr("89ab", prev[19]));
    long long ms = strtoll(prev, NULL, 16) * 65536 + strtoll(prev + 9, NULL, 16);
    assert_true(llabs(ms - (long long)af_wall_ms()) < 1000); /* the time comes first */
    for (int i = 0; i < 10000; i++) { /* many in the same millisecond still sort */
        af_uuid_v7(id);
        assert_true(strcmp(prev, id) < 0);
        memcpy(prev, id, sizeof id);
    }
}

static void test_uuid_v4(void **state) {
    (void)state;
    char a[37], b[37];
    memset(a, 'Z', sizeof a);
    assert_ptr_equal(af_uuid_v4(a), a);
    af_uuid_v4(b);
    assert_int_equal(strlen(a), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            assert_int_equal(a[i], '-');
        } else {
            assert_true(isxdigit((unsigned char)a[i]) && !isupper((unsigned char)a[i]));
        }
    }
    assert_int_equal(a[14], '4');
    assert_non_null(strchr("89ab", a[19]));
    assert_string_not_equal(a, b);
    static char many[100][37]; /* across several refills of the random pool: all different */
    for (int i = 0; i < 100; i++) {
        af_uuid_v4(many[i]);
        for (int j = 0; j < i; j++) {
            assert_string_not_equal(many[i], many[j]);
        }
    }
}

static void test_error_text(void **state) {
    (void)state;
    af_error_t err = {0};
    char buf[128];
    assert_int_equal(af_error_set(&err, AF_ESYNTAX, "bad %s", "token"), AF_ESYNTAX);
    assert_int_equal(err.code, AF_ESYNTAX);
    assert_string_equal(err.where, "");
    assert_string_equal(af_error_text(&err, buf, sizeof buf), "bad token");

    assert_int_equal(af_error_at(&err, AF_EDEFINITION, "flow.lua:12", "unknown step %d", 3),
                     AF_EDEFINITION);
    assert_string_equal(af_error_text(&err, buf, sizeof buf), "flow.lua:12: unknown step 3");

    /* a message that already starts with its location is not prefixed twice */
    af_error_at(&err, AF_ESYNTAX, "flow.lua:3", "flow.lua:3: unexpected symbol");
    assert_string_equal(af_error_text(&err, buf, sizeof buf), "flow.lua:3: unexpected symbol");

    af_error_at(&err, AF_EIO, NULL, "no where");
    assert_string_equal(err.where, "");
    assert_string_equal(af_error_text(&err, buf, 6), "no wh");

    assert_int_equal(af_error_set(NULL, AF_ETIMEOUT, "ignored"), AF_ETIMEOUT);
    assert_int_equal(af_error_at(NULL, AF_ENOMEM, "x", "ignored"), AF_ENOMEM);
}

static void test_strerror(void **state) {
    (void)state;
    assert_string_equal(af_strerror(0), "success");
    assert_string_equal(af_strerror(AF_EINVAL), "invalid argument");
    assert_string_equal(af_strerror(AF_ETIMEOUT), "timed out");
    assert_string_equal(af_strerror(AF_ESTATE), "invalid state");
    assert_string_equal(af_strerror(-1000), "unknown error");
    assert_string_equal(af_strerror(5), "unknown error");
    assert_string_equal(af_err_name(0), "OK");
    assert_string_equal(af_err_name(AF_ETIMEOUT), "TIMEOUT");
    assert_string_equal(af_err_name(AF_EUTF8), "UTF8");
    assert_string_equal(af_err_name(-1000), "UNKNOWN");
    /* codes are part of the ABI: never renumbered */
    assert_int_equal(AF_EINVAL, -1);
    assert_int_equal(AF_ESYNTAX, -4);
    assert_int_equal(AF_ELIMIT, -8);
    assert_int_equal(AF_EUTF8, -13);
    assert_int_equal(AF_ESTATE, -14);
    for (int code = AF_ESTATE; code <= AF_EINVAL; code++) {
        assert_string_not_equal(af_strerror(code), "unknown error");
        assert_string_not_equal(af_err_name(code), "UNKNOWN");
    }
}

static void test_buf(void **state) {
    (void)state;
    af_buf_t b = {0};
    assert_int_equal(af_buf_add(&b, "", 0), 0);
    assert_string_equal(b.data, "");
    assert_int_equal(af_buf_add(&b, "abc", 3), 0);
    assert_int_equal(af_buf_addf(&b, "-%d-", 42), 0);
    assert_string_equal(b.data, "abc-42-");
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(af_buf_addf(&b, "%s!", big), 0); /* longer than addf's stack buffer */
    assert_int_equal(b.len, 7 + 1999 + 1);
    assert_int_equal(b.data[b.len - 1], '!');
    assert_int_equal(b.data[b.len], '\0');
    af_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

static void test_time(void **state) {
    (void)state;
    char buf[32];
    assert_string_equal(af_time_iso(0, buf, sizeof buf), "1970-01-01T00:00:00.000Z");
    assert_string_equal(af_time_iso(1700000000123, buf, sizeof buf), "2023-11-14T22:13:20.123Z");
    double a = af_mono_ms(), b = af_mono_ms();
    assert_true(b >= a);
    assert_true(af_wall_ms() > 1700000000000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strlcpy),
        cmocka_unit_test(test_hash_str),
        cmocka_unit_test(test_duration_parse),
        cmocka_unit_test(test_duration_format),
        cmocka_unit_test(test_bytes_parse),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_uuid_v4),
        cmocka_unit_test(test_uuid_v7_sorts_by_time),
        cmocka_unit_test(test_error_text),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
