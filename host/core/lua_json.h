/* lua_json.h -- lossless conversion between Lua values and jansson values.
 * Rules (also in docs/dsl.md, "Values"):
 *   JSON null    <-> af.null (a light userdata NULL)
 *   JSON array   <-> a table whose metatable is the array marker (AF_LUA_ARRAY_MT); an unmarked
 *                    table with keys 1..n (n >= 1) and nothing else is also an array
 *   JSON object  <-> a table with the object marker (AF_LUA_OBJECT_MT) or any other table with only
 *                    string keys; an unmarked empty table is an object
 *   integers     <-> Lua numbers with an integral value in [-2^53, 2^53]; larger JSON integers
 *                    become a boxed big integer (metatable AF_LUA_BIGINT_MT, field `digits`) and
 *                    print back exactly
 *   reals        <-> Lua numbers; NaN and infinities are refused
 *   strings      <-> Lua strings; invalid UTF-8 is refused with the path of the value
 * Tables nested deeper than max_depth, tables with mixed or non-string keys, sparse arrays,
 * functions, threads and other userdata are refused with the path ("$.steps.a[3].x"). */
#ifndef AF_LUA_JSON_H
#define AF_LUA_JSON_H

#include <lua.h>
#include <jansson.h>
#include "core/core.h"

#define AF_LUA_ARRAY_MT   "agentflow.array"
#define AF_LUA_OBJECT_MT  "agentflow.object"
#define AF_LUA_BIGINT_MT  "agentflow.bigint"
#define AF_JSON_MAX_DEPTH 128

/* Creates the marker metatables in the registry (idempotent). Call once per lua_State. */
void af_lua_json_init(lua_State *L);

/* Pushes the Lua value for `value` (borrowed). Arrays and objects get their marker metatable so
 * they convert back the same. Returns 0, or AF_ELIMIT (too deep) / AF_ENOMEM with nothing pushed.
 */
int af_lua_push_json(lua_State *L, const json_t *value, int max_depth);

/* Converts the Lua value at `idx` to a new JSON reference in *out. On failure returns AF_EINVAL,
 * AF_EUTF8 or AF_ELIMIT with err->msg naming the path; *out is NULL. */
int af_lua_to_json(lua_State *L, int idx, int max_depth, json_t **out, af_error_t *err);

#endif
