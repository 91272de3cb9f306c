/*
 * Hardware profiles (include/dnnsim/hw.h): the profile INI format, the
 * built-in profiles embedded from scenarios/profiles/ *.ini, the measured
 * kernel table and the per-kernel time model.
 *
 * Time model (docs/models.md §4): a roofline (Williams, Waterman &
 * Patterson, "Roofline", CACM 52(4), 2009) with per-operation-class
 * efficiencies and Hockney's half-performance length n_1/2 (Hockney &
 * Jesshope, "Parallel Computers 2", 1988) as the small-size correction:
 *
 *   t = t_launch + max((F + n_1/2[c]) / (P[dtype] e_c[c]), B / (W e_m[c]))
 *
 * Invariants: every number comes from a profile (no hardware constant in
 * this file; the only literals are unit conversions and validation
 * ranges); a dnn_hw is immutable after loading except for
 * dnn_hw_kernel_add, and the time functions never allocate, so they may
 * run in hot loops and from several threads on one profile at once. The
 * measured rows are kept sorted by (signature, pass, algo, dtype, batch)
 * so a lookup is a binary search.
 *
 * One table (KEYS below) defines every INI key: section, name, target
 * field, unit scale and range. Parsing, dnn_hw_params_check, dnn_hw_save
 * and docs/profiles.md follow it.
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

/* Longest measured kernel time accepted, in seconds (11.6 days). */
#define MAX_KERNEL_S 1e6
/* Longest layer signature a lookup builds on the stack. */
#define SIG_MAX 512
/* Most built-in profiles the name list holds. */
#define BUILTIN_MAX 64

/* clang-format off */
static const char *const dtype_names[] = {
#define X(id, name, bytes) name,
    DNN_DTYPE_LIST(X)
#undef X
    NULL};
/* Algorithm names; "-" (index DNN_CONV_ALGO_COUNT) marks a non-convolution
 * row in a kernel table. */
static const char *const algo_names[] = {
#define X(id, name) name,
    DNN_CONV_ALGO_LIST(X)
#undef X
    "-", NULL};
/* clang-format on */
static const char *const kind_names[] = {"gpu", "cpu", NULL};
/* In dnn_hw_comm_progress order. */
static const char *const progress_names[] = {"auto", "engine", "host", NULL};

/* ------------------------------------------------------------------------ */
/* The key table                                                             */
/* ------------------------------------------------------------------------ */

/* K_CHOICE: an int field holding an index into `choices`. */
typedef enum key_type { K_TEXT, K_KIND, K_NUM, K_CHOICE } key_type;

typedef struct key {
  const char *section;
  const char *name;  /* INI key */
  const char *field; /* dnn_hw_params field, for messages */
  key_type type;
  size_t offset; /* into dnn_hw_params */
  size_t size;   /* K_TEXT/K_KIND: buffer size */
  double scale;  /* INI unit -> SI */
  double lo, hi; /* range, INI units */
  bool lo_open;  /* lo itself is out of range */
  bool required;
  const char *const *choices; /* K_CHOICE: the names, NULL-terminated */
} key;

/* clang-format off */
#define OFF(f) offsetof(dnn_hw_params, f)
#define SIZE(f) sizeof(((dnn_hw_params *)0)->f)
#define TEXT(sec, nm, f, type, req)                                            \
  {sec, nm, #f, type, OFF(f), SIZE(f), 0, 0, 0, false, req, NULL}
#define NUM(sec, nm, f, scale, lo, hi, open, req)                              \
  {sec, nm, #f, K_NUM, OFF(f), sizeof(double), scale, lo, hi, open, req, NULL}
#define CHOICE(sec, nm, f, names)                                              \
  {sec, nm, #f, K_CHOICE, OFF(f), sizeof(int), 0, 0, 0, false, false, names}

static const key KEYS[] = {
    TEXT("device", "name", name, K_TEXT, true),
    TEXT("device", "kind", kind, K_KIND, true),
    TEXT("device", "source", source, K_TEXT, false),
    TEXT("device", "calibrated", calibrated, K_TEXT, false),
    CHOICE("device", "comm_progress", comm_progress, progress_names),
#define X(id, nm, bytes)                                                       \
    NUM("compute", "peak_" nm "_TFLOPS", peak_flops[DNN_DTYPE_##id], 1e12,     \
        0, 1e6, false, true),
    DNN_DTYPE_LIST(X)
#undef X
    NUM("compute", "launch_overhead_us", launch_overhead_s, 1e-6, 0, 1e6,
        false, true),
    NUM("memory", "bandwidth_GBps", mem_bandwidth_Bps, 1e9, 0, 1e6, true, true),
    NUM("memory", "capacity_GB", mem_capacity_bytes, 1e9, 0, 1e6, true, true),
    NUM("memory", "reserved_GB", mem_reserved_bytes, 1e9, 0, 1e6, false,
        false),
#define X(id, nm)                                                              \
    NUM("efficiency", "compute." nm, eff_compute[DNN_OP_##id], 1, 0, 1, true,  \
        false),
    DNN_OPCLASS_LIST(X)
#undef X
#define X(id, nm)                                                              \
    NUM("efficiency", "memory." nm, eff_memory[DNN_OP_##id], 1, 0, 1, true,    \
        false),
    DNN_OPCLASS_LIST(X)
#undef X
#define X(id, nm)                                                              \
    NUM("efficiency", "half_flops." nm, half_flops[DNN_OP_##id], 1e9, 0, 1e9,  \
        false, false),
    DNN_OPCLASS_LIST(X)
#undef X
#define X(id, nm)                                                              \
    NUM("efficiency", "conv_algo." nm, eff_conv_algo[DNN_CONV_##id], 1, 0, 1,  \
        false, false),
    DNN_CONV_ALGO_LIST(X)
#undef X
};
#undef OFF
#undef SIZE
#undef TEXT
#undef NUM
#undef CHOICE
/* clang-format on */
#define NKEYS DNN_ARRAY_LEN(KEYS)

static const char *const section_names[] = {"device",     "compute", "memory",
                                            "efficiency", "kernels", NULL};
#define NSECTIONS (DNN_ARRAY_LEN(section_names) - 1)

static double *num_at(dnn_hw_params *p, const key *k) {
  return (double *)(void *)((char *)p + k->offset);
}
static double num_get(const dnn_hw_params *p, const key *k) {
  return *(const double *)(const void *)((const char *)p + k->offset);
}
static char *text_at(dnn_hw_params *p, const key *k) {
  return (char *)p + k->offset;
}
static const char *text_get(const dnn_hw_params *p, const key *k) {
  return (const char *)p + k->offset;
}
static int *choice_at(dnn_hw_params *p, const key *k) {
  return (int *)(void *)((char *)p + k->offset);
}
static int choice_get(const dnn_hw_params *p, const key *k) {
  return *(const int *)(const void *)((const char *)p + k->offset);
}
static size_t choice_count(const key *k) {
  size_t n = 0;
  while (k->choices[n])
    n++;
  return n;
}

/* Index of the key called `name` (one of the table's). */
static size_t key_index(const char *name) {
  size_t i = 0;
  while (i < NKEYS && strcmp(KEYS[i].name, name) != 0)
    i++;
  DNN_ASSERT(i < NKEYS);
  return i < NKEYS ? i : 0;
}

/* ------------------------------------------------------------------------ */
/* Parameters                                                                */
/* ------------------------------------------------------------------------ */

dnn_hw_params dnn_hw_default_params(void) {
  dnn_hw_params p;
  memset(&p, 0, sizeof p);
  snprintf(p.kind, sizeof p.kind, "gpu");
  snprintf(p.calibrated, sizeof p.calibrated, "no");
  for (size_t c = 0; c < DNN_OPCLASS_COUNT; c++) {
    p.eff_compute[c] = 1;
    p.eff_memory[c] = 1;
  }
  for (size_t a = 0; a < DNN_CONV_ALGO_COUNT; a++)
    p.eff_conv_algo[a] = 1;
  return p;
}

bool dnn_hw_comm_overlaps(const dnn_hw_params *p) {
  if (p->comm_progress == DNN_HW_PROGRESS_ENGINE)
    return true;
  if (p->comm_progress == DNN_HW_PROGRESS_HOST)
    return false;
  return strcmp(p->kind, "cpu") != 0;
}

/*
 * Text must survive a save/load round trip through inih: NUL-terminated in
 * its buffer, no control characters, no blanks at either end (inih trims
 * them) and no ';' after a blank (an inline comment).
 */
static bool text_savable(const char *s, size_t size, const char **why) {
  size_t n = strnlen(s, size);
  if (n == size) {
    *why = "too long";
    return false;
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f) {
      *why = "contains a control character";
      return false;
    }
    /* "name = ;x" reads back as "": the blank after '=' makes a leading
     * ';' an inline comment too. */
    if (c == ';' && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t')) {
      *why = "contains ' ;' or starts with ';' (an inline comment in INI)";
      return false;
    }
  }
  if (n > 0 && (s[0] == ' ' || s[n - 1] == ' ')) {
    *why = "starts or ends with a blank";
    return false;
  }
  return true;
}

/*
 * The smallest nonzero value, in INI units, of a key that divides in the
 * time model (peaks, bandwidth, efficiencies): below it a time overflows
 * to infinity or a product underflows to 0 (a validation range, not a
 * hardware constant; 1e-6 TFLOPS is 1 MFLOP/s, 1e-6 GBps 1 kB/s).
 */
#define MIN_RATE 1e-6

static bool is_rate(const key *k) {
  return strncmp(k->name, "peak_", 5) == 0 ||
         strcmp(k->name, "bandwidth_GBps") == 0 ||
         strncmp(k->name, "compute.", 8) == 0 ||
         strncmp(k->name, "memory.", 7) == 0 ||
         strncmp(k->name, "conv_algo.", 10) == 0;
}

/* Checks one key's value; DNN_ERANGE with `msg` (no position) on failure. */
static dnn_status check_key(const dnn_hw_params *p, const key *k, char *msg,
                            size_t n) {
  if (k->type == K_CHOICE) {
    int v = choice_get(p, k);
    if (v >= 0 && (size_t)v < choice_count(k))
      return DNN_OK;
    snprintf(msg, n, "choice %d is not one of the %zu names", v,
             choice_count(k));
    return DNN_ERANGE;
  }
  if (k->type == K_TEXT || k->type == K_KIND) {
    const char *why = NULL;
    const char *s = text_get(p, k);
    if (!text_savable(s, k->size, &why)) {
      snprintf(msg, n, "text %s (at most %zu characters)", why, k->size - 1);
      return DNN_ERANGE;
    }
    /* dnn_hw_save writes "name = text" on one line, which must fit inih's
     * line buffer for the profile to load back. */
    size_t most = dnn__ini_max_line() - strlen(k->name) - 3;
    if (strlen(s) > most) {
      snprintf(msg, n,
               "text too long for one INI line (at most %zu characters)", most);
      return DNN_ERANGE;
    }
    if (k->type == K_KIND) {
      for (size_t i = 0; kind_names[i]; i++)
        if (strcmp(s, kind_names[i]) == 0)
          return DNN_OK;
      snprintf(msg, n, "expected gpu or cpu, got '%s'", s);
      return DNN_ERANGE;
    }
    return DNN_OK;
  }
  double v = num_get(p, k) / k->scale;
  bool ok = isfinite(v) && (k->lo_open ? v > k->lo : v >= k->lo) && v <= k->hi;
  if (!ok) {
    snprintf(msg, n, "%.6g is out of range %s%g, %g]", v,
             k->lo_open ? "(" : "[", k->lo, k->hi);
    return DNN_ERANGE;
  }
  if (is_rate(k) && v != 0 && v < MIN_RATE) {
    snprintf(msg, n, "%.6g is below %g (0 turns it off where that is allowed)",
             v, MIN_RATE);
    return DNN_ERANGE;
  }
  return DNN_OK;
}

/* Checks between fields; the bad key's index in *bad. */
static dnn_status check_cross(const dnn_hw_params *p, size_t *bad, char *msg,
                              size_t n) {
  bool any_peak = false;
  for (size_t t = 0; t < DNN_DTYPE_COUNT; t++)
    any_peak = any_peak || p->peak_flops[t] > 0;
  if (!any_peak) {
    *bad = key_index("peak_fp32_TFLOPS");
    snprintf(msg, n, "every peak is 0; at least one dtype needs a peak > 0");
    return DNN_ERANGE;
  }
  if (!(p->mem_reserved_bytes < p->mem_capacity_bytes)) {
    *bad = key_index("reserved_GB");
    snprintf(msg, n, "%.6g GB reserved leaves nothing of the %.6g GB capacity",
             p->mem_reserved_bytes / 1e9, p->mem_capacity_bytes / 1e9);
    return DNN_ERANGE;
  }
  /* implicit_gemm and direct run every convolution without workspace, so
   * one of them keeps each convolution's time finite under any workspace
   * limit. */
  bool any_algo = false;
  for (size_t a = 0; a < DNN_CONV_ALGO_COUNT; a++)
    any_algo = any_algo || p->eff_conv_algo[a] > 0;
  if (!(p->eff_conv_algo[DNN_CONV_IMPLICIT_GEMM] > 0) &&
      !(p->eff_conv_algo[DNN_CONV_DIRECT] > 0)) {
    *bad = key_index("conv_algo.implicit_gemm");
    snprintf(msg, n,
             "%s; implicit_gemm or direct (which run every convolution "
             "without workspace) needs an efficiency > 0",
             any_algo ? "conv_algo.implicit_gemm and conv_algo.direct are 0"
                      : "every conv_algo efficiency is 0");
    return DNN_ERANGE;
  }
  return DNN_OK;
}

dnn_status dnn_hw_params_check(const dnn_hw_params *p, dnn_error *err) {
  char msg[DNN_ERROR_MSG_MAX / 2];
  for (size_t i = 0; i < NKEYS; i++) {
    if (check_key(p, &KEYS[i], msg, sizeof msg) != DNN_OK)
      return DNN_FAIL(err, DNN_ERANGE, "hardware parameter %s ([%s] %s): %s",
                      KEYS[i].field, KEYS[i].section, KEYS[i].name, msg);
  }
  size_t bad = 0;
  if (check_cross(p, &bad, msg, sizeof msg) != DNN_OK)
    return DNN_FAIL(err, DNN_ERANGE, "hardware parameter %s ([%s] %s): %s",
                    KEYS[bad].field, KEYS[bad].section, KEYS[bad].name, msg);
  return DNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Profiles                                                                  */
/* ------------------------------------------------------------------------ */

struct dnn_hw {
  dnn_hw_params p;
  dnn_hw_kernel_row *rows; /* sorted, see row_cmp */
  size_t n_rows, cap_rows;
  dnn__arena strings; /* the rows' signatures */
};

dnn_status dnn_hw_alloc(const dnn_hw_params *p, dnn_hw **out, dnn_error *err) {
  *out = NULL;
  dnn_status st = dnn_hw_params_check(p, err);
  if (st)
    return st;
  dnn_hw *hw = dnn_calloc(1, sizeof *hw);
  if (hw == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory allocating a profile");
  hw->p = *p;
  dnn__arena_init(&hw->strings, 4096);
  *out = hw;
  return DNN_OK;
}

void dnn_hw_free(dnn_hw *hw) {
  if (hw == NULL)
    return;
  dnn_free(hw->rows);
  dnn__arena_release(&hw->strings);
  dnn_free(hw);
}

const dnn_hw_params *dnn_hw_get(const dnn_hw *hw) {
  return &hw->p;
}

size_t dnn_hw_kernel_count(const dnn_hw *hw) {
  return hw->n_rows;
}

/* ---- Built-in names (filled once, thread-safe through call_once) ------- */

static const char *builtin_names[BUILTIN_MAX + 1];
static once_flag builtin_once = ONCE_FLAG_INIT;

static void builtin_init(void) {
  size_t n = 0;
  for (size_t i = 0; dnn__embedded_profiles[i].name && n < BUILTIN_MAX; i++)
    builtin_names[n++] = dnn__embedded_profiles[i].name;
  DNN_ASSERT(dnn__embedded_profiles[n].name == NULL);
  builtin_names[n] = NULL;
}

const char *const *dnn_hw_builtin_list(void) {
  call_once(&builtin_once, builtin_init);
  return builtin_names;
}

const char *dnn_hw_builtin_text(const char *name) {
  for (size_t i = 0; dnn__embedded_profiles[i].name; i++)
    if (strcmp(dnn__embedded_profiles[i].name, name) == 0)
      return dnn__embedded_profiles[i].text;
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Measured kernel tables                                                    */
/* ------------------------------------------------------------------------ */

/* Order of the key (signature, pass, algo, dtype); batch is not compared. */
static int key_cmp(const char *sig, dnn_pass pass, dnn_conv_algo algo,
                   dnn_dtype dtype, const dnn_hw_kernel_row *r) {
  int c = strcmp(sig, r->signature);
  if (c)
    return c;
  if (pass != r->pass)
    return pass < r->pass ? -1 : 1;
  if (algo != r->algo)
    return algo < r->algo ? -1 : 1;
  if (dtype != r->dtype)
    return dtype < r->dtype ? -1 : 1;
  return 0;
}

/* First row not before (key, batch). */
static size_t lower_bound(const dnn_hw *hw, const char *sig, dnn_pass pass,
                          dnn_conv_algo algo, dnn_dtype dtype, size_t batch) {
  size_t lo = 0, hi = hw->n_rows;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const dnn_hw_kernel_row *r = &hw->rows[mid];
    int c = key_cmp(sig, pass, algo, dtype, r);
    if (c > 0 || (c == 0 && r->batch < batch))
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Why a row cannot go into a table, or NULL when it can. */
static const char *row_invalid(const dnn_hw_kernel_row *r) {
  const char *s = r->signature;
  size_t n = s ? strnlen(s, SIG_MAX) : 0;
  if (n == 0)
    return "empty signature";
  if (n == SIG_MAX)
    return "signature too long";
  if (s[0] == ' ' || s[n - 1] == ' ')
    return "signature starts or ends with a blank";
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == ',' || s[i] == 0x7f)
      return "signature contains a comma or control character";
  if ((unsigned)r->pass >= DNN_PASS_COUNT)
    return "bad pass";
  if ((unsigned)r->algo > DNN_CONV_ALGO_COUNT)
    return "bad algorithm";
  if ((unsigned)r->dtype >= DNN_DTYPE_COUNT)
    return "bad dtype";
  if (r->batch == 0)
    return "batch must be >= 1";
  /* At most MAX_KERNEL_S, so that extrapolating to any batch stays
   * finite (a validation range, not a hardware constant). */
  if (!(isfinite(r->time_s) && r->time_s > 0 && r->time_s <= MAX_KERNEL_S))
    return "time_s must be finite and > 0 (and at most 1e6 s)";
  if (!(isfinite(r->workspace_bytes) && r->workspace_bytes >= 0))
    return "workspace_bytes must be finite and >= 0";
  return NULL;
}

dnn_status dnn_hw_kernel_add(dnn_hw *hw, const dnn_hw_kernel_row *row,
                             dnn_error *err) {
  const char *why = row_invalid(row);
  if (why)
    return DNN_FAIL(err, DNN_EINVAL, "measured kernel row '%s': %s",
                    row->signature ? row->signature : "", why);
  size_t at = lower_bound(hw, row->signature, row->pass, row->algo, row->dtype,
                          row->batch);
  if (at < hw->n_rows &&
      key_cmp(row->signature, row->pass, row->algo, row->dtype,
              &hw->rows[at]) == 0 &&
      hw->rows[at].batch == row->batch) {
    /* A new measurement of the same kernel replaces the old one. */
    hw->rows[at].time_s = row->time_s;
    hw->rows[at].workspace_bytes = row->workspace_bytes;
    return DNN_OK;
  }
  void *rows = hw->rows;
  if (!dnn__grow(&rows, &hw->cap_rows, hw->n_rows + 1, sizeof *hw->rows))
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory adding a kernel row");
  hw->rows = rows;
  /* Share the signature with a neighbouring row when it is the same. */
  const char *sig = NULL;
  if (at < hw->n_rows && strcmp(hw->rows[at].signature, row->signature) == 0)
    sig = hw->rows[at].signature;
  else if (at > 0 && strcmp(hw->rows[at - 1].signature, row->signature) == 0)
    sig = hw->rows[at - 1].signature;
  else
    sig = dnn__arena_strdup(&hw->strings, row->signature);
  if (sig == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory adding a kernel row");
  memmove(&hw->rows[at + 1], &hw->rows[at],
          (hw->n_rows - at) * sizeof *hw->rows);
  hw->rows[at] = *row;
  hw->rows[at].signature = sig;
  hw->n_rows++;
  return DNN_OK;
}

/* Value at batch b from the run rows[lo, hi) of one key, sorted by batch:
 * exact, linear between neighbours, proportional outside the range. */
static double interp(const dnn_hw_kernel_row *rows, size_t lo, size_t hi,
                     size_t batch, bool workspace) {
#define VAL(r) ((workspace) ? (r).workspace_bytes : (r).time_s)
  double b = dnn__d(batch);
  const dnn_hw_kernel_row *first = &rows[lo], *last = &rows[hi - 1];
  if (batch == first->batch)
    return VAL(*first);
  if (batch < first->batch)
    return VAL(*first) * b / dnn__d(first->batch);
  if (batch == last->batch)
    return VAL(*last);
  if (batch > last->batch)
    return VAL(*last) * b / dnn__d(last->batch);
  size_t k = lo + 1;
  while (rows[k].batch < batch)
    k++;
  const dnn_hw_kernel_row *r0 = &rows[k - 1], *r1 = &rows[k];
  if (r1->batch == batch)
    return VAL(*r1);
  double b0 = dnn__d(r0->batch), b1 = dnn__d(r1->batch);
  return VAL(*r0) + (VAL(*r1) - VAL(*r0)) * (b - b0) / (b1 - b0);
#undef VAL
}

/* Lookup with the workspace as well (either output may be NULL). */
static bool lookup(const dnn_hw *hw, const char *sig, dnn_pass pass,
                   dnn_conv_algo algo, dnn_dtype dtype, size_t batch,
                   double *time_s, double *workspace_bytes) {
  size_t lo = lower_bound(hw, sig, pass, algo, dtype, 0);
  size_t hi = lo;
  while (hi < hw->n_rows && key_cmp(sig, pass, algo, dtype, &hw->rows[hi]) == 0)
    hi++;
  if (hi == lo)
    return false;
  if (time_s)
    *time_s = interp(hw->rows, lo, hi, batch, false);
  if (workspace_bytes)
    *workspace_bytes = interp(hw->rows, lo, hi, batch, true);
  return true;
}

bool dnn_hw_kernel_lookup(const dnn_hw *hw, const char *signature,
                          dnn_pass pass, dnn_conv_algo algo, dnn_dtype dtype,
                          size_t batch, double *time_s) {
  return lookup(hw, signature, pass, algo, dtype, batch, time_s, NULL);
}

/* ---- The kernel CSV ------------------------------------------------------ */

static const char CSV_HEADER[] =
    "signature,pass,algo,dtype,batch,time_s,workspace_bytes";
enum { CSV_COLS = 7 };

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t')
    s++;
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
    s[--n] = '\0';
  return s;
}

/* Parses one data row (modified in place) into `r`. */
static dnn_status csv_row(char *line, const char *path, int lineno,
                          dnn_hw_kernel_row *r, dnn_error *err) {
  static const char *const cols[CSV_COLS] = {
      "signature", "pass",   "algo",           "dtype",
      "batch",     "time_s", "workspace_bytes"};
  char *f[CSV_COLS];
  size_t n = 0;
  char *p = line;
  for (;;) {
    char *comma = strchr(p, ',');
    if (comma)
      *comma = '\0';
    if (n < CSV_COLS)
      f[n] = trim(p);
    n++;
    if (comma == NULL)
      break;
    p = comma + 1;
  }
  if (n != CSV_COLS)
    return DNN__INI_FAIL(err, DNN_EPARSE, path, lineno, NULL, NULL,
                         "expected %d comma-separated columns (%s), got %zu",
                         CSV_COLS, CSV_HEADER, n);
  const char *pass_names[DNN_PASS_COUNT + 1];
  for (size_t i = 0; i < DNN_PASS_COUNT; i++)
    pass_names[i] = dnn_pass_name((dnn_pass)i);
  pass_names[DNN_PASS_COUNT] = NULL;
  dnn_error e;
  dnn_error_clear(&e);
  int pass = 0, algo = 0, dtype = 0;
  size_t col = 0;
  dnn_status st = DNN_OK;
  r->signature = f[0];
  if ((st = dnn__parse_choice(f[col = 1], pass_names, &pass, &e)) ||
      (st = dnn__parse_choice(f[col = 2], algo_names, &algo, &e)) ||
      (st = dnn__parse_choice(f[col = 3], dtype_names, &dtype, &e)) ||
      (st = dnn__parse_size(f[col = 4], &r->batch, &e)) ||
      (st = dnn__parse_double(f[col = 5], &r->time_s, &e)) ||
      (st = dnn__parse_double(f[col = 6], &r->workspace_bytes, &e)))
    return DNN__INI_FAIL(err, DNN_EPARSE, path, lineno, NULL, NULL,
                         "column %s: %s", cols[col], e.msg);
  r->pass = (dnn_pass)pass;
  r->algo = (dnn_conv_algo)algo;
  r->dtype = (dnn_dtype)dtype;
  const char *why = row_invalid(r);
  if (why)
    return DNN__INI_FAIL(err, DNN_ERANGE, path, lineno, NULL, NULL, "%s", why);
  return DNN_OK;
}

/* Reads a kernel CSV into the profile. */
static dnn_status csv_load(dnn_hw *hw, const char *path, dnn_error *err) {
  char *text = NULL;
  dnn_status st = dnn_file_read_all(path, &text, NULL, err);
  if (st)
    return st;
  bool header = false;
  int lineno = 0;
  char *p = text;
  while (*p) {
    char *nl = strchr(p, '\n');
    if (nl)
      *nl = '\0';
    lineno++;
    char *line = trim(p);
    p = nl ? nl + 1 : p + strlen(p);
    if (line[0] == '\0' || line[0] == '#')
      continue;
    if (!header) {
      if (strcmp(line, CSV_HEADER) != 0) {
        st = DNN__INI_FAIL(err, DNN_EPARSE, path, lineno, NULL, NULL,
                           "expected the header line '%s'", CSV_HEADER);
        goto fail;
      }
      header = true;
      continue;
    }
    dnn_hw_kernel_row r;
    if ((st = csv_row(line, path, lineno, &r, err)))
      goto fail;
    if ((st = dnn_hw_kernel_add(hw, &r, err)))
      goto fail;
  }
  if (!header) {
    st = DNN__INI_FAIL(err, DNN_EPARSE, path, lineno > 0 ? lineno : 1, NULL,
                       NULL, "expected the header line '%s'", CSV_HEADER);
    goto fail;
  }
fail:
  dnn_free(text);
  return st;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct parse_state {
  dnn_hw_params p;
  const char *file;               /* name in messages */
  int key_line[NKEYS];            /* line each key was given on, 0: not */
  int section_line[NSECTIONS];    /* first header line of each section */
  int last_line;                  /* highest line seen */
  char kernels[DNN_SCN_PATH_MAX]; /* [kernels] file */
  int kernels_line;
} parse_state;

static dnn_status on_ini(void *user, const char *section, const char *name,
                         const char *value, int line, dnn_error *err) {
  parse_state *s = user;
  if (line > s->last_line)
    s->last_line = line;
  if (name == NULL) { /* a header */
    int idx = -1;
    for (int j = 0; section_names[j]; j++)
      if (strcmp(section, section_names[j]) == 0)
        idx = j;
    if (idx < 0) {
      const char *near = dnn_nearest_name(section, section_names);
      return DNN__INI_FAIL(err, DNN_EPARSE, s->file, line, section, NULL,
                           "unknown section%s%s%s",
                           near ? " (did you mean [" : "", near ? near : "",
                           near ? "]?)" : "");
    }
    if (s->section_line[idx] == 0)
      s->section_line[idx] = line;
    return DNN_OK;
  }
  if (section[0] == '\0')
    return DNN__INI_FAIL(err, DNN_EPARSE, s->file, line, NULL, NULL,
                         "'%s' is outside any [section]", name);
  if (strcmp(section, "kernels") == 0) {
    if (strcmp(name, "file") != 0) {
      const char *near = dnn_edit_distance(name, "file") <= 2 ? "file" : NULL;
      return DNN__INI_FAIL(err, DNN_EPARSE, s->file, line, section, name,
                           "unknown key%s%s%s", near ? " (did you mean '" : "",
                           near ? near : "", near ? "'?)" : "");
    }
    if (s->kernels_line)
      return DNN__INI_FAIL(err, DNN_EPARSE, s->file, line, section, name,
                           "given twice (first on line %d)", s->kernels_line);
    if (strlen(value) >= sizeof s->kernels)
      return DNN__INI_FAIL(err, DNN_ERANGE, s->file, line, section, name,
                           "path too long");
    snprintf(s->kernels, sizeof s->kernels, "%s", value);
    s->kernels_line = line;
    return DNN_OK;
  }
  const char *cands[NKEYS + 1];
  size_t nc = 0;
  const key *k = NULL;
  size_t ki = 0;
  for (size_t i = 0; i < NKEYS; i++) {
    if (strcmp(KEYS[i].section, section) != 0)
      continue;
    cands[nc++] = KEYS[i].name;
    if (strcmp(KEYS[i].name, name) == 0) {
      k = &KEYS[i];
      ki = i;
    }
  }
  cands[nc] = NULL;
  if (k == NULL) {
    const char *near = dnn_nearest_name(name, cands);
    return DNN__INI_FAIL(err, DNN_EPARSE, s->file, line, section, name,
                         "unknown key%s%s%s", near ? " (did you mean '" : "",
                         near ? near : "", near ? "'?)" : "");
  }
  if (s->key_line[ki])
    return DNN__INI_FAIL(err, DNN_EPARSE, s->file, line, section, name,
                         "given twice (first on line %d)", s->key_line[ki]);
  s->key_line[ki] = line;
  dnn_error e;
  dnn_error_clear(&e);
  if (k->type == K_NUM) {
    double v;
    dnn_status st = dnn__parse_double(value, &v, &e);
    if (st)
      return DNN__INI_FAIL(err, st == DNN_ERANGE ? DNN_ERANGE : DNN_EPARSE,
                           s->file, line, section, name, "%s", e.msg);
    *num_at(&s->p, k) = v * k->scale;
  } else if (k->type == K_CHOICE) {
    int idx;
    if (dnn__parse_choice(value, k->choices, &idx, &e) != DNN_OK)
      return DNN__INI_FAIL(err, DNN_EPARSE, s->file, line, section, name, "%s",
                           e.msg);
    *choice_at(&s->p, k) = idx;
  } else {
    if (k->type == K_KIND) {
      int idx;
      if (dnn__parse_choice(value, kind_names, &idx, &e) != DNN_OK)
        return DNN__INI_FAIL(err, DNN_EPARSE, s->file, line, section, name,
                             "%s", e.msg);
    }
    if (strlen(value) >= k->size)
      return DNN__INI_FAIL(err, DNN_ERANGE, s->file, line, section, name,
                           "text too long (at most %zu characters)",
                           k->size - 1);
    snprintf(text_at(&s->p, k), k->size, "%s", value);
  }
  char msg[DNN_ERROR_MSG_MAX / 2];
  if (check_key(&s->p, k, msg, sizeof msg) != DNN_OK)
    return DNN__INI_FAIL(err, DNN_ERANGE, s->file, line, section, name, "%s",
                         msg);
  return DNN_OK;
}

/* The line to blame for a missing key: its section's header, else the end. */
static int missing_line(const parse_state *s, const char *section) {
  for (size_t i = 0; i < NSECTIONS; i++)
    if (strcmp(section_names[i], section) == 0 && s->section_line[i])
      return s->section_line[i];
  return s->last_line > 0 ? s->last_line : 1;
}

/*
 * Parses profile text. `file` names it in messages; `dir` resolves the
 * kernel file ("" or NULL for built-ins, which may not have one).
 */
static dnn_status load_text(const char *text, const char *file, const char *dir,
                            dnn_hw **out, dnn_error *err) {
  *out = NULL;
  dnn_hw *hw = NULL;
  parse_state *s = dnn_calloc(1, sizeof *s);
  if (s == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "%s: out of memory", file);
  s->p = dnn_hw_default_params();
  s->file = file;
  dnn_status st = dnn__ini_parse(text, file, on_ini, s, err);
  if (st)
    goto fail;
  for (size_t i = 0; i < NKEYS; i++) {
    if (KEYS[i].required && s->key_line[i] == 0) {
      st =
          DNN__INI_FAIL(err, DNN_EPARSE, file, missing_line(s, KEYS[i].section),
                        KEYS[i].section, KEYS[i].name, "required key missing");
      goto fail;
    }
  }
  char msg[DNN_ERROR_MSG_MAX / 2];
  size_t bad = 0;
  if (check_cross(&s->p, &bad, msg, sizeof msg) != DNN_OK) {
    int line = s->key_line[bad] ? s->key_line[bad]
                                : missing_line(s, KEYS[bad].section);
    st = DNN__INI_FAIL(err, DNN_ERANGE, file, line, KEYS[bad].section,
                       KEYS[bad].name, "%s", msg);
    goto fail;
  }
  if ((st = dnn_hw_alloc(&s->p, &hw, err)))
    goto fail;
  if (s->kernels_line) {
    if (dir == NULL) {
      st = DNN__INI_FAIL(err, DNN_EPARSE, file, s->kernels_line, "kernels",
                         "file", "a built-in profile cannot name a file");
      goto fail;
    }
    char path[DNN_SCN_PATH_MAX];
    dnn__path_join(dir, s->kernels, path, sizeof path);
    if ((st = csv_load(hw, path, err))) {
      dnn_error_prefix(err, "%s:%d: [kernels] file", file, s->kernels_line);
      goto fail;
    }
  }
  dnn_free(s);
  *out = hw;
  return DNN_OK;
fail:
  dnn_hw_free(hw);
  dnn_free(s);
  return st;
}

/* A name is a path when it has a '/' or ends in ".ini". */
static bool is_path(const char *s) {
  size_t n = strlen(s);
  return strchr(s, '/') != NULL || (n >= 4 && strcmp(s + n - 4, ".ini") == 0);
}

dnn_status dnn_hw_load(const char *name_or_path, dnn_hw **out, dnn_error *err) {
  *out = NULL;
  if (!is_path(name_or_path)) {
    const char *text = dnn_hw_builtin_text(name_or_path);
    if (text == NULL) {
      const char *const *names = dnn_hw_builtin_list();
      dnn__buf b;
      dnn__buf_init(&b);
      for (size_t i = 0; names[i]; i++)
        dnn__buf_appendf(&b, "%s%s", i ? ", " : "", names[i]);
      const char *near = dnn_nearest_name(name_or_path, names);
      dnn_status st = DNN_FAIL(
          err, DNN_ENOTFOUND,
          "unknown hardware profile '%s'%s%s%s; built-in profiles: %s (or "
          "give a path to a profile .ini file)",
          name_or_path, near ? " (did you mean '" : "", near ? near : "",
          near ? "'?)" : "", b.data ? b.data : "");
      dnn__buf_free(&b);
      return st;
    }
    char file[DNN_SCN_PATH_MAX];
    snprintf(file, sizeof file, "scenarios/profiles/%s.ini", name_or_path);
    return load_text(text, file, NULL, out, err);
  }
  char *text = NULL;
  dnn_status st = dnn_file_read_all(name_or_path, &text, NULL, err);
  if (st)
    return st;
  char dir[DNN_SCN_PATH_MAX];
  snprintf(dir, sizeof dir, "%s", name_or_path);
  char *slash = strrchr(dir, '/');
  if (slash)
    slash[slash == dir ? 1 : 0] = '\0';
  else
    dir[0] = '\0';
  st = load_text(text, name_or_path, dir, out, err);
  dnn_free(text);
  return st;
}

dnn_status dnn_hw_load_string(const char *text, const char *name,
                              const char *dir, dnn_hw **out, dnn_error *err) {
  return load_text(text, name, dir, out, err);
}

/* ------------------------------------------------------------------------ */
/* Saving                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * The shortest decimal of si/scale that loads back (times scale) to
 * exactly `si`, so that load(save(p)) == p bit for bit.
 */
static void fmt_num(char *out, size_t n, double si, double scale) {
  double v = si / scale;
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(out, n, "%.*g", prec, v);
    if (strtod(out, NULL) * scale == si)
      return;
  }
  double cands[2] = {nextafter(v, (double)INFINITY),
                     nextafter(v, -(double)INFINITY)};
  for (size_t i = 0; i < 2; i++) {
    snprintf(out, n, "%.17g", cands[i]);
    if (strtod(out, NULL) * scale == si)
      return;
  }
  snprintf(out, n, "%.17g", v);
}

static dnn_status save_csv(const dnn_hw *hw, const char *path, dnn_error *err) {
  dnn_outfile *f = NULL;
  dnn_status st = dnn_outfile_open(path, &f, err);
  if (st)
    return st;
  FILE *fp = dnn_outfile_stream(f);
  fprintf(fp, "# Measured kernel times for profile '%s' (dnnsim).\n%s\n",
          hw->p.name, CSV_HEADER);
  for (size_t i = 0; i < hw->n_rows; i++) {
    const dnn_hw_kernel_row *r = &hw->rows[i];
    char t[64], w[64];
    fmt_num(t, sizeof t, r->time_s, 1);
    fmt_num(w, sizeof w, r->workspace_bytes, 1);
    fprintf(fp, "%s,%s,%s,%s,%zu,%s,%s\n", r->signature, dnn_pass_name(r->pass),
            algo_names[r->algo], dtype_names[r->dtype], r->batch, t, w);
  }
  return dnn_outfile_commit(f, err);
}

dnn_status dnn_hw_save(const dnn_hw *hw, const char *path, dnn_error *err) {
  char csv[DNN_SCN_PATH_MAX];
  const char *csv_base = NULL;
  if (hw->n_rows > 0) {
    size_t n = strlen(path);
    if (n >= 4 && strcmp(path + n - 4, ".ini") == 0)
      n -= 4;
    snprintf(csv, sizeof csv, "%.*s.kernels.csv", (int)n, path);
    const char *slash = strrchr(csv, '/');
    csv_base = slash ? slash + 1 : csv;
    dnn_status st = save_csv(hw, csv, err);
    if (st)
      return st;
  }
  dnn_outfile *f = NULL;
  dnn_status st = dnn_outfile_open(path, &f, err);
  if (st)
    return st;
  FILE *fp = dnn_outfile_stream(f);
  fprintf(fp, "; dnnsim hardware profile (docs/profiles.md). Units: TFLOPS = "
              "1e12 FLOP/s,\n; GB = 1e9 bytes, GBps = 1e9 bytes/s, GFLOP = "
              "1e9 FLOP, us = 1e-6 s.\n");
  const char *section = "";
  for (size_t i = 0; i < NKEYS; i++) {
    const key *k = &KEYS[i];
    if (strcmp(section, k->section) != 0) {
      section = k->section;
      fprintf(fp, "\n[%s]\n", section);
    }
    if (k->type == K_NUM) {
      char v[64];
      fmt_num(v, sizeof v, num_get(&hw->p, k), k->scale);
      fprintf(fp, "%s = %s\n", k->name, v);
    } else if (k->type == K_CHOICE) {
      fprintf(fp, "%s = %s\n", k->name, k->choices[choice_get(&hw->p, k)]);
    } else {
      const char *t = text_get(&hw->p, k);
      fprintf(fp, "%s =%s%s\n", k->name, t[0] ? " " : "", t);
    }
  }
  if (csv_base)
    fprintf(fp, "\n[kernels]\nfile = %s\n", csv_base);
  return dnn_outfile_commit(f, err);
}

/* ------------------------------------------------------------------------ */
/* Time model                                                                */
/* ------------------------------------------------------------------------ */

/* The roofline with compute efficiency `eff_c` (eff_compute[c] or a
 * convolution algorithm's). */
static double roofline(const dnn_hw_params *p, dnn_opclass c, dnn_dtype dtype,
                       double flops, double bytes, double eff_c) {
  DNN_ASSERT(flops >= 0 && bytes >= 0);
  if (!(flops > 0) && !(bytes > 0))
    return 0;
  double peak = p->peak_flops[dtype];
  if (!(peak > 0) || !(eff_c > 0))
    return (double)INFINITY;
  /* n_1/2 belongs to the arithmetic; a kernel without any (a copy) has
   * only the memory term. */
  double tc = flops > 0 ? (flops + p->half_flops[c]) / (peak * eff_c) : 0;
  double tm = bytes / (p->mem_bandwidth_Bps * p->eff_memory[c]);
  return p->launch_overhead_s + (tc > tm ? tc : tm);
}

double dnn_hw_kernel_time(const dnn_hw *hw, dnn_opclass cls, dnn_dtype dtype,
                          double flops, double bytes) {
  DNN_ASSERT((unsigned)cls < DNN_OPCLASS_COUNT);
  DNN_ASSERT((unsigned)dtype < DNN_DTYPE_COUNT);
  return roofline(&hw->p, cls, dtype, flops, bytes, hw->p.eff_compute[cls]);
}

double dnn_hw_conv_time(const dnn_hw *hw, const dnn_net *net, size_t i,
                        dnn_pass pass, dnn_conv_algo algo, size_t batch,
                        dnn_dtype dtype, double *workspace_bytes) {
  DNN_ASSERT((unsigned)algo < DNN_CONV_ALGO_COUNT);
  dnn_conv_algo_cost c;
  dnn_conv_algo_cost_get(net, i, pass, algo, batch, dtype, &c);
  if (workspace_bytes)
    *workspace_bytes = c.applicable ? c.workspace_bytes : 0;
  if (!c.applicable || !(hw->p.eff_conv_algo[algo] > 0))
    return (double)INFINITY;
  return roofline(&hw->p, DNN_OP_CONV, dtype, c.flops,
                  c.bytes_read + c.bytes_written, hw->p.eff_conv_algo[algo]);
}

/*
 * The fastest convolution algorithm whose workspace fits. Measured rows
 * decide when the layer has any for this pass and dtype (the algorithms
 * cuDNN or oneDNN offered are then the candidates); the roofline of every
 * applicable algorithm decides otherwise, or when no measured one fits.
 * Ties go to the lower algorithm index, so the choice is deterministic.
 */
static double conv_best(const dnn_hw *hw, const dnn_net *net, size_t i,
                        const char *sig, dnn_pass pass, size_t batch,
                        dnn_dtype dtype, double limit, dnn_conv_algo *algo,
                        double *workspace) {
  double best = (double)INFINITY;
  bool found = false;
  if (sig) {
    for (size_t a = 0; a < DNN_CONV_ALGO_COUNT; a++) {
      double t, ws;
      if (lookup(hw, sig, pass, (dnn_conv_algo)a, dtype, batch, &t, &ws) &&
          ws <= limit && (!found || t < best)) {
        found = true;
        best = t;
        *algo = (dnn_conv_algo)a;
        *workspace = ws;
      }
    }
    if (found)
      return best;
  }
  for (size_t a = 0; a < DNN_CONV_ALGO_COUNT; a++) {
    double ws = 0;
    double t =
        dnn_hw_conv_time(hw, net, i, pass, (dnn_conv_algo)a, batch, dtype, &ws);
    if (isfinite(t) && ws <= limit && (!found || t < best)) {
      found = true;
      best = t;
      *algo = (dnn_conv_algo)a;
      *workspace = ws;
    }
  }
  return best;
}

double dnn_hw_layer_time(const dnn_hw *hw, const dnn_net *net, size_t i,
                         dnn_pass pass, size_t batch, dnn_dtype dtype,
                         double workspace_limit_bytes, dnn_conv_algo *algo,
                         double *workspace_bytes) {
  DNN_ASSERT(!(workspace_limit_bytes < 0));
  dnn_conv_algo a = DNN_CONV_ALGO_COUNT;
  double ws = 0;
  if (algo)
    *algo = a;
  if (workspace_bytes)
    *workspace_bytes = 0;
  const dnn_layer *l = dnn_net_layer(net, i);
  dnn_cost c;
  dnn_layer_cost(net, i, pass, batch, dtype, &c);
  double bytes = c.bytes_read + c.bytes_written;
  if (!(c.flops > 0) && !(bytes > 0))
    return 0; /* a pass this layer does not have */
  char sig[SIG_MAX];
  const char *sigp = NULL;
  if (hw->n_rows > 0) {
    dnn_layer_signature(net, i, sig, sizeof sig);
    sigp = sig;
  }
  if (l->kind == DNN_LAYER_CONV2D) {
    double t = conv_best(hw, net, i, sigp, pass, batch, dtype,
                         workspace_limit_bytes, &a, &ws);
    if (algo)
      *algo = a;
    if (workspace_bytes)
      *workspace_bytes = ws;
    return t;
  }
  double t;
  if (sigp &&
      lookup(hw, sigp, pass, DNN_CONV_ALGO_COUNT, dtype, batch, &t, NULL))
    return t;
  dnn_opclass cls = dnn_layer_kind_opclass(l->kind);
  return roofline(&hw->p, cls, dtype, c.flops, bytes, hw->p.eff_compute[cls]);
}

/* ------------------------------------------------------------------------ */
/* Clusters                                                                  */
/* ------------------------------------------------------------------------ */

size_t dnn_cluster_devices(const dnn_cluster *c) {
  return c->nodes * c->devices_per_node;
}
