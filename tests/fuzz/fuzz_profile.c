/*
 * Fuzz target: hardware profile INI text (docs/profiles.md), the whole
 * path to kernel times.
 *
 *   dnn_hw_load_string -> dnn_hw_params_check -> dnn_hw_save ->
 *   dnn_hw_load of the saved file (same parameters bit for bit, same
 *   kernel rows, the same kernel CSV when saved again) -> per-layer times
 *   of scenarios/networks/tiny-cnn.ini in every dtype the profile has
 *
 * A `[kernels] file = k.csv` resolves to a valid table in the target's
 * private directory, so seeds with a kernel table load too.
 */
#include "fuzz.h"

#include "dnnsim/hw.h"
#include "dnnsim/scenario.h"

static const char KERNELS[] =
    "signature,pass,algo,dtype,batch,time_s,workspace_bytes\n"
    "fc:32:o10:b1,fwd,-,fp32,8,3.719e-6,0\n"
    "fc:32:o10:b1,fwd,-,fp32,64,2.1e-5,0\n";

static const dnn_net *network(void) {
  static dnn_net *net;
  if (net == NULL) {
    char p[PATH_MAX];
    fuzz_write("k.csv", KERNELS, sizeof KERNELS - 1, p, sizeof p);
    dnn_error e;
    if (dnn_scn_load_net(DNNSIM_SOURCE_DIR "/scenarios/networks/tiny-cnn.ini",
                         0, &net, &e) != DNN_OK) {
      fprintf(stderr, "%s\n", e.msg);
      abort();
    }
  }
  return net;
}

static void check_same_params(const dnn_hw_params *a, const dnn_hw_params *b) {
  FUZZ_CHECK(strcmp(a->name, b->name) == 0 && strcmp(a->kind, b->kind) == 0 &&
                 strcmp(a->source, b->source) == 0 &&
                 strcmp(a->calibrated, b->calibrated) == 0,
             "text changed: '%s' '%s'", a->name, b->name);
#define SAME(f) FUZZ_CHECK(a->f == b->f, #f ": %.17g != %.17g", a->f, b->f)
  for (size_t t = 0; t < DNN_DTYPE_COUNT; t++)
    SAME(peak_flops[t]);
  SAME(mem_bandwidth_Bps);
  SAME(mem_capacity_bytes);
  SAME(mem_reserved_bytes);
  SAME(launch_overhead_s);
  for (size_t c = 0; c < DNN_OPCLASS_COUNT; c++) {
    SAME(eff_compute[c]);
    SAME(eff_memory[c]);
    SAME(half_flops[c]);
  }
  for (size_t a_ = 0; a_ < DNN_CONV_ALGO_COUNT; a_++)
    SAME(eff_conv_algo[a_]);
#undef SAME
}

/* Saves `hw`, loads the file back and compares. */
static void check_round_trip(const dnn_hw *hw) {
  char p1[PATH_MAX + 64], p2[PATH_MAX + 64];
  snprintf(p1, sizeof p1, "%s", fuzz_path("saved.ini"));
  snprintf(p2, sizeof p2, "%s", fuzz_path("again.ini"));
  dnn_error e;
  dnn_error_clear(&e);
  dnn_status st = dnn_hw_save(hw, p1, &e);
  FUZZ_CHECK(st == DNN_OK, "a loaded profile does not save: %s", e.msg);
  dnn_hw *back = NULL;
  st = dnn_hw_load(p1, &back, &e);
  FUZZ_CHECK(st == DNN_OK, "a saved profile does not load: %s", e.msg);
  check_same_params(dnn_hw_get(hw), dnn_hw_get(back));
  FUZZ_CHECK(dnn_hw_kernel_count(hw) == dnn_hw_kernel_count(back),
             "kernel rows %zu != %zu", dnn_hw_kernel_count(hw),
             dnn_hw_kernel_count(back));
  if (dnn_hw_kernel_count(hw) > 0) {
    st = dnn_hw_save(back, p2, &e);
    FUZZ_CHECK(st == DNN_OK, "saving again: %s", e.msg);
    char *a = fuzz_slurp(fuzz_path("saved.kernels.csv"));
    char *b = fuzz_slurp(fuzz_path("again.kernels.csv"));
    FUZZ_CHECK(a && b && strcmp(a, b) == 0, "kernel CSV changed:\n%s\n---\n%s",
               a ? a : "(none)", b ? b : "(none)");
    free(a);
    free(b);
  }
  dnn_hw_free(back);
}

/* Every layer time is finite in each dtype the profile has a peak for. */
static void check_times(const dnn_hw *hw) {
  const dnn_net *net = network();
  const dnn_hw_params *hp = dnn_hw_get(hw);
  static const size_t batches[] = {1, 8, 13, 64, 1000000000000};
  for (int t = 0; t < DNN_DTYPE_COUNT; t++) {
    if (!(hp->peak_flops[t] > 0))
      continue;
    for (size_t i = 0; i < dnn_net_layer_count(net); i++)
      for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++)
        for (int p = 0; p < DNN_PASS_COUNT; p++) {
          double ws = 0;
          double s = dnn_hw_layer_time(hw, net, i, (dnn_pass)p, batches[b],
                                       (dnn_dtype)t, 0, NULL, &ws);
          FUZZ_CHECK_QTY(s, "layer time");
          FUZZ_CHECK(ws == 0, "workspace %g over a limit of 0", ws);
        }
    double k =
        dnn_hw_kernel_time(hw, DNN_OP_OPTIMIZER, (dnn_dtype)t, 3.7e9, 1.9e10);
    FUZZ_CHECK_QTY(k, "kernel time");
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > FUZZ_MAX_INPUT)
    return 0;
  network(); /* writes k.csv */
  char *text = fuzz_text(data, size);
  dnn_hw *hw = NULL;
  dnn_error e;
  dnn_error_clear(&e);
  dnn_status st = dnn_hw_load_string(text, "fuzz.ini", fuzz_dir(), &hw, &e);
  fuzz_check_error(st, &e);
  FUZZ_CHECK((st == DNN_OK) == (hw != NULL), "profile with status %s",
             dnn_status_name(st));
  if (st == DNN_OK) {
    FUZZ_CHECK(dnn_hw_params_check(dnn_hw_get(hw), &e) == DNN_OK,
               "a loaded profile fails its check: %s", e.msg);
    check_round_trip(hw);
    check_times(hw);
  }
  dnn_hw_free(hw);
  free(text);
  return 0;
}
