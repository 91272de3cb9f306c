/*
 * The executor (include/dnnsim/measure.h): real training iterations of a
 * network under data and pipeline parallelism, one MPI rank per device,
 * timed the way Deep500 times a training step (warm-up iterations, then
 * repeats summarised by the median and a distribution-free confidence
 * interval; REFERENCE.md §5.2).
 *
 * Structure mirrors the predictor so that each measured component has a
 * predicted counterpart (parallelism/schedule.c, stage.c, taskgraph.c):
 * rank = stage x data + replica; a stage's micro-batches run in the GPipe
 * order (all forwards, then the backwards in micro-batch order) or 1F1B
 * (min(p - s - 1, m) warm-up forwards, then one forward and one backward,
 * then the remaining backwards); a forward step receives the stage's input
 * tensors, runs every layer's forward in order and sends the tensors the
 * next stage reads; a backward step receives their gradients, runs
 * backward-data and backward-weights of every layer in reverse order and
 * sends the input gradients back. Gradients of a stage fill buckets in
 * reverse layer order: a bucket closes at the highest layer k at which
 * the gradients of layers [k, end) reach bucket_bytes, or at the stage's
 * first layer (stage.c). With overlap, the last micro-batch's backward
 * starts MPI_Iallreduce on each bucket as soon as its closing layer is
 * done, and every later layer step calls MPI_Testall on what is in flight
 * (MPI progresses a shared-memory collective only inside MPI calls);
 * without overlap the buckets are allreduced with blocking calls after
 * the backward pass. The optimizer runs when every collective and send
 * has completed.
 *
 * Timing: an iteration starts at a barrier; every step is timed with the
 * monotonic clock and charged to forward, backward (compute, including
 * the layout conversions a layer needs), exposed communication (blocking
 * collectives, waits, progress calls, sends), bubble (waiting in a
 * receive for a neighbour stage) or optimizer. A fused backward call
 * (batch norm) is split between backward-data and backward-weights by the
 * model's FLOPs, as the calibration splits it (dnnl.c).
 *
 * Invariant: every rank runs the same sequence of world-level collectives
 * (split, barriers, reductions of the results), and a status that fails on
 * one rank during set-up is agreed on by all before any other collective.
 */
#define _POSIX_C_SOURCE 200809L
#include "exec_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if DNNSIM_HAVE_MPI
#include <mpi.h>
#endif

static const char *const STEP_NAMES[] = {
#define DNN_MEAS_STEP_NAME_(id, name) name,
    DNN_MEAS_STEP_LIST(DNN_MEAS_STEP_NAME_)
#undef DNN_MEAS_STEP_NAME_
};

const char *dnn_meas_step_name(dnn_meas_step_kind k) {
  return (unsigned)k < DNN_MEAS_STEP_COUNT ? STEP_NAMES[k] : "?";
}

dnn_meas_exec_params dnn_meas_exec_default_params(void) {
  dnn_meas_exec_params p;
  memset(&p, 0, sizeof p);
  p.data = 1;
  p.pipeline = 1;
  p.batch = 8;
  p.microbatches = 1;
  p.schedule = DNN_MEAS_EXEC_1F1B;
  p.overlap = true;
  p.bucket_bytes = 25.0 * 1024 * 1024;
  p.allreduce = DNN_COMM_ALGO_AUTO;
  p.optimizer = DNN_MEAS_EXEC_SGD;
  p.lr = 0.01;
  p.dtype = DNN_DTYPE_FP32;
  p.threads = 1;
  p.warmup = 2;
  p.repeats = 10;
  p.confidence = 0.95;
  p.seed = 0x5eed;
  p.accumulate = true;
  p.copies = 1;
  p.workspace_bytes = 512.0 * 1024 * 1024;
  return p;
}

/* Slots a stage needs: micro-batches with a forward and no backward yet
 * at once (GPipe all m; 1F1B its warm-up plus one). */
static size_t slots_of(const dnn_meas_exec_params *p, size_t stage) {
  size_t m = p->microbatches;
  if (p->schedule == DNN_MEAS_EXEC_GPIPE)
    return m;
  size_t w = p->pipeline - stage;
  return w < m ? w : m;
}

dnn_status dnn_meas_exec_params_check(const dnn_meas_exec_params *p,
                                      const dnn_net *net, dnn_error *err) {
  size_t L = dnn_net_layer_count(net);
  if (p->data < 1 || p->pipeline < 1)
    return DNN_FAIL(err, DNN_EINVAL,
                    "executor: data (%zu) and pipeline (%zu) must be >= 1",
                    p->data, p->pipeline);
  if (p->pipeline > L)
    return DNN_FAIL(err, DNN_EINVAL,
                    "executor: %zu pipeline stages for a network of %zu "
                    "layers",
                    p->pipeline, L);
  if (p->microbatches < 1)
    return DNN_FAIL(err, DNN_EINVAL, "executor: microbatches must be >= 1");
  if (p->copies < 1 || p->copies > DNN_MEAS_EXEC_MAX_COPIES)
    return DNN_FAIL(err, DNN_EINVAL,
                    "executor: copies must be in [1, %d], not %zu",
                    DNN_MEAS_EXEC_MAX_COPIES, p->copies);
  if (p->batch == 0 || p->batch % (p->data * p->microbatches) != 0)
    return DNN_FAIL(err, DNN_EINVAL,
                    "executor: the batch %zu is not a multiple of data x "
                    "microbatches = %zu x %zu",
                    p->batch, p->data, p->microbatches);
  for (size_t s = 0; s < p->pipeline; s++)
    if (slots_of(p, s) > DNN__XENG_MAX_SLOTS)
      return DNN_FAIL(err, DNN_EINVAL,
                      "executor: stage %zu would keep %zu micro-batches in "
                      "flight; at most %d",
                      s, slots_of(p, s), DNN__XENG_MAX_SLOTS);
  if (p->stage_first) {
    if (p->stage_first[0] != 0)
      return DNN_FAIL(err, DNN_EINVAL,
                      "executor: stage 0 must start at layer 0, not %zu",
                      p->stage_first[0]);
    for (size_t s = 1; s < p->pipeline; s++)
      if (p->stage_first[s] <= p->stage_first[s - 1] || p->stage_first[s] >= L)
        return DNN_FAIL(err, DNN_EINVAL,
                        "executor: stage %zu starts at layer %zu: stage "
                        "starts must increase and lie within the %zu layers",
                        s, p->stage_first[s], L);
  }
  if (!(p->bucket_bytes > 0) || !isfinite(p->bucket_bytes))
    return DNN_FAIL(err, DNN_EINVAL,
                    "executor: bucket_bytes must be > 0 and finite, not %g",
                    p->bucket_bytes);
  if (!(p->lr > 0) || !isfinite(p->lr))
    return DNN_FAIL(err, DNN_EINVAL, "executor: lr must be > 0, not %g", p->lr);
  if ((unsigned)p->optimizer > DNN_MEAS_EXEC_ADAM ||
      (unsigned)p->schedule > DNN_MEAS_EXEC_1F1B ||
      (unsigned)p->allreduce >= DNN_COMM_ALGO_COUNT)
    return DNN_FAIL(err, DNN_EINVAL,
                    "executor: unknown optimizer, schedule or allreduce");
  if (p->repeats < 1)
    return DNN_FAIL(err, DNN_EINVAL, "executor: repeats must be >= 1");
  if (!(p->confidence > 0 && p->confidence < 1))
    return DNN_FAIL(err, DNN_EINVAL,
                    "executor: confidence must be in (0, 1), not %g",
                    p->confidence);
  if (p->dtype != DNN_DTYPE_FP32)
    return DNN_FAIL(err, DNN_EUNSUPPORTED, "executor: runs fp32 only, not %s",
                    dnn_dtype_name(p->dtype));
  return DNN_OK;
}

/* ------------------------------------------------------------------------ */
/* The object                                                               */
/* ------------------------------------------------------------------------ */

/* Per-iteration components of one rank. */
enum { C_FWD, C_BWD, C_COMM, C_BUBBLE, C_OPT, C_GLUE, C_COUNT };

/* What each rank reports after a run: the components' medians, its
 * median iteration, gradient bytes, buckets, buffer bytes per parameter. */
enum { INFO = C_COUNT + 4 };

typedef struct bucket {
  size_t close, hi; /* layers [close, hi) */
  size_t off, n;    /* floats of the gradient buffer */
} bucket;

struct dnn_meas_exec {
  dnn_meas_exec_params p;
  const dnn_net *net;
  size_t L;
  size_t rank, ranks, stage, replica;
  size_t first, count; /* the stage's layers */
  size_t mbs, slots;
  dnn__xeng *eng;
  bool use_mpi;
  bool forced;
  dnn_meas_exec_step *steps;
  size_t *sref; /* per step: its boundary tensor index (sends, receives) */
  size_t n_steps, cap_steps, cap_sref;
  bucket *buckets;
  size_t n_buckets;
  double grad_bytes;
  int threads_prev;
  /* Timing: per repeat, components and per-layer pass times. */
  double *iter;      /* repeats */
  double *comp;      /* repeats x C_COUNT */
  double *layer_t;   /* repeats x L x DNN_PASS_COUNT */
  double *layer_md;  /* L x DNN_PASS_COUNT, after a run */
  double *rank_info; /* ranks x INFO, every rank's medians after a run */
  double loss_first; /* the loss after the last run's first iteration */
#if DNNSIM_HAVE_MPI
  MPI_Comm dp;      /* the stage's replicas (MPI_COMM_NULL when data = 1) */
  MPI_Request *req; /* buckets, then act sends, then grad sends */
  size_t n_req;
  bool active; /* some request may be in flight */
#endif
};

/* ---- MPI helpers ----------------------------------------------------------
 */

#if DNNSIM_HAVE_MPI
/*
 * Every rank returns the status of the lowest failing rank, with its
 * message (the others say which rank failed).
 */
static dnn_status agree(dnn_status st, size_t rank, dnn_error *err) {
  int mine = st ? (int)rank : INT32_MAX, low = INT32_MAX;
  if (MPI_Allreduce(&mine, &low, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD) !=
      MPI_SUCCESS)
    return DNN_FAIL(err, DNN_EMPI, "MPI_Allreduce of the status failed");
  if (low == INT32_MAX)
    return DNN_OK;
  int code = (int)st;
  char msg[DNN_ERROR_MSG_MAX];
  memset(msg, 0, sizeof msg);
  if ((int)rank == low && err)
    snprintf(msg, sizeof msg, "%s", err->msg);
  if (MPI_Bcast(&code, 1, MPI_INT, low, MPI_COMM_WORLD) != MPI_SUCCESS ||
      MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, low, MPI_COMM_WORLD) !=
          MPI_SUCCESS)
    return DNN_FAIL(err, DNN_EMPI, "MPI_Bcast of the status failed");
  if ((int)rank != low)
    return DNN_FAIL(err, (dnn_status)code, "rank %d: %s", low, msg);
  return (dnn_status)code;
}

/* Sets coll_tuned_allreduce_algorithm through MPI_T (read when a
 * communicator is created; mpi.c explains why); false when it cannot. */
static bool force_allreduce(int id) {
  return dnn__meas_mpi_cvar_write("coll_tuned_allreduce_algorithm", id, NULL) ==
         DNN_OK;
}

/* The coll_tuned id of a comm.h allreduce algorithm, or 0. */
static int forced_id(dnn_comm_algo a) {
  size_t n = 0;
  const dnn_meas_mpi_algo *t = dnn_meas_mpi_algos(&n);
  for (size_t k = 0; k < n; k++)
    if (t[k].op == DNN_COMM_ALLREDUCE && t[k].model == a)
      return t[k].mpi_id;
  return 0;
}
#endif

/* ---- Steps ----------------------------------------------------------------
 */

static dnn_status step_add(dnn_meas_exec *x, dnn_meas_step_kind kind,
                           size_t layer, size_t mb, dnn_error *err) {
  if (!dnn__grow((void **)&x->steps, &x->cap_steps, x->n_steps + 1,
                 sizeof *x->steps) ||
      !dnn__grow((void **)&x->sref, &x->cap_sref, x->n_steps + 1,
                 sizeof *x->sref))
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory building the executor");
  x->sref[x->n_steps] = DNN_MEAS_NONE;
  dnn_meas_exec_step *s = &x->steps[x->n_steps++];
  memset(s, 0, sizeof *s);
  s->kind = kind;
  s->layer = layer;
  s->microbatch = mb;
  s->bucket = DNN_MEAS_NONE;
  s->peer = DNN_MEAS_NONE;
  if (kind == DNN_MEAS_STEP_FWD) {
    s->in_rank = dnn__xeng_dims(x->eng, layer, false, s->in_dims);
    s->out_rank = dnn__xeng_dims(x->eng, layer, true, s->out_dims);
  }
  return DNN_OK;
}

/* A send or receive of boundary tensor q. */
static dnn_status msg_add(dnn_meas_exec *x, dnn_meas_step_kind kind, size_t q,
                          size_t mb, dnn_error *err) {
  bool out = kind == DNN_MEAS_STEP_SEND_ACT || kind == DNN_MEAS_STEP_RECV_GRAD;
  size_t layer =
      out ? dnn__xeng_out_layer(x->eng, q) : dnn__xeng_in_layer(x->eng, q);
  size_t floats =
      out ? dnn__xeng_out_floats(x->eng, q) : dnn__xeng_in_floats(x->eng, q);
  dnn_status st = step_add(x, kind, layer, mb, err);
  if (st)
    return st;
  x->sref[x->n_steps - 1] = q;
  dnn_meas_exec_step *s = &x->steps[x->n_steps - 1];
  s->bytes = dnn__d(floats) * 4.0;
  s->peer = out ? x->rank + x->p.data : x->rank - x->p.data;
  return DNN_OK;
}

static dnn_status reduce_add(dnn_meas_exec *x, size_t b, bool blocking,
                             dnn_error *err) {
  dnn_status st =
      step_add(x, DNN_MEAS_STEP_ALLREDUCE, DNN_MEAS_NONE, DNN_MEAS_NONE, err);
  if (st)
    return st;
  dnn_meas_exec_step *s = &x->steps[x->n_steps - 1];
  s->bucket = b;
  s->blocking = blocking;
  s->bytes = dnn__d(x->buckets[b].n) * 4.0;
  return DNN_OK;
}

/* The k-th operation of the stage's schedule: forward (true) or backward
 * of micro-batch *mb (schedule.c's dnn__sched_op with one chunk). */
static bool sched_op(const dnn_meas_exec *x, size_t k, size_t *mb) {
  size_t m = x->p.microbatches;
  size_t w =
      x->p.schedule == DNN_MEAS_EXEC_GPIPE ? m : x->p.pipeline - x->stage - 1;
  if (w > m)
    w = m;
  if (k < w) {
    *mb = k;
    return true;
  }
  size_t j = k - w, steady = 2 * (m - w);
  if (j < steady) {
    *mb = j % 2 == 0 ? w + j / 2 : j / 2;
    return j % 2 == 0;
  }
  *mb = m - w + (j - steady);
  return false;
}

/* Buckets of the stage (the predictor's rule, stage.c bucket_scan). */
static dnn_status make_buckets(dnn_meas_exec *x, dnn_error *err) {
  x->buckets = dnn_calloc(x->count, sizeof *x->buckets);
  if (x->buckets == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory building the executor");
  size_t hi = x->first + x->count;
  double bytes = 0;
  for (size_t i = hi; i-- > x->first;) {
    bytes += dnn__d(dnn_net_layer(x->net, i)->params) * 4.0;
    if (bytes > 0 && (bytes >= x->p.bucket_bytes || i == x->first)) {
      bucket *b = &x->buckets[x->n_buckets++];
      b->close = i;
      b->hi = hi;
      dnn__xeng_grad_range(x->eng, i, hi, &b->off, &b->n);
      hi = i;
      bytes = 0;
    }
  }
  if (x->p.data > 1)
    for (size_t b = 0; b < x->n_buckets; b++)
      x->grad_bytes += dnn__d(x->buckets[b].n) * 4.0;
  return DNN_OK;
}

static dnn_status make_steps(dnn_meas_exec *x, dnn_error *err) {
  dnn_status st = DNN_OK;
  size_t m = x->p.microbatches;
  size_t n_in = dnn__xeng_n_in(x->eng), n_out = dnn__xeng_n_out(x->eng);
  size_t hi = x->first + x->count;
  bool dp = x->p.data > 1;
  for (size_t k = 0; k < 2 * m && st == DNN_OK; k++) {
    size_t mb;
    if (sched_op(x, k, &mb)) {
      for (size_t q = 0; q < n_in && st == DNN_OK; q++)
        st = msg_add(x, DNN_MEAS_STEP_RECV_ACT, q, mb, err);
      for (size_t i = x->first; i < hi && st == DNN_OK; i++)
        st = step_add(x, DNN_MEAS_STEP_FWD, i, mb, err);
      for (size_t q = 0; q < n_out && st == DNN_OK; q++)
        st = msg_add(x, DNN_MEAS_STEP_SEND_ACT, q, mb, err);
      continue;
    }
    for (size_t q = 0; q < n_out && st == DNN_OK; q++)
      if (dnn__xeng_out_needs_grad(x->eng, q))
        st = msg_add(x, DNN_MEAS_STEP_RECV_GRAD, q, mb, err);
    size_t next = 0;
    for (size_t i = hi; i-- > x->first && st == DNN_OK;) {
      if (dnn__xeng_runs(x->eng, i, DNN_PASS_BWD_DATA))
        st = step_add(x, DNN_MEAS_STEP_BWD_DATA, i, mb, err);
      if (st == DNN_OK && dnn__xeng_runs(x->eng, i, DNN_PASS_BWD_WEIGHTS))
        st = step_add(x, DNN_MEAS_STEP_BWD_WEIGHTS, i, mb, err);
      /* The last micro-batch's backward releases each bucket it fills. */
      if (st == DNN_OK && dp && x->p.overlap && mb == m - 1 &&
          next < x->n_buckets && x->buckets[next].close == i)
        st = reduce_add(x, next++, false, err);
    }
    for (size_t q = 0; q < n_in && st == DNN_OK; q++)
      if (dnn__xeng_in_needs_grad(x->eng, q))
        st = msg_add(x, DNN_MEAS_STEP_SEND_GRAD, q, mb, err);
  }
  for (size_t b = 0; st == DNN_OK && dp && !x->p.overlap && b < x->n_buckets;
       b++)
    st = reduce_add(x, b, true, err);
  /* Whatever is still in flight (overlapped buckets, sends). */
  if (st == DNN_OK && x->use_mpi && ((dp && x->p.overlap) || n_in + n_out > 0))
    st = step_add(x, DNN_MEAS_STEP_WAIT, DNN_MEAS_NONE, DNN_MEAS_NONE, err);
  if (st == DNN_OK)
    st =
        step_add(x, DNN_MEAS_STEP_OPTIMIZER, DNN_MEAS_NONE, DNN_MEAS_NONE, err);
  return st;
}

/* ---- Allocation -----------------------------------------------------------
 */

dnn_status dnn_meas_exec_alloc(const dnn_net *net,
                               const dnn_meas_exec_params *p, dnn_meas_mpi *mpi,
                               dnn_meas_exec **out, dnn_error *err) {
  *out = NULL;
  dnn_status st = dnn_meas_exec_params_check(p, net, err);
  if (st)
    return st;
  size_t need = p->data * p->pipeline;
#if !DNNSIM_HAVE_MPI
  if (mpi != NULL || need > 1)
    return DNN_FAIL(err, DNN_EUNSUPPORTED,
                    "the executor needs MPI for %zu ranks: this dnnsim was "
                    "built without it (install libopenmpi-dev and rebuild "
                    "with -DDNNSIM_WITH_MPI=ON)",
                    need);
#endif
  size_t ranks = mpi ? dnn_meas_mpi_size(mpi) : 1;
  if (ranks != need)
    return DNN_FAIL(err, DNN_EINVAL,
                    "the strategy has data x pipeline = %zu x %zu = %zu "
                    "devices, but %zu MPI rank%s running: start it with "
                    "mpirun -np %zu",
                    p->data, p->pipeline, need, ranks,
                    ranks == 1 ? " is" : "s are", need);
  dnn_meas_exec *x = dnn_calloc(1, sizeof *x);
  if (x == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory building the executor");
  x->loss_first = (double)NAN;
  x->p = *p;
  x->p.stage_first = NULL;
  x->net = net;
  x->L = dnn_net_layer_count(net);
  x->use_mpi = mpi != NULL;
  x->rank = mpi ? dnn_meas_mpi_rank(mpi) : 0;
  x->ranks = ranks;
  x->stage = x->rank / p->data;
  x->replica = x->rank % p->data;
  if (p->stage_first) {
    x->first = p->stage_first[x->stage];
    size_t next =
        x->stage + 1 < p->pipeline ? p->stage_first[x->stage + 1] : x->L;
    x->count = next - x->first;
  } else {
    x->first = x->L * x->stage / p->pipeline;
    x->count = x->L * (x->stage + 1) / p->pipeline - x->first;
  }
  x->mbs = p->batch / (p->data * p->microbatches) * p->copies;
  x->slots = slots_of(p, x->stage);
  x->threads_prev = dnn__xeng_threads(p->threads);
#if DNNSIM_HAVE_MPI
  x->dp = MPI_COMM_NULL;
#endif
  dnn__xeng_params ep = {net,
                         x->first,
                         x->count,
                         x->mbs,
                         p->copies,
                         x->slots,
                         (int)p->optimizer,
                         p->lr,
                         p->seed + 1000003ULL * x->stage,
                         p->device == DNN_MEAS_EXEC_GPU ? DNN__XENG_CUDNN
                                                        : DNN__XENG_DNNL,
                         p->workspace_bytes};
  st = dnn__xeng_alloc(&ep, &x->eng, err);
  if (st == DNN_OK)
    st = make_buckets(x, err);
  if (st == DNN_OK)
    st = make_steps(x, err);
  size_t R = p->repeats;
  if (st == DNN_OK) {
    x->iter = dnn_calloc(R, sizeof *x->iter);
    x->comp = dnn_calloc(R * C_COUNT, sizeof *x->comp);
    x->layer_t = dnn_calloc(R * x->L * DNN_PASS_COUNT, sizeof *x->layer_t);
    x->layer_md = dnn_calloc(x->L * DNN_PASS_COUNT, sizeof *x->layer_md);
    if (!x->iter || !x->comp || !x->layer_t || !x->layer_md)
      st = DNN_FAIL(err, DNN_ENOMEM, "out of memory building the executor");
  }
#if DNNSIM_HAVE_MPI
  if (mpi) {
    if ((st = agree(st, x->rank, err)))
      goto fail;
    /* The replicas of each stage, with the requested allreduce algorithm
     * forced on their communicator when every rank can. */
    if (p->data > 1) {
      int id = p->allreduce != DNN_COMM_ALGO_AUTO ? forced_id(p->allreduce) : 0;
      bool can = id > 0 && dnn_meas_mpi_can_force(mpi) && force_allreduce(id);
      int c = can ? 1 : 0, all = 0;
      DNN__MEAS_MPI_TRY(
          MPI_Allreduce(&c, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
      if (can && !all)
        force_allreduce(0);
      x->forced = all == 1;
      DNN__MEAS_MPI_TRY(MPI_Comm_split(MPI_COMM_WORLD, (int)x->stage,
                                       (int)x->replica, &x->dp));
      if (x->forced)
        force_allreduce(0);
      DNN__MEAS_MPI_TRY(MPI_Comm_set_errhandler(x->dp, MPI_ERRORS_RETURN));
    }
    size_t n_in = dnn__xeng_n_in(x->eng), n_out = dnn__xeng_n_out(x->eng);
    x->n_req = x->n_buckets + x->slots * (n_in + n_out);
    x->req = dnn_malloc((x->n_req ? x->n_req : 1) * sizeof *x->req);
    if (x->req == NULL)
      st = DNN_FAIL(err, DNN_ENOMEM, "out of memory building the executor");
    for (size_t k = 0; x->req && k < x->n_req; k++)
      x->req[k] = MPI_REQUEST_NULL;
    st = agree(st, x->rank, err);
  }
#endif
  if (st)
    goto fail;
  *out = x;
  return DNN_OK;
fail:
  dnn_meas_exec_free(x);
  return st;
}

void dnn_meas_exec_free(dnn_meas_exec *x) {
  if (x == NULL)
    return;
#if DNNSIM_HAVE_MPI
  if (x->dp != MPI_COMM_NULL)
    MPI_Comm_free(&x->dp);
  dnn_free(x->req);
#endif
  dnn__xeng_free(x->eng);
  dnn__xeng_threads_restore(x->threads_prev);
  dnn_free(x->steps);
  dnn_free(x->sref);
  dnn_free(x->buckets);
  dnn_free(x->iter);
  dnn_free(x->comp);
  dnn_free(x->layer_t);
  dnn_free(x->layer_md);
  dnn_free(x->rank_info);
  dnn_free(x);
}

size_t dnn_meas_exec_stage(const dnn_meas_exec *x) {
  return x->stage;
}

size_t dnn_meas_exec_replica(const dnn_meas_exec *x) {
  return x->replica;
}

size_t dnn_meas_exec_step_count(const dnn_meas_exec *x) {
  return x->n_steps;
}

const dnn_meas_exec_step *dnn_meas_exec_step_get(const dnn_meas_exec *x,
                                                 size_t i) {
  DNN_ASSERT(i < x->n_steps);
  return &x->steps[i];
}

void dnn_meas_exec_layer_time(const dnn_meas_exec *x, size_t i,
                              double time_s[DNN_PASS_COUNT]) {
  DNN_ASSERT(i < x->L);
  for (size_t p = 0; p < DNN_PASS_COUNT; p++)
    time_s[p] = x->layer_md[i * DNN_PASS_COUNT + p];
}

/* ------------------------------------------------------------------------ */
/* One iteration                                                            */
/* ------------------------------------------------------------------------ */

#if DNNSIM_HAVE_MPI
/* Request slots: bucket b; the act send of output q from a slot; the
 * grad send of input q from a slot. */
static MPI_Request *req_act(dnn_meas_exec *x, size_t q, size_t slot) {
  return &x->req[x->n_buckets + slot * dnn__xeng_n_out(x->eng) + q];
}

static MPI_Request *req_grad(dnn_meas_exec *x, size_t q, size_t slot) {
  return &x->req[x->n_buckets + x->slots * dnn__xeng_n_out(x->eng) +
                 slot * dnn__xeng_n_in(x->eng) + q];
}

/* Progress of everything in flight: one MPI_Testall. */
static dnn_status progress(dnn_meas_exec *x, dnn_error *err) {
  dnn_status st = DNN_OK;
  if (!x->active)
    return DNN_OK;
  int flag = 0;
  DNN__MEAS_MPI_TRY(
      MPI_Testall((int)x->n_req, x->req, &flag, MPI_STATUSES_IGNORE));
  if (flag)
    x->active = false;
fail:
  return st;
}

/* Waits for the sends that last used a slot's buffers. */
static dnn_status wait_slot(dnn_meas_exec *x, bool fwd, size_t slot,
                            dnn_error *err) {
  dnn_status st = DNN_OK;
  size_t n = fwd ? dnn__xeng_n_out(x->eng) : dnn__xeng_n_in(x->eng);
  for (size_t q = 0; q < n; q++) {
    MPI_Request *r = fwd ? req_act(x, q, slot) : req_grad(x, q, slot);
    if (*r != MPI_REQUEST_NULL)
      DNN__MEAS_MPI_TRY(MPI_Wait(r, MPI_STATUS_IGNORE));
  }
fail:
  return st;
}

/* The tag of a boundary tensor's messages: its layer, and direction. */
static int tag_of(size_t layer, bool grad) {
  return (int)(2 * layer + (grad ? 1 : 0));
}

/* One communication step; its time goes to comp[*which]. */
static dnn_status comm_step(dnn_meas_exec *x, const dnn_meas_exec_step *s,
                            size_t q, size_t slot, int *which, dnn_error *err) {
  dnn_status st = DNN_OK;
  float *buf;
  size_t n, layer;
  *which = C_COMM;
  switch (s->kind) {
  case DNN_MEAS_STEP_RECV_ACT:
    *which = C_BUBBLE;
    buf = dnn__xeng_in_act(x->eng, q, slot, &n, &layer);
    DNN__MEAS_MPI_TRY(MPI_Recv(buf, (int)n, MPI_FLOAT, (int)s->peer,
                               tag_of(s->layer, false), MPI_COMM_WORLD,
                               MPI_STATUS_IGNORE));
    break;
  case DNN_MEAS_STEP_SEND_ACT:
    if ((st = dnn__xeng_out_act(x->eng, q, slot, &buf, &n, &layer, err)))
      goto fail;
    DNN__MEAS_MPI_TRY(MPI_Isend(buf, (int)n, MPI_FLOAT, (int)s->peer,
                                tag_of(s->layer, false), MPI_COMM_WORLD,
                                req_act(x, q, slot)));
    x->active = true;
    break;
  case DNN_MEAS_STEP_RECV_GRAD:
    *which = C_BUBBLE;
    buf = dnn__xeng_out_grad(x->eng, q, &n);
    DNN__MEAS_MPI_TRY(MPI_Recv(buf, (int)n, MPI_FLOAT, (int)s->peer,
                               tag_of(s->layer, true), MPI_COMM_WORLD,
                               MPI_STATUS_IGNORE));
    st = dnn__xeng_out_grad_apply(x->eng, q, slot, err);
    break;
  case DNN_MEAS_STEP_SEND_GRAD:
    if ((st = dnn__xeng_in_grad(x->eng, q, slot, &buf, &n, err)))
      goto fail;
    DNN__MEAS_MPI_TRY(MPI_Isend(buf, (int)n, MPI_FLOAT, (int)s->peer,
                                tag_of(s->layer, true), MPI_COMM_WORLD,
                                req_grad(x, q, slot)));
    x->active = true;
    break;
  case DNN_MEAS_STEP_ALLREDUCE: {
    const bucket *b = &x->buckets[s->bucket];
    float *g = dnn__xeng_grads(x->eng, &n) + b->off;
    /* A GPU engine stages the bucket through host memory (no CUDA-aware
     * MPI assumed); the copies are part of the step's time. */
    if ((st = dnn__xeng_grads_sync(x->eng, b->off, b->n, true, err)))
      goto fail;
    if (s->blocking) {
      DNN__MEAS_MPI_TRY(
          MPI_Allreduce(MPI_IN_PLACE, g, (int)b->n, MPI_FLOAT, MPI_SUM, x->dp));
      st = dnn__xeng_grads_sync(x->eng, b->off, b->n, false, err);
    } else {
      DNN__MEAS_MPI_TRY(MPI_Iallreduce(MPI_IN_PLACE, g, (int)b->n, MPI_FLOAT,
                                       MPI_SUM, x->dp, &x->req[s->bucket]));
      x->active = true;
    }
    break;
  }
  case DNN_MEAS_STEP_WAIT:
    DNN__MEAS_MPI_TRY(MPI_Waitall((int)x->n_req, x->req, MPI_STATUSES_IGNORE));
    x->active = false;
    /* The overlapped buckets' sums back to a GPU engine's device. */
    for (size_t b = 0;
         st == DNN_OK && x->p.data > 1 && x->p.overlap && b < x->n_buckets; b++)
      st = dnn__xeng_grads_sync(x->eng, x->buckets[b].off, x->buckets[b].n,
                                false, err);
    break;
  default:
    break;
  }
fail:
  return st;
}
#endif

static dnn_status iteration(dnn_meas_exec *x, double comp[C_COUNT],
                            double *layer_t, double *iter_s, dnn_error *err) {
  dnn_status st = DNN_OK;
  memset(comp, 0, C_COUNT * sizeof *comp);
  size_t cur_mb = DNN_MEAS_NONE, first_bwd = DNN_MEAS_NONE;
  bool cur_fwd = false;
  for (size_t k = 0; k < x->n_steps; k++)
    x->steps[k].runs = 0;
#if DNNSIM_HAVE_MPI
  if (x->use_mpi) {
    int rc = MPI_Barrier(MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS)
      return dnn__meas_mpi_fail(err, rc, "MPI_Barrier");
  }
#endif
  double t0 = dnn_meas_now_s();
  for (size_t k = 0; k < x->n_steps && st == DNN_OK; k++) {
    dnn_meas_exec_step *s = &x->steps[k];
    size_t slot = s->microbatch != DNN_MEAS_NONE ? s->microbatch % x->slots : 0;
    bool fwd = s->kind == DNN_MEAS_STEP_FWD ||
               s->kind == DNN_MEAS_STEP_RECV_ACT ||
               s->kind == DNN_MEAS_STEP_SEND_ACT;
    double ts = dnn_meas_now_s();
    if (s->microbatch != DNN_MEAS_NONE &&
        (s->microbatch != cur_mb || fwd != cur_fwd)) {
      /* A new forward or backward: the sends that last used its slot's
       * buffers must be done before they are written again. */
      cur_mb = s->microbatch;
      cur_fwd = fwd;
      if (!fwd && first_bwd == DNN_MEAS_NONE)
        first_bwd = cur_mb;
#if DNNSIM_HAVE_MPI
      if (x->use_mpi && dnn__xeng_n_in(x->eng) + dnn__xeng_n_out(x->eng) > 0) {
        st = wait_slot(x, fwd, slot, err);
        double now = dnn_meas_now_s();
        comp[C_COMM] += now - ts;
        ts = now;
      }
#endif
      if (st)
        break;
    }
    double glue = 0, dt;
    switch (s->kind) {
    case DNN_MEAS_STEP_FWD:
      if (dnn_net_layer(x->net, s->layer)->kind != DNN_LAYER_INPUT)
        st = dnn__xeng_run(x->eng, s->layer, DNN_PASS_FWD, slot, false, &glue,
                           err);
      dt = dnn_meas_now_s() - ts;
      comp[C_FWD] += dt;
      comp[C_GLUE] += glue;
      layer_t[s->layer * DNN_PASS_COUNT + DNN_PASS_FWD] += dt;
      break;
    case DNN_MEAS_STEP_BWD_DATA:
    case DNN_MEAS_STEP_BWD_WEIGHTS: {
      dnn_pass pass = s->kind == DNN_MEAS_STEP_BWD_DATA ? DNN_PASS_BWD_DATA
                                                        : DNN_PASS_BWD_WEIGHTS;
      st = dnn__xeng_run(x->eng, s->layer, pass, slot,
                         x->p.accumulate && s->microbatch != first_bwd, &glue,
                         err);
      dt = dnn_meas_now_s() - ts;
      comp[C_BWD] += dt;
      comp[C_GLUE] += glue;
      double share = pass == DNN_PASS_BWD_DATA
                         ? dnn__xeng_fused_share(x->eng, s->layer)
                         : 1.0;
      double *lt = &layer_t[s->layer * DNN_PASS_COUNT];
      lt[pass] += dt * share;
      if (pass == DNN_PASS_BWD_DATA)
        lt[DNN_PASS_BWD_WEIGHTS] += dt * (1 - share);
      break;
    }
    case DNN_MEAS_STEP_OPTIMIZER:
      st = dnn__xeng_update(x->eng, err);
      comp[C_OPT] += dnn_meas_now_s() - ts;
      break;
    default: {
#if DNNSIM_HAVE_MPI
      int which = C_COMM;
      st = comm_step(x, s, x->sref[k], slot, &which, err);
      comp[which] += dnn_meas_now_s() - ts;
#endif
      break;
    }
    }
#if DNNSIM_HAVE_MPI
    /* Between layers, what is in flight progresses (MPI moves a
     * shared-memory collective only inside MPI calls). */
    if (st == DNN_OK && x->active &&
        (s->kind == DNN_MEAS_STEP_FWD || s->kind == DNN_MEAS_STEP_BWD_DATA ||
         s->kind == DNN_MEAS_STEP_BWD_WEIGHTS)) {
      double tp = dnn_meas_now_s();
      st = progress(x, err);
      comp[C_COMM] += dnn_meas_now_s() - tp;
    }
#endif
    s->runs++;
  }
  *iter_s = dnn_meas_now_s() - t0;
  return st;
}

/* ------------------------------------------------------------------------ */
/* Repeats and statistics                                                   */
/* ------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y ? 1 : 0;
}

/* Median of n values with stride (copied; `tmp` holds n). */
static double median_of(const double *v, size_t n, size_t stride, double *tmp) {
  for (size_t k = 0; k < n; k++)
    tmp[k] = v[k * stride];
  qsort(tmp, n, sizeof *tmp, cmp_double);
  return n % 2 ? tmp[n / 2] : 0.5 * (tmp[n / 2 - 1] + tmp[n / 2]);
}

/* `n` untimed iterations. */
static dnn_status warm(dnn_meas_exec *x, size_t n, dnn_error *err) {
  size_t LP = x->L * DNN_PASS_COUNT;
  double comp[C_COUNT], it;
  dnn_status st = DNN_OK;
  if (n == 0)
    return DNN_OK;
  double *lt = dnn_calloc(LP, sizeof *lt);
  if (lt == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory running the executor");
  for (size_t r = 0; r < n && st == DNN_OK; r++) {
    memset(lt, 0, LP * sizeof *lt);
    st = iteration(x, comp, lt, &it, err);
  }
  dnn_free(lt);
  return st;
}

/* Timed iteration r (< repeats) into the per-repeat arrays. */
static dnn_status timed(dnn_meas_exec *x, size_t r, dnn_error *err) {
  size_t LP = x->L * DNN_PASS_COUNT;
  DNN_ASSERT(r < x->p.repeats);
  return iteration(x, &x->comp[r * C_COUNT], &x->layer_t[r * LP], &x->iter[r],
                   err);
}

/*
 * The statistics of the first R timed iterations (collective, R >= 1 on
 * every rank), after `st` (a rank's failure so far, agreed on first):
 * per-rank medians, the slowest rank's iteration per repeat, the
 * critical rank, per-layer medians.
 */
static dnn_status summarise(dnn_meas_exec *x, size_t R, dnn_status st,
                            dnn_meas_exec_result *out, dnn_error *err) {
  memset(out, 0, sizeof *out);
  size_t L = x->L, P = DNN_PASS_COUNT;
  double *scratch = dnn_calloc(L * P + R + 1, sizeof *scratch);
  double *tmp = dnn_calloc(R + 1, sizeof *tmp);
  double *maxit = dnn_calloc(R + 1, sizeof *maxit);
  if (st == DNN_OK && (!scratch || !tmp || !maxit))
    st = DNN_FAIL(err, DNN_ENOMEM, "out of memory running the executor");
  if (st == DNN_OK && x->rank_info == NULL) {
    x->rank_info = dnn_calloc(x->ranks * INFO, sizeof *x->rank_info);
    if (x->rank_info == NULL)
      st = DNN_FAIL(err, DNN_ENOMEM, "out of memory running the executor");
  }
#if DNNSIM_HAVE_MPI
  if (x->use_mpi)
    st = agree(st, x->rank, err);
#endif
  if (st)
    goto done;
  for (size_t k = 0; k < R * L * P; k++)
    x->layer_t[k] /= dnn__d(x->p.microbatches);
  double med[C_COUNT + 1];
  for (size_t c = 0; c < C_COUNT; c++)
    med[c] = median_of(x->comp + c, R, C_COUNT, tmp);
  med[C_COUNT] = median_of(x->iter, R, 1, tmp);
  for (size_t k = 0; k < L * P; k++)
    x->layer_md[k] = median_of(x->layer_t + k, R, L * P, tmp);
  memcpy(maxit, x->iter, R * sizeof *maxit);
  size_t crit = 0;
  double info[INFO];
  for (size_t c = 0; c <= C_COUNT; c++)
    info[c] = med[c];
  info[C_COUNT + 1] = x->grad_bytes;
  info[C_COUNT + 2] = dnn__d(x->n_buckets);
  size_t nflat = 0;
  dnn__xeng_grads(x->eng, &nflat);
  size_t params = dnn__xeng_params_count(x->eng);
  info[C_COUNT + 3] = params ? dnn__d(nflat) * 4.0 / dnn__d(params) : 0;
  memcpy(x->rank_info, info, sizeof info);
#if DNNSIM_HAVE_MPI
  if (x->use_mpi) {
    /* The iteration is the slowest rank's; the critical rank has the
     * largest median. */
    int rc = MPI_Allreduce(x->iter, maxit, (int)R, MPI_DOUBLE, MPI_MAX,
                           MPI_COMM_WORLD);
    if (rc == MPI_SUCCESS)
      rc = MPI_Allreduce(x->layer_md, scratch, (int)(L * P), MPI_DOUBLE,
                         MPI_MAX, MPI_COMM_WORLD);
    if (rc == MPI_SUCCESS)
      memcpy(x->layer_md, scratch, L * P * sizeof *scratch);
    if (rc == MPI_SUCCESS)
      rc = MPI_Allgather(info, INFO, MPI_DOUBLE, x->rank_info, INFO, MPI_DOUBLE,
                         MPI_COMM_WORLD);
    struct {
      double v;
      int r;
    } mine = {med[C_COUNT], (int)x->rank}, top;
    if (rc == MPI_SUCCESS)
      rc = MPI_Allreduce(&mine, &top, 1, MPI_DOUBLE_INT, MPI_MAXLOC,
                         MPI_COMM_WORLD);
    if (rc == MPI_SUCCESS) {
      crit = (size_t)top.r;
      memcpy(info, x->rank_info + crit * INFO, sizeof info);
    }
    if (rc != MPI_SUCCESS) {
      st = dnn__meas_mpi_fail(err, rc, "reducing the executor's times");
      goto done;
    }
  }
#endif
  st = dnn_meas_stats_compute(maxit, R, x->p.confidence, &out->iteration, err);
  if (st)
    goto done;
  out->forward_s = info[C_FWD];
  out->backward_s = info[C_BWD];
  out->comm_exposed_s = info[C_COMM];
  out->bubble_s = info[C_BUBBLE];
  out->optimizer_s = info[C_OPT];
  out->glue_s = info[C_GLUE];
  out->other_s =
      out->iteration.median_s -
      (info[C_FWD] + info[C_BWD] + info[C_COMM] + info[C_BUBBLE] + info[C_OPT]);
  out->critical_rank = crit;
  out->ranks = x->ranks;
  out->local_batch = x->p.batch / x->p.data;
  out->microbatch = x->mbs;
  out->grad_bytes = info[C_COUNT + 1];
  out->buckets = (size_t)info[C_COUNT + 2];
  out->forced_allreduce = x->forced;
  out->bytes_per_param = info[C_COUNT + 3];
  out->copies = x->p.copies;
done:
  dnn_free(scratch);
  dnn_free(tmp);
  dnn_free(maxit);
  return st;
}

/* The mean loss over the slots (NaN without one). */
static dnn_status loss_now(dnn_meas_exec *x, double *loss, dnn_error *err) {
  double sum = 0;
  *loss = (double)NAN;
  for (size_t s = 0; s < x->slots; s++) {
    double l;
    dnn_status st = dnn__xeng_loss(x->eng, s, &l, err);
    if (st)
      return st;
    sum += l;
  }
  *loss = sum / dnn__d(x->slots);
  return DNN_OK;
}

/* Keeps the loss after the run's first iteration (not timed). */
static void note_first_loss(dnn_meas_exec *x) {
  dnn_error e;
  if (loss_now(x, &x->loss_first, &e) != DNN_OK)
    x->loss_first = (double)NAN;
}

dnn_status dnn_meas_exec_run(dnn_meas_exec *x, dnn_meas_exec_result *out,
                             dnn_error *err) {
  size_t R = x->p.repeats, W = x->p.warmup;
  memset(x->layer_t, 0, R * x->L * DNN_PASS_COUNT * sizeof *x->layer_t);
  x->loss_first = (double)NAN;
  dnn_status st = warm(x, W ? 1 : 0, err);
  if (st == DNN_OK && W) {
    note_first_loss(x);
    st = warm(x, W - 1, err);
  }
  for (size_t r = 0; r < R && st == DNN_OK; r++) {
    st = timed(x, r, err);
    if (st == DNN_OK && r == 0 && W == 0)
      note_first_loss(x);
  }
  return summarise(x, R, st, out, err);
}

dnn_status dnn_meas_exec_loss(dnn_meas_exec *x, double *first, double *last,
                              dnn_error *err) {
  *first = x->loss_first;
  return loss_now(x, last, err);
}

/* ------------------------------------------------------------------------ */
/* Mixed-size runs                                                          */
/* ------------------------------------------------------------------------ */

struct dnn_meas_exec_mixed {
  size_t n;          /* sizes */
  dnn_meas_exec **x; /* one executor per size */
  dnn_meas_exec_size *sizes;
  size_t steps, warmup; /* timed steps of the schedule; warm-up per size */
  size_t *sched;        /* steps: the size of each */
  double *step_s;       /* steps: this rank's times, then the slowest's */
  size_t *done;         /* per size: its timed steps so far */
  double confidence;
  bool use_mpi;
  size_t rank;
};

/* splitmix64 (Steele, Lea and Flood, OOPSLA 2014): one 64-bit state, a
 * full-period stream whose outputs pass BigCrush; here it only has to be
 * the same on every rank. */
static unsigned long long splitmix64(unsigned long long *s) {
  unsigned long long z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

dnn_status dnn_meas_exec_size_schedule(const double *prob, size_t n,
                                       unsigned long long seed, size_t steps,
                                       size_t *out, dnn_error *err) {
  if (n == 0)
    return DNN_FAIL(err, DNN_EINVAL,
                    "a mixed-size run needs at least one "
                    "size");
  double total = 0;
  for (size_t k = 0; k < n; k++) {
    if (!(prob[k] > 0) || !isfinite(prob[k]))
      return DNN_FAIL(err, DNN_EINVAL,
                      "size %zu: probability must be > 0 and finite, not %g", k,
                      prob[k]);
    total += prob[k];
  }
  unsigned long long st = seed;
  for (size_t i = 0; i < steps; i++) {
    /* Uniform in [0, 1) from the top 53 bits; the inverse CDF. */
    double u = dnn__d((size_t)(splitmix64(&st) >> 11)) * 0x1p-53 * total;
    size_t k = 0;
    double cum = prob[0];
    while (k + 1 < n && u >= cum)
      cum += prob[++k];
    out[i] = k;
  }
  return DNN_OK;
}

/* Parameters of the network `net` (the sizes must agree on them). */
static size_t net_params(const dnn_net *net) {
  size_t total = 0;
  for (size_t i = 0; i < dnn_net_layer_count(net); i++)
    total += dnn_net_layer(net, i)->params;
  return total;
}

dnn_status dnn_meas_exec_mixed_alloc(const dnn_meas_exec_size *sizes, size_t n,
                                     const dnn_meas_exec_params *p,
                                     dnn_meas_mpi *mpi,
                                     dnn_meas_exec_mixed **out,
                                     dnn_error *err) {
  *out = NULL;
  dnn_status st = DNN_OK;
  if (n == 0)
    return DNN_FAIL(err, DNN_EINVAL,
                    "a mixed-size run needs at least one "
                    "size");
  size_t L = dnn_net_layer_count(sizes[0].net), W = net_params(sizes[0].net);
  for (size_t k = 1; k < n; k++)
    if (dnn_net_layer_count(sizes[k].net) != L || net_params(sizes[k].net) != W)
      return DNN_FAIL(err, DNN_EINVAL,
                      "size %zu px: its network has %zu layers and %zu "
                      "parameters, the one at %zu px %zu and %zu: a mixed-"
                      "size run trains one network",
                      sizes[k].image, dnn_net_layer_count(sizes[k].net),
                      net_params(sizes[k].net), sizes[0].image, L, W);
  dnn_meas_exec_mixed *mx = dnn_calloc(1, sizeof *mx);
  if (mx == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory building the executor");
  mx->n = n;
  mx->steps = p->repeats;
  mx->warmup = p->warmup;
  mx->confidence = p->confidence;
  mx->use_mpi = mpi != NULL;
  mx->rank = mpi ? dnn_meas_mpi_rank(mpi) : 0;
  mx->x = dnn_calloc(n, sizeof *mx->x);
  mx->sizes = dnn_calloc(n, sizeof *mx->sizes);
  mx->done = dnn_calloc(n, sizeof *mx->done);
  mx->sched = dnn_calloc(mx->steps ? mx->steps : 1, sizeof *mx->sched);
  mx->step_s = dnn_calloc(mx->steps ? mx->steps : 1, sizeof *mx->step_s);
  double *prob = dnn_calloc(n, sizeof *prob);
  if (!mx->x || !mx->sizes || !mx->done || !mx->sched || !mx->step_s || !prob) {
    st = DNN_FAIL(err, DNN_ENOMEM, "out of memory building the executor");
    goto fail;
  }
  memcpy(mx->sizes, sizes, n * sizeof *sizes);
  for (size_t k = 0; k < n; k++)
    prob[k] = sizes[k].probability;
  if ((st = dnn_meas_exec_size_schedule(prob, n, p->seed, mx->steps, mx->sched,
                                        err)))
    goto fail;
  /* One executor per size (collective: every rank builds them in the same
   * order), then one parameter storage for all: the largest. */
  size_t owner = 0, most = 0;
  for (size_t k = 0; k < n; k++) {
    dnn_meas_exec_params pk = *p;
    pk.batch = sizes[k].batch;
    pk.copies = sizes[k].copies;
    if ((st = dnn_meas_exec_alloc(sizes[k].net, &pk, mpi, &mx->x[k], err))) {
      dnn_error_prefix(err, "size %zu px (batch %zu, %zu copies)",
                       sizes[k].image, sizes[k].batch, sizes[k].copies);
      goto fail;
    }
    size_t nf = 0;
    dnn__xeng_grads(mx->x[k]->eng, &nf);
    if (k == 0 || nf > most)
      owner = k, most = nf;
  }
  for (size_t k = 0; k < n && st == DNN_OK; k++)
    if (k != owner)
      st = dnn__xeng_share_params(mx->x[k]->eng, mx->x[owner]->eng, err);
#if DNNSIM_HAVE_MPI
  if (mx->use_mpi)
    st = agree(st, mx->rank, err);
#endif
  if (st)
    goto fail;
  dnn_free(prob);
  *out = mx;
  return DNN_OK;
fail:
  dnn_free(prob);
  dnn_meas_exec_mixed_free(mx);
  return st;
}

void dnn_meas_exec_mixed_free(dnn_meas_exec_mixed *mx) {
  if (mx == NULL)
    return;
  /* In reverse order of allocation, so that the oneDNN thread count each
   * restores is the one before the first (an engine that borrows the
   * owner's parameters frees none of them). */
  for (size_t k = mx->n; mx->x && k-- > 0;)
    dnn_meas_exec_free(mx->x[k]);
  dnn_free(mx->x);
  dnn_free(mx->sizes);
  dnn_free(mx->done);
  dnn_free(mx->sched);
  dnn_free(mx->step_s);
  dnn_free(mx);
}

dnn_status dnn_meas_exec_mixed_run(dnn_meas_exec_mixed *mx,
                                   dnn_meas_exec_mixed_result *out,
                                   dnn_meas_exec_result *per_size,
                                   dnn_error *err) {
  memset(out, 0, sizeof *out);
  if (per_size)
    memset(per_size, 0, mx->n * sizeof *per_size);
  dnn_status st = DNN_OK;
  for (size_t k = 0; k < mx->n; k++) {
    dnn_meas_exec *x = mx->x[k];
    mx->done[k] = 0;
    memset(x->layer_t, 0,
           x->p.repeats * x->L * DNN_PASS_COUNT * sizeof *x->layer_t);
  }
  /* Each size warms up on its own (first-touch of its buffers), then the
   * schedule runs; a step's time is its executor's iteration. */
  for (size_t k = 0; k < mx->n && st == DNN_OK; k++)
    st = warm(mx->x[k], mx->warmup, err);
  for (size_t i = 0; i < mx->steps && st == DNN_OK; i++) {
    size_t k = mx->sched[i];
    dnn_meas_exec *x = mx->x[k];
    size_t r = mx->done[k]++;
    st = timed(x, r, err);
    mx->step_s[i] = x->iter[r];
  }
  /* Each drawn size's statistics (collective; every rank drew the same
   * schedule, so the same sizes take part). */
  for (size_t k = 0; k < mx->n; k++) {
    if (mx->done[k] == 0)
      continue;
    dnn_meas_exec_result r;
    st = summarise(mx->x[k], mx->done[k], st, &r, err);
    if (per_size)
      per_size[k] = r;
  }
#if DNNSIM_HAVE_MPI
  if (mx->use_mpi) {
    st = agree(st, mx->rank, err);
    if (st == DNN_OK && mx->steps > 0) {
      int rc = MPI_Allreduce(MPI_IN_PLACE, mx->step_s, (int)mx->steps,
                             MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      if (rc != MPI_SUCCESS)
        st = dnn__meas_mpi_fail(err, rc, "reducing the mixed run's step times");
    }
  }
#endif
  if (st)
    return st;
  out->steps = mx->steps;
  for (size_t i = 0; i < mx->steps; i++) {
    out->total_s += mx->step_s[i];
    out->samples += dnn__d(mx->sizes[mx->sched[i]].batch);
  }
  if (mx->steps > 0)
    st = dnn_meas_stats_compute(mx->step_s, mx->steps, mx->confidence,
                                &out->step, err);
  return st;
}

const dnn_meas_exec *dnn_meas_exec_mixed_exec(const dnn_meas_exec_mixed *mx,
                                              size_t k) {
  DNN_ASSERT(k < mx->n);
  return mx->x[k];
}

size_t dnn_meas_exec_mixed_size_at(const dnn_meas_exec_mixed *mx, size_t step) {
  DNN_ASSERT(step < mx->steps);
  return mx->sched[step];
}

/* ------------------------------------------------------------------------ */
/* In-situ kernel times                                                     */
/* ------------------------------------------------------------------------ */

/* Whether the model gives layer i a kernel for `pass`. */
static bool model_has(const dnn_net *net, size_t i, dnn_pass pass, size_t batch,
                      dnn_dtype dtype) {
  dnn_cost c;
  dnn_layer_cost(net, i, pass, batch, dtype, &c);
  return c.flops > 0 || c.bytes_read + c.bytes_written > 0;
}

dnn_status dnn_meas_cpu_insitu(const dnn_net *net,
                               const dnn_meas_kernel_params *p,
                               dnn_meas_stats *update, dnn_error *err) {
  dnn_status st = dnn__meas_kernel_params_check(p, err);
  if (st)
    return st;
  if (update)
    memset(update, 0, sizeof *update);
  size_t L = dnn_net_layer_count(net), P = DNN_PASS_COUNT;
  double *samples = NULL;
  for (size_t bi = 0; bi < p->n_batches && st == DNN_OK; bi++) {
    size_t batch = p->batches[bi];
    if (p->progress) {
      char label[64];
      snprintf(label, sizeof label, "training iterations, batch %zu", batch);
      if (p->progress(p->progress_ud, bi, p->n_batches, label)) {
        st = DNN_FAIL(err, DNN_EINTERRUPTED, "measurement interrupted");
        break;
      }
    }
    dnn_meas_exec_params ep = dnn_meas_exec_default_params();
    ep.batch = batch;
    ep.dtype = p->dtype;
    ep.threads = p->threads;
    ep.warmup = p->repeat.warmup_runs > 0 ? p->repeat.warmup_runs : 1;
    ep.repeats = p->repeat.max_samples < 10 ? p->repeat.max_samples : 10;
    if (ep.repeats < p->repeat.min_samples)
      ep.repeats = p->repeat.min_samples;
    ep.confidence = p->repeat.confidence;
    dnn_meas_exec *x = NULL;
    dnn_meas_exec_result r;
    if ((st = dnn_meas_exec_alloc(net, &ep, NULL, &x, err)) ||
        (st = dnn_meas_exec_run(x, &r, err))) {
      dnn_meas_exec_free(x);
      break;
    }
    size_t R = ep.repeats;
    samples = dnn_calloc(R, sizeof *samples);
    if (samples == NULL) {
      dnn_meas_exec_free(x);
      st = DNN_FAIL(err, DNN_ENOMEM, "out of memory");
      break;
    }
    for (size_t i = 0; i < L && st == DNN_OK; i++) {
      const dnn_layer *l = dnn_net_layer(net, i);
      for (size_t q = 0; q < P && st == DNN_OK; q++) {
        if (x->layer_md[i * P + q] <= 0 ||
            !model_has(net, i, (dnn_pass)q, batch, p->dtype))
          continue;
        dnn_meas_kernel_row row;
        dnn__meas_row_init(&row, "onednn-train", net, i, (dnn_pass)q,
                           l->kind == DNN_LAYER_CONV2D ? DNN_CONV_DIRECT
                                                       : DNN_CONV_ALGO_COUNT,
                           batch, p->dtype);
        for (size_t k = 0; k < R; k++)
          samples[k] = x->layer_t[k * L * P + i * P + q];
        if ((st = dnn_meas_stats_compute(samples, R, ep.confidence, &row.t,
                                         err)))
          break;
        row.t.runs = 1;
        if (!(row.t.median_s > 0) || dnn__meas_row_done(p, &row))
          continue;
        if (p->on_row)
          st = p->on_row(p->row_ud, &row, err);
      }
    }
    if (st == DNN_OK && update && bi + 1 == p->n_batches) {
      for (size_t k = 0; k < R; k++)
        samples[k] = x->comp[k * C_COUNT + C_OPT];
      st = dnn_meas_stats_compute(samples, R, ep.confidence, update, err);
    }
    dnn_free(samples);
    samples = NULL;
    dnn_meas_exec_free(x);
  }
  if (st == DNN_OK && p->progress)
    p->progress(p->progress_ud, p->n_batches, p->n_batches, "done");
  return st;
}

void dnn_meas_exec_rank_result(const dnn_meas_exec *x, size_t rank,
                               dnn_meas_exec_result *out) {
  DNN_ASSERT(rank < x->ranks);
  memset(out, 0, sizeof *out);
  if (x->rank_info == NULL)
    return;
  const double *in = x->rank_info + rank * INFO;
  out->forward_s = in[C_FWD];
  out->backward_s = in[C_BWD];
  out->comm_exposed_s = in[C_COMM];
  out->bubble_s = in[C_BUBBLE];
  out->optimizer_s = in[C_OPT];
  out->glue_s = in[C_GLUE];
  out->iteration.median_s = in[C_COUNT];
  out->other_s = in[C_COUNT] - (in[C_FWD] + in[C_BWD] + in[C_COMM] +
                                in[C_BUBBLE] + in[C_OPT]);
  out->grad_bytes = in[C_COUNT + 1];
  out->buckets = (size_t)in[C_COUNT + 2];
  out->bytes_per_param = in[C_COUNT + 3];
  out->critical_rank = rank;
  out->ranks = x->ranks;
}
