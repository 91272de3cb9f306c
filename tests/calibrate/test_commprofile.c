/* Tests of scenarios/commprofile.c (the comm profile API of hw.h that
 * calibrate/ writes and [cluster] comm_profile reads): round trips,
 * lookups with the nearest-rank fallback, piecewise times and the
 * file:line errors of bad files. */
#include "test_util.h"

#include <math.h>
#include <unistd.h>

#include "dnnsim/comm.h"
#include "dnnsim/hw.h"

static dnn_comm_fit fit(dnn_comm_op op, dnn_comm_algo algo, const char *name,
                        size_t ranks) {
  dnn_comm_fit f;
  memset(&f, 0, sizeof f);
  f.op = (int)op;
  f.algo = (int)algo;
  snprintf(f.mpi_algorithm, sizeof f.mpi_algorithm, "%s", name);
  f.ranks = ranks;
  f.n_segments = 2;
  f.seg[0] = (dnn_comm_segment){0, 1.75e-6, 2.5e-10};
  f.seg[1] = (dnn_comm_segment){46341, 2.2e-5, 1.2e-10};
  f.alpha_s = 2.917e-7;
  f.beta_s_per_byte = 8.0e-11;
  f.gamma_s_per_byte = 3.3e-11;
  f.has_link = algo != DNN_COMM_ALGO_AUTO;
  f.min_bytes = 4;
  f.max_bytes = 268435456;
  f.points = 27;
  f.r2 = 0.99931;
  f.median_rel_residual = 0.0312;
  f.max_rel_residual = 0.187;
  f.poor = false;
  return f;
}

static dnn_comm_profile *profile(void) {
  dnn_comm_profile_info in;
  memset(&in, 0, sizeof in);
  snprintf(in.name, sizeof in.name, "vm");
  snprintf(in.source, sizeof in.source, "measured: Open MPI v4.1.4");
  snprintf(in.calibrated, sizeof in.calibrated,
           "2025-01-01 on vm | by: dnnsim calibrate mpi -o x.ini");
  in.gamma_s_per_byte = 4.4e-11;
  in.has_loggp = true;
  in.loggp_L_s = 1.9e-7;
  in.loggp_o_s = 1.1e-7;
  in.loggp_g_s = 9.5e-8;
  in.loggp_G_s_per_byte = 1.05e-10;
  in.loggp_P = 4;
  in.nodes = 3;
  dnn_comm_profile *cp = NULL;
  dnn_error e;
  assert_ok(dnn_hw_comm_profile_alloc(&in, &cp, &e), &e);
  dnn_comm_fit a = fit(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, "ring", 2);
  dnn_comm_fit b = fit(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, "ring", 4);
  b.seg[0].latency_s = 3.1e-6;
  dnn_comm_fit c = fit(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_AUTO, "default", 4);
  c.poor = true;
  dnn_comm_fit d =
      fit(DNN_COMM_BROADCAST, DNN_COMM_ALGO_BINOMIAL_TREE, "binomial", 8);
  d.n_segments = 1;
  assert_ok(dnn_hw_comm_profile_add(cp, &a, &e), &e);
  assert_ok(dnn_hw_comm_profile_add(cp, &b, &e), &e);
  assert_ok(dnn_hw_comm_profile_add(cp, &c, &e), &e);
  assert_ok(dnn_hw_comm_profile_add(cp, &d, &e), &e);
  return cp;
}

static void test_lookup_and_time(void **state) {
  (void)state;
  dnn_comm_profile *cp = profile();
  assert_int_equal(dnn_hw_comm_profile_count(cp), 4);
  bool exact = false;
  const dnn_comm_fit *f = dnn_hw_comm_profile_lookup(
      cp, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, 4, &exact);
  assert_true(exact);
  assert_close(f->seg[0].latency_s, 3.1e-6, 0);
  /* 3 ranks: equally near 2 and 4; the larger wins. */
  f = dnn_hw_comm_profile_lookup(cp, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, 3,
                                 &exact);
  assert_false(exact);
  assert_int_equal(f->ranks, 4);
  f = dnn_hw_comm_profile_lookup(cp, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, 64,
                                 &exact);
  assert_int_equal(f->ranks, 4);
  assert_null(dnn_hw_comm_profile_lookup(cp, DNN_COMM_ALLGATHER,
                                         DNN_COMM_ALGO_RING, 4, &exact));
  assert_false(exact);
  /* The measured sizes around 3 ranks; none around an exact match. */
  const dnn_comm_fit *lo = NULL, *hi = NULL;
  dnn_hw_comm_profile_bracket(cp, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, 3,
                              &lo, &hi);
  assert_int_equal(lo->ranks, 2);
  assert_int_equal(hi->ranks, 4);
  dnn_hw_comm_profile_bracket(cp, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, 9,
                              &lo, &hi);
  assert_int_equal(lo->ranks, 4);
  assert_null(hi);
  dnn_hw_comm_profile_bracket(cp, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, 4,
                              &lo, &hi);
  assert_null(lo);
  assert_null(hi);
  /* Piecewise time: below, inside and above the segments. */
  f = dnn_hw_comm_profile_lookup(cp, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, 2,
                                 NULL);
  assert_close(dnn_hw_comm_fit_time(f, 1024), 1.75e-6 + 2.5e-10 * 1024, 1e-12);
  assert_close(dnn_hw_comm_fit_time(f, 46341), 2.2e-5 + 1.2e-10 * 46341, 1e-12);
  assert_close(dnn_hw_comm_fit_time(f, 1e9), 2.2e-5 + 1.2e-10 * 1e9, 1e-12);
  /* A new fit of the same key replaces the old one. */
  dnn_comm_fit g = fit(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, "ring", 2);
  g.alpha_s = 9.9e-7;
  dnn_error e;
  assert_ok(dnn_hw_comm_profile_add(cp, &g, &e), &e);
  assert_int_equal(dnn_hw_comm_profile_count(cp), 4);
  /* Invalid fits are refused. */
  g.seg[1].lo_bytes = 0;
  assert_int_equal(dnn_hw_comm_profile_add(cp, &g, &e), DNN_EINVAL);
  assert_contains(e.msg, "increasing");
  g = fit(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, "ri ng", 2);
  assert_int_equal(dnn_hw_comm_profile_add(cp, &g, &e), DNN_EINVAL);
  assert_contains(e.msg, "mpi_algorithm");
  g = fit(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, "ring", 2);
  g.r2 = NAN;
  assert_int_equal(dnn_hw_comm_profile_add(cp, &g, &e), DNN_EINVAL);
  dnn_hw_comm_profile_free(cp);
  dnn_hw_comm_profile_free(NULL);
}

static void test_round_trip(void **state) {
  (void)state;
  dnn_comm_profile *cp = profile(), *back = NULL;
  char path[256];
  snprintf(path, sizeof path, "%s/test_commprofile_%d.ini", DNNSIM_BINARY_DIR,
           (int)getpid());
  dnn_error e;
  assert_ok(dnn_hw_comm_profile_save(cp, path, &e), &e);
  assert_ok(dnn_hw_comm_profile_load(path, &back, &e), &e);
  assert_int_equal(dnn_hw_comm_profile_count(back), 4);
  const dnn_comm_profile_info *in = dnn_hw_comm_profile_info(back);
  assert_string_equal(in->name, "vm");
  assert_contains(in->calibrated, "by: dnnsim calibrate mpi");
  assert_close(in->gamma_s_per_byte, 4.4e-11, 1e-8);
  assert_true(in->has_loggp);
  assert_close(in->loggp_G_s_per_byte, 1.05e-10, 1e-8);
  assert_int_equal(in->loggp_P, 4);
  assert_int_equal(in->nodes, 3);
  for (size_t i = 0; i < 4; i++) {
    const dnn_comm_fit *a = dnn_hw_comm_profile_get(cp, i);
    const dnn_comm_fit *b = dnn_hw_comm_profile_get(back, i);
    assert_int_equal(a->op, b->op);
    assert_int_equal(a->algo, b->algo);
    assert_string_equal(a->mpi_algorithm, b->mpi_algorithm);
    assert_int_equal(a->ranks, b->ranks);
    assert_int_equal(a->n_segments, b->n_segments);
    for (size_t k = 0; k < a->n_segments; k++) {
      assert_close(a->seg[k].lo_bytes, b->seg[k].lo_bytes, 1e-8);
      assert_close(a->seg[k].latency_s, b->seg[k].latency_s, 1e-8);
      assert_close(a->seg[k].s_per_byte, b->seg[k].s_per_byte, 1e-8);
    }
    assert_int_equal(a->has_link, b->has_link);
    if (a->has_link) {
      assert_close(a->alpha_s, b->alpha_s, 1e-8);
      assert_close(a->beta_s_per_byte, b->beta_s_per_byte, 1e-8);
      assert_close(a->gamma_s_per_byte, b->gamma_s_per_byte, 1e-8);
    }
    assert_close(a->max_bytes, b->max_bytes, 0);
    assert_int_equal(a->points, b->points);
    assert_close(a->r2, b->r2, 1e-5);
    assert_int_equal(a->poor, b->poor);
  }
  remove(path);
  dnn_hw_comm_profile_free(cp);
  dnn_hw_comm_profile_free(back);
}

/* Loads `text`; expects `code` and `msg` in the error. */
static void expect_error(const char *text, dnn_status code, const char *msg) {
  dnn_comm_profile *cp = NULL;
  dnn_error e;
  assert_int_equal(dnn_hw_comm_profile_load_string(text, "net.ini", &cp, &e),
                   code);
  assert_contains(e.msg, msg);
  assert_null(cp);
}

static const char GOOD_FIT[] =
    "[fit.allreduce.ring.2]\nop = allreduce\nalgorithm = ring\n"
    "mpi_algorithm = ring\nranks = 2\nsegment1 = 0 1.5 0.25\n"
    "alpha_us = 0.75\nbeta_ns_per_byte = 0.125\ngamma_ns_per_byte = 0.03\n"
    "min_bytes = 4\nmax_bytes = 4096\npoints = 11\nr2 = 0.999\n"
    "median_rel_residual = 0.02\nmax_rel_residual = 0.07\npoor = no\n";

static void test_load_errors(void **state) {
  (void)state;
  char text[2048];
  snprintf(text, sizeof text, "[comm]\nname = vm\n%s", GOOD_FIT);
  dnn_comm_profile *cp = NULL;
  dnn_error e;
  assert_ok(dnn_hw_comm_profile_load_string(text, "net.ini", &cp, &e), &e);
  const dnn_comm_fit *f = dnn_hw_comm_profile_lookup(
      cp, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, 2, NULL);
  assert_non_null(f);
  assert_close(f->alpha_s, 0.75e-6, 1e-12);
  assert_close(dnn_hw_comm_fit_time(f, 1000), 1.5e-6 + 0.25e-9 * 1000, 1e-12);
  /* No `nodes` key: measured on one node. */
  assert_int_equal(dnn_hw_comm_profile_info(cp)->nodes, 1);
  dnn_hw_comm_profile_free(cp);
  snprintf(text, sizeof text, "[comm]\nname = vm\nnodes = 7\n%s", GOOD_FIT);
  assert_ok(dnn_hw_comm_profile_load_string(text, "net.ini", &cp, &e), &e);
  assert_int_equal(dnn_hw_comm_profile_info(cp)->nodes, 7);
  dnn_hw_comm_profile_free(cp);
  snprintf(text, sizeof text, "[comm]\nname = vm\nnodes = 0\n");
  expect_error(text, DNN_ERANGE,
               "net.ini:3: [comm] nodes: expected at least 1 node, got 0");
  snprintf(text, sizeof text, "[comm]\nname = vm\nnodes = two\n");
  expect_error(text, DNN_EPARSE, "net.ini:3: [comm] nodes:");

  snprintf(text, sizeof text, "[comm]\nname = vm\n[comms]\n");
  expect_error(text, DNN_EPARSE, "net.ini:3: [comms]: unknown section");
  snprintf(text, sizeof text, "[comm]\nname = vm\nnmae = x\n");
  expect_error(text, DNN_EPARSE, "net.ini:3: [comm] nmae: unknown key");
  snprintf(text, sizeof text, "[comm]\nname = vm\n%s", GOOD_FIT);
  char *seg = strstr(text, "segment1 = 0 1.5 0.25");
  memcpy(seg, "segment1 = 0 1.5 x.25", 21);
  expect_error(text, DNN_EPARSE, "net.ini:8: [fit.allreduce.ring.2] segment1");
  snprintf(text, sizeof text, "[comm]\nname = vm\n%s", GOOD_FIT);
  char *op = strstr(text, "op = allreduce");
  memcpy(op, "op = allreduse", 14);
  expect_error(text, DNN_EPARSE, "net.ini:4: [fit.allreduce.ring.2] op");
  snprintf(text, sizeof text, "[comm]\nname = vm\n%s", GOOD_FIT);
  char *poor = strstr(text, "poor = no\n");
  memcpy(poor, "\n\n\n\n\n\n\n\n\n\n", 10);
  expect_error(text, DNN_EPARSE, "[fit.allreduce.ring.2] poor: required key");
  snprintf(text, sizeof text, "[comm]\nname = vm\n%s", GOOD_FIT);
  char *mn = strstr(text, "min_bytes = 4\n");
  memcpy(mn, "min_bytes = -\n", 14);
  expect_error(text, DNN_EPARSE, "min_bytes");
  snprintf(text, sizeof text, "[comm]\nname = vm\ngamma_ns_per_byte = -3\n");
  expect_error(text, DNN_ERANGE, "net.ini:3: [comm] gamma_ns_per_byte");
  snprintf(text, sizeof text, "[loggp]\nL_us = 1\n");
  expect_error(text, DNN_EPARSE, "is this a comm profile");
  snprintf(text, sizeof text, "[comm]\nname = vm\nname = x\n");
  expect_error(text, DNN_EPARSE, "given twice (first on line 2)");
  snprintf(text, sizeof text, "[comm]\nname = vm\n[loggp]\nL_us = 1\n");
  expect_error(text, DNN_EPARSE, "[loggp] o_us: required key missing");
  dnn_comm_profile *x = NULL;
  assert_int_equal(dnn_hw_comm_profile_load("/nonexistent/net.ini", &x, &e),
                   DNN_EIO);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lookup_and_time),
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_load_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
