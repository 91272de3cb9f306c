/* Tests of calibrate/derive.c: measured times move to another device by
 * the ratio of the rate that bounds each kernel. */
#include "test_util.h"

#include <math.h>

#include "dnnsim/calibrate.h"

static dnn_hw_params device_a(void) {
  dnn_hw_params p = dnn_hw_default_params();
  snprintf(p.name, sizeof p.name, "dev-a");
  p.peak_flops[DNN_DTYPE_FP32] = 1.0e13;
  p.mem_bandwidth_Bps = 8.0e11;
  p.mem_capacity_bytes = 16e9;
  p.launch_overhead_s = 5e-6;
  p.eff_compute[DNN_OP_GEMM] = 0.7;
  p.eff_memory[DNN_OP_GEMM] = 0.6;
  p.eff_memory[DNN_OP_ELTWISE] = 0.8;
  return p;
}

static dnn_meas_kernel_row row(const char *layer, dnn_layer_kind kind,
                               double flops, double bytes, double t) {
  dnn_meas_kernel_row r;
  memset(&r, 0, sizeof r);
  snprintf(r.backend, sizeof r.backend, "test");
  snprintf(r.network, sizeof r.network, "net");
  snprintf(r.layer, sizeof r.layer, "%s", layer);
  snprintf(r.signature, sizeof r.signature, "%s:sig", layer);
  r.kind = kind;
  r.pass = DNN_PASS_FWD;
  r.algo = DNN_CONV_ALGO_COUNT;
  r.dtype = DNN_DTYPE_FP32;
  r.batch = 4;
  r.flops = flops;
  r.bytes = bytes;
  r.t.samples = r.t.runs = 1;
  r.t.min_s = r.t.median_s = r.t.max_s = r.t.mean_s = t;
  r.t.ci_lo_s = r.t.ci_hi_s = t;
  r.verify_rel_l2 = r.verify_max_rel = 0;
  return r;
}

static void test_derive_scales(void **state) {
  (void)state;
  dnn_hw_params pa = device_a();
  dnn_hw *a = NULL, *b = NULL, *d = NULL;
  dnn_error e;
  assert_ok(dnn_hw_alloc(&pa, &a, &e), &e);
  /* B: 2.5x the compute, 1.6x the bandwidth, its own launch overhead. */
  dnn_hw_params pb = dnn_hw_default_params();
  snprintf(pb.name, sizeof pb.name, "dev-b");
  pb.peak_flops[DNN_DTYPE_FP32] = 2.5e13;
  pb.mem_bandwidth_Bps = 1.28e12;
  pb.mem_capacity_bytes = 40e9;
  pb.launch_overhead_s = 3e-6;
  assert_ok(dnn_hw_alloc(&pb, &b, &e), &e);
  dnn_meas_kernel_table *raw = NULL;
  assert_ok(dnn_meas_kernel_table_alloc(&raw, &e), &e);
  /* A GEMM bound by compute on A and a ReLU bound by memory. */
  dnn_meas_kernel_row g = row("fc", DNN_LAYER_FC, 7e10, 1e7, 1.1e-2);
  dnn_meas_kernel_row r = row("relu", DNN_LAYER_ACTIVATION, 1e6, 8e7, 1.3e-4);
  dnn_meas_kernel_row x = row("only-raw", DNN_LAYER_FC, 7e10, 1e7, 1.1e-2);
  assert_ok(dnn_meas_kernel_table_add(raw, &g, &e), &e);
  assert_ok(dnn_meas_kernel_table_add(raw, &r, &e), &e);
  assert_ok(dnn_meas_kernel_table_add(raw, &x, &e), &e);
  dnn_hw_kernel_row k = {g.signature,
                         DNN_PASS_FWD,
                         DNN_CONV_ALGO_COUNT,
                         DNN_DTYPE_FP32,
                         4,
                         g.t.median_s,
                         0};
  assert_ok(dnn_hw_kernel_add(a, &k, &e), &e);
  k.signature = r.signature;
  k.time_s = r.t.median_s;
  assert_ok(dnn_hw_kernel_add(a, &k, &e), &e);
  dnn_calib_derive_report rep;
  assert_ok(dnn_calib_derive(a, raw, b, "derived in a test", &d, &rep, &e), &e);
  const dnn_hw_params *q = dnn_hw_get(d);
  assert_string_equal(q->name, "dev-b");
  assert_close(q->peak_flops[DNN_DTYPE_FP32], 2.5e13, 0);
  assert_close(q->eff_compute[DNN_OP_GEMM], 0.7, 0);
  assert_close(q->eff_memory[DNN_OP_ELTWISE], 0.8, 0);
  assert_close(q->launch_overhead_s, 3e-6, 0);
  assert_contains(q->source, "derived");
  assert_string_equal(q->calibrated, "derived in a test");
  assert_int_equal(rep.rows_scaled, 2);
  assert_int_equal(rep.compute_bound, 1);
  assert_int_equal(rep.memory_bound, 1);
  assert_int_equal(rep.rows_dropped, 0);
  double t;
  /* GEMM: 3 us + (11 ms - 5 us) / 2.5. */
  assert_true(dnn_hw_kernel_lookup(d, "fc:sig", DNN_PASS_FWD,
                                   DNN_CONV_ALGO_COUNT, DNN_DTYPE_FP32, 4, &t));
  assert_close(t, 3e-6 + (1.1e-2 - 5e-6) / 2.5, 1e-12);
  /* ReLU: 3 us + (130 us - 5 us) / 1.6. */
  assert_true(dnn_hw_kernel_lookup(d, "relu:sig", DNN_PASS_FWD,
                                   DNN_CONV_ALGO_COUNT, DNN_DTYPE_FP32, 4, &t));
  assert_close(t, 3e-6 + (1.3e-4 - 5e-6) / 1.6, 1e-12);
  dnn_hw_free(d);

  /* A bandwidth-starved B: the GEMM becomes memory-bound there, so its
   * time is B's memory roof, not the compute-scaled time. */
  pb.peak_flops[DNN_DTYPE_FP32] = 1e15;
  pb.mem_bandwidth_Bps = 1e9;
  dnn_hw_free(b);
  assert_ok(dnn_hw_alloc(&pb, &b, &e), &e);
  assert_ok(dnn_calib_derive(a, raw, b, NULL, &d, NULL, &e), &e);
  assert_true(dnn_hw_kernel_lookup(d, "fc:sig", DNN_PASS_FWD,
                                   DNN_CONV_ALGO_COUNT, DNN_DTYPE_FP32, 4, &t));
  assert_close(t, 3e-6 + 1e7 / (1e9 * 0.6), 1e-12);
  dnn_hw_free(d);

  /* Without raw measurements only the efficiencies carry over. */
  assert_ok(dnn_calib_derive(a, NULL, b, NULL, &d, &rep, &e), &e);
  assert_int_equal(dnn_hw_kernel_count(d), 0);
  assert_int_equal(rep.rows_dropped, 2);
  dnn_hw_free(d);

  /* Kinds must match. */
  snprintf(pb.kind, sizeof pb.kind, "cpu");
  dnn_hw_free(b);
  assert_ok(dnn_hw_alloc(&pb, &b, &e), &e);
  assert_int_equal(dnn_calib_derive(a, raw, b, NULL, &d, NULL, &e), DNN_EINVAL);
  assert_contains(e.msg, "cannot derive a cpu profile");
  assert_null(d);
  dnn_meas_kernel_table_free(raw);
  dnn_hw_free(a);
  dnn_hw_free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_derive_scales),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
