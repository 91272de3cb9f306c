/*
 * Helpers of the plots/ tests: a scratch directory, reading back the data
 * file's numeric rows, and finding gnuplot (tests may read PATH; the
 * library may not).
 */
#ifndef DNNSIM_TEST_PLOT_H
#define DNNSIM_TEST_PLOT_H

#include "test_util.h"

#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dnnsim/plot.h"

/* A fresh directory under /tmp (static buffer). */
static inline const char *test_tmpdir(void) {
  static char dir[64];
  snprintf(dir, sizeof dir, "/tmp/dnnsim-plot-XXXXXX");
  if (mkdtemp(dir) == NULL)
    fail_msg("mkdtemp failed");
  return dir;
}

/* dir/name in a static buffer (one of four, for nested use). */
static inline const char *test_join(const char *dir, const char *name) {
  static char buf[4][512];
  static int next;
  char *b = buf[next++ % 4];
  snprintf(b, sizeof buf[0], "%s/%s", dir, name);
  return b;
}

/* The whole file (free with dnn_free); fails the test when unreadable. */
static inline char *test_read(const char *path) {
  /* The text comes back through a heap cell rather than a local variable:
   * gcc 12 at -O2 otherwise mistakes pointers into the text for pointers
   * to the local (-Wdangling-pointer). */
  char **cell = malloc(sizeof *cell);
  assert_non_null(cell);
  dnn_error e;
  assert_ok(dnn_file_read_all(path, cell, NULL, &e), &e);
  char *text = *cell;
  free(cell);
  return text;
}

static inline void test_write(const char *path, const char *text) {
  dnn_error e;
  assert_ok(dnn_file_write_atomic(path, text, strlen(text), &e), &e);
}

/*
 * Numbers of the data rows of a .dat file: up to `max_cols` leading numeric
 * columns of each non-comment, non-blank line, row-major into `out` (at
 * most max_rows rows). Returns the row count.
 */
static inline size_t test_dat_rows(const char *text, double *out,
                                   size_t max_rows, size_t max_cols) {
  size_t rows = 0;
  for (const char *p = text; *p && rows < max_rows;) {
    const char *e = strchr(p, '\n');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len && p[0] != '#') {
      const char *q = p;
      for (size_t c = 0; c < max_cols; c++) {
        char *stop;
        out[rows * max_cols + c] = strtod(q, &stop);
        if (stop == q)
          out[rows * max_cols + c] = NAN;
        q = stop;
      }
      rows++;
    }
    p += len + (e != NULL);
  }
  return rows;
}

/* gnuplot on PATH into buf, or NULL. */
static inline const char *test_gnuplot(char *buf, size_t n) {
  const char *path = getenv("PATH");
  for (const char *p = path ? path : ""; p && *p;) {
    const char *e = strchr(p, ':');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    snprintf(buf, n, "%.*s/gnuplot", (int)len, p);
    if (access(buf, X_OK) == 0)
      return buf;
    p = e ? e + 1 : NULL;
  }
  return NULL;
}

/* Size of a file in bytes (-1 when missing). */
static inline long test_file_size(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* Removes a scratch directory's files (one level) and the directory. */
static inline void test_rmdir(const char *dir) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    print_message("could not remove %s\n", dir);
}

#endif /* DNNSIM_TEST_PLOT_H */
