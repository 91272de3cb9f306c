/*
 * The task graph of one training iteration (strat.h, dnn_strat_sim), built
 * from a stage model and run on the event simulator (sim.c).
 *
 * Graph (docs/models.md §9): one simulated device per pipeline rank and
 * simulated replica. Its compute stream runs, in the schedule's order
 * (schedule.c), one task per layer for each forward step and, for each
 * backward step, a recompute task (when the policy recomputes) then one
 * task per layer in reverse order; the optimizer step comes last. A
 * forward step's last layer feeds a "send activations" transfer to the
 * next stage, whose first layer of the same micro-batch waits for it; the
 * backward mirrors it on "send gradients". Transfers move their bytes over
 * the sending device's port (intra-node) or its node's NICs (inter-node),
 * shared with every other transfer there. During the last micro-batch's
 * backward of each chunk, the layer that completes a gradient bucket
 * releases that bucket's allreduce (one task of the closed-form time,
 * exact for one collective at a time, on the rank's "allreduce" stream, in
 * the order buckets fill); the optimizer waits for the last allreduce.
 *
 * Replicas are symmetric without jitter, so only replica 0 of each stage
 * is simulated and its transfers carry the weight of the replicas that
 * share its NICs; with jitter every replica is simulated, each running
 * its compute at a speed factor drawn from its own random stream (seeded
 * by the scenario seed and the global device id; log-normal, mean 1,
 * coefficient of variation `jitter`), and an allreduce waits for the
 * bucket on every replica: stragglers hold the others up.
 *
 * A prediction with jitter averages several draws (docs/models.md §19):
 * the graph is built once and re-timed with every device's next speed
 * factor (draw k is the k-th of its stream). Row-sparse gradient
 * allgathers (§18) are one task after the buckets, released when every
 * replica's backward is done.
 *
 * Invariant: build and re-time walk the schedule in the same order, so the
 * k-th task emitted is the same task in both; re-timing only changes
 * durations, bytes and link bandwidths.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define NONE32 UINT32_MAX

/* What must not change between build and re-time. */
typedef struct signature {
  const dnn_net *net;
  size_t layers, d, t, p, v, m, d_sim;
  int schedule, recompute, dtype;
  bool overlap;
  double bucket_bytes;
  size_t dpn, nodes, nics;
  bool ports, nic_links;
} signature;

struct dnn_strat_sim {
  dnn__stage_model sm;
  bool borrowed; /* sm.stages belongs to the caller */
  dnn_sim *sim;
  size_t d_sim, n_dev, n_nodes;
  size_t *first;          /* the partition, V entries */
  size_t *compute;        /* compute stream per simulated device */
  size_t *ar;             /* allreduce stream (replica 0) or DNN_SIM_NONE */
  size_t *act, *grad;     /* send streams or DNN_SIM_NONE */
  size_t *port_link;      /* per simulated device, or DNN_SIM_NONE */
  size_t *nic_link;       /* per node, or DNN_SIM_NONE */
  uint32_t *opt_task;     /* per simulated device */
  uint32_t *last_compute; /* per simulated device, before the optimizer */
  size_t *n_buckets;      /* per rank */
  size_t *bucket_off;     /* per rank: first bucket index */
  size_t total_buckets;
  double *bk_time;           /* per bucket */
  double *bk_bytes;          /* per bucket */
  const char **bk_layer;     /* per bucket */
  double *layer_f, *layer_b; /* per layer, per micro-batch */
  signature sig;
  size_t draw;  /* Monte Carlo draw: each device's speed factor index */
  dnn__res res; /* the comm profile a simulation object loaded */
};

/* Per-build scratch: dependency lookups (build only). */
typedef struct gb {
  dnn_strat_sim *ss;
  bool retime;
  size_t cursor; /* re-time: next task id */
  dnn_error *err;
  uint32_t *fwd_in, *fwd_out, *bwd_in, *bwd_out; /* (vs m + mb) d_sim + q */
  uint32_t *closer; /* (bucket_off[r] + k) d_sim + q */
} gb;

/* ---- Emitting: add while building, re-time while re-timing ----------- */

static dnn_status emit(gb *g, const dnn_sim_task *t, uint32_t *id) {
  if (g->retime) {
    DNN_ASSERT(g->cursor < dnn_sim_task_count(g->ss->sim));
    dnn_sim_task_retime(g->ss->sim, g->cursor, t->duration_s, t->bytes);
    *id = (uint32_t)g->cursor++;
    return DNN_OK;
  }
  size_t k;
  dnn_status st = dnn_sim_add_task(g->ss->sim, t, &k, g->err);
  *id = (uint32_t)k;
  return st;
}

static dnn_status edge(gb *g, uint32_t a, uint32_t b) {
  if (g->retime || a == NONE32 || b == NONE32)
    return DNN_OK;
  return dnn_sim_add_dep(g->ss->sim, a, b, g->err);
}

static void signature_of(const dnn__stage_model *sm, size_t d_sim,
                         signature *s) {
  const dnn_cluster *cl = &sm->in.cluster;
  memset(s, 0, sizeof *s);
  s->net = sm->in.net;
  s->layers = dnn_net_layer_count(sm->in.net);
  s->d = sm->d;
  s->t = sm->t;
  s->p = sm->p;
  s->v = sm->v;
  s->m = sm->m;
  s->d_sim = d_sim;
  s->schedule = (int)sm->schedule;
  s->recompute = (int)sm->recompute;
  s->dtype = (int)sm->in.scn->model.dtype;
  s->overlap = sm->overlap;
  s->bucket_bytes = sm->bucket_bytes;
  s->dpn = cl->devices_per_node;
  s->nodes = cl->nodes;
  s->nics = cl->nics_per_node;
  s->ports = cl->intra.bandwidth_Bps > 0;
  s->nic_links = cl->nodes > 1 && cl->inter.bandwidth_Bps > 0;
}

/* ---- Links --------------------------------------------------------------- */

static dnn_status make_links(gb *g) {
  dnn_strat_sim *ss = g->ss;
  const dnn_cluster *cl = &ss->sm.in.cluster;
  double intra = cl->intra.bandwidth_Bps;
  for (size_t dv = 0; dv < ss->n_dev; dv++) {
    if (!ss->sig.ports)
      continue;
    if (g->retime) {
      dnn_sim_link_retime(ss->sim, ss->port_link[dv], intra, intra);
      continue;
    }
    char nm[64];
    snprintf(nm, sizeof nm, "port %zu", dv);
    dnn_status st =
        dnn_sim_add_link(ss->sim, nm, intra, intra, &ss->port_link[dv], g->err);
    if (st)
      return st;
  }
  double nic = dnn__d(cl->nics_per_node ? cl->nics_per_node : 1) *
               cl->inter.bandwidth_Bps;
  double cap = intra > 0 ? intra : nic;
  for (size_t n = 0; n < ss->n_nodes && ss->sig.nic_links; n++) {
    if (g->retime) {
      dnn_sim_link_retime(ss->sim, ss->nic_link[n], nic, cap);
      continue;
    }
    char nm[64];
    snprintf(nm, sizeof nm, "nics of node %zu", n);
    dnn_status st =
        dnn_sim_add_link(ss->sim, nm, nic, cap, &ss->nic_link[n], g->err);
    if (st)
      return st;
  }
  return DNN_OK;
}

/* ---- Devices and streams (build only) ---------------------------------- */

static bool rank_sends(const dnn__stage_model *sm, size_t r, bool fwd) {
  for (size_t c = 0; c < sm->v; c++) {
    size_t vs = c * sm->p + r;
    const dnn__stage *st = &sm->stages[vs];
    if (fwd && vs + 1 < sm->V && st->send_fwd.bytes > 0)
      return true;
    if (!fwd && vs > 0 && st->send_bwd.bytes > 0)
      return true;
  }
  return false;
}

static dnn_status make_devices(gb *g) {
  dnn_strat_sim *ss = g->ss;
  const dnn__stage_model *sm = &ss->sm;
  dnn_sim *sim = ss->sim;
  dnn_status st = DNN_OK;
  for (size_t r = 0; r < sm->p; r++) {
    for (size_t q = 0; q < ss->d_sim; q++) {
      size_t dv = r * ss->d_sim + q, id;
      size_t gdev = dnn__stage_device(sm, r, q);
      char nm[96];
      if (sm->p == 1)
        snprintf(nm, sizeof nm, "replica %zu (device %zu)", q, gdev);
      else
        snprintf(nm, sizeof nm, "%s %zu, replica %zu (device %zu)",
                 sm->v > 1 ? "rank" : "stage", r, q, gdev);
      if ((st = dnn_sim_add_device(sim, nm, gdev, &id, g->err)) ||
          (st = dnn_sim_add_stream(sim, id, "compute", &ss->compute[dv],
                                   g->err)))
        return st;
      ss->ar[dv] = ss->act[dv] = ss->grad[dv] = DNN_SIM_NONE;
      if (sm->d > 1 && q == 0 &&
          (st = dnn_sim_add_stream(sim, id, "allreduce", &ss->ar[dv], g->err)))
        return st;
      if (rank_sends(sm, r, true) &&
          (st = dnn_sim_add_stream(sim, id, "send activations", &ss->act[dv],
                                   g->err)))
        return st;
      if (rank_sends(sm, r, false) &&
          (st = dnn_sim_add_stream(sim, id, "send gradients", &ss->grad[dv],
                                   g->err)))
        return st;
    }
  }
  return st;
}

/* ---- The walk ------------------------------------------------------------ */

static size_t link_for(const dnn_strat_sim *ss, const dnn__xfer *x, size_t dv) {
  if (x->inter)
    return ss->nic_link[dnn__stage_node(&ss->sm, x->src_device)];
  return ss->port_link[dv];
}

static const char *layer_name(const dnn__stage_model *sm, size_t i) {
  return dnn_net_layer(sm->in.net, i)->name;
}

static dnn_status send_task(gb *g, size_t dv, size_t r, size_t r_dst, size_t q,
                            double bytes, bool fwd, size_t layer, size_t mb,
                            uint32_t after, uint32_t *id) {
  dnn_strat_sim *ss = g->ss;
  const dnn__stage_model *sm = &ss->sm;
  dnn__xfer x = dnn__stage_xfer(sm, r, r_dst, q, bytes, ss->d_sim > 1);
  dnn_sim_task t = dnn_sim_default_task();
  t.stream = fwd ? ss->act[dv] : ss->grad[dv];
  t.cat = DNN_SIM_SEND;
  t.duration_s = x.latency_s;
  t.bytes = x.bytes;
  t.link = link_for(ss, &x, dv);
  t.weight = x.weight;
  t.name = fwd ? "send activations" : "send gradients";
  t.layer = layer_name(sm, layer);
  t.microbatch = mb;
  if (t.link == DNN_SIM_NONE) {
    /* No shared link to put it on (no bandwidth given): a fixed time. */
    t.duration_s = dnn__xfer_time(&x);
    t.data_bytes = t.bytes;
    t.bytes = 0;
  }
  dnn_status st = emit(g, &t, id);
  if (st == DNN_OK)
    st = edge(g, after, *id);
  return st;
}

static dnn_status walk_device(gb *g, size_t r, size_t q) {
  dnn_strat_sim *ss = g->ss;
  const dnn__stage_model *sm = &ss->sm;
  const dnn_scenario *scn = sm->in.scn;
  size_t dv = r * ss->d_sim + q, m = sm->m, ds = ss->d_sim;
  /* Jitter: this device's compute runs at a speed drawn once per
   * iteration from its own stream, so its compute time has the given
   * coefficient of variation (mean 1). */
  double jit =
      dnn__rng_jitter_at(scn->training.seed, dnn__stage_device(sm, r, q),
                         ss->draw, scn->training.jitter);
  bool buckets = sm->overlap && sm->d > 1;
  size_t nb = 0;
  uint32_t last = NONE32;
  dnn_status st = DNN_OK;
  size_t n_ops = dnn__sched_ops(sm);
  for (size_t k = 0; k < n_ops; k++) {
    dnn__op op;
    dnn__sched_op(sm, r, k, &op);
    size_t vs = op.chunk * sm->p + r;
    const dnn__stage *sg = &sm->stages[vs];
    size_t idx = (vs * m + op.mb) * ds + q;
    size_t lo = sg->first, hi = sg->first + sg->count;
    dnn_sim_task t = dnn_sim_default_task();
    t.stream = ss->compute[dv];
    t.microbatch = op.mb;
    uint32_t id, in_id = NONE32;
    if (op.fwd) {
      t.cat = DNN_SIM_FWD;
      for (size_t i = lo; i < hi; i++) {
        t.duration_s = ss->layer_f[i] * jit;
        t.name = t.layer = layer_name(sm, i);
        if ((st = emit(g, &t, &id)))
          return st;
        if (in_id == NONE32)
          in_id = id;
        last = id;
      }
      uint32_t out = last;
      if (vs + 1 < sm->V && sg->send_fwd.bytes > 0 &&
          (st = send_task(g, dv, r, (vs + 1) % sm->p, q, sg->send_fwd.bytes,
                          true, hi - 1, op.mb, last, &out)))
        return st;
      if (!g->retime) {
        g->fwd_in[idx] = in_id;
        g->fwd_out[idx] = out;
      }
      continue;
    }
    if (sg->recompute_s > 0) {
      t.cat = DNN_SIM_RECOMPUTE;
      t.duration_s = sg->recompute_s * jit;
      t.name = NULL;
      if ((st = emit(g, &t, &id)))
        return st;
      in_id = last = id;
    }
    bool final = buckets && op.mb == m - 1;
    dnn__bucket_iter it;
    dnn__bucket bk;
    bool have = false;
    if (final) {
      dnn__bucket_begin(sm, vs, ss->layer_b, &it);
      have = dnn__bucket_next(sm, &it, &bk);
    }
    t.cat = DNN_SIM_BWD;
    for (size_t i = hi; i-- > lo;) {
      t.duration_s = ss->layer_b[i] * jit;
      t.name = t.layer = layer_name(sm, i);
      if ((st = emit(g, &t, &id)))
        return st;
      if (in_id == NONE32)
        in_id = id;
      last = id;
      if (have && i == bk.close_layer) {
        size_t b = ss->bucket_off[r] + nb++;
        DNN_ASSERT(nb <= ss->n_buckets[r]);
        ss->bk_time[b] = bk.time_s;
        ss->bk_bytes[b] = bk.bytes;
        ss->bk_layer[b] = t.layer;
        if (!g->retime)
          g->closer[b * ds + q] = id;
        have = dnn__bucket_next(sm, &it, &bk);
      }
    }
    /* Micro-batches after the first add their weight gradients into the
     * accumulated ones; charged at the end of each micro-batch's backward,
     * as the analytic engine does (stage bwd_s). */
    double acc = dnn__strat_accumulate_time(&sm->in, sg->params, m);
    if (acc > 0) {
      t.duration_s = acc * jit;
      t.name = "accumulate gradients";
      t.layer = NULL;
      if ((st = emit(g, &t, &id)))
        return st;
      last = id;
    }
    uint32_t out = last;
    if (vs > 0 && sg->send_bwd.bytes > 0 &&
        (st = send_task(g, dv, r, (vs + sm->p - 1) % sm->p, q,
                        sg->send_bwd.bytes, false, lo, op.mb, last, &out)))
      return st;
    if (!g->retime) {
      g->bwd_in[idx] = in_id;
      g->bwd_out[idx] = out;
    }
  }
  DNN_ASSERT(!buckets || nb == ss->n_buckets[r]);
  ss->last_compute[dv] = last;
  dnn_sim_task t = dnn_sim_default_task();
  t.stream = ss->compute[dv];
  t.cat = DNN_SIM_OPTIMIZER;
  t.name = "optimizer";
  t.duration_s = dnn__stage_optimizer_time(sm, r) * jit;
  return emit(g, &t, &ss->opt_task[dv]);
}

/*
 * Emits a gradient collective of rank r that takes `time_s` alone. When
 * the data-parallel group crosses nodes and the nodes' NICs are links of
 * the simulation, it becomes a transfer on the NIC link of the node of
 * the rank's first replica, sized so that alone it takes exactly time_s
 * (w flows, w the data-parallel groups that share a node's NICs, as
 * stage.c's closed form already charges): pipeline transfers on the same
 * NICs then slow it down and it slows them, by the link's processor
 * sharing (docs/models.md §9). The whole time is treated as bandwidth
 * time (the α part, small for gradient buckets, shares too). Otherwise a
 * task of fixed duration, as before.
 */
static dnn_status coll_task(gb *g, size_t r, dnn_sim_task *t, double time_s,
                            uint32_t *id) {
  dnn_strat_sim *ss = g->ss;
  const dnn__stage_model *sm = &ss->sm;
  const dnn_comm_topo *tp = &sm->dp_topo;
  bool crosses = tp->ranks > (tp->ranks_per_node ? tp->ranks_per_node : 1);
  t->duration_s = time_s;
  t->bytes = 0;
  t->link = DNN_SIM_NONE;
  t->weight = 1;
  if (crosses && ss->sig.nic_links && time_s > 0) {
    const dnn_cluster *cl = &sm->in.cluster;
    double nic = dnn__d(cl->nics_per_node ? cl->nics_per_node : 1) *
                 cl->inter.bandwidth_Bps;
    double cap = cl->intra.bandwidth_Bps > 0 ? cl->intra.bandwidth_Bps : nic;
    size_t groups = 1;
    if (sm->t > 1 && tp->ranks_per_node > 0)
      groups = cl->devices_per_node / tp->ranks_per_node;
    double w = dnn__d(groups > 1 ? groups : 1);
    t->weight = w;
    t->bytes = time_s * fmin(cap, nic / w);
    t->duration_s = 0;
    t->link = ss->nic_link[dnn__stage_node(sm, dnn__stage_device(sm, r, 0))];
  }
  return emit(g, t, id);
}

/* Allreduce tasks of every rank and their dependencies. */
static dnn_status allreduces(gb *g) {
  dnn_strat_sim *ss = g->ss;
  const dnn__stage_model *sm = &ss->sm;
  size_t ds = ss->d_sim;
  dnn_status st = DNN_OK;
  if (sm->d <= 1)
    return DNN_OK;
  for (size_t r = 0; r < sm->p; r++) {
    dnn_sim_task t = dnn_sim_default_task();
    t.stream = ss->ar[r * ds];
    t.cat = DNN_SIM_COLLECTIVE;
    t.name = "allreduce";
    uint32_t a = NONE32;
    double sparse = dnn__stage_sparse_time(sm, r);
    if (sm->overlap) {
      for (size_t k = 0; k < ss->n_buckets[r]; k++) {
        size_t b = ss->bucket_off[r] + k;
        t.data_bytes = ss->bk_bytes[b];
        t.layer = ss->bk_layer[b];
        if ((st = coll_task(g, r, &t, ss->bk_time[b], &a)))
          return st;
        for (size_t q = 0; q < ds && !g->retime; q++)
          if ((st = edge(g, g->closer[b * ds + q], a)))
            return st;
      }
      if (sm->n_sparse > 0) {
        /* The row-sparse allgathers, once backward is done (§18). */
        t.name = "allgather rows";
        t.data_bytes = 0;
        t.layer = NULL;
        if ((st = coll_task(g, r, &t, sparse, &a)))
          return st;
        for (size_t q = 0; q < ds; q++)
          if ((st = edge(g, ss->last_compute[r * ds + q], a)))
            return st;
      }
    } else {
      double bytes = dnn__stage_dense_grad_bytes(sm, r);
      t.data_bytes = bytes;
      if ((st = coll_task(g, r, &t,
                          dnn__stage_allreduce_time(sm, bytes, NULL) + sparse,
                          &a)))
        return st;
      for (size_t q = 0; q < ds; q++)
        if ((st = edge(g, ss->last_compute[r * ds + q], a)))
          return st;
    }
    for (size_t q = 0; q < ds; q++)
      if ((st = edge(g, a, ss->opt_task[r * ds + q])))
        return st;
  }
  return st;
}

/* Activations and gradients arriving from the neighbouring stages. */
static dnn_status cross_deps(gb *g) {
  const dnn__stage_model *sm = &g->ss->sm;
  size_t ds = g->ss->d_sim;
  dnn_status st = DNN_OK;
  for (size_t vs = 0; vs < sm->V; vs++)
    for (size_t j = 0; j < sm->m; j++)
      for (size_t q = 0; q < ds; q++) {
        size_t here = (vs * sm->m + j) * ds + q;
        if (vs > 0 &&
            (st = edge(g, g->fwd_out[here - sm->m * ds], g->fwd_in[here])))
          return st;
        if (vs + 1 < sm->V &&
            (st = edge(g, g->bwd_out[here + sm->m * ds], g->bwd_in[here])))
          return st;
      }
  return st;
}

/* Layer times and bucket counts (both build and re-time). */
static void precompute(dnn_strat_sim *ss) {
  const dnn__stage_model *sm = &ss->sm;
  size_t L = dnn_net_layer_count(sm->in.net);
  for (size_t i = 0; i < L; i++)
    dnn__stage_layer_time(sm, i, &ss->layer_f[i], &ss->layer_b[i]);
}

static dnn_status walk(gb *g) {
  dnn_strat_sim *ss = g->ss;
  dnn_status st = make_links(g);
  if (st == DNN_OK && !g->retime)
    st = make_devices(g);
  for (size_t r = 0; st == DNN_OK && r < ss->sm.p; r++)
    for (size_t q = 0; st == DNN_OK && q < ss->d_sim; q++)
      st = walk_device(g, r, q);
  if (st == DNN_OK)
    st = allreduces(g);
  if (st == DNN_OK && !g->retime)
    st = cross_deps(g);
  DNN_ASSERT(st != DNN_OK || !g->retime ||
             g->cursor == dnn_sim_task_count(ss->sim));
  return st;
}

/* ---- Object lifetime ----------------------------------------------------- */

void dnn_strat_sim_free(dnn_strat_sim *ss) {
  if (ss == NULL)
    return;
  if (!ss->borrowed)
    dnn__stage_model_release(&ss->sm);
  dnn__res_release(&ss->res);
  dnn_sim_free(ss->sim);
  dnn_free(ss->first);
  dnn_free(ss->compute);
  dnn_free(ss->ar);
  dnn_free(ss->act);
  dnn_free(ss->grad);
  dnn_free(ss->port_link);
  dnn_free(ss->nic_link);
  dnn_free(ss->opt_task);
  dnn_free(ss->last_compute);
  dnn_free(ss->n_buckets);
  dnn_free(ss->bucket_off);
  dnn_free(ss->bk_time);
  dnn_free(ss->bk_bytes);
  dnn_free(ss->bk_layer);
  dnn_free(ss->layer_f);
  dnn_free(ss->layer_b);
  dnn_free(ss);
}

/* Takes the stage model by value (fixing its inline stage pointer). */
static void adopt(dnn_strat_sim *ss, const dnn__stage_model *sm,
                  bool borrowed) {
  ss->sm = *sm;
  if (sm->stages == &sm->one)
    ss->sm.stages = &ss->sm.one;
  ss->borrowed = borrowed;
}

static void *zalloc(size_t n, size_t size, bool *ok) {
  void *p = dnn_calloc(n ? n : 1, size);
  if (p == NULL)
    *ok = false;
  return p;
}

static size_t count_buckets(const dnn__stage_model *sm, const double *layer_b,
                            size_t r) {
  if (!sm->overlap || sm->d <= 1)
    return 0;
  size_t n = 0;
  for (size_t c = 0; c < sm->v; c++) {
    dnn__bucket_iter it;
    dnn__bucket bk;
    dnn__bucket_begin(sm, c * sm->p + r, layer_b, &it);
    while (dnn__bucket_next(sm, &it, &bk))
      n++;
  }
  return n;
}

static size_t replicas_simulated(const dnn__stage_model *sm) {
  return sm->in.scn->training.jitter > 0 ? sm->d : 1;
}

size_t dnn__des_task_estimate(const dnn__stage_model *sm) {
  /* Layers twice per micro-batch and chunk, a recompute and two sends per
   * step; buckets (at most one per layer) and optimizers. */
  size_t per = 0, n;
  for (size_t s = 0; s < sm->V; s++) {
    size_t c = 2 * sm->stages[s].count + 3;
    if (per > SIZE_MAX - c)
      return SIZE_MAX;
    per += c;
  }
  size_t L = dnn_net_layer_count(sm->in.net);
  if (!dnn__mul_ok(per, sm->m, &n) ||
      !dnn__mul_ok(n, replicas_simulated(sm), &n) || n > SIZE_MAX - 2 * L ||
      n + 2 * L > SIZE_MAX / 2)
    return SIZE_MAX;
  return n + L + sm->p * replicas_simulated(sm);
}

/* Builds the graph of ss->sm. */
static dnn_status build(dnn_strat_sim *ss, dnn_error *err) {
  const dnn__stage_model *sm = &ss->sm;
  const dnn_scenario *scn = sm->in.scn;
  size_t est = dnn__des_task_estimate(sm);
  if (est > DNN_STRAT_SIM_MAX_TASKS) {
    char where[DNN_SCN_PATH_MAX + 64];
    return DNN_FAIL(err, DNN_ERANGE,
                    "%s: simulating %zu micro-batches through %zu stages "
                    "would take more than %zu tasks; use engine = analytic "
                    "or fewer micro-batches",
                    dnn_scn_key_origin(scn, "parallelism", "microbatches",
                                       where, sizeof where),
                    sm->m, sm->V, (size_t)DNN_STRAT_SIM_MAX_TASKS);
  }
  ss->d_sim = replicas_simulated(sm);
  ss->n_dev = sm->p * ss->d_sim;
  ss->n_nodes = sm->in.cluster.nodes;
  signature_of(sm, ss->d_sim, &ss->sig);
  size_t L = dnn_net_layer_count(sm->in.net), V = sm->V, nd = ss->n_dev;
  size_t lookups = 0;
  gb g;
  memset(&g, 0, sizeof g);
  g.ss = ss;
  g.err = err;
  bool ok = dnn__mul_ok(V * sm->m, ss->d_sim, &lookups);
  ss->first = zalloc(V, sizeof *ss->first, &ok);
  ss->compute = zalloc(nd, sizeof *ss->compute, &ok);
  ss->ar = zalloc(nd, sizeof *ss->ar, &ok);
  ss->act = zalloc(nd, sizeof *ss->act, &ok);
  ss->grad = zalloc(nd, sizeof *ss->grad, &ok);
  ss->port_link = zalloc(nd, sizeof *ss->port_link, &ok);
  ss->nic_link = zalloc(ss->n_nodes, sizeof *ss->nic_link, &ok);
  ss->opt_task = zalloc(nd, sizeof *ss->opt_task, &ok);
  ss->last_compute = zalloc(nd, sizeof *ss->last_compute, &ok);
  ss->n_buckets = zalloc(sm->p, sizeof *ss->n_buckets, &ok);
  ss->bucket_off = zalloc(sm->p, sizeof *ss->bucket_off, &ok);
  ss->layer_f = zalloc(L, sizeof *ss->layer_f, &ok);
  ss->layer_b = zalloc(L, sizeof *ss->layer_b, &ok);
  if (ok)
    dnn_sim_alloc(&ss->sim, NULL);
  if (!ok || ss->sim == NULL)
    goto nomem;
  for (size_t s = 0; s < V; s++)
    ss->first[s] = sm->stages[s].first;
  for (size_t i = 0; i < nd; i++)
    ss->port_link[i] = DNN_SIM_NONE;
  for (size_t i = 0; i < ss->n_nodes; i++)
    ss->nic_link[i] = DNN_SIM_NONE;
  precompute(ss);
  ss->total_buckets = 0;
  for (size_t r = 0; r < sm->p; r++) {
    ss->n_buckets[r] = count_buckets(sm, ss->layer_b, r);
    ss->bucket_off[r] = ss->total_buckets;
    ss->total_buckets += ss->n_buckets[r];
  }
  ss->bk_time = zalloc(ss->total_buckets, sizeof *ss->bk_time, &ok);
  ss->bk_bytes = zalloc(ss->total_buckets, sizeof *ss->bk_bytes, &ok);
  ss->bk_layer = zalloc(ss->total_buckets, sizeof *ss->bk_layer, &ok);
  g.fwd_in = zalloc(lookups, sizeof *g.fwd_in, &ok);
  g.fwd_out = zalloc(lookups, sizeof *g.fwd_out, &ok);
  g.bwd_in = zalloc(lookups, sizeof *g.bwd_in, &ok);
  g.bwd_out = zalloc(lookups, sizeof *g.bwd_out, &ok);
  g.closer = zalloc(ss->total_buckets * ss->d_sim, sizeof *g.closer, &ok);
  if (!ok)
    goto nomem;
  for (size_t i = 0; i < lookups; i++)
    g.fwd_in[i] = g.fwd_out[i] = g.bwd_in[i] = g.bwd_out[i] = NONE32;
  /* Dependencies are about twice the tasks. */
  dnn_status st = dnn_sim_reserve(ss->sim, est, 2 * est, err);
  if (st == DNN_OK)
    st = walk(&g);
  /* Prepare the engine now, so that runs never allocate. */
  if (st == DNN_OK)
    st = dnn_sim_init(ss->sim, err);
  dnn_free(g.fwd_in);
  dnn_free(g.fwd_out);
  dnn_free(g.bwd_in);
  dnn_free(g.bwd_out);
  dnn_free(g.closer);
  return st;
nomem:
  dnn_free(g.fwd_in);
  dnn_free(g.fwd_out);
  dnn_free(g.bwd_in);
  dnn_free(g.bwd_out);
  dnn_free(g.closer);
  return DNN_FAIL(err, DNN_ENOMEM,
                  "out of memory building the task graph (%zu stages, %zu "
                  "micro-batches, %zu simulated devices)",
                  V, sm->m, nd);
}

/* The stage model of a scenario, through its strategy, with the comm
 * profile the simulation object holds (loaded on first use). */
static dnn_status model_of(dnn__res *res, const dnn_strat_input *in,
                           const size_t *first, dnn__stage_model *sm,
                           dnn_error *err) {
  memset(sm, 0, sizeof *sm);
  const dnn_comm_profile *cp = NULL;
  dnn_status st = dnn_scn_validate(in->scn, err);
  if (st == DNN_OK)
    st = dnn__res_comm(res, in->scn, &cp, err);
  if (st)
    return st;
  return dnn__strat_find(in->scn)->build(in, cp, first, sm, err);
}

dnn_status dnn_strat_sim_alloc(const dnn_strat_input *in, dnn_strat_sim **out,
                               dnn_error *err) {
  *out = NULL;
  dnn_strat_sim *ss = dnn_calloc(1, sizeof *ss);
  if (ss == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory allocating a simulation");
  dnn__stage_model sm;
  dnn_status st = model_of(&ss->res, in, NULL, &sm, err);
  if (st) {
    dnn__stage_model_release(&sm);
    dnn_strat_sim_free(ss);
    return st;
  }
  adopt(ss, &sm, false);
  if ((st = build(ss, err))) {
    dnn_strat_sim_free(ss);
    return st;
  }
  *out = ss;
  return DNN_OK;
}

dnn_status dnn_strat_sim_retime(dnn_strat_sim *ss, const dnn_strat_input *in,
                                dnn_error *err) {
  dnn__stage_model sm;
  dnn_status st = model_of(&ss->res, in, ss->first, &sm, err);
  if (st) {
    dnn__stage_model_release(&sm);
    return st;
  }
  signature sig;
  signature_of(&sm, replicas_simulated(&sm), &sig);
  if (sm.V != ss->sm.V || memcmp(&sig, &ss->sig, sizeof sig) != 0) {
    dnn__stage_model_release(&sm);
    return DNN_FAIL(err, DNN_EINVAL,
                    "re-timing needs the structure the graph was built for "
                    "(network, degrees, micro-batches, schedule, recompute, "
                    "overlap, buckets, placement, dtype); build a new one");
  }
  if (!ss->borrowed)
    dnn__stage_model_release(&ss->sm);
  adopt(ss, &sm, false);
  precompute(ss);
  gb g;
  memset(&g, 0, sizeof g);
  g.ss = ss;
  g.retime = true;
  g.err = err;
  return walk(&g);
}

/* Runs the graph and reads the critical device's breakdown. */
static dnn_status run_result(dnn_strat_sim *ss, dnn__engine_result *out,
                             dnn_error *err) {
  dnn__engine_result r;
  memset(&r, 0, sizeof r);
  dnn_status st = dnn_sim_run(ss->sim, err);
  if (st)
    return st;
  /* The critical device: its compute stream (optimizer) ends last. */
  size_t crit = 0;
  double best = -1;
  for (size_t dv = 0; dv < ss->n_dev; dv++) {
    double a, b;
    dnn_sim_task_times(ss->sim, ss->opt_task[dv], &a, &b);
    if (b > best) {
      best = b;
      crit = dv;
    }
  }
  dnn_sim_breakdown bd;
  dnn_sim_stream_breakdown(ss->sim, ss->compute[crit], &bd);
  r.iteration_s = dnn_sim_makespan(ss->sim);
  r.critical_rank = crit / ss->d_sim;
  r.breakdown.forward_s = bd.busy_s[DNN_SIM_FWD];
  r.breakdown.backward_s = bd.busy_s[DNN_SIM_BWD];
  r.breakdown.recompute_s = bd.busy_s[DNN_SIM_RECOMPUTE];
  r.breakdown.optimizer_s = bd.busy_s[DNN_SIM_OPTIMIZER];
  r.breakdown.comm_exposed_s = bd.comm_exposed_s;
  r.breakdown.bubble_s = bd.idle_s;
  /* Its own transfers and collectives, and the other devices' transfers
   * it waited for (so the exposed part never exceeds the total). */
  r.breakdown.comm_s = bd.comm_s + bd.comm_waited_s;
  r.algo = dnn__stage_report_algo(&ss->sm, r.critical_rank);
  r.events = dnn_sim_events(ss->sim);
  *out = r;
  return DNN_OK;
}

dnn_status dnn_strat_sim_run(dnn_strat_sim *ss, dnn_prediction *out,
                             dnn_error *err) {
  dnn__engine_result r;
  dnn_status st = run_result(ss, &r, err);
  if (st)
    return st;
  dnn__strat_assemble(&ss->sm, &r, out);
  out->engine = DNN_ENGINE_DES;
  return DNN_OK;
}

const dnn_sim *dnn_strat_sim_engine(const dnn_strat_sim *ss) {
  return ss->sim;
}

dnn_status dnn__des_run(const dnn__stage_model *sm, dnn__engine_result *out,
                        dnn_error *err) {
  return dnn__des_run_mc(sm, 1, out, err);
}

dnn_status dnn__des_run_mc(const dnn__stage_model *sm, size_t draws,
                           dnn__engine_result *out, dnn_error *err) {
  dnn_strat_sim *ss = dnn_calloc(1, sizeof *ss);
  if (ss == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory allocating a simulation");
  adopt(ss, sm, true);
  if (!(sm->in.scn->training.jitter > 0) || draws == 0)
    draws = 1;
  dnn_status st = build(ss, err);
  if (st == DNN_OK)
    st = run_result(ss, out, err);
  /* Monte Carlo: the same graph re-timed with every device's next speed
   * factor; the mean of the draws (parts still add up). */
  double w = 1.0 / dnn__d(draws);
  dnn__engine_result acc = *out;
  if (draws > 1) {
    acc.iteration_s = w * out->iteration_s;
    memset(&acc.breakdown, 0, sizeof acc.breakdown);
    dnn__breakdown_add(&acc.breakdown, &out->breakdown, w);
  }
  for (size_t k = 1; st == DNN_OK && k < draws; k++) {
    gb g;
    memset(&g, 0, sizeof g);
    g.ss = ss;
    g.retime = true;
    g.err = err;
    ss->draw = k;
    dnn__engine_result r;
    st = walk(&g);
    if (st == DNN_OK)
      st = run_result(ss, &r, err);
    if (st == DNN_OK) {
      acc.iteration_s += w * r.iteration_s;
      dnn__breakdown_add(&acc.breakdown, &r.breakdown, w);
      acc.events += r.events;
    }
  }
  if (st == DNN_OK)
    *out = acc;
  dnn_strat_sim_free(ss);
  return st;
}
