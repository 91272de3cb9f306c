/*
 * Charts: collecting points into a dnn_plot, writing its data file and
 * gnuplot script atomically next to the image, and running gnuplot.
 *
 * Invariant: see plots/internal.h (indices below their counts, names
 * sanitised). The library never looks gnuplot up on PATH: the caller
 * passes its path to dnn_plot_render, which runs it with posix_spawn,
 * captures its standard error and reports its last line on failure.
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *const kind_names[] = {
    "scaling", "efficiency", "breakdown", "validation", "timeline", NULL};

/* Bytes of gnuplot's standard error kept for the failure message. */
#define STDERR_KEEP 4096

/* ---- Names and parameters ---------------------------------------------------
 */

const char *dnn_plot_kind_name(dnn_plot_kind kind) {
  return kind < DNN_PLOT_KIND_COUNT ? kind_names[kind] : "?";
}

dnn_status dnn_plot_kind_parse(const char *name, dnn_plot_kind *out,
                               dnn_error *err) {
  for (size_t i = 0; kind_names[i]; i++)
    if (strcmp(name, kind_names[i]) == 0) {
      *out = (dnn_plot_kind)i;
      return DNN_OK;
    }
  const char *near = dnn_nearest_name(name, kind_names);
  return DNN_FAIL(err, DNN_EINVAL,
                  "unknown chart kind '%s'%s%s%s; expected scaling, "
                  "efficiency, breakdown, validation or timeline",
                  name, near ? " (did you mean " : "", near ? near : "",
                  near ? "?)" : "");
}

/* The extension of `path` (after the last '.' of its last component), or
 * NULL. */
static const char *extension(const char *path) {
  const char *slash = strrchr(path, '/');
  const char *dot = strrchr(slash ? slash + 1 : path, '.');
  return dot && dot[1] ? dot + 1 : NULL;
}

dnn_status dnn_plot_format_of(const char *image_path, dnn_plot_format *out,
                              dnn_error *err) {
  const char *ext = extension(image_path);
  if (ext && strcasecmp(ext, "png") == 0)
    *out = DNN_PLOT_PNG;
  else if (ext && strcasecmp(ext, "svg") == 0)
    *out = DNN_PLOT_SVG;
  else if (ext && strcasecmp(ext, "pdf") == 0)
    *out = DNN_PLOT_PDF;
  else
    return DNN_FAIL(err, DNN_EINVAL,
                    "%s: the chart's file name must end in .png, .svg or "
                    ".pdf",
                    image_path);
  return DNN_OK;
}

dnn_plot_params dnn_plot_default_params(dnn_plot_kind kind) {
  dnn_plot_params p;
  memset(&p, 0, sizeof p);
  p.kind = kind;
  snprintf(p.font, sizeof p.font, "Sans");
  p.font_pt = 13;
  p.band = 0.1;
  return p;
}

/* ---- Building
 * ----------------------------------------------------------------- */

void dnn__plot_sanitize(char *dst, size_t n, const char *src) {
  size_t i = 0;
  for (; src && src[i] && i + 1 < n; i++) {
    unsigned char c = (unsigned char)src[i];
    dst[i] = c == '"' ? '\'' : c == '\\' ? '/' : c < 0x20 ? ' ' : (char)c;
  }
  if (n)
    dst[i] = '\0';
}

bool dnn__plot_names_find(dnn__plot_names *names, const char *name,
                          size_t *index) {
  dnn__plot_name clean;
  dnn__plot_sanitize(clean, sizeof clean, name);
  for (size_t i = 0; i < names->n; i++)
    if (strcmp(names->v[i], clean) == 0) {
      *index = i;
      return true;
    }
  if (!dnn__grow((void **)&names->v, &names->cap, names->n + 1,
                 sizeof names->v[0]))
    return false;
  memcpy(names->v[names->n], clean, sizeof clean);
  *index = names->n++;
  return true;
}

dnn_status dnn_plot_alloc(const dnn_plot_params *params, dnn_plot **out,
                          dnn_error *err) {
  DNN_ASSERT(params->kind < DNN_PLOT_KIND_COUNT);
  *out = dnn_calloc(1, sizeof **out);
  if (*out == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory allocating a chart");
  (*out)->params = *params;
  dnn_plot_params *pp = &(*out)->params;
  dnn__plot_sanitize(pp->title, sizeof pp->title, params->title);
  dnn__plot_sanitize(pp->x_label, sizeof pp->x_label, params->x_label);
  dnn__plot_sanitize(pp->key_title, sizeof pp->key_title, params->key_title);
  dnn__plot_sanitize(pp->font, sizeof pp->font, params->font);
  if (!(pp->font_pt > 0))
    pp->font_pt = 13;
  return DNN_OK;
}

void dnn_plot_free(dnn_plot *pl) {
  if (pl == NULL)
    return;
  dnn_free(pl->series.v);
  dnn_free(pl->pts);
  dnn_free(pl->rows.v);
  dnn_free(pl->cats.v);
  dnn_free(pl->bars);
  dnn_free(pl);
}

static dnn_status add_point(dnn_plot *pl, const char *series, const char *label,
                            dnn__plot_point **out, dnn_error *err) {
  size_t k;
  if (!dnn__plot_names_find(&pl->series, series, &k) ||
      !dnn__grow((void **)&pl->pts, &pl->cap_pts, pl->n_pts + 1,
                 sizeof pl->pts[0]))
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory adding a chart point");
  dnn__plot_point *p = &pl->pts[pl->n_pts++];
  memset(p, 0, sizeof *p);
  p->series = k;
  dnn__plot_sanitize(p->label, sizeof p->label, label);
  *out = p;
  return DNN_OK;
}

dnn_status dnn_plot_add_prediction(dnn_plot *pl, const char *series,
                                   const char *label, const dnn_prediction *p,
                                   dnn_error *err) {
  DNN_ASSERT(pl->params.kind == DNN_PLOT_SCALING ||
             pl->params.kind == DNN_PLOT_EFFICIENCY ||
             pl->params.kind == DNN_PLOT_BREAKDOWN);
  if (!(p->iteration_s > 0) || !isfinite(p->iteration_s) || p->devices == 0)
    return DNN_FAIL(err, DNN_EINVAL,
                    "%s %s: the prediction has no finite iteration time",
                    series, label);
  dnn__plot_point *q;
  dnn_status st = add_point(pl, series, label, &q, err);
  if (st)
    return st;
  q->devices = dnn__d(p->devices);
  q->throughput = p->throughput_samples_per_s;
  q->iteration_s = p->iteration_s;
  q->model_efficiency = p->scaling_efficiency;
  q->parts = p->breakdown;
  return DNN_OK;
}

dnn_status dnn_plot_add_measurement(dnn_plot *pl, const char *series,
                                    const char *label, double measured_s,
                                    double predicted_s, dnn_error *err) {
  DNN_ASSERT(pl->params.kind == DNN_PLOT_VALIDATION);
  if (!(measured_s > 0) || !isfinite(measured_s) || !(predicted_s > 0) ||
      !isfinite(predicted_s))
    return DNN_FAIL(err, DNN_EINVAL,
                    "%s %s: measured (%g s) and predicted (%g s) iteration "
                    "times must be positive",
                    series, label, measured_s, predicted_s);
  dnn__plot_point *q;
  dnn_status st = add_point(pl, series, label, &q, err);
  if (st)
    return st;
  q->measured_s = measured_s;
  q->iteration_s = predicted_s;
  q->devices = 1;
  return DNN_OK;
}

dnn_status dnn_plot_add_span(dnn_plot *pl, const dnn_plot_span *span,
                             dnn_error *err) {
  DNN_ASSERT(pl->params.kind == DNN_PLOT_TIMELINE);
  if (!(span->start_s >= 0) || !isfinite(span->start_s) ||
      !(span->duration_s >= 0) || !isfinite(span->duration_s))
    return DNN_FAIL(err, DNN_EINVAL,
                    "%s %s: span '%s' has a negative or non-finite time "
                    "(start %g s, duration %g s)",
                    span->device, span->stream, span->category, span->start_s,
                    span->duration_s);
  char row[DNN_PLOT_LABEL_MAX];
  snprintf(row, sizeof row, "%s · %s", span->device, span->stream);
  size_t r, c;
  if (!dnn__plot_names_find(&pl->rows, row, &r) ||
      !dnn__plot_names_find(&pl->cats, span->category, &c) ||
      !dnn__grow((void **)&pl->bars, &pl->cap_bars, pl->n_bars + 1,
                 sizeof pl->bars[0]))
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory adding a timeline span");
  dnn__plot_bar *b = &pl->bars[pl->n_bars++];
  b->row = r;
  b->cat = c;
  b->start_s = span->start_s;
  b->duration_s = span->duration_s;
  return DNN_OK;
}

size_t dnn_plot_points(const dnn_plot *pl) {
  return pl->params.kind == DNN_PLOT_TIMELINE ? pl->n_bars : pl->n_pts;
}

/* ---- Writing
 * ------------------------------------------------------------------- */

/* `path` with its extension replaced by `ext` (which includes the dot). */
static dnn_status with_ext(const char *path, const char *ext, char *out,
                           size_t n, dnn_error *err) {
  const char *e = extension(path);
  size_t stem = e ? (size_t)(e - 1 - path) : strlen(path);
  if (stem + strlen(ext) >= n)
    return DNN_FAIL(err, DNN_EINVAL, "%s: path too long", path);
  memcpy(out, path, stem);
  snprintf(out + stem, n - stem, "%s", ext);
  return DNN_OK;
}

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

dnn_status dnn_plot_write(const dnn_plot *pl, const char *image_path,
                          dnn_plot_files *files, dnn_error *err) {
  dnn_plot_format fmt;
  dnn_status st = dnn_plot_format_of(image_path, &fmt, err);
  if (st)
    return st;
  if (dnn_plot_points(pl) == 0)
    return DNN_FAIL(err, DNN_EINVAL, "%s: nothing to plot (no points)",
                    image_path);
  dnn_plot_files f;
  if (strlen(image_path) >= sizeof f.image)
    return DNN_FAIL(err, DNN_EINVAL, "%s: path too long", image_path);
  snprintf(f.image, sizeof f.image, "%s", image_path);
  if ((st = with_ext(image_path, ".dat", f.data, sizeof f.data, err)) ||
      (st = with_ext(image_path, ".gp", f.script, sizeof f.script, err)))
    return st;
  dnn__buf data, script;
  dnn__buf_init(&data);
  dnn__buf_init(&script);
  dnn__plot_script(pl, fmt, base_name(f.data), base_name(f.image), &data,
                   &script);
  if (data.failed || script.failed || !data.data || !script.data)
    st = DNN_FAIL(err, DNN_ENOMEM, "%s: out of memory writing the chart",
                  image_path);
  if (st == DNN_OK)
    st = dnn_file_write_atomic(f.data, data.data, data.len, err);
  if (st == DNN_OK)
    st = dnn_file_write_atomic(f.script, script.data, script.len, err);
  dnn__buf_free(&data);
  dnn__buf_free(&script);
  if (st == DNN_OK && files)
    *files = f;
  return st;
}

/* ---- Rendering
 * ------------------------------------------------------------------ */

/* The last non-empty line of `text` into `out`. */
static void last_line(const char *text, char *out, size_t n) {
  size_t len = strlen(text);
  while (len && isspace((unsigned char)text[len - 1]))
    len--;
  size_t start = len;
  while (start && text[start - 1] != '\n')
    start--;
  snprintf(out, n, "%.*s", (int)(len - start), text + start);
}

dnn_status dnn_plot_render(const char *gnuplot_path, const char *script_path,
                           dnn_error *err) {
  struct stat sb;
  if (stat(gnuplot_path, &sb) != 0 || !S_ISREG(sb.st_mode) ||
      access(gnuplot_path, X_OK) != 0)
    return DNN_FAIL(err, DNN_EUNSUPPORTED,
                    "gnuplot not found at '%s' (install gnuplot, e.g. apt "
                    "install gnuplot-nox, then run: gnuplot %s)",
                    gnuplot_path, script_path);
  int fds[2];
  if (pipe(fds) != 0)
    return DNN_FAIL(err, DNN_EIO, "cannot run gnuplot: pipe: %s",
                    strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  posix_spawn_file_actions_addclose(&fa, fds[1]);
  char *argv[] = {(char *)gnuplot_path, (char *)script_path, NULL};
  pid_t pid;
  int rc = posix_spawn(&pid, gnuplot_path, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    return DNN_FAIL(err, DNN_EIO, "cannot run %s: %s", gnuplot_path,
                    strerror(rc));
  }
  /* Keep the tail of standard error: gnuplot's message comes last. */
  char keep[STDERR_KEEP + 1];
  size_t kept = 0;
  char chunk[1024];
  for (;;) {
    ssize_t n = read(fds[0], chunk, sizeof chunk);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    size_t m = (size_t)n;
    if (kept + m > STDERR_KEEP) {
      size_t drop = kept + m - STDERR_KEEP;
      if (drop > kept)
        drop = kept;
      memmove(keep, keep + drop, kept - drop);
      kept -= drop;
    }
    if (m > STDERR_KEEP)
      m = STDERR_KEEP;
    memcpy(keep + kept, chunk + (size_t)n - m, m);
    kept += m;
  }
  keep[kept] = '\0';
  close(fds[0]);
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return DNN_FAIL(err, DNN_EIO, "waiting for gnuplot: %s", strerror(errno));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return DNN_OK;
  char line[512];
  last_line(keep, line, sizeof line);
  if (WIFEXITED(status))
    return DNN_FAIL(err, DNN_ETOOLFAIL, "gnuplot failed on %s (exit %d): %s",
                    script_path, WEXITSTATUS(status),
                    line[0] ? line : "no message");
  return DNN_FAIL(err, DNN_ETOOLFAIL, "gnuplot was killed by signal %d on %s",
                  WTERMSIG(status), script_path);
}
