/*
 * cuDNN + CUPTI GPU back end (include/dnnsim/measure.h): peak rates of
 * device 0, per-layer kernel times of a network with every convolution
 * algorithm cuDNN offers for every pass, and an executor of micro-batched
 * convolution schedules (µ-cuDNN) that times them against the undivided
 * baseline.
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
 * shape at verify_batch with plain NCHW data, its output buffer poisoned
 * first, and its output is compared with the C reference (ref.c, computed
 * once per pass). A convolution algorithm that fails is excluded; a pass
 * with no passing algorithm, or another kernel that fails, is left out
 * and reported through on_skip. Nothing short of a device that stops
 * working (a sticky CUDA error) or host memory running out stops a sweep:
 * a GPU run is precious, so one bad kernel costs its row, not the run.
 *
 * Micro-batch executor (dnn_meas_gpu_microbatch): as µ-cuDNN runs a
 * division, the micro-batches go one after another on one stream at
 * offsets into the layer's tensors, each with its algorithm, all sharing
 * one workspace of the largest micro-batch's size; backward-weights
 * accumulates (beta 1 after the first micro-batch). The baseline is the
 * fastest undivided algorithm within the limit, ranked by cudnnFind and
 * timed with the same sampler; the schedule's output must equal the
 * baseline's to a relative L2 distance (µ-cuDNN's equivalence test).
 *
 * The legacy convolution API (cudnnFind*, cudnnConvolution*) is
 * deprecated in cuDNN 9 but still shipped; the deprecation warnings are
 * silenced for this file only. Switch to the graph API (cudnn_graph.h)
 * when a cuDNN release drops it.
 *
 * Invariant: every CUDA, cuDNN, cuBLAS and CUPTI resource is acquired and
 * released in this file on every path; the CUPTI counters are the only
 * global state and are only read after a device synchronisation and a
 * forced flush.
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <threads.h>

dnn_meas_mb_params dnn_meas_mb_default_params(void) {
  dnn_meas_mb_params p;
  memset(&p, 0, sizeof p);
  p.repeat = dnn_meas_repeat_quick_params();
  p.base_candidates = 3;
  /* µ-cuDNN's equivalence test expects 1e-6 (REFERENCE §2.2); different
   * algorithms (FFT, Winograd) round differently in fp32, hence 1e-5. */
  p.verify_rel_l2 = 1e-5;
  /* calibrate's GPU verification limit for fp32 (FFT and Winograd round
   * differently from implicit GEMM). */
  p.algo_rel_l2 = 1e-3;
  return p;
}

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

dnn_status dnn_meas_gpu_alloc(dnn_dtype dtype, dnn_meas_gpu **out,
                              dnn_error *err) {
  (void)dtype;
  *out = NULL;
  return DNN_FAIL(err, DNN_EUNSUPPORTED, "%s", NO_CUDA);
}

void dnn_meas_gpu_free(dnn_meas_gpu *g) {
  (void)g;
}

const char *dnn_meas_gpu_name(const dnn_meas_gpu *g) {
  (void)g;
  return "none";
}

dnn_status dnn_meas_gpu_microbatch(dnn_meas_gpu *g, const dnn_net *net,
                                   size_t layer, dnn_pass pass, size_t batch,
                                   const dnn_meas_mb_schedule *scheds, size_t n,
                                   const dnn_meas_mb_params *p,
                                   dnn_meas_mb_result *out, dnn_error *err) {
  (void)g;
  (void)net;
  (void)layer;
  (void)pass;
  (void)batch;
  (void)scheds;
  (void)n;
  (void)p;
  (void)out;
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

#include "cuda_util.h"

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

/* CUpti_ActivityKernel4 to 10 (CUDA 13) all hold start and end at the
 * same offsets (16 and 24), so a record of a newer CUPTI than the headers
 * still reads right. */
#if defined(CUPTI_API_VERSION) && CUPTI_API_VERSION >= 130000
typedef CUpti_ActivityKernel10 kernel_record;
#else
typedef CUpti_ActivityKernel9 kernel_record;
#endif

#define CUPTI_BUFFER_BYTES (1u << 20)

/* Totals of the kernel records delivered since the last reset. CUPTI may
 * deliver a full buffer from its own thread, hence the atomics; they are
 * only read after a synchronisation and a forced flush. */
static _Atomic uint64_t g_kernel_ns;
static _Atomic uint64_t g_kernels;

static void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size,
                                      size_t *max_records) {
  /* CUPTI needs 8-byte alignment; malloc gives at least that. */
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
  while (buffer &&
         cuptiActivityGetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS) {
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
  if (g->stream)
    cudaStreamSynchronize(g->stream);
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

/*
 * After a failed call: DNN_OK when the device still works (the failure
 * belonged to one kernel: cuDNN refused it, an allocation failed), else
 * DNN_ETOOLFAIL. A sticky error (an illegal address, a launch failure)
 * fails every later call, so it is still there after clearing the last
 * error.
 */
static dnn_status device_alive(gpu *g, dnn_error *err) {
  (void)cudaGetLastError();
  cudaError_t e = cudaStreamSynchronize(g->stream);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    e = cudaStreamSynchronize(g->stream);
  }
  if (e == cudaSuccess)
    e = cudaDeviceSynchronize();
  if (e != cudaSuccess)
    return DNN_FAIL(err, DNN_ETOOLFAIL,
                    "the GPU stopped working (%s); rows measured before "
                    "are kept",
                    cudaGetErrorString(e));
  return DNN_OK;
}

/* A failure of one kernel: host memory running out and a device that
 * stopped working end the sweep (DNN_ENOMEM / DNN_ETOOLFAIL in *err);
 * anything else is that kernel's alone (DNN_OK). */
static dnn_status kernel_failed(gpu *g, const dnn_error *e, dnn_error *err) {
  if (e->code == DNN_ENOMEM) {
    *err = *e;
    return DNN_ENOMEM;
  }
  return device_alive(g, err);
}

/* One GPU operation to time. */
typedef dnn_status (*gpu_call_fn)(gpu *g, void *ud, dnn_error *err);

/*
 * Runs the call `runs` times back to back. *kernel_s is the summed CUPTI
 * kernel time (NAN without CUPTI), *event_s the CUDA-event time of the
 * whole burst (launch gaps included). A burst in which CUPTI saw no
 * kernel turns CUPTI off for the session (events from then on).
 */
static dnn_status run_burst(gpu *g, gpu_call_fn fn, void *ud, size_t runs,
                            double *kernel_s, double *event_s, dnn_error *err) {
  dnn_status st = DNN_OK;
  *kernel_s = *event_s = NAN;
  CUDA_TRY(cudaStreamSynchronize(g->stream));
  if (g->cupti) {
    cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    atomic_store(&g_kernel_ns, 0);
    atomic_store(&g_kernels, 0);
  }
  CUDA_TRY(cudaEventRecord(g->ev0, g->stream));
  for (size_t r = 0; r < runs; r++)
    if ((st = fn(g, ud, err)))
      goto fail;
  CUDA_TRY(cudaEventRecord(g->ev1, g->stream));
  CUDA_TRY(cudaEventSynchronize(g->ev1));
  float ms = 0;
  CUDA_TRY(cudaEventElapsedTime(&ms, g->ev0, g->ev1));
  *event_s = (double)ms * 1e-3;
  if (g->cupti) {
    cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    if (atomic_load(&g_kernels) == 0)
      g->cupti = false; /* nothing recorded: events from now on */
    else
      *kernel_s = (double)atomic_load(&g_kernel_ns) * 1e-9;
  }
fail:
  return st;
}

typedef struct timed {
  gpu *g;
  gpu_call_fn fn;
  void *ud;
  double *wall;  /* event time per run of each sample, or NULL */
  size_t n_wall; /* samples in wall */
  size_t cap;    /* capacity of wall */
  size_t calls;  /* bursts so far (the first is the warm-up) */
} timed;

/* dnn_meas_run_fn: the CUPTI kernel time, else the event time; the event
 * time per run of every sample after the warm-up is kept in t->wall. */
static dnn_status run_timed(void *ud, size_t runs, double *elapsed,
                            dnn_error *err) {
  timed *t = ud;
  double ks, es;
  dnn_status st = run_burst(t->g, t->fn, t->ud, runs, &ks, &es, err);
  if (st)
    return st;
  *elapsed = t->g->cupti && isfinite(ks) ? ks : es;
  if (t->wall && t->calls > 0 && t->n_wall < t->cap && runs > 0)
    t->wall[t->n_wall++] = es / dnn__d(runs);
  t->calls++;
  return DNN_OK;
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

/* Elements generated on the host per buffer; the rest repeats them. */
#define FILL_BLOCK ((size_t)1 << 20)

/*
 * Fills n elements at dst (session dtype, or float with as_float) with
 * data in [-1, 1) from `seed`: one block made on the host, then doubling
 * device-to-device copies of it. Timings do not depend on the values
 * (only zeros, denormals or NaN would change them), and generating and
 * copying 200 M elements from the host would take about a second per
 * buffer of a batch-256 layer.
 */
static dnn_status dfill(gpu *g, void *dst, size_t n, bool as_float,
                        unsigned long long seed, dnn_error *err) {
  dnn_status st = DNN_OK;
  size_t es = as_float ? 4 : g->esize;
  size_t m = n < FILL_BLOCK ? n : FILL_BLOCK;
  float *h = dnn_malloc((m ? m : 1) * sizeof *h);
  if (h == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory");
  dnn__meas_fill(h, m, seed);
  if (as_float) {
    cudaError_t e = cudaMemcpy(dst, h, m * 4, cudaMemcpyHostToDevice);
    if (e != cudaSuccess)
      st =
          DNN_FAIL(err, DNN_ETOOLFAIL, "cudaMemcpy: %s", cudaGetErrorString(e));
  } else {
    st = upload(g, dst, h, m, err);
  }
  dnn_free(h);
  if (st)
    return st;
  for (size_t done = m; done < n;) {
    size_t k = done < n - done ? done : n - done;
    CUDA_TRY(cudaMemcpy((char *)dst + done * es, dst, k * es,
                        cudaMemcpyDeviceToDevice));
    done += k;
  }
fail:
  return st;
}

/* Device buffers of one layer: up to 8 tensors. */
#define NBUF 8
typedef struct dbufs {
  void *p[NBUF];
  size_t n[NBUF]; /* elements */
} dbufs;

static void dbufs_free(dbufs *b) {
  for (size_t k = 0; k < NBUF; k++)
    if (b->p[k])
      cudaFree(b->p[k]);
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
  return dfill(g, b->p[k], n, as_float, seed, err);
fail:
  b->p[k] = NULL;
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

/* cuDNN's number of model algorithm `algo` for `pass`, or -1 when cuDNN
 * has no such algorithm for the pass (gemm and direct backward-data,
 * direct backward-weights). */
static int algo_unmap(dnn_pass pass, dnn_conv_algo algo) {
  for (int a = 0; a < algo_count(pass); a++)
    if (algo_map(pass, a) == algo)
      return a;
  return -1;
}

/* Descriptors and buffers of one convolution at one batch. */
typedef struct conv {
  dnn__conv_shape s;
  cudnnTensorDescriptor_t x, y;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t cd;
  dbufs b;       /* 0 x, 1 w, 2 y, 3 dx, 4 dw, 5 dy */
  size_t sx, sy; /* elements per sample of x and y */
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

/* An NCHW tensor descriptor of n samples of the x (is_x) or y shape. */
static cudnnStatus_t conv_desc(const gpu *g, const conv *c, bool is_x, size_t n,
                               cudnnTensorDescriptor_t *out) {
  *out = NULL;
  cudnnStatus_t s = cudnnCreateTensorDescriptor(out);
  if (s != CUDNN_STATUS_SUCCESS)
    return s;
  const dnn__conv_shape *h = &c->s;
  s = is_x ? cudnnSetTensor4dDescriptor(*out, CUDNN_TENSOR_NCHW, g->dt, (int)n,
                                        (int)h->ic, (int)h->ih, (int)h->iw)
           : cudnnSetTensor4dDescriptor(*out, CUDNN_TENSOR_NCHW, g->dt, (int)n,
                                        (int)h->oc, (int)h->oh, (int)h->ow);
  if (s != CUDNN_STATUS_SUCCESS) {
    cudnnDestroyTensorDescriptor(*out);
    *out = NULL;
  }
  return s;
}

static dnn_status conv_make(gpu *g, const dnn_net *net, size_t i, size_t batch,
                            conv *c, dnn_error *err) {
  memset(c, 0, sizeof *c);
  dnn__meas_conv_shape(net, i, batch, &c->s);
  const dnn__conv_shape *s = &c->s;
  dnn_status st = DNN_OK;
  size_t per = s->ic * s->ih * s->iw > s->oc * s->oh * s->ow
                   ? s->ic * s->ih * s->iw
                   : s->oc * s->oh * s->ow;
  if (per > 0 && s->n > (size_t)INT32_MAX / per) {
    st = DNN_FAIL(err, DNN_ERANGE,
                  "layer '%s' at batch %zu has more than 2^31 elements, "
                  "beyond cuDNN's 4-d descriptors",
                  dnn_net_layer(net, i)->name, batch);
    goto fail;
  }
  CUDNN_TRY(cudnnCreateFilterDescriptor(&c->w));
  CUDNN_TRY(cudnnCreateConvolutionDescriptor(&c->cd));
  CUDNN_TRY(conv_desc(g, c, true, s->n, &c->x));
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
  if ((size_t)h != s->oh || (size_t)w != s->ow || (size_t)ch != s->oc) {
    st = DNN_FAIL(err, DNN_EINVAL,
                  "cuDNN's output %dx%dx%d of layer '%s' differs from the "
                  "model's %zux%zux%zu",
                  ch, h, w, dnn_net_layer(net, i)->name, s->oc, s->oh, s->ow);
    goto fail;
  }
  CUDNN_TRY(conv_desc(g, c, false, s->n, &c->y));
  c->sx = s->ic * s->ih * s->iw;
  c->sy = s->oc * s->oh * s->ow;
  size_t nx = s->n * c->sx, ny = s->n * c->sy;
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

/* Workspace of cuDNN algorithm `a` for `pass` on tensors described by xd
 * and yd; false when cuDNN refuses the combination. */
static bool conv_ws_desc(gpu *g, const conv *c, dnn_pass pass, int a,
                         cudnnTensorDescriptor_t xd, cudnnTensorDescriptor_t yd,
                         size_t *bytes) {
  cudnnStatus_t s;
  *bytes = 0;
  if (pass == DNN_PASS_FWD)
    s = cudnnGetConvolutionForwardWorkspaceSize(
        g->dnn, xd, c->w, c->cd, yd, (cudnnConvolutionFwdAlgo_t)a, bytes);
  else if (pass == DNN_PASS_BWD_DATA)
    s = cudnnGetConvolutionBackwardDataWorkspaceSize(
        g->dnn, c->w, yd, c->cd, xd, (cudnnConvolutionBwdDataAlgo_t)a, bytes);
  else
    s = cudnnGetConvolutionBackwardFilterWorkspaceSize(
        g->dnn, xd, yd, c->cd, c->w, (cudnnConvolutionBwdFilterAlgo_t)a, bytes);
  return s == CUDNN_STATUS_SUCCESS;
}

static bool conv_ws(gpu *g, const conv *c, dnn_pass pass, int a,
                    size_t *bytes) {
  return conv_ws_desc(g, c, pass, a, c->x, c->y, bytes);
}

/* Grows the workspace to at least `bytes` (never shrinks it). */
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

/*
 * One call of `pass` with cuDNN algorithm `a` on the samples from `off`
 * on, as many as xd and yd describe, with the workspace c->ws; beta
 * blends into the output (1: accumulate, for backward-weights after the
 * first micro-batch).
 */
static cudnnStatus_t conv_exec(gpu *g, const conv *c, dnn_pass pass, int a,
                               cudnnTensorDescriptor_t xd,
                               cudnnTensorDescriptor_t yd, size_t off,
                               float beta) {
  const float one = 1;
  size_t es = g->esize;
  char *x = (char *)c->b.p[0] + off * c->sx * es;
  char *y = (char *)c->b.p[2] + off * c->sy * es;
  char *dx = (char *)c->b.p[3] + off * c->sx * es;
  char *dy = (char *)c->b.p[5] + off * c->sy * es;
  if (pass == DNN_PASS_FWD)
    return cudnnConvolutionForward(g->dnn, &one, xd, x, c->w, c->b.p[1], c->cd,
                                   (cudnnConvolutionFwdAlgo_t)a, c->ws,
                                   c->ws_bytes, &beta, yd, y);
  if (pass == DNN_PASS_BWD_DATA)
    return cudnnConvolutionBackwardData(g->dnn, &one, c->w, c->b.p[1], yd, dy,
                                        c->cd, (cudnnConvolutionBwdDataAlgo_t)a,
                                        c->ws, c->ws_bytes, &beta, xd, dx);
  return cudnnConvolutionBackwardFilter(
      g->dnn, &one, xd, x, yd, dy, c->cd, (cudnnConvolutionBwdFilterAlgo_t)a,
      c->ws, c->ws_bytes, &beta, c->w, c->b.p[4]);
}

/* One call of the pass with the algorithm in c->pass / c->algo. */
static dnn_status conv_call(gpu *g, void *ud, dnn_error *err) {
  conv *c = ud;
  cudnnStatus_t s = conv_exec(g, c, c->pass, c->algo, c->x, c->y, 0, 0.0f);
  if (s != CUDNN_STATUS_SUCCESS)
    return DNN_FAIL(err, DNN_ETOOLFAIL, "%s with cuDNN algorithm %d: %s",
                    dnn_pass_name(c->pass), c->algo, cudnnGetErrorString(s));
  return DNN_OK;
}

/* The output buffer of each pass: y, dx, dw. */
static size_t conv_out(dnn_pass pass) {
  return pass == DNN_PASS_FWD ? 2 : pass == DNN_PASS_BWD_DATA ? 3 : 4;
}

/* Fills a pass's output with the byte 0x7e (fp32 8.4e37, bf16 8.4e37,
 * fp16 NaN), so that output a kernel failed to write cannot pass for a
 * result left there by an earlier run. */
static dnn_status conv_poison(gpu *g, conv *c, dnn_pass pass, dnn_error *err) {
  dnn_status st = DNN_OK;
  size_t k = conv_out(pass);
  CUDA_TRY(cudaMemsetAsync(c->b.p[k], 0x7e, c->b.n[k] * g->esize, g->stream));
fail:
  return st;
}

/* The reference output of `pass` on the host data x, w, dy (n elements of
 * the pass's output, scaled by `scale`, the verification hook). */
static void conv_ref(const conv *c, dnn_pass pass, const float *x,
                     const float *w, const float *dy, double scale,
                     double *ref) {
  const dnn__conv_shape *s = &c->s;
  if (pass == DNN_PASS_FWD)
    dnn__ref_conv_fwd(s, x, w, NULL, ref);
  else if (pass == DNN_PASS_BWD_DATA)
    dnn__ref_conv_bwd_data(s, dy, w, ref);
  else
    dnn__ref_conv_bwd_weights(s, x, dy, ref, NULL);
  size_t n = c->b.n[conv_out(pass)];
  for (size_t k = 0; k < n; k++)
    ref[k] *= scale;
}

/*
 * Verifies cuDNN algorithm `a` of `pass` on c (built at the verify batch,
 * inputs already uploaded) against `ref`. An algorithm cuDNN refuses, or
 * whose workspace cannot be allocated, gets infinite errors; only a
 * device that stops working or host memory failing is an error.
 */
static dnn_status conv_verify(gpu *g, conv *c, dnn_pass pass, int a,
                              const double *ref, float *got, double *l2,
                              double *mx, dnn_error *err) {
  *l2 = *mx = INFINITY;
  size_t ws = 0;
  if (!conv_ws(g, c, pass, a, &ws))
    return DNN_OK;
  dnn_error e;
  dnn_error_clear(&e);
  dnn_status st;
  if (conv_set_ws(c, ws, &e) != DNN_OK)
    return device_alive(g, err);
  if ((st = conv_poison(g, c, pass, err)))
    return st;
  c->pass = pass;
  c->algo = a;
  if (conv_call(g, c, &e) != DNN_OK) /* not runnable on this shape */
    return device_alive(g, err);
  size_t k = conv_out(pass);
  if (download(g, got, c->b.p[k], c->b.n[k], &e) != DNN_OK)
    return kernel_failed(g, &e, err);
  dnn__meas_compare(got, ref, c->b.n[k], l2, mx);
  return DNN_OK;
}

/*
 * The algorithms to time for the pass, at most 16, with their workspace
 * in bytes: cudnnFind*Ex's, fastest first (status success, workspace
 * within `limit`), run inside a workspace of the limit or half the free
 * memory. When Find itself fails, every algorithm whose workspace query
 * succeeds within the limit, in cuDNN's order, and *found is false.
 * Errors only when the device stops working.
 */
static dnn_status conv_find(gpu *g, conv *c, dnn_pass pass, double limit,
                            int *algos, size_t *ws_bytes, size_t *n,
                            bool *found, dnn_error *err) {
  dnn_status st = DNN_OK;
  *n = 0;
  *found = false;
  size_t free_b = 0, total_b = 0;
  CUDA_TRY(cudaMemGetInfo(&free_b, &total_b));
  size_t cap =
      (size_t)(limit < (double)free_b / 2 ? limit : (double)free_b / 2);
  dnn_error e;
  dnn_error_clear(&e);
  if (conv_set_ws(c, cap, &e) != DNN_OK) {
    if ((st = device_alive(g, err)))
      return st;
    cap = c->ws_bytes;
  }
  cudnnStatus_t s = CUDNN_STATUS_SUCCESS;
  int got = 0;
  if (pass == DNN_PASS_FWD) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    s = cudnnFindConvolutionForwardAlgorithmEx(
        g->dnn, c->x, c->b.p[0], c->w, c->b.p[1], c->cd, c->y, c->b.p[2],
        CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf, c->ws, c->ws_bytes);
    for (int k = 0; s == CUDNN_STATUS_SUCCESS && k < got; k++)
      if (perf[k].status == CUDNN_STATUS_SUCCESS &&
          (double)perf[k].memory <= limit && *n < 16) {
        algos[*n] = (int)perf[k].algo;
        ws_bytes[(*n)++] = perf[k].memory;
      }
  } else if (pass == DNN_PASS_BWD_DATA) {
    cudnnConvolutionBwdDataAlgoPerf_t
        perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    s = cudnnFindConvolutionBackwardDataAlgorithmEx(
        g->dnn, c->w, c->b.p[1], c->y, c->b.p[5], c->cd, c->x, c->b.p[3],
        CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, perf, c->ws, c->ws_bytes);
    for (int k = 0; s == CUDNN_STATUS_SUCCESS && k < got; k++)
      if (perf[k].status == CUDNN_STATUS_SUCCESS &&
          (double)perf[k].memory <= limit && *n < 16) {
        algos[*n] = (int)perf[k].algo;
        ws_bytes[(*n)++] = perf[k].memory;
      }
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t
        perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    s = cudnnFindConvolutionBackwardFilterAlgorithmEx(
        g->dnn, c->x, c->b.p[0], c->y, c->b.p[5], c->cd, c->w, c->b.p[4],
        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, perf, c->ws,
        c->ws_bytes);
    for (int k = 0; s == CUDNN_STATUS_SUCCESS && k < got; k++)
      if (perf[k].status == CUDNN_STATUS_SUCCESS &&
          (double)perf[k].memory <= limit && *n < 16) {
        algos[*n] = (int)perf[k].algo;
        ws_bytes[(*n)++] = perf[k].memory;
      }
  }
  if (s == CUDNN_STATUS_SUCCESS) {
    *found = true;
    return DNN_OK;
  }
  /* Find failed (or an algorithm it ran failed badly): fall back to the
   * workspace queries; timing then finds out which algorithms run. */
  if ((st = device_alive(g, err)))
    return st;
  *n = 0;
  for (int a = 0; a < algo_count(pass) && *n < 16; a++) {
    size_t ws = 0;
    if (conv_ws(g, c, pass, a, &ws) && (double)ws <= limit) {
      algos[*n] = a;
      ws_bytes[(*n)++] = ws;
    }
  }
fail:
  return st;
}

/* ------------------------------------------------------------------------ */
/* LSTM                                                                     */
/* ------------------------------------------------------------------------ */

/*
 * One LSTM layer as cuDNN's RNN API (v8) runs it in training: one
 * unidirectional layer without projection, sequence-major packed data
 * x[T][n][c] and y[T][n][h] (every sequence T long: ref.c's layouts),
 * zero initial and unused final states (hx, cx, hy, cy NULL), cuDNN's
 * default double bias (the recurrent biases stay 0 when verifying, so the
 * cell computes ref.c's single-bias LSTM), and a reserve space the
 * forward fills for the backward. Backward-data leaves in the reserve
 * space what backward-weights reads, so backward-weights is timed after
 * one forward and one backward-data (op_prepare).
 */
typedef struct lstm {
  cudnnRNNDescriptor_t rnn;
  cudnnDropoutDescriptor_t drop;
  cudnnRNNDataDescriptor_t xd, yd;
  cudnnTensorDescriptor_t hd;
  int32_t *seq; /* device: every sequence's length (T) */
  void *x, *y, *dy, *dx, *w, *dw, *ws, *rs;
  size_t T, n, c, h;
  size_t wbytes, wsbytes, rsbytes; /* weight, work and reserve space */
  dnn_pass pass;
} lstm;

static void lstm_free(lstm *L) {
  if (L->rnn)
    cudnnDestroyRNNDescriptor(L->rnn);
  if (L->drop)
    cudnnDestroyDropoutDescriptor(L->drop);
  if (L->xd)
    cudnnDestroyRNNDataDescriptor(L->xd);
  if (L->yd)
    cudnnDestroyRNNDataDescriptor(L->yd);
  if (L->hd)
    cudnnDestroyTensorDescriptor(L->hd);
  void *bufs[] = {L->seq, L->x, L->y, L->dy, L->dx, L->w, L->dw, L->ws, L->rs};
  for (size_t k = 0; k < DNN_ARRAY_LEN(bufs); k++)
    if (bufs[k])
      cudaFree(bufs[k]);
  memset(L, 0, sizeof *L);
}

/* `bytes` of device memory at *p: `elems` random values of the session
 * dtype from `seed`, or zeros when seed is 0. */
static dnn_status lstm_buf(gpu *g, void **p, size_t bytes, size_t elems,
                           unsigned long long seed, dnn_error *err) {
  dnn_status st = DNN_OK;
  void *q = NULL;
  CUDA_TRY(cudaMalloc(&q, bytes ? bytes : 1));
  *p = q; /* lstm_free frees it from here on */
  if (seed)
    return dfill(g, q, elems, false, seed, err);
  CUDA_TRY(cudaMemset(q, 0, bytes ? bytes : 1));
fail:
  return st;
}

/* Builds layer `i` (an LSTM over in = [T][c]) at `batch`. */
static dnn_status lstm_make(gpu *g, const dnn_net *net, size_t i, size_t batch,
                            lstm *L, dnn_error *err) {
  memset(L, 0, sizeof *L);
  const dnn_layer *l = dnn_net_layer(net, i);
  if (l->in.rank != 2)
    return DNN_EUNSUPPORTED;
  size_t T = l->in.dim[0], c = l->in.dim[1], h = l->p.lstm.hidden;
  if (T > INT32_MAX || batch > INT32_MAX || c > INT32_MAX || h > INT32_MAX ||
      T * batch * (c > h ? c : h) > (size_t)INT32_MAX)
    return DNN_FAIL(err, DNN_EINVAL,
                    "LSTM of %zu steps, batch %zu, %zu inputs and %zu units "
                    "exceeds cuDNN's int sizes",
                    T, batch, c, h);
  L->T = T;
  L->n = batch;
  L->c = c;
  L->h = h;
  dnn_status st = DNN_OK;
  int *lens = dnn_malloc(batch * sizeof *lens);
  if (lens == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory");
  for (size_t k = 0; k < batch; k++)
    lens[k] = (int)T;
  CUDNN_TRY(cudnnCreateDropoutDescriptor(&L->drop));
  /* Dropout 0 needs no random-number states. */
  CUDNN_TRY(cudnnSetDropoutDescriptor(L->drop, g->dnn, 0.0f, NULL, 0, 0));
  CUDNN_TRY(cudnnCreateRNNDescriptor(&L->rnn));
  CUDNN_TRY(cudnnSetRNNDescriptor_v8(
      L->rnn, CUDNN_RNN_ALGO_STANDARD, CUDNN_LSTM, CUDNN_RNN_DOUBLE_BIAS,
      CUDNN_UNIDIRECTIONAL, CUDNN_LINEAR_INPUT, g->dt, CUDNN_DATA_FLOAT,
      g->math, (int32_t)c, (int32_t)h, (int32_t)h, 1, L->drop,
      CUDNN_RNN_PADDED_IO_DISABLED));
  CUDNN_TRY(cudnnCreateRNNDataDescriptor(&L->xd));
  CUDNN_TRY(cudnnCreateRNNDataDescriptor(&L->yd));
  CUDNN_TRY(cudnnSetRNNDataDescriptor(L->xd, g->dt,
                                      CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_PACKED,
                                      (int)T, (int)batch, (int)c, lens, NULL));
  CUDNN_TRY(cudnnSetRNNDataDescriptor(L->yd, g->dt,
                                      CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_PACKED,
                                      (int)T, (int)batch, (int)h, lens, NULL));
  int hdim[3] = {1, (int)batch, (int)h};
  int hstride[3] = {(int)(batch * h), (int)h, 1};
  CUDNN_TRY(cudnnCreateTensorDescriptor(&L->hd));
  CUDNN_TRY(cudnnSetTensorNdDescriptor(L->hd, g->dt, 3, hdim, hstride));
  CUDNN_TRY(cudnnGetRNNWeightSpaceSize(g->dnn, L->rnn, &L->wbytes));
  CUDNN_TRY(cudnnGetRNNTempSpaceSizes(g->dnn, L->rnn, CUDNN_FWD_MODE_TRAINING,
                                      L->xd, &L->wsbytes, &L->rsbytes));
  CUDA_TRY(cudaMalloc((void **)&L->seq, batch * sizeof *L->seq));
  CUDA_TRY(
      cudaMemcpy(L->seq, lens, batch * sizeof *L->seq, cudaMemcpyHostToDevice));
  size_t es = g->esize, nx = T * batch * c, ny = T * batch * h;
  if ((st = lstm_buf(g, &L->x, nx * es, nx, 341, err)) ||
      (st = lstm_buf(g, &L->y, ny * es, ny, 342, err)) ||
      (st = lstm_buf(g, &L->dy, ny * es, ny, 343, err)) ||
      (st = lstm_buf(g, &L->dx, nx * es, 0, 0, err)) ||
      (st = lstm_buf(g, &L->w, L->wbytes, L->wbytes / es, 344, err)) ||
      (st = lstm_buf(g, &L->dw, L->wbytes, 0, 0, err)) ||
      (st = lstm_buf(g, &L->ws, L->wsbytes, 0, 0, err)) ||
      (st = lstm_buf(g, &L->rs, L->rsbytes, 0, 0, err)))
    goto fail;
  dnn_free(lens);
  return DNN_OK;
fail:
  dnn_free(lens);
  lstm_free(L);
  return st;
}

/* Runs L->pass once (the weight gradients accumulate). */
static dnn_status lstm_call(gpu *g, lstm *L, dnn_error *err) {
  dnn_status st = DNN_OK;
  switch (L->pass) {
  case DNN_PASS_FWD:
    CUDNN_TRY(cudnnRNNForward(g->dnn, L->rnn, CUDNN_FWD_MODE_TRAINING, L->seq,
                              L->xd, L->x, L->yd, L->y, L->hd, NULL, NULL,
                              L->hd, NULL, NULL, L->wbytes, L->w, L->wsbytes,
                              L->ws, L->rsbytes, L->rs));
    break;
  case DNN_PASS_BWD_DATA:
    CUDNN_TRY(cudnnRNNBackwardData_v8(
        g->dnn, L->rnn, L->seq, L->yd, L->y, L->dy, L->xd, L->dx, L->hd, NULL,
        NULL, NULL, L->hd, NULL, NULL, NULL, L->wbytes, L->w, L->wsbytes, L->ws,
        L->rsbytes, L->rs));
    break;
  default:
    CUDNN_TRY(cudnnRNNBackwardWeights_v8(
        g->dnn, L->rnn, CUDNN_WGRAD_MODE_ADD, L->seq, L->xd, L->x, L->hd, NULL,
        L->yd, L->y, L->wbytes, L->dw, L->wsbytes, L->ws, L->rsbytes, L->rs));
    break;
  }
fail:
  return st;
}

/*
 * Moves weights between ref.c's layouts (wx[c][4][h], wh[h][4][h],
 * b[4][h]) and the weight space `space` (put: into it, zeroing the rest
 * first; else out of it; a NULL array is skipped). cuDNN's and ref.c's
 * gate orders are both i, f, g, o: matrix linLayerID q (input) and 4 + q
 * (recurrent) belong to gate q and are row-major [h][c] and [h][h]; gate
 * q's input bias is b's row q and the recurrent biases stay 0. The
 * matrices' shapes and strides are checked, not assumed.
 */
static dnn_status lstm_weights(gpu *g, lstm *L, void *space, bool put,
                               float *wx, float *wh, const float *b,
                               dnn_error *err) {
  dnn_status st = DNN_OK;
  cudnnTensorDescriptor_t md = NULL, bd = NULL;
  size_t H = L->h, big = H * (L->c > H ? L->c : H);
  float *m = dnn_malloc((big ? big : 1) * sizeof *m);
  if (m == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory");
  CUDNN_TRY(cudnnCreateTensorDescriptor(&md));
  CUDNN_TRY(cudnnCreateTensorDescriptor(&bd));
  if (put)
    CUDA_TRY(cudaMemset(space, 0, L->wbytes));
  for (int id = 0; id < 8; id++) {
    float *w = id < 4 ? wx : wh;
    if (w == NULL)
      continue;
    size_t q = (size_t)id % 4, in = id < 4 ? L->c : H;
    void *ma = NULL, *ba = NULL;
    CUDNN_TRY(cudnnGetRNNWeightParams(g->dnn, L->rnn, 0, L->wbytes, space, id,
                                      md, &ma, bd, &ba));
    cudnnDataType_t dt;
    int nd = 0, dims[8], strides[8];
    CUDNN_TRY(cudnnGetTensorNdDescriptor(md, 8, &dt, &nd, dims, strides));
    size_t elems = 1;
    for (int k = 0; k < nd; k++)
      elems *= (size_t)dims[k];
    if (ma == NULL || nd < 2 || elems != H * in || (size_t)dims[nd - 2] != H ||
        strides[nd - 1] != 1 || (size_t)strides[nd - 2] != in) {
      st = DNN_FAIL(err, DNN_ETOOLFAIL,
                    "cuDNN's LSTM matrix %d is not a row-major %zu x %zu "
                    "matrix (%d dims, %zu values)",
                    id, H, in, nd, elems);
      goto fail;
    }
    if (put) {
      for (size_t k = 0; k < H; k++)
        for (size_t j = 0; j < in; j++)
          m[k * in + j] = w[(j * 4 + q) * H + k];
      if ((st = upload(g, ma, m, H * in, err)))
        goto fail;
      if (id < 4 && ba != NULL && (st = upload(g, ba, b + q * H, H, err)))
        goto fail;
    } else {
      if ((st = download(g, m, ma, H * in, err)))
        goto fail;
      for (size_t k = 0; k < H; k++)
        for (size_t j = 0; j < in; j++)
          w[(j * 4 + q) * H + k] = m[k * in + j];
    }
  }
fail:
  if (md)
    cudnnDestroyTensorDescriptor(md);
  if (bd)
    cudnnDestroyTensorDescriptor(bd);
  dnn_free(m);
  return st;
}

/* Rounds host data to what the device holds in the session dtype. */
static void as_device(const gpu *g, float *x, size_t n) {
  for (size_t k = 0; g->esize == 2 && k < n; k++)
    x[k] = g->dtype == DNN_DTYPE_BF16 ? from_bf16(to_bf16(x[k]))
                                      : from_half(to_half(x[k]));
}

/*
 * Verifies `pass` of L (built at the verify batch) on the data dnnl.c
 * verifies its LSTM with: the forward's y against ref.c (relative L2 and
 * max-norm), the gradients of x and wx by the directional-derivative
 * check (common.c), whose relative error goes to both *l2 and *mx.
 */
static dnn_status lstm_verify(gpu *g, lstm *L, dnn_pass pass, double scale,
                              double *l2, double *mx, dnn_error *err) {
  size_t T = L->T, n = L->n, C = L->c, H = L->h;
  size_t nx = T * n * C, ny = T * n * H, nwx = C * 4 * H, nwh = H * 4 * H;
  size_t big = nx > ny ? nx : ny;
  big = big > nwx ? big : nwx;
  dnn_status st = DNN_OK;
  float *x = dnn_malloc(nx * sizeof *x), *wx = dnn_malloc(nwx * sizeof *wx);
  float *wh = dnn_malloc(nwh * sizeof *wh), *b = dnn_malloc(4 * H * sizeof *b);
  float *dy = dnn_malloc(ny * sizeof *dy), *got = dnn_malloc(big * sizeof *got);
  double *y = dnn_malloc(ny * sizeof *y);
  double *scratch = dnn_malloc(6 * H * sizeof *scratch);
  if (!x || !wx || !wh || !b || !dy || !got || !y || !scratch) {
    st = DNN_FAIL(err, DNN_ENOMEM, "out of memory verifying an LSTM");
    goto done;
  }
  dnn__meas_fill(x, nx, 71);
  dnn__meas_fill(wx, nwx, 72);
  dnn__meas_fill(wh, nwh, 73);
  dnn__meas_fill(b, 4 * H, 74);
  dnn__meas_fill(dy, ny, 75);
  dnn__meas_lstm_scale_weights(C, H, wx, wh);
  as_device(g, x, nx);
  as_device(g, wx, nwx);
  as_device(g, wh, nwh);
  as_device(g, b, 4 * H);
  as_device(g, dy, ny);
  if ((st = upload(g, L->x, x, nx, err)) ||
      (st = lstm_weights(g, L, L->w, true, wx, wh, b, err)))
    goto done;
  L->pass = DNN_PASS_FWD;
  if ((st = lstm_call(g, L, err)))
    goto done;
  if (pass == DNN_PASS_FWD) {
    dnn__ref_lstm_fwd(T, n, C, H, x, wx, wh, b, scratch, y);
    for (size_t k = 0; k < ny; k++)
      y[k] *= scale;
    if ((st = download(g, got, L->y, ny, err)))
      goto done;
    dnn__meas_compare(got, y, ny, l2, mx);
    goto done;
  }
  if ((st = upload(g, L->dy, dy, ny, err)))
    goto done;
  L->pass = DNN_PASS_BWD_DATA;
  if ((st = lstm_call(g, L, err)))
    goto done;
  size_t ng = nx;
  if (pass == DNN_PASS_BWD_DATA) {
    if ((st = download(g, got, L->dx, nx, err)))
      goto done;
  } else {
    CUDA_TRY(cudaMemset(L->dw, 0, L->wbytes));
    L->pass = DNN_PASS_BWD_WEIGHTS;
    if ((st = lstm_call(g, L, err)) ||
        (st = lstm_weights(g, L, L->dw, false, got, NULL, NULL, err)))
      goto done;
    ng = nwx;
  }
  for (size_t k = 0; k < ng; k++)
    got[k] = (float)((double)got[k] / scale);
  float *const in[4] = {x, wx, wh, b};
  bool data = pass == DNN_PASS_BWD_DATA;
  *l2 = *mx = dnn__meas_lstm_dir_check(T, n, C, H, in, data ? x : wx, ng, got,
                                       dy, data ? 1.0 : 1.0 / sqrt(dnn__d(C)));
  goto done;
fail:
done:
  dnn_free(x);
  dnn_free(wx);
  dnn_free(wh);
  dnn_free(b);
  dnn_free(dy);
  dnn_free(got);
  dnn_free(y);
  dnn_free(scratch);
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
  lstm L; /* an LSTM's own descriptors and buffers */
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
  lstm_free(&o->L);
  dbufs_free(&o->b);
  memset(o, 0, sizeof *o);
}

/* Builds layer `i` at `batch`; DNN_EUNSUPPORTED (no message) for a kind
 * this back end leaves to the roofline. Buffers: fc 0 x, 1 w, 2 y, 3 dx,
 * 4 dw, 5 dy; pooling 0 x, 1 y, 2 dy, 3 dx; batch norm 0 x, 1 y, 2 dy,
 * 3 dx, 4 scale, 5 bias, 6 dscale, 7 dbias (float); activation and
 * softmax 0 x, 1 y, 2 dy, 3 dx; add 0 a, 1 c; an LSTM has its own (o->L). */
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
  case DNN_LAYER_LSTM:
    if ((st = lstm_make(g, net, i, batch, &o->L, err)))
      goto fail;
    return DNN_OK;
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
  case DNN_LAYER_LSTM:
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
  case DNN_LAYER_LSTM:
    o->L.pass = o->pass;
    return lstm_call(g, &o->L, err);
  default:
    break;
  }
fail:
  return st;
}

/* Runs, untimed, the passes whose results `pass` of o reads: the forward
 * for a backward pass, and an LSTM's backward-data too for its
 * backward-weights (lstm). */
static dnn_status op_prepare(gpu *g, op *o, dnn_pass pass, dnn_error *err) {
  dnn_status st = DNN_OK;
  if (pass == DNN_PASS_FWD)
    return DNN_OK;
  o->pass = DNN_PASS_FWD;
  if ((st = op_call(g, o, err)))
    return st;
  if (o->kind == DNN_LAYER_LSTM && pass == DNN_PASS_BWD_WEIGHTS) {
    o->pass = DNN_PASS_BWD_DATA;
    st = op_call(g, o, err);
  }
  return st;
}

/* Verifies `pass` of o (built at the verify batch). */
static dnn_status op_verify(gpu *g, op *o, dnn_pass pass, double scale,
                            double *l2, double *mx, dnn_error *err) {
  if (o->kind == DNN_LAYER_LSTM)
    return lstm_verify(g, &o->L, pass, scale, l2, mx, err);
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

/* Reports a kernel left out through the on_skip hook. */
#if defined(__GNUC__)
__attribute__((format(printf, 6, 7)))
#endif
static void
skipped(const dnn_meas_kernel_params *p, const dnn_layer *l, dnn_pass pass,
        dnn_conv_algo algo, size_t batch, const char *fmt, ...) {
  if (p->on_skip == NULL)
    return;
  char why[DNN_ERROR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  p->on_skip(p->skip_ud, l->name, pass, algo, batch, why);
}

/* What the sweep keeps across layers: every row it emitted (a later layer
 * with the same signature replays them) and how many rows the caller's
 * `done` table made it skip (such a layer is not replayed from). */
typedef struct sweep {
  const dnn_meas_kernel_params *user;
  dnn_meas_kernel_table *seen;
  size_t resumed;
} sweep;

static dnn_status sweep_row(void *ud, const dnn_meas_kernel_row *r,
                            dnn_error *err) {
  sweep *s = ud;
  dnn_status st = dnn_meas_kernel_table_add(s->seen, r, err);
  if (st)
    return st;
  return s->user->on_row ? s->user->on_row(s->user->row_ud, r, err) : DNN_OK;
}

/* dnn__meas_row_done, counting the rows it skips. */
static bool row_done(const dnn_meas_kernel_params *p,
                     const dnn_meas_kernel_row *r) {
  if (!dnn__meas_row_done(p, r))
    return false;
  if (p->on_row == sweep_row)
    ((sweep *)p->row_ud)->resumed++;
  return true;
}

/* Emits a measured row. */
static dnn_status emit(const dnn_meas_kernel_params *p, dnn_meas_kernel_row *r,
                       dnn_error *err) {
  if (!(r->t.median_s > 0) || !(r->flops > 0 || r->bytes > 0))
    return DNN_OK;
  return p->on_row ? p->on_row(p->row_ud, r, err) : DNN_OK;
}

/* Verifies every algorithm of every pass of conv layer i (c built at the
 * verify batch): ok[pass][a], errors in vl2/vmx; dead[pass] when none
 * passes (reported). */
static dnn_status conv_verify_layer(gpu *g, const dnn_net *net, size_t i,
                                    conv *c, const dnn_meas_kernel_params *p,
                                    bool ok[][16], double vl2[][16],
                                    double vmx[][16], bool *dead,
                                    dnn_error *err) {
  const dnn_layer *l = dnn_net_layer(net, i);
  size_t nx = c->b.n[0], nw = c->b.n[1], ny = c->b.n[2];
  size_t big = nx > ny ? (nx > nw ? nx : nw) : (ny > nw ? ny : nw);
  float *x = dnn_malloc(nx * 4), *w = dnn_malloc(nw * 4);
  float *dy = dnn_malloc(ny * 4), *got = dnn_malloc(big * 4);
  double *ref = dnn_malloc(big * sizeof(double));
  dnn_status st = DNN_OK;
  dnn_error e;
  dnn_error_clear(&e);
  if (!x || !w || !dy || !got || !ref) {
    st = DNN_FAIL(err, DNN_ENOMEM, "out of memory verifying a convolution");
    goto done;
  }
  dnn__meas_fill(x, nx, 201);
  dnn__meas_fill(w, nw, 202);
  dnn__meas_fill(dy, ny, 203);
  if (upload(g, c->b.p[0], x, nx, &e) || upload(g, c->b.p[1], w, nw, &e) ||
      upload(g, c->b.p[5], dy, ny, &e)) {
    if ((st = kernel_failed(g, &e, err)) == DNN_OK) {
      for (int pass = 0; pass < DNN_PASS_COUNT; pass++)
        dead[pass] = true;
      skipped(p, l, DNN_PASS_COUNT, DNN_CONV_ALGO_COUNT, 0,
              "cannot upload verification data: %s", e.msg);
    }
    goto done;
  }
  for (int pass = 0; pass < DNN_PASS_COUNT && st == DNN_OK; pass++) {
    if (!has_cost(net, i, (dnn_pass)pass, p->verify_batch, p->dtype))
      continue;
    conv_ref(c, (dnn_pass)pass, x, w, dy,
             dnn__meas_perturb(l->kind, (dnn_pass)pass), ref);
    bool any = false;
    double best = INFINITY;
    for (int a = 0; a < algo_count((dnn_pass)pass) && st == DNN_OK; a++) {
      double l2 = INFINITY, mx = INFINITY;
      st = conv_verify(g, c, (dnn_pass)pass, a, ref, got, &l2, &mx, err);
      vl2[pass][a] = l2;
      vmx[pass][a] = mx;
      ok[pass][a] = l2 <= p->verify_rel_l2 && mx <= p->verify_max_rel;
      any = any || ok[pass][a];
      best = l2 < best ? l2 : best;
    }
    if (st == DNN_OK && !any) {
      dead[pass] = true;
      skipped(p, l, (dnn_pass)pass, DNN_CONV_ALGO_COUNT, 0,
              "no cuDNN algorithm passes verification against the C "
              "reference (best relative L2 error %.3g, limit %.3g)",
              best, p->verify_rel_l2);
    }
  }
done:
  dnn_free(x);
  dnn_free(w);
  dnn_free(dy);
  dnn_free(got);
  dnn_free(ref);
  return st;
}

static dnn_status conv_layer(gpu *g, const dnn_net *net, size_t i,
                             const dnn_meas_kernel_params *p, dnn_error *err) {
  const dnn_layer *l = dnn_net_layer(net, i);
  dnn_status st = DNN_OK;
  bool ok[DNN_PASS_COUNT][16], dead[DNN_PASS_COUNT];
  double vl2[DNN_PASS_COUNT][16], vmx[DNN_PASS_COUNT][16];
  for (int pass = 0; pass < DNN_PASS_COUNT; pass++) {
    dead[pass] = false;
    for (int a = 0; a < 16; a++) {
      ok[pass][a] = !p->verify;
      vl2[pass][a] = vmx[pass][a] = NAN;
    }
  }
  conv c;
  dnn_error e;
  dnn_error_clear(&e);
  if (p->verify) {
    if (conv_make(g, net, i, p->verify_batch, &c, &e) != DNN_OK) {
      if ((st = kernel_failed(g, &e, err)) == DNN_OK)
        skipped(p, l, DNN_PASS_COUNT, DNN_CONV_ALGO_COUNT, 0,
                "cannot build it at the verification batch: %s", e.msg);
      return st;
    }
    st = conv_verify_layer(g, net, i, &c, p, ok, vl2, vmx, dead, err);
    conv_free(&c);
    if (st)
      return st;
  }
  for (size_t bi = 0; bi < p->n_batches && st == DNN_OK; bi++) {
    size_t batch = p->batches[bi];
    bool any = false;
    for (int pass = 0; pass < DNN_PASS_COUNT; pass++)
      any = any ||
            (!dead[pass] && has_cost(net, i, (dnn_pass)pass, batch, p->dtype));
    if (!any)
      continue;
    dnn_error_clear(&e);
    if (conv_make(g, net, i, batch, &c, &e) != DNN_OK) {
      if ((st = kernel_failed(g, &e, err)) == DNN_OK)
        skipped(p, l, DNN_PASS_COUNT, DNN_CONV_ALGO_COUNT, batch, "%s", e.msg);
      continue;
    }
    for (int pass = 0; pass < DNN_PASS_COUNT && st == DNN_OK; pass++) {
      if (dead[pass] || !has_cost(net, i, (dnn_pass)pass, batch, p->dtype))
        continue;
      int algos[16];
      size_t ws[16], n = 0, timed_n = 0;
      bool found = false;
      if ((st = conv_find(g, &c, (dnn_pass)pass, p->workspace_limit_bytes,
                          algos, ws, &n, &found, err)))
        break;
      if (!found)
        skipped(p, l, (dnn_pass)pass, DNN_CONV_ALGO_COUNT, batch,
                "cudnnFind failed; timing each algorithm whose workspace "
                "fits instead");
      for (size_t k = 0; k < n && st == DNN_OK; k++) {
        int a = algos[k];
        if (a < 0 || a >= 16 || !ok[pass][a] ||
            (double)ws[k] > p->workspace_limit_bytes)
          continue;
        if (!p->all_algos && timed_n > 0)
          break; /* Find sorts by time: the first is cuDNN's choice */
        dnn_meas_kernel_row r;
        dnn__meas_row_init(&r, backend_name(g, false), net, i, (dnn_pass)pass,
                           algo_map((dnn_pass)pass, a), batch, p->dtype);
        if ((unsigned)r.algo >= DNN_CONV_ALGO_COUNT || row_done(p, &r))
          continue;
        dnn_error_clear(&e);
        if (conv_set_ws(&c, ws[k], &e) != DNN_OK) {
          if ((st = kernel_failed(g, &e, err)) == DNN_OK)
            skipped(p, l, (dnn_pass)pass, r.algo, batch,
                    "workspace of %zu bytes: %s", ws[k], e.msg);
          continue;
        }
        c.pass = (dnn_pass)pass;
        c.algo = a;
        timed t = {g, conv_call, &c, NULL, 0, 0, 0};
        if (dnn_meas_repeat_run(&p->repeat, run_timed, &t, &r.t, &e) !=
            DNN_OK) {
          if ((st = kernel_failed(g, &e, err)) == DNN_OK)
            skipped(p, l, (dnn_pass)pass, r.algo, batch, "%s", e.msg);
          continue;
        }
        snprintf(r.backend, sizeof r.backend, "%s", backend_name(g, false));
        r.workspace_bytes = (double)ws[k];
        r.verify_rel_l2 = vl2[pass][a];
        r.verify_max_rel = vmx[pass][a];
        st = emit(p, &r, err);
        timed_n++;
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
  bool dead[DNN_PASS_COUNT];
  for (int k = 0; k < DNN_PASS_COUNT; k++) {
    vl2[k] = vmx[k] = NAN;
    dead[k] = false;
  }
  op o;
  dnn_status st = DNN_OK, s2;
  bool fused = false;
  dnn_error e;
  dnn_error_clear(&e);
  if (p->verify) {
    if ((s2 = op_make(g, net, i, p->verify_batch, &o, &e)) != DNN_OK) {
      if (s2 == DNN_EUNSUPPORTED)
        return s2;
      if ((st = kernel_failed(g, &e, err)) == DNN_OK)
        skipped(p, l, DNN_PASS_COUNT, DNN_CONV_ALGO_COUNT, 0,
                "cannot build it at the verification batch: %s", e.msg);
      return st;
    }
    for (int pass = 0; pass < DNN_PASS_COUNT && st == DNN_OK; pass++) {
      if (!op_has(&o, (dnn_pass)pass, &fused) ||
          !has_cost(net, i, (dnn_pass)pass, p->verify_batch, p->dtype))
        continue;
      dnn_error_clear(&e);
      if (op_verify(g, &o, (dnn_pass)pass,
                    dnn__meas_perturb(l->kind, (dnn_pass)pass), &vl2[pass],
                    &vmx[pass], &e) != DNN_OK) {
        if ((st = kernel_failed(g, &e, err)) == DNN_OK) {
          dead[pass] = true;
          skipped(p, l, (dnn_pass)pass, DNN_CONV_ALGO_COUNT, 0,
                  "verification run failed: %s", e.msg);
        }
      } else if (!(vl2[pass] <= p->verify_rel_l2 &&
                   vmx[pass] <= p->verify_max_rel)) {
        dead[pass] = true;
        skipped(p, l, (dnn_pass)pass, DNN_CONV_ALGO_COUNT, 0,
                "GPU %s (%s) fails verification against the C reference: "
                "relative L2 error %.3g (limit %.3g), max-norm error %.3g "
                "(limit %.3g)",
                dnn_pass_name((dnn_pass)pass), dnn_layer_kind_name(l->kind),
                vl2[pass], p->verify_rel_l2, vmx[pass], p->verify_max_rel);
      }
    }
    op_free(&o);
    if (st)
      return st;
  }
  for (size_t bi = 0; bi < p->n_batches && st == DNN_OK; bi++) {
    size_t batch = p->batches[bi];
    dnn_error_clear(&e);
    if ((s2 = op_make(g, net, i, batch, &o, &e)) != DNN_OK) {
      if (s2 == DNN_EUNSUPPORTED)
        return s2;
      if ((st = kernel_failed(g, &e, err)) == DNN_OK)
        skipped(p, l, DNN_PASS_COUNT, DNN_CONV_ALGO_COUNT, batch, "%s", e.msg);
      continue;
    }
    dnn_meas_stats fused_t;
    int fused_state = 0; /* 0 not timed, 1 timed, 2 failed */
    for (int pass = 0; pass < DNN_PASS_COUNT && st == DNN_OK; pass++) {
      if (dead[pass] || !op_has(&o, (dnn_pass)pass, &fused) ||
          !has_cost(net, i, (dnn_pass)pass, batch, p->dtype))
        continue;
      dnn_meas_kernel_row r;
      dnn__meas_row_init(&r, backend_name(g, l->kind == DNN_LAYER_FC), net, i,
                         (dnn_pass)pass, DNN_CONV_ALGO_COUNT, batch, p->dtype);
      if (row_done(p, &r))
        continue;
      dnn_error_clear(&e);
      if (op_prepare(g, &o, (dnn_pass)pass, &e) != DNN_OK) {
        if ((st = kernel_failed(g, &e, err)) == DNN_OK)
          skipped(p, l, (dnn_pass)pass, DNN_CONV_ALGO_COUNT, batch,
                  "the passes it reads failed: %s", e.msg);
        continue;
      }
      o.pass =
          fused && pass != DNN_PASS_FWD ? DNN_PASS_BWD_DATA : (dnn_pass)pass;
      timed t = {g, op_call, &o, NULL, 0, 0, 0};
      if (fused && pass != DNN_PASS_FWD) {
        if (fused_state == 0)
          fused_state = dnn_meas_repeat_run(&p->repeat, run_timed, &t, &fused_t,
                                            &e) == DNN_OK
                            ? 1
                            : 2;
        if (fused_state == 2) {
          if ((st = kernel_failed(g, &e, err)) == DNN_OK)
            skipped(p, l, (dnn_pass)pass, DNN_CONV_ALGO_COUNT, batch, "%s",
                    e.msg);
          continue;
        }
        r.t = fused_t;
        stats_scale(
            &r.t, dnn__meas_bwd_share(net, i, batch, p->dtype, (dnn_pass)pass));
      } else if (dnn_meas_repeat_run(&p->repeat, run_timed, &t, &r.t, &e) !=
                 DNN_OK) {
        if ((st = kernel_failed(g, &e, err)) == DNN_OK)
          skipped(p, l, (dnn_pass)pass, DNN_CONV_ALGO_COUNT, batch, "%s",
                  e.msg);
        continue;
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

/* An earlier layer measured in full by this sweep with the same kind,
 * signature and passes as layer i (at every batch), or SIZE_MAX. */
static size_t twin(const dnn_net *net, size_t i, char (*sig)[DNN_MEAS_SIG_MAX],
                   const bool *full, const dnn_meas_kernel_params *p) {
  const dnn_layer *l = dnn_net_layer(net, i);
  for (size_t j = 0; j < i; j++) {
    if (!full[j] || dnn_net_layer(net, j)->kind != l->kind ||
        strcmp(sig[j], sig[i]) != 0)
      continue;
    bool same = true;
    for (size_t bi = 0; bi <= p->n_batches && same; bi++) {
      size_t b = bi < p->n_batches ? p->batches[bi] : p->verify_batch;
      for (int pass = 0; pass < DNN_PASS_COUNT && same; pass++)
        same = has_cost(net, i, (dnn_pass)pass, b, p->dtype) ==
               has_cost(net, j, (dnn_pass)pass, b, p->dtype);
    }
    if (same)
      return j;
  }
  return SIZE_MAX;
}

/* Emits the rows of layer j (rows lo..hi of s->seen) again for layer i. */
static dnn_status replay(const dnn_net *net, size_t i, const sweep *s,
                         size_t lo, size_t hi, const dnn_meas_kernel_params *p,
                         dnn_error *err) {
  for (size_t k = lo; k < hi; k++) {
    dnn_meas_kernel_row src = *dnn_meas_kernel_table_get(s->seen, k);
    dnn_meas_kernel_row r;
    dnn__meas_row_init(&r, src.backend, net, i, src.pass, src.algo, src.batch,
                       src.dtype);
    if (row_done(p, &r))
      continue;
    r.t = src.t;
    r.workspace_bytes = src.workspace_bytes;
    r.verify_rel_l2 = src.verify_rel_l2;
    r.verify_max_rel = src.verify_max_rel;
    dnn_status st = emit(p, &r, err);
    if (st)
      return st;
  }
  return DNN_OK;
}

dnn_status dnn_meas_gpu_kernels(const dnn_net *net,
                                const dnn_meas_kernel_params *p,
                                dnn_error *err) {
  dnn_status st = dnn__meas_kernel_params_check(p, err);
  if (st)
    return st;
  size_t nl = dnn_net_layer_count(net);
  sweep s = {p, NULL, 0};
  dnn_meas_kernel_params q = *p;
  q.on_row = sweep_row;
  q.row_ud = &s;
  char(*sig)[DNN_MEAS_SIG_MAX] = dnn_calloc(nl ? nl : 1, sizeof *sig);
  bool *full = dnn_calloc(nl ? nl : 1, sizeof *full);
  size_t *lo = dnn_calloc(nl ? nl : 1, sizeof *lo);
  size_t *hi = dnn_calloc(nl ? nl : 1, sizeof *hi);
  gpu g;
  memset(&g, 0, sizeof g);
  if (!sig || !full || !lo || !hi) {
    st = DNN_FAIL(err, DNN_ENOMEM, "out of memory for %zu layers", nl);
    goto done;
  }
  if ((st = dnn_meas_kernel_table_alloc(&s.seen, err)) ||
      (st = gpu_open(&g, p->dtype, err)))
    goto done;
  for (size_t i = 0; i < nl && st == DNN_OK; i++) {
    const dnn_layer *l = dnn_net_layer(net, i);
    dnn_layer_signature(net, i, sig[i], sizeof sig[i]);
    size_t j = twin(net, i, sig, full, p);
    if (p->progress) {
      char label[96];
      if (j != SIZE_MAX)
        snprintf(label, sizeof label, "%s (as %s)", l->name,
                 dnn_net_layer(net, j)->name);
      else
        snprintf(label, sizeof label, "%s (%s)", l->name,
                 dnn_layer_kind_name(l->kind));
      if (p->progress(p->progress_ud, i, nl, label)) {
        st = DNN_FAIL(err, DNN_EINTERRUPTED, "measurement interrupted");
        break;
      }
    }
    if (j != SIZE_MAX) {
      st = replay(net, i, &s, lo[j], hi[j], &q, err);
      continue;
    }
    size_t resumed = s.resumed;
    lo[i] = dnn_meas_kernel_table_count(s.seen);
    if (l->kind == DNN_LAYER_CONV2D)
      st = conv_layer(&g, net, i, &q, err);
    else
      st = op_layer(&g, net, i, &q, err);
    if (st == DNN_EUNSUPPORTED)
      st = DNN_OK; /* left to the roofline */
    hi[i] = dnn_meas_kernel_table_count(s.seen);
    full[i] = st == DNN_OK && s.resumed == resumed;
  }
  if (st == DNN_OK && p->progress)
    p->progress(p->progress_ud, nl, nl, "done");
done:
  gpu_close(&g);
  dnn_meas_kernel_table_free(s.seen);
  dnn_free(sig);
  dnn_free(full);
  dnn_free(lo);
  dnn_free(hi);
  return st;
}

/* ------------------------------------------------------------------------ */
/* Micro-batched schedules (µ-cuDNN)                                        */
/* ------------------------------------------------------------------------ */

struct dnn_meas_gpu {
  gpu g;
  char name[256];
};

dnn_status dnn_meas_gpu_alloc(dnn_dtype dtype, dnn_meas_gpu **out,
                              dnn_error *err) {
  *out = NULL;
  dnn_meas_gpu *m = dnn_calloc(1, sizeof *m);
  if (m == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory");
  dnn_status st = gpu_open(&m->g, dtype, err);
  if (st) {
    gpu_close(&m->g);
    dnn_free(m);
    return st;
  }
  struct cudaDeviceProp prop;
  int drv = 0, rt = 0;
  cudaDriverGetVersion(&drv);
  cudaRuntimeGetVersion(&rt);
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess)
    snprintf(prop.name, sizeof prop.name, "GPU 0");
  snprintf(m->name, sizeof m->name,
           "%s (%d SMs, sm_%d%d), CUDA driver %d.%d runtime %d.%d, cuDNN "
           "%zu, %s",
           prop.name, prop.multiProcessorCount, prop.major, prop.minor,
           drv / 1000, (drv % 1000) / 10, rt / 1000, (rt % 1000) / 10,
           cudnnGetVersion(),
           m->g.cupti ? "CUPTI kernel times" : "CUDA-event times");
  *out = m;
  return DNN_OK;
}

void dnn_meas_gpu_free(dnn_meas_gpu *g) {
  if (g == NULL)
    return;
  gpu_close(&g->g);
  dnn_free(g);
}

const char *dnn_meas_gpu_name(const dnn_meas_gpu *g) {
  return g->name;
}

/* One group of a schedule as it runs: cuDNN's algorithm and descriptors
 * of its micro-batch size. */
typedef struct mb_group {
  size_t batch, count;
  int algo;
  cudnnTensorDescriptor_t x, y;
} mb_group;

/* A schedule ready to run on a conv. */
typedef struct mb_run {
  conv *c;
  dnn_pass pass;
  mb_group *grp;
  size_t n;
  size_t ws; /* the largest group's workspace */
} mb_run;

static void mb_run_free(mb_run *m) {
  for (size_t i = 0; i < m->n; i++) {
    if (m->grp[i].x)
      cudnnDestroyTensorDescriptor(m->grp[i].x);
    if (m->grp[i].y)
      cudnnDestroyTensorDescriptor(m->grp[i].y);
  }
  dnn_free(m->grp);
  memset(m, 0, sizeof *m);
}

/*
 * Prepares `parts` to run on c (force >= 0: every part with cuDNN
 * algorithm `force` instead of its own) and grows c's workspace to the
 * largest part's. DNN_OK with `why` set when it cannot run (cuDNN has no
 * such algorithm, refuses it at a micro-batch size, the workspace cannot
 * be allocated); errors only for host memory and a dead device.
 */
static dnn_status mb_prepare(gpu *g, conv *c, dnn_pass pass,
                             const dnn_meas_mb_part *parts, size_t n_parts,
                             int force, mb_run *m, char *why, size_t nwhy,
                             dnn_error *err) {
  memset(m, 0, sizeof *m);
  why[0] = '\0';
  m->c = c;
  m->pass = pass;
  m->grp = dnn_calloc(n_parts, sizeof *m->grp);
  if (m->grp == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory for a schedule");
  for (size_t i = 0; i < n_parts; i++) {
    const dnn_meas_mb_part *pt = &parts[i];
    mb_group *q = &m->grp[m->n++];
    q->batch = pt->batch;
    q->count = pt->count;
    q->algo = force >= 0 ? force : algo_unmap(pass, pt->algo);
    if (q->algo < 0) {
      snprintf(why, nwhy, "cuDNN has no %s algorithm for %s",
               (unsigned)pt->algo < DNN_CONV_ALGO_COUNT
                   ? dnn_conv_algo_name(pt->algo)
                   : "such",
               dnn_pass_name(pass));
      return DNN_OK;
    }
    const char *name = dnn_conv_algo_name(algo_map(pass, q->algo));
    cudnnStatus_t s = conv_desc(g, c, true, q->batch, &q->x);
    if (s == CUDNN_STATUS_SUCCESS)
      s = conv_desc(g, c, false, q->batch, &q->y);
    if (s != CUDNN_STATUS_SUCCESS) {
      snprintf(why, nwhy, "tensors of %zu samples: %s", q->batch,
               cudnnGetErrorString(s));
      return DNN_OK;
    }
    size_t ws = 0;
    if (!conv_ws_desc(g, c, pass, q->algo, q->x, q->y, &ws)) {
      snprintf(why, nwhy, "cuDNN refuses %s for %s at %zu samples", name,
               dnn_pass_name(pass), q->batch);
      return DNN_OK;
    }
    m->ws = ws > m->ws ? ws : m->ws;
  }
  dnn_error e;
  dnn_error_clear(&e);
  if (conv_set_ws(c, m->ws, &e) != DNN_OK) {
    dnn_status st = device_alive(g, err);
    if (st)
      return st;
    snprintf(why, nwhy, "workspace of %zu bytes: %s", m->ws, e.msg);
  }
  return DNN_OK;
}

/* Runs a prepared schedule once: micro-batches in sequence at their
 * offsets, backward-weights accumulating after the first. */
static dnn_status mb_call(gpu *g, void *ud, dnn_error *err) {
  const mb_run *m = ud;
  size_t off = 0;
  for (size_t i = 0; i < m->n; i++) {
    const mb_group *q = &m->grp[i];
    for (size_t k = 0; k < q->count; k++) {
      float beta = m->pass == DNN_PASS_BWD_WEIGHTS && off > 0 ? 1.0f : 0.0f;
      cudnnStatus_t s =
          conv_exec(g, m->c, m->pass, q->algo, q->x, q->y, off, beta);
      if (s != CUDNN_STATUS_SUCCESS)
        return DNN_FAIL(err, DNN_ETOOLFAIL,
                        "%s of %zu samples at offset %zu with %s: %s",
                        dnn_pass_name(m->pass), q->batch, off,
                        dnn_conv_algo_name(algo_map(m->pass, q->algo)),
                        cudnnGetErrorString(s));
      off += q->batch;
    }
  }
  return DNN_OK;
}

/* Times a prepared schedule: *t from the sampler (CUPTI or events),
 * *wall the median CUDA-event time per run. `why` set when it fails. */
static dnn_status mb_time(gpu *g, mb_run *m, const dnn_meas_repeat_params *rp,
                          dnn_meas_stats *t, double *wall, char *why,
                          size_t nwhy, dnn_error *err) {
  memset(t, 0, sizeof *t);
  *wall = NAN;
  why[0] = '\0';
  size_t cap = rp->max_samples + 1;
  double *w = dnn_calloc(cap, sizeof *w);
  if (w == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory for %zu samples", cap);
  timed tm = {g, mb_call, m, w, 0, cap, 0};
  dnn_error e;
  dnn_error_clear(&e);
  dnn_status st = DNN_OK;
  if (dnn_meas_repeat_run(rp, run_timed, &tm, t, &e) != DNN_OK) {
    if ((st = kernel_failed(g, &e, err)) == DNN_OK)
      snprintf(why, nwhy, "%s", e.msg);
  } else if (tm.n_wall > 0) {
    dnn_meas_stats s;
    if (dnn_meas_stats_compute(w, tm.n_wall, 0.95, &s, &e) == DNN_OK)
      *wall = s.median_s;
  }
  dnn_free(w);
  return st;
}

/* Runs a prepared schedule once with its output poisoned first, and
 * waits. `why` set when it fails. */
static dnn_status mb_once(gpu *g, mb_run *m, char *why, size_t nwhy,
                          dnn_error *err) {
  why[0] = '\0';
  dnn_error e;
  dnn_error_clear(&e);
  dnn_status st = conv_poison(g, m->c, m->pass, &e);
  if (st == DNN_OK)
    st = mb_call(g, m, &e);
  if (st == DNN_OK) {
    cudaError_t ce = cudaStreamSynchronize(g->stream);
    if (ce != cudaSuccess)
      st = DNN_FAIL(&e, DNN_ETOOLFAIL, "%s", cudaGetErrorString(ce));
  }
  if (st == DNN_OK)
    return DNN_OK;
  if ((st = kernel_failed(g, &e, err)) == DNN_OK)
    snprintf(why, nwhy, "%s", e.msg);
  return st;
}

/*
 * ||a - b|| / ||b|| over n elements of the session dtype on the device
 * (scratch holds n elements); non-finite results become infinity. fp32
 * through cuBLAS on the device, reduced precisions on the host.
 */
static dnn_status dev_rel_l2(gpu *g, const void *a, const void *b,
                             void *scratch, size_t n, double *rel,
                             dnn_error *err) {
  dnn_status st = DNN_OK;
  double d2 = 0, r2 = 0;
  *rel = INFINITY;
  if (g->esize == 4) {
    const size_t chunk = (size_t)1 << 30;
    CUDA_TRY(cudaMemcpyAsync(scratch, a, n * 4, cudaMemcpyDeviceToDevice,
                             g->stream));
    for (size_t off = 0; off < n; off += chunk) {
      int k = (int)(n - off < chunk ? n - off : chunk);
      const float minus = -1;
      float d = 0, r = 0;
      CUBLAS_TRY(cublasSaxpy(g->blas, k, &minus, (const float *)b + off, 1,
                             (float *)scratch + off, 1));
      CUBLAS_TRY(cublasSnrm2(g->blas, k, (const float *)scratch + off, 1, &d));
      CUBLAS_TRY(cublasSnrm2(g->blas, k, (const float *)b + off, 1, &r));
      d2 += (double)d * (double)d;
      r2 += (double)r * (double)r;
    }
  } else {
    float *ha = dnn_malloc((n ? n : 1) * sizeof *ha);
    float *hb = dnn_malloc((n ? n : 1) * sizeof *hb);
    if (!ha || !hb) {
      dnn_free(ha);
      dnn_free(hb);
      return DNN_FAIL(err, DNN_ENOMEM, "out of memory comparing outputs");
    }
    if ((st = download(g, ha, a, n, err)) == DNN_OK &&
        (st = download(g, hb, b, n, err)) == DNN_OK)
      for (size_t i = 0; i < n; i++) {
        double d = (double)ha[i] - (double)hb[i];
        d2 += d * d;
        r2 += (double)hb[i] * (double)hb[i];
      }
    dnn_free(ha);
    dnn_free(hb);
    if (st)
      return st;
  }
  *rel = r2 > 0 ? sqrt(d2 / r2) : sqrt(d2);
  if (!isfinite(*rel))
    *rel = INFINITY;
fail:
  return st;
}

/* Appends to a result's note. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
note(dnn_meas_mb_result *r, const char *fmt, ...) {
  size_t len = strlen(r->note);
  if (len + 3 >= sizeof r->note)
    return;
  if (len > 0) {
    memcpy(r->note + len, "; ", 3);
    len += 2;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->note + len, sizeof r->note - len, fmt, ap);
  va_end(ap);
}

static bool same_parts(const dnn_meas_mb_schedule *a,
                       const dnn_meas_mb_schedule *b) {
  if (a->n_parts != b->n_parts)
    return false;
  for (size_t i = 0; i < a->n_parts; i++)
    if (a->parts[i].batch != b->parts[i].batch ||
        a->parts[i].count != b->parts[i].count ||
        a->parts[i].algo != b->parts[i].algo)
      return false;
  return true;
}

/* A cuDNN algorithm timed undivided at the full batch. */
typedef struct cand {
  int state; /* 0 not tried, 1 timed, 2 failed */
  dnn_meas_stats t;
  double wall_s;
  size_t ws;
} cand;

/* Times cuDNN algorithm a undivided (once; cached in k). */
static dnn_status time_undivided(gpu *g, conv *c, dnn_pass pass, size_t batch,
                                 int a, const dnn_meas_mb_params *p, cand *k,
                                 char *why, size_t nwhy, dnn_error *err) {
  why[0] = '\0';
  if (k->state != 0)
    return DNN_OK;
  k->state = 2;
  dnn_meas_mb_part part = {batch, 1, algo_map(pass, a)};
  mb_run m;
  dnn_status st = mb_prepare(g, c, pass, &part, 1, a, &m, why, nwhy, err);
  if (st == DNN_OK && why[0] == '\0') {
    k->ws = m.ws;
    st = mb_time(g, &m, &p->repeat, &k->t, &k->wall_s, why, nwhy, err);
    if (st == DNN_OK && why[0] == '\0' && k->t.median_s > 0)
      k->state = 1;
  }
  mb_run_free(&m);
  return st;
}

/* Device buffers of n elements for a reference output and a scratch
 * copy; `why` set (both NULL) when they cannot be allocated. */
static dnn_status verify_buffers(gpu *g, size_t n, void **ref, void **scratch,
                                 char *why, size_t nwhy, dnn_error *err) {
  why[0] = '\0';
  *ref = *scratch = NULL;
  cudaError_t ce = cudaMalloc(ref, (n ? n : 1) * g->esize);
  if (ce == cudaSuccess)
    ce = cudaMalloc(scratch, (n ? n : 1) * g->esize);
  if (ce == cudaSuccess)
    return DNN_OK;
  if (*ref)
    cudaFree(*ref);
  *ref = *scratch = NULL;
  dnn_status st = device_alive(g, err);
  if (st == DNN_OK)
    snprintf(why, nwhy, "no memory to compare outputs (%s)",
             cudaGetErrorString(ce));
  return st;
}

/* Runs cuDNN algorithm `a` undivided once, its output poisoned first, and
 * copies the output to dst (unless NULL). `why` set when it fails. */
static dnn_status run_whole(gpu *g, conv *c, dnn_pass pass, size_t batch, int a,
                            void *dst, char *why, size_t nwhy, dnn_error *err) {
  dnn_meas_mb_part whole = {batch, 1, algo_map(pass, a)};
  mb_run m;
  dnn_status st = mb_prepare(g, c, pass, &whole, 1, a, &m, why, nwhy, err);
  if (st == DNN_OK && why[0] == '\0')
    st = mb_once(g, &m, why, nwhy, err);
  mb_run_free(&m);
  if (st == DNN_OK && why[0] == '\0' && dst) {
    size_t k = conv_out(pass);
    cudaError_t ce = cudaMemcpy(dst, c->b.p[k], c->b.n[k] * g->esize,
                                cudaMemcpyDeviceToDevice);
    if (ce != cudaSuccess && (st = device_alive(g, err)) == DNN_OK)
      snprintf(why, nwhy, "copying its output: %s", cudaGetErrorString(ce));
  }
  return st;
}

/* Relative L2 distance of algorithm a's undivided output from `ref`. */
static dnn_status output_distance(gpu *g, conv *c, dnn_pass pass, size_t batch,
                                  int a, const void *ref, void *scratch,
                                  double *rel, char *why, size_t nwhy,
                                  dnn_error *err) {
  *rel = NAN;
  dnn_status st = run_whole(g, c, pass, batch, a, NULL, why, nwhy, err);
  if (st || why[0])
    return st;
  size_t k = conv_out(pass);
  dnn_error e;
  dnn_error_clear(&e);
  if (dev_rel_l2(g, c->b.p[k], ref, scratch, c->b.n[k], rel, &e) != DNN_OK &&
      (st = kernel_failed(g, &e, err)) == DNN_OK)
    snprintf(why, nwhy, "comparing outputs: %s", e.msg);
  return st;
}

static dnn_status mb_check_args(const dnn_net *net, size_t layer, dnn_pass pass,
                                size_t batch,
                                const dnn_meas_mb_schedule *scheds, size_t n,
                                const dnn_meas_mb_params *p, dnn_error *err) {
  if (layer >= dnn_net_layer_count(net) ||
      dnn_net_layer(net, layer)->kind != DNN_LAYER_CONV2D)
    return DNN_FAIL(err, DNN_EINVAL,
                    "micro-batched schedules need a convolution layer");
  if ((unsigned)pass >= DNN_PASS_COUNT || batch == 0 || n == 0)
    return DNN_FAIL(err, DNN_EINVAL,
                    "a micro-batched schedule needs a pass, a batch and at "
                    "least one schedule");
  if (p->base_candidates < 1 || !(p->verify_rel_l2 > 0) ||
      !(p->algo_rel_l2 > 0))
    return DNN_FAIL(err, DNN_EINVAL,
                    "base_candidates must be >= 1, verify_rel_l2 and "
                    "algo_rel_l2 > 0");
  for (size_t k = 0; k < n; k++) {
    const dnn_meas_mb_schedule *s = &scheds[k];
    size_t sum = 0;
    for (size_t i = 0; i < s->n_parts; i++) {
      if (s->parts[i].batch == 0 || s->parts[i].count == 0 ||
          (unsigned)s->parts[i].algo >= DNN_CONV_ALGO_COUNT)
        return DNN_FAIL(err, DNN_EINVAL,
                        "schedule %zu: part %zu needs a batch, a count and "
                        "an algorithm",
                        k, i);
      sum += s->parts[i].batch * s->parts[i].count;
    }
    if (s->n_parts == 0 || sum != batch)
      return DNN_FAIL(err, DNN_EINVAL,
                      "schedule %zu divides %zu samples, not the batch %zu", k,
                      sum, batch);
    if (!(s->limit_bytes >= 0))
      return DNN_FAIL(err, DNN_EINVAL,
                      "schedule %zu: workspace limit %g must be >= 0", k,
                      s->limit_bytes);
  }
  return dnn_meas_repeat_params_check(&p->repeat, err);
}

dnn_status dnn_meas_gpu_microbatch(dnn_meas_gpu *mg, const dnn_net *net,
                                   size_t layer, dnn_pass pass, size_t batch,
                                   const dnn_meas_mb_schedule *scheds, size_t n,
                                   const dnn_meas_mb_params *p,
                                   dnn_meas_mb_result *out, dnn_error *err) {
  gpu *g = &mg->g;
  dnn_status st = mb_check_args(net, layer, pass, batch, scheds, n, p, err);
  if (st)
    return st;
  if (!has_cost(net, layer, pass, batch, g->dtype))
    return DNN_FAIL(err, DNN_EINVAL, "layer '%s' has no %s pass",
                    dnn_net_layer(net, layer)->name, dnn_pass_name(pass));
  double max_limit = 0;
  for (size_t k = 0; k < n; k++) {
    memset(&out[k], 0, sizeof out[k]);
    out[k].base_algo = DNN_CONV_ALGO_COUNT;
    out[k].wall_s = out[k].base_wall_s = NAN;
    out[k].rel_l2 = out[k].split_rel_l2 = NAN;
    max_limit =
        scheds[k].limit_bytes > max_limit ? scheds[k].limit_bytes : max_limit;
  }
  char why[DNN_ERROR_MSG_MAX];
  void *refbuf = NULL, *scratch = NULL;
  conv c;
  memset(&c, 0, sizeof c);
  dnn_error e;
  dnn_error_clear(&e);
  if (conv_make(g, net, layer, batch, &c, &e) != DNN_OK) {
    if ((st = kernel_failed(g, &e, err)) == DNN_OK)
      for (size_t k = 0; k < n; k++)
        note(&out[k], "cannot build the layer at batch %zu: %s", batch, e.msg);
    return st;
  }

  /* Baselines: cudnnFind's ranking within the largest limit. A candidate
   * must also compute what implicit GEMM (cuDNN's algorithm 0) computes:
   * a broken algorithm can be fast. */
  int algos[16];
  size_t fws[16], nf = 0;
  bool found = false;
  cand cands[16];
  memset(cands, 0, sizeof cands);
  size_t ko = conv_out(pass), nout = c.b.n[ko];
  int ref_algo = -1; /* the algorithm whose undivided output refbuf holds */
  if ((st = conv_find(g, &c, pass, max_limit, algos, fws, &nf, &found, err)) ||
      (st = verify_buffers(g, nout, &refbuf, &scratch, why, sizeof why, err)))
    goto done;
  if (why[0]) {
    for (size_t k = 0; k < n; k++)
      note(&out[k], "outputs not compared: %s", why);
  } else {
    if ((st = run_whole(g, &c, pass, batch, 0, refbuf, why, sizeof why, err)))
      goto done;
    if (why[0])
      for (size_t k = 0; k < n; k++)
        note(&out[k], "implicit GEMM reference: %s", why);
    else
      ref_algo = 0;
  }
  for (size_t k = 0; k < n && st == DNN_OK; k++) {
    const dnn_meas_mb_schedule *s = &scheds[k];
    if (!found)
      note(&out[k], "cudnnFind failed: baseline candidates in cuDNN's order");
    int list[17];
    size_t nl = 0;
    for (size_t i = 0; i < nf && nl < p->base_candidates; i++)
      if ((double)fws[i] <= s->limit_bytes)
        list[nl++] = algos[i];
    int h = (unsigned)s->hint < DNN_CONV_ALGO_COUNT ? algo_unmap(pass, s->hint)
                                                    : -1;
    size_t hws = 0;
    bool have = false;
    for (size_t i = 0; i < nl; i++)
      have = have || list[i] == h;
    if (h >= 0 && !have && conv_ws(g, &c, pass, h, &hws) &&
        (double)hws <= s->limit_bytes)
      list[nl++] = h;
    int best = -1;
    for (size_t i = 0; i < nl && st == DNN_OK; i++) {
      int a = list[i];
      if (a < 0 || a >= 16)
        continue;
      cand *ca = &cands[a];
      const char *name = dnn_conv_algo_name(algo_map(pass, a));
      bool fresh = ca->state == 0;
      st = time_undivided(g, &c, pass, batch, a, p, ca, why, sizeof why, err);
      if (st == DNN_OK && why[0])
        note(&out[k], "baseline %s: %s", name, why);
      if (st == DNN_OK && fresh && ca->state == 1 && a != 0 && ref_algo == 0) {
        double rel = NAN;
        st = output_distance(g, &c, pass, batch, a, refbuf, scratch, &rel, why,
                             sizeof why, err);
        if (st == DNN_OK && why[0]) {
          ca->state = 3;
          note(&out[k], "baseline %s: %s", name, why);
        } else if (st == DNN_OK && !(rel <= p->algo_rel_l2)) {
          ca->state = 3;
          note(&out[k],
               "baseline %s: its output differs from implicit GEMM's "
               "(relative L2 %.3g > %.3g)",
               name, rel, p->algo_rel_l2);
        }
      }
      if (ca->state == 1 &&
          (best < 0 || ca->t.median_s < cands[best].t.median_s))
        best = a;
    }
    if (best >= 0) {
      out[k].base_ran = true;
      out[k].base_algo = algo_map(pass, best);
      out[k].base_t = cands[best].t;
      out[k].base_wall_s = cands[best].wall_s;
      out[k].base_workspace_bytes = (double)cands[best].ws;
    } else if (st == DNN_OK) {
      note(&out[k], "no undivided cuDNN algorithm within the limit ran");
    }
  }

  /* Schedules: identical ones, and undivided ones already timed as a
   * baseline candidate, are measured once. */
  for (size_t k = 0; k < n && st == DNN_OK; k++) {
    const dnn_meas_mb_schedule *s = &scheds[k];
    dnn_meas_mb_result *r = &out[k];
    size_t j = 0;
    while (j < k && !same_parts(&scheds[j], s))
      j++;
    int a0 = s->n_parts == 1 && s->parts[0].count == 1
                 ? algo_unmap(pass, s->parts[0].algo)
                 : -1;
    if (j < k) {
      r->ran = out[j].ran;
      r->t = out[j].t;
      r->wall_s = out[j].wall_s;
      r->workspace_bytes = out[j].workspace_bytes;
      if (!r->ran)
        note(r, "schedule: as for the previous limit");
    } else if (a0 >= 0 && a0 < 16 && cands[a0].state == 1) {
      r->ran = true;
      r->t = cands[a0].t;
      r->wall_s = cands[a0].wall_s;
      r->workspace_bytes = (double)cands[a0].ws;
    } else {
      mb_run m;
      st = mb_prepare(g, &c, pass, s->parts, s->n_parts, -1, &m, why,
                      sizeof why, err);
      r->workspace_bytes = (double)m.ws;
      if (st == DNN_OK && why[0] == '\0')
        st =
            mb_time(g, &m, &p->repeat, &r->t, &r->wall_s, why, sizeof why, err);
      if (st == DNN_OK && why[0])
        note(r, "schedule: %s", why);
      r->ran = st == DNN_OK && why[0] == '\0' && r->t.median_s > 0;
      mb_run_free(&m);
    }
    r->over_limit = r->workspace_bytes > s->limit_bytes;
  }

  /* Verification: the schedule's output against the undivided output of
   * the baseline's algorithm (implicit GEMM without a baseline), and the
   * same division run with that algorithm (the split check). */
  for (size_t k = 0; k < n && st == DNN_OK; k++) {
    const dnn_meas_mb_schedule *s = &scheds[k];
    dnn_meas_mb_result *r = &out[k];
    if (!r->ran || refbuf == NULL)
      continue;
    int ra = r->base_ran ? algo_unmap(pass, r->base_algo) : 0;
    size_t j = 0;
    while (j < k &&
           !(out[j].ran && same_parts(&scheds[j], s) &&
             (out[j].base_ran ? out[j].base_algo : DNN_CONV_ALGO_COUNT) ==
                 (r->base_ran ? r->base_algo : DNN_CONV_ALGO_COUNT)))
      j++;
    if (j < k) {
      r->rel_l2 = out[j].rel_l2;
      r->split_rel_l2 = out[j].split_rel_l2;
      r->verified = r->rel_l2 <= p->verify_rel_l2;
      continue;
    }
    if (ra != ref_algo) {
      ref_algo = -1;
      if ((st =
               run_whole(g, &c, pass, batch, ra, refbuf, why, sizeof why, err)))
        break;
      if (why[0]) {
        note(r, "reference run: %s", why);
        continue;
      }
      ref_algo = ra;
    }
    for (int pass2 = 0; pass2 < 2 && st == DNN_OK; pass2++) {
      mb_run m;
      double rel = NAN;
      st = mb_prepare(g, &c, pass, s->parts, s->n_parts, pass2 ? ra : -1, &m,
                      why, sizeof why, err);
      if (st == DNN_OK && why[0] == '\0')
        st = mb_once(g, &m, why, sizeof why, err);
      mb_run_free(&m);
      if (st == DNN_OK && why[0] == '\0') {
        dnn_error_clear(&e);
        if (dev_rel_l2(g, c.b.p[ko], refbuf, scratch, nout, &rel, &e) !=
            DNN_OK) {
          if ((st = kernel_failed(g, &e, err)))
            break;
          snprintf(why, sizeof why, "%s", e.msg);
        }
      }
      if (st == DNN_OK && why[0])
        note(r, "%s check: %s", pass2 ? "split" : "output", why);
      if (pass2)
        r->split_rel_l2 = rel;
      else
        r->rel_l2 = rel;
    }
    r->verified = r->rel_l2 <= p->verify_rel_l2;
  }
  for (size_t k = 0; k < n; k++)
    out[k].cupti = g->cupti;
done:
  if (refbuf)
    cudaFree(refbuf);
  if (scratch)
    cudaFree(scratch);
  conv_free(&c);
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
  timed t = {g, fn, ud, NULL, 0, 0, 0};
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
  /* Non-zero operands: GEMMs on zeros run faster than on data (fewer
   * bit flips, lower power). The byte 0x3c is 0.0115 in fp32 and bf16 and
   * 1.06 in fp16: products summed over n = 8192 stay finite. */
  CUDA_TRY(cudaMemset(a, 0x3c, n * n * 4));
  CUDA_TRY(cudaMemset(b, 0x3c, n * n * 4));
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
