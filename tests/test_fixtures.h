/*
 * Shared fixtures of the model and strategy tests: networks built layer by
 * layer (tests/model/), the allocation-failure sweep of a zoo builder, and
 * a "world" of scenario, network, profile and cluster loaded from INI text
 * with space-separated SECTION.KEY=VALUE overrides (tests/parallelism/).
 *
 * Invariant: every helper fails the calling test (cmocka) on an unexpected
 * status, so tests read as straight-line set-up; none of them computes an
 * expected value, which stays in the tests.
 */
#ifndef DNNSIM_TEST_FIXTURES_H
#define DNNSIM_TEST_FIXTURES_H

#include "test_util.h"

#include <limits.h>
#include <stdbool.h>

#include "dnnsim/hw.h"
#include "dnnsim/model.h"
#include "dnnsim/scenario.h"
#include "dnnsim/strat.h"

/* ---- Networks ------------------------------------------------------------ */

/* An empty network called `name`. */
static inline dnn_net *test_net_new(const char *name) {
  dnn_net *net = NULL;
  dnn_error e;
  assert_ok(dnn_net_alloc(name, &net, &e), &e);
  return net;
}

/* A spec of `kind` reading `in` (NULL: no input). */
static inline dnn_layer_spec test_spec1(dnn_layer_kind kind, const char *name,
                                        const char *in) {
  dnn_layer_spec sp = dnn_layer_default_spec(kind);
  sp.name = name;
  if (in) {
    sp.inputs[0] = in;
    sp.n_inputs = 1;
  }
  return sp;
}

/* Adds `sp`; returns its layer index. */
static inline size_t test_net_add(dnn_net *net, dnn_layer_spec sp) {
  dnn_error e;
  size_t idx;
  assert_ok(dnn_net_add(net, &sp, &idx, &e), &e);
  return idx;
}

/* "chain": input "in" of 1000 features, then fc0 .. fc<layers - 1>, each
 * `width` wide (at most 64 layers). */
static inline dnn_net *test_fc_chain(size_t layers, size_t width) {
  dnn_net *net = test_net_new("chain");
  dnn_layer_spec s = test_spec1(DNN_LAYER_INPUT, "in", NULL);
  s.input_shape.rank = 1;
  s.input_shape.dim[0] = 1000;
  test_net_add(net, s);
  static char names[64][16];
  assert_true(layers <= 64);
  for (size_t i = 0; i < layers; i++) {
    snprintf(names[i], sizeof names[i], "fc%zu", i);
    dnn_layer_spec f =
        test_spec1(DNN_LAYER_FC, names[i], i ? names[i - 1] : "in");
    f.p.fc.out_features = width;
    test_net_add(net, f);
  }
  return net;
}

/* Zoo network `name` built with `zp`. */
static inline dnn_net *test_zoo_net(const char *name,
                                    const dnn_zoo_params *zp) {
  dnn_net *net = NULL;
  dnn_error e;
  assert_ok(dnn_zoo_build(name, zp, &net, &e), &e);
  return net;
}

/* The layer called `name`; fails the test when there is none. */
static inline const dnn_layer *test_layer(const dnn_net *net,
                                          const char *name) {
  size_t i = 0;
  if (dnn_net_find(net, name, &i) != DNN_OK)
    fail_msg("no layer '%s' in %s", name, dnn_net_name(net));
  return dnn_net_layer(net, i);
}

/* Fails unless layer i's cost of (pass, batch, dtype) is FLOPs fl, work
 * wk, depth dp, bytes read rd and bytes written wr (relative 1e-12). */
#define expect_cost(net, i, pass, batch, dtype, fl, wk, dp, rd, wr)            \
  do {                                                                         \
    dnn_cost c_;                                                               \
    dnn_layer_cost((net), (i), (pass), (batch), (dtype), &c_);                 \
    assert_close(c_.flops, (fl), 1e-12);                                       \
    assert_close(c_.work, (wk), 1e-12);                                        \
    assert_close(c_.depth, (dp), 1e-12);                                       \
    assert_close(c_.bytes_read, (rd), 1e-12);                                  \
    assert_close(c_.bytes_written, (wr), 1e-12);                               \
  } while (0)

/* ---- Allocation failures ------------------------------------------------ */

/* Builds something into *out (NULL when nothing was built). */
typedef dnn_status (*test_build_fn)(void *ud, void **out, dnn_error *err);

/*
 * Runs `build` with allocation 0, 1, 2, ... failing (and all after it)
 * until a build succeeds, below `max_fail_at` tries: every failed build
 * must return DNN_ENOMEM, leave nothing and say "out of memory" (naming
 * `name` unless it is NULL). Frees the successful build with `free_fn`.
 * Returns the first allocation index at which the build succeeded.
 */
static inline long test_alloc_sweep(test_build_fn build,
                                    void (*free_fn)(void *), void *ud,
                                    const char *name, long max_fail_at) {
  long fail_at = 0;
  for (;; fail_at++) {
    test_alloc_state s;
    void *out = NULL;
    dnn_error e;
    dnn_error_clear(&e);
    test_alloc_install(&s, fail_at);
    dnn_status st = build(ud, &out, &e);
    test_alloc_restore();
    if (st == DNN_OK) {
      free_fn(out);
      break;
    }
    assert_int_equal(st, DNN_ENOMEM);
    assert_null(out);
    assert_contains(e.msg, "out of memory");
    if (name)
      assert_contains(e.msg, name);
    assert_true(fail_at < max_fail_at);
  }
  return fail_at;
}

typedef struct test_zoo_args {
  const char *name;
  const dnn_zoo_params *zp;
} test_zoo_args;

static inline dnn_status test_zoo_build(void *ud, void **out, dnn_error *err) {
  const test_zoo_args *a = ud;
  dnn_net *net = NULL;
  dnn_status st = dnn_zoo_build(a->name, a->zp, &net, err);
  *out = net;
  return st;
}

static inline void test_net_free(void *net) {
  dnn_net_free(net);
}

/* test_alloc_sweep of zoo network `name`; the message must name it. */
static inline long test_zoo_alloc_sweep(const char *name,
                                        const dnn_zoo_params *zp,
                                        long max_fail_at) {
  test_zoo_args a = {name, zp};
  return test_alloc_sweep(test_zoo_build, test_net_free, &a, name, max_fail_at);
}

/* ---- Worlds -------------------------------------------------------------- */

typedef struct test_world {
  dnn_scenario scn;
  dnn_net *net; /* NULL until built */
  dnn_hw *hw;
  dnn_cluster cluster;
} test_world;

/* Applies `sets`: space-separated SECTION.KEY=VALUE overrides, at most
 * 1023 characters. */
static inline void test_scn_sets(dnn_scenario *scn, const char *sets) {
  dnn_error e;
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", sets);
  char *save = NULL;
  for (char *tok = strtok_r(buf, " ", &save); tok;
       tok = strtok_r(NULL, " ", &save))
    assert_ok(dnn_scn_set(scn, tok, &e), &e);
}

/* Parses `text` as scenario file `file` (relative paths against `dir`, may
 * be NULL) and applies `sets` (test_scn_sets). */
static inline void test_world_parse(test_world *w, const char *text,
                                    const char *file, const char *dir,
                                    const char *sets) {
  dnn_error e;
  dnn_scn_init(&w->scn);
  assert_ok(dnn_scn_load_string(text, file, dir, &w->scn, &e), &e);
  test_scn_sets(&w->scn, sets);
}

/* Validates the scenario and loads its profile and cluster, and with
 * `net` builds its network. */
static inline void test_world_ready(test_world *w, bool net) {
  dnn_error e;
  assert_ok(dnn_scn_validate(&w->scn, &e), &e);
  assert_ok(dnn_scn_load_hw(&w->scn, &w->hw, &e), &e);
  assert_ok(dnn_scn_cluster(&w->scn, &w->cluster, &e), &e);
  if (net)
    assert_ok(dnn_scn_build_net(&w->scn, 0, &w->net, &e), &e);
}

/* test_world_parse, then test_world_ready. */
static inline void test_world_load(test_world *w, const char *text,
                                   const char *file, const char *dir,
                                   const char *sets, bool net) {
  test_world_parse(w, text, file, dir, sets);
  test_world_ready(w, net);
}

static inline void test_world_free(test_world *w) {
  dnn_net_free(w->net);
  dnn_hw_free(w->hw);
}

static inline dnn_strat_input test_world_input(const test_world *w) {
  dnn_strat_input in = {&w->scn, w->net, w->hw, w->cluster};
  return in;
}

/* The prediction of the world as it stands (its scenario's engine). */
static inline dnn_prediction test_world_predict(const test_world *w) {
  dnn_strat_input in = test_world_input(w);
  dnn_prediction p;
  dnn_error e;
  assert_ok(dnn_strat_predict(&in, &p, &e), &e);
  return p;
}

/* The prediction with the scenario's engine set to `engine`. */
static inline dnn_prediction test_world_predict_on(test_world *w,
                                                   dnn_engine engine) {
  w->scn.engine = engine;
  return test_world_predict(w);
}

/* The sum of a breakdown's parts, which must make up the iteration. */
static inline double test_breakdown_sum(const dnn_breakdown *b) {
  return b->forward_s + b->backward_s + b->recompute_s + b->comm_exposed_s +
         b->bubble_s + b->optimizer_s;
}

#endif /* DNNSIM_TEST_FIXTURES_H */
