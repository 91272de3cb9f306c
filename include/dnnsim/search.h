/*
 * dnnsim search: which parallel configuration trains a scenario's model
 * fastest on N devices (docs/search.md).
 *
 * The space is every valid (data d, tensor t, pipeline p, micro-batch
 * size, schedule, virtual stages, recompute, ZeRO stage) with
 * d x t x p = N: t divides the devices of a node (tensor groups stay on
 * NVLink) and the model's attention heads, d divides the global batch,
 * the micro-batch size divides the local batch, each of the p x v
 * virtual stages gets whole transformer blocks (or at least one layer
 * with weights), interleaving needs micro-batches divisible by p, and
 * ZeRO 2-3 only without a pipeline. Every candidate is predicted by the
 * analytic engine from cached per-layer times (dnn_strat_predict_cached:
 * no allocation per candidate); what does not fit in device memory is
 * dropped; the best `finalists` by analytic time are re-timed with the
 * event simulator when their graphs are small enough; results are ranked
 * by the final time per iteration.
 *
 * A search can be split over processes: part k of n evaluates candidates
 * k, k + n, k + 2n, ... of the enumeration, simulates its own best
 * `finalists`, and dnn_search_merge combines the parts' results into
 * exactly the ranking one process would find (the CLI does this with MPI;
 * the library stays MPI-free).
 *
 * Usage: dnn_search_alloc -> while (dnn_search_step(s, n)) ... ->
 * dnn_search_finish -> dnn_search_results, or dnn_search_run.
 */
#ifndef DNNSIM_SEARCH_H
#define DNNSIM_SEARCH_H

#include "dnnsim/core.h"
#include "dnnsim/scenario.h"
#include "dnnsim/strat.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dnn_search dnn_search;

/* What to search (dnn_search_default_params gives the defaults). */
typedef struct dnn_search_params {
  size_t devices;       /* N; 0: the scenario's nodes x devices_per_node */
  size_t top;           /* results kept, >= 1 (default 10) */
  size_t finalists;     /* best by analytic time re-timed by the simulator
                           (default 3; 0: none) */
  size_t sim_max_tasks; /* a finalist with a larger graph keeps its
                           analytic time (default 2^18) */
  size_t max_tensor;    /* largest t; 0: devices per node */
  size_t max_virtual;   /* largest virtual stages per device (default 4) */
  size_t part, parts;   /* this process evaluates candidates k with
                           k % parts == part (default 0 of 1) */
} dnn_search_params;

/* One configuration and its prediction. */
typedef struct dnn_search_result {
  size_t data, tensor, pipeline;
  size_t microbatch_size, microbatches;
  size_t virtual_stages;
  dnn_schedule schedule;
  dnn_recompute recompute;
  size_t zero;
  double analytic_s;        /* the analytic engine's iteration time */
  dnn_prediction analytic;  /* the analytic engine's prediction */
  dnn_prediction simulated; /* the simulator's (iteration_s 0: none) */
  /* The one ranked: `simulated` for a finalist that was simulated, else
   * `analytic`. */
  dnn_prediction prediction;
} dnn_search_result;

/* Counts of this process's part. */
typedef struct dnn_search_stats {
  size_t candidates; /* configurations enumerated (all parts) */
  size_t evaluated;  /* predicted analytically (this part) */
  size_t fit;        /* ... that fit in device memory */
  size_t rejected;   /* ... that the strategy refused (none expected) */
  size_t simulated;  /* finalists re-timed by the simulator */
  size_t tables;     /* per-layer tables computed (cache misses) */
} dnn_search_stats;

/* The defaults above. */
dnn_search_params dnn_search_default_params(void);

/*
 * A search of `in`'s model, profile and cluster links (the scenario's
 * other keys, e.g. dtype, optimizer, overlap, sequence_parallel, are
 * kept). The inputs are borrowed and must outlive the search. DNN_EINVAL
 * for parameters out of range (top 0, part >= parts), for N not a
 * multiple of devices_per_node (N < devices_per_node: one node of N), or
 * a global batch no configuration can split; DNN_ENOMEM.
 */
dnn_status dnn_search_alloc(const dnn_strat_input *in,
                            const dnn_search_params *p, dnn_search **out,
                            dnn_error *err);

/* Frees it. NULL does nothing. */
void dnn_search_free(dnn_search *s);

/*
 * Evaluates up to `n` more candidates of this part; false when the space
 * is exhausted (the analytic phase is done). Never allocates once each
 * (micro-batch size, tensor degree) has been met.
 */
bool dnn_search_step(dnn_search *s, size_t n);

/* Candidates enumerated so far and in all (for progress). */
void dnn_search_progress(const dnn_search *s, size_t *done, size_t *total);

/*
 * Re-times this part's finalists with the event simulator and ranks the
 * results. Call once, after dnn_search_step returned false. DNN_ENOMEM
 * (a simulation graph).
 */
dnn_status dnn_search_finish(dnn_search *s, dnn_error *err);

/* The ranked results of this part (best first; borrowed, valid until the
 * search is freed), *n of them (at most top + finalists: the best by
 * analytic time, which dnn_search_merge needs to rank parts exactly). */
const dnn_search_result *dnn_search_results(const dnn_search *s, size_t *n);

/* This part's counts. */
dnn_search_stats dnn_search_get_stats(const dnn_search *s);

/* alloc, step to the end, finish; copies up to `cap` results into `out`
 * (*n of them) and the stats into *stats (may be NULL). */
dnn_status dnn_search_run(const dnn_strat_input *in, const dnn_search_params *p,
                          dnn_search_result *out, size_t cap, size_t *n,
                          dnn_search_stats *stats, dnn_error *err);

/*
 * Ranks the results of all parts (`all`, n of them, concatenated in any
 * order) in place as one process would: the best `finalists` by analytic
 * time keep their simulated time, the others their analytic one, then
 * every result is ordered by final time (ties: analytic time, then the
 * configuration). Returns how many of the first entries to report
 * (at most `top`).
 */
size_t dnn_search_merge(dnn_search_result *all, size_t n, size_t top,
                        size_t finalists);

/* "d8 t4 p2 mbs2 m24 1f1b v1 full zero1"-style label of a result. */
const char *dnn_search_label(const dnn_search_result *r, char *buf, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_SEARCH_H */
