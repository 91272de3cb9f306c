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
 * Around the step (docs/models.md §16-§19): mixed-size training is the
 * expectation of the steps at each size (E[T] = sum p_k T_k, throughput
 * E[samples] / E[T], memory the largest); batch augmentation computes M
 * copies of each sample and is compared with the one-copy step; jitter
 * makes a synchronous step wait for the slowest replica (Monte Carlo
 * through the simulator, or C E[max X] + A in closed form) and SSP or
 * asynchronous training is timed by a clock recurrence; the time to a
 * number of updates follows from steps or epochs.
 *
 * Invariant: the analytic path of a data-parallel scenario never
 * allocates; it runs millions of times in sweeps and search. Pipelines
 * allocate their stage table (O(layers + stages)) once per evaluation;
 * with a cache, mixed sizes and copies do not allocate once warm either.
 */
#include "internal.h"

#include <math.h>
#include <stddef.h>
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
  dnn_dtype dt = in->scn->model.dtype;
  optimizer_cost(in->scn->training.optimizer, dt, params, &fl, &by);
  /* The update runs in fp32 (master weights); a profile without an fp32
   * peak (a half-precision-only accelerator) times it at the training
   * dtype's peak instead of an infinite time. */
  dnn_dtype opt_dt =
      dnn_hw_get(in->hw)->peak_flops[DNN_DTYPE_FP32] > 0 ? DNN_DTYPE_FP32 : dt;
  return dnn_hw_kernel_time(in->hw, DNN_OP_OPTIMIZER, opt_dt, fl, by);
}

double dnn__strat_accumulate_time(const dnn_strat_input *in, double params,
                                  size_t m) {
  if (m <= 1 || params <= 0 ||
      in->scn->training.grad_accumulation == DNN_GRAD_ACCUMULATION_FUSED)
    return 0;
  /* Micro-batches after the first add their weight gradients into the
   * accumulated ones: read both, write one, in the gradient dtype, as one
   * fused pass over the stage's parameters (like the optimizer's). Spread
   * evenly over the m micro-batches. */
  dnn_dtype dt = in->scn->model.dtype;
  double eb = dnn__d(dnn_dtype_bytes(dt));
  double t = dnn_hw_kernel_time(in->hw, DNN_OP_OPTIMIZER, dt, params,
                                3.0 * eb * params);
  return t * dnn__d(m - 1) / dnn__d(m);
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

/* What one step's techniques do (docs/models.md §17, §18, §20); the
 * per-scenario ones (sizes, updates, stragglers) are filled by predict. */
static void assemble_techniques(const dnn__stage_model *sm, size_t r,
                                dnn_prediction *out) {
  dnn_techniques *tq = &out->techniques;
  double B = dnn__d(sm->in.scn->model.batch);
  tq->copies = sm->copies;
  tq->unique_samples_per_step = B;
  tq->augmented_samples_per_step = B * dnn__d(sm->copies);
  tq->augmented_samples_per_s =
      tq->augmented_samples_per_step / out->iteration_s;
  tq->inference_s_per_sample =
      sm->mbs > 0 ? sm->one_fwd_s / dnn__d(sm->mbs) : 0;
  tq->nominal_iteration_s = out->iteration_s;
  tq->straggler_factor = 1;
  tq->expected_max_speed = 1;
  for (size_t k = 0; k < sm->n_sparse; k++) {
    tq->sparse_layers++;
    tq->sparse_grad_bytes += sm->sparse_bytes[k];
    tq->sparse_dense_bytes += sm->sparse_params[k] * sm->grad_elem_bytes;
  }
  if (sm->d > 1) {
    double dense = dnn__stage_dense_grad_bytes(sm, r);
    tq->wire_grad_bytes = dense;
    if (sm->in.scn->training.compression != DNN_COMPRESSION_NONE)
      dnn__stage_grad_wire(sm, dense, &tq->wire_grad_bytes, &tq->compression_s);
  }
}

void dnn__strat_assemble(const dnn__stage_model *sm,
                         const dnn__engine_result *r, dnn_prediction *out) {
  const dnn_strat_input *in = &sm->in;
  const dnn_scenario *scn = in->scn;
  const dnn_hw_params *hp = dnn_hw_get(in->hw);
  /* Everything but the per-size table, which only predictions over
   * several sizes fill (n_sizes entries): a sweep's hot path does not
   * clear a kilobyte it never reads. */
  memset(out, 0, offsetof(dnn_prediction, techniques));
  dnn_techniques *tq = &out->techniques;
  memset(tq, 0, offsetof(dnn_techniques, sizes));
  memset(&tq->peak_memory_size, 0,
         sizeof *tq - offsetof(dnn_techniques, peak_memory_size));
  out->iteration_s = r->iteration_s;
  out->breakdown = r->breakdown;
  split_comm(sm, r->critical_rank, &out->breakdown);
  /* A difference of sums (the engines' idle time) may come out a
   * rounding error below zero. */
  out->breakdown.bubble_s = fmax(0.0, out->breakdown.bubble_s);
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
  assemble_techniques(sm, r->critical_rank, out);
}

/* ---- Entry points -------------------------------------------------------- */

dnn_status dnn__strat_predict_data(const dnn_strat_input *in,
                                   dnn_prediction *out, dnn_error *err) {
  dnn__stage_model sm;
  dnn_status st = dnn__strat_data->build(in, NULL, NULL, &sm, err);
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

/* ---- One step ------------------------------------------------------------ */

/* Scales the critical device's compute in a result by `f` (its compute
 * runs f times longer: the slowest replica of a jittered step, §19), so
 * that the parts still add up. */
static void scale_compute(dnn__engine_result *r, double f) {
  dnn_breakdown *b = &r->breakdown;
  double C = b->forward_s + b->backward_s + b->recompute_s + b->optimizer_s;
  b->forward_s *= f;
  b->backward_s *= f;
  b->recompute_s *= f;
  b->optimizer_s *= f;
  r->iteration_s += (f - 1) * C;
}

/* Times `sm` with `engine`, stragglers and consistency included (§19):
 * synchronous jittered steps by Monte Carlo through the simulator or, in
 * closed form, the expected maximum of the replicas' speed factors; SSP
 * and asynchronous steps by the clock recurrence around the step without
 * jitter. *nominal receives the step without jitter. */
/* What run_engine adds to an engine's result. */
typedef struct straggling {
  double nominal_s; /* the step without jitter */
  double emax;      /* E[max] of the replicas' speed factors */
  double staleness; /* mean clock lag */
  size_t draws;     /* Monte Carlo draws or clock steps */
} straggling;

static dnn_status run_engine(dnn__stage_model *sm, dnn_engine engine,
                             dnn__res *res, dnn__engine_result *r,
                             straggling *tq, dnn_error *err) {
  const dnn_scenario *scn = sm->in.scn;
  double cv = scn->training.jitter;
  bool sync = scn->training.consistency == DNN_CONSISTENCY_SYNC;
  dnn_status st;
  tq->emax = 1;
  tq->draws = 0;
  tq->staleness = 0;
  /* Without jitter every replica keeps pace: no consistency model waits,
   * and the step is the engine's. */
  if (!(cv > 0)) {
    st = engine == DNN_ENGINE_DES ? dnn__des_run(sm, r, err)
                                  : dnn__analytic_run(sm, r, err);
    tq->nominal_s = r->iteration_s;
    return st;
  }
  /* The step without jitter (the simulator then needs replica 0 only). */
  dnn_scenario nom = *scn;
  nom.training.jitter = 0;
  sm->in.scn = &nom;
  st = engine == DNN_ENGINE_DES ? dnn__des_run(sm, r, err)
                                : dnn__analytic_run(sm, r, err);
  sm->in.scn = scn;
  if (st)
    return st;
  tq->nominal_s = r->iteration_s;
  const dnn_breakdown *b = &r->breakdown;
  double C = b->forward_s + b->backward_s + b->recompute_s + b->optimizer_s;
  if (sync || sm->d <= 1) {
    tq->emax = dnn__res_emax(res, sm->d, cv);
    if (engine == DNN_ENGINE_DES) {
      /* Cap the Monte Carlo at about 2^24 simulated tasks in all. */
      /* [simulation] draws full iterations with fresh speed factors; the
       * relative standard error of the mean is about cv / sqrt(draws). */
      size_t est = dnn__des_task_estimate(sm), draws = scn->mc_draws;
      if (est > 0 && draws > ((size_t)1 << 24) / est)
        draws = ((size_t)1 << 24) / est > 0 ? ((size_t)1 << 24) / est : 1;
      tq->draws = draws;
      return dnn__des_run_mc(sm, draws, r, err);
    }
    scale_compute(r, tq->emax);
    return DNN_OK;
  }
  /* SSP or asynchronous: a replica waits only beyond the staleness bound;
   * its compute is C X, the rest of the step (A) its own communication. */
  dnn__clock_result cr;
  size_t s = scn->training.consistency == DNN_CONSISTENCY_SSP
                 ? scn->training.staleness
                 : 0;
  st = dnn__clock_run(sm->d, C, fmax(0.0, r->iteration_s - C), cv,
                      scn->training.consistency, s, scn->training.seed,
                      dnn__stage_device(sm, r->critical_rank, 0), sm->t, &cr,
                      err);
  if (st)
    return st;
  tq->draws = cr.steps;
  tq->staleness = cr.staleness;
  tq->emax = dnn__res_emax(res, sm->d, cv);
  if (C > 0)
    scale_compute(r, (cr.step_s - (r->iteration_s - C)) / C);
  return DNN_OK;
}

/* One step of the scenario `in` (one size). */
static dnn_status predict_step(const dnn_strat_input *in,
                               dnn_strat_cache *cache, dnn__res *res,
                               const dnn_comm_profile *cp, dnn_prediction *out,
                               dnn_error *err) {
  const dnn_scenario *scn = in->scn;
  dnn__stage_model sm;
  dnn_status st;
  if (cache == NULL) {
    st = dnn__strat_find(scn)->build(in, cp, NULL, &sm, err);
  } else {
    /* build_ex clears the model itself. */
    st = dnn__hybrid_check(in, err);
    if (st == DNN_OK)
      st = dnn__stage_model_build_ex(in, cache, cp, scn->parallelism.pipeline,
                                     scn->parallelism.virtual_stages, NULL, &sm,
                                     err);
    else
      memset(&sm, 0, sizeof sm);
  }
  dnn_engine engine = scn->engine;
  if (engine == DNN_ENGINE_AUTO)
    engine = st == DNN_OK && dnn__strat_wants_des(scn) &&
                     dnn__des_task_estimate(&sm) <= DNN_STRAT_SIM_MAX_TASKS
                 ? DNN_ENGINE_DES
                 : DNN_ENGINE_ANALYTIC;
  dnn__engine_result r;
  straggling sg = {0, 1, 0, 0};
  if (st == DNN_OK)
    st = run_engine(&sm, engine, res, &r, &sg, err);
  if (st == DNN_OK) {
    dnn__strat_assemble(&sm, &r, out);
    out->engine = engine;
    dnn_techniques *t = &out->techniques;
    t->nominal_iteration_s = sg.nominal_s;
    t->straggler_factor =
        sg.nominal_s > 0 ? out->iteration_s / sg.nominal_s : 1;
    t->expected_max_speed = sg.emax;
    t->draws = sg.draws;
    t->staleness = sg.staleness;
  }
  dnn__stage_model_release(&sm);
  return st;
}

/* ---- Mixed sizes, copies and updates (docs/models.md §16, §17) ---------- */

/* The step at image side `size`: its network, batch and copies. */
static dnn_status predict_size(const dnn_strat_input *in,
                               dnn_strat_cache *cache, dnn__res *res,
                               const dnn_comm_profile *cp, size_t size,
                               dnn_prediction *out, dnn_error *err) {
  const dnn_scenario *scn = in->scn;
  size_t b, M;
  dnn_strat_size_config(scn, size, &b, &M);
  dnn_scenario sc = *scn;
  sc.training.n_sizes = 0;
  sc.model.image = size;
  sc.model.batch = b * dnn_scn_data_degree(scn);
  sc.training.augment_copies = M;
  dnn_strat_input is = *in;
  is.scn = &sc;
  dnn_status st = dnn__res_net(res, in, size, &is.net, err);
  if (st == DNN_OK)
    st = predict_step(&is, cache, res, cp, out, err);
  if (st) {
    char where[DNN_SCN_PATH_MAX + 64];
    dnn_error_prefix(
        err, "%s: image %zu (%zu samples, %zu copies each)",
        dnn_scn_key_origin(scn, "training", "sizes", where, sizeof where), size,
        sc.model.batch, M);
  }
  return st;
}

void dnn__breakdown_add(dnn_breakdown *a, const dnn_breakdown *b, double w) {
  a->forward_s += w * b->forward_s;
  a->backward_s += w * b->backward_s;
  a->recompute_s += w * b->recompute_s;
  a->comm_s += w * b->comm_s;
  a->comm_exposed_s += w * b->comm_exposed_s;
  a->bubble_s += w * b->bubble_s;
  a->optimizer_s += w * b->optimizer_s;
}

/* The expectation over the sizes of [training] sizes: time per step,
 * breakdown and work are means weighted by the sizes' probabilities,
 * throughput is E[samples] / E[time] (renewal-reward), memory is the
 * largest any size needs. */
static dnn_status predict_mixed(const dnn_strat_input *in,
                                dnn_strat_cache *cache, dnn__res *res,
                                const dnn_comm_profile *cp, dnn_prediction *out,
                                dnn_error *err) {
  const dnn_scenario *scn = in->scn;
  size_t n = scn->training.n_sizes, d = dnn_scn_data_degree(scn);
  dnn_breakdown bd;
  memset(&bd, 0, sizeof bd);
  double T = 0, U = 0, A = 0, work = 0, one = 0, nom = 0, emax = 0;
  double stale = 0, peak = -1;
  bool fits = true;
  dnn_memory mem;
  memset(&mem, 0, sizeof mem);
  size_t peak_size = 0;
  dnn_techniques tq;
  memset(&tq, 0, sizeof tq);
  for (size_t k = 0; k < n; k++) {
    const dnn_size_prob *sp = &scn->training.sizes[k];
    dnn_prediction p;
    dnn_status st = predict_size(in, cache, res, cp, sp->size, &p, err);
    if (st)
      return st;
    double w = sp->probability;
    if (k == 0) {
      *out = p; /* degrees, engine, algorithm, gradient sizes */
      tq = p.techniques;
    }
    dnn_size_step *ss = &tq.sizes[k];
    ss->size = sp->size;
    ss->probability = w;
    ss->local_batch = p.local_batch;
    ss->copies = p.techniques.copies;
    ss->iteration_s = p.iteration_s;
    ss->memory_bytes = p.memory.total_bytes;
    ss->fits_in_memory = p.fits_in_memory;
    fits = fits && p.fits_in_memory;
    dnn__breakdown_add(&bd, &p.breakdown, w);
    T += w * p.iteration_s;
    U += w * dnn__d(p.local_batch * d);
    A += w * dnn__d(p.local_batch * d * p.techniques.copies);
    work += w * p.flops_per_device_per_s * p.iteration_s;
    one += w * p.scaling_efficiency * p.iteration_s;
    nom += w * p.techniques.nominal_iteration_s;
    emax += w * p.techniques.expected_max_speed;
    stale += w * p.techniques.staleness;
    if (p.memory.total_bytes > peak) {
      peak = p.memory.total_bytes;
      mem = p.memory;
      peak_size = sp->size;
    }
    if (sp->size == scn->model.image)
      tq.inference_s_per_sample = p.techniques.inference_s_per_sample;
  }
  out->iteration_s = T;
  out->breakdown = bd;
  out->throughput_samples_per_s = U / T;
  out->memory = mem;
  out->fits_in_memory = fits;
  out->flops_per_device_per_s = work / T;
  out->scaling_efficiency = fmin(1.0, one / T);
  out->local_batch = scn->model.batch / d;
  tq.n_sizes = n;
  tq.peak_memory_size = peak_size;
  tq.unique_samples_per_step = U;
  tq.augmented_samples_per_step = A;
  tq.augmented_samples_per_s = A / T;
  tq.nominal_iteration_s = nom;
  tq.straggler_factor = nom > 0 ? T / nom : 1;
  tq.expected_max_speed = emax;
  tq.staleness = stale;
  size_t b0, m0;
  dnn_strat_size_config(scn, scn->model.image, &b0, &m0);
  tq.copies = m0;
  out->techniques = tq;
  return DNN_OK;
}

/* Both entry points: the scenario's resources (the cache's, or the
 * call's own), the step or the expectation over sizes, the one-copy step
 * batch augmentation is weighed against, and the time to the updates
 * asked for. */
static dnn_status predict(const dnn_strat_input *in, dnn_strat_cache *cache,
                          dnn_prediction *out, dnn_error *err) {
  const dnn_scenario *scn = in->scn;
  dnn_status st = dnn_scn_validate(scn, err);
  if (st)
    return st;
  /* Without a cache the call's own (on the stack: the analytic path of
   * data parallelism does not allocate). */
  dnn__res own;
  if (cache == NULL)
    memset(&own, 0, sizeof own);
  dnn__res *res = cache ? dnn__cache_res(cache) : &own;
  const dnn_comm_profile *cp = NULL;
  st = dnn__res_comm(res, scn, &cp, err);
  if (st == DNN_OK)
    st = scn->training.n_sizes > 0 ? predict_mixed(in, cache, res, cp, out, err)
                                   : predict_step(in, cache, res, cp, out, err);
  dnn_techniques *tq = &out->techniques;
  if (st == DNN_OK && tq->copies > 1) {
    /* The same step at the base size with one copy of each sample. */
    dnn_scenario one = *scn;
    one.training.n_sizes = 0;
    one.training.augment_copies = 1;
    dnn_strat_input i1 = *in;
    i1.scn = &one;
    dnn_prediction p1;
    st = predict_step(&i1, cache, res, cp, &p1, err);
    if (st == DNN_OK) {
      tq->one_copy_iteration_s = p1.iteration_s;
      tq->one_copy_scaling_efficiency = p1.scaling_efficiency;
    }
  }
  if (st == DNN_OK) {
    double U = tq->unique_samples_per_step;
    tq->steps_per_epoch = U > 0 ? dnn__d(scn->training.dataset_size) / U : 0;
    tq->epoch_s = tq->steps_per_epoch * out->iteration_s;
    tq->steps = scn->training.steps > 0
                    ? dnn__d(scn->training.steps)
                    : scn->training.epochs * tq->steps_per_epoch;
    tq->time_to_steps_s = tq->steps * out->iteration_s;
  }
  if (cache == NULL)
    dnn__res_release(&own);
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
