/*
 * measure/ private declarations of the executor (executor.c) and its
 * engines: the kernels, tensors and parameters of one pipeline stage, run
 * layer by layer and pass by pass, by oneDNN on the CPU (exec_dnnl.c) or
 * cuDNN and cuBLAS on a GPU (exec_cudnn.c).
 *
 * Each engine's state starts with `dnn__xeng` (its operations table);
 * the dnn__xeng_* functions below dispatch through it, so executor.c is
 * the same for both.
 *
 * Invariant: an engine owns every object and buffer it creates and frees
 * them all in dnn__xeng_free; it never calls MPI (executor.c does), so the
 * boundary tensors and gradients it exposes are plain row-major float
 * arrays in host memory that the executor sends, receives and reduces as
 * they are. A GPU engine stages them: dnn__xeng_grads_sync moves a range
 * of the gradients between the device and the host array.
 */
#ifndef DNNSIM_MEASURE_EXEC_INTERNAL_H
#define DNNSIM_MEASURE_EXEC_INTERNAL_H

#include "internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most micro-batches whose activations a stage keeps at once. */
#define DNN__XENG_MAX_SLOTS 64

typedef struct dnn__xeng dnn__xeng;

/* Which kernels an engine runs. */
typedef enum dnn__xeng_kind {
  DNN__XENG_DNNL, /* oneDNN on the CPU */
  DNN__XENG_CUDNN /* cuDNN and cuBLAS on CUDA device 0 */
} dnn__xeng_kind;

/* What one stage runs. */
typedef struct dnn__xeng_params {
  const dnn_net *net;
  size_t first, count; /* the stage's layers [first, first + count) */
  size_t mbs;          /* samples per micro-batch (copies included) */
  size_t copies;       /* consecutive samples that are copies of one (batch
                          augmentation; the loss's labels follow), >= 1 */
  size_t slots;        /* micro-batches whose activations are kept at once */
  int optimizer;       /* dnn_meas_exec_optimizer */
  double lr;           /* learning rate of the update */
  unsigned long long seed;
  dnn__xeng_kind kind;
  double workspace_bytes; /* a GPU engine's per-layer convolution
                             workspace limit */
} dnn__xeng_params;

/* ---- The stage's tensors (exec_plan.c, shared by the engines) --------- */

/* One layer output as a stage sees it. */
typedef struct dnn__xplan_tensor {
  bool used;       /* produced or read by the stage */
  bool external;   /* produced before the stage: received */
  bool outgoing;   /* read after the stage: sent */
  bool needs_grad; /* used, and its producer reads its gradient */
  size_t contribs; /* gradient contributions: consumer edges in the stage
                      whose layer differentiates its inputs, and the one
                      the next stage sends when outgoing */
  size_t only;     /* the consumer of the last such edge (the only one when
                      contribs is 1 and the tensor is not outgoing), or
                      DNN_MEAS_NONE */
} dnn__xplan_tensor;

typedef struct dnn__xplan {
  const dnn_net *net;
  size_t L, first, last;   /* the stage is layers [first, last) */
  size_t *cons, *cons_off; /* consumers of each layer's output (CSR),
                              increasing */
  dnn__xplan_tensor *t;    /* L entries (unused past last) */
  size_t *in, n_in;        /* received tensors (producer layers), in order */
  size_t *out, n_out;      /* sent tensors */
  size_t *poff, *pend;     /* each stage layer's range of the engine's flat
                              parameter and gradient buffers, in floats
                              (the engine fills them; L entries) */
} dnn__xplan;

/* Builds the plan of layers [first, first + count). DNN_ENOMEM. */
dnn_status dnn__xplan_build(const dnn_net *net, size_t first, size_t count,
                            dnn__xplan *pl, dnn_error *err);
void dnn__xplan_free(dnn__xplan *pl);

/* Whether consumer edge (i, k) of tensor j (input k of layer i) comes
 * first in backward order, and so writes the gradient rather than adding
 * to it: the highest consumer first, its inputs in order; a received
 * gradient (outgoing tensors) before all. */
bool dnn__xplan_edge_first(const dnn__xplan *pl, size_t j, size_t i, size_t k);

/* Whether an engine holding `nflat` parameter floats with optimizer `opt`
 * can use storage of `stride` floats set up for optimizer `owner_opt`
 * (dnn__xeng_share_params); DNN_EINVAL saying why not. */
dnn_status dnn__xplan_share_check(size_t nflat, int opt, size_t stride,
                                  int owner_opt, dnn_error *err);

/* The label of loss row r among `classes`: a hash of the row of the sample
 * whose copy it is (`per` rows a sample, `span` = per x copies a group of
 * copies, which share their labels). */
size_t dnn__xplan_label(size_t r, size_t per, size_t span, size_t classes);

/*
 * What an engine does (the functions below that dispatch to them say
 * what each means). `grads_sync` is NULL for an engine whose gradients
 * live in the host array.
 */
typedef struct dnn__xeng_ops {
  void (*free)(dnn__xeng *e);
  bool (*runs)(const dnn__xeng *e, size_t i, dnn_pass pass);
  dnn_status (*run)(dnn__xeng *e, size_t i, dnn_pass pass, size_t slot,
                    bool accumulate, double *glue_s, dnn_error *err);
  double (*fused_share)(const dnn__xeng *e, size_t i);
  dnn_status (*update)(dnn__xeng *e, dnn_error *err);
  float *(*grads)(dnn__xeng *e, size_t *n);
  dnn_status (*grads_sync)(dnn__xeng *e, size_t off, size_t n, bool to_host,
                           dnn_error *err);
  size_t (*params_count)(const dnn__xeng *e);
  dnn_status (*share_params)(dnn__xeng *e, const dnn__xeng *owner,
                             dnn_error *err);
  size_t (*in_floats)(const dnn__xeng *e, size_t k);
  size_t (*out_floats)(const dnn__xeng *e, size_t k);
  float *(*in_act)(dnn__xeng *e, size_t k, size_t slot, size_t *n,
                   size_t *layer);
  dnn_status (*out_act)(dnn__xeng *e, size_t k, size_t slot, float **buf,
                        size_t *n, size_t *layer, dnn_error *err);
  float *(*out_grad)(dnn__xeng *e, size_t k, size_t *n);
  dnn_status (*out_grad_apply)(dnn__xeng *e, size_t k, size_t slot,
                               dnn_error *err);
  dnn_status (*in_grad)(dnn__xeng *e, size_t k, size_t slot, float **buf,
                        size_t *n, dnn_error *err);
  size_t (*dims)(const dnn__xeng *e, size_t i, bool output,
                 size_t dims[DNN_SHAPE_MAX_RANK + 1]);
  dnn_status (*loss)(dnn__xeng *e, size_t slot, double *out, dnn_error *err);
} dnn__xeng_ops;

/* The first member of every engine's state. */
struct dnn__xeng {
  const dnn__xeng_ops *ops;
  const dnn__xplan *pl; /* the engine's plan of the stage */
};

/*
 * Builds the kernels, tensors and parameters of the stage with the
 * engine p->kind names. Layer kinds the engine cannot run are
 * DNN_EUNSUPPORTED naming the layer; a build without the engine's library
 * DNN_EUNSUPPORTED, no CUDA device DNN_ENODEVICE; library failures
 * DNN_ETOOLFAIL; DNN_ENOMEM.
 */
dnn_status dnn__xeng_alloc(const dnn__xeng_params *p, dnn__xeng **out,
                           dnn_error *err);
/* The engines' own (exec_dnnl.c, exec_cudnn.c). */
dnn_status dnn__xeng_dnnl_alloc(const dnn__xeng_params *p, dnn__xeng **out,
                                dnn_error *err);
dnn_status dnn__xeng_cudnn_alloc(const dnn__xeng_params *p, dnn__xeng **out,
                                 dnn_error *err);

static inline void dnn__xeng_free(dnn__xeng *e) {
  if (e)
    e->ops->free(e);
}

/* Whether `pass` of layer `i` (a layer of the stage) does any work. */
static inline bool dnn__xeng_runs(const dnn__xeng *e, size_t i, dnn_pass pass) {
  return e->ops->runs(e, i, pass);
}

/*
 * Runs `pass` of layer `i` for the micro-batch held in `slot`: its
 * kernels, the layout conversions its inputs need and the writing or
 * accumulation of the gradients it produces, and returns when they are
 * done (a GPU engine synchronises its stream). `accumulate` adds the
 * weight gradients to the ones already in the gradient buffer
 * (micro-batches after the first); otherwise they overwrite them. *glue_s
 * (may be NULL) receives the part of the time spent in conversions,
 * accumulations and host-device copies. For a layer whose backward is one
 * fused call (batch norm), the call runs in bwd_data and bwd_weights only
 * accumulates, or does nothing.
 */
static inline dnn_status dnn__xeng_run(dnn__xeng *e, size_t i, dnn_pass pass,
                                       size_t slot, bool accumulate,
                                       double *glue_s, dnn_error *err) {
  return e->ops->run(e, i, pass, slot, accumulate, glue_s, err);
}

/* Share of a fused backward call that belongs to bwd_data (1 when the
 * layer has separate calls). */
static inline double dnn__xeng_fused_share(const dnn__xeng *e, size_t i) {
  return e->ops->fused_share(e, i);
}

/* The optimizer update of every parameter of the stage. */
static inline dnn_status dnn__xeng_update(dnn__xeng *e, dnn_error *err) {
  return e->ops->update(e, err);
}

/*
 * The gradient buffer in host memory: layers' gradients lie in layer
 * order, so the gradients of layers [lo, hi) are one contiguous range.
 * *off and *n in floats (n may be 0 for layers without parameters). On a
 * GPU engine the array holds what the last dnn__xeng_grads_sync to the
 * host copied there.
 */
static inline float *dnn__xeng_grads(dnn__xeng *e, size_t *n) {
  return e->ops->grads(e, n);
}
static inline void dnn__xeng_grad_range(const dnn__xeng *e, size_t lo,
                                        size_t hi, size_t *off, size_t *n) {
  DNN_ASSERT(lo <= hi && lo >= e->pl->first && hi <= e->pl->last);
  *off = lo < hi ? e->pl->poff[lo] : 0;
  *n = lo < hi ? e->pl->pend[hi - 1] - *off : 0;
}

/*
 * Copies gradients [off, off + n) from the device to the host array
 * (to_host: before they are reduced) or back (after). DNN_OK at once for
 * an engine without a device.
 */
static inline dnn_status dnn__xeng_grads_sync(dnn__xeng *e, size_t off,
                                              size_t n, bool to_host,
                                              dnn_error *err) {
  return e->ops->grads_sync ? e->ops->grads_sync(e, off, n, to_host, err)
                            : DNN_OK;
}

/* Parameters the stage holds (the model's count). */
static inline size_t dnn__xeng_params_count(const dnn__xeng *e) {
  return e->ops->params_count(e);
}

/*
 * Makes `e` use `owner`'s parameter, gradient and optimizer-state storage
 * instead of its own (which it frees): the engines of one network at
 * several sizes train one set of weights. Their layouts may differ; what
 * counts for timing is that every size reads and writes the same memory.
 * DNN_EINVAL when `e`'s buffers do not fit in `owner`'s, their optimizers
 * or their kinds differ; DNN_ETOOLFAIL from the library. `owner` must
 * outlive `e`.
 */
static inline dnn_status
dnn__xeng_share_params(dnn__xeng *e, const dnn__xeng *owner, dnn_error *err) {
  if (e->ops != owner->ops)
    return DNN_FAIL(err, DNN_EINVAL,
                    "cannot share parameters between engines of two kinds");
  return e->ops->share_params(e, owner, err);
}

/* ---- Pipeline boundaries ------------------------------------------------- */

/*
 * The tensors a stage receives from the previous one (`in`: produced by
 * layers before `first` and read at or after it) and sends to the next
 * (`out`: produced before first + count and read after it), in layer
 * order, as plain row-major floats in host memory.
 */
static inline size_t dnn__xeng_n_in(const dnn__xeng *e) {
  return e->pl->n_in;
}
static inline size_t dnn__xeng_n_out(const dnn__xeng *e) {
  return e->pl->n_out;
}

/* The layer producing input / output tensor k. */
static inline size_t dnn__xeng_in_layer(const dnn__xeng *e, size_t k) {
  return e->pl->in[k];
}
static inline size_t dnn__xeng_out_layer(const dnn__xeng *e, size_t k) {
  return e->pl->out[k];
}
/* Floats of input / output tensor k on the wire. */
static inline size_t dnn__xeng_in_floats(const dnn__xeng *e, size_t k) {
  return e->ops->in_floats(e, k);
}
static inline size_t dnn__xeng_out_floats(const dnn__xeng *e, size_t k) {
  return e->ops->out_floats(e, k);
}

/* Forward: the buffer to receive input k of `slot` into (the layers that
 * read it see it from their next forward of that slot on). */
static inline float *dnn__xeng_in_act(dnn__xeng *e, size_t k, size_t slot,
                                      size_t *n, size_t *layer) {
  return e->ops->in_act(e, k, slot, n, layer);
}
/* Forward: converts output k of `slot` to plain floats in host memory
 * (when it is not) and returns the buffer to send. */
static inline dnn_status dnn__xeng_out_act(dnn__xeng *e, size_t k, size_t slot,
                                           float **buf, size_t *n,
                                           size_t *layer, dnn_error *err) {
  return e->ops->out_act(e, k, slot, buf, n, layer, err);
}
/* Whether input / output k carries a gradient back. */
static inline bool dnn__xeng_in_needs_grad(const dnn__xeng *e, size_t k) {
  return e->pl->t[e->pl->in[k]].needs_grad;
}
static inline bool dnn__xeng_out_needs_grad(const dnn__xeng *e, size_t k) {
  return e->pl->t[e->pl->out[k]].needs_grad;
}
/* Backward: the buffer to receive output k's gradient into, then
 * dnn__xeng_out_grad_apply writes it into the tensor's gradient (the first
 * contribution; local consumers add theirs). */
static inline float *dnn__xeng_out_grad(dnn__xeng *e, size_t k, size_t *n) {
  return e->ops->out_grad(e, k, n);
}
static inline dnn_status dnn__xeng_out_grad_apply(dnn__xeng *e, size_t k,
                                                  size_t slot, dnn_error *err) {
  return e->ops->out_grad_apply(e, k, slot, err);
}
/* Backward: the gradient of input k of `slot` in host memory, complete
 * once the stage's backward of that micro-batch has run, to send. */
static inline dnn_status dnn__xeng_in_grad(dnn__xeng *e, size_t k, size_t slot,
                                           float **buf, size_t *n,
                                           dnn_error *err) {
  return e->ops->in_grad(e, k, slot, buf, n, err);
}

/* Sets oneDNN's CPU threads (0 keeps them) and returns the previous count
 * for dnn__xeng_threads_restore (OpenMP builds; otherwise no effect). */
int dnn__xeng_threads(size_t threads);
void dnn__xeng_threads_restore(int prev);

/* The mean cross-entropy of the stage's loss layer in `slot`'s last
 * forward (not timed; DNN_ENOTFOUND without a loss layer or before one
 * ran). */
static inline dnn_status dnn__xeng_loss(dnn__xeng *e, size_t slot, double *out,
                                        dnn_error *err) {
  return e->ops->loss(e, slot, out, err);
}

/* ---- Structure, for tests and the step log ------------------------------ */

/*
 * The dims (batch first) of the tensor layer `i`'s forward kernel reads
 * (input 0) and writes, as the kernels were built. Returns the rank
 * (0 when the layer has no such tensor).
 */
static inline size_t dnn__xeng_dims(const dnn__xeng *e, size_t i, bool output,
                                    size_t dims[DNN_SHAPE_MAX_RANK + 1]) {
  return e->ops->dims(e, i, output, dims);
}

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_MEASURE_EXEC_INTERNAL_H */
