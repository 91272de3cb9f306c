/*
 * Prediction of one training iteration (strat.h): the registry of parallel
 * strategies, the choice of engine, and the assembly of a prediction with
 * its memory per device and scaling efficiency.
 *
 * Model (docs/models.md §6 and §8, after the survey's data-parallel and
 * pipeline costs, REFERENCE §1.4): a strategy (data.c, pipeline.c,
 * tensor.c) cuts the network into stages and prices their work and
 * communication (the stage model, stage.c); the analytic engine
 * (schedule.c) evaluates closed forms on it and the event simulator
 * (taskgraph.c on sim.c) runs it as a task graph. For data parallelism
 * each of d replicas computes forward and backward on b = B/d samples;
 * gradients of |w| parameters are allreduced in buckets filled in reverse
 * layer order as the backward pass produces them; the optimizer then
 * updates the weights:
 *
 *   T = T_fwd(b) + T_bwd(b) + T_exposed + T_opt
 *
 * With overlap, bucket k's allreduce starts at max(ready_k, end_{k-1}) on
 * one communication stream, so T_exposed = max(0, end_last - T_bwd): an
 * exact recurrence for one stream without link sharing (the event
 * simulator generalises it). Without overlap one allreduce of all
 * gradients follows the backward pass.
 *
 * Invariant: the analytic path of a data-parallel scenario never
 * allocates; it runs millions of times in sweeps and search. Pipelines
 * allocate their stage table (O(layers + stages)) once per evaluation.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

#define MIB (1024.0 * 1024.0)

static bool mixed_precision(dnn_dtype dtype) {
  return dtype == DNN_DTYPE_FP16 || dtype == DNN_DTYPE_BF16;
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

double dnn__strat_optimizer_time(const dnn_strat_input *in, double params) {
  double fl, by;
  optimizer_cost(in->scn->training.optimizer, in->scn->model.dtype, params, &fl,
                 &by);
  return dnn_hw_kernel_time(in->hw, DNN_OP_OPTIMIZER, DNN_DTYPE_FP32, fl, by);
}

/* ---- The registry ---------------------------------------------------------
 */

/* First match wins; data parallelism accepts everything left. The table
 * holds the addresses of the exported descriptor pointers (constants),
 * so adding a strategy is one line here. */
static const dnn__strat_type *const *const registry[] = {
    &dnn__strat_tensor,
    &dnn__strat_pipeline,
    &dnn__strat_data,
};

const dnn__strat_type *dnn__strat_find(const dnn_scenario *scn) {
  for (size_t i = 0; i < DNN_ARRAY_LEN(registry); i++)
    if ((*registry[i])->matches(scn))
      return *registry[i];
  return dnn__strat_data;
}

bool dnn__strat_wants_des(const dnn_scenario *scn) {
  size_t d = dnn_scn_data_degree(scn);
  return scn->parallelism.pipeline > 1 || (d > 1 && scn->parallelism.overlap) ||
         scn->training.jitter > 0;
}

/* ---- Assembly ------------------------------------------------------------ */

/* Moves the critical rank's tensor-group collectives out of the compute
 * times they block (both engines count them there: they sit inside the
 * layer tasks and the optimizer step) into exposed communication. */
static void split_comm(const dnn__stage_model *sm, size_t r,
                       dnn_breakdown *bd) {
  double F = 0, B = 0, R = 0;
  for (size_t c = 0; c < sm->v; c++) {
    const dnn__stage *st = &sm->stages[c * sm->p + r];
    F += st->comm_fwd_s;
    B += st->comm_bwd_s;
    R += st->comm_recompute_s;
  }
  double m = dnn__d(sm->m), step = dnn__stage_step_comm_s(sm, r);
  double moved = m * (F + B + R) + step;
  if (!(moved > 0))
    return;
  bd->forward_s = fmax(0.0, bd->forward_s - m * F);
  bd->backward_s = fmax(0.0, bd->backward_s - m * B);
  bd->recompute_s = fmax(0.0, bd->recompute_s - m * R);
  bd->optimizer_s = fmax(0.0, bd->optimizer_s - step);
  bd->comm_exposed_s += moved;
  bd->comm_s += moved;
}

void dnn__strat_assemble(const dnn__stage_model *sm,
                         const dnn__engine_result *r, dnn_prediction *out) {
  const dnn_strat_input *in = &sm->in;
  const dnn_scenario *scn = in->scn;
  const dnn_hw_params *hp = dnn_hw_get(in->hw);
  memset(out, 0, sizeof *out);
  out->iteration_s = r->iteration_s;
  out->breakdown = r->breakdown;
  split_comm(sm, r->critical_rank, &out->breakdown);
  out->devices = dnn_scn_devices(scn);
  out->data = sm->d;
  out->tensor = sm->t;
  out->pipeline = sm->p;
  out->local_batch = sm->b;
  out->grad_bytes =
      dnn__stage_device_params(sm, r->critical_rank) * sm->grad_elem_bytes;
  out->allreduce = r->algo;
  out->throughput_samples_per_s = dnn__d(scn->model.batch) / r->iteration_s;

  double params, model_flops, t_one;
  if (sm->tab) {
    params = sm->tab->params;
    model_flops = dnn__d(sm->m) * sm->tab->flops_mb;
    t_one = dnn__d(sm->m) * sm->tab->one_fb_s;
  } else {
    dnn_net_totals tot;
    dnn_net_totals_get(in->net, sm->b, scn->model.dtype, &tot);
    params = dnn__d(tot.params);
    model_flops = tot.flops[DNN_PASS_FWD] + tot.flops[DNN_PASS_BWD_DATA] +
                  tot.flops[DNN_PASS_BWD_WEIGHTS];
    t_one = 0;
    if (sm->zero >= 3) {
      /* Without ZeRO-3's gathers, which the stage times include. */
      size_t L = dnn_net_layer_count(in->net);
      for (size_t i = 0; i < L; i++) {
        dnn__layer_row row;
        dnn__stage_row(sm, i, &row);
        t_one += dnn__d(sm->m) * (row.fwd_s + row.bwd_s);
      }
    } else {
      for (size_t s = 0; s < sm->V; s++)
        t_one += dnn__d(sm->m) * (sm->stages[s].fwd_s + sm->stages[s].bwd_s);
    }
  }
  double split = dnn__d(sm->p * sm->t);
  out->flops_per_device_per_s = model_flops / split / r->iteration_s;
  /* One device doing a replica's work alone, without communication or
   * recompute (weak scaling, docs/models.md §6): efficiency is the
   * throughput over P x that device's. */
  t_one += dnn__strat_optimizer_time(in, params);
  /* A jittered run whose devices all drew fast speeds could beat the
   * mean device: the efficiency is capped at 1. */
  out->scaling_efficiency = fmin(1.0, t_one / (split * r->iteration_s));

  /* Memory of the most loaded pipeline rank. */
  double best = -1;
  for (size_t rk = 0; rk < sm->p; rk++) {
    dnn_memory m;
    double ws = 0;
    for (size_t c = 0; c < sm->v; c++)
      ws = fmax(ws, sm->stages[c * sm->p + rk].workspace_bytes);
    dnn__zero_state_memory(sm, rk, &m);
    m.activations_bytes = dnn__sched_peak_activations(sm, rk);
    m.workspace_bytes = ws;
    m.reserved_bytes = hp->mem_reserved_bytes;
    m.total_bytes = m.weights_bytes + m.gradients_bytes + m.optimizer_bytes +
                    m.activations_bytes + m.workspace_bytes + m.reserved_bytes;
    m.capacity_bytes = hp->mem_capacity_bytes;
    m.headroom_bytes = m.capacity_bytes - m.total_bytes;
    if (m.total_bytes > best) {
      best = m.total_bytes;
      out->memory = m;
    }
  }
  out->fits_in_memory = out->memory.total_bytes <= out->memory.capacity_bytes;
}

/* ---- Entry points -------------------------------------------------------- */

dnn_status dnn__strat_predict_data(const dnn_strat_input *in,
                                   dnn_prediction *out, dnn_error *err) {
  dnn__stage_model sm;
  dnn_status st = dnn__strat_data->build(in, NULL, &sm, err);
  dnn__engine_result r;
  if (st == DNN_OK)
    st = dnn__analytic_run(&sm, &r, err);
  if (st == DNN_OK) {
    dnn__strat_assemble(&sm, &r, out);
    out->engine = DNN_ENGINE_ANALYTIC;
  }
  dnn__stage_model_release(&sm);
  return st;
}

/* Both entry points: the strategy's model (with a cache: the hybrid's
 * checks, which cover every strategy's, and the cached build). */
static dnn_status predict(const dnn_strat_input *in, dnn_strat_cache *cache,
                          dnn_prediction *out, dnn_error *err) {
  const dnn_scenario *scn = in->scn;
  dnn_status st = dnn_scn_validate(scn, err);
  if (st)
    return st;
  dnn__stage_model sm;
  if (cache == NULL) {
    st = dnn__strat_find(scn)->build(in, NULL, &sm, err);
  } else {
    memset(&sm, 0, sizeof sm);
    st = dnn__hybrid_check(in, err);
    if (st == DNN_OK)
      st = dnn__stage_model_build_ex(in, cache, scn->parallelism.pipeline,
                                     scn->parallelism.virtual_stages, NULL, &sm,
                                     err);
  }
  dnn_engine engine = scn->engine;
  if (engine == DNN_ENGINE_AUTO)
    engine = st == DNN_OK && dnn__strat_wants_des(scn) &&
                     dnn__des_task_estimate(&sm) <= DNN_STRAT_SIM_MAX_TASKS
                 ? DNN_ENGINE_DES
                 : DNN_ENGINE_ANALYTIC;
  dnn__engine_result r;
  if (st == DNN_OK)
    st = engine == DNN_ENGINE_DES ? dnn__des_run(&sm, &r, err)
                                  : dnn__analytic_run(&sm, &r, err);
  if (st == DNN_OK) {
    dnn__strat_assemble(&sm, &r, out);
    out->engine = engine;
  }
  dnn__stage_model_release(&sm);
  return st;
}

dnn_status dnn_strat_predict(const dnn_strat_input *in, dnn_prediction *out,
                             dnn_error *err) {
  return predict(in, NULL, out, err);
}

dnn_status dnn_strat_predict_cached(const dnn_strat_input *in,
                                    dnn_strat_cache *cache, dnn_prediction *out,
                                    dnn_error *err) {
  return predict(in, cache, out, err);
}
