/* Tests of the NCC / inst2vec workloads (model/zoo_seq.c, model/seq.c;
 * docs/models.md §12): classifyapp's parameters against REFERENCE §6.3
 * (Keras: 651,864 trainable, 652,264 with the batch norm's running
 * statistics), the frozen inst2vec table, the device-mapping variant,
 * inst2vec with full softmax and with NCE, the nce_loss kind by hand, the
 * expected distinct rows of a sparse embedding gradient, errors and
 * allocation failures. */
#include "test_fixtures.h"

#include "dnnsim/model.h"

#include <math.h>

#define REL 1e-12

/* ---- classifyapp --------------------------------------------------------- */

static void test_ncc_params(void **state) {
  (void)state;
  dnn_zoo_params zp = dnn_zoo_default_params();
  dnn_net *net = test_zoo_net("ncc", &zp);
  dnn_net_totals t;
  dnn_net_totals_get(net, 64, DNN_DTYPE_FP32, &t);
  /* REFERENCE §6.3: LSTM 4 (200 (200 + 200) + 200) = 320,800 each, BN 400
   * trainable (+ 400 running statistics), Dense 200 → 32: 6,432, Dense
   * 32 → 104: 3,432. */
  assert_int_equal(test_layer(net, "lstm_1")->params, 320800);
  assert_int_equal(test_layer(net, "lstm_2")->params, 320800);
  assert_int_equal(test_layer(net, "bn")->params, 400);
  assert_int_equal(test_layer(net, "bn")->frozen_params, 400);
  assert_int_equal(test_layer(net, "dense")->params, 6432);
  assert_int_equal(test_layer(net, "out")->params, 3432);
  assert_int_equal(t.params, 651864);
  /* Keras' count_params: trainable + the running mean and variance. */
  assert_int_equal(t.params + test_layer(net, "bn")->frozen_params, 652264);
  /* The frozen inst2vec table: 8,565 x 200, no gradient. */
  const dnn_layer *emb = test_layer(net, "inst2vec");
  assert_true(emb->p.embedding.frozen);
  assert_int_equal(emb->params, 0);
  assert_int_equal(emb->frozen_params, 1713000);
  assert_int_equal(t.frozen_params, 1713400);
  assert_int_equal(test_layer(net, "tokens")->out.dim[0], 100);
  assert_int_equal(test_layer(net, "out")->out.dim[0], 104);
  assert_int_equal(t.layers, 9);
  dnn_net_free(net);

  /* Sequence length, classes, width and units as parameters. */
  zp.seq_len = 37;
  zp.classes = 10;
  zp.embed_dim = 24;
  zp.hidden = 13;
  zp.vocab = 501;
  net = test_zoo_net("ncc", &zp);
  dnn_net_totals_get(net, 64, DNN_DTYPE_FP32, &t);
  size_t lstm = 4 * (13 * (24 + 13) + 13) + 4 * (13 * (13 + 13) + 13);
  assert_int_equal(t.params, lstm + 2 * 13 + 13 * 32 + 32 + 32 * 10 + 10);
  assert_int_equal(t.frozen_params, 501 * 24 + 2 * 13);
  assert_int_equal(test_layer(net, "tokens")->out.dim[0], 37);
  dnn_net_free(net);
}

/* Frozen embedding: no weight gradient, so the first LSTM needs no input
 * gradient and runs its recurrence in bwd_weights; costs per REFERENCE
 * §6.3: 640 k MACs per token and sample for the two LSTMs. */
static void test_ncc_costs(void **state) {
  (void)state;
  dnn_zoo_params zp = dnn_zoo_default_params();
  zp.seq_len = 53;
  dnn_net *net = test_zoo_net("ncc", &zp);
  size_t emb = test_layer(net, "inst2vec")->index;
  size_t l1 = test_layer(net, "lstm_1")->index,
         l2 = test_layer(net, "lstm_2")->index;
  assert_false(test_layer(net, "lstm_1")->needs_input_grad);
  assert_true(test_layer(net, "lstm_2")->needs_input_grad);
  dnn_cost c;
  dnn_layer_cost(net, emb, DNN_PASS_BWD_WEIGHTS, 64, DNN_DTYPE_FP32, &c);
  assert_close(c.flops + c.bytes_written, 0, REL);
  dnn_layer_cost(net, l1, DNN_PASS_BWD_DATA, 64, DNN_DTYPE_FP32, &c);
  assert_close(c.flops, 0, REL);
  double NT = 64.0 * 53, macs = 0;
  for (size_t i = l1; i <= l2; i++) {
    dnn_layer_cost(net, i, DNN_PASS_FWD, 64, DNN_DTYPE_FP32, &c);
    assert_close(c.flops, 2 * NT * 800 * 400 + NT * 800 + 18 * NT * 200, REL);
    macs += c.flops - c.work;
  }
  assert_close(macs / NT, 640000, REL);
  /* The ids are not kept (no weight gradient); the gathered (53, 200)
   * sequence is (the first LSTM's weight gradient reads it). */
  assert_close(dnn_layer_activation_bytes(net, 0, 64, DNN_DTYPE_FP32), 0, REL);
  assert_close(dnn_layer_activation_bytes(net, emb, 64, DNN_DTYPE_FP32),
               NT * 200 * 4, REL);
  size_t row = 7;
  assert_close(dnn_layer_grad_rows(net, emb, 64, &row), 0, REL);
  assert_int_equal(row, 0);
  char sig[64];
  dnn_layer_signature(net, emb, sig, sizeof sig);
  assert_string_equal(sig, "embedding:t53:v8565:e200:f1");
  dnn_net_free(net);
}

static void test_ncc_devmap(void **state) {
  (void)state;
  dnn_zoo_params zp = dnn_zoo_default_params();
  zp.classes = 55; /* ignored: CPU or GPU */
  dnn_net *net = test_zoo_net("ncc-devmap", &zp);
  dnn_net_totals t;
  dnn_net_totals_get(net, 64, DNN_DTYPE_FP32, &t);
  /* 641,600 LSTMs + lang_out 402 + BN(202) 404 + Dense 202 → 32: 6,496 +
   * Dense 32 → 2: 66; Keras adds BN's 404 running statistics. */
  assert_int_equal(t.params, 648968);
  assert_int_equal(t.params + test_layer(net, "bn")->frozen_params, 649372);
  assert_int_equal(t.frozen_params, 1713404);
  assert_int_equal(test_layer(net, "concat")->out.dim[0], 202);
  assert_int_equal(test_layer(net, "aux")->out.dim[0], 2);
  assert_int_equal(test_layer(net, "out")->out.dim[0], 2);
  assert_int_equal(test_layer(net, "lang_out")->out.dim[0], 2);
  size_t losses = 0;
  for (size_t i = 0; i < dnn_net_layer_count(net); i++)
    losses += dnn_net_layer(net, i)->kind == DNN_LAYER_SOFTMAX_XENT;
  assert_int_equal(losses, 2);
  dnn_net_free(net);
}

/* ---- inst2vec ------------------------------------------------------------ */

static void test_inst2vec(void **state) {
  (void)state;
  dnn_zoo_params zp = dnn_zoo_default_params();
  dnn_net *net = test_zoo_net("inst2vec", &zp);
  dnn_net_totals t;
  dnn_net_totals_get(net, 64, DNN_DTYPE_FP32, &t);
  /* Input table 8,565 x 200, output Dense(8,565) 200 x 8,565 + bias. */
  assert_int_equal(t.params, 2 * 8565 * 200 + 8565);
  assert_int_equal(t.layers, 4);
  size_t out = test_layer(net, "output")->index;
  dnn_cost c;
  dnn_layer_cost(net, out, DNN_PASS_FWD, 64, DNN_DTYPE_FP32, &c);
  assert_close(c.flops, 2.0 * 64 * 200 * 8565 + 64 * 8565, REL);
  size_t loss = test_layer(net, "loss")->index;
  assert_close(dnn_layer_activation_bytes(net, loss, 64, DNN_DTYPE_FP32),
               64.0 * 8565 * 4, REL);
  size_t row = 0;
  size_t emb = test_layer(net, "embedding")->index;
  assert_close(dnn_layer_grad_rows(net, emb, 64, &row),
               dnn_expected_distinct_rows(8565, 64), REL);
  assert_int_equal(row, 200);
  assert_close(dnn_layer_grad_rows(net, out, 64, &row), 0, REL);
  dnn_net_free(net);

  /* NCE with the default 60 negatives: the same parameter count (the
   * output table V x 200 and its V biases). */
  net = test_zoo_net("inst2vec-nce", &zp);
  dnn_net_totals_get(net, 64, DNN_DTYPE_FP32, &t);
  assert_int_equal(t.params, 2 * 8565 * 200 + 8565);
  assert_int_equal(t.layers, 3);
  const dnn_layer *l = test_layer(net, "loss");
  assert_int_equal(l->kind, DNN_LAYER_NCE_LOSS);
  assert_int_equal(l->p.nce.negatives, 60);
  dnn_layer_cost(net, l->index, DNN_PASS_FWD, 64, DNN_DTYPE_FP32, &c);
  assert_close(c.flops, 2.0 * 64 * 61 * 200 + 8.0 * 64 * 61, REL);
  assert_close(dnn_layer_grad_rows(net, l->index, 64, &row),
               60 + 8505 * (1 - pow(1 - 1.0 / 8565, 64)), REL);
  assert_int_equal(row, 201);
  dnn_net_free(net);

  /* negatives selects NCE for inst2vec and overrides inst2vec-nce. */
  zp.negatives = 10;
  zp.vocab = 777;
  zp.embed_dim = 31;
  net = test_zoo_net("inst2vec", &zp);
  assert_int_equal(test_layer(net, "loss")->p.nce.negatives, 10);
  dnn_net_totals_get(net, 1, DNN_DTYPE_FP32, &t);
  assert_int_equal(t.params, 2 * 777 * 31 + 777);
  dnn_net_free(net);
  zp.negatives = 7;
  net = test_zoo_net("inst2vec-nce", &zp);
  assert_int_equal(test_layer(net, "loss")->p.nce.negatives, 7);
  dnn_net_free(net);
}

/*
 * nce_loss by hand: a 7-wide vector from an fc (so bwd_data runs), V = 13,
 * k = 5, batch 3, fp32. L = 3 * 6 = 18 logits, M = 18 * 7 = 126 MACs,
 * G = 3 + 5 = 8 rows of 8 (weights + bias): 256 bytes; ids 8 * 8 = 64 B.
 *   fwd:  flops 252 + 8 * 18 = 396, work 270, depth 1 + 3 + 7 + 3 = 14,
 *         read 21 * 4 + 256 + 64 = 404, write (18 + 3) * 4 = 84
 *   data: flops 252 + 36 = 288, work 162, depth 2 + 1 + 3 = 6,
 *         read 72 + 256 + 64 = 392, write 84
 *   wgt:  flops 252 + 18 = 270, work 144, depth 1 + 2 = 3,
 *         read (21 + 18) * 4 + 64 = 220, write 256
 * It keeps its 18 sigmoids (72 B); its input is kept by the fc (84 B).
 */
static void test_nce_by_hand(void **state) {
  (void)state;
  dnn_net *net = NULL;
  dnn_error e;
  assert_ok(dnn_net_alloc("nce", &net, &e), &e);
  dnn_layer_spec sp = test_spec1(DNN_LAYER_INPUT, "x", NULL);
  sp.input_shape = (dnn_shape){.rank = 1, .dim = {4}};
  test_net_add(net, sp);
  sp = test_spec1(DNN_LAYER_FC, "fc", "x");
  sp.p.fc.out_features = 7;
  size_t fc = test_net_add(net, sp);
  sp = test_spec1(DNN_LAYER_NCE_LOSS, "loss", "fc");
  sp.p.nce = (dnn_nce_params){.vocab = 13, .negatives = 5};
  size_t n = test_net_add(net, sp);
  const dnn_layer *l = dnn_net_layer(net, n);
  assert_int_equal(l->params, 13 * 8);
  assert_int_equal(l->out.rank, 1);
  assert_int_equal(l->out.dim[0], 1);
  dnn_dtype f = DNN_DTYPE_FP32;
  expect_cost(net, n, DNN_PASS_FWD, 3, f, 396, 270, 14, 404, 84);
  expect_cost(net, n, DNN_PASS_BWD_DATA, 3, f, 288, 162, 6, 392, 84);
  expect_cost(net, n, DNN_PASS_BWD_WEIGHTS, 3, f, 270, 144, 3, 220, 256);
  assert_close(dnn_layer_activation_bytes(net, n, 3, f), 72, REL);
  assert_close(dnn_layer_activation_bytes(net, fc, 3, f), 84, REL);
  size_t row = 0;
  assert_close(dnn_layer_grad_rows(net, n, 3, &row),
               5 + 8 * (1 - 1728.0 / 2197.0), REL);
  assert_int_equal(row, 8);
  char sig[64];
  dnn_layer_signature(net, n, sig, sizeof sig);
  assert_string_equal(sig, "nce_loss:7:v13:k5");

  /* Errors. */
  const struct {
    size_t vocab, k;
    const char *in, *msg;
  } bad[] = {
      {13, 0, "fc",
       "layer 'bad' (nce_loss): negatives 0 must be in [1, "
       "vocab = 13]"},
      {13, 14, "fc", "negatives 14 must be in [1, vocab = 13]"},
      {0, 1, "fc", "vocab must be >= 1"},
      {13, 5, "img", "needs a vector (F) or a sequence (T, F), got (2, 3, 3)"},
  };
  sp = test_spec1(DNN_LAYER_INPUT, "img", NULL);
  sp.input_shape = (dnn_shape){.rank = 3, .dim = {2, 3, 3}};
  test_net_add(net, sp);
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    sp = test_spec1(DNN_LAYER_NCE_LOSS, "bad", bad[k].in);
    sp.p.nce = (dnn_nce_params){.vocab = bad[k].vocab, .negatives = bad[k].k};
    dnn_error_clear(&e);
    assert_int_equal(dnn_net_add(net, &sp, NULL, &e), DNN_EINVAL);
    assert_contains(e.msg, bad[k].msg);
  }
  dnn_net_free(net);
}

/* ---- Expected distinct rows ---------------------------------------------- */

static void test_distinct_rows(void **state) {
  (void)state;
  /* V (1 - (1 - 1/V)^n) */
  assert_close(dnn_expected_distinct_rows(10, 3), 10 * (1 - 0.729), REL);
  assert_close(dnn_expected_distinct_rows(8565, 64),
               8565 * (1 - pow(8564.0 / 8565.0, 64)), 1e-10);
  assert_close(dnn_expected_distinct_rows(7, 2.5),
               7 * (1 - pow(6.0 / 7.0, 2.5)), REL);
  assert_close(dnn_expected_distinct_rows(1, 5), 1, REL);
  assert_close(dnn_expected_distinct_rows(31, 0), 0, REL);
  assert_close(dnn_expected_distinct_rows(31, -2), 0, REL);
  assert_close(dnn_expected_distinct_rows(0, 9), 0, REL);
  /* Few draws from a huge table: nearly all distinct; many: all rows. */
  double d = dnn_expected_distinct_rows(1000000000, 3.719);
  assert_true(d < 3.719 && d > 3.719 - 1e-8);
  assert_close(dnn_expected_distinct_rows(50, 1e6), 50, REL);
  /* A Monte-Carlo-free check: the expectation is a sum over rows, and
   * increasing n never lowers it. */
  double prev = 0;
  for (double n = 1; n < 400; n *= 1.7) {
    double x = dnn_expected_distinct_rows(97, n);
    assert_true(x > prev && x <= n + 1e-12 && x <= 97);
    prev = x;
  }
}

/* ---- Allocation failures ------------------------------------------------- */

static void test_alloc_failures(void **state) {
  (void)state;
  const char *names[] = {"ncc", "ncc-devmap", "inst2vec", "inst2vec-nce"};
  for (size_t k = 0; k < 4; k++) {
    dnn_zoo_params zp = dnn_zoo_default_params();
    long fail_at = test_zoo_alloc_sweep(names[k], &zp, 1000);
    assert_true(fail_at >= 2);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ncc_params),
      cmocka_unit_test(test_ncc_costs),
      cmocka_unit_test(test_ncc_devmap),
      cmocka_unit_test(test_inst2vec),
      cmocka_unit_test(test_nce_by_hand),
      cmocka_unit_test(test_distinct_rows),
      cmocka_unit_test(test_alloc_failures),
  };
  return cmocka_run_group_tests_name("model/ncc", tests, NULL, NULL);
}
