/* Tests of parallelism/comm.c: every collective cost formula against values
 * computed by hand from docs/models.md §5, with high-entropy inputs; the
 * non-power-of-two folds; multi-node charging; AUTO; monotonicity in every
 * link parameter; trivial and extreme sizes; names; errors. */
#include "test_util.h"

#include <math.h>

#include "dnnsim/comm.h"

/* Link and message parameters: nothing round, so a missing factor shows. */
static const double A = 3.719e-6;       /* intra alpha, s */
static const double B = 1 / 11.3e9;     /* intra beta, s/B */
static const double G = 1 / 97.3e9;     /* gamma, s/B */
static const double AE = 7.913e-6;      /* inter alpha, s */
static const double BE = 1 / 12.1e9;    /* inter beta per NIC, s/B */
static const double M = 25557032.0 * 4; /* ResNet-50 gradients, fp32 */
static const double TIB = 1099511627776.0;

#define REL 1e-12
#define LEN(a) (sizeof(a) / sizeof((a)[0]))

static dnn_comm_link intra_link(void) {
  dnn_comm_link l = {A, B, G};
  return l;
}

static dnn_comm_topo flat(size_t P) {
  return dnn_comm_default_topo(P, intra_link());
}

/* `nodes` x `per_node` ranks with `nics` NICs of (AE, BE) per node. */
static dnn_comm_topo multi(size_t nodes, size_t per_node, size_t nics) {
  dnn_comm_topo t = flat(nodes * per_node);
  t.ranks_per_node = per_node;
  t.inter.alpha_s = AE;
  t.inter.beta_s_per_byte = BE;
  t.inter.gamma_s_per_byte = G;
  t.nics_per_node = nics;
  return t;
}

static dnn_comm_cost cost(dnn_comm_op op, dnn_comm_algo algo, double m,
                          const dnn_comm_topo *t) {
  dnn_comm_cost c;
  dnn_error e;
  memset(&c, 0xA5, sizeof c); /* every field must be written */
  assert_ok(dnn_comm_time(op, algo, m, t, &c, &e), &e);
  return c;
}

/* The time of `op` with `algo` on `P` ranks of the flat topology. */
static double tflat(dnn_comm_op op, dnn_comm_algo algo, size_t P, double m) {
  dnn_comm_topo t = flat(P);
  return cost(op, algo, m, &t).time_s;
}

/* ---- Names and the support matrix ----------------------------------- */

static void test_names(void **state) {
  (void)state;
  dnn_error e;
  for (int i = 0; i < DNN_COMM_OP_COUNT; i++) {
    dnn_comm_op op;
    assert_ok(dnn_comm_op_parse(dnn_comm_op_name((dnn_comm_op)i), &op, &e), &e);
    assert_int_equal(op, i);
  }
  for (int i = 0; i < DNN_COMM_ALGO_COUNT; i++) {
    dnn_comm_algo a;
    assert_ok(dnn_comm_algo_parse(dnn_comm_algo_name((dnn_comm_algo)i), &a, &e),
              &e);
    assert_int_equal(a, i);
  }
  assert_string_equal(dnn_comm_op_name(DNN_COMM_REDUCE_SCATTER),
                      "reduce_scatter");
  assert_string_equal(dnn_comm_algo_name(DNN_COMM_ALGO_BINOMIAL_TREE), "tree");
  assert_string_equal(dnn_comm_op_name((dnn_comm_op)99), "unknown");
  assert_string_equal(dnn_comm_algo_name((dnn_comm_algo)99), "unknown");

  dnn_comm_algo a = DNN_COMM_ALGO_PS;
  assert_int_equal(dnn_comm_algo_parse("rign", &a, &e), DNN_ENOTFOUND);
  assert_int_equal(e.code, DNN_ENOTFOUND);
  assert_contains(e.msg, "unknown collective algorithm \"rign\"");
  assert_contains(e.msg, "did you mean \"ring\"?");
  assert_int_equal(a, DNN_COMM_ALGO_PS); /* untouched on failure */
  assert_int_equal(dnn_comm_algo_parse("zzzzzzzzzzzzzzzz", &a, &e),
                   DNN_ENOTFOUND);
  assert_contains(e.msg, "valid: auto, ring, recursive-doubling");
  assert_contains(e.msg, "hierarchical, direct)");
  dnn_comm_op op;
  assert_int_equal(dnn_comm_op_parse("allreduc", &op, &e), DNN_ENOTFOUND);
  assert_contains(e.msg, "unknown collective \"allreduc\"");
  assert_contains(e.msg, "did you mean \"allreduce\"?");
  assert_int_equal(dnn_comm_op_parse("", &op, NULL), DNN_ENOTFOUND);
}

static void test_supports(void **state) {
  (void)state;
  /* Rows: ops in list order; columns: algorithms in list order. */
  static const char *const matrix[DNN_COMM_OP_COUNT] = {
      /* a r d R t D p h x */
      "111111111", /* allreduce */
      "111000001", /* reduce_scatter */
      "111000001", /* allgather */
      "111111000", /* broadcast */
      "110111000", /* reduce */
      "101000001", /* alltoall: recursive-doubling is Bruck's */
      "100000001", /* p2p */
  };
  assert_int_equal(DNN_COMM_ALGO_COUNT, 9);
  for (int op = 0; op < DNN_COMM_OP_COUNT; op++)
    for (int a = 0; a < DNN_COMM_ALGO_COUNT; a++)
      if (dnn_comm_supports((dnn_comm_op)op, (dnn_comm_algo)a) !=
          (matrix[op][a] == '1'))
        fail_msg("supports(%s, %s) wrong", dnn_comm_op_name((dnn_comm_op)op),
                 dnn_comm_algo_name((dnn_comm_algo)a));
  assert_false(dnn_comm_supports((dnn_comm_op)99, DNN_COMM_ALGO_AUTO));
  assert_false(dnn_comm_supports(DNN_COMM_ALLREDUCE, (dnn_comm_algo)99));
}

/* ---- Allreduce ------------------------------------------------------- */

static void test_allreduce_ring(void **state) {
  (void)state;
  static const size_t Ps[] = {2, 6, 8, 13, 64};
  for (size_t i = 0; i < LEN(Ps); i++) {
    size_t P = Ps[i];
    double p = (double)P, f = (p - 1) / p;
    dnn_comm_topo t = flat(P);
    dnn_comm_cost c = cost(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, M, &t);
    assert_close(c.time_s, 2 * (p - 1) * A + 2 * f * M * B + f * M * G, REL);
    assert_close(c.latency_s, 2 * (p - 1) * A, REL);
    assert_close(c.bytes_per_rank, 2 * f * M, REL);
    assert_int_equal(c.steps, 2 * (P - 1));
    assert_int_equal(c.algo, DNN_COMM_ALGO_RING);
    assert_int_equal(c.inter_algo, DNN_COMM_ALGO_AUTO);
  }
}

static void test_allreduce_recursive_doubling(void **state) {
  (void)state;
  dnn_comm_algo rd = DNN_COMM_ALGO_RECURSIVE_DOUBLING;
  dnn_comm_topo t = flat(8);
  dnn_comm_cost c = cost(DNN_COMM_ALLREDUCE, rd, M, &t);
  assert_close(c.time_s, 3 * (A + M * B + M * G), REL);
  assert_int_equal(c.steps, 3);
  assert_close(c.bytes_per_rank, 3 * M, REL);
  /* P = 13: P' = 8, 5 extra ranks fold in (A + MB + MG) and get the
   * result back (A + MB) around 3 butterfly steps. */
  t = flat(13);
  c = cost(DNN_COMM_ALLREDUCE, rd, M, &t);
  assert_close(c.time_s, 5 * A + 5 * M * B + 4 * M * G, REL);
  assert_close(c.latency_s, 5 * A, REL);
  assert_int_equal(c.steps, 5);
  assert_close(c.bytes_per_rank, 4 * M, REL);
  assert_close(tflat(DNN_COMM_ALLREDUCE, rd, 6, M),
               4 * A + 4 * M * B + 3 * M * G, REL);
  assert_close(tflat(DNN_COMM_ALLREDUCE, rd, 64, M), 6 * (A + M * B + M * G),
               REL);
}

static void test_allreduce_rabenseifner(void **state) {
  (void)state;
  dnn_comm_algo rab = DNN_COMM_ALGO_RABENSEIFNER;
  dnn_comm_topo t = flat(64);
  dnn_comm_cost c = cost(DNN_COMM_ALLREDUCE, rab, M, &t);
  double f = 63.0 / 64;
  assert_close(c.time_s, 12 * A + 2 * f * M * B + f * M * G, REL);
  assert_int_equal(c.steps, 12);
  assert_close(c.bytes_per_rank, 2 * f * M, REL);
  /* P = 13: the P' = 8 core plus the fold (2A + 2MB + MG). */
  t = flat(13);
  c = cost(DNN_COMM_ALLREDUCE, rab, M, &t);
  f = 7.0 / 8;
  assert_close(c.time_s,
               6 * A + 2 * f * M * B + f * M * G + 2 * A + 2 * M * B + M * G,
               REL);
  assert_int_equal(c.steps, 8);
  assert_close(c.bytes_per_rank, 2 * f * M + M, REL);
  f = 3.0 / 4;
  assert_close(tflat(DNN_COMM_ALLREDUCE, rab, 6, M),
               4 * A + 2 * f * M * B + f * M * G + 2 * A + 2 * M * B + M * G,
               REL);
  /* Powers of two: the same bandwidth and reduction terms as the ring. */
  dnn_comm_link nolat = {0, B, G};
  static const size_t Ps[] = {2, 8, 64};
  for (size_t i = 0; i < LEN(Ps); i++) {
    dnn_comm_topo z = dnn_comm_default_topo(Ps[i], nolat);
    assert_close(cost(DNN_COMM_ALLREDUCE, rab, M, &z).time_s,
                 cost(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, M, &z).time_s,
                 1e-12);
  }
}

static void test_allreduce_tree(void **state) {
  (void)state;
  dnn_comm_topo t = flat(13);
  dnn_comm_cost c =
      cost(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_BINOMIAL_TREE, M, &t);
  assert_close(c.time_s, 8 * A + 8 * M * B + 4 * M * G, REL);
  assert_int_equal(c.steps, 8);
  assert_close(c.bytes_per_rank, 4 * M, REL);
  assert_close(tflat(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_BINOMIAL_TREE, 8, M),
               6 * A + 6 * M * B + 3 * M * G, REL);
}

/* Brute-force minimum over k of (depth + k - 1) * (a + b/k), the time of
 * a pipeline of `depth` equal stages carrying k segments. */
static double pipe_ref(double depth, double a, double b, double *k_best) {
  double best = INFINITY;
  for (double k = 1; k <= 200000; k++) {
    double t = (depth + k - 1) * (a + b / k);
    if (t < best) {
      best = t;
      *k_best = k;
    }
  }
  return best;
}

static void test_allreduce_double_binary_tree(void **state) {
  (void)state;
  dnn_comm_algo dbt = DNN_COMM_ALGO_DOUBLE_BINARY_TREE;
  /* P = 64: height 6; two trees of M/2, two segments per port per stage:
   * T(k) = (6 + k - 1)(2A + M (2B + G) / k). */
  static const double sizes[] = {M, 3.3e5, TIB};
  for (size_t i = 0; i < LEN(sizes); i++) {
    double m = sizes[i], k = 0;
    double want = pipe_ref(6, 2 * A, m * (2 * B + G), &k);
    dnn_comm_topo t = flat(64);
    dnn_comm_cost c = cost(DNN_COMM_ALLREDUCE, dbt, m, &t);
    assert_close(c.time_s, want, REL);
    assert_int_equal(c.steps, 2 * (6 + (size_t)k - 1));
    assert_close(c.latency_s, 2 * (6 + k - 1) * A, REL);
    assert_close(c.bytes_per_rank, 2 * m, REL);
    assert_true(k > 1);
  }
  /* P = 13: height 3. */
  double k = 0;
  assert_close(tflat(DNN_COMM_ALLREDUCE, dbt, 13, M),
               pipe_ref(3, 2 * A, M * (2 * B + G), &k), REL);
  /* P = 2: each tree is one edge carrying M/2; pipelining cannot help. */
  dnn_comm_topo t = flat(2);
  dnn_comm_cost c = cost(DNN_COMM_ALLREDUCE, dbt, M, &t);
  assert_close(c.time_s, 2 * A + M * B + M / 2 * G, REL);
  assert_int_equal(c.steps, 2);
  /* A given segment size: k = ceil((M/2) / 1.3e6) = 40. */
  t = flat(64);
  t.segment_bytes = 1.3e6;
  c = cost(DNN_COMM_ALLREDUCE, dbt, M, &t);
  assert_close(c.time_s, (6 + 39) * (2 * A + M * (2 * B + G) / 40), REL);
  assert_int_equal(c.steps, 2 * 45);
  /* No latency: as many segments as bytes per tree. */
  dnn_comm_link nolat = {0, B, G};
  t = dnn_comm_default_topo(64, nolat);
  c = cost(DNN_COMM_ALLREDUCE, dbt, M, &t);
  double kmax = M / 2;
  assert_close(c.time_s, (5 + kmax) * M * (2 * B + G) / kmax, REL);
  assert_int_equal(c.steps, 2 * (5 + (size_t)kmax));
  /* One byte: a single segment. */
  t = flat(64);
  c = cost(DNN_COMM_ALLREDUCE, dbt, 1, &t);
  assert_close(c.time_s, 6 * (2 * A + (2 * B + G)), REL);
  assert_int_equal(c.steps, 12);
}

static void test_allreduce_ps(void **state) {
  (void)state;
  /* 8 workers, 2 servers on one node: servers serialise 8 pushes of M/2. */
  dnn_comm_topo t = flat(8);
  t.ps_servers = 2;
  dnn_comm_cost c = cost(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_PS, M, &t);
  assert_close(c.time_s, 2 * (8 * A + 8 * (M / 2) * B) + 7 * (M / 2) * G, REL);
  assert_close(c.latency_s, 16 * A, REL);
  assert_int_equal(c.steps, 16);
  assert_close(c.bytes_per_rank, M, REL);
  /* 16 servers: a worker's 16 pushes of M/16 are now the bottleneck. */
  t.ps_servers = 16;
  c = cost(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_PS, M, &t);
  assert_close(c.time_s, 2 * (16 * A + M * B) + 7 * (M / 16) * G, REL);
  assert_int_equal(c.steps, 32);
  /* 2 nodes x 4 workers with 2 NICs: a worker gets max(B, 4 BE / 2); a
   * server max... its own 2 NICs (BE / 2) and the inter latency. */
  t = multi(2, 4, 2);
  t.ps_servers = 2;
  c = cost(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_PS, M, &t);
  double worker = 2 * AE + M * fmax(B, 2 * BE);
  double server = 8 * AE + 8 * (M / 2) * (BE / 2);
  assert_true(server > worker);
  assert_close(c.time_s, 2 * server + 7 * (M / 2) * G, REL);
  /* One server is the central PS of REFERENCE §1.5: 2(a + P m b). */
  t = flat(8);
  dnn_comm_link nored = {A, B, 0};
  t.intra = nored;
  assert_close(cost(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_PS, M, &t).time_s,
               2 * (8 * A + 8 * M * B), REL);
}

static void test_allreduce_direct(void **state) {
  (void)state;
  dnn_comm_topo t = flat(13);
  dnn_comm_cost c = cost(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_DIRECT, M, &t);
  double s = M / 13;
  assert_close(c.time_s, 24 * A + 24 * s * B + 12 * s * G, REL);
  assert_int_equal(c.steps, 24);
}

/* ---- Reduce-scatter and allgather ------------------------------------ */

static void test_reduce_scatter_allgather(void **state) {
  (void)state;
  double s = M / 13;
  dnn_comm_topo t = flat(13);
  dnn_comm_cost c = cost(DNN_COMM_REDUCE_SCATTER, DNN_COMM_ALGO_RING, M, &t);
  assert_close(c.time_s, 12 * (A + s * B + s * G), REL);
  assert_int_equal(c.steps, 12);
  assert_close(c.bytes_per_rank, 12 * s, REL);
  c = cost(DNN_COMM_ALLGATHER, DNN_COMM_ALGO_RING, M, &t);
  assert_close(c.time_s, 12 * (A + s * B), REL);
  assert_close(tflat(DNN_COMM_REDUCE_SCATTER, DNN_COMM_ALGO_DIRECT, 13, M),
               12 * (A + s * B + s * G), REL);
  assert_close(tflat(DNN_COMM_ALLGATHER, DNN_COMM_ALGO_DIRECT, 13, M),
               12 * (A + s * B), REL);

  /* Recursive halving / doubling: log2 P a + ((P-1)/P) m b. */
  dnn_comm_algo rd = DNN_COMM_ALGO_RECURSIVE_DOUBLING;
  t = flat(8);
  c = cost(DNN_COMM_REDUCE_SCATTER, rd, M, &t);
  assert_close(c.time_s, 3 * A + 7.0 / 8 * M * (B + G), REL);
  assert_close(c.bytes_per_rank, 7.0 / 8 * M, REL);
  c = cost(DNN_COMM_ALLGATHER, rd, M, &t);
  assert_close(c.time_s, 3 * A + 7.0 / 8 * M * B, REL);
  assert_int_equal(c.steps, 3);
  /* P = 13: fold the vector in, 3 steps, hand the block back. */
  t = flat(13);
  c = cost(DNN_COMM_REDUCE_SCATTER, rd, M, &t);
  assert_close(c.time_s,
               (A + M * (B + G)) + 3 * A + 7.0 / 8 * M * (B + G) + (A + s * B),
               REL);
  assert_int_equal(c.steps, 5);
  assert_close(c.bytes_per_rank, M, REL);
  c = cost(DNN_COMM_ALLGATHER, rd, M, &t);
  assert_close(c.time_s,
               (A + s * B) + 3 * A + 7.0 / 8 * M * B + (A + 12 * s * B), REL);
  assert_close(c.bytes_per_rank, 7.0 / 8 * M + 12 * s, REL);
}

/* ---- Broadcast and reduce -------------------------------------------- */

static void test_broadcast(void **state) {
  (void)state;
  double s = M / 13, k = 0;
  dnn_comm_topo t = flat(13);
  dnn_comm_cost c =
      cost(DNN_COMM_BROADCAST, DNN_COMM_ALGO_BINOMIAL_TREE, M, &t);
  assert_close(c.time_s, 4 * (A + M * B), REL);
  assert_close(c.bytes_per_rank, 4 * M, REL);
  /* Van de Geijn: (ceil(log2 P) + P - 1) a + 2 ((P-1)/P) m b. */
  c = cost(DNN_COMM_BROADCAST, DNN_COMM_ALGO_RABENSEIFNER, M, &t);
  assert_close(c.time_s, (4 + 12) * A + 2 * 12 * s * B, REL);
  assert_int_equal(c.steps, 16);
  /* Scatter + recursive-doubling allgather on 8: 2 log2 P a + ... */
  assert_close(
      tflat(DNN_COMM_BROADCAST, DNN_COMM_ALGO_RECURSIVE_DOUBLING, 8, M),
      6 * A + 2 * 7.0 / 8 * M * B, REL);
  /* Pipelined chain: (P - 2 + k)(a + m b / k), optimal k. */
  c = cost(DNN_COMM_BROADCAST, DNN_COMM_ALGO_RING, M, &t);
  assert_close(c.time_s, pipe_ref(12, A, M * B, &k), REL);
  assert_int_equal(c.steps, 12 + (size_t)k - 1);
  assert_close(c.bytes_per_rank, M, REL);
  /* Two trees over the 12 non-roots (height 3) plus the root's stage. */
  c = cost(DNN_COMM_BROADCAST, DNN_COMM_ALGO_DOUBLE_BINARY_TREE, M, &t);
  assert_close(c.time_s, pipe_ref(4, A, M * B, &k), REL);
  /* P = 2: nothing to pipeline, one message of m. */
  assert_close(
      tflat(DNN_COMM_BROADCAST, DNN_COMM_ALGO_DOUBLE_BINARY_TREE, 2, M),
      A + M * B, REL);
  assert_close(tflat(DNN_COMM_BROADCAST, DNN_COMM_ALGO_RING, 2, M), A + M * B,
               REL);
}

static void test_reduce(void **state) {
  (void)state;
  double k = 0;
  dnn_comm_topo t = flat(13);
  dnn_comm_cost c = cost(DNN_COMM_REDUCE, DNN_COMM_ALGO_BINOMIAL_TREE, M, &t);
  assert_close(c.time_s, 4 * (A + M * (B + G)), REL);
  assert_close(c.bytes_per_rank, M, REL);
  /* Rabenseifner: halving reduce-scatter then binomial gather. */
  double f = 7.0 / 8;
  assert_close(tflat(DNN_COMM_REDUCE, DNN_COMM_ALGO_RABENSEIFNER, 8, M),
               3 * A + f * M * (B + G) + 3 * A + f * M * B, REL);
  c = cost(DNN_COMM_REDUCE, DNN_COMM_ALGO_RABENSEIFNER, M, &t);
  assert_close(c.time_s,
               (A + M * (B + G)) + 3 * A + f * M * (B + G) + 3 * A + f * M * B,
               REL);
  assert_int_equal(c.steps, 7);
  t = flat(6);
  assert_close(cost(DNN_COMM_REDUCE, DNN_COMM_ALGO_RING, M, &t).time_s,
               pipe_ref(5, A, M * (B + G), &k), REL);
  assert_close(
      cost(DNN_COMM_REDUCE, DNN_COMM_ALGO_DOUBLE_BINARY_TREE, M, &t).time_s,
      pipe_ref(3, A, M * (B + G), &k), REL);
}

/* ---- All-to-all and point-to-point ------------------------------------ */

static void test_alltoall_p2p(void **state) {
  (void)state;
  dnn_comm_topo t = flat(13);
  dnn_comm_cost c = cost(DNN_COMM_ALLTOALL, DNN_COMM_ALGO_DIRECT, M, &t);
  assert_close(c.time_s, 12 * (A + M / 13 * B), REL);
  assert_int_equal(c.steps, 12);
  /* Bruck: log2 P a + (m/2) log2 P b on a power of two. */
  assert_close(tflat(DNN_COMM_ALLTOALL, DNN_COMM_ALGO_RECURSIVE_DOUBLING, 8, M),
               3 * A + 3 * (M / 2) * B, REL);
  assert_close(
      tflat(DNN_COMM_ALLTOALL, DNN_COMM_ALGO_RECURSIVE_DOUBLING, 64, M),
      6 * A + 6 * (M / 2) * B, REL);
  /* P = 13: blocks with bit j set in 0..12: 6, 6, 5, 5. */
  c = cost(DNN_COMM_ALLTOALL, DNN_COMM_ALGO_RECURSIVE_DOUBLING, M, &t);
  assert_close(c.time_s, 4 * A + 22 * (M / 13) * B, REL);
  assert_close(c.bytes_per_rank, 22 * (M / 13), REL);

  t = flat(2);
  c = cost(DNN_COMM_P2P, DNN_COMM_ALGO_DIRECT, M, &t);
  assert_close(c.time_s, A + M * B, REL);
  assert_close(c.latency_s, A, REL);
  assert_int_equal(c.steps, 1);
  t = multi(2, 1, 2);
  assert_close(cost(DNN_COMM_P2P, DNN_COMM_ALGO_AUTO, M, &t).time_s,
               AE + M * fmax(B, BE / 2), REL);
}

/* ---- Trivial and extreme sizes --------------------------------------- */

static void test_trivial(void **state) {
  (void)state;
  dnn_comm_topo one = flat(1), many = multi(3, 4, 2);
  for (int op = 0; op < DNN_COMM_OP_COUNT; op++)
    for (int a = 0; a < DNN_COMM_ALGO_COUNT; a++) {
      if (!dnn_comm_supports((dnn_comm_op)op, (dnn_comm_algo)a))
        continue;
      dnn_comm_cost c = cost((dnn_comm_op)op, (dnn_comm_algo)a, M, &one);
      assert_true(c.time_s == 0 && c.latency_s == 0 && c.steps == 0 &&
                  c.bytes_per_rank == 0);
      assert_int_not_equal(c.algo, DNN_COMM_ALGO_AUTO);
      c = cost((dnn_comm_op)op, (dnn_comm_algo)a, 0, &many);
      assert_true(c.time_s == 0 && c.latency_s == 0 && c.steps == 0 &&
                  c.bytes_per_rank == 0);
    }
}

static void test_extremes(void **state) {
  (void)state;
  static const double sizes[] = {1, TIB};
  for (size_t i = 0; i < LEN(sizes); i++) {
    double m = sizes[i], f = 12.0 / 13;
    assert_close(tflat(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, 13, m),
                 24 * A + 2 * f * m * B + f * m * G, REL);
    assert_close(
        tflat(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RECURSIVE_DOUBLING, 13, m),
        5 * A + 5 * m * B + 4 * m * G, REL);
    assert_close(
        tflat(DNN_COMM_ALLTOALL, DNN_COMM_ALGO_RECURSIVE_DOUBLING, 64, m),
        6 * A + 3 * m * B, REL);
  }
  /* Ring bus bandwidth: the bandwidth term 2((P-1)/P) m b takes over as
   * m grows, so time / that term falls towards 1. */
  dnn_comm_link nored = {A, B, 0};
  dnn_comm_topo t = dnn_comm_default_topo(64, nored);
  double prev = INFINITY;
  for (double m = 1; m <= TIB; m *= 32) {
    double bw = 2 * 63.0 / 64 * m * B;
    double r = cost(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, m, &t).time_s / bw;
    assert_true(r < prev);
    assert_true(r > 1);
    prev = r;
  }
  assert_true(prev < 1 + 1e-5);
  assert_true(prev > 1 + 1e-7);
}

/* ---- AUTO ------------------------------------------------------------- */

static void test_auto(void **state) {
  (void)state;
  static const size_t Ps[] = {2, 6, 13, 64};
  static const double sizes[] = {1, 4096, M, TIB};
  for (int topo_kind = 0; topo_kind < 2; topo_kind++)
    for (size_t i = 0; i < LEN(Ps); i++)
      for (size_t j = 0; j < LEN(sizes); j++)
        for (int op = 0; op < DNN_COMM_OP_COUNT; op++) {
          dnn_comm_topo t = flat(Ps[i]);
          if (topo_kind == 1) {
            t = multi(1, 4, 2);
            t.ranks = Ps[i];
          }
          double best = INFINITY;
          dnn_comm_algo arg = DNN_COMM_ALGO_AUTO;
          for (int a = 1; a < DNN_COMM_ALGO_COUNT; a++) {
            if (!dnn_comm_supports((dnn_comm_op)op, (dnn_comm_algo)a))
              continue;
            double x =
                cost((dnn_comm_op)op, (dnn_comm_algo)a, sizes[j], &t).time_s;
            if (x < best * (1 - 1e-9)) {
              best = x;
              arg = (dnn_comm_algo)a;
            }
          }
          dnn_comm_cost c =
              cost((dnn_comm_op)op, DNN_COMM_ALGO_AUTO, sizes[j], &t);
          assert_close(c.time_s, best, 1e-9);
          assert_close(cost((dnn_comm_op)op, c.algo, sizes[j], &t).time_s, best,
                       1e-9);
          if (best > 0 && arg != c.algo &&
              !dnn_close(cost((dnn_comm_op)op, arg, sizes[j], &t).time_s,
                         c.time_s, 1e-9))
            fail_msg("AUTO chose %s over %s", dnn_comm_algo_name(c.algo),
                     dnn_comm_algo_name(arg));
        }
  /* Small messages favour few steps, large ones the bandwidth-optimal. */
  dnn_comm_topo t = flat(64);
  dnn_comm_link nored = {A, B, 0};
  t.intra = nored;
  assert_int_equal(cost(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_AUTO, 8, &t).algo,
                   DNN_COMM_ALGO_RECURSIVE_DOUBLING);
  assert_int_equal(cost(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_AUTO, TIB, &t).algo,
                   DNN_COMM_ALGO_RABENSEIFNER);
}

/* ---- Monotonicity ----------------------------------------------------- */

static double scaled(dnn_comm_op op, dnn_comm_algo a, double m, dnn_comm_topo t,
                     int which, double f) {
  switch (which) {
  case 0:
    t.intra.alpha_s *= f;
    break;
  case 1:
    t.intra.beta_s_per_byte *= f;
    break;
  case 2:
    t.intra.gamma_s_per_byte *= f;
    break;
  case 3:
    t.inter.alpha_s *= f;
    break;
  case 4:
    t.inter.beta_s_per_byte *= f;
    break;
  case 5:
    t.inter.gamma_s_per_byte *= f;
    break;
  default:
    t.nics_per_node = f > 1 ? 1 : t.nics_per_node + 1;
    break;
  }
  return cost(op, a, m, &t).time_s;
}

static void test_monotone(void **state) {
  (void)state;
  static const size_t Ps[] = {2, 6, 13, 64};
  static const double sizes[] = {1, 7.3e4, M};
  for (int kind = 0; kind < 3; kind++)
    for (size_t i = 0; i < LEN(Ps); i++)
      for (size_t j = 0; j < LEN(sizes); j++)
        for (int op = 0; op < DNN_COMM_OP_COUNT; op++)
          for (int a = 0; a < DNN_COMM_ALGO_COUNT; a++) {
            if (!dnn_comm_supports((dnn_comm_op)op, (dnn_comm_algo)a))
              continue;
            dnn_comm_topo t = kind == 0   ? flat(Ps[i])
                              : kind == 1 ? multi(1, 4, 2)
                                          : multi(1, 3, 3);
            t.ranks = Ps[i];
            t.ps_servers = 3;
            double base =
                cost((dnn_comm_op)op, (dnn_comm_algo)a, sizes[j], &t).time_s;
            for (int w = 0; w < 7; w++) {
              double faster = scaled((dnn_comm_op)op, (dnn_comm_algo)a,
                                     sizes[j], t, w, 0.61);
              double slower = scaled((dnn_comm_op)op, (dnn_comm_algo)a,
                                     sizes[j], t, w, 1.7);
              if (faster > base * (1 + 1e-9) || slower < base * (1 - 1e-9))
                fail_msg("%s/%s P=%zu m=%g kind %d param %d: %g %g %g",
                         dnn_comm_op_name((dnn_comm_op)op),
                         dnn_comm_algo_name((dnn_comm_algo)a), Ps[i], sizes[j],
                         kind, w, faster, base, slower);
            }
          }
}

/* ---- Multi-node charging --------------------------------------------- */

static void test_multinode(void **state) {
  (void)state;
  double f = 7.0 / 8;
  /* Ring, 2 nodes x 4, one slow NIC: every step waits for the boundary
   * edge (AE, BE); one node of 8 is faster. */
  dnn_comm_topo two = multi(2, 4, 1), one = flat(8);
  two.inter.beta_s_per_byte = 1 / 3.1e9;
  dnn_comm_cost c = cost(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, M, &two);
  assert_close(c.time_s, 14 * AE + 2 * f * M / 3.1e9 + f * M * G, REL);
  assert_true(c.time_s >
              cost(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, M, &one).time_s);
  /* Four NICs of BE together outrun the intra port: beta stays B. */
  two = multi(2, 4, 4);
  assert_close(
      tflat(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, 8, M) + 14 * (AE - A),
      cost(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, M, &two).time_s, REL);

  /* Recursive doubling on 2 x 4 with 2 NICs: distances 1 and 2 stay in
   * the node; at distance 4 all 4 ranks share 2 NICs. */
  two = multi(2, 4, 2);
  assert_close(
      cost(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RECURSIVE_DOUBLING, M, &two)
          .time_s,
      2 * (A + M * (B + G)) + AE + M * fmax(B, 4 * BE / 2) + M * G, REL);
  /* Reductions after a crossing step run at the larger gamma. */
  dnn_comm_topo slowred = two;
  slowred.inter.gamma_s_per_byte = 2.9 * G;
  assert_close(
      cost(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RECURSIVE_DOUBLING, M, &slowred)
          .time_s,
      2 * (A + M * (B + G)) + AE + M * fmax(B, 4 * BE / 2) + M * 2.9 * G, REL);
  slowred.inter.gamma_s_per_byte = 0.37 * G;
  assert_close(
      cost(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RECURSIVE_DOUBLING, M, &slowred)
          .time_s,
      2 * (A + M * (B + G)) + AE + M * fmax(B, 4 * BE / 2) + M * G, REL);
  /* Binomial tree: one rank of a node crosses at distance 4. */
  assert_close(
      cost(DNN_COMM_BROADCAST, DNN_COMM_ALGO_BINOMIAL_TREE, M, &two).time_s,
      2 * (A + M * B) + AE + M * fmax(B, BE / 2), REL);

  /* 2 x 6 (not a power of two per node), P' = 8: the fold (distance 1)
   * stays in the node; distance 2 straddles the boundary (at most 2d = 4
   * ranks cross), distance 4 too (at most 6). */
  dnn_comm_topo six = multi(2, 6, 2);
  assert_close(
      cost(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RECURSIVE_DOUBLING, M, &six)
          .time_s,
      (A + M * (B + G)) + (A + M * (B + G)) +
          (AE + M * fmax(B, 4 * BE / 2) + M * G) +
          (AE + M * fmax(B, 6 * BE / 2) + M * G) + (A + M * B),
      REL);

  /* Shifts on 2 x 4: shift i has min(4, i, 8 - i) ranks of a node
   * crossing: 1 2 3 4 3 2 1. */
  double s = M / 8, want = 0;
  static const double crossing[] = {1, 2, 3, 4, 3, 2, 1};
  for (size_t i = 0; i < 7; i++)
    want += AE + s * fmax(B, crossing[i] * BE / 2);
  assert_close(cost(DNN_COMM_ALLTOALL, DNN_COMM_ALGO_DIRECT, M, &two).time_s,
               want, REL);
  /* 6 ranks, 4 per node (the second node half full): shifts 1..5 have
   * 1 2 3 2 1 crossing (shift 3 = P/2 counted once). */
  dnn_comm_topo part = multi(2, 4, 2);
  part.ranks = 6;
  want = 0;
  static const double crossing6[] = {1, 2, 3, 2, 1};
  for (size_t i = 0; i < 5; i++)
    want += AE + M / 6 * fmax(B, crossing6[i] * BE / 2);
  dnn_comm_cost d6 = cost(DNN_COMM_ALLGATHER, DNN_COMM_ALGO_DIRECT, M, &part);
  assert_close(d6.time_s, want, REL);
  assert_int_equal(d6.steps, 5);
  /* Bruck on 2 x 4: distances 1, 2, 4 with 1, 2, 4 crossing, M/2 each. */
  want = 0;
  for (double d = 1; d <= 4; d *= 2)
    want += AE + M / 2 * fmax(B, d * BE / 2);
  assert_close(
      cost(DNN_COMM_ALLTOALL, DNN_COMM_ALGO_RECURSIVE_DOUBLING, M, &two).time_s,
      want, REL);

  /* Pipelined chain on 2 x 4 with one slow NIC: 6 intra hops and 1
   * crossing hop, the slowest stage. */
  two = multi(2, 4, 1);
  two.inter.beta_s_per_byte = 1 / 3.1e9;
  double k = 0, bx = 1 / 3.1e9;
  double best = INFINITY;
  for (k = 1; k < 100000; k++)
    best = fmin(best, 6 * (A + M * B / k) + (AE + M * bx / k) +
                          (k - 1) * (AE + M * bx / k));
  assert_close(cost(DNN_COMM_BROADCAST, DNN_COMM_ALGO_RING, M, &two).time_s,
               best, REL);

  /* A crossing message is never faster than an intra-node one: with an
   * inter latency below the intra one, the ring keeps alpha = A. */
  two = multi(2, 4, 4);
  two.inter.alpha_s = 1.127e-6;
  assert_close(cost(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, M, &two).time_s,
               tflat(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, 8, M), REL);

  /* One node: inter parameters do not matter. */
  dnn_comm_topo lone = multi(1, 8, 1);
  lone.inter.beta_s_per_byte = 1;
  lone.inter.alpha_s = 1;
  for (int a = 1; a < DNN_COMM_ALGO_COUNT; a++)
    if (dnn_comm_supports(DNN_COMM_ALLREDUCE, (dnn_comm_algo)a))
      assert_close(cost(DNN_COMM_ALLREDUCE, (dnn_comm_algo)a, M, &lone).time_s,
                   tflat(DNN_COMM_ALLREDUCE, (dnn_comm_algo)a, 8, M), REL);
}

static void test_hierarchical(void **state) {
  (void)state;
  /* 4 nodes x 8 ranks, 4 NICs. Intra: recursive halving reduce-scatter
   * and recursive doubling allgather on 8 ranks (3 steps beat the ring's
   * 7); inter: 8 concurrent allreduces of M/8 over 4 nodes sharing 4
   * NICs, beta_x = max(B, 8 BE / 4), where Rabenseifner wins. */
  dnn_comm_topo t = multi(4, 8, 4);
  dnn_comm_cost c = cost(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_HIERARCHICAL, M, &t);
  double f = 7.0 / 8, mi = M / 8, ax = AE, bx = fmax(B, 8 * BE / 4);
  double rs = 3 * A + f * M * (B + G);
  double ar = 4 * ax + 2 * 0.75 * mi * bx + 0.75 * mi * G;
  double ag = 3 * A + f * M * B;
  assert_close(c.time_s, rs + ar + ag, REL);
  assert_close(c.latency_s, 6 * A + 4 * AE, REL);
  assert_int_equal(c.steps, 3 + 4 + 3);
  assert_int_equal(c.algo, DNN_COMM_ALGO_HIERARCHICAL);
  assert_int_equal(c.intra_rs_algo, DNN_COMM_ALGO_RECURSIVE_DOUBLING);
  assert_int_equal(c.inter_algo, DNN_COMM_ALGO_RABENSEIFNER);
  assert_int_equal(c.intra_ag_algo, DNN_COMM_ALGO_RECURSIVE_DOUBLING);
  assert_close(c.bytes_per_rank, 2 * f * M + 2 * 0.75 * mi, REL);
  /* Small messages: the inter phase becomes recursive doubling. */
  c = cost(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_HIERARCHICAL, 64, &t);
  assert_int_equal(c.inter_algo, DNN_COMM_ALGO_RECURSIVE_DOUBLING);
  /* One rank per node: only the inter phase, on cross_link(1). */
  t = multi(5, 1, 2);
  c = cost(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_HIERARCHICAL, M, &t);
  dnn_comm_topo x =
      dnn_comm_default_topo(5, (dnn_comm_link){AE, fmax(B, BE / 2), G});
  assert_close(c.time_s, cost(DNN_COMM_ALLREDUCE, c.inter_algo, M, &x).time_s,
               REL);
}

/* ---- Topologies ------------------------------------------------------- */

static void test_topologies(void **state) {
  (void)state;
  dnn_comm_topo t = flat(13);
  assert_int_equal(t.ranks, 13);
  assert_int_equal(t.ranks_per_node, 13);
  assert_int_equal(t.nics_per_node, 1);
  assert_int_equal(t.ps_servers, 1);
  assert_true(t.segment_bytes == 0);
  assert_close(t.inter.beta_s_per_byte, B, 0);

  dnn_cluster cl;
  memset(&cl, 0, sizeof cl);
  cl.nodes = 4;
  cl.devices_per_node = 8;
  cl.intra.latency_s = 2.137e-6;
  cl.intra.bandwidth_Bps = 1.31e11;
  cl.inter.latency_s = 5.311e-6;
  cl.inter.bandwidth_Bps = 1.23e10;
  cl.nics_per_node = 4;
  dnn_comm_link l = dnn_comm_link_from(&cl.inter);
  assert_close(l.alpha_s, 5.311e-6, REL);
  assert_close(l.beta_s_per_byte, 1 / 1.23e10, REL);
  assert_true(l.gamma_s_per_byte == 0);

  t = dnn_comm_topo_from_cluster(&cl, 32, 1, 7.7e-12);
  assert_int_equal(t.ranks, 32);
  assert_int_equal(t.ranks_per_node, 8);
  assert_int_equal(t.nics_per_node, 4);
  assert_int_equal(t.ps_servers, 1);
  assert_close(t.intra.beta_s_per_byte, 1 / 1.31e11, REL);
  assert_close(t.inter.alpha_s, 5.311e-6, REL);
  assert_close(t.intra.gamma_s_per_byte, 7.7e-12, REL);
  assert_close(t.inter.gamma_s_per_byte, 7.7e-12, REL);
  assert_int_equal(dnn_comm_topo_from_cluster(&cl, 16, 2, 0).ranks_per_node, 4);
  assert_int_equal(dnn_comm_topo_from_cluster(&cl, 4, 8, 0).ranks_per_node, 1);
  assert_int_equal(dnn_comm_topo_from_cluster(&cl, 2, 16, 0).ranks_per_node, 1);
  assert_int_equal(dnn_comm_topo_from_cluster(&cl, 3, 1, 0).ranks_per_node, 3);
  assert_int_equal(dnn_comm_topo_from_cluster(&cl, 32, 0, 0).ranks_per_node, 8);
  cl.nics_per_node = 0;
  assert_int_equal(dnn_comm_topo_from_cluster(&cl, 32, 1, 0).nics_per_node, 1);

  /* A 2-node data-parallel group across tensor groups of 4 is charged
   * as 2 ranks per node. */
  cl.nics_per_node = 4;
  t = dnn_comm_topo_from_cluster(&cl, 4, 4, 0);
  assert_int_equal(t.ranks_per_node, 2);
  dnn_comm_cost c = cost(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, M, &t);
  assert_close(c.time_s,
               6 * 5.311e-6 + 2 * 0.75 * M * fmax(1 / 1.31e11, 1 / 4.92e10),
               REL);
}

/* ---- Errors ----------------------------------------------------------- */

static void expect_einval(dnn_comm_op op, dnn_comm_algo a, double m,
                          const dnn_comm_topo *t, const char *msg) {
  dnn_error e;
  dnn_comm_cost c;
  memset(&c, 0, sizeof c);
  c.time_s = 42;
  assert_int_equal(dnn_comm_time(op, a, m, t, &c, &e), DNN_EINVAL);
  assert_int_equal(e.code, DNN_EINVAL);
  assert_contains(e.msg, msg);
  assert_true(c.time_s == 42);
  assert_int_equal(dnn_comm_time(op, a, m, t, &c, NULL), DNN_EINVAL);
}

static void test_errors(void **state) {
  (void)state;
  dnn_comm_op ar = DNN_COMM_ALLREDUCE;
  dnn_comm_algo ring = DNN_COMM_ALGO_RING;
  dnn_comm_topo t = flat(8);
  expect_einval(ar, ring, -1, &t, "allreduce bytes must be finite and >= 0");
  expect_einval(ar, ring, NAN, &t, "(got nan)");
  expect_einval(ar, ring, INFINITY, &t, "(got inf)");
  expect_einval(DNN_COMM_BROADCAST, DNN_COMM_ALGO_PS, M, &t,
                "algorithm \"ps\" does not implement broadcast");
  expect_einval(DNN_COMM_ALLTOALL, DNN_COMM_ALGO_RING, M, &t,
                "algorithm \"ring\" does not implement alltoall");
  expect_einval((dnn_comm_op)99, ring, M, &t, "does not implement unknown");
  expect_einval(ar, (dnn_comm_algo)99, M, &t, "algorithm \"unknown\"");
  t.ranks = 0;
  expect_einval(ar, ring, M, &t, "ranks must be >= 1 (got 0)");
  t = flat(8);
  t.ranks_per_node = 0;
  expect_einval(ar, ring, M, &t, "ranks_per_node must be >= 1");
  t = flat(8);
  t.nics_per_node = 0;
  expect_einval(ar, ring, M, &t, "nics_per_node must be >= 1");
  t = flat(8);
  t.ps_servers = 0;
  expect_einval(ar, DNN_COMM_ALGO_PS, M, &t, "ps_servers must be >= 1");
  t = flat(8);
  t.segment_bytes = -4096;
  expect_einval(ar, ring, M, &t, "segment_bytes must be finite and >= 0");
  t = flat(8);
  t.intra.alpha_s = -1e-6;
  expect_einval(ar, ring, M, &t, "intra link alpha_s must be finite");
  t = multi(2, 4, 1);
  t.inter.beta_s_per_byte = NAN;
  expect_einval(ar, ring, M, &t, "inter link beta_s_per_byte must be finite");
  /* On one node the inter link is unused: a cluster without one (bandwidth
   * 0, beta infinite) is fine there. */
  dnn_link none = {"none", 0, 0};
  t.ranks_per_node = 8;
  t.inter = dnn_comm_link_from(&none);
  assert_close(cost(ar, ring, M, &t).time_s,
               tflat(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, 8, M), REL);
  t.ranks_per_node = 7;
  expect_einval(ar, ring, M, &t, "inter link beta_s_per_byte must be finite");
  t = flat(8);
  t.intra.gamma_s_per_byte = INFINITY;
  expect_einval(ar, ring, M, &t, "intra link gamma_s_per_byte must be finite");
  /* A link without bandwidth converts to an infinite beta. */
  dnn_link dead = {"dead", 1e-6, 0};
  t = dnn_comm_default_topo(8, dnn_comm_link_from(&dead));
  expect_einval(ar, ring, M, &t, "intra link beta_s_per_byte");
  /* Errors take precedence over the zero-cost shortcut. */
  t = flat(1);
  expect_einval(ar, ring, -1, &t, "bytes must be finite");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_supports),
      cmocka_unit_test(test_allreduce_ring),
      cmocka_unit_test(test_allreduce_recursive_doubling),
      cmocka_unit_test(test_allreduce_rabenseifner),
      cmocka_unit_test(test_allreduce_tree),
      cmocka_unit_test(test_allreduce_double_binary_tree),
      cmocka_unit_test(test_allreduce_ps),
      cmocka_unit_test(test_allreduce_direct),
      cmocka_unit_test(test_reduce_scatter_allgather),
      cmocka_unit_test(test_broadcast),
      cmocka_unit_test(test_reduce),
      cmocka_unit_test(test_alltoall_p2p),
      cmocka_unit_test(test_trivial),
      cmocka_unit_test(test_extremes),
      cmocka_unit_test(test_auto),
      cmocka_unit_test(test_monotone),
      cmocka_unit_test(test_multinode),
      cmocka_unit_test(test_hierarchical),
      cmocka_unit_test(test_topologies),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
