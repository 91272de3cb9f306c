/*
 * dnnsim comm: cost models of collective communication under the
 * alpha-beta-gamma (Hockney) model, flat and hierarchical.
 *
 * A message of m bytes between two ranks costs alpha + beta*m; reducing m
 * bytes costs gamma*m. Every formula is derived in docs/models.md
 * ("Collectives") from the standard results (Thakur, Rabenseifner & Gropp
 * 2005; Chan et al. 2007; Sanders et al. 2009 for the double binary tree;
 * ../shared/REFERENCE.md §1.5) and tested against hand-computed values.
 *
 * On a multi-node cluster each algorithm step is charged to the link it
 * crosses: a step whose partner is on another node uses the inter-node link,
 * whose NIC bandwidth is shared by the node's ranks that cross at that step.
 *
 * All functions are pure and do not allocate.
 */
#ifndef DNNSIM_COMM_H
#define DNNSIM_COMM_H

#include "dnnsim/core.h"
#include "dnnsim/hw.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Collective operations. */
#define DNN_COMM_OP_LIST(X)                                                    \
  X(ALLREDUCE, "allreduce")                                                    \
  X(REDUCE_SCATTER, "reduce_scatter")                                          \
  X(ALLGATHER, "allgather")                                                    \
  X(BROADCAST, "broadcast")                                                    \
  X(REDUCE, "reduce")                                                          \
  X(ALLTOALL, "alltoall")                                                      \
  X(P2P, "p2p")

typedef enum dnn_comm_op {
#define DNN_COMM_OP_ENUM_(id, name) DNN_COMM_##id,
  DNN_COMM_OP_LIST(DNN_COMM_OP_ENUM_)
#undef DNN_COMM_OP_ENUM_
      DNN_COMM_OP_COUNT
} dnn_comm_op;

/*
 * Algorithms. Not every algorithm implements every operation
 * (dnn_comm_supports). AUTO picks the cheapest that does.
 */
#define DNN_COMM_ALGO_LIST(X)                                                  \
  X(AUTO, "auto")                                                              \
  X(RING, "ring")                                                              \
  X(RECURSIVE_DOUBLING, "recursive-doubling")                                  \
  X(RABENSEIFNER, "rabenseifner")                                              \
  X(BINOMIAL_TREE, "tree")                                                     \
  X(DOUBLE_BINARY_TREE, "double-binary-tree")                                  \
  X(PS, "ps")                                                                  \
  X(HIERARCHICAL, "hierarchical")                                              \
  X(DIRECT, "direct")

typedef enum dnn_comm_algo {
#define DNN_COMM_ALGO_ENUM_(id, name) DNN_COMM_ALGO_##id,
  DNN_COMM_ALGO_LIST(DNN_COMM_ALGO_ENUM_)
#undef DNN_COMM_ALGO_ENUM_
      DNN_COMM_ALGO_COUNT
} dnn_comm_algo;

const char *dnn_comm_op_name(dnn_comm_op op);
const char *dnn_comm_algo_name(dnn_comm_algo a);
dnn_status dnn_comm_op_parse(const char *name, dnn_comm_op *out,
                             dnn_error *err);
dnn_status dnn_comm_algo_parse(const char *name, dnn_comm_algo *out,
                               dnn_error *err);

/* alpha-beta-gamma parameters of one link. */
typedef struct dnn_comm_link {
  double alpha_s;          /* latency per message */
  double beta_s_per_byte;  /* inverse bandwidth */
  double gamma_s_per_byte; /* reduction compute per byte (0 to ignore) */
} dnn_comm_link;

/*
 * Where a collective runs: `ranks` ranks placed `ranks_per_node` to a node
 * (node-major: ranks 0..ranks_per_node-1 share node 0). With one node (or
 * ranks_per_node >= ranks) only `intra` is used.
 */
typedef struct dnn_comm_topo {
  size_t ranks;
  size_t ranks_per_node;
  dnn_comm_link intra;  /* between two ranks of a node */
  dnn_comm_link inter;  /* one NIC between nodes */
  size_t nics_per_node; /* >= 1 */
  size_t ps_servers;    /* parameter servers for DNN_COMM_ALGO_PS (>= 1) */
  /* Segment size of the pipelined (double binary) tree; 0 picks the
   * segment count that minimises time (docs/models.md). */
  double segment_bytes;
} dnn_comm_topo;

/* The result of a cost query. */
typedef struct dnn_comm_cost {
  double time_s;         /* end-to-end time of the collective */
  dnn_comm_algo algo;    /* the algorithm costed (AUTO resolved) */
  double latency_s;      /* the alpha part of time_s */
  double bytes_per_rank; /* bytes each rank sends (max over ranks) */
  size_t steps;          /* sequential message steps */
  /* DNN_COMM_ALGO_HIERARCHICAL only (AUTO for every other algorithm): the
   * algorithms chosen, each the cheapest, for its intra-node
   * reduce-scatter, its inter-node allreduce and its intra-node allgather. */
  dnn_comm_algo intra_rs_algo;
  dnn_comm_algo inter_algo;
  dnn_comm_algo intra_ag_algo;
} dnn_comm_cost;

/* A topology with one node of `ranks` ranks on `intra`, 1 NIC, 1 server. */
dnn_comm_topo dnn_comm_default_topo(size_t ranks, dnn_comm_link intra);

/* alpha-beta of a link (gamma 0). */
dnn_comm_link dnn_comm_link_from(const dnn_link *link);

/*
 * Builds the topology of `ranks` devices of `cluster` that sit
 * `stride` devices apart (stride 1: consecutive devices; a data-parallel
 * group across tensor groups has stride t). Ranks per node follow from
 * devices_per_node / stride. gamma is `gamma_s_per_byte` on both links.
 */
dnn_comm_topo dnn_comm_topo_from_cluster(const dnn_cluster *cluster,
                                         size_t ranks, size_t stride,
                                         double gamma_s_per_byte);

/* Whether `algo` implements `op`. AUTO supports every operation. */
bool dnn_comm_supports(dnn_comm_op op, dnn_comm_algo algo);

/*
 * Cost of collective `op` on `bytes` (the full vector: for allreduce,
 * reduce-scatter input, allgather output, broadcast/reduce/p2p message; for
 * all-to-all the bytes each rank holds) over `topo` with `algo`.
 * DNN_EINVAL for zero ranks, negative or non-finite bytes, an algorithm
 * that does not implement the operation, or a topology field out of range
 * (ranks_per_node, nics_per_node or ps_servers 0; a negative or non-finite
 * segment_bytes, or alpha, beta or gamma of the intra link, or of the inter
 * link when the ranks span more than one node). One rank or zero bytes
 * cost 0.
 */
dnn_status dnn_comm_time(dnn_comm_op op, dnn_comm_algo algo, double bytes,
                         const dnn_comm_topo *topo, dnn_comm_cost *out,
                         dnn_error *err);

/*
 * The time of collective `op` with `algo` on `ranks` ranks for a message
 * of `bytes` (as dnn_comm_time counts them) from a calibrated comm
 * profile (hw.h, docs/calibration.md): the fit's measured curve at an
 * exact communicator size; otherwise the curve of a neighbouring measured
 * size scaled by the ratio of this header's cost (with that fit's alpha,
 * beta and gamma on one node) at the wanted and the measured size,
 *   curve(P', m) T(P, m) / T(P', m),
 * interpolated geometrically in log P between the neighbours below and
 * above when both exist (dnn_hw_comm_profile_bracket). `exact` (may be
 * NULL) tells whether the communicator size was measured. DNN_ENOTFOUND
 * when the profile has no fit of (op, algo), or only fits without link
 * parameters (the MPI library's own choice, AUTO) at other sizes. Does
 * not allocate.
 */
dnn_status dnn_comm_profile_predict(const dnn_comm_profile *cp, dnn_comm_op op,
                                    dnn_comm_algo algo, size_t ranks,
                                    double bytes, double *time_s, bool *exact,
                                    dnn_error *err);

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_COMM_H */
