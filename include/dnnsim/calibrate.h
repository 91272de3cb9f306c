/*
 * dnnsim calibrate: fits that turn raw measurements (measure.h) into
 * profiles the predictor reads, the error figures of those fits, and the
 * derivation of a profile for a device one does not have.
 *
 * Collectives (docs/calibration.md): per (operation, MPI algorithm,
 * communicator size) a piecewise-linear least-squares fit of time against
 * message size, weighted by 1/t^2 so that every size counts by its
 * relative error (a plain fit would only see the largest messages), with
 * R^2 and relative residuals, flagged when poor; then the link parameters
 * alpha, beta (and gamma, measured by MPI_Reduce_local) that reproduce it
 * through comm.h's formula of the algorithm; LogGP from ping-pong.
 * Kernels: a non-linear least-squares fit (GSL multifit_nlinear, relative
 * residuals, Huber re-weighting) of the roofline of hw.h - launch
 * overhead, per-class compute and memory efficiency and n_1/2 - with the
 * measured medians kept as the profile's kernel table. Derivation scales
 * each measured time by the ratio of the rate that bounds it, in the
 * spirit of Habitat (Yu et al., USENIX ATC 2021).
 *
 * GSL's error handler is turned off once (the default aborts) and GSL
 * codes map to dnn_status (DNN_ENUMERIC).
 */
#ifndef DNNSIM_CALIBRATE_H
#define DNNSIM_CALIBRATE_H

#include "dnnsim/comm.h"
#include "dnnsim/core.h"
#include "dnnsim/hw.h"
#include "dnnsim/measure.h"
#include "dnnsim/model.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Parameters                                                                */
/* ------------------------------------------------------------------------ */

/* Limits and choices of the fits. */
typedef struct dnn_calib_params {
  double r2_min;             /* flag a collective fit with R^2 below */
  double median_rel_max;     /* ... or median relative residual above */
  double max_rel_max;        /* ... or largest relative residual above */
  double segment_tol;        /* add segments until the largest relative
                                residual is within this */
  size_t max_segments;       /* 1..DNN_COMM_FIT_MAX_SEGMENTS */
  size_t min_segment_points; /* >= 2 measured sizes per segment */
  bool pow2_only;            /* fit only power-of-two sizes (the others
                                are held back for error figures) */
  double prior_weight;       /* kernel fit: pull of each parameter towards
                                its starting value (keeps parameters that
                                the data do not determine at the prior) */
  size_t huber_rounds;       /* kernel fit: robust re-weighting rounds */
} dnn_calib_params;

/* R^2 >= 0.95, median <= 0.10, max <= 0.50, segment_tol 0.10, 3
 * segments of >= 3 points, all sizes, prior weight 0.03, 2 Huber rounds. */
dnn_calib_params dnn_calib_default_params(void);

/* DNN_EINVAL naming the first field out of range. */
dnn_status dnn_calib_params_check(const dnn_calib_params *p, dnn_error *err);

/* ------------------------------------------------------------------------ */
/* Generic fits                                                              */
/* ------------------------------------------------------------------------ */

/* A straight line y = a + b x with its quality. */
typedef struct dnn_calib_line {
  double a, b;
  double r2;         /* 1 - SS_res / SS_tot of y (unweighted) */
  double median_rel; /* median |fit - y| / |y| */
  double max_rel;    /* largest |fit - y| / |y| */
  size_t n;
} dnn_calib_line;

/*
 * Least-squares line through (x[i], y[i]), n >= 2 with two distinct x.
 * `relative` weights each point by 1/y^2 (minimising relative error;
 * needs y > 0). GSL multifit_wlinear. DNN_EINVAL (too few or bad points),
 * DNN_ENUMERIC (GSL failure).
 */
dnn_status dnn_calib_fit_line(const double *x, const double *y, size_t n,
                              bool relative, dnn_calib_line *out,
                              dnn_error *err);

/*
 * Piecewise-linear relative fit of y(x) over x sorted ascending: the
 * fewest segments (up to p->max_segments, each with at least
 * p->min_segment_points points) whose largest relative residual is within
 * p->segment_tol, else the best split found. Boundaries lie at the
 * geometric mean of the neighbouring points. Fills out->seg, n_segments,
 * points, min/max_bytes, r2 and the residuals (not op, algo or names).
 */
dnn_status dnn_calib_fit_segments(const double *x, const double *y, size_t n,
                                  const dnn_calib_params *p, dnn_comm_fit *out,
                                  dnn_error *err);

/* ------------------------------------------------------------------------ */
/* Collectives                                                               */
/* ------------------------------------------------------------------------ */

/*
 * Coefficients of comm.h's cost of (op, algo) on `ranks` ranks, linear in
 * the link parameters: t = ca alpha + cb m beta + cg m gamma. They are
 * read off dnn_comm_time itself (unit links), so the fit and the
 * predictor share one formula. false when the pair has no linear formula
 * (AUTO, or an algorithm comm.h does not implement for op).
 */
bool dnn_calib_comm_coef(dnn_comm_op op, dnn_comm_algo algo, size_t ranks,
                         double *ca, double *cb, double *cg);

/*
 * Fits every group of `t` (collectives per (op, algorithm, ranks); the
 * ping-pong as p2p/direct), measures gamma from the MPI_Reduce_local rows
 * and LogGP from the p2p probes, into a new comm profile with `info`'s
 * name, source and calibrated text. Groups with fewer than two sizes are
 * skipped. DNN_EINVAL (no group could be fitted), DNN_ENUMERIC, DNN_ENOMEM.
 */
dnn_status dnn_calib_comm_fit(const dnn_meas_coll_table *t,
                              const dnn_calib_params *p,
                              const dnn_comm_profile_info *info,
                              dnn_comm_profile **out, dnn_error *err);

/*
 * Predicted time of one collective from a profile: the fit's own curve at
 * an exact communicator size; otherwise the curve of a neighbouring
 * measured size scaled by the ratio of comm.h's cost (with that fit's
 * link parameters) at the wanted and the measured size, interpolated
 * geometrically in log P between the neighbours below and above when both
 * exist (dnn_hw_comm_profile_bracket). DNN_ENOTFOUND when the profile has
 * no fit of (op, algo), or only fits without link parameters (AUTO) at
 * other sizes.
 */
dnn_status dnn_calib_comm_predict(const dnn_comm_profile *cp, dnn_comm_op op,
                                  dnn_comm_algo algo, size_t ranks,
                                  double bytes, double *time_s, bool *exact,
                                  dnn_error *err);

/* Error of predictions against measurements. */
typedef struct dnn_calib_error {
  size_t n;          /* points compared */
  double median_rel; /* median |predicted - measured| / measured */
  double max_rel;    /* largest */
  double mean_rel;   /* mean */
} dnn_calib_error;

/* One compared point, for reports (may be ignored). */
typedef void (*dnn_calib_point_fn)(void *ud, const char *what, double measured,
                                   double predicted);

/*
 * Compares the profile's predictions with every collective row of `t`
 * that has a comm.h model (probes and unmodelled algorithms are skipped,
 * as are rows the profile cannot predict). `exact` gets rows whose
 * communicator size the profile has, `other` the rest (either may be
 * NULL). `fn` (may be NULL) sees each point.
 */
dnn_status dnn_calib_comm_evaluate(const dnn_comm_profile *cp,
                                   const dnn_meas_coll_table *t,
                                   dnn_calib_error *exact,
                                   dnn_calib_error *other,
                                   dnn_calib_point_fn fn, void *ud,
                                   dnn_error *err);

/* ------------------------------------------------------------------------ */
/* Kernels                                                                   */
/* ------------------------------------------------------------------------ */

/* What the kernel fit found. */
typedef struct dnn_calib_kernel_report {
  size_t rows;       /* rows fitted */
  double median_rel; /* of the fitted roofline */
  double max_rel;
  size_t class_rows[DNN_OPCLASS_COUNT]; /* rows per operation class */
  double class_median_rel[DNN_OPCLASS_COUNT];
  bool sets_peak[DNN_OPCLASS_COUNT]; /* this class's efficiency is (near)
                                        1: its rate is the profile's peak
                                        or bandwidth */
  double peak_raised_flops;    /* 0, or the calibrated dtype's peak after a
                                  class out-ran the benchmark's */
  double bandwidth_raised_Bps; /* 0, or the raised bandwidth (likewise) */
  size_t iterations;           /* of the last non-linear solve */
} dnn_calib_kernel_report;

/*
 * The roofline of hw.h for a kernel of class `cls` (convolutions: the
 * efficiency of `algo`), exactly as dnn_hw_kernel_time / dnn_hw_conv_time
 * compute it from parameters. Pure.
 */
double dnn_calib_roofline(const dnn_hw_params *p, dnn_opclass cls,
                          dnn_conv_algo algo, dnn_dtype dtype, double flops,
                          double bytes);

/*
 * Fits the roofline parameters to the rows of `t` with dtype `dtype`:
 * launch_overhead_s, and for every class with rows eff_compute,
 * eff_memory and half_flops (convolutions: eff_conv_algo of each measured
 * algorithm, eff_compute[CONV] their best, and algorithms never measured
 * are set unusable, 0). `base` gives the peaks, bandwidth, capacity and
 * texts; a class faster than the base's peak or bandwidth raises it (see
 * the report), so efficiencies stay in (0, 1]. With `keep_table`
 * every measured median becomes a kernel row of the profile (hw.h
 * interpolates them in batch). `rep` may be NULL. DNN_EINVAL (no usable
 * row), DNN_ENUMERIC (the solver failed), DNN_ERANGE (base out of range),
 * DNN_ENOMEM.
 */
dnn_status dnn_calib_kernel_fit(const dnn_meas_kernel_table *t,
                                const dnn_hw_params *base, dnn_dtype dtype,
                                const dnn_calib_params *p, bool keep_table,
                                dnn_hw **out, dnn_calib_kernel_report *rep,
                                dnn_error *err);

/*
 * Compares a profile with measured rows of dtype `dtype`: with
 * `model_only` the roofline of each row's FLOPs and bytes; otherwise the
 * profile's measured table where it has the row's signature (interpolated
 * in batch) and the roofline elsewhere. `fn` may be NULL.
 */
dnn_status dnn_calib_kernel_evaluate(const dnn_hw *hw,
                                     const dnn_meas_kernel_table *t,
                                     dnn_dtype dtype, bool model_only,
                                     dnn_calib_error *out,
                                     dnn_calib_point_fn fn, void *ud,
                                     dnn_error *err);

/* ------------------------------------------------------------------------ */
/* Derivation                                                                */
/* ------------------------------------------------------------------------ */

/* What derivation did. */
typedef struct dnn_calib_derive_report {
  size_t rows_scaled;   /* measured times carried over */
  size_t compute_bound; /* of them, scaled by the compute ratio */
  size_t memory_bound;  /* by the bandwidth ratio */
  size_t rows_dropped;  /* table rows without FLOPs/bytes to scale */
} dnn_calib_derive_report;

/*
 * A profile for device B from `from` (calibrated on device A) and `to`
 * (B's datasheet profile): B's peaks, bandwidth, capacity and (when set)
 * launch overhead; A's fitted efficiencies; and A's measured kernel times
 * scaled to B. For each measured row of `raw` (A's measurements with
 * FLOPs and bytes; may be NULL, then the table is dropped) the roofline of
 * A says which rate bounds it; its time above the launch overhead is
 * scaled by A's rate over B's for that resource (compute: the dtype's
 * peak; memory: bandwidth), and never below B's roofline for the other
 * resource. `calibrated` is the new profile's provenance text. `rep` may
 * be NULL. DNN_EINVAL (kinds differ: a CPU profile from a GPU one),
 * DNN_ERANGE, DNN_ENOMEM.
 */
dnn_status dnn_calib_derive(const dnn_hw *from,
                            const dnn_meas_kernel_table *raw, const dnn_hw *to,
                            const char *calibrated, dnn_hw **out,
                            dnn_calib_derive_report *rep, dnn_error *err);

/* ------------------------------------------------------------------------ */
/* Provenance                                                                */
/* ------------------------------------------------------------------------ */

/* Longest provenance text: an INI line holds at most about 197
 * characters, "calibrated = " included. */
#define DNN_CALIB_PROVENANCE_MAX 180

/*
 * "DATE on HOST | DEVICE | LIBRARIES | by: COMMAND" in `out` (n bytes),
 * at most DNN_CALIB_PROVENANCE_MAX characters (a longer text ends in
 * "..."), safe for an INI value (semicolons and control characters
 * replaced). Any of device, libraries and command may be NULL.
 */
void dnn_calib_provenance(const char *device, const char *libraries,
                          const char *command, char *out, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_CALIBRATE_H */
