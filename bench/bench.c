/*
 * dnnsim_bench: speed of the prediction engines, measured in one process.
 *
 *   dnnsim_bench predict SCENARIO [SECONDS [ENGINE]]
 *       evaluations of the scenario per second (network, profile and
 *       cluster are built once, as sweeps and search do), with the
 *       scenario's engine or ENGINE (auto, analytic or des)
 *
 *   dnnsim_bench sim [SECONDS [SCENARIO]]
 *       the event simulator on one iteration of a 64-stage pipeline of
 *       512 micro-batches with data parallelism (ResNet-152, 2 replicas
 *       on 16 nodes of 8 GPUs; or SCENARIO): events per second of the
 *       engine, simulated iterations per second (a run of the built graph),
 *       and the cost of building and of re-timing the graph, in CPU
 *       time of the thread (medians of 5 rounds)
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

/* CPU time of this thread: the machines are shared, and time spent
 * descheduled is not the engine's. */
static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
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

static int bench_predict(const char *path, double seconds, const char *engine) {
  dnn_error e;
  dnn_scenario scn;
  dnn_scn_init(&scn);
  if (dnn_scn_load(path, &scn, &e) ||
      (engine &&
       dnn_scn_set_value(&scn, "simulation", "engine", engine, -1, &e)) ||
      dnn_scn_validate(&scn, &e))
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
  printf("predict %s: %zu layers, engine %s, %.0f evaluations/s (%.2f us "
         "each; checksum %.6g)\n",
         path, dnn_net_layer_count(net),
         p.engine == DNN_ENGINE_DES ? "des" : "analytic", rates[2],
         1e6 / rates[2], sink / 1e9);
  dnn_net_free(net);
  dnn_hw_free(hw);
  return 0;
}

/* The bench pipeline: 64 stages x 512 micro-batches of one sample, two
 * replicas, 128 V100s on 16 DGX-1 nodes, bucketed overlap. */
static const char *sim_scenario =
    "[model]\nname = resnet152\nbatch = 1024\nimage = 224\ndtype = fp16\n"
    "[hardware]\nprofile = v100-sxm2\n"
    "[cluster]\nnodes = 16\ndevices_per_node = 8\nintra_link = nvlink2\n"
    "inter_link = ib-edr\nnics_per_node = 4\n"
    "[parallelism]\npipeline = 64\nmicrobatches = 512\nschedule = 1f1b\n"
    "overlap = true\nbucket_MB = 25\n";

static int bench_sim(double seconds, const char *path) {
  dnn_error e;
  dnn_scenario scn;
  dnn_scn_init(&scn);
  dnn_status st =
      path ? dnn_scn_load(path, &scn, &e)
           : dnn_scn_load_string(sim_scenario, "bench-sim.ini", NULL, &scn, &e);
  if (st || dnn_scn_validate(&scn, &e))
    return die(&e);
  dnn_net *net = NULL;
  dnn_hw *hw = NULL;
  dnn_cluster cl;
  if (dnn_scn_build_net(&scn, 0, &net, &e) || dnn_scn_load_hw(&scn, &hw, &e) ||
      dnn_scn_cluster(&scn, &cl, &e))
    return die(&e);
  dnn_strat_input in = {&scn, net, hw, cl};
  dnn_strat_sim *ss = NULL;
  double t0 = cpu_s();
  if (dnn_strat_sim_alloc(&in, &ss, &e))
    return die(&e);
  double build_s = cpu_s() - t0;
  const dnn_sim *sim = dnn_strat_sim_engine(ss);
  dnn_prediction p;
  double rates[5], ev_rates[5];
  for (int r = 0; r < 5; r++) {
    size_t n = 0;
    double t;
    t0 = cpu_s();
    do {
      if (dnn_strat_sim_run(ss, &p, &e))
        return die(&e);
      n++;
      t = cpu_s() - t0;
    } while (t < seconds / 5);
    rates[r] = (double)n / t;
    ev_rates[r] = rates[r] * (double)dnn_sim_events(sim);
  }
  qsort(rates, 5, sizeof rates[0], cmp_double);
  qsort(ev_rates, 5, sizeof ev_rates[0], cmp_double);
  t0 = cpu_s();
  int k = 0;
  do {
    if (dnn_strat_sim_retime(ss, &in, &e))
      return die(&e);
    k++;
  } while (cpu_s() - t0 < 0.2);
  double retime_s = (cpu_s() - t0) / k;
  printf("sim %s: %zu stages x %zu micro-batches x %zu replicas, %zu "
         "tasks, %llu events per iteration\n",
         path ? path : "(built-in resnet152 pipeline)",
         scn.parallelism.pipeline, scn.parallelism.microbatches, p.data,
         dnn_sim_task_count(sim), (unsigned long long)dnn_sim_events(sim));
  printf("sim: %.3g events/s on one core, %.2f simulated iterations/s "
         "(%.2f ms each); build %.1f ms, re-time %.1f ms (CPU time); "
         "iteration %.4g s\n",
         ev_rates[2], rates[2], 1e3 / rates[2], build_s * 1e3, retime_s * 1e3,
         p.iteration_s);
  dnn_strat_sim_free(ss);
  dnn_net_free(net);
  dnn_hw_free(hw);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "predict") == 0)
    return bench_predict(argv[2], argc > 3 ? atof(argv[3]) : 2.0,
                         argc > 4 ? argv[4] : NULL);
  if (argc >= 2 && strcmp(argv[1], "sim") == 0)
    return bench_sim(argc > 2 ? atof(argv[2]) : 2.0, argc > 3 ? argv[3] : NULL);
  fprintf(stderr, "usage: dnnsim_bench predict SCENARIO [SECONDS [ENGINE]]\n"
                  "       dnnsim_bench sim [SECONDS [SCENARIO]]\n");
  return 2;
}
