/*
 * Helpers of the CLI tests: run `dnnsim ARGS` from the source directory
 * (so scenarios/... paths work) with its standard output and error captured
 * in files of a scratch directory, and small text utilities.
 */
#ifndef DNNSIM_TEST_CLI_H
#define DNNSIM_TEST_CLI_H

#include "test_util.h"

#include <stdarg.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct cli_result {
  int rc;    /* exit code (-1 if it did not exit normally) */
  char *out; /* standard output (dnn_free) */
  char *err; /* standard error (dnn_free) */
} cli_result;

/* A fresh directory under /tmp (static buffer). */
static inline const char *cli_tmpdir(void) {
  static char dir[64];
  snprintf(dir, sizeof dir, "/tmp/dnnsim-cli-XXXXXX");
  if (mkdtemp(dir) == NULL)
    fail_msg("mkdtemp failed");
  return dir;
}

static inline char *cli_slurp(const char *path) {
  char *text = NULL;
  dnn_error e;
  if (dnn_file_read_all(path, &text, NULL, &e))
    fail_msg("%s", e.msg);
  return text;
}

/*
 * Runs "ENV DNNSIM ARGS" (env may be "") with `dir` holding the captured
 * output. ARGS is a printf format.
 */
static inline cli_result cli_run(const char *dir, const char *env,
                                 const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static inline cli_result cli_run(const char *dir, const char *env,
                                 const char *fmt, ...) {
  char args[2048], cmd[4096], out[512], err[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  snprintf(out, sizeof out, "%s/stdout.txt", dir);
  snprintf(err, sizeof err, "%s/stderr.txt", dir);
  snprintf(cmd, sizeof cmd, "cd '%s' && %s '%s' %s >'%s' 2>'%s'",
           DNNSIM_SOURCE_DIR, env, DNNSIM_CLI, args, out, err);
  int status = system(cmd);
  cli_result r;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = cli_slurp(out);
  r.err = cli_slurp(err);
  return r;
}

static inline void cli_result_free(cli_result *r) {
  dnn_free(r->out);
  dnn_free(r->err);
}

/* Fails unless the exit code is `rc`, printing both streams. */
#define assert_rc(r, want)                                                     \
  do {                                                                         \
    if ((r).rc != (want))                                                      \
      fail_msg("exit code %d, expected %d\nstdout: %s\nstderr: %s", (r).rc,    \
               (want), (r).out, (r).err);                                      \
  } while (0)

/* Lines of `text` into `lines` (pointers into a copy the caller frees with
 * dnn_free(lines[0]) when n > 0). Returns the count. */
static inline size_t cli_lines(const char *text, char **lines, size_t max) {
  char *copy = dnn_strdup(text);
  size_t n = 0;
  for (char *p = copy; p && *p && n < max;) {
    char *e = strchr(p, '\n');
    if (e)
      *e = '\0';
    lines[n++] = p;
    p = e ? e + 1 : NULL;
  }
  if (n == 0)
    dnn_free(copy);
  return n;
}

/* Splits a CSV line without quoted fields in place; returns the count. */
static inline size_t cli_fields(char *line, char **fields, size_t max) {
  size_t n = 0;
  for (char *p = line; n < max;) {
    fields[n++] = p;
    char *c = strchr(p, ',');
    if (c == NULL)
      break;
    *c = '\0';
    p = c + 1;
  }
  return n;
}

/* The index of column `name` in the header fields, or fails. */
static inline size_t cli_column(char **fields, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(fields[i], name) == 0)
      return i;
  fail_msg("no column %s", name);
  return 0;
}

static inline long cli_file_size(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

static inline bool cli_have_gnuplot(void) {
  return system("command -v gnuplot >/dev/null 2>&1") == 0;
}

static inline void cli_rmdir(const char *dir) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    print_message("could not remove %s\n", dir);
}

#endif /* DNNSIM_TEST_CLI_H */
