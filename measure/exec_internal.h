/*
 * measure/ private declarations of the executor (executor.c) and its
 * oneDNN engine (exec_dnnl.c): the kernels, tensors and parameters of one
 * pipeline stage, run layer by layer and pass by pass.
 *
 * Invariant: the engine owns every oneDNN object and buffer it creates and
 * frees them all in dnn__xeng_free; it never calls MPI (executor.c does),
 * so the boundary tensors it exposes are plain row-major float arrays that
 * the executor sends and receives as they are.
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
} dnn__xeng_params;

/*
 * Builds the primitives, tensors and parameters of the stage. Layer kinds
 * the engine cannot run are DNN_EUNSUPPORTED naming the layer; oneDNN
 * failures DNN_ETOOLFAIL; DNN_ENOMEM.
 */
dnn_status dnn__xeng_alloc(const dnn__xeng_params *p, dnn__xeng **out,
                           dnn_error *err);
void dnn__xeng_free(dnn__xeng *e);

/* Whether `pass` of layer `i` (a layer of the stage) does any work. */
bool dnn__xeng_runs(const dnn__xeng *e, size_t i, dnn_pass pass);

/*
 * Runs `pass` of layer `i` for the micro-batch held in `slot`: its
 * kernels, the layout conversions its inputs need and the writing or
 * accumulation of the gradients it produces. `accumulate` adds the weight
 * gradients to the ones already in the gradient buffer (micro-batches
 * after the first); otherwise they overwrite them. *glue_s (may be NULL)
 * receives the part of the time spent in conversions and accumulations.
 * For a layer whose backward oneDNN computes in one fused call (batch
 * norm), the call runs in bwd_data and bwd_weights only accumulates.
 */
dnn_status dnn__xeng_run(dnn__xeng *e, size_t i, dnn_pass pass, size_t slot,
                         bool accumulate, double *glue_s, dnn_error *err);

/* Share of a fused backward call that belongs to bwd_data (1 when the
 * layer has separate calls). */
double dnn__xeng_fused_share(const dnn__xeng *e, size_t i);

/* The optimizer update of every parameter of the stage. */
dnn_status dnn__xeng_update(dnn__xeng *e, dnn_error *err);

/*
 * The gradient buffer: layers' gradients lie in layer order, so the
 * gradients of layers [lo, hi) are one contiguous range. *off and *n in
 * floats (n may be 0 for layers without parameters).
 */
float *dnn__xeng_grads(dnn__xeng *e, size_t *n);
void dnn__xeng_grad_range(const dnn__xeng *e, size_t lo, size_t hi, size_t *off,
                          size_t *n);

/* Parameters the stage holds (the model's count) and the floats of its
 * buffers (with oneDNN's padding of blocked layouts). */
size_t dnn__xeng_params_count(const dnn__xeng *e);

/*
 * Makes `e` use `owner`'s parameter, gradient and optimizer-state storage
 * instead of its own (which it frees): the engines of one network at
 * several sizes train one set of weights. Their layouts may differ; what
 * counts for timing is that every size reads and writes the same memory.
 * DNN_EINVAL when `e`'s buffers do not fit in `owner`'s or their
 * optimizers differ; DNN_ETOOLFAIL from oneDNN. `owner` must outlive `e`.
 */
dnn_status dnn__xeng_share_params(dnn__xeng *e, const dnn__xeng *owner,
                                  dnn_error *err);

/* ---- Pipeline boundaries ------------------------------------------------- */

/*
 * The tensors a stage receives from the previous one (`in`: produced by
 * layers before `first` and read at or after it) and sends to the next
 * (`out`: produced before first + count and read after it), in layer
 * order, as plain row-major floats. `layer` is the producing layer.
 */
size_t dnn__xeng_n_in(const dnn__xeng *e);
size_t dnn__xeng_n_out(const dnn__xeng *e);

/* The layer producing input / output tensor k. */
size_t dnn__xeng_in_layer(const dnn__xeng *e, size_t k);
size_t dnn__xeng_out_layer(const dnn__xeng *e, size_t k);
/* Floats of input / output tensor k on the wire. */
size_t dnn__xeng_in_floats(const dnn__xeng *e, size_t k);
size_t dnn__xeng_out_floats(const dnn__xeng *e, size_t k);

/* Forward: the buffer to receive input k of `slot` into. */
float *dnn__xeng_in_act(dnn__xeng *e, size_t k, size_t slot, size_t *n,
                        size_t *layer);
/* Forward: converts output k of `slot` to plain floats (when its layout
 * is not) and returns the buffer to send. */
dnn_status dnn__xeng_out_act(dnn__xeng *e, size_t k, size_t slot, float **buf,
                             size_t *n, size_t *layer, dnn_error *err);
/* Whether input / output k carries a gradient back. */
bool dnn__xeng_in_needs_grad(const dnn__xeng *e, size_t k);
bool dnn__xeng_out_needs_grad(const dnn__xeng *e, size_t k);
/* Backward: the buffer to receive output k's gradient into, then
 * dnn__xeng_out_grad_apply writes it into the tensor's gradient (the first
 * contribution; local consumers add theirs). */
float *dnn__xeng_out_grad(dnn__xeng *e, size_t k, size_t *n);
dnn_status dnn__xeng_out_grad_apply(dnn__xeng *e, size_t k, size_t slot,
                                    dnn_error *err);
/* Backward: the gradient of input k of `slot`, complete once the stage's
 * backward of that micro-batch has run, to send. */
float *dnn__xeng_in_grad(dnn__xeng *e, size_t k, size_t slot, size_t *n);

/* Sets oneDNN's CPU threads (0 keeps them) and returns the previous count
 * for dnn__xeng_threads_restore (OpenMP builds; otherwise no effect). */
int dnn__xeng_threads(size_t threads);
void dnn__xeng_threads_restore(int prev);

/* ---- Structure, for tests and the step log ------------------------------ */

/*
 * The dims (batch first) of the tensor layer `i`'s forward kernel reads
 * (input 0) and writes, as the primitives were built. Returns the rank
 * (0 when the layer has no such tensor).
 */
size_t dnn__xeng_dims(const dnn__xeng *e, size_t i, bool output,
                      size_t dims[DNN_SHAPE_MAX_RANK + 1]);

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_MEASURE_EXEC_INTERNAL_H */
