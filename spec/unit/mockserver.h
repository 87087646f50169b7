/* mockserver.h -- starting spec/tools' af-mockserver from a C test (header-only: each test is
 * its own program). */
#ifndef AF_SPEC_MOCKSERVER_H
#define AF_SPEC_MOCKSERVER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Starts the server on a free port; returns its pid and sets *port, or -1. The binary is
 * $AF_BINARY_DIR/spec/tools/af-mockserver (ctest sets it), else next to this test's build dir. */
static pid_t spawn_server(int *port) {
    char path[4096];
    const char *bin = getenv("AF_BINARY_DIR");
    if (bin != NULL) {
        snprintf(path, sizeof path, "%s/spec/tools/af-mockserver", bin);
    } else { /* run by hand from the build tree: spec/unit/test_x -> spec/tools */
        char self[4000];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        self[n > 0 ? n : 0] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL) {
            *slash = '\0';
        }
        snprintf(path, sizeof path, "%s/../tools/af-mockserver", self);
    }
    int fds[2];
    if (pipe(fds) != 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execl(path, path, "--port", "0", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[64] = "";
    if (pid < 0 || f == NULL || fgets(line, sizeof line, f) == NULL ||
        sscanf(line, "port=%d", port) != 1) {
        fprintf(stderr, "cannot start %s\n", path);
        if (f != NULL) {
            fclose(f);
        }
        return -1;
    }
    fclose(f);
    return pid;
}

#endif
