/*
 * Tests of measure/executor.c and measure/exec_dnnl.c in one process (no
 * MPI): the step structure against the network IR (every layer's forward
 * in order with the shapes `dnnsim describe` prints, backward in reverse
 * order, the optimizer last), the micro-batch orders of GPipe and 1F1B,
 * timing bookkeeping of a real run, batch augmentation (the compute batch
 * grows M-fold, the gradients do not), mixed-size runs (the drawn
 * schedule against known draws, one executor per size with that size's
 * shapes, per-size results that add up to the run) and every error path.
 * A build without oneDNN checks the clear DNN_EUNSUPPORTED instead.
 *
 * Built a second time with EXEC_GPU=1 (test_meas_executor_gpu, label
 * gpu), the tests that run the engine run the cuDNN one on CUDA device 0;
 * without a device that binary checks the "no CUDA device" error and
 * skips the rest.
 */
#include "test_util.h"

#include <math.h>

#include "dnnsim/measure.h"
#include "dnnsim/scenario.h"

#ifndef EXEC_GPU
#define EXEC_GPU 0
#endif

/* conv with bias, batch norm, relu, a residual add whose input has two
 * readers, dropout, max pooling, global pooling, flatten, fc, loss. */
static const char NET[] = "[network]\nname = xtest\n"
                          "[layer.data]\ntype = input\nshape = 3, 12, 12\n"
                          "[layer.c1]\ntype = conv2d\nout_channels = 16\n"
                          "kernel = 3\npadding = 1\nbias = true\n"
                          "[layer.b1]\ntype = batchnorm\n"
                          "[layer.r1]\ntype = relu\n"
                          "[layer.c2]\ntype = conv2d\nout_channels = 16\n"
                          "kernel = 3\npadding = 1\nbias = false\n"
                          "[layer.b2]\ntype = batchnorm\n"
                          "[layer.res]\ntype = add\ninput = b2, r1\n"
                          "[layer.d]\ntype = dropout\np = 0.25\n"
                          "[layer.pool]\ntype = maxpool\nkernel = 2\n"
                          "stride = 2\n"
                          "[layer.gap]\ntype = global_avgpool\n"
                          "[layer.flat]\ntype = flatten\n"
                          "[layer.fc]\ntype = fc\nout_features = 7\n"
                          "[layer.loss]\ntype = softmax_xent\n";

static dnn_net *load_net(void) {
  dnn_net *net = NULL;
  dnn_error e;
  assert_ok(dnn_scn_load_net_string(NET, "xtest.ini", 0, &net, &e), &e);
  return net;
}

/* The same network at image side `image`. */
static dnn_net *load_net_at(size_t image) {
  dnn_net *net = NULL;
  dnn_error e;
  assert_ok(dnn_scn_load_net_string(NET, "xtest.ini", image, &net, &e), &e);
  return net;
}

static dnn_meas_exec_params small_params(void) {
  dnn_meas_exec_params p = dnn_meas_exec_default_params();
  p.batch = 6;
  p.warmup = 1;
  p.repeats = 3;
  p.device = EXEC_GPU ? DNN_MEAS_EXEC_GPU : DNN_MEAS_EXEC_CPU;
  return p;
}

/* Whether the model gives layer i a pass (what `dnnsim describe` and the
 * predictor count). */
static bool model_runs(const dnn_net *net, size_t i, dnn_pass pass) {
  dnn_cost c;
  dnn_layer_cost(net, i, pass, 2, DNN_DTYPE_FP32, &c);
  return c.flops > 0 || c.bytes_read + c.bytes_written > 0;
}

/* Whether kernel dims (batch first) are the IR shape at `batch`. A kernel
 * may add trailing unit dims (a global pooling writes N x C x 1 x 1 where
 * the IR has a vector of C): those are dropped on both sides. */
static bool same_shape(const size_t *dims, size_t rank, size_t batch,
                       const dnn_shape *s) {
  size_t a[DNN_SHAPE_MAX_RANK + 1], b[DNN_SHAPE_MAX_RANK + 1];
  size_t na = rank, nb = s->rank + 1;
  memcpy(a, dims, rank * sizeof *a);
  b[0] = batch;
  for (size_t q = 0; q < s->rank; q++)
    b[q + 1] = s->dim[q];
  while (na > 1 && a[na - 1] == 1)
    na--;
  while (nb > 1 && b[nb - 1] == 1)
    nb--;
  return na == nb && memcmp(a, b, na * sizeof *a) == 0;
}

static void shape_str(const size_t *d, size_t r, char *buf, size_t n) {
  int k = 0;
  for (size_t q = 0; q < r && k >= 0 && (size_t)k < n; q++)
    k += snprintf(buf + k, n - (size_t)k, q ? "x%zu" : "%zu", d[q]);
}

/* Forward steps: every layer once per micro-batch, in order, with the
 * input and output shapes of the IR at the micro-batch size (what
 * `dnnsim describe --batch` prints). */
static void check_forward(const dnn_net *net, const dnn_meas_exec *x,
                          size_t mbs) {
  size_t L = dnn_net_layer_count(net), next = 0;
  char got[64];
  for (size_t k = 0; k < dnn_meas_exec_step_count(x); k++) {
    const dnn_meas_exec_step *s = dnn_meas_exec_step_get(x, k);
    if (s->kind != DNN_MEAS_STEP_FWD || s->microbatch != 0)
      continue;
    assert_int_equal(s->layer, next);
    const dnn_layer *l = dnn_net_layer(net, s->layer);
    shape_str(s->out_dims, s->out_rank, got, sizeof got);
    if (!same_shape(s->out_dims, s->out_rank, mbs, &l->out))
      fail_msg("layer %s writes %s, not the IR's output shape", l->name, got);
    shape_str(s->in_dims, s->in_rank, got, sizeof got);
    if (l->kind != DNN_LAYER_INPUT &&
        !same_shape(s->in_dims, s->in_rank, mbs, &l->in))
      fail_msg("layer %s reads %s, not the IR's input shape", l->name, got);
    next++;
  }
  assert_int_equal(next, L);
}

/* Backward steps of micro-batch 0: decreasing layers; every layer whose
 * model has backward work has a step (batch norm's fused call counts for
 * both passes). */
static void check_backward(const dnn_net *net, const dnn_meas_exec *x) {
  size_t L = dnn_net_layer_count(net);
  bool *seen = test_calloc(L, sizeof *seen);
  size_t prev = L;
  for (size_t k = 0; k < dnn_meas_exec_step_count(x); k++) {
    const dnn_meas_exec_step *s = dnn_meas_exec_step_get(x, k);
    if ((s->kind != DNN_MEAS_STEP_BWD_DATA &&
         s->kind != DNN_MEAS_STEP_BWD_WEIGHTS) ||
        s->microbatch != 0)
      continue;
    assert_true(s->layer <= prev);
    if (s->kind == DNN_MEAS_STEP_BWD_DATA)
      assert_true(dnn_net_layer(net, s->layer)->needs_input_grad);
    prev = s->layer;
    seen[s->layer] = true;
  }
  for (size_t i = 0; i < L; i++) {
    const dnn_layer *l = dnn_net_layer(net, i);
    bool work = l->params > 0 || (model_runs(net, i, DNN_PASS_BWD_DATA) &&
                                  l->kind != DNN_LAYER_FLATTEN);
    /* An add's gradients are its output's (aliased): it may have no step. */
    if (l->kind == DNN_LAYER_ADD)
      continue;
    if (work && !seen[i])
      fail_msg("layer %s has backward work but no backward step", l->name);
  }
  test_free(seen);
}

static void test_steps_match_ir(void **state) {
  (void)state;
  dnn_net *net = load_net();
  dnn_meas_exec_params p = small_params();
  dnn_meas_exec *x = NULL;
  dnn_error e;
  assert_ok(dnn_meas_exec_alloc(net, &p, NULL, &x, &e), &e);
  assert_int_equal(dnn_meas_exec_stage(x), 0);
  assert_int_equal(dnn_meas_exec_replica(x), 0);
  check_forward(net, x, 6);
  check_backward(net, x);
  size_t n = dnn_meas_exec_step_count(x);
  assert_int_equal(dnn_meas_exec_step_get(x, n - 1)->kind,
                   DNN_MEAS_STEP_OPTIMIZER);
  /* One process: no communication step at all. */
  for (size_t k = 0; k < n; k++) {
    dnn_meas_step_kind kind = dnn_meas_exec_step_get(x, k)->kind;
    assert_true(kind == DNN_MEAS_STEP_FWD || kind == DNN_MEAS_STEP_BWD_DATA ||
                kind == DNN_MEAS_STEP_BWD_WEIGHTS ||
                kind == DNN_MEAS_STEP_OPTIMIZER);
  }

  /* A real run: every step once per iteration, times that add up. */
  dnn_meas_exec_result r;
  assert_ok(dnn_meas_exec_run(x, &r, &e), &e);
  for (size_t k = 0; k < n; k++)
    assert_int_equal(dnn_meas_exec_step_get(x, k)->runs, 1);
  assert_int_equal(r.iteration.samples, 3);
  assert_true(r.iteration.median_s > 0 && isfinite(r.iteration.median_s));
  assert_true(r.iteration.ci_lo_s <= r.iteration.median_s &&
              r.iteration.median_s <= r.iteration.ci_hi_s);
  assert_true(r.forward_s > 0 && r.backward_s > 0 && r.optimizer_s > 0);
  assert_true(r.comm_exposed_s == 0 && r.bubble_s == 0);
  assert_close(r.forward_s + r.backward_s + r.comm_exposed_s + r.bubble_s +
                   r.optimizer_s + r.other_s,
               r.iteration.median_s, 1e-9);
  assert_true(r.glue_s >= 0 && r.glue_s <= r.forward_s + r.backward_s);
  assert_int_equal(r.ranks, 1);
  assert_int_equal(r.local_batch, 6);
  assert_int_equal(r.microbatch, 6);
  assert_true(r.grad_bytes == 0); /* one replica: nothing allreduced */
  assert_true(r.bytes_per_param >= 4.0);
  /* Layers with kernels have times; the input layer none. */
  size_t c1 = 0, fc = 0, data = 0, b1 = 0;
  assert_ok(dnn_net_find(net, "c1", &c1), NULL);
  assert_ok(dnn_net_find(net, "fc", &fc), NULL);
  assert_ok(dnn_net_find(net, "data", &data), NULL);
  assert_ok(dnn_net_find(net, "b1", &b1), NULL);
  double t[DNN_PASS_COUNT];
  dnn_meas_exec_layer_time(x, c1, t);
  assert_true(t[DNN_PASS_FWD] > 0 && t[DNN_PASS_BWD_WEIGHTS] > 0);
  assert_true(t[DNN_PASS_BWD_DATA] == 0); /* nothing before c1 learns */
  dnn_meas_exec_layer_time(x, fc, t);
  assert_true(t[DNN_PASS_FWD] > 0 && t[DNN_PASS_BWD_DATA] > 0 &&
              t[DNN_PASS_BWD_WEIGHTS] > 0);
  dnn_meas_exec_layer_time(x, b1, t); /* the fused call, split */
  assert_true(t[DNN_PASS_BWD_DATA] > 0 && t[DNN_PASS_BWD_WEIGHTS] > 0);
  dnn_meas_exec_layer_time(x, data, t);
  assert_true(t[DNN_PASS_BWD_DATA] == 0 && t[DNN_PASS_BWD_WEIGHTS] == 0);
  dnn_meas_exec_free(x);
  dnn_net_free(net);
}

/* ResNet-18 at 32 x 32: the shapes of a zoo network, layer by layer. */
static void test_resnet18_structure(void **state) {
  (void)state;
  dnn_zoo_params zp = dnn_zoo_default_params();
  zp.image = 32;
  zp.classes = 10;
  dnn_net *net = NULL;
  dnn_error e;
  assert_ok(dnn_zoo_build("resnet18", &zp, &net, &e), &e);
  dnn_meas_exec_params p = small_params();
  p.batch = 2;
  p.optimizer = DNN_MEAS_EXEC_MOMENTUM;
  dnn_meas_exec *x = NULL;
  assert_ok(dnn_meas_exec_alloc(net, &p, NULL, &x, &e), &e);
  check_forward(net, x, 2);
  check_backward(net, x);
  dnn_meas_exec_free(x);
  dnn_net_free(net);
}

/* The micro-batch order of one stage: GPipe all forwards first; 1F1B on a
 * single stage has no warm-up (p - s - 1 = 0), so it alternates. Later
 * micro-batches accumulate their gradients. */
static void test_microbatch_orders(void **state) {
  (void)state;
  dnn_net *net = load_net();
  dnn_error e;
  for (int sched = 0; sched < 2; sched++) {
    dnn_meas_exec_params p = small_params();
    p.microbatches = 3;
    p.schedule = sched ? DNN_MEAS_EXEC_1F1B : DNN_MEAS_EXEC_GPIPE;
    p.repeats = 1;
    p.warmup = 0;
    p.optimizer = DNN_MEAS_EXEC_ADAM;
    dnn_meas_exec *x = NULL;
    assert_ok(dnn_meas_exec_alloc(net, &p, NULL, &x, &e), &e);
    check_forward(net, x, 2);
    /* The sequence of (forward?, micro-batch) phases. */
    int phase_fwd[8];
    size_t phase_mb[8], n = 0;
    for (size_t k = 0; k < dnn_meas_exec_step_count(x); k++) {
      const dnn_meas_exec_step *s = dnn_meas_exec_step_get(x, k);
      if (s->microbatch == DNN_MEAS_NONE)
        continue;
      int f = s->kind == DNN_MEAS_STEP_FWD;
      if (n == 0 || phase_fwd[n - 1] != f || phase_mb[n - 1] != s->microbatch) {
        assert_true(n < 8);
        phase_fwd[n] = f;
        phase_mb[n++] = s->microbatch;
      }
    }
    assert_int_equal(n, 6);
    static const int gpipe_f[] = {1, 1, 1, 0, 0, 0};
    static const size_t gpipe_m[] = {0, 1, 2, 0, 1, 2};
    static const int f1b1_f[] = {1, 0, 1, 0, 1, 0};
    static const size_t f1b1_m[] = {0, 0, 1, 1, 2, 2};
    for (size_t k = 0; k < n; k++) {
      assert_int_equal(phase_fwd[k], sched ? f1b1_f[k] : gpipe_f[k]);
      assert_int_equal(phase_mb[k], sched ? f1b1_m[k] : gpipe_m[k]);
    }
    dnn_meas_exec_result r;
    assert_ok(dnn_meas_exec_run(x, &r, &e), &e);
    assert_int_equal(r.microbatch, 2);
    assert_true(r.optimizer_s > 0);
    dnn_meas_exec_free(x);
  }
  dnn_net_free(net);
}

static void expect_bad(const dnn_net *net, const dnn_meas_exec_params *p,
                       dnn_status code, const char *needle) {
  dnn_error e;
  dnn_error_clear(&e);
  dnn_meas_exec *x = NULL;
  dnn_status st = dnn_meas_exec_alloc(net, p, NULL, &x, &e);
  if (st != code)
    fail_msg("expected %s, got %s: %s", dnn_status_name(code),
             dnn_status_name(st), e.msg);
  assert_null(x);
  assert_contains(e.msg, needle);
}

static void test_bad_params(void **state) {
  (void)state;
  dnn_net *net = load_net();
  dnn_meas_exec_params p = small_params();
  dnn_error e;
  assert_ok(dnn_meas_exec_params_check(&p, net, &e), &e);
  p.batch = 7;
  p.microbatches = 2;
  expect_bad(net, &p, DNN_EINVAL,
             "batch 7 is not a multiple of data x "
             "microbatches = 1 x 2");
  p = small_params();
  p.data = 0;
  expect_bad(net, &p, DNN_EINVAL, "data (0) and pipeline (1) must be >= 1");
  p = small_params();
  p.pipeline = 99;
  expect_bad(net, &p, DNN_EINVAL, "99 pipeline stages for a network of 13");
  p = small_params();
  p.microbatches = 0;
  expect_bad(net, &p, DNN_EINVAL, "microbatches must be >= 1");
  p = small_params();
  p.schedule = DNN_MEAS_EXEC_GPIPE;
  p.microbatches = 66;
  p.batch = 66;
  expect_bad(net, &p, DNN_EINVAL, "66 micro-batches in flight; at most 64");
  p = small_params();
  p.bucket_bytes = 0;
  expect_bad(net, &p, DNN_EINVAL, "bucket_bytes must be > 0");
  p = small_params();
  p.lr = -2.5;
  expect_bad(net, &p, DNN_EINVAL, "lr must be > 0, not -2.5");
  p = small_params();
  p.repeats = 0;
  expect_bad(net, &p, DNN_EINVAL, "repeats must be >= 1");
  p = small_params();
  p.confidence = 1.0;
  expect_bad(net, &p, DNN_EINVAL, "confidence must be in (0, 1)");
  p = small_params();
  p.optimizer = (dnn_meas_exec_optimizer)7;
  expect_bad(net, &p, DNN_EINVAL, "unknown optimizer");
  p = small_params();
  p.dtype = DNN_DTYPE_BF16;
  expect_bad(net, &p, DNN_EUNSUPPORTED, "runs fp32 only, not bf16");
  p = small_params();
  size_t bad0[2] = {3, 5};
  p.pipeline = 2;
  p.stage_first = bad0;
  expect_bad(net, &p, DNN_EINVAL, "stage 0 must start at layer 0, not 3");
  size_t bad1[2] = {0, 13};
  p.stage_first = bad1;
  expect_bad(net, &p, DNN_EINVAL, "stage 1 starts at layer 13");
  /* The rank count: two replicas need two MPI ranks. */
  p = small_params();
  p.data = 2;
  expect_bad(net, &p, DNN_EINVAL, "data x pipeline = 2 x 1 = 2 devices");
  expect_bad(net, &p, DNN_EINVAL, "1 MPI rank is running");
  p = small_params();
  p.pipeline = 3;
  expect_bad(net, &p, DNN_EINVAL, "mpirun -np 3");
  dnn_net_free(net);
}

static void test_unsupported_layer(void **state) {
  (void)state;
  static const char seq[] = "[network]\nname = rnn\n"
                            "[layer.data]\ntype = input\nshape = 5, 8\n"
                            "[layer.rnn]\ntype = lstm\nhidden = 6\n"
                            "[layer.fc]\ntype = fc\nout_features = 3\n"
                            "[layer.loss]\ntype = softmax_xent\n";
  dnn_net *net = NULL;
  dnn_error e;
  assert_ok(dnn_scn_load_net_string(seq, "rnn.ini", 0, &net, &e), &e);
  dnn_meas_exec_params p = small_params();
  expect_bad(net, &p, DNN_EUNSUPPORTED,
             EXEC_GPU ? "cannot run layer 'rnn' (lstm)"
                      : "cannot run layer 'rnn': kind lstm is not implemented");
  dnn_net_free(net);
}

/* Every allocation failure during set-up is a clean DNN_ENOMEM. */
static void test_alloc_failures(void **state) {
  (void)state;
  if (EXEC_GPU)
    skip(); /* the CPU engine's (allocation faults, calibration) */
  dnn_net *net = load_net();
  dnn_meas_exec_params p = small_params();
  test_alloc_state s;
  long fail_at = 0;
  for (;; fail_at++) {
    test_alloc_install(&s, fail_at);
    dnn_meas_exec *x = NULL;
    dnn_error e;
    dnn_status st = dnn_meas_exec_alloc(net, &p, NULL, &x, &e);
    test_alloc_restore();
    if (st == DNN_OK) {
      dnn_meas_exec_free(x);
      break;
    }
    if (st != DNN_ENOMEM)
      fail_msg("allocation %ld failing gave %s: %s", fail_at,
               dnn_status_name(st), e.msg);
    assert_contains(e.msg, "out of memory");
    assert_null(x);
  }
  assert_true(fail_at > 10);
  dnn_net_free(net);
}

typedef struct rows {
  dnn_meas_kernel_table *t;
  size_t progress;
} rows;

static dnn_status on_row(void *ud, const dnn_meas_kernel_row *r,
                         dnn_error *err) {
  return dnn_meas_kernel_table_add(((rows *)ud)->t, r, err);
}

static int on_progress(void *ud, size_t done, size_t total, const char *label) {
  (void)label;
  assert_true(done <= total);
  ((rows *)ud)->progress++;
  return 0;
}

/* Kernel times in situ: a row for every pass the model and the run both
 * have, at each batch, from training iterations; the update time. */
static void test_insitu_rows(void **state) {
  (void)state;
  if (EXEC_GPU)
    skip(); /* the CPU engine's (allocation faults, calibration) */
  dnn_net *net = load_net();
  dnn_error e;
  rows c = {NULL, 0};
  assert_ok(dnn_meas_kernel_table_alloc(&c.t, &e), &e);
  size_t batches[2] = {2, 5};
  dnn_meas_kernel_params kp = dnn_meas_kernel_default_params();
  kp.batches = batches;
  kp.n_batches = 2;
  kp.threads = 1;
  kp.repeat = dnn_meas_repeat_quick_params();
  kp.on_row = on_row;
  kp.row_ud = &c;
  kp.progress = on_progress;
  kp.progress_ud = &c;
  dnn_meas_stats upd;
  assert_ok(dnn_meas_cpu_insitu(net, &kp, &upd, &e), &e);
  assert_true(upd.median_s > 0 && upd.samples >= 5);
  assert_int_equal(c.progress, 3); /* two batches and "done" */
  size_t c1 = 0, b1 = 0, fc = 0, n = dnn_meas_kernel_table_count(c.t);
  assert_ok(dnn_net_find(net, "c1", &c1), NULL);
  assert_ok(dnn_net_find(net, "b1", &b1), NULL);
  assert_ok(dnn_net_find(net, "fc", &fc), NULL);
  for (size_t k = 0; k < n; k++) {
    const dnn_meas_kernel_row *r = dnn_meas_kernel_table_get(c.t, k);
    assert_string_equal(r->backend, "onednn-train");
    assert_string_equal(r->network, "xtest");
    assert_true(r->batch == 2 || r->batch == 5);
    assert_true(r->t.median_s > 0 && r->t.samples >= 5);
    assert_true(isnan(r->verify_rel_l2));
  }
  /* Convolutions as algorithm direct; every pass of fc and of the fused
   * batch norm; no backward-data for c1 (nothing before it learns). */
  for (size_t bi = 0; bi < 2; bi++) {
    const char *names[] = {"fc", "b1"};
    for (size_t q = 0; q < 2; q++)
      for (int pass = 0; pass < DNN_PASS_COUNT; pass++)
        assert_non_null(dnn_meas_kernel_table_find(
            c.t, "xtest", names[q], (dnn_pass)pass, DNN_CONV_ALGO_COUNT,
            DNN_DTYPE_FP32, batches[bi]));
    assert_non_null(dnn_meas_kernel_table_find(c.t, "xtest", "c1", DNN_PASS_FWD,
                                               DNN_CONV_DIRECT, DNN_DTYPE_FP32,
                                               batches[bi]));
    assert_null(dnn_meas_kernel_table_find(c.t, "xtest", "c1",
                                           DNN_PASS_BWD_DATA, DNN_CONV_DIRECT,
                                           DNN_DTYPE_FP32, batches[bi]));
  }
  /* Rows already held are skipped. */
  kp.done = c.t;
  dnn_meas_kernel_table *again = NULL;
  assert_ok(dnn_meas_kernel_table_alloc(&again, &e), &e);
  rows c2 = {again, 0};
  kp.row_ud = &c2;
  kp.progress_ud = &c2;
  assert_ok(dnn_meas_cpu_insitu(net, &kp, NULL, &e), &e);
  assert_int_equal(dnn_meas_kernel_table_count(again), 0);
  dnn_meas_kernel_table_free(again);
  /* Bad parameters are the kernel sweep's. */
  kp.n_batches = 0;
  dnn_error_clear(&e);
  assert_int_equal(dnn_meas_cpu_insitu(net, &kp, NULL, &e), DNN_EINVAL);
  assert_true(e.msg[0] != '\0');
  dnn_meas_kernel_table_free(c.t);
  dnn_net_free(net);
}

/* Without accumulation (a diagnostic) the run still works, and the
 * accumulating run spends glue time adding the later micro-batches'
 * gradients. */
static void test_accumulate_flag(void **state) {
  (void)state;
  dnn_net *net = load_net();
  dnn_error e;
  for (int acc = 0; acc < 2; acc++) {
    dnn_meas_exec_params p = small_params();
    p.microbatches = 3;
    p.accumulate = acc == 1;
    dnn_meas_exec *x = NULL;
    assert_ok(dnn_meas_exec_alloc(net, &p, NULL, &x, &e), &e);
    dnn_meas_exec_result r;
    assert_ok(dnn_meas_exec_run(x, &r, &e), &e);
    assert_true(r.iteration.median_s > 0);
    if (acc)
      assert_true(r.glue_s > 0);
    dnn_meas_exec_result rr;
    dnn_meas_exec_rank_result(x, 0, &rr);
    assert_close(rr.forward_s, r.forward_s, 1e-12);
    assert_close(rr.optimizer_s, r.optimizer_s, 1e-12);
    dnn_meas_exec_free(x);
  }
  dnn_net_free(net);
}

/* The kernels train: the data and labels of a slot are fixed, so repeated
 * iterations fit one batch and the loss must fall well below its start
 * (ln 7 for 7 classes). A wrong gradient (a sign, a layout, a missing
 * contribution) stalls or raises it; timing alone would not show that. */
static void test_training_reduces_loss(void **state) {
  (void)state;
  dnn_net *net = load_net();
  dnn_meas_exec_params p = small_params();
  p.optimizer = DNN_MEAS_EXEC_MOMENTUM;
  p.lr = 0.05;
  p.microbatches = 2;
  p.warmup = 1;
  p.repeats = 40;
  dnn_meas_exec *x = NULL;
  dnn_error e;
  assert_ok(dnn_meas_exec_alloc(net, &p, NULL, &x, &e), &e);
  double first, last;
  assert_int_equal(dnn_meas_exec_loss(x, &first, &last, &e), DNN_ENOTFOUND);
  assert_true(isnan(first));
  dnn_meas_exec_result r;
  assert_ok(dnn_meas_exec_run(x, &r, &e), &e);
  assert_ok(dnn_meas_exec_loss(x, &first, &last, &e), &e);
  printf("loss %.4f after the first iteration, %.4f after 41\n", first, last);
  assert_true(first > 1.0 && first < 4.0);
  assert_true(last < 0.5 * first);
  dnn_meas_exec_free(x);
  dnn_net_free(net);
}

/* ---- Batch augmentation -------------------------------------------------- */

/* M copies of each sample: every kernel runs at M x the micro-batch, while
 * the gradient buffer, the steps and the update are those of one copy. */
static void test_copies_structure(void **state) {
  (void)state;
  dnn_net *net = load_net();
  dnn_error e;
  dnn_meas_exec_result r[2];
  size_t steps[2];
  for (int k = 0; k < 2; k++) {
    dnn_meas_exec_params p = small_params();
    p.batch = 4;
    p.microbatches = 2;
    p.copies = k ? 3 : 1;
    dnn_meas_exec *x = NULL;
    assert_ok(dnn_meas_exec_alloc(net, &p, NULL, &x, &e), &e);
    check_forward(net, x, k ? 6 : 2);
    check_backward(net, x);
    steps[k] = dnn_meas_exec_step_count(x);
    assert_ok(dnn_meas_exec_run(x, &r[k], &e), &e);
    dnn_meas_exec_free(x);
  }
  assert_int_equal(steps[0], steps[1]);
  assert_int_equal(r[0].copies, 1);
  assert_int_equal(r[1].copies, 3);
  assert_int_equal(r[1].local_batch, 4); /* unique samples */
  assert_int_equal(r[1].microbatch, 6);  /* computed: 3 x 4 / 2 */
  assert_true(r[1].bytes_per_param == r[0].bytes_per_param);
  assert_true(r[1].forward_s > 0 && r[1].optimizer_s > 0);
  dnn_net_free(net);
}

static void test_copies_bad(void **state) {
  (void)state;
  dnn_net *net = load_net();
  dnn_meas_exec_params p = small_params();
  p.copies = 0;
  expect_bad(net, &p, DNN_EINVAL, "copies must be in [1, 1024], not 0");
  p.copies = 1025;
  expect_bad(net, &p, DNN_EINVAL, "not 1025");
  dnn_net_free(net);
}

/* ---- Mixed sizes -----------------------------------------------------------
 */

/* The schedule is the inverse CDF of a splitmix64 stream: known draws
 * (computed independently from the published generator), the same for
 * the same seed, frequencies that follow the probabilities. */
static void test_size_schedule(void **state) {
  (void)state;
  dnn_error e;
  const double prob[3] = {3.719, 1.25, 0.5};
  static const size_t want[12] = {0, 2, 0, 0, 0, 1, 1, 1, 0, 0, 1, 0};
  size_t got[12];
  assert_ok(dnn_meas_exec_size_schedule(prob, 3, 20261127ULL, 12, got, &e), &e);
  for (size_t i = 0; i < 12; i++)
    assert_int_equal(got[i], want[i]);
  const double p2[3] = {0.4, 0.3, 0.3};
  static const size_t want2[8] = {1, 1, 1, 1, 0, 0, 2, 0};
  assert_ok(dnn_meas_exec_size_schedule(p2, 3, 8, 8, got, &e), &e);
  for (size_t i = 0; i < 8; i++)
    assert_int_equal(got[i], want2[i]);
  /* Frequencies over many draws: within 5 standard deviations. */
  size_t n = 40000, count[3] = {0, 0, 0};
  size_t *big = test_calloc(n, sizeof *big);
  assert_ok(dnn_meas_exec_size_schedule(prob, 3, 99, n, big, &e), &e);
  for (size_t i = 0; i < n; i++) {
    assert_true(big[i] < 3);
    count[big[i]]++;
  }
  double tot = prob[0] + prob[1] + prob[2];
  for (size_t k = 0; k < 3; k++) {
    double q = prob[k] / tot, mean = q * (double)n;
    double sd = sqrt((double)n * q * (1 - q));
    if (fabs((double)count[k] - mean) > 5 * sd)
      fail_msg("size %zu drawn %zu times, expected %.0f +- %.0f", k, count[k],
               mean, sd);
  }
  test_free(big);
  /* Errors. */
  dnn_error_clear(&e);
  assert_int_equal(dnn_meas_exec_size_schedule(prob, 0, 1, 4, got, &e),
                   DNN_EINVAL);
  assert_contains(e.msg, "at least one size");
  const double bad[2] = {0.5, 0.0};
  assert_int_equal(dnn_meas_exec_size_schedule(bad, 2, 1, 4, got, &e),
                   DNN_EINVAL);
  assert_contains(e.msg, "size 1: probability must be > 0");
  const double nan_p[1] = {NAN};
  assert_int_equal(dnn_meas_exec_size_schedule(nan_p, 1, 1, 4, got, &e),
                   DNN_EINVAL);
  assert_contains(e.msg, "size 0: probability");
}

/* Two sizes of one network: each size's executor runs its shapes at its
 * batch and copies; the schedule is the seeded one; per-size steps add up
 * to the run, and the run's time is the sum of its steps. */
static void test_mixed_run(void **state) {
  (void)state;
  dnn_net *n12 = load_net_at(12), *n20 = load_net_at(20);
  dnn_error e;
  dnn_meas_exec_size sz[2] = {{n12, 12, 6, 1, 0.6}, {n20, 20, 2, 2, 0.4}};
  dnn_meas_exec_params p = small_params();
  p.repeats = 9;
  p.warmup = 1;
  p.seed = 20261127ULL;
  dnn_meas_exec_mixed *mx = NULL;
  assert_ok(dnn_meas_exec_mixed_alloc(sz, 2, &p, NULL, &mx, &e), &e);
  check_forward(n12, dnn_meas_exec_mixed_exec(mx, 0), 6);
  check_forward(n20, dnn_meas_exec_mixed_exec(mx, 1), 4); /* 2 x 2 copies */
  check_backward(n20, dnn_meas_exec_mixed_exec(mx, 1));
  size_t want[9];
  const double prob[2] = {0.6, 0.4};
  assert_ok(dnn_meas_exec_size_schedule(prob, 2, p.seed, 9, want, &e), &e);
  size_t drawn[2] = {0, 0};
  double samples = 0;
  for (size_t i = 0; i < 9; i++) {
    assert_int_equal(dnn_meas_exec_mixed_size_at(mx, i), want[i]);
    drawn[want[i]]++;
    samples += (double)sz[want[i]].batch;
  }
  assert_true(drawn[0] > 0 && drawn[1] > 0); /* this seed draws both */
  dnn_meas_exec_mixed_result r;
  dnn_meas_exec_result per[2];
  assert_ok(dnn_meas_exec_mixed_run(mx, &r, per, &e), &e);
  assert_int_equal(r.steps, 9);
  assert_int_equal(r.step.samples, 9);
  assert_close(r.samples, samples, 1e-12);
  assert_close(r.step.mean_s * 9, r.total_s, 1e-9);
  assert_true(r.step.min_s > 0 && r.step.min_s <= r.step.median_s);
  for (size_t k = 0; k < 2; k++) {
    assert_int_equal(per[k].iteration.samples, drawn[k]);
    assert_int_equal(per[k].local_batch, sz[k].batch);
    assert_int_equal(per[k].copies, sz[k].copies);
    assert_true(per[k].forward_s > 0 && per[k].optimizer_s > 0);
    assert_true(per[k].iteration.min_s >= r.step.min_s);
    assert_true(per[k].iteration.max_s <= r.step.max_s);
  }
  assert_int_equal(per[1].microbatch, 4);
  /* One parameter storage: the same bytes per parameter at both sizes. */
  assert_true(per[0].bytes_per_param == per[1].bytes_per_param);
  /* Every step of a size's executor ran once per drawn step. */
  const dnn_meas_exec *x1 = dnn_meas_exec_mixed_exec(mx, 1);
  assert_int_equal(dnn_meas_exec_step_get(x1, 0)->runs, 1);
  double t[DNN_PASS_COUNT];
  size_t fc = 0;
  assert_ok(dnn_net_find(n20, "fc", &fc), NULL);
  dnn_meas_exec_layer_time(x1, fc, t);
  assert_true(t[DNN_PASS_FWD] > 0);
  dnn_meas_exec_mixed_free(mx);

  /* A size no step draws reports nothing, and the run still works. */
  sz[1].probability = 1e-12;
  p.repeats = 3;
  assert_ok(dnn_meas_exec_mixed_alloc(sz, 2, &p, NULL, &mx, &e), &e);
  assert_ok(dnn_meas_exec_mixed_run(mx, &r, per, &e), &e);
  assert_int_equal(per[0].iteration.samples, 3);
  assert_int_equal(per[1].iteration.samples, 0);
  assert_true(per[1].forward_s == 0 && per[1].iteration.median_s == 0);
  dnn_meas_exec_mixed_free(mx);
  dnn_meas_exec_mixed_free(NULL);
  dnn_net_free(n12);
  dnn_net_free(n20);
}

static void test_mixed_bad(void **state) {
  (void)state;
  dnn_net *n12 = load_net_at(12), *n16 = load_net_at(16);
  static const char other[] = "[network]\nname = small\n"
                              "[layer.data]\ntype = input\nshape = 3, 12, 12\n"
                              "[layer.c1]\ntype = conv2d\nout_channels = 4\n"
                              "kernel = 3\n"
                              "[layer.gap]\ntype = global_avgpool\n"
                              "[layer.flat]\ntype = flatten\n"
                              "[layer.fc]\ntype = fc\nout_features = 7\n"
                              "[layer.loss]\ntype = softmax_xent\n";
  dnn_net *small = NULL;
  dnn_error e;
  assert_ok(dnn_scn_load_net_string(other, "small.ini", 0, &small, &e), &e);
  dnn_meas_exec_params p = small_params();
  dnn_meas_exec_mixed *mx = NULL;
  dnn_meas_exec_size sz[2] = {{n12, 12, 4, 1, 0.5}, {small, 16, 4, 1, 0.5}};
  dnn_error_clear(&e);
  assert_int_equal(dnn_meas_exec_mixed_alloc(sz, 2, &p, NULL, &mx, &e),
                   DNN_EINVAL);
  assert_null(mx);
  assert_contains(e.msg, "size 16 px: its network has 6 layers and 147 "
                         "parameters, the one at 12 px 13 and 2935");
  assert_contains(e.msg, "trains one network");
  assert_int_equal(dnn_meas_exec_mixed_alloc(sz, 0, &p, NULL, &mx, &e),
                   DNN_EINVAL);
  assert_contains(e.msg, "at least one size");
  sz[1].net = n16;
  sz[1].probability = -3.719;
  assert_int_equal(dnn_meas_exec_mixed_alloc(sz, 2, &p, NULL, &mx, &e),
                   DNN_EINVAL);
  assert_contains(e.msg, "size 1: probability must be > 0");
  /* A size's own executor error names the size. */
  sz[1].probability = 0.5;
  sz[1].batch = 5;
  p.microbatches = 2;
  sz[0].batch = 4;
  assert_int_equal(dnn_meas_exec_mixed_alloc(sz, 2, &p, NULL, &mx, &e),
                   DNN_EINVAL);
  assert_contains(e.msg, "size 16 px (batch 5, 1 copies)");
  assert_contains(e.msg, "batch 5 is not a multiple");
  sz[1].batch = 4;
  sz[1].copies = 0;
  assert_int_equal(dnn_meas_exec_mixed_alloc(sz, 2, &p, NULL, &mx, &e),
                   DNN_EINVAL);
  assert_contains(e.msg, "copies must be in [1, 1024], not 0");
  assert_null(mx);
  dnn_net_free(small);
  dnn_net_free(n12);
  dnn_net_free(n16);
}

/* Every allocation failure building a mixed run is a clean DNN_ENOMEM. */
static void test_mixed_alloc_failures(void **state) {
  (void)state;
  if (EXEC_GPU)
    skip(); /* the CPU engine's (allocation faults, calibration) */
  dnn_net *n12 = load_net_at(12), *n16 = load_net_at(16);
  dnn_meas_exec_size sz[2] = {{n12, 12, 4, 2, 0.5}, {n16, 16, 2, 1, 0.5}};
  dnn_meas_exec_params p = small_params();
  test_alloc_state s;
  long fail_at = 0;
  for (;; fail_at++) {
    test_alloc_install(&s, fail_at);
    dnn_meas_exec_mixed *mx = NULL;
    dnn_error e;
    dnn_status st = dnn_meas_exec_mixed_alloc(sz, 2, &p, NULL, &mx, &e);
    test_alloc_restore();
    if (st == DNN_OK) {
      dnn_meas_exec_mixed_free(mx);
      break;
    }
    if (st != DNN_ENOMEM)
      fail_msg("allocation %ld failing gave %s: %s", fail_at,
               dnn_status_name(st), e.msg);
    assert_contains(e.msg, "out of memory");
    assert_null(mx);
  }
  assert_true(fail_at > 20);
  dnn_net_free(n12);
  dnn_net_free(n16);
}

static void test_step_names(void **state) {
  (void)state;
  assert_string_equal(dnn_meas_step_name(DNN_MEAS_STEP_FWD), "fwd");
  assert_string_equal(dnn_meas_step_name(DNN_MEAS_STEP_ALLREDUCE), "allreduce");
  assert_string_equal(dnn_meas_step_name(DNN_MEAS_STEP_OPTIMIZER), "optimizer");
  assert_string_equal(dnn_meas_step_name(DNN_MEAS_STEP_COUNT), "?");
}

int main(void) {
  dnn_net *net = load_net();
  dnn_meas_exec_params p = small_params();
  dnn_meas_exec *x = NULL;
  dnn_error e;
  dnn_status st = dnn_meas_exec_alloc(net, &p, NULL, &x, &e);
  dnn_meas_exec_free(x);
  dnn_net_free(net);
  if (st == DNN_EUNSUPPORTED && strstr(e.msg, "without")) {
    /* A build without oneDNN (or CUDA): the clear message is the
     * behaviour. */
    printf("executor unavailable, as expected: %s\n", e.msg);
    return 0;
  }
  if (EXEC_GPU && st == DNN_ENODEVICE) {
    if (strstr(e.msg, "no CUDA device") == NULL) {
      printf("unexpected message: %s\n", e.msg);
      return 1;
    }
    printf("GPU engine tests skipped: %s\n", e.msg);
    return 0;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_step_names),
      cmocka_unit_test(test_bad_params),
      cmocka_unit_test(test_unsupported_layer),
      cmocka_unit_test(test_steps_match_ir),
      cmocka_unit_test(test_resnet18_structure),
      cmocka_unit_test(test_microbatch_orders),
      cmocka_unit_test(test_alloc_failures),
      cmocka_unit_test(test_insitu_rows),
      cmocka_unit_test(test_accumulate_flag),
      cmocka_unit_test(test_training_reduces_loss),
      cmocka_unit_test(test_copies_structure),
      cmocka_unit_test(test_copies_bad),
      cmocka_unit_test(test_size_schedule),
      cmocka_unit_test(test_mixed_run),
      cmocka_unit_test(test_mixed_bad),
      cmocka_unit_test(test_mixed_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
