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
 * - Techniques (docs/models.md §17, §18, §20): batch augmentation
 *   computes `copies` of each sample (the micro-batch grows, gradients
 *   do not); layers with row-sparse gradients (embeddings, NCE) allgather
 *   the rows a step touched, d E(b) (D s + 4) bytes, when that beats
 *   allreducing the table; gradient compression shrinks each message
 *   (fp16 2n, 1-bit n/8 + 8, top-k k (s + ceil(log2 n)/8) bytes, top-k
 *   allgathered with a dense fallback) and adds its encode and decode
 *   kernels.
 *
 * Invariant: with V == 1 nothing is allocated (the stage lives in the
 * model), so the data-parallel analytic path stays allocation-free.
 */
#include "internal.h"

#include <gsl/gsl_cdf.h>
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
  /* One uniform per factor (inversion: the stream position is the draw
   * count); log-normal with E = 1 and Var = cv^2: sigma^2 = ln(1 + cv^2),
   * mu = -sigma^2 / 2. */
  double z = gsl_cdf_ugaussian_Pinv(dnn__rng_uniform(r));
  double s2 = log1p(cv * cv);
  return exp(-0.5 * s2 + sqrt(s2) * z);
}

double dnn__rng_jitter_at(uint64_t seed, uint64_t stream, size_t draw,
                          double cv) {
  if (cv <= 0)
    return 1;
  dnn__rng r;
  dnn__rng_seed(&r, seed, stream);
  for (size_t k = 0; k < draw; k++)
    (void)dnn__rng_uniform(&r);
  return dnn__rng_jitter(&r, cv);
}

/* ---- Per-layer quantities ------------------------------------------------ */

void dnn__stage_row(const dnn__stage_model *sm, size_t i, dnn__layer_row *row) {
  if (sm->tab)
    *row = sm->tab->row[i];
  else
    dnn__layer_row_plain(&sm->in, i, sm->mbs, row);
}

double dnn__stage_zero3_gather_s(const dnn__stage_model *sm, double params) {
  if (sm->zero < 3 || sm->d <= 1 || !(params > 0))
    return 0;
  dnn_comm_cost c;
  dnn_status st = dnn__cache_comm_time(
      sm->cache, sm->comm, DNN_COMM_ALLGATHER, DNN_COMM_ALGO_AUTO,
      params * sm->grad_elem_bytes, &sm->dp_topo, &c, NULL);
  DNN_ASSERT(st == DNN_OK);
  (void)st;
  return c.time_s;
}

/* ZeRO-3 gathers a layer's parameters before its forward and again before
 * its backward, prefetched while the previous layer computes (DeepSpeed):
 * a layer takes the longer of its compute and its gather. */
static void zero3_times(const dnn__stage_model *sm, double params, double *f,
                        double *b) {
  double g = dnn__stage_zero3_gather_s(sm, params);
  if (g > *f)
    *f = g;
  if (g > *b && *b > 0)
    *b = g;
}

void dnn__stage_layer_time(const dnn__stage_model *sm, size_t i, double *fwd_s,
                           double *bwd_s) {
  dnn__layer_row row;
  dnn__stage_row(sm, i, &row);
  *fwd_s = row.fwd_s;
  *bwd_s = row.bwd_s;
  if (sm->zero >= 3)
    zero3_times(sm, dnn__stage_layer_params(sm, i), fwd_s, bwd_s);
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
  return dnn__layer_out_bytes(net, i, 1, dt);
}

double dnn__stage_layer_params(const dnn__stage_model *sm, size_t i) {
  dnn__layer_row row;
  if (sm->tab)
    row.params = sm->tab->row[i].params;
  else
    row.params = dnn__d(dnn_net_layer(sm->in.net, i)->params);
  if (i == sm->tied_fc && sm->V > 1) {
    /* The embedding it shares lives on an earlier stage: this stage
     * holds, trains and reduces a copy (Megatron-LM's last stage). */
    size_t e = sm->tied_emb;
    bool same = false;
    for (size_t s = 0; s < sm->V && !same; s++) {
      const dnn__stage *st = &sm->stages[s];
      same = i >= st->first && i < st->first + st->count && e >= st->first;
    }
    if (!same)
      row.params += sm->tab ? sm->tab->row[e].params
                            : dnn__d(dnn_net_layer(sm->in.net, e)->params);
  }
  return row.params;
}

double dnn__xfer_time(const dnn__xfer *x) {
  if (x->bytes <= 0)
    return 0;
  return x->latency_s + x->bytes / fmin(x->cap_Bps, x->bw_Bps / x->weight);
}

/* ---- Gradient compression (docs/models.md §20) -------------------------- */

/* Bytes of one top-k entry: the value and its index into the n elements
 * of the message, ceil(log2 n) bits (REFERENCE §1.7). */
static double topk_entry_bytes(const dnn__stage_model *sm, double n) {
  double bits = n > 1 ? ceil(log2(n)) : 1;
  return sm->grad_elem_bytes + bits / 8;
}

static double topk_k(const dnn__stage_model *sm, double n) {
  return fmax(1.0, ceil(sm->in.scn->training.compression_density * n));
}

/* A memory-bound pass over `bytes` doing `flops` (an element-wise kernel,
 * at the profile's eltwise efficiency). */
static double pass_s(const dnn__stage_model *sm, double flops, double bytes) {
  return dnn_hw_kernel_time(sm->in.hw, DNN_OP_ELTWISE, sm->in.scn->model.dtype,
                            flops, bytes);
}

void dnn__compression_cost(const dnn__stage_model *sm, double bytes,
                           double *wire_bytes, double *compute_s) {
  const dnn_scenario *scn = sm->in.scn;
  double s = sm->grad_elem_bytes, n = bytes / s;
  *wire_bytes = bytes;
  *compute_s = 0;
  if (!(bytes > 0))
    return;
  switch (scn->training.compression) {
  case DNN_COMPRESSION_FP16:
    if (s <= 2)
      return; /* already half precision: nothing to do */
    /* Cast down before sending, up after receiving. */
    *wire_bytes = 2 * n;
    *compute_s = pass_s(sm, n, n * s + 2 * n) + pass_s(sm, n, 2 * n + n * s);
    return;
  case DNN_COMPRESSION_ONEBIT: {
    /* Sign bits plus two fp32 reconstruction values (Seide et al. 2014),
     * error feedback: the encoder reads the gradient and the residual and
     * writes the residual back. A compressed allreduce encodes and decodes
     * twice (the reduce-scatter's partial sums are compressed again,
     * as DeepSpeed's 1-bit Adam does). */
    *wire_bytes = ceil(n / 8) + 8;
    double enc = pass_s(sm, 4 * n, n * s + 8 * n + n / 8);
    double dec = pass_s(sm, n, n / 8 + n * s);
    *compute_s = 2 * (enc + dec);
    return;
  }
  case DNN_COMPRESSION_TOPK: {
    /* Selection: two passes over the values (a threshold estimate, then
     * the gather) with the residual of error feedback read and written;
     * decoding scatters the d received sets into a zeroed dense buffer. */
    double k = topk_k(sm, n), e = topk_entry_bytes(sm, n);
    double d = dnn__d(sm->d);
    *wire_bytes = k * e;
    double enc = pass_s(sm, 2 * n, 2 * n * s + 8 * n + k * e);
    double dec = pass_s(sm, d * k, d * k * e + n * s);
    *compute_s = enc + dec;
    return;
  }
  case DNN_COMPRESSION_NONE:
  default:
    return;
  }
}

/* The collective alone on `bytes` with the configured algorithm. */
static double coll_time(const dnn__stage_model *sm, dnn_comm_op op,
                        dnn_comm_algo a, double bytes, dnn_comm_algo *algo) {
  dnn_comm_cost c;
  dnn_status st = dnn__cache_comm_time(sm->cache, sm->comm, op, a, bytes,
                                       &sm->dp_topo, &c, NULL);
  /* The topology and algorithm were checked when the model was built. */
  DNN_ASSERT(st == DNN_OK);
  (void)st;
  if (algo)
    *algo = c.algo;
  return c.time_s;
}

/* The gradient exchange of `bytes` over the data-parallel group: its
 * time, algorithm, bytes each replica contributes and compression
 * compute. */
static double exchange(const dnn__stage_model *sm, double bytes,
                       dnn_comm_algo *algo, double *wire, double *comp) {
  *wire = bytes;
  *comp = 0;
  if (sm->d <= 1 || bytes <= 0) {
    if (algo)
      *algo = sm->algo == DNN_COMM_ALGO_AUTO ? DNN_COMM_ALGO_RING : sm->algo;
    return 0;
  }
  dnn_comm_op op = sm->zero >= 1 ? DNN_COMM_REDUCE_SCATTER : DNN_COMM_ALLREDUCE;
  dnn_compression cz = sm->in.scn->training.compression;
  if (cz == DNN_COMPRESSION_NONE)
    return coll_time(sm, op, sm->algo, bytes, algo);
  double w, c;
  dnn__compression_cost(sm, bytes, &w, &c);
  if (cz != DNN_COMPRESSION_TOPK) {
    *wire = w;
    *comp = c;
    return coll_time(sm, op, sm->algo, w, algo) + c;
  }
  /* Top-k: the d sparse sets allgathered (their union grows with d, up to
   * min(d k, n) entries), or the dense allreduce when that is faster (a
   * sparse allreduce switches to dense once the union fills in, as
   * SparCML does). */
  dnn_comm_algo a_dense, a_sparse;
  double dense = coll_time(sm, op, sm->algo, bytes, &a_dense);
  double sparse = coll_time(sm, DNN_COMM_ALLGATHER, DNN_COMM_ALGO_AUTO,
                            dnn__d(sm->d) * w, &a_sparse) +
                  c;
  if (!(sparse < dense)) {
    if (algo)
      *algo = a_dense;
    return dense;
  }
  if (algo)
    *algo = a_sparse;
  *wire = w;
  *comp = c;
  return sparse;
}

double dnn__stage_allreduce_time(const dnn__stage_model *sm, double bytes,
                                 dnn_comm_algo *algo) {
  double wire, comp;
  return exchange(sm, bytes, algo, &wire, &comp);
}

void dnn__stage_grad_wire(const dnn__stage_model *sm, double bytes,
                          double *wire_bytes, double *compute_s) {
  (void)exchange(sm, bytes, NULL, wire_bytes, compute_s);
}

/* ---- Sparse embedding gradients (docs/models.md §18) ------------------- */

/* Whether sparse layer k (of sm->sparse_layer) lies on pipeline rank r. */
static bool sparse_on_rank(const dnn__stage_model *sm, size_t k, size_t r) {
  size_t i = sm->sparse_layer[k];
  for (size_t c = 0; c < sm->v; c++) {
    const dnn__stage *st = &sm->stages[c * sm->p + r];
    if (i >= st->first && i < st->first + st->count)
      return true;
  }
  return false;
}

double dnn__stage_dense_grad_bytes(const dnn__stage_model *sm, size_t r) {
  double p = dnn__stage_device_params(sm, r);
  for (size_t k = 0; k < sm->n_sparse; k++)
    if (sparse_on_rank(sm, k, r))
      p -= sm->sparse_params[k];
  return fmax(0.0, p) * sm->grad_elem_bytes;
}

double dnn__stage_sparse_time(const dnn__stage_model *sm, size_t r) {
  double t = 0;
  for (size_t k = 0; k < sm->n_sparse; k++)
    if (sparse_on_rank(sm, k, r))
      t += sm->sparse_s[k];
  return t;
}

/* Parameters of the sparse layers in [a, b). */
static double sparse_in(const dnn__stage_model *sm, size_t a, size_t b) {
  double p = 0;
  for (size_t k = 0; k < sm->n_sparse; k++)
    if (sm->sparse_layer[k] >= a && sm->sparse_layer[k] < b)
      p += sm->sparse_params[k];
  return p;
}

static bool is_sparse(const dnn__stage_model *sm, size_t i) {
  for (size_t k = 0; k < sm->n_sparse; k++)
    if (sm->sparse_layer[k] == i)
      return true;
  return false;
}

/*
 * Chooses, for every layer with a row-sparse weight gradient, between the
 * dense allreduce of its table and the allgather of the rows the replicas
 * touched: d replicas x E[distinct rows of the step's b samples] x (row +
 * a 4-byte row index), whichever is faster. Only plain data-parallel
 * reduction (ZeRO 0) and whole (unsplit) tables.
 */
static void plan_sparse(dnn__stage_model *sm) {
  sm->n_sparse = 0;
  if (sm->d <= 1 || sm->zero >= 1)
    return;
  const dnn_net *net = sm->in.net;
  size_t L = dnn_net_layer_count(net);
  size_t n_cand = sm->tab ? sm->tab->n_sparse : L;
  for (size_t k = 0; k < n_cand && sm->n_sparse < DNN__MAX_SPARSE; k++) {
    size_t i = sm->tab ? sm->tab->sparse[k] : k;
    if (!sm->tab && !dnn__layer_sparse_grad(net, i))
      continue;
    double params = sm->tab ? sm->tab->row[i].params
                            : dnn__d(dnn_net_layer(net, i)->params);
    if (params != dnn__d(dnn_net_layer(net, i)->params))
      continue; /* a tensor-split table: not modelled */
    size_t elems = 0;
    double rows = dnn_layer_grad_rows(net, i, sm->b, &elems);
    double sparse_bytes =
        dnn__d(sm->d) * rows * (dnn__d(elems) * sm->grad_elem_bytes + 4.0);
    double dense_bytes = params * sm->grad_elem_bytes;
    double ts = coll_time(sm, DNN_COMM_ALLGATHER, DNN_COMM_ALGO_AUTO,
                          sparse_bytes, NULL);
    double td = coll_time(sm, DNN_COMM_ALLREDUCE, sm->algo, dense_bytes, NULL);
    if (!(ts < td))
      continue;
    size_t j = sm->n_sparse++;
    sm->sparse_layer[j] = i;
    sm->sparse_params[j] = params;
    sm->sparse_s[j] = ts;
    sm->sparse_bytes[j] = sparse_bytes;
  }
}

/* The copy of the tied embedding stage `st` holds (0 when it holds none:
 * no tied LM head there, or the embedding on the same stage). */
static double tied_copy(const dnn__stage_model *sm, const dnn__stage *st) {
  size_t i = sm->tied_fc;
  if (i == DNN_SIM_NONE || sm->V <= 1 || i < st->first ||
      i >= st->first + st->count || sm->tied_emb >= st->first)
    return 0;
  return sm->tab ? sm->tab->row[sm->tied_emb].params
                 : dnn__d(dnn_net_layer(sm->in.net, sm->tied_emb)->params);
}

/* ---- Buckets ------------------------------------------------------------- */

void dnn__bucket_begin(const dnn__stage_model *sm, size_t vs,
                       const double *layer_bwd_s, dnn__bucket_iter *it) {
  it->vs = vs;
  it->next = sm->stages[vs].count;
  it->bwd_s = 0;
  it->layer_bwd_s = layer_bwd_s;
}

/* Gradient bytes of layers [k, hi) of stage `st`, from the prefix sums. */
static double grad_bytes_from(const dnn__stage_model *sm, const dnn__stage *st,
                              size_t k, size_t hi) {
  double p = dnn__tab_sum(sm->tab, DNN__PRE_PARAMS, k, hi);
  if (sm->tied_fc >= k && sm->tied_fc < hi)
    p += tied_copy(sm, st);
  if (sm->n_sparse)
    p = fmax(0.0, p - sparse_in(sm, k, hi));
  return p * sm->grad_elem_bytes;
}

/* The next bucket's closing layer, bytes, and the backward time of its
 * layers; false when the stage has none left. Layer by layer, or with the
 * table (and no ZeRO-3 gathers in the layer times) by bisection on the
 * prefix sums: the bucket closes at the highest layer k with at least
 * bucket_bytes of gradients in [k, end), or at the stage's first layer. */
static bool bucket_scan(const dnn__stage_model *sm, dnn__bucket_iter *it,
                        size_t *close, double *bytes, double *bwd_s) {
  const dnn__stage *st = &sm->stages[it->vs];
  if (sm->tab && sm->zero < 3) {
    size_t lo = st->first, hi = st->first + it->next;
    if (it->next == 0 || !(grad_bytes_from(sm, st, lo, hi) > 0))
      return false;
    size_t k = lo;
    if (grad_bytes_from(sm, st, lo, hi) >= sm->bucket_bytes) {
      /* Invariant: [k, hi) holds enough, [j, hi) does not. */
      size_t j = hi;
      while (j - k > 1) {
        size_t mid = k + (j - k) / 2;
        if (grad_bytes_from(sm, st, mid, hi) >= sm->bucket_bytes)
          k = mid;
        else
          j = mid;
      }
    }
    *close = k;
    *bytes = grad_bytes_from(sm, st, k, hi);
    *bwd_s = dnn__tab_sum(sm->tab, DNN__PRE_BWD, k, hi);
    it->next = k - st->first;
    return true;
  }
  double bucket = 0, b_s = 0;
  while (it->next > 0) {
    size_t i = st->first + --it->next;
    double f, b;
    if (it->layer_bwd_s)
      b = it->layer_bwd_s[i];
    else
      dnn__stage_layer_time(sm, i, &f, &b);
    b_s += b;
    if (!is_sparse(sm, i))
      bucket += dnn__stage_layer_params(sm, i) * sm->grad_elem_bytes;
    if (bucket > 0 && (bucket >= sm->bucket_bytes || it->next == 0)) {
      *close = i;
      *bytes = bucket;
      *bwd_s = b_s;
      return true;
    }
  }
  return false;
}

bool dnn__bucket_next(const dnn__stage_model *sm, dnn__bucket_iter *it,
                      dnn__bucket *out) {
  if (!sm->overlap || sm->d <= 1)
    return false;
  size_t close;
  double bytes, b_s;
  if (!bucket_scan(sm, it, &close, &bytes, &b_s))
    return false;
  it->bwd_s += b_s;
  out->close_layer = close;
  out->bytes = bytes;
  out->time_s = dnn__stage_allreduce_time(sm, bytes, NULL);
  out->ready_s = it->bwd_s;
  return true;
}

dnn_comm_algo dnn__stage_report_algo(const dnn__stage_model *sm, size_t r) {
  dnn_comm_algo a;
  double bytes = 0;
  if (sm->d > 1 && !sm->overlap) {
    bytes = dnn__stage_dense_grad_bytes(sm, r);
  } else if (sm->d > 1) {
    /* Chunk 0's last backward is the rank's last: the bytes of the last
     * bucket it closes. */
    dnn__bucket_iter it;
    size_t close;
    double b, t;
    dnn__bucket_begin(sm, r, NULL, &it);
    while (bucket_scan(sm, &it, &close, &b, &t))
      bytes = b;
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

double dnn__stage_step_comm_s(const dnn__stage_model *sm, size_t r) {
  double t = 0, group = 0;
  for (size_t c = 0; c < sm->v; c++)
    group += sm->stages[c * sm->p + r].group_grad_bytes;
  if (sm->t > 1 && group > 0) {
    dnn_comm_cost cc;
    if (dnn__cache_comm_time(sm->cache, sm->comm, DNN_COMM_ALLREDUCE,
                             DNN_COMM_ALGO_AUTO, group, &sm->tp_topo, &cc,
                             NULL) == DNN_OK)
      t += cc.time_s;
  }
  if ((sm->zero == 1 || sm->zero == 2) && sm->d > 1) {
    /* Each replica updated its shard: the new weights are gathered. */
    dnn_comm_cost cc;
    double bytes = dnn__stage_device_params(sm, r) * sm->grad_elem_bytes;
    if (bytes > 0 &&
        dnn__cache_comm_time(sm->cache, sm->comm, DNN_COMM_ALLGATHER,
                             DNN_COMM_ALGO_AUTO, bytes, &sm->dp_topo, &cc,
                             NULL) == DNN_OK)
      t += cc.time_s;
  }
  return t;
}

double dnn__stage_optimizer_time(const dnn__stage_model *sm, size_t r) {
  double params = dnn__stage_device_params(sm, r);
  if (sm->zero >= 1 && sm->d > 1)
    params /= dnn__d(sm->d); /* ZeRO: each replica updates its shard */
  return dnn__strat_optimizer_time(&sm->in, params) +
         dnn__stage_step_comm_s(sm, r);
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
  if (sm->stages != &sm->one && !sm->stages_borrowed)
    dnn_free(sm->stages);
  sm->stages = NULL;
  if (sm->own_tab) {
    dnn__layer_tab_release(sm->own_tab);
    dnn_free(sm->own_tab);
  }
  sm->own_tab = NULL;
  sm->tab = NULL;
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
  /* The tensor ranks of the replica send their shares at the same time,
   * on the same node's NICs (never simulated one by one). */
  size_t dpn = cl->devices_per_node ? cl->devices_per_node : 1;
  double tensor_ranks = dnn__d(sm->t < dpn ? sm->t : dpn);
  x.weight = tensor_ranks;
  if (alone)
    return x;
  /* Replicas of this stage on the sending node that also cross: those
   * whose source is on the node minus those whose destination is too
   * (both sets are ranges of replicas; O(1) for a million devices). */
  size_t lo = n_src * dpn, hi = lo + dpn;
  size_t q0, q1, b0, b1;
  replicas_in(sm, dnn__stage_device(sm, r_src, 0), lo, hi, &q0, &q1);
  replicas_in(sm, dnn__stage_device(sm, r_dst, 0), lo, hi, &b0, &b1);
  size_t both = 0;
  if (b0 < q1 && q0 < b1)
    both = (q1 < b1 ? q1 : b1) - (q0 > b0 ? q0 : b0);
  size_t w = q1 - q0 - both;
  x.weight = (w >= 1 ? dnn__d(w) : 1) * tensor_ranks;
  return x;
}

/* ZeRO-3 gathers of the few distinct layer sizes of a network, computed
 * once per fill rather than once per layer. */
typedef struct gather_memo {
  double params[8], time_s[8];
  size_t n;
} gather_memo;

static double memo_gather(const dnn__stage_model *sm, gather_memo *mm,
                          double params) {
  for (size_t k = 0; k < mm->n; k++)
    if (mm->params[k] == params)
      return mm->time_s[k];
  double g = dnn__stage_zero3_gather_s(sm, params);
  size_t k = mm->n < 8 ? mm->n++ : 7;
  mm->params[k] = params;
  mm->time_s[k] = g;
  return g;
}

/* A stage's sums from the table's prefix sums and range maxima: O(1) per
 * stage, whatever its layer count (what keeps search fast). */
static void fill_fast(dnn__stage_model *sm, dnn__stage *st, double *saved,
                      double *saved_max, double *inputs) {
  const dnn__layer_tab *tb = sm->tab;
  size_t a = st->first, b = st->first + st->count;
  double copy = tied_copy(sm, st);
  st->fwd_s = dnn__tab_sum(tb, DNN__PRE_FWD, a, b);
  st->bwd_s = dnn__tab_sum(tb, DNN__PRE_BWD, a, b);
  st->comm_fwd_s = dnn__tab_sum(tb, DNN__PRE_COMM_FWD, a, b);
  st->comm_bwd_s = dnn__tab_sum(tb, DNN__PRE_COMM_BWD, a, b);
  st->workspace_bytes = tb->ws_sum ? dnn__tab_sum(tb, DNN__PRE_WS_HELD, a, b)
                                   : dnn__tab_max(tb, DNN__MAX_WS, a, b);
  st->params = dnn__tab_sum(tb, DNN__PRE_PARAMS, a, b) + copy;
  st->max_layer_params = dnn__tab_max(tb, DNN__MAX_PARAMS, a, b);
  if (copy > 0)
    st->max_layer_params =
        fmax(st->max_layer_params, tb->row[sm->tied_fc].params + copy);
  st->group_grad_bytes = dnn__tab_sum(tb, DNN__PRE_GROUP, a, b);
  st->act_full_bytes = dnn__tab_sum(tb, DNN__PRE_ACT, a, b);
  *saved = dnn__tab_sum(tb, DNN__PRE_SEL, a, b);
  *saved_max = dnn__tab_max(tb, DNN__MAX_SEL, a, b);
  *inputs = dnn__tab_sum(tb, DNN__PRE_INPUT, a, b);
  if (sm->recompute == DNN_RECOMPUTE_SELECTIVE) {
    st->recompute_s = dnn__tab_sum(tb, DNN__PRE_SEL_FWD, a, b);
    st->comm_recompute_s = dnn__tab_sum(tb, DNN__PRE_SEL_COMM_FWD, a, b);
  }
}

/* Full recompute's memory within a stage: the checkpointed block inputs
 * it keeps beyond the stage's own inputs, and the largest segment between
 * checkpoints, alive while that segment's backward runs (Megatron-LM
 * recomputes one transformer layer at a time; a network without blocks
 * is one segment per stage, as GPipe re-materialises a whole stage). */
typedef struct ckpt_acc {
  const dnn__stage_model *sm;
  size_t prev;       /* start of the open segment */
  double kept, peak; /* bytes */
} ckpt_acc;

static double range_act(const dnn__stage_model *sm, size_t a, size_t b) {
  if (sm->tab)
    return dnn__tab_sum(sm->tab, DNN__PRE_ACT, a, b);
  double sum = 0;
  for (size_t i = a; i < b; i++) {
    dnn__layer_row row;
    dnn__stage_row(sm, i, &row);
    sum += row.act_bytes;
  }
  return sum;
}

static void on_cut(size_t k, void *ud) {
  ckpt_acc *acc = ud;
  dnn__layer_row row;
  dnn__stage_row(acc->sm, k - 1, &row);
  acc->kept += row.out_bytes;
  acc->peak = fmax(acc->peak, range_act(acc->sm, acc->prev, k));
  acc->prev = k;
}

static void full_recompute_memory(const dnn__stage_model *sm,
                                  const dnn__stage *st, double *kept,
                                  double *peak) {
  size_t a = st->first, b = st->first + st->count;
  ckpt_acc acc = {sm, a, 0, 0};
  if (sm->tab) {
    /* The table's sorted cuts: the first inside the stage by bisection. */
    const dnn__layer_tab *tb = sm->tab;
    size_t lo = 0, hi = tb->n_ckpt;
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      if (tb->ckpt[mid] <= a)
        lo = mid + 1;
      else
        hi = mid;
    }
    for (size_t k = lo; k < tb->n_ckpt && tb->ckpt[k] < b; k++)
      on_cut(tb->ckpt[k], &acc);
  } else {
    dnn__ckpt_cuts(sm->in.net, a, b, on_cut, &acc);
  }
  acc.peak = fmax(acc.peak, range_act(sm, acc.prev, b));
  *kept = acc.kept;
  *peak = acc.peak;
}

/* Fills every per-stage quantity once the cut (stage first layers and
 * counts) is known. Without a table and with V > 1, `stage_of` and
 * `maxc` have a slot per layer. */
static void fill_stages(dnn__stage_model *sm, size_t *stage_of, size_t *maxc) {
  const dnn_net *net = sm->in.net;
  dnn_dtype dt = sm->in.scn->model.dtype;
  size_t L = dnn_net_layer_count(net), V = sm->V;
  double mbs = dnn__d(sm->mbs);
  gather_memo memo;
  memo.n = 0;
  bool fast = sm->tab && sm->zero < 3 && !stage_of;
  bool ws_sum = sm->tab && sm->tab->ws_sum;
  sm->one_fwd_s = sm->tab ? sm->tab->one_fwd_s : 0;
  for (size_t s = 0; s < V; s++) {
    dnn__stage *st = &sm->stages[s];
    st->fwd_s = st->bwd_s = st->recompute_s = 0;
    st->act_full_bytes = st->params = st->workspace_bytes = 0;
    st->comm_fwd_s = st->comm_bwd_s = st->comm_recompute_s = 0;
    st->group_grad_bytes = st->max_layer_params = 0;
    double saved = 0, saved_max = 0, inputs = 0;
    if (fast)
      fill_fast(sm, st, &saved, &saved_max, &inputs);
    for (size_t i = st->first; !fast && i < st->first + st->count; i++) {
      /* The three passes once each: times and workspace together (a
       * convolution's time tries every algorithm). */
      dnn__layer_row row;
      dnn__stage_row(sm, i, &row);
      double pr = dnn__stage_layer_params(sm, i);
      double f = row.fwd_s, b = row.bwd_s;
      if (sm->zero >= 3) {
        double g = memo_gather(sm, &memo, pr);
        f = fmax(f, g);
        if (b > 0)
          b = fmax(b, g);
      }
      /* What a ZeRO-3 gather adds beyond the compute is communication
       * the layer waits for, like the tensor group's collectives. */
      double cf = row.comm_fwd_s + (f - row.fwd_s);
      st->fwd_s += f;
      st->bwd_s += b;
      st->comm_fwd_s += cf;
      st->comm_bwd_s += row.comm_bwd_s + (b - row.bwd_s);
      st->workspace_bytes =
          ws_sum ? st->workspace_bytes + row.workspace_held_bytes
                 : fmax(st->workspace_bytes, row.workspace_bytes);
      if (!sm->tab)
        sm->one_fwd_s += row.fwd_s;
      st->params += pr;
      st->max_layer_params = fmax(st->max_layer_params, pr);
      st->group_grad_bytes += row.group_grad_bytes;
      st->act_full_bytes += row.act_bytes;
      if (row.selective) {
        saved += row.selective_bytes;
        saved_max = fmax(saved_max, row.selective_bytes);
        if (sm->recompute == DNN_RECOMPUTE_SELECTIVE) {
          st->recompute_s += f;
          st->comm_recompute_s += cf;
        }
      }
      inputs += row.input_bytes;
      if (stage_of)
        stage_of[i] = maxc[i] = s;
    }
    st->bwd_s += dnn__strat_accumulate_time(&sm->in, st->params, sm->m);
    st->act_kept_bytes = st->act_full_bytes;
    st->act_extra_bytes = 0;
    if (sm->recompute == DNN_RECOMPUTE_SELECTIVE) {
      st->act_kept_bytes -= saved;
      st->act_extra_bytes = saved_max;
    } else if (sm->recompute == DNN_RECOMPUTE_FULL) {
      double ckpt, peak;
      full_recompute_memory(sm, st, &ckpt, &peak);
      st->recompute_s = st->fwd_s;
      st->comm_recompute_s = st->comm_fwd_s;
      /* Plus its boundary inputs, below. */
      st->act_kept_bytes = inputs + ckpt;
      st->act_extra_bytes = peak;
    }
    memset(&st->send_fwd, 0, sizeof st->send_fwd);
    memset(&st->send_bwd, 0, sizeof st->send_bwd);
  }
  if (V == 1)
    return;
  if (sm->tab) {
    /* Boundary s carries what crosses the cut before stage s + 1. */
    for (size_t s = 0; s + 1 < V; s++) {
      size_t cut = sm->stages[s + 1].first;
      sm->stages[s].send_fwd.bytes = sm->tab->cut_fwd[cut];
      sm->stages[s + 1].send_bwd.bytes = sm->tab->cut_bwd[cut];
    }
  } else {
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

/* The data-parallel groups of a stage's t tensor ranks (stride t) reduce
 * at the same time; when a group spans nodes, the groups with members on
 * a node share its NICs (comm.h leaves that to the caller): each gets
 * 1/groups of them. Without tensor parallelism a node holds one group. */
static void share_nics(dnn__stage_model *sm) {
  dnn_comm_topo *tp = &sm->dp_topo;
  size_t dpn = sm->in.cluster.devices_per_node;
  if (sm->t <= 1 || tp->ranks <= tp->ranks_per_node || tp->ranks_per_node == 0)
    return;
  size_t groups = dpn / tp->ranks_per_node;
  if (groups > 1)
    tp->inter.beta_s_per_byte *= dnn__d(groups);
}

/* The per-layer table: the cache's, or one of its own when a tensor split
 * needs one and there is no cache (t = 1 computes rows on the spot). */
static dnn_status setup_tab(dnn__stage_model *sm, dnn_strat_cache *cache,
                            dnn_error *err) {
  const dnn_strat_input *in = &sm->in;
  if (cache)
    return dnn__cache_tab(cache, in, sm->comm, sm->mbs, sm->t, &sm->tab, err);
  /* Micro-batched convolutions come from a plan: a table of their own. */
  if (sm->t <= 1 && in->scn->training.micro_batching == DNN_MICROBATCHING_NONE)
    return DNN_OK;
  sm->own_tab = dnn_calloc(1, sizeof *sm->own_tab);
  if (sm->own_tab == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory for a per-layer table");
  dnn_status st =
      dnn__layer_tab_build(in, sm->comm, sm->mbs, sm->t, sm->own_tab, err);
  if (st) {
    dnn_free(sm->own_tab);
    sm->own_tab = NULL;
    return st;
  }
  sm->tab = sm->own_tab;
  return DNN_OK;
}

dnn_status dnn__stage_model_build(const dnn_strat_input *in,
                                  const dnn_comm_profile *cp, size_t p,
                                  size_t v, const size_t *first,
                                  dnn__stage_model *sm, dnn_error *err) {
  return dnn__stage_model_build_ex(in, NULL, cp, p, v, first, sm, err);
}

dnn_status dnn__stage_model_build_ex(const dnn_strat_input *in,
                                     dnn_strat_cache *cache,
                                     const dnn_comm_profile *cp, size_t p,
                                     size_t v, const size_t *first,
                                     dnn__stage_model *sm, dnn_error *err) {
  const dnn_scenario *scn = in->scn;
  char where[DNN_SCN_PATH_MAX + 64];
  memset(sm, 0, sizeof *sm);
  sm->in = *in;
  sm->comm = cp;
  sm->d = dnn_scn_data_degree(scn);
  sm->t = scn->parallelism.tensor;
  sm->p = p;
  sm->v = v;
  sm->V = p * v;
  sm->m = scn->parallelism.microbatches;
  sm->b = scn->model.batch / sm->d;
  /* Batch augmentation: every sample computed `copies` times; gradients
   * and their reduction are per step, unchanged (docs/models.md §17). */
  sm->copies = scn->training.augment_copies ? scn->training.augment_copies : 1;
  sm->mbs = sm->b / sm->m * sm->copies;
  sm->schedule = scn->parallelism.schedule;
  if (sm->schedule == DNN_SCHEDULE_INTERLEAVED && v == 1)
    sm->schedule = DNN_SCHEDULE_1F1B; /* Megatron-LM does the same */
  sm->recompute = scn->training.recompute;
  /* Overlap needs a device whose collectives progress beside its kernels
   * ([device] comm_progress): on a host-progressed one (MPI on a CPU) the
   * buckets' allreduces serialise with compute (docs/models.md §6, "Who moves
   * the data"). */
  sm->overlap = scn->parallelism.overlap &&
                (in->hw == NULL || dnn_hw_comm_overlaps(dnn_hw_get(in->hw)));
  sm->bucket_bytes = scn->parallelism.bucket_MB * MIB;
  sm->grad_elem_bytes = dnn__d(dnn_dtype_bytes(scn->model.dtype));
  sm->ws_limit_bytes = scn->hardware.workspace_MB * MIB;
  sm->algo = (dnn_comm_algo)scn->parallelism.allreduce;
  sm->zero = scn->training.zero;
  sm->tied_fc = sm->tied_emb = DNN_SIM_NONE;
  sm->cache = cache;
  dnn__strat_comm_setup(in, sm->d, sm->t, &sm->dp_topo);
  share_nics(sm);
  if (sm->t > 1)
    sm->tp_topo = dnn__tp_topo(in, sm->t);
  size_t L = dnn_net_layer_count(in->net);
  if (sm->V > L)
    return DNN_FAIL(
        err, DNN_EINVAL,
        "%s: %zu stages (pipeline %zu x virtual_stages %zu) but "
        "the network has only %zu layers",
        dnn_scn_key_origin(scn, "parallelism", "pipeline", where, sizeof where),
        sm->V, p, v, L);
  if (scn->training.compression == DNN_COMPRESSION_TOPK && sm->zero >= 1 &&
      sm->d > 1)
    return DNN_FAIL(err, DNN_EUNSUPPORTED,
                    "%s: top-k compression of ZeRO's reduce-scatter is not "
                    "modelled; use zero = 0, or compression fp16 or 1bit",
                    dnn_scn_key_origin(scn, "training", "compression", where,
                                       sizeof where));
  /* Check the gradient collective once so later calls cannot fail. */
  if (sm->d > 1) {
    dnn_comm_op op =
        sm->zero >= 1 ? DNN_COMM_REDUCE_SCATTER : DNN_COMM_ALLREDUCE;
    if (!dnn_comm_supports(op, sm->algo))
      return DNN_FAIL(err, DNN_EINVAL,
                      "%s: ZeRO stage %zu reduce-scatters gradients, which "
                      "'%s' does not implement; use auto or ring",
                      dnn_scn_key_origin(scn, "parallelism", "allreduce", where,
                                         sizeof where),
                      sm->zero, dnn_comm_algo_name(sm->algo));
    dnn_comm_cost c;
    dnn_status st = dnn__cache_comm_time(cache, cp, op, sm->algo, 1.0,
                                         &sm->dp_topo, &c, err);
    if (st)
      return st;
  }
  size_t *first_tmp = NULL, *stage_of = NULL, *maxc = NULL;
  double *cost = NULL;
  bool scratch = cache != NULL;
  dnn_status st = setup_tab(sm, cache, err);
  if (st)
    goto fail;
  if (sm->V == 1) {
    sm->stages = &sm->one;
    sm->one.first = 0;
    sm->one.count = L;
    fill_stages(sm, NULL, NULL);
    plan_sparse(sm);
    return DNN_OK;
  }
  if (scratch) {
    /* The cache's scratch: nothing is allocated once it is warm. */
    st = dnn__cache_scratch(cache, sm->V, L, &sm->stages, &first_tmp, &cost,
                            err);
    if (st)
      goto fail;
    sm->stages_borrowed = true;
    memset(sm->stages, 0, sm->V * sizeof *sm->stages);
  } else {
    sm->stages = dnn_calloc(sm->V, sizeof *sm->stages);
    first_tmp = dnn_malloc(sm->V * sizeof *first_tmp);
    cost = first ? NULL : dnn_malloc(L * sizeof *cost);
    if (!sm->tab) {
      stage_of = dnn_malloc(L * sizeof *stage_of);
      maxc = dnn_malloc(L * sizeof *maxc);
    }
    if (!sm->stages || !first_tmp || (!first && !cost) ||
        (!sm->tab && (!stage_of || !maxc))) {
      st =
          DNN_FAIL(err, DNN_ENOMEM, "out of memory building %zu stages", sm->V);
      goto fail;
    }
  }
  if (first) {
    memcpy(first_tmp, first, sm->V * sizeof *first_tmp);
  } else if (strcmp(scn->parallelism.partition, "balanced") == 0) {
    /* A cache remembers cuts (ZeRO-3's gathers change the costs). */
    bool memo = cache && sm->tab && sm->zero < 3;
    if (!memo || !dnn__cache_partition_get(cache, sm->tab, sm->V,
                                           (int)sm->recompute, first_tmp)) {
      layer_costs(sm, cost);
      balance(cost, L, sm->V, first_tmp);
      if (memo)
        dnn__cache_partition_put(cache, sm->tab, sm->V, (int)sm->recompute,
                                 first_tmp);
    }
  } else if ((st = parse_counts(scn, L, sm->V, first_tmp, err))) {
    goto fail;
  }
  for (size_t s = 0; s < sm->V; s++) {
    sm->stages[s].first = first_tmp[s];
    sm->stages[s].count = (s + 1 < sm->V ? first_tmp[s + 1] : L) - first_tmp[s];
    DNN_ASSERT(sm->stages[s].count > 0);
  }
  /* Tied weights matter once the cut is known (a copy on another stage). */
  if (sm->tab) {
    sm->tied_fc = sm->tab->tied_fc;
    sm->tied_emb = sm->tab->tied_emb;
  } else {
    dnn__net_tied(in->net, &sm->tied_fc, &sm->tied_emb);
  }
  fill_stages(sm, stage_of, maxc);
  plan_sparse(sm);
  if (!scratch) {
    dnn_free(first_tmp);
    dnn_free(cost);
  }
  dnn_free(stage_of);
  dnn_free(maxc);
  return DNN_OK;
fail:
  if (!sm->stages_borrowed) {
    dnn_free(first_tmp);
    dnn_free(cost);
  }
  dnn_free(stage_of);
  dnn_free(maxc);
  dnn__stage_model_release(sm);
  return st;
}
