/* Tests of dnnsim search (search.c): the known optimum and the whole
 * ranking of a hand-checked case, the same answer as a brute-force loop of
 * independent predictions over an independently enumerated space, the
 * same answer when the space is split into parts and merged, finalists
 * re-timed by the simulator, and the errors. */
#include "test_fixtures.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dnnsim/hw.h"
#include "dnnsim/scenario.h"
#include "dnnsim/search.h"
#include "dnnsim/strat.h"
#include "parallelism/internal.h"

typedef test_world world;

static void load_scn(world *w, const char *text) {
  test_world_load(w, text, "search.ini", NULL, "", false);
}

/* load_scn and the scenario's network. */
static void load_net(world *w, const char *text) {
  test_world_load(w, text, "search.ini", NULL, "", true);
}

/* ---- A hand-checked case ------------------------------------------------- */

/* One device, batch 8, a chain input(1000) -> fc0 .. fc5 (2048 wide) whose
 * kernels were "measured" at 1, 2, 4 and 8 samples: t(b) = a + c b per
 * pass (a launch-like fixed part and a per-sample part). The space is the
 * micro-batch size (1, 2, 4, 8) x recompute (none, full, selective): 12
 * configurations, each T = m (sum of layer times at b = 8 / m, plus the
 * forward again under full recompute) + the optimizer step. */
#define LAYERS 6
static const double A_F = 3.719e-5, C_F = 1.213e-5; /* forward */
static const double A_D = 2.113e-5, C_D = 1.171e-5; /* backward data */
static const double A_W = 4.071e-5, C_W = 1.393e-5; /* backward weights */

static double tf(double b) {
  return A_F + C_F * b;
}
static double td(double b) {
  return A_D + C_D * b;
}
static double tw(double b) {
  return A_W + C_W * b;
}

static void chain_world(world *w) {
  load_scn(w, "[model]\nfile = none.ini\nbatch = 8\n"
              "[hardware]\nprofile = v100-sxm2\n");
  w->net = test_fc_chain(LAYERS, 2048);
  dnn_error e;
  char sig0[256], sig1[256];
  dnn_layer_signature(w->net, 1, sig0, sizeof sig0);
  dnn_layer_signature(w->net, 2, sig1, sizeof sig1);
  for (size_t b = 1; b <= 8; b *= 2) {
    double x = dnn__d(b);
    dnn_hw_kernel_row rows[] = {
        {sig0, DNN_PASS_FWD, DNN_CONV_ALGO_COUNT, DNN_DTYPE_FP32, b, tf(x), 0},
        {sig0, DNN_PASS_BWD_WEIGHTS, DNN_CONV_ALGO_COUNT, DNN_DTYPE_FP32, b,
         td(x) + tw(x), 0},
        {sig1, DNN_PASS_FWD, DNN_CONV_ALGO_COUNT, DNN_DTYPE_FP32, b, tf(x), 0},
        {sig1, DNN_PASS_BWD_DATA, DNN_CONV_ALGO_COUNT, DNN_DTYPE_FP32, b, td(x),
         0},
        {sig1, DNN_PASS_BWD_WEIGHTS, DNN_CONV_ALGO_COUNT, DNN_DTYPE_FP32, b,
         tw(x), 0},
    };
    for (size_t i = 0; i < DNN_ARRAY_LEN(rows); i++)
      assert_ok(dnn_hw_kernel_add(w->hw, &rows[i], &e), &e);
  }
}

typedef struct hand {
  size_t mbs;
  int rc;
  double T;
} hand;

static int cmp_hand(const void *pa, const void *pb) {
  const hand *a = pa, *b = pb;
  if (a->T != b->T)
    return a->T < b->T ? -1 : 1;
  if (a->mbs != b->mbs)
    return a->mbs < b->mbs ? -1 : 1;
  return a->rc - b->rc;
}

static void test_hand_checked_optimum(void **state) {
  (void)state;
  world w;
  chain_world(&w);
  dnn_strat_input in = test_world_input(&w);
  dnn_net_totals tot;
  dnn_net_totals_get(w.net, 1, DNN_DTYPE_FP32, &tot);
  double opt = dnn__strat_optimizer_time(&in, dnn__d(tot.params));
  hand h[12];
  size_t n = 0;
  for (size_t mbs = 1; mbs <= 8; mbs *= 2)
    for (int rc = 0; rc < 3; rc++) {
      double b = dnn__d(mbs), m = 8 / b;
      /* fc layers are not recomputed selectively: selective = none. */
      double per = LAYERS * (tf(b) + td(b) + tw(b)) +
                   (rc == DNN_RECOMPUTE_FULL ? LAYERS * tf(b) : 0);
      /* Gradient accumulation: the m - 1 later micro-batches each add
       * their weight gradients into the sum (docs/models.md §8.7). */
      double acc =
          m * dnn__strat_accumulate_time(&in, dnn__d(tot.params), (size_t)m);
      h[n++] = (hand){mbs, rc, m * per + acc + opt};
    }
  qsort(h, n, sizeof h[0], cmp_hand);
  /* By hand: fewer, larger micro-batches pay the fixed part fewer times,
   * so the whole batch at once without recompute is best (and selective,
   * which recomputes nothing here, ties with it). */
  assert_int_equal(h[0].mbs, 8);
  assert_int_equal(h[0].rc, DNN_RECOMPUTE_NONE);
  assert_int_equal(h[1].mbs, 8);
  assert_int_equal(h[1].rc, DNN_RECOMPUTE_SELECTIVE);

  dnn_search_params sp = dnn_search_default_params();
  sp.top = 12;
  dnn_search_result res[24];
  size_t got;
  dnn_search_stats stats;
  dnn_error e;
  assert_ok(dnn_search_run(&in, &sp, res, 24, &got, &stats, &e), &e);
  assert_int_equal(stats.candidates, 12);
  assert_int_equal(stats.evaluated, 12);
  assert_int_equal(stats.fit, 12);
  assert_int_equal(got, 12);
  for (size_t k = 0; k < 12; k++) {
    assert_int_equal(res[k].data, 1);
    assert_int_equal(res[k].tensor, 1);
    assert_int_equal(res[k].pipeline, 1);
    assert_int_equal(res[k].microbatch_size, h[k].mbs);
    assert_int_equal(res[k].microbatches, 8 / h[k].mbs);
    assert_int_equal((int)res[k].recompute, h[k].rc);
    assert_close(res[k].prediction.iteration_s, h[k].T, 1e-12);
  }
  /* The finalists were simulated: one device, so the simulator agrees. */
  assert_int_equal(stats.simulated, 3);
  assert_int_equal(res[0].prediction.engine, DNN_ENGINE_DES);
  assert_close(res[0].simulated.iteration_s, res[0].analytic_s, 1e-12);
  char label[128];
  assert_string_equal(dnn_search_label(&res[0], label, sizeof label),
                      "d1 t1 p1 mbs8 m1 1f1b v1 recompute=none zero0");
  test_world_free(&w);
}

/* ---- Brute force --------------------------------------------------------- */

static const char *gpt_text =
    "[model]\nname = gpt\nlayers = 4\nhidden = 512\nheads = 8\n"
    "seq = 128\nvocab = 2048\nbatch = 16\ndtype = fp16\n"
    "[hardware]\nprofile = a100-sxm4-80gb\n"
    "[cluster]\nnodes = 1\ndevices_per_node = 4\nintra_link = nvlink3\n"
    "[parallelism]\noverlap = false\n"
    "[training]\noptimizer = adam\n";

typedef struct bf {
  size_t t, p, d, mbs, v;
  int sched, rc;
  size_t zero;
  double T;
} bf;

static int cmp_bf(const void *pa, const void *pb) {
  const bf *a = pa, *b = pb;
  if (a->T != b->T)
    return a->T < b->T ? -1 : 1;
  const size_t x[] = {a->t, a->p,          a->d,   a->mbs, (size_t)a->sched,
                      a->v, (size_t)a->rc, a->zero};
  const size_t y[] = {b->t, b->p,          b->d,   b->mbs, (size_t)b->sched,
                      b->v, (size_t)b->rc, b->zero};
  for (size_t k = 0; k < DNN_ARRAY_LEN(x); k++)
    if (x[k] != y[k])
      return x[k] < y[k] ? -1 : 1;
  return 0;
}

/* Every configuration of 4 devices, enumerated here independently of
 * search.c and predicted one by one without a cache. */
static size_t brute_force(world *w, bf *out, size_t cap) {
  size_t n = 0, N = 4, B = 16, blocks = 4;
  dnn_scenario base = w->scn;
  for (size_t t = 1; t <= 4; t *= 2)
    for (size_t p = 1; p * t <= N; p *= 2) {
      if (blocks % p)
        continue;
      size_t d = N / (t * p), b = B / d;
      for (size_t mbs = 1; mbs <= b; mbs++) {
        if (b % mbs)
          continue;
        size_t m = b / mbs;
        for (int sc = 0; sc < 3; sc++)
          for (size_t v = 1; v <= 4; v++) {
            if (p == 1 && (sc != DNN_SCHEDULE_1F1B || v > 1))
              continue;
            if (sc != DNN_SCHEDULE_INTERLEAVED && v > 1)
              continue;
            if (sc == DNN_SCHEDULE_INTERLEAVED &&
                (v < 2 || m % p || blocks % (p * v)))
              continue;
            for (int rc = 0; rc < 3; rc++)
              for (size_t z = 0; z <= (d > 1 ? (p > 1 ? 1u : 3u) : 0u); z++) {
                w->scn = base;
                w->scn.parallelism.tensor = t;
                w->scn.parallelism.pipeline = p;
                w->scn.parallelism.data = d;
                w->scn.parallelism.microbatches = m;
                w->scn.parallelism.schedule = (dnn_schedule)sc;
                w->scn.parallelism.virtual_stages = v;
                w->scn.training.recompute = (dnn_recompute)rc;
                w->scn.training.zero = z;
                w->scn.engine = DNN_ENGINE_ANALYTIC;
                dnn_strat_input in = test_world_input(w);
                dnn_prediction pr;
                dnn_error e;
                assert_ok(dnn_strat_predict(&in, &pr, &e), &e);
                if (!pr.fits_in_memory)
                  continue;
                assert_true(n < cap);
                out[n++] = (bf){t, p, d, mbs, v, sc, rc, z, pr.iteration_s};
              }
          }
      }
    }
  w->scn = base;
  qsort(out, n, sizeof *out, cmp_bf);
  return n;
}

static void test_brute_force_agrees(void **state) {
  (void)state;
  world w;
  load_net(&w, gpt_text);
  dnn_error e;
  static bf all[4096];
  size_t n = brute_force(&w, all, DNN_ARRAY_LEN(all));
  assert_true(n > 100);
  dnn_strat_input in = test_world_input(&w);
  dnn_search_params sp = dnn_search_default_params();
  sp.top = 20;
  sp.finalists = 0;
  dnn_search_result res[20];
  size_t got;
  dnn_search_stats st;
  assert_ok(dnn_search_run(&in, &sp, res, 20, &got, &st, &e), &e);
  assert_int_equal(st.fit, n);
  assert_int_equal(st.evaluated, st.candidates);
  assert_int_equal(st.rejected, 0);
  assert_int_equal(got, 20);
  for (size_t k = 0; k < got; k++) {
    assert_int_equal(res[k].tensor, all[k].t);
    assert_int_equal(res[k].pipeline, all[k].p);
    assert_int_equal(res[k].data, all[k].d);
    assert_int_equal(res[k].microbatch_size, all[k].mbs);
    assert_int_equal((int)res[k].schedule, all[k].sched);
    assert_int_equal(res[k].virtual_stages, all[k].v);
    assert_int_equal((int)res[k].recompute, all[k].rc);
    assert_int_equal(res[k].zero, all[k].zero);
    assert_close(res[k].prediction.iteration_s, all[k].T, 1e-12);
    assert_int_equal(res[k].prediction.engine, DNN_ENGINE_ANALYTIC);
  }
  test_world_free(&w);
}

/* Split into parts (as MPI ranks would) and merged: the same ranking. */
static void test_parts_merge(void **state) {
  (void)state;
  world w;
  load_net(&w, gpt_text);
  dnn_error e;
  dnn_strat_input in = test_world_input(&w);
  dnn_search_params sp = dnn_search_default_params();
  sp.top = 6;
  sp.finalists = 2;
  sp.devices = 4;
  dnn_search_result one[8], all[3 * 8];
  size_t n1, n = 0;
  assert_ok(dnn_search_run(&in, &sp, one, 8, &n1, NULL, &e), &e);
  size_t k1 = dnn_search_merge(one, n1, sp.top, sp.finalists);
  size_t evaluated = 0, simulated = 0;
  for (size_t part = 0; part < 3; part++) {
    sp.part = part;
    sp.parts = 3;
    dnn_search *s;
    assert_ok(dnn_search_alloc(&in, &sp, &s, &e), &e);
    size_t done, total;
    while (dnn_search_step(s, 7))
      ;
    dnn_search_progress(s, &done, &total);
    assert_int_equal(done, total);
    assert_ok(dnn_search_finish(s, &e), &e);
    assert_ok(dnn_search_finish(s, &e), &e); /* idempotent */
    size_t np;
    const dnn_search_result *r = dnn_search_results(s, &np);
    memcpy(all + n, r, np * sizeof *r);
    n += np;
    dnn_search_stats st = dnn_search_get_stats(s);
    evaluated += st.evaluated;
    simulated += st.simulated;
    dnn_search_free(s);
  }
  size_t k = dnn_search_merge(all, n, sp.top, sp.finalists);
  assert_int_equal(k, k1);
  for (size_t i = 0; i < k; i++) {
    char a[128], b[128];
    assert_string_equal(dnn_search_label(&all[i], a, sizeof a),
                        dnn_search_label(&one[i], b, sizeof b));
    assert_close(all[i].prediction.iteration_s, one[i].prediction.iteration_s,
                 0);
    assert_int_equal(all[i].prediction.engine, one[i].prediction.engine);
  }
  assert_true(simulated >= 2);
  assert_true(evaluated > 100);
  dnn_search_free(NULL);
  test_world_free(&w);
}

/* A search over more devices than the scenario's and the 175B model: every
 * configuration of 4096 devices, in well under a second on one core
 * (here only checked to finish; bench and docs/search.md time it). */
static void test_large_search(void **state) {
  (void)state;
  world w;
  load_scn(&w, "[model]\nname = gpt-175b\nbatch = 1536\ndtype = fp16\n"
               "[hardware]\nprofile = a100-sxm4-80gb\n"
               "[cluster]\nnodes = 1\ndevices_per_node = 8\n"
               "intra_link = nvlink3\ninter_link = ib-hdr\nnics_per_node = 4\n"
               "[parallelism]\noverlap = false\n"
               "[training]\noptimizer = adam\n");
  dnn_error e;
  assert_ok(dnn_scn_build_net(&w.scn, 0, &w.net, &e), &e);
  dnn_strat_input in = test_world_input(&w);
  dnn_search_params sp = dnn_search_default_params();
  sp.devices = 4096;
  sp.top = 5;
  sp.finalists = 0;
  dnn_search_result res[5];
  size_t got;
  dnn_search_stats st;
  assert_ok(dnn_search_run(&in, &sp, res, 5, &got, &st, &e), &e);
  assert_int_equal(got, 5);
  assert_true(st.candidates > 1000);
  /* A 175B model does not fit one device: the best splits it. */
  assert_true(res[0].tensor * res[0].pipeline >= 8);
  for (size_t k = 1; k < got; k++)
    assert_true(res[k].prediction.iteration_s >=
                res[k - 1].prediction.iteration_s);
  assert_true(res[0].prediction.fits_in_memory);
  assert_int_equal(res[0].data * res[0].tensor * res[0].pipeline, 4096);
  test_world_free(&w);
}

static void test_errors(void **state) {
  (void)state;
  world w;
  load_net(&w, gpt_text);
  dnn_error e;
  dnn_strat_input in = test_world_input(&w);
  dnn_search *s = NULL;
  dnn_search_params sp = dnn_search_default_params();
  sp.top = 0;
  assert_int_equal(dnn_search_alloc(&in, &sp, &s, &e), DNN_EINVAL);
  assert_contains(e.msg, "top (0) must be >= 1");
  sp = dnn_search_default_params();
  sp.part = 2;
  sp.parts = 2;
  assert_int_equal(dnn_search_alloc(&in, &sp, &s, &e), DNN_EINVAL);
  sp = dnn_search_default_params();
  sp.devices = 6;
  assert_int_equal(dnn_search_alloc(&in, &sp, &s, &e), DNN_EINVAL);
  assert_contains(e.msg, "6 devices are not whole nodes of 4");
  assert_null(s);
  /* Too many devices for a batch of 16 and 4 blocks: no configuration. */
  sp.devices = 1024;
  assert_int_equal(dnn_search_alloc(&in, &sp, &s, &e), DNN_EINVAL);
  assert_contains(e.msg, "search.ini:8: [model] batch");
  assert_contains(e.msg, "no configuration of 1024 devices");
  /* Allocation failures fail cleanly. */
  sp = dnn_search_default_params();
  for (long fail_at = 0;; fail_at++) {
    test_alloc_state st;
    test_alloc_install(&st, fail_at);
    dnn_status rc = dnn_search_alloc(&in, &sp, &s, &e);
    test_alloc_restore();
    if (rc == DNN_OK)
      break;
    assert_int_equal(rc, DNN_ENOMEM);
    assert_null(s);
  }
  dnn_search_free(s);
  test_world_free(&w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hand_checked_optimum),
      cmocka_unit_test(test_brute_force_agrees),
      cmocka_unit_test(test_parts_merge),
      cmocka_unit_test(test_large_search),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
