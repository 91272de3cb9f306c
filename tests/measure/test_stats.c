/* Tests of measure/stats.c: the median and its distribution-free
 * confidence interval against hand-computed values, the stopping rule and
 * the repeat driver. */
#include "test_util.h"

#include <math.h>

#include "dnnsim/measure.h"

static void test_median_ci_hand_values(void **state) {
  (void)state;
  /* Ten samples in scrambled order: sorted 1.1 .. 10.1 (step 1). The
   * binomial coverage of [x(2), x(9)] is 1 - 2 * 11/1024 = 0.978515625;
   * [x(3), x(8)] would cover only 1 - 2 * 56/1024 = 0.890625 < 0.95. */
  const double x[10] = {7.1, 2.1, 9.1, 1.1, 10.1, 4.1, 3.1, 8.1, 6.1, 5.1};
  dnn_meas_stats s;
  dnn_error e;
  assert_ok(dnn_meas_stats_compute(x, 10, 0.95, &s, &e), &e);
  assert_int_equal(s.samples, 10);
  assert_close(s.median_s, 5.6, 1e-12);
  assert_close(s.mean_s, 5.6, 1e-12);
  assert_close(s.min_s, 1.1, 1e-12);
  assert_close(s.max_s, 10.1, 1e-12);
  assert_close(s.ci_lo_s, 2.1, 1e-12);
  assert_close(s.ci_hi_s, 9.1, 1e-12);
  assert_close(s.confidence, 0.978515625, 1e-12);
  assert_close(dnn_meas_stats_rel_halfwidth(&s), 3.5 / 5.6, 1e-12);
  /* At 80% the interval narrows to [x(3), x(8)] (coverage 0.890625). */
  assert_ok(dnn_meas_stats_compute(x, 10, 0.80, &s, &e), &e);
  assert_close(s.ci_lo_s, 3.1, 1e-12);
  assert_close(s.ci_hi_s, 8.1, 1e-12);
  assert_close(s.confidence, 0.890625, 1e-12);
}

static void test_median_odd_and_few(void **state) {
  (void)state;
  const double x[5] = {3.719, 1.234, 9.876, 4.567, 2.345};
  dnn_meas_stats s;
  dnn_error e;
  assert_ok(dnn_meas_stats_compute(x, 5, 0.95, &s, &e), &e);
  assert_close(s.median_s, 3.719, 1e-12);
  /* Five samples cannot reach 95%: [min, max] at 1 - 2/32 = 0.9375. */
  assert_close(s.ci_lo_s, 1.234, 1e-12);
  assert_close(s.ci_hi_s, 9.876, 1e-12);
  assert_close(s.confidence, 0.9375, 1e-12);
  assert_ok(dnn_meas_stats_compute(x, 1, 0.95, &s, &e), &e);
  assert_close(s.median_s, 3.719, 1e-12);
  assert_close(s.confidence, 0, 1e-12);
}

static void test_stats_errors(void **state) {
  (void)state;
  double x[3] = {1.5, NAN, 2.5};
  dnn_meas_stats s;
  dnn_error e;
  assert_int_equal(dnn_meas_stats_compute(x, 0, 0.95, &s, &e), DNN_EINVAL);
  assert_contains(e.msg, "no samples");
  assert_int_equal(dnn_meas_stats_compute(x, 3, 0.95, &s, &e), DNN_EINVAL);
  assert_contains(e.msg, "sample 1 is not finite");
  assert_int_equal(dnn_meas_stats_compute(x, 1, 1.0, &s, &e), DNN_EINVAL);
  assert_contains(e.msg, "outside (0, 1)");
  test_alloc_state a;
  test_alloc_install(&a, 0);
  assert_int_equal(dnn_meas_stats_compute(x, 1, 0.95, &s, &e), DNN_ENOMEM);
  test_alloc_restore();
}

static void test_params(void **state) {
  (void)state;
  dnn_error e;
  dnn_meas_repeat_params p = dnn_meas_repeat_default_params();
  assert_ok(dnn_meas_repeat_params_check(&p, &e), &e);
  assert_int_equal(p.min_samples, 10);
  assert_close(p.ci_rel, 0.05, 1e-12);
  p.max_samples = 3;
  assert_int_equal(dnn_meas_repeat_params_check(&p, &e), DNN_EINVAL);
  assert_contains(e.msg, "below min_samples");
  p = dnn_meas_repeat_quick_params();
  p.confidence = 1.5;
  assert_int_equal(dnn_meas_repeat_params_check(&p, &e), DNN_EINVAL);
  assert_contains(e.msg, "confidence");
  p = dnn_meas_repeat_default_params();
  p.ci_rel = -0.1;
  assert_int_equal(dnn_meas_repeat_params_check(&p, &e), DNN_EINVAL);
  p = dnn_meas_repeat_default_params();
  p.min_samples = 0;
  assert_int_equal(dnn_meas_repeat_params_check(&p, &e), DNN_EINVAL);
  /* Runs per sample: ceil(1 ms / run), within [1, max_runs]. */
  p = dnn_meas_repeat_default_params();
  assert_int_equal(dnn_meas_repeat_runs(&p, 3.7e-5), 28);
  assert_int_equal(dnn_meas_repeat_runs(&p, 0.25), 1);
  assert_int_equal(dnn_meas_repeat_runs(&p, 1e-9), 1000);
  assert_int_equal(dnn_meas_repeat_runs(&p, 0), 1000);
  p.min_sample_s = 0;
  assert_int_equal(dnn_meas_repeat_runs(&p, 1e-9), 1);
}

static void test_sampler_stops(void **state) {
  (void)state;
  dnn_meas_repeat_params p = dnn_meas_repeat_default_params();
  p.max_total_s = 0;
  dnn_meas_sampler *s = NULL;
  dnn_error e;
  assert_ok(dnn_meas_sampler_alloc(&p, &s, &e), &e);
  /* Stable samples: converged exactly at min_samples. */
  dnn_meas_sampler_reset(s, 7);
  size_t n = 0;
  while (!dnn_meas_sampler_done(s)) {
    dnn_meas_sampler_add(s, 3.719e-3 * (1 + 0.001 * (double)(n % 3)));
    n++;
  }
  assert_int_equal(n, 10);
  dnn_meas_stats st;
  dnn_meas_sampler_stats(s, &st);
  assert_true(st.converged);
  assert_int_equal(st.runs, 7);
  assert_close(st.median_s, 3.719e-3 * 1.001, 1e-9);
  /* Samples alternating by a factor 2: never within 5%, stops at the cap. */
  dnn_meas_sampler_reset(s, 1);
  n = 0;
  while (!dnn_meas_sampler_done(s)) {
    dnn_meas_sampler_add(s, n % 2 ? 2.5e-3 : 5e-3);
    n++;
  }
  assert_int_equal(n, 100);
  dnn_meas_sampler_stats(s, &st);
  assert_false(st.converged);
  assert_int_equal(st.samples, 100);
  dnn_meas_sampler_free(s);
  /* A time budget cuts a slow, noisy kernel short, but not below 3. */
  p.max_total_s = 1;
  assert_ok(dnn_meas_sampler_alloc(&p, &s, &e), &e);
  dnn_meas_sampler_reset(s, 1);
  n = 0;
  while (!dnn_meas_sampler_done(s)) {
    dnn_meas_sampler_add(s, n % 2 ? 0.4 : 0.8);
    n++;
  }
  assert_int_equal(n, 3);
  dnn_meas_sampler_free(s);
  dnn_meas_sampler_free(NULL);
  p.max_samples = 0;
  assert_int_equal(dnn_meas_sampler_alloc(&p, &s, &e), DNN_EINVAL);
  assert_null(s);
}

/* A fake kernel whose run takes 2.5 us plus a deterministic wobble. */
typedef struct fake {
  size_t calls, runs_total;
  int fail_at;
} fake;

static dnn_status fake_run(void *ud, size_t runs, double *elapsed,
                           dnn_error *err) {
  fake *f = ud;
  if ((int)f->calls == f->fail_at)
    return DNN_FAIL(err, DNN_ETOOLFAIL, "fake kernel failed");
  f->calls++;
  f->runs_total += runs;
  *elapsed = (double)runs * 2.5e-6 * (1 + 0.01 * (double)(f->calls % 4));
  return DNN_OK;
}

static void test_repeat_driver(void **state) {
  (void)state;
  dnn_meas_repeat_params p = dnn_meas_repeat_default_params();
  fake f = {0, 0, -1};
  dnn_meas_stats s;
  dnn_error e;
  assert_ok(dnn_meas_repeat_run(&p, fake_run, &f, &s, &e), &e);
  /* Warm-up of 2 runs (5.05 us) -> ceil(1 ms / 2.525 us) = 397 runs. */
  assert_int_equal(s.runs, 397);
  assert_true(s.converged);
  assert_int_equal(s.samples, 10);
  assert_int_equal(f.calls, 11);
  assert_true(s.median_s > 2.5e-6 && s.median_s < 2.6e-6);
  fake g = {0, 0, 3};
  assert_int_equal(dnn_meas_repeat_run(&p, fake_run, &g, &s, &e),
                   DNN_ETOOLFAIL);
  assert_contains(e.msg, "fake kernel failed");
  assert_true(dnn_meas_now_s() > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_median_ci_hand_values),
      cmocka_unit_test(test_median_odd_and_few),
      cmocka_unit_test(test_stats_errors),
      cmocka_unit_test(test_params),
      cmocka_unit_test(test_sampler_stops),
      cmocka_unit_test(test_repeat_driver),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
