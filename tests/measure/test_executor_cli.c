/*
 * `dnnsim validate` end to end (label mpi: it starts mpirun itself): on 1
 * and 2 ranks with short runs of the shipped validation scenarios (small
 * images, few iterations), the JSON fields `dnnsim plot --kind validation`
 * reads and their sanity, one output from rank 0 only, the table, and
 * the errors: a rank count that does not match the scenario (naming
 * both), an unsupported strategy, bad options. The error bound here is
 * loose on purpose: this test checks structure and sanity, not the model's
 * accuracy (docs/validation.md reports that).
 */
#include "cli/cli_test.h"

#include <jansson.h>
#include <math.h>

#define MPIRUN DNNSIM_MPIEXEC " --allow-run-as-root --oversubscribe"

/* Short runs: small images, batches and iteration counts. */
#define QUICK "--repeats 3 --warmup 1 --set model.image=32 --set model.batch=8"

static const char *g_dir;

static json_t *parse(const char *text) {
  json_error_t je;
  json_t *j = json_loads(text, 0, &je);
  if (j == NULL)
    fail_msg("not one JSON object (%s): %s", je.text, text);
  return j;
}

static double number(const json_t *o, const char *a, const char *b) {
  const json_t *v = json_object_get(o, a);
  if (b)
    v = json_object_get(v, b);
  if (!json_is_number(v))
    fail_msg("no number %s%s%s", a, b ? "." : "", b ? b : "");
  return json_number_value(v);
}

static void check_json(const json_t *j, size_t ranks) {
  double m = number(j, "measured", "iteration_s");
  double p = number(j, "predicted", "iteration_s");
  double e = number(j, "relative_error", NULL);
  assert_true(m > 0 && isfinite(m) && p > 0 && isfinite(p));
  assert_close(e, (p - m) / m, 1e-9);
  /* Sanity, not accuracy: within a factor of ten. */
  assert_true(fabs(e) < 10);
  assert_true(number(j, "measured", "ci_lo_s") <= m);
  assert_true(number(j, "measured", "ci_hi_s") >= m);
  assert_int_equal((size_t)number(j, "ranks", NULL), ranks);
  assert_int_equal((size_t)number(j, "measured", "samples"), 3);
  static const char *const comp[] = {"forward", "backward", "comm_exposed",
                                     "bubble", "optimizer"};
  const json_t *ce = json_object_get(j, "component_error");
  assert_true(json_is_object(ce));
  for (size_t k = 0; k < 5; k++)
    assert_non_null(json_object_get(ce, comp[k]));
  assert_true(number(j, "measured", "forward_s") > 0);
  assert_true(number(j, "predicted", "forward_s") > 0);
  assert_true(number(j, "measured", "backward_s") > 0);
  const json_t *scn = json_object_get(j, "scenario");
  assert_true(json_is_string(scn));
  /* One entry per layer, with both times of each pass. */
  const json_t *layers = json_object_get(j, "layers");
  assert_int_equal(json_array_size(layers), 71); /* resnet18 */
  const json_t *conv1 = json_array_get(layers, 1);
  assert_string_equal(json_string_value(json_object_get(conv1, "name")),
                      "conv1");
  assert_true(number(conv1, "fwd", "measured_s") > 0);
  assert_true(number(conv1, "fwd", "predicted_s") > 0);
}

static bool have_mpirun(void) {
  return DNNSIM_MPIEXEC[0] != '\0';
}

static void test_one_rank_json(void **state) {
  (void)state;
  cli_result r = cli_run(g_dir, MPIRUN " -np 1",
                         "validate scenarios/validate/resnet18-dp1.ini " QUICK
                         " --format json");
  assert_rc(r, 0);
  json_t *j = parse(r.out);
  check_json(j, 1);
  assert_true(number(j, "measured", "comm_exposed_s") == 0);
  assert_true(number(j, "measured", "bubble_s") == 0);
  json_decref(j);
  cli_result_free(&r);
}

static void test_two_ranks_json(void **state) {
  (void)state;
  cli_result r = cli_run(g_dir, MPIRUN " -np 2",
                         "validate scenarios/validate/resnet18-dp.ini " QUICK
                         " --format json");
  assert_rc(r, 0);
  json_t *j = parse(r.out); /* fails on a second rank's object */
  check_json(j, 2);
  assert_true(number(j, "measured", "grad_bytes") > 40e6); /* 11.7 M */
  assert_true(number(j, "measured", "buckets") >= 1);
  assert_true(number(j, "predicted", "comm_exposed_s") > 0);
  json_decref(j);
  cli_result_free(&r);
}

static void test_pipeline_table(void **state) {
  (void)state;
  cli_result r = cli_run(g_dir, MPIRUN " -np 2",
                         "validate scenarios/validate/resnet18-pp2.ini " QUICK
                         " --layers");
  assert_rc(r, 0);
  assert_contains(r.out, "data 1 x pipeline 2");
  assert_contains(r.out, "bubble");
  assert_contains(r.out, "iteration");
  assert_contains(r.out, "layer4.1.conv2");
  /* Rank 0 prints once. */
  const char *first = strstr(r.out, "component");
  assert_non_null(first);
  assert_null(strstr(first + 1, "\ncomponent"));
  cli_result_free(&r);
}

static void test_rank_mismatch(void **state) {
  (void)state;
  cli_result r = cli_run(g_dir, MPIRUN " -np 2",
                         "validate scenarios/validate/resnet18-dp1.ini " QUICK);
  assert_rc(r, 3 /* input */);
  assert_contains(r.err, "resnet18-dp1.ini:");
  assert_contains(r.err, "[cluster] devices_per_node");
  assert_contains(r.err, "data x pipeline = 1 x 1 = 1 devices");
  assert_contains(r.err, "but 2 MPI ranks are running");
  assert_contains(r.err, "mpirun -np 1");
  /* Only rank 0 reports. */
  const char *first = strstr(r.err, "data x pipeline");
  assert_null(strstr(first + 1, "data x pipeline"));
  cli_result_free(&r);
}

static void test_unsupported(void **state) {
  (void)state;
  cli_result r = cli_run(g_dir, MPIRUN " -np 1",
                         "validate scenarios/validate/resnet18-dp.ini " QUICK
                         " --set parallelism.tensor=2");
  assert_rc(r, 4 /* unavailable */);
  assert_contains(r.err, "--set parallelism.tensor");
  assert_contains(r.err, "data and pipeline parallelism only");
  cli_result_free(&r);
  r = cli_run(g_dir, MPIRUN " -np 1",
              "validate scenarios/validate/resnet18-dp1.ini " QUICK
              " --set model.dtype=bf16");
  assert_rc(r, 4 /* unavailable */);
  assert_contains(r.err, "--set model.dtype: the executor runs fp32");
  cli_result_free(&r);
}

static void test_usage(void **state) {
  (void)state;
  cli_result r = cli_run(g_dir, "", "validate");
  assert_rc(r, 2 /* usage */);
  assert_contains(r.err, "a scenario file is required");
  cli_result_free(&r);
  r = cli_run(g_dir, "",
              "validate scenarios/validate/resnet18-dp1.ini --format csv");
  assert_rc(r, 2 /* usage */);
  assert_contains(r.err, "--format must be table or json");
  cli_result_free(&r);
  r = cli_run(g_dir, "",
              "validate scenarios/validate/resnet18-dp1.ini --repeats 0");
  assert_rc(r, 2 /* usage */);
  assert_contains(r.err, "--repeats needs a positive integer");
  cli_result_free(&r);
  r = cli_run(g_dir, "", "validate --help");
  assert_rc(r, 0);
  assert_contains(r.out, "mpirun -np N dnnsim validate");
  cli_result_free(&r);
}

int main(void) {
  if (!have_mpirun()) {
    printf("no mpirun in this build: skipped\n");
    return 0;
  }
  /* A build without oneDNN or MPI says so and exits 4: skip then. */
  g_dir = cli_tmpdir();
  cli_result r = cli_run(g_dir, MPIRUN " -np 1",
                         "validate scenarios/validate/resnet18-dp1.ini "
                         "--repeats 1 --warmup 0 --set model.image=32 "
                         "--set model.batch=2");
  int rc0 = r.rc;
  if (rc0 == 4 /* unavailable */) {
    printf("validate unavailable in this build: %s", r.err);
    cli_result_free(&r);
    cli_rmdir(g_dir);
    return 0;
  }
  cli_result_free(&r);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_usage),
      cmocka_unit_test(test_one_rank_json),
      cmocka_unit_test(test_two_ranks_json),
      cmocka_unit_test(test_pipeline_table),
      cmocka_unit_test(test_rank_mismatch),
      cmocka_unit_test(test_unsupported),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  cli_rmdir(g_dir);
  return rc;
}
