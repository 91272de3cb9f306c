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
 * Pipeline parallelism (docs/models.md "Pipeline parallelism"): p stages
 * of contiguous layers, m micro-batches per replica, a GPipe, 1F1B or
 * interleaved schedule, activations and gradients sent between stages,
 * each stage's gradients allreduced among its d replicas.
 *
 * Two engines read the same per-stage costs: closed forms (analytic) and
 * the event simulator (sim.h), which times bucketed overlap, schedules
 * and shared links exactly. Engine auto picks the simulator when the
 * scenario overlaps communication (d > 1, overlap on), pipelines, or
 * has jitter, unless its graph would exceed DNN_STRAT_SIM_MAX_TASKS.
 *
 * Evaluation does not allocate on the analytic path of data parallelism.
 */
#ifndef DNNSIM_STRAT_H
#define DNNSIM_STRAT_H

#include "dnnsim/comm.h"
#include "dnnsim/core.h"
#include "dnnsim/hw.h"
#include "dnnsim/model.h"
#include "dnnsim/scenario.h"
#include "dnnsim/sim.h"

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

/* ------------------------------------------------------------------------ */
/* The event simulation of a scenario                                        */
/* ------------------------------------------------------------------------ */

/*
 * A scenario's iteration as a task graph (sim.h), built once and re-timed
 * for sweeps: one device per pipeline rank and simulated replica (replica
 * 0 only when replicas are symmetric, i.e. without jitter; every replica
 * otherwise), streams "compute", "allreduce", "send activations" and
 * "send gradients", one task per layer, pass and micro-batch.
 */
typedef struct dnn_strat_sim dnn_strat_sim;

/* The largest task graph dnn_strat_sim_alloc builds (about 130 bytes a
 * task, so some 9 GB): beyond it the simulation fails with DNN_ERANGE,
 * and engine auto predicts with the closed forms instead. */
#define DNN_STRAT_SIM_MAX_TASKS ((size_t)1 << 26)

/*
 * Builds the graph of `in`. The scenario, network and profile are
 * borrowed and must outlive the object. Errors as dnn_strat_predict,
 * DNN_ERANGE for a graph of more than DNN_STRAT_SIM_MAX_TASKS tasks (the
 * message names the micro-batches key), and DNN_ENOMEM.
 */
dnn_status dnn_strat_sim_alloc(const dnn_strat_input *in, dnn_strat_sim **out,
                               dnn_error *err);

/*
 * Re-times the graph for `in` (new profile, links, batch, bucket times,
 * ...), keeping its partition: only task durations, bytes and link
 * bandwidths change, the graph is not rebuilt. DNN_EINVAL when `in`
 * changes the structure (network, degrees, micro-batches, schedule,
 * recompute, overlap, buckets, placement or dtype); DNN_ENOMEM (the stage
 * table). `in` replaces the borrowed inputs.
 */
dnn_status dnn_strat_sim_retime(dnn_strat_sim *ss, const dnn_strat_input *in,
                                dnn_error *err);

/*
 * Runs the simulation and fills the prediction (engine DES; breakdown of
 * the device that finishes last). Never allocates.
 */
dnn_status dnn_strat_sim_run(dnn_strat_sim *ss, dnn_prediction *out,
                             dnn_error *err);

/* The simulator, for traces and statistics (borrowed). */
const dnn_sim *dnn_strat_sim_engine(const dnn_strat_sim *ss);

/* Frees it. NULL does nothing. */
void dnn_strat_sim_free(dnn_strat_sim *ss);

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_STRAT_H */
