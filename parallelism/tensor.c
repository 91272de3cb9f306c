/*
 * Tensor, model and operator parallelism (docs/models.md §13): how a group
 * of t devices splits each layer, what each device computes, holds and
 * keeps, and which collectives the group runs; and the hybrid strategy
 * (d x t x p, docs/models.md §14) that builds a stage model from it.
 *
 * Two regimes, chosen per network:
 * - Megatron-LM (Shoeybi et al. 2019; Narayanan et al. SC'21), when the
 *   network's layers carry tensor-parallel roles (model.h dnn_tp_role):
 *   column, row and head layers compute 1/t of their work and hold 1/t of
 *   their weights; a row layer's partial outputs are allreduced after its
 *   forward (Megatron's g) and a column layer that reads a replicated
 *   tensor allreduces its input gradient in backward (Megatron's f): two
 *   allreduces of s b h elements per block and pass. With sequence
 *   parallelism (Korthikanti et al. 2022, §4.2.2) each allreduce becomes a
 *   reduce-scatter plus an allgather (g: reduce-scatter forward, allgather
 *   backward; f: allgather forward, reduce-scatter backward) and the
 *   replicated layers (layer norms, dropouts, adds) work on s/t tokens.
 *   Activation memory follows: the non-replicated layers keep 1/t
 *   (s b h (10 + 24/t + 5 a s/(h t)) per block), everything 1/t with
 *   sequence parallelism (docs/models.md §11.6).
 * - Operator parallelism for every other network (CNNs; REFERENCE §1.4,
 *   model parallelism; the hybrid recipe "per layer choose a scheme; cost =
 *   sum of compute, communication and redistribution"): each convolution
 *   and fc layer is split by output channels (filters: the input must be
 *   whole, an allgather; the input gradient is a partial sum, a
 *   reduce-scatter or allreduce; weights 1/t), by rows of the image
 *   (spatial domain: a halo of (K_h - 1)/2 rows exchanged with each
 *   neighbour in both passes; weights replicated, their gradients
 *   allreduced in the group once per iteration) or by samples. Channel-
 *   local layers (batch norm, activations, pooling, adds, concatenation)
 *   keep their input's layout; a change of layout between a tensor's
 *   producer and its consumer costs an allgather, a reduce-scatter or an
 *   all-to-all. `[parallelism] tensor_split` fixes the scheme or (auto)
 *   picks, layer by layer in topological order, the cheapest: a greedy
 *   choice that sees the layout it receives but not the layouts later
 *   layers would prefer.
 *
 * A split layer's time is the roofline of 1/t of its work (hw.h); a split
 * convolution tries every algorithm at 1/t of its full-batch time (at b/t
 * samples exactly for the batch split when t divides the micro-batch) and
 * keeps the fastest whose workspace (1/t of it for spatial and batch
 * splits, the whole lowered input for a channel split) fits under
 * [hardware] workspace_MB. Collectives run on the tensor group's link
 * (dnn_comm_topo_from_cluster with stride 1: consecutive devices, inside a
 * node whenever t divides devices_per_node) with the cheapest algorithm,
 * and block the compute stream (they are on the critical path).
 *
 * Invariant: dnn__tp_plan never allocates; with t = 1 it gives exactly
 * dnn_hw_layer_time's times, algorithms and workspaces and no
 * communication.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

#define MIB (1024.0 * 1024.0)

/* ---- Context ------------------------------------------------------------- */

/* Layouts of a tensor over the group (operator parallelism). */
typedef enum layout {
  LAY_ANY, /* the input data: any slice costs nothing */
  LAY_R,   /* replicated */
  LAY_C,   /* split by channels (features) */
  LAY_S,   /* split by rows of the image */
  LAY_B    /* split by samples */
} layout;

typedef struct ctx {
  const dnn_strat_input *in;
  const dnn_net *net;
  const dnn_hw *hw;
  dnn_dtype dt;
  size_t mbs, t;
  bool sp;
  int policy; /* dnn_tensor_split */
  double ws_limit;
  double launch_s;
  dnn_comm_topo topo;
  const dnn_comm_profile *cp; /* calibrated collectives, or NULL */
  bool mega;                  /* the network has Megatron roles */
} ctx;

const char *dnn_split_name(dnn_split s) {
  static const char *const names[] = {
#define DNN_SPLIT_NAME_(id, name) name,
      DNN_SPLIT_LIST(DNN_SPLIT_NAME_)
#undef DNN_SPLIT_NAME_
  };
  return (unsigned)s < DNN_SPLIT_COUNT ? names[s] : "?";
}

bool dnn__net_has_tp_roles(const dnn_net *net) {
  size_t L = dnn_net_layer_count(net);
  for (size_t i = 0; i < L; i++)
    if (dnn_net_layer(net, i)->tp != DNN_TP_NONE)
      return true;
  return false;
}

dnn_comm_topo dnn__tp_topo(const dnn_strat_input *in, size_t t) {
  dnn_comm_topo topo;
  dnn__strat_comm_setup(in, t, 1, &topo);
  return topo;
}

static void ctx_init(ctx *c, const dnn_strat_input *in, size_t mbs, size_t t) {
  memset(c, 0, sizeof *c);
  c->in = in;
  c->net = in->net;
  c->hw = in->hw;
  c->dt = in->scn->model.dtype;
  c->mbs = mbs;
  c->t = t;
  c->sp = in->scn->parallelism.sequence_parallel;
  c->policy = in->scn->parallelism.tensor_split;
  c->ws_limit = in->scn->hardware.workspace_MB * MIB;
  c->launch_s = dnn_hw_get(in->hw)->launch_overhead_s;
  if (t > 1) {
    c->topo = dnn__tp_topo(in, t);
    c->mega = dnn__net_has_tp_roles(in->net);
  }
}

/* Seconds of a collective over the tensor group (0 for nothing to move).
 * `bytes` is the full tensor (comm.h). */
static double coll(const ctx *c, dnn_comm_op op, double bytes) {
  if (c->t <= 1 || !(bytes > 0))
    return 0;
  dnn_comm_cost cc;
  if (dnn__cache_comm_time(NULL, c->cp, op, DNN_COMM_ALGO_AUTO, bytes, &c->topo,
                           &cc, NULL))
    return INFINITY; /* no usable link: a scenario error caught earlier */
  return cc.time_s;
}

/* Bytes of layer j's whole output for a micro-batch (token ids as 4-byte
 * integers, as the pipeline transfers count them). */
double dnn__layer_out_bytes(const dnn_net *net, size_t j, size_t batch,
                            dnn_dtype dt) {
  const dnn_layer *l = dnn_net_layer(net, j);
  double eb = l->out.tokens ? 4.0 : dnn__d(dnn_dtype_bytes(dt));
  return dnn__d(dnn_shape_elems(&l->out)) * eb * dnn__d(batch);
}

static double out_bytes(const ctx *c, size_t j) {
  return dnn__layer_out_bytes(c->net, j, c->mbs, c->dt);
}

static bool weighted(const dnn_layer *l) {
  return l->kind == DNN_LAYER_FC || l->kind == DNN_LAYER_EMBEDDING ||
         l->kind == DNN_LAYER_CONV2D || l->kind == DNN_LAYER_LSTM ||
         l->kind == DNN_LAYER_NCE_LOSS;
}

/* ---- Split compute times ------------------------------------------------- */

/* A convolution pass split t ways under `split`: the fastest algorithm
 * whose workspace share fits. */
static double conv_split(const ctx *c, size_t i, dnn_pass pass, dnn_split split,
                         dnn_conv_algo *algo, double *ws) {
  double best = INFINITY;
  *algo = DNN_CONV_ALGO_COUNT;
  *ws = 0;
  bool exact_batch = split == DNN_SPLIT_BATCH && c->mbs % c->t == 0;
  size_t batch = exact_batch ? c->mbs / c->t : c->mbs;
  for (size_t a = 0; a < DNN_CONV_ALGO_COUNT; a++) {
    double w = 0;
    double tf = dnn_hw_conv_time(c->hw, c->net, i, pass, (dnn_conv_algo)a,
                                 batch, c->dt, &w);
    if (!isfinite(tf))
      continue;
    double ts = tf;
    if (!exact_batch) {
      ts = c->launch_s + (tf - c->launch_s) / dnn__d(c->t);
      if (split != DNN_SPLIT_CHANNEL)
        w /= dnn__d(c->t);
    }
    if (w <= c->ws_limit && ts < best) {
      best = ts;
      *algo = (dnn_conv_algo)a;
      *ws = w;
    }
  }
  return best;
}

/* Compute times of layer i's share under `split` (`div` ways). */
static void split_times(const ctx *c, size_t i, dnn_split split, size_t div,
                        dnn_layer_time *lt) {
  const dnn_layer *l = dnn_net_layer(c->net, i);
  lt->workspace_bytes = 0;
  for (int p = 0; p < DNN_PASS_COUNT; p++) {
    double ws = 0;
    lt->algo[p] = DNN_CONV_ALGO_COUNT;
    if (div <= 1) {
      lt->time_s[p] = dnn_hw_layer_time(c->hw, c->net, i, (dnn_pass)p, c->mbs,
                                        c->dt, c->ws_limit, &lt->algo[p], &ws);
    } else {
      dnn_cost cost;
      dnn_layer_cost(c->net, i, (dnn_pass)p, c->mbs, c->dt, &cost);
      double bytes = cost.bytes_read + cost.bytes_written;
      if (!(cost.flops > 0) && !(bytes > 0))
        lt->time_s[p] = 0;
      else if (l->kind == DNN_LAYER_CONV2D)
        lt->time_s[p] = conv_split(c, i, (dnn_pass)p, split, &lt->algo[p], &ws);
      else
        lt->time_s[p] =
            dnn_hw_kernel_time(c->hw, dnn_layer_kind_opclass(l->kind), c->dt,
                               cost.flops / dnn__d(div), bytes / dnn__d(div));
    }
    lt->workspace_bytes = fmax(lt->workspace_bytes, ws);
  }
}

static void clear_comm(dnn_layer_time *lt) {
  for (int p = 0; p < DNN_PASS_COUNT; p++)
    lt->comm_s[p] = lt->comm_bytes[p] = 0;
  lt->group_grad_bytes = 0;
}

/* Adds a collective of `bytes` to a pass. */
static void add_comm(const ctx *c, dnn_layer_time *lt, dnn_pass p,
                     dnn_comm_op op, double bytes) {
  if (!(bytes > 0))
    return;
  lt->comm_s[p] += coll(c, op, bytes);
  lt->comm_bytes[p] += bytes;
}

/* Whether pass p of layer i runs (has any work). */
static bool runs(const ctx *c, size_t i, dnn_pass p) {
  dnn_cost cost;
  dnn_layer_cost(c->net, i, p, c->mbs, c->dt, &cost);
  return cost.flops > 0 || cost.bytes_read + cost.bytes_written > 0;
}

/* ---- Megatron roles ------------------------------------------------------ */

static dnn_split role_split(const ctx *c, const dnn_layer *l) {
  switch (l->tp) {
  case DNN_TP_COLUMN:
    return DNN_SPLIT_COLUMN;
  case DNN_TP_ROW:
    return DNN_SPLIT_ROW;
  case DNN_TP_HEADS:
    return DNN_SPLIT_HEADS;
  case DNN_TP_NONE:
  default:
    return c->sp && l->kind != DNN_LAYER_INPUT ? DNN_SPLIT_SEQUENCE
                                               : DNN_SPLIT_NONE;
  }
}

/* What a consumer needs of a producer's tensor. */
typedef enum need {
  NEED_R,         /* whole (replicated, or sequence-split with SP) */
  NEED_R_PARTIAL, /* whole, and its input gradient is a partial sum */
  NEED_S          /* hidden-split (Megatron's column layout) */
} need;

static need mega_need(const dnn_layer *l) {
  if (l->tp == DNN_TP_COLUMN && weighted(l))
    return NEED_R_PARTIAL;
  if (l->tp == DNN_TP_COLUMN || l->tp == DNN_TP_HEADS ||
      (l->tp == DNN_TP_ROW && l->kind != DNN_LAYER_EMBEDDING))
    return NEED_S;
  return NEED_R;
}

static void mega_layer(const ctx *c, size_t i, dnn_layer_time *lt) {
  const dnn_layer *l = dnn_net_layer(c->net, i);
  dnn_split split = role_split(c, l);
  split_times(c, i, split, split == DNN_SPLIT_NONE ? 1 : c->t, lt);
  lt->split = split;
  clear_comm(lt);
  need nd = mega_need(l);
  bool bwd_in = runs(c, i, DNN_PASS_BWD_DATA);
  for (size_t k = 0; k < l->n_inputs; k++) {
    size_t j = l->inputs[k];
    const dnn_layer *pj = dnn_net_layer(c->net, j);
    if (pj->kind == DNN_LAYER_INPUT)
      continue; /* token ids: every rank reads them, no gradient */
    bool split_in = pj->tp == DNN_TP_COLUMN || pj->tp == DNN_TP_HEADS;
    double A = out_bytes(c, j);
    if (!split_in) {
      if (nd == NEED_R_PARTIAL) { /* Megatron's f */
        if (c->sp)
          add_comm(c, lt, DNN_PASS_FWD, DNN_COMM_ALLGATHER, A);
        if (bwd_in)
          add_comm(c, lt, DNN_PASS_BWD_DATA,
                   c->sp ? DNN_COMM_REDUCE_SCATTER : DNN_COMM_ALLREDUCE, A);
      } else if (nd == NEED_S) {
        /* A replicated tensor sliced by features: the gradient comes
         * back split and is gathered (a sequence split is transposed). */
        if (c->sp)
          add_comm(c, lt, DNN_PASS_FWD, DNN_COMM_ALLTOALL, A);
        if (bwd_in)
          add_comm(c, lt, DNN_PASS_BWD_DATA,
                   c->sp ? DNN_COMM_ALLTOALL : DNN_COMM_ALLGATHER, A);
      }
    } else if (nd != NEED_S) {
      /* A feature-split tensor read whole: gathered; a partial input
       * gradient is reduce-scattered back to its split. */
      add_comm(c, lt, DNN_PASS_FWD, DNN_COMM_ALLGATHER, A);
      if (nd == NEED_R_PARTIAL && bwd_in)
        add_comm(c, lt, DNN_PASS_BWD_DATA, DNN_COMM_REDUCE_SCATTER, A);
    }
  }
  if (l->tp == DNN_TP_ROW) { /* Megatron's g */
    double A = out_bytes(c, i);
    add_comm(c, lt, DNN_PASS_FWD,
             c->sp ? DNN_COMM_REDUCE_SCATTER : DNN_COMM_ALLREDUCE, A);
    if (c->sp)
      add_comm(c, lt, DNN_PASS_BWD_DATA, DNN_COMM_ALLGATHER, A);
  }
}

/* ---- Operator parallelism (no roles) ------------------------------------- */

static layout split_layout(dnn_split s) {
  switch (s) {
  case DNN_SPLIT_CHANNEL:
    return LAY_C;
  case DNN_SPLIT_SPATIAL:
    return LAY_S;
  case DNN_SPLIT_BATCH:
    return LAY_B;
  default:
    return LAY_R;
  }
}

static dnn_split layout_split(layout y) {
  switch (y) {
  case LAY_C:
    return DNN_SPLIT_CHANNEL;
  case LAY_S:
    return DNN_SPLIT_SPATIAL;
  case LAY_B:
    return DNN_SPLIT_BATCH;
  default:
    return DNN_SPLIT_NONE;
  }
}

/* Layout of layer j's output, from the plan so far. */
static layout out_layout(const ctx *c, const dnn_layer_time *out, size_t j) {
  if (dnn_net_layer(c->net, j)->kind == DNN_LAYER_INPUT)
    return LAY_ANY;
  return split_layout(out[j].split);
}

/* Forward and backward cost of bringing a tensor of A bytes from layout
 * `from` to `to` (`partial`: the consumer's input gradient is a partial
 * sum over the group; `grad`: a gradient flows back at all). */
static void redist(const ctx *c, layout from, layout to, double A, bool partial,
                   bool grad, double *f, double *b, double *fb, double *bb) {
  *f = *b = *fb = *bb = 0;
  if (from == LAY_ANY || !(A > 0))
    return;
  dnn_comm_op fop = DNN_COMM_OP_COUNT, bop = DNN_COMM_OP_COUNT;
  if (from == to) {
    if (to == LAY_R && partial)
      bop = DNN_COMM_ALLREDUCE;
  } else if (to == LAY_R) {
    fop = DNN_COMM_ALLGATHER;
    if (partial)
      bop = DNN_COMM_REDUCE_SCATTER;
  } else if (from == LAY_R) {
    bop = DNN_COMM_ALLGATHER;
  } else {
    fop = bop = DNN_COMM_ALLTOALL;
  }
  if (fop != DNN_COMM_OP_COUNT) {
    *f = coll(c, fop, A);
    *fb = A;
  }
  if (grad && bop != DNN_COMM_OP_COUNT) {
    *b = coll(c, bop, A);
    *bb = A;
  }
}

/* Rows of halo a spatial split of a windowed layer exchanges with each
 * neighbour: (K_eff - 1) / 2 for a kernel of effective height K_eff. */
static double halo_bytes(const ctx *c, const dnn_layer *l) {
  size_t k = 0;
  if (l->kind == DNN_LAYER_CONV2D)
    k = (l->p.conv.kernel_h - 1) * l->p.conv.dilation_h + 1;
  else if (l->kind == DNN_LAYER_MAXPOOL || l->kind == DNN_LAYER_AVGPOOL)
    k = l->p.pool.kernel_h > l->p.pool.stride_h ? l->p.pool.kernel_h : 0;
  if (k <= 1 || l->in.rank != 3)
    return 0;
  double rows = dnn__d((k - 1) / 2 + (k - 1) % 2);
  return rows * dnn__d(l->in.dim[0] * l->in.dim[2]) *
         dnn__d(dnn_dtype_bytes(c->dt)) * dnn__d(c->mbs);
}

/* The layer kinds that act on each channel (or sample, or row) alone, so
 * they keep their input's layout. */
static bool channel_local(dnn_layer_kind k) {
  switch (k) {
  case DNN_LAYER_BATCHNORM:
  case DNN_LAYER_ACTIVATION:
  case DNN_LAYER_ADD:
  case DNN_LAYER_DROPOUT:
  case DNN_LAYER_CONCAT:
  case DNN_LAYER_FLATTEN:
  case DNN_LAYER_MAXPOOL:
  case DNN_LAYER_AVGPOOL:
  case DNN_LAYER_ADAPTIVE_AVGPOOL:
  case DNN_LAYER_GLOBAL_AVGPOOL:
  case DNN_LAYER_SOFTMAX_XENT:
    return true;
  default:
    return false;
  }
}

/* Evaluates scheme `s` for weighted layer i reading layout `in_lay`. */
static double try_scheme(const ctx *c, size_t i, dnn_split s, layout in_lay,
                         dnn_layer_time *lt) {
  const dnn_layer *l = dnn_net_layer(c->net, i);
  split_times(c, i, s, c->t, lt);
  lt->split = s;
  clear_comm(lt);
  bool bwd_in = runs(c, i, DNN_PASS_BWD_DATA);
  double A = out_bytes(c, l->inputs[0]);
  double f, b, fb, bb;
  redist(c, in_lay, split_layout(s) == LAY_C ? LAY_R : split_layout(s), A,
         s == DNN_SPLIT_CHANNEL && bwd_in, bwd_in, &f, &b, &fb, &bb);
  lt->comm_s[DNN_PASS_FWD] += f;
  lt->comm_bytes[DNN_PASS_FWD] += fb;
  lt->comm_s[DNN_PASS_BWD_DATA] += b;
  lt->comm_bytes[DNN_PASS_BWD_DATA] += bb;
  if (s == DNN_SPLIT_SPATIAL) {
    double h = halo_bytes(c, l);
    add_comm(c, lt, DNN_PASS_FWD, DNN_COMM_P2P, h);
    if (bwd_in)
      add_comm(c, lt, DNN_PASS_BWD_DATA, DNN_COMM_P2P, h);
  }
  double grad_ar = 0;
  if (s != DNN_SPLIT_CHANNEL && l->params > 0) {
    lt->group_grad_bytes = dnn__d(l->params) * dnn__d(dnn_dtype_bytes(c->dt));
    grad_ar = coll(c, DNN_COMM_ALLREDUCE, lt->group_grad_bytes);
  }
  /* The gradient allreduce runs once per iteration; charging it to one
   * micro-batch is conservative when gradients accumulate over several
   * (the choice must not depend on m, which the cache does not key). */
  double cost = grad_ar;
  for (int p = 0; p < DNN_PASS_COUNT; p++)
    cost += lt->time_s[p] + lt->comm_s[p];
  return cost;
}

static void op_weighted(const ctx *c, size_t i, layout in_lay,
                        dnn_layer_time *lt) {
  const dnn_layer *l = dnn_net_layer(c->net, i);
  bool conv = l->kind == DNN_LAYER_CONV2D;
  bool spatial_ok = conv && l->out.rank == 3 && l->out.dim[1] >= c->t;
  bool batch_ok = c->mbs >= c->t;
  dnn_split cand[3];
  size_t n = 0;
  switch (c->policy) {
  case DNN_TENSOR_SPLIT_SPATIAL:
    cand[n++] = spatial_ok ? DNN_SPLIT_SPATIAL : DNN_SPLIT_CHANNEL;
    break;
  case DNN_TENSOR_SPLIT_BATCH:
    cand[n++] = batch_ok ? DNN_SPLIT_BATCH : DNN_SPLIT_CHANNEL;
    break;
  case DNN_TENSOR_SPLIT_CHANNEL:
    cand[n++] = DNN_SPLIT_CHANNEL;
    break;
  case DNN_TENSOR_SPLIT_AUTO:
  default:
    cand[n++] = DNN_SPLIT_CHANNEL;
    if (spatial_ok)
      cand[n++] = DNN_SPLIT_SPATIAL;
    if (batch_ok)
      cand[n++] = DNN_SPLIT_BATCH;
    break;
  }
  double best = INFINITY;
  for (size_t k = 0; k < n; k++) {
    dnn_layer_time tmp;
    double cost = try_scheme(c, i, cand[k], in_lay, &tmp);
    if (k == 0 || cost < best) {
      best = cost;
      *lt = tmp;
    }
  }
}

static void op_layer(const ctx *c, size_t i, dnn_layer_time *out) {
  const dnn_layer *l = dnn_net_layer(c->net, i);
  dnn_layer_time *lt = &out[i];
  if (l->kind == DNN_LAYER_INPUT) {
    split_times(c, i, DNN_SPLIT_NONE, 1, lt);
    lt->split = DNN_SPLIT_NONE;
    clear_comm(lt);
    return;
  }
  layout in0 = out_layout(c, out, l->inputs[0]);
  if (l->kind == DNN_LAYER_CONV2D || l->kind == DNN_LAYER_FC) {
    op_weighted(c, i, in0, lt);
    return;
  }
  bool bwd_in = runs(c, i, DNN_PASS_BWD_DATA);
  layout lay;
  if (channel_local(l->kind))
    lay = in0 == LAY_ANY ? LAY_R : in0;
  else
    lay = LAY_R; /* replicated: it needs the whole tensor */
  /* Global pooling of a spatial split sums partial rows: an allreduce
   * of its (small) output makes it whole. */
  bool reduce_out = lay == LAY_S && (l->kind == DNN_LAYER_GLOBAL_AVGPOOL ||
                                     l->kind == DNN_LAYER_ADAPTIVE_AVGPOOL);
  split_times(c, i, layout_split(lay), lay == LAY_R ? 1 : c->t, lt);
  lt->split = layout_split(reduce_out ? LAY_R : lay);
  clear_comm(lt);
  for (size_t k = 0; k < l->n_inputs; k++) {
    layout from = out_layout(c, out, l->inputs[k]);
    double f, b, fb, bb;
    redist(c, from, lay, out_bytes(c, l->inputs[k]), false, bwd_in, &f, &b, &fb,
           &bb);
    lt->comm_s[DNN_PASS_FWD] += f;
    lt->comm_bytes[DNN_PASS_FWD] += fb;
    lt->comm_s[DNN_PASS_BWD_DATA] += b;
    lt->comm_bytes[DNN_PASS_BWD_DATA] += bb;
  }
  if (lay == LAY_S) {
    double h = halo_bytes(c, l);
    add_comm(c, lt, DNN_PASS_FWD, DNN_COMM_P2P, h);
    if (bwd_in)
      add_comm(c, lt, DNN_PASS_BWD_DATA, DNN_COMM_P2P, h);
  }
  if (reduce_out)
    add_comm(c, lt, DNN_PASS_FWD, DNN_COMM_ALLREDUCE, out_bytes(c, i));
  /* Weights used on a spatial or batch split (batch norm's scale and
   * shift) are replicated: their gradients are summed in the group. */
  if ((lay == LAY_S || lay == LAY_B) && l->params > 0)
    lt->group_grad_bytes = dnn__d(l->params) * dnn__d(dnn_dtype_bytes(c->dt));
}

/* ---- The plan ------------------------------------------------------------ */

void dnn__tp_plan(const dnn_strat_input *in, size_t mbs, size_t t,
                  dnn_layer_time *out) {
  dnn__tp_plan_cp(in, NULL, mbs, t, out);
}

void dnn__tp_plan_cp(const dnn_strat_input *in, const dnn_comm_profile *cp,
                     size_t mbs, size_t t, dnn_layer_time *out) {
  ctx c;
  ctx_init(&c, in, mbs, t);
  c.cp = cp;
  size_t L = dnn_net_layer_count(in->net);
  for (size_t i = 0; i < L; i++) {
    if (t <= 1) {
      split_times(&c, i, DNN_SPLIT_NONE, 1, &out[i]);
      out[i].split = DNN_SPLIT_NONE;
      clear_comm(&out[i]);
    } else if (c.mega) {
      mega_layer(&c, i, &out[i]);
    } else {
      op_layer(&c, i, out);
    }
  }
}

void dnn__tp_divisors(dnn_split s, size_t t, double *act_div,
                      double *param_div) {
  double td = dnn__d(t);
  *act_div = s == DNN_SPLIT_NONE ? 1 : td;
  *param_div = s == DNN_SPLIT_COLUMN || s == DNN_SPLIT_ROW ||
                       s == DNN_SPLIT_HEADS || s == DNN_SPLIT_CHANNEL
                   ? td
                   : 1;
}

void dnn_strat_layer_times(const dnn_strat_input *in, size_t batch,
                           dnn_layer_time *out) {
  dnn__tp_plan(in, batch, in->scn->parallelism.tensor, out);
}

/* ---- The hybrid strategy ------------------------------------------------- */

static bool matches(const dnn_scenario *scn) {
  return scn->parallelism.tensor > 1 || scn->training.zero > 0;
}

dnn_status dnn__hybrid_check(const dnn_strat_input *in, dnn_error *err) {
  const dnn_scenario *scn = in->scn;
  char where[DNN_SCN_PATH_MAX + 64];
  size_t t = scn->parallelism.tensor, p = scn->parallelism.pipeline;
  size_t v = scn->parallelism.virtual_stages, m = scn->parallelism.microbatches;
  if (p == 1 && v > 1)
    return DNN_FAIL(err, DNN_EINVAL,
                    "%s: %zu virtual stages need a pipeline (pipeline > 1)",
                    dnn_scn_key_origin(scn, "parallelism", "virtual_stages",
                                       where, sizeof where),
                    v);
  if (scn->parallelism.schedule == DNN_SCHEDULE_INTERLEAVED && v > 1 &&
      m % p != 0)
    return DNN_FAIL(err, DNN_EINVAL,
                    "%s: the interleaved schedule needs micro-batches (%zu) "
                    "to be a multiple of the pipeline stages (%zu)",
                    dnn_scn_key_origin(scn, "parallelism", "microbatches",
                                       where, sizeof where),
                    m, p);
  if (scn->training.zero >= 2 && p > 1)
    return DNN_FAIL(
        err, DNN_EINVAL,
        "%s: ZeRO stage %zu shards gradients, which pipeline "
        "parallelism accumulates over micro-batches (DeepSpeed "
        "supports only stages 0 and 1 with pipeline = %zu); use "
        "zero = 1 or pipeline = 1",
        dnn_scn_key_origin(scn, "training", "zero", where, sizeof where),
        scn->training.zero, p);
  if (t <= 1)
    return DNN_OK;
  size_t L = dnn_net_layer_count(in->net);
  for (size_t i = 0; i < L; i++) {
    const dnn_layer *l = dnn_net_layer(in->net, i);
    if ((l->kind == DNN_LAYER_ATTN_SCORES ||
         l->kind == DNN_LAYER_ATTN_CONTEXT) &&
        l->p.attn.heads % t != 0)
      return DNN_FAIL(
          err, DNN_EINVAL,
          "%s: tensor = %zu must divide the %zu attention heads "
          "of layer '%s' (each rank computes whole heads)",
          dnn_scn_key_origin(scn, "parallelism", "tensor", where, sizeof where),
          t, l->p.attn.heads, l->name);
    if (scn->parallelism.sequence_parallel && l->out.rank == 2 &&
        l->tp == DNN_TP_NONE && l->out.dim[0] % t != 0 &&
        l->kind != DNN_LAYER_SLICE)
      return DNN_FAIL(err, DNN_EINVAL,
                      "%s: sequence parallelism splits the %zu tokens of "
                      "layer '%s' %zu ways; tensor must divide them",
                      dnn_scn_key_origin(scn, "parallelism",
                                         "sequence_parallel", where,
                                         sizeof where),
                      l->out.dim[0], l->name, t);
  }
  return DNN_OK;
}

static dnn_status build(const dnn_strat_input *in, const dnn_comm_profile *cp,
                        const size_t *first, dnn__stage_model *sm,
                        dnn_error *err) {
  memset(sm, 0, sizeof *sm);
  dnn_status st = dnn__hybrid_check(in, err);
  if (st)
    return st;
  return dnn__stage_model_build(in, cp, in->scn->parallelism.pipeline,
                                in->scn->parallelism.virtual_stages, first, sm,
                                err);
}

static const dnn__strat_type tensor_type = {
    "hybrid",
    "tensor (Megatron or operator) x data x pipeline parallelism with ZeRO",
    matches, build};

const dnn__strat_type *const dnn__strat_tensor = &tensor_type;
