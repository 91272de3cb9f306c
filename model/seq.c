/*
 * The sequence-model layer kinds: the two batched matmuls of attention
 * (attn_scores = Q K^T per head, attn_context = P V per head), the
 * noise-contrastive-estimation loss (nce_loss, TensorFlow's nce_loss as
 * inst2vec uses it) and slice (a range of sequence positions: BERT's [CLS]
 * token and its gathered masked positions). Shape inference, parameters,
 * per-pass costs, the extra activation they keep, and the row-sparse
 * gradient helper for embedding tables (dnn_layer_grad_rows).
 *
 * Invariant: per sample, the fused QKV tensor is (s, 3h) with Q, K, V each
 * (s, h) and head i owning columns [i h/a, (i+1) h/a) of each; the scores
 * are (a s, s) (rows = (head, query), last dimension = keys), so softmax
 * and dropout treat them as any sequence. With d = h/a, one sample's
 * scores and context each take a s s d = s^2 h multiply-accumulates
 * (Narayanan et al. SC'21, Appendix: 2 b s^2 h FLOPs each). Attention
 * scores are full s x s also for causal models: Megatron-LM computes all of
 * them and masks inside its fused softmax. Costs follow the conventions of
 * model/cost.c (2 FLOPs per MAC, bytes of each tensor once per pass, depth
 * = longest dependency chain). docs/models.md §11-§12 derive every count.
 */
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

/* ---- Helpers ------------------------------------------------------------- */

/* ceil(log2(x)) for x >= 1, 0 below (the depth of an x-term reduction). */
static double clog2(double x) {
  if (x <= 1)
    return 0;
  if (x < 0x1p62 && x == floor(x))
    return (double)dnn__ceil_log2((size_t)x);
  return ceil(log2(x));
}

static double elems(const dnn_shape *s) {
  return dnn__d(dnn_shape_elems(s));
}

/* "(3, 224)" or "(128 tokens)". */
static const char *shape_str(const dnn_shape *s, char *buf, size_t n) {
  if (s->tokens) {
    snprintf(buf, n, "(%zu tokens)", s->dim[0]);
    return buf;
  }
  size_t len = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < s->rank && len < n; i++) {
    int k = snprintf(buf + len, n - len, "%s%zu", i ? ", " : "(", s->dim[i]);
    if (k < 0)
      break;
    len += (size_t)k;
  }
  if (len < n)
    snprintf(buf + len, n - len, ")");
  return buf;
}

/* ---- Shape inference ----------------------------------------------------- */

/* Checks a fused QKV tensor (s, 3h) for `heads` heads; *h = hidden size. */
static dnn_status check_qkv(const dnn_layer_spec *sp, const dnn__layer *q,
                            size_t heads, size_t *h, dnn_error *err) {
  const dnn_shape *s = &q->pub.out;
  char b[64];
  if (s->rank != 2)
    return LFAIL("needs the fused QKV tensor (s, 3h) from '%s', got %s",
                 q->pub.name, shape_str(s, b, sizeof b));
  if (s->dim[1] % 3 != 0)
    return LFAIL("width %zu of '%s' is not 3h (the fused Q, K and V)",
                 s->dim[1], q->pub.name);
  *h = s->dim[1] / 3;
  if (heads == 0)
    return LFAIL("heads must be >= 1");
  if (*h % heads != 0)
    return LFAIL("heads %zu must divide the hidden size %zu", heads, *h);
  return DNN_OK;
}

static dnn_status infer_scores(const dnn_layer_spec *sp,
                               const dnn__layer *const *in, dnn__layer *rec,
                               dnn_error *err) {
  size_t h, heads = sp->p.attn.heads, S = in[0]->pub.out.dim[0];
  dnn_status st = check_qkv(sp, in[0], heads, &h, err);
  if (st)
    return st;
  size_t rows = heads, n = 0;
  if (!dnn__mul_ok(rows, S, &rows) || !dnn__mul_ok(rows, S, &n))
    return LFAIL("%zu heads x %zu x %zu scores are too many", heads, S, S);
  rec->pub.out = (dnn_shape){.rank = 2, .dim = {rows, S}};
  rec->pub.p.attn = sp->p.attn;
  return DNN_OK;
}

static dnn_status infer_context(const dnn_layer_spec *sp,
                                const dnn__layer *const *in, dnn__layer *rec,
                                dnn_error *err) {
  size_t h, heads = sp->p.attn.heads;
  dnn_status st = check_qkv(sp, in[1], heads, &h, err);
  if (st)
    return st;
  size_t S = in[1]->pub.out.dim[0];
  const dnn_shape *p = &in[0]->pub.out;
  char b[64];
  if (p->rank != 2 || p->dim[1] != S || p->dim[0] / heads != S ||
      p->dim[0] % heads != 0)
    return LFAIL("probabilities '%s' have shape %s but %zu heads over '%s' "
                 "(s = %zu) need (%zu, %zu)",
                 in[0]->pub.name, shape_str(p, b, sizeof b), heads,
                 in[1]->pub.name, S, heads * S, S);
  rec->pub.out = (dnn_shape){.rank = 2, .dim = {S, h}};
  rec->pub.p.attn = sp->p.attn;
  return DNN_OK;
}

static dnn_status infer_nce(const dnn_layer_spec *sp, dnn__layer *rec,
                            dnn_error *err) {
  const dnn_shape *in = &rec->pub.in;
  const dnn_nce_params *p = &sp->p.nce;
  char b[64];
  if (in->rank > 2)
    return LFAIL("needs a vector (F) or a sequence (T, F), got %s",
                 shape_str(in, b, sizeof b));
  if (p->vocab == 0)
    return LFAIL("vocab must be >= 1");
  if (p->negatives == 0 || p->negatives > p->vocab)
    return LFAIL("negatives %zu must be in [1, vocab = %zu]", p->negatives,
                 p->vocab);
  size_t F = in->dim[in->rank - 1], params = F + 1;
  if (F == SIZE_MAX || !dnn__mul_ok(params, p->vocab, &params))
    return LFAIL("too many parameters");
  rec->pub.out = (dnn_shape){.rank = 1, .dim = {1}}; /* the loss */
  rec->pub.params = params; /* output weights and biases, V (F + 1) */
  rec->pub.p.nce = *p;
  return DNN_OK;
}

static dnn_status infer_slice(const dnn_layer_spec *sp, dnn__layer *rec,
                              dnn_error *err) {
  const dnn_shape *in = &rec->pub.in;
  const dnn_slice_params *p = &sp->p.slice;
  char b[64];
  if (in->rank != 2)
    return LFAIL("needs a sequence (T, F), got %s", shape_str(in, b, sizeof b));
  if (p->length == 0)
    return LFAIL("length must be >= 1");
  if (p->start >= in->dim[0] || p->length > in->dim[0] - p->start)
    return LFAIL("positions [%zu, %zu) are outside the %zu of the input",
                 p->start, p->start + p->length, in->dim[0]);
  rec->pub.out = (dnn_shape){.rank = 2, .dim = {p->length, in->dim[1]}};
  rec->pub.p.slice = *p;
  return DNN_OK;
}

dnn_status dnn__seq_infer(const dnn_layer_spec *sp, const dnn__layer *const *in,
                          dnn__layer *rec, dnn_error *err) {
  switch (sp->kind) {
  case DNN_LAYER_ATTN_SCORES:
    return infer_scores(sp, in, rec, err);
  case DNN_LAYER_ATTN_CONTEXT:
    return infer_context(sp, in, rec, err);
  case DNN_LAYER_NCE_LOSS:
    return infer_nce(sp, rec, err);
  case DNN_LAYER_SLICE:
    return infer_slice(sp, rec, err);
  default:
    break;
  }
  return LFAIL("not a sequence-model kind");
}

bool dnn__seq_disjoint_grad_input(const dnn_layer *l, size_t k) {
  return (l->kind == DNN_LAYER_ATTN_SCORES && k == 0) ||
         (l->kind == DNN_LAYER_ATTN_CONTEXT && k == 1);
}

/* ---- Costs --------------------------------------------------------------- */

/* Attention geometry of a scores or context layer, per sample. */
typedef struct attn_dims {
  double a, s, h, d; /* heads, sequence, hidden, head width h / a */
} attn_dims;

static attn_dims attn_of(const dnn_layer *l) {
  attn_dims g;
  g.a = dnn__d(l->p.attn.heads);
  if (l->kind == DNN_LAYER_ATTN_SCORES) {
    g.s = dnn__d(l->in.dim[0]);
    g.h = dnn__d(l->in.dim[1] / 3);
  } else {
    g.s = dnn__d(l->out.dim[0]);
    g.h = dnn__d(l->out.dim[1]);
  }
  g.d = g.h / g.a;
  return g;
}

/*
 * scores S = Q K^T / sqrt(d) (the scale is the GEMM's alpha, free):
 *   fwd       M MACs, reads Q, K, writes S, depth 1 + ceil(log2 d)
 *   bwd_data  dQ = dS K and dK = dS^T Q: 2M MACs, reads dS, Q, K, writes
 *             dQ, dK, depth 1 + ceil(log2 s) (both reduce over s)
 * context C = P V:
 *   fwd       M MACs, reads P, V, writes C, depth 1 + ceil(log2 s)
 *   bwd_data  dP = dC V^T (reduces over d) and dV = P^T dC (over s): 2M
 *             MACs, reads dC, P, V, writes dP, dV
 * with M = N a s s d = N s^2 h. No weights, so no bwd_weights.
 */
static void attn_cost(const dnn_layer *l, dnn_pass pass, double N, double sb,
                      dnn_cost *c, double *macs) {
  attn_dims g = attn_of(l);
  double M = N * g.a * g.s * g.s * g.d;
  double S = N * g.a * g.s * g.s; /* score elements */
  double T = N * g.s * g.h;       /* one of Q, K, V, C */
  bool scores = l->kind == DNN_LAYER_ATTN_SCORES;
  if (pass == DNN_PASS_FWD) {
    *macs = M;
    c->depth = 1 + clog2(scores ? g.d : g.s);
    c->bytes_read = (scores ? 2 * T : S + T) * sb;
    c->bytes_written = (scores ? S : T) * sb;
  } else {
    *macs = 2 * M;
    c->depth = 1 + clog2(scores ? g.s : fmax(g.s, g.d));
    c->bytes_read = (scores ? S + 2 * T : 2 * T + S) * sb;
    c->bytes_written = (scores ? 2 * T : S + T) * sb;
  }
  c->flops = 2 * *macs;
}

/* Per-logit operations of the NCE loss: forward bias add, log-Q
 * correction and the stable sigmoid cross-entropy max(x,0) - x z +
 * log(1 + exp(-|x|)) (5), plus one accumulate into the row's loss;
 * backward sigmoid - label and scale (2); the bias gradient 1. */
enum { NCE_FWD_OPS = 8, NCE_BWD_OPS = 2, NCE_BIAS_OPS = 1 };

/*
 * nce_loss over R rows per sample of width F, vocabulary V, k negatives
 * sampled once per batch: L = N R (1 + k) logits, M = L F MACs, and
 * G = N R + k table rows (F weights + 1 bias each) gathered and, in
 * bwd_weights, written back as a row-sparse gradient.
 */
static void nce_cost(const dnn_layer *l, dnn_pass pass, double N, double sb,
                     dnn_cost *c, double *macs) {
  double F = dnn__d(dnn__last_dim(&l->in));
  double R = elems(&l->in) / F, k = dnn__d(l->p.nce.negatives);
  double L = N * R * (1 + k), M = L * F, X = N * R * F;
  double G = N * R + k, rows = G * (F + 1) * sb;
  double ids = (N * R + k) * DNN__INDEX_BYTES;
  *macs = M;
  switch (pass) {
  case DNN_PASS_FWD:
    c->flops = 2 * M + NCE_FWD_OPS * L;
    c->depth = 1 + clog2(F) + NCE_FWD_OPS - 1 + clog2(R * (1 + k));
    c->bytes_read = X * sb + rows + ids;
    c->bytes_written = (L + N) * sb; /* sigmoids kept, the loss */
    break;
  case DNN_PASS_BWD_DATA:
    c->flops = 2 * M + NCE_BWD_OPS * L;
    c->depth = NCE_BWD_OPS + 1 + clog2(1 + k);
    c->bytes_read = L * sb + rows + ids;
    c->bytes_written = X * sb;
    break;
  default:
    c->flops = 2 * M + NCE_BIAS_OPS * L;
    c->depth = 1 + clog2(N * R); /* a sampled row sums every row's term */
    c->bytes_read = (X + L) * sb + ids;
    c->bytes_written = rows;
    break;
  }
}

/* slice: copy the rows forward; backward zero-fills dx and copies dy in.
 * Pure data movement: work = elements written, no FLOPs. */
static void slice_cost(const dnn_layer *l, dnn_pass pass, double N, double sb,
                       dnn_cost *c) {
  double X = N * elems(&l->in), Y = N * elems(&l->out);
  c->depth = 1;
  c->bytes_read = Y * sb;
  c->bytes_written = (pass == DNN_PASS_FWD ? Y : X) * sb;
  c->work = pass == DNN_PASS_FWD ? Y : X;
}

void dnn__seq_cost(const dnn_layer *l, dnn_pass pass, double N, double sb,
                   dnn_cost *out, double *macs) {
  *macs = 0;
  switch (l->kind) {
  case DNN_LAYER_ATTN_SCORES:
  case DNN_LAYER_ATTN_CONTEXT:
    attn_cost(l, pass, N, sb, out, macs);
    break;
  case DNN_LAYER_NCE_LOSS:
    nce_cost(l, pass, N, sb, out, macs);
    break;
  case DNN_LAYER_SLICE:
    slice_cost(l, pass, N, sb, out);
    break;
  default:
    break;
  }
}

double dnn__seq_kept_elems(const dnn_layer *l) {
  if (l->kind != DNN_LAYER_NCE_LOSS)
    return 0;
  double F = dnn__d(dnn__last_dim(&l->in));
  return elems(&l->in) / F * (1 + dnn__d(l->p.nce.negatives));
}

/* ---- Row-sparse gradients ------------------------------------------------ */

double dnn_expected_distinct_rows(size_t vocab, double draws) {
  if (vocab == 0 || !(draws > 0))
    return 0;
  double V = dnn__d(vocab);
  /* V (1 - (1 - 1/V)^n), with expm1/log1p for accuracy when n/V is small;
   * vocab == 1 gives log1p(-1) = -inf and exactly 1. */
  return -V * expm1(draws * log1p(-1 / V));
}

/* true when `net` has an fc tied to a table of `vocab` rows of width `dim`
 * (an LM head), which makes that table's gradient dense. */
static bool has_tied_head(const dnn_net *net, size_t vocab, size_t dim) {
  for (size_t j = 0; j < net->n; j++) {
    const dnn_layer *f = &net->layers[j]->pub;
    if (f->kind == DNN_LAYER_FC && f->p.fc.tied &&
        f->p.fc.out_features == vocab && dnn__last_dim(&f->in) == dim)
      return true;
  }
  return false;
}

double dnn_layer_grad_rows(const dnn_net *net, size_t i, size_t batch,
                           size_t *row_elems) {
  const dnn_layer *l = &dnn__net_rec(net, i)->pub;
  *row_elems = 0;
  double N = dnn__d(batch);
  if (l->params == 0 || batch == 0)
    return 0;
  if (l->kind == DNN_LAYER_EMBEDDING) {
    const dnn_embedding_params *p = &l->p.embedding;
    *row_elems = p->dim;
    if (has_tied_head(net, p->vocab, p->dim))
      return dnn__d(p->vocab);
    return dnn_expected_distinct_rows(p->vocab, N * elems(&l->in));
  }
  if (l->kind == DNN_LAYER_NCE_LOSS) {
    size_t F = dnn__last_dim(&l->in);
    double V = dnn__d(l->p.nce.vocab), k = dnn__d(l->p.nce.negatives);
    double R = elems(&l->in) / dnn__d(F);
    *row_elems = F + 1;
    double untouched = V > 1 ? exp(N * R * log1p(-1 / V)) : 0;
    return k + (V - k) * (1 - untouched);
  }
  return 0;
}
