/*
 * oneDNN CPU back end (include/dnnsim/measure.h): peak rates of this CPU
 * and per-layer kernel times of a network, each kernel verified against
 * the C reference of ref.c before it is timed.
 *
 * Method: every layer becomes oneDNN primitives the way a framework would
 * run it in training (forward_training, then backward-data and
 * backward-weights with the forward as hint, memory formats chosen by
 * oneDNN through format_tag_any, scratchpad owned by us so its size is the
 * kernel's workspace). A sample times `runs` back-to-back executions with
 * the wall clock (Deep500's WallclockTime, REFERENCE.md §5.2), so caches
 * are warm as they are between iterations of real training. Peak rates
 * are measured, not assumed: fp32 is the best of a large sgemm, matmul
 * and 3x3 convolution, bf16 (where the CPU has it) a large matmul,
 * bandwidth a large out-of-place eltwise (STREAM-copy style), overhead a
 * 16-element eltwise.
 *
 * Verification (Deep500 L0, REFERENCE.md §5.3): the layer's own shape at
 * verify_batch, plain data reordered into oneDNN's layouts, outputs
 * reordered back and compared with the double-precision reference
 * (relative L2 and max-norm). LSTM backward is checked by directional
 * derivatives of the reference forward (central differences).
 *
 * Invariant: a kernel that fails verification is never timed and the
 * sweep stops with DNN_EVERIFY; every oneDNN object created here is
 * destroyed here, on every path.
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if !DNNSIM_HAVE_DNNL

#define NO_DNNL                                                                \
  "this dnnsim was built without oneDNN (install libdnnl-dev and rebuild "     \
  "with -DDNNSIM_WITH_DNNL=ON)"

dnn_status dnn_meas_cpu_peaks(bool quick, size_t threads, dnn_meas_peaks *out,
                              dnn_error *err) {
  (void)quick;
  (void)threads;
  memset(out, 0, sizeof *out);
  return DNN_FAIL(err, DNN_EUNSUPPORTED, "%s", NO_DNNL);
}

dnn_status dnn_meas_cpu_kernels(const dnn_net *net,
                                const dnn_meas_kernel_params *p,
                                dnn_error *err) {
  (void)net;
  (void)p;
  return DNN_FAIL(err, DNN_EUNSUPPORTED, "%s", NO_DNNL);
}

#else

#include "dnnl_util.h"

/* ------------------------------------------------------------------------ */
/* Engine, errors, memories                                                 */
/* ------------------------------------------------------------------------ */

typedef struct ctx {
  dnnl_engine_t eng;
  dnnl_stream_t stream;
  dnnl_primitive_attr_t attr; /* user scratchpad */
  dnnl_data_type_t dt;        /* f32 or bf16 */
} ctx;

static dnn_status ctx_open(ctx *c, dnn_dtype dtype, dnn_error *err) {
  memset(c, 0, sizeof *c);
  if (dtype == DNN_DTYPE_FP32)
    c->dt = dnnl_f32;
  else if (dtype == DNN_DTYPE_BF16)
    c->dt = dnnl_bf16;
  else
    return DNN_FAIL(err, DNN_EUNSUPPORTED,
                    "the oneDNN back end measures fp32 and bf16, not %s",
                    dnn_dtype_name(dtype));
  return dnn__meas_dnnl_open(&c->eng, &c->stream, &c->attr, err);
}

static void ctx_close(ctx *c) {
  if (c->attr)
    dnnl_primitive_attr_destroy(c->attr);
  if (c->stream)
    dnnl_stream_destroy(c->stream);
  if (c->eng)
    dnnl_engine_destroy(c->eng);
  memset(c, 0, sizeof *c);
}

static size_t md_elems(const dnnl_memory_desc_t *md) {
  size_t n = 1;
  for (int i = 0; i < md->ndims; i++)
    n *= (size_t)md->dims[i];
  return md->ndims > 0 ? n : 0;
}

/* Round-to-nearest-even float -> bfloat16. */
static uint16_t to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

/* Fills a memory with data in [-1, 1) whatever its layout. */
static void mem_fill(dnnl_memory_t m, unsigned long long seed) {
  const dnnl_memory_desc_t *md = NULL;
  void *ptr = NULL;
  if (dnnl_memory_get_memory_desc(m, &md) != dnnl_success ||
      dnnl_memory_map_data(m, &ptr) != dnnl_success || ptr == NULL)
    return;
  size_t bytes = dnnl_memory_desc_get_size(md);
  if (md->data_type == dnnl_f32) {
    dnn__meas_fill(ptr, bytes / 4, seed);
  } else if (md->data_type == dnnl_bf16) {
    uint16_t *p = ptr;
    float f[256];
    for (size_t i = 0; i < bytes / 2; i += 256) {
      size_t k = bytes / 2 - i < 256 ? bytes / 2 - i : 256;
      dnn__meas_fill(f, k, seed + i);
      for (size_t j = 0; j < k; j++)
        p[i + j] = to_bf16(f[j]);
    }
  } else {
    memset(ptr, 0, bytes);
  }
  dnnl_memory_unmap_data(m, ptr);
}

/* Copies `src` into `dst` (any layouts and types) through a reorder. */
static dnn_status reorder(ctx *c, dnnl_memory_t src, dnnl_memory_t dst,
                          dnn_error *err) {
  dnn_status st = DNN_OK;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_primitive_t r = NULL;
  const dnnl_memory_desc_t *smd = NULL, *dmd = NULL;
  DNN__MEAS_DNNL_TRY(dnnl_memory_get_memory_desc(src, &smd), "get_memory_desc");
  DNN__MEAS_DNNL_TRY(dnnl_memory_get_memory_desc(dst, &dmd), "get_memory_desc");
  DNN__MEAS_DNNL_TRY(
      dnnl_reorder_primitive_desc_create(&pd, smd, c->eng, dmd, c->eng, NULL),
      "reorder_primitive_desc_create");
  DNN__MEAS_DNNL_TRY(dnnl_primitive_create(&r, pd), "reorder primitive_create");
  dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
  DNN__MEAS_DNNL_TRY(dnnl_primitive_execute(r, c->stream, 2, args), "reorder");
  DNN__MEAS_DNNL_TRY(dnnl_stream_wait(c->stream), "stream_wait");
fail:
  if (r)
    dnnl_primitive_destroy(r);
  if (pd)
    dnnl_primitive_desc_destroy(pd);
  return st;
}

/* ------------------------------------------------------------------------ */
/* Jobs: one primitive with its arguments                                   */
/* ------------------------------------------------------------------------ */

#define MAX_ARGS 48

typedef struct job {
  dnnl_primitive_desc_t pd;
  dnnl_primitive_t prim;
  int n;
  dnnl_exec_arg_t args[MAX_ARGS];
  bool owned[MAX_ARGS];
  double scratch_bytes; /* scratchpad: the kernel's workspace */
} job;

/* Arguments a primitive may take (concat inputs are added separately). */
static const int ARGS[] = {DNNL_ARG_SRC,
                           DNNL_ARG_SRC_1,
                           DNNL_ARG_SRC_2,
                           DNNL_ARG_WEIGHTS,
                           DNNL_ARG_WEIGHTS_1,
                           DNNL_ARG_WEIGHTS_2,
                           DNNL_ARG_BIAS,
                           DNNL_ARG_DST,
                           DNNL_ARG_DST_1,
                           DNNL_ARG_DST_2,
                           DNNL_ARG_DIFF_SRC,
                           DNNL_ARG_DIFF_SRC_1,
                           DNNL_ARG_DIFF_SRC_2,
                           DNNL_ARG_DIFF_WEIGHTS,
                           DNNL_ARG_DIFF_WEIGHTS_1,
                           DNNL_ARG_DIFF_WEIGHTS_2,
                           DNNL_ARG_DIFF_BIAS,
                           DNNL_ARG_DIFF_DST,
                           DNNL_ARG_DIFF_DST_1,
                           DNNL_ARG_DIFF_DST_2,
                           DNNL_ARG_MEAN,
                           DNNL_ARG_VARIANCE,
                           DNNL_ARG_SCALE,
                           DNNL_ARG_SHIFT,
                           DNNL_ARG_DIFF_SCALE,
                           DNNL_ARG_DIFF_SHIFT,
                           DNNL_ARG_WORKSPACE,
                           DNNL_ARG_SCRATCHPAD};

static bool is_diff(int arg) {
  return (arg >= DNNL_ARG_DIFF_SRC_0 && arg <= DNNL_ARG_DIFF_BIAS) ||
         arg == DNNL_ARG_DIFF_SCALE || arg == DNNL_ARG_DIFF_SHIFT;
}

static void job_free(job *j) {
  for (int k = 0; k < j->n; k++)
    if (j->owned[k])
      dnnl_memory_destroy(j->args[k].memory);
  if (j->prim)
    dnnl_primitive_destroy(j->prim);
  if (j->pd)
    dnnl_primitive_desc_destroy(j->pd);
  memset(j, 0, sizeof *j);
}

static dnnl_memory_t job_mem(const job *j, int arg) {
  for (int k = 0; k < j->n; k++)
    if (j->args[k].arg == arg)
      return j->args[k].memory;
  return NULL;
}

/* Adds argument `arg` with descriptor `md`: shared from `share` when that
 * job has the same argument with an equal descriptor (a backward pass
 * reading the forward's tensors), else a new memory filled with data. */
static dnn_status job_arg(job *j, int arg, const dnnl_memory_desc_t *md,
                          const job *share, ctx *c, dnn_error *err) {
  dnn_status st = DNN_OK;
  if (j->n >= MAX_ARGS)
    return DNN_FAIL(err, DNN_ETOOLFAIL, "too many oneDNN arguments");
  if (share && !is_diff(arg) && arg != DNNL_ARG_SCRATCHPAD) {
    dnnl_memory_t m = job_mem(share, arg);
    const dnnl_memory_desc_t *smd = NULL;
    if (m && dnnl_memory_get_memory_desc(m, &smd) == dnnl_success &&
        dnnl_memory_desc_equal(smd, md)) {
      j->args[j->n] = (dnnl_exec_arg_t){arg, m};
      j->owned[j->n++] = false;
      return DNN_OK;
    }
  }
  dnnl_memory_t m = NULL;
  DNN__MEAS_DNNL_TRY(dnnl_memory_create(&m, md, c->eng, DNNL_MEMORY_ALLOCATE),
                     "memory_create");
  if (arg != DNNL_ARG_SCRATCHPAD && arg != DNNL_ARG_WORKSPACE)
    mem_fill(m, 0x5eedULL + (unsigned long long)arg * 7919ULL);
  j->args[j->n] = (dnnl_exec_arg_t){arg, m};
  j->owned[j->n++] = true;
fail:
  return st;
}

/*
 * Creates the primitive of `op` (or takes `pd` when op is NULL, for
 * concat) and its arguments. DNN_EUNSUPPORTED (no error message) when
 * oneDNN has no implementation for it: the caller then skips the kernel.
 */
static dnn_status job_make(ctx *c, job *j, const void *op,
                           dnnl_primitive_desc_t pd, const job *hint,
                           int n_multi, dnn_error *err) {
  dnn_status st = DNN_OK;
  memset(j, 0, sizeof *j);
  if (op) {
    if (dnnl_primitive_desc_create(&j->pd, op, c->attr, c->eng,
                                   hint ? hint->pd : NULL) != dnnl_success)
      return DNN_EUNSUPPORTED;
  } else {
    j->pd = pd;
  }
  DNN__MEAS_DNNL_TRY(dnnl_primitive_create(&j->prim, j->pd),
                     "primitive_create");
  for (size_t k = 0; k < DNN_ARRAY_LEN(ARGS); k++) {
    const dnnl_memory_desc_t *md =
        dnnl_primitive_desc_query_md(j->pd, dnnl_query_exec_arg_md, ARGS[k]);
    if (md == NULL || md->ndims == 0)
      continue;
    if (ARGS[k] == DNNL_ARG_SCRATCHPAD)
      j->scratch_bytes = (double)dnnl_memory_desc_get_size(md);
    if ((st = job_arg(j, ARGS[k], md, hint, c, err)))
      goto fail;
  }
  for (int k = 0; k < n_multi; k++) {
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(
        j->pd, dnnl_query_exec_arg_md, DNNL_ARG_MULTIPLE_SRC + k);
    if (md == NULL || md->ndims == 0)
      continue;
    if ((st = job_arg(j, DNNL_ARG_MULTIPLE_SRC + k, md, NULL, c, err)))
      goto fail;
  }
  return DNN_OK;
fail:
  job_free(j);
  return st;
}

static dnn_status job_run(ctx *c, const job *j, dnn_error *err) {
  dnn_status st = DNN_OK;
  DNN__MEAS_DNNL_TRY(dnnl_primitive_execute(j->prim, c->stream, j->n, j->args),
                     "primitive_execute");
  DNN__MEAS_DNNL_TRY(dnnl_stream_wait(c->stream), "stream_wait");
fail:
  return st;
}

/* Copies between argument `arg` of `j` and the plain f32 array `data`
 * (md_elems floats): into the argument when `write`, else out of it. */
static dnn_status job_copy(ctx *c, const job *j, int arg, float *data,
                           bool write, dnn_error *err) {
  dnnl_memory_t m = job_mem(j, arg);
  if (m == NULL)
    return DNN_FAIL(err, DNN_ETOOLFAIL, "oneDNN argument %d missing", arg);
  dnn_status st = DNN_OK;
  const dnnl_memory_desc_t *md = NULL;
  dnnl_memory_t user = NULL;
  DNN__MEAS_DNNL_TRY(dnnl_memory_get_memory_desc(m, &md), "get_memory_desc");
  dnnl_memory_desc_t pmd = dnn__meas_md_plain(md);
  DNN__MEAS_DNNL_TRY(dnnl_memory_create(&user, &pmd, c->eng, data),
                     "memory_create");
  st = write ? reorder(c, user, m, err) : reorder(c, m, user, err);
fail:
  if (user)
    dnnl_memory_destroy(user);
  return st;
}

/* Writes plain f32 data into argument `arg` of `j`. */
static dnn_status job_set(ctx *c, const job *j, int arg, const float *data,
                          dnn_error *err) {
  return job_copy(c, j, arg, (float *)(uintptr_t)data, true, err);
}

/* Reads argument `arg` of `j` as plain f32 into `out` (md_elems floats). */
static dnn_status job_get(ctx *c, const job *j, int arg, float *out,
                          dnn_error *err) {
  return job_copy(c, j, arg, out, false, err);
}

/* Elements of argument `arg` of `j` (0 when absent). */
static size_t job_elems(const job *j, int arg) {
  dnnl_memory_t m = job_mem(j, arg);
  const dnnl_memory_desc_t *md = NULL;
  if (m == NULL || dnnl_memory_get_memory_desc(m, &md) != dnnl_success)
    return 0;
  return md_elems(md);
}

/* ------------------------------------------------------------------------ */
/* Units: the primitives of one layer at one batch                         */
/* ------------------------------------------------------------------------ */

typedef struct unit {
  job fwd, bwd_data, bwd_weights;
  bool has[DNN_PASS_COUNT];
  bool fused_bwd; /* bwd_data computes both gradients */
  /* Shapes the verification needs. */
  dnn__conv_shape conv;
  dnn__pool_shape pool;
  size_t rows, cols; /* 2-D view: fc (n, in), norms, softmax, eltwise */
  size_t outs;       /* fc outputs */
  size_t T, H;       /* LSTM steps and hidden units */
  size_t hw;         /* batch norm spatial size */
} unit;

static void unit_free(unit *u) {
  job_free(&u->bwd_weights);
  job_free(&u->bwd_data);
  job_free(&u->fwd);
}

static const dnnl_format_tag_t ANY = dnnl_format_tag_any;

/* ---- Per-kind builders -------------------------------------------------- */

/* The forward job from descriptor `op`; a status (DNN_EUNSUPPORTED without
 * a message when oneDNN has no kernel) leaves the unit without it. */
static dnn_status unit_fwd(ctx *c, unit *u, const void *op, dnn_error *err) {
  dnn_status st = job_make(c, &u->fwd, op, NULL, NULL, 0, err);
  if (st)
    return st;
  u->has[DNN_PASS_FWD] = true;
  return DNN_OK;
}

/* The backward job of `pass` from descriptor `op`, with the forward as
 * hint; `op` NULL (oneDNN refused the descriptor) or no kernel for it
 * leaves the pass out (DNN_OK). `fused`: one bwd_data job computes both
 * gradients. */
static dnn_status unit_bwd(ctx *c, unit *u, dnn_pass pass, bool fused,
                           const void *op, dnn_error *err) {
  if (op == NULL)
    return DNN_OK;
  job *j = pass == DNN_PASS_BWD_DATA || fused ? &u->bwd_data : &u->bwd_weights;
  dnn_status st = job_make(c, j, op, NULL, &u->fwd, 0, err);
  if (st && st != DNN_EUNSUPPORTED)
    return st;
  u->has[pass] = st == DNN_OK;
  if (fused) {
    u->has[DNN_PASS_BWD_WEIGHTS] = st == DNN_OK;
    u->fused_bwd = true;
  }
  return DNN_OK;
}

static dnn_status build_conv(ctx *c, const dnn_net *net, size_t i, size_t batch,
                             unit *u, dnn_error *err) {
  const dnn_layer *l = dnn_net_layer(net, i);
  dnn__meas_conv_shape(net, i, batch, &u->conv);
  dnn__meas_conv_geom g;
  dnn__meas_conv_geom_of(&u->conv, &g);
  dnnl_memory_desc_t smd = dnn__meas_md(4, g.src, c->dt, ANY);
  dnnl_memory_desc_t dmd = dnn__meas_md(4, g.dst, c->dt, ANY);
  dnnl_memory_desc_t wmd = g.groups > 1 ? dnn__meas_md(5, g.w5, c->dt, ANY)
                                        : dnn__meas_md(4, g.w4, c->dt, ANY);
  dnnl_memory_desc_t bmd = dnn__meas_md(1, g.bias, c->dt, ANY);
  const dnnl_memory_desc_t *bp = l->p.conv.bias ? &bmd : NULL;
  dnnl_convolution_desc_t fd, bd, wd;
  if (dnnl_dilated_convolution_forward_desc_init(
          &fd, dnnl_forward_training, dnnl_convolution_direct, &smd, &wmd, bp,
          &dmd, g.strides, g.dil, g.pl, g.pr) != dnnl_success)
    return DNN_EUNSUPPORTED;
  dnn_status st = unit_fwd(c, u, &fd, err);
  if (st)
    return st;
  bool ok = dnnl_dilated_convolution_backward_data_desc_init(
                &bd, dnnl_convolution_direct, &smd, &wmd, &dmd, g.strides,
                g.dil, g.pl, g.pr) == dnnl_success;
  if ((st = unit_bwd(c, u, DNN_PASS_BWD_DATA, false, ok ? &bd : NULL, err)))
    return st;
  ok = dnnl_dilated_convolution_backward_weights_desc_init(
           &wd, dnnl_convolution_direct, &smd, &wmd, bp, &dmd, g.strides, g.dil,
           g.pl, g.pr) == dnnl_success;
  return unit_bwd(c, u, DNN_PASS_BWD_WEIGHTS, false, ok ? &wd : NULL, err);
}

static dnn_status build_fc(ctx *c, const dnn_net *net, size_t i, size_t batch,
                           unit *u, dnn_error *err) {
  const dnn_layer *l = dnn_net_layer(net, i);
  dnn__meas_fc_geom g;
  dnn__meas_fc_geom_of(l, batch, &g);
  u->rows = (size_t)g.src[0];
  u->cols = l->in.rank == 3 ? dnn_shape_elems(&l->in) : (size_t)g.src[1];
  u->outs = l->p.fc.out_features;
  int nd = g.nd;
  const int64_t *src = g.src, *w = g.w, *bias = g.bias, *dst = g.dst;
  dnnl_memory_desc_t smd = dnn__meas_md(nd, src, c->dt, ANY);
  dnnl_memory_desc_t wmd = dnn__meas_md(nd, w, c->dt, ANY);
  dnnl_memory_desc_t bmd = dnn__meas_md(1, bias, c->dt, ANY);
  dnnl_memory_desc_t dmd = dnn__meas_md(2, dst, c->dt, ANY);
  const dnnl_memory_desc_t *bp = l->p.fc.bias ? &bmd : NULL;
  dnnl_inner_product_desc_t fd, bd, wd;
  if (dnnl_inner_product_forward_desc_init(&fd, dnnl_forward_training, &smd,
                                           &wmd, bp, &dmd) != dnnl_success)
    return DNN_EUNSUPPORTED;
  dnn_status st = unit_fwd(c, u, &fd, err);
  if (st)
    return st;
  bool ok = dnnl_inner_product_backward_data_desc_init(&bd, &smd, &wmd, &dmd) ==
            dnnl_success;
  if ((st = unit_bwd(c, u, DNN_PASS_BWD_DATA, false, ok ? &bd : NULL, err)))
    return st;
  ok = dnnl_inner_product_backward_weights_desc_init(&wd, &smd, &wmd, bp,
                                                     &dmd) == dnnl_success;
  return unit_bwd(c, u, DNN_PASS_BWD_WEIGHTS, false, ok ? &wd : NULL, err);
}

static dnn_status build_pool(ctx *c, const dnn_net *net, size_t i, size_t batch,
                             unit *u, dnn_error *err) {
  dnn__meas_pool_shape(net, i, batch, &u->pool);
  dnn__meas_pool_geom g;
  dnn__meas_pool_geom_of(&u->pool, &g);
  /* Pooling takes a concrete source layout: the plain one. */
  dnnl_memory_desc_t smd = dnn__meas_md(4, g.src, c->dt, dnnl_abcd);
  dnnl_memory_desc_t dmd = dnn__meas_md(4, g.dst, c->dt, dnnl_abcd);
  dnnl_pooling_v2_desc_t fd, bd;
  if (dnnl_pooling_v2_forward_desc_init(&fd, dnnl_forward_training, g.alg, &smd,
                                        &dmd, g.strides, g.kernel, g.dil, g.pl,
                                        g.pr) != dnnl_success)
    return DNN_EUNSUPPORTED;
  dnn_status st = unit_fwd(c, u, &fd, err);
  if (st)
    return st;
  bool ok = dnnl_pooling_v2_backward_desc_init(&bd, g.alg, &smd, &dmd,
                                               g.strides, g.kernel, g.dil, g.pl,
                                               g.pr) == dnnl_success;
  return unit_bwd(c, u, DNN_PASS_BWD_DATA, false, ok ? &bd : NULL, err);
}

/* Batch norm (image or feature vector) and layer norm (last dimension). */
static dnn_status build_norm(ctx *c, const dnn_net *net, size_t i, size_t batch,
                             unit *u, dnn_error *err) {
  const dnn_layer *l = dnn_net_layer(net, i);
  bool bn = l->kind == DNN_LAYER_BATCHNORM;
  int64_t d[4];
  int nd;
  if (bn) {
    if (l->in.rank == 2)
      return DNN_EUNSUPPORTED;
    nd = dnn__meas_batch_dims(&l->in, batch, d);
    u->rows = batch;
    u->cols = l->in.dim[0];
    u->hw = l->in.rank == 3 ? l->in.dim[1] * l->in.dim[2] : 1;
  } else {
    size_t last = l->in.dim[l->in.rank - 1];
    size_t rows = batch * dnn_shape_elems(&l->in) / last;
    d[0] = (int64_t)rows;
    d[1] = (int64_t)last;
    nd = 2;
    u->rows = rows;
    u->cols = last;
  }
  /* Normalisation takes a concrete layout (no format_tag_any): the plain
   * one, which is what a framework without layout propagation uses. */
  static const dnnl_format_tag_t tags[] = {0, 0, dnnl_ab, 0, dnnl_abcd};
  dnnl_memory_desc_t md = dnn__meas_md(nd, d, c->dt, tags[nd]);
  unsigned flags = dnnl_use_scale | dnnl_use_shift;
  const float eps = 1e-5f;
  dnn_status st = DNN_OK;
  if (bn) {
    dnnl_batch_normalization_desc_t fd, bd;
    if (dnnl_batch_normalization_forward_desc_init(
            &fd, dnnl_forward_training, &md, eps, flags) != dnnl_success)
      return DNN_EUNSUPPORTED;
    if ((st = unit_fwd(c, u, &fd, err)))
      return st;
    bool ok = dnnl_batch_normalization_backward_desc_init(
                  &bd, dnnl_backward, &md, &md, eps, flags) == dnnl_success;
    return unit_bwd(c, u, DNN_PASS_BWD_DATA, true, ok ? &bd : NULL, err);
  }
  dnnl_layer_normalization_desc_t fd, bd;
  if (dnnl_layer_normalization_forward_desc_init(
          &fd, dnnl_forward_training, &md, NULL, eps, flags) != dnnl_success)
    return DNN_EUNSUPPORTED;
  if ((st = unit_fwd(c, u, &fd, err)))
    return st;
  bool ok = dnnl_layer_normalization_backward_desc_init(
                &bd, dnnl_backward, &md, &md, NULL, eps, flags) == dnnl_success;
  return unit_bwd(c, u, DNN_PASS_BWD_DATA, true, ok ? &bd : NULL, err);
}

/* Eltwise, softmax and add: a 2-D (rows, cols) view of the tensor. */
static dnn_status build_2d(ctx *c, const dnn_net *net, size_t i, size_t batch,
                           unit *u, dnn_error *err) {
  const dnn_layer *l = dnn_net_layer(net, i);
  size_t elems = dnn_shape_elems(&l->in);
  if (l->kind == DNN_LAYER_SOFTMAX || l->kind == DNN_LAYER_SOFTMAX_XENT) {
    size_t last = l->in.dim[l->in.rank - 1];
    u->rows = batch * elems / last;
    u->cols = last;
  } else {
    u->rows = batch;
    u->cols = elems;
  }
  int64_t d[2] = {(int64_t)u->rows, (int64_t)u->cols};
  dnnl_memory_desc_t md = dnn__meas_md(2, d, c->dt, dnnl_ab);
  dnn_status st = DNN_OK;
  if (l->kind == DNN_LAYER_ACTIVATION) {
    dnnl_eltwise_desc_t fd, bd;
    dnnl_alg_kind_t alg = dnn__meas_act_alg(l->p.act.act);
    if (dnnl_eltwise_forward_desc_init(&fd, dnnl_forward_training, alg, &md, 0,
                                       0) != dnnl_success)
      return DNN_EUNSUPPORTED;
    if ((st = unit_fwd(c, u, &fd, err)))
      return st;
    bool ok = dnnl_eltwise_backward_desc_init(&bd, alg, &md, &md, 0, 0) ==
              dnnl_success;
    return unit_bwd(c, u, DNN_PASS_BWD_DATA, false, ok ? &bd : NULL, err);
  }
  if (l->kind == DNN_LAYER_ADD) {
    dnnl_binary_desc_t bd;
    if (dnnl_binary_desc_init(&bd, dnnl_binary_add, &md, &md, &md) !=
        dnnl_success)
      return DNN_EUNSUPPORTED;
    return unit_fwd(c, u, &bd, err);
  }
  dnnl_softmax_desc_t fd, bd;
  if (dnnl_softmax_forward_desc_init(&fd, dnnl_forward_training, &md, 1) !=
      dnnl_success)
    return DNN_EUNSUPPORTED;
  if ((st = unit_fwd(c, u, &fd, err)))
    return st;
  bool ok = dnnl_softmax_backward_desc_init(&bd, &md, &md, 1) == dnnl_success;
  return unit_bwd(c, u, DNN_PASS_BWD_DATA, false, ok ? &bd : NULL, err);
}

static dnn_status build_concat(ctx *c, const dnn_net *net, size_t i,
                               size_t batch, unit *u, dnn_error *err) {
  const dnn_layer *l = dnn_net_layer(net, i);
  dnnl_memory_desc_t srcs[DNN_LAYER_MAX_INPUTS];
  static const dnnl_format_tag_t tags[] = {0, 0, dnnl_ab, dnnl_abc, dnnl_abcd};
  int64_t d[4];
  int nd = 0;
  for (size_t k = 0; k < l->n_inputs; k++) {
    const dnn_layer *in = dnn_net_layer(net, l->inputs[k]);
    nd = dnn__meas_batch_dims(&in->out, batch, d);
    srcs[k] = dnn__meas_md(nd, d, c->dt, tags[nd]);
  }
  nd = dnn__meas_batch_dims(&l->out, batch, d);
  dnnl_memory_desc_t dmd = dnn__meas_md(nd, d, c->dt, tags[nd]);
  dnnl_primitive_desc_t pd = NULL;
  if (dnnl_concat_primitive_desc_create(&pd, &dmd, (int)l->n_inputs,
                                        (int)l->p.concat.axis + 1, srcs,
                                        c->attr, c->eng) != dnnl_success)
    return DNN_EUNSUPPORTED;
  dnn_status st = job_make(c, &u->fwd, NULL, pd, NULL, (int)l->n_inputs, err);
  if (st)
    return st;
  u->has[DNN_PASS_FWD] = true;
  return DNN_OK;
}

static dnn_status build_lstm(ctx *c, const dnn_net *net, size_t i, size_t batch,
                             unit *u, dnn_error *err) {
  const dnn_layer *l = dnn_net_layer(net, i);
  if (l->in.rank != 2)
    return DNN_EUNSUPPORTED;
  size_t T = l->in.dim[0], C = l->in.dim[1], H = l->p.lstm.hidden;
  u->T = T;
  u->H = H;
  u->rows = batch;
  u->cols = C;
  int64_t src[3] = {(int64_t)T, (int64_t)batch, (int64_t)C};
  int64_t dst[3] = {(int64_t)T, (int64_t)batch, (int64_t)H};
  int64_t wl[5] = {1, 1, (int64_t)C, 4, (int64_t)H};
  int64_t wi[5] = {1, 1, (int64_t)H, 4, (int64_t)H};
  int64_t b[4] = {1, 1, 4, (int64_t)H};
  dnnl_memory_desc_t smd = dnn__meas_md(3, src, c->dt, dnnl_tnc);
  dnnl_memory_desc_t dmd = dnn__meas_md(3, dst, c->dt, dnnl_tnc);
  dnnl_memory_desc_t wlmd = dnn__meas_md(5, wl, c->dt, ANY);
  dnnl_memory_desc_t wimd = dnn__meas_md(5, wi, c->dt, ANY);
  /* oneDNN keeps the LSTM bias in f32 for bf16 too. */
  dnnl_memory_desc_t bmd = dnn__meas_md(4, b, dnnl_f32, ANY);
  dnnl_rnn_desc_t fd, bd;
  if (dnnl_lstm_forward_desc_init(
          &fd, dnnl_forward_training, dnnl_unidirectional_left2right, &smd,
          NULL, NULL, &wlmd, &wimd, &bmd, &dmd, NULL, NULL, 0) != dnnl_success)
    return DNN_EUNSUPPORTED;
  dnn_status st = unit_fwd(c, u, &fd, err);
  if (st)
    return st;
  bool ok = dnnl_lstm_backward_desc_init(
                &bd, dnnl_backward, dnnl_unidirectional_left2right, &smd, NULL,
                NULL, &wlmd, &wimd, &bmd, &dmd, NULL, NULL, &smd, NULL, NULL,
                &wlmd, &wimd, &bmd, &dmd, NULL, NULL, 0) == dnnl_success;
  return unit_bwd(c, u, DNN_PASS_BWD_DATA, true, ok ? &bd : NULL, err);
}

/* Builds the primitives of layer `i`; DNN_EUNSUPPORTED (no message) when
 * oneDNN has none for it, in which case the layer is skipped. */
static dnn_status unit_build(ctx *c, const dnn_net *net, size_t i, size_t batch,
                             unit *u, dnn_error *err) {
  memset(u, 0, sizeof *u);
  dnn_status st;
  switch (dnn_net_layer(net, i)->kind) {
  case DNN_LAYER_CONV2D:
    st = build_conv(c, net, i, batch, u, err);
    break;
  case DNN_LAYER_FC:
    st = build_fc(c, net, i, batch, u, err);
    break;
  case DNN_LAYER_MAXPOOL:
  case DNN_LAYER_AVGPOOL:
  case DNN_LAYER_ADAPTIVE_AVGPOOL:
  case DNN_LAYER_GLOBAL_AVGPOOL:
    st = build_pool(c, net, i, batch, u, err);
    break;
  case DNN_LAYER_BATCHNORM:
  case DNN_LAYER_LAYERNORM:
    st = build_norm(c, net, i, batch, u, err);
    break;
  case DNN_LAYER_ACTIVATION:
  case DNN_LAYER_ADD:
  case DNN_LAYER_SOFTMAX:
  case DNN_LAYER_SOFTMAX_XENT:
    st = build_2d(c, net, i, batch, u, err);
    break;
  case DNN_LAYER_CONCAT:
    st = build_concat(c, net, i, batch, u, err);
    break;
  case DNN_LAYER_LSTM:
    st = build_lstm(c, net, i, batch, u, err);
    break;
  default:
    st = DNN_EUNSUPPORTED;
  }
  if (st)
    unit_free(u);
  return st;
}

/* The job that computes `pass`. */
static const job *unit_job(const unit *u, dnn_pass pass) {
  if (pass == DNN_PASS_FWD)
    return &u->fwd;
  if (pass == DNN_PASS_BWD_DATA || u->fused_bwd)
    return &u->bwd_data;
  return &u->bwd_weights;
}

/* ------------------------------------------------------------------------ */
/* Verification                                                             */
/* ------------------------------------------------------------------------ */

/* Copies what the forward saved or read into the backward job `j` where
 * the two do not share a memory (a backward that wants another layout,
 * e.g. LSTM weights). Opaque tensors (workspace) are always shared. */
static dnn_status sync_fwd(ctx *c, const job *f, const job *j, dnn_error *err) {
  static const int args[] = {
      DNNL_ARG_SRC,      DNNL_ARG_WEIGHTS, DNNL_ARG_WEIGHTS_1,
      DNNL_ARG_BIAS,     DNNL_ARG_DST,     DNNL_ARG_MEAN,
      DNNL_ARG_VARIANCE, DNNL_ARG_SCALE,   DNNL_ARG_SHIFT};
  if (f == j)
    return DNN_OK;
  for (size_t k = 0; k < DNN_ARRAY_LEN(args); k++) {
    dnnl_memory_t a = job_mem(f, args[k]), b = job_mem(j, args[k]);
    if (a && b && a != b) {
      dnn_status st = reorder(c, a, b, err);
      if (st)
        return st;
    }
  }
  return DNN_OK;
}

/* Plain buffers of one verification: inputs (float) and outputs. */
typedef struct vbuf {
  float *f[6];
  double *d[3];
  float *got;
  bool bf16; /* inputs are rounded to bfloat16 */
} vbuf;

static void vbuf_free(vbuf *b) {
  for (size_t k = 0; k < 6; k++)
    dnn_free(b->f[k]);
  for (size_t k = 0; k < 3; k++)
    dnn_free(b->d[k]);
  dnn_free(b->got);
}

/* Allocates float input k with n elements, filled from `seed`. */
/* Allocates float input k with n elements, filled from `seed`; for a
 * bf16 kernel already rounded to bf16, so the reference sees exactly the
 * values the kernel does (a max-pool's argmax must not differ by a
 * rounding). */
static float *vin(vbuf *b, size_t k, size_t n, unsigned long long seed) {
  b->f[k] = dnn_malloc((n ? n : 1) * sizeof(float));
  if (b->f[k] == NULL)
    return NULL;
  dnn__meas_fill(b->f[k], n, seed);
  for (size_t i = 0; b->bf16 && i < n; i++) {
    uint32_t u = (uint32_t)to_bf16(b->f[k][i]) << 16;
    memcpy(&b->f[k][i], &u, sizeof u);
  }
  return b->f[k];
}

static double *vout(vbuf *b, size_t k, size_t n) {
  b->d[k] = dnn_calloc(n ? n : 1, sizeof(double));
  return b->d[k];
}

/* Compares argument `arg` of `j` (n elements) with `ref` scaled by the
 * test perturbation; keeps the worst errors. */
static dnn_status check(ctx *c, const job *j, int arg, const double *ref,
                        size_t n, double scale, vbuf *b, double *l2, double *mx,
                        dnn_error *err) {
  dnn_free(b->got);
  b->got = dnn_malloc((n ? n : 1) * sizeof(float));
  double *r = dnn_malloc((n ? n : 1) * sizeof(double));
  dnn_status st = DNN_OK;
  if (b->got == NULL || r == NULL) {
    st = DNN_FAIL(err, DNN_ENOMEM, "out of memory verifying a kernel");
    goto done;
  }
  if ((st = job_get(c, j, arg, b->got, err)))
    goto done;
  for (size_t k = 0; k < n; k++)
    r[k] = ref[k] * scale;
  double a, m;
  dnn__meas_compare(b->got, r, n, &a, &m);
  if (!(a <= *l2))
    *l2 = a;
  if (!(m <= *mx))
    *mx = m;
done:
  dnn_free(r);
  return st;
}

/*
 * Verifies the kernel of `pass` of unit `u` (built at the verify batch):
 * relative L2 and max-norm errors in *l2 and *mx.
 */
/* Sets what `pass` of a weighted layer (convolution, inner product) reads
 * from the plain x, w, bias (NULL: none) and dy, then runs `j`. */
static dnn_status run_weighted(ctx *c, const job *j, dnn_pass pass,
                               const float *x, const float *w,
                               const float *bias, const float *dy,
                               dnn_error *err) {
  dnn_status st = DNN_OK;
  if (pass != DNN_PASS_BWD_DATA)
    st = job_set(c, j, DNNL_ARG_SRC, x, err);
  if (st == DNN_OK && pass != DNN_PASS_BWD_WEIGHTS)
    st = job_set(c, j, DNNL_ARG_WEIGHTS, w, err);
  if (st == DNN_OK && pass == DNN_PASS_FWD && bias)
    st = job_set(c, j, DNNL_ARG_BIAS, bias, err);
  if (st == DNN_OK && pass != DNN_PASS_FWD)
    st = job_set(c, j, DNNL_ARG_DIFF_DST, dy, err);
  return st ? st : job_run(c, j, err);
}

static dnn_status verify(ctx *c, const dnn_net *net, size_t i, unit *u,
                         dnn_pass pass, double *l2, double *mx,
                         dnn_error *err) {
  const dnn_layer *l = dnn_net_layer(net, i);
  double scale = dnn__meas_perturb(l->kind, pass);
  vbuf b;
  memset(&b, 0, sizeof b);
  b.bf16 = c->dt == dnnl_bf16;
  *l2 = 0;
  *mx = 0;
  dnn_status st = DNN_OK;
  const job *f = &u->fwd, *j = unit_job(u, pass);
#define NOMEM                                                                  \
  do {                                                                         \
    st = DNN_FAIL(err, DNN_ENOMEM, "out of memory verifying %s", l->name);     \
    goto done;                                                                 \
  } while (0)
#define TRY(x)                                                                 \
  do {                                                                         \
    if ((st = (x)))                                                            \
      goto done;                                                               \
  } while (0)
  switch (l->kind) {
  case DNN_LAYER_CONV2D: {
    const dnn__conv_shape *s = &u->conv;
    size_t nx = s->n * s->ic * s->ih * s->iw, ny = s->n * s->oc * s->oh * s->ow;
    size_t nw = s->oc * (s->ic / s->groups) * s->kh * s->kw;
    float *x = vin(&b, 0, nx, 11), *w = vin(&b, 1, nw, 12);
    float *bias = vin(&b, 2, s->oc, 13), *dy = vin(&b, 3, ny, 14);
    double *r0 =
        vout(&b, 0, nx > ny ? (nx > nw ? nx : nw) : (ny > nw ? ny : nw));
    double *r1 = vout(&b, 1, s->oc);
    if (!x || !w || !bias || !dy || !r0 || !r1)
      NOMEM;
    bool has_bias = l->p.conv.bias;
    TRY(run_weighted(c, j, pass, x, w, has_bias ? bias : NULL, dy, err));
    if (pass == DNN_PASS_FWD) {
      dnn__ref_conv_fwd(s, x, w, has_bias ? bias : NULL, r0);
      TRY(check(c, j, DNNL_ARG_DST, r0, ny, scale, &b, l2, mx, err));
    } else if (pass == DNN_PASS_BWD_DATA) {
      dnn__ref_conv_bwd_data(s, dy, w, r0);
      TRY(check(c, j, DNNL_ARG_DIFF_SRC, r0, nx, scale, &b, l2, mx, err));
    } else {
      dnn__ref_conv_bwd_weights(s, x, dy, r0, r1);
      TRY(check(c, j, DNNL_ARG_DIFF_WEIGHTS, r0, nw, scale, &b, l2, mx, err));
      if (has_bias)
        TRY(check(c, j, DNNL_ARG_DIFF_BIAS, r1, s->oc, scale, &b, l2, mx, err));
    }
    break;
  }
  case DNN_LAYER_FC: {
    size_t n = u->rows, in = u->cols, out = u->outs;
    float *x = vin(&b, 0, n * in, 21), *w = vin(&b, 1, out * in, 22);
    float *bias = vin(&b, 2, out, 23), *dy = vin(&b, 3, n * out, 24);
    double *r0 = vout(&b, 0, (n > out ? n : out) * in + n * out);
    double *r1 = vout(&b, 1, out);
    if (!x || !w || !bias || !dy || !r0 || !r1)
      NOMEM;
    bool has_bias = l->p.fc.bias;
    TRY(run_weighted(c, j, pass, x, w, has_bias ? bias : NULL, dy, err));
    if (pass == DNN_PASS_FWD) {
      dnn__ref_ip_fwd(n, in, out, x, w, has_bias ? bias : NULL, r0);
      TRY(check(c, j, DNNL_ARG_DST, r0, n * out, scale, &b, l2, mx, err));
    } else if (pass == DNN_PASS_BWD_DATA) {
      dnn__ref_ip_bwd_data(n, in, out, dy, w, r0);
      TRY(check(c, j, DNNL_ARG_DIFF_SRC, r0, n * in, scale, &b, l2, mx, err));
    } else {
      dnn__ref_ip_bwd_weights(n, in, out, x, dy, r0, r1);
      TRY(check(c, j, DNNL_ARG_DIFF_WEIGHTS, r0, out * in, scale, &b, l2, mx,
                err));
      if (has_bias)
        TRY(check(c, j, DNNL_ARG_DIFF_BIAS, r1, out, scale, &b, l2, mx, err));
    }
    break;
  }
  case DNN_LAYER_MAXPOOL:
  case DNN_LAYER_AVGPOOL:
  case DNN_LAYER_ADAPTIVE_AVGPOOL:
  case DNN_LAYER_GLOBAL_AVGPOOL: {
    const dnn__pool_shape *s = &u->pool;
    size_t nx = s->n * s->c * s->ih * s->iw, ny = s->n * s->c * s->oh * s->ow;
    float *x = vin(&b, 0, nx, 31), *dy = vin(&b, 1, ny, 32);
    double *r0 = vout(&b, 0, nx > ny ? nx : ny);
    if (!x || !dy || !r0)
      NOMEM;
    TRY(job_set(c, f, DNNL_ARG_SRC, x, err));
    TRY(job_run(c, f, err));
    if (pass == DNN_PASS_FWD) {
      dnn__ref_pool_fwd(s, x, r0);
      TRY(check(c, f, DNNL_ARG_DST, r0, ny, scale, &b, l2, mx, err));
    } else {
      TRY(sync_fwd(c, f, j, err));
      TRY(job_set(c, j, DNNL_ARG_DIFF_DST, dy, err));
      TRY(job_run(c, j, err));
      dnn__ref_pool_bwd(s, x, dy, r0);
      TRY(check(c, j, DNNL_ARG_DIFF_SRC, r0, nx, scale, &b, l2, mx, err));
    }
    break;
  }
  case DNN_LAYER_BATCHNORM:
  case DNN_LAYER_LAYERNORM: {
    bool bn = l->kind == DNN_LAYER_BATCHNORM;
    size_t n = u->rows * u->cols * (bn ? u->hw : 1), C = u->cols;
    float *x = vin(&b, 0, n, 41), *g = vin(&b, 1, C, 42);
    float *be = vin(&b, 2, C, 43), *dy = vin(&b, 3, n, 44);
    double *r0 = vout(&b, 0, n), *r1 = vout(&b, 1, C), *r2 = vout(&b, 2, C);
    if (!x || !g || !be || !dy || !r0 || !r1 || !r2)
      NOMEM;
    const double eps = 1e-5;
    TRY(job_set(c, f, DNNL_ARG_SRC, x, err));
    TRY(job_set(c, f, DNNL_ARG_SCALE, g, err));
    TRY(job_set(c, f, DNNL_ARG_SHIFT, be, err));
    TRY(job_run(c, f, err));
    if (pass == DNN_PASS_FWD) {
      if (bn)
        dnn__ref_bnorm_fwd(u->rows, C, u->hw, x, g, be, eps, r0);
      else
        dnn__ref_lnorm_fwd(u->rows, C, x, g, be, eps, r0);
      TRY(check(c, f, DNNL_ARG_DST, r0, n, scale, &b, l2, mx, err));
    } else {
      TRY(sync_fwd(c, f, j, err));
      TRY(job_set(c, j, DNNL_ARG_DIFF_DST, dy, err));
      TRY(job_run(c, j, err));
      if (bn)
        dnn__ref_bnorm_bwd(u->rows, C, u->hw, x, g, dy, eps, r0, r1, r2);
      else
        dnn__ref_lnorm_bwd(u->rows, C, x, g, dy, eps, r0, r1, r2);
      if (pass == DNN_PASS_BWD_DATA) {
        TRY(check(c, j, DNNL_ARG_DIFF_SRC, r0, n, scale, &b, l2, mx, err));
      } else {
        TRY(check(c, j, DNNL_ARG_DIFF_SCALE, r1, C, scale, &b, l2, mx, err));
        TRY(check(c, j, DNNL_ARG_DIFF_SHIFT, r2, C, scale, &b, l2, mx, err));
      }
    }
    break;
  }
  case DNN_LAYER_ACTIVATION:
  case DNN_LAYER_SOFTMAX:
  case DNN_LAYER_SOFTMAX_XENT:
  case DNN_LAYER_ADD: {
    size_t n = u->rows * u->cols;
    float *x = vin(&b, 0, n, 51), *dy = vin(&b, 1, n, 52);
    float *x2 = vin(&b, 2, n, 53), *y = vin(&b, 3, n, 54);
    double *r0 = vout(&b, 0, n);
    if (!x || !dy || !x2 || !y || !r0)
      NOMEM;
    TRY(job_set(c, f, DNNL_ARG_SRC, x, err));
    if (l->kind == DNN_LAYER_ADD)
      TRY(job_set(c, f, DNNL_ARG_SRC_1, x2, err));
    TRY(job_run(c, f, err));
    bool soft = l->kind != DNN_LAYER_ACTIVATION && l->kind != DNN_LAYER_ADD;
    if (pass == DNN_PASS_FWD) {
      if (l->kind == DNN_LAYER_ACTIVATION)
        dnn__ref_act_fwd(l->p.act.act, x, n, r0);
      else if (l->kind == DNN_LAYER_ADD)
        for (size_t k = 0; k < n; k++)
          r0[k] = (double)x[k] + (double)x2[k];
      else
        dnn__ref_softmax_fwd(u->rows, u->cols, x, r0);
      TRY(check(c, f, DNNL_ARG_DST, r0, n, scale, &b, l2, mx, err));
    } else {
      TRY(sync_fwd(c, f, j, err));
      TRY(job_set(c, j, DNNL_ARG_DIFF_DST, dy, err));
      TRY(job_run(c, j, err));
      if (soft) {
        /* The backward reads the forward's output (shared memory). */
        TRY(job_get(c, f, DNNL_ARG_DST, y, err));
        dnn__ref_softmax_bwd(u->rows, u->cols, y, dy, r0);
      } else {
        dnn__ref_act_bwd(l->p.act.act, x, dy, n, r0);
      }
      TRY(check(c, j, DNNL_ARG_DIFF_SRC, r0, n, scale, &b, l2, mx, err));
    }
    break;
  }
  case DNN_LAYER_CONCAT: {
    /* Inputs k of shape (n, c_k, rest...) concatenated on channels. */
    size_t total = job_elems(f, DNNL_ARG_DST), at = 0;
    double *r0 = vout(&b, 0, total);
    float *xs[DNN_LAYER_MAX_INPUTS] = {0};
    size_t ne[DNN_LAYER_MAX_INPUTS] = {0};
    if (!r0)
      NOMEM;
    size_t per = 1; /* elements per sample after the concat axis */
    const dnn_shape *os = &l->out;
    for (size_t k = l->p.concat.axis + 1; k < os->rank; k++)
      per *= os->dim[k];
    size_t outer = total / (os->dim[l->p.concat.axis] * per);
    for (size_t k = 0; k < l->n_inputs; k++) {
      ne[k] = job_elems(f, DNNL_ARG_MULTIPLE_SRC + (int)k);
      xs[k] = dnn_malloc((ne[k] ? ne[k] : 1) * sizeof(float));
      if (xs[k] == NULL) {
        for (size_t q = 0; q < k; q++)
          dnn_free(xs[q]);
        NOMEM;
      }
      dnn__meas_fill(xs[k], ne[k], 60 + k);
      st = job_set(c, f, DNNL_ARG_MULTIPLE_SRC + (int)k, xs[k], err);
      if (st)
        break;
    }
    for (size_t o = 0; st == DNN_OK && o < outer; o++)
      for (size_t k = 0; k < l->n_inputs; k++) {
        size_t chunk = ne[k] / outer;
        for (size_t q = 0; q < chunk; q++)
          r0[at++] = (double)xs[k][o * chunk + q];
      }
    if (st == DNN_OK && (st = job_run(c, f, err)) == DNN_OK)
      st = check(c, f, DNNL_ARG_DST, r0, total, scale, &b, l2, mx, err);
    for (size_t k = 0; k < l->n_inputs; k++)
      dnn_free(xs[k]);
    break;
  }
  case DNN_LAYER_LSTM: {
    size_t T = u->T, n = u->rows, C = u->cols, H = u->H;
    float *x = vin(&b, 0, T * n * C, 71), *wx = vin(&b, 1, C * 4 * H, 72);
    float *wh = vin(&b, 2, H * 4 * H, 73), *bias = vin(&b, 3, 4 * H, 74);
    float *dy = vin(&b, 4, T * n * H, 75);
    double *y = vout(&b, 0, T * n * H), *scratch = vout(&b, 1, 6 * H);
    if (!x || !wx || !wh || !bias || !dy || !y || !scratch)
      NOMEM;
    dnn__meas_lstm_scale_weights(C, H, wx, wh);
    TRY(job_set(c, f, DNNL_ARG_SRC_LAYER, x, err));
    TRY(job_set(c, f, DNNL_ARG_WEIGHTS_LAYER, wx, err));
    TRY(job_set(c, f, DNNL_ARG_WEIGHTS_ITER, wh, err));
    TRY(job_set(c, f, DNNL_ARG_BIAS, bias, err));
    TRY(job_run(c, f, err));
    if (pass == DNN_PASS_FWD) {
      dnn__ref_lstm_fwd(T, n, C, H, x, wx, wh, bias, scratch, y);
      TRY(check(c, f, DNNL_ARG_DST_LAYER, y, T * n * H, scale, &b, l2, mx,
                err));
      break;
    }
    TRY(sync_fwd(c, f, j, err));
    TRY(job_set(c, j, DNNL_ARG_DIFF_DST_LAYER, dy, err));
    /* oneDNN accumulates the weight gradients into these: start at 0. */
    static const int acc[] = {DNNL_ARG_DIFF_WEIGHTS_LAYER,
                              DNNL_ARG_DIFF_WEIGHTS_ITER, DNNL_ARG_DIFF_BIAS};
    for (size_t k = 0; k < DNN_ARRAY_LEN(acc); k++) {
      size_t ne = job_elems(j, acc[k]);
      float *z = dnn_calloc(ne ? ne : 1, sizeof *z);
      if (z == NULL)
        NOMEM;
      st = ne ? job_set(c, j, acc[k], z, err) : DNN_OK;
      dnn_free(z);
      if (st)
        goto done;
    }
    TRY(job_run(c, j, err));
    int arg = pass == DNN_PASS_BWD_DATA ? DNNL_ARG_DIFF_SRC_LAYER
                                        : DNNL_ARG_DIFF_WEIGHTS_LAYER;
    size_t ng = pass == DNN_PASS_BWD_DATA ? T * n * C : C * 4 * H;
    float *g = vin(&b, 5, ng, 0);
    if (g == NULL)
      NOMEM;
    TRY(job_get(c, j, arg, g, err));
    for (size_t k = 0; k < ng; k++)
      g[k] = (float)((double)g[k] / scale);
    float *const in[4] = {x, wx, wh, bias};
    double rel = dnn__meas_lstm_dir_check(
        T, n, C, H, in, pass == DNN_PASS_BWD_DATA ? x : wx, ng, g, dy,
        pass == DNN_PASS_BWD_DATA ? 1.0 : 1.0 / sqrt(dnn__d(C)));
    if (!(rel <= *l2))
      *l2 = rel;
    *mx = *l2;
    break;
  }
  default:
    break;
  }
done:
  vbuf_free(&b);
  return st;
#undef NOMEM
#undef TRY
}

/* ------------------------------------------------------------------------ */
/* Timing                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct timed {
  ctx *c;
  const job *j;
} timed;

static dnn_status run_timed(void *ud, size_t runs, double *elapsed,
                            dnn_error *err) {
  timed *t = ud;
  dnn_status st = DNN_OK;
  double t0 = dnn_meas_now_s();
  for (size_t r = 0; r < runs; r++)
    DNN__MEAS_DNNL_TRY(
        dnnl_primitive_execute(t->j->prim, t->c->stream, t->j->n, t->j->args),
        "primitive_execute");
  DNN__MEAS_DNNL_TRY(dnnl_stream_wait(t->c->stream), "stream_wait");
  *elapsed = dnn_meas_now_s() - t0;
fail:
  return st;
}

/* Scales every time of `s` by `f` (a share of a fused kernel). */
static void stats_scale(dnn_meas_stats *s, double f) {
  s->min_s *= f;
  s->median_s *= f;
  s->max_s *= f;
  s->mean_s *= f;
  s->ci_lo_s *= f;
  s->ci_hi_s *= f;
}

/* Whether the model gives layer `i` a kernel for `pass`. */
static bool has_cost(const dnn_net *net, size_t i, dnn_pass pass, size_t batch,
                     dnn_dtype dtype) {
  dnn_cost cst;
  dnn_layer_cost(net, i, pass, batch, dtype, &cst);
  return cst.flops > 0 || cst.bytes_read + cst.bytes_written > 0;
}

/* ------------------------------------------------------------------------ */
/* The sweep                                                                */
/* ------------------------------------------------------------------------ */

static dnn_status verify_layer(ctx *c, const dnn_net *net, size_t i,
                               const dnn_meas_kernel_params *p,
                               double l2[DNN_PASS_COUNT],
                               double mx[DNN_PASS_COUNT], dnn_error *err) {
  unit u;
  dnn_status st = unit_build(c, net, i, p->verify_batch, &u, err);
  if (st)
    return st;
  const dnn_layer *l = dnn_net_layer(net, i);
  for (int pass = 0; pass < DNN_PASS_COUNT && st == DNN_OK; pass++) {
    if (!u.has[pass] ||
        !has_cost(net, i, (dnn_pass)pass, p->verify_batch, p->dtype))
      continue;
    st = verify(c, net, i, &u, (dnn_pass)pass, &l2[pass], &mx[pass], err);
    if (st == DNN_OK &&
        !(l2[pass] <= p->verify_rel_l2 && mx[pass] <= p->verify_max_rel))
      st = DNN_FAIL(err, DNN_EVERIFY,
                    "oneDNN %s of layer '%s' (%s) fails verification against "
                    "the C reference: relative L2 error %.3g (limit %.3g), "
                    "max-norm error %.3g (limit %.3g); refusing to calibrate "
                    "from it",
                    dnn_pass_name((dnn_pass)pass), l->name,
                    dnn_layer_kind_name(l->kind), l2[pass], p->verify_rel_l2,
                    mx[pass], p->verify_max_rel);
  }
  unit_free(&u);
  return st;
}

dnn_status dnn_meas_cpu_kernels(const dnn_net *net,
                                const dnn_meas_kernel_params *p,
                                dnn_error *err) {
  dnn_status st = dnn__meas_kernel_params_check(p, err);
  if (st)
    return st;
  ctx c;
  if ((st = ctx_open(&c, p->dtype, err))) {
    ctx_close(&c);
    return st;
  }
  int prev_threads = dnn__meas_threads(p->threads);
  size_t nl = dnn_net_layer_count(net);
  size_t total = nl * p->n_batches, done = 0;
  for (size_t i = 0; i < nl && st == DNN_OK; i++) {
    const dnn_layer *l = dnn_net_layer(net, i);
    double l2[DNN_PASS_COUNT], mx[DNN_PASS_COUNT];
    for (int k = 0; k < DNN_PASS_COUNT; k++)
      l2[k] = mx[k] = NAN;
    if (p->progress) {
      char label[96];
      snprintf(label, sizeof label, "%s (%s)", l->name,
               dnn_layer_kind_name(l->kind));
      if (p->progress(p->progress_ud, done, total, label)) {
        st = DNN_FAIL(err, DNN_EINTERRUPTED, "measurement interrupted");
        break;
      }
    }
    /* Skip the whole layer when every row of it is already measured. */
    bool all_done = p->done != NULL;
    for (size_t bi = 0; all_done && bi < p->n_batches; bi++)
      for (int pass = 0; pass < DNN_PASS_COUNT; pass++) {
        dnn_meas_kernel_row r;
        dnn_conv_algo algo =
            l->kind == DNN_LAYER_CONV2D ? DNN_CONV_DIRECT : DNN_CONV_ALGO_COUNT;
        dnn__meas_row_init(&r, "onednn", net, i, (dnn_pass)pass, algo,
                           p->batches[bi], p->dtype);
        if ((r.flops > 0 || r.bytes > 0) && !dnn__meas_row_done(p, &r))
          all_done = false;
      }
    if (all_done) {
      done += p->n_batches;
      continue;
    }
    if (p->verify) {
      st = verify_layer(&c, net, i, p, l2, mx, err);
      if (st == DNN_EUNSUPPORTED) {
        st = DNN_OK;
        done += p->n_batches;
        continue;
      }
      if (st)
        break;
    }
    for (size_t bi = 0; bi < p->n_batches && st == DNN_OK; bi++) {
      size_t batch = p->batches[bi];
      unit u;
      st = unit_build(&c, net, i, batch, &u, err);
      done++;
      if (st == DNN_EUNSUPPORTED) {
        st = DNN_OK;
        continue;
      }
      if (st)
        break;
      dnn_meas_stats fused;
      bool fused_done = false;
      for (int pass = 0; pass < DNN_PASS_COUNT && st == DNN_OK; pass++) {
        if (!u.has[pass])
          continue;
        dnn_meas_kernel_row r;
        dnn_conv_algo algo =
            l->kind == DNN_LAYER_CONV2D ? DNN_CONV_DIRECT : DNN_CONV_ALGO_COUNT;
        dnn__meas_row_init(&r, "onednn", net, i, (dnn_pass)pass, algo, batch,
                           p->dtype);
        if (!(r.flops > 0 || r.bytes > 0) || dnn__meas_row_done(p, &r))
          continue;
        const job *j = unit_job(&u, (dnn_pass)pass);
        if (pass != DNN_PASS_FWD && (st = job_run(&c, &u.fwd, err)))
          break; /* the backward reads what the forward saved */
        if (u.fused_bwd && pass != DNN_PASS_FWD) {
          if (!fused_done) {
            timed t = {&c, j};
            if ((st = dnn_meas_repeat_run(&p->repeat, run_timed, &t, &fused,
                                          err)))
              break;
            fused_done = true;
          }
          r.t = fused;
          stats_scale(&r.t, dnn__meas_bwd_share(net, i, batch, p->dtype,
                                                (dnn_pass)pass));
        } else {
          timed t = {&c, j};
          if ((st = dnn_meas_repeat_run(&p->repeat, run_timed, &t, &r.t, err)))
            break;
        }
        if (!(r.t.median_s > 0))
          continue; /* a zero share of a fused kernel */
        r.workspace_bytes = j->scratch_bytes;
        r.verify_rel_l2 = l2[pass];
        r.verify_max_rel = mx[pass];
        if (p->on_row)
          st = p->on_row(p->row_ud, &r, err);
      }
      unit_free(&u);
    }
  }
  if (st == DNN_OK && p->progress)
    p->progress(p->progress_ud, total, total, "done");
  dnn__meas_threads_restore(prev_threads);
  ctx_close(&c);
  return st;
}

/* ------------------------------------------------------------------------ */
/* Peak rates                                                               */
/* ------------------------------------------------------------------------ */

typedef struct gemm_ud {
  size_t n;
  const float *a, *b;
  float *c;
} gemm_ud;

static dnn_status run_sgemm(void *ud, size_t runs, double *elapsed,
                            dnn_error *err) {
  gemm_ud *g = ud;
  int64_t n = (int64_t)g->n;
  double t0 = dnn_meas_now_s();
  for (size_t r = 0; r < runs; r++)
    if (dnnl_sgemm('N', 'N', n, n, n, 1.0f, g->a, n, g->b, n, 0.0f, g->c, n) !=
        dnnl_success)
      return DNN_FAIL(err, DNN_ETOOLFAIL, "oneDNN sgemm failed");
  *elapsed = dnn_meas_now_s() - t0;
  return DNN_OK;
}

/* Median time of a job, or of sgemm when `j` is NULL. */
static dnn_status time_job(ctx *c, const job *j, gemm_ud *g, bool quick,
                           double *median, dnn_error *err) {
  dnn_meas_repeat_params rp =
      quick ? dnn_meas_repeat_quick_params() : dnn_meas_repeat_default_params();
  dnn_meas_stats s;
  timed t = {c, j};
  dnn_status st = j ? dnn_meas_repeat_run(&rp, run_timed, &t, &s, err)
                    : dnn_meas_repeat_run(&rp, run_sgemm, g, &s, err);
  *median = s.median_s;
  return st;
}

static const char *isa_name(dnnl_cpu_isa_t isa) {
  switch (isa) {
  case dnnl_cpu_isa_sse41:
    return "sse41";
  case dnnl_cpu_isa_avx:
    return "avx";
  case dnnl_cpu_isa_avx2:
    return "avx2";
  case dnnl_cpu_isa_avx512_core:
    return "avx512_core";
  case dnnl_cpu_isa_avx512_core_vnni:
    return "avx512_core_vnni";
  case dnnl_cpu_isa_avx512_core_bf16:
    return "avx512_core_bf16";
  case dnnl_cpu_isa_avx512_core_amx:
    return "avx512_core_amx";
  case dnnl_cpu_isa_avx2_vnni:
    return "avx2_vnni";
  default:
    return "other";
  }
}

dnn_status dnn_meas_cpu_peaks(bool quick, size_t threads, dnn_meas_peaks *out,
                              dnn_error *err) {
  memset(out, 0, sizeof *out);
  int prev_threads = dnn__meas_threads(threads);
  ctx c;
  dnn_status st = ctx_open(&c, DNN_DTYPE_FP32, err);
  job j;
  memset(&j, 0, sizeof j);
  float *a = NULL, *b = NULL, *cm = NULL;
  if (st)
    goto fail;
  dnn_meas_sysinfo si;
  dnn_meas_sysinfo_get(&si);
  /* OpenMP's current thread count (0 without OpenMP: all CPUs). */
  int omp_threads = dnn__meas_threads(0);
  size_t used = omp_threads > 0 ? (size_t)omp_threads : si.cpus;
  snprintf(out->device, sizeof out->device, "%s (%zu of %zu logical CPUs)",
           si.cpu, used < si.cpus ? used : si.cpus, si.cpus);
  const dnnl_version_t *v = dnnl_version();
  snprintf(out->library, sizeof out->library, "oneDNN %d.%d.%d", v->major,
           v->minor, v->patch);
  dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
  snprintf(out->isa, sizeof out->isa, "%s", isa_name(isa));
  out->mem_capacity_bytes = si.mem_bytes;

  /* fp32 GEMM. */
  size_t n = quick ? 512 : 1536;
  a = dnn_malloc(n * n * sizeof *a);
  b = dnn_malloc(n * n * sizeof *b);
  cm = dnn_malloc(n * n * sizeof *cm);
  if (!a || !b || !cm) {
    st = DNN_FAIL(err, DNN_ENOMEM, "out of memory for the GEMM benchmark");
    goto fail;
  }
  dnn__meas_fill(a, n * n, 1);
  dnn__meas_fill(b, n * n, 2);
  gemm_ud g = {n, a, b, cm};
  double t = 0;
  if ((st = time_job(&c, NULL, &g, quick, &t, err)))
    goto fail;
  out->flops[DNN_DTYPE_FP32] = 2.0 * dnn__d(n) * dnn__d(n) * dnn__d(n) / t;

  /* oneDNN's own kernels may beat sgemm: a matmul and a convolution
   * (the peak is the best any large kernel reaches). */
  {
    int64_t d[2] = {(int64_t)n, (int64_t)n};
    dnnl_memory_desc_t f32 = dnn__meas_md(2, d, dnnl_f32, ANY);
    dnnl_matmul_desc_t md;
    if (dnnl_matmul_desc_init(&md, &f32, &f32, NULL, &f32) == dnnl_success &&
        job_make(&c, &j, &md, NULL, NULL, 0, err) == DNN_OK) {
      if ((st = time_job(&c, &j, NULL, quick, &t, err)))
        goto fail;
      double r = 2.0 * dnn__d(n) * dnn__d(n) * dnn__d(n) / t;
      if (r > out->flops[DNN_DTYPE_FP32])
        out->flops[DNN_DTYPE_FP32] = r;
    }
    job_free(&j);
    int64_t ch = quick ? 128 : 256, hw = quick ? 16 : 32, nb = quick ? 4 : 8;
    int64_t src[4] = {nb, ch, hw, hw}, w[4] = {ch, ch, 3, 3};
    dnnl_memory_desc_t smd = dnn__meas_md(4, src, dnnl_f32, ANY);
    dnnl_memory_desc_t wmd = dnn__meas_md(4, w, dnnl_f32, ANY);
    dnnl_dims_t one = {1, 1}, pad = {1, 1};
    dnnl_convolution_desc_t cd;
    if (dnnl_convolution_forward_desc_init(
            &cd, dnnl_forward_inference, dnnl_convolution_direct, &smd, &wmd,
            NULL, &smd, one, pad, pad) == dnnl_success &&
        job_make(&c, &j, &cd, NULL, NULL, 0, err) == DNN_OK) {
      if ((st = time_job(&c, &j, NULL, quick, &t, err)))
        goto fail;
      double r = 2.0 * (double)(nb * ch * ch * 9 * hw * hw) / t;
      if (r > out->flops[DNN_DTYPE_FP32])
        out->flops[DNN_DTYPE_FP32] = r;
    }
    job_free(&j);
  }

  /* bf16 matmul where the CPU has bf16 arithmetic. */
  if (isa == dnnl_cpu_isa_avx512_core_bf16 ||
      isa == dnnl_cpu_isa_avx512_core_amx) {
    int64_t d[2] = {(int64_t)n, (int64_t)n};
    dnnl_memory_desc_t s16 = dnn__meas_md(2, d, dnnl_bf16, ANY);
    dnnl_memory_desc_t d32 = dnn__meas_md(2, d, dnnl_f32, ANY);
    dnnl_matmul_desc_t md;
    if (dnnl_matmul_desc_init(&md, &s16, &s16, NULL, &d32) == dnnl_success &&
        job_make(&c, &j, &md, NULL, NULL, 0, err) == DNN_OK) {
      if ((st = time_job(&c, &j, NULL, quick, &t, err)))
        goto fail;
      out->flops[DNN_DTYPE_BF16] = 2.0 * dnn__d(n) * dnn__d(n) * dnn__d(n) / t;
    }
    job_free(&j);
  }

  /* Bandwidth: out-of-place y = x (eltwise linear) on a large vector. */
  {
    int64_t d[1] = {(int64_t)(quick ? 8 : 32) * 1024 * 1024};
    dnnl_memory_desc_t md = dnn__meas_md(1, d, dnnl_f32, dnnl_a);
    dnnl_eltwise_desc_t ed;
    DNN__MEAS_DNNL_TRY(
        dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_inference,
                                       dnnl_eltwise_linear, &md, 1, 0),
        "eltwise_forward_desc_init");
    if ((st = job_make(&c, &j, &ed, NULL, NULL, 0, err)))
      goto fail;
    if ((st = time_job(&c, &j, NULL, quick, &t, err)))
      goto fail;
    out->mem_bandwidth_Bps = 2.0 * (double)d[0] * 4 / t;
    job_free(&j);
  }
  /* Overhead of a primitive with almost no work. */
  {
    int64_t d[1] = {16};
    dnnl_memory_desc_t md = dnn__meas_md(1, d, dnnl_f32, dnnl_a);
    dnnl_eltwise_desc_t ed;
    DNN__MEAS_DNNL_TRY(
        dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_inference,
                                       dnnl_eltwise_relu, &md, 0, 0),
        "eltwise_forward_desc_init");
    if ((st = job_make(&c, &j, &ed, NULL, NULL, 0, err)))
      goto fail;
    if ((st = time_job(&c, &j, NULL, quick, &t, err)))
      goto fail;
    out->launch_overhead_s = t;
  }
fail:
  if (st == DNN_EUNSUPPORTED && err && err->msg[0] == '\0')
    st = DNN_FAIL(err, DNN_ETOOLFAIL,
                  "oneDNN has no primitive for a peak "
                  "benchmark");
  job_free(&j);
  dnn_free(a);
  dnn_free(b);
  dnn_free(cm);
  ctx_close(&c);
  dnn__meas_threads_restore(prev_threads);
  return st;
}

#endif /* DNNSIM_HAVE_DNNL */
