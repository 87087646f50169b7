/* input.c -- the --input argument of `agentflow run` and `agentflow execute`. */
#include "cli/input.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int af_cli_parse_input(const char *arg, json_t **out, af_error_t *err) {
    char *text = NULL;
    size_t len;
    if (arg[0] == '@') {
        int rc = af_read_file(arg + 1, 64u << 20, &text, &len, err);
        if (rc != 0) {
            return rc;
        }
        arg = text;
    } else {
        len = strlen(arg);
    }
    *out = af_json_loads(arg, len, 128, err);
    free(text);
    if (*out == NULL) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", err->msg);
        return af_error_set(err, AF_EINVAL, "--input: %s", msg);
    }
    return 0;
}
