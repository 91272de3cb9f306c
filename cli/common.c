/*
 * Shared CLI machinery: errors and exit codes, the options every scenario
 * command takes (--set, --format, --engine), resolving a scenario into a
 * network, profile and cluster, and rendering predictions as a table, CSV
 * or JSON (jansson).
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cli_exit_code(dnn_status st) {
  switch (st) {
  case DNN_OK:
    return CLI_EXIT_OK;
  case DNN_EPARSE:
  case DNN_ERANGE:
  case DNN_EINVAL:
  case DNN_ENOTFOUND:
  case DNN_ENOFIT:
    return CLI_EXIT_INPUT;
  case DNN_ENODEVICE:
  case DNN_EUNSUPPORTED:
    return CLI_EXIT_UNAVAILABLE;
  default:
    return CLI_EXIT_RUNTIME;
  }
}

int cli_fail(const dnn_error *err, dnn_status st) {
  if (err && err->msg[0])
    fprintf(stderr, "dnnsim: %s\n", err->msg);
  else
    fprintf(stderr, "dnnsim: %s\n", dnn_strerror(st));
  return cli_exit_code(st);
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "dnnsim %s: ", cmd);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\nRun 'dnnsim %s --help' for its options.\n", cmd);
  va_end(ap);
  return CLI_EXIT_USAGE;
}

bool cli_parse_format(const char *s, cli_format *out) {
  if (strcmp(s, "table") == 0)
    *out = CLI_FORMAT_TABLE;
  else if (strcmp(s, "csv") == 0)
    *out = CLI_FORMAT_CSV;
  else if (strcmp(s, "json") == 0)
    *out = CLI_FORMAT_JSON;
  else
    return false;
  return true;
}

/* The value of option argv[*i]: "--opt=value" or "--opt value". */
static const char *opt_value(const char *cmd, const char *opt, int argc,
                             char **argv, int *i) {
  const char *a = argv[*i];
  size_t n = strlen(opt);
  if (strncmp(a, opt, n) == 0 && a[n] == '=')
    return a + n + 1;
  if (*i + 1 >= argc) {
    cli_usage_error(cmd, "%s needs a value", opt);
    return NULL;
  }
  return argv[++*i];
}

static bool is_opt(const char *a, const char *opt) {
  size_t n = strlen(opt);
  return strncmp(a, opt, n) == 0 && (a[n] == '\0' || a[n] == '=');
}

int cli_scn_opt(const char *cmd, int argc, char **argv, int *i,
                cli_scn_opts *o) {
  const char *a = argv[*i];
  if (is_opt(a, "--set") || strcmp(a, "-s") == 0) {
    const char *v = opt_value(cmd, "--set", argc, argv, i);
    if (v == NULL)
      return -1;
    if (o->n_sets == CLI_MAX_SETS) {
      cli_usage_error(cmd, "at most %d --set options", CLI_MAX_SETS);
      return -1;
    }
    o->sets[o->n_sets++] = v;
    return 1;
  }
  if (is_opt(a, "--format") || strcmp(a, "-f") == 0) {
    const char *v = opt_value(cmd, "--format", argc, argv, i);
    if (v == NULL)
      return -1;
    if (!cli_parse_format(v, &o->format)) {
      cli_usage_error(cmd, "--format must be table, csv or json, not '%s'", v);
      return -1;
    }
    return 1;
  }
  if (is_opt(a, "--engine")) {
    const char *v = opt_value(cmd, "--engine", argc, argv, i);
    if (v == NULL)
      return -1;
    if (strcmp(v, "analytic") == 0)
      o->engine = DNN_ENGINE_ANALYTIC;
    else if (strcmp(v, "des") == 0)
      o->engine = DNN_ENGINE_DES;
    else if (strcmp(v, "auto") == 0)
      o->engine = DNN_ENGINE_AUTO;
    else {
      cli_usage_error(cmd, "--engine must be auto, analytic or des, not '%s'",
                      v);
      return -1;
    }
    return 1;
  }
  if (a[0] == '-' && a[1] != '\0')
    return 0;
  if (o->path) {
    cli_usage_error(cmd, "one scenario file expected, got '%s' and '%s'",
                    o->path, a);
    return -1;
  }
  o->path = a;
  return 1;
}

dnn_status cli_scn_load(const cli_scn_opts *o, dnn_scenario *scn,
                        dnn_error *err) {
  dnn_scn_init(scn);
  dnn_status st = dnn_scn_load(o->path, scn, err);
  for (size_t i = 0; st == DNN_OK && i < o->n_sets; i++)
    st = dnn_scn_set(scn, o->sets[i], err);
  if (st == DNN_OK && o->engine >= 0)
    scn->engine = (dnn_engine)o->engine;
  if (st == DNN_OK)
    st = dnn_scn_validate(scn, err);
  return st;
}

dnn_status cli_world_load(const cli_scn_opts *o, cli_world *w, dnn_error *err) {
  memset(w, 0, sizeof *w);
  dnn_status st = cli_scn_load(o, &w->scn, err);
  if (st == DNN_OK)
    st = cli_world_refresh(w, true, true, err);
  return st;
}

dnn_status cli_world_refresh(cli_world *w, bool net_changed, bool hw_changed,
                             dnn_error *err) {
  dnn_status st = DNN_OK;
  if (net_changed) {
    dnn_net_free(w->net);
    w->net = NULL;
    st = dnn_scn_build_net(&w->scn, 0, &w->net, err);
  }
  if (st == DNN_OK && hw_changed) {
    dnn_hw_free(w->hw);
    w->hw = NULL;
    st = dnn_scn_load_hw(&w->scn, &w->hw, err);
  }
  if (st == DNN_OK)
    st = dnn_scn_cluster(&w->scn, &w->cluster, err);
  return st;
}

void cli_world_free(cli_world *w) {
  dnn_net_free(w->net);
  dnn_hw_free(w->hw);
  w->net = NULL;
  w->hw = NULL;
}

dnn_strat_input cli_world_input(const cli_world *w) {
  dnn_strat_input in = {&w->scn, w->net, w->hw, w->cluster};
  return in;
}

/* ---- Formatting ------------------------------------------------------------
 */

const char *cli_fmt_time(double s, char *buf, size_t n) {
  if (!isfinite(s))
    snprintf(buf, n, "inf");
  else if (s >= 3600 * 48)
    snprintf(buf, n, "%.2f d", s / 86400);
  else if (s >= 3600)
    snprintf(buf, n, "%.2f h", s / 3600);
  else if (s >= 60)
    snprintf(buf, n, "%.2f min", s / 60);
  else if (s >= 1)
    snprintf(buf, n, "%.3f s", s);
  else if (s >= 1e-3)
    snprintf(buf, n, "%.3f ms", s * 1e3);
  else if (s > 0)
    snprintf(buf, n, "%.3f us", s * 1e6);
  else
    snprintf(buf, n, "0");
  return buf;
}

const char *cli_fmt_bytes(double b, char *buf, size_t n) {
  const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  size_t u = 0;
  while (fabs(b) >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
    b /= 1024;
    u++;
  }
  snprintf(buf, n, u ? "%.2f %s" : "%.0f %s", b, units[u]);
  return buf;
}

const char *cli_fmt_rate(double v, const char *unit, char *buf, size_t n) {
  const char *pre[] = {"", "K", "M", "G", "T", "P", "E"};
  size_t u = 0;
  while (fabs(v) >= 1000 && u + 1 < sizeof pre / sizeof pre[0]) {
    v /= 1000;
    u++;
  }
  snprintf(buf, n, "%.2f %s%s", v, pre[u], unit);
  return buf;
}

const char *cli_fmt_count(double v, char *buf, size_t n) {
  if (v >= 1e9)
    snprintf(buf, n, "%.2f G", v / 1e9);
  else if (v >= 1e6)
    snprintf(buf, n, "%.2f M", v / 1e6);
  else if (v >= 1e3)
    snprintf(buf, n, "%.1f k", v / 1e3);
  else
    snprintf(buf, n, "%.0f", v);
  return buf;
}

int cli_print_json(json_t *j) {
  if (j == NULL) {
    fprintf(stderr, "dnnsim: out of memory building JSON\n");
    return CLI_EXIT_RUNTIME;
  }
  int rc = json_dumpf(j, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
  json_decref(j);
  fputc('\n', stdout);
  return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_RUNTIME;
}

void cli_progress(size_t done, size_t total, const char *label) {
  if (!isatty(STDERR_FILENO) || total == 0)
    return;
  const int width = 30;
  int filled = (int)((double)done / (double)total * width);
  fprintf(stderr, "\r%s [", label);
  for (int i = 0; i < width; i++)
    fputc(i < filled ? '#' : '.', stderr);
  fprintf(stderr, "] %zu/%zu", done, total);
  if (done >= total)
    fputc('\n', stderr);
  fflush(stderr);
}

/* ---- Predictions ------------------------------------------------------------
 */

json_t *cli_prediction_json(const cli_world *w, const dnn_prediction *p) {
  json_t *j = json_object();
  json_t *bd = json_object();
  json_t *mem = json_object();
  if (!j || !bd || !mem) {
    json_decref(j);
    json_decref(bd);
    json_decref(mem);
    return NULL;
  }
  if (w) {
    json_object_set_new(j, "scenario", json_string(w->scn.path));
    json_object_set_new(j, "model", json_string(dnn_net_name(w->net)));
    json_object_set_new(j, "profile", json_string(dnn_hw_get(w->hw)->name));
    json_object_set_new(j, "global_batch",
                        json_integer((json_int_t)w->scn.model.batch));
    json_object_set_new(j, "dtype",
                        json_string(dnn_dtype_name(w->scn.model.dtype)));
  }
  json_object_set_new(j, "iteration_s", json_real(p->iteration_s));
  json_object_set_new(j, "throughput_samples_per_s",
                      json_real(p->throughput_samples_per_s));
  json_object_set_new(bd, "forward_s", json_real(p->breakdown.forward_s));
  json_object_set_new(bd, "backward_s", json_real(p->breakdown.backward_s));
  json_object_set_new(bd, "recompute_s", json_real(p->breakdown.recompute_s));
  json_object_set_new(bd, "comm_s", json_real(p->breakdown.comm_s));
  json_object_set_new(bd, "comm_exposed_s",
                      json_real(p->breakdown.comm_exposed_s));
  json_object_set_new(bd, "bubble_s", json_real(p->breakdown.bubble_s));
  json_object_set_new(bd, "optimizer_s", json_real(p->breakdown.optimizer_s));
  json_object_set_new(j, "breakdown", bd);
  json_object_set_new(j, "memory_per_device_bytes",
                      json_real(p->memory.total_bytes));
  json_object_set_new(mem, "weights_bytes", json_real(p->memory.weights_bytes));
  json_object_set_new(mem, "gradients_bytes",
                      json_real(p->memory.gradients_bytes));
  json_object_set_new(mem, "optimizer_bytes",
                      json_real(p->memory.optimizer_bytes));
  json_object_set_new(mem, "activations_bytes",
                      json_real(p->memory.activations_bytes));
  json_object_set_new(mem, "workspace_bytes",
                      json_real(p->memory.workspace_bytes));
  json_object_set_new(mem, "reserved_bytes",
                      json_real(p->memory.reserved_bytes));
  json_object_set_new(mem, "capacity_bytes",
                      json_real(p->memory.capacity_bytes));
  json_object_set_new(mem, "headroom_bytes",
                      json_real(p->memory.headroom_bytes));
  json_object_set_new(j, "memory", mem);
  if (w)
    json_object_set_new(j, "operators", cli_operators_json(w, p));
  json_object_set_new(j, "fits_in_memory", json_boolean(p->fits_in_memory));
  json_object_set_new(j, "flops_per_device_per_s",
                      json_real(p->flops_per_device_per_s));
  json_object_set_new(j, "devices", json_integer((json_int_t)p->devices));
  json_object_set_new(j, "data", json_integer((json_int_t)p->data));
  json_object_set_new(j, "tensor", json_integer((json_int_t)p->tensor));
  json_object_set_new(j, "pipeline", json_integer((json_int_t)p->pipeline));
  json_object_set_new(j, "local_batch",
                      json_integer((json_int_t)p->local_batch));
  json_object_set_new(j, "scaling_efficiency",
                      json_real(p->scaling_efficiency));
  json_object_set_new(j, "grad_bytes", json_real(p->grad_bytes));
  json_object_set_new(j, "allreduce",
                      json_string(dnn_comm_algo_name(p->allreduce)));
  json_object_set_new(
      j, "engine",
      json_string(p->engine == DNN_ENGINE_DES ? "des" : "analytic"));
  json_object_set_new(j, "techniques", cli_techniques_json(w, p));
  return j;
}

json_t *cli_techniques_json(const cli_world *w, const dnn_prediction *p) {
  const dnn_techniques *t = &p->techniques;
  json_t *o = json_object();
  if (o == NULL)
    return NULL;
  char buf[DNN_SCN_TEXT_MAX];
  json_object_set_new(o, "unique_samples_per_step",
                      json_real(t->unique_samples_per_step));
  json_object_set_new(o, "augmented_samples_per_step",
                      json_real(t->augmented_samples_per_step));
  json_object_set_new(o, "augmented_samples_per_s",
                      json_real(t->augmented_samples_per_s));
  json_object_set_new(o, "steps_per_epoch", json_real(t->steps_per_epoch));
  json_object_set_new(o, "epoch_s", json_real(t->epoch_s));
  json_object_set_new(o, "steps", json_real(t->steps));
  json_object_set_new(o, "time_to_steps_s", json_real(t->time_to_steps_s));
  json_object_set_new(o, "copies", json_integer((json_int_t)t->copies));
  json_object_set_new(o, "one_copy_iteration_s",
                      json_real(t->one_copy_iteration_s));
  json_object_set_new(o, "one_copy_scaling_efficiency",
                      json_real(t->one_copy_scaling_efficiency));
  /* The inference cost; named so that no key contains "inf" (scripts
   * and tests look for non-finite numbers that way). */
  json_object_set_new(o, "forward_only_s_per_sample",
                      json_real(t->inference_s_per_sample));
  if (w && dnn_scn_get_value(&w->scn, "training", "size_policy", buf,
                             sizeof buf) == DNN_OK)
    json_object_set_new(o, "size_policy", json_string(buf));
  json_t *sizes = json_array();
  for (size_t k = 0; sizes && k < t->n_sizes; k++) {
    const dnn_size_step *z = &t->sizes[k];
    json_t *e = json_object();
    json_object_set_new(e, "size", json_integer((json_int_t)z->size));
    json_object_set_new(e, "probability", json_real(z->probability));
    json_object_set_new(e, "local_batch",
                        json_integer((json_int_t)z->local_batch));
    json_object_set_new(e, "copies", json_integer((json_int_t)z->copies));
    json_object_set_new(e, "iteration_s", json_real(z->iteration_s));
    json_object_set_new(e, "memory_bytes", json_real(z->memory_bytes));
    json_object_set_new(e, "fits_in_memory", json_boolean(z->fits_in_memory));
    json_array_append_new(sizes, e);
  }
  json_object_set_new(o, "sizes", sizes);
  json_object_set_new(o, "peak_memory_size",
                      json_integer((json_int_t)t->peak_memory_size));
  json_object_set_new(o, "sparse_layers",
                      json_integer((json_int_t)t->sparse_layers));
  json_object_set_new(o, "sparse_grad_bytes", json_real(t->sparse_grad_bytes));
  json_object_set_new(o, "sparse_dense_bytes",
                      json_real(t->sparse_dense_bytes));
  if (w && dnn_scn_get_value(&w->scn, "training", "consistency", buf,
                             sizeof buf) == DNN_OK)
    json_object_set_new(o, "consistency", json_string(buf));
  json_object_set_new(o, "nominal_iteration_s",
                      json_real(t->nominal_iteration_s));
  json_object_set_new(o, "straggler_factor", json_real(t->straggler_factor));
  json_object_set_new(o, "expected_max_speed",
                      json_real(t->expected_max_speed));
  json_object_set_new(o, "staleness", json_real(t->staleness));
  json_object_set_new(o, "draws", json_integer((json_int_t)t->draws));
  if (w)
    json_object_set_new(o, "compression",
                        json_string(w->scn.training.compression_text));
  json_object_set_new(o, "wire_grad_bytes", json_real(t->wire_grad_bytes));
  json_object_set_new(o, "compression_s", json_real(t->compression_s));
  return o;
}

/* Whether the scenario file or --set gives `section.key` (not its
 * default). */
static bool key_given(const dnn_scenario *s, const char *section,
                      const char *key) {
  size_t n;
  const dnn_scn_key *keys = dnn_scn_keys(&n);
  const dnn_scn_key *k = dnn_scn_key_find(section, key);
  return k && s->key_line[k - keys] != 0;
}

void cli_techniques_table(FILE *fp, const cli_world *w,
                          const dnn_prediction *p) {
  const dnn_techniques *t = &p->techniques;
  const dnn_scenario *s = &w->scn;
  char a[32], b[32], c[32], buf[DNN_SCN_TEXT_MAX];
  if (t->inference_s_per_sample > 0) {
    fprintf(fp, "inference     %s per sample forward only",
            cli_fmt_time(t->inference_s_per_sample, a, sizeof a));
    /* Images (CHW inputs) have a size; sequences do not. */
    if (dnn_net_layer_count(w->net) > 0 &&
        dnn_net_layer(w->net, 0)->out.rank == 3)
      fprintf(fp, " at %zu px", s->model.image);
    fprintf(fp, " (one device, %s samples/s)\n",
            cli_fmt_count(1.0 / t->inference_s_per_sample, b, sizeof b));
  }
  if (s->training.micro_batching != DNN_MICROBATCHING_NONE &&
      dnn_scn_get_value(s, "training", "micro_batching", buf, sizeof buf) ==
          DNN_OK)
    fprintf(fp,
            "micro-batch   convolutions planned by %s (times and "
            "workspaces; 'dnnsim microbatch' shows the plan)\n",
            buf);
  if (t->n_sizes > 0) {
    dnn_scn_get_value(s, "training", "size_policy", buf, sizeof buf);
    fprintf(fp,
            "mixed sizes   %zu sizes, size_policy %s, base %zu px: "
            "expected step %s, %s unique samples per step\n",
            t->n_sizes, buf, s->model.image,
            cli_fmt_time(p->iteration_s, a, sizeof a),
            cli_fmt_count(t->unique_samples_per_step, b, sizeof b));
    for (size_t k = 0; k < t->n_sizes; k++) {
      const dnn_size_step *z = &t->sizes[k];
      fprintf(fp,
              "    %4zu px  p %.3f  batch %zu x %zu per replica  step %10s  "
              "memory %s%s\n",
              z->size, z->probability, z->local_batch, z->copies,
              cli_fmt_time(z->iteration_s, a, sizeof a),
              cli_fmt_bytes(z->memory_bytes, b, sizeof b),
              z->size == t->peak_memory_size ? " (peak)" : "");
    }
  }
  if (t->copies > 1 || t->augmented_samples_per_step >
                           t->unique_samples_per_step * (1 + 1e-12)) {
    double mean =
        t->unique_samples_per_step > 0
            ? t->augmented_samples_per_step / t->unique_samples_per_step
            : 1;
    if (t->n_sizes > 0)
      fprintf(fp, "augmentation  %.3g copies of each sample on average", mean);
    else
      fprintf(fp, "augmentation  %zu copies of each sample", t->copies);
    fprintf(
        fp, ": %s augmented (%s unique)\n",
        cli_fmt_rate(t->augmented_samples_per_s, "samples/s", a, sizeof a),
        cli_fmt_rate(p->throughput_samples_per_s, "samples/s", b, sizeof b));
    if (t->one_copy_iteration_s > 0)
      fprintf(fp,
              "              one copy: step %s, efficiency %.1f %% (now "
              "%.1f %%)\n",
              cli_fmt_time(t->one_copy_iteration_s, a, sizeof a),
              100.0 * t->one_copy_scaling_efficiency,
              100.0 * p->scaling_efficiency);
  }
  bool updates = t->n_sizes > 0 || t->copies > 1 || t->steps > 0 ||
                 key_given(s, "training", "dataset_size");
  if (updates && t->steps_per_epoch > 0)
    fprintf(fp, "epoch         %s steps of %s samples (dataset %zu): %s\n",
            cli_fmt_count(t->steps_per_epoch, a, sizeof a),
            cli_fmt_count(t->unique_samples_per_step, b, sizeof b),
            s->training.dataset_size, cli_fmt_time(t->epoch_s, c, sizeof c));
  if (t->steps > 0)
    fprintf(fp, "updates       %s steps (%s): %s\n",
            cli_fmt_count(t->steps, a, sizeof a),
            s->training.steps > 0 ? "training.steps" : "training.epochs",
            cli_fmt_time(t->time_to_steps_s, b, sizeof b));
  if (t->sparse_layers > 0)
    fprintf(fp,
            "sparse grads  %zu layer%s allgather touched rows: %s per step "
            "instead of %s dense\n",
            t->sparse_layers, t->sparse_layers == 1 ? "" : "s",
            cli_fmt_bytes(t->sparse_grad_bytes, a, sizeof a),
            cli_fmt_bytes(t->sparse_dense_bytes, b, sizeof b));
  if (s->training.jitter > 0 ||
      s->training.consistency != DNN_CONSISTENCY_SYNC) {
    dnn_scn_get_value(s, "training", "consistency", buf, sizeof buf);
    fprintf(fp, "consistency   %s", buf);
    if (s->training.consistency == DNN_CONSISTENCY_SSP)
      fprintf(fp, " (staleness %zu)", s->training.staleness);
    fprintf(fp, ", jitter %.3g: step %s without stragglers, x %.4f",
            s->training.jitter,
            cli_fmt_time(t->nominal_iteration_s, a, sizeof a),
            t->straggler_factor);
    if (t->draws > 0)
      fprintf(fp, " (%zu %s)", t->draws,
              s->training.consistency == DNN_CONSISTENCY_SYNC
                  ? "Monte Carlo draws"
                  : "simulated steps");
    fprintf(fp,
            "\n              E[max speed factor] of %zu replicas %.4f, mean "
            "staleness %.3g steps\n",
            p->data, t->expected_max_speed, t->staleness);
  }
  if (s->training.compression != DNN_COMPRESSION_NONE && p->data > 1)
    fprintf(fp,
            "compression   %s: %s sent of %s per replica, encode + decode "
            "%s per step\n",
            s->training.compression_text,
            cli_fmt_bytes(t->wire_grad_bytes, a, sizeof a),
            cli_fmt_bytes(p->grad_bytes - t->sparse_dense_bytes, b, sizeof b),
            cli_fmt_time(t->compression_s, c, sizeof c));
}

static void pct_line(FILE *fp, const char *label, double v, double total) {
  char t[32];
  fprintf(fp, "    %-16s %12s  %5.1f %%\n", label, cli_fmt_time(v, t, sizeof t),
          total > 0 ? 100.0 * v / total : 0.0);
}

void cli_prediction_table(FILE *fp, const cli_world *w,
                          const dnn_prediction *p) {
  char a[32], b[32], c[32];
  const dnn_scenario *s = &w->scn;
  dnn_net_totals tot;
  dnn_net_totals_get(w->net, 1, s->model.dtype, &tot);
  const dnn_hw_params *hp = dnn_hw_get(w->hw);
  fprintf(fp, "scenario      %s\n", s->path);
  fprintf(fp,
          "model         %s, %s parameters, batch %zu (%zu per replica), "
          "%s\n",
          dnn_net_name(w->net), cli_fmt_count((double)tot.params, a, sizeof a),
          s->model.batch, p->local_batch, dnn_dtype_name(s->model.dtype));
  fprintf(fp, "hardware      %zu x %s (%zu node%s x %zu)", p->devices, hp->name,
          s->cluster.nodes, s->cluster.nodes == 1 ? "" : "s",
          s->cluster.devices_per_node);
  if (p->devices > 1)
    fprintf(fp, ", links %s / %s",
            w->cluster.intra.name[0] ? w->cluster.intra.name : "-",
            w->cluster.inter.name[0] ? w->cluster.inter.name : "-");
  fputc('\n', fp);
  fprintf(fp, "strategy      data %zu x tensor %zu x pipeline %zu", p->data,
          p->tensor, p->pipeline);
  if (p->data > 1)
    fprintf(fp, ", allreduce %s, overlap %s", dnn_comm_algo_name(p->allreduce),
            !s->parallelism.overlap    ? "off"
            : dnn_hw_comm_overlaps(hp) ? "on"
                                       : "off (the device's collectives "
                                         "progress on its compute thread: "
                                         "[device] comm_progress = host)");
  fprintf(fp, "\nengine        %s\n\n",
          p->engine == DNN_ENGINE_DES ? "event simulator" : "analytic");
  double T = p->iteration_s;
  fprintf(fp, "iteration     %s\n", cli_fmt_time(T, a, sizeof a));
  pct_line(fp, "forward", p->breakdown.forward_s, T);
  pct_line(fp, "backward", p->breakdown.backward_s, T);
  if (p->breakdown.recompute_s > 0)
    pct_line(fp, "recompute", p->breakdown.recompute_s, T);
  pct_line(fp, "comm exposed", p->breakdown.comm_exposed_s, T);
  if (p->breakdown.bubble_s > 0)
    pct_line(fp, "bubble", p->breakdown.bubble_s, T);
  pct_line(fp, "optimizer", p->breakdown.optimizer_s, T);
  if (p->breakdown.comm_s > 0)
    fprintf(fp, "    %-16s %12s  (%s of gradients per step)\n", "comm total",
            cli_fmt_time(p->breakdown.comm_s, a, sizeof a),
            cli_fmt_bytes(p->grad_bytes, b, sizeof b));
  fprintf(fp, "throughput    %s\n",
          cli_fmt_rate(p->throughput_samples_per_s, "samples/s", a, sizeof a));
  fprintf(fp, "compute       %s per device (%.1f %% of %s peak)\n",
          cli_fmt_rate(p->flops_per_device_per_s, "FLOP/s", a, sizeof a),
          100.0 * p->flops_per_device_per_s / hp->peak_flops[s->model.dtype],
          dnn_dtype_name(s->model.dtype));
  fprintf(fp, "scaling       %.1f %% efficiency over %zu devices\n",
          100.0 * p->scaling_efficiency, p->devices);
  const dnn_memory *m = &p->memory;
  fprintf(fp, "memory        %s of %s per device: %s (%s %s)\n",
          cli_fmt_bytes(m->total_bytes, a, sizeof a),
          cli_fmt_bytes(m->capacity_bytes, b, sizeof b),
          p->fits_in_memory ? "fits" : "DOES NOT FIT",
          cli_fmt_bytes(fabs(m->headroom_bytes), c, sizeof c),
          p->fits_in_memory ? "to spare" : "over");
  fprintf(fp, "    weights %s, gradients %s, optimizer %s,\n",
          cli_fmt_bytes(m->weights_bytes, a, sizeof a),
          cli_fmt_bytes(m->gradients_bytes, b, sizeof b),
          cli_fmt_bytes(m->optimizer_bytes, c, sizeof c));
  fprintf(fp, "    activations %s, workspace %s, reserved %s\n",
          cli_fmt_bytes(m->activations_bytes, a, sizeof a),
          cli_fmt_bytes(m->workspace_bytes, b, sizeof b),
          cli_fmt_bytes(m->reserved_bytes, c, sizeof c));
  cli_operators_table(fp, w, p);
  cli_techniques_table(fp, w, p);
}

/* ---- Operator choices -------------------------------------------------------
 */

/* Per-layer choices of one device at the prediction's micro-batch (the
 * convolution algorithms under the workspace limit and the tensor
 * group's split), or NULL (out of memory; callers print nothing). */
static dnn_layer_time *operator_times(const cli_world *w,
                                      const dnn_prediction *p, size_t *n) {
  *n = dnn_net_layer_count(w->net);
  size_t m =
      w->scn.parallelism.microbatches ? w->scn.parallelism.microbatches : 1;
  size_t mbs = p->local_batch / m ? p->local_batch / m : 1;
  dnn_layer_time *t = calloc(*n ? *n : 1, sizeof *t);
  if (t) {
    dnn_strat_input in = cli_world_input(w);
    dnn_strat_layer_times(&in, mbs, t);
  }
  return t;
}

void cli_operators_table(FILE *fp, const cli_world *w,
                         const dnn_prediction *p) {
  size_t n;
  dnn_layer_time *t = operator_times(w, p, &n);
  if (t == NULL)
    return;
  size_t algos[DNN_CONV_ALGO_COUNT] = {0}, splits[DNN_SPLIT_COUNT] = {0};
  size_t convs = 0, big = 0;
  for (size_t i = 0; i < n; i++) {
    splits[t[i].split]++;
    if (t[i].algo[DNN_PASS_FWD] == DNN_CONV_ALGO_COUNT)
      continue;
    convs++;
    algos[t[i].algo[DNN_PASS_FWD]]++;
    if (t[i].workspace_bytes > t[big].workspace_bytes ||
        t[big].algo[DNN_PASS_FWD] == DNN_CONV_ALGO_COUNT)
      big = i;
  }
  char a[32], b[32];
  if (convs > 0) {
    fprintf(fp, "operators     %zu convolutions (forward:", convs);
    const char *sep = " ";
    for (int k = 0; k < DNN_CONV_ALGO_COUNT; k++)
      if (algos[k]) {
        fprintf(fp, "%s%s %zu", sep, dnn_conv_algo_name((dnn_conv_algo)k),
                algos[k]);
        sep = ", ";
      }
    fprintf(
        fp, ")\n              largest workspace %s (%s) under %s\n",
        cli_fmt_bytes(t[big].workspace_bytes, a, sizeof a),
        dnn_net_layer(w->net, big)->name,
        cli_fmt_bytes(w->scn.hardware.workspace_MB * 1048576.0, b, sizeof b));
  }
  if (p->tensor > 1) {
    fprintf(fp, "tensor split  ");
    const char *sep = "";
    for (int k = 0; k < DNN_SPLIT_COUNT; k++)
      if (splits[k]) {
        fprintf(fp, "%s%s %zu", sep, dnn_split_name((dnn_split)k), splits[k]);
        sep = ", ";
      }
    fprintf(fp, " layers of %zu devices\n", p->tensor);
  }
  free(t);
}

json_t *cli_operators_json(const cli_world *w, const dnn_prediction *p) {
  size_t n;
  dnn_layer_time *t = operator_times(w, p, &n);
  json_t *arr = json_array();
  if (t == NULL || arr == NULL) {
    free(t);
    return arr;
  }
  for (size_t i = 0; i < n; i++) {
    bool conv = t[i].algo[DNN_PASS_FWD] != DNN_CONV_ALGO_COUNT;
    if (!conv && t[i].split == DNN_SPLIT_NONE)
      continue;
    json_t *o = json_object();
    json_object_set_new(o, "layer",
                        json_string(dnn_net_layer(w->net, i)->name));
    json_object_set_new(o, "split", json_string(dnn_split_name(t[i].split)));
    for (int k = 0; conv && k < DNN_PASS_COUNT; k++) {
      char key[32];
      snprintf(key, sizeof key, "%s_algo", dnn_pass_name((dnn_pass)k));
      if (t[i].algo[k] != DNN_CONV_ALGO_COUNT)
        json_object_set_new(o, key,
                            json_string(dnn_conv_algo_name(t[i].algo[k])));
    }
    json_object_set_new(o, "workspace_bytes", json_real(t[i].workspace_bytes));
    json_object_set_new(
        o, "comm_s",
        json_real(t[i].comm_s[0] + t[i].comm_s[1] + t[i].comm_s[2]));
    json_array_append_new(arr, o);
  }
  free(t);
  return arr;
}

void cli_prediction_csv_header(FILE *fp) {
  fprintf(fp, "iteration_s,throughput_samples_per_s,forward_s,backward_s,"
              "recompute_s,comm_s,comm_exposed_s,bubble_s,optimizer_s,"
              "memory_per_device_bytes,fits_in_memory,"
              "flops_per_device_per_s,devices,data,tensor,pipeline,"
              "local_batch,scaling_efficiency,allreduce");
}

void cli_prediction_csv_row(FILE *fp, const dnn_prediction *p) {
  fprintf(fp,
          "%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%d,%.9g,%zu,"
          "%zu,%zu,%zu,%zu,%.9g,%s",
          p->iteration_s, p->throughput_samples_per_s, p->breakdown.forward_s,
          p->breakdown.backward_s, p->breakdown.recompute_s,
          p->breakdown.comm_s, p->breakdown.comm_exposed_s,
          p->breakdown.bubble_s, p->breakdown.optimizer_s,
          p->memory.total_bytes, p->fits_in_memory ? 1 : 0,
          p->flops_per_device_per_s, p->devices, p->data, p->tensor,
          p->pipeline, p->local_batch, p->scaling_efficiency,
          dnn_comm_algo_name(p->allreduce));
}
