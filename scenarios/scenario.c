/*
 * Scenario files: loading over defaults, --set overrides, writing back,
 * cross-key validation and resolution of names into a network, a hardware
 * profile and a cluster. Every single-key rule comes from the key table
 * (keys.c); this file holds only the rules that involve several keys.
 *
 * Invariant: every error about a value names where the value came from:
 * "FILE:LINE: [section] key: ..." for the file, "--set section.key=value:
 * ..." for an override, "FILE: [section] key: ..." for a default.
 */
#define _XOPEN_SOURCE 700
#include "internal.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LINE_OVERRIDE (-1)

/* ---- Field access -------------------------------------------------------- */

static void *field_ptr(dnn_scenario *scn, const dnn_scn_key *k) {
  return (char *)scn + k->offset;
}
static const void *field_cptr(const dnn_scenario *scn, const dnn_scn_key *k) {
  return (const char *)scn + k->offset;
}

static size_t key_index(const dnn_scn_key *k) {
  size_t n;
  const dnn_scn_key *all = dnn_scn_keys(&n);
  return (size_t)(k - all);
}

/* Integers are size_t or uint64_t fields; store by the field's size so the
 * same table works on 32- and 64-bit platforms. */
static void store_uint(void *field, size_t size, uint64_t v) {
  if (size == sizeof(uint64_t)) {
    memcpy(field, &v, sizeof v);
  } else {
    uint32_t w = (uint32_t)v;
    memcpy(field, &w, sizeof w);
  }
}
static uint64_t load_uint(const void *field, size_t size) {
  if (size == sizeof(uint64_t)) {
    uint64_t v;
    memcpy(&v, field, sizeof v);
    return v;
  }
  uint32_t w;
  memcpy(&w, field, sizeof w);
  return w;
}

static bool looks_like_path(const char *v) {
  size_t n = strlen(v);
  return strchr(v, '/') != NULL || (n > 4 && (strcmp(v + n - 4, ".ini") == 0 ||
                                              strcmp(v + n - 4, ".csv") == 0));
}

/*
 * Why text value `v` would not read back unchanged from the "key = v" line
 * dnn_scn_write writes, or NULL when it would: inih trims blanks at both
 * ends and cuts an inline comment (a ';' after a blank, which the blank
 * after '=' makes of a leading ';').
 */
static const char *unwritable(const char *v) {
  size_t n = strlen(v);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if (c < 0x20 || c == 0x7f)
      return "contains a control character";
    if (c == ';' && (i == 0 || v[i - 1] == ' '))
      return "contains a ';' at its start or after a blank (an INI comment)";
  }
  if (n > 0 && (v[0] == ' ' || v[n - 1] == ' '))
    return "starts or ends with a blank";
  return NULL;
}

/* Parses `value` into the key's field. Messages carry no position. */
static dnn_status set_field(dnn_scenario *scn, const dnn_scn_key *k,
                            const char *value, dnn_error *err) {
  void *field = field_ptr(scn, k);
  dnn_status st;
  switch (k->type) {
  case DNN_SCN_INT: {
    size_t v;
    if ((st = dnn__parse_size(value, &v, err)))
      return st;
    if (dnn__d(v) < k->min || dnn__d(v) > k->max)
      return DNN_FAIL(err, DNN_ERANGE, "%zu is out of range [%.15g, %.15g]", v,
                      k->min, k->max);
    store_uint(field, k->size, (uint64_t)v);
    return DNN_OK;
  }
  case DNN_SCN_FLOAT: {
    double v;
    if ((st = dnn__parse_double(value, &v, err)))
      return st;
    if (v < k->min || v > k->max)
      return DNN_FAIL(err, DNN_ERANGE, "%.15g is out of range [%.15g, %.15g]",
                      v, k->min, k->max);
    memcpy(field, &v, sizeof v);
    return DNN_OK;
  }
  case DNN_SCN_BOOL: {
    bool v;
    if ((st = dnn__parse_bool(value, &v, err)))
      return st;
    memcpy(field, &v, sizeof v);
    return DNN_OK;
  }
  case DNN_SCN_ENUM: {
    int v;
    if ((st = dnn__parse_choice(value, k->choices, &v, err)))
      return st;
    memcpy(field, &v, sizeof v);
    return DNN_OK;
  }
  case DNN_SCN_STRING:
  case DNN_SCN_PATH: {
    const char *why = unwritable(value);
    if (why)
      return DNN_FAIL(err, DNN_EINVAL, "value '%s' %s", value, why);
    char buf[DNN_SCN_PATH_MAX];
    if (k->type == DNN_SCN_PATH && looks_like_path(value))
      dnn__path_join(scn->dir, value, buf, sizeof buf);
    else
      snprintf(buf, sizeof buf, "%s", value);
    if (strlen(buf) >= k->size)
      return DNN_FAIL(err, DNN_ERANGE,
                      "value is too long (at most %zu "
                      "characters)",
                      k->size - 1);
    memcpy(field, buf, strlen(buf) + 1);
    return DNN_OK;
  }
  case DNN_SCN_CUSTOM:
    if (unwritable(value))
      return DNN_FAIL(err, DNN_EINVAL, "value '%s' %s", value,
                      unwritable(value));
    if (strlen(value) >= k->size)
      return DNN_FAIL(err, DNN_ERANGE,
                      "value is too long (at most %zu "
                      "characters)",
                      k->size - 1);
    if ((st = k->parse(k, value, scn, err)))
      return st;
    memcpy(field, value, strlen(value) + 1);
    return DNN_OK;
  }
  return DNN_FAIL(err, DNN_EINVAL, "internal: bad key type");
}

void dnn_scn_init(dnn_scenario *scn) {
  memset(scn, 0, sizeof *scn);
  size_t n;
  const dnn_scn_key *keys = dnn_scn_keys(&n);
  for (size_t i = 0; i < n; i++) {
    dnn_status st = set_field(scn, &keys[i], keys[i].def, NULL);
    DNN_ASSERT(st == DNN_OK); /* defaults are checked by a test */
    (void)st;
    scn->key_line[i] = 0;
  }
}

/* ---- Loading ------------------------------------------------------------ */

typedef struct load_ctx {
  dnn_scenario *scn;
  const char *name;
} load_ctx;

/* Distinct section names of the key table, NULL-terminated. */
static const char *const *section_names(void) {
  static const char *names[32];
  static bool done = false;
  if (!done) {
    size_t n, m = 0;
    const dnn_scn_key *keys = dnn_scn_keys(&n);
    for (size_t i = 0; i < n; i++) {
      bool seen = false;
      for (size_t j = 0; j < m; j++)
        seen = seen || strcmp(names[j], keys[i].section) == 0;
      if (!seen && m + 1 < DNN_ARRAY_LEN(names))
        names[m++] = keys[i].section;
    }
    names[m] = NULL;
    done = true;
  }
  return names;
}

/* The key names of one section, NULL-terminated, into `out`. */
static void section_keys(const char *section, const char **out, size_t cap) {
  size_t n, m = 0;
  const dnn_scn_key *keys = dnn_scn_keys(&n);
  for (size_t i = 0; i < n && m + 1 < cap; i++)
    if (strcmp(keys[i].section, section) == 0)
      out[m++] = keys[i].name;
  out[m] = NULL;
}

static dnn_status unknown_name(const char *name, const char *section,
                               const char *key, int line, const char *file,
                               dnn_error *err) {
  if (key == NULL) {
    const char *near = dnn_nearest_name(section, section_names());
    return DNN__INI_FAIL(
        err, DNN_EPARSE, file, line, section, NULL, "unknown section%s%s%s",
        near ? " (did you mean [" : "", near ? near : "", near ? "]?)" : "");
  }
  const char *cands[DNN_SCN_MAX_KEYS + 1];
  section_keys(section, cands, DNN_ARRAY_LEN(cands));
  const char *near = dnn_nearest_name(key, cands);
  (void)name;
  return DNN__INI_FAIL(err, DNN_EPARSE, file, line, section, key,
                       "unknown key%s%s%s", near ? " (did you mean '" : "",
                       near ? near : "", near ? "'?)" : "");
}

static bool section_known(const char *section) {
  for (const char *const *s = section_names(); *s; s++)
    if (strcmp(*s, section) == 0)
      return true;
  return false;
}

static dnn_status on_pair(void *user, const char *section, const char *key,
                          const char *value, int line, dnn_error *err) {
  load_ctx *c = user;
  if (!section_known(section)) {
    if (section[0] == '\0' && key == NULL)
      return DNN__INI_FAIL(err, DNN_EPARSE, c->name, line, NULL, NULL,
                           "empty section name []");
    if (section[0] == '\0')
      return DNN__INI_FAIL(err, DNN_EPARSE, c->name, line, NULL, NULL,
                           "'%s' appears before any [section] header", key);
    return unknown_name(c->name, section, NULL, line, c->name, err);
  }
  if (key == NULL)
    return DNN_OK; /* a known section header */
  return dnn_scn_set_value(c->scn, section, key, value, line, err);
}

static void set_dir(dnn_scenario *scn, const char *path) {
  snprintf(scn->path, sizeof scn->path, "%s", path);
  char tmp[DNN_SCN_PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s", path);
  char *slash = strrchr(tmp, '/');
  if (slash == NULL) {
    scn->dir[0] = '\0';
    return;
  }
  if (slash == tmp)
    slash[1] = '\0';
  else
    *slash = '\0';
  /* An absolute directory keeps resolved paths valid from anywhere, so a
   * written-out scenario can be loaded from another directory. */
  char *abs = realpath(tmp, NULL);
  snprintf(scn->dir, sizeof scn->dir, "%s", abs ? abs : tmp);
  free(abs); /* realpath allocates with malloc, not our hook */
}

dnn_status dnn_scn_load_string(const char *text, const char *name,
                               const char *dir, dnn_scenario *scn,
                               dnn_error *err) {
  if (scn->path[0] == '\0')
    snprintf(scn->path, sizeof scn->path, "%s", name);
  if (dir)
    snprintf(scn->dir, sizeof scn->dir, "%s", dir);
  load_ctx c = {scn, name};
  return dnn__ini_parse(text, name, on_pair, &c, err);
}

dnn_status dnn_scn_load(const char *path, dnn_scenario *scn, dnn_error *err) {
  char *text;
  dnn_status st = dnn_file_read_all(path, &text, NULL, err);
  if (st)
    return st;
  set_dir(scn, path);
  load_ctx c = {scn, path};
  st = dnn__ini_parse(text, path, on_pair, &c, err);
  dnn_free(text);
  return st;
}

dnn_status dnn_scn_set_value(dnn_scenario *scn, const char *section,
                             const char *key, const char *value, int line,
                             dnn_error *err) {
  const char *file = scn->path[0] ? scn->path : "(scenario)";
  const dnn_scn_key *k = dnn_scn_key_find(section, key);
  if (k == NULL) {
    if (line == LINE_OVERRIDE) {
      if (!section_known(section)) {
        const char *near = dnn_nearest_name(section, section_names());
        return DNN_FAIL(err, DNN_EPARSE, "--set %s.%s: unknown section%s%s%s",
                        section, key, near ? " (did you mean " : "",
                        near ? near : "", near ? "?)" : "");
      }
      const char *cands[DNN_SCN_MAX_KEYS + 1];
      section_keys(section, cands, DNN_ARRAY_LEN(cands));
      const char *near = dnn_nearest_name(key, cands);
      return DNN_FAIL(err, DNN_EPARSE, "--set %s.%s: unknown key%s%s%s%s%s",
                      section, key, near ? " (did you mean " : "",
                      near ? section : "", near ? "." : "", near ? near : "",
                      near ? "?)" : "");
    }
    return unknown_name(file, section, key, line, file, err);
  }
  dnn_error inner;
  dnn_error_clear(&inner);
  dnn_status st = set_field(scn, k, value, &inner);
  if (st) {
    if (line == LINE_OVERRIDE)
      return DNN_FAIL(err, st, "--set %s.%s=%s: %s", section, key, value,
                      inner.msg);
    return DNN__INI_FAIL(err, st, file, line, section, key, "%s", inner.msg);
  }
  scn->key_line[key_index(k)] = line;
  return DNN_OK;
}

dnn_status dnn_scn_set(dnn_scenario *scn, const char *assignment,
                       dnn_error *err) {
  const char *eq = strchr(assignment, '=');
  const char *dot = strchr(assignment, '.');
  if (eq == NULL || dot == NULL || dot > eq || dot == assignment ||
      dot + 1 == eq)
    return DNN_FAIL(err, DNN_EINVAL, "--set %s: expected section.key=value",
                    assignment);
  char section[DNN_SCN_NAME_MAX], key[DNN_SCN_NAME_MAX];
  size_t ls = (size_t)(dot - assignment), lk = (size_t)(eq - dot - 1);
  if (ls >= sizeof section || lk >= sizeof key)
    return DNN_FAIL(err, DNN_EINVAL, "--set %s: name too long", assignment);
  memcpy(section, assignment, ls);
  section[ls] = '\0';
  memcpy(key, dot + 1, lk);
  key[lk] = '\0';
  return dnn_scn_set_value(scn, section, key, eq + 1, LINE_OVERRIDE, err);
}

/* ---- Formatting and writing -------------------------------------------- */

static void format_double(double v, char *buf, size_t n) {
  /* Shortest of %.15g / %.17g that reads back exactly. */
  snprintf(buf, n, "%.15g", v);
  if (strtod(buf, NULL) != v)
    snprintf(buf, n, "%.17g", v);
}

dnn_status dnn_scn_get_value(const dnn_scenario *scn, const char *section,
                             const char *key, char *buf, size_t n) {
  const dnn_scn_key *k = dnn_scn_key_find(section, key);
  if (k == NULL)
    return DNN_ENOTFOUND;
  const void *field = field_cptr(scn, k);
  switch (k->type) {
  case DNN_SCN_INT:
    snprintf(buf, n, "%llu", (unsigned long long)load_uint(field, k->size));
    break;
  case DNN_SCN_FLOAT: {
    double v;
    memcpy(&v, field, sizeof v);
    format_double(v, buf, n);
    break;
  }
  case DNN_SCN_BOOL: {
    bool v;
    memcpy(&v, field, sizeof v);
    snprintf(buf, n, "%s", v ? "true" : "false");
    break;
  }
  case DNN_SCN_ENUM: {
    int v;
    memcpy(&v, field, sizeof v);
    snprintf(buf, n, "%s", k->choices[v]);
    break;
  }
  case DNN_SCN_STRING:
  case DNN_SCN_PATH:
  case DNN_SCN_CUSTOM:
    snprintf(buf, n, "%s", (const char *)field);
    break;
  }
  return DNN_OK;
}

dnn_status dnn_scn_write(const dnn_scenario *scn, FILE *fp, bool all,
                         dnn_error *err) {
  dnn_scenario *def = dnn_malloc(sizeof *def);
  if (def == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory writing a scenario");
  dnn_scn_init(def);
  size_t n;
  const dnn_scn_key *keys = dnn_scn_keys(&n);
  /* Every line must fit inih's line buffer, or the text would not load
   * back: check them all before writing any. */
  for (size_t i = 0; i < n; i++) {
    char v[DNN_SCN_PATH_MAX];
    dnn_scn_get_value(scn, keys[i].section, keys[i].name, v, sizeof v);
    size_t len = strlen(keys[i].name) + 3 + strlen(v);
    if (len > dnn__ini_max_line()) {
      dnn_free(def);
      return DNN_FAIL(err, DNN_ERANGE,
                      "[%s] %s: value too long to write on one INI line "
                      "(%zu characters; at most %zu)",
                      keys[i].section, keys[i].name, len, dnn__ini_max_line());
    }
  }
  const char *last = NULL;
  for (size_t i = 0; i < n; i++) {
    char v[DNN_SCN_PATH_MAX], d[DNN_SCN_PATH_MAX];
    dnn_scn_get_value(scn, keys[i].section, keys[i].name, v, sizeof v);
    dnn_scn_get_value(def, keys[i].section, keys[i].name, d, sizeof d);
    if (!all && strcmp(v, d) == 0)
      continue;
    if (last == NULL || strcmp(last, keys[i].section) != 0) {
      fprintf(fp, "%s[%s]\n", last ? "\n" : "", keys[i].section);
      last = keys[i].section;
    }
    fprintf(fp, "%s = %s\n", keys[i].name, v);
  }
  dnn_free(def);
  if (ferror(fp))
    return DNN_FAIL(err, DNN_EIO, "write error");
  return DNN_OK;
}

const char *dnn_scn_key_origin(const dnn_scenario *scn, const char *section,
                               const char *key, char *buf, size_t n) {
  const dnn_scn_key *k = dnn_scn_key_find(section, key);
  int line = k ? scn->key_line[key_index(k)] : 0;
  const char *file = scn->path[0] ? scn->path : "(scenario)";
  if (line > 0)
    snprintf(buf, n, "%s:%d: [%s] %s", file, line, section, key);
  else if (line == LINE_OVERRIDE)
    snprintf(buf, n, "--set %s.%s", section, key);
  else
    snprintf(buf, n, "%s: [%s] %s (default)", file, section, key);
  return buf;
}

/* ---- Custom keys --------------------------------------------------------- */

dnn_status dnn__scn_parse_sizes(const dnn_scn_key *key, const char *text,
                                dnn_scenario *scn, dnn_error *err) {
  (void)key;
  scn->training.n_sizes = 0;
  const char *p = text;
  while (*p == ' ')
    p++;
  if (*p == '\0')
    return DNN_OK;
  size_t count = 0;
  while (*p) {
    if (count == DNN_SCN_MAX_SIZES)
      return DNN_FAIL(err, DNN_ERANGE, "at most %d sizes", DNN_SCN_MAX_SIZES);
    char item[64];
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (len >= sizeof item)
      return DNN_FAIL(err, DNN_EINVAL, "entry '%.*s' is too long", (int)len, p);
    memcpy(item, p, len);
    item[len] = '\0';
    char *colon = strchr(item, ':');
    if (colon == NULL)
      return DNN_FAIL(err, DNN_EINVAL, "expected size:probability, got '%s'",
                      item);
    *colon = '\0';
    size_t size;
    double prob;
    dnn_error e;
    if (dnn__parse_size(item, &size, &e) || size < 8)
      return DNN_FAIL(err, DNN_EINVAL, "size '%s' must be an integer >= 8",
                      item);
    if (dnn__parse_double(colon + 1, &prob, &e) || prob <= 0 || prob > 1)
      return DNN_FAIL(err, DNN_EINVAL, "probability '%s' must be in (0, 1]",
                      colon + 1);
    scn->training.sizes[count].size = size;
    scn->training.sizes[count].probability = prob;
    count++;
    p = comma ? comma + 1 : p + len;
    while (*p == ' ')
      p++;
  }
  double sum = 0;
  for (size_t i = 0; i < count; i++)
    sum += scn->training.sizes[i].probability;
  if (fabs(sum - 1.0) > 1e-6)
    return DNN_FAIL(err, DNN_EINVAL, "probabilities sum to %.6g, not 1", sum);
  scn->training.n_sizes = count;
  return DNN_OK;
}

dnn_status dnn__scn_parse_compression(const dnn_scn_key *key, const char *text,
                                      dnn_scenario *scn, dnn_error *err) {
  (void)key;
  scn->training.compression_density = 1.0;
  if (strcmp(text, "none") == 0) {
    scn->training.compression = DNN_COMPRESSION_NONE;
  } else if (strcmp(text, "fp16") == 0) {
    scn->training.compression = DNN_COMPRESSION_FP16;
  } else if (strcmp(text, "1bit") == 0) {
    scn->training.compression = DNN_COMPRESSION_ONEBIT;
  } else if (strncmp(text, "topk:", 5) == 0) {
    double d;
    dnn_error e;
    if (dnn__parse_double(text + 5, &d, &e) || d <= 0 || d > 1)
      return DNN_FAIL(err, DNN_EINVAL, "topk density '%s' must be in (0, 1]",
                      text + 5);
    scn->training.compression = DNN_COMPRESSION_TOPK;
    scn->training.compression_density = d;
  } else {
    return DNN_FAIL(err, DNN_EINVAL,
                    "expected none, fp16, topk:DENSITY or 1bit, got '%s'",
                    text);
  }
  return DNN_OK;
}

dnn_status dnn__scn_parse_partition(const dnn_scn_key *key, const char *text,
                                    dnn_scenario *scn, dnn_error *err) {
  (void)key;
  (void)scn;
  if (strcmp(text, "balanced") == 0)
    return DNN_OK;
  const char *p = text;
  while (*p) {
    while (*p == ' ')
      p++;
    char *end;
    unsigned long v = strtoul(p, &end, 10);
    if (end == p || v == 0)
      return DNN_FAIL(err, DNN_EINVAL,
                      "expected balanced or a list of positive layer counts "
                      "n1,n2,..., got '%s'",
                      text);
    p = end;
    while (*p == ' ')
      p++;
    if (*p == ',')
      p++;
    else if (*p != '\0')
      return DNN_FAIL(err, DNN_EINVAL,
                      "expected balanced or a list of positive layer counts "
                      "n1,n2,..., got '%s'",
                      text);
  }
  return DNN_OK;
}

/* ---- Validation ------------------------------------------------------------
 */

size_t dnn_scn_devices(const dnn_scenario *scn) {
  return scn->cluster.nodes * scn->cluster.devices_per_node;
}

size_t dnn_scn_data_degree(const dnn_scenario *scn) {
  if (scn->parallelism.data)
    return scn->parallelism.data;
  size_t tp = scn->parallelism.tensor * scn->parallelism.pipeline;
  size_t dev = dnn_scn_devices(scn);
  return tp && dev % tp == 0 ? dev / tp : 0;
}

#define ORIGIN(sec, key) dnn_scn_key_origin(scn, sec, key, where, sizeof where)

/* Smallest nonzero bandwidth override, GB/s (as a profile's bandwidth,
 * hw.c MIN_RATE): below it a collective's time overflows. */
#define MIN_BANDWIDTH_GBPS 1e-6

/* Every numeric and enumerated field within its key's range: fields can be
 * set directly, bypassing the key table's checks. */
static dnn_status check_ranges(const dnn_scenario *scn, dnn_error *err) {
  char where[DNN_SCN_PATH_MAX + 64];
  size_t n;
  const dnn_scn_key *keys = dnn_scn_keys(&n);
  for (size_t i = 0; i < n; i++) {
    const dnn_scn_key *k = &keys[i];
    const void *field = field_cptr(scn, k);
    double v;
    if (k->type == DNN_SCN_INT) {
      v = (double)load_uint(field, k->size);
    } else if (k->type == DNN_SCN_FLOAT) {
      memcpy(&v, field, sizeof v);
    } else if (k->type == DNN_SCN_ENUM) {
      int e, count = 0;
      memcpy(&e, field, sizeof e);
      while (k->choices[count])
        count++;
      if (e < 0 || e >= count)
        return DNN_FAIL(err, DNN_ERANGE, "%s: %d is not one of its %d choices",
                        ORIGIN(k->section, k->name), e, count);
      continue;
    } else {
      continue;
    }
    if (!(v >= k->min && v <= k->max))
      return DNN_FAIL(err, DNN_ERANGE,
                      "%s: %.15g is out of range [%.15g, %.15g]",
                      ORIGIN(k->section, k->name), v, k->min, k->max);
  }
  static const char *const bw[] = {"intra_bandwidth_GBps",
                                   "inter_bandwidth_GBps"};
  double bwv[] = {scn->cluster.intra_bandwidth_GBps,
                  scn->cluster.inter_bandwidth_GBps};
  for (size_t i = 0; i < 2; i++)
    if (bwv[i] > 0 && bwv[i] < MIN_BANDWIDTH_GBPS)
      return DNN_FAIL(err, DNN_ERANGE,
                      "%s: %g GB/s is below %g GB/s (0 takes the link's)",
                      ORIGIN("cluster", bw[i]), bwv[i], MIN_BANDWIDTH_GBPS);
  return DNN_OK;
}

dnn_status dnn_scn_validate(const dnn_scenario *scn, dnn_error *err) {
  char where[DNN_SCN_PATH_MAX + 64];
  dnn_status st = check_ranges(scn, err);
  if (st)
    return st;
  if ((scn->model.name[0] == '\0') == (scn->model.file[0] == '\0'))
    return DNN_FAIL(err, DNN_EINVAL,
                    "%s: give exactly one of [model] name "
                    "(a zoo network) and [model] file",
                    ORIGIN("model", scn->model.name[0] ? "file" : "name"));
  if (scn->hardware.profile[0] == '\0')
    return DNN_FAIL(err, DNN_EINVAL,
                    "%s: missing; expected a built-in "
                    "profile name (dnnsim profiles) or a profile file",
                    ORIGIN("hardware", "profile"));
  size_t dev = dnn_scn_devices(scn);
  size_t t = scn->parallelism.tensor, p = scn->parallelism.pipeline;
  if (dev % (t * p) != 0)
    return DNN_FAIL(err, DNN_EINVAL,
                    "%s: tensor %zu x pipeline %zu = %zu does not divide the "
                    "%zu devices (nodes x devices_per_node)",
                    ORIGIN("parallelism", t > 1 ? "tensor" : "pipeline"), t, p,
                    t * p, dev);
  size_t d = dnn_scn_data_degree(scn);
  if (d * t * p != dev)
    return DNN_FAIL(err, DNN_EINVAL,
                    "%s: data %zu x tensor %zu x pipeline %zu = %zu, but the "
                    "cluster has %zu devices (nodes x devices_per_node); set "
                    "data = 0 to derive it",
                    ORIGIN("parallelism", "data"), d, t, p, d * t * p, dev);
  if (scn->model.batch < d || scn->model.batch % d != 0)
    return DNN_FAIL(err, DNN_EINVAL,
                    "%s: batch %zu must be a multiple of the data-parallel "
                    "degree %zu",
                    ORIGIN("model", "batch"), scn->model.batch, d);
  size_t local = scn->model.batch / d, m = scn->parallelism.microbatches;
  if (local % m != 0)
    return DNN_FAIL(err, DNN_EINVAL,
                    "%s: %zu micro-batches do not divide the local batch %zu "
                    "(batch %zu / data %zu)",
                    ORIGIN("parallelism", "microbatches"), m, local,
                    scn->model.batch, d);
  if (scn->cluster.devices_per_node > 1 && scn->cluster.intra_link[0] == '\0' &&
      scn->cluster.intra_bandwidth_GBps <= 0)
    return DNN_FAIL(err, DNN_EINVAL,
                    "%s: missing; %zu devices per node need an intra-node "
                    "link (dnnsim links) or intra_bandwidth_GBps",
                    ORIGIN("cluster", "intra_link"),
                    scn->cluster.devices_per_node);
  if (scn->cluster.nodes > 1 && scn->cluster.inter_link[0] == '\0' &&
      scn->cluster.inter_bandwidth_GBps <= 0)
    return DNN_FAIL(err, DNN_EINVAL,
                    "%s: missing; %zu nodes need an inter-node link (dnnsim "
                    "links) or inter_bandwidth_GBps",
                    ORIGIN("cluster", "inter_link"), scn->cluster.nodes);
  if (scn->parallelism.virtual_stages > 1 &&
      scn->parallelism.schedule != DNN_SCHEDULE_INTERLEAVED)
    return DNN_FAIL(err, DNN_EINVAL,
                    "%s: virtual stages need schedule = interleaved",
                    ORIGIN("parallelism", "virtual_stages"));
  if (scn->training.consistency == DNN_CONSISTENCY_SSP &&
      scn->training.staleness == 0)
    return DNN_FAIL(err, DNN_EINVAL,
                    "%s: consistency = ssp needs a staleness bound >= 1",
                    ORIGIN("training", "staleness"));
  return DNN_OK;
}

/* ---- Resolution ---------------------------------------------------------- */

dnn_status dnn_scn_build_net(const dnn_scenario *scn, size_t image,
                             dnn_net **out, dnn_error *err) {
  *out = NULL;
  /* A network file states its own input shape: the scenario's image size
   * replaces it only when the scenario (or --set) gives one, never by the
   * key's default. Zoo networks are built at the image size either way. */
  const dnn_scn_key *ik = dnn_scn_key_find("model", "image");
  bool image_given = image != 0 || scn->key_line[key_index(ik)] != 0;
  if (image == 0)
    image = scn->model.image;
  char where[DNN_SCN_PATH_MAX + 64];
  dnn_status st;
  if (scn->model.file[0]) {
    st = dnn_scn_load_net(scn->model.file, image_given ? image : 0, out, err);
    if (st) {
      dnn_error_prefix(err, "%s", ORIGIN("model", "file"));
      return st;
    }
    /* Nothing to time would make every prediction 0 s (and a throughput
     * of infinity): only a network file can be so empty. */
    dnn_net_totals t;
    dnn_net_totals_get(*out, 1, scn->model.dtype, &t);
    if (!(t.flops[DNN_PASS_FWD] + t.bytes[DNN_PASS_FWD] > 0)) {
      dnn_net_free(*out);
      *out = NULL;
      return DNN_FAIL(err, DNN_EINVAL,
                      "%s: network '%s' has no layer that computes anything "
                      "(only inputs and flatten views)",
                      ORIGIN("model", "file"), scn->model.file);
    }
    return st;
  }
  dnn_zoo_params zp = dnn_zoo_default_params();
  zp.image = image;
  if (scn->model.classes)
    zp.classes = scn->model.classes;
  if (scn->model.seq)
    zp.seq_len = scn->model.seq;
  if (scn->model.vocab)
    zp.vocab = scn->model.vocab;
  if (scn->model.embed_dim)
    zp.embed_dim = scn->model.embed_dim;
  if (scn->model.hidden)
    zp.hidden = scn->model.hidden;
  if (scn->model.layers)
    zp.layers = scn->model.layers;
  if (scn->model.heads)
    zp.heads = scn->model.heads;
  if (scn->model.ffn_hidden)
    zp.ffn_hidden = scn->model.ffn_hidden;
  st = dnn_zoo_build(scn->model.name, &zp, out, err);
  if (st)
    dnn_error_prefix(err, "%s", ORIGIN("model", "name"));
  return st;
}

dnn_status dnn_scn_load_hw(const dnn_scenario *scn, dnn_hw **out,
                           dnn_error *err) {
  char where[DNN_SCN_PATH_MAX + 64];
  dnn_status st = dnn_hw_load(scn->hardware.profile, out, err);
  if (st) {
    dnn_error_prefix(err, "%s", ORIGIN("hardware", "profile"));
    return st;
  }
  /* A dtype without a peak would time every layer at infinity. */
  const dnn_hw_params *hp = dnn_hw_get(*out);
  dnn_dtype t = scn->model.dtype;
  if (!(hp->peak_flops[t] > 0)) {
    char where2[DNN_SCN_PATH_MAX + 64];
    st = DNN_FAIL(
        err, DNN_EINVAL,
        "%s: %s has no peak in hardware profile '%s' "
        "(peak_%s_TFLOPS = 0; %s)",
        ORIGIN("model", "dtype"), dnn_dtype_name(t), hp->name,
        dnn_dtype_name(t),
        dnn_scn_key_origin(scn, "hardware", "profile", where2, sizeof where2));
    dnn_hw_free(*out);
    *out = NULL;
  }
  return st;
}

static dnn_status resolve_link(const dnn_scenario *scn, const char *key,
                               const char *name, double latency_us,
                               double bandwidth_GBps, dnn_link *out,
                               dnn_error *err) {
  char where[DNN_SCN_PATH_MAX + 64];
  memset(out, 0, sizeof *out);
  if (name[0]) {
    dnn_status st = dnn_hw_link_builtin(name, out, err);
    if (st) {
      dnn_error_prefix(err, "%s", ORIGIN("cluster", key));
      return st;
    }
  } else {
    snprintf(out->name, sizeof out->name, "custom");
  }
  if (latency_us > 0)
    out->latency_s = latency_us * 1e-6;
  if (bandwidth_GBps > 0)
    out->bandwidth_Bps = bandwidth_GBps * 1e9;
  return DNN_OK;
}

dnn_status dnn_scn_cluster(const dnn_scenario *scn, dnn_cluster *out,
                           dnn_error *err) {
  memset(out, 0, sizeof *out);
  out->nodes = scn->cluster.nodes;
  out->devices_per_node = scn->cluster.devices_per_node;
  out->nics_per_node = scn->cluster.nics_per_node;
  dnn_status st = DNN_OK;
  if (scn->cluster.intra_link[0] || scn->cluster.intra_bandwidth_GBps > 0)
    st = resolve_link(scn, "intra_link", scn->cluster.intra_link,
                      scn->cluster.intra_latency_us,
                      scn->cluster.intra_bandwidth_GBps, &out->intra, err);
  if (st == DNN_OK &&
      (scn->cluster.inter_link[0] || scn->cluster.inter_bandwidth_GBps > 0))
    st = resolve_link(scn, "inter_link", scn->cluster.inter_link,
                      scn->cluster.inter_latency_us,
                      scn->cluster.inter_bandwidth_GBps, &out->inter, err);
  return st;
}
