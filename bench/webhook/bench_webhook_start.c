/* bench_webhook_start.c -- how fast `agentflow serve` answers its first webhook, and how much
 * memory it holds idle: starts the binary on a free port with an existing data directory,
 * connects every 0.2 ms until the first POST /webhooks/PATH is answered, then reads VmRSS.
 *
 *   bench_webhook_start BIN DATA PATH     (prints "first_answer_ms N" and "idle_rss_mb N") */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/proc_status.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

/* One request on a new connection; returns the status code, or -1 when nobody listens yet. */
static int post(int port, const char *path) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /webhooks/%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: 8\r\nConnection: close\r\n\r\n{\"n\": 1}",
                     path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    char buf[256];
    ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (got < 12) {
        return -1;
    }
    buf[got] = '\0';
    return atoi(buf + 9);
}


int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s BIN DATA WEBHOOK_PATH\n", argv[0]);
        return 2;
    }
    int port = free_port();
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    double t0 = now_ms();
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        execl(argv[1], argv[1], "serve", "--listen", listen, "--data", argv[2], (char *)NULL);
        _exit(127);
    }
    int status = -1;
    while ((status = post(port, argv[3])) < 0 && now_ms() - t0 < 10000) {
        usleep(200);
    }
    double first = now_ms() - t0;
    sleep(2); /* idle: the answered execution has finished, nothing else comes */
    long kb = proc_rss_kb(pid);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    if (status != 202) {
        fprintf(stderr, "the webhook answered %d\n", status);
        return 1;
    }
    printf("first_answer_ms %.1f\nidle_rss_mb %.1f\n", first, (double)kb / 1024.0);
    return 0;
}
