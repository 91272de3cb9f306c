/* Tests of calibrate/comm.c: collective fits recover the alpha, beta and
 * gamma that generated synthetic measurements through comm.h's formulas,
 * LogGP comes from the ping-pong probes, and predictions for other
 * communicator sizes follow comm.h. */
#include "test_util.h"

#include <math.h>

#include "dnnsim/calibrate.h"

static const double ALPHA = 2.345e-6, BETA = 1.408e-10, GAMMA = 5.5e-11;

static double model_time(dnn_comm_op op, dnn_comm_algo algo, size_t P,
                         double m) {
  dnn_comm_link l = {ALPHA, BETA, GAMMA};
  dnn_comm_topo t = dnn_comm_default_topo(P, l);
  dnn_comm_cost c;
  dnn_error e;
  assert_ok(dnn_comm_time(op, algo, m, &t, &c, &e), &e);
  return c.time_s;
}

static void add(dnn_meas_coll_table *t, dnn_comm_op op, const char *name,
                dnn_comm_algo model, size_t ranks, size_t size, double time) {
  dnn_meas_coll_row r;
  memset(&r, 0, sizeof r);
  r.op = op;
  snprintf(r.algorithm, sizeof r.algorithm, "%s", name);
  r.model = model;
  r.ranks = ranks;
  r.size_bytes = size;
  r.count = size / 4;
  r.t.samples = 10;
  r.t.runs = 1;
  r.t.min_s = r.t.median_s = r.t.max_s = r.t.mean_s = time;
  r.t.ci_lo_s = r.t.ci_hi_s = time;
  r.t.confidence = 0.97;
  dnn_error e;
  assert_ok(dnn_meas_coll_table_add(t, &r, &e), &e);
}

/* Adds a sweep of (op, algo) on P ranks: powers of two, and with
 * `between` the 3 * 2^k sizes too. */
static void sweep(dnn_meas_coll_table *t, dnn_comm_op op, const char *name,
                  dnn_comm_algo model, size_t P, bool between) {
  for (size_t k = 4; k <= 26; k++) {
    size_t m = (size_t)1 << k;
    add(t, op, name, model, P, m,
        model_time(op, model == DNN_COMM_ALGO_AUTO ? DNN_COMM_ALGO_RING : model,
                   P, (double)m));
    if (between && k < 26)
      add(t, op, name, model, P, 3 * m,
          model_time(op,
                     model == DNN_COMM_ALGO_AUTO ? DNN_COMM_ALGO_RING : model,
                     P, 3.0 * (double)m));
  }
}

static dnn_meas_coll_table *synthetic(bool between) {
  dnn_meas_coll_table *t = NULL;
  dnn_error e;
  assert_ok(dnn_meas_coll_table_alloc(&t, &e), &e);
  sweep(t, DNN_COMM_ALLREDUCE, "ring", DNN_COMM_ALGO_RING, 4, between);
  sweep(t, DNN_COMM_ALLREDUCE, "rabenseifner", DNN_COMM_ALGO_RABENSEIFNER, 2,
        between);
  sweep(t, DNN_COMM_ALLREDUCE, "rabenseifner", DNN_COMM_ALGO_RABENSEIFNER, 4,
        between);
  sweep(t, DNN_COMM_ALLREDUCE, "default", DNN_COMM_ALGO_AUTO, 4, between);
  sweep(t, DNN_COMM_ALLGATHER, "recursive_doubling",
        DNN_COMM_ALGO_RECURSIVE_DOUBLING, 4, between);
  sweep(t, DNN_COMM_BROADCAST, "binomial", DNN_COMM_ALGO_BINOMIAL_TREE, 4,
        between);
  /* Ping-pong half round trips, the probes and MPI_Reduce_local. */
  for (size_t k = 2; k <= 24; k++) {
    double m = (double)((size_t)1 << k);
    add(t, DNN_COMM_P2P, "pingpong", DNN_COMM_ALGO_DIRECT, 2, (size_t)m,
        ALPHA + BETA * m);
    add(t, DNN_COMM_REDUCE, "local", DNN_COMM_ALGO_COUNT, 1, (size_t)m,
        8.7e-8 + GAMMA * m);
  }
  add(t, DNN_COMM_P2P, "overhead", DNN_COMM_ALGO_DIRECT, 2, 8, 0.31e-6);
  add(t, DNN_COMM_P2P, "gap", DNN_COMM_ALGO_DIRECT, 2, 8, 0.17e-6);
  return t;
}

static dnn_comm_profile_info info(void) {
  dnn_comm_profile_info in;
  memset(&in, 0, sizeof in);
  snprintf(in.name, sizeof in.name, "synthetic");
  snprintf(in.source, sizeof in.source, "test");
  snprintf(in.calibrated, sizeof in.calibrated, "no");
  return in;
}

static void test_coefficients(void **state) {
  (void)state;
  double ca, cb, cg;
  /* Ring allreduce: 2(P-1) alpha + 2(P-1)/P m beta + (P-1)/P m gamma. */
  assert_true(dnn_calib_comm_coef(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, 4,
                                  &ca, &cb, &cg));
  assert_close(ca, 6, 1e-12);
  assert_close(cb, 1.5, 1e-12);
  assert_close(cg, 0.75, 1e-12);
  /* Point to point: alpha + m beta. */
  assert_true(dnn_calib_comm_coef(DNN_COMM_P2P, DNN_COMM_ALGO_DIRECT, 2, &ca,
                                  &cb, &cg));
  assert_close(ca, 1, 1e-12);
  assert_close(cb, 1, 1e-12);
  assert_close(cg, 0, 0);
  /* No formula for AUTO; none that is not linear (pipelined trees); none
   * for an algorithm comm.h lacks for the op. */
  assert_false(dnn_calib_comm_coef(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_AUTO, 4,
                                   &ca, &cb, &cg));
  assert_false(dnn_calib_comm_coef(
      DNN_COMM_BROADCAST, DNN_COMM_ALGO_DOUBLE_BINARY_TREE, 8, &ca, &cb, &cg));
  assert_false(
      dnn_calib_comm_coef(DNN_COMM_P2P, DNN_COMM_ALGO_RING, 2, &ca, &cb, &cg));
  assert_false(dnn_calib_comm_coef(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, 1,
                                   &ca, &cb, &cg));
}

static void test_fit_recovers(void **state) {
  (void)state;
  dnn_meas_coll_table *t = synthetic(false);
  dnn_calib_params p = dnn_calib_default_params();
  dnn_comm_profile_info in = info();
  dnn_comm_profile *cp = NULL;
  dnn_error e;
  assert_ok(dnn_calib_comm_fit(t, &p, &in, &cp, &e), &e);
  const dnn_comm_profile_info *pi = dnn_hw_comm_profile_info(cp);
  assert_close(pi->gamma_s_per_byte, GAMMA, 1e-9);
  assert_true(pi->has_loggp);
  assert_close(pi->loggp_G_s_per_byte, BETA, 1e-9);
  assert_close(pi->loggp_o_s, 0.31e-6, 1e-12);
  assert_close(pi->loggp_g_s, 0.17e-6, 1e-12);
  assert_close(pi->loggp_L_s, ALPHA - 2 * 0.31e-6, 1e-9);
  assert_int_equal(pi->loggp_P, 4);
  /* Each modelled fit gives back the link. */
  static const struct {
    dnn_comm_op op;
    dnn_comm_algo algo;
    size_t P;
    bool reduces;
  } cases[] = {
      {DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, 4, true},
      {DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RABENSEIFNER, 2, true},
      {DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RABENSEIFNER, 4, true},
      {DNN_COMM_ALLGATHER, DNN_COMM_ALGO_RECURSIVE_DOUBLING, 4, false},
      {DNN_COMM_BROADCAST, DNN_COMM_ALGO_BINOMIAL_TREE, 4, false},
      {DNN_COMM_P2P, DNN_COMM_ALGO_DIRECT, 2, false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    bool exact = false;
    const dnn_comm_fit *f = dnn_hw_comm_profile_lookup(
        cp, (int)cases[i].op, (int)cases[i].algo, cases[i].P, &exact);
    assert_non_null(f);
    assert_true(exact);
    assert_true(f->has_link);
    assert_int_equal(f->n_segments, 1);
    assert_close(f->alpha_s, ALPHA, 1e-6);
    assert_close(f->beta_s_per_byte, BETA, 1e-6);
    assert_close(f->gamma_s_per_byte, cases[i].reduces ? GAMMA : 0, 1e-6);
    assert_false(f->poor);
    assert_close(f->r2, 1, 1e-9);
  }
  /* The default algorithm has a curve but no link parameters. */
  const dnn_comm_fit *d = dnn_hw_comm_profile_lookup(
      cp, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_AUTO, 4, NULL);
  assert_non_null(d);
  assert_false(d->has_link);
  assert_string_equal(d->mpi_algorithm, "default");
  dnn_hw_comm_profile_free(cp);
  dnn_meas_coll_table_free(t);
}

static void test_noisy_fit(void **state) {
  (void)state;
  dnn_meas_coll_table *t = NULL;
  dnn_error e;
  assert_ok(dnn_meas_coll_table_alloc(&t, &e), &e);
  for (size_t k = 2; k <= 26; k++) {
    double m = (double)((size_t)1 << k);
    double wobble = 1 + 0.03 * sin(3.7 * (double)k);
    add(t, DNN_COMM_P2P, "pingpong", DNN_COMM_ALGO_DIRECT, 2, (size_t)m,
        (ALPHA + BETA * m) * wobble);
  }
  dnn_calib_params p = dnn_calib_default_params();
  p.max_segments = 1;
  dnn_comm_profile_info in = info();
  dnn_comm_profile *cp = NULL;
  assert_ok(dnn_calib_comm_fit(t, &p, &in, &cp, &e), &e);
  const dnn_comm_fit *f = dnn_hw_comm_profile_lookup(
      cp, DNN_COMM_P2P, DNN_COMM_ALGO_DIRECT, 2, NULL);
  assert_non_null(f);
  assert_close(f->alpha_s, ALPHA, 0.05);
  assert_close(f->beta_s_per_byte, BETA, 0.05);
  assert_true(f->median_rel_residual < 0.03);
  dnn_hw_comm_profile_free(cp);
  dnn_meas_coll_table_free(t);
}

static size_t points_seen;
static void count_point(void *ud, const char *what, double measured,
                        double predicted) {
  (void)ud;
  (void)measured;
  (void)predicted;
  assert_non_null(strstr(what, " B"));
  points_seen++;
}

static void test_predict_and_evaluate(void **state) {
  (void)state;
  /* Fit on powers of two; check the held-back 3 * 2^k sizes. */
  dnn_meas_coll_table *all = synthetic(true);
  dnn_calib_params p = dnn_calib_default_params();
  p.pow2_only = true;
  dnn_comm_profile_info in = info();
  dnn_comm_profile *cp = NULL;
  dnn_error e;
  assert_ok(dnn_calib_comm_fit(all, &p, &in, &cp, &e), &e);
  const dnn_comm_fit *f = dnn_hw_comm_profile_lookup(
      cp, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, 4, NULL);
  assert_int_equal(f->points, 23);
  dnn_calib_error ex, ot;
  points_seen = 0;
  assert_ok(dnn_calib_comm_evaluate(cp, all, &ex, &ot, count_point, NULL, &e),
            &e);
  assert_true(ex.n > 100);
  assert_true(ex.max_rel < 1e-6);
  assert_int_equal(ot.n, 0);
  assert_int_equal(points_seen, ex.n);
  /* Other communicator sizes: comm.h's formula with the fitted link. */
  double t8 = 0;
  bool exact = true;
  assert_ok(dnn_calib_comm_predict(cp, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING,
                                   8, 3.7e6, &t8, &exact, &e),
            &e);
  assert_false(exact);
  assert_close(t8, model_time(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, 8, 3.7e6),
               1e-6);
  /* Between two measured sizes (2 and 4 ranks): both scaled curves are
   * exact here, so their interpolation is too. */
  assert_ok(dnn_calib_comm_predict(cp, DNN_COMM_ALLREDUCE,
                                   DNN_COMM_ALGO_RABENSEIFNER, 3, 5.5e5, &t8,
                                   &exact, &e),
            &e);
  assert_false(exact);
  assert_close(
      t8, model_time(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RABENSEIFNER, 3, 5.5e5),
      1e-6);
  /* Rabenseifner measured on 2 and 4 ranks: 3 ranks takes the nearest,
   * ties to the larger (4). */
  const dnn_comm_fit *r3 = dnn_hw_comm_profile_lookup(
      cp, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RABENSEIFNER, 3, &exact);
  assert_false(exact);
  assert_int_equal(r3->ranks, 4);
  dnn_meas_coll_table *other = NULL;
  assert_ok(dnn_meas_coll_table_alloc(&other, &e), &e);
  add(other, DNN_COMM_ALLREDUCE, "rabenseifner", DNN_COMM_ALGO_RABENSEIFNER, 8,
      1 << 20,
      model_time(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RABENSEIFNER, 8, 1 << 20));
  assert_ok(dnn_calib_comm_evaluate(cp, other, &ex, &ot, NULL, NULL, &e), &e);
  assert_int_equal(ex.n, 0);
  assert_int_equal(ot.n, 1);
  assert_true(ot.max_rel < 1e-6);
  /* What the profile cannot predict. */
  assert_int_equal(dnn_calib_comm_predict(cp, DNN_COMM_ALLTOALL,
                                          DNN_COMM_ALGO_DIRECT, 4, 1024, &t8,
                                          NULL, &e),
                   DNN_ENOTFOUND);
  assert_contains(e.msg, "no fit of alltoall");
  assert_int_equal(dnn_calib_comm_predict(cp, DNN_COMM_ALLREDUCE,
                                          DNN_COMM_ALGO_AUTO, 8, 1024, &t8,
                                          NULL, &e),
                   DNN_ENOTFOUND);
  assert_contains(e.msg, "no link parameters");
  dnn_meas_coll_table_free(other);
  dnn_hw_comm_profile_free(cp);
  dnn_meas_coll_table_free(all);
}

static void test_fit_errors(void **state) {
  (void)state;
  dnn_meas_coll_table *t = NULL;
  dnn_error e;
  assert_ok(dnn_meas_coll_table_alloc(&t, &e), &e);
  add(t, DNN_COMM_ALLREDUCE, "ring", DNN_COMM_ALGO_RING, 2, 4096, 1e-5);
  dnn_calib_params p = dnn_calib_default_params();
  dnn_comm_profile_info in = info();
  dnn_comm_profile *cp = NULL;
  assert_int_equal(dnn_calib_comm_fit(t, &p, &in, &cp, &e), DNN_EINVAL);
  assert_contains(e.msg, "two or more measured sizes");
  assert_null(cp);
  p.segment_tol = 0;
  assert_int_equal(dnn_calib_comm_fit(t, &p, &in, &cp, &e), DNN_EINVAL);
  dnn_meas_coll_table_free(t);
  /* Allocation failures anywhere leave nothing behind. */
  dnn_meas_coll_table *s = synthetic(false);
  p = dnn_calib_default_params();
  for (long k = 0; k < 6; k++) {
    test_alloc_state a;
    test_alloc_install(&a, k);
    dnn_status st = dnn_calib_comm_fit(s, &p, &in, &cp, &e);
    test_alloc_restore();
    if (st == DNN_OK)
      dnn_hw_comm_profile_free(cp);
    else
      assert_int_equal(st, DNN_ENOMEM);
  }
  dnn_meas_coll_table_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_coefficients),
      cmocka_unit_test(test_fit_recovers),
      cmocka_unit_test(test_noisy_fit),
      cmocka_unit_test(test_predict_and_evaluate),
      cmocka_unit_test(test_fit_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
