/*
 * The data files and gnuplot scripts of every chart kind. Each script is
 * meant to be read and edited: sections with banner comments, one plot
 * clause per series, and the quantities defined in comments.
 *
 * Invariant: the script refers to its data and image by file name only and
 * prefixes them with its own directory (from ARG0), so it renders the same
 * from any working directory; numbers in the data file carry the units
 * named in its header line.
 *
 * Quantities (docs/plots.md): for a series with configurations P_1 < P_2 <
 * ... devices and throughputs X(P), the one-device throughput is
 * X1 = X(P_1) / (P_1 e_1), with e_1 the model's weak-scaling efficiency of
 * the smallest configuration (one device at the same per-device batch, no
 * communication); speedup S(P) = X(P) / X1, ideal linear scaling X1 P,
 * parallel efficiency E(P) = S(P) / P. For weak scaling this is exactly
 * the model's efficiency; for strong scaling it also counts the loss from
 * smaller per-device batches.
 *
 * Style: Okabe & Ito's colour-blind-safe palette, axes on the left and
 * bottom only, outward tics, light grid, legends outside the data area,
 * log2 device axes (the usual doubling sweeps fall on tics).
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Okabe, M. and Ito, K. (2008), Color Universal Design: the palette
 * without its yellow, which is too light on white. */
static const char *const palette[] = {"#0072B2", "#D55E00", "#009E73",
                                      "#CC79A7", "#E69F00", "#56B4E9",
                                      "#000000", "#999999"};
/* Filled circle, square, triangle, diamond, inverted triangle, pentagon. */
static const int point_types[] = {7, 5, 9, 13, 11, 15, 7, 5};
#define N_STYLES (DNN_ARRAY_LEN(palette))

/* Breakdown components: dnn_breakdown fields in stacking order (bottom up),
 * with their legend names and colours. */
typedef struct component {
  const char *name;
  const char *column;
  const char *color;
} component;
static const component components[] = {
    {"forward", "forward", "#0072B2"},
    {"backward", "backward", "#56B4E9"},
    {"exposed communication", "comm_exposed", "#D55E00"},
    {"pipeline bubble", "bubble", "#999999"},
    {"recompute", "recompute", "#CC79A7"},
    {"optimizer", "optimizer", "#009E73"},
};
#define N_COMPONENTS (DNN_ARRAY_LEN(components))

/* Timeline categories beyond this many are merged into "other". */
#define MAX_TIMELINE_CATS 8

static double component_s(const dnn_breakdown *b, size_t c) {
  const double v[] = {b->forward_s, b->backward_s,  b->comm_exposed_s,
                      b->bubble_s,  b->recompute_s, b->optimizer_s};
  return v[c];
}

/* ---- Units -------------------------------------------------------------- */

typedef struct time_unit {
  const char *name;
  double per_s;
} time_unit;

/* The unit that shows `max_s` with one to three integer digits. */
static time_unit pick_unit(double max_s) {
  if (max_s >= 1)
    return (time_unit){"s", 1};
  if (max_s >= 1e-3)
    return (time_unit){"ms", 1e3};
  return (time_unit){"µs", 1e6};
}

/* ---- Shared pieces ---------------------------------------------------------
 */

/* Points of series `s`, sorted by device count (then insertion order). */
typedef struct sorted {
  size_t *idx;
  size_t n;
} sorted;

static const dnn__plot_point *sort_base;

static int by_devices(const void *a, const void *b) {
  size_t i = *(const size_t *)a, j = *(const size_t *)b;
  double x = sort_base[i].devices, y = sort_base[j].devices;
  if (x != y)
    return x < y ? -1 : 1;
  return i < j ? -1 : (i > j);
}

/* Fills s->idx (caller-provided, n_pts long) with series `k`'s points. */
static void series_points(const dnn_plot *pl, size_t k, bool sort_x,
                          sorted *s) {
  s->n = 0;
  for (size_t i = 0; i < pl->n_pts; i++)
    if (pl->pts[i].series == k)
      s->idx[s->n++] = i;
  if (sort_x) {
    sort_base = pl->pts;
    qsort(s->idx, s->n, sizeof s->idx[0], by_devices);
  }
}

static void comment_lines(dnn__buf *b, const char *text) {
  const char *p = text;
  while (*p) {
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    dnn__buf_appendf(b, "# %.*s\n", (int)n, p);
    p += n;
    if (*p == '\n')
      p++;
  }
}

static void banner(dnn__buf *b, const char *title) {
  char line[81];
  int n = snprintf(line, sizeof line, "# ---- %s ", title);
  for (size_t i = n > 0 ? (size_t)n : 0; i < 78; i++)
    line[i] = '-';
  line[78] = '\0';
  dnn__buf_appendf(b, "\n%s\n", line);
}

static const char *describe(dnn_plot_kind k) {
  switch (k) {
  case DNN_PLOT_SCALING:
    return "throughput and speedup against device count";
  case DNN_PLOT_EFFICIENCY:
    return "parallel efficiency against device count";
  case DNN_PLOT_BREAKDOWN:
    return "iteration time split into its components";
  case DNN_PLOT_VALIDATION:
    return "predicted against measured iteration time";
  case DNN_PLOT_TIMELINE:
    return "one simulated iteration per device and stream";
  default:
    return "";
  }
}

static void script_head(dnn__buf *b, const dnn_plot *pl, dnn_plot_format fmt,
                        const char *data_name, const char *image_name, size_t w,
                        size_t h) {
  const dnn_plot_params *pp = &pl->params;
  dnn__buf_appendf(b, "# dnnsim %s chart: %s.\n", dnn_plot_kind_name(pp->kind),
                   describe(pp->kind));
  dnn__buf_appendf(b, "# Written by dnnsim %s.\n", dnn_version());
  if (pp->note[0])
    comment_lines(b, pp->note);
  dnn__buf_appendf(b,
                   "#\n"
                   "# The numbers are in %s (next to this script, one block "
                   "per series,\n"
                   "# selected with 'index'); this script draws %s.\n"
                   "# Re-render from any directory:  gnuplot PATH/TO/THIS.gp\n",
                   data_name, image_name);

  banner(b, "Files, relative to this script's directory");
  dnn__buf_append(b, "dir = \"\"\n"
                     "if (exists(\"ARG0\") && strlen(ARG0) > 0) {\n"
                     "  rest = ARG0\n"
                     "  while (strstrt(rest, \"/\") > 0) {\n"
                     "    dir = dir . rest[1:strstrt(rest, \"/\")]\n"
                     "    rest = rest[strstrt(rest, \"/\") + 1:]\n"
                     "  }\n"
                     "}\n");
  dnn__buf_appendf(b, "data = dir . \"%s\"\n", data_name);

  banner(b, "Output");
  const char *font = pp->font[0] ? pp->font : "Sans";
  switch (fmt) {
  case DNN_PLOT_PNG:
    dnn__buf_appendf(b,
                     "set terminal pngcairo size %zu,%zu noenhanced "
                     "font \"%s,%g\" linewidth 1.5\n",
                     w, h, font, pp->font_pt);
    break;
  case DNN_PLOT_SVG:
    dnn__buf_appendf(b,
                     "set terminal svg size %zu,%zu dynamic noenhanced "
                     "font \"%s,%g\" linewidth 1.5 background rgb \"white\"\n",
                     w, h, font, pp->font_pt);
    break;
  case DNN_PLOT_PDF:
    /* 72 pixels per inch keeps the PNG's proportions of text to chart. */
    dnn__buf_appendf(b,
                     "set terminal pdfcairo size %.2fin,%.2fin noenhanced "
                     "font \"%s,%g\" linewidth 1.5\n",
                     dnn__d(w) / 72, dnn__d(h) / 72, font, pp->font_pt);
    break;
  }
  dnn__buf_appendf(b, "set output dir . \"%s\"\n", image_name);
  dnn__buf_append(b, "set encoding utf8\n");

  banner(b, "Style: Okabe-Ito colour-blind-safe palette, one per series");
  for (size_t i = 0; i < N_STYLES; i++)
    dnn__buf_appendf(b, "set linetype %zu lc rgb \"%s\" lw 2 pt %d ps 1.3\n",
                     i + 1, palette[i], point_types[i]);
  dnn__buf_appendf(b, "set linetype cycle %zu\n", N_STYLES);
  dnn__buf_append(b, "set border 3 lw 1 lc rgb \"#333333\"\n"
                     "set tics nomirror out scale 0.7\n"
                     "set style line 100 lc rgb \"#e0e0e0\" lw 1 dt 1\n"
                     "set grid back ls 100\n");
  dnn__buf_append(b, "set key Left reverse samplen 3 width 1\n");
  /* Breakdown series are bar groups with their own titles, not entries. */
  if (pp->key_title[0] && pp->kind != DNN_PLOT_BREAKDOWN)
    dnn__buf_appendf(b, "set key title \"%s\" left\n", pp->key_title);
}

static void title_line(dnn__buf *b, const dnn_plot *pl) {
  if (pl->params.title[0])
    dnn__buf_appendf(b, "set title \"%s\" font \",%g\"\n", pl->params.title,
                     pl->params.font_pt + 2);
}

static void ideal_style(dnn__buf *b) {
  dnn__buf_append(b, "ideal = \"dt 2 lw 1.5 lc rgb '#666666'\"\n");
}

/* ---- Scaling and efficiency --------------------------------------------- */

/* The one-device throughput X1 of a series (see the header comment). */
static double one_device(const dnn_plot *pl, const sorted *s) {
  const dnn__plot_point *p = &pl->pts[s->idx[0]];
  double e = p->model_efficiency;
  if (!(e > 0) || !isfinite(e))
    e = 1;
  return p->throughput / (p->devices * e);
}

/* Writes the scaling data and fills x1[k] (one-device throughput per
 * series) and range: devices min/max, throughput min/max, speedup min/max,
 * efficiency max (%). */
static void scaling_data(const dnn_plot *pl, size_t *idx, dnn__buf *d,
                         double *x1, double range[7]) {
  for (size_t i = 0; i < 7; i++)
    range[i] = i % 2 ? 0 : INFINITY;
  range[6] = 0;
  dnn__buf_append(d, "# dnnsim scaling data: one block per series.\n"
                     "# speedup = throughput / X1, X1 = one-device throughput "
                     "of the series'\n"
                     "# smallest configuration; efficiency = speedup / "
                     "devices; ideal = X1 x devices.\n");
  for (size_t k = 0; k < pl->series.n; k++) {
    sorted s = {idx, 0};
    series_points(pl, k, true, &s);
    if (s.n == 0)
      continue;
    x1[k] = one_device(pl, &s);
    dnn__buf_appendf(d,
                     "%s# series %zu: %s\n"
                     "# devices throughput_samples_per_s speedup "
                     "efficiency_pct ideal_samples_per_s iteration_s "
                     "model_efficiency_pct label\n",
                     k ? "\n\n" : "", k, pl->series.v[k]);
    for (size_t i = 0; i < s.n; i++) {
      const dnn__plot_point *p = &pl->pts[s.idx[i]];
      double speedup = p->throughput / x1[k];
      double ideal = x1[k] * p->devices;
      double eff_pct = 100 * speedup / p->devices;
      dnn__buf_appendf(d, "%.9g %.9g %.9g %.9g %.9g %.9g %.9g \"%s\"\n",
                       p->devices, p->throughput, speedup, eff_pct, ideal,
                       p->iteration_s, 100 * p->model_efficiency, p->label);
      double lo[3] = {p->devices, fmin(p->throughput, ideal),
                      fmin(speedup, p->devices)};
      double hi[3] = {p->devices, fmax(p->throughput, ideal),
                      fmax(speedup, p->devices)};
      for (size_t r = 0; r < 3; r++) {
        range[2 * r] = fmin(range[2 * r], lo[r]);
        range[2 * r + 1] = fmax(range[2 * r + 1], hi[r]);
      }
      range[6] = fmax(range[6], eff_pct);
    }
  }
}

/* Tics at 1, 2 and 5 times the powers of ten within [lo, hi] on a log
 * axis (powers of ten alone beyond four decades): round numbers that stay
 * readable. With fewer than two such tics gnuplot's own are kept. */
static void log_tics(dnn__buf *b, const char *axis, double lo, double hi) {
  if (!(lo > 0) || !(hi > lo) || !isfinite(hi))
    return;
  static const double steps[] = {1, 2, 5};
  size_t n_steps = hi / lo > 1e4 ? 1 : DNN_ARRAY_LEN(steps);
  double tics[64];
  size_t n = 0;
  for (double p = pow(10, floor(log10(lo))); p <= hi && n < 60; p *= 10)
    for (size_t i = 0; i < n_steps; i++)
      if (steps[i] * p >= lo && steps[i] * p <= hi)
        tics[n++] = steps[i] * p;
  if (n < 2)
    return;
  dnn__buf_appendf(b, "set %stics (", axis);
  for (size_t i = 0; i < n; i++)
    dnn__buf_appendf(b, "%s%.6g", i ? ", " : "", tics[i]);
  dnn__buf_append(b, ")\n");
}

static void device_axis(dnn__buf *b, const double range[2]) {
  dnn__buf_appendf(b,
                   "set logscale x 2\n"
                   "set xrange [%.6g:%.6g]\n"
                   "set format x \"%%.0f\"\n"
                   "set xlabel \"devices\"\n",
                   range[0] / 1.3, range[1] * 1.3);
}

/* Plot clauses of one column per series: "data index k using 1:COL". */
static void series_clauses(dnn__buf *b, const dnn_plot *pl, int column) {
  for (size_t k = 0; k < pl->series.n; k++)
    dnn__buf_appendf(b,
                     ", \\\n     data index %zu using 1:%d with linespoints "
                     "lt %zu title \"%s\"",
                     k, column, k % N_STYLES + 1, pl->series.v[k]);
}

static void scaling_script(const dnn_plot *pl, size_t *idx, dnn__buf *d,
                           dnn__buf *b) {
  double *x1 = dnn_calloc(pl->series.n, sizeof *x1);
  if (x1 == NULL) {
    b->failed = true;
    return;
  }
  double range[7];
  scaling_data(pl, idx, d, x1, range);
  bool shared = true;
  for (size_t k = 1; k < pl->series.n; k++)
    shared = shared && dnn_close(x1[k], x1[0], 1e-6);
  dnn_free(x1);

  banner(b, "Layout: throughput (left), speedup (right), legend at the right");
  dnn__buf_append(b, "set multiplot layout 1,2");
  if (pl->params.title[0])
    dnn__buf_appendf(b, " title \"%s\" font \",%g\"", pl->params.title,
                     pl->params.font_pt + 2);
  dnn__buf_append(b, " \\\n    margins screen 0.07,0.79,0.14,0.88 spacing "
                     "screen 0.08\n");
  ideal_style(b);
  device_axis(b, range);
  dnn__buf_append(b, "set key at screen 0.81,screen 0.88 left top vertical "
                     "Left reverse samplen 3\n");

  banner(b, "Left: throughput, log-log; ideal = X1 x devices");
  dnn__buf_appendf(b,
                   "set logscale y 10\n"
                   "set yrange [%.6g:%.6g]\n"
                   "set format y \"%%.0s%%c\"\n"
                   "set ylabel \"throughput (samples/s)\"\n",
                   range[2] / 1.3, range[3] * 1.3);
  log_tics(b, "y", range[2] / 1.3, range[3] * 1.3);
  dnn__buf_append(b, "plot ");
  if (shared) {
    dnn__buf_append(b, "data index 0 using 1:5 with lines @ideal title "
                       "\"ideal linear scaling\"");
  } else {
    /* Each series has its own X1: its ideal line, dashed, in its own
     * colour; the legend shows the dash once, in grey. */
    dnn__buf_append(b, "NaN with lines @ideal title \"ideal linear "
                       "scaling\"");
    for (size_t k = 0; k < pl->series.n; k++)
      dnn__buf_appendf(b,
                       ", \\\n     data index %zu using 1:5 with lines dt 2 "
                       "lw 1.2 lc %zu notitle",
                       k, k % N_STYLES + 1);
  }
  series_clauses(b, pl, 2);
  dnn__buf_append(b, "\n");

  banner(b, "Right: speedup S = throughput / X1; ideal S = devices");
  dnn__buf_appendf(b,
                   "unset key\n"
                   "set logscale y 2\n"
                   "set ytics autofreq\n"
                   "set yrange [%.6g:%.6g]\n"
                   "set format y \"%%.0f\"\n"
                   "set ylabel \"speedup over one device\"\n"
                   "plot x with lines @ideal",
                   range[4] / 1.3, range[5] * 1.3);
  series_clauses(b, pl, 3);
  dnn__buf_append(b, "\nunset multiplot\n");
}

static void efficiency_script(const dnn_plot *pl, size_t *idx, dnn__buf *d,
                              dnn__buf *b) {
  double *x1 = dnn_calloc(pl->series.n, sizeof *x1);
  if (x1 == NULL) {
    b->failed = true;
    return;
  }
  double range[7];
  scaling_data(pl, idx, d, x1, range);
  dnn_free(x1);
  banner(b, "Axes");
  title_line(b, pl);
  ideal_style(b);
  device_axis(b, range);
  /* Superlinear efficiencies (above 100 %) widen the axis. */
  dnn__buf_appendf(b,
                   "set yrange [0:%.6g]\n"
                   "set ytics 0,20\n"
                   "set ylabel \"parallel efficiency (%%)\"\n"
                   "set key outside right top vertical\n",
                   fmax(105.0, range[6] * 1.05));
  banner(b, "Efficiency E = speedup / devices (100 % is ideal)");
  dnn__buf_append(b, "plot 100 with lines @ideal title \"ideal\"");
  series_clauses(b, pl, 4);
  dnn__buf_append(b, "\n");
}

/* ---- Breakdown --------------------------------------------------------------
 */

static void breakdown_script(const dnn_plot *pl, size_t *idx, dnn__buf *d,
                             dnn__buf *b) {
  double max_total = 0;
  size_t max_label = 0;
  bool used[N_COMPONENTS] = {false};
  for (size_t i = 0; i < pl->n_pts; i++) {
    double t = 0;
    for (size_t c = 0; c < N_COMPONENTS; c++) {
      double v = component_s(&pl->pts[i].parts, c);
      t += v;
      used[c] = used[c] || v > 0;
    }
    max_total = fmax(max_total, t);
    size_t len = strlen(pl->pts[i].label);
    max_label = len > max_label ? len : max_label;
  }
  time_unit u = pick_unit(max_total);

  dnn__buf_appendf(d,
                   "# dnnsim breakdown data (times in %s per iteration), "
                   "one block per series.\n",
                   u.name);
  for (size_t k = 0; k < pl->series.n; k++) {
    sorted s = {idx, 0};
    series_points(pl, k, false, &s);
    dnn__buf_appendf(d, "%s# series %zu: %s\n# label", k ? "\n\n" : "", k,
                     pl->series.v[k]);
    for (size_t c = 0; c < N_COMPONENTS; c++)
      dnn__buf_appendf(d, " %s", components[c].column);
    dnn__buf_append(d, " total\n");
    for (size_t i = 0; i < s.n; i++) {
      const dnn__plot_point *p = &pl->pts[s.idx[i]];
      dnn__buf_appendf(d, "\"%s\"", p->label);
      double t = 0;
      for (size_t c = 0; c < N_COMPONENTS; c++) {
        double v = component_s(&p->parts, c) * u.per_s;
        t += v;
        dnn__buf_appendf(d, " %.9g", v);
      }
      dnn__buf_appendf(d, " %.9g\n", t);
    }
  }

  banner(b, "Axes: one stacked bar per configuration");
  title_line(b, pl);
  dnn__buf_appendf(b,
                   "set style data histograms\n"
                   "set style histogram rowstacked title offset 0,0.6\n"
                   "set style fill solid 0.9 noborder\n"
                   "set boxwidth 0.7 relative\n"
                   "set grid noxtics ytics\n"
                   "set yrange [0:%.6g]\n"
                   "set ylabel \"time per iteration (%s)\"\n"
                   "set key outside right top vertical reverse Left\n",
                   max_total * u.per_s * 1.12, u.name);
  /* Group titles sit between the tic labels and the axis label. */
  if (pl->params.x_label[0])
    dnn__buf_appendf(b, "set xlabel \"%s\"%s\n", pl->params.x_label,
                     pl->series.n > 1 ? " offset 0,-1.5" : "");
  if (pl->series.n > 1)
    dnn__buf_append(b, "set bmargin 6\n");
  if (pl->n_pts > 16 || max_label > 6) {
    /* The first rotated label reaches left of the axis: make room. */
    dnn__buf_append(b, "set xtics rotate by 30 right\n");
    dnn__buf_appendf(b, "set lmargin %.0f\n",
                     fmax(10.0, 0.75 * dnn__d(max_label) - 2));
  } else
    dnn__buf_append(b, "set xtics norotate\n");
  dnn__buf_append(b, "set xtics scale 0\n");

  banner(b, "Components, bottom up; columns as in the data header");
  dnn__buf_append(b, "plot ");
  bool first = true;
  double x0 = 0; /* x of the first bar of each block; blocks leave a gap */
  for (size_t k = 0; k < pl->series.n; k++) {
    if (pl->series.n > 1)
      dnn__buf_appendf(b, "%snewhistogram \"%s\"", first ? "" : ", \\\n     ",
                       pl->series.v[k]);
    else
      dnn__buf_appendf(b, "%snewhistogram \"\"", first ? "" : ", \\\n     ");
    first = false;
    bool xtic = true;
    for (size_t c = 0; c < N_COMPONENTS; c++) {
      if (!used[c])
        continue;
      dnn__buf_appendf(b,
                       ", \\\n     data index %zu using %zu%s lc rgb \"%s\" ",
                       k, c + 2, xtic ? ":xtic(1)" : "", components[c].color);
      if (k == 0)
        dnn__buf_appendf(b, "title \"%s\"", components[c].name);
      else
        dnn__buf_append(b, "notitle");
      xtic = false;
    }
    /* The total above each bar. */
    dnn__buf_appendf(b,
                     ", \\\n     data index %zu using ($0 + %g):%zu:"
                     "(sprintf(\"%%.3g\", $%zu)) with labels offset 0,0.7 "
                     "font \",%g\" notitle",
                     k, x0, N_COMPONENTS + 2, N_COMPONENTS + 2,
                     pl->params.font_pt - 2);
    sorted s = {idx, 0};
    series_points(pl, k, false, &s);
    x0 += dnn__d(s.n) + 1;
  }
  dnn__buf_append(b, "\n");
}

/* ---- Validation
 * --------------------------------------------------------------- */

static void validation_script(const dnn_plot *pl, size_t *idx, dnn__buf *d,
                              dnn__buf *b) {
  double lo = INFINITY, hi = 0;
  for (size_t i = 0; i < pl->n_pts; i++) {
    const dnn__plot_point *p = &pl->pts[i];
    lo = fmin(lo, fmin(p->measured_s, p->iteration_s));
    hi = fmax(hi, fmax(p->measured_s, p->iteration_s));
  }
  time_unit u = pick_unit(hi);
  bool logs = hi / lo > 30;
  double band = pl->params.band;

  dnn__buf_appendf(d,
                   "# dnnsim validation data (iteration times in %s), "
                   "one block per input file.\n",
                   u.name);
  for (size_t k = 0; k < pl->series.n; k++) {
    sorted s = {idx, 0};
    series_points(pl, k, false, &s);
    dnn__buf_appendf(d,
                     "%s# series %zu: %s\n"
                     "# measured predicted relative_error_pct label\n",
                     k ? "\n\n" : "", k, pl->series.v[k]);
    for (size_t i = 0; i < s.n; i++) {
      const dnn__plot_point *p = &pl->pts[s.idx[i]];
      dnn__buf_appendf(d, "%.9g %.9g %.6g \"%s\"\n", p->measured_s * u.per_s,
                       p->iteration_s * u.per_s,
                       100 * (p->iteration_s - p->measured_s) / p->measured_s,
                       p->label);
    }
  }

  double a = logs ? lo * u.per_s / 1.5 : 0;
  double z = hi * u.per_s * (logs ? 1.5 : 1.15);
  banner(b, "Axes: equal scales, square");
  title_line(b, pl);
  dnn__buf_appendf(b,
                   "set size square\n"
                   "set xrange [%.6g:%.6g]\n"
                   "set yrange [%.6g:%.6g]\n"
                   "set xlabel \"measured iteration time (%s)\"\n"
                   "set ylabel \"predicted iteration time (%s)\"\n"
                   "set key outside right top vertical\n"
                   "set samples 200\n",
                   a, z, a, z, u.name, u.name);
  if (logs)
    dnn__buf_append(b, "set logscale xy 10\n");
  banner(b, "Exact prediction (y = x) and the error band");
  dnn__buf_appendf(b, "band = %g\n", band);
  dnn__buf_append(b, "plot '+' using 1:((1 - band) * $1):((1 + band) * $1) "
                     "with filledcurves \\\n"
                     "       fc rgb \"#dbe8f3\" fs solid 1 noborder \\\n"
                     "       title sprintf(\"±%g %% band\", 100 * band), \\\n"
                     "     x with lines lc rgb \"#444444\" lw 1.5 title "
                     "\"y = x (exact)\"");
  for (size_t k = 0; k < pl->series.n; k++)
    dnn__buf_appendf(b,
                     ", \\\n     data index %zu using 1:2 with points lt %zu "
                     "ps 1.6 title \"%s\"",
                     k, k % N_STYLES + 1, pl->series.v[k]);
  if (pl->n_pts <= 12)
    for (size_t k = 0; k < pl->series.n; k++)
      dnn__buf_appendf(b,
                       ", \\\n     data index %zu using 1:2:4 with labels "
                       "left offset 1,0.6 font \",%g\" notitle",
                       k, pl->params.font_pt - 3);
  dnn__buf_append(b, "\n");
}

/* ---- Timeline
 * ----------------------------------------------------------------- */

/* Category of each bar after merging the smallest into "other". */
static void timeline_cats(const dnn_plot *pl, size_t *map, size_t *n_out,
                          const char **names) {
  size_t n = pl->cats.n;
  if (n <= MAX_TIMELINE_CATS) {
    for (size_t c = 0; c < n; c++) {
      map[c] = c;
      names[c] = pl->cats.v[c];
    }
    *n_out = n;
    return;
  }
  /* Keep the MAX - 1 categories with the most busy time, in first-use
   * order; the rest become "other". */
  double *busy = dnn_calloc(n, sizeof *busy);
  for (size_t i = 0; busy && i < pl->n_bars; i++)
    busy[pl->bars[i].cat] += pl->bars[i].duration_s;
  for (size_t c = 0; c < n; c++)
    map[c] = MAX_TIMELINE_CATS - 1;
  for (size_t kept = 0; kept < MAX_TIMELINE_CATS - 1; kept++) {
    size_t best = n;
    for (size_t c = 0; c < n; c++)
      if (map[c] == MAX_TIMELINE_CATS - 1 &&
          (best == n || (busy && busy[c] > busy[best])))
        best = c;
    map[best] = kept;
  }
  dnn_free(busy);
  /* Renumber the kept ones in first-use order. */
  size_t next = 0;
  size_t order[MAX_TIMELINE_CATS];
  for (size_t c = 0; c < n; c++)
    if (map[c] < MAX_TIMELINE_CATS - 1)
      order[map[c]] = c;
  size_t renum[MAX_TIMELINE_CATS];
  for (size_t c = 0; c < n; c++)
    if (map[c] < MAX_TIMELINE_CATS - 1)
      renum[map[c]] = next++;
  for (size_t c = 0; c < n; c++)
    if (map[c] < MAX_TIMELINE_CATS - 1)
      map[c] = renum[map[c]];
  for (size_t k = 0; k < MAX_TIMELINE_CATS - 1; k++)
    names[renum[k]] = pl->cats.v[order[k]];
  names[MAX_TIMELINE_CATS - 1] = "other";
  *n_out = MAX_TIMELINE_CATS;
}

static void timeline_script(const dnn_plot *pl, dnn__buf *d, dnn__buf *b) {
  double end = 0;
  for (size_t i = 0; i < pl->n_bars; i++)
    end = fmax(end, pl->bars[i].start_s + pl->bars[i].duration_s);
  time_unit u = pick_unit(end);
  size_t map_small[MAX_TIMELINE_CATS];
  size_t *map = pl->cats.n <= MAX_TIMELINE_CATS
                    ? map_small
                    : dnn_calloc(pl->cats.n, sizeof *map);
  const char *names[MAX_TIMELINE_CATS] = {NULL};
  size_t n_cats = 0;
  if (map == NULL) {
    b->failed = true;
    return;
  }
  timeline_cats(pl, map, &n_cats, names);

  dnn__buf_appendf(d,
                   "# dnnsim timeline data (times in %s), one block per "
                   "category.\n"
                   "# row start end row_name\n",
                   u.name);
  for (size_t c = 0; c < n_cats; c++) {
    dnn__buf_appendf(d, "%s# category %zu: %s\n", c ? "\n\n" : "", c, names[c]);
    for (size_t i = 0; i < pl->n_bars; i++) {
      const dnn__plot_bar *r = &pl->bars[i];
      if (map[r->cat] != c)
        continue;
      dnn__buf_appendf(
          d, "%zu %.9g %.9g \"%s\"\n", r->row, r->start_s * u.per_s,
          (r->start_s + r->duration_s) * u.per_s, pl->rows.v[r->row]);
    }
  }
  if (map != map_small)
    dnn_free(map);

  banner(b, "Axes: one row per device and stream, time to the right");
  title_line(b, pl);
  dnn__buf_appendf(b,
                   "set xrange [0:%.6g]\n"
                   "set xlabel \"time (%s)\"\n"
                   "set yrange [%.6g:-0.6]\n"
                   "set grid xtics noytics\n"
                   "set ytics scale 0 (",
                   end * u.per_s * 1.02, u.name, dnn__d(pl->rows.n) - 0.4);
  for (size_t r = 0; r < pl->rows.n; r++)
    dnn__buf_appendf(b, "%s\"%s\" %zu", r ? ", " : "", pl->rows.v[r], r);
  dnn__buf_append(b, ")\n"
                     "set key outside right top vertical\n"
                     "set style fill solid 0.9 noborder\n");
  banner(b, "Bars: (x, y, half width, half height), one clause per category");
  dnn__buf_append(b, "plot ");
  for (size_t c = 0; c < n_cats; c++)
    dnn__buf_appendf(b,
                     "%sdata index %zu using (($2 + $3) / 2):1:(($3 - $2) / "
                     "2):(0.38) \\\n       with boxxyerror lc rgb \"%s\" "
                     "title \"%s\"",
                     c ? ", \\\n     " : "", c,
                     c < N_STYLES ? palette[c] : palette[N_STYLES - 1],
                     names[c]);
  dnn__buf_append(b, "\n");
}

/* ---- Entry
 * ---------------------------------------------------------------------- */

static void default_size(const dnn_plot *pl, size_t *w, size_t *h) {
  switch (pl->params.kind) {
  case DNN_PLOT_SCALING:
    *w = 1400;
    *h = 520;
    break;
  case DNN_PLOT_EFFICIENCY:
    *w = 900;
    *h = 540;
    break;
  case DNN_PLOT_BREAKDOWN:
    *w = 480 + 70 * (pl->n_pts + pl->series.n);
    *w = *w < 860 ? 860 : *w > 2400 ? 2400 : *w;
    *h = 560;
    break;
  case DNN_PLOT_VALIDATION:
    *w = 880;
    *h = 640;
    break;
  default:
    *w = 1200;
    *h = 160 + 36 * pl->rows.n;
    *h = *h < 320 ? 320 : *h > 4000 ? 4000 : *h;
    break;
  }
  if (pl->params.width_px)
    *w = pl->params.width_px;
  if (pl->params.height_px)
    *h = pl->params.height_px;
}

void dnn__plot_script(const dnn_plot *pl, dnn_plot_format fmt,
                      const char *data_name, const char *image_name,
                      dnn__buf *data, dnn__buf *script) {
  size_t w, h;
  default_size(pl, &w, &h);
  script_head(script, pl, fmt, data_name, image_name, w, h);
  size_t *idx = dnn_malloc((pl->n_pts ? pl->n_pts : 1) * sizeof *idx);
  if (idx == NULL && pl->params.kind != DNN_PLOT_TIMELINE) {
    script->failed = true;
    return;
  }
  switch (pl->params.kind) {
  case DNN_PLOT_SCALING:
    scaling_script(pl, idx, data, script);
    break;
  case DNN_PLOT_EFFICIENCY:
    efficiency_script(pl, idx, data, script);
    break;
  case DNN_PLOT_BREAKDOWN:
    breakdown_script(pl, idx, data, script);
    break;
  case DNN_PLOT_VALIDATION:
    validation_script(pl, idx, data, script);
    break;
  default:
    timeline_script(pl, data, script);
    break;
  }
  dnn_free(idx);
}
