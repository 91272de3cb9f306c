/*
 * cuDNN + CUPTI GPU back end (include/dnnsim/measure.h): peak rates of
 * device 0 and per-layer kernel times of a network, with every
 * convolution algorithm cuDNN offers for every pass.
 *
 * Method (μ-cuDNN, REFERENCE.md §2.2; Deep500 §5.2): for each convolution
 * layer, pass and batch, cudnnFind*AlgorithmEx lists the algorithms that
 * run and their workspace; each one that passed verification is then
 * timed by CUPTI activity records (CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL):
 * the time of one call is the sum of end - start over the kernels it
 * launched, so launch gaps and host overhead are excluded and multi-kernel
 * algorithms (FFT, Winograd non-fused) are charged for every kernel.
 * Fully connected layers are cuBLAS GEMMs; pooling, batch norm,
 * activations, softmax and add are their cuDNN calls. When CUPTI cannot
 * be enabled the back end falls back to CUDA events around the calls
 * (and labels rows "cudnn-events").
 *
 * Verification: every algorithm of every pass runs once on the layer's
 * shape at verify_batch with plain NCHW data and its output is compared
 * with the C reference (ref.c). A convolution algorithm that fails is
 * excluded (cuDNN offers others; at least one must pass or the sweep
 * stops with DNN_EVERIFY); any other failing kernel stops the sweep.
 *
 * The legacy convolution API (cudnnFind*, cudnnConvolution*) is
 * deprecated in cuDNN 9 but still shipped; the deprecation warnings are
 * silenced for this file only. Switch to the graph API (cudnn_graph.h)
 * when a cuDNN release drops it.
 *
 * Invariant: every CUDA, cuDNN, cuBLAS and CUPTI resource is acquired and
 * released in this file on every path; the CUPTI callbacks are the only
 * global state and are only touched between an explicit flush and the
 * next one.
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <threads.h>

#if !DNNSIM_HAVE_CUDA

#define NO_CUDA                                                                \
  "this dnnsim was built without CUDA (install the CUDA toolkit with cuDNN "   \
  "and CUPTI and rebuild with -DDNNSIM_WITH_CUDA=ON)"

dnn_status dnn_meas_gpu_available(dnn_error *err) {
  return DNN_FAIL(err, DNN_EUNSUPPORTED, "%s", NO_CUDA);
}

dnn_status dnn_meas_gpu_peaks(bool quick, dnn_meas_peaks *out, dnn_error *err) {
  (void)quick;
  memset(out, 0, sizeof *out);
  return DNN_FAIL(err, DNN_EUNSUPPORTED, "%s", NO_CUDA);
}

dnn_status dnn_meas_gpu_kernels(const dnn_net *net,
                                const dnn_meas_kernel_params *p,
                                dnn_error *err) {
  (void)net;
  (void)p;
  return DNN_FAIL(err, DNN_EUNSUPPORTED, "%s", NO_CUDA);
}

#else

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <cupti.h>

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

#define CUDA_TRY(call)                                                         \
  do {                                                                         \
    cudaError_t e_ = (call);                                                   \
    if (e_ != cudaSuccess) {                                                   \
      st = DNN_FAIL(err, DNN_ETOOLFAIL, "%s: %s", #call,                       \
                    cudaGetErrorString(e_));                                   \
      goto fail;                                                               \
    }                                                                          \
  } while (0)

#define CUDNN_TRY(call)                                                        \
  do {                                                                         \
    cudnnStatus_t e_ = (call);                                                 \
    if (e_ != CUDNN_STATUS_SUCCESS) {                                          \
      st = DNN_FAIL(err, DNN_ETOOLFAIL, "%s: %s", #call,                       \
                    cudnnGetErrorString(e_));                                  \
      goto fail;                                                               \
    }                                                                          \
  } while (0)

#define CUBLAS_TRY(call)                                                       \
  do {                                                                         \
    cublasStatus_t e_ = (call);                                                \
    if (e_ != CUBLAS_STATUS_SUCCESS) {                                         \
      st = DNN_FAIL(err, DNN_ETOOLFAIL, "%s: cuBLAS status %d", #call,         \
                    (int)e_);                                                  \
      goto fail;                                                               \
    }                                                                          \
  } while (0)

dnn_status dnn_meas_gpu_available(dnn_error *err) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n <= 0)
    return DNN_FAIL(err, DNN_ENODEVICE, "no CUDA device (%s)",
                    e != cudaSuccess ? cudaGetErrorString(e)
                                     : "cudaGetDeviceCount found none");
  return DNN_OK;
}

/* ------------------------------------------------------------------------ */
/* CUPTI kernel timing                                                      */
/* ------------------------------------------------------------------------ */

#if defined(CUPTI_API_VERSION) && CUPTI_API_VERSION >= 130000
typedef CUpti_ActivityKernel10 kernel_record;
#else
typedef CUpti_ActivityKernel9 kernel_record;
#endif

#define CUPTI_BUFFER_BYTES (1u << 20)

/* Totals of the kernel records delivered since the last reset. CUPTI may
 * deliver a full buffer from its own thread, hence the atomics; they are
 * only read after a forced flush. */
static _Atomic uint64_t g_kernel_ns;
static _Atomic uint64_t g_kernels;

static void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size,
                                      size_t *max_records) {
  *buffer = dnn_malloc(CUPTI_BUFFER_BYTES);
  *size = *buffer ? CUPTI_BUFFER_BYTES : 0;
  *max_records = 0;
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream,
                                      uint8_t *buffer, size_t size,
                                      size_t valid) {
  (void)ctx;
  (void)stream;
  (void)size;
  CUpti_Activity *rec = NULL;
  while (cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS) {
    if (rec->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL ||
        rec->kind == CUPTI_ACTIVITY_KIND_KERNEL) {
      const kernel_record *k = (const kernel_record *)(const void *)rec;
      if (k->end > k->start) {
        atomic_fetch_add(&g_kernel_ns, k->end - k->start);
        atomic_fetch_add(&g_kernels, 1);
      }
    }
  }
  dnn_free(buffer);
}

/* The buffer callbacks are registered once per process. */
static once_flag cupti_once = ONCE_FLAG_INIT;
static bool cupti_registered;

static void cupti_register(void) {
  cupti_registered = cuptiActivityRegisterCallbacks(
                         buffer_requested, buffer_completed) == CUPTI_SUCCESS;
}

/* The GPU session: handles, streams and the timing mode. */
typedef struct gpu {
  cudnnHandle_t dnn;
  cublasHandle_t blas;
  cudaStream_t stream;
  cudaEvent_t ev0, ev1;
  bool cupti; /* kernel times from CUPTI; else CUDA events */
  dnn_dtype dtype;
  cudnnDataType_t dt;
  cudaDataType_t blas_dt;
  cublasComputeType_t blas_compute;
  cudnnMathType_t math;
  size_t esize; /* bytes per element */
} gpu;

static dnn_status gpu_open(gpu *g, dnn_dtype dtype, dnn_error *err) {
  memset(g, 0, sizeof *g);
  dnn_status st = dnn_meas_gpu_available(err);
  if (st)
    return st;
  g->dtype = dtype;
  switch (dtype) {
  case DNN_DTYPE_FP32:
    g->dt = CUDNN_DATA_FLOAT;
    g->blas_dt = CUDA_R_32F;
    g->blas_compute = CUBLAS_COMPUTE_32F_PEDANTIC;
    g->math = CUDNN_FMA_MATH;
    g->esize = 4;
    break;
  case DNN_DTYPE_TF32:
    g->dt = CUDNN_DATA_FLOAT;
    g->blas_dt = CUDA_R_32F;
    g->blas_compute = CUBLAS_COMPUTE_32F_FAST_TF32;
    g->math = CUDNN_DEFAULT_MATH;
    g->esize = 4;
    break;
  case DNN_DTYPE_FP16:
    g->dt = CUDNN_DATA_HALF;
    g->blas_dt = CUDA_R_16F;
    g->blas_compute = CUBLAS_COMPUTE_32F;
    g->math = CUDNN_TENSOR_OP_MATH;
    g->esize = 2;
    break;
  case DNN_DTYPE_BF16:
    g->dt = CUDNN_DATA_BFLOAT16;
    g->blas_dt = CUDA_R_16BF;
    g->blas_compute = CUBLAS_COMPUTE_32F;
    g->math = CUDNN_TENSOR_OP_MATH;
    g->esize = 2;
    break;
  default:
    return DNN_FAIL(err, DNN_EUNSUPPORTED, "unsupported dtype");
  }
  CUDA_TRY(cudaSetDevice(0));
  CUDA_TRY(cudaStreamCreate(&g->stream));
  CUDA_TRY(cudaEventCreate(&g->ev0));
  CUDA_TRY(cudaEventCreate(&g->ev1));
  CUDNN_TRY(cudnnCreate(&g->dnn));
  CUDNN_TRY(cudnnSetStream(g->dnn, g->stream));
  CUBLAS_TRY(cublasCreate(&g->blas));
  CUBLAS_TRY(cublasSetStream(g->blas, g->stream));
  call_once(&cupti_once, cupti_register);
  g->cupti = cupti_registered &&
             cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) ==
                 CUPTI_SUCCESS;
  return DNN_OK;
fail:
  return st;
}

static void gpu_close(gpu *g) {
  if (g->cupti) {
    cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
  }
  if (g->blas)
    cublasDestroy(g->blas);
  if (g->dnn)
    cudnnDestroy(g->dnn);
  if (g->ev0)
    cudaEventDestroy(g->ev0);
  if (g->ev1)
    cudaEventDestroy(g->ev1);
  if (g->stream)
    cudaStreamDestroy(g->stream);
  memset(g, 0, sizeof *g);
}

/* One GPU operation to time. */
typedef dnn_status (*gpu_call_fn)(gpu *g, void *ud, dnn_error *err);

typedef struct timed {
  gpu *g;
  gpu_call_fn fn;
  void *ud;
} timed;

/* Runs the call `runs` times; *elapsed is the summed kernel time (CUPTI)
 * or the event-measured time of the whole burst. */
static dnn_status run_timed(void *ud, size_t runs, double *elapsed,
                            dnn_error *err) {
  timed *t = ud;
  gpu *g = t->g;
  dnn_status st = DNN_OK;
  CUDA_TRY(cudaStreamSynchronize(g->stream));
  if (g->cupti) {
    cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    atomic_store(&g_kernel_ns, 0);
    atomic_store(&g_kernels, 0);
  }
  CUDA_TRY(cudaEventRecord(g->ev0, g->stream));
  for (size_t r = 0; r < runs; r++)
    if ((st = t->fn(g, t->ud, err)))
      goto fail;
  CUDA_TRY(cudaEventRecord(g->ev1, g->stream));
  CUDA_TRY(cudaEventSynchronize(g->ev1));
  if (g->cupti) {
    cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    *elapsed = (double)atomic_load(&g_kernel_ns) * 1e-9;
    if (atomic_load(&g_kernels) == 0) /* nothing recorded: use events */
      g->cupti = false;
  }
  if (!g->cupti) {
    float ms = 0;
    CUDA_TRY(cudaEventElapsedTime(&ms, g->ev0, g->ev1));
    *elapsed = (double)ms * 1e-3;
  }
fail:
  return st;
}

/* ------------------------------------------------------------------------ */
/* Device memory                                                            */
/* ------------------------------------------------------------------------ */

/* float -> IEEE half (round to nearest even) and bfloat16. */
static uint16_t to_half(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  uint32_t sign = (x >> 16) & 0x8000u;
  int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
  uint32_t man = x & 0x7fffffu;
  if (exp >= 31)
    return (uint16_t)(sign | 0x7c00u);
  if (exp <= 0) {
    if (exp < -10)
      return (uint16_t)sign;
    man |= 0x800000u;
    uint32_t shift = (uint32_t)(14 - exp);
    uint32_t h = man >> shift, rem = man & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1)))
      h++;
    return (uint16_t)(sign | h);
  }
  uint32_t h = ((uint32_t)exp << 10) | (man >> 13);
  uint32_t rem = man & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
    h++;
  return (uint16_t)(sign | h);
}

static float from_half(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ffu, x;
  if (exp == 0) {
    float f = (float)man * 0x1p-24f;
    return sign ? -f : f;
  }
  if (exp == 31)
    x = sign | 0x7f800000u | (man << 13);
  else
    x = sign | ((exp - 15 + 127) << 23) | (man << 13);
  float f;
  memcpy(&f, &x, sizeof f);
  return f;
}

static uint16_t to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

static float from_bf16(uint16_t b) {
  uint32_t u = (uint32_t)b << 16;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* Copies n floats to the device in the session's dtype. */
static dnn_status upload(gpu *g, void *dst, const float *src, size_t n,
                         dnn_error *err) {
  dnn_status st = DNN_OK;
  if (g->esize == 4) {
    CUDA_TRY(cudaMemcpy(dst, src, n * 4, cudaMemcpyHostToDevice));
    return DNN_OK;
  }
  uint16_t *h = dnn_malloc((n ? n : 1) * 2);
  if (h == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++)
    h[i] = g->dtype == DNN_DTYPE_BF16 ? to_bf16(src[i]) : to_half(src[i]);
  cudaError_t e = cudaMemcpy(dst, h, n * 2, cudaMemcpyHostToDevice);
  dnn_free(h);
  if (e != cudaSuccess)
    st = DNN_FAIL(err, DNN_ETOOLFAIL, "cudaMemcpy: %s", cudaGetErrorString(e));
  return st;
fail:
  return st;
}

static dnn_status download(gpu *g, float *dst, const void *src, size_t n,
                           dnn_error *err) {
  dnn_status st = DNN_OK;
  CUDA_TRY(cudaStreamSynchronize(g->stream));
  if (g->esize == 4) {
    CUDA_TRY(cudaMemcpy(dst, src, n * 4, cudaMemcpyDeviceToHost));
    return DNN_OK;
  }
  uint16_t *h = dnn_malloc((n ? n : 1) * 2);
  if (h == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory");
  cudaError_t e = cudaMemcpy(h, src, n * 2, cudaMemcpyDeviceToHost);
  for (size_t i = 0; e == cudaSuccess && i < n; i++)
    dst[i] = g->dtype == DNN_DTYPE_BF16 ? from_bf16(h[i]) : from_half(h[i]);
  dnn_free(h);
  if (e != cudaSuccess)
    st = DNN_FAIL(err, DNN_ETOOLFAIL, "cudaMemcpy: %s", cudaGetErrorString(e));
  return st;
fail:
  return st;
}

/* Device buffers of one layer: up to 8 tensors plus workspace. */
#define NBUF 8
typedef struct dbufs {
  void *p[NBUF];
  size_t n[NBUF]; /* elements */
  float *host;    /* staging for fills */
} dbufs;

static void dbufs_free(dbufs *b) {
  for (size_t k = 0; k < NBUF; k++)
    if (b->p[k])
      cudaFree(b->p[k]);
  dnn_free(b->host);
  memset(b, 0, sizeof *b);
}

/* Allocates buffer k of n elements in the session dtype (bias/statistics
 * buffers pass as_float) filled with data from `seed`. */
static dnn_status dbuf(gpu *g, dbufs *b, size_t k, size_t n, bool as_float,
                       unsigned long long seed, dnn_error *err) {
  dnn_status st = DNN_OK;
  size_t es = as_float ? 4 : g->esize;
  CUDA_TRY(cudaMalloc(&b->p[k], (n ? n : 1) * es));
  b->n[k] = n;
  float *h = dnn_malloc((n ? n : 1) * sizeof *h);
  if (h == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory");
  dnn__meas_fill(h, n, seed);
  if (as_float) {
    cudaError_t e = cudaMemcpy(b->p[k], h, n * 4, cudaMemcpyHostToDevice);
    if (e != cudaSuccess)
      st =
          DNN_FAIL(err, DNN_ETOOLFAIL, "cudaMemcpy: %s", cudaGetErrorString(e));
  } else {
    st = upload(g, b->p[k], h, n, err);
  }
  dnn_free(h);
  return st;
fail:
  return st;
}

/* ------------------------------------------------------------------------ */
/* Convolutions                                                             */
/* ------------------------------------------------------------------------ */

/* cuDNN's algorithm numbers mapped onto the model's (model.h follows
 * cuDNN's forward list; for the backward passes algorithms 0 and 1 are
 * implicit GEMMs and filter algorithm 3 a GEMM lowering). */
static dnn_conv_algo algo_map(dnn_pass pass, int a) {
  static const dnn_conv_algo fwd[8] = {
      DNN_CONV_IMPLICIT_GEMM, DNN_CONV_IMPLICIT_PRECOMP_GEMM,
      DNN_CONV_GEMM,          DNN_CONV_DIRECT,
      DNN_CONV_FFT,           DNN_CONV_FFT_TILING,
      DNN_CONV_WINOGRAD,      DNN_CONV_WINOGRAD_NONFUSED};
  static const dnn_conv_algo data[6] = {
      DNN_CONV_IMPLICIT_GEMM, DNN_CONV_IMPLICIT_PRECOMP_GEMM,
      DNN_CONV_FFT,           DNN_CONV_FFT_TILING,
      DNN_CONV_WINOGRAD,      DNN_CONV_WINOGRAD_NONFUSED};
  static const dnn_conv_algo filt[7] = {
      DNN_CONV_IMPLICIT_GEMM, DNN_CONV_IMPLICIT_PRECOMP_GEMM,
      DNN_CONV_FFT,           DNN_CONV_GEMM,
      DNN_CONV_WINOGRAD,      DNN_CONV_WINOGRAD_NONFUSED,
      DNN_CONV_FFT_TILING};
  if (a < 0)
    return DNN_CONV_ALGO_COUNT;
  if (pass == DNN_PASS_FWD)
    return a < 8 ? fwd[a] : DNN_CONV_ALGO_COUNT;
  if (pass == DNN_PASS_BWD_DATA)
    return a < 6 ? data[a] : DNN_CONV_ALGO_COUNT;
  return a < 7 ? filt[a] : DNN_CONV_ALGO_COUNT;
}

static int algo_count(dnn_pass pass) {
  return pass == DNN_PASS_FWD        ? CUDNN_CONVOLUTION_FWD_ALGO_COUNT
         : pass == DNN_PASS_BWD_DATA ? CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT
                                     : CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
}

/* Descriptors and buffers of one convolution at one batch. */
typedef struct conv {
  dnn__conv_shape s;
  bool bias;
  cudnnTensorDescriptor_t x, y;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t cd;
  dbufs b; /* 0 x, 1 w, 2 y, 3 dx, 4 dw, 5 dy */
  void *ws;
  size_t ws_bytes;
  dnn_pass pass;
  int algo;
} conv;

static void conv_free(conv *c) {
  if (c->x)
    cudnnDestroyTensorDescriptor(c->x);
  if (c->y)
    cudnnDestroyTensorDescriptor(c->y);
  if (c->w)
    cudnnDestroyFilterDescriptor(c->w);
  if (c->cd)
    cudnnDestroyConvolutionDescriptor(c->cd);
  if (c->ws)
    cudaFree(c->ws);
  dbufs_free(&c->b);
  memset(c, 0, sizeof *c);
}

static dnn_status conv_make(gpu *g, const dnn_net *net, size_t i, size_t batch,
                            conv *c, dnn_error *err) {
  memset(c, 0, sizeof *c);
  dnn__meas_conv_shape(net, i, batch, &c->s);
  c->bias = dnn_net_layer(net, i)->p.conv.bias;
  const dnn__conv_shape *s = &c->s;
  dnn_status st = DNN_OK;
  CUDNN_TRY(cudnnCreateTensorDescriptor(&c->x));
  CUDNN_TRY(cudnnCreateTensorDescriptor(&c->y));
  CUDNN_TRY(cudnnCreateFilterDescriptor(&c->w));
  CUDNN_TRY(cudnnCreateConvolutionDescriptor(&c->cd));
  CUDNN_TRY(cudnnSetTensor4dDescriptor(c->x, CUDNN_TENSOR_NCHW, g->dt,
                                       (int)s->n, (int)s->ic, (int)s->ih,
                                       (int)s->iw));
  CUDNN_TRY(cudnnSetFilter4dDescriptor(c->w, g->dt, CUDNN_TENSOR_NCHW,
                                       (int)s->oc, (int)(s->ic / s->groups),
                                       (int)s->kh, (int)s->kw));
  CUDNN_TRY(cudnnSetConvolution2dDescriptor(
      c->cd, (int)s->ph, (int)s->pw, (int)s->sh, (int)s->sw, (int)s->dh,
      (int)s->dw, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  CUDNN_TRY(cudnnSetConvolutionGroupCount(c->cd, (int)s->groups));
  CUDNN_TRY(cudnnSetConvolutionMathType(c->cd, g->math));
  int n, ch, h, w;
  CUDNN_TRY(cudnnGetConvolution2dForwardOutputDim(c->cd, c->x, c->w, &n, &ch,
                                                  &h, &w));
  if ((size_t)h != s->oh || (size_t)w != s->ow || (size_t)ch != s->oc)
    return DNN_FAIL(err, DNN_EINVAL,
                    "cuDNN's output %dx%dx%d of layer '%s' differs from the "
                    "model's %zux%zux%zu",
                    ch, h, w, dnn_net_layer(net, i)->name, s->oc, s->oh, s->ow);
  CUDNN_TRY(
      cudnnSetTensor4dDescriptor(c->y, CUDNN_TENSOR_NCHW, g->dt, n, ch, h, w));
  size_t nx = s->n * s->ic * s->ih * s->iw, ny = s->n * s->oc * s->oh * s->ow;
  size_t nw = s->oc * (s->ic / s->groups) * s->kh * s->kw;
  if ((st = dbuf(g, &c->b, 0, nx, false, 101, err)) ||
      (st = dbuf(g, &c->b, 1, nw, false, 102, err)) ||
      (st = dbuf(g, &c->b, 2, ny, false, 103, err)) ||
      (st = dbuf(g, &c->b, 3, nx, false, 104, err)) ||
      (st = dbuf(g, &c->b, 4, nw, false, 105, err)) ||
      (st = dbuf(g, &c->b, 5, ny, false, 106, err)))
    goto fail;
  return DNN_OK;
fail:
  conv_free(c);
  return st;
}

/* Workspace of algorithm `a` for `pass`; false when cuDNN refuses it. */
static bool conv_ws(gpu *g, conv *c, dnn_pass pass, int a, size_t *bytes) {
  cudnnStatus_t s;
  if (pass == DNN_PASS_FWD)
    s = cudnnGetConvolutionForwardWorkspaceSize(
        g->dnn, c->x, c->w, c->cd, c->y, (cudnnConvolutionFwdAlgo_t)a, bytes);
  else if (pass == DNN_PASS_BWD_DATA)
    s = cudnnGetConvolutionBackwardDataWorkspaceSize(
        g->dnn, c->w, c->y, c->cd, c->x, (cudnnConvolutionBwdDataAlgo_t)a,
        bytes);
  else
    s = cudnnGetConvolutionBackwardFilterWorkspaceSize(
        g->dnn, c->x, c->y, c->cd, c->w, (cudnnConvolutionBwdFilterAlgo_t)a,
        bytes);
  return s == CUDNN_STATUS_SUCCESS;
}

static dnn_status conv_set_ws(conv *c, size_t bytes, dnn_error *err) {
  dnn_status st = DNN_OK;
  if (bytes <= c->ws_bytes)
    return DNN_OK;
  if (c->ws)
    cudaFree(c->ws);
  c->ws = NULL;
  c->ws_bytes = 0;
  CUDA_TRY(cudaMalloc(&c->ws, bytes));
  c->ws_bytes = bytes;
fail:
  return st;
}

/* One call of the pass with the algorithm in c->pass / c->algo. */
static dnn_status conv_call(gpu *g, void *ud, dnn_error *err) {
  conv *c = ud;
  const float one = 1, zero = 0;
  dnn_status st = DNN_OK;
  if (c->pass == DNN_PASS_FWD)
    CUDNN_TRY(cudnnConvolutionForward(g->dnn, &one, c->x, c->b.p[0], c->w,
                                      c->b.p[1], c->cd,
                                      (cudnnConvolutionFwdAlgo_t)c->algo, c->ws,
                                      c->ws_bytes, &zero, c->y, c->b.p[2]));
  else if (c->pass == DNN_PASS_BWD_DATA)
    CUDNN_TRY(cudnnConvolutionBackwardData(
        g->dnn, &one, c->w, c->b.p[1], c->y, c->b.p[5], c->cd,
        (cudnnConvolutionBwdDataAlgo_t)c->algo, c->ws, c->ws_bytes, &zero, c->x,
        c->b.p[3]));
  else
    CUDNN_TRY(cudnnConvolutionBackwardFilter(
        g->dnn, &one, c->x, c->b.p[0], c->y, c->b.p[5], c->cd,
        (cudnnConvolutionBwdFilterAlgo_t)c->algo, c->ws, c->ws_bytes, &zero,
        c->w, c->b.p[4]));
fail:
  return st;
}

/* Verifies algorithm `a` of `pass` on c (built at the verify batch). */
static dnn_status conv_verify(gpu *g, conv *c, dnn_pass pass, int a,
                              double scale, double *l2, double *mx,
                              dnn_error *err) {
  const dnn__conv_shape *s = &c->s;
  size_t nx = c->b.n[0], nw = c->b.n[1], ny = c->b.n[2];
  size_t big = nx > ny ? (nx > nw ? nx : nw) : (ny > nw ? ny : nw);
  float *x = dnn_malloc(nx * 4), *w = dnn_malloc(nw * 4);
  float *dy = dnn_malloc(ny * 4), *got = dnn_malloc(big * 4);
  double *ref = dnn_malloc(big * sizeof(double));
  dnn_status st = DNN_OK;
  if (!x || !w || !dy || !got || !ref) {
    st = DNN_FAIL(err, DNN_ENOMEM, "out of memory verifying a convolution");
    goto done;
  }
  dnn__meas_fill(x, nx, 201);
  dnn__meas_fill(w, nw, 202);
  dnn__meas_fill(dy, ny, 203);
  if ((st = upload(g, c->b.p[0], x, nx, err)) ||
      (st = upload(g, c->b.p[1], w, nw, err)) ||
      (st = upload(g, c->b.p[5], dy, ny, err)))
    goto done;
  size_t ws = 0;
  if (!conv_ws(g, c, pass, a, &ws)) {
    *l2 = *mx = INFINITY;
    goto done;
  }
  if ((st = conv_set_ws(c, ws, err)))
    goto done;
  c->pass = pass;
  c->algo = a;
  dnn_error e;
  dnn_error_clear(&e);
  if (conv_call(g, c, &e) != DNN_OK) { /* not runnable on this shape */
    *l2 = *mx = INFINITY;
    goto done;
  }
  size_t n;
  int out;
  if (pass == DNN_PASS_FWD) {
    dnn__ref_conv_fwd(s, x, w, NULL, ref);
    n = ny;
    out = 2;
  } else if (pass == DNN_PASS_BWD_DATA) {
    dnn__ref_conv_bwd_data(s, dy, w, ref);
    n = nx;
    out = 3;
  } else {
    dnn__ref_conv_bwd_weights(s, x, dy, ref, NULL);
    n = nw;
    out = 4;
  }
  if ((st = download(g, got, c->b.p[out], n, err)))
    goto done;
  for (size_t k = 0; k < n; k++)
    ref[k] *= scale;
  dnn__meas_compare(got, ref, n, l2, mx);
done:
  dnn_free(x);
  dnn_free(w);
  dnn_free(dy);
  dnn_free(got);
  dnn_free(ref);
  return st;
}

/* The algorithms cudnnFind*Ex returns for the pass (status success and
 * workspace within the limit), in `algos` (at most 16). */
static dnn_status conv_find(gpu *g, conv *c, dnn_pass pass, double limit,
                            int *algos, size_t *ws_bytes, size_t *n,
                            dnn_error *err) {
  dnn_status st = DNN_OK;
  *n = 0;
  /* Find benchmarks inside a caller-given workspace: give it the limit
   * (or what the device can spare). */
  size_t free_b = 0, total_b = 0;
  CUDA_TRY(cudaMemGetInfo(&free_b, &total_b));
  size_t cap =
      (size_t)(limit < (double)free_b / 2 ? limit : (double)free_b / 2);
  if ((st = conv_set_ws(c, cap, err)))
    goto fail;
  int got = 0;
  if (pass == DNN_PASS_FWD) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    CUDNN_TRY(cudnnFindConvolutionForwardAlgorithmEx(
        g->dnn, c->x, c->b.p[0], c->w, c->b.p[1], c->cd, c->y, c->b.p[2],
        CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf, c->ws, c->ws_bytes));
    for (int k = 0; k < got; k++)
      if (perf[k].status == CUDNN_STATUS_SUCCESS && *n < 16) {
        algos[*n] = (int)perf[k].algo;
        ws_bytes[(*n)++] = perf[k].memory;
      }
  } else if (pass == DNN_PASS_BWD_DATA) {
    cudnnConvolutionBwdDataAlgoPerf_t
        perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    CUDNN_TRY(cudnnFindConvolutionBackwardDataAlgorithmEx(
        g->dnn, c->w, c->b.p[1], c->y, c->b.p[5], c->cd, c->x, c->b.p[3],
        CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, perf, c->ws, c->ws_bytes));
    for (int k = 0; k < got; k++)
      if (perf[k].status == CUDNN_STATUS_SUCCESS && *n < 16) {
        algos[*n] = (int)perf[k].algo;
        ws_bytes[(*n)++] = perf[k].memory;
      }
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t
        perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    CUDNN_TRY(cudnnFindConvolutionBackwardFilterAlgorithmEx(
        g->dnn, c->x, c->b.p[0], c->y, c->b.p[5], c->cd, c->w, c->b.p[4],
        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, perf, c->ws,
        c->ws_bytes));
    for (int k = 0; k < got; k++)
      if (perf[k].status == CUDNN_STATUS_SUCCESS && *n < 16) {
        algos[*n] = (int)perf[k].algo;
        ws_bytes[(*n)++] = perf[k].memory;
      }
  }
fail:
  return st;
}

/* ------------------------------------------------------------------------ */
/* Other kernels                                                            */
/* ------------------------------------------------------------------------ */

/* What a non-convolution kernel needs: descriptors, buffers, shapes. */
typedef struct op {
  dnn_layer_kind kind;
  dnn_pass pass;
  cudnnTensorDescriptor_t x, y, stat;
  cudnnPoolingDescriptor_t pool;
  cudnnActivationDescriptor_t act;
  dbufs b; /* see op_make for each kind's buffers */
  size_t rows, cols, outs, hw;
  dnn__pool_shape ps;
  dnn_act a;
} op;

static void op_free(op *o) {
  if (o->x)
    cudnnDestroyTensorDescriptor(o->x);
  if (o->y)
    cudnnDestroyTensorDescriptor(o->y);
  if (o->stat)
    cudnnDestroyTensorDescriptor(o->stat);
  if (o->pool)
    cudnnDestroyPoolingDescriptor(o->pool);
  if (o->act)
    cudnnDestroyActivationDescriptor(o->act);
  dbufs_free(&o->b);
  memset(o, 0, sizeof *o);
}

/* Builds layer `i` at `batch`; DNN_EUNSUPPORTED (no message) for a kind
 * this back end leaves to the roofline. Buffers: fc 0 x, 1 w, 2 y, 3 dx,
 * 4 dw, 5 dy; pooling 0 x, 1 y, 2 dy, 3 dx; batch norm 0 x, 1 y, 2 dy,
 * 3 dx, 4 scale, 5 bias, 6 dscale, 7 dbias (float); activation and
 * softmax 0 x, 1 y, 2 dy, 3 dx; add 0 a, 1 c. */
static dnn_status op_make(gpu *g, const dnn_net *net, size_t i, size_t batch,
                          op *o, dnn_error *err) {
  memset(o, 0, sizeof *o);
  const dnn_layer *l = dnn_net_layer(net, i);
  o->kind = l->kind;
  dnn_status st = DNN_OK;
  size_t elems = dnn_shape_elems(&l->in);
  switch (l->kind) {
  case DNN_LAYER_FC: {
    size_t feat = l->in.rank == 3 ? elems : l->in.dim[l->in.rank - 1];
    o->rows = batch * (l->in.rank == 2 ? l->in.dim[0] : 1);
    o->cols = feat;
    o->outs = l->p.fc.out_features;
    size_t n = o->rows, in = o->cols, out = o->outs;
    if ((st = dbuf(g, &o->b, 0, n * in, false, 301, err)) ||
        (st = dbuf(g, &o->b, 1, out * in, false, 302, err)) ||
        (st = dbuf(g, &o->b, 2, n * out, false, 303, err)) ||
        (st = dbuf(g, &o->b, 3, n * in, false, 304, err)) ||
        (st = dbuf(g, &o->b, 4, out * in, false, 305, err)) ||
        (st = dbuf(g, &o->b, 5, n * out, false, 306, err)))
      goto fail;
    return DNN_OK;
  }
  case DNN_LAYER_MAXPOOL:
  case DNN_LAYER_AVGPOOL:
  case DNN_LAYER_ADAPTIVE_AVGPOOL:
  case DNN_LAYER_GLOBAL_AVGPOOL: {
    dnn__meas_pool_shape(net, i, batch, &o->ps);
    dnn__pool_shape *s = &o->ps;
    CUDNN_TRY(cudnnCreatePoolingDescriptor(&o->pool));
    CUDNN_TRY(cudnnSetPooling2dDescriptor(
        o->pool,
        s->max ? CUDNN_POOLING_MAX
               : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING,
        CUDNN_NOT_PROPAGATE_NAN, (int)s->kh, (int)s->kw, (int)s->ph, (int)s->pw,
        (int)s->sh, (int)s->sw));
    CUDNN_TRY(cudnnCreateTensorDescriptor(&o->x));
    CUDNN_TRY(cudnnCreateTensorDescriptor(&o->y));
    CUDNN_TRY(cudnnSetTensor4dDescriptor(o->x, CUDNN_TENSOR_NCHW, g->dt,
                                         (int)s->n, (int)s->c, (int)s->ih,
                                         (int)s->iw));
    int n, c, h, w;
    CUDNN_TRY(cudnnGetPooling2dForwardOutputDim(o->pool, o->x, &n, &c, &h, &w));
    /* cuDNN has no ceil mode: its (floor) output is what is timed. */
    s->oh = (size_t)h;
    s->ow = (size_t)w;
    CUDNN_TRY(
        cudnnSetTensor4dDescriptor(o->y, CUDNN_TENSOR_NCHW, g->dt, n, c, h, w));
    size_t nx = s->n * s->c * s->ih * s->iw, ny = s->n * s->c * s->oh * s->ow;
    if ((st = dbuf(g, &o->b, 0, nx, false, 311, err)) ||
        (st = dbuf(g, &o->b, 1, ny, false, 312, err)) ||
        (st = dbuf(g, &o->b, 2, ny, false, 313, err)) ||
        (st = dbuf(g, &o->b, 3, nx, false, 314, err)))
      goto fail;
    return DNN_OK;
  }
  case DNN_LAYER_BATCHNORM: {
    if (l->in.rank == 2)
      return DNN_EUNSUPPORTED;
    o->rows = batch;
    o->cols = l->in.dim[0];
    o->hw = l->in.rank == 3 ? l->in.dim[1] * l->in.dim[2] : 1;
    int h = l->in.rank == 3 ? (int)l->in.dim[1] : 1;
    int w = l->in.rank == 3 ? (int)l->in.dim[2] : 1;
    CUDNN_TRY(cudnnCreateTensorDescriptor(&o->x));
    CUDNN_TRY(cudnnCreateTensorDescriptor(&o->stat));
    CUDNN_TRY(cudnnSetTensor4dDescriptor(o->x, CUDNN_TENSOR_NCHW, g->dt,
                                         (int)batch, (int)o->cols, h, w));
    CUDNN_TRY(
        cudnnDeriveBNTensorDescriptor(o->stat, o->x, CUDNN_BATCHNORM_SPATIAL));
    size_t n = batch * o->cols * o->hw, C = o->cols;
    if ((st = dbuf(g, &o->b, 0, n, false, 321, err)) ||
        (st = dbuf(g, &o->b, 1, n, false, 322, err)) ||
        (st = dbuf(g, &o->b, 2, n, false, 323, err)) ||
        (st = dbuf(g, &o->b, 3, n, false, 324, err)) ||
        (st = dbuf(g, &o->b, 4, C, true, 325, err)) ||
        (st = dbuf(g, &o->b, 5, C, true, 326, err)) ||
        (st = dbuf(g, &o->b, 6, C, true, 327, err)) ||
        (st = dbuf(g, &o->b, 7, C, true, 328, err)))
      goto fail;
    return DNN_OK;
  }
  case DNN_LAYER_ACTIVATION:
  case DNN_LAYER_SOFTMAX:
  case DNN_LAYER_SOFTMAX_XENT:
  case DNN_LAYER_ADD: {
    if (l->kind == DNN_LAYER_ACTIVATION && l->p.act.act == DNN_ACT_GELU)
      return DNN_EUNSUPPORTED; /* no legacy cuDNN activation for GELU */
    o->a = l->p.act.act;
    bool soft =
        l->kind == DNN_LAYER_SOFTMAX || l->kind == DNN_LAYER_SOFTMAX_XENT;
    size_t last = l->in.dim[l->in.rank - 1];
    o->rows = soft ? batch * elems / last : batch;
    o->cols = soft ? last : elems;
    CUDNN_TRY(cudnnCreateTensorDescriptor(&o->x));
    CUDNN_TRY(cudnnSetTensor4dDescriptor(o->x, CUDNN_TENSOR_NCHW, g->dt,
                                         (int)o->rows, (int)o->cols, 1, 1));
    if (l->kind == DNN_LAYER_ACTIVATION) {
      cudnnActivationMode_t m = o->a == DNN_ACT_TANH ? CUDNN_ACTIVATION_TANH
                                : o->a == DNN_ACT_SIGMOID
                                    ? CUDNN_ACTIVATION_SIGMOID
                                    : CUDNN_ACTIVATION_RELU;
      CUDNN_TRY(cudnnCreateActivationDescriptor(&o->act));
      CUDNN_TRY(
          cudnnSetActivationDescriptor(o->act, m, CUDNN_NOT_PROPAGATE_NAN, 0));
    }
    size_t n = o->rows * o->cols;
    if ((st = dbuf(g, &o->b, 0, n, false, 331, err)) ||
        (st = dbuf(g, &o->b, 1, n, false, 332, err)) ||
        (st = dbuf(g, &o->b, 2, n, false, 333, err)) ||
        (st = dbuf(g, &o->b, 3, n, false, 334, err)))
      goto fail;
    return DNN_OK;
  }
  default:
    return DNN_EUNSUPPORTED;
  }
fail:
  op_free(o);
  return st;
}

/* Which passes op_make's kernel has; `fused` when one backward call
 * computes both gradients (batch norm). */
static bool op_has(const op *o, dnn_pass pass, bool *fused) {
  *fused = o->kind == DNN_LAYER_BATCHNORM;
  switch (o->kind) {
  case DNN_LAYER_FC:
  case DNN_LAYER_BATCHNORM:
    return true;
  case DNN_LAYER_ADD:
    return pass == DNN_PASS_FWD;
  default:
    return pass != DNN_PASS_BWD_WEIGHTS;
  }
}

static dnn_status gemm(gpu *g, cublasOperation_t ta, cublasOperation_t tb,
                       int m, int n, int k, const void *a, int lda,
                       const void *b, int ldb, void *c, int ldc,
                       dnn_error *err) {
  const float one = 1, zero = 0;
  dnn_status st = DNN_OK;
  CUBLAS_TRY(cublasGemmEx(g->blas, ta, tb, m, n, k, &one, a, g->blas_dt, lda, b,
                          g->blas_dt, ldb, &zero, c, g->blas_dt, ldc,
                          g->blas_compute, CUBLAS_GEMM_DEFAULT));
fail:
  return st;
}

static dnn_status op_call(gpu *g, void *ud, dnn_error *err) {
  op *o = ud;
  const float one = 1, zero = 0;
  const double eps = 1e-5;
  dnn_status st = DNN_OK;
  void **p = o->b.p;
  switch (o->kind) {
  case DNN_LAYER_FC: {
    int n = (int)o->rows, in = (int)o->cols, out = (int)o->outs;
    /* Row-major Y[n][out] = X[n][in] W[out][in]^T as column-major GEMMs
     * (docs/measure.md). */
    if (o->pass == DNN_PASS_FWD)
      return gemm(g, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, p[1], in, p[0], in,
                  p[2], out, err);
    if (o->pass == DNN_PASS_BWD_DATA)
      return gemm(g, CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, p[1], in, p[5], out,
                  p[3], in, err);
    return gemm(g, CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, p[0], in, p[5], out,
                p[4], in, err);
  }
  case DNN_LAYER_MAXPOOL:
  case DNN_LAYER_AVGPOOL:
  case DNN_LAYER_ADAPTIVE_AVGPOOL:
  case DNN_LAYER_GLOBAL_AVGPOOL:
    if (o->pass == DNN_PASS_FWD)
      CUDNN_TRY(cudnnPoolingForward(g->dnn, o->pool, &one, o->x, p[0], &zero,
                                    o->y, p[1]));
    else
      CUDNN_TRY(cudnnPoolingBackward(g->dnn, o->pool, &one, o->y, p[1], o->y,
                                     p[2], o->x, p[0], &zero, o->x, p[3]));
    break;
  case DNN_LAYER_BATCHNORM:
    if (o->pass == DNN_PASS_FWD)
      CUDNN_TRY(cudnnBatchNormalizationForwardTraining(
          g->dnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, o->x, p[0], o->x, p[1],
          o->stat, p[4], p[5], 1.0, NULL, NULL, eps, NULL, NULL));
    else
      CUDNN_TRY(cudnnBatchNormalizationBackward(
          g->dnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero, o->x, p[0],
          o->x, p[2], o->x, p[3], o->stat, p[4], p[6], p[7], eps, NULL, NULL));
    break;
  case DNN_LAYER_ACTIVATION:
    if (o->pass == DNN_PASS_FWD)
      CUDNN_TRY(cudnnActivationForward(g->dnn, o->act, &one, o->x, p[0], &zero,
                                       o->x, p[1]));
    else
      CUDNN_TRY(cudnnActivationBackward(g->dnn, o->act, &one, o->x, p[1], o->x,
                                        p[2], o->x, p[0], &zero, o->x, p[3]));
    break;
  case DNN_LAYER_SOFTMAX:
  case DNN_LAYER_SOFTMAX_XENT:
    if (o->pass == DNN_PASS_FWD)
      CUDNN_TRY(cudnnSoftmaxForward(g->dnn, CUDNN_SOFTMAX_ACCURATE,
                                    CUDNN_SOFTMAX_MODE_INSTANCE, &one, o->x,
                                    p[0], &zero, o->x, p[1]));
    else
      CUDNN_TRY(cudnnSoftmaxBackward(g->dnn, CUDNN_SOFTMAX_ACCURATE,
                                     CUDNN_SOFTMAX_MODE_INSTANCE, &one, o->x,
                                     p[1], o->x, p[2], &zero, o->x, p[3]));
    break;
  case DNN_LAYER_ADD:
    CUDNN_TRY(cudnnAddTensor(g->dnn, &one, o->x, p[0], &one, o->x, p[1]));
    break;
  default:
    break;
  }
fail:
  return st;
}

/* Verifies `pass` of o (built at the verify batch). */
static dnn_status op_verify(gpu *g, op *o, dnn_pass pass, double scale,
                            double *l2, double *mx, dnn_error *err) {
  dnn_status st = DNN_OK;
  size_t n0 = o->b.n[0], big = 0;
  for (size_t k = 0; k < NBUF; k++)
    big = o->b.n[k] > big ? o->b.n[k] : big;
  float *h[NBUF] = {0};
  double *ref = dnn_calloc(big ? big : 1, sizeof(double));
  double *r1 = dnn_calloc(big ? big : 1, sizeof(double));
  double *r2 = dnn_calloc(big ? big : 1, sizeof(double));
  float *got = dnn_malloc((big ? big : 1) * 4);
  if (!ref || !r1 || !r2 || !got)
    goto nomem;
  /* Host copies of every buffer's initial contents. */
  for (size_t k = 0; k < NBUF; k++) {
    if (!o->b.p[k])
      continue;
    h[k] = dnn_malloc((o->b.n[k] ? o->b.n[k] : 1) * 4);
    if (h[k] == NULL)
      goto nomem;
    dnn__meas_fill(h[k], o->b.n[k], 400 + k);
    bool as_float = o->kind == DNN_LAYER_BATCHNORM && k >= 4;
    if (as_float) {
      if (cudaMemcpy(o->b.p[k], h[k], o->b.n[k] * 4, cudaMemcpyHostToDevice) !=
          cudaSuccess) {
        st = DNN_FAIL(err, DNN_ETOOLFAIL, "cudaMemcpy failed");
        goto done;
      }
    } else if ((st = upload(g, o->b.p[k], h[k], o->b.n[k], err))) {
      goto done;
    }
    /* Reduced-precision data: compare against what the device holds. */
    if (!as_float && (st = download(g, h[k], o->b.p[k], o->b.n[k], err)))
      goto done;
  }
  o->pass = DNN_PASS_FWD;
  if ((st = op_call(g, o, err)))
    goto done;
  if (pass != DNN_PASS_FWD) {
    /* The backward reads the forward's output: use the device's. */
    if (o->kind != DNN_LAYER_FC && o->kind != DNN_LAYER_BATCHNORM &&
        (st = download(g, h[1], o->b.p[1], o->b.n[1], err)))
      goto done;
    o->pass = pass;
    if ((st = op_call(g, o, err)))
      goto done;
  }
  size_t n = 0;
  int out = 0;
  bool fl = false;
  switch (o->kind) {
  case DNN_LAYER_FC: {
    size_t rows = o->rows, in = o->cols, outs = o->outs;
    if (pass == DNN_PASS_FWD) {
      dnn__ref_ip_fwd(rows, in, outs, h[0], h[1], NULL, ref);
      n = rows * outs;
      out = 2;
    } else if (pass == DNN_PASS_BWD_DATA) {
      dnn__ref_ip_bwd_data(rows, in, outs, h[5], h[1], ref);
      n = rows * in;
      out = 3;
    } else {
      dnn__ref_ip_bwd_weights(rows, in, outs, h[0], h[5], ref, NULL);
      n = outs * in;
      out = 4;
    }
    break;
  }
  case DNN_LAYER_MAXPOOL:
  case DNN_LAYER_AVGPOOL:
  case DNN_LAYER_ADAPTIVE_AVGPOOL:
  case DNN_LAYER_GLOBAL_AVGPOOL:
    if (pass == DNN_PASS_FWD) {
      dnn__ref_pool_fwd(&o->ps, h[0], ref);
      n = o->b.n[1];
      out = 1;
    } else {
      dnn__ref_pool_bwd(&o->ps, h[0], h[2], ref);
      n = n0;
      out = 3;
    }
    break;
  case DNN_LAYER_BATCHNORM:
    if (pass == DNN_PASS_FWD) {
      dnn__ref_bnorm_fwd(o->rows, o->cols, o->hw, h[0], h[4], h[5], 1e-5, ref);
      n = n0;
      out = 1;
    } else {
      dnn__ref_bnorm_bwd(o->rows, o->cols, o->hw, h[0], h[4], h[2], 1e-5, ref,
                         r1, r2);
      if (pass == DNN_PASS_BWD_DATA) {
        n = n0;
        out = 3;
      } else {
        memcpy(ref, r1, o->cols * sizeof *ref);
        n = o->cols;
        out = 6;
        fl = true;
      }
    }
    break;
  case DNN_LAYER_ACTIVATION:
    if (pass == DNN_PASS_FWD)
      dnn__ref_act_fwd(o->a, h[0], n0, ref);
    else
      dnn__ref_act_bwd(o->a, h[0], h[2], n0, ref);
    n = n0;
    out = pass == DNN_PASS_FWD ? 1 : 3;
    break;
  case DNN_LAYER_SOFTMAX:
  case DNN_LAYER_SOFTMAX_XENT:
    if (pass == DNN_PASS_FWD)
      dnn__ref_softmax_fwd(o->rows, o->cols, h[0], ref);
    else
      dnn__ref_softmax_bwd(o->rows, o->cols, h[1], h[2], ref);
    n = n0;
    out = pass == DNN_PASS_FWD ? 1 : 3;
    break;
  case DNN_LAYER_ADD:
    for (size_t k = 0; k < n0; k++)
      ref[k] = (double)h[0][k] + (double)h[1][k];
    n = n0;
    out = 1;
    break;
  default:
    goto done;
  }
  if (fl) {
    if (cudaMemcpy(got, o->b.p[out], n * 4, cudaMemcpyDeviceToHost) !=
        cudaSuccess) {
      st = DNN_FAIL(err, DNN_ETOOLFAIL, "cudaMemcpy failed");
      goto done;
    }
  } else if ((st = download(g, got, o->b.p[out], n, err))) {
    goto done;
  }
  for (size_t k = 0; k < n; k++)
    ref[k] *= scale;
  dnn__meas_compare(got, ref, n, l2, mx);
  goto done;
nomem:
  st = DNN_FAIL(err, DNN_ENOMEM, "out of memory verifying a kernel");
done:
  for (size_t k = 0; k < NBUF; k++)
    dnn_free(h[k]);
  dnn_free(ref);
  dnn_free(r1);
  dnn_free(r2);
  dnn_free(got);
  return st;
}

/* ------------------------------------------------------------------------ */
/* The sweep                                                                */
/* ------------------------------------------------------------------------ */

static bool has_cost(const dnn_net *net, size_t i, dnn_pass pass, size_t batch,
                     dnn_dtype dtype) {
  dnn_cost c;
  dnn_layer_cost(net, i, pass, batch, dtype, &c);
  return c.flops > 0 || c.bytes_read + c.bytes_written > 0;
}

static void stats_scale(dnn_meas_stats *s, double f) {
  s->min_s *= f;
  s->median_s *= f;
  s->max_s *= f;
  s->mean_s *= f;
  s->ci_lo_s *= f;
  s->ci_hi_s *= f;
}

static const char *backend_name(const gpu *g, bool blas) {
  if (!g->cupti)
    return "cudnn-events";
  return blas ? "cublas" : "cudnn";
}

/* Emits a measured row. */
static dnn_status emit(const dnn_meas_kernel_params *p, dnn_meas_kernel_row *r,
                       dnn_error *err) {
  if (!(r->t.median_s > 0) || !(r->flops > 0 || r->bytes > 0))
    return DNN_OK;
  return p->on_row ? p->on_row(p->row_ud, r, err) : DNN_OK;
}

static dnn_status conv_layer(gpu *g, const dnn_net *net, size_t i,
                             const dnn_meas_kernel_params *p, dnn_error *err) {
  const dnn_layer *l = dnn_net_layer(net, i);
  dnn_status st = DNN_OK;
  /* Verification of every algorithm, per pass, at the verify batch. */
  bool ok[DNN_PASS_COUNT][16];
  double vl2[DNN_PASS_COUNT][16], vmx[DNN_PASS_COUNT][16];
  memset(ok, 0, sizeof ok);
  conv c;
  for (int pass = 0; pass < DNN_PASS_COUNT; pass++)
    for (int a = 0; a < 16; a++) {
      ok[pass][a] = !p->verify;
      vl2[pass][a] = vmx[pass][a] = NAN;
    }
  if (p->verify) {
    if ((st = conv_make(g, net, i, p->verify_batch, &c, err)))
      return st;
    for (int pass = 0; pass < DNN_PASS_COUNT && st == DNN_OK; pass++) {
      if (!has_cost(net, i, (dnn_pass)pass, p->verify_batch, p->dtype))
        continue;
      bool any = false;
      double worst = 0;
      for (int a = 0; a < algo_count((dnn_pass)pass) && st == DNN_OK; a++) {
        double l2 = INFINITY, mx = INFINITY;
        st = conv_verify(g, &c, (dnn_pass)pass, a,
                         dnn__meas_perturb(l->kind, (dnn_pass)pass), &l2, &mx,
                         err);
        vl2[pass][a] = l2;
        vmx[pass][a] = mx;
        ok[pass][a] = l2 <= p->verify_rel_l2 && mx <= p->verify_max_rel;
        any = any || ok[pass][a];
        if (isfinite(l2) && l2 > worst)
          worst = l2;
      }
      if (st == DNN_OK && !any)
        st = DNN_FAIL(err, DNN_EVERIFY,
                      "no cuDNN algorithm for %s of layer '%s' passes "
                      "verification against the C reference (best relative "
                      "L2 error above %.3g); refusing to calibrate from it",
                      dnn_pass_name((dnn_pass)pass), l->name, p->verify_rel_l2);
      (void)worst;
    }
    conv_free(&c);
    if (st)
      return st;
  }
  for (size_t bi = 0; bi < p->n_batches && st == DNN_OK; bi++) {
    size_t batch = p->batches[bi];
    if ((st = conv_make(g, net, i, batch, &c, err)))
      return st;
    for (int pass = 0; pass < DNN_PASS_COUNT && st == DNN_OK; pass++) {
      if (!has_cost(net, i, (dnn_pass)pass, batch, p->dtype))
        continue;
      int algos[16];
      size_t ws[16], n = 0;
      if ((st = conv_find(g, &c, (dnn_pass)pass, p->workspace_limit_bytes,
                          algos, ws, &n, err)))
        break;
      for (size_t k = 0; k < n && st == DNN_OK; k++) {
        int a = algos[k];
        if (a < 0 || a >= 16 || !ok[pass][a] ||
            (double)ws[k] > p->workspace_limit_bytes)
          continue;
        if (!p->all_algos && k > 0)
          break; /* Find sorts by time: the first is cuDNN's choice */
        dnn_meas_kernel_row r;
        dnn__meas_row_init(&r, backend_name(g, false), net, i, (dnn_pass)pass,
                           algo_map((dnn_pass)pass, a), batch, p->dtype);
        if ((unsigned)r.algo >= DNN_CONV_ALGO_COUNT ||
            dnn__meas_row_done(p, &r))
          continue;
        if ((st = conv_set_ws(&c, ws[k], err)))
          break;
        c.pass = (dnn_pass)pass;
        c.algo = a;
        timed t = {g, conv_call, &c};
        if ((st = dnn_meas_repeat_run(&p->repeat, run_timed, &t, &r.t, err)))
          break;
        snprintf(r.backend, sizeof r.backend, "%s", backend_name(g, false));
        r.workspace_bytes = (double)ws[k];
        r.verify_rel_l2 = vl2[pass][a];
        r.verify_max_rel = vmx[pass][a];
        st = emit(p, &r, err);
      }
    }
    conv_free(&c);
  }
  return st;
}

static dnn_status op_layer(gpu *g, const dnn_net *net, size_t i,
                           const dnn_meas_kernel_params *p, dnn_error *err) {
  const dnn_layer *l = dnn_net_layer(net, i);
  double vl2[DNN_PASS_COUNT], vmx[DNN_PASS_COUNT];
  for (int k = 0; k < DNN_PASS_COUNT; k++)
    vl2[k] = vmx[k] = NAN;
  op o;
  dnn_status st;
  bool fused = false;
  if (p->verify) {
    if ((st = op_make(g, net, i, p->verify_batch, &o, err)))
      return st;
    for (int pass = 0; pass < DNN_PASS_COUNT && st == DNN_OK; pass++) {
      if (!op_has(&o, (dnn_pass)pass, &fused) ||
          !has_cost(net, i, (dnn_pass)pass, p->verify_batch, p->dtype))
        continue;
      st = op_verify(g, &o, (dnn_pass)pass,
                     dnn__meas_perturb(l->kind, (dnn_pass)pass), &vl2[pass],
                     &vmx[pass], err);
      if (st == DNN_OK &&
          !(vl2[pass] <= p->verify_rel_l2 && vmx[pass] <= p->verify_max_rel))
        st = DNN_FAIL(err, DNN_EVERIFY,
                      "GPU %s of layer '%s' (%s) fails verification against "
                      "the C reference: relative L2 error %.3g (limit %.3g), "
                      "max-norm error %.3g (limit %.3g); refusing to "
                      "calibrate from it",
                      dnn_pass_name((dnn_pass)pass), l->name,
                      dnn_layer_kind_name(l->kind), vl2[pass], p->verify_rel_l2,
                      vmx[pass], p->verify_max_rel);
    }
    op_free(&o);
    if (st)
      return st;
  }
  st = DNN_OK;
  for (size_t bi = 0; bi < p->n_batches && st == DNN_OK; bi++) {
    size_t batch = p->batches[bi];
    if ((st = op_make(g, net, i, batch, &o, err)))
      return st;
    dnn_meas_stats fused_t;
    bool fused_done = false;
    for (int pass = 0; pass < DNN_PASS_COUNT && st == DNN_OK; pass++) {
      if (!op_has(&o, (dnn_pass)pass, &fused) ||
          !has_cost(net, i, (dnn_pass)pass, batch, p->dtype))
        continue;
      dnn_meas_kernel_row r;
      dnn__meas_row_init(&r, backend_name(g, l->kind == DNN_LAYER_FC), net, i,
                         (dnn_pass)pass, DNN_CONV_ALGO_COUNT, batch, p->dtype);
      if (dnn__meas_row_done(p, &r))
        continue;
      if (pass != DNN_PASS_FWD) {
        o.pass = DNN_PASS_FWD;
        if ((st = op_call(g, &o, err)))
          break;
      }
      o.pass =
          fused && pass != DNN_PASS_FWD ? DNN_PASS_BWD_DATA : (dnn_pass)pass;
      timed t = {g, op_call, &o};
      if (fused && pass != DNN_PASS_FWD) {
        if (!fused_done && (st = dnn_meas_repeat_run(&p->repeat, run_timed, &t,
                                                     &fused_t, err)))
          break;
        fused_done = true;
        r.t = fused_t;
        stats_scale(
            &r.t, dnn__meas_bwd_share(net, i, batch, p->dtype, (dnn_pass)pass));
      } else if ((st = dnn_meas_repeat_run(&p->repeat, run_timed, &t, &r.t,
                                           err))) {
        break;
      }
      snprintf(r.backend, sizeof r.backend, "%s",
               backend_name(g, l->kind == DNN_LAYER_FC));
      r.verify_rel_l2 = vl2[pass];
      r.verify_max_rel = vmx[pass];
      st = emit(p, &r, err);
    }
    op_free(&o);
  }
  return st;
}

dnn_status dnn_meas_gpu_kernels(const dnn_net *net,
                                const dnn_meas_kernel_params *p,
                                dnn_error *err) {
  dnn_status st = dnn__meas_kernel_params_check(p, err);
  if (st)
    return st;
  gpu g;
  if ((st = gpu_open(&g, p->dtype, err))) {
    gpu_close(&g);
    return st;
  }
  size_t nl = dnn_net_layer_count(net);
  for (size_t i = 0; i < nl && st == DNN_OK; i++) {
    const dnn_layer *l = dnn_net_layer(net, i);
    if (p->progress) {
      char label[96];
      snprintf(label, sizeof label, "%s (%s)", l->name,
               dnn_layer_kind_name(l->kind));
      if (p->progress(p->progress_ud, i, nl, label)) {
        st = DNN_FAIL(err, DNN_EINTERRUPTED, "measurement interrupted");
        break;
      }
    }
    if (l->kind == DNN_LAYER_CONV2D)
      st = conv_layer(&g, net, i, p, err);
    else
      st = op_layer(&g, net, i, p, err);
    if (st == DNN_EUNSUPPORTED)
      st = DNN_OK; /* left to the roofline */
  }
  if (st == DNN_OK && p->progress)
    p->progress(p->progress_ud, nl, nl, "done");
  gpu_close(&g);
  return st;
}

/* ------------------------------------------------------------------------ */
/* Peaks                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct gemm_ud {
  size_t n;
  void *a, *b, *c;
} gemm_ud;

static dnn_status gemm_call(gpu *g, void *ud, dnn_error *err) {
  gemm_ud *q = ud;
  int n = (int)q->n;
  return gemm(g, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, q->a, n, q->b, n, q->c, n,
              err);
}

typedef struct copy_ud {
  void *src, *dst;
  size_t bytes;
} copy_ud;

static dnn_status copy_call(gpu *g, void *ud, dnn_error *err) {
  copy_ud *q = ud;
  dnn_status st = DNN_OK;
  CUDA_TRY(cudaMemcpyAsync(q->dst, q->src, q->bytes, cudaMemcpyDeviceToDevice,
                           g->stream));
fail:
  return st;
}

/* Median of a call's time under the session's timing mode; `events`
 * forces CUDA events (copies are not kernels for CUPTI). */
static dnn_status time_call(gpu *g, gpu_call_fn fn, void *ud, bool quick,
                            bool events, double *median, dnn_error *err) {
  dnn_meas_repeat_params rp =
      quick ? dnn_meas_repeat_quick_params() : dnn_meas_repeat_default_params();
  bool cupti = g->cupti;
  if (events)
    g->cupti = false;
  timed t = {g, fn, ud};
  dnn_meas_stats s;
  memset(&s, 0, sizeof s);
  dnn_status st = dnn_meas_repeat_run(&rp, run_timed, &t, &s, err);
  g->cupti = cupti;
  *median = s.median_s;
  return st;
}

dnn_status dnn_meas_gpu_peaks(bool quick, dnn_meas_peaks *out, dnn_error *err) {
  memset(out, 0, sizeof *out);
  gpu g;
  dnn_status st = gpu_open(&g, DNN_DTYPE_FP32, err);
  void *a = NULL, *b = NULL, *c = NULL;
  if (st)
    goto fail;
  struct cudaDeviceProp prop;
  CUDA_TRY(cudaGetDeviceProperties(&prop, 0));
  int drv = 0, rt = 0;
  cudaDriverGetVersion(&drv);
  cudaRuntimeGetVersion(&rt);
  snprintf(out->device, sizeof out->device, "%s (%d SMs)", prop.name,
           prop.multiProcessorCount);
  snprintf(out->library, sizeof out->library,
           "CUDA driver %d.%d runtime %d.%d cuDNN %zu", drv / 1000,
           (drv % 1000) / 10, rt / 1000, (rt % 1000) / 10, cudnnGetVersion());
  snprintf(out->isa, sizeof out->isa, "sm_%d%d", prop.major, prop.minor);
  for (char *s = out->device; *s; s++)
    if (*s == ',' || *s == ';')
      *s = ' ';
  size_t free_b = 0, total_b = 0;
  CUDA_TRY(cudaMemGetInfo(&free_b, &total_b));
  out->mem_capacity_bytes = (double)total_b;

  size_t n = quick ? 2048 : 8192;
  CUDA_TRY(cudaMalloc(&a, n * n * 4));
  CUDA_TRY(cudaMalloc(&b, n * n * 4));
  CUDA_TRY(cudaMalloc(&c, n * n * 4));
  CUDA_TRY(cudaMemset(a, 0, n * n * 4));
  CUDA_TRY(cudaMemset(b, 0, n * n * 4));
  static const dnn_dtype types[] = {DNN_DTYPE_FP32, DNN_DTYPE_TF32,
                                    DNN_DTYPE_FP16, DNN_DTYPE_BF16};
  for (size_t k = 0; k < DNN_ARRAY_LEN(types); k++) {
    gpu h = g;
    h.dtype = types[k];
    if (types[k] == DNN_DTYPE_TF32) {
      h.blas_compute = CUBLAS_COMPUTE_32F_FAST_TF32;
    } else if (types[k] == DNN_DTYPE_FP16) {
      h.blas_dt = CUDA_R_16F;
      h.blas_compute = CUBLAS_COMPUTE_32F;
    } else if (types[k] == DNN_DTYPE_BF16) {
      h.blas_dt = CUDA_R_16BF;
      h.blas_compute = CUBLAS_COMPUTE_32F;
    }
    gemm_ud q = {n, a, b, c};
    double t = 0;
    dnn_error e;
    dnn_error_clear(&e);
    if (time_call(&h, gemm_call, &q, quick, false, &t, &e) == DNN_OK && t > 0)
      out->flops[types[k]] = 2.0 * dnn__d(n) * dnn__d(n) * dnn__d(n) / t;
    g.cupti = h.cupti;
  }
  /* Device-to-device copy: read + write bytes. */
  copy_ud q = {a, c, n * n * 4};
  double t = 0;
  if ((st = time_call(&g, copy_call, &q, quick, true, &t, err)))
    goto fail;
  out->mem_bandwidth_Bps = 2.0 * dnn__d(q.bytes) / t;
  /* Overhead: a one-element add, timed as kernel time. */
  {
    op o;
    memset(&o, 0, sizeof o);
    o.kind = DNN_LAYER_ADD;
    o.rows = o.cols = 1;
    CUDNN_TRY(cudnnCreateTensorDescriptor(&o.x));
    CUDNN_TRY(
        cudnnSetTensor4dDescriptor(o.x, CUDNN_TENSOR_NCHW, g.dt, 1, 1, 1, 1));
    o.b.p[0] = a;
    o.b.p[1] = c;
    st = time_call(&g, op_call, &o, quick, true, &t, err);
    o.b.p[0] = o.b.p[1] = NULL;
    op_free(&o);
    if (st)
      goto fail;
    out->launch_overhead_s = t;
  }
fail:
  if (a)
    cudaFree(a);
  if (b)
    cudaFree(b);
  if (c)
    cudaFree(c);
  gpu_close(&g);
  return st;
}

#endif /* DNNSIM_HAVE_CUDA */
