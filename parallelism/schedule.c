/*
 * Pipeline schedules: the order of forward and backward micro-batch steps
 * on each device, the activation memory that order keeps alive, and the
 * analytic engine's closed forms for one iteration.
 *
 * Orders (docs/models.md §8):
 * - GPipe (Huang et al., NeurIPS 2019): all m forwards, then all m
 *   backwards.
 * - 1F1B (PipeDream-Flush; Narayanan et al., ICML 2021): rank r runs
 *   w = min(p - r - 1, m) warm-up forwards, then alternates one forward
 *   and one backward, then drains the w backwards.
 * - Interleaved 1F1B (Narayanan et al., SC'21, Megatron-LM): rank r holds
 *   v chunks (virtual stages c p + r). Forwards go through the chunks in
 *   groups of p micro-batches; w = min(2 (p - r - 1) + (v - 1) p, m v)
 *   warm-up steps, then 1F1B over the m v virtual micro-batches; the
 *   backward of step k uses chunk v - 1 - (k mod pv) / p. Needs m to be a
 *   multiple of p.
 *
 * Closed forms, with per micro-batch stage times f_s, b_s (backward plus
 * recompute) and transfer times x_s (activations s -> s+1), g_s
 * (gradients s+1 -> s):
 * - GPipe is two permutation flow shops (identical jobs: makespan = sum of
 *   machine times + (m - 1) x the slowest machine), the transfers being
 *   machines too:  T = sum f + sum x + (m-1) max(f, x)
 *                    + sum b + sum g + (m-1) max(b, g).
 *   Exact for any stage times. Balanced and without transfers it is
 *   (m + p - 1)(f + b): bubble fraction (p - 1)/(m + p - 1).
 * - 1F1B: T = sum (f + b) + sum (x + g) + (m - 1) P, P the steady period:
 *   the largest mean over windows of consecutive stages a..c of
 *   (sum (f + b) + sum of the window's transfers) / (c - a + 1), the
 *   cycle a micro-batch's gradient and the next forwards close. Exact
 *   without transfers (then the same as GPipe when balanced); with
 *   transfers the event simulator is exact and this an estimate.
 * - Interleaved: T = m max_r (F_r + B_r) + (p - 1) max_s (f_s + b_s)
 *   + sum (x + g): balanced and without transfers the bubble is
 *   (p - 1)(f + b)/v per device, a fraction (p - 1)/(v m) of the ideal.
 * The data-parallel allreduce of rank r's gradients starts as buckets fill
 * during its last backward (ending at T - sum_{k<r}(b_k + g_k)) and runs
 * on one stream: bucket j starts at max(ready_j, end_{j-1}); the row-
 * sparse allgathers (docs/models.md §18) follow once backward is done.
 *
 * Invariant: nothing here allocates.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

size_t dnn__sched_ops(const dnn__stage_model *sm) {
  return 2 * sm->m * sm->v;
}

/* Warm-up forwards of rank r. */
static size_t warmup(const dnn__stage_model *sm, size_t r) {
  size_t total = sm->m * sm->v, w;
  switch (sm->schedule) {
  case DNN_SCHEDULE_GPIPE:
    return total;
  case DNN_SCHEDULE_INTERLEAVED:
    w = 2 * (sm->p - r - 1) + (sm->v - 1) * sm->p;
    break;
  case DNN_SCHEDULE_1F1B:
  default:
    w = sm->p - r - 1;
    break;
  }
  return w < total ? w : total;
}

/* Chunk and micro-batch of the k-th forward (or backward) virtual step. */
static void virtual_step(const dnn__stage_model *sm, size_t k, bool fwd,
                         dnn__op *op) {
  op->fwd = fwd;
  if (sm->v == 1) {
    op->chunk = 0;
    op->mb = k;
    return;
  }
  size_t pv = sm->p * sm->v;
  size_t c = (k % pv) / sm->p;
  op->chunk = fwd ? c : sm->v - 1 - c;
  op->mb = (k / pv) * sm->p + k % sm->p;
}

void dnn__sched_op(const dnn__stage_model *sm, size_t r, size_t k,
                   dnn__op *op) {
  size_t total = sm->m * sm->v, w = warmup(sm, r);
  DNN_ASSERT(k < 2 * total);
  if (k < w) {
    virtual_step(sm, k, true, op);
    return;
  }
  size_t j = k - w, steady = 2 * (total - w);
  if (j < steady) {
    if (j % 2 == 0)
      virtual_step(sm, w + j / 2, true, op);
    else
      virtual_step(sm, j / 2, false, op);
    return;
  }
  virtual_step(sm, total - w + (j - steady), false, op);
}

double dnn__sched_peak_activations(const dnn__stage_model *sm, size_t r) {
  double live = 0, peak = 0;
  size_t n = dnn__sched_ops(sm);
  /* After the warm-up, steady 1F1B pairs move through the chunks with a
   * period of p v pairs whose net change is zero, and the cool-down only
   * frees: the peak is reached within the warm-up and one period (the
   * walk stays O(p v) for any number of micro-batches). */
  size_t w = warmup(sm, r), horizon = w + 2 * (sm->p * sm->v + 1);
  if (sm->schedule != DNN_SCHEDULE_GPIPE && horizon < n)
    n = horizon;
  for (size_t k = 0; k < n; k++) {
    dnn__op op;
    dnn__sched_op(sm, r, k, &op);
    const dnn__stage *st = &sm->stages[op.chunk * sm->p + r];
    if (op.fwd) {
      live += st->act_kept_bytes;
      peak = fmax(peak, live);
    } else {
      peak = fmax(peak, live + st->act_extra_bytes);
      live -= st->act_kept_bytes;
    }
  }
  return peak;
}

/* ---- Closed forms -------------------------------------------------------- */

static double stage_b(const dnn__stage *st) {
  return st->bwd_s + st->recompute_s;
}

/* The transfer times at boundary s (s -> s + 1 and back). */
static double hop_fwd(const dnn__stage_model *sm, size_t s) {
  return dnn__xfer_time(&sm->stages[s].send_fwd);
}
static double hop_bwd(const dnn__stage_model *sm, size_t s) {
  return dnn__xfer_time(&sm->stages[s + 1].send_bwd);
}

/* The 1F1B steady period: the largest window mean. O(p^2). */
static double period_1f1b(const dnn__stage_model *sm) {
  double best = 0;
  for (size_t a = 0; a < sm->p; a++) {
    double sum = 0;
    for (size_t c = a; c < sm->p; c++) {
      const dnn__stage *st = &sm->stages[c];
      sum += st->fwd_s + stage_b(st);
      if (c > a)
        sum += hop_fwd(sm, c - 1) + hop_bwd(sm, c - 1);
      best = fmax(best, sum / dnn__d(c - a + 1));
    }
  }
  return best;
}

/* Time from the start of the iteration to the end of the pipeline (the
 * last backward anywhere), and the fill-and-drain transfer time. */
static double pipeline_time(const dnn__stage_model *sm, double *hops_s) {
  size_t V = sm->V;
  double m1 = dnn__d(sm->m - 1);
  double sf = 0, sb = 0, sx = 0, sg = 0, mf = 0, mb = 0, mx = 0, mg = 0;
  for (size_t s = 0; s < V; s++) {
    const dnn__stage *st = &sm->stages[s];
    sf += st->fwd_s;
    sb += stage_b(st);
    mf = fmax(mf, st->fwd_s);
    mb = fmax(mb, stage_b(st));
    if (s + 1 < V) {
      double x = hop_fwd(sm, s), g = hop_bwd(sm, s);
      sx += x;
      sg += g;
      mx = fmax(mx, x);
      mg = fmax(mg, g);
    }
  }
  *hops_s = sx + sg;
  switch (sm->schedule) {
  case DNN_SCHEDULE_GPIPE:
    return sf + sx + m1 * fmax(mf, mx) + sb + sg + m1 * fmax(mb, mg);
  case DNN_SCHEDULE_INTERLEAVED: {
    double dev = 0;
    for (size_t r = 0; r < sm->p; r++) {
      double t = 0;
      for (size_t c = 0; c < sm->v; c++) {
        const dnn__stage *st = &sm->stages[c * sm->p + r];
        t += st->fwd_s + stage_b(st);
      }
      dev = fmax(dev, t);
    }
    double chunk = 0;
    for (size_t s = 0; s < V; s++)
      chunk = fmax(chunk, sm->stages[s].fwd_s + stage_b(&sm->stages[s]));
    return dnn__d(sm->m) * dev + dnn__d(sm->p - 1) * chunk + sx + sg;
  }
  case DNN_SCHEDULE_1F1B:
  default:
    return sf + sb + sx + sg + m1 * period_1f1b(sm);
  }
}

/* Exposed allreduce time of rank r whose last backward ends at end_s. */
static double exposed_allreduce(const dnn__stage_model *sm, size_t r,
                                double end_s, double *comm_s,
                                dnn_comm_algo *algo) {
  *algo = dnn__stage_report_algo(sm, r);
  if (sm->d <= 1)
    return 0;
  /* Row-sparse gradients (allgathers of touched rows, docs/models.md §18)
   * follow the dense ones on the same stream, once backward is done. */
  double sparse = dnn__stage_sparse_time(sm, r);
  if (!sm->overlap) {
    double g = dnn__stage_dense_grad_bytes(sm, r);
    double t = dnn__stage_allreduce_time(sm, g, NULL) + sparse;
    *comm_s += t;
    return t;
  }
  /* Chunk c's last backward ends p backwards of each lower chunk before
   * the rank's last one (Megatron's cool-down order runs chunks v-1 .. 0);
   * with v = 1 it ends at end_s. Chunks are walked in that order. */
  double behind = 0, free_s = 0;
  bool any = false;
  for (size_t c = 0; c + 1 < sm->v; c++)
    behind += dnn__d(sm->p) * stage_b(&sm->stages[c * sm->p + r]);
  for (size_t cc = sm->v; cc-- > 0;) {
    size_t vs = cc * sm->p + r;
    const dnn__stage *st = &sm->stages[vs];
    double start_b = end_s - behind - st->bwd_s;
    dnn__bucket_iter it;
    dnn__bucket bk;
    dnn__bucket_begin(sm, vs, NULL, &it);
    while (dnn__bucket_next(sm, &it, &bk)) {
      double ready = start_b + bk.ready_s;
      free_s = (any ? fmax(free_s, ready) : ready) + bk.time_s;
      any = true;
      *comm_s += bk.time_s;
    }
    if (cc > 0)
      behind -= dnn__d(sm->p) * stage_b(&sm->stages[(cc - 1) * sm->p + r]);
  }
  if (sparse > 0) {
    free_s = (any ? fmax(free_s, end_s) : end_s) + sparse;
    any = true;
    *comm_s += sparse;
  }
  return any ? fmax(0.0, free_s - end_s) : 0;
}

dnn_status dnn__analytic_run(const dnn__stage_model *sm,
                             dnn__engine_result *out, dnn_error *err) {
  (void)err;
  memset(out, 0, sizeof *out);
  double hops = 0;
  double T_pipe = pipeline_time(sm, &hops);
  double m = dnn__d(sm->m);
  double behind = 0, best = -1;
  for (size_t r = 0; r < sm->p; r++) {
    double end_r = T_pipe - behind;
    /* Rank r's last backward is its chunk-0 stage r. */
    behind += stage_b(&sm->stages[r]) + (r + 1 < sm->V ? hop_bwd(sm, r) : 0);
    double comm = 0;
    dnn_comm_algo algo;
    double exposed = exposed_allreduce(sm, r, end_r, &comm, &algo);
    double opt = dnn__stage_optimizer_time(sm, r);
    double total = end_r + exposed + opt;
    if (total <= best)
      continue;
    best = total;
    double F = 0, B = 0, R = 0, p2p = 0;
    for (size_t c = 0; c < sm->v; c++) {
      size_t vs = c * sm->p + r;
      const dnn__stage *st = &sm->stages[vs];
      F += st->fwd_s;
      B += st->bwd_s;
      R += st->recompute_s;
      p2p += dnn__xfer_time(&st->send_fwd) + dnn__xfer_time(&st->send_bwd);
    }
    dnn_breakdown *bd = &out->breakdown;
    bd->forward_s = m * F;
    bd->backward_s = m * B;
    bd->recompute_s = m * R;
    bd->optimizer_s = opt;
    /* Transfers on rank r's critical path: the forward hops that bring
     * its first micro-batch, then the hops out to the last stage and back
     * that its last backward waits for (exact for GPipe; the interleaved
     * path crosses every boundary). */
    double path = hops;
    if (sm->v == 1) {
      path = 0;
      for (size_t k = 0; k + 1 < sm->p; k++)
        path += hop_fwd(sm, k) + (k >= r ? hop_bwd(sm, k) : 0);
    }
    double idle = end_r - m * (F + B + R);
    double hidden_hops = fmin(fmax(idle, 0.0), path);
    bd->comm_exposed_s = exposed + hidden_hops;
    /* Its own transfers and allreduces, and the transfers it waits for
     * (counted as the DES counts them, so exposed <= total). */
    bd->comm_s = comm + m * p2p + hidden_hops;
    /* The rest is bubble: a difference of sums, so clamp the rounding
     * error that would make it negative without a pipeline. */
    bd->bubble_s =
        fmax(0.0, total - (bd->forward_s + bd->backward_s + bd->recompute_s +
                           bd->optimizer_s + bd->comm_exposed_s));
    out->iteration_s = total;
    out->critical_rank = r;
    out->algo = algo;
  }
  return DNN_OK;
}
