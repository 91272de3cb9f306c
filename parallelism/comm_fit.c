/*
 * Collective times from a calibrated comm profile (comm.h
 * dnn_comm_profile_predict, `[cluster] comm_profile`): the one place that
 * turns fits of measured collectives into predicted times, used by every
 * collective of a prediction (internal.h dnn__comm_profile_cost) and by
 * calibrate/'s error report (dnn_calib_comm_predict), so that the two
 * cannot drift apart.
 *
 * Model (docs/calibration.md; docs/models.md §5.8): a fit holds the
 * measured time of one (operation, algorithm, communicator size P') as a
 * piecewise-linear curve in the message size m, and the Hockney link
 * parameters alpha, beta, gamma that reproduce it through comm.h's
 * formula T of that algorithm. At P = P' the curve is the answer. At
 * another size the curve is moved by the formula's ratio,
 *   t(P, m) = curve(P', m) T(P, m) / T(P', m),
 * which keeps what the measurement knows (the real constants, protocol
 * switches of the MPI library) and takes only the dependence on P from
 * the model; between two measured sizes the two moved curves are
 * interpolated geometrically in log P (a power law in P between them).
 * With `auto` the cheapest fitted algorithm at that size is taken, as an
 * MPI library's tuned selection would; a fit of the library's own choice
 * (algorithm auto in the profile, no link parameters) competes only at its
 * own communicator size.
 *
 * Invariant: pure functions of the profile; nothing here allocates.
 */
#include "internal.h"

#include <math.h>

/* comm.h's time of (op, algo) on `ranks` ranks of one node whose link has
 * the fit's alpha, beta, gamma. */
static bool model_time(dnn_comm_op op, dnn_comm_algo algo, size_t ranks,
                       const dnn_comm_fit *f, double bytes, double *t) {
  dnn_comm_link l = {f->alpha_s, f->beta_s_per_byte, f->gamma_s_per_byte};
  dnn_comm_topo topo = dnn_comm_default_topo(ranks, l);
  dnn_comm_cost c;
  if (dnn_comm_time(op, algo, bytes, &topo, &c, NULL) != DNN_OK)
    return false;
  *t = c.time_s;
  return isfinite(*t);
}

/* The measured curve of `f` moved to `ranks` ranks. */
static bool scaled(const dnn_comm_fit *f, dnn_comm_op op, dnn_comm_algo algo,
                   size_t ranks, double bytes, double *t) {
  double there, here;
  if (!f->has_link || !model_time(op, algo, ranks, f, bytes, &there) ||
      !model_time(op, algo, f->ranks, f, bytes, &here))
    return false;
  double curve = dnn_hw_comm_fit_time(f, bytes);
  *t = here > 0 && curve > 0 ? curve * there / here : there;
  return isfinite(*t);
}

dnn_status dnn_comm_profile_predict(const dnn_comm_profile *cp, dnn_comm_op op,
                                    dnn_comm_algo algo, size_t ranks,
                                    double bytes, double *time_s, bool *exact,
                                    dnn_error *err) {
  bool ex = false;
  const dnn_comm_fit *f =
      dnn_hw_comm_profile_lookup(cp, (int)op, (int)algo, ranks, &ex);
  if (exact)
    *exact = ex;
  if (f == NULL)
    return DNN_FAIL(err, DNN_ENOTFOUND,
                    "the comm profile has no fit of %s with %s",
                    dnn_comm_op_name(op), dnn_comm_algo_name(algo));
  if (ex) {
    *time_s = dnn_hw_comm_fit_time(f, bytes);
    return DNN_OK;
  }
  const dnn_comm_fit *lo = NULL, *hi = NULL;
  dnn_hw_comm_profile_bracket(cp, (int)op, (int)algo, ranks, &lo, &hi);
  double tl = 0, th = 0;
  bool ok_l = lo && scaled(lo, op, algo, ranks, bytes, &tl);
  bool ok_h = hi && scaled(hi, op, algo, ranks, bytes, &th);
  if (ok_l && ok_h && tl > 0 && th > 0) {
    double w = (log(dnn__d(ranks)) - log(dnn__d(lo->ranks))) /
               (log(dnn__d(hi->ranks)) - log(dnn__d(lo->ranks)));
    *time_s = exp((1 - w) * log(tl) + w * log(th));
    return DNN_OK;
  }
  if (ok_l || ok_h) {
    *time_s = ok_h ? th : tl;
    return DNN_OK;
  }
  return DNN_FAIL(err, DNN_ENOTFOUND,
                  "the comm profile has %s/%s only on %zu ranks and no "
                  "link parameters to predict %zu ranks",
                  dnn_comm_op_name(op), dnn_comm_algo_name(algo), f->ranks,
                  ranks);
}

/*
 * Whether the profile's fits describe a group like `topo`: fits measured
 * on one node price groups inside a node, fits measured across nodes price
 * groups that cross nodes. A one-node calibration says nothing about the
 * network between nodes, so a group that crosses nodes is priced by the
 * links (docs/models.md §5.8).
 */
static bool same_reach(const dnn_comm_profile *cp, const dnn_comm_topo *topo) {
  size_t nodes = dnn_hw_comm_profile_info(cp)->nodes;
  bool crosses =
      topo->ranks > (topo->ranks_per_node ? topo->ranks_per_node : 1);
  return crosses == (nodes > 1);
}

bool dnn__comm_profile_cost(const dnn_comm_profile *cp, dnn_comm_op op,
                            dnn_comm_algo algo, double bytes,
                            const dnn_comm_topo *topo, dnn_comm_cost *out) {
  if (cp == NULL || !(bytes >= 0) || !isfinite(bytes) || !same_reach(cp, topo))
    return false;
  dnn_comm_cost c = {0};
  c.algo = algo;
  if (topo->ranks <= 1 || bytes == 0) {
    /* Nothing moves, as in dnn_comm_time; only when the profile knows
     * the pair, so that the algorithm reported is a fitted one. */
    bool any = false;
    for (size_t i = 0; i < dnn_hw_comm_profile_count(cp) && !any; i++) {
      const dnn_comm_fit *f = dnn_hw_comm_profile_get(cp, i);
      any = f->op == (int)op &&
            (algo == DNN_COMM_ALGO_AUTO || f->algo == (int)algo);
    }
    if (!any)
      return false;
    if (algo == DNN_COMM_ALGO_AUTO)
      c.algo = DNN_COMM_ALGO_RING;
    *out = c;
    return true;
  }
  if (algo != DNN_COMM_ALGO_AUTO) {
    double t;
    if (dnn_comm_profile_predict(cp, op, algo, topo->ranks, bytes, &t, NULL,
                                 NULL) != DNN_OK)
      return false;
    c.time_s = t;
    *out = c;
    return true;
  }
  /* auto: the cheapest fitted algorithm at this size, the library's own
   * choice included where it was measured at this communicator size. */
  bool found = false;
  for (int a = 0; a <= DNN_COMM_ALGO_COUNT; a++) {
    double t;
    if (a > DNN_COMM_ALGO_AUTO && a < DNN_COMM_ALGO_COUNT &&
        !dnn_comm_supports(op, (dnn_comm_algo)a))
      continue;
    if (dnn_hw_comm_profile_lookup(cp, (int)op, a, topo->ranks, NULL) == NULL)
      continue;
    if (a == DNN_COMM_ALGO_AUTO || a == DNN_COMM_ALGO_COUNT) {
      /* No link parameters: only at a measured size. */
      bool ex;
      const dnn_comm_fit *f =
          dnn_hw_comm_profile_lookup(cp, (int)op, a, topo->ranks, &ex);
      if (!ex)
        continue;
      t = dnn_hw_comm_fit_time(f, bytes);
    } else if (dnn_comm_profile_predict(cp, op, (dnn_comm_algo)a, topo->ranks,
                                        bytes, &t, NULL, NULL) != DNN_OK) {
      continue;
    }
    if (!(t >= 0) || !isfinite(t))
      continue;
    if (!found || t < c.time_s) {
      c.time_s = t;
      c.algo = a < DNN_COMM_ALGO_COUNT ? (dnn_comm_algo)a : DNN_COMM_ALGO_AUTO;
      found = true;
    }
  }
  if (found)
    *out = c;
  return found;
}
