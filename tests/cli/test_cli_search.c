/* Tests of `dnnsim search` (cli/cmd_search.c) and of predict's operator
 * and headroom output: the ranked table with breakdowns and the rate,
 * JSON and CSV, and usage and input errors with their exit codes. */
#include "cli_test.h"

#include <jansson.h>

static void test_table(void **state) {
  (void)state;
  const char *dir = cli_tmpdir();
  cli_result r = cli_run(dir, "",
                         "search scenarios/gpt-3.6b-a100.ini --devices 16 "
                         "--top 4 --finalists 1");
  assert_rc(r, 0);
  assert_contains(r.out, "on 16 x a100-sxm4-80gb");
  assert_contains(r.out, "evaluations/s");
  assert_contains(r.out, "rank  data tens pipe");
  assert_contains(r.out, "breakdowns (critical device, per iteration)");
  assert_contains(r.out, "   4 ");
  assert_true(strstr(r.out, "   5 ") == NULL);
  cli_result_free(&r);
  cli_rmdir(dir);
}

static void test_json_ranked(void **state) {
  (void)state;
  const char *dir = cli_tmpdir();
  cli_result r = cli_run(dir, "",
                         "search scenarios/gpt-3.6b-a100.ini --devices 32 "
                         "--top 5 --format json");
  assert_rc(r, 0);
  json_error_t je;
  json_t *j = json_loads(r.out, 0, &je);
  assert_non_null(j);
  assert_int_equal(json_integer_value(json_object_get(j, "devices")), 32);
  assert_true(json_integer_value(json_object_get(j, "evaluated")) > 0);
  json_t *res = json_object_get(j, "results");
  assert_int_equal(json_array_size(res), 5);
  double prev = 0;
  for (size_t k = 0; k < 5; k++) {
    json_t *o = json_array_get(res, k);
    double t = json_real_value(json_object_get(o, "iteration_s"));
    assert_true(t >= prev);
    prev = t;
    json_int_t d = json_integer_value(json_object_get(o, "data"));
    json_int_t tt = json_integer_value(json_object_get(o, "tensor"));
    json_int_t p = json_integer_value(json_object_get(o, "pipeline"));
    assert_int_equal(d * tt * p, 32);
    assert_true(json_is_true(json_object_get(o, "fits_in_memory")));
    assert_non_null(json_object_get(o, "schedule"));
    assert_non_null(
        json_object_get(json_object_get(o, "memory"), "headroom_bytes"));
  }
  json_decref(j);
  cli_result_free(&r);
  /* CSV: a header and one row per result. */
  r = cli_run(dir, "",
              "search scenarios/gpt-3.6b-a100.ini --devices 8 --top 3 "
              "--finalists 0 -f csv");
  assert_rc(r, 0);
  char *lines[8];
  size_t n = cli_lines(r.out, lines, 8);
  assert_int_equal(n, 4);
  assert_contains(lines[0], "rank,microbatch_size,microbatches,schedule");
  assert_contains(lines[1], "1,");
  dnn_free(lines[0]);
  cli_result_free(&r);
  cli_rmdir(dir);
}

static void test_errors(void **state) {
  (void)state;
  const char *dir = cli_tmpdir();
  cli_result r = cli_run(dir, "", "search scenarios/gpt-3.6b-a100.ini --top 0");
  assert_rc(r, 2);
  assert_contains(r.err, "--top needs a positive count");
  cli_result_free(&r);
  r = cli_run(dir, "", "search --bogus");
  assert_rc(r, 2);
  assert_contains(r.err, "unknown option '--bogus'");
  cli_result_free(&r);
  r = cli_run(dir, "", "search");
  assert_rc(r, 2);
  assert_contains(r.err, "a scenario file is required");
  cli_result_free(&r);
  r = cli_run(dir, "", "search scenarios/gpt-3.6b-a100.ini --devices 12");
  assert_rc(r, 3);
  assert_contains(r.err, "12 devices are not whole nodes of 8");
  cli_result_free(&r);
  r = cli_run(dir, "", "search --help");
  assert_rc(r, 0);
  assert_contains(r.out, "mpirun -np R dnnsim search");
  cli_result_free(&r);
  cli_rmdir(dir);
}

/* predict shows the operator choices and the headroom. */
static void test_predict_operators(void **state) {
  (void)state;
  const char *dir = cli_tmpdir();
  cli_result r = cli_run(dir, "", "predict scenarios/resnet50-tensor-a100.ini");
  assert_rc(r, 0);
  assert_contains(r.out, "operators     53 convolutions (forward:");
  assert_contains(r.out, "largest workspace");
  assert_contains(r.out, "tensor split  ");
  assert_contains(r.out, "to spare)");
  cli_result_free(&r);
  r = cli_run(dir, "", "predict scenarios/resnet50-tensor-a100.ini -f json");
  assert_rc(r, 0);
  json_error_t je;
  json_t *j = json_loads(r.out, 0, &je);
  assert_non_null(j);
  json_t *ops = json_object_get(j, "operators");
  assert_true(json_array_size(ops) >= 53);
  json_t *o = json_array_get(ops, 0);
  assert_string_equal(json_string_value(json_object_get(o, "layer")), "conv1");
  assert_non_null(json_object_get(o, "split"));
  assert_non_null(json_object_get(o, "fwd_algo"));
  double head = json_real_value(
      json_object_get(json_object_get(j, "memory"), "headroom_bytes"));
  assert_true(head > 0);
  json_decref(j);
  cli_result_free(&r);
  /* describe with a tensor group. */
  r = cli_run(dir, "",
              "describe resnet18 --profile v100-sxm2 --tensor 4 --batch 16 "
              "--tensor-split spatial -f csv");
  assert_rc(r, 0);
  assert_contains(r.out, ",spatial,");
  cli_result_free(&r);
  r = cli_run(dir, "", "describe resnet18 --tensor 4");
  assert_rc(r, 2);
  assert_contains(r.err, "--tensor needs --profile");
  cli_result_free(&r);
  cli_rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table),
      cmocka_unit_test(test_json_ranked),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_predict_operators),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
