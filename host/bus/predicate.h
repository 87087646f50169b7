/* predicate.h -- field predicates over an event's JSON data (a subscription's `where`), compiled
 * once from a JSON spec and evaluated in C: no code, no allocation, bounded work per event.
 *
 * Grammar. The spec is a JSON object; all its keys must hold (AND):
 *
 *   { "status": "paid",                                  equality with a JSON value
 *     "customer.tier": {"in": ["gold", "platinum"]},     an object of operators (all must hold)
 *     "amount": {"gte": 100, "lt": 1000},
 *     "items.0.sku": {"prefix": "SKU-"},
 *     "$or": [{"vip": true}, {"amount": {"gt": 5000}}],  any of 1..16 specs
 *     "$not": {"country": {"in": ["XX", "YY"]}} }        the spec does not hold
 *
 * A key is a field path: object keys separated by dots; a segment of only digits indexes an
 * array ("items.0.sku"; on an object it is an ordinary key). A path may not be empty, hold an
 * empty segment or have more than 16 segments; a key starting with '$' must be $or or $not.
 *
 * A value that is not an object means `eq` with that value. Equality is JSON equality, except
 * that numbers compare by value (1 == 1.0), also inside arrays and objects. A field that is
 * missing equals nothing (not even null). Operators:
 *   eq, ne        any JSON value; `ne` holds when the field is missing
 *   gt gte lt lte a number (the field must be a number) or a string (the field must be a
 *                 string; bytewise order); any other field type: false
 *   in, nin       an array of JSON values: the field equals one of them / none of them
 *                 (`nin` holds when the field is missing)
 *   exists        true or false: whether the field is present (a null value is present)
 *   prefix,suffix a string: the field is a string that starts / ends with it
 *   contains      a string field holds the string value as a substring; an array field has an
 *                 element equal to the value; any other field: false
 * There are no regular expressions. Limits: specs nest ($or, $not) at most 8 deep, and a spec
 * holds at most 64 clauses overall (each operator test, $or and $not counts one). {} and a NULL
 * spec always hold. Compile errors name the place: "where.amount: unknown operator 'gtt'",
 * "where.$or[1].status: ...". */
#ifndef AF_BUS_PREDICATE_H
#define AF_BUS_PREDICATE_H

#include <jansson.h>

#include "core/core.h"

#define AF_PREDICATE_MAX_DEPTH   8  /* nesting of specs through $or / $not */
#define AF_PREDICATE_MAX_CLAUSES 64 /* operator tests, $or and $not, overall */
#define AF_PREDICATE_MAX_OR      16 /* specs in one $or */
#define AF_PREDICATE_MAX_SEGS    16 /* segments of a field path */

typedef struct af_predicate_s af_predicate_t;

/* Compiles spec (borrowed; a JSON object, or NULL) into *out (new; free with
 * af_predicate_free). The predicate copies what it needs and keeps no reference to spec. NULL or
 * {} compile to a predicate that always holds. Returns 0, AF_EINVAL with err->msg naming the
 * offending path and operator, or AF_ENOMEM. */
int af_predicate_compile(const json_t *spec, af_predicate_t **out, af_error_t *err);

/* 1 when data (borrowed, any JSON value or NULL) satisfies p, else 0. p NULL holds always. */
int af_predicate_eval(const af_predicate_t *p, const json_t *data);

/* Frees p (owned by the caller; NULL is fine). */
void af_predicate_free(af_predicate_t *p);

#endif
