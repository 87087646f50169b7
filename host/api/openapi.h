/* openapi.h -- the OpenAPI 3.1 description of the REST API (docs/openapi.json), carried in the
 * binary so `GET /api/openapi.json` needs no file at run time. */
#ifndef AF_OPENAPI_H
#define AF_OPENAPI_H

#include <stddef.h>

/* The text of docs/openapi.json as built into the binary: static, NUL-terminated, borrowed (never
 * freed). *len (may be NULL) receives its length in bytes, without the NUL. */
const char *af_openapi_json(size_t *len);

#endif
