/*
 * dnnsim model: the network IR. A network is a DAG of layers built in
 * topological order; each layer's per-sample output shape is inferred when
 * it is added. Costs (FLOPs, bytes, work/depth, activation memory,
 * convolution algorithms) are computed on demand for any batch size, so a
 * network is built once per input size and re-costed for every batch, data-
 * parallel degree or micro-batch a sweep asks for.
 *
 * Sources: per-operator work and depth follow the survey's operator table
 * (Ben-Nun & Hoefler, arXiv 1802.09941, §5; ../shared/REFERENCE.md §1.2);
 * convolution algorithms follow REFERENCE.md §1.3. docs/models.md derives
 * every formula.
 *
 * Shapes are per sample (the batch dimension is never stored):
 *   image          (C, H, W)   rank 3
 *   token sequence (T)         rank 1, kind DNN_SHAPE_TOKENS
 *   feature vector (F)         rank 1
 *   sequence       (T, F)      rank 2
 * An fc layer acts on the last dimension; on an image it flattens first.
 */
#ifndef DNNSIM_MODEL_H
#define DNNSIM_MODEL_H

#include "dnnsim/core.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Enumerations                                                              */
/* ------------------------------------------------------------------------ */

/* Element types. tf32 is stored in 4 bytes but multiplied at tf32 rate. */
#define DNN_DTYPE_LIST(X)                                                      \
  X(FP32, "fp32", 4)                                                           \
  X(TF32, "tf32", 4)                                                           \
  X(FP16, "fp16", 2)                                                           \
  X(BF16, "bf16", 2)

typedef enum dnn_dtype {
#define DNN_DTYPE_ENUM_(id, name, bytes) DNN_DTYPE_##id,
  DNN_DTYPE_LIST(DNN_DTYPE_ENUM_)
#undef DNN_DTYPE_ENUM_
      DNN_DTYPE_COUNT
} dnn_dtype;

/* The three passes of training. */
typedef enum dnn_pass {
  DNN_PASS_FWD,         /* forward */
  DNN_PASS_BWD_DATA,    /* gradient with respect to the layer's input */
  DNN_PASS_BWD_WEIGHTS, /* gradient with respect to the layer's weights */
  DNN_PASS_COUNT
} dnn_pass;

/*
 * Layer kinds: identifier, the name used in network INI files (`type =`)
 * and the operation class whose efficiency the hardware profile gives.
 */
#define DNN_LAYER_KIND_LIST(X)                                                 \
  X(INPUT, "input", COPY)                                                      \
  X(CONV2D, "conv2d", CONV)                                                    \
  X(MAXPOOL, "maxpool", POOL)                                                  \
  X(AVGPOOL, "avgpool", POOL)                                                  \
  X(ADAPTIVE_AVGPOOL, "adaptive_avgpool", POOL)                                \
  X(GLOBAL_AVGPOOL, "global_avgpool", POOL)                                    \
  X(FC, "fc", GEMM)                                                            \
  X(BATCHNORM, "batchnorm", NORM)                                              \
  X(LAYERNORM, "layernorm", NORM)                                              \
  X(ACTIVATION, "activation", ELTWISE)                                         \
  X(ADD, "add", ELTWISE)                                                       \
  X(CONCAT, "concat", COPY)                                                    \
  X(DROPOUT, "dropout", ELTWISE)                                               \
  X(FLATTEN, "flatten", COPY)                                                  \
  X(SOFTMAX, "softmax", SOFTMAX)                                               \
  X(SOFTMAX_XENT, "softmax_xent", SOFTMAX)                                     \
  X(EMBEDDING, "embedding", EMBED)                                             \
  X(LSTM, "lstm", RNN)                                                         \
  X(ATTN_SCORES, "attn_scores", GEMM)                                          \
  X(ATTN_CONTEXT, "attn_context", GEMM)                                        \
  X(NCE_LOSS, "nce_loss", GEMM)                                                \
  X(SLICE, "slice", COPY)

typedef enum dnn_layer_kind {
#define DNN_LAYER_KIND_ENUM_(id, name, cls) DNN_LAYER_##id,
  DNN_LAYER_KIND_LIST(DNN_LAYER_KIND_ENUM_)
#undef DNN_LAYER_KIND_ENUM_
      DNN_LAYER_KIND_COUNT
} dnn_layer_kind;

/*
 * Operation classes: each has its own achievable compute and memory
 * efficiency in a hardware profile (key names in parentheses).
 */
#define DNN_OPCLASS_LIST(X)                                                    \
  X(CONV, "conv")                                                              \
  X(GEMM, "gemm")                                                              \
  X(RNN, "rnn")                                                                \
  X(ELTWISE, "eltwise")                                                        \
  X(NORM, "norm")                                                              \
  X(POOL, "pool")                                                              \
  X(SOFTMAX, "softmax")                                                        \
  X(EMBED, "embed")                                                            \
  X(COPY, "copy")                                                              \
  X(OPTIMIZER, "optimizer")

typedef enum dnn_opclass {
#define DNN_OPCLASS_ENUM_(id, name) DNN_OP_##id,
  DNN_OPCLASS_LIST(DNN_OPCLASS_ENUM_)
#undef DNN_OPCLASS_ENUM_
      DNN_OPCLASS_COUNT
} dnn_opclass;

/* Elementwise activation functions (`act =` in network INI files). */
#define DNN_ACT_LIST(X)                                                        \
  X(RELU, "relu")                                                              \
  X(GELU, "gelu")                                                              \
  X(TANH, "tanh")                                                              \
  X(SIGMOID, "sigmoid")

typedef enum dnn_act {
#define DNN_ACT_ENUM_(id, name) DNN_ACT_##id,
  DNN_ACT_LIST(DNN_ACT_ENUM_)
#undef DNN_ACT_ENUM_
      DNN_ACT_COUNT
} dnn_act;

/*
 * Tensor-parallel role of a layer: how a t-way tensor-parallel split
 * (Megatron-LM, Shoeybi et al. 2019; Narayanan et al. SC'21) divides it.
 * NONE: replicated on every rank (layer norms, residual adds, the dropouts
 * after a row-parallel fc; and every CNN layer, whose channel splits the
 * parallelism module decides). COLUMN: output features split t ways (QKV
 * and fc1, and the elementwise layers between a COLUMN and a ROW fc, whose
 * last dimension is already split, e.g. GELU). ROW: input features split,
 * partial outputs summed by an allreduce after the layer (attention output
 * projection, fc2, the vocabulary-parallel embedding). HEADS: attention
 * heads split (scores, softmax, attention dropout, context). docs/models.md
 * §11 lists the role of every transformer layer.
 */
#define DNN_TP_ROLE_LIST(X)                                                    \
  X(NONE, "none")                                                              \
  X(COLUMN, "column")                                                          \
  X(ROW, "row")                                                                \
  X(HEADS, "heads")

typedef enum dnn_tp_role {
#define DNN_TP_ROLE_ENUM_(id, name) DNN_TP_##id,
  DNN_TP_ROLE_LIST(DNN_TP_ROLE_ENUM_)
#undef DNN_TP_ROLE_ENUM_
      DNN_TP_ROLE_COUNT
} dnn_tp_role;

/*
 * Convolution algorithms, after cuDNN's forward algorithms (REFERENCE.md
 * §1.3): identifier, name, and whether it needs workspace.
 */
#define DNN_CONV_ALGO_LIST(X)                                                  \
  X(IMPLICIT_GEMM, "implicit_gemm")                                            \
  X(IMPLICIT_PRECOMP_GEMM, "implicit_precomp_gemm")                            \
  X(GEMM, "gemm")                                                              \
  X(DIRECT, "direct")                                                          \
  X(FFT, "fft")                                                                \
  X(FFT_TILING, "fft_tiling")                                                  \
  X(WINOGRAD, "winograd")                                                      \
  X(WINOGRAD_NONFUSED, "winograd_nonfused")

typedef enum dnn_conv_algo {
#define DNN_CONV_ALGO_ENUM_(id, name) DNN_CONV_##id,
  DNN_CONV_ALGO_LIST(DNN_CONV_ALGO_ENUM_)
#undef DNN_CONV_ALGO_ENUM_
      DNN_CONV_ALGO_COUNT
} dnn_conv_algo;

/* Names of the enumerations above ("fp32", "conv2d", "gemm", ...). */
const char *dnn_dtype_name(dnn_dtype t);
size_t dnn_dtype_bytes(dnn_dtype t);
const char *dnn_pass_name(dnn_pass p); /* "fwd", "bwd_data", "bwd_weights" */
const char *dnn_layer_kind_name(dnn_layer_kind k);
dnn_opclass dnn_layer_kind_opclass(dnn_layer_kind k);
const char *dnn_opclass_name(dnn_opclass c);
const char *dnn_act_name(dnn_act a);
const char *dnn_conv_algo_name(dnn_conv_algo a);
const char *dnn_tp_role_name(dnn_tp_role r); /* "none", "column", ... */

/*
 * Name -> value lookups. DNN_ENOTFOUND when the name is unknown (the error
 * message suggests the nearest valid name).
 */
dnn_status dnn_dtype_parse(const char *name, dnn_dtype *out, dnn_error *err);
dnn_status dnn_layer_kind_parse(const char *name, dnn_layer_kind *out,
                                dnn_error *err);
dnn_status dnn_act_parse(const char *name, dnn_act *out, dnn_error *err);
dnn_status dnn_conv_algo_parse(const char *name, dnn_conv_algo *out,
                               dnn_error *err);
dnn_status dnn_pass_parse(const char *name, dnn_pass *out, dnn_error *err);
dnn_status dnn_opclass_parse(const char *name, dnn_opclass *out,
                             dnn_error *err);
dnn_status dnn_tp_role_parse(const char *name, dnn_tp_role *out,
                             dnn_error *err);

/* ------------------------------------------------------------------------ */
/* Opaque types                                                              */
/* ------------------------------------------------------------------------ */

typedef struct dnn_net dnn_net;

/* ------------------------------------------------------------------------ */
/* Plain records                                                             */
/* ------------------------------------------------------------------------ */

#define DNN_SHAPE_MAX_RANK 3
#define DNN_LAYER_MAX_INPUTS 8

/* A per-sample tensor shape (the batch dimension is implicit). */
typedef struct dnn_shape {
  size_t rank;                    /* 1..DNN_SHAPE_MAX_RANK */
  size_t dim[DNN_SHAPE_MAX_RANK]; /* (C,H,W), (T,F), (F) or (T) */
  bool tokens;                    /* rank 1 of integer token ids */
} dnn_shape;

/* Number of elements per sample. */
size_t dnn_shape_elems(const dnn_shape *s);

/* Hyper-parameters of each kind (the union member is picked by kind). */
typedef struct dnn_conv_params {
  size_t out_channels;
  size_t kernel_h, kernel_w;
  size_t stride_h, stride_w;     /* >= 1 */
  size_t pad_h, pad_w;           /* symmetric zero padding */
  size_t dilation_h, dilation_w; /* >= 1 */
  size_t groups;                 /* >= 1, divides in and out channels */
  bool bias;
} dnn_conv_params;

typedef struct dnn_pool_params {
  size_t kernel_h, kernel_w;
  size_t stride_h, stride_w; /* 0: equal to the kernel (PyTorch's default) */
  size_t pad_h, pad_w;
  bool ceil_mode;
  size_t out_h, out_w; /* adaptive_avgpool only: the fixed output size */
} dnn_pool_params;

typedef struct dnn_fc_params {
  size_t out_features;
  bool bias;
  bool tied; /* weights shared with an earlier layer (an LM head tied to the
                token embedding): not counted here, but bwd_weights runs and
                adds into the shared gradient; the bias is its own */
} dnn_fc_params;

typedef struct dnn_act_params {
  dnn_act act;
} dnn_act_params;

typedef struct dnn_dropout_params {
  double p; /* drop probability, [0, 1) */
} dnn_dropout_params;

typedef struct dnn_embedding_params {
  size_t vocab; /* rows of the table */
  size_t dim;   /* columns (embedding width) */
  bool frozen;  /* not trained: the table counts in frozen_params, no
                   gradient, no optimizer state (NCC's inst2vec lookup) */
} dnn_embedding_params;

typedef struct dnn_lstm_params {
  size_t hidden;         /* units */
  bool return_sequences; /* output (T, hidden) rather than (hidden) */
} dnn_lstm_params;

typedef struct dnn_concat_params {
  size_t axis; /* per-sample axis; 0 = channels for images */
} dnn_concat_params;

/*
 * Attention batched matmuls (attn_scores, attn_context). Per sample the
 * fused QKV tensor is (s, 3h) and the scores are stored as (heads * s, s):
 * rows are (head, query) pairs, the last dimension the keys, so softmax and
 * dropout act on it as on any sequence. Scores are full s x s even for a
 * causal model (Megatron-LM masks inside its fused softmax).
 */
typedef struct dnn_attn_params {
  size_t heads; /* attention heads a; divides the hidden size h */
} dnn_attn_params;

/* Noise-contrastive estimation loss (TensorFlow's nce_loss) over a
 * vocabulary: the true class and `negatives` classes sampled once per
 * batch, shared by all rows. */
typedef struct dnn_nce_params {
  size_t vocab;     /* classes (rows of the output weight table) */
  size_t negatives; /* sampled classes per batch, 1..vocab */
} dnn_nce_params;

/* Positions [start, start + length) of a sequence (T, F): BERT's [CLS]
 * token for the pooler or its gathered masked positions. */
typedef struct dnn_slice_params {
  size_t start;
  size_t length; /* >= 1 */
} dnn_slice_params;

/*
 * What a caller passes to dnn_net_add. `inputs` name producer layers that
 * already exist (so a network is always built in topological order).
 */
typedef struct dnn_layer_spec {
  const char *name; /* unique within the network */
  dnn_layer_kind kind;
  const char *inputs[DNN_LAYER_MAX_INPUTS];
  size_t n_inputs;
  dnn_shape input_shape; /* DNN_LAYER_INPUT only */
  union {
    dnn_conv_params conv;
    dnn_pool_params pool;
    dnn_fc_params fc;
    dnn_act_params act;
    dnn_dropout_params dropout;
    dnn_embedding_params embedding;
    dnn_lstm_params lstm;
    dnn_concat_params concat;
    dnn_attn_params attn;
    dnn_nce_params nce;
    dnn_slice_params slice;
  } p;
  dnn_tp_role tp; /* tensor-parallel role (default NONE) */
} dnn_layer_spec;

/* A built layer, read through dnn_net_layer (borrowed, read-only). */
typedef struct dnn_layer {
  const char *name;
  dnn_layer_kind kind;
  size_t index;                        /* position in the network */
  size_t n_inputs;                     /* producers */
  size_t inputs[DNN_LAYER_MAX_INPUTS]; /* producer layer indices */
  dnn_shape in;                        /* shape of inputs[0] */
  dnn_shape out;                       /* inferred output shape */
  size_t params;                       /* trainable parameters */
  size_t consumers;                    /* layers that read this output */
  bool needs_input_grad; /* some layer before it has parameters, so
                            bwd_data must run */
  union {
    dnn_conv_params conv;
    dnn_pool_params pool;
    dnn_fc_params fc;
    dnn_act_params act;
    dnn_dropout_params dropout;
    dnn_embedding_params embedding;
    dnn_lstm_params lstm;
    dnn_concat_params concat;
    dnn_attn_params attn;
    dnn_nce_params nce;
    dnn_slice_params slice;
  } p;
  size_t frozen_params; /* parameters held but not trained: batchnorm
                           running mean and variance, a frozen embedding */
  dnn_tp_role tp;       /* tensor-parallel role, from the spec */
} dnn_layer;

/*
 * Cost of one layer, one pass, for a given batch. Bytes count each tensor
 * read or written once (the ideal-cache minimum a roofline uses).
 */
typedef struct dnn_cost {
  double flops;         /* floating-point operations (2 per MAC) */
  double bytes_read;    /* bytes read from device memory */
  double bytes_written; /* bytes written to device memory */
  double work;          /* survey work W, in operations */
  double depth;         /* survey depth D, in operation levels */
} dnn_cost;

/* Cost and workspace of one convolution algorithm for one pass. */
typedef struct dnn_conv_algo_cost {
  bool applicable;        /* false: the algorithm cannot run this layer */
  double flops;           /* arithmetic the algorithm performs */
  double bytes_read;      /* including its workspace traffic */
  double bytes_written;   /* including its workspace traffic */
  double workspace_bytes; /* scratch memory it needs */
} dnn_conv_algo_cost;

/* Whole-network totals for a batch. */
typedef struct dnn_net_totals {
  size_t layers;
  size_t params;                     /* trainable parameters */
  double flops[DNN_PASS_COUNT];      /* per pass */
  double fwd_macs_conv_fc;           /* forward MACs of conv and fc */
  double activation_bytes;           /* kept for backward */
  double bytes[DNN_PASS_COUNT];      /* read + written, per pass */
  double max_layer_activation_bytes; /* largest single output */
  size_t frozen_params;              /* held, not trained (see dnn_layer) */
} dnn_net_totals;

/* ------------------------------------------------------------------------ */
/* Building                                                                  */
/* ------------------------------------------------------------------------ */

/* An empty network named `name`. DNN_ENOMEM on allocation failure. */
dnn_status dnn_net_alloc(const char *name, dnn_net **out, dnn_error *err);

/* Frees the network and everything it owns. NULL does nothing. */
void dnn_net_free(dnn_net *net);

/* A spec with every field at its default (stride 1, groups 1, bias on...). */
dnn_layer_spec dnn_layer_default_spec(dnn_layer_kind kind);

/*
 * Appends a layer, infers its output shape and counts its parameters.
 * Errors (with the layer name in the message): DNN_EINVAL for a duplicate
 * name, an unknown input, a wrong number of inputs or inconsistent shapes
 * (e.g. a kernel larger than its padded input, channels not divisible by
 * groups, concat/add shape mismatch, heads not dividing the hidden size, a
 * slice outside its sequence) or an unknown tensor-parallel role;
 * DNN_ENOMEM. On error the network is unchanged. `index` (may be NULL)
 * receives the new layer's index.
 */
dnn_status dnn_net_add(dnn_net *net, const dnn_layer_spec *spec, size_t *index,
                       dnn_error *err);

/* ------------------------------------------------------------------------ */
/* Queries                                                                   */
/* ------------------------------------------------------------------------ */

const char *dnn_net_name(const dnn_net *net);
size_t dnn_net_layer_count(const dnn_net *net);
/* Borrowed; valid until the network is freed. `i` < layer count. */
const dnn_layer *dnn_net_layer(const dnn_net *net, size_t i);
/* Index of the layer called `name`; DNN_ENOTFOUND when none. */
dnn_status dnn_net_find(const dnn_net *net, const char *name, size_t *index);

/*
 * The cost of layer `i` in `pass` for `batch` samples with elements of
 * `dtype`. Never fails; a pass a layer does not have (bwd_weights of a
 * pooling layer, bwd_data of a layer that needs no input gradient) costs
 * zero. For convolutions this is the direct algorithm; see
 * dnn_conv_algo_cost_get for the others. Does not allocate.
 */
void dnn_layer_cost(const dnn_net *net, size_t i, dnn_pass pass, size_t batch,
                    dnn_dtype dtype, dnn_cost *out);

/*
 * Cost and workspace of convolution layer `i` computed with `algo`.
 * out->applicable is false for a layer that is not a convolution and for an
 * algorithm that cannot run it (e.g. Winograd on a 5x5 or strided kernel).
 */
void dnn_conv_algo_cost_get(const dnn_net *net, size_t i, dnn_pass pass,
                            dnn_conv_algo algo, size_t batch, dnn_dtype dtype,
                            dnn_conv_algo_cost *out);

/*
 * Bytes layer `i` keeps alive from the forward to the backward pass, for
 * `batch` samples (its saved output and any mask or statistics it keeps).
 */
double dnn_layer_activation_bytes(const dnn_net *net, size_t i, size_t batch,
                                  dnn_dtype dtype);

/* Whole-network totals. Does not allocate. */
void dnn_net_totals_get(const dnn_net *net, size_t batch, dnn_dtype dtype,
                        dnn_net_totals *out);

/*
 * A stable text key of a layer's shape and hyper-parameters, the same for
 * equal layers of different networks ("conv2d:64x56x56:o64:k3x3:s1x1:..."),
 * used to match measured kernel tables. Writes at most `n` bytes.
 */
void dnn_layer_signature(const dnn_net *net, size_t i, char *buf, size_t n);

/*
 * Expected number of distinct rows among `draws` independent uniform draws
 * from a table of `vocab` rows: V (1 - (1 - 1/V)^n). The uniform draw
 * maximises the expectation over all row distributions (it is
 * Schur-concave), so for skewed real token frequencies it is an upper
 * bound. 0 for draws <= 0 or vocab == 0.
 */
double dnn_expected_distinct_rows(size_t vocab, double draws);

/*
 * Row-sparse weight gradient of layer `i` for a batch: the expected
 * distinct table rows the batch's gradient touches (uniform ids, see
 * dnn_expected_distinct_rows), and in *row_elems the elements per row.
 *   embedding: N*T draws, row = dim. When the network has a tied fc (an LM
 *              head of out_features == vocab reading width dim) the shared
 *              gradient is dense: all vocab rows.
 *   nce_loss:  the `negatives` sampled rows plus N*R uniform true labels,
 *              k + (V - k)(1 - (1 - 1/V)^(N R)); row = width + 1 (bias).
 * 0 rows and *row_elems 0 for every other kind and for a frozen embedding
 * (their gradients are dense or absent). A data-parallel strategy compares
 * allgather of rows * row_elems values with an allreduce of the table.
 */
double dnn_layer_grad_rows(const dnn_net *net, size_t i, size_t batch,
                           size_t *row_elems);

/* ------------------------------------------------------------------------ */
/* The built-in zoo                                                          */
/* ------------------------------------------------------------------------ */

/* Parameters of zoo networks; each builder reads the fields it needs. */
typedef struct dnn_zoo_params {
  size_t image;   /* input height = width, pixels (CNNs) */
  size_t classes; /* output classes */
  /* Sequence models (NCC / inst2vec, transformers): a zero field means
   * the entry's default (docs/models.md §11-§12); a non-zero one overrides
   * it, also for the named sizes (gpt-175b with layers = 2 has 2 layers).
   * ncc reads classes too, but takes 104 (POJ-104) while classes is left
   * at dnn_zoo_default_params()'s 1000. */
  size_t seq_len;
  size_t vocab;
  size_t embed_dim;
  size_t hidden;
  size_t layers;
  size_t heads;
  size_t ffn_hidden;
  size_t negatives; /* inst2vec: NCE negatives (0: the entry's default) */
} dnn_zoo_params;

/* Defaults: 224x224 images, 1000 classes, sequence fields zero (each
 * builder then uses its own documented defaults). */
dnn_zoo_params dnn_zoo_default_params(void);

/* Information on a zoo entry. */
typedef struct dnn_zoo_entry {
  const char *name;
  const char *description;
} dnn_zoo_entry;

/* The zoo entries, `*count` of them (static storage). */
const dnn_zoo_entry *dnn_zoo_list(size_t *count);

/*
 * Builds zoo network `name`. DNN_ENOTFOUND for an unknown name (with a
 * suggestion); DNN_EINVAL when the parameters make an invalid network
 * (e.g. an image too small for the network's pooling, attention heads that
 * do not divide the hidden size).
 */
dnn_status dnn_zoo_build(const char *name, const dnn_zoo_params *params,
                         dnn_net **out, dnn_error *err);

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_MODEL_H */
