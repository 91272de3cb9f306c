/*
 * The network IR: building a DAG of layers in topological order, shape
 * inference and parameter counts for every layer kind, name lookup and
 * layer signatures.
 *
 * Invariant: dnn_net_add validates everything and allocates everything
 * before it changes the network, so a failed add leaves the network as it
 * was (arena memory it took is simply unused). Shapes are per sample; the
 * batch is implicit. Output sizes follow PyTorch's documented formulas:
 *   conv2d  out = floor((H + 2p - d(k-1) - 1) / s) + 1
 *   pooling out = floor or ceil((H + 2p - k) / s) + 1, and in ceil mode the
 *           last window must start inside the input or its left padding
 *   adaptive_avgpool window i = [floor(i H / o), ceil((i+1) H / o))
 * LSTM parameters use one bias vector per gate (Keras; REFERENCE §6.3):
 * 4 (H (F + H) + H). docs/models.md §1 derives every rule. The sequence-
 * model kinds (attention, NCE, slice) are inferred in model/seq.c
 * (docs/models.md §11-§12).
 */
#include "internal.h"

#include <stdarg.h>
#include <stdint.h>
#include <string.h>

/* ---- Small helpers --------------------------------------------------------
 */

size_t dnn_shape_elems(const dnn_shape *s) {
  size_t n = 1;
  for (size_t i = 0; i < s->rank; i++)
    n *= s->dim[i];
  return s->rank ? n : 0;
}

size_t dnn__last_dim(const dnn_shape *s) {
  return s->rank == 3 ? dnn_shape_elems(s) : s->dim[s->rank - 1];
}

/* *acc *= x; false on overflow. */
static bool mulz(size_t *acc, size_t x) {
  return dnn__mul_ok(*acc, x, acc);
}

/* *acc += x; false on overflow. */
static bool addz(size_t *acc, size_t x) {
  if (x > SIZE_MAX - *acc)
    return false;
  *acc += x;
  return true;
}

/* "(3, 224, 224)" or "(128 tokens)". */
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

static bool shape_equal(const dnn_shape *a, const dnn_shape *b) {
  if (a->rank != b->rank || a->tokens != b->tokens)
    return false;
  for (size_t i = 0; i < a->rank; i++)
    if (a->dim[i] != b->dim[i])
      return false;
  return true;
}

static uint64_t hash_name(const char *s) {
  uint64_t h = 14695981039346656037u; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211u;
  return h;
}

dnn_status dnn__layer_fail(dnn_error *err, const char *file, int line,
                           const dnn_layer_spec *sp, const char *fmt, ...) {
  char what[DNN_ERROR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return dnn__fail(err, DNN_EINVAL, file, line, "layer '%s' (%s): %s",
                   sp->name ? sp->name : "", dnn_layer_kind_name(sp->kind),
                   what);
}

/* ---- Allocation and queries ------------------------------------------------
 */

dnn_status dnn_net_alloc(const char *name, dnn_net **out, dnn_error *err) {
  *out = NULL;
  dnn_net *net = dnn_calloc(1, sizeof *net);
  if (net == NULL)
    goto fail;
  dnn__arena_init(&net->arena, 32768);
  net->name = dnn__arena_strdup(&net->arena, name ? name : "");
  if (net->name == NULL)
    goto fail;
  *out = net;
  return DNN_OK;
fail:
  dnn_net_free(net);
  return DNN_FAIL(err, DNN_ENOMEM, "network '%s': out of memory",
                  name ? name : "");
}

void dnn_net_free(dnn_net *net) {
  if (net == NULL)
    return;
  dnn__arena_release(&net->arena);
  dnn_free(net);
}

const char *dnn_net_name(const dnn_net *net) {
  return net->name;
}

size_t dnn_net_layer_count(const dnn_net *net) {
  return net->n;
}

const dnn_layer *dnn_net_layer(const dnn_net *net, size_t i) {
  return &dnn__net_rec(net, i)->pub;
}

dnn_status dnn_net_find(const dnn_net *net, const char *name, size_t *index) {
  if (net->hash_cap == 0)
    return DNN_ENOTFOUND;
  size_t mask = net->hash_cap - 1;
  for (size_t h = (size_t)hash_name(name) & mask;; h = (h + 1) & mask) {
    size_t slot = net->hash[h];
    if (slot == 0)
      return DNN_ENOTFOUND;
    if (strcmp(net->layers[slot - 1]->pub.name, name) == 0) {
      *index = slot - 1;
      return DNN_OK;
    }
  }
}

static void hash_insert(size_t *table, size_t cap, const char *name,
                        size_t index) {
  size_t mask = cap - 1;
  size_t h = (size_t)hash_name(name) & mask;
  while (table[h] != 0)
    h = (h + 1) & mask;
  table[h] = index + 1;
}

/* ---- Default specs ----------------------------------------------------------
 */

dnn_layer_spec dnn_layer_default_spec(dnn_layer_kind kind) {
  dnn_layer_spec sp;
  memset(&sp, 0, sizeof sp);
  sp.kind = kind;
  switch (kind) {
  case DNN_LAYER_CONV2D:
    sp.p.conv = (dnn_conv_params){.kernel_h = 1,
                                  .kernel_w = 1,
                                  .stride_h = 1,
                                  .stride_w = 1,
                                  .dilation_h = 1,
                                  .dilation_w = 1,
                                  .groups = 1,
                                  .bias = true};
    break;
  case DNN_LAYER_MAXPOOL:
  case DNN_LAYER_AVGPOOL:
    sp.p.pool.kernel_h = sp.p.pool.kernel_w = 2;
    break;
  case DNN_LAYER_ADAPTIVE_AVGPOOL:
    sp.p.pool.out_h = sp.p.pool.out_w = 1;
    break;
  case DNN_LAYER_FC:
    sp.p.fc.bias = true;
    break;
  case DNN_LAYER_ACTIVATION:
    sp.p.act.act = DNN_ACT_RELU;
    break;
  case DNN_LAYER_DROPOUT:
    sp.p.dropout.p = 0.5;
    break;
  default:
    break;
  }
  return sp;
}

/* ---- Shape inference
 * --------------------------------------------------------- */

/* Inputs of the layer being added (resolved records). */
typedef struct add_ctx {
  const dnn_layer_spec *sp;
  const dnn__layer *in[DNN_LAYER_MAX_INPUTS];
  dnn__layer rec; /* the layer being built */
  dnn_error *err;
} add_ctx;

static dnn_status need_image(add_ctx *c) {
  const dnn_layer_spec *sp = c->sp;
  dnn_error *err = c->err;
  const dnn_shape *s = &c->rec.pub.in;
  char b[64];
  if (s->rank != 3 || s->tokens)
    return LFAIL("needs an image (C, H, W) input, got %s from '%s'",
                 shape_str(s, b, sizeof b), c->in[0]->pub.name);
  return DNN_OK;
}

static dnn_status need_values(add_ctx *c) {
  const dnn_layer_spec *sp = c->sp;
  dnn_error *err = c->err;
  char b[64];
  for (size_t k = 0; k < sp->n_inputs; k++)
    if (c->in[k]->pub.out.tokens)
      return LFAIL("cannot act on token ids %s from '%s' (add an embedding "
                   "layer first)",
                   shape_str(&c->in[k]->pub.out, b, sizeof b),
                   c->in[k]->pub.name);
  return DNN_OK;
}

static dnn_status infer_input(add_ctx *c) {
  const dnn_layer_spec *sp = c->sp;
  dnn_error *err = c->err;
  const dnn_shape *s = &sp->input_shape;
  if (s->rank < 1 || s->rank > DNN_SHAPE_MAX_RANK)
    return LFAIL("input shape needs 1 to %d dimensions, got %zu",
                 DNN_SHAPE_MAX_RANK, s->rank);
  size_t n = 1;
  for (size_t i = 0; i < s->rank; i++) {
    if (s->dim[i] == 0)
      return LFAIL("input dimension %zu is 0", i);
    if (!mulz(&n, s->dim[i]))
      return LFAIL("input shape too large");
  }
  if (s->tokens && s->rank != 1)
    return LFAIL("token ids must be rank 1 (T), got rank %zu", s->rank);
  c->rec.pub.in = *s;
  c->rec.pub.out = *s;
  for (size_t i = s->rank; i < DNN_SHAPE_MAX_RANK; i++)
    c->rec.pub.in.dim[i] = c->rec.pub.out.dim[i] = 0;
  return DNN_OK;
}

static dnn_status infer_conv(add_ctx *c) {
  const dnn_layer_spec *sp = c->sp;
  dnn_error *err = c->err;
  dnn_status st = need_image(c);
  if (st)
    return st;
  const dnn_conv_params *p = &sp->p.conv;
  const dnn_shape *in = &c->rec.pub.in;
  size_t C = in->dim[0], H = in->dim[1], W = in->dim[2];
  if (p->out_channels == 0)
    return LFAIL("out_channels must be >= 1");
  if (p->kernel_h == 0 || p->kernel_w == 0)
    return LFAIL("kernel must be >= 1, got %zux%zu", p->kernel_h, p->kernel_w);
  if (p->stride_h == 0 || p->stride_w == 0)
    return LFAIL("stride must be >= 1, got %zux%zu", p->stride_h, p->stride_w);
  if (p->dilation_h == 0 || p->dilation_w == 0)
    return LFAIL("dilation must be >= 1, got %zux%zu", p->dilation_h,
                 p->dilation_w);
  if (p->groups == 0)
    return LFAIL("groups must be >= 1");
  if (C % p->groups != 0 || p->out_channels % p->groups != 0)
    return LFAIL("groups %zu must divide input channels %zu and output "
                 "channels %zu",
                 p->groups, C, p->out_channels);
  size_t eh = 0, ew = 0, ph = H, pw = W;
  bool ok = p->pad_h < SIZE_MAX / 4 && p->pad_w < SIZE_MAX / 4 &&
            dnn__mul_ok(p->dilation_h, p->kernel_h - 1, &eh) &&
            dnn__mul_ok(p->dilation_w, p->kernel_w - 1, &ew) && addz(&eh, 1) &&
            addz(&ew, 1) && addz(&ph, 2 * p->pad_h) && addz(&pw, 2 * p->pad_w);
  if (!ok)
    return LFAIL("kernel, dilation or padding too large");
  if (eh > ph || ew > pw)
    return LFAIL("kernel %zux%zu (dilated %zux%zu) is larger than the padded "
                 "input %zux%zu",
                 p->kernel_h, p->kernel_w, eh, ew, ph, pw);
  dnn_shape *out = &c->rec.pub.out;
  *out = (dnn_shape){.rank = 3,
                     .dim = {p->out_channels, (ph - eh) / p->stride_h + 1,
                             (pw - ew) / p->stride_w + 1}};
  size_t params = p->out_channels;
  if (!mulz(&params, C / p->groups) || !mulz(&params, p->kernel_h) ||
      !mulz(&params, p->kernel_w) ||
      !addz(&params, p->bias ? p->out_channels : 0))
    return LFAIL("too many parameters");
  c->rec.pub.params = params;
  c->rec.pub.p.conv = *p;
  return DNN_OK;
}

/* One pooled dimension of size n (PyTorch's rule, see the file header). */
static size_t pool_out(size_t n, size_t k, size_t s, size_t pad, bool ceil) {
  size_t span = n + 2 * pad - k;
  size_t o = (ceil ? dnn__div_ceil(span, s) : span / s) + 1;
  if (ceil && (o - 1) * s >= n + pad)
    o--;
  return o;
}

static dnn_status infer_pool(add_ctx *c) {
  const dnn_layer_spec *sp = c->sp;
  dnn_error *err = c->err;
  dnn_status st = need_image(c);
  if (st)
    return st;
  dnn_pool_params p = sp->p.pool;
  const dnn_shape *in = &c->rec.pub.in;
  size_t C = in->dim[0], H = in->dim[1], W = in->dim[2];
  if (p.kernel_h == 0 || p.kernel_w == 0)
    return LFAIL("kernel must be >= 1, got %zux%zu", p.kernel_h, p.kernel_w);
  if (p.stride_h == 0)
    p.stride_h = p.kernel_h;
  if (p.stride_w == 0)
    p.stride_w = p.kernel_w;
  if (p.pad_h > p.kernel_h / 2 || p.pad_w > p.kernel_w / 2)
    return LFAIL("padding %zux%zu must be at most half the kernel %zux%zu",
                 p.pad_h, p.pad_w, p.kernel_h, p.kernel_w);
  if (p.pad_h > (SIZE_MAX - H) / 2 || p.pad_w > (SIZE_MAX - W) / 2)
    return LFAIL("padding %zux%zu too large", p.pad_h, p.pad_w);
  if (p.kernel_h > H + 2 * p.pad_h || p.kernel_w > W + 2 * p.pad_w)
    return LFAIL("kernel %zux%zu is larger than the padded input %zux%zu",
                 p.kernel_h, p.kernel_w, H + 2 * p.pad_h, W + 2 * p.pad_w);
  size_t oh = pool_out(H, p.kernel_h, p.stride_h, p.pad_h, p.ceil_mode);
  size_t ow = pool_out(W, p.kernel_w, p.stride_w, p.pad_w, p.ceil_mode);
  c->rec.pub.out = (dnn_shape){.rank = 3, .dim = {C, oh, ow}};
  p.out_h = oh;
  p.out_w = ow;
  c->rec.pub.p.pool = p;
  size_t kk;
  if (!dnn__mul_ok(oh, p.kernel_h, &c->rec.win_h_sum) ||
      !dnn__mul_ok(ow, p.kernel_w, &c->rec.win_w_sum) ||
      !dnn__mul_ok(p.kernel_h, p.kernel_w, &kk))
    return LFAIL("kernel %zux%zu too large", p.kernel_h, p.kernel_w);
  c->rec.win_h_max = p.kernel_h;
  c->rec.win_w_max = p.kernel_w;
  return DNN_OK;
}

/* Window extents of one adaptive dimension: their sum and maximum. */
static size_t gcd(size_t a, size_t b) {
  while (b) {
    size_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/*
 * In closed form, since o may be huge (a loop over the windows hung on
 * output sizes of 2^40): window i has length ceil((r_i + n) / o) with
 * r_i = i n mod o, and the r_i run over the multiples of g = gcd(n, o)
 * below o, so the lengths sum to n + o - g (docs/robustness.md) and the
 * longest is ceil((n + o - g) / o). The caller ensures o (n + 1) fits.
 */
static void adaptive_windows(size_t n, size_t o, size_t *sum, size_t *max) {
  size_t g = gcd(n, o);
  *sum = n + o - g;
  *max = dnn__div_ceil(n + o - g, o);
}

static dnn_status infer_adaptive(add_ctx *c) {
  const dnn_layer_spec *sp = c->sp;
  dnn_error *err = c->err;
  dnn_status st = need_image(c);
  if (st)
    return st;
  const dnn_pool_params *p = &sp->p.pool;
  const dnn_shape *in = &c->rec.pub.in;
  if (p->out_h == 0 || p->out_w == 0)
    return LFAIL("output size must be >= 1, got %zux%zu", p->out_h, p->out_w);
  /* Outputs larger than the input are allowed (windows then repeat, as in
   * torchvision's AlexNet on small images); only overflow is refused. */
  size_t elems = in->dim[0];
  if (p->out_h >= SIZE_MAX / (in->dim[1] + 1) ||
      p->out_w >= SIZE_MAX / (in->dim[2] + 1) || !mulz(&elems, p->out_h) ||
      !mulz(&elems, p->out_w))
    return LFAIL("output size %zux%zu too large", p->out_h, p->out_w);
  c->rec.pub.out =
      (dnn_shape){.rank = 3, .dim = {in->dim[0], p->out_h, p->out_w}};
  c->rec.pub.p.pool = (dnn_pool_params){.out_h = p->out_h, .out_w = p->out_w};
  adaptive_windows(in->dim[1], p->out_h, &c->rec.win_h_sum, &c->rec.win_h_max);
  adaptive_windows(in->dim[2], p->out_w, &c->rec.win_w_sum, &c->rec.win_w_max);
  return DNN_OK;
}

static dnn_status infer_global_pool(add_ctx *c) {
  dnn_status st = need_image(c);
  if (st)
    return st;
  const dnn_shape *in = &c->rec.pub.in;
  c->rec.pub.out = (dnn_shape){.rank = 1, .dim = {in->dim[0]}};
  c->rec.pub.p.pool = (dnn_pool_params){.kernel_h = in->dim[1],
                                        .kernel_w = in->dim[2],
                                        .stride_h = 1,
                                        .stride_w = 1,
                                        .out_h = 1,
                                        .out_w = 1};
  c->rec.win_h_sum = c->rec.win_h_max = in->dim[1];
  c->rec.win_w_sum = c->rec.win_w_max = in->dim[2];
  return DNN_OK;
}

static dnn_status infer_fc(add_ctx *c) {
  const dnn_layer_spec *sp = c->sp;
  dnn_error *err = c->err;
  dnn_status st = need_values(c);
  if (st)
    return st;
  const dnn_fc_params *p = &sp->p.fc;
  if (p->out_features == 0)
    return LFAIL("out_features must be >= 1");
  const dnn_shape *in = &c->rec.pub.in;
  size_t F = dnn__last_dim(in);
  dnn_shape *out = &c->rec.pub.out;
  if (in->rank == 2)
    *out = (dnn_shape){.rank = 2, .dim = {in->dim[0], p->out_features}};
  else
    *out = (dnn_shape){.rank = 1, .dim = {p->out_features}};
  size_t params = F;
  if (!mulz(&params, p->out_features) ||
      !addz(&params, p->bias ? p->out_features : 0))
    return LFAIL("too many parameters");
  /* Tied weights are counted by the layer that owns them. */
  c->rec.pub.params = p->tied ? (p->bias ? p->out_features : 0) : params;
  c->rec.pub.p.fc = *p;
  return DNN_OK;
}

static dnn_status infer_norm(add_ctx *c) {
  const dnn_layer_spec *sp = c->sp;
  dnn_status st = need_values(c);
  if (st)
    return st;
  const dnn_shape *in = &c->rec.pub.in;
  c->rec.pub.out = *in;
  /* batchnorm normalises channels (dim 0 of an image, the last dim of a
   * vector or sequence, as Keras); layernorm the last dimension. */
  size_t ch = sp->kind == DNN_LAYER_BATCHNORM && in->rank == 3
                  ? in->dim[0]
                  : in->dim[in->rank - 1];
  c->rec.pub.params = 2 * ch;
  /* batchnorm also holds its running mean and variance (untrained). */
  if (sp->kind == DNN_LAYER_BATCHNORM)
    c->rec.pub.frozen_params = 2 * ch;
  return DNN_OK;
}

static dnn_status infer_eltwise(add_ctx *c) {
  const dnn_layer_spec *sp = c->sp;
  dnn_error *err = c->err;
  dnn_status st = need_values(c);
  if (st)
    return st;
  c->rec.pub.out = c->rec.pub.in;
  if (sp->kind == DNN_LAYER_ACTIVATION) {
    if ((unsigned)sp->p.act.act >= DNN_ACT_COUNT)
      return LFAIL("unknown activation %d", (int)sp->p.act.act);
    c->rec.pub.p.act = sp->p.act;
  } else if (sp->kind == DNN_LAYER_DROPOUT) {
    double p = sp->p.dropout.p;
    if (!(p >= 0 && p < 1))
      return LFAIL("drop probability p = %g must be in [0, 1)", p);
    c->rec.pub.p.dropout = sp->p.dropout;
  }
  return DNN_OK;
}

static dnn_status infer_add(add_ctx *c) {
  const dnn_layer_spec *sp = c->sp;
  dnn_error *err = c->err;
  dnn_status st = need_values(c);
  if (st)
    return st;
  char a[64], b[64];
  for (size_t k = 1; k < sp->n_inputs; k++)
    if (!shape_equal(&c->in[k]->pub.out, &c->in[0]->pub.out))
      return LFAIL(
          "input '%s' has shape %s but '%s' has %s; add needs equal "
          "shapes",
          c->in[k]->pub.name, shape_str(&c->in[k]->pub.out, a, sizeof a),
          c->in[0]->pub.name, shape_str(&c->in[0]->pub.out, b, sizeof b));
  c->rec.pub.out = c->rec.pub.in;
  return DNN_OK;
}

static dnn_status infer_concat(add_ctx *c) {
  const dnn_layer_spec *sp = c->sp;
  dnn_error *err = c->err;
  dnn_status st = need_values(c);
  if (st)
    return st;
  const dnn_shape *s0 = &c->in[0]->pub.out;
  size_t axis = sp->p.concat.axis;
  if (axis >= s0->rank)
    return LFAIL("axis %zu out of range for rank-%zu inputs", axis, s0->rank);
  dnn_shape out = *s0;
  char a[64], b[64];
  for (size_t k = 1; k < sp->n_inputs; k++) {
    const dnn_shape *s = &c->in[k]->pub.out;
    bool same = s->rank == s0->rank;
    for (size_t d = 0; same && d < s->rank; d++)
      same = d == axis || s->dim[d] == s0->dim[d];
    if (!same)
      return LFAIL("input '%s' has shape %s but '%s' has %s; concat along "
                   "axis %zu needs the other dimensions equal",
                   c->in[k]->pub.name, shape_str(s, a, sizeof a),
                   c->in[0]->pub.name, shape_str(s0, b, sizeof b), axis);
    if (!addz(&out.dim[axis], s->dim[axis]))
      return LFAIL("output too large");
  }
  c->rec.pub.out = out;
  c->rec.pub.p.concat = sp->p.concat;
  return DNN_OK;
}

static dnn_status infer_flatten(add_ctx *c) {
  const dnn_shape *in = &c->rec.pub.in;
  c->rec.pub.out = (dnn_shape){
      .rank = 1, .dim = {dnn_shape_elems(in)}, .tokens = in->tokens};
  return DNN_OK;
}

static dnn_status infer_softmax(add_ctx *c) {
  dnn_status st = need_values(c);
  if (st)
    return st;
  if (c->sp->kind == DNN_LAYER_SOFTMAX)
    c->rec.pub.out = c->rec.pub.in;
  else
    c->rec.pub.out = (dnn_shape){.rank = 1, .dim = {1}}; /* the loss */
  return DNN_OK;
}

static dnn_status infer_embedding(add_ctx *c) {
  const dnn_layer_spec *sp = c->sp;
  dnn_error *err = c->err;
  const dnn_shape *in = &c->rec.pub.in;
  char b[64];
  if (!in->tokens)
    return LFAIL("needs token ids (T) as input, got %s from '%s'",
                 shape_str(in, b, sizeof b), c->in[0]->pub.name);
  const dnn_embedding_params *p = &sp->p.embedding;
  if (p->vocab == 0 || p->dim == 0)
    return LFAIL("vocab (%zu) and dim (%zu) must be >= 1", p->vocab, p->dim);
  size_t params = p->vocab, elems = in->dim[0];
  if (!mulz(&params, p->dim) || !mulz(&elems, p->dim))
    return LFAIL("too many parameters");
  c->rec.pub.out = (dnn_shape){.rank = 2, .dim = {in->dim[0], p->dim}};
  c->rec.pub.params = p->frozen ? 0 : params;
  c->rec.pub.frozen_params = p->frozen ? params : 0;
  c->rec.pub.p.embedding = *p;
  return DNN_OK;
}

static dnn_status infer_lstm(add_ctx *c) {
  const dnn_layer_spec *sp = c->sp;
  dnn_error *err = c->err;
  const dnn_shape *in = &c->rec.pub.in;
  char b[64];
  if (in->rank != 2 || in->tokens)
    return LFAIL("needs a sequence (T, F) as input, got %s from '%s'",
                 shape_str(in, b, sizeof b), c->in[0]->pub.name);
  const dnn_lstm_params *p = &sp->p.lstm;
  if (p->hidden == 0)
    return LFAIL("hidden must be >= 1");
  size_t F = in->dim[1], H = p->hidden;
  /* 4 gates, each H x (F + H) weights and one bias vector of H. */
  size_t params = F;
  if (!addz(&params, H) || !mulz(&params, H) || !addz(&params, H) ||
      !mulz(&params, 4) || H > SIZE_MAX / 8 / in->dim[0])
    return LFAIL("too many parameters");
  c->rec.pub.out = p->return_sequences
                       ? (dnn_shape){.rank = 2, .dim = {in->dim[0], H}}
                       : (dnn_shape){.rank = 1, .dim = {H}};
  c->rec.pub.params = params;
  c->rec.pub.p.lstm = *p;
  return DNN_OK;
}

/* Required number of inputs: exactly `lo` when hi == lo, else [lo, hi]. */
static void input_range(dnn_layer_kind k, size_t *lo, size_t *hi) {
  *lo = *hi = 1;
  if (k == DNN_LAYER_INPUT)
    *lo = *hi = 0;
  else if (k == DNN_LAYER_ADD || k == DNN_LAYER_CONCAT) {
    *lo = 2;
    *hi = DNN_LAYER_MAX_INPUTS;
  } else if (k == DNN_LAYER_ATTN_CONTEXT)
    *lo = *hi = 2; /* probabilities, QKV */
}

static dnn_status infer(add_ctx *c) {
  switch (c->sp->kind) {
  case DNN_LAYER_INPUT:
    return infer_input(c);
  case DNN_LAYER_CONV2D:
    return infer_conv(c);
  case DNN_LAYER_MAXPOOL:
  case DNN_LAYER_AVGPOOL:
    return infer_pool(c);
  case DNN_LAYER_ADAPTIVE_AVGPOOL:
    return infer_adaptive(c);
  case DNN_LAYER_GLOBAL_AVGPOOL:
    return infer_global_pool(c);
  case DNN_LAYER_FC:
    return infer_fc(c);
  case DNN_LAYER_BATCHNORM:
  case DNN_LAYER_LAYERNORM:
    return infer_norm(c);
  case DNN_LAYER_ACTIVATION:
  case DNN_LAYER_DROPOUT:
    return infer_eltwise(c);
  case DNN_LAYER_ADD:
    return infer_add(c);
  case DNN_LAYER_CONCAT:
    return infer_concat(c);
  case DNN_LAYER_FLATTEN:
    return infer_flatten(c);
  case DNN_LAYER_SOFTMAX:
  case DNN_LAYER_SOFTMAX_XENT:
    return infer_softmax(c);
  case DNN_LAYER_EMBEDDING:
    return infer_embedding(c);
  case DNN_LAYER_LSTM:
    return infer_lstm(c);
  case DNN_LAYER_ATTN_SCORES:
  case DNN_LAYER_ATTN_CONTEXT:
  case DNN_LAYER_NCE_LOSS:
  case DNN_LAYER_SLICE: {
    dnn_status st = need_values(c);
    return st ? st : dnn__seq_infer(c->sp, c->in, &c->rec, c->err);
  }
  case DNN_LAYER_KIND_COUNT:
    break;
  }
  const dnn_layer_spec *sp = c->sp;
  dnn_error *err = c->err;
  return LFAIL("unknown layer kind %d", (int)sp->kind);
}

/* true when layer `l`'s backward reads its input tensor (so its producer
 * keeps its output alive). Only passes that run count. */
static bool reads_input_in_backward(const dnn_layer *l) {
  switch (l->kind) {
  case DNN_LAYER_CONV2D:
  case DNN_LAYER_FC:
  case DNN_LAYER_BATCHNORM:
  case DNN_LAYER_LAYERNORM:
  case DNN_LAYER_LSTM:
  case DNN_LAYER_EMBEDDING: /* the ids, for the weight gradient */
  case DNN_LAYER_NCE_LOSS:
    return dnn__layer_has_weights(l);
  case DNN_LAYER_MAXPOOL:
  case DNN_LAYER_ATTN_SCORES:  /* Q and K */
  case DNN_LAYER_ATTN_CONTEXT: /* the probabilities and V */
    return l->needs_input_grad;
  case DNN_LAYER_ACTIVATION:
    return l->p.act.act == DNN_ACT_GELU && l->needs_input_grad;
  default:
    return false;
  }
}

/* ---- dnn_net_add
 * --------------------------------------------------------------- */

dnn_status dnn_net_add(dnn_net *net, const dnn_layer_spec *spec, size_t *index,
                       dnn_error *err) {
  const dnn_layer_spec *sp = spec;
  if (sp->name == NULL || sp->name[0] == '\0')
    return LFAIL("a layer needs a name");
  if ((unsigned)sp->kind >= DNN_LAYER_KIND_COUNT)
    return LFAIL("unknown layer kind %d", (int)sp->kind);
  if ((unsigned)sp->tp >= DNN_TP_ROLE_COUNT)
    return LFAIL("unknown tensor-parallel role %d", (int)sp->tp);
  size_t dup;
  if (dnn_net_find(net, sp->name, &dup) == DNN_OK)
    return LFAIL("duplicate name (layer %zu already has it)", dup);
  size_t lo, hi;
  input_range(sp->kind, &lo, &hi);
  if (sp->n_inputs < lo || sp->n_inputs > hi) {
    if (lo == hi)
      return LFAIL("takes %zu input%s, got %zu", lo, lo == 1 ? "" : "s",
                   sp->n_inputs);
    return LFAIL("takes %zu to %zu inputs, got %zu", lo, hi, sp->n_inputs);
  }

  add_ctx c;
  memset(&c, 0, sizeof c);
  c.sp = sp;
  c.err = err;
  for (size_t k = 0; k < sp->n_inputs; k++) {
    size_t j;
    if (sp->inputs[k] == NULL || dnn_net_find(net, sp->inputs[k], &j)) {
      const char *name = sp->inputs[k] ? sp->inputs[k] : "(null)";
      const char *near = NULL;
      unsigned best = (unsigned)(strlen(name) / 3 > 2 ? strlen(name) / 3 : 2);
      for (size_t i = 0; i < net->n; i++) {
        unsigned d = dnn_edit_distance(name, net->layers[i]->pub.name);
        if (d <= best) {
          best = d;
          near = net->layers[i]->pub.name;
        }
      }
      return LFAIL("unknown input '%s'%s%s%s", name,
                   near ? " (did you mean '" : "", near ? near : "",
                   near ? "'?)" : "");
    }
    c.in[k] = net->layers[j];
    c.rec.pub.inputs[k] = j;
  }
  c.rec.pub.kind = sp->kind;
  c.rec.pub.index = net->n;
  c.rec.pub.n_inputs = sp->n_inputs;
  c.rec.pub.tp = sp->tp;
  c.rec.last_consumer = SIZE_MAX;
  if (sp->n_inputs > 0)
    c.rec.pub.in = c.in[0]->pub.out;
  for (size_t k = 0; k < sp->n_inputs; k++)
    c.rec.pub.needs_input_grad =
        c.rec.pub.needs_input_grad || dnn__layer_needs_out_grad(&c.in[k]->pub);
  dnn_status st = infer(&c);
  if (st)
    return st;
  /* Costs multiply the output's dimensions in size_t: refuse a shape whose
   * element count would wrap (the kinds' own checks bound their
   * parameters, not always their outputs). */
  size_t out_elems = 1;
  for (size_t d = 0; d < c.rec.pub.out.rank; d++)
    if (!mulz(&out_elems, c.rec.pub.out.dim[d]))
      return LFAIL("output shape too large (over %zu elements per sample)",
                   (size_t)SIZE_MAX);

  /* Allocate everything before touching the network. */
  dnn__layer *rec = dnn__arena_alloc(&net->arena, sizeof *rec);
  char *name = dnn__arena_strdup(&net->arena, sp->name);
  if (rec == NULL || name == NULL)
    goto nomem;
  if (net->n == net->cap) {
    size_t cap = net->cap ? 2 * net->cap : 64;
    dnn__layer **layers = dnn__arena_alloc(&net->arena, cap * sizeof *layers);
    if (layers == NULL)
      goto nomem;
    if (net->n)
      memcpy(layers, net->layers, net->n * sizeof *layers);
    net->layers = layers;
    net->cap = cap;
  }
  if (2 * (net->n + 1) >= net->hash_cap) {
    size_t cap = net->hash_cap ? 2 * net->hash_cap : 256;
    size_t *table = dnn__arena_alloc(&net->arena, cap * sizeof *table);
    if (table == NULL)
      goto nomem;
    for (size_t i = 0; i < net->n; i++)
      hash_insert(table, cap, net->layers[i]->pub.name, i);
    net->hash = table;
    net->hash_cap = cap;
  }

  /* Commit. */
  *rec = c.rec;
  rec->pub.name = name;
  size_t idx = net->n;
  net->layers[net->n++] = rec;
  hash_insert(net->hash, net->hash_cap, name, idx);
  bool reads = reads_input_in_backward(&rec->pub);
  for (size_t k = 0; k < sp->n_inputs; k++) {
    dnn__layer *p = net->layers[rec->pub.inputs[k]];
    p->pub.consumers++;
    p->last_consumer = idx;
    if (reads) {
      /* A flatten is a view: the tensor kept is its producer's. */
      while (p->pub.kind == DNN_LAYER_FLATTEN)
        p = net->layers[p->pub.inputs[0]];
      p->out_needed = true;
    }
  }
  if (index)
    *index = idx;
  return DNN_OK;
nomem:
  return DNN_FAIL(err, DNN_ENOMEM, "layer '%s' (%s): out of memory", sp->name,
                  dnn_layer_kind_name(sp->kind));
}

/* ---- Signatures
 * ------------------------------------------------------------------ */

static void put(char *buf, size_t n, size_t *len, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static void put(char *buf, size_t n, size_t *len, const char *fmt, ...) {
  if (*len >= n)
    return;
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(buf + *len, n - *len, fmt, ap);
  va_end(ap);
  if (k > 0)
    *len += (size_t)k;
}

static void put_shape(char *buf, size_t n, size_t *len, const dnn_shape *s) {
  if (s->tokens)
    put(buf, n, len, "t");
  for (size_t i = 0; i < s->rank; i++)
    put(buf, n, len, "%s%zu", i ? "x" : "", s->dim[i]);
}

void dnn_layer_signature(const dnn_net *net, size_t i, char *buf, size_t n) {
  if (n == 0)
    return;
  buf[0] = '\0';
  const dnn_layer *l = dnn_net_layer(net, i);
  size_t len = 0;
  put(buf, n, &len, "%s:", dnn_layer_kind_name(l->kind));
  if (l->kind == DNN_LAYER_CONCAT) {
    for (size_t k = 0; k < l->n_inputs; k++) {
      if (k)
        put(buf, n, &len, "+");
      put_shape(buf, n, &len, &net->layers[l->inputs[k]]->pub.out);
    }
  } else {
    put_shape(buf, n, &len, &l->in);
  }
  switch (l->kind) {
  case DNN_LAYER_CONV2D: {
    const dnn_conv_params *p = &l->p.conv;
    put(buf, n, &len, ":o%zu:k%zux%zu:s%zux%zu:p%zux%zu:d%zux%zu:g%zu:b%d",
        p->out_channels, p->kernel_h, p->kernel_w, p->stride_h, p->stride_w,
        p->pad_h, p->pad_w, p->dilation_h, p->dilation_w, p->groups,
        p->bias ? 1 : 0);
    break;
  }
  case DNN_LAYER_MAXPOOL:
  case DNN_LAYER_AVGPOOL: {
    const dnn_pool_params *p = &l->p.pool;
    put(buf, n, &len, ":k%zux%zu:s%zux%zu:p%zux%zu:c%d", p->kernel_h,
        p->kernel_w, p->stride_h, p->stride_w, p->pad_h, p->pad_w,
        p->ceil_mode ? 1 : 0);
    break;
  }
  case DNN_LAYER_ADAPTIVE_AVGPOOL:
    put(buf, n, &len, ":o%zux%zu", l->p.pool.out_h, l->p.pool.out_w);
    break;
  case DNN_LAYER_FC:
    put(buf, n, &len, ":o%zu:b%d", l->p.fc.out_features, l->p.fc.bias ? 1 : 0);
    if (l->p.fc.tied)
      put(buf, n, &len, ":t1");
    break;
  case DNN_LAYER_ACTIVATION:
    put(buf, n, &len, ":%s", dnn_act_name(l->p.act.act));
    break;
  case DNN_LAYER_ADD:
    put(buf, n, &len, ":n%zu", l->n_inputs);
    break;
  case DNN_LAYER_CONCAT:
    put(buf, n, &len, ":a%zu", l->p.concat.axis);
    break;
  case DNN_LAYER_DROPOUT:
    put(buf, n, &len, ":p%g", l->p.dropout.p);
    break;
  case DNN_LAYER_EMBEDDING:
    put(buf, n, &len, ":v%zu:e%zu", l->p.embedding.vocab, l->p.embedding.dim);
    if (l->p.embedding.frozen)
      put(buf, n, &len, ":f1");
    break;
  case DNN_LAYER_ATTN_SCORES:
  case DNN_LAYER_ATTN_CONTEXT:
    put(buf, n, &len, ":a%zu", l->p.attn.heads);
    break;
  case DNN_LAYER_NCE_LOSS:
    put(buf, n, &len, ":v%zu:k%zu", l->p.nce.vocab, l->p.nce.negatives);
    break;
  case DNN_LAYER_SLICE:
    put(buf, n, &len, ":s%zu:l%zu", l->p.slice.start, l->p.slice.length);
    break;
  case DNN_LAYER_LSTM:
    put(buf, n, &len, ":h%zu:r%d", l->p.lstm.hidden,
        l->p.lstm.return_sequences ? 1 : 0);
    break;
  default:
    break;
  }
}
