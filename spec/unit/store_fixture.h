/* store_fixture.h -- what the store and queue tests share: a clock they move by hand, a store in
 * a temporary directory, and removing that directory (header-only: each test is its own
 * program). Include after cmocka.h. */
#ifndef AF_SPEC_STORE_FIXTURE_H
#define AF_SPEC_STORE_FIXTURE_H

#include <dirent.h>
#include <stdio.h>
#include <unistd.h>

#include "store/store.h"

static int64_t fake_now = 1700000000000;

static int64_t fake_clock(void *ud) {
    (void)ud;
    return fake_now;
}

/* Opens (creating) the store in dir with the fake clock (or the real one when fake is 0); a
 * failure fails the test. */
static af_store_t *fixture_open(const char *dir, af_store_durability_t d, int fake) {
    af_store_options_t o = {sizeof o, d, 10000, fake ? fake_clock : NULL, NULL, 0};
    af_store_t *s = NULL;
    af_error_t err = {0};
    if (af_store_open(dir, &o, &s, &err) != 0) {
        fail_msg("open: %s", err.msg);
    }
    return s;
}

/* Removes a test's directory and the files in it. */
static void fixture_rmdir(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            char p[512];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    if (d) {
        closedir(d);
    }
    rmdir(dir);
}

#endif
