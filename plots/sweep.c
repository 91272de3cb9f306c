/*
 * Parameter sweeps: parsing `--vary section.key=values` (lists and numeric
 * ranges), the cartesian product of several of them, applying one row to a
 * scenario, and telling which resolved objects a change invalidates.
 *
 * Invariant: a parsed dnn_plot_vary names a key of the scenario key table
 * and every one of its values was accepted by that key on a default
 * scenario, so a sweep row can only fail on combinations (validation), not
 * on a single bad value.
 *
 * Ranges: a..b+s is the arithmetic sequence a + i s <= b (s > 0), a..b*f
 * the geometric sequence a f^i <= b (a > 0, f > 1); a relative slack of
 * 1e-9 absorbs the rounding of accumulated floating-point steps, so
 * 0..1+0.1 ends at 1.
 */
#include "internal.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Relative slack on the end of a range (see the header comment). */
#define RANGE_SLACK 1e-9
/* Room for "section.key" in suggestions. */
#define FULL_NAME_MAX (2 * DNN_SCN_NAME_MAX)

/* ---- Value lists ----------------------------------------------------------
 */

static dnn_status push_value(dnn_plot_vary *v, size_t *cap, const char *text,
                             size_t len, const char *spec, dnn_error *err) {
  if (v->n_values >= DNN_PLOT_MAX_VALUES)
    return DNN_FAIL(err, DNN_ERANGE, "--vary %s: more than %d values", spec,
                    DNN_PLOT_MAX_VALUES);
  if (!dnn__grow((void **)&v->values, cap, v->n_values + 1,
                 sizeof v->values[0]))
    return DNN_FAIL(err, DNN_ENOMEM, "--vary %s: out of memory", spec);
  char *s = dnn_malloc(len + 1);
  if (s == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "--vary %s: out of memory", spec);
  memcpy(s, text, len);
  s[len] = '\0';
  v->values[v->n_values++] = s;
  return DNN_OK;
}

/* Parses all of [s, end) as a number; false if anything is left over. */
static bool parse_number(const char *s, const char *end, double *out) {
  char buf[64];
  size_t n = (size_t)(end - s);
  if (n == 0 || n >= sizeof buf)
    return false;
  memcpy(buf, s, n);
  buf[n] = '\0';
  if (isspace((unsigned char)buf[0]))
    return false;
  char *stop;
  double x = strtod(buf, &stop);
  if (*stop != '\0' || !isfinite(x))
    return false;
  *out = x;
  return true;
}

static dnn_status push_number(dnn_plot_vary *v, size_t *cap, double x,
                              const char *spec, dnn_error *err) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.15g", x);
  if (strcmp(buf, "-0") == 0)
    snprintf(buf, sizeof buf, "0");
  return push_value(v, cap, buf, strlen(buf), spec, err);
}

/*
 * Expands one token: a range when the text before ".." is a number,
 * otherwise a literal (so "../profile.ini" stays a path).
 */
static dnn_status expand_token(dnn_plot_vary *v, size_t *cap, const char *t,
                               size_t len, const char *spec, dnn_error *err) {
  const char *end = t + len;
  const char *dots = NULL;
  for (const char *p = t; p + 1 < end; p++)
    if (p[0] == '.' && p[1] == '.') {
      dots = p;
      break;
    }
  double a, b;
  if (dots == NULL || !parse_number(t, dots, &a))
    return push_value(v, cap, t, len, spec, err);

  const char *rest = dots + 2;
  const char *op = rest;
  while (op < end && *op != '+' && *op != '*')
    op++;
  /* A '+' right after ".." or after an exponent is part of the number. */
  if (op < end && *op == '+' &&
      (op == rest || op[-1] == 'e' || op[-1] == 'E')) {
    const char *q = op + 1;
    while (q < end && *q != '+' && *q != '*')
      q++;
    op = q;
  }
  double step = 1;
  char kind = '+';
  bool ok = parse_number(rest, op, &b);
  if (ok && op < end) {
    kind = *op;
    ok = parse_number(op + 1, end, &step);
  }
  if (!ok)
    return DNN_FAIL(err, DNN_EINVAL,
                    "--vary %s: bad range '%.*s': expected A..B, A..B+STEP or "
                    "A..B*FACTOR with numbers",
                    spec, (int)len, t);
  if (a > b)
    return DNN_FAIL(err, DNN_EINVAL,
                    "--vary %s: range '%.*s' is empty: start %g is above end "
                    "%g",
                    spec, (int)len, t, a, b);
  double slack = RANGE_SLACK * fmax(fabs(a), fabs(b));
  if (kind == '+') {
    if (!(step > 0))
      return DNN_FAIL(err, DNN_EINVAL,
                      "--vary %s: range '%.*s': the step must be above 0", spec,
                      (int)len, t);
    double count = floor((b - a + slack) / step) + 1;
    if (count > DNN_PLOT_MAX_VALUES)
      return DNN_FAIL(err, DNN_ERANGE,
                      "--vary %s: range '%.*s' has %.0f values (at most %d)",
                      spec, (int)len, t, count, DNN_PLOT_MAX_VALUES);
    for (size_t i = 0; i < (size_t)count; i++) {
      dnn_status st = push_number(v, cap, a + dnn__d(i) * step, spec, err);
      if (st)
        return st;
    }
    return DNN_OK;
  }
  if (!(step > 1))
    return DNN_FAIL(err, DNN_EINVAL,
                    "--vary %s: range '%.*s': the factor must be above 1 "
                    "(e.g. 1..64*2 doubles)",
                    spec, (int)len, t);
  if (!(a > 0))
    return DNN_FAIL(err, DNN_EINVAL,
                    "--vary %s: range '%.*s': a geometric range needs a start "
                    "above 0",
                    spec, (int)len, t);
  for (double x = a; x <= b + slack; x *= step) {
    dnn_status st = push_number(v, cap, x, spec, err);
    if (st)
      return st;
  }
  return DNN_OK;
}

/* "--set section.key=value: message" -> "message". */
static const char *strip_set_prefix(const char *msg) {
  if (strncmp(msg, "--set ", 6) != 0)
    return msg;
  const char *c = strstr(msg, ": ");
  return c ? c + 2 : msg;
}

static dnn_status unknown_key(const char *section, const char *key,
                              const char *spec, dnn_error *err) {
  size_t n;
  const dnn_scn_key *keys = dnn_scn_keys(&n);
  char full[DNN_SCN_MAX_KEYS][FULL_NAME_MAX];
  const char *cands[DNN_SCN_MAX_KEYS + 1];
  for (size_t i = 0; i < n && i < DNN_SCN_MAX_KEYS; i++) {
    snprintf(full[i], sizeof full[i], "%s.%s", keys[i].section, keys[i].name);
    cands[i] = full[i];
  }
  cands[n < DNN_SCN_MAX_KEYS ? n : DNN_SCN_MAX_KEYS] = NULL;
  char want[FULL_NAME_MAX];
  snprintf(want, sizeof want, "%s.%s", section, key);
  const char *near = dnn_nearest_name(want, cands);
  return DNN_FAIL(err, DNN_EPARSE,
                  "--vary %s: unknown key '%s'%s%s%s ('dnnsim keys' lists "
                  "them)",
                  spec, want, near ? " (did you mean " : "", near ? near : "",
                  near ? "?)" : "");
}

dnn_status dnn_plot_vary_parse(const char *spec, dnn_plot_vary *out,
                               dnn_error *err) {
  memset(out, 0, sizeof *out);
  const char *eq = strchr(spec, '=');
  const char *dot = strchr(spec, '.');
  if (eq == NULL || dot == NULL || dot > eq || dot == spec || dot + 1 == eq)
    return DNN_FAIL(err, DNN_EINVAL,
                    "--vary %s: expected section.key=v1,v2,... (or a range "
                    "such as cluster.nodes=1..64*2)",
                    spec);
  size_t ls = (size_t)(dot - spec), lk = (size_t)(eq - dot - 1);
  if (ls >= sizeof out->section || lk >= sizeof out->key)
    return DNN_FAIL(err, DNN_EINVAL, "--vary %s: name too long", spec);
  memcpy(out->section, spec, ls);
  memcpy(out->key, dot + 1, lk);
  if (dnn_scn_key_find(out->section, out->key) == NULL)
    return unknown_key(out->section, out->key, spec, err);

  const char *vals = eq + 1;
  char sep = strchr(vals, ';') ? ';' : ',';
  size_t cap = 0;
  dnn_status st = DNN_OK;
  for (const char *p = vals;;) {
    const char *e = strchr(p, sep);
    if (e == NULL)
      e = p + strlen(p);
    const char *s = p, *t = e;
    while (s < t && isspace((unsigned char)*s))
      s++;
    while (t > s && isspace((unsigned char)t[-1]))
      t--;
    if (s == t)
      return DNN_FAIL(err, DNN_EINVAL,
                      "--vary %s: empty value (values are separated by "
                      "'%c')",
                      spec, sep);
    if ((st = expand_token(out, &cap, s, (size_t)(t - s), spec, err)))
      return st;
    if (*e == '\0')
      break;
    p = e + 1;
  }

  /* Check each value against the key on its own. */
  dnn_scenario *scratch = dnn_malloc(sizeof *scratch);
  if (scratch == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "--vary %s: out of memory", spec);
  dnn_scn_init(scratch);
  for (size_t i = 0; st == DNN_OK && i < out->n_values; i++) {
    dnn_error inner;
    dnn_error_clear(&inner);
    st = dnn_scn_set_value(scratch, out->section, out->key, out->values[i], -1,
                           &inner);
    if (st)
      DNN_FAIL(err, st, "--vary %s: value '%s': %s", spec, out->values[i],
               strip_set_prefix(inner.msg));
  }
  dnn_free(scratch);
  return st;
}

void dnn_plot_vary_free(dnn_plot_vary *v) {
  if (v == NULL)
    return;
  for (size_t i = 0; i < v->n_values; i++)
    dnn_free(v->values[i]);
  dnn_free(v->values);
  memset(v, 0, sizeof *v);
}

/* ---- Rows ------------------------------------------------------------------
 */

dnn_status dnn_plot_sweep_rows(const dnn_plot_vary *vary, size_t n,
                               size_t *rows, dnn_error *err) {
  *rows = 1;
  if (n > DNN_PLOT_MAX_VARY)
    return DNN_FAIL(err, DNN_ERANGE, "at most %d --vary options, got %zu",
                    DNN_PLOT_MAX_VARY, n);
  size_t r = 1;
  for (size_t j = 0; j < n; j++) {
    DNN_ASSERT(vary[j].n_values > 0);
    if (!dnn__mul_ok(r, vary[j].n_values, &r) || r > DNN_PLOT_MAX_ROWS)
      return DNN_FAIL(err, DNN_ERANGE,
                      "the sweep has more than %d configurations; vary fewer "
                      "keys or values",
                      DNN_PLOT_MAX_ROWS);
  }
  *rows = r;
  return DNN_OK;
}

size_t dnn_plot_sweep_index(const dnn_plot_vary *vary, size_t n, size_t row,
                            size_t j) {
  DNN_ASSERT(j < n);
  size_t stride = 1;
  for (size_t k = j + 1; k < n; k++)
    stride *= vary[k].n_values;
  return (row / stride) % vary[j].n_values;
}

dnn_status dnn_plot_sweep_apply(const dnn_plot_vary *vary, size_t n, size_t row,
                                dnn_scenario *scn, dnn_error *err) {
  for (size_t j = 0; j < n; j++) {
    const char *value = vary[j].values[dnn_plot_sweep_index(vary, n, row, j)];
    dnn_error inner;
    dnn_error_clear(&inner);
    dnn_status st =
        dnn_scn_set_value(scn, vary[j].section, vary[j].key, value, -1, &inner);
    if (st)
      return DNN_FAIL(err, st, "--vary %s.%s=%s: %s", vary[j].section,
                      vary[j].key, value, strip_set_prefix(inner.msg));
  }
  return DNN_OK;
}

static bool key_differs(const dnn_scenario *a, const dnn_scenario *b,
                        const char *section, const char *key) {
  char va[DNN_SCN_PATH_MAX + 8], vb[DNN_SCN_PATH_MAX + 8];
  if (dnn_scn_get_value(a, section, key, va, sizeof va) ||
      dnn_scn_get_value(b, section, key, vb, sizeof vb))
    return true;
  return strcmp(va, vb) != 0;
}

void dnn_plot_scn_changes(const dnn_scenario *a, const dnn_scenario *b,
                          bool *net_changed, bool *hw_changed) {
  size_t n;
  const dnn_scn_key *keys = dnn_scn_keys(&n);
  *net_changed = false;
  for (size_t i = 0; i < n && !*net_changed; i++) {
    /* The IR is per sample and dtype-free: batch and dtype scale costs at
     * prediction time, so changing them keeps the built network. */
    if (strcmp(keys[i].section, "model") != 0 ||
        strcmp(keys[i].name, "batch") == 0 ||
        strcmp(keys[i].name, "dtype") == 0)
      continue;
    *net_changed = key_differs(a, b, keys[i].section, keys[i].name);
  }
  *hw_changed = key_differs(a, b, "hardware", "profile");
}
