/*
 * The executor's oneDNN engine (exec_internal.h): the kernels, tensors and
 * parameters of one pipeline stage, run as a framework runs them in
 * training.
 *
 * Method: every layer becomes the oneDNN primitives dnnl.c calibrates
 * (forward_training, backward-data and backward-weights with the forward
 * as hint; convolutions and inner products pick their layouts through
 * format_tag_any; the user scratchpad). Backward kernels are asked for
 * the forward's weight layout (one copy of the weights and of their
 * gradient, as the optimizer needs); where oneDNN has only a reference
 * kernel for it, they take their own layout and the weights are
 * converted at every call, as frameworks on oneDNN do. Tensors flow between
 * layers: a layer's output memory is its consumers' input; layouts propagate
 * (batch norm, activations, pooling and add run in their producer's layout, as
 * frameworks with oneDNN layout propagation do), and where a kernel wants
 * another layout a reorder converts the tensor and is counted in that
 * layer's time ("glue"). Gradients follow the model's accounting
 * (model/cost.c): backward runs in reverse layer order, the first
 * contribution to a tensor's gradient writes it and later ones add into
 * it; the gradient of an add input that nothing else reads is the add's
 * output gradient itself (aliased, free). Layers oneDNN lacks run in plain
 * C and are timed like the others: the cross-entropy loss and its
 * gradient, dropout, and flatten (a view of its input).
 *
 * Every micro-batch in flight has its own activations, statistics and
 * workspaces (a slot); gradients are shared. Weights, their gradients and
 * the optimizer state live in flat buffers in layer order, with the
 * gradient of a weight in the same layout as the weight, so that the
 * gradients of consecutive layers are one contiguous range (an allreduce
 * bucket) and the optimizer is one elementwise pass over the buffers,
 * in plain C (oneDNN 2.6's sum primitive streams at half the speed of a
 * vectorised loop on one thread; an optimised build vectorises it).
 * Values are random; what is measured is time. The only numerics kept is
 * the loss of each slot's last forward, for the executor's training check
 * (dnn_meas_exec_loss); dnnl.c verifies the kernels against ref.c.
 *
 * Invariant: every oneDNN object created here is in one of the engine's
 * lists and is destroyed by dnn__xeng_free, whatever failed.
 */
#define _POSIX_C_SOURCE 200809L
#include "exec_internal.h"

#include "dnnsim/measure.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if !DNNSIM_HAVE_DNNL

int dnn__xeng_threads(size_t threads) {
  (void)threads;
  return 0;
}

void dnn__xeng_threads_restore(int prev) {
  (void)prev;
}

dnn_status dnn__xeng_dnnl_alloc(const dnn__xeng_params *p, dnn__xeng **out,
                                dnn_error *err) {
  (void)p;
  *out = NULL;
  return DNN_FAIL(err, DNN_EUNSUPPORTED,
                  "the executor needs oneDNN: this dnnsim was built without "
                  "it (install libdnnl-dev and rebuild with "
                  "-DDNNSIM_WITH_DNNL=ON)");
}

#else

#include "dnnl_util.h"

int dnn__xeng_threads(size_t threads) {
  return dnn__meas_threads(threads);
}

void dnn__xeng_threads_restore(int prev) {
  dnn__meas_threads_restore(prev);
}

/* ------------------------------------------------------------------------ */
/* Buffers, operations, layers, tensors                                     */
/* ------------------------------------------------------------------------ */

/* A tensor's memory: one per slot, or one shared by every slot. */
typedef struct xbuf {
  dnnl_memory_desc_t md;
  size_t n; /* 1 or the engine's slots */
  dnnl_memory_t m[DNN__XENG_MAX_SLOTS];
} xbuf;

enum {
  OP_PRIM,     /* a oneDNN primitive */
  OP_XENT_FWD, /* loss = -mean log p[label] (after the softmax primitive) */
  OP_XENT_BWD, /* dx = (p - onehot(label)) / rows */
  OP_DROP_FWD, /* y = x * mask / (1 - p), a new mask */
  OP_DROP_BWD  /* dx = dy * mask / (1 - p) */
};

#define OP_MAX_ARGS 16

typedef struct xop {
  int kind;
  bool glue; /* a conversion or accumulation, not the layer's kernel */
  dnnl_primitive_t prim;
  int n;
  int arg[OP_MAX_ARGS];
  xbuf *buf[OP_MAX_ARGS];
  /* Plain C operations: a (input), b (output), c (mask) and sizes. */
  xbuf *a, *b, *c;
  size_t rows, cols;
  size_t per, span; /* loss rows of a sample, and of its copies */
  double p;
} xop;

typedef struct xlist {
  xop *op;
  size_t n, cap;
} xlist;

/* One layer output as this stage sees it. */
typedef struct xtensor {
  bool used;          /* produced or read by the stage */
  bool external;      /* produced before the stage: received */
  bool outgoing;      /* read after the stage: sent */
  bool deferred;      /* input data: created in the first reader's layout */
  xbuf *act;          /* forward value, per slot */
  bool needs_grad;    /* its producer reads its gradient */
  xbuf *grad;         /* per slot when external (sent back), else shared */
  size_t contribs;    /* gradient contributions (edges and the remote one) */
  xbuf *send;         /* plain per-slot copy to send (NULL: act is plain) */
  xbuf *recv_grad;    /* plain, the next stage's contribution */
  xlist apply;        /* recv_grad -> grad */
  xlist pack;         /* act -> send */
  size_t alias_layer; /* the add whose output gradient this is, or NONE */
} xtensor;

typedef struct xlayer {
  const dnn_layer *l;
  bool in_stage;
  xlist run[DNN_PASS_COUNT][2]; /* [pass][accumulate] */
  bool fused;                   /* one backward call, in bwd_data */
  double share;                 /* its bwd_data share */
  dnnl_primitive_desc_t fpd, dpd, wpd;
  dnnl_primitive_t fprim, dprim, wprim;
  xbuf *src[DNN_LAYER_MAX_INPUTS]; /* what the forward kernel read */
  xbuf *w, *b, *gw, *gb;           /* weights (or scale) and bias (or shift)
                                      and their gradients, flat views */
  xbuf *ws, *mean, *var, *mask;    /* per slot */
  size_t poff;                     /* floats into the flat buffers */
  size_t in_rank, in_dims[DNN_SHAPE_MAX_RANK + 1];
  size_t out_rank, out_dims[DNN_SHAPE_MAX_RANK + 1];
} xlayer;

typedef struct xd xd;

/* The oneDNN engine. */
struct xd {
  dnn__xeng base; /* first: the operations table */
  dnn__xeng_params p;
  size_t L, last; /* layers of the network; the stage ends before last */
  dnnl_engine_t eng;
  dnnl_stream_t stream;
  dnnl_primitive_attr_t attr; /* user scratchpad */
  xlayer *layers;             /* L entries (in_stage for the stage's) */
  xtensor *t;                 /* L entries */
  dnn__xplan pl;              /* the stage's tensors */
  /* Owned objects. */
  xbuf **bufs;
  size_t n_bufs, cap_bufs;
  dnnl_primitive_t *prims;
  size_t n_prims, cap_prims;
  dnnl_primitive_desc_t *pds;
  size_t n_pds, cap_pds;
  void *raw; /* flat parameter storage, unaligned (NULL: shared) */
  float *W, *G, *M, *V;
  size_t nflat;
  size_t stride; /* floats from W to G (and G to M, M to V) */
  size_t params; /* the model's parameter count */
  void *scratch_raw;
  void *scratch;
  size_t scratch_bytes;
  size_t step; /* optimizer steps (Adam's bias correction) */
  double loss[DNN__XENG_MAX_SLOTS]; /* the loss of each slot's last forward
                                       (NaN: none) */
  unsigned long long rng;           /* dropout masks */
};

#define TRY(x)                                                                 \
  do {                                                                         \
    if ((st = (x)) != DNN_OK)                                                  \
      goto fail;                                                               \
  } while (0)

static dnn_status nomem(dnn_error *err) {
  return DNN_FAIL(err, DNN_ENOMEM, "out of memory building the executor");
}

/* Keeps a primitive or descriptor for destruction. */
static dnn_status keep_prim(xd *e, dnnl_primitive_t p, dnn_error *err) {
  if (!dnn__grow((void **)&e->prims, &e->cap_prims, e->n_prims + 1,
                 sizeof *e->prims)) {
    dnnl_primitive_destroy(p);
    return nomem(err);
  }
  e->prims[e->n_prims++] = p;
  return DNN_OK;
}

static dnn_status keep_pd(xd *e, dnnl_primitive_desc_t pd, dnn_error *err) {
  if (!dnn__grow((void **)&e->pds, &e->cap_pds, e->n_pds + 1, sizeof *e->pds)) {
    dnnl_primitive_desc_destroy(pd);
    return nomem(err);
  }
  e->pds[e->n_pds++] = pd;
  return DNN_OK;
}

/* Creates the primitive of a kept descriptor and keeps it. */
static dnn_status make_prim(xd *e, dnnl_primitive_desc_t pd,
                            dnnl_primitive_t *out, dnn_error *err) {
  dnn_status st = DNN_OK;
  *out = NULL;
  DNN__MEAS_DNNL_TRY(dnnl_primitive_create(out, pd), "primitive_create");
  return keep_prim(e, *out, err);
fail:
  return st;
}

static dnn_status list_add(xlist *l, const xop *op, dnn_error *err) {
  if (!dnn__grow((void **)&l->op, &l->cap, l->n + 1, sizeof *l->op))
    return nomem(err);
  l->op[l->n++] = *op;
  return DNN_OK;
}

/* Every tensor of the engine is f32. */
static dnnl_memory_desc_t md_of(int nd, const int64_t *dims,
                                dnnl_format_tag_t tag) {
  return dnn__meas_md(nd, dims, dnnl_f32, tag);
}

static bool md_is_plain(const dnnl_memory_desc_t *md) {
  dnnl_memory_desc_t p = dnn__meas_md_plain(md);
  return dnnl_memory_desc_equal(&p, md) != 0;
}

/* The plain layout of layer j's output at the micro-batch. */
static dnnl_memory_desc_t out_md_plain(const xd *e, size_t j) {
  dnnl_dims_t d;
  int nd = dnn__meas_batch_dims(&dnn_net_layer(e->p.net, j)->out, e->p.mbs, d);
  return md_of(nd, d, dnn__meas_plain_tag(nd));
}

static size_t md_floats(const dnnl_memory_desc_t *md) {
  return dnnl_memory_desc_get_size(md) / sizeof(float);
}

/* A new buffer for `n` memories (none created yet) with descriptor `md`,
 * in the engine's list for dnn__xeng_free; NULL when out of memory. */
static xbuf *buf_add(xd *e, const dnnl_memory_desc_t *md, size_t n) {
  if (!dnn__grow((void **)&e->bufs, &e->cap_bufs, e->n_bufs + 1,
                 sizeof *e->bufs))
    return NULL;
  xbuf *b = dnn_calloc(1, sizeof *b);
  if (b == NULL)
    return NULL;
  e->bufs[e->n_bufs++] = b;
  b->md = *md;
  b->n = n;
  return b;
}

/* A new buffer; `per_slot` gives one memory per slot. Random contents
 * when `fill` (seeded), else zeros. */
static dnn_status buf_new(xd *e, const dnnl_memory_desc_t *md, bool per_slot,
                          bool fill, xbuf **out, dnn_error *err) {
  dnn_status st = DNN_OK;
  *out = NULL;
  xbuf *b = buf_add(e, md, per_slot ? e->p.slots : 1);
  if (b == NULL)
    return nomem(err);
  for (size_t k = 0; k < b->n; k++) {
    DNN__MEAS_DNNL_TRY(
        dnnl_memory_create(&b->m[k], md, e->eng, DNNL_MEMORY_ALLOCATE),
        "memory_create");
    void *ptr = NULL;
    DNN__MEAS_DNNL_TRY(dnnl_memory_get_data_handle(b->m[k], &ptr),
                       "get_data_handle");
    size_t bytes = dnnl_memory_desc_get_size(md);
    if (fill)
      dnn__meas_fill(ptr, bytes / sizeof(float),
                     e->p.seed + 7919ULL * e->n_bufs + k);
    else
      memset(ptr, 0, bytes);
  }
  *out = b;
fail:
  return st;
}

/* A buffer whose memories use `base`'s storage (a view with another
 * descriptor of the same bytes). */
static dnn_status buf_view(xd *e, const dnnl_memory_desc_t *md,
                           const xbuf *base, xbuf **out, dnn_error *err) {
  dnn_status st = DNN_OK;
  *out = NULL;
  xbuf *b = buf_add(e, md, base->n);
  if (b == NULL)
    return nomem(err);
  for (size_t k = 0; k < b->n; k++) {
    void *ptr = NULL;
    DNN__MEAS_DNNL_TRY(dnnl_memory_get_data_handle(base->m[k], &ptr),
                       "get_data_handle");
    DNN__MEAS_DNNL_TRY(dnnl_memory_create(&b->m[k], md, e->eng, ptr),
                       "memory_create");
  }
  *out = b;
fail:
  return st;
}

/* A shared buffer over caller storage (flat parameters, scratchpad). */
static dnn_status buf_at(xd *e, const dnnl_memory_desc_t *md, void *ptr,
                         xbuf **out, dnn_error *err) {
  dnn_status st = DNN_OK;
  *out = NULL;
  xbuf *b = buf_add(e, md, 1);
  if (b == NULL)
    return nomem(err);
  DNN__MEAS_DNNL_TRY(dnnl_memory_create(&b->m[0], md, e->eng, ptr),
                     "memory_create");
  *out = b;
fail:
  return st;
}

static dnnl_memory_t mem_of(const xbuf *b, size_t slot) {
  return b->m[b->n > 1 ? slot : 0];
}

static float *ptr_of(const xbuf *b, size_t slot) {
  void *p = NULL;
  dnnl_memory_get_data_handle(mem_of(b, slot), &p);
  return p;
}

/* ------------------------------------------------------------------------ */
/* Conversions and gradient contributions                                   */
/* ------------------------------------------------------------------------ */

/* Appends argument `arg` of `op`, bound to buffer `b`. */
static void op_arg(xop *op, int arg, xbuf *b) {
  op->arg[op->n] = arg;
  op->buf[op->n++] = b;
}

/* Keeps `pd` and makes `op` its primitive, marked glue (the caller adds
 * the arguments). */
static dnn_status glue_op(xd *e, dnnl_primitive_desc_t pd, xop *op,
                          dnn_error *err) {
  memset(op, 0, sizeof *op);
  op->kind = OP_PRIM;
  op->glue = true;
  dnn_status st = keep_pd(e, pd, err);
  return st ? st : make_prim(e, pd, &op->prim, err);
}

/* A reorder `from` -> `to` appended to `l` (glue). */
static dnn_status add_reorder(xd *e, xlist *l, xbuf *from, xbuf *to,
                              dnn_error *err) {
  dnn_status st = DNN_OK;
  dnnl_primitive_desc_t pd = NULL;
  if (dnnl_reorder_primitive_desc_create(&pd, &from->md, e->eng, &to->md,
                                         e->eng, NULL) != dnnl_success)
    return DNN_FAIL(err, DNN_ETOOLFAIL,
                    "oneDNN cannot convert a %d-d tensor (%lld x %lld ...) "
                    "to a %d-d one (%lld x %lld ...)",
                    from->md.ndims, (long long)from->md.dims[0],
                    (long long)from->md.dims[1], to->md.ndims,
                    (long long)to->md.dims[0], (long long)to->md.dims[1]);
  xop op;
  TRY(glue_op(e, pd, &op, err));
  op_arg(&op, DNNL_ARG_FROM, from);
  op_arg(&op, DNNL_ARG_TO, to);
  return list_add(l, &op, err);
fail:
  return st;
}

/* `to` += `from` (any layouts), appended to `l` (glue). */
static dnn_status add_accum(xd *e, xlist *l, xbuf *from, xbuf *to,
                            dnn_error *err) {
  dnn_status st = DNN_OK;
  dnnl_primitive_desc_t pd = NULL;
  const float scales[2] = {1.0f, 1.0f};
  dnnl_memory_desc_t srcs[2] = {to->md, from->md};
  DNN__MEAS_DNNL_TRY(dnnl_sum_primitive_desc_create(&pd, &to->md, 2, scales,
                                                    srcs, NULL, e->eng),
                     "sum_primitive_desc_create");
  xop op;
  TRY(glue_op(e, pd, &op, err));
  op_arg(&op, DNNL_ARG_DST, to);
  op_arg(&op, DNNL_ARG_MULTIPLE_SRC, to);
  op_arg(&op, DNNL_ARG_MULTIPLE_SRC + 1, from);
  return list_add(l, &op, err);
fail:
  return st;
}

/* `have` in layout `want`: itself, or a converted copy made by a reorder
 * appended to `pre` (per slot when `have` is; no reorder when `pre` is
 * NULL). */
static dnn_status need(xd *e, xlist *pre, xbuf *have,
                       const dnnl_memory_desc_t *want, xbuf **out,
                       dnn_error *err) {
  if (dnnl_memory_desc_equal(&have->md, want)) {
    *out = have;
    return DNN_OK;
  }
  dnn_status st = buf_new(e, want, have->n > 1, false, out, err);
  if (st == DNN_OK && pre)
    st = add_reorder(e, pre, have, *out, err);
  return st;
}

/* The forward value of tensor j in layout `want` (input data is created
 * in the first reader's layout, filled once). */
static dnn_status act_in(xd *e, xlist *pre, size_t j,
                         const dnnl_memory_desc_t *want, xbuf **out,
                         dnn_error *err) {
  xtensor *t = &e->t[j];
  if (t->act == NULL) {
    DNN_ASSERT(t->deferred);
    dnn_status st = buf_new(e, want, true, true, &t->act, err);
    if (st)
      return st;
  }
  return need(e, pre, t->act, want, out, err);
}

/*
 * Where a kernel writes a contribution of layout `md` to tensor j's
 * gradient: the gradient itself when this is the first contribution in
 * the same layout (`*direct` true); else a scratch buffer that `emit`
 * then writes or adds into the gradient.
 */
static dnn_status grad_target(xd *e, size_t j, bool first,
                              const dnnl_memory_desc_t *md, xbuf **out,
                              dnn_error *err) {
  xtensor *t = &e->t[j];
  if (first && t->grad->n == 1 && dnnl_memory_desc_equal(&t->grad->md, md)) {
    *out = t->grad;
    return DNN_OK;
  }
  return buf_new(e, md, t->grad->n > 1, false, out, err);
}

static dnn_status emit(xd *e, xlist *post, size_t j, bool first, xbuf *from,
                       dnn_error *err) {
  xtensor *t = &e->t[j];
  if (from == t->grad)
    return DNN_OK;
  return first ? add_reorder(e, post, from, t->grad, err)
               : add_accum(e, post, from, t->grad, err);
}

/* ------------------------------------------------------------------------ */
/* Forward descriptors                                                      */
/* ------------------------------------------------------------------------ */

static const dnnl_format_tag_t ANY = dnnl_format_tag_any;

/* The layout of input k of layer `l` as its producer made it (plain for
 * deferred input data). */
static dnnl_memory_desc_t in_md(const xd *e, const dnn_layer *l, size_t k) {
  const xtensor *t = &e->t[l->inputs[k]];
  if (t->act)
    return t->act->md;
  return out_md_plain(e, l->inputs[k]);
}

static dnn_status pd_create(xd *e, const void *op, dnnl_primitive_desc_t hint,
                            bool user_scratch, dnnl_primitive_desc_t *out) {
  *out = NULL;
  if (dnnl_primitive_desc_create(out, op, user_scratch ? e->attr : NULL, e->eng,
                                 hint) != dnnl_success) {
    *out = NULL;
    return DNN_EUNSUPPORTED;
  }
  return DNN_OK;
}

/* The same, refusing oneDNN's reference (unoptimised) implementations: a
 * layout that only they take is not worth keeping. */
static dnn_status pd_create_fast(xd *e, const void *op,
                                 dnnl_primitive_desc_t hint,
                                 dnnl_primitive_desc_t *out) {
  if (pd_create(e, op, hint, true, out))
    return DNN_EUNSUPPORTED;
  const char *impl = NULL;
  if (dnnl_primitive_desc_query(*out, dnnl_query_impl_info_str, 0, &impl) ==
          dnnl_success &&
      impl && strncmp(impl, "ref", 3) == 0) {
    dnnl_primitive_desc_destroy(*out);
    *out = NULL;
    return DNN_EUNSUPPORTED;
  }
  return DNN_OK;
}

/* DNN_EUNSUPPORTED: oneDNN has no `what` kernel for layer X. */
static dnn_status no_kernel(const xd *e, const xlayer *X, const char *what,
                            dnn_error *err) {
  return DNN_FAIL(err, DNN_EUNSUPPORTED,
                  "oneDNN has no %s for layer '%s' at batch %zu", what,
                  X->l->name, e->p.mbs);
}

/* Convolution: descriptors of the three passes. */
static dnn_status conv_pds(xd *e, xlayer *X, dnn_error *err) {
  dnn__conv_shape s;
  dnn__meas_conv_shape(e->p.net, X->l->index, e->p.mbs, &s);
  dnn__meas_conv_geom g;
  dnn__meas_conv_geom_of(&s, &g);
  dnnl_memory_desc_t smd = md_of(4, g.src, ANY), dmd = md_of(4, g.dst, ANY);
  dnnl_memory_desc_t wmd =
      g.groups > 1 ? md_of(5, g.w5, ANY) : md_of(4, g.w4, ANY);
  dnnl_memory_desc_t bmd = md_of(1, g.bias, ANY);
  const dnnl_memory_desc_t *bp = X->l->p.conv.bias ? &bmd : NULL;
  dnnl_convolution_desc_t fd, bd, wd;
  dnn_status st = DNN_OK;
  if (dnnl_dilated_convolution_forward_desc_init(
          &fd, dnnl_forward_training, dnnl_convolution_direct, &smd, &wmd, bp,
          &dmd, g.strides, g.dil, g.pl, g.pr) != dnnl_success ||
      pd_create(e, &fd, NULL, true, &X->fpd))
    goto unsupported;
  TRY(keep_pd(e, X->fpd, err));
  /* Backward-data reads the weights in the forward's layout, and the
   * weight gradient is written in it (the optimizer needs both alike), as
   * a framework keeps one copy of each; oneDNN's own choice (then a
   * reorder every iteration) only when it has no kernel for that. */
  const dnnl_memory_desc_t *fw =
      dnnl_primitive_desc_query_md(X->fpd, dnnl_query_weights_md, 0);
  if (X->l->needs_input_grad) {
    if ((dnnl_dilated_convolution_backward_data_desc_init(
             &bd, dnnl_convolution_direct, &smd, fw, &dmd, g.strides, g.dil,
             g.pl, g.pr) != dnnl_success ||
         pd_create_fast(e, &bd, X->fpd, &X->dpd)) &&
        (dnnl_dilated_convolution_backward_data_desc_init(
             &bd, dnnl_convolution_direct, &smd, &wmd, &dmd, g.strides, g.dil,
             g.pl, g.pr) != dnnl_success ||
         pd_create(e, &bd, X->fpd, true, &X->dpd)))
      goto unsupported;
    TRY(keep_pd(e, X->dpd, err));
  }
  if (dnnl_dilated_convolution_backward_weights_desc_init(
          &wd, dnnl_convolution_direct, &smd, fw, bp, &dmd, g.strides, g.dil,
          g.pl, g.pr) != dnnl_success ||
      pd_create_fast(e, &wd, X->fpd, &X->wpd)) {
    if (dnnl_dilated_convolution_backward_weights_desc_init(
            &wd, dnnl_convolution_direct, &smd, &wmd, bp, &dmd, g.strides,
            g.dil, g.pl, g.pr) != dnnl_success ||
        pd_create(e, &wd, X->fpd, true, &X->wpd))
      goto unsupported;
  }
  TRY(keep_pd(e, X->wpd, err));
  return DNN_OK;
unsupported:
  return no_kernel(e, X, "convolution", err);
fail:
  return st;
}

static dnn_status fc_pds(xd *e, xlayer *X, dnn_error *err) {
  const dnn_layer *l = X->l;
  if (l->in.rank != 3 && l->in.rank != 1)
    return DNN_FAIL(err, DNN_EUNSUPPORTED,
                    "the executor runs fc layers on images and feature "
                    "vectors, not on the sequence of layer '%s'",
                    l->name);
  dnn__meas_fc_geom g;
  dnn__meas_fc_geom_of(l, e->p.mbs, &g);
  int nd = g.nd;
  const int64_t *src = g.src, *w = g.w, *bias = g.bias, *dst = g.dst;
  dnnl_memory_desc_t smd = md_of(nd, src, ANY), wmd = md_of(nd, w, ANY);
  dnnl_memory_desc_t bmd = md_of(1, bias, ANY), dmd = md_of(2, dst, ANY);
  const dnnl_memory_desc_t *bp = l->p.fc.bias ? &bmd : NULL;
  dnnl_inner_product_desc_t fd, bd, wd;
  dnn_status st = DNN_OK;
  if (dnnl_inner_product_forward_desc_init(&fd, dnnl_forward_training, &smd,
                                           &wmd, bp, &dmd) != dnnl_success ||
      pd_create(e, &fd, NULL, true, &X->fpd))
    goto unsupported;
  TRY(keep_pd(e, X->fpd, err));
  const dnnl_memory_desc_t *fw =
      dnnl_primitive_desc_query_md(X->fpd, dnnl_query_weights_md, 0);
  if (l->needs_input_grad) {
    if ((dnnl_inner_product_backward_data_desc_init(&bd, &smd, fw, &dmd) !=
             dnnl_success ||
         pd_create_fast(e, &bd, X->fpd, &X->dpd)) &&
        (dnnl_inner_product_backward_data_desc_init(&bd, &smd, &wmd, &dmd) !=
             dnnl_success ||
         pd_create(e, &bd, X->fpd, true, &X->dpd)))
      goto unsupported;
    TRY(keep_pd(e, X->dpd, err));
  }
  if (dnnl_inner_product_backward_weights_desc_init(&wd, &smd, fw, bp, &dmd) !=
          dnnl_success ||
      pd_create_fast(e, &wd, X->fpd, &X->wpd)) {
    if (dnnl_inner_product_backward_weights_desc_init(&wd, &smd, &wmd, bp,
                                                      &dmd) != dnnl_success ||
        pd_create(e, &wd, X->fpd, true, &X->wpd))
      goto unsupported;
  }
  TRY(keep_pd(e, X->wpd, err));
  return DNN_OK;
unsupported:
  return no_kernel(e, X, "inner product", err);
fail:
  return st;
}

static dnn_status pool_pds(xd *e, xlayer *X, dnn_error *err) {
  dnn__pool_shape s;
  dnn__meas_pool_shape(e->p.net, X->l->index, e->p.mbs, &s);
  dnn__meas_pool_geom g;
  dnn__meas_pool_geom_of(&s, &g);
  dnnl_pooling_v2_desc_t fd, bd;
  dnn_status st = DNN_OK;
  /* In the producer's layout; the plain one when oneDNN cannot. */
  for (int attempt = 0; attempt < 2 && X->fpd == NULL; attempt++) {
    dnnl_memory_desc_t smd = in_md(e, X->l, 0);
    if (attempt == 1)
      smd = dnn__meas_md_plain(&smd);
    dnnl_memory_desc_t dmd = md_of(4, g.dst, attempt == 0 ? ANY : dnnl_abcd);
    if (dnnl_pooling_v2_forward_desc_init(&fd, dnnl_forward_training, g.alg,
                                          &smd, &dmd, g.strides, g.kernel,
                                          g.dil, g.pl, g.pr) == dnnl_success)
      pd_create(e, &fd, NULL, true, &X->fpd);
  }
  if (X->fpd == NULL)
    goto unsupported;
  TRY(keep_pd(e, X->fpd, err));
  if (X->l->needs_input_grad) {
    const dnnl_memory_desc_t *smd =
        dnnl_primitive_desc_query_md(X->fpd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *dmd =
        dnnl_primitive_desc_query_md(X->fpd, dnnl_query_dst_md, 0);
    if (dnnl_pooling_v2_backward_desc_init(&bd, g.alg, smd, dmd, g.strides,
                                           g.kernel, g.dil, g.pl,
                                           g.pr) != dnnl_success ||
        pd_create(e, &bd, X->fpd, true, &X->dpd))
      goto unsupported;
    TRY(keep_pd(e, X->dpd, err));
  }
  return DNN_OK;
unsupported:
  return no_kernel(e, X, "pooling", err);
fail:
  return st;
}

/* Batch norm, activations, softmax: one data layout for both passes, the
 * producer's when oneDNN takes it. */
static dnn_status same_layout_pds(xd *e, xlayer *X, dnn_error *err) {
  const dnn_layer *l = X->l;
  dnn_status st = DNN_OK;
  const float eps = 1e-5f;
  unsigned flags = dnnl_use_scale | dnnl_use_shift;
  int axis = (int)l->in.rank;
  for (int attempt = 0; attempt < 2 && X->fpd == NULL; attempt++) {
    dnnl_memory_desc_t md = in_md(e, l, 0);
    /* The loss reads plain probabilities. */
    if (attempt == 1 || l->kind == DNN_LAYER_SOFTMAX_XENT)
      md = dnn__meas_md_plain(&md);
    if (l->kind == DNN_LAYER_BATCHNORM) {
      dnnl_batch_normalization_desc_t fd;
      if (dnnl_batch_normalization_forward_desc_init(
              &fd, dnnl_forward_training, &md, eps, flags) == dnnl_success)
        pd_create(e, &fd, NULL, true, &X->fpd);
    } else if (l->kind == DNN_LAYER_ACTIVATION) {
      dnnl_eltwise_desc_t fd;
      if (dnnl_eltwise_forward_desc_init(&fd, dnnl_forward_training,
                                         dnn__meas_act_alg(l->p.act.act), &md,
                                         0, 0) == dnnl_success)
        pd_create(e, &fd, NULL, true, &X->fpd);
    } else {
      dnnl_softmax_desc_t fd;
      if (dnnl_softmax_forward_desc_init(&fd, dnnl_forward_training, &md,
                                         axis) == dnnl_success)
        pd_create(e, &fd, NULL, true, &X->fpd);
    }
  }
  if (X->fpd == NULL)
    goto unsupported;
  TRY(keep_pd(e, X->fpd, err));
  const dnnl_memory_desc_t *md =
      dnnl_primitive_desc_query_md(X->fpd, dnnl_query_src_md, 0);
  bool bwd = l->needs_input_grad || l->kind == DNN_LAYER_BATCHNORM;
  if (!bwd || l->kind == DNN_LAYER_SOFTMAX_XENT)
    return DNN_OK; /* the loss gradient is plain C */
  if (l->kind == DNN_LAYER_BATCHNORM) {
    dnnl_batch_normalization_desc_t bd;
    if (dnnl_batch_normalization_backward_desc_init(
            &bd, dnnl_backward, md, md, eps, flags) != dnnl_success ||
        pd_create(e, &bd, X->fpd, true, &X->dpd))
      goto unsupported;
    X->fused = true;
  } else if (l->kind == DNN_LAYER_ACTIVATION) {
    dnnl_eltwise_desc_t bd;
    if (dnnl_eltwise_backward_desc_init(&bd, dnn__meas_act_alg(l->p.act.act),
                                        md, md, 0, 0) != dnnl_success ||
        pd_create(e, &bd, X->fpd, true, &X->dpd))
      goto unsupported;
  } else {
    const dnnl_memory_desc_t *dmd =
        dnnl_primitive_desc_query_md(X->fpd, dnnl_query_dst_md, 0);
    dnnl_softmax_desc_t bd;
    if (dnnl_softmax_backward_desc_init(&bd, dmd, dmd, axis) != dnnl_success ||
        pd_create(e, &bd, X->fpd, true, &X->dpd))
      goto unsupported;
  }
  TRY(keep_pd(e, X->dpd, err));
  return DNN_OK;
unsupported:
  return no_kernel(e, X, dnn_layer_kind_name(l->kind), err);
fail:
  return st;
}

static dnn_status add_pds(xd *e, xlayer *X, dnn_error *err) {
  const dnn_layer *l = X->l;
  if (l->n_inputs != 2)
    return DNN_FAIL(err, DNN_EUNSUPPORTED,
                    "the executor adds two tensors, and layer '%s' has %zu",
                    l->name, l->n_inputs);
  dnn_status st = DNN_OK;
  for (int attempt = 0; attempt < 2 && X->fpd == NULL; attempt++) {
    dnnl_memory_desc_t a = in_md(e, l, 0), b = in_md(e, l, 1);
    if (attempt == 1) {
      a = dnn__meas_md_plain(&a);
      b = dnn__meas_md_plain(&b);
    }
    dnnl_binary_desc_t bd;
    if (dnnl_binary_desc_init(&bd, dnnl_binary_add, &a, &b, &a) == dnnl_success)
      pd_create(e, &bd, NULL, true, &X->fpd);
  }
  if (X->fpd == NULL)
    return DNN_FAIL(err, DNN_EUNSUPPORTED, "oneDNN cannot add layer '%s'",
                    l->name);
  TRY(keep_pd(e, X->fpd, err));
fail:
  return st;
}

/* ------------------------------------------------------------------------ */
/* Building                                                                 */
/* ------------------------------------------------------------------------ */

static bool supported(dnn_layer_kind k) {
  switch (k) {
  case DNN_LAYER_INPUT:
  case DNN_LAYER_CONV2D:
  case DNN_LAYER_FC:
  case DNN_LAYER_MAXPOOL:
  case DNN_LAYER_AVGPOOL:
  case DNN_LAYER_ADAPTIVE_AVGPOOL:
  case DNN_LAYER_GLOBAL_AVGPOOL:
  case DNN_LAYER_BATCHNORM:
  case DNN_LAYER_ACTIVATION:
  case DNN_LAYER_ADD:
  case DNN_LAYER_DROPOUT:
  case DNN_LAYER_FLATTEN:
  case DNN_LAYER_SOFTMAX:
  case DNN_LAYER_SOFTMAX_XENT:
    return true;
  default:
    return false;
  }
}

/* Marks the tensors of the stage and its boundaries (exec_plan.c). */
static dnn_status tensors(xd *e, dnn_error *err) {
  dnn_status st =
      dnn__xplan_build(e->p.net, e->p.first, e->p.count, &e->pl, err);
  if (st)
    return st;
  size_t first = e->p.first, last = e->last;
  e->t = dnn_calloc(e->L, sizeof *e->t);
  if (e->t == NULL)
    return nomem(err);
  for (size_t j = 0; j < last; j++) {
    xtensor *t = &e->t[j];
    const dnn__xplan_tensor *pt = &e->pl.t[j];
    t->alias_layer = DNN_MEAS_NONE;
    t->used = pt->used;
    t->external = pt->external;
    t->outgoing = pt->outgoing;
    t->needs_grad = pt->needs_grad;
    t->contribs = pt->contribs;
    t->deferred =
        j >= first && dnn_net_layer(e->p.net, j)->kind == DNN_LAYER_INPUT;
  }
  /* Received tensors arrive plain, one buffer per slot. */
  for (size_t k = 0; k < e->pl.n_in && st == DNN_OK; k++) {
    size_t j = e->pl.in[k];
    dnnl_memory_desc_t md = out_md_plain(e, j);
    st = buf_new(e, &md, true, true, &e->t[j].act, err);
  }
  return st;
}

/* Forward descriptors and output buffers of the stage's layers, in order
 * (each layer's output layout is known before its consumers are built). */
static dnn_status forward_pds(xd *e, dnn_error *err) {
  dnn_status st = DNN_OK;
  for (size_t i = e->p.first; i < e->last && st == DNN_OK; i++) {
    xlayer *X = &e->layers[i];
    const dnn_layer *l = X->l;
    if (!supported(l->kind))
      return DNN_FAIL(err, DNN_EUNSUPPORTED,
                      "the executor cannot run layer '%s': kind %s is not "
                      "implemented (it runs CNNs: conv2d, fc, pooling, "
                      "batchnorm, activation, add, dropout, flatten, "
                      "softmax, softmax_xent)",
                      l->name, dnn_layer_kind_name(l->kind));
    switch (l->kind) {
    case DNN_LAYER_INPUT:
      continue; /* deferred to its first reader */
    case DNN_LAYER_CONV2D:
      st = conv_pds(e, X, err);
      break;
    case DNN_LAYER_FC:
      st = fc_pds(e, X, err);
      break;
    case DNN_LAYER_MAXPOOL:
    case DNN_LAYER_AVGPOOL:
    case DNN_LAYER_ADAPTIVE_AVGPOOL:
    case DNN_LAYER_GLOBAL_AVGPOOL:
      st = pool_pds(e, X, err);
      break;
    case DNN_LAYER_BATCHNORM:
      if (l->in.rank != 3)
        return DNN_FAIL(err, DNN_EUNSUPPORTED,
                        "the executor runs batch norm on images only, not "
                        "on layer '%s'",
                        l->name);
      st = same_layout_pds(e, X, err);
      break;
    case DNN_LAYER_ACTIVATION:
    case DNN_LAYER_SOFTMAX:
    case DNN_LAYER_SOFTMAX_XENT:
      st = same_layout_pds(e, X, err);
      break;
    case DNN_LAYER_ADD:
      st = add_pds(e, X, err);
      break;
    default:
      break; /* dropout, flatten: no descriptor */
    }
    if (st)
      break;
    /* The output buffer, in the layout the forward writes. */
    xtensor *t = &e->t[i];
    if (l->kind == DNN_LAYER_FLATTEN) {
      const xtensor *in = &e->t[l->inputs[0]];
      if (in->act == NULL ||
          e->pl.cons_off[l->inputs[0] + 1] - e->pl.cons_off[l->inputs[0]] != 1)
        return DNN_FAIL(err, DNN_EUNSUPPORTED,
                        "the executor flattens a computed tensor that only "
                        "the flatten reads; layer '%s' is not one",
                        l->name);
      dnnl_dims_t d;
      int nd = dnn__meas_batch_dims(&l->out, e->p.mbs, d);
      dnnl_memory_desc_t md;
      if (dnnl_memory_desc_reshape(&md, &in->act->md, nd, d) == dnnl_success)
        st = buf_view(e, &md, in->act, &t->act, err);
      else
        st = DNN_EUNSUPPORTED;
      if (st == DNN_EUNSUPPORTED) {
        /* Flatten through a plain copy (a reorder, then a view). */
        dnnl_memory_desc_t pm = dnn__meas_md_plain(&in->act->md);
        xbuf *plain;
        st = buf_new(e, &pm, true, false, &plain, err);
        if (st == DNN_OK)
          st = add_reorder(e, &X->run[DNN_PASS_FWD][0], in->act, plain, err);
        if (st == DNN_OK &&
            dnnl_memory_desc_reshape(&md, &pm, nd, d) != dnnl_success)
          st = DNN_FAIL(err, DNN_ETOOLFAIL, "cannot flatten layer '%s'",
                        l->name);
        if (st == DNN_OK)
          st = buf_view(e, &md, plain, &t->act, err);
      }
    } else if (l->kind == DNN_LAYER_DROPOUT) {
      dnnl_memory_desc_t md = in_md(e, l, 0);
      st = buf_new(e, &md, true, false, &t->act, err);
    } else {
      const dnnl_memory_desc_t *md =
          dnnl_primitive_desc_query_md(X->fpd, dnnl_query_dst_md, 0);
      st = buf_new(e, md, true, false, &t->act, err);
    }
    if (st)
      break;
    X->out_rank = (size_t)t->act->md.ndims;
    for (size_t k = 0; k < X->out_rank; k++)
      X->out_dims[k] = (size_t)t->act->md.dims[k];
    if (l->kind == DNN_LAYER_SOFTMAX_XENT) {
      /* Its output is the per-sample loss; the tensor the probabilities. */
      dnnl_dims_t d;
      X->out_rank = (size_t)dnn__meas_batch_dims(&l->out, e->p.mbs, d);
      for (size_t k = 0; k < X->out_rank; k++)
        X->out_dims[k] = (size_t)d[k];
    }
  }
  return st;
}

/* The layout layer `p`'s backward wants its output gradient in. */
static dnnl_memory_desc_t wanted_grad_md(const xd *e, size_t p) {
  const xlayer *X = &e->layers[p];
  const dnnl_primitive_desc_t pd = X->dpd ? X->dpd : X->wpd;
  if (pd) {
    const dnnl_memory_desc_t *md =
        dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0);
    if (md && md->ndims > 0)
      return *md;
  }
  return e->t[p].act->md;
}

/* Gradient buffers, from the last tensor to the first (an add's output
 * gradient exists before its inputs are decided). */
static dnn_status gradients(xd *e, dnn_error *err) {
  dnn_status st = DNN_OK;
  for (size_t j = e->last; j-- > 0 && st == DNN_OK;) {
    xtensor *t = &e->t[j];
    if (!t->used || !t->needs_grad)
      continue;
    size_t only = e->pl.t[j].only;
    if (t->external) {
      dnnl_memory_desc_t md = out_md_plain(e, j);
      st = buf_new(e, &md, true, false, &t->grad, err);
      continue;
    }
    /* An add's input that nothing else differentiates: the add's output
     * gradient itself (the model's aliasing). Flatten likewise. */
    const dnn_layer *ol =
        only != DNN_MEAS_NONE ? dnn_net_layer(e->p.net, only) : NULL;
    if (t->contribs == 1 && ol && ol->kind == DNN_LAYER_ADD &&
        e->t[only].grad) {
      t->grad = e->t[only].grad;
      t->alias_layer = only;
      continue;
    }
    if (t->contribs == 1 && ol && ol->kind == DNN_LAYER_FLATTEN &&
        e->t[only].grad) {
      /* In the dims of the producer's kernel (a global pooling writes
       * (N, C, 1, 1) where the IR says (N, C)). */
      dnnl_memory_desc_t md;
      if (dnnl_memory_desc_reshape(&md, &e->t[only].grad->md, t->act->md.ndims,
                                   t->act->md.dims) == dnnl_success) {
        st = buf_view(e, &md, e->t[only].grad, &t->grad, err);
        t->alias_layer = only;
        continue;
      }
    }
    dnnl_memory_desc_t md = wanted_grad_md(e, j);
    st = buf_new(e, &md, false, false, &t->grad, err);
  }
  /* What the next stage sends back arrives plain. */
  for (size_t k = 0; k < e->pl.n_out && st == DNN_OK; k++) {
    xtensor *t = &e->t[e->pl.out[k]];
    if (!t->needs_grad)
      continue;
    dnnl_memory_desc_t md = dnn__meas_md_plain(&t->grad->md);
    st = buf_new(e, &md, false, false, &t->recv_grad, err);
    if (st == DNN_OK)
      st = add_reorder(e, &t->apply, t->recv_grad, t->grad, err);
  }
  for (size_t k = 0; k < e->pl.n_out && st == DNN_OK; k++) {
    xtensor *t = &e->t[e->pl.out[k]];
    if (!md_is_plain(&t->act->md)) {
      dnnl_memory_desc_t md = dnn__meas_md_plain(&t->act->md);
      st = buf_new(e, &md, true, false, &t->send, err);
    }
  }
  return st;
}

/* ---- Parameters ---------------------------------------------------------- */

/* Descriptors of a layer's parameters: weights (or scale) and bias (or
 * shift), as its forward kernel reads them. */
static void param_mds(const xlayer *X, const dnnl_memory_desc_t **w,
                      const dnnl_memory_desc_t **b) {
  *w = *b = NULL;
  if (X->fpd == NULL || X->l->params == 0)
    return;
  if (X->l->kind == DNN_LAYER_BATCHNORM) {
    *w = dnnl_primitive_desc_query_md(X->fpd, dnnl_query_exec_arg_md,
                                      DNNL_ARG_SCALE);
    *b = dnnl_primitive_desc_query_md(X->fpd, dnnl_query_exec_arg_md,
                                      DNNL_ARG_SHIFT);
  } else {
    *w = dnnl_primitive_desc_query_md(X->fpd, dnnl_query_weights_md, 0);
    *b = dnnl_primitive_desc_query_md(X->fpd, dnnl_query_weights_md, 1);
  }
  if (*w && (*w)->ndims == 0)
    *w = NULL;
  if (*b && (*b)->ndims == 0)
    *b = NULL;
}

static size_t align16(size_t n) {
  return (n + 15) / 16 * 16;
}

static dnn_status parameters(xd *e, dnn_error *err) {
  size_t total = 0;
  for (size_t i = e->p.first; i < e->last; i++) {
    xlayer *X = &e->layers[i];
    const dnnl_memory_desc_t *w, *b;
    param_mds(X, &w, &b);
    X->poff = total;
    if (w)
      total += align16(md_floats(w));
    if (b)
      total += align16(md_floats(b));
    e->pl.poff[i] = X->poff;
    e->pl.pend[i] = total;
    e->params += X->l->params;
  }
  e->nflat = total;
  size_t arrays = e->p.optimizer == DNN_MEAS_EXEC_ADAM       ? 4
                  : e->p.optimizer == DNN_MEAS_EXEC_MOMENTUM ? 3
                                                             : 2;
  size_t bytes;
  if (!dnn__mul_ok(align16(total ? total : 16) * arrays, sizeof(float), &bytes))
    return nomem(err);
  e->raw = dnn_calloc(1, bytes + 64);
  if (e->raw == NULL)
    return nomem(err);
  float *base = (float *)(((uintptr_t)e->raw + 63) & ~(uintptr_t)63);
  size_t stride = align16(total ? total : 16);
  e->stride = stride;
  e->W = base;
  e->G = base + stride;
  e->M = arrays >= 3 ? base + 2 * stride : NULL;
  e->V = arrays >= 4 ? base + 3 * stride : NULL;
  dnn_status st = DNN_OK;
  for (size_t i = e->p.first; i < e->last && st == DNN_OK; i++) {
    xlayer *X = &e->layers[i];
    const dnnl_memory_desc_t *w, *b;
    param_mds(X, &w, &b);
    size_t off = X->poff;
    if (w) {
      size_t n = md_floats(w);
      dnn__meas_fill(e->W + off, n, e->p.seed + 31 * i);
      /* Scaled by 1/sqrt(fan-in) so that activations stay O(1). */
      double fan = X->l->kind == DNN_LAYER_BATCHNORM
                       ? 1.0
                       : dnn__d(X->l->params) /
                             dnn__d(X->out_dims[1] ? X->out_dims[1] : 1);
      float scale = (float)(1.0 / sqrt(fan > 1 ? fan : 1));
      for (size_t q = 0; q < n; q++)
        e->W[off + q] *= scale;
      if (X->l->kind == DNN_LAYER_BATCHNORM)
        for (size_t q = 0; q < n; q++)
          e->W[off + q] = 1.0f + 0.1f * e->W[off + q];
      st = buf_at(e, w, e->W + off, &X->w, err);
      if (st == DNN_OK)
        st = buf_at(e, w, e->G + off, &X->gw, err);
      off += align16(n);
    }
    if (b && st == DNN_OK) {
      size_t n = md_floats(b);
      dnn__meas_fill(e->W + off, n, e->p.seed + 37 * i);
      for (size_t q = 0; q < n; q++)
        e->W[off + q] *= 0.1f;
      st = buf_at(e, b, e->W + off, &X->b, err);
      if (st == DNN_OK)
        st = buf_at(e, b, e->G + off, &X->gb, err);
    }
  }
  return st;
}

/* ---- Operations ---------------------------------------------------------- */

/* Per-slot state a forward descriptor asks for (statistics, workspace). */
static dnn_status state_bufs(xd *e, xlayer *X, dnn_error *err) {
  static const int args[] = {DNNL_ARG_MEAN, DNNL_ARG_VARIANCE,
                             DNNL_ARG_WORKSPACE};
  xbuf **dst[] = {&X->mean, &X->var, &X->ws};
  dnn_status st = DNN_OK;
  for (size_t k = 0; k < DNN_ARRAY_LEN(args) && st == DNN_OK; k++) {
    const dnnl_memory_desc_t *md =
        dnnl_primitive_desc_query_md(X->fpd, dnnl_query_exec_arg_md, args[k]);
    if (md && md->ndims > 0)
      st = buf_new(e, md, true, false, dst[k], err);
  }
  return st;
}

/* Every argument of a primitive descriptor that may carry a memory. */
static const int ALL_ARGS[] = {
    DNNL_ARG_SRC_0,      DNNL_ARG_SRC_1,        DNNL_ARG_WEIGHTS,
    DNNL_ARG_BIAS,       DNNL_ARG_DST,          DNNL_ARG_DIFF_SRC_0,
    DNNL_ARG_DIFF_SRC_1, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_BIAS,
    DNNL_ARG_DIFF_DST,   DNNL_ARG_MEAN,         DNNL_ARG_VARIANCE,
    DNNL_ARG_SCALE,      DNNL_ARG_SHIFT,        DNNL_ARG_DIFF_SCALE,
    DNNL_ARG_DIFF_SHIFT, DNNL_ARG_WORKSPACE,    DNNL_ARG_SCRATCHPAD};

/*
 * The operations of one kernel call of layer X: each argument bound to
 * its buffer, with the conversions before (`pre`) and the gradient
 * writes after (`post`) it, then appended to `l` in that order. `acc`
 * adds the weight gradients into the gradient buffer.
 */
static dnn_status kernel_ops(xd *e, xlayer *X, dnnl_primitive_desc_t pd,
                             dnnl_primitive_t prim, bool fwd, bool acc,
                             xlist *l, dnn_error *err) {
  xlist pre = {0}, post = {0};
  xop op;
  memset(&op, 0, sizeof op);
  op.kind = OP_PRIM;
  op.prim = prim;
  dnn_status st = DNN_OK;
  const dnn_layer *ly = X->l;
  for (size_t a = 0; a < DNN_ARRAY_LEN(ALL_ARGS) && st == DNN_OK; a++) {
    int arg = ALL_ARGS[a];
    const dnnl_memory_desc_t *md =
        dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
    if (md == NULL || md->ndims == 0)
      continue;
    xbuf *b = NULL;
    size_t k;
    switch (arg) {
    case DNNL_ARG_SRC_0:
    case DNNL_ARG_SRC_1:
      k = (size_t)(arg - DNNL_ARG_SRC_0);
      if (X->src[k] && dnnl_memory_desc_equal(&X->src[k]->md, md))
        b = X->src[k];
      else
        st = act_in(e, &pre, ly->inputs[k], md, &b, err);
      if (fwd)
        X->src[k] = b;
      break;
    case DNNL_ARG_WEIGHTS:
    case DNNL_ARG_SCALE:
      /* Weights a backward kernel wants in another layout than the
       * forward's are converted at every call, as frameworks on oneDNN do
       * (PyTorch's mkldnn ops, oneDNN's training example). */
      st = need(e, &pre, X->w, md, &b, err);
      break;
    case DNNL_ARG_BIAS:
    case DNNL_ARG_SHIFT:
      st = need(e, &pre, X->b, md, &b, err);
      break;
    case DNNL_ARG_DST:
      st = need(e, &pre, e->t[ly->index].act, md, &b, err);
      break;
    case DNNL_ARG_DIFF_DST:
      st = need(e, &pre, e->t[ly->index].grad, md, &b, err);
      break;
    case DNNL_ARG_DIFF_SRC_0:
    case DNNL_ARG_DIFF_SRC_1: {
      k = (size_t)(arg - DNNL_ARG_DIFF_SRC_0);
      size_t j = ly->inputs[k];
      if (!ly->needs_input_grad || !e->t[j].needs_grad) {
        st = buf_new(e, md, false, false, &b, err); /* discarded */
        break;
      }
      bool first = dnn__xplan_edge_first(&e->pl, j, ly->index, k);
      st = grad_target(e, j, first, md, &b, err);
      if (st == DNN_OK)
        st = emit(e, &post, j, first, b, err);
      break;
    }
    case DNNL_ARG_DIFF_WEIGHTS:
    case DNNL_ARG_DIFF_SCALE:
    case DNNL_ARG_DIFF_BIAS:
    case DNNL_ARG_DIFF_SHIFT: {
      xbuf *g = arg == DNNL_ARG_DIFF_WEIGHTS || arg == DNNL_ARG_DIFF_SCALE
                    ? X->gw
                    : X->gb;
      if (!acc && dnnl_memory_desc_equal(&g->md, md)) {
        b = g;
        break;
      }
      st = buf_new(e, md, false, false, &b, err);
      if (st == DNN_OK)
        st = acc ? add_accum(e, &post, b, g, err)
                 : add_reorder(e, &post, b, g, err);
      break;
    }
    case DNNL_ARG_MEAN:
      b = X->mean;
      break;
    case DNNL_ARG_VARIANCE:
      b = X->var;
      break;
    case DNNL_ARG_WORKSPACE:
      b = X->ws;
      break;
    case DNNL_ARG_SCRATCHPAD:
      st = buf_at(e, md, e->scratch, &b, err);
      break;
    default:
      break;
    }
    if (st == DNN_OK && b == NULL)
      st = DNN_FAIL(err, DNN_ETOOLFAIL,
                    "oneDNN argument %d of layer '%s' has no buffer", arg,
                    ly->name);
    if (st == DNN_OK && !dnnl_memory_desc_equal(&b->md, md))
      st = DNN_FAIL(err, DNN_ETOOLFAIL,
                    "oneDNN argument %d of layer '%s' has another layout "
                    "than its buffer",
                    arg, ly->name);
    if (st)
      break;
    op_arg(&op, arg, b);
  }
  for (size_t q = 0; q < pre.n && st == DNN_OK; q++)
    st = list_add(l, &pre.op[q], err);
  if (st == DNN_OK)
    st = list_add(l, &op, err);
  for (size_t q = 0; q < post.n && st == DNN_OK; q++)
    st = list_add(l, &post.op[q], err);
  dnn_free(pre.op);
  dnn_free(post.op);
  return st;
}

/* The operations of every pass of layer X. */
static dnn_status layer_ops(xd *e, xlayer *X, dnn_error *err) {
  const dnn_layer *l = X->l;
  dnn_status st = DNN_OK;
  X->share = 1;
  switch (l->kind) {
  case DNN_LAYER_INPUT:
  case DNN_LAYER_FLATTEN:
    if (l->kind == DNN_LAYER_FLATTEN && l->needs_input_grad) {
      /* Backward: a view when the input gradient is aliased, else a
       * write of the reshaped gradient. */
      size_t j = l->inputs[0];
      xtensor *t = &e->t[j];
      if (t->needs_grad && t->alias_layer != l->index) {
        dnnl_memory_desc_t md;
        xbuf *v = NULL;
        if (dnnl_memory_desc_reshape(&md, &e->t[l->index].grad->md,
                                     t->grad->md.ndims,
                                     t->grad->md.dims) != dnnl_success)
          return DNN_FAIL(err, DNN_EUNSUPPORTED,
                          "cannot reshape the gradient of layer '%s'", l->name);
        st = buf_view(e, &md, e->t[l->index].grad, &v, err);
        bool first = dnn__xplan_edge_first(&e->pl, j, l->index, 0);
        for (int a = 0; a < 2 && st == DNN_OK; a++)
          st = emit(e, &X->run[DNN_PASS_BWD_DATA][a], j, first, v, err);
      }
    }
    return st;
  case DNN_LAYER_DROPOUT: {
    st = buf_new(e, &e->t[l->index].act->md, true, false, &X->mask, err);
    xop op;
    memset(&op, 0, sizeof op);
    op.kind = OP_DROP_FWD;
    op.p = l->p.dropout.p;
    op.c = X->mask;
    op.b = e->t[l->index].act;
    if (st == DNN_OK)
      st = act_in(e, &X->run[DNN_PASS_FWD][0], l->inputs[0], &op.b->md, &op.a,
                  err);
    if (st == DNN_OK)
      st = list_add(&X->run[DNN_PASS_FWD][0], &op, err);
    size_t j = l->inputs[0];
    if (st == DNN_OK && l->needs_input_grad && e->t[j].needs_grad) {
      bool first = dnn__xplan_edge_first(&e->pl, j, l->index, 0);
      for (int a = 0; a < 2 && st == DNN_OK; a++) {
        xlist *lst = &X->run[DNN_PASS_BWD_DATA][a];
        op.kind = OP_DROP_BWD;
        st = need(e, lst, e->t[l->index].grad, &e->t[l->index].act->md, &op.a,
                  err);
        if (st == DNN_OK)
          st = grad_target(e, j, first, &op.a->md, &op.b, err);
        if (st == DNN_OK)
          st = list_add(lst, &op, err);
        if (st == DNN_OK)
          st = emit(e, lst, j, first, op.b, err);
      }
    }
    return st;
  }
  case DNN_LAYER_ADD: {
    TRY(make_prim(e, X->fpd, &X->fprim, err));
    TRY(kernel_ops(e, X, X->fpd, X->fprim, true, false,
                   &X->run[DNN_PASS_FWD][0], err));
    /* Backward: each input's gradient is the output's (aliased or
     * written). */
    for (size_t k = 0; k < l->n_inputs && l->needs_input_grad; k++) {
      size_t j = l->inputs[k];
      xtensor *t = &e->t[j];
      if (!t->needs_grad || t->alias_layer == l->index)
        continue;
      bool first = dnn__xplan_edge_first(&e->pl, j, l->index, k);
      for (int a = 0; a < 2; a++)
        TRY(emit(e, &X->run[DNN_PASS_BWD_DATA][a], j, first,
                 e->t[l->index].grad, err));
    }
    return DNN_OK;
  }
  default:
    break;
  }
  /* Kernels: forward, then the backward calls, each plain and
   * accumulating. */
  TRY(make_prim(e, X->fpd, &X->fprim, err));
  TRY(state_bufs(e, X, err));
  TRY(kernel_ops(e, X, X->fpd, X->fprim, true, false, &X->run[DNN_PASS_FWD][0],
                 err));
  if (l->kind == DNN_LAYER_SOFTMAX_XENT) {
    size_t per = 1, cols = l->in.dim[l->in.rank - 1];
    for (size_t k = 0; k < l->in.rank - 1; k++)
      per *= l->in.dim[k];
    xop op;
    memset(&op, 0, sizeof op);
    op.kind = OP_XENT_FWD;
    op.a = e->t[l->index].act;
    op.rows = e->p.mbs * per;
    op.cols = cols;
    /* The copies of a sample share its labels. */
    op.per = per;
    op.span = per * e->p.copies;
    TRY(list_add(&X->run[DNN_PASS_FWD][0], &op, err));
    size_t j = l->inputs[0];
    if (l->needs_input_grad && e->t[j].needs_grad) {
      bool first = dnn__xplan_edge_first(&e->pl, j, l->index, 0);
      for (int a = 0; a < 2; a++) {
        xlist *lst = &X->run[DNN_PASS_BWD_DATA][a];
        op.kind = OP_XENT_BWD;
        TRY(grad_target(e, j, first, &op.a->md, &op.b, err));
        TRY(list_add(lst, &op, err));
        TRY(emit(e, lst, j, first, op.b, err));
      }
    }
    return DNN_OK;
  }
  if (X->dpd) {
    TRY(make_prim(e, X->dpd, &X->dprim, err));
    for (int a = 0; a < 2; a++)
      TRY(kernel_ops(e, X, X->dpd, X->dprim, false, a == 1,
                     &X->run[DNN_PASS_BWD_DATA][a], err));
  }
  if (X->wpd) {
    TRY(make_prim(e, X->wpd, &X->wprim, err));
    for (int a = 0; a < 2; a++)
      TRY(kernel_ops(e, X, X->wpd, X->wprim, false, a == 1,
                     &X->run[DNN_PASS_BWD_WEIGHTS][a], err));
  }
  if (X->fused)
    X->share = dnn__meas_bwd_share(e->p.net, l->index, e->p.mbs, DNN_DTYPE_FP32,
                                   DNN_PASS_BWD_DATA);
fail:
  return st;
}

/* ---- Batch augmentation ------------------------------------------------- */

/* Runs a one-off reorder `from` -> `to` (set-up, not timed). */
static dnn_status reorder_once(xd *e, const dnnl_memory_desc_t *fmd,
                               dnnl_memory_t from,
                               const dnnl_memory_desc_t *tmd, dnnl_memory_t to,
                               dnn_error *err) {
  dnn_status st = DNN_OK;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_primitive_t prim = NULL;
  DNN__MEAS_DNNL_TRY(
      dnnl_reorder_primitive_desc_create(&pd, fmd, e->eng, tmd, e->eng, NULL),
      "reorder_primitive_desc_create");
  DNN__MEAS_DNNL_TRY(dnnl_primitive_create(&prim, pd), "primitive_create");
  dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
  DNN__MEAS_DNNL_TRY(dnnl_primitive_execute(prim, e->stream, 2, args),
                     "primitive_execute");
  DNN__MEAS_DNNL_TRY(dnnl_stream_wait(e->stream), "stream_wait");
fail:
  if (prim)
    dnnl_primitive_destroy(prim);
  if (pd)
    dnnl_primitive_desc_destroy(pd);
  return st;
}

/* In a plain batch of n samples of `floats` each (dims d, batch first),
 * sample k becomes a copy of the first of its group of `copies`, mirrored
 * along the last axis when k is an odd copy of an image (rank 4): the
 * augmented copies of batch augmentation, made once. */
static void copy_samples(float *x, size_t n, size_t floats, int nd,
                         const int64_t *d, size_t copies) {
  size_t w = nd == 4 ? (size_t)d[3] : 0;
  for (size_t k = 0; k < n; k++) {
    size_t j = k % copies;
    if (j == 0)
      continue;
    const float *src = x + (k - j) * floats;
    float *dst = x + k * floats;
    if (j % 2 == 1 && w > 1) {
      for (size_t r = 0; r < floats / w; r++)
        for (size_t c = 0; c < w; c++)
          dst[r * w + c] = src[r * w + (w - 1 - c)];
    } else {
      memcpy(dst, src, floats * sizeof *dst);
    }
  }
}

/* The stage's input data (filled at random) as groups of copies. */
static dnn_status augment_inputs(xd *e, dnn_error *err) {
  dnn_status st = DNN_OK;
  if (e->p.copies <= 1)
    return DNN_OK;
  for (size_t j = e->p.first; j < e->last && st == DNN_OK; j++) {
    const xtensor *t = &e->t[j];
    if (!t->deferred || t->act == NULL)
      continue;
    const dnnl_memory_desc_t *md = &t->act->md;
    dnnl_memory_desc_t plain = dnn__meas_md_plain(md);
    size_t n = (size_t)md->dims[0], bytes = dnnl_memory_desc_get_size(&plain);
    size_t floats = bytes / sizeof(float) / (n ? n : 1);
    bool is_plain = md_is_plain(md);
    for (size_t k = 0; k < t->act->n && st == DNN_OK; k++) {
      dnnl_memory_t m = t->act->m[k], tmp = NULL;
      if (!is_plain) {
        DNN__MEAS_DNNL_TRY(
            dnnl_memory_create(&tmp, &plain, e->eng, DNNL_MEMORY_ALLOCATE),
            "memory_create");
        st = reorder_once(e, md, m, &plain, tmp, err);
      }
      void *ptr = NULL;
      if (st == DNN_OK &&
          dnnl_memory_get_data_handle(tmp ? tmp : m, &ptr) != dnnl_success)
        st = DNN_FAIL(err, DNN_ETOOLFAIL, "oneDNN get_data_handle failed");
      if (st == DNN_OK)
        copy_samples(ptr, n, floats, md->ndims, md->dims, e->p.copies);
      if (st == DNN_OK && tmp)
        st = reorder_once(e, &plain, tmp, md, m, err);
      if (tmp)
        dnnl_memory_destroy(tmp);
    }
  }
fail:
  return st;
}

static void xd_free(dnn__xeng *eng);
static const dnn__xeng_ops xd_ops;

dnn_status dnn__xeng_dnnl_alloc(const dnn__xeng_params *p, dnn__xeng **out,
                                dnn_error *err) {
  *out = NULL;
  xd *e = dnn_calloc(1, sizeof *e);
  if (e == NULL)
    return nomem(err);
  e->base.ops = &xd_ops;
  e->base.pl = &e->pl;
  for (size_t s = 0; s < DNN__XENG_MAX_SLOTS; s++)
    e->loss[s] = NAN;
  e->p = *p;
  e->L = dnn_net_layer_count(p->net);
  e->last = p->first + p->count;
  e->rng = p->seed ^ 0x9e3779b97f4a7c15ULL;
  DNN_ASSERT(e->last <= e->L);
  dnn_status st = DNN_OK;
  TRY(dnn__meas_dnnl_open(&e->eng, &e->stream, &e->attr, err));
  e->layers = dnn_calloc(e->L, sizeof *e->layers);
  if (e->layers == NULL) {
    st = nomem(err);
    goto fail;
  }
  for (size_t i = 0; i < e->L; i++) {
    e->layers[i].l = dnn_net_layer(p->net, i);
    e->layers[i].in_stage = i >= p->first && i < e->last;
  }
  TRY(tensors(e, err));
  TRY(forward_pds(e, err));
  /* One scratchpad, as large as the largest kernel's. */
  for (size_t i = p->first; i < e->last; i++) {
    dnnl_primitive_desc_t pds[3] = {e->layers[i].fpd, e->layers[i].dpd,
                                    e->layers[i].wpd};
    for (size_t k = 0; k < 3; k++) {
      if (pds[k] == NULL)
        continue;
      const dnnl_memory_desc_t *md =
          dnnl_primitive_desc_query_md(pds[k], dnnl_query_scratchpad_md, 0);
      size_t b = md ? dnnl_memory_desc_get_size(md) : 0;
      if (b > e->scratch_bytes)
        e->scratch_bytes = b;
    }
  }
  e->scratch_raw = dnn_malloc(e->scratch_bytes + 64);
  if (e->scratch_raw == NULL) {
    st = nomem(err);
    goto fail;
  }
  e->scratch = (void *)(((uintptr_t)e->scratch_raw + 63) & ~(uintptr_t)63);
  TRY(parameters(e, err));
  TRY(gradients(e, err));
  for (size_t i = p->first; i < e->last; i++) {
    xlayer *X = &e->layers[i];
    TRY(layer_ops(e, X, err));
    if (X->l->n_inputs > 0) {
      xtensor *t = &e->t[X->l->inputs[0]];
      const xbuf *b = X->src[0] ? X->src[0] : t->act;
      X->in_rank = b ? (size_t)b->md.ndims : 0;
      for (size_t k = 0; k < X->in_rank; k++)
        X->in_dims[k] = (size_t)b->md.dims[k];
    }
  }
  /* Input data nobody converted (a stage's own input layer read by a
   * plain C layer) gets a plain buffer. */
  for (size_t j = p->first; j < e->last; j++)
    if (e->t[j].deferred && e->t[j].act == NULL) {
      dnnl_memory_desc_t md = out_md_plain(e, j);
      TRY(buf_new(e, &md, true, true, &e->t[j].act, err));
    }
  for (size_t j = p->first; j < e->last; j++)
    if (e->t[j].deferred) {
      xlayer *X = &e->layers[j];
      X->out_rank = (size_t)e->t[j].act->md.ndims;
      for (size_t k = 0; k < X->out_rank; k++)
        X->out_dims[k] = (size_t)e->t[j].act->md.dims[k];
    }
  for (size_t k = 0; k < e->pl.n_out; k++) {
    xtensor *t = &e->t[e->pl.out[k]];
    if (t->send)
      TRY(add_reorder(e, &t->pack, t->act, t->send, err));
  }
  TRY(augment_inputs(e, err));
  *out = &e->base;
  return DNN_OK;
fail:
  xd_free(&e->base);
  return st;
}

static void xd_free(dnn__xeng *eng) {
  xd *e = (xd *)eng;
  if (e == NULL)
    return;
  for (size_t i = 0; e->layers && i < e->L; i++) {
    xlayer *X = &e->layers[i];
    for (int p = 0; p < DNN_PASS_COUNT; p++)
      for (int a = 0; a < 2; a++)
        dnn_free(X->run[p][a].op);
  }
  for (size_t j = 0; e->t && j < e->L; j++) {
    dnn_free(e->t[j].apply.op);
    dnn_free(e->t[j].pack.op);
  }
  for (size_t k = 0; k < e->n_prims; k++)
    dnnl_primitive_destroy(e->prims[k]);
  for (size_t k = 0; k < e->n_pds; k++)
    dnnl_primitive_desc_destroy(e->pds[k]);
  for (size_t k = 0; k < e->n_bufs; k++) {
    for (size_t q = 0; q < e->bufs[k]->n; q++)
      if (e->bufs[k]->m[q])
        dnnl_memory_destroy(e->bufs[k]->m[q]);
    dnn_free(e->bufs[k]);
  }
  dnn_free(e->bufs);
  dnn_free(e->prims);
  dnn_free(e->pds);
  dnn_free(e->layers);
  dnn_free(e->t);
  dnn__xplan_free(&e->pl);
  dnn_free(e->raw);
  dnn_free(e->scratch_raw);
  if (e->attr)
    dnnl_primitive_attr_destroy(e->attr);
  if (e->stream)
    dnnl_stream_destroy(e->stream);
  if (e->eng)
    dnnl_engine_destroy(e->eng);
  dnn_free(e);
}

/* ------------------------------------------------------------------------ */
/* Running                                                                  */
/* ------------------------------------------------------------------------ */

/* xorshift64*: dropout masks (cheap, as a framework's RNG kernel is). */
static unsigned long long rng_next(unsigned long long *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ULL;
}

static dnn_status run_op(xd *e, const xop *op, size_t slot, dnn_error *err) {
  dnn_status st = DNN_OK;
  switch (op->kind) {
  case OP_PRIM: {
    dnnl_exec_arg_t args[OP_MAX_ARGS];
    for (int k = 0; k < op->n; k++)
      args[k] = (dnnl_exec_arg_t){op->arg[k], mem_of(op->buf[k], slot)};
    DNN__MEAS_DNNL_TRY(dnnl_primitive_execute(op->prim, e->stream, op->n, args),
                       "primitive_execute");
    DNN__MEAS_DNNL_TRY(dnnl_stream_wait(e->stream), "stream_wait");
    break;
  }
  case OP_XENT_FWD: {
    const float *prob = ptr_of(op->a, slot);
    double loss = 0;
    for (size_t r = 0; r < op->rows; r++) {
      size_t c = dnn__xplan_label(r, op->per, op->span, op->cols);
      double q = (double)prob[r * op->cols + c];
      loss -= log(q > 1e-30 ? q : 1e-30);
    }
    e->loss[slot] = loss / (double)op->rows;
    break;
  }
  case OP_XENT_BWD: {
    const float *prob = ptr_of(op->a, slot);
    float *dx = ptr_of(op->b, slot);
    float inv = 1.0f / (float)op->rows;
    size_t n = op->rows * op->cols;
    for (size_t q = 0; q < n; q++)
      dx[q] = prob[q] * inv;
    for (size_t r = 0; r < op->rows; r++)
      dx[r * op->cols + dnn__xplan_label(r, op->per, op->span, op->cols)] -=
          inv;
    break;
  }
  case OP_DROP_FWD:
  case OP_DROP_BWD: {
    const float *x = ptr_of(op->a, slot);
    float *y = ptr_of(op->b, slot), *mask = ptr_of(op->c, slot);
    size_t n = md_floats(&op->a->md);
    float scale = (float)(1.0 / (1.0 - op->p));
    if (op->kind == OP_DROP_FWD) {
      unsigned long long limit =
          (unsigned long long)(op->p * 18446744073709551615.0);
      for (size_t q = 0; q < n; q++)
        mask[q] = rng_next(&e->rng) >= limit ? scale : 0.0f;
    }
    for (size_t q = 0; q < n; q++)
      y[q] = x[q] * mask[q];
    break;
  }
  default:
    break;
  }
fail:
  return st;
}

static dnn_status run_list(xd *e, const xlist *l, size_t slot, double *glue_s,
                           dnn_error *err) {
  dnn_status st = DNN_OK;
  double glue = 0;
  for (size_t k = 0; k < l->n && st == DNN_OK; k++) {
    double t0 = l->op[k].glue ? dnn_meas_now_s() : 0;
    st = run_op(e, &l->op[k], slot, err);
    if (l->op[k].glue)
      glue += dnn_meas_now_s() - t0;
  }
  if (glue_s)
    *glue_s = glue;
  return st;
}

static bool xd_runs(const dnn__xeng *eng, size_t i, dnn_pass pass) {
  const xd *e = (const xd *)eng;
  DNN_ASSERT(i >= e->p.first && i < e->last);
  return e->layers[i].run[pass][0].n > 0 || e->layers[i].run[pass][1].n > 0;
}

static dnn_status xd_run(dnn__xeng *eng, size_t i, dnn_pass pass, size_t slot,
                         bool accumulate, double *glue_s, dnn_error *err) {
  xd *e = (xd *)eng;
  DNN_ASSERT(i >= e->p.first && i < e->last && slot < e->p.slots);
  return run_list(e, &e->layers[i].run[pass][accumulate ? 1 : 0], slot, glue_s,
                  err);
}

static double xd_fused_share(const dnn__xeng *eng, size_t i) {
  const xd *e = (const xd *)eng;
  return e->layers[i].fused ? e->layers[i].share : 1;
}

static dnn_status xd_update(dnn__xeng *eng, dnn_error *err) {
  xd *e = (xd *)eng;
  (void)err;
  if (e->nflat == 0)
    return DNN_OK;
  e->step++;
  if (e->p.optimizer == DNN_MEAS_EXEC_ADAM) {
    /* Adam (Kingma & Ba 2015) in plain C: oneDNN has no fused kernel. */
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    float c1 = 1.0f - powf(b1, (float)e->step);
    float c2 = 1.0f - powf(b2, (float)e->step);
    float lr = (float)e->p.lr * sqrtf(c2) / c1;
    for (size_t q = 0; q < e->nflat; q++) {
      float g = e->G[q];
      e->M[q] = b1 * e->M[q] + (1 - b1) * g;
      e->V[q] = b2 * e->V[q] + (1 - b2) * g * g;
      e->W[q] -= lr * e->M[q] / (sqrtf(e->V[q]) + eps);
    }
    return DNN_OK;
  }
  float lr = (float)e->p.lr;
  if (e->M) {
    /* Momentum (heavy ball): v = mu v + g, w -= lr v. */
    const float mu = 0.9f;
    for (size_t q = 0; q < e->nflat; q++) {
      e->M[q] = mu * e->M[q] + e->G[q];
      e->W[q] -= lr * e->M[q];
    }
  } else {
    for (size_t q = 0; q < e->nflat; q++)
      e->W[q] -= lr * e->G[q];
  }
  return DNN_OK;
}

static float *xd_grads(dnn__xeng *eng, size_t *n) {
  xd *e = (xd *)eng;
  *n = e->nflat;
  return e->G;
}

static size_t xd_params_count(const dnn__xeng *eng) {
  const xd *e = (const xd *)eng;
  return e->params;
}

/* ---- Boundaries ---------------------------------------------------------- */

static dnn_status xd_share_params(dnn__xeng *eng, const dnn__xeng *own,
                                  dnn_error *err) {
  xd *e = (xd *)eng;
  const xd *owner = (const xd *)own;
  dnn_status st = dnn__xplan_share_check(
      e->nflat, e->p.optimizer, owner->stride, owner->p.optimizer, err);
  if (st)
    return st;
  /* Every parameter memory is a view at an offset of W or G. */
  for (size_t i = e->p.first; i < e->last; i++) {
    xlayer *X = &e->layers[i];
    xbuf *bufs[4] = {X->w, X->b, X->gw, X->gb};
    const float *old[4] = {e->W, e->W, e->G, e->G};
    float *now[4] = {owner->W, owner->W, owner->G, owner->G};
    for (size_t k = 0; k < 4; k++) {
      if (bufs[k] == NULL)
        continue;
      void *ptr = NULL;
      DNN__MEAS_DNNL_TRY(dnnl_memory_get_data_handle(bufs[k]->m[0], &ptr),
                         "get_data_handle");
      size_t off = (size_t)((const float *)ptr - old[k]);
      DNN__MEAS_DNNL_TRY(
          dnnl_memory_set_data_handle(bufs[k]->m[0], now[k] + off),
          "set_data_handle");
    }
  }
  dnn_free(e->raw);
  e->raw = NULL;
  e->W = owner->W;
  e->G = owner->G;
  e->M = owner->M;
  e->V = owner->V;
  e->stride = owner->stride;
fail:
  return st;
}

static size_t xd_in_floats(const dnn__xeng *eng, size_t k) {
  const xd *e = (const xd *)eng;
  return md_floats(&e->t[e->pl.in[k]].act->md);
}

static size_t xd_out_floats(const dnn__xeng *eng, size_t k) {
  const xd *e = (const xd *)eng;
  const xtensor *t = &e->t[e->pl.out[k]];
  return md_floats(t->send ? &t->send->md : &t->act->md);
}

static float *xd_in_act(dnn__xeng *eng, size_t k, size_t slot, size_t *n,
                        size_t *layer) {
  xd *e = (xd *)eng;
  xtensor *t = &e->t[e->pl.in[k]];
  *layer = e->pl.in[k];
  *n = md_floats(&t->act->md);
  return ptr_of(t->act, slot);
}

static dnn_status xd_out_act(dnn__xeng *eng, size_t k, size_t slot, float **buf,
                             size_t *n, size_t *layer, dnn_error *err) {
  xd *e = (xd *)eng;
  xtensor *t = &e->t[e->pl.out[k]];
  *layer = e->pl.out[k];
  xbuf *b = t->act;
  dnn_status st = DNN_OK;
  if (t->send) {
    st = run_list(e, &t->pack, slot, NULL, err);
    b = t->send;
  }
  *n = md_floats(&b->md);
  *buf = ptr_of(b, slot);
  return st;
}

static float *xd_out_grad(dnn__xeng *eng, size_t k, size_t *n) {
  xd *e = (xd *)eng;
  xtensor *t = &e->t[e->pl.out[k]];
  DNN_ASSERT(t->recv_grad);
  *n = md_floats(&t->recv_grad->md);
  return ptr_of(t->recv_grad, 0);
}

static dnn_status xd_out_grad_apply(dnn__xeng *eng, size_t k, size_t slot,
                                    dnn_error *err) {
  xd *e = (xd *)eng;
  return run_list(e, &e->t[e->pl.out[k]].apply, slot, NULL, err);
}

static dnn_status xd_in_grad(dnn__xeng *eng, size_t k, size_t slot, float **buf,
                             size_t *n, dnn_error *err) {
  (void)err;
  xd *e = (xd *)eng;
  xtensor *t = &e->t[e->pl.in[k]];
  *n = md_floats(&t->grad->md);
  *buf = ptr_of(t->grad, slot);
  return DNN_OK;
}

static size_t xd_dims(const dnn__xeng *eng, size_t i, bool output,
                      size_t dims[DNN_SHAPE_MAX_RANK + 1]) {
  const xd *e = (const xd *)eng;
  const xlayer *X = &e->layers[i];
  size_t r = output ? X->out_rank : X->in_rank;
  for (size_t k = 0; k < r && k <= DNN_SHAPE_MAX_RANK; k++)
    dims[k] = output ? X->out_dims[k] : X->in_dims[k];
  return r;
}

static dnn_status xd_loss(dnn__xeng *eng, size_t slot, double *out,
                          dnn_error *err) {
  const xd *e = (const xd *)eng;
  *out = e->loss[slot];
  if (isnan(*out))
    return DNN_FAIL(err, DNN_ENOTFOUND,
                    "no loss: the stage has no softmax_xent layer, or no "
                    "forward ran");
  return DNN_OK;
}

static const dnn__xeng_ops xd_ops = {
    .free = xd_free,
    .runs = xd_runs,
    .run = xd_run,
    .fused_share = xd_fused_share,
    .update = xd_update,
    .grads = xd_grads,
    .grads_sync = NULL /* the gradients are the host array */,
    .params_count = xd_params_count,
    .share_params = xd_share_params,
    .in_floats = xd_in_floats,
    .out_floats = xd_out_floats,
    .in_act = xd_in_act,
    .out_act = xd_out_act,
    .out_grad = xd_out_grad,
    .out_grad_apply = xd_out_grad_apply,
    .in_grad = xd_in_grad,
    .dims = xd_dims,
    .loss = xd_loss,
};

#endif /* DNNSIM_HAVE_DNNL */
