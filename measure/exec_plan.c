/*
 * The stage's view of the network's tensors, which both executor engines
 * build their buffers from (exec_internal.h): who consumes each layer's
 * output, which tensors the stage receives and sends, which carry a
 * gradient, and in what order the contributions to a gradient arrive in
 * the backward pass (the model's accounting, model/cost.c: the first
 * contribution writes the gradient, later ones add to it).
 */
#include "exec_internal.h"

#include "dnnsim/measure.h"

#include <string.h>

/* Whether the producer of tensor j reads its gradient. */
static bool tensor_needs_grad(const dnn_net *net, size_t j) {
  const dnn_layer *p = dnn_net_layer(net, j);
  if (p->kind == DNN_LAYER_INPUT)
    return false;
  return p->params > 0 || p->needs_input_grad;
}

/* Whether consumer i sends a gradient contribution to its inputs. */
static bool edge_contributes(const dnn__xplan *pl, size_t i) {
  return i >= pl->first && i < pl->last &&
         dnn_net_layer(pl->net, i)->needs_input_grad;
}

static dnn_status consumers(dnn__xplan *pl, dnn_error *err) {
  size_t L = pl->L, edges = 0;
  for (size_t i = 0; i < L; i++)
    edges += dnn_net_layer(pl->net, i)->n_inputs;
  pl->cons_off = dnn_calloc(L + 1, sizeof *pl->cons_off);
  pl->cons = dnn_calloc(edges ? edges : 1, sizeof *pl->cons);
  size_t *fill = dnn_calloc(L + 1, sizeof *fill);
  if (!pl->cons_off || !pl->cons || !fill) {
    dnn_free(fill);
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory building the executor");
  }
  for (size_t i = 0; i < L; i++) {
    const dnn_layer *l = dnn_net_layer(pl->net, i);
    for (size_t k = 0; k < l->n_inputs; k++)
      pl->cons_off[l->inputs[k] + 1]++;
  }
  for (size_t i = 0; i < L; i++)
    pl->cons_off[i + 1] += pl->cons_off[i];
  for (size_t i = 0; i < L; i++) {
    const dnn_layer *l = dnn_net_layer(pl->net, i);
    for (size_t k = 0; k < l->n_inputs; k++) {
      size_t j = l->inputs[k];
      pl->cons[pl->cons_off[j] + fill[j]++] = i;
    }
  }
  dnn_free(fill);
  return DNN_OK;
}

dnn_status dnn__xplan_build(const dnn_net *net, size_t first, size_t count,
                            dnn__xplan *pl, dnn_error *err) {
  memset(pl, 0, sizeof *pl);
  pl->net = net;
  pl->L = dnn_net_layer_count(net);
  pl->first = first;
  pl->last = first + count;
  DNN_ASSERT(pl->last <= pl->L);
  dnn_status st = consumers(pl, err);
  if (st)
    return st;
  pl->t = dnn_calloc(pl->L ? pl->L : 1, sizeof *pl->t);
  pl->poff = dnn_calloc(pl->L ? pl->L : 1, sizeof *pl->poff);
  pl->pend = dnn_calloc(pl->L ? pl->L : 1, sizeof *pl->pend);
  if (!pl->t || !pl->poff || !pl->pend)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory building the executor");
  size_t ni = 0, no = 0;
  for (size_t j = 0; j < pl->last; j++) {
    dnn__xplan_tensor *t = &pl->t[j];
    bool read_here = false, read_after = false;
    for (size_t c = pl->cons_off[j]; c < pl->cons_off[j + 1]; c++) {
      size_t i = pl->cons[c];
      read_here |= i >= first && i < pl->last;
      read_after |= i >= pl->last;
    }
    t->used = j >= first || read_here || read_after;
    t->external = j < first && t->used;
    t->outgoing = t->used && read_after;
    t->needs_grad = t->used && tensor_needs_grad(net, j);
    t->only = DNN_MEAS_NONE;
    if (t->needs_grad) {
      t->contribs = t->outgoing ? 1 : 0;
      for (size_t c = pl->cons_off[j]; c < pl->cons_off[j + 1]; c++) {
        size_t i = pl->cons[c];
        if (!edge_contributes(pl, i))
          continue;
        const dnn_layer *cl = dnn_net_layer(net, i);
        for (size_t q = 0; q < cl->n_inputs; q++)
          if (cl->inputs[q] == j) {
            t->contribs++;
            t->only = i;
          }
      }
    }
    ni += t->external;
    no += t->outgoing;
  }
  pl->in = dnn_calloc(ni ? ni : 1, sizeof *pl->in);
  pl->out = dnn_calloc(no ? no : 1, sizeof *pl->out);
  if (!pl->in || !pl->out)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory building the executor");
  for (size_t j = 0; j < pl->last; j++) {
    if (pl->t[j].external)
      pl->in[pl->n_in++] = j;
    if (pl->t[j].outgoing)
      pl->out[pl->n_out++] = j;
  }
  return DNN_OK;
}

void dnn__xplan_free(dnn__xplan *pl) {
  dnn_free(pl->cons);
  dnn_free(pl->cons_off);
  dnn_free(pl->t);
  dnn_free(pl->in);
  dnn_free(pl->out);
  dnn_free(pl->poff);
  dnn_free(pl->pend);
  memset(pl, 0, sizeof *pl);
}

bool dnn__xplan_edge_first(const dnn__xplan *pl, size_t j, size_t i, size_t k) {
  if (pl->t[j].outgoing)
    return false;
  for (size_t c = pl->cons_off[j + 1]; c-- > pl->cons_off[j];) {
    size_t ci = pl->cons[c];
    if (!edge_contributes(pl, ci))
      continue;
    const dnn_layer *cl = dnn_net_layer(pl->net, ci);
    for (size_t q = 0; q < cl->n_inputs; q++)
      if (cl->inputs[q] == j)
        return ci == i && q == k;
  }
  return false;
}

dnn_status dnn__xplan_share_check(size_t nflat, int opt, size_t stride,
                                  int owner_opt, dnn_error *err) {
  if (opt == owner_opt && nflat <= stride)
    return DNN_OK;
  return DNN_FAIL(err, DNN_EINVAL,
                  "cannot share parameters: %zu floats (optimizer %d) in "
                  "storage for %zu (optimizer %d)",
                  nflat, opt, stride, owner_opt);
}

size_t dnn__xplan_label(size_t r, size_t per, size_t span, size_t classes) {
  size_t key = r / span * per + r % per;
  return (key * 2654435761u + 12345u) % classes;
}
