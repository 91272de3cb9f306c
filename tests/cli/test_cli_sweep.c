/* Tests of `dnnsim sweep` (cli/cmd_sweep.c): CSV and JSON-lines contents of
 * small sweeps (row count, varied columns, monotone columns), invalid
 * configurations as error rows or --strict failures, atomic -o output and
 * the usage errors of --vary. */
#include "cli_test.h"

#include <dirent.h>
#include <jansson.h>
#include <string.h>

#define TINY "scenarios/tiny-cnn-v100.ini --set cluster.inter_link=ib-edr"

static void test_csv(void **state) {
  (void)state;
  const char *dir = cli_tmpdir();
  cli_result r = cli_run(dir, "",
                         "sweep " TINY " --vary cluster.nodes=1..8*2 "
                         "--vary parallelism.allreduce=ring,tree");
  assert_rc(r, 0);
  char *lines[32];
  size_t n = cli_lines(r.out, lines, 32);
  assert_int_equal(n, 1 + 4 * 2); /* header + product of the lists */
  char *head[64];
  size_t cols = cli_fields(lines[0], head, 64);
  assert_string_equal(head[0], "cluster.nodes");
  assert_string_equal(head[1], "parallelism.allreduce");
  assert_string_equal(head[2], "iteration_s");
  assert_string_equal(head[cols - 1], "error");
  size_t c_dev = cli_column(head, cols, "devices");
  size_t c_data = cli_column(head, cols, "data");
  size_t c_lb = cli_column(head, cols, "local_batch");
  size_t c_fwd = cli_column(head, cols, "forward_s");
  size_t c_alg = cli_column(head, cols, "allreduce");
  double last_fwd = 1e300;
  for (size_t i = 1; i < n; i++) {
    char *f[64];
    assert_int_equal(cli_fields(lines[i], f, 64), cols);
    long nodes = strtol(f[0], NULL, 10);
    assert_int_equal(nodes, 1L << ((i - 1) / 2)); /* first --vary slowest */
    assert_string_equal(f[1], (i - 1) % 2 ? "tree" : "ring");
    assert_string_equal(f[c_alg], f[1]);
    /* 4 devices per node; data = 0 derives the degree from them. */
    assert_int_equal(strtol(f[c_dev], NULL, 10), 4 * nodes);
    assert_int_equal(strtol(f[c_data], NULL, 10), 4 * nodes);
    assert_int_equal(strtol(f[c_lb], NULL, 10), 256 / (4 * nodes));
    assert_string_equal(f[cols - 1], "");
    /* More devices never make the per-device forward pass slower. */
    double fwd = strtod(f[c_fwd], NULL);
    if ((i - 1) % 2 == 0) {
      assert_true(fwd <= last_fwd * (1 + 1e-12));
      last_fwd = fwd;
    }
  }
  dnn_free(lines[0]);
  assert_contains(r.err, ""); /* no failures reported */
  assert_null(strstr(r.err, "failed"));
  cli_result_free(&r);
  cli_rmdir(dir);
}

static void test_error_rows(void **state) {
  (void)state;
  const char *dir = cli_tmpdir();
  /* 8 devices: batch 100 does not divide, 256 does. */
  cli_result r = cli_run(dir, "",
                         "sweep " TINY " --set cluster.nodes=2 "
                         "--vary model.batch=256,100");
  assert_rc(r, 0);
  char *lines[8];
  assert_int_equal(cli_lines(r.out, lines, 8), 3);
  char *f[64];
  size_t cols = cli_fields(lines[0], f, 64);
  size_t ok_cols = cli_fields(lines[1], f, 64);
  assert_int_equal(ok_cols, cols);
  assert_true(strncmp(lines[2], "100,,,", 6) == 0);
  assert_contains(lines[2], "batch");
  dnn_free(lines[0]);
  assert_contains(r.err, "1 configuration failed (see the 'error' column");
  cli_result_free(&r);

  r = cli_run(dir, "",
              "sweep " TINY " --set cluster.nodes=2 --vary model.batch=256,100 "
              "--strict");
  assert_rc(r, 3);
  assert_contains(r.err, "configuration 2 of 2 (batch=100): ");
  cli_result_free(&r);

  /* An explicit data degree stops matching when nodes change. */
  r = cli_run(dir, "",
              "sweep " TINY " --set parallelism.data=4 "
              "--vary cluster.nodes=1,2");
  assert_rc(r, 0);
  assert_int_equal(cli_lines(r.out, lines, 8), 3);
  assert_contains(lines[2], "parallelism");
  assert_true(lines[1][strlen(lines[1]) - 1] == ',');
  dnn_free(lines[0]);
  cli_result_free(&r);
  cli_rmdir(dir);
}

static void test_json_lines(void **state) {
  (void)state;
  const char *dir = cli_tmpdir();
  cli_result r = cli_run(dir, "",
                         "sweep " TINY " --set cluster.nodes=2 -f json "
                         "--vary model.batch=256,100 "
                         "--vary parallelism.overlap=on,off");
  assert_rc(r, 0);
  char *lines[8];
  assert_int_equal(cli_lines(r.out, lines, 8), 4);
  for (size_t i = 0; i < 4; i++) {
    json_error_t je;
    json_t *j = json_loads(lines[i], 0, &je);
    if (j == NULL)
      fail_msg("line %zu: %s: %s", i, je.text, lines[i]);
    json_t *batch = json_object_get(j, "model.batch");
    json_t *overlap = json_object_get(j, "parallelism.overlap");
    assert_true(json_is_integer(batch));
    assert_int_equal(json_integer_value(batch), i < 2 ? 256 : 100);
    assert_true(json_is_boolean(overlap));
    assert_int_equal(json_is_true(overlap), i % 2 == 0);
    if (i < 2) {
      assert_true(json_number_value(json_object_get(j, "iteration_s")) > 0);
      assert_non_null(json_object_get(j, "breakdown"));
      assert_null(json_object_get(j, "error"));
    } else {
      assert_contains(json_string_value(json_object_get(j, "error")), "batch");
      assert_null(json_object_get(j, "iteration_s"));
    }
    json_decref(j);
  }
  dnn_free(lines[0]);
  assert_contains(r.err, "see the 'error' field");
  cli_result_free(&r);
  cli_rmdir(dir);
}

static void test_output_file(void **state) {
  (void)state;
  const char *dir = cli_tmpdir();
  char path[256];
  snprintf(path, sizeof path, "%s/sweep.csv", dir);
  cli_result r = cli_run(dir, "",
                         "sweep scenarios/default.ini "
                         "--vary cluster.nodes=1..16*2 -o '%s'",
                         path);
  assert_rc(r, 0);
  assert_string_equal(r.out, "");
  assert_contains(r.err, "wrote ");
  char *text = cli_slurp(path);
  char *lines[16];
  assert_int_equal(cli_lines(text, lines, 16), 6);
  assert_true(strncmp(lines[0], "cluster.nodes,iteration_s,", 26) == 0);
  assert_true(strncmp(lines[5], "16,", 3) == 0);
  dnn_free(lines[0]);
  dnn_free(text);
  cli_result_free(&r);
  /* A failing sweep leaves no file (and no temporary) behind. */
  snprintf(path, sizeof path, "%s/strict.csv", dir);
  r = cli_run(dir, "",
              "sweep scenarios/default.ini --vary model.batch=1000,1024 "
              "--strict -o '%s'",
              path);
  assert_rc(r, 3);
  assert_int_equal(cli_file_size(path), -1);
  cli_result_free(&r);
  DIR *d = opendir(dir);
  assert_non_null(d);
  for (struct dirent *de; (de = readdir(d)) != NULL;)
    if (strstr(de->d_name, ".tmp."))
      fail_msg("temporary file left: %s", de->d_name);
  closedir(d);
  cli_rmdir(dir);
}

static void test_usage_errors(void **state) {
  (void)state;
  const char *dir = cli_tmpdir();
  const struct {
    const char *args;
    int rc;
    const char *needle;
  } cases[] = {
      {"sweep scenarios/default.ini", 2, "at least one --vary"},
      {"sweep --vary cluster.nodes=1,2", 2, "a scenario file is required"},
      {"sweep scenarios/default.ini --vary clster.nodes=1,2", 2,
       "unknown key 'clster.nodes' (did you mean cluster.nodes?)"},
      {"sweep scenarios/default.ini --vary cluster.nodes=4..1", 2,
       "start 4 is above end 1"},
      {"sweep scenarios/default.ini --vary cluster.nodes=1..8*1", 2,
       "factor must be above 1"},
      {"sweep scenarios/default.ini --vary cluster.nodes", 2,
       "expected section.key=v1,v2"},
      {"sweep scenarios/default.ini --vary", 2, "--vary needs a value"},
      {"sweep scenarios/default.ini --vary cluster.nodes=1 "
       "--vary cluster.nodes=2",
       2, "given twice"},
      {"sweep scenarios/default.ini --vary cluster.nodes=1 --bogus", 2,
       "unknown option '--bogus'"},
      {"sweep scenarios/default.ini --vary cluster.nodes=1 -f yaml", 2,
       "--format must be"},
      {"sweep scenarios/nonexistent.ini --vary cluster.nodes=1", 1,
       "scenarios/nonexistent.ini"},
      {"sweep scenarios/default.ini --vary cluster.nodes=1 -o /nonexistent/x",
       1, "/nonexistent/x"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cli_result r = cli_run(dir, "", "%s", cases[i].args);
    if (r.rc != cases[i].rc)
      fail_msg("%s: exit %d, expected %d: %s", cases[i].args, r.rc, cases[i].rc,
               r.err);
    assert_contains(r.err, cases[i].needle);
    cli_result_free(&r);
  }
  cli_result r = cli_run(dir, "", "sweep --help");
  assert_rc(r, 0);
  assert_contains(r.out, "A..B*F");
  cli_result_free(&r);
  r = cli_run(dir, "", "--help");
  assert_contains(r.out, "sweep");
  assert_contains(r.out, "plot");
  cli_result_free(&r);
  cli_rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_csv),          cmocka_unit_test(test_error_rows),
      cmocka_unit_test(test_json_lines),   cmocka_unit_test(test_output_file),
      cmocka_unit_test(test_usage_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
