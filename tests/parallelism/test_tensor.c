/* Tests of tensor, model and operator parallelism (tensor.c, layertab.c):
 * Megatron's communication per transformer block against hand counts
 * (two allreduces per pass, or reduce-scatter plus allgather with sequence
 * parallelism), the split compute, parameters and Korthikanti's activation
 * memory per device, the CNN splits by channel, rows of the image (halo)
 * and batch with their redistribution, t = 1 against the plain layer
 * times, total FLOPs conserved over every (d, t, p), and the hybrid's
 * errors. */
#include "test_fixtures.h"

#include <math.h>
#include <string.h>

#include "dnnsim/comm.h"
#include "dnnsim/hw.h"
#include "dnnsim/scenario.h"
#include "dnnsim/strat.h"
#include "parallelism/internal.h"

typedef test_world world;

/* A small GPT: 3 blocks, h = 1536, 12 heads, s = 384, V = 8192, fp16, on
 * one node of 8 A100s; tensor 4, 2 micro-batches of 4 sequences. */
static const char *gpt_text =
    "[model]\nname = gpt\nlayers = 3\nhidden = 1536\nheads = 12\n"
    "seq = 384\nvocab = 8192\nbatch = 16\ndtype = fp16\n"
    "[hardware]\nprofile = a100-sxm4-80gb\n"
    "[cluster]\nnodes = 1\ndevices_per_node = 8\nintra_link = nvlink3\n"
    "[parallelism]\ntensor = 4\nmicrobatches = 2\noverlap = false\n"
    "[training]\noptimizer = adam\n";

#define H 1536.0
#define S 384.0
#define A 12.0
#define MBS 4.0
#define EB 2.0

static void load(world *w, const char *text, const char *sets) {
  test_world_load(w, text, "tp.ini", NULL, sets, true);
}

static size_t find(const world *w, const char *name) {
  size_t i;
  dnn_error e;
  assert_ok(dnn_net_find(w->net, name, &i), &e);
  return i;
}

/* Collective seconds over the scenario's tensor group. */
static double coll(const world *w, dnn_comm_op op, double bytes) {
  dnn_strat_input in = test_world_input(w);
  dnn_comm_topo topo = dnn__tp_topo(&in, w->scn.parallelism.tensor);
  dnn_comm_cost c;
  dnn_error e;
  assert_ok(dnn_comm_time(op, DNN_COMM_ALGO_AUTO, bytes, &topo, &c, &e), &e);
  return c.time_s;
}

static bool in_block(const world *w, size_t i, const char *prefix) {
  return strncmp(dnn_net_layer(w->net, i)->name, prefix, strlen(prefix)) == 0;
}

/* ---- Megatron ------------------------------------------------------------ */

/* Loads the GPT world with `sets`; its per-layer times at 4 samples
 * (free with free()). */
static dnn_layer_time *gpt_layer_times(world *w, const char *sets) {
  load(w, gpt_text, sets);
  dnn_strat_input in = test_world_input(w);
  dnn_layer_time *lt = calloc(dnn_net_layer_count(w->net), sizeof *lt);
  dnn_strat_layer_times(&in, 4, lt);
  return lt;
}

static void test_block_comm_by_hand(void **state) {
  (void)state;
  world w;
  dnn_layer_time *lt = gpt_layer_times(&w, "");
  size_t L = dnn_net_layer_count(w.net);
  double sbh = S * MBS * H * EB; /* one s x b x h tensor, bytes */
  for (int blk = 0; blk < 3; blk++) {
    char prefix[16];
    snprintf(prefix, sizeof prefix, "h.%d.", blk);
    double bytes[DNN_PASS_COUNT] = {0}, secs[DNN_PASS_COUNT] = {0};
    for (size_t i = 0; i < L; i++)
      if (in_block(&w, i, prefix))
        for (int p = 0; p < DNN_PASS_COUNT; p++) {
          bytes[p] += lt[i].comm_bytes[p];
          secs[p] += lt[i].comm_s[p];
        }
    /* Two allreduces of s b h per pass (Shoeybi et al.): after proj and
     * fc2 forward, before qkv and fc1 backward (their input gradient). */
    assert_close(bytes[DNN_PASS_FWD], 2 * sbh, 1e-12);
    assert_close(bytes[DNN_PASS_BWD_DATA], 2 * sbh, 1e-12);
    assert_close(bytes[DNN_PASS_BWD_WEIGHTS], 0, 0);
    double ar = coll(&w, DNN_COMM_ALLREDUCE, sbh);
    assert_true(ar > 0);
    assert_close(secs[DNN_PASS_FWD], 2 * ar, 1e-12);
    assert_close(secs[DNN_PASS_BWD_DATA], 2 * ar, 1e-12);
  }
  assert_close(lt[find(&w, "h.1.proj")].comm_bytes[DNN_PASS_FWD], sbh, 1e-12);
  assert_close(lt[find(&w, "h.1.fc2")].comm_bytes[DNN_PASS_FWD], sbh, 1e-12);
  assert_close(lt[find(&w, "h.1.qkv")].comm_bytes[DNN_PASS_BWD_DATA], sbh,
               1e-12);
  assert_close(lt[find(&w, "h.1.fc1")].comm_bytes[DNN_PASS_BWD_DATA], sbh,
               1e-12);
  /* The vocabulary-parallel embedding reduces its output; the tied LM head
   * its input gradient. */
  assert_close(lt[find(&w, "wte")].comm_bytes[DNN_PASS_FWD], sbh, 1e-12);
  assert_close(lt[find(&w, "lm_head")].comm_bytes[DNN_PASS_BWD_DATA], sbh,
               1e-12);
  assert_close(lt[find(&w, "loss")].comm_bytes[DNN_PASS_FWD], 0, 0);
  assert_int_equal(lt[find(&w, "h.1.qkv")].split, DNN_SPLIT_COLUMN);
  assert_int_equal(lt[find(&w, "h.1.fc2")].split, DNN_SPLIT_ROW);
  assert_int_equal(lt[find(&w, "h.1.softmax")].split, DNN_SPLIT_HEADS);
  assert_int_equal(lt[find(&w, "h.1.ln1")].split, DNN_SPLIT_NONE);
  free(lt);
  test_world_free(&w);
}

static void test_block_comm_sequence_parallel(void **state) {
  (void)state;
  world w;
  dnn_layer_time *lt =
      gpt_layer_times(&w, "parallelism.sequence_parallel=true");
  size_t L = dnn_net_layer_count(w.net);
  double sbh = S * MBS * H * EB;
  double bytes[DNN_PASS_COUNT] = {0}, secs[DNN_PASS_COUNT] = {0};
  for (size_t i = 0; i < L; i++)
    if (in_block(&w, i, "h.2."))
      for (int p = 0; p < DNN_PASS_COUNT; p++) {
        bytes[p] += lt[i].comm_bytes[p];
        secs[p] += lt[i].comm_s[p];
      }
  /* Korthikanti et al.: each allreduce becomes a reduce-scatter and an
   * allgather, the same volume: two of each per pass. */
  double rs = coll(&w, DNN_COMM_REDUCE_SCATTER, sbh);
  double ag = coll(&w, DNN_COMM_ALLGATHER, sbh);
  assert_close(bytes[DNN_PASS_FWD], 4 * sbh, 1e-12);
  assert_close(bytes[DNN_PASS_BWD_DATA], 4 * sbh, 1e-12);
  assert_close(secs[DNN_PASS_FWD], 2 * (rs + ag), 1e-12);
  assert_close(secs[DNN_PASS_BWD_DATA], 2 * (rs + ag), 1e-12);
  assert_close(lt[find(&w, "h.2.qkv")].comm_s[DNN_PASS_FWD], ag, 1e-12);
  assert_close(lt[find(&w, "h.2.proj")].comm_s[DNN_PASS_FWD], rs, 1e-12);
  assert_int_equal(lt[find(&w, "h.2.ln1")].split, DNN_SPLIT_SEQUENCE);
  /* The replicated layers work on s / t tokens. */
  const dnn_hw_params *hp = dnn_hw_get(w.hw);
  (void)hp;
  size_t ln = find(&w, "h.2.ln1");
  dnn_cost c;
  dnn_layer_cost(w.net, ln, DNN_PASS_FWD, 4, DNN_DTYPE_FP16, &c);
  assert_close(lt[ln].time_s[DNN_PASS_FWD],
               dnn_hw_kernel_time(w.hw, DNN_OP_NORM, DNN_DTYPE_FP16,
                                  c.flops / 4,
                                  (c.bytes_read + c.bytes_written) / 4),
               1e-12);
  free(lt);
  test_world_free(&w);
}

static void test_split_compute(void **state) {
  (void)state;
  world w;
  dnn_layer_time *lt = gpt_layer_times(&w, "");
  /* A column layer computes a quarter of the GEMM: the roofline of a
   * quarter of its work (with n_1/2 and the launch, so more than a
   * quarter of the time). */
  size_t qkv = find(&w, "h.0.qkv");
  for (int p = 0; p < DNN_PASS_COUNT; p++) {
    dnn_cost c;
    dnn_layer_cost(w.net, qkv, (dnn_pass)p, 4, DNN_DTYPE_FP16, &c);
    double want =
        dnn_hw_kernel_time(w.hw, DNN_OP_GEMM, DNN_DTYPE_FP16, c.flops / 4,
                           (c.bytes_read + c.bytes_written) / 4);
    assert_close(lt[qkv].time_s[p], want, 1e-12);
    double full = dnn_hw_layer_time(w.hw, w.net, qkv, (dnn_pass)p, 4,
                                    DNN_DTYPE_FP16, 64 * 1048576.0, NULL, NULL);
    assert_true(lt[qkv].time_s[p] > full / 4 && lt[qkv].time_s[p] < full);
  }
  /* A replicated layer costs what it costs on one device. */
  size_t ln = find(&w, "h.0.ln2");
  assert_close(lt[ln].time_s[DNN_PASS_FWD],
               dnn_hw_layer_time(w.hw, w.net, ln, DNN_PASS_FWD, 4,
                                 DNN_DTYPE_FP16, 64 * 1048576.0, NULL, NULL),
               0);
  free(lt);
  test_world_free(&w);
}

/* Parameters and Korthikanti's activation memory per device, per block,
 * from the per-layer rows. */
static void check_block_memory(bool sp) {
  world w;
  load(&w, gpt_text, sp ? "parallelism.sequence_parallel=true" : "");
  dnn_strat_input in = test_world_input(&w);
  dnn__layer_tab tab;
  dnn_error e;
  assert_ok(dnn__layer_tab_build(&in, NULL, 4, 4, &tab, &e), &e);
  double act = 0, params = 0;
  for (size_t i = 0; i < tab.layers; i++)
    if (in_block(&w, i, "h.1.")) {
      act += tab.row[i].act_bytes;
      params += tab.row[i].params;
    }
  double t = 4, sbh = S * MBS * H;
  /* s b h (10 + 24/t + 5 a s/(h t)), plus the layer norms' fp32 mean and
   * inverse deviation (16 s b, replicated: docs/models.md §11.6); with
   * sequence parallelism all of it / t. */
  double want = sp ? (sbh * (34 + 5 * A * S / H) + 16 * S * MBS) / t
                   : sbh * (10 + 24 / t + 5 * A * S / (H * t)) + 16 * S * MBS;
  assert_close(act, want, 1e-12);
  /* 12 h^2 + 9 h split four ways (weights and biases of the four GEMMs),
   * the two layer norms' 4 h replicated. */
  assert_close(params, (12 * H * H + 9 * H) / t + 4 * H, 1e-12);
  dnn__layer_tab_release(&tab);
  dnn__layer_tab_release(NULL);
  test_world_free(&w);
}

static void test_block_memory_by_hand(void **state) {
  (void)state;
  check_block_memory(false);
  check_block_memory(true);
}

/* A boundary between pipeline stages carries s b h / t per tensor rank
 * (Megatron's scatter/gather), and the tied LM head's stage holds a copy
 * of the embedding. */
static void test_pipeline_with_tensor(void **state) {
  (void)state;
  world w;
  load(&w, gpt_text,
       "parallelism.pipeline=2 parallelism.microbatches=4 "
       "parallelism.partition=50,3");
  dnn_strat_input in = test_world_input(&w);
  dnn__stage_model sm;
  dnn_error e;
  assert_ok(dnn__strat_find(&w.scn)->build(&in, NULL, NULL, &sm, &e), &e);
  assert_int_equal(sm.t, 4);
  assert_int_equal(sm.d, 1);
  assert_int_equal(sm.stages[1].first, 50);
  /* Layer 49 is h.2.add2: one tensor crosses. */
  assert_string_equal(dnn_net_layer(w.net, 49)->name, "h.2.add2");
  double mbs = 16.0 / 1 / 4;
  assert_close(sm.stages[0].send_fwd.bytes, S * mbs * H * EB / 4, 1e-12);
  assert_close(sm.stages[1].send_bwd.bytes, S * mbs * H * EB / 4, 1e-12);
  size_t wte = find(&w, "wte");
  double copy = dnn__d(dnn_net_layer(w.net, wte)->params) / 4;
  double total1 = 0;
  for (size_t i = 50; i < dnn_net_layer_count(w.net); i++)
    total1 += dnn__stage_layer_params(&sm, i);
  assert_close(sm.stages[1].params, total1, 1e-12);
  size_t head = find(&w, "lm_head");
  assert_close(dnn__stage_layer_params(&sm, head), copy, 1e-12);
  dnn__stage_model_release(&sm);
  test_world_free(&w);
}

/* ---- Operator parallelism (CNNs) ----------------------------------------- */

/* input 24 x 40 x 40 -> conv a (3x3, 32) -> relu -> conv b (3x3, 48). */
static const char *chain_net =
    "[layer.data]\ntype = input\nshape = 24,40,40\n"
    "[layer.a]\ntype = conv2d\ninput = data\nout_channels = 32\n"
    "kernel = 3\npadding = 1\n"
    "[layer.r]\ntype = activation\ninput = a\nact = relu\n"
    "[layer.b]\ntype = conv2d\ninput = r\nout_channels = 48\nkernel = 3\n"
    "padding = 1\n";

static void cnn_world(world *w, const char *split) {
  char text[1024];
  snprintf(text, sizeof text,
           "[model]\nfile = chain.ini\nbatch = 16\ndtype = fp16\n"
           "[hardware]\nprofile = v100-sxm2\n"
           "[cluster]\nnodes = 1\ndevices_per_node = 4\nintra_link = nvlink2\n"
           "[parallelism]\ntensor = 4\ndata = 1\ntensor_split = %s\n",
           split);
  dnn_error e;
  dnn_scn_init(&w->scn);
  assert_ok(dnn_scn_load_string(text, "cnn.ini", NULL, &w->scn, &e), &e);
  assert_ok(dnn_scn_validate(&w->scn, &e), &e);
  assert_ok(dnn_scn_load_hw(&w->scn, &w->hw, &e), &e);
  assert_ok(dnn_scn_cluster(&w->scn, &w->cluster, &e), &e);
  assert_ok(dnn_scn_load_net_string(chain_net, "chain.ini", 0, &w->net, &e),
            &e);
}

static void test_cnn_channel_split(void **state) {
  (void)state;
  world w;
  cnn_world(&w, "channel");
  dnn_strat_input in = test_world_input(&w);
  dnn_layer_time lt[4];
  dnn_strat_layer_times(&in, 16, lt);
  /* Conv a reads the data (any slice is free) and splits its 32 output
   * channels; relu keeps the split; conv b gathers its input and reduce-
   * scatters the input gradient (a partial sum over its output channels). */
  assert_int_equal(lt[1].split, DNN_SPLIT_CHANNEL);
  assert_int_equal(lt[2].split, DNN_SPLIT_CHANNEL);
  assert_int_equal(lt[3].split, DNN_SPLIT_CHANNEL);
  assert_close(lt[1].comm_s[DNN_PASS_FWD] + lt[1].comm_s[DNN_PASS_BWD_DATA], 0,
               0);
  double A_in = 16.0 * 32 * 40 * 40 * 2;
  assert_close(lt[3].comm_bytes[DNN_PASS_FWD], A_in, 1e-12);
  assert_close(lt[3].comm_s[DNN_PASS_FWD], coll(&w, DNN_COMM_ALLGATHER, A_in),
               1e-12);
  assert_close(lt[3].comm_s[DNN_PASS_BWD_DATA],
               coll(&w, DNN_COMM_REDUCE_SCATTER, A_in), 1e-12);
  /* Filters split: no gradient to reduce in the group. */
  assert_close(lt[3].group_grad_bytes, 0, 0);
  test_world_free(&w);
}

static void test_cnn_spatial_split(void **state) {
  (void)state;
  world w;
  cnn_world(&w, "spatial");
  dnn_strat_input in = test_world_input(&w);
  dnn_layer_time lt[4];
  dnn_strat_layer_times(&in, 16, lt);
  assert_int_equal(lt[1].split, DNN_SPLIT_SPATIAL);
  assert_int_equal(lt[3].split, DNN_SPLIT_SPATIAL);
  /* A 3x3 kernel needs one row from each neighbour: 1 x W x C_in x N. */
  double halo_b = 1.0 * 40 * 32 * 16 * 2;
  assert_close(lt[3].comm_bytes[DNN_PASS_FWD], halo_b, 1e-12);
  assert_close(lt[3].comm_s[DNN_PASS_FWD], coll(&w, DNN_COMM_P2P, halo_b),
               1e-12);
  assert_close(lt[3].comm_bytes[DNN_PASS_BWD_DATA], halo_b, 1e-12);
  /* Conv a has no input gradient: a forward halo only. */
  assert_close(lt[1].comm_bytes[DNN_PASS_FWD], 1.0 * 40 * 24 * 16 * 2, 1e-12);
  assert_close(lt[1].comm_bytes[DNN_PASS_BWD_DATA], 0, 0);
  /* Weights replicated: their gradients are allreduced in the group. */
  size_t pb = dnn_net_layer(w.net, 3)->params;
  assert_close(lt[3].group_grad_bytes, dnn__d(pb) * 2, 1e-12);
  test_world_free(&w);
}

static void test_cnn_batch_split(void **state) {
  (void)state;
  world w;
  cnn_world(&w, "batch");
  dnn_strat_input in = test_world_input(&w);
  dnn_layer_time lt[4];
  dnn_strat_layer_times(&in, 16, lt);
  assert_int_equal(lt[3].split, DNN_SPLIT_BATCH);
  /* t divides the batch: the time of the best algorithm at 4 samples. */
  for (int p = 0; p < DNN_PASS_COUNT; p++) {
    double want = dnn_hw_layer_time(w.hw, w.net, 3, (dnn_pass)p, 4,
                                    DNN_DTYPE_FP16, 64 * 1048576.0, NULL, NULL);
    assert_close(lt[3].time_s[p], want, 1e-12);
  }
  assert_close(lt[3].comm_s[DNN_PASS_FWD], 0, 0);
  test_world_free(&w);
}

/* auto takes, layer by layer, the cheapest of the three. */
static void test_cnn_auto_is_cheapest(void **state) {
  (void)state;
  static const char *splits[] = {"channel", "spatial", "batch"};
  double cost[3];
  for (int k = 0; k < 3; k++) {
    world w;
    cnn_world(&w, splits[k]);
    dnn_strat_input in = test_world_input(&w);
    dnn_layer_time lt[4];
    dnn_strat_layer_times(&in, 16, lt);
    cost[k] = 0;
    for (int p = 0; p < DNN_PASS_COUNT; p++)
      cost[k] += lt[1].time_s[p] + lt[1].comm_s[p];
    test_world_free(&w);
  }
  world w;
  cnn_world(&w, "auto");
  dnn_strat_input in = test_world_input(&w);
  dnn_layer_time lt[4];
  dnn_strat_layer_times(&in, 16, lt);
  double c = 0;
  for (int p = 0; p < DNN_PASS_COUNT; p++)
    c += lt[1].time_s[p] + lt[1].comm_s[p];
  /* Conv a's own cost (its gradient allreduce counted once). */
  double best = INFINITY;
  for (int k = 0; k < 3; k++)
    best = fmin(best, cost[k]);
  assert_true(c <= best * (1 + 1e-12) + 1e-6);
  test_world_free(&w);
}

/* ---- t = 1, FLOPs, errors -------------------------------------------------
 */

static void test_t1_is_plain(void **state) {
  (void)state;
  world w;
  load(&w,
       "[model]\nname = resnet50\nbatch = 64\nimage = 96\ndtype = fp16\n"
       "[hardware]\nprofile = v100-sxm2\nworkspace_MB = 7.3\n",
       "");
  dnn_strat_input in = test_world_input(&w);
  size_t L = dnn_net_layer_count(w.net);
  dnn_layer_time *lt = calloc(L, sizeof *lt);
  dnn_strat_layer_times(&in, 19, lt);
  for (size_t i = 0; i < L; i++)
    for (int p = 0; p < DNN_PASS_COUNT; p++) {
      dnn_conv_algo a;
      double ws;
      double t = dnn_hw_layer_time(w.hw, w.net, i, (dnn_pass)p, 19,
                                   DNN_DTYPE_FP16, 7.3 * 1048576, &a, &ws);
      assert_close(lt[i].time_s[p], t, 0);
      assert_int_equal(lt[i].algo[p], a);
      assert_close(lt[i].comm_s[p], 0, 0);
      assert_int_equal(lt[i].split, DNN_SPLIT_NONE);
    }
  free(lt);
  test_world_free(&w);
}

/* Every (d, t, p) of 8 devices computes the same model FLOPs per
 * iteration: flops per device x devices x time = the global batch's. */
static void check_flops(const char *text, const size_t (*cfg)[3], size_t n) {
  world w;
  load(&w, text, "");
  dnn_net_totals tot;
  dnn_net_totals_get(w.net, w.scn.model.batch, w.scn.model.dtype, &tot);
  double want = tot.flops[0] + tot.flops[1] + tot.flops[2];
  for (size_t k = 0; k < n; k++) {
    w.scn.parallelism.data = cfg[k][0];
    w.scn.parallelism.tensor = cfg[k][1];
    w.scn.parallelism.pipeline = cfg[k][2];
    w.scn.parallelism.microbatches = cfg[k][2] > 1 ? 2 : 1;
    w.scn.engine = DNN_ENGINE_ANALYTIC;
    dnn_strat_input in = test_world_input(&w);
    dnn_prediction p;
    dnn_error e;
    assert_ok(dnn_strat_predict(&in, &p, &e), &e);
    assert_close(p.flops_per_device_per_s * 8 * p.iteration_s, want, 1e-9);
    assert_int_equal(p.data * p.tensor * p.pipeline, 8);
    assert_true(p.scaling_efficiency > 0 && p.scaling_efficiency <= 1);
  }
  test_world_free(&w);
}

static void test_flops_conserved(void **state) {
  (void)state;
  static const size_t cfg[][3] = {{8, 1, 1}, {4, 2, 1}, {2, 4, 1},
                                  {1, 8, 1}, {4, 1, 2}, {2, 2, 2},
                                  {1, 4, 2}, {2, 1, 4}, {1, 2, 4}};
  /* 12 heads: every t but 8. */
  static const size_t gcfg[][3] = {{8, 1, 1}, {4, 2, 1}, {2, 4, 1}, {4, 1, 2},
                                   {2, 2, 2}, {1, 4, 2}, {2, 1, 4}, {1, 2, 4}};
  check_flops(gpt_text, gcfg, DNN_ARRAY_LEN(gcfg));
  check_flops("[model]\nname = resnet18\nbatch = 32\nimage = 64\n"
              "[hardware]\nprofile = v100-sxm2\n"
              "[cluster]\nnodes = 1\ndevices_per_node = 8\n"
              "intra_link = nvlink2\n",
              cfg, DNN_ARRAY_LEN(cfg));
}

static void test_errors(void **state) {
  (void)state;
  world w;
  dnn_error e;
  dnn_prediction p;
  /* 12 heads over 8 ranks. */
  load(&w, gpt_text, "parallelism.tensor=8");
  dnn_strat_input in = test_world_input(&w);
  assert_int_equal(dnn_strat_predict(&in, &p, &e), DNN_EINVAL);
  assert_contains(e.msg, "--set parallelism.tensor");
  assert_contains(e.msg, "12 attention heads");
  dnn_strat_sim *ss = NULL;
  assert_int_equal(dnn_strat_sim_alloc(&in, &ss, &e), DNN_EINVAL);
  assert_null(ss);
  test_world_free(&w);
  /* Sequence parallelism over a sequence t does not divide. */
  load(&w, gpt_text, "model.seq=382 parallelism.sequence_parallel=true");
  in = test_world_input(&w);
  assert_int_equal(dnn_strat_predict(&in, &p, &e), DNN_EINVAL);
  assert_contains(e.msg, "--set parallelism.sequence_parallel");
  assert_contains(e.msg, "382 tokens");
  test_world_free(&w);
  /* ZeRO 2 with a pipeline, at the line it was set. */
  load(&w,
       "[model]\nname = resnet18\nbatch = 64\nimage = 64\n"
       "[hardware]\nprofile = v100-sxm2\n"
       "[cluster]\nnodes = 1\ndevices_per_node = 4\nintra_link = nvlink2\n"
       "[parallelism]\npipeline = 2\nmicrobatches = 2\n"
       "[training]\nzero = 2\n",
       "");
  in = test_world_input(&w);
  assert_int_equal(dnn_strat_predict(&in, &p, &e), DNN_EINVAL);
  assert_contains(e.msg, "tp.ini:15: [training] zero");
  assert_contains(e.msg, "pipeline");
  test_world_free(&w);
  /* Virtual stages without a pipeline. */
  load(&w, gpt_text,
       "parallelism.schedule=interleaved parallelism.virtual_stages=2");
  in = test_world_input(&w);
  assert_int_equal(dnn_strat_predict(&in, &p, &e), DNN_EINVAL);
  assert_contains(e.msg, "need a pipeline");
  test_world_free(&w);
  assert_string_equal(dnn_split_name(DNN_SPLIT_SPATIAL), "spatial");
  assert_string_equal(dnn_split_name((dnn_split)99), "?");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_block_comm_by_hand),
      cmocka_unit_test(test_block_comm_sequence_parallel),
      cmocka_unit_test(test_split_compute),
      cmocka_unit_test(test_block_memory_by_hand),
      cmocka_unit_test(test_pipeline_with_tensor),
      cmocka_unit_test(test_cnn_channel_split),
      cmocka_unit_test(test_cnn_spatial_split),
      cmocka_unit_test(test_cnn_batch_split),
      cmocka_unit_test(test_cnn_auto_is_cheapest),
      cmocka_unit_test(test_t1_is_plain),
      cmocka_unit_test(test_flops_conserved),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
