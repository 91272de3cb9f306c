/* Tests of plots/sweep.c: --vary lists and ranges (known expansions and
 * every error), the row order of a cartesian product, applying a row to a
 * scenario, and what a change invalidates. */
#include "plot_test.h"

#include <string.h>

static void expect_values(const char *spec, const char *const *want, size_t n) {
  dnn_plot_vary v;
  dnn_error e;
  assert_ok(dnn_plot_vary_parse(spec, &v, &e), &e);
  if (v.n_values != n)
    fail_msg("%s: %zu values, expected %zu", spec, v.n_values, n);
  for (size_t i = 0; i < n; i++)
    if (strcmp(v.values[i], want[i]) != 0)
      fail_msg("%s: value %zu is '%s', expected '%s'", spec, i, v.values[i],
               want[i]);
  dnn_plot_vary_free(&v);
}

#define EXPECT(spec, ...)                                                      \
  do {                                                                         \
    const char *const w_[] = {__VA_ARGS__};                                    \
    expect_values(spec, w_, sizeof w_ / sizeof w_[0]);                         \
  } while (0)

static void test_lists(void **state) {
  (void)state;
  dnn_plot_vary v;
  dnn_error e;
  assert_ok(dnn_plot_vary_parse(
                "parallelism.allreduce= ring ,tree,hierarchical", &v, &e),
            &e);
  assert_string_equal(v.section, "parallelism");
  assert_string_equal(v.key, "allreduce");
  assert_int_equal(v.n_values, 3);
  assert_string_equal(v.values[0], "ring");
  assert_string_equal(v.values[2], "hierarchical");
  dnn_plot_vary_free(&v);
  dnn_plot_vary_free(&v); /* zeroed: a second free does nothing */
  dnn_plot_vary_free(NULL);
  /* ';' separates values that hold commas. */
  EXPECT("training.sizes=128:0.3,224:0.7;160:1", "128:0.3,224:0.7", "160:1");
  /* "../x.ini" is a path, not a range. */
  EXPECT("hardware.profile=../profiles/x.ini,v100-sxm2", "../profiles/x.ini",
         "v100-sxm2");
  EXPECT("model.batch=96", "96");
}

static void test_ranges(void **state) {
  (void)state;
  EXPECT("cluster.nodes=1..64*2", "1", "2", "4", "8", "16", "32", "64");
  EXPECT("cluster.nodes=3..100*3", "3", "9", "27", "81");
  EXPECT("parallelism.pipeline=3..7", "3", "4", "5", "6", "7");
  EXPECT("model.batch=96..384+96", "96", "192", "288", "384");
  EXPECT("model.batch=100..130+7", "100", "107", "114", "121", "128");
  EXPECT("parallelism.bucket_MB=2.5..10+2.5", "2.5", "5", "7.5", "10");
  /* Accumulated 0.1 steps still end at 1 (the slack). */
  EXPECT("training.jitter=0..1+0.1", "0", "0.1", "0.2", "0.3", "0.4", "0.5",
         "0.6", "0.7", "0.8", "0.9", "1");
  EXPECT("hardware.workspace_MB=1e1..1e+3*10", "10", "100", "1000");
  EXPECT("cluster.nodes=1,3..5,16", "1", "3", "4", "5", "16");
  EXPECT("cluster.nodes=7..7", "7");
}

static void expect_error(const char *spec, dnn_status code,
                         const char *needle) {
  dnn_plot_vary v;
  dnn_error e;
  dnn_error_clear(&e);
  dnn_status st = dnn_plot_vary_parse(spec, &v, &e);
  dnn_plot_vary_free(&v);
  if (st != code)
    fail_msg("%s: status %s, expected %s (%s)", spec, dnn_status_name(st),
             dnn_status_name(code), e.msg);
  assert_contains(e.msg, needle);
  assert_contains(e.msg, "--vary ");
}

static void test_errors(void **state) {
  (void)state;
  expect_error("cluster.nodes", DNN_EINVAL, "expected section.key=v1,v2");
  expect_error("=1,2", DNN_EINVAL, "expected section.key=");
  expect_error("nodes=1,2", DNN_EINVAL, "expected section.key=");
  expect_error("clster.nodes=1,2", DNN_EPARSE,
               "unknown key 'clster.nodes' (did you mean cluster.nodes?)");
  expect_error("cluster.nodez=1", DNN_EPARSE, "did you mean cluster.nodes?");
  expect_error("cluster.nodes=1,,2", DNN_EINVAL, "empty value");
  expect_error("cluster.nodes=", DNN_EINVAL, "empty value");
  expect_error("cluster.nodes=8..1", DNN_EINVAL, "start 8 is above end 1");
  expect_error("cluster.nodes=1..8+0", DNN_EINVAL, "step must be above 0");
  expect_error("cluster.nodes=1..8+-2", DNN_EINVAL, "step must be above 0");
  expect_error("cluster.nodes=1..8*1", DNN_EINVAL, "factor must be above 1");
  expect_error("training.jitter=0..1*2", DNN_EINVAL, "start above 0");
  expect_error("cluster.nodes=1..x", DNN_EINVAL, "bad range '1..x'");
  expect_error("cluster.nodes=1..8*2*2", DNN_EINVAL, "bad range");
  expect_error("cluster.nodes=1..1000000", DNN_ERANGE, "at most 100000");
  expect_error("cluster.nodes=1..1e9*1.0000001", DNN_ERANGE,
               "more than 100000 values");
  expect_error("cluster.nodes=4,0", DNN_ERANGE, "value '0'");
  expect_error("cluster.nodes=abc", DNN_EINVAL, "value 'abc'");
  expect_error("cluster.nodes=1..4+0.5", DNN_EINVAL, "value '1.5'");
  expect_error("parallelism.allreduce=ring,rign", DNN_EINVAL, "value 'rign'");
}

static void free_all(dnn_plot_vary *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    dnn_plot_vary_free(&v[i]);
}

static void test_rows(void **state) {
  (void)state;
  dnn_plot_vary v[3];
  dnn_error e;
  assert_ok(dnn_plot_vary_parse("cluster.nodes=1,2,4", &v[0], &e), &e);
  assert_ok(dnn_plot_vary_parse("parallelism.allreduce=ring,tree", &v[1], &e),
            &e);
  size_t rows;
  assert_ok(dnn_plot_sweep_rows(v, 2, &rows, &e), &e);
  assert_int_equal(rows, 6);
  assert_ok(dnn_plot_sweep_rows(v, 0, &rows, &e), &e);
  assert_int_equal(rows, 1);
  /* The first key varies slowest. */
  for (size_t r = 0; r < 6; r++) {
    assert_int_equal(dnn_plot_sweep_index(v, 2, r, 0), r / 2);
    assert_int_equal(dnn_plot_sweep_index(v, 2, r, 1), r % 2);
  }
  /* Too many rows. */
  assert_ok(dnn_plot_vary_parse("model.batch=1..100000", &v[2], &e), &e);
  dnn_plot_vary big[2] = {v[2], v[2]};
  dnn_error_clear(&e);
  assert_int_equal(dnn_plot_sweep_rows(big, 2, &rows, &e), DNN_ERANGE);
  assert_contains(e.msg, "more than 1000000 configurations");
  dnn_plot_vary many[DNN_PLOT_MAX_VARY + 1];
  for (size_t i = 0; i <= DNN_PLOT_MAX_VARY; i++)
    many[i] = v[0];
  assert_int_equal(dnn_plot_sweep_rows(many, DNN_PLOT_MAX_VARY + 1, &rows, &e),
                   DNN_ERANGE);
  assert_contains(e.msg, "at most 16 --vary");
  free_all(v, 3);
}

static const char *base_text =
    "[model]\nname = resnet18\nbatch = 96\nimage = 64\n"
    "[hardware]\nprofile = v100-sxm2\n"
    "[cluster]\nnodes = 3\ndevices_per_node = 2\nintra_link = nvlink2\n"
    "inter_link = ib-edr\n";

static void test_apply(void **state) {
  (void)state;
  dnn_scenario *base = malloc(sizeof *base), *row = malloc(sizeof *row);
  dnn_error e;
  dnn_scn_init(base);
  assert_ok(dnn_scn_load_string(base_text, "t.ini", NULL, base, &e), &e);
  dnn_plot_vary v[2];
  assert_ok(dnn_plot_vary_parse("cluster.nodes=1..8*2", &v[0], &e), &e);
  assert_ok(dnn_plot_vary_parse("parallelism.allreduce=ring,tree", &v[1], &e),
            &e);
  *row = *base;
  assert_ok(dnn_plot_sweep_apply(v, 2, 5, row, &e), &e);
  assert_int_equal(row->cluster.nodes, 4);
  assert_int_equal(row->parallelism.allreduce, DNN_COMM_ALGO_BINOMIAL_TREE);
  assert_int_equal(row->model.batch, 96); /* untouched */
  /* data = 0 derives the degree from the row's devices. */
  assert_int_equal(dnn_scn_data_degree(row), 8);
  assert_ok(dnn_scn_validate(row, &e), &e);
  *row = *base;
  assert_ok(dnn_plot_sweep_apply(v, 2, 7, row, &e), &e);
  assert_int_equal(dnn_scn_data_degree(row), 16);
  free_all(v, 2);
  /* A value the key rejects in context fails with the --vary prefix. */
  dnn_plot_vary bad;
  assert_ok(dnn_plot_vary_parse("parallelism.partition=balanced", &bad, &e),
            &e);
  snprintf(bad.values[0], 9, "1,x");
  dnn_error_clear(&e);
  *row = *base;
  assert_int_not_equal(dnn_plot_sweep_apply(&bad, 1, 0, row, &e), DNN_OK);
  assert_contains(e.msg, "--vary parallelism.partition=1,x: ");
  dnn_plot_vary_free(&bad);
  free(base);
  free(row);
}

static void test_changes(void **state) {
  (void)state;
  dnn_scenario *a = malloc(sizeof *a), *b = malloc(sizeof *b);
  dnn_error e;
  dnn_scn_init(a);
  assert_ok(dnn_scn_load_string(base_text, "t.ini", NULL, a, &e), &e);
  bool net, hw;
  const struct {
    const char *set;
    bool net, hw;
  } cases[] = {
      {"cluster.nodes=7", false, false},
      {"model.batch=384", false, false},
      {"model.dtype=fp16", false, false},
      {"parallelism.allreduce=tree", false, false},
      {"model.image=96", true, false},
      {"model.name=vgg16", true, false},
      {"model.classes=17", true, false},
      {"hardware.profile=h100-sxm5", false, true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    *b = *a;
    assert_ok(dnn_scn_set(b, cases[i].set, &e), &e);
    dnn_plot_scn_changes(a, b, &net, &hw);
    if (net != cases[i].net || hw != cases[i].hw)
      fail_msg("%s: net %d hw %d, expected %d %d", cases[i].set, net, hw,
               cases[i].net, cases[i].hw);
  }
  dnn_plot_scn_changes(a, a, &net, &hw);
  assert_false(net);
  assert_false(hw);
  free(a);
  free(b);
}

static void test_alloc_failures(void **state) {
  (void)state;
  test_alloc_state s;
  for (long fail_at = 0;; fail_at++) {
    dnn_plot_vary v;
    dnn_error e;
    test_alloc_install(&s, fail_at);
    dnn_status st = dnn_plot_vary_parse("cluster.nodes=1..64*2,3", &v, &e);
    test_alloc_restore();
    dnn_plot_vary_free(&v);
    if (st == DNN_OK)
      break;
    assert_int_equal(st, DNN_ENOMEM);
    assert_contains(e.msg, "out of memory");
    assert_true(fail_at < 100);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lists),          cmocka_unit_test(test_ranges),
      cmocka_unit_test(test_errors),         cmocka_unit_test(test_rows),
      cmocka_unit_test(test_apply),          cmocka_unit_test(test_changes),
      cmocka_unit_test(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
