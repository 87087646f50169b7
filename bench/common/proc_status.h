/* proc_status.h -- what the benchmarks read from /proc/PID/status (header-only: each benchmark
 * is its own program). */
#ifndef AF_BENCH_PROC_STATUS_H
#define AF_BENCH_PROC_STATUS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* The resident set of process pid (0: this process) in KiB, or -1 when it cannot be read. */
static long proc_rss_kb(pid_t pid) {
    char path[64], line[256];
    if (pid == 0) {
        snprintf(path, sizeof path, "/proc/self/status");
    } else {
        snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    }
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = atol(line + 6);
        }
    }
    if (f) {
        fclose(f);
    }
    return kb;
}

#endif
