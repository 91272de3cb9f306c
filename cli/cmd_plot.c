/*
 * dnnsim plot: a chart of a sweep (scaling, efficiency, breakdown), of
 * validation results or of a simulated iteration's trace. The plots module
 * writes the data file and gnuplot script next to the image; this command
 * finds gnuplot on PATH (or --gnuplot) and runs it.
 *
 * Invariant: the data and script are written before gnuplot runs, so they
 * remain (for editing or rendering later) when gnuplot is missing (exit
 * code 4) or fails.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "sweep.h"

#define MAX_INPUTS 64

static void help(void) {
  printf(
      "usage: dnnsim plot SCENARIO.ini [SCENARIO.ini ...] --vary "
      "SECTION.KEY=VALUES\n"
      "                   [--kind scaling|efficiency|breakdown] [OPTIONS]\n"
      "       dnnsim plot --kind validation RESULT.json [RESULT.json ...] "
      "[OPTIONS]\n"
      "       dnnsim plot --kind timeline --trace TRACE.json [OPTIONS]\n"
      "\n"
      "Writes a chart (PNG, SVG or PDF by the extension of -o) together with\n"
      "its data (.dat) and a readable gnuplot script (.gp) next to it, then\n"
      "runs gnuplot. Kinds:\n"
      "  scaling     throughput and speedup against devices (log2), with\n"
      "              ideal linear scaling (default)\n"
      "  efficiency  parallel efficiency against devices\n"
      "  breakdown   stacked bars: forward, backward, exposed communication,\n"
      "              bubble, recompute and optimizer time per configuration\n"
      "  validation  predicted against measured iteration time (from\n"
      "              'dnnsim validate --format json' files), y = x, +-10 %%\n"
      "  timeline    a Gantt chart per device and stream of a Chrome trace\n"
      "              ('dnnsim trace' output)\n"
      "Each scenario file, and each value of --series, is one series.\n"
      "\n"
      "Options:\n"
      "  --vary SECTION.KEY=VALUES     configurations, as in 'dnnsim sweep' "
      "(repeatable)\n"
      "  --series SECTION.KEY=VALUES   one series per value (e.g.\n"
      "                                parallelism.allreduce=ring,tree)\n"
      "  -k, --kind KIND               the chart (default scaling)\n"
      "  -o, --output FILE             the image (default NAME-KIND.png)\n"
      "  --trace FILE                  the trace of a timeline chart\n"
      "  --title TEXT                  the chart's title\n"
      "  --size WxH                    image size in pixels\n"
      "  --gnuplot PATH                the gnuplot to run (default: from "
      "PATH)\n"
      "  --no-render                   write the data and script only\n"
      "  --strict                      stop at the first invalid "
      "configuration\n"
      "  -s, --set SECTION.KEY=VALUE   override a scenario key (repeatable)\n"
      "  --engine auto|analytic|des    force a prediction engine\n"
      "  -h, --help                    this help\n"
      "\n"
      "Exit codes: 0 written, 2 usage, 3 bad input, 4 gnuplot missing (the\n"
      ".dat and .gp files are still written).\n"
      "\n"
      "Example:\n"
      "  dnnsim plot scenarios/default.ini --vary cluster.nodes=1..16*2 \\\n"
      "      --series parallelism.allreduce=ring,tree -o out/scaling.png\n");
}

typedef struct plot_opts {
  cli_scn_opts scn;
  const char *inputs[MAX_INPUTS];
  size_t n_inputs;
  dnn_plot_vary vary[DNN_PLOT_MAX_VARY + 1]; /* [0] is --series when given */
  size_t n_vary;
  bool has_series;
  dnn_plot_kind kind;
  const char *output;
  const char *trace;
  const char *title;
  const char *gnuplot;
  size_t width_px, height_px;
  bool render;
  bool strict;
  int argc; /* the command line, for the script's header */
  char **argv;
} plot_opts;

/* Sweep state of one scenario file. */
typedef struct plot_run {
  const plot_opts *po;
  const char *input; /* the scenario file */
  dnn_plot **pl;     /* allocated at the first successful row */
  size_t skipped;    /* failed rows so far, all files */
} plot_run;

static void file_stem(const char *path, char *out, size_t n) {
  const char *slash = strrchr(path, '/');
  const char *b = slash ? slash + 1 : path;
  const char *dot = strrchr(b, '.');
  snprintf(out, n, "%.*s", (int)(dot && dot != b ? dot - b : (int)strlen(b)),
           b);
}

static dnn_status alloc_chart(const plot_opts *po, const cli_world *w,
                              dnn_plot **out, dnn_error *err) {
  dnn_plot_params pp = dnn_plot_default_params(po->kind);
  pp.width_px = po->width_px;
  pp.height_px = po->height_px;
  if (po->title) {
    snprintf(pp.title, sizeof pp.title, "%s", po->title);
  } else if (w && po->n_inputs == 1) {
    char batch[64] = "";
    if (po->kind != DNN_PLOT_BREAKDOWN || po->n_vary == 0 ||
        strcmp(po->vary[po->n_vary - 1].key, "batch") != 0)
      snprintf(batch, sizeof batch, ", global batch %zu", w->scn.model.batch);
    snprintf(pp.title, sizeof pp.title, "%s on %s%s, %s", dnn_net_name(w->net),
             dnn_hw_get(w->hw)->name, batch,
             dnn_dtype_name(w->scn.model.dtype));
  }
  size_t first = po->has_series ? 1 : 0;
  if (po->has_series)
    snprintf(pp.key_title, sizeof pp.key_title, "%s", po->vary[0].key);
  if (po->n_vary - first == 1)
    snprintf(pp.x_label, sizeof pp.x_label, "%s.%s", po->vary[first].section,
             po->vary[first].key);
  else if (po->n_vary - first > 1)
    snprintf(pp.x_label, sizeof pp.x_label, "configuration");
  /* The script's header records how to make the chart again. */
  size_t len = (size_t)snprintf(pp.note, sizeof pp.note, "Made by: dnnsim");
  for (int i = 0; i < po->argc && len < sizeof pp.note; i++)
    len += (size_t)snprintf(pp.note + len, sizeof pp.note - len, " %s",
                            po->argv[i]);
  return dnn_plot_alloc(&pp, out, err);
}

static dnn_status add_row(void *ud, const cli_sweep_row *row, dnn_error *err) {
  plot_run *run = ud;
  const plot_opts *po = run->po;
  size_t first = po->has_series ? 1 : 0;
  char text[512];
  if (row->p == NULL) {
    if (run->skipped++ < 5) {
      cli_sweep_row_text(po->vary, po->n_vary, row->values, text, sizeof text);
      fprintf(stderr, "dnnsim plot: skipped %s%s%s: %s\n", run->input,
              text[0] ? " " : "", text, row->err->msg);
    }
    return DNN_OK;
  }
  if (*run->pl == NULL) {
    dnn_status st = alloc_chart(po, row->w, run->pl, err);
    if (st)
      return st;
  }
  /* Series: the scenario file (when several) and the --series value. */
  char series[DNN_PLOT_LABEL_MAX] = "";
  if (po->n_inputs > 1 || !po->has_series)
    file_stem(run->input, series, sizeof series);
  if (po->has_series) {
    size_t len = strlen(series);
    snprintf(series + len, sizeof series - len, "%s%s", len ? ", " : "",
             row->values[0]);
  }
  /* Label: the other varied values ("4" or "nodes=4, batch=256"). */
  if (po->n_vary - first == 1)
    snprintf(text, sizeof text, "%s", row->values[first]);
  else
    cli_sweep_row_text(po->vary + first, po->n_vary - first,
                       row->values + first, text, sizeof text);
  return dnn_plot_add_prediction(*run->pl, series, text, row->p, err);
}

/* The sweep of every scenario file into *pl. */
static dnn_status sweep_charts(plot_opts *po, dnn_plot **pl, dnn_error *err) {
  plot_run run = {po, NULL, pl, 0};
  dnn_status st = DNN_OK;
  for (size_t i = 0; st == DNN_OK && i < po->n_inputs; i++) {
    run.input = po->inputs[i];
    po->scn.path = po->inputs[i];
    size_t failed;
    st = cli_sweep_run(&po->scn, po->vary, po->n_vary, po->strict, "plot",
                       add_row, &run, &failed, err);
  }
  if (run.skipped > 5)
    fprintf(stderr, "dnnsim plot: ... and %zu more configurations skipped\n",
            run.skipped - 5);
  if (st == DNN_OK && *pl == NULL)
    st = DNN_FAIL(err, DNN_EINVAL,
                  "no valid configuration to plot (all %zu failed)",
                  run.skipped);
  return st;
}

/* An executable called `name` in one of PATH's directories, into out. */
static bool find_on_path(const char *name, char *out, size_t n) {
  const char *path = getenv("PATH");
  if (path == NULL || path[0] == '\0')
    return false;
  for (const char *p = path;;) {
    const char *e = strchr(p, ':');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    snprintf(out, n, "%.*s%s%s", (int)len, p, len ? "/" : "", name);
    struct stat sb;
    if (stat(out, &sb) == 0 && S_ISREG(sb.st_mode) && access(out, X_OK) == 0)
      return true;
    if (e == NULL)
      return false;
    p = e + 1;
  }
}

static int parse_args(int argc, char **argv, plot_opts *po) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *next = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE()                                                           \
  do {                                                                         \
    if (next == NULL)                                                          \
      return cli_usage_error("plot", "%s needs a value", a);                   \
    i++;                                                                       \
  } while (0)
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      help();
      return -1;
    } else if (strcmp(a, "--strict") == 0) {
      po->strict = true;
    } else if (strcmp(a, "--no-render") == 0) {
      po->render = false;
    } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
      NEED_VALUE();
      po->output = next;
    } else if (strcmp(a, "-k") == 0 || strcmp(a, "--kind") == 0) {
      NEED_VALUE();
      dnn_error err;
      dnn_error_clear(&err);
      if (dnn_plot_kind_parse(next, &po->kind, &err))
        return cli_usage_error("plot", "--kind: %s", err.msg);
    } else if (strcmp(a, "--trace") == 0) {
      NEED_VALUE();
      po->trace = next;
    } else if (strcmp(a, "--title") == 0) {
      NEED_VALUE();
      po->title = next;
    } else if (strcmp(a, "--gnuplot") == 0) {
      NEED_VALUE();
      po->gnuplot = next;
    } else if (strcmp(a, "--size") == 0) {
      NEED_VALUE();
      unsigned long w, h;
      char x;
      if (sscanf(next, "%lu%c%lu", &w, &x, &h) != 3 || x != 'x' || w < 100 ||
          h < 100 || w > 10000 || h > 10000)
        return cli_usage_error("plot",
                               "--size: expected WIDTHxHEIGHT in "
                               "pixels (100 to 10000), not '%s'",
                               next);
      po->width_px = w;
      po->height_px = h;
    } else if (strcmp(a, "--series") == 0) {
      NEED_VALUE();
      if (po->has_series)
        return cli_usage_error("plot", "--series is given twice");
      dnn_error err;
      dnn_error_clear(&err);
      if (dnn_plot_vary_parse(next, &po->vary[0], &err))
        return cli_usage_error("plot", "--series: %s", err.msg);
      po->has_series = true;
    } else if (a[0] != '-' && a[0] != '\0') {
      if (po->n_inputs == MAX_INPUTS)
        return cli_usage_error("plot", "at most %d input files", MAX_INPUTS);
      po->inputs[po->n_inputs++] = a;
    } else {
      int r = cli_vary_opt("plot", argc, argv, &i, po->vary + 1, &po->n_vary);
      if (r == 0)
        r = cli_scn_opt("plot", argc, argv, &i, &po->scn);
      if (r < 0)
        return CLI_EXIT_USAGE;
      if (r == 0)
        return cli_usage_error("plot", "unknown option '%s'", a);
    }
#undef NEED_VALUE
  }
  /* vary[0] holds --series: the slowest key, one series after another. */
  if (po->has_series) {
    for (size_t j = 1; j <= po->n_vary; j++)
      if (strcmp(po->vary[j].section, po->vary[0].section) == 0 &&
          strcmp(po->vary[j].key, po->vary[0].key) == 0)
        return cli_usage_error("plot", "%s.%s is both --series and --vary",
                               po->vary[j].section, po->vary[j].key);
    po->n_vary++;
  } else {
    memmove(po->vary, po->vary + 1, po->n_vary * sizeof po->vary[0]);
    memset(&po->vary[po->n_vary], 0, sizeof po->vary[0]);
  }
  return CLI_EXIT_OK;
}

static int check_args(const plot_opts *po) {
  switch (po->kind) {
  case DNN_PLOT_VALIDATION:
    if (po->n_inputs == 0)
      return cli_usage_error("plot", "--kind validation needs result files "
                                     "from 'dnnsim validate --format json'");
    if (po->n_vary)
      return cli_usage_error("plot", "--kind validation takes result files, "
                                     "not --vary or --series");
    break;
  case DNN_PLOT_TIMELINE:
    if (po->trace == NULL)
      return cli_usage_error("plot", "--kind timeline needs --trace FILE (a "
                                     "Chrome trace from 'dnnsim trace')");
    if (po->n_inputs || po->n_vary)
      return cli_usage_error("plot", "--kind timeline takes only --trace, "
                                     "not scenarios or --vary");
    break;
  default:
    if (po->n_inputs == 0)
      return cli_usage_error("plot", "a scenario file is required");
    if (po->n_vary == (po->has_series ? 1u : 0u) &&
        po->kind != DNN_PLOT_BREAKDOWN)
      return cli_usage_error("plot",
                             "--kind %s needs --vary (e.g. --vary "
                             "cluster.nodes=1..16*2)",
                             dnn_plot_kind_name(po->kind));
    break;
  }
  return CLI_EXIT_OK;
}

static dnn_status build_chart(plot_opts *po, dnn_plot **pl, dnn_error *err) {
  dnn_status st = DNN_OK;
  switch (po->kind) {
  case DNN_PLOT_VALIDATION:
    st = alloc_chart(po, NULL, pl, err);
    for (size_t i = 0; st == DNN_OK && i < po->n_inputs; i++)
      st = dnn_plot_load_validation(*pl, po->inputs[i], err);
    return st;
  case DNN_PLOT_TIMELINE:
    st = alloc_chart(po, NULL, pl, err);
    if (st == DNN_OK)
      st = dnn_plot_load_trace(*pl, po->trace, err);
    return st;
  default:
    return sweep_charts(po, pl, err);
  }
}

int cli_cmd_plot(int argc, char **argv) {
  plot_opts po;
  memset(&po, 0, sizeof po);
  po.scn.engine = -1;
  po.kind = DNN_PLOT_SCALING;
  po.render = true;
  po.argc = argc;
  po.argv = argv;
  int rc = parse_args(argc, argv, &po);
  if (rc == CLI_EXIT_OK)
    rc = check_args(&po);
  if (rc) {
    rc = rc < 0 ? CLI_EXIT_OK : rc; /* -1: --help */
    goto done;
  }
  char image[DNN_PLOT_PATH_MAX];
  if (po.output) {
    snprintf(image, sizeof image, "%s", po.output);
  } else {
    char stem[256];
    file_stem(po.n_inputs ? po.inputs[0] : po.trace, stem, sizeof stem);
    snprintf(image, sizeof image, "%s-%s.png", stem,
             dnn_plot_kind_name(po.kind));
  }
  dnn_error err;
  dnn_error_clear(&err);
  dnn_plot_format fmt;
  dnn_status st = dnn_plot_format_of(image, &fmt, &err);
  if (st) {
    rc = cli_usage_error("plot", "-o %s", err.msg);
    goto done;
  }
  dnn_plot *pl = NULL;
  dnn_plot_files files;
  st = build_chart(&po, &pl, &err);
  if (st == DNN_OK)
    st = dnn_plot_write(pl, image, &files, &err);
  dnn_plot_free(pl);
  if (st) {
    rc = cli_fail(&err, st);
    goto done;
  }
  if (!po.render) {
    printf("wrote %s and %s (render with: gnuplot %s)\n", files.data,
           files.script, files.script);
    goto done;
  }
  char gnuplot[4096];
  if (po.gnuplot) {
    snprintf(gnuplot, sizeof gnuplot, "%s", po.gnuplot);
  } else if (!find_on_path("gnuplot", gnuplot, sizeof gnuplot)) {
    fprintf(stderr,
            "dnnsim plot: gnuplot not found on PATH; wrote %s and %s.\n"
            "Install gnuplot (e.g. apt install gnuplot-nox) and run: gnuplot "
            "%s\n",
            files.data, files.script, files.script);
    rc = CLI_EXIT_UNAVAILABLE;
    goto done;
  }
  st = dnn_plot_render(gnuplot, files.script, &err);
  if (st) {
    fprintf(stderr, "dnnsim plot: wrote %s and %s, but:\n", files.data,
            files.script);
    rc = cli_fail(&err, st);
    goto done;
  }
  struct stat sb;
  if (stat(files.image, &sb) != 0 || sb.st_size == 0) {
    fprintf(stderr, "dnnsim plot: gnuplot ran but %s is missing or empty\n",
            files.image);
    rc = CLI_EXIT_RUNTIME;
    goto done;
  }
  printf("wrote %s (data %s, script %s)\n", files.image, files.data,
         files.script);
done:
  for (size_t i = 0; i < DNN_PLOT_MAX_VARY + 1; i++)
    dnn_plot_vary_free(&po.vary[i]);
  return rc;
}
