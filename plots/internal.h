/*
 * Private declarations of plots/: the layout of a dnn_plot, shared by the
 * chart builder (plot.c), the script writers (script.c) and the JSON
 * loaders (load.c).
 *
 * Invariant: every index stored in a point, span or row is below the
 * matching count (n_series, n_rows, n_cats); names are NUL-terminated and
 * already sanitised for gnuplot (no '"' or '\\', no control characters).
 */
#ifndef DNNSIM_PLOTS_INTERNAL_H
#define DNNSIM_PLOTS_INTERNAL_H

#include "core/internal.h"
#include "dnnsim/plot.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef char dnn__plot_name[DNN_PLOT_LABEL_MAX];

/* One configuration (scaling, efficiency, breakdown) or one measured run
 * (validation). */
typedef struct dnn__plot_point {
  size_t series;
  dnn__plot_name label;
  double devices;          /* P */
  double throughput;       /* samples/s */
  double iteration_s;      /* predicted iteration time */
  double model_efficiency; /* dnn_prediction.scaling_efficiency */
  dnn_breakdown parts;     /* the prediction's breakdown */
  double measured_s;       /* validation only */
} dnn__plot_point;

/* One timeline bar. */
typedef struct dnn__plot_bar {
  size_t row, cat;
  double start_s, duration_s;
} dnn__plot_bar;

/* A growable list of names; dnn__plot_names_find interns. */
typedef struct dnn__plot_names {
  dnn__plot_name *v;
  size_t n, cap;
} dnn__plot_names;

struct dnn_plot {
  dnn_plot_params params;
  dnn__plot_names series;
  dnn__plot_point *pts;
  size_t n_pts, cap_pts;
  dnn__plot_names rows; /* "device · stream" */
  dnn__plot_names cats;
  dnn__plot_bar *bars;
  size_t n_bars, cap_bars;
};

/* Copies `src` into `dst` (size n), replacing characters gnuplot strings
 * cannot hold ('"', '\\', control characters). */
void dnn__plot_sanitize(char *dst, size_t n, const char *src);

/* The index of `name` in `names`, appending it when new. false on ENOMEM. */
bool dnn__plot_names_find(dnn__plot_names *names, const char *name,
                          size_t *index);

/* Writes the data file and script text of `pl` into `data` and `script`;
 * `data_name` and `image_name` are the file names (no directory) the script
 * refers to. */
void dnn__plot_script(const dnn_plot *pl, dnn_plot_format fmt,
                      const char *data_name, const char *image_name,
                      dnn__buf *data, dnn__buf *script);

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_PLOTS_INTERNAL_H */
