/* Tests of calibrate/kernel.c: the roofline fit recovers the efficiencies,
 * n_1/2 and launch overhead that generated synthetic kernel times; the
 * model matches hw.h's; evaluation and the kept table work. */
#include "test_util.h"

#include <math.h>

#include "dnnsim/calibrate.h"

/* The device the synthetic kernels ran on. */
static dnn_hw_params truth(void) {
  dnn_hw_params p = dnn_hw_default_params();
  snprintf(p.name, sizeof p.name, "synthetic");
  snprintf(p.kind, sizeof p.kind, "gpu");
  p.peak_flops[DNN_DTYPE_FP32] = 1.5e13;
  p.mem_bandwidth_Bps = 9.0e11;
  p.mem_capacity_bytes = 16e9;
  p.launch_overhead_s = 4.1e-6;
  for (size_t a = 0; a < DNN_CONV_ALGO_COUNT; a++)
    p.eff_conv_algo[a] = 0;
  p.eff_conv_algo[DNN_CONV_DIRECT] = 0.613;
  p.eff_conv_algo[DNN_CONV_WINOGRAD] = 0.823;
  p.eff_compute[DNN_OP_CONV] = 0.823;
  p.eff_memory[DNN_OP_CONV] = 0.551;
  p.half_flops[DNN_OP_CONV] = 3.7e8;
  p.eff_compute[DNN_OP_GEMM] = 0.712;
  p.eff_memory[DNN_OP_GEMM] = 0.604;
  p.half_flops[DNN_OP_GEMM] = 1.3e8;
  p.eff_memory[DNN_OP_ELTWISE] = 0.771;
  p.eff_compute[DNN_OP_NORM] = 0.0213;
  p.eff_memory[DNN_OP_NORM] = 0.431;
  p.half_flops[DNN_OP_NORM] = 2.1e6;
  return p;
}

static void add(dnn_meas_kernel_table *t, const dnn_hw_params *p,
                dnn_layer_kind kind, dnn_conv_algo algo, size_t idx,
                double flops, double bytes) {
  dnn_meas_kernel_row r;
  memset(&r, 0, sizeof r);
  snprintf(r.backend, sizeof r.backend, "synthetic");
  snprintf(r.network, sizeof r.network, "net");
  snprintf(r.layer, sizeof r.layer, "%s%zu", dnn_layer_kind_name(kind), idx);
  snprintf(r.signature, sizeof r.signature, "%s:%zu:%.6g",
           dnn_layer_kind_name(kind), idx, flops);
  r.kind = kind;
  r.pass = DNN_PASS_FWD;
  r.algo = kind == DNN_LAYER_CONV2D ? algo : DNN_CONV_ALGO_COUNT;
  r.dtype = DNN_DTYPE_FP32;
  r.batch = 1 + idx % 4;
  r.flops = flops;
  r.bytes = bytes;
  double time = dnn_calib_roofline(p, dnn_layer_kind_opclass(kind), r.algo,
                                   DNN_DTYPE_FP32, flops, bytes);
  r.t.samples = 10;
  r.t.runs = 1;
  r.t.min_s = r.t.median_s = r.t.max_s = r.t.mean_s = time;
  r.t.ci_lo_s = r.t.ci_hi_s = time;
  r.verify_rel_l2 = r.verify_max_rel = 1e-7;
  dnn_error e;
  assert_ok(dnn_meas_kernel_table_add(t, &r, &e), &e);
}

/* Kernels spanning the compute- and memory-bound regimes of each class. */
static dnn_meas_kernel_table *synthetic(const dnn_hw_params *p) {
  dnn_meas_kernel_table *t = NULL;
  dnn_error e;
  assert_ok(dnn_meas_kernel_table_alloc(&t, &e), &e);
  size_t k = 0;
  for (double f = 1e7; f <= 3e11; f *= 2.3) {
    add(t, p, DNN_LAYER_CONV2D, DNN_CONV_DIRECT, k++, f, f / 40);
    add(t, p, DNN_LAYER_CONV2D, DNN_CONV_WINOGRAD, k++, f * 1.3, f / 25);
    add(t, p, DNN_LAYER_FC, DNN_CONV_ALGO_COUNT, k++, f, f / 30);
  }
  /* Memory-bound convolutions and GEMMs (depthwise-like, batch 1). */
  for (double b = 1e6; b <= 1e9; b *= 3.1) {
    add(t, p, DNN_LAYER_CONV2D, DNN_CONV_DIRECT, k++, b * 2, b);
    add(t, p, DNN_LAYER_FC, DNN_CONV_ALGO_COUNT, k++, b * 1.5, b);
  }
  for (double b = 1e4; b <= 1e9; b *= 2.9) {
    add(t, p, DNN_LAYER_ACTIVATION, DNN_CONV_ALGO_COUNT, k++, b / 8, b);
    add(t, p, DNN_LAYER_BATCHNORM, DNN_CONV_ALGO_COUNT, k++, b * 0.2, b);
    add(t, p, DNN_LAYER_BATCHNORM, DNN_CONV_ALGO_COUNT, k++, b * 3, b);
  }
  return t;
}

static void test_roofline_matches_hw(void **state) {
  (void)state;
  dnn_hw_params p = truth();
  dnn_hw *hw = NULL;
  dnn_error e;
  assert_ok(dnn_hw_alloc(&p, &hw, &e), &e);
  static const double work[][2] = {
      {3.7e9, 1.2e7}, {1.1e5, 4.4e6}, {0, 8.8e5}, {2.5e8, 0}, {0, 0}};
  for (size_t c = 0; c < DNN_OPCLASS_COUNT; c++)
    for (size_t i = 0; i < sizeof work / sizeof work[0]; i++) {
      if (c == DNN_OP_CONV)
        continue; /* convolutions go through their algorithm */
      double a = dnn_calib_roofline(&p, (dnn_opclass)c, DNN_CONV_ALGO_COUNT,
                                    DNN_DTYPE_FP32, work[i][0], work[i][1]);
      double b = dnn_hw_kernel_time(hw, (dnn_opclass)c, DNN_DTYPE_FP32,
                                    work[i][0], work[i][1]);
      assert_close(a, b, 1e-15);
    }
  /* A convolution uses its algorithm's efficiency; an unusable one is
   * infinitely slow; a dtype without a peak too. */
  double td = dnn_calib_roofline(&p, DNN_OP_CONV, DNN_CONV_DIRECT,
                                 DNN_DTYPE_FP32, 6.13e9, 1e6);
  assert_close(td, 4.1e-6 + (6.13e9 + 3.7e8) / (1.5e13 * 0.613), 1e-12);
  assert_true(isinf(dnn_calib_roofline(&p, DNN_OP_CONV, DNN_CONV_FFT,
                                       DNN_DTYPE_FP32, 1e9, 1e6)));
  assert_true(isinf(dnn_calib_roofline(&p, DNN_OP_GEMM, DNN_CONV_ALGO_COUNT,
                                       DNN_DTYPE_FP16, 1e9, 1e6)));
  dnn_hw_free(hw);
}

static void test_fit_recovers(void **state) {
  (void)state;
  dnn_hw_params p = truth();
  dnn_meas_kernel_table *t = synthetic(&p);
  /* The base knows the rates, not the efficiencies nor the overhead. */
  dnn_hw_params base = dnn_hw_default_params();
  snprintf(base.name, sizeof base.name, "fitted");
  base.peak_flops[DNN_DTYPE_FP32] = p.peak_flops[DNN_DTYPE_FP32];
  base.mem_bandwidth_Bps = p.mem_bandwidth_Bps;
  base.mem_capacity_bytes = p.mem_capacity_bytes;
  base.launch_overhead_s = 2e-6;
  dnn_calib_params cp = dnn_calib_default_params();
  dnn_calib_kernel_report rep;
  dnn_hw *hw = NULL;
  dnn_error e;
  assert_ok(
      dnn_calib_kernel_fit(t, &base, DNN_DTYPE_FP32, &cp, true, &hw, &rep, &e),
      &e);
  const dnn_hw_params *q = dnn_hw_get(hw);
  assert_close(q->launch_overhead_s, 4.1e-6, 0.01);
  assert_close(q->eff_conv_algo[DNN_CONV_DIRECT], 0.613, 0.01);
  assert_close(q->eff_conv_algo[DNN_CONV_WINOGRAD], 0.823, 0.01);
  assert_close(q->eff_compute[DNN_OP_CONV], 0.823, 0.01);
  assert_close(q->eff_conv_algo[DNN_CONV_FFT], 0, 0); /* never measured */
  assert_close(q->eff_conv_algo[DNN_CONV_IMPLICIT_GEMM], 0, 0);
  assert_close(q->eff_memory[DNN_OP_CONV], 0.551, 0.01);
  assert_close(q->half_flops[DNN_OP_CONV], 3.7e8, 0.05);
  assert_close(q->eff_compute[DNN_OP_GEMM], 0.712, 0.01);
  assert_close(q->eff_memory[DNN_OP_GEMM], 0.604, 0.01);
  assert_close(q->half_flops[DNN_OP_GEMM], 1.3e8, 0.05);
  assert_close(q->eff_memory[DNN_OP_ELTWISE], 0.771, 0.01);
  assert_close(q->eff_memory[DNN_OP_NORM], 0.431, 0.01);
  assert_close(q->eff_compute[DNN_OP_NORM], 0.0213, 0.01);
  assert_close(q->half_flops[DNN_OP_NORM], 2.1e6, 0.05);
  assert_true(rep.median_rel < 1e-3);
  assert_true(rep.max_rel < 0.02);
  assert_int_equal(rep.rows, dnn_meas_kernel_table_count(t));
  assert_close(rep.bandwidth_raised_Bps, 0, 0);
  assert_close(rep.peak_raised_flops, 0, 0);
  assert_false(rep.sets_peak[DNN_OP_GEMM]);
  /* The measured table is kept, one row per signature. */
  assert_int_equal(dnn_hw_kernel_count(hw), dnn_meas_kernel_table_count(t));
  dnn_calib_error err_model, err_table;
  assert_ok(dnn_calib_kernel_evaluate(hw, t, DNN_DTYPE_FP32, true, &err_model,
                                      NULL, NULL, &e),
            &e);
  assert_true(err_model.median_rel < 1e-3);
  assert_ok(dnn_calib_kernel_evaluate(hw, t, DNN_DTYPE_FP32, false, &err_table,
                                      NULL, NULL, &e),
            &e);
  assert_true(err_table.max_rel < 1e-12);
  dnn_hw_free(hw);
  dnn_meas_kernel_table_free(t);
}

/* Kernels faster than the base's peak or bandwidth raise it (caches,
 * a low benchmark); the predicted times stay the same. */
static void test_peaks_raised(void **state) {
  (void)state;
  dnn_hw_params p = truth();
  dnn_meas_kernel_table *t = synthetic(&p);
  dnn_hw_params base = p;
  base.mem_bandwidth_Bps = p.mem_bandwidth_Bps / 4;
  base.peak_flops[DNN_DTYPE_FP32] = p.peak_flops[DNN_DTYPE_FP32] / 2;
  dnn_calib_params cp = dnn_calib_default_params();
  dnn_calib_kernel_report rep;
  dnn_hw *hw = NULL;
  dnn_error e;
  assert_ok(
      dnn_calib_kernel_fit(t, &base, DNN_DTYPE_FP32, &cp, false, &hw, &rep, &e),
      &e);
  const dnn_hw_params *q = dnn_hw_get(hw);
  /* The fastest class (Winograd 0.823 of 1.5e13; eltwise 0.771 of 9e11)
   * sets the new peak and bandwidth. */
  assert_close(rep.peak_raised_flops, 0.823 * 1.5e13, 0.01);
  assert_close(q->peak_flops[DNN_DTYPE_FP32], rep.peak_raised_flops, 1e-12);
  assert_close(q->eff_conv_algo[DNN_CONV_WINOGRAD], 1, 1e-9);
  assert_close(q->eff_conv_algo[DNN_CONV_DIRECT], 0.613 / 0.823, 0.01);
  assert_close(rep.bandwidth_raised_Bps, 0.771 * 9e11, 0.01);
  assert_close(q->eff_memory[DNN_OP_ELTWISE], 1, 1e-9);
  assert_true(rep.sets_peak[DNN_OP_CONV]);
  assert_true(rep.sets_peak[DNN_OP_ELTWISE]);
  assert_int_equal(dnn_hw_kernel_count(hw), 0);
  assert_true(rep.median_rel < 1e-3);
  dnn_hw_free(hw);
  dnn_meas_kernel_table_free(t);
}

static void test_fit_errors(void **state) {
  (void)state;
  dnn_hw_params p = truth();
  dnn_meas_kernel_table *t = NULL;
  dnn_error e;
  assert_ok(dnn_meas_kernel_table_alloc(&t, &e), &e);
  dnn_calib_params cp = dnn_calib_default_params();
  dnn_hw *hw = NULL;
  assert_int_equal(
      dnn_calib_kernel_fit(t, &p, DNN_DTYPE_FP32, &cp, true, &hw, NULL, &e),
      DNN_EINVAL);
  assert_contains(e.msg, "no measured fp32 kernel");
  assert_int_equal(
      dnn_calib_kernel_fit(t, &p, DNN_DTYPE_BF16, &cp, true, &hw, NULL, &e),
      DNN_ERANGE);
  assert_contains(e.msg, "no bf16 peak");
  dnn_hw_params bad = p;
  bad.mem_bandwidth_Bps = -1;
  assert_int_equal(
      dnn_calib_kernel_fit(t, &bad, DNN_DTYPE_FP32, &cp, true, &hw, NULL, &e),
      DNN_ERANGE);
  assert_null(hw);
  dnn_meas_kernel_table_free(t);
  /* Allocation failures leave nothing behind. */
  dnn_meas_kernel_table *s = synthetic(&p);
  for (long k = 0; k < 5; k++) {
    test_alloc_state a;
    test_alloc_install(&a, k);
    dnn_status st =
        dnn_calib_kernel_fit(s, &p, DNN_DTYPE_FP32, &cp, true, &hw, NULL, &e);
    test_alloc_restore();
    assert_int_equal(st, DNN_ENOMEM);
    assert_null(hw);
  }
  dnn_meas_kernel_table_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roofline_matches_hw),
      cmocka_unit_test(test_fit_recovers),
      cmocka_unit_test(test_peaks_raised),
      cmocka_unit_test(test_fit_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
