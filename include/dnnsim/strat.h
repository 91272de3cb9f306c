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
 * Tensor, model and operator parallelism (docs/models.md §13): a group of
 * t devices splits every layer, Megatron-style for transformer layers
 * (column, row and head splits, two allreduces per block and pass, or a
 * reduce-scatter and an allgather each with sequence parallelism), by
 * channel, spatial domain (with halo exchange) or batch for the others;
 * hybrid d x t x p with ZeRO stages 0-3 (docs/models.md §14).
 *
 * Two engines read the same per-stage costs: closed forms (analytic) and
 * the event simulator (sim.h), which times bucketed overlap, schedules
 * and shared links exactly. Engine auto picks the simulator when the
 * scenario overlaps communication (d > 1, overlap on), pipelines, or
 * has jitter, unless its graph would exceed DNN_STRAT_SIM_MAX_TASKS.
 *
 * Training techniques (docs/models.md §16-§20) change the step or what is
 * predicted around it: mixed image sizes ([training] sizes; the expected
 * step), batch augmentation (augment_copies), sparse embedding gradients
 * (chosen per table), stragglers and consistency (jitter, sync / ssp /
 * async), gradient compression, and the time to a number of updates;
 * dnn_prediction.techniques says what each did. Collectives use the
 * calibrated fits of [cluster] comm_profile when there is one (§5.8).
 *
 * Evaluation does not allocate on the analytic path of data parallelism
 * (t = p = 1). With a cache (dnn_strat_predict_cached) per-layer times are
 * computed once per network, profile, micro-batch size, dtype, workspace
 * limit and tensor split, and the analytic path of every strategy then
 * does not allocate either: that is what sweeps and search use.
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
  double headroom_bytes; /* capacity - total: negative when it does not fit,
                            by that much */
} dnn_memory;

/* One image size of mixed-size training (docs/models.md §16). */
typedef struct dnn_size_step {
  size_t size;         /* image side, pixels */
  double probability;  /* of a step at this size */
  size_t local_batch;  /* unique samples per replica */
  size_t copies;       /* augmented copies of each sample */
  double iteration_s;  /* one step at this size */
  double memory_bytes; /* per device (the most loaded) */
  bool fits_in_memory;
} dnn_size_step;

/*
 * What the scenario's training techniques do to a step (docs/models.md
 * §16-§20). Every field is filled; a technique that is off leaves its
 * neutral value (copies 1, factors 1, counts and bytes 0).
 */
typedef struct dnn_techniques {
  /* Samples per step (§16, §17), global and expected over sizes. */
  double unique_samples_per_step;    /* distinct samples */
  double augmented_samples_per_step; /* computed: unique x copies */
  double augmented_samples_per_s;
  /* Updates (§16, §17), from [training] dataset_size, steps, epochs. */
  double steps_per_epoch; /* dataset_size / unique samples per step */
  double epoch_s;         /* steps_per_epoch x iteration_s */
  double steps;           /* [training] steps, else epochs x steps_per_epoch
                             (0: neither given) */
  double time_to_steps_s; /* steps x iteration_s */
  /* Batch augmentation (§17): copies of each sample at the base size,
   * and the same step with one copy (0 when copies is 1). */
  size_t copies;
  double one_copy_iteration_s;
  double one_copy_scaling_efficiency;
  /* Mixed sizes (§16): one entry per size (n_sizes 0: one size; entries
   * from n_sizes on are not written). */
  size_t n_sizes;
  dnn_size_step sizes[DNN_SCN_MAX_SIZES];
  size_t peak_memory_size; /* the size whose step needs the most memory */
  /* Inference (forward only) at the base size, one device, unsplit. */
  double inference_s_per_sample;
  /* Sparse embedding gradients (§18). */
  size_t sparse_layers;      /* layers whose touched rows are allgathered */
  double sparse_grad_bytes;  /* their allgathers' bytes per step */
  double sparse_dense_bytes; /* the dense gradients they replace */
  /* Consistency and stragglers (§19). */
  double nominal_iteration_s; /* the step without jitter */
  double straggler_factor;    /* iteration_s / nominal_iteration_s */
  double expected_max_speed;  /* E[max] of the replicas' compute-time
                                 factors (1 without jitter) */
  double staleness;           /* mean age of a gradient, in updates */
  size_t draws;               /* Monte Carlo draws (0: closed form) */
  /* Gradient compression (§20). */
  double wire_grad_bytes; /* gradient bytes sent per step per replica
                             group (grad_bytes when uncompressed) */
  double compression_s;   /* encode and decode compute per step */
} dnn_techniques;

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
  dnn_techniques techniques;     /* mixed sizes, copies, consistency,
                                    compression, sparse gradients */
} dnn_prediction;

/* Everything one prediction reads (borrowed). */
typedef struct dnn_strat_input {
  const dnn_scenario *scn;
  const dnn_net *net; /* built at the scenario's image size */
  const dnn_hw *hw;
  dnn_cluster cluster;
} dnn_strat_input;

/*
 * A cache of per-layer times and memory (see dnn_strat_cache_alloc):
 * mutable scratch for dnn_strat_predict_cached, one thread at a time.
 */
typedef struct dnn_strat_cache dnn_strat_cache;

/*
 * How a tensor-parallel group of t devices splits a layer (operator
 * parallelism, docs/models.md §13): replicated; Megatron's column, row
 * and head splits of transformer layers, and the sequence split of the
 * replicated ones under sequence parallelism; a split by output channels
 * (filters), by rows of the image (with halo exchange) or by samples for
 * the others.
 */
#define DNN_SPLIT_LIST(X)                                                      \
  X(NONE, "replicated")                                                        \
  X(COLUMN, "column")                                                          \
  X(ROW, "row")                                                                \
  X(HEADS, "heads")                                                            \
  X(SEQUENCE, "sequence")                                                      \
  X(CHANNEL, "channel")                                                        \
  X(SPATIAL, "spatial")                                                        \
  X(BATCH, "batch")

typedef enum dnn_split {
#define DNN_SPLIT_ENUM_(id, name) DNN_SPLIT_##id,
  DNN_SPLIT_LIST(DNN_SPLIT_ENUM_)
#undef DNN_SPLIT_ENUM_
      DNN_SPLIT_COUNT
} dnn_split;

/* "replicated", "column", ... ("?" for an unknown value). */
const char *dnn_split_name(dnn_split s);

/*
 * Per-layer, per-pass times of one device (for describe and traces), with
 * the layer's share when a tensor-parallel group splits it.
 */
typedef struct dnn_layer_time {
  double time_s[DNN_PASS_COUNT];      /* compute of this device's share */
  dnn_conv_algo algo[DNN_PASS_COUNT]; /* DNN_CONV_ALGO_COUNT if not conv */
  double workspace_bytes;             /* max over passes */
  dnn_split split;                    /* DNN_SPLIT_NONE when t = 1 */
  /* The tensor group's collectives the pass waits for (not in time_s),
   * and their payload: the full tensor each collective reduces or
   * gathers, summed over the pass's collectives. */
  double comm_s[DNN_PASS_COUNT];
  double comm_bytes[DNN_PASS_COUNT];
  /* Gradient bytes of weights the group replicates (spatial and batch
   * splits), allreduced among its t devices once per iteration. */
  double group_grad_bytes;
} dnn_layer_time;

/*
 * Predicts one iteration. DNN_EINVAL when the strategy does not match the
 * cluster or the network (with the scenario key to change: e.g. heads not
 * divisible by tensor, ZeRO 2-3 with a pipeline), DNN_EUNSUPPORTED for a
 * combination this build cannot predict yet, DNN_ENOMEM (a pipeline's
 * stage table, or per-layer tables without a cache). A configuration that
 * does not fit in memory is still predicted (fits_in_memory false,
 * memory.headroom_bytes negative).
 */
dnn_status dnn_strat_predict(const dnn_strat_input *in, dnn_prediction *out,
                             dnn_error *err);

/*
 * The same prediction, reading per-layer times from `cache` (computed on
 * the first use of each combination) and taking the stage table from its
 * scratch: for sweeps and search, where the analytic path then costs
 * O(layers + stages) additions and never allocates once warm. The result
 * equals dnn_strat_predict's to rounding (relative 1e-12). Errors as
 * dnn_strat_predict.
 */
dnn_status dnn_strat_predict_cached(const dnn_strat_input *in,
                                    dnn_strat_cache *cache, dnn_prediction *out,
                                    dnn_error *err);

/*
 * Per-layer times of one device at `batch` samples into `out` (an array of
 * dnn_net_layer_count entries, caller-owned), under the scenario's tensor
 * degree, sequence_parallel and tensor_split (t = 1: every layer
 * replicated, times as dnn_hw_layer_time). Does not allocate.
 */
void dnn_strat_layer_times(const dnn_strat_input *in, size_t batch,
                           dnn_layer_time *out);

/* ------------------------------------------------------------------------ */
/* Training techniques (docs/models.md §16-§20)                              */
/* ------------------------------------------------------------------------ */

/* Steps of the clock recurrence that times stale-synchronous and
 * asynchronous training (at most this many x replicas speed draws; fewer
 * steps when there are very many replicas, never fewer than 16). */
#define DNN_STRAT_CLOCK_STEPS 256

/*
 * Mixed-size training (Mix & Match, REFERENCE §3.2): the unique samples
 * per replica and the augmented copies of each sample of a step at image
 * side `size`, from the base size S0 = [model] image, the base local
 * batch B0 = batch / data and the base copies M0 = [training]
 * augment_copies. size_policy batch (B+): B = round(B0 (S0/S)^2), M = M0;
 * copies (D+): M = round(M0 (S0/S)^2), B = B0, and where M0 (S0/S)^2 <
 * 0.5 the batch shrinks instead, B = round(B0 M0 (S0/S)^2), M = 1.
 * B is then rounded to a multiple of [parallelism] microbatches (at
 * least one micro-batch of one sample). Needs a valid scenario.
 */
void dnn_strat_size_config(const dnn_scenario *scn, size_t size,
                           size_t *local_batch, size_t *copies);

/* ------------------------------------------------------------------------ */
/* The cache of per-layer times                                              */
/* ------------------------------------------------------------------------ */

/*
 * An empty cache. It keeps the per-layer times, workspace, activation
 * memory and tensor-group communication of a few (network, profile,
 * cluster links, micro-batch size, dtype, workspace limit, tensor degree,
 * sequence parallelism, tensor split) combinations, the most recent
 * first, and scratch for the stage table, so that repeated predictions
 * (sweeps, search) reuse them and do not allocate once warm. An entry is
 * found again by value, except that the network and profile are matched
 * by address and measured-row count: after changing either in place (or
 * freeing one and building another), call dnn_strat_cache_clear.
 * DNN_ENOMEM.
 */
dnn_status dnn_strat_cache_alloc(dnn_strat_cache **out, dnn_error *err);

/* Forgets every entry (keeps the memory). NULL does nothing. */
void dnn_strat_cache_clear(dnn_strat_cache *c);

/* Frees it. NULL does nothing. */
void dnn_strat_cache_free(dnn_strat_cache *c);

/* Entries computed and lookups that found one, since allocation. */
void dnn_strat_cache_stats(const dnn_strat_cache *c, size_t *misses,
                           size_t *hits);

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
