/*
 * Allocation-failure injection (STYLE.md §7) where the module tests do not
 * already do it: the scenario loader and writer, the profile loader from
 * text, saving a profile with a kernel table, adding kernel rows, network
 * files through a scenario, atomic output files and the error paths that
 * build name lists. Every allocation in turn fails; each call must then
 * return DNN_ENOMEM (or the error it reports anyway) with nothing leaked
 * (ASan and valgrind check) and its outputs NULL, and succeed once enough
 * allocations do.
 *
 * And the hot paths that must not allocate at all: the analytic
 * prediction, collective costs and layer times run with every allocation
 * failing.
 */
#include "test_util.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#include "dnnsim/comm.h"
#include "dnnsim/hw.h"
#include "dnnsim/scenario.h"
#include "dnnsim/strat.h"

/* Most allocations any call below makes, with margin. */
#define MAX_ALLOCS 400

static char tmpdir[] = "/tmp/dnnsim-alloc-XXXXXX";

static const char *tmp_path(const char *name) {
  static char p[256];
  snprintf(p, sizeof p, "%s/%s", tmpdir, name);
  return p;
}

static void write_file(const char *name, const char *text) {
  FILE *fp = fopen(tmp_path(name), "w");
  assert_non_null(fp);
  fputs(text, fp);
  fclose(fp);
}

static int setup(void **state) {
  (void)state;
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  const char *names[] = {"s.ini",   "n.ini",           "p.ini",     "k.csv",
                         "out.ini", "out.kernels.csv", "atomic.txt"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    remove(tmp_path(names[i]));
  return rmdir(tmpdir);
}

static const char SCENARIO[] = "[model]\nfile = n.ini\nbatch = 24\n"
                               "image = 16\ndtype = fp16\n"
                               "[hardware]\nprofile = p.ini\n"
                               "[cluster]\ndevices_per_node = 3\n"
                               "intra_link = nvlink2\n"
                               "[training]\nsizes = 16:0.25, 24:0.75\n"
                               "compression = topk:0.1\n";

static const char NETWORK[] = "[layer.in]\ntype = input\nshape = 3,16,16\n"
                              "[layer.c]\ntype = conv2d\nout_channels = 8\n"
                              "kernel = 3\npadding = 1\n"
                              "[layer.r]\ntype = relu\n"
                              "[layer.f]\ntype = fc\nout_features = 5\n"
                              "[layer.l]\ntype = softmax_xent\n";

static const char PROFILE[] = "[device]\nname = inject\nkind = gpu\n"
                              "source = test\n"
                              "[compute]\npeak_fp32_TFLOPS = 15.7\n"
                              "peak_tf32_TFLOPS = 0\n"
                              "peak_fp16_TFLOPS = 125\n"
                              "peak_bf16_TFLOPS = 0\n"
                              "launch_overhead_us = 3.719\n"
                              "[memory]\nbandwidth_GBps = 900\n"
                              "capacity_GB = 32\n"
                              "[kernels]\nfile = k.csv\n";

static const char KERNELS[] =
    "signature,pass,algo,dtype,batch,time_s,workspace_bytes\n"
    "fc:8x16x16:o5:b1,fwd,-,fp16,8,3.719e-6,0\n"
    "fc:8x16x16:o5:b1,fwd,-,fp16,16,6.1e-6,0\n"
    "relu:8x16x16,bwd_data,-,fp16,8,1.3e-6,0\n";

/* Runs `body` with allocation k failing for k = 0, 1, ... until it
 * succeeds; every failure must be `fail_code` (DNN_ENOMEM unless the call
 * reports an input error whatever happens). Returns the count. */
#define INJECT(fail_code, body, on_ok, on_fail)                                \
  do {                                                                         \
    long k_;                                                                   \
    for (k_ = 0; k_ < MAX_ALLOCS; k_++) {                                      \
      test_alloc_state s_;                                                     \
      test_alloc_install(&s_, k_);                                             \
      dnn_status st_ = (body);                                                 \
      test_alloc_restore();                                                    \
      if (st_ == DNN_OK) {                                                     \
        on_ok;                                                                 \
        break;                                                                 \
      }                                                                        \
      if (st_ != (fail_code) && st_ != DNN_ENOMEM)                             \
        fail_msg("allocation %ld failing gave %s: %s", k_,                     \
                 dnn_status_name(st_), e.msg);                                 \
      on_fail;                                                                 \
    }                                                                          \
    assert_true(k_ < MAX_ALLOCS);                                              \
  } while (0)

static void test_scenario_load_and_write(void **state) {
  (void)state;
  write_file("s.ini", SCENARIO);
  dnn_scenario scn;
  dnn_error e;
  INJECT(DNN_ENOMEM,
         (dnn_scn_init(&scn), dnn_scn_load(tmp_path("s.ini"), &scn, &e)),
         assert_int_equal(scn.training.n_sizes, 2), (void)0);
  /* The writer allocates the default scenario it compares against. */
  for (long k = 0;; k++) {
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    assert_non_null(fp);
    test_alloc_state s;
    test_alloc_install(&s, k);
    dnn_status st = dnn_scn_write(&scn, fp, false, &e);
    test_alloc_restore();
    fclose(fp);
    if (st == DNN_OK) {
      assert_contains(buf, "sizes = 16:0.25, 24:0.75");
      free(buf);
      break;
    }
    assert_int_equal(st, DNN_ENOMEM);
    assert_int_equal(len, 0); /* nothing written before the failure */
    free(buf);
    assert_true(k < MAX_ALLOCS);
  }
}

static void test_scenario_error_paths(void **state) {
  (void)state;
  /* Errors that build a list of choices or names allocate for it; a
   * failing allocation must still give the error (maybe without the
   * list), not ENOMEM and not a leak. */
  dnn_scenario scn;
  dnn_error e;
  const char *bad[] = {"[training]\noptimizer = adamw\n",
                       "[hardware]\nprofile = v100\n",
                       "[cluster]\nintra_link = nvlink9\n"};
  for (size_t i = 0; i < 3; i++) {
    for (long k = 0; k < 8; k++) {
      test_alloc_state s;
      dnn_scn_init(&scn);
      dnn_status st = dnn_scn_load_string(bad[i], "b.ini", NULL, &scn, &e);
      if (st == DNN_OK) {
        dnn_hw *hw = NULL;
        dnn_cluster c;
        test_alloc_install(&s, k);
        st = i == 1 ? dnn_scn_load_hw(&scn, &hw, &e)
                    : dnn_scn_cluster(&scn, &c, &e);
        test_alloc_restore();
        assert_null(hw);
        assert_int_equal(st, DNN_ENOTFOUND);
      } else {
        test_alloc_install(&s, k);
        st = dnn_scn_load_string(bad[i], "b.ini", NULL, &scn, &e);
        test_alloc_restore();
        assert_int_equal(st, DNN_EINVAL);
      }
      assert_contains(e.msg, "b.ini");
    }
  }
}

static void test_network_file_through_scenario(void **state) {
  (void)state;
  write_file("s.ini", SCENARIO);
  write_file("n.ini", NETWORK);
  dnn_scenario scn;
  dnn_error e;
  dnn_scn_init(&scn);
  assert_ok(dnn_scn_load(tmp_path("s.ini"), &scn, &e), &e);
  dnn_net *net = NULL;
  INJECT(DNN_ENOMEM, dnn_scn_build_net(&scn, 0, &net, &e),
         assert_int_equal(dnn_net_layer_count(net), 5), assert_null(net));
  dnn_net_free(net);
}

static void test_profile_text_and_save(void **state) {
  (void)state;
  write_file("k.csv", KERNELS);
  dnn_hw *hw = NULL;
  dnn_error e;
  INJECT(DNN_ENOMEM, dnn_hw_load_string(PROFILE, "p.ini", tmpdir, &hw, &e),
         assert_int_equal(dnn_hw_kernel_count(hw), 3), assert_null(hw));
  /* Saving writes the kernel CSV and the INI through atomic files. */
  INJECT(DNN_ENOMEM, dnn_hw_save(hw, tmp_path("out.ini"), &e), (void)0,
         (void)0);
  dnn_hw *back = NULL;
  assert_ok(dnn_hw_load(tmp_path("out.ini"), &back, &e), &e);
  assert_int_equal(dnn_hw_kernel_count(back), 3);
  assert_string_equal(dnn_hw_get(back)->name, "inject");
  dnn_hw_free(back);
  /* Adding rows grows the table and copies signatures. */
  dnn_hw_kernel_row r = {"conv2d:3x16x16:o8:k3x3",
                         DNN_PASS_FWD,
                         DNN_CONV_WINOGRAD,
                         DNN_DTYPE_FP16,
                         32,
                         2.9e-5,
                         4096};
  INJECT(DNN_ENOMEM, dnn_hw_kernel_add(hw, &r, &e),
         assert_int_equal(dnn_hw_kernel_count(hw), 4),
         assert_int_equal(dnn_hw_kernel_count(hw), 3));
  dnn_hw_free(hw);
  /* A built-in profile and an unknown one (its message lists names). */
  INJECT(DNN_ENOMEM, dnn_hw_load("h100-sxm5", &hw, &e), dnn_hw_free(hw),
         assert_null(hw));
  for (long k = 0; k < 4; k++) {
    test_alloc_state s;
    test_alloc_install(&s, k);
    dnn_status st = dnn_hw_load("h100-sxm", &hw, &e);
    test_alloc_restore();
    assert_int_equal(st, DNN_ENOTFOUND);
    assert_contains(e.msg, "did you mean 'h100-sxm5'");
  }
}

static void test_atomic_files(void **state) {
  (void)state;
  dnn_error e;
  INJECT(DNN_ENOMEM,
         dnn_file_write_atomic(tmp_path("atomic.txt"), "3.719\n", 6, &e),
         (void)0, (void)0);
  char *text = NULL;
  size_t len = 0;
  INJECT(DNN_ENOMEM, dnn_file_read_all(tmp_path("atomic.txt"), &text, &len, &e),
         assert_int_equal(len, 6), assert_null(text));
  assert_string_equal(text, "3.719\n");
  dnn_free(text);
}

/* The analytic path and the cost functions allocate nothing: with every
 * allocation failing they still succeed, and the allocator is never
 * called. */
static void test_hot_paths_do_not_allocate(void **state) {
  (void)state;
  dnn_scenario scn;
  dnn_error e;
  dnn_scn_init(&scn);
  assert_ok(dnn_scn_load_string("[model]\nname = resnet50\nbatch = 256\n"
                                "image = 64\n[hardware]\nprofile = v100-sxm2\n"
                                "[cluster]\nnodes = 4\ndevices_per_node = 8\n"
                                "intra_link = nvlink2\ninter_link = ib-edr\n"
                                "[simulation]\nengine = analytic\n",
                                "h.ini", NULL, &scn, &e),
            &e);
  dnn_net *net;
  dnn_hw *hw;
  dnn_cluster cl;
  assert_ok(dnn_scn_build_net(&scn, 0, &net, &e), &e);
  assert_ok(dnn_scn_load_hw(&scn, &hw, &e), &e);
  assert_ok(dnn_scn_cluster(&scn, &cl, &e), &e);
  dnn_strat_input in = {&scn, net, hw, cl};
  test_alloc_state s;
  for (int overlap = 0; overlap < 2; overlap++) {
    scn.parallelism.overlap = overlap;
    test_alloc_install(&s, 0);
    dnn_prediction p;
    dnn_status st = dnn_strat_predict(&in, &p, &e);
    test_alloc_restore();
    assert_ok(st, &e);
    assert_int_equal(s.count, 0);
  }
  test_alloc_install(&s, 0);
  dnn_comm_topo t = dnn_comm_topo_from_cluster(&cl, 32, 1, 1e-12);
  for (int op = 0; op < DNN_COMM_OP_COUNT; op++) {
    dnn_comm_cost c;
    dnn_status st =
        dnn_comm_time((dnn_comm_op)op, DNN_COMM_ALGO_AUTO, 3.719e7, &t, &c, &e);
    assert_int_equal(st, DNN_OK);
  }
  double sum = 0;
  for (size_t i = 0; i < dnn_net_layer_count(net); i++)
    sum += dnn_hw_layer_time(hw, net, i, DNN_PASS_BWD_DATA, 37, DNN_DTYPE_FP16,
                             1e8, NULL, NULL);
  test_alloc_restore();
  assert_int_equal(s.count, 0);
  assert_true(sum > 0 && isfinite(sum));
  dnn_net_free(net);
  dnn_hw_free(hw);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scenario_load_and_write),
      cmocka_unit_test(test_scenario_error_paths),
      cmocka_unit_test(test_network_file_through_scenario),
      cmocka_unit_test(test_profile_text_and_save),
      cmocka_unit_test(test_atomic_files),
      cmocka_unit_test(test_hot_paths_do_not_allocate),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
