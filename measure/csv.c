/*
 * Raw measurement tables and their CSV files (include/dnnsim/measure.h):
 * collective points in the nccl-tests / OSU spirit and per-layer kernel
 * times, plus the names of comm.h's enumerations.
 *
 * Invariant: a table row always passes row validation (a text field never
 * holds a comma or control character, times are finite and ordered
 * min <= median <= max), so whatever a table holds can be written and
 * read back unchanged. A bad line of a file is reported as
 * "PATH:LINE: column NAME: what was expected" and nothing after it is
 * read (the rows before it stay in the table, which --resume relies on).
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* comm.h names (expanded from its lists; no link dependency)               */
/* ------------------------------------------------------------------------ */

static const char *const op_names[] = {
#define X(id, name) name,
    DNN_COMM_OP_LIST(X)
#undef X
        NULL};
static const char *const algo_names[] = {
#define X(id, name) name,
    DNN_COMM_ALGO_LIST(X)
#undef X
        NULL};

const char *dnn__meas_op_name(dnn_comm_op op) {
  return (unsigned)op < DNN_COMM_OP_COUNT ? op_names[op] : "?";
}

const char *dnn__meas_algo_name(dnn_comm_algo a) {
  return (unsigned)a < DNN_COMM_ALGO_COUNT ? algo_names[a] : "-";
}

bool dnn__meas_op_parse(const char *name, dnn_comm_op *out) {
  for (size_t i = 0; op_names[i]; i++)
    if (strcmp(name, op_names[i]) == 0) {
      *out = (dnn_comm_op)i;
      return true;
    }
  return false;
}

bool dnn__meas_algo_parse(const char *name, dnn_comm_algo *out) {
  if (strcmp(name, "-") == 0) {
    *out = DNN_COMM_ALGO_COUNT;
    return true;
  }
  for (size_t i = 0; algo_names[i]; i++)
    if (strcmp(name, algo_names[i]) == 0) {
      *out = (dnn_comm_algo)i;
      return true;
    }
  return false;
}

double dnn_meas_busbw_factor(dnn_comm_op op, size_t ranks) {
  double p = dnn__d(ranks);
  if (ranks < 1)
    return 1;
  switch (op) {
  case DNN_COMM_ALLREDUCE:
    return 2 * (p - 1) / p;
  case DNN_COMM_REDUCE_SCATTER:
  case DNN_COMM_ALLGATHER:
  case DNN_COMM_ALLTOALL:
    return (p - 1) / p;
  default:
    return 1;
  }
}

/* ------------------------------------------------------------------------ */
/* Validation                                                               */
/* ------------------------------------------------------------------------ */

/* Why a text field cannot go into a CSV, or NULL. */
static const char *text_invalid(const char *s, size_t size) {
  size_t n = strnlen(s, size);
  if (n == size)
    return "is not terminated";
  if (n == 0)
    return "is empty";
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == ',' || s[i] == 0x7f)
      return "contains a comma or control character";
  return NULL;
}

static const char *stats_invalid(const dnn_meas_stats *t) {
  if (t->samples < 1 || t->runs < 1)
    return "samples and runs must be >= 1";
  const double v[] = {t->min_s,  t->median_s, t->max_s,
                      t->mean_s, t->ci_lo_s,  t->ci_hi_s};
  for (size_t i = 0; i < DNN_ARRAY_LEN(v); i++)
    if (!isfinite(v[i]) || v[i] < 0)
      return "times must be finite and >= 0";
  if (!(t->min_s <= t->median_s && t->median_s <= t->max_s))
    return "times must satisfy min <= median <= max";
  if (!(t->ci_lo_s <= t->ci_hi_s))
    return "the interval must satisfy ci_lo <= ci_hi";
  if (!(t->confidence >= 0 && t->confidence < 1))
    return "confidence must be in [0, 1)";
  return NULL;
}

static const char *coll_invalid(const dnn_meas_coll_row *r) {
  const char *why;
  if ((unsigned)r->op >= DNN_COMM_OP_COUNT)
    return "bad op";
  if ((why = text_invalid(r->algorithm, sizeof r->algorithm)))
    return "algorithm name is empty or has a comma";
  if ((unsigned)r->model > DNN_COMM_ALGO_COUNT)
    return "bad model algorithm";
  if (r->ranks < 1)
    return "ranks must be >= 1";
  if ((why = stats_invalid(&r->t)))
    return why;
  return NULL;
}

static const char *kernel_invalid(const dnn_meas_kernel_row *r) {
  if (text_invalid(r->backend, sizeof r->backend))
    return "backend is empty or has a comma";
  if (text_invalid(r->network, sizeof r->network))
    return "network is empty or has a comma";
  if (text_invalid(r->layer, sizeof r->layer))
    return "layer is empty or has a comma";
  if (text_invalid(r->signature, sizeof r->signature))
    return "signature is empty or has a comma";
  if ((unsigned)r->kind >= DNN_LAYER_KIND_COUNT)
    return "bad layer kind";
  if ((unsigned)r->pass >= DNN_PASS_COUNT)
    return "bad pass";
  if ((unsigned)r->algo > DNN_CONV_ALGO_COUNT)
    return "bad algorithm";
  if ((unsigned)r->dtype >= DNN_DTYPE_COUNT)
    return "bad dtype";
  if (r->batch < 1)
    return "batch must be >= 1";
  if (!(r->flops >= 0) || !(r->bytes >= 0) || !(r->workspace_bytes >= 0) ||
      !isfinite(r->flops) || !isfinite(r->bytes) ||
      !isfinite(r->workspace_bytes))
    return "flops, bytes and workspace must be finite and >= 0";
  if (!(r->flops > 0 || r->bytes > 0))
    return "a kernel needs flops or bytes > 0";
  return stats_invalid(&r->t);
}

/* ------------------------------------------------------------------------ */
/* Tables                                                                   */
/* ------------------------------------------------------------------------ */

struct dnn_meas_coll_table {
  dnn_meas_coll_row *rows;
  size_t n, cap;
};

struct dnn_meas_kernel_table {
  dnn_meas_kernel_row *rows;
  size_t n, cap;
};

/* An empty table of `size` bytes in *out; `what` names it in the error. */
static dnn_status table_alloc(void **out, size_t size, const char *what,
                              dnn_error *err) {
  *out = dnn_calloc(1, size);
  if (*out == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory for a %s table", what);
  return DNN_OK;
}

/* Appends `row` (`size` bytes) to the array *rows of *n rows and *cap
 * slots; `what` names the table in the error. */
static dnn_status table_push(void **rows, size_t *n, size_t *cap,
                             const void *row, size_t size, const char *what,
                             dnn_error *err) {
  if (!dnn__grow(rows, cap, *n + 1, size))
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory adding a %s row", what);
  memcpy((char *)*rows + *n * size, row, size);
  (*n)++;
  return DNN_OK;
}

dnn_status dnn_meas_coll_table_alloc(dnn_meas_coll_table **out,
                                     dnn_error *err) {
  return table_alloc((void **)out, sizeof **out, "collective", err);
}

void dnn_meas_coll_table_free(dnn_meas_coll_table *t) {
  if (t)
    dnn_free(t->rows);
  dnn_free(t);
}

dnn_status dnn_meas_coll_table_add(dnn_meas_coll_table *t,
                                   const dnn_meas_coll_row *row,
                                   dnn_error *err) {
  const char *why = coll_invalid(row);
  if (why)
    return DNN_FAIL(err, DNN_EINVAL, "collective row %s/%s: %s",
                    dnn__meas_op_name(row->op), row->algorithm, why);
  return table_push((void **)&t->rows, &t->n, &t->cap, row, sizeof *row,
                    "collective", err);
}

size_t dnn_meas_coll_table_count(const dnn_meas_coll_table *t) {
  return t->n;
}

const dnn_meas_coll_row *dnn_meas_coll_table_get(const dnn_meas_coll_table *t,
                                                 size_t i) {
  DNN_ASSERT(i < t->n);
  return &t->rows[i];
}

const dnn_meas_coll_row *dnn_meas_coll_table_find(const dnn_meas_coll_table *t,
                                                  dnn_comm_op op,
                                                  const char *algorithm,
                                                  size_t ranks,
                                                  size_t size_bytes) {
  for (size_t i = 0; i < t->n; i++) {
    const dnn_meas_coll_row *r = &t->rows[i];
    if (r->op == op && r->ranks == ranks && r->size_bytes == size_bytes &&
        strcmp(r->algorithm, algorithm) == 0)
      return r;
  }
  return NULL;
}

dnn_status dnn_meas_kernel_table_alloc(dnn_meas_kernel_table **out,
                                       dnn_error *err) {
  return table_alloc((void **)out, sizeof **out, "kernel", err);
}

void dnn_meas_kernel_table_free(dnn_meas_kernel_table *t) {
  if (t)
    dnn_free(t->rows);
  dnn_free(t);
}

dnn_status dnn_meas_kernel_table_add(dnn_meas_kernel_table *t,
                                     const dnn_meas_kernel_row *row,
                                     dnn_error *err) {
  const char *why = kernel_invalid(row);
  if (why)
    return DNN_FAIL(err, DNN_EINVAL, "kernel row %s/%s: %s", row->network,
                    row->layer, why);
  return table_push((void **)&t->rows, &t->n, &t->cap, row, sizeof *row,
                    "kernel", err);
}

size_t dnn_meas_kernel_table_count(const dnn_meas_kernel_table *t) {
  return t->n;
}

const dnn_meas_kernel_row *
dnn_meas_kernel_table_get(const dnn_meas_kernel_table *t, size_t i) {
  DNN_ASSERT(i < t->n);
  return &t->rows[i];
}

const dnn_meas_kernel_row *
dnn_meas_kernel_table_find(const dnn_meas_kernel_table *t, const char *network,
                           const char *layer, dnn_pass pass, dnn_conv_algo algo,
                           dnn_dtype dtype, size_t batch) {
  for (size_t i = 0; i < t->n; i++) {
    const dnn_meas_kernel_row *r = &t->rows[i];
    if (r->pass == pass && r->algo == algo && r->dtype == dtype &&
        r->batch == batch && strcmp(r->layer, layer) == 0 &&
        strcmp(r->network, network) == 0)
      return r;
  }
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                  */
/* ------------------------------------------------------------------------ */

static const char COLL_HEADER[] =
    "op,algorithm,mpi_id,model,ranks,size_bytes,count,samples,runs,"
    "time_min_s,time_median_s,time_max_s,time_mean_s,ci_lo_s,ci_hi_s,"
    "confidence,converged,algbw_GBps,busbw_GBps";

static const char KERNEL_HEADER[] =
    "backend,network,layer,signature,kind,pass,algo,dtype,batch,flops,bytes,"
    "workspace_bytes,samples,runs,time_min_s,time_median_s,time_max_s,"
    "time_mean_s,ci_lo_s,ci_hi_s,confidence,converged,verify_rel_l2,"
    "verify_max_rel";

const char *dnn_meas_coll_csv_header(void) {
  return COLL_HEADER;
}

const char *dnn_meas_kernel_csv_header(void) {
  return KERNEL_HEADER;
}

static void write_stats(FILE *fp, const dnn_meas_stats *t) {
  fprintf(fp, "%zu,%zu,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.6g,%d", t->samples,
          t->runs, t->min_s, t->median_s, t->max_s, t->mean_s, t->ci_lo_s,
          t->ci_hi_s, t->confidence, t->converged ? 1 : 0);
}

void dnn_meas_coll_csv_write_row(FILE *fp, const dnn_meas_coll_row *r) {
  fprintf(fp, "%s,%s,%d,%s,%zu,%zu,%zu,", dnn__meas_op_name(r->op),
          r->algorithm, r->mpi_id, dnn__meas_algo_name(r->model), r->ranks,
          r->size_bytes, r->count);
  write_stats(fp, &r->t);
  fprintf(fp, ",%.6g,%.6g\n", r->algbw_GBps, r->busbw_GBps);
}

static const char *kernel_algo_name(dnn_conv_algo a) {
  return (unsigned)a < DNN_CONV_ALGO_COUNT ? dnn_conv_algo_name(a) : "-";
}

void dnn_meas_kernel_csv_write_row(FILE *fp, const dnn_meas_kernel_row *r) {
  fprintf(fp, "%s,%s,%s,%s,%s,%s,%s,%s,%zu,%.9g,%.9g,%.9g,", r->backend,
          r->network, r->layer, r->signature, dnn_layer_kind_name(r->kind),
          dnn_pass_name(r->pass), kernel_algo_name(r->algo),
          dnn_dtype_name(r->dtype), r->batch, r->flops, r->bytes,
          r->workspace_bytes);
  write_stats(fp, &r->t);
  fprintf(fp, ",%.6g,%.6g\n", r->verify_rel_l2, r->verify_max_rel);
}

/* Writes "# comment" lines (one per line of `comment`). */
static void write_comment(FILE *fp, const char *comment) {
  if (comment == NULL)
    return;
  const char *p = comment;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    fprintf(fp, "# %.*s\n", (int)len, p);
    p += len + (nl ? 1 : 0);
  }
}

dnn_status dnn_meas_coll_csv_write(const char *path,
                                   const dnn_meas_coll_table *t,
                                   const char *comment, dnn_error *err) {
  dnn_outfile *f = NULL;
  dnn_status st = dnn_outfile_open(path, &f, err);
  if (st)
    return st;
  FILE *fp = dnn_outfile_stream(f);
  write_comment(fp, comment);
  fprintf(fp, "%s\n", COLL_HEADER);
  for (size_t i = 0; i < t->n; i++)
    dnn_meas_coll_csv_write_row(fp, &t->rows[i]);
  return dnn_outfile_commit(f, err);
}

dnn_status dnn_meas_kernel_csv_write(const char *path,
                                     const dnn_meas_kernel_table *t,
                                     const char *comment, dnn_error *err) {
  dnn_outfile *f = NULL;
  dnn_status st = dnn_outfile_open(path, &f, err);
  if (st)
    return st;
  FILE *fp = dnn_outfile_stream(f);
  write_comment(fp, comment);
  fprintf(fp, "%s\n", KERNEL_HEADER);
  for (size_t i = 0; i < t->n; i++)
    dnn_meas_kernel_csv_write_row(fp, &t->rows[i]);
  return dnn_outfile_commit(f, err);
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                  */
/* ------------------------------------------------------------------------ */

#define MAX_COLS 32

/* One line split into fields, with the context for messages. */
typedef struct line_ctx {
  const char *path;
  int line;
  const char *const *cols; /* column names */
  char *f[MAX_COLS];
  size_t n;
  size_t at; /* next field */
  dnn_error *err;
} line_ctx;

static dnn_status col_fail(line_ctx *c, dnn_status code, const char *fmt,
                           const char *value) {
  char what[256];
  snprintf(what, sizeof what, fmt, value);
  return DNN_FAIL(c->err, code, "%s:%d: column %s: %s", c->path, c->line,
                  c->cols[c->at], what);
}

static dnn_status get_text(line_ctx *c, char *out, size_t size) {
  const char *v = c->f[c->at];
  if (v[0] == '\0')
    return col_fail(c, DNN_EPARSE, "expected a value, got an empty field%s",
                    "");
  if (strlen(v) >= size)
    return col_fail(c, DNN_ERANGE, "'%s' is too long", v);
  snprintf(out, size, "%s", v);
  c->at++;
  return DNN_OK;
}

static dnn_status get_size(line_ctx *c, size_t *out) {
  const char *v = c->f[c->at];
  char *end = NULL;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (v[0] == '\0' || v[0] == '-' || v[0] == '+' || *end != '\0')
    return col_fail(c, DNN_EPARSE, "expected a non-negative integer, got '%s'",
                    v);
  if (errno == ERANGE || x > SIZE_MAX)
    return col_fail(c, DNN_ERANGE, "'%s' is too large", v);
  *out = (size_t)x;
  c->at++;
  return DNN_OK;
}

static dnn_status get_int(line_ctx *c, int *out) {
  const char *v = c->f[c->at];
  char *end = NULL;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (v[0] == '\0' || *end != '\0')
    return col_fail(c, DNN_EPARSE, "expected an integer, got '%s'", v);
  if (errno == ERANGE || x < -1000000 || x > 1000000)
    return col_fail(c, DNN_ERANGE, "'%s' is out of range", v);
  *out = (int)x;
  c->at++;
  return DNN_OK;
}

/* A number; `allow_nan` admits "nan" (unverified kernels). */
static dnn_status get_double(line_ctx *c, double *out, bool allow_nan) {
  const char *v = c->f[c->at];
  char *end = NULL;
  errno = 0;
  double x = strtod(v, &end);
  if (v[0] == '\0' || *end != '\0')
    return col_fail(c, DNN_EPARSE, "expected a number, got '%s'", v);
  if (isnan(x) && !allow_nan)
    return col_fail(c, DNN_ERANGE, "'%s' is not a number", v);
  if (isinf(x) || (errno == ERANGE && fabs(x) > 1))
    return col_fail(c, DNN_ERANGE, "'%s' is out of range", v);
  *out = x;
  c->at++;
  return DNN_OK;
}

static dnn_status get_bool(line_ctx *c, bool *out) {
  const char *v = c->f[c->at];
  if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
    return col_fail(c, DNN_EPARSE, "expected 0 or 1, got '%s'", v);
  *out = v[0] == '1';
  c->at++;
  return DNN_OK;
}

static dnn_status get_stats(line_ctx *c, dnn_meas_stats *t) {
  dnn_status st;
  if ((st = get_size(c, &t->samples)) || (st = get_size(c, &t->runs)) ||
      (st = get_double(c, &t->min_s, false)) ||
      (st = get_double(c, &t->median_s, false)) ||
      (st = get_double(c, &t->max_s, false)) ||
      (st = get_double(c, &t->mean_s, false)) ||
      (st = get_double(c, &t->ci_lo_s, false)) ||
      (st = get_double(c, &t->ci_hi_s, false)) ||
      (st = get_double(c, &t->confidence, false)) ||
      (st = get_bool(c, &t->converged)))
    return st;
  return DNN_OK;
}

/* Splits `line` (modified) at commas into c->f; false on a count error. */
static bool split(line_ctx *c, char *line, size_t want) {
  c->n = 0;
  c->at = 0;
  char *p = line;
  for (;;) {
    char *comma = strchr(p, ',');
    if (comma)
      *comma = '\0';
    if (c->n < MAX_COLS)
      c->f[c->n] = p;
    c->n++;
    if (comma == NULL)
      break;
    p = comma + 1;
  }
  return c->n == want;
}

/* Parses one data line into a row; the caller adds it. */
typedef dnn_status (*row_fn)(line_ctx *c, void *row);

static dnn_status coll_parse(line_ctx *c, void *out) {
  dnn_meas_coll_row *r = out;
  memset(r, 0, sizeof *r);
  char name[DNN_MEAS_NAME_MAX];
  dnn_status st;
  if ((st = get_text(c, name, sizeof name)))
    return st;
  if (!dnn__meas_op_parse(name, &r->op)) {
    c->at--;
    return col_fail(c, DNN_EPARSE, "unknown collective '%s'", name);
  }
  if ((st = get_text(c, r->algorithm, sizeof r->algorithm)) ||
      (st = get_int(c, &r->mpi_id)) || (st = get_text(c, name, sizeof name)))
    return st;
  if (!dnn__meas_algo_parse(name, &r->model)) {
    c->at--;
    return col_fail(c, DNN_EPARSE, "unknown algorithm '%s'", name);
  }
  if ((st = get_size(c, &r->ranks)) || (st = get_size(c, &r->size_bytes)) ||
      (st = get_size(c, &r->count)) || (st = get_stats(c, &r->t)) ||
      (st = get_double(c, &r->algbw_GBps, false)) ||
      (st = get_double(c, &r->busbw_GBps, false)))
    return st;
  return DNN_OK;
}

/* Index of `v` among the names name(0..count-1); false when absent. */
static bool find_name(const char *v, size_t count, const char *(*name)(size_t),
                      size_t *out) {
  for (size_t i = 0; i < count; i++)
    if (strcmp(v, name(i)) == 0) {
      *out = i;
      return true;
    }
  return false;
}

static const char *kind_at(size_t i) {
  return dnn_layer_kind_name((dnn_layer_kind)i);
}
static const char *pass_at(size_t i) {
  return dnn_pass_name((dnn_pass)i);
}
static const char *algo_at(size_t i) {
  return kernel_algo_name((dnn_conv_algo)i);
}
static const char *dtype_at(size_t i) {
  return dnn_dtype_name((dnn_dtype)i);
}

static dnn_status get_enum(line_ctx *c, size_t count,
                           const char *(*name)(size_t), size_t *out,
                           const char *what) {
  const char *v = c->f[c->at];
  if (!find_name(v, count, name, out)) {
    char msg[128];
    snprintf(msg, sizeof msg, "unknown %s '%%s'", what);
    return col_fail(c, DNN_EPARSE, msg, v);
  }
  c->at++;
  return DNN_OK;
}

static dnn_status kernel_parse(line_ctx *c, void *out) {
  dnn_meas_kernel_row *r = out;
  memset(r, 0, sizeof *r);
  size_t kind = 0, pass = 0, algo = 0, dtype = 0;
  dnn_status st;
  if ((st = get_text(c, r->backend, sizeof r->backend)) ||
      (st = get_text(c, r->network, sizeof r->network)) ||
      (st = get_text(c, r->layer, sizeof r->layer)) ||
      (st = get_text(c, r->signature, sizeof r->signature)) ||
      (st = get_enum(c, DNN_LAYER_KIND_COUNT, kind_at, &kind, "layer kind")) ||
      (st = get_enum(c, DNN_PASS_COUNT, pass_at, &pass, "pass")) ||
      (st =
           get_enum(c, DNN_CONV_ALGO_COUNT + 1, algo_at, &algo, "algorithm")) ||
      (st = get_enum(c, DNN_DTYPE_COUNT, dtype_at, &dtype, "dtype")) ||
      (st = get_size(c, &r->batch)) || (st = get_double(c, &r->flops, false)) ||
      (st = get_double(c, &r->bytes, false)) ||
      (st = get_double(c, &r->workspace_bytes, false)) ||
      (st = get_stats(c, &r->t)) ||
      (st = get_double(c, &r->verify_rel_l2, true)) ||
      (st = get_double(c, &r->verify_max_rel, true)))
    return st;
  r->kind = (dnn_layer_kind)kind;
  r->pass = (dnn_pass)pass;
  r->algo = (dnn_conv_algo)algo;
  r->dtype = (dnn_dtype)dtype;
  return DNN_OK;
}

static const char *const coll_cols[] = {
    "op",          "algorithm",  "mpi_id",        "model",
    "ranks",       "size_bytes", "count",         "samples",
    "runs",        "time_min_s", "time_median_s", "time_max_s",
    "time_mean_s", "ci_lo_s",    "ci_hi_s",       "confidence",
    "converged",   "algbw_GBps", "busbw_GBps"};
static const char *const kernel_cols[] = {
    "backend",    "network",     "layer",         "signature",
    "kind",       "pass",        "algo",          "dtype",
    "batch",      "flops",       "bytes",         "workspace_bytes",
    "samples",    "runs",        "time_min_s",    "time_median_s",
    "time_max_s", "time_mean_s", "ci_lo_s",       "ci_hi_s",
    "confidence", "converged",   "verify_rel_l2", "verify_max_rel"};

typedef struct csv_kind {
  const char *header;
  const char *const *cols;
  size_t ncols;
  row_fn parse;
  size_t row_size;
  /* Validates and adds a parsed row; the reason in *why on failure. */
  dnn_status (*add)(void *table, const void *row, const char **why,
                    dnn_error *err);
} csv_kind;

static dnn_status coll_add(void *table, const void *row, const char **why,
                           dnn_error *err) {
  if ((*why = coll_invalid(row)))
    return DNN_ERANGE;
  return dnn_meas_coll_table_add(table, row, err);
}

static dnn_status kernel_add(void *table, const void *row, const char **why,
                             dnn_error *err) {
  if ((*why = kernel_invalid(row)))
    return DNN_ERANGE;
  return dnn_meas_kernel_table_add(table, row, err);
}

static dnn_status csv_read(const char *path, const csv_kind *k, void *table,
                           dnn_error *err) {
  char *text = NULL;
  dnn_status st = dnn_file_read_all(path, &text, NULL, err);
  if (st)
    return st;
  union {
    dnn_meas_coll_row c;
    dnn_meas_kernel_row k;
  } row;
  DNN_ASSERT(k->row_size <= sizeof row);
  line_ctx c = {.path = path, .cols = k->cols, .err = err};
  bool header = false;
  char *p = text;
  while (*p) {
    char *nl = strchr(p, '\n');
    if (nl)
      *nl = '\0';
    c.line++;
    char *line = p;
    p = nl ? nl + 1 : p + strlen(p);
    size_t len = strlen(line);
    if (len > 0 && line[len - 1] == '\r')
      line[--len] = '\0';
    if (line[0] == '\0' || line[0] == '#')
      continue;
    if (!header) {
      if (strcmp(line, k->header) != 0) {
        st = DNN_FAIL(err, DNN_EPARSE, "%s:%d: expected the header line '%s'",
                      path, c.line, k->header);
        goto done;
      }
      header = true;
      continue;
    }
    if (!split(&c, line, k->ncols)) {
      st = DNN_FAIL(err, DNN_EPARSE,
                    "%s:%d: expected %zu comma-separated columns, got %zu",
                    path, c.line, k->ncols, c.n);
      goto done;
    }
    if ((st = k->parse(&c, &row)))
      goto done;
    const char *why = NULL;
    dnn_error e;
    dnn_error_clear(&e);
    if ((st = k->add(table, &row, &why, &e))) {
      if (why)
        st = DNN_FAIL(err, st, "%s:%d: %s", path, c.line, why);
      else
        st = DNN_FAIL(err, st, "%s:%d: %s", path, c.line, e.msg);
      goto done;
    }
  }
  if (!header)
    st = DNN_FAIL(err, DNN_EPARSE, "%s:%d: expected the header line '%s'", path,
                  c.line > 0 ? c.line : 1, k->header);
done:
  dnn_free(text);
  return st;
}

dnn_status dnn_meas_coll_csv_read(const char *path, dnn_meas_coll_table *t,
                                  dnn_error *err) {
  static const csv_kind k = {COLL_HEADER,
                             coll_cols,
                             DNN_ARRAY_LEN(coll_cols),
                             coll_parse,
                             sizeof(dnn_meas_coll_row),
                             coll_add};
  return csv_read(path, &k, t, err);
}

dnn_status dnn_meas_kernel_csv_read(const char *path, dnn_meas_kernel_table *t,
                                    dnn_error *err) {
  static const csv_kind k = {KERNEL_HEADER,
                             kernel_cols,
                             DNN_ARRAY_LEN(kernel_cols),
                             kernel_parse,
                             sizeof(dnn_meas_kernel_row),
                             kernel_add};
  return csv_read(path, &k, t, err);
}
