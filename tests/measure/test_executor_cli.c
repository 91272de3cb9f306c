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
  /* The CLI prints 10 significant digits (JSON_REAL_PRECISION(10)): the
   * error recomputed from the printed p and m agrees to ~1e-8 when small. */
  assert_close(e, (p - m) / m, 1e-6);
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
  assert_string_equal(json_string_value(json_object_get(j, "device")), "cpu");
  /* The kernels train: the loss on the fixed batch falls. */
  assert_true(number(j, "loss", "last") < number(j, "loss", "first"));
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

/* Batch augmentation: the compute batch grows, the gradients do not. */
static void test_augment_json(void **state) {
  (void)state;
  cli_result r = cli_run(g_dir, MPIRUN " -np 2",
                         "validate scenarios/validate/resnet18-ba.ini " QUICK
                         " --set training.augment_copies=2 --format json");
  assert_rc(r, 0);
  json_t *j = parse(r.out);
  check_json(j, 2);
  assert_int_equal((size_t)number(j, "copies", NULL), 2);
  /* 11.7 M fp32 gradients, once, whatever the copies. */
  double g = number(j, "measured", "grad_bytes");
  assert_true(g > 40e6 && g < 50e6);
  json_decref(j);
  cli_result_free(&r);
}

/* Mixed sizes: a drawn schedule, each size against its own prediction. */
#define MIXED                                                                  \
  "--repeats 6 --warmup 1 --set model.image=32 --set model.batch=8 "           \
  "--set training.sizes=32:0.5,48:0.5"

static void test_mixed_json(void **state) {
  (void)state;
  cli_result r = cli_run(g_dir, MPIRUN " -np 1",
                         "validate scenarios/validate/resnet18-mix1.ini " MIXED
                         " --format json");
  assert_rc(r, 0);
  json_t *j = parse(r.out);
  assert_string_equal(json_string_value(json_object_get(j, "kind")), "mixed");
  const json_t *sizes = json_object_get(j, "sizes");
  assert_int_equal(json_array_size(sizes), 2);
  size_t steps = 0;
  for (size_t k = 0; k < 2; k++) {
    const json_t *s = json_array_get(sizes, k);
    steps += (size_t)number(s, "steps", NULL);
    assert_true(number(s, "predicted", "iteration_s") > 0);
  }
  /* batch x side^2 constant, to the nearest: 8 at 32 px, 8 x 32^2 / 48^2
   * = 3.6 -> 4 at 48 px. */
  assert_int_equal(
      (size_t)number(json_array_get(sizes, 0), "local_batch", NULL), 8);
  assert_int_equal(
      (size_t)number(json_array_get(sizes, 1), "local_batch", NULL), 4);
  const json_t *mx = json_object_get(j, "mixed");
  assert_int_equal((size_t)number(mx, "steps", NULL), 6);
  assert_int_equal(steps, 6);
  assert_int_equal(json_array_size(json_object_get(mx, "schedule")), 6);
  double m = number(mx, "measured", "mean_step_s");
  double p = number(mx, "predicted", "mean_step_s");
  assert_true(m > 0 && p > 0);
  assert_close(number(mx, "relative_error", NULL), (p - m) / m, 1e-6);
  assert_true(fabs(number(mx, "drawn_epoch_relative_error", NULL)) < 10);
  json_decref(j);
  cli_result_free(&r);
  /* The table names every size and the mixed rows. */
  r = cli_run(g_dir, MPIRUN " -np 1",
              "validate scenarios/validate/resnet18-mix1.ini " MIXED);
  assert_rc(r, 0);
  assert_contains(r.out, "32 px");
  assert_contains(r.out, "48 px");
  assert_contains(r.out, "mean step (E[T] = sum p T)");
  assert_contains(r.out, "epoch (the drawn sizes)");
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
  r = cli_run(g_dir, MPIRUN " -np 2",
              "validate scenarios/validate/resnet18-mix.ini " QUICK
              " --set parallelism.pipeline=2");
  assert_rc(r, 4 /* unavailable */);
  assert_contains(r.err, "[training] sizes");
  assert_contains(r.err, "mixed sizes with data parallelism only");
  cli_result_free(&r);
}

/* The GPU engine: asked for explicitly, or by a GPU profile (auto). Where
 * no CUDA device is (these VMs) that is a clear error, exit status 4; a
 * machine with one runs it (test_meas_executor_gpu checks the run). */
static void test_gpu_device(void **state) {
  (void)state;
  static const char *const how[] = {
      "validate scenarios/validate/resnet18-dp1.ini " QUICK " --device gpu",
      "validate scenarios/validate/resnet18-gpu.ini " QUICK};
  for (size_t k = 0; k < 2; k++) {
    cli_result r = cli_run(g_dir, MPIRUN " -np 1", how[k]);
    if (r.rc == 0) { /* a GPU is here */
      assert_contains(r.out, "on CUDA device 0 (cuDNN)");
    } else {
      assert_rc(r, 4 /* unavailable */);
      if (strstr(r.err, "without") == NULL)
        assert_contains(r.err, "no CUDA device");
    }
    cli_result_free(&r);
  }
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
  r = cli_run(g_dir, "",
              "validate scenarios/validate/resnet18-dp1.ini --device tpu");
  assert_rc(r, 2 /* usage */);
  assert_contains(r.err, "--device must be auto, cpu or gpu, not 'tpu'");
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
      cmocka_unit_test(test_gpu_device),
      cmocka_unit_test(test_one_rank_json),
      cmocka_unit_test(test_two_ranks_json),
      cmocka_unit_test(test_augment_json),
      cmocka_unit_test(test_mixed_json),
      cmocka_unit_test(test_pipeline_table),
      cmocka_unit_test(test_rank_mismatch),
      cmocka_unit_test(test_unsupported),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  cli_rmdir(g_dir);
  return rc;
}
