/*
 * dnnsim search: the fastest configurations of a scenario's model on N
 * devices (search.h, docs/search.md): every valid (data, tensor,
 * pipeline, micro-batch size, schedule, virtual stages, recompute, ZeRO)
 * predicted analytically, what does not fit dropped, the best few
 * re-timed by the simulator, the best K printed with their breakdowns and
 * the evaluation rate.
 *
 * Under `mpirun -np R` (an MPI build started by an MPI launcher) each rank
 * searches every R-th candidate and rank 0 merges the parts
 * (dnn_search_merge) and prints: the same ranking as one process. MPI
 * lives here only; the library stays MPI-free.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#if defined(DNNSIM_HAVE_MPI) && DNNSIM_HAVE_MPI
#include <mpi.h>
#define HAVE_MPI 1
#else
#define HAVE_MPI 0
#endif

static void help(void) {
  printf(
      "usage: dnnsim search SCENARIO.ini [OPTIONS]\n"
      "\n"
      "Searches every valid configuration of the scenario's model on N\n"
      "devices: data x tensor x pipeline = N (tensor dividing the devices\n"
      "of a node), micro-batch size, schedule (gpipe, 1f1b, interleaved\n"
      "with 2..4 virtual stages), recompute (none, full, selective) and\n"
      "ZeRO stage (0-3; 0-1 with a pipeline). Each is predicted by the\n"
      "analytic engine, those that do not fit in device memory are dropped,\n"
      "the best few are re-timed by the event simulator, and the best K\n"
      "are printed with their breakdowns. The scenario's other keys (dtype,\n"
      "optimizer, overlap, sequence_parallel, links, ...) are kept.\n"
      "\n"
      "Options:\n"
      "  --devices N                   devices to search (default: the\n"
      "                                scenario's nodes x devices_per_node)\n"
      "  --top K                       results to print (default 10)\n"
      "  --finalists F                 re-time the best F with the simulator\n"
      "                                (default 3; 0: analytic only)\n"
      "  --sim-max-tasks T             simulate only graphs up to T tasks\n"
      "                                (default 262144)\n"
      "  --max-tensor T                largest tensor degree (default: the\n"
      "                                devices of a node)\n"
      "  -s, --set SECTION.KEY=VALUE   override a scenario key (repeatable)\n"
      "  -f, --format table|csv|json   output format (default table)\n"
      "  -h, --help                    this help\n"
      "\n"
      "With MPI, 'mpirun -np R dnnsim search ...' splits the candidates\n"
      "over R processes; the result is the same as with one.\n"
      "\n"
      "Example:\n"
      "  dnnsim search scenarios/gpt-175b-a100.ini --devices 4096 --top 5\n");
}

static double wall_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool parse_count(const char *v, size_t *out, bool zero_ok) {
  char *end;
  if (v[0] < '0' || v[0] > '9')
    return false;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  if (end == v || *end || errno || (n == 0 && !zero_ok))
    return false;
  *out = (size_t)n;
  return true;
}

static const char *opt_val(int argc, char **argv, int *i, const char *opt) {
  const char *a = argv[*i];
  size_t n = strlen(opt);
  if (strncmp(a, opt, n) == 0 && a[n] == '=')
    return a + n + 1;
  if (*i + 1 >= argc) {
    cli_usage_error("search", "%s needs a value", opt);
    return NULL;
  }
  return argv[++*i];
}

static bool is(const char *a, const char *opt) {
  size_t n = strlen(opt);
  return strncmp(a, opt, n) == 0 && (a[n] == '\0' || a[n] == '=');
}

/* ---- Output -------------------------------------------------------------- */

static const char *sched_name(dnn_schedule s) {
  return s == DNN_SCHEDULE_GPIPE  ? "gpipe"
         : s == DNN_SCHEDULE_1F1B ? "1f1b"
                                  : "interleaved";
}

static const char *rec_name(dnn_recompute r) {
  return r == DNN_RECOMPUTE_NONE   ? "none"
         : r == DNN_RECOMPUTE_FULL ? "full"
                                   : "selective";
}

typedef struct run_info {
  size_t devices;
  dnn_search_stats st;
  double wall_s, cpu_s;
  int ranks;
} run_info;

static void print_table(const cli_world *w, const run_info *ri,
                        const dnn_search_result *r, size_t n) {
  char a[32], b[32], c[32];
  printf("scenario      %s\n", w->scn.path);
  printf("model         %s, batch %zu, %s, on %zu x %s\n", dnn_net_name(w->net),
         w->scn.model.batch, dnn_dtype_name(w->scn.model.dtype), ri->devices,
         dnn_hw_get(w->hw)->name);
  printf("searched      %zu configurations, %zu predicted, %zu fit in "
         "memory, %zu simulated\n",
         ri->st.candidates, ri->st.evaluated, ri->st.fit, ri->st.simulated);
  printf("speed         %.0f evaluations/s (%s wall, %s CPU%s%d process%s)\n",
         ri->cpu_s > 0 ? (double)ri->st.evaluated / ri->cpu_s : 0.0,
         cli_fmt_time(ri->wall_s, a, sizeof a),
         cli_fmt_time(ri->cpu_s, b, sizeof b), ", ", ri->ranks,
         ri->ranks == 1 ? "" : "es");
  if (n == 0) {
    printf("\nno configuration fits in device memory\n");
    return;
  }
  printf("\n%4s %5s %4s %4s %4s %5s %-11s %2s %-9s %4s %11s %-4s %9s %9s\n",
         "rank", "data", "tens", "pipe", "mbs", "m", "schedule", "v",
         "recompute", "zero", "iteration", "eng", "memory", "headroom");
  for (size_t k = 0; k < n; k++) {
    const dnn_search_result *x = &r[k];
    const dnn_prediction *p = &x->prediction;
    printf("%4zu %5zu %4zu %4zu %4zu %5zu %-11s %2zu %-9s %4zu %11s %-4s %9s "
           "%9s\n",
           k + 1, x->data, x->tensor, x->pipeline, x->microbatch_size,
           x->microbatches, sched_name(x->schedule), x->virtual_stages,
           rec_name(x->recompute), x->zero,
           cli_fmt_time(p->iteration_s, a, sizeof a),
           p->engine == DNN_ENGINE_DES ? "des" : "ana",
           cli_fmt_bytes(p->memory.total_bytes, b, sizeof b),
           cli_fmt_bytes(p->memory.headroom_bytes, c, sizeof c));
  }
  printf("\nbreakdowns (critical device, per iteration)\n");
  printf("%4s %10s %10s %10s %10s %10s %10s %10s\n", "rank", "forward",
         "backward", "recompute", "comm exp.", "bubble", "optimizer",
         "comm all");
  for (size_t k = 0; k < n; k++) {
    const dnn_breakdown *bd = &r[k].prediction.breakdown;
    char t[7][32];
    printf("%4zu %10s %10s %10s %10s %10s %10s %10s\n", k + 1,
           cli_fmt_time(bd->forward_s, t[0], sizeof t[0]),
           cli_fmt_time(bd->backward_s, t[1], sizeof t[1]),
           cli_fmt_time(bd->recompute_s, t[2], sizeof t[2]),
           cli_fmt_time(bd->comm_exposed_s, t[3], sizeof t[3]),
           cli_fmt_time(bd->bubble_s, t[4], sizeof t[4]),
           cli_fmt_time(bd->optimizer_s, t[5], sizeof t[5]),
           cli_fmt_time(bd->comm_s, t[6], sizeof t[6]));
  }
}

static void print_csv(const dnn_search_result *r, size_t n) {
  printf("rank,microbatch_size,microbatches,schedule,virtual_stages,"
         "recompute,zero,analytic_s,");
  cli_prediction_csv_header(stdout);
  fputc('\n', stdout);
  for (size_t k = 0; k < n; k++) {
    const dnn_search_result *x = &r[k];
    printf("%zu,%zu,%zu,%s,%zu,%s,%zu,%.9g,", k + 1, x->microbatch_size,
           x->microbatches, sched_name(x->schedule), x->virtual_stages,
           rec_name(x->recompute), x->zero, x->analytic_s);
    cli_prediction_csv_row(stdout, &x->prediction);
    fputc('\n', stdout);
  }
}

static int print_json(const cli_world *w, const run_info *ri,
                      const dnn_search_result *r, size_t n) {
  json_t *o = json_object(), *arr = json_array();
  if (!o || !arr) {
    json_decref(o);
    json_decref(arr);
    return cli_print_json(NULL);
  }
  json_object_set_new(o, "scenario", json_string(w->scn.path));
  json_object_set_new(o, "model", json_string(dnn_net_name(w->net)));
  json_object_set_new(o, "devices", json_integer((json_int_t)ri->devices));
  json_object_set_new(o, "candidates",
                      json_integer((json_int_t)ri->st.candidates));
  json_object_set_new(o, "evaluated",
                      json_integer((json_int_t)ri->st.evaluated));
  json_object_set_new(o, "fit", json_integer((json_int_t)ri->st.fit));
  json_object_set_new(o, "simulated",
                      json_integer((json_int_t)ri->st.simulated));
  json_object_set_new(o, "wall_s", json_real(ri->wall_s));
  json_object_set_new(o, "cpu_s", json_real(ri->cpu_s));
  json_object_set_new(
      o, "evaluations_per_s",
      json_real(ri->cpu_s > 0 ? (double)ri->st.evaluated / ri->cpu_s : 0));
  json_object_set_new(o, "processes", json_integer(ri->ranks));
  for (size_t k = 0; k < n; k++) {
    const dnn_search_result *x = &r[k];
    json_t *e = cli_prediction_json(NULL, &x->prediction);
    if (e == NULL)
      continue;
    json_object_set_new(e, "rank", json_integer((json_int_t)(k + 1)));
    json_object_set_new(e, "microbatch_size",
                        json_integer((json_int_t)x->microbatch_size));
    json_object_set_new(e, "microbatches",
                        json_integer((json_int_t)x->microbatches));
    json_object_set_new(e, "schedule", json_string(sched_name(x->schedule)));
    json_object_set_new(e, "virtual_stages",
                        json_integer((json_int_t)x->virtual_stages));
    json_object_set_new(e, "recompute", json_string(rec_name(x->recompute)));
    json_object_set_new(e, "zero", json_integer((json_int_t)x->zero));
    json_object_set_new(e, "analytic_s", json_real(x->analytic_s));
    json_array_append_new(arr, e);
  }
  json_object_set_new(o, "results", arr);
  return cli_print_json(o);
}

/* ---- MPI ----------------------------------------------------------------- */

/* Started by an MPI launcher (Open MPI, MPICH/Hydra or PMIx): only then is
 * MPI initialised, so a plain run never waits for a singleton start. */
static bool under_launcher(void) {
  return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") ||
         getenv("PMIX_RANK");
}

#if HAVE_MPI
/* Gathers every rank's kept results and stats on rank 0. */
static int gather(const dnn_search_result *mine, size_t n_mine,
                  dnn_search_stats *st, double *wall, double *cpu,
                  dnn_search_result **all, size_t *n_all, int rank, int size) {
  int cnt = (int)(n_mine * sizeof *mine);
  int *counts = rank == 0 ? calloc((size_t)size, sizeof *counts) : NULL;
  int *displs = rank == 0 ? calloc((size_t)size, sizeof *displs) : NULL;
  if (rank == 0 && (!counts || !displs)) {
    free(counts);
    free(displs);
    MPI_Abort(MPI_COMM_WORLD, CLI_EXIT_RUNTIME);
  }
  MPI_Gather(&cnt, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
  size_t total = 0;
  if (rank == 0)
    for (int k = 0; k < size; k++) {
      displs[k] = (int)total;
      total += (size_t)counts[k];
    }
  char *buf = rank == 0 ? malloc(total ? total : 1) : NULL;
  MPI_Gatherv(mine, cnt, MPI_BYTE, buf, counts, displs, MPI_BYTE, 0,
              MPI_COMM_WORLD);
  unsigned long long in[5] = {st->evaluated, st->fit, st->rejected,
                              st->simulated, st->tables},
                     out[5];
  MPI_Reduce(in, out, 5, MPI_UNSIGNED_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
  double t_in[2] = {*wall, *cpu}, t_out[2];
  MPI_Reduce(&t_in[0], &t_out[0], 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
  MPI_Reduce(&t_in[1], &t_out[1], 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
  free(counts);
  free(displs);
  if (rank == 0) {
    st->evaluated = (size_t)out[0];
    st->fit = (size_t)out[1];
    st->rejected = (size_t)out[2];
    st->simulated = (size_t)out[3];
    st->tables = (size_t)out[4];
    *wall = t_out[0];
    *cpu = t_out[1];
    *all = (dnn_search_result *)(void *)buf;
    *n_all = total / sizeof **all;
  }
  return CLI_EXIT_OK;
}
#endif

/* ---- The command --------------------------------------------------------- */

int cli_cmd_search(int argc, char **argv) {
  cli_scn_opts o = {.engine = -1};
  dnn_search_params sp = dnn_search_default_params();
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      help();
      return CLI_EXIT_OK;
    }
    size_t *target = NULL;
    const char *opt = NULL;
    bool zero_ok = false;
    if (is(a, "--devices"))
      target = &sp.devices, opt = "--devices";
    else if (is(a, "--top"))
      target = &sp.top, opt = "--top";
    else if (is(a, "--finalists"))
      target = &sp.finalists, opt = "--finalists", zero_ok = true;
    else if (is(a, "--sim-max-tasks"))
      target = &sp.sim_max_tasks, opt = "--sim-max-tasks";
    else if (is(a, "--max-tensor"))
      target = &sp.max_tensor, opt = "--max-tensor";
    if (target) {
      const char *v = opt_val(argc, argv, &i, opt);
      if (v == NULL)
        return CLI_EXIT_USAGE;
      if (!parse_count(v, target, zero_ok))
        return cli_usage_error("search", "%s needs a %s count, not '%s'", opt,
                               zero_ok ? "non-negative" : "positive", v);
      continue;
    }
    int r = cli_scn_opt("search", argc, argv, &i, &o);
    if (r < 0)
      return CLI_EXIT_USAGE;
    if (r == 0)
      return cli_usage_error("search", "unknown option '%s'", a);
  }
  if (o.path == NULL)
    return cli_usage_error("search", "a scenario file is required");

  int rank = 0, size = 1;
#if HAVE_MPI
  bool mpi = under_launcher();
  if (mpi) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
  }
#else
  if (under_launcher() && getenv("OMPI_COMM_WORLD_SIZE") &&
      strcmp(getenv("OMPI_COMM_WORLD_SIZE"), "1") != 0) {
    fprintf(stderr, "dnnsim: this build has no MPI (DNNSIM_WITH_MPI off); "
                    "run one process\n");
    return CLI_EXIT_UNAVAILABLE;
  }
#endif
  sp.part = (size_t)rank;
  sp.parts = (size_t)size;

  dnn_error err;
  dnn_error_clear(&err);
  cli_world w;
  dnn_status st = cli_world_load(&o, &w, &err);
  dnn_search *s = NULL;
  double w0 = wall_s(), c0 = cpu_s();
  if (st == DNN_OK) {
    dnn_strat_input in = cli_world_input(&w);
    st = dnn_search_alloc(&in, &sp, &s, &err);
  }
  if (st == DNN_OK) {
    size_t done, total;
    while (dnn_search_step(s, 2048)) {
      dnn_search_progress(s, &done, &total);
      if (rank == 0)
        cli_progress(done, total, "search");
    }
    dnn_search_progress(s, &done, &total);
    if (rank == 0)
      cli_progress(total, total, "search");
    st = dnn_search_finish(s, &err);
  }
  int rc = CLI_EXIT_OK;
  if (st) {
    rc = cli_fail(&err, st);
#if HAVE_MPI
    if (mpi) {
      /* Every rank fails the same way (same inputs): finish together. */
      MPI_Finalize();
    }
#endif
    dnn_search_free(s);
    cli_world_free(&w);
    return rc;
  }
  run_info ri;
  memset(&ri, 0, sizeof ri);
  ri.st = dnn_search_get_stats(s);
  ri.wall_s = wall_s() - w0;
  ri.cpu_s = cpu_s() - c0;
  ri.ranks = size;
  size_t n_res;
  const dnn_search_result *mine = dnn_search_results(s, &n_res);
  ri.devices = sp.devices ? sp.devices : dnn_cluster_devices(&w.cluster);
  dnn_search_result *all = NULL;
  size_t n_all = n_res;
#if HAVE_MPI
  if (mpi) {
    gather(mine, n_res, &ri.st, &ri.wall_s, &ri.cpu_s, &all, &n_all, rank,
           size);
    if (rank != 0) {
      MPI_Finalize();
      dnn_search_free(s);
      cli_world_free(&w);
      return CLI_EXIT_OK;
    }
  }
#endif
  if (all == NULL) {
    all = malloc((n_all ? n_all : 1) * sizeof *all);
    if (all == NULL) {
      fprintf(stderr, "dnnsim: out of memory\n");
      rc = CLI_EXIT_RUNTIME;
      goto out;
    }
    memcpy(all, mine, n_all * sizeof *all);
  }
  size_t n = dnn_search_merge(all, n_all, sp.top, sp.finalists);
  switch (o.format) {
  case CLI_FORMAT_TABLE:
    print_table(&w, &ri, all, n);
    break;
  case CLI_FORMAT_CSV:
    print_csv(all, n);
    break;
  case CLI_FORMAT_JSON:
    rc = print_json(&w, &ri, all, n);
    break;
  }
  if (rc == CLI_EXIT_OK && n == 0)
    rc = cli_exit_code(DNN_ENOFIT);
out:
  free(all);
#if HAVE_MPI
  if (mpi)
    MPI_Finalize();
#endif
  dnn_search_free(s);
  cli_world_free(&w);
  return rc;
}
