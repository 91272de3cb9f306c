/* Tests of the pipeline strategy (pipeline.c, stage.c, schedule.c,
 * taskgraph.c): bubbles against the closed forms for every schedule, the
 * two engines against each other, peak activation memory against hand
 * counts, recompute, breakdown sums, d x p with overlap, placement of
 * transfers, partitions, jitter, re-timing, traces, the error paths and
 * allocation-failure injection.
 *
 * The exact tests use a chain of identical fc layers whose times come from
 * a measured kernel table (high-entropy values), so that every stage has
 * exactly the same forward and backward time. */
#include "test_fixtures.h"

#include <math.h>
#include <string.h>

#include "dnnsim/hw.h"
#include "dnnsim/scenario.h"
#include "dnnsim/sim.h"
#include "dnnsim/strat.h"
#include "parallelism/internal.h"

/* Per micro-batch kernel times of the chain's layers. */
#define T_FWD 3.719e-4
#define T_BWD_DATA 2.113e-4
#define T_BWD_W 4.071e-4
#define WIDTH 2048
#define LAYERS 16 /* fc layers after the input */

typedef test_world world;

static const char *base =
    "[model]\nname = resnet18\nbatch = 64\n"
    "[hardware]\nprofile = v100-sxm2\n"
    "[cluster]\nnodes = 1\ndevices_per_node = 4\nintra_link = nvlink2\n"
    "[parallelism]\npipeline = 4\nmicrobatches = 8\n"
    /* The chain's first stage has fewer parameters (fc0 reads 1000
     * features): a separate accumulation pass would make its backward
     * shorter than the others' and the closed forms need equal stages. The
     * separate pass is tested on its own below. */
    "[training]\ngrad_accumulation = fused\n";

static void load_scn(world *w, const char *text, const char *sets) {
  test_world_load(w, text, "pipe.ini", NULL, sets, false);
}

/* input(1000) -> fc0 (1000 -> W) -> fc1 .. fc15 (W -> W). fc0 has no
 * input gradient, so its weight gradient is timed as the others' whole
 * backward: every fc layer costs T_FWD forward and T_BWD_DATA + T_BWD_W
 * backward per micro-batch. */
static void chain_world(world *w, const char *sets) {
  load_scn(w, base, sets);
  w->net = test_fc_chain(LAYERS, WIDTH);
  dnn_error e;
  size_t d = dnn_scn_data_degree(&w->scn);
  size_t mbs = w->scn.model.batch / d / w->scn.parallelism.microbatches;
  char sig0[256], sig1[256];
  dnn_layer_signature(w->net, 1, sig0, sizeof sig0);
  dnn_layer_signature(w->net, 2, sig1, sizeof sig1);
  dnn_hw_kernel_row rows[] = {
      {sig0, DNN_PASS_FWD, DNN_CONV_ALGO_COUNT, w->scn.model.dtype, mbs, T_FWD,
       0},
      {sig0, DNN_PASS_BWD_WEIGHTS, DNN_CONV_ALGO_COUNT, w->scn.model.dtype, mbs,
       T_BWD_DATA + T_BWD_W, 0},
      {sig1, DNN_PASS_FWD, DNN_CONV_ALGO_COUNT, w->scn.model.dtype, mbs, T_FWD,
       0},
      {sig1, DNN_PASS_BWD_DATA, DNN_CONV_ALGO_COUNT, w->scn.model.dtype, mbs,
       T_BWD_DATA, 0},
      {sig1, DNN_PASS_BWD_WEIGHTS, DNN_CONV_ALGO_COUNT, w->scn.model.dtype, mbs,
       T_BWD_W, 0},
  };
  for (size_t i = 0; i < DNN_ARRAY_LEN(rows); i++)
    assert_ok(dnn_hw_kernel_add(w->hw, &rows[i], &e), &e);
}

/* A zoo network at the scenario's settings. */
static void zoo_world(world *w, const char *text, const char *sets) {
  load_scn(w, text, sets);
  dnn_error e;
  assert_ok(dnn_scn_build_net(&w->scn, 0, &w->net, &e), &e);
}

static void check_sum(const dnn_prediction *p) {
  const dnn_breakdown *b = &p->breakdown;
  assert_close(test_breakdown_sum(b), p->iteration_s, 1e-12);
  assert_true(b->bubble_s >= -1e-15 * p->iteration_s);
  assert_true(b->comm_exposed_s >= -1e-15 * p->iteration_s);
  assert_true(b->comm_exposed_s <= b->comm_s * (1 + 1e-12));
  assert_true(p->scaling_efficiency > 0 && p->scaling_efficiency <= 1);
}

/* Stage model with free transfers, for the closed forms. */
static void free_transfers(dnn__stage_model *sm) {
  for (size_t s = 0; s < sm->V; s++) {
    sm->stages[s].send_fwd.bytes = 0;
    sm->stages[s].send_bwd.bytes = 0;
  }
}

static void engines(world *w, dnn__stage_model *sm, dnn__engine_result *a,
                    dnn__engine_result *d) {
  dnn_error e;
  dnn_strat_input in = test_world_input(w);
  assert_ok(dnn__strat_find(&w->scn)->build(&in, NULL, NULL, sm, &e), &e);
  free_transfers(sm);
  assert_ok(dnn__analytic_run(sm, a, &e), &e);
  assert_ok(dnn__des_run(sm, d, &e), &e);
}

/* ---- Bubbles against the closed forms -------------------------------- */

static void check_closed_form(const char *sets, size_t p, size_t m, size_t v,
                              bool interleaved) {
  world w;
  chain_world(&w, sets);
  dnn__stage_model sm;
  dnn__engine_result a, d;
  engines(&w, &sm, &a, &d);
  assert_int_equal(sm.V, p * v);
  for (size_t s = 0; s < sm.V; s++)
    assert_int_equal(sm.stages[s].count,
                     s == 0 ? LAYERS / sm.V + 1 : LAYERS / sm.V);
  /* Per device, per micro-batch. */
  double f = T_FWD * LAYERS / dnn__d(p);
  double b = (T_BWD_DATA + T_BWD_W) * LAYERS / dnn__d(p);
  double bubble = interleaved ? dnn__d(p - 1) * (f + b) / dnn__d(v)
                              : dnn__d(p - 1) * (f + b);
  double ideal = dnn__d(m) * (f + b);
  /* Rank 0 finishes last: its pipeline time plus its optimizer. */
  assert_int_equal(d.critical_rank, 0);
  assert_close(d.breakdown.forward_s, dnn__d(m) * f, 1e-12);
  assert_close(d.breakdown.backward_s, dnn__d(m) * b, 1e-12);
  assert_close(d.breakdown.bubble_s, bubble, 1e-11);
  assert_close(d.breakdown.comm_exposed_s, 0, 0);
  double pipe = d.iteration_s - d.breakdown.optimizer_s;
  assert_close(pipe, ideal + bubble, 1e-12);
  if (interleaved)
    assert_close(d.breakdown.bubble_s / ideal,
                 dnn__d(p - 1) / (dnn__d(v) * dnn__d(m)), 1e-11);
  else
    assert_close(d.breakdown.bubble_s / pipe, dnn__d(p - 1) / dnn__d(m + p - 1),
                 1e-11);
  /* The closed forms agree with the simulation. */
  assert_close(a.iteration_s, d.iteration_s, 1e-12);
  assert_close(a.breakdown.bubble_s, d.breakdown.bubble_s, 1e-11);
  dnn__stage_model_release(&sm);
  test_world_free(&w);
}

static void test_bubble_gpipe(void **state) {
  (void)state;
  check_closed_form("parallelism.schedule=gpipe", 4, 8, 1, false);
  /* Fewer micro-batches than stages. */
  check_closed_form("parallelism.schedule=gpipe parallelism.microbatches=3 "
                    "model.batch=24",
                    4, 3, 1, false);
}

static void test_bubble_1f1b(void **state) {
  (void)state;
  check_closed_form("parallelism.schedule=1f1b", 4, 8, 1, false);
  check_closed_form("parallelism.schedule=1f1b parallelism.microbatches=3 "
                    "model.batch=24",
                    4, 3, 1, false);
  check_closed_form("parallelism.schedule=1f1b parallelism.pipeline=8 "
                    "cluster.devices_per_node=8 parallelism.microbatches=13 "
                    "model.batch=104",
                    8, 13, 1, false);
}

static void test_bubble_interleaved(void **state) {
  (void)state;
  check_closed_form("parallelism.schedule=interleaved "
                    "parallelism.virtual_stages=2",
                    4, 8, 2, true);
  check_closed_form("parallelism.schedule=interleaved "
                    "parallelism.virtual_stages=4 parallelism.microbatches=12 "
                    "model.batch=96",
                    4, 12, 4, true);
  check_closed_form("parallelism.schedule=interleaved "
                    "parallelism.virtual_stages=2 parallelism.pipeline=2 "
                    "cluster.devices_per_node=2 parallelism.microbatches=6 "
                    "model.batch=48",
                    2, 6, 2, true);
}

static void test_gpipe_and_1f1b_same_time(void **state) {
  (void)state;
  world g, o;
  chain_world(&g, "parallelism.schedule=gpipe");
  chain_world(&o, "parallelism.schedule=1f1b");
  dnn__stage_model sg, so;
  dnn__engine_result ag, dg, ao, dd;
  engines(&g, &sg, &ag, &dg);
  engines(&o, &so, &ao, &dd);
  assert_close(dg.iteration_s, dd.iteration_s, 1e-12);
  dnn__stage_model_release(&sg);
  dnn__stage_model_release(&so);
  test_world_free(&g);
  test_world_free(&o);
}

/* ---- Gradient accumulation (docs/models.md §8.7) ---------------------- */

static void test_grad_accumulation(void **state) {
  (void)state;
  world fu, se;
  chain_world(&fu, "parallelism.schedule=gpipe");
  chain_world(&se, "parallelism.schedule=gpipe "
                   "training.grad_accumulation=separate");
  dnn__stage_model sf, ss;
  dnn__engine_result af, df, as, ds;
  engines(&fu, &sf, &af, &df);
  engines(&se, &ss, &as, &ds);
  /* Each stage's later micro-batches add their gradients: read two, write
   * one, in fp32, one pass over the stage's parameters; spread over m. */
  const dnn_hw_params *hp = dnn_hw_get(se.hw);
  for (size_t s = 0; s < ss.V; s++) {
    double pr = ss.stages[s].params;
    double t =
        hp->launch_overhead_s +
        fmax((pr + hp->half_flops[DNN_OP_OPTIMIZER]) /
                 (hp->peak_flops[DNN_DTYPE_FP32] *
                  hp->eff_compute[DNN_OP_OPTIMIZER]),
             12.0 * pr /
                 (hp->mem_bandwidth_Bps * hp->eff_memory[DNN_OP_OPTIMIZER]));
    assert_close(ss.stages[s].bwd_s - sf.stages[s].bwd_s, t * 7.0 / 8.0, 1e-12);
  }
  /* Both engines charge it; the critical rank's backward grows by its own
   * (m - 1) passes. */
  assert_close(as.iteration_s, ds.iteration_s, 1e-12);
  assert_true(ds.iteration_s > df.iteration_s);
  assert_close(ds.breakdown.backward_s - df.breakdown.backward_s,
               8 * (ss.stages[0].bwd_s - sf.stages[0].bwd_s), 1e-9);
  /* One micro-batch accumulates nothing. */
  world one;
  chain_world(&one, "parallelism.microbatches=1 "
                    "training.grad_accumulation=separate");
  dnn__stage_model so;
  dnn__engine_result ao, dd;
  engines(&one, &so, &ao, &dd);
  world onef;
  chain_world(&onef, "parallelism.microbatches=1");
  dnn__stage_model sof;
  dnn__engine_result aof, ddf;
  engines(&onef, &sof, &aof, &ddf);
  assert_close(dd.iteration_s, ddf.iteration_s, 1e-15);
  dnn__stage_model_release(&sf);
  dnn__stage_model_release(&ss);
  dnn__stage_model_release(&so);
  dnn__stage_model_release(&sof);
  test_world_free(&fu);
  test_world_free(&se);
  test_world_free(&one);
  test_world_free(&onef);
}

/* ---- The engines with real transfers -------------------------------- */

static void test_engines_agree_with_transfers(void **state) {
  (void)state;
  /* GPipe's closed form is exact with transfers (flow shop). */
  world w;
  chain_world(&w, "parallelism.schedule=gpipe cluster.intra_bandwidth_GBps="
                  "1.37");
  dnn_prediction a = test_world_predict_on(&w, DNN_ENGINE_ANALYTIC);
  dnn_prediction d = test_world_predict_on(&w, DNN_ENGINE_DES);
  assert_int_equal(a.engine, DNN_ENGINE_ANALYTIC);
  assert_int_equal(d.engine, DNN_ENGINE_DES);
  assert_close(a.iteration_s, d.iteration_s, 1e-12);
  check_sum(&a);
  check_sum(&d);
  /* Transfers cost what they should: 2 (p - 1) hops on the fill and drain
   * path are exposed. */
  double bytes = WIDTH * 4.0 * 8;
  double hop = w.cluster.intra.latency_s + bytes / 1.37e9;
  assert_close(d.breakdown.comm_exposed_s, 6 * hop, 0.03);
  test_world_free(&w);
  /* 1F1B and interleaved: estimates within a few percent. */
  const char *other[] = {
      "parallelism.schedule=1f1b cluster.intra_bandwidth_GBps=1.37",
      "parallelism.schedule=interleaved parallelism.virtual_stages=2 "
      "cluster.intra_bandwidth_GBps=1.37",
  };
  for (size_t i = 0; i < DNN_ARRAY_LEN(other); i++) {
    chain_world(&w, other[i]);
    a = test_world_predict_on(&w, DNN_ENGINE_ANALYTIC);
    d = test_world_predict_on(&w, DNN_ENGINE_DES);
    check_sum(&a);
    check_sum(&d);
    assert_close(a.iteration_s, d.iteration_s, 0.03);
    test_world_free(&w);
  }
}

static void test_no_overlap_engines_agree(void **state) {
  (void)state;
  /* Data parallel without overlap (exact closed form), and d x p. */
  const char *sets[] = {
      "parallelism.pipeline=1 parallelism.overlap=false "
      "parallelism.microbatches=1",
      "parallelism.pipeline=1 parallelism.overlap=false "
      "parallelism.microbatches=4",
      "parallelism.pipeline=2 parallelism.overlap=false "
      "parallelism.schedule=gpipe",
  };
  for (size_t i = 0; i < DNN_ARRAY_LEN(sets); i++) {
    world w;
    chain_world(&w, sets[i]);
    dnn_prediction a = test_world_predict_on(&w, DNN_ENGINE_ANALYTIC);
    dnn_prediction d = test_world_predict_on(&w, DNN_ENGINE_DES);
    assert_close(a.iteration_s, d.iteration_s, 1e-12);
    /* How idle time splits into waiting for transfers and bubble is the
     * engines' own attribution with a pipeline; the sum is the same. */
    assert_close(a.breakdown.comm_exposed_s + a.breakdown.bubble_s,
                 d.breakdown.comm_exposed_s + d.breakdown.bubble_s, 1e-12);
    if (i < 2) {
      assert_close(a.breakdown.comm_exposed_s, d.breakdown.comm_exposed_s,
                   1e-12);
      assert_close(a.breakdown.comm_s, d.breakdown.comm_s, 1e-12);
    }
    assert_true(d.breakdown.comm_exposed_s <= d.breakdown.comm_s);
    assert_true(a.breakdown.comm_exposed_s <= a.breakdown.comm_s);
    assert_true(a.breakdown.comm_exposed_s > 0);
    assert_int_equal(a.allreduce, d.allreduce);
    test_world_free(&w);
  }
}

static void test_overlap_data_pipeline(void **state) {
  (void)state;
  /* d x p with bucketed overlap: never slower than without, never faster
   * than the larger of compute and communication. */
  world w0, w1;
  const char *s = "parallelism.pipeline=2 parallelism.schedule=1f1b "
                  "model.batch=64 parallelism.bucket_MB=3.3";
  char on[256], off[256];
  snprintf(on, sizeof on, "%s parallelism.overlap=true", s);
  snprintf(off, sizeof off, "%s parallelism.overlap=false", s);
  chain_world(&w0, off);
  chain_world(&w1, on);
  dnn_prediction p0 = test_world_predict_on(&w0, DNN_ENGINE_AUTO);
  dnn_prediction p1 = test_world_predict_on(&w1, DNN_ENGINE_AUTO);
  assert_int_equal(p1.engine, DNN_ENGINE_DES);
  assert_int_equal(p1.data, 2);
  assert_int_equal(p1.pipeline, 2);
  assert_int_equal(p1.devices, 4);
  assert_true(p1.iteration_s <= p0.iteration_s * (1 + 1e-12));
  assert_true(p1.breakdown.comm_exposed_s < p0.breakdown.comm_exposed_s);
  double compute = p1.breakdown.forward_s + p1.breakdown.backward_s +
                   p1.breakdown.optimizer_s;
  assert_true(p1.iteration_s >= fmax(compute, p1.breakdown.comm_s));
  check_sum(&p0);
  check_sum(&p1);
  /* The analytic recurrence agrees where it is exact (no transfers). */
  dnn__stage_model sm;
  dnn__engine_result a, d;
  engines(&w1, &sm, &a, &d);
  assert_close(a.iteration_s, d.iteration_s, 1e-12);
  assert_close(a.breakdown.comm_exposed_s, d.breakdown.comm_exposed_s, 1e-9);
  dnn__stage_model_release(&sm);
  test_world_free(&w0);
  test_world_free(&w1);
}

/* ---- Memory ------------------------------------------------------------ */

static void test_peak_activations_by_hand(void **state) {
  (void)state;
  world w;
  chain_world(&w, "parallelism.schedule=gpipe");
  dnn__stage_model sm;
  dnn_error e;
  dnn_strat_input in = test_world_input(&w);
  assert_ok(dnn__strat_pipeline->build(&in, NULL, NULL, &sm, &e), &e);
  /* One fc output of 8 samples; stage 0 also keeps the 1000-wide input,
   * which its first fc reads in backward. */
  double a = 8.0 * WIDTH * 4;
  double in_b = dnn_layer_activation_bytes(w.net, 0, 8, DNN_DTYPE_FP32);
  /* The last layer's output is read by nobody in backward: not kept. */
  double kept[4] = {4 * a + in_b, 4 * a, 4 * a, 3 * a};
  for (size_t s = 0; s < 4; s++) {
    assert_close(sm.stages[s].act_kept_bytes, kept[s], 1e-12);
    /* GPipe: all m micro-batches in flight on every stage. */
    assert_close(dnn__sched_peak_activations(&sm, s), 8 * kept[s], 1e-12);
  }
  /* 1F1B: p - s on stage s. */
  sm.schedule = DNN_SCHEDULE_1F1B;
  for (size_t s = 0; s < 4; s++)
    assert_close(dnn__sched_peak_activations(&sm, s),
                 (4.0 - dnn__d(s)) * kept[s], 1e-12);
  /* Fewer micro-batches than stages: min(p - s, m). */
  sm.m = 2;
  assert_close(dnn__sched_peak_activations(&sm, 0), 2 * kept[0], 1e-12);
  assert_close(dnn__sched_peak_activations(&sm, 3), kept[3], 1e-12);
  dnn__stage_model_release(&sm);
  /* The prediction reports the most loaded device: stage 1, whose four
   * 2048-wide layers outweigh stage 0's narrower first layer. */
  dnn_prediction p = test_world_predict_on(&w, DNN_ENGINE_DES);
  assert_close(p.memory.activations_bytes, 8 * kept[1], 1e-12);
  assert_close(p.memory.weights_bytes, 4.0 * (WIDTH * WIDTH + WIDTH) * 4,
               1e-12);
  test_world_free(&w);
  chain_world(&w, "parallelism.schedule=1f1b");
  p = test_world_predict_on(&w, DNN_ENGINE_DES);
  assert_close(p.memory.activations_bytes, 3 * kept[1], 1e-12);
  test_world_free(&w);
}

static void test_peak_activations_interleaved(void **state) {
  (void)state;
  /* Megatron-LM: rank r keeps min(2 (p - r - 1) + (v - 1) p + 1, m v)
   * chunk activations; rank 0 holds p (1 + (p - 1)/(p v)) micro-batches'
   * worth (Korthikanti et al. 2022). */
  world w;
  chain_world(&w, "parallelism.schedule=interleaved "
                  "parallelism.virtual_stages=2");
  dnn__stage_model sm;
  dnn_error e;
  dnn_strat_input in = test_world_input(&w);
  assert_ok(dnn__strat_pipeline->build(&in, NULL, NULL, &sm, &e), &e);
  /* Make every chunk keep the same bytes (the input and the unread last
   * output aside), so the count is the schedule's alone. */
  double chunk = 2 * 8.0 * WIDTH * 4; /* two fc layers per chunk */
  assert_close(sm.stages[3].act_kept_bytes, chunk, 1e-12);
  for (size_t s = 0; s < sm.V; s++)
    sm.stages[s].act_kept_bytes = chunk;
  for (size_t r = 0; r < 4; r++) {
    double n = fmin(2.0 * dnn__d(3 - r) + 4 + 1, 16);
    assert_close(dnn__sched_peak_activations(&sm, r), n * chunk, 1e-12);
  }
  double stage_mb = 2 * chunk; /* one micro-batch through both chunks */
  assert_close(dnn__sched_peak_activations(&sm, 0),
               4 * (1 + 3.0 / 8) * stage_mb, 1e-12);
  dnn__stage_model_release(&sm);
  test_world_free(&w);
}

static void test_recompute_full(void **state) {
  (void)state;
  world w0, w1;
  chain_world(&w0, "parallelism.schedule=gpipe");
  chain_world(&w1, "parallelism.schedule=gpipe training.recompute=full");
  dnn_prediction p0 = test_world_predict_on(&w0, DNN_ENGINE_DES);
  dnn_prediction p1 = test_world_predict_on(&w1, DNN_ENGINE_DES);
  check_sum(&p1);
  double f = T_FWD * 4;
  assert_close(p1.breakdown.recompute_s, 8 * f, 1e-12);
  assert_close(p0.breakdown.recompute_s, 0, 0);
  /* Balanced GPipe: the recompute lengthens every backward by f. */
  assert_close(p1.iteration_s - p0.iteration_s, (8 + 4 - 1) * f, 1e-9);
  /* Memory: stage inputs of the m micro-batches in flight plus one
   * micro-batch's full activations while it runs backward. On stage 1
   * the input is one fc output. */
  dnn__stage_model sm;
  dnn_error e;
  dnn_strat_input in = test_world_input(&w1);
  assert_ok(dnn__strat_pipeline->build(&in, NULL, NULL, &sm, &e), &e);
  double a = 8.0 * WIDTH * 4;
  assert_close(sm.stages[1].act_kept_bytes, a, 1e-12);
  assert_close(sm.stages[1].act_extra_bytes, 4 * a, 1e-12);
  assert_close(dnn__sched_peak_activations(&sm, 1), 8 * a + 4 * a, 1e-12);
  assert_true(p1.memory.activations_bytes < p0.memory.activations_bytes);
  dnn__stage_model_release(&sm);
  test_world_free(&w0);
  test_world_free(&w1);
}

static void test_recompute_selective_cnn(void **state) {
  (void)state;
  static const char *cnn = "[model]\nname = resnet18\nbatch = 32\nimage = 64\n"
                           "[hardware]\nprofile = v100-sxm2\n"
                           "[cluster]\nnodes = 1\ndevices_per_node = 2\n"
                           "intra_link = nvlink2\n"
                           "[parallelism]\npipeline = 2\nmicrobatches = 4\n";
  world w0, w1;
  zoo_world(&w0, cnn, "");
  zoo_world(&w1, cnn, "training.recompute=selective");
  dnn_prediction p0 = test_world_predict_on(&w0, DNN_ENGINE_DES);
  dnn_prediction p1 = test_world_predict_on(&w1, DNN_ENGINE_DES);
  check_sum(&p1);
  /* By hand: the outputs of batch norms, ReLUs and adds are dropped and
   * their forwards run again before each backward. */
  dnn__stage_model sm;
  dnn_error e;
  dnn_strat_input in = test_world_input(&w1);
  assert_ok(dnn__strat_pipeline->build(&in, NULL, NULL, &sm, &e), &e);
  double ws = w1.scn.hardware.workspace_MB * 1024 * 1024;
  for (size_t s = 0; s < 2; s++) {
    const dnn__stage *st = &sm.stages[s];
    double saved = 0, rc = 0, full = 0, biggest = 0;
    for (size_t i = st->first; i < st->first + st->count; i++) {
      const dnn_layer *l = dnn_net_layer(w1.net, i);
      double act = dnn_layer_activation_bytes(w1.net, i, 8, DNN_DTYPE_FP32);
      full += act;
      if (l->kind == DNN_LAYER_BATCHNORM || l->kind == DNN_LAYER_ACTIVATION ||
          l->kind == DNN_LAYER_ADD) {
        double out = 8.0 * dnn__d(dnn_shape_elems(&l->out)) * 4;
        saved += fmin(act, out);
        biggest = fmax(biggest, fmin(act, out));
        rc += dnn_hw_layer_time(w1.hw, w1.net, i, DNN_PASS_FWD, 8,
                                DNN_DTYPE_FP32, ws, NULL, NULL);
      }
    }
    assert_true(saved > 0.3 * full);
    assert_close(st->act_full_bytes, full, 1e-12);
    assert_close(st->act_kept_bytes, full - saved, 1e-12);
    assert_close(st->act_extra_bytes, biggest, 1e-12);
    assert_close(st->recompute_s, rc, 1e-12);
  }
  /* The critical device recomputes once per micro-batch. */
  assert_true(
      dnn_close(p1.breakdown.recompute_s, 4 * sm.stages[0].recompute_s,
                1e-12) ||
      dnn_close(p1.breakdown.recompute_s, 4 * sm.stages[1].recompute_s, 1e-12));
  assert_true(p1.iteration_s > p0.iteration_s);
  assert_true(p1.memory.activations_bytes < 0.7 * p0.memory.activations_bytes);
  dnn__stage_model_release(&sm);
  test_world_free(&w0);
  test_world_free(&w1);
}

/* ---- Breakdowns, engines, placement ---------------------------------- */

static void test_breakdown_sums(void **state) {
  (void)state;
  static const char *cnn = "[model]\nname = vgg16\nbatch = 64\nimage = 64\n"
                           "[hardware]\nprofile = v100-sxm2\n"
                           "[cluster]\nnodes = 2\ndevices_per_node = 4\n"
                           "intra_link = nvlink2\ninter_link = ib-edr\n"
                           "[parallelism]\npipeline = 4\nmicrobatches = 8\n";
  const char *sets[] = {
      "parallelism.schedule=gpipe",
      "parallelism.schedule=1f1b training.recompute=full",
      "parallelism.schedule=interleaved parallelism.virtual_stages=2",
      "parallelism.schedule=1f1b parallelism.overlap=false",
      "parallelism.pipeline=8 parallelism.microbatches=4 "
      "training.recompute=selective",
  };
  for (size_t i = 0; i < DNN_ARRAY_LEN(sets); i++) {
    world w;
    zoo_world(&w, cnn, sets[i]);
    dnn_prediction a = test_world_predict_on(&w, DNN_ENGINE_ANALYTIC);
    dnn_prediction d = test_world_predict_on(&w, DNN_ENGINE_AUTO);
    assert_int_equal(d.engine, DNN_ENGINE_DES);
    check_sum(&a);
    check_sum(&d);
    assert_true(d.breakdown.bubble_s > 0);
    assert_true(d.breakdown.comm_s > 0);
    /* The closed forms estimate unbalanced stages with transfers (the
     * interleaved one least well: docs/models.md §8). */
    if (i != 2)
      assert_close(a.iteration_s, d.iteration_s, 0.05);
    assert_close(d.throughput_samples_per_s, 64 / d.iteration_s, 1e-12);
    assert_true(d.scaling_efficiency > 0 && d.scaling_efficiency < 1);
    test_world_free(&w);
  }
}

static void test_engine_choice(void **state) {
  (void)state;
  world w;
  chain_world(&w, "parallelism.pipeline=1 parallelism.overlap=false");
  assert_int_equal(test_world_predict_on(&w, DNN_ENGINE_AUTO).engine,
                   DNN_ENGINE_ANALYTIC);
  assert_int_equal(test_world_predict_on(&w, DNN_ENGINE_DES).engine,
                   DNN_ENGINE_DES);
  w.scn.parallelism.overlap = true;
  assert_int_equal(test_world_predict_on(&w, DNN_ENGINE_AUTO).engine,
                   DNN_ENGINE_DES);
  assert_int_equal(test_world_predict_on(&w, DNN_ENGINE_ANALYTIC).engine,
                   DNN_ENGINE_ANALYTIC);
  test_world_free(&w);
  chain_world(&w, "");
  assert_int_equal(test_world_predict_on(&w, DNN_ENGINE_AUTO).engine,
                   DNN_ENGINE_DES);
  test_world_free(&w);
}

static void test_transfer_placement(void **state) {
  (void)state;
  static const char *two =
      "[model]\nname = resnet18\nbatch = 64\n"
      "[hardware]\nprofile = v100-sxm2\n"
      "[cluster]\nnodes = 2\ndevices_per_node = 4\nintra_link = nvlink2\n"
      "inter_link = ib-edr\nnics_per_node = 2\n"
      "[parallelism]\npipeline = 2\nmicrobatches = 8\n";
  world w;
  load_scn(&w, two, "");
  dnn_error e;
  assert_ok(dnn_scn_build_net(&w.scn, 0, &w.net, &e), &e);
  dnn__stage_model sm;
  dnn_strat_input in = test_world_input(&w);
  assert_ok(dnn__strat_pipeline->build(&in, NULL, NULL, &sm, &e), &e);
  /* Stage 0 is devices 0-3 (node 0), stage 1 devices 4-7 (node 1): all
   * four replicas cross at once through node 0's two NICs. */
  const dnn__xfer *x = &sm.stages[0].send_fwd;
  assert_true(x->inter);
  assert_int_equal(x->src_device, 0);
  assert_int_equal(x->dst_device, 4);
  assert_close(x->weight, 4, 0);
  assert_close(x->bw_Bps, 2 * w.cluster.inter.bandwidth_Bps, 1e-15);
  assert_close(x->cap_Bps, w.cluster.intra.bandwidth_Bps, 1e-15);
  assert_close(x->latency_s,
               fmax(w.cluster.intra.latency_s, w.cluster.inter.latency_s),
               1e-15);
  double t = x->latency_s + x->bytes / (2 * w.cluster.inter.bandwidth_Bps / 4);
  assert_close(dnn__xfer_time(x), t, 1e-12);
  /* The boundary tensor: what the last layer of stage 0 hands on, for 8
   * samples, crossing one way and its gradient the other. */
  assert_close(sm.stages[1].send_bwd.bytes, x->bytes, 0);
  assert_true(sm.stages[1].send_bwd.inter);
  /* Every replica simulated (jitter): weight 1 each. */
  dnn__xfer one = dnn__stage_xfer(&sm, 0, 1, 2, x->bytes, true);
  assert_int_equal(one.src_device, 2);
  assert_int_equal(one.dst_device, 6);
  assert_close(one.weight, 1, 0);
  dnn__stage_model_release(&sm);
  /* Inside a node: the sending device's own port. */
  w.scn.cluster.nodes = 1;
  w.scn.cluster.devices_per_node = 8;
  dnn_scn_cluster(&w.scn, &w.cluster, &e);
  in = test_world_input(&w);
  assert_ok(dnn__strat_pipeline->build(&in, NULL, NULL, &sm, &e), &e);
  x = &sm.stages[0].send_fwd;
  assert_false(x->inter);
  assert_close(x->bw_Bps, w.cluster.intra.bandwidth_Bps, 0);
  assert_close(x->latency_s, w.cluster.intra.latency_s, 0);
  dnn__stage_model_release(&sm);
  test_world_free(&w);
}

/* Gradient collectives of groups that cross nodes are transfers on the
 * nodes' NIC links: alone (data parallelism only) they take the closed
 * form, so the engines agree; beside a pipeline's transfers on the same
 * NICs they share the bandwidth and take longer. */
static void test_collectives_share_nics(void **state) {
  (void)state;
  static const char *nics =
      "[model]\nname = resnet18\nbatch = 64\n"
      "[hardware]\nprofile = v100-sxm2\n"
      "[cluster]\nnodes = 4\ndevices_per_node = 2\nintra_link = nvlink2\n"
      "inter_link = ib-edr\nnics_per_node = 1\n"
      "[parallelism]\noverlap = true\nbucket_MB = 3.7\n";
  world w;
  load_scn(&w, nics, "");
  dnn_error e;
  assert_ok(dnn_scn_build_net(&w.scn, 0, &w.net, &e), &e);
  /* 8 replicas on 4 nodes, no pipeline: nothing else uses the NICs. */
  dnn_prediction a = test_world_predict_on(&w, DNN_ENGINE_ANALYTIC);
  dnn_prediction d = test_world_predict_on(&w, DNN_ENGINE_DES);
  assert_true(a.breakdown.comm_s > 0);
  assert_close(d.iteration_s, a.iteration_s, 1e-9);
  assert_close(d.breakdown.comm_exposed_s, a.breakdown.comm_exposed_s, 1e-9);
  test_world_free(&w);
  /* 2 stages x 4 replicas: stage 1 (nodes 2 and 3) allreduces its buckets
   * while its gradients go back to stage 0 through the same NICs. */
  load_scn(&w, nics, "parallelism.pipeline=2 parallelism.microbatches=4");
  assert_ok(dnn_scn_build_net(&w.scn, 0, &w.net, &e), &e);
  dnn_strat_input in = test_world_input(&w);
  dnn_strat_sim *ss = NULL;
  assert_ok(dnn_strat_sim_alloc(&in, &ss, &e), &e);
  dnn_prediction p;
  assert_ok(dnn_strat_sim_run(ss, &p, &e), &e);
  const dnn_sim *sim = dnn_strat_sim_engine(ss);
  double nic = w.cluster.inter.bandwidth_Bps;
  double cap = w.cluster.intra.bandwidth_Bps;
  size_t colls = 0;
  double most = 0;
  for (size_t k = 0; k < dnn_sim_task_count(sim); k++) {
    dnn_sim_task t = dnn_sim_task_get(sim, k);
    if (t.cat != DNN_SIM_COLLECTIVE)
      continue;
    colls++;
    assert_true(t.link != DNN_SIM_NONE && t.bytes > 0);
    double solo = t.bytes / fmin(cap, nic / t.weight), s0, s1;
    dnn_sim_task_times(sim, k, &s0, &s1);
    assert_true(s1 - s0 >= solo * (1 - 1e-12));
    most = fmax(most, (s1 - s0) / solo);
  }
  assert_true(colls >= 2);
  assert_true(most > 1.01); /* at least one shared its NIC */
  dnn_strat_sim_free(ss);
  test_world_free(&w);
}

static void test_transfer_weights(void **state) {
  (void)state;
  /* The replicas crossing with replica 0 through its node's NICs, in
   * closed form, against counting them one by one. */
  const size_t cfg[][4] = {/* d, p, devices per node, tensor */
                           {4, 2, 4, 1},  {3, 4, 8, 1}, {5, 6, 4, 1},
                           {16, 3, 8, 1}, {2, 8, 3, 1}, {6, 2, 4, 2},
                           {7, 5, 16, 3}, {1, 9, 2, 1}};
  for (size_t c = 0; c < DNN_ARRAY_LEN(cfg); c++) {
    dnn__stage_model sm;
    memset(&sm, 0, sizeof sm);
    sm.d = cfg[c][0];
    sm.p = cfg[c][1];
    sm.t = cfg[c][3];
    sm.in.cluster.devices_per_node = cfg[c][2];
    sm.in.cluster.nodes = 1000;
    sm.in.cluster.intra.bandwidth_Bps = 1.3e11;
    sm.in.cluster.inter.bandwidth_Bps = 2.5e10;
    sm.in.cluster.nics_per_node = 2;
    for (size_t r = 0; r < sm.p; r++)
      for (size_t r2 = 0; r2 < sm.p; r2++) {
        if (r == r2)
          continue;
        dnn__xfer x = dnn__stage_xfer(&sm, r, r2, 0, 1e6, false);
        size_t n = dnn__stage_node(&sm, x.src_device), want = 0;
        for (size_t q = 0; q < sm.d; q++) {
          size_t a = dnn__stage_device(&sm, r, q);
          size_t b = dnn__stage_device(&sm, r2, q);
          if (dnn__stage_node(&sm, a) == n && dnn__stage_node(&sm, b) != n)
            want++;
        }
        /* Each replica's tensor ranks send their shares at once (on one
         * node, or a node's worth when the group spans nodes). */
        size_t tr = sm.t < cfg[c][2] ? sm.t : cfg[c][2];
        assert_close(x.weight,
                     x.inter ? dnn__d(want ? want : 1) * dnn__d(tr) : 1, 0);
      }
  }
}

static void test_partition(void **state) {
  (void)state;
  world w;
  chain_world(&w, "parallelism.partition=2,7,5,3");
  dnn__stage_model sm;
  dnn_error e;
  dnn_strat_input in = test_world_input(&w);
  assert_ok(dnn__strat_pipeline->build(&in, NULL, NULL, &sm, &e), &e);
  size_t first[] = {0, 2, 9, 14}, count[] = {2, 7, 5, 3};
  for (size_t s = 0; s < 4; s++) {
    assert_int_equal(sm.stages[s].first, first[s]);
    assert_int_equal(sm.stages[s].count, count[s]);
  }
  assert_close(sm.stages[1].fwd_s, 7 * T_FWD, 1e-12);
  dnn__stage_model_release(&sm);
  test_world_free(&w);
  /* Balanced: no contiguous cut has a smaller bottleneck (brute force
   * over every cut of a real network into 3 stages). */
  static const char *cnn = "[model]\nname = alexnet\nbatch = 32\n"
                           "[hardware]\nprofile = v100-sxm2\n"
                           "[cluster]\nnodes = 1\ndevices_per_node = 3\n"
                           "intra_link = nvlink2\n"
                           "[parallelism]\npipeline = 3\nmicrobatches = 4\n"
                           /* Balancing sees layer times only (§8.7). */
                           "[training]\ngrad_accumulation = fused\n";
  zoo_world(&w, cnn, "");
  in = test_world_input(&w);
  assert_ok(dnn__strat_pipeline->build(&in, NULL, NULL, &sm, &e), &e);
  size_t L = dnn_net_layer_count(w.net);
  double c[64];
  assert_true(L <= 64);
  for (size_t i = 0; i < L; i++) {
    double f, b;
    dnn__stage_layer_time(&sm, i, &f, &b);
    c[i] = f + b;
  }
  double got = 0;
  for (size_t s = 0; s < 3; s++)
    got = fmax(got, sm.stages[s].fwd_s + sm.stages[s].bwd_s);
  double best = INFINITY;
  for (size_t a = 1; a < L; a++)
    for (size_t b = a + 1; b < L; b++) {
      double s0 = 0, s1 = 0, s2 = 0;
      for (size_t i = 0; i < L; i++)
        *(i < a ? &s0 : i < b ? &s1 : &s2) += c[i];
      best = fmin(best, fmax(s0, fmax(s1, s2)));
    }
  assert_close(got, best, 1e-8);
  dnn__stage_model_release(&sm);
  test_world_free(&w);
}

static void test_errors(void **state) {
  (void)state;
  world w;
  dnn_error e;
  dnn_prediction p;
  dnn_strat_input in;
  /* Tensor parallelism's own errors are tested in test_tensor.c. */
  /* Partition counts that do not fit. */
  chain_world(&w, "parallelism.partition=2,7,5");
  in = test_world_input(&w);
  assert_int_equal(dnn_strat_predict(&in, &p, &e), DNN_EINVAL);
  assert_contains(e.msg, "--set parallelism.partition");
  assert_contains(e.msg, "3 counts summing to 14 layers");
  test_world_free(&w);
  chain_world(&w, "parallelism.partition=2,7,5,4");
  in = test_world_input(&w);
  assert_int_equal(dnn_strat_predict(&in, &p, &e), DNN_EINVAL);
  assert_contains(e.msg, "the network 17 layers");
  test_world_free(&w);
  /* More stages than layers. */
  chain_world(&w, "parallelism.pipeline=4 parallelism.schedule=interleaved "
                  "parallelism.virtual_stages=8 parallelism.microbatches=8");
  in = test_world_input(&w);
  assert_int_equal(dnn_strat_predict(&in, &p, &e), DNN_EINVAL);
  assert_contains(e.msg, "32 stages");
  test_world_free(&w);
  /* Interleaving needs m to be a multiple of p. */
  chain_world(&w, "parallelism.schedule=interleaved "
                  "parallelism.virtual_stages=2 parallelism.microbatches=2 "
                  "model.batch=16");
  in = test_world_input(&w);
  assert_int_equal(dnn_strat_predict(&in, &p, &e), DNN_EINVAL);
  assert_contains(e.msg, "--set parallelism.microbatches");
  assert_contains(e.msg, "multiple of the pipeline stages (4)");
  test_world_free(&w);
  /* A graph too large to simulate: forced DES fails naming the key, auto
   * falls back to the closed forms. */
  zoo_world(&w, base,
            "parallelism.microbatches=1000000 model.batch=1000000 "
            "parallelism.pipeline=2 cluster.devices_per_node=2");
  in = test_world_input(&w);
  w.scn.engine = DNN_ENGINE_DES;
  assert_int_equal(dnn_strat_predict(&in, &p, &e), DNN_ERANGE);
  assert_contains(e.msg, "--set parallelism.microbatches");
  assert_contains(e.msg, "use engine = analytic");
  w.scn.engine = DNN_ENGINE_AUTO;
  assert_ok(dnn_strat_predict(&in, &p, &e), &e);
  assert_int_equal(p.engine, DNN_ENGINE_ANALYTIC);
  test_world_free(&w);
  /* Virtual stages without a pipeline. */
  chain_world(&w, "parallelism.pipeline=1 parallelism.schedule=interleaved "
                  "parallelism.virtual_stages=2");
  in = test_world_input(&w);
  assert_int_equal(dnn_strat_predict(&in, &p, &e), DNN_EINVAL);
  assert_contains(e.msg, "need a pipeline");
  test_world_free(&w);
}

/* ---- The simulation object: jitter, re-timing, traces ----------------- */

static char *trace_of(dnn_strat_sim *ss, size_t max_devices) {
  char *buf = NULL;
  size_t len = 0;
  FILE *fp = open_memstream(&buf, &len);
  dnn_sim_trace_params tp = {max_devices};
  dnn_error e;
  assert_ok(dnn_sim_trace_write(dnn_strat_sim_engine(ss), fp, &tp, &e), &e);
  fclose(fp);
  return buf;
}

static void test_jitter(void **state) {
  (void)state;
  world w;
  chain_world(&w, "parallelism.pipeline=2 training.jitter=0.137 "
                  "training.seed=3719");
  dnn_prediction a = test_world_predict_on(&w, DNN_ENGINE_AUTO);
  dnn_prediction b = test_world_predict_on(&w, DNN_ENGINE_AUTO);
  assert_int_equal(a.engine, DNN_ENGINE_DES);
  assert_close(a.iteration_s, b.iteration_s, 0);
  check_sum(&a);
  w.scn.training.seed = 3720;
  dnn_prediction c = test_world_predict_on(&w, DNN_ENGINE_AUTO);
  assert_true(a.iteration_s != c.iteration_s);
  assert_close(a.iteration_s, c.iteration_s, 0.2);
  /* Every replica is simulated. */
  dnn_strat_input in = test_world_input(&w);
  dnn_strat_sim *ss;
  dnn_error e;
  assert_ok(dnn_strat_sim_alloc(&in, &ss, &e), &e);
  assert_int_equal(dnn_sim_device_count(dnn_strat_sim_engine(ss)), 4);
  dnn_strat_sim_free(ss);
  /* The per-device streams do not depend on each other: the log-normal
   * factors have mean 1 and the given spread. */
  dnn__rng r;
  dnn__rng_seed(&r, 3719, 5);
  double s1 = 0, s2 = 0;
  for (int i = 0; i < 20000; i++) {
    double x = dnn__rng_jitter(&r, 0.137);
    s1 += x;
    s2 += x * x;
  }
  double mean = s1 / 20000, sd = sqrt(s2 / 20000 - mean * mean);
  assert_close(mean, 1.0, 0.01);
  assert_close(sd, 0.137, 0.05);
  assert_close(dnn__rng_jitter(&r, 0), 1.0, 0);
  test_world_free(&w);
  /* One device: its whole compute runs at the speed factor its stream
   * draws (the device's coefficient of variation is `jitter`), and the
   * prediction is the mean over the Monte Carlo draws, draw k being the
   * stream's k-th factor. */
  chain_world(&w, "parallelism.pipeline=1 cluster.devices_per_node=1 "
                  "model.batch=8 parallelism.microbatches=1 "
                  "training.jitter=0.291 training.seed=17");
  dnn_prediction j = test_world_predict_on(&w, DNN_ENGINE_DES);
  w.scn.training.jitter = 0;
  dnn_prediction n0 = test_world_predict_on(&w, DNN_ENGINE_DES);
  double f = 0;
  size_t draws = w.scn.mc_draws;
  assert_int_equal(draws, 16); /* [simulation] draws' default */
  for (size_t k = 0; k < draws; k++)
    f += dnn__rng_jitter_at(17, 0, k, 0.291) / dnn__d(draws);
  dnn__rng_seed(&r, 17, 0);
  assert_close(dnn__rng_jitter(&r, 0.291), dnn__rng_jitter_at(17, 0, 0, 0.291),
               0);
  assert_true(fabs(f - 1) > 1e-3);
  assert_int_equal(j.techniques.draws, draws);
  assert_close(j.techniques.nominal_iteration_s, n0.iteration_s, 1e-12);
  assert_close(j.techniques.straggler_factor, f, 1e-12);
  assert_close(j.breakdown.forward_s, f * n0.breakdown.forward_s, 1e-12);
  assert_close(j.breakdown.backward_s, f * n0.breakdown.backward_s, 1e-12);
  assert_close(j.iteration_s, f * n0.iteration_s, 1e-12);
  assert_true(j.scaling_efficiency <= 1);
  test_world_free(&w);
}

static void test_retime(void **state) {
  (void)state;
  world w;
  static const char *cnn = "[model]\nname = resnet18\nbatch = 64\nimage = 64\n"
                           "[hardware]\nprofile = v100-sxm2\n"
                           "[cluster]\nnodes = 2\ndevices_per_node = 4\n"
                           "intra_link = nvlink2\ninter_link = ib-edr\n"
                           "[parallelism]\npipeline = 4\nmicrobatches = 4\n";
  zoo_world(&w, cnn, "");
  dnn_strat_input in = test_world_input(&w);
  dnn_strat_sim *ss;
  dnn_error e;
  assert_ok(dnn_strat_sim_alloc(&in, &ss, &e), &e);
  dnn_prediction p0, p1, fresh;
  assert_ok(dnn_strat_sim_run(ss, &p0, &e), &e);
  assert_close(p0.iteration_s,
               test_world_predict_on(&w, DNN_ENGINE_DES).iteration_s, 0);
  size_t tasks = dnn_sim_task_count(dnn_strat_sim_engine(ss));
  /* A slower network: same structure, new times. */
  w.scn.cluster.inter_bandwidth_GBps = 3.719;
  assert_ok(dnn_scn_cluster(&w.scn, &w.cluster, &e), &e);
  in = test_world_input(&w);
  assert_ok(dnn_strat_sim_retime(ss, &in, &e), &e);
  assert_int_equal(dnn_sim_task_count(dnn_strat_sim_engine(ss)), tasks);
  /* Runs never allocate. */
  test_alloc_state st;
  test_alloc_install(&st, 0);
  dnn_status rc = dnn_strat_sim_run(ss, &p1, &e);
  long n = st.count;
  test_alloc_restore();
  assert_int_equal(rc, DNN_OK);
  assert_int_equal(n, 0);
  assert_true(p1.iteration_s > p0.iteration_s);
  /* The same answer as a graph built for the new scenario. */
  dnn_strat_sim *ss2;
  assert_ok(dnn_strat_sim_alloc(&in, &ss2, &e), &e);
  assert_ok(dnn_strat_sim_run(ss2, &fresh, &e), &e);
  assert_close(p1.iteration_s, fresh.iteration_s, 1e-12);
  assert_close(p1.breakdown.bubble_s, fresh.breakdown.bubble_s, 1e-9);
  dnn_strat_sim_free(ss2);
  /* A bigger batch re-times too (the partition is kept). */
  w.scn.model.batch = 96;
  in = test_world_input(&w);
  assert_ok(dnn_strat_sim_retime(ss, &in, &e), &e);
  assert_ok(dnn_strat_sim_run(ss, &p1, &e), &e);
  assert_int_equal(p1.local_batch, 48);
  assert_true(p1.iteration_s > fresh.iteration_s);
  /* A new structure is refused. */
  w.scn.parallelism.microbatches = 8;
  in = test_world_input(&w);
  assert_int_equal(dnn_strat_sim_retime(ss, &in, &e), DNN_EINVAL);
  assert_contains(e.msg, "re-timing needs the structure");
  dnn_strat_sim_free(ss);
  dnn_strat_sim_free(NULL);
  test_world_free(&w);
}

static void test_trace_pipeline(void **state) {
  (void)state;
  world w;
  chain_world(&w, "parallelism.pipeline=2 parallelism.microbatches=4 "
                  "model.batch=64");
  dnn_strat_input in = test_world_input(&w);
  dnn_strat_sim *ss;
  dnn_error e;
  dnn_prediction p;
  assert_ok(dnn_strat_sim_alloc(&in, &ss, &e), &e);
  assert_ok(dnn_strat_sim_run(ss, &p, &e), &e);
  char *one = trace_of(ss, 0);
  assert_contains(one, "\"args\":{\"name\":\"stage 0, replica 0 (device 0)\"}");
  assert_contains(one, "\"args\":{\"name\":\"stage 1, replica 0 (device 2)\"}");
  assert_contains(one, "\"args\":{\"name\":\"send activations\"}");
  assert_contains(one, "\"args\":{\"name\":\"allreduce\"}");
  assert_contains(one, "{\"name\":\"fc3 fwd\",\"cat\":\"fwd\",\"ph\":\"X\","
                       "\"pid\":0,\"tid\":0,\"ts\":");
  assert_contains(one, "\"name\":\"fc12 bwd\"");
  assert_contains(one, "\"name\":\"send activations\",\"cat\":\"send\"");
  assert_contains(one, "\"name\":\"allreduce\",\"cat\":\"collective\"");
  /* Stage 1's first bucket: fc15 and fc14 (2 x 2049 x 2048 fp32 values)
   * pass 25 MiB; the allreduce shows its bytes. */
  assert_contains(one, "\"layer\":\"fc14\",\"pass\":\"collective\","
                       "\"bytes\":33570816}");
  assert_contains(one, "\"name\":\"optimizer\",\"cat\":\"optimizer\"");
  /* A fresh build of the same scenario writes the same bytes. */
  dnn_strat_sim *ss2;
  assert_ok(dnn_strat_sim_alloc(&in, &ss2, &e), &e);
  assert_ok(dnn_strat_sim_run(ss2, &p, &e), &e);
  char *two = trace_of(ss2, 0);
  assert_string_equal(one, two);
  char *lim = trace_of(ss2, 1);
  assert_null(strstr(lim, "\"pid\":2"));
  free(one);
  free(two);
  free(lim);
  dnn_strat_sim_free(ss);
  dnn_strat_sim_free(ss2);
  test_world_free(&w);
}

static void test_allocation_failures(void **state) {
  (void)state;
  world w;
  chain_world(&w, "parallelism.pipeline=2 parallelism.microbatches=4");
  dnn_strat_input in = test_world_input(&w);
  long fail_at = 0;
  for (;; fail_at++) {
    test_alloc_state st;
    dnn_error e;
    dnn_strat_sim *ss = NULL;
    test_alloc_install(&st, fail_at);
    dnn_status rc = dnn_strat_sim_alloc(&in, &ss, &e);
    test_alloc_restore();
    if (rc == DNN_OK) {
      dnn_prediction p;
      assert_ok(dnn_strat_sim_run(ss, &p, &e), &e);
      dnn_strat_sim_free(ss);
      break;
    }
    assert_int_equal(rc, DNN_ENOMEM);
    assert_contains(e.msg, "out of memory");
    assert_null(ss);
  }
  assert_true(fail_at > 20);
  /* And through dnn_strat_predict (stage table, graph). */
  for (fail_at = 0;; fail_at++) {
    test_alloc_state st;
    dnn_error e;
    dnn_prediction p;
    w.scn.engine = DNN_ENGINE_DES;
    test_alloc_install(&st, fail_at);
    dnn_status rc = dnn_strat_predict(&in, &p, &e);
    test_alloc_restore();
    if (rc == DNN_OK)
      break;
    assert_int_equal(rc, DNN_ENOMEM);
  }
  test_world_free(&w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bubble_gpipe),
      cmocka_unit_test(test_bubble_1f1b),
      cmocka_unit_test(test_bubble_interleaved),
      cmocka_unit_test(test_gpipe_and_1f1b_same_time),
      cmocka_unit_test(test_grad_accumulation),
      cmocka_unit_test(test_engines_agree_with_transfers),
      cmocka_unit_test(test_no_overlap_engines_agree),
      cmocka_unit_test(test_overlap_data_pipeline),
      cmocka_unit_test(test_peak_activations_by_hand),
      cmocka_unit_test(test_peak_activations_interleaved),
      cmocka_unit_test(test_recompute_full),
      cmocka_unit_test(test_recompute_selective_cnn),
      cmocka_unit_test(test_breakdown_sums),
      cmocka_unit_test(test_engine_choice),
      cmocka_unit_test(test_transfer_placement),
      cmocka_unit_test(test_collectives_share_nics),
      cmocka_unit_test(test_transfer_weights),
      cmocka_unit_test(test_partition),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_jitter),
      cmocka_unit_test(test_retime),
      cmocka_unit_test(test_trace_pipeline),
      cmocka_unit_test(test_allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
