/*
 * Tests of scenarios/hw.c and scenarios/links.c: the built-in profiles and
 * links, the roofline time model with its small-size correction and launch
 * overhead, convolution algorithm choice under a workspace limit, measured
 * kernel tables (hit, interpolation, extrapolation), every profile and
 * kernel-CSV error with its FILE:LINE, and the save/load round trip.
 */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dnnsim/hw.h"
#include "dnnsim/model.h"

/* ---- Helpers ------------------------------------------------------------ */

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

static char tmpdir[256];

static int group_setup(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/dnnsim-test-hw-XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

/* Writes `text` to tmpdir/name; returns the path (static buffer). */
static const char *write_file(const char *name, const char *text) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  return path;
}

/* Parameters with high-entropy values, valid for dnn_hw_alloc. */
static dnn_hw_params test_params(void) {
  dnn_hw_params p = dnn_hw_default_params();
  snprintf(p.name, sizeof p.name, "test-device");
  p.peak_flops[DNN_DTYPE_FP32] = 13.7e12;
  p.peak_flops[DNN_DTYPE_FP16] = 97.3e12;
  p.mem_bandwidth_Bps = 817e9;
  p.mem_capacity_bytes = 23.9e9;
  p.mem_reserved_bytes = 0.713e9;
  p.launch_overhead_s = 4.19e-6;
  for (size_t c = 0; c < DNN_OPCLASS_COUNT; c++) {
    p.eff_compute[c] = 0.731 - 0.031 * (double)c;
    p.eff_memory[c] = 0.863 - 0.017 * (double)c;
    p.half_flops[c] = 3.71e7 * (double)(c + 1);
  }
  for (size_t a = 0; a < DNN_CONV_ALGO_COUNT; a++)
    p.eff_conv_algo[a] = 0.61 - 0.043 * (double)a;
  return p;
}

static dnn_hw *alloc_hw(const dnn_hw_params *p) {
  dnn_error e;
  dnn_hw *hw = NULL;
  assert_ok(dnn_hw_alloc(p, &hw, &e), &e);
  return hw;
}

/* Fails unless two parameter sets are identical, naming the field. */
static void assert_params_equal(const dnn_hw_params *a,
                                const dnn_hw_params *b) {
  assert_string_equal(a->name, b->name);
  assert_string_equal(a->kind, b->kind);
  assert_string_equal(a->source, b->source);
  assert_string_equal(a->calibrated, b->calibrated);
#define SAME(x)                                                                \
  do {                                                                         \
    if (!(a->x == b->x))                                                       \
      fail_msg("%s differs: %.17g vs %.17g", #x, a->x, b->x);                  \
  } while (0)
  for (size_t t = 0; t < DNN_DTYPE_COUNT; t++)
    SAME(peak_flops[t]);
  SAME(mem_bandwidth_Bps);
  SAME(mem_capacity_bytes);
  SAME(mem_reserved_bytes);
  SAME(launch_overhead_s);
  for (size_t c = 0; c < DNN_OPCLASS_COUNT; c++) {
    SAME(eff_compute[c]);
    SAME(eff_memory[c]);
    SAME(half_flops[c]);
  }
  for (size_t k = 0; k < DNN_CONV_ALGO_COUNT; k++)
    SAME(eff_conv_algo[k]);
  assert_int_equal(a->comm_progress, b->comm_progress);
#undef SAME
}

/* The smallest valid profile file, with `extra` appended to [efficiency]. */
static const char *MINIMAL = "; a test profile\n"
                             "[device]\n"
                             "name = mini\n"
                             "kind = gpu\n"
                             "[compute]\n"
                             "peak_fp32_TFLOPS = 7.31\n"
                             "peak_tf32_TFLOPS = 0\n"
                             "peak_fp16_TFLOPS = 29.3\n"
                             "peak_bf16_TFLOPS = 0\n"
                             "launch_overhead_us = 3.7\n"
                             "[memory]\n"
                             "bandwidth_GBps = 611\n"
                             "capacity_GB = 11.3\n";

/* Loads profile text from a file; returns the status, message in *e. */
static dnn_status load_text(const char *name, const char *text, dnn_hw **hw,
                            dnn_error *e) {
  dnn_error_clear(e);
  *hw = NULL;
  return dnn_hw_load(write_file(name, text), hw, e);
}

/* A small CNN: input 64x28x28, a 3x3 conv, a relu and a 5x5 strided conv. */
static dnn_net *small_net(void) {
  dnn_error e;
  dnn_net *net = NULL;
  assert_ok(dnn_net_alloc("small", &net, &e), &e);
  dnn_layer_spec in = dnn_layer_default_spec(DNN_LAYER_INPUT);
  in.name = "in";
  in.input_shape.rank = 3;
  in.input_shape.dim[0] = 64;
  in.input_shape.dim[1] = 28;
  in.input_shape.dim[2] = 28;
  assert_ok(dnn_net_add(net, &in, NULL, &e), &e);
  dnn_layer_spec c1 = dnn_layer_default_spec(DNN_LAYER_CONV2D);
  c1.name = "conv3";
  c1.inputs[0] = "in";
  c1.n_inputs = 1;
  c1.p.conv.out_channels = 96;
  c1.p.conv.kernel_h = c1.p.conv.kernel_w = 3;
  c1.p.conv.pad_h = c1.p.conv.pad_w = 1;
  assert_ok(dnn_net_add(net, &c1, NULL, &e), &e);
  dnn_layer_spec r = dnn_layer_default_spec(DNN_LAYER_ACTIVATION);
  r.name = "relu";
  r.inputs[0] = "conv3";
  r.n_inputs = 1;
  r.p.act.act = DNN_ACT_RELU;
  assert_ok(dnn_net_add(net, &r, NULL, &e), &e);
  dnn_layer_spec c2 = dnn_layer_default_spec(DNN_LAYER_CONV2D);
  c2.name = "conv5s2";
  c2.inputs[0] = "relu";
  c2.n_inputs = 1;
  c2.p.conv.out_channels = 48;
  c2.p.conv.kernel_h = c2.p.conv.kernel_w = 5;
  c2.p.conv.stride_h = c2.p.conv.stride_w = 2;
  c2.p.conv.pad_h = c2.p.conv.pad_w = 2;
  assert_ok(dnn_net_add(net, &c2, NULL, &e), &e);
  return net;
}

/* ---- Built-in profiles -------------------------------------------------- */

static void test_builtin_profiles(void **state) {
  (void)state;
  static const char *const expected[] = {"a100-sxm4-80gb", "cpu-generic",
                                         "h100-sxm5",      "h200",
                                         "p100-sxm2",      "v100-sxm2"};
  const char *const *names = dnn_hw_builtin_list();
  size_t n = 0;
  while (names[n])
    n++;
  assert_int_equal(n, NELEMS(expected));
  for (size_t i = 0; i < n; i++) {
    dnn_error e;
    dnn_hw *hw = NULL;
    assert_ok(dnn_hw_load(names[i], &hw, &e), &e);
    const dnn_hw_params *p = dnn_hw_get(hw);
    assert_string_equal(p->name, names[i]);
    assert_ok(dnn_hw_params_check(p, &e), &e);
    assert_true(strcmp(p->kind, "gpu") == 0 || strcmp(p->kind, "cpu") == 0);
    assert_string_equal(p->calibrated, "no");
    assert_true(strlen(p->source) > 10);
    assert_true(p->peak_flops[DNN_DTYPE_FP32] > 0);
    assert_int_equal(dnn_hw_kernel_count(hw), 0);
    assert_non_null(dnn_hw_builtin_text(names[i]));
    dnn_hw_free(hw);
  }
  for (size_t i = 0; i < NELEMS(expected); i++)
    assert_non_null(dnn_hw_builtin_text(expected[i]));
  assert_null(dnn_hw_builtin_text("v100"));
}

static void test_known_values(void **state) {
  (void)state;
  struct {
    const char *name;
    double fp32, tf32, fp16, bf16, bw, cap;
  } want[] = {
      {"p100-sxm2", 10.6e12, 0, 21.2e12, 0, 732e9, 16e9},
      {"v100-sxm2", 15.7e12, 0, 125e12, 0, 900e9, 32e9},
      {"a100-sxm4-80gb", 19.5e12, 156e12, 312e12, 312e12, 2039e9, 80e9},
      {"h100-sxm5", 67e12, 494.7e12, 989.4e12, 989.4e12, 3.35e12, 80e9},
      {"h200", 67e12, 494.7e12, 989.4e12, 989.4e12, 4.8e12, 141e9},
      {"cpu-generic", 1.024e12, 0, 0, 0, 102.4e9, 64e9},
  };
  for (size_t i = 0; i < NELEMS(want); i++) {
    dnn_error e;
    dnn_hw *hw = NULL;
    assert_ok(dnn_hw_load(want[i].name, &hw, &e), &e);
    const dnn_hw_params *p = dnn_hw_get(hw);
    assert_close(p->peak_flops[DNN_DTYPE_FP32], want[i].fp32, 1e-12);
    assert_close(p->peak_flops[DNN_DTYPE_TF32], want[i].tf32, 1e-12);
    assert_close(p->peak_flops[DNN_DTYPE_FP16], want[i].fp16, 1e-12);
    assert_close(p->peak_flops[DNN_DTYPE_BF16], want[i].bf16, 1e-12);
    assert_close(p->mem_bandwidth_Bps, want[i].bw, 1e-12);
    assert_close(p->mem_capacity_bytes, want[i].cap, 1e-12);
    assert_true(p->launch_overhead_s > 1e-7 && p->launch_overhead_s < 1e-4);
    dnn_hw_free(hw);
  }
}

static void test_unknown_builtin(void **state) {
  (void)state;
  dnn_error e;
  dnn_hw *hw = NULL;
  assert_int_equal(dnn_hw_load("h100-sxm", &hw, &e), DNN_ENOTFOUND);
  assert_null(hw);
  assert_contains(e.msg, "unknown hardware profile 'h100-sxm'");
  assert_contains(e.msg, "did you mean 'h100-sxm5'");
  assert_contains(e.msg, "v100-sxm2");
  assert_int_equal(dnn_hw_load("tpu", &hw, &e), DNN_ENOTFOUND);
  assert_true(strstr(e.msg, "did you mean") == NULL);
  /* A path that does not exist is an I/O error, not a built-in. */
  assert_int_equal(dnn_hw_load("/nonexistent/dir/p.ini", &hw, &e), DNN_EIO);
  assert_contains(e.msg, "/nonexistent/dir/p.ini");
}

/* ---- Parameters --------------------------------------------------------- */

static void test_params_check(void **state) {
  (void)state;
  dnn_error e;
  dnn_hw_params p = test_params();
  assert_ok(dnn_hw_params_check(&p, &e), &e);

  /* Defaults have no peaks: the check names the missing piece. */
  dnn_hw_params d = dnn_hw_default_params();
  assert_int_equal(dnn_hw_params_check(&d, &e), DNN_ERANGE);
  dnn_hw *hw = NULL;
  assert_int_equal(dnn_hw_alloc(&d, &hw, &e), DNN_ERANGE);
  assert_null(hw);

  p = test_params();
  p.peak_flops[DNN_DTYPE_FP16] = -3.1e12;
  assert_int_equal(dnn_hw_params_check(&p, &e), DNN_ERANGE);
  assert_contains(e.msg, "peak_fp16_TFLOPS");
  assert_contains(e.msg, "peak_flops");

  p = test_params();
  for (size_t t = 0; t < DNN_DTYPE_COUNT; t++)
    p.peak_flops[t] = 0;
  assert_int_equal(dnn_hw_params_check(&p, &e), DNN_ERANGE);
  assert_contains(e.msg, "every peak is 0");

  p = test_params();
  p.mem_bandwidth_Bps = 0;
  assert_int_equal(dnn_hw_params_check(&p, &e), DNN_ERANGE);
  assert_contains(e.msg, "bandwidth_GBps");

  p = test_params();
  p.eff_memory[DNN_OP_NORM] = 1.07;
  assert_int_equal(dnn_hw_params_check(&p, &e), DNN_ERANGE);
  assert_contains(e.msg, "memory.norm");

  p = test_params();
  p.eff_compute[DNN_OP_GEMM] = 0;
  assert_int_equal(dnn_hw_params_check(&p, &e), DNN_ERANGE);
  assert_contains(e.msg, "compute.gemm");

  p = test_params();
  p.half_flops[DNN_OP_RNN] = NAN;
  assert_int_equal(dnn_hw_params_check(&p, &e), DNN_ERANGE);
  assert_contains(e.msg, "half_flops.rnn");

  p = test_params();
  p.eff_conv_algo[DNN_CONV_FFT] = -0.1;
  assert_int_equal(dnn_hw_params_check(&p, &e), DNN_ERANGE);
  assert_contains(e.msg, "conv_algo.fft");

  p = test_params();
  for (size_t a = 0; a < DNN_CONV_ALGO_COUNT; a++)
    p.eff_conv_algo[a] = 0;
  assert_int_equal(dnn_hw_params_check(&p, &e), DNN_ERANGE);
  assert_contains(e.msg, "every conv_algo efficiency is 0");

  p = test_params();
  p.mem_reserved_bytes = p.mem_capacity_bytes;
  assert_int_equal(dnn_hw_params_check(&p, &e), DNN_ERANGE);
  assert_contains(e.msg, "reserved_GB");

  p = test_params();
  p.launch_overhead_s = -1e-6;
  assert_int_equal(dnn_hw_params_check(&p, &e), DNN_ERANGE);
  assert_contains(e.msg, "launch_overhead_us");

  p = test_params();
  snprintf(p.kind, sizeof p.kind, "tpu");
  assert_int_equal(dnn_hw_params_check(&p, &e), DNN_ERANGE);
  assert_contains(e.msg, "kind");

  p = test_params();
  snprintf(p.source, sizeof p.source, "datasheet ; page 3");
  assert_int_equal(dnn_hw_params_check(&p, &e), DNN_ERANGE);
  assert_contains(e.msg, "source");

  p = test_params();
  snprintf(p.name, sizeof p.name, "two\nlines");
  assert_int_equal(dnn_hw_params_check(&p, &e), DNN_ERANGE);
  assert_contains(e.msg, "control character");
}

/* ---- Time model --------------------------------------------------------- */

static void test_roofline_by_hand(void **state) {
  (void)state;
  dnn_hw_params p = test_params();
  dnn_hw *hw = alloc_hw(&p);
  /* Compute-bound GEMM: 2.3719e11 FLOP over 1.37e8 bytes. */
  double f = 2.3719e11, b = 1.37e8;
  double rate = 13.7e12 * p.eff_compute[DNN_OP_GEMM];
  double tc = (f + p.half_flops[DNN_OP_GEMM]) / rate;
  double tm = b / (817e9 * p.eff_memory[DNN_OP_GEMM]);
  assert_true(tc > tm);
  assert_close(dnn_hw_kernel_time(hw, DNN_OP_GEMM, DNN_DTYPE_FP32, f, b),
               4.19e-6 + tc, 1e-12);
  /* The same in fp16 is faster by the peak ratio (compute term only). */
  double tc16 =
      (f + p.half_flops[DNN_OP_GEMM]) / (97.3e12 * p.eff_compute[DNN_OP_GEMM]);
  assert_close(dnn_hw_kernel_time(hw, DNN_OP_GEMM, DNN_DTYPE_FP16, f, b),
               4.19e-6 + (tc16 > tm ? tc16 : tm), 1e-12);

  /* Memory-bound eltwise: 1.3e7 FLOP over 4.7e9 bytes. */
  f = 1.3e7;
  b = 4.7e9;
  tm = b / (817e9 * p.eff_memory[DNN_OP_ELTWISE]);
  tc = (f + p.half_flops[DNN_OP_ELTWISE]) /
       (13.7e12 * p.eff_compute[DNN_OP_ELTWISE]);
  assert_true(tm > tc);
  assert_close(dnn_hw_kernel_time(hw, DNN_OP_ELTWISE, DNN_DTYPE_FP32, f, b),
               4.19e-6 + tm, 1e-12);
  dnn_hw_free(hw);
}

static void test_small_size_and_launch(void **state) {
  (void)state;
  dnn_hw_params p = test_params();
  dnn_hw *hw = alloc_hw(&p);
  double n_half = p.half_flops[DNN_OP_CONV];
  double rate = 13.7e12 * p.eff_compute[DNN_OP_CONV];
  /* Hockney: at work n_1/2 the kernel runs at half its asymptotic rate
   * (launch overhead aside). */
  double t = dnn_hw_kernel_time(hw, DNN_OP_CONV, DNN_DTYPE_FP32, n_half, 0);
  assert_close(n_half / (t - 4.19e-6), rate / 2, 1e-12);
  /* At 1000 n_1/2 it is within 0.1% of the asymptotic rate. */
  t = dnn_hw_kernel_time(hw, DNN_OP_CONV, DNN_DTYPE_FP32, 1000 * n_half, 0);
  assert_close(1000 * n_half / (t - 4.19e-6), rate * 1000 / 1001, 1e-12);

  /* No work: no launch. */
  assert_true(dnn_hw_kernel_time(hw, DNN_OP_GEMM, DNN_DTYPE_FP32, 0, 0) == 0);
  /* A tiny kernel costs about the launch overhead. */
  assert_close(dnn_hw_kernel_time(hw, DNN_OP_COPY, DNN_DTYPE_FP32, 0, 7.0),
               4.19e-6 + 7.0 / (817e9 * p.eff_memory[DNN_OP_COPY]), 1e-12);
  /* A pure copy pays no n_1/2. */
  assert_close(dnn_hw_kernel_time(hw, DNN_OP_COPY, DNN_DTYPE_FP32, 0, 3.3e6),
               4.19e-6 + 3.3e6 / (817e9 * p.eff_memory[DNN_OP_COPY]), 1e-12);
  /* The launch overhead is added once. */
  p.launch_overhead_s = 0;
  dnn_hw *hw0 = alloc_hw(&p);
  double a = dnn_hw_kernel_time(hw, DNN_OP_NORM, DNN_DTYPE_FP16, 5.1e9, 2.9e9);
  double a0 =
      dnn_hw_kernel_time(hw0, DNN_OP_NORM, DNN_DTYPE_FP16, 5.1e9, 2.9e9);
  assert_close(a - a0, 4.19e-6, 1e-9);
  /* A dtype with peak 0 is unusable. */
  assert_true(
      isinf(dnn_hw_kernel_time(hw, DNN_OP_GEMM, DNN_DTYPE_BF16, 1.7e9, 3.1e6)));
  assert_true(
      isinf(dnn_hw_kernel_time(hw, DNN_OP_COPY, DNN_DTYPE_TF32, 0, 3.1e6)));
  dnn_hw_free(hw);
  dnn_hw_free(hw0);
}

static void test_conv_algorithms(void **state) {
  (void)state;
  dnn_net *net = small_net();
  dnn_hw_params p = test_params();
  dnn_hw *hw = alloc_hw(&p);
  const size_t conv3 = 1, batch = 37;
  /* Each algorithm's time is its own roofline with eff_conv_algo. */
  size_t applicable = 0;
  for (size_t a = 0; a < DNN_CONV_ALGO_COUNT; a++) {
    dnn_conv_algo_cost c;
    dnn_conv_algo_cost_get(net, conv3, DNN_PASS_FWD, (dnn_conv_algo)a, batch,
                           DNN_DTYPE_FP32, &c);
    double ws = -1;
    double t = dnn_hw_conv_time(hw, net, conv3, DNN_PASS_FWD, (dnn_conv_algo)a,
                                batch, DNN_DTYPE_FP32, &ws);
    if (!c.applicable) {
      assert_true(isinf(t));
      continue;
    }
    applicable++;
    assert_close(ws, c.workspace_bytes, 1e-15);
    double tc =
        (c.flops + p.half_flops[DNN_OP_CONV]) / (13.7e12 * p.eff_conv_algo[a]);
    double tm =
        (c.bytes_read + c.bytes_written) / (817e9 * p.eff_memory[DNN_OP_CONV]);
    assert_close(t, 4.19e-6 + (tc > tm ? tc : tm), 1e-12);
  }
  assert_true(applicable >= 3);
  /* Efficiency 0 makes an algorithm unusable. */
  p.eff_conv_algo[DNN_CONV_IMPLICIT_PRECOMP_GEMM] = 0;
  dnn_hw *hw2 = alloc_hw(&p);
  assert_true(isinf(dnn_hw_conv_time(hw2, net, conv3, DNN_PASS_FWD,
                                     DNN_CONV_IMPLICIT_PRECOMP_GEMM, batch,
                                     DNN_DTYPE_FP32, NULL)));
  dnn_hw_free(hw2);
  /* Winograd cannot run a strided 5x5 convolution. */
  double ws = -1;
  assert_true(
      isinf(dnn_hw_conv_time(hw, net, 3, DNN_PASS_FWD, DNN_CONV_WINOGRAD, batch,
                             DNN_DTYPE_FP32, &ws)));
  assert_true(ws == 0);
  /* Not a convolution: no algorithm applies. */
  assert_true(
      isinf(dnn_hw_conv_time(hw, net, 2, DNN_PASS_FWD, DNN_CONV_IMPLICIT_GEMM,
                             batch, DNN_DTYPE_FP32, NULL)));
  dnn_hw_free(hw);
  dnn_net_free(net);
}

/* The choice is the minimum over the algorithms that fit. */
static void check_choice(const dnn_hw *hw, const dnn_net *net, size_t i,
                         dnn_pass pass, size_t batch, double limit) {
  dnn_conv_algo algo = DNN_CONV_ALGO_COUNT;
  double ws = -1;
  double t = dnn_hw_layer_time(hw, net, i, pass, batch, DNN_DTYPE_FP32, limit,
                               &algo, &ws);
  dnn_cost c;
  dnn_layer_cost(net, i, pass, batch, DNN_DTYPE_FP32, &c);
  if (c.flops == 0) {
    /* A pass the layer does not have (bwd_data of the first conv). */
    assert_true(t == 0);
    assert_int_equal(algo, DNN_CONV_ALGO_COUNT);
    assert_true(ws == 0);
    return;
  }
  assert_true((unsigned)algo < DNN_CONV_ALGO_COUNT);
  assert_true(ws <= limit);
  double best = INFINITY;
  for (size_t a = 0; a < DNN_CONV_ALGO_COUNT; a++) {
    double w = 0;
    double ta = dnn_hw_conv_time(hw, net, i, pass, (dnn_conv_algo)a, batch,
                                 DNN_DTYPE_FP32, &w);
    if (w <= limit && ta < best)
      best = ta;
  }
  assert_close(t, best, 1e-15);
  double w2 = -1;
  assert_close(
      dnn_hw_conv_time(hw, net, i, pass, algo, batch, DNN_DTYPE_FP32, &w2), t,
      1e-15);
  assert_close(w2, ws, 1e-15);
}

static void test_algorithm_choice_under_limit(void **state) {
  (void)state;
  dnn_net *net = small_net();
  const char *const profiles[] = {"p100-sxm2", "v100-sxm2", "h100-sxm5",
                                  "cpu-generic"};
  for (size_t k = 0; k < NELEMS(profiles); k++) {
    dnn_error e;
    dnn_hw *hw = NULL;
    assert_ok(dnn_hw_load(profiles[k], &hw, &e), &e);
    for (dnn_pass pass = 0; pass < DNN_PASS_COUNT; pass++) {
      dnn_conv_algo big = DNN_CONV_ALGO_COUNT, none = DNN_CONV_ALGO_COUNT;
      double ws_big = -1, ws_none = -1;
      double t_big = dnn_hw_layer_time(hw, net, 1, pass, 64, DNN_DTYPE_FP32,
                                       INFINITY, &big, &ws_big);
      double t_none = dnn_hw_layer_time(hw, net, 1, pass, 64, DNN_DTYPE_FP32, 0,
                                        &none, &ws_none);
      assert_true(isfinite(t_none));
      assert_true(pass == DNN_PASS_BWD_DATA ? t_none == 0 : t_none > 0);
      assert_true(ws_none == 0);
      assert_true(t_big <= t_none);
      check_choice(hw, net, 1, pass, 64, INFINITY);
      check_choice(hw, net, 1, pass, 64, 0);
      check_choice(hw, net, 1, pass, 64, ws_big / 2);
      check_choice(hw, net, 3, pass, 64, INFINITY);
      check_choice(hw, net, 3, pass, 64, 0);
      /* On the GPU profiles the unlimited forward choice needs workspace,
       * so shrinking the limit to 0 changes the algorithm. */
      if (pass == DNN_PASS_FWD && k < 3) {
        assert_true(ws_big > 0);
        assert_int_not_equal(big, none);
        assert_true(t_big < t_none);
      }
    }
    dnn_hw_free(hw);
  }
  dnn_net_free(net);
}

static void test_layer_time_non_conv(void **state) {
  (void)state;
  dnn_net *net = small_net();
  dnn_hw_params p = test_params();
  dnn_hw *hw = alloc_hw(&p);
  dnn_cost c;
  dnn_layer_cost(net, 2, DNN_PASS_FWD, 19, DNN_DTYPE_FP16, &c);
  dnn_conv_algo algo = DNN_CONV_IMPLICIT_GEMM;
  double ws = -1;
  double t = dnn_hw_layer_time(hw, net, 2, DNN_PASS_FWD, 19, DNN_DTYPE_FP16,
                               1e9, &algo, &ws);
  assert_int_equal(algo, DNN_CONV_ALGO_COUNT);
  assert_true(ws == 0);
  assert_close(t,
               dnn_hw_kernel_time(hw, DNN_OP_ELTWISE, DNN_DTYPE_FP16, c.flops,
                                  c.bytes_read + c.bytes_written),
               1e-15);
  assert_true(t > 4.19e-6);
  /* bwd_weights of a relu does not exist: zero, no launch. */
  assert_true(dnn_hw_layer_time(hw, net, 2, DNN_PASS_BWD_WEIGHTS, 19,
                                DNN_DTYPE_FP16, 1e9, &algo, &ws) == 0);
  assert_int_equal(algo, DNN_CONV_ALGO_COUNT);
  /* Outputs may be NULL. */
  assert_close(dnn_hw_layer_time(hw, net, 1, DNN_PASS_FWD, 19, DNN_DTYPE_FP16,
                                 1e9, NULL, NULL),
               dnn_hw_layer_time(hw, net, 1, DNN_PASS_FWD, 19, DNN_DTYPE_FP16,
                                 1e9, &algo, &ws),
               1e-15);
  dnn_hw_free(hw);
  dnn_net_free(net);
}

/* ---- Measured kernel tables --------------------------------------------- */

static void add_row(dnn_hw *hw, const char *sig, dnn_pass pass,
                    dnn_conv_algo algo, size_t batch, double t, double ws) {
  dnn_error e;
  dnn_hw_kernel_row r = {sig, pass, algo, DNN_DTYPE_FP32, batch, t, ws};
  assert_ok(dnn_hw_kernel_add(hw, &r, &e), &e);
}

static void test_kernel_lookup(void **state) {
  (void)state;
  dnn_hw_params p = test_params();
  dnn_hw *hw = alloc_hw(&p);
  const char *sig = "fc:f1024:o4096:b1";
  /* Added out of order; a second key interleaved. */
  add_row(hw, sig, DNN_PASS_FWD, DNN_CONV_ALGO_COUNT, 64, 4.91e-3, 0);
  add_row(hw, "other", DNN_PASS_FWD, DNN_CONV_ALGO_COUNT, 32, 9.9e-3, 0);
  add_row(hw, sig, DNN_PASS_FWD, DNN_CONV_ALGO_COUNT, 16, 1.37e-3, 0);
  add_row(hw, sig, DNN_PASS_FWD, DNN_CONV_ALGO_COUNT, 256, 1.873e-2, 0);
  add_row(hw, sig, DNN_PASS_BWD_DATA, DNN_CONV_ALGO_COUNT, 16, 2.9e-3, 0);
  assert_int_equal(dnn_hw_kernel_count(hw), 5);
  double t = 0;
  /* Exact hits. */
  assert_true(dnn_hw_kernel_lookup(hw, sig, DNN_PASS_FWD, DNN_CONV_ALGO_COUNT,
                                   DNN_DTYPE_FP32, 16, &t));
  assert_close(t, 1.37e-3, 1e-15);
  assert_true(dnn_hw_kernel_lookup(hw, sig, DNN_PASS_FWD, DNN_CONV_ALGO_COUNT,
                                   DNN_DTYPE_FP32, 64, &t));
  assert_close(t, 4.91e-3, 1e-15);
  assert_true(dnn_hw_kernel_lookup(
      hw, sig, DNN_PASS_BWD_DATA, DNN_CONV_ALGO_COUNT, DNN_DTYPE_FP32, 16, &t));
  assert_close(t, 2.9e-3, 1e-15);
  /* Linear in time between the neighbours 16 and 64. */
  assert_true(dnn_hw_kernel_lookup(hw, sig, DNN_PASS_FWD, DNN_CONV_ALGO_COUNT,
                                   DNN_DTYPE_FP32, 37, &t));
  assert_close(t, 1.37e-3 + (4.91e-3 - 1.37e-3) * (37.0 - 16) / (64 - 16),
               1e-12);
  /* Between 64 and 256. */
  assert_true(dnn_hw_kernel_lookup(hw, sig, DNN_PASS_FWD, DNN_CONV_ALGO_COUNT,
                                   DNN_DTYPE_FP32, 100, &t));
  assert_close(t, 4.91e-3 + (1.873e-2 - 4.91e-3) * (100.0 - 64) / (256 - 64),
               1e-12);
  /* Proportional beyond the largest and below the smallest. */
  assert_true(dnn_hw_kernel_lookup(hw, sig, DNN_PASS_FWD, DNN_CONV_ALGO_COUNT,
                                   DNN_DTYPE_FP32, 1000, &t));
  assert_close(t, 1.873e-2 * 1000 / 256, 1e-12);
  assert_true(dnn_hw_kernel_lookup(hw, sig, DNN_PASS_FWD, DNN_CONV_ALGO_COUNT,
                                   DNN_DTYPE_FP32, 5, &t));
  assert_close(t, 1.37e-3 * 5 / 16, 1e-12);
  /* Misses: other dtype, pass, algorithm or signature. */
  assert_false(dnn_hw_kernel_lookup(hw, sig, DNN_PASS_FWD, DNN_CONV_ALGO_COUNT,
                                    DNN_DTYPE_FP16, 16, &t));
  assert_false(dnn_hw_kernel_lookup(hw, sig, DNN_PASS_BWD_WEIGHTS,
                                    DNN_CONV_ALGO_COUNT, DNN_DTYPE_FP32, 16,
                                    &t));
  assert_false(dnn_hw_kernel_lookup(hw, sig, DNN_PASS_FWD, DNN_CONV_GEMM,
                                    DNN_DTYPE_FP32, 16, &t));
  assert_false(dnn_hw_kernel_lookup(hw, "fc:f1024", DNN_PASS_FWD,
                                    DNN_CONV_ALGO_COUNT, DNN_DTYPE_FP32, 16,
                                    &t));
  /* A new measurement replaces the old one. */
  add_row(hw, sig, DNN_PASS_FWD, DNN_CONV_ALGO_COUNT, 64, 5.03e-3, 0);
  assert_int_equal(dnn_hw_kernel_count(hw), 5);
  assert_true(dnn_hw_kernel_lookup(hw, sig, DNN_PASS_FWD, DNN_CONV_ALGO_COUNT,
                                   DNN_DTYPE_FP32, 64, &t));
  assert_close(t, 5.03e-3, 1e-15);
  /* Invalid rows. */
  dnn_error e;
  dnn_hw_kernel_row bad = {
      "a,b", DNN_PASS_FWD, DNN_CONV_ALGO_COUNT, DNN_DTYPE_FP32, 8, 1e-3, 0};
  assert_int_equal(dnn_hw_kernel_add(hw, &bad, &e), DNN_EINVAL);
  assert_contains(e.msg, "comma");
  bad.signature = "ok";
  bad.time_s = 0;
  assert_int_equal(dnn_hw_kernel_add(hw, &bad, &e), DNN_EINVAL);
  assert_contains(e.msg, "time_s");
  bad.time_s = 1e-3;
  bad.batch = 0;
  assert_int_equal(dnn_hw_kernel_add(hw, &bad, &e), DNN_EINVAL);
  assert_contains(e.msg, "batch");
  bad.batch = 4;
  bad.workspace_bytes = -1;
  assert_int_equal(dnn_hw_kernel_add(hw, &bad, &e), DNN_EINVAL);
  assert_contains(e.msg, "workspace");
  bad.signature = "";
  assert_int_equal(dnn_hw_kernel_add(hw, &bad, &e), DNN_EINVAL);
  assert_int_equal(dnn_hw_kernel_count(hw), 5);
  dnn_hw_free(hw);
}

static void test_measured_layer_time(void **state) {
  (void)state;
  dnn_net *net = small_net();
  dnn_hw_params p = test_params();
  dnn_hw *hw = alloc_hw(&p);
  char sig_relu[512], sig_conv[512];
  dnn_layer_signature(net, 2, sig_relu, sizeof sig_relu);
  dnn_layer_signature(net, 1, sig_conv, sizeof sig_conv);
  double model_conv = dnn_hw_layer_time(hw, net, 1, DNN_PASS_FWD, 48,
                                        DNN_DTYPE_FP32, INFINITY, NULL, NULL);
  /* Measured rows for another layer leave the model in charge. */
  add_row(hw, sig_relu, DNN_PASS_FWD, DNN_CONV_ALGO_COUNT, 32, 7.13e-5, 0);
  add_row(hw, sig_relu, DNN_PASS_FWD, DNN_CONV_ALGO_COUNT, 64, 1.291e-4, 0);
  assert_close(dnn_hw_layer_time(hw, net, 1, DNN_PASS_FWD, 48, DNN_DTYPE_FP32,
                                 INFINITY, NULL, NULL),
               model_conv, 1e-15);
  /* The relu's measured time, interpolated at 48. */
  assert_close(dnn_hw_layer_time(hw, net, 2, DNN_PASS_FWD, 48, DNN_DTYPE_FP32,
                                 0, NULL, NULL),
               (7.13e-5 + 1.291e-4) / 2, 1e-12);
  /* Measured convolution algorithms: the fastest that fits wins. */
  add_row(hw, sig_conv, DNN_PASS_FWD, DNN_CONV_IMPLICIT_GEMM, 48, 3.31e-3, 0);
  add_row(hw, sig_conv, DNN_PASS_FWD, DNN_CONV_WINOGRAD_NONFUSED, 48, 1.77e-3,
          5.3e7);
  add_row(hw, sig_conv, DNN_PASS_FWD, DNN_CONV_FFT, 48, 2.09e-3, 1.9e7);
  dnn_conv_algo algo;
  double ws;
  double t = dnn_hw_layer_time(hw, net, 1, DNN_PASS_FWD, 48, DNN_DTYPE_FP32,
                               INFINITY, &algo, &ws);
  assert_int_equal(algo, DNN_CONV_WINOGRAD_NONFUSED);
  assert_close(t, 1.77e-3, 1e-15);
  assert_close(ws, 5.3e7, 1e-15);
  t = dnn_hw_layer_time(hw, net, 1, DNN_PASS_FWD, 48, DNN_DTYPE_FP32, 5e7,
                        &algo, &ws);
  assert_int_equal(algo, DNN_CONV_FFT);
  assert_close(t, 2.09e-3, 1e-15);
  t = dnn_hw_layer_time(hw, net, 1, DNN_PASS_FWD, 48, DNN_DTYPE_FP32, 0, &algo,
                        &ws);
  assert_int_equal(algo, DNN_CONV_IMPLICIT_GEMM);
  assert_close(t, 3.31e-3, 1e-15);
  assert_true(ws == 0);
  /* Workspace is interpolated like time: proportional at batch 96. */
  t = dnn_hw_layer_time(hw, net, 1, DNN_PASS_FWD, 96, DNN_DTYPE_FP32, INFINITY,
                        &algo, &ws);
  assert_int_equal(algo, DNN_CONV_WINOGRAD_NONFUSED);
  assert_close(t, 2 * 1.77e-3, 1e-12);
  assert_close(ws, 2 * 5.3e7, 1e-12);
  /* Other passes have no rows: the roofline decides. */
  double model_bwd = dnn_hw_layer_time(hw, net, 1, DNN_PASS_BWD_WEIGHTS, 48,
                                       DNN_DTYPE_FP32, INFINITY, NULL, NULL);
  dnn_hw *plain = alloc_hw(&p);
  assert_close(model_bwd,
               dnn_hw_layer_time(plain, net, 1, DNN_PASS_BWD_WEIGHTS, 48,
                                 DNN_DTYPE_FP32, INFINITY, NULL, NULL),
               1e-15);
  dnn_hw_free(plain);
  dnn_hw_free(hw);
  dnn_net_free(net);
}

/* ---- Profile files: errors ---------------------------------------------- */

/* Loads `text` as bad.ini and checks the status and two message parts. */
static void expect_error(const char *text, dnn_status code, const char *part1,
                         const char *part2) {
  dnn_error e;
  dnn_hw *hw = NULL;
  dnn_status st = load_text("bad.ini", text, &hw, &e);
  if (st != code)
    fail_msg("expected %s, got %s: %s", dnn_status_name(code),
             dnn_status_name(st), e.msg);
  assert_null(hw);
  assert_contains(e.msg, "bad.ini:");
  assert_contains(e.msg, part1);
  if (part2)
    assert_contains(e.msg, part2);
}

static char *cat(const char *a, const char *b) {
  static char buf[4096];
  snprintf(buf, sizeof buf, "%s%s", a, b);
  return buf;
}

static void test_profile_file_ok(void **state) {
  (void)state;
  dnn_error e;
  dnn_hw *hw = NULL;
  assert_ok(load_text("mini.ini",
                      cat(MINIMAL, "reserved_GB = 0.37 ; trailing comment\n"
                                   "[efficiency]\ncompute.gemm = 0.713\n"
                                   "half_flops.conv = 0.0419\n"
                                   "conv_algo.fft = 0\n"),
                      &hw, &e),
            &e);
  const dnn_hw_params *p = dnn_hw_get(hw);
  assert_string_equal(p->name, "mini");
  assert_string_equal(p->calibrated, "no");
  assert_string_equal(p->source, "");
  assert_close(p->peak_flops[DNN_DTYPE_FP32], 7.31e12, 1e-15);
  assert_close(p->peak_flops[DNN_DTYPE_FP16], 29.3e12, 1e-15);
  assert_close(p->launch_overhead_s, 3.7e-6, 1e-15);
  assert_close(p->mem_bandwidth_Bps, 611e9, 1e-15);
  assert_close(p->mem_capacity_bytes, 11.3e9, 1e-15);
  assert_close(p->mem_reserved_bytes, 0.37e9, 1e-15);
  assert_close(p->eff_compute[DNN_OP_GEMM], 0.713, 1e-15);
  assert_close(p->half_flops[DNN_OP_CONV], 0.0419e9, 1e-15);
  assert_true(p->eff_conv_algo[DNN_CONV_FFT] == 0);
  /* Keys left out keep the ideal defaults. */
  assert_true(p->eff_compute[DNN_OP_CONV] == 1);
  assert_true(p->eff_memory[DNN_OP_COPY] == 1);
  assert_true(p->half_flops[DNN_OP_GEMM] == 0);
  dnn_hw_free(hw);
}

static void test_profile_file_errors(void **state) {
  (void)state;
  /* Unknown section, with a suggestion. */
  expect_error(cat(MINIMAL, "[computee]\nx = 1\n"), DNN_EPARSE,
               "bad.ini:14: [computee]", "did you mean [compute]");
  /* Unknown key, with a suggestion. */
  expect_error(cat(MINIMAL, "[efficiency]\ncompute.gemn = 0.5\n"), DNN_EPARSE,
               "bad.ini:15: [efficiency] compute.gemn: unknown key",
               "did you mean 'compute.gemm'");
  expect_error(cat(MINIMAL, "[kernels]\nfiles = k.csv\n"), DNN_EPARSE,
               "bad.ini:15: [kernels] files: unknown key",
               "did you mean 'file'");
  /* Bad number. */
  expect_error(cat(MINIMAL, "reserved_GB = lots\n"), DNN_EPARSE,
               "bad.ini:14: [memory] reserved_GB:", "expected a number");
  /* Out of range. */
  expect_error(cat(MINIMAL, "[efficiency]\nmemory.pool = 1.3\n"), DNN_ERANGE,
               "bad.ini:15: [efficiency] memory.pool:", "out of range");
  expect_error(cat(MINIMAL, "reserved_GB = 11.3\n"), DNN_ERANGE,
               "bad.ini:14: [memory] reserved_GB:", "capacity");
  /* Bad choice. */
  const char *tpu = "[device]\nname = x\nkind = tpu\n";
  expect_error(tpu, DNN_EPARSE, "bad.ini:3: [device] kind:", "gpu|cpu");
  /* Duplicate key. */
  expect_error(cat(MINIMAL, "capacity_GB = 12\n"), DNN_EPARSE,
               "bad.ini:14: [memory] capacity_GB: given twice",
               "first on line 13");
  /* Key outside a section. */
  expect_error(cat("name = early\n", MINIMAL), DNN_EPARSE,
               "bad.ini:1:", "outside any [section]");
  /* Syntax. */
  expect_error(cat(MINIMAL, "just words\n"), DNN_EPARSE,
               "bad.ini:14:", "expected");
  /* Missing required keys: peak and bandwidth. */
  char text[4096];
  snprintf(text, sizeof text, "%s", MINIMAL);
  char *line = strstr(text, "peak_fp32_TFLOPS");
  memcpy(line, "; ", 2);
  expect_error(text, DNN_EPARSE, "bad.ini:5: [compute] peak_fp32_TFLOPS:",
               "required key missing");
  snprintf(text, sizeof text, "%s", MINIMAL);
  line = strstr(text, "bandwidth_GBps");
  memcpy(line, "; ", 2);
  expect_error(text, DNN_EPARSE,
               "bad.ini:11: [memory] bandwidth_GBps:", "required key missing");
  /* A missing section is blamed on the last line. */
  expect_error(
      "[device]\nname = x\nkind = cpu\n", DNN_EPARSE,
      "bad.ini:3: [compute] peak_fp32_TFLOPS:", "required key missing");
  /* Every peak 0. */
  snprintf(text, sizeof text, "%s", MINIMAL);
  memcpy(strstr(text, "= 7.31"), "= 0.00", 6);
  memcpy(strstr(text, "= 29.3"), "= 0.00", 6);
  expect_error(text, DNN_ERANGE,
               "bad.ini:6: [compute] peak_fp32_TFLOPS:", "every peak is 0");
  /* Text too long. */
  char longname[101];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  snprintf(text, sizeof text, "[device]\nname = %s\n", longname);
  expect_error(text, DNN_ERANGE, "bad.ini:2: [device] name:", "too long");
}

static void test_kernel_csv_errors(void **state) {
  (void)state;
  const char *prof = cat(MINIMAL, "[kernels]\nfile = k.csv\n");
  char prof_text[4096];
  snprintf(prof_text, sizeof prof_text, "%s", prof);
  struct {
    const char *csv;
    dnn_status code;
    const char *part;
  } cases[] = {
      {"sig,pass\n", DNN_EPARSE, "k.csv:1: expected the header line"},
      {"", DNN_EPARSE, "expected the header line"},
      {"# c\nsignature,pass,algo,dtype,batch,time_s,workspace_bytes\n"
       "fc:1,fwd,-,fp32,x,1e-3,0\n",
       DNN_EPARSE, "k.csv:3: column batch: expected a non-negative integer"},
      {"signature,pass,algo,dtype,batch,time_s,workspace_bytes\n"
       "fc:1,fwd,-,fp32,8,1e-3\n",
       DNN_EPARSE, "k.csv:2: expected 7 comma-separated columns"},
      {"signature,pass,algo,dtype,batch,time_s,workspace_bytes\n"
       "fc:1,fwd,-,fp32,8,1e-3,0,9\n",
       DNN_EPARSE, "got 8"},
      {"signature,pass,algo,dtype,batch,time_s,workspace_bytes\n\n"
       "fc:1,fwdd,-,fp32,8,1e-3,0\n",
       DNN_EPARSE, "k.csv:3: column pass: expected one of"},
      {"signature,pass,algo,dtype,batch,time_s,workspace_bytes\n"
       "c:1,fwd,winograd_nonfussed,fp32,8,1e-3,0\n",
       DNN_EPARSE, "did you mean 'winograd_nonfused'"},
      {"signature,pass,algo,dtype,batch,time_s,workspace_bytes\n"
       "c:1,fwd,-,fp33,8,1e-3,0\n",
       DNN_EPARSE, "column dtype"},
      {"signature,pass,algo,dtype,batch,time_s,workspace_bytes\n"
       "c:1,fwd,-,fp32,8,fast,0\n",
       DNN_EPARSE, "column time_s: expected a number"},
      {"signature,pass,algo,dtype,batch,time_s,workspace_bytes\n"
       "c:1,fwd,-,fp32,8,-2e-3,0\n",
       DNN_ERANGE, "k.csv:2: time_s must be finite and > 0"},
      {"signature,pass,algo,dtype,batch,time_s,workspace_bytes\n"
       ",fwd,-,fp32,8,2e-3,0\n",
       DNN_ERANGE, "empty signature"},
  };
  for (size_t i = 0; i < NELEMS(cases); i++) {
    write_file("k.csv", cases[i].csv);
    dnn_error e;
    dnn_hw *hw = NULL;
    dnn_status st = load_text("bad.ini", prof_text, &hw, &e);
    if (st != cases[i].code)
      fail_msg("case %zu: expected %s, got %s: %s", i,
               dnn_status_name(cases[i].code), dnn_status_name(st), e.msg);
    assert_null(hw);
    assert_contains(e.msg, "bad.ini:15: [kernels] file");
    assert_contains(e.msg, cases[i].part);
  }
  /* A missing kernel file is an I/O error naming it. */
  unlink(write_file("k.csv", ""));
  dnn_error e;
  dnn_hw *hw = NULL;
  assert_int_equal(load_text("bad.ini", prof_text, &hw, &e), DNN_EIO);
  assert_contains(e.msg, "k.csv");
  /* A good file loads, relative to the profile's directory. */
  write_file("k.csv", "# measured\n"
                      "signature,pass,algo,dtype,batch,time_s,workspace_bytes\n"
                      "conv2d:x,bwd_data,fft_tiling,fp16,32,3.19e-4,1.7e6\n"
                      " relu:y , fwd , - , fp32 , 8 , 2.1e-5 , 0 \r\n");
  assert_ok(load_text("good.ini", prof_text, &hw, &e), &e);
  assert_int_equal(dnn_hw_kernel_count(hw), 2);
  double t;
  assert_true(dnn_hw_kernel_lookup(hw, "conv2d:x", DNN_PASS_BWD_DATA,
                                   DNN_CONV_FFT_TILING, DNN_DTYPE_FP16, 32,
                                   &t));
  assert_close(t, 3.19e-4, 1e-15);
  assert_true(dnn_hw_kernel_lookup(hw, "relu:y", DNN_PASS_FWD,
                                   DNN_CONV_ALGO_COUNT, DNN_DTYPE_FP32, 8, &t));
  assert_close(t, 2.1e-5, 1e-15);
  dnn_hw_free(hw);
}

/* ---- Save / load -------------------------------------------------------- */

/* MINIMAL with `kind` and a `comm_progress` line ("" for none). */
static const char *with_progress(const char *kind, const char *progress) {
  static char buf[2048];
  const char *at = strstr(MINIMAL, "kind = gpu\n");
  assert_non_null(at);
  snprintf(buf, sizeof buf, "%.*skind = %s\n%s%s%s", (int)(at - MINIMAL),
           MINIMAL, kind, progress[0] ? "comm_progress = " : "", progress,
           progress[0] ? "\n" : "");
  strncat(buf, at + strlen("kind = gpu\n"), sizeof buf - strlen(buf) - 1);
  return buf;
}

/* [device] comm_progress: auto follows the kind; engine and host say it. */
static void test_comm_progress(void **state) {
  (void)state;
  static const struct {
    const char *kind, *progress;
    int value;
    bool overlaps;
  } cases[] = {
      {"gpu", "", DNN_HW_PROGRESS_AUTO, true},
      {"cpu", "", DNN_HW_PROGRESS_AUTO, false},
      {"gpu", "auto", DNN_HW_PROGRESS_AUTO, true},
      {"cpu", "auto", DNN_HW_PROGRESS_AUTO, false},
      {"gpu", "host", DNN_HW_PROGRESS_HOST, false},
      {"cpu", "engine", DNN_HW_PROGRESS_ENGINE, true},
  };
  for (size_t i = 0; i < NELEMS(cases); i++) {
    dnn_error e;
    dnn_hw *hw = NULL;
    assert_ok(load_text("cp.ini",
                        with_progress(cases[i].kind, cases[i].progress), &hw,
                        &e),
              &e);
    const dnn_hw_params *p = dnn_hw_get(hw);
    assert_int_equal(p->comm_progress, cases[i].value);
    assert_true(dnn_hw_comm_overlaps(p) == cases[i].overlaps);
    /* Saved and loaded back, it keeps its value. */
    char path[512];
    snprintf(path, sizeof path, "%s/cp-saved.ini", tmpdir);
    assert_ok(dnn_hw_save(hw, path, &e), &e);
    dnn_hw *back = NULL;
    assert_ok(dnn_hw_load(path, &back, &e), &e);
    assert_params_equal(p, dnn_hw_get(back));
    dnn_hw_free(back);
    dnn_hw_free(hw);
  }
  expect_error(with_progress("cpu", "thread"), DNN_EPARSE,
               "bad.ini:5: [device] comm_progress:", "auto|engine|host");
  /* Out of its names in parameters. */
  dnn_hw_params p = test_params();
  p.comm_progress = 3;
  dnn_error e;
  assert_int_equal(dnn_hw_params_check(&p, &e), DNN_ERANGE);
  assert_contains(e.msg, "[device] comm_progress");
}

static void test_save_load_round_trip(void **state) {
  (void)state;
  dnn_error e;
  /* Every built-in survives a round trip bit for bit. */
  const char *const *names = dnn_hw_builtin_list();
  for (size_t i = 0; names[i]; i++) {
    dnn_hw *a = NULL, *b = NULL;
    assert_ok(dnn_hw_load(names[i], &a, &e), &e);
    char path[512];
    snprintf(path, sizeof path, "%s/%s.ini", tmpdir, names[i]);
    assert_ok(dnn_hw_save(a, path, &e), &e);
    assert_ok(dnn_hw_load(path, &b, &e), &e);
    assert_params_equal(dnn_hw_get(a), dnn_hw_get(b));
    dnn_hw_free(a);
    dnn_hw_free(b);
  }
  /* Awkward values and a kernel table written next to the profile. */
  dnn_hw_params p = test_params();
  snprintf(p.calibrated, sizeof p.calibrated,
           "2024-05-03 host gpu07: dnnsim calibrate --repeats 17");
  snprintf(p.source, sizeof p.source, "lab;measured");
  p.peak_flops[DNN_DTYPE_FP32] = (0.1 + 0.2) * 1e13; /* not 3e12 */
  p.peak_flops[DNN_DTYPE_BF16] = 1.0 / 3.0 * 1e12;
  p.mem_bandwidth_Bps = 2.0 / 3.0 * 1e12;
  p.launch_overhead_s = 7.0 / 3.0 * 1e-6;
  p.half_flops[DNN_OP_SOFTMAX] = 1e9 / 7.0;
  p.eff_conv_algo[DNN_CONV_DIRECT] = 0;
  dnn_hw *a = alloc_hw(&p);
  add_row(a, "conv2d:64x56x56:o64", DNN_PASS_FWD, DNN_CONV_WINOGRAD, 32,
          1.0 / 3.0 * 1e-3, 1.0 / 7.0 * 1e8);
  add_row(a, "conv2d:64x56x56:o64", DNN_PASS_FWD, DNN_CONV_WINOGRAD, 128,
          4.17e-3, 5.7e7);
  add_row(a, "fc:9", DNN_PASS_BWD_WEIGHTS, DNN_CONV_ALGO_COUNT, 3, 2.9e-6, 0);
  char path[512];
  snprintf(path, sizeof path, "%s/custom.ini", tmpdir);
  assert_ok(dnn_hw_save(a, path, &e), &e);
  char csv[512];
  snprintf(csv, sizeof csv, "%s/custom.kernels.csv", tmpdir);
  struct stat sb;
  assert_int_equal(stat(csv, &sb), 0);
  dnn_hw *b = NULL;
  assert_ok(dnn_hw_load(path, &b, &e), &e);
  assert_params_equal(dnn_hw_get(a), dnn_hw_get(b));
  assert_int_equal(dnn_hw_kernel_count(b), 3);
  const size_t batches[] = {3, 32, 77, 128, 500};
  for (size_t k = 0; k < NELEMS(batches); k++) {
    double ta = 0, tb = 0;
    assert_true(dnn_hw_kernel_lookup(a, "conv2d:64x56x56:o64", DNN_PASS_FWD,
                                     DNN_CONV_WINOGRAD, DNN_DTYPE_FP32,
                                     batches[k], &ta));
    assert_true(dnn_hw_kernel_lookup(b, "conv2d:64x56x56:o64", DNN_PASS_FWD,
                                     DNN_CONV_WINOGRAD, DNN_DTYPE_FP32,
                                     batches[k], &tb));
    assert_true(ta == tb);
  }
  double t = 0;
  assert_true(dnn_hw_kernel_lookup(b, "fc:9", DNN_PASS_BWD_WEIGHTS,
                                   DNN_CONV_ALGO_COUNT, DNN_DTYPE_FP32, 3, &t));
  assert_true(t == 2.9e-6);
  /* Saving again over the same files works (atomic replace). */
  assert_ok(dnn_hw_save(b, path, &e), &e);
  /* An unwritable destination is an I/O error. */
  assert_int_equal(dnn_hw_save(b, "/nonexistent/dir/x.ini", &e), DNN_EIO);
  dnn_hw_free(a);
  dnn_hw_free(b);
}

static void test_alloc_failures(void **state) {
  (void)state;
  /* Every allocation of a load with a kernel table may fail cleanly. */
  write_file("k.csv", "signature,pass,algo,dtype,batch,time_s,"
                      "workspace_bytes\n"
                      "a,fwd,-,fp32,8,1e-3,0\nb,fwd,-,fp32,8,1e-3,0\n"
                      "a,fwd,-,fp32,16,2e-3,0\n");
  const char *path =
      write_file("fail.ini", cat(MINIMAL, "[kernels]\nfile = k.csv\n"));
  char p[512];
  snprintf(p, sizeof p, "%s", path);
  bool ok = false;
  for (long n = 0; n < 200 && !ok; n++) {
    test_alloc_state s;
    dnn_error e;
    dnn_hw *hw = NULL;
    test_alloc_install(&s, n);
    dnn_status st = dnn_hw_load(p, &hw, &e);
    test_alloc_restore();
    if (st == DNN_OK) {
      ok = true;
      assert_int_equal(dnn_hw_kernel_count(hw), 3);
      dnn_hw_free(hw);
    } else {
      assert_true(st == DNN_ENOMEM || st == DNN_EIO);
      assert_null(hw);
    }
  }
  assert_true(ok);
}

/* ---- Links and clusters ------------------------------------------------- */

static void test_links(void **state) {
  (void)state;
  static const char *const expected[] = {
      "pcie3",  "pcie4",  "pcie5",  "nvlink1", "nvlink2", "nvlink3",  "nvlink4",
      "ib-edr", "ib-hdr", "ib-ndr", "eth-10g", "eth-25g", "eth-100g", "shm"};
  const char *const *names = dnn_hw_link_list();
  size_t n = 0;
  while (names[n])
    n++;
  assert_int_equal(n, NELEMS(expected));
  dnn_error e;
  for (size_t i = 0; i < NELEMS(expected); i++) {
    dnn_link l;
    assert_ok(dnn_hw_link_builtin(expected[i], &l, &e), &e);
    assert_string_equal(l.name, expected[i]);
    assert_true(l.bandwidth_Bps > 1e9 && l.bandwidth_Bps < 1e12);
    assert_true(l.latency_s > 1e-8 && l.latency_s < 1e-4);
  }
  struct {
    const char *name;
    double bw, lat;
  } want[] = {
      {"pcie3", 15.75e9, 5.7e-6},  {"pcie4", 31.5e9, 5.7e-6},
      {"pcie5", 63e9, 5.7e-6},     {"nvlink1", 80e9, 3.4e-6},
      {"nvlink2", 150e9, 3.4e-6},  {"nvlink3", 300e9, 3.4e-6},
      {"nvlink4", 450e9, 3.4e-6},  {"ib-edr", 12.5e9, 9.6e-6},
      {"ib-hdr", 25e9, 9.6e-6},    {"ib-ndr", 50e9, 9.6e-6},
      {"eth-10g", 1.25e9, 25e-6},  {"eth-25g", 3.125e9, 25e-6},
      {"eth-100g", 12.5e9, 25e-6}, {"shm", 10e9, 0.5e-6},
  };
  for (size_t i = 0; i < NELEMS(want); i++) {
    dnn_link l;
    assert_ok(dnn_hw_link_builtin(want[i].name, &l, &e), &e);
    assert_close(l.bandwidth_Bps, want[i].bw, 1e-12);
    assert_close(l.latency_s, want[i].lat, 1e-12);
  }
  dnn_link l;
  assert_int_equal(dnn_hw_link_builtin("nvlnk2", &l, &e), DNN_ENOTFOUND);
  assert_contains(e.msg, "unknown link 'nvlnk2'");
  assert_contains(e.msg, "did you mean 'nvlink2'");
  assert_contains(e.msg, "ib-hdr");
  assert_int_equal(dnn_hw_link_builtin("carrier-pigeon", &l, &e),
                   DNN_ENOTFOUND);
  assert_true(strstr(e.msg, "did you mean") == NULL);
}

static void test_cluster_devices(void **state) {
  (void)state;
  dnn_cluster c = {.nodes = 3, .devices_per_node = 8, .nics_per_node = 2};
  assert_int_equal(dnn_cluster_devices(&c), 24);
  c.nodes = 1;
  c.devices_per_node = 1;
  assert_int_equal(dnn_cluster_devices(&c), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_builtin_profiles),
      cmocka_unit_test(test_known_values),
      cmocka_unit_test(test_unknown_builtin),
      cmocka_unit_test(test_params_check),
      cmocka_unit_test(test_roofline_by_hand),
      cmocka_unit_test(test_small_size_and_launch),
      cmocka_unit_test(test_conv_algorithms),
      cmocka_unit_test(test_algorithm_choice_under_limit),
      cmocka_unit_test(test_layer_time_non_conv),
      cmocka_unit_test(test_kernel_lookup),
      cmocka_unit_test(test_measured_layer_time),
      cmocka_unit_test(test_profile_file_ok),
      cmocka_unit_test(test_profile_file_errors),
      cmocka_unit_test(test_kernel_csv_errors),
      cmocka_unit_test(test_comm_progress),
      cmocka_unit_test(test_save_load_round_trip),
      cmocka_unit_test(test_alloc_failures),
      cmocka_unit_test(test_links),
      cmocka_unit_test(test_cluster_devices),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
