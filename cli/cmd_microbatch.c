/*
 * dnnsim microbatch: plans micro-batched convolutions (µ-cuDNN,
 * docs/models.md §10) for a scenario's network and prints, per convolution
 * kernel (layer and pass), the chosen division into micro-batches and
 * algorithms beside the undivided fastest algorithm that fits the
 * per-layer workspace limit, then the speedup of the convolutions, of the
 * network's forward and backward compute, and of the predicted iteration.
 *
 * Costs come from the scenario's profile (its measured kernel table where
 * it has one, with the algorithm model's workspaces), or with --kernels
 * from a raw kernel measurement CSV (`dnnsim calibrate gpu`'s
 * OUT.meas.csv): measured times and cuDNN's own workspaces, so that a
 * plan's workspace is what cuDNN will ask for.
 *
 * --measure validates a plan (docs/models.md §10.5): every kernel's chosen
 * schedule and its undivided baseline run on GPU 0 with cuDNN
 * (dnn_meas_gpu_microbatch), and predicted and measured times and
 * speedups are printed side by side. Several limits (--workspace
 * 8MiB,64MiB,512MiB) are planned first and then measured kernel by
 * kernel, so one kernel's tensors, cudnnFind and baseline timings serve
 * every limit, and a kernel whose signature, pass and schedules repeat an
 * earlier one's reuses its measurement.
 */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MIB (1024.0 * 1024.0)
#define MAX_LIMITS 8
#define DNAN ((double)NAN)

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
      "  --workspace SIZE[,SIZE]  per-layer limit(s), e.g. 8MiB, 64MiB, "
      "1GiB;\n"
      "                           several give one plan each (default:\n"
      "                           [hardware] workspace_MB)\n"
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
      "  --ilp-time S             stop the ilp after S seconds with the best\n"
      "                           plan found (default 20; 0: no limit)\n"
      "  --kernels CSV            plan from measured kernels (the raw CSV of\n"
      "                           'dnnsim calibrate gpu', OUT.meas.csv): "
      "their\n"
      "                           times and cuDNN workspaces; kernels the "
      "CSV\n"
      "                           lacks use the profile\n"
      "  --measure                run every chosen schedule and its undivided\n"
      "                           baseline on GPU 0 with cuDNN and compare\n"
      "                           measured with predicted times (exit 4 "
      "without\n"
      "                           a CUDA device)\n"
      "  --profile-out FILE       with --measure: write the per-kernel\n"
      "                           predictions and measurements as CSV\n"
      "  -s, --set SECTION.KEY=VALUE   override a scenario key (repeatable)\n"
      "  -f, --format table|csv|json   output format (default table)\n"
      "  -h, --help               this help\n"
      "\n"
      "Speedups: of the convolutions (JSON conv_speedup), of forward +\n"
      "backward over all layers (speedup), and of the predicted iteration\n"
      "with the optimizer and communication unchanged (iteration_speedup).\n"
      "Measured: each kernel's time is CUPTI's sum of its kernels (wall:\n"
      "CUDA events, launch gaps included); the baseline is the fastest\n"
      "undivided cuDNN algorithm within the limit; a schedule counts when\n"
      "it ran, fits the limit with cuDNN's workspace and its output equals\n"
      "the baseline's (relative L2 <= 1e-5 in fp32).\n"
      "\n"
      "Examples:\n"
      "  dnnsim microbatch scenarios/ucudnn-alexnet-p100-64mib.ini "
      "--workspace 8MiB --policy all\n"
      "  dnnsim microbatch scenarios/ucudnn-alexnet-p100-64mib.ini "
      "-s hardware.profile=h100-sxm5 \\\n"
      "      --kernels gpu-alexnet.meas.csv --workspace 8MiB,64MiB,512MiB "
      "--measure\n");
}

static const char *solver_name(dnn_microbatching s) {
  return s == DNN_MICROBATCHING_ILP  ? "ilp"
         : s == DNN_MICROBATCHING_DP ? "dp"
                                     : "none";
}

static double ratio(double a, double b) {
  return b > 0 ? a / b : 1.0;
}

/* ------------------------------------------------------------------------ */
/* Plans                                                                     */
/* ------------------------------------------------------------------------ */

/* One limit's plan, from the profile or from --kernels. */
typedef struct lplan {
  dnn_mb_params params;
  dnn_mb_plan *plan;      /* the library's plan, or NULL */
  dnn_mb_kernel *kernels; /* n kernels; parts borrowed from plan */
  size_t n;
  dnn_mb_summary sum;
  size_t from_table;          /* --kernels: kernels planned from the CSV */
  double net_base_s, net_s;   /* forward + backward of every layer */
  double iter_base_s, iter_s; /* predicted iteration, or NAN */
  dnn_meas_mb_result *meas;   /* n results with --measure, else NULL */
} lplan;

static void lplan_free(lplan *lp) {
  free(lp->kernels);
  free(lp->meas);
  dnn_mb_plan_free(lp->plan);
  memset(lp, 0, sizeof *lp);
}

/* A kernel signature as the measurement CSV stores it. */
static void csv_signature(const dnn_net *net, size_t i, char *buf, size_t n) {
  dnn_layer_signature(net, i, buf, n);
  for (char *c = buf; *c; c++)
    if ((unsigned char)*c < 0x20 || *c == ',' || *c == 0x7f)
      *c = '_';
}

/* Cost of one kernel from the measured CSV (or the profile). */
typedef struct tctx {
  const cli_world *w;
  const dnn_meas_kernel_table *t;
  size_t layer;
  dnn_pass pass;
  dnn_dtype dtype;
  const dnn_meas_kernel_row **rows; /* this kernel's rows */
  size_t n_rows;
  bool use_table;
  size_t from_table; /* kernels planned from the CSV */
} tctx;

static double table_cost(void *ud, size_t batch, size_t algo,
                         double *workspace_bytes) {
  const tctx *c = ud;
  if (!c->use_table)
    return dnn_hw_conv_time(c->w->hw, c->w->net, c->layer, c->pass,
                            (dnn_conv_algo)algo, batch, c->dtype,
                            workspace_bytes);
  for (size_t i = 0; i < c->n_rows; i++) {
    const dnn_meas_kernel_row *r = c->rows[i];
    if ((size_t)r->algo == algo && r->batch == batch && r->t.median_s > 0) {
      *workspace_bytes = r->workspace_bytes;
      return r->t.median_s;
    }
  }
  *workspace_bytes = 0;
  return INFINITY; /* not measured: not a candidate */
}

/* dnn_mb_plan_build_with's hook: the kernel's rows of the table, or the
 * profile's roofline where the table has none (or none that fits). */
static bool table_costs(void *ud, size_t layer, dnn_pass pass, bool fallback,
                        dnn_mb_costs *costs) {
  tctx *c = ud;
  costs->cost = table_cost;
  costs->ud = c;
  if (fallback) {
    c->use_table = false; /* nothing measured fits: the profile */
    c->from_table--;
    return false;
  }
  char sig[DNN_MEAS_SIG_MAX];
  csv_signature(c->w->net, layer, sig, sizeof sig);
  c->layer = layer;
  c->pass = pass;
  c->n_rows = 0;
  size_t nt = dnn_meas_kernel_table_count(c->t);
  for (size_t r = 0; r < nt; r++) {
    const dnn_meas_kernel_row *row = dnn_meas_kernel_table_get(c->t, r);
    if (row->kind == DNN_LAYER_CONV2D && row->pass == pass &&
        row->dtype == c->dtype && (unsigned)row->algo < DNN_CONV_ALGO_COUNT &&
        strcmp(row->signature, sig) == 0)
      c->rows[c->n_rows++] = row;
  }
  c->use_table = c->n_rows > 0;
  c->from_table += c->use_table;
  return c->use_table;
}

/* Copies the kernels and totals of lp->plan into lp. */
static dnn_status plan_copy(lplan *lp, dnn_error *err) {
  lp->n = dnn_mb_plan_kernel_count(lp->plan);
  lp->kernels = calloc(lp->n ? lp->n : 1, sizeof *lp->kernels);
  if (lp->kernels == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory");
  for (size_t k = 0; k < lp->n; k++)
    lp->kernels[k] = *dnn_mb_plan_kernel(lp->plan, k);
  dnn_mb_plan_summary(lp->plan, &lp->sum);
  return DNN_OK;
}

/*
 * Plans from measured kernel rows, as dnn_mb_plan_build does from a
 * profile: per convolution kernel the undivided fastest configuration
 * within M (baseline) and the solver's choice. A kernel the table has
 * no row for, or none that fits undivided, is planned from the profile.
 */
static dnn_status plan_from_table(const cli_world *w, size_t batch,
                                  dnn_dtype dtype, const dnn_mb_params *p,
                                  const dnn_meas_kernel_table *t, lplan *lp,
                                  dnn_error *err) {
  size_t nt = dnn_meas_kernel_table_count(t);
  tctx c = {w, t, 0, DNN_PASS_FWD, dtype, NULL, 0, false, 0};
  c.rows = calloc(nt ? nt : 1, sizeof *c.rows);
  if (c.rows == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory planning micro-batches");
  dnn_status st = dnn_mb_plan_build_with(w->net, batch, dtype, p, table_costs,
                                         &c, &lp->plan, err);
  free(c.rows);
  lp->from_table = c.from_table;
  return st ? st : plan_copy(lp, err);
}

/* Plans from the profile (the library's planner). */
static dnn_status plan_from_profile(const cli_world *w, size_t batch,
                                    dnn_dtype dtype, const dnn_mb_params *p,
                                    lplan *lp, dnn_error *err) {
  dnn_status st =
      dnn_mb_plan_build(w->net, w->hw, batch, dtype, p, &lp->plan, err);
  return st ? st : plan_copy(lp, err);
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

/* ------------------------------------------------------------------------ */
/* Measurement                                                               */
/* ------------------------------------------------------------------------ */

/* Totals of one limit's measurements. A kernel is compared when its
 * schedule and baseline ran, the schedule fits the limit with cuDNN's
 * workspace and its output equals the baseline's. */
typedef struct mtot {
  size_t kernels, compared, not_run, over, unverified;
  double pred_base_s, pred_s; /* predicted, compared kernels */
  double base_s, sched_s;     /* measured (CUPTI or events) */
  double base_wall_s, sched_wall_s;
  double all_base_s, all_sched_s; /* every kernel that ran both ways */
  double err_sched, err_base;     /* median |predicted/measured - 1| */
} mtot;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *x, size_t n) {
  if (n == 0)
    return NAN;
  qsort(x, n, sizeof *x, cmp_double);
  return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

static bool compared(const dnn_meas_mb_result *m) {
  return m->ran && m->base_ran && !m->over_limit && m->verified;
}

static void measured_totals(const lplan *lp, mtot *t) {
  memset(t, 0, sizeof *t);
  double *es = calloc(lp->n ? lp->n : 1, sizeof *es);
  double *eb = calloc(lp->n ? lp->n : 1, sizeof *eb);
  size_t ns = 0, nb = 0;
  t->kernels = lp->n;
  for (size_t k = 0; k < lp->n; k++) {
    const dnn_meas_mb_result *m = &lp->meas[k];
    const dnn_mb_kernel *kn = &lp->kernels[k];
    if (!m->ran || !m->base_ran) {
      t->not_run++;
      continue;
    }
    t->all_base_s += m->base_t.median_s;
    t->all_sched_s += m->t.median_s;
    t->over += m->over_limit;
    t->unverified += !m->verified;
    if (!compared(m))
      continue;
    t->compared++;
    t->pred_base_s += kn->baseline.time_s;
    t->pred_s += kn->chosen.time_s;
    t->base_s += m->base_t.median_s;
    t->sched_s += m->t.median_s;
    t->base_wall_s += m->base_wall_s;
    t->sched_wall_s += m->wall_s;
    if (es && m->t.median_s > 0)
      es[ns++] = fabs(kn->chosen.time_s / m->t.median_s - 1);
    if (eb && m->base_t.median_s > 0)
      eb[nb++] = fabs(kn->baseline.time_s / m->base_t.median_s - 1);
  }
  t->err_sched = es ? median(es, ns) : DNAN;
  t->err_base = eb ? median(eb, nb) : DNAN;
  free(es);
  free(eb);
}

/* SIGINT or SIGTERM (a session's `timeout`) while measuring: stop after
 * the kernel in hand and print what was measured. */
static volatile sig_atomic_t stop_requested;

static void on_stop(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void mb_progress(size_t k, size_t n, const char *layer, dnn_pass pass,
                        const char *what) {
  fprintf(stderr, "dnnsim microbatch: [%zu/%zu] %s %s: %s\n", k + 1, n, layer,
          dnn_pass_name(pass), what);
  fflush(stderr);
}

/*
 * Measures every kernel of every limit's plan on GPU 0, kernel by kernel
 * (all limits of a kernel in one call). A kernel whose signature, pass,
 * schedules and baselines equal an earlier kernel's copies its results.
 * Stops at the first error that ends the session (a dead device); the
 * kernels measured by then keep their results.
 */
static dnn_status measure_plans(const cli_world *w, size_t batch, lplan *lps,
                                size_t nl, dnn_meas_gpu *g, dnn_error *err) {
  const dnn_net *net = w->net;
  size_t n = lps[0].n;
  for (size_t l = 0; l < nl; l++) {
    lps[l].meas = calloc(n ? n : 1, sizeof *lps[l].meas);
    if (lps[l].meas == NULL)
      return DNN_FAIL(err, DNN_ENOMEM, "out of memory");
    for (size_t k = 0; k < n; k++) {
      lps[l].meas[k].base_algo = DNN_CONV_ALGO_COUNT;
      lps[l].meas[k].rel_l2 = lps[l].meas[k].split_rel_l2 = NAN;
      lps[l].meas[k].wall_s = lps[l].meas[k].base_wall_s = NAN;
      snprintf(lps[l].meas[k].note, sizeof lps[l].meas[k].note, "not measured");
    }
  }
  dnn_meas_mb_params mp = dnn_meas_mb_default_params();
  if (w->scn.model.dtype == DNN_DTYPE_FP16 ||
      w->scn.model.dtype == DNN_DTYPE_BF16) {
    mp.verify_rel_l2 = 1e-2;
    mp.algo_rel_l2 = 5e-2;
  }
  char(*sig)[DNN_MEAS_SIG_MAX] = calloc(n ? n : 1, sizeof *sig);
  dnn_meas_mb_schedule sch[MAX_LIMITS];
  dnn_meas_mb_part *parts[MAX_LIMITS];
  dnn_meas_mb_result res[MAX_LIMITS];
  memset(parts, 0, sizeof parts);
  dnn_status st = DNN_OK;
  if (sig == NULL) {
    st = DNN_FAIL(err, DNN_ENOMEM, "out of memory");
    goto done;
  }
  for (size_t k = 0; k < n && st == DNN_OK; k++) {
    const dnn_mb_kernel *k0 = &lps[0].kernels[k];
    const char *name = dnn_net_layer(net, k0->layer)->name;
    if (stop_requested) {
      fprintf(stderr,
              "dnnsim microbatch: interrupted; %zu of %zu kernels measured\n",
              k, n);
      for (size_t l = 0; l < nl; l++)
        for (size_t r = k; r < n; r++)
          snprintf(lps[l].meas[r].note, sizeof lps[l].meas[r].note,
                   "not measured (interrupted)");
      break;
    }
    dnn_layer_signature(net, k0->layer, sig[k], sizeof sig[k]);
    /* An earlier kernel with the same shape, pass and plans. */
    size_t j = 0;
    for (; j < k; j++) {
      bool same =
          strcmp(sig[j], sig[k]) == 0 && lps[0].kernels[j].pass == k0->pass;
      for (size_t l = 0; l < nl && same; l++) {
        const dnn_mb_kernel *a = &lps[l].kernels[j], *b = &lps[l].kernels[k];
        same = a->chosen.n_parts == b->chosen.n_parts &&
               a->baseline.parts[0].algo == b->baseline.parts[0].algo;
        for (size_t i = 0; i < a->chosen.n_parts && same; i++)
          same = a->chosen.parts[i].batch == b->chosen.parts[i].batch &&
                 a->chosen.parts[i].count == b->chosen.parts[i].count &&
                 a->chosen.parts[i].algo == b->chosen.parts[i].algo;
      }
      if (same)
        break;
    }
    if (j < k) {
      for (size_t l = 0; l < nl; l++)
        lps[l].meas[k] = lps[l].meas[j];
      mb_progress(k, n, name, k0->pass, "same as an earlier kernel");
      continue;
    }
    for (size_t l = 0; l < nl && st == DNN_OK; l++) {
      const dnn_mb_kernel *kn = &lps[l].kernels[k];
      parts[l] =
          calloc(kn->chosen.n_parts ? kn->chosen.n_parts : 1, sizeof *parts[l]);
      if (parts[l] == NULL) {
        st = DNN_FAIL(err, DNN_ENOMEM, "out of memory");
        break;
      }
      for (size_t i = 0; i < kn->chosen.n_parts; i++) {
        parts[l][i].batch = kn->chosen.parts[i].batch;
        parts[l][i].count = kn->chosen.parts[i].count;
        parts[l][i].algo = (dnn_conv_algo)kn->chosen.parts[i].algo;
      }
      sch[l].parts = parts[l];
      sch[l].n_parts = kn->chosen.n_parts;
      sch[l].limit_bytes = lps[l].params.layer_workspace_bytes;
      sch[l].hint = (dnn_conv_algo)kn->baseline.parts[0].algo;
    }
    if (st == DNN_OK) {
      mb_progress(k, n, name, k0->pass, "measuring");
      st = dnn_meas_gpu_microbatch(g, net, k0->layer, k0->pass, batch, sch, nl,
                                   &mp, res, err);
      if (st == DNN_OK)
        for (size_t l = 0; l < nl; l++)
          lps[l].meas[k] = res[l];
    }
    for (size_t l = 0; l < nl; l++) {
      free(parts[l]);
      parts[l] = NULL;
    }
  }
done:
  free(sig);
  return st;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                    */
/* ------------------------------------------------------------------------ */

/* Everything the output shows. */
typedef struct report {
  const cli_world *w;
  lplan *lps;
  size_t nl;
  size_t batch;
  const char *kernels_csv; /* --kernels, or NULL */
  const char *device;      /* measured on, or NULL */
} report;

static const char *algo_name(dnn_conv_algo a) {
  return (unsigned)a < DNN_CONV_ALGO_COUNT ? dnn_conv_algo_name(a) : "-";
}

/* "1.23x", or "-" when it is not a number. */
static const char *fmt_x(double v, char *buf, size_t n) {
  if (isfinite(v))
    snprintf(buf, n, "%.2fx", v);
  else
    snprintf(buf, n, "-");
  return buf;
}

static void print_measured(const report *r, const lplan *lp) {
  char a[64], b[64], c[64], d[64], e[64], x1[32], x2[32];
  bool events = false;
  for (size_t k = 0; k < lp->n; k++)
    events = events || (lp->meas[k].ran && !lp->meas[k].cupti);
  printf("\nmeasured on %s%s:\n", r->device,
         events ? " (CUDA-event times: CUPTI recorded no kernels)" : "");
  printf("%-22s %-11s %10s %10s %7s | %-22s %10s %10s %7s %7s %10s %9s  %s\n",
         "layer", "pass", "pred base", "pred mb", "pred x", "cuDNN baseline",
         "base", "mb", "meas x", "wall x", "mb ws", "rel_l2", "check");
  for (size_t k = 0; k < lp->n; k++) {
    const dnn_mb_kernel *kn = &lp->kernels[k];
    const dnn_meas_mb_result *m = &lp->meas[k];
    const char *check = !m->ran || !m->base_ran ? "NOT RUN"
                        : m->over_limit         ? "OVER LIMIT"
                        : isnan(m->rel_l2)      ? "UNCHECKED"
                        : !m->verified          ? "MISMATCH"
                                                : "ok";
    printf(
        "%-22s %-11s %10s %10s %6.2fx | %-22s %10s %10s %7s %7s "
        "%10s %9.2g  %s%s%s\n",
        dnn_net_layer(r->w->net, kn->layer)->name, dnn_pass_name(kn->pass),
        cli_fmt_time(kn->baseline.time_s, a, sizeof a),
        cli_fmt_time(kn->chosen.time_s, b, sizeof b),
        ratio(kn->baseline.time_s, kn->chosen.time_s), algo_name(m->base_algo),
        m->base_ran ? cli_fmt_time(m->base_t.median_s, c, sizeof c) : "-",
        m->ran ? cli_fmt_time(m->t.median_s, d, sizeof d) : "-",
        fmt_x(m->ran && m->base_ran ? ratio(m->base_t.median_s, m->t.median_s)
                                    : DNAN,
              x1, sizeof x1),
        fmt_x(m->ran && m->base_ran ? ratio(m->base_wall_s, m->wall_s) : DNAN,
              x2, sizeof x2),
        cli_fmt_bytes(m->workspace_bytes, e, sizeof e), m->rel_l2, check,
        m->note[0] ? ": " : "", m->note);
  }
  mtot t;
  measured_totals(lp, &t);
  printf("measured (%s per layer): %zu of %zu kernels compared; "
         "convolutions %s -> %s, speedup %.3fx (predicted %.3fx for the "
         "same kernels; wall-clock %.3fx); every kernel that ran: %.3fx; "
         "median |error| schedule %.1f%%, baseline %.1f%%\n",
         cli_fmt_bytes(lp->params.layer_workspace_bytes, a, sizeof a),
         t.compared, t.kernels, cli_fmt_time(t.base_s, b, sizeof b),
         cli_fmt_time(t.sched_s, c, sizeof c), ratio(t.base_s, t.sched_s),
         ratio(t.pred_base_s, t.pred_s), ratio(t.base_wall_s, t.sched_wall_s),
         ratio(t.all_base_s, t.all_sched_s), 100 * t.err_sched,
         100 * t.err_base);
  if (t.compared < t.kernels)
    printf("not compared: %zu did not run, %zu over the limit with cuDNN's "
           "workspace, %zu outputs differ from the baseline or were not "
           "compared\n",
           t.not_run, t.over, t.unverified);
}

static void print_table(const report *r) {
  const dnn_scenario *scn = &r->w->scn;
  char a[64], b[64], c[64], d[64], div[512];
  for (size_t l = 0; l < r->nl; l++) {
    const lplan *lp = &r->lps[l];
    if (l > 0)
      printf("\n");
    printf("u-cuDNN plan: %s, batch %zu per replica, %s on %s\n",
           dnn_net_name(r->w->net), r->batch, dnn_dtype_name(scn->model.dtype),
           dnn_hw_get(r->w->hw)->name);
    if (r->kernels_csv)
      printf("costs: %s (%zu of %zu kernels; the rest from the profile)\n",
             r->kernels_csv, lp->from_table, lp->n);
    printf("solver %s, policy %s, per-layer workspace %s",
           solver_name(lp->params.solver),
           dnn_mb_policy_name(lp->params.policy),
           cli_fmt_bytes(lp->params.layer_workspace_bytes, a, sizeof a));
    if (lp->params.solver == DNN_MICROBATCHING_ILP)
      printf(", network-wide %s",
             cli_fmt_bytes(lp->sum.total_limit_bytes, b, sizeof b));
    printf("\n\n%-22s %-11s %-22s %10s %10s | %10s %10s %7s  %s\n", "layer",
           "pass", "undivided algorithm", "ws", "time", "ws", "time", "speedup",
           "micro-batches");
    for (size_t k = 0; k < lp->n; k++) {
      const dnn_mb_kernel *kn = &lp->kernels[k];
      const dnn_layer *ly = dnn_net_layer(r->w->net, kn->layer);
      printf("%-22s %-11s %-22s %10s %10s | %10s %10s %6.2fx  %s\n", ly->name,
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
           cli_fmt_time(lp->sum.baseline_s, a, sizeof a),
           cli_fmt_time(lp->sum.chosen_s, b, sizeof b), lp->sum.speedup);
    printf("forward + backward: %10s -> %10s  speedup %.3fx (all layers)\n",
           cli_fmt_time(lp->net_base_s, a, sizeof a),
           cli_fmt_time(lp->net_s, b, sizeof b),
           ratio(lp->net_base_s, lp->net_s));
    if (isfinite(lp->iter_base_s))
      printf("iteration:          %10s -> %10s  speedup %.3fx (optimizer and "
             "communication unchanged)\n",
             cli_fmt_time(lp->iter_base_s, a, sizeof a),
             cli_fmt_time(lp->iter_s, b, sizeof b),
             ratio(lp->iter_base_s, lp->iter_s));
    printf("workspace: largest %s (undivided %s), sum over kernels %s\n",
           cli_fmt_bytes(lp->sum.workspace_max_bytes, a, sizeof a),
           cli_fmt_bytes(lp->sum.baseline_workspace_max_bytes, b, sizeof b),
           cli_fmt_bytes(lp->sum.workspace_sum_bytes, c, sizeof c));
    if (lp->meas)
      print_measured(r, lp);
  }
}

/* CSV: the plan's columns, a leading limit_bytes column with several
 * limits or measurements, and the measured columns with measurements. */
static void print_csv(FILE *fp, const report *r) {
  char div[512];
  bool meas = r->lps[0].meas != NULL, lim = r->nl > 1 || meas;
  fprintf(fp,
          "%slayer,pass,baseline_algo,baseline_workspace_bytes,"
          "baseline_s,workspace_bytes,time_s,speedup,microbatches,"
          "division%s\n",
          lim ? "limit_bytes," : "",
          meas ? ",meas_baseline_algo,meas_baseline_s,meas_baseline_wall_s,"
                 "meas_baseline_workspace_bytes,meas_s,meas_wall_s,"
                 "meas_workspace_bytes,meas_speedup,meas_wall_speedup,"
                 "over_limit,rel_l2,split_rel_l2,verified,compared,note"
               : "");
  for (size_t l = 0; l < r->nl; l++) {
    const lplan *lp = &r->lps[l];
    for (size_t k = 0; k < lp->n; k++) {
      const dnn_mb_kernel *kn = &lp->kernels[k];
      if (lim)
        fprintf(fp, "%.0f,", lp->params.layer_workspace_bytes);
      fprintf(fp, "%s,%s,%s,%.9g,%.9g,%.9g,%.9g,%.6g,%zu,\"%s\"",
              dnn_net_layer(r->w->net, kn->layer)->name,
              dnn_pass_name(kn->pass),
              dnn_conv_algo_name((dnn_conv_algo)kn->baseline.parts[0].algo),
              kn->baseline.workspace_bytes, kn->baseline.time_s,
              kn->chosen.workspace_bytes, kn->chosen.time_s,
              ratio(kn->baseline.time_s, kn->chosen.time_s),
              kn->chosen.n_microbatches,
              dnn_mb_config_format(&kn->chosen, div, sizeof div));
      if (meas) {
        const dnn_meas_mb_result *m = &lp->meas[k];
        char note[sizeof m->note];
        snprintf(note, sizeof note, "%s", m->note);
        for (char *c = note; *c; c++)
          if (*c == '"' || (unsigned char)*c < 0x20)
            *c = '\'';
        fprintf(fp,
                ",%s,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.6g,%.6g,%d,%.3g,%.3g,%d,"
                "%d,\"%s\"",
                algo_name(m->base_algo),
                m->base_ran ? m->base_t.median_s : DNAN, m->base_wall_s,
                m->base_workspace_bytes, m->ran ? m->t.median_s : DNAN,
                m->wall_s, m->workspace_bytes,
                m->ran && m->base_ran ? ratio(m->base_t.median_s, m->t.median_s)
                                      : DNAN,
                m->ran && m->base_ran ? ratio(m->base_wall_s, m->wall_s) : DNAN,
                m->over_limit, m->rel_l2, m->split_rel_l2, m->verified,
                compared(m), note);
      }
      fprintf(fp, "\n");
    }
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

/* A number, or null when it is not finite (JSON has no NaN). */
static json_t *jnum(double v) {
  return isfinite(v) ? json_real(v) : json_null();
}

static json_t *measured_json(const dnn_meas_mb_result *m) {
  json_t *o = json_object();
  json_object_set_new(o, "ran", json_boolean(m->ran));
  json_object_set_new(o, "time_s", jnum(m->ran ? m->t.median_s : DNAN));
  json_object_set_new(o, "ci_lo_s", jnum(m->ran ? m->t.ci_lo_s : DNAN));
  json_object_set_new(o, "ci_hi_s", jnum(m->ran ? m->t.ci_hi_s : DNAN));
  json_object_set_new(o, "wall_s", jnum(m->wall_s));
  json_object_set_new(o, "workspace_bytes", jnum(m->workspace_bytes));
  json_object_set_new(o, "over_limit", json_boolean(m->over_limit));
  json_object_set_new(o, "baseline_ran", json_boolean(m->base_ran));
  json_object_set_new(o, "baseline_algo", json_string(algo_name(m->base_algo)));
  json_object_set_new(o, "baseline_s",
                      jnum(m->base_ran ? m->base_t.median_s : DNAN));
  json_object_set_new(o, "baseline_wall_s", jnum(m->base_wall_s));
  json_object_set_new(o, "baseline_workspace_bytes",
                      jnum(m->base_workspace_bytes));
  json_object_set_new(
      o, "speedup",
      jnum(m->ran && m->base_ran ? m->base_t.median_s / m->t.median_s : DNAN));
  json_object_set_new(o, "wall_speedup", jnum(m->base_wall_s / m->wall_s));
  json_object_set_new(o, "rel_l2", jnum(m->rel_l2));
  json_object_set_new(o, "split_rel_l2", jnum(m->split_rel_l2));
  json_object_set_new(o, "verified", json_boolean(m->verified));
  json_object_set_new(o, "compared", json_boolean(compared(m)));
  json_object_set_new(o, "timer", json_string(m->cupti ? "cupti" : "events"));
  json_object_set_new(o, "note", json_string(m->note));
  return o;
}

static json_t *plan_json(const report *r, const lplan *lp) {
  const dnn_scenario *scn = &r->w->scn;
  char div[512];
  json_t *j = json_object();
  json_t *layers = json_array();
  if (!j || !layers) {
    json_decref(j);
    json_decref(layers);
    return NULL;
  }
  json_object_set_new(j, "scenario", json_string(scn->path));
  json_object_set_new(j, "network", json_string(dnn_net_name(r->w->net)));
  json_object_set_new(j, "profile", json_string(dnn_hw_get(r->w->hw)->name));
  if (r->kernels_csv) {
    json_object_set_new(j, "kernels_csv", json_string(r->kernels_csv));
    json_object_set_new(j, "kernels_from_csv",
                        json_integer((json_int_t)lp->from_table));
  }
  json_object_set_new(j, "batch", json_integer((json_int_t)r->batch));
  json_object_set_new(j, "dtype",
                      json_string(dnn_dtype_name(scn->model.dtype)));
  json_object_set_new(j, "solver", json_string(solver_name(lp->params.solver)));
  json_object_set_new(j, "policy",
                      json_string(dnn_mb_policy_name(lp->params.policy)));
  json_object_set_new(j, "layer_workspace_bytes",
                      json_real(lp->params.layer_workspace_bytes));
  if (lp->params.solver == DNN_MICROBATCHING_ILP)
    json_object_set_new(j, "total_workspace_bytes",
                        json_real(lp->sum.total_limit_bytes));
  json_object_set_new(j, "speedup",
                      json_real(ratio(lp->net_base_s, lp->net_s)));
  json_object_set_new(j, "conv_speedup", json_real(lp->sum.speedup));
  json_object_set_new(j, "conv_baseline_s", json_real(lp->sum.baseline_s));
  json_object_set_new(j, "conv_s", json_real(lp->sum.chosen_s));
  json_object_set_new(j, "compute_baseline_s", json_real(lp->net_base_s));
  json_object_set_new(j, "compute_s", json_real(lp->net_s));
  if (isfinite(lp->iter_base_s)) {
    json_object_set_new(j, "iteration_baseline_s", json_real(lp->iter_base_s));
    json_object_set_new(j, "iteration_s", json_real(lp->iter_s));
    json_object_set_new(j, "iteration_speedup",
                        json_real(ratio(lp->iter_base_s, lp->iter_s)));
  }
  json_object_set_new(j, "workspace_sum_bytes",
                      json_real(lp->sum.workspace_sum_bytes));
  json_object_set_new(j, "workspace_max_bytes",
                      json_real(lp->sum.workspace_max_bytes));
  if (lp->meas) {
    mtot t;
    measured_totals(lp, &t);
    json_t *m = json_object();
    json_object_set_new(m, "device", json_string(r->device));
    json_object_set_new(m, "kernels", json_integer((json_int_t)t.kernels));
    json_object_set_new(m, "compared", json_integer((json_int_t)t.compared));
    json_object_set_new(m, "not_run", json_integer((json_int_t)t.not_run));
    json_object_set_new(m, "over_limit", json_integer((json_int_t)t.over));
    json_object_set_new(m, "unverified",
                        json_integer((json_int_t)t.unverified));
    json_object_set_new(m, "conv_baseline_s", json_real(t.base_s));
    json_object_set_new(m, "conv_s", json_real(t.sched_s));
    json_object_set_new(m, "conv_speedup",
                        json_real(ratio(t.base_s, t.sched_s)));
    json_object_set_new(m, "conv_wall_speedup",
                        json_real(ratio(t.base_wall_s, t.sched_wall_s)));
    json_object_set_new(m, "predicted_conv_speedup",
                        json_real(ratio(t.pred_base_s, t.pred_s)));
    json_object_set_new(m, "all_ran_conv_speedup",
                        json_real(ratio(t.all_base_s, t.all_sched_s)));
    json_object_set_new(m, "median_rel_error_schedule", jnum(t.err_sched));
    json_object_set_new(m, "median_rel_error_baseline", jnum(t.err_base));
    json_object_set_new(j, "measured", m);
  }
  for (size_t k = 0; k < lp->n; k++) {
    const dnn_mb_kernel *kn = &lp->kernels[k];
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
    if (lp->meas)
      json_object_set_new(o, "measured", measured_json(&lp->meas[k]));
    json_array_append_new(layers, o);
  }
  json_object_set_new(j, "layers", layers);
  return j;
}

/* One limit: its object as before; several: {"runs": [...]}. */
static int print_json(const report *r) {
  if (r->nl == 1)
    return cli_print_json(plan_json(r, &r->lps[0]));
  json_t *runs = json_array(), *j = json_object();
  if (!runs || !j) {
    json_decref(runs);
    json_decref(j);
    return cli_print_json(NULL);
  }
  for (size_t l = 0; l < r->nl; l++) {
    json_t *o = plan_json(r, &r->lps[l]);
    if (o == NULL) {
      json_decref(runs);
      json_decref(j);
      return cli_print_json(NULL);
    }
    json_array_append_new(runs, o);
  }
  json_object_set_new(j, "runs", runs);
  return cli_print_json(j);
}

/* ------------------------------------------------------------------------ */
/* The command                                                               */
/* ------------------------------------------------------------------------ */

/* "8MiB,64MiB" into limits. */
static bool parse_limits(const char *text, double *out, size_t *n,
                         dnn_error *err) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", text);
  *n = 0;
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
    if (*n >= MAX_LIMITS) {
      DNN_FAIL(err, DNN_EINVAL, "at most %d limits", MAX_LIMITS);
      return false;
    }
    if (dnn_mb_size_parse(tok, &out[*n], err))
      return false;
    (*n)++;
  }
  if (*n == 0)
    DNN_FAIL(err, DNN_EINVAL, "no size in '%s'", text);
  return *n > 0;
}

int cli_cmd_microbatch(int argc, char **argv) {
  cli_scn_opts o = {.engine = -1};
  const char *ws_text = NULL, *total_text = NULL, *policy_text = NULL;
  const char *solver_text = NULL, *gap_text = NULL, *time_text = NULL,
             *kernels_text = NULL;
  const char *profile_out = NULL;
  bool measure = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      help();
      return CLI_EXIT_OK;
    }
    if (strcmp(a, "--measure") == 0) {
      measure = true;
      continue;
    }
    const char **slot = strcmp(a, "--workspace") == 0         ? &ws_text
                        : strcmp(a, "--total-workspace") == 0 ? &total_text
                        : strcmp(a, "--policy") == 0          ? &policy_text
                        : strcmp(a, "--solver") == 0          ? &solver_text
                        : strcmp(a, "--ilp-gap") == 0         ? &gap_text
                        : strcmp(a, "--ilp-time") == 0        ? &time_text
                        : strcmp(a, "--kernels") == 0         ? &kernels_text
                        : strcmp(a, "--profile-out") == 0     ? &profile_out
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
  if (profile_out && !measure)
    return cli_usage_error("microbatch", "--profile-out needs --measure");

  dnn_error err;
  dnn_error_clear(&err);
  dnn_mb_params p = dnn_mb_default_params();
  double limits[MAX_LIMITS], total = NAN;
  size_t nl = 0;
  if (ws_text && !parse_limits(ws_text, limits, &nl, &err))
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
  if (time_text) {
    char *end;
    p.ilp_time_limit_s = strtod(time_text, &end);
    if (end == time_text || *end != '\0' || !(p.ilp_time_limit_s >= 0) ||
        !isfinite(p.ilp_time_limit_s))
      return cli_usage_error("microbatch",
                             "--ilp-time needs a number of seconds >= 0, not "
                             "'%s'",
                             time_text);
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
  dnn_status st;
  /* Without a device there is nothing to measure: say so first. */
  if (measure && (st = dnn_meas_gpu_available(&err)))
    return cli_fail(&err, st);

  cli_world w;
  dnn_meas_kernel_table *kt = NULL;
  dnn_meas_gpu *gpu = NULL;
  lplan lps[MAX_LIMITS];
  memset(lps, 0, sizeof lps);
  int rc = CLI_EXIT_OK;
  st = cli_world_load(&o, &w, &err);
  if (st) {
    cli_world_free(&w);
    return cli_fail(&err, st);
  }
  if (kernels_text && ((st = dnn_meas_kernel_table_alloc(&kt, &err)) ||
                       (st = dnn_meas_kernel_csv_read(kernels_text, kt, &err))))
    goto fail;
  dnn_scenario *scn = &w.scn;
  if (!solver_set && scn->training.micro_batching != DNN_MICROBATCHING_NONE)
    p.solver = scn->training.micro_batching;
  if (!policy_text)
    p.policy = scn->training.mb_policy;
  if (nl == 0)
    limits[nl++] = scn->hardware.workspace_MB * MIB;
  p.total_workspace_bytes =
      total_text ? total : scn->training.workspace_MB * MIB;
  size_t d = dnn_scn_data_degree(scn);
  size_t batch = d > 0 ? scn->model.batch / d : scn->model.batch;
  dnn_microbatching scn_mb = scn->training.micro_batching;

  for (size_t l = 0; l < nl; l++) {
    lplan *lp = &lps[l];
    /* The limit is the baseline's too (dnn_hw_layer_time). */
    scn->hardware.workspace_MB = limits[l] / MIB;
    scn->training.micro_batching = scn_mb;
    lp->params = p;
    lp->params.layer_workspace_bytes = limits[l];
    st = kt ? plan_from_table(&w, batch, scn->model.dtype, &lp->params, kt, lp,
                              &err)
            : plan_from_profile(&w, batch, scn->model.dtype, &lp->params, lp,
                                &err);
    if (st)
      goto fail;
    /* The baseline everywhere is undivided convolutions. */
    scn->training.micro_batching = DNN_MICROBATCHING_NONE;
    double all_s, conv_s;
    network_times(&w, batch, &all_s, &conv_s);
    lp->net_base_s = all_s - conv_s + lp->sum.baseline_s;
    lp->net_s = all_s - conv_s + lp->sum.chosen_s;
    lp->iter_base_s = lp->iter_s = NAN;
    dnn_strat_input in = cli_world_input(&w);
    dnn_prediction pred;
    dnn_error perr;
    if (dnn_strat_predict(&in, &pred, &perr) == DNN_OK) {
      lp->iter_base_s = pred.iteration_s - conv_s + lp->sum.baseline_s;
      lp->iter_s = pred.iteration_s - conv_s + lp->sum.chosen_s;
    }
  }

  report r = {&w, lps, nl, batch, kernels_text, NULL};
  if (measure) {
    if ((st = dnn_meas_gpu_alloc(scn->model.dtype, &gpu, &err)))
      goto fail;
    r.device = dnn_meas_gpu_name(gpu);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    st = measure_plans(&w, batch, lps, nl, gpu, &err);
    if (st) {
      /* Print what was measured before the device stopped. */
      cli_fail(&err, st);
      rc = cli_exit_code(st);
      st = DNN_OK;
    }
  }
  if (profile_out) {
    FILE *fp = fopen(profile_out, "w");
    if (fp == NULL) {
      st = DNN_FAIL(&err, DNN_EIO, "cannot write %s", profile_out);
      goto fail;
    }
    print_csv(fp, &r);
    if (fclose(fp) != 0) {
      st = DNN_FAIL(&err, DNN_EIO, "writing %s failed", profile_out);
      goto fail;
    }
  }
  int prc = CLI_EXIT_OK;
  switch (o.format) {
  case CLI_FORMAT_TABLE:
    print_table(&r);
    break;
  case CLI_FORMAT_CSV:
    print_csv(stdout, &r);
    break;
  case CLI_FORMAT_JSON:
    prc = print_json(&r);
    break;
  }
  if (rc == CLI_EXIT_OK)
    rc = prc;
fail:
  if (st)
    rc = cli_fail(&err, st);
  for (size_t l = 0; l < MAX_LIMITS; l++)
    lplan_free(&lps[l]);
  dnn_meas_gpu_free(gpu);
  dnn_meas_kernel_table_free(kt);
  cli_world_free(&w);
  return rc;
}
