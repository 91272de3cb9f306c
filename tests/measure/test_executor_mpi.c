/*
 * Tests of the executor under MPI. With 2 ranks (mpirun -np 2, label mpi):
 * data parallelism with overlapped and blocking bucketed allreduces, and a
 * 2-stage pipeline cut inside a residual block under GPipe and 1F1B: the
 * step structure (buckets, sends and receives with their peers, tags and
 * sizes, micro-batch orders) and runs whose results every rank agrees on;
 * batch augmentation and a mixed-size run on 2 replicas, whose allreduces
 * move the gradient bytes of one copy at one size whatever the copies and
 * sizes.
 * Alone (1 rank) it checks the rank-count error; in a build without MPI
 * or oneDNN, the clear DNN_EUNSUPPORTED.
 */
#include "test_util.h"

#include <math.h>

#include "dnnsim/measure.h"

static dnn_meas_mpi *g_mpi;

/* conv, batch norm, relu, a residual add whose input has two readers,
 * pooling, flatten, fc and the loss, through the model API, at image side
 * `side`. */
static dnn_net *load_net_at(size_t side) {
  dnn_net *net = NULL;
  dnn_error e;
  assert_ok(dnn_net_alloc("xtest", &net, &e), &e);
  dnn_layer_spec s = dnn_layer_default_spec(DNN_LAYER_INPUT);
  s.name = "data";
  s.input_shape.rank = 3;
  s.input_shape.dim[0] = 3;
  s.input_shape.dim[1] = s.input_shape.dim[2] = side;
  assert_ok(dnn_net_add(net, &s, NULL, &e), &e);
  const char *prev = "data";
  struct {
    const char *name;
    dnn_layer_kind kind;
  } seq[] = {{"c1", DNN_LAYER_CONV2D},        {"b1", DNN_LAYER_BATCHNORM},
             {"r1", DNN_LAYER_ACTIVATION},    {"c2", DNN_LAYER_CONV2D},
             {"b2", DNN_LAYER_BATCHNORM},     {"res", DNN_LAYER_ADD},
             {"pool", DNN_LAYER_MAXPOOL},     {"gap", DNN_LAYER_GLOBAL_AVGPOOL},
             {"flat", DNN_LAYER_FLATTEN},     {"fc", DNN_LAYER_FC},
             {"loss", DNN_LAYER_SOFTMAX_XENT}};
  for (size_t k = 0; k < sizeof seq / sizeof seq[0]; k++) {
    s = dnn_layer_default_spec(seq[k].kind);
    s.name = seq[k].name;
    s.inputs[0] = prev;
    s.n_inputs = 1;
    if (seq[k].kind == DNN_LAYER_CONV2D) {
      s.p.conv.out_channels = 16;
      s.p.conv.kernel_h = s.p.conv.kernel_w = 3;
      s.p.conv.pad_h = s.p.conv.pad_w = 1;
      s.p.conv.bias = false;
    } else if (seq[k].kind == DNN_LAYER_ADD) {
      s.inputs[1] = "r1";
      s.n_inputs = 2;
    } else if (seq[k].kind == DNN_LAYER_MAXPOOL) {
      s.p.pool.kernel_h = s.p.pool.kernel_w = 2;
      s.p.pool.stride_h = s.p.pool.stride_w = 2;
    } else if (seq[k].kind == DNN_LAYER_FC) {
      s.p.fc.out_features = 7;
    }
    assert_ok(dnn_net_add(net, &s, NULL, &e), &e);
    prev = seq[k].name;
  }
  return net;
}

static dnn_net *load_net(void) {
  return load_net_at(12);
}

static dnn_meas_exec_params base(void) {
  dnn_meas_exec_params p = dnn_meas_exec_default_params();
  p.batch = 8;
  p.warmup = 1;
  p.repeats = 3;
  return p;
}

/* What every result satisfies (ranks hold the same one: it is reduced and
 * broadcast). */
static void check_result(const dnn_meas_exec_result *r) {
  assert_true(r->iteration.median_s > 0 && isfinite(r->iteration.median_s));
  assert_true(r->critical_rank < dnn_meas_mpi_size(g_mpi));
  assert_close(r->forward_s + r->backward_s + r->comm_exposed_s + r->bubble_s +
                   r->optimizer_s + r->other_s,
               r->iteration.median_s, 1e-9);
}

/* Allocates, or skips the test in a build without oneDNN. */
static dnn_meas_exec *make(const dnn_net *net, const dnn_meas_exec_params *p) {
  dnn_meas_exec *x = NULL;
  dnn_error e;
  dnn_status st = dnn_meas_exec_alloc(net, p, g_mpi, &x, &e);
  if (st == DNN_EUNSUPPORTED && strstr(e.msg, "without"))
    skip();
  assert_ok(st, &e);
  return x;
}

static void test_data_parallel(void **state) {
  (void)state;
  dnn_net *net = load_net();
  dnn_error e;
  for (int overlap = 0; overlap < 2; overlap++) {
    dnn_meas_exec_params p = base();
    p.data = 2;
    p.overlap = overlap == 1;
    p.bucket_bytes = 4096; /* several buckets */
    p.allreduce = DNN_COMM_ALGO_RING;
    dnn_meas_exec *x = make(net, &p);
    assert_int_equal(dnn_meas_exec_replica(x), dnn_meas_mpi_rank(g_mpi));
    assert_int_equal(dnn_meas_exec_stage(x), 0);
    size_t n = dnn_meas_exec_step_count(x), buckets = 0, last_bwd = 0;
    size_t wait = n, first_ar = n;
    double bytes = 0;
    for (size_t k = 0; k < n; k++) {
      const dnn_meas_exec_step *s = dnn_meas_exec_step_get(x, k);
      if (s->kind == DNN_MEAS_STEP_BWD_DATA ||
          s->kind == DNN_MEAS_STEP_BWD_WEIGHTS)
        last_bwd = k;
      if (s->kind == DNN_MEAS_STEP_ALLREDUCE) {
        assert_int_equal(s->bucket, buckets);
        assert_int_equal(s->blocking, !p.overlap);
        assert_true(s->bytes > 0);
        bytes += s->bytes;
        buckets++;
        if (first_ar == n)
          first_ar = k;
      }
      if (s->kind == DNN_MEAS_STEP_WAIT)
        wait = k;
      assert_true(s->kind != DNN_MEAS_STEP_SEND_ACT &&
                  s->kind != DNN_MEAS_STEP_RECV_ACT);
    }
    assert_true(buckets >= 2);
    /* Overlap: the first bucket leaves before the backward pass ends;
     * blocking: all after it. */
    if (p.overlap)
      assert_true(first_ar < last_bwd);
    else
      assert_true(first_ar > last_bwd);
    /* Overlapped buckets are waited for before the update. */
    if (p.overlap)
      assert_int_equal(wait, n - 2);
    else
      assert_int_equal(wait, n);
    assert_int_equal(dnn_meas_exec_step_get(x, n - 1)->kind,
                     DNN_MEAS_STEP_OPTIMIZER);
    dnn_meas_exec_result r;
    assert_ok(dnn_meas_exec_run(x, &r, &e), &e);
    check_result(&r);
    assert_int_equal(r.ranks, 2);
    assert_int_equal(r.local_batch, 4);
    assert_int_equal(r.buckets, buckets);
    assert_close(r.grad_bytes, bytes, 1e-12);
    assert_true(r.comm_exposed_s > 0);
    assert_true(r.bubble_s == 0);
    for (size_t k = 0; k < n; k++)
      assert_int_equal(dnn_meas_exec_step_get(x, k)->runs, 1);
    dnn_meas_exec_free(x);
  }
  dnn_net_free(net);
}

/* Phases (forward?, micro-batch) of this rank's steps. */
static size_t phases(const dnn_meas_exec *x, int *fwd, size_t *mb, size_t max) {
  size_t n = 0;
  for (size_t k = 0; k < dnn_meas_exec_step_count(x); k++) {
    const dnn_meas_exec_step *s = dnn_meas_exec_step_get(x, k);
    if (s->kind != DNN_MEAS_STEP_FWD && s->kind != DNN_MEAS_STEP_BWD_DATA &&
        s->kind != DNN_MEAS_STEP_BWD_WEIGHTS)
      continue;
    int f = s->kind == DNN_MEAS_STEP_FWD;
    if (n == 0 || fwd[n - 1] != f || mb[n - 1] != s->microbatch) {
      assert_true(n < max);
      fwd[n] = f;
      mb[n++] = s->microbatch;
    }
  }
  return n;
}

static void test_pipeline(void **state) {
  (void)state;
  dnn_net *net = load_net();
  dnn_error e;
  size_t rank = dnn_meas_mpi_rank(g_mpi), c2 = 0, r1 = 0;
  assert_ok(dnn_net_find(net, "c2", &c2), NULL);
  assert_ok(dnn_net_find(net, "r1", &r1), NULL);
  /* Cut before c2: r1 feeds c2 and the residual add, so r1 crosses. */
  size_t cut[2] = {0, c2};
  for (int sched = 0; sched < 2; sched++) {
    dnn_meas_exec_params p = base();
    p.pipeline = 2;
    p.microbatches = 2;
    p.stage_first = cut;
    p.schedule = sched ? DNN_MEAS_EXEC_1F1B : DNN_MEAS_EXEC_GPIPE;
    dnn_meas_exec *x = make(net, &p);
    assert_int_equal(dnn_meas_exec_stage(x), rank);
    size_t n = dnn_meas_exec_step_count(x), sends = 0, recvs = 0;
    for (size_t k = 0; k < n; k++) {
      const dnn_meas_exec_step *s = dnn_meas_exec_step_get(x, k);
      if (s->kind == DNN_MEAS_STEP_FWD || s->kind == DNN_MEAS_STEP_BWD_DATA ||
          s->kind == DNN_MEAS_STEP_BWD_WEIGHTS)
        assert_true(rank == 0 ? s->layer < c2 : s->layer >= c2);
      bool msg = s->kind == DNN_MEAS_STEP_SEND_ACT ||
                 s->kind == DNN_MEAS_STEP_RECV_ACT ||
                 s->kind == DNN_MEAS_STEP_SEND_GRAD ||
                 s->kind == DNN_MEAS_STEP_RECV_GRAD;
      if (!msg)
        continue;
      assert_int_equal(s->layer, r1);
      assert_int_equal(s->peer, 1 - rank);
      assert_close(s->bytes, 4.0 * 16 * 12 * 12 * 4, 1e-12);
      if (rank == 0)
        assert_true(s->kind == DNN_MEAS_STEP_SEND_ACT ||
                    s->kind == DNN_MEAS_STEP_RECV_GRAD);
      else
        assert_true(s->kind == DNN_MEAS_STEP_RECV_ACT ||
                    s->kind == DNN_MEAS_STEP_SEND_GRAD);
      sends += s->kind == DNN_MEAS_STEP_SEND_ACT ||
               s->kind == DNN_MEAS_STEP_SEND_GRAD;
      recvs += s->kind == DNN_MEAS_STEP_RECV_ACT ||
               s->kind == DNN_MEAS_STEP_RECV_GRAD;
    }
    assert_int_equal(sends, 2);
    assert_int_equal(recvs, 2);
    int f[8];
    size_t mb[8];
    size_t np = phases(x, f, mb, 8);
    assert_int_equal(np, 4);
    /* GPipe: F0 F1 B0 B1 on both; 1F1B: stage 0 warms up with one
     * forward (p - s - 1 = 1), stage 1 alternates. */
    static const int gp[] = {1, 1, 0, 0};
    static const int s1[] = {1, 0, 1, 0};
    static const size_t gm[] = {0, 1, 0, 1}, s1m[] = {0, 0, 1, 1};
    bool alt = sched == 1 && rank == 1;
    for (size_t k = 0; k < np; k++) {
      assert_int_equal(f[k], alt ? s1[k] : gp[k]);
      assert_int_equal(mb[k], alt ? s1m[k] : gm[k]);
    }
    dnn_meas_exec_result r;
    assert_ok(dnn_meas_exec_run(x, &r, &e), &e);
    check_result(&r);
    assert_int_equal(r.microbatch, 4);
    assert_true(r.grad_bytes == 0);
    assert_true(r.bubble_s > 0);
    double t[DNN_PASS_COUNT];
    dnn_meas_exec_layer_time(x, c2, t); /* stage 1's, on every rank */
    assert_true(t[DNN_PASS_FWD] > 0 && t[DNN_PASS_BWD_WEIGHTS] > 0);
    dnn_meas_exec_layer_time(x, 1, t); /* stage 0's c1 */
    assert_true(t[DNN_PASS_FWD] > 0 && t[DNN_PASS_BWD_WEIGHTS] > 0);
    dnn_meas_exec_free(x);
  }
  dnn_net_free(net);
}

/* Batch augmentation (copies 1 and 3) and a mixed-size run (12 and 16 px,
 * the second with 2 copies) on 2 replicas: the compute batch grows, the
 * allreduced gradient bytes and buckets do not. */
static void test_techniques(void **state) {
  (void)state;
  dnn_net *n12 = load_net_at(12), *n16 = load_net_at(16);
  dnn_error e;
  double grad[2];
  size_t buckets[2];
  for (size_t k = 0; k < 2; k++) {
    dnn_meas_exec_params p = base();
    p.data = 2;
    p.overlap = false;
    p.bucket_bytes = 4096;
    p.copies = k ? 3 : 1;
    dnn_meas_exec *x = make(n12, &p);
    dnn_meas_exec_result r;
    assert_ok(dnn_meas_exec_run(x, &r, &e), &e);
    check_result(&r);
    assert_int_equal(r.local_batch, 4);
    assert_int_equal(r.microbatch, 4 * p.copies);
    assert_true(r.comm_exposed_s > 0);
    grad[k] = r.grad_bytes;
    buckets[k] = r.buckets;
    dnn_meas_exec_free(x);
  }
  assert_true(grad[0] > 0);
  assert_close(grad[1], grad[0], 1e-12);
  assert_int_equal(buckets[1], buckets[0]);

  dnn_meas_exec_size sz[2] = {{n12, 12, 8, 1, 0.5}, {n16, 16, 4, 2, 0.5}};
  dnn_meas_exec_params p = base();
  p.data = 2;
  p.overlap = false;
  p.bucket_bytes = 4096;
  p.repeats = 6;
  dnn_meas_exec_mixed *mx = NULL;
  dnn_status st = dnn_meas_exec_mixed_alloc(sz, 2, &p, g_mpi, &mx, &e);
  if (st == DNN_EUNSUPPORTED && strstr(e.msg, "without"))
    skip();
  assert_ok(st, &e);
  dnn_meas_exec_mixed_result r;
  dnn_meas_exec_result per[2];
  assert_ok(dnn_meas_exec_mixed_run(mx, &r, per, &e), &e);
  assert_int_equal(r.steps, 6);
  assert_true(r.total_s > 0 && r.step.max_s <= r.total_s);
  size_t drawn = 0;
  for (size_t k = 0; k < 2; k++) {
    drawn += per[k].iteration.samples;
    if (per[k].iteration.samples == 0)
      continue;
    check_result(&per[k]);
    assert_int_equal(per[k].ranks, 2);
    assert_close(per[k].grad_bytes, grad[0], 1e-12);
    assert_int_equal(per[k].buckets, buckets[0]);
  }
  assert_int_equal(drawn, 6);
  dnn_meas_exec_mixed_free(mx);
  dnn_net_free(n12);
  dnn_net_free(n16);
}

/* A rank count that does not match: every rank fails alike, naming both. */
static void test_rank_mismatch(void **state) {
  (void)state;
  dnn_net *net = load_net();
  dnn_meas_exec_params p = base();
  p.data = 2;
  p.pipeline = 2;
  dnn_meas_exec *x = NULL;
  dnn_error e;
  dnn_status st = dnn_meas_exec_alloc(net, &p, g_mpi, &x, &e);
  assert_int_equal(st, DNN_EINVAL);
  assert_null(x);
  assert_contains(e.msg, "data x pipeline = 2 x 2 = 4 devices");
  char want[64];
  size_t n = dnn_meas_mpi_size(g_mpi);
  snprintf(want, sizeof want, "but %zu MPI rank%s running", n,
           n == 1 ? " is" : "s are");
  assert_contains(e.msg, want);
  dnn_net_free(net);
}

int main(int argc, char **argv) {
  setenv("OMPI_MCA_coll_tuned_use_dynamic_rules", "1", 0);
  dnn_error e;
  dnn_status st = dnn_meas_mpi_init(&argc, &argv, &g_mpi, &e);
  if (st == DNN_EUNSUPPORTED)
    return strstr(e.msg, "without MPI") ? 0 : 1;
  if (st) {
    fprintf(stderr, "MPI init failed: %s\n", e.msg);
    return 1;
  }
  int rc;
  if (dnn_meas_mpi_size(g_mpi) < 2) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rank_mismatch),
    };
    rc = cmocka_run_group_tests(tests, NULL, NULL);
  } else {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rank_mismatch),
        cmocka_unit_test(test_data_parallel),
        cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_techniques),
    };
    rc = cmocka_run_group_tests(tests, NULL, NULL);
  }
  dnn_meas_mpi_finalize(g_mpi);
  return rc;
}
