/*
 * calibrate/ private declarations: GSL set-up and error mapping, shared by
 * the collective fits, the kernel fits and derivation.
 *
 * Invariant: every GSL call in calibrate/ happens after
 * dnn__calib_gsl_init(), so GSL never aborts the process; its error codes
 * come back as DNN_ENUMERIC through dnn__calib_gsl_fail().
 */
#ifndef DNNSIM_CALIBRATE_INTERNAL_H
#define DNNSIM_CALIBRATE_INTERNAL_H

#include "core/internal.h"
#include "dnnsim/calibrate.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Turns GSL's aborting error handler off (once per process). */
void dnn__calib_gsl_init(void);

/* DNN_ENUMERIC naming `what` and GSL's message for `gsl_status`. */
dnn_status dnn__calib_gsl_fail(dnn_error *err, int gsl_status,
                               const char *what);

/* Median of n values (copied and sorted into `scratch`, n of them). */
double dnn__calib_median(const double *v, size_t n, double *scratch);

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_CALIBRATE_INTERNAL_H */
