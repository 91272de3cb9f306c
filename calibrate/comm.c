/*
 * Collective fits (include/dnnsim/calibrate.h): from measured sweeps to a
 * comm profile, predictions from a profile, and their error against
 * measurements.
 *
 * Model (Hockney's alpha-beta-gamma, REFERENCE.md §1.5; docs/models.md
 * "Collectives"): an algorithm's time on P ranks is
 *   t(m) = ca(P) alpha + cb(P) m beta + cg(P) m gamma,
 * with the coefficients of comm.h's formula of that algorithm. They are
 * read off dnn_comm_time with unit links, so the fit and the predictor
 * cannot drift apart. A measured sweep is fitted piecewise (fit.c); alpha
 * comes from the smallest-size segment's intercept (alpha = a_0 / ca), beta
 * from the largest-size segment's slope once gamma's share is taken out
 * (beta = (b_last - cg gamma) / cb), gamma from MPI_Reduce_local (the
 * slope of a purely local reduction, the only place gamma is identifiable
 * on its own: in every collective it multiplies m alongside beta). LogGP
 * (Alexandrov et al., SPAA 1995): the ping-pong's half round trip is
 * L + 2o + (m - 1) G, so G is its large-size slope and L + 2o its
 * small-size intercept; o and g come from their own probes.
 *
 * Predictions from a profile are parallelism/comm_fit.c's
 * (dnn_comm_profile_predict), which every collective of a prediction uses
 * too: the error reported here is the predictor's.
 *
 * Invariant: every fit added to the profile passes hw.h's fit validation;
 * the profile is the only thing this file allocates that outlives a call.
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Coefficients of comm.h's formulas                                        */
/* ------------------------------------------------------------------------ */

/* A message size to read slopes at; the formulas used are linear in m. */
#define COEF_BYTES 1048576.0

static bool time_of(dnn_comm_op op, dnn_comm_algo algo, size_t ranks,
                    double alpha, double beta, double gamma, double m,
                    double *t) {
  dnn_comm_link l = {alpha, beta, gamma};
  dnn_comm_topo topo = dnn_comm_default_topo(ranks, l);
  dnn_comm_cost c;
  if (dnn_comm_time(op, algo, m, &topo, &c, NULL) != DNN_OK)
    return false;
  *t = c.time_s;
  return isfinite(*t);
}

bool dnn_calib_comm_coef(dnn_comm_op op, dnn_comm_algo algo, size_t ranks,
                         double *ca, double *cb, double *cg) {
  if (algo == DNN_COMM_ALGO_AUTO || (unsigned)algo >= DNN_COMM_ALGO_COUNT ||
      (unsigned)op >= DNN_COMM_OP_COUNT || ranks < 2 ||
      !dnn_comm_supports(op, algo))
    return false;
  double m = COEF_BYTES, ta, tb, tg, t2;
  if (!time_of(op, algo, ranks, 1, 0, 0, m, &ta) ||
      !time_of(op, algo, ranks, 0, 1, 0, m, &tb) ||
      !time_of(op, algo, ranks, 0, 0, 1, m, &tg))
    return false;
  /* Linearity check: pipelined algorithms choose their segment count from
   * alpha/beta and have no such coefficients. */
  if (!time_of(op, algo, ranks, 1, 1e-9, 1e-10, m, &t2) ||
      !dnn_close(t2, ta + 1e-9 * tb + 1e-10 * tg, 1e-9))
    return false;
  *ca = ta;
  *cb = tb / m;
  *cg = tg / m;
  return true;
}

/* ------------------------------------------------------------------------ */
/* Fitting                                                                  */
/* ------------------------------------------------------------------------ */

static bool is_probe(const dnn_meas_coll_row *r) {
  if (r->op == DNN_COMM_P2P)
    return strcmp(r->algorithm, "overhead") == 0 ||
           strcmp(r->algorithm, "gap") == 0;
  return r->op == DNN_COMM_REDUCE && strcmp(r->algorithm, "local") == 0;
}

/* Sizes and median times of rows matching (op, algorithm, ranks), sorted
 * by size; returns the count (at most cap). */
static size_t gather(const dnn_meas_coll_table *t, dnn_comm_op op,
                     const char *algorithm, size_t ranks, bool pow2_only,
                     double *x, double *y, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < dnn_meas_coll_table_count(t) && n < cap; i++) {
    const dnn_meas_coll_row *r = dnn_meas_coll_table_get(t, i);
    if (r->op != op || r->ranks != ranks ||
        strcmp(r->algorithm, algorithm) != 0 || !(r->t.median_s > 0))
      continue;
    if (pow2_only && !dnn__is_pow2(r->size_bytes))
      continue;
    /* Insertion keeps the arrays sorted; a repeated size keeps the last. */
    double sz = dnn__d(r->size_bytes);
    size_t k = n;
    while (k > 0 && x[k - 1] > sz)
      k--;
    if (k > 0 && x[k - 1] == sz) {
      y[k - 1] = r->t.median_s;
      continue;
    }
    memmove(x + k + 1, x + k, (n - k) * sizeof *x);
    memmove(y + k + 1, y + k, (n - k) * sizeof *y);
    x[k] = sz;
    y[k] = r->t.median_s;
    n++;
  }
  return n;
}

/* Median time of probe rows (op, algorithm) over all sizes; NAN if none. */
static double probe_median(const dnn_meas_coll_table *t, dnn_comm_op op,
                           const char *algorithm, double *scratch, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < dnn_meas_coll_table_count(t) && n < cap; i++) {
    const dnn_meas_coll_row *r = dnn_meas_coll_table_get(t, i);
    if (r->op == op && strcmp(r->algorithm, algorithm) == 0)
      scratch[n++] = r->t.median_s;
  }
  return n ? dnn__calib_median(scratch, n, scratch + n) : (double)NAN;
}

/* Link parameters of a fit through the algorithm's formula. */
static void link_params(dnn_comm_fit *f, double gamma) {
  double ca, cb, cg;
  f->has_link = false;
  f->alpha_s = f->beta_s_per_byte = f->gamma_s_per_byte = 0;
  if (f->algo == DNN_COMM_ALGO_AUTO || f->algo >= DNN_COMM_ALGO_COUNT ||
      !dnn_calib_comm_coef((dnn_comm_op)f->op, (dnn_comm_algo)f->algo, f->ranks,
                           &ca, &cb, &cg) ||
      !(cb > 0))
    return;
  const dnn_comm_segment *first = &f->seg[0];
  const dnn_comm_segment *last = &f->seg[f->n_segments - 1];
  double a0 = first->latency_s > 0 ? first->latency_s : 0;
  f->alpha_s = ca > 0 ? a0 / ca : 0;
  double g = cg > 0 && gamma > 0 ? gamma : 0;
  double slope = last->s_per_byte > 0 ? last->s_per_byte : 0;
  double beta = (slope - cg * g) / cb;
  if (!(beta > 0)) { /* the reduction explains it all: keep beta >= 0 */
    beta = slope / cb;
    g = 0;
  }
  f->beta_s_per_byte = beta;
  f->gamma_s_per_byte = g;
  f->has_link = true;
}

dnn_status dnn_calib_comm_fit(const dnn_meas_coll_table *t,
                              const dnn_calib_params *p,
                              const dnn_comm_profile_info *info,
                              dnn_comm_profile **out, dnn_error *err) {
  *out = NULL;
  dnn__calib_gsl_init();
  dnn_status st = dnn_calib_params_check(p, err);
  if (st)
    return st;
  size_t nrows = dnn_meas_coll_table_count(t);
  double *x = dnn_malloc((nrows + 1) * 4 * sizeof *x);
  bool *seen = dnn_calloc(nrows + 1, sizeof *seen);
  dnn_comm_profile *cp = NULL;
  if (x == NULL || seen == NULL) {
    st = DNN_FAIL(err, DNN_ENOMEM, "out of memory fitting collectives");
    goto fail;
  }
  double *y = x + nrows + 1, *scratch = y + nrows + 1;
  dnn_comm_profile_info in = *info;

  /* gamma: the large-size slope of MPI_Reduce_local. */
  size_t nl = gather(t, DNN_COMM_REDUCE, "local", 1, false, x, y, nrows);
  in.gamma_s_per_byte = 0;
  if (nl >= 2) {
    dnn_comm_fit g;
    memset(&g, 0, sizeof g);
    if (dnn_calib_fit_segments(x, y, nl, p, &g, NULL) == DNN_OK) {
      double s = g.seg[g.n_segments - 1].s_per_byte;
      in.gamma_s_per_byte = s > 0 ? s : 0;
    }
  }
  /* LogGP from the ping-pong and the probes. */
  size_t npp = gather(t, DNN_COMM_P2P, "pingpong", 2, false, x, y, nrows);
  if (npp >= 2) {
    dnn_comm_fit g;
    memset(&g, 0, sizeof g);
    if ((st = dnn_calib_fit_segments(x, y, npp, p, &g, err)))
      goto fail;
    double o = probe_median(t, DNN_COMM_P2P, "overhead", scratch, nrows);
    double gap = probe_median(t, DNN_COMM_P2P, "gap", scratch, nrows);
    double l2o = g.seg[0].latency_s > 0 ? g.seg[0].latency_s : y[0];
    double G = g.seg[g.n_segments - 1].s_per_byte;
    in.has_loggp = true;
    in.loggp_o_s = isfinite(o) ? o : 0;
    in.loggp_g_s = isfinite(gap) ? gap : 0;
    in.loggp_L_s = l2o - 2 * in.loggp_o_s > 0 ? l2o - 2 * in.loggp_o_s : 0;
    in.loggp_G_s_per_byte = G > 0 ? G : 0;
    in.loggp_P = 0;
    for (size_t i = 0; i < nrows; i++) {
      const dnn_meas_coll_row *r = dnn_meas_coll_table_get(t, i);
      in.loggp_P = r->ranks > in.loggp_P ? r->ranks : in.loggp_P;
    }
  }
  if ((st = dnn_hw_comm_profile_alloc(&in, &cp, err)))
    goto fail;

  /* One fit per (op, algorithm, ranks) group. */
  size_t fitted = 0;
  for (size_t i = 0; i < nrows; i++) {
    const dnn_meas_coll_row *r = dnn_meas_coll_table_get(t, i);
    if (seen[i] || is_probe(r))
      continue;
    for (size_t j = i; j < nrows; j++) {
      const dnn_meas_coll_row *q = dnn_meas_coll_table_get(t, j);
      if (q->op == r->op && q->ranks == r->ranks &&
          strcmp(q->algorithm, r->algorithm) == 0)
        seen[j] = true;
    }
    size_t n =
        gather(t, r->op, r->algorithm, r->ranks, p->pow2_only, x, y, nrows);
    if (n < 2)
      continue;
    dnn_comm_fit f;
    memset(&f, 0, sizeof f);
    if ((st = dnn_calib_fit_segments(x, y, n, p, &f, err))) {
      dnn_error_prefix(err, "fitting %s/%s on %zu ranks",
                       dnn_comm_op_name(r->op), r->algorithm, r->ranks);
      goto fail;
    }
    f.op = (int)r->op;
    f.algo = r->op == DNN_COMM_P2P ? (int)DNN_COMM_ALGO_DIRECT : (int)r->model;
    snprintf(f.mpi_algorithm, sizeof f.mpi_algorithm, "%s", r->algorithm);
    f.ranks = r->ranks;
    link_params(&f, in.gamma_s_per_byte);
    if ((st = dnn_hw_comm_profile_add(cp, &f, err)))
      goto fail;
    fitted++;
  }
  if (fitted == 0) {
    st = DNN_FAIL(err, DNN_EINVAL,
                  "no collective has two or more measured sizes to fit");
    goto fail;
  }
  dnn_free(x);
  dnn_free(seen);
  *out = cp;
  return DNN_OK;
fail:
  dnn_hw_comm_profile_free(cp);
  dnn_free(x);
  dnn_free(seen);
  return st;
}

/* ------------------------------------------------------------------------ */
/* Prediction and error                                                     */
/* ------------------------------------------------------------------------ */

/* The predictor's own formula (parallelism/comm_fit.c), so that the error
 * reported here is the error predictions make. */
dnn_status dnn_calib_comm_predict(const dnn_comm_profile *cp, dnn_comm_op op,
                                  dnn_comm_algo algo, size_t ranks,
                                  double bytes, double *time_s, bool *exact,
                                  dnn_error *err) {
  return dnn_comm_profile_predict(cp, op, algo, ranks, bytes, time_s, exact,
                                  err);
}

/* Accumulates relative errors of one group. */
typedef struct acc {
  double *rel;
  size_t n;
} acc;

static void acc_done(acc *a, dnn_calib_error *out, double *scratch) {
  if (out == NULL)
    return;
  memset(out, 0, sizeof *out);
  out->n = a->n;
  if (a->n == 0) {
    out->median_rel = out->max_rel = out->mean_rel = NAN;
    return;
  }
  double sum = 0;
  for (size_t i = 0; i < a->n; i++) {
    sum += a->rel[i];
    out->max_rel = a->rel[i] > out->max_rel ? a->rel[i] : out->max_rel;
  }
  out->mean_rel = sum / dnn__d(a->n);
  out->median_rel = dnn__calib_median(a->rel, a->n, scratch);
}

dnn_status dnn_calib_comm_evaluate(const dnn_comm_profile *cp,
                                   const dnn_meas_coll_table *t,
                                   dnn_calib_error *exact,
                                   dnn_calib_error *other,
                                   dnn_calib_point_fn fn, void *ud,
                                   dnn_error *err) {
  dnn__calib_gsl_init();
  size_t n = dnn_meas_coll_table_count(t);
  double *buf = dnn_malloc((3 * n + 1) * sizeof *buf);
  if (buf == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory evaluating fits");
  acc ex = {buf, 0}, ot = {buf + n, 0};
  for (size_t i = 0; i < n; i++) {
    const dnn_meas_coll_row *r = dnn_meas_coll_table_get(t, i);
    if (is_probe(r) || !(r->t.median_s > 0))
      continue;
    dnn_comm_algo algo =
        r->op == DNN_COMM_P2P ? DNN_COMM_ALGO_DIRECT : r->model;
    if ((unsigned)algo >= DNN_COMM_ALGO_COUNT)
      continue;
    double pred;
    bool is_exact;
    if (dnn_calib_comm_predict(cp, r->op, algo, r->ranks, dnn__d(r->size_bytes),
                               &pred, &is_exact, NULL) != DNN_OK)
      continue;
    double rel = fabs(pred - r->t.median_s) / r->t.median_s;
    acc *a = is_exact ? &ex : &ot;
    a->rel[a->n++] = rel;
    if (fn) {
      char what[128];
      snprintf(what, sizeof what, "%s/%s P=%zu %zu B", dnn_comm_op_name(r->op),
               r->algorithm, r->ranks, r->size_bytes);
      fn(ud, what, r->t.median_s, pred);
    }
  }
  acc_done(&ex, exact, buf + 2 * n);
  acc_done(&ot, other, buf + 2 * n);
  dnn_free(buf);
  return DNN_OK;
}
