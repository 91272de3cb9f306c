/*
 * Micro-batched convolutions for a whole network (mbatch.h): builds the
 * per-kernel cost callback from a hardware profile (or takes the caller's,
 * dnn_mb_plan_build_with), plans every convolution kernel with the chosen
 * solver, and gives the predictor the per-layer times of the plan
 * (parallelism/internal.h).
 *
 * Model (docs/models.md §10; µ-cuDNN, arXiv 1804.04806, REFERENCE §2): a
 * kernel is one pass of one convolution layer at the local batch N. Its
 * baseline is what a framework gets from cuDNN under a per-layer workspace
 * limit M: the fastest single algorithm whose workspace fits M, undivided.
 * The micro-batched time of a configuration is the sum of its micro-
 * batches' times, each a full kernel time with its own launch overhead
 * (dnn_hw_conv_time's roofline, or the profile's measured table), and its
 * workspace the largest micro-batch's. solver dp (workspace reuse) gives
 * each kernel the fastest division under M; solver ilp (workspace
 * division) gives every kernel its own buffer and shares a network-wide
 * total between them, by default M times the number of convolution layers
 * (the memory a framework with one M-sized buffer per layer would hold).
 *
 * Invariant: a plan's chosen time is never above its baseline for dp (the
 * undivided fastest configuration is one of the DP's candidates); for ilp
 * it can be, when the total is smaller than the baseline's summed
 * workspaces. Planning allocates and runs the DP per kernel: once per
 * scenario, never in a sweep's inner loop.
 */
#include "internal.h"

#include "dnnsim/mbatch.h"

#include <math.h>
#include <string.h>

#define MIB (1024.0 * 1024.0)
#define SIG_BYTES 512

struct dnn_mb_plan {
  size_t n;
  dnn_mb_kernel *kernels;
  dnn_mb_part *base_parts; /* one undivided part per kernel */
  dnn_mb_set **sets;       /* per kernel; owns the chosen parts (or NULL) */
  dnn_mb_summary sum;
};

/* What the cost callback of one kernel reads. */
typedef struct kctx {
  const dnn_net *net;
  const dnn_hw *hw;
  size_t layer;
  dnn_pass pass;
  dnn_dtype dtype;
  bool measured; /* the profile measured this kernel: only measured
                    algorithms are candidates, as in dnn_hw_layer_time */
  char sig[SIG_BYTES];
} kctx;

static double kernel_cost(void *ud, size_t batch, size_t algo,
                          double *workspace_bytes) {
  const kctx *c = ud;
  double t =
      dnn_hw_conv_time(c->hw, c->net, c->layer, c->pass, (dnn_conv_algo)algo,
                       batch, c->dtype, workspace_bytes);
  if (!c->measured || !isfinite(t))
    return t;
  double tm;
  if (!dnn_hw_kernel_lookup(c->hw, c->sig, c->pass, (dnn_conv_algo)algo,
                            c->dtype, batch, &tm))
    return INFINITY;
  return tm;
}

static void kctx_init(kctx *c, const dnn_net *net, const dnn_hw *hw,
                      size_t layer, dnn_pass pass, size_t batch,
                      dnn_dtype dtype) {
  c->net = net;
  c->hw = hw;
  c->layer = layer;
  c->pass = pass;
  c->dtype = dtype;
  c->measured = false;
  c->sig[0] = '\0';
  if (dnn_hw_kernel_count(hw) == 0)
    return;
  dnn_layer_signature(net, layer, c->sig, sizeof c->sig);
  for (size_t a = 0; a < DNN_CONV_ALGO_COUNT && !c->measured; a++) {
    double t;
    c->measured = dnn_hw_kernel_lookup(hw, c->sig, pass, (dnn_conv_algo)a,
                                       dtype, batch, &t);
  }
}

/* Whether layer i runs `pass` (a layer whose input needs no gradient has
 * no backward-data pass). */
static bool pass_runs(const dnn_net *net, size_t i, dnn_pass pass, size_t batch,
                      dnn_dtype dtype) {
  dnn_cost c;
  dnn_layer_cost(net, i, pass, batch, dtype, &c);
  return c.flops > 0 || c.bytes_read + c.bytes_written > 0;
}

void dnn_mb_plan_free(dnn_mb_plan *plan) {
  if (!plan)
    return;
  if (plan->sets)
    for (size_t k = 0; k < plan->n; k++)
      dnn_mb_set_free(plan->sets[k]);
  dnn_free(plan->sets);
  dnn_free(plan->kernels);
  dnn_free(plan->base_parts);
  dnn_free(plan);
}

static void summarise(dnn_mb_plan *plan, double total_limit,
                      size_t conv_layers) {
  dnn_mb_summary *s = &plan->sum;
  memset(s, 0, sizeof *s);
  s->kernels = plan->n;
  s->conv_layers = conv_layers;
  s->total_limit_bytes = total_limit;
  for (size_t k = 0; k < plan->n; k++) {
    const dnn_mb_kernel *kn = &plan->kernels[k];
    s->baseline_s += kn->baseline.time_s;
    s->chosen_s += kn->chosen.time_s;
    s->workspace_sum_bytes += kn->chosen.workspace_bytes;
    s->workspace_max_bytes =
        fmax(s->workspace_max_bytes, kn->chosen.workspace_bytes);
    s->baseline_workspace_max_bytes =
        fmax(s->baseline_workspace_max_bytes, kn->baseline.workspace_bytes);
  }
  s->speedup = s->chosen_s > 0 ? s->baseline_s / s->chosen_s : 1.0;
}

dnn_status dnn_mb_plan_build_with(const dnn_net *net, size_t batch,
                                  dnn_dtype dtype, const dnn_mb_params *params,
                                  dnn_mb_kernel_costs_fn kernel_costs, void *ud,
                                  dnn_mb_plan **out, dnn_error *err) {
  *out = NULL;
  double M = params->layer_workspace_bytes;
  if (batch == 0)
    return DNN_FAIL(err, DNN_EINVAL,
                    "micro-batch planning needs a batch "
                    "of at least one sample");
  if (isnan(M) || M < 0 || isnan(params->total_workspace_bytes) ||
      params->total_workspace_bytes < 0)
    return DNN_FAIL(err, DNN_EINVAL,
                    "workspace limits must be >= 0 (per layer %g bytes, "
                    "total %g bytes)",
                    M, params->total_workspace_bytes);

  size_t layers = dnn_net_layer_count(net), n = 0, conv_layers = 0;
  for (size_t i = 0; i < layers; i++) {
    if (dnn_net_layer(net, i)->kind != DNN_LAYER_CONV2D)
      continue;
    conv_layers++;
    for (int p = 0; p < DNN_PASS_COUNT; p++)
      n += pass_runs(net, i, (dnn_pass)p, batch, dtype);
  }
  double total = params->total_workspace_bytes > 0
                     ? params->total_workspace_bytes
                     : M * dnn__d(conv_layers);

  dnn_status st = DNN_OK;
  size_t *choice = NULL;
  dnn_mb_plan *plan = dnn_calloc(1, sizeof *plan);
  if (!plan)
    goto nomem;
  plan->n = n;
  if (n > 0) {
    plan->kernels = dnn_calloc(n, sizeof *plan->kernels);
    plan->base_parts = dnn_calloc(n, sizeof *plan->base_parts);
    plan->sets = dnn_calloc(n, sizeof *plan->sets);
    choice = dnn_calloc(n, sizeof *choice);
    if (!plan->kernels || !plan->base_parts || !plan->sets || !choice)
      goto nomem;
  }

  bool ilp = params->solver == DNN_MICROBATCHING_ILP;
  size_t k = 0;
  for (size_t i = 0; i < layers; i++) {
    const dnn_layer *l = dnn_net_layer(net, i);
    if (l->kind != DNN_LAYER_CONV2D)
      continue;
    for (int p = 0; p < DNN_PASS_COUNT; p++) {
      dnn_pass pass = (dnn_pass)p;
      if (!pass_runs(net, i, pass, batch, dtype))
        continue;
      dnn_mb_costs costs = {batch, DNN_CONV_ALGO_COUNT, NULL, NULL};
      bool narrowed = kernel_costs(ud, i, pass, false, &costs);
      dnn_mb_kernel *kn = &plan->kernels[k];
      kn->layer = i;
      kn->pass = pass;
      dnn_mb_set *base = NULL;
      st = dnn_mb_set_build(&costs, DNN_MB_POLICY_UNDIVIDED, M, false, &base,
                            err);
      if (st == DNN_ENOFIT && narrowed) {
        /* Nothing of the narrowed costs fits: the wider ones. */
        kernel_costs(ud, i, pass, true, &costs);
        st = dnn_mb_set_build(&costs, DNN_MB_POLICY_UNDIVIDED, M, false, &base,
                              err);
      }
      if (st == DNN_OK) {
        const dnn_mb_config *bc = dnn_mb_set_get(base, 0);
        plan->base_parts[k] = bc->parts[0];
        kn->baseline = *bc;
        kn->baseline.parts = &plan->base_parts[k];
        dnn_mb_set_free(base);
        kn->chosen = kn->baseline;
        kn->n_candidates = 1;
      }
      if (st == DNN_OK && params->solver != DNN_MICROBATCHING_NONE)
        st = dnn_mb_set_build(&costs, params->policy, ilp ? total : M, ilp,
                              &plan->sets[k], err);
      if (st) {
        dnn_error_prefix(err, "layer %s (%s)", l->name, dnn_pass_name(pass));
        goto fail;
      }
      k++;
    }
  }

  if (params->solver == DNN_MICROBATCHING_DP)
    for (k = 0; k < n; k++)
      plan->kernels[k].chosen = *dnn_mb_set_get(plan->sets[k], 0);
  if (ilp && n > 0) {
    st = dnn_mb_ilp_solve((const dnn_mb_set *const *)plan->sets, n, total,
                          params->ilp_gap, params->ilp_time_limit_s, choice,
                          err);
    if (st)
      goto fail;
    for (k = 0; k < n; k++) {
      plan->kernels[k].chosen = *dnn_mb_set_get(plan->sets[k], choice[k]);
      plan->kernels[k].n_candidates = dnn_mb_set_count(plan->sets[k]);
    }
  }
  summarise(plan, ilp ? total : M, conv_layers);
  dnn_free(choice);
  *out = plan;
  return DNN_OK;

nomem:
  st = DNN_FAIL(err, DNN_ENOMEM, "out of memory planning micro-batches");
fail:
  dnn_free(choice);
  dnn_mb_plan_free(plan);
  return st;
}

/* The profile's costs of one kernel (dnn_mb_plan_build's hook): measured
 * algorithms only where the profile measured the kernel, falling back to
 * every modelled one, as in dnn_hw_layer_time. */
typedef struct pctx {
  const dnn_net *net;
  const dnn_hw *hw;
  size_t batch;
  dnn_dtype dtype;
  kctx k;
} pctx;

static bool profile_costs(void *ud, size_t layer, dnn_pass pass, bool fallback,
                          dnn_mb_costs *costs) {
  pctx *c = ud;
  if (fallback)
    c->k.measured = false;
  else
    kctx_init(&c->k, c->net, c->hw, layer, pass, c->batch, c->dtype);
  costs->cost = kernel_cost;
  costs->ud = &c->k;
  return c->k.measured;
}

dnn_status dnn_mb_plan_build(const dnn_net *net, const dnn_hw *hw, size_t batch,
                             dnn_dtype dtype, const dnn_mb_params *params,
                             dnn_mb_plan **out, dnn_error *err) {
  pctx c = {net, hw, batch, dtype, {0}};
  return dnn_mb_plan_build_with(net, batch, dtype, params, profile_costs, &c,
                                out, err);
}

size_t dnn_mb_plan_kernel_count(const dnn_mb_plan *plan) {
  return plan->n;
}

const dnn_mb_kernel *dnn_mb_plan_kernel(const dnn_mb_plan *plan, size_t k) {
  DNN_ASSERT(k < plan->n);
  return &plan->kernels[k];
}

void dnn_mb_plan_summary(const dnn_mb_plan *plan, dnn_mb_summary *out) {
  *out = plan->sum;
}

/* ------------------------------------------------------------------------ */
/* The predictor's entry point                                               */
/* ------------------------------------------------------------------------ */

dnn_status dnn__mb_layer_times(const dnn_strat_input *in, size_t batch,
                               dnn_layer_time *out, dnn_error *err) {
  return dnn__mb_layer_times_ex(in, batch, out, NULL, err);
}

dnn_status dnn__mb_layer_times_ex(const dnn_strat_input *in, size_t batch,
                                  dnn_layer_time *out, double *ws_sum,
                                  dnn_error *err) {
  const dnn_scenario *scn = in->scn;
  dnn_strat_layer_times(in, batch, out);
  if (ws_sum) {
    size_t L = dnn_net_layer_count(in->net);
    for (size_t i = 0; i < L; i++)
      ws_sum[i] = out[i].workspace_bytes;
  }
  if (scn->training.micro_batching == DNN_MICROBATCHING_NONE)
    return DNN_OK;
  dnn_mb_params p = dnn_mb_default_params();
  p.solver = scn->training.micro_batching;
  p.policy = scn->training.mb_policy;
  p.layer_workspace_bytes = scn->hardware.workspace_MB * MIB;
  p.total_workspace_bytes = scn->training.workspace_MB * MIB;
  dnn_mb_plan *plan = NULL;
  dnn_status st = dnn_mb_plan_build(in->net, in->hw, batch, scn->model.dtype,
                                    &p, &plan, err);
  if (st)
    return st;
  size_t last = (size_t)-1;
  for (size_t k = 0; k < plan->n; k++) {
    const dnn_mb_kernel *kn = &plan->kernels[k];
    dnn_layer_time *lt = &out[kn->layer];
    if (kn->layer != last) {
      lt->workspace_bytes = 0;
      if (ws_sum)
        ws_sum[kn->layer] = 0;
      last = kn->layer;
    }
    lt->time_s[kn->pass] = kn->chosen.time_s;
    lt->algo[kn->pass] = (dnn_conv_algo)dnn_mb_config_main_algo(&kn->chosen);
    lt->workspace_bytes = fmax(lt->workspace_bytes, kn->chosen.workspace_bytes);
    if (ws_sum)
      ws_sum[kn->layer] += kn->chosen.workspace_bytes;
  }
  dnn_mb_plan_free(plan);
  return DNN_OK;
}
