/*
 * Micro-batched convolutions, per kernel (mbatch.h): the allowed
 * micro-batch sizes of each policy, and the dynamic programme that divides
 * one kernel's mini-batch of N samples into micro-batches, each with its
 * own algorithm (µ-cuDNN, Oyama et al., arXiv 1804.04806; REFERENCE §2.3 to
 * §2.5; docs/models.md §10).
 *
 * Workspace reuse (WR, pareto false): with t1(s) the fastest algorithm at
 * allowed size s whose workspace fits the limit,
 *
 *   T(b) = min( t1(b) [b in S(N)],  min_{s in S(N), s <= b/2} t1(s) + T(b-s) )
 *
 * for b = 1..N. Restricting the first micro-batch to s <= b/2 loses nothing:
 * a division into two or more parts always has a part no larger than b/2,
 * and the parts' order changes neither the time (a sum) nor the workspace
 * (a maximum, the buffer being reused). Ties prefer the smaller workspace,
 * then fewer micro-batches, then the candidate generated first.
 *
 * Workspace division (WD, pareto true): the same recursion over Pareto sets
 * P(b) of (time, workspace). Pruning dominated sub-configurations is exact
 * because combining (t, w) with (t', w') gives (t + t', max(w, w')), which
 * is monotone in both: a dominated part can only give a dominated whole.
 *
 * Invariant: every set holds at least one configuration, each
 * configuration's parts sum to N, its workspace is at most the limit, and
 * a Pareto set is sorted by workspace ascending with time strictly
 * descending. The DP allocates (it runs once per kernel and scenario).
 */
#include "internal.h"

#include "dnnsim/mbatch.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NONE ((size_t)-1)

static const char *const policy_names[] = {"undivided", "powerOfTwo", "all",
                                           NULL};

struct dnn_mb_set {
  size_t n;
  dnn_mb_config *configs;
  dnn_mb_part *parts; /* every configuration's parts, back to back */
};

dnn_mb_params dnn_mb_default_params(void) {
  dnn_mb_params p;
  memset(&p, 0, sizeof p);
  p.solver = DNN_MICROBATCHING_DP;
  p.policy = DNN_MB_POLICY_POWER_OF_TWO;
  /* µ-cuDNN's default per-layer limit (REFERENCE §2.5): 64 MiB. */
  p.layer_workspace_bytes = 64.0 * 1024.0 * 1024.0;
  p.total_workspace_bytes = 0;
  /* Stop branch and cut within 0.01% of the optimum (mbatch.h). */
  p.ilp_gap = 1e-4;
  /* Dense Pareto sets can make an exact proof take hours (docs/models.md
   * §10); a planning step should not. */
  p.ilp_time_limit_s = 20;
  return p;
}

/* ------------------------------------------------------------------------ */
/* Sizes, names, byte sizes                                                  */
/* ------------------------------------------------------------------------ */

size_t dnn_mb_sizes(dnn_mb_policy policy, size_t batch, size_t *sizes,
                    size_t cap) {
  size_t n = 0;
#define PUT(v)                                                                 \
  do {                                                                         \
    if (n < cap)                                                               \
      sizes[n] = (v);                                                          \
    n++;                                                                       \
  } while (0)
  if (batch == 0)
    return 0;
  switch (policy) {
  case DNN_MB_POLICY_UNDIVIDED:
    PUT(batch);
    break;
  case DNN_MB_POLICY_POWER_OF_TWO:
    for (size_t s = 1; s <= batch; s <<= 1) {
      PUT(s);
      if (s > batch / 2)
        break; /* the next power would pass N (or overflow) */
    }
    if (!dnn__is_pow2(batch))
      PUT(batch);
    break;
  case DNN_MB_POLICY_ALL:
  default:
    for (size_t s = 1; s <= batch; s++)
      PUT(s);
    break;
  }
#undef PUT
  return n;
}

const char *dnn_mb_policy_name(dnn_mb_policy policy) {
  if ((unsigned)policy > DNN_MB_POLICY_ALL)
    return "unknown";
  return policy_names[policy];
}

dnn_status dnn_mb_policy_parse(const char *name, dnn_mb_policy *out,
                               dnn_error *err) {
  for (size_t i = 0; policy_names[i]; i++)
    if (strcmp(name, policy_names[i]) == 0) {
      *out = (dnn_mb_policy)i;
      return DNN_OK;
    }
  const char *near = dnn_nearest_name(name, policy_names);
  return DNN_FAIL(err, DNN_ENOTFOUND,
                  "unknown micro-batch policy '%s'%s%s%s (undivided, "
                  "powerOfTwo or all)",
                  name, near ? " (did you mean '" : "", near ? near : "",
                  near ? "'?)" : "");
}

dnn_status dnn_mb_size_parse(const char *text, double *bytes, dnn_error *err) {
  static const struct {
    const char *unit;
    double scale;
  } units[] = {
      {"b", 1.0},
      {"kib", 1024.0},
      {"mib", 1024.0 * 1024.0},
      {"gib", 1024.0 * 1024.0 * 1024.0},
      {"tib", 1024.0 * 1024.0 * 1024.0 * 1024.0},
      {"kb", 1e3},
      {"mb", 1e6},
      {"gb", 1e9},
      {"tb", 1e12},
  };
  const char *s = text;
  while (isspace((unsigned char)*s))
    s++;
  char *end;
  double v = strtod(s, &end);
  if (end == s || !isfinite(v) || v < 0 || *s == '-' || *s == '+')
    return DNN_FAIL(err, DNN_EINVAL,
                    "'%s' is not a size (expected e.g. 64MiB, 8MiB, 1GiB)",
                    text);
  while (isspace((unsigned char)*end))
    end++;
  char unit[8];
  size_t k = 0;
  while (end[k] && !isspace((unsigned char)end[k]) && k + 1 < sizeof unit) {
    unit[k] = (char)tolower((unsigned char)end[k]);
    k++;
  }
  unit[k] = '\0';
  const char *rest = end + k;
  while (isspace((unsigned char)*rest))
    rest++;
  if (k == 0)
    return DNN_FAIL(err, DNN_EINVAL,
                    "size '%s' needs a unit (B, KiB, MiB, GiB, TiB, kB, MB, "
                    "GB or TB), e.g. 64MiB",
                    text);
  if (*rest == '\0')
    for (size_t i = 0; i < DNN_ARRAY_LEN(units); i++)
      if (strcmp(unit, units[i].unit) == 0) {
        *bytes = v * units[i].scale;
        return DNN_OK;
      }
  return DNN_FAIL(err, DNN_EINVAL,
                  "size '%s' has an unknown unit (B, KiB, MiB, GiB, TiB, kB, "
                  "MB, GB or TB)",
                  text);
}

/* ------------------------------------------------------------------------ */
/* The dynamic programme                                                     */
/* ------------------------------------------------------------------------ */

/* One single-kernel option: an algorithm at one allowed size. */
typedef struct opt {
  size_t algo;
  double t, ws;
} opt;

/* A configuration of b samples: its first micro-batch and a link to the
 * configuration of the remaining b - first samples. */
typedef struct entry {
  double t, ws;             /* the whole configuration */
  double t_first, ws_first; /* its first micro-batch */
  size_t first;             /* size of the first micro-batch */
  size_t algo;              /* its algorithm */
  size_t prev;              /* index in front[b - first]; NONE: single */
  size_t nmb;               /* micro-batches */
  size_t seq;               /* generation order (deterministic ties) */
} entry;

typedef struct front {
  entry *e;
  size_t n;
} front;

/* Everything the DP owns, freed in one place. */
typedef struct dp {
  size_t N, A, n_sizes;
  size_t *sizes;   /* S(N), ascending */
  size_t *size_of; /* b -> index in sizes, or NONE; N + 1 entries */
  opt *opts;       /* options of every size, back to back */
  size_t *opt_lo;  /* first option of size j; n_sizes + 1 entries */
  front *fronts;   /* N + 1 entries; [0] unused */
  entry *scratch;  /* the front being built for one b */
  size_t scratch_n, scratch_cap;
  entry *merge; /* WD: the merge target, swapped with scratch */
  size_t merge_cap;
  size_t seq; /* WR: candidates generated for this b */
  bool pareto;
} dp;

static void dp_free(dp *d) {
  if (d->fronts)
    for (size_t b = 0; b <= d->N; b++)
      dnn_free(d->fronts[b].e);
  dnn_free(d->fronts);
  dnn_free(d->sizes);
  dnn_free(d->size_of);
  dnn_free(d->opts);
  dnn_free(d->opt_lo);
  dnn_free(d->scratch);
  dnn_free(d->merge);
}

/* Order of equal candidates in WR: time, workspace, micro-batches, then
 * generation order. */
static int cmp_time(const entry *a, const entry *b) {
  if (a->t != b->t)
    return a->t < b->t ? -1 : 1;
  if (a->ws != b->ws)
    return a->ws < b->ws ? -1 : 1;
  if (a->nmb != b->nmb)
    return a->nmb < b->nmb ? -1 : 1;
  return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Order of a Pareto merge: workspace, time, micro-batches; on a full tie
 * the entry already in the front (generated first) stays. */
static bool goes_before(const entry *r, const entry *a) {
  if (r->ws != a->ws)
    return r->ws < a->ws;
  if (r->t != a->t)
    return r->t < a->t;
  return r->nmb < a->nmb;
}

static int cmp_opt_ws(const void *pa, const void *pb) {
  const opt *a = pa, *b = pb;
  if (a->ws != b->ws)
    return a->ws < b->ws ? -1 : 1;
  if (a->t != b->t)
    return a->t < b->t ? -1 : 1;
  return a->algo < b->algo ? -1 : a->algo > b->algo;
}

/* Evaluates the cost callback at every allowed size and keeps, per size,
 * the fastest fitting algorithm (WR) or the Pareto set over algorithms
 * (WD), sorted by workspace ascending. */
static dnn_status options(dp *d, const dnn_mb_costs *c, double limit,
                          dnn_error *err) {
  size_t cap = d->n_sizes * d->A;
  d->opts = dnn_calloc(cap, sizeof *d->opts);
  d->opt_lo = dnn_calloc(d->n_sizes + 1, sizeof *d->opt_lo);
  if (!d->opts || !d->opt_lo)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory for %zu options", cap);
  size_t n = 0;
  for (size_t j = 0; j < d->n_sizes; j++) {
    size_t s = d->sizes[j], lo = n;
    d->opt_lo[j] = lo;
    for (size_t a = 0; a < d->A; a++) {
      double ws = 0;
      double t = c->cost(c->ud, s, a, &ws);
      if (isnan(t) || t < 0)
        return DNN_FAIL(err, DNN_EINVAL,
                        "cost of micro-batch %zu with algorithm %zu is %g s "
                        "(must be >= 0, or infinite when it cannot run)",
                        s, a, t);
      if (!isfinite(t))
        continue;
      if (isnan(ws) || ws < 0 || isinf(ws))
        return DNN_FAIL(err, DNN_EINVAL,
                        "workspace of micro-batch %zu with algorithm %zu is "
                        "%g bytes (must be finite and >= 0)",
                        s, a, ws);
      if (ws > limit)
        continue;
      opt o = {a, t, ws};
      if (d->pareto) {
        d->opts[n++] = o;
      } else if (n == lo) {
        d->opts[n++] = o;
      } else if (t < d->opts[lo].t ||
                 (t == d->opts[lo].t && ws < d->opts[lo].ws)) {
        d->opts[lo] = o;
      }
    }
    if (d->pareto && n > lo + 1) {
      qsort(d->opts + lo, n - lo, sizeof *d->opts, cmp_opt_ws);
      size_t k = lo;
      for (size_t i = lo; i < n; i++)
        if (k == lo || d->opts[i].t < d->opts[k - 1].t)
          d->opts[k++] = d->opts[i];
      n = k;
    }
  }
  d->opt_lo[d->n_sizes] = n;
  return DNN_OK;
}

/* First index of front f whose workspace exceeds w (f sorted by ws). */
static size_t upper_ws(const front *f, double w) {
  size_t lo = 0, hi = f->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (f->e[mid].ws <= w)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static entry combine(const opt *o, size_t s, const front *f, size_t i) {
  const entry *r = &f->e[i];
  entry e;
  e.t = o->t + r->t;
  e.ws = o->ws > r->ws ? o->ws : r->ws;
  e.t_first = o->t;
  e.ws_first = o->ws;
  e.first = s;
  e.algo = o->algo;
  e.prev = i;
  e.nmb = 1 + r->nmb;
  e.seq = 0;
  return e;
}

static bool reserve(entry **buf, size_t *cap, size_t need) {
  return need <= *cap || dnn__grow((void **)buf, cap, need, sizeof **buf);
}

/* WR: keeps the better of the running best (scratch[0]) and e. */
static void consider(dp *d, entry e) {
  e.seq = d->seq++;
  if (d->scratch_n == 0 || cmp_time(&e, &d->scratch[0]) < 0)
    d->scratch[0] = e;
  d->scratch_n = 1;
}

/*
 * WD: merges into the Pareto front in d->scratch (workspace ascending,
 * time strictly descending) the configurations that start with option o
 * of size s, followed by one of front f of b - s. Those of f no larger
 * than o's workspace all give workspace o->ws, so only the fastest of them
 * (the last) can survive; the larger ones keep their own workspace. The
 * run is therefore itself a Pareto front and the merge is linear.
 */
static bool merge_run(dp *d, const opt *o, size_t s, const front *f) {
  size_t m = upper_ws(f, o->ws);
  size_t i = m > 0 ? m - 1 : 0;
  if (!reserve(&d->merge, &d->merge_cap, d->scratch_n + f->n - i))
    return false;
  const entry *A = d->scratch;
  entry *out = d->merge;
  size_t a = 0, n = 0;
  entry r = i < f->n ? combine(o, s, f, i) : (entry){0};
  while (a < d->scratch_n || i < f->n) {
    bool take_r = a == d->scratch_n || (i < f->n && goes_before(&r, &A[a]));
    const entry *e = take_r ? &r : &A[a];
    if (n == 0 || e->t < out[n - 1].t)
      out[n++] = *e;
    if (!take_r)
      a++;
    else if (++i < f->n)
      r = combine(o, s, f, i);
  }
  entry *tmp = d->scratch;
  size_t tmp_cap = d->scratch_cap;
  d->scratch = d->merge;
  d->scratch_cap = d->merge_cap;
  d->merge = tmp;
  d->merge_cap = tmp_cap;
  d->scratch_n = n;
  return true;
}

/*
 * The front of b: undivided, and every allowed first micro-batch s <= b/2
 * followed by a configuration of b - s; the best (WR) or the Pareto set
 * (WD) of those is stored as fronts[b].
 */
static bool solve_b(dp *d, size_t b) {
  d->scratch_n = 0;
  d->seq = 0;
  if (!reserve(&d->scratch, &d->scratch_cap, d->A + 1))
    return false;
  size_t j = d->size_of[b];
  if (j != NONE)
    for (size_t k = d->opt_lo[j]; k < d->opt_lo[j + 1]; k++) {
      const opt *o = &d->opts[k];
      entry e = {o->t, o->ws, o->t, o->ws, b, o->algo, NONE, 1, 0};
      if (d->pareto)
        d->scratch[d->scratch_n++] = e; /* options are a Pareto front */
      else
        consider(d, e);
    }
  for (j = 0; j < d->n_sizes && d->sizes[j] <= b / 2; j++) {
    size_t s = d->sizes[j];
    const front *f = &d->fronts[b - s];
    if (f->n == 0)
      continue;
    for (size_t k = d->opt_lo[j]; k < d->opt_lo[j + 1]; k++) {
      if (!d->pareto)
        consider(d, combine(&d->opts[k], s, f, 0));
      else if (!merge_run(d, &d->opts[k], s, f))
        return false;
    }
  }
  front *fb = &d->fronts[b];
  if (d->scratch_n == 0)
    return true;
  fb->e = dnn_malloc(d->scratch_n * sizeof *fb->e);
  if (!fb->e)
    return false;
  memcpy(fb->e, d->scratch, d->scratch_n * sizeof *fb->e);
  fb->n = d->scratch_n;
  return true;
}

static int cmp_part(const void *pa, const void *pb) {
  const dnn_mb_part *a = pa, *b = pb;
  if (a->batch != b->batch)
    return a->batch > b->batch ? -1 : 1;
  return a->algo < b->algo ? -1 : a->algo > b->algo;
}

/* Unrolls entry `idx` of front N into grouped parts appended to
 * set->parts (capacity *cap); `tmp` holds N parts. */
static bool unroll(const dp *d, size_t idx, dnn_mb_set *set, size_t *n_parts,
                   size_t *cap, dnn_mb_part *tmp, dnn_mb_config *cfg) {
  size_t b = d->N, n = 0;
  const entry *top = &d->fronts[b].e[idx];
  for (;;) {
    const entry *e = &d->fronts[b].e[idx];
    tmp[n++] = (dnn_mb_part){e->first, 1, e->algo, e->t_first, e->ws_first};
    if (e->prev == NONE)
      break;
    idx = e->prev;
    b -= e->first;
  }
  qsort(tmp, n, sizeof *tmp, cmp_part);
  size_t groups = 0;
  for (size_t i = 0; i < n; i++) {
    if (groups > 0 && tmp[groups - 1].batch == tmp[i].batch &&
        tmp[groups - 1].algo == tmp[i].algo)
      tmp[groups - 1].count++;
    else
      tmp[groups++] = tmp[i];
  }
  if (!dnn__grow((void **)&set->parts, cap, *n_parts + groups,
                 sizeof *set->parts))
    return false;
  memcpy(set->parts + *n_parts, tmp, groups * sizeof *tmp);
  cfg->time_s = top->t;
  cfg->workspace_bytes = top->ws;
  cfg->n_parts = groups;
  cfg->n_microbatches = n;
  cfg->parts = NULL; /* pointed into set->parts once it stops moving */
  *n_parts += groups;
  return true;
}

dnn_status dnn_mb_set_build(const dnn_mb_costs *costs, dnn_mb_policy policy,
                            double limit_bytes, bool pareto, dnn_mb_set **out,
                            dnn_error *err) {
  *out = NULL;
  if (costs->batch == 0 || costs->n_algos == 0)
    return DNN_FAIL(err, DNN_EINVAL,
                    "micro-batching needs a batch and an algorithm (batch "
                    "%zu, %zu algorithms)",
                    costs->batch, costs->n_algos);
  if (isnan(limit_bytes) || limit_bytes < 0)
    return DNN_FAIL(err, DNN_EINVAL,
                    "workspace limit %g bytes must be a number >= 0",
                    limit_bytes);
  dp d;
  memset(&d, 0, sizeof d);
  d.N = costs->batch;
  d.A = costs->n_algos;
  d.pareto = pareto;
  dnn_mb_set *set = NULL;
  dnn_mb_part *tmp = NULL;
  dnn_status st = DNN_OK;

  d.n_sizes = dnn_mb_sizes(policy, d.N, NULL, 0);
  d.sizes = dnn_calloc(d.n_sizes, sizeof *d.sizes);
  d.size_of = dnn_calloc(d.N + 1, sizeof *d.size_of);
  d.fronts = dnn_calloc(d.N + 1, sizeof *d.fronts);
  if (!d.sizes || !d.size_of || !d.fronts)
    goto nomem;
  dnn_mb_sizes(policy, d.N, d.sizes, d.n_sizes);
  for (size_t b = 0; b <= d.N; b++)
    d.size_of[b] = NONE;
  for (size_t j = 0; j < d.n_sizes; j++)
    d.size_of[d.sizes[j]] = j;
  if ((st = options(&d, costs, limit_bytes, err)))
    goto fail;

  for (size_t b = 1; b <= d.N; b++)
    if (!solve_b(&d, b))
      goto nomem;
  const front *top = &d.fronts[d.N];
  if (top->n == 0) {
    st = DNN_FAIL(err, DNN_ENOFIT,
                  "no division of %zu samples (policy %s) has a workspace "
                  "within %.0f bytes",
                  d.N, dnn_mb_policy_name(policy), limit_bytes);
    goto fail;
  }

  set = dnn_calloc(1, sizeof *set);
  tmp = dnn_calloc(d.N, sizeof *tmp);
  if (!set || !tmp)
    goto nomem;
  set->configs = dnn_calloc(top->n, sizeof *set->configs);
  if (!set->configs)
    goto nomem;
  size_t n_parts = 0, cap = 0;
  for (size_t i = 0; i < top->n; i++)
    if (!unroll(&d, i, set, &n_parts, &cap, tmp, &set->configs[i]))
      goto nomem;
  set->n = top->n;
  for (size_t i = 0, off = 0; i < set->n; i++) {
    set->configs[i].parts = set->parts + off;
    off += set->configs[i].n_parts;
  }
  dnn_free(tmp);
  dp_free(&d);
  *out = set;
  return DNN_OK;

nomem:
  st = DNN_FAIL(err, DNN_ENOMEM, "out of memory dividing %zu samples", d.N);
fail:
  dnn_free(tmp);
  dnn_mb_set_free(set);
  dp_free(&d);
  return st;
}

void dnn_mb_set_free(dnn_mb_set *set) {
  if (!set)
    return;
  dnn_free(set->configs);
  dnn_free(set->parts);
  dnn_free(set);
}

size_t dnn_mb_set_count(const dnn_mb_set *set) {
  return set->n;
}

const dnn_mb_config *dnn_mb_set_get(const dnn_mb_set *set, size_t i) {
  DNN_ASSERT(i < set->n);
  return &set->configs[i];
}

/* ------------------------------------------------------------------------ */
/* Reporting helpers                                                         */
/* ------------------------------------------------------------------------ */

size_t dnn_mb_config_main_algo(const dnn_mb_config *config) {
  size_t best = NONE, best_samples = 0;
  for (size_t i = 0; i < config->n_parts; i++) {
    const dnn_mb_part *p = &config->parts[i];
    size_t samples = p->count * p->batch, a = p->algo;
    /* Other parts with the same algorithm add to it. */
    for (size_t j = 0; j < config->n_parts; j++)
      if (j != i && config->parts[j].algo == a)
        samples += config->parts[j].count * config->parts[j].batch;
    if (best == NONE || samples > best_samples ||
        (samples == best_samples && a < best)) {
      best = a;
      best_samples = samples;
    }
  }
  return best;
}

const char *dnn_mb_config_format(const dnn_mb_config *config, char *buf,
                                 size_t n) {
  size_t k = 0;
  if (n == 0)
    return buf;
  buf[0] = '\0';
  for (size_t i = 0; i < config->n_parts && k < n; i++) {
    const dnn_mb_part *p = &config->parts[i];
    char other[32];
    const char *name = other;
    if (p->algo < DNN_CONV_ALGO_COUNT)
      name = dnn_conv_algo_name((dnn_conv_algo)p->algo);
    else
      snprintf(other, sizeof other, "algo%zu", p->algo);
    /* "\xc3\x97" is U+00D7, the multiplication sign, in UTF-8. */
    int w = snprintf(buf + k, n - k, "%s%zu\xc3\x97%zu %s", i ? ", " : "",
                     p->count, p->batch, name);
    if (w < 0)
      break;
    k += (size_t)w;
  }
  return buf;
}
