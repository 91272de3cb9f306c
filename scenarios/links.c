/*
 * Built-in links (include/dnnsim/hw.h): the alpha-beta parameters of
 * common interconnects, read from scenarios/links.ini (embedded into the
 * library; every number's source is a comment there).
 *
 * Model: a message of n bytes over a link takes alpha + n / bandwidth
 * (Hockney's latency-bandwidth model; REFERENCE §1.5, docs/models.md §5).
 *
 * Invariant: links.ini is parsed exactly once, under call_once, into a
 * static table that is read-only afterwards, so every function here is
 * thread-safe and none allocates after the first call.
 */
#include "internal.h"

#include <string.h>
#include <threads.h>

/* Most built-in links the table holds. */
#define LINKS_MAX 64

static struct {
  dnn_link links[LINKS_MAX];
  const char *names[LINKS_MAX + 1];
  size_t n;
  bool seen_latency[LINKS_MAX], seen_bandwidth[LINKS_MAX];
  int header_line[LINKS_MAX];
  dnn_status st;   /* a failure parsing links.ini (a build defect) */
  dnn_error error; /* its message */
} table;
static once_flag table_once = ONCE_FLAG_INIT;

static const char LINKS_FILE[] = "scenarios/links.ini";

static dnn_status on_ini(void *user, const char *section, const char *name,
                         const char *value, int line, dnn_error *err) {
  (void)user;
  if (name == NULL) {
    for (size_t i = 0; i < table.n; i++)
      if (strcmp(table.links[i].name, section) == 0)
        return DNN__INI_FAIL(err, DNN_EPARSE, LINKS_FILE, line, section, NULL,
                             "link defined twice");
    if (table.n == LINKS_MAX)
      return DNN__INI_FAIL(err, DNN_ERANGE, LINKS_FILE, line, section, NULL,
                           "more than %d links", LINKS_MAX);
    if (strlen(section) >= sizeof table.links[0].name || section[0] == '\0')
      return DNN__INI_FAIL(err, DNN_ERANGE, LINKS_FILE, line, section, NULL,
                           "link name empty or too long");
    dnn_link *l = &table.links[table.n];
    snprintf(l->name, sizeof l->name, "%s", section);
    table.header_line[table.n] = line;
    table.n++;
    return DNN_OK;
  }
  if (table.n == 0)
    return DNN__INI_FAIL(err, DNN_EPARSE, LINKS_FILE, line, NULL, NULL,
                         "'%s' is outside any [link] section", name);
  size_t i = table.n - 1;
  bool latency = strcmp(name, "latency_us") == 0;
  if (!latency && strcmp(name, "bandwidth_GBps") != 0) {
    static const char *const keys[] = {"latency_us", "bandwidth_GBps", NULL};
    const char *near = dnn_nearest_name(name, keys);
    return DNN__INI_FAIL(err, DNN_EPARSE, LINKS_FILE, line, section, name,
                         "unknown key%s%s%s", near ? " (did you mean '" : "",
                         near ? near : "", near ? "'?)" : "");
  }
  bool *seen = latency ? &table.seen_latency[i] : &table.seen_bandwidth[i];
  if (*seen)
    return DNN__INI_FAIL(err, DNN_EPARSE, LINKS_FILE, line, section, name,
                         "given twice");
  *seen = true;
  dnn_error e;
  double v;
  if (dnn__parse_double(value, &v, &e) != DNN_OK)
    return DNN__INI_FAIL(err, DNN_EPARSE, LINKS_FILE, line, section, name, "%s",
                         e.msg);
  /* Validation ranges (not hardware constants): up to 1 s and 1 PB/s. */
  if (latency ? !(v >= 0 && v <= 1e6) : !(v > 0 && v <= 1e6))
    return DNN__INI_FAIL(err, DNN_ERANGE, LINKS_FILE, line, section, name,
                         "%g is out of range %s", v,
                         latency ? "[0, 1e6] us" : "(0, 1e6] GB/s");
  if (latency)
    table.links[i].latency_s = v * 1e-6;
  else
    table.links[i].bandwidth_Bps = v * 1e9;
  return DNN_OK;
}

static void table_init(void) {
  const char *text = NULL;
  for (size_t i = 0; dnn__embedded_links[i].name; i++)
    if (strcmp(dnn__embedded_links[i].name, "links") == 0)
      text = dnn__embedded_links[i].text;
  dnn_error_clear(&table.error);
  if (text == NULL) {
    table.st = DNN_FAIL(&table.error, DNN_ENOTFOUND,
                        "%s is not embedded in this build", LINKS_FILE);
  } else {
    table.st = dnn__ini_parse(text, LINKS_FILE, on_ini, NULL, &table.error);
  }
  for (size_t i = 0; table.st == DNN_OK && i < table.n; i++) {
    if (!table.seen_latency[i] || !table.seen_bandwidth[i])
      table.st =
          DNN__INI_FAIL(&table.error, DNN_EPARSE, LINKS_FILE,
                        table.header_line[i], table.links[i].name,
                        table.seen_latency[i] ? "bandwidth_GBps" : "latency_us",
                        "required key missing");
  }
  if (table.st != DNN_OK)
    table.n = 0;
  for (size_t i = 0; i < table.n; i++)
    table.names[i] = table.links[i].name;
  table.names[table.n] = NULL;
}

const char *const *dnn_hw_link_list(void) {
  call_once(&table_once, table_init);
  return table.names;
}

dnn_status dnn_hw_link_builtin(const char *name, dnn_link *out,
                               dnn_error *err) {
  const char *const *names = dnn_hw_link_list();
  if (table.st != DNN_OK) {
    if (err)
      *err = table.error;
    return table.st;
  }
  for (size_t i = 0; i < table.n; i++) {
    if (strcmp(table.links[i].name, name) == 0) {
      *out = table.links[i];
      return DNN_OK;
    }
  }
  dnn__buf b;
  dnn__buf_init(&b);
  for (size_t i = 0; names[i]; i++)
    dnn__buf_appendf(&b, "%s%s", i ? ", " : "", names[i]);
  const char *near = dnn_nearest_name(name, names);
  dnn_status st = DNN_FAIL(err, DNN_ENOTFOUND,
                           "unknown link '%s'%s%s%s; built-in links: %s", name,
                           near ? " (did you mean '" : "", near ? near : "",
                           near ? "'?)" : "", b.data ? b.data : "");
  dnn__buf_free(&b);
  return st;
}
