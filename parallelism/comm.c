/*
 * Cost models of collective communication under the alpha-beta-gamma
 * (Hockney 1994) model: a message of m bytes costs alpha + beta*m and
 * reducing m bytes costs gamma*m. Implements include/dnnsim/comm.h.
 *
 * Formulas (derived in docs/models.md §5, "Collectives"):
 *   ring, recursive doubling/halving, Rabenseifner, binomial trees,
 *   scatter+allgather broadcast, direct (pairwise) exchanges: Thakur,
 *   Rabenseifner & Gropp 2005; Chan et al. 2007.
 *   Bruck all-to-all (the recursive-doubling id): Bruck et al. 1997 (via
 *   Thakur 2005).
 *   Pipelined double binary tree: Sanders, Speck & Traeff 2009.
 *   Parameter server: ../shared/REFERENCE.md §1.5.
 *   Non-powers of two: the P - P' extra ranks (P' = 2^floor(log2 P)) fold
 *   their data into a partner first and receive the result last.
 *
 * Multi-node rule: every step is charged to the link it crosses. A step
 * that stays in a node uses `intra`; a step that crosses nodes with c ranks
 * of a node crossing at once uses (alpha, beta, gamma) =
 *   (max(alpha_i, alpha_e), max(beta_i, c * beta_e / nics), max(gamma_i,
 *   gamma_e)):
 * the node's NICs are shared by its c crossing ranks, and no rank moves
 * data faster than its own intra-node port.
 *
 * Invariant: every function here is pure; nothing allocates. A cost is a
 * sum of non-negative step costs, each non-decreasing in every alpha,
 * beta and gamma, so more bandwidth is never slower and more latency never
 * faster (AUTO and the segment count are minima of such sums).
 */
#include "dnnsim/comm.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/internal.h"

/* AUTO treats candidates within this relative difference as tied and keeps
 * the first in list order, so that algebraically equal costs summed in a
 * different order do not flip the choice on the last bit. */
#define TIE_REL 1e-12

/* The largest segment count: beyond 2^53 a double no longer counts
 * segments exactly (a numeric limit, not a hardware constant). */
#define MAX_SEGMENTS 9007199254740992.0

/* ------------------------------------------------------------------------ */
/* Names                                                                     */
/* ------------------------------------------------------------------------ */

static const char *const op_names[] = {
#define OP_NAME_(id, name) name,
    DNN_COMM_OP_LIST(OP_NAME_)
#undef OP_NAME_
        NULL};

static const char *const algo_names[] = {
#define ALGO_NAME_(id, name) name,
    DNN_COMM_ALGO_LIST(ALGO_NAME_)
#undef ALGO_NAME_
        NULL};

const char *dnn_comm_op_name(dnn_comm_op op) {
  if ((unsigned)op >= (unsigned)DNN_COMM_OP_COUNT)
    return "unknown";
  return op_names[op];
}

const char *dnn_comm_algo_name(dnn_comm_algo a) {
  if ((unsigned)a >= (unsigned)DNN_COMM_ALGO_COUNT)
    return "unknown";
  return algo_names[a];
}

/* Index of `name` in `names`, or fails with DNN_ENOTFOUND and a
 * suggestion (or the list of valid names when none is near). */
static dnn_status lookup(const char *name, const char *const *names,
                         const char *what, size_t *out, dnn_error *err) {
  DNN_ASSERT(name != NULL);
  for (size_t i = 0; names[i]; i++) {
    if (strcmp(name, names[i]) == 0) {
      *out = i;
      return DNN_OK;
    }
  }
  const char *near = dnn_nearest_name(name, names);
  if (near)
    return DNN_FAIL(err, DNN_ENOTFOUND,
                    "unknown %s \"%s\" (did you mean \"%s\"?)", what, name,
                    near);
  char list[256] = "";
  size_t len = 0;
  for (size_t i = 0; names[i] && len + 1 < sizeof list; i++) {
    int w = snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "",
                     names[i]);
    if (w < 0)
      break;
    len += (size_t)w;
  }
  return DNN_FAIL(err, DNN_ENOTFOUND, "unknown %s \"%s\" (valid: %s)", what,
                  name, list);
}

dnn_status dnn_comm_op_parse(const char *name, dnn_comm_op *out,
                             dnn_error *err) {
  size_t i = 0;
  dnn_status st = lookup(name, op_names, "collective", &i, err);
  if (st == DNN_OK)
    *out = (dnn_comm_op)i;
  return st;
}

dnn_status dnn_comm_algo_parse(const char *name, dnn_comm_algo *out,
                               dnn_error *err) {
  size_t i = 0;
  dnn_status st = lookup(name, algo_names, "collective algorithm", &i, err);
  if (st == DNN_OK)
    *out = (dnn_comm_algo)i;
  return st;
}

/* ------------------------------------------------------------------------ */
/* Topologies                                                                */
/* ------------------------------------------------------------------------ */

dnn_comm_topo dnn_comm_default_topo(size_t ranks, dnn_comm_link intra) {
  dnn_comm_topo t;
  memset(&t, 0, sizeof t);
  t.ranks = ranks;
  t.ranks_per_node = ranks > 0 ? ranks : 1;
  t.intra = intra;
  t.inter = intra;
  t.nics_per_node = 1;
  t.ps_servers = 1;
  t.segment_bytes = 0;
  return t;
}

dnn_comm_link dnn_comm_link_from(const dnn_link *link) {
  dnn_comm_link l;
  l.alpha_s = link->latency_s;
  /* A link without bandwidth gives an infinite beta, which
   * dnn_comm_time rejects with a message. */
  l.beta_s_per_byte =
      link->bandwidth_Bps > 0 ? 1.0 / link->bandwidth_Bps : (double)INFINITY;
  l.gamma_s_per_byte = 0;
  return l;
}

dnn_comm_topo dnn_comm_topo_from_cluster(const dnn_cluster *cluster,
                                         size_t ranks, size_t stride,
                                         double gamma_s_per_byte) {
  size_t s = stride > 0 ? stride : 1;
  size_t per_node = cluster->devices_per_node / s;
  if (per_node < 1)
    per_node = 1;
  if (ranks > 0 && per_node > ranks)
    per_node = ranks;
  dnn_comm_topo t;
  memset(&t, 0, sizeof t);
  t.ranks = ranks;
  t.ranks_per_node = per_node;
  t.intra = dnn_comm_link_from(&cluster->intra);
  t.inter = dnn_comm_link_from(&cluster->inter);
  t.intra.gamma_s_per_byte = gamma_s_per_byte;
  t.inter.gamma_s_per_byte = gamma_s_per_byte;
  t.nics_per_node = cluster->nics_per_node > 0 ? cluster->nics_per_node : 1;
  t.ps_servers = 1;
  t.segment_bytes = 0;
  return t;
}

/* ------------------------------------------------------------------------ */
/* Context and links                                                         */
/* ------------------------------------------------------------------------ */

/* One cost query, with the placement worked out. */
typedef struct ctx {
  size_t P;             /* ranks, >= 1 */
  size_t n;             /* ranks per node, in [1, P] */
  size_t N;             /* nodes: ceil(P / n) */
  double m;             /* bytes (see dnn_comm_time) */
  dnn_comm_link intra;  /* inside a node */
  dnn_comm_link inter;  /* one NIC */
  size_t nics;          /* NICs per node, >= 1 */
  size_t servers;       /* parameter servers, >= 1 */
  double segment_bytes; /* 0: optimal segment count */
} ctx;

static size_t min_z(size_t a, size_t b) {
  return a < b ? a : b;
}

static size_t pow2(unsigned k) {
  return (size_t)1 << k;
}

/* A step that crosses nodes with `crossing` ranks of a node crossing at
 * once: the node's NICs are shared by them, and no rank goes faster than
 * its intra-node port nor with less latency than an intra-node message. */
static dnn_comm_link cross_link(const ctx *c, size_t crossing) {
  dnn_comm_link l;
  l.alpha_s = fmax(c->intra.alpha_s, c->inter.alpha_s);
  l.beta_s_per_byte =
      fmax(c->intra.beta_s_per_byte,
           dnn__d(crossing) * c->inter.beta_s_per_byte / dnn__d(c->nics));
  l.gamma_s_per_byte =
      fmax(c->intra.gamma_s_per_byte, c->inter.gamma_s_per_byte);
  return l;
}

/*
 * A butterfly step: every rank r exchanges with r XOR d (d a power of two).
 * Pairs stay in their node when the aligned blocks of 2d ranks do
 * (n a multiple of 2d); with d >= n every rank crosses; otherwise only
 * the blocks straddling a node boundary cross, at most d ranks of a node
 * at each of its two boundaries.
 */
static dnn_comm_link xor_link(const ctx *c, size_t d) {
  if (c->N == 1)
    return c->intra;
  if (d >= c->n)
    return cross_link(c, c->n);
  if (d > SIZE_MAX / 2) /* 2d would wrap; a block of 2d exceeds the node */
    return cross_link(c, c->n);
  if (c->n % (2 * d) == 0)
    return c->intra;
  return cross_link(c, min_z(c->n, 2 * d));
}

/* A tree step between ranks d apart (d a power of two) where only one
 * rank in 2d is active: at most one of a node's ranks crosses. */
static dnn_comm_link tree_link(const ctx *c, size_t d) {
  if (c->N == 1 || (d < c->n && d <= SIZE_MAX / 2 && c->n % (2 * d) == 0))
    return c->intra;
  return cross_link(c, 1);
}

/* A shift step: every rank r sends to (r + i) mod P. The last
 * min(i, P - i) ranks of a node (all n when that exceeds n) cross. */
static dnn_comm_link shift_link(const ctx *c, size_t i) {
  if (c->N == 1)
    return c->intra;
  return cross_link(c, min_z(c->n, min_z(i, c->P - i)));
}

/* The slowest edge of a node-major ring: one flow per node boundary, which
 * uses all the node's NICs as NCCL's parallel rings do. */
static dnn_comm_link ring_link(const ctx *c) {
  return c->N == 1 ? c->intra : cross_link(c, 1);
}

/* ------------------------------------------------------------------------ */
/* Step accumulation                                                         */
/* ------------------------------------------------------------------------ */

/* Adds `count` steps that each send `sent` and reduce `reduced` bytes. */
static void step(dnn_comm_cost *o, dnn_comm_link l, double sent, double reduced,
                 size_t count) {
  if (count == 0)
    return;
  double k = dnn__d(count);
  o->time_s +=
      k * (l.alpha_s + sent * l.beta_s_per_byte + reduced * l.gamma_s_per_byte);
  o->latency_s += k * l.alpha_s;
  o->steps += count;
}

/* floor(log2 P), its power of two and the extra ranks beyond it. */
static unsigned lg(const ctx *c) {
  return dnn__floor_log2(c->P);
}
static size_t extra(const ctx *c) {
  return c->P - pow2(lg(c));
}

/* Non-power-of-two fold: the extra ranks (P - P' odd ranks among the
 * first 2(P - P')) send to their even neighbour before the main phase
 * (pre) or receive from it after (post). */
static void fold(const ctx *c, dnn_comm_cost *o, double sent, double reduced) {
  if (extra(c) > 0)
    step(o, xor_link(c, 1), sent, reduced, 1);
}

/*
 * Recursive halving (reduce) or doubling (gather) among the P' main ranks
 * on m bytes: step j exchanges m / 2^(j+1) with the partner 2^j away. The
 * largest messages go to the nearest partners (vector halving with
 * distance doubling, as MPICH), which keeps them inside a node.
 */
static void halving(const ctx *c, dnn_comm_cost *o, double m, bool reduce) {
  double chunk = m;
  for (unsigned j = 0; j < lg(c); j++) {
    chunk /= 2;
    step(o, xor_link(c, pow2(j)), chunk, reduce ? chunk : 0, 1);
  }
}

/* Binomial tree over all P ranks: ceil(log2 P) steps of `msg` bytes. */
static void binomial(const ctx *c, dnn_comm_cost *o, double msg,
                     double reduced) {
  unsigned lc = dnn__ceil_log2(c->P);
  for (unsigned j = 0; j < lc; j++)
    step(o, tree_link(c, pow2(j)), msg, reduced, 1);
}

/* Binomial scatter from (or gather to) a root over P ranks: the step with
 * distance d moves the min(d, P - d) blocks of the far subtree. */
static void scatter(const ctx *c, dnn_comm_cost *o) {
  double s = c->m / dnn__d(c->P);
  unsigned lc = dnn__ceil_log2(c->P);
  for (unsigned j = 0; j < lc; j++) {
    size_t d = pow2(j);
    step(o, tree_link(c, d), dnn__d(min_z(d, c->P - d)) * s, 0, 1);
  }
}

/* All P - 1 shifts i = 1..P-1 (direct/pairwise exchange), each sending
 * `sent` and reducing `reduced` bytes. Shifts i and P - i cross alike, so
 * this sums over the distances below n and once for the rest. */
static void shifts(const ctx *c, dnn_comm_cost *o, double sent,
                   double reduced) {
  if (c->N == 1) {
    step(o, c->intra, sent, reduced, c->P - 1);
    return;
  }
  size_t far = c->P - 1;
  size_t near = min_z(c->n - 1, c->P / 2);
  for (size_t d = 1; d <= near; d++) {
    size_t mult = 2 * d == c->P ? 1 : 2;
    step(o, cross_link(c, d), sent, reduced, mult);
    far -= mult;
  }
  step(o, cross_link(c, c->n), sent, reduced, far);
}

/* ------------------------------------------------------------------------ */
/* Pipelines (segmented chain and double binary tree)                        */
/* ------------------------------------------------------------------------ */

/*
 * A pipeline of stages, in one or more phases that run one after the
 * other, each carrying k segments. A stage costs a + b/k per segment (b:
 * its time for the whole message); a phase takes the sum of its stages
 * to fill plus k - 1 times its slowest stage (componentwise: exact when
 * one stage dominates, as here, and an upper bound otherwise). Summed:
 *   T(k) = sum_a + sum_b/k + (k - 1)(max_a + max_b/k)
 *        = C + k*max_a + (sum_b - max_b)/k,
 * convex in k with its real minimum at k* = sqrt((sum_b - max_b)/max_a).
 */
typedef struct pipe {
  double sum_a, sum_b; /* over every stage */
  double max_a, max_b; /* over phases, of each phase's slowest stage */
  double ph_a, ph_b;   /* slowest stage of the open phase */
  size_t stages, phases;
} pipe;

static void pipe_stage(pipe *p, dnn_comm_link l, double load, bool reduce,
                       size_t count) {
  if (count == 0)
    return;
  double b = load * (l.beta_s_per_byte + (reduce ? l.gamma_s_per_byte : 0));
  p->sum_a += dnn__d(count) * l.alpha_s;
  p->sum_b += dnn__d(count) * b;
  p->stages += count;
  p->ph_a = fmax(p->ph_a, l.alpha_s);
  p->ph_b = fmax(p->ph_b, b);
}

static void pipe_end_phase(pipe *p) {
  p->max_a += p->ph_a;
  p->max_b += p->ph_b;
  p->ph_a = p->ph_b = 0;
  p->phases++;
}

static double pipe_time(const pipe *p, double k) {
  return p->sum_a + p->sum_b / k + (k - 1) * (p->max_a + p->max_b / k);
}

/* The segment count: from segment_bytes when set, else the integer that
 * minimises T(k) (floor or ceil of k*), at least one segment and at most
 * one per byte of `msg` (the bytes each pipeline carries). */
static double pipe_segments(const ctx *c, const pipe *p, double msg) {
  if (c->segment_bytes > 0)
    return fmin(fmax(1.0, ceil(msg / c->segment_bytes)), MAX_SEGMENTS);
  double kmax = fmin(fmax(1.0, floor(msg)), MAX_SEGMENTS);
  double a = p->max_a, b = p->sum_b - p->max_b;
  if (b <= 0)
    return 1;
  if (a <= 0)
    return kmax;
  double ks = sqrt(b / a);
  double k0 = fmin(fmax(1.0, floor(ks)), kmax);
  double k1 = fmin(fmax(1.0, ceil(ks)), kmax);
  return pipe_time(p, k1) < pipe_time(p, k0) ? k1 : k0;
}

static void pipe_finish(const ctx *c, const pipe *p, double msg,
                        dnn_comm_cost *o) {
  double k = pipe_segments(c, p, msg);
  o->time_s = pipe_time(p, k);
  o->latency_s = p->sum_a + (k - 1) * p->max_a;
  o->steps = p->stages + p->phases * ((size_t)k - 1);
}

/* Pipelined chain 0 -> 1 -> ... -> P-1 (broadcast, or reduce towards 0):
 * P - N hops inside nodes and N - 1 across. */
static void chain(const ctx *c, dnn_comm_cost *o, bool reduce) {
  pipe p = {0};
  pipe_stage(&p, c->intra, c->m, reduce, c->P - c->N);
  pipe_stage(&p, cross_link(c, 1), c->m, reduce, c->N - 1);
  pipe_end_phase(&p);
  pipe_finish(c, &p, c->m, o);
  o->bytes_per_rank = c->m;
}

/*
 * Double binary tree (Sanders, Speck & Traeff 2009) for broadcast and
 * reduce: the root feeds m/2 to each of two trees over the other P - 1
 * ranks, of height h = floor(log2(P - 1)). Every rank is inner in one tree
 * and a leaf in the other, so each stage moves two segments (m/k in all)
 * through the busiest port. Level j's edges join ranks 2^(j-1) apart.
 */
static void two_tree_rooted(const ctx *c, dnn_comm_cost *o, bool reduce) {
  unsigned h = dnn__floor_log2(c->P - 1);
  pipe p = {0};
  pipe_stage(&p, tree_link(c, pow2(h)), c->m, reduce, 1);
  for (unsigned j = 1; j <= h; j++)
    pipe_stage(&p, tree_link(c, pow2(j - 1)), c->m, reduce, 1);
  pipe_end_phase(&p);
  pipe_finish(c, &p, c->m / 2, o);
  o->bytes_per_rank = c->m;
}

/* ------------------------------------------------------------------------ */
/* Allreduce                                                                 */
/* ------------------------------------------------------------------------ */

typedef void cost_fn(const ctx *c, dnn_comm_cost *o);

static void ar_ring(const ctx *c, dnn_comm_cost *o) {
  double s = c->m / dnn__d(c->P);
  dnn_comm_link l = ring_link(c);
  step(o, l, s, s, c->P - 1); /* reduce-scatter */
  step(o, l, s, 0, c->P - 1); /* allgather */
  o->bytes_per_rank = 2 * dnn__d(c->P - 1) * s;
}

static void ar_recursive_doubling(const ctx *c, dnn_comm_cost *o) {
  fold(c, o, c->m, c->m);
  for (unsigned j = 0; j < lg(c); j++)
    step(o, xor_link(c, pow2(j)), c->m, c->m, 1);
  fold(c, o, c->m, 0);
  o->bytes_per_rank = dnn__d(lg(c) + (extra(c) > 0 ? 1u : 0u)) * c->m;
}

static void ar_rabenseifner(const ctx *c, dnn_comm_cost *o) {
  fold(c, o, c->m, c->m);
  halving(c, o, c->m, true);  /* reduce-scatter */
  halving(c, o, c->m, false); /* allgather */
  fold(c, o, c->m, 0);
  double core = 2 * c->m * (1 - 1 / dnn__d(pow2(lg(c))));
  o->bytes_per_rank = core + (extra(c) > 0 ? c->m : 0);
}

static void ar_tree(const ctx *c, dnn_comm_cost *o) {
  binomial(c, o, c->m, c->m); /* reduce */
  binomial(c, o, c->m, 0);    /* broadcast */
  o->bytes_per_rank = dnn__d(dnn__ceil_log2(c->P)) * c->m;
}

/*
 * NCCL-style double binary tree allreduce: two trees over all P ranks
 * (height h = floor(log2 P)), each reducing then broadcasting m/2 in k
 * segments. A rank is inner (two children) in one tree and a leaf in the
 * other, so w = 2 segments pass its busiest port per stage (w = 1 for
 * P = 2, where each tree is one edge); inner ranks reduce w segments.
 */
static void ar_two_tree(const ctx *c, dnn_comm_cost *o) {
  unsigned h = lg(c);
  double load = (c->P == 2 ? 1.0 : 2.0) * c->m / 2;
  pipe p = {0};
  for (unsigned j = 1; j <= h; j++)
    pipe_stage(&p, tree_link(c, pow2(j - 1)), load, true, 1);
  pipe_end_phase(&p);
  for (unsigned j = 1; j <= h; j++)
    pipe_stage(&p, tree_link(c, pow2(j - 1)), load, false, 1);
  pipe_end_phase(&p);
  pipe_finish(c, &p, c->m / 2, o);
  o->bytes_per_rank = 2 * load;
}

/*
 * Synchronous sharded parameter server (REFERENCE §1.5): S servers own m/S
 * each. Push: a worker sends S messages of m/S (S*alpha_w + m*beta_w) while
 * a server receives P of them (P*alpha_s + P*(m/S)*beta_s); the slower
 * side sets the phase. The servers then reduce P contributions, (P-1)*m/S
 * additions, and the pull mirrors the push:
 *   T = 2 max(S a_w + m b_w, P a_s + (P m / S) b_s) + (P - 1)(m/S) g_s.
 * Workers reach the servers through their node's NICs, shared by its n
 * ranks; a server is a host with nics_per_node NICs. On one node both
 * sides use the intra link.
 */
static void ar_ps(const ctx *c, dnn_comm_cost *o) {
  double S = dnn__d(c->servers), P = dnn__d(c->P);
  dnn_comm_link w = c->N == 1 ? c->intra : cross_link(c, c->n);
  dnn_comm_link s = c->intra;
  if (c->N > 1) {
    s = c->inter;
    s.beta_s_per_byte /= dnn__d(c->nics);
  }
  double worker = S * w.alpha_s + c->m * w.beta_s_per_byte;
  double server = P * s.alpha_s + P * (c->m / S) * s.beta_s_per_byte;
  bool worker_bound = worker >= server;
  o->time_s =
      2 * fmax(worker, server) + (P - 1) * (c->m / S) * s.gamma_s_per_byte;
  o->latency_s = 2 * (worker_bound ? S * w.alpha_s : P * s.alpha_s);
  o->steps = 2 * (worker_bound ? c->servers : c->P);
  o->bytes_per_rank = c->m;
}

static void ar_direct(const ctx *c, dnn_comm_cost *o) {
  double s = c->m / dnn__d(c->P);
  shifts(c, o, s, s); /* reduce-scatter: each block to its owner */
  shifts(c, o, s, 0); /* allgather */
  o->bytes_per_rank = 2 * dnn__d(c->P - 1) * s;
}

static void ar_hierarchical(const ctx *c, dnn_comm_cost *o);

/* ------------------------------------------------------------------------ */
/* Reduce-scatter, allgather                                                 */
/* ------------------------------------------------------------------------ */

static void rs_ring(const ctx *c, dnn_comm_cost *o) {
  double s = c->m / dnn__d(c->P);
  step(o, ring_link(c), s, s, c->P - 1);
  o->bytes_per_rank = dnn__d(c->P - 1) * s;
}

static void ag_ring(const ctx *c, dnn_comm_cost *o) {
  double s = c->m / dnn__d(c->P);
  step(o, ring_link(c), s, 0, c->P - 1);
  o->bytes_per_rank = dnn__d(c->P - 1) * s;
}

/* Recursive halving; the extra ranks fold in their whole vector first and
 * get their block of m/P back last. */
static void rs_halving(const ctx *c, dnn_comm_cost *o) {
  fold(c, o, c->m, c->m);
  halving(c, o, c->m, true);
  fold(c, o, c->m / dnn__d(c->P), 0);
  double core = c->m * (1 - 1 / dnn__d(pow2(lg(c))));
  o->bytes_per_rank = extra(c) > 0 ? c->m : core;
}

/* Recursive doubling; the extra ranks hand their block to their partner
 * first and receive the other (P-1)/P of the vector last. */
static void ag_doubling(const ctx *c, dnn_comm_cost *o) {
  double rest = c->m * dnn__d(c->P - 1) / dnn__d(c->P);
  fold(c, o, c->m / dnn__d(c->P), 0);
  halving(c, o, c->m, false);
  fold(c, o, rest, 0);
  double core = c->m * (1 - 1 / dnn__d(pow2(lg(c))));
  o->bytes_per_rank = core + (extra(c) > 0 ? rest : 0);
}

static void rs_direct(const ctx *c, dnn_comm_cost *o) {
  double s = c->m / dnn__d(c->P);
  shifts(c, o, s, s);
  o->bytes_per_rank = dnn__d(c->P - 1) * s;
}

static void ag_direct(const ctx *c, dnn_comm_cost *o) {
  double s = c->m / dnn__d(c->P);
  shifts(c, o, s, 0);
  o->bytes_per_rank = dnn__d(c->P - 1) * s;
}

/* ------------------------------------------------------------------------ */
/* Broadcast, reduce                                                         */
/* ------------------------------------------------------------------------ */

static void bc_tree(const ctx *c, dnn_comm_cost *o) {
  binomial(c, o, c->m, 0);
  o->bytes_per_rank = dnn__d(dnn__ceil_log2(c->P)) * c->m;
}

/* Van de Geijn: binomial scatter, then ring allgather. */
static void bc_scatter_ring(const ctx *c, dnn_comm_cost *o) {
  scatter(c, o);
  dnn_comm_cost ag = {0};
  ag_ring(c, &ag);
  o->time_s += ag.time_s;
  o->latency_s += ag.latency_s;
  o->steps += ag.steps;
  o->bytes_per_rank =
      c->m * dnn__d(c->P - 1) / dnn__d(c->P) + ag.bytes_per_rank;
}

/* Binomial scatter, then recursive-doubling allgather. */
static void bc_scatter_doubling(const ctx *c, dnn_comm_cost *o) {
  scatter(c, o);
  dnn_comm_cost ag = {0};
  ag_doubling(c, &ag);
  o->time_s += ag.time_s;
  o->latency_s += ag.latency_s;
  o->steps += ag.steps;
  o->bytes_per_rank =
      c->m * dnn__d(c->P - 1) / dnn__d(c->P) + ag.bytes_per_rank;
}

static void bc_chain(const ctx *c, dnn_comm_cost *o) {
  chain(c, o, false);
}

static void bc_two_tree(const ctx *c, dnn_comm_cost *o) {
  two_tree_rooted(c, o, false);
}

static void rd_tree(const ctx *c, dnn_comm_cost *o) {
  binomial(c, o, c->m, c->m);
  o->bytes_per_rank = c->m;
}

/* Rabenseifner's reduce: recursive-halving reduce-scatter among the P'
 * main ranks (after the fold), then a binomial gather of their m/P'
 * blocks to the root. */
static void rd_rabenseifner(const ctx *c, dnn_comm_cost *o) {
  fold(c, o, c->m, c->m);
  halving(c, o, c->m, true);
  size_t p2 = pow2(lg(c));
  double block = c->m / dnn__d(p2);
  for (unsigned j = 0; j < lg(c); j++)
    step(o, tree_link(c, pow2(j)), dnn__d(pow2(j)) * block, 0, 1);
  double core = c->m * (1 - 1 / dnn__d(p2)) + c->m / 2;
  o->bytes_per_rank = fmax(core, extra(c) > 0 ? c->m : 0);
}

static void rd_chain(const ctx *c, dnn_comm_cost *o) {
  chain(c, o, true);
}

static void rd_two_tree(const ctx *c, dnn_comm_cost *o) {
  two_tree_rooted(c, o, true);
}

/* ------------------------------------------------------------------------ */
/* All-to-all, point-to-point                                                */
/* ------------------------------------------------------------------------ */

static void a2a_direct(const ctx *c, dnn_comm_cost *o) {
  double s = c->m / dnn__d(c->P);
  shifts(c, o, s, 0);
  o->bytes_per_rank = dnn__d(c->P - 1) * s;
}

/* Bruck all-to-all, the log-step all-to-all, costed under the
 * recursive-doubling id (the enum mirrors the scenario key table): step j
 * sends every block whose index has bit j set, i.e. P/2 blocks for a power
 * of two, to the rank 2^j ahead. */
static void a2a_bruck(const ctx *c, dnn_comm_cost *o) {
  double s = c->m / dnn__d(c->P);
  unsigned lc = dnn__ceil_log2(c->P);
  double total = 0;
  for (unsigned j = 0; j < lc; j++) {
    size_t d = pow2(j), blocks;
    if (d > SIZE_MAX / 2) { /* the period 2d wraps; P < 2d: one partial */
      blocks = c->P > d ? c->P - d : 0;
    } else {
      size_t period = 2 * d, rem = c->P % period;
      blocks = (c->P / period) * d + (rem > d ? rem - d : 0);
    }
    step(o, shift_link(c, d), dnn__d(blocks) * s, 0, 1);
    total += dnn__d(blocks) * s;
  }
  o->bytes_per_rank = total;
}

static void p2p_direct(const ctx *c, dnn_comm_cost *o) {
  step(o, c->N == 1 ? c->intra : cross_link(c, 1), c->m, 0, 1);
  o->bytes_per_rank = c->m;
}

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                  */
/* ------------------------------------------------------------------------ */

/* Which function costs (op, algo); NULL: not implemented. */
static cost_fn *const table[DNN_COMM_OP_COUNT][DNN_COMM_ALGO_COUNT] = {
    [DNN_COMM_ALLREDUCE] =
        {
            [DNN_COMM_ALGO_RING] = ar_ring,
            [DNN_COMM_ALGO_RECURSIVE_DOUBLING] = ar_recursive_doubling,
            [DNN_COMM_ALGO_RABENSEIFNER] = ar_rabenseifner,
            [DNN_COMM_ALGO_BINOMIAL_TREE] = ar_tree,
            [DNN_COMM_ALGO_DOUBLE_BINARY_TREE] = ar_two_tree,
            [DNN_COMM_ALGO_PS] = ar_ps,
            [DNN_COMM_ALGO_HIERARCHICAL] = ar_hierarchical,
            [DNN_COMM_ALGO_DIRECT] = ar_direct,
        },
    [DNN_COMM_REDUCE_SCATTER] =
        {
            [DNN_COMM_ALGO_RING] = rs_ring,
            [DNN_COMM_ALGO_RECURSIVE_DOUBLING] = rs_halving,
            [DNN_COMM_ALGO_DIRECT] = rs_direct,
        },
    [DNN_COMM_ALLGATHER] =
        {
            [DNN_COMM_ALGO_RING] = ag_ring,
            [DNN_COMM_ALGO_RECURSIVE_DOUBLING] = ag_doubling,
            [DNN_COMM_ALGO_DIRECT] = ag_direct,
        },
    [DNN_COMM_BROADCAST] =
        {
            [DNN_COMM_ALGO_RING] = bc_chain,
            [DNN_COMM_ALGO_RECURSIVE_DOUBLING] = bc_scatter_doubling,
            [DNN_COMM_ALGO_RABENSEIFNER] = bc_scatter_ring,
            [DNN_COMM_ALGO_BINOMIAL_TREE] = bc_tree,
            [DNN_COMM_ALGO_DOUBLE_BINARY_TREE] = bc_two_tree,
        },
    [DNN_COMM_REDUCE] =
        {
            [DNN_COMM_ALGO_RING] = rd_chain,
            [DNN_COMM_ALGO_RABENSEIFNER] = rd_rabenseifner,
            [DNN_COMM_ALGO_BINOMIAL_TREE] = rd_tree,
            [DNN_COMM_ALGO_DOUBLE_BINARY_TREE] = rd_two_tree,
        },
    [DNN_COMM_ALLTOALL] =
        {
            [DNN_COMM_ALGO_RECURSIVE_DOUBLING] = a2a_bruck,
            [DNN_COMM_ALGO_DIRECT] = a2a_direct,
        },
    [DNN_COMM_P2P] =
        {
            [DNN_COMM_ALGO_DIRECT] = p2p_direct,
        },
};

bool dnn_comm_supports(dnn_comm_op op, dnn_comm_algo algo) {
  if ((unsigned)op >= (unsigned)DNN_COMM_OP_COUNT ||
      (unsigned)algo >= (unsigned)DNN_COMM_ALGO_COUNT)
    return false;
  return algo == DNN_COMM_ALGO_AUTO || table[op][algo] != NULL;
}

static void cost_clear(dnn_comm_cost *o, dnn_comm_algo algo) {
  memset(o, 0, sizeof *o);
  o->algo = algo;
  o->intra_rs_algo = DNN_COMM_ALGO_AUTO;
  o->inter_algo = DNN_COMM_ALGO_AUTO;
  o->intra_ag_algo = DNN_COMM_ALGO_AUTO;
}

/* Cost of a concrete (supported) algorithm. */
static void run(dnn_comm_op op, dnn_comm_algo algo, const ctx *c,
                dnn_comm_cost *o) {
  cost_clear(o, algo);
  if (c->P == 1 || c->m == 0)
    return;
  table[op][algo](c, o);
}

/* The cheapest algorithm for `op` (ties, within TIE_REL: the first in list
 * order).
 * `flat` leaves out those that need more than one flat group of ranks
 * (the parameter server and the hierarchical algorithm). */
static void best(dnn_comm_op op, const ctx *c, bool flat, dnn_comm_cost *o) {
  bool found = false;
  for (int a = 1; a < DNN_COMM_ALGO_COUNT; a++) {
    if (!table[op][a])
      continue;
    if (flat && (a == DNN_COMM_ALGO_PS || a == DNN_COMM_ALGO_HIERARCHICAL))
      continue;
    dnn_comm_cost cand;
    run(op, (dnn_comm_algo)a, c, &cand);
    if (!found || cand.time_s < o->time_s * (1 - TIE_REL)) {
      *o = cand;
      found = true;
    }
  }
  DNN_ASSERT(found);
}

/* One node of `ranks` ranks on `link` (for the phases of the
 * hierarchical algorithm). */
static ctx flat_ctx(const ctx *c, size_t ranks, double m, dnn_comm_link link) {
  ctx f = *c;
  f.P = ranks;
  f.n = ranks;
  f.N = 1;
  f.m = m;
  f.intra = link;
  f.inter = link;
  f.nics = 1;
  return f;
}

/*
 * Hierarchical allreduce: reduce-scatter inside each node (n ranks, intra
 * link), then n concurrent allreduces of m/n bytes, one per local rank,
 * each across the N nodes with the node's NICs shared by its n ranks
 * (cross_link(n)), then an allgather inside each node. Each phase uses its
 * cheapest flat algorithm, reported in the cost. A partial last node is
 * treated as full.
 */
static void ar_hierarchical(const ctx *c, dnn_comm_cost *o) {
  ctx in = flat_ctx(c, c->n, c->m, c->intra);
  dnn_comm_link across = c->N > 1 ? cross_link(c, c->n) : c->intra;
  ctx out = flat_ctx(c, c->N, c->m / dnn__d(c->n), across);
  dnn_comm_cost rs, ar, ag;
  best(DNN_COMM_REDUCE_SCATTER, &in, true, &rs);
  best(DNN_COMM_ALLREDUCE, &out, true, &ar);
  best(DNN_COMM_ALLGATHER, &in, true, &ag);
  o->time_s = rs.time_s + ar.time_s + ag.time_s;
  o->latency_s = rs.latency_s + ar.latency_s + ag.latency_s;
  o->steps = rs.steps + ar.steps + ag.steps;
  o->bytes_per_rank = rs.bytes_per_rank + ar.bytes_per_rank + ag.bytes_per_rank;
  o->intra_rs_algo = rs.algo;
  o->inter_algo = ar.algo;
  o->intra_ag_algo = ag.algo;
}

/* ------------------------------------------------------------------------ */
/* Entry point                                                               */
/* ------------------------------------------------------------------------ */

static bool nonneg(double x) {
  return isfinite(x) && x >= 0;
}

static dnn_status check_link(const dnn_comm_link *l, const char *which,
                             dnn_error *err) {
  if (!nonneg(l->alpha_s))
    return DNN_FAIL(err, DNN_EINVAL,
                    "comm: %s link alpha_s must be finite and >= 0 (got %g)",
                    which, l->alpha_s);
  if (!nonneg(l->beta_s_per_byte))
    return DNN_FAIL(
        err, DNN_EINVAL,
        "comm: %s link beta_s_per_byte must be finite and >= 0 (got %g)", which,
        l->beta_s_per_byte);
  if (!nonneg(l->gamma_s_per_byte))
    return DNN_FAIL(
        err, DNN_EINVAL,
        "comm: %s link gamma_s_per_byte must be finite and >= 0 (got %g)",
        which, l->gamma_s_per_byte);
  return DNN_OK;
}

static dnn_status check_topo(const dnn_comm_topo *t, dnn_error *err) {
  if (t->ranks == 0)
    return DNN_FAIL(err, DNN_EINVAL, "comm: ranks must be >= 1 (got 0)");
  if (t->ranks_per_node == 0)
    return DNN_FAIL(err, DNN_EINVAL,
                    "comm: ranks_per_node must be >= 1 (got 0)");
  if (t->nics_per_node == 0)
    return DNN_FAIL(err, DNN_EINVAL,
                    "comm: nics_per_node must be >= 1 (got 0)");
  if (t->ps_servers == 0)
    return DNN_FAIL(err, DNN_EINVAL, "comm: ps_servers must be >= 1 (got 0)");
  if (!nonneg(t->segment_bytes))
    return DNN_FAIL(err, DNN_EINVAL,
                    "comm: segment_bytes must be finite and >= 0 (got %g)",
                    t->segment_bytes);
  dnn_status st = check_link(&t->intra, "intra", err);
  if (st)
    return st;
  /* A single-node cluster has no inter link (bandwidth 0, beta infinite):
   * it only matters when the ranks span more than one node. */
  if (t->ranks_per_node < t->ranks)
    return check_link(&t->inter, "inter", err);
  return DNN_OK;
}

dnn_status dnn_comm_time(dnn_comm_op op, dnn_comm_algo algo, double bytes,
                         const dnn_comm_topo *topo, dnn_comm_cost *out,
                         dnn_error *err) {
  DNN_ASSERT(topo != NULL && out != NULL);
  if (!dnn_comm_supports(op, algo))
    return DNN_FAIL(err, DNN_EINVAL,
                    "comm: algorithm \"%s\" does not implement %s",
                    dnn_comm_algo_name(algo), dnn_comm_op_name(op));
  if (!nonneg(bytes))
    return DNN_FAIL(err, DNN_EINVAL,
                    "comm: %s bytes must be finite and >= 0 (got %g)",
                    dnn_comm_op_name(op), bytes);
  dnn_status st = check_topo(topo, err);
  if (st)
    return st;

  ctx c;
  c.P = topo->ranks;
  c.n = min_z(topo->ranks_per_node, c.P);
  c.N = dnn__div_ceil(c.P, c.n);
  c.m = bytes;
  c.intra = topo->intra;
  c.inter = topo->inter;
  c.nics = topo->nics_per_node;
  c.servers = topo->ps_servers;
  c.segment_bytes = topo->segment_bytes;

  if (algo == DNN_COMM_ALGO_AUTO)
    best(op, &c, false, out);
  else
    run(op, algo, &c, out);
  return DNN_OK;
}
