/*
 * dnnsim strat: predicting one training iteration of a scenario under its
 * parallel strategy (data x tensor x pipeline), its memory per device and
 * its scaling.
 *
 * Data parallelism (../shared/REFERENCE.md §1.4; docs/models.md "Data
 * parallelism"): each of d replicas runs forward and backward on B/d
 * samples, then the gradients (|w| words) are allreduced and the optimizer
 * updates the weights:
 *
 *   T = T_fwd(B/d) + T_bwd(B/d) + T_allreduce,exposed + T_opt
 *
 * The analytic engine bounds the exposed allreduce under overlap; the event
 * simulator (sim.h) times bucketed overlap and pipelines exactly.
 *
 * Evaluation does not allocate on the analytic path.
 */
#ifndef DNNSIM_STRAT_H
#define DNNSIM_STRAT_H

#include "dnnsim/comm.h"
#include "dnnsim/core.h"
#include "dnnsim/hw.h"
#include "dnnsim/model.h"
#include "dnnsim/scenario.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Time of the critical device, split so that the parts add up to the
 * iteration time (comm_s is the total, comm_exposed_s the part in T). */
typedef struct dnn_breakdown {
  double forward_s;      /* forward compute */
  double backward_s;     /* backward compute (data + weights) */
  double recompute_s;    /* forward recomputed in backward */
  double comm_s;         /* all communication, hidden or not */
  double comm_exposed_s; /* communication not hidden behind compute */
  double bubble_s;       /* pipeline idle time */
  double optimizer_s;    /* weight update */
} dnn_breakdown;

/* Memory of the most loaded device. */
typedef struct dnn_memory {
  double weights_bytes;
  double gradients_bytes;
  double optimizer_bytes; /* optimizer state (and fp32 master weights) */
  double activations_bytes;
  double workspace_bytes;
  double reserved_bytes; /* runtime/framework reserve from the profile */
  double total_bytes;
  double capacity_bytes;
} dnn_memory;

/* The prediction of one scenario. */
typedef struct dnn_prediction {
  double iteration_s;
  double throughput_samples_per_s;
  dnn_breakdown breakdown;
  dnn_memory memory;
  bool fits_in_memory;
  double flops_per_device_per_s; /* model FLOPs per device per second */
  size_t devices;
  size_t data, tensor, pipeline; /* degrees */
  size_t local_batch;            /* samples per data-parallel replica */
  double scaling_efficiency;     /* throughput / (P x one-device thrpt.) */
  double grad_bytes;             /* gradient bytes allreduced per step */
  dnn_comm_algo allreduce;       /* the algorithm used (AUTO resolved) */
  dnn_engine engine;             /* the engine that produced it */
} dnn_prediction;

/* Everything one prediction reads (borrowed). */
typedef struct dnn_strat_input {
  const dnn_scenario *scn;
  const dnn_net *net; /* built at the scenario's image size */
  const dnn_hw *hw;
  dnn_cluster cluster;
} dnn_strat_input;

/* Per-layer, per-pass times of one device (for describe and traces). */
typedef struct dnn_layer_time {
  double time_s[DNN_PASS_COUNT];
  dnn_conv_algo algo[DNN_PASS_COUNT]; /* DNN_CONV_ALGO_COUNT if not conv */
  double workspace_bytes;             /* max over passes */
} dnn_layer_time;

/*
 * Predicts one iteration. DNN_EINVAL when the strategy does not match the
 * cluster (with the scenario key to change), DNN_EUNSUPPORTED for a
 * combination this build cannot predict yet. A configuration that does not
 * fit in memory is still predicted (fits_in_memory false).
 */
dnn_status dnn_strat_predict(const dnn_strat_input *in, dnn_prediction *out,
                             dnn_error *err);

/*
 * Per-layer times of one device at `batch` samples into `out` (an array of
 * dnn_net_layer_count entries, caller-owned). Does not allocate.
 */
void dnn_strat_layer_times(const dnn_strat_input *in, size_t batch,
                           dnn_layer_time *out);

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_STRAT_H */
