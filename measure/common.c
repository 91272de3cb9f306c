/*
 * Helpers shared by the kernel back ends (oneDNN, cuDNN): verification
 * metrics (Deep500's L2 and max-norm errors, REFERENCE.md §5.2), test
 * data, the perturbation hook that lets tests see a failing verification,
 * the directional-derivative check of LSTM gradients,
 * and the mapping from a network layer to a measured row (identity,
 * signature and the model's FLOPs and bytes for the pass and algorithm).
 *
 * Invariant: rows carry the model's cost of exactly the kernel that was
 * timed (for a convolution, the cost of the algorithm that ran), so the
 * roofline fit in calibrate/ compares like with like.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Verification                                                             */
/* ------------------------------------------------------------------------ */

void dnn__meas_compare(const float *got, const double *ref, size_t n,
                       double *rel_l2, double *max_rel) {
  double d2 = 0, r2 = 0, dmax = 0, rmax = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)got[i] - ref[i];
    d2 += d * d;
    r2 += ref[i] * ref[i];
    if (fabs(d) > dmax || isnan(d))
      dmax = isnan(d) ? (double)INFINITY : fabs(d);
    if (fabs(ref[i]) > rmax)
      rmax = fabs(ref[i]);
  }
  *rel_l2 = r2 > 0 ? sqrt(d2 / r2) : sqrt(d2);
  *max_rel = rmax > 0 ? dmax / rmax : dmax;
  if (isnan(*rel_l2))
    *rel_l2 = INFINITY;
}

/* Factors set by dnn_meas_verify_perturb; 0 means "not set" (factor 1). */
static double perturb[DNN_LAYER_KIND_COUNT][DNN_PASS_COUNT];

void dnn_meas_verify_perturb(dnn_layer_kind kind, dnn_pass pass,
                             double factor) {
  if ((unsigned)kind < DNN_LAYER_KIND_COUNT && (unsigned)pass < DNN_PASS_COUNT)
    perturb[kind][pass] = factor == 1 ? 0 : factor;
}

double dnn__meas_perturb(dnn_layer_kind kind, dnn_pass pass) {
  double f = perturb[kind][pass];
  return f == 0 ? 1 : f;
}

void dnn__meas_fill(float *x, size_t n, unsigned long long seed) {
  for (size_t i = 0; i < n; i++) {
    /* splitmix64 (Steele, Lea & Flood, OOPSLA 2014) of seed + i. */
    unsigned long long z = seed + 0x9e3779b97f4a7c15ULL * (i + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    x[i] = (float)((double)(z >> 11) * 0x1.0p-53 * 2.0 - 1.0);
  }
}

void dnn__meas_lstm_scale_weights(size_t c, size_t h, float *wx, float *wh) {
  float sx = (float)fmin(0.5, 1.0 / sqrt(dnn__d(c)));
  float sh = (float)fmin(0.5, 1.0 / sqrt(dnn__d(h)));
  for (size_t k = 0; k < c * 4 * h; k++)
    wx[k] *= sx;
  for (size_t k = 0; k < h * 4 * h; k++)
    wh[k] *= sh;
}

/* L = sum(y * r) of the reference LSTM. */
static double lstm_loss(size_t T, size_t n, size_t c, size_t h,
                        float *const in[4], const float *r, double *scratch,
                        double *y) {
  dnn__ref_lstm_fwd(T, n, c, h, in[0], in[1], in[2], in[3], scratch, y);
  double s = 0;
  for (size_t k = 0; k < T * n * h; k++)
    s += y[k] * (double)r[k];
  return s;
}

/* `step` scales e so that a step moves each gate's pre-activation by about
 * 2e-2 whatever the fan-in: a fixed step on a 200-wide weight matrix moves
 * them by ~0.3, far outside the range where central differences are
 * accurate. */
double dnn__meas_lstm_dir_check(size_t T, size_t n, size_t c, size_t h,
                                float *const in[4], float *p, size_t np,
                                const float *g, const float *r, double step) {
  float *v = dnn_malloc((np ? np : 1) * sizeof *v);
  float *save = dnn_malloc((np ? np : 1) * sizeof *save);
  size_t ny = T * n * h;
  double *y = dnn_malloc((ny ? ny : 1) * sizeof *y);
  double *scratch = dnn_malloc((h ? 6 * h : 1) * sizeof *scratch);
  double rel = INFINITY;
  if (v == NULL || save == NULL || y == NULL || scratch == NULL)
    goto done;
  dnn__meas_fill(v, np, 0xd1ec7ULL);
  memcpy(save, p, np * sizeof *p);
  /* Central differences at steps e and e/2, combined by Richardson
   * extrapolation: the truncation error falls from O(e^2) to O(e^4). */
  double d[2];
  for (int q = 0; q < 2; q++) {
    double e = (q == 0 ? 2e-2 : 1e-2) * step, ep = 0, em = 0;
    for (size_t k = 0; k < np; k++) {
      p[k] = (float)((double)save[k] + e * (double)v[k]);
      ep += ((double)p[k] - (double)save[k]) * (double)v[k];
    }
    double lp = lstm_loss(T, n, c, h, in, r, scratch, y);
    for (size_t k = 0; k < np; k++) {
      p[k] = (float)((double)save[k] - e * (double)v[k]);
      em += ((double)save[k] - (double)p[k]) * (double)v[k];
    }
    double lm = lstm_loss(T, n, c, h, in, r, scratch, y);
    /* The step actually taken along v (float rounding of p +- e v). */
    double vv = 0;
    for (size_t k = 0; k < np; k++)
      vv += (double)v[k] * (double)v[k];
    d[q] = (lp - lm) / ((ep + em) / vv);
  }
  memcpy(p, save, np * sizeof *p);
  double num = (4 * d[1] - d[0]) / 3, dot = 0;
  for (size_t k = 0; k < np; k++)
    dot += (double)v[k] * (double)g[k];
  rel = fabs(num - dot) / (fabs(num) > 1e-12 ? fabs(num) : 1e-12);
done:
  dnn_free(v);
  dnn_free(save);
  dnn_free(y);
  dnn_free(scratch);
  return rel;
}

/* ------------------------------------------------------------------------ */
/* Parameters                                                               */
/* ------------------------------------------------------------------------ */

dnn_meas_kernel_params dnn_meas_kernel_default_params(void) {
  static const size_t batches[] = {1, 8};
  dnn_meas_kernel_params p;
  memset(&p, 0, sizeof p);
  p.batches = batches;
  p.n_batches = DNN_ARRAY_LEN(batches);
  p.dtype = DNN_DTYPE_FP32;
  p.repeat = dnn_meas_repeat_default_params();
  p.verify = true;
  p.verify_rel_l2 = 1e-4;
  p.verify_max_rel = 1e-3;
  p.verify_batch = 1;
  p.all_algos = true;
  p.workspace_limit_bytes = 1024.0 * 1024 * 1024;
  return p;
}

dnn_status dnn__meas_kernel_params_check(const dnn_meas_kernel_params *p,
                                         dnn_error *err) {
  if (p->batches == NULL || p->n_batches == 0)
    return DNN_FAIL(err, DNN_EINVAL, "no batch size to measure");
  for (size_t i = 0; i < p->n_batches; i++)
    if (p->batches[i] < 1)
      return DNN_FAIL(err, DNN_EINVAL, "batch sizes must be >= 1");
  if ((unsigned)p->dtype >= DNN_DTYPE_COUNT)
    return DNN_FAIL(err, DNN_EINVAL, "bad dtype");
  if (p->verify && p->verify_batch < 1)
    return DNN_FAIL(err, DNN_EINVAL, "verify_batch must be >= 1");
  if (!(p->verify_rel_l2 > 0) || !(p->verify_max_rel > 0))
    return DNN_FAIL(err, DNN_EINVAL, "verification tolerances must be > 0");
  if (!(p->workspace_limit_bytes >= 0))
    return DNN_FAIL(err, DNN_EINVAL, "workspace limit must be >= 0");
  return dnn_meas_repeat_params_check(&p->repeat, err);
}

/* ------------------------------------------------------------------------ */
/* Rows                                                                     */
/* ------------------------------------------------------------------------ */

/* Copies `s` into a CSV-safe field (commas and control characters become
 * '_'; an empty name becomes "-"). */
static void safe_copy(char *dst, size_t n, const char *s) {
  snprintf(dst, n, "%s", s && s[0] ? s : "-");
  for (char *c = dst; *c; c++)
    if ((unsigned char)*c < 0x20 || *c == ',' || *c == 0x7f)
      *c = '_';
}

void dnn__meas_row_init(dnn_meas_kernel_row *r, const char *backend,
                        const dnn_net *net, size_t i, dnn_pass pass,
                        dnn_conv_algo algo, size_t batch, dnn_dtype dtype) {
  memset(r, 0, sizeof *r);
  const dnn_layer *l = dnn_net_layer(net, i);
  safe_copy(r->backend, sizeof r->backend, backend);
  safe_copy(r->network, sizeof r->network, dnn_net_name(net));
  safe_copy(r->layer, sizeof r->layer, l->name);
  dnn_layer_signature(net, i, r->signature, sizeof r->signature);
  for (char *c = r->signature; *c; c++)
    if ((unsigned char)*c < 0x20 || *c == ',' || *c == 0x7f)
      *c = '_';
  r->kind = l->kind;
  r->pass = pass;
  r->algo = algo;
  r->dtype = dtype;
  r->batch = batch;
  if (l->kind == DNN_LAYER_CONV2D && (unsigned)algo < DNN_CONV_ALGO_COUNT) {
    dnn_conv_algo_cost c;
    dnn_conv_algo_cost_get(net, i, pass, algo, batch, dtype, &c);
    r->flops = c.flops;
    r->bytes = c.bytes_read + c.bytes_written;
  } else {
    dnn_cost c;
    dnn_layer_cost(net, i, pass, batch, dtype, &c);
    r->flops = c.flops;
    r->bytes = c.bytes_read + c.bytes_written;
  }
  r->verify_rel_l2 = NAN;
  r->verify_max_rel = NAN;
}

bool dnn__meas_row_done(const dnn_meas_kernel_params *p,
                        const dnn_meas_kernel_row *r) {
  return p->done &&
         dnn_meas_kernel_table_find(p->done, r->network, r->layer, r->pass,
                                    r->algo, r->dtype, r->batch) != NULL;
}

/* ------------------------------------------------------------------------ */
/* Shapes                                                                   */
/* ------------------------------------------------------------------------ */

void dnn__meas_conv_shape(const dnn_net *net, size_t i, size_t batch,
                          dnn__conv_shape *s) {
  const dnn_layer *l = dnn_net_layer(net, i);
  const dnn_conv_params *c = &l->p.conv;
  memset(s, 0, sizeof *s);
  s->n = batch;
  s->ic = l->in.dim[0];
  s->ih = l->in.dim[1];
  s->iw = l->in.dim[2];
  s->oc = l->out.dim[0];
  s->oh = l->out.dim[1];
  s->ow = l->out.dim[2];
  s->kh = c->kernel_h;
  s->kw = c->kernel_w;
  s->sh = c->stride_h ? c->stride_h : 1;
  s->sw = c->stride_w ? c->stride_w : 1;
  s->ph = c->pad_h;
  s->pw = c->pad_w;
  s->dh = c->dilation_h ? c->dilation_h : 1;
  s->dw = c->dilation_w ? c->dilation_w : 1;
  s->groups = c->groups ? c->groups : 1;
}

/* Window of adaptive pooling from `in` to `out` as one uniform window
 * (exact when out divides in, PyTorch's windows differ by one otherwise). */
static void adaptive(size_t in, size_t out, size_t *k, size_t *s) {
  if (out == 0)
    out = 1;
  *s = in / out ? in / out : 1;
  *k = in - (out - 1) * *s;
}

void dnn__meas_pool_shape(const dnn_net *net, size_t i, size_t batch,
                          dnn__pool_shape *s) {
  const dnn_layer *l = dnn_net_layer(net, i);
  const dnn_pool_params *p = &l->p.pool;
  memset(s, 0, sizeof *s);
  s->n = batch;
  s->c = l->in.dim[0];
  s->ih = l->in.dim[1];
  s->iw = l->in.dim[2];
  s->oh = l->out.dim[1];
  s->ow = l->out.dim[2];
  s->max = l->kind == DNN_LAYER_MAXPOOL;
  switch (l->kind) {
  case DNN_LAYER_GLOBAL_AVGPOOL:
    /* The model may flatten the output to (C); the kernel is 1x1 out. */
    s->oh = s->ow = 1;
    s->kh = s->ih;
    s->kw = s->iw;
    s->sh = s->sw = 1;
    break;
  case DNN_LAYER_ADAPTIVE_AVGPOOL:
    s->oh = p->out_h ? p->out_h : 1;
    s->ow = p->out_w ? p->out_w : 1;
    adaptive(s->ih, s->oh, &s->kh, &s->sh);
    adaptive(s->iw, s->ow, &s->kw, &s->sw);
    break;
  default:
    s->kh = p->kernel_h;
    s->kw = p->kernel_w;
    s->sh = p->stride_h ? p->stride_h : p->kernel_h;
    s->sw = p->stride_w ? p->stride_w : p->kernel_w;
    s->ph = p->pad_h;
    s->pw = p->pad_w;
  }
}

double dnn__meas_bwd_share(const dnn_net *net, size_t i, size_t batch,
                           dnn_dtype dtype, dnn_pass pass) {
  dnn_cost d, w;
  dnn_layer_cost(net, i, DNN_PASS_BWD_DATA, batch, dtype, &d);
  dnn_layer_cost(net, i, DNN_PASS_BWD_WEIGHTS, batch, dtype, &w);
  double a = d.flops, b = w.flops;
  if (!(a + b > 0)) {
    a = d.bytes_read + d.bytes_written;
    b = w.bytes_read + w.bytes_written;
  }
  if (!(a + b > 0))
    return pass == DNN_PASS_BWD_DATA ? 1 : 0;
  return (pass == DNN_PASS_BWD_DATA ? a : b) / (a + b);
}
