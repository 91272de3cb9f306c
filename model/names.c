/*
 * Names of the model enumerations (dtype, pass, layer kind, operation
 * class, activation, convolution algorithm, tensor-parallel role) and their
 * parsers.
 *
 * Invariant: every table is expanded from the X-macro list in model.h, so
 * names, enum values and the opclass of each kind never drift apart. A
 * parse error suggests the nearest valid name (edit distance, core.h) and
 * otherwise lists the valid names.
 */
#include "internal.h"

#include <string.h>

/* ---- Tables ---------------------------------------------------------------
 */

static const char *const dtype_names[] = {
#define X_(id, name, bytes) name,
    DNN_DTYPE_LIST(X_)
#undef X_
        NULL};

static const size_t dtype_sizes[] = {
#define X_(id, name, bytes) bytes,
    DNN_DTYPE_LIST(X_)
#undef X_
};

static const char *const pass_names[] = {"fwd", "bwd_data", "bwd_weights",
                                         NULL};

static const char *const kind_names[] = {
#define X_(id, name, cls) name,
    DNN_LAYER_KIND_LIST(X_)
#undef X_
        NULL};

static const dnn_opclass kind_classes[] = {
#define X_(id, name, cls) DNN_OP_##cls,
    DNN_LAYER_KIND_LIST(X_)
#undef X_
};

static const char *const opclass_names[] = {
#define X_(id, name) name,
    DNN_OPCLASS_LIST(X_)
#undef X_
        NULL};

static const char *const act_names[] = {
#define X_(id, name) name,
    DNN_ACT_LIST(X_)
#undef X_
        NULL};

static const char *const algo_names[] = {
#define X_(id, name) name,
    DNN_CONV_ALGO_LIST(X_)
#undef X_
        NULL};

static const char *const tp_role_names[] = {
#define X_(id, name) name,
    DNN_TP_ROLE_LIST(X_)
#undef X_
        NULL};

/* ---- Value -> name --------------------------------------------------------
 */

const char *dnn_dtype_name(dnn_dtype t) {
  return (unsigned)t < DNN_DTYPE_COUNT ? dtype_names[t] : "unknown";
}

size_t dnn_dtype_bytes(dnn_dtype t) {
  DNN_ASSERT((unsigned)t < DNN_DTYPE_COUNT);
  return (unsigned)t < DNN_DTYPE_COUNT ? dtype_sizes[t] : 0;
}

const char *dnn_pass_name(dnn_pass p) {
  return (unsigned)p < DNN_PASS_COUNT ? pass_names[p] : "unknown";
}

const char *dnn_layer_kind_name(dnn_layer_kind k) {
  return (unsigned)k < DNN_LAYER_KIND_COUNT ? kind_names[k] : "unknown";
}

dnn_opclass dnn_layer_kind_opclass(dnn_layer_kind k) {
  DNN_ASSERT((unsigned)k < DNN_LAYER_KIND_COUNT);
  return (unsigned)k < DNN_LAYER_KIND_COUNT ? kind_classes[k] : DNN_OP_COPY;
}

const char *dnn_opclass_name(dnn_opclass c) {
  return (unsigned)c < DNN_OPCLASS_COUNT ? opclass_names[c] : "unknown";
}

const char *dnn_act_name(dnn_act a) {
  return (unsigned)a < DNN_ACT_COUNT ? act_names[a] : "unknown";
}

const char *dnn_conv_algo_name(dnn_conv_algo a) {
  return (unsigned)a < DNN_CONV_ALGO_COUNT ? algo_names[a] : "unknown";
}

const char *dnn_tp_role_name(dnn_tp_role r) {
  return (unsigned)r < DNN_TP_ROLE_COUNT ? tp_role_names[r] : "unknown";
}

/* ---- Name -> value --------------------------------------------------------
 */

/*
 * Index of `name` in the NULL-terminated `names`, or an error that names
 * what was wanted (`what`) and suggests the nearest name or lists them.
 */
static dnn_status lookup(const char *name, const char *const *names,
                         const char *what, size_t *out, dnn_error *err) {
  for (size_t i = 0; names[i]; i++) {
    if (strcmp(names[i], name) == 0) {
      *out = i;
      return DNN_OK;
    }
  }
  const char *near = dnn_nearest_name(name, names);
  if (near)
    return DNN_FAIL(err, DNN_ENOTFOUND, "unknown %s '%s' (did you mean '%s'?)",
                    what, name, near);
  char list[256] = "";
  size_t len = 0;
  for (size_t i = 0; names[i] && len < sizeof list; i++) {
    int n = snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "",
                     names[i]);
    if (n < 0)
      break;
    len += (size_t)n;
  }
  return DNN_FAIL(err, DNN_ENOTFOUND, "unknown %s '%s' (valid: %s)", what, name,
                  list);
}

/* Every parser is lookup() and a cast of the index to its enumeration. */
#define PARSER_(fn, type, names, what)                                         \
  dnn_status fn(const char *name, type *out, dnn_error *err) {                 \
    size_t i;                                                                  \
    dnn_status st = lookup(name, names, what, &i, err);                        \
    if (st == DNN_OK)                                                          \
      *out = (type)i;                                                          \
    return st;                                                                 \
  }

PARSER_(dnn_dtype_parse, dnn_dtype, dtype_names, "dtype")
PARSER_(dnn_pass_parse, dnn_pass, pass_names, "pass")
PARSER_(dnn_layer_kind_parse, dnn_layer_kind, kind_names, "layer type")
PARSER_(dnn_opclass_parse, dnn_opclass, opclass_names, "operation class")
PARSER_(dnn_act_parse, dnn_act, act_names, "activation")
PARSER_(dnn_conv_algo_parse, dnn_conv_algo, algo_names, "convolution algorithm")
PARSER_(dnn_tp_role_parse, dnn_tp_role, tp_role_names, "tensor-parallel role")
#undef PARSER_
