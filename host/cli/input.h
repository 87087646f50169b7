/* input.h -- what the CLI commands share: the --input argument (JSON text, or @FILE). */
#ifndef AF_CLI_INPUT_H
#define AF_CLI_INPUT_H

#include <jansson.h>
#include "core/core.h"

/* Parses --input: JSON text, or "@FILE" for a file of JSON (at most 64 MiB, nested at most 128
 * levels). Returns 0 with *out (new), or AF_EINVAL/AF_EIO with err ("--input: ..."). */
int af_cli_parse_input(const char *arg, json_t **out, af_error_t *err);

#endif
