/* Tests of parallelism/sim.c: the event engine on hand-built graphs. Event
 * order at equal times, dependencies and stream order, link sharing against
 * hand-computed processor-sharing times, flow caps and weights, the
 * breakdown of idle time, re-timing without allocation, cycles, every
 * error path, allocation-failure injection and byte-identical traces. */
#include "test_util.h"

#include <math.h>
#include <string.h>

#include "dnnsim/sim.h"

/* One device with `streams` streams; returns the simulator. */
static dnn_sim *make(size_t devices, size_t streams_per_device) {
  dnn_sim *s;
  dnn_error e;
  assert_ok(dnn_sim_alloc(&s, &e), &e);
  for (size_t d = 0; d < devices; d++) {
    char nm[32];
    snprintf(nm, sizeof nm, "dev%zu", d);
    assert_ok(dnn_sim_add_device(s, nm, 10 + d, NULL, &e), &e);
    for (size_t k = 0; k < streams_per_device; k++) {
      snprintf(nm, sizeof nm, "s%zu", k);
      assert_ok(dnn_sim_add_stream(s, d, nm, NULL, &e), &e);
    }
  }
  return s;
}

static size_t task(dnn_sim *s, size_t stream, dnn_sim_cat cat, double dur,
                   const char *name) {
  dnn_sim_task t = dnn_sim_default_task();
  t.stream = stream;
  t.cat = cat;
  t.duration_s = dur;
  t.name = name;
  size_t id;
  dnn_error e;
  assert_ok(dnn_sim_add_task(s, &t, &id, &e), &e);
  return id;
}

static size_t xfer(dnn_sim *s, size_t stream, size_t link, double lat,
                   double bytes, double weight) {
  dnn_sim_task t = dnn_sim_default_task();
  t.stream = stream;
  t.cat = DNN_SIM_SEND;
  t.duration_s = lat;
  t.bytes = bytes;
  t.link = link;
  t.weight = weight;
  t.name = "send";
  size_t id;
  dnn_error e;
  assert_ok(dnn_sim_add_task(s, &t, &id, &e), &e);
  return id;
}

static void dep(dnn_sim *s, size_t a, size_t b) {
  dnn_error e;
  assert_ok(dnn_sim_add_dep(s, a, b, &e), &e);
}

static void run(dnn_sim *s) {
  dnn_error e;
  assert_ok(dnn_sim_run(s, &e), &e);
  assert_true(dnn_sim_done(s));
}

static double end_of(dnn_sim *s, size_t k) {
  double a, b;
  dnn_sim_task_times(s, k, &a, &b);
  return b;
}

static double start_of(dnn_sim *s, size_t k) {
  double a, b;
  dnn_sim_task_times(s, k, &a, &b);
  return a;
}

static void test_stream_order_and_deps(void **state) {
  (void)state;
  dnn_sim *s = make(2, 1);
  /* Stream 0: a (1.3), b (0.7); stream 1: c (2.9) after a; d (0.41) after
   * b and c. */
  size_t a = task(s, 0, DNN_SIM_FWD, 1.3, "a");
  size_t b = task(s, 0, DNN_SIM_FWD, 0.7, "b");
  size_t c = task(s, 1, DNN_SIM_BWD, 2.9, "c");
  size_t d = task(s, 1, DNN_SIM_BWD, 0.41, "d");
  dep(s, a, c);
  dep(s, b, d);
  run(s);
  assert_close(end_of(s, a), 1.3, 1e-15);
  assert_close(start_of(s, b), 1.3, 1e-15);
  assert_close(end_of(s, b), 2.0, 1e-15);
  assert_close(start_of(s, c), 1.3, 1e-15);
  assert_close(end_of(s, c), 4.2, 1e-15);
  assert_close(start_of(s, d), 4.2, 1e-15);
  assert_close(dnn_sim_makespan(s), 4.61, 1e-15);
  assert_int_equal(dnn_sim_events(s), 4);
  assert_int_equal(dnn_sim_task_count(s), 4);
  assert_int_equal(dnn_sim_stream_device(s, 1), 1);
  dnn_sim_free(s);
}

static void test_equal_times_keep_insertion_order(void **state) {
  (void)state;
  enum { N = 37 };
  dnn_sim *s = make(N, 1);
  /* Every task ends at 2.5 (some through a zero-duration predecessor);
   * they must finish in the order they were scheduled. */
  size_t ids[N];
  for (size_t i = 0; i < N; i++)
    ids[i] = task(s, i, DNN_SIM_FWD, 2.5, "t");
  dnn_error e;
  assert_ok(dnn_sim_init(s, &e), &e);
  dnn_sim_event ev;
  size_t i = 0;
  while (dnn_sim_step(s, &ev)) {
    assert_int_equal(ev.kind, DNN_SIM_EV_DONE);
    assert_close(ev.time_s, 2.5, 0);
    assert_int_equal(ev.task, ids[i]);
    i++;
  }
  assert_int_equal(i, N);
  assert_true(dnn_sim_done(s));
  assert_false(dnn_sim_step(s, &ev));
  /* Zero-duration chains keep their order too. */
  dnn_sim_free(s);
  s = make(1, 3);
  size_t z0 = task(s, 0, DNN_SIM_FWD, 0, "z0");
  size_t z1 = task(s, 1, DNN_SIM_FWD, 0, "z1");
  size_t z2 = task(s, 2, DNN_SIM_FWD, 0, "z2");
  size_t z3 = task(s, 0, DNN_SIM_FWD, 0, "z3");
  assert_ok(dnn_sim_init(s, &e), &e);
  size_t want[] = {z0, z1, z2, z3};
  for (i = 0; dnn_sim_step(s, &ev); i++)
    assert_int_equal(ev.task, want[i]);
  assert_int_equal(i, 4);
  dnn_sim_free(s);
}

static void test_link_sharing_halves_bandwidth(void **state) {
  (void)state;
  const double B = 3.719e9, X = 7.31e8, lat = 4.3e-6;
  /* One transfer alone. */
  dnn_sim *s = make(1, 2);
  dnn_error e;
  size_t l;
  assert_ok(dnn_sim_add_link(s, "port", B, 1e30, &l, &e), &e);
  size_t a = xfer(s, 0, l, lat, X, 1);
  run(s);
  assert_close(end_of(s, a), lat + X / B, 1e-13);
  dnn_sim_free(s);
  /* Two equal ones at once: each at B/2. */
  s = make(1, 2);
  assert_ok(dnn_sim_add_link(s, "port", B, 1e30, &l, &e), &e);
  a = xfer(s, 0, l, lat, X, 1);
  size_t b = xfer(s, 1, l, lat, X, 1);
  run(s);
  assert_close(end_of(s, a), lat + 2 * X / B, 1e-13);
  assert_close(end_of(s, b), lat + 2 * X / B, 1e-13);
  /* Each took twice as long as alone: half the bandwidth. */
  assert_close((end_of(s, a) - start_of(s, a) - lat), 2 * X / B, 1e-13);
  /* Two events each: latency end, then transfer end. */
  assert_int_equal(dnn_sim_events(s), 4);
  dnn_sim_free(s);
}

static void test_link_sharing_staggered(void **state) {
  (void)state;
  /* A (X bytes) starts at 0; B (Y bytes) joins at t1 after a compute task.
   * Until t1 A runs at full rate; then both at half; A ends first, B
   * finishes alone at full rate. */
  const double Bw = 2.113e9, X = 5.17e8, Y = 9.43e8, t1 = 0.0713;
  dnn_sim *s = make(1, 3);
  dnn_error e;
  size_t l;
  assert_ok(dnn_sim_add_link(s, "nic", Bw, 1e30, &l, &e), &e);
  size_t a = xfer(s, 0, l, 0, X, 1);
  size_t c = task(s, 1, DNN_SIM_FWD, t1, "c");
  size_t b = xfer(s, 2, l, 0, Y, 1);
  dep(s, c, b);
  run(s);
  double rem_a = X - Bw * t1;
  double ta = t1 + rem_a / (Bw / 2);
  double rem_b = Y - rem_a;
  double tb = ta + rem_b / Bw;
  assert_close(end_of(s, a), ta, 1e-12);
  assert_close(start_of(s, b), t1, 1e-15);
  assert_close(end_of(s, b), tb, 1e-12);
  dnn_sim_free(s);
}

static void test_link_cap_and_weight(void **state) {
  (void)state;
  const double B = 4.91e9, X = 1.37e8;
  dnn_sim *s = make(1, 2);
  dnn_error e;
  size_t l;
  /* A flow cap below the share limits each flow. */
  assert_ok(dnn_sim_add_link(s, "bundle", B, 1.7e9, &l, &e), &e);
  size_t a = xfer(s, 0, l, 0, X, 1);
  size_t b = xfer(s, 1, l, 0, X, 1);
  run(s);
  assert_close(end_of(s, a), X / 1.7e9, 1e-13);
  assert_close(end_of(s, b), X / 1.7e9, 1e-13);
  dnn_sim_free(s);
  /* A flow of weight 3 stands for three: it gets B/3 alone; with a weight-1
   * flow beside it each gets B/4. */
  s = make(1, 2);
  assert_ok(dnn_sim_add_link(s, "bundle", B, 1e30, &l, &e), &e);
  a = xfer(s, 0, l, 0, X, 3);
  run(s);
  assert_close(end_of(s, a), 3 * X / B, 1e-13);
  dnn_sim_free(s);
  s = make(1, 2);
  assert_ok(dnn_sim_add_link(s, "bundle", B, 1e30, &l, &e), &e);
  a = xfer(s, 0, l, 0, X, 3);
  b = xfer(s, 1, l, 0, X, 1);
  run(s);
  assert_close(end_of(s, a), 4 * X / B, 1e-13);
  assert_close(end_of(s, b), 4 * X / B, 1e-13);
  dnn_sim_free(s);
}

static void test_breakdown_attribution(void **state) {
  (void)state;
  /* dev0: compute a (1.3), then a send (latency 0.7) to dev1, whose
   * compute stream runs b (2.1) after the send, then c (0.37) after its
   * own collective (0.53). */
  dnn_sim *s = make(2, 2);
  size_t a = task(s, 0, DNN_SIM_FWD, 1.3, "a");
  size_t snd = task(s, 1, DNN_SIM_SEND, 0.7, "send");
  size_t b = task(s, 2, DNN_SIM_BWD, 2.1, "b");
  size_t col = task(s, 3, DNN_SIM_COLLECTIVE, 0.53, "ar");
  size_t c = task(s, 2, DNN_SIM_OPTIMIZER, 0.37, "opt");
  dep(s, a, snd);
  dep(s, snd, b);
  dep(s, b, col);
  dep(s, col, c);
  run(s);
  dnn_sim_breakdown bd;
  dnn_sim_stream_breakdown(s, 2, &bd);
  assert_close(bd.busy_s[DNN_SIM_BWD], 2.1, 1e-15);
  assert_close(bd.busy_s[DNN_SIM_OPTIMIZER], 0.37, 1e-15);
  assert_close(bd.comm_exposed_s, 0.7 + 0.53, 1e-14);
  assert_close(bd.idle_s, 1.3, 1e-14);
  assert_close(bd.end_s, 1.3 + 0.7 + 2.1 + 0.53 + 0.37, 1e-15);
  assert_close(bd.comm_s, 0.53, 1e-15);
  double sum = bd.comm_exposed_s + bd.idle_s;
  for (int k = 0; k < DNN_SIM_CAT_COUNT; k++)
    sum += bd.busy_s[k];
  assert_close(sum, bd.end_s, 1e-14);
  dnn_sim_stream_breakdown(s, 0, &bd);
  assert_close(bd.busy_s[DNN_SIM_FWD], 1.3, 1e-15);
  assert_close(bd.idle_s + bd.comm_exposed_s, 0, 0);
  assert_close(bd.comm_s, 0.7, 1e-15);
  dnn_sim_free(s);
}

static void test_retime_without_allocation(void **state) {
  (void)state;
  dnn_sim *s = make(1, 2);
  dnn_error e;
  size_t l;
  assert_ok(dnn_sim_add_link(s, "port", 1e9, 1e30, &l, &e), &e);
  size_t a = task(s, 0, DNN_SIM_FWD, 1.0, "a");
  size_t x = xfer(s, 1, l, 1e-3, 1e6, 1);
  dep(s, a, x);
  run(s);
  assert_close(dnn_sim_makespan(s), 1.0 + 1e-3 + 1e-3, 1e-13);
  test_alloc_state st;
  test_alloc_install(&st, 0); /* every allocation fails from here */
  dnn_sim_task_retime(s, a, 2.371, 0);
  dnn_sim_task_retime(s, x, 2e-3, 3.7e6);
  dnn_sim_link_retime(s, l, 2e9, 1e30);
  dnn_status rc = dnn_sim_run(s, &e);
  long count = st.count;
  test_alloc_restore();
  assert_int_equal(rc, DNN_OK);
  assert_int_equal(count, 0);
  assert_close(dnn_sim_makespan(s), 2.371 + 2e-3 + 3.7e6 / 2e9, 1e-13);
  dnn_sim_task t = dnn_sim_task_get(s, x);
  assert_close(t.bytes, 3.7e6, 0);
  assert_int_equal(t.link, l);
  assert_int_equal(t.cat, DNN_SIM_SEND);
  dnn_sim_free(s);
}

static void test_cycle_detected(void **state) {
  (void)state;
  dnn_sim *s = make(1, 2);
  /* Stream order a -> b on stream 0, and b -> c -> a through deps. */
  size_t a = task(s, 0, DNN_SIM_FWD, 1, "a");
  size_t b = task(s, 0, DNN_SIM_FWD, 1, "b");
  size_t c = task(s, 1, DNN_SIM_FWD, 1, "cyc");
  dep(s, b, c);
  dep(s, c, a);
  dnn_error e;
  assert_int_equal(dnn_sim_run(s, &e), DNN_EINVAL);
  assert_contains(e.msg, "cycle");
  assert_contains(e.msg, "can never start");
  assert_false(dnn_sim_done(s));
  dnn_sim_free(s);
}

static void test_error_paths(void **state) {
  (void)state;
  dnn_sim *s = make(1, 1);
  dnn_error e;
  size_t l;
  assert_int_equal(dnn_sim_add_stream(s, 4, "x", NULL, &e), DNN_EINVAL);
  assert_contains(e.msg, "no device 4");
  assert_int_equal(dnn_sim_add_link(s, "bad", 0, 1, &l, &e), DNN_EINVAL);
  assert_contains(e.msg, "link 'bad'");
  assert_int_equal(dnn_sim_add_link(s, "bad", 1, INFINITY, &l, &e), DNN_EINVAL);
  assert_ok(dnn_sim_add_link(s, "ok", 1e9, 1e9, &l, &e), &e);
  dnn_sim_task t = dnn_sim_default_task();
  t.name = "oops";
  t.stream = 3;
  assert_int_equal(dnn_sim_add_task(s, &t, NULL, &e), DNN_EINVAL);
  assert_contains(e.msg, "task 'oops': no stream 3");
  t.stream = 0;
  t.duration_s = -1;
  assert_int_equal(dnn_sim_add_task(s, &t, NULL, &e), DNN_EINVAL);
  assert_contains(e.msg, "must be finite");
  t.duration_s = NAN;
  assert_int_equal(dnn_sim_add_task(s, &t, NULL, &e), DNN_EINVAL);
  t.duration_s = 1;
  t.data_bytes = -3;
  assert_int_equal(dnn_sim_add_task(s, &t, NULL, &e), DNN_EINVAL);
  assert_contains(e.msg, "(data -3)");
  t.data_bytes = 0;
  t.duration_s = 1;
  t.bytes = 10;
  assert_int_equal(dnn_sim_add_task(s, &t, NULL, &e), DNN_EINVAL);
  assert_contains(e.msg, "no link to move them on");
  t.link = 9;
  assert_int_equal(dnn_sim_add_task(s, &t, NULL, &e), DNN_EINVAL);
  assert_contains(e.msg, "no link 9");
  t.link = l;
  t.weight = 0.5;
  assert_int_equal(dnn_sim_add_task(s, &t, NULL, &e), DNN_EINVAL);
  assert_contains(e.msg, "weight");
  t.weight = 1;
  t.cat = (dnn_sim_cat)99;
  assert_int_equal(dnn_sim_add_task(s, &t, NULL, &e), DNN_EINVAL);
  assert_contains(e.msg, "unknown category");
  t.cat = DNN_SIM_SEND;
  size_t k;
  assert_ok(dnn_sim_add_task(s, &t, &k, &e), &e);
  assert_int_equal(dnn_sim_add_dep(s, k, k, &e), DNN_EINVAL);
  assert_contains(e.msg, "must differ");
  assert_int_equal(dnn_sim_add_dep(s, k, 7, &e), DNN_EINVAL);
  /* Tracing before a run. */
  char *buf = NULL;
  size_t len = 0;
  FILE *fp = open_memstream(&buf, &len);
  assert_int_equal(dnn_sim_trace_write(s, fp, NULL, &e), DNN_EINVAL);
  assert_contains(e.msg, "run it first");
  fclose(fp);
  free(buf);
  assert_string_equal(dnn_sim_cat_name((dnn_sim_cat)77), "?");
  assert_false(dnn_sim_cat_is_comm((dnn_sim_cat)77));
  assert_true(dnn_sim_cat_is_comm(DNN_SIM_COLLECTIVE));
  assert_false(dnn_sim_cat_is_comm(DNN_SIM_RECOMPUTE));
  dnn_sim_free(s);
  dnn_sim_free(NULL);
}

/* Builds a small graph; every allocation may fail. */
static dnn_status build_small(dnn_sim **out, dnn_error *e) {
  dnn_sim *s = NULL;
  dnn_status st = dnn_sim_alloc(&s, e);
  size_t l, a, b, c;
  dnn_sim_task t = dnn_sim_default_task();
  if (st == DNN_OK)
    st = dnn_sim_add_device(s, "d", 0, NULL, e);
  if (st == DNN_OK)
    st = dnn_sim_add_stream(s, 0, "compute", NULL, e);
  if (st == DNN_OK)
    st = dnn_sim_add_stream(s, 0, "send", NULL, e);
  if (st == DNN_OK)
    st = dnn_sim_add_link(s, "l", 1e9, 1e9, &l, e);
  if (st == DNN_OK)
    st = dnn_sim_reserve(s, 3, 2, e);
  t.duration_s = 0.5;
  if (st == DNN_OK)
    st = dnn_sim_add_task(s, &t, &a, e);
  t.stream = 1;
  t.cat = DNN_SIM_SEND;
  t.duration_s = 2e-6;
  t.bytes = 1e6;
  t.link = l;
  if (st == DNN_OK)
    st = dnn_sim_add_task(s, &t, &b, e);
  t = dnn_sim_default_task();
  t.duration_s = 0.25;
  if (st == DNN_OK)
    st = dnn_sim_add_task(s, &t, &c, e);
  if (st == DNN_OK)
    st = dnn_sim_add_dep(s, a, b, e);
  if (st == DNN_OK)
    st = dnn_sim_add_dep(s, b, c, e);
  if (st == DNN_OK)
    st = dnn_sim_init(s, e);
  if (st) {
    dnn_sim_free(s);
    s = NULL;
  }
  *out = s;
  return st;
}

static void test_allocation_failures(void **state) {
  (void)state;
  long fail_at = 0;
  for (;; fail_at++) {
    test_alloc_state st;
    dnn_error e;
    dnn_sim *s;
    test_alloc_install(&st, fail_at);
    dnn_status rc = build_small(&s, &e);
    test_alloc_restore();
    if (rc == DNN_OK) {
      while (dnn_sim_step(s, NULL)) {
      }
      assert_close(dnn_sim_makespan(s), 0.5 + 2e-6 + 1e-3 + 0.25, 1e-12);
      dnn_sim_free(s);
      break;
    }
    assert_int_equal(rc, DNN_ENOMEM);
    assert_contains(e.msg, "out of memory");
    assert_null(s);
  }
  /* alloc, the grow calls and the four buffers of the first init. */
  assert_true(fail_at >= 8);
}

static char *trace_text(dnn_sim *s, size_t max_devices) {
  char *buf = NULL;
  size_t len = 0;
  FILE *fp = open_memstream(&buf, &len);
  dnn_sim_trace_params p = {max_devices};
  dnn_error e;
  assert_ok(dnn_sim_trace_write(s, fp, &p, &e), &e);
  fclose(fp);
  return buf;
}

static void test_trace_format_and_determinism(void **state) {
  (void)state;
  dnn_sim *s = make(2, 2);
  dnn_error e;
  size_t l;
  assert_ok(dnn_sim_add_link(s, "port", 1e9, 1e30, &l, &e), &e);
  dnn_sim_task t = dnn_sim_default_task();
  t.duration_s = 1.25e-3;
  t.name = "conv\"1";
  t.layer = "conv\"1";
  t.microbatch = 3;
  size_t a;
  assert_ok(dnn_sim_add_task(s, &t, &a, &e), &e);
  size_t x = xfer(s, 1, l, 2e-6, 4096, 1);
  size_t b = task(s, 2, DNN_SIM_BWD, 5e-4, "fc");
  t = dnn_sim_default_task();
  t.stream = 3;
  t.cat = DNN_SIM_COLLECTIVE;
  t.duration_s = 7e-5;
  t.name = "allreduce";
  t.data_bytes = 1234;
  size_t c;
  assert_ok(dnn_sim_add_task(s, &t, &c, &e), &e);
  dep(s, a, x);
  dep(s, x, b);
  dep(s, b, c);
  run(s);
  char *one = trace_text(s, 0);
  assert_contains(one, "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[");
  assert_contains(one, "\"name\":\"process_name\",\"args\":{\"name\":"
                       "\"dev0\"}");
  assert_contains(one, "\"pid\":11,\"tid\":0,\"name\":\"thread_name\"");
  assert_contains(one,
                  "{\"name\":\"conv\\\"1 fwd\",\"cat\":\"fwd\",\"ph\":\"X\","
                  "\"pid\":10,\"tid\":0,\"ts\":0.000,\"dur\":1250.000,"
                  "\"args\":{\"layer\":\"conv\\\"1\",\"pass\":\"fwd\","
                  "\"microbatch\":3,\"bytes\":0}}");
  assert_contains(one, "{\"name\":\"send\",\"cat\":\"send\",\"ph\":\"X\","
                       "\"pid\":10,\"tid\":1,\"ts\":1250.000,\"dur\":6.096,"
                       "\"args\":{\"pass\":\"send\",\"bytes\":4096}}");
  assert_contains(one, "\"name\":\"fc bwd\"");
  assert_contains(one, "\"name\":\"allreduce\",\"cat\":\"collective\","
                       "\"ph\":\"X\",\"pid\":11,\"tid\":1,\"ts\":"
                       "1756.096,\"dur\":70.000,\"args\":{\"pass\":"
                       "\"collective\",\"bytes\":1234}}");
  assert_contains(one, "\n]}\n");
  /* A second run of the same graph writes the same bytes. */
  run(s);
  char *two = trace_text(s, 0);
  assert_string_equal(one, two);
  /* A device limit drops the other devices' events. */
  char *lim = trace_text(s, 1);
  assert_null(strstr(lim, "\"pid\":11"));
  assert_contains(lim, "\"pid\":10");
  free(one);
  free(two);
  free(lim);
  dnn_sim_free(s);
}

static void test_large_graph_against_longest_paths(void **state) {
  (void)state;
  /* 64 streams of 100 tasks with cross dependencies: large enough for the
   * engine to renumber tasks by a first run. Without links the times are
   * longest paths, computed here in insertion order (a topological order
   * by construction). */
  enum { S = 64, N = 100 };
  static double dur[S * N], end_ref[S * N];
  static size_t ids[S * N];
  dnn_sim *s = make(S, 1);
  unsigned x = 3719;
  for (size_t i = 0; i < S; i++)
    for (size_t k = 0; k < N; k++) {
      x = x * 1103515245u + 12345u;
      dur[i * N + k] = 1e-3 * (1 + (double)((x >> 16) % 1000) / 997.0);
      ids[i * N + k] = task(s, i, DNN_SIM_FWD, dur[i * N + k], "t");
    }
  for (size_t i = 1; i < S; i++)
    for (size_t k = 3; k < N; k += 7)
      dep(s, ids[(i - 1) * N + k - 3], ids[i * N + k]);
  run(s);
  for (size_t i = 0; i < S; i++)
    for (size_t k = 0; k < N; k++) {
      double st = k ? end_ref[i * N + k - 1] : 0;
      if (i > 0 && k >= 3 && (k - 3) % 7 == 0)
        st = fmax(st, end_ref[(i - 1) * N + k - 3]);
      end_ref[i * N + k] = st + dur[i * N + k];
      assert_close(end_of(s, ids[i * N + k]), end_ref[i * N + k], 1e-12);
      assert_close(start_of(s, ids[i * N + k]), st, 1e-12);
    }
  assert_int_equal(dnn_sim_events(s), S * N);
  /* Re-timed and re-run: the same answers (the layout is internal). */
  dnn_sim_task_retime(s, ids[5], 2 * dur[5], 0);
  run(s);
  assert_close(end_of(s, ids[5]), end_ref[5] + dur[5], 1e-12);
  dnn_sim_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stream_order_and_deps),
      cmocka_unit_test(test_equal_times_keep_insertion_order),
      cmocka_unit_test(test_link_sharing_halves_bandwidth),
      cmocka_unit_test(test_link_sharing_staggered),
      cmocka_unit_test(test_link_cap_and_weight),
      cmocka_unit_test(test_breakdown_attribution),
      cmocka_unit_test(test_retime_without_allocation),
      cmocka_unit_test(test_cycle_detected),
      cmocka_unit_test(test_error_paths),
      cmocka_unit_test(test_allocation_failures),
      cmocka_unit_test(test_trace_format_and_determinism),
      cmocka_unit_test(test_large_graph_against_longest_paths),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
