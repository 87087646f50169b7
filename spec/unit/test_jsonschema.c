/* test_jsonschema.c -- the JSON Schema validator (core/jsonschema.c): every keyword passing and
 * failing with its exact message and path, $ref recursion, bad schemas, defaults, deep inputs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "core/jsonschema.h"

/* JSON text with ' for " (none of the texts here needs a real apostrophe). Returns a static
 * buffer, valid until the next call. */
static const char *J(const char *text) {
    static char buf[8192];
    size_t n = strlen(text);
    assert_true(n < sizeof buf);
    for (size_t i = 0; i <= n; i++) {
        buf[i] = text[i] == '\'' ? '"' : text[i];
    }
    return buf;
}

static json_t *load(const char *text) {
    af_error_t err = {0};
    const char *t = J(text);
    json_t *v = af_json_loads(t, strlen(t), 128, &err);
    if (v == NULL) {
        fail_msg("loading %s: %s", text, err.msg);
    }
    return v;
}

static af_schema_t *compile(const char *text) {
    af_error_t err = {0};
    af_schema_t *s = af_schema_compile_text(J(text), &err);
    if (s == NULL) {
        fail_msg("compiling %s: %s", text, err.msg);
    }
    return s;
}

/* Validates value text against schema text with max_errors; want NULL means valid. */
static void check_max(const char *schema, const char *value, int max_errors, const char *want) {
    af_schema_t *s = compile(schema);
    json_t *v = load(value);
    af_error_t err = {0};
    int rc = af_schema_validate(s, v, max_errors, &err);
    if (want == NULL && rc != 0) {
        fail_msg("%s against %s: unexpected \"%s\"", value, schema, err.msg);
    }
    if (want != NULL) {
        if (rc != AF_EINVAL || err.code != AF_EINVAL) {
            fail_msg("%s against %s: expected \"%s\", got rc %d", value, schema, want, rc);
        }
        if (strcmp(err.msg, want) != 0) {
            fail_msg("%s against %s:\n  want \"%s\"\n  got  \"%s\"", value, schema, want, err.msg);
        }
    }
    /* without an error struct the verdict is the same */
    assert_int_equal(af_schema_validate(s, v, max_errors, NULL), want ? AF_EINVAL : 0);
    json_decref(v);
    af_schema_free(s);
}

static void ok(const char *schema, const char *value) {
    check_max(schema, value, 1, NULL);
}

static void bad(const char *schema, const char *value, const char *want) {
    check_max(schema, value, 1, want);
}

static void bad_schema(const char *schema, const char *want) {
    af_error_t err = {0};
    af_schema_t *s = af_schema_compile_text(J(schema), &err);
    if (s != NULL) {
        af_schema_free(s);
        fail_msg("schema %s compiled, expected \"%s\"", schema, want);
    }
    assert_int_equal(err.code, AF_EINVAL);
    if (strcmp(err.msg, want) != 0) {
        fail_msg("schema %s:\n  want \"%s\"\n  got  \"%s\"", schema, want, err.msg);
    }
}

/* ---- keywords ---- */

static void test_type(void **state) {
    (void)state;
    ok("{'type':'integer'}", "5");
    ok("{'type':'integer'}", "5.0");
    ok("{'type':'integer'}", "-9223372036854775808");
    bad("{'type':'integer'}", "5.5", "$: must be integer (got number)");
    bad("{'type':'integer'}", "'5'", "$: must be integer (got string)");
    ok("{'type':'number'}", "5");
    ok("{'type':'number'}", "0.25");
    bad("{'type':'number'}", "null", "$: must be number (got null)");
    ok("{'type':'string'}", "''");
    bad("{'type':'string'}", "true", "$: must be string (got boolean)");
    ok("{'type':'boolean'}", "false");
    bad("{'type':'boolean'}", "0", "$: must be boolean (got integer)");
    ok("{'type':'null'}", "null");
    bad("{'type':'null'}", "{}", "$: must be null (got object)");
    ok("{'type':'object'}", "{}");
    bad("{'type':'object'}", "[]", "$: must be object (got array)");
    ok("{'type':'array'}", "[]");
    bad("{'type':'array'}", "{}", "$: must be array (got object)");
    ok("{'type':['string','null']}", "null");
    bad("{'type':['string','null']}", "1", "$: must be string or null (got integer)");
    bad("{'type':['string','number','null']}", "[1]",
        "$: must be string, number or null (got array)");
    /* a wrong type hides the keywords of the other types */
    check_max("{'type':'integer','minimum':3,'maxLength':0}", "'abc'", 5,
              "$: must be integer (got string)");
    /* keywords of another type do not apply */
    ok("{'minLength':9,'minItems':3,'required':['a']}", "-5.5");
    ok("{'minimum':0,'minItems':3,'required':['a']}", "'x'");
    ok("{'minimum':0,'minLength':9,'required':['a']}", "[]");
    ok("{'minimum':0,'minLength':9,'minItems':3}", "{}");
    ok("{'minimum':0,'minLength':9,'minItems':3,'required':['a']}", "null");
}

static void test_enum_const(void **state) {
    (void)state;
    ok("{'enum':['a','b',1]}", "'b'");
    ok("{'enum':['a','b',1]}", "1.0"); /* numbers compare by value */
    bad("{'enum':['a','b',1]}", "'c'", "$: must be one of [\"a\",\"b\",1] (got \"c\")");
    bad("{'enum':['a','b',1]}", "true", "$: must be one of [\"a\",\"b\",1] (got true)");
    ok("{'enum':[null,{'a':[1,2]}]}", "{'a':[1,2.0]}");
    bad("{'enum':[]}", "1", "$: must be one of [] (got 1)");
    ok("{'const':{'a':[1,2],'b':null}}", "{'b':null,'a':[1,2]}"); /* key order does not matter */
    bad("{'const':{'a':[1,2]}}", "{'a':[2,1]}", "$: must equal {\"a\":[1,2]} (got {\"a\":[2,1]})");
    bad("{'const':{'a':1}}", "{'a':1,'b':2}", "$: must equal {\"a\":1} (got {\"a\":1,\"b\":2})");
    ok("{'const':null}", "null");
    bad("{'const':null}", "0", "$: must equal null (got 0)");
    bad("{'const':false}", "0", "$: must equal false (got 0)");
    bad("{'const':'x'}", "'x\\u0000'", "$: must equal \"x\" (got \"x\\u0000\")");
    /* long values are cut in messages to 80 bytes, never inside a character */
    char value[256] = "'", want[256] = "$: must equal 1 (got \"";
    for (int i = 0; i < 100; i++) {
        strcat(value, "a");
        strcat(want, i < 79 ? "a" : "");
    }
    strcat(value, "'");
    strcat(want, "...)");
    bad("{'const':1}", value, want);
    strcpy(value, "'a");
    for (int i = 0; i < 50; i++) {
        strcat(value, "\xc3\xa9");
    }
    strcat(value, "'");
    strcpy(want, "$: must equal 1 (got \"a");
    for (int i = 0; i < 39; i++) {
        strcat(want, "\xc3\xa9");
    }
    strcat(want, "...)"); /* 80 bytes would split the 40th character */
    bad("{'const':1}", value, want);
}

static void test_numbers(void **state) {
    (void)state;
    const char *age = "{'properties':{'user':{'properties':{'age':{'minimum':0}}}}}";
    ok(age, "{'user':{'age':0}}");
    bad(age, "{'user':{'age':-3}}", "$.user.age: must be >= 0 (got -3)");
    bad("{'minimum':0.5}", "0", "$: must be >= 0.5 (got 0)");
    ok("{'maximum':10}", "10");
    ok("{'maximum':10}", "9.999");
    bad("{'maximum':10}", "11", "$: must be <= 10 (got 11)");
    bad("{'maximum':10}", "10.5", "$: must be <= 10 (got 10.5)");
    ok("{'exclusiveMinimum':0}", "0.001");
    bad("{'exclusiveMinimum':0}", "0", "$: must be > 0 (got 0)");
    bad("{'exclusiveMinimum':0}", "-0.0", "$: must be > 0 (got -0.0)");
    ok("{'exclusiveMaximum':1.5}", "1");
    bad("{'exclusiveMaximum':1.5}", "1.5", "$: must be < 1.5 (got 1.5)");
    /* integers beyond 2^53 compare exactly */
    ok("{'maximum':9007199254740993}", "9007199254740993");
    bad("{'maximum':9007199254740992}", "9007199254740993",
        "$: must be <= 9007199254740992 (got 9007199254740993)");
    bad("{'maximum':9007199254740992.0}", "9007199254740993",
        "$: must be <= 9007199254740992.0 (got 9007199254740993)");
    ok("{'multipleOf':3}", "9");
    ok("{'multipleOf':3}", "-9");
    ok("{'multipleOf':3}", "0");
    bad("{'multipleOf':3}", "10", "$: must be a multiple of 3 (got 10)");
    ok("{'multipleOf':0.1}", "0.3");
    ok("{'multipleOf':0.01}", "19.99");
    bad("{'multipleOf':0.1}", "0.35", "$: must be a multiple of 0.1 (got 0.35)");
    ok("{'multipleOf':0.5}", "2");
    bad("{'multipleOf':0.5}", "2.25", "$: must be a multiple of 0.5 (got 2.25)");
    bad("{'multipleOf':1}", "1e-12", "$: must be a multiple of 1 (got 1e-12)");
    ok("{'multipleOf':2.0}", "-9223372036854775808");
    /* all problems of one number */
    check_max("{'minimum':5,'multipleOf':2}", "3", 5,
              "$: must be >= 5 (got 3); $: must be a multiple of 2 (got 3)");
}

static void test_strings(void **state) {
    (void)state;
    const char *len = "{'minLength':2,'maxLength':3}";
    ok(len, "'ab'");
    ok(len, "'h\xc3\xa9\xc3\xa9'"); /* 3 code points, 5 bytes */
    bad(len, "'\xc3\xa9'", "$: must be at least 2 characters long (got 1)");
    bad(len, "'abcd'", "$: must be at most 3 characters long (got 4)");
    bad(len, "'\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80'",
        "$: must be at most 3 characters long (got 4)");
    bad("{'minLength':1}", "''", "$: must be at least 1 character long (got 0)");
    bad("{'maxLength':1}", "'ab'", "$: must be at most 1 character long (got 2)");
    ok("{'minLength':2.0}", "'ab'");

    const char *date = "{'pattern':'^\\\\d{4}-\\\\d{2}-\\\\d{2}$'}";
    ok(date, "'2024-01-31'");
    bad(date, "'2024-1-31'", "$: must match pattern \"^\\d{4}-\\d{2}-\\d{2}$\"");
    bad(date, "'dddd-dd-dd'", "$: must match pattern \"^\\d{4}-\\d{2}-\\d{2}$\"");
    ok("{'pattern':'b'}", "'abc'"); /* not anchored */
    bad("{'pattern':'^[a-z]+$'}", "'abc\\u0000x'", "$: must match pattern \"^[a-z]+$\"");
    const char *email = "{'pattern':'^[\\\\w.+-]+@[\\\\w-]+(?:\\\\.[\\\\w-]+)+$'}";
    ok(email, "'first.last+tag@mail.example.org'");
    bad(email, "'first last@example.org'",
        "$: must match pattern \"^[\\w.+-]+@[\\w-]+(?:\\.[\\w-]+)+$\"");
    bad(email, "'me@localhost'", "$: must match pattern \"^[\\w.+-]+@[\\w-]+(?:\\.[\\w-]+)+$\"");
    ok("{'pattern':'^\\\\S+\\\\s\\\\S+$'}", "'a\\tb'");
    bad("{'pattern':'^\\\\D*$'}", "'ab1'", "$: must match pattern \"^\\D*$\"");
    ok("{'pattern':'^[\\\\]\\\\-^]+$'}", "']-^'");
    bad("{'pattern':'^[\\\\]\\\\-^]+$'}", "'a'", "$: must match pattern \"^[\\]\\-^]+$\"");
    ok("{'pattern':'^a\\\\.b\\\\\\\\c$'}", "'a.b\\\\c'");
    bad("{'pattern':'^a\\\\.b$'}", "'axb'", "$: must match pattern \"^a\\.b$\"");
    ok("{'format':'email'}", "'not an email'"); /* format is an annotation */
}

static void test_arrays(void **state) {
    (void)state;
    ok("{'minItems':2,'maxItems':3}", "[1,2]");
    bad("{'minItems':2}", "[1]", "$: must have at least 2 items (got 1)");
    bad("{'maxItems':1}", "[1,2]", "$: must have at most 1 item (got 2)");
    bad("{'minItems':1}", "[]", "$: must have at least 1 item (got 0)");

    ok("{'uniqueItems':true}", "[1,'1',true,null,[1],{'a':1},[],{}]");
    ok("{'uniqueItems':false}", "[1,1]");
    bad("{'uniqueItems':true}", "[1,2,1.0]",
        "$: must not contain duplicates (items 0 and 2 are equal)");
    bad("{'uniqueItems':true}", "[{'a':1,'b':[2]},{'b':[2.0],'a':1}]",
        "$: must not contain duplicates (items 0 and 1 are equal)");
    bad("{'uniqueItems':true}", "[1,2,3,2,3]",
        "$: must not contain duplicates (items 1 and 3 are equal)");

    const char *tuple = "{'prefixItems':[{'type':'string'},{'type':'integer'}],"
                        "'items':{'type':'boolean'}}";
    ok(tuple, "['a',1,true,false]");
    ok(tuple, "['a']");
    check_max(tuple, "['a','b',true,3]", 5,
              "$[1]: must be integer (got string); $[3]: must be boolean (got integer)");
    ok("{'prefixItems':[{'type':'string'}]}", "['a',1,null]");
    bad("{'prefixItems':[{}],'items':false}", "[1,2]", "$[1]: is not allowed");
    bad("{'items':{'type':'integer'}}", "[1,2,'x']", "$[2]: must be integer (got string)");

    const char *nested = "{'properties':{'items':{'type':'array','items':{'type':'object',"
                         "'properties':{'name':{'type':'string'}}}}}}";
    ok(nested, "{'items':[{'name':'a'},{}]}");
    bad(nested, "{'items':[{'name':'a'},{'name':'b'},{'name':7}]}",
        "$.items[2].name: must be string (got integer)");
    bad(nested, "{'items':[{'name':'a'},5]}", "$.items[1]: must be object (got integer)");
}

/* uniqueItems on long arrays hashes; the first duplicate reported is the same as pairwise. */
static void test_unique_items_long(void **state) {
    (void)state;
    af_schema_t *s = compile("{'uniqueItems':true}");
    json_t *arr = json_array();
    for (int i = 0; i < 20000; i++) {
        json_array_append_new(arr, i % 3 ? json_integer(i) : json_real(i));
    }
    assert_int_equal(af_schema_validate(s, arr, 1, NULL), 0);
    json_array_append_new(arr, json_real(-0.0)); /* equals item 0 */
    json_array_set_new(arr, 15000, json_pack("{s:i}", "k", 1));
    json_array_set_new(arr, 17000, json_pack("{s:f}", "k", 1.0)); /* equals item 15000 */
    af_error_t err = {0};
    assert_int_equal(af_schema_validate(s, arr, 1, &err), AF_EINVAL);
    assert_string_equal(err.msg,
                        "$: must not contain duplicates (items 15000 and 17000 are equal)");
    json_array_set_new(arr, 17000, json_string("k"));
    assert_int_equal(af_schema_validate(s, arr, 1, &err), AF_EINVAL);
    assert_string_equal(err.msg, "$: must not contain duplicates (items 0 and 20000 are equal)");
    json_decref(arr);
    af_schema_free(s);
}

static void test_objects(void **state) {
    (void)state;
    ok("{'required':['name','age']}", "{'name':'x','age':null}");
    bad("{'required':['name','age']}", "{'name':'x'}", "$: missing required property \"age\"");
    check_max("{'required':['name','age']}", "{}", 5,
              "$: missing required property \"name\"; $: missing required property \"age\"");

    const char *closed = "{'properties':{'a':{}},'additionalProperties':false}";
    ok(closed, "{'a':1}");
    bad(closed, "{'a':1,'b':2}", "$: unexpected property \"b\"");
    bad("{'additionalProperties':false}", "{'a\\\"b':1}", "$: unexpected property \"a\\\"b\"");

    const char *typed = "{'properties':{'id':{'type':'string'}},"
                        "'additionalProperties':{'type':'integer'}}";
    ok(typed, "{'id':'x','n':1,'m':2}");
    bad(typed, "{'id':'x','odd key':'s'}", "$[\"odd key\"]: must be integer (got string)");
    bad(typed, "{'id':'x','user-name':[]}", "$[\"user-name\"]: must be integer (got array)");
    bad(typed, "{'id':'x','_a1':true}", "$._a1: must be integer (got boolean)");
    bad(typed, "{'id':'x','1a':true}", "$[\"1a\"]: must be integer (got boolean)");
    bad(typed, "{'id':'x','\\n\\\"':true}", "$[\"\\x0a\\\"\"]: must be integer (got boolean)");
    bad(typed, "{'id':'x','':true}", "$[\"\"]: must be integer (got boolean)");
    bad(typed, "{'id':5}", "$.id: must be string (got integer)");

    ok("{'minProperties':1,'maxProperties':2}", "{'a':1}");
    bad("{'minProperties':1}", "{}", "$: must have at least 1 property (got 0)");
    bad("{'maxProperties':2}", "{'a':1,'b':2,'c':3}", "$: must have at most 2 properties (got 3)");
    bad("{'minProperties':2}", "{'a':1}", "$: must have at least 2 properties (got 1)");
    bad("{'properties':{'a':{'properties':{'b':{'required':['c']}}}}}", "{'a':{'b':{}}}",
        "$.a.b: missing required property \"c\"");
}

static void test_boolean_schemas(void **state) {
    (void)state;
    ok("true", "{'anything':[1,2]}");
    bad("false", "null", "$: is not allowed");
    ok("{'properties':{'x':false}}", "{'y':1}");
    bad("{'properties':{'x':false}}", "{'x':1}", "$.x: is not allowed");
    bad("{'not':true}", "1", "$: must not match the schema in not");
    ok("{'not':false}", "1");
}

static void test_combinators(void **state) {
    (void)state;
    const char *all = "{'allOf':[{'type':'integer'},{'minimum':3}]}";
    ok(all, "3");
    bad(all, "2", "$: must be >= 3 (got 2)");
    check_max(all, "'s'", 5, "$: must be integer (got string)");

    const char *any = "{'anyOf':[{'type':'string'},{'type':'null'}]}";
    ok(any, "'x'");
    ok(any, "null");
    bad(any, "5",
        "$: must match at least one schema in anyOf (#0: must be string (got integer); #1: must be "
        "null (got integer))");
    bad("{'properties':{'v':{'anyOf':[{'properties':{'a':{'type':'string'}}},{'required':['b']}]}}"
        "}",
        "{'v':{'a':1}}",
        "$.v: must match at least one schema in anyOf (#0: $.v.a: must be string (got integer); "
        "#1: missing required property \"b\")");

    const char *one = "{'oneOf':[{'type':'integer'},{'minimum':0}]}";
    ok(one, "-1");
    ok(one, "1.5");
    bad(one, "5", "$: must match exactly one schema in oneOf (#0 and #1 both match)");
    bad(one, "-1.5",
        "$: must match exactly one schema in oneOf (#0: must be integer (got number); #1: must be "
        ">= 0 (got -1.5))");

    ok("{'not':{'type':'string'}}", "1");
    bad("{'not':{'type':'string'}}", "'x'", "$: must not match the schema in not");

    /* anyOf inside anyOf keeps each reason */
    bad("{'anyOf':[{'anyOf':[{'type':'string'},{'type':'null'}]},{'type':'boolean'}]}", "1",
        "$: must match at least one schema in anyOf (#0: must match at least one schema in anyOf "
        "(#0: must be string (got integer); #1: must be null (got integer)); #1: must be boolean "
        "(got integer))");
}

static void test_multiple_errors(void **state) {
    (void)state;
    const char *schema = "{'type':'object','required':['a','b'],"
                         "'properties':{'c':{'type':'string'},'d':{'maximum':1}}}";
    const char *value = "{'c':1,'d':5}";
    check_max(schema, value, 10,
              "$: missing required property \"a\"; $: missing required property \"b\"; "
              "$.c: must be string (got integer); $.d: must be <= 1 (got 5)");
    check_max(schema, value, 3,
              "$: missing required property \"a\"; $: missing required property \"b\"; "
              "$.c: must be string (got integer)");
    check_max(schema, value, 1, "$: missing required property \"a\"");
    check_max(schema, value, 0, "$: missing required property \"a\"");
    check_max(schema, value, -5, "$: missing required property \"a\"");
    check_max(schema, "{'a':1,'b':2}", 10, NULL);

    /* a message longer than err->msg is cut between characters, with "..." */
    af_schema_t *s = compile("{'additionalProperties':false}");
    json_t *v = json_object();
    for (int i = 0; i < 100; i++) {
        char key[64];
        snprintf(key, sizeof key, "k\xc3\xa9\xc3\xa9\xc3\xa9%d", i);
        json_object_set_new(v, key, json_null());
    }
    af_error_t err = {0};
    assert_int_equal(af_schema_validate(s, v, 1000, &err), AF_EINVAL);
    size_t len = strlen(err.msg);
    assert_true(len > 1000 && len < sizeof err.msg);
    assert_true(af_utf8_valid(err.msg, len, NULL));
    assert_string_equal(err.msg + len - 3, "...");
    assert_memory_equal(err.msg,
                        "$: unexpected property \"k\xc3\xa9\xc3\xa9\xc3\xa9"
                        "0\"; ",
                        34);
    json_decref(v);
    af_schema_free(s);

    /* errors in many array items stop at max_errors */
    check_max("{'items':{'type':'string'}}", "[1,2,3,4,5]", 2,
              "$[0]: must be string (got integer); $[1]: must be string (got integer)");
}

static const char *tree_schema =
    "{'$defs':{'node':{'type':'object','required':['value'],"
    "'properties':{'value':{'type':'integer'},'children':{'type':'array',"
    "'items':{'$ref':'#/$defs/node'}}},'additionalProperties':false}},"
    "'$ref':'#/$defs/node'}";

static void test_ref_tree(void **state) {
    (void)state;
    ok(tree_schema, "{'value':1,'children':[{'value':2},{'value':3,'children':[{'value':4}]}]}");
    bad(tree_schema, "{'value':1,'children':[{'value':2},{'value':3,'children':[{'value':'x'}]}]}",
        "$.children[1].children[0].value: must be integer (got string)");
    bad(tree_schema, "{'value':1,'children':[{'children':[]}]}",
        "$.children[0]: missing required property \"value\"");
    bad(tree_schema, "{'value':1,'children':[{'value':2,'name':'x'}]}",
        "$.children[0]: unexpected property \"name\"");

    /* "#" is the whole schema */
    const char *list =
        "{'type':'object','properties':{'v':{'type':'integer'},'next':{'$ref':'#'}}}";
    ok(list, "{'v':1,'next':{'v':2,'next':{'v':3}}}");
    bad(list, "{'v':1,'next':{'v':2,'next':{'v':true}}}",
        "$.next.next.v: must be integer (got boolean)");

    /* definitions, pointers into properties, escapes in pointers */
    bad("{'definitions':{'pos':{'minimum':0}},'properties':{'n':{'$ref':'#/definitions/pos'}}}",
        "{'n':-1}", "$.n: must be >= 0 (got -1)");
    bad("{'properties':{'a':{'type':'string'},'b':{'$ref':'#/properties/a'}}}", "{'b':1}",
        "$.b: must be string (got integer)");
    bad("{'$defs':{'a/b~':{'type':'string'}},'$ref':'#/$defs/a~1b~0'}", "1",
        "$: must be string (got integer)");
    bad("{'$defs':{'x y':{'type':'string'}},'$ref':'#/$defs/x%20y'}", "1",
        "$: must be string (got integer)");
    bad("{'x':{'l':[{'type':'string'}]},'$ref':'#/x/l/0'}", "1", "$: must be string (got integer)");
    bad("{'$defs':{'no':false},'$ref':'#/$defs/no'}", "1", "$: is not allowed");
    /* $ref applies together with its siblings (2020-12) */
    const char *both = "{'$defs':{'pos':{'minimum':0}},'$ref':'#/$defs/pos','type':'integer'}";
    bad(both, "-1", "$: must be >= 0 (got -1)");
    bad(both, "1.5", "$: must be integer (got number)");
    /* a target reached only through a $ref inside a $ref target */
    bad("{'$defs':{'a':{'$ref':'#/$defs/b'},'b':{'$ref':'#/x/c'}},'x':{'c':{'type':'null'}},"
        "'$ref':'#/$defs/a'}",
        "1", "$: must be null (got integer)");
    /* mutual recursion through values */
    const char *even = "{'$defs':{'even':{'type':'array','items':{'$ref':'#/$defs/odd'}},"
                       "'odd':{'type':'array','maxItems':1,'items':{'$ref':'#/$defs/even'}}},"
                       "'$ref':'#/$defs/even'}";
    ok(even, "[[[[]]],[]]");
    bad(even, "[[[],[]]]", "$[0]: must have at most 1 item (got 2)");
}

/* A tree as deep as the value limit allows validates; one level more is an error, not a crash. */
static void test_ref_tree_deep(void **state) {
    (void)state;
    af_schema_t *s = compile(tree_schema);
    for (int levels = 30; levels <= 40; levels += 10) {
        json_t *root = json_pack("{s:i}", "value", 0);
        json_t *at = root;
        for (int i = 0; i < levels; i++) {
            json_t *child = json_pack("{s:i}", "value", i + 1);
            json_object_set_new(at, "children", json_pack("[o]", child));
            at = child;
        }
        af_error_t err = {0};
        int rc = af_schema_validate(s, root, 1, &err);
        if (levels == 30) {
            assert_int_equal(rc, 0);
        } else {
            /* value 32 levels down sits at depth 65 */
            char want[1024] = "$";
            for (int i = 0; i < 32; i++) {
                strcat(want, ".children[0]");
            }
            strcat(want, ".value: nested deeper than 64 levels");
            assert_int_equal(rc, AF_EINVAL);
            assert_string_equal(err.msg, want);
        }
        json_decref(root);
    }
    af_schema_free(s);
}

static void test_bad_schemas(void **state) {
    (void)state;
    bad_schema("5", "#: a schema must be an object or a boolean (got integer)");
    bad_schema("{'type':'strin'}", "#/type: unknown type \"strin\"");
    bad_schema("{'type':5}", "#/type: must be a type name or an array of them (got integer)");
    bad_schema("{'type':[]}", "#/type: must not be an empty array");
    bad_schema("{'type':['string',1]}", "#/type: must contain only type names (got integer)");
    bad_schema("{'type':['string','string']}", "#/type: names \"string\" twice");
    bad_schema("{'enum':3}", "#/enum: must be an array (got integer)");
    bad_schema("{'minimum':'0'}", "#/minimum: must be a number (got string)");
    bad_schema("{'maximum':null}", "#/maximum: must be a number (got null)");
    bad_schema("{'exclusiveMinimum':true}",
               "#/exclusiveMinimum: must be a number (the draft-04 boolean form is not supported)");
    bad_schema("{'multipleOf':0}", "#/multipleOf: must be greater than 0 (got 0)");
    bad_schema("{'multipleOf':-0.5}", "#/multipleOf: must be greater than 0 (got -0.5)");
    bad_schema("{'minLength':-1}", "#/minLength: must be a non-negative integer (got -1)");
    bad_schema("{'maxItems':1.5}", "#/maxItems: must be a non-negative integer (got 1.5)");
    bad_schema("{'maxProperties':'2'}",
               "#/maxProperties: must be a non-negative integer (got \"2\")");
    bad_schema("{'uniqueItems':1}", "#/uniqueItems: must be a boolean (got integer)");
    bad_schema("{'pattern':5}", "#/pattern: must be a string (got integer)");
    bad_schema("{'properties':{'a':{'pattern':'('}}}",
               "#/properties/a/pattern: invalid regular expression \"(\" (Unmatched ( or \\()");
    bad_schema("{'pattern':'a{2,'}",
               "#/pattern: invalid regular expression \"a{2,\" (Unmatched \\{)");
    bad_schema("{'pattern':'(?=a)'}", "#/pattern: \"(?=a)\" uses (?...) groups other than (?:...), "
                                      "which POSIX regular expressions do not support");
    bad_schema(
        "{'pattern':'\\\\u00e9'}",
        "#/pattern: \"\\u00e9\" uses an escape that POSIX regular expressions do not support");
    bad_schema("{'pattern':'[\\\\D]'}", "#/pattern: \"[\\D]\" uses \\D, \\S or \\W inside [...], "
                                        "which POSIX regular expressions cannot express");
    bad_schema("{'required':'a'}", "#/required: must be an array of property names (got string)");
    bad_schema("{'required':['a',1]}",
               "#/required: must contain only property names (got integer)");
    bad_schema("{'required':['a','a']}", "#/required: names \"a\" twice");
    bad_schema("{'properties':[]}", "#/properties: must be an object of schemas");
    bad_schema("{'properties':{'a':5}}",
               "#/properties/a: a schema must be an object or a boolean (got integer)");
    bad_schema("{'properties':{'a/b':{'type':1}}}",
               "#/properties/a~1b/type: must be a type name or an array of them (got integer)");
    bad_schema("{'additionalProperties':'no'}",
               "#/additionalProperties: a schema must be an object or a boolean (got string)");
    bad_schema("{'items':[{}]}", "#/items: must be a schema (for tuples use prefixItems)");
    bad_schema("{'items':{'items':{'minItems':true}}}",
               "#/items/items/minItems: must be a non-negative integer (got true)");
    bad_schema("{'prefixItems':{}}", "#/prefixItems: must be a non-empty array of schemas");
    bad_schema("{'allOf':[]}", "#/allOf: must be a non-empty array of schemas");
    bad_schema("{'anyOf':[{},3]}",
               "#/anyOf/1: a schema must be an object or a boolean (got integer)");
    bad_schema("{'oneOf':[{'oneOf':[{'type':'x'}]}]}",
               "#/oneOf/0/oneOf/0/type: unknown type \"x\"");
    bad_schema("{'not':[]}", "#/not: a schema must be an object or a boolean (got array)");
    bad_schema("{'$ref':5}", "#/$ref: must be a string (got integer)");
    bad_schema("{'$ref':'#/$defs/missing'}",
               "#/$ref: \"#/$defs/missing\" does not resolve to anything in the schema");
    bad_schema("{'$ref':'other.json#/a'}",
               "#/$ref: only local references (\"#\" or \"#/...\") are supported (got "
               "\"other.json#/a\")");
    bad_schema("{'$ref':'#anchor'}", "#/$ref: only JSON pointer references (\"#/...\") are "
                                     "supported (got \"#anchor\")");
    bad_schema("{'$ref':'#/a~2'}",
               "#/$ref: \"#/a~2\" is not a valid JSON pointer (~ must be followed by 0 or 1)");
    bad_schema("{'$defs':{'n':3},'$ref':'#/$defs/n'}",
               "#/$defs/n: a schema must be an object or a boolean (got integer)");
    bad_schema("{'enum':[1],'$ref':'#/enum'}",
               "#/$ref: \"#/enum\" does not name a schema (found array)");
    bad_schema("{'$defs':[]}", "#/$defs: must be an object of schemas");
    /* unused definitions are checked too */
    bad_schema("{'$defs':{'a':{'type':'nope'}}}", "#/$defs/a/type: unknown type \"nope\"");
    /* errors inside a target reached only by $ref carry the reference as the pointer */
    bad_schema("{'x':{'c':{'minimum':'1'}},'$ref':'#/x/c'}", "#/x/c/minimum: must be a number (got "
                                                             "string)");

    /* cycles that never descend into the value */
    bad_schema("{'$defs':{'a':{'$ref':'#/$defs/a'}},'$ref':'#/$defs/a'}",
               "#/$defs/a: applies itself to the same value (a $ref cycle that would never end)");
    bad_schema("{'$ref':'#'}", "#: applies itself to the same value (a $ref cycle that would never "
                               "end)");
    bad_schema("{'$defs':{'a':{'allOf':[{'$ref':'#/$defs/b'}]},'b':{'anyOf':[{'type':'string'},"
               "{'not':{'$ref':'#/$defs/a'}}]}}}",
               "#/$defs/b/anyOf/1/not: applies #/$defs/a to the same value, which leads back here "
               "(a $ref cycle that would never end)");

    /* JSON errors and missing input */
    af_error_t err = {0};
    assert_null(af_schema_compile_text(J("{'type':"), &err));
    assert_int_equal(err.code, AF_ESYNTAX);
    assert_null(af_schema_compile_text(NULL, &err));
    assert_int_equal(err.code, AF_EINVAL);
    assert_null(af_schema_compile(NULL, &err));
    assert_int_equal(err.code, AF_EINVAL);
    assert_null(af_schema_compile_text("{'type':1}", NULL));

    /* accepted: unknown keywords, integral reals as counts, empty enum */
    af_schema_free(compile("{'x-whatever':{'type':5},'format':7,'title':[],'minItems':2.0,"
                           "'enum':[],'patternProperties':{'a':1},'if':3}"));
}

static void test_defaults(void **state) {
    (void)state;
    af_schema_t *s =
        compile("{'type':'object','properties':{"
                "'name':{'type':'string','default':'anon'},"
                "'opts':{'type':'object','default':{},'properties':{"
                "'retries':{'type':'integer','default':3},'verbose':{'default':false}}},"
                "'tags':{'type':'array','items':{'properties':{'w':{'default':1}}}},"
                "'pair':{'prefixItems':[{'properties':{'p':{'default':'first'}}}]},"
                "'ref':{'$ref':'#/$defs/r'},"
                "'present':{'default':'no'}},"
                "'$defs':{'r':{'default':'from-ref'}},"
                "'additionalProperties':{'properties':{'z':{'default':0}}},"
                "'allOf':[{'properties':{'fromAll':{'default':[1]}}}]}");
    json_t *in = load("{'tags':[{},{'w':5}],'pair':[{},{}],'present':null,'extra':{},'n':1}");
    json_t *before = json_deep_copy(in);
    json_t *out = af_schema_apply_defaults(s, in);
    json_t *want = load("{'tags':[{'w':1},{'w':5}],'pair':[{'p':'first'},{}],'present':null,"
                        "'extra':{'z':0},'n':1,'name':'anon','opts':{'retries':3,'verbose':false},"
                        "'ref':'from-ref','fromAll':[1]}");
    assert_non_null(out);
    if (!json_equal(out, want)) {
        char *text = af_json_dumps(out, AF_JSON_SORT);
        fail_msg("defaults: got %s", text);
    }
    assert_true(json_equal(in, before)); /* the input is left alone */
    /* the filled-in defaults are copies */
    json_object_set_new(json_object_get(out, "opts"), "more", json_true());
    const json_t *opts = json_object_get(json_object_get(af_schema_json(s), "properties"), "opts");
    assert_int_equal(json_object_size(json_object_get(opts, "default")), 0);
    json_decref(out);
    json_decref(want);
    json_decref(before);
    json_decref(in);

    /* non-objects come back as copies */
    json_t *five = json_integer(5);
    out = af_schema_apply_defaults(s, five);
    assert_true(json_equal(out, five));
    json_decref(out);
    json_decref(five);
    af_schema_free(s);

    /* anyOf: the first branch that matches; oneOf: the only one that matches */
    s = compile("{'anyOf':[{'required':['kind'],'properties':{'kind':{'const':'a'},"
                "'x':{'default':1}}},{'properties':{'y':{'default':2}}}]}");
    const struct {
        const char *in, *want;
    } any[] = {{"{'kind':'a'}", "{'kind':'a','x':1}"},
               {"{}", "{'y':2}"},
               {"{'kind':'b'}", "{'kind':'b','y':2}"}};
    for (size_t i = 0; i < sizeof any / sizeof any[0]; i++) {
        in = load(any[i].in);
        want = load(any[i].want);
        out = af_schema_apply_defaults(s, in);
        assert_true(json_equal(out, want));
        json_decref(out);
        json_decref(want);
        json_decref(in);
    }
    af_schema_free(s);
    s = compile("{'oneOf':[{'type':'object','properties':{'a':{'default':1}}},"
                "{'type':'object','properties':{'b':{'default':2}}}]}");
    in = load("{}"); /* both match: no defaults */
    out = af_schema_apply_defaults(s, in);
    assert_true(json_equal(out, in));
    json_decref(out);
    json_decref(in);
    af_schema_free(s);
    s = compile("{'oneOf':[{'required':['a'],'properties':{'c':{'default':1}}},"
                "{'required':['b'],'properties':{'c':{'default':2}}}]}");
    in = load("{'b':0}");
    want = load("{'b':0,'c':2}");
    out = af_schema_apply_defaults(s, in);
    assert_true(json_equal(out, want));
    json_decref(out);
    json_decref(want);
    json_decref(in);
    af_schema_free(s);

    /* no value: the root default, filled in */
    s = compile("{'default':{'a':1},'properties':{'b':{'default':2}}}");
    out = af_schema_apply_defaults(s, NULL);
    want = load("{'a':1,'b':2}");
    assert_true(json_equal(out, want));
    json_decref(out);
    json_decref(want);
    af_schema_free(s);
    s = compile("{'properties':{'b':{'default':2}}}");
    assert_null(af_schema_apply_defaults(s, NULL));
    assert_null(af_schema_apply_defaults(NULL, NULL));
    /* a recursive schema with defaults stops at the value */
    af_schema_free(s);
    s = compile("{'properties':{'next':{'$ref':'#'},'n':{'default':0}}}");
    in = load("{'next':{'next':{}}}");
    want = load("{'n':0,'next':{'n':0,'next':{'n':0}}}");
    out = af_schema_apply_defaults(s, in);
    assert_true(json_equal(out, want));
    json_decref(out);
    json_decref(want);
    json_decref(in);
    af_schema_free(s);
}

static void test_schema_json(void **state) {
    (void)state;
    json_t *schema = load("{'type':'object','properties':{'a':{'type':'string','title':'A'}},"
                          "'required':['a']}");
    json_t *copy = json_deep_copy(schema);
    af_error_t err = {0};
    af_schema_t *s = af_schema_compile(schema, &err);
    assert_non_null(s);
    assert_true(json_equal(af_schema_json(s), copy));
    /* the compiled schema does not depend on the caller's JSON afterwards */
    json_object_clear(schema);
    json_decref(schema);
    json_t *v = load("{'a':1}");
    assert_int_equal(af_schema_validate(s, v, 1, &err), AF_EINVAL);
    assert_string_equal(err.msg, "$.a: must be string (got integer)");
    assert_int_equal(af_schema_validate(s, NULL, 1, &err), AF_EINVAL);
    assert_string_equal(err.msg, "$: no value");
    assert_int_equal(af_schema_validate(NULL, v, 1, &err), AF_EINVAL);
    assert_null(af_schema_json(NULL));
    af_schema_free(NULL);
    json_decref(v);
    json_decref(copy);
    af_schema_free(s);
}

/* ---- pathological inputs ---- */

/* [[[...]]] `depth` deep, built without recursion. */
static json_t *nested_arrays(int depth) {
    json_t *root = json_array();
    json_t *at = root;
    for (int i = 1; i < depth; i++) {
        json_t *inner = json_array();
        json_array_append_new(at, inner);
        at = inner;
    }
    return root;
}

static void test_deep_values(void **state) {
    (void)state;
    json_t *deep = nested_arrays(5000);
    af_error_t err = {0};

    /* schemas that do not look inside are fine */
    af_schema_t *s = compile("{'type':'array','minItems':1}");
    assert_int_equal(af_schema_validate(s, deep, 1, &err), 0);
    af_schema_free(s);

    char want[1024] = "$";
    for (int i = 0; i < 65; i++) {
        strcat(want, "[0]");
    }
    strcat(want, ": nested deeper than 64 levels");
    s = compile("{'type':'array','items':{'$ref':'#'}}");
    assert_int_equal(af_schema_validate(s, deep, 5, &err), AF_EINVAL);
    assert_string_equal(err.msg, want);
    /* the depth error wins even inside branches that would otherwise hide it */
    af_schema_free(s);
    s = compile("{'not':{'items':{'$ref':'#/not'}}}");
    assert_int_equal(af_schema_validate(s, deep, 5, &err), AF_EINVAL);
    assert_string_equal(err.msg, want);
    af_schema_free(s);
    s = compile("{'anyOf':[{'items':{'$ref':'#'}},true]}");
    assert_int_equal(af_schema_validate(s, deep, 5, &err), AF_EINVAL);
    assert_string_equal(err.msg, want);
    af_schema_free(s);

    /* comparing deep values */
    s = compile("{'uniqueItems':true}");
    json_t *pair = json_pack("[OO]", deep, deep);
    assert_int_equal(af_schema_validate(s, pair, 1, &err), AF_EINVAL);
    assert_string_equal(err.msg, "$: nested deeper than 64 levels");
    af_schema_free(s);
    s = compile("{'enum':[[[[1]]]]}");
    assert_int_equal(af_schema_validate(s, deep, 1, &err), AF_EINVAL);
    strcpy(want, "$: must be one of [[[[1]]]] (got ");
    for (int i = 0; i < 80; i++) {
        strcat(want, "[");
    }
    strcat(want, "...)");
    assert_string_equal(err.msg, want);
    af_schema_free(s);

    /* deep objects through additionalProperties */
    json_t *obj = json_object();
    json_t *at = obj;
    for (int i = 0; i < 200; i++) {
        json_t *inner = json_object();
        json_object_set_new(at, "a", inner);
        at = inner;
    }
    s = compile("{'additionalProperties':{'$ref':'#'}}");
    assert_int_equal(af_schema_validate(s, obj, 1, &err), AF_EINVAL);
    assert_non_null(strstr(err.msg, ".a.a: nested deeper than 64 levels"));
    /* defaults copy such values but do not descend past the limit */
    json_t *copy = af_schema_apply_defaults(s, obj);
    assert_true(json_equal(copy, obj));
    json_decref(copy);
    af_schema_free(s);

    /* apply_defaults refuses values deeper than its copy limit */
    s = compile("{'properties':{'a':{'default':1}}}");
    assert_null(af_schema_apply_defaults(s, deep));
    af_schema_free(s);

    json_decref(obj);
    json_decref(pair);
    json_decref(deep);
}

/* {"not":{"not":...true}} with n nots. */
static char *nots(int n) {
    af_buf_t b = {0};
    for (int i = 0; i < n; i++) {
        af_buf_add(&b, "{\"not\":", 7);
    }
    af_buf_add(&b, "true", 4);
    for (int i = 0; i < n; i++) {
        af_buf_add(&b, "}", 1);
    }
    return b.data;
}

static void test_deep_schemas(void **state) {
    (void)state;
    /* 66 nots: the 66th object schema is 65 levels down */
    char *text = nots(66);
    char want[1024] = "#";
    for (int i = 0; i < 65; i++) {
        strcat(want, "/not");
    }
    strcat(want, ": schema nested deeper than 64 levels");
    af_error_t err = {0};
    assert_null(af_schema_compile_text(text, &err));
    assert_int_equal(err.code, AF_EINVAL);
    assert_string_equal(err.msg, want);
    free(text);
    /* 65 are fine: not(...(true)) 65 times is false */
    text = nots(65);
    af_schema_t *s = af_schema_compile_text(text, &err);
    free(text);
    assert_non_null(s);
    json_t *one = json_integer(1);
    assert_int_equal(af_schema_validate(s, one, 1, &err), AF_EINVAL);
    assert_string_equal(err.msg, "$: must not match the schema in not");
    af_schema_free(s);

    /* JSON nested too deep for the schema document */
    json_t *deep = nested_arrays(5000);
    json_t *schema = json_pack("{s:o}", "default", deep);
    assert_null(af_schema_compile(schema, &err));
    assert_int_equal(err.code, AF_EINVAL);
    assert_string_equal(err.msg, "#: schema nested deeper than 512 levels");
    json_decref(schema);

    /* a chain of 1000 definitions applied to the same value */
    af_buf_t b = {0};
    af_buf_addf(&b, "{\"$ref\":\"#/$defs/d0\",\"$defs\":{");
    for (int i = 0; i < 1000; i++) {
        af_buf_addf(&b, "\"d%d\":{\"allOf\":[{\"$ref\":\"#/$defs/d%d\"}]},", i, i + 1);
    }
    af_buf_addf(&b, "\"d1000\":{\"type\":\"integer\"}}}");
    s = af_schema_compile_text(b.data, &err);
    assert_non_null(s);
    assert_int_equal(af_schema_validate(s, one, 1, &err), AF_EINVAL);
    assert_string_equal(err.msg, "$: schema applies subschemas deeper than 512 levels");
    af_schema_free(s);
    /* a shorter chain works */
    b.len = 0;
    af_buf_addf(&b, "{\"$ref\":\"#/$defs/d0\",\"$defs\":{");
    for (int i = 0; i < 100; i++) {
        af_buf_addf(&b, "\"d%d\":{\"$ref\":\"#/$defs/d%d\"},", i, i + 1);
    }
    af_buf_addf(&b, "\"d100\":{\"type\":\"string\"}}}");
    s = af_schema_compile_text(b.data, &err);
    assert_non_null(s);
    assert_int_equal(af_schema_validate(s, one, 1, &err), AF_EINVAL);
    assert_string_equal(err.msg, "$: must be string (got integer)");
    af_schema_free(s);
    af_buf_free(&b);
    json_decref(one);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type),         cmocka_unit_test(test_enum_const),
        cmocka_unit_test(test_numbers),      cmocka_unit_test(test_strings),
        cmocka_unit_test(test_arrays),       cmocka_unit_test(test_unique_items_long),
        cmocka_unit_test(test_objects),      cmocka_unit_test(test_boolean_schemas),
        cmocka_unit_test(test_combinators),  cmocka_unit_test(test_multiple_errors),
        cmocka_unit_test(test_ref_tree),     cmocka_unit_test(test_ref_tree_deep),
        cmocka_unit_test(test_bad_schemas),  cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_schema_json),  cmocka_unit_test(test_deep_values),
        cmocka_unit_test(test_deep_schemas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
