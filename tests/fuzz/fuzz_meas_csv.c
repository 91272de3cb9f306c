/*
 * Fuzz target: the raw measurement CSV readers of measure/
 * (dnn_meas_coll_csv_read and dnn_meas_kernel_csv_read, measure.h).
 *
 * The first byte picks the reader (even: collectives, odd: kernels); the
 * rest is written to a file and read. A table that reads is written,
 * read back (same row count) and written again (the same bytes).
 */
#include "fuzz.h"

#include "dnnsim/measure.h"

static void coll(const char *path) {
  dnn_meas_coll_table *t = NULL, *u = NULL;
  dnn_error e;
  dnn_error_clear(&e);
  if (dnn_meas_coll_table_alloc(&t, &e) || dnn_meas_coll_table_alloc(&u, &e))
    abort();
  dnn_status st = dnn_meas_coll_csv_read(path, t, &e);
  fuzz_check_error(st, &e);
  if (st == DNN_OK) {
    char p1[PATH_MAX + 64], p2[PATH_MAX + 64];
    snprintf(p1, sizeof p1, "%s", fuzz_path("c1.csv"));
    snprintf(p2, sizeof p2, "%s", fuzz_path("c2.csv"));
    st = dnn_meas_coll_csv_write(p1, t, NULL, &e);
    FUZZ_CHECK(st == DNN_OK, "a table that read does not write: %s", e.msg);
    st = dnn_meas_coll_csv_read(p1, u, &e);
    FUZZ_CHECK(st == DNN_OK, "a written table does not read: %s", e.msg);
    FUZZ_CHECK(dnn_meas_coll_table_count(t) == dnn_meas_coll_table_count(u),
               "rows %zu != %zu", dnn_meas_coll_table_count(t),
               dnn_meas_coll_table_count(u));
    st = dnn_meas_coll_csv_write(p2, u, NULL, &e);
    FUZZ_CHECK(st == DNN_OK, "writing again: %s", e.msg);
    char *a = fuzz_slurp(p1), *b = fuzz_slurp(p2);
    FUZZ_CHECK(a && b && strcmp(a, b) == 0, "CSV changed:\n%s\n---\n%s",
               a ? a : "", b ? b : "");
    free(a);
    free(b);
  }
  dnn_meas_coll_table_free(t);
  dnn_meas_coll_table_free(u);
}

static void kernel(const char *path) {
  dnn_meas_kernel_table *t = NULL, *u = NULL;
  dnn_error e;
  dnn_error_clear(&e);
  if (dnn_meas_kernel_table_alloc(&t, &e) ||
      dnn_meas_kernel_table_alloc(&u, &e))
    abort();
  dnn_status st = dnn_meas_kernel_csv_read(path, t, &e);
  fuzz_check_error(st, &e);
  if (st == DNN_OK) {
    char p1[PATH_MAX + 64], p2[PATH_MAX + 64];
    snprintf(p1, sizeof p1, "%s", fuzz_path("k1.csv"));
    snprintf(p2, sizeof p2, "%s", fuzz_path("k2.csv"));
    st = dnn_meas_kernel_csv_write(p1, t, NULL, &e);
    FUZZ_CHECK(st == DNN_OK, "a table that read does not write: %s", e.msg);
    st = dnn_meas_kernel_csv_read(p1, u, &e);
    FUZZ_CHECK(st == DNN_OK, "a written table does not read: %s", e.msg);
    FUZZ_CHECK(dnn_meas_kernel_table_count(t) == dnn_meas_kernel_table_count(u),
               "rows %zu != %zu", dnn_meas_kernel_table_count(t),
               dnn_meas_kernel_table_count(u));
    st = dnn_meas_kernel_csv_write(p2, u, NULL, &e);
    FUZZ_CHECK(st == DNN_OK, "writing again: %s", e.msg);
    char *a = fuzz_slurp(p1), *b = fuzz_slurp(p2);
    FUZZ_CHECK(a && b && strcmp(a, b) == 0, "CSV changed:\n%s\n---\n%s",
               a ? a : "", b ? b : "");
    free(a);
    free(b);
  }
  dnn_meas_kernel_table_free(t);
  dnn_meas_kernel_table_free(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0 || size > FUZZ_MAX_INPUT)
    return 0;
  char path[PATH_MAX + 64];
  fuzz_write("in.csv", data + 1, size - 1, path, sizeof path);
  if (data[0] % 2 == 0)
    coll(path);
  else
    kernel(path);
  return 0;
}
