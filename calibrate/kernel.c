/*
 * Kernel fits (include/dnnsim/calibrate.h): the roofline parameters of a
 * hardware profile from measured per-layer kernel times, and the error of
 * a profile against measurements.
 *
 * Model (hw.h; Williams, Waterman & Patterson, CACM 2009, with Hockney's
 * n_1/2 as the small-size correction):
 *   t = L + max((F + h_c) / (P e_c), B / (W m_c))
 * with L the launch overhead, P and W the (measured or datasheet) peak
 * rate and bandwidth, and per operation class c the compute efficiency e_c
 * (per algorithm for convolutions), memory efficiency m_c and n_1/2 h_c.
 *
 * Fit: non-linear least squares (GSL multifit_nlinear, trust region with
 * Levenberg-Marquardt steps, finite-difference Jacobian, which copes with
 * the kink of the max) of the relative residuals (t_model - t) / t, so a
 * 5 us ReLU counts as much as a 50 ms convolution. Every parameter is
 * fitted as a logarithm (positive without constraints) and gets a weak
 * prior residual w (theta - theta_0): a class whose kernels are all
 * memory-bound says nothing about e_c, and the prior keeps such a
 * parameter at its starting value instead of letting the solver wander.
 * Outliers (a measurement disturbed by other work on the machine, a
 * layer whose model FLOPs count padding the library skips) are
 * down-weighted by a few rounds of Huber re-weighting (k = 1.345 robust
 * sigmas).
 *
 * Peaks: the times determine only the products P e_c and W m_c. A
 * benchmark's peak (a large GEMM, a streaming copy) can be below what some
 * class reaches - a layer whose tensors stay in cache moves bytes faster
 * than DRAM streams them - so after the fit, when a class's rate exceeds
 * the peak, the profile's peak (of the calibrated dtype) or bandwidth
 * becomes that rate and every efficiency is re-expressed against it;
 * predictions do not change, and every efficiency stays in (0, 1].
 *
 * Invariant: the model evaluated here is hw.h's, term for term
 * (dnn_calib_roofline; the tests compare it with dnn_hw_kernel_time).
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_multifit_nlinear.h>
#include <gsl/gsl_vector.h>
#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* The model                                                                */
/* ------------------------------------------------------------------------ */

double dnn_calib_roofline(const dnn_hw_params *p, dnn_opclass cls,
                          dnn_conv_algo algo, dnn_dtype dtype, double flops,
                          double bytes) {
  if (!(flops > 0) && !(bytes > 0))
    return 0;
  double eff = cls == DNN_OP_CONV && (unsigned)algo < DNN_CONV_ALGO_COUNT
                   ? p->eff_conv_algo[algo]
                   : p->eff_compute[cls];
  double peak = p->peak_flops[dtype];
  if (!(peak > 0) || !(eff > 0))
    return INFINITY;
  double tc = flops > 0 ? (flops + p->half_flops[cls]) / (peak * eff) : 0;
  double tm = bytes / (p->mem_bandwidth_Bps * p->eff_memory[cls]);
  return p->launch_overhead_s + (tc > tm ? tc : tm);
}

/* ------------------------------------------------------------------------ */
/* The fit                                                                  */
/* ------------------------------------------------------------------------ */

/* An efficiency this close to 1 is reported as setting the peak. */
#define ROOF 0.99

/* Index of a parameter in theta, or -1 when it is not fitted. */
typedef struct layout {
  int L;
  int e[DNN_OPCLASS_COUNT];
  int m[DNN_OPCLASS_COUNT];
  int h[DNN_OPCLASS_COUNT];
  int a[DNN_CONV_ALGO_COUNT]; /* convolution algorithms */
  size_t np;
  double h_scale[DNN_OPCLASS_COUNT]; /* h = exp(theta) * h_scale */
} layout;

/* One row the fit uses. */
typedef struct pt {
  dnn_opclass cls;
  dnn_conv_algo algo; /* convolutions; else DNN_CONV_ALGO_COUNT */
  double flops, bytes, t;
} pt;

typedef struct problem {
  const pt *pts;
  size_t n;
  const layout *lay;
  dnn_hw_params base; /* peaks etc.; efficiencies overwritten per call */
  dnn_dtype dtype;
  const double *w;      /* sqrt of the Huber weight of each row */
  const double *theta0; /* prior */
  double prior_w;
} problem;

/* Writes the parameters of theta into q. */
static void unpack(const layout *lay, const double *th, dnn_hw_params *q) {
  if (lay->L >= 0)
    q->launch_overhead_s = exp(th[lay->L]);
  for (size_t c = 0; c < DNN_OPCLASS_COUNT; c++) {
    if (lay->e[c] >= 0)
      q->eff_compute[c] = exp(th[lay->e[c]]);
    if (lay->m[c] >= 0)
      q->eff_memory[c] = exp(th[lay->m[c]]);
    if (lay->h[c] >= 0)
      q->half_flops[c] = exp(th[lay->h[c]]) * lay->h_scale[c];
  }
  for (size_t a = 0; a < DNN_CONV_ALGO_COUNT; a++)
    if (lay->a[a] >= 0)
      q->eff_conv_algo[a] = exp(th[lay->a[a]]);
}

static int residuals(const gsl_vector *x, void *params, gsl_vector *f) {
  const problem *pb = params;
  dnn_hw_params q = pb->base;
  unpack(pb->lay, x->data, &q);
  for (size_t i = 0; i < pb->n; i++) {
    const pt *r = &pb->pts[i];
    double t =
        dnn_calib_roofline(&q, r->cls, r->algo, pb->dtype, r->flops, r->bytes);
    double res = (t - r->t) / r->t;
    gsl_vector_set(f, i, isfinite(res) ? pb->w[i] * res : 1e6);
  }
  for (size_t j = 0; j < pb->lay->np; j++)
    gsl_vector_set(f, pb->n + j,
                   pb->prior_w * (gsl_vector_get(x, j) - pb->theta0[j]));
  return GSL_SUCCESS;
}

/* Clamps x into [lo, hi]. */
static double clampd(double x, double lo, double hi) {
  return x < lo ? lo : x > hi ? hi : x;
}

/* Starting values: each efficiency at the best one any row achieved (the
 * kernel closest to the roof shows the class's ceiling), n_1/2 at a
 * percent of the class's median work, L at the base's or half the
 * smallest time. */
static void start(const problem *pb, layout *lay, double *th0) {
  const dnn_hw_params *b = &pb->base;
  double best_e[DNN_OPCLASS_COUNT] = {0}, best_m[DNN_OPCLASS_COUNT] = {0};
  double best_a[DNN_CONV_ALGO_COUNT] = {0};
  double tmin = INFINITY;
  for (size_t i = 0; i < pb->n; i++) {
    const pt *r = &pb->pts[i];
    double ec = r->flops / b->peak_flops[pb->dtype] / r->t;
    double em = r->bytes / b->mem_bandwidth_Bps / r->t;
    if (r->cls == DNN_OP_CONV && (unsigned)r->algo < DNN_CONV_ALGO_COUNT)
      best_a[r->algo] = ec > best_a[r->algo] ? ec : best_a[r->algo];
    best_e[r->cls] = ec > best_e[r->cls] ? ec : best_e[r->cls];
    best_m[r->cls] = em > best_m[r->cls] ? em : best_m[r->cls];
    tmin = r->t < tmin ? r->t : tmin;
  }
  if (lay->L >= 0)
    th0[lay->L] =
        log(b->launch_overhead_s > 0 ? b->launch_overhead_s : 0.5 * tmin);
  for (size_t c = 0; c < DNN_OPCLASS_COUNT; c++) {
    if (lay->e[c] >= 0)
      th0[lay->e[c]] = log(clampd(best_e[c], 1e-4, 1));
    if (lay->m[c] >= 0)
      th0[lay->m[c]] = log(clampd(best_m[c], 1e-4, 1));
    if (lay->h[c] >= 0)
      th0[lay->h[c]] = log(0.01);
  }
  for (size_t a = 0; a < DNN_CONV_ALGO_COUNT; a++)
    if (lay->a[a] >= 0)
      th0[lay->a[a]] = log(clampd(best_a[a], 1e-4, 1));
}

/* Which parameters the rows determine; the median work of each class
 * scales its n_1/2. */
static void plan(const pt *pts, size_t n, layout *lay, double *scratch) {
  memset(lay, 0, sizeof *lay);
  int np = 0;
  lay->L = np++;
  for (size_t c = 0; c < DNN_OPCLASS_COUNT; c++) {
    lay->e[c] = lay->m[c] = lay->h[c] = -1;
    size_t nf = 0, nb = 0;
    for (size_t i = 0; i < n; i++)
      if (pts[i].cls == (dnn_opclass)c) {
        if (pts[i].flops > 0)
          scratch[nf++] = pts[i].flops;
        if (pts[i].bytes > 0)
          nb++;
      }
    if (nb > 0)
      lay->m[c] = np++;
    if (nf > 0) {
      if (c != DNN_OP_CONV)
        lay->e[c] = np++;
      lay->h[c] = np++;
      lay->h_scale[c] = dnn__calib_median(scratch, nf, scratch + nf);
    }
  }
  for (size_t a = 0; a < DNN_CONV_ALGO_COUNT; a++) {
    lay->a[a] = -1;
    for (size_t i = 0; i < n; i++)
      if (pts[i].cls == DNN_OP_CONV && pts[i].algo == (dnn_conv_algo)a &&
          pts[i].flops > 0) {
        lay->a[a] = np++;
        break;
      }
  }
  lay->np = (size_t)np;
}

/* One solve from th (updated in place). */
static dnn_status solve(problem *pb, double *th, size_t *iters,
                        dnn_error *err) {
  size_t nres = pb->n + pb->lay->np, np = pb->lay->np;
  gsl_multifit_nlinear_fdf fdf;
  memset(&fdf, 0, sizeof fdf);
  fdf.f = residuals;
  fdf.df = NULL; /* finite differences */
  fdf.fvv = NULL;
  fdf.n = nres;
  fdf.p = np;
  fdf.params = pb;
  gsl_multifit_nlinear_parameters fp =
      gsl_multifit_nlinear_default_parameters();
  gsl_multifit_nlinear_workspace *w =
      gsl_multifit_nlinear_alloc(gsl_multifit_nlinear_trust, &fp, nres, np);
  if (w == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory for the kernel fit");
  gsl_vector_view x0 = gsl_vector_view_array(th, np);
  dnn_status st = DNN_OK;
  int s = gsl_multifit_nlinear_init(&x0.vector, &fdf, w);
  int info = 0;
  if (s == GSL_SUCCESS)
    s = gsl_multifit_nlinear_driver(200, 1e-10, 1e-10, 0, NULL, NULL, &info, w);
  /* Running out of iterations is not an error: the position is the best
   * found, and its residuals are reported. */
  if (s != GSL_SUCCESS && s != GSL_EMAXITER && s != GSL_ENOPROG) {
    st = dnn__calib_gsl_fail(err, s, "gsl_multifit_nlinear_driver");
  } else {
    gsl_vector *x = gsl_multifit_nlinear_position(w);
    for (size_t j = 0; j < np; j++)
      th[j] = gsl_vector_get(x, j);
    *iters = gsl_multifit_nlinear_niter(w);
  }
  gsl_multifit_nlinear_free(w);
  return st;
}

dnn_status dnn_calib_kernel_fit(const dnn_meas_kernel_table *t,
                                const dnn_hw_params *base, dnn_dtype dtype,
                                const dnn_calib_params *p, bool keep_table,
                                dnn_hw **out, dnn_calib_kernel_report *rep,
                                dnn_error *err) {
  *out = NULL;
  dnn__calib_gsl_init();
  dnn_calib_kernel_report local;
  if (rep == NULL)
    rep = &local;
  memset(rep, 0, sizeof *rep);
  dnn_status st = dnn_calib_params_check(p, err);
  if (st)
    return st;
  if ((st = dnn_hw_params_check(base, err)))
    return st;
  if (!(base->peak_flops[dtype] > 0))
    return DNN_FAIL(err, DNN_ERANGE,
                    "the base profile has no %s peak to fit against",
                    dnn_dtype_name(dtype));
  size_t nt = dnn_meas_kernel_table_count(t);
  pt *pts = dnn_calloc(nt + 1, sizeof *pts);
  double *buf = dnn_calloc(4 * (nt + 64) + 256, sizeof *buf);
  dnn_hw *hw = NULL;
  if (pts == NULL || buf == NULL) {
    st = DNN_FAIL(err, DNN_ENOMEM, "out of memory for the kernel fit");
    goto fail;
  }
  size_t n = 0;
  for (size_t i = 0; i < nt; i++) {
    const dnn_meas_kernel_row *r = dnn_meas_kernel_table_get(t, i);
    if (r->dtype != dtype || !(r->t.median_s > 0))
      continue;
    pt *q = &pts[n++];
    q->cls = dnn_layer_kind_opclass(r->kind);
    q->algo = q->cls == DNN_OP_CONV ? r->algo : DNN_CONV_ALGO_COUNT;
    if (q->cls == DNN_OP_CONV && (unsigned)q->algo >= DNN_CONV_ALGO_COUNT)
      q->algo = DNN_CONV_DIRECT;
    q->flops = r->flops;
    q->bytes = r->bytes;
    q->t = r->t.median_s;
  }
  if (n == 0) {
    st = DNN_FAIL(err, DNN_EINVAL, "no measured %s kernel to fit",
                  dnn_dtype_name(dtype));
    goto fail;
  }
  layout lay;
  plan(pts, n, &lay, buf);
  double *th = buf, *th0 = buf + lay.np, *w = buf + 2 * lay.np;
  double *res = w + n, *scratch = res + n;
  dnn_hw_params b0 = *base;
  problem pb = {pts, n, &lay, b0, dtype, w, th0, p->prior_weight};
  start(&pb, &lay, th0);
  memcpy(th, th0, lay.np * sizeof *th);
  for (size_t i = 0; i < n; i++)
    w[i] = 1;
  for (size_t round = 0; round <= p->huber_rounds; round++) {
    if ((st = solve(&pb, th, &rep->iterations, err)))
      goto fail;
    if (round == p->huber_rounds)
      break;
    /* Huber weights from the robust spread of the residuals. */
    dnn_hw_params q = b0;
    unpack(&lay, th, &q);
    for (size_t i = 0; i < n; i++) {
      double m = dnn_calib_roofline(&q, pts[i].cls, pts[i].algo, dtype,
                                    pts[i].flops, pts[i].bytes);
      res[i] = fabs((m - pts[i].t) / pts[i].t);
    }
    double sigma = 1.4826 * dnn__calib_median(res, n, scratch);
    double k = 1.345 * (sigma > 1e-6 ? sigma : 1e-6);
    for (size_t i = 0; i < n; i++)
      w[i] = res[i] <= k ? 1 : sqrt(k / res[i]);
  }

  /* The profile: base with the fitted parameters. Only the products
   * P e_c and W m_c are determined by the times; when a class's fitted
   * rate exceeds the benchmark's peak (or bandwidth), the peak becomes
   * that rate and every efficiency is re-expressed against it, which
   * leaves every predicted time unchanged. */
  dnn_hw_params q = b0;
  unpack(&lay, th, &q);
  double emax = 0, mmax = 0;
  for (size_t c = 0; c < DNN_OPCLASS_COUNT; c++) {
    if (lay.e[c] >= 0 && q.eff_compute[c] > emax)
      emax = q.eff_compute[c];
    if (lay.m[c] >= 0 && q.eff_memory[c] > mmax)
      mmax = q.eff_memory[c];
  }
  for (size_t a = 0; a < DNN_CONV_ALGO_COUNT; a++)
    if (lay.a[a] >= 0 && q.eff_conv_algo[a] > emax)
      emax = q.eff_conv_algo[a];
  if (emax > 1) {
    q.peak_flops[dtype] *= emax;
    rep->peak_raised_flops = q.peak_flops[dtype];
    for (size_t c = 0; c < DNN_OPCLASS_COUNT; c++)
      if (lay.e[c] >= 0)
        q.eff_compute[c] /= emax;
    for (size_t a = 0; a < DNN_CONV_ALGO_COUNT; a++)
      if (lay.a[a] >= 0)
        q.eff_conv_algo[a] /= emax;
  }
  if (mmax > 1) {
    q.mem_bandwidth_Bps *= mmax;
    rep->bandwidth_raised_Bps = q.mem_bandwidth_Bps;
    for (size_t c = 0; c < DNN_OPCLASS_COUNT; c++)
      if (lay.m[c] >= 0)
        q.eff_memory[c] /= mmax;
  }
  for (size_t c = 0; c < DNN_OPCLASS_COUNT; c++) {
    if ((lay.e[c] >= 0 && q.eff_compute[c] >= ROOF) ||
        (lay.m[c] >= 0 && q.eff_memory[c] >= ROOF))
      rep->sets_peak[c] = true;
    q.eff_compute[c] = clampd(q.eff_compute[c], 1e-6, 1);
    q.eff_memory[c] = clampd(q.eff_memory[c], 1e-6, 1);
    q.half_flops[c] = clampd(q.half_flops[c], 0, 1e18);
  }
  bool any_algo = false;
  double best_algo = 0;
  for (size_t a = 0; a < DNN_CONV_ALGO_COUNT; a++)
    if (lay.a[a] >= 0) {
      any_algo = true;
      if (q.eff_conv_algo[a] >= ROOF)
        rep->sets_peak[DNN_OP_CONV] = true;
      q.eff_conv_algo[a] = clampd(q.eff_conv_algo[a], 1e-6, 1);
      best_algo =
          q.eff_conv_algo[a] > best_algo ? q.eff_conv_algo[a] : best_algo;
    }
  if (any_algo) {
    /* Algorithms the library never offered on the measured layers are
     * unusable on this device; the best measured one stands for the
     * class. */
    double worst_algo = 1;
    for (size_t a = 0; a < DNN_CONV_ALGO_COUNT; a++) {
      if (lay.a[a] < 0)
        q.eff_conv_algo[a] = 0;
      else if (q.eff_conv_algo[a] < worst_algo)
        worst_algo = q.eff_conv_algo[a];
    }
    /* Profiles need implicit GEMM or direct, which run every convolution
     * without workspace; when neither was measured, implicit GEMM gets
     * the slowest measured efficiency (a conservative stand-in). */
    if (!(q.eff_conv_algo[DNN_CONV_IMPLICIT_GEMM] > 0) &&
        !(q.eff_conv_algo[DNN_CONV_DIRECT] > 0))
      q.eff_conv_algo[DNN_CONV_IMPLICIT_GEMM] = worst_algo;
    q.eff_compute[DNN_OP_CONV] = best_algo;
  }
  q.launch_overhead_s = clampd(q.launch_overhead_s, 0, 1);
  if ((st = dnn_hw_alloc(&q, &hw, err)))
    goto fail;

  /* Report. */
  rep->rows = n;
  for (size_t i = 0; i < n; i++) {
    double m = dnn_calib_roofline(&q, pts[i].cls, pts[i].algo, dtype,
                                  pts[i].flops, pts[i].bytes);
    res[i] = fabs(m - pts[i].t) / pts[i].t;
    rep->max_rel = res[i] > rep->max_rel ? res[i] : rep->max_rel;
    rep->class_rows[pts[i].cls]++;
  }
  rep->median_rel = dnn__calib_median(res, n, scratch);
  for (size_t c = 0; c < DNN_OPCLASS_COUNT; c++) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
      if (pts[i].cls == (dnn_opclass)c)
        w[k++] = res[i];
    rep->class_median_rel[c] =
        k ? dnn__calib_median(w, k, scratch) : (double)NAN;
  }

  if (keep_table) {
    for (size_t i = 0; i < nt; i++) {
      const dnn_meas_kernel_row *r = dnn_meas_kernel_table_get(t, i);
      if (r->dtype != dtype || !(r->t.median_s > 0))
        continue;
      dnn_hw_kernel_row k;
      memset(&k, 0, sizeof k);
      k.signature = r->signature;
      k.pass = r->pass;
      k.algo = r->kind == DNN_LAYER_CONV2D ? r->algo : DNN_CONV_ALGO_COUNT;
      k.dtype = r->dtype;
      k.batch = r->batch;
      k.time_s = r->t.median_s;
      k.workspace_bytes = r->workspace_bytes;
      if ((st = dnn_hw_kernel_add(hw, &k, err)))
        goto fail;
    }
  }
  dnn_free(pts);
  dnn_free(buf);
  *out = hw;
  return DNN_OK;
fail:
  dnn_hw_free(hw);
  dnn_free(pts);
  dnn_free(buf);
  return st;
}

/* ------------------------------------------------------------------------ */
/* Evaluation                                                               */
/* ------------------------------------------------------------------------ */

dnn_status dnn_calib_kernel_evaluate(const dnn_hw *hw,
                                     const dnn_meas_kernel_table *t,
                                     dnn_dtype dtype, bool model_only,
                                     dnn_calib_error *out,
                                     dnn_calib_point_fn fn, void *ud,
                                     dnn_error *err) {
  dnn__calib_gsl_init();
  memset(out, 0, sizeof *out);
  size_t nt = dnn_meas_kernel_table_count(t);
  double *rel = dnn_malloc((2 * nt + 1) * sizeof *rel);
  if (rel == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory evaluating a profile");
  const dnn_hw_params *p = dnn_hw_get(hw);
  size_t n = 0;
  double sum = 0;
  for (size_t i = 0; i < nt; i++) {
    const dnn_meas_kernel_row *r = dnn_meas_kernel_table_get(t, i);
    if (r->dtype != dtype || !(r->t.median_s > 0))
      continue;
    dnn_opclass cls = dnn_layer_kind_opclass(r->kind);
    dnn_conv_algo algo =
        r->kind == DNN_LAYER_CONV2D ? r->algo : DNN_CONV_ALGO_COUNT;
    double pred = NAN;
    if (model_only || !dnn_hw_kernel_lookup(hw, r->signature, r->pass, algo,
                                            dtype, r->batch, &pred))
      pred = dnn_calib_roofline(p, cls, algo, dtype, r->flops, r->bytes);
    if (!isfinite(pred))
      continue;
    rel[n] = fabs(pred - r->t.median_s) / r->t.median_s;
    sum += rel[n];
    out->max_rel = rel[n] > out->max_rel ? rel[n] : out->max_rel;
    n++;
    if (fn) {
      char what[160];
      snprintf(what, sizeof what, "%s/%s %s %s b=%zu", r->network, r->layer,
               dnn_layer_kind_name(r->kind), dnn_pass_name(r->pass), r->batch);
      fn(ud, what, r->t.median_s, pred);
    }
  }
  out->n = n;
  out->median_rel = n ? dnn__calib_median(rel, n, rel + nt) : (double)NAN;
  out->mean_rel = n ? sum / dnn__d(n) : (double)NAN;
  if (n == 0)
    out->max_rel = NAN;
  dnn_free(rel);
  return DNN_OK;
}
