/* Tests of model/cost.c: hand-computed FLOPs, work, depth and bytes of
 * each layer kind and pass (docs/models.md §1), passes a layer does not
 * have, gradient accumulation at fan-out points, activation memory of a
 * small conv-bn-relu-pool-dropout-fc net by hand (§3) and totals. */
#include "test_fixtures.h"

#include "dnnsim/model.h"

#define REL 1e-12

static dnn_net *new_net(void) {
  return test_net_new("cost");
}

static size_t add_input(dnn_net *net, const char *name, size_t rank, size_t d0,
                        size_t d1, size_t d2, bool tokens) {
  dnn_layer_spec sp = test_spec1(DNN_LAYER_INPUT, name, NULL);
  sp.input_shape = (dnn_shape){.rank = rank, .dim = {d0, d1, d2}};
  sp.input_shape.tokens = tokens;
  return test_net_add(net, sp);
}

#define expect_zero(net, i, pass)                                              \
  expect_cost(net, i, pass, 7, DNN_DTYPE_FP32, 0, 0, 0, 0, 0)

/*
 * The brief's small convolution: C_in 3, 13x13, 5 output channels, 3x3,
 * pad 1, stride 2, bias, batch 7, fp32, after a batch norm (so bwd_data
 * runs). P = Q = (13 + 2 - 3) / 2 + 1 = 7.
 *   MACs = 7 * 5 * 3 * 9 * 49 = 46305; bias adds Y = 7 * 5 * 49 = 1715
 *   X = 7 * 3 * 169 = 3549; filter weights 135, bias 5
 *   fwd:  flops 2*46305 + 1715 = 94325, work 48020,
 *         depth 1 + ceil(log2 27) + 1 = 7,
 *         read (3549 + 135 + 5) * 4 = 14756, write 1715 * 4 = 6860
 *   data: flops 92610, work 46305, depth 1 + ceil(log2 45) = 7,
 *         read (1715 + 135) * 4 = 7400, write 3549 * 4 = 14196
 *   wgt:  flops 94325, work 48020, depth 1 + ceil(log2(7*49)) = 10,
 *         read (3549 + 1715) * 4 = 21056, write 140 * 4 = 560
 */
static void test_conv_by_hand(void **state) {
  (void)state;
  dnn_net *net = new_net();
  size_t in = add_input(net, "data", 3, 3, 13, 13, false);
  size_t bn = test_net_add(net, test_spec1(DNN_LAYER_BATCHNORM, "bn0", "data"));
  dnn_layer_spec sp = test_spec1(DNN_LAYER_CONV2D, "conv", "bn0");
  sp.p.conv.out_channels = 5;
  sp.p.conv.kernel_h = sp.p.conv.kernel_w = 3;
  sp.p.conv.pad_h = sp.p.conv.pad_w = 1;
  sp.p.conv.stride_h = sp.p.conv.stride_w = 2;
  size_t cv = test_net_add(net, sp);
  assert_int_equal(dnn_net_layer(net, cv)->params, 140);
  expect_cost(net, cv, DNN_PASS_FWD, 7, DNN_DTYPE_FP32, 94325, 48020, 7, 14756,
              6860);
  expect_cost(net, cv, DNN_PASS_BWD_DATA, 7, DNN_DTYPE_FP32, 92610, 46305, 7,
              7400, 14196);
  expect_cost(net, cv, DNN_PASS_BWD_WEIGHTS, 7, DNN_DTYPE_FP32, 94325, 48020,
              10, 21056, 560);
  /* fp16 halves the bytes and leaves the arithmetic. */
  expect_cost(net, cv, DNN_PASS_FWD, 7, DNN_DTYPE_BF16, 94325, 48020, 7, 7378,
              3430);
  /* The input layer and the batch-norm's bwd_data (nothing before it has
   * parameters) cost nothing; nor does batch 0. */
  for (int p = 0; p < DNN_PASS_COUNT; p++)
    expect_zero(net, in, (dnn_pass)p);
  expect_zero(net, bn, DNN_PASS_BWD_DATA);
  expect_cost(net, cv, DNN_PASS_FWD, 0, DNN_DTYPE_FP32, 0, 0, 0, 0, 0);
  dnn_net_free(net);
}

/*
 * fc on a sequence after a layer norm: input (4, 6), fc 3 with bias,
 * batch 5, fp32. X = 120, Y = 60, rows 20, MACs = 60 * 6 = 360.
 *   fwd:  flops 780, work 420, depth 1 + 3 + 1 = 5,
 *         read (120 + 18 + 3) * 4 = 564, write 240
 *   data: flops 720, work 360, depth 1 + 2 = 3, read 312, write 480
 *   wgt:  flops 780, work 420, depth 1 + ceil(log2 20) = 6, read 720,
 *         write 84
 * The layer norm (F = 6, 20 rows): fwd 7 * 120 = 840 ops, depth
 * 2 * 3 + 5 = 11, read (120 + 12) * 4, write 480 + 2 * 20 * 4 stats;
 * weights 5 * 120 = 600, depth ceil(log2 20) + 3 = 8, read 960 + 160,
 * write 48.
 */
static void test_fc_and_layernorm_by_hand(void **state) {
  (void)state;
  dnn_net *net = new_net();
  add_input(net, "seq", 2, 4, 6, 0, false);
  size_t ln = test_net_add(net, test_spec1(DNN_LAYER_LAYERNORM, "ln", "seq"));
  dnn_layer_spec sp = test_spec1(DNN_LAYER_FC, "fc", "ln");
  sp.p.fc.out_features = 3;
  size_t fc = test_net_add(net, sp);
  dnn_dtype f = DNN_DTYPE_FP32;
  expect_cost(net, fc, DNN_PASS_FWD, 5, f, 780, 420, 5, 564, 240);
  expect_cost(net, fc, DNN_PASS_BWD_DATA, 5, f, 720, 360, 3, 312, 480);
  expect_cost(net, fc, DNN_PASS_BWD_WEIGHTS, 5, f, 780, 420, 6, 720, 84);
  expect_cost(net, ln, DNN_PASS_FWD, 5, f, 840, 840, 11, 528, 640);
  expect_cost(net, ln, DNN_PASS_BWD_WEIGHTS, 5, f, 600, 600, 8, 1120, 48);
  expect_zero(net, ln, DNN_PASS_BWD_DATA);
  dnn_net_free(net);
}

/*
 * Pooling, batch norm, activations and softmax loss after a batch norm,
 * batch 3, fp16 (2 bytes):
 *   maxpool k3 s2 ceil on (2, 14, 14) -> (2, 7, 7): window elements
 *   3 * 2 * (7*3) * (7*3) = 2646, depth 1 + ceil(log2 9) = 5;
 *   X = 1176, Y = 294: fwd read 2352, write 588; data read
 *   (1176 + 2*294) * 2 = 3528, write 2352.
 *   batchnorm on (2, 14, 14): 7 * 1176 = 8232 ops, reduction over
 *   3 * 196 = 588 -> depth 2 * 10 + 5 = 25; read (1176 + 4) * 2,
 *   write 2352 + 2 * 2 * 4 stats.
 */
static void test_pool_and_norm_by_hand(void **state) {
  (void)state;
  dnn_net *net = new_net();
  add_input(net, "data", 3, 2, 14, 14, false);
  size_t bn = test_net_add(net, test_spec1(DNN_LAYER_BATCHNORM, "bn", "data"));
  dnn_layer_spec sp = test_spec1(DNN_LAYER_MAXPOOL, "pool", "bn");
  sp.p.pool.kernel_h = sp.p.pool.kernel_w = 3;
  sp.p.pool.stride_h = sp.p.pool.stride_w = 2;
  sp.p.pool.ceil_mode = true;
  size_t mp = test_net_add(net, sp);
  dnn_dtype h = DNN_DTYPE_FP16;
  expect_cost(net, mp, DNN_PASS_FWD, 3, h, 2646, 2646, 5, 2352, 588);
  expect_cost(net, mp, DNN_PASS_BWD_DATA, 3, h, 2646, 2646, 5, 3528, 2352);
  expect_cost(net, mp, DNN_PASS_BWD_WEIGHTS, 3, h, 0, 0, 0, 0, 0);
  expect_cost(net, bn, DNN_PASS_FWD, 3, h, 8232, 8232, 25, 2360, 2368);
  /* bwd_weights: 5 * 1176, depth ceil(log2 588) + 3 = 13, read
   * 2 * 1176 * 2 + 16, write 4 * 2. */
  expect_cost(net, bn, DNN_PASS_BWD_WEIGHTS, 3, h, 5880, 5880, 13, 4720, 8);

  /* Adaptive average pooling 14 -> 3: windows [0,5) [4,10) [9,14), 5 + 6
   * + 5 = 16 per dimension: 3 * 2 * 16 * 16 = 1536, largest 6x6 -> depth
   * 1 + 6 = 7; backward reads dy (3 * 18 * 2) and writes dx. */
  sp = test_spec1(DNN_LAYER_ADAPTIVE_AVGPOOL, "ap", "bn");
  sp.p.pool.out_h = sp.p.pool.out_w = 3;
  size_t ap = test_net_add(net, sp);
  expect_cost(net, ap, DNN_PASS_FWD, 3, h, 1536, 1536, 7, 2352, 108);
  expect_cost(net, ap, DNN_PASS_BWD_DATA, 3, h, 1536, 1536, 7, 108, 2352);
  /* Global average pooling: 3 * 2 * 196 = 1176, depth 1 + 8 = 9. */
  size_t gp =
      test_net_add(net, test_spec1(DNN_LAYER_GLOBAL_AVGPOOL, "gp", "bn"));
  expect_cost(net, gp, DNN_PASS_FWD, 3, h, 1176, 1176, 9, 2352, 12);

  /* Vector layers on (6) after a batch norm, X = 18 elements. GELU and
   * sigmoid: per element 5 / 11 and 4 / 3 operations. */
  add_input(net, "vec", 1, 6, 0, 0, false);
  test_net_add(net, test_spec1(DNN_LAYER_BATCHNORM, "bnv", "vec"));
  sp = test_spec1(DNN_LAYER_ACTIVATION, "gelu", "bnv");
  sp.p.act.act = DNN_ACT_GELU;
  size_t ge = test_net_add(net, sp);
  expect_cost(net, ge, DNN_PASS_FWD, 3, h, 90, 90, 5, 36, 36);
  expect_cost(net, ge, DNN_PASS_BWD_DATA, 3, h, 198, 198, 11, 72, 36);
  sp.name = "sig";
  sp.p.act.act = DNN_ACT_SIGMOID;
  size_t sg = test_net_add(net, sp);
  expect_cost(net, sg, DNN_PASS_FWD, 3, h, 72, 72, 4, 36, 36);
  expect_cost(net, sg, DNN_PASS_BWD_DATA, 3, h, 54, 54, 3, 72, 36);

  /* Softmax loss over 6 classes (rows 3, X = 18): fwd 5 * 18 + 2 * 3 =
   * 96, depth 2*3 + 3 + 1 + 2 = 12, read 36 + 3 * 8 labels, write 36 + 3
   * * 2; data 36 flops, depth 2, read 36 + 24 + 6, write 36. */
  size_t xe =
      test_net_add(net, test_spec1(DNN_LAYER_SOFTMAX_XENT, "loss", "bnv"));
  expect_cost(net, xe, DNN_PASS_FWD, 3, h, 96, 96, 12, 60, 42);
  expect_cost(net, xe, DNN_PASS_BWD_DATA, 3, h, 36, 36, 2, 66, 36);
  /* Plain softmax: 5 and 4 per element. */
  size_t sm = test_net_add(net, test_spec1(DNN_LAYER_SOFTMAX, "sm", "bnv"));
  expect_cost(net, sm, DNN_PASS_FWD, 3, h, 90, 90, 9, 36, 36);
  expect_cost(net, sm, DNN_PASS_BWD_DATA, 3, h, 72, 72, 6, 72, 36);
  /* Dropout: 3 and 2 per element plus a 1-byte mask. */
  size_t dr = test_net_add(net, test_spec1(DNN_LAYER_DROPOUT, "drop", "bnv"));
  expect_cost(net, dr, DNN_PASS_FWD, 3, h, 54, 54, 3, 36, 54);
  expect_cost(net, dr, DNN_PASS_BWD_DATA, 3, h, 36, 36, 2, 54, 36);
  /* A flatten is a view. */
  size_t fl = test_net_add(net, test_spec1(DNN_LAYER_FLATTEN, "flat", "bn"));
  expect_cost(net, fl, DNN_PASS_FWD, 3, h, 0, 0, 0, 0, 0);
  dnn_net_free(net);
}

/*
 * Fan-out: bn feeds both conv c1 and the add. Backward runs from the last
 * layer, so the add (bn's last consumer) writes bn's gradient by aliasing
 * dy, and c1's bwd_data adds into it: + N*100 flops and reads.
 *   c1: 4 -> 4 channels, 3x3 pad 1 on 5x5, no bias, batch 2:
 *   MACs 2 * 4 * 4 * 9 * 25 = 7200; data flops 14400 + 200 = 14600,
 *   read (200 + 144 + 200) * 4 = 2176, write 800.
 */
static void test_fan_out_accumulation(void **state) {
  (void)state;
  dnn_net *net = new_net();
  add_input(net, "data", 3, 4, 5, 5, false);
  test_net_add(net, test_spec1(DNN_LAYER_BATCHNORM, "b", "data"));
  dnn_layer_spec sp = test_spec1(DNN_LAYER_CONV2D, "c1", "b");
  sp.p.conv.out_channels = 4;
  sp.p.conv.kernel_h = sp.p.conv.kernel_w = 3;
  sp.p.conv.pad_h = sp.p.conv.pad_w = 1;
  sp.p.conv.bias = false;
  size_t c1 = test_net_add(net, sp);
  sp = test_spec1(DNN_LAYER_ADD, "sum", "c1");
  sp.inputs[1] = "b";
  sp.n_inputs = 2;
  size_t sum = test_net_add(net, sp);
  dnn_dtype f = DNN_DTYPE_FP32;
  expect_cost(net, c1, DNN_PASS_BWD_DATA, 2, f, 14600, 7400, 1 + 6 + 1, 2176,
              800);
  expect_cost(net, sum, DNN_PASS_FWD, 2, f, 200, 200, 1, 1600, 800);
  expect_cost(net, sum, DNN_PASS_BWD_DATA, 2, f, 0, 0, 0, 0, 0);
  /* With the add first and the conv last, the add accumulates instead:
   * it reads dy and the gradient and writes the sum. */
  dnn_net *n2 = new_net();
  add_input(n2, "data", 3, 4, 5, 5, false);
  test_net_add(n2, test_spec1(DNN_LAYER_BATCHNORM, "b", "data"));
  sp = test_spec1(DNN_LAYER_ADD, "sum", "b");
  sp.inputs[1] = "b2";
  sp.n_inputs = 2;
  test_net_add(n2, test_spec1(DNN_LAYER_BATCHNORM, "b2", "b"));
  sum = test_net_add(n2, sp);
  sp = test_spec1(DNN_LAYER_CONV2D, "c1", "b");
  sp.p.conv.out_channels = 4;
  sp.p.conv.bias = false;
  size_t c = test_net_add(n2, sp);
  /* b has three consumers (b2, sum, c1); c1 is last. */
  assert_int_equal(dnn_net_layer(n2, 1)->consumers, 3);
  expect_cost(n2, sum, DNN_PASS_BWD_DATA, 2, f, 200, 200, 1, 1600, 800);
  /* c1 (1x1, MACs 2*4*4*25 = 800) is last: no accumulation. */
  expect_cost(n2, c, DNN_PASS_BWD_DATA, 2, f, 1600, 800, 1 + 2, 864, 800);
  dnn_net_free(n2);
  dnn_net_free(net);
}

/*
 * LSTM straight after the input (no bwd_data, so the backward recurrence
 * runs in bwd_weights): T 3, F 2, H 4, batch 2, fp32. G = 16, NT = 6,
 * params 4 * (4 * 6 + 4) = 112.
 *   fwd: MACs 6 * 16 * 6 = 576; flops 1152 + 96 (bias) + 18 * 24 = 1680;
 *        work 1104; depth 3 * (ceil(log2 6) + 10) = 39;
 *        read (12 + 112) * 4 = 496; write (8 + 5 * 24) * 4 = 512
 *   wgt: MACs 576 + recurrence 6 * 16 * 4 = 384; flops 1152 + 96 + 768 +
 *        22 * 24 = 2544; work 1584; depth 1 + 3 + 3 * (4 + 9) = 43;
 *        read (12 + 24 + 96) * 4 + (8 + 120) * 4 = 1040; write 448
 */
static void test_lstm_and_embedding_by_hand(void **state) {
  (void)state;
  dnn_net *net = new_net();
  add_input(net, "seq", 2, 3, 2, 0, false);
  dnn_layer_spec sp = test_spec1(DNN_LAYER_LSTM, "lstm", "seq");
  sp.p.lstm.hidden = 4;
  size_t ls = test_net_add(net, sp);
  dnn_dtype f = DNN_DTYPE_FP32;
  expect_cost(net, ls, DNN_PASS_FWD, 2, f, 1680, 1104, 39, 496, 512);
  expect_zero(net, ls, DNN_PASS_BWD_DATA);
  expect_cost(net, ls, DNN_PASS_BWD_WEIGHTS, 2, f, 2544, 1584, 43, 1040, 448);

  /* Embedding: 12 tokens, vocab 100, dim 16, batch 3. Forward gathers
   * 576 elements (work 576, no FLOPs), reads 36 ids * 8 + 576 * 4; the
   * weight gradient scatter-adds 576 values (depth 1 + ceil(log2 36)) and
   * writes the dense 1600-entry table. */
  add_input(net, "tok", 1, 12, 0, 0, true);
  sp = test_spec1(DNN_LAYER_EMBEDDING, "emb", "tok");
  sp.p.embedding = (dnn_embedding_params){.vocab = 100, .dim = 16};
  size_t em = test_net_add(net, sp);
  expect_cost(net, em, DNN_PASS_FWD, 3, f, 0, 576, 1, 2592, 2304);
  expect_zero(net, em, DNN_PASS_BWD_DATA);
  expect_cost(net, em, DNN_PASS_BWD_WEIGHTS, 3, f, 576, 576, 7, 2592, 6400);
  /* An LSTM after the embedding has bwd_data: recurrence + dx. T 12,
   * F 16, H 8, batch 3: NT 36, G 32; MACs 36*32*8 + 36*32*16 = 27648;
   * flops 55296 + 22 * 36 * 8 = 61632. */
  sp = test_spec1(DNN_LAYER_LSTM, "l2", "emb");
  sp.p.lstm.hidden = 8;
  size_t l2 = test_net_add(net, sp);
  dnn_cost c;
  dnn_layer_cost(net, l2, DNN_PASS_BWD_DATA, 3, f, &c);
  assert_close(c.flops, 61632, REL);
  assert_close(c.depth, 12 * (5 + 9) + 1 + 5, REL);
  dnn_net_free(net);
}

/*
 * Activation memory of data(3,8,8) -> conv(4, 3x3, pad 1, no bias) -> bn
 * -> relu -> maxpool 2 -> dropout -> fc 10 -> loss, batch 5, fp16:
 *   data    kept: conv reads it        5 * 192 * 2 = 1920
 *   conv    kept: bn reads it          5 * 256 * 2 = 2560
 *   bn      not kept (relu reads only its own output); stats 8 * 4 = 32
 *   relu    kept: its own backward     2560
 *   pool    kept: its own backward     5 * 64 * 2 = 640
 *   dropout kept: fc reads it          640, plus its mask 5 * 64 = 320
 *   fc      not kept (the loss keeps its probabilities instead)
 *   loss    probabilities              5 * 10 * 2 = 100
 * total 8772.
 */
static void test_activation_bytes_by_hand(void **state) {
  (void)state;
  dnn_net *net = new_net();
  add_input(net, "data", 3, 3, 8, 8, false);
  dnn_layer_spec sp = test_spec1(DNN_LAYER_CONV2D, "conv", "data");
  sp.p.conv.out_channels = 4;
  sp.p.conv.kernel_h = sp.p.conv.kernel_w = 3;
  sp.p.conv.pad_h = sp.p.conv.pad_w = 1;
  sp.p.conv.bias = false;
  test_net_add(net, sp);
  test_net_add(net, test_spec1(DNN_LAYER_BATCHNORM, "bn", "conv"));
  test_net_add(net, test_spec1(DNN_LAYER_ACTIVATION, "relu", "bn"));
  test_net_add(net, test_spec1(DNN_LAYER_MAXPOOL, "pool", "relu"));
  test_net_add(net, test_spec1(DNN_LAYER_DROPOUT, "drop", "pool"));
  sp = test_spec1(DNN_LAYER_FC, "fc", "drop");
  sp.p.fc.out_features = 10;
  test_net_add(net, sp);
  test_net_add(net, test_spec1(DNN_LAYER_SOFTMAX_XENT, "loss", "fc"));
  const double want[] = {1920, 2560, 32, 2560, 640, 960, 0, 100};
  double sum = 0;
  for (size_t i = 0; i < 8; i++) {
    double b = dnn_layer_activation_bytes(net, i, 5, DNN_DTYPE_FP16);
    assert_close(b, want[i], REL);
    sum += b;
  }
  assert_close(sum, 8772, REL);
  dnn_net_totals t;
  dnn_net_totals_get(net, 5, DNN_DTYPE_FP16, &t);
  assert_close(t.activation_bytes, 8772, REL);
  assert_int_equal(t.layers, 8);
  assert_int_equal(t.params, 108 + 8 + 650);
  /* Largest output: the conv's or relu's 5 * 256 * 2. */
  assert_close(t.max_layer_activation_bytes, 2560, REL);
  /* conv MACs 5 * 4 * 27 * 64 = 34560, fc 5 * 64 * 10 = 3200. */
  assert_close(t.fwd_macs_conv_fc, 37760, REL);
  /* Totals are the sums of the layer costs. */
  for (int p = 0; p < DNN_PASS_COUNT; p++) {
    double fl = 0, by = 0;
    for (size_t i = 0; i < 8; i++) {
      dnn_cost c;
      dnn_layer_cost(net, i, (dnn_pass)p, 5, DNN_DTYPE_FP16, &c);
      fl += c.flops;
      by += c.bytes_read + c.bytes_written;
    }
    assert_close(t.flops[p], fl, REL);
    assert_close(t.bytes[p], by, REL);
  }
  /* Activation memory is linear in the batch, except batch-norm stats. */
  assert_close(dnn_layer_activation_bytes(net, 1, 10, DNN_DTYPE_FP16), 5120,
               REL);
  assert_close(dnn_layer_activation_bytes(net, 2, 10, DNN_DTYPE_FP16), 32, REL);
  dnn_net_free(net);
}

/* Views and parameter-free prefixes: nothing is kept for a backward pass
 * that never runs, and a flatten's consumer keeps the flatten's producer. */
static void test_activation_views(void **state) {
  (void)state;
  dnn_net *net = new_net();
  add_input(net, "data", 3, 2, 4, 4, false);
  test_net_add(
      net, test_spec1(DNN_LAYER_ACTIVATION, "relu0", "data")); /* no backward */
  test_net_add(
      net, test_spec1(DNN_LAYER_MAXPOOL, "pool0", "relu0")); /* no backward */
  test_net_add(net, test_spec1(DNN_LAYER_FLATTEN, "flat", "pool0"));
  dnn_layer_spec sp = test_spec1(DNN_LAYER_FC, "fc", "flat");
  sp.p.fc.out_features = 3;
  test_net_add(net, sp);
  test_net_add(net, test_spec1(DNN_LAYER_LAYERNORM, "ln", "fc"));
  dnn_dtype f = DNN_DTYPE_FP32;
  assert_close(dnn_layer_activation_bytes(net, 0, 4, f), 0, REL);
  assert_close(dnn_layer_activation_bytes(net, 1, 4, f), 0, REL);
  /* pool0's output is fc's input, seen through the flatten view. */
  assert_close(dnn_layer_activation_bytes(net, 2, 4, f), 4 * 8 * 4, REL);
  assert_close(dnn_layer_activation_bytes(net, 3, 4, f), 0, REL);
  /* fc's output is kept for the layer norm; the norm keeps 2 stats per
   * row (4 rows). */
  assert_close(dnn_layer_activation_bytes(net, 4, 4, f), 4 * 3 * 4, REL);
  assert_close(dnn_layer_activation_bytes(net, 5, 4, f), 2 * 4 * 4, REL);
  dnn_net_free(net);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_conv_by_hand),
      cmocka_unit_test(test_fc_and_layernorm_by_hand),
      cmocka_unit_test(test_pool_and_norm_by_hand),
      cmocka_unit_test(test_fan_out_accumulation),
      cmocka_unit_test(test_lstm_and_embedding_by_hand),
      cmocka_unit_test(test_activation_bytes_by_hand),
      cmocka_unit_test(test_activation_views),
  };
  return cmocka_run_group_tests_name("model/cost", tests, NULL, NULL);
}
