/*
 * model/ private declarations: the network record behind the opaque
 * dnn_net, the per-layer record that extends the public dnn_layer with
 * what costs and activation memory need, and the helpers the cost files
 * share.
 *
 * Invariant: a network only grows; every layer's inputs have smaller
 * indices (topological order), and a layer record never moves once added,
 * so the pointers dnn_net_layer hands out stay valid until dnn_net_free.
 * Everything a network owns lives in its one arena.
 */
#ifndef DNNSIM_MODEL_INTERNAL_H
#define DNNSIM_MODEL_INTERNAL_H

#include "core/internal.h"
#include "dnnsim/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of one integer token id or class label (int64, as PyTorch). */
#define DNN__INDEX_BYTES 8
/* Bytes of one entry of a dropout mask (a bool per element). */
#define DNN__MASK_BYTES 1
/* Bytes of one entry of an implicit-GEMM offset table (int32). */
#define DNN__OFFSET_BYTES 4
/* Bytes of one saved normalisation statistic (kept in fp32). */
#define DNN__STAT_BYTES 4

/*
 * One layer: the public view first (dnn_net_layer returns &pub), then
 * bookkeeping that later layers update when they consume this one.
 */
typedef struct dnn__layer {
  dnn_layer pub;
  size_t last_consumer; /* highest index reading this output; SIZE_MAX none */
  bool out_needed;      /* a consumer's backward reads this output (through
                           flatten views) */
  /* Pooling kinds: window extents summed over the output rows / columns
   * (so one channel of one sample visits win_h_sum * win_w_sum inputs),
   * and the largest window, for the depth. */
  size_t win_h_sum, win_w_sum;
  size_t win_h_max, win_w_max;
} dnn__layer;

struct dnn_net {
  dnn__arena arena; /* layers, names, the index and the hash table */
  const char *name;
  dnn__layer **layers; /* n of them, capacity cap */
  size_t n, cap;
  size_t *hash;    /* open addressing: layer index + 1, 0 = empty */
  size_t hash_cap; /* power of two, > 2 n */
};

/* The record of layer i (i < n). */
static inline const dnn__layer *dnn__net_rec(const dnn_net *net, size_t i) {
  DNN_ASSERT(i < net->n);
  return net->layers[i];
}

/* true when layer `l` has a weight gradient: trainable parameters, or an
 * fc whose weights are tied to an earlier layer (counted there). */
static inline bool dnn__layer_has_weights(const dnn_layer *l) {
  return l->params > 0 || (l->kind == DNN_LAYER_FC && l->p.fc.tied);
}

/* true when the output gradient of layer `l` is needed: it or some layer
 * before it has parameters. */
static inline bool dnn__layer_needs_out_grad(const dnn_layer *l) {
  return dnn__layer_has_weights(l) || l->needs_input_grad;
}

/* Bytes per element of a tensor of shape `s`: token ids are int64. */
static inline double dnn__elem_bytes(const dnn_shape *s, dnn_dtype dtype) {
  return s->tokens ? (double)DNN__INDEX_BYTES : dnn__d(dnn_dtype_bytes(dtype));
}

/* Feature width an fc / softmax / layernorm acts on: the last dimension,
 * or C*H*W for an image that fc flattens. Rows = elements / width. */
size_t dnn__last_dim(const dnn_shape *s);

/* Forward multiply-accumulates of a conv2d, fc, lstm, attention or
 * nce_loss layer per sample; 0 for other kinds. */
double dnn__layer_macs_per_sample(const dnn_layer *l);

/*
 * The direct-convolution cost of conv layer `l` for one pass, including
 * bias terms and gradient accumulation at fan-out points; `macs` receives
 * the multiply-accumulates. Shared by dnn_layer_cost and
 * dnn_conv_algo_cost so the two agree for the direct algorithm.
 */
void dnn__conv_direct_cost(const dnn_net *net, const dnn__layer *l,
                           dnn_pass pass, double batch, double s, dnn_cost *out,
                           double *macs);

/* true when `pass` runs for this layer (forward of a non-input layer,
 * bwd_data when an input needs a gradient, bwd_weights with parameters). */
bool dnn__pass_runs(const dnn_layer *l, dnn_pass pass);

/* ---- Sequence-model kinds (model/seq.c) ----------------------------------
 * attn_scores, attn_context, nce_loss and slice: shape inference and
 * parameters (called by dnn_net_add with the resolved inputs `in` and the
 * record being built, whose pub.in is already inputs[0]'s shape), costs
 * (called by dnn_layer_cost; `macs` receives the multiply-accumulates) and
 * the elements per sample a layer keeps beside its output. */
dnn_status dnn__seq_infer(const dnn_layer_spec *sp, const dnn__layer *const *in,
                          dnn__layer *rec, dnn_error *err);
void dnn__seq_cost(const dnn_layer *l, dnn_pass pass, double batch, double s,
                   dnn_cost *out, double *macs);
double dnn__seq_kept_elems(const dnn_layer *l);
/* true when input k of `l` is the fused QKV tensor of an attention kind:
 * the attention layers write disjoint slices of its gradient (dQ, dK by
 * attn_scores, dV by attn_context), so nothing is accumulated. */
bool dnn__seq_disjoint_grad_input(const dnn_layer *l, size_t k);

/* ---- Builder errors (model/net.c) -------------------------------------------
 * "layer 'NAME' (KIND): what", DNN_EINVAL: the form of every user error of
 * dnn_net_add, whichever file checks the layer. LFAIL fills in the
 * position, the caller's `err` and the spec `sp`. */
dnn_status dnn__layer_fail(dnn_error *err, const char *file, int line,
                           const dnn_layer_spec *sp, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
#define LFAIL(...) dnn__layer_fail(err, __FILE__, __LINE__, sp, __VA_ARGS__)

/* ---- Sequence-model zoo (model/zoo_seq.c) ----------------------------------
 * Builds the zoo entry named dnn_net_name(net) (gpt*, bert-large, inst2vec*,
 * ncc*) into the empty `net`. */
dnn_status dnn__zoo_seq_build(dnn_net *net, const dnn_zoo_params *zp,
                              dnn_error *err);

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_MODEL_INTERNAL_H */
