/*
 * dnnsim mb: micro-batched convolutions under a workspace limit, the
 * technique of µ-cuDNN (Oyama, Ben-Nun, Hoefler & Matsuoka, "Accelerating
 * Deep Learning Frameworks with Micro-batches", IEEE Cluster 2018, arXiv
 * 1804.04806; repository spcl/ucudnn; ../shared/REFERENCE.md §2).
 *
 * A "kernel" is one pass (forward, backward-data, backward-weights) of one
 * convolution layer on a mini-batch of N samples. Its N samples may be
 * split into micro-batches b_1 + ... + b_k = N that run one after another,
 * each with its own algorithm, reusing one workspace buffer: the
 * configuration's time is the sum of its micro-batches' times and its
 * workspace the largest of theirs. Two optimisers choose configurations
 * (docs/models.md §10 derives both):
 *
 *   workspace reuse (WR, solver dp): per kernel, under a per-layer limit M,
 *     T(b) = min( t1(b), min_{b' <= b/2} t1(b') + T(b - b') ),  b = 1..N,
 *   with t1(b) the fastest single algorithm at b whose workspace fits M;
 *
 *   workspace division (WD, solver ilp): the same recursion keeping the
 *   Pareto set ("desirable set") of (time, workspace) per b, then one 0/1
 *   programme over all kernels: one configuration per kernel, total
 *   workspace <= the network-wide limit, minimum total time (GLPK).
 *
 * The optimisers take costs through a callback, so measured tables,
 * synthetic tables and the roofline models serve alike; dnn_mb_plan_build
 * plans a whole network on a hardware profile.
 */
#ifndef DNNSIM_MBATCH_H
#define DNNSIM_MBATCH_H

#include "dnnsim/core.h"
#include "dnnsim/hw.h"
#include "dnnsim/model.h"
#include "dnnsim/scenario.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Opaque types                                                              */
/* ------------------------------------------------------------------------ */

/* Configurations of one kernel: the fastest (dp) or its Pareto set. */
typedef struct dnn_mb_set dnn_mb_set;

/* The chosen configuration of every convolution kernel of a network. */
typedef struct dnn_mb_plan dnn_mb_plan;

/* ------------------------------------------------------------------------ */
/* Hooks                                                                     */
/* ------------------------------------------------------------------------ */

/*
 * Cost of one kernel run once on `batch` samples (1..N) with algorithm
 * `algo` (< n_algos): returns the time in seconds and stores the workspace
 * in bytes in *workspace_bytes. A non-finite time (INFINITY) marks a
 * combination that cannot run. Must be deterministic; it is called once
 * per (allowed size, algorithm) pair.
 */
typedef double (*dnn_mb_cost_fn)(void *ud, size_t batch, size_t algo,
                                 double *workspace_bytes);

/* ------------------------------------------------------------------------ */
/* Records                                                                   */
/* ------------------------------------------------------------------------ */

/* What the per-kernel optimiser reads. */
typedef struct dnn_mb_costs {
  size_t batch;        /* N: the mini-batch to divide, >= 1 */
  size_t n_algos;      /* algorithms 0..n_algos-1, >= 1 */
  dnn_mb_cost_fn cost; /* time and workspace of (batch, algo) */
  void *ud;            /* passed back to `cost` */
} dnn_mb_costs;

/* `count` micro-batches of `batch` samples each, run with `algo`. */
typedef struct dnn_mb_part {
  size_t batch;           /* samples per micro-batch */
  size_t count;           /* micro-batches of this size and algorithm */
  size_t algo;            /* algorithm index (a dnn_conv_algo in plans) */
  double time_s;          /* time of one such micro-batch */
  double workspace_bytes; /* workspace of one such micro-batch */
} dnn_mb_part;

/*
 * A division of N samples. Parts are grouped by (size, algorithm) and
 * sorted by size descending, then algorithm; sum of count x batch is N.
 */
typedef struct dnn_mb_config {
  double time_s;            /* sum over micro-batches */
  double workspace_bytes;   /* largest micro-batch workspace */
  size_t n_parts;           /* groups in `parts` */
  size_t n_microbatches;    /* sum of count */
  const dnn_mb_part *parts; /* borrowed from the set or plan that owns it */
} dnn_mb_config;

/* How a network is planned. */
typedef struct dnn_mb_params {
  dnn_microbatching solver;     /* NONE: undivided; DP: WR; ILP: WD */
  dnn_mb_policy policy;         /* micro-batch sizes allowed */
  double layer_workspace_bytes; /* M: per-layer limit (baseline, dp) */
  double total_workspace_bytes; /* ilp: network-wide limit; 0: M x the
                                   number of convolution layers */
  double ilp_gap; /* ilp: relative optimality gap at which GLPK stops */
  double ilp_time_limit_s; /* ilp: GLPK's time limit (0: none); past it the
                              best solution found is used */
} dnn_mb_params;

/* One planned kernel. */
typedef struct dnn_mb_kernel {
  size_t layer;           /* index in the network */
  dnn_pass pass;          /* the pass */
  dnn_mb_config chosen;   /* the solver's configuration */
  dnn_mb_config baseline; /* undivided, fastest algorithm fitting M */
  size_t n_candidates;    /* configurations the solver chose among: 1 for
                             dp and none, the Pareto set's size for ilp */
} dnn_mb_kernel;

/* Totals of a plan. */
typedef struct dnn_mb_summary {
  size_t kernels;             /* convolution (layer, pass) kernels */
  size_t conv_layers;         /* convolution layers */
  double baseline_s;          /* sum of baseline kernel times */
  double chosen_s;            /* sum of chosen kernel times */
  double speedup;             /* baseline_s / chosen_s (1 if no conv) */
  double workspace_sum_bytes; /* sum of chosen workspaces (ilp's) */
  double workspace_max_bytes; /* largest chosen workspace (dp's) */
  double baseline_workspace_max_bytes; /* largest baseline workspace */
  double total_limit_bytes;            /* ilp: the resolved network-wide limit;
                                          dp and none: the per-layer limit M */
} dnn_mb_summary;

/*
 * dp, powerOfTwo, 64 MiB per layer (µ-cuDNN's defaults), total 0, and an
 * ilp gap of 1e-4: the cost models are good to a few percent at best, so
 * proving the last 0.01% buys nothing and can take minutes (see
 * microbatch_ilp.c); set 0 for the exact optimum.
 */
dnn_mb_params dnn_mb_default_params(void);

/* ------------------------------------------------------------------------ */
/* Micro-batch sizes                                                         */
/* ------------------------------------------------------------------------ */

/*
 * The allowed single micro-batch sizes S(N) of `policy`, ascending:
 * undivided {N}; powerOfTwo {1, 2, 4, ..., 2^floor(log2 N)} u {N}; all
 * {1..N}. Writes at most `cap` sizes to `sizes` (may be NULL when cap is
 * 0) and returns how many there are. Does not allocate.
 */
size_t dnn_mb_sizes(dnn_mb_policy policy, size_t batch, size_t *sizes,
                    size_t cap);

/* The policy's name as in scenarios ("undivided", "powerOfTwo", "all"). */
const char *dnn_mb_policy_name(dnn_mb_policy policy);

/* Parses a policy name. DNN_ENOTFOUND (with a suggestion). */
dnn_status dnn_mb_policy_parse(const char *name, dnn_mb_policy *out,
                               dnn_error *err);

/*
 * Parses a byte size with a unit: "64MiB", "8 MiB", "1GiB", "512KiB",
 * "4096B", and the decimal "100MB", "1GB", "10kB". A number without a
 * unit is rejected (the scenario keys count MiB, a command line might
 * mean bytes). DNN_EINVAL naming the text.
 */
dnn_status dnn_mb_size_parse(const char *text, double *bytes, dnn_error *err);

/* ------------------------------------------------------------------------ */
/* Per-kernel optimiser                                                      */
/* ------------------------------------------------------------------------ */

/*
 * Divides costs->batch samples under `limit_bytes` (each micro-batch's
 * workspace must fit; a configuration's workspace is its largest).
 * pareto false (WR): the set holds the one fastest configuration (ties:
 * smaller workspace, then fewer micro-batches). pareto true (WD): the set
 * holds every configuration no other beats in both time and workspace,
 * sorted by workspace ascending (time descending). Allocates the set;
 * free with dnn_mb_set_free. Runs in O(N |S(N)| |A|) for WR and
 * O(N |S(N)| |A| |P|) for WD (|P| the largest Pareto set).
 * Errors: DNN_EINVAL (batch or n_algos 0, negative or NaN limit, a cost
 * that is negative or NaN), DNN_ENOFIT (no division fits the limit),
 * DNN_ENOMEM.
 */
dnn_status dnn_mb_set_build(const dnn_mb_costs *costs, dnn_mb_policy policy,
                            double limit_bytes, bool pareto, dnn_mb_set **out,
                            dnn_error *err);

void dnn_mb_set_free(dnn_mb_set *set);

/* Configurations in the set (>= 1). */
size_t dnn_mb_set_count(const dnn_mb_set *set);

/* Configuration `i` (< count); borrowed, valid until the set is freed. */
const dnn_mb_config *dnn_mb_set_get(const dnn_mb_set *set, size_t i);

/* ------------------------------------------------------------------------ */
/* Network-wide optimiser                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Picks configuration choice[k] of sets[k] for every kernel k so that the
 * sum of their workspaces is at most `limit_bytes` and the sum of their
 * times is least: the 0/1 programme of docs/models.md §10, solved by GLPK
 * (simplex, then branch and cut) unless the fastest configurations already
 * fit. Branch and cut stops once the choice is proven within `rel_gap`
 * (relative, in [0, 1); 0 asks for the exact optimum) of the least total
 * time, or at `time_limit_s` seconds (0: no limit) with the best choice
 * found by then (the smallest workspaces when none was found). The
 * returned choice is checked in exact arithmetic against the limit.
 * Errors: DNN_EINVAL (no sets, an empty set, a negative or NaN
 * limit, a gap outside [0, 1)), DNN_ENOFIT (even the smallest workspaces exceed
 * the limit), DNN_ETOOLFAIL (GLPK failed or returned a non-optimal status),
 * DNN_ENOMEM. GLPK allocates through its own allocator, not the
 * dnn_allocator hook.
 */
dnn_status dnn_mb_ilp_solve(const dnn_mb_set *const *sets, size_t n_sets,
                            double limit_bytes, double rel_gap,
                            double time_limit_s, size_t *choice,
                            dnn_error *err);

/* ------------------------------------------------------------------------ */
/* Planning a network                                                        */
/* ------------------------------------------------------------------------ */

/*
 * Plans every convolution kernel of `net` at `batch` samples of `dtype` on
 * profile `hw`. The cost of (micro-batch, algorithm) is the profile's
 * measured time when it has rows for the layer, pass and dtype (then only
 * measured algorithms are candidates, as in dnn_hw_layer_time, unless none
 * of them fits undivided), else
 * dnn_hw_conv_time's roofline; both include one kernel launch per
 * micro-batch. Workspaces are the algorithm model's (model.h). The
 * baseline of each kernel is the undivided fastest algorithm whose
 * workspace fits layer_workspace_bytes, which is what dnn_hw_layer_time
 * picks. Allocates the plan (free with dnn_mb_plan_free); run it once per
 * scenario, not in a sweep's inner loop. Errors: DNN_EINVAL (batch 0, a
 * negative or NaN limit, an ilp gap outside [0, 1)), DNN_ENOFIT (a kernel
 * with no algorithm within the limit, or an ilp limit below the smallest
 * workspaces: neither happens with a validated profile, where
 * implicit_gemm or direct runs every convolution without workspace),
 * DNN_ETOOLFAIL, DNN_ENOMEM.
 */
dnn_status dnn_mb_plan_build(const dnn_net *net, const dnn_hw *hw, size_t batch,
                             dnn_dtype dtype, const dnn_mb_params *params,
                             dnn_mb_plan **out, dnn_error *err);

/*
 * Sets up the costs of one convolution kernel (`layer`, `pass`) for
 * dnn_mb_plan_build_with: sets costs->cost and costs->ud (batch and
 * n_algos come preset; what ud points to must stay valid until the next
 * call). Returns true when the costs are narrowed (say, to measured
 * algorithms) with wider ones behind them: if nothing narrowed fits the
 * per-layer limit undivided, the planner calls again with `fallback` true
 * for the wider costs and keeps those for the kernel. Called first with
 * fallback false for every kernel, in plan order.
 */
typedef bool (*dnn_mb_kernel_costs_fn)(void *ud, size_t layer, dnn_pass pass,
                                       bool fallback, dnn_mb_costs *costs);

/*
 * dnn_mb_plan_build with the costs of each kernel from `kernel_costs`
 * (called with `ud`) instead of a profile: the same baselines, solvers,
 * summary, errors and ownership. dnn_mb_plan_build is this with the
 * profile's costs; a caller with its own measurements (a raw kernel CSV)
 * plans through it.
 */
dnn_status dnn_mb_plan_build_with(const dnn_net *net, size_t batch,
                                  dnn_dtype dtype, const dnn_mb_params *params,
                                  dnn_mb_kernel_costs_fn kernel_costs, void *ud,
                                  dnn_mb_plan **out, dnn_error *err);

void dnn_mb_plan_free(dnn_mb_plan *plan);

/* Kernels in the plan, in layer order, then pass order. */
size_t dnn_mb_plan_kernel_count(const dnn_mb_plan *plan);

/* Kernel `k` (< count); borrowed, valid until the plan is freed. */
const dnn_mb_kernel *dnn_mb_plan_kernel(const dnn_mb_plan *plan, size_t k);

/* The plan's totals. */
void dnn_mb_plan_summary(const dnn_mb_plan *plan, dnn_mb_summary *out);

/*
 * The algorithm doing most of a configuration's samples (ties: the lower
 * index): the one to report where a single algorithm is expected.
 */
size_t dnn_mb_config_main_algo(const dnn_mb_config *config);

/*
 * Writes a configuration as text, e.g. "2x128 fft, 4x64 winograd_nonfused"
 * (algorithm names from dnn_conv_algo_name). Truncates to `n` bytes;
 * returns buf.
 */
const char *dnn_mb_config_format(const dnn_mb_config *config, char *buf,
                                 size_t n);

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_MBATCH_H */
