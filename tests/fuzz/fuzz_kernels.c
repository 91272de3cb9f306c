/*
 * Fuzz target: the measured-kernel CSV of a hardware profile (docs/
 * profiles.md, "[kernels] file"), the whole path to layer times.
 *
 *   the input is written to fk.csv -> a fixed profile naming it loads it
 *   -> dnn_hw_save / dnn_hw_load round trip (same rows, the same CSV
 *   when saved again) -> layer times of scenarios/networks/tiny-cnn.ini,
 *   whose signatures the seeds use, so lookups and interpolation run
 *
 * The input goes through a file (not a string) so that NUL bytes, CRLF
 * and missing final newlines reach the reader as a user's file would.
 */
#include "fuzz.h"

#include "dnnsim/hw.h"
#include "dnnsim/scenario.h"

static const char PROFILE[] = "[device]\nname = fuzz\nkind = gpu\n"
                              "[compute]\npeak_fp32_TFLOPS = 15.7\n"
                              "peak_tf32_TFLOPS = 0\npeak_fp16_TFLOPS = 125\n"
                              "peak_bf16_TFLOPS = 0\nlaunch_overhead_us = 5\n"
                              "[memory]\nbandwidth_GBps = 900\n"
                              "capacity_GB = 32\n"
                              "[kernels]\nfile = fk.csv\n";

static const dnn_net *network(void) {
  static dnn_net *net;
  if (net == NULL) {
    dnn_error e;
    if (dnn_scn_load_net(DNNSIM_SOURCE_DIR "/scenarios/networks/tiny-cnn.ini",
                         0, &net, &e) != DNN_OK) {
      fprintf(stderr, "%s\n", e.msg);
      abort();
    }
  }
  return net;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > FUZZ_MAX_INPUT)
    return 0;
  const dnn_net *net = network();
  char path[PATH_MAX + 64];
  fuzz_write("fk.csv", data, size, path, sizeof path);
  dnn_hw *hw = NULL;
  dnn_error e;
  dnn_error_clear(&e);
  dnn_status st = dnn_hw_load_string(PROFILE, "fuzz.ini", fuzz_dir(), &hw, &e);
  fuzz_check_error(st, &e);
  if (st != DNN_OK)
    return 0;
  char p1[PATH_MAX + 64], p2[PATH_MAX + 64];
  snprintf(p1, sizeof p1, "%s", fuzz_path("saved.ini"));
  snprintf(p2, sizeof p2, "%s", fuzz_path("again.ini"));
  st = dnn_hw_save(hw, p1, &e);
  FUZZ_CHECK(st == DNN_OK, "a loaded table does not save: %s", e.msg);
  dnn_hw *back = NULL;
  st = dnn_hw_load(p1, &back, &e);
  FUZZ_CHECK(st == DNN_OK, "a saved table does not load: %s", e.msg);
  FUZZ_CHECK(dnn_hw_kernel_count(hw) == dnn_hw_kernel_count(back),
             "rows %zu != %zu", dnn_hw_kernel_count(hw),
             dnn_hw_kernel_count(back));
  st = dnn_hw_save(back, p2, &e);
  FUZZ_CHECK(st == DNN_OK, "saving again: %s", e.msg);
  if (dnn_hw_kernel_count(hw) > 0) {
    char *a = fuzz_slurp(fuzz_path("saved.kernels.csv"));
    char *b = fuzz_slurp(fuzz_path("again.kernels.csv"));
    FUZZ_CHECK(a && b && strcmp(a, b) == 0, "kernel CSV changed:\n%s\n---\n%s",
               a ? a : "(none)", b ? b : "(none)");
    free(a);
    free(b);
  }
  static const size_t batches[] = {1, 3, 8, 32, 100, 1000000000000};
  for (size_t i = 0; i < dnn_net_layer_count(net); i++)
    for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++)
      for (int p = 0; p < DNN_PASS_COUNT; p++)
        for (int t = 0; t < DNN_DTYPE_COUNT; t += 2) { /* fp32, fp16 */
          double ws = 0;
          double s1 = dnn_hw_layer_time(hw, net, i, (dnn_pass)p, batches[b],
                                        (dnn_dtype)t, 1e12, NULL, &ws);
          double s2 = dnn_hw_layer_time(back, net, i, (dnn_pass)p, batches[b],
                                        (dnn_dtype)t, 1e12, NULL, NULL);
          FUZZ_CHECK_QTY(s1, "layer time");
          FUZZ_CHECK_QTY(ws, "workspace");
          FUZZ_CHECK(s1 == s2, "time changed by a save: %.17g != %.17g", s1,
                     s2);
        }
  dnn_hw_free(back);
  dnn_hw_free(hw);
  return 0;
}
