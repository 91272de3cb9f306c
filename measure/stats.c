/*
 * Statistics of repeated measurements (include/dnnsim/measure.h): the
 * median, a distribution-free confidence interval of the median, and the
 * adaptive stopping rule.
 *
 * Interval (Hoefler & Belli, "Scientific benchmarking of parallel
 * computing systems", SC'15, §3.2; Le Boudec, "Performance Evaluation",
 * 2010, Thm. 2.1): for n i.i.d. samples the number below the true median
 * is Bin(n, 1/2), so [x_(k), x_(n+1-k)] of the sorted samples covers the
 * median with probability 1 - 2 P(Bin(n, 1/2) <= k - 1). We take the
 * largest k whose coverage reaches the requested confidence (GSL's
 * binomial CDF), which needs no assumption on the shape of the timing
 * distribution (timings are skewed and often multi-modal, so a normal
 * interval would be wrong). With n = 10 this is [x_(2), x_(9)] at 97.9%.
 *
 * Stopping rule (Deep500, REFERENCE.md §5.2, made adaptive): samples are
 * block means of `runs` back-to-back runs; stop once the interval's
 * half-width is within ci_rel of the median (after min_samples), or at
 * max_samples, or when the time budget is spent.
 *
 * Invariant: the sampler never allocates after dnn_meas_sampler_alloc and
 * is deterministic, so MPI ranks that add the same samples stop together.
 * GSL calls here (sort, median, binomial CDF with p = 1/2) cannot raise
 * GSL errors for the arguments they get.
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <string.h>
#include <time.h>

double dnn_meas_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------ */
/* Median and its confidence interval                                       */
/* ------------------------------------------------------------------------ */

/* Statistics of samples already sorted ascending (n >= 1). */
static void stats_sorted(const double *x, size_t n, double confidence,
                         dnn_meas_stats *out) {
  memset(out, 0, sizeof *out);
  out->samples = n;
  out->runs = 1;
  out->min_s = x[0];
  out->max_s = x[n - 1];
  out->median_s = gsl_stats_median_from_sorted_data(x, 1, n);
  out->mean_s = gsl_stats_mean(x, 1, n);
  /* Coverage of [x_(k), x_(n+1-k)] is 1 - 2 P(B <= k-1), B ~ Bin(n, 1/2);
   * it falls as k grows, so scan k up while it stays high enough. */
  unsigned nn = (unsigned)n;
  size_t k = 1;
  double cov = 1 - 2 * gsl_cdf_binomial_P(0, 0.5, nn);
  while (k + 1 <= (n + 1) / 2) {
    double c = 1 - 2 * gsl_cdf_binomial_P((unsigned)k, 0.5, nn);
    if (c < confidence)
      break;
    k++;
    cov = c;
  }
  out->ci_lo_s = x[k - 1];
  out->ci_hi_s = x[n - k];
  out->confidence = cov < 0 ? 0 : cov;
}

dnn_status dnn_meas_stats_compute(const double *x, size_t n, double confidence,
                                  dnn_meas_stats *out, dnn_error *err) {
  if (n == 0)
    return DNN_FAIL(err, DNN_EINVAL, "statistics of no samples");
  if (!(confidence > 0 && confidence < 1))
    return DNN_FAIL(err, DNN_EINVAL, "confidence %g is outside (0, 1)",
                    confidence);
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i]))
      return DNN_FAIL(err, DNN_EINVAL, "sample %zu is not finite (%g)", i,
                      x[i]);
  double *s = dnn_malloc(n * sizeof *s);
  if (s == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory sorting %zu samples", n);
  memcpy(s, x, n * sizeof *s);
  gsl_sort(s, 1, n);
  stats_sorted(s, n, confidence, out);
  dnn_free(s);
  return DNN_OK;
}

double dnn_meas_stats_rel_halfwidth(const dnn_meas_stats *s) {
  if (!(s->median_s > 0))
    return INFINITY;
  return 0.5 * (s->ci_hi_s - s->ci_lo_s) / s->median_s;
}

/* ------------------------------------------------------------------------ */
/* Repeat parameters                                                        */
/* ------------------------------------------------------------------------ */

dnn_meas_repeat_params dnn_meas_repeat_default_params(void) {
  dnn_meas_repeat_params p;
  p.warmup_runs = 2;
  p.min_samples = 10;
  p.max_samples = 100;
  p.max_runs = 1000;
  p.ci_rel = 0.05;
  p.confidence = 0.95;
  p.min_sample_s = 1e-3;
  p.max_total_s = 5;
  return p;
}

dnn_meas_repeat_params dnn_meas_repeat_quick_params(void) {
  dnn_meas_repeat_params p = dnn_meas_repeat_default_params();
  p.warmup_runs = 1;
  p.min_samples = 5;
  p.max_samples = 15;
  p.max_runs = 200;
  p.ci_rel = 0.10;
  p.min_sample_s = 2e-4;
  p.max_total_s = 0.5;
  return p;
}

dnn_status dnn_meas_repeat_params_check(const dnn_meas_repeat_params *p,
                                        dnn_error *err) {
  if (p->min_samples < 1)
    return DNN_FAIL(err, DNN_EINVAL, "repeat min_samples must be >= 1");
  if (p->max_samples < p->min_samples)
    return DNN_FAIL(err, DNN_EINVAL,
                    "repeat max_samples %zu is below min_samples %zu",
                    p->max_samples, p->min_samples);
  if (p->max_runs < 1)
    return DNN_FAIL(err, DNN_EINVAL, "repeat max_runs must be >= 1");
  if (!(p->ci_rel > 0) || !isfinite(p->ci_rel))
    return DNN_FAIL(err, DNN_EINVAL, "repeat ci_rel must be > 0, got %g",
                    p->ci_rel);
  if (!(p->confidence > 0 && p->confidence < 1))
    return DNN_FAIL(err, DNN_EINVAL, "repeat confidence %g is outside (0, 1)",
                    p->confidence);
  if (!(p->min_sample_s >= 0) || !isfinite(p->min_sample_s))
    return DNN_FAIL(err, DNN_EINVAL, "repeat min_sample_s must be >= 0");
  if (!(p->max_total_s >= 0) || !isfinite(p->max_total_s))
    return DNN_FAIL(err, DNN_EINVAL, "repeat max_total_s must be >= 0");
  return DNN_OK;
}

size_t dnn_meas_repeat_runs(const dnn_meas_repeat_params *p, double run_s) {
  if (!(p->min_sample_s > 0))
    return 1;
  if (!(run_s > 0) || !isfinite(run_s))
    return p->max_runs;
  double r = ceil(p->min_sample_s / run_s);
  if (r < 1)
    return 1;
  if (r >= (double)p->max_runs)
    return p->max_runs;
  return (size_t)r;
}

/* ------------------------------------------------------------------------ */
/* The sampler                                                              */
/* ------------------------------------------------------------------------ */

struct dnn_meas_sampler {
  dnn_meas_repeat_params p;
  double *x;      /* samples in arrival order, max_samples of them */
  double *sorted; /* scratch for the statistics */
  size_t n;       /* samples held */
  size_t runs;    /* runs per sample */
  double spent_s; /* time spent in samples (sample * runs) */
  bool converged; /* the interval test passed */
};

dnn_status dnn_meas_sampler_alloc(const dnn_meas_repeat_params *p,
                                  dnn_meas_sampler **out, dnn_error *err) {
  *out = NULL;
  dnn_status st = dnn_meas_repeat_params_check(p, err);
  if (st)
    return st;
  dnn_meas_sampler *s = dnn_calloc(1, sizeof *s);
  if (s == NULL)
    goto nomem;
  s->p = *p;
  s->x = dnn_calloc(p->max_samples, sizeof *s->x);
  s->sorted = dnn_calloc(p->max_samples, sizeof *s->sorted);
  if (s->x == NULL || s->sorted == NULL)
    goto nomem;
  s->runs = 1;
  *out = s;
  return DNN_OK;
nomem:
  dnn_meas_sampler_free(s);
  return DNN_FAIL(err, DNN_ENOMEM, "out of memory for %zu samples",
                  p->max_samples);
}

void dnn_meas_sampler_free(dnn_meas_sampler *s) {
  if (s == NULL)
    return;
  dnn_free(s->x);
  dnn_free(s->sorted);
  dnn_free(s);
}

void dnn_meas_sampler_reset(dnn_meas_sampler *s, size_t runs) {
  s->n = 0;
  s->runs = runs ? runs : 1;
  s->spent_s = 0;
  s->converged = false;
}

void dnn_meas_sampler_add(dnn_meas_sampler *s, double sample_s) {
  if (s->n >= s->p.max_samples)
    return;
  s->x[s->n++] = sample_s;
  s->spent_s += sample_s * dnn__d(s->runs);
}

void dnn_meas_sampler_stats(dnn_meas_sampler *s, dnn_meas_stats *out) {
  if (s->n == 0) {
    memset(out, 0, sizeof *out);
    return;
  }
  memcpy(s->sorted, s->x, s->n * sizeof *s->x);
  gsl_sort(s->sorted, 1, s->n);
  stats_sorted(s->sorted, s->n, s->p.confidence, out);
  out->runs = s->runs;
  out->converged = s->converged;
}

bool dnn_meas_sampler_done(dnn_meas_sampler *s) {
  if (s->n == 0)
    return false;
  if (s->n >= s->p.min_samples) {
    dnn_meas_stats st;
    dnn_meas_sampler_stats(s, &st);
    if (dnn_meas_stats_rel_halfwidth(&st) <= s->p.ci_rel) {
      s->converged = true;
      return true;
    }
  }
  if (s->n >= s->p.max_samples)
    return true;
  /* The budget may cut a slow kernel short, but never below three samples
   * (or min_samples when that is smaller): a median needs a few. */
  size_t floor_n = s->p.min_samples < 3 ? s->p.min_samples : 3;
  return s->p.max_total_s > 0 && s->spent_s >= s->p.max_total_s &&
         s->n >= floor_n;
}

/* ------------------------------------------------------------------------ */
/* The driver                                                               */
/* ------------------------------------------------------------------------ */

dnn_status dnn_meas_repeat_run(const dnn_meas_repeat_params *p,
                               dnn_meas_run_fn fn, void *ud,
                               dnn_meas_stats *out, dnn_error *err) {
  memset(out, 0, sizeof *out);
  dnn_meas_sampler *s = NULL;
  dnn_status st = dnn_meas_sampler_alloc(p, &s, err);
  if (st)
    return st;
  /* Warm-up (or, without one, a single probe run) sizes the samples. */
  size_t probe = p->warmup_runs ? p->warmup_runs : 1;
  double t = 0;
  if ((st = fn(ud, probe, &t, err)))
    goto done;
  dnn_meas_sampler_reset(s, dnn_meas_repeat_runs(p, t / dnn__d(probe)));
  while (!dnn_meas_sampler_done(s)) {
    if ((st = fn(ud, s->runs, &t, err)))
      goto done;
    dnn_meas_sampler_add(s, t / dnn__d(s->runs));
  }
  dnn_meas_sampler_stats(s, out);
done:
  dnn_meas_sampler_free(s);
  return st;
}
