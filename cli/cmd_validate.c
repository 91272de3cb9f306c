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
      "random data, one MPI rank per device (N = data x pipeline), and\n"
      "prints the measured time per iteration and per component next to\n"
      "the prediction of the same scenario, with the relative error\n"
      "(predicted - measured) / measured. Use a profile calibrated on this\n"
      "machine ('dnnsim calibrate cpu', with the same --threads) in\n"
      "[hardware] profile.\n"
      "\n"
      "Options:\n"
      "  -s, --set SECTION.KEY=VALUE   override a scenario key (repeatable)\n"
      "  -f, --format table|json       output format (default table)\n"
      "  --repeats N                   timed iterations (default 10)\n"
      "  --warmup N                    untimed iterations first (default 2)\n"
      "  --threads N                   oneDNN threads per rank (default 1)\n"
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
      "CNNs in fp32. docs/validation.md explains what is measured.\n"
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
  return p;
}

/*
 * What the scenario's comm profile fits say the gradient allreduces of
 * this rank take (the allreduce steps' buckets, the prediction's
 * algorithm, the fit at the replicas' count or the nearest): a diagnostic
 * of the link error while predictions do not read comm_profile. NaN when
 * there is no profile or no fit.
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
  printf("\n%zu MPI rank%s, %zu oneDNN thread%s each; %zu timed iterations "
         "after %zu warm-up\n",
         m->ranks, m->ranks == 1 ? "" : "s", threads, threads == 1 ? "" : "s",
         m->iteration.samples, ep->warmup);
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
    printf("  the gradient allreduces by [cluster] comm_profile's fits take "
           "%s (predictions do not read it yet)\n",
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
  json_object_set_new(o, "warmup", json_integer((json_int_t)ep->warmup));
  json_object_set_new(o, "accumulate", json_boolean(ep->accumulate));
  json_object_set_new(o, "profile", json_string(w->scn.hardware.profile));

  json_t *me = json_object();
  json_object_set_new(me, "iteration_s", num(m->iteration.median_s));
  json_object_set_new(me, "ci_lo_s", num(m->iteration.ci_lo_s));
  json_object_set_new(me, "ci_hi_s", num(m->iteration.ci_hi_s));
  json_object_set_new(me, "confidence", num(m->iteration.confidence));
  json_object_set_new(me, "min_s", num(m->iteration.min_s));
  json_object_set_new(me, "max_s", num(m->iteration.max_s));
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
  json_object_set_new(o, "measured", me);

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
/* The command                                                              */
/* ------------------------------------------------------------------------ */

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
  bool layers = false, realtime = false, accumulate = true;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      help();
      return CLI_EXIT_OK;
    } else if (strcmp(a, "--repeats") == 0 && v) {
      if (!parse_count(v, &repeats, false))
        return cli_usage_error("validate", "--repeats needs a positive "
                                           "integer");
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
  if (root && ranks * threads > si.cpus)
    fprintf(stderr,
            "dnnsim: validate: note: %zu ranks x %zu thread%s share %zu "
            "CPUs if they run on this host: each rank then gets part of a "
            "core, and its profile must say so (docs/validation.md)\n",
            ranks, threads, threads == 1 ? "" : "s", si.cpus);
  st = dnn_meas_exec_alloc(w.net, &ep, mpi, &x, &err);
  /* Real-time priority only around the run: MPI start-up and shutdown
   * need mpirun's daemons, which real-time ranks would starve. */
  struct sched_param rt = {.sched_priority = 10},
                     normal = {.sched_priority = 0};
  bool rt_on = false;
  if (st == DNN_OK && realtime) {
    rt_on = sched_setscheduler(0, SCHED_FIFO, &rt) == 0;
    if (!rt_on && root)
      fprintf(stderr,
              "dnnsim: validate: note: --realtime: cannot set "
              "SCHED_FIFO (%s); measuring at normal priority\n",
              strerror(errno));
  }
  if (st == DNN_OK)
    st = dnn_meas_exec_run(x, &res, &err);
  if (rt_on)
    sched_setscheduler(0, SCHED_OTHER, &normal);
  alarm(0);
  int rc = CLI_EXIT_OK;
  if (st) {
    rc = root ? cli_fail(&err, st) : cli_exit_code(st);
  } else if (root) {
    if (o.format == CLI_FORMAT_JSON)
      rc = cli_print_json(result_json(&w, x, &res, &pred, &ep, threads));
    else
      print_table(&w, x, &res, &pred, &ep, threads, layers);
  }
  dnn_meas_exec_free(x);
  cli_world_free(&w);
  dnn_meas_mpi_finalize(mpi);
  return rc;
}
