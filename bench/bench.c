/*
 * dnnsim_bench: speed of the prediction engines, measured in one process.
 *
 *   dnnsim_bench predict SCENARIO [SECONDS]
 *       analytic evaluations of the scenario per second (network, profile
 *       and cluster are built once, as sweeps and search do)
 *
 * Figures are medians of 5 timed rounds; quote ratios from one run only,
 * these machines are shared and noisy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dnnsim.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int die(const dnn_error *e) {
  fprintf(stderr, "dnnsim_bench: %s\n", e->msg);
  return 1;
}

static int bench_predict(const char *path, double seconds) {
  dnn_error e;
  dnn_scenario scn;
  dnn_scn_init(&scn);
  if (dnn_scn_load(path, &scn, &e) || dnn_scn_validate(&scn, &e))
    return die(&e);
  dnn_net *net = NULL;
  dnn_hw *hw = NULL;
  dnn_cluster cl;
  if (dnn_scn_build_net(&scn, 0, &net, &e) || dnn_scn_load_hw(&scn, &hw, &e) ||
      dnn_scn_cluster(&scn, &cl, &e))
    return die(&e);
  dnn_strat_input in = {&scn, net, hw, cl};
  dnn_prediction p;
  double rates[5];
  double sink = 0;
  for (int r = 0; r < 5; r++) {
    size_t n = 0;
    double t0 = now_s(), t;
    do {
      for (int k = 0; k < 100; k++) {
        if (dnn_strat_predict(&in, &p, &e))
          return die(&e);
        sink += p.iteration_s;
      }
      n += 100;
      t = now_s() - t0;
    } while (t < seconds / 5);
    rates[r] = (double)n / t;
  }
  qsort(rates, 5, sizeof rates[0], cmp_double);
  printf("predict %s: %zu layers, %.0f evaluations/s (%.2f us each; "
         "checksum %.6g)\n",
         path, dnn_net_layer_count(net), rates[2], 1e6 / rates[2], sink / 1e9);
  dnn_net_free(net);
  dnn_hw_free(hw);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "predict") == 0)
    return bench_predict(argv[2], argc > 3 ? atof(argv[3]) : 2.0);
  fprintf(stderr, "usage: dnnsim_bench predict SCENARIO [SECONDS]\n");
  return 2;
}
