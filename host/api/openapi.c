/* openapi.c -- docs/openapi.json embedded at build time (cmake/embed_file.cmake writes the bytes
 * into af_openapi_json.inc in the build tree). */
#include "api/openapi.h"

static const unsigned char text[] = {
#include "af_openapi_json.inc"
};

const char *af_openapi_json(size_t *len) {
    if (len) {
        *len = sizeof text - 1;
    }
    return (const char *)text;
}
