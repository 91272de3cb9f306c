/* Tests of parallelism/microbatch_plan.c: planning a network's convolution
 * kernels on a hardware profile. The undivided baseline against
 * dnn_hw_layer_time, the DP against brute force over every division of the
 * batch with dnn_hw_conv_time costs, the ILP against the DP, monotony in
 * the limits, measured kernel tables, the predictor's per-layer hook, and
 * the error paths. */
#include "test_fixtures.h"

#include <math.h>
#include <string.h>

#include "dnnsim/hw.h"
#include "dnnsim/mbatch.h"
#include "dnnsim/scenario.h"
#include "dnnsim/strat.h"
#include "parallelism/internal.h"

#define MIB (1024.0 * 1024.0)

/* Four convolutions the algorithm models treat differently: a 5x5 first
 * layer (no backward-data pass; FFT and Winograd non-fused apply), a 3x3
 * (every algorithm), a 1x1 and a strided 3x3 (GEMM family only). */
static const char *net_text =
    "[network]\nname = mb-test\n"
    "[layer.data]\ntype = input\nshape = 37, 29, 29\n"
    "[layer.conv1]\ntype = conv2d\nout_channels = 61\nkernel = 5\n"
    "padding = 2\n"
    "[layer.relu1]\ntype = relu\n"
    "[layer.conv2]\ntype = conv2d\nout_channels = 93\nkernel = 3\n"
    "padding = 1\nbias = false\n"
    "[layer.conv3]\ntype = conv2d\nout_channels = 71\nkernel = 1\n"
    "[layer.conv4]\ntype = conv2d\nout_channels = 131\nkernel = 3\n"
    "stride = 2\n"
    "[layer.gap]\ntype = global_avgpool\n"
    "[layer.fc]\ntype = fc\nout_features = 10\n";

static dnn_hw_params test_params(void) {
  dnn_hw_params p = dnn_hw_default_params();
  snprintf(p.name, sizeof p.name, "mb-test-device");
  p.peak_flops[DNN_DTYPE_FP32] = 9.71e12;
  p.peak_flops[DNN_DTYPE_FP16] = 19.3e12;
  p.mem_bandwidth_Bps = 693e9;
  p.mem_capacity_bytes = 15.7e9;
  p.launch_overhead_s = 5.37e-6;
  for (size_t c = 0; c < DNN_OPCLASS_COUNT; c++) {
    p.eff_compute[c] = 0.683 - 0.021 * (double)c;
    p.eff_memory[c] = 0.791 - 0.013 * (double)c;
    p.half_flops[c] = 4.3e7;
  }
  double eff[DNN_CONV_ALGO_COUNT] = {0.43, 0.63, 0.57, 0.29,
                                     0.41, 0.36, 0.47, 0.52};
  memcpy(p.eff_conv_algo, eff, sizeof eff);
  return p;
}

typedef struct fix {
  dnn_net *net;
  dnn_hw *hw;
} fix;

static fix setup(const dnn_hw_params *p) {
  fix f;
  dnn_error e;
  assert_ok(dnn_scn_load_net_string(net_text, "mb-test.ini", 0, &f.net, &e),
            &e);
  assert_ok(dnn_hw_alloc(p, &f.hw, &e), &e);
  return f;
}

static void teardown(fix *f) {
  dnn_net_free(f->net);
  dnn_hw_free(f->hw);
}

static dnn_mb_plan *plan(const fix *f, size_t batch, dnn_microbatching solver,
                         dnn_mb_policy pol, double M, double total,
                         double gap) {
  dnn_mb_params p = dnn_mb_default_params();
  p.solver = solver;
  p.policy = pol;
  p.layer_workspace_bytes = M;
  p.total_workspace_bytes = total;
  p.ilp_gap = gap;
  dnn_mb_plan *pl = NULL;
  dnn_error e;
  assert_ok(
      dnn_mb_plan_build(f->net, f->hw, batch, DNN_DTYPE_FP32, &p, &pl, &e), &e);
  return pl;
}

static double conv_time(const fix *f, const dnn_mb_kernel *k, size_t b,
                        size_t a, double *ws) {
  return dnn_hw_conv_time(f->hw, f->net, k->layer, k->pass, (dnn_conv_algo)a, b,
                          DNN_DTYPE_FP32, ws);
}

/* A chosen configuration is its micro-batches' kernels, summed. */
static void check_sum(const fix *f, const dnn_mb_kernel *k, size_t batch,
                      double M) {
  double t = 0, wmax = 0;
  size_t samples = 0;
  for (size_t i = 0; i < k->chosen.n_parts; i++) {
    const dnn_mb_part *p = &k->chosen.parts[i];
    double ws;
    double tp = conv_time(f, k, p->batch, p->algo, &ws);
    assert_true(tp == p->time_s);
    assert_true(ws == p->workspace_bytes && ws <= M);
    t += (double)p->count * tp;
    wmax = fmax(wmax, ws);
    samples += p->count * p->batch;
  }
  assert_int_equal(samples, batch);
  assert_close(k->chosen.time_s, t, 1e-12);
  assert_true(k->chosen.workspace_bytes == wmax);
}

static void test_undivided_matches_hw(void **state) {
  (void)state;
  dnn_hw_params hp = test_params();
  fix f = setup(&hp);
  const double M = 0.371 * MIB;
  const size_t batch = 13;
  dnn_mb_plan *pl =
      plan(&f, batch, DNN_MICROBATCHING_NONE, DNN_MB_POLICY_ALL, M, 0, 0);
  /* Four convolutions, three passes each, but conv1 has no bwd_data. */
  assert_int_equal(dnn_mb_plan_kernel_count(pl), 11);
  for (size_t k = 0; k < 11; k++) {
    const dnn_mb_kernel *kn = dnn_mb_plan_kernel(pl, k);
    dnn_conv_algo algo;
    double ws;
    double t = dnn_hw_layer_time(f.hw, f.net, kn->layer, kn->pass, batch,
                                 DNN_DTYPE_FP32, M, &algo, &ws);
    assert_true(kn->baseline.time_s == t);
    assert_true(kn->baseline.workspace_bytes == ws);
    assert_int_equal(kn->baseline.parts[0].algo, algo);
    assert_int_equal(kn->baseline.parts[0].batch, batch);
    assert_true(kn->chosen.time_s == kn->baseline.time_s);
    assert_int_equal(kn->n_candidates, 1);
  }
  assert_int_equal(dnn_mb_plan_kernel(pl, 0)->layer, 1);
  assert_int_equal(dnn_mb_plan_kernel(pl, 1)->pass, DNN_PASS_BWD_WEIGHTS);
  dnn_mb_summary s;
  dnn_mb_plan_summary(pl, &s);
  assert_int_equal(s.kernels, 11);
  assert_int_equal(s.conv_layers, 4);
  assert_true(s.speedup == 1.0);
  assert_true(s.total_limit_bytes == M);
  dnn_mb_plan_free(pl);
  teardown(&f);
}

/* Brute force: the fastest division of N into parts of allowed sizes,
 * each part with its own fastest fitting algorithm (parts are independent
 * under a per-part limit), over every partition of N. */
static double best_partition(const double *t1, const bool *allowed, size_t left,
                             size_t max_part) {
  if (left == 0)
    return 0;
  double best = INFINITY;
  for (size_t s = max_part < left ? max_part : left; s >= 1; s--)
    if (allowed[s] && isfinite(t1[s]))
      best = fmin(best, t1[s] + best_partition(t1, allowed, left - s, s));
  return best;
}

static void test_dp_brute_force(void **state) {
  (void)state;
  dnn_hw_params hp = test_params();
  fix f = setup(&hp);
  const size_t N = 12;
  size_t divided = 0;
  double limits[] = {0.0173 * MIB, 0.173 * MIB, 1.73 * MIB, 17.3 * MIB};
  for (size_t li = 0; li < 4; li++)
    for (int pol = 0; pol <= DNN_MB_POLICY_ALL; pol++) {
      double M = limits[li];
      dnn_mb_plan *pl =
          plan(&f, N, DNN_MICROBATCHING_DP, (dnn_mb_policy)pol, M, 0, 0);
      size_t S[16];
      size_t nS = dnn_mb_sizes((dnn_mb_policy)pol, N, S, 16);
      bool allowed[N + 1];
      memset(allowed, 0, sizeof allowed);
      for (size_t j = 0; j < nS; j++)
        allowed[S[j]] = true;
      for (size_t k = 0; k < dnn_mb_plan_kernel_count(pl); k++) {
        const dnn_mb_kernel *kn = dnn_mb_plan_kernel(pl, k);
        double t1[N + 1];
        for (size_t b = 1; b <= N; b++) {
          t1[b] = INFINITY;
          for (size_t a = 0; a < DNN_CONV_ALGO_COUNT; a++) {
            double ws, t = conv_time(&f, kn, b, a, &ws);
            if (ws <= M)
              t1[b] = fmin(t1[b], t);
          }
        }
        assert_close(kn->chosen.time_s, best_partition(t1, allowed, N, N),
                     1e-12);
        assert_true(kn->chosen.time_s <= kn->baseline.time_s);
        check_sum(&f, kn, N, M);
        divided += kn->chosen.n_microbatches > 1;
      }
      dnn_mb_plan_free(pl);
    }
  assert_true(divided >= 4); /* some kernels do divide */
  teardown(&f);
}

static void test_limits_and_solvers(void **state) {
  (void)state;
  dnn_hw_params hp = test_params();
  fix f = setup(&hp);
  const size_t N = 48;
  double prev_dp = INFINITY, prev_ilp = INFINITY;
  for (double M = 0; M < 40 * MIB; M = M * 2.7 + 0.0137 * MIB) {
    dnn_mb_plan *dp =
        plan(&f, N, DNN_MICROBATCHING_DP, DNN_MB_POLICY_POWER_OF_TWO, M, 0, 0);
    dnn_mb_plan *all =
        plan(&f, N, DNN_MICROBATCHING_DP, DNN_MB_POLICY_ALL, M, 0, 0);
    dnn_mb_summary sd, sa, si, sw;
    dnn_mb_plan_summary(dp, &sd);
    dnn_mb_plan_summary(all, &sa);
    /* ilp with one M per kernel can always copy the DP's choice. */
    double kernels = (double)sd.kernels;
    dnn_mb_plan *ilp = plan(&f, N, DNN_MICROBATCHING_ILP,
                            DNN_MB_POLICY_POWER_OF_TWO, M, kernels * M, 0);
    dnn_mb_plan_summary(ilp, &si);
    assert_true(si.chosen_s <= sd.chosen_s * (1 + 1e-12));
    assert_true(si.workspace_sum_bytes <= kernels * M);
    assert_true(si.total_limit_bytes == kernels * M);
    /* The default total is M per convolution layer. */
    dnn_mb_plan *ilp0 =
        plan(&f, N, DNN_MICROBATCHING_ILP, DNN_MB_POLICY_POWER_OF_TWO, M, 0, 0);
    dnn_mb_plan_summary(ilp0, &sw);
    assert_true(sw.total_limit_bytes == 4 * M);
    assert_true(sw.workspace_sum_bytes <= 4 * M);
    assert_true(sw.chosen_s >= si.chosen_s * (1 - 1e-12));
    /* A total that fits everything: each kernel's fastest division at any
     * workspace, whatever the per-layer limit. */
    dnn_mb_plan *big = plan(&f, N, DNN_MICROBATCHING_ILP,
                            DNN_MB_POLICY_POWER_OF_TWO, M, 1e12, 0);
    dnn_mb_plan *free_dp = plan(&f, N, DNN_MICROBATCHING_DP,
                                DNN_MB_POLICY_POWER_OF_TWO, 1e12, 0, 0);
    dnn_mb_summary sb, sf;
    dnn_mb_plan_summary(big, &sb);
    dnn_mb_plan_summary(free_dp, &sf);
    assert_close(sb.chosen_s, sf.chosen_s, 1e-12);
    assert_true(sb.baseline_s == sd.baseline_s);
    dnn_mb_plan_free(big);
    dnn_mb_plan_free(free_dp);
    /* powerOfTwo never beats all; the DP never loses to undivided; a
     * larger limit is never slower. */
    assert_true(sa.chosen_s <= sd.chosen_s);
    assert_true(sd.chosen_s <= sd.baseline_s);
    assert_true(sd.chosen_s <= prev_dp);
    assert_true(si.chosen_s <= prev_ilp * (1 + 1e-12));
    assert_true(sd.workspace_max_bytes <= M);
    for (size_t k = 0; k < sd.kernels; k++)
      check_sum(&f, dnn_mb_plan_kernel(dp, k), N, M);
    prev_dp = sd.chosen_s;
    prev_ilp = si.chosen_s;
    assert_true(sd.speedup == sd.baseline_s / sd.chosen_s);
    dnn_mb_plan_free(dp);
    dnn_mb_plan_free(all);
    dnn_mb_plan_free(ilp);
    dnn_mb_plan_free(ilp0);
  }
  teardown(&f);
}

/* Measured rows replace the model for their kernel, and only measured
 * algorithms are candidates there unless none fits undivided. */
static void test_measured_table(void **state) {
  (void)state;
  dnn_hw_params hp = test_params();
  fix f = setup(&hp);
  size_t conv2, conv3;
  assert_ok(dnn_net_find(f.net, "conv2", &conv2), NULL);
  assert_ok(dnn_net_find(f.net, "conv3", &conv3), NULL);
  char sig[512], sig3[512];
  dnn_layer_signature(f.net, conv2, sig, sizeof sig);
  dnn_layer_signature(f.net, conv3, sig3, sizeof sig3);
  const dnn_conv_algo wnf = DNN_CONV_WINOGRAD_NONFUSED;
  dnn_error e;
  double ws[17];
  /* winograd_nonfused measured at 9.1 us + 2.93 us per sample. */
  for (size_t b = 1; b <= 16; b *= 2) {
    dnn_hw_conv_time(f.hw, f.net, conv2, DNN_PASS_FWD, wnf, b, DNN_DTYPE_FP32,
                     &ws[b]);
    dnn_hw_kernel_row r = {sig,  DNN_PASS_FWD,
                           wnf,  DNN_DTYPE_FP32,
                           b,    9.1e-6 + 2.93e-6 * (double)b,
                           ws[b]};
    assert_ok(dnn_hw_kernel_add(f.hw, &r, &e), &e);
  }
  /* conv3 measured only with fft, whose workspace exceeds the limit. */
  double ws3;
  dnn_hw_conv_time(f.hw, f.net, conv3, DNN_PASS_FWD, DNN_CONV_FFT, 16,
                   DNN_DTYPE_FP32, &ws3);
  dnn_hw_kernel_row rows[] = {
      {sig, DNN_PASS_FWD, DNN_CONV_IMPLICIT_GEMM, DNN_DTYPE_FP32, 16, 9.91e-5,
       0},
      {sig3, DNN_PASS_FWD, DNN_CONV_FFT, DNN_DTYPE_FP32, 16, 1.3e-6, ws3},
  };
  for (size_t i = 0; i < 2; i++)
    assert_ok(dnn_hw_kernel_add(f.hw, &rows[i], &e), &e);
  /* The limit admits winograd_nonfused up to 8 samples (not 16). */
  double M = ws[8] + 0.5 * (ws[16] - ws[8]);
  assert_true(ws3 > M);
  dnn_mb_plan *pl =
      plan(&f, 16, DNN_MICROBATCHING_DP, DNN_MB_POLICY_POWER_OF_TWO, M, 0, 0);
  const dnn_mb_kernel *kn = NULL, *k3 = NULL;
  for (size_t k = 0; k < dnn_mb_plan_kernel_count(pl); k++) {
    const dnn_mb_kernel *x = dnn_mb_plan_kernel(pl, k);
    if (x->pass == DNN_PASS_FWD && x->layer == conv2)
      kn = x;
    if (x->pass == DNN_PASS_FWD && x->layer == conv3)
      k3 = x;
  }
  assert_non_null(kn);
  assert_non_null(k3);
  /* Undivided: implicit_gemm (measured 99.1 us), as dnn_hw_layer_time. */
  assert_true(kn->baseline.time_s == 9.91e-5);
  assert_true(dnn_hw_layer_time(f.hw, f.net, conv2, DNN_PASS_FWD, 16,
                                DNN_DTYPE_FP32, M, NULL, NULL) == 9.91e-5);
  /* Divided: 2 x 8 winograd_nonfused at 32.54 us each (4 x 4 would take
   * 4 x 20.82 us; 8 + 4 + 4, 73.72 us). */
  assert_close(kn->chosen.time_s, 2 * (9.1e-6 + 8 * 2.93e-6), 1e-14);
  assert_int_equal(kn->chosen.n_parts, 1);
  assert_int_equal(kn->chosen.parts[0].algo, wnf);
  assert_int_equal(kn->chosen.parts[0].count, 2);
  assert_true(kn->chosen.workspace_bytes == ws[8]);
  /* conv3's measured algorithm never fits: modelled algorithms instead. */
  double t3 = dnn_hw_layer_time(f.hw, f.net, conv3, DNN_PASS_FWD, 16,
                                DNN_DTYPE_FP32, M, NULL, NULL);
  assert_true(k3->baseline.time_s == t3);
  assert_true(k3->chosen.time_s <= t3);
  dnn_mb_plan_free(pl);
  teardown(&f);
}

/* The predictor's hook: the same table as dnn_strat_layer_times with the
 * convolutions' passes replaced by the plan's. */
static void test_layer_times_hook(void **state) {
  (void)state;
  dnn_hw_params hp = test_params();
  fix f = setup(&hp);
  dnn_scenario scn;
  dnn_scn_init(&scn);
  scn.model.dtype = DNN_DTYPE_FP32;
  scn.hardware.workspace_MB = 17.3;
  scn.training.mb_policy = DNN_MB_POLICY_ALL;
  dnn_strat_input in = {&scn, f.net, f.hw, {0}};
  size_t n = dnn_net_layer_count(f.net), batch = 24;
  dnn_layer_time base[16], mb[16];
  assert_true(n <= 16);
  dnn_error e;
  dnn_strat_layer_times(&in, batch, base);
  scn.training.micro_batching = DNN_MICROBATCHING_NONE;
  assert_ok(dnn__mb_layer_times(&in, batch, mb, &e), &e);
  for (size_t i = 0; i < n; i++) {
    for (int p = 0; p < DNN_PASS_COUNT; p++) {
      assert_true(mb[i].time_s[p] == base[i].time_s[p]);
      assert_int_equal(mb[i].algo[p], base[i].algo[p]);
    }
    assert_true(mb[i].workspace_bytes == base[i].workspace_bytes);
  }

  scn.training.micro_batching = DNN_MICROBATCHING_DP;
  assert_ok(dnn__mb_layer_times(&in, batch, mb, &e), &e);
  dnn_mb_plan *pl = plan(&f, batch, DNN_MICROBATCHING_DP, DNN_MB_POLICY_ALL,
                         17.3 * MIB, 0, 0);
  double base_sum = 0, mb_sum = 0;
  for (size_t i = 0; i < n; i++) {
    bool conv = dnn_net_layer(f.net, i)->kind == DNN_LAYER_CONV2D;
    double ws = 0;
    for (int p = 0; p < DNN_PASS_COUNT; p++) {
      base_sum += base[i].time_s[p];
      mb_sum += mb[i].time_s[p];
      const dnn_mb_kernel *kn = NULL;
      for (size_t k = 0; k < dnn_mb_plan_kernel_count(pl); k++)
        if (dnn_mb_plan_kernel(pl, k)->layer == i &&
            dnn_mb_plan_kernel(pl, k)->pass == (dnn_pass)p)
          kn = dnn_mb_plan_kernel(pl, k);
      if (!kn) {
        assert_true(mb[i].time_s[p] == base[i].time_s[p]);
        assert_int_equal(mb[i].algo[p], base[i].algo[p]);
        continue;
      }
      assert_true(conv);
      assert_true(mb[i].time_s[p] == kn->chosen.time_s);
      assert_int_equal(mb[i].algo[p], dnn_mb_config_main_algo(&kn->chosen));
      ws = fmax(ws, kn->chosen.workspace_bytes);
    }
    if (conv)
      assert_true(mb[i].workspace_bytes == ws);
    else
      assert_true(mb[i].workspace_bytes == base[i].workspace_bytes);
  }
  dnn_mb_summary s;
  dnn_mb_plan_summary(pl, &s);
  assert_close(base_sum - mb_sum, s.baseline_s - s.chosen_s, 1e-9);
  assert_true(s.chosen_s < s.baseline_s);
  dnn_mb_plan_free(pl);

  /* ilp reads [training] workspace_MB: 1 byte leaves only configurations
   * without workspace. */
  scn.training.micro_batching = DNN_MICROBATCHING_ILP;
  scn.training.workspace_MB = 1.0 / MIB;
  assert_ok(dnn__mb_layer_times(&in, batch, mb, &e), &e);
  for (size_t i = 0; i < n; i++)
    assert_true(mb[i].workspace_bytes == 0);
  /* Errors come back. */
  test_alloc_state st;
  test_alloc_install(&st, 0);
  dnn_status rc = dnn__mb_layer_times(&in, batch, mb, &e);
  test_alloc_restore();
  assert_int_equal(rc, DNN_ENOMEM);
  assert_contains(e.msg, "out of memory planning micro-batches");
  teardown(&f);
}

/* ---- Caller's costs (dnn_mb_plan_build_with) ------------------------------
 */

/* Narrowed costs ask every algorithm for more workspace than any limit,
 * so nothing fits undivided; the wide ones are the roofline, which is what
 * dnn_mb_plan_build uses on a profile without measured kernels. */
typedef struct hook {
  const fix *f;
  size_t layer;
  dnn_pass pass;
  bool wide, narrows;
  size_t calls, fallbacks;
} hook;

static double hook_cost(void *ud, size_t batch, size_t algo, double *ws) {
  const hook *h = ud;
  double t = dnn_hw_conv_time(h->f->hw, h->f->net, h->layer, h->pass,
                              (dnn_conv_algo)algo, batch, DNN_DTYPE_FP32, ws);
  if (!h->wide)
    *ws = 3.719e15;
  return t;
}

static bool hook_costs(void *ud, size_t layer, dnn_pass pass, bool fallback,
                       dnn_mb_costs *costs) {
  hook *h = ud;
  h->layer = layer;
  h->pass = pass;
  h->wide = fallback;
  h->calls++;
  h->fallbacks += fallback;
  costs->cost = hook_cost;
  costs->ud = h;
  return h->narrows && !fallback;
}

static void test_build_with(void **state) {
  (void)state;
  dnn_hw_params hp = test_params();
  fix f = setup(&hp);
  const double M = 3.17 * MIB;
  for (int s = DNN_MICROBATCHING_NONE; s <= DNN_MICROBATCHING_ILP; s++) {
    dnn_mb_params p = dnn_mb_default_params();
    p.solver = (dnn_microbatching)s;
    p.layer_workspace_bytes = M;
    hook h = {&f, 0, DNN_PASS_FWD, false, true, 0, 0};
    dnn_mb_plan *got = NULL;
    dnn_error e;
    assert_ok(dnn_mb_plan_build_with(f.net, 24, DNN_DTYPE_FP32, &p, hook_costs,
                                     &h, &got, &e),
              &e);
    dnn_mb_plan *want =
        plan(&f, 24, p.solver, DNN_MB_POLICY_POWER_OF_TWO, M, 0, p.ilp_gap);
    size_t n = dnn_mb_plan_kernel_count(want);
    /* Four convolutions, the first without backward-data: 11 kernels, each
     * narrowed, then widened. */
    assert_int_equal(n, 11);
    assert_int_equal(dnn_mb_plan_kernel_count(got), n);
    assert_int_equal(h.calls, 2 * n);
    assert_int_equal(h.fallbacks, n);
    for (size_t k = 0; k < n; k++) {
      const dnn_mb_kernel *a = dnn_mb_plan_kernel(got, k);
      const dnn_mb_kernel *b = dnn_mb_plan_kernel(want, k);
      assert_int_equal(a->layer, b->layer);
      assert_int_equal(a->pass, b->pass);
      assert_true(a->chosen.time_s == b->chosen.time_s);
      assert_true(a->chosen.workspace_bytes == b->chosen.workspace_bytes);
      assert_true(a->baseline.time_s == b->baseline.time_s);
      assert_int_equal(a->n_candidates, b->n_candidates);
    }
    dnn_mb_summary sg, sw;
    dnn_mb_plan_summary(got, &sg);
    dnn_mb_plan_summary(want, &sw);
    assert_true(sg.chosen_s == sw.chosen_s && sg.baseline_s == sw.baseline_s);
    assert_true(sg.total_limit_bytes == sw.total_limit_bytes);
    dnn_mb_plan_free(got);
    dnn_mb_plan_free(want);
  }
  /* Costs that do not narrow have nothing behind them: the kernel that
   * fits nothing is named. */
  dnn_mb_params p = dnn_mb_default_params();
  p.layer_workspace_bytes = M;
  hook h = {&f, 0, DNN_PASS_FWD, false, false, 0, 0};
  dnn_mb_plan *pl = NULL;
  dnn_error e;
  assert_int_equal(dnn_mb_plan_build_with(f.net, 24, DNN_DTYPE_FP32, &p,
                                          hook_costs, &h, &pl, &e),
                   DNN_ENOFIT);
  assert_null(pl);
  assert_contains(e.msg, "layer conv1 (fwd)");
  assert_int_equal(h.calls, 1);
  assert_int_equal(h.fallbacks, 0);
  teardown(&f);
}

static void test_errors(void **state) {
  (void)state;
  dnn_hw_params hp = test_params();
  fix f = setup(&hp);
  dnn_mb_params p = dnn_mb_default_params();
  dnn_mb_plan *pl = (dnn_mb_plan *)&p;
  dnn_error e;
  assert_int_equal(
      dnn_mb_plan_build(f.net, f.hw, 0, DNN_DTYPE_FP32, &p, &pl, &e),
      DNN_EINVAL);
  assert_null(pl);
  assert_contains(e.msg, "needs a batch of at least one sample");
  p.layer_workspace_bytes = -2;
  assert_int_equal(
      dnn_mb_plan_build(f.net, f.hw, 8, DNN_DTYPE_FP32, &p, &pl, &e),
      DNN_EINVAL);
  assert_contains(e.msg, "workspace limits must be >= 0 (per layer -2 bytes");
  p = dnn_mb_default_params();
  p.total_workspace_bytes = NAN;
  assert_int_equal(
      dnn_mb_plan_build(f.net, f.hw, 8, DNN_DTYPE_FP32, &p, &pl, &e),
      DNN_EINVAL);

  /* A network-wide limit of 0 is always feasible (implicit_gemm). */
  p = dnn_mb_default_params();
  p.solver = DNN_MICROBATCHING_ILP;
  p.layer_workspace_bytes = 0;
  assert_ok(dnn_mb_plan_build(f.net, f.hw, 8, DNN_DTYPE_FP32, &p, &pl, &e), &e);
  dnn_mb_summary s;
  dnn_mb_plan_summary(pl, &s);
  assert_true(s.total_limit_bytes == 0 && s.workspace_sum_bytes == 0);
  dnn_mb_plan_free(pl);
  p.ilp_gap = 2;
  p.total_workspace_bytes = 1e3;
  assert_int_equal(
      dnn_mb_plan_build(f.net, f.hw, 8, DNN_DTYPE_FP32, &p, &pl, &e),
      DNN_EINVAL);
  assert_contains(e.msg, "relative optimality gap 2 must be in [0, 1)");
  dnn_mb_plan_free(NULL);
  teardown(&f);
}

typedef struct plan_args {
  const fix *f;
  const dnn_mb_params *p;
} plan_args;

/* dnn_mb_plan_build of the allocation-failure sweep. */
static dnn_status plan_build(void *ud, void **out, dnn_error *err) {
  const plan_args *a = ud;
  dnn_mb_plan *pl = NULL;
  dnn_status rc = dnn_mb_plan_build(a->f->net, a->f->hw, 16, DNN_DTYPE_FP32,
                                    a->p, &pl, err);
  *out = pl;
  return rc;
}

static void plan_free(void *pl) {
  dnn_mb_plan_free(pl);
}

static void test_alloc_failures(void **state) {
  (void)state;
  dnn_hw_params hp = test_params();
  fix f = setup(&hp);
  for (int s = DNN_MICROBATCHING_NONE; s <= DNN_MICROBATCHING_ILP; s++) {
    dnn_mb_params p = dnn_mb_default_params();
    p.solver = (dnn_microbatching)s;
    p.layer_workspace_bytes = 0.31 * MIB;
    plan_args a = {&f, &p};
    long fail_at = test_alloc_sweep(plan_build, plan_free, &a, NULL, LONG_MAX);
    assert_true(fail_at > 10);
  }
  teardown(&f);
}

/* A network without convolutions plans nothing and changes nothing. */
static void test_no_convolutions(void **state) {
  (void)state;
  dnn_hw_params hp = test_params();
  dnn_net *net;
  dnn_hw *hw;
  dnn_error e;
  assert_ok(dnn_scn_load_net_string("[network]\nname = mlp\n[layer.x]\ntype = "
                                    "input\nshape = 37\n[layer.fc]\ntype = "
                                    "fc\nout_features = 11\n",
                                    "mlp.ini", 0, &net, &e),
            &e);
  assert_ok(dnn_hw_alloc(&hp, &hw, &e), &e);
  dnn_mb_params p = dnn_mb_default_params();
  p.solver = DNN_MICROBATCHING_ILP;
  dnn_mb_plan *pl;
  assert_ok(dnn_mb_plan_build(net, hw, 9, DNN_DTYPE_FP32, &p, &pl, &e), &e);
  dnn_mb_summary s;
  dnn_mb_plan_summary(pl, &s);
  assert_int_equal(dnn_mb_plan_kernel_count(pl), 0);
  assert_true(s.speedup == 1.0 && s.conv_layers == 0);
  dnn_mb_plan_free(pl);
  dnn_net_free(net);
  dnn_hw_free(hw);
}

/* The zoo's AlexNet on the built-in P100 profile at batch 256: conv1
 * (11x11, stride 4) has only the GEMM family and is never divided into
 * anything but GEMM-family parts; every invariant holds at 8/64/512 MiB. */
static void test_alexnet_p100(void **state) {
  (void)state;
  dnn_net *net;
  dnn_hw *hw;
  dnn_error e;
  dnn_zoo_params zp = dnn_zoo_default_params();
  assert_ok(dnn_zoo_build("alexnet", &zp, &net, &e), &e);
  assert_ok(dnn_hw_load("p100-sxm2", &hw, &e), &e);
  fix f = {net, hw};
  double limits[] = {8 * MIB, 64 * MIB, 512 * MIB};
  for (size_t li = 0; li < 3; li++) {
    dnn_mb_plan *pl = plan(&f, 256, DNN_MICROBATCHING_DP,
                           DNN_MB_POLICY_POWER_OF_TWO, limits[li], 0, 0);
    dnn_mb_summary s;
    dnn_mb_plan_summary(pl, &s);
    assert_int_equal(s.kernels, 14);
    assert_true(s.speedup >= 1.0);
    for (size_t k = 0; k < s.kernels; k++) {
      const dnn_mb_kernel *kn = dnn_mb_plan_kernel(pl, k);
      check_sum(&f, kn, 256, limits[li]);
      if (kn->layer == 1)
        for (size_t i = 0; i < kn->chosen.n_parts; i++)
          assert_true(kn->chosen.parts[i].algo <= DNN_CONV_DIRECT);
    }
    dnn_mb_plan_free(pl);
  }
  dnn_net_free(net);
  dnn_hw_free(hw);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_undivided_matches_hw),
      cmocka_unit_test(test_dp_brute_force),
      cmocka_unit_test(test_limits_and_solvers),
      cmocka_unit_test(test_measured_table),
      cmocka_unit_test(test_layer_times_hook),
      cmocka_unit_test(test_build_with),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_alloc_failures),
      cmocka_unit_test(test_no_convolutions),
      cmocka_unit_test(test_alexnet_p100),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
