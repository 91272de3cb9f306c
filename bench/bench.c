/*
 * dnnsim_bench: speed of the prediction engines, measured in one process.
 *
 *   dnnsim_bench predict SCENARIO [SECONDS [ENGINE]]
 *       evaluations of the scenario per second (network, profile and
 *       cluster are built once, as sweeps and search do), with the
 *       scenario's engine or ENGINE (auto, analytic or des): through
 *       dnn_strat_predict (per-layer times recomputed every time) and
 *       through dnn_strat_predict_cached (per-layer times cached, as
 *       sweeps and search evaluate)
 *
 *   dnnsim_bench sim [SECONDS [SCENARIO]]
 *       the event simulator on one iteration of a 64-stage pipeline of
 *       512 micro-batches with data parallelism (ResNet-152, 2 replicas
 *       on 16 nodes of 8 GPUs; or SCENARIO): events per second of the
 *       engine, simulated iterations per second (a run of the built graph),
 *       and the cost of building and of re-timing the graph, in CPU
 *       time of the thread (medians of 5 rounds)
 *
 *   dnnsim_bench vtrain DATA_DIR PROFILE [ENGINE [CSV_OUT]]
 *       the vTrain validation (bench/validate-vtrain, docs/validation-
 *       vtrain.md): every row of DATA_DIR/ground_truth_{single,multi}.csv
 *       (measured Megatron-DeepSpeed GPT iterations on A100s) turned into
 *       a scenario on PROFILE and predicted (ENGINE: auto, analytic or des);
 *       prints MAPE, the worst error and Spearman's rank correlation per
 *       set, and writes every row's prediction to CSV_OUT when given
 *
 * Figures are medians of 5 timed rounds; quote ratios from one run only,
 * these machines are shared and noisy.
 */
#include <math.h>
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
  dnn_strat_cache *cache = NULL;
  if (dnn_strat_cache_alloc(&cache, &e))
    return die(&e);
  for (int cached = 0; cached < 2; cached++) {
    dnn_prediction p;
    double rates[5];
    double sink = 0;
    for (int r = 0; r < 5; r++) {
      size_t n = 0;
      double t0 = now_s(), t;
      do {
        for (int k = 0; k < 100; k++) {
          dnn_status st = cached ? dnn_strat_predict_cached(&in, cache, &p, &e)
                                 : dnn_strat_predict(&in, &p, &e);
          if (st)
            return die(&e);
          sink += p.iteration_s;
        }
        n += 100;
        t = now_s() - t0;
      } while (t < seconds / 10);
      rates[r] = (double)n / t;
    }
    qsort(rates, 5, sizeof rates[0], cmp_double);
    printf("predict %s: %zu layers, engine %s%s, %.0f evaluations/s (%.2f "
           "us each; checksum %.6g)\n",
           path, dnn_net_layer_count(net),
           p.engine == DNN_ENGINE_DES ? "des" : "analytic",
           cached ? ", cached layer times" : "", rates[2], 1e6 / rates[2],
           sink / 1e9);
  }
  dnn_strat_cache_free(cache);
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

/* ---- The vTrain validation ----------------------------------------------- */

/* One measured run. */
typedef struct vrow {
  double params_b; /* billions (multi only; 0 otherwise) */
  size_t gpus, batch, mbs, hidden, heads, layers, seq, t, d, p;
  double measured_s, predicted_s;
} vrow;

/* A network built once per shape (rows share a handful). */
typedef struct vnet {
  size_t layers, hidden, heads, seq, vocab;
  dnn_net *net;
} vnet;

/* Megatron pads GPT-2's 50,257 tokens to a multiple of 128 per tensor-
 * parallel rank (the README's "usual choice"; the vocabulary is not in the
 * data). */
static size_t vtrain_vocab(size_t t) {
  size_t q = 128 * t;
  return (50257 + q - 1) / q * q;
}

static int vtrain_load(const char *path, bool multi, vrow **out, size_t *n) {
  char *text = NULL;
  dnn_error e;
  if (dnn_file_read_all(path, &text, NULL, &e)) {
    fprintf(stderr, "dnnsim_bench: %s\n", e.msg);
    return 1;
  }
  size_t cap = 0;
  *out = NULL;
  *n = 0;
  char *save = NULL;
  bool header = true;
  for (char *line = strtok_r(text, "\r\n", &save); line;
       line = strtok_r(NULL, "\r\n", &save)) {
    if (header) {
      header = false;
      continue;
    }
    double v[12];
    int k = 0;
    for (char *f = line; k < 12 && *f;) {
      char *end;
      v[k++] = strtod(f, &end);
      if (end == f)
        break;
      f = *end == ',' ? end + 1 : end;
    }
    int want = multi ? 12 : 11;
    if (k != want) {
      fprintf(stderr, "dnnsim_bench: %s: a row with %d fields, not %d\n", path,
              k, want);
      dnn_free(text);
      free(*out);
      return 1;
    }
    if (*n == cap) {
      cap = cap ? 2 * cap : 256;
      vrow *g = realloc(*out, cap * sizeof *g);
      if (g == NULL) {
        dnn_free(text);
        free(*out);
        return 1;
      }
      *out = g;
    }
    const double *c = multi ? v + 1 : v;
    vrow r = {multi ? v[0] : 0,
              (size_t)c[0],
              (size_t)c[1],
              (size_t)c[2],
              (size_t)c[3],
              (size_t)c[4],
              (size_t)c[5],
              (size_t)c[6],
              (size_t)c[7],
              (size_t)c[8],
              (size_t)c[9],
              c[10] * 1e-3,
              0};
    (*out)[(*n)++] = r;
  }
  dnn_free(text);
  return 0;
}

/* Average ranks (ties share their mean rank). */
static void ranks_of(const double *x, size_t n, double *rank) {
  size_t *idx = malloc(n * sizeof *idx);
  for (size_t i = 0; i < n; i++)
    idx[i] = i;
  for (size_t i = 1; i < n; i++) /* insertion sort: n is small */
    for (size_t j = i; j > 0 && x[idx[j - 1]] > x[idx[j]]; j--) {
      size_t t = idx[j];
      idx[j] = idx[j - 1];
      idx[j - 1] = t;
    }
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j + 1 < n && x[idx[j + 1]] == x[idx[i]])
      j++;
    for (size_t k = i; k <= j; k++)
      rank[idx[k]] = 0.5 * (double)(i + j) + 1;
    i = j + 1;
  }
  free(idx);
}

static double spearman(const double *a, const double *b, size_t n) {
  double *ra = malloc(n * sizeof *ra), *rb = malloc(n * sizeof *rb);
  ranks_of(a, n, ra);
  ranks_of(b, n, rb);
  double ma = 0, mb = 0;
  for (size_t i = 0; i < n; i++) {
    ma += ra[i];
    mb += rb[i];
  }
  ma /= (double)n;
  mb /= (double)n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < n; i++) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  free(ra);
  free(rb);
  return sab / sqrt(saa * sbb);
}

static int vtrain_predict(vrow *r, const char *profile, const char *engine,
                          vnet *nets, size_t *n_nets, size_t max_nets,
                          dnn_hw **hw) {
  char text[2048];
  size_t dpn = r->gpus < 8 ? r->gpus : 8, nodes = r->gpus / dpn;
  size_t vocab = vtrain_vocab(r->t);
  snprintf(text, sizeof text,
           "[model]\nname = gpt\nlayers = %zu\nhidden = %zu\nheads = %zu\n"
           "seq = %zu\nvocab = %zu\nbatch = %zu\ndtype = fp16\n"
           "[hardware]\nprofile = %s\n"
           "[cluster]\nnodes = %zu\ndevices_per_node = %zu\n"
           "intra_link = nvlink3\nintra_bandwidth_GBps = 150\n"
           "inter_link = ib-hdr\nnics_per_node = 4\n"
           "[parallelism]\ndata = %zu\ntensor = %zu\npipeline = %zu\n"
           "microbatches = %zu\nschedule = 1f1b\noverlap = false\n"
           "[training]\noptimizer = adam\nrecompute = full\n"
           "grad_accumulation = fused\n"
           "[simulation]\nengine = %s\n",
           r->layers, r->hidden, r->heads, r->seq, vocab, r->batch, profile,
           nodes, dpn, r->d, r->t, r->p, r->batch / (r->d * r->mbs), engine);
  dnn_error e;
  dnn_scenario scn;
  dnn_scn_init(&scn);
  if (dnn_scn_load_string(text, "vtrain.ini", NULL, &scn, &e) ||
      dnn_scn_validate(&scn, &e))
    return die(&e);
  if (*hw == NULL && dnn_scn_load_hw(&scn, hw, &e))
    return die(&e);
  dnn_net *net = NULL;
  for (size_t k = 0; k < *n_nets && !net; k++)
    if (nets[k].layers == r->layers && nets[k].hidden == r->hidden &&
        nets[k].heads == r->heads && nets[k].seq == r->seq &&
        nets[k].vocab == vocab)
      net = nets[k].net;
  if (net == NULL) {
    if (dnn_scn_build_net(&scn, 0, &net, &e))
      return die(&e);
    if (*n_nets == max_nets) {
      dnn_net_free(nets[0].net);
      memmove(nets, nets + 1, (max_nets - 1) * sizeof *nets);
      (*n_nets)--;
    }
    nets[(*n_nets)++] =
        (vnet){r->layers, r->hidden, r->heads, r->seq, vocab, net};
  }
  dnn_cluster cl;
  if (dnn_scn_cluster(&scn, &cl, &e))
    return die(&e);
  dnn_strat_input in = {&scn, net, *hw, cl};
  dnn_prediction p;
  if (dnn_strat_predict(&in, &p, &e))
    return die(&e);
  r->predicted_s = p.iteration_s;
  return 0;
}

static int bench_vtrain(const char *dir, const char *profile,
                        const char *engine, const char *csv) {
  FILE *out = NULL;
  if (csv && (out = fopen(csv, "w")) == NULL) {
    fprintf(stderr, "dnnsim_bench: cannot write %s\n", csv);
    return 1;
  }
  if (out)
    fprintf(out, "set,params_b,gpus,batch,micro_batch,hidden,heads,layers,"
                 "seq,tensor,data,pipeline,measured_s,predicted_s,error\n");
  static const char *const sets[] = {"single", "multi"};
  vnet nets[8];
  size_t n_nets = 0;
  dnn_hw *hw = NULL;
  int rc = 0;
  for (int m = 0; m < 2 && rc == 0; m++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/ground_truth_%s.csv", dir, sets[m]);
    vrow *rows;
    size_t n;
    if ((rc = vtrain_load(path, m == 1, &rows, &n)))
      break;
    double t0 = cpu_s();
    for (size_t i = 0; i < n && rc == 0; i++)
      rc = vtrain_predict(&rows[i], profile, engine, nets, &n_nets,
                          sizeof nets / sizeof nets[0], &hw);
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    double sum = 0, worst = 0, signed_sum = 0;
    size_t wi = 0, over10 = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
      const vrow *r = &rows[i];
      double err = (r->predicted_s - r->measured_s) / r->measured_s;
      a[i] = r->measured_s;
      b[i] = r->predicted_s;
      sum += fabs(err);
      signed_sum += err;
      over10 += fabs(err) > 0.1;
      if (fabs(err) > fabs(worst)) {
        worst = err;
        wi = i;
      }
      if (out)
        fprintf(out,
                "%s,%g,%zu,%zu,%zu,%zu,%zu,%zu,%zu,%zu,%zu,%zu,%.6g,%.6g,"
                "%.5f\n",
                sets[m], r->params_b, r->gpus, r->batch, r->mbs, r->hidden,
                r->heads, r->layers, r->seq, r->t, r->d, r->p, r->measured_s,
                r->predicted_s, err);
    }
    if (rc == 0 && n > 0) {
      const vrow *w = &rows[wi];
      printf("vtrain %s: %zu runs, MAPE %.2f %%, mean signed error %+.2f %%, "
             "%zu over 10 %%, Spearman %.3f (%.1f s CPU, engine %s)\n",
             sets[m], n, 100 * sum / (double)n, 100 * signed_sum / (double)n,
             over10, spearman(a, b, n), cpu_s() - t0, engine);
      printf("vtrain %s: worst %+.1f %% (measured %.4g s, predicted %.4g s): "
             "%zu GPUs, h %zu, %zu layers, t %zu d %zu p %zu, micro-batch "
             "%zu, batch %zu\n",
             sets[m], 100 * worst, w->measured_s, w->predicted_s, w->gpus,
             w->hidden, w->layers, w->t, w->d, w->p, w->mbs, w->batch);
    }
    free(a);
    free(b);
    free(rows);
  }
  for (size_t k = 0; k < n_nets; k++)
    dnn_net_free(nets[k].net);
  dnn_hw_free(hw);
  if (out && fclose(out) != 0)
    rc = 1;
  return rc;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "predict") == 0)
    return bench_predict(argv[2], argc > 3 ? atof(argv[3]) : 2.0,
                         argc > 4 ? argv[4] : NULL);
  if (argc >= 4 && strcmp(argv[1], "vtrain") == 0)
    return bench_vtrain(argv[2], argv[3], argc > 4 ? argv[4] : "auto",
                        argc > 5 ? argv[5] : NULL);
  if (argc >= 2 && strcmp(argv[1], "sim") == 0)
    return bench_sim(argc > 2 ? atof(argv[2]) : 2.0, argc > 3 ? argv[3] : NULL);
  fprintf(stderr, "usage: dnnsim_bench predict SCENARIO [SECONDS [ENGINE]]\n"
                  "       dnnsim_bench sim [SECONDS [SCENARIO]]\n"
                  "       dnnsim_bench vtrain DATA_DIR PROFILE [ENGINE "
                  "[CSV_OUT]]\n");
  return 2;
}
