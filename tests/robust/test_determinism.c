/*
 * Determinism of the command's output: the same inputs give byte-identical
 * stdout, stderr and exit codes on every run, for `predict` on every
 * shipped scenario and `describe` on every zoo network and the shipped
 * network file, in every format, and for the listings. Also run from
 * another directory with an absolute path, the scenario's own numbers
 * must come out the same (only the echoed path differs).
 */
#include "test_util.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_run.h"
#include "dnnsim/model.h"

#define RUNS 2

static const char *const formats[] = {"table", "csv", "json"};

/* Runs argv RUNS times; every run must match the first. Returns the first
 * run's result (the caller frees it). */
static cli_result same_every_run(const char *const *argv, const char *cwd) {
  cli_result first = cli_run(argv, cwd);
  for (int k = 1; k < RUNS; k++) {
    cli_result r = cli_run(argv, cwd);
    if (r.code != first.code || strcmp(r.out, first.out) != 0 ||
        strcmp(r.err, first.err) != 0)
      fail_msg("%s %s %s: run %d differs from run 1", argv[1], argv[2],
               argv[3] ? argv[3] : "", k + 1);
    cli_result_free(&r);
  }
  assert_true(strstr(first.err, "Sanitizer") == NULL);
  return first;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_predict_every_scenario(void **state) {
  (void)state;
  const char *dir = DNNSIM_SOURCE_DIR "/scenarios";
  DIR *d = opendir(dir);
  assert_non_null(d);
  char *names[256];
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL && n < 256) {
    size_t len = strlen(de->d_name);
    if (len > 4 && strcmp(de->d_name + len - 4, ".ini") == 0 &&
        strcmp(de->d_name, "links.ini") != 0)
      names[n++] = strdup(de->d_name);
  }
  closedir(d);
  qsort(names, n, sizeof *names, cmp_str);
  assert_true(n >= 5);
  for (size_t i = 0; i < n; i++) {
    for (size_t f = 0; f < 3; f++) {
      const char *argv[] = {"dnnsim",   "predict",  names[i],
                            "--format", formats[f], NULL};
      cli_result r = same_every_run(argv, dir);
      if (r.code != 0)
        fail_msg("predict %s failed (%d): %s", names[i], r.code, r.err);
      if (f == 2)
        assert_true(strstr(r.out, "nan") == NULL &&
                    strstr(r.out, "inf") == NULL);
      /* From elsewhere, by absolute path: the same numbers. */
      if (f == 1) {
        char abs[512];
        snprintf(abs, sizeof abs, "%s/%s", dir, names[i]);
        const char *argv2[] = {"dnnsim", "predict", abs, "-f", "csv", NULL};
        cli_result r2 = cli_run(argv2, "/");
        assert_int_equal(r2.code, 0);
        assert_string_equal(r2.out, r.out);
        cli_result_free(&r2);
      }
      cli_result_free(&r);
    }
    free(names[i]);
  }
}

static void test_describe_every_network(void **state) {
  (void)state;
  size_t n;
  const dnn_zoo_entry *zoo = dnn_zoo_list(&n);
  for (size_t i = 0; i <= n; i++) {
    const char *net = i < n ? zoo[i].name
                            : DNNSIM_SOURCE_DIR
                          "/scenarios/networks/tiny-cnn.ini";
    for (size_t f = 0; f < 3; f++) {
      const char *argv[] = {"dnnsim",         "describe", net,    "--format",
                            formats[f],       "--batch",  "7",    "--profile",
                            "a100-sxm4-80gb", "--dtype",  "bf16", NULL};
      cli_result r = same_every_run(argv, NULL);
      if (r.code != 0)
        fail_msg("describe %s failed (%d): %s", net, r.code, r.err);
      cli_result_free(&r);
    }
  }
}

static void test_listings(void **state) {
  (void)state;
  static const char *const cmds[][4] = {{"models"},
                                        {"profiles"},
                                        {"links"},
                                        {"keys"},
                                        {"keys", "--format", "json"},
                                        {"keys", "--format", "markdown"},
                                        {"errors"},
                                        {"errors", "--format", "markdown"},
                                        {"--help"}};
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
    const char *argv[6] = {"dnnsim",   cmds[i][0], cmds[i][1],
                           cmds[i][2], cmds[i][3], NULL};
    cli_result r = same_every_run(argv, NULL);
    if (r.code != 0)
      fail_msg("%s failed (%d): %s", cmds[i][0], r.code, r.err);
    assert_true(strlen(r.out) > 10);
    cli_result_free(&r);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_predict_every_scenario),
      cmocka_unit_test(test_describe_every_network),
      cmocka_unit_test(test_listings),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
