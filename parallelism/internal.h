/*
 * parallelism/ private declarations shared by the strategies, the
 * collectives, the event simulator and search.
 */
#ifndef DNNSIM_PARALLELISM_INTERNAL_H
#define DNNSIM_PARALLELISM_INTERNAL_H

#include "core/internal.h"
#include "dnnsim/comm.h"
#include "dnnsim/sim.h"
#include "dnnsim/strat.h"

#include <stdint.h>

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

/* ------------------------------------------------------------------------ */
/* Calibrated collectives (comm_fit.c)                                       */
/* ------------------------------------------------------------------------ */

/*
 * The cost of a collective from a comm profile (NULL: none): comm.h's
 * dnn_comm_profile_predict for a configured algorithm, the cheapest fitted
 * algorithm for AUTO, on topo->ranks ranks. Fills out->time_s and
 * out->algo (the other fields 0) and returns true, or returns false when
 * the profile cannot price it (then comm.h's model applies). Does not
 * allocate.
 */
bool dnn__comm_profile_cost(const dnn_comm_profile *cp, dnn_comm_op op,
                            dnn_comm_algo algo, double bytes,
                            const dnn_comm_topo *topo, dnn_comm_cost *out);

/* ------------------------------------------------------------------------ */
/* Per-scenario resources (technique.c)                                      */
/* ------------------------------------------------------------------------ */

/* A network rebuilt at another image size (mixed-size training). */
typedef struct dnn__size_net {
  const dnn_net *base; /* the network it was derived from */
  size_t size;
  dnn_net *net; /* owned */
} dnn__size_net;

/* Log-normal E[max] values met before (jitter). */
#define DNN__EMAX_SLOTS 8

/*
 * What a prediction loads or builds from a scenario beyond the network and
 * profile it is given: the comm profile of [cluster] comm_profile and the
 * networks of the other sizes of [training] sizes. A cache keeps one (so
 * each is loaded or built once per scenario); an uncached prediction
 * makes one for the call.
 */
typedef struct dnn__res {
  dnn_comm_profile *comm;           /* owned, or NULL */
  char comm_path[DNN_SCN_PATH_MAX]; /* where it came from */
  dnn__size_net nets[DNN_SCN_MAX_SIZES];
  size_t n_nets;
  double emax_n[DNN__EMAX_SLOTS], emax_cv[DNN__EMAX_SLOTS];
  double emax[DNN__EMAX_SLOTS];
  size_t n_emax;
} dnn__res;

/* The comm profile of the scenario (NULL when it names none), loaded on
 * first use. Errors as dnn_hw_comm_profile_load, prefixed with the key. */
dnn_status dnn__res_comm(dnn__res *r, const dnn_scenario *scn,
                         const dnn_comm_profile **out, dnn_error *err);
/* The network of `base`'s scenario at image side `size` (`base` itself
 * when size is the scenario's model.image), built on first use. */
dnn_status dnn__res_net(dnn__res *r, const dnn_strat_input *in, size_t size,
                        const dnn_net **out, dnn_error *err);
/* E[max of n log-normal factors of mean 1 and variation cv], memoised. */
double dnn__res_emax(dnn__res *r, size_t n, double cv);
/* Frees what it owns and empties it. NULL-safe. */
void dnn__res_release(dnn__res *r);

/* The cache's resources. */
dnn__res *dnn__cache_res(dnn_strat_cache *c);

/* ------------------------------------------------------------------------ */
/* Stragglers and consistency (technique.c)                                  */
/* ------------------------------------------------------------------------ */

/* E[max of n i.i.d. standard normals] (0 for n = 1), by composite Simpson
 * quadrature of n z phi(z) Phi(z)^(n-1). Does not allocate. */
double dnn__emax_normal(size_t n);
/* E[max of n i.i.d. log-normal factors of mean 1 and coefficient of
 * variation cv] (1 for n = 1 or cv = 0), the same way. */
double dnn__emax_lognormal(size_t n, double cv);

/* What the clock recurrence of stale-synchronous or asynchronous training
 * gives (technique.c). */
typedef struct dnn__clock_result {
  double step_s;    /* mean time per step of a replica */
  double staleness; /* mean clock lag behind the slowest replica */
  size_t steps;     /* steps simulated */
} dnn__clock_result;

/*
 * n replicas run steps of compute C x X (X the replica's k-th speed factor
 * from its stream, device ids device0 + q stride) followed by A of
 * communication; a replica may start step k once every replica has
 * finished step k - s - 1 (sync: s = 0; async: no bound). DNN_ENOMEM.
 */
dnn_status dnn__clock_run(size_t n, double C, double A, double cv,
                          dnn_consistency consistency, size_t s, uint64_t seed,
                          size_t device0, size_t stride, dnn__clock_result *out,
                          dnn_error *err);

/* ------------------------------------------------------------------------ */
/* Per-device random streams (STYLE.md §5)                                   */
/* ------------------------------------------------------------------------ */

/* xoshiro256** (Blackman & Vigna 2018), seeded through splitmix64. */
typedef struct dnn__rng {
  uint64_t s[4];
} dnn__rng;

/* The stream of device `stream` under `seed`: independent of how many
 * other streams exist or in which order they are drawn from. */
void dnn__rng_seed(dnn__rng *r, uint64_t seed, uint64_t stream);
/* Uniform in (0, 1). */
double dnn__rng_uniform(dnn__rng *r);
/* A log-normal factor with mean 1 and coefficient of variation `cv`
 * (1 exactly when cv is 0, without drawing): one uniform through GSL's
 * inverse normal distribution. */
double dnn__rng_jitter(dnn__rng *r, double cv);
/* The `draw`-th factor (0-based) of device `stream`'s stream: draw k of
 * every Monte Carlo run or step comes from the same place. */
double dnn__rng_jitter_at(uint64_t seed, uint64_t stream, size_t draw,
                          double cv);

/* ------------------------------------------------------------------------ */
/* The stage model: the seam between strategies and engines                  */
/* ------------------------------------------------------------------------ */

/*
 * A strategy turns a scenario into a stage model: the network cut into
 * V = p x v virtual stages (model chunks; data parallelism is V = 1), each
 * with its per-micro-batch forward, backward and recompute times, its
 * activation memory, the transfers at its boundaries and its gradient
 * buckets. Both engines read only the stage model (plus per-layer times
 * through dnn__stage_layer_time), so the analytic closed forms and the task
 * graph agree by construction. Tensor parallelism plugs in here through
 * the per-layer rows (tensor.c, layertab.c): each layer's share of the
 * work and its tensor group's collectives, which sit on the stage's
 * critical path inside the layer times.
 */

/* One point-to-point transfer between pipeline neighbours (replica 0). */
typedef struct dnn__xfer {
  double bytes;     /* per micro-batch */
  double latency_s; /* alpha of the link crossed */
  double bw_Bps;    /* bandwidth of the link (device port or node NICs) */
  double cap_Bps;   /* per-flow cap on that link */
  double weight;    /* replicas of the stage sending on that link at once */
  bool inter;       /* crosses nodes (link = the sending node's NICs) */
  size_t src_device, dst_device; /* global device ids (replica 0) */
} dnn__xfer;

/* Seconds of a transfer alone on its link, with its weight. */
double dnn__xfer_time(const dnn__xfer *x);

/* One virtual stage (a model chunk on pipeline rank vs % p). */
typedef struct dnn__stage {
  size_t first, count;    /* layers [first, first + count) */
  double fwd_s, bwd_s;    /* per micro-batch (bwd: data + weights) */
  double recompute_s;     /* forward recomputed per micro-batch */
  double act_kept_bytes;  /* kept per micro-batch in flight */
  double act_extra_bytes; /* transient while its backward runs */
  double act_full_bytes;  /* all its activations per micro-batch */
  double params;          /* trainable parameters (this device's share) */
  double workspace_bytes; /* max over its layers and passes */
  dnn__xfer send_fwd;     /* activations to stage + 1 (bytes 0: none) */
  dnn__xfer send_bwd;     /* gradients to stage - 1 (bytes 0: none) */
  /* Tensor-group collectives inside fwd_s, bwd_s and recompute_s (they
   * block the compute stream), per micro-batch. */
  double comm_fwd_s, comm_bwd_s, comm_recompute_s;
  double group_grad_bytes; /* replicated weights' gradients the tensor
                              group allreduces once per iteration */
  double max_layer_params; /* largest layer's share (ZeRO-3 buffer) */
} dnn__stage;

/* ------------------------------------------------------------------------ */
/* Per-layer rows: what a stage sums (tensor.c, layertab.c)                  */
/* ------------------------------------------------------------------------ */

/* One layer on one device, per micro-batch, under the tensor split. */
typedef struct dnn__layer_row {
  double fwd_s, bwd_s;           /* compute + tensor-group collectives */
  double comm_fwd_s, comm_bwd_s; /* the collectives' part of them */
  double workspace_bytes;        /* max over passes */
  double workspace_held_bytes;   /* what the layer holds: workspace_bytes,
                                    or under micro_batching = ilp the sum
                                    over its passes (each its own buffer) */
  double act_bytes;              /* kept from forward to backward */
  double selective_bytes;        /* what selective recompute drops (0: keeps) */
  bool selective;                /* selective recompute re-runs its forward */
  double input_bytes;      /* an input layer's data (full recompute keeps) */
  double out_bytes;        /* its output (kept when it is a checkpoint) */
  double params;           /* trainable parameters this device holds */
  double group_grad_bytes; /* replicated weights' gradients (see stage) */
} dnn__layer_row;

/* Prefix sums a table keeps over its rows, and range maxima. */
enum {
  DNN__PRE_FWD,          /* fwd_s */
  DNN__PRE_BWD,          /* bwd_s */
  DNN__PRE_COMM_FWD,     /* comm_fwd_s */
  DNN__PRE_COMM_BWD,     /* comm_bwd_s */
  DNN__PRE_PARAMS,       /* params */
  DNN__PRE_ACT,          /* act_bytes */
  DNN__PRE_GROUP,        /* group_grad_bytes */
  DNN__PRE_INPUT,        /* input_bytes */
  DNN__PRE_SEL,          /* selective_bytes */
  DNN__PRE_SEL_FWD,      /* fwd_s of selective layers */
  DNN__PRE_SEL_COMM_FWD, /* comm_fwd_s of selective layers */
  DNN__PRE_WS_HELD,      /* workspace_held_bytes */
  DNN__PRE_COUNT
};
enum {
  DNN__MAX_WS,     /* workspace_bytes */
  DNN__MAX_SEL,    /* selective_bytes */
  DNN__MAX_PARAMS, /* params */
  DNN__MAX_COUNT
};

/*
 * The rows of every layer for one (network, profile, cluster links,
 * micro-batch size, dtype, workspace limit, tensor degree, sequence
 * parallelism, tensor split), with what the stage model needs beyond
 * them: the bytes a pipeline cut before layer k carries per tensor rank
 * (cut_fwd[k]: activations; cut_bwd[k]: their gradients, none for input
 * data), model FLOPs and one unsplit device's time per micro-batch, and
 * the tied LM head and the embedding it shares.
 */
typedef struct dnn__layer_tab {
  size_t layers;
  dnn__layer_row *row; /* `layers` entries */
  /* pre[q][k]: the sum of quantity q over layers [0, k) (layers + 1
   * entries); max[q][j * layers + i]: its maximum over [i, i + 2^j)
   * (a sparse table of `levels` levels). */
  double *pre[DNN__PRE_COUNT];
  double *max[DNN__MAX_COUNT];
  size_t levels;
  double *cut_fwd, *cut_bwd; /* `layers` + 1 entries */
  double flops_mb;           /* whole-group model FLOPs per micro-batch */
  double one_fb_s;           /* one device, unsplit: fwd + bwd */
  double one_fwd_s;          /* one device, unsplit: fwd (inference) */
  bool ws_sum;               /* workspaces add up (micro_batching ilp) */
  size_t sparse[8];          /* layers with row-sparse weight gradients
                                (embeddings, NCE), the first 8 */
  size_t n_sparse;
  double params;            /* the network's trainable parameters */
  size_t tied_fc, tied_emb; /* DNN_SIM_NONE when none */
  size_t *ckpt;             /* full recompute's checkpoint cuts, sorted */
  size_t n_ckpt;
  unsigned long long id; /* unique within its cache (partition keys) */
} dnn__layer_tab;

/* Full recompute checkpoints every transformer block, as Megatron-LM does
 * (one layer per checkpoint): the cut after the last residual add before
 * each attention block. Calls fn(k, ud) for each cut k in [lo, hi), in
 * order. O(hi - lo). */
void dnn__ckpt_cuts(const dnn_net *net, size_t lo, size_t hi,
                    void (*fn)(size_t k, void *ud), void *ud);

/* Sum of prefix quantity q over layers [a, b), and maximum of range
 * quantity q over [a, b) (a < b), in O(1). */
double dnn__tab_sum(const dnn__layer_tab *tab, int q, size_t a, size_t b);
double dnn__tab_max(const dnn__layer_tab *tab, int q, size_t a, size_t b);

/* Fills `tab` (allocating its arrays) at micro-batch `mbs` and tensor
 * degree `t`, the tensor group's collectives priced by `cp` (may be NULL)
 * and, under [training] micro_batching, the convolutions by their µ-cuDNN
 * plan (t = 1 only: DNN_EUNSUPPORTED otherwise). DNN_ENOMEM, or a planning
 * error. */
dnn_status dnn__layer_tab_build(const dnn_strat_input *in,
                                const dnn_comm_profile *cp, size_t mbs,
                                size_t t, dnn__layer_tab *tab, dnn_error *err);
/* Frees its arrays. NULL-safe. */
void dnn__layer_tab_release(dnn__layer_tab *tab);

/* The row of layer i at t = 1, computed on the spot (no allocation). */
void dnn__layer_row_plain(const dnn_strat_input *in, size_t i, size_t mbs,
                          dnn__layer_row *row);

/* Whether layer i has a row-sparse weight gradient to exchange
 * (dnn_layer_grad_rows: a trained embedding or an NCE loss). */
bool dnn__layer_sparse_grad(const dnn_net *net, size_t i);

/* The tied fc (an LM head sharing an embedding's table) and that
 * embedding, or DNN_SIM_NONE for both. O(layers). */
void dnn__net_tied(const dnn_net *net, size_t *fc, size_t *emb);

/* The cache's table for (in, cp, mbs, t): found or built. Errors as
 * dnn__layer_tab_build. */
dnn_status dnn__cache_tab(dnn_strat_cache *c, const dnn_strat_input *in,
                          const dnn_comm_profile *cp, size_t mbs, size_t t,
                          const dnn__layer_tab **out, dnn_error *err);
/* A collective's cost: from the comm profile `cp` when it prices it
 * (dnn__comm_profile_cost), else dnn_comm_time; remembered in the cache
 * (c may be NULL: computed). A topology is compared by value, so padding
 * must be zeroed: every topology here comes from
 * dnn_comm_topo_from_cluster. */
dnn_status dnn__cache_comm_time(dnn_strat_cache *c, const dnn_comm_profile *cp,
                                dnn_comm_op op, dnn_comm_algo algo,
                                double bytes, const dnn_comm_topo *topo,
                                dnn_comm_cost *out, dnn_error *err);

/* A balanced cut of V stages computed before for this table and
 * recompute policy: copied into `first` (V entries), or false. */
bool dnn__cache_partition_get(const dnn_strat_cache *c,
                              const dnn__layer_tab *tab, size_t V,
                              int recompute, size_t *first);
/* Remembers one (allocating on a miss; forgetting it when that fails). */
void dnn__cache_partition_put(dnn_strat_cache *c, const dnn__layer_tab *tab,
                              size_t V, int recompute, const size_t *first);

/* Scratch for a stage table of V stages over L layers (valid until the
 * next call). DNN_ENOMEM. */
dnn_status dnn__cache_scratch(dnn_strat_cache *c, size_t V, size_t L,
                              dnn__stage **stages, size_t **first,
                              double **cost, dnn_error *err);

/* ---- Tensor parallelism (tensor.c) --------------------------------------- */

/* Whether any layer has a Megatron role (else operator parallelism). */
bool dnn__net_has_tp_roles(const dnn_net *net);
/* The topology of a tensor group: t consecutive devices. */
dnn_comm_topo dnn__tp_topo(const dnn_strat_input *in, size_t t);
/* Bytes of layer j's whole output for `batch` samples. */
double dnn__layer_out_bytes(const dnn_net *net, size_t j, size_t batch,
                            dnn_dtype dt);
/* The plan of every layer at micro-batch `mbs` under a t-way tensor split:
 * out (dnn_net_layer_count entries) as dnn_strat_layer_times. Does not
 * allocate. */
void dnn__tp_plan(const dnn_strat_input *in, size_t mbs, size_t t,
                  dnn_layer_time *out);
/* The same with the group's collectives priced by comm profile `cp`. */
void dnn__tp_plan_cp(const dnn_strat_input *in, const dnn_comm_profile *cp,
                     size_t mbs, size_t t, dnn_layer_time *out);
/* What a split divides a layer's activations and parameters by. */
void dnn__tp_divisors(dnn_split s, size_t t, double *act_div,
                      double *param_div);
/* The hybrid's checks: heads divisible by tensor, sequence lengths under
 * sequence parallelism, ZeRO 2-3 without a pipeline, interleaving. */
dnn_status dnn__hybrid_check(const dnn_strat_input *in, dnn_error *err);

/* Row-sparse gradients a stage exchanges by allgather instead of
 * allreducing them in its buckets (docs/models.md §18). */
#define DNN__MAX_SPARSE 8

typedef struct dnn__stage_model {
  dnn_strat_input in;
  const dnn_comm_profile *comm; /* prices collectives (borrowed), or NULL */
  size_t d, t, p, v, m;         /* degrees and micro-batches */
  size_t V;                     /* virtual stages p x v */
  size_t b;                     /* unique samples per replica */
  size_t copies;                /* augmented copies of each sample (>= 1) */
  size_t mbs;            /* samples computed per micro-batch (with copies) */
  dnn_schedule schedule; /* interleaved only when v > 1 */
  dnn_recompute recompute;
  bool overlap;
  double bucket_bytes; /* bucket cap */
  double grad_elem_bytes;
  double ws_limit_bytes;
  dnn_comm_topo dp_topo;     /* one stage's data-parallel group (its NICs
                                shared with the groups of the other tensor
                                ranks on the node) */
  dnn_comm_algo algo;        /* as configured (AUTO allowed) */
  dnn__stage *stages;        /* V entries */
  dnn__stage one;            /* the storage when V == 1: no allocation */
  bool stages_borrowed;      /* stages are the cache's scratch */
  const dnn__layer_tab *tab; /* per-layer rows, or NULL: t = 1, computed
                                on the spot */
  dnn__layer_tab *own_tab;   /* the table when there is no cache */
  dnn_comm_topo tp_topo;     /* a tensor group */
  size_t zero;               /* ZeRO stage */
  size_t tied_fc, tied_emb;  /* DNN_SIM_NONE: none */
  dnn_strat_cache *cache;    /* remembers collective costs, or NULL; only
                                during the call that built the model */
  double one_fwd_s;          /* one device, unsplit: forward of one micro-
                                batch (inference) */
  /* Sparse embedding gradients: the layers exchanged by allgather. */
  size_t n_sparse;
  size_t sparse_layer[DNN__MAX_SPARSE];
  double sparse_params[DNN__MAX_SPARSE]; /* their parameters (this share) */
  double sparse_s[DNN__MAX_SPARSE];      /* their allgathers */
  double sparse_bytes[DNN__MAX_SPARSE];  /* and those allgathers' bytes */
} dnn__stage_model;

/* The row of layer i (from the table, or computed on the spot). */
void dnn__stage_row(const dnn__stage_model *sm, size_t i, dnn__layer_row *row);

/* The trainable parameters of layer i on this device: its row's, and for
 * a tied LM head on another stage than its embedding, a copy of the
 * embedding's (Megatron keeps one on the last stage). */
double dnn__stage_layer_params(const dnn__stage_model *sm, size_t i);

/* ZeRO-3: seconds to allgather `params` parameters over the data-parallel
 * group (0 below stage 3 or with d = 1). */
double dnn__stage_zero3_gather_s(const dnn__stage_model *sm, double params);

/* Communication after rank r's backward that the optimizer step waits
 * for: the tensor group's allreduce of replicated weights' gradients and,
 * under ZeRO 1-2, the allgather of the updated parameter shards. */
double dnn__stage_step_comm_s(const dnn__stage_model *sm, size_t r);

/* Rank r's optimizer step: the update of its shard (1/d of its
 * parameters under ZeRO >= 1) plus dnn__stage_step_comm_s. */
double dnn__stage_optimizer_time(const dnn__stage_model *sm, size_t r);

/* Memory of pipeline rank r: weights, gradients and optimizer state as
 * ZeRO shards them (zero.c); the other fields are left alone. */
void dnn__zero_state_memory(const dnn__stage_model *sm, size_t r,
                            dnn_memory *m);

/* Global device of pipeline rank r, replica q (tensor rank 0), and the
 * node it sits on. */
size_t dnn__stage_device(const dnn__stage_model *sm, size_t r, size_t q);
size_t dnn__stage_node(const dnn__stage_model *sm, size_t device);

/* The transfer of `bytes` from rank r_src to rank r_dst for replica q.
 * `alone`: every replica is simulated, so the weight is 1; otherwise it
 * counts the replicas on the sending node that cross with it. */
dnn__xfer dnn__stage_xfer(const dnn__stage_model *sm, size_t r_src,
                          size_t r_dst, size_t q, double bytes, bool alone);

/* Frees what a stage model owns (not the model itself). NULL-safe. */
void dnn__stage_model_release(dnn__stage_model *sm);

/*
 * Fills `sm` for the scenario with V = p x v virtual stages, collectives
 * priced by comm profile `cp` (borrowed, may be NULL). `first` gives each
 * stage's first layer (V entries), or NULL to cut the network by the
 * scenario's partition key (balanced by predicted time, or its counts).
 * Allocates only when V > 1, t > 1 or micro-batched convolutions need a
 * table. DNN_EINVAL (naming the key) for a partition that does not fit,
 * DNN_EUNSUPPORTED (a technique this build cannot combine), DNN_ENOMEM, or
 * a collective error.
 */
dnn_status dnn__stage_model_build(const dnn_strat_input *in,
                                  const dnn_comm_profile *cp, size_t p,
                                  size_t v, const size_t *first,
                                  dnn__stage_model *sm, dnn_error *err);

/* The same with per-layer rows from `cache` (may be NULL) and, for V > 1,
 * the stage table in its scratch (sm is then valid until the cache's next
 * use: never keep it, as a simulation graph does). No allocation once the
 * cache is warm. */
dnn_status dnn__stage_model_build_ex(const dnn_strat_input *in,
                                     dnn_strat_cache *cache,
                                     const dnn_comm_profile *cp, size_t p,
                                     size_t v, const size_t *first,
                                     dnn__stage_model *sm, dnn_error *err);

/* Forward and backward (data + weights) time of layer i per micro-batch,
 * and whether selective recompute drops and recomputes its output. */
void dnn__stage_layer_time(const dnn__stage_model *sm, size_t i, double *fwd_s,
                           double *bwd_s);
bool dnn__layer_selective(const dnn_net *net, size_t i);

/* Seconds of the gradient reduction of `bytes` over a stage's data-
 * parallel group: an allreduce, or under ZeRO >= 1 a reduce-scatter (each
 * replica keeps its shard), of the gradients compressed as [training]
 * compression says (docs/models.md §20: smaller messages, plus the
 * encoding and decoding compute); 0 when d == 1. `algo` (may be NULL)
 * receives the algorithm used. */
double dnn__stage_allreduce_time(const dnn__stage_model *sm, double bytes,
                                 dnn_comm_algo *algo);

/* What compressing a gradient message of `bytes` (n elements of the
 * training dtype) sends and costs: the bytes on the wire per rank's
 * contribution, and the encode + decode seconds. */
void dnn__compression_cost(const dnn__stage_model *sm, double bytes,
                           double *wire_bytes, double *compute_s);

/* What the gradient exchange of `bytes` sends per replica and computes,
 * as dnn__stage_allreduce_time decides it (top-k falls back to the dense
 * allreduce when that is faster: then `bytes` and 0). */
void dnn__stage_grad_wire(const dnn__stage_model *sm, double bytes,
                          double *wire_bytes, double *compute_s);

/* Dense gradient bytes of pipeline rank r: its parameters' gradients less
 * the row-sparse ones exchanged by allgather (§18). */
double dnn__stage_dense_grad_bytes(const dnn__stage_model *sm, size_t r);
/* Seconds of rank r's row-sparse gradient allgathers (0: none). */
double dnn__stage_sparse_time(const dnn__stage_model *sm, size_t r);

/* Optimizer step time for `params` parameters. */
double dnn__strat_optimizer_time(const dnn_strat_input *in, double params);
/* a += w b, part by part (expectations over sizes, Monte Carlo draws). */
void dnn__breakdown_add(dnn_breakdown *a, const dnn_breakdown *b, double w);
/* Gradient accumulation over m micro-batches of a stage holding `params`
 * parameters, per micro-batch (the (m - 1) accumulating passes spread
 * over m; docs/models.md §8.7). 0 for m <= 1. */
double dnn__strat_accumulate_time(const dnn_strat_input *in, double params,
                                  size_t m);

/* Gradient buckets of a stage in the order backward fills them (reverse
 * layer order), after PyTorch DDP and Horovod. */
typedef struct dnn__bucket {
  size_t close_layer; /* the layer whose gradient completes it */
  double bytes;
  double time_s;  /* its allreduce */
  double ready_s; /* backward time of the stage's layers up to and
                     including close_layer (from the back) */
} dnn__bucket;

typedef struct dnn__bucket_iter {
  size_t vs;
  size_t next; /* layers left: the next is first + next - 1 */
  double bwd_s;
  const double *layer_bwd_s; /* per-layer backward times, or NULL */
} dnn__bucket_iter;

/* Starts at stage vs. `layer_bwd_s` (per layer of the network, may be
 * NULL) saves recomputing the layers' backward times. */
void dnn__bucket_begin(const dnn__stage_model *sm, size_t vs,
                       const double *layer_bwd_s, dnn__bucket_iter *it);
/* The next bucket; false when the stage has none left. With overlap off
 * (or d == 1) there are no buckets: see dnn__strat_device_grad_bytes. */
bool dnn__bucket_next(const dnn__stage_model *sm, dnn__bucket_iter *it,
                      dnn__bucket *out);

/* The allreduce algorithm rank r's exposed allreduce uses (the last
 * bucket's, or the single allreduce without overlap). */
dnn_comm_algo dnn__stage_report_algo(const dnn__stage_model *sm, size_t r);

/* Parameters of pipeline rank r (all its chunks). */
double dnn__stage_device_params(const dnn__stage_model *sm, size_t r);

/* ------------------------------------------------------------------------ */
/* Schedules: the order of work on a device, memory, closed forms           */
/* ------------------------------------------------------------------------ */

/* One step of a device's schedule: forward or backward of a micro-batch
 * through one of its chunks. */
typedef struct dnn__op {
  size_t chunk; /* virtual stage = chunk * p + r */
  size_t mb;
  bool fwd;
} dnn__op;

/* Ops per device: 2 m v. */
size_t dnn__sched_ops(const dnn__stage_model *sm);

/* The k-th op of pipeline rank r (GPipe; 1F1B = PipeDream-Flush;
 * Megatron-LM's interleaved 1F1B). Does not allocate. */
void dnn__sched_op(const dnn__stage_model *sm, size_t r, size_t k, dnn__op *op);

/* Peak activation bytes of pipeline rank r under the schedule and the
 * recompute policy, by walking its ops. */
double dnn__sched_peak_activations(const dnn__stage_model *sm, size_t r);

/* The result of an engine, before the prediction is assembled. */
typedef struct dnn__engine_result {
  double iteration_s;
  size_t critical_rank;    /* pipeline rank of the critical device */
  dnn_breakdown breakdown; /* of the critical device */
  dnn_comm_algo algo;      /* allreduce algorithm used */
  uint64_t events;         /* DES events (0 for the analytic engine) */
} dnn__engine_result;

/* The closed forms (docs/models.md §6, §8). Does not allocate. */
dnn_status dnn__analytic_run(const dnn__stage_model *sm,
                             dnn__engine_result *out, dnn_error *err);

/* An upper bound on the tasks of the stage model's graph (SIZE_MAX when
 * it overflows). */
size_t dnn__des_task_estimate(const dnn__stage_model *sm);

/* The event simulator on a stage model (taskgraph.c): builds the task
 * graph, runs it and frees it. With jitter it runs `draws` iterations,
 * re-timed with each device's next speed factor, and averages them
 * (Monte Carlo, docs/models.md §19). */
dnn_status dnn__des_run(const dnn__stage_model *sm, dnn__engine_result *out,
                        dnn_error *err);
dnn_status dnn__des_run_mc(const dnn__stage_model *sm, size_t draws,
                           dnn__engine_result *out, dnn_error *err);

/* Fills a prediction from a stage model and an engine's result. */
void dnn__strat_assemble(const dnn__stage_model *sm,
                         const dnn__engine_result *r, dnn_prediction *out);

/* ------------------------------------------------------------------------ */
/* Strategy descriptors and their registry                                   */
/* ------------------------------------------------------------------------ */

/*
 * A parallel strategy: each lives in its own file with static functions
 * and exports one const descriptor; the registry in strat.c maps a
 * scenario to the first descriptor whose `matches` accepts it. Adding a
 * strategy is one file and one table line.
 */
typedef struct dnn__strat_type {
  const char *name;    /* "data", "pipeline", "tensor", ... */
  const char *summary; /* one line, for docs */
  bool (*matches)(const dnn_scenario *scn);
  /* Builds the stage model of the scenario (or fails cleanly), its
   * collectives priced by `cp` (may be NULL). `first` is a partition to
   * keep (V first layers, when re-timing) or NULL. */
  dnn_status (*build)(const dnn_strat_input *in, const dnn_comm_profile *cp,
                      const size_t *first, dnn__stage_model *sm,
                      dnn_error *err);
} dnn__strat_type;

extern const dnn__strat_type *const dnn__strat_data;
extern const dnn__strat_type *const dnn__strat_pipeline;
extern const dnn__strat_type *const dnn__strat_tensor;

/* The descriptor for the scenario (never NULL: data matches last). */
const dnn__strat_type *dnn__strat_find(const dnn_scenario *scn);

/* Whether engine AUTO picks the event simulator for the scenario. */
bool dnn__strat_wants_des(const dnn_scenario *scn);

/*
 * Micro-batched convolutions (µ-cuDNN; microbatch_plan.c, docs/models.md
 * §10), for the predictor to call when scn->training.micro_batching is not
 * none. Fills `out` (dnn_net_layer_count entries, caller-owned) exactly as
 * dnn_strat_layer_times does, then replaces every convolution layer's
 * per-pass time by its planned configuration's (the sum over its micro-
 * batches, each with its launch overhead), its algo[] by the algorithm
 * that computes most of its samples, and its workspace_bytes by the
 * largest chosen workspace over its passes. Solver, policy and limits come
 * from [training] micro_batching, mb_policy, workspace_MB (ilp: network-
 * wide; 0 = conv layers x per-layer) and [hardware] workspace_MB (per
 * layer). Under ilp every (layer, pass) holds its own buffer, so the
 * memory model should count the sum of the chosen workspaces (see
 * dnn_mb_summary) rather than the largest. With micro_batching = none it
 * only calls dnn_strat_layer_times. Allocates (the plan runs a DP per
 * kernel and, for ilp, GLPK): call it once per scenario, not in a sweep's
 * inner loop. Errors as dnn_mb_plan_build.
 */
dnn_status dnn__mb_layer_times(const dnn_strat_input *in, size_t batch,
                               dnn_layer_time *out, dnn_error *err);
/* The same, and in `ws_sum` (dnn_net_layer_count entries, may be NULL)
 * each layer's chosen workspaces summed over its passes. */
dnn_status dnn__mb_layer_times_ex(const dnn_strat_input *in, size_t batch,
                                  dnn_layer_time *out, double *ws_sum,
                                  dnn_error *err);

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_PARALLELISM_INTERNAL_H */
