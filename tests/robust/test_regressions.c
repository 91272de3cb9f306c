/*
 * Regression tests for the defects fuzzing and the robustness review found
 * in core/, model/, scenarios/ and parallelism/comm.c (docs/robustness.md
 * lists each with its fix). The fuzz inputs that found them also replay
 * under tests/fuzz/regressions/; these tests pin the exact behaviour and
 * message.
 */
#include "test_util.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dnnsim/comm.h"
#include "dnnsim/hw.h"
#include "dnnsim/scenario.h"
#include "dnnsim/strat.h"

/* ---- Networks ------------------------------------------------------------ */

static dnn_status net_text(const char *text, dnn_net **net, dnn_error *e) {
  return dnn_scn_load_net_string(text, "n.ini", 0, net, e);
}

/* adaptive_avgpool windows in closed form equal the loop over windows
 * (sum n + o - gcd(n, o), longest ceil((n + o - g) / o)), and a huge
 * output size no longer loops 2^40 times. */
static void test_adaptive_windows_closed_form(void **state) {
  (void)state;
  for (size_t n = 1; n <= 23; n++) {
    for (size_t o = 1; o <= 29; o++) {
      size_t sum = 0, max = 0;
      for (size_t i = 0; i < o; i++) {
        size_t lo = i * n / o, hi = ((i + 1) * n + o - 1) / o;
        sum += hi - lo;
        max = hi - lo > max ? hi - lo : max;
      }
      char text[256];
      snprintf(text, sizeof text,
               "[layer.x]\ntype = input\nshape = 1,%zu,1\n"
               "[layer.p]\ntype = adaptive_avgpool\noutput = %zux1\n",
               n, o);
      dnn_net *net;
      dnn_error e;
      assert_ok(net_text(text, &net, &e), &e);
      dnn_cost c;
      dnn_layer_cost(net, 1, DNN_PASS_FWD, 1, DNN_DTYPE_FP32, &c);
      /* One add per window element: flops = sum of window lengths. */
      assert_close(c.flops, (double)sum, 0);
      /* depth = 1 + ceil(log2(longest window)) */
      double d = 1 + (max > 1 ? ceil(log2((double)max)) : 0);
      assert_close(c.depth, d, 0);
      dnn_net_free(net);
    }
  }
  dnn_net *net;
  dnn_error e;
  clock_t t0 = clock();
  assert_ok(net_text("[layer.x]\ntype = input\nshape = 1,8,1\n"
                     "[layer.p]\ntype = adaptive_avgpool\n"
                     "output = 1099511627776x1\n",
                     &net, &e),
            &e);
  assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 1.0);
  dnn_cost c;
  dnn_layer_cost(net, 1, DNN_PASS_FWD, 3, DNN_DTYPE_FP32, &c);
  assert_close(c.flops, 3.0 * (8.0 + 1099511627776.0 - 8.0), 1e-15);
  dnn_net_free(net);
}

/* A convolution whose output element count wraps size_t is refused
 * (tests/fuzz/regressions/network/conv-output-elements-wrap.ini). */
static void test_conv_output_wrap(void **state) {
  (void)state;
  dnn_net *net;
  dnn_error e;
  dnn_status st = net_text("[layer.in]\ntype = input\nshape = 3,8,8\n"
                           "[layer.c]\ntype = conv2d\nout_channels = 4\n"
                           "kernel = 5\npadding = 24294967296\n",
                           &net, &e);
  assert_int_equal(st, DNN_EINVAL);
  assert_null(net);
  assert_contains(e.msg, "n.ini:4: [layer.c]: layer 'c' (conv2d): output "
                         "shape too large");
}

/* Pooling with a kernel whose window sums or area wrap is refused; a
 * padding that wraps the padded size too. */
static void test_pool_overflow(void **state) {
  (void)state;
  dnn_net *net;
  dnn_error e;
  dnn_status st = net_text("[layer.in]\ntype = input\nshape = 1,1073741824,8\n"
                           "[layer.p]\ntype = maxpool\n"
                           "kernel = 1099511627776x1099511627776\n"
                           "padding = 549755813888x549755813888\nstride = 1\n",
                           &net, &e);
  assert_int_equal(st, DNN_EINVAL);
  assert_contains(e.msg, "layer 'p' (maxpool): kernel 1099511627776x"
                         "1099511627776 too large");
  st = net_text("[layer.in]\ntype = input\nshape = 1,8,8\n"
                "[layer.p]\ntype = avgpool\n"
                "kernel = 18446744073709551614x2\n"
                "padding = 9223372036854775807x1\n",
                &net, &e);
  assert_int_equal(st, DNN_EINVAL);
  assert_contains(e.msg, "padding 9223372036854775807x1 too large");
}

/* The FFT algorithm's transform size above 2^63 used to loop forever. */
static void test_fft_size_above_2_63(void **state) {
  (void)state;
  dnn_net *net;
  dnn_error e;
  assert_ok(net_text("[layer.in]\ntype = input\nshape = 1,1099511627776,1\n"
                     "[layer.c]\ntype = conv2d\nout_channels = 1\n"
                     "kernel = 1\npadding = 4611686018427387902x0\n",
                     &net, &e),
            &e);
  dnn_conv_algo_cost c;
  dnn_conv_algo_cost_get(net, 1, DNN_PASS_FWD, DNN_CONV_FFT, 2, DNN_DTYPE_FP32,
                         &c);
  assert_true(c.applicable);
  assert_true(isfinite(c.flops) && c.flops > 0);
  assert_true(isfinite(c.workspace_bytes) && c.workspace_bytes > 0);
  dnn_net_free(net);
}

/* Headers inih sees must be the headers the parsers are told about: a
 * UTF-8 byte-order mark, a vertical tab before '[' and an indented
 * "[x]" continuing a value (tests/fuzz/regressions/network/). */
static void test_ini_headers_as_inih_reads_them(void **state) {
  (void)state;
  dnn_net *net;
  dnn_error e;
  assert_ok(net_text("\xef\xbb\xbf[layer.in]\ntype = input\nshape = 3,8,8\n"
                     "[layer.fc]\ntype = fc\nout_features = 2\n",
                     &net, &e),
            &e);
  assert_int_equal(dnn_net_layer_count(net), 2);
  dnn_net_free(net);
  assert_ok(net_text("\v[network]\nname = vt\n[layer.in]\ntype = input\n"
                     "shape = 5\n[layer.fc]\ntype = fc\nout_features = 2\n",
                     &net, &e),
            &e);
  assert_string_equal(dnn_net_name(net), "vt");
  dnn_net_free(net);
  /* Indented after a pair, a header is more of the pair's value. */
  assert_int_equal(net_text("[network]\nname = vt\n\f[layer.in]\n"
                            "type = input\n",
                            &net, &e),
                   DNN_EPARSE);
  assert_contains(e.msg, "n.ini:4: [network] type: unknown key");

  dnn_scenario scn;
  dnn_scn_init(&scn);
  dnn_status st = dnn_scn_load_string("[model]\nname = resnet18\n"
                                      "  [hardware]\nprofile = v100-sxm2\n",
                                      "s.ini", NULL, &scn, &e);
  assert_int_equal(st, DNN_EPARSE);
  assert_contains(e.msg, "s.ini:4: [model] profile: unknown key");
  dnn_scn_init(&scn);
  st = dnn_scn_load_string("[]\nname = x\n", "s.ini", NULL, &scn, &e);
  assert_int_equal(st, DNN_EPARSE);
  assert_contains(e.msg, "s.ini:1: empty section name []");
}

/* A deep network written bottom-up (each section naming the next as its
 * input) took O(n^3) to order: 2000 layers 12 s, 20000 hours. Now
 * O(n log n); the test timeout catches a return of the old behaviour. */
static void test_deep_network_bottom_up(void **state) {
  (void)state;
  const size_t n = 6000;
  size_t cap = n * 64, len = 0;
  char *text = malloc(cap);
  assert_non_null(text);
  len += (size_t)snprintf(text, cap, "[layer.l0]\ntype = input\nshape = 7\n");
  for (size_t i = n - 1; i > 0; i--)
    len += (size_t)snprintf(text + len, cap - len,
                            "[layer.l%zu]\ntype = fc\nout_features = 3\n"
                            "input = l%zu\n",
                            i, i - 1);
  dnn_net *net;
  dnn_error e;
  assert_ok(net_text(text, &net, &e), &e);
  assert_int_equal(dnn_net_layer_count(net), n);
  for (size_t i = 0; i < n; i += 997) {
    char name[32];
    snprintf(name, sizeof name, "l%zu", i);
    assert_string_equal(dnn_net_layer(net, i)->name, name);
  }
  dnn_net_free(net);
  /* A name given twice is still found, at its second header. */
  strcpy(text + len, "[layer.l17]\ntype = relu\n");
  assert_int_equal(net_text(text, &net, &e), DNN_EPARSE);
  assert_contains(e.msg, "[layer.l17]: layer defined twice (first at line");
  free(text);
}

/* A network file with nothing to compute makes no prediction. */
static void test_network_without_work(void **state) {
  (void)state;
  char dir[] = "/tmp/dnnsim-regress-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[128];
  snprintf(path, sizeof path, "%s/empty.ini", dir);
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  fputs("[layer.in]\ntype = input\nshape = 3,8,8\n[layer.f]\ntype = flatten\n",
        fp);
  fclose(fp);
  dnn_scenario scn;
  dnn_error e;
  dnn_scn_init(&scn);
  assert_ok(dnn_scn_load_string("[model]\nfile = empty.ini\n", "s.ini", dir,
                                &scn, &e),
            &e);
  dnn_net *net = NULL;
  assert_int_equal(dnn_scn_build_net(&scn, 0, &net, &e), DNN_EINVAL);
  assert_null(net);
  assert_contains(e.msg, "s.ini:2: [model] file: network");
  assert_contains(e.msg, "has no layer that computes anything");
  remove(path);
  rmdir(dir);
}

/* ---- Scenarios ----------------------------------------------------------- */

/* Values that would not read back from the written file are refused
 * (tests/fuzz/regressions/scenario/value-starting-with-semicolon.ini). */
static void test_unwritable_values(void **state) {
  (void)state;
  dnn_scenario scn;
  dnn_error e;
  dnn_scn_init(&scn);
  dnn_status st = dnn_scn_load_string("[cluster]\nintra_link =; ResNet\n",
                                      "s.ini", NULL, &scn, &e);
  assert_int_equal(st, DNN_EINVAL);
  assert_contains(e.msg, "s.ini:2: [cluster] intra_link: value '; ResNet' "
                         "contains a ';' at its start or after a blank");
  assert_int_equal(dnn_scn_set(&scn, "model.name= resnet50", &e), DNN_EINVAL);
  assert_contains(e.msg, "starts or ends with a blank");
  assert_int_equal(dnn_scn_set(&scn, "model.name=res\tnet", &e), DNN_EINVAL);
  assert_contains(e.msg, "control character");
  assert_ok(dnn_scn_set(&scn, "model.name=a;b", &e), &e);
}

/* A path too long for one INI line is reported before anything is
 * written, instead of writing a file that does not load back. */
static void test_writer_line_limit(void **state) {
  (void)state;
  dnn_scenario scn;
  dnn_error e;
  dnn_scn_init(&scn);
  char set[400] = "model.file=/";
  for (size_t i = strlen(set); i < 230; i++)
    set[i] = 'd';
  strcat(set, ".ini");
  assert_ok(dnn_scn_set(&scn, set, &e), &e);
  char *buf = NULL;
  size_t len = 0;
  FILE *fp = open_memstream(&buf, &len);
  assert_int_equal(dnn_scn_write(&scn, fp, false, &e), DNN_ERANGE);
  fclose(fp);
  assert_int_equal(len, 0);
  free(buf);
  assert_contains(e.msg, "[model] file: value too long to write on one INI "
                         "line");
}

/* Fields set directly are range-checked by validation, naming the key. */
static void test_validate_direct_fields(void **state) {
  (void)state;
  dnn_scenario scn;
  dnn_error e;
  dnn_scn_init(&scn);
  assert_ok(dnn_scn_load_string("[model]\nname = resnet18\n[hardware]\n"
                                "profile = v100-sxm2\n",
                                "s.ini", NULL, &scn, &e),
            &e);
  assert_ok(dnn_scn_validate(&scn, &e), &e);
  scn.cluster.nodes = 0; /* used to divide by zero (batch % 0) */
  assert_int_equal(dnn_scn_validate(&scn, &e), DNN_ERANGE);
  assert_contains(e.msg, "s.ini: [cluster] nodes (default): 0 is out of "
                         "range [1, 1048576]");
  scn.cluster.nodes = 1;
  scn.parallelism.microbatches = 0;
  assert_int_equal(dnn_scn_validate(&scn, &e), DNN_ERANGE);
  assert_contains(e.msg, "[parallelism] microbatches");
  scn.parallelism.microbatches = 1;
  scn.parallelism.allreduce = 99;
  assert_int_equal(dnn_scn_validate(&scn, &e), DNN_ERANGE);
  assert_contains(e.msg, "[parallelism] allreduce (default): 99 is not one "
                         "of its 9 choices");
  scn.parallelism.allreduce = 0;
  scn.hardware.workspace_MB = NAN;
  assert_int_equal(dnn_scn_validate(&scn, &e), DNN_ERANGE);
  assert_contains(e.msg, "[hardware] workspace_MB");
  scn.hardware.workspace_MB = 64;
  assert_ok(dnn_scn_set(&scn, "cluster.inter_bandwidth_GBps=1e-300", &e), &e);
  assert_int_equal(dnn_scn_validate(&scn, &e), DNN_ERANGE);
  assert_contains(e.msg, "--set cluster.inter_bandwidth_GBps: 1e-300 GB/s is "
                         "below 1e-06 GB/s");
}

/* A dtype the profile has no peak for gives an error, not infinity. */
static void test_dtype_without_peak(void **state) {
  (void)state;
  dnn_scenario scn;
  dnn_error e;
  dnn_scn_init(&scn);
  assert_ok(dnn_scn_load_string("[model]\nname = resnet18\ndtype = bf16\n"
                                "[hardware]\nprofile = p100-sxm2\n",
                                "s.ini", NULL, &scn, &e),
            &e);
  dnn_hw *hw = NULL;
  assert_int_equal(dnn_scn_load_hw(&scn, &hw, &e), DNN_EINVAL);
  assert_null(hw);
  assert_contains(e.msg, "s.ini:3: [model] dtype: bf16 has no peak in "
                         "hardware profile 'p100-sxm2' (peak_bf16_TFLOPS = 0; "
                         "s.ini:5: [hardware] profile)");
}

/* ---- Profiles ------------------------------------------------------------ */

static const char PROFILE[] = "[device]\nname = r\nkind = gpu\n"
                              "[compute]\npeak_fp32_TFLOPS = 15.7\n"
                              "peak_tf32_TFLOPS = 0\npeak_fp16_TFLOPS = 125\n"
                              "peak_bf16_TFLOPS = 0\nlaunch_overhead_us = 5\n"
                              "[memory]\nbandwidth_GBps = 900\n"
                              "capacity_GB = 32\n";

static dnn_status profile_with(const char *extra, dnn_error *e) {
  char text[1024];
  snprintf(text, sizeof text, "%s%s", PROFILE, extra);
  dnn_hw *hw = NULL;
  dnn_status st = dnn_hw_load_string(text, "p.ini", NULL, &hw, e);
  dnn_hw_free(hw);
  return st;
}

/* Rates so small that times overflow, a profile whose convolutions have no
 * algorithm without workspace, and texts that would not save on one line. */
static void test_profile_absurd_values(void **state) {
  (void)state;
  dnn_error e;
  assert_ok(profile_with("", &e), &e);
  char text[1024];
  const char *at = strstr(PROFILE, "peak_tf32_TFLOPS = 0");
  snprintf(text, sizeof text, "%.*speak_tf32_TFLOPS = 1e-300%s",
           (int)(at - PROFILE), PROFILE, at + strlen("peak_tf32_TFLOPS = 0"));
  dnn_hw *hw = NULL;
  assert_int_equal(dnn_hw_load_string(text, "p.ini", NULL, &hw, &e),
                   DNN_ERANGE);
  assert_contains(e.msg, "p.ini:6: [compute] peak_tf32_TFLOPS: 1e-300 is "
                         "below 1e-06");
  assert_int_equal(profile_with("[efficiency]\nmemory.copy = 1e-9\n", &e),
                   DNN_ERANGE);
  assert_contains(e.msg, "[efficiency] memory.copy: 1e-09 is below 1e-06");
  assert_int_equal(profile_with("[efficiency]\nconv_algo.implicit_gemm = 0\n"
                                "conv_algo.direct = 0\n",
                                &e),
                   DNN_ERANGE);
  assert_contains(e.msg, "conv_algo.implicit_gemm and conv_algo.direct are 0");
  /* "calibrated = ;x" would save and load back as "" (profile fuzzing,
   * tests/fuzz/regressions/profile/text-starting-with-semicolon.ini). */
  assert_int_equal(profile_with("[device]\ncalibrated =;x\n", &e), DNN_ERANGE);
  assert_contains(e.msg, "[device] calibrated: text contains ' ;' or starts "
                         "with ';'");
  dnn_hw_params hp = dnn_hw_default_params();
  snprintf(hp.name, sizeof hp.name, "x");
  hp.peak_flops[DNN_DTYPE_FP32] = 1e13;
  hp.mem_bandwidth_Bps = 9e11;
  hp.mem_capacity_bytes = 3.2e10;
  memset(hp.calibrated, 'c', 190);
  hp.calibrated[190] = '\0';
  assert_int_equal(dnn_hw_params_check(&hp, &e), DNN_ERANGE);
  assert_contains(e.msg, "[device] calibrated): text too long for one INI "
                         "line (at most 184 characters)");
}

/* A measured time so long that extrapolation overflows is refused. */
static void test_kernel_time_limit(void **state) {
  (void)state;
  dnn_hw_params hp = dnn_hw_default_params();
  snprintf(hp.name, sizeof hp.name, "x");
  hp.peak_flops[DNN_DTYPE_FP32] = 1e13;
  hp.mem_bandwidth_Bps = 9e11;
  hp.mem_capacity_bytes = 3.2e10;
  dnn_hw *hw;
  dnn_error e;
  assert_ok(dnn_hw_alloc(&hp, &hw, &e), &e);
  dnn_hw_kernel_row r = {
      "relu:3", DNN_PASS_FWD, DNN_CONV_ALGO_COUNT, DNN_DTYPE_FP32, 1, 1e300, 0};
  assert_int_equal(dnn_hw_kernel_add(hw, &r, &e), DNN_EINVAL);
  assert_contains(e.msg, "at most 1e6 s");
  r.time_s = 1e6;
  assert_ok(dnn_hw_kernel_add(hw, &r, &e), &e);
  double t = 0;
  assert_true(dnn_hw_kernel_lookup(hw, "relu:3", DNN_PASS_FWD,
                                   DNN_CONV_ALGO_COUNT, DNN_DTYPE_FP32,
                                   SIZE_MAX, &t));
  assert_true(isfinite(t));
  dnn_hw_free(hw);
}

/* ---- Collectives ----------------------------------------------------------
 */

/* ceil(log2 P) above 2^63 used to loop forever (the binomial tree and
 * every AUTO choice on SIZE_MAX ranks). */
static void test_collectives_on_size_max_ranks(void **state) {
  (void)state;
  dnn_comm_link l = {3.719e-6, 1 / 25e9, 1e-12};
  dnn_comm_topo t = dnn_comm_default_topo(SIZE_MAX, l);
  for (int op = 0; op < DNN_COMM_OP_COUNT; op++) {
    dnn_comm_cost c;
    dnn_error e;
    assert_ok(
        dnn_comm_time((dnn_comm_op)op, DNN_COMM_ALGO_AUTO, 0x1p40, &t, &c, &e),
        &e);
    assert_true(isfinite(c.time_s) && c.time_s > 0);
  }
  dnn_comm_cost c;
  dnn_error e;
  assert_ok(dnn_comm_time(DNN_COMM_BROADCAST, DNN_COMM_ALGO_BINOMIAL_TREE, 8.0,
                          &t, &c, &e),
            &e);
  assert_int_equal(c.steps, 64);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_adaptive_windows_closed_form),
      cmocka_unit_test(test_conv_output_wrap),
      cmocka_unit_test(test_pool_overflow),
      cmocka_unit_test(test_fft_size_above_2_63),
      cmocka_unit_test(test_ini_headers_as_inih_reads_them),
      cmocka_unit_test(test_deep_network_bottom_up),
      cmocka_unit_test(test_network_without_work),
      cmocka_unit_test(test_unwritable_values),
      cmocka_unit_test(test_writer_line_limit),
      cmocka_unit_test(test_validate_direct_fields),
      cmocka_unit_test(test_dtype_without_peak),
      cmocka_unit_test(test_profile_absurd_values),
      cmocka_unit_test(test_kernel_time_limit),
      cmocka_unit_test(test_collectives_on_size_max_ranks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
