/*
 * Training techniques around one step (docs/models.md §16-§19): the
 * per-size configurations of mixed-size training, the resources a
 * scenario needs beyond its network and profile (the comm profile, the
 * networks at the other sizes), the expected maximum of the replicas'
 * speed factors under jitter, and the clock recurrence of stale-
 * synchronous and asynchronous training.
 *
 * Models:
 * - Mix & Match (Hoffer et al., arXiv 1908.08986; REFERENCE §3.2): a step
 *   draws image side S; B+ keeps B S^2 constant, D+ keeps M S^2 constant
 *   (M augmented copies per sample) and shrinks the batch where fewer than
 *   half a copy would be left (dnn_strat_size_config).
 * - Stragglers (REFERENCE §1.6): replica q's compute time in a step is
 *   C X_q with X_q log-normal, mean 1, coefficient of variation `jitter`;
 *   a synchronous step waits for the slowest, E[T] = C E[max_q X_q] + A.
 *   E[max of n] = int x d(F(x)^n) is computed by composite Simpson
 *   quadrature in z = (ln x - mu)/sigma of n phi(z) Phi(z)^(n-1) e^(mu +
 *   sigma z), on a grid wide enough for the bulk of the maximum (near
 *   sqrt(2 ln n)) and of the tilted tail (near sigma).
 * - SSP with staleness s (Ho et al., NIPS 2013) and asynchronous training:
 *   replica q may start step k once every replica has finished step
 *   k - s - 1 (s = 0: synchronous; asynchronous: never waits):
 *     f_q(k) = max(f_q(k-1), max_j f_j(k-s-1)) + C X_q(k) + A,
 *   run for DNN_STRAT_CLOCK_STEPS steps from the scenario's streams (the
 *   k-th factor of replica q is its stream's k-th draw, as the event
 *   simulator's k-th Monte Carlo draw is); the mean step time and the
 *   mean clock lag of a replica behind the slowest (the staleness its
 *   gradient has, <= s) are what it reports.
 *
 * Invariant: deterministic for a given seed; the quadrature and the size
 * rules do not allocate, the recurrence allocates two arrays per call.
 */
#include "internal.h"

#include <gsl/gsl_cdf.h>
#include <math.h>
#include <string.h>

/* ---- Mixed sizes --------------------------------------------------------- */

static size_t round_pos(double x) {
  double r = round(x);
  return r < 1 ? 1 : (size_t)r;
}

void dnn_strat_size_config(const dnn_scenario *scn, size_t size,
                           size_t *local_batch, size_t *copies) {
  size_t d = dnn_scn_data_degree(scn);
  size_t B0 = d ? scn->model.batch / d : scn->model.batch;
  size_t M0 = scn->training.augment_copies ? scn->training.augment_copies : 1;
  size_t m = scn->parallelism.microbatches ? scn->parallelism.microbatches : 1;
  double r = dnn__d(scn->model.image) / dnn__d(size ? size : 1);
  r *= r;
  size_t b = B0, M = M0;
  if (scn->training.size_policy == DNN_SIZE_POLICY_BATCH) {
    b = round_pos(dnn__d(B0) * r);
  } else {
    double x = dnn__d(M0) * r;
    if (x < 0.5) {
      M = 1;
      b = round_pos(dnn__d(B0) * x);
    } else {
      M = round_pos(x);
    }
  }
  /* Whole micro-batches. */
  size_t k = round_pos(dnn__d(b) / dnn__d(m));
  *local_batch = k * m;
  *copies = M;
}

/* ---- Resources ----------------------------------------------------------- */

dnn_status dnn__res_comm(dnn__res *r, const dnn_scenario *scn,
                         const dnn_comm_profile **out, dnn_error *err) {
  const char *path = scn->cluster.comm_profile;
  *out = NULL;
  if (path[0] == '\0')
    return DNN_OK;
  if (r->comm && strcmp(r->comm_path, path) == 0) {
    *out = r->comm;
    return DNN_OK;
  }
  dnn_hw_comm_profile_free(r->comm);
  r->comm = NULL;
  r->comm_path[0] = '\0';
  dnn_comm_profile *cp = NULL;
  dnn_status st = dnn_hw_comm_profile_load(path, &cp, err);
  if (st) {
    char where[DNN_SCN_PATH_MAX + 64];
    dnn_error_prefix(err, "%s",
                     dnn_scn_key_origin(scn, "cluster", "comm_profile", where,
                                        sizeof where));
    return st;
  }
  r->comm = cp;
  snprintf(r->comm_path, sizeof r->comm_path, "%s", path);
  *out = cp;
  return DNN_OK;
}

dnn_status dnn__res_net(dnn__res *r, const dnn_strat_input *in, size_t size,
                        const dnn_net **out, dnn_error *err) {
  if (size == in->scn->model.image) {
    *out = in->net;
    return DNN_OK;
  }
  for (size_t k = 0; k < r->n_nets; k++)
    if (r->nets[k].base == in->net && r->nets[k].size == size) {
      *out = r->nets[k].net;
      return DNN_OK;
    }
  dnn_net *net = NULL;
  dnn_status st = dnn_scn_build_net(in->scn, size, &net, err);
  if (st)
    return st;
  /* A full table evicts the oldest network (a sweep over models). */
  if (r->n_nets == DNN_SCN_MAX_SIZES) {
    dnn_net_free(r->nets[0].net);
    memmove(r->nets, r->nets + 1, (r->n_nets - 1) * sizeof r->nets[0]);
    r->n_nets--;
  }
  r->nets[r->n_nets].base = in->net;
  r->nets[r->n_nets].size = size;
  r->nets[r->n_nets].net = net;
  r->n_nets++;
  *out = net;
  return DNN_OK;
}

double dnn__res_emax(dnn__res *r, size_t n, double cv) {
  double nd = dnn__d(n);
  for (size_t k = 0; k < r->n_emax; k++)
    if (r->emax_n[k] == nd && r->emax_cv[k] == cv)
      return r->emax[k];
  double v = dnn__emax_lognormal(n, cv);
  size_t k = r->n_emax < DNN__EMAX_SLOTS ? r->n_emax++ : DNN__EMAX_SLOTS - 1;
  r->emax_n[k] = nd;
  r->emax_cv[k] = cv;
  r->emax[k] = v;
  return v;
}

void dnn__res_release(dnn__res *r) {
  if (r == NULL)
    return;
  dnn_hw_comm_profile_free(r->comm);
  for (size_t k = 0; k < r->n_nets; k++)
    dnn_net_free(r->nets[k].net);
  memset(r, 0, sizeof *r);
}

/* ---- Expected maxima ----------------------------------------------------- */

/* Quadrature step in z: the density of the maximum of n normals has a
 * width of at least about 1 / sqrt(2 ln n) (0.13 at n = 1e12); Simpson's
 * error at this step is far below 1e-9 of the result. */
#define EMAX_STEP 0.005

/* ln Phi(z), accurate in both tails. */
static double log_Phi(double z) {
  return z < 0 ? log(gsl_cdf_ugaussian_P(z)) : log1p(-gsl_cdf_ugaussian_Q(z));
}

/* int n phi(z) Phi(z)^(n-1) g(z) dz with g(z) = z (tilt 0) or
 * exp(sigma z) (tilt sigma > 0). */
static double emax_integral(size_t n, double sigma, bool exp_g) {
  double nd = dnn__d(n);
  double bulk = sqrt(2 * log(nd));
  double lo = -12, hi = fmax(12.0, bulk + 8) + (exp_g ? sigma : 0);
  size_t steps = (size_t)ceil((hi - lo) / EMAX_STEP);
  steps += steps % 2;
  double h = (hi - lo) / dnn__d(steps), sum = 0;
  for (size_t i = 0; i <= steps; i++) {
    double z = lo + h * dnn__d(i);
    double lf =
        log(nd) - 0.5 * z * z - 0.918938533204672742 + (nd - 1) * log_Phi(z);
    double g = exp_g ? exp(lf + sigma * z) : z * exp(lf);
    double w = (i == 0 || i == steps) ? 1 : (i % 2 ? 4 : 2);
    sum += w * g;
  }
  return sum * h / 3;
}

double dnn__emax_normal(size_t n) {
  if (n <= 1)
    return 0;
  return emax_integral(n, 0, false);
}

double dnn__emax_lognormal(size_t n, double cv) {
  if (n <= 1 || !(cv > 0))
    return 1;
  double s2 = log1p(cv * cv), sigma = sqrt(s2);
  return exp(-0.5 * s2) * emax_integral(n, sigma, true);
}

/* ---- The clock recurrence ------------------------------------------------ */

/* Work cap of one recurrence: speed draws (replicas x steps). */
#define CLOCK_MAX_DRAWS ((size_t)1 << 24)

dnn_status dnn__clock_run(size_t n, double C, double A, double cv,
                          dnn_consistency consistency, size_t s, uint64_t seed,
                          size_t device0, size_t stride, dnn__clock_result *out,
                          dnn_error *err) {
  memset(out, 0, sizeof *out);
  /* At most 2^20 replicas are simulated (the cost is replicas x steps):
   * beyond that the maximum is underestimated, by the difference between
   * sqrt(2 ln n) and sqrt(2 ln 2^20) standard deviations. */
  if (n == 0)
    n = 1;
  if (n > CLOCK_MAX_DRAWS / 16)
    n = CLOCK_MAX_DRAWS / 16;
  size_t K = DNN_STRAT_CLOCK_STEPS;
  if (n > CLOCK_MAX_DRAWS / K)
    K = CLOCK_MAX_DRAWS / n;
  double *f = dnn_calloc(n, sizeof *f);
  dnn__rng *rng = dnn_malloc(n * sizeof *rng);
  if (f == NULL || rng == NULL) {
    dnn_free(f);
    dnn_free(rng);
    return DNN_FAIL(err, DNN_ENOMEM,
                    "out of memory for the clocks of %zu replicas", n);
  }
  for (size_t q = 0; q < n; q++)
    dnn__rng_seed(&rng[q], seed, device0 + q * stride);
  /* M[k]: when every replica has finished step k (increasing in k). */
  double M[DNN_STRAT_CLOCK_STEPS];
  double lag = 0;
  for (size_t k = 0; k < K; k++) {
    double gate = 0;
    if (consistency == DNN_CONSISTENCY_SYNC && k >= 1)
      gate = M[k - 1];
    else if (consistency == DNN_CONSISTENCY_SSP && k >= s + 1)
      gate = M[k - s - 1];
    double mk = 0;
    for (size_t q = 0; q < n; q++) {
      double start = fmax(f[q], gate);
      /* Steps every replica had finished when this one started: the
       * clock of the weights it reads; its lag is k minus that. */
      size_t lo = 0, hi = k;
      while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (M[mid] <= start)
          lo = mid + 1;
        else
          hi = mid;
      }
      lag += dnn__d(k - lo);
      f[q] = start + C * dnn__rng_jitter(&rng[q], cv) + A;
      mk = fmax(mk, f[q]);
    }
    M[k] = mk;
  }
  double sum = 0;
  for (size_t q = 0; q < n; q++)
    sum += f[q];
  out->step_s = sum / dnn__d(n) / dnn__d(K);
  out->staleness = lag / dnn__d(n) / dnn__d(K);
  out->steps = K;
  dnn_free(f);
  dnn_free(rng);
  return DNN_OK;
}
