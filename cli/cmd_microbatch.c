/*
 * dnnsim microbatch: plans micro-batched convolutions (µ-cuDNN,
 * docs/models.md §10) for a scenario's network and prints, per convolution
 * kernel (layer and pass), the chosen division into micro-batches and
 * algorithms beside the undivided fastest algorithm that fits the
 * per-layer workspace limit, then the speedup of the convolutions, of the
 * network's forward and backward compute, and of the predicted iteration.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MIB (1024.0 * 1024.0)

static void help(void) {
  printf(
      "usage: dnnsim microbatch SCENARIO.ini [OPTIONS]\n"
      "\n"
      "Divides each convolution's mini-batch into micro-batches so that\n"
      "faster algorithms fit the workspace limit (u-cuDNN), and compares\n"
      "with the undivided fastest algorithm that fits. The batch is the\n"
      "scenario's per-replica batch (model.batch / data degree).\n"
      "\n"
      "Options:\n"
      "  --workspace SIZE         per-layer limit, e.g. 8MiB, 64MiB, 1GiB\n"
      "                           (default: [hardware] workspace_MB)\n"
      "  --total-workspace SIZE   network-wide limit of --solver ilp\n"
      "                           (default: [training] workspace_MB, or the\n"
      "                           per-layer limit x convolution layers)\n"
      "  --policy P               micro-batch sizes: undivided, powerOfTwo or\n"
      "                           all (default: [training] mb_policy)\n"
      "  --solver dp|ilp|none     dp: fastest division per kernel under the\n"
      "                           per-layer limit (workspace reuse); ilp: one\n"
      "                           buffer per kernel within the total (GLPK);\n"
      "                           none: undivided (default: [training]\n"
      "                           micro_batching, or dp when it is none)\n"
      "  --ilp-gap REL            stop the ilp within REL of the optimum\n"
      "                           (default 1e-4; 0: exact, can take minutes\n"
      "                           with --policy all)\n"
      "  -s, --set SECTION.KEY=VALUE   override a scenario key (repeatable)\n"
      "  -f, --format table|csv|json   output format (default table)\n"
      "  -h, --help               this help\n"
      "\n"
      "Speedups: of the convolutions (JSON conv_speedup), of forward +\n"
      "backward over all layers (speedup), and of the predicted iteration\n"
      "with the optimizer and communication unchanged (iteration_speedup).\n"
      "\n"
      "Example:\n"
      "  dnnsim microbatch scenarios/ucudnn-alexnet-p100-64mib.ini "
      "--workspace 8MiB --policy all\n");
}

static const char *solver_name(dnn_microbatching s) {
  return s == DNN_MICROBATCHING_ILP  ? "ilp"
         : s == DNN_MICROBATCHING_DP ? "dp"
                                     : "none";
}

/* Everything the output shows. */
typedef struct report {
  const cli_world *w;
  const dnn_mb_plan *plan;
  dnn_mb_params params;
  dnn_mb_summary sum;
  size_t batch;
  double net_base_s, net_s;   /* forward + backward of every layer */
  double iter_base_s, iter_s; /* predicted iteration, or NAN */
} report;

static double ratio(double a, double b) {
  return b > 0 ? a / b : 1.0;
}

static void print_table(const report *r) {
  const dnn_scenario *scn = &r->w->scn;
  char a[64], b[64], c[64], d[64], div[512];
  printf("u-cuDNN plan: %s, batch %zu per replica, %s on %s\n",
         dnn_net_name(r->w->net), r->batch, dnn_dtype_name(scn->model.dtype),
         dnn_hw_get(r->w->hw)->name);
  printf("solver %s, policy %s, per-layer workspace %s",
         solver_name(r->params.solver), dnn_mb_policy_name(r->params.policy),
         cli_fmt_bytes(r->params.layer_workspace_bytes, a, sizeof a));
  if (r->params.solver == DNN_MICROBATCHING_ILP)
    printf(", network-wide %s",
           cli_fmt_bytes(r->sum.total_limit_bytes, b, sizeof b));
  printf("\n\n%-22s %-11s %-22s %10s %10s | %10s %10s %7s  %s\n", "layer",
         "pass", "undivided algorithm", "ws", "time", "ws", "time", "speedup",
         "micro-batches");
  size_t n = dnn_mb_plan_kernel_count(r->plan);
  for (size_t k = 0; k < n; k++) {
    const dnn_mb_kernel *kn = dnn_mb_plan_kernel(r->plan, k);
    const dnn_layer *l = dnn_net_layer(r->w->net, kn->layer);
    printf("%-22s %-11s %-22s %10s %10s | %10s %10s %6.2fx  %s\n", l->name,
           dnn_pass_name(kn->pass),
           dnn_conv_algo_name((dnn_conv_algo)kn->baseline.parts[0].algo),
           cli_fmt_bytes(kn->baseline.workspace_bytes, a, sizeof a),
           cli_fmt_time(kn->baseline.time_s, b, sizeof b),
           cli_fmt_bytes(kn->chosen.workspace_bytes, c, sizeof c),
           cli_fmt_time(kn->chosen.time_s, d, sizeof d),
           ratio(kn->baseline.time_s, kn->chosen.time_s),
           dnn_mb_config_format(&kn->chosen, div, sizeof div));
  }
  printf("\nconvolutions:       %10s -> %10s  speedup %.3fx\n",
         cli_fmt_time(r->sum.baseline_s, a, sizeof a),
         cli_fmt_time(r->sum.chosen_s, b, sizeof b), r->sum.speedup);
  printf("forward + backward: %10s -> %10s  speedup %.3fx (all layers)\n",
         cli_fmt_time(r->net_base_s, a, sizeof a),
         cli_fmt_time(r->net_s, b, sizeof b), ratio(r->net_base_s, r->net_s));
  if (isfinite(r->iter_base_s))
    printf("iteration:          %10s -> %10s  speedup %.3fx (optimizer and "
           "communication unchanged)\n",
           cli_fmt_time(r->iter_base_s, a, sizeof a),
           cli_fmt_time(r->iter_s, b, sizeof b),
           ratio(r->iter_base_s, r->iter_s));
  printf("workspace: largest %s (undivided %s), sum over kernels %s\n",
         cli_fmt_bytes(r->sum.workspace_max_bytes, a, sizeof a),
         cli_fmt_bytes(r->sum.baseline_workspace_max_bytes, b, sizeof b),
         cli_fmt_bytes(r->sum.workspace_sum_bytes, c, sizeof c));
}

static void print_csv(const report *r) {
  char div[512];
  printf("layer,pass,baseline_algo,baseline_workspace_bytes,baseline_s,"
         "workspace_bytes,time_s,speedup,microbatches,division\n");
  size_t n = dnn_mb_plan_kernel_count(r->plan);
  for (size_t k = 0; k < n; k++) {
    const dnn_mb_kernel *kn = dnn_mb_plan_kernel(r->plan, k);
    printf("%s,%s,%s,%.9g,%.9g,%.9g,%.9g,%.6g,%zu,\"%s\"\n",
           dnn_net_layer(r->w->net, kn->layer)->name, dnn_pass_name(kn->pass),
           dnn_conv_algo_name((dnn_conv_algo)kn->baseline.parts[0].algo),
           kn->baseline.workspace_bytes, kn->baseline.time_s,
           kn->chosen.workspace_bytes, kn->chosen.time_s,
           ratio(kn->baseline.time_s, kn->chosen.time_s),
           kn->chosen.n_microbatches,
           dnn_mb_config_format(&kn->chosen, div, sizeof div));
  }
}

static json_t *config_json(const dnn_mb_config *c) {
  json_t *parts = json_array();
  for (size_t i = 0; i < c->n_parts; i++) {
    const dnn_mb_part *p = &c->parts[i];
    json_t *o = json_object();
    json_object_set_new(o, "count", json_integer((json_int_t)p->count));
    json_object_set_new(o, "batch", json_integer((json_int_t)p->batch));
    json_object_set_new(
        o, "algo", json_string(dnn_conv_algo_name((dnn_conv_algo)p->algo)));
    json_object_set_new(o, "time_s", json_real(p->time_s));
    json_object_set_new(o, "workspace_bytes", json_real(p->workspace_bytes));
    json_array_append_new(parts, o);
  }
  return parts;
}

static int print_json(const report *r) {
  const dnn_scenario *scn = &r->w->scn;
  char div[512];
  json_t *j = json_object();
  json_t *layers = json_array();
  if (!j || !layers) {
    json_decref(j);
    json_decref(layers);
    return cli_print_json(NULL);
  }
  json_object_set_new(j, "scenario", json_string(scn->path));
  json_object_set_new(j, "network", json_string(dnn_net_name(r->w->net)));
  json_object_set_new(j, "profile", json_string(dnn_hw_get(r->w->hw)->name));
  json_object_set_new(j, "batch", json_integer((json_int_t)r->batch));
  json_object_set_new(j, "dtype",
                      json_string(dnn_dtype_name(scn->model.dtype)));
  json_object_set_new(j, "solver", json_string(solver_name(r->params.solver)));
  json_object_set_new(j, "policy",
                      json_string(dnn_mb_policy_name(r->params.policy)));
  json_object_set_new(j, "layer_workspace_bytes",
                      json_real(r->params.layer_workspace_bytes));
  if (r->params.solver == DNN_MICROBATCHING_ILP)
    json_object_set_new(j, "total_workspace_bytes",
                        json_real(r->sum.total_limit_bytes));
  json_object_set_new(j, "speedup", json_real(ratio(r->net_base_s, r->net_s)));
  json_object_set_new(j, "conv_speedup", json_real(r->sum.speedup));
  json_object_set_new(j, "conv_baseline_s", json_real(r->sum.baseline_s));
  json_object_set_new(j, "conv_s", json_real(r->sum.chosen_s));
  json_object_set_new(j, "compute_baseline_s", json_real(r->net_base_s));
  json_object_set_new(j, "compute_s", json_real(r->net_s));
  if (isfinite(r->iter_base_s)) {
    json_object_set_new(j, "iteration_baseline_s", json_real(r->iter_base_s));
    json_object_set_new(j, "iteration_s", json_real(r->iter_s));
    json_object_set_new(j, "iteration_speedup",
                        json_real(ratio(r->iter_base_s, r->iter_s)));
  }
  json_object_set_new(j, "workspace_sum_bytes",
                      json_real(r->sum.workspace_sum_bytes));
  json_object_set_new(j, "workspace_max_bytes",
                      json_real(r->sum.workspace_max_bytes));
  size_t n = dnn_mb_plan_kernel_count(r->plan);
  for (size_t k = 0; k < n; k++) {
    const dnn_mb_kernel *kn = dnn_mb_plan_kernel(r->plan, k);
    json_t *o = json_object();
    json_object_set_new(o, "layer",
                        json_string(dnn_net_layer(r->w->net, kn->layer)->name));
    json_object_set_new(o, "pass", json_string(dnn_pass_name(kn->pass)));
    json_object_set_new(
        o, "division",
        json_string(dnn_mb_config_format(&kn->chosen, div, sizeof div)));
    json_object_set_new(o, "microbatches",
                        json_integer((json_int_t)kn->chosen.n_microbatches));
    json_object_set_new(o, "parts", config_json(&kn->chosen));
    json_object_set_new(o, "time_s", json_real(kn->chosen.time_s));
    json_object_set_new(o, "workspace_bytes",
                        json_real(kn->chosen.workspace_bytes));
    json_object_set_new(o, "baseline_algo",
                        json_string(dnn_conv_algo_name(
                            (dnn_conv_algo)kn->baseline.parts[0].algo)));
    json_object_set_new(o, "baseline_s", json_real(kn->baseline.time_s));
    json_object_set_new(o, "baseline_workspace_bytes",
                        json_real(kn->baseline.workspace_bytes));
    json_object_set_new(
        o, "speedup", json_real(ratio(kn->baseline.time_s, kn->chosen.time_s)));
    json_object_set_new(o, "candidates",
                        json_integer((json_int_t)kn->n_candidates));
    json_array_append_new(layers, o);
  }
  json_object_set_new(j, "layers", layers);
  return cli_print_json(j);
}

/* Forward + backward time of every layer with undivided convolutions
 * (the predictor's per-layer model) and the part of it in convolutions. */
static void network_times(cli_world *w, size_t batch, double *all_s,
                          double *conv_s) {
  size_t n = dnn_net_layer_count(w->net);
  dnn_layer_time *t = calloc(n ? n : 1, sizeof *t);
  *all_s = *conv_s = NAN;
  if (t == NULL)
    return;
  dnn_strat_input in = cli_world_input(w);
  dnn_strat_layer_times(&in, batch, t);
  *all_s = *conv_s = 0;
  for (size_t i = 0; i < n; i++)
    for (int p = 0; p < DNN_PASS_COUNT; p++) {
      *all_s += t[i].time_s[p];
      if (dnn_net_layer(w->net, i)->kind == DNN_LAYER_CONV2D)
        *conv_s += t[i].time_s[p];
    }
  free(t);
}

int cli_cmd_microbatch(int argc, char **argv) {
  cli_scn_opts o = {.engine = -1};
  const char *ws_text = NULL, *total_text = NULL, *policy_text = NULL;
  const char *solver_text = NULL, *gap_text = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      help();
      return CLI_EXIT_OK;
    }
    const char **slot = strcmp(a, "--workspace") == 0         ? &ws_text
                        : strcmp(a, "--total-workspace") == 0 ? &total_text
                        : strcmp(a, "--policy") == 0          ? &policy_text
                        : strcmp(a, "--solver") == 0          ? &solver_text
                        : strcmp(a, "--ilp-gap") == 0         ? &gap_text
                                                              : NULL;
    if (slot) {
      if (i + 1 >= argc)
        return cli_usage_error("microbatch", "%s needs a value", a);
      *slot = argv[++i];
      continue;
    }
    int r = cli_scn_opt("microbatch", argc, argv, &i, &o);
    if (r < 0)
      return CLI_EXIT_USAGE;
    if (r == 0)
      return cli_usage_error("microbatch", "unknown option '%s'", a);
  }
  if (o.path == NULL)
    return cli_usage_error("microbatch", "a scenario file is required");

  dnn_error err;
  dnn_error_clear(&err);
  dnn_mb_params p = dnn_mb_default_params();
  double ws = NAN, total = NAN;
  if (ws_text && dnn_mb_size_parse(ws_text, &ws, &err))
    return cli_usage_error("microbatch", "--workspace: %s", err.msg);
  if (total_text && dnn_mb_size_parse(total_text, &total, &err))
    return cli_usage_error("microbatch", "--total-workspace: %s", err.msg);
  if (policy_text && dnn_mb_policy_parse(policy_text, &p.policy, &err))
    return cli_usage_error("microbatch", "--policy: %s", err.msg);
  if (gap_text) {
    char *end;
    p.ilp_gap = strtod(gap_text, &end);
    if (end == gap_text || *end != '\0' || !(p.ilp_gap >= 0 && p.ilp_gap < 1))
      return cli_usage_error("microbatch",
                             "--ilp-gap needs a number in [0, 1), not '%s'",
                             gap_text);
  }
  bool solver_set = solver_text != NULL;
  if (solver_text) {
    if (strcmp(solver_text, "dp") == 0)
      p.solver = DNN_MICROBATCHING_DP;
    else if (strcmp(solver_text, "ilp") == 0)
      p.solver = DNN_MICROBATCHING_ILP;
    else if (strcmp(solver_text, "none") == 0)
      p.solver = DNN_MICROBATCHING_NONE;
    else
      return cli_usage_error("microbatch",
                             "--solver must be dp, ilp or none, not '%s'",
                             solver_text);
  }

  cli_world w;
  dnn_status st = cli_world_load(&o, &w, &err);
  if (st) {
    cli_world_free(&w);
    return cli_fail(&err, st);
  }
  dnn_scenario *scn = &w.scn;
  if (!solver_set && scn->training.micro_batching != DNN_MICROBATCHING_NONE)
    p.solver = scn->training.micro_batching;
  if (!policy_text)
    p.policy = scn->training.mb_policy;
  if (ws_text)
    scn->hardware.workspace_MB = ws / MIB; /* the baseline's limit too */
  p.layer_workspace_bytes = scn->hardware.workspace_MB * MIB;
  p.total_workspace_bytes =
      total_text ? total : scn->training.workspace_MB * MIB;
  size_t d = dnn_scn_data_degree(scn);
  size_t batch = d > 0 ? scn->model.batch / d : scn->model.batch;

  report r;
  memset(&r, 0, sizeof r);
  r.w = &w;
  r.params = p;
  r.batch = batch;
  dnn_mb_plan *plan = NULL;
  st = dnn_mb_plan_build(w.net, w.hw, batch, scn->model.dtype, &p, &plan, &err);
  if (st) {
    cli_world_free(&w);
    return cli_fail(&err, st);
  }
  r.plan = plan;
  dnn_mb_plan_summary(plan, &r.sum);

  /* The baseline everywhere is undivided convolutions. */
  scn->training.micro_batching = DNN_MICROBATCHING_NONE;
  double all_s, conv_s;
  network_times(&w, batch, &all_s, &conv_s);
  r.net_base_s = all_s - conv_s + r.sum.baseline_s;
  r.net_s = all_s - conv_s + r.sum.chosen_s;
  r.iter_base_s = r.iter_s = NAN;
  dnn_strat_input in = cli_world_input(&w);
  dnn_prediction pred;
  dnn_error perr;
  if (dnn_strat_predict(&in, &pred, &perr) == DNN_OK) {
    r.iter_base_s = pred.iteration_s - conv_s + r.sum.baseline_s;
    r.iter_s = pred.iteration_s - conv_s + r.sum.chosen_s;
  }

  int rc = CLI_EXIT_OK;
  switch (o.format) {
  case CLI_FORMAT_TABLE:
    print_table(&r);
    break;
  case CLI_FORMAT_CSV:
    print_csv(&r);
    break;
  case CLI_FORMAT_JSON:
    rc = print_json(&r);
    break;
  }
  dnn_mb_plan_free(plan);
  cli_world_free(&w);
  return rc;
}
