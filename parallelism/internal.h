/*
 * parallelism/ private declarations shared by the strategies, the
 * collectives, the event simulator and search.
 */
#ifndef DNNSIM_PARALLELISM_INTERNAL_H
#define DNNSIM_PARALLELISM_INTERNAL_H

#include "core/internal.h"
#include "dnnsim/comm.h"
#include "dnnsim/strat.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of optimizer state per device for `params` parameters (momentum
 * or Adam moments in fp32, plus fp32 master weights under mixed
 * precision). */
double dnn__strat_optimizer_state_bytes(dnn_optimizer opt, dnn_dtype dtype,
                                        double params);

/* The topology of a group of `d` ranks `stride` devices apart on the
 * scenario's cluster, with the reduction cost gamma from the profile. */
dnn_status dnn__strat_comm_setup(const dnn_strat_input *in, size_t d,
                                 size_t stride, dnn_comm_topo *topo);

/* The analytic data-parallel prediction (t = p = 1). */
dnn_status dnn__strat_predict_data(const dnn_strat_input *in,
                                   dnn_prediction *out, dnn_error *err);

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_PARALLELISM_INTERNAL_H */
