/* test_outcome.c -- an execution's row and checkpoints kept in memory (engine/outcome.c): a step's
 * later checkpoint replaces its earlier one, copies are owned, steps sort by name. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "engine/outcome.h"

static void test_steps_replace_and_sort(void **state) {
    (void)state;
    af_outcome_t *o = af_outcome_new();
    assert_non_null(o);
    char name[8] = "wait";
    char error[16] = "boom";
    json_t *out = json_pack("{s:i}", "n", 1);
    af_checkpoint_t c = {.step = name, .attempts = 1, .wake_at = 5000, .ended_at = 10};
    snprintf(c.status, sizeof c.status, "waiting");
    assert_int_equal(af_outcome_step(o, &c), 0);
    c = (af_checkpoint_t){.step = "b", .attempts = 2, .error = error, .ended_at = 20};
    snprintf(c.status, sizeof c.status, "failed");
    assert_int_equal(af_outcome_step(o, &c), 0);
    c = (af_checkpoint_t){
        .step = name, .attempts = 1, .output = out, .port = "yes", .ended_at = 30};
    snprintf(c.status, sizeof c.status, "succeeded");
    assert_int_equal(af_outcome_step(o, &c), 0);
    json_decref(out);
    strcpy(name, "xxxx"); /* the outcome keeps its own copies */
    strcpy(error, "changed");
    assert_int_equal(o->nsteps, 2);
    af_outcome_sort(o);
    assert_string_equal(o->steps[0].step, "b");
    assert_string_equal(o->steps[0].error, "boom");
    assert_int_equal(o->steps[0].attempts, 2);
    assert_string_equal(o->steps[1].step, "wait");
    assert_string_equal(o->steps[1].status, "succeeded");
    assert_string_equal(o->steps[1].port, "yes");
    assert_int_equal(o->steps[1].wake_at, 0);
    assert_int_equal(o->steps[1].ended_at, 30);
    assert_int_equal(json_integer_value(json_object_get(o->steps[1].output, "n")), 1);
    o->execution.input = json_pack("{s:s}", "k", "v");
    af_outcome_free(o);
    af_outcome_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steps_replace_and_sort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
