/*
 * A stand-in for libFuzzer's driver when the fuzz targets are built with
 * an ordinary compiler: runs LLVMFuzzerTestOneInput once on every file
 * named on the command line (a directory: on each regular file in it, in
 * name order). This is how the regression inputs of tests/fuzz/
 * regressions/ and the seed corpora run under `make test`,
 * `make test-sanitize` and valgrind; an oracle failure aborts with the
 * file's name printed just before.
 */
#include "fuzz.h"

static int run_file(const char *path) {
  FILE *fp = fopen(path, "rb");
  if (fp == NULL) {
    perror(path);
    return 1;
  }
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0, k;
  uint8_t chunk[4096];
  while ((k = fread(chunk, 1, sizeof chunk, fp)) > 0) {
    if (len + k > cap) {
      cap = 2 * (len + k);
      buf = realloc(buf, cap);
      if (buf == NULL)
        abort();
    }
    memcpy(buf + len, chunk, k);
    len += k;
  }
  fclose(fp);
  fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
  /* libFuzzer hands a copy the target may not keep; so does this. */
  uint8_t *copy = malloc(len ? len : 1);
  if (copy == NULL)
    abort();
  if (len)
    memcpy(copy, buf, len);
  free(buf);
  LLVMFuzzerTestOneInput(copy, len);
  free(copy);
  return 0;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir, size_t *count) {
  DIR *d = opendir(dir);
  if (d == NULL) {
    perror(dir);
    return 1;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.')
      continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      names = realloc(names, cap * sizeof *names);
      if (names == NULL)
        abort();
    }
    names[n] = strdup(de->d_name);
    if (names[n] == NULL)
      abort();
    n++;
  }
  closedir(d);
  if (n)
    qsort(names, n, sizeof *names, cmp_names);
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    char p[PATH_MAX + 256];
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    struct stat sb;
    if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode)) {
      rc |= run_file(p);
      (*count)++;
    }
    free(names[i]);
  }
  free(names);
  return rc;
}

int main(int argc, char **argv) {
  int rc = 0;
  size_t count = 0;
  for (int i = 1; i < argc; i++) {
    struct stat sb;
    if (stat(argv[i], &sb) != 0) {
      perror(argv[i]);
      rc = 1;
    } else if (S_ISDIR(sb.st_mode)) {
      rc |= run_dir(argv[i], &count);
    } else {
      rc |= run_file(argv[i]);
      count++;
    }
  }
  fprintf(stderr, "replay: %zu inputs, %s\n", count, rc ? "FAILED" : "ok");
  return rc;
}
