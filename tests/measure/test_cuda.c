/* Tests of measure/cuda.c (label gpu). Without a CUDA device they check
 * the "no CUDA device" error and skip; with one they measure a small
 * network through cuDNN, cuBLAS and CUPTI and check every row. */
#include "test_util.h"

#include <math.h>

#include "dnnsim/measure.h"
#include "dnnsim/scenario.h"

static void add(dnn_net *net, dnn_layer_spec sp, const char *name,
                const char *in) {
  dnn_error e;
  sp.name = name;
  if (in) {
    sp.inputs[0] = in;
    sp.n_inputs = 1;
  }
  assert_ok(dnn_net_add(net, &sp, NULL, &e), &e);
}

static dnn_net *small_cnn(void) {
  dnn_net *net = NULL;
  dnn_error e;
  assert_ok(dnn_net_alloc("tiny-gpu", &net, &e), &e);
  dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_INPUT);
  sp.input_shape.rank = 3;
  sp.input_shape.dim[0] = 8;
  sp.input_shape.dim[1] = 16;
  sp.input_shape.dim[2] = 16;
  add(net, sp, "data", NULL);
  sp = dnn_layer_default_spec(DNN_LAYER_CONV2D);
  sp.p.conv.out_channels = 16;
  sp.p.conv.kernel_h = sp.p.conv.kernel_w = 3;
  sp.p.conv.pad_h = sp.p.conv.pad_w = 1;
  add(net, sp, "conv0", "data");
  sp = dnn_layer_default_spec(DNN_LAYER_CONV2D);
  sp.p.conv.out_channels = 16;
  sp.p.conv.kernel_h = sp.p.conv.kernel_w = 3;
  sp.p.conv.pad_h = sp.p.conv.pad_w = 1;
  add(net, sp, "conv1", "conv0");
  add(net, dnn_layer_default_spec(DNN_LAYER_BATCHNORM), "bn1", "conv1");
  add(net, dnn_layer_default_spec(DNN_LAYER_ACTIVATION), "relu1", "bn1");
  sp = dnn_layer_default_spec(DNN_LAYER_MAXPOOL);
  add(net, sp, "pool1", "relu1");
  sp = dnn_layer_default_spec(DNN_LAYER_FC);
  sp.p.fc.out_features = 10;
  add(net, sp, "fc", "pool1");
  add(net, dnn_layer_default_spec(DNN_LAYER_SOFTMAX_XENT), "loss", "fc");
  return net;
}

/* An LSTM straight on the input: x[T = 4][c = 6], 7 units. */
static dnn_net *small_lstm(void) {
  static const char ini[] = "[network]\nname = tiny-lstm\n"
                            "[layer.data]\ntype = input\nshape = 4, 6\n"
                            "[layer.lstm]\ntype = lstm\nhidden = 7\n"
                            "return_sequences = true\n";
  dnn_net *net = NULL;
  dnn_error e;
  assert_ok(dnn_scn_load_net_string(ini, "tiny-lstm.ini", 0, &net, &e), &e);
  return net;
}

static dnn_status on_row(void *ud, const dnn_meas_kernel_row *r,
                         dnn_error *err) {
  return dnn_meas_kernel_table_add(ud, r, err);
}

/* Skips (after checking the message) when there is no usable GPU. */
static void need_gpu(void) {
  dnn_error e;
  dnn_status st = dnn_meas_gpu_available(&e);
  if (st == DNN_ENODEVICE) {
    assert_contains(e.msg, "no CUDA device");
    skip();
  }
  if (st == DNN_EUNSUPPORTED) {
    assert_contains(e.msg, "without CUDA");
    skip();
  }
  assert_ok(st, &e);
}

static void test_no_device_or_kernels(void **state) {
  (void)state;
  need_gpu();
  dnn_net *net = small_cnn();
  dnn_meas_kernel_table *t = NULL;
  dnn_error e;
  assert_ok(dnn_meas_kernel_table_alloc(&t, &e), &e);
  static const size_t batches[] = {2, 8};
  dnn_meas_kernel_params p = dnn_meas_kernel_default_params();
  p.batches = batches;
  p.n_batches = 2;
  p.repeat = dnn_meas_repeat_quick_params();
  p.verify_rel_l2 = 1e-3;
  p.verify_max_rel = 1e-2;
  p.on_row = on_row;
  p.row_ud = t;
  assert_ok(dnn_meas_gpu_kernels(net, &p, &e), &e);
  size_t conv_fwd = 0, gemm = 0;
  for (size_t i = 0; i < dnn_meas_kernel_table_count(t); i++) {
    const dnn_meas_kernel_row *r = dnn_meas_kernel_table_get(t, i);
    assert_true(r->t.median_s > 0 && r->t.median_s < 1);
    assert_true(r->verify_rel_l2 <= 1e-3);
    if (r->kind == DNN_LAYER_CONV2D && r->pass == DNN_PASS_FWD &&
        strcmp(r->layer, "conv1") == 0 && r->batch == 8)
      conv_fwd++;
    if (r->kind == DNN_LAYER_FC)
      gemm++;
  }
  /* cuDNN offers several forward algorithms for a 3x3 convolution. */
  assert_true(conv_fwd >= 2);
  assert_int_equal(gemm, 6);
  dnn_meas_kernel_table_free(t);
  dnn_net_free(net);
}

static size_t rows_of(const dnn_meas_kernel_table *t, const char *layer,
                      dnn_pass pass) {
  size_t n = 0;
  for (size_t i = 0; i < dnn_meas_kernel_table_count(t); i++) {
    const dnn_meas_kernel_row *r = dnn_meas_kernel_table_get(t, i);
    n += strcmp(r->layer, layer) == 0 && r->pass == pass;
  }
  return n;
}

static void on_skip(void *ud, const char *layer, dnn_pass pass,
                    dnn_conv_algo algo, size_t batch, const char *why) {
  (void)layer;
  (void)pass;
  (void)algo;
  (void)batch;
  snprintf(ud, DNN_ERROR_MSG_MAX, "%s", why);
}

/* The cuDNN LSTM's three passes are verified (forward against ref.c, the
 * gradients by directional derivatives) and timed; a pass whose check
 * fails is left out and reported, the others still measured. */
static void test_lstm(void **state) {
  (void)state;
  need_gpu();
  dnn_net *net = small_lstm();
  dnn_meas_kernel_table *t = NULL;
  dnn_error e;
  assert_ok(dnn_meas_kernel_table_alloc(&t, &e), &e);
  static const size_t batches[] = {2, 8};
  char why[DNN_ERROR_MSG_MAX] = "";
  dnn_meas_kernel_params p = dnn_meas_kernel_default_params();
  p.batches = batches;
  p.n_batches = 2;
  p.repeat = dnn_meas_repeat_quick_params();
  p.verify_rel_l2 = 1e-3;
  p.verify_max_rel = 1e-2;
  p.on_row = on_row;
  p.row_ud = t;
  p.on_skip = on_skip;
  p.skip_ud = why;
  assert_ok(dnn_meas_gpu_kernels(net, &p, &e), &e);
  assert_string_equal(why, "");
  for (int pass = 0; pass < DNN_PASS_COUNT; pass++)
    assert_int_equal(rows_of(t, "lstm", (dnn_pass)pass), 2);
  for (size_t i = 0; i < dnn_meas_kernel_table_count(t); i++) {
    const dnn_meas_kernel_row *r = dnn_meas_kernel_table_get(t, i);
    assert_true(r->t.median_s > 0 && r->t.median_s < 1);
    assert_true(r->verify_rel_l2 <= 1e-3);
    assert_string_equal(r->backend, "cudnn");
  }
  dnn_meas_kernel_table_free(t);
  t = NULL;
  assert_ok(dnn_meas_kernel_table_alloc(&t, &e), &e);
  p.row_ud = t;
  dnn_meas_verify_perturb(DNN_LAYER_LSTM, DNN_PASS_BWD_WEIGHTS, 1.5);
  dnn_status st = dnn_meas_gpu_kernels(net, &p, &e);
  dnn_meas_verify_perturb(DNN_LAYER_LSTM, DNN_PASS_BWD_WEIGHTS, 1);
  assert_ok(st, &e);
  assert_contains(why, "fails verification");
  assert_int_equal(rows_of(t, "lstm", DNN_PASS_BWD_WEIGHTS), 0);
  assert_int_equal(rows_of(t, "lstm", DNN_PASS_FWD), 2);
  dnn_meas_kernel_table_free(t);
  dnn_net_free(net);
}

static void test_peaks(void **state) {
  (void)state;
  need_gpu();
  dnn_meas_peaks pk;
  dnn_error e;
  assert_ok(dnn_meas_gpu_peaks(true, &pk, &e), &e);
  assert_true(pk.flops[DNN_DTYPE_FP32] > 1e11);
  assert_true(pk.flops[DNN_DTYPE_FP16] > pk.flops[DNN_DTYPE_FP32]);
  assert_true(pk.mem_bandwidth_Bps > 1e11);
  assert_true(pk.launch_overhead_s > 0);
  assert_contains(pk.library, "cuDNN");
}

/* Without a device, the kernel sweep itself says so too. */
static void test_sweep_without_device(void **state) {
  (void)state;
  dnn_error e;
  if (dnn_meas_gpu_available(&e) == DNN_OK)
    skip();
  dnn_net *net = small_cnn();
  dnn_meas_kernel_params p = dnn_meas_kernel_default_params();
  dnn_status st = dnn_meas_gpu_kernels(net, &p, &e);
  assert_true(st == DNN_ENODEVICE || st == DNN_EUNSUPPORTED);
  if (st == DNN_ENODEVICE)
    assert_contains(e.msg, "no CUDA device");
  dnn_meas_peaks pk;
  st = dnn_meas_gpu_peaks(true, &pk, &e);
  assert_true(st == DNN_ENODEVICE || st == DNN_EUNSUPPORTED);
  dnn_net_free(net);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sweep_without_device),
      cmocka_unit_test(test_no_device_or_kernels),
      cmocka_unit_test(test_peaks),
      cmocka_unit_test(test_lstm),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
