/*
 * Running the built `dnnsim` (DNNSIM_CLI) from a test: its exit code,
 * stdout and stderr, with no shell in between (arguments go to execv as
 * they are). Used by test_bad_inputs.c and test_determinism.c.
 */
#ifndef DNNSIM_TESTS_CLI_RUN_H
#define DNNSIM_TESTS_CLI_RUN_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct cli_result {
  int code;  /* exit code; 128 + signal when killed */
  char *out; /* stdout, NUL-terminated (free with free) */
  char *err; /* stderr */
} cli_result;

static char *cli_slurp_fd(int fd) {
  size_t len = 0, cap = 4096;
  char *buf = malloc(cap);
  if (buf == NULL)
    abort();
  lseek(fd, 0, SEEK_SET);
  ssize_t k;
  while ((k = read(fd, buf + len, cap - len - 1)) > 0) {
    len += (size_t)k;
    if (cap - len < 2) {
      cap *= 2;
      buf = realloc(buf, cap);
      if (buf == NULL)
        abort();
    }
  }
  buf[len] = '\0';
  return buf;
}

/* Runs DNNSIM_CLI with `argv` (NULL-terminated, argv[0] ignored) in
 * directory `cwd` (NULL: the current one). */
static cli_result cli_run(const char *const *argv, const char *cwd) {
  char out_name[] = "/tmp/dnnsim-cli-out-XXXXXX";
  char err_name[] = "/tmp/dnnsim-cli-err-XXXXXX";
  int fo = mkstemp(out_name), fe = mkstemp(err_name);
  if (fo < 0 || fe < 0)
    abort();
  unlink(out_name);
  unlink(err_name);
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    abort();
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0)
      dup2(devnull, 0);
    dup2(fo, 1);
    dup2(fe, 2);
    if (cwd && chdir(cwd) != 0)
      _exit(126);
    char *args[64];
    size_t n = 0;
    args[n++] = (char *)DNNSIM_CLI;
    for (size_t i = 1; argv[i] && n < 63; i++)
      args[n++] = (char *)argv[i];
    args[n] = NULL;
    execv(DNNSIM_CLI, args);
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  cli_result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = cli_slurp_fd(fo);
  r.err = cli_slurp_fd(fe);
  close(fo);
  close(fe);
  return r;
}

static void cli_result_free(cli_result *r) {
  free(r->out);
  free(r->err);
}

#endif /* DNNSIM_TESTS_CLI_RUN_H */
