/* Tests of model/net.c: shape inference and parameters of every layer
 * kind, consumers and needs_input_grad, every dnn_net_add error path (with
 * the network left unchanged), allocation-failure injection, lookups and
 * signatures. */
#include "test_fixtures.h"

#include "dnnsim/model.h"

/* ---- Helpers ------------------------------------------------------------- */

static dnn_net *new_net(void) {
  return test_net_new("test-net");
}

static dnn_layer_spec input_spec(const char *name, size_t rank, size_t d0,
                                 size_t d1, size_t d2, bool tokens) {
  dnn_layer_spec sp = test_spec1(DNN_LAYER_INPUT, name, NULL);
  sp.input_shape = (dnn_shape){.rank = rank, .dim = {d0, d1, d2}};
  sp.input_shape.tokens = tokens;
  return sp;
}

static const dnn_layer *add_ok(dnn_net *net, const dnn_layer_spec *sp) {
  dnn_error e;
  size_t idx = 999;
  assert_ok(dnn_net_add(net, sp, &idx, &e), &e);
  assert_int_equal(idx, dnn_net_layer_count(net) - 1);
  return dnn_net_layer(net, idx);
}

static void assert_shape(const dnn_shape *s, size_t rank, size_t d0, size_t d1,
                         size_t d2) {
  assert_int_equal(s->rank, rank);
  assert_int_equal(s->dim[0], d0);
  if (rank > 1)
    assert_int_equal(s->dim[1], d1);
  if (rank > 2)
    assert_int_equal(s->dim[2], d2);
}

/* Expects dnn_net_add to fail with `code`, a message containing both
 * `a` and `b`, and the network unchanged. */
static void add_fails(dnn_net *net, const dnn_layer_spec *sp, dnn_status code,
                      const char *a, const char *b) {
  dnn_error e;
  dnn_error_clear(&e);
  size_t before = dnn_net_layer_count(net);
  size_t idx = 12345;
  assert_int_equal(dnn_net_add(net, sp, &idx, &e), code);
  assert_int_equal(e.code, code);
  assert_contains(e.msg, a);
  assert_contains(e.msg, b);
  assert_int_equal(idx, 12345);
  assert_int_equal(dnn_net_layer_count(net), before);
  size_t j;
  if (sp->name && sp->name[0] && before > 0 &&
      dnn_net_find(net, sp->name, &j) == DNN_OK)
    assert_true(j < before); /* only an older layer of that name */
}

/* ---- Shapes and parameters ------------------------------------------------
 */

static void test_conv_shapes(void **state) {
  (void)state;
  dnn_net *net = new_net();
  dnn_layer_spec sp = input_spec("data", 3, 8, 20, 17, false);
  const dnn_layer *l = add_ok(net, &sp);
  assert_shape(&l->out, 3, 8, 20, 17);
  assert_int_equal(l->params, 0);

  /* k 3x5, stride 2x1, pad 1x2, dilation 2x1, groups 2:
   * effective kernel 5x5; H' = (20+2-5)/2+1 = 9, W' = (17+4-5)/1+1 = 17;
   * params 6 * (8/2) * 15 + 6 = 366. */
  sp = test_spec1(DNN_LAYER_CONV2D, "conv", "data");
  sp.p.conv = (dnn_conv_params){.out_channels = 6,
                                .kernel_h = 3,
                                .kernel_w = 5,
                                .stride_h = 2,
                                .stride_w = 1,
                                .pad_h = 1,
                                .pad_w = 2,
                                .dilation_h = 2,
                                .dilation_w = 1,
                                .groups = 2,
                                .bias = true};
  l = add_ok(net, &sp);
  assert_shape(&l->in, 3, 8, 20, 17);
  assert_shape(&l->out, 3, 6, 9, 17);
  assert_int_equal(l->params, 366);
  assert_int_equal(l->n_inputs, 1);
  assert_int_equal(l->inputs[0], 0);
  assert_false(l->needs_input_grad); /* nothing before it has params */
  assert_string_equal(l->name, "conv");

  /* No bias, exactly fitting kernel: out 1x1. */
  sp = test_spec1(DNN_LAYER_CONV2D, "whole", "data");
  sp.p.conv.out_channels = 7;
  sp.p.conv.kernel_h = 20;
  sp.p.conv.kernel_w = 17;
  sp.p.conv.bias = false;
  l = add_ok(net, &sp);
  assert_shape(&l->out, 3, 7, 1, 1);
  assert_int_equal(l->params, 7 * 8 * 20 * 17);
  assert_int_equal(dnn_net_layer(net, 0)->consumers, 2);
  dnn_net_free(net);
}

static void test_pool_shapes(void **state) {
  (void)state;
  dnn_net *net = new_net();
  dnn_layer_spec sp = input_spec("data", 3, 2, 14, 5, false);
  add_ok(net, &sp);
  /* kernel 3, stride 2 on 14: floor 6, ceil 7; on 5 with pad 1: both 3
   * (the ceil-mode window that would start in the right padding is
   * dropped). */
  sp = test_spec1(DNN_LAYER_MAXPOOL, "floor", "data");
  sp.p.pool.kernel_h = 3;
  sp.p.pool.kernel_w = 2;
  sp.p.pool.stride_h = sp.p.pool.stride_w = 2;
  sp.p.pool.pad_w = 1;
  const dnn_layer *l = add_ok(net, &sp);
  assert_shape(&l->out, 3, 2, 6, 3);
  sp.name = "ceil";
  sp.p.pool.ceil_mode = true;
  l = add_ok(net, &sp);
  assert_shape(&l->out, 3, 2, 7, 3);
  assert_int_equal(l->params, 0);
  /* stride 0 = kernel (PyTorch's default). */
  sp = test_spec1(DNN_LAYER_AVGPOOL, "avg", "data");
  sp.p.pool.kernel_h = sp.p.pool.kernel_w = 2;
  l = add_ok(net, &sp);
  assert_shape(&l->out, 3, 2, 7, 2);
  assert_int_equal(l->p.pool.stride_h, 2);
  /* Adaptive: fixed output, also larger than the input. */
  sp = test_spec1(DNN_LAYER_ADAPTIVE_AVGPOOL, "adapt", "data");
  sp.p.pool.out_h = 3;
  sp.p.pool.out_w = 6;
  l = add_ok(net, &sp);
  assert_shape(&l->out, 3, 2, 3, 6);
  sp = test_spec1(DNN_LAYER_GLOBAL_AVGPOOL, "gap", "data");
  l = add_ok(net, &sp);
  assert_shape(&l->out, 1, 2, 0, 0);
  dnn_net_free(net);
}

static void test_vector_and_sequence_shapes(void **state) {
  (void)state;
  dnn_net *net = new_net();
  dnn_layer_spec sp = input_spec("img", 3, 3, 4, 5, false);
  add_ok(net, &sp);
  sp = test_spec1(DNN_LAYER_FC, "fc_img", "img"); /* flattens 60 */
  sp.p.fc.out_features = 7;
  const dnn_layer *l = add_ok(net, &sp);
  assert_shape(&l->out, 1, 7, 0, 0);
  assert_int_equal(l->params, 60 * 7 + 7);
  sp = test_spec1(DNN_LAYER_FLATTEN, "flat", "img");
  assert_shape(&add_ok(net, &sp)->out, 1, 60, 0, 0);
  sp = test_spec1(DNN_LAYER_BATCHNORM, "bn_img", "img");
  l = add_ok(net, &sp);
  assert_shape(&l->out, 3, 3, 4, 5);
  assert_int_equal(l->params, 6);
  sp = test_spec1(DNN_LAYER_LAYERNORM, "ln_img", "img"); /* last dim */
  assert_int_equal(add_ok(net, &sp)->params, 10);

  sp = input_spec("seq", 2, 9, 11, 0, false);
  add_ok(net, &sp);
  sp = test_spec1(DNN_LAYER_FC, "fc_seq", "seq"); /* per position */
  sp.p.fc.out_features = 4;
  sp.p.fc.bias = false;
  l = add_ok(net, &sp);
  assert_shape(&l->out, 2, 9, 4, 0);
  assert_int_equal(l->params, 44);
  sp = test_spec1(DNN_LAYER_BATCHNORM, "bn_seq", "seq");
  assert_int_equal(add_ok(net, &sp)->params, 22);
  sp = test_spec1(DNN_LAYER_SOFTMAX, "sm", "seq");
  assert_shape(&add_ok(net, &sp)->out, 2, 9, 11, 0);
  sp = test_spec1(DNN_LAYER_SOFTMAX_XENT, "loss", "seq");
  assert_shape(&add_ok(net, &sp)->out, 1, 1, 0, 0);
  sp = test_spec1(DNN_LAYER_DROPOUT, "drop", "seq");
  sp.p.dropout.p = 0.125;
  l = add_ok(net, &sp);
  assert_shape(&l->out, 2, 9, 11, 0);
  assert_true(l->p.dropout.p == 0.125);
  sp = test_spec1(DNN_LAYER_ACTIVATION, "tanh", "seq");
  sp.p.act.act = DNN_ACT_TANH;
  assert_int_equal(add_ok(net, &sp)->p.act.act, DNN_ACT_TANH);

  /* Tokens -> embedding -> lstm (NCC's trunk, REFERENCE §6.3). */
  sp = input_spec("tok", 1, 12, 0, 0, true);
  l = add_ok(net, &sp);
  assert_true(l->out.tokens);
  sp = test_spec1(DNN_LAYER_EMBEDDING, "emb", "tok");
  sp.p.embedding = (dnn_embedding_params){.vocab = 8565, .dim = 200};
  l = add_ok(net, &sp);
  assert_shape(&l->out, 2, 12, 200, 0);
  assert_false(l->out.tokens);
  assert_int_equal(l->params, 8565 * 200);
  sp = test_spec1(DNN_LAYER_LSTM, "lstm1", "emb");
  sp.p.lstm = (dnn_lstm_params){.hidden = 200, .return_sequences = true};
  l = add_ok(net, &sp);
  assert_shape(&l->out, 2, 12, 200, 0);
  assert_int_equal(l->params, 320800); /* 4 (200 (200+200) + 200) */
  assert_true(l->needs_input_grad);
  sp = test_spec1(DNN_LAYER_LSTM, "lstm2", "lstm1");
  sp.p.lstm.hidden = 37;
  l = add_ok(net, &sp);
  assert_shape(&l->out, 1, 37, 0, 0);
  assert_int_equal(l->params, 4 * (37 * (200 + 37) + 37));
  sp = test_spec1(DNN_LAYER_FLATTEN, "tokflat", "tok");
  l = add_ok(net, &sp);
  assert_true(l->out.tokens);
  dnn_net_free(net);
}

static void test_add_and_concat(void **state) {
  (void)state;
  dnn_net *net = new_net();
  dnn_layer_spec sp = input_spec("a", 3, 3, 8, 8, false);
  add_ok(net, &sp);
  sp = input_spec("b", 3, 5, 8, 8, false);
  add_ok(net, &sp);
  sp = test_spec1(DNN_LAYER_CONCAT, "cat", "a");
  sp.inputs[1] = "b";
  sp.inputs[2] = "a";
  sp.n_inputs = 3;
  const dnn_layer *l = add_ok(net, &sp);
  assert_shape(&l->out, 3, 11, 8, 8);
  assert_shape(&l->in, 3, 3, 8, 8);
  assert_int_equal(l->inputs[1], 1);
  assert_int_equal(dnn_net_layer(net, 0)->consumers, 2);
  sp = test_spec1(DNN_LAYER_ADD, "sum", "cat");
  sp.inputs[1] = "cat";
  sp.n_inputs = 2;
  l = add_ok(net, &sp);
  assert_shape(&l->out, 3, 11, 8, 8);
  assert_int_equal(dnn_net_layer(net, 2)->consumers, 2);
  /* Sequences concatenated in time. */
  sp = input_spec("s1", 2, 4, 6, 0, false);
  add_ok(net, &sp);
  sp = input_spec("s2", 2, 9, 6, 0, false);
  add_ok(net, &sp);
  sp = test_spec1(DNN_LAYER_CONCAT, "tcat", "s1");
  sp.inputs[1] = "s2";
  sp.n_inputs = 2;
  sp.p.concat.axis = 0;
  assert_shape(&add_ok(net, &sp)->out, 2, 13, 6, 0);
  dnn_net_free(net);
}

/* consumers and needs_input_grad: true downstream of any parameters. */
static void test_grad_flags(void **state) {
  (void)state;
  dnn_net *net = new_net();
  dnn_layer_spec sp = input_spec("data", 3, 3, 16, 16, false);
  add_ok(net, &sp);
  sp = test_spec1(DNN_LAYER_MAXPOOL, "pool0", "data");
  assert_false(add_ok(net, &sp)->needs_input_grad);
  sp = test_spec1(DNN_LAYER_CONV2D, "conv1", "pool0");
  sp.p.conv.out_channels = 4;
  assert_false(add_ok(net, &sp)->needs_input_grad);
  sp = test_spec1(DNN_LAYER_ACTIVATION, "relu", "conv1");
  assert_true(add_ok(net, &sp)->needs_input_grad);
  sp = test_spec1(DNN_LAYER_AVGPOOL, "side", "pool0");
  assert_false(add_ok(net, &sp)->needs_input_grad);
  sp = test_spec1(DNN_LAYER_ADD, "sum", "relu");
  sp.inputs[1] = "relu";
  sp.n_inputs = 2;
  assert_true(add_ok(net, &sp)->needs_input_grad);
  assert_int_equal(dnn_net_layer(net, 1)->consumers, 2);
  assert_int_equal(dnn_net_layer(net, 3)->consumers, 2);
  assert_int_equal(dnn_net_layer(net, 5)->consumers, 0);
  size_t idx;
  assert_ok(dnn_net_find(net, "side", &idx), NULL);
  assert_int_equal(idx, 4);
  assert_int_equal(dnn_net_find(net, "nope", &idx), DNN_ENOTFOUND);
  assert_string_equal(dnn_net_name(net), "test-net");
  dnn_net_free(net);
}

/* ---- Error paths ----------------------------------------------------------
 */

static void test_errors_structure(void **state) {
  (void)state;
  dnn_net *net = new_net();
  dnn_layer_spec sp = input_spec("data", 3, 3, 10, 10, false);
  add_ok(net, &sp);
  sp = input_spec("tokens", 1, 12, 0, 0, true);
  add_ok(net, &sp);
  sp = input_spec("seq", 2, 12, 8, 0, false);
  add_ok(net, &sp);
  sp = input_spec("vec", 1, 30, 0, 0, false);
  add_ok(net, &sp);

  sp = input_spec("data", 3, 3, 10, 10, false);
  add_fails(net, &sp, DNN_EINVAL, "layer 'data' (input)", "duplicate name");
  sp = test_spec1(DNN_LAYER_ACTIVATION, "", "data");
  add_fails(net, &sp, DNN_EINVAL, "needs a name", "activation");
  sp = test_spec1(DNN_LAYER_ACTIVATION, "r", "dta");
  add_fails(net, &sp, DNN_EINVAL, "layer 'r' (activation): unknown input 'dta'",
            "did you mean 'data'?");
  sp = test_spec1(DNN_LAYER_ACTIVATION, "r", "zzzzzzzz");
  add_fails(net, &sp, DNN_EINVAL, "unknown input 'zzzzzzzz'", "");
  sp = test_spec1(DNN_LAYER_CONV2D, "c", "data");
  sp.p.conv.out_channels = 4;
  sp.inputs[1] = "data";
  sp.n_inputs = 2;
  add_fails(net, &sp, DNN_EINVAL, "layer 'c' (conv2d)", "takes 1 input, got 2");
  sp = test_spec1(DNN_LAYER_ADD, "s", "data");
  add_fails(net, &sp, DNN_EINVAL, "layer 's' (add)", "takes 2 to 8 inputs");
  sp = test_spec1(DNN_LAYER_CONCAT, "s", NULL);
  add_fails(net, &sp, DNN_EINVAL, "(concat)", "got 0");
  sp = input_spec("in2", 1, 4, 0, 0, false);
  sp.inputs[0] = "data";
  sp.n_inputs = 1;
  add_fails(net, &sp, DNN_EINVAL, "layer 'in2' (input)", "takes 0 inputs");
  sp = input_spec("in3", 0, 0, 0, 0, false);
  add_fails(net, &sp, DNN_EINVAL, "'in3'", "1 to 3 dimensions, got 0");
  sp = input_spec("in3", 3, 3, 0, 4, false);
  add_fails(net, &sp, DNN_EINVAL, "'in3'", "dimension 1 is 0");
  sp = input_spec("in3", 2, 3, 4, 0, true);
  add_fails(net, &sp, DNN_EINVAL, "'in3'", "token ids must be rank 1");
  sp = test_spec1((dnn_layer_kind)99, "k", "data");
  add_fails(net, &sp, DNN_EINVAL, "'k'", "unknown layer kind 99");

  /* add / concat mismatches. */
  sp = test_spec1(DNN_LAYER_CONV2D, "c4", "data");
  sp.p.conv.out_channels = 4;
  add_ok(net, &sp);
  sp = test_spec1(DNN_LAYER_ADD, "sum", "data");
  sp.inputs[1] = "c4";
  sp.n_inputs = 2;
  add_fails(net, &sp, DNN_EINVAL,
            "layer 'sum' (add): input 'c4' has shape "
            "(4, 10, 10) but 'data' has (3, 10, 10)",
            "equal shapes");
  sp.inputs[1] = "tokens";
  add_fails(net, &sp, DNN_EINVAL, "cannot act on token ids", "'tokens'");
  sp = test_spec1(DNN_LAYER_CONCAT, "cat", "data");
  sp.inputs[1] = "seq";
  sp.n_inputs = 2;
  add_fails(net, &sp, DNN_EINVAL, "layer 'cat' (concat): input 'seq'",
            "other dimensions equal");
  sp.inputs[1] = "c4";
  sp.p.concat.axis = 1;
  add_fails(net, &sp, DNN_EINVAL, "(4, 10, 10)", "along axis 1");
  sp.p.concat.axis = 3;
  add_fails(net, &sp, DNN_EINVAL, "'cat'", "axis 3 out of range for rank-3");
  dnn_net_free(net);
}

static void test_errors_hyper_parameters(void **state) {
  (void)state;
  dnn_net *net = new_net();
  dnn_layer_spec sp = input_spec("data", 3, 6, 10, 10, false);
  add_ok(net, &sp);
  sp = input_spec("tokens", 1, 12, 0, 0, true);
  add_ok(net, &sp);
  sp = input_spec("vec", 1, 30, 0, 0, false);
  add_ok(net, &sp);

  dnn_layer_spec c = test_spec1(DNN_LAYER_CONV2D, "conv", "data");
  c.p.conv.out_channels = 8;
  sp = c;
  sp.p.conv.groups = 4;
  add_fails(net, &sp, DNN_EINVAL,
            "layer 'conv' (conv2d): groups 4 must "
            "divide input channels 6 and output "
            "channels 8",
            "");
  sp = c;
  sp.p.conv.groups = 0;
  add_fails(net, &sp, DNN_EINVAL, "'conv'", "groups must be >= 1");
  sp = c;
  sp.p.conv.kernel_h = 11;
  sp.p.conv.kernel_w = 11;
  sp.p.conv.pad_h = sp.p.conv.pad_w = 0;
  add_fails(net, &sp, DNN_EINVAL,
            "kernel 11x11 (dilated 11x11) is larger "
            "than the padded input 10x10",
            "'conv'");
  sp = c;
  sp.p.conv.kernel_h = sp.p.conv.kernel_w = 3;
  sp.p.conv.dilation_h = 5;
  add_fails(net, &sp, DNN_EINVAL, "(dilated 11x3)", "padded input 10x10");
  sp = c;
  sp.p.conv.out_channels = 0;
  add_fails(net, &sp, DNN_EINVAL, "'conv'", "out_channels must be >= 1");
  sp = c;
  sp.p.conv.stride_w = 0;
  add_fails(net, &sp, DNN_EINVAL, "'conv'", "stride must be >= 1, got 1x0");
  sp = c;
  sp.p.conv.kernel_h = 0;
  add_fails(net, &sp, DNN_EINVAL, "'conv'", "kernel must be >= 1");
  sp = c;
  sp.p.conv.dilation_w = 0;
  add_fails(net, &sp, DNN_EINVAL, "'conv'", "dilation must be >= 1");
  sp = c;
  sp.inputs[0] = "vec";
  add_fails(net, &sp, DNN_EINVAL,
            "needs an image (C, H, W) input, got (30) "
            "from 'vec'",
            "'conv'");
  sp = c;
  sp.inputs[0] = "tokens";
  add_fails(net, &sp, DNN_EINVAL, "got (12 tokens) from 'tokens'", "");

  sp = test_spec1(DNN_LAYER_MAXPOOL, "pool", "data");
  sp.p.pool.kernel_h = sp.p.pool.kernel_w = 3;
  sp.p.pool.pad_h = 2;
  add_fails(net, &sp, DNN_EINVAL,
            "layer 'pool' (maxpool): padding 2x0 must "
            "be at most half the kernel 3x3",
            "");
  sp.p.pool.pad_h = 0;
  sp.p.pool.kernel_w = 11;
  add_fails(net, &sp, DNN_EINVAL,
            "kernel 3x11 is larger than the padded "
            "input 10x10",
            "");
  sp.p.pool.kernel_w = 0;
  add_fails(net, &sp, DNN_EINVAL, "kernel must be >= 1", "");
  sp = test_spec1(DNN_LAYER_ADAPTIVE_AVGPOOL, "ap", "data");
  sp.p.pool.out_w = 0;
  add_fails(net, &sp, DNN_EINVAL, "'ap'", "output size must be >= 1");
  sp = test_spec1(DNN_LAYER_GLOBAL_AVGPOOL, "gp", "vec");
  add_fails(net, &sp, DNN_EINVAL, "'gp'", "needs an image");

  sp = test_spec1(DNN_LAYER_FC, "fc", "tokens");
  sp.p.fc.out_features = 3;
  add_fails(net, &sp, DNN_EINVAL,
            "layer 'fc' (fc): cannot act on token ids "
            "(12 tokens) from 'tokens'",
            "embedding");
  sp.inputs[0] = "vec";
  sp.p.fc.out_features = 0;
  add_fails(net, &sp, DNN_EINVAL, "'fc'", "out_features must be >= 1");
  sp = test_spec1(DNN_LAYER_BATCHNORM, "bn", "tokens");
  add_fails(net, &sp, DNN_EINVAL, "(batchnorm)", "token ids");
  sp = test_spec1(DNN_LAYER_DROPOUT, "drop", "vec");
  sp.p.dropout.p = 1.0;
  add_fails(net, &sp, DNN_EINVAL, "'drop'", "p = 1 must be in [0, 1)");
  sp.p.dropout.p = -0.25;
  add_fails(net, &sp, DNN_EINVAL, "'drop'", "p = -0.25");
  sp = test_spec1(DNN_LAYER_ACTIVATION, "act", "vec");
  sp.p.act.act = (dnn_act)42;
  add_fails(net, &sp, DNN_EINVAL, "'act'", "unknown activation 42");
  sp = test_spec1(DNN_LAYER_EMBEDDING, "emb", "vec");
  sp.p.embedding = (dnn_embedding_params){.vocab = 10, .dim = 4};
  add_fails(net, &sp, DNN_EINVAL, "layer 'emb' (embedding): needs token ids",
            "got (30) from 'vec'");
  sp.inputs[0] = "tokens";
  sp.p.embedding.vocab = 0;
  add_fails(net, &sp, DNN_EINVAL, "'emb'", "vocab (0) and dim (4)");
  sp = test_spec1(DNN_LAYER_LSTM, "lstm", "vec");
  sp.p.lstm.hidden = 5;
  add_fails(net, &sp, DNN_EINVAL,
            "layer 'lstm' (lstm): needs a sequence "
            "(T, F)",
            "got (30)");
  sp = test_spec1(DNN_LAYER_EMBEDDING, "e2", "tokens");
  sp.p.embedding = (dnn_embedding_params){.vocab = 10, .dim = 4};
  add_ok(net, &sp);
  sp = test_spec1(DNN_LAYER_LSTM, "lstm", "e2");
  add_fails(net, &sp, DNN_EINVAL, "'lstm'", "hidden must be >= 1");
  sp = test_spec1(DNN_LAYER_CONV2D, "huge", "data");
  sp.p.conv.out_channels = (size_t)1 << 60;
  sp.p.conv.kernel_h = sp.p.conv.kernel_w = 10;
  sp.p.conv.groups = 1;
  add_fails(net, &sp, DNN_EINVAL, "'huge'", "too many parameters");
  /* The network still works after all those failures. */
  sp = test_spec1(DNN_LAYER_FC, "fc", "vec");
  sp.p.fc.out_features = 3;
  assert_int_equal(add_ok(net, &sp)->params, 93);
  assert_int_equal(dnn_net_layer(net, 2)->consumers, 1);
  dnn_net_free(net);
}

/* ---- Allocation failures --------------------------------------------------
 */

/* Builds a small network; returns the first failing status. */
static dnn_status build_small(dnn_net **out, dnn_error *e) {
  *out = NULL;
  dnn_net *net = NULL;
  dnn_status st = dnn_net_alloc("small", &net, e);
  if (st)
    return st;
  char names[200][16];
  dnn_layer_spec sp = input_spec("data", 3, 3, 9, 9, false);
  st = dnn_net_add(net, &sp, NULL, e);
  /* Enough layers to grow the index and the hash table twice. */
  for (size_t i = 0; i < 200 && st == DNN_OK; i++) {
    snprintf(names[i], sizeof names[i], "relu%zu", i);
    sp = test_spec1(DNN_LAYER_ACTIVATION, names[i], i ? names[i - 1] : "data");
    st = dnn_net_add(net, &sp, NULL, e);
  }
  if (st) {
    dnn_net_free(net);
    return st;
  }
  *out = net;
  return DNN_OK;
}

static void test_alloc_failures(void **state) {
  (void)state;
  test_alloc_state s;
  long fail_at = 0;
  for (;; fail_at++) {
    dnn_net *net = NULL;
    dnn_error e;
    dnn_error_clear(&e);
    test_alloc_install(&s, fail_at);
    dnn_status st = build_small(&net, &e);
    test_alloc_restore();
    if (st == DNN_OK) {
      assert_int_equal(dnn_net_layer_count(net), 201);
      dnn_net_free(net);
      break;
    }
    assert_int_equal(st, DNN_ENOMEM);
    assert_contains(e.msg, "out of memory");
    assert_null(net);
    assert_true(fail_at < 1000);
  }
  assert_true(fail_at >= 3); /* struct, name, and at least one more */

  /* A failed add leaves the network as it was and usable. */
  dnn_net *net = new_net();
  dnn_layer_spec sp = input_spec("data", 1, 5, 0, 0, false);
  add_ok(net, &sp);
  dnn_error e;
  size_t before = dnn_net_layer_count(net);
  char names[300][16];
  for (size_t i = 0; i < 300; i++) {
    snprintf(names[i], sizeof names[i], "layer-%zu", i);
    sp = test_spec1(DNN_LAYER_ACTIVATION, names[i], "data");
    test_alloc_install(&s, 0);
    dnn_status st = dnn_net_add(net, &sp, NULL, &e);
    test_alloc_restore();
    if (st != DNN_OK) {
      assert_int_equal(st, DNN_ENOMEM);
      assert_contains(e.msg, "layer 'layer-");
      assert_int_equal(dnn_net_layer_count(net), before);
      size_t j;
      assert_int_equal(dnn_net_find(net, names[i], &j), DNN_ENOTFOUND);
      assert_int_equal(dnn_net_layer(net, 0)->consumers, before - 1);
      add_ok(net, &sp); /* with memory it works */
    }
    before = dnn_net_layer_count(net);
  }
  assert_int_equal(dnn_net_layer_count(net), 301);
  dnn_net_free(net);
  dnn_net_free(NULL);

  test_alloc_install(&s, 0);
  dnn_net *none = NULL;
  assert_int_equal(dnn_net_alloc("x", &none, &e), DNN_ENOMEM);
  test_alloc_restore();
  assert_null(none);
  assert_contains(e.msg, "network 'x': out of memory");
}

/* ---- Lookups and signatures -----------------------------------------------
 */

static void build_sig_net(dnn_net *net, const char *prefix, size_t stride) {
  char a[32], b[32], c[32];
  snprintf(a, sizeof a, "%s-in", prefix);
  snprintf(b, sizeof b, "%s-conv", prefix);
  snprintf(c, sizeof c, "%s-pool", prefix);
  dnn_layer_spec sp = input_spec(a, 3, 3, 13, 13, false);
  add_ok(net, &sp);
  sp = test_spec1(DNN_LAYER_CONV2D, b, a);
  sp.p.conv.out_channels = 5;
  sp.p.conv.kernel_h = sp.p.conv.kernel_w = 3;
  sp.p.conv.pad_h = sp.p.conv.pad_w = 1;
  sp.p.conv.stride_h = sp.p.conv.stride_w = stride;
  add_ok(net, &sp);
  sp = test_spec1(DNN_LAYER_MAXPOOL, c, b);
  sp.p.pool.ceil_mode = true;
  add_ok(net, &sp);
}

static void test_signatures(void **state) {
  (void)state;
  dnn_net *n1 = new_net(), *n2 = new_net(), *n3 = new_net();
  build_sig_net(n1, "x", 2);
  build_sig_net(n2, "other-names", 2);
  build_sig_net(n3, "x", 1);
  char s1[128], s2[128], s3[128];
  for (size_t i = 0; i < 3; i++) {
    dnn_layer_signature(n1, i, s1, sizeof s1);
    dnn_layer_signature(n2, i, s2, sizeof s2);
    assert_string_equal(s1, s2);
  }
  dnn_layer_signature(n1, 1, s1, sizeof s1);
  assert_string_equal(s1, "conv2d:3x13x13:o5:k3x3:s2x2:p1x1:d1x1:g1:b1");
  dnn_layer_signature(n3, 1, s3, sizeof s3);
  assert_string_not_equal(s1, s3);
  dnn_layer_signature(n1, 2, s1, sizeof s1);
  assert_string_equal(s1, "maxpool:5x7x7:k2x2:s2x2:p0x0:c1");
  dnn_layer_signature(n1, 0, s1, sizeof s1);
  assert_string_equal(s1, "input:3x13x13");
  /* Truncation keeps the string terminated. */
  char small[8];
  dnn_layer_signature(n1, 1, small, sizeof small);
  assert_string_equal(small, "conv2d:");
  dnn_layer_signature(n1, 1, small, 0); /* writes nothing */

  /* Signatures of the other kinds carry their hyper-parameters. */
  dnn_net *n = new_net();
  dnn_layer_spec sp = input_spec("tok", 1, 7, 0, 0, true);
  add_ok(n, &sp);
  sp = test_spec1(DNN_LAYER_EMBEDDING, "emb", "tok");
  sp.p.embedding = (dnn_embedding_params){.vocab = 50, .dim = 6};
  add_ok(n, &sp);
  sp = test_spec1(DNN_LAYER_LSTM, "lstm", "emb");
  sp.p.lstm = (dnn_lstm_params){.hidden = 9, .return_sequences = true};
  add_ok(n, &sp);
  sp = test_spec1(DNN_LAYER_DROPOUT, "drop", "lstm");
  sp.p.dropout.p = 0.375;
  add_ok(n, &sp);
  sp = test_spec1(DNN_LAYER_CONCAT, "cat", "lstm");
  sp.inputs[1] = "emb";
  sp.n_inputs = 2;
  sp.p.concat.axis = 1;
  add_ok(n, &sp);
  sp = test_spec1(DNN_LAYER_ACTIVATION, "gelu", "cat");
  sp.p.act.act = DNN_ACT_GELU;
  add_ok(n, &sp);
  const char *want[] = {"input:t7",          "embedding:t7:v50:e6",
                        "lstm:7x6:h9:r1",    "dropout:7x9:p0.375",
                        "concat:7x9+7x6:a1", "activation:7x15:gelu"};
  for (size_t i = 0; i < 6; i++) {
    dnn_layer_signature(n, i, s1, sizeof s1);
    assert_string_equal(s1, want[i]);
  }
  dnn_net_free(n);
  dnn_net_free(n1);
  dnn_net_free(n2);
  dnn_net_free(n3);
}

static void test_shape_elems(void **state) {
  (void)state;
  dnn_shape s = {.rank = 3, .dim = {3, 5, 7}};
  assert_int_equal(dnn_shape_elems(&s), 105);
  s.rank = 2;
  assert_int_equal(dnn_shape_elems(&s), 15);
  s.rank = 0;
  assert_int_equal(dnn_shape_elems(&s), 0);
  dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_CONV2D);
  assert_int_equal(sp.p.conv.stride_h, 1);
  assert_int_equal(sp.p.conv.groups, 1);
  assert_true(sp.p.conv.bias);
  sp = dnn_layer_default_spec(DNN_LAYER_DROPOUT);
  assert_true(sp.p.dropout.p == 0.5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_conv_shapes),
      cmocka_unit_test(test_pool_shapes),
      cmocka_unit_test(test_vector_and_sequence_shapes),
      cmocka_unit_test(test_add_and_concat),
      cmocka_unit_test(test_grad_flags),
      cmocka_unit_test(test_errors_structure),
      cmocka_unit_test(test_errors_hyper_parameters),
      cmocka_unit_test(test_alloc_failures),
      cmocka_unit_test(test_signatures),
      cmocka_unit_test(test_shape_elems),
  };
  return cmocka_run_group_tests_name("model/net", tests, NULL, NULL);
}
