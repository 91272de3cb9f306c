/* Tests of measure/csv.c: tables, CSV round trips and the file:line errors
 * of bad rows. */
#include "test_util.h"

#include <math.h>
#include <unistd.h>

#include "dnnsim/measure.h"

static dnn_meas_stats stats(double median) {
  dnn_meas_stats s;
  memset(&s, 0, sizeof s);
  s.samples = 12;
  s.runs = 37;
  s.min_s = median * 0.97;
  s.median_s = median;
  s.max_s = median * 1.31;
  s.mean_s = median * 1.02;
  s.ci_lo_s = median * 0.99;
  s.ci_hi_s = median * 1.04;
  s.confidence = 0.9614;
  s.converged = true;
  return s;
}

static dnn_meas_coll_row coll_row(dnn_comm_op op, const char *algo,
                                  size_t ranks, size_t size, double t) {
  dnn_meas_coll_row r;
  memset(&r, 0, sizeof r);
  r.op = op;
  snprintf(r.algorithm, sizeof r.algorithm, "%s", algo);
  r.mpi_id = 4;
  r.model = DNN_COMM_ALGO_RING;
  r.ranks = ranks;
  r.size_bytes = size;
  r.count = size / 4;
  r.t = stats(t);
  r.algbw_GBps = (double)size / t / 1e9;
  r.busbw_GBps = r.algbw_GBps * dnn_meas_busbw_factor(op, ranks);
  return r;
}

static const char *tmp_path(const char *name) {
  static char buf[256];
  snprintf(buf, sizeof buf, "%s/test_csv_%d_%s", DNNSIM_BINARY_DIR,
           (int)getpid(), name);
  return buf;
}

static void write_file(const char *path, const char *text) {
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  fputs(text, fp);
  fclose(fp);
}

static void test_busbw(void **state) {
  (void)state;
  assert_close(dnn_meas_busbw_factor(DNN_COMM_ALLREDUCE, 4), 1.5, 1e-12);
  assert_close(dnn_meas_busbw_factor(DNN_COMM_ALLGATHER, 4), 0.75, 1e-12);
  assert_close(dnn_meas_busbw_factor(DNN_COMM_BROADCAST, 4), 1, 1e-12);
  assert_close(dnn_meas_busbw_factor(DNN_COMM_REDUCE_SCATTER, 3), 2.0 / 3,
               1e-12);
}

static void test_coll_round_trip(void **state) {
  (void)state;
  dnn_meas_coll_table *t = NULL, *u = NULL;
  dnn_error e;
  assert_ok(dnn_meas_coll_table_alloc(&t, &e), &e);
  dnn_meas_coll_row a =
      coll_row(DNN_COMM_ALLREDUCE, "ring", 4, 65536, 3.719e-5);
  dnn_meas_coll_row b =
      coll_row(DNN_COMM_BROADCAST, "default", 2, 1048576, 2.345e-4);
  b.model = DNN_COMM_ALGO_AUTO;
  b.mpi_id = 0;
  dnn_meas_coll_row c = coll_row(DNN_COMM_REDUCE, "local", 1, 4096, 1.7e-7);
  c.model = DNN_COMM_ALGO_COUNT;
  assert_ok(dnn_meas_coll_table_add(t, &a, &e), &e);
  assert_ok(dnn_meas_coll_table_add(t, &b, &e), &e);
  assert_ok(dnn_meas_coll_table_add(t, &c, &e), &e);
  const char *path = tmp_path("coll.csv");
  assert_ok(dnn_meas_coll_csv_write(path, t, "made by a test\nline two", &e),
            &e);
  assert_ok(dnn_meas_coll_table_alloc(&u, &e), &e);
  assert_ok(dnn_meas_coll_csv_read(path, u, &e), &e);
  assert_int_equal(dnn_meas_coll_table_count(u), 3);
  const dnn_meas_coll_row *r =
      dnn_meas_coll_table_find(u, DNN_COMM_ALLREDUCE, "ring", 4, 65536);
  assert_non_null(r);
  assert_close(r->t.median_s, 3.719e-5, 1e-8);
  assert_close(r->t.ci_hi_s, 3.719e-5 * 1.04, 1e-8);
  assert_int_equal(r->t.runs, 37);
  assert_int_equal(r->mpi_id, 4);
  assert_int_equal(r->model, DNN_COMM_ALGO_RING);
  assert_true(r->t.converged);
  r = dnn_meas_coll_table_find(u, DNN_COMM_REDUCE, "local", 1, 4096);
  assert_non_null(r);
  assert_int_equal(r->model, DNN_COMM_ALGO_COUNT);
  assert_null(
      dnn_meas_coll_table_find(u, DNN_COMM_ALLREDUCE, "ring", 2, 65536));
  /* A bad row is refused by the table itself. */
  dnn_meas_coll_row bad = a;
  snprintf(bad.algorithm, sizeof bad.algorithm, "ri,ng");
  assert_int_equal(dnn_meas_coll_table_add(t, &bad, &e), DNN_EINVAL);
  assert_contains(e.msg, "comma");
  bad = a;
  bad.t.min_s = 1;
  assert_int_equal(dnn_meas_coll_table_add(t, &bad, &e), DNN_EINVAL);
  assert_contains(e.msg, "min <= median <= max");
  remove(path);
  dnn_meas_coll_table_free(t);
  dnn_meas_coll_table_free(u);
  dnn_meas_coll_table_free(NULL);
}

/* Reads `text` as a collective CSV; expects `code` and `msg` in the
 * error (the message starts with the file name and line). */
static void expect_coll_error(const char *text, dnn_status code,
                              const char *msg) {
  const char *path = tmp_path("bad.csv");
  write_file(path, text);
  dnn_meas_coll_table *t = NULL;
  dnn_error e;
  assert_ok(dnn_meas_coll_table_alloc(&t, &e), &e);
  assert_int_equal(dnn_meas_coll_csv_read(path, t, &e), code);
  assert_contains(e.msg, path);
  assert_contains(e.msg, msg);
  dnn_meas_coll_table_free(t);
  remove(path);
}

static void test_coll_bad_rows(void **state) {
  (void)state;
  char good[1024], text[4096];
  snprintf(good, sizeof good,
           "allreduce,ring,4,ring,4,65536,16384,12,37,3.6e-05,3.719e-05,"
           "4.8e-05,3.8e-05,3.68e-05,3.86e-05,0.96,1,1.76,2.64");
  const char *h = dnn_meas_coll_csv_header();
  snprintf(text, sizeof text, "# comment\n%s\n%s\n%s\n", h, good, good);
  const char *path = tmp_path("ok.csv");
  write_file(path, text);
  dnn_meas_coll_table *t = NULL;
  dnn_error e;
  assert_ok(dnn_meas_coll_table_alloc(&t, &e), &e);
  assert_ok(dnn_meas_coll_csv_read(path, t, &e), &e);
  assert_int_equal(dnn_meas_coll_table_count(t), 2);
  dnn_meas_coll_table_free(t);
  remove(path);

  snprintf(text, sizeof text, "%s\n%s\nallreduce,ring,4\n", h, good);
  expect_coll_error(text, DNN_EPARSE, ":3: expected 19 comma-separated");
  snprintf(text, sizeof text, "%s\nallreduse%s\n", h, good + 9);
  expect_coll_error(text, DNN_EPARSE, ":2: column op: unknown collective");
  snprintf(text, sizeof text, "%s\n%.30sx12%s\n", h, good, good + 35);
  expect_coll_error(text, DNN_EPARSE, ":2: column count: expected a non-neg");
  snprintf(text, sizeof text,
           "%s\nallreduce,ring,4,ring,4,65536,16384,12,37,9e-05,3.719e-05,"
           "4.8e-05,3.8e-05,3.68e-05,3.86e-05,0.96,1,1.76,2.64\n",
           h);
  expect_coll_error(text, DNN_ERANGE, ":2: times must satisfy min <= median");
  snprintf(text, sizeof text,
           "%s\nallreduce,ring,4,ring,4,65536,16384,12,37,3.6e-05,3.719e-05,"
           "4.8e-05,3.8e-05,3.68e-05,3.86e-05,0.96,2,1.76,2.64\n",
           h);
  expect_coll_error(text, DNN_EPARSE, ":2: column converged: expected 0 or 1");
  snprintf(text, sizeof text,
           "%s\nallreduce,ring,4,circle,4,65536,16384,12,37,3.6e-05,"
           "3.719e-05,4.8e-05,3.8e-05,3.68e-05,3.86e-05,0.96,1,1.76,2.64\n",
           h);
  expect_coll_error(text, DNN_EPARSE, ":2: column model: unknown algorithm");
  snprintf(text, sizeof text,
           "%s\nallreduce,ring,4,ring,4,65536,16384,12,37,3.6e-05,abc,"
           "4.8e-05,3.8e-05,3.68e-05,3.86e-05,0.96,1,1.76,2.64\n",
           h);
  expect_coll_error(text, DNN_EPARSE, ":2: column time_median_s: expected a");
  expect_coll_error("op,size\nallreduce,4\n", DNN_EPARSE,
                    ":1: expected the header line");
  expect_coll_error("# only a comment\n", DNN_EPARSE,
                    "expected the header line");
  dnn_meas_coll_table *u = NULL;
  assert_ok(dnn_meas_coll_table_alloc(&u, &e), &e);
  assert_int_equal(dnn_meas_coll_csv_read(tmp_path("missing.csv"), u, &e),
                   DNN_EIO);
  dnn_meas_coll_table_free(u);
}

static dnn_meas_kernel_row kernel_row(const char *layer, dnn_pass pass,
                                      size_t batch, double t) {
  dnn_meas_kernel_row r;
  memset(&r, 0, sizeof r);
  snprintf(r.backend, sizeof r.backend, "onednn");
  snprintf(r.network, sizeof r.network, "resnet18");
  snprintf(r.layer, sizeof r.layer, "%s", layer);
  snprintf(r.signature, sizeof r.signature,
           "conv2d:64x56x56:o64:k3x3:s1x1:p1x1:d1x1:g1:b0");
  r.kind = DNN_LAYER_CONV2D;
  r.pass = pass;
  r.algo = DNN_CONV_DIRECT;
  r.dtype = DNN_DTYPE_FP32;
  r.batch = batch;
  r.flops = 3.7e9;
  r.bytes = 2.9e6;
  r.workspace_bytes = 4096;
  r.t = stats(t);
  r.verify_rel_l2 = 1.3e-7;
  r.verify_max_rel = NAN;
  return r;
}

static void test_kernel_round_trip(void **state) {
  (void)state;
  dnn_meas_kernel_table *t = NULL, *u = NULL;
  dnn_error e;
  assert_ok(dnn_meas_kernel_table_alloc(&t, &e), &e);
  dnn_meas_kernel_row a = kernel_row("layer1.0.conv1", DNN_PASS_FWD, 8, 2.3e-3);
  dnn_meas_kernel_row b =
      kernel_row("layer1.0.conv1", DNN_PASS_BWD_WEIGHTS, 8, 4.1e-3);
  assert_ok(dnn_meas_kernel_table_add(t, &a, &e), &e);
  assert_ok(dnn_meas_kernel_table_add(t, &b, &e), &e);
  const char *path = tmp_path("kern.csv");
  assert_ok(dnn_meas_kernel_csv_write(path, t, NULL, &e), &e);
  assert_ok(dnn_meas_kernel_table_alloc(&u, &e), &e);
  assert_ok(dnn_meas_kernel_csv_read(path, u, &e), &e);
  assert_int_equal(dnn_meas_kernel_table_count(u), 2);
  const dnn_meas_kernel_row *r = dnn_meas_kernel_table_find(
      u, "resnet18", "layer1.0.conv1", DNN_PASS_BWD_WEIGHTS, DNN_CONV_DIRECT,
      DNN_DTYPE_FP32, 8);
  assert_non_null(r);
  assert_close(r->t.median_s, 4.1e-3, 1e-8);
  assert_close(r->flops, 3.7e9, 1e-8);
  assert_close(r->verify_rel_l2, 1.3e-7, 1e-5);
  assert_true(isnan(r->verify_max_rel));
  assert_string_equal(r->signature, a.signature);
  assert_null(dnn_meas_kernel_table_find(u, "resnet18", "layer1.0.conv1",
                                         DNN_PASS_FWD, DNN_CONV_DIRECT,
                                         DNN_DTYPE_FP32, 1));
  /* Rows the table refuses. */
  dnn_meas_kernel_row bad = a;
  bad.flops = bad.bytes = 0;
  assert_int_equal(dnn_meas_kernel_table_add(t, &bad, &e), DNN_EINVAL);
  assert_contains(e.msg, "flops or bytes");
  bad = a;
  bad.batch = 0;
  assert_int_equal(dnn_meas_kernel_table_add(t, &bad, &e), DNN_EINVAL);
  assert_contains(e.msg, "batch");
  remove(path);

  /* Bad kernel rows in a file. */
  char text[4096];
  snprintf(text, sizeof text,
           "%s\nonednn,resnet18,conv1,conv2d:3x8x8,conv3d,fwd,direct,fp32,1,"
           "10,10,0,5,1,1e-6,1e-6,1e-6,1e-6,1e-6,1e-6,0.5,0,nan,nan\n",
           dnn_meas_kernel_csv_header());
  write_file(path, text);
  dnn_meas_kernel_table *v = NULL;
  assert_ok(dnn_meas_kernel_table_alloc(&v, &e), &e);
  assert_int_equal(dnn_meas_kernel_csv_read(path, v, &e), DNN_EPARSE);
  assert_contains(e.msg, ":2: column kind: unknown layer kind 'conv3d'");
  snprintf(text, sizeof text,
           "%s\nonednn,resnet18,conv1,conv2d:3x8x8,conv2d,fwd,direct,fp32,1,"
           "10,nan,0,5,1,1e-6,1e-6,1e-6,1e-6,1e-6,1e-6,0.5,0,nan,nan\n",
           dnn_meas_kernel_csv_header());
  write_file(path, text);
  assert_int_equal(dnn_meas_kernel_csv_read(path, v, &e), DNN_ERANGE);
  assert_contains(e.msg, ":2: column bytes:");
  snprintf(text, sizeof text,
           "%s\nonednn,resnet18,conv1,conv2d:3x8x8,conv2d,sideways,direct,"
           "fp32,1,10,10,0,5,1,1e-6,1e-6,1e-6,1e-6,1e-6,1e-6,0.5,0,nan,nan\n",
           dnn_meas_kernel_csv_header());
  write_file(path, text);
  assert_int_equal(dnn_meas_kernel_csv_read(path, v, &e), DNN_EPARSE);
  assert_contains(e.msg, ":2: column pass: unknown pass 'sideways'");
  remove(path);
  dnn_meas_kernel_table_free(v);
  dnn_meas_kernel_table_free(t);
  dnn_meas_kernel_table_free(u);
}

static void test_alloc_failures(void **state) {
  (void)state;
  dnn_meas_coll_table *t = NULL;
  dnn_error e;
  test_alloc_state a;
  test_alloc_install(&a, 0);
  assert_int_equal(dnn_meas_coll_table_alloc(&t, &e), DNN_ENOMEM);
  test_alloc_restore();
  assert_ok(dnn_meas_coll_table_alloc(&t, &e), &e);
  dnn_meas_coll_row r = coll_row(DNN_COMM_ALLGATHER, "ring", 2, 4096, 1e-5);
  test_alloc_install(&a, 0);
  assert_int_equal(dnn_meas_coll_table_add(t, &r, &e), DNN_ENOMEM);
  test_alloc_restore();
  assert_int_equal(dnn_meas_coll_table_count(t), 0);
  dnn_meas_coll_table_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_busbw),
      cmocka_unit_test(test_coll_round_trip),
      cmocka_unit_test(test_coll_bad_rows),
      cmocka_unit_test(test_kernel_round_trip),
      cmocka_unit_test(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
