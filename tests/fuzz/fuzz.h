/*
 * Shared pieces of the fuzz targets (tests/fuzz/fuzz_*.c): the input as a
 * NUL-terminated string, a private temporary directory, the paths a fuzzed
 * scenario may read, and the oracles every target applies to what the
 * library returns.
 *
 * Invariant: a target never aborts on an input the library rejects; it
 * aborts (through FUZZ_CHECK) only when the library breaks a promise of its
 * headers: an error without a one-line message, a status outside the list,
 * a prediction or cost that is negative, NaN or infinite, a shape whose
 * element count wrapped around, a save/load round trip that changes
 * something. libFuzzer and the replay driver (replay.c) report the abort
 * with the input that caused it.
 */
#ifndef DNNSIM_TESTS_FUZZ_H
#define DNNSIM_TESTS_FUZZ_H

#include <dirent.h>
#include <limits.h>
#include <stdbool.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dnnsim/core.h"
#include "dnnsim/model.h"

/* Inputs larger than this are skipped: parsers are line-oriented, and long
 * inputs only slow the search down (the line-length limit is tested with
 * inputs below it). */
#define FUZZ_MAX_INPUT (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts with a message naming the broken promise. */
#define FUZZ_CHECK(cond, ...)                                                  \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz oracle failed at %s:%d: %s: ", __FILE__, __LINE__, \
              #cond);                                                          \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
      abort();                                                                 \
    }                                                                          \
  } while (0)

/* The input as a NUL-terminated string (text after a NUL byte is cut off,
 * as any C string API would see it). Free with free(). */
static inline char *fuzz_text(const uint8_t *data, size_t size) {
  char *t = malloc(size + 1);
  if (t == NULL)
    abort();
  if (size)
    memcpy(t, data, size);
  t[size] = '\0';
  return t;
}

/* A failure must come with a status from the list and a one-line message. */
static inline void fuzz_check_error(dnn_status st, const dnn_error *e) {
  if (st == DNN_OK)
    return;
  FUZZ_CHECK((unsigned)st < (unsigned)DNN_STATUS_COUNT_, "status %d", (int)st);
  FUZZ_CHECK(e->code == st, "err.code %d != status %d", (int)e->code, (int)st);
  FUZZ_CHECK(e->msg[0] != '\0', "empty message for %s", dnn_status_name(st));
  FUZZ_CHECK(strchr(e->msg, '\n') == NULL, "multi-line message: %s", e->msg);
}

/* A quantity the model computes: finite and not negative. */
#define FUZZ_CHECK_QTY(x, what)                                                \
  FUZZ_CHECK(isfinite(x) && (x) >= 0, "%s = %g", (what), (double)(x))

/* ---- Files ----------------------------------------------------------- */

static char fuzz_dir_buf[PATH_MAX];

static inline void fuzz_dir_cleanup(void) {
  DIR *d = opendir(fuzz_dir_buf);
  if (d == NULL)
    return;
  struct dirent *de;
  char p[PATH_MAX + 256];
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    snprintf(p, sizeof p, "%s/%s", fuzz_dir_buf, de->d_name);
    remove(p);
  }
  closedir(d);
  rmdir(fuzz_dir_buf);
}

/* A private temporary directory, created on first use and removed when
 * the process exits normally. */
static inline const char *fuzz_dir(void) {
  if (fuzz_dir_buf[0] == '\0') {
    const char *tmp = getenv("TMPDIR");
    snprintf(fuzz_dir_buf, sizeof fuzz_dir_buf, "%s/dnnsim-fuzz-XXXXXX",
             tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(fuzz_dir_buf) == NULL) {
      perror("mkdtemp");
      abort();
    }
    atexit(fuzz_dir_cleanup);
  }
  return fuzz_dir_buf;
}

/* The path of `name` in the private directory (static buffer). */
static inline const char *fuzz_path(const char *name) {
  static char p[PATH_MAX + 64];
  snprintf(p, sizeof p, "%s/%s", fuzz_dir(), name);
  return p;
}

/* Writes `len` bytes to `name` in the private directory; returns its path
 * in `out` (n bytes). */
static inline void fuzz_write(const char *name, const void *data, size_t len,
                              char *out, size_t n) {
  snprintf(out, n, "%s", fuzz_path(name));
  FILE *fp = fopen(out, "wb");
  if (fp == NULL || (len && fwrite(data, 1, len, fp) != len)) {
    perror(out);
    abort();
  }
  fclose(fp);
}

/* Reads a whole file written by the library (for byte comparisons). */
static inline char *fuzz_slurp(const char *path) {
  FILE *fp = fopen(path, "rb");
  if (fp == NULL)
    return NULL;
  char *buf = NULL;
  size_t len = 0, cap = 0, k;
  char chunk[4096];
  while ((k = fread(chunk, 1, sizeof chunk, fp)) > 0) {
    if (len + k + 1 > cap) {
      cap = 2 * (len + k + 1);
      buf = realloc(buf, cap);
      if (buf == NULL)
        abort();
    }
    memcpy(buf + len, chunk, k);
    len += k;
  }
  fclose(fp);
  if (buf == NULL)
    buf = calloc(1, 1);
  else
    buf[len] = '\0';
  return buf;
}

/* The source tree's scenarios/ directory, resolved (static buffer). */
static inline const char *fuzz_scenarios_dir(void) {
  static char dir[PATH_MAX];
  if (dir[0] == '\0') {
    char *r = realpath(DNNSIM_SOURCE_DIR "/scenarios", NULL);
    if (r == NULL) {
      perror(DNNSIM_SOURCE_DIR "/scenarios");
      abort();
    }
    snprintf(dir, sizeof dir, "%s", r);
    free(r);
  }
  return dir;
}

/*
 * Whether a fuzzed scenario may read `path`: a regular file under the
 * source tree's scenarios/. Anything else (a FIFO, /dev/stdin, the whole
 * disk) would make runs depend on the machine or block, so such inputs are
 * skipped rather than fuzzed; the file parsers have their own targets.
 */
static inline bool fuzz_path_allowed(const char *path) {
  char *r = realpath(path, NULL);
  if (r == NULL)
    return false;
  const char *dir = fuzz_scenarios_dir();
  size_t n = strlen(dir);
  struct stat sb;
  bool ok = strncmp(r, dir, n) == 0 && r[n] == '/' && stat(r, &sb) == 0 &&
            S_ISREG(sb.st_mode);
  free(r);
  return ok;
}

/* ---- Oracles on networks ------------------------------------------------ */

/*
 * Every shape's element count must be the true product of its dimensions
 * (no size_t wrap-around), every cost of every pass and convolution
 * algorithm finite and not negative, for a small and a very large batch.
 */
static inline void fuzz_check_net(const dnn_net *net) {
  size_t n = dnn_net_layer_count(net);
  for (size_t i = 0; i < n; i++) {
    const dnn_layer *l = dnn_net_layer(net, i);
    size_t idx = SIZE_MAX;
    FUZZ_CHECK(dnn_net_find(net, l->name, &idx) == DNN_OK && idx == i,
               "layer '%s' not found at %zu", l->name, i);
    const dnn_shape *shapes[2] = {&l->in, &l->out};
    for (size_t s = 0; s < 2; s++) {
      const dnn_shape *sh = shapes[s];
      if (sh->rank == 0)
        continue;
      FUZZ_CHECK(sh->rank <= DNN_SHAPE_MAX_RANK, "rank %zu", sh->rank);
      long double prod = 1;
      for (size_t d = 0; d < sh->rank; d++)
        prod *= (long double)sh->dim[d];
      FUZZ_CHECK(prod <= (long double)SIZE_MAX &&
                     (long double)dnn_shape_elems(sh) == prod,
                 "layer '%s': elements of a rank-%zu shape wrapped (%zu)",
                 l->name, sh->rank, dnn_shape_elems(sh));
    }
    char sig[512];
    dnn_layer_signature(net, i, sig, sizeof sig);
    FUZZ_CHECK(strlen(sig) < sizeof sig, "signature");
    static const size_t batches[] = {1, 7, 1000000000000};
    for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
      for (int p = 0; p < DNN_PASS_COUNT; p++) {
        dnn_cost c;
        dnn_layer_cost(net, i, (dnn_pass)p, batches[b], DNN_DTYPE_FP16, &c);
        FUZZ_CHECK_QTY(c.flops, "flops");
        FUZZ_CHECK_QTY(c.bytes_read, "bytes_read");
        FUZZ_CHECK_QTY(c.bytes_written, "bytes_written");
        FUZZ_CHECK_QTY(c.work, "work");
        FUZZ_CHECK_QTY(c.depth, "depth");
        for (int a = 0; a < DNN_CONV_ALGO_COUNT; a++) {
          dnn_conv_algo_cost ac;
          dnn_conv_algo_cost_get(net, i, (dnn_pass)p, (dnn_conv_algo)a,
                                 batches[b], DNN_DTYPE_FP32, &ac);
          FUZZ_CHECK_QTY(ac.flops, "algo flops");
          FUZZ_CHECK_QTY(ac.bytes_read + ac.bytes_written, "algo bytes");
          FUZZ_CHECK_QTY(ac.workspace_bytes, "algo workspace");
        }
      }
      double act =
          dnn_layer_activation_bytes(net, i, batches[b], DNN_DTYPE_FP32);
      FUZZ_CHECK_QTY(act, "activation bytes");
    }
  }
  dnn_net_totals t;
  dnn_net_totals_get(net, 3, DNN_DTYPE_BF16, &t);
  FUZZ_CHECK(t.layers == n, "totals layers");
  for (int p = 0; p < DNN_PASS_COUNT; p++) {
    FUZZ_CHECK_QTY(t.flops[p], "total flops");
    FUZZ_CHECK_QTY(t.bytes[p], "total bytes");
  }
  FUZZ_CHECK_QTY(t.activation_bytes, "total activation bytes");
  FUZZ_CHECK_QTY(t.fwd_macs_conv_fc, "total MACs");
}

#endif /* DNNSIM_TESTS_FUZZ_H */
