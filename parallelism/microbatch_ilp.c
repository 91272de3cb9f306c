/*
 * Micro-batched convolutions, network-wide (mbatch.h): µ-cuDNN's workspace
 * division (WD, Oyama et al., arXiv 1804.04806; REFERENCE §2.5;
 * docs/models.md §10). Each kernel k (a layer and pass) has a Pareto set
 * D_k of configurations c with time T_k(c) and workspace M_k(c); one 0/1
 * variable x_{k,c} per configuration:
 *
 *   minimise   sum_k sum_c T_k(c) x_{k,c}
 *   subject to sum_c x_{k,c} = 1                  for every kernel k
 *              sum_k sum_c M_k(c) x_{k,c} <= M_total
 *
 * (a multiple-choice knapsack). GLPK solves it: the LP relaxation by the
 * simplex method, then branch and cut (glp_intopt) from that basis with
 * Gomory mixed-integer cuts, stopping once the incumbent is proven within
 * the caller's relative gap of the optimum (0: exact). When every kernel's
 * fastest configuration fits together, that choice is optimal and GLPK is
 * not called.
 *
 * Why the cuts and the gap: with policy all the Pareto sets are dense and
 * many configurations differ by a few launch overheads, so the LP bound is
 * within 0.01% of the optimum almost at once but plain branch and bound
 * then enumerates near-ties (ResNet-18 at 64 MiB, 1668 binaries: no proof
 * after 120 s; with a 1e-4 gap and Gomory cuts: 0.4 s). On the same network
 * with powerOfTwo, Gomory cuts alone took the exact solve from 8.6 s to
 * 0.16 s. Switch to a dedicated multiple-choice knapsack algorithm if
 * exact solutions of dense sets are ever needed.
 *
 * Invariant: the returned choice's total workspace, summed here in double
 * precision, never exceeds the limit. GLPK accepts a row activity within
 * its feasibility tolerance of the bound and rounds binaries within its
 * integrality tolerance, so its choice can overshoot by a few parts in a
 * million; then the bound is lowered by twice the last overshoot and the
 * problem re-solved (the excess grows geometrically, so few rounds are
 * needed; a choice this gives up is within that tolerance of the limit).
 */
#include "internal.h"

#include "dnnsim/mbatch.h"

#include <glpk.h>
#include <limits.h>
#include <math.h>
#include <string.h>

/* Re-solves allowed after an overshoot; the excess doubles each time, so
 * this is far more than a tolerance of 1e-5 can need. */
#define MAX_RESOLVES 64

/* Index of the fastest configuration of a set (ties: smaller workspace),
 * and of the smallest workspace (ties: faster). */
static void extremes(const dnn_mb_set *s, size_t *fast, size_t *small) {
  *fast = *small = 0;
  for (size_t i = 1; i < dnn_mb_set_count(s); i++) {
    const dnn_mb_config *c = dnn_mb_set_get(s, i);
    const dnn_mb_config *f = dnn_mb_set_get(s, *fast);
    const dnn_mb_config *m = dnn_mb_set_get(s, *small);
    if (c->time_s < f->time_s ||
        (c->time_s == f->time_s && c->workspace_bytes < f->workspace_bytes))
      *fast = i;
    if (c->workspace_bytes < m->workspace_bytes ||
        (c->workspace_bytes == m->workspace_bytes && c->time_s < m->time_s))
      *small = i;
  }
}

static double choice_workspace(const dnn_mb_set *const *sets, size_t n,
                               const size_t *choice) {
  double sum = 0;
  for (size_t k = 0; k < n; k++)
    sum += dnn_mb_set_get(sets[k], choice[k])->workspace_bytes;
  return sum;
}

/* Solves the relaxation then the integer programme; reads the choice. */
static dnn_status solve(glp_prob *P, const dnn_mb_set *const *sets, size_t n,
                        double rel_gap, double time_limit_s, size_t *choice,
                        dnn_error *err) {
  glp_smcp sp;
  glp_init_smcp(&sp);
  sp.msg_lev = GLP_MSG_OFF;
  int rc = glp_simplex(P, &sp);
  if (rc != 0)
    return DNN_FAIL(err, DNN_ETOOLFAIL,
                    "GLPK simplex failed on the micro-batch programme "
                    "(glp_simplex returned %d)",
                    rc);
  rc = glp_get_status(P);
  if (rc != GLP_OPT)
    return DNN_FAIL(err, DNN_ETOOLFAIL,
                    "GLPK found no optimal relaxation of the micro-batch "
                    "programme (status %d)",
                    rc);
  glp_iocp ip;
  glp_init_iocp(&ip);
  ip.msg_lev = GLP_MSG_OFF;
  ip.presolve = GLP_OFF; /* start from the simplex basis above */
  ip.gmi_cuts = GLP_ON;
  ip.mip_gap = rel_gap;
  /* A time limit keeps a dense programme from running for hours (branch
   * and cut on near-ties): past it the best incumbent is taken, or, with
   * none, the caller's smallest-workspace choice already in `choice`. */
  bool timed = time_limit_s > 0;
  if (timed)
    ip.tm_lim = time_limit_s * 1e3 >= (double)INT_MAX
                    ? INT_MAX
                    : (int)(time_limit_s * 1e3);
  rc = glp_intopt(P, &ip);
  /* GLP_EMIPGAP: stopped with an incumbent proven within the gap;
   * GLP_ETMLIM: stopped at the time limit. */
  bool out_of_time = rc == GLP_ETMLIM;
  if (rc != 0 && rc != GLP_EMIPGAP && !out_of_time)
    return DNN_FAIL(err, DNN_ETOOLFAIL,
                    "GLPK branch and cut failed on the micro-batch programme "
                    "(glp_intopt returned %d)",
                    rc);
  rc = glp_mip_status(P);
  if (out_of_time && rc != GLP_OPT && rc != GLP_FEAS)
    return DNN_OK; /* no incumbent in time: keep the fallback choice */
  if (rc != GLP_OPT && !(rc == GLP_FEAS && (rel_gap > 0 || out_of_time)))
    return DNN_FAIL(err, DNN_ETOOLFAIL,
                    "GLPK found no optimal integer solution of the "
                    "micro-batch programme (status %d)",
                    rc);
  int col = 1;
  for (size_t k = 0; k < n; k++) {
    size_t picked = 0, count = dnn_mb_set_count(sets[k]);
    for (size_t c = 0; c < count; c++, col++)
      if (glp_mip_col_val(P, col) > 0.5) {
        choice[k] = c;
        picked++;
      }
    if (picked != 1)
      return DNN_FAIL(err, DNN_ETOOLFAIL,
                      "GLPK picked %zu configurations of kernel %zu (one "
                      "expected)",
                      picked, k);
  }
  return DNN_OK;
}

dnn_status dnn_mb_ilp_solve(const dnn_mb_set *const *sets, size_t n_sets,
                            double limit_bytes, double rel_gap,
                            double time_limit_s, size_t *choice,
                            dnn_error *err) {
  if (n_sets == 0)
    return DNN_FAIL(err, DNN_EINVAL,
                    "the micro-batch programme needs at "
                    "least one kernel");
  if (isnan(limit_bytes) || limit_bytes < 0)
    return DNN_FAIL(err, DNN_EINVAL,
                    "workspace limit %g bytes must be a number >= 0",
                    limit_bytes);
  if (!(rel_gap >= 0 && rel_gap < 1))
    return DNN_FAIL(err, DNN_EINVAL,
                    "relative optimality gap %g must be in [0, 1)", rel_gap);
  size_t ncols = 0;
  double t_scale = 0, ws_scale = limit_bytes, min_ws = 0;
  for (size_t k = 0; k < n_sets; k++) {
    size_t count = dnn_mb_set_count(sets[k]);
    if (count == 0)
      return DNN_FAIL(err, DNN_EINVAL,
                      "kernel %zu has no configuration to choose", k);
    size_t fast, small;
    extremes(sets[k], &fast, &small);
    choice[k] = fast;
    min_ws += dnn_mb_set_get(sets[k], small)->workspace_bytes;
    for (size_t c = 0; c < count; c++) {
      const dnn_mb_config *cf = dnn_mb_set_get(sets[k], c);
      t_scale = fmax(t_scale, cf->time_s);
      ws_scale = fmax(ws_scale, cf->workspace_bytes);
    }
    ncols += count;
  }
  if (min_ws > limit_bytes)
    return DNN_FAIL(err, DNN_ENOFIT,
                    "the smallest workspaces of the %zu kernels add up to "
                    "%.0f bytes, over the limit of %.0f bytes",
                    n_sets, min_ws, limit_bytes);
  if (choice_workspace(sets, n_sets, choice) <= limit_bytes)
    return DNN_OK; /* the fastest of every kernel fit together */
  /* Otherwise the smallest workspaces fit (checked above): the fallback
   * when GLPK finds no integer solution within its time limit. */
  for (size_t k = 0; k < n_sets; k++) {
    size_t fast, small;
    extremes(sets[k], &fast, &small);
    choice[k] = small;
  }
  if (ncols > (size_t)INT_MAX / 2 - 1 || n_sets > (size_t)INT_MAX - 2)
    return DNN_FAIL(err, DNN_ERANGE, "%zu configurations are too many for GLPK",
                    ncols);
  /* Scale both to at most 1 so that GLPK's tolerances are relative. */
  if (!(t_scale > 0))
    t_scale = 1;
  if (!(ws_scale > 0))
    ws_scale = 1;

  dnn_status st = DNN_OK;
  size_t nnz = 2 * ncols;
  int *ia = dnn_malloc((nnz + 1) * sizeof *ia);
  int *ja = dnn_malloc((nnz + 1) * sizeof *ja);
  double *ar = dnn_malloc((nnz + 1) * sizeof *ar);
  int term = glp_term_out(GLP_OFF);
  glp_prob *P = NULL;
  if (!ia || !ja || !ar) {
    st = DNN_FAIL(err, DNN_ENOMEM,
                  "out of memory for the micro-batch "
                  "programme");
    goto fail;
  }
  P = glp_create_prob();
  glp_set_obj_dir(P, GLP_MIN);
  int wrow = (int)n_sets + 1;
  glp_add_rows(P, wrow);
  for (int r = 1; r < wrow; r++)
    glp_set_row_bnds(P, r, GLP_FX, 1.0, 1.0);
  double ub = limit_bytes;
  glp_set_row_bnds(P, wrow, GLP_UP, 0.0, ub / ws_scale);
  glp_add_cols(P, (int)ncols);
  int col = 1, e = 1;
  for (size_t k = 0; k < n_sets; k++)
    for (size_t c = 0; c < dnn_mb_set_count(sets[k]); c++, col++) {
      const dnn_mb_config *cf = dnn_mb_set_get(sets[k], c);
      glp_set_col_kind(P, col, GLP_BV);
      glp_set_obj_coef(P, col, cf->time_s / t_scale);
      ia[e] = (int)k + 1, ja[e] = col, ar[e] = 1.0, e++;
      ia[e] = wrow, ja[e] = col, ar[e] = cf->workspace_bytes / ws_scale, e++;
    }
  glp_load_matrix(P, (int)nnz, ia, ja, ar);

  for (int round = 0;; round++) {
    if ((st = solve(P, sets, n_sets, rel_gap, time_limit_s, choice, err)))
      goto fail;
    double over = choice_workspace(sets, n_sets, choice) - limit_bytes;
    if (over <= 0)
      break;
    if (round == MAX_RESOLVES) {
      st = DNN_FAIL(err, DNN_ENUMERIC,
                    "GLPK's micro-batch choice stays %.0f bytes over the "
                    "workspace limit",
                    over);
      goto fail;
    }
    ub -= 2 * over;
    glp_set_row_bnds(P, wrow, GLP_UP, 0.0, ub / ws_scale);
  }

fail:
  if (P)
    glp_delete_prob(P);
  glp_term_out(term);
  dnn_free(ia);
  dnn_free(ja);
  dnn_free(ar);
  return st;
}
