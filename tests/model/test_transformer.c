/* Tests of the transformer kinds and zoo entries (model/seq.c,
 * model/zoo_seq.c; docs/models.md §11): the attention batched matmuls and
 * slice by hand, GPT parameter counts against 12 l h^2 + 13 l h + V h +
 * s h + 2 h for many sizes and Narayanan et al.'s Table 1, forward and
 * training FLOPs against Narayanan's formula (exactly for the GEMMs,
 * within 1% in all), per-block activation bytes against Korthikanti et
 * al.'s s b h (34 + 5 a s / h) split by tensor-parallel role, Megatron's
 * roles, BERT-large, errors and allocation failures. */
#include "test_fixtures.h"

#include "dnnsim/model.h"

#define REL 1e-12

/* ---- Helpers ------------------------------------------------------------- */

static dnn_net *new_net(void) {
  return test_net_new("seq");
}

/* Adds `sp` expecting DNN_EINVAL with `msg` in the message. */
static void add_fails(dnn_net *net, dnn_layer_spec sp, const char *msg) {
  dnn_error e;
  dnn_error_clear(&e);
  size_t n = dnn_net_layer_count(net);
  assert_int_equal(dnn_net_add(net, &sp, NULL, &e), DNN_EINVAL);
  assert_contains(e.msg, msg);
  assert_int_equal(dnn_net_layer_count(net), n);
}

static size_t fc_spec(dnn_net *net, const char *name, const char *in,
                      size_t out) {
  dnn_layer_spec sp = test_spec1(DNN_LAYER_FC, name, in);
  sp.p.fc.out_features = out;
  return test_net_add(net, sp);
}

static dnn_net *zoo(const char *name, size_t layers, size_t hidden,
                    size_t heads, size_t seq, size_t vocab) {
  dnn_zoo_params zp = dnn_zoo_default_params();
  zp.layers = layers;
  zp.hidden = hidden;
  zp.heads = heads;
  zp.seq_len = seq;
  zp.vocab = vocab;
  return test_zoo_net(name, &zp);
}

static size_t index_of(const dnn_net *net, const char *name) {
  return test_layer(net, name)->index;
}

/* ---- The attention kinds and slice by hand ------------------------------- */

/*
 * tokens (7) → embedding (11 x 48) → qkv fc 144 → scores (3 heads) →
 * softmax → context → out fc 48; batch N = 5, fp32.
 * s = 7, h = 48, a = 3, d = 16; M = N a s s d = 5 * 3 * 49 * 16 = 11760;
 * score elements S = N a s s = 735; one of Q, K, V, C: T = N s h = 1680.
 *   scores fwd:  flops 2M = 23520, work 11760, depth 1 + ceil(log2 16) = 5,
 *                read Q, K 2T * 4 = 13440, write S * 4 = 2940
 *   scores data: flops 4M = 47040, work 23520, depth 1 + ceil(log2 7) = 4,
 *                read (S + 2T) * 4 = 16380, write 2T * 4 = 13440; no
 *                accumulation into the QKV gradient (disjoint slices)
 *   context fwd: flops 23520, work 11760, depth 1 + ceil(log2 7) = 4,
 *                read (S + T) * 4 = 9660, write T * 4 = 6720
 *   context data: flops 47040, work 23520, depth 1 + ceil(log2 16) = 5,
 *                read (2T + S) * 4 = 16380, write (S + T) * 4 = 9660
 * Activation: qkv output (scores and context read it) 5 * 7 * 144 * 4 =
 * 20160; softmax output (itself and context) 2940; scores output nothing;
 * context output (the fc reads it) 6720.
 */
static void test_attention_by_hand(void **state) {
  (void)state;
  dnn_net *net = new_net();
  dnn_layer_spec sp = test_spec1(DNN_LAYER_INPUT, "tokens", NULL);
  sp.input_shape = (dnn_shape){.rank = 1, .dim = {7}, .tokens = true};
  test_net_add(net, sp);
  sp = test_spec1(DNN_LAYER_EMBEDDING, "emb", "tokens");
  sp.p.embedding = (dnn_embedding_params){.vocab = 11, .dim = 48};
  test_net_add(net, sp);
  size_t qkv = fc_spec(net, "qkv", "emb", 144);
  sp = test_spec1(DNN_LAYER_ATTN_SCORES, "scores", "qkv");
  sp.p.attn.heads = 3;
  sp.tp = DNN_TP_HEADS;
  size_t sc = test_net_add(net, sp);
  size_t sm =
      test_net_add(net, test_spec1(DNN_LAYER_SOFTMAX, "softmax", "scores"));
  sp = test_spec1(DNN_LAYER_ATTN_CONTEXT, "context", "softmax");
  sp.inputs[1] = "qkv";
  sp.n_inputs = 2;
  sp.p.attn.heads = 3;
  size_t cx = test_net_add(net, sp);
  fc_spec(net, "out", "context", 48);

  const dnn_layer *l = dnn_net_layer(net, sc);
  assert_int_equal(l->out.rank, 2);
  assert_int_equal(l->out.dim[0], 21);
  assert_int_equal(l->out.dim[1], 7);
  assert_int_equal(l->params, 0);
  assert_int_equal(l->tp, DNN_TP_HEADS);
  assert_int_equal(dnn_net_layer(net, cx)->out.dim[0], 7);
  assert_int_equal(dnn_net_layer(net, cx)->out.dim[1], 48);
  assert_int_equal(dnn_net_layer(net, cx)->tp, DNN_TP_NONE);
  assert_true(l->needs_input_grad);

  dnn_dtype f = DNN_DTYPE_FP32;
  expect_cost(net, sc, DNN_PASS_FWD, 5, f, 23520, 11760, 5, 13440, 2940);
  expect_cost(net, sc, DNN_PASS_BWD_DATA, 5, f, 47040, 23520, 4, 16380, 13440);
  expect_cost(net, sc, DNN_PASS_BWD_WEIGHTS, 5, f, 0, 0, 0, 0, 0);
  expect_cost(net, cx, DNN_PASS_FWD, 5, f, 23520, 11760, 4, 9660, 6720);
  expect_cost(net, cx, DNN_PASS_BWD_DATA, 5, f, 47040, 23520, 5, 16380, 9660);
  expect_cost(net, cx, DNN_PASS_BWD_WEIGHTS, 5, f, 0, 0, 0, 0, 0);
  /* Softmax over the (a s, s) scores: rows of 7, 5 ops per element. */
  expect_cost(net, sm, DNN_PASS_FWD, 5, f, 5 * 735, 5 * 735, 2 * 3 + 3, 735 * 4,
              735 * 4);

  assert_close(dnn_layer_activation_bytes(net, qkv, 5, f), 20160, REL);
  assert_close(dnn_layer_activation_bytes(net, sc, 5, f), 0, REL);
  assert_close(dnn_layer_activation_bytes(net, sm, 5, f), 2940, REL);
  assert_close(dnn_layer_activation_bytes(net, cx, 5, f), 6720, REL);

  char sig[128];
  dnn_layer_signature(net, sc, sig, sizeof sig);
  assert_string_equal(sig, "attn_scores:7x144:a3");
  dnn_layer_signature(net, cx, sig, sizeof sig);
  assert_string_equal(sig, "attn_context:21x7:a3");
  dnn_net_free(net);
}

/*
 * slice of positions [2, 5) of a (9, 6) sequence from an fc (so its
 * backward runs), batch 5, fp16: X = 270, Y = 90 elements.
 *   fwd: work 90, depth 1, read 180 B, write 180 B, no FLOPs
 *   data: work 270 (zero-fill dx, copy dy in), read 180 B, write 540 B
 */
static void test_slice_by_hand(void **state) {
  (void)state;
  dnn_net *net = new_net();
  dnn_layer_spec sp = test_spec1(DNN_LAYER_INPUT, "x", NULL);
  sp.input_shape = (dnn_shape){.rank = 2, .dim = {9, 4}};
  test_net_add(net, sp);
  fc_spec(net, "fc", "x", 6);
  sp = test_spec1(DNN_LAYER_SLICE, "sl", "fc");
  sp.p.slice = (dnn_slice_params){.start = 2, .length = 3};
  size_t s = test_net_add(net, sp);
  const dnn_layer *l = dnn_net_layer(net, s);
  assert_int_equal(l->out.dim[0], 3);
  assert_int_equal(l->out.dim[1], 6);
  dnn_dtype h = DNN_DTYPE_FP16;
  expect_cost(net, s, DNN_PASS_FWD, 5, h, 0, 90, 1, 180, 180);
  expect_cost(net, s, DNN_PASS_BWD_DATA, 5, h, 0, 270, 1, 180, 540);
  expect_cost(net, s, DNN_PASS_BWD_WEIGHTS, 5, h, 0, 0, 0, 0, 0);
  assert_close(dnn_layer_activation_bytes(net, s, 5, h), 0, REL);
  char sig[64];
  dnn_layer_signature(net, s, sig, sizeof sig);
  assert_string_equal(sig, "slice:9x6:s2:l3");
  dnn_net_free(net);
}

/* A tied fc counts only its bias but still has a weight gradient. */
static void test_tied_fc(void **state) {
  (void)state;
  dnn_net *net = new_net();
  dnn_layer_spec sp = test_spec1(DNN_LAYER_INPUT, "x", NULL);
  sp.input_shape = (dnn_shape){.rank = 2, .dim = {3, 10}};
  test_net_add(net, sp);
  sp = test_spec1(DNN_LAYER_FC, "head", "x");
  sp.p.fc = (dnn_fc_params){.out_features = 17, .bias = false, .tied = true};
  size_t h = test_net_add(net, sp);
  sp = test_spec1(DNN_LAYER_FC, "head_b", "x");
  sp.p.fc = (dnn_fc_params){.out_features = 17, .bias = true, .tied = true};
  size_t hb = test_net_add(net, sp);
  assert_int_equal(dnn_net_layer(net, h)->params, 0);
  assert_int_equal(dnn_net_layer(net, hb)->params, 17);
  /* bwd_weights: 2 * 2 * 3 * 10 * 17 = 2040 FLOPs, writes the 170
   * weights (into the shared gradient); the input is kept for it. */
  expect_cost(net, h, DNN_PASS_BWD_WEIGHTS, 2, DNN_DTYPE_FP32, 2040, 1020,
              1 + 3, (60 + 102) * 4.0, 170 * 4.0);
  assert_close(dnn_layer_activation_bytes(net, 0, 2, DNN_DTYPE_FP32), 240, REL);
  char sig[64];
  dnn_layer_signature(net, h, sig, sizeof sig);
  assert_string_equal(sig, "fc:3x10:o17:b0:t1");
  dnn_net_free(net);
}

/* ---- GPT parameters ------------------------------------------------------ */

static size_t gpt_params(size_t l, size_t h, size_t s, size_t V, size_t f) {
  /* Per block: QKV 3h^2 + 3h, projection h^2 + h, fc1 h f + f, fc2 f h + h,
   * two layer norms 4h; embeddings V h + s h; final layer norm 2h. */
  return l * (4 * h * h + 2 * h * f + 9 * h + f) + V * h + s * h + 2 * h;
}

static void test_gpt_params(void **state) {
  (void)state;
  /* name, layers, hidden, heads, seq, vocab, params (Narayanan et al.
   * SC'21 Table 1 rounds these to 1.7, 3.6, 7.5, 18.4, 39.1, 76.1, 145.6,
   * 310.1, 529.6 and 1008 billion) */
  static const struct {
    const char *name;
    size_t l, h, a, P;
  } named[] = {
      {"gpt", 12, 768, 12, 125164032},
      {"gpt-1.7b", 24, 2304, 24, 1652230656},
      {"gpt-3.6b", 30, 3072, 32, 3562168320},
      {"gpt-7.5b", 36, 4096, 32, 7467786240},
      {"gpt-18b", 40, 6144, 48, 18449756160},
      {"gpt-39b", 48, 8192, 64, 39096041472},
      {"gpt-76b", 60, 10240, 80, 76050739200},
      {"gpt-145b", 80, 12288, 96, 145622261760},
      {"gpt-175b", 96, 12288, 96, 174615846912},
      {"gpt-310b", 96, 16384, 128, 310130540544},
      {"gpt-530b", 105, 20480, 128, 529600819200},
      {"gpt-1t", 128, 25600, 160, 1008038758400},
  };
  for (size_t k = 0; k < sizeof named / sizeof named[0]; k++) {
    dnn_net *net = zoo(named[k].name, 0, 0, 0, 0, 0);
    dnn_net_totals t;
    dnn_net_totals_get(net, 1, DNN_DTYPE_FP16, &t);
    size_t l = named[k].l, h = named[k].h;
    size_t s = k == 0 ? 1024 : 2048;
    size_t want = 12 * l * h * h + 13 * l * h + 51200 * h + s * h + 2 * h;
    if (t.params != want || want != named[k].P)
      fail_msg("%s: %zu parameters, formula %zu, table %zu", named[k].name,
               t.params, want, named[k].P);
    assert_int_equal(t.frozen_params, 0);
    assert_int_equal(test_layer(net, "h.0.scores")->p.attn.heads, named[k].a);
    assert_int_equal(t.layers, 8 + 15 * l);
    dnn_net_free(net);
  }
  /* Odd sizes, and every parameter overriding a named entry. */
  static const size_t sizes[][6] = {
      /* layers, hidden, heads, seq, vocab, ffn (0: 4h) */
      {1, 12, 3, 5, 17, 0},      {5, 320, 5, 77, 1013, 0},
      {7, 96, 8, 301, 50257, 0}, {3, 64, 4, 9, 129, 173},
      {2, 40, 10, 11, 23, 7},
  };
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    const size_t *z = sizes[k];
    dnn_zoo_params zp = dnn_zoo_default_params();
    zp.layers = z[0];
    zp.hidden = z[1];
    zp.heads = z[2];
    zp.seq_len = z[3];
    zp.vocab = z[4];
    zp.ffn_hidden = z[5];
    dnn_net *net = NULL;
    dnn_error e;
    assert_ok(dnn_zoo_build(k % 2 ? "gpt-175b" : "gpt", &zp, &net, &e), &e);
    dnn_net_totals t;
    dnn_net_totals_get(net, 3, DNN_DTYPE_FP16, &t);
    size_t f = z[5] ? z[5] : 4 * z[1];
    assert_int_equal(t.params, gpt_params(z[0], z[1], z[3], z[4], f));
    if (z[5] == 0)
      assert_int_equal(t.params, 12 * z[0] * z[1] * z[1] + 13 * z[0] * z[1] +
                                     z[4] * z[1] + z[3] * z[1] + 2 * z[1]);
    assert_int_equal(test_layer(net, "h.0.fc1")->out.dim[1], f);
    dnn_net_free(net);
  }
}

/* ---- FLOPs against Narayanan et al. -------------------------------------- */

/* Forward FLOPs of the matrix multiplications (fc without its bias adds,
 * attention), split into the blocks and the LM head. */
static void gemm_flops(const dnn_net *net, size_t batch, double *blocks,
                       double *head) {
  *blocks = *head = 0;
  for (size_t i = 0; i < dnn_net_layer_count(net); i++) {
    const dnn_layer *l = dnn_net_layer(net, i);
    if (l->kind != DNN_LAYER_FC && l->kind != DNN_LAYER_ATTN_SCORES &&
        l->kind != DNN_LAYER_ATTN_CONTEXT)
      continue;
    dnn_cost c;
    dnn_layer_cost(net, i, DNN_PASS_FWD, batch, DNN_DTYPE_FP16, &c);
    double fl = c.flops;
    if (l->kind == DNN_LAYER_FC && l->p.fc.bias)
      fl -= (double)batch * (double)dnn_shape_elems(&l->out);
    if (strcmp(l->name, "lm_head") == 0)
      *head += fl;
    else
      *blocks += fl;
  }
}

/*
 * Narayanan et al. SC'21 (Appendix): forward 24 B s l h^2 (1 + s/(6h) +
 * V/(12 l h)); backward twice that, so training without recomputation is
 * 72 B s l h^2 (1 + s/(6h) + V/(12 l h)); full recomputation repeats the
 * blocks' forward (not the LM head's): 96 B s l h^2 (1 + s/(6h) +
 * V/(16 l h)).
 */
static void test_gpt_flops(void **state) {
  (void)state;
  static const size_t cases[][6] = {
      /* layers, hidden, heads, seq, vocab, batch */
      {12, 768, 12, 1024, 51200, 4},  {24, 2304, 24, 2048, 51200, 1},
      {2, 12288, 96, 2048, 51200, 3}, {5, 320, 5, 77, 1013, 7},
      {30, 3072, 32, 2048, 51200, 2},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const size_t *z = cases[k];
    dnn_net *net = zoo("gpt", z[0], z[1], z[2], z[3], z[4]);
    double l = (double)z[0], h = (double)z[1], s = (double)z[3];
    double V = (double)z[4], B = (double)z[5];
    double base = B * s * l * h * h;
    double fwd = 24 * base * (1 + s / (6 * h) + V / (12 * l * h));
    double blocks, head;
    gemm_flops(net, z[5], &blocks, &head);
    /* The matrix multiplications alone are the formula, exactly. */
    assert_close(blocks + head, fwd, REL);
    assert_close(3 * (blocks + head),
                 72 * base * (1 + s / (6 * h) + V / (12 * l * h)), REL);
    assert_close(4 * blocks + 3 * head,
                 96 * base * (1 + s / (6 * h) + V / (16 * l * h)), REL);
    /* Everything else (biases, norms, softmax, GELU, dropout, loss) adds
     * less than 1% here. */
    dnn_net_totals t;
    dnn_net_totals_get(net, z[5], DNN_DTYPE_FP16, &t);
    double train = t.flops[0] + t.flops[1] + t.flops[2];
    assert_true(t.flops[0] > fwd);
    assert_close(t.flops[0], fwd, 0.01);
    assert_close(train, 3 * fwd, 0.01);
    dnn_net_free(net);
  }
}

/* ---- Activation memory against Korthikanti et al. ------------------------ */

/* Bytes kept by block `i`'s layers ("h.I.*"), all of them and those with a
 * tensor-parallel role other than NONE. */
static void block_bytes(const dnn_net *net, size_t i, size_t b, double *all,
                        double *split) {
  char prefix[32];
  snprintf(prefix, sizeof prefix, "h.%zu.", i);
  *all = *split = 0;
  for (size_t j = 0; j < dnn_net_layer_count(net); j++) {
    const dnn_layer *l = dnn_net_layer(net, j);
    if (strncmp(l->name, prefix, strlen(prefix)) != 0)
      continue;
    double a = dnn_layer_activation_bytes(net, j, b, DNN_DTYPE_FP16);
    *all += a;
    if (l->tp != DNN_TP_NONE)
      *split += a;
  }
}

/*
 * Korthikanti et al. 2022 §4.1, fp16, no parallelism: per layer
 * s b h (34 + 5 a s / h) bytes. Our layers keep exactly those tensors plus
 * the two layer norms' fp32 mean and inverse deviation per row (2 * 2 * 4
 * bytes * s b = 16 s b), which the paper leaves out as small. With t-way
 * tensor parallelism the paper's s b h (10 + 24/t + 5 a s/(h t)) splits
 * exactly along our roles: NONE layers keep 10 s b h (+ the statistics),
 * COLUMN and HEADS layers 24 s b h + 5 a s^2 b.
 */
static void test_gpt_activation_bytes(void **state) {
  (void)state;
  static const size_t cases[][5] = {
      /* layers, hidden, heads, seq, batch */
      {2, 768, 12, 1024, 1},
      {3, 320, 5, 77, 3},
      {2, 12288, 96, 2048, 2},
      {4, 96, 8, 301, 5},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const size_t *z = cases[k];
    dnn_net *net = zoo("gpt", z[0], z[1], z[2], z[3], 1013);
    double h = (double)z[1], a = (double)z[2], s = (double)z[3];
    double b = (double)z[4], sbh = s * b * h;
    for (size_t i = 0; i < z[0]; i++) {
      double all, split;
      block_bytes(net, i, z[4], &all, &split);
      assert_close(all, sbh * (34 + 5 * a * s / h) + 16 * s * b, REL);
      assert_close(all - split, 10 * sbh + 16 * s * b, REL);
      assert_close(split, 24 * sbh + 5 * a * s * s * b, REL);
    }
    dnn_net_free(net);
  }
}

/* ---- Structure and roles ------------------------------------------------- */

static void test_gpt_structure(void **state) {
  (void)state;
  dnn_net *net = zoo("gpt", 2, 96, 8, 33, 211);
  static const struct {
    const char *name;
    dnn_layer_kind kind;
    dnn_tp_role tp;
  } want[] = {
      {"tokens", DNN_LAYER_INPUT, DNN_TP_NONE},
      {"wte", DNN_LAYER_EMBEDDING, DNN_TP_ROW},
      {"wpe", DNN_LAYER_EMBEDDING, DNN_TP_NONE},
      {"embed.add", DNN_LAYER_ADD, DNN_TP_NONE},
      {"embed.drop", DNN_LAYER_DROPOUT, DNN_TP_NONE},
      {"h.0.ln1", DNN_LAYER_LAYERNORM, DNN_TP_NONE},
      {"h.0.qkv", DNN_LAYER_FC, DNN_TP_COLUMN},
      {"h.0.scores", DNN_LAYER_ATTN_SCORES, DNN_TP_HEADS},
      {"h.0.softmax", DNN_LAYER_SOFTMAX, DNN_TP_HEADS},
      {"h.0.attn_drop", DNN_LAYER_DROPOUT, DNN_TP_HEADS},
      {"h.0.context", DNN_LAYER_ATTN_CONTEXT, DNN_TP_HEADS},
      {"h.0.proj", DNN_LAYER_FC, DNN_TP_ROW},
      {"h.0.proj_drop", DNN_LAYER_DROPOUT, DNN_TP_NONE},
      {"h.0.add1", DNN_LAYER_ADD, DNN_TP_NONE},
      {"h.0.ln2", DNN_LAYER_LAYERNORM, DNN_TP_NONE},
      {"h.0.fc1", DNN_LAYER_FC, DNN_TP_COLUMN},
      {"h.0.gelu", DNN_LAYER_ACTIVATION, DNN_TP_COLUMN},
      {"h.0.fc2", DNN_LAYER_FC, DNN_TP_ROW},
      {"h.0.mlp_drop", DNN_LAYER_DROPOUT, DNN_TP_NONE},
      {"h.0.add2", DNN_LAYER_ADD, DNN_TP_NONE},
      {"h.1.ln1", DNN_LAYER_LAYERNORM, DNN_TP_NONE},
  };
  for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
    const dnn_layer *l = dnn_net_layer(net, k);
    assert_string_equal(l->name, want[k].name);
    if (l->kind != want[k].kind || l->tp != want[k].tp)
      fail_msg("%s: %s/%s, want %s/%s", l->name, dnn_layer_kind_name(l->kind),
               dnn_tp_role_name(l->tp), dnn_layer_kind_name(want[k].kind),
               dnn_tp_role_name(want[k].tp));
  }
  size_t n = dnn_net_layer_count(net);
  assert_string_equal(dnn_net_layer(net, n - 3)->name, "ln_f");
  const dnn_layer *head = dnn_net_layer(net, n - 2);
  assert_string_equal(head->name, "lm_head");
  assert_true(head->p.fc.tied);
  assert_false(head->p.fc.bias);
  assert_int_equal(head->params, 0);
  assert_int_equal(head->tp, DNN_TP_COLUMN);
  assert_int_equal(head->out.dim[1], 211);
  const dnn_layer *loss = dnn_net_layer(net, n - 1);
  assert_int_equal(loss->kind, DNN_LAYER_SOFTMAX_XENT);
  assert_int_equal(loss->tp, DNN_TP_COLUMN);

  /* Shapes: scores (a s, s), context (s, h), dropout p = 0.1. */
  const dnn_layer *sc = test_layer(net, "h.1.scores");
  assert_int_equal(sc->out.dim[0], 8 * 33);
  assert_int_equal(sc->out.dim[1], 33);
  assert_int_equal(test_layer(net, "h.1.context")->out.dim[1], 96);
  assert_close(test_layer(net, "h.1.attn_drop")->p.dropout.p, 0.1, REL);
  /* The residual: add1 reads proj_drop and the block input. */
  const dnn_layer *a1 = test_layer(net, "h.1.add1");
  assert_int_equal(a1->inputs[0], index_of(net, "h.1.proj_drop"));
  assert_int_equal(a1->inputs[1], index_of(net, "h.0.add2"));
  assert_int_equal(test_layer(net, "h.1.add2")->inputs[1],
                   index_of(net, "h.1.add1"));

  /* The LM head's weight gradient runs (2 B s h V FLOPs) though it has no
   * parameters of its own; the loss has no weights. */
  dnn_cost c;
  dnn_layer_cost(net, n - 2, DNN_PASS_BWD_WEIGHTS, 3, DNN_DTYPE_FP16, &c);
  assert_close(c.flops, 2.0 * 3 * 33 * 96 * 211, REL);
  dnn_layer_cost(net, index_of(net, "h.0.scores"), DNN_PASS_BWD_DATA, 3,
                 DNN_DTYPE_FP16, &c);
  assert_close(c.flops, 4.0 * 3 * 33 * 33 * 96, REL); /* no accumulation */
  /* The first block's layer norm adds its gradient into the one flowing
   * back through the residual (fan-out of embed.drop). */
  dnn_cost ln;
  dnn_layer_cost(net, index_of(net, "h.0.ln1"), DNN_PASS_BWD_DATA, 3,
                 DNN_DTYPE_FP16, &ln);
  assert_close(ln.flops, (11.0 + 1) * 3 * 33 * 96, REL);

  /* The token table's gradient is dense (the tied head touches every
   * row); the position table's is row-sparse over the positions. */
  size_t row = 0;
  assert_close(dnn_layer_grad_rows(net, index_of(net, "wte"), 3, &row), 211,
               REL);
  assert_int_equal(row, 96);
  assert_close(dnn_layer_grad_rows(net, index_of(net, "wpe"), 3, &row),
               dnn_expected_distinct_rows(33, 99), REL);
  assert_int_equal(row, 96);
  assert_close(dnn_layer_grad_rows(net, index_of(net, "h.0.qkv"), 3, &row), 0,
               REL);
  assert_int_equal(row, 0);
  dnn_net_free(net);
}

/* ---- BERT-large ---------------------------------------------------------- */

static void test_bert_large(void **state) {
  (void)state;
  dnn_net *net = zoo("bert-large", 0, 0, 0, 0, 0);
  dnn_net_totals t;
  dnn_net_totals_get(net, 2, DNN_DTYPE_FP16, &t);
  /* BertModel 335,141,888 (embeddings 31,782,912, 24 blocks of
   * 12,596,224, pooler 1,049,600) + MLM transform 1,051,648 + decoder bias
   * 30,522 + NSP 2,050. */
  assert_int_equal(t.params, 336226108);
  assert_int_equal(test_layer(net, "wtype")->params, 2 * 1024);
  assert_int_equal(test_layer(net, "wpe")->params, 512 * 1024);
  assert_int_equal(test_layer(net, "mlm.gather")->out.dim[0], 80);
  assert_int_equal(test_layer(net, "cls")->out.dim[0], 1);
  const dnn_layer *dec = test_layer(net, "mlm.decoder");
  assert_true(dec->p.fc.tied);
  assert_int_equal(dec->params, 30522);
  assert_int_equal(dec->out.dim[0], 80);
  assert_int_equal(dec->out.dim[1], 30522);
  assert_int_equal(test_layer(net, "nsp")->out.dim[1], 2);
  /* Post-LN: the layer norm reads the residual sum; the next block's QKV
   * reads the layer norm. */
  assert_int_equal(test_layer(net, "h.3.ln1")->inputs[0],
                   index_of(net, "h.3.add1"));
  assert_int_equal(test_layer(net, "h.4.qkv")->inputs[0],
                   index_of(net, "h.3.ln2"));
  assert_int_equal(test_layer(net, "h.4.add1")->inputs[1],
                   index_of(net, "h.3.ln2"));
  assert_int_equal(test_layer(net, "h.4.add2")->inputs[1],
                   index_of(net, "h.4.ln1"));
  assert_int_equal(test_layer(net, "h.0.qkv")->inputs[0],
                   index_of(net, "embed.drop"));
  /* Two losses. */
  size_t losses = 0;
  for (size_t i = 0; i < dnn_net_layer_count(net); i++)
    losses += dnn_net_layer(net, i)->kind == DNN_LAYER_SOFTMAX_XENT;
  assert_int_equal(losses, 2);
  /* The word table's gradient is dense (tied decoder). */
  size_t row = 0;
  assert_close(dnn_layer_grad_rows(net, index_of(net, "wte"), 2, &row), 30522,
               REL);
  dnn_net_free(net);

  /* At seq 128: 20 predictions, the position table stays 512 rows. */
  net = zoo("bert-large", 0, 0, 0, 128, 0);
  dnn_net_totals_get(net, 2, DNN_DTYPE_FP16, &t);
  assert_int_equal(t.params, 336226108);
  assert_int_equal(test_layer(net, "mlm.gather")->out.dim[0], 20);
  assert_int_equal(test_layer(net, "tokens")->out.dim[0], 128);
  dnn_net_free(net);
  /* Longer than 512: the table grows with the sequence. */
  net = zoo("bert-large", 1, 64, 4, 700, 100);
  assert_int_equal(test_layer(net, "wpe")->params, 700 * 64);
  assert_int_equal(test_layer(net, "mlm.gather")->out.dim[0], 108);
  dnn_net_free(net);
}

/* ---- Errors, names, allocation failures ---------------------------------- */

static void test_errors(void **state) {
  (void)state;
  dnn_zoo_params zp = dnn_zoo_default_params();
  zp.heads = 7;
  dnn_net *net = (dnn_net *)&zp;
  dnn_error e;
  assert_int_equal(dnn_zoo_build("gpt", &zp, &net, &e), DNN_EINVAL);
  assert_null(net);
  assert_string_equal(e.msg, "gpt: heads (7) must divide hidden (768)");
  zp.heads = 2048;
  assert_int_equal(dnn_zoo_build("bert-large", &zp, &net, &e), DNN_EINVAL);
  assert_contains(e.msg, "bert-large: heads (2048) must divide hidden (1024)");
  assert_int_equal(dnn_zoo_build("gpt-1.7", &zp, &net, &e), DNN_ENOTFOUND);
  assert_contains(e.msg, "did you mean 'gpt-1.7b'?");

  net = new_net();
  dnn_layer_spec sp = test_spec1(DNN_LAYER_INPUT, "ids", NULL);
  sp.input_shape = (dnn_shape){.rank = 1, .dim = {6}, .tokens = true};
  test_net_add(net, sp);
  sp = test_spec1(DNN_LAYER_INPUT, "v", NULL);
  sp.input_shape = (dnn_shape){.rank = 1, .dim = {12}};
  test_net_add(net, sp);
  sp = test_spec1(DNN_LAYER_INPUT, "x", NULL);
  sp.input_shape = (dnn_shape){.rank = 2, .dim = {6, 35}};
  test_net_add(net, sp);
  sp = test_spec1(DNN_LAYER_INPUT, "qkv", NULL);
  sp.input_shape = (dnn_shape){.rank = 2, .dim = {6, 36}};
  test_net_add(net, sp);

  sp = test_spec1(DNN_LAYER_ATTN_SCORES, "s", "x");
  sp.p.attn.heads = 2;
  add_fails(net, sp,
            "layer 's' (attn_scores): width 35 of 'x' is not 3h "
            "(the fused Q, K and V)");
  sp.inputs[0] = "v";
  add_fails(net, sp, "needs the fused QKV tensor (s, 3h) from 'v', got (12)");
  sp.inputs[0] = "ids";
  add_fails(net, sp, "cannot act on token ids (6 tokens) from 'ids'");
  sp.inputs[0] = "qkv";
  sp.p.attn.heads = 0;
  add_fails(net, sp, "heads must be >= 1");
  sp.p.attn.heads = 5;
  add_fails(net, sp, "heads 5 must divide the hidden size 12");
  sp.p.attn.heads = 3;
  sp.tp = (dnn_tp_role)9;
  add_fails(net, sp, "layer 's' (attn_scores): unknown tensor-parallel role 9");
  sp.tp = DNN_TP_HEADS;
  test_net_add(net, sp); /* (18, 6) */

  sp = test_spec1(DNN_LAYER_ATTN_CONTEXT, "c", "s");
  sp.p.attn.heads = 3;
  add_fails(net, sp, "layer 'c' (attn_context): takes 2 inputs, got 1");
  sp.inputs[1] = "qkv";
  sp.n_inputs = 2;
  sp.p.attn.heads = 2;
  add_fails(net, sp,
            "probabilities 's' have shape (18, 6) but 2 heads over "
            "'qkv' (s = 6) need (12, 6)");
  sp.p.attn.heads = 3;
  sp.inputs[0] = "x";
  add_fails(net, sp, "probabilities 'x' have shape (6, 35)");
  sp.inputs[0] = "s";
  sp.inputs[1] = "x";
  add_fails(net, sp, "width 35 of 'x' is not 3h");
  sp.inputs[1] = "qkv";
  test_net_add(net, sp);

  sp = test_spec1(DNN_LAYER_SLICE, "sl", "x");
  sp.p.slice = (dnn_slice_params){.start = 4, .length = 3};
  add_fails(net, sp,
            "layer 'sl' (slice): positions [4, 7) are outside the 6 "
            "of the input");
  sp.p.slice.start = 6;
  sp.p.slice.length = 1;
  add_fails(net, sp, "positions [6, 7) are outside");
  sp.p.slice.start = 0;
  sp.p.slice.length = 0;
  add_fails(net, sp, "length must be >= 1");
  sp.p.slice.length = 1;
  sp.inputs[0] = "v";
  add_fails(net, sp, "needs a sequence (T, F), got (12)");
  dnn_net_free(net);
}

static void test_names(void **state) {
  (void)state;
  assert_string_equal(dnn_layer_kind_name(DNN_LAYER_ATTN_SCORES),
                      "attn_scores");
  assert_string_equal(dnn_layer_kind_name(DNN_LAYER_ATTN_CONTEXT),
                      "attn_context");
  assert_string_equal(dnn_layer_kind_name(DNN_LAYER_SLICE), "slice");
  assert_int_equal(dnn_layer_kind_opclass(DNN_LAYER_ATTN_SCORES), DNN_OP_GEMM);
  assert_int_equal(dnn_layer_kind_opclass(DNN_LAYER_ATTN_CONTEXT), DNN_OP_GEMM);
  assert_int_equal(dnn_layer_kind_opclass(DNN_LAYER_SLICE), DNN_OP_COPY);
  static const char *const roles[] = {"none", "column", "row", "heads"};
  dnn_error e;
  for (int i = 0; i < DNN_TP_ROLE_COUNT; i++) {
    assert_string_equal(dnn_tp_role_name((dnn_tp_role)i), roles[i]);
    dnn_tp_role r;
    assert_ok(dnn_tp_role_parse(roles[i], &r, &e), &e);
    assert_int_equal(r, i);
  }
  assert_int_equal(DNN_TP_ROLE_COUNT, 4);
  assert_string_equal(dnn_tp_role_name(DNN_TP_ROLE_COUNT), "unknown");
  dnn_tp_role r;
  assert_int_equal(dnn_tp_role_parse("colum", &r, &e), DNN_ENOTFOUND);
  assert_string_equal(
      e.msg, "unknown tensor-parallel role 'colum' (did you mean 'column'?)");
  assert_int_equal(dnn_tp_role_parse("diagonal", &r, &e), DNN_ENOTFOUND);
  assert_contains(e.msg, "(valid: none, column, row, heads)");
  assert_int_equal(dnn_layer_default_spec(DNN_LAYER_FC).tp, DNN_TP_NONE);
}

static void test_alloc_failures(void **state) {
  (void)state;
  const char *names[] = {"gpt", "bert-large"};
  for (size_t k = 0; k < 2; k++) {
    dnn_zoo_params zp = dnn_zoo_default_params();
    zp.layers = 2;
    zp.hidden = 64;
    zp.heads = 4;
    zp.seq_len = 16;
    zp.vocab = 100;
    long fail_at = test_zoo_alloc_sweep(names[k], &zp, 10000);
    assert_true(fail_at >= 2);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_attention_by_hand),
      cmocka_unit_test(test_slice_by_hand),
      cmocka_unit_test(test_tied_fc),
      cmocka_unit_test(test_gpt_params),
      cmocka_unit_test(test_gpt_flops),
      cmocka_unit_test(test_gpt_activation_bytes),
      cmocka_unit_test(test_gpt_structure),
      cmocka_unit_test(test_bert_large),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_alloc_failures),
  };
  return cmocka_run_group_tests_name("model/transformer", tests, NULL, NULL);
}
