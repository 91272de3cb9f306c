/* Tests of parallelism/strat.c: the data-parallel prediction against a
 * composition of the per-layer times and collective costs computed here,
 * memory by hand, overlap bounds and scaling efficiency. */
#include "test_fixtures.h"

#include <math.h>
#include <string.h>

#include "dnnsim/comm.h"
#include "dnnsim/hw.h"
#include "dnnsim/scenario.h"
#include "dnnsim/strat.h"

typedef test_world fixture;

static const char *base_scn =
    "[model]\nname = resnet18\nbatch = 96\nimage = 64\n"
    "[hardware]\nprofile = v100-sxm2\nworkspace_MB = 37\n"
    "[cluster]\nnodes = 1\ndevices_per_node = 6\nintra_link = nvlink2\n"
    "intra_bandwidth_GBps = 41.3\nintra_latency_us = 3.719\n"
    "[parallelism]\nallreduce = ring\n";

static void setup_with(fixture *f, const char *extra) {
  test_world_load(f, base_scn, "t.ini", NULL, extra, true);
}

/* Forward and backward compute of one replica, from the hw API. */
static void compute_times(fixture *f, size_t b, double *fwd, double *bwd) {
  *fwd = *bwd = 0;
  double ws = f->scn.hardware.workspace_MB * 1024 * 1024;
  for (size_t i = 0; i < dnn_net_layer_count(f->net); i++) {
    *fwd += dnn_hw_layer_time(f->hw, f->net, i, DNN_PASS_FWD, b,
                              f->scn.model.dtype, ws, NULL, NULL);
    *bwd += dnn_hw_layer_time(f->hw, f->net, i, DNN_PASS_BWD_DATA, b,
                              f->scn.model.dtype, ws, NULL, NULL) +
            dnn_hw_layer_time(f->hw, f->net, i, DNN_PASS_BWD_WEIGHTS, b,
                              f->scn.model.dtype, ws, NULL, NULL);
  }
}

static double ring_time(fixture *f, size_t d, double bytes) {
  const dnn_hw_params *hp = dnn_hw_get(f->hw);
  double gamma = 3.0 / (hp->mem_bandwidth_Bps * hp->eff_memory[DNN_OP_ELTWISE]);
  dnn_comm_topo topo = dnn_comm_topo_from_cluster(&f->cluster, d, 1, gamma);
  dnn_comm_cost c;
  dnn_error e;
  assert_ok(dnn_comm_time(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, bytes, &topo,
                          &c, &e),
            &e);
  return c.time_s;
}

static void test_no_overlap_composition(void **state) {
  (void)state;
  fixture f;
  setup_with(&f, "parallelism.overlap=false");
  dnn_prediction p = test_world_predict(&f);
  double fwd, bwd;
  compute_times(&f, 16, &fwd, &bwd);
  assert_int_equal(p.local_batch, 16);
  assert_int_equal(p.devices, 6);
  assert_close(p.breakdown.forward_s, fwd, 1e-12);
  assert_close(p.breakdown.backward_s, bwd, 1e-12);
  double grad = 11689512.0 * 4; /* ResNet-18 parameters, fp32 */
  assert_close(p.grad_bytes, grad, 1e-12);
  double comm = ring_time(&f, 6, grad);
  assert_close(p.breakdown.comm_s, comm, 1e-12);
  assert_close(p.breakdown.comm_exposed_s, comm, 1e-12);
  assert_close(p.iteration_s, fwd + bwd + comm + p.breakdown.optimizer_s,
               1e-12);
  assert_true(p.breakdown.optimizer_s > 0);
  assert_close(p.throughput_samples_per_s, 96 / p.iteration_s, 1e-12);
  double t_one = fwd + bwd + p.breakdown.optimizer_s;
  assert_close(p.scaling_efficiency, t_one / p.iteration_s, 1e-12);
  assert_true(p.scaling_efficiency < 1);
  assert_int_equal(p.allreduce, DNN_COMM_ALGO_RING);
  test_world_free(&f);
}

static void test_overlap_bounds(void **state) {
  (void)state;
  fixture f, g, h;
  setup_with(&f, "parallelism.overlap=false");
  setup_with(&g, "parallelism.overlap=true parallelism.bucket_MB=2.9");
  setup_with(&h, "parallelism.overlap=true parallelism.bucket_MB=100000");
  dnn_prediction pf = test_world_predict(&f), pg = test_world_predict(&g),
                 ph = test_world_predict(&h);
  /* Overlap is never slower than no overlap, never faster than the larger
   * of compute and communication. */
  assert_true(pg.iteration_s <= pf.iteration_s * (1 + 1e-12));
  double compute = pg.breakdown.forward_s + pg.breakdown.backward_s +
                   pg.breakdown.optimizer_s;
  assert_true(pg.iteration_s >=
              fmax(compute, pg.breakdown.comm_s) * (1 - 1e-12));
  assert_true(pg.breakdown.comm_exposed_s < pf.breakdown.comm_exposed_s);
  /* Several buckets pay more latency in total than one allreduce. */
  assert_true(pg.breakdown.comm_s > pf.breakdown.comm_s);
  /* One huge bucket: it fills only at the end, so nothing is hidden. */
  assert_close(ph.breakdown.comm_exposed_s, pf.breakdown.comm_exposed_s, 1e-12);
  test_world_free(&f);
  test_world_free(&g);
  test_world_free(&h);
}

/* A device whose collectives progress on the compute thread
 * ([device] comm_progress = host) hides nothing: overlap prices as no
 * overlap, in both engines; an engine device hides some. */
static void test_host_progress(void **state) {
  (void)state;
  static const char *const engines[] = {"simulation.engine=analytic",
                                        "simulation.engine=des"};
  for (size_t k = 0; k < 2; k++) {
    char extra[160];
    fixture f, g;
    snprintf(extra, sizeof extra, "parallelism.overlap=false %s", engines[k]);
    setup_with(&f, extra);
    snprintf(extra, sizeof extra,
             "parallelism.overlap=true parallelism.bucket_MB=2.9 %s",
             engines[k]);
    setup_with(&g, extra);
    dnn_prediction pf = test_world_predict(&f), pe = test_world_predict(&g);
    dnn_hw_params hp = *dnn_hw_get(g.hw);
    assert_true(dnn_hw_comm_overlaps(&hp)); /* a gpu, auto */
    hp.comm_progress = DNN_HW_PROGRESS_HOST;
    dnn_hw *host = NULL;
    dnn_error e;
    assert_ok(dnn_hw_alloc(&hp, &host, &e), &e);
    dnn_hw_free(g.hw);
    g.hw = host;
    dnn_prediction ph = test_world_predict(&g);
    assert_true(pe.breakdown.comm_exposed_s < pf.breakdown.comm_exposed_s);
    assert_close(ph.iteration_s, pf.iteration_s, 1e-12);
    assert_close(ph.breakdown.comm_exposed_s, pf.breakdown.comm_exposed_s,
                 1e-12);
    assert_close(ph.breakdown.comm_s, pf.breakdown.comm_s, 1e-12);
    test_world_free(&f);
    test_world_free(&g);
  }
}

static void test_single_device(void **state) {
  (void)state;
  fixture f;
  setup_with(&f, "cluster.devices_per_node=1 model.batch=16");
  dnn_prediction p = test_world_predict(&f);
  assert_int_equal(p.devices, 1);
  assert_close(p.breakdown.comm_s, 0, 0);
  assert_close(p.scaling_efficiency, 1.0, 1e-15);
  test_world_free(&f);
}

static void test_memory_by_hand(void **state) {
  (void)state;
  fixture f;
  setup_with(&f, "training.optimizer=momentum");
  dnn_prediction p = test_world_predict(&f);
  double w = 11689512.0;
  assert_close(p.memory.weights_bytes, 4 * w, 1e-12);
  assert_close(p.memory.gradients_bytes, 4 * w, 1e-12);
  assert_close(p.memory.optimizer_bytes, 4 * w, 1e-12);
  dnn_net_totals t;
  dnn_net_totals_get(f.net, 16, DNN_DTYPE_FP32, &t);
  assert_close(p.memory.activations_bytes, t.activation_bytes, 1e-12);
  double sum = p.memory.weights_bytes + p.memory.gradients_bytes +
               p.memory.optimizer_bytes + p.memory.activations_bytes +
               p.memory.workspace_bytes + p.memory.reserved_bytes;
  assert_close(p.memory.total_bytes, sum, 1e-12);
  assert_true(p.memory.workspace_bytes <= 37.0 * 1024 * 1024);
  assert_true(p.fits_in_memory);
  test_world_free(&f);
  /* Adam under fp16: two fp32 moments plus fp32 master weights. */
  setup_with(&f, "training.optimizer=adam model.dtype=fp16");
  p = test_world_predict(&f);
  assert_close(p.memory.weights_bytes, 2 * w, 1e-12);
  assert_close(p.memory.optimizer_bytes, 12 * w, 1e-12);
  assert_close(p.grad_bytes, 2 * w, 1e-12);
  test_world_free(&f);
}

static void test_does_not_fit(void **state) {
  (void)state;
  fixture f;
  setup_with(&f, "model.batch=12000 model.image=224");
  dnn_prediction p = test_world_predict(&f);
  assert_false(p.fits_in_memory);
  assert_true(p.memory.total_bytes > p.memory.capacity_bytes);
  test_world_free(&f);
}

static void test_more_devices_scale(void **state) {
  (void)state;
  /* Weak scaling: more replicas never lower the per-step time. */
  double last = 0;
  for (size_t d = 1; d <= 8; d++) {
    fixture f;
    char buf[128];
    snprintf(buf, sizeof buf, "cluster.devices_per_node=%zu model.batch=%zu", d,
             16 * d);
    setup_with(&f, buf);
    dnn_prediction p = test_world_predict(&f);
    assert_true(p.iteration_s >= last * (1 - 1e-12));
    last = p.iteration_s;
    test_world_free(&f);
  }
}

static void test_enum_orders_match_key_table(void **state) {
  (void)state;
  const dnn_scn_key *k = dnn_scn_key_find("parallelism", "allreduce");
  assert_non_null(k);
  for (int a = 0; a < DNN_COMM_ALGO_COUNT; a++)
    assert_string_equal(k->choices[a], dnn_comm_algo_name((dnn_comm_algo)a));
  assert_null(k->choices[DNN_COMM_ALGO_COUNT]);
  k = dnn_scn_key_find("model", "dtype");
  for (int t = 0; t < DNN_DTYPE_COUNT; t++)
    assert_string_equal(k->choices[t], dnn_dtype_name((dnn_dtype)t));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_overlap_composition),
      cmocka_unit_test(test_overlap_bounds),
      cmocka_unit_test(test_host_progress),
      cmocka_unit_test(test_single_device),
      cmocka_unit_test(test_memory_by_hand),
      cmocka_unit_test(test_does_not_fit),
      cmocka_unit_test(test_more_devices_scale),
      cmocka_unit_test(test_enum_orders_match_key_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
