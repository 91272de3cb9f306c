/*
 * The sequence-model zoo: GPT (pre-LN, Megatron-LM's layout) at any size
 * and the named sizes of Narayanan et al. SC'21 Table 1 plus GPT-3 175B,
 * BERT-large pre-training (post-LN, MLM + NSP heads), inst2vec's skip-gram
 * (full softmax or NCE) and NCC's classifyapp and device-mapping networks
 * (Ben-Nun et al. NeurIPS'18, spcl/ncc; REFERENCE §6).
 *
 * Invariant: every GPT has exactly 12 l h^2 + 13 l h + V h + s h + 2 h
 * parameters (ffn_hidden = 4h; Narayanan et al. §5.1 without the final
 * layer norm's 2h), its LM head is tied to the token embedding (zero
 * parameters of its own), and per transformer block the activation bytes
 * kept are s b h (34 + 5 a s / h) in fp16 (Korthikanti et al. 2022, §4.1)
 * plus the layer norms' fp32 statistics (16 s b). Every layer carries its
 * Megatron tensor-parallel role. ncc has 4 (H (F + H) + H) per LSTM (Keras),
 * 651,864 trainable parameters at the defaults and 652,264 with the batch
 * norm's running statistics (Keras' count_params, REFERENCE §6.3).
 * docs/models.md §11-§12 derive all of it (tests/model/test_transformer.c,
 * tests/model/test_ncc.c).
 */
#include "internal.h"

#include <string.h>

/* ---- Chain builder ------------------------------------------------------- */

#define NAME_MAX_ 64

/* Each layer reads the previous one unless its spec names inputs; the
 * first failure sticks and later adds do nothing. */
typedef struct sb {
  dnn_net *net;
  dnn_error *err;
  dnn_status st;
  char prev[NAME_MAX_]; /* the last layer added */
} sb;

static void add(sb *b, dnn_layer_spec *sp, const char *name) {
  if (b->st)
    return;
  sp->name = name;
  if (sp->kind != DNN_LAYER_INPUT && sp->n_inputs == 0) {
    sp->inputs[0] = b->prev;
    sp->n_inputs = 1;
  }
  char copy[NAME_MAX_];
  snprintf(copy, sizeof copy, "%s", name); /* name may alias b->prev */
  b->st = dnn_net_add(b->net, sp, NULL, b->err);
  if (b->st == DNN_OK)
    snprintf(b->prev, sizeof b->prev, "%s", copy);
}

/* "PREFIX.what" into buf. */
static const char *nm(char *buf, const char *prefix, const char *what) {
  snprintf(buf, NAME_MAX_, "%s%s%s", prefix, prefix[0] ? "." : "", what);
  return buf;
}

static void tokens(sb *b, const char *name, size_t T) {
  dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_INPUT);
  sp.input_shape = (dnn_shape){.rank = 1, .dim = {T}, .tokens = true};
  add(b, &sp, name);
}

static void embedding(sb *b, const char *name, const char *ids, size_t vocab,
                      size_t dim, bool frozen, dnn_tp_role tp) {
  dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_EMBEDDING);
  sp.p.embedding = (dnn_embedding_params){vocab, dim, frozen};
  sp.inputs[0] = ids;
  sp.n_inputs = 1;
  sp.tp = tp;
  add(b, &sp, name);
}

static void fc(sb *b, const char *name, size_t out, bool bias, bool tied,
               dnn_tp_role tp) {
  dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_FC);
  sp.p.fc = (dnn_fc_params){.out_features = out, .bias = bias, .tied = tied};
  sp.tp = tp;
  add(b, &sp, name);
}

static void simple(sb *b, dnn_layer_kind kind, const char *name,
                   dnn_tp_role tp) {
  dnn_layer_spec sp = dnn_layer_default_spec(kind);
  sp.tp = tp;
  add(b, &sp, name);
}

static void act(sb *b, const char *name, dnn_act a, dnn_tp_role tp) {
  dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_ACTIVATION);
  sp.p.act.act = a;
  sp.tp = tp;
  add(b, &sp, name);
}

static void dropout(sb *b, const char *name, double p, dnn_tp_role tp) {
  dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_DROPOUT);
  sp.p.dropout.p = p;
  sp.tp = tp;
  add(b, &sp, name);
}

/* A layer of `kind` reading `n` named inputs. */
static void join(sb *b, dnn_layer_kind kind, const char *name,
                 const char *const *inputs, size_t n, dnn_tp_role tp) {
  dnn_layer_spec sp = dnn_layer_default_spec(kind);
  for (size_t k = 0; k < n; k++)
    sp.inputs[k] = inputs[k];
  sp.n_inputs = n;
  sp.tp = tp;
  add(b, &sp, name);
}

static void slice(sb *b, const char *name, const char *in, size_t length) {
  dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_SLICE);
  sp.p.slice = (dnn_slice_params){.start = 0, .length = length};
  sp.inputs[0] = in;
  sp.n_inputs = 1;
  add(b, &sp, name);
}

/* ---- Transformers -------------------------------------------------------- */

/* Megatron-LM's dropout probabilities (hidden and attention). */
#define TRANSFORMER_DROPOUT 0.1

typedef struct tcfg {
  size_t layers, hidden, heads, seq, vocab, ffn;
  size_t positions; /* rows of the position table */
  bool post_ln;     /* BERT: layer norm after each residual add */
} tcfg;

/*
 * One block reading `x`, named "h.I.*". Pre-LN (GPT):
 *   ln1 → qkv → scores → softmax → attn_drop → context → proj → proj_drop
 *   → add1(x) → ln2 → fc1 → gelu → fc2 → mlp_drop → add2(add1)
 * Post-LN (BERT) moves the layer norms after the adds: add1 → ln1, and
 * add2(ln1) → ln2. Leaves b->prev at the block output.
 */
static void block(sb *b, const tcfg *c, size_t i, const char *x) {
  char p[NAME_MAX_], n[NAME_MAX_], qkv[NAME_MAX_], res[NAME_MAX_];
  char sum[NAME_MAX_];
  snprintf(p, sizeof p, "h.%zu", i);
  if (!c->post_ln)
    simple(b, DNN_LAYER_LAYERNORM, nm(n, p, "ln1"), DNN_TP_NONE);
  fc(b, nm(qkv, p, "qkv"), 3 * c->hidden, true, false, DNN_TP_COLUMN);

  dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_ATTN_SCORES);
  sp.p.attn.heads = c->heads;
  sp.tp = DNN_TP_HEADS;
  add(b, &sp, nm(n, p, "scores"));
  simple(b, DNN_LAYER_SOFTMAX, nm(n, p, "softmax"), DNN_TP_HEADS);
  dropout(b, nm(n, p, "attn_drop"), TRANSFORMER_DROPOUT, DNN_TP_HEADS);
  sp = dnn_layer_default_spec(DNN_LAYER_ATTN_CONTEXT);
  sp.p.attn.heads = c->heads;
  sp.inputs[0] = b->prev;
  sp.inputs[1] = qkv;
  sp.n_inputs = 2;
  sp.tp = DNN_TP_HEADS;
  add(b, &sp, nm(n, p, "context"));
  fc(b, nm(n, p, "proj"), c->hidden, true, false, DNN_TP_ROW);
  dropout(b, nm(n, p, "proj_drop"), TRANSFORMER_DROPOUT, DNN_TP_NONE);
  const char *in1[2] = {b->prev, x};
  join(b, DNN_LAYER_ADD, nm(sum, p, "add1"), in1, 2, DNN_TP_NONE);
  if (c->post_ln)
    simple(b, DNN_LAYER_LAYERNORM, nm(n, p, "ln1"), DNN_TP_NONE);
  snprintf(res, sizeof res, "%s", b->prev); /* add1 or its layer norm */
  if (!c->post_ln)
    simple(b, DNN_LAYER_LAYERNORM, nm(n, p, "ln2"), DNN_TP_NONE);

  fc(b, nm(n, p, "fc1"), c->ffn, true, false, DNN_TP_COLUMN);
  act(b, nm(n, p, "gelu"), DNN_ACT_GELU, DNN_TP_COLUMN);
  fc(b, nm(n, p, "fc2"), c->hidden, true, false, DNN_TP_ROW);
  dropout(b, nm(n, p, "mlp_drop"), TRANSFORMER_DROPOUT, DNN_TP_NONE);
  const char *in2[2] = {b->prev, res};
  join(b, DNN_LAYER_ADD, nm(n, p, "add2"), in2, 2, DNN_TP_NONE);
  if (c->post_ln)
    simple(b, DNN_LAYER_LAYERNORM, nm(n, p, "ln2"), DNN_TP_NONE);
}

/* tokens → wte (+ wpe [+ wtype]) → add [→ ln] → drop; returns via b->prev. */
static void embeddings(sb *b, const tcfg *c) {
  tokens(b, "tokens", c->seq);
  embedding(b, "wte", "tokens", c->vocab, c->hidden, false, DNN_TP_ROW);
  embedding(b, "wpe", "tokens", c->positions, c->hidden, false, DNN_TP_NONE);
  if (c->post_ln) {
    embedding(b, "wtype", "tokens", 2, c->hidden, false, DNN_TP_NONE);
    const char *in[3] = {"wte", "wpe", "wtype"};
    join(b, DNN_LAYER_ADD, "embed.add", in, 3, DNN_TP_NONE);
    simple(b, DNN_LAYER_LAYERNORM, "embed.ln", DNN_TP_NONE);
  } else {
    const char *in[2] = {"wte", "wpe"};
    join(b, DNN_LAYER_ADD, "embed.add", in, 2, DNN_TP_NONE);
  }
  dropout(b, "embed.drop", TRANSFORMER_DROPOUT, DNN_TP_NONE);
}

static void blocks(sb *b, const tcfg *c) {
  for (size_t i = 0; i < c->layers && b->st == DNN_OK; i++) {
    char x[NAME_MAX_];
    snprintf(x, sizeof x, "%s", b->prev);
    block(b, c, i, x);
  }
}

static void gpt(sb *b, const tcfg *c) {
  embeddings(b, c);
  blocks(b, c);
  simple(b, DNN_LAYER_LAYERNORM, "ln_f", DNN_TP_NONE);
  /* Tied to wte, no bias (Megatron-LM); the vocabulary is split across
   * tensor-parallel ranks and so is the loss (its parallel cross-entropy). */
  fc(b, "lm_head", c->vocab, false, true, DNN_TP_COLUMN);
  simple(b, DNN_LAYER_SOFTMAX_XENT, "loss", DNN_TP_COLUMN);
}

/* Masked positions BERT predicts per sequence: Google's
 * max_predictions_per_seq, 20 at s = 128 and 80 at s = 512, which is
 * 15 % of s rounded up to a multiple of 4 (capped at s). */
static size_t bert_predictions(size_t s) {
  size_t p = (15 * s + 399) / 400 * 4;
  return p < s ? p : s;
}

static void bert(sb *b, const tcfg *c) {
  embeddings(b, c);
  blocks(b, c);
  char enc[NAME_MAX_];
  snprintf(enc, sizeof enc, "%s", b->prev);
  /* Masked LM on the gathered positions: transform, tied decoder with its
   * own bias (as Google's and HF's BertForPreTraining). */
  slice(b, "mlm.gather", enc, bert_predictions(c->seq));
  fc(b, "mlm.dense", c->hidden, true, false, DNN_TP_NONE);
  act(b, "mlm.gelu", DNN_ACT_GELU, DNN_TP_NONE);
  simple(b, DNN_LAYER_LAYERNORM, "mlm.ln", DNN_TP_NONE);
  fc(b, "mlm.decoder", c->vocab, true, true, DNN_TP_COLUMN);
  simple(b, DNN_LAYER_SOFTMAX_XENT, "mlm.loss", DNN_TP_COLUMN);
  /* Next-sentence prediction from the [CLS] token through the pooler. */
  slice(b, "cls", enc, 1);
  fc(b, "pooler", c->hidden, true, false, DNN_TP_NONE);
  act(b, "pooler.tanh", DNN_ACT_TANH, DNN_TP_NONE);
  fc(b, "nsp", 2, true, false, DNN_TP_NONE);
  simple(b, DNN_LAYER_SOFTMAX_XENT, "nsp.loss", DNN_TP_NONE);
}

/* name, layers, hidden, heads, default sequence length */
static const struct gpt_size {
  const char *name;
  size_t layers, hidden, heads, seq;
} gpt_sizes[] = {
    {"gpt", 12, 768, 12, 1024},          {"gpt-1.7b", 24, 2304, 24, 2048},
    {"gpt-3.6b", 30, 3072, 32, 2048},    {"gpt-7.5b", 36, 4096, 32, 2048},
    {"gpt-18b", 40, 6144, 48, 2048},     {"gpt-39b", 48, 8192, 64, 2048},
    {"gpt-76b", 60, 10240, 80, 2048},    {"gpt-145b", 80, 12288, 96, 2048},
    {"gpt-175b", 96, 12288, 96, 2048},   {"gpt-310b", 96, 16384, 128, 2048},
    {"gpt-530b", 105, 20480, 128, 2048}, {"gpt-1t", 128, 25600, 160, 2048},
};

/* Narayanan et al.'s vocabulary: GPT-2's 50,257 BPE tokens padded. */
#define GPT_VOCAB 51200
/* BERT's WordPiece vocabulary and position table (max_position_embeddings). */
#define BERT_VOCAB 30522
#define BERT_POSITIONS 512

static size_t or_default(size_t v, size_t dflt) {
  return v ? v : dflt;
}

static dnn_status transformer(sb *b, const dnn_zoo_params *zp,
                              const char *name) {
  tcfg c;
  memset(&c, 0, sizeof c);
  bool is_bert = strcmp(name, "bert-large") == 0;
  if (is_bert) {
    c = (tcfg){.layers = 24, .hidden = 1024, .heads = 16, .seq = 512};
    c.vocab = BERT_VOCAB;
    c.post_ln = true;
  } else {
    size_t k = 0;
    while (strcmp(gpt_sizes[k].name, name) != 0)
      k++;
    c.layers = gpt_sizes[k].layers;
    c.hidden = gpt_sizes[k].hidden;
    c.heads = gpt_sizes[k].heads;
    c.seq = gpt_sizes[k].seq;
    c.vocab = GPT_VOCAB;
  }
  c.layers = or_default(zp->layers, c.layers);
  c.hidden = or_default(zp->hidden, c.hidden);
  c.heads = or_default(zp->heads, c.heads);
  c.seq = or_default(zp->seq_len, c.seq);
  c.vocab = or_default(zp->vocab, c.vocab);
  c.ffn = or_default(zp->ffn_hidden, 4 * c.hidden);
  c.positions = is_bert && c.seq < BERT_POSITIONS ? BERT_POSITIONS : c.seq;
  if (c.heads > c.hidden || c.hidden % c.heads != 0)
    return DNN_FAIL(b->err, DNN_EINVAL, "heads (%zu) must divide hidden (%zu)",
                    c.heads, c.hidden);
  if (c.hidden > SIZE_MAX / 4)
    return DNN_FAIL(b->err, DNN_EINVAL, "hidden (%zu) is too large", c.hidden);
  if (is_bert)
    bert(b, &c);
  else
    gpt(b, &c);
  return b->st;
}

/* ---- inst2vec and NCC ---------------------------------------------------- */

/* inst2vec_appflags.py: embedding_size 200, num_sampled 60; the vocabulary
 * after pruning statements seen fewer than 300 times (REFERENCE §6.2). */
#define I2V_DIM 200
#define I2V_VOCAB 8565
#define I2V_NEGATIVES 60
/* NCC: Dense(32) (flag dense_layer), POJ-104's classes, and a placeholder
 * program length (the real one is the longest program of the data set,
 * REFERENCE §6.5: measure it and set seq). */
#define NCC_DENSE 32
#define NCC_CLASSES 104
#define NCC_SEQ 100
#define DEVMAP_AUX 2     /* data transfer size, work-group size */
#define DEVMAP_OUTPUTS 2 /* CPU or GPU */

/*
 * Skip-gram over (target, context) statement pairs: one sample is one
 * pair, so the input is one token. Full softmax: Dense(V) on the embedding
 * (tf.layers.dense, with bias) and softmax cross-entropy; NCE: nce_loss
 * with its own V x (dim + 1) output table.
 */
static dnn_status inst2vec(sb *b, const dnn_zoo_params *zp, bool nce) {
  size_t V = or_default(zp->vocab, I2V_VOCAB);
  size_t D = or_default(zp->embed_dim, I2V_DIM);
  size_t k = or_default(zp->negatives, nce ? I2V_NEGATIVES : 0);
  tokens(b, "target", 1);
  embedding(b, "embedding", "target", V, D, false, DNN_TP_NONE);
  if (k == 0) {
    fc(b, "output", V, true, false, DNN_TP_NONE);
    simple(b, DNN_LAYER_SOFTMAX_XENT, "loss", DNN_TP_NONE);
  } else {
    dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_NCE_LOSS);
    sp.p.nce = (dnn_nce_params){.vocab = V, .negatives = k};
    add(b, &sp, "loss");
  }
  return b->st;
}

/* tokens → frozen inst2vec → LSTM(H, sequences) → LSTM(H); leaves
 * b->prev at the second LSTM. */
static void ncc_trunk(sb *b, const dnn_zoo_params *zp) {
  size_t D = or_default(zp->embed_dim, I2V_DIM);
  tokens(b, "tokens", or_default(zp->seq_len, NCC_SEQ));
  embedding(b, "inst2vec", "tokens", or_default(zp->vocab, I2V_VOCAB), D, true,
            DNN_TP_NONE);
  dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_LSTM);
  sp.p.lstm = (dnn_lstm_params){or_default(zp->hidden, D), true};
  add(b, &sp, "lstm_1");
  sp = dnn_layer_default_spec(DNN_LAYER_LSTM);
  sp.p.lstm = (dnn_lstm_params){or_default(zp->hidden, D), false};
  add(b, &sp, "lstm_2");
}

static dnn_status ncc(sb *b, const dnn_zoo_params *zp) {
  size_t classes = zp->classes ? zp->classes : NCC_CLASSES;
  ncc_trunk(b, zp);
  simple(b, DNN_LAYER_BATCHNORM, "bn", DNN_TP_NONE);
  fc(b, "dense", NCC_DENSE, true, false, DNN_TP_NONE);
  act(b, "relu", DNN_ACT_RELU, DNN_TP_NONE);
  fc(b, "out", classes, true, false, DNN_TP_NONE);
  simple(b, DNN_LAYER_SOFTMAX_XENT, "loss", DNN_TP_NONE);
  return b->st;
}

/* train_task_devmap.py: the language-model head Dense(2) on the LSTM
 * (loss weight 0.2, a weight on the loss value only: no extra cost), and
 * the auxiliary inputs concatenated in front of the LSTM output. */
static dnn_status ncc_devmap(sb *b, const dnn_zoo_params *zp) {
  ncc_trunk(b, zp);
  fc(b, "lang_out", DEVMAP_OUTPUTS, true, false, DNN_TP_NONE);
  simple(b, DNN_LAYER_SOFTMAX_XENT, "lang_loss", DNN_TP_NONE);
  dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_INPUT);
  sp.input_shape = (dnn_shape){.rank = 1, .dim = {DEVMAP_AUX}};
  add(b, &sp, "aux");
  const char *in[2] = {"aux", "lstm_2"};
  join(b, DNN_LAYER_CONCAT, "concat", in, 2, DNN_TP_NONE);
  simple(b, DNN_LAYER_BATCHNORM, "bn", DNN_TP_NONE);
  fc(b, "dense", NCC_DENSE, true, false, DNN_TP_NONE);
  act(b, "relu", DNN_ACT_RELU, DNN_TP_NONE);
  fc(b, "out", DEVMAP_OUTPUTS, true, false, DNN_TP_NONE);
  simple(b, DNN_LAYER_SOFTMAX_XENT, "loss", DNN_TP_NONE);
  return b->st;
}

/* ---- Entry point --------------------------------------------------------- */

dnn_status dnn__zoo_seq_build(dnn_net *net, const dnn_zoo_params *zp,
                              dnn_error *err) {
  sb b;
  memset(&b, 0, sizeof b);
  b.net = net;
  b.err = err;
  const char *name = dnn_net_name(net);
  if (strcmp(name, "inst2vec") == 0)
    return inst2vec(&b, zp, false);
  if (strcmp(name, "inst2vec-nce") == 0)
    return inst2vec(&b, zp, true);
  if (strcmp(name, "ncc") == 0)
    return ncc(&b, zp);
  if (strcmp(name, "ncc-devmap") == 0)
    return ncc_devmap(&b, zp);
  if (strcmp(name, "bert-large") == 0)
    return transformer(&b, zp, name);
  for (size_t k = 0; k < DNN_ARRAY_LEN(gpt_sizes); k++)
    if (strcmp(gpt_sizes[k].name, name) == 0)
      return transformer(&b, zp, name);
  return DNN_FAIL(err, DNN_ENOTFOUND, "'%s' is not a sequence-model entry",
                  name);
}
