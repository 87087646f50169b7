/* mockserver.h -- starting spec/tools' af-mockserver from a C test (header-only: each test is
 * its own program). */
#ifndef AF_SPEC_MOCKSERVER_H
#define AF_SPEC_MOCKSERVER_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>

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

/* For a test group: raises the descriptor limit (tests open hundreds of connections), ignores
 * SIGPIPE, starts the server and writes its base URL ("http://127.0.0.1:PORT") into url.
 * Returns its pid, or -1. */
static pid_t mockserver_start(char *url, size_t size) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    int port = 0;
    pid_t pid = spawn_server(&port);
    if (pid > 0) {
        snprintf(url, size, "http://127.0.0.1:%d", port);
    }
    return pid;
}

/* Stops the server with SIGTERM: 0 when it exited cleanly within 5 s (leaks under LSan or a
 * crash make its status non-zero), else -1 (killed). */
static int mockserver_stop(pid_t pid) {
    if (pid <= 0) {
        return 0;
    }
    kill(pid, SIGTERM);
    int st = -1;
    for (int i = 0; i < 500 && waitpid(pid, &st, WNOHANG) != pid; i++) {
        usleep(10000);
        st = -1;
    }
    if (st == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        return -1;
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "af-mockserver exited with status %d\n", st);
        return -1;
    }
    return 0;
}

#endif
