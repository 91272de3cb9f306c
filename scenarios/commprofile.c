/*
 * Comm profiles (include/dnnsim/hw.h): the calibrated collective fits that
 * `dnnsim calibrate mpi` writes and `[cluster] comm_profile` reads.
 *
 * Format (docs/calibration.md): a [comm] section (name, source,
 * calibrated, gamma_ns_per_byte, nodes: optional, 1 when absent), an
 * optional [loggp] section (L_us, o_us,
 * g_us, G_ns_per_byte, P) and one [fit.OP.MPI_ALGORITHM.RANKS] section per
 * fit with op, algorithm (the comm.h model), mpi_algorithm, ranks,
 * segment1..4 = "LO_BYTES LATENCY_us NS_PER_BYTE", alpha_us,
 * beta_ns_per_byte, gamma_ns_per_byte (or "none" for AUTO), min_bytes,
 * max_bytes, points, r2, median_rel_residual, max_rel_residual and poor.
 * Units are in the key names; SI inside.
 *
 * Invariant: a profile's fits always pass fit validation (segments
 * increasing in lo_bytes, finite numbers, savable names), so save and load
 * round-trip every fit; lookups never allocate.
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include "dnnsim/comm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[] = {
#define X(id, name) name,
    DNN_COMM_OP_LIST(X)
#undef X
        NULL};
/* Algorithm names; "-" (index DNN_COMM_ALGO_COUNT) for no comm.h model. */
static const char *const algo_names[] = {
#define X(id, name) name,
    DNN_COMM_ALGO_LIST(X)
#undef X
        "-",
    NULL};

struct dnn_comm_profile {
  dnn_comm_profile_info info;
  dnn_comm_fit *fits;
  size_t n, cap;
};

/* ------------------------------------------------------------------------ */
/* Building                                                                 */
/* ------------------------------------------------------------------------ */

dnn_status dnn_hw_comm_profile_alloc(const dnn_comm_profile_info *info,
                                     dnn_comm_profile **out, dnn_error *err) {
  *out = dnn_calloc(1, sizeof **out);
  if (*out == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory for a comm profile");
  (*out)->info = *info;
  return DNN_OK;
}

void dnn_hw_comm_profile_free(dnn_comm_profile *cp) {
  if (cp == NULL)
    return;
  dnn_free(cp->fits);
  dnn_free(cp);
}

const dnn_comm_profile_info *
dnn_hw_comm_profile_info(const dnn_comm_profile *cp) {
  return &cp->info;
}

size_t dnn_hw_comm_profile_count(const dnn_comm_profile *cp) {
  return cp->n;
}

const dnn_comm_fit *dnn_hw_comm_profile_get(const dnn_comm_profile *cp,
                                            size_t i) {
  DNN_ASSERT(i < cp->n);
  return &cp->fits[i];
}

/* A name usable in a section header and a value: letters, digits, '_'
 * and '-'. */
static bool name_ok(const char *s, size_t size) {
  size_t n = strnlen(s, size);
  if (n == 0 || n == size)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  }
  return true;
}

static const char *fit_invalid(const dnn_comm_fit *f) {
  if (f->op < 0 || f->op >= DNN_COMM_OP_COUNT)
    return "bad op";
  if (f->algo < 0 || f->algo > DNN_COMM_ALGO_COUNT)
    return "bad algorithm";
  if (!name_ok(f->mpi_algorithm, sizeof f->mpi_algorithm))
    return "mpi_algorithm must be letters, digits, '_' or '-'";
  if (f->ranks < 1)
    return "ranks must be >= 1";
  if (f->n_segments < 1 || f->n_segments > DNN_COMM_FIT_MAX_SEGMENTS)
    return "needs 1 to 4 segments";
  for (size_t k = 0; k < f->n_segments; k++) {
    const dnn_comm_segment *s = &f->seg[k];
    if (!isfinite(s->lo_bytes) || !isfinite(s->latency_s) ||
        !isfinite(s->s_per_byte) || s->lo_bytes < 0)
      return "segment numbers must be finite (lo_bytes >= 0)";
    if (k > 0 && !(s->lo_bytes > f->seg[k - 1].lo_bytes))
      return "segments must start at increasing sizes";
  }
  const double v[] = {f->alpha_s,
                      f->beta_s_per_byte,
                      f->gamma_s_per_byte,
                      f->min_bytes,
                      f->max_bytes,
                      f->r2,
                      f->median_rel_residual,
                      f->max_rel_residual};
  for (size_t k = 0; k < DNN_ARRAY_LEN(v); k++)
    if (!isfinite(v[k]))
      return "numbers must be finite";
  if (f->min_bytes < 0 || f->max_bytes < f->min_bytes)
    return "size range must satisfy 0 <= min_bytes <= max_bytes";
  return NULL;
}

dnn_status dnn_hw_comm_profile_add(dnn_comm_profile *cp,
                                   const dnn_comm_fit *fit, dnn_error *err) {
  const char *why = fit_invalid(fit);
  if (why)
    return DNN_FAIL(err, DNN_EINVAL, "collective fit %s/%s on %zu ranks: %s",
                    (unsigned)fit->op < DNN_COMM_OP_COUNT ? op_names[fit->op]
                                                          : "?",
                    fit->mpi_algorithm, fit->ranks, why);
  for (size_t i = 0; i < cp->n; i++) {
    dnn_comm_fit *f = &cp->fits[i];
    if (f->op == fit->op && f->ranks == fit->ranks &&
        strcmp(f->mpi_algorithm, fit->mpi_algorithm) == 0) {
      *f = *fit;
      return DNN_OK;
    }
  }
  void *p = cp->fits;
  if (!dnn__grow(&p, &cp->cap, cp->n + 1, sizeof *cp->fits))
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory adding a collective fit");
  cp->fits = p;
  cp->fits[cp->n++] = *fit;
  return DNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Queries                                                                  */
/* ------------------------------------------------------------------------ */

const dnn_comm_fit *dnn_hw_comm_profile_lookup(const dnn_comm_profile *cp,
                                               int op, int algo, size_t ranks,
                                               bool *exact) {
  const dnn_comm_fit *best = NULL;
  size_t best_d = 0;
  for (size_t i = 0; i < cp->n; i++) {
    const dnn_comm_fit *f = &cp->fits[i];
    if (f->op != op || f->algo != algo)
      continue;
    size_t d = f->ranks > ranks ? f->ranks - ranks : ranks - f->ranks;
    if (best == NULL || d < best_d || (d == best_d && f->ranks > best->ranks)) {
      best = f;
      best_d = d;
    }
  }
  if (exact)
    *exact = best != NULL && best_d == 0;
  return best;
}

void dnn_hw_comm_profile_bracket(const dnn_comm_profile *cp, int op, int algo,
                                 size_t ranks, const dnn_comm_fit **lo,
                                 const dnn_comm_fit **hi) {
  *lo = *hi = NULL;
  for (size_t i = 0; i < cp->n; i++) {
    const dnn_comm_fit *f = &cp->fits[i];
    if (f->op != op || f->algo != algo)
      continue;
    if (f->ranks == ranks) {
      *lo = *hi = NULL;
      return;
    }
    if (f->ranks < ranks && (*lo == NULL || f->ranks > (*lo)->ranks))
      *lo = f;
    if (f->ranks > ranks && (*hi == NULL || f->ranks < (*hi)->ranks))
      *hi = f;
  }
}

double dnn_hw_comm_fit_time(const dnn_comm_fit *fit, double bytes) {
  size_t k = 0;
  while (k + 1 < fit->n_segments && bytes >= fit->seg[k + 1].lo_bytes)
    k++;
  return fit->seg[k].latency_s + fit->seg[k].s_per_byte * bytes;
}

/* ------------------------------------------------------------------------ */
/* Saving                                                                   */
/* ------------------------------------------------------------------------ */

/* Text that survives an INI round trip (see hw.c's text rule). */
static void put_text(FILE *fp, const char *key, const char *s) {
  fprintf(fp, "%s =", key);
  if (s[0])
    fputc(' ', fp);
  for (const char *c = s; *c; c++)
    fputc((unsigned char)*c < 0x20 || *c == ';' ? ' ' : *c, fp);
  fputc('\n', fp);
}

dnn_status dnn_hw_comm_profile_save(const dnn_comm_profile *cp,
                                    const char *path, dnn_error *err) {
  dnn_outfile *f = NULL;
  dnn_status st = dnn_outfile_open(path, &f, err);
  if (st)
    return st;
  FILE *fp = dnn_outfile_stream(f);
  const dnn_comm_profile_info *in = &cp->info;
  fprintf(fp,
          "; dnnsim comm profile: fitted collective times "
          "(docs/calibration.md).\n"
          "; Units: us = 1e-6 s, ns_per_byte = 1e-9 s/byte. A segment is\n"
          "; \"LO_BYTES LATENCY_us NS_PER_BYTE\": t(m) = latency + slope * m"
          " from LO_BYTES on.\n\n[comm]\n");
  put_text(fp, "name", in->name);
  put_text(fp, "source", in->source);
  put_text(fp, "calibrated", in->calibrated);
  fprintf(fp, "gamma_ns_per_byte = %.9g\n", in->gamma_s_per_byte * 1e9);
  fprintf(fp, "nodes = %zu\n", in->nodes ? in->nodes : 1);
  if (in->has_loggp)
    fprintf(fp,
            "\n[loggp]\nL_us = %.9g\no_us = %.9g\ng_us = %.9g\n"
            "G_ns_per_byte = %.9g\nP = %zu\n",
            in->loggp_L_s * 1e6, in->loggp_o_s * 1e6, in->loggp_g_s * 1e6,
            in->loggp_G_s_per_byte * 1e9, in->loggp_P);
  for (size_t i = 0; i < cp->n; i++) {
    const dnn_comm_fit *x = &cp->fits[i];
    fprintf(fp, "\n[fit.%s.%s.%zu]\n", op_names[x->op], x->mpi_algorithm,
            x->ranks);
    fprintf(fp, "op = %s\nalgorithm = %s\nmpi_algorithm = %s\nranks = %zu\n",
            op_names[x->op], algo_names[x->algo], x->mpi_algorithm, x->ranks);
    for (size_t k = 0; k < x->n_segments; k++)
      fprintf(fp, "segment%zu = %.9g %.9g %.9g\n", k + 1, x->seg[k].lo_bytes,
              x->seg[k].latency_s * 1e6, x->seg[k].s_per_byte * 1e9);
    if (x->has_link)
      fprintf(fp,
              "alpha_us = %.9g\nbeta_ns_per_byte = %.9g\n"
              "gamma_ns_per_byte = %.9g\n",
              x->alpha_s * 1e6, x->beta_s_per_byte * 1e9,
              x->gamma_s_per_byte * 1e9);
    else
      fprintf(fp, "alpha_us = none\nbeta_ns_per_byte = none\n"
                  "gamma_ns_per_byte = none\n");
    fprintf(fp,
            "min_bytes = %.17g\nmax_bytes = %.17g\npoints = %zu\nr2 = %.6g\n"
            "median_rel_residual = %.6g\nmax_rel_residual = %.6g\n"
            "poor = %s\n",
            x->min_bytes, x->max_bytes, x->points, x->r2,
            x->median_rel_residual, x->max_rel_residual,
            x->poor ? "yes" : "no");
  }
  return dnn_outfile_commit(f, err);
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                  */
/* ------------------------------------------------------------------------ */

/* Keys of a fit section, in the order they are written. */
enum {
  FK_OP,
  FK_ALGORITHM,
  FK_MPI,
  FK_RANKS,
  FK_SEG1,
  FK_SEG2,
  FK_SEG3,
  FK_SEG4,
  FK_ALPHA,
  FK_BETA,
  FK_GAMMA,
  FK_MIN,
  FK_MAX,
  FK_POINTS,
  FK_R2,
  FK_MEDIAN,
  FK_MAXRES,
  FK_POOR,
  FK_COUNT
};
static const char *const fit_keys[] = {"op",
                                       "algorithm",
                                       "mpi_algorithm",
                                       "ranks",
                                       "segment1",
                                       "segment2",
                                       "segment3",
                                       "segment4",
                                       "alpha_us",
                                       "beta_ns_per_byte",
                                       "gamma_ns_per_byte",
                                       "min_bytes",
                                       "max_bytes",
                                       "points",
                                       "r2",
                                       "median_rel_residual",
                                       "max_rel_residual",
                                       "poor",
                                       NULL};
static const char *const comm_keys[] = {
    "name", "source", "calibrated", "gamma_ns_per_byte", "nodes", NULL};
static const char *const loggp_keys[] = {"L_us",          "o_us", "g_us",
                                         "G_ns_per_byte", "P",    NULL};

typedef struct parse {
  dnn_comm_profile *cp;
  const char *file;
  int kind;          /* 0 none, 1 [comm], 2 [loggp], 3 [fit.*] */
  char section[128]; /* current section name */
  int section_line;
  dnn_comm_fit fit; /* the fit being read */
  int fit_line[FK_COUNT];
  int comm_line[5];
  int loggp_line[5];
  bool in_fit;
} parse;

static int key_index(const char *const *keys, const char *name) {
  for (int i = 0; keys[i]; i++)
    if (strcmp(keys[i], name) == 0)
      return i;
  return -1;
}

/* Finishes the fit section being read: every key present, then add. */
static dnn_status end_fit(parse *s, dnn_error *err) {
  if (!s->in_fit)
    return DNN_OK;
  s->in_fit = false;
  static const int required[] = {FK_OP,     FK_ALGORITHM, FK_MPI,    FK_RANKS,
                                 FK_SEG1,   FK_ALPHA,     FK_BETA,   FK_GAMMA,
                                 FK_MIN,    FK_MAX,       FK_POINTS, FK_R2,
                                 FK_MEDIAN, FK_MAXRES,    FK_POOR};
  for (size_t k = 0; k < DNN_ARRAY_LEN(required); k++)
    if (s->fit_line[required[k]] == 0)
      return DNN__INI_FAIL(err, DNN_EPARSE, s->file, s->section_line,
                           s->section, fit_keys[required[k]],
                           "required key missing");
  dnn_comm_fit *f = &s->fit;
  size_t n = 0;
  while (n < DNN_COMM_FIT_MAX_SEGMENTS && s->fit_line[FK_SEG1 + (int)n])
    n++;
  for (size_t k = n; k < DNN_COMM_FIT_MAX_SEGMENTS; k++)
    if (s->fit_line[FK_SEG1 + (int)k])
      return DNN__INI_FAIL(
          err, DNN_EPARSE, s->file, s->fit_line[FK_SEG1 + (int)k], s->section,
          fit_keys[FK_SEG1 + (int)k], "segments must be numbered without gaps");
  f->n_segments = n;
  const char *why = fit_invalid(f);
  if (why)
    return DNN__INI_FAIL(err, DNN_ERANGE, s->file, s->section_line, s->section,
                         NULL, "%s", why);
  return dnn_hw_comm_profile_add(s->cp, f, err);
}

/* A number in INI units times `scale`; "none" allowed when `none`. */
static dnn_status num(parse *s, const char *key, const char *value, int line,
                      double scale, bool nonneg, double *out, dnn_error *err) {
  dnn_error e;
  dnn_error_clear(&e);
  double v;
  if (dnn__parse_double(value, &v, &e))
    return DNN__INI_FAIL(err, DNN_EPARSE, s->file, line, s->section, key, "%s",
                         e.msg);
  if (!isfinite(v) || (nonneg && v < 0))
    return DNN__INI_FAIL(err, DNN_ERANGE, s->file, line, s->section, key,
                         "%g is out of range (finite%s)", v,
                         nonneg ? ", >= 0" : "");
  *out = v * scale;
  return DNN_OK;
}

static dnn_status fit_value(parse *s, int k, const char *key, const char *value,
                            int line, dnn_error *err) {
  dnn_comm_fit *f = &s->fit;
  dnn_error e;
  dnn_error_clear(&e);
  int idx = 0;
  switch (k) {
  case FK_OP:
    if (dnn__parse_choice(value, op_names, &idx, &e))
      return DNN__INI_FAIL(err, DNN_EPARSE, s->file, line, s->section, key,
                           "%s", e.msg);
    f->op = idx;
    return DNN_OK;
  case FK_ALGORITHM:
    if (dnn__parse_choice(value, algo_names, &idx, &e))
      return DNN__INI_FAIL(err, DNN_EPARSE, s->file, line, s->section, key,
                           "%s", e.msg);
    f->algo = idx;
    return DNN_OK;
  case FK_MPI:
    if (!name_ok(value, sizeof f->mpi_algorithm) ||
        strlen(value) >= sizeof f->mpi_algorithm)
      return DNN__INI_FAIL(err, DNN_ERANGE, s->file, line, s->section, key,
                           "expected a name of letters, digits, '_' or '-' "
                           "(at most %zu characters), got '%s'",
                           sizeof f->mpi_algorithm - 1, value);
    snprintf(f->mpi_algorithm, sizeof f->mpi_algorithm, "%s", value);
    return DNN_OK;
  case FK_RANKS:
  case FK_POINTS: {
    size_t v = 0;
    if (dnn__parse_size(value, &v, &e))
      return DNN__INI_FAIL(err, DNN_EPARSE, s->file, line, s->section, key,
                           "%s", e.msg);
    if (k == FK_RANKS && v < 1)
      return DNN__INI_FAIL(err, DNN_ERANGE, s->file, line, s->section, key,
                           "ranks must be >= 1");
    *(k == FK_RANKS ? &f->ranks : &f->points) = v;
    return DNN_OK;
  }
  case FK_SEG1:
  case FK_SEG2:
  case FK_SEG3:
  case FK_SEG4: {
    dnn_comm_segment *g = &f->seg[k - FK_SEG1];
    char *end = NULL;
    double v[3];
    const char *p = value;
    for (int q = 0; q < 3; q++) {
      v[q] = strtod(p, &end);
      if (end == p || !isfinite(v[q]))
        return DNN__INI_FAIL(err, DNN_EPARSE, s->file, line, s->section, key,
                             "expected three numbers \"LO_BYTES LATENCY_us "
                             "NS_PER_BYTE\", got '%s'",
                             value);
      p = end;
    }
    while (*p == ' ' || *p == '\t')
      p++;
    if (*p != '\0' || v[0] < 0)
      return DNN__INI_FAIL(err, DNN_EPARSE, s->file, line, s->section, key,
                           "expected three numbers \"LO_BYTES LATENCY_us "
                           "NS_PER_BYTE\" (LO_BYTES >= 0), got '%s'",
                           value);
    g->lo_bytes = v[0];
    g->latency_s = v[1] * 1e-6;
    g->s_per_byte = v[2] * 1e-9;
    return DNN_OK;
  }
  case FK_ALPHA:
  case FK_BETA:
  case FK_GAMMA: {
    double *dst = k == FK_ALPHA  ? &f->alpha_s
                  : k == FK_BETA ? &f->beta_s_per_byte
                                 : &f->gamma_s_per_byte;
    if (strcmp(value, "none") == 0) {
      *dst = 0;
      f->has_link = false;
      return DNN_OK;
    }
    f->has_link = true;
    return num(s, key, value, line, k == FK_ALPHA ? 1e-6 : 1e-9, false, dst,
               err);
  }
  case FK_MIN:
    return num(s, key, value, line, 1, true, &f->min_bytes, err);
  case FK_MAX:
    return num(s, key, value, line, 1, true, &f->max_bytes, err);
  case FK_R2:
    return num(s, key, value, line, 1, false, &f->r2, err);
  case FK_MEDIAN:
    return num(s, key, value, line, 1, true, &f->median_rel_residual, err);
  case FK_MAXRES:
    return num(s, key, value, line, 1, true, &f->max_rel_residual, err);
  case FK_POOR: {
    bool b = false;
    if (dnn__parse_bool(value, &b, &e))
      return DNN__INI_FAIL(err, DNN_EPARSE, s->file, line, s->section, key,
                           "%s", e.msg);
    f->poor = b;
    return DNN_OK;
  }
  default:
    return DNN_OK;
  }
}

static dnn_status on_ini(void *user, const char *section, const char *key,
                         const char *value, int line, dnn_error *err) {
  parse *s = user;
  if (key == NULL) {
    dnn_status st = end_fit(s, err);
    if (st)
      return st;
    snprintf(s->section, sizeof s->section, "%s", section);
    s->section_line = line;
    if (strcmp(section, "comm") == 0) {
      s->kind = 1;
    } else if (strcmp(section, "loggp") == 0) {
      s->kind = 2;
      s->cp->info.has_loggp = true;
    } else if (strncmp(section, "fit.", 4) == 0) {
      s->kind = 3;
      s->in_fit = true;
      memset(&s->fit, 0, sizeof s->fit);
      memset(s->fit_line, 0, sizeof s->fit_line);
    } else {
      static const char *const names[] = {"comm", "loggp", "fit", NULL};
      const char *near = dnn_nearest_name(section, names);
      return DNN__INI_FAIL(err, DNN_EPARSE, s->file, line, section, NULL,
                           "unknown section (expected [comm], [loggp] or "
                           "[fit.OP.ALGORITHM.RANKS])%s%s%s",
                           near ? "; did you mean [" : "", near ? near : "",
                           near ? "]?" : "");
    }
    return DNN_OK;
  }
  if (s->kind == 0)
    return DNN__INI_FAIL(err, DNN_EPARSE, s->file, line, NULL, NULL,
                         "'%s' is outside any [section]", key);
  const char *const *keys = s->kind == 1   ? comm_keys
                            : s->kind == 2 ? loggp_keys
                                           : fit_keys;
  int k = key_index(keys, key);
  if (k < 0) {
    const char *near = dnn_nearest_name(key, keys);
    return DNN__INI_FAIL(err, DNN_EPARSE, s->file, line, section, key,
                         "unknown key%s%s%s", near ? " (did you mean '" : "",
                         near ? near : "", near ? "'?)" : "");
  }
  int *seen = s->kind == 1   ? &s->comm_line[k]
              : s->kind == 2 ? &s->loggp_line[k]
                             : &s->fit_line[k];
  if (*seen)
    return DNN__INI_FAIL(err, DNN_EPARSE, s->file, line, section, key,
                         "given twice (first on line %d)", *seen);
  *seen = line;
  dnn_comm_profile_info *in = &s->cp->info;
  if (s->kind == 1) {
    if (k == 3)
      return num(s, key, value, line, 1e-9, true, &in->gamma_s_per_byte, err);
    if (k == 4) {
      dnn_error e;
      dnn_error_clear(&e);
      if (dnn__parse_size(value, &in->nodes, &e))
        return DNN__INI_FAIL(err, DNN_EPARSE, s->file, line, section, key, "%s",
                             e.msg);
      if (in->nodes < 1)
        return DNN__INI_FAIL(err, DNN_ERANGE, s->file, line, section, key,
                             "expected at least 1 node, got %zu", in->nodes);
      return DNN_OK;
    }
    char *dst = k == 0 ? in->name : k == 1 ? in->source : in->calibrated;
    size_t size = k == 0 ? sizeof in->name : sizeof in->source;
    if (strlen(value) >= size)
      return DNN__INI_FAIL(err, DNN_ERANGE, s->file, line, section, key,
                           "text too long (at most %zu characters)", size - 1);
    snprintf(dst, size, "%s", value);
    return DNN_OK;
  }
  if (s->kind == 2) {
    if (k == 4) {
      dnn_error e;
      dnn_error_clear(&e);
      if (dnn__parse_size(value, &in->loggp_P, &e))
        return DNN__INI_FAIL(err, DNN_EPARSE, s->file, line, section, key, "%s",
                             e.msg);
      return DNN_OK;
    }
    double *dst[] = {&in->loggp_L_s, &in->loggp_o_s, &in->loggp_g_s,
                     &in->loggp_G_s_per_byte};
    return num(s, key, value, line, k == 3 ? 1e-9 : 1e-6, true, dst[k], err);
  }
  return fit_value(s, k, key, value, line, err);
}

dnn_status dnn_hw_comm_profile_load_string(const char *text, const char *name,
                                           dnn_comm_profile **out,
                                           dnn_error *err) {
  *out = NULL;
  dnn_comm_profile_info info;
  memset(&info, 0, sizeof info);
  parse *s = dnn_calloc(1, sizeof *s);
  if (s == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "%s: out of memory", name);
  dnn_status st = dnn_hw_comm_profile_alloc(&info, &s->cp, err);
  if (st)
    goto fail;
  s->file = name;
  if ((st = dnn__ini_parse(text, name, on_ini, s, err)) ||
      (st = end_fit(s, err)))
    goto fail;
  if (s->comm_line[0] == 0) {
    st = DNN__INI_FAIL(err, DNN_EPARSE, name, 1, "comm", "name",
                       "required key missing (is this a comm profile?)");
    goto fail;
  }
  if (s->cp->info.has_loggp) {
    for (int k = 0; loggp_keys[k]; k++)
      if (s->loggp_line[k] == 0) {
        st = DNN__INI_FAIL(err, DNN_EPARSE, name, 1, "loggp", loggp_keys[k],
                           "required key missing");
        goto fail;
      }
  }
  if (s->cp->info.nodes == 0)
    s->cp->info.nodes = 1; /* profiles before the key: one node */
  *out = s->cp;
  dnn_free(s);
  return DNN_OK;
fail:
  dnn_hw_comm_profile_free(s->cp);
  dnn_free(s);
  return st;
}

dnn_status dnn_hw_comm_profile_load(const char *path, dnn_comm_profile **out,
                                    dnn_error *err) {
  *out = NULL;
  char *text = NULL;
  dnn_status st = dnn_file_read_all(path, &text, NULL, err);
  if (st)
    return st;
  st = dnn_hw_comm_profile_load_string(text, path, out, err);
  dnn_free(text);
  return st;
}
