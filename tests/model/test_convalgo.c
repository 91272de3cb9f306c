/* Tests of model/convalgo.c: hand-computed FLOPs and workspace of every
 * algorithm (docs/models.md §2), applicability rules, workspace growth in
 * the batch, and agreement of the direct algorithm with dnn_layer_cost. */
#include "test_util.h"

#include "dnnsim/model.h"

#define REL 1e-12

/* data(3,13,13) -> bn -> conv(5, 3x3, pad 1, stride `stride`, bias), and
 * a few more convolutions for the applicability rules. */
static dnn_net *build(size_t stride) {
  dnn_net *net = NULL;
  dnn_error e;
  assert_ok(dnn_net_alloc("algo", &net, &e), &e);
  dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_INPUT);
  sp.name = "data";
  sp.input_shape = (dnn_shape){.rank = 3, .dim = {3, 13, 13}};
  assert_ok(dnn_net_add(net, &sp, NULL, &e), &e);
  sp = dnn_layer_default_spec(DNN_LAYER_BATCHNORM);
  sp.name = "bn";
  sp.inputs[0] = "data";
  sp.n_inputs = 1;
  assert_ok(dnn_net_add(net, &sp, NULL, &e), &e);
  sp = dnn_layer_default_spec(DNN_LAYER_CONV2D);
  sp.name = "conv";
  sp.inputs[0] = "bn";
  sp.n_inputs = 1;
  sp.p.conv.out_channels = 5;
  sp.p.conv.kernel_h = sp.p.conv.kernel_w = 3;
  sp.p.conv.pad_h = sp.p.conv.pad_w = 1;
  sp.p.conv.stride_h = sp.p.conv.stride_w = stride;
  assert_ok(dnn_net_add(net, &sp, NULL, &e), &e);
  return net;
}

/* Adds conv `name` reading "bn" with the given shape parameters. */
static size_t add_conv(dnn_net *net, const char *name, size_t kh, size_t kw,
                       size_t pad, size_t stride, size_t dil, size_t groups) {
  dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_CONV2D);
  sp.name = name;
  sp.inputs[0] = "bn";
  sp.n_inputs = 1;
  sp.p.conv.out_channels = 6;
  sp.p.conv.kernel_h = kh;
  sp.p.conv.kernel_w = kw;
  sp.p.conv.pad_h = sp.p.conv.pad_w = pad;
  sp.p.conv.stride_h = sp.p.conv.stride_w = stride;
  sp.p.conv.dilation_h = sp.p.conv.dilation_w = dil;
  sp.p.conv.groups = groups;
  dnn_error e;
  size_t idx;
  assert_ok(dnn_net_add(net, &sp, &idx, &e), &e);
  return idx;
}

static dnn_conv_algo_cost algo(const dnn_net *net, size_t i, dnn_pass pass,
                               dnn_conv_algo a, size_t batch) {
  dnn_conv_algo_cost c;
  dnn_conv_algo_cost_get(net, i, pass, a, batch, DNN_DTYPE_FP32, &c);
  return c;
}

/*
 * Stride 2 (P = Q = 7, batch 7, fp32): only the GEMM family and direct
 * apply. Direct forward = dnn_layer_cost: 94325 FLOPs.
 *   implicit_precomp_gemm: (3*9 + 49) int32 offsets = 304 bytes
 *   gemm: lowered matrix 27 x 7*49 = 9261 elements = 37044 bytes; its
 *   bwd_data adds 9261 col2im additions: 92610 + 9261 = 101871, and moves
 *   the column buffer once each way: read 7400 + 37044, write 14196 +
 *   37044.
 */
static void test_strided_by_hand(void **state) {
  (void)state;
  dnn_net *net = build(2);
  const size_t cv = 2;
  dnn_conv_algo_cost c = algo(net, cv, DNN_PASS_FWD, DNN_CONV_DIRECT, 7);
  assert_true(c.applicable);
  assert_close(c.flops, 94325, REL);
  assert_close(c.workspace_bytes, 0, REL);
  c = algo(net, cv, DNN_PASS_FWD, DNN_CONV_IMPLICIT_GEMM, 7);
  assert_true(c.applicable);
  assert_close(c.flops, 94325, REL);
  assert_close(c.bytes_read, 14756, REL);
  assert_close(c.workspace_bytes, 0, REL);
  c = algo(net, cv, DNN_PASS_FWD, DNN_CONV_IMPLICIT_PRECOMP_GEMM, 7);
  assert_close(c.workspace_bytes, 304, REL);
  assert_close(c.bytes_read, 14756 + 304, REL);
  c = algo(net, cv, DNN_PASS_FWD, DNN_CONV_GEMM, 7);
  assert_close(c.flops, 94325, REL);
  assert_close(c.workspace_bytes, 37044, REL);
  assert_close(c.bytes_read, 14756 + 37044, REL);
  assert_close(c.bytes_written, 6860 + 37044, REL);
  c = algo(net, cv, DNN_PASS_BWD_DATA, DNN_CONV_GEMM, 7);
  assert_close(c.flops, 101871, REL);
  assert_close(c.workspace_bytes, 37044, REL);
  assert_close(c.bytes_read, 44444, REL);
  assert_close(c.bytes_written, 51240, REL);
  c = algo(net, cv, DNN_PASS_BWD_WEIGHTS, DNN_CONV_GEMM, 7);
  assert_close(c.flops, 94325, REL);
  assert_close(c.workspace_bytes, 37044, REL);
  const dnn_conv_algo no[] = {DNN_CONV_FFT, DNN_CONV_FFT_TILING,
                              DNN_CONV_WINOGRAD, DNN_CONV_WINOGRAD_NONFUSED};
  for (size_t k = 0; k < 4; k++)
    for (int p = 0; p < DNN_PASS_COUNT; p++) {
      c = algo(net, cv, (dnn_pass)p, no[k], 7);
      assert_false(c.applicable);
      assert_close(c.flops + c.workspace_bytes + c.bytes_read, 0, REL);
    }
  dnn_net_free(net);
}

/*
 * Stride 1 (P = Q = 13, batch 7, fp32). Direct: MACs 7*5*3*9*169 =
 * 159705, bias adds 5915, forward 325325 FLOPs.
 *   fft: transform 16x16 (next power of two >= 15), 144 bins; 71
 *     transformed tensors (7*3 inputs, 5*3 filters, 7*5 outputs) at
 *     2.5 * 256 * 8 = 5120 FLOPs = 363520; pointwise 8 * 7*5*3 * 144 =
 *     120960; total 5915 + 363520 + 120960 = 490395; workspace
 *     71 * 144 complex * 8 bytes = 81792.
 *   fft_tiling: one 32x32 tile per image (30 outputs per tile); 71
 *     transforms at 2.5 * 1024 * 10 = 25600 = 1817600; pointwise
 *     8 * 105 * 544 = 456960; total 2280475; workspace one sample's tiles
 *     (3 + 5) + the 15 filters: 23 * 544 * 8 = 100096.
 *   winograd F(2x2,3x3): 7 * 7 * 7 = 343 tiles; 2 * 343 * 15 * 16 = 164640
 *     + input transforms 343 * 3 * 32 = 32928 + output 343 * 5 * 24 =
 *     41160 + filters 15 * 70 = 1050; total 245693; workspace 15 * 16 * 4
 *     = 960.
 *   winograd_nonfused F(4x4,3x3): 7 * 4 * 4 = 112 tiles; 2 * 112 * 15 * 36
 *     = 120960 + 112 * 3 * 336 = 112896 + 112 * 5 * 200 = 112000 +
 *     15 * 189 = 2835; total 354606; workspace (15 + 112 * 8) * 36 * 4 =
 *     131184.
 */
static void test_stride1_by_hand(void **state) {
  (void)state;
  dnn_net *net = build(1);
  const size_t cv = 2;
  dnn_conv_algo_cost c = algo(net, cv, DNN_PASS_FWD, DNN_CONV_DIRECT, 7);
  assert_close(c.flops, 325325, REL);
  c = algo(net, cv, DNN_PASS_FWD, DNN_CONV_FFT, 7);
  assert_true(c.applicable);
  assert_close(c.flops, 490395, REL);
  assert_close(c.workspace_bytes, 81792, REL);
  c = algo(net, cv, DNN_PASS_FWD, DNN_CONV_FFT_TILING, 7);
  assert_true(c.applicable);
  assert_close(c.flops, 2280475, REL);
  assert_close(c.workspace_bytes, 100096, REL);
  c = algo(net, cv, DNN_PASS_FWD, DNN_CONV_WINOGRAD, 7);
  assert_true(c.applicable);
  assert_close(c.flops, 245693, REL);
  assert_close(c.workspace_bytes, 960, REL);
  /* direct bytes: read (7*3*169 + 135 + 5) * 4, write 5915 * 4; plus the
   * workspace once each way. */
  assert_close(c.bytes_read, (3549 + 140) * 4 + 960, REL);
  assert_close(c.bytes_written, 5915 * 4 + 960, REL);
  c = algo(net, cv, DNN_PASS_FWD, DNN_CONV_WINOGRAD_NONFUSED, 7);
  assert_true(c.applicable);
  assert_close(c.flops, 354606, REL);
  assert_close(c.workspace_bytes, 131184, REL);
  /* bwd_data of winograd tiles the input grid (13x13, the same here) with
   * the channel roles swapped: 112 * 5 * 336 + 112 * 3 * 200, no bias. */
  c = algo(net, cv, DNN_PASS_BWD_DATA, DNN_CONV_WINOGRAD_NONFUSED, 7);
  assert_close(c.flops, 120960 + 188160 + 67200 + 2835, REL);
  assert_close(c.workspace_bytes, 131184, REL);
  /* The fused Winograd multiplies 16/36 of the direct MACs when the output
   * tiles exactly: check on the MAC term alone at 12x12 outputs. */
  dnn_net_free(net);
}

static void test_applicability(void **state) {
  (void)state;
  dnn_net *net = build(1);
  size_t k5 = add_conv(net, "k5", 5, 5, 2, 1, 1, 1);
  size_t k1 = add_conv(net, "k1", 1, 1, 0, 1, 1, 1);
  size_t k35 = add_conv(net, "k35", 3, 5, 1, 1, 1, 1);
  size_t dil = add_conv(net, "dil", 3, 3, 2, 1, 2, 1);
  size_t grp = add_conv(net, "grp", 3, 3, 1, 1, 1, 3);
  size_t pad3 = add_conv(net, "pad3", 3, 3, 3, 1, 1, 1);
  size_t s2 = add_conv(net, "s2", 3, 3, 1, 2, 1, 1);
  dnn_pass F = DNN_PASS_FWD, D = DNN_PASS_BWD_DATA;
  /* Winograd: fused only 3x3, non-fused also 5x5; never 1x1 or 3x5. */
  assert_true(algo(net, 2, F, DNN_CONV_WINOGRAD, 4).applicable);
  assert_false(algo(net, k5, F, DNN_CONV_WINOGRAD, 4).applicable);
  assert_true(algo(net, k5, F, DNN_CONV_WINOGRAD_NONFUSED, 4).applicable);
  assert_false(algo(net, k1, F, DNN_CONV_WINOGRAD_NONFUSED, 4).applicable);
  assert_false(algo(net, k35, F, DNN_CONV_WINOGRAD, 4).applicable);
  assert_false(algo(net, k35, F, DNN_CONV_WINOGRAD_NONFUSED, 4).applicable);
  assert_true(algo(net, k35, F, DNN_CONV_FFT, 4).applicable);
  assert_true(algo(net, k1, F, DNN_CONV_FFT_TILING, 4).applicable);
  /* Dilation, stride and groups rule out FFT and Winograd. */
  for (int a = DNN_CONV_FFT; a <= DNN_CONV_WINOGRAD_NONFUSED; a++) {
    assert_false(algo(net, dil, F, (dnn_conv_algo)a, 4).applicable);
    assert_false(algo(net, grp, F, (dnn_conv_algo)a, 4).applicable);
    assert_false(algo(net, s2, F, (dnn_conv_algo)a, 4).applicable);
  }
  for (int a = DNN_CONV_IMPLICIT_GEMM; a <= DNN_CONV_DIRECT; a++) {
    assert_true(algo(net, dil, F, (dnn_conv_algo)a, 4).applicable);
    assert_true(algo(net, grp, D, (dnn_conv_algo)a, 4).applicable);
  }
  /* Padding beyond r - 1: Winograd forward yes, bwd_data no. */
  assert_true(algo(net, pad3, F, DNN_CONV_WINOGRAD, 4).applicable);
  assert_false(algo(net, pad3, D, DNN_CONV_WINOGRAD, 4).applicable);
  assert_true(algo(net, pad3, D, DNN_CONV_FFT, 4).applicable);
  /* Not a convolution: never applicable. */
  for (int a = 0; a < DNN_CONV_ALGO_COUNT; a++)
    assert_false(algo(net, 1, F, (dnn_conv_algo)a, 4).applicable);
  /* Grouped gemm: one group's lowered matrix (3/3 * 9 * 4 * 169 elements)
   * in workspace, all three groups' traffic. */
  dnn_conv_algo_cost c = algo(net, grp, F, DNN_CONV_GEMM, 4);
  assert_close(c.workspace_bytes, 9 * 4 * 169 * 4, REL);
  dnn_cost d;
  dnn_layer_cost(net, grp, F, 4, DNN_DTYPE_FP32, &d);
  assert_close(c.bytes_read, d.bytes_read + 3 * 9 * 4 * 169 * 4, REL);
  dnn_net_free(net);
}

/* Workspace grows with the batch for gemm, fft and winograd_nonfused (what
 * µ-cuDNN exploits) and is constant for the others. */
static void test_workspace_in_batch(void **state) {
  (void)state;
  dnn_net *net = build(1);
  for (int p = 0; p < DNN_PASS_COUNT; p++) {
    dnn_pass pass = (dnn_pass)p;
    for (int a = 0; a < DNN_CONV_ALGO_COUNT; a++) {
      dnn_conv_algo al = (dnn_conv_algo)a;
      bool grows = al == DNN_CONV_GEMM || al == DNN_CONV_FFT ||
                   al == DNN_CONV_WINOGRAD_NONFUSED;
      double prev = algo(net, 2, pass, al, 1).workspace_bytes;
      for (size_t b = 2; b <= 64; b++) {
        double ws = algo(net, 2, pass, al, b).workspace_bytes;
        if (grows)
          assert_true(ws > prev);
        else
          assert_close(ws, prev, REL);
        prev = ws;
      }
      if (al == DNN_CONV_IMPLICIT_GEMM || al == DNN_CONV_DIRECT)
        assert_close(prev, 0, REL);
      else
        assert_true(prev > 0);
    }
  }
  dnn_net_free(net);
}

/* direct = dnn_layer_cost in every pass; a pass the layer lacks costs
 * nothing under every algorithm. */
static void test_direct_matches_layer_cost(void **state) {
  (void)state;
  dnn_net *net = build(1);
  size_t first = add_conv(net, "k5", 5, 5, 2, 1, 1, 1);
  for (int p = 0; p < DNN_PASS_COUNT; p++) {
    dnn_cost d;
    dnn_layer_cost(net, 2, (dnn_pass)p, 9, DNN_DTYPE_FP16, &d);
    dnn_conv_algo_cost c;
    dnn_conv_algo_cost_get(net, 2, (dnn_pass)p, DNN_CONV_DIRECT, 9,
                           DNN_DTYPE_FP16, &c);
    assert_close(c.flops, d.flops, REL);
    assert_close(c.bytes_read, d.bytes_read, REL);
    assert_close(c.bytes_written, d.bytes_written, REL);
    assert_true(d.flops > 0);
  }
  /* A conv straight on the input has no bwd_data. */
  dnn_net *n2 = NULL;
  dnn_error e;
  assert_ok(dnn_net_alloc("n2", &n2, &e), &e);
  dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_INPUT);
  sp.name = "bn"; /* so add_conv's input name resolves */
  sp.input_shape = (dnn_shape){.rank = 3, .dim = {3, 13, 13}};
  assert_ok(dnn_net_add(n2, &sp, NULL, &e), &e);
  size_t c0 = add_conv(n2, "c0", 3, 3, 1, 1, 1, 1);
  for (int a = 0; a < DNN_CONV_ALGO_COUNT; a++) {
    dnn_conv_algo_cost c = algo(n2, c0, DNN_PASS_BWD_DATA, (dnn_conv_algo)a, 8);
    assert_true(c.applicable);
    assert_close(c.flops + c.bytes_read + c.workspace_bytes, 0, REL);
    c = algo(n2, c0, DNN_PASS_BWD_WEIGHTS, (dnn_conv_algo)a, 8);
    assert_true(c.flops > 0);
  }
  (void)first;
  dnn_net_free(n2);
  dnn_net_free(net);
}

/* Winograd's multiply saving: 16/36 (fused) and 36/144 (F(4x4,3x3)) of the
 * direct MACs when tiles cover the output exactly (12x12 outputs). */
static void test_winograd_ratio(void **state) {
  (void)state;
  dnn_net *net = NULL;
  dnn_error e;
  assert_ok(dnn_net_alloc("w", &net, &e), &e);
  dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_INPUT);
  sp.name = "bn";
  sp.input_shape = (dnn_shape){.rank = 3, .dim = {64, 12, 12}};
  assert_ok(dnn_net_add(net, &sp, NULL, &e), &e);
  size_t c = add_conv(net, "c", 3, 3, 1, 1, 1, 1);
  double macs = 2.0 * 6 * 64 * 9 * 144; /* batch 2 */
  double t2 = 2.0 * 36, t4 = 2.0 * 9;   /* tiles */
  double in2 = t2 * 64 * 32, out2 = t2 * 6 * 24, f2 = 6 * 64 * 70.0;
  double in4 = t4 * 64 * 336, out4 = t4 * 6 * 200, f4 = 6 * 64 * 189.0;
  double bias = 2.0 * 6 * 144;
  dnn_conv_algo_cost w = algo(net, c, DNN_PASS_FWD, DNN_CONV_WINOGRAD, 2);
  assert_close(w.flops - in2 - out2 - f2 - bias, 2 * macs * 16 / 36, REL);
  w = algo(net, c, DNN_PASS_FWD, DNN_CONV_WINOGRAD_NONFUSED, 2);
  assert_close(w.flops - in4 - out4 - f4 - bias, 2 * macs * 36 / 144, REL);
  dnn_net_free(net);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_strided_by_hand),
      cmocka_unit_test(test_stride1_by_hand),
      cmocka_unit_test(test_applicability),
      cmocka_unit_test(test_workspace_in_batch),
      cmocka_unit_test(test_direct_matches_layer_cost),
      cmocka_unit_test(test_winograd_ratio),
  };
  return cmocka_run_group_tests_name("model/convalgo", tests, NULL, NULL);
}
