/*
 * Per-layer costs: FLOPs, bytes moved, the survey's work W and depth D for
 * each pass (REFERENCE §1.1-§1.2), the activation memory a layer keeps
 * from the forward to the backward pass, and whole-network totals.
 *
 * Invariant: everything is computed on the fly from the per-sample shapes
 * stored at build time and the batch; nothing here allocates, so the
 * functions can run in the analytic model's and the simulator's inner
 * loops. Bytes count each tensor read or written once (the ideal-cache
 * minimum a roofline uses). Work counts a multiply-accumulate as one
 * operation and every other arithmetic operation as one (so FLOPs = work +
 * MACs); pure data movement (concat, gather) counts one per element moved.
 * Depth counts operation levels: a k-term reduction has depth ceil(log2 k)
 * (REFERENCE §1.1), a dot product one more for the multiplies.
 * docs/models.md §1 and §3 derive every count; the sequence-model kinds
 * (attention, NCE, slice) are costed in model/seq.c (§11-§12).
 */
#include "internal.h"

#include <math.h>
#include <string.h>

/* ceil(log2(x)) for x >= 1, 0 for x <= 1. */
static inline double clog2(double x) {
  if (x <= 1)
    return 0;
  if (x >= 0x1p62)
    return ceil(log2(x));
#if defined(__GNUC__)
  unsigned long long n = (unsigned long long)x;
  if ((double)n < x)
    n++;
  return (double)(64 - __builtin_clzll(n - 1));
#else
  return (double)dnn__ceil_log2((size_t)x);
#endif
}

static inline double elems(const dnn_shape *s) {
  return dnn__d(dnn_shape_elems(s));
}

/* ---- Which passes run ---------------------------------------------------- */

bool dnn__pass_runs(const dnn_layer *l, dnn_pass pass) {
  switch (pass) {
  case DNN_PASS_FWD:
    return l->kind != DNN_LAYER_INPUT;
  case DNN_PASS_BWD_DATA:
    return l->needs_input_grad && l->kind != DNN_LAYER_INPUT &&
           l->kind != DNN_LAYER_EMBEDDING;
  case DNN_PASS_BWD_WEIGHTS:
    return dnn__layer_has_weights(l);
  case DNN_PASS_COUNT:
    break;
  }
  return false;
}

double dnn__layer_macs_per_sample(const dnn_layer *l) {
  switch (l->kind) {
  case DNN_LAYER_CONV2D: {
    const dnn_conv_params *p = &l->p.conv;
    return elems(&l->out) * dnn__d(l->in.dim[0] / p->groups) *
           dnn__d(p->kernel_h * p->kernel_w);
  }
  case DNN_LAYER_FC:
    return elems(&l->out) * dnn__d(dnn__last_dim(&l->in));
  case DNN_LAYER_LSTM: {
    double T = dnn__d(l->in.dim[0]), F = dnn__d(l->in.dim[1]);
    double H = dnn__d(l->p.lstm.hidden);
    return T * 4 * H * (F + H);
  }
  case DNN_LAYER_ATTN_SCORES:
  case DNN_LAYER_ATTN_CONTEXT:
  case DNN_LAYER_NCE_LOSS: {
    dnn_cost c = {0};
    double macs = 0;
    dnn__seq_cost(l, DNN_PASS_FWD, 1, 1, &c, &macs);
    return macs;
  }
  default:
    return 0;
  }
}

/*
 * Gradient accumulation at fan-out points: backward runs in reverse index
 * order, so the last consumer of a tensor writes its gradient and every
 * other consumer adds into it (beta = 1 in cuDNN terms): one add and one
 * extra read per element. Returns the elements per sample to accumulate.
 */
static double accumulated_elems(const dnn_net *net, const dnn_layer *l) {
  double acc = 0;
  for (size_t k = 0; k < l->n_inputs; k++) {
    const dnn__layer *p = net->layers[l->inputs[k]];
    if (dnn__seq_disjoint_grad_input(l, k))
      continue;
    if (p->pub.consumers > 1 && p->last_consumer != l->index &&
        dnn__layer_needs_out_grad(&p->pub))
      acc += elems(&p->pub.out);
  }
  return acc;
}

static void add_accumulation(const dnn_net *net, const dnn_layer *l, double N,
                             double s, dnn_cost *c) {
  double a = N * accumulated_elems(net, l);
  if (a > 0) {
    c->flops += a;
    c->work += a;
    c->bytes_read += a * s;
    c->depth += 1;
  }
}

/* ---- Convolution (direct) and fully connected ---------------------------- */

void dnn__conv_direct_cost(const dnn_net *net, const dnn__layer *r,
                           dnn_pass pass, double N, double s, dnn_cost *c,
                           double *macs_out) {
  const dnn_layer *l = &r->pub;
  const dnn_conv_params *p = &l->p.conv;
  memset(c, 0, sizeof *c);
  *macs_out = 0;
  if (N <= 0 || !dnn__pass_runs(l, pass))
    return;
  double g = dnn__d(p->groups);
  double Cg = dnn__d(l->in.dim[0]) / g, Kg = dnn__d(p->out_channels) / g;
  double RS = dnn__d(p->kernel_h * p->kernel_w);
  double PQ = dnn__d(l->out.dim[1] * l->out.dim[2]);
  double X = N * elems(&l->in), Y = N * elems(&l->out);
  double K = dnn__d(p->out_channels), bias = p->bias ? K : 0;
  double wk = dnn__d(l->params) - bias; /* filter weights */
  double macs = Y * Cg * RS;
  double bias_ops = p->bias ? Y : 0; /* one add per output element */
  switch (pass) {
  case DNN_PASS_FWD:
    c->flops = 2 * macs + bias_ops;
    c->depth = 1 + clog2(Cg * RS) + (p->bias ? 1 : 0);
    c->bytes_read = (X + wk + bias) * s;
    c->bytes_written = Y * s;
    break;
  case DNN_PASS_BWD_DATA:
    c->flops = 2 * macs;
    c->depth = 1 + clog2(Kg * RS);
    c->bytes_read = (Y + wk) * s;
    c->bytes_written = X * s;
    break;
  case DNN_PASS_BWD_WEIGHTS:
    c->flops = 2 * macs + bias_ops;
    c->depth = 1 + clog2(N * PQ);
    c->bytes_read = (X + Y) * s;
    c->bytes_written = (wk + bias) * s;
    break;
  case DNN_PASS_COUNT:
    break;
  }
  c->work = c->flops - macs;
  if (pass == DNN_PASS_BWD_DATA)
    add_accumulation(net, l, N, s, c);
  *macs_out = macs;
}

static void fc_cost(const dnn_layer *l, dnn_pass pass, double N, double s,
                    dnn_cost *c, double *macs_out) {
  double F = dnn__d(dnn__last_dim(&l->in));
  double O = dnn__d(l->p.fc.out_features);
  double X = N * elems(&l->in), Y = N * elems(&l->out);
  double rows = Y / O; /* samples x positions */
  double bias = l->p.fc.bias ? O : 0, bias_ops = l->p.fc.bias ? Y : 0;
  double wk = F * O, macs = Y * F;
  switch (pass) {
  case DNN_PASS_FWD:
    c->flops = 2 * macs + bias_ops;
    c->depth = 1 + clog2(F) + (l->p.fc.bias ? 1 : 0);
    c->bytes_read = (X + wk + bias) * s;
    c->bytes_written = Y * s;
    break;
  case DNN_PASS_BWD_DATA:
    c->flops = 2 * macs;
    c->depth = 1 + clog2(O);
    c->bytes_read = (Y + wk) * s;
    c->bytes_written = X * s;
    break;
  default:
    c->flops = 2 * macs + bias_ops;
    c->depth = 1 + clog2(rows);
    c->bytes_read = (X + Y) * s;
    c->bytes_written = (wk + bias) * s;
    break;
  }
  *macs_out = macs;
}

/* ---- Pooling ------------------------------------------------------------- */

static void pool_cost(const dnn__layer *r, dnn_pass pass, double N, double s,
                      dnn_cost *c) {
  const dnn_layer *l = &r->pub;
  double X = N * elems(&l->in), Y = N * elems(&l->out);
  /* Window elements visited: one compare (max) or add (avg) each. */
  double E =
      N * dnn__d(l->in.dim[0]) * dnn__d(r->win_h_sum) * dnn__d(r->win_w_sum);
  c->flops = E;
  c->depth = 1 + clog2(dnn__d(r->win_h_max * r->win_w_max));
  bool max = l->kind == DNN_LAYER_MAXPOOL;
  if (pass == DNN_PASS_FWD) {
    c->bytes_read = X * s;
    c->bytes_written = Y * s;
  } else {
    /* Max: cuDNN's form re-finds the argmax from x and y, then routes dy. */
    c->bytes_read = (max ? X + 2 * Y : Y) * s;
    c->bytes_written = X * s;
  }
}

/* ---- Normalisation ------------------------------------------------------- */

/*
 * Per-element operation counts (docs/models.md §1.4):
 *   forward   7: mean 1, variance 3 (subtract, square, accumulate),
 *                normalise and scale 3 (subtract, multiply, add)
 *   weights   5: recompute x-hat 2, accumulate dy*x-hat 2, accumulate dy 1
 *   data (BN) 7: recompute x-hat 2, dy - mean(dy) 2, - x-hat*mean 2, scale 1
 *   data (LN) 11: the row sums first (6), then the same 5 as above
 */
enum {
  NORM_FWD_OPS = 7,
  NORM_WGRAD_OPS = 5,
  BN_DGRAD_OPS = 7,
  LN_DGRAD_OPS = 11
};

static void norm_cost(const dnn_layer *l, dnn_pass pass, double N, double s,
                      dnn_cost *c) {
  double X = N * elems(&l->in);
  double F = dnn__d(l->params / 2); /* channels (BN) or features (LN) */
  double st = DNN__STAT_BYTES;
  bool bn = l->kind == DNN_LAYER_BATCHNORM;
  /* Statistics: per channel over N*spatial values (BN), per row over F
   * values (LN); `groups` of statistics. */
  double red = bn ? X / F : F;
  double groups = bn ? F : X / F;
  switch (pass) {
  case DNN_PASS_FWD:
    c->flops = NORM_FWD_OPS * X;
    c->depth = 2 * clog2(red) + 5;
    c->bytes_read = (X + 2 * F) * s;
    c->bytes_written = X * s + 2 * groups * st;
    break;
  case DNN_PASS_BWD_WEIGHTS:
    c->flops = NORM_WGRAD_OPS * X;
    c->depth = clog2(X / F) + 3;
    c->bytes_read = 2 * X * s + 2 * groups * st;
    c->bytes_written = 2 * F * s;
    break;
  default:
    c->flops = (bn ? BN_DGRAD_OPS : LN_DGRAD_OPS) * X;
    c->depth = bn ? 5 : clog2(F) + 8;
    c->bytes_read = (2 * X + F) * s + 2 * groups * st;
    c->bytes_written = X * s;
    break;
  }
}

/* ---- Elementwise, softmax, copies ---------------------------------------- */

/* Per-element operations of each activation, forward and backward. A
 * transcendental (exp, erf, tanh) counts as one operation. */
static const double act_ops[DNN_ACT_COUNT][2] = {
    [DNN_ACT_RELU] = {1, 1},    /* max(x,0); dy where y > 0 */
    [DNN_ACT_GELU] = {5, 11},   /* x Phi(x), erf form; Phi + x phi */
    [DNN_ACT_TANH] = {1, 3},    /* tanh; dy (1 - y^2) */
    [DNN_ACT_SIGMOID] = {4, 3}, /* 1/(1+exp(-x)); dy y (1-y) */
};

static void act_cost(const dnn_layer *l, dnn_pass pass, double N, double s,
                     dnn_cost *c) {
  double X = N * elems(&l->in);
  double ops = act_ops[l->p.act.act][pass == DNN_PASS_FWD ? 0 : 1];
  c->flops = ops * X;
  c->depth = ops;
  c->bytes_read = (pass == DNN_PASS_FWD ? X : 2 * X) * s;
  c->bytes_written = X * s;
}

static void softmax_cost(const dnn_layer *l, dnn_pass pass, double N, double s,
                         dnn_cost *c) {
  double X = N * elems(&l->in), F = dnn__d(dnn__last_dim(&l->in));
  double rows = X / F;
  bool xent = l->kind == DNN_LAYER_SOFTMAX_XENT;
  double labels = xent ? rows * DNN__INDEX_BYTES : 0;
  if (pass == DNN_PASS_FWD) {
    /* max, subtract, exp, sum, divide; the loss adds log and accumulate per
     * row and a mean over the rows. */
    c->flops = 5 * X + (xent ? 2 * rows : 0);
    c->depth = 2 * clog2(F) + 3 + (xent ? 1 + clog2(rows) : 0);
    c->bytes_read = X * s + labels;
    c->bytes_written = X * s + (xent ? N * s : 0);
  } else if (xent) {
    /* dx = (p - onehot) * dloss / rows. */
    c->flops = 2 * X;
    c->depth = 2;
    c->bytes_read = X * s + labels + N * s;
    c->bytes_written = X * s;
  } else {
    /* dx = y (dy - sum(dy y)). */
    c->flops = 4 * X;
    c->depth = clog2(F) + 3;
    c->bytes_read = 2 * X * s;
    c->bytes_written = X * s;
  }
}

static void dropout_cost(const dnn_layer *l, dnn_pass pass, double N, double s,
                         dnn_cost *c) {
  double X = N * elems(&l->in), m = X * DNN__MASK_BYTES;
  if (pass == DNN_PASS_FWD) {
    c->flops = 3 * X; /* random number, compare, scale */
    c->depth = 3;
    c->bytes_read = X * s;
    c->bytes_written = X * s + m;
  } else {
    c->flops = 2 * X; /* select by mask, scale */
    c->depth = 2;
    c->bytes_read = X * s + m;
    c->bytes_written = X * s;
  }
}

static void add_cost(const dnn_net *net, const dnn_layer *l, dnn_pass pass,
                     double N, double s, dnn_cost *c) {
  double Y = N * elems(&l->out), n = dnn__d(l->n_inputs);
  if (pass == DNN_PASS_FWD) {
    c->flops = (n - 1) * Y;
    c->depth = clog2(n);
    c->bytes_read = n * Y * s;
    c->bytes_written = Y * s;
    return;
  }
  /* The gradient of every input is dy itself (aliased, free) unless it
   * must be added into an existing gradient. */
  double a = N * accumulated_elems(net, l);
  if (a > 0) {
    c->flops = a;
    c->depth = 1;
    c->bytes_read = 2 * a * s;
    c->bytes_written = a * s;
  }
}

static void embedding_cost(const dnn_layer *l, dnn_pass pass, double N,
                           double s, dnn_cost *c) {
  double T = dnn__d(l->in.dim[0]), Y = N * elems(&l->out);
  double ids = N * T * DNN__INDEX_BYTES;
  if (pass == DNN_PASS_FWD) { /* gather rows */
    c->work = Y;
    c->depth = 1;
    c->bytes_read = ids + Y * s;
    c->bytes_written = Y * s;
  } else { /* dense gradient: zero-fill the table, scatter-add the rows */
    c->flops = Y;
    c->depth = 1 + clog2(N * T);
    c->bytes_read = ids + Y * s;
    c->bytes_written = dnn__d(l->params) * s;
  }
}

/* ---- LSTM ---------------------------------------------------------------- */

/* Per hidden unit and time step: forward gates and cell (3 sigmoids of 4,
 * 2 tanh of 1, 4 products and sums) and their backward. */
enum { LSTM_FWD_OPS = 18, LSTM_BWD_OPS = 22 };

static void lstm_cost(const dnn_layer *l, dnn_pass pass, double N, double s,
                      dnn_cost *c, double *macs_out) {
  double T = dnn__d(l->in.dim[0]), F = dnn__d(l->in.dim[1]);
  double H = dnn__d(l->p.lstm.hidden), G = 4 * H;
  double NT = N * T, X = NT * F, Y = N * elems(&l->out);
  double P = dnn__d(l->params), reserve = 5 * NT * H; /* 4 gates + cell */
  /* The recurrence of the backward pass: dh(t-1) = W_h^T dgates(t). */
  double rec_macs = NT * G * H, rec_ops = LSTM_BWD_OPS * NT * H;
  double rec_depth = T * (clog2(G) + 9);
  double macs = 0;
  switch (pass) {
  case DNN_PASS_FWD:
    macs = NT * G * (F + H);
    c->flops = 2 * macs + NT * G + LSTM_FWD_OPS * NT * H;
    c->depth = T * (clog2(F + H) + 10);
    c->bytes_read = (X + P) * s;
    c->bytes_written = (Y + reserve) * s;
    break;
  case DNN_PASS_BWD_DATA:
    /* As cuDNN: the recurrence and dx; gate gradients go to bwd_weights. */
    macs = rec_macs + NT * G * F;
    c->flops = 2 * macs + rec_ops;
    c->depth = rec_depth + 1 + clog2(G);
    c->bytes_read = (Y + P + reserve) * s;
    c->bytes_written = (X + 4 * NT * H) * s;
    break;
  default:
    macs = NT * G * (F + H);
    c->flops = 2 * macs + NT * G;
    c->depth = 1 + clog2(NT);
    c->bytes_read = (X + NT * H + 4 * NT * H) * s;
    c->bytes_written = P * s;
    if (!l->needs_input_grad) {
      /* No bwd_data pass: the recurrence runs here. */
      macs += rec_macs;
      c->flops += 2 * rec_macs + rec_ops;
      c->depth += rec_depth;
      c->bytes_read += (Y + reserve) * s;
    }
    break;
  }
  *macs_out = macs;
}

/* ---- dnn_layer_cost ------------------------------------------------------ */

void dnn_layer_cost(const dnn_net *net, size_t i, dnn_pass pass, size_t batch,
                    dnn_dtype dtype, dnn_cost *out) {
  DNN_ASSERT((unsigned)pass < DNN_PASS_COUNT);
  const dnn__layer *r = dnn__net_rec(net, i);
  const dnn_layer *l = &r->pub;
  memset(out, 0, sizeof *out);
  if (batch == 0 || !dnn__pass_runs(l, pass))
    return;
  double N = dnn__d(batch), s = dnn__d(dnn_dtype_bytes(dtype));
  double macs = 0;
  switch (l->kind) {
  case DNN_LAYER_CONV2D:
    dnn__conv_direct_cost(net, r, pass, N, s, out, &macs);
    return; /* work and accumulation done */
  case DNN_LAYER_FC:
    fc_cost(l, pass, N, s, out, &macs);
    break;
  case DNN_LAYER_MAXPOOL:
  case DNN_LAYER_AVGPOOL:
  case DNN_LAYER_ADAPTIVE_AVGPOOL:
  case DNN_LAYER_GLOBAL_AVGPOOL:
    pool_cost(r, pass, N, s, out);
    break;
  case DNN_LAYER_BATCHNORM:
  case DNN_LAYER_LAYERNORM:
    norm_cost(l, pass, N, s, out);
    break;
  case DNN_LAYER_ACTIVATION:
    act_cost(l, pass, N, s, out);
    break;
  case DNN_LAYER_ADD:
    add_cost(net, l, pass, N, s, out);
    out->work = out->flops;
    return; /* accumulation done */
  case DNN_LAYER_CONCAT: {
    double Y = N * elems(&l->out);
    out->work = Y; /* copies */
    out->depth = 1;
    out->bytes_read = Y * s;
    out->bytes_written = Y * s;
    break;
  }
  case DNN_LAYER_DROPOUT:
    dropout_cost(l, pass, N, s, out);
    break;
  case DNN_LAYER_SOFTMAX:
  case DNN_LAYER_SOFTMAX_XENT:
    softmax_cost(l, pass, N, s, out);
    break;
  case DNN_LAYER_EMBEDDING:
    embedding_cost(l, pass, N, s, out);
    break;
  case DNN_LAYER_LSTM:
    lstm_cost(l, pass, N, s, out, &macs);
    break;
  case DNN_LAYER_ATTN_SCORES:
  case DNN_LAYER_ATTN_CONTEXT:
  case DNN_LAYER_NCE_LOSS:
  case DNN_LAYER_SLICE:
    dnn__seq_cost(l, pass, N, s, out, &macs);
    break;
  case DNN_LAYER_INPUT:
  case DNN_LAYER_FLATTEN: /* a view */
  case DNN_LAYER_KIND_COUNT:
    break;
  }
  if (out->flops > 0)
    out->work = out->flops - macs;
  if (pass == DNN_PASS_BWD_DATA)
    add_accumulation(net, l, N, s, out);
}

/* ---- Activation memory --------------------------------------------------- */

/* true when a layer's own backward reads its output (and runs). */
static bool reads_own_output(const dnn_layer *l) {
  if (!l->needs_input_grad)
    return false;
  switch (l->kind) {
  case DNN_LAYER_ACTIVATION:
    return l->p.act.act != DNN_ACT_GELU;
  case DNN_LAYER_SOFTMAX:
  case DNN_LAYER_SOFTMAX_XENT:
  case DNN_LAYER_MAXPOOL:
    return true;
  default:
    return false;
  }
}

double dnn_layer_activation_bytes(const dnn_net *net, size_t i, size_t batch,
                                  dnn_dtype dtype) {
  const dnn__layer *r = dnn__net_rec(net, i);
  const dnn_layer *l = &r->pub;
  double N = dnn__d(batch);
  double s = dnn__d(dnn_dtype_bytes(dtype));
  double bytes = 0;
  if (l->kind == DNN_LAYER_FLATTEN)
    return 0; /* a view: its producer keeps the tensor */
  if (r->out_needed || reads_own_output(l)) {
    /* softmax_xent keeps its probabilities, not its one-value output. */
    const dnn_shape *kept =
        l->kind == DNN_LAYER_SOFTMAX_XENT ? &l->in : &l->out;
    bytes += N * elems(kept) * dnn__elem_bytes(kept, dtype);
  }
  bool backward = dnn__pass_runs(l, DNN_PASS_BWD_DATA) ||
                  dnn__pass_runs(l, DNN_PASS_BWD_WEIGHTS);
  if (!backward)
    return bytes;
  switch (l->kind) {
  case DNN_LAYER_DROPOUT:
    bytes += N * elems(&l->out) * DNN__MASK_BYTES;
    break;
  case DNN_LAYER_BATCHNORM: /* mean and inverse std per channel */
    bytes += dnn__d(l->params) * DNN__STAT_BYTES;
    break;
  case DNN_LAYER_LAYERNORM: /* mean and inverse std per row */
    bytes += 2 * N * elems(&l->in) / dnn__d(l->params / 2) * DNN__STAT_BYTES;
    break;
  case DNN_LAYER_LSTM: /* 4 gates + cell state per time step */
    bytes += 5 * N * dnn__d(l->in.dim[0] * l->p.lstm.hidden) * s;
    break;
  case DNN_LAYER_NCE_LOSS: /* its sigmoids, per row and class */
    bytes += N * dnn__seq_kept_elems(l) * s;
    break;
  default:
    break;
  }
  return bytes;
}

/* ---- Totals -------------------------------------------------------------- */

void dnn_net_totals_get(const dnn_net *net, size_t batch, dnn_dtype dtype,
                        dnn_net_totals *out) {
  memset(out, 0, sizeof *out);
  out->layers = net->n;
  double N = dnn__d(batch);
  for (size_t i = 0; i < net->n; i++) {
    const dnn_layer *l = &net->layers[i]->pub;
    out->params += l->params;
    out->frozen_params += l->frozen_params;
    for (int p = 0; p < DNN_PASS_COUNT; p++) {
      dnn_cost c;
      dnn_layer_cost(net, i, (dnn_pass)p, batch, dtype, &c);
      out->flops[p] += c.flops;
      out->bytes[p] += c.bytes_read + c.bytes_written;
    }
    if (l->kind == DNN_LAYER_CONV2D || l->kind == DNN_LAYER_FC)
      out->fwd_macs_conv_fc += N * dnn__layer_macs_per_sample(l);
    out->activation_bytes += dnn_layer_activation_bytes(net, i, batch, dtype);
    double ob = N * elems(&l->out) * dnn__elem_bytes(&l->out, dtype);
    if (ob > out->max_layer_activation_bytes)
      out->max_layer_activation_bytes = ob;
  }
}
