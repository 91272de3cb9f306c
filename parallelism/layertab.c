/*
 * Per-layer tables and their cache (strat.h dnn_strat_cache): what every
 * evaluation of a scenario sums, computed once per (network, profile,
 * cluster links, micro-batch size, dtype, workspace limit, tensor degree,
 * sequence parallelism, tensor split) and kept for sweeps and search.
 *
 * A layer's row (internal.h) is its plan (tensor.c: compute share, the
 * tensor group's collectives, convolution algorithm and workspace) turned
 * into the per-micro-batch quantities a stage adds up: forward and
 * backward time with the collectives, activation bytes kept (divided by t
 * where the split divides them, docs/models.md §11.6 and §13), what
 * selective recompute drops, trainable parameters held. The table adds
 * the bytes a pipeline cut carries (every tensor produced before the cut
 * and read after it, per tensor rank: Megatron-LM's scatter/gather
 * optimisation sends 1/t from each rank) as a difference array over the
 * cut positions, so that any partition's boundary traffic is a lookup.
 *
 * With micro-batched convolutions (µ-cuDNN, docs/models.md §10.6) the
 * rows come from the plan (dnn__mb_layer_times_ex), planned once per
 * table, never per evaluation, and under ilp a layer holds the sum of its
 * passes' workspaces. The tensor group's collectives are priced by the
 * scenario's comm profile when it has one (docs/models.md §5.8), which is
 * part of the key. The cache also keeps the scenario's resources
 * (technique.c: the comm profile, the networks at other sizes).
 *
 * Invariant: a row of a table at t = 1 without micro-batching equals
 * dnn__layer_row_plain's, so cached and uncached predictions agree to
 * rounding (sums from prefix differences; tested at 1e-12); a cache
 * lookup that hits never allocates.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

#define MIB (1024.0 * 1024.0)

/* Entries a cache keeps: a search touches one (micro-batch size, tensor
 * degree) at a time, a sweep a handful. */
#define CACHE_ENTRIES 32

/* ---- Rows ---------------------------------------------------------------- */

/* What selective recompute saves on layer i: its output, not the masks or
 * statistics it also keeps (stage.c's rule). */
static double selective_saving(const dnn_strat_input *in, size_t i,
                               size_t mbs) {
  dnn_dtype dt = in->scn->model.dtype;
  double act = dnn_layer_activation_bytes(in->net, i, mbs, dt);
  return fmin(act, dnn__layer_out_bytes(in->net, i, mbs, dt));
}

/* Row of layer i from its plan entry; divisors from the split. */
static void row_from(const dnn_strat_input *in, size_t i, size_t mbs, size_t t,
                     const dnn_layer_time *lt, dnn__layer_row *row) {
  const dnn_layer *l = dnn_net_layer(in->net, i);
  dnn_dtype dt = in->scn->model.dtype;
  double act_div, param_div;
  dnn__tp_divisors(lt->split, t, &act_div, &param_div);
  memset(row, 0, sizeof *row);
  row->comm_fwd_s = lt->comm_s[DNN_PASS_FWD];
  row->comm_bwd_s =
      lt->comm_s[DNN_PASS_BWD_DATA] + lt->comm_s[DNN_PASS_BWD_WEIGHTS];
  row->fwd_s = lt->time_s[DNN_PASS_FWD] + row->comm_fwd_s;
  row->bwd_s = lt->time_s[DNN_PASS_BWD_DATA] +
               lt->time_s[DNN_PASS_BWD_WEIGHTS] + row->comm_bwd_s;
  row->workspace_bytes = lt->workspace_bytes;
  row->workspace_held_bytes = lt->workspace_bytes;
  row->act_bytes = dnn_layer_activation_bytes(in->net, i, mbs, dt) / act_div;
  row->selective = dnn__layer_selective(in->net, i);
  if (row->selective)
    row->selective_bytes = selective_saving(in, i, mbs) / act_div;
  row->out_bytes = dnn__layer_out_bytes(in->net, i, mbs, dt) / act_div;
  if (l->kind == DNN_LAYER_INPUT)
    row->input_bytes = row->out_bytes;
  row->params = dnn__d(l->params) / param_div;
  row->group_grad_bytes = lt->group_grad_bytes;
}

void dnn__layer_row_plain(const dnn_strat_input *in, size_t i, size_t mbs,
                          dnn__layer_row *row) {
  const dnn_scenario *scn = in->scn;
  dnn_layer_time lt;
  double ws_limit = scn->hardware.workspace_MB * MIB;
  lt.workspace_bytes = 0;
  for (int p = 0; p < DNN_PASS_COUNT; p++) {
    double ws = 0;
    lt.time_s[p] = dnn_hw_layer_time(in->hw, in->net, i, (dnn_pass)p, mbs,
                                     scn->model.dtype, ws_limit, NULL, &ws);
    lt.workspace_bytes = fmax(lt.workspace_bytes, ws);
    lt.comm_s[p] = lt.comm_bytes[p] = 0;
  }
  lt.split = DNN_SPLIT_NONE;
  lt.group_grad_bytes = 0;
  row_from(in, i, mbs, 1, &lt, row);
}

void dnn__ckpt_cuts(const dnn_net *net, size_t lo, size_t hi,
                    void (*fn)(size_t k, void *ud), void *ud) {
  size_t last_add = DNN_SIM_NONE, prev = DNN_SIM_NONE;
  for (size_t i = lo; i < hi; i++) {
    dnn_layer_kind k = dnn_net_layer(net, i)->kind;
    if (k == DNN_LAYER_ADD)
      last_add = i;
    else if (k == DNN_LAYER_ATTN_SCORES && last_add != DNN_SIM_NONE &&
             last_add + 1 != prev) {
      prev = last_add + 1;
      fn(prev, ud);
    }
  }
}

static void collect_cut(size_t k, void *ud) {
  dnn__layer_tab *tab = ud;
  tab->ckpt[tab->n_ckpt++] = k;
}

void dnn__net_tied(const dnn_net *net, size_t *fc, size_t *emb) {
  *fc = *emb = DNN_SIM_NONE;
  size_t L = dnn_net_layer_count(net);
  for (size_t i = 0; i < L; i++) {
    const dnn_layer *l = dnn_net_layer(net, i);
    if (l->kind != DNN_LAYER_FC || !l->p.fc.tied || l->in.rank == 0)
      continue;
    size_t width = l->in.dim[l->in.rank - 1];
    for (size_t j = 0; j < i; j++) {
      const dnn_layer *e = dnn_net_layer(net, j);
      if (e->kind == DNN_LAYER_EMBEDDING && !e->p.embedding.frozen &&
          e->p.embedding.vocab == l->p.fc.out_features &&
          e->p.embedding.dim == width) {
        *fc = i;
        *emb = j;
        return;
      }
    }
  }
}

/* ---- Tables -------------------------------------------------------------- */

void dnn__layer_tab_release(dnn__layer_tab *tab) {
  if (tab == NULL)
    return;
  dnn_free(tab->row);
  dnn_free(tab->cut_fwd);
  dnn_free(tab->cut_bwd);
  dnn_free(tab->ckpt);
  for (int q = 0; q < DNN__PRE_COUNT; q++)
    dnn_free(tab->pre[q]);
  for (int q = 0; q < DNN__MAX_COUNT; q++)
    dnn_free(tab->max[q]);
  memset(tab, 0, sizeof *tab);
}

double dnn__tab_sum(const dnn__layer_tab *tab, int q, size_t a, size_t b) {
  return tab->pre[q][b] - tab->pre[q][a];
}

double dnn__tab_max(const dnn__layer_tab *tab, int q, size_t a, size_t b) {
  DNN_ASSERT(a < b && b <= tab->layers);
  unsigned j = dnn__floor_log2(b - a);
  const double *lv = tab->max[q] + (size_t)j * tab->layers;
  double x = lv[a], y = lv[b - ((size_t)1 << j)];
  return x > y ? x : y;
}

/* The prefix sums and sparse tables of the rows. */
static void fill_ranges(dnn__layer_tab *tab) {
  size_t L = tab->layers;
  for (int q = 0; q < DNN__PRE_COUNT; q++)
    tab->pre[q][0] = 0;
  for (size_t i = 0; i < L; i++) {
    const dnn__layer_row *r = &tab->row[i];
    double v[DNN__PRE_COUNT] = {
        [DNN__PRE_FWD] = r->fwd_s,
        [DNN__PRE_BWD] = r->bwd_s,
        [DNN__PRE_COMM_FWD] = r->comm_fwd_s,
        [DNN__PRE_COMM_BWD] = r->comm_bwd_s,
        [DNN__PRE_PARAMS] = r->params,
        [DNN__PRE_ACT] = r->act_bytes,
        [DNN__PRE_GROUP] = r->group_grad_bytes,
        [DNN__PRE_INPUT] = r->input_bytes,
        [DNN__PRE_SEL] = r->selective ? r->selective_bytes : 0,
        [DNN__PRE_SEL_FWD] = r->selective ? r->fwd_s : 0,
        [DNN__PRE_SEL_COMM_FWD] = r->selective ? r->comm_fwd_s : 0,
        [DNN__PRE_WS_HELD] = r->workspace_held_bytes,
    };
    for (int q = 0; q < DNN__PRE_COUNT; q++)
      tab->pre[q][i + 1] = tab->pre[q][i] + v[q];
    tab->max[DNN__MAX_WS][i] = r->workspace_bytes;
    tab->max[DNN__MAX_SEL][i] = r->selective ? r->selective_bytes : 0;
    tab->max[DNN__MAX_PARAMS][i] = r->params;
  }
  for (size_t j = 1; j < tab->levels; j++) {
    size_t h = (size_t)1 << (j - 1);
    for (int q = 0; q < DNN__MAX_COUNT; q++) {
      const double *lo = tab->max[q] + (j - 1) * L;
      double *lv = tab->max[q] + j * L;
      for (size_t i = 0; i + 2 * h <= L; i++)
        lv[i] = lo[i] > lo[i + h] ? lo[i] : lo[i + h];
    }
  }
}

bool dnn__layer_sparse_grad(const dnn_net *net, size_t i) {
  const dnn_layer *l = dnn_net_layer(net, i);
  if (l->kind != DNN_LAYER_EMBEDDING && l->kind != DNN_LAYER_NCE_LOSS)
    return false;
  size_t elems = 0;
  return dnn_layer_grad_rows(net, i, 1, &elems) > 0 && elems > 0;
}

dnn_status dnn__layer_tab_build(const dnn_strat_input *in,
                                const dnn_comm_profile *cp, size_t mbs,
                                size_t t, dnn__layer_tab *tab, dnn_error *err) {
  const dnn_net *net = in->net;
  const dnn_scenario *scn = in->scn;
  dnn_dtype dt = scn->model.dtype;
  size_t L = dnn_net_layer_count(net);
  bool mb = scn->training.micro_batching != DNN_MICROBATCHING_NONE;
  memset(tab, 0, sizeof *tab);
  if (mb && t > 1) {
    char where[DNN_SCN_PATH_MAX + 64];
    return DNN_FAIL(err, DNN_EUNSUPPORTED,
                    "%s: micro-batched convolutions are planned for whole "
                    "layers; with tensor = %zu use micro_batching = none",
                    dnn_scn_key_origin(scn, "training", "micro_batching", where,
                                       sizeof where),
                    t);
  }
  tab->layers = L;
  tab->row = dnn_malloc(L * sizeof *tab->row);
  tab->cut_fwd = dnn_calloc(L + 1, sizeof *tab->cut_fwd);
  tab->cut_bwd = dnn_calloc(L + 1, sizeof *tab->cut_bwd);
  tab->ckpt = dnn_malloc((L ? L : 1) * sizeof *tab->ckpt);
  dnn_layer_time *plan = dnn_malloc(L * sizeof *plan);
  size_t *last = dnn_malloc(L * sizeof *last);
  double *ws_sum = mb ? dnn_malloc((L ? L : 1) * sizeof *ws_sum) : NULL;
  tab->levels = dnn__floor_log2(L ? L : 1) + 1;
  bool ok = true;
  for (int q = 0; q < DNN__PRE_COUNT; q++)
    ok = (tab->pre[q] = dnn_malloc((L + 1) * sizeof(double))) != NULL && ok;
  for (int q = 0; q < DNN__MAX_COUNT; q++)
    ok = (tab->max[q] =
              dnn_calloc(tab->levels * (L ? L : 1), sizeof(double))) != NULL &&
         ok;
  if (!ok || !tab->row || !tab->cut_fwd || !tab->cut_bwd || !tab->ckpt ||
      !plan || !last || (mb && !ws_sum)) {
    dnn_free(plan);
    dnn_free(last);
    dnn_free(ws_sum);
    dnn__layer_tab_release(tab);
    return DNN_FAIL(err, DNN_ENOMEM,
                    "out of memory building the per-layer table of %zu "
                    "layers",
                    L);
  }
  if (mb) {
    /* µ-cuDNN: the convolutions' planned times and workspaces (t = 1). */
    dnn_status st = dnn__mb_layer_times_ex(in, mbs, plan, ws_sum, err);
    if (st) {
      dnn_free(plan);
      dnn_free(last);
      dnn_free(ws_sum);
      dnn__layer_tab_release(tab);
      return st;
    }
    tab->ws_sum = scn->training.micro_batching == DNN_MICROBATCHING_ILP;
  } else {
    dnn__tp_plan_cp(in, cp, mbs, t, plan);
  }
  double td = dnn__d(t);
  for (size_t i = 0; i < L; i++) {
    row_from(in, i, mbs, t, &plan[i], &tab->row[i]);
    if (tab->ws_sum)
      tab->row[i].workspace_held_bytes = ws_sum[i];
    last[i] = i;
    if (dnn__layer_sparse_grad(net, i) &&
        tab->n_sparse < DNN_ARRAY_LEN(tab->sparse))
      tab->sparse[tab->n_sparse++] = i;
  }
  /* One unsplit device: the plan at t = 1 (the same rows when t = 1). */
  for (size_t i = 0; i < L; i++) {
    if (t == 1) {
      tab->one_fb_s += tab->row[i].fwd_s + tab->row[i].bwd_s;
      tab->one_fwd_s += tab->row[i].fwd_s;
      continue;
    }
    dnn__layer_row r1;
    dnn__layer_row_plain(in, i, mbs, &r1);
    tab->one_fb_s += r1.fwd_s + r1.bwd_s;
    tab->one_fwd_s += r1.fwd_s;
  }
  /* Cuts: producer i's output crosses every cut in (i, last consumer]. */
  for (size_t j = 0; j < L; j++) {
    const dnn_layer *l = dnn_net_layer(net, j);
    for (size_t k = 0; k < l->n_inputs; k++)
      if (last[l->inputs[k]] < j)
        last[l->inputs[k]] = j;
  }
  for (size_t i = 0; i < L; i++) {
    if (last[i] == i)
      continue;
    double bytes = dnn__layer_out_bytes(net, i, mbs, dt) / td;
    bool grad = dnn_net_layer(net, i)->kind != DNN_LAYER_INPUT;
    tab->cut_fwd[i + 1] += bytes;
    tab->cut_fwd[last[i] + 1] -= bytes;
    if (grad) {
      tab->cut_bwd[i + 1] += bytes;
      tab->cut_bwd[last[i] + 1] -= bytes;
    }
  }
  for (size_t k = 1; k <= L; k++) {
    tab->cut_fwd[k] += tab->cut_fwd[k - 1];
    tab->cut_bwd[k] += tab->cut_bwd[k - 1];
  }
  /* Sums of many terms cancelling: clear the rounding left where nothing
   * crosses. */
  for (size_t k = 0; k <= L; k++) {
    if (tab->cut_fwd[k] < 1e-9)
      tab->cut_fwd[k] = 0;
    if (tab->cut_bwd[k] < 1e-9)
      tab->cut_bwd[k] = 0;
  }
  dnn_net_totals tot;
  dnn_net_totals_get(net, mbs, dt, &tot);
  tab->flops_mb = tot.flops[DNN_PASS_FWD] + tot.flops[DNN_PASS_BWD_DATA] +
                  tot.flops[DNN_PASS_BWD_WEIGHTS];
  tab->params = dnn__d(tot.params);
  dnn__net_tied(net, &tab->tied_fc, &tab->tied_emb);
  fill_ranges(tab);
  dnn__ckpt_cuts(net, 0, L, collect_cut, tab);
  dnn_free(plan);
  dnn_free(last);
  dnn_free(ws_sum);
  return DNN_OK;
}

/* ---- The cache ----------------------------------------------------------- */

/* Everything a table depends on besides the network's structure. */
typedef struct tab_key {
  const dnn_net *net;
  const dnn_hw *hw;
  const dnn_comm_profile *cp; /* t > 1: prices the group's collectives */
  size_t layers, kernel_rows;
  dnn_hw_params hwp;
  size_t mbs, t;
  int dtype, split;
  bool sp;
  double ws_limit_bytes;
  int mb, mb_policy; /* micro-batched convolutions */
  double mb_total_bytes;
  dnn_comm_topo tp_topo;
} tab_key;

typedef struct entry {
  bool used;
  unsigned long long stamp; /* last use, for replacement */
  tab_key key;
  dnn__layer_tab tab;
} entry;

/* Collective costs met before: a direct-mapped table (a search meets the
 * same few bucket sizes on the same groups again and again). */
#define COMM_SLOTS 256

typedef struct comm_slot {
  bool used;
  const dnn_comm_profile *cp;
  int op, algo;
  double bytes;
  dnn_comm_topo topo;
  dnn_comm_cost cost;
} comm_slot;

/* Balanced cuts met before (a sweep or search evaluates many schedules
 * and ZeRO stages of one cut). */
#define PARTITIONS 8

typedef struct part_slot {
  unsigned long long tab_id, stamp;
  size_t V;
  int recompute;
  size_t *first;
  size_t cap;
} part_slot;

struct dnn_strat_cache {
  entry e[CACHE_ENTRIES];
  part_slot part[PARTITIONS];
  unsigned long long next_id;
  comm_slot comm[COMM_SLOTS];
  unsigned long long clock;
  size_t misses, hits;
  /* Stage-table scratch. */
  dnn__stage *stages;
  size_t stages_cap;
  size_t *first;
  size_t first_cap;
  double *cost;
  size_t cost_cap;
  dnn__res res; /* comm profile, networks of other sizes */
};

dnn_status dnn_strat_cache_alloc(dnn_strat_cache **out, dnn_error *err) {
  *out = dnn_calloc(1, sizeof **out);
  if (*out == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory allocating a cache");
  return DNN_OK;
}

void dnn_strat_cache_clear(dnn_strat_cache *c) {
  if (c == NULL)
    return;
  for (size_t k = 0; k < PARTITIONS; k++)
    c->part[k].tab_id = 0;
  for (size_t k = 0; k < COMM_SLOTS; k++)
    c->comm[k].used = false;
  for (size_t k = 0; k < CACHE_ENTRIES; k++) {
    dnn__layer_tab_release(&c->e[k].tab);
    c->e[k].used = false;
  }
  dnn__res_release(&c->res);
}

dnn__res *dnn__cache_res(dnn_strat_cache *c) {
  return &c->res;
}

void dnn_strat_cache_free(dnn_strat_cache *c) {
  if (c == NULL)
    return;
  dnn_strat_cache_clear(c);
  for (size_t k = 0; k < PARTITIONS; k++)
    dnn_free(c->part[k].first);
  dnn_free(c->stages);
  dnn_free(c->first);
  dnn_free(c->cost);
  dnn_free(c);
}

void dnn_strat_cache_stats(const dnn_strat_cache *c, size_t *misses,
                           size_t *hits) {
  *misses = c->misses;
  *hits = c->hits;
}

static void key_of(const dnn_strat_input *in, const dnn_comm_profile *cp,
                   size_t mbs, size_t t, tab_key *k) {
  const dnn_scenario *scn = in->scn;
  memset(k, 0, sizeof *k); /* padding too: keys compare with memcmp */
  k->net = in->net;
  k->hw = in->hw;
  k->layers = dnn_net_layer_count(in->net);
  k->kernel_rows = dnn_hw_kernel_count(in->hw);
  memcpy(&k->hwp, dnn_hw_get(in->hw), sizeof k->hwp);
  k->mbs = mbs;
  k->t = t;
  k->dtype = (int)scn->model.dtype;
  k->ws_limit_bytes = scn->hardware.workspace_MB * MIB;
  if (scn->training.micro_batching != DNN_MICROBATCHING_NONE) {
    k->mb = (int)scn->training.micro_batching;
    k->mb_policy = (int)scn->training.mb_policy;
    k->mb_total_bytes = scn->training.workspace_MB * MIB;
  }
  if (t > 1) {
    k->cp = cp;
    k->split = scn->parallelism.tensor_split;
    k->sp = scn->parallelism.sequence_parallel;
    k->tp_topo = dnn__tp_topo(in, t);
  }
}

dnn_status dnn__cache_tab(dnn_strat_cache *c, const dnn_strat_input *in,
                          const dnn_comm_profile *cp, size_t mbs, size_t t,
                          const dnn__layer_tab **out, dnn_error *err) {
  tab_key key;
  key_of(in, cp, mbs, t, &key);
  c->clock++;
  for (size_t k = 0; k < CACHE_ENTRIES; k++) {
    entry *e = &c->e[k];
    if (e->used && memcmp(&e->key, &key, sizeof key) == 0) {
      e->stamp = c->clock;
      c->hits++;
      *out = &e->tab;
      return DNN_OK;
    }
  }
  /* A miss: an empty entry, else the least recently used. */
  size_t victim = 0;
  for (size_t k = 0; k < CACHE_ENTRIES; k++) {
    const entry *e = &c->e[k];
    if (!e->used || (c->e[victim].used && e->stamp < c->e[victim].stamp))
      victim = k;
  }
  entry *e = &c->e[victim];
  dnn__layer_tab_release(&e->tab);
  e->used = false;
  dnn_status st = dnn__layer_tab_build(in, cp, mbs, t, &e->tab, err);
  if (st)
    return st;
  e->used = true;
  e->key = key;
  e->stamp = c->clock;
  e->tab.id = ++c->next_id;
  c->misses++;
  *out = &e->tab;
  return DNN_OK;
}

dnn_status dnn__cache_scratch(dnn_strat_cache *c, size_t V, size_t L,
                              dnn__stage **stages, size_t **first,
                              double **cost, dnn_error *err) {
  void *p = c->stages;
  if (!dnn__grow(&p, &c->stages_cap, V, sizeof *c->stages))
    goto nomem;
  c->stages = p;
  p = c->first;
  if (!dnn__grow(&p, &c->first_cap, V, sizeof *c->first))
    goto nomem;
  c->first = p;
  p = c->cost;
  if (!dnn__grow(&p, &c->cost_cap, L, sizeof *c->cost))
    goto nomem;
  c->cost = p;
  *stages = c->stages;
  *first = c->first;
  *cost = c->cost;
  return DNN_OK;
nomem:
  return DNN_FAIL(err, DNN_ENOMEM, "out of memory for a table of %zu stages",
                  V);
}

/* FNV-1a over the bytes of a value. */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 0x100000001B3ull;
  return h;
}

/* The profile's cost, else comm.h's. */
static dnn_status comm_cost(const dnn_comm_profile *cp, dnn_comm_op op,
                            dnn_comm_algo algo, double bytes,
                            const dnn_comm_topo *topo, dnn_comm_cost *out,
                            dnn_error *err) {
  if (cp && dnn__comm_profile_cost(cp, op, algo, bytes, topo, out))
    return DNN_OK;
  return dnn_comm_time(op, algo, bytes, topo, out, err);
}

dnn_status dnn__cache_comm_time(dnn_strat_cache *c, const dnn_comm_profile *cp,
                                dnn_comm_op op, dnn_comm_algo algo,
                                double bytes, const dnn_comm_topo *topo,
                                dnn_comm_cost *out, dnn_error *err) {
  if (c == NULL)
    return comm_cost(cp, op, algo, bytes, topo, out, err);
  int o = (int)op, a = (int)algo;
  uint64_t h = 0xCBF29CE484222325ull;
  h = fnv(h, &o, sizeof o);
  h = fnv(h, &a, sizeof a);
  h = fnv(h, &bytes, sizeof bytes);
  h = fnv(h, &topo->ranks, sizeof topo->ranks);
  h = fnv(h, &topo->inter, sizeof topo->inter);
  /* Four ways per set: equal sizes alternating in one slot would miss
   * every time. */
  size_t set = (size_t)(h % (COMM_SLOTS / 4)) * 4;
  comm_slot *sl = NULL;
  for (size_t w = 0; w < 4; w++) {
    comm_slot *x = &c->comm[set + w];
    if (x->used && x->op == o && x->algo == a && x->bytes == bytes &&
        x->cp == cp && memcmp(&x->topo, topo, sizeof *topo) == 0) {
      *out = x->cost;
      return DNN_OK;
    }
    if (sl == NULL && !x->used)
      sl = x;
  }
  if (sl == NULL)
    sl = &c->comm[set + (size_t)((h >> 32) % 4)];
  dnn_status st = comm_cost(cp, op, algo, bytes, topo, out, err);
  if (st)
    return st;
  sl->used = true;
  sl->cp = cp;
  sl->op = o;
  sl->algo = a;
  sl->bytes = bytes;
  sl->topo = *topo;
  sl->cost = *out;
  return DNN_OK;
}

bool dnn__cache_partition_get(const dnn_strat_cache *c,
                              const dnn__layer_tab *tab, size_t V,
                              int recompute, size_t *first) {
  for (size_t k = 0; k < PARTITIONS; k++) {
    const part_slot *p = &c->part[k];
    if (p->tab_id == tab->id && p->tab_id != 0 && p->V == V &&
        p->recompute == recompute) {
      memcpy(first, p->first, V * sizeof *first);
      return true;
    }
  }
  return false;
}

void dnn__cache_partition_put(dnn_strat_cache *c, const dnn__layer_tab *tab,
                              size_t V, int recompute, const size_t *first) {
  size_t victim = 0;
  for (size_t k = 1; k < PARTITIONS; k++)
    if (c->part[k].stamp < c->part[victim].stamp)
      victim = k;
  part_slot *p = &c->part[victim];
  void *mem = p->first;
  if (!dnn__grow(&mem, &p->cap, V, sizeof *p->first)) {
    p->tab_id = 0;
    return;
  }
  p->first = mem;
  memcpy(p->first, first, V * sizeof *first);
  p->tab_id = tab->id;
  p->V = V;
  p->recompute = recompute;
  p->stamp = ++c->clock;
}
