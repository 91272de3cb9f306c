/*
 * Tests of measure/exec_plan.c, the stage plan both executor engines
 * build on: which tensors a stage holds, receives and sends, which carry
 * a gradient, how many contributions each gradient gets and which one
 * comes first in backward order, the loss labels and the check for
 * sharing parameters. Hand-derived on a small residual network, whole
 * and cut into two stages.
 */
#include "test_util.h"

#include "dnnsim/measure.h"
#include "dnnsim/scenario.h"
#include "measure/exec_internal.h"

/* 0 data, 1 c1, 2 r1, 3 c2, 4 res = c2 + r1, 5 flat, 6 fc, 7 loss. */
static const char NET[] = "[network]\nname = plan\n"
                          "[layer.data]\ntype = input\nshape = 2, 4, 4\n"
                          "[layer.c1]\ntype = conv2d\nout_channels = 3\n"
                          "kernel = 3\npadding = 1\n"
                          "[layer.r1]\ntype = relu\n"
                          "[layer.c2]\ntype = conv2d\nout_channels = 3\n"
                          "kernel = 3\npadding = 1\n"
                          "[layer.res]\ntype = add\ninput = c2, r1\n"
                          "[layer.flat]\ntype = flatten\n"
                          "[layer.fc]\ntype = fc\nout_features = 5\n"
                          "[layer.loss]\ntype = softmax_xent\n";

enum { DATA, C1, R1, C2, RES, FLAT, FC, LOSS, L };

static dnn_net *load(void) {
  dnn_net *net = NULL;
  dnn_error e;
  assert_ok(dnn_scn_load_net_string(NET, "plan.ini", 0, &net, &e), &e);
  assert_int_equal(dnn_net_layer_count(net), L);
  return net;
}

static void test_whole_network(void **state) {
  (void)state;
  dnn_net *net = load();
  dnn__xplan pl;
  dnn_error e;
  assert_ok(dnn__xplan_build(net, 0, L, &pl, &e), &e);
  assert_int_equal(pl.n_in, 0);
  assert_int_equal(pl.n_out, 0);
  for (size_t j = 0; j < L; j++) {
    assert_true(pl.t[j].used);
    assert_false(pl.t[j].external || pl.t[j].outgoing);
  }
  /* The input's producer has nothing to learn; c1 has weights. */
  assert_false(pl.t[DATA].needs_grad);
  assert_true(pl.t[C1].needs_grad && pl.t[R1].needs_grad);
  /* r1 feeds c2 and the add: two contributions, the add's first (the
   * highest consumer runs its backward first). */
  assert_int_equal(pl.t[R1].contribs, 2);
  assert_true(dnn__xplan_edge_first(&pl, R1, RES, 1));
  assert_false(dnn__xplan_edge_first(&pl, R1, C2, 0));
  /* c2 feeds only the add; the add only flatten; flatten only fc. */
  assert_int_equal(pl.t[C2].contribs, 1);
  assert_int_equal(pl.t[C2].only, RES);
  assert_true(dnn__xplan_edge_first(&pl, C2, RES, 0));
  assert_int_equal(pl.t[RES].only, FLAT);
  assert_int_equal(pl.t[FLAT].only, FC);
  /* c1's input gradient is never needed: no contribution to data. */
  assert_int_equal(pl.t[DATA].contribs, 0);
  assert_int_equal(pl.t[DATA].only, DNN_MEAS_NONE);
  dnn__xplan_free(&pl);
  dnn_net_free(net);
}

/* Cut before the add: stage 0 is [data, c2], stage 1 [res, loss]. */
static void test_two_stages(void **state) {
  (void)state;
  dnn_net *net = load();
  dnn__xplan a, b;
  dnn_error e;
  assert_ok(dnn__xplan_build(net, 0, RES, &a, &e), &e);
  assert_ok(dnn__xplan_build(net, RES, L - RES, &b, &e), &e);
  /* Stage 0 sends r1 and c2 (both read by the add), in layer order. */
  assert_int_equal(a.n_in, 0);
  assert_int_equal(a.n_out, 2);
  assert_int_equal(a.out[0], R1);
  assert_int_equal(a.out[1], C2);
  /* r1's gradient: the next stage's (first) plus c2's edge. */
  assert_true(a.t[R1].outgoing);
  assert_int_equal(a.t[R1].contribs, 2);
  assert_false(dnn__xplan_edge_first(&a, R1, C2, 0));
  assert_int_equal(a.t[C2].contribs, 1); /* the received one only */
  /* Stage 1 receives them and sends their gradients back. */
  assert_int_equal(b.n_in, 2);
  assert_int_equal(b.in[0], R1);
  assert_int_equal(b.in[1], C2);
  assert_true(b.t[R1].external && b.t[R1].needs_grad);
  assert_false(b.t[C1].used); /* nothing of stage 1 reads it */
  assert_int_equal(b.n_out, 0);
  /* Inside stage 1 the add's edge is each received tensor's only one. */
  assert_int_equal(b.t[R1].contribs, 1);
  assert_true(dnn__xplan_edge_first(&b, R1, RES, 1));
  dnn__xplan_free(&a);
  dnn__xplan_free(&b);
  dnn_net_free(net);
}

static void test_labels_and_sharing(void **state) {
  (void)state;
  /* Copies of a sample share its label: rows 0-2 are one group of 3
   * copies of one row each; key 0 hashes to 12345 mod 7 = 4. */
  for (size_t r = 0; r < 3; r++)
    assert_int_equal(dnn__xplan_label(r, 1, 3, 7), 4);
  /* Row 3 starts the next group: key 1, (2654435761 + 12345) mod 7. */
  assert_int_equal(dnn__xplan_label(3, 1, 3, 7), (2654435761u + 12345u) % 7u);
  /* With 2 rows a sample, the group's rows r and r + 2 share labels. */
  assert_int_equal(dnn__xplan_label(1, 2, 4, 7), dnn__xplan_label(3, 2, 4, 7));
  dnn_error e;
  assert_ok(dnn__xplan_share_check(10, 1, 16, 1, &e), &e);
  assert_int_equal(dnn__xplan_share_check(20, 1, 16, 1, &e), DNN_EINVAL);
  assert_contains(e.msg, "20 floats");
  assert_int_equal(dnn__xplan_share_check(10, 0, 16, 1, &e), DNN_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_whole_network),
      cmocka_unit_test(test_two_stages),
      cmocka_unit_test(test_labels_and_sharing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
