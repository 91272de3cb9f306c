/* Tests of measure/dnnl.c: every oneDNN kernel of small networks is
 * verified against the C reference and timed; a deliberately wrong
 * reference makes verification fail; the peak benchmarks run. Skips when
 * the build has no oneDNN. */
#include "test_util.h"

#include <math.h>

#include "dnnsim/measure.h"

/* Appends a layer; `in` names its single input (NULL for none). */
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

/* A small CNN touching every CPU kernel kind: conv (grouped, strided,
 * biased), batch norm, the activations, max/avg/global pooling, add,
 * concat, fc and softmax. */
static dnn_net *small_cnn(void) {
  dnn_net *net = NULL;
  dnn_error e;
  assert_ok(dnn_net_alloc("tiny", &net, &e), &e);
  dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_INPUT);
  sp.input_shape.rank = 3;
  sp.input_shape.dim[0] = 3;
  sp.input_shape.dim[1] = 13;
  sp.input_shape.dim[2] = 13;
  add(net, sp, "data", NULL);
  sp = dnn_layer_default_spec(DNN_LAYER_CONV2D);
  sp.p.conv.out_channels = 8;
  sp.p.conv.kernel_h = sp.p.conv.kernel_w = 3;
  sp.p.conv.pad_h = sp.p.conv.pad_w = 1;
  add(net, sp, "conv1", "data");
  add(net, dnn_layer_default_spec(DNN_LAYER_BATCHNORM), "bn1", "conv1");
  sp = dnn_layer_default_spec(DNN_LAYER_ACTIVATION);
  add(net, sp, "relu1", "bn1");
  sp = dnn_layer_default_spec(DNN_LAYER_MAXPOOL);
  sp.p.pool.kernel_h = sp.p.pool.kernel_w = 3;
  sp.p.pool.stride_h = sp.p.pool.stride_w = 2;
  sp.p.pool.pad_h = sp.p.pool.pad_w = 1;
  add(net, sp, "pool1", "relu1");
  sp = dnn_layer_default_spec(DNN_LAYER_CONV2D);
  sp.p.conv.out_channels = 8;
  sp.p.conv.kernel_h = sp.p.conv.kernel_w = 3;
  sp.p.conv.pad_h = sp.p.conv.pad_w = 1;
  sp.p.conv.groups = 2;
  sp.p.conv.bias = false;
  add(net, sp, "conv2", "pool1");
  sp = dnn_layer_default_spec(DNN_LAYER_ACTIVATION);
  sp.p.act.act = DNN_ACT_TANH;
  add(net, sp, "tanh2", "conv2");
  sp = dnn_layer_default_spec(DNN_LAYER_ADD);
  sp.inputs[0] = "tanh2";
  sp.inputs[1] = "pool1";
  sp.n_inputs = 2;
  add(net, sp, "add2", NULL);
  sp = dnn_layer_default_spec(DNN_LAYER_CONCAT);
  sp.inputs[0] = "add2";
  sp.inputs[1] = "pool1";
  sp.n_inputs = 2;
  add(net, sp, "cat", NULL);
  sp = dnn_layer_default_spec(DNN_LAYER_AVGPOOL);
  sp.p.pool.kernel_h = sp.p.pool.kernel_w = 2;
  add(net, sp, "pool2", "cat");
  sp = dnn_layer_default_spec(DNN_LAYER_ACTIVATION);
  sp.p.act.act = DNN_ACT_SIGMOID;
  add(net, sp, "sig", "pool2");
  add(net, dnn_layer_default_spec(DNN_LAYER_GLOBAL_AVGPOOL), "gap", "sig");
  sp = dnn_layer_default_spec(DNN_LAYER_FC);
  sp.p.fc.out_features = 10;
  add(net, sp, "fc", "gap");
  add(net, dnn_layer_default_spec(DNN_LAYER_SOFTMAX_XENT), "loss", "fc");
  return net;
}

/* A sequence model: LSTM, layer norm, GELU and a per-step fc. */
static dnn_net *small_rnn(void) {
  dnn_net *net = NULL;
  dnn_error e;
  assert_ok(dnn_net_alloc("tiny-rnn", &net, &e), &e);
  dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_INPUT);
  sp.input_shape.rank = 2;
  sp.input_shape.dim[0] = 4;
  sp.input_shape.dim[1] = 6;
  add(net, sp, "data", NULL);
  sp = dnn_layer_default_spec(DNN_LAYER_FC);
  sp.p.fc.out_features = 5;
  add(net, sp, "proj", "data");
  sp = dnn_layer_default_spec(DNN_LAYER_LSTM);
  sp.p.lstm.hidden = 7;
  sp.p.lstm.return_sequences = true;
  add(net, sp, "lstm", "proj");
  add(net, dnn_layer_default_spec(DNN_LAYER_LAYERNORM), "ln", "lstm");
  sp = dnn_layer_default_spec(DNN_LAYER_ACTIVATION);
  sp.p.act.act = DNN_ACT_GELU;
  add(net, sp, "gelu", "ln");
  return net;
}

typedef struct collect {
  dnn_meas_kernel_table *t;
  size_t progress_calls;
} collect;

static dnn_status on_row(void *ud, const dnn_meas_kernel_row *r,
                         dnn_error *err) {
  collect *c = ud;
  return dnn_meas_kernel_table_add(c->t, r, err);
}

static int on_progress(void *ud, size_t done, size_t total, const char *label) {
  collect *c = ud;
  (void)label;
  assert_true(done <= total);
  c->progress_calls++;
  return 0;
}

static int stop_progress(void *ud, size_t done, size_t total,
                         const char *label) {
  (void)ud;
  (void)total;
  (void)label;
  return done >= 2; /* interrupt after two layers */
}

static dnn_meas_kernel_params params(collect *c) {
  static const size_t batches[] = {2, 3};
  dnn_meas_kernel_params p = dnn_meas_kernel_default_params();
  p.batches = batches;
  p.n_batches = 2;
  p.repeat = dnn_meas_repeat_quick_params();
  p.repeat.max_total_s = 0.02;
  p.threads = 1;
  p.on_row = on_row;
  p.row_ud = c;
  p.progress = on_progress;
  p.progress_ud = c;
  return p;
}

static bool have_dnnl(void) {
  dnn_meas_peaks pk;
  dnn_error e;
  return dnn_meas_cpu_peaks(true, 1, &pk, &e) != DNN_EUNSUPPORTED;
}

/* Rows of (layer, pass) in the table. */
static size_t rows_of(const dnn_meas_kernel_table *t, const char *layer,
                      dnn_pass pass) {
  size_t n = 0;
  for (size_t i = 0; i < dnn_meas_kernel_table_count(t); i++) {
    const dnn_meas_kernel_row *r = dnn_meas_kernel_table_get(t, i);
    if (strcmp(r->layer, layer) == 0 && r->pass == pass)
      n++;
  }
  return n;
}

static void test_cnn_verified(void **state) {
  (void)state;
  if (!have_dnnl())
    skip();
  dnn_net *net = small_cnn();
  collect c = {NULL, 0};
  dnn_error e;
  assert_ok(dnn_meas_kernel_table_alloc(&c.t, &e), &e);
  dnn_meas_kernel_params p = params(&c);
  assert_ok(dnn_meas_cpu_kernels(net, &p, &e), &e);
  assert_true(c.progress_calls > 10);
  /* Every kind measured at both batches, verified to fp32 accuracy. */
  assert_int_equal(rows_of(c.t, "conv1", DNN_PASS_FWD), 2);
  assert_int_equal(rows_of(c.t, "conv2", DNN_PASS_BWD_DATA), 2);
  assert_int_equal(rows_of(c.t, "conv2", DNN_PASS_BWD_WEIGHTS), 2);
  assert_int_equal(rows_of(c.t, "bn1", DNN_PASS_BWD_WEIGHTS), 2);
  assert_int_equal(rows_of(c.t, "pool1", DNN_PASS_BWD_DATA), 2);
  assert_int_equal(rows_of(c.t, "add2", DNN_PASS_FWD), 2);
  assert_int_equal(rows_of(c.t, "cat", DNN_PASS_FWD), 2);
  assert_int_equal(rows_of(c.t, "gap", DNN_PASS_FWD), 2);
  assert_int_equal(rows_of(c.t, "fc", DNN_PASS_BWD_WEIGHTS), 2);
  assert_int_equal(rows_of(c.t, "loss", DNN_PASS_FWD), 2);
  /* conv1 is the first layer: no input gradient to compute. */
  assert_int_equal(rows_of(c.t, "conv1", DNN_PASS_BWD_DATA), 0);
  for (size_t i = 0; i < dnn_meas_kernel_table_count(c.t); i++) {
    const dnn_meas_kernel_row *r = dnn_meas_kernel_table_get(c.t, i);
    assert_true(r->t.median_s > 0);
    assert_true(r->t.samples >= 3);
    assert_string_equal(r->backend, "onednn");
    assert_true(r->verify_rel_l2 <= 1e-4);
    assert_true(r->verify_max_rel <= 1e-3);
    assert_true(r->kind == DNN_LAYER_CONV2D ? r->algo == DNN_CONV_DIRECT
                                            : r->algo == DNN_CONV_ALGO_COUNT);
  }
  /* --resume: nothing is measured twice. */
  size_t before = dnn_meas_kernel_table_count(c.t);
  p.done = c.t;
  assert_ok(dnn_meas_cpu_kernels(net, &p, &e), &e);
  assert_int_equal(dnn_meas_kernel_table_count(c.t), before);
  /* An interruption from the progress hook. */
  p.done = NULL;
  p.progress = stop_progress;
  assert_int_equal(dnn_meas_cpu_kernels(net, &p, &e), DNN_EINTERRUPTED);
  assert_contains(e.msg, "interrupted");
  dnn_meas_kernel_table_free(c.t);
  dnn_net_free(net);
}

static void test_rnn_verified(void **state) {
  (void)state;
  if (!have_dnnl())
    skip();
  dnn_net *net = small_rnn();
  collect c = {NULL, 0};
  dnn_error e;
  assert_ok(dnn_meas_kernel_table_alloc(&c.t, &e), &e);
  dnn_meas_kernel_params p = params(&c);
  assert_ok(dnn_meas_cpu_kernels(net, &p, &e), &e);
  assert_int_equal(rows_of(c.t, "lstm", DNN_PASS_FWD), 2);
  assert_int_equal(rows_of(c.t, "lstm", DNN_PASS_BWD_DATA), 2);
  assert_int_equal(rows_of(c.t, "lstm", DNN_PASS_BWD_WEIGHTS), 2);
  assert_int_equal(rows_of(c.t, "ln", DNN_PASS_FWD), 2);
  assert_int_equal(rows_of(c.t, "gelu", DNN_PASS_BWD_DATA), 2);
  assert_int_equal(rows_of(c.t, "proj", DNN_PASS_FWD), 2);
  dnn_meas_kernel_table_free(c.t);
  dnn_net_free(net);
}

/* A wrong reference (scaled by 1.01) must stop the sweep. */
static void test_wrong_reference_fails(void **state) {
  (void)state;
  if (!have_dnnl())
    skip();
  dnn_net *net = small_cnn();
  collect c = {NULL, 0};
  dnn_error e;
  assert_ok(dnn_meas_kernel_table_alloc(&c.t, &e), &e);
  dnn_meas_kernel_params p = params(&c);
  dnn_meas_verify_perturb(DNN_LAYER_CONV2D, DNN_PASS_BWD_WEIGHTS, 1.01);
  dnn_status st = dnn_meas_cpu_kernels(net, &p, &e);
  dnn_meas_verify_perturb(DNN_LAYER_CONV2D, DNN_PASS_BWD_WEIGHTS, 1);
  assert_int_equal(st, DNN_EVERIFY);
  assert_contains(e.msg, "bwd_weights of layer 'conv1'");
  assert_contains(e.msg, "refusing to calibrate");
  /* Nothing of conv1 was timed. */
  assert_int_equal(rows_of(c.t, "conv1", DNN_PASS_FWD), 0);
  dnn_meas_verify_perturb(DNN_LAYER_LSTM, DNN_PASS_BWD_DATA, 1.5);
  dnn_net *rnn = small_rnn();
  st = dnn_meas_cpu_kernels(rnn, &p, &e);
  dnn_meas_verify_perturb(DNN_LAYER_LSTM, DNN_PASS_BWD_DATA, 1);
  assert_int_equal(st, DNN_EVERIFY);
  assert_contains(e.msg, "bwd_data of layer 'lstm'");
  dnn_net_free(rnn);
  dnn_meas_kernel_table_free(c.t);
  dnn_net_free(net);
}

static void test_params_and_dtype(void **state) {
  (void)state;
  if (!have_dnnl())
    skip();
  dnn_net *net = small_cnn();
  collect c = {NULL, 0};
  dnn_error e;
  assert_ok(dnn_meas_kernel_table_alloc(&c.t, &e), &e);
  dnn_meas_kernel_params p = params(&c);
  p.n_batches = 0;
  assert_int_equal(dnn_meas_cpu_kernels(net, &p, &e), DNN_EINVAL);
  assert_contains(e.msg, "no batch size");
  p = params(&c);
  p.dtype = DNN_DTYPE_FP16;
  assert_int_equal(dnn_meas_cpu_kernels(net, &p, &e), DNN_EUNSUPPORTED);
  assert_contains(e.msg, "fp32 and bf16");
  /* bf16 where the CPU has it: verified at bf16 tolerances. */
  dnn_meas_peaks pk;
  assert_ok(dnn_meas_cpu_peaks(true, 1, &pk, &e), &e);
  if (pk.flops[DNN_DTYPE_BF16] > 0) {
    p = params(&c);
    p.dtype = DNN_DTYPE_BF16;
    p.verify_rel_l2 = 2e-2;
    p.verify_max_rel = 1e-1;
    size_t before = dnn_meas_kernel_table_count(c.t);
    assert_ok(dnn_meas_cpu_kernels(net, &p, &e), &e);
    assert_true(dnn_meas_kernel_table_count(c.t) > before + 20);
    const dnn_meas_kernel_row *r = dnn_meas_kernel_table_find(
        c.t, "tiny", "conv2", DNN_PASS_FWD, DNN_CONV_DIRECT, DNN_DTYPE_BF16, 2);
    assert_non_null(r);
    assert_true(r->verify_rel_l2 > 1e-6 && r->verify_rel_l2 <= 2e-2);
  }
  dnn_meas_kernel_table_free(c.t);
  dnn_net_free(net);
}

static void test_peaks(void **state) {
  (void)state;
  if (!have_dnnl())
    skip();
  dnn_meas_peaks pk;
  dnn_error e;
  assert_ok(dnn_meas_cpu_peaks(true, 1, &pk, &e), &e);
  assert_true(pk.flops[DNN_DTYPE_FP32] > 1e8);
  assert_true(pk.mem_bandwidth_Bps > 1e8);
  assert_true(pk.launch_overhead_s > 0 && pk.launch_overhead_s < 1e-2);
  assert_true(pk.mem_capacity_bytes > 1e8);
  assert_contains(pk.library, "oneDNN");
  assert_contains(pk.device, "1 of");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cnn_verified),
      cmocka_unit_test(test_rnn_verified),
      cmocka_unit_test(test_wrong_reference_fails),
      cmocka_unit_test(test_params_and_dtype),
      cmocka_unit_test(test_peaks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
