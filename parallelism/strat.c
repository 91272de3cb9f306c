/*
 * Analytic prediction of one training iteration (strat.h) for data
 * parallelism, with memory per device and scaling efficiency.
 *
 * Model (docs/models.md §6, after the survey's data-parallel cost,
 * REFERENCE §1.4): each of d replicas computes forward and backward on
 * b = B/d samples; gradients of |w| parameters are allreduced in buckets
 * filled in reverse layer order as the backward pass produces them; the
 * optimizer then updates the weights.
 *
 *   T = T_fwd(b) + T_bwd(b) + T_exposed + T_opt
 *
 * With overlap, bucket k's allreduce starts at max(ready_k, end_{k-1}) on
 * one communication stream, so T_exposed = max(0, end_last - T_bwd): an
 * exact recurrence for one stream without link sharing (the event
 * simulator generalises it). Without overlap one allreduce of all
 * gradients follows the backward pass.
 *
 * Invariant: the analytic path never allocates; it runs millions of times
 * in sweeps and search.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

#define MIB (1024.0 * 1024.0)

/* Bytes of one gradient element: gradients are allreduced in the training
 * dtype (Megatron/DeepSpeed keep fp16 gradients; fp32 training sends
 * fp32). */
static double grad_elem_bytes(dnn_dtype dtype) {
  return dnn__d(dnn_dtype_bytes(dtype));
}

static bool mixed_precision(dnn_dtype dtype) {
  return dtype == DNN_DTYPE_FP16 || dtype == DNN_DTYPE_BF16;
}

void dnn_strat_layer_times(const dnn_strat_input *in, size_t batch,
                           dnn_layer_time *out) {
  const dnn_scenario *scn = in->scn;
  double ws_limit = scn->hardware.workspace_MB * MIB;
  size_t n = dnn_net_layer_count(in->net);
  for (size_t i = 0; i < n; i++) {
    dnn_layer_time *lt = &out[i];
    lt->workspace_bytes = 0;
    for (int p = 0; p < DNN_PASS_COUNT; p++) {
      double ws = 0;
      lt->time_s[p] =
          dnn_hw_layer_time(in->hw, in->net, i, (dnn_pass)p, batch,
                            scn->model.dtype, ws_limit, &lt->algo[p], &ws);
      if (ws > lt->workspace_bytes)
        lt->workspace_bytes = ws;
    }
  }
}

/* Optimizer update: words touched per parameter and FLOPs per parameter
 * (docs/models.md §6): sgd reads w, g and writes w; momentum adds the
 * velocity read and write; Adam two moments. Mixed precision also writes
 * the half-precision copy of the weights. */
static void optimizer_cost(dnn_optimizer opt, dnn_dtype dtype, double params,
                           double *flops, double *bytes) {
  double words, fl;
  switch (opt) {
  case DNN_OPTIMIZER_SGD:
    words = 3, fl = 2;
    break;
  case DNN_OPTIMIZER_MOMENTUM:
    words = 5, fl = 4;
    break;
  case DNN_OPTIMIZER_ADAM:
  default:
    words = 7, fl = 12;
    break;
  }
  *flops = fl * params;
  *bytes = words * 4.0 * params;
  if (mixed_precision(dtype))
    *bytes += params * dnn__d(dnn_dtype_bytes(dtype));
}

double dnn__strat_optimizer_state_bytes(dnn_optimizer opt, dnn_dtype dtype,
                                        double params) {
  double words = opt == DNN_OPTIMIZER_SGD        ? 0
                 : opt == DNN_OPTIMIZER_MOMENTUM ? 1
                                                 : 2;
  /* fp32 master weights under mixed precision. */
  if (mixed_precision(dtype))
    words += 1;
  return words * 4.0 * params;
}

dnn_status dnn__strat_comm_setup(const dnn_strat_input *in, size_t d,
                                 size_t stride, dnn_comm_topo *topo) {
  const dnn_hw_params *hp = dnn_hw_get(in->hw);
  /* A reduction reads two operands and writes one: 3 bytes of device
   * memory traffic per byte reduced, at the eltwise memory efficiency. */
  double gamma = 3.0 / (hp->mem_bandwidth_Bps * hp->eff_memory[DNN_OP_ELTWISE]);
  *topo = dnn_comm_topo_from_cluster(&in->cluster, d, stride, gamma);
  topo->ps_servers = in->scn->parallelism.ps_servers;
  return DNN_OK;
}

/* ---- Data parallelism ---------------------------------------------------- */

dnn_status dnn__strat_predict_data(const dnn_strat_input *in,
                                   dnn_prediction *out, dnn_error *err) {
  const dnn_scenario *scn = in->scn;
  const dnn_net *net = in->net;
  const dnn_hw *hw = in->hw;
  const dnn_hw_params *hp = dnn_hw_get(hw);
  dnn_dtype dtype = scn->model.dtype;
  size_t d = dnn_scn_data_degree(scn);
  size_t b = scn->model.batch / d;
  double ws_limit = scn->hardware.workspace_MB * MIB;
  dnn_comm_algo algo = (dnn_comm_algo)scn->parallelism.allreduce;

  dnn_comm_topo topo;
  dnn__strat_comm_setup(in, d, 1, &topo);

  /* Forward: all layers in order. */
  size_t n = dnn_net_layer_count(net);
  double t_fwd = 0, ws_max = 0;
  for (size_t i = 0; i < n; i++) {
    double ws = 0;
    t_fwd += dnn_hw_layer_time(hw, net, i, DNN_PASS_FWD, b, dtype, ws_limit,
                               NULL, &ws);
    ws_max = fmax(ws_max, ws);
  }

  /* Backward in reverse order, filling gradient buckets as it goes. */
  double bucket_cap = scn->parallelism.bucket_MB * MIB;
  double gbytes = grad_elem_bytes(dtype);
  double t_bwd = 0, comm_free = 0, comm_total = 0, bucket = 0;
  double grad_total = 0;
  dnn_comm_cost cc;
  dnn_status st;
  for (size_t k = n; k-- > 0;) {
    for (int p = DNN_PASS_BWD_DATA; p <= DNN_PASS_BWD_WEIGHTS; p++) {
      double ws = 0;
      t_bwd += dnn_hw_layer_time(hw, net, k, (dnn_pass)p, b, dtype, ws_limit,
                                 NULL, &ws);
      ws_max = fmax(ws_max, ws);
    }
    double g = dnn__d(dnn_net_layer(net, k)->params) * gbytes;
    grad_total += g;
    if (!scn->parallelism.overlap || d == 1)
      continue;
    bucket += g;
    if (bucket >= bucket_cap || (k == 0 && bucket > 0)) {
      if ((st = dnn_comm_time(DNN_COMM_ALLREDUCE, algo, bucket, &topo, &cc,
                              err)))
        return st;
      double start = fmax(t_bwd, comm_free);
      comm_free = start + cc.time_s;
      comm_total += cc.time_s;
      bucket = 0;
    }
  }
  if (bucket > 0 && scn->parallelism.overlap && d > 1) {
    if ((st = dnn_comm_time(DNN_COMM_ALLREDUCE, algo, bucket, &topo, &cc, err)))
      return st;
    comm_free = fmax(t_bwd, comm_free) + cc.time_s;
    comm_total += cc.time_s;
  }
  double exposed;
  if (d == 1) {
    exposed = 0;
    cc.algo = algo == DNN_COMM_ALGO_AUTO ? DNN_COMM_ALGO_RING : algo;
  } else if (scn->parallelism.overlap) {
    exposed = fmax(0.0, comm_free - t_bwd);
  } else {
    if ((st = dnn_comm_time(DNN_COMM_ALLREDUCE, algo, grad_total, &topo, &cc,
                            err)))
      return st;
    comm_total = exposed = cc.time_s;
  }

  dnn_net_totals tot;
  dnn_net_totals_get(net, b, dtype, &tot);
  double params = dnn__d(tot.params);
  double opt_flops, opt_bytes;
  optimizer_cost(scn->training.optimizer, dtype, params, &opt_flops,
                 &opt_bytes);
  double t_opt = dnn_hw_kernel_time(hw, DNN_OP_OPTIMIZER, DNN_DTYPE_FP32,
                                    opt_flops, opt_bytes);

  memset(out, 0, sizeof *out);
  out->breakdown.forward_s = t_fwd;
  out->breakdown.backward_s = t_bwd;
  out->breakdown.comm_s = comm_total;
  out->breakdown.comm_exposed_s = exposed;
  out->breakdown.optimizer_s = t_opt;
  out->iteration_s = t_fwd + t_bwd + exposed + t_opt;
  out->devices = d;
  out->data = d;
  out->tensor = 1;
  out->pipeline = 1;
  out->local_batch = b;
  out->grad_bytes = grad_total;
  out->allreduce = cc.algo;
  out->engine = DNN_ENGINE_ANALYTIC;
  out->throughput_samples_per_s = dnn__d(scn->model.batch) / out->iteration_s;
  double model_flops = tot.flops[DNN_PASS_FWD] + tot.flops[DNN_PASS_BWD_DATA] +
                       tot.flops[DNN_PASS_BWD_WEIGHTS];
  out->flops_per_device_per_s = model_flops / out->iteration_s;
  /* One device at the same local batch has no communication (weak
   * scaling, docs/models.md §6). */
  double t_one = t_fwd + t_bwd + t_opt;
  out->scaling_efficiency = t_one / out->iteration_s;

  dnn_memory *m = &out->memory;
  double eb = dnn__d(dnn_dtype_bytes(dtype));
  m->weights_bytes = params * eb;
  m->gradients_bytes = params * eb;
  m->optimizer_bytes =
      dnn__strat_optimizer_state_bytes(scn->training.optimizer, dtype, params);
  m->activations_bytes = tot.activation_bytes;
  m->workspace_bytes = ws_max;
  m->reserved_bytes = hp->mem_reserved_bytes;
  m->total_bytes = m->weights_bytes + m->gradients_bytes + m->optimizer_bytes +
                   m->activations_bytes + m->workspace_bytes +
                   m->reserved_bytes;
  m->capacity_bytes = hp->mem_capacity_bytes;
  out->fits_in_memory = m->total_bytes <= m->capacity_bytes;
  return DNN_OK;
}

/* ---- Entry point -----------------------------------------------------------
 */

dnn_status dnn_strat_predict(const dnn_strat_input *in, dnn_prediction *out,
                             dnn_error *err) {
  const dnn_scenario *scn = in->scn;
  dnn_status st = dnn_scn_validate(scn, err);
  if (st)
    return st;
  if (scn->parallelism.tensor > 1 || scn->parallelism.pipeline > 1) {
    char where[DNN_SCN_PATH_MAX + 64];
    return DNN_FAIL(
        err, DNN_EUNSUPPORTED,
        "%s: tensor and pipeline parallelism are not modelled by "
        "this build yet",
        dnn_scn_key_origin(scn, "parallelism",
                           scn->parallelism.tensor > 1 ? "tensor" : "pipeline",
                           where, sizeof where));
  }
  if (scn->engine == DNN_ENGINE_DES)
    return DNN_FAIL(err, DNN_EUNSUPPORTED,
                    "the event simulator is not part of this build yet; use "
                    "engine = analytic");
  return dnn__strat_predict_data(in, out, err);
}
