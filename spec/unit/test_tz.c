/* test_tz.c -- time zones (core/tz.c): real IANA zones from the system's zoneinfo (tzdata), the
 * POSIX footer rule, synthetic TZif files written to a temporary $AF_ZONEINFO, refused names and
 * files, and the proleptic Gregorian helpers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/tz.h"

/* ---- fixture: a temporary zoneinfo directory ----------------------------------------------- */

#define MAX_FILES 32

static char tmp_dir[64];
static char *saved_zoneinfo; /* $AF_ZONEINFO as the test started, restored for real zones */
static char *written[MAX_FILES];
static size_t n_written;

static int group_setup(void **state) {
    (void)state;
    const char *z = getenv("AF_ZONEINFO");
    saved_zoneinfo = z != NULL ? strdup(z) : NULL;
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/test_tz.XXXXXX");
    return mkdtemp(tmp_dir) != NULL ? 0 : -1;
}

static int group_teardown(void **state) {
    (void)state;
    char path[256];
    for (size_t i = 0; i < n_written; i++) {
        snprintf(path, sizeof path, "%s/%s", tmp_dir, written[i]);
        if (remove(path) != 0) {
            fprintf(stderr, "test_tz: cannot remove %s\n", path);
        }
        free(written[i]);
    }
    rmdir(tmp_dir);
    free(saved_zoneinfo);
    return 0;
}

/* Real zones come from wherever the environment said (the system's tzdata by default). */
static void use_system_zones(void) {
    if (saved_zoneinfo != NULL) {
        setenv("AF_ZONEINFO", saved_zoneinfo, 1);
    } else {
        unsetenv("AF_ZONEINFO");
    }
}

static void use_temp_zones(void) {
    setenv("AF_ZONEINFO", tmp_dir, 1);
}

static af_tz_t *load_system(const char *name) {
    use_system_zones();
    af_error_t err = {0};
    af_tz_t *tz = af_tz_load(name, &err);
    if (tz == NULL) {
        fail_msg("%s: %s (is the tzdata package installed?)", name, err.msg);
    }
    return tz;
}

/* Writes name (a plain file, or a directory when data is NULL) into the temporary directory. */
static void write_zone(const char *name, const void *data, size_t len) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    if (data == NULL) {
        assert_int_equal(mkdir(path, 0700), 0);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
    }
    for (size_t i = 0; i < n_written; i++) {
        if (strcmp(written[i], name) == 0) {
            return;
        }
    }
    assert_true(n_written < MAX_FILES);
    written[n_written++] = strdup(name);
}

/* Loads a zone from the temporary directory, expecting success. */
static af_tz_t *load_temp(const char *name) {
    use_temp_zones();
    af_error_t err = {0};
    af_tz_t *tz = af_tz_load(name, &err);
    if (tz == NULL) {
        fail_msg("%s: %s", name, err.msg);
    }
    return tz;
}

/* Loads a zone from the temporary directory, expecting failure with code. */
static void expect_load_error(const char *name, int code) {
    use_temp_zones();
    af_error_t err = {0};
    af_tz_t *tz = af_tz_load(name, &err);
    if (tz != NULL) {
        af_tz_free(tz);
        fail_msg("%s loaded", name);
    }
    assert_int_equal(err.code, code);
    assert_non_null(strstr(err.msg, name)); /* messages name the zone */
}

/* ---- synthetic TZif files ------------------------------------------------------------------ */

typedef struct {
    unsigned char data[8192];
    size_t len;
} bytes_t;

static void put8(bytes_t *b, unsigned v) {
    assert_true(b->len < sizeof b->data);
    b->data[b->len++] = (unsigned char)v;
}

static void put32(bytes_t *b, uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) {
        put8(b, (v >> shift) & 0xff);
    }
}

static void put64(bytes_t *b, int64_t v) {
    put32(b, (uint32_t)((uint64_t)v >> 32));
    put32(b, (uint32_t)(uint64_t)v);
}

/* What a zone file holds: transitions with their type index, and the types. */
typedef struct {
    char version; /* 0 for version 1, else '2', '3' or '4' */
    size_t n_trans;
    const int64_t *trans;
    const uint8_t *trans_type;
    size_t n_types;
    const int32_t *utoff;
    const uint8_t *is_dst;
    const char *footer; /* the POSIX TZ string (versions 2+) */
} zone_spec_t;

static void put_header(bytes_t *b, const zone_spec_t *z) {
    put8(b, 'T'), put8(b, 'Z'), put8(b, 'i'), put8(b, 'f');
    put8(b, (unsigned char)z->version);
    for (int i = 0; i < 15; i++) {
        put8(b, 0);
    }
    put32(b, 0);                    /* isutcnt */
    put32(b, 0);                    /* isstdcnt */
    put32(b, 0);                    /* leapcnt */
    put32(b, (uint32_t)z->n_trans); /* timecnt */
    put32(b, (uint32_t)z->n_types); /* typecnt */
    put32(b, 4);                    /* charcnt: "ABC\0", shared by all types */
}

static void put_block(bytes_t *b, const zone_spec_t *z, int time_size) {
    for (size_t i = 0; i < z->n_trans; i++) {
        if (time_size == 4) {
            put32(b, (uint32_t)(int32_t)z->trans[i]);
        } else {
            put64(b, z->trans[i]);
        }
    }
    for (size_t i = 0; i < z->n_trans; i++) {
        put8(b, z->trans_type[i]);
    }
    for (size_t i = 0; i < z->n_types; i++) {
        put32(b, (uint32_t)z->utoff[i]);
        put8(b, z->is_dst[i]);
        put8(b, 0);
    }
    put8(b, 'A'), put8(b, 'B'), put8(b, 'C'), put8(b, 0);
}

static void build_tzif(bytes_t *b, const zone_spec_t *z) {
    b->len = 0;
    put_header(b, z);
    put_block(b, z, 4);
    if (z->version == 0) {
        return;
    }
    put_header(b, z);
    put_block(b, z, 8);
    put8(b, '\n');
    for (const char *p = z->footer; *p; p++) {
        put8(b, (unsigned char)*p);
    }
    put8(b, '\n');
}

/* A version 2 file with no transitions: one type, and everything else from the footer. */
static void write_footer_zone(const char *name, int32_t utoff, const char *footer) {
    uint8_t dst = 0;
    zone_spec_t z = {'2', 0, NULL, NULL, 1, &utoff, &dst, footer};
    bytes_t b;
    build_tzif(&b, &z);
    write_zone(name, b.data, b.len);
}

/* ---- helpers ------------------------------------------------------------------------------- */

static af_civil_t civil(int y, int mo, int d, int h, int mi, int s) {
    return (af_civil_t){y, mo, d, h, mi, s};
}

static void assert_offset(const af_tz_t *tz, int64_t t, int32_t offset, int is_dst) {
    int dst = -1;
    int32_t got = af_tz_offset(tz, t, &dst);
    if (got != offset || dst != is_dst) {
        fail_msg("%s at %lld: offset %d dst %d, expected %d dst %d", af_tz_name(tz), (long long)t,
                 (int)got, dst, (int)offset, is_dst);
    }
}

/* A daylight-saving change at instant t: `before` in effect up to t - 1, `after` from t on; the
 * larger of the two is the DST offset. */
static void assert_change(const af_tz_t *tz, int64_t t, int32_t before, int32_t after) {
    assert_offset(tz, t - 1, before, before > after);
    assert_offset(tz, t, after, after > before);
}

static void assert_from_civil(const af_tz_t *tz, af_civil_t c, af_tz_kind_t kind, int64_t t) {
    int64_t got = 0;
    af_tz_kind_t k = af_tz_from_civil(tz, &c, &got);
    if (k != kind || got != t) {
        fail_msg("%s %04d-%02d-%02d %02d:%02d:%02d: kind %d at %lld, expected kind %d at %lld",
                 af_tz_name(tz), c.year, c.month, c.day, c.hour, c.minute, c.second, (int)k,
                 (long long)got, (int)kind, (long long)t);
    }
}

static void assert_civil(const af_civil_t *c, int y, int mo, int d, int h, int mi, int s) {
    if (c->year != y || c->month != mo || c->day != d || c->hour != h || c->minute != mi ||
        c->second != s) {
        fail_msg("got %04d-%02d-%02d %02d:%02d:%02d, expected %04d-%02d-%02d %02d:%02d:%02d",
                 c->year, c->month, c->day, c->hour, c->minute, c->second, y, mo, d, h, mi, s);
    }
}

/* Instants of the 2026 changes, as UTC. */
#define BERLIN_SPRING_2026 1774746000 /* 2026-03-29 01:00:00Z */
#define BERLIN_AUTUMN_2026 1792890000 /* 2026-10-25 01:00:00Z */
#define NY_SPRING_2026     1772953200 /* 2026-03-08 07:00:00Z */
#define NY_AUTUMN_2026     1793512800 /* 2026-11-01 06:00:00Z */

/* ---- real zones ---------------------------------------------------------------------------- */

static void test_berlin_2026(void **state) {
    (void)state;
    af_tz_t *tz = load_system("Europe/Berlin");
    assert_string_equal(af_tz_name(tz), "Europe/Berlin");
    assert_change(tz, BERLIN_SPRING_2026, 3600, 7200);
    assert_change(tz, BERLIN_AUTUMN_2026, 7200, 3600);
    assert_offset(tz, 1767225600, 3600, 0); /* 2026-01-01 */
    assert_offset(tz, 1782864000, 7200, 1); /* 2026-07-01 */

    /* 02:30 does not exist on 29 March: the answer is the change itself, 03:00 CEST */
    assert_from_civil(tz, civil(2026, 3, 29, 2, 30, 0), AF_TZ_GAP, BERLIN_SPRING_2026);
    assert_from_civil(tz, civil(2026, 3, 29, 2, 0, 0), AF_TZ_GAP, BERLIN_SPRING_2026);
    assert_from_civil(tz, civil(2026, 3, 29, 1, 59, 59), AF_TZ_UNIQUE, BERLIN_SPRING_2026 - 1);
    assert_from_civil(tz, civil(2026, 3, 29, 3, 0, 0), AF_TZ_UNIQUE, BERLIN_SPRING_2026);
    /* 02:30 happens twice on 25 October: first in CEST (00:30Z), then in CET (01:30Z) */
    assert_from_civil(tz, civil(2026, 10, 25, 2, 30, 0), AF_TZ_OVERLAP, 1792888200);
    assert_from_civil(tz, civil(2026, 10, 25, 2, 0, 0), AF_TZ_OVERLAP, BERLIN_AUTUMN_2026 - 3600);
    assert_from_civil(tz, civil(2026, 10, 25, 1, 59, 59), AF_TZ_UNIQUE,
                      BERLIN_AUTUMN_2026 - 3600 - 1);
    assert_from_civil(tz, civil(2026, 10, 25, 3, 0, 0), AF_TZ_UNIQUE, BERLIN_AUTUMN_2026 + 3600);
    assert_from_civil(tz, civil(2026, 7, 1, 12, 0, 0), AF_TZ_UNIQUE, 1782864000 + 10 * 3600);
    af_tz_free(tz);
}

static void test_new_york_2026(void **state) {
    (void)state;
    af_tz_t *tz = load_system("America/New_York");
    assert_change(tz, NY_SPRING_2026, -18000, -14400);
    assert_change(tz, NY_AUTUMN_2026, -14400, -18000);
    assert_offset(tz, 1767225600, -18000, 0);
    assert_offset(tz, 1782864000, -14400, 1);

    assert_from_civil(tz, civil(2026, 3, 8, 2, 30, 0), AF_TZ_GAP, NY_SPRING_2026);
    assert_from_civil(tz, civil(2026, 3, 8, 3, 0, 0), AF_TZ_UNIQUE, NY_SPRING_2026);
    assert_from_civil(tz, civil(2026, 3, 8, 1, 59, 59), AF_TZ_UNIQUE, NY_SPRING_2026 - 1);
    assert_from_civil(tz, civil(2026, 11, 1, 1, 30, 0), AF_TZ_OVERLAP, 1793511000); /* EDT */
    assert_from_civil(tz, civil(2026, 11, 1, 2, 0, 0), AF_TZ_UNIQUE, NY_AUTUMN_2026 + 3600);
    assert_from_civil(tz, civil(2026, 11, 1, 0, 59, 59), AF_TZ_UNIQUE, NY_AUTUMN_2026 - 3601);
    af_tz_free(tz);
}

static void test_tokyo(void **state) {
    (void)state;
    af_tz_t *tz = load_system("Asia/Tokyo");
    for (int64_t t = 1767225600; t < 1767225600 + 366 * 86400; t += 86400 * 7 + 3599) {
        assert_offset(tz, t, 32400, 0);
    }
    assert_offset(tz, 4102444800, 32400, 0);                                       /* 2100 */
    assert_from_civil(tz, civil(2026, 3, 29, 2, 30, 0), AF_TZ_UNIQUE, 1774719000); /* 17:30Z */
    af_civil_t c;
    af_tz_to_civil(tz, 1767225600, &c); /* 2026-01-01 00:00Z */
    assert_civil(&c, 2026, 1, 1, 9, 0, 0);
    af_tz_free(tz);
}

static void test_utc(void **state) {
    (void)state;
    static const char *names[] = {"UTC", "Etc/UTC"};
    for (size_t i = 0; i < 2; i++) {
        af_tz_t *tz = load_system(names[i]);
        assert_string_equal(af_tz_name(tz), names[i]);
        assert_offset(tz, 0, 0, 0);
        assert_offset(tz, BERLIN_SPRING_2026, 0, 0);
        assert_offset(tz, -4000000000LL, 0, 0);
        assert_from_civil(tz, civil(2026, 3, 29, 2, 30, 0), AF_TZ_UNIQUE, 1774751400);
        af_tz_free(tz);
    }
    /* and without any zoneinfo files: the temporary directory has no UTC file */
    for (size_t i = 0; i < 2; i++) {
        af_tz_t *tz = load_temp(names[i]);
        assert_offset(tz, BERLIN_AUTUMN_2026, 0, 0);
        af_tz_free(tz);
    }
    af_tz_free(NULL);
}

/* Local time from an instant and back, every 3 hours and some seconds through 2026, in zones
 * with and without daylight saving. */
static void test_civil_round_trip(void **state) {
    (void)state;
    static const char *names[] = {"Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        af_tz_t *tz = load_system(names[i]);
        for (int64_t t = 1767225600 - 86400; t < 1767225600 + 367 * 86400; t += 3 * 3600 + 7) {
            af_civil_t c, back_c;
            af_tz_to_civil(tz, t, &c);
            assert_int_equal(af_civil_to_unix(&c) - t, af_tz_offset(tz, t, NULL));
            int64_t back = 0;
            af_tz_kind_t kind = af_tz_from_civil(tz, &c, &back);
            assert_true(kind == AF_TZ_UNIQUE || kind == AF_TZ_OVERLAP);
            if (kind == AF_TZ_UNIQUE) {
                assert_int_equal(back, t);
            } else {
                assert_true(back == t || back == t - 3600);
            }
            af_tz_to_civil(tz, back, &back_c);
            assert_memory_equal(&c, &back_c, sizeof c);
        }
        af_tz_free(tz);
    }
    af_tz_t *tz = load_system("Europe/Berlin");
    af_civil_t c;
    af_tz_to_civil(tz, BERLIN_SPRING_2026 - 1, &c);
    assert_civil(&c, 2026, 3, 29, 1, 59, 59);
    af_tz_to_civil(tz, BERLIN_SPRING_2026, &c);
    assert_civil(&c, 2026, 3, 29, 3, 0, 0);
    af_tz_to_civil(tz, BERLIN_AUTUMN_2026 - 1, &c);
    assert_civil(&c, 2026, 10, 25, 2, 59, 59);
    af_tz_to_civil(tz, BERLIN_AUTUMN_2026, &c);
    assert_civil(&c, 2026, 10, 25, 2, 0, 0);
    af_tz_free(tz);
}

/* 2100 lies beyond the table of any zoneinfo file (zic writes transitions up to 2037): the
 * footer rule "CET-1CEST,M3.5.0,M10.5.0/3" decides. */
static void test_footer_2100(void **state) {
    (void)state;
    af_tz_t *tz = load_system("Europe/Berlin");
    assert_offset(tz, 4118083200, 7200, 1); /* 2100-07-01 */
    assert_offset(tz, 4102444800, 3600, 0); /* 2100-01-01 */
    /* the last Sundays, 28 March and 31 October 2100, at 01:00 UTC */
    assert_int_equal(af_civil_weekday(2100, 3, 28), 0);
    assert_int_equal(af_civil_weekday(2100, 10, 31), 0);
    assert_change(tz, 4109878800, 3600, 7200);
    assert_change(tz, 4128627600, 7200, 3600);
    assert_from_civil(tz, civil(2100, 3, 28, 2, 30, 0), AF_TZ_GAP, 4109878800);
    assert_from_civil(tz, civil(2100, 10, 31, 2, 30, 0), AF_TZ_OVERLAP, 4128627600 - 1800);
    af_tz_free(tz);

    tz = load_system("America/New_York"); /* EST5EDT,M3.2.0,M11.1.0 */
    assert_offset(tz, 4118083200, -14400, 1);
    assert_offset(tz, 4102444800, -18000, 0);
    af_tz_free(tz);
}

/* ---- synthetic files ----------------------------------------------------------------------- */

/* Version 2 with no transitions at all: the footer rules every instant, even long past ones. */
static void test_footer_only_file(void **state) {
    (void)state;
    write_footer_zone("Footer_Only", 3600, "CET-1CEST,M3.5.0,M10.5.0/3");
    af_tz_t *tz = load_temp("Footer_Only");
    assert_string_equal(af_tz_name(tz), "Footer_Only");
    assert_change(tz, BERLIN_SPRING_2026, 3600, 7200);
    assert_change(tz, BERLIN_AUTUMN_2026, 7200, 3600);
    assert_change(tz, 4109878800, 3600, 7200);
    assert_offset(tz, 15638400, 7200, 1);    /* 1970-07-01 */
    assert_offset(tz, -2193350400, 7200, 1); /* 1900-07-01 */
    assert_offset(tz, -2203891200, 3600, 0); /* 1900-03-01 */
    assert_from_civil(tz, civil(2026, 3, 29, 2, 30, 0), AF_TZ_GAP, BERLIN_SPRING_2026);
    assert_from_civil(tz, civil(2026, 10, 25, 2, 30, 0), AF_TZ_OVERLAP, 1792888200);
    af_tz_free(tz);
}

/* Version 1 (32-bit times, no footer): type 0 before the first transition, the last
 * transition's type after it. */
static void test_v1_file(void **state) {
    (void)state;
    static const int64_t trans[] = {1000000000, 1100000000};
    static const uint8_t types[] = {1, 2};
    static const int32_t utoff[] = {1234, 3600, 7200};
    static const uint8_t dst[] = {0, 0, 1};
    zone_spec_t z = {0, 2, trans, types, 3, utoff, dst, ""};
    bytes_t b;
    build_tzif(&b, &z);
    write_zone("Version_1", b.data, b.len);
    af_tz_t *tz = load_temp("Version_1");
    assert_offset(tz, -5000000000LL, 1234, 0);
    assert_offset(tz, 1000000000 - 1, 1234, 0);
    assert_offset(tz, 1000000000, 3600, 0);
    assert_offset(tz, 1100000000 - 1, 3600, 0);
    assert_offset(tz, 1100000000, 7200, 1);
    assert_offset(tz, 4102444800, 7200, 1);
    af_tz_free(tz);
}

/* Version 3 with a table then a footer: the table up to its last transition, the rule after. */
static void test_table_then_footer(void **state) {
    (void)state;
    static const int64_t trans[] = {-2717650800LL, 1000000000};
    static const uint8_t types[] = {1, 1};
    static const int32_t utoff[] = {-17762, -18000};
    static const uint8_t dst[] = {0, 0};
    zone_spec_t z = {'3', 2, trans, types, 2, utoff, dst, "EST5EDT,M3.2.0,M11.1.0"};
    bytes_t b;
    build_tzif(&b, &z);
    write_zone("Table_Footer", b.data, b.len);
    af_tz_t *tz = load_temp("Table_Footer");
    assert_offset(tz, -2717650800LL - 1, -17762, 0);
    assert_offset(tz, 15638400, -18000, 0); /* 1970-07-01: the table, no DST */
    assert_change(tz, NY_SPRING_2026, -18000, -14400);
    assert_change(tz, NY_AUTUMN_2026, -14400, -18000);
    assert_from_civil(tz, civil(2026, 11, 1, 1, 30, 0), AF_TZ_OVERLAP, 1793511000);
    af_tz_free(tz);
}

/* The POSIX rule forms: Jn, n, Mm.w.d, negative and >24h times, <...> names, explicit DST
 * offsets with minutes, the default rule, southern hemisphere and all-year DST. */
static void test_footer_rule_forms(void **state) {
    (void)state;
    write_footer_zone("Plus_Nine", 32400, "<+09>-9");
    af_tz_t *tz = load_temp("Plus_Nine");
    assert_offset(tz, 1782864000, 32400, 0);
    assert_offset(tz, 1767225600, 32400, 0);
    af_tz_free(tz);

    write_footer_zone("Minus_Three", -10800, "<-03>3");
    tz = load_temp("Minus_Three");
    assert_offset(tz, 1782864000, -10800, 0);
    af_tz_free(tz);

    /* Jn skips 29 February: J60 is 1 March even in 2024; times -1h (std) and 26h (DST) */
    write_footer_zone("Julian", -10800, "XST3XDT,J60/-1,J300/26");
    tz = load_temp("Julian");
    assert_change(tz, 1709258400, -10800, -7200); /* 2024-03-01 02:00Z */
    assert_change(tz, 1730088000, -7200, -10800); /* 2024-10-28 04:00Z */
    af_tz_free(tz);

    /* n counts 29 February: 59 is 29 February 2024 but 1 March 2023; time -2:30 */
    write_footer_zone("Zero_Based", -10800, "XST3XDT,59,299/-2:30");
    tz = load_temp("Zero_Based");
    assert_change(tz, 1709182800, -10800, -7200); /* 2024-02-29 05:00Z */
    assert_change(tz, 1677646800, -10800, -7200); /* 2023-03-01 05:00Z */
    assert_change(tz, 1729899000, -7200, -10800); /* 2024-10-25 23:30Z */
    af_tz_free(tz);

    /* Israel: the Friday before the last Sunday of March, written as Thursday 26:00 */
    write_footer_zone("Israel_Like", 7200, "IST-2IDT,M3.4.4/26,M10.5.0");
    tz = load_temp("Israel_Like");
    assert_change(tz, 1774569600, 7200, 10800); /* 2026-03-27 00:00Z */
    assert_change(tz, 1792882800, 10800, 7200); /* 2026-10-24 23:00Z */
    af_tz_free(tz);

    /* Chile: southern hemisphere, Saturday 24:00 */
    write_footer_zone("Chile_Like", -14400, "<-04>4<-03>,M9.1.6/24,M4.1.6/24");
    tz = load_temp("Chile_Like");
    assert_offset(tz, 1767225600, -10800, 1);      /* January: summer */
    assert_offset(tz, 1782864000, -14400, 0);      /* July: winter */
    assert_change(tz, 1775358000, -10800, -14400); /* 2026-04-05 03:00Z */
    assert_change(tz, 1788667200, -14400, -10800); /* 2026-09-06 04:00Z */
    /* the local midnight skipped in September and the hour repeated in April */
    assert_from_civil(tz, civil(2026, 9, 6, 0, 30, 0), AF_TZ_GAP, 1788667200);
    assert_from_civil(tz, civil(2026, 4, 4, 23, 30, 0), AF_TZ_OVERLAP, 1775358000 - 1800);
    af_tz_free(tz);

    /* Lord Howe: half-hour offsets and a DST offset given explicitly */
    write_footer_zone("Lord_Howe_Like", 37800, "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0");
    tz = load_temp("Lord_Howe_Like");
    assert_change(tz, 1775314800, 39600, 37800); /* 2026-04-04 15:00Z */
    assert_change(tz, 1791041400, 37800, 39600); /* 2026-10-03 15:30Z */
    assert_from_civil(tz, civil(2026, 10, 4, 2, 15, 0), AF_TZ_GAP, 1791041400);
    af_tz_free(tz);

    /* no dates: the US rule, as in tzcode */
    write_footer_zone("Default_Rule", -18000, "EST5EDT");
    tz = load_temp("Default_Rule");
    assert_change(tz, NY_SPRING_2026, -18000, -14400);
    assert_change(tz, NY_AUTUMN_2026, -14400, -18000);
    af_tz_free(tz);

    /* DST all year: the end (Dec 31 25:00 EDT) meets the next start (Jan 1 00:00 EST) */
    write_footer_zone("All_Year_DST", -18000, "EST5EDT,0/0,J365/25");
    tz = load_temp("All_Year_DST");
    for (int64_t t = 1767225600 - 86400; t < 1767225600 + 86400; t += 1800) {
        assert_offset(tz, t, -14400, 1);
    }
    assert_offset(tz, 1782864000, -14400, 1);
    af_tz_free(tz);
}

static void test_bad_footer(void **state) {
    (void)state;
    static const char *bad[] = {
        "CET-1CEST,M3.5.0",             /* no end date */
        "CET-1CEST,M13.5.0,M10.5.0",    /* month 13 */
        "CET-1CEST,M3.6.0,M10.5.0",     /* week 6 */
        "CET-1CEST,M3.5.7,M10.5.0",     /* weekday 7 */
        "CET-1CEST,J0,J300",            /* J counts from 1 */
        "CET-1CEST,M3.5.0,M10.5.0/168", /* more than 167 hours */
        "CET-1CEST,M3.5.0,M10.5.0x",    /* trailing text */
        "CE-1",                         /* two-letter name */
        "CET",                          /* no offset */
        "CET-25",                       /* offset beyond 24 hours */
        "<+09-9",                       /* unclosed <...> */
        "CET-1CEST2x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_footer_zone("Bad_Footer", 3600, bad[i]);
        expect_load_error("Bad_Footer", AF_EINVAL);
    }
}

/* Every proper prefix of a valid file is refused as corrupt, never read past its end. */
static void test_truncated_file(void **state) {
    (void)state;
    static const int64_t trans[] = {1000000000, 1100000000};
    static const uint8_t types[] = {1, 0};
    static const int32_t utoff[] = {3600, 7200};
    static const uint8_t dst[] = {0, 1};
    zone_spec_t z = {'2', 2, trans, types, 2, utoff, dst, "CET-1CEST,M3.5.0,M10.5.0/3"};
    bytes_t b;
    build_tzif(&b, &z);
    for (size_t len = 0; len < b.len; len++) {
        write_zone("Truncated", b.data, len);
        expect_load_error("Truncated", AF_EINVAL);
    }
    write_zone("Truncated", b.data, b.len); /* the whole file is fine */
    af_tz_free(load_temp("Truncated"));

    /* counts that claim more than the file holds */
    b.data[20 + 12] = 0x7f; /* timecnt of the version 1 header */
    write_zone("Huge_Counts", b.data, b.len);
    expect_load_error("Huge_Counts", AF_EINVAL);
}

static void test_corrupt_file(void **state) {
    (void)state;
    static const char text[] = "this is not a zone file, though it is long enough to be one\n";
    write_zone("Not_TZif", text, sizeof text - 1);
    expect_load_error("Not_TZif", AF_EINVAL);
    write_zone("Empty", "", 0);
    expect_load_error("Empty", AF_EINVAL);

    /* a transition naming a type that does not exist, and transitions out of order */
    static const int64_t trans[] = {1000000000, 1100000000};
    static const uint8_t bad_types[] = {1, 5};
    static const int32_t utoff[] = {3600, 7200};
    static const uint8_t dst[] = {0, 1};
    zone_spec_t z = {'2', 2, trans, bad_types, 2, utoff, dst, ""};
    bytes_t b;
    build_tzif(&b, &z);
    write_zone("Bad_Type", b.data, b.len);
    expect_load_error("Bad_Type", AF_EINVAL);

    static const int64_t unordered[] = {1100000000, 1000000000};
    static const uint8_t types[] = {1, 0};
    z = (zone_spec_t){'2', 2, unordered, types, 2, utoff, dst, ""};
    build_tzif(&b, &z);
    write_zone("Unordered", b.data, b.len);
    expect_load_error("Unordered", AF_EINVAL);

    /* an empty footer is allowed: the last type stays */
    z = (zone_spec_t){'2', 2, trans, types, 2, utoff, dst, ""};
    build_tzif(&b, &z);
    write_zone("No_Rule", b.data, b.len);
    af_tz_t *tz = load_temp("No_Rule");
    assert_offset(tz, 4102444800, 3600, 0);
    af_tz_free(tz);
}

static void test_bad_names(void **state) {
    (void)state;
    static const char *bad[] = {"../etc/passwd",  "/etc/x",        "",
                                "Euro pe",        "Europe/../UTC", "Europe/Berlin\n",
                                "Europe\\Berlin", "Zone.",         "A*"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        af_error_t err = {0};
        af_tz_t *tz = af_tz_load(bad[i], &err);
        if (tz != NULL) {
            af_tz_free(tz);
            fail_msg("\"%s\" was accepted", bad[i]);
        }
        assert_int_equal(err.code, AF_EINVAL);
    }
    char long_name[202];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    af_error_t err = {0};
    assert_null(af_tz_load(long_name, &err));
    assert_int_equal(err.code, AF_EINVAL);
    assert_null(af_tz_load(NULL, &err));
    assert_int_equal(err.code, AF_EINVAL);
    assert_null(af_tz_load("../x", NULL)); /* no error detail wanted */
}

static void test_not_found(void **state) {
    (void)state;
    use_system_zones();
    af_error_t err = {0};
    assert_null(af_tz_load("No/Such_Zone", &err));
    assert_int_equal(err.code, AF_ENOTFOUND);
    assert_non_null(strstr(err.msg, "No/Such_Zone"));
    /* a directory is not a zone */
    write_zone("Region", NULL, 0);
    expect_load_error("Region", AF_ENOTFOUND);
    expect_load_error("Region/Nothing", AF_ENOTFOUND);
}

/* ---- calendar ------------------------------------------------------------------------------ */

static void test_calendar(void **state) {
    (void)state;
    assert_int_equal(af_civil_weekday(2026, 11, 26), 4); /* Thursday */
    assert_int_equal(af_civil_weekday(1970, 1, 1), 4);
    assert_int_equal(af_civil_weekday(2000, 1, 1), 6);
    assert_int_equal(af_civil_weekday(1969, 12, 28), 0);
    assert_int_equal(af_civil_weekday(1600, 3, 1), 3);
    assert_int_equal(af_days_in_month(2024, 2), 29);
    assert_int_equal(af_days_in_month(2100, 2), 28);
    assert_int_equal(af_days_in_month(2000, 2), 29);
    assert_int_equal(af_days_in_month(2026, 2), 28);
    assert_int_equal(af_days_in_month(2026, 4), 30);
    assert_int_equal(af_days_in_month(2026, 12), 31);
    assert_int_equal(af_days_in_month(2026, 13), 0);
}

/* A zone is read once while held: a second load shares it; after the last release it is read
 * again. */
static void test_zone_shared(void **state) {
    (void)state;
    af_error_t err = {0};
    af_tz_t *a = load_system("Europe/Berlin"), *b = load_system("Europe/Berlin");
    af_tz_t *ny = load_system("America/New_York");
    assert_ptr_equal(a, b);
    assert_ptr_not_equal(a, ny);
    af_tz_free(a);
    assert_int_equal(af_tz_offset(b, 1774747800, NULL), 7200); /* still held by b */
    af_tz_free(b);
    af_tz_free(ny);
    af_tz_t *again = af_tz_load("Europe/Berlin", &err);
    assert_non_null(again);
    assert_int_equal(af_tz_offset(again, 1774747800, NULL), 7200);
    af_tz_free(again);
}

/* RFC 3339: zones and fractions read exactly; anything looser refused. */
static void test_time_parse(void **state) {
    (void)state;
    int64_t ms = -1;
    assert_int_equal(af_time_parse("2026-03-29T01:30:00Z", &ms), 0);
    assert_int_equal(ms, 1774747800000LL);
    assert_int_equal(af_time_parse("2026-03-29T03:30:00.25+02:00", &ms), 0);
    assert_int_equal(ms, 1774747800250LL);
    assert_int_equal(af_time_parse("2026-03-28T20:30:00.123456-05:00", &ms), 0);
    assert_int_equal(ms, 1774747800123LL);
    assert_int_equal(af_time_parse("1970-01-01t00:00:00z", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(af_time_parse("2028-02-29T00:00:00Z", &ms), 0); /* a leap day */
    static const char *const bad[] = {
        "2026-03-29T01:30:00",       /* no zone */
        "2026-03-29 01:30:00Z",      /* no T */
        "2026-3-29T01:30:00Z",       /* one-digit month */
        "2026-03-29T1:30:00Z",       /* one-digit hour */
        " 2026-03-29T01:30:00Z",     /* leading space */
        "+026-03-29T01:30:00Z",      /* a sign */
        "2026-13-01T00:00:00Z",      /* month 13 */
        "2027-02-29T00:00:00Z",      /* not a leap year */
        "2026-03-29T24:00:00Z",      /* hour 24 */
        "2026-03-29T01:60:00Z",      /* minute 60 */
        "2026-03-29T01:30:00.Z",     /* a dot without digits */
        "2026-03-29T01:30:00+2:00",  /* one-digit offset */
        "2026-03-29T01:30:00+24:00", /* offset out of range */
        "2026-03-29T01:30:00Zjunk",  /* trailing text */
        "",
        "yesterday",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (af_time_parse(bad[i], &ms) != AF_EINVAL) {
            fail_msg("accepted '%s'", bad[i]);
        }
    }
    assert_int_equal(af_time_parse(NULL, &ms), AF_EINVAL);
}

static void test_unix_civil(void **state) {
    (void)state;
    af_civil_t c = civil(1969, 12, 31, 23, 59, 59);
    assert_int_equal(af_civil_to_unix(&c), -1);
    af_unix_to_civil(-1, &c);
    assert_civil(&c, 1969, 12, 31, 23, 59, 59);
    af_unix_to_civil(0, &c);
    assert_civil(&c, 1970, 1, 1, 0, 0, 0);
    af_unix_to_civil(-31536000, &c);
    assert_civil(&c, 1969, 1, 1, 0, 0, 0);
    af_unix_to_civil(-2203891200LL, &c);
    assert_civil(&c, 1900, 3, 1, 0, 0, 0);
    af_unix_to_civil(-62167219200LL, &c);
    assert_civil(&c, 0, 1, 1, 0, 0, 0);
    af_unix_to_civil(-62167219201LL, &c);
    assert_civil(&c, -1, 12, 31, 23, 59, 59);
    af_unix_to_civil(951782400, &c);
    assert_civil(&c, 2000, 2, 29, 0, 0, 0);
    c = civil(2000, 2, 29, 0, 0, 0);
    assert_int_equal(af_civil_to_unix(&c), 951782400);
    c = civil(0, 1, 1, 0, 0, 0);
    assert_int_equal(af_civil_to_unix(&c), -62167219200LL);
    c = civil(2026, 13, 1, 0, 0, 0); /* month 13 carries into the next year */
    assert_int_equal(af_civil_to_unix(&c), 1798761600);
    /* every day from 1600 to 2400 round-trips */
    for (int64_t t = -11676096000LL; t < 13569465600LL; t += 86400 + 3661) {
        af_unix_to_civil(t, &c);
        assert_int_equal(af_civil_to_unix(&c), t);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_berlin_2026),
        cmocka_unit_test(test_new_york_2026),
        cmocka_unit_test(test_tokyo),
        cmocka_unit_test(test_utc),
        cmocka_unit_test(test_civil_round_trip),
        cmocka_unit_test(test_footer_2100),
        cmocka_unit_test(test_footer_only_file),
        cmocka_unit_test(test_v1_file),
        cmocka_unit_test(test_table_then_footer),
        cmocka_unit_test(test_footer_rule_forms),
        cmocka_unit_test(test_bad_footer),
        cmocka_unit_test(test_truncated_file),
        cmocka_unit_test(test_corrupt_file),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_calendar),
        cmocka_unit_test(test_unix_civil),
        cmocka_unit_test(test_time_parse),
        cmocka_unit_test(test_zone_shared),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
