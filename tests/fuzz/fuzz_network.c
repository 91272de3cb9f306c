/*
 * Fuzz target: network INI text (docs/networks.md), the whole path to
 * per-layer costs and times.
 *
 *   dnn_scn_load_net_string -> shapes, costs of every pass and convolution
 *   algorithm, activation memory, totals (fuzz_check_net)
 *   -> dnn_hw_layer_time on a built-in profile, fwd and bwd, small and huge
 *      batches
 *
 * The first byte, when it is a digit, picks an input-size override (0-9 ->
 * 0, 8, 32, 224, 16384, ...) so that the `image` argument is fuzzed too;
 * otherwise the text is used as it is with no override.
 */
#include "fuzz.h"

#include "dnnsim/hw.h"
#include "dnnsim/scenario.h"

static const dnn_hw *profile(void) {
  static dnn_hw *hw;
  if (hw == NULL) {
    dnn_error e;
    if (dnn_hw_load("v100-sxm2", &hw, &e) != DNN_OK) {
      fprintf(stderr, "%s\n", e.msg);
      abort();
    }
  }
  return hw;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const size_t images[10] = {0,   8,     32,        224,       1,
                                    512, 16384, 1u << 20u, 123456789, 3};
  if (size > FUZZ_MAX_INPUT)
    return 0;
  size_t image = 0;
  if (size > 0 && data[0] >= '0' && data[0] <= '9') {
    image = images[data[0] - '0'];
    data++;
    size--;
  }
  char *text = fuzz_text(data, size);
  dnn_net *net = NULL;
  dnn_error e;
  dnn_error_clear(&e);
  dnn_status st = dnn_scn_load_net_string(text, "fuzz.ini", image, &net, &e);
  fuzz_check_error(st, &e);
  FUZZ_CHECK((st == DNN_OK) == (net != NULL), "net %p with status %s",
             (void *)net, dnn_status_name(st));
  if (st == DNN_OK) {
    fuzz_check_net(net);
    const dnn_hw *hw = profile();
    static const size_t batches[] = {1, 1000000000000};
    for (size_t i = 0; i < dnn_net_layer_count(net); i++) {
      for (size_t b = 0; b < 2; b++) {
        for (int p = 0; p < DNN_PASS_COUNT; p++) {
          dnn_conv_algo algo;
          double ws = -1;
          double t =
              dnn_hw_layer_time(hw, net, i, (dnn_pass)p, batches[b],
                                DNN_DTYPE_FP16, 64.0 * 1024 * 1024, &algo, &ws);
          FUZZ_CHECK_QTY(t, "layer time");
          FUZZ_CHECK_QTY(ws, "layer workspace");
          FUZZ_CHECK(ws <= 64.0 * 1024 * 1024, "workspace %g over the limit",
                     ws);
        }
      }
    }
  }
  dnn_net_free(net);
  free(text);
  return 0;
}
