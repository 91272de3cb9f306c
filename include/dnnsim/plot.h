/*
 * dnnsim plot: parameter sweeps and gnuplot charts of predictions.
 *
 * Sweeps: a `--vary section.key=v1,v2,...` specification expands to a list
 * of values (with ranges a..b, a..b+s and a..b*f); a sweep is the cartesian
 * product of several such lists, the first one varying slowest, like nested
 * loops written in the order given. Row r of a sweep is applied to a copy
 * of a base scenario (dnn_plot_sweep_apply), and dnn_plot_scn_changes tells
 * what a caller must re-resolve: the network when a key that shapes it
 * changed, the hardware profile when the profile changed.
 *
 * Charts: a dnn_plot collects points (predictions, measured-versus-
 * predicted pairs, or timeline spans) and writes, next to the image, a
 * whitespace-separated data file (.dat) and a commented gnuplot script
 * (.gp) that renders it (pngcairo, svg or pdfcairo by the image's
 * extension). dnn_plot_render runs a gnuplot binary whose path the caller
 * gives: the library never searches PATH or prints. Definitions of the
 * plotted quantities (speedup S(P) = X(P) / X1 with X1 the one-device
 * throughput of the series' smallest configuration, efficiency E = S / P)
 * are in docs/plots.md.
 */
#ifndef DNNSIM_PLOT_H
#define DNNSIM_PLOT_H

#include "dnnsim/core.h"
#include "dnnsim/scenario.h"
#include "dnnsim/strat.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DNN_PLOT_MAX_VARY 16       /* --vary options in one sweep */
#define DNN_PLOT_MAX_VALUES 100000 /* values of one --vary */
#define DNN_PLOT_MAX_ROWS 1000000  /* rows of one sweep */
#define DNN_PLOT_LABEL_MAX 128     /* series and point labels */
#define DNN_PLOT_PATH_MAX 1024     /* output paths */

/* ------------------------------------------------------------------------ */
/* Opaque types                                                              */
/* ------------------------------------------------------------------------ */

/* A chart being built: its kind, parameters and points. */
typedef struct dnn_plot dnn_plot;

/* ------------------------------------------------------------------------ */
/* Records                                                                   */
/* ------------------------------------------------------------------------ */

/* One varied key and its values, from "section.key=values". */
typedef struct dnn_plot_vary {
  char section[DNN_SCN_NAME_MAX];
  char key[DNN_SCN_NAME_MAX];
  char **values;   /* n_values NUL-terminated strings, owned */
  size_t n_values; /* >= 1 after a successful parse */
} dnn_plot_vary;

typedef enum dnn_plot_kind {
  DNN_PLOT_SCALING,    /* throughput and speedup against devices */
  DNN_PLOT_EFFICIENCY, /* parallel efficiency against devices */
  DNN_PLOT_BREAKDOWN,  /* stacked iteration-time components */
  DNN_PLOT_VALIDATION, /* predicted against measured iteration time */
  DNN_PLOT_TIMELINE,   /* Gantt chart of one iteration from a trace */
  DNN_PLOT_KIND_COUNT
} dnn_plot_kind;

typedef enum dnn_plot_format {
  DNN_PLOT_PNG, /* pngcairo */
  DNN_PLOT_SVG, /* svg */
  DNN_PLOT_PDF  /* pdfcairo */
} dnn_plot_format;

/* How a chart looks. Start from dnn_plot_default_params(kind). */
typedef struct dnn_plot_params {
  dnn_plot_kind kind;
  char title[256];                    /* chart title; "" for none */
  char x_label[DNN_PLOT_LABEL_MAX];   /* breakdown x axis; "" for default */
  char key_title[DNN_PLOT_LABEL_MAX]; /* legend heading; "" for none */
  char note[1024]; /* comment lines for the script ("\n" separated) */
  size_t width_px, height_px; /* image size; 0: chosen from the data */
  char font[64];              /* font family, e.g. "Sans" */
  double font_pt;             /* base font size, points */
  double band;                /* validation: relative band, e.g. 0.1 */
} dnn_plot_params;

/* One bar of a timeline: a task on one device and stream. */
typedef struct dnn_plot_span {
  const char *device;   /* row group, e.g. "GPU 0" */
  const char *stream;   /* row within the device, e.g. "compute" */
  const char *category; /* colour and legend entry, e.g. "forward" */
  double start_s;       /* from the start of the iteration */
  double duration_s;    /* >= 0 */
} dnn_plot_span;

/* Where dnn_plot_write put its files. */
typedef struct dnn_plot_files {
  char image[DNN_PLOT_PATH_MAX];  /* as given */
  char data[DNN_PLOT_PATH_MAX];   /* image path with .dat */
  char script[DNN_PLOT_PATH_MAX]; /* image path with .gp */
} dnn_plot_files;

/* ------------------------------------------------------------------------ */
/* Sweeps                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Parses "section.key=values" into `out` (owned by the caller: free with
 * dnn_plot_vary_free, also after a failure). Values are separated by commas,
 * or by ';' when the text contains one (for values that hold commas, such
 * as training.sizes). Each value is a literal or a numeric range:
 *
 *   a..b     a, a+1, ..., b        a..b+s   a, a+s, ..., <= b
 *   a..b*f   a, a*f, a*f^2, ..., <= b   (f > 1; 1..64*2 doubles)
 *
 * Every value is checked against the key (type and range) on a default
 * scenario. Errors name the specification: DNN_EINVAL for malformed text
 * (no '=', empty value, bad range, step <= 0, factor <= 1, a > b),
 * DNN_EPARSE for an unknown key (with the nearest "section.key"),
 * DNN_ERANGE for more than DNN_PLOT_MAX_VALUES values or a value outside
 * the key's range, DNN_ENOMEM.
 */
dnn_status dnn_plot_vary_parse(const char *spec, dnn_plot_vary *out,
                               dnn_error *err);

/* Frees the values and zeroes `v`. A zeroed or NULL `v` does nothing. */
void dnn_plot_vary_free(dnn_plot_vary *v);

/*
 * The number of rows of the sweep: the product of the value counts (1 for
 * n == 0). DNN_ERANGE beyond DNN_PLOT_MAX_ROWS or DNN_PLOT_MAX_VARY keys.
 */
dnn_status dnn_plot_sweep_rows(const dnn_plot_vary *vary, size_t n,
                               size_t *rows, dnn_error *err);

/* The index into vary[j].values used by row `row` (first key slowest). */
size_t dnn_plot_sweep_index(const dnn_plot_vary *vary, size_t n, size_t row,
                            size_t j);

/*
 * Sets every varied key of `row` in `scn` (as --set overrides). Errors
 * start with "--vary section.key=value: " (status from dnn_scn_set_value).
 */
dnn_status dnn_plot_sweep_apply(const dnn_plot_vary *vary, size_t n, size_t row,
                                dnn_scenario *scn, dnn_error *err);

/*
 * What differs between two scenarios for resolution: *net_changed when a
 * key that shapes the network IR differs (every [model] key except batch
 * and dtype, which the IR does not depend on), *hw_changed when
 * [hardware] profile differs.
 */
void dnn_plot_scn_changes(const dnn_scenario *a, const dnn_scenario *b,
                          bool *net_changed, bool *hw_changed);

/* ------------------------------------------------------------------------ */
/* Charts                                                                    */
/* ------------------------------------------------------------------------ */

/* "scaling", "efficiency", ... ("?" for an invalid kind). */
const char *dnn_plot_kind_name(dnn_plot_kind kind);

/* The kind called `name`. DNN_EINVAL naming the kinds (and the nearest). */
dnn_status dnn_plot_kind_parse(const char *name, dnn_plot_kind *out,
                               dnn_error *err);

/* The format of an image path from its extension (.png, .svg, .pdf).
 * DNN_EINVAL for any other. */
dnn_status dnn_plot_format_of(const char *image_path, dnn_plot_format *out,
                              dnn_error *err);

/* Paper-like defaults for `kind`: sans font at 13 pt, automatic size,
 * a 10 % validation band. */
dnn_plot_params dnn_plot_default_params(dnn_plot_kind kind);

/* A new empty chart (params are copied). DNN_ENOMEM. */
dnn_status dnn_plot_alloc(const dnn_plot_params *params, dnn_plot **out,
                          dnn_error *err);

/* Frees the chart. NULL does nothing. */
void dnn_plot_free(dnn_plot *pl);

/*
 * Adds one configuration's prediction to series `series` (created on
 * first use, in order) with the configuration's `label` (the breakdown's
 * bar name). For scaling, efficiency and breakdown charts. DNN_ENOMEM.
 */
dnn_status dnn_plot_add_prediction(dnn_plot *pl, const char *series,
                                   const char *label, const dnn_prediction *p,
                                   dnn_error *err);

/*
 * Adds a measured-versus-predicted pair (seconds per iteration, > 0) to a
 * validation chart. DNN_EINVAL for a non-positive or non-finite time.
 */
dnn_status dnn_plot_add_measurement(dnn_plot *pl, const char *series,
                                    const char *label, double measured_s,
                                    double predicted_s, dnn_error *err);

/* Adds a span to a timeline chart. DNN_EINVAL for negative or non-finite
 * times, DNN_ENOMEM. Rows keep the order of their first span. */
dnn_status dnn_plot_add_span(dnn_plot *pl, const dnn_plot_span *span,
                             dnn_error *err);

/*
 * Reads `dnnsim validate --format json` output: one or more JSON objects
 * (pretty-printed one after another, or JSON lines), each with
 * measured.iteration_s and predicted.iteration_s, into a validation chart;
 * the series is the file's name without directory and extension, the
 * label its `scenario` field's file name. Errors: DNN_EIO, DNN_EPARSE
 * ("FILE:LINE: ..."), DNN_EINVAL naming the object and the missing field.
 */
dnn_status dnn_plot_load_validation(dnn_plot *pl, const char *path,
                                    dnn_error *err);

/*
 * Reads a Chrome trace (trace event format: {"traceEvents": [...]} or a
 * bare array) into a timeline chart: every complete event (ph "X") with
 * pid (device), tid (stream), ts and dur (microseconds) and name becomes a
 * span; process_name and thread_name metadata events (ph "M") name the
 * rows. The category is the event's `cat`, or else its name up to the
 * first space, '.', ':', '/' or '['. Rows are ordered by pid, then tid.
 * Errors: DNN_EIO, DNN_EPARSE ("FILE:LINE: ..."), DNN_EINVAL for an event
 * without numeric ts/dur or a file without complete events.
 */
dnn_status dnn_plot_load_trace(dnn_plot *pl, const char *path, dnn_error *err);

/* Points (or spans) added so far. */
size_t dnn_plot_points(const dnn_plot *pl);

/*
 * Writes the data file and the gnuplot script for image `image_path`
 * (.png, .svg or .pdf; the .dat and .gp files go next to it, replacing the
 * extension), atomically. The script finds its data and writes its image
 * relative to its own directory, so `gnuplot DIR/NAME.gp` works from
 * anywhere. Does not run gnuplot. Errors: DNN_EINVAL (bad extension, no
 * points), DNN_EIO, DNN_ENOMEM. `files` (may be NULL) receives the paths.
 */
dnn_status dnn_plot_write(const dnn_plot *pl, const char *image_path,
                          dnn_plot_files *files, dnn_error *err);

/*
 * Runs `gnuplot_path script_path` and waits for it. DNN_EUNSUPPORTED when
 * gnuplot_path is not an executable file ("gnuplot not found at ..."),
 * DNN_ETOOLFAIL when gnuplot fails (the message quotes its last error
 * line), DNN_EIO when it cannot be started.
 */
dnn_status dnn_plot_render(const char *gnuplot_path, const char *script_path,
                           dnn_error *err);

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_PLOT_H */
