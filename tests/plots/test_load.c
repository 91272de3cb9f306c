/* Tests of plots/load.c: validation results (pretty-printed objects, JSON
 * lines, arrays) and Chrome traces (metadata names, row order, categories,
 * time origin), with every error message. */
#include "plot_test.h"

#include <string.h>

static dnn_plot *new_plot(dnn_plot_kind kind) {
  dnn_plot_params pp = dnn_plot_default_params(kind);
  dnn_plot *pl;
  dnn_error e;
  assert_ok(dnn_plot_alloc(&pp, &pl, &e), &e);
  return pl;
}

static const char *pretty =
    "{\n"
    "  \"scenario\": \"scenarios/validate/resnet18-dp.ini\",\n"
    "  \"measured\": {\"iteration_s\": 0.4127, \"ci_s\": 0.002},\n"
    "  \"predicted\": {\"iteration_s\": 0.3981},\n"
    "  \"relative_error\": -0.0354\n"
    "}\n"
    "{\n"
    "  \"measured\": {\"iteration_s\": 0.2719},\n"
    "  \"predicted\": {\"iteration_s\": 0.2913}\n"
    "}\n";

static void test_validation(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  test_write(test_join(dir, "dp.json"), pretty);
  test_write(test_join(dir, "pp.jsonl"),
             "{\"scenario\":\"pp2.ini\",\"measured\":{\"iteration_s\":0.31},"
             "\"predicted\":{\"iteration_s\":0.3379}}\n\n"
             "[{\"measured\":{\"iteration_s\":1.5},\"predicted\":"
             "{\"iteration_s\":1.4}}]\n");
  dnn_plot *pl = new_plot(DNN_PLOT_VALIDATION);
  dnn_error e;
  assert_ok(dnn_plot_load_validation(pl, test_join(dir, "dp.json"), &e), &e);
  assert_ok(dnn_plot_load_validation(pl, test_join(dir, "pp.jsonl"), &e), &e);
  assert_int_equal(dnn_plot_points(pl), 4);
  dnn_plot_files f;
  assert_ok(dnn_plot_write(pl, test_join(dir, "v.png"), &f, &e), &e);
  char *dat = test_read(f.data);
  /* Series are the files, labels the scenarios (or the run's index). */
  assert_contains(dat, "# series 0: dp\n");
  assert_contains(dat, "# series 1: pp\n");
  assert_contains(dat, "\"resnet18-dp\"");
  assert_contains(dat, "\"run 2\"");
  assert_contains(dat, "\"pp2\"");
  double v[4 * 3];
  assert_int_equal(test_dat_rows(dat, v, 4, 3), 4);
  /* The largest time is 1.5 s: the unit is seconds. */
  assert_close(v[0], 0.4127, 1e-9);
  assert_close(v[1], 0.3981, 1e-9);
  assert_close(v[2], 100 * (0.3981 - 0.4127) / 0.4127, 1e-5);
  assert_close(v[6], 0.31, 1e-9);
  assert_close(v[11], 100 * (1.4 - 1.5) / 1.5, 1e-5);
  dnn_free(dat);
  dnn_plot_free(pl);
  test_rmdir(dir);
}

/* A mixed-size run: a point per drawn size and one for the mean step; a
 * size the schedule never drew (measured null) gives none. */
static void test_validation_mixed(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  test_write(test_join(dir, "mix.json"),
             "{\"scenario\": \"s/resnet18-mix1.ini\", \"kind\": \"mixed\",\n"
             " \"sizes\": [\n"
             "  {\"image\": 64, \"measured\": {\"iteration_s\": 0.1814},\n"
             "   \"predicted\": {\"iteration_s\": 0.1688}},\n"
             "  {\"image\": 96, \"measured\": {\"iteration_s\": null},\n"
             "   \"predicted\": {\"iteration_s\": 0.1548}},\n"
             "  {\"image\": 128, \"measured\": {\"iteration_s\": 0.1609},\n"
             "   \"predicted\": {\"iteration_s\": 0.1570}}],\n"
             " \"mixed\": {\"measured\": {\"mean_step_s\": 0.1764},\n"
             "           \"predicted\": {\"mean_step_s\": 0.1611}}}\n");
  dnn_plot *pl = new_plot(DNN_PLOT_VALIDATION);
  dnn_error e;
  assert_ok(dnn_plot_load_validation(pl, test_join(dir, "mix.json"), &e), &e);
  assert_int_equal(dnn_plot_points(pl), 3);
  dnn_plot_files f;
  assert_ok(dnn_plot_write(pl, test_join(dir, "v.png"), &f, &e), &e);
  char *dat = test_read(f.data);
  assert_contains(dat, "\"resnet18-mix1 64 px\"");
  assert_contains(dat, "\"resnet18-mix1 128 px\"");
  assert_contains(dat, "\"resnet18-mix1 mean step\"");
  assert_null(strstr(dat, "96 px"));
  double v[3 * 3];
  assert_int_equal(test_dat_rows(dat, v, 3, 3), 3);
  /* The largest time is under a second: the unit is ms. */
  assert_close(v[0], 181.4, 1e-9);
  assert_close(v[1], 168.8, 1e-9);
  assert_close(v[6], 176.4, 1e-9);
  assert_close(v[7], 161.1, 1e-9);
  dnn_free(dat);
  dnn_plot_free(pl);
  test_rmdir(dir);
}

static void expect_validation_error(const char *text, dnn_status code,
                                    const char *needle) {
  const char *dir = test_tmpdir();
  const char *path = test_join(dir, "bad.json");
  test_write(path, text);
  dnn_plot *pl = new_plot(DNN_PLOT_VALIDATION);
  dnn_error e;
  dnn_error_clear(&e);
  dnn_status st = dnn_plot_load_validation(pl, path, &e);
  dnn_plot_free(pl);
  if (st != code)
    fail_msg("status %s, expected %s: %s", dnn_status_name(st),
             dnn_status_name(code), e.msg);
  assert_contains(e.msg, needle);
  assert_contains(e.msg, "bad.json");
  test_rmdir(dir);
}

static void test_validation_errors(void **state) {
  (void)state;
  expect_validation_error("{\"measured\": {\"iteration_s\": 1},\n"
                          " \"predicted\": {\"iteration_s\": 1}}\n"
                          "{\n  \"measured\": {\"iteration_s\": 1},\n"
                          "  \"predicted\": 3\n}\n",
                          DNN_EINVAL,
                          ":3: result 2 has no number predicted.iteration_s");
  expect_validation_error("{\"predicted\": {\"iteration_s\": 1}}", DNN_EINVAL,
                          "no number measured.iteration_s");
  expect_validation_error("{\"measured\": {\"iteration_s\": 1},\n"
                          "\"predicted\": {\"iteration_s\": 1}}\n"
                          "\n{\"measured\": {\"iteration_s\": ]}}\n",
                          DNN_EPARSE, "bad.json:4: ");
  expect_validation_error("", DNN_EINVAL, "no results");
  expect_validation_error("{\"kind\": \"mixed\", \"sizes\": []}", DNN_EINVAL,
                          "mixed result 1 has no sizes or no "
                          "mixed.measured/predicted.mean_step_s");
  expect_validation_error("[3]", DNN_EINVAL, "expected a JSON object");
  expect_validation_error("{\"measured\": {\"iteration_s\": 0},\n"
                          "\"predicted\": {\"iteration_s\": 1}}",
                          DNN_EINVAL, "must be positive");
  dnn_plot *pl = new_plot(DNN_PLOT_VALIDATION);
  dnn_error e;
  assert_int_equal(dnn_plot_load_validation(pl, "/nonexistent/v.json", &e),
                   DNN_EIO);
  assert_contains(e.msg, "/nonexistent/v.json: cannot open");
  dnn_plot_free(pl);
}

/* Devices 10 and 2 (numeric order puts 2 first), a named process and
 * thread, events out of order, one without a category. */
static const char *trace =
    "{\"traceEvents\": [\n"
    " {\"ph\": \"X\", \"pid\": 10, \"tid\": 0, \"ts\": 1500, \"dur\": 250,"
    "  \"name\": \"fwd conv1\", \"cat\": \"forward\"},\n"
    " {\"ph\": \"X\", \"pid\": 2, \"tid\": 1, \"ts\": 2100, \"dur\": 700,"
    "  \"name\": \"allreduce.bucket0\"},\n"
    " {\"ph\": \"X\", \"pid\": 2, \"tid\": 0, \"ts\": 1000, \"dur\": 1100,"
    "  \"name\": \"fwd conv1\", \"cat\": \"forward\"},\n"
    " {\"ph\": \"B\", \"pid\": 2, \"tid\": 0, \"ts\": 0, \"name\": \"x\"},\n"
    " {\"ph\": \"M\", \"pid\": 2, \"name\": \"process_name\","
    "  \"args\": {\"name\": \"GPU 2\"}},\n"
    " {\"ph\": \"M\", \"pid\": 2, \"tid\": 1, \"name\": \"thread_name\","
    "  \"args\": {\"name\": \"nccl\"}}\n"
    "], \"displayTimeUnit\": \"ms\"}\n";

static void test_trace(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  test_write(test_join(dir, "trace.json"), trace);
  dnn_plot *pl = new_plot(DNN_PLOT_TIMELINE);
  dnn_error e;
  assert_ok(dnn_plot_load_trace(pl, test_join(dir, "trace.json"), &e), &e);
  assert_int_equal(dnn_plot_points(pl), 3);
  dnn_plot_files f;
  assert_ok(dnn_plot_write(pl, test_join(dir, "t.png"), &f, &e), &e);
  char *gp = test_read(f.script);
  assert_contains(gp, "(\"GPU 2 · stream 0\" 0, \"GPU 2 · nccl\" 1, "
                      "\"device 10 · stream 0\" 2)");
  assert_contains(gp, "title \"forward\"");
  assert_contains(gp, "title \"allreduce\"");
  dnn_free(gp);
  char *dat = test_read(f.data);
  double v[3 * 3];
  assert_int_equal(test_dat_rows(dat, v, 3, 3), 3);
  /* Times from the earliest event (1000 us), in ms: row, start, end. */
  const double want[] = {0, 0, 1.1, 2, 0.5, 0.75, 1, 1.1, 1.8};
  for (size_t i = 0; i < 9; i++)
    assert_close(v[i], want[i], 1e-9);
  dnn_free(dat);
  dnn_plot_free(pl);
  test_rmdir(dir);
}

static void test_trace_many_categories(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  char text[4096] = "[";
  for (int i = 0; i < 11; i++) {
    size_t len = strlen(text);
    snprintf(text + len, sizeof text - len,
             "%s{\"ph\":\"X\",\"pid\":0,\"tid\":0,\"ts\":%d,\"dur\":%d,"
             "\"name\":\"k%d\"}",
             i ? "," : "", 100 * i, 10 + i, i);
  }
  strcat(text, "]");
  test_write(test_join(dir, "many.json"), text);
  dnn_plot *pl = new_plot(DNN_PLOT_TIMELINE);
  dnn_error e;
  assert_ok(dnn_plot_load_trace(pl, test_join(dir, "many.json"), &e), &e);
  dnn_plot_files f;
  assert_ok(dnn_plot_write(pl, test_join(dir, "m.png"), &f, &e), &e);
  char *gp = test_read(f.script);
  /* The seven busiest (k4..k10) keep their names, the rest are "other". */
  assert_contains(gp, "title \"other\"");
  assert_contains(gp, "title \"k10\"");
  assert_contains(gp, "title \"k4\"");
  assert_null(strstr(gp, "title \"k3\""));
  assert_null(strstr(gp, "index 8"));
  dnn_free(gp);
  dnn_plot_free(pl);
  test_rmdir(dir);
}

static void expect_trace_error(const char *text, dnn_status code,
                               const char *needle) {
  const char *dir = test_tmpdir();
  const char *path = test_join(dir, "bad.json");
  test_write(path, text);
  dnn_plot *pl = new_plot(DNN_PLOT_TIMELINE);
  dnn_error e;
  dnn_error_clear(&e);
  dnn_status st = dnn_plot_load_trace(pl, path, &e);
  dnn_plot_free(pl);
  if (st != code)
    fail_msg("status %s, expected %s: %s", dnn_status_name(st),
             dnn_status_name(code), e.msg);
  assert_contains(e.msg, needle);
  test_rmdir(dir);
}

static void test_trace_errors(void **state) {
  (void)state;
  expect_trace_error("[\n{\"ph\": \"X\",\n\"ts\": }\n]", DNN_EPARSE,
                     "bad.json:3: ");
  expect_trace_error("{\"events\": []}", DNN_EINVAL,
                     "an object with a \"traceEvents\" array");
  expect_trace_error("[{\"ph\": \"M\", \"name\": \"process_name\"}]",
                     DNN_EINVAL, "no complete events (ph \"X\")");
  expect_trace_error("[{\"ph\": \"X\", \"ts\": 1, \"dur\": 2},"
                     " {\"ph\": \"X\", \"ts\": 1}]",
                     DNN_EINVAL,
                     "event 1: a complete event needs numbers ts "
                     "and dur");
  expect_trace_error("[{\"ph\": \"X\", \"ts\": 1, \"dur\": -2}]", DNN_EINVAL,
                     "event 0");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_validation),
      cmocka_unit_test(test_validation_mixed),
      cmocka_unit_test(test_validation_errors),
      cmocka_unit_test(test_trace),
      cmocka_unit_test(test_trace_many_categories),
      cmocka_unit_test(test_trace_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
