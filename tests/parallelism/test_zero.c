/* Tests of ZeRO (zero.c, stage.c): model-state memory of stages 0-3
 * against the paper's own example and against hand counts on a real
 * network, and the communication each stage adds or changes. */
#include "test_fixtures.h"

#include <math.h>
#include <string.h>

#include "dnnsim/comm.h"
#include "dnnsim/hw.h"
#include "dnnsim/scenario.h"
#include "dnnsim/strat.h"
#include "parallelism/internal.h"

#define GB 1e9

/* Rajbhandari et al. (SC'20), Figure 1: Psi = 7.5 B parameters, mixed-
 * precision Adam (K = 12), N_d = 64: 120 GB, 31.4 GB, 16.6 GB, 1.9 GB. */
static void test_paper_example(void **state) {
  (void)state;
  dnn_scenario scn;
  dnn_scn_init(&scn);
  scn.model.dtype = DNN_DTYPE_FP16;
  scn.training.optimizer = DNN_OPTIMIZER_ADAM;
  dnn__stage_model sm;
  memset(&sm, 0, sizeof sm);
  sm.in.scn = &scn;
  sm.d = 64;
  sm.p = sm.v = sm.V = 1;
  sm.stages = &sm.one;
  sm.one.params = 7.5e9;
  const double want[4] = {120 * GB, 31.40625 * GB, 16.640625 * GB, 1.875 * GB};
  for (size_t z = 0; z < 4; z++) {
    sm.zero = z;
    dnn_memory m;
    memset(&m, 0, sizeof m);
    dnn__zero_state_memory(&sm, 0, &m);
    assert_close(m.weights_bytes + m.gradients_bytes + m.optimizer_bytes,
                 want[z], 1e-12);
  }
  /* Without replicas there is nothing to shard. */
  sm.d = 1;
  sm.zero = 3;
  dnn_memory m;
  dnn__zero_state_memory(&sm, 0, &m);
  assert_close(m.weights_bytes + m.gradients_bytes + m.optimizer_bytes,
               120 * GB, 1e-12);
}

typedef test_world world;

static const char *text =
    "[model]\nname = gpt\nlayers = 4\nhidden = 768\nheads = 12\n"
    "seq = 256\nvocab = 5000\nbatch = 64\ndtype = fp16\n"
    "[hardware]\nprofile = a100-sxm4-80gb\n"
    "[cluster]\nnodes = 2\ndevices_per_node = 4\nintra_link = nvlink3\n"
    "inter_link = ib-hdr\n"
    "[parallelism]\noverlap = false\n"
    "[training]\noptimizer = adam\n";

static void load(world *w, size_t zero, size_t tensor) {
  test_world_parse(w, text, "z.ini", NULL, "");
  w->scn.training.zero = zero;
  w->scn.parallelism.tensor = tensor;
  w->scn.engine = DNN_ENGINE_ANALYTIC;
  test_world_ready(w, true);
}

/* Hand counts on a real network: Psi trainable parameters, 2-byte weights
 * and gradients, 12 bytes of Adam state; the largest layer (the token
 * embedding) gathered whole under stage 3. */
static void test_memory_by_hand(void **state) {
  (void)state;
  double psi = 0, largest = 0;
  for (size_t z = 0; z < 4; z++) {
    world w;
    load(&w, z, 1);
    if (z == 0) {
      dnn_net_totals t;
      dnn_net_totals_get(w.net, 1, DNN_DTYPE_FP16, &t);
      psi = dnn__d(t.params);
      for (size_t i = 0; i < dnn_net_layer_count(w.net); i++)
        largest = fmax(largest, dnn__d(dnn_net_layer(w.net, i)->params));
      assert_close(largest, 5000.0 * 768, 0);
    }
    dnn_strat_input in = {&w.scn, w.net, w.hw, w.cluster};
    dnn_prediction p;
    dnn_error e;
    assert_ok(dnn_strat_predict(&in, &p, &e), &e);
    double d = 8;
    double wb = z >= 3 ? 2 * psi / d + 2 * largest : 2 * psi;
    double gb = z >= 2 ? 2 * psi / d : 2 * psi;
    double ob = z >= 1 ? 12 * psi / d : 12 * psi;
    assert_close(p.memory.weights_bytes, wb, 1e-12);
    assert_close(p.memory.gradients_bytes, gb, 1e-12);
    assert_close(p.memory.optimizer_bytes, ob, 1e-12);
    assert_close(p.memory.headroom_bytes,
                 p.memory.capacity_bytes - p.memory.total_bytes, 1e-12);
    test_world_free(&w);
  }
}

/* With tensor parallelism ZeRO shards each rank's share. */
static void test_memory_with_tensor(void **state) {
  (void)state;
  world w;
  load(&w, 1, 4);
  dnn_strat_input in = {&w.scn, w.net, w.hw, w.cluster};
  dnn__stage_model sm;
  dnn_error e;
  assert_ok(dnn__strat_find(&w.scn)->build(&in, NULL, NULL, &sm, &e), &e);
  assert_int_equal(sm.d, 2);
  double share = sm.one.params;
  dnn_memory m;
  dnn__zero_state_memory(&sm, 0, &m);
  assert_close(m.weights_bytes, 2 * share, 1e-12);
  assert_close(m.optimizer_bytes, 12 * share / 2, 1e-12);
  dnn__stage_model_release(&sm);
  test_world_free(&w);
}

/* The gradient collective: an allreduce at stage 0, a reduce-scatter
 * beyond (plus, at stages 1-2, an allgather of the updated shards after
 * the step); stage 3 gathers every layer's parameters before its forward
 * and backward. */
static void test_communication(void **state) {
  (void)state;
  double bytes = 3.719e7;
  for (size_t z = 0; z < 4; z++) {
    world w;
    load(&w, z, 1);
    dnn_strat_input in = {&w.scn, w.net, w.hw, w.cluster};
    dnn__stage_model sm;
    dnn_error e;
    assert_ok(dnn__strat_find(&w.scn)->build(&in, NULL, NULL, &sm, &e), &e);
    dnn_comm_cost c;
    assert_ok(dnn_comm_time(z ? DNN_COMM_REDUCE_SCATTER : DNN_COMM_ALLREDUCE,
                            DNN_COMM_ALGO_AUTO, bytes, &sm.dp_topo, &c, &e),
              &e);
    assert_close(dnn__stage_allreduce_time(&sm, bytes, NULL), c.time_s, 1e-12);
    double pr = dnn__stage_device_params(&sm, 0);
    double step = dnn__stage_step_comm_s(&sm, 0);
    if (z == 1 || z == 2) {
      assert_ok(dnn_comm_time(DNN_COMM_ALLGATHER, DNN_COMM_ALGO_AUTO, pr * 2,
                              &sm.dp_topo, &c, &e),
                &e);
      assert_close(step, c.time_s, 1e-12);
    } else {
      assert_close(step, 0, 0);
    }
    /* The optimizer updates 1/d of the parameters. */
    assert_close(dnn__stage_optimizer_time(&sm, 0) - step,
                 dnn__strat_optimizer_time(&in, z ? pr / 8 : pr), 1e-12);
    /* Stage 3: a layer takes the longer of its compute and its gather. */
    size_t fc1;
    assert_ok(dnn_net_find(w.net, "h.0.fc1", &fc1), &e);
    double f, b;
    dnn__stage_layer_time(&sm, fc1, &f, &b);
    dnn__layer_row row;
    dnn__layer_row_plain(&in, fc1, sm.mbs, &row);
    double g = dnn__stage_zero3_gather_s(
        &sm, dnn__d(dnn_net_layer(w.net, fc1)->params));
    if (z == 3) {
      assert_true(g > 0);
      assert_close(f, fmax(row.fwd_s, g), 1e-12);
      assert_close(b, fmax(row.bwd_s, g), 1e-12);
    } else {
      assert_close(g, 0, 0);
      assert_close(f, row.fwd_s, 0);
    }
    dnn__stage_model_release(&sm);
    test_world_free(&w);
  }
}

/* Iterations: stages 1 and 2 expose the same communication as stage 0
 * (reduce-scatter + allgather = allreduce for a ring) and update 1/d of
 * the parameters; stage 3's gathers beyond a layer's compute are exposed
 * communication, its compute is stage 0's. */
static void test_iteration_order(void **state) {
  (void)state;
  dnn_prediction p[4];
  for (size_t z = 0; z < 4; z++) {
    world w;
    load(&w, z, 1);
    dnn_strat_input in = {&w.scn, w.net, w.hw, w.cluster};
    dnn_error e;
    assert_ok(dnn_strat_predict(&in, &p[z], &e), &e);
    const dnn_breakdown *b = &p[z].breakdown;
    assert_close(b->forward_s + b->backward_s + b->recompute_s +
                     b->comm_exposed_s + b->bubble_s + b->optimizer_s,
                 p[z].iteration_s, 1e-9);
    test_world_free(&w);
  }
  assert_close(p[1].iteration_s, p[2].iteration_s, 1e-12);
  assert_true(p[1].iteration_s < p[0].iteration_s);
  assert_close(p[1].breakdown.comm_exposed_s, p[0].breakdown.comm_exposed_s,
               0.05);
  assert_true(p[1].breakdown.optimizer_s < p[0].breakdown.optimizer_s);
  assert_close(p[3].breakdown.forward_s, p[0].breakdown.forward_s, 1e-12);
  assert_close(p[3].breakdown.backward_s, p[0].breakdown.backward_s, 1e-12);
  assert_true(p[3].iteration_s >
              p[1].iteration_s - p[1].breakdown.comm_exposed_s / 2);
}

/* The gradient collective must support reduce-scatter. */
static void test_error(void **state) {
  (void)state;
  world w;
  load(&w, 1, 1);
  w.scn.parallelism.allreduce = DNN_COMM_ALGO_PS;
  dnn_strat_input in = {&w.scn, w.net, w.hw, w.cluster};
  dnn_prediction p;
  dnn_error e;
  assert_int_equal(dnn_strat_predict(&in, &p, &e), DNN_EINVAL);
  assert_contains(e.msg, "[parallelism] allreduce");
  assert_contains(e.msg, "reduce-scatters");
  test_world_free(&w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_paper_example),
      cmocka_unit_test(test_memory_by_hand),
      cmocka_unit_test(test_memory_with_tensor),
      cmocka_unit_test(test_communication),
      cmocka_unit_test(test_iteration_order),
      cmocka_unit_test(test_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
