/*
 * The executor's cuDNN engine (exec_internal.h): the kernels, tensors and
 * parameters of one pipeline stage on CUDA device 0, run as a framework
 * runs them in training, in fp32.
 *
 * Method: every layer becomes the cuDNN or cuBLAS calls the GPU
 * calibration times (cuda.c): convolutions with the fastest algorithm
 * cudnnFind*AlgorithmEx reports for each pass (cuDNN's benchmark mode, as
 * PyTorch's cudnn.benchmark; one workspace as large as the largest chosen
 * one, each within the per-layer workspace limit) and CUDNN_FMA_MATH (no
 * TF32, as the fp32 calibration); fully connected layers as cublasSgemm
 * (row-major Y = X W^T as column-major GEMMs) with the bias added by
 * cudnnAddTensor and reduced by cudnnConvolutionBackwardBias; pooling, batch
 * norm (spatial, one fused backward call), ReLU/tanh/sigmoid, softmax and
 * dropout their cuDNN calls. Tensors are plain NCHW (rank-1 outputs as
 * (N, C, 1, 1)), so no layout conversions exist. Gradients follow the
 * model's accounting (model/cost.c, exec_plan.c): the first contribution
 * to a tensor's gradient writes it (beta 0) and later ones add (beta 1,
 * in the kernel where cuDNN and cuBLAS take a beta); the gradient of an
 * add or flatten input that nothing else differentiates is the add's
 * output gradient itself (aliased, free). The loss gradient is
 * (p - onehot(label)) / rows in one cudnnOpTensor; the timed step does
 * not compute the scalar loss (cuDNN has no logarithm; it is one read of
 * p): the training check (xc_loss) does, on the host and untimed.
 *
 * Every micro-batch in flight has its own activations, batch-norm
 * statistics and dropout reserve (a slot); gradients are shared.
 * Parameters, their gradients and the momentum live in flat device
 * buffers in layer order (each layer's block 256-byte aligned), so the
 * gradients of consecutive layers are one range (an allreduce bucket) and
 * the update is two or three cuBLAS axpy/scal calls over the buffers.
 * Pipeline boundaries and gradient buckets are staged through pinned host
 * buffers (no CUDA-aware MPI assumed); the copies are charged where they
 * happen (a received input's to the first forward that reads it, as
 * glue; sends and reductions to their communication steps).
 *
 * Timing: every dnn__xeng_run ends with a stream synchronisation, so its
 * wall time is its layer's own; this serialises the host's launches with
 * the kernels (one launch latency per call that an asynchronous
 * framework overlaps), which is what per-layer timing costs.
 *
 * Written without a device (November 2026): it compiles and links
 * against CUDA 13 and cuDNN 9 here; its first run is step h of
 * measure/gpu-session.sh. Adam is not offered (its update needs an
 * elementwise division that neither cuDNN's OpTensor nor cuBLAS has).
 *
 * Invariant: every CUDA, cuDNN and cuBLAS object created here is owned by
 * the engine and released by xc_free on every path.
 */
#define _POSIX_C_SOURCE 200809L
#include "exec_internal.h"

#include "dnnsim/measure.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if !DNNSIM_HAVE_CUDA

dnn_status dnn__xeng_cudnn_alloc(const dnn__xeng_params *p, dnn__xeng **out,
                                 dnn_error *err) {
  (void)p;
  *out = NULL;
  return DNN_FAIL(err, DNN_EUNSUPPORTED,
                  "the executor's GPU engine needs CUDA with cuDNN: this "
                  "dnnsim was built without it (install the CUDA toolkit "
                  "with cuDNN 9 and rebuild with -DDNNSIM_WITH_CUDA=ON)");
}

#else

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

#include "cuda_util.h"

/* The most workspace one convolution's search may use (the limit comes
 * from dnn_meas_exec_params.workspace_bytes: [hardware] workspace_MB in
 * validate). */
#define DNN__XC_WS_CAP ((size_t)1 << 40)
/* Floats per parameter block alignment (256 bytes). */
#define XC_ALIGN 64

#define MAXS DNN__XENG_MAX_SLOTS

enum {
  K_INPUT,
  K_CONV,
  K_FC,
  K_POOL,
  K_BN,
  K_ACT,
  K_SOFTMAX,
  K_XENT,
  K_ADD,
  K_DROP,
  K_FLAT
};

/* One layer output as this stage holds it. */
typedef struct ctensor {
  size_t per;             /* floats per sample */
  float *act[MAXS];       /* device, per slot (a flatten's: its input's) */
  float *grad;            /* device, shared by the slots; NULL without */
  size_t alias;           /* the layer whose output gradient grad is */
  float *host[MAXS];      /* pinned: received (external) or to send */
  bool fresh[MAXS];       /* external: host[slot] not yet on the device */
  float *host_grad[MAXS]; /* pinned: external: the gradient sent back */
  float *recv_grad;       /* pinned: outgoing: the next stage's gradient */
} ctensor;

typedef struct clayer {
  const dnn_layer *l;
  int kind;
  cudnnTensorDescriptor_t x, y, pb; /* input 0, output, parameter/bias */
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t cd;
  cudnnConvolutionFwdAlgo_t fa;
  cudnnConvolutionBwdDataAlgo_t da;
  cudnnConvolutionBwdFilterAlgo_t wa;
  cudnnPoolingDescriptor_t pool;
  cudnnActivationDescriptor_t act;
  cudnnDropoutDescriptor_t drop;
  void *drop_states;
  size_t drop_bytes; /* reserve per slot */
  void *drop_res[MAXS];
  float *mean[MAXS], *ivar[MAXS]; /* batch norm's saved statistics */
  float *run_mean, *run_var;
  float *onehot;           /* the loss's labels as rows of one-hot */
  size_t rows, cols, outs; /* 2-D views: fc rows x cols -> outs; others */
  size_t poff, nw, nb;     /* parameter block; weights, bias floats */
  double share;            /* batch norm: bwd_data's share of the call */
} clayer;

typedef struct xc xc;

/* The cuDNN engine. */
struct xc {
  dnn__xeng base; /* first: the operations table */
  dnn__xeng_params p;
  size_t L, last;
  dnn__xplan pl;
  cudnnHandle_t dnn;
  cublasHandle_t blas;
  cudaStream_t stream;
  clayer *layers; /* L entries (the stage's built) */
  ctensor *t;     /* L entries */
  float *W, *G, *M;
  float *Gh; /* pinned host copy of G for the reductions */
  size_t nflat, stride, params;
  void *ws;
  size_t ws_bytes;
  float *tmp; /* scratch of the largest tensor (a dropout's contribution,
                 a batch norm's unused input gradient) */
  size_t tmp_floats;
  size_t loss_layer; /* the stage's softmax_xent, or DNN_MEAS_NONE */
  bool ran[MAXS];    /* its forward ran in the slot */
  /* Owned memory. */
  void **dev, **pin;
  size_t n_dev, cap_dev, n_pin, cap_pin;
};

#define TRY(x)                                                                 \
  do {                                                                         \
    if ((st = (x)) != DNN_OK)                                                  \
      goto fail;                                                               \
  } while (0)

static dnn_status nomem(dnn_error *err) {
  return DNN_FAIL(err, DNN_ENOMEM, "out of memory building the executor");
}

/* ---- Memory -------------------------------------------------------------- */

static dnn_status keep(void ***list, size_t *n, size_t *cap, void *ptr,
                       dnn_error *err) {
  if (*n == *cap) {
    size_t c = *cap ? 2 * *cap : 64;
    void **m = dnn_realloc(*list, c * sizeof *m);
    if (m == NULL)
      return nomem(err);
    *list = m;
    *cap = c;
  }
  (*list)[(*n)++] = ptr;
  return DNN_OK;
}

/* n floats of device memory (zeroed), owned by the engine. */
static dnn_status dalloc(xc *e, size_t n, float **out, dnn_error *err) {
  dnn_status st = DNN_OK;
  void *p = NULL;
  *out = NULL;
  CUDA_TRY(cudaMalloc(&p, (n ? n : 1) * sizeof(float)));
  if ((st = keep(&e->dev, &e->n_dev, &e->cap_dev, p, err))) {
    cudaFree(p);
    return st;
  }
  CUDA_TRY(cudaMemsetAsync(p, 0, (n ? n : 1) * sizeof(float), e->stream));
  *out = p;
fail:
  return st;
}

/* n floats of pinned host memory, owned by the engine. */
static dnn_status halloc(xc *e, size_t n, float **out, dnn_error *err) {
  dnn_status st = DNN_OK;
  void *p = NULL;
  *out = NULL;
  CUDA_TRY(cudaMallocHost(&p, (n ? n : 1) * sizeof(float)));
  if ((st = keep(&e->pin, &e->n_pin, &e->cap_pin, p, err))) {
    cudaFreeHost(p);
    return st;
  }
  memset(p, 0, (n ? n : 1) * sizeof(float));
  *out = p;
fail:
  return st;
}

/* Copies n floats (cudaMemcpyKind k) on the engine's stream and waits. */
static dnn_status copy(xc *e, void *dst, const void *src, size_t n,
                       enum cudaMemcpyKind k, dnn_error *err) {
  dnn_status st = DNN_OK;
  CUDA_TRY(cudaMemcpyAsync(dst, src, n * sizeof(float), k, e->stream));
  CUDA_TRY(cudaStreamSynchronize(e->stream));
fail:
  return st;
}

/* Uploads n random values in [-1, 1) times `scale`, plus `shift`. */
static dnn_status fill(xc *e, float *dst, size_t n, unsigned long long seed,
                       float scale, float shift, dnn_error *err) {
  float *h = dnn_malloc((n ? n : 1) * sizeof *h);
  if (h == NULL)
    return nomem(err);
  dnn__meas_fill(h, n, seed);
  for (size_t q = 0; q < n; q++)
    h[q] = shift + scale * h[q];
  dnn_status st = copy(e, dst, h, n, cudaMemcpyHostToDevice, err);
  dnn_free(h);
  return st;
}

/* ---- Descriptors --------------------------------------------------------- */

static cudnnStatus_t desc4(cudnnTensorDescriptor_t *d, size_t n, size_t c,
                           size_t h, size_t w) {
  cudnnStatus_t s = cudnnCreateTensorDescriptor(d);
  if (s != CUDNN_STATUS_SUCCESS)
    return s;
  return cudnnSetTensor4dDescriptor(*d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                    (int)n, (int)c, (int)h, (int)w);
}

static size_t shape_elems(const dnn_shape *s) {
  return dnn_shape_elems(s);
}

static dnn_status unsupported(const dnn_layer *l, const char *why,
                              dnn_error *err) {
  return DNN_FAIL(err, DNN_EUNSUPPORTED,
                  "the GPU executor cannot run layer '%s' (%s): %s", l->name,
                  dnn_layer_kind_name(l->kind), why);
}

/* The fastest algorithm of each convolution pass (cudnnFind*Ex on the
 * layer's own buffers of slot 0, within `ws_cap` bytes). */
static dnn_status conv_algos(xc *e, clayer *X, float *x, float *y, float *dx,
                             void *ws, size_t ws_cap, dnn_error *err) {
  dnn_status st = DNN_OK;
  const dnn_layer *l = X->l;
  float *w = e->W + X->poff, *dw = e->G + X->poff;
  int got = 0;
  cudnnConvolutionFwdAlgoPerf_t fp[8];
  CUDNN_TRY(cudnnFindConvolutionForwardAlgorithmEx(
      e->dnn, X->x, x, X->w, w, X->cd, X->y, y, 8, &got, fp, ws, ws_cap));
  int k = 0;
  while (k < got && fp[k].status != CUDNN_STATUS_SUCCESS)
    k++;
  if (k == got)
    return unsupported(l, "cuDNN has no forward algorithm for it", err);
  X->fa = fp[k].algo;
  e->ws_bytes = fp[k].memory > e->ws_bytes ? fp[k].memory : e->ws_bytes;
  if (dx != NULL) {
    cudnnConvolutionBwdDataAlgoPerf_t dp[8];
    CUDNN_TRY(cudnnFindConvolutionBackwardDataAlgorithmEx(
        e->dnn, X->w, w, X->y, y, X->cd, X->x, dx, 8, &got, dp, ws, ws_cap));
    for (k = 0; k < got && dp[k].status != CUDNN_STATUS_SUCCESS;)
      k++;
    if (k == got)
      return unsupported(l, "cuDNN has no backward-data algorithm", err);
    X->da = dp[k].algo;
    e->ws_bytes = dp[k].memory > e->ws_bytes ? dp[k].memory : e->ws_bytes;
  }
  cudnnConvolutionBwdFilterAlgoPerf_t wp[8];
  CUDNN_TRY(cudnnFindConvolutionBackwardFilterAlgorithmEx(
      e->dnn, X->x, x, X->y, y, X->cd, X->w, dw, 8, &got, wp, ws, ws_cap));
  for (k = 0; k < got && wp[k].status != CUDNN_STATUS_SUCCESS;)
    k++;
  if (k == got)
    return unsupported(l, "cuDNN has no backward-filter algorithm", err);
  X->wa = wp[k].algo;
  e->ws_bytes = wp[k].memory > e->ws_bytes ? wp[k].memory : e->ws_bytes;
fail:
  return st;
}

/* The kind, the descriptors and the parameter sizes of layer i. */
static dnn_status layer_build(xc *e, size_t i, dnn_error *err) {
  clayer *X = &e->layers[i];
  const dnn_layer *l = X->l;
  size_t n = e->p.mbs, per = shape_elems(&l->out);
  size_t in_per = l->n_inputs ? shape_elems(&l->in) : 0;
  dnn_status st = DNN_OK;
  switch (l->kind) {
  case DNN_LAYER_INPUT:
    X->kind = K_INPUT;
    return DNN_OK;
  case DNN_LAYER_CONV2D: {
    X->kind = K_CONV;
    dnn__conv_shape s;
    dnn__meas_conv_shape(e->p.net, i, n, &s);
    CUDNN_TRY(desc4(&X->x, n, s.ic, s.ih, s.iw));
    CUDNN_TRY(desc4(&X->y, n, s.oc, s.oh, s.ow));
    CUDNN_TRY(cudnnCreateFilterDescriptor(&X->w));
    CUDNN_TRY(cudnnSetFilter4dDescriptor(
        X->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, (int)s.oc,
        (int)(s.ic / s.groups), (int)s.kh, (int)s.kw));
    CUDNN_TRY(cudnnCreateConvolutionDescriptor(&X->cd));
    CUDNN_TRY(cudnnSetConvolution2dDescriptor(
        X->cd, (int)s.ph, (int)s.pw, (int)s.sh, (int)s.sw, (int)s.dh, (int)s.dw,
        CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_TRY(cudnnSetConvolutionGroupCount(X->cd, (int)s.groups));
    CUDNN_TRY(cudnnSetConvolutionMathType(X->cd, CUDNN_FMA_MATH));
    int on, oc, oh, ow;
    CUDNN_TRY(cudnnGetConvolution2dForwardOutputDim(X->cd, X->x, X->w, &on, &oc,
                                                    &oh, &ow));
    if ((size_t)oc * (size_t)oh * (size_t)ow != per)
      return unsupported(l, "cuDNN's output shape differs from the model's",
                         err);
    X->nw = s.oc * (s.ic / s.groups) * s.kh * s.kw;
    X->nb = l->p.conv.bias ? s.oc : 0;
    if (X->nb)
      CUDNN_TRY(desc4(&X->pb, 1, s.oc, 1, 1));
    return DNN_OK;
  }
  case DNN_LAYER_FC: {
    if (l->p.fc.tied)
      return unsupported(l, "tied weights", err);
    X->kind = K_FC;
    X->cols = l->in.rank == 3 ? in_per : l->in.dim[l->in.rank - 1];
    X->rows = n * (l->in.rank == 2 ? l->in.dim[0] : 1);
    X->outs = l->p.fc.out_features;
    X->nw = X->outs * X->cols;
    X->nb = l->p.fc.bias ? X->outs : 0;
    CUDNN_TRY(desc4(&X->y, X->rows, X->outs, 1, 1));
    if (X->nb)
      CUDNN_TRY(desc4(&X->pb, 1, X->outs, 1, 1));
    return DNN_OK;
  }
  case DNN_LAYER_MAXPOOL:
  case DNN_LAYER_AVGPOOL:
  case DNN_LAYER_ADAPTIVE_AVGPOOL:
  case DNN_LAYER_GLOBAL_AVGPOOL: {
    X->kind = K_POOL;
    dnn__pool_shape s;
    dnn__meas_pool_shape(e->p.net, i, n, &s);
    CUDNN_TRY(cudnnCreatePoolingDescriptor(&X->pool));
    CUDNN_TRY(cudnnSetPooling2dDescriptor(
        X->pool,
        s.max ? CUDNN_POOLING_MAX : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING,
        CUDNN_NOT_PROPAGATE_NAN, (int)s.kh, (int)s.kw, (int)s.ph, (int)s.pw,
        (int)s.sh, (int)s.sw));
    CUDNN_TRY(desc4(&X->x, n, s.c, s.ih, s.iw));
    int on, oc, oh, ow;
    CUDNN_TRY(
        cudnnGetPooling2dForwardOutputDim(X->pool, X->x, &on, &oc, &oh, &ow));
    if ((size_t)oc * (size_t)oh * (size_t)ow != per)
      return unsupported(l, "cuDNN has no ceil-mode pooling", err);
    CUDNN_TRY(desc4(&X->y, n, (size_t)oc, (size_t)oh, (size_t)ow));
    return DNN_OK;
  }
  case DNN_LAYER_BATCHNORM: {
    if (l->in.rank != 3 && l->in.rank != 1)
      return unsupported(l, "batch norm over a sequence", err);
    X->kind = K_BN;
    size_t c = l->in.dim[0];
    size_t h = l->in.rank == 3 ? l->in.dim[1] : 1;
    size_t w = l->in.rank == 3 ? l->in.dim[2] : 1;
    CUDNN_TRY(desc4(&X->x, n, c, h, w));
    CUDNN_TRY(cudnnCreateTensorDescriptor(&X->pb));
    CUDNN_TRY(
        cudnnDeriveBNTensorDescriptor(X->pb, X->x, CUDNN_BATCHNORM_SPATIAL));
    X->nw = X->nb = c;
    X->share =
        dnn__meas_bwd_share(e->p.net, i, n, DNN_DTYPE_FP32, DNN_PASS_BWD_DATA);
    return DNN_OK;
  }
  case DNN_LAYER_ACTIVATION: {
    dnn_act a = l->p.act.act;
    if (a != DNN_ACT_RELU && a != DNN_ACT_TANH && a != DNN_ACT_SIGMOID)
      return unsupported(l, "cuDNN has no such activation", err);
    X->kind = K_ACT;
    CUDNN_TRY(cudnnCreateActivationDescriptor(&X->act));
    CUDNN_TRY(cudnnSetActivationDescriptor(
        X->act,
        a == DNN_ACT_TANH      ? CUDNN_ACTIVATION_TANH
        : a == DNN_ACT_SIGMOID ? CUDNN_ACTIVATION_SIGMOID
                               : CUDNN_ACTIVATION_RELU,
        CUDNN_NOT_PROPAGATE_NAN, 0));
    CUDNN_TRY(desc4(&X->x, n, per, 1, 1));
    return DNN_OK;
  }
  case DNN_LAYER_SOFTMAX:
  case DNN_LAYER_SOFTMAX_XENT: {
    X->kind = l->kind == DNN_LAYER_SOFTMAX ? K_SOFTMAX : K_XENT;
    if (X->kind == K_XENT)
      e->loss_layer = i;
    X->cols = l->in.dim[l->in.rank - 1];
    X->rows = n * (in_per / X->cols);
    CUDNN_TRY(desc4(&X->x, X->rows, X->cols, 1, 1));
    return DNN_OK;
  }
  case DNN_LAYER_ADD:
    X->kind = K_ADD;
    CUDNN_TRY(desc4(&X->x, n, per, 1, 1));
    return DNN_OK;
  case DNN_LAYER_DROPOUT:
    X->kind = K_DROP;
    CUDNN_TRY(desc4(&X->x, n, per, 1, 1));
    return DNN_OK;
  case DNN_LAYER_FLATTEN:
    X->kind = K_FLAT;
    return DNN_OK;
  default:
    return unsupported(l, "no cuDNN kernel in the executor", err);
  }
fail:
  return st;
}

/* ---- Building ------------------------------------------------------------ */

/* Where layer X's bias (or batch-norm shift) starts in a flat buffer. */
static size_t bias_off(const clayer *X) {
  return X->poff + (X->nw + XC_ALIGN - 1) / XC_ALIGN * XC_ALIGN;
}

/* Parameters in flat device buffers, initialised as exec_dnnl.c does
 * (weights ~ 1/sqrt(fan-in), batch-norm scales near 1, biases small). */
static dnn_status parameters(xc *e, dnn_error *err) {
  size_t total = 0;
  for (size_t i = e->p.first; i < e->last; i++) {
    clayer *X = &e->layers[i];
    X->poff = total;
    total += (X->nw + XC_ALIGN - 1) / XC_ALIGN * XC_ALIGN;
    total += (X->nb + XC_ALIGN - 1) / XC_ALIGN * XC_ALIGN;
    e->pl.poff[i] = X->poff;
    e->pl.pend[i] = total;
    e->params += X->l->params;
  }
  if (total > (size_t)INT32_MAX)
    return DNN_FAIL(err, DNN_EUNSUPPORTED,
                    "the GPU executor updates at most 2^31 parameters per "
                    "stage (cuBLAS int sizes); this stage holds %zu",
                    total);
  e->nflat = total;
  e->stride = total ? total : XC_ALIGN;
  size_t arrays = e->p.optimizer == DNN_MEAS_EXEC_MOMENTUM ? 3 : 2;
  dnn_status st = DNN_OK;
  float *base = NULL;
  TRY(dalloc(e, e->stride * arrays, &base, err));
  e->W = base;
  e->G = base + e->stride;
  e->M = arrays == 3 ? base + 2 * e->stride : NULL;
  TRY(halloc(e, e->stride, &e->Gh, err));
  for (size_t i = e->p.first; i < e->last; i++) {
    clayer *X = &e->layers[i];
    if (X->nw) {
      bool bn = X->kind == K_BN;
      double fan = X->kind == K_FC ? dnn__d(X->cols)
                   : X->kind == K_CONV
                       ? dnn__d(X->nw) / dnn__d(X->l->p.conv.out_channels)
                       : 1.0;
      float scale = (float)(1.0 / sqrt(fan > 1 ? fan : 1));
      TRY(fill(e, e->W + X->poff, X->nw, e->p.seed + 31 * i, bn ? 0.1f : scale,
               bn ? 1.0f : 0.0f, err));
    }
    if (X->nb)
      TRY(fill(e, e->W + bias_off(X), X->nb, e->p.seed + 37 * i, 0.1f, 0.0f,
               err));
  }
fail:
  return st;
}

/* Activations: per slot, a flatten's its input's, received ones with
 * pinned host copies, sent ones too; input data random. */
static dnn_status activations(xc *e, dnn_error *err) {
  dnn_status st = DNN_OK;
  size_t S = e->p.slots, n = e->p.mbs;
  for (size_t j = 0; j < e->last; j++) {
    const dnn__xplan_tensor *pt = &e->pl.t[j];
    ctensor *t = &e->t[j];
    t->alias = DNN_MEAS_NONE;
    if (!pt->used)
      continue;
    const dnn_layer *l = dnn_net_layer(e->p.net, j);
    t->per = shape_elems(&l->out);
    size_t floats = n * t->per;
    if (floats > e->tmp_floats)
      e->tmp_floats = floats;
    for (size_t s = 0; s < S; s++) {
      if (!pt->external && l->kind == DNN_LAYER_FLATTEN)
        t->act[s] = e->t[l->inputs[0]].act[s];
      else
        TRY(dalloc(e, floats, &t->act[s], err));
      if (pt->external || pt->outgoing)
        TRY(halloc(e, floats, &t->host[s], err));
      if (!pt->external && l->kind == DNN_LAYER_INPUT)
        TRY(fill(e, t->act[s], floats, e->p.seed + 101 * j + s, 1.0f, 0.0f,
                 err));
    }
  }
fail:
  return st;
}

/* Gradients, from the last tensor to the first (an add's output gradient
 * exists before its inputs are decided). */
static dnn_status gradients(xc *e, dnn_error *err) {
  dnn_status st = DNN_OK;
  size_t n = e->p.mbs;
  for (size_t j = e->last; j-- > 0;) {
    const dnn__xplan_tensor *pt = &e->pl.t[j];
    ctensor *t = &e->t[j];
    if (!pt->used || !pt->needs_grad)
      continue;
    size_t o = pt->only;
    if (!pt->external && !pt->outgoing && pt->contribs == 1 &&
        o != DNN_MEAS_NONE && e->t[o].grad &&
        (e->layers[o].kind == K_ADD || e->layers[o].kind == K_FLAT)) {
      t->grad = e->t[o].grad;
      t->alias = o;
      continue;
    }
    TRY(dalloc(e, n * t->per, &t->grad, err));
    for (size_t s = 0; pt->external && s < e->p.slots; s++)
      TRY(halloc(e, n * t->per, &t->host_grad[s], err));
    if (pt->outgoing)
      TRY(halloc(e, n * t->per, &t->recv_grad, err));
  }
fail:
  return st;
}

/* Per-slot state, the loss's labels and the convolution algorithms. */
static dnn_status layer_state(xc *e, void *ws, size_t ws_cap, dnn_error *err) {
  dnn_status st = DNN_OK;
  size_t S = e->p.slots;
  for (size_t i = e->p.first; i < e->last; i++) {
    clayer *X = &e->layers[i];
    const dnn_layer *l = X->l;
    switch (X->kind) {
    case K_CONV: {
      ctensor *in = &e->t[l->inputs[0]];
      TRY(conv_algos(e, X, in->act[0], e->t[i].act[0],
                     l->needs_input_grad ? in->grad : NULL, ws, ws_cap, err));
      break;
    }
    case K_BN:
      TRY(dalloc(e, X->nw, &X->run_mean, err));
      TRY(dalloc(e, X->nw, &X->run_var, err));
      TRY(fill(e, X->run_var, X->nw, 1, 0.0f, 1.0f, err));
      for (size_t s = 0; s < S; s++) {
        TRY(dalloc(e, X->nw, &X->mean[s], err));
        TRY(dalloc(e, X->nw, &X->ivar[s], err));
      }
      break;
    case K_XENT: {
      float *h = dnn_calloc(X->rows * X->cols, sizeof *h);
      if (h == NULL)
        return nomem(err);
      size_t per = X->rows / e->p.mbs;
      for (size_t r = 0; r < X->rows; r++)
        h[r * X->cols + dnn__xplan_label(r, per, per * e->p.copies, X->cols)] =
            1.0f;
      st = dalloc(e, X->rows * X->cols, &X->onehot, err);
      if (st == DNN_OK)
        st = copy(e, X->onehot, h, X->rows * X->cols, cudaMemcpyHostToDevice,
                  err);
      dnn_free(h);
      TRY(st);
      break;
    }
    case K_DROP: {
      size_t sb = 0;
      CUDNN_TRY(cudnnCreateDropoutDescriptor(&X->drop));
      CUDNN_TRY(cudnnDropoutGetStatesSize(e->dnn, &sb));
      float *states = NULL;
      TRY(dalloc(e, (sb + 3) / 4, &states, err));
      X->drop_states = states;
      CUDNN_TRY(cudnnSetDropoutDescriptor(
          X->drop, e->dnn, (float)l->p.dropout.p, states, sb, e->p.seed + i));
      CUDNN_TRY(cudnnDropoutGetReserveSpaceSize(X->x, &X->drop_bytes));
      for (size_t s = 0; s < S; s++) {
        float *r = NULL;
        TRY(dalloc(e, (X->drop_bytes + 3) / 4, &r, err));
        X->drop_res[s] = r;
      }
      break;
    }
    default:
      break;
    }
  }
fail:
  return st;
}

static void xc_free(dnn__xeng *eng);
static const dnn__xeng_ops xc_ops;

dnn_status dnn__xeng_cudnn_alloc(const dnn__xeng_params *p, dnn__xeng **out,
                                 dnn_error *err) {
  *out = NULL;
  if (p->optimizer == DNN_MEAS_EXEC_ADAM)
    return DNN_FAIL(err, DNN_EUNSUPPORTED,
                    "the GPU executor runs sgd and momentum: Adam's update "
                    "needs an elementwise division cuDNN and cuBLAS lack "
                    "(set [training] optimizer = momentum)");
  dnn_status st = dnn_meas_gpu_available(err);
  if (st)
    return st;
  xc *e = dnn_calloc(1, sizeof *e);
  if (e == NULL)
    return nomem(err);
  e->base.ops = &xc_ops;
  e->base.pl = &e->pl;
  e->loss_layer = DNN_MEAS_NONE;
  e->p = *p;
  e->L = dnn_net_layer_count(p->net);
  e->last = p->first + p->count;
  void *probe = NULL;
  size_t ws_cap =
      p->workspace_bytes < 1e15 ? (size_t)p->workspace_bytes : DNN__XC_WS_CAP;
  CUDA_TRY(cudaSetDevice(0));
  CUDA_TRY(cudaStreamCreate(&e->stream));
  CUDNN_TRY(cudnnCreate(&e->dnn));
  CUDNN_TRY(cudnnSetStream(e->dnn, e->stream));
  CUBLAS_TRY(cublasCreate(&e->blas));
  CUBLAS_TRY(cublasSetStream(e->blas, e->stream));
  TRY(dnn__xplan_build(p->net, p->first, p->count, &e->pl, err));
  e->layers = dnn_calloc(e->L, sizeof *e->layers);
  e->t = dnn_calloc(e->L, sizeof *e->t);
  if (!e->layers || !e->t) {
    st = nomem(err);
    goto fail;
  }
  for (size_t i = 0; i < e->L; i++)
    e->layers[i].l = dnn_net_layer(p->net, i);
  for (size_t i = p->first; i < e->last; i++)
    TRY(layer_build(e, i, err));
  TRY(parameters(e, err));
  TRY(activations(e, err));
  TRY(gradients(e, err));
  TRY(dalloc(e, e->tmp_floats, &e->tmp, err));
  /* The convolution search's workspace: the cap, or a quarter of what is
   * free when that is less. */
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess && free_b / 4 < ws_cap)
    ws_cap = free_b / 4;
  CUDA_TRY(cudaMalloc(&probe, ws_cap ? ws_cap : 1));
  TRY(layer_state(e, probe, ws_cap, err));
  cudaFree(probe);
  probe = NULL;
  float *ws = NULL;
  TRY(dalloc(e, (e->ws_bytes + 3) / 4, &ws, err));
  e->ws = ws;
  CUDA_TRY(cudaStreamSynchronize(e->stream));
  *out = &e->base;
  return DNN_OK;
fail:
  if (probe)
    cudaFree(probe);
  xc_free(&e->base);
  return st;
}

static void xc_free(dnn__xeng *eng) {
  xc *e = (xc *)eng;
  if (e == NULL)
    return;
  if (e->stream)
    cudaStreamSynchronize(e->stream);
  for (size_t i = 0; e->layers && i < e->L; i++) {
    clayer *X = &e->layers[i];
    cudnnTensorDescriptor_t td[3] = {X->x, X->y, X->pb};
    for (size_t k = 0; k < 3; k++)
      if (td[k])
        cudnnDestroyTensorDescriptor(td[k]);
    if (X->w)
      cudnnDestroyFilterDescriptor(X->w);
    if (X->cd)
      cudnnDestroyConvolutionDescriptor(X->cd);
    if (X->pool)
      cudnnDestroyPoolingDescriptor(X->pool);
    if (X->act)
      cudnnDestroyActivationDescriptor(X->act);
    if (X->drop)
      cudnnDestroyDropoutDescriptor(X->drop);
  }
  for (size_t k = 0; k < e->n_dev; k++)
    cudaFree(e->dev[k]);
  for (size_t k = 0; k < e->n_pin; k++)
    cudaFreeHost(e->pin[k]);
  dnn_free(e->dev);
  dnn_free(e->pin);
  dnn_free(e->layers);
  dnn_free(e->t);
  dnn__xplan_free(&e->pl);
  if (e->blas)
    cublasDestroy(e->blas);
  if (e->dnn)
    cudnnDestroy(e->dnn);
  if (e->stream)
    cudaStreamDestroy(e->stream);
  dnn_free(e);
}

/* ---- Running ------------------------------------------------------------- */

/* Adds (or, first, copies) n floats of gradient src into dst. */
static dnn_status contribute(xc *e, float *dst, const float *src, size_t n,
                             bool first, dnn_error *err) {
  dnn_status st = DNN_OK;
  const float one = 1;
  if (first)
    CUDA_TRY(cudaMemcpyAsync(dst, src, n * sizeof(float),
                             cudaMemcpyDeviceToDevice, e->stream));
  else
    CUBLAS_TRY(cublasSaxpy(e->blas, (int)n, &one, src, 1, dst, 1));
fail:
  return st;
}

/* Received inputs of layer i for `slot` still in host memory go to the
 * device. */
static dnn_status commit_inputs(xc *e, size_t i, size_t slot, dnn_error *err) {
  const dnn_layer *l = e->layers[i].l;
  dnn_status st = DNN_OK;
  for (size_t k = 0; k < l->n_inputs && st == DNN_OK; k++) {
    ctensor *t = &e->t[l->inputs[k]];
    if (!e->pl.t[l->inputs[k]].external || !t->fresh[slot])
      continue;
    st = copy(e, t->act[slot], t->host[slot], e->p.mbs * t->per,
              cudaMemcpyHostToDevice, err);
    t->fresh[slot] = false;
  }
  return st;
}

static dnn_status forward(xc *e, clayer *X, size_t slot, dnn_error *err) {
  const dnn_layer *l = X->l;
  const float one = 1, zero = 0;
  dnn_status st = DNN_OK;
  float *y = e->t[l->index].act[slot];
  float *x = l->n_inputs ? e->t[l->inputs[0]].act[slot] : NULL;
  float *w = e->W + X->poff, *b = e->W + bias_off(X);
  switch (X->kind) {
  case K_CONV:
    CUDNN_TRY(cudnnConvolutionForward(e->dnn, &one, X->x, x, X->w, w, X->cd,
                                      X->fa, e->ws, e->ws_bytes, &zero, X->y,
                                      y));
    if (X->nb)
      CUDNN_TRY(cudnnAddTensor(e->dnn, &one, X->pb, b, &one, X->y, y));
    break;
  case K_FC:
    CUBLAS_TRY(cublasSgemm(e->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)X->outs,
                           (int)X->rows, (int)X->cols, &one, w, (int)X->cols, x,
                           (int)X->cols, &zero, y, (int)X->outs));
    if (X->nb)
      CUDNN_TRY(cudnnAddTensor(e->dnn, &one, X->pb, b, &one, X->y, y));
    break;
  case K_POOL:
    CUDNN_TRY(
        cudnnPoolingForward(e->dnn, X->pool, &one, X->x, x, &zero, X->y, y));
    break;
  case K_BN:
    CUDNN_TRY(cudnnBatchNormalizationForwardTraining(
        e->dnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, X->x, x, X->x, y, X->pb,
        w, b, 0.1, X->run_mean, X->run_var, 1e-5, X->mean[slot],
        X->ivar[slot]));
    break;
  case K_ACT:
    CUDNN_TRY(
        cudnnActivationForward(e->dnn, X->act, &one, X->x, x, &zero, X->x, y));
    break;
  case K_SOFTMAX:
  case K_XENT:
    e->ran[slot] = true;
    CUDNN_TRY(cudnnSoftmaxForward(e->dnn, CUDNN_SOFTMAX_ACCURATE,
                                  CUDNN_SOFTMAX_MODE_INSTANCE, &one, X->x, x,
                                  &zero, X->x, y));
    break;
  case K_ADD: {
    const float *a = e->t[l->inputs[0]].act[slot];
    const float *c = e->t[l->inputs[1]].act[slot];
    cudnnOpTensorDescriptor_t op = NULL;
    CUDNN_TRY(cudnnCreateOpTensorDescriptor(&op));
    cudnnStatus_t s = cudnnSetOpTensorDescriptor(
        op, CUDNN_OP_TENSOR_ADD, CUDNN_DATA_FLOAT, CUDNN_NOT_PROPAGATE_NAN);
    if (s == CUDNN_STATUS_SUCCESS)
      s = cudnnOpTensor(e->dnn, op, &one, X->x, a, &one, X->x, c, &zero, X->x,
                        y);
    cudnnDestroyOpTensorDescriptor(op);
    CUDNN_TRY(s);
    for (size_t k = 2; k < l->n_inputs; k++)
      CUDNN_TRY(cudnnAddTensor(e->dnn, &one, X->x, e->t[l->inputs[k]].act[slot],
                               &one, X->x, y));
    break;
  }
  case K_DROP:
    CUDNN_TRY(cudnnDropoutForward(e->dnn, X->drop, X->x, x, X->x, y,
                                  X->drop_res[slot], X->drop_bytes));
    break;
  default: /* input data, flatten (a view) */
    break;
  }
fail:
  return st;
}

/* The gradient of input k of layer i that its backward writes (NULL: none
 * or aliased) and whether this is the first contribution. */
static float *grad_target(xc *e, size_t i, size_t k, bool *first) {
  size_t j = e->layers[i].l->inputs[k];
  const ctensor *t = &e->t[j];
  *first = dnn__xplan_edge_first(&e->pl, j, i, k);
  if (!e->pl.t[j].needs_grad || t->alias == i)
    return NULL;
  return t->grad;
}

static dnn_status backward_data(xc *e, clayer *X, size_t slot, bool accumulate,
                                double *glue_s, dnn_error *err) {
  const dnn_layer *l = X->l;
  const float one = 1, zero = 0;
  dnn_status st = DNN_OK;
  size_t i = l->index, n = e->p.mbs;
  const ctensor *ti = &e->t[i];
  float *y = ti->act[slot], *dy = ti->grad;
  float *x = l->n_inputs ? e->t[l->inputs[0]].act[slot] : NULL;
  float *w = e->W + X->poff;
  bool first = true;
  float *dx = l->n_inputs ? grad_target(e, i, 0, &first) : NULL;
  const float *beta = first ? &zero : &one;
  switch (X->kind) {
  case K_CONV:
    if (dx)
      CUDNN_TRY(cudnnConvolutionBackwardData(e->dnn, &one, X->w, w, X->y, dy,
                                             X->cd, X->da, e->ws, e->ws_bytes,
                                             beta, X->x, dx));
    break;
  case K_FC:
    if (dx)
      CUBLAS_TRY(cublasSgemm(e->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)X->cols,
                             (int)X->rows, (int)X->outs, &one, w, (int)X->cols,
                             dy, (int)X->outs, beta, dx, (int)X->cols));
    break;
  case K_POOL:
    if (dx)
      CUDNN_TRY(cudnnPoolingBackward(e->dnn, X->pool, &one, X->y, y, X->y, dy,
                                     X->x, x, beta, X->x, dx));
    break;
  case K_BN: {
    /* One call: the input gradient (into scratch when nothing reads it)
     * and the scale and shift gradients (added to when accumulating). */
    const float *pbeta = accumulate ? &one : &zero;
    CUDNN_TRY(cudnnBatchNormalizationBackward(
        e->dnn, CUDNN_BATCHNORM_SPATIAL, &one, dx ? beta : &zero, &one, pbeta,
        X->x, x, X->x, dy, X->x, dx ? dx : e->tmp, X->pb, w, e->G + X->poff,
        e->G + bias_off(X), 1e-5, X->mean[slot], X->ivar[slot]));
    break;
  }
  case K_ACT:
    if (dx)
      CUDNN_TRY(cudnnActivationBackward(e->dnn, X->act, &one, X->x, y, X->x, dy,
                                        X->x, x, beta, X->x, dx));
    break;
  case K_SOFTMAX:
    if (dx)
      CUDNN_TRY(cudnnSoftmaxBackward(e->dnn, CUDNN_SOFTMAX_ACCURATE,
                                     CUDNN_SOFTMAX_MODE_INSTANCE, &one, X->x, y,
                                     X->x, dy, beta, X->x, dx));
    break;
  case K_XENT:
    if (dx) {
      /* dx = p / rows - onehot / rows (+ dx): one OpTensor. */
      const float a1 = 1.0f / (float)X->rows, a2 = -a1;
      cudnnOpTensorDescriptor_t op = NULL;
      CUDNN_TRY(cudnnCreateOpTensorDescriptor(&op));
      cudnnStatus_t s = cudnnSetOpTensorDescriptor(
          op, CUDNN_OP_TENSOR_ADD, CUDNN_DATA_FLOAT, CUDNN_NOT_PROPAGATE_NAN);
      if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnOpTensor(e->dnn, op, &a1, X->x, y, &a2, X->x, X->onehot, beta,
                          X->x, dx);
      cudnnDestroyOpTensorDescriptor(op);
      CUDNN_TRY(s);
    }
    break;
  case K_DROP:
    if (dx) {
      float *to = first ? dx : e->tmp;
      CUDNN_TRY(cudnnDropoutBackward(e->dnn, X->drop, X->x, dy, X->x, to,
                                     X->drop_res[slot], X->drop_bytes));
      if (!first)
        TRY(contribute(e, dx, e->tmp, n * ti->per, false, err));
    }
    break;
  case K_ADD:
  case K_FLAT: {
    /* Contributions that are not aliases are copies or additions: glue,
     * as the oneDNN engine counts them. */
    CUDA_TRY(cudaStreamSynchronize(e->stream));
    double t0 = dnn_meas_now_s();
    for (size_t k = 0; k < l->n_inputs; k++) {
      float *g = grad_target(e, i, k, &first);
      if (g)
        TRY(contribute(e, g, dy, n * ti->per, first, err));
    }
    CUDA_TRY(cudaStreamSynchronize(e->stream));
    if (glue_s)
      *glue_s += dnn_meas_now_s() - t0;
    break;
  }
  default:
    break;
  }
fail:
  return st;
}

static dnn_status backward_weights(xc *e, clayer *X, size_t slot,
                                   bool accumulate, dnn_error *err) {
  const dnn_layer *l = X->l;
  const float one = 1, zero = 0;
  const float *beta = accumulate ? &one : &zero;
  dnn_status st = DNN_OK;
  const ctensor *ti = &e->t[l->index];
  float *dy = ti->grad, *x = e->t[l->inputs[0]].act[slot];
  float *dw = e->G + X->poff, *db = e->G + bias_off(X);
  switch (X->kind) {
  case K_CONV:
    CUDNN_TRY(cudnnConvolutionBackwardFilter(e->dnn, &one, X->x, x, X->y, dy,
                                             X->cd, X->wa, e->ws, e->ws_bytes,
                                             beta, X->w, dw));
    if (X->nb)
      CUDNN_TRY(cudnnConvolutionBackwardBias(e->dnn, &one, X->y, dy, beta,
                                             X->pb, db));
    break;
  case K_FC:
    CUBLAS_TRY(cublasSgemm(e->blas, CUBLAS_OP_N, CUBLAS_OP_T, (int)X->cols,
                           (int)X->outs, (int)X->rows, &one, x, (int)X->cols,
                           dy, (int)X->outs, beta, dw, (int)X->cols));
    if (X->nb)
      CUDNN_TRY(cudnnConvolutionBackwardBias(e->dnn, &one, X->y, dy, beta,
                                             X->pb, db));
    break;
  default:
    break;
  }
fail:
  return st;
}

static bool xc_runs(const dnn__xeng *eng, size_t i, dnn_pass pass) {
  const xc *e = (const xc *)eng;
  DNN_ASSERT(i >= e->p.first && i < e->last);
  const clayer *X = &e->layers[i];
  switch (pass) {
  case DNN_PASS_FWD:
    return X->kind != K_INPUT && X->kind != K_FLAT;
  case DNN_PASS_BWD_DATA:
    /* Batch norm's one call also makes its parameter gradients. */
    if (X->kind == K_BN)
      return true;
    if (!X->l->needs_input_grad || X->kind == K_INPUT)
      return false;
    for (size_t k = 0; k < X->l->n_inputs; k++) {
      size_t j = X->l->inputs[k];
      if (e->pl.t[j].needs_grad && e->t[j].alias != i)
        return true;
    }
    return false;
  default:
    return (X->kind == K_CONV || X->kind == K_FC) && X->l->params > 0;
  }
}

static dnn_status xc_run(dnn__xeng *eng, size_t i, dnn_pass pass, size_t slot,
                         bool accumulate, double *glue_s, dnn_error *err) {
  xc *e = (xc *)eng;
  DNN_ASSERT(i >= e->p.first && i < e->last && slot < e->p.slots);
  clayer *X = &e->layers[i];
  dnn_status st = DNN_OK;
  double glue = 0;
  if (pass == DNN_PASS_FWD) {
    double t0 = dnn_meas_now_s();
    TRY(commit_inputs(e, i, slot, err));
    glue += dnn_meas_now_s() - t0;
    TRY(forward(e, X, slot, err));
  } else if (pass == DNN_PASS_BWD_DATA) {
    TRY(backward_data(e, X, slot, accumulate, &glue, err));
  } else {
    TRY(backward_weights(e, X, slot, accumulate, err));
  }
  CUDA_TRY(cudaStreamSynchronize(e->stream));
fail:
  if (glue_s)
    *glue_s = glue;
  return st;
}

static double xc_fused_share(const dnn__xeng *eng, size_t i) {
  const xc *e = (const xc *)eng;
  return e->layers[i].kind == K_BN ? e->layers[i].share : 1;
}

static dnn_status xc_update(dnn__xeng *eng, dnn_error *err) {
  xc *e = (xc *)eng;
  dnn_status st = DNN_OK;
  if (e->nflat == 0)
    return DNN_OK;
  int n = (int)e->nflat;
  const float lr = -(float)e->p.lr, one = 1, mu = 0.9f;
  if (e->M) {
    /* Momentum (heavy ball): v = mu v + g, w -= lr v. */
    CUBLAS_TRY(cublasSscal(e->blas, n, &mu, e->M, 1));
    CUBLAS_TRY(cublasSaxpy(e->blas, n, &one, e->G, 1, e->M, 1));
    CUBLAS_TRY(cublasSaxpy(e->blas, n, &lr, e->M, 1, e->W, 1));
  } else {
    CUBLAS_TRY(cublasSaxpy(e->blas, n, &lr, e->G, 1, e->W, 1));
  }
  CUDA_TRY(cudaStreamSynchronize(e->stream));
fail:
  return st;
}

static float *xc_grads(dnn__xeng *eng, size_t *n) {
  xc *e = (xc *)eng;
  *n = e->nflat;
  return e->Gh;
}

static dnn_status xc_grads_sync(dnn__xeng *eng, size_t off, size_t n,
                                bool to_host, dnn_error *err) {
  xc *e = (xc *)eng;
  DNN_ASSERT(off + n <= e->nflat);
  if (n == 0)
    return DNN_OK;
  return to_host
             ? copy(e, e->Gh + off, e->G + off, n, cudaMemcpyDeviceToHost, err)
             : copy(e, e->G + off, e->Gh + off, n, cudaMemcpyHostToDevice, err);
}

static size_t xc_params_count(const dnn__xeng *eng) {
  return ((const xc *)eng)->params;
}

static dnn_status xc_share_params(dnn__xeng *eng, const dnn__xeng *own,
                                  dnn_error *err) {
  xc *e = (xc *)eng;
  const xc *owner = (const xc *)own;
  dnn_status st = dnn__xplan_share_check(
      e->nflat, e->p.optimizer, owner->stride, owner->p.optimizer, err);
  if (st)
    return st;
  /* The layers address W, G and M at their offsets at every call, so
   * pointing these at the owner's is all it takes; the engine's own
   * storage is freed with the engine. */
  e->W = owner->W;
  e->G = owner->G;
  e->M = owner->M;
  e->Gh = owner->Gh;
  e->stride = owner->stride;
  return DNN_OK;
}

/* ---- Boundaries ---------------------------------------------------------- */

static size_t xc_in_floats(const dnn__xeng *eng, size_t k) {
  const xc *e = (const xc *)eng;
  return e->p.mbs * e->t[e->pl.in[k]].per;
}

static size_t xc_out_floats(const dnn__xeng *eng, size_t k) {
  const xc *e = (const xc *)eng;
  return e->p.mbs * e->t[e->pl.out[k]].per;
}

static float *xc_in_act(dnn__xeng *eng, size_t k, size_t slot, size_t *n,
                        size_t *layer) {
  xc *e = (xc *)eng;
  ctensor *t = &e->t[e->pl.in[k]];
  *layer = e->pl.in[k];
  *n = e->p.mbs * t->per;
  t->fresh[slot] = true;
  return t->host[slot];
}

static dnn_status xc_out_act(dnn__xeng *eng, size_t k, size_t slot, float **buf,
                             size_t *n, size_t *layer, dnn_error *err) {
  xc *e = (xc *)eng;
  size_t j = e->pl.out[k];
  ctensor *t = &e->t[j];
  *layer = j;
  *n = e->p.mbs * t->per;
  *buf = t->host[slot];
  /* A tensor passed through from the previous stage is already here. */
  if (e->pl.t[j].external && t->fresh[slot])
    return DNN_OK;
  return copy(e, t->host[slot], t->act[slot], *n, cudaMemcpyDeviceToHost, err);
}

static float *xc_out_grad(dnn__xeng *eng, size_t k, size_t *n) {
  xc *e = (xc *)eng;
  ctensor *t = &e->t[e->pl.out[k]];
  DNN_ASSERT(t->recv_grad);
  *n = e->p.mbs * t->per;
  return t->recv_grad;
}

static dnn_status xc_out_grad_apply(dnn__xeng *eng, size_t k, size_t slot,
                                    dnn_error *err) {
  (void)slot;
  xc *e = (xc *)eng;
  ctensor *t = &e->t[e->pl.out[k]];
  return copy(e, t->grad, t->recv_grad, e->p.mbs * t->per,
              cudaMemcpyHostToDevice, err);
}

static dnn_status xc_in_grad(dnn__xeng *eng, size_t k, size_t slot, float **buf,
                             size_t *n, dnn_error *err) {
  xc *e = (xc *)eng;
  ctensor *t = &e->t[e->pl.in[k]];
  *n = e->p.mbs * t->per;
  *buf = t->host_grad[slot];
  return copy(e, t->host_grad[slot], t->grad, *n, cudaMemcpyDeviceToHost, err);
}

static size_t xc_dims(const dnn__xeng *eng, size_t i, bool output,
                      size_t dims[DNN_SHAPE_MAX_RANK + 1]) {
  const xc *e = (const xc *)eng;
  const dnn_layer *l = e->layers[i].l;
  if (!output && l->n_inputs == 0)
    return 0;
  const dnn_shape *s = output ? &l->out : &l->in;
  dims[0] = e->p.mbs;
  for (size_t k = 0; k < s->rank && k < DNN_SHAPE_MAX_RANK; k++)
    dims[k + 1] = s->dim[k];
  return s->rank + 1;
}

/* The loss from the device's probabilities (the labels are the one-hot
 * rows' hash, exec_plan.c). */
static dnn_status xc_loss(dnn__xeng *eng, size_t slot, double *out,
                          dnn_error *err) {
  xc *e = (xc *)eng;
  *out = NAN;
  if (e->loss_layer == DNN_MEAS_NONE || !e->ran[slot])
    return DNN_FAIL(err, DNN_ENOTFOUND,
                    "no loss: the stage has no softmax_xent layer, or no "
                    "forward ran");
  const clayer *X = &e->layers[e->loss_layer];
  size_t n = X->rows * X->cols, per = X->rows / e->p.mbs;
  float *p = dnn_malloc((n ? n : 1) * sizeof *p);
  if (p == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory");
  dnn_status st =
      copy(e, p, e->t[e->loss_layer].act[slot], n, cudaMemcpyDeviceToHost, err);
  if (st == DNN_OK) {
    double loss = 0;
    for (size_t r = 0; r < X->rows; r++) {
      size_t c = dnn__xplan_label(r, per, per * e->p.copies, X->cols);
      double q = (double)p[r * X->cols + c];
      loss -= log(q > 1e-30 ? q : 1e-30);
    }
    *out = loss / (double)X->rows;
  }
  dnn_free(p);
  return st;
}

static const dnn__xeng_ops xc_ops = {
    .free = xc_free,
    .runs = xc_runs,
    .run = xc_run,
    .fused_share = xc_fused_share,
    .update = xc_update,
    .grads = xc_grads,
    .grads_sync = xc_grads_sync,
    .params_count = xc_params_count,
    .share_params = xc_share_params,
    .in_floats = xc_in_floats,
    .out_floats = xc_out_floats,
    .in_act = xc_in_act,
    .out_act = xc_out_act,
    .out_grad = xc_out_grad,
    .out_grad_apply = xc_out_grad_apply,
    .in_grad = xc_in_grad,
    .dims = xc_dims,
    .loss = xc_loss,
};

#endif /* DNNSIM_HAVE_CUDA */
