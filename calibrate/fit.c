/*
 * Generic fits of calibrate/ (include/dnnsim/calibrate.h): GSL set-up,
 * weighted straight lines, piecewise-linear fits of time against size, and
 * provenance text.
 *
 * Method: a collective's time over a size sweep spans many decades, and
 * its protocol changes with size (eager to rendezvous, cache to memory),
 * so one alpha + beta m line fits the small sizes badly when the large ones
 * dominate the squares. Each point is therefore weighted by 1/t^2 (the
 * fit minimises relative error; gsl_fit_wlinear), and the sweep is split
 * into at most a few segments, the fewest whose worst relative residual
 * is within tolerance, found by exhaustive search over split points (the
 * sweeps are a few dozen sizes long, so O(n^3) three-split search is
 * cheap). A segment's slope and intercept are kept non-negative (time
 * neither falls with size nor goes below zero), so noise over a flat
 * stretch cannot produce a curve that predicts negative times for sizes
 * between the measured ones. R^2 is reported on the unweighted times.
 *
 * Invariant: GSL's error handler is off before any GSL call here.
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_fit.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <string.h>
#include <threads.h>

/* ------------------------------------------------------------------------ */
/* GSL                                                                      */
/* ------------------------------------------------------------------------ */

static once_flag gsl_once = ONCE_FLAG_INIT;

static void gsl_off(void) {
  gsl_set_error_handler_off();
}

void dnn__calib_gsl_init(void) {
  call_once(&gsl_once, gsl_off);
}

dnn_status dnn__calib_gsl_fail(dnn_error *err, int gsl_status,
                               const char *what) {
  return DNN_FAIL(err, DNN_ENUMERIC, "%s: GSL error %d (%s)", what, gsl_status,
                  gsl_strerror(gsl_status));
}

double dnn__calib_median(const double *v, size_t n, double *scratch) {
  if (n == 0)
    return NAN;
  memcpy(scratch, v, n * sizeof *v);
  gsl_sort(scratch, 1, n);
  return gsl_stats_median_from_sorted_data(scratch, 1, n);
}

/* ------------------------------------------------------------------------ */
/* Parameters                                                               */
/* ------------------------------------------------------------------------ */

dnn_calib_params dnn_calib_default_params(void) {
  dnn_calib_params p;
  memset(&p, 0, sizeof p);
  p.r2_min = 0.95;
  p.median_rel_max = 0.10;
  p.max_rel_max = 0.50;
  p.segment_tol = 0.10;
  p.max_segments = 3;
  p.min_segment_points = 3;
  p.pow2_only = false;
  p.prior_weight = 0.03;
  p.huber_rounds = 2;
  return p;
}

dnn_status dnn_calib_params_check(const dnn_calib_params *p, dnn_error *err) {
  if (!(p->r2_min <= 1))
    return DNN_FAIL(err, DNN_EINVAL, "r2_min must be <= 1");
  if (!(p->median_rel_max > 0) || !(p->max_rel_max > 0) ||
      !(p->segment_tol > 0))
    return DNN_FAIL(err, DNN_EINVAL,
                    "residual limits and segment_tol must be > 0");
  if (p->max_segments < 1 || p->max_segments > DNN_COMM_FIT_MAX_SEGMENTS)
    return DNN_FAIL(err, DNN_EINVAL, "max_segments must be in [1, %d]",
                    DNN_COMM_FIT_MAX_SEGMENTS);
  if (p->min_segment_points < 2)
    return DNN_FAIL(err, DNN_EINVAL, "min_segment_points must be >= 2");
  if (!(p->prior_weight >= 0) || !isfinite(p->prior_weight))
    return DNN_FAIL(err, DNN_EINVAL, "prior_weight must be >= 0");
  return DNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Lines                                                                    */
/* ------------------------------------------------------------------------ */

/* The weighted line through points [lo, hi); false when degenerate. */
static bool line(const double *x, const double *y, size_t lo, size_t hi,
                 bool relative, double *w, double *a, double *b) {
  size_t n = hi - lo;
  if (n < 2 || !(x[hi - 1] > x[lo]))
    return false;
  for (size_t i = 0; i < n; i++)
    w[i] = relative ? 1 / (y[lo + i] * y[lo + i]) : 1;
  double c0, c1, c00, c01, c11, chisq;
  int s = gsl_fit_wlinear(x + lo, 1, w, 1, y + lo, 1, n, &c0, &c1, &c00, &c01,
                          &c11, &chisq);
  if (s != GSL_SUCCESS || !isfinite(c0) || !isfinite(c1))
    return false;
  /* A time never falls with size and is never negative: a negative slope
   * (noise over a flat stretch) becomes a constant, a negative intercept
   * a line through the origin, each the best such fit of the points. */
  if (c1 < 0) {
    double sw = 0, swy = 0;
    for (size_t i = 0; i < n; i++) {
      sw += w[i];
      swy += w[i] * y[lo + i];
    }
    c0 = swy / sw;
    c1 = 0;
  } else if (c0 < 0) {
    double sxx = 0, sxy = 0;
    for (size_t i = 0; i < n; i++) {
      sxx += w[i] * x[lo + i] * x[lo + i];
      sxy += w[i] * x[lo + i] * y[lo + i];
    }
    c0 = 0;
    c1 = sxy / sxx;
  }
  *a = c0;
  *b = c1;
  return true;
}

dnn_status dnn_calib_fit_line(const double *x, const double *y, size_t n,
                              bool relative, dnn_calib_line *out,
                              dnn_error *err) {
  dnn__calib_gsl_init();
  memset(out, 0, sizeof *out);
  if (n < 2)
    return DNN_FAIL(err, DNN_EINVAL, "a line needs at least 2 points, got %zu",
                    n);
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i]) || !isfinite(y[i]) || (relative && !(y[i] > 0)))
      return DNN_FAIL(err, DNN_EINVAL, "point %zu (%g, %g) is not finite%s", i,
                      x[i], y[i], relative ? " or has y <= 0" : "");
  double *w = dnn_malloc(2 * n * sizeof *w);
  if (w == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory fitting a line");
  double *xs = dnn_malloc(2 * n * sizeof *xs);
  if (xs == NULL) {
    dnn_free(w);
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory fitting a line");
  }
  /* gsl_fit_wlinear needs x in any order, but two distinct values. */
  double xmin = x[0], xmax = x[0];
  for (size_t i = 1; i < n; i++) {
    xmin = x[i] < xmin ? x[i] : xmin;
    xmax = x[i] > xmax ? x[i] : xmax;
  }
  dnn_status st = DNN_OK;
  if (!(xmax > xmin)) {
    st = DNN_FAIL(err, DNN_EINVAL, "a line needs two distinct x values");
    goto done;
  }
  for (size_t i = 0; i < n; i++)
    w[i] = relative ? 1 / (y[i] * y[i]) : 1;
  double c00, c01, c11, chisq;
  int s = gsl_fit_wlinear(x, 1, w, 1, y, 1, n, &out->a, &out->b, &c00, &c01,
                          &c11, &chisq);
  if (s != GSL_SUCCESS) {
    st = dnn__calib_gsl_fail(err, s, "gsl_fit_wlinear");
    goto done;
  }
  double mean = gsl_stats_mean(y, 1, n), ss_res = 0, ss_tot = 0;
  for (size_t i = 0; i < n; i++) {
    double f = out->a + out->b * x[i];
    ss_res += (f - y[i]) * (f - y[i]);
    ss_tot += (y[i] - mean) * (y[i] - mean);
    xs[i] = y[i] != 0 ? fabs(f - y[i]) / fabs(y[i]) : fabs(f - y[i]);
    out->max_rel = xs[i] > out->max_rel ? xs[i] : out->max_rel;
  }
  out->r2 = ss_tot > 0 ? 1 - ss_res / ss_tot : 1;
  out->median_rel = dnn__calib_median(xs, n, xs + n);
  out->n = n;
done:
  dnn_free(w);
  dnn_free(xs);
  return st;
}

/* ------------------------------------------------------------------------ */
/* Segments                                                                 */
/* ------------------------------------------------------------------------ */

/* A candidate split: segment k covers points [start[k], start[k+1]). */
typedef struct split {
  size_t k;
  size_t start[DNN_COMM_FIT_MAX_SEGMENTS + 1];
  double a[DNN_COMM_FIT_MAX_SEGMENTS], b[DNN_COMM_FIT_MAX_SEGMENTS];
  double sse;     /* sum of squared relative residuals */
  double max_rel; /* largest relative residual */
} split;

/* Fits every segment of `s`; false when one is degenerate. */
static bool split_eval(const double *x, const double *y, split *s, double *w) {
  s->sse = 0;
  s->max_rel = 0;
  for (size_t k = 0; k < s->k; k++) {
    size_t lo = s->start[k], hi = s->start[k + 1];
    if (!line(x, y, lo, hi, true, w, &s->a[k], &s->b[k]))
      return false;
    for (size_t i = lo; i < hi; i++) {
      double r = (s->a[k] + s->b[k] * x[i] - y[i]) / y[i];
      s->sse += r * r;
      s->max_rel = fabs(r) > s->max_rel ? fabs(r) : s->max_rel;
    }
  }
  return true;
}

/* The best split into k segments of >= m points each (recursive search
 * over the start of segment `at`). */
static void search(const double *x, const double *y, size_t n, size_t m,
                   split *cur, size_t at, split *best, bool *found, double *w) {
  if (at == cur->k) {
    cur->start[cur->k] = n;
    if (n - cur->start[cur->k - 1] < m)
      return;
    if (split_eval(x, y, cur, w) && (!*found || cur->sse < best->sse)) {
      *best = *cur;
      *found = true;
    }
    return;
  }
  size_t first = cur->start[at - 1] + m;
  size_t left = cur->k - at; /* segments still to place after this start */
  for (size_t s = first; s + left * m <= n; s++) {
    cur->start[at] = s;
    search(x, y, n, m, cur, at + 1, best, found, w);
  }
}

dnn_status dnn_calib_fit_segments(const double *x, const double *y, size_t n,
                                  const dnn_calib_params *p, dnn_comm_fit *out,
                                  dnn_error *err) {
  dnn__calib_gsl_init();
  dnn_status st = dnn_calib_params_check(p, err);
  if (st)
    return st;
  if (n < 2)
    return DNN_FAIL(err, DNN_EINVAL,
                    "a fit needs at least 2 measured sizes, got %zu", n);
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(x[i]) || !(y[i] > 0) || !isfinite(y[i]) || x[i] < 0)
      return DNN_FAIL(err, DNN_EINVAL,
                      "point %zu (%g B, %g s) is not a size >= 0 with a "
                      "finite time > 0",
                      i, x[i], y[i]);
    if (i > 0 && !(x[i] > x[i - 1]))
      return DNN_FAIL(err, DNN_EINVAL,
                      "sizes must be strictly increasing (point %zu)", i);
  }
  double *w = dnn_malloc(2 * n * sizeof *w);
  if (w == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory fitting segments");
  split best, cur;
  memset(&best, 0, sizeof best);
  bool have = false;
  size_t m = p->min_segment_points;
  for (size_t k = 1; k <= p->max_segments; k++) {
    if (k > 1 && k * m > n)
      break;
    memset(&cur, 0, sizeof cur);
    cur.k = k;
    split cand;
    bool found = false;
    if (k == 1) {
      cur.start[1] = n;
      found = split_eval(x, y, &cur, w);
      cand = cur;
    } else {
      search(x, y, n, m, &cur, 1, &cand, &found, w);
    }
    if (!found)
      continue;
    if (!have || cand.sse < best.sse) {
      best = cand;
      have = true;
    }
    if (cand.max_rel <= p->segment_tol) {
      best = cand;
      break;
    }
  }
  dnn_free(w);
  if (!have)
    return DNN_FAIL(err, DNN_ENUMERIC,
                    "no line fits the %zu points (sizes %g to %g B)", n, x[0],
                    x[n - 1]);
  out->n_segments = best.k;
  for (size_t k = 0; k < best.k; k++) {
    size_t s = best.start[k];
    out->seg[k].lo_bytes = k == 0 ? 0 : sqrt(x[s - 1] * x[s]);
    out->seg[k].latency_s = best.a[k];
    out->seg[k].s_per_byte = best.b[k];
  }
  /* Quality over all points with the piecewise curve. */
  double mean = 0, ss_res = 0, ss_tot = 0;
  for (size_t i = 0; i < n; i++)
    mean += y[i] / dnn__d(n);
  double *rel = dnn_malloc(2 * n * sizeof *rel);
  if (rel == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory fitting segments");
  out->max_rel_residual = 0;
  for (size_t i = 0; i < n; i++) {
    double f = dnn_hw_comm_fit_time(out, x[i]);
    ss_res += (f - y[i]) * (f - y[i]);
    ss_tot += (y[i] - mean) * (y[i] - mean);
    rel[i] = fabs(f - y[i]) / y[i];
    if (rel[i] > out->max_rel_residual)
      out->max_rel_residual = rel[i];
  }
  out->median_rel_residual = dnn__calib_median(rel, n, rel + n);
  dnn_free(rel);
  out->r2 = ss_tot > 0 ? 1 - ss_res / ss_tot : 1;
  out->points = n;
  out->min_bytes = x[0];
  out->max_bytes = x[n - 1];
  out->poor = out->r2 < p->r2_min ||
              out->median_rel_residual > p->median_rel_max ||
              out->max_rel_residual > p->max_rel_max;
  return DNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Provenance                                                               */
/* ------------------------------------------------------------------------ */

void dnn_calib_provenance(const char *device, const char *libraries,
                          const char *command, char *out, size_t n) {
  dnn_meas_sysinfo si;
  dnn_meas_sysinfo_get(&si);
  if (n > DNN_CALIB_PROVENANCE_MAX + 1)
    n = DNN_CALIB_PROVENANCE_MAX + 1;
  int k = snprintf(out, n, "%s on %s%s%s%s%s%s%s", si.date, si.host,
                   device ? " | " : "", device ? device : "",
                   libraries ? " | " : "", libraries ? libraries : "",
                   command ? " | by: " : "", command ? command : "");
  /* A cut command line says so. */
  if (k > 0 && (size_t)k >= n && n > 4)
    memcpy(out + n - 4, "...", 4);
  for (char *c = out; *c; c++)
    if ((unsigned char)*c < 0x20 || *c == ';' || *c == 0x7f)
      *c = ' ';
  /* No blanks at either end (INI trims them). */
  size_t len = strlen(out);
  while (len > 0 && out[len - 1] == ' ')
    out[--len] = '\0';
}
