/* Tests of the hybrid d x t x p strategy (tensor.c, stage.c, strat.c):
 * the analytic engine against the event simulator where the closed forms
 * are exact, breakdowns that add up with the tensor group's collectives
 * moved into communication, placement of tensor and data-parallel groups
 * (NICs shared by the data-parallel groups of a node's tensor ranks),
 * cached predictions against uncached ones, the bounded walk of the peak
 * activations against the full one, and allocation behaviour. */
#include "test_fixtures.h"

#include <math.h>
#include <string.h>

#include "dnnsim/comm.h"
#include "dnnsim/hw.h"
#include "dnnsim/scenario.h"
#include "dnnsim/strat.h"
#include "parallelism/internal.h"

typedef test_world world;

/* 4 blocks, h = 1024, 16 heads, s = 256; 2 nodes of 8 A100s. */
static const char *gpt_text =
    "[model]\nname = gpt\nlayers = 4\nhidden = 1024\nheads = 16\n"
    "seq = 256\nvocab = 4096\nbatch = 32\ndtype = bf16\n"
    "[hardware]\nprofile = a100-sxm4-80gb\n"
    "[cluster]\nnodes = 2\ndevices_per_node = 8\nintra_link = nvlink3\n"
    "inter_link = ib-hdr\nnics_per_node = 2\n"
    "[parallelism]\ntensor = 2\n"
    "[training]\noptimizer = adam\n";

static void load(world *w, const char *text, const char *sets) {
  test_world_load(w, text, "hy.ini", NULL, sets, true);
}

static void check_sum(const dnn_prediction *p) {
  const dnn_breakdown *b = &p->breakdown;
  assert_close(test_breakdown_sum(b), p->iteration_s, 1e-9);
  assert_true(b->bubble_s >= -1e-12 * p->iteration_s);
  assert_true(b->comm_exposed_s <= b->comm_s * (1 + 1e-12));
  assert_true(p->scaling_efficiency > 0 && p->scaling_efficiency <= 1);
}

/* ---- Engines ------------------------------------------------------------- */

/* Without a pipeline and without overlap the closed form is exact: the
 * two engines agree to rounding, for tensor splits with and without
 * sequence parallelism and ZeRO. */
static void test_engines_agree_data_tensor(void **state) {
  (void)state;
  static const char *sets[] = {
      "parallelism.overlap=false",
      "parallelism.overlap=false parallelism.sequence_parallel=true",
      "parallelism.overlap=false parallelism.tensor=4 training.zero=1",
      "parallelism.overlap=false parallelism.tensor=8 training.zero=3",
      "parallelism.overlap=true parallelism.tensor=4 training.zero=2",
  };
  for (size_t k = 0; k < DNN_ARRAY_LEN(sets); k++) {
    world w;
    load(&w, gpt_text, sets[k]);
    dnn_prediction a = test_world_predict_on(&w, DNN_ENGINE_ANALYTIC);
    dnn_prediction d = test_world_predict_on(&w, DNN_ENGINE_DES);
    assert_close(a.iteration_s, d.iteration_s, 1e-12);
    assert_close(a.breakdown.comm_exposed_s, d.breakdown.comm_exposed_s, 1e-9);
    assert_close(a.breakdown.forward_s, d.breakdown.forward_s, 1e-12);
    check_sum(&a);
    check_sum(&d);
    /* The tensor group's collectives are exposed communication. */
    assert_true(a.breakdown.comm_exposed_s > 0);
    test_world_free(&w);
  }
}

/* GPipe's closed form is exact for any stage times and transfers (two
 * flow shops): d x t x p with a pipeline of unequal stages. */
static void test_engines_agree_gpipe(void **state) {
  (void)state;
  world w;
  load(&w, gpt_text,
       "parallelism.pipeline=4 parallelism.microbatches=4 "
       "parallelism.schedule=gpipe parallelism.overlap=false");
  dnn_prediction a = test_world_predict_on(&w, DNN_ENGINE_ANALYTIC);
  dnn_prediction d = test_world_predict_on(&w, DNN_ENGINE_DES);
  assert_int_equal(a.data, 2);
  assert_close(a.iteration_s, d.iteration_s, 1e-12);
  check_sum(&a);
  check_sum(&d);
  test_world_free(&w);
  /* 1F1B is exact without transfers: compare the engines on the stage
   * model with free transfers. */
  load(&w, gpt_text,
       "cluster.nodes=1 cluster.devices_per_node=4 parallelism.pipeline=2 "
       "parallelism.microbatches=8 parallelism.tensor=2");
  dnn_strat_input in = test_world_input(&w);
  dnn__stage_model sm;
  dnn_error e;
  assert_ok(dnn__strat_find(&w.scn)->build(&in, NULL, NULL, &sm, &e), &e);
  for (size_t s = 0; s < sm.V; s++)
    sm.stages[s].send_fwd.bytes = sm.stages[s].send_bwd.bytes = 0;
  dnn__engine_result ra, rd;
  assert_ok(dnn__analytic_run(&sm, &ra, &e), &e);
  assert_ok(dnn__des_run(&sm, &rd, &e), &e);
  assert_close(ra.iteration_s, rd.iteration_s, 1e-12);
  dnn__stage_model_release(&sm);
  test_world_free(&w);
}

/* Moving the collectives out of forward and backward keeps the compute
 * parts equal to the compute alone. */
static void test_breakdown_moves_tensor_comm(void **state) {
  (void)state;
  world w;
  load(&w, gpt_text,
       "parallelism.overlap=false parallelism.tensor=4 "
       "training.recompute=full");
  dnn_strat_input in = test_world_input(&w);
  dnn__stage_model sm;
  dnn_error e;
  assert_ok(dnn__strat_find(&w.scn)->build(&in, NULL, NULL, &sm, &e), &e);
  double m = dnn__d(sm.m);
  double fwd = m * (sm.stages[0].fwd_s - sm.stages[0].comm_fwd_s);
  double bwd = m * (sm.stages[0].bwd_s - sm.stages[0].comm_bwd_s);
  double tp = m * (sm.stages[0].comm_fwd_s * 2 + sm.stages[0].comm_bwd_s);
  assert_true(tp > 0);
  dnn__stage_model_release(&sm);
  dnn_prediction a = test_world_predict_on(&w, DNN_ENGINE_ANALYTIC);
  assert_close(a.breakdown.forward_s, fwd, 1e-12);
  assert_close(a.breakdown.recompute_s, fwd, 1e-12);
  assert_close(a.breakdown.backward_s, bwd, 1e-12);
  /* All of it exposed, plus the data-parallel allreduce. */
  assert_true(a.breakdown.comm_exposed_s >= tp * (1 - 1e-12));
  check_sum(&a);
  test_world_free(&w);
}

/* ---- Placement ----------------------------------------------------------- */

static void test_groups_and_nics(void **state) {
  (void)state;
  world w;
  load(&w, gpt_text, "parallelism.tensor=4");
  dnn_strat_input in = test_world_input(&w);
  dnn__stage_model sm;
  dnn_error e;
  assert_ok(dnn__strat_find(&w.scn)->build(&in, NULL, NULL, &sm, &e), &e);
  /* The tensor group: 4 consecutive devices, inside a node (NVLink). */
  assert_int_equal(sm.tp_topo.ranks, 4);
  assert_int_equal(sm.tp_topo.ranks_per_node, 4);
  /* Each data-parallel group (d = 4, stride 4) has 2 members per node and
   * shares the node's NICs with the other tensor rank's... all 4 groups
   * cross at once: a quarter of the NICs each. */
  assert_int_equal(sm.d, 4);
  dnn_comm_topo alone = dnn_comm_topo_from_cluster(&w.cluster, 4, 4, 0);
  assert_int_equal(sm.dp_topo.ranks_per_node, 2);
  assert_close(sm.dp_topo.inter.beta_s_per_byte,
               4 * alone.inter.beta_s_per_byte, 1e-12);
  assert_close(sm.dp_topo.intra.beta_s_per_byte, alone.intra.beta_s_per_byte,
               1e-12);
  dnn__stage_model_release(&sm);
  test_world_free(&w);
  /* Without tensor parallelism nothing is shared. */
  load(&w, gpt_text, "parallelism.tensor=1");
  in = test_world_input(&w);
  assert_ok(dnn__strat_find(&w.scn)->build(&in, NULL, NULL, &sm, &e), &e);
  alone = dnn_comm_topo_from_cluster(&w.cluster, 16, 1, 0);
  assert_close(sm.dp_topo.inter.beta_s_per_byte, alone.inter.beta_s_per_byte,
               1e-12);
  dnn__stage_model_release(&sm);
  test_world_free(&w);
}

/* Shared NICs make the same allreduce slower than a lone group's. */
static void test_more_groups_slower_allreduce(void **state) {
  (void)state;
  world w;
  load(&w, gpt_text, "parallelism.tensor=8 parallelism.overlap=false");
  dnn_strat_input in = test_world_input(&w);
  dnn__stage_model sm;
  dnn_error e;
  assert_ok(dnn__strat_find(&w.scn)->build(&in, NULL, NULL, &sm, &e), &e);
  double shared = dnn__stage_allreduce_time(&sm, 3.719e8, NULL);
  dnn_comm_topo lone = sm.dp_topo;
  lone.inter.beta_s_per_byte /= 8;
  dnn_comm_cost c;
  assert_ok(dnn_comm_time(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_AUTO, 3.719e8,
                          &lone, &c, &e),
            &e);
  assert_true(shared > c.time_s);
  dnn__stage_model_release(&sm);
  test_world_free(&w);
}

/* ---- Cache --------------------------------------------------------------- */

static void test_cached_equals_uncached(void **state) {
  (void)state;
  static const char *sets[] = {
      "parallelism.tensor=1",
      "parallelism.tensor=2 parallelism.pipeline=2 parallelism.microbatches=4",
      "parallelism.tensor=4 parallelism.sequence_parallel=true "
      "training.recompute=selective",
      "parallelism.tensor=2 parallelism.pipeline=4 parallelism.microbatches=8 "
      "parallelism.schedule=interleaved parallelism.virtual_stages=2 "
      "training.zero=1",
      "parallelism.tensor=8 training.zero=3 training.recompute=full",
      "parallelism.tensor=2 training.zero=2 parallelism.overlap=true",
  };
  dnn_strat_cache *c;
  dnn_error e;
  assert_ok(dnn_strat_cache_alloc(&c, &e), &e);
  for (int round = 0; round < 2; round++)
    for (size_t k = 0; k < DNN_ARRAY_LEN(sets); k++) {
      world w;
      load(&w, gpt_text, sets[k]);
      for (int eng = DNN_ENGINE_ANALYTIC; eng <= DNN_ENGINE_DES; eng++) {
        w.scn.engine = (dnn_engine)eng;
        dnn_strat_input in = test_world_input(&w);
        dnn_prediction a, b;
        assert_ok(dnn_strat_predict(&in, &a, &e), &e);
        assert_ok(dnn_strat_predict_cached(&in, c, &b, &e), &e);
        assert_close(a.iteration_s, b.iteration_s, 1e-12);
        assert_close(a.memory.total_bytes, b.memory.total_bytes, 1e-12);
        assert_close(a.breakdown.comm_exposed_s, b.breakdown.comm_exposed_s,
                     1e-9);
        assert_true(fabs(a.breakdown.bubble_s - b.breakdown.bubble_s) <=
                    1e-9 * a.iteration_s);
        assert_close(a.flops_per_device_per_s, b.flops_per_device_per_s, 1e-12);
        assert_close(a.scaling_efficiency, b.scaling_efficiency, 1e-12);
        assert_int_equal(a.allreduce, b.allreduce);
      }
      /* The cache forgets networks it must not confuse: clear it before
       * the next world's network (it may reuse the freed address). */
      dnn_strat_cache_clear(c);
      test_world_free(&w);
    }
  size_t misses, hits;
  dnn_strat_cache_stats(c, &misses, &hits);
  assert_true(misses > 0 && hits > 0);
  dnn_strat_cache_free(c);
  dnn_strat_cache_free(NULL);
  dnn_strat_cache_clear(NULL);
}

/* Warm, a cached prediction never allocates, pipelines included. */
static void test_cached_does_not_allocate(void **state) {
  (void)state;
  world w;
  load(&w, gpt_text,
       "parallelism.tensor=2 parallelism.pipeline=4 parallelism.microbatches=8 "
       "simulation.engine=analytic");
  dnn_strat_input in = test_world_input(&w);
  dnn_strat_cache *c;
  dnn_error e;
  dnn_prediction p, q;
  assert_ok(dnn_strat_cache_alloc(&c, &e), &e);
  assert_ok(dnn_strat_predict_cached(&in, c, &p, &e), &e);
  test_alloc_state st;
  test_alloc_install(&st, 0);
  dnn_status rc = dnn_strat_predict_cached(&in, c, &q, &e);
  long n = st.count;
  test_alloc_restore();
  assert_int_equal(rc, DNN_OK);
  assert_int_equal(n, 0);
  assert_close(p.iteration_s, q.iteration_s, 0);
  /* A cold cache fails cleanly when memory runs out. */
  dnn_strat_cache_clear(c);
  for (long fail_at = 0;; fail_at++) {
    test_alloc_install(&st, fail_at);
    rc = dnn_strat_predict_cached(&in, c, &q, &e);
    test_alloc_restore();
    if (rc == DNN_OK)
      break;
    assert_int_equal(rc, DNN_ENOMEM);
    assert_contains(e.msg, "out of memory");
  }
  assert_close(p.iteration_s, q.iteration_s, 0);
  dnn_strat_cache_free(c);
  /* And so does the uncached path of a tensor split (its own table). */
  for (long fail_at = 0;; fail_at++) {
    test_alloc_install(&st, fail_at);
    rc = dnn_strat_predict(&in, &q, &e);
    test_alloc_restore();
    if (rc == DNN_OK)
      break;
    assert_int_equal(rc, DNN_ENOMEM);
  }
  test_world_free(&w);
}

/* ---- Activations --------------------------------------------------------- */

/* The full walk of a rank's schedule, as schedule.c did before bounding
 * it by one steady period. */
static double full_walk(const dnn__stage_model *sm, size_t r) {
  double live = 0, peak = 0;
  for (size_t k = 0; k < dnn__sched_ops(sm); k++) {
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

static void test_peak_walk_bounded(void **state) {
  (void)state;
  static const char *sets[] = {
      "parallelism.pipeline=4 parallelism.microbatches=64 "
      "parallelism.schedule=1f1b model.batch=256",
      "parallelism.pipeline=4 parallelism.microbatches=32 "
      "parallelism.schedule=interleaved parallelism.virtual_stages=3 "
      "model.layers=12 training.recompute=selective model.batch=64",
      "parallelism.pipeline=2 parallelism.microbatches=16 model.batch=128 "
      "parallelism.schedule=interleaved parallelism.virtual_stages=4 "
      "model.layers=8 training.recompute=full",
      "parallelism.pipeline=8 parallelism.microbatches=2 "
      "parallelism.tensor=1 parallelism.schedule=1f1b model.layers=8",
  };
  for (size_t k = 0; k < DNN_ARRAY_LEN(sets); k++) {
    world w;
    load(&w, gpt_text, sets[k]);
    dnn_strat_input in = test_world_input(&w);
    dnn__stage_model sm;
    dnn_error e;
    assert_ok(dnn__strat_find(&w.scn)->build(&in, NULL, NULL, &sm, &e), &e);
    for (size_t r = 0; r < sm.p; r++)
      assert_close(dnn__sched_peak_activations(&sm, r), full_walk(&sm, r),
                   1e-12);
    dnn__stage_model_release(&sm);
    test_world_free(&w);
  }
}

/* A bigger tensor group divides weights and activations: memory per
 * device falls with t (the embedding and layer norms stay whole). */
static void test_memory_falls_with_tensor(void **state) {
  (void)state;
  double prev = INFINITY;
  for (size_t t = 1; t <= 8; t *= 2) {
    world w;
    char sets[64];
    snprintf(sets, sizeof sets, "parallelism.tensor=%zu", t);
    load(&w, gpt_text, sets);
    dnn_prediction p = test_world_predict_on(&w, DNN_ENGINE_ANALYTIC);
    /* Per sample: the local batch grows as d = 16 / t shrinks. */
    double state_b = p.memory.weights_bytes +
                     p.memory.activations_bytes / dnn__d(p.local_batch);
    assert_true(state_b < prev);
    prev = state_b;
    assert_close(p.memory.headroom_bytes,
                 p.memory.capacity_bytes - p.memory.total_bytes, 1e-12);
    test_world_free(&w);
  }
}

/* Full recompute of a transformer checkpoints each block: a stage keeps
 * the block inputs (the cut after the residual add before each attention
 * block) and its token ids, and holds one segment's activations while its
 * backward runs. */
static void test_full_recompute_checkpoints(void **state) {
  (void)state;
  world w;
  load(&w, gpt_text, "parallelism.tensor=2 training.recompute=full");
  dnn_strat_input in = test_world_input(&w);
  dnn__stage_model sm;
  dnn_error e;
  assert_ok(dnn__strat_find(&w.scn)->build(&in, NULL, NULL, &sm, &e), &e);
  double s = 256, b = dnn__d(sm.mbs), h = 1024;
  /* embed.add and the add2 of blocks 0-2: four s b h fp16 tensors, whole
   * on each rank (replicated); the token ids as 4-byte integers. */
  assert_close(sm.one.act_kept_bytes, 4 * s * b * h * 2 + s * b * 4, 1e-12);
  /* The largest segment: block 3 with ln_f, the LM head and the loss. */
  dnn__layer_tab tab;
  assert_ok(dnn__layer_tab_build(&in, NULL, sm.mbs, 2, &tab, &e), &e);
  size_t add2;
  assert_ok(dnn_net_find(w.net, "h.2.add2", &add2), &e);
  double last = 0;
  for (size_t i = add2 + 1; i < tab.layers; i++)
    last += tab.row[i].act_bytes;
  assert_true(tab.n_ckpt == 4);
  assert_int_equal(tab.ckpt[3], add2 + 1);
  assert_close(sm.one.act_extra_bytes, last, 1e-12);
  dnn__layer_tab_release(&tab);
  dnn__stage_model_release(&sm);
  test_world_free(&w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_engines_agree_data_tensor),
      cmocka_unit_test(test_engines_agree_gpipe),
      cmocka_unit_test(test_breakdown_moves_tensor_comm),
      cmocka_unit_test(test_groups_and_nics),
      cmocka_unit_test(test_more_groups_slower_allreduce),
      cmocka_unit_test(test_cached_equals_uncached),
      cmocka_unit_test(test_cached_does_not_allocate),
      cmocka_unit_test(test_peak_walk_bounded),
      cmocka_unit_test(test_memory_falls_with_tensor),
      cmocka_unit_test(test_full_recompute_checkpoints),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
