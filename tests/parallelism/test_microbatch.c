/* Tests of parallelism/microbatch.c and microbatch_ilp.c: micro-batch
 * sizes, the per-kernel DP (fastest and Pareto) and the GLPK programme
 * against brute force on synthetic time/workspace tables (every division
 * and algorithm enumerated), their invariants, a hand-computed case, byte
 * sizes and names, and every error path that input can provoke. */
#include "test_fixtures.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "dnnsim/mbatch.h"

#define NMAX 12
#define AMAX 4
#define MIB (1024.0 * 1024.0)

/* ---- Synthetic cost tables ------------------------------------------------
 */

typedef struct table {
  size_t N, A;
  double t[NMAX + 1][AMAX];  /* seconds; INFINITY: cannot run */
  double ws[NMAX + 1][AMAX]; /* bytes */
  size_t calls;
} table;

static double table_cost(void *ud, size_t b, size_t a, double *ws) {
  table *tb = ud;
  tb->calls++;
  assert_true(b >= 1 && b <= tb->N && a < tb->A);
  *ws = tb->ws[b][a];
  return tb->t[b][a];
}

static dnn_mb_costs costs_of(table *tb) {
  dnn_mb_costs c = {tb->N, tb->A, table_cost, tb};
  return c;
}

/* xorshift64*: a reproducible stream per test case. */
static uint64_t rng_state;
static double urand(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (double)((rng_state * 2685821657736338717ULL) >> 11) /
         9007199254740992.0;
}
static size_t irand(size_t lo, size_t hi) {
  return lo + (size_t)(urand() * (double)(hi - lo + 1));
}

/*
 * A table shaped like convolution algorithms, with noise: algorithm 0 has
 * no workspace and is slow (implicit GEMM), 1 a constant workspace, 2 and
 * 3 a workspace growing with the batch and less time per sample (FFT,
 * Winograd non-fused); 3 cannot run at some sizes. Every time carries a
 * per-launch overhead, so dividing is never free.
 */
static void table_random(table *tb, size_t N, size_t A, uint64_t seed) {
  memset(tb, 0, sizeof *tb);
  rng_state = seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;
  tb->N = N;
  tb->A = A;
  double launch = 0.0371 + 0.05 * urand();
  for (size_t a = 0; a < A; a++) {
    double per = 1.137 / (1.0 + 0.9 * (double)a) * (0.8 + 0.4 * urand());
    double fixed = a == 1 ? 3.71 + urand() : 0;
    double grow = a >= 2 ? 2.9 * (double)a * (0.7 + 0.6 * urand()) : 0;
    for (size_t b = 1; b <= N; b++) {
      double noise = 0.93 + 0.14 * urand();
      tb->t[b][a] = launch + per * (double)b * noise;
      tb->ws[b][a] = a == 0 ? 0 : fixed + grow * (double)b;
      if (a == 3 && urand() < 0.3)
        tb->t[b][a] = INFINITY;
    }
  }
}

/* ---- Brute force ------------------------------------------------------------
 */

typedef struct cfg {
  double t, ws;
} cfg;

typedef struct cfgs {
  cfg *v;
  size_t n, cap;
} cfgs;

static void cfgs_push(cfgs *c, double t, double ws) {
  if (c->n == c->cap) {
    c->cap = c->cap ? 2 * c->cap : 1024;
    c->v = realloc(c->v, c->cap * sizeof *c->v);
    assert_non_null(c->v);
  }
  c->v[c->n++] = (cfg){t, ws};
}

/* Every multiset of (size in S, algorithm) pairs summing to `left`, pairs
 * taken in non-increasing index order so that each multiset comes once. */
static void enumerate(const table *tb, const size_t *S, size_t nS, size_t left,
                      size_t max_pair, double t, double ws, double limit,
                      cfgs *out) {
  if (left == 0) {
    cfgs_push(out, t, ws);
    return;
  }
  for (size_t p = max_pair + 1; p-- > 0;) {
    size_t s = S[p / tb->A], a = p % tb->A;
    if (s > left || !isfinite(tb->t[s][a]) || tb->ws[s][a] > limit)
      continue;
    enumerate(tb, S, nS, left - s, p, t + tb->t[s][a], fmax(ws, tb->ws[s][a]),
              limit, out);
  }
}

static cfgs brute(const table *tb, dnn_mb_policy policy, double limit) {
  size_t S[NMAX];
  size_t nS = dnn_mb_sizes(policy, tb->N, S, NMAX);
  cfgs out = {0};
  enumerate(tb, S, nS, tb->N, nS * tb->A - 1, 0, 0, limit, &out);
  return out;
}

static int cmp_cfg(const void *pa, const void *pb) {
  const cfg *a = pa, *b = pb;
  if (a->ws != b->ws)
    return a->ws < b->ws ? -1 : 1;
  return a->t < b->t ? -1 : a->t > b->t;
}

/* The Pareto front of `c` in place: workspace ascending, time descending. */
static void pareto(cfgs *c) {
  qsort(c->v, c->n, sizeof *c->v, cmp_cfg);
  size_t k = 0;
  for (size_t i = 0; i < c->n; i++)
    if (k == 0 || c->v[i].t < c->v[k - 1].t)
      c->v[k++] = c->v[i];
  c->n = k;
}

static double fastest(const cfgs *c) {
  double best = INFINITY;
  for (size_t i = 0; i < c->n; i++)
    best = fmin(best, c->v[i].t);
  return best;
}

/* A configuration's parts are consistent with its totals and the table. */
static void check_config(const table *tb, dnn_mb_policy policy, double limit,
                         const dnn_mb_config *c) {
  size_t S[NMAX];
  size_t nS = dnn_mb_sizes(policy, tb->N, S, NMAX);
  size_t samples = 0, mbs = 0;
  double t = 0, ws = 0;
  for (size_t i = 0; i < c->n_parts; i++) {
    const dnn_mb_part *p = &c->parts[i];
    bool allowed = false;
    for (size_t j = 0; j < nS; j++)
      allowed |= S[j] == p->batch;
    assert_true(allowed);
    assert_true(p->count >= 1);
    if (i > 0)
      assert_true(p->batch < c->parts[i - 1].batch ||
                  (p->batch == c->parts[i - 1].batch &&
                   p->algo > c->parts[i - 1].algo));
    assert_true(p->time_s == tb->t[p->batch][p->algo]);
    assert_true(p->workspace_bytes == tb->ws[p->batch][p->algo]);
    samples += p->count * p->batch;
    mbs += p->count;
    t += (double)p->count * p->time_s;
    ws = fmax(ws, p->workspace_bytes);
  }
  assert_int_equal(samples, tb->N);
  assert_int_equal(mbs, c->n_microbatches);
  assert_close(c->time_s, t, 1e-12);
  assert_true(c->workspace_bytes == ws);
  assert_true(c->workspace_bytes <= limit);
}

static dnn_mb_set *build(table *tb, dnn_mb_policy policy, double limit,
                         bool par) {
  dnn_mb_costs c = costs_of(tb);
  dnn_mb_set *s = NULL;
  dnn_error e;
  assert_ok(dnn_mb_set_build(&c, policy, limit, par, &s, &e), &e);
  return s;
}

/* ---- Tests ------------------------------------------------------------------
 */

static void test_sizes(void **state) {
  (void)state;
  size_t s[32];
  assert_int_equal(dnn_mb_sizes(DNN_MB_POLICY_POWER_OF_TWO, 12, s, 32), 5);
  size_t want12[] = {1, 2, 4, 8, 12};
  for (size_t i = 0; i < 5; i++)
    assert_int_equal(s[i], want12[i]);
  assert_int_equal(dnn_mb_sizes(DNN_MB_POLICY_POWER_OF_TWO, 256, s, 32), 9);
  assert_int_equal(s[8], 256);
  assert_int_equal(dnn_mb_sizes(DNN_MB_POLICY_POWER_OF_TWO, 1, s, 32), 1);
  assert_int_equal(s[0], 1);
  assert_int_equal(dnn_mb_sizes(DNN_MB_POLICY_UNDIVIDED, 37, s, 32), 1);
  assert_int_equal(s[0], 37);
  assert_int_equal(dnn_mb_sizes(DNN_MB_POLICY_ALL, 7, s, 32), 7);
  assert_int_equal(s[6], 7);
  /* The count is returned even when the buffer is short. */
  assert_int_equal(dnn_mb_sizes(DNN_MB_POLICY_ALL, 300, s, 32), 300);
  assert_int_equal(s[31], 32);
  assert_int_equal(dnn_mb_sizes(DNN_MB_POLICY_POWER_OF_TWO, 300, NULL, 0), 10);
  assert_int_equal(dnn_mb_sizes(DNN_MB_POLICY_ALL, 0, NULL, 0), 0);
  /* A huge batch does not overflow the doubling. */
  assert_int_equal(dnn_mb_sizes(DNN_MB_POLICY_POWER_OF_TWO, SIZE_MAX, NULL, 0),
                   sizeof(size_t) * 8 + 1);
}

/* N = 4, two algorithms, worked by hand (docs/models.md §10 example):
 * algorithm 0 takes 0.37 + 1.13 b without workspace, algorithm 1 takes
 * 0.29 + 0.41 b with 3.7 b bytes; the limit 8 admits algorithm 1 up to
 * b = 2. Best: 2x2 with algorithm 1 = 2 (0.29 + 0.82) = 2.22 at 7.4 bytes;
 * within 3.7 bytes: 4x1 = 4 x 0.70 = 2.80; without workspace: undivided
 * algorithm 0 = 4.89 (2x2 would be 5.26). */
static void test_hand_computed(void **state) {
  (void)state;
  table tb;
  memset(&tb, 0, sizeof tb);
  tb.N = 4;
  tb.A = 2;
  for (size_t b = 1; b <= 4; b++) {
    tb.t[b][0] = 0.37 + 1.13 * (double)b;
    tb.t[b][1] = 0.29 + 0.41 * (double)b;
    tb.ws[b][1] = 3.7 * (double)b;
  }
  dnn_mb_set *wr = build(&tb, DNN_MB_POLICY_ALL, 8, false);
  assert_int_equal(dnn_mb_set_count(wr), 1);
  const dnn_mb_config *c = dnn_mb_set_get(wr, 0);
  assert_close(c->time_s, 2.22, 1e-12);
  assert_close(c->workspace_bytes, 7.4, 1e-15);
  assert_int_equal(c->n_parts, 1);
  assert_int_equal(c->parts[0].count, 2);
  assert_int_equal(c->parts[0].batch, 2);
  assert_int_equal(c->parts[0].algo, 1);
  char buf[128];
  assert_string_equal(dnn_mb_config_format(c, buf, sizeof buf),
                      "2\xc3\x97"
                      "2 implicit_precomp_gemm");
  dnn_mb_set_free(wr);

  dnn_mb_set *wd = build(&tb, DNN_MB_POLICY_ALL, 8, true);
  assert_int_equal(dnn_mb_set_count(wd), 3);
  double want_t[] = {4.89, 2.80, 2.22}, want_ws[] = {0, 3.7, 7.4};
  for (size_t i = 0; i < 3; i++) {
    assert_close(dnn_mb_set_get(wd, i)->time_s, want_t[i], 1e-12);
    assert_close(dnn_mb_set_get(wd, i)->workspace_bytes, want_ws[i], 1e-15);
  }
  assert_string_equal(dnn_mb_config_format(dnn_mb_set_get(wd, 1), buf, 7),
                      "4\xc3\x97"
                      "1 i");
  dnn_mb_set_free(wd);

  /* powerOfTwo has the same sizes here; undivided only b = 4, where
   * algorithm 1 needs 14.8 bytes: algorithm 0 alone. */
  dnn_mb_set *un = build(&tb, DNN_MB_POLICY_UNDIVIDED, 8, true);
  assert_int_equal(dnn_mb_set_count(un), 1);
  assert_close(dnn_mb_set_get(un, 0)->time_s, 4.89, 1e-12);
  dnn_mb_set_free(un);
}

static void test_dp_against_brute_force(void **state) {
  (void)state;
  size_t checked = 0, divided = 0;
  for (uint64_t seed = 1; seed <= 60; seed++) {
    table tb;
    table_random(&tb, irand(1, NMAX), irand(2, AMAX), seed);
    for (int pol = 0; pol <= DNN_MB_POLICY_ALL; pol++) {
      /* Limits from "only algorithm 0" to "everything fits". */
      double limits[] = {0, 4.3, 17.9, 1e9, 11.0 + 40 * urand()};
      for (size_t li = 0; li < sizeof limits / sizeof limits[0]; li++) {
        double lim = limits[li];
        cfgs all = brute(&tb, (dnn_mb_policy)pol, lim);
        assert_true(all.n > 0); /* algorithm 0 always fits */
        dnn_mb_set *wr = build(&tb, (dnn_mb_policy)pol, lim, false);
        const dnn_mb_config *c = dnn_mb_set_get(wr, 0);
        check_config(&tb, (dnn_mb_policy)pol, lim, c);
        assert_close(c->time_s, fastest(&all), 1e-12);
        divided += c->n_microbatches > 1;

        pareto(&all);
        dnn_mb_set *wd = build(&tb, (dnn_mb_policy)pol, lim, true);
        assert_int_equal(dnn_mb_set_count(wd), all.n);
        for (size_t i = 0; i < all.n; i++) {
          const dnn_mb_config *p = dnn_mb_set_get(wd, i);
          check_config(&tb, (dnn_mb_policy)pol, lim, p);
          assert_close(p->time_s, all.v[i].t, 1e-12);
          assert_true(p->workspace_bytes == all.v[i].ws);
        }
        /* The fastest of the Pareto set is the WR answer. */
        assert_close(dnn_mb_set_get(wd, all.n - 1)->time_s, c->time_s, 1e-12);
        dnn_mb_set_free(wr);
        dnn_mb_set_free(wd);
        free(all.v);
        checked++;
      }
    }
  }
  assert_int_equal(checked, 60 * 3 * 5);
  assert_true(divided > 100); /* the cases do exercise division */
}

static void test_policies_and_limits(void **state) {
  (void)state;
  for (uint64_t seed = 101; seed <= 160; seed++) {
    table tb;
    table_random(&tb, irand(1, NMAX), irand(2, AMAX), seed);
    double prev[3] = {INFINITY, INFINITY, INFINITY};
    for (double lim = 0; lim < 80; lim += 3.19) {
      double t[3];
      for (int pol = 0; pol <= DNN_MB_POLICY_ALL; pol++) {
        dnn_mb_set *s = build(&tb, (dnn_mb_policy)pol, lim, false);
        t[pol] = dnn_mb_set_get(s, 0)->time_s;
        dnn_mb_set_free(s);
        /* A larger limit is never slower. */
        assert_true(t[pol] <= prev[pol]);
        prev[pol] = t[pol];
      }
      /* powerOfTwo never beats all; undivided never beats either. */
      assert_true(t[DNN_MB_POLICY_ALL] <= t[DNN_MB_POLICY_POWER_OF_TWO]);
      assert_true(t[DNN_MB_POLICY_POWER_OF_TWO] <= t[DNN_MB_POLICY_UNDIVIDED]);
      /* Undivided is the fastest single algorithm that fits. */
      double best = INFINITY;
      for (size_t a = 0; a < tb.A; a++)
        if (tb.ws[tb.N][a] <= lim)
          best = fmin(best, tb.t[tb.N][a]);
      assert_true(t[DNN_MB_POLICY_UNDIVIDED] == best);
    }
  }
}

/* Brute force over every combination of every kernel's configurations. */
static void combos(cfgs *per, size_t K, size_t k, double t, double ws,
                   double limit, double *best) {
  if (ws > limit)
    return;
  if (k == K) {
    *best = fmin(*best, t);
    return;
  }
  for (size_t i = 0; i < per[k].n; i++)
    combos(per, K, k + 1, t + per[k].v[i].t, ws + per[k].v[i].ws, limit, best);
}

static double ilp(dnn_mb_set **sets, size_t K, double limit, double gap,
                  double *ws) {
  size_t choice[16];
  dnn_error e;
  assert_ok(dnn_mb_ilp_solve((const dnn_mb_set *const *)sets, K, limit, gap, 0,
                             choice, &e),
            &e);
  double t = 0;
  *ws = 0;
  for (size_t k = 0; k < K; k++) {
    assert_true(choice[k] < dnn_mb_set_count(sets[k]));
    t += dnn_mb_set_get(sets[k], choice[k])->time_s;
    *ws += dnn_mb_set_get(sets[k], choice[k])->workspace_bytes;
  }
  return t;
}

static void test_ilp_against_brute_force(void **state) {
  (void)state;
  size_t glpk_cases = 0;
  for (uint64_t seed = 201; seed <= 230; seed++) {
    table tb[4];
    cfgs per[4];
    dnn_mb_set *sets[4];
    size_t K = seed % 2 ? 3 : 4, N = K == 3 ? 5 : 4;
    dnn_mb_policy pol =
        seed % 3 == 0 ? DNN_MB_POLICY_POWER_OF_TWO : DNN_MB_POLICY_ALL;
    double min_ws = 0, max_ws = 0;
    for (size_t k = 0; k < K; k++) {
      table_random(&tb[k], N, 3, seed * 7 + k);
      per[k] = brute(&tb[k], pol, INFINITY);
      double lo = INFINITY, hi = 0;
      for (size_t i = 0; i < per[k].n; i++) {
        lo = fmin(lo, per[k].v[i].ws);
        hi = fmax(hi, per[k].v[i].ws);
      }
      min_ws += lo;
      max_ws += hi;
    }
    for (int step = 0; step <= 8; step++) {
      double lim = min_ws + (max_ws - min_ws) * step / 8.0;
      for (size_t k = 0; k < K; k++)
        sets[k] = build(&tb[k], pol, lim, true);
      double best = INFINITY, ws;
      combos(per, K, 0, 0, 0, lim, &best);
      double t = ilp(sets, K, lim, 0, &ws);
      assert_close(t, best, 1e-12);
      assert_true(ws <= lim);
      glpk_cases += step > 0 && step < 8;
      for (size_t k = 0; k < K; k++)
        dnn_mb_set_free(sets[k]);
    }
    for (size_t k = 0; k < K; k++)
      free(per[k].v);
  }
  assert_true(glpk_cases > 100);
}

/* Many kernels: the total never exceeds the limit, a larger limit is
 * never slower (exact solves), a gap stays within its bound, and the limit
 * equal to a choice's exact sum is feasible. */
static void test_ilp_properties(void **state) {
  (void)state;
  enum { K = 12 };
  table tb[K];
  dnn_mb_set *sets[K];
  double fast_ws = 0, small_ws = 0;
  for (size_t k = 0; k < K; k++) {
    table_random(&tb[k], irand(3, NMAX), irand(2, AMAX), 300 + k);
    sets[k] = build(&tb[k], DNN_MB_POLICY_POWER_OF_TWO, 1e9, true);
    size_t n = dnn_mb_set_count(sets[k]);
    small_ws += dnn_mb_set_get(sets[k], 0)->workspace_bytes;
    fast_ws += dnn_mb_set_get(sets[k], n - 1)->workspace_bytes;
  }
  assert_true(small_ws == 0 && fast_ws > 100);
  double prev = INFINITY;
  for (double lim = 0; lim <= fast_ws * 1.1; lim += fast_ws / 37.3) {
    double ws, ws_gap;
    double t = ilp(sets, K, lim, 0, &ws);
    assert_true(ws <= lim);
    assert_true(t <= prev * (1 + 1e-12));
    prev = t;
    double tg = ilp(sets, K, lim, 1e-2, &ws_gap);
    assert_true(ws_gap <= lim);
    assert_true(tg >= t * (1 - 1e-12) && tg <= t * (1 + 1e-2));
    /* The limit exactly at the chosen sum keeps the same optimum. */
    double t2 = ilp(sets, K, ws, 0, &ws_gap);
    assert_close(t2, t, 1e-9);
    assert_true(ws_gap <= ws);
  }
  for (size_t k = 0; k < K; k++)
    dnn_mb_set_free(sets[k]);
}

static void test_main_algo(void **state) {
  (void)state;
  dnn_mb_part parts[] = {
      {64, 2, 4, 1.1, 7.0}, {32, 3, 7, 0.6, 9.0}, {16, 2, 4, 0.3, 3.0}};
  dnn_mb_config c = {0, 9.0, 3, 7, parts};
  /* Algorithm 4 does 160 samples, 7 does 96. */
  assert_int_equal(dnn_mb_config_main_algo(&c), 4);
  parts[2].algo = 7;
  assert_int_equal(dnn_mb_config_main_algo(&c), 4); /* 128 vs 128: lower */
  parts[0].algo = 9;
  char buf[128];
  assert_string_equal(dnn_mb_config_format(&c, buf, sizeof buf),
                      "2\xc3\x97"
                      "64 algo9, 3\xc3\x97"
                      "32 winograd_nonfused, 2\xc3\x97"
                      "16 winograd_nonfused");
  assert_string_equal(dnn_mb_config_format(&c, buf, 1), "");
}

static void test_size_parse(void **state) {
  (void)state;
  dnn_error e;
  double v;
  assert_ok(dnn_mb_size_parse("64MiB", &v, &e), &e);
  assert_true(v == 64 * MIB);
  assert_ok(dnn_mb_size_parse(" 8 MiB ", &v, &e), &e);
  assert_true(v == 8 * MIB);
  assert_ok(dnn_mb_size_parse("1GiB", &v, &e), &e);
  assert_true(v == 1024 * MIB);
  assert_ok(dnn_mb_size_parse("3.719gib", &v, &e), &e);
  assert_close(v, 3.719 * 1024 * MIB, 1e-15);
  assert_ok(dnn_mb_size_parse("37KiB", &v, &e), &e);
  assert_true(v == 37 * 1024);
  assert_ok(dnn_mb_size_parse("100MB", &v, &e), &e);
  assert_true(v == 1e8);
  assert_ok(dnn_mb_size_parse("4096B", &v, &e), &e);
  assert_true(v == 4096);
  assert_ok(dnn_mb_size_parse("2TiB", &v, &e), &e);
  assert_true(v == 2 * 1024 * 1024 * MIB);
  assert_int_equal(dnn_mb_size_parse("64", &v, &e), DNN_EINVAL);
  assert_contains(e.msg, "size '64' needs a unit");
  assert_int_equal(dnn_mb_size_parse("lots", &v, &e), DNN_EINVAL);
  assert_contains(e.msg, "'lots' is not a size");
  assert_int_equal(dnn_mb_size_parse("-8MiB", &v, &e), DNN_EINVAL);
  assert_contains(e.msg, "'-8MiB' is not a size");
  assert_int_equal(dnn_mb_size_parse("8 parsecs", &v, &e), DNN_EINVAL);
  assert_contains(e.msg, "size '8 parsecs' has an unknown unit");
  assert_int_equal(dnn_mb_size_parse("8MiB 3", &v, &e), DNN_EINVAL);
  assert_contains(e.msg, "unknown unit");
  assert_int_equal(dnn_mb_size_parse("inf MiB", &v, &e), DNN_EINVAL);
}

static void test_policy_names(void **state) {
  (void)state;
  dnn_error e;
  dnn_mb_policy p;
  for (int i = 0; i <= DNN_MB_POLICY_ALL; i++) {
    assert_ok(dnn_mb_policy_parse(dnn_mb_policy_name((dnn_mb_policy)i), &p, &e),
              &e);
    assert_int_equal(p, i);
  }
  assert_string_equal(dnn_mb_policy_name(DNN_MB_POLICY_POWER_OF_TWO),
                      "powerOfTwo");
  assert_string_equal(dnn_mb_policy_name((dnn_mb_policy)7), "unknown");
  assert_int_equal(dnn_mb_policy_parse("powerOfTow", &p, &e), DNN_ENOTFOUND);
  assert_contains(e.msg, "unknown micro-batch policy 'powerOfTow' (did you "
                         "mean 'powerOfTwo'?)");
  assert_int_equal(dnn_mb_policy_parse("zzzzzzzz", &p, &e), DNN_ENOTFOUND);
  assert_contains(e.msg, "'zzzzzzzz' (undivided, powerOfTwo or all)");
  dnn_mb_params d = dnn_mb_default_params();
  assert_int_equal(d.solver, DNN_MICROBATCHING_DP);
  assert_int_equal(d.policy, DNN_MB_POLICY_POWER_OF_TWO);
  assert_true(d.layer_workspace_bytes == 64 * MIB);
}

/* A cost that breaks its contract at (3, 1). */
static double bad_cost(void *ud, size_t b, size_t a, double *ws) {
  int how = *(const int *)ud;
  *ws = 2.9 * (double)a;
  if (b == 3 && a == 1)
    switch (how) {
    case 0:
      return NAN;
    case 1:
      return -0.5;
    case 2:
      *ws = -1;
      break;
    default:
      *ws = NAN;
      break;
    }
  return 0.31 + 0.7 * (double)b / (double)(a + 1);
}

static void test_set_errors(void **state) {
  (void)state;
  dnn_error e;
  dnn_mb_set *s = (dnn_mb_set *)&e; /* overwritten with NULL on error */
  table tb;
  table_random(&tb, 6, 3, 17);
  dnn_mb_costs c = costs_of(&tb);
  c.batch = 0;
  assert_int_equal(dnn_mb_set_build(&c, DNN_MB_POLICY_ALL, 1, false, &s, &e),
                   DNN_EINVAL);
  assert_null(s);
  assert_contains(e.msg, "needs a batch and an algorithm (batch 0, 3 "
                         "algorithms)");
  c = costs_of(&tb);
  c.n_algos = 0;
  assert_int_equal(dnn_mb_set_build(&c, DNN_MB_POLICY_ALL, 1, false, &s, &e),
                   DNN_EINVAL);
  c = costs_of(&tb);
  assert_int_equal(dnn_mb_set_build(&c, DNN_MB_POLICY_ALL, NAN, true, &s, &e),
                   DNN_EINVAL);
  assert_contains(e.msg, "workspace limit nan bytes must be a number >= 0");
  assert_int_equal(dnn_mb_set_build(&c, DNN_MB_POLICY_ALL, -3.5, true, &s, &e),
                   DNN_EINVAL);
  const char *want[] = {"cost of micro-batch 3 with algorithm 1 is nan s",
                        "cost of micro-batch 3 with algorithm 1 is -0.5 s",
                        "workspace of micro-batch 3 with algorithm 1 is -1 "
                        "bytes",
                        "workspace of micro-batch 3 with algorithm 1 is nan"};
  for (int how = 0; how < 4; how++) {
    dnn_mb_costs bc = {6, 2, bad_cost, &how};
    assert_int_equal(
        dnn_mb_set_build(&bc, DNN_MB_POLICY_ALL, 100, how % 2, &s, &e),
        DNN_EINVAL);
    assert_contains(e.msg, want[how]);
  }
  /* Nothing fits: every algorithm needs workspace. */
  for (size_t b = 1; b <= 6; b++)
    tb.ws[b][0] = 1.5;
  assert_int_equal(
      dnn_mb_set_build(&c, DNN_MB_POLICY_POWER_OF_TWO, 1.0, true, &s, &e),
      DNN_ENOFIT);
  assert_contains(e.msg, "no division of 6 samples (policy powerOfTwo) has a "
                         "workspace within 1 bytes");
  /* Nothing runs at all. */
  for (size_t b = 1; b <= 6; b++)
    for (size_t a = 0; a < 3; a++)
      tb.t[b][a] = INFINITY;
  assert_int_equal(dnn_mb_set_build(&c, DNN_MB_POLICY_ALL, 1e9, false, &s, &e),
                   DNN_ENOFIT);
}

static void test_ilp_errors(void **state) {
  (void)state;
  dnn_error e;
  size_t choice[2];
  table tb[2];
  dnn_mb_set *sets[2];
  for (size_t k = 0; k < 2; k++) {
    table_random(&tb[k], 5, 3, 41 + k);
    for (size_t b = 1; b <= 5; b++)
      tb[k].ws[b][0] = (double)(2 + k); /* none without workspace */
    sets[k] = build(&tb[k], DNN_MB_POLICY_ALL, 1e9, true);
  }
  const dnn_mb_set *const *cs = (const dnn_mb_set *const *)sets;
  assert_int_equal(dnn_mb_ilp_solve(cs, 0, 10, 0, 0, choice, &e), DNN_EINVAL);
  assert_contains(e.msg, "needs at least one kernel");
  assert_int_equal(dnn_mb_ilp_solve(cs, 2, -1, 0, 0, choice, &e), DNN_EINVAL);
  assert_contains(e.msg, "workspace limit -1 bytes");
  assert_int_equal(dnn_mb_ilp_solve(cs, 2, 10, 1.0, 0, choice, &e), DNN_EINVAL);
  assert_contains(e.msg, "relative optimality gap 1 must be in [0, 1)");
  assert_int_equal(dnn_mb_ilp_solve(cs, 2, 10, NAN, 0, choice, &e), DNN_EINVAL);
  assert_int_equal(dnn_mb_ilp_solve(cs, 2, 4, 0, 0, choice, &e), DNN_ENOFIT);
  assert_contains(e.msg, "smallest workspaces of the 2 kernels add up to 5 "
                         "bytes, over the limit of 4 bytes");
  /* Exactly the smallest sum is feasible. */
  double ws;
  ilp(sets, 2, 5, 0, &ws);
  assert_true(ws == 5);
  for (size_t k = 0; k < 2; k++)
    dnn_mb_set_free(sets[k]);
}

typedef struct set_args {
  table *tb;
  int pareto;
} set_args;

/* dnn_mb_set_build of the allocation-failure sweep. */
static dnn_status set_build(void *ud, void **out, dnn_error *err) {
  const set_args *a = ud;
  dnn_mb_costs c = costs_of(a->tb);
  dnn_mb_set *s = NULL;
  dnn_status rc =
      dnn_mb_set_build(&c, DNN_MB_POLICY_ALL, 30.5, a->pareto, &s, err);
  *out = s;
  return rc;
}

static void set_free(void *s) {
  dnn_mb_set_free(s);
}

static void test_alloc_failures(void **state) {
  (void)state;
  table tb[3];
  for (size_t k = 0; k < 3; k++)
    table_random(&tb[k], 9, 4, 77 + k);
  for (int par = 0; par <= 1; par++) {
    set_args a = {&tb[0], par};
    long fail_at = test_alloc_sweep(set_build, set_free, &a, NULL, LONG_MAX);
    assert_true(fail_at > 5);
  }
  /* The programme's own arrays (GLPK's allocations bypass the hook). */
  dnn_mb_set *sets[3];
  for (size_t k = 0; k < 3; k++)
    sets[k] = build(&tb[k], DNN_MB_POLICY_ALL, 1e9, true);
  size_t choice[3];
  dnn_error e;
  test_alloc_state st;
  test_alloc_install(&st, 0);
  dnn_status rc = dnn_mb_ilp_solve((const dnn_mb_set *const *)sets, 3, 20.5, 0,
                                   0, choice, &e);
  test_alloc_restore();
  assert_int_equal(rc, DNN_ENOMEM);
  assert_contains(e.msg, "out of memory for the micro-batch programme");
  for (size_t k = 0; k < 3; k++)
    dnn_mb_set_free(sets[k]);
}

/* A time limit too short for branch and cut still returns a choice within
 * the limit (the incumbent, or the smallest workspaces). */
static void test_ilp_time_limit(void **state) {
  (void)state;
  enum { K = 12 };
  table tb[K];
  dnn_mb_set *sets[K];
  double small = 0, fast = 0;
  for (size_t k = 0; k < K; k++) {
    table_random(&tb[k], 12, 4, 1000 + (unsigned)k);
    sets[k] = build(&tb[k], DNN_MB_POLICY_ALL, 1e9, true);
    double lo = INFINITY, hi = 0, t_best = INFINITY;
    for (size_t c = 0; c < dnn_mb_set_count(sets[k]); c++) {
      const dnn_mb_config *cf = dnn_mb_set_get(sets[k], c);
      lo = fmin(lo, cf->workspace_bytes);
      if (cf->time_s < t_best) {
        t_best = cf->time_s;
        hi = cf->workspace_bytes;
      }
    }
    small += lo;
    fast += hi;
  }
  double limit = small + 0.37 * (fast - small);
  for (int r = 0; r < 2; r++) {
    size_t choice[K];
    dnn_error e;
    assert_ok(dnn_mb_ilp_solve((const dnn_mb_set *const *)sets, K, limit, 0,
                               r == 0 ? 1e-9 : 0, choice, &e),
              &e);
    double ws = 0;
    for (size_t k = 0; k < K; k++)
      ws += dnn_mb_set_get(sets[k], choice[k])->workspace_bytes;
    assert_true(ws <= limit);
  }
  for (size_t k = 0; k < K; k++)
    dnn_mb_set_free(sets[k]);
}

/* The callback is called once per allowed size and algorithm. */
static void test_cost_calls(void **state) {
  (void)state;
  table tb;
  table_random(&tb, 12, 3, 5);
  dnn_mb_set *s = build(&tb, DNN_MB_POLICY_POWER_OF_TWO, 50, true);
  assert_int_equal(tb.calls, 5 * 3);
  dnn_mb_set_free(s);
  dnn_mb_set_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sizes),
      cmocka_unit_test(test_hand_computed),
      cmocka_unit_test(test_dp_against_brute_force),
      cmocka_unit_test(test_policies_and_limits),
      cmocka_unit_test(test_ilp_against_brute_force),
      cmocka_unit_test(test_ilp_properties),
      cmocka_unit_test(test_ilp_time_limit),
      cmocka_unit_test(test_main_algo),
      cmocka_unit_test(test_size_parse),
      cmocka_unit_test(test_policy_names),
      cmocka_unit_test(test_set_errors),
      cmocka_unit_test(test_ilp_errors),
      cmocka_unit_test(test_alloc_failures),
      cmocka_unit_test(test_cost_calls),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
