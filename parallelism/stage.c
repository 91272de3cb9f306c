/*
 * The stage model (internal.h): a network cut into V = p x v contiguous
 * virtual stages, with per-micro-batch times, activation memory under the
 * recompute policy, the point-to-point transfers at stage boundaries and
 * the gradient buckets of each stage. Both engines read it.
 *
 * Model (docs/models.md §8; REFERENCE §1.4, pipeline parallelism):
 * - Partition: `balanced` minimises the largest stage time (forward +
 *   backward + recompute per micro-batch) over contiguous cuts, by
 *   bisection on the bottleneck with a greedy feasibility test (exact for
 *   contiguous partitions up to the bisection tolerance); or explicit
 *   layer counts.
 * - Boundary traffic per micro-batch: every tensor produced at or before
 *   stage s and consumed after it crosses boundary s forward, and its
 *   gradient crosses back (none for the input data): REFERENCE §1.4,
 *   2 (B/M) a_boundary words per boundary.
 * - Placement: pipeline outermost, data inside, tensor innermost (the
 *   Megatron-LM rank order), so global device = (r d + q) t for pipeline
 *   rank r and replica q, and a transfer crosses nodes when its two devices
 *   sit on different nodes. Crossing transfers share their node's NICs
 *   (bandwidth nics x inter, each flow capped by its intra-node port, as
 *   comm.c charges point-to-point); the replicas of a stage on one node
 *   send at once, which the transfer's weight counts.
 * - Recompute (Chen et al. 2016, "Training Deep Nets with Sublinear Memory
 *   Cost"; Korthikanti et al. 2022, "Reducing Activation Recomputation in
 *   Large Transformer Models"): `full` keeps only each stage's inputs and
 *   re-runs its forward before its backward; `selective` drops the outputs
 *   of cheap element-wise, normalisation and softmax layers (for CNNs the
 *   BN-ReLU pairs, as in Pleiss et al. 2017 and Rota Bulò et al. 2018) and
 *   recomputes them from the kept convolution outputs.
 *
 * Invariant: with V == 1 nothing is allocated (the stage lives in the
 * model), so the data-parallel analytic path stays allocation-free.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1024.0 * 1024.0)

/* ---- Random streams ------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void dnn__rng_seed(dnn__rng *r, uint64_t seed, uint64_t stream) {
  uint64_t x = seed;
  uint64_t mix = splitmix64(&x) ^ (stream * 0xD1B54A32D192ED03ull);
  for (int i = 0; i < 4; i++)
    r->s[i] = splitmix64(&mix);
}

static uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

static uint64_t next_u64(dnn__rng *r) {
  uint64_t *s = r->s;
  uint64_t out = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return out;
}

double dnn__rng_uniform(dnn__rng *r) {
  /* 53 random bits, shifted off zero. */
  return ((double)(next_u64(r) >> 11) + 0.5) * 0x1.0p-53;
}

double dnn__rng_jitter(dnn__rng *r, double cv) {
  if (cv <= 0)
    return 1;
  /* Box-Muller; one normal per call keeps the stream position simple. */
  double u1 = dnn__rng_uniform(r), u2 = dnn__rng_uniform(r);
  double z = sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
  double s2 = log1p(cv * cv);
  return exp(-0.5 * s2 + sqrt(s2) * z);
}

/* ---- Per-layer quantities ------------------------------------------------ */

void dnn__stage_layer_time(const dnn__stage_model *sm, size_t i, double *fwd_s,
                           double *bwd_s) {
  const dnn_strat_input *in = &sm->in;
  dnn_dtype dt = in->scn->model.dtype;
  *fwd_s = dnn_hw_layer_time(in->hw, in->net, i, DNN_PASS_FWD, sm->mbs, dt,
                             sm->ws_limit_bytes, NULL, NULL);
  *bwd_s = dnn_hw_layer_time(in->hw, in->net, i, DNN_PASS_BWD_DATA, sm->mbs, dt,
                             sm->ws_limit_bytes, NULL, NULL) +
           dnn_hw_layer_time(in->hw, in->net, i, DNN_PASS_BWD_WEIGHTS, sm->mbs,
                             dt, sm->ws_limit_bytes, NULL, NULL);
}

bool dnn__layer_selective(const dnn_net *net, size_t i) {
  const dnn_layer *l = dnn_net_layer(net, i);
  if (l->kind == DNN_LAYER_SOFTMAX_XENT)
    return false; /* the loss: its probabilities are its gradient */
  dnn_opclass c = dnn_layer_kind_opclass(l->kind);
  return c == DNN_OP_ELTWISE || c == DNN_OP_NORM || c == DNN_OP_SOFTMAX;
}

/* Bytes of layer i's output per sample (token ids as 4-byte integers). */
static double out_bytes_per_sample(const dnn_net *net, size_t i, dnn_dtype dt) {
  const dnn_layer *l = dnn_net_layer(net, i);
  double eb = l->out.tokens ? 4.0 : dnn__d(dnn_dtype_bytes(dt));
  return dnn__d(dnn_shape_elems(&l->out)) * eb;
}

/* What selective recompute saves on layer i: its output, not the masks or
 * statistics it also keeps. */
static double selective_saving(const dnn__stage_model *sm, size_t i) {
  const dnn_strat_input *in = &sm->in;
  dnn_dtype dt = in->scn->model.dtype;
  double act = dnn_layer_activation_bytes(in->net, i, sm->mbs, dt);
  double out = out_bytes_per_sample(in->net, i, dt) * dnn__d(sm->mbs);
  return fmin(act, out);
}

double dnn__xfer_time(const dnn__xfer *x) {
  if (x->bytes <= 0)
    return 0;
  return x->latency_s + x->bytes / fmin(x->cap_Bps, x->bw_Bps / x->weight);
}

double dnn__stage_allreduce_time(const dnn__stage_model *sm, double bytes,
                                 dnn_comm_algo *algo) {
  dnn_comm_cost c;
  if (sm->d <= 1 || bytes <= 0) {
    if (algo)
      *algo = sm->algo == DNN_COMM_ALGO_AUTO ? DNN_COMM_ALGO_RING : sm->algo;
    return 0;
  }
  dnn_status st = dnn_comm_time(DNN_COMM_ALLREDUCE, sm->algo, bytes,
                                &sm->dp_topo, &c, NULL);
  /* The topology and algorithm were checked when the model was built. */
  DNN_ASSERT(st == DNN_OK);
  (void)st;
  if (algo)
    *algo = c.algo;
  return c.time_s;
}

/* ---- Buckets ------------------------------------------------------------- */

void dnn__bucket_begin(const dnn__stage_model *sm, size_t vs,
                       const double *layer_bwd_s, dnn__bucket_iter *it) {
  it->vs = vs;
  it->next = sm->stages[vs].count;
  it->bwd_s = 0;
  it->layer_bwd_s = layer_bwd_s;
}

bool dnn__bucket_next(const dnn__stage_model *sm, dnn__bucket_iter *it,
                      dnn__bucket *out) {
  if (!sm->overlap || sm->d <= 1)
    return false;
  const dnn__stage *st = &sm->stages[it->vs];
  double bucket = 0;
  while (it->next > 0) {
    size_t i = st->first + --it->next;
    double f, b;
    if (it->layer_bwd_s)
      b = it->layer_bwd_s[i];
    else
      dnn__stage_layer_time(sm, i, &f, &b);
    it->bwd_s += b;
    bucket +=
        dnn__d(dnn_net_layer(sm->in.net, i)->params) * sm->grad_elem_bytes;
    if (bucket > 0 && (bucket >= sm->bucket_bytes || it->next == 0)) {
      out->close_layer = i;
      out->bytes = bucket;
      out->time_s = dnn__stage_allreduce_time(sm, bucket, NULL);
      out->ready_s = it->bwd_s;
      return true;
    }
  }
  return false;
}

dnn_comm_algo dnn__stage_report_algo(const dnn__stage_model *sm, size_t r) {
  dnn_comm_algo a;
  double bytes = 0;
  if (sm->d > 1 && !sm->overlap) {
    bytes = dnn__stage_device_params(sm, r) * sm->grad_elem_bytes;
  } else if (sm->d > 1) {
    /* Chunk 0's last backward is the rank's last: the bytes of the last
     * bucket it closes (the rule of dnn__bucket_next, without times). */
    const dnn__stage *st = &sm->stages[r];
    double acc = 0;
    for (size_t k = st->count; k-- > 0;) {
      acc += dnn__d(dnn_net_layer(sm->in.net, st->first + k)->params) *
             sm->grad_elem_bytes;
      if (acc > 0 && (acc >= sm->bucket_bytes || k == 0)) {
        bytes = acc;
        acc = 0;
      }
    }
  }
  dnn__stage_allreduce_time(sm, bytes, &a);
  return a;
}

double dnn__stage_device_params(const dnn__stage_model *sm, size_t r) {
  double p = 0;
  for (size_t c = 0; c < sm->v; c++)
    p += sm->stages[c * sm->p + r].params;
  return p;
}

/* ---- Partition ----------------------------------------------------------- */

/* Greedy cut with bottleneck T: whether V stages suffice. */
static bool feasible(const double *c, size_t L, size_t V, double T) {
  size_t stages = 1;
  double acc = 0;
  for (size_t i = 0; i < L; i++) {
    if (c[i] > T)
      return false;
    if (acc + c[i] > T) {
      if (++stages > V)
        return false;
      acc = 0;
    }
    acc += c[i];
  }
  return true;
}

/* Contiguous partition of L layers into V stages minimising the largest
 * stage cost: bisection on the bottleneck, then a greedy fill that leaves
 * at least one layer for every later stage. */
static void balance(const double *c, size_t L, size_t V, size_t *first) {
  double lo = 0, hi = 0;
  for (size_t i = 0; i < L; i++) {
    hi += c[i];
    lo = fmax(lo, c[i]);
  }
  if (lo < hi / dnn__d(V))
    lo = hi / dnn__d(V);
  /* Relative 1e-9 on the bottleneck is far below any model error. */
  while (hi - lo > 1e-9 * hi && hi > 0) {
    double mid = 0.5 * (lo + hi);
    if (feasible(c, L, V, mid))
      hi = mid;
    else
      lo = mid;
  }
  size_t i = 0;
  for (size_t s = 0; s < V; s++) {
    first[s] = i;
    size_t later = V - s - 1;
    double acc = c[i++];
    while (i < L - later && (s == V - 1 || acc + c[i] <= hi))
      acc += c[i++];
  }
}

/* Parses "n1,n2,..." (already checked for syntax by the key table). */
static dnn_status parse_counts(const dnn_scenario *scn, size_t L, size_t V,
                               size_t *first, dnn_error *err) {
  char where[DNN_SCN_PATH_MAX + 64];
  const char *p = scn->parallelism.partition;
  size_t n = 0, sum = 0;
  while (*p) {
    char *end;
    unsigned long v = strtoul(p, &end, 10);
    if (end == p)
      break;
    if (n < V)
      first[n] = sum;
    n++;
    sum += v;
    p = end;
    while (*p == ' ' || *p == ',')
      p++;
  }
  if (n != V || sum != L)
    return DNN_FAIL(err, DNN_EINVAL,
                    "%s: %zu counts summing to %zu layers, but the pipeline "
                    "has %zu stages (pipeline x virtual_stages) and the "
                    "network %zu layers",
                    dnn_scn_key_origin(scn, "parallelism", "partition", where,
                                       sizeof where),
                    n, sum, V, L);
  return DNN_OK;
}

/* ---- Building ------------------------------------------------------------ */

void dnn__stage_model_release(dnn__stage_model *sm) {
  if (sm == NULL)
    return;
  if (sm->stages != &sm->one)
    dnn_free(sm->stages);
  sm->stages = NULL;
}

size_t dnn__stage_device(const dnn__stage_model *sm, size_t r, size_t q) {
  return (r * sm->d + q) * sm->t;
}

size_t dnn__stage_node(const dnn__stage_model *sm, size_t dev) {
  size_t dpn = sm->in.cluster.devices_per_node;
  return dpn ? dev / dpn : 0;
}

/* The replicas q in [*q0, *q1) whose device base + q t lies in [lo, hi). */
static void replicas_in(const dnn__stage_model *sm, size_t base, size_t lo,
                        size_t hi, size_t *q0, size_t *q1) {
  size_t t = sm->t, d = sm->d;
  *q0 = *q1 = 0;
  if (base >= hi)
    return;
  size_t a = base >= lo ? 0 : dnn__div_ceil(lo - base, t);
  size_t b = dnn__div_ceil(hi - base, t);
  *q0 = a < d ? a : d;
  *q1 = b < d ? b : d;
  if (*q1 < *q0)
    *q1 = *q0;
}

dnn__xfer dnn__stage_xfer(const dnn__stage_model *sm, size_t r_src,
                          size_t r_dst, size_t q, double bytes, bool alone) {
  const dnn_cluster *cl = &sm->in.cluster;
  dnn__xfer x;
  memset(&x, 0, sizeof x);
  x.src_device = dnn__stage_device(sm, r_src, q);
  x.dst_device = dnn__stage_device(sm, r_dst, q);
  x.weight = 1;
  if (bytes <= 0 || x.src_device == x.dst_device)
    return x;
  x.bytes = bytes;
  double intra = cl->intra.bandwidth_Bps;
  size_t n_src = dnn__stage_node(sm, x.src_device);
  x.inter = n_src != dnn__stage_node(sm, x.dst_device);
  if (!x.inter) {
    x.latency_s = cl->intra.latency_s;
    x.bw_Bps = x.cap_Bps = intra;
    return x;
  }
  x.latency_s = fmax(cl->intra.latency_s, cl->inter.latency_s);
  x.bw_Bps = dnn__d(cl->nics_per_node ? cl->nics_per_node : 1) *
             cl->inter.bandwidth_Bps;
  x.cap_Bps = intra > 0 ? intra : x.bw_Bps;
  if (alone)
    return x;
  /* Replicas of this stage on the sending node that also cross: those
   * whose source is on the node minus those whose destination is too
   * (both sets are ranges of replicas; O(1) for a million devices). */
  size_t dpn = cl->devices_per_node ? cl->devices_per_node : 1;
  size_t lo = n_src * dpn, hi = lo + dpn;
  size_t q0, q1, b0, b1;
  replicas_in(sm, dnn__stage_device(sm, r_src, 0), lo, hi, &q0, &q1);
  replicas_in(sm, dnn__stage_device(sm, r_dst, 0), lo, hi, &b0, &b1);
  size_t both = 0;
  if (b0 < q1 && q0 < b1)
    both = (q1 < b1 ? q1 : b1) - (q0 > b0 ? q0 : b0);
  size_t w = q1 - q0 - both;
  x.weight = w >= 1 ? dnn__d(w) : 1;
  return x;
}

/* Fills every per-stage quantity once the cut (stage first layers and
 * counts) is known. With V > 1, `stage_of` and `maxc` have a slot per
 * layer. */
static void fill_stages(dnn__stage_model *sm, size_t *stage_of, size_t *maxc) {
  const dnn_net *net = sm->in.net;
  dnn_dtype dt = sm->in.scn->model.dtype;
  size_t L = dnn_net_layer_count(net), V = sm->V;
  double mbs = dnn__d(sm->mbs);
  for (size_t s = 0; s < V; s++) {
    dnn__stage *st = &sm->stages[s];
    st->fwd_s = st->bwd_s = st->recompute_s = 0;
    st->act_full_bytes = st->params = st->workspace_bytes = 0;
    double saved = 0, saved_max = 0, inputs = 0;
    for (size_t i = st->first; i < st->first + st->count; i++) {
      const dnn_layer *l = dnn_net_layer(net, i);
      /* The three passes once each: times and workspace together (a
       * convolution's time tries every algorithm). */
      double tp[DNN_PASS_COUNT];
      for (int p = 0; p < DNN_PASS_COUNT; p++) {
        double ws = 0;
        tp[p] = dnn_hw_layer_time(sm->in.hw, net, i, (dnn_pass)p, sm->mbs, dt,
                                  sm->ws_limit_bytes, NULL, &ws);
        st->workspace_bytes = fmax(st->workspace_bytes, ws);
      }
      double f = tp[DNN_PASS_FWD];
      st->fwd_s += f;
      st->bwd_s += tp[DNN_PASS_BWD_DATA] + tp[DNN_PASS_BWD_WEIGHTS];
      st->params += dnn__d(l->params);
      st->act_full_bytes += dnn_layer_activation_bytes(net, i, sm->mbs, dt);
      if (dnn__layer_selective(net, i)) {
        double sv = selective_saving(sm, i);
        saved += sv;
        saved_max = fmax(saved_max, sv);
        if (sm->recompute == DNN_RECOMPUTE_SELECTIVE)
          st->recompute_s += f;
      }
      if (l->kind == DNN_LAYER_INPUT)
        inputs += out_bytes_per_sample(net, i, dt) * mbs;
      if (stage_of)
        stage_of[i] = maxc[i] = s;
    }
    st->act_kept_bytes = st->act_full_bytes;
    st->act_extra_bytes = 0;
    if (sm->recompute == DNN_RECOMPUTE_SELECTIVE) {
      st->act_kept_bytes -= saved;
      st->act_extra_bytes = saved_max;
    } else if (sm->recompute == DNN_RECOMPUTE_FULL) {
      st->recompute_s = st->fwd_s;
      st->act_kept_bytes = inputs; /* plus its boundary inputs, below */
      st->act_extra_bytes = st->act_full_bytes;
    }
    memset(&st->send_fwd, 0, sizeof st->send_fwd);
    memset(&st->send_bwd, 0, sizeof st->send_bwd);
  }
  if (V == 1)
    return;
  /* Producer i crosses boundaries stage(i) .. maxc(i) - 1, where maxc(i)
   * is the last stage that consumes its output; its gradient comes back
   * unless it is the input data. Bytes are summed into the senders. */
  for (size_t j = 0; j < L; j++) {
    const dnn_layer *l = dnn_net_layer(net, j);
    for (size_t k = 0; k < l->n_inputs; k++)
      if (maxc[l->inputs[k]] < stage_of[j])
        maxc[l->inputs[k]] = stage_of[j];
  }
  for (size_t i = 0; i < L; i++) {
    if (maxc[i] == stage_of[i])
      continue;
    double bytes = out_bytes_per_sample(net, i, dt) * mbs;
    bool grad = dnn_net_layer(net, i)->kind != DNN_LAYER_INPUT;
    for (size_t s = stage_of[i]; s < maxc[i]; s++) {
      sm->stages[s].send_fwd.bytes += bytes;
      if (grad)
        sm->stages[s + 1].send_bwd.bytes += bytes;
    }
  }
  for (size_t s = 0; s < V; s++) {
    dnn__stage *st = &sm->stages[s];
    size_t r = s % sm->p;
    if (sm->recompute == DNN_RECOMPUTE_FULL && s > 0)
      st->act_kept_bytes += sm->stages[s - 1].send_fwd.bytes;
    st->send_fwd = dnn__stage_xfer(sm, r, (s + 1) % sm->p, 0,
                                   s + 1 < V ? st->send_fwd.bytes : 0, false);
    st->send_bwd = dnn__stage_xfer(sm, r, (s + sm->p - 1) % sm->p, 0,
                                   s > 0 ? st->send_bwd.bytes : 0, false);
  }
}

/* The cost a balanced partition equalises: one micro-batch's forward,
 * backward and recompute of each layer. */
static void layer_costs(const dnn__stage_model *sm, double *c) {
  size_t L = dnn_net_layer_count(sm->in.net);
  for (size_t i = 0; i < L; i++) {
    double f, b;
    dnn__stage_layer_time(sm, i, &f, &b);
    c[i] = f + b;
    if (sm->recompute == DNN_RECOMPUTE_FULL ||
        (sm->recompute == DNN_RECOMPUTE_SELECTIVE &&
         dnn__layer_selective(sm->in.net, i)))
      c[i] += f;
  }
}

dnn_status dnn__stage_model_build(const dnn_strat_input *in, size_t p, size_t v,
                                  const size_t *first, dnn__stage_model *sm,
                                  dnn_error *err) {
  const dnn_scenario *scn = in->scn;
  char where[DNN_SCN_PATH_MAX + 64];
  memset(sm, 0, sizeof *sm);
  sm->in = *in;
  sm->d = dnn_scn_data_degree(scn);
  sm->t = scn->parallelism.tensor;
  sm->p = p;
  sm->v = v;
  sm->V = p * v;
  sm->m = scn->parallelism.microbatches;
  sm->b = scn->model.batch / sm->d;
  sm->mbs = sm->b / sm->m;
  sm->schedule = scn->parallelism.schedule;
  if (sm->schedule == DNN_SCHEDULE_INTERLEAVED && v == 1)
    sm->schedule = DNN_SCHEDULE_1F1B; /* Megatron-LM does the same */
  sm->recompute = scn->training.recompute;
  sm->overlap = scn->parallelism.overlap;
  sm->bucket_bytes = scn->parallelism.bucket_MB * MIB;
  sm->grad_elem_bytes = dnn__d(dnn_dtype_bytes(scn->model.dtype));
  sm->ws_limit_bytes = scn->hardware.workspace_MB * MIB;
  sm->algo = (dnn_comm_algo)scn->parallelism.allreduce;
  dnn__strat_comm_setup(in, sm->d, sm->t, &sm->dp_topo);
  size_t L = dnn_net_layer_count(in->net);
  if (sm->V > L)
    return DNN_FAIL(
        err, DNN_EINVAL,
        "%s: %zu stages (pipeline %zu x virtual_stages %zu) but "
        "the network has only %zu layers",
        dnn_scn_key_origin(scn, "parallelism", "pipeline", where, sizeof where),
        sm->V, p, v, L);
  /* Check the allreduce once so later calls cannot fail. */
  if (sm->d > 1) {
    dnn_comm_cost c;
    dnn_status st =
        dnn_comm_time(DNN_COMM_ALLREDUCE, sm->algo, 1.0, &sm->dp_topo, &c, err);
    if (st)
      return st;
  }
  size_t *first_tmp = NULL, *stage_of = NULL, *maxc = NULL;
  double *cost = NULL;
  dnn_status st = DNN_OK;
  if (sm->V == 1) {
    sm->stages = &sm->one;
    sm->one.first = 0;
    sm->one.count = L;
    fill_stages(sm, NULL, NULL);
    return DNN_OK;
  }
  sm->stages = dnn_calloc(sm->V, sizeof *sm->stages);
  first_tmp = dnn_malloc(sm->V * sizeof *first_tmp);
  stage_of = dnn_malloc(L * sizeof *stage_of);
  maxc = dnn_malloc(L * sizeof *maxc);
  cost = first ? NULL : dnn_malloc(L * sizeof *cost);
  if (!sm->stages || !first_tmp || !stage_of || !maxc || (!first && !cost)) {
    st = DNN_FAIL(err, DNN_ENOMEM, "out of memory building %zu stages", sm->V);
    goto fail;
  }
  if (first) {
    memcpy(first_tmp, first, sm->V * sizeof *first_tmp);
  } else if (strcmp(scn->parallelism.partition, "balanced") == 0) {
    layer_costs(sm, cost);
    balance(cost, L, sm->V, first_tmp);
  } else if ((st = parse_counts(scn, L, sm->V, first_tmp, err))) {
    goto fail;
  }
  for (size_t s = 0; s < sm->V; s++) {
    sm->stages[s].first = first_tmp[s];
    sm->stages[s].count = (s + 1 < sm->V ? first_tmp[s + 1] : L) - first_tmp[s];
    DNN_ASSERT(sm->stages[s].count > 0);
  }
  fill_stages(sm, stage_of, maxc);
  dnn_free(first_tmp);
  dnn_free(stage_of);
  dnn_free(maxc);
  dnn_free(cost);
  return DNN_OK;
fail:
  dnn_free(first_tmp);
  dnn_free(stage_of);
  dnn_free(maxc);
  dnn_free(cost);
  dnn__stage_model_release(sm);
  return st;
}
