/*
 * dnnsim trace: one simulated iteration of a scenario as a Chrome trace
 * (docs/traces.md): one process per simulated device, one thread per
 * stream, one event per task. Loadable in Perfetto (ui.perfetto.dev) and
 * chrome://tracing; plots/ draws its Gantt chart from the same file.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void help(void) {
  printf(
      "usage: dnnsim trace SCENARIO.ini -o TRACE.json [OPTIONS]\n"
      "\n"
      "Simulates one training iteration of the scenario with the event\n"
      "simulator and writes its timeline in the Chrome trace event format:\n"
      "one process per device (one replica of each pipeline stage unless\n"
      "the scenario has jitter), one thread per stream (compute, allreduce,\n"
      "send activations, send gradients), tasks named by layer and pass,\n"
      "transfers with their bytes. Open it in https://ui.perfetto.dev.\n"
      "\n"
      "Options:\n"
      "  -o, --output FILE             the trace to write (atomically)\n"
      "  --devices N                   only the first N devices\n"
      "  -s, --set SECTION.KEY=VALUE   override a scenario key (repeatable)\n"
      "  --engine auto|des             the engine (a trace needs the\n"
      "                                simulator; analytic is refused)\n"
      "  -h, --help                    this help\n"
      "\n"
      "Example:\n"
      "  dnnsim trace scenarios/pipeline-vgg16-v100.ini -o trace.json\n");
}

static const char *value(int argc, char **argv, int *i, const char *opt) {
  const char *a = argv[*i];
  size_t n = strlen(opt);
  if (strncmp(a, opt, n) == 0 && a[n] == '=')
    return a + n + 1;
  if (*i + 1 >= argc) {
    cli_usage_error("trace", "%s needs a value", opt);
    return NULL;
  }
  return argv[++*i];
}

static bool is(const char *a, const char *opt) {
  size_t n = strlen(opt);
  return strncmp(a, opt, n) == 0 && (a[n] == '\0' || a[n] == '=');
}

int cli_cmd_trace(int argc, char **argv) {
  cli_scn_opts o = {.engine = -1};
  const char *out = NULL;
  size_t max_devices = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      help();
      return CLI_EXIT_OK;
    }
    if (strcmp(a, "-o") == 0 || is(a, "--output")) {
      if ((out = value(argc, argv, &i, "--output")) == NULL)
        return CLI_EXIT_USAGE;
      continue;
    }
    if (is(a, "--devices")) {
      const char *v = value(argc, argv, &i, "--devices");
      if (v == NULL)
        return CLI_EXIT_USAGE;
      char *end;
      errno = 0;
      unsigned long long n = strtoull(v, &end, 10);
      if (end == v || *end || errno || n == 0 || v[0] == '-')
        return cli_usage_error("trace",
                               "--devices needs a positive count, not '%s'", v);
      max_devices = (size_t)n;
      continue;
    }
    int r = cli_scn_opt("trace", argc, argv, &i, &o);
    if (r < 0)
      return CLI_EXIT_USAGE;
    if (r == 0)
      return cli_usage_error("trace", "unknown option '%s'", a);
  }
  if (o.path == NULL)
    return cli_usage_error("trace", "a scenario file is required");
  if (out == NULL)
    return cli_usage_error("trace", "an output file is required (-o FILE)");
  if (o.engine == DNN_ENGINE_ANALYTIC)
    return cli_usage_error("trace", "a trace comes from the event simulator; "
                                    "--engine analytic has no timeline");
  dnn_error err;
  dnn_error_clear(&err);
  cli_world w;
  dnn_strat_sim *ss = NULL;
  dnn_outfile *f = NULL;
  dnn_prediction p;
  dnn_status st = cli_world_load(&o, &w, &err);
  if (st == DNN_OK) {
    dnn_strat_input in = cli_world_input(&w);
    st = dnn_strat_sim_alloc(&in, &ss, &err);
  }
  if (st == DNN_OK)
    st = dnn_strat_sim_run(ss, &p, &err);
  if (st == DNN_OK)
    st = dnn_outfile_open(out, &f, &err);
  if (st == DNN_OK) {
    dnn_sim_trace_params tp = {max_devices};
    st = dnn_sim_trace_write(dnn_strat_sim_engine(ss), dnn_outfile_stream(f),
                             &tp, &err);
    if (st == DNN_OK)
      st = dnn_outfile_commit(f, &err);
    else
      dnn_outfile_abort(f);
  }
  if (st == DNN_OK) {
    const dnn_sim *sim = dnn_strat_sim_engine(ss);
    size_t devs = dnn_sim_device_count(sim);
    char t[32];
    printf("wrote %s: %zu tasks on %zu of %zu simulated devices, iteration "
           "%s\n",
           out, dnn_sim_task_count(sim),
           max_devices && max_devices < devs ? max_devices : devs, devs,
           cli_fmt_time(p.iteration_s, t, sizeof t));
  }
  dnn_strat_sim_free(ss);
  cli_world_free(&w);
  return st ? cli_fail(&err, st) : CLI_EXIT_OK;
}
