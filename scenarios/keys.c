/*
 * The scenario key table: the one definition of every scenario key (section,
 * name, type, range, default, target field, unit, help). Parsing, --set,
 * validation of single values, `dnnsim keys`, the CLI help and
 * docs/scenario.md are all generated from this table.
 *
 * Adding a key: a field in dnn_scenario (scenario.h) and one line here.
 */
#include "internal.h"

#include <stddef.h>
#include <string.h>

_Static_assert(sizeof(dnn_optimizer) == sizeof(int) &&
                   sizeof(dnn_schedule) == sizeof(int) &&
                   sizeof(dnn_engine) == sizeof(int),
               "enum fields are stored through int pointers");

#define F(field)                                                               \
  offsetof(dnn_scenario, field), sizeof(((dnn_scenario *)0)->field)

static const char *const dtype_names[] = {"fp32", "tf32", "fp16", "bf16", NULL};
static const char *const optimizer_names[] = {"sgd", "momentum", "adam", NULL};
static const char *const schedule_names[] = {"gpipe", "1f1b", "interleaved",
                                             NULL};
static const char *const recompute_names[] = {"none", "full", "selective",
                                              NULL};
static const char *const accumulation_names[] = {"separate", "fused", NULL};
static const char *const mb_names[] = {"none", "dp", "ilp", NULL};
static const char *const policy_names[] = {"undivided", "powerOfTwo", "all",
                                           NULL};
static const char *const size_policy_names[] = {"batch", "copies", NULL};
static const char *const consistency_names[] = {"sync", "ssp", "async", NULL};
static const char *const engine_names[] = {"auto", "analytic", "des", NULL};
static const char *const split_names[] = {"auto", "channel", "spatial", "batch",
                                          NULL};
/* Same order as DNN_COMM_ALGO_LIST in comm.h (checked by a test). */
static const char *const allreduce_names[] = {"auto",
                                              "ring",
                                              "recursive-doubling",
                                              "rabenseifner",
                                              "tree",
                                              "double-binary-tree",
                                              "ps",
                                              "hierarchical",
                                              "direct",
                                              NULL};

#define KEY(sec, name, type, field, min, max, def, choices, unit, help)        \
  { sec, name, type, F(field), min, max, def, choices, unit, help, NULL }
#define CUSTOM(sec, name, field, def, fn, help)                                \
  { sec, name, DNN_SCN_CUSTOM, F(field), 0, 0, def, NULL, NULL, help, fn }

static const dnn_scn_key keys[] = {
    /* [model] */
    KEY("model", "name", DNN_SCN_STRING, model.name, 0, 0, "", NULL, NULL,
        "Zoo network (`dnnsim models` lists them); or use file."),
    KEY("model", "file", DNN_SCN_PATH, model.file, 0, 0, "", NULL, NULL,
        "Network INI file (docs/networks.md), relative to the scenario."),
    KEY("model", "batch", DNN_SCN_INT, model.batch, 1, 1e12, "256", NULL,
        "samples", "Global mini-batch per iteration, over all replicas."),
    KEY("model", "image", DNN_SCN_INT, model.image, 8, 16384, "224", NULL,
        "pixels", "Input image height and width."),
    KEY("model", "dtype", DNN_SCN_ENUM, model.dtype, 0, 0, "fp32", dtype_names,
        NULL, "Training data type of weights and activations."),
    KEY("model", "classes", DNN_SCN_INT, model.classes, 0, 1e9, "0", NULL, NULL,
        "Output classes (0: the zoo entry's default, 1000 for ImageNet)."),
    KEY("model", "layers", DNN_SCN_INT, model.layers, 0, 1e6, "0", NULL, NULL,
        "Transformer or LSTM layers (0: the zoo entry's default)."),
    KEY("model", "hidden", DNN_SCN_INT, model.hidden, 0, 1e9, "0", NULL, NULL,
        "Hidden size (0: the zoo entry's default)."),
    KEY("model", "heads", DNN_SCN_INT, model.heads, 0, 1e6, "0", NULL, NULL,
        "Attention heads (0: the zoo entry's default)."),
    KEY("model", "seq", DNN_SCN_INT, model.seq, 0, 1e9, "0", NULL, "tokens",
        "Sequence length (0: the zoo entry's default)."),
    KEY("model", "vocab", DNN_SCN_INT, model.vocab, 0, 1e10, "0", NULL, NULL,
        "Vocabulary size (0: the zoo entry's default)."),
    KEY("model", "ffn_hidden", DNN_SCN_INT, model.ffn_hidden, 0, 1e9, "0", NULL,
        NULL, "Transformer MLP width (0: 4 x hidden)."),
    KEY("model", "embed_dim", DNN_SCN_INT, model.embed_dim, 0, 1e9, "0", NULL,
        NULL, "Embedding width (0: the zoo entry's default)."),

    /* [hardware] */
    KEY("hardware", "profile", DNN_SCN_PATH, hardware.profile, 0, 0, "", NULL,
        NULL,
        "Built-in profile name (`dnnsim profiles`) or a profile INI file "
        "(a value with '/' or ending in .ini is a path)."),
    KEY("hardware", "workspace_MB", DNN_SCN_FLOAT, hardware.workspace_MB, 0,
        1e9, "64", NULL, "MiB",
        "Per-layer convolution workspace limit (cuDNN-style)."),

    /* [cluster] */
    KEY("cluster", "nodes", DNN_SCN_INT, cluster.nodes, 1, 1048576, "1", NULL,
        NULL, "Nodes in the cluster."),
    KEY("cluster", "devices_per_node", DNN_SCN_INT, cluster.devices_per_node, 1,
        1024, "1", NULL, NULL, "Devices (GPUs) per node."),
    KEY("cluster", "intra_link", DNN_SCN_STRING, cluster.intra_link, 0, 0, "",
        NULL, NULL,
        "Built-in link between devices of a node (`dnnsim links`)."),
    KEY("cluster", "inter_link", DNN_SCN_STRING, cluster.inter_link, 0, 0, "",
        NULL, NULL, "Built-in link between nodes, per NIC."),
    KEY("cluster", "nics_per_node", DNN_SCN_INT, cluster.nics_per_node, 1, 1024,
        "1", NULL, NULL, "Network interfaces per node."),
    KEY("cluster", "intra_latency_us", DNN_SCN_FLOAT, cluster.intra_latency_us,
        0, 1e7, "0", NULL, "us",
        "Overrides the intra-node link latency (0: from intra_link)."),
    KEY("cluster", "intra_bandwidth_GBps", DNN_SCN_FLOAT,
        cluster.intra_bandwidth_GBps, 0, 1e6, "0", NULL, "GB/s",
        "Overrides the intra-node bandwidth per device and direction."),
    KEY("cluster", "inter_latency_us", DNN_SCN_FLOAT, cluster.inter_latency_us,
        0, 1e7, "0", NULL, "us",
        "Overrides the inter-node link latency (0: from inter_link)."),
    KEY("cluster", "inter_bandwidth_GBps", DNN_SCN_FLOAT,
        cluster.inter_bandwidth_GBps, 0, 1e6, "0", NULL, "GB/s",
        "Overrides the inter-node bandwidth per NIC and direction."),
    KEY("cluster", "comm_profile", DNN_SCN_PATH, cluster.comm_profile, 0, 0, "",
        NULL, NULL,
        "Calibrated collective fits (`dnnsim calibrate mpi`), optional."),

    /* [parallelism] */
    KEY("parallelism", "data", DNN_SCN_INT, parallelism.data, 0, 1048576, "0",
        NULL, "replicas",
        "Data-parallel degree (0: devices / (tensor x pipeline))."),
    KEY("parallelism", "tensor", DNN_SCN_INT, parallelism.tensor, 1, 1024, "1",
        NULL, NULL, "Tensor (model) parallel degree."),
    KEY("parallelism", "pipeline", DNN_SCN_INT, parallelism.pipeline, 1, 4096,
        "1", NULL, "stages", "Pipeline-parallel stages."),
    KEY("parallelism", "microbatches", DNN_SCN_INT, parallelism.microbatches, 1,
        1e6, "1", NULL, NULL,
        "Micro-batches per iteration and replica (pipelines)."),
    KEY("parallelism", "schedule", DNN_SCN_ENUM, parallelism.schedule, 0, 0,
        "1f1b", schedule_names, NULL, "Pipeline schedule."),
    KEY("parallelism", "virtual_stages", DNN_SCN_INT,
        parallelism.virtual_stages, 1, 1024, "1", NULL, NULL,
        "Model chunks per device (interleaved schedule)."),
    CUSTOM("parallelism", "partition", parallelism.partition, "balanced",
           dnn__scn_parse_partition,
           "Layers per stage: balanced, or a list of counts n1,n2,..."),
    KEY("parallelism", "allreduce", DNN_SCN_ENUM, parallelism.allreduce, 0, 0,
        "auto", allreduce_names, NULL,
        "Gradient allreduce algorithm (auto: the cheapest)."),
    KEY("parallelism", "overlap", DNN_SCN_BOOL, parallelism.overlap, 0, 0,
        "true", NULL, NULL,
        "Overlap the gradient allreduce with the backward pass."),
    KEY("parallelism", "bucket_MB", DNN_SCN_FLOAT, parallelism.bucket_MB, 0.001,
        1e6, "25", NULL, "MiB", "Gradient bucket size for overlap."),
    KEY("parallelism", "sequence_parallel", DNN_SCN_BOOL,
        parallelism.sequence_parallel, 0, 0, "false", NULL, NULL,
        "Megatron sequence parallelism in tensor-parallel groups."),
    KEY("parallelism", "ps_servers", DNN_SCN_INT, parallelism.ps_servers, 1,
        1048576, "1", NULL, NULL,
        "Parameter servers for allreduce = ps (gradient shards)."),
    KEY("parallelism", "tensor_split", DNN_SCN_ENUM, parallelism.tensor_split,
        0, 0, "auto", split_names, NULL,
        "How tensor groups split layers without a Megatron role (CNNs)."),

    /* [training] */
    KEY("training", "optimizer", DNN_SCN_ENUM, training.optimizer, 0, 0,
        "momentum", optimizer_names, NULL, "Optimizer (sets its state size)."),
    KEY("training", "recompute", DNN_SCN_ENUM, training.recompute, 0, 0, "none",
        recompute_names, NULL, "Activation recomputation policy."),
    KEY("training", "grad_accumulation", DNN_SCN_ENUM,
        training.grad_accumulation, 0, 0, "separate", accumulation_names, NULL,
        "Gradient accumulation over micro-batches: a separate add pass "
        "(separate) or fused into the weight-gradient GEMM (fused)."),
    KEY("training", "zero", DNN_SCN_INT, training.zero, 0, 3, "0", NULL, NULL,
        "ZeRO stage: 1 shards optimizer state, 2 also gradients, 3 also "
        "weights."),
    KEY("training", "micro_batching", DNN_SCN_ENUM, training.micro_batching, 0,
        0, "none", mb_names, NULL,
        "Micro-batched convolutions (µ-cuDNN): none, dp (per layer) or ilp."),
    KEY("training", "mb_policy", DNN_SCN_ENUM, training.mb_policy, 0, 0,
        "powerOfTwo", policy_names, NULL, "Micro-batch sizes considered."),
    KEY("training", "workspace_MB", DNN_SCN_FLOAT, training.workspace_MB, 0,
        1e9, "0", NULL, "MiB",
        "Network-wide workspace for micro_batching = ilp (0: layers x "
        "hardware.workspace_MB)."),
    CUSTOM("training", "sizes", training.sizes_text, "", dnn__scn_parse_sizes,
           "Mixed-size training: size:probability list, e.g. 128:0.3, "
           "224:0.7."),
    KEY("training", "size_policy", DNN_SCN_ENUM, training.size_policy, 0, 0,
        "batch", size_policy_names, NULL,
        "Hold batch x size^2 (batch) or copies x size^2 (copies) constant."),
    KEY("training", "augment_copies", DNN_SCN_INT, training.augment_copies, 1,
        1e4, "1", NULL, NULL, "Batch augmentation: copies of each sample."),
    KEY("training", "steps", DNN_SCN_INT, training.steps, 0, 1e12, "0", NULL,
        NULL, "Optimizer steps to report time for (0: none)."),
    KEY("training", "epochs", DNN_SCN_FLOAT, training.epochs, 0, 1e9, "0", NULL,
        NULL, "Epochs to report time for (0: none)."),
    KEY("training", "dataset_size", DNN_SCN_INT, training.dataset_size, 0, 1e15,
        "1281167", NULL, "samples",
        "Training samples per epoch (default: ImageNet-1k)."),
    KEY("training", "consistency", DNN_SCN_ENUM, training.consistency, 0, 0,
        "sync", consistency_names, NULL,
        "Synchronous, stale-synchronous or asynchronous updates."),
    KEY("training", "staleness", DNN_SCN_INT, training.staleness, 0, 1e6, "0",
        NULL, "steps", "Staleness bound s for consistency = ssp."),
    KEY("training", "jitter", DNN_SCN_FLOAT, training.jitter, 0, 10, "0", NULL,
        NULL, "Coefficient of variation of per-device compute time."),
    CUSTOM("training", "compression", training.compression_text, "none",
           dnn__scn_parse_compression,
           "Gradient compression: none, fp16, topk:DENSITY or 1bit."),
    KEY("training", "seed", DNN_SCN_INT, training.seed, 0,
        18446744073709551615.0, "1", NULL, NULL,
        "Seed of every random stream (Monte Carlo, jitter)."),

    /* [simulation] */
    KEY("simulation", "engine", DNN_SCN_ENUM, engine, 0, 0, "auto",
        engine_names, NULL,
        "Prediction engine: auto, analytic or des (event simulator)."),
    KEY("simulation", "draws", DNN_SCN_INT, mc_draws, 1, 65536, "16", NULL,
        "iterations",
        "Monte Carlo iterations the simulator averages when training.jitter "
        "> 0 (standard error about jitter / sqrt(draws))."),
};

_Static_assert(sizeof keys / sizeof keys[0] <= DNN_SCN_MAX_KEYS,
               "raise DNN_SCN_MAX_KEYS");

const dnn_scn_key *dnn_scn_keys(size_t *count) {
  *count = sizeof keys / sizeof keys[0];
  return keys;
}

const dnn_scn_key *dnn_scn_key_find(const char *section, const char *name) {
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (strcmp(keys[i].section, section) == 0 &&
        strcmp(keys[i].name, name) == 0)
      return &keys[i];
  return NULL;
}
