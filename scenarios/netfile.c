/*
 * Network INI files (docs/networks.md): one [layer.NAME] section per layer
 * with `type =`, its hyper-parameters and `input =` naming its producers
 * (default: the layer of the previous section). Sections may come in any
 * order; layers are added to the network in a topological order, so the
 * builder's "inputs already exist" rule holds and cycles are reported.
 *
 * Invariant: every error names the file, the line and the layer section.
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define MAX_PAIRS 32

typedef struct pair {
  const char *key;
  const char *value;
  int line;
} pair;

typedef struct raw_layer {
  const char *name; /* without "layer." */
  int line;         /* of the section header */
  pair pairs[MAX_PAIRS];
  size_t n_pairs;
  const char *inputs[DNN_LAYER_MAX_INPUTS];
  size_t in_ix[DNN_LAYER_MAX_INPUTS]; /* the inputs' indices in layers */
  size_t n_inputs;
  int input_line;
} raw_layer;

/* A layer name and its index, sorted by name for binary search. */
typedef struct name_ix {
  const char *name;
  size_t i;
} name_ix;

typedef struct net_ctx {
  const char *file;
  dnn__arena arena;
  raw_layer *layers;
  size_t n, cap;
  name_ix *index; /* n entries once every section is read */
  char net_name[DNN_SCN_NAME_MAX];
  bool in_network_section;
} net_ctx;

/* clang-format off */
static const char *const layer_keys[] = {
    "type",   "input",  "shape",     "tokens",       "out_channels",
    "kernel", "stride", "padding",   "dilation",     "groups",
    "bias",   "output", "ceil_mode", "out_features", "act",
    "p",      "vocab",  "dim",       "hidden",       "return_sequences",
    "axis",   "heads",  "negatives", "frozen",       "tied",
    "tp",     "start",  "length",    NULL};
/* clang-format on */

static dnn_status on_pair(void *user, const char *section, const char *key,
                          const char *value, int line, dnn_error *err) {
  net_ctx *c = user;
  if (key == NULL) {
    if (strcmp(section, "network") == 0) {
      c->in_network_section = true;
      return DNN_OK;
    }
    c->in_network_section = false;
    if (strncmp(section, "layer.", 6) != 0 || section[6] == '\0')
      return DNN__INI_FAIL(err, DNN_EPARSE, c->file, line, section, NULL,
                           "unknown section; expected [network] or "
                           "[layer.NAME]");
    /* A name given twice is found once all sections are read (build),
     * in O(n log n): deep networks have tens of thousands of layers. */
    if (!dnn__grow((void **)&c->layers, &c->cap, c->n + 1, sizeof(raw_layer)))
      return DNN_FAIL(err, DNN_ENOMEM, "%s: out of memory", c->file);
    raw_layer *l = &c->layers[c->n++];
    memset(l, 0, sizeof *l);
    l->name = dnn__arena_strdup(&c->arena, section + 6);
    l->line = line;
    return l->name ? DNN_OK : DNN_FAIL(err, DNN_ENOMEM, "out of memory");
  }
  if (section[0] == '\0')
    return DNN__INI_FAIL(err, DNN_EPARSE, c->file, line, NULL, NULL,
                         "'%s' appears before any [layer.NAME] section", key);
  if (c->in_network_section) {
    if (strcmp(key, "name") != 0)
      return DNN__INI_FAIL(err, DNN_EPARSE, c->file, line, section, key,
                           "unknown key; [network] has only 'name'");
    snprintf(c->net_name, sizeof c->net_name, "%s", value);
    return DNN_OK;
  }
  DNN_ASSERT(c->n > 0); /* ini.c reports a header before its first pair */
  raw_layer *l = &c->layers[c->n - 1];
  bool known = false;
  for (size_t i = 0; layer_keys[i]; i++)
    known = known || strcmp(layer_keys[i], key) == 0;
  if (!known) {
    const char *near = dnn_nearest_name(key, layer_keys);
    return DNN__INI_FAIL(err, DNN_EPARSE, c->file, line, section, key,
                         "unknown key%s%s%s", near ? " (did you mean '" : "",
                         near ? near : "", near ? "'?)" : "");
  }
  for (size_t i = 0; i < l->n_pairs; i++)
    if (strcmp(l->pairs[i].key, key) == 0)
      return DNN__INI_FAIL(err, DNN_EPARSE, c->file, line, section, key,
                           "given twice (first at line %d)", l->pairs[i].line);
  if (l->n_pairs == MAX_PAIRS)
    return DNN__INI_FAIL(err, DNN_EPARSE, c->file, line, section, key,
                         "too many keys");
  pair *p = &l->pairs[l->n_pairs++];
  p->key = dnn__arena_strdup(&c->arena, key);
  p->value = dnn__arena_strdup(&c->arena, value);
  p->line = line;
  if (p->key == NULL || p->value == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory");
  return DNN_OK;
}

/* ---- Values ----------------------------------------------------------------
 */

/* "a" or "a x b" / "a,b" into two sizes (a single value fills both). */
static dnn_status parse_pair_sizes(const char *text, size_t *a, size_t *b,
                                   dnn_error *err) {
  char buf[64];
  snprintf(buf, sizeof buf, "%s", text);
  char *sep = strpbrk(buf, "x,");
  if (sep == NULL) {
    dnn_status st = dnn__parse_size(buf, a, err);
    *b = *a;
    return st;
  }
  *sep = '\0';
  dnn_status st = dnn__parse_size(buf, a, err);
  if (st == DNN_OK)
    st = dnn__parse_size(sep + 1, b, err);
  return st;
}

/* "C,H,W" / "T" / "F" shapes of an input layer. */
static dnn_status parse_shape(const char *text, dnn_shape *s, dnn_error *err) {
  memset(s, 0, sizeof *s);
  char buf[128];
  snprintf(buf, sizeof buf, "%s", text);
  char *save = NULL;
  for (char *tok = strtok_r(buf, ",x", &save); tok;
       tok = strtok_r(NULL, ",x", &save)) {
    if (s->rank == DNN_SHAPE_MAX_RANK)
      return DNN_FAIL(err, DNN_EINVAL, "at most %d dimensions",
                      DNN_SHAPE_MAX_RANK);
    size_t v;
    dnn_status st = dnn__parse_size(tok, &v, err);
    if (st)
      return st;
    if (v == 0)
      return DNN_FAIL(err, DNN_EINVAL, "dimensions must be positive");
    s->dim[s->rank++] = v;
  }
  if (s->rank == 0)
    return DNN_FAIL(err, DNN_EINVAL, "expected C,H,W or a length");
  return DNN_OK;
}

/* Applies one key to the spec. Messages carry no position. */
static dnn_status apply(dnn_layer_spec *sp, const char *key, const char *v,
                        dnn_error *err) {
  dnn_layer_kind k = sp->kind;
  bool conv = k == DNN_LAYER_CONV2D;
  bool pool = k == DNN_LAYER_MAXPOOL || k == DNN_LAYER_AVGPOOL;
  dnn_status st = DNN_OK;
  bool b;
  if (strcmp(key, "shape") == 0 && k == DNN_LAYER_INPUT)
    return parse_shape(v, &sp->input_shape, err);
  if (strcmp(key, "tokens") == 0 && k == DNN_LAYER_INPUT) {
    memset(&sp->input_shape, 0, sizeof sp->input_shape);
    sp->input_shape.rank = 1;
    sp->input_shape.tokens = true;
    if ((st = dnn__parse_size(v, &sp->input_shape.dim[0], err)) == DNN_OK &&
        sp->input_shape.dim[0] == 0)
      return DNN_FAIL(err, DNN_ERANGE, "a sequence needs at least 1 token");
    return st;
  }
  if (strcmp(key, "out_channels") == 0 && conv)
    return dnn__parse_size(v, &sp->p.conv.out_channels, err);
  if (strcmp(key, "kernel") == 0 && conv)
    return parse_pair_sizes(v, &sp->p.conv.kernel_h, &sp->p.conv.kernel_w, err);
  if (strcmp(key, "kernel") == 0 && pool)
    return parse_pair_sizes(v, &sp->p.pool.kernel_h, &sp->p.pool.kernel_w, err);
  if (strcmp(key, "stride") == 0 && conv)
    return parse_pair_sizes(v, &sp->p.conv.stride_h, &sp->p.conv.stride_w, err);
  if (strcmp(key, "stride") == 0 && pool)
    return parse_pair_sizes(v, &sp->p.pool.stride_h, &sp->p.pool.stride_w, err);
  if (strcmp(key, "padding") == 0 && conv)
    return parse_pair_sizes(v, &sp->p.conv.pad_h, &sp->p.conv.pad_w, err);
  if (strcmp(key, "padding") == 0 && pool)
    return parse_pair_sizes(v, &sp->p.pool.pad_h, &sp->p.pool.pad_w, err);
  if (strcmp(key, "dilation") == 0 && conv)
    return parse_pair_sizes(v, &sp->p.conv.dilation_h, &sp->p.conv.dilation_w,
                            err);
  if (strcmp(key, "groups") == 0 && conv)
    return dnn__parse_size(v, &sp->p.conv.groups, err);
  if (strcmp(key, "bias") == 0 && (conv || k == DNN_LAYER_FC)) {
    if ((st = dnn__parse_bool(v, &b, err)) == DNN_OK) {
      if (conv)
        sp->p.conv.bias = b;
      else
        sp->p.fc.bias = b;
    }
    return st;
  }
  if (strcmp(key, "ceil_mode") == 0 && pool) {
    if ((st = dnn__parse_bool(v, &b, err)) == DNN_OK)
      sp->p.pool.ceil_mode = b;
    return st;
  }
  if (strcmp(key, "output") == 0 && k == DNN_LAYER_ADAPTIVE_AVGPOOL)
    return parse_pair_sizes(v, &sp->p.pool.out_h, &sp->p.pool.out_w, err);
  if (strcmp(key, "out_features") == 0 && k == DNN_LAYER_FC)
    return dnn__parse_size(v, &sp->p.fc.out_features, err);
  if (strcmp(key, "act") == 0 && k == DNN_LAYER_ACTIVATION)
    return dnn_act_parse(v, &sp->p.act.act, err);
  if (strcmp(key, "p") == 0 && k == DNN_LAYER_DROPOUT) {
    if ((st = dnn__parse_double(v, &sp->p.dropout.p, err)) == DNN_OK &&
        (sp->p.dropout.p < 0 || sp->p.dropout.p >= 1))
      return DNN_FAIL(err, DNN_ERANGE, "p must be in [0, 1)");
    return st;
  }
  if (strcmp(key, "vocab") == 0 && k == DNN_LAYER_EMBEDDING)
    return dnn__parse_size(v, &sp->p.embedding.vocab, err);
  if (strcmp(key, "dim") == 0 && k == DNN_LAYER_EMBEDDING)
    return dnn__parse_size(v, &sp->p.embedding.dim, err);
  if (strcmp(key, "hidden") == 0 && k == DNN_LAYER_LSTM)
    return dnn__parse_size(v, &sp->p.lstm.hidden, err);
  if (strcmp(key, "return_sequences") == 0 && k == DNN_LAYER_LSTM) {
    if ((st = dnn__parse_bool(v, &b, err)) == DNN_OK)
      sp->p.lstm.return_sequences = b;
    return st;
  }
  if (strcmp(key, "axis") == 0 && k == DNN_LAYER_CONCAT)
    return dnn__parse_size(v, &sp->p.concat.axis, err);
  if (strcmp(key, "tp") == 0)
    return dnn_tp_role_parse(v, &sp->tp, err);
  if (strcmp(key, "heads") == 0 &&
      (k == DNN_LAYER_ATTN_SCORES || k == DNN_LAYER_ATTN_CONTEXT))
    return dnn__parse_size(v, &sp->p.attn.heads, err);
  if (strcmp(key, "vocab") == 0 && k == DNN_LAYER_NCE_LOSS)
    return dnn__parse_size(v, &sp->p.nce.vocab, err);
  if (strcmp(key, "negatives") == 0 && k == DNN_LAYER_NCE_LOSS)
    return dnn__parse_size(v, &sp->p.nce.negatives, err);
  if (strcmp(key, "start") == 0 && k == DNN_LAYER_SLICE)
    return dnn__parse_size(v, &sp->p.slice.start, err);
  if (strcmp(key, "length") == 0 && k == DNN_LAYER_SLICE)
    return dnn__parse_size(v, &sp->p.slice.length, err);
  if (strcmp(key, "frozen") == 0 && k == DNN_LAYER_EMBEDDING)
    return dnn__parse_bool(v, &sp->p.embedding.frozen, err);
  if (strcmp(key, "tied") == 0 && k == DNN_LAYER_FC)
    return dnn__parse_bool(v, &sp->p.fc.tied, err);
  return DNN_FAIL(err, DNN_EPARSE, "not a key of a %s layer",
                  dnn_layer_kind_name(k));
}

/* `type` value: a layer kind, or an activation name as a shortcut. */
static dnn_status parse_type(const char *v, dnn_layer_spec *sp,
                             dnn_error *err) {
  dnn_act act;
  if (dnn_act_parse(v, &act, NULL) == DNN_OK) {
    *sp = dnn_layer_default_spec(DNN_LAYER_ACTIVATION);
    sp->p.act.act = act;
    return DNN_OK;
  }
  dnn_layer_kind kind;
  dnn_status st = dnn_layer_kind_parse(v, &kind, err);
  if (st == DNN_OK)
    *sp = dnn_layer_default_spec(kind);
  return st;
}

static dnn_status split_inputs(net_ctx *c, raw_layer *l, const char *v,
                               int line, dnn_error *err) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", v);
  char *save = NULL;
  for (char *tok = strtok_r(buf, ", ", &save); tok;
       tok = strtok_r(NULL, ", ", &save)) {
    if (l->n_inputs == DNN_LAYER_MAX_INPUTS)
      return DNN__INI_FAIL(err, DNN_EPARSE, c->file, line, l->name, "input",
                           "at most %d inputs", DNN_LAYER_MAX_INPUTS);
    l->inputs[l->n_inputs] = dnn__arena_strdup(&c->arena, tok);
    if (l->inputs[l->n_inputs] == NULL)
      return DNN_FAIL(err, DNN_ENOMEM, "out of memory");
    l->n_inputs++;
  }
  l->input_line = line;
  return DNN_OK;
}

static int name_ix_cmp(const void *a, const void *b) {
  const name_ix *x = a, *y = b;
  int d = strcmp(x->name, y->name);
  if (d)
    return d;
  return x->i < y->i ? -1 : x->i > y->i;
}

/* Sorts the names; a name given twice is an error at its second header. */
static dnn_status index_names(net_ctx *c, dnn_error *err) {
  c->index = dnn_calloc(c->n, sizeof *c->index);
  if (c->index == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "%s: out of memory", c->file);
  for (size_t i = 0; i < c->n; i++)
    c->index[i] = (name_ix){c->layers[i].name, i};
  qsort(c->index, c->n, sizeof *c->index, name_ix_cmp);
  size_t dup = SIZE_MAX, first = 0;
  for (size_t k = 1; k < c->n; k++)
    if (strcmp(c->index[k].name, c->index[k - 1].name) == 0 &&
        (dup == SIZE_MAX || c->index[k].i < dup)) {
      dup = c->index[k].i;
      first = c->index[k - 1].i;
    }
  if (dup == SIZE_MAX)
    return DNN_OK;
  char section[DNN_SCN_NAME_MAX * 2];
  snprintf(section, sizeof section, "layer.%s", c->layers[dup].name);
  return DNN__INI_FAIL(err, DNN_EPARSE, c->file, c->layers[dup].line, section,
                       NULL, "layer defined twice (first at line %d)",
                       c->layers[first].line);
}

/* Index of the layer called `name`, or SIZE_MAX. */
static size_t find_raw(const net_ctx *c, const char *name) {
  size_t lo = 0, hi = c->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp(c->index[mid].name, name) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < c->n && strcmp(c->index[lo].name, name) == 0 ? c->index[lo].i
                                                           : SIZE_MAX;
}

/* Builds the spec of one raw layer and adds it to the network. */
static dnn_status add_layer(net_ctx *c, raw_layer *l, size_t image,
                            dnn_net *net, dnn_error *err) {
  char section[DNN_SCN_NAME_MAX * 2];
  snprintf(section, sizeof section, "layer.%s", l->name);
  const pair *type = NULL;
  for (size_t i = 0; i < l->n_pairs; i++)
    if (strcmp(l->pairs[i].key, "type") == 0)
      type = &l->pairs[i];
  if (type == NULL)
    return DNN__INI_FAIL(err, DNN_EPARSE, c->file, l->line, section, "type",
                         "missing; every layer needs a type");
  dnn_layer_spec sp;
  dnn_error inner;
  dnn_error_clear(&inner);
  if (parse_type(type->value, &sp, &inner))
    return DNN__INI_FAIL(err, DNN_EPARSE, c->file, type->line, section, "type",
                         "%s", inner.msg);
  sp.name = l->name;
  for (size_t i = 0; i < l->n_pairs; i++) {
    const pair *p = &l->pairs[i];
    if (strcmp(p->key, "type") == 0 || strcmp(p->key, "input") == 0)
      continue;
    dnn_status st = apply(&sp, p->key, p->value, &inner);
    if (st)
      return DNN__INI_FAIL(err, st == DNN_ERANGE ? DNN_ERANGE : DNN_EPARSE,
                           c->file, p->line, section, p->key, "%s", inner.msg);
  }
  if (sp.kind == DNN_LAYER_INPUT) {
    if (sp.input_shape.rank == 0)
      return DNN__INI_FAIL(err, DNN_EPARSE, c->file, l->line, section, "shape",
                           "missing; an input layer needs shape = C,H,W (an "
                           "image), shape = F (features) or tokens = T");
    if (image > 0 && sp.input_shape.rank == 3) {
      sp.input_shape.dim[1] = image;
      sp.input_shape.dim[2] = image;
    }
  }
  for (size_t i = 0; i < l->n_inputs; i++)
    sp.inputs[i] = l->inputs[i];
  sp.n_inputs = l->n_inputs;
  dnn_status st = dnn_net_add(net, &sp, NULL, &inner);
  if (st)
    return DNN__INI_FAIL(err, st, c->file, l->line, section, NULL, "%s",
                         inner.msg);
  return DNN_OK;
}

/* A layer's pass and its position in the file: the order it is added in. */
typedef struct pass_ix {
  size_t pass, i;
} pass_ix;

static int pass_ix_cmp(const void *a, const void *b) {
  const pass_ix *x = a, *y = b;
  if (x->pass != y->pass)
    return x->pass < y->pass ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

/*
 * Adds the layers in the order of repeated passes over the file that add
 * every layer whose producers are already added: layer v goes in pass
 * P(v) = max over its inputs u of P(u) + [u after v in the file] (0 for
 * none), and within a pass in file order. P comes from one topological
 * sweep (Kahn's algorithm over the producer -> consumer edges), so the
 * whole build is O(n log n) rather than O(n^3) for a deep network written
 * bottom-up. Layers left over form or follow a cycle.
 */
static dnn_status add_all(net_ctx *c, size_t image, dnn_net *net,
                          dnn_error *err) {
  size_t n = c->n, edges = 0;
  for (size_t i = 0; i < n; i++)
    edges += c->layers[i].n_inputs;
  size_t *start = dnn_calloc(n + 1, sizeof *start);
  size_t *fill = dnn_calloc(n + 1, sizeof *fill);
  size_t *cons = dnn_calloc(edges + 1, sizeof *cons);
  size_t *indeg = dnn_calloc(n, sizeof *indeg);
  size_t *queue = dnn_calloc(n, sizeof *queue);
  pass_ix *order = dnn_calloc(n, sizeof *order);
  dnn_status st = DNN_OK;
  if (!start || !fill || !cons || !indeg || !queue || !order) {
    st = DNN_FAIL(err, DNN_ENOMEM, "%s: out of memory", c->file);
    goto done;
  }
  for (size_t v = 0; v < n; v++) {
    for (size_t j = 0; j < c->layers[v].n_inputs; j++)
      start[c->layers[v].in_ix[j] + 1]++;
    indeg[v] = c->layers[v].n_inputs;
    order[v] = (pass_ix){0, v};
  }
  for (size_t u = 0; u < n; u++)
    start[u + 1] += start[u];
  for (size_t v = 0; v < n; v++)
    for (size_t j = 0; j < c->layers[v].n_inputs; j++) {
      size_t u = c->layers[v].in_ix[j];
      cons[start[u] + fill[u]++] = v;
    }
  size_t head = 0, tail = 0;
  for (size_t v = 0; v < n; v++)
    if (indeg[v] == 0)
      queue[tail++] = v;
  while (head < tail) {
    size_t u = queue[head++];
    for (size_t k = start[u]; k < start[u + 1]; k++) {
      size_t v = cons[k];
      size_t p = order[u].pass + (u > v ? 1 : 0);
      if (p > order[v].pass)
        order[v].pass = p;
      if (--indeg[v] == 0)
        queue[tail++] = v;
    }
  }
  /* Layers in no pass (a cycle) sort last and are not added. */
  for (size_t v = 0; v < n; v++)
    if (indeg[v] > 0)
      order[v].pass = SIZE_MAX;
  qsort(order, n, sizeof *order, pass_ix_cmp);
  for (size_t k = 0; k < tail; k++)
    if ((st = add_layer(c, &c->layers[order[k].i], image, net, err)))
      goto done;
  if (tail < n) {
    raw_layer *l = &c->layers[order[tail].i]; /* the first in the file */
    char section[DNN_SCN_NAME_MAX * 2];
    snprintf(section, sizeof section, "layer.%s", l->name);
    st = DNN__INI_FAIL(err, DNN_EINVAL, c->file, l->input_line, section,
                       "input", "the inputs form a cycle");
  }
done:
  dnn_free(start);
  dnn_free(fill);
  dnn_free(cons);
  dnn_free(indeg);
  dnn_free(queue);
  dnn_free(order);
  return st;
}

static dnn_status build(net_ctx *c, size_t image, dnn_net *net,
                        dnn_error *err) {
  if (c->n == 0)
    return DNN_FAIL(err, DNN_EPARSE, "%s: no [layer.NAME] sections", c->file);
  dnn_status ist = index_names(c, err);
  if (ist)
    return ist;
  /* Inputs: explicit, or the previous section's layer. */
  for (size_t i = 0; i < c->n; i++) {
    raw_layer *l = &c->layers[i];
    for (size_t j = 0; j < l->n_pairs; j++) {
      if (strcmp(l->pairs[j].key, "input") == 0) {
        dnn_status st =
            split_inputs(c, l, l->pairs[j].value, l->pairs[j].line, err);
        if (st)
          return st;
      }
    }
    bool is_input = false;
    for (size_t j = 0; j < l->n_pairs; j++)
      is_input = is_input || (strcmp(l->pairs[j].key, "type") == 0 &&
                              strcmp(l->pairs[j].value, "input") == 0);
    if (l->n_inputs == 0 && !is_input && i > 0) {
      l->inputs[0] = c->layers[i - 1].name;
      l->n_inputs = 1;
      l->input_line = l->line;
    }
    for (size_t j = 0; j < l->n_inputs; j++) {
      l->in_ix[j] = find_raw(c, l->inputs[j]);
      if (l->in_ix[j] == SIZE_MAX) {
        char section[DNN_SCN_NAME_MAX * 2];
        snprintf(section, sizeof section, "layer.%s", l->name);
        const char *names[256];
        size_t m = 0;
        for (size_t k = 0; k < c->n && m + 1 < DNN_ARRAY_LEN(names); k++)
          names[m++] = c->layers[k].name;
        names[m] = NULL;
        const char *near = dnn_nearest_name(l->inputs[j], names);
        return DNN__INI_FAIL(err, DNN_EINVAL, c->file, l->input_line, section,
                             "input", "no layer named '%s'%s%s%s", l->inputs[j],
                             near ? " (did you mean '" : "", near ? near : "",
                             near ? "'?)" : "");
      }
    }
  }
  return add_all(c, image, net, err);
}

dnn_status dnn_scn_load_net_string(const char *text, const char *name,
                                   size_t image, dnn_net **out,
                                   dnn_error *err) {
  *out = NULL;
  net_ctx c;
  memset(&c, 0, sizeof c);
  c.file = name;
  dnn__arena_init(&c.arena, 8192);
  dnn_net *net = NULL;
  dnn_status st = dnn__ini_parse(text, name, on_pair, &c, err);
  if (st)
    goto fail;
  const char *base = strrchr(name, '/');
  st = dnn_net_alloc(c.net_name[0] ? c.net_name : (base ? base + 1 : name),
                     &net, err);
  if (st)
    goto fail;
  st = build(&c, image, net, err);
  if (st)
    goto fail;
  dnn_free(c.layers);
  dnn_free(c.index);
  dnn__arena_release(&c.arena);
  *out = net;
  return DNN_OK;
fail:
  dnn_net_free(net);
  dnn_free(c.index);
  dnn_free(c.layers);
  dnn__arena_release(&c.arena);
  return st;
}

dnn_status dnn_scn_load_net(const char *path, size_t image, dnn_net **out,
                            dnn_error *err) {
  char *text;
  *out = NULL;
  dnn_status st = dnn_file_read_all(path, &text, NULL, err);
  if (st)
    return st;
  st = dnn_scn_load_net_string(text, path, image, out, err);
  dnn_free(text);
  return st;
}
