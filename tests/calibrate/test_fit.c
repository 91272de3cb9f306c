/* Tests of calibrate/fit.c: lines and piecewise fits recover the
 * parameters of synthetic data, exact and noisy; errors are reported. */
#include "test_util.h"

#include <math.h>

#include "dnnsim/calibrate.h"

/* Deterministic noise in [-amp, amp] (a fixed scrambled sequence). */
static double noise(size_t i, double amp) {
  static const double u[] = {0.31,  -0.77, 0.12, 0.95,  -0.43, -0.08, 0.66,
                             -0.91, 0.27,  0.58, -0.35, 0.83,  -0.62, 0.04};
  return amp * u[i % (sizeof u / sizeof u[0])];
}

static void test_line_exact_and_noisy(void **state) {
  (void)state;
  /* alpha = 3.719 us, beta = 0.1234 ns/B over 4 B .. 64 MiB. */
  double x[25], y[25];
  for (size_t i = 0; i < 25; i++) {
    x[i] = 4.0 * pow(2, (double)i);
    y[i] = 3.719e-6 + 1.234e-10 * x[i];
  }
  dnn_calib_line l;
  dnn_error e;
  assert_ok(dnn_calib_fit_line(x, y, 25, true, &l, &e), &e);
  assert_close(l.a, 3.719e-6, 1e-9);
  assert_close(l.b, 1.234e-10, 1e-9);
  assert_close(l.r2, 1, 1e-12);
  assert_true(l.max_rel < 1e-9);
  assert_int_equal(l.n, 25);
  /* +-2% multiplicative noise: relative weighting keeps both within 2%. */
  for (size_t i = 0; i < 25; i++)
    y[i] *= 1 + noise(i, 0.02);
  assert_ok(dnn_calib_fit_line(x, y, 25, true, &l, &e), &e);
  assert_close(l.a, 3.719e-6, 0.02);
  assert_close(l.b, 1.234e-10, 0.02);
  assert_true(l.median_rel < 0.02 && l.max_rel < 0.04);
  /* Unweighted, the intercept is lost in the large sizes' noise. */
  dnn_calib_line u;
  assert_ok(dnn_calib_fit_line(x, y, 25, false, &u, &e), &e);
  assert_true(fabs(u.a - 3.719e-6) > fabs(l.a - 3.719e-6));
}

static void test_line_errors(void **state) {
  (void)state;
  double x[3] = {1, 1, 1}, y[3] = {2.5, 3.5, -1};
  dnn_calib_line l;
  dnn_error e;
  assert_int_equal(dnn_calib_fit_line(x, y, 1, true, &l, &e), DNN_EINVAL);
  assert_contains(e.msg, "at least 2 points");
  assert_int_equal(dnn_calib_fit_line(x, y, 2, true, &l, &e), DNN_EINVAL);
  assert_contains(e.msg, "two distinct x");
  x[2] = 4;
  assert_int_equal(dnn_calib_fit_line(x, y, 3, true, &l, &e), DNN_EINVAL);
  assert_contains(e.msg, "point 2");
}

/* Two regimes (eager then rendezvous) meet at 64 KiB. */
static double two_regimes(double m) {
  return m < 65536 ? 1.5e-6 + 2.0e-10 * m : 3.0e-5 + 1.0e-10 * m;
}

static void test_segments(void **state) {
  (void)state;
  double x[25], y[25];
  for (size_t i = 0; i < 25; i++) {
    x[i] = 4.0 * pow(2, (double)i);
    y[i] = two_regimes(x[i]);
  }
  dnn_calib_params p = dnn_calib_default_params();
  dnn_comm_fit f;
  memset(&f, 0, sizeof f);
  dnn_error e;
  assert_ok(dnn_calib_fit_segments(x, y, 25, &p, &f, &e), &e);
  assert_int_equal(f.n_segments, 2);
  assert_close(f.seg[0].latency_s, 1.5e-6, 1e-9);
  assert_close(f.seg[0].s_per_byte, 2.0e-10, 1e-9);
  assert_close(f.seg[1].latency_s, 3.0e-5, 1e-9);
  assert_close(f.seg[1].s_per_byte, 1.0e-10, 1e-9);
  /* The boundary sits between 32 KiB and 64 KiB (geometric mean). */
  assert_close(f.seg[1].lo_bytes, sqrt(32768.0 * 65536.0), 1e-12);
  assert_true(f.max_rel_residual < 1e-9);
  assert_false(f.poor);
  assert_int_equal(f.points, 25);
  assert_close(f.min_bytes, 4, 0);
  assert_close(f.max_bytes, 4.0 * pow(2, 24), 0);
  /* Held-back sizes between the fitted ones are predicted exactly. */
  assert_close(dnn_hw_comm_fit_time(&f, 3 * 1024), two_regimes(3 * 1024), 1e-9);
  assert_close(dnn_hw_comm_fit_time(&f, 3 << 20), two_regimes(3 << 20), 1e-9);
  /* One segment only: the fit is flagged poor. */
  p.max_segments = 1;
  assert_ok(dnn_calib_fit_segments(x, y, 25, &p, &f, &e), &e);
  assert_int_equal(f.n_segments, 1);
  assert_true(f.poor);
  assert_true(f.max_rel_residual > p.max_rel_max ||
              f.median_rel_residual > p.median_rel_max || f.r2 < p.r2_min);
}

static void test_segments_errors(void **state) {
  (void)state;
  double x[4] = {4, 8, 8, 16}, y[4] = {1e-6, 2e-6, 3e-6, 4e-6};
  dnn_calib_params p = dnn_calib_default_params();
  dnn_comm_fit f;
  dnn_error e;
  assert_int_equal(dnn_calib_fit_segments(x, y, 4, &p, &f, &e), DNN_EINVAL);
  assert_contains(e.msg, "strictly increasing");
  assert_int_equal(dnn_calib_fit_segments(x, y, 1, &p, &f, &e), DNN_EINVAL);
  x[2] = 12;
  y[1] = 0;
  assert_int_equal(dnn_calib_fit_segments(x, y, 4, &p, &f, &e), DNN_EINVAL);
  assert_contains(e.msg, "point 1");
  y[1] = 2e-6;
  p.max_segments = 9;
  assert_int_equal(dnn_calib_fit_segments(x, y, 4, &p, &f, &e), DNN_EINVAL);
  assert_contains(e.msg, "max_segments");
  p = dnn_calib_default_params();
  p.min_segment_points = 1;
  assert_int_equal(dnn_calib_params_check(&p, &e), DNN_EINVAL);
  assert_contains(e.msg, "min_segment_points");
}

static void test_provenance(void **state) {
  (void)state;
  char buf[256];
  dnn_calib_provenance("GPU; X", "lib 1.2", "dnnsim calibrate cpu -o a.ini",
                       buf, sizeof buf);
  assert_contains(buf, " | GPU  X | lib 1.2 | by: dnnsim calibrate cpu");
  assert_null(strchr(buf, ';'));
  dnn_calib_provenance(NULL, NULL, NULL, buf, sizeof buf);
  assert_contains(buf, " on ");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_line_exact_and_noisy),
      cmocka_unit_test(test_line_errors),
      cmocka_unit_test(test_segments),
      cmocka_unit_test(test_segments_errors),
      cmocka_unit_test(test_provenance),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
