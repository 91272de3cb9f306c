/* Tests of the training techniques (parallelism/technique.c, the technique
 * parts of stage.c, strat.c and comm_fit.c; docs/models.md §16-§20):
 * Mix & Match's per-size configurations against REFERENCE §3.2's tables,
 * mixed-size and batch-augmentation predictions against hand compositions
 * of single-size predictions, sparse against dense embedding gradients,
 * the expected maximum of normal and log-normal factors against GSL
 * quadrature, stragglers in closed form and by Monte Carlo, the SSP and
 * asynchronous clock recurrence, gradient compression against hand
 * counts, micro-batched convolutions in predictions, calibrated
 * collectives, and the error paths. */
#include "test_fixtures.h"

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_integration.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dnnsim/comm.h"
#include "dnnsim/hw.h"
#include "dnnsim/mbatch.h"
#include "dnnsim/scenario.h"
#include "dnnsim/strat.h"
#include "parallelism/internal.h"

#define MIB (1024.0 * 1024.0)

typedef test_world fixture;

/* ResNet-18 at 64 px on 6 V100s, ring allreduce, no overlap. */
static const char *base_scn =
    "[model]\nname = resnet18\nbatch = 96\nimage = 64\n"
    "[hardware]\nprofile = v100-sxm2\nworkspace_MB = 37\n"
    "[cluster]\nnodes = 1\ndevices_per_node = 6\nintra_link = nvlink2\n"
    "intra_bandwidth_GBps = 41.3\nintra_latency_us = 3.719\n"
    "[parallelism]\nallreduce = ring\noverlap = false\n"
    "[simulation]\nengine = analytic\n";

static void setup_text(fixture *f, const char *text, const char *extra) {
  test_world_load(f, text, "t.ini", DNNSIM_SOURCE_DIR "/scenarios", extra,
                  true);
}

static void setup_with(fixture *f, const char *extra) {
  setup_text(f, base_scn, extra);
}

static dnn_prediction predict_cached(fixture *f, dnn_strat_cache *c) {
  dnn_strat_input in = test_world_input(f);
  dnn_prediction p;
  dnn_error e;
  assert_ok(dnn_strat_predict_cached(&in, c, &p, &e), &e);
  return p;
}

static void check_sum(const dnn_prediction *p) {
  const dnn_breakdown *b = &p->breakdown;
  assert_close(test_breakdown_sum(b), p->iteration_s, 1e-9);
}

/* The gradient topology of the fixture's d replicas. */
static dnn_comm_topo dp_topo(const fixture *f, size_t d) {
  const dnn_hw_params *hp = dnn_hw_get(f->hw);
  double gamma = 3.0 / (hp->mem_bandwidth_Bps * hp->eff_memory[DNN_OP_ELTWISE]);
  return dnn_comm_topo_from_cluster(&f->cluster, d, 1, gamma);
}

static double coll(const fixture *f, size_t d, dnn_comm_op op, dnn_comm_algo a,
                   double bytes) {
  dnn_comm_topo topo = dp_topo(f, d);
  dnn_comm_cost c;
  dnn_error e;
  assert_ok(dnn_comm_time(op, a, bytes, &topo, &c, &e), &e);
  return c.time_s;
}

/* ---- Mix & Match: per-size configurations (REFERENCE §3.2) ------------- */

typedef struct size_row {
  size_t size;
  double prob;
  size_t b, m; /* expected per-device batch and copies */
} size_row;

/* Checks every row's (B, M) and returns E[unique images per step] and the
 * mean relative work B M S^2 / (B0 S0^2) per device. */
static void check_sizes(const char *setup, const size_row *rows, size_t n,
                        double *unique, double *work) {
  dnn_scenario scn;
  dnn_error e;
  dnn_scn_init(&scn);
  assert_ok(dnn_scn_load_string("[model]\nname = resnet50\n"
                                "[hardware]\nprofile = v100-sxm2\n"
                                "[cluster]\nnodes = 1\ndevices_per_node = 4\n"
                                "intra_link = nvlink2\n",
                                "s.ini", NULL, &scn, &e),
            &e);
  char buf[256];
  snprintf(buf, sizeof buf, "%s", setup);
  char *save = NULL;
  for (char *tok = strtok_r(buf, " ", &save); tok;
       tok = strtok_r(NULL, " ", &save))
    assert_ok(dnn_scn_set(&scn, tok, &e), &e);
  assert_ok(dnn_scn_validate(&scn, &e), &e);
  double S0 = (double)scn.model.image, B0 = (double)scn.model.batch / 4;
  *unique = *work = 0;
  for (size_t k = 0; k < n; k++) {
    size_t b, m;
    dnn_strat_size_config(&scn, rows[k].size, &b, &m);
    if (b != rows[k].b || m != rows[k].m)
      fail_msg("size %zu: (B, M) = (%zu, %zu), expected (%zu, %zu) [%s]",
               rows[k].size, b, m, rows[k].b, rows[k].m, setup);
    double S = (double)rows[k].size;
    *unique += rows[k].prob * (double)b;
    *work += rows[k].prob * (double)(b * m) * S * S / (B0 * S0 * S0);
  }
}

static void test_size_config_tables(void **state) {
  (void)state;
  const double p = 0.8 / 6;
  /* ImageNet sampled-224: S0 = 224, B0 = 64 per device. */
  const size_row s224b[] = {
      {128, p, 196, 1}, {160, p, 125, 1}, {192, p, 87, 1}, {224, 0.2, 64, 1},
      {256, p, 49, 1},  {288, p, 39, 1},  {320, p, 31, 1}};
  const size_row s224d[] = {{128, p, 64, 3},   {160, p, 64, 2}, {192, p, 64, 1},
                            {224, 0.2, 64, 1}, {256, p, 64, 1}, {288, p, 64, 1},
                            {320, p, 31, 1}};
  const size_row s144b[] = {{96, 0.2, 348, 1},
                            {128, 0.6, 196, 1},
                            {224, 0.1, 64, 1},
                            {256, 0.1, 49, 1}};
  const size_row s144d[] = {{96, 0.2, 64, 5},
                            {128, 0.6, 64, 3},
                            {224, 0.1, 64, 1},
                            {256, 0.1, 64, 1}};
  const size_row cb[] = {
      {16, 0.2, 256, 1}, {24, 0.3, 114, 1}, {32, 0.3, 64, 1}, {48, 0.2, 28, 1}};
  const size_row cd[] = {
      {16, 0.2, 64, 4}, {24, 0.3, 64, 2}, {32, 0.3, 64, 1}, {48, 0.2, 28, 1}};
  double u, w;
  const char *in224 = "model.image=224 model.batch=256";
  const char *c32 = "model.image=32 model.batch=256";
  char buf[128];
  check_sizes(in224, s224b, 7, &u, &w);
  /* REFERENCE: 83.1 unique images per step, 0.77x the steps per epoch of
   * fixed 224 (1.30x fewer), work per step ~ constant. */
  assert_close(u, 83.0666666667, 1e-9);
  assert_close(64 / u, 0.7704654896, 1e-9);
  assert_close(w, 1.0, 0.03);
  snprintf(buf, sizeof buf, "%s training.size_policy=copies", in224);
  check_sizes(buf, s224d, 7, &u, &w);
  assert_close(u, 59.6, 1e-12);
  assert_close(64 / u, 1.0738255034, 1e-9); /* ~1.07x more steps */
  assert_close(w, 1.0909864, 1e-6);         /* mean rel. work 1.09 */
  check_sizes(in224, s144b, 4, &u, &w);
  assert_close(u, 198.5, 1e-12);
  assert_close(64 / u, 0.3224181360, 1e-9); /* 3.1x fewer */
  snprintf(buf, sizeof buf, "%s training.size_policy=copies", in224);
  check_sizes(buf, s144d, 4, &u, &w);
  assert_close(u, 64, 1e-12);
  assert_close(w, 1.0, 0.03);
  check_sizes(c32, cb, 4, &u, &w);
  assert_close(u, 110.2, 1e-12);
  assert_close(64 / u, 0.5807622505, 1e-9);
  snprintf(buf, sizeof buf, "%s training.size_policy=copies", c32);
  check_sizes(buf, cd, 4, &u, &w);
  assert_close(u, 56.8, 1e-12);
  assert_close(64 / u, 1.1267605634, 1e-9);
  /* Base copies scale under D+; B+ keeps them. Micro-batches round the
   * batch to whole micro-batches. */
  const size_row m3[] = {{160, 1, 64, 6}, {320, 1, 64, 1}, {640, 1, 24, 1}};
  snprintf(buf, sizeof buf,
           "%s training.size_policy=copies training.augment_copies=3", in224);
  check_sizes(buf, m3, 3, &u, &w);
  const size_row b3[] = {{160, 1, 125, 3}};
  snprintf(buf, sizeof buf, "%s training.augment_copies=3", in224);
  check_sizes(buf, b3, 1, &u, &w);
  const size_row mb[] = {{160, 1, 128, 1}, {448, 1, 16, 1}, {2240, 1, 8, 1}};
  snprintf(buf, sizeof buf, "%s parallelism.microbatches=8", in224);
  check_sizes(buf, mb, 3, &u, &w);
}

/* ---- Mixed-size predictions ---------------------------------------------- */

/* The step at one size predicted on its own: a scenario with that image,
 * batch and copies, and a network built at that size. */
static dnn_prediction single_size(const fixture *f, size_t size, size_t b,
                                  size_t m) {
  fixture g = *f;
  g.scn.training.n_sizes = 0;
  g.scn.training.sizes_text[0] = '\0';
  g.scn.model.image = size;
  g.scn.model.batch = b * dnn_scn_data_degree(&f->scn);
  g.scn.training.augment_copies = m;
  dnn_error e;
  assert_ok(dnn_scn_build_net(&g.scn, size, &g.net, &e), &e);
  dnn_prediction p = test_world_predict(&g);
  dnn_net_free(g.net);
  return p;
}

static void check_mixed(const char *extra, const size_row *rows, size_t n) {
  fixture f;
  setup_with(&f, extra);
  dnn_prediction p = test_world_predict(&f);
  double T = 0, U = 0, A = 0, mem = 0, work = 0;
  size_t peak = 0;
  dnn_breakdown bd = {0};
  for (size_t k = 0; k < n; k++) {
    dnn_prediction q = single_size(&f, rows[k].size, rows[k].b, rows[k].m);
    const dnn_size_step *z = &p.techniques.sizes[k];
    assert_int_equal(z->size, rows[k].size);
    assert_int_equal(z->local_batch, rows[k].b);
    assert_int_equal(z->copies, rows[k].m);
    assert_close(z->iteration_s, q.iteration_s, 1e-12);
    assert_close(z->memory_bytes, q.memory.total_bytes, 1e-12);
    double w = rows[k].prob;
    T += w * q.iteration_s;
    U += w * (double)(6 * rows[k].b);
    A += w * (double)(6 * rows[k].b * rows[k].m);
    work += w * q.flops_per_device_per_s * q.iteration_s;
    bd.forward_s += w * q.breakdown.forward_s;
    bd.comm_exposed_s += w * q.breakdown.comm_exposed_s;
    if (q.memory.total_bytes > mem) {
      mem = q.memory.total_bytes;
      peak = rows[k].size;
    }
  }
  assert_int_equal(p.techniques.n_sizes, n);
  assert_close(p.iteration_s, T, 1e-12);
  assert_close(p.breakdown.forward_s, bd.forward_s, 1e-12);
  assert_close(p.breakdown.comm_exposed_s, bd.comm_exposed_s, 1e-12);
  check_sum(&p);
  assert_close(p.throughput_samples_per_s, U / T, 1e-12);
  assert_close(p.techniques.unique_samples_per_step, U, 1e-12);
  assert_close(p.techniques.augmented_samples_per_step, A, 1e-12);
  assert_close(p.flops_per_device_per_s, work / T, 1e-12);
  assert_close(p.memory.total_bytes, mem, 1e-12);
  assert_int_equal(p.techniques.peak_memory_size, peak);
  /* Updates: 1281167 / U steps per epoch, 3.719 epochs. */
  assert_close(p.techniques.steps_per_epoch, 1281167.0 / U, 1e-12);
  assert_close(p.techniques.epoch_s, 1281167.0 / U * T, 1e-12);
  assert_close(p.techniques.steps, 3.719 * 1281167.0 / U, 1e-12);
  assert_close(p.techniques.time_to_steps_s, 3.719 * 1281167.0 / U * T, 1e-12);
  assert_int_equal(p.local_batch, 16);
  /* A cache gives the same, and does not allocate once warm. */
  dnn_strat_cache *c;
  dnn_error e;
  assert_ok(dnn_strat_cache_alloc(&c, &e), &e);
  dnn_prediction pc = predict_cached(&f, c);
  assert_close(pc.iteration_s, p.iteration_s, 1e-12);
  assert_close(pc.memory.total_bytes, p.memory.total_bytes, 1e-12);
  test_alloc_state s;
  test_alloc_install(&s, 0);
  dnn_strat_input in = test_world_input(&f);
  dnn_status st = dnn_strat_predict_cached(&in, c, &pc, &e);
  test_alloc_restore();
  assert_ok(st, &e);
  assert_int_equal(s.count, 0);
  assert_close(pc.iteration_s, p.iteration_s, 1e-12);
  dnn_strat_cache_free(c);
  test_world_free(&f);
}

static void test_mixed_sizes(void **state) {
  (void)state;
  /* B+: B(48) = round(16 (64/48)^2) = 28, B(96) = round(16 (64/96)^2) = 7. */
  const size_row bplus[] = {
      {48, 0.25, 28, 1}, {64, 0.5, 16, 1}, {96, 0.25, 7, 1}};
  check_mixed("training.sizes=48:0.25,64:0.5,96:0.25 training.epochs=3.719",
              bplus, 3);
  /* D+ with two base copies: M(48) = round(2 x 1.778) = 4, M(96) =
   * round(2 x 0.444) = 1, the batch kept. */
  const size_row dplus[] = {
      {48, 0.25, 16, 4}, {64, 0.5, 16, 2}, {96, 0.25, 16, 1}};
  check_mixed("training.sizes=48:0.25,64:0.5,96:0.25 training.epochs=3.719 "
              "training.size_policy=copies training.augment_copies=2",
              dplus, 3);
}

/* ---- Batch augmentation -------------------------------------------------- */

static void test_batch_augmentation(void **state) {
  (void)state;
  fixture a, b, one;
  setup_with(&a, "training.augment_copies=4 training.steps=3719");
  /* The same compute as a 4x batch, the same gradients and reductions. */
  setup_with(&b, "model.batch=384");
  setup_with(&one, "");
  dnn_prediction pa = test_world_predict(&a), pb = test_world_predict(&b),
                 p1 = test_world_predict(&one);
  assert_close(pa.iteration_s, pb.iteration_s, 1e-12);
  assert_close(pa.breakdown.comm_s, pb.breakdown.comm_s, 1e-12);
  assert_close(pa.breakdown.comm_s, p1.breakdown.comm_s, 1e-12);
  assert_close(pa.grad_bytes, p1.grad_bytes, 1e-12);
  assert_close(pa.memory.activations_bytes, pb.memory.activations_bytes, 1e-12);
  assert_int_equal(pa.local_batch, 16);
  /* Unique and augmented samples. */
  assert_close(pa.throughput_samples_per_s, 96 / pa.iteration_s, 1e-12);
  assert_close(pa.techniques.augmented_samples_per_s, 384 / pa.iteration_s,
               1e-12);
  assert_int_equal(pa.techniques.copies, 4);
  /* The step with one copy, and the efficiency the copies buy. */
  assert_close(pa.techniques.one_copy_iteration_s, p1.iteration_s, 1e-12);
  assert_close(pa.techniques.one_copy_scaling_efficiency, p1.scaling_efficiency,
               1e-12);
  assert_true(pa.scaling_efficiency > p1.scaling_efficiency);
  assert_close(pa.scaling_efficiency, pb.scaling_efficiency, 1e-12);
  /* Updates: 3719 steps; an epoch is 1281167 / 96 steps either way. */
  assert_close(pa.techniques.steps, 3719, 0);
  assert_close(pa.techniques.time_to_steps_s, 3719 * pa.iteration_s, 1e-12);
  assert_close(pa.techniques.steps_per_epoch, 1281167.0 / 96, 1e-12);
  assert_close(p1.techniques.steps_per_epoch, 1281167.0 / 96, 1e-12);
  assert_close(p1.techniques.one_copy_iteration_s, 0, 0);
  /* Inference per sample is the forward of one device. */
  assert_true(p1.techniques.inference_s_per_sample > 0);
  assert_close(p1.techniques.inference_s_per_sample * 16,
               p1.breakdown.forward_s, 1e-12);
  test_world_free(&a);
  test_world_free(&b);
  test_world_free(&one);
}

/* ---- Sparse embedding gradients ----------------------------------------- */

static const char *i2v_scn =
    "[model]\nname = inst2vec-nce\nbatch = 512\ndtype = fp32\n"
    "[hardware]\nprofile = v100-sxm2\n"
    "[cluster]\nnodes = 1\ndevices_per_node = 8\nintra_link = nvlink2\n"
    "[parallelism]\noverlap = false\n"
    "[training]\noptimizer = adam\n";

static void test_sparse_gradients(void **state) {
  (void)state;
  fixture f;
  setup_text(&f, i2v_scn, "");
  dnn_prediction p = test_world_predict(&f);
  /* Hand count: each sparse layer's touched rows of the replica's 64
   * samples, allgathered with a 4-byte index per row by 8 replicas; the
   * other layers' gradients allreduced. */
  double sparse_s = 0, sparse_bytes = 0, dense_params = 0, table_params = 0;
  size_t n_sparse = 0;
  for (size_t i = 0; i < dnn_net_layer_count(f.net); i++) {
    const dnn_layer *l = dnn_net_layer(f.net, i);
    size_t elems = 0;
    double rows = dnn_layer_grad_rows(f.net, i, 64, &elems);
    if (rows > 0) {
      double by = 8 * rows * ((double)elems * 4 + 4);
      double ag = coll(&f, 8, DNN_COMM_ALLGATHER, DNN_COMM_ALGO_AUTO, by);
      double ar = coll(&f, 8, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_AUTO,
                       (double)l->params * 4);
      assert_true(ag < ar); /* 64 samples touch few of the 8565 rows */
      sparse_s += ag;
      sparse_bytes += by;
      table_params += (double)l->params;
      n_sparse++;
    } else {
      dense_params += (double)l->params;
    }
  }
  assert_int_equal(n_sparse, 2);
  assert_int_equal(p.techniques.sparse_layers, 2);
  assert_close(p.techniques.sparse_grad_bytes, sparse_bytes, 1e-12);
  assert_close(p.techniques.sparse_dense_bytes, table_params * 4, 1e-12);
  double dense =
      coll(&f, 8, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_AUTO, dense_params * 4);
  assert_close(p.breakdown.comm_s, dense + sparse_s, 1e-12);
  assert_close(p.grad_bytes, (dense_params + table_params) * 4, 1e-12);
  check_sum(&p);
  /* Against the dense allreduce of everything. */
  double all = coll(&f, 8, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_AUTO,
                    (dense_params + table_params) * 4);
  assert_true(p.breakdown.comm_s < all);
  /* With overlap the two engines agree (the allgathers follow the
   * buckets once backward is done). */
  f.scn.parallelism.overlap = true;
  f.scn.parallelism.bucket_MB = 1.3719;
  f.scn.engine = DNN_ENGINE_ANALYTIC;
  dnn_prediction pa = test_world_predict(&f);
  f.scn.engine = DNN_ENGINE_DES;
  dnn_prediction pd = test_world_predict(&f);
  assert_close(pa.iteration_s, pd.iteration_s, 1e-9);
  assert_close(pa.breakdown.comm_s, pd.breakdown.comm_s, 1e-9);
  assert_int_equal(pd.techniques.sparse_layers, 2);
  test_world_free(&f);
  /* A batch touching every row: the dense allreduce wins. */
  setup_text(&f, i2v_scn, "model.batch=4194304");
  p = test_world_predict(&f);
  assert_int_equal(p.techniques.sparse_layers, 0);
  assert_close(p.techniques.sparse_grad_bytes, 0, 0);
  test_world_free(&f);
  /* NCC's table is frozen: nothing sparse to send. */
  setup_text(&f, i2v_scn, "model.name=ncc model.seq=37");
  p = test_world_predict(&f);
  assert_int_equal(p.techniques.sparse_layers, 0);
  test_world_free(&f);
  /* ZeRO reduce-scatters everything densely. */
  setup_text(&f, i2v_scn, "training.zero=1");
  p = test_world_predict(&f);
  assert_int_equal(p.techniques.sparse_layers, 0);
  test_world_free(&f);
}

/* ---- Expected maxima against GSL quadrature ---------------------------- */

typedef struct emax_par {
  double n, mu, sigma;
} emax_par;

static double normal_max_density(double z, void *ud) {
  const emax_par *q = ud;
  return z * q->n * gsl_ran_ugaussian_pdf(z) *
         pow(gsl_cdf_ugaussian_P(z), q->n - 1);
}

static double lognormal_tail(double x, void *ud) {
  const emax_par *q = ud;
  return 1 - pow(gsl_cdf_lognormal_P(x, q->mu, q->sigma), q->n);
}

static double gsl_emax_normal(double n) {
  gsl_integration_workspace *w = gsl_integration_workspace_alloc(1000);
  emax_par q = {n, 0, 1};
  gsl_function fn = {normal_max_density, &q};
  double r, err;
  assert_int_equal(gsl_integration_qagi(&fn, 1e-13, 1e-11, 1000, w, &r, &err),
                   0);
  gsl_integration_workspace_free(w);
  return r;
}

static double gsl_emax_lognormal(double n, double cv) {
  gsl_integration_workspace *w = gsl_integration_workspace_alloc(1000);
  double s2 = log1p(cv * cv);
  emax_par q = {n, -0.5 * s2, sqrt(s2)};
  gsl_function fn = {lognormal_tail, &q};
  double r, err;
  assert_int_equal(
      gsl_integration_qagiu(&fn, 0, 1e-13, 1e-11, 1000, w, &r, &err), 0);
  gsl_integration_workspace_free(w);
  return r;
}

static void test_expected_max(void **state) {
  (void)state;
  gsl_set_error_handler_off();
  /* Closed forms: 1/sqrt(pi), 3/(2 sqrt(pi)); n = 5: 1.16296. */
  assert_close(dnn__emax_normal(2), 0.5641895835477563, 1e-10);
  assert_close(dnn__emax_normal(3), 0.8462843753216345, 1e-10);
  assert_close(dnn__emax_normal(5), 1.1629644736405196, 1e-9);
  assert_close(dnn__emax_normal(1), 0, 0);
  const size_t ns[] = {2, 3, 7, 37, 256, 3719, 1000000};
  for (size_t k = 0; k < DNN_ARRAY_LEN(ns); k++)
    assert_close(dnn__emax_normal(ns[k]), gsl_emax_normal((double)ns[k]), 1e-8);
  const double cvs[] = {0.0371, 0.1, 0.3719, 2.0};
  for (size_t k = 0; k < DNN_ARRAY_LEN(ns) - 1; k++)
    for (size_t c = 0; c < DNN_ARRAY_LEN(cvs); c++)
      assert_close(dnn__emax_lognormal(ns[k], cvs[c]),
                   gsl_emax_lognormal((double)ns[k], cvs[c]), 1e-7);
  assert_close(dnn__emax_lognormal(1, 0.3), 1, 0);
  assert_close(dnn__emax_lognormal(9, 0), 1, 0);
  /* And the speed factors the simulator draws have that expected
   * maximum: 8 devices, 20000 Monte Carlo steps. */
  double sum = 0;
  dnn__rng r[8];
  for (size_t q = 0; q < 8; q++)
    dnn__rng_seed(&r[q], 3719, q);
  for (size_t k = 0; k < 20000; k++) {
    double mx = 0;
    for (size_t q = 0; q < 8; q++) {
      double x = dnn__rng_jitter(&r[q], 0.2);
      if (k == 37)
        assert_close(x, dnn__rng_jitter_at(3719, q, k, 0.2), 0);
      mx = fmax(mx, x);
    }
    sum += mx;
  }
  assert_close(sum / 20000, dnn__emax_lognormal(8, 0.2), 0.005);
}

/* ---- Stragglers ---------------------------------------------------------- */

static void test_stragglers(void **state) {
  (void)state;
  fixture f;
  setup_with(&f, "");
  dnn_prediction p0 = test_world_predict(&f);
  f.scn.training.jitter = 0.137;
  /* Closed form: the slowest of 6 replicas sets the step. */
  dnn_prediction pa = test_world_predict(&f);
  double E = dnn__emax_lognormal(6, 0.137);
  double C = p0.breakdown.forward_s + p0.breakdown.backward_s +
             p0.breakdown.optimizer_s;
  assert_close(pa.iteration_s, p0.iteration_s + (E - 1) * C, 1e-12);
  assert_close(pa.techniques.expected_max_speed, E, 1e-12);
  assert_close(pa.techniques.nominal_iteration_s, p0.iteration_s, 1e-12);
  assert_close(pa.techniques.straggler_factor, pa.iteration_s / p0.iteration_s,
               1e-12);
  assert_int_equal(pa.techniques.draws, 0);
  check_sum(&pa);
  /* Monte Carlo through the simulator: the same within its error, and
   * the same twice with one seed. */
  f.scn.engine = DNN_ENGINE_DES;
  dnn_prediction pd = test_world_predict(&f), pd2 = test_world_predict(&f);
  assert_int_equal(pd.techniques.draws, f.scn.mc_draws);
  assert_close(pd.iteration_s, pd2.iteration_s, 0);
  assert_close(pd.iteration_s, pa.iteration_s, 0.05);
  assert_close(pd.techniques.nominal_iteration_s, p0.iteration_s, 1e-12);
  check_sum(&pd);
  f.scn.training.seed = 3720;
  dnn_prediction pd3 = test_world_predict(&f);
  assert_true(pd3.iteration_s != pd.iteration_s);
  assert_close(pd3.iteration_s, pd.iteration_s, 0.05);
  /* Stale-synchronous and asynchronous steps bound the wait. */
  f.scn.engine = DNN_ENGINE_ANALYTIC;
  f.scn.training.consistency = DNN_CONSISTENCY_SSP;
  f.scn.training.staleness = 3;
  dnn_prediction ps = test_world_predict(&f);
  f.scn.training.consistency = DNN_CONSISTENCY_ASYNC;
  dnn_prediction pn = test_world_predict(&f);
  assert_true(ps.iteration_s < pa.iteration_s);
  assert_true(pn.iteration_s <= ps.iteration_s);
  assert_close(pn.iteration_s, p0.iteration_s, 0.02);
  assert_true(ps.techniques.staleness > 0 && ps.techniques.staleness <= 3);
  assert_int_equal(ps.techniques.draws, DNN_STRAT_CLOCK_STEPS);
  check_sum(&ps);
  check_sum(&pn);
  /* Without jitter every consistency model gives the same step. */
  f.scn.training.jitter = 0;
  dnn_prediction pz = test_world_predict(&f);
  assert_close(pz.iteration_s, p0.iteration_s, 1e-12);
  assert_close(pz.techniques.staleness, 0, 0);
  test_world_free(&f);
}

static void test_clock_recurrence(void **state) {
  (void)state;
  dnn__clock_result sync, ssp1, ssp4, ssp64, as, z;
  dnn_error e;
  double C = 3.719e-3, A = 1.3e-3, cv = 0.2;
  assert_ok(dnn__clock_run(16, C, A, cv, DNN_CONSISTENCY_SYNC, 0, 17, 0, 1,
                           &sync, &e),
            &e);
  assert_ok(
      dnn__clock_run(16, C, A, cv, DNN_CONSISTENCY_SSP, 1, 17, 0, 1, &ssp1, &e),
      &e);
  assert_ok(
      dnn__clock_run(16, C, A, cv, DNN_CONSISTENCY_SSP, 4, 17, 0, 1, &ssp4, &e),
      &e);
  assert_ok(dnn__clock_run(16, C, A, cv, DNN_CONSISTENCY_SSP, 64, 17, 0, 1,
                           &ssp64, &e),
            &e);
  assert_ok(
      dnn__clock_run(16, C, A, cv, DNN_CONSISTENCY_ASYNC, 0, 17, 0, 1, &as, &e),
      &e);
  /* Synchronous: C E[max of 16] + A within the Monte Carlo error. */
  assert_close(sync.step_s, C * dnn__emax_lognormal(16, cv) + A, 0.01);
  assert_close(sync.staleness, 0, 0);
  /* Bounded staleness waits less, the more it allows. */
  assert_true(ssp1.step_s < sync.step_s);
  assert_true(ssp4.step_s < ssp1.step_s);
  assert_true(ssp64.step_s <= ssp4.step_s);
  assert_true(as.step_s <= ssp4.step_s);
  assert_true(ssp1.staleness > 0 && ssp1.staleness <= 1);
  assert_true(ssp4.staleness > ssp1.staleness && ssp4.staleness <= 4);
  /* Asynchronous: every replica at its own mean pace, C + A. */
  assert_close(as.step_s, C + A, 0.02);
  /* No jitter: C + A exactly, no lag. */
  assert_ok(
      dnn__clock_run(16, C, A, 0, DNN_CONSISTENCY_SSP, 2, 17, 0, 1, &z, &e),
      &e);
  assert_close(z.step_s, C + A, 1e-12);
  assert_close(z.staleness, 0, 0);
  /* Deterministic; another seed differs. */
  dnn__clock_result again, other;
  assert_ok(dnn__clock_run(16, C, A, cv, DNN_CONSISTENCY_SSP, 1, 17, 0, 1,
                           &again, &e),
            &e);
  assert_close(again.step_s, ssp1.step_s, 0);
  assert_ok(dnn__clock_run(16, C, A, cv, DNN_CONSISTENCY_SSP, 1, 18, 0, 1,
                           &other, &e),
            &e);
  assert_true(other.step_s != ssp1.step_s);
  /* Allocation failure. */
  test_alloc_state s;
  test_alloc_install(&s, 0);
  dnn_status st = dnn__clock_run(16, C, A, cv, DNN_CONSISTENCY_SSP, 1, 17, 0, 1,
                                 &again, &e);
  test_alloc_restore();
  assert_int_equal(st, DNN_ENOMEM);
  assert_contains(e.msg, "16 replicas");
}

/* ---- Gradient compression ------------------------------------------------ */

static double eltwise(const fixture *f, double flops, double bytes) {
  return dnn_hw_kernel_time(f->hw, DNN_OP_ELTWISE, f->scn.model.dtype, flops,
                            bytes);
}

static void test_compression(void **state) {
  (void)state;
  const double n = 11689512.0; /* ResNet-18 parameters */
  fixture f;
  setup_with(&f, "");
  dnn_prediction p0 = test_world_predict(&f);
  double dense = coll(&f, 6, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, 4 * n);
  assert_close(p0.breakdown.comm_s, dense, 1e-12);
  assert_close(p0.techniques.wire_grad_bytes, 4 * n, 1e-12);
  /* fp16: half the bytes, a cast each way. */
  assert_ok(dnn_scn_set(&f.scn, "training.compression=fp16", NULL), NULL);
  dnn_prediction p = test_world_predict(&f);
  double comp = 2 * eltwise(&f, n, 4 * n + 2 * n);
  assert_close(
      p.breakdown.comm_s,
      coll(&f, 6, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, 2 * n) + comp, 1e-12);
  assert_close(p.techniques.wire_grad_bytes, 2 * n, 1e-12);
  assert_close(p.techniques.compression_s, comp, 1e-12);
  check_sum(&p);
  /* 1-bit: n/8 bytes and two fp32 values; encode with error feedback and
   * decode, twice. */
  assert_ok(dnn_scn_set(&f.scn, "training.compression=1bit", NULL), NULL);
  p = test_world_predict(&f);
  double wire = ceil(n / 8) + 8;
  comp = 2 * (eltwise(&f, 4 * n, 4 * n + 8 * n + n / 8) +
              eltwise(&f, n, n / 8 + 4 * n));
  assert_close(p.techniques.wire_grad_bytes, wire, 1e-12);
  assert_close(p.breakdown.comm_s,
               coll(&f, 6, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, wire) + comp,
               1e-12);
  assert_true(p.breakdown.comm_s < dense);
  /* Top-k at 1%: k values with 24-bit indices (n < 2^24), the 6 sets
   * allgathered; their union is at most 6k entries. */
  assert_ok(dnn_scn_set(&f.scn, "training.compression=topk:0.01", NULL), NULL);
  p = test_world_predict(&f);
  double k = ceil(0.01 * n), e = 4 + 24.0 / 8;
  comp = eltwise(&f, 2 * n, 2 * n * 4 + 8 * n + k * e) +
         eltwise(&f, 6 * k, 6 * k * e + 4 * n);
  double sparse =
      coll(&f, 6, DNN_COMM_ALLGATHER, DNN_COMM_ALGO_AUTO, 6 * k * e) + comp;
  assert_true(sparse < dense);
  assert_close(p.breakdown.comm_s, sparse, 1e-12);
  assert_close(p.techniques.wire_grad_bytes, k * e, 1e-12);
  assert_close(p.techniques.compression_s, comp, 1e-12);
  /* At 90% density the union is dense: the plain allreduce. */
  assert_ok(dnn_scn_set(&f.scn, "training.compression=topk:0.9", NULL), NULL);
  p = test_world_predict(&f);
  assert_close(p.breakdown.comm_s, dense, 1e-12);
  assert_close(p.techniques.wire_grad_bytes, 4 * n, 1e-12);
  assert_close(p.techniques.compression_s, 0, 0);
  /* Top-k of ZeRO's reduce-scatter is not modelled. */
  assert_ok(dnn_scn_set(&f.scn, "training.zero=1", NULL), NULL);
  assert_ok(dnn_scn_set(&f.scn, "parallelism.allreduce=auto", NULL), NULL);
  dnn_strat_input in = test_world_input(&f);
  dnn_error err;
  assert_int_equal(dnn_strat_predict(&in, &p, &err), DNN_EUNSUPPORTED);
  assert_contains(err.msg, "training.compression");
  assert_contains(err.msg, "top-k");
  test_world_free(&f);
  /* fp16 compression of fp16 gradients changes nothing. */
  setup_with(&f, "model.dtype=fp16");
  p0 = test_world_predict(&f);
  assert_ok(dnn_scn_set(&f.scn, "training.compression=fp16", NULL), NULL);
  p = test_world_predict(&f);
  assert_close(p.iteration_s, p0.iteration_s, 1e-12);
  assert_close(p.techniques.compression_s, 0, 0);
  test_world_free(&f);
}

/* ---- Micro-batched convolutions ------------------------------------------ */

static void load_file(fixture *f, const char *rel, const char *extra) {
  dnn_error e;
  dnn_scn_init(&f->scn);
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", DNNSIM_SOURCE_DIR, rel);
  assert_ok(dnn_scn_load(path, &f->scn, &e), &e);
  test_scn_sets(&f->scn, extra);
  assert_ok(dnn_scn_build_net(&f->scn, 0, &f->net, &e), &e);
  assert_ok(dnn_scn_load_hw(&f->scn, &f->hw, &e), &e);
  assert_ok(dnn_scn_cluster(&f->scn, &f->cluster, &e), &e);
}

static void test_micro_batching(void **state) {
  (void)state;
  fixture f;
  load_file(&f, "scenarios/ucudnn-alexnet-p100-64mib.ini", "");
  dnn_prediction dp = test_world_predict(&f);
  /* What `dnnsim microbatch` reports: the undivided prediction with the
   * convolutions' baseline replaced by the plan's. */
  dnn_mb_params mp = dnn_mb_default_params();
  mp.layer_workspace_bytes = 64 * MIB;
  dnn_mb_plan *plan;
  dnn_error e;
  assert_ok(dnn_mb_plan_build(f.net, f.hw, 256, DNN_DTYPE_FP32, &mp, &plan, &e),
            &e);
  dnn_mb_summary sum;
  dnn_mb_plan_summary(plan, &sum);
  dnn_mb_plan_free(plan);
  f.scn.training.micro_batching = DNN_MICROBATCHING_NONE;
  dnn_prediction none = test_world_predict(&f);
  double factor =
      none.iteration_s / (none.iteration_s - sum.baseline_s + sum.chosen_s);
  assert_close(none.iteration_s / dp.iteration_s, factor, 1e-12);
  assert_close(factor, 1.215, 0.001); /* docs/models.md §10.4 */
  assert_true(dp.memory.workspace_bytes <= 64 * MIB);
  assert_close(dp.memory.workspace_bytes, sum.workspace_max_bytes, 1e-12);
  /* A cache gives the same. */
  f.scn.training.micro_batching = DNN_MICROBATCHING_DP;
  dnn_strat_cache *c;
  assert_ok(dnn_strat_cache_alloc(&c, &e), &e);
  dnn_prediction dc = predict_cached(&f, c);
  assert_close(dc.iteration_s, dp.iteration_s, 1e-12);
  assert_close(dc.memory.total_bytes, dp.memory.total_bytes, 1e-12);
  /* ilp: every (layer, pass) keeps its own buffer: their sum. */
  mp.solver = DNN_MICROBATCHING_ILP;
  assert_ok(dnn_mb_plan_build(f.net, f.hw, 256, DNN_DTYPE_FP32, &mp, &plan, &e),
            &e);
  dnn_mb_plan_summary(plan, &sum);
  dnn_mb_plan_free(plan);
  f.scn.training.micro_batching = DNN_MICROBATCHING_ILP;
  dnn_prediction ilp = test_world_predict(&f);
  assert_close(ilp.memory.workspace_bytes, sum.workspace_sum_bytes, 1e-12);
  assert_close(ilp.iteration_s,
               none.iteration_s - sum.baseline_s + sum.chosen_s, 1e-12);
  dnn_prediction ic = predict_cached(&f, c);
  assert_close(ic.memory.workspace_bytes, sum.workspace_sum_bytes, 1e-12);
  dnn_strat_cache_free(c);
  test_world_free(&f);
  /* Tensor parallelism splits the layers a plan would divide. */
  setup_with(&f, "training.micro_batching=dp parallelism.tensor=2");
  dnn_strat_input in = test_world_input(&f);
  dnn_prediction p;
  assert_int_equal(dnn_strat_predict(&in, &p, &e), DNN_EUNSUPPORTED);
  assert_contains(e.msg, "training.micro_batching");
  test_world_free(&f);
}

/* ---- Calibrated collectives ---------------------------------------------- */

static const char *cp_scn =
    "[model]\nname = resnet18\nbatch = 48\nimage = 64\ndtype = fp32\n"
    "[hardware]\nprofile = v100-sxm2\n"
    "[cluster]\nnodes = 1\ndevices_per_node = 4\nintra_link = nvlink2\n"
    "comm_profile = profiles/examples/mpi-vm.ini\n"
    "[parallelism]\noverlap = false\n"
    "[simulation]\nengine = analytic\n";

/* The cheapest fitted allreduce on `ranks` ranks, by hand. */
static double cheapest(const dnn_comm_profile *cp, size_t ranks, double bytes,
                       dnn_comm_algo *best) {
  double t = INFINITY;
  for (int a = 1; a < DNN_COMM_ALGO_COUNT; a++) {
    double x;
    if (dnn_comm_profile_predict(cp, DNN_COMM_ALLREDUCE, (dnn_comm_algo)a,
                                 ranks, bytes, &x, NULL, NULL) == DNN_OK &&
        x < t) {
      t = x;
      *best = (dnn_comm_algo)a;
    }
  }
  bool ex;
  const dnn_comm_fit *mpi = dnn_hw_comm_profile_lookup(
      cp, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_AUTO, ranks, &ex);
  if (mpi && ex && dnn_hw_comm_fit_time(mpi, bytes) < t) {
    t = dnn_hw_comm_fit_time(mpi, bytes);
    *best = DNN_COMM_ALGO_AUTO;
  }
  return t;
}

static void test_comm_profile(void **state) {
  (void)state;
  dnn_comm_profile *cp;
  dnn_error e;
  assert_ok(dnn_hw_comm_profile_load(DNNSIM_SOURCE_DIR
                                     "/scenarios/profiles/examples/mpi-vm.ini",
                                     &cp, &e),
            &e);
  const double grad = 11689512.0 * 4;
  fixture f;
  setup_text(&f, cp_scn, "");
  /* 4 ranks were measured: the fits' curves, the cheapest at this size. */
  dnn_prediction p = test_world_predict(&f);
  dnn_comm_algo best = DNN_COMM_ALGO_COUNT;
  double t = cheapest(cp, 4, grad, &best);
  assert_close(p.breakdown.comm_s, t, 1e-12);
  assert_int_equal(p.allreduce, best);
  /* A configured algorithm: its own fit. */
  assert_ok(dnn_scn_set(&f.scn, "parallelism.allreduce=ring", NULL), NULL);
  p = test_world_predict(&f);
  double ring;
  assert_ok(dnn_comm_profile_predict(cp, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING,
                                     4, grad, &ring, NULL, &e),
            &e);
  bool ex;
  assert_close(ring,
               dnn_hw_comm_fit_time(
                   dnn_hw_comm_profile_lookup(cp, DNN_COMM_ALLREDUCE,
                                              DNN_COMM_ALGO_RING, 4, &ex),
                   grad),
               1e-15);
  assert_true(ex);
  assert_close(p.breakdown.comm_s, ring, 1e-12);
  /* A cache gives the same. */
  dnn_strat_cache *c;
  assert_ok(dnn_strat_cache_alloc(&c, &e), &e);
  assert_close(predict_cached(&f, c).breakdown.comm_s, ring, 1e-12);
  dnn_strat_cache_free(c);
  test_world_free(&f);
  /* 3 ranks: between the fits at 2 and 4, each curve moved by comm.h's
   * ratio with its own link, interpolated geometrically in log P. */
  setup_text(&f, cp_scn,
             "cluster.devices_per_node=3 parallelism.allreduce=ring");
  p = test_world_predict(&f);
  const dnn_comm_fit *f2 = dnn_hw_comm_profile_lookup(
      cp, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, 2, NULL);
  const dnn_comm_fit *f4 = dnn_hw_comm_profile_lookup(
      cp, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, 4, NULL);
  double x[2];
  const dnn_comm_fit *fits[2] = {f2, f4};
  for (int k = 0; k < 2; k++) {
    dnn_comm_link l = {fits[k]->alpha_s, fits[k]->beta_s_per_byte,
                       fits[k]->gamma_s_per_byte};
    dnn_comm_topo t3 = dnn_comm_default_topo(3, l);
    dnn_comm_topo tk = dnn_comm_default_topo(fits[k]->ranks, l);
    dnn_comm_cost c3, ck;
    assert_ok(dnn_comm_time(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, grad, &t3,
                            &c3, &e),
              &e);
    assert_ok(dnn_comm_time(DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, grad, &tk,
                            &ck, &e),
              &e);
    x[k] = dnn_hw_comm_fit_time(fits[k], grad) * c3.time_s / ck.time_s;
  }
  double w = log(1.5) / log(2.0);
  assert_close(p.breakdown.comm_s, exp((1 - w) * log(x[0]) + w * log(x[1])),
               1e-12);
  test_world_free(&f);
  /* 8 ranks: the 4-rank curve moved. */
  setup_text(&f, cp_scn, "cluster.devices_per_node=8");
  p = test_world_predict(&f);
  t = cheapest(cp, 8, grad, &best);
  assert_close(p.breakdown.comm_s, t, 1e-12);
  assert_true(best != DNN_COMM_ALGO_AUTO); /* no MPI default at 8 ranks */
  test_world_free(&f);
  /* A group that crosses nodes: the profile was measured on one node
   * (mpi-vm.ini has no `nodes` key: 1), so the links price it. */
  setup_text(&f, cp_scn,
             "cluster.nodes=2 cluster.devices_per_node=2 "
             "cluster.inter_link=ib-hdr parallelism.allreduce=ring");
  p = test_world_predict(&f);
  assert_close(p.breakdown.comm_s,
               coll(&f, 4, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, grad),
               1e-12);
  test_world_free(&f);
  /* A profile measured across 2 nodes prices that group, and leaves a
   * group inside one node to the links. */
  dnn_comm_profile_info wide = *dnn_hw_comm_profile_info(cp);
  wide.nodes = 2;
  dnn_comm_profile *cp2;
  assert_ok(dnn_hw_comm_profile_alloc(&wide, &cp2, &e), &e);
  for (size_t i = 0; i < dnn_hw_comm_profile_count(cp); i++)
    assert_ok(dnn_hw_comm_profile_add(cp2, dnn_hw_comm_profile_get(cp, i), &e),
              &e);
  char path[256];
  snprintf(path, sizeof path, "%s/dnnsim-cp2-%ld.ini",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (long)getpid());
  assert_ok(dnn_hw_comm_profile_save(cp2, path, &e), &e);
  dnn_hw_comm_profile_free(cp2);
  char set[320];
  snprintf(
      set, sizeof set,
      "cluster.nodes=2 cluster.devices_per_node=2 cluster.inter_link=ib-hdr "
      "parallelism.allreduce=ring cluster.comm_profile=%s",
      path);
  setup_text(&f, cp_scn, set);
  p = test_world_predict(&f);
  assert_close(p.breakdown.comm_s, ring, 1e-12); /* the 4-rank fit */
  test_world_free(&f);
  snprintf(set, sizeof set,
           "parallelism.allreduce=ring cluster.comm_profile=%s", path);
  setup_text(&f, cp_scn, set);
  p = test_world_predict(&f);
  assert_close(p.breakdown.comm_s,
               coll(&f, 4, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_RING, grad),
               1e-12);
  test_world_free(&f);
  remove(path);
  /* A collective the profile has no fit of (hierarchical) keeps comm.h's
   * model. */
  setup_text(&f, cp_scn, "parallelism.allreduce=hierarchical");
  p = test_world_predict(&f);
  assert_close(
      p.breakdown.comm_s,
      coll(&f, 4, DNN_COMM_ALLREDUCE, DNN_COMM_ALGO_HIERARCHICAL, grad), 1e-12);
  test_world_free(&f);
  /* The predictor's formula is the calibration's (and the errors). */
  double y;
  assert_int_equal(dnn_comm_profile_predict(cp, DNN_COMM_ALLREDUCE,
                                            DNN_COMM_ALGO_HIERARCHICAL, 4, grad,
                                            &y, NULL, &e),
                   DNN_ENOTFOUND);
  assert_contains(e.msg, "no fit of allreduce with hierarchical");
  assert_int_equal(dnn_comm_profile_predict(cp, DNN_COMM_ALLREDUCE,
                                            DNN_COMM_ALGO_AUTO, 8, grad, &y,
                                            NULL, &e),
                   DNN_ENOTFOUND);
  assert_contains(e.msg, "no link parameters to predict 8 ranks");
  dnn_hw_comm_profile_free(cp);
  /* A missing profile names the key. */
  fixture g;
  dnn_scn_init(&g.scn);
  assert_ok(dnn_scn_load_string(cp_scn, "t.ini", DNNSIM_SOURCE_DIR "/scenarios",
                                &g.scn, &e),
            &e);
  assert_ok(dnn_scn_set(&g.scn, "cluster.comm_profile=no-such-file.ini", &e),
            &e);
  assert_ok(dnn_scn_build_net(&g.scn, 0, &g.net, &e), &e);
  assert_ok(dnn_scn_load_hw(&g.scn, &g.hw, &e), &e);
  assert_ok(dnn_scn_cluster(&g.scn, &g.cluster, &e), &e);
  dnn_strat_input in = test_world_input(&g);
  dnn_status st = dnn_strat_predict(&in, &p, &e);
  assert_true(st != DNN_OK);
  assert_contains(e.msg, "cluster.comm_profile");
  assert_contains(e.msg, "no-such-file.ini");
  test_world_free(&g);
}

/* ---- Fixes: the optimizer without an fp32 peak, the bubble ------------- */

static void test_optimizer_without_fp32_peak(void **state) {
  (void)state;
  fixture f;
  setup_with(&f, "model.dtype=fp16");
  dnn_hw_params hp = *dnn_hw_get(f.hw);
  hp.peak_flops[DNN_DTYPE_FP32] = 0;
  hp.peak_flops[DNN_DTYPE_TF32] = 0;
  dnn_hw *h16;
  dnn_error e;
  assert_ok(dnn_hw_alloc(&hp, &h16, &e), &e);
  dnn_hw_free(f.hw);
  f.hw = h16;
  dnn_prediction p = test_world_predict(&f);
  assert_true(isfinite(p.iteration_s));
  /* Adam-free momentum: 5 fp32 words + the fp16 copy, 4 FLOPs each. */
  double n = 11689512.0;
  assert_close(p.breakdown.optimizer_s,
               dnn_hw_kernel_time(h16, DNN_OP_OPTIMIZER, DNN_DTYPE_FP16, 4 * n,
                                  5 * 4 * n + 2 * n),
               1e-12);
  test_world_free(&f);
}

static void test_bubble_never_negative(void **state) {
  (void)state;
  fixture f;
  dnn_error e;
  dnn_scn_init(&f.scn);
  assert_ok(dnn_scn_load(DNNSIM_SOURCE_DIR
                         "/tests/fuzz/regressions/scenario/negative-bubble.ini",
                         &f.scn, &e),
            &e);
  /* The fuzz input's paths are relative to scenarios/. */
  snprintf(f.scn.dir, sizeof f.scn.dir, "%s", DNNSIM_SOURCE_DIR "/scenarios");
  assert_ok(dnn_scn_build_net(&f.scn, 0, &f.net, &e), &e);
  assert_ok(dnn_scn_load_hw(&f.scn, &f.hw, &e), &e);
  assert_ok(dnn_scn_cluster(&f.scn, &f.cluster, &e), &e);
  for (int eng = DNN_ENGINE_ANALYTIC; eng <= DNN_ENGINE_DES; eng++) {
    f.scn.engine = (dnn_engine)eng;
    dnn_prediction p = test_world_predict(&f);
    assert_true(p.breakdown.bubble_s >= 0);
    assert_true(p.techniques.n_sizes == 2);
    check_sum(&p);
  }
  test_world_free(&f);
}

/* ---- Errors -------------------------------------------------------------- */

static void test_errors(void **state) {
  (void)state;
  fixture f;
  setup_with(&f, "model.name=alexnet training.sizes=8:0.5,64:0.5");
  dnn_strat_input in = test_world_input(&f);
  dnn_prediction p;
  dnn_error e;
  /* AlexNet cannot pool an 8-pixel image down: the size is named. */
  dnn_status st = dnn_strat_predict(&in, &p, &e);
  assert_true(st != DNN_OK);
  assert_contains(e.msg, "image 8");
  test_world_free(&f);
  /* Out of memory while building the other sizes' networks. */
  setup_with(&f, "training.sizes=48:0.5,64:0.5");
  in = test_world_input(&f);
  test_alloc_state s;
  test_alloc_install(&s, 0);
  st = dnn_strat_predict(&in, &p, &e);
  test_alloc_restore();
  assert_int_equal(st, DNN_ENOMEM);
  test_world_free(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_size_config_tables),
      cmocka_unit_test(test_mixed_sizes),
      cmocka_unit_test(test_batch_augmentation),
      cmocka_unit_test(test_sparse_gradients),
      cmocka_unit_test(test_expected_max),
      cmocka_unit_test(test_stragglers),
      cmocka_unit_test(test_clock_recurrence),
      cmocka_unit_test(test_compression),
      cmocka_unit_test(test_micro_batching),
      cmocka_unit_test(test_comm_profile),
      cmocka_unit_test(test_optimizer_without_fp32_peak),
      cmocka_unit_test(test_bubble_never_negative),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
