/* jsonschema.h -- JSON Schema (a draft 2020-12 subset) for node config schemas, LLM tool arguments
 * and structured outputs: compile once, validate many times, fill in defaults.
 *
 * Supported keywords: type, enum, const, properties, required, additionalProperties, items,
 * prefixItems, minItems, maxItems, uniqueItems, minLength, maxLength (in code points), pattern,
 * minimum, maximum, exclusiveMinimum, exclusiveMaximum, multipleOf, minProperties, maxProperties,
 * allOf, anyOf, oneOf, not, $ref (local: "#", "#/$defs/name", "#/definitions/name", any "#/..."
 * JSON pointer), $defs, definitions, default; true and false as schemas. Every other keyword
 * (format, title, description, $schema, $id, examples, patternProperties, if/then/else, ...) is an
 * annotation and is ignored.
 *
 * "pattern" is compiled with POSIX regcomp(REG_EXTENDED | REG_NOSUB) after translating the common
 * ECMA-262 escapes \d \D \s \S \w \W and (?:...) groups; other ECMA-only syntax (lookaround,
 * \uXXXX, ...) is a compile error rather than a silent mismatch. Matching is byte-wise.
 *
 * Validation messages name the value by path: "$.user.age: must be >= 0 (got -3)",
 * "$.items[2].name: must be string (got integer)", "$[\"odd key\"]: ...". */
#ifndef AF_JSONSCHEMA_H
#define AF_JSONSCHEMA_H

#include <jansson.h>
#include "core/core.h"

/* Subschemas may nest this deep in a schema document, and validation descends at most this deep
 * into a value; beyond either it fails with an error (never by overflowing the stack). */
#define AF_SCHEMA_MAX_DEPTH 64

typedef struct af_schema_s af_schema_t;

/* Compiles `schema` (borrowed; the compiled schema keeps its own copy, so the caller may change or
 * free it afterwards). Unknown keywords are ignored, but a known keyword of the wrong type or
 * value, an invalid pattern, an unresolvable or non-local $ref, a $ref cycle that never descends
 * into the value, or subschemas nested deeper than AF_SCHEMA_MAX_DEPTH fail with AF_EINVAL and a
 * message that starts with the JSON pointer of the keyword ("#/properties/age/minimum: must be a
 * number"). Returns a new schema (free with af_schema_free), or NULL with err set (AF_EINVAL,
 * AF_ENOMEM). */
af_schema_t *af_schema_compile(const json_t *schema, af_error_t *err);

/* As af_schema_compile, from JSON text (NUL-terminated). Errors in the text itself are reported
 * as af_json_loads reports them (AF_ESYNTAX with line and column, AF_ELIMIT, AF_EUTF8). */
af_schema_t *af_schema_compile_text(const char *text, af_error_t *err);

/* Frees a compiled schema; NULL is allowed. */
void af_schema_free(af_schema_t *s);

/* Validates `value` (borrowed) against `s`. Returns 0 when it is valid, else AF_EINVAL with
 * err->msg holding the first `max_errors` problems (max_errors <= 0 means 1) as "path: message",
 * joined with "; ". A value nested deeper than AF_SCHEMA_MAX_DEPTH where the schema looks into it
 * is a problem too ("nested deeper than 64 levels"). AF_ENOMEM on out of memory. */
int af_schema_validate(const af_schema_t *s, const json_t *value, int max_errors, af_error_t *err);

/* Returns a new deep copy of `value` (borrowed) in which every object property that is missing
 * and whose subschema (or the schema its $ref names) has a "default" is set to a copy of that
 * default. It descends through properties, additionalProperties, prefixItems, items, $ref and
 * allOf, into the first anyOf branch the value matches and into the one oneOf branch it matches,
 * and into defaults it has just filled in. It never validates otherwise: the result may still be
 * invalid. With value NULL, returns a copy of the root schema's default (filled in the same way),
 * or NULL if it has none. Also NULL on out of memory, or when value is nested deeper than 512. */
json_t *af_schema_apply_defaults(const af_schema_t *s, const json_t *value);

/* The schema as compiled (borrowed; lives as long as `s`), e.g. to send to an LLM. */
const json_t *af_schema_json(const af_schema_t *s);

#endif
