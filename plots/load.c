/*
 * Inputs of the validation and timeline charts, read with jansson:
 * `dnnsim validate --format json` output (measured against predicted
 * iteration time; a mixed-size run gives a point per size and one for its
 * mean step) and Chrome traces in the trace event format (Google,
 * "Trace Event Format", 2016: complete events ph "X" with pid, tid, ts and
 * dur in microseconds; metadata events ph "M" naming processes and
 * threads).
 *
 * Invariant: a loader either adds every record of the file or reports the
 * first bad one by file, line or event index; it never adds part of a
 * record.
 */
#include "internal.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The file name without directory and extension, into `out`. */
static void stem(const char *path, char *out, size_t n) {
  const char *slash = strrchr(path, '/');
  const char *b = slash ? slash + 1 : path;
  const char *dot = strrchr(b, '.');
  size_t len = dot && dot != b ? (size_t)(dot - b) : strlen(b);
  snprintf(out, n, "%.*s", (int)len, b);
}

static size_t count_lines(const char *text, size_t upto) {
  size_t lines = 1;
  for (size_t i = 0; i < upto; i++)
    lines += text[i] == '\n';
  return lines;
}

/* ---- Validation results
 * ------------------------------------------------------ */

/* The number at object.field.sub, or NaN. */
static double number_at(const json_t *o, const char *field, const char *sub) {
  const json_t *v = json_object_get(json_object_get(o, field), sub);
  return json_is_number(v) ? json_number_value(v) : (double)NAN;
}

/* The run's label: its scenario's stem, else "run N". */
static void result_label(const json_t *o, size_t index, char *label, size_t n) {
  const json_t *scn = json_object_get(o, "scenario");
  if (json_is_string(scn))
    stem(json_string_value(scn), label, n);
  else
    snprintf(label, n, "run %zu", index + 1);
}

/*
 * A mixed-size run ("kind": "mixed"): one point per size that the schedule
 * drew (sizes[k].measured/predicted.iteration_s, labelled "<run> <image>
 * px") and one for the run's mean step (mixed.measured.mean_step_s against
 * mixed.predicted.mean_step_s, the expectation E[T]).
 */
static dnn_status add_mixed(dnn_plot *pl, const char *path, const char *series,
                            const json_t *o, size_t line, size_t index,
                            dnn_error *err) {
  char run[DNN_PLOT_LABEL_MAX / 2], label[DNN_PLOT_LABEL_MAX];
  result_label(o, index, run, sizeof run);
  const json_t *sizes = json_object_get(o, "sizes");
  const json_t *mx = json_object_get(o, "mixed");
  double mm = number_at(mx, "measured", "mean_step_s");
  double pm = number_at(mx, "predicted", "mean_step_s");
  if (!json_is_array(sizes) || isnan(mm) || isnan(pm))
    return DNN_FAIL(err, DNN_EINVAL,
                    "%s:%zu: mixed result %zu has no sizes or no "
                    "mixed.measured/predicted.mean_step_s (expected dnnsim "
                    "validate --format json output)",
                    path, line, index + 1);
  dnn_status st = DNN_OK;
  for (size_t k = 0; st == DNN_OK && k < json_array_size(sizes); k++) {
    const json_t *sz = json_array_get(sizes, k);
    double m = number_at(sz, "measured", "iteration_s");
    double p = number_at(sz, "predicted", "iteration_s");
    const json_t *img = json_object_get(sz, "image");
    if (isnan(m) || isnan(p) || !json_is_integer(img))
      continue; /* a size the schedule never drew */
    snprintf(label, sizeof label, "%s %lld px", run,
             (long long)json_integer_value(img));
    st = dnn_plot_add_measurement(pl, series, label, m, p, err);
  }
  if (st == DNN_OK) {
    snprintf(label, sizeof label, "%s mean step", run);
    st = dnn_plot_add_measurement(pl, series, label, mm, pm, err);
  }
  if (st)
    dnn_error_prefix(err, "%s:%zu", path, line);
  return st;
}

static dnn_status add_result(dnn_plot *pl, const char *path, const char *series,
                             const json_t *o, size_t line, size_t index,
                             dnn_error *err) {
  if (!json_is_object(o))
    return DNN_FAIL(err, DNN_EINVAL,
                    "%s:%zu: expected a JSON object (dnnsim validate --format "
                    "json), not %s",
                    path, line, json_is_array(o) ? "an array" : "a value");
  const json_t *kind = json_object_get(o, "kind");
  if (json_is_string(kind) && strcmp(json_string_value(kind), "mixed") == 0)
    return add_mixed(pl, path, series, o, line, index, err);
  double measured = number_at(o, "measured", "iteration_s");
  double predicted = number_at(o, "predicted", "iteration_s");
  const char *missing = isnan(measured)    ? "measured.iteration_s"
                        : isnan(predicted) ? "predicted.iteration_s"
                                           : NULL;
  if (missing)
    return DNN_FAIL(err, DNN_EINVAL,
                    "%s:%zu: result %zu has no number %s (expected dnnsim "
                    "validate --format json output)",
                    path, line, index + 1, missing);
  char label[DNN_PLOT_LABEL_MAX];
  result_label(o, index, label, sizeof label);
  dnn_status st =
      dnn_plot_add_measurement(pl, series, label, measured, predicted, err);
  if (st)
    dnn_error_prefix(err, "%s:%zu", path, line);
  return st;
}

dnn_status dnn_plot_load_validation(dnn_plot *pl, const char *path,
                                    dnn_error *err) {
  DNN_ASSERT(pl->params.kind == DNN_PLOT_VALIDATION);
  char *text;
  size_t len;
  dnn_status st = dnn_file_read_all(path, &text, &len, err);
  if (st)
    return st;
  char series[DNN_PLOT_LABEL_MAX];
  stem(path, series, sizeof series);
  size_t off = 0, index = 0;
  for (;;) {
    while (off < len && strchr(" \t\r\n", text[off]))
      off++;
    if (off >= len)
      break;
    size_t line = count_lines(text, off);
    json_error_t je;
    json_t *j = json_loadb(text + off, len - off, JSON_DISABLE_EOF_CHECK, &je);
    if (j == NULL) {
      st = DNN_FAIL(err, DNN_EPARSE, "%s:%zu: %s", path,
                    line + (je.line > 0 ? (size_t)je.line - 1 : 0), je.text);
      break;
    }
    if (json_is_array(j)) {
      for (size_t i = 0; st == DNN_OK && i < json_array_size(j); i++)
        st = add_result(pl, path, series, json_array_get(j, i), line, index++,
                        err);
    } else {
      st = add_result(pl, path, series, j, line, index++, err);
    }
    json_decref(j);
    if (st)
      break;
    off += (size_t)je.position;
  }
  if (st == DNN_OK && index == 0)
    st = DNN_FAIL(err, DNN_EINVAL,
                  "%s: no results (expected dnnsim validate --format json "
                  "output)",
                  path);
  dnn_free(text);
  return st;
}

/* ---- Chrome traces
 * ------------------------------------------------------------- */

/* A pid or tid: a number or a string. */
typedef struct id {
  bool numeric;
  double num;
  const char *str;
} id;

typedef struct event {
  id pid, tid;
  double ts_us, dur_us;
  const char *name, *cat;
  size_t order; /* index in the file, for a stable sort */
} event;

static id id_of(const json_t *v) {
  id r = {false, 0, ""};
  if (json_is_number(v)) {
    r.numeric = true;
    r.num = json_number_value(v);
  } else if (json_is_string(v)) {
    r.str = json_string_value(v);
  }
  return r;
}

static int id_cmp(const id *a, const id *b) {
  if (a->numeric != b->numeric)
    return a->numeric ? -1 : 1;
  if (a->numeric)
    return a->num < b->num ? -1 : a->num > b->num;
  return strcmp(a->str, b->str);
}

static int event_cmp(const void *pa, const void *pb) {
  const event *a = pa, *b = pb;
  int c = id_cmp(&a->pid, &b->pid);
  if (c == 0)
    c = id_cmp(&a->tid, &b->tid);
  if (c == 0)
    c = a->ts_us < b->ts_us ? -1 : a->ts_us > b->ts_us;
  if (c == 0)
    c = a->order < b->order ? -1 : a->order > b->order;
  return c;
}

static void id_text(const id *v, char *out, size_t n) {
  if (v->numeric)
    snprintf(out, n, "%.15g", v->num);
  else
    snprintf(out, n, "%s", v->str);
}

/* The metadata name `what` (process_name or thread_name) of pid (and tid,
 * for threads), or NULL. */
static const char *meta_name(const json_t *events, const char *what,
                             const id *pid, const id *tid) {
  size_t i;
  const json_t *e;
  json_array_foreach(events, i, e) {
    const char *ph = json_string_value(json_object_get(e, "ph"));
    const char *name = json_string_value(json_object_get(e, "name"));
    if (!ph || !name || strcmp(ph, "M") != 0 || strcmp(name, what) != 0)
      continue;
    id p = id_of(json_object_get(e, "pid"));
    if (id_cmp(&p, pid) != 0)
      continue;
    if (tid) {
      id t = id_of(json_object_get(e, "tid"));
      if (id_cmp(&t, tid) != 0)
        continue;
    }
    const char *v =
        json_string_value(json_object_get(json_object_get(e, "args"), "name"));
    if (v)
      return v;
  }
  return NULL;
}

/* The category of a name without `cat`: up to the first separator. */
static void name_category(const char *name, char *out, size_t n) {
  size_t len = strcspn(name, " .:/[");
  snprintf(out, n, "%.*s", (int)(len ? len : strlen(name)), name);
}

static dnn_status add_events(dnn_plot *pl, const char *path,
                             const json_t *events, dnn_error *err) {
  size_t n_x = 0;
  size_t i;
  const json_t *e;
  json_array_foreach(events, i, e) {
    const char *ph = json_string_value(json_object_get(e, "ph"));
    n_x += ph && strcmp(ph, "X") == 0;
  }
  if (n_x == 0)
    return DNN_FAIL(err, DNN_EINVAL,
                    "%s: no complete events (ph \"X\") in the trace", path);
  event *ev = dnn_calloc(n_x, sizeof *ev);
  if (ev == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "%s: out of memory", path);
  size_t k = 0;
  double t0 = INFINITY;
  dnn_status st = DNN_OK;
  json_array_foreach(events, i, e) {
    const char *ph = json_string_value(json_object_get(e, "ph"));
    if (!ph || strcmp(ph, "X") != 0)
      continue;
    const json_t *ts = json_object_get(e, "ts"),
                 *dur = json_object_get(e, "dur");
    if (!json_is_number(ts) || !json_is_number(dur) ||
        json_number_value(dur) < 0) {
      st = DNN_FAIL(err, DNN_EINVAL,
                    "%s: event %zu: a complete event needs numbers ts and dur "
                    ">= 0 (microseconds)",
                    path, i);
      break;
    }
    event *x = &ev[k];
    x->pid = id_of(json_object_get(e, "pid"));
    x->tid = id_of(json_object_get(e, "tid"));
    x->ts_us = json_number_value(ts);
    x->dur_us = json_number_value(dur);
    x->name = json_string_value(json_object_get(e, "name"));
    x->cat = json_string_value(json_object_get(e, "cat"));
    x->order = k++;
    t0 = fmin(t0, x->ts_us);
  }
  if (st == DNN_OK)
    qsort(ev, k, sizeof *ev, event_cmp);
  char device[DNN_PLOT_LABEL_MAX], stream[DNN_PLOT_LABEL_MAX];
  char category[DNN_PLOT_LABEL_MAX], num[64];
  for (size_t j = 0; st == DNN_OK && j < k; j++) {
    const event *x = &ev[j];
    if (j == 0 || id_cmp(&x->pid, &ev[j - 1].pid) != 0 ||
        id_cmp(&x->tid, &ev[j - 1].tid) != 0) {
      const char *pn = meta_name(events, "process_name", &x->pid, NULL);
      const char *tn = meta_name(events, "thread_name", &x->pid, &x->tid);
      id_text(&x->pid, num, sizeof num);
      if (pn)
        snprintf(device, sizeof device, "%s", pn);
      else
        snprintf(device, sizeof device, "device %s", num);
      id_text(&x->tid, num, sizeof num);
      if (tn)
        snprintf(stream, sizeof stream, "%s", tn);
      else
        snprintf(stream, sizeof stream, "stream %s", num);
    }
    if (x->cat && x->cat[0])
      snprintf(category, sizeof category, "%s", x->cat);
    else
      name_category(x->name ? x->name : "task", category, sizeof category);
    dnn_plot_span s = {device, stream, category, (x->ts_us - t0) * 1e-6,
                       x->dur_us * 1e-6};
    st = dnn_plot_add_span(pl, &s, err);
  }
  dnn_free(ev);
  return st;
}

dnn_status dnn_plot_load_trace(dnn_plot *pl, const char *path, dnn_error *err) {
  DNN_ASSERT(pl->params.kind == DNN_PLOT_TIMELINE);
  char *text;
  size_t len;
  dnn_status st = dnn_file_read_all(path, &text, &len, err);
  if (st)
    return st;
  json_error_t je;
  json_t *j = json_loadb(text, len, 0, &je);
  dnn_free(text);
  if (j == NULL)
    return DNN_FAIL(err, DNN_EPARSE, "%s:%d: %s", path, je.line, je.text);
  const json_t *events =
      json_is_array(j) ? j : json_object_get(j, "traceEvents");
  if (!json_is_array(events))
    st = DNN_FAIL(err, DNN_EINVAL,
                  "%s: expected a Chrome trace: an array of events or an "
                  "object with a \"traceEvents\" array",
                  path);
  else
    st = add_events(pl, path, events, err);
  json_decref(j);
  return st;
}
