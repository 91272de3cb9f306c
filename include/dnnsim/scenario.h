/*
 * dnnsim scenario: what to predict, read from an INI file.
 *
 * Every key is defined once in the key table (scenarios/keys.c): section,
 * name, type, range, default, target field and help. Parsing, validation,
 * `--set` overrides, `dnnsim keys`, the CLI help and docs/scenario.md all
 * come from that table. Unknown sections and keys are errors naming the
 * file and line and suggesting the nearest valid name.
 *
 * Units are in the key names at the INI edge (bucket_MB, inter_bandwidth_
 * GBps) and converted to SI where the value is used.
 */
#ifndef DNNSIM_SCENARIO_H
#define DNNSIM_SCENARIO_H

#include "dnnsim/core.h"
#include "dnnsim/hw.h"
#include "dnnsim/model.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DNN_SCN_PATH_MAX 1024
#define DNN_SCN_NAME_MAX 64
#define DNN_SCN_TEXT_MAX 256
#define DNN_SCN_MAX_KEYS 128
#define DNN_SCN_MAX_SIZES 16

/* ------------------------------------------------------------------------ */
/* Enumerated choices (names in the key table, in this order)               */
/* ------------------------------------------------------------------------ */

typedef enum dnn_optimizer {
  DNN_OPTIMIZER_SGD,
  DNN_OPTIMIZER_MOMENTUM,
  DNN_OPTIMIZER_ADAM
} dnn_optimizer;

typedef enum dnn_schedule {
  DNN_SCHEDULE_GPIPE,
  DNN_SCHEDULE_1F1B,
  DNN_SCHEDULE_INTERLEAVED
} dnn_schedule;

typedef enum dnn_recompute {
  DNN_RECOMPUTE_NONE,
  DNN_RECOMPUTE_FULL,
  DNN_RECOMPUTE_SELECTIVE
} dnn_recompute;

typedef enum dnn_grad_accumulation {
  DNN_GRAD_ACCUMULATION_SEPARATE, /* an add pass per micro-batch (PyTorch) */
  DNN_GRAD_ACCUMULATION_FUSED     /* into the weight-gradient GEMM (Megatron) */
} dnn_grad_accumulation;

typedef enum dnn_microbatching {
  DNN_MICROBATCHING_NONE,
  DNN_MICROBATCHING_DP,
  DNN_MICROBATCHING_ILP
} dnn_microbatching;

typedef enum dnn_mb_policy {
  DNN_MB_POLICY_UNDIVIDED,
  DNN_MB_POLICY_POWER_OF_TWO,
  DNN_MB_POLICY_ALL
} dnn_mb_policy;

typedef enum dnn_size_policy {
  DNN_SIZE_POLICY_BATCH, /* batch x size^2 held constant (Mix&Match B+) */
  DNN_SIZE_POLICY_COPIES /* copies x size^2 held constant (D+) */
} dnn_size_policy;

typedef enum dnn_consistency {
  DNN_CONSISTENCY_SYNC,
  DNN_CONSISTENCY_SSP,
  DNN_CONSISTENCY_ASYNC
} dnn_consistency;

typedef enum dnn_compression {
  DNN_COMPRESSION_NONE,
  DNN_COMPRESSION_FP16,
  DNN_COMPRESSION_TOPK,
  DNN_COMPRESSION_ONEBIT
} dnn_compression;

/* How a tensor-parallel group splits layers without a Megatron role
 * (CNNs): chosen per layer, or one split for all (docs/models.md §13). */
typedef enum dnn_tensor_split {
  DNN_TENSOR_SPLIT_AUTO,    /* the cheapest per layer */
  DNN_TENSOR_SPLIT_CHANNEL, /* output channels (filters) */
  DNN_TENSOR_SPLIT_SPATIAL, /* rows of the image, with halo exchange */
  DNN_TENSOR_SPLIT_BATCH    /* samples */
} dnn_tensor_split;

typedef enum dnn_engine {
  DNN_ENGINE_AUTO,     /* DES when the scenario overlaps or pipelines */
  DNN_ENGINE_ANALYTIC, /* closed forms */
  DNN_ENGINE_DES       /* discrete-event simulation */
} dnn_engine;

/* ------------------------------------------------------------------------ */
/* The scenario                                                              */
/* ------------------------------------------------------------------------ */

/* One (size, probability) entry of mixed-size training. */
typedef struct dnn_size_prob {
  size_t size;        /* image side, pixels */
  double probability; /* sums to 1 over the list */
} dnn_size_prob;

/*
 * A parsed scenario. Plain data: every field is set by the key table and
 * can be changed freely before dnn_scn_validate. Paths are already
 * resolved relative to the scenario file's directory.
 */
typedef struct dnn_scenario {
  char path[DNN_SCN_PATH_MAX]; /* the file it came from ("" if none) */
  char dir[DNN_SCN_PATH_MAX];  /* its directory, for relative paths */

  struct {
    char name[DNN_SCN_NAME_MAX]; /* zoo network, or "" with file */
    char file[DNN_SCN_PATH_MAX]; /* network INI file */
    size_t batch;                /* global batch, samples */
    size_t image;                /* image side, pixels */
    dnn_dtype dtype;
    size_t classes;
    /* Sequence models and transformers (zoo parameters). */
    size_t layers, hidden, heads, seq, vocab, ffn_hidden, embed_dim;
  } model;

  struct {
    char profile[DNN_SCN_PATH_MAX]; /* built-in name or profile file */
    double workspace_MB;            /* per-layer convolution workspace */
  } hardware;

  struct {
    size_t nodes;
    size_t devices_per_node;
    char intra_link[DNN_SCN_NAME_MAX];
    char inter_link[DNN_SCN_NAME_MAX];
    size_t nics_per_node;
    double intra_latency_us; /* 0: from intra_link */
    double intra_bandwidth_GBps;
    double inter_latency_us;
    double inter_bandwidth_GBps;
    char comm_profile[DNN_SCN_PATH_MAX]; /* calibrated collective fits */
  } cluster;

  struct {
    size_t data, tensor, pipeline;
    size_t microbatches;
    dnn_schedule schedule;
    size_t virtual_stages;
    char partition[DNN_SCN_TEXT_MAX]; /* "balanced" or "n1,n2,..." */
    int allreduce;                    /* dnn_comm_algo */
    bool overlap;
    double bucket_MB;
    bool sequence_parallel;
    size_t ps_servers;
    int tensor_split; /* dnn_tensor_split */
  } parallelism;

  struct {
    dnn_optimizer optimizer;
    dnn_recompute recompute;
    dnn_grad_accumulation grad_accumulation;
    size_t zero; /* ZeRO stage 0..3 */
    dnn_microbatching micro_batching;
    dnn_mb_policy mb_policy;
    double workspace_MB; /* network-wide limit for micro_batching = ilp */
    char sizes_text[DNN_SCN_TEXT_MAX];
    dnn_size_prob sizes[DNN_SCN_MAX_SIZES];
    size_t n_sizes;
    dnn_size_policy size_policy;
    size_t augment_copies;
    size_t steps;
    double epochs;
    size_t dataset_size;
    dnn_consistency consistency;
    size_t staleness;
    double jitter;
    char compression_text[DNN_SCN_NAME_MAX];
    dnn_compression compression;
    double compression_density; /* top-k fraction kept */
    uint64_t seed;
  } training;

  dnn_engine engine;
  size_t mc_draws; /* Monte Carlo iterations of a jittered simulation */

  /* Where each key's value came from, by key table index:
   * line > 0 in `path`, 0 = default, -1 = a --set override. */
  int key_line[DNN_SCN_MAX_KEYS];
} dnn_scenario;

/* ------------------------------------------------------------------------ */
/* The key table                                                             */
/* ------------------------------------------------------------------------ */

typedef enum dnn_scn_type {
  DNN_SCN_INT,    /* size_t in [min, max] */
  DNN_SCN_FLOAT,  /* double in [min, max] */
  DNN_SCN_BOOL,   /* true/false, yes/no, on/off, 1/0 */
  DNN_SCN_ENUM,   /* one of `choices`; stored as int (index) */
  DNN_SCN_STRING, /* char[size] */
  DNN_SCN_PATH,   /* char[size], resolved relative to the scenario */
  DNN_SCN_CUSTOM  /* text in char[size], parsed by `parse` */
} dnn_scn_type;

typedef struct dnn_scn_key dnn_scn_key;

/* Parses a custom key's text into the scenario (e.g. `sizes`). */
typedef dnn_status (*dnn_scn_parse_fn)(const dnn_scn_key *key, const char *text,
                                       dnn_scenario *scn, dnn_error *err);

struct dnn_scn_key {
  const char *section;
  const char *name;
  dnn_scn_type type;
  size_t offset;              /* of the field in dnn_scenario */
  size_t size;                /* of the field, bytes */
  double min, max;            /* INT and FLOAT ranges, inclusive */
  const char *def;            /* default, as INI text */
  const char *const *choices; /* ENUM names, NULL-terminated */
  const char *unit;           /* "samples", "MB", ... or NULL */
  const char *help;           /* one sentence */
  dnn_scn_parse_fn parse;     /* CUSTOM only */
};

/* The key table, `*count` entries (static storage). */
const dnn_scn_key *dnn_scn_keys(size_t *count);

/* The key `section.name`, or NULL. */
const dnn_scn_key *dnn_scn_key_find(const char *section, const char *name);

/* ------------------------------------------------------------------------ */
/* Loading and editing                                                       */
/* ------------------------------------------------------------------------ */

/* Sets every key to its default. */
void dnn_scn_init(dnn_scenario *scn);

/*
 * Loads a scenario file over the defaults. Errors are "FILE:LINE: [section]
 * key: message" (DNN_EPARSE for syntax and unknown names, DNN_ERANGE for
 * values out of range, DNN_EINVAL for bad values, DNN_EIO).
 */
dnn_status dnn_scn_load(const char *path, dnn_scenario *scn, dnn_error *err);

/* The same from text; `name` stands for the file in messages and `dir`
 * resolves relative paths (NULL: the current directory). */
dnn_status dnn_scn_load_string(const char *text, const char *name,
                               const char *dir, dnn_scenario *scn,
                               dnn_error *err);

/*
 * Applies an override "section.key=value" (from --set). Errors name the
 * override: "--set section.key=value: ...".
 */
dnn_status dnn_scn_set(dnn_scenario *scn, const char *assignment,
                       dnn_error *err);

/* Sets one key from text, as if read at `line` of the scenario file
 * (line -1 for an override). */
dnn_status dnn_scn_set_value(dnn_scenario *scn, const char *section,
                             const char *key, const char *value, int line,
                             dnn_error *err);

/* The value of a key as INI text. DNN_ENOTFOUND for an unknown key. */
dnn_status dnn_scn_get_value(const dnn_scenario *scn, const char *section,
                             const char *key, char *buf, size_t n);

/*
 * Writes the scenario as INI text: every key whose value differs from its
 * default, or every key when `all` is true. Loading the text back gives an
 * equal scenario (the round trip the tests check). DNN_ERANGE, before
 * anything is written, when a line would be too long to load back
 * (a path over about 190 characters); DNN_EIO; DNN_ENOMEM.
 */
dnn_status dnn_scn_write(const dnn_scenario *scn, FILE *fp, bool all,
                         dnn_error *err);

/*
 * Checks what single keys cannot: data x tensor x pipeline equals the
 * device count, the batch divides evenly, micro-batches cover the batch,
 * probabilities sum to 1, ... The message names the file, line and key of
 * the value to change. DNN_EINVAL; DNN_ERANGE for a field set directly
 * outside its key's range, or a nonzero bandwidth override below 1e-6 GB/s.
 */
dnn_status dnn_scn_validate(const dnn_scenario *scn, dnn_error *err);

/* Devices of the cluster: nodes x devices_per_node. */
size_t dnn_scn_devices(const dnn_scenario *scn);

/* The data-parallel degree: [parallelism] data, or when it is 0,
 * devices / (tensor x pipeline) (0 when that does not divide). */
size_t dnn_scn_data_degree(const dnn_scenario *scn);

/* "FILE:LINE: [section] key" for messages about a key's value, in `buf`. */
const char *dnn_scn_key_origin(const dnn_scenario *scn, const char *section,
                               const char *key, char *buf, size_t n);

/* ------------------------------------------------------------------------ */
/* Resolution: from names to objects                                         */
/* ------------------------------------------------------------------------ */

/*
 * Builds the scenario's network (zoo name or network file) at input size
 * `image` (0: the scenario's model.image; a network file keeps its own
 * input shape unless `image` or the scenario's [model] image is given
 * explicitly). Owned by the caller. DNN_EINVAL
 * for a network file with nothing to compute (only inputs and views).
 */
dnn_status dnn_scn_build_net(const dnn_scenario *scn, size_t image,
                             dnn_net **out, dnn_error *err);

/* Loads the scenario's hardware profile. Owned by the caller. DNN_EINVAL
 * when the profile has no peak for [model] dtype. */
dnn_status dnn_scn_load_hw(const dnn_scenario *scn, dnn_hw **out,
                           dnn_error *err);

/* Fills the cluster from the scenario's [cluster] keys and built-in links. */
dnn_status dnn_scn_cluster(const dnn_scenario *scn, dnn_cluster *out,
                           dnn_error *err);

/*
 * Loads a network INI file (docs/networks.md): one [layer.NAME] section per
 * layer, `type =`, its hyper-parameters and `input =` naming producers in
 * any order. `image` > 0 overrides the input layer's spatial size.
 * Errors name the file, line, section and key; cycles and unknown inputs
 * are DNN_EINVAL.
 */
dnn_status dnn_scn_load_net(const char *path, size_t image, dnn_net **out,
                            dnn_error *err);

/* The same from text (for tests and fuzzing). */
dnn_status dnn_scn_load_net_string(const char *text, const char *name,
                                   size_t image, dnn_net **out, dnn_error *err);

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_SCENARIO_H */
