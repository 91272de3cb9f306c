/*
 * dnnsim validate: run a scenario's strategy for real (the executor of
 * measure/, oneDNN kernels, MPI between ranks) and compare the measured
 * iteration with the prediction of the same scenario, per component
 * (forward, backward, exposed communication, bubble, optimizer), per
 * layer and in total: relative error (predicted - measured) / measured.
 *
 * Run under mpirun with one rank per device of the scenario (data x
 * pipeline). The executor uses the prediction's own choices: the stage
 * cut the predictor made (read from its task graph), its allreduce
 * algorithm (forced on the MPI communicator when OpenMPI allows it) and
 * its bucket rule. Only rank 0 prints; every rank exits with the same
 * code.
 *
 * Training techniques (docs/models.md §16-§17): with [training]
 * augment_copies = M every sample is computed M times (the compute batch
 * grows, the gradients do not); with [training] sizes a schedule of steps
 * drawn from the size distribution with the scenario seed runs each
 * size's network at its batch (size_policy), and each size's measured
 * step is compared with the prediction of that size, the run's mean step
 * with the predicted expectation E[T] = sum p_k T_k (and with the
 * prediction for the sizes actually drawn), and the epoch the run's
 * throughput implies with the predicted epoch.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void help(void) {
  printf(
      "usage: mpirun -np N dnnsim validate SCENARIO.ini [OPTIONS]\n"
      "\n"
      "Runs real training iterations of the scenario with oneDNN kernels on\n"
      "the CPU (or cuDNN and cuBLAS on CUDA device 0, --device) on random\n"
      "data, one MPI rank per device (N = data x pipeline), and\n"
      "prints the measured time per iteration and per component next to\n"
      "the prediction of the same scenario, with the relative error\n"
      "(predicted - measured) / measured. Use a profile calibrated on this\n"
      "machine ('dnnsim calibrate cpu', with the same --threads) in\n"
      "[hardware] profile.\n"
      "\n"
      "Options:\n"
      "  -s, --set SECTION.KEY=VALUE   override a scenario key (repeatable)\n"
      "  -f, --format table|json       output format (default table)\n"
      "  --repeats N                   timed iterations (default 10); with\n"
      "                                [training] sizes, the steps of the\n"
      "                                drawn schedule (default: [training]\n"
      "                                steps, else 60)\n"
      "  --warmup N                    untimed iterations first (default 2)\n"
      "  --threads N                   oneDNN threads per rank (default 1)\n"
      "  --device auto|cpu|gpu         whose kernels run: oneDNN on the CPU\n"
      "                                or cuDNN on the GPU (default auto:\n"
      "                                the GPU when the scenario's hardware\n"
      "                                profile is a GPU; 'no CUDA device' is\n"
      "                                an error, exit status 4)\n"
      "  --layers                      per-layer times in the table\n"
      "  --no-accumulate               overwrite rather than add the weight\n"
      "                                gradients of micro-batches after the\n"
      "                                first (not training: shows what\n"
      "                                accumulation costs)\n"
      "  --realtime                    run the timed iterations at real-time\n"
      "                                priority (SCHED_FIFO; root or\n"
      "                                CAP_SYS_NICE): other work on a shared\n"
      "                                machine then does not disturb them\n"
      "  --timeout S                   abort a run that takes longer than S\n"
      "                                seconds (default 600; 0: never)\n"
      "  -h, --help                    this help\n"
      "\n"
      "The executor runs data and pipeline parallelism (GPipe, 1F1B) of\n"
      "CNNs in fp32, batch augmentation ([training] augment_copies) and,\n"
      "with data parallelism, mixed image sizes ([training] sizes).\n"
      "docs/validation.md explains what is measured.\n"
      "\n"
      "Example:\n"
      "  mpirun -np 2 dnnsim validate scenarios/validate/resnet18-dp.ini\n");
}

/* ------------------------------------------------------------------------ */
/* The scenario as the executor runs it                                     */
/* ------------------------------------------------------------------------ */

/* What the executor cannot run, naming the key to change. */
static dnn_status check_supported(const dnn_scenario *scn, dnn_error *err) {
  char where[DNN_SCN_PATH_MAX + 64];
  const char *sec = NULL, *key = NULL, *why = NULL;
  if (scn->parallelism.tensor != 1)
    sec = "parallelism", key = "tensor",
    why = "the executor runs data and pipeline parallelism only";
  else if (scn->parallelism.schedule == DNN_SCHEDULE_INTERLEAVED ||
           scn->parallelism.virtual_stages != 1)
    sec = "parallelism", key = "schedule",
    why = "the executor runs the gpipe and 1f1b schedules";
  else if (scn->model.dtype != DNN_DTYPE_FP32)
    sec = "model", key = "dtype", why = "the executor runs fp32";
  else if (scn->training.zero != 0)
    sec = "training", key = "zero", why = "the executor does not shard (ZeRO)";
  else if (scn->training.recompute != DNN_RECOMPUTE_NONE)
    sec = "training", key = "recompute",
    why = "the executor does not recompute activations";
  else if (scn->training.micro_batching != DNN_MICROBATCHING_NONE)
    sec = "training", key = "micro_batching",
    why = "the executor does not split convolutions";
  else if (scn->training.compression != DNN_COMPRESSION_NONE)
    sec = "training", key = "compression",
    why = "the executor does not compress gradients";
  else if (scn->training.consistency != DNN_CONSISTENCY_SYNC)
    sec = "training", key = "consistency",
    why = "the executor trains synchronously";
  else if (scn->training.jitter > 0)
    sec = "training", key = "jitter",
    why = "the executor's devices do not straggle on purpose";
  else if (scn->training.n_sizes > 0 && scn->parallelism.pipeline > 1)
    sec = "training", key = "sizes",
    why = "the executor runs mixed sizes with data parallelism only";
  if (sec == NULL)
    return DNN_OK;
  return DNN_FAIL(err, DNN_EUNSUPPORTED, "%s: %s",
                  dnn_scn_key_origin(scn, sec, key, where, sizeof where), why);
}

/*
 * The first layer of each pipeline stage, as the prediction cut the
 * network: read from the task graph of the event simulation (each
 * stage's device runs its layers' tasks).
 */
static dnn_status stage_cut(const dnn_strat_input *in, size_t p, size_t *first,
                            dnn_error *err) {
  dnn_strat_sim *ss = NULL;
  dnn_status st = dnn_strat_sim_alloc(in, &ss, err);
  if (st)
    return st;
  const dnn_sim *sim = dnn_strat_sim_engine(ss);
  size_t devs = dnn_sim_device_count(sim), L = dnn_net_layer_count(in->net);
  for (size_t s = 0; s < p; s++)
    first[s] = L;
  for (size_t t = 0; t < dnn_sim_task_count(sim); t++) {
    dnn_sim_task task = dnn_sim_task_get(sim, t);
    size_t i;
    if (task.layer == NULL || dnn_net_find(in->net, task.layer, &i) != DNN_OK)
      continue;
    size_t dev = dnn_sim_stream_device(sim, task.stream);
    size_t s = devs ? dev * p / devs : 0;
    if (s < p && i < first[s])
      first[s] = i;
  }
  dnn_strat_sim_free(ss);
  first[0] = 0;
  for (size_t s = 1; s < p; s++)
    if (first[s] >= L || first[s] <= first[s - 1])
      return DNN_FAIL(err, DNN_EINVAL,
                      "cannot read the stage cut of the prediction (stage "
                      "%zu)",
                      s);
  return DNN_OK;
}

static dnn_meas_exec_params exec_params(const dnn_scenario *scn,
                                        const dnn_prediction *pred) {
  dnn_meas_exec_params p = dnn_meas_exec_default_params();
  p.data = dnn_scn_data_degree(scn);
  p.pipeline = scn->parallelism.pipeline;
  p.batch = scn->model.batch;
  p.microbatches = scn->parallelism.microbatches;
  p.schedule = scn->parallelism.schedule == DNN_SCHEDULE_GPIPE
                   ? DNN_MEAS_EXEC_GPIPE
                   : DNN_MEAS_EXEC_1F1B;
  p.overlap = scn->parallelism.overlap;
  p.bucket_bytes = scn->parallelism.bucket_MB * 1024.0 * 1024.0;
  p.allreduce = pred->allreduce;
  p.optimizer = scn->training.optimizer == DNN_OPTIMIZER_SGD ? DNN_MEAS_EXEC_SGD
                : scn->training.optimizer == DNN_OPTIMIZER_MOMENTUM
                    ? DNN_MEAS_EXEC_MOMENTUM
                    : DNN_MEAS_EXEC_ADAM;
  p.seed = scn->training.seed;
  p.copies = scn->training.augment_copies ? scn->training.augment_copies : 1;
  p.workspace_bytes = scn->hardware.workspace_MB * 1024.0 * 1024.0;
  return p;
}

/*
 * What the scenario's comm profile fits say the gradient allreduces of
 * this rank take (the allreduce steps' buckets, the prediction's
 * algorithm, the fit at the replicas' count or the nearest): a diagnostic
 * beside the prediction, which prices one allreduce of all gradients
 * when they are not overlapped (docs/validation.md). NaN when there is no
 * profile or no fit.
 */
static double allreduce_fit_s(const cli_world *w, const dnn_meas_exec *x,
                              const dnn_prediction *p, size_t data) {
  if (w->scn.cluster.comm_profile[0] == '\0' || data < 2)
    return (double)NAN;
  dnn_comm_profile *cp = NULL;
  if (dnn_hw_comm_profile_load(w->scn.cluster.comm_profile, &cp, NULL))
    return (double)NAN;
  const dnn_comm_fit *f = dnn_hw_comm_profile_lookup(
      cp, DNN_COMM_ALLREDUCE, (int)p->allreduce, data, NULL);
  double t = f ? 0 : (double)NAN;
  for (size_t k = 0; f && k < dnn_meas_exec_step_count(x); k++) {
    const dnn_meas_exec_step *s = dnn_meas_exec_step_get(x, k);
    if (s->kind == DNN_MEAS_STEP_ALLREDUCE)
      t += dnn_hw_comm_fit_time(f, s->bytes);
  }
  dnn_hw_comm_profile_free(cp);
  return t;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                   */
/* ------------------------------------------------------------------------ */

static double rel_err(double predicted, double measured) {
  return measured > 0 ? (predicted - measured) / measured : (double)NAN;
}

typedef struct component {
  const char *name; /* JSON key stem */
  const char *label;
  double measured, predicted;
} component;

static size_t components(const dnn_meas_exec_result *m, const dnn_prediction *p,
                         component *c) {
  const dnn_breakdown *b = &p->breakdown;
  component all[] = {
      {"forward", "forward", m->forward_s, b->forward_s},
      {"backward", "backward", m->backward_s, b->backward_s + b->recompute_s},
      {"comm_exposed", "communication (exposed)", m->comm_exposed_s,
       b->comm_exposed_s},
      {"bubble", "bubble", m->bubble_s, b->bubble_s},
      {"optimizer", "optimizer", m->optimizer_s, b->optimizer_s},
  };
  memcpy(c, all, sizeof all);
  return sizeof all / sizeof all[0];
}

/* A time that may be negative (the "other" remainder). */
static const char *signed_time(double s, char *buf, size_t n) {
  if (s >= 0)
    return cli_fmt_time(s, buf, n);
  char tmp[32];
  snprintf(buf, n, "-%s", cli_fmt_time(-s, tmp, sizeof tmp));
  return buf;
}

static void pct(char *buf, size_t n, double e) {
  if (isnan(e))
    snprintf(buf, n, "-");
  else
    snprintf(buf, n, "%+.1f%%", 100 * e);
}

/* One "label  measured  predicted  error" row of the mixed-run table. */
static void cmp_row(const char *label, double measured, double predicted) {
  char m[32], p[32], e[32];
  pct(e, sizeof e, rel_err(predicted, measured));
  printf("%-34s %11s %11s %8s\n", label, cli_fmt_time(measured, m, sizeof m),
         cli_fmt_time(predicted, p, sizeof p), e);
}

/* "N MPI ranks, T oneDNN threads each" or "N MPI ranks on CUDA device 0
 * (cuDNN)". */
static const char *ranks_text(size_t ranks, const dnn_meas_exec_params *ep,
                              size_t threads, char *buf, size_t n) {
  if (ep->device == DNN_MEAS_EXEC_GPU)
    snprintf(buf, n, "%zu MPI rank%s on CUDA device 0 (cuDNN)", ranks,
             ranks == 1 ? "" : "s");
  else
    snprintf(buf, n, "%zu MPI rank%s, %zu oneDNN thread%s each", ranks,
             ranks == 1 ? "" : "s", threads, threads == 1 ? "" : "s");
  return buf;
}

static void print_table(const cli_world *w, const dnn_meas_exec *x,
                        const dnn_meas_exec_result *m, const dnn_prediction *p,
                        const dnn_meas_exec_params *ep, size_t threads,
                        bool layers) {
  char a[32], b[32], c[32], d[32];
  printf("validate %s: %s, batch %zu, data %zu x pipeline %zu", w->scn.path,
         dnn_net_name(w->net), w->scn.model.batch, ep->data, ep->pipeline);
  if (ep->pipeline > 1)
    printf(" (%zu micro-batches, %s)", ep->microbatches,
           ep->schedule == DNN_MEAS_EXEC_GPIPE ? "gpipe" : "1f1b");
  char rk[96];
  printf("\n%s; %zu timed iterations after %zu warm-up\n",
         ranks_text(m->ranks, ep, threads, rk, sizeof rk), m->iteration.samples,
         ep->warmup);
  if (ep->copies > 1)
    printf("batch augmentation: %zu copies of each sample, %zu computed per "
           "replica (%zu unique)\n",
           ep->copies, m->local_batch * ep->copies, m->local_batch);
  if (ep->data > 1)
    printf("gradients: %s in %zu bucket%s, %s allreduce (%s)%s\n",
           cli_fmt_bytes(m->grad_bytes, a, sizeof a), m->buckets,
           m->buckets == 1 ? "" : "s", dnn_comm_algo_name(p->allreduce),
           ep->overlap ? "overlapped with backward" : "blocking",
           m->forced_allreduce ? ", forced in MPI" : ", MPI's own choice");
  printf("\n%-26s %12s %12s %9s\n", "component", "measured", "predicted",
         "error");
  component comp[8];
  size_t n = components(m, p, comp);
  for (size_t k = 0; k < n; k++) {
    pct(d, sizeof d, rel_err(comp[k].predicted, comp[k].measured));
    if (comp[k].measured < 1e-6 * m->iteration.median_s &&
        comp[k].predicted < 1e-6 * p->iteration_s)
      snprintf(d, sizeof d, "-");
    printf("%-26s %12s %12s %9s\n", comp[k].label,
           cli_fmt_time(comp[k].measured, a, sizeof a),
           cli_fmt_time(comp[k].predicted, b, sizeof b), d);
  }
  printf("%-26s %12s %12s %9s\n", "other (loop, timers)",
         signed_time(m->other_s, a, sizeof a), "-", "-");
  pct(d, sizeof d, rel_err(p->iteration_s, m->iteration.median_s));
  printf("%-26s %12s %12s %9s\n", "iteration",
         cli_fmt_time(m->iteration.median_s, a, sizeof a),
         cli_fmt_time(p->iteration_s, b, sizeof b), d);
  printf("  measured: median of %zu, %.0f%% CI [%s, %s]; rank %zu is the "
         "slowest; layout conversions and gradient accumulation %s of it\n",
         m->iteration.samples, 100 * m->iteration.confidence,
         cli_fmt_time(m->iteration.ci_lo_s, a, sizeof a),
         cli_fmt_time(m->iteration.ci_hi_s, b, sizeof b), m->critical_rank,
         cli_fmt_time(m->glue_s, c, sizeof c));
  if (m->ranks > 1) {
    printf("\n%-34s %10s %10s %10s %10s %10s %10s\n", "per rank", "forward",
           "backward", "comm", "bubble", "optimizer", "iteration");
    size_t L = dnn_net_layer_count(w->net);
    for (size_t r = 0; r < m->ranks; r++) {
      dnn_meas_exec_result rr;
      dnn_meas_exec_rank_result(x, r, &rr);
      size_t st = r / ep->data, lo = ep->stage_first ? ep->stage_first[st] : 0;
      size_t hi = ep->stage_first && st + 1 < ep->pipeline
                      ? ep->stage_first[st + 1]
                      : L;
      char who[64], e1[32], e2[32], e3[32];
      snprintf(who, sizeof who, "rank %zu (stage %zu, layers %zu-%zu)", r, st,
               lo, hi - 1);
      printf("%-34s %10s %10s %10s %10s %10s %10s\n", who,
             cli_fmt_time(rr.forward_s, a, sizeof a),
             cli_fmt_time(rr.backward_s, b, sizeof b),
             cli_fmt_time(rr.comm_exposed_s, c, sizeof c),
             cli_fmt_time(rr.bubble_s, e1, sizeof e1),
             cli_fmt_time(rr.optimizer_s, e2, sizeof e2),
             cli_fmt_time(rr.iteration.median_s, e3, sizeof e3));
    }
  }
  double fit = allreduce_fit_s(w, x, p, ep->data);
  if (isfinite(fit))
    printf("  the executor's gradient buckets, priced one by one with "
           "[cluster] comm_profile's fits, take %s\n",
           cli_fmt_time(fit, a, sizeof a));
  if (!layers)
    return;
  size_t L = dnn_net_layer_count(w->net);
  dnn_layer_time *lt = dnn_calloc(L, sizeof *lt);
  if (lt == NULL)
    return;
  dnn_strat_input in = cli_world_input(w);
  dnn_strat_layer_times(&in, m->microbatch, lt);
  printf("\nper layer and micro-batch of %zu samples:\n%-24s %-12s",
         m->microbatch, "layer", "kind");
  for (int q = 0; q < DNN_PASS_COUNT; q++)
    printf(" %10s %10s %7s", dnn_pass_name((dnn_pass)q), "pred", "err");
  printf("\n");
  for (size_t i = 0; i < L; i++) {
    const dnn_layer *l = dnn_net_layer(w->net, i);
    double t[DNN_PASS_COUNT];
    dnn_meas_exec_layer_time(x, i, t);
    printf("%-24.24s %-12.12s", l->name, dnn_layer_kind_name(l->kind));
    for (int q = 0; q < DNN_PASS_COUNT; q++) {
      if (t[q] > 0 || lt[i].time_s[q] > 0)
        pct(d, sizeof d, rel_err(lt[i].time_s[q], t[q]));
      else
        snprintf(d, sizeof d, "-");
      printf(" %10s %10s %7s", cli_fmt_time(t[q], a, sizeof a),
             cli_fmt_time(lt[i].time_s[q], b, sizeof b), d);
    }
    printf("\n");
  }
  dnn_free(lt);
}

static json_t *num(double v) {
  return isfinite(v) ? json_real(v) : json_null();
}

/* What a run measured (a size of a mixed run that was never drawn has
 * no iteration: null). */
static json_t *measured_json(const dnn_meas_exec_result *m) {
  json_t *me = json_object();
  bool ran = m->iteration.samples > 0;
  json_object_set_new(me, "iteration_s",
                      num(ran ? m->iteration.median_s : (double)NAN));
  json_object_set_new(me, "ci_lo_s", num(m->iteration.ci_lo_s));
  json_object_set_new(me, "ci_hi_s", num(m->iteration.ci_hi_s));
  json_object_set_new(me, "confidence", num(m->iteration.confidence));
  json_object_set_new(me, "min_s", num(m->iteration.min_s));
  json_object_set_new(me, "max_s", num(m->iteration.max_s));
  json_object_set_new(me, "mean_s", num(m->iteration.mean_s));
  json_object_set_new(me, "samples",
                      json_integer((json_int_t)m->iteration.samples));
  json_object_set_new(me, "forward_s", num(m->forward_s));
  json_object_set_new(me, "backward_s", num(m->backward_s));
  json_object_set_new(me, "comm_exposed_s", num(m->comm_exposed_s));
  json_object_set_new(me, "bubble_s", num(m->bubble_s));
  json_object_set_new(me, "optimizer_s", num(m->optimizer_s));
  json_object_set_new(me, "other_s", num(m->other_s));
  json_object_set_new(me, "glue_s", num(m->glue_s));
  json_object_set_new(me, "critical_rank",
                      json_integer((json_int_t)m->critical_rank));
  json_object_set_new(me, "grad_bytes", num(m->grad_bytes));
  json_object_set_new(me, "buckets", json_integer((json_int_t)m->buckets));
  json_object_set_new(me, "forced_allreduce",
                      json_boolean(m->forced_allreduce));
  return me;
}

/* What the prediction says of the same components. */
static json_t *predicted_json(const dnn_prediction *p) {
  const dnn_breakdown *b = &p->breakdown;
  json_t *pr = json_object();
  json_object_set_new(pr, "iteration_s", num(p->iteration_s));
  json_object_set_new(pr, "forward_s", num(b->forward_s));
  json_object_set_new(pr, "backward_s", num(b->backward_s + b->recompute_s));
  json_object_set_new(pr, "comm_s", num(b->comm_s));
  json_object_set_new(pr, "comm_exposed_s", num(b->comm_exposed_s));
  json_object_set_new(pr, "bubble_s", num(b->bubble_s));
  json_object_set_new(pr, "optimizer_s", num(b->optimizer_s));
  json_object_set_new(pr, "grad_bytes", num(p->grad_bytes));
  json_object_set_new(pr, "allreduce",
                      json_string(dnn_comm_algo_name(p->allreduce)));
  json_object_set_new(
      pr, "engine",
      json_string(p->engine == DNN_ENGINE_DES ? "des" : "analytic"));
  return pr;
}

static json_t *result_json(const cli_world *w, const dnn_meas_exec *x,
                           const dnn_meas_exec_result *m,
                           const dnn_prediction *p,
                           const dnn_meas_exec_params *ep, size_t threads) {
  json_t *o = json_object();
  json_object_set_new(o, "scenario", json_string(w->scn.path));
  json_object_set_new(o, "network", json_string(dnn_net_name(w->net)));
  json_object_set_new(o, "batch", json_integer((json_int_t)w->scn.model.batch));
  json_object_set_new(o, "data", json_integer((json_int_t)ep->data));
  json_object_set_new(o, "pipeline", json_integer((json_int_t)ep->pipeline));
  json_object_set_new(o, "microbatches",
                      json_integer((json_int_t)ep->microbatches));
  json_object_set_new(o, "ranks", json_integer((json_int_t)m->ranks));
  json_object_set_new(o, "threads", json_integer((json_int_t)threads));
  json_object_set_new(
      o, "device",
      json_string(ep->device == DNN_MEAS_EXEC_GPU ? "gpu" : "cpu"));
  json_object_set_new(o, "warmup", json_integer((json_int_t)ep->warmup));
  json_object_set_new(o, "accumulate", json_boolean(ep->accumulate));
  json_object_set_new(o, "copies", json_integer((json_int_t)ep->copies));
  json_object_set_new(o, "profile", json_string(w->scn.hardware.profile));

  json_object_set_new(o, "measured", measured_json(m));
  json_t *pr = predicted_json(p);
  json_object_set_new(o, "predicted", pr);

  json_object_set_new(o, "relative_error",
                      num(rel_err(p->iteration_s, m->iteration.median_s)));
  json_t *ce = json_object();
  component comp[8];
  size_t n = components(m, p, comp);
  for (size_t k = 0; k < n; k++)
    json_object_set_new(ce, comp[k].name,
                        num(rel_err(comp[k].predicted, comp[k].measured)));
  json_object_set_new(o, "component_error", ce);
  json_t *dg = json_object();
  json_object_set_new(dg, "allreduce_fit_s",
                      num(allreduce_fit_s(w, x, p, ep->data)));
  json_object_set_new(o, "diagnostics", dg);

  size_t L = dnn_net_layer_count(w->net);
  dnn_layer_time *lt = dnn_calloc(L, sizeof *lt);
  json_t *arr = json_array();
  if (lt) {
    dnn_strat_input in = cli_world_input(w);
    dnn_strat_layer_times(&in, m->microbatch, lt);
    for (size_t i = 0; i < L; i++) {
      const dnn_layer *l = dnn_net_layer(w->net, i);
      double t[DNN_PASS_COUNT];
      dnn_meas_exec_layer_time(x, i, t);
      json_t *lo = json_object();
      json_object_set_new(lo, "name", json_string(l->name));
      json_object_set_new(lo, "kind",
                          json_string(dnn_layer_kind_name(l->kind)));
      for (int q = 0; q < DNN_PASS_COUNT; q++) {
        json_t *po = json_object();
        json_object_set_new(po, "measured_s", num(t[q]));
        json_object_set_new(po, "predicted_s", num(lt[i].time_s[q]));
        json_object_set_new(lo, dnn_pass_name((dnn_pass)q), po);
      }
      json_array_append_new(arr, lo);
    }
    dnn_free(lt);
  }
  json_object_set_new(o, "microbatch", json_integer((json_int_t)m->microbatch));
  json_t *pr_arr = json_array();
  for (size_t r = 0; r < m->ranks; r++) {
    dnn_meas_exec_result rr;
    dnn_meas_exec_rank_result(x, r, &rr);
    json_t *ro = json_object();
    size_t st = r / ep->data;
    json_object_set_new(ro, "rank", json_integer((json_int_t)r));
    json_object_set_new(ro, "stage", json_integer((json_int_t)st));
    json_object_set_new(
        ro, "first_layer",
        json_integer((json_int_t)(ep->stage_first ? ep->stage_first[st] : 0)));
    json_object_set_new(ro, "iteration_s", num(rr.iteration.median_s));
    json_object_set_new(ro, "forward_s", num(rr.forward_s));
    json_object_set_new(ro, "backward_s", num(rr.backward_s));
    json_object_set_new(ro, "comm_exposed_s", num(rr.comm_exposed_s));
    json_object_set_new(ro, "bubble_s", num(rr.bubble_s));
    json_object_set_new(ro, "optimizer_s", num(rr.optimizer_s));
    json_object_set_new(ro, "glue_s", num(rr.glue_s));
    json_array_append_new(pr_arr, ro);
  }
  json_object_set_new(o, "per_rank", pr_arr);
  json_object_set_new(o, "layers", arr);
  return o;
}

/* ------------------------------------------------------------------------ */
/* Mixed sizes                                                              */
/* ------------------------------------------------------------------------ */

/* One size of a mixed run: its network, batch, copies and prediction. */
typedef struct mixed_size {
  dnn_net *net;
  dnn_prediction pred; /* the step at this size alone */
} mixed_size;

/*
 * The sizes of [training] sizes as the predictor prices them
 * (dnn_strat_size_config: batch and copies per size_policy; the network
 * rebuilt at each size) and each size's own prediction, with the
 * scenario's other keys.
 */
static dnn_status mixed_sizes(const cli_world *w, mixed_size *ms,
                              dnn_meas_exec_size *sz, dnn_error *err) {
  const dnn_scenario *scn = &w->scn;
  size_t d = dnn_scn_data_degree(scn);
  dnn_status st = DNN_OK;
  dnn_scenario *sc = dnn_malloc(sizeof *sc);
  if (sc == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory");
  for (size_t k = 0; k < scn->training.n_sizes && st == DNN_OK; k++) {
    const dnn_size_prob *sp = &scn->training.sizes[k];
    size_t b, M;
    dnn_strat_size_config(scn, sp->size, &b, &M);
    st = dnn_scn_build_net(scn, sp->size, &ms[k].net, err);
    if (st)
      break;
    *sc = *scn;
    sc->training.n_sizes = 0;
    sc->model.image = sp->size;
    sc->model.batch = b * d;
    sc->training.augment_copies = M;
    dnn_strat_input in = cli_world_input(w);
    in.scn = sc;
    in.net = ms[k].net;
    st = dnn_strat_predict(&in, &ms[k].pred, err);
    if (st) {
      dnn_error_prefix(err, "image %zu", sp->size);
      break;
    }
    sz[k].net = ms[k].net;
    sz[k].image = sp->size;
    sz[k].batch = b * d;
    sz[k].copies = M;
    sz[k].probability = sp->probability;
  }
  dnn_free(sc);
  return st;
}

/* What the mixed run's numbers compare. */
typedef struct mixed_cmp {
  double meas_mean_s, pred_mean_s; /* mean step; E[T] = sum p_k T_k */
  double pred_drawn_s;             /* sum n_k T_k / steps: the drawn mix */
  double meas_epoch_s, pred_epoch_s;
  /* The epoch at the drawn mix's predicted throughput: N sum_i T(k_i) /
   * sum_i b(k_i). A short run draws a mix whose samples per step differ
   * from the expectation (sampling, not model, error); this row removes
   * that. */
  double pred_drawn_epoch_s;
} mixed_cmp;

static mixed_cmp mixed_compare(const cli_world *w, const dnn_prediction *pred,
                               const mixed_size *ms,
                               const dnn_meas_exec_mixed *mx,
                               const dnn_meas_exec_mixed_result *r) {
  mixed_cmp c;
  c.meas_mean_s = r->steps ? r->total_s / (double)(r->steps) : 0;
  c.pred_mean_s = pred->iteration_s;
  double sum = 0;
  for (size_t i = 0; i < r->steps; i++)
    sum += ms[dnn_meas_exec_mixed_size_at(mx, i)].pred.iteration_s;
  c.pred_drawn_s = r->steps ? sum / (double)(r->steps) : 0;
  /* The epoch at the run's throughput (samples over time: the renewal-
   * reward estimate the prediction makes from expectations). */
  double N = (double)(w->scn.training.dataset_size);
  c.meas_epoch_s = r->samples > 0 ? N * r->total_s / r->samples : 0;
  c.pred_epoch_s = pred->techniques.epoch_s;
  c.pred_drawn_epoch_s = r->samples > 0 ? N * sum / r->samples : 0;
  return c;
}

/* A finished mixed run and what it is compared with. */
typedef struct mixed_run {
  const dnn_prediction *pred; /* the expectation over the sizes */
  const mixed_size *ms;       /* each size's network and prediction */
  const dnn_meas_exec_mixed *mx;
  const dnn_meas_exec_mixed_result *r;
  const dnn_meas_exec_result *per; /* each size's statistics */
  const dnn_meas_exec_params *ep;
  size_t ranks, threads;
} mixed_run;

static void mixed_table(const cli_world *w, const mixed_run *run) {
  const dnn_prediction *pred = run->pred;
  const mixed_size *ms = run->ms;
  const dnn_meas_exec_mixed *mx = run->mx;
  const dnn_meas_exec_mixed_result *r = run->r;
  const dnn_meas_exec_result *per = run->per;
  const dnn_meas_exec_params *ep = run->ep;
  size_t ranks = run->ranks, threads = run->threads;
  const dnn_scenario *scn = &w->scn;
  size_t n = scn->training.n_sizes;
  char a[32], b[32], c[32], d[32], e[32], f[32];
  printf("validate %s: %s, mixed sizes (size_policy %s), batch %zu at %zu "
         "px, data %zu\n",
         scn->path, dnn_net_name(w->net),
         scn->training.size_policy == DNN_SIZE_POLICY_BATCH ? "batch"
                                                            : "copies",
         scn->model.batch, scn->model.image, ep->data);
  char rk[96];
  printf("%s; %zu steps drawn with seed %llu after %zu warm-up iterations "
         "of each size\n\n",
         ranks_text(ranks, ep, threads, rk, sizeof rk), r->steps, ep->seed,
         ep->warmup);
  printf("%-7s %6s %6s %6s %6s %11s %11s %8s %11s %11s\n", "size", "batch",
         "copies", "p", "steps", "measured", "predicted", "error", "comm meas",
         "comm pred");
  for (size_t k = 0; k < n; k++) {
    const dnn_meas_exec_result *m = &per[k];
    const dnn_prediction *p = &ms[k].pred;
    char px[16];
    snprintf(px, sizeof px, "%zu px", scn->training.sizes[k].size);
    pct(d, sizeof d, rel_err(p->iteration_s, m->iteration.median_s));
    printf("%-7s %6zu %6zu %6.2f %6zu %11s %11s %8s %11s %11s\n", px,
           p->local_batch, p->techniques.copies,
           scn->training.sizes[k].probability, m->iteration.samples,
           m->iteration.samples
               ? cli_fmt_time(m->iteration.median_s, a, sizeof a)
               : "-",
           cli_fmt_time(p->iteration_s, b, sizeof b),
           m->iteration.samples ? d : "-",
           cli_fmt_time(m->comm_exposed_s, e, sizeof e),
           cli_fmt_time(p->breakdown.comm_exposed_s, f, sizeof f));
  }
  mixed_cmp cm = mixed_compare(w, pred, ms, mx, r);
  printf("\n%-34s %11s %11s %8s\n", "mixed run", "measured", "predicted",
         "error");
  cmp_row("mean step (E[T] = sum p T)", cm.meas_mean_s, cm.pred_mean_s);
  cmp_row("mean step (the drawn sizes)", cm.meas_mean_s, cm.pred_drawn_s);
  char lbl[64];
  snprintf(lbl, sizeof lbl, "epoch (%zu samples)", scn->training.dataset_size);
  cmp_row(lbl, cm.meas_epoch_s, cm.pred_epoch_s);
  cmp_row("epoch (the drawn sizes)", cm.meas_epoch_s, cm.pred_drawn_epoch_s);
  printf("  measured: %zu steps, %.0f unique samples in %s (%.1f per step; "
         "predicted %.2f); step median %s, min %s, max %s\n",
         r->steps, r->samples, cli_fmt_time(r->total_s, a, sizeof a),
         r->steps ? r->samples / (double)(r->steps) : 0,
         pred->techniques.unique_samples_per_step,
         cli_fmt_time(r->step.median_s, b, sizeof b),
         cli_fmt_time(r->step.min_s, c, sizeof c),
         cli_fmt_time(r->step.max_s, e, sizeof e));
  printf("\n%-7s %21s %21s %21s %21s\n", "size", "forward", "backward",
         "comm (exposed)", "optimizer");
  for (size_t k = 0; k < n; k++) {
    const dnn_meas_exec_result *m = &per[k];
    const dnn_breakdown *bd = &ms[k].pred.breakdown;
    char px[16], col[4][32];
    double mv[4] = {m->forward_s, m->backward_s, m->comm_exposed_s,
                    m->optimizer_s};
    double pv[4] = {bd->forward_s, bd->backward_s + bd->recompute_s,
                    bd->comm_exposed_s, bd->optimizer_s};
    for (size_t q = 0; q < 4; q++)
      snprintf(col[q], sizeof col[q], "%s / %s",
               m->iteration.samples ? cli_fmt_time(mv[q], a, sizeof a) : "-",
               cli_fmt_time(pv[q], b, sizeof b));
    snprintf(px, sizeof px, "%zu px", scn->training.sizes[k].size);
    printf("%-7s %21s %21s %21s %21s\n", px, col[0], col[1], col[2], col[3]);
  }
  printf("  (measured / predicted medians over each size's steps, on its "
         "slowest rank)\n");
}

static json_t *mixed_json(const cli_world *w, const mixed_run *run) {
  const dnn_scenario *scn = &w->scn;
  json_t *o = json_object();
  json_object_set_new(o, "scenario", json_string(scn->path));
  json_object_set_new(o, "network", json_string(dnn_net_name(w->net)));
  json_object_set_new(o, "kind", json_string("mixed"));
  json_object_set_new(
      o, "size_policy",
      json_string(scn->training.size_policy == DNN_SIZE_POLICY_BATCH
                      ? "batch"
                      : "copies"));
  json_object_set_new(o, "batch", json_integer((json_int_t)scn->model.batch));
  json_object_set_new(o, "image", json_integer((json_int_t)scn->model.image));
  json_object_set_new(o, "data", json_integer((json_int_t)run->ep->data));
  json_object_set_new(o, "ranks", json_integer((json_int_t)run->ranks));
  json_object_set_new(o, "threads", json_integer((json_int_t)run->threads));
  json_object_set_new(
      o, "device",
      json_string(run->ep->device == DNN_MEAS_EXEC_GPU ? "gpu" : "cpu"));
  json_object_set_new(o, "warmup", json_integer((json_int_t)run->ep->warmup));
  json_object_set_new(o, "seed", json_integer((json_int_t)run->ep->seed));
  json_object_set_new(o, "profile", json_string(scn->hardware.profile));
  json_t *arr = json_array();
  for (size_t k = 0; k < scn->training.n_sizes; k++) {
    const dnn_meas_exec_result *m = &run->per[k];
    const dnn_prediction *p = &run->ms[k].pred;
    json_t *so = json_object();
    json_object_set_new(so, "image",
                        json_integer((json_int_t)scn->training.sizes[k].size));
    json_object_set_new(so, "probability",
                        num(scn->training.sizes[k].probability));
    json_object_set_new(so, "local_batch",
                        json_integer((json_int_t)p->local_batch));
    json_object_set_new(so, "copies",
                        json_integer((json_int_t)p->techniques.copies));
    json_object_set_new(so, "steps",
                        json_integer((json_int_t)m->iteration.samples));
    bool ran = m->iteration.samples > 0;
    json_object_set_new(so, "measured", measured_json(m));
    json_t *pr = predicted_json(p);
    json_object_set_new(pr, "technique_iteration_s",
                        num(run->pred->techniques.sizes[k].iteration_s));
    json_object_set_new(so, "predicted", pr);
    json_object_set_new(so, "relative_error",
                        num(ran ? rel_err(p->iteration_s, m->iteration.median_s)
                                : (double)NAN));
    json_array_append_new(arr, so);
  }
  json_object_set_new(o, "sizes", arr);
  mixed_cmp cm = mixed_compare(w, run->pred, run->ms, run->mx, run->r);
  json_t *mo = json_object();
  json_object_set_new(mo, "steps", json_integer((json_int_t)run->r->steps));
  json_object_set_new(mo, "samples", num(run->r->samples));
  json_object_set_new(mo, "dataset_size",
                      json_integer((json_int_t)scn->training.dataset_size));
  json_t *me = json_object();
  json_object_set_new(me, "mean_step_s", num(cm.meas_mean_s));
  json_object_set_new(me, "median_step_s", num(run->r->step.median_s));
  json_object_set_new(me, "total_s", num(run->r->total_s));
  json_object_set_new(me, "epoch_s", num(cm.meas_epoch_s));
  json_object_set_new(mo, "measured", me);
  json_t *pr = json_object();
  json_object_set_new(pr, "mean_step_s", num(cm.pred_mean_s));
  json_object_set_new(pr, "drawn_mean_step_s", num(cm.pred_drawn_s));
  json_object_set_new(pr, "epoch_s", num(cm.pred_epoch_s));
  json_object_set_new(pr, "drawn_epoch_s", num(cm.pred_drawn_epoch_s));
  json_object_set_new(pr, "unique_samples_per_step",
                      num(run->pred->techniques.unique_samples_per_step));
  json_object_set_new(mo, "predicted", pr);
  json_object_set_new(mo, "relative_error",
                      num(rel_err(cm.pred_mean_s, cm.meas_mean_s)));
  json_object_set_new(mo, "drawn_relative_error",
                      num(rel_err(cm.pred_drawn_s, cm.meas_mean_s)));
  json_object_set_new(mo, "epoch_relative_error",
                      num(rel_err(cm.pred_epoch_s, cm.meas_epoch_s)));
  json_object_set_new(mo, "drawn_epoch_relative_error",
                      num(rel_err(cm.pred_drawn_epoch_s, cm.meas_epoch_s)));
  json_t *sched = json_array();
  for (size_t i = 0; i < run->r->steps; i++)
    json_array_append_new(
        sched, json_integer((json_int_t)scn->training
                                .sizes[dnn_meas_exec_mixed_size_at(run->mx, i)]
                                .size));
  json_object_set_new(mo, "schedule", sched);
  json_object_set_new(o, "mixed", mo);
  return o;
}

/* ------------------------------------------------------------------------ */
/* The command                                                              */
/* ------------------------------------------------------------------------ */

/* Real-time priority only around the run: MPI start-up and shutdown need
 * mpirun's daemons, which real-time ranks would starve. */
static bool realtime_on(bool want, bool root) {
  struct sched_param rt = {.sched_priority = 10};
  if (!want)
    return false;
  if (sched_setscheduler(0, SCHED_FIFO, &rt) == 0)
    return true;
  if (root)
    fprintf(stderr,
            "dnnsim: validate: note: --realtime: cannot set SCHED_FIFO (%s); "
            "measuring at normal priority\n",
            strerror(errno));
  return false;
}

static void realtime_off(bool on) {
  struct sched_param normal = {.sched_priority = 0};
  if (on)
    sched_setscheduler(0, SCHED_OTHER, &normal);
}

/* What the command line asked for. */
typedef struct vopts {
  size_t repeats, warmup, threads;
  dnn_meas_exec_device device;
  bool repeats_set, layers, realtime, accumulate;
  cli_format format;
} vopts;

/* A mixed-size run and its comparison (every rank; rank 0 prints). */
static dnn_status validate_mixed(const cli_world *w, const dnn_prediction *pred,
                                 dnn_meas_mpi *mpi, const vopts *vo,
                                 size_t ranks, bool root, int *rc,
                                 dnn_error *err) {
  size_t n = w->scn.training.n_sizes;
  mixed_size *ms = dnn_calloc(n, sizeof *ms);
  dnn_meas_exec_size *sz = dnn_calloc(n, sizeof *sz);
  dnn_meas_exec_result *per = dnn_calloc(n, sizeof *per);
  dnn_meas_exec_mixed *mx = NULL;
  dnn_meas_exec_mixed_result r;
  memset(&r, 0, sizeof r);
  dnn_status st = DNN_OK;
  if (!ms || !sz || !per)
    st = DNN_FAIL(err, DNN_ENOMEM, "out of memory");
  if (st == DNN_OK)
    st = mixed_sizes(w, ms, sz, err);
  dnn_meas_exec_params ep = exec_params(&w->scn, pred);
  ep.threads = vo->threads;
  ep.device = vo->device;
  ep.warmup = vo->warmup;
  ep.accumulate = vo->accumulate;
  ep.repeats = vo->repeats_set         ? vo->repeats
               : w->scn.training.steps ? w->scn.training.steps
                                       : 60;
  if (st == DNN_OK && ep.repeats > 1000000)
    st = DNN_FAIL(err, DNN_EINVAL,
                  "[training] steps = %zu: a mixed run of at most 1000000 "
                  "steps (set --repeats)",
                  ep.repeats);
  /* Every rank got this far with the same status (same files). */
  if (st == DNN_OK)
    st = dnn_meas_exec_mixed_alloc(sz, n, &ep, mpi, &mx, err);
  bool rt = st == DNN_OK && realtime_on(vo->realtime, root);
  if (st == DNN_OK)
    st = dnn_meas_exec_mixed_run(mx, &r, per, err);
  realtime_off(rt);
  alarm(0);
  if (st == DNN_OK && root) {
    mixed_run run = {pred, ms, mx, &r, per, &ep, ranks, vo->threads};
    if (vo->format == CLI_FORMAT_JSON)
      *rc = cli_print_json(mixed_json(w, &run));
    else
      mixed_table(w, &run);
  }
  dnn_meas_exec_mixed_free(mx);
  for (size_t k = 0; ms && k < n; k++)
    dnn_net_free(ms[k].net);
  dnn_free(ms);
  dnn_free(sz);
  dnn_free(per);
  return st;
}

static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] =
      "dnnsim: validate: the run exceeded --timeout (a rank hung or died); "
      "aborting\n";
  ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)w;
  _exit(CLI_EXIT_RUNTIME);
}

static bool parse_count(const char *s, size_t *out, bool zero_ok) {
  char *end;
  errno = 0;
  if (s[0] < '0' || s[0] > '9')
    return false;
  unsigned long v = strtoul(s, &end, 10);
  if (end == s || *end || errno || (!zero_ok && v == 0) || v > 1000000)
    return false;
  *out = (size_t)v;
  return true;
}

int cli_cmd_validate(int argc, char **argv) {
  cli_scn_opts o = {.engine = -1};
  size_t repeats = 10, warmup = 2, threads = 1, timeout = 600;
  int device = -1; /* auto, else a dnn_meas_exec_device */
  bool layers = false, realtime = false, accumulate = true;
  bool repeats_set = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      help();
      return CLI_EXIT_OK;
    } else if (strcmp(a, "--repeats") == 0 && v) {
      if (!parse_count(v, &repeats, false))
        return cli_usage_error("validate", "--repeats needs a positive "
                                           "integer");
      repeats_set = true;
      i++;
    } else if (strcmp(a, "--warmup") == 0 && v) {
      if (!parse_count(v, &warmup, true))
        return cli_usage_error("validate", "--warmup needs an integer >= 0");
      i++;
    } else if (strcmp(a, "--threads") == 0 && v) {
      if (!parse_count(v, &threads, false))
        return cli_usage_error("validate", "--threads needs a positive "
                                           "integer");
      i++;
    } else if (strcmp(a, "--timeout") == 0 && v) {
      if (!parse_count(v, &timeout, true))
        return cli_usage_error("validate", "--timeout needs seconds");
      i++;
    } else if (strcmp(a, "--device") == 0 && v) {
      if (strcmp(v, "auto") == 0)
        device = -1;
      else if (strcmp(v, "cpu") == 0)
        device = DNN_MEAS_EXEC_CPU;
      else if (strcmp(v, "gpu") == 0)
        device = DNN_MEAS_EXEC_GPU;
      else
        return cli_usage_error("validate",
                               "--device must be auto, cpu or "
                               "gpu, not '%s'",
                               v);
      i++;
    } else if (strcmp(a, "--layers") == 0) {
      layers = true;
    } else if (strcmp(a, "--realtime") == 0) {
      realtime = true;
    } else if (strcmp(a, "--no-accumulate") == 0) {
      accumulate = false;
    } else {
      int r = cli_scn_opt("validate", argc, argv, &i, &o);
      if (r < 0)
        return CLI_EXIT_USAGE;
      if (r == 0)
        return cli_usage_error("validate", "unknown option '%s'", a);
    }
  }
  if (o.path == NULL)
    return cli_usage_error("validate", "a scenario file is required");
  if (o.format == CLI_FORMAT_CSV)
    return cli_usage_error("validate", "--format must be table or json");

  /* coll_tuned reads this at MPI_Init (to force the allreduce algorithm);
   * an mpirun --mca setting wins. */
  setenv("OMPI_MCA_coll_tuned_use_dynamic_rules", "1", 0);
  dnn_error err;
  dnn_error_clear(&err);
  dnn_meas_mpi *mpi = NULL;
  dnn_status st = dnn_meas_mpi_init(NULL, NULL, &mpi, &err);
  if (st == DNN_EUNSUPPORTED) {
    st = DNN_OK; /* no MPI in this build: one process */
    dnn_error_clear(&err);
  }
  if (st)
    return cli_fail(&err, st);
  size_t rank = mpi ? dnn_meas_mpi_rank(mpi) : 0;
  size_t ranks = mpi ? dnn_meas_mpi_size(mpi) : 1;
  bool root = rank == 0;
  if (timeout) {
    signal(SIGALRM, on_alarm);
    alarm((unsigned)timeout);
  }

  cli_world w;
  memset(&w, 0, sizeof w);
  dnn_prediction pred;
  memset(&pred, 0, sizeof pred);
  dnn_meas_exec *x = NULL;
  dnn_meas_exec_result res;
  memset(&res, 0, sizeof res);
  size_t first[1024];
  dnn_meas_exec_params ep = dnn_meas_exec_default_params();
  st = cli_world_load(&o, &w, &err);
  if (st == DNN_OK)
    st = check_supported(&w.scn, &err);
  dnn_strat_input in = cli_world_input(&w);
  if (st == DNN_OK)
    st = dnn_strat_predict(&in, &pred, &err);
  size_t need = st == DNN_OK
                    ? dnn_scn_data_degree(&w.scn) * w.scn.parallelism.pipeline
                    : 0;
  if (st == DNN_OK && need != ranks) {
    char where[DNN_SCN_PATH_MAX + 64];
    st = DNN_FAIL(
        &err, DNN_EINVAL,
        "%s: the scenario has data x pipeline = %zu x %zu = %zu devices "
        "(%zu nodes x %zu devices per node), but %zu MPI rank%s running: "
        "start it with mpirun -np %zu, or change the scenario",
        dnn_scn_key_origin(&w.scn, "cluster", "devices_per_node", where,
                           sizeof where),
        dnn_scn_data_degree(&w.scn), w.scn.parallelism.pipeline, need,
        w.scn.cluster.nodes, w.scn.cluster.devices_per_node, ranks,
        ranks == 1 ? " is" : "s are", need);
  }
  if (st == DNN_OK &&
      w.scn.parallelism.pipeline > (sizeof first / sizeof first[0]))
    st = DNN_FAIL(&err, DNN_EUNSUPPORTED, "at most %zu pipeline stages",
                  (sizeof first / sizeof first[0]));
  if (st == DNN_OK) {
    ep = exec_params(&w.scn, &pred);
    ep.threads = threads;
    ep.device = device >= 0 ? (dnn_meas_exec_device)device
                : strcmp(dnn_hw_get(w.hw)->kind, "gpu") == 0
                    ? DNN_MEAS_EXEC_GPU
                    : DNN_MEAS_EXEC_CPU;
    ep.warmup = warmup;
    ep.repeats = repeats;
    ep.accumulate = accumulate;
    if (ep.pipeline > 1 && (st = stage_cut(&in, ep.pipeline, first, &err)))
      ;
    else if (ep.pipeline > 1)
      ep.stage_first = first;
  }
  /* Every rank got this far with the same status (same files). */
  if (st) {
    cli_world_free(&w);
    dnn_meas_mpi_finalize(mpi);
    return root ? cli_fail(&err, st) : cli_exit_code(st);
  }
  dnn_meas_sysinfo si;
  dnn_meas_sysinfo_get(&si);
  if (root && ep.device == DNN_MEAS_EXEC_CPU && ranks * threads > si.cpus)
    fprintf(stderr,
            "dnnsim: validate: note: %zu ranks x %zu thread%s share %zu "
            "CPUs if they run on this host: each rank then gets part of a "
            "core, and its profile must say so (docs/validation.md)\n",
            ranks, threads, threads == 1 ? "" : "s", si.cpus);
  int rc = CLI_EXIT_OK;
  if (w.scn.training.n_sizes > 0) {
    vopts vo = {repeats, warmup,   threads,    ep.device, repeats_set,
                layers,  realtime, accumulate, o.format};
    st = validate_mixed(&w, &pred, mpi, &vo, ranks, root, &rc, &err);
    if (st)
      rc = root ? cli_fail(&err, st) : cli_exit_code(st);
    cli_world_free(&w);
    dnn_meas_mpi_finalize(mpi);
    return rc;
  }
  st = dnn_meas_exec_alloc(w.net, &ep, mpi, &x, &err);
  bool rt_on = st == DNN_OK && realtime_on(realtime, root);
  if (st == DNN_OK)
    st = dnn_meas_exec_run(x, &res, &err);
  realtime_off(rt_on);
  alarm(0);
  if (st) {
    rc = root ? cli_fail(&err, st) : cli_exit_code(st);
  } else if (root) {
    /* The loss on one fixed batch, where rank 0's stage has the loss
     * layer: a check that the kernels train (docs/validation.md). */
    double lf = (double)NAN, ll = (double)NAN;
    dnn_error le;
    bool has_loss = dnn_meas_exec_loss(x, &lf, &ll, &le) == DNN_OK &&
                    isfinite(lf) && isfinite(ll);
    if (o.format == CLI_FORMAT_JSON) {
      json_t *j = result_json(&w, x, &res, &pred, &ep, threads);
      if (has_loss && j) {
        json_t *lo = json_object();
        json_object_set_new(lo, "first", json_real(lf));
        json_object_set_new(lo, "last", json_real(ll));
        json_object_set_new(j, "loss", lo);
      }
      rc = cli_print_json(j);
    } else {
      print_table(&w, x, &res, &pred, &ep, threads, layers);
      if (has_loss)
        printf("training check: loss %.4g after the first iteration, %.4g "
               "after the last (one fixed batch: it falls when the kernels "
               "train)\n",
               lf, ll);
    }
  }
  dnn_meas_exec_free(x);
  cli_world_free(&w);
  dnn_meas_mpi_finalize(mpi);
  return rc;
}
