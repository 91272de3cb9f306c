/*
 * Search (search.h, docs/search.md): every valid hybrid configuration of a
 * scenario's model on N devices, predicted by the analytic engine from
 * cached per-layer times, the ones that do not fit in memory dropped, the
 * best few re-timed by the event simulator, ranked by time per iteration.
 *
 * Enumeration order: tensor degree, then micro-batch size, then pipeline
 * degree, schedule and virtual stages, recompute policy, ZeRO stage. The
 * per-layer table depends only on (micro-batch size, tensor degree), so
 * the cache computes each once; the balanced partition depends on (t,
 * micro-batch size, p, v, recompute) and is computed once per such group
 * and reused for every schedule and ZeRO stage (ZeRO-3's gathers, which
 * do change layer times, then keep the others' cut: an approximation of
 * the balance, not of the times). Candidates are materialised once (a few
 * tens of bytes each) so that a part of a split search is a stride.
 *
 * Ranking (dnn_search_merge) is a pure function of the results the parts
 * keep (each its best top + finalists by analytic time, its own best
 * finalists simulated), which is why splitting over processes gives the
 * same answer as one process: the global best F by analytic time are
 * among the parts' own best F, and the global best K non-finalists among
 * their best K + F.
 *
 * Invariant: after a table is cached, evaluating a candidate does not
 * allocate (the stage table lives in the cache's scratch).
 */
#include "internal.h"

#include "dnnsim/search.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One candidate, compactly. */
typedef struct cand {
  unsigned t, p, d, mbs, v;
  unsigned char schedule, recompute, zero;
} cand;

struct dnn_search {
  dnn_strat_input in; /* with the private scenario */
  dnn_scenario scn;   /* edited for every candidate */
  dnn_search_params par;
  dnn_strat_cache *cache;
  const dnn_comm_profile *cp; /* the cache's, from [cluster] comm_profile */
  cand *cands;
  size_t n_cands, cap_cands, next;
  size_t keep; /* results kept: top + finalists */
  dnn_search_result *res;
  size_t n_res;
  dnn_search_stats stats;
  /* Partition reuse: the group of the last built cut. */
  cand group;
  bool have_group;
  size_t *first;
  size_t first_cap;
  bool finished;
};

dnn_search_params dnn_search_default_params(void) {
  dnn_search_params p;
  memset(&p, 0, sizeof p);
  p.top = 10;
  p.finalists = 3;
  p.sim_max_tasks = (size_t)1 << 18;
  p.max_virtual = 4;
  p.parts = 1;
  return p;
}

/* ---- Enumeration --------------------------------------------------------- */

static size_t count_kind(const dnn_net *net, dnn_layer_kind k) {
  size_t n = 0, L = dnn_net_layer_count(net);
  for (size_t i = 0; i < L; i++)
    n += dnn_net_layer(net, i)->kind == k;
  return n;
}

static size_t count_weighted(const dnn_net *net) {
  size_t n = 0, L = dnn_net_layer_count(net);
  for (size_t i = 0; i < L; i++)
    n += dnn_net_layer(net, i)->params > 0;
  return n;
}

/* Whether V virtual stages may cut the network: whole transformer blocks
 * each (Megatron-LM: layers divisible by p v), else a layer with weights
 * each. */
static bool stages_ok(size_t blocks, size_t weighted, size_t V) {
  if (blocks > 0)
    return blocks % V == 0;
  return V <= (weighted ? weighted : 1);
}

static bool push(dnn_search *s, const cand *c) {
  if (s->n_cands == s->cap_cands) {
    void *p = s->cands;
    if (!dnn__grow(&p, &s->cap_cands, s->n_cands + 1, sizeof *s->cands))
      return false;
    s->cands = p;
  }
  s->cands[s->n_cands++] = *c;
  return true;
}

static int cmp_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return (x > y) - (x < y);
}

/* Every valid candidate, in the order of the file header. */
static dnn_status enumerate(dnn_search *s, dnn_error *err) {
  const dnn_net *net = s->in.net;
  size_t N = s->par.devices, dpn = s->in.cluster.devices_per_node;
  size_t B = s->scn.model.batch;
  size_t blocks = count_kind(net, DNN_LAYER_ATTN_SCORES);
  size_t weighted = count_weighted(net);
  size_t maxt = s->par.max_tensor ? s->par.max_tensor : dpn;
  /* Candidate micro-batch sizes: divisors of any local batch B / d. */
  size_t mbs_set[256], n_mbs = 0;
  for (size_t d = 1; d <= N; d++) {
    if (N % d || B % d)
      continue;
    size_t b = B / d;
    for (size_t u = 1; u <= b && n_mbs < DNN_ARRAY_LEN(mbs_set); u++) {
      if (b % u)
        continue;
      bool seen = false;
      for (size_t k = 0; k < n_mbs && !seen; k++)
        seen = mbs_set[k] == u;
      if (!seen)
        mbs_set[n_mbs++] = u;
    }
  }
  qsort(mbs_set, n_mbs, sizeof mbs_set[0], cmp_size);
  for (size_t t = 1; t <= maxt && t <= N; t++) {
    if (N % t || dpn % t)
      continue;
    s->scn.parallelism.tensor = t;
    s->scn.parallelism.pipeline = 1;
    s->scn.parallelism.virtual_stages = 1;
    s->scn.training.zero = 0;
    if (dnn__hybrid_check(&s->in, NULL) != DNN_OK)
      continue; /* heads or sequence not divisible by t */
    for (size_t k = 0; k < n_mbs; k++) {
      size_t mbs = mbs_set[k];
      for (size_t p = 1; p <= N / t; p++) {
        if ((N / t) % p || !stages_ok(blocks, weighted, p))
          continue;
        size_t d = N / (t * p);
        if (B % d || (B / d) % mbs)
          continue;
        size_t m = B / d / mbs;
        cand c = {(unsigned)t, (unsigned)p,       (unsigned)d, (unsigned)mbs,
                  1,           DNN_SCHEDULE_1F1B, 0,           0};
        for (int sc = 0; sc < 3; sc++) {
          if (p == 1 && sc != DNN_SCHEDULE_1F1B)
            continue;
          size_t v0 = sc == DNN_SCHEDULE_INTERLEAVED ? 2 : 1;
          size_t v1 = sc == DNN_SCHEDULE_INTERLEAVED ? s->par.max_virtual : 1;
          for (size_t v = v0; v <= v1; v++) {
            if (sc == DNN_SCHEDULE_INTERLEAVED &&
                (m % p || !stages_ok(blocks, weighted, p * v)))
              continue;
            for (int rc = 0; rc < 3; rc++) {
              size_t zmax = d <= 1 ? 0 : p > 1 ? 1 : 3;
              for (size_t z = 0; z <= zmax; z++) {
                c.schedule = (unsigned char)sc;
                c.v = (unsigned)v;
                c.recompute = (unsigned char)rc;
                c.zero = (unsigned char)z;
                if (!push(s, &c))
                  return DNN_FAIL(err, DNN_ENOMEM,
                                  "out of memory listing %zu candidates",
                                  s->n_cands);
              }
            }
          }
        }
      }
    }
  }
  return DNN_OK;
}

/* ---- Results ------------------------------------------------------------- */

static void config_of(const cand *c, dnn_search_result *r) {
  memset(r, 0, sizeof *r);
  r->data = c->d;
  r->tensor = c->t;
  r->pipeline = c->p;
  r->microbatch_size = c->mbs;
  r->virtual_stages = c->v;
  r->schedule = (dnn_schedule)c->schedule;
  r->recompute = (dnn_recompute)c->recompute;
  r->zero = c->zero;
}

/* Lexicographic on the configuration: the last tie-break. */
static int cmp_config(const dnn_search_result *a, const dnn_search_result *b) {
  const size_t x[] = {a->tensor,
                      a->pipeline,
                      a->data,
                      a->microbatch_size,
                      (size_t)a->schedule,
                      a->virtual_stages,
                      (size_t)a->recompute,
                      a->zero};
  const size_t y[] = {b->tensor,
                      b->pipeline,
                      b->data,
                      b->microbatch_size,
                      (size_t)b->schedule,
                      b->virtual_stages,
                      (size_t)b->recompute,
                      b->zero};
  for (size_t k = 0; k < DNN_ARRAY_LEN(x); k++)
    if (x[k] != y[k])
      return x[k] < y[k] ? -1 : 1;
  return 0;
}

static int cmp_analytic(const void *pa, const void *pb) {
  const dnn_search_result *a = pa, *b = pb;
  if (a->analytic_s != b->analytic_s)
    return a->analytic_s < b->analytic_s ? -1 : 1;
  return cmp_config(a, b);
}

static int cmp_final(const void *pa, const void *pb) {
  const dnn_search_result *a = pa, *b = pb;
  double x = a->prediction.iteration_s, y = b->prediction.iteration_s;
  if (x != y)
    return x < y ? -1 : 1;
  return cmp_analytic(pa, pb);
}

/* Inserts into the kept set (sorted by analytic time), dropping the
 * worst beyond `keep`. */
static void keep_result(dnn_search *s, const dnn_search_result *r) {
  if (s->n_res == s->keep && cmp_analytic(r, &s->res[s->n_res - 1]) >= 0)
    return;
  size_t k = s->n_res < s->keep ? s->n_res++ : s->keep - 1;
  while (k > 0 && cmp_analytic(r, &s->res[k - 1]) < 0) {
    s->res[k] = s->res[k - 1];
    k--;
  }
  s->res[k] = *r;
}

size_t dnn_search_merge(dnn_search_result *all, size_t n, size_t top,
                        size_t finalists) {
  qsort(all, n, sizeof *all, cmp_analytic);
  for (size_t k = 0; k < n; k++) {
    dnn_search_result *r = &all[k];
    bool final = k < finalists && r->simulated.iteration_s > 0;
    r->prediction = final ? r->simulated : r->analytic;
  }
  qsort(all, n, sizeof *all, cmp_final);
  return n < top ? n : top;
}

const char *dnn_search_label(const dnn_search_result *r, char *buf, size_t n) {
  static const char *const sched[] = {"gpipe", "1f1b", "interleaved"};
  static const char *const rec[] = {"none", "full", "selective"};
  snprintf(buf, n, "d%zu t%zu p%zu mbs%zu m%zu %s v%zu recompute=%s zero%zu",
           r->data, r->tensor, r->pipeline, r->microbatch_size, r->microbatches,
           (unsigned)r->schedule < 3 ? sched[r->schedule] : "?",
           r->virtual_stages,
           (unsigned)r->recompute < 3 ? rec[r->recompute] : "?", r->zero);
  return buf;
}

/* ---- Lifetime ------------------------------------------------------------ */

void dnn_search_free(dnn_search *s) {
  if (s == NULL)
    return;
  dnn_strat_cache_free(s->cache);
  dnn_free(s->cands);
  dnn_free(s->res);
  dnn_free(s->first);
  dnn_free(s);
}

dnn_status dnn_search_alloc(const dnn_strat_input *in,
                            const dnn_search_params *p, dnn_search **out,
                            dnn_error *err) {
  *out = NULL;
  if (p->top == 0 || p->parts == 0 || p->part >= p->parts)
    return DNN_FAIL(err, DNN_EINVAL,
                    "search: top (%zu) must be >= 1 and part (%zu) < parts "
                    "(%zu)",
                    p->top, p->part, p->parts);
  dnn_search *s = dnn_calloc(1, sizeof *s);
  if (s == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory allocating a search");
  s->par = *p;
  s->scn = *in->scn;
  s->in = *in;
  s->in.scn = &s->scn;
  size_t dpn = in->cluster.devices_per_node ? in->cluster.devices_per_node : 1;
  size_t N = p->devices ? p->devices : dnn_cluster_devices(&in->cluster);
  dnn_status st = DNN_OK;
  if (N < dpn) {
    dpn = N;
  } else if (N % dpn != 0) {
    st = DNN_FAIL(err, DNN_EINVAL,
                  "search: %zu devices are not whole nodes of %zu devices "
                  "(devices_per_node)",
                  N, dpn);
    goto fail;
  }
  s->par.devices = N;
  s->in.cluster.devices_per_node = dpn;
  s->in.cluster.nodes = N / dpn;
  s->scn.cluster.devices_per_node = dpn;
  s->scn.cluster.nodes = N / dpn;
  s->scn.parallelism.data = 0;
  s->scn.engine = DNN_ENGINE_ANALYTIC;
  s->keep = p->top + p->finalists;
  s->res = dnn_calloc(s->keep, sizeof *s->res);
  if (s->res == NULL || dnn_strat_cache_alloc(&s->cache, err)) {
    st = DNN_FAIL(err, DNN_ENOMEM, "out of memory allocating a search");
    goto fail;
  }
  if ((st = dnn__res_comm(dnn__cache_res(s->cache), &s->scn, &s->cp, err)))
    goto fail;
  if ((st = enumerate(s, err)))
    goto fail;
  if (s->n_cands == 0) {
    char where[DNN_SCN_PATH_MAX + 64];
    st = DNN_FAIL(
        err, DNN_EINVAL,
        "%s: no configuration of %zu devices splits a global "
        "batch of %zu (data must divide it)",
        dnn_scn_key_origin(in->scn, "model", "batch", where, sizeof where), N,
        in->scn->model.batch);
    goto fail;
  }
  s->stats.candidates = s->n_cands;
  s->next = p->part;
  *out = s;
  return DNN_OK;
fail:
  dnn_search_free(s);
  return st;
}

void dnn_search_progress(const dnn_search *s, size_t *done, size_t *total) {
  *done = s->next < s->n_cands ? s->next : s->n_cands;
  *total = s->n_cands;
}

dnn_search_stats dnn_search_get_stats(const dnn_search *s) {
  return s->stats;
}

/* ---- Evaluation ---------------------------------------------------------- */

static void apply(dnn_search *s, const cand *c) {
  dnn_scenario *scn = &s->scn;
  scn->parallelism.tensor = c->t;
  scn->parallelism.pipeline = c->p;
  scn->parallelism.data = c->d;
  scn->parallelism.microbatches = scn->model.batch / c->d / c->mbs;
  scn->parallelism.schedule = (dnn_schedule)c->schedule;
  scn->parallelism.virtual_stages = c->v;
  scn->training.recompute = (dnn_recompute)c->recompute;
  scn->training.zero = c->zero;
}

static bool same_group(const cand *a, const cand *b) {
  return a->t == b->t && a->mbs == b->mbs && a->p == b->p && a->v == b->v &&
         a->recompute == b->recompute;
}

static void evaluate(dnn_search *s, const cand *c) {
  apply(s, c);
  s->stats.evaluated++;
  bool reuse = s->have_group && same_group(&s->group, c);
  size_t V = (size_t)c->p * c->v;
  dnn__stage_model sm;
  dnn_status st =
      dnn__stage_model_build_ex(&s->in, s->cache, s->cp, c->p, c->v,
                                reuse && V > 1 ? s->first : NULL, &sm, NULL);
  dnn__engine_result r;
  if (st == DNN_OK)
    st = dnn__analytic_run(&sm, &r, NULL);
  if (st != DNN_OK) {
    s->stats.rejected++;
    dnn__stage_model_release(&sm);
    return;
  }
  if (!reuse && V > 1) {
    void *p = s->first;
    if (dnn__grow(&p, &s->first_cap, V, sizeof *s->first)) {
      s->first = p;
      for (size_t k = 0; k < V; k++)
        s->first[k] = sm.stages[k].first;
      s->group = *c;
      s->have_group = true;
    }
  }
  dnn_search_result res;
  config_of(c, &res);
  res.microbatches = s->scn.parallelism.microbatches;
  dnn__strat_assemble(&sm, &r, &res.analytic);
  res.analytic.engine = DNN_ENGINE_ANALYTIC;
  res.analytic_s = res.analytic.iteration_s;
  res.prediction = res.analytic;
  dnn__stage_model_release(&sm);
  if (!res.analytic.fits_in_memory)
    return;
  s->stats.fit++;
  keep_result(s, &res);
}

bool dnn_search_step(dnn_search *s, size_t n) {
  for (size_t k = 0; k < n && s->next < s->n_cands; k++) {
    evaluate(s, &s->cands[s->next]);
    s->next += s->par.parts;
  }
  return s->next < s->n_cands;
}

/* Re-times result r with the event simulator, when its graph is small
 * enough. */
static dnn_status simulate(dnn_search *s, dnn_search_result *r,
                           dnn_error *err) {
  cand c = {(unsigned)r->tensor,         (unsigned)r->pipeline,
            (unsigned)r->data,           (unsigned)r->microbatch_size,
            (unsigned)r->virtual_stages, (unsigned char)r->schedule,
            (unsigned char)r->recompute, (unsigned char)r->zero};
  apply(s, &c);
  dnn__stage_model sm;
  dnn_status st =
      dnn__stage_model_build(&s->in, s->cp, c.p, c.v, NULL, &sm, err);
  if (st == DNN_OK && dnn__des_task_estimate(&sm) <= s->par.sim_max_tasks) {
    dnn__engine_result er;
    st = dnn__des_run(&sm, &er, err);
    if (st == DNN_OK) {
      dnn__strat_assemble(&sm, &er, &r->simulated);
      r->simulated.engine = DNN_ENGINE_DES;
      s->stats.simulated++;
    }
  }
  dnn__stage_model_release(&sm);
  return st;
}

dnn_status dnn_search_finish(dnn_search *s, dnn_error *err) {
  if (s->finished)
    return DNN_OK;
  s->finished = true;
  for (size_t k = 0; k < s->n_res && k < s->par.finalists; k++) {
    dnn_status st = simulate(s, &s->res[k], err);
    if (st)
      return st;
  }
  dnn_search_merge(s->res, s->n_res, s->n_res, s->par.finalists);
  s->stats.tables = 0;
  size_t hits;
  dnn_strat_cache_stats(s->cache, &s->stats.tables, &hits);
  return DNN_OK;
}

const dnn_search_result *dnn_search_results(const dnn_search *s, size_t *n) {
  *n = s->n_res;
  return s->res;
}

dnn_status dnn_search_run(const dnn_strat_input *in, const dnn_search_params *p,
                          dnn_search_result *out, size_t cap, size_t *n,
                          dnn_search_stats *stats, dnn_error *err) {
  *n = 0;
  dnn_search *s;
  dnn_status st = dnn_search_alloc(in, p, &s, err);
  if (st)
    return st;
  while (dnn_search_step(s, 4096))
    ;
  st = dnn_search_finish(s, err);
  if (st == DNN_OK) {
    size_t k = s->n_res < cap ? s->n_res : cap;
    memcpy(out, s->res, k * sizeof *out);
    *n = k;
    if (stats)
      *stats = s->stats;
  }
  dnn_search_free(s);
  return st;
}
