/*
 * oneDNN helpers shared by dnnl.c and exec_dnnl.c (dnnl_util.h): memory
 * descriptors, batch dims, activation kinds, convolution and pooling
 * geometry, and the OpenMP thread count.
 *
 * Invariant: pure conversions; no oneDNN object is created here. The
 * right padding of a window is the one that makes the last output's window
 * end at the padded input's edge: (out - 1) * stride + (kernel - 1) *
 * dilation + 1 - in - pad_left (oneDNN's convention).
 */
#define _POSIX_C_SOURCE 200809L
#include "dnnl_util.h"

#include <string.h>

#if DNNSIM_HAVE_OMP && DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_OMP
#include <omp.h>
#define HAVE_OMP_THREADS 1
#else
#define HAVE_OMP_THREADS 0
#endif

dnn_status dnn__meas_dnnl_open(dnnl_engine_t *eng, dnnl_stream_t *stream,
                               dnnl_primitive_attr_t *attr, dnn_error *err) {
  dnn_status st = DNN_OK;
  DNN__MEAS_DNNL_TRY(dnnl_engine_create(eng, dnnl_cpu, 0), "engine_create");
  DNN__MEAS_DNNL_TRY(
      dnnl_stream_create(stream, *eng, dnnl_stream_default_flags),
      "stream_create");
  DNN__MEAS_DNNL_TRY(dnnl_primitive_attr_create(attr), "attr_create");
  DNN__MEAS_DNNL_TRY(
      dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user),
      "set_scratchpad_mode");
fail:
  return st;
}

dnnl_memory_desc_t dnn__meas_md(int nd, const int64_t *dims,
                                dnnl_data_type_t dt, dnnl_format_tag_t tag) {
  dnnl_memory_desc_t md;
  memset(&md, 0, sizeof md);
  dnnl_dims_t d;
  for (int i = 0; i < nd; i++)
    d[i] = dims[i];
  if (dnnl_memory_desc_init_by_tag(&md, nd, d, dt, tag) != dnnl_success)
    memset(&md, 0, sizeof md);
  return md;
}

dnnl_format_tag_t dnn__meas_plain_tag(int nd) {
  static const dnnl_format_tag_t tags[] = {
      dnnl_format_tag_undef, dnnl_a, dnnl_ab, dnnl_abc, dnnl_abcd, dnnl_abcde};
  return nd >= 1 && nd <= 5 ? tags[nd] : 0;
}

dnnl_memory_desc_t dnn__meas_md_plain(const dnnl_memory_desc_t *md) {
  int nd = md->ndims;
  return dnn__meas_md(nd, md->dims, dnnl_f32, dnn__meas_plain_tag(nd));
}

int dnn__meas_batch_dims(const dnn_shape *s, size_t batch, int64_t *d) {
  d[0] = (int64_t)batch;
  for (size_t k = 0; k < s->rank; k++)
    d[k + 1] = (int64_t)s->dim[k];
  return (int)s->rank + 1;
}

dnnl_alg_kind_t dnn__meas_act_alg(dnn_act a) {
  switch (a) {
  case DNN_ACT_GELU:
    return dnnl_eltwise_gelu_tanh;
  case DNN_ACT_TANH:
    return dnnl_eltwise_tanh;
  case DNN_ACT_SIGMOID:
    return dnnl_eltwise_logistic;
  default:
    return dnnl_eltwise_relu;
  }
}

/* The right padding of one spatial dimension (see the file comment). */
static int64_t pad_right(size_t out, size_t stride, size_t kernel,
                         size_t dilation, size_t in, size_t pad_left) {
  return ((int64_t)out - 1) * (int64_t)stride +
         ((int64_t)kernel - 1) * (int64_t)dilation + 1 - (int64_t)in -
         (int64_t)pad_left;
}

void dnn__meas_conv_geom_of(const dnn__conv_shape *s, dnn__meas_conv_geom *g) {
  memset(g, 0, sizeof *g);
  int64_t n = (int64_t)s->n, ic = (int64_t)s->ic, oc = (int64_t)s->oc;
  int64_t kh = (int64_t)s->kh, kw = (int64_t)s->kw;
  g->groups = (int64_t)s->groups;
  g->src[0] = g->dst[0] = n;
  g->src[1] = ic;
  g->src[2] = (int64_t)s->ih;
  g->src[3] = (int64_t)s->iw;
  g->dst[1] = oc;
  g->dst[2] = (int64_t)s->oh;
  g->dst[3] = (int64_t)s->ow;
  g->w5[0] = g->groups;
  g->w5[1] = oc / g->groups;
  g->w5[2] = ic / g->groups;
  g->w5[3] = g->w4[2] = kh;
  g->w5[4] = g->w4[3] = kw;
  g->w4[0] = g->bias[0] = oc;
  g->w4[1] = ic;
  g->strides[0] = (int64_t)s->sh;
  g->strides[1] = (int64_t)s->sw;
  g->dil[0] = (int64_t)s->dh - 1;
  g->dil[1] = (int64_t)s->dw - 1;
  g->pl[0] = (int64_t)s->ph;
  g->pl[1] = (int64_t)s->pw;
  g->pr[0] = pad_right(s->oh, s->sh, s->kh, s->dh, s->ih, s->ph);
  g->pr[1] = pad_right(s->ow, s->sw, s->kw, s->dw, s->iw, s->pw);
}

void dnn__meas_fc_geom_of(const dnn_layer *l, size_t batch,
                          dnn__meas_fc_geom *g) {
  memset(g, 0, sizeof *g);
  int64_t out = (int64_t)l->p.fc.out_features;
  if (l->in.rank == 3) {
    g->nd = 4;
    g->src[0] = (int64_t)batch;
    g->w[0] = out;
    for (int k = 0; k < 3; k++)
      g->src[k + 1] = g->w[k + 1] = (int64_t)l->in.dim[k];
  } else {
    g->nd = 2;
    int64_t feat = (int64_t)l->in.dim[l->in.rank - 1];
    g->src[0] = (int64_t)(batch * (l->in.rank == 2 ? l->in.dim[0] : 1));
    g->src[1] = feat;
    g->w[0] = out;
    g->w[1] = feat;
  }
  g->bias[0] = out;
  g->dst[0] = g->src[0];
  g->dst[1] = out;
}

void dnn__meas_pool_geom_of(const dnn__pool_shape *s, dnn__meas_pool_geom *g) {
  memset(g, 0, sizeof *g);
  g->src[0] = g->dst[0] = (int64_t)s->n;
  g->src[1] = g->dst[1] = (int64_t)s->c;
  g->src[2] = (int64_t)s->ih;
  g->src[3] = (int64_t)s->iw;
  g->dst[2] = (int64_t)s->oh;
  g->dst[3] = (int64_t)s->ow;
  g->strides[0] = (int64_t)s->sh;
  g->strides[1] = (int64_t)s->sw;
  g->kernel[0] = (int64_t)s->kh;
  g->kernel[1] = (int64_t)s->kw;
  g->pl[0] = (int64_t)s->ph;
  g->pl[1] = (int64_t)s->pw;
  g->pr[0] = pad_right(s->oh, s->sh, s->kh, 1, s->ih, s->ph);
  g->pr[1] = pad_right(s->ow, s->sw, s->kw, 1, s->iw, s->pw);
  g->alg = s->max ? dnnl_pooling_max : dnnl_pooling_avg_exclude_padding;
}

int dnn__meas_threads(size_t threads) {
#if HAVE_OMP_THREADS
  int prev = omp_get_max_threads();
  if (threads > 0)
    omp_set_num_threads((int)threads);
  return prev;
#else
  (void)threads;
  return 0;
#endif
}

void dnn__meas_threads_restore(int prev) {
#if HAVE_OMP_THREADS
  if (prev > 0)
    omp_set_num_threads(prev);
#else
  (void)prev;
#endif
}
