/* Tests of `dnnsim plot` (cli/cmd_plot.c): the `make run` chart (image,
 * data and script, or exit code 4 with the data and script when gnuplot is
 * missing), --no-render, every chart kind from the command line, and the
 * usage and input errors. */
#include "cli_test.h"

#include <string.h>

static const unsigned char png_magic[] = {0x89, 'P', 'N', 'G'};

/* Checks that `stem`.dat and `stem`.gp exist and are not empty. */
static void expect_data_and_script(const char *dir, const char *stem) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s.dat", dir, stem);
  assert_true(cli_file_size(path) > 50);
  snprintf(path, sizeof path, "%s/%s.gp", dir, stem);
  assert_true(cli_file_size(path) > 500);
}

static void expect_png(const char *path) {
  long size = cli_file_size(path);
  if (size < 5000)
    fail_msg("%s: %ld bytes", path, size);
  FILE *fp = fopen(path, "rb");
  unsigned char head[4] = {0};
  assert_non_null(fp);
  assert_int_equal(fread(head, 1, 4, fp), 4);
  fclose(fp);
  assert_memory_equal(head, png_magic, 4);
}

/* The chart of `make run`. */
static void test_make_run_chart(void **state) {
  (void)state;
  const char *dir = cli_tmpdir();
  cli_result r = cli_run(dir, "",
                         "plot scenarios/default.ini --kind scaling "
                         "--vary cluster.nodes=1..16*2 "
                         "-o '%s/default-scaling.png'",
                         dir);
  expect_data_and_script(dir, "default-scaling");
  char path[512];
  snprintf(path, sizeof path, "%s/default-scaling.dat", dir);
  char *dat = cli_slurp(path);
  char *lines[32];
  size_t n = cli_lines(dat, lines, 32), rows = 0;
  for (size_t i = 0; i < n; i++)
    rows += lines[i][0] != '#' && lines[i][0] != '\0';
  assert_int_equal(rows, 5); /* 8, 16, 32, 64, 128 devices */
  dnn_free(lines[0]);
  dnn_free(dat);
  if (!cli_have_gnuplot()) {
    print_message("gnuplot is not on PATH: checking exit code 4 only\n");
    assert_rc(r, 4);
    assert_contains(r.err, "gnuplot not found on PATH");
  } else {
    assert_rc(r, 0);
    snprintf(path, sizeof path, "%s/default-scaling.png", dir);
    expect_png(path);
    assert_contains(r.out, "wrote ");
    assert_contains(r.out, "default-scaling.png");
    /* The script renders again from another directory. */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd / && rm -f '%s' && gnuplot '%s/%s'", path,
             dir, "default-scaling.gp");
    assert_int_equal(system(cmd), 0);
    expect_png(path);
  }
  cli_result_free(&r);
  cli_rmdir(dir);
}

static void test_missing_gnuplot(void **state) {
  (void)state;
  const char *dir = cli_tmpdir();
  cli_result r = cli_run(dir, "",
                         "plot scenarios/default.ini --vary cluster.nodes=1,2 "
                         "--gnuplot /nonexistent/gnuplot -o '%s/a.png'",
                         dir);
  assert_rc(r, 4);
  assert_contains(r.err, "gnuplot not found at '/nonexistent/gnuplot'");
  expect_data_and_script(dir, "a");
  cli_result_free(&r);
  r = cli_run(dir, "PATH=/nonexistent",
              "plot scenarios/default.ini --vary cluster.nodes=1,2 "
              "-o '%s/b.png'",
              dir);
  assert_rc(r, 4);
  assert_contains(r.err, "gnuplot not found on PATH");
  assert_contains(r.err, "b.gp");
  expect_data_and_script(dir, "b");
  cli_result_free(&r);
  r = cli_run(dir, "",
              "plot scenarios/default.ini --vary cluster.nodes=1,2 "
              "--no-render -o '%s/c.svg'",
              dir);
  assert_rc(r, 0);
  assert_contains(r.out, "render with: gnuplot");
  expect_data_and_script(dir, "c");
  char path[512];
  snprintf(path, sizeof path, "%s/c.svg", dir);
  assert_int_equal(cli_file_size(path), -1);
  cli_result_free(&r);
  cli_rmdir(dir);
}

static void test_kinds(void **state) {
  (void)state;
  const char *dir = cli_tmpdir();
  char path[512];
  snprintf(path, sizeof path, "%s/v.json", dir);
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  fputs("{\"scenario\": \"x/dp2.ini\", \"measured\": {\"iteration_s\": "
        "0.4127}, \"predicted\": {\"iteration_s\": 0.3981}}\n",
        fp);
  fclose(fp);
  snprintf(path, sizeof path, "%s/t.json", dir);
  fp = fopen(path, "w");
  assert_non_null(fp);
  fputs("[{\"ph\": \"X\", \"pid\": 0, \"tid\": 0, \"ts\": 0, \"dur\": 1300, "
        "\"name\": \"forward\"}, {\"ph\": \"X\", \"pid\": 1, \"tid\": 0, "
        "\"ts\": 200, \"dur\": 900, \"name\": \"backward\"}]",
        fp);
  fclose(fp);
  const char *cmds[] = {
      "plot scenarios/default.ini --kind efficiency --vary "
      "cluster.nodes=1..4*2 --series parallelism.allreduce=ring,tree "
      "-o '%s/eff.png'",
      "plot scenarios/default.ini scenarios/resnet50-v100.ini --kind "
      "breakdown --vary cluster.nodes=1,2 -o '%s/bd.png'",
      "plot --kind validation '%s/v.json' -o '%s/val.png'",
      "plot --kind timeline --trace '%s/t.json' -o '%s/tl.png'",
  };
  const char *stems[] = {"eff", "bd", "val", "tl"};
  int want = cli_have_gnuplot() ? 0 : 4;
  for (size_t i = 0; i < 4; i++) {
    cli_result r = cli_run(dir, "", cmds[i], dir, dir);
    assert_rc(r, want);
    expect_data_and_script(dir, stems[i]);
    if (want == 0) {
      snprintf(path, sizeof path, "%s/%s.png", dir, stems[i]);
      expect_png(path);
    }
    cli_result_free(&r);
  }
  snprintf(path, sizeof path, "%s/bd.gp", dir);
  char *gp = cli_slurp(path);
  assert_contains(gp, "newhistogram \"resnet50-v100\"");
  dnn_free(gp);
  cli_rmdir(dir);
}

static void test_errors(void **state) {
  (void)state;
  const char *dir = cli_tmpdir();
  const struct {
    const char *args;
    int rc;
    const char *needle;
  } cases[] = {
      {"plot scenarios/default.ini --vary cluster.nodes=1 --kind scalling", 2,
       "unknown chart kind 'scalling' (did you mean scaling?)"},
      {"plot scenarios/default.ini --vary cluster.nodes=1 -o x.jpg", 2,
       "must end in .png, .svg or .pdf"},
      {"plot scenarios/default.ini", 2, "--kind scaling needs --vary"},
      {"plot scenarios/default.ini --vary clster.nodes=1", 2,
       "did you mean cluster.nodes?"},
      {"plot scenarios/default.ini --vary cluster.nodes=1 "
       "--series parallelism.allreduce=rign",
       2, "--series: --vary parallelism.allreduce=rign: value 'rign'"},
      {"plot scenarios/default.ini --vary cluster.nodes=1 "
       "--series cluster.nodes=1,2",
       2, "both --series and --vary"},
      {"plot --kind timeline", 2, "needs --trace FILE"},
      {"plot --kind validation", 2, "needs result files"},
      {"plot --kind validation scenarios/default.ini --vary cluster.nodes=1", 2,
       "not --vary"},
      {"plot --vary cluster.nodes=1", 2, "a scenario file is required"},
      {"plot scenarios/default.ini --vary cluster.nodes=1 --size 10x10", 2,
       "--size"},
      {"plot scenarios/default.ini --vary model.batch=1000,1001 --no-render "
       "-o /tmp/dnnsim-never.png",
       3, "no valid configuration to plot (all 2 failed)"},
      {"plot --kind validation scenarios/default.ini --no-render -o "
       "/tmp/dnnsim-never.png",
       3, "scenarios/default.ini:"},
      {"plot --kind timeline --trace /nonexistent.json -o /tmp/x.png", 1,
       "/nonexistent.json: cannot open"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cli_result r = cli_run(dir, "", "%s", cases[i].args);
    if (r.rc != cases[i].rc)
      fail_msg("%s: exit %d, expected %d: %s", cases[i].args, r.rc, cases[i].rc,
               r.err);
    assert_contains(r.err, cases[i].needle);
    cli_result_free(&r);
  }
  /* Skipped configurations are reported on stderr. */
  cli_result r = cli_run(dir, "",
                         "plot scenarios/default.ini --vary "
                         "model.batch=1024,1000 --kind breakdown --no-render "
                         "-o '%s/skip.png'",
                         dir);
  assert_rc(r, 0);
  assert_contains(r.err, "skipped scenarios/default.ini batch=1000: ");
  cli_result_free(&r);
  r = cli_run(dir, "", "plot --help");
  assert_rc(r, 0);
  assert_contains(r.out, "--kind");
  cli_result_free(&r);
  cli_rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_make_run_chart),
      cmocka_unit_test(test_missing_gnuplot),
      cmocka_unit_test(test_kinds),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
