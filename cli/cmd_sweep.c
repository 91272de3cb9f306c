/*
 * dnnsim sweep: one prediction per configuration of the cartesian product
 * of --vary lists, as CSV (the varied keys, the prediction, an error
 * column) or JSON lines. Also the sweep driver `dnnsim plot` uses
 * (sweep.h).
 *
 * Invariant: each row starts from the same base scenario (file plus --set)
 * with only its own values applied, so a failed row cannot leak into the
 * next; the network and profile are rebuilt only when a row changes a key
 * they depend on (dnn_plot_scn_changes), the cluster every row.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "sweep.h"

static void help(void) {
  printf(
      "usage: dnnsim sweep SCENARIO.ini --vary SECTION.KEY=VALUES [...] "
      "[OPTIONS]\n"
      "\n"
      "Predicts every configuration of the cartesian product of the --vary\n"
      "lists (the first --vary varies slowest) and writes one row per\n"
      "configuration: the varied keys, then the prediction's columns, then\n"
      "an error column for configurations that are invalid (for example a\n"
      "batch that does not divide); those rows do not stop the sweep.\n"
      "\n"
      "VALUES is a comma-separated list (use ';' when values hold commas);\n"
      "each item is a value or a numeric range:\n"
      "  A..B      A, A+1, ..., B            e.g. parallelism.pipeline=1..4\n"
      "  A..B+S    A, A+S, ..., up to B      e.g. "
      "parallelism.bucket_MB=5..50+5\n"
      "  A..B*F    A, A*F, A*F^2, ..., <= B  e.g. cluster.nodes=1..64*2\n"
      "\n"
      "Options:\n"
      "  --vary SECTION.KEY=VALUES     a key to vary (repeatable; 'dnnsim "
      "keys')\n"
      "  -s, --set SECTION.KEY=VALUE   override a scenario key (repeatable)\n"
      "  -f, --format csv|json         CSV (default) or JSON lines\n"
      "  -o, --output FILE             write to FILE (atomically) instead of "
      "stdout\n"
      "  --strict                      stop at the first invalid "
      "configuration\n"
      "  --engine auto|analytic|des    force a prediction engine\n"
      "  -h, --help                    this help\n"
      "\n"
      "Examples:\n"
      "  dnnsim sweep scenarios/default.ini --vary cluster.nodes=1..16*2\n"
      "  dnnsim sweep scenarios/default.ini --vary cluster.nodes=1,2,4 \\\n"
      "      --vary parallelism.allreduce=ring,tree -f json -o sweep.jsonl\n");
}

/* ---- The sweep driver (sweep.h) -------------------------------------------
 */

int cli_vary_opt(const char *cmd, int argc, char **argv, int *i,
                 dnn_plot_vary *vary, size_t *n) {
  const char *a = argv[*i];
  const char *spec;
  if (strcmp(a, "--vary") == 0) {
    if (*i + 1 >= argc) {
      cli_usage_error(cmd, "--vary needs a value such as "
                           "cluster.nodes=1..16*2");
      return -1;
    }
    spec = argv[++*i];
  } else if (strncmp(a, "--vary=", 7) == 0) {
    spec = a + 7;
  } else {
    return 0;
  }
  if (*n >= DNN_PLOT_MAX_VARY) {
    cli_usage_error(cmd, "at most %d --vary options", DNN_PLOT_MAX_VARY);
    return -1;
  }
  dnn_error err;
  dnn_error_clear(&err);
  if (dnn_plot_vary_parse(spec, &vary[*n], &err)) {
    dnn_plot_vary_free(&vary[*n]);
    cli_usage_error(cmd, "%s", err.msg);
    return -1;
  }
  for (size_t j = 0; j < *n; j++)
    if (strcmp(vary[j].section, vary[*n].section) == 0 &&
        strcmp(vary[j].key, vary[*n].key) == 0) {
      cli_usage_error(cmd, "--vary %s.%s is given twice", vary[j].section,
                      vary[j].key);
      dnn_plot_vary_free(&vary[*n]);
      return -1;
    }
  ++*n;
  return 1;
}

const char *cli_sweep_row_text(const dnn_plot_vary *vary, size_t n,
                               const char *const *values, char *buf,
                               size_t len) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t j = 0; j < n && used < len; j++) {
    int w = snprintf(buf + used, len - used, "%s%s=%s", j ? ", " : "",
                     vary[j].key, values[j]);
    if (w < 0)
      break;
    used += (size_t)w;
  }
  return buf;
}

/* The base scenario: file and --set overrides, not validated. */
static dnn_status load_base(const cli_scn_opts *o, dnn_scenario *scn,
                            dnn_error *err) {
  dnn_scn_init(scn);
  dnn_status st = dnn_scn_load(o->path, scn, err);
  for (size_t i = 0; st == DNN_OK && i < o->n_sets; i++)
    st = dnn_scn_set(scn, o->sets[i], err);
  if (st == DNN_OK && o->engine >= 0)
    scn->engine = (dnn_engine)o->engine;
  return st;
}

/* Resolves and predicts the row already applied to w->scn. Per-layer
 * times, comm profiles and the networks of other sizes stay in `cache`
 * from row to row; it is cleared whenever the network or profile is
 * rebuilt (the cache's contract, strat.h). */
static dnn_status predict_row(cli_world *w, dnn_strat_cache *cache,
                              dnn_scenario *net_from, dnn_scenario *hw_from,
                              dnn_prediction *p, dnn_error *err) {
  dnn_status st = dnn_scn_validate(&w->scn, err);
  if (st)
    return st;
  bool net_changed = true, hw_changed = true, unused;
  if (w->net)
    dnn_plot_scn_changes(net_from, &w->scn, &net_changed, &unused);
  if (w->hw)
    dnn_plot_scn_changes(hw_from, &w->scn, &unused, &hw_changed);
  if (net_changed || hw_changed)
    dnn_strat_cache_clear(cache);
  st = cli_world_refresh(w, net_changed, hw_changed, err);
  if (st) {
    /* Rebuild everything on the next row rather than guess what is valid. */
    cli_world_free(w);
    dnn_strat_cache_clear(cache);
    return st;
  }
  if (net_changed)
    *net_from = w->scn;
  if (hw_changed)
    *hw_from = w->scn;
  dnn_strat_input in = cli_world_input(w);
  return dnn_strat_predict_cached(&in, cache, p, err);
}

dnn_status cli_sweep_run(const cli_scn_opts *o, const dnn_plot_vary *vary,
                         size_t n, bool strict, const char *label,
                         cli_sweep_fn fn, void *ud, size_t *failed,
                         dnn_error *err) {
  *failed = 0;
  size_t rows;
  dnn_status st = dnn_plot_sweep_rows(vary, n, &rows, err);
  if (st)
    return st;
  /* Scenarios are large (paths): keep them off the stack. */
  dnn_scenario *base = dnn_malloc(sizeof *base);
  dnn_scenario *net_from = dnn_malloc(sizeof *net_from);
  dnn_scenario *hw_from = dnn_malloc(sizeof *hw_from);
  cli_world *w = dnn_calloc(1, sizeof *w);
  dnn_strat_cache *cache = NULL;
  if (!base || !net_from || !hw_from || !w ||
      dnn_strat_cache_alloc(&cache, NULL)) {
    st = DNN_FAIL(err, DNN_ENOMEM, "out of memory");
    goto fail;
  }
  if ((st = load_base(o, base, err)))
    goto fail;
  const char *values[DNN_PLOT_MAX_VARY + 1] = {NULL};
  for (size_t r = 0; r < rows; r++) {
    for (size_t j = 0; j < n; j++)
      values[j] = vary[j].values[dnn_plot_sweep_index(vary, n, r, j)];
    w->scn = *base;
    dnn_error rerr;
    dnn_error_clear(&rerr);
    dnn_prediction p;
    dnn_status rst = dnn_plot_sweep_apply(vary, n, r, &w->scn, &rerr);
    if (rst == DNN_OK)
      rst = predict_row(w, cache, net_from, hw_from, &p, &rerr);
    cli_progress(r + 1, rows, label);
    if (rst) {
      ++*failed;
      if (strict) {
        char text[512];
        cli_sweep_row_text(vary, n, values, text, sizeof text);
        st = DNN_FAIL(err, rst, "configuration %zu of %zu (%s): %s", r + 1,
                      rows, text, rerr.msg);
        goto fail;
      }
    }
    cli_sweep_row row = {r,   rows, values, &w->scn, w, rst ? NULL : &p,
                         rst, &rerr};
    if ((st = fn(ud, &row, err)))
      goto fail;
  }
fail:
  if (w)
    cli_world_free(w);
  dnn_strat_cache_free(cache);
  dnn_free(w);
  dnn_free(base);
  dnn_free(net_from);
  dnn_free(hw_from);
  return st;
}

/* ---- dnnsim sweep
 * ------------------------------------------------------------ */

typedef struct sweep_out {
  FILE *fp;
  cli_format format;
  const dnn_plot_vary *vary;
  size_t n_vary;
  size_t pred_columns; /* of cli_prediction_csv_header */
} sweep_out;

/* Writes a CSV field, quoted when it holds a comma, quote or newline. */
static void csv_field(FILE *fp, const char *s) {
  if (strpbrk(s, ",\"\r\n") == NULL) {
    fputs(s, fp);
    return;
  }
  fputc('"', fp);
  for (; *s; s++) {
    if (*s == '"')
      fputc('"', fp);
    fputc(*s, fp);
  }
  fputc('"', fp);
}

static size_t prediction_columns(void) {
  char *text = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&text, &len);
  if (mem == NULL)
    return 0;
  cli_prediction_csv_header(mem);
  fclose(mem);
  size_t cols = text && text[0] ? 1 : 0;
  for (size_t i = 0; text && text[i]; i++)
    cols += text[i] == ',';
  free(text); /* open_memstream allocates with malloc */
  return cols;
}

/* A varied value as typed JSON: numbers and booleans as such. */
static json_t *typed_value(const dnn_plot_vary *v, const dnn_scenario *scn,
                           const char *raw) {
  const dnn_scn_key *k = dnn_scn_key_find(v->section, v->key);
  char text[DNN_SCN_PATH_MAX + 8];
  if (k == NULL ||
      dnn_scn_get_value(scn, v->section, v->key, text, sizeof text))
    return json_string(raw);
  switch (k->type) {
  case DNN_SCN_INT:
    return json_integer((json_int_t)strtoll(text, NULL, 10));
  case DNN_SCN_FLOAT:
    return json_real(strtod(text, NULL));
  case DNN_SCN_BOOL:
    return json_boolean(strcmp(text, "true") == 0);
  default:
    return json_string(raw);
  }
}

static dnn_status write_row(void *ud, const cli_sweep_row *row,
                            dnn_error *err) {
  sweep_out *out = ud;
  FILE *fp = out->fp;
  if (out->format == CLI_FORMAT_JSON) {
    json_t *j = json_object();
    if (j == NULL)
      return DNN_FAIL(err, DNN_ENOMEM, "out of memory building JSON");
    for (size_t i = 0; i < out->n_vary; i++) {
      char name[2 * DNN_SCN_NAME_MAX];
      snprintf(name, sizeof name, "%s.%s", out->vary[i].section,
               out->vary[i].key);
      json_object_set_new(j, name,
                          typed_value(&out->vary[i], row->scn, row->values[i]));
    }
    if (row->p) {
      json_t *pj = cli_prediction_json(row->w, row->p);
      if (pj)
        json_object_update(j, pj);
      json_decref(pj);
    } else {
      json_object_set_new(j, "error", json_string(row->err->msg));
    }
    int rc = json_dumpf(j, fp, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(j);
    fputc('\n', fp);
    if (rc)
      return DNN_FAIL(err, DNN_EIO, "cannot write a JSON row");
  } else {
    for (size_t i = 0; i < out->n_vary; i++) {
      csv_field(fp, row->values[i]);
      fputc(',', fp);
    }
    if (row->p) {
      cli_prediction_csv_row(fp, row->p);
      fputc(',', fp);
    } else {
      for (size_t c = 0; c < out->pred_columns; c++)
        fputc(',', fp);
      csv_field(fp, row->err->msg);
    }
    fputc('\n', fp);
  }
  if (ferror(fp))
    return DNN_FAIL(err, DNN_EIO, "write error");
  return DNN_OK;
}

int cli_cmd_sweep(int argc, char **argv) {
  cli_scn_opts o = {.engine = -1};
  dnn_plot_vary vary[DNN_PLOT_MAX_VARY];
  memset(vary, 0, sizeof vary);
  size_t n_vary = 0;
  const char *output = NULL;
  bool strict = false;
  int rc = CLI_EXIT_OK;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      help();
      goto done;
    }
    if (strcmp(a, "--strict") == 0) {
      strict = true;
      continue;
    }
    if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
      if (i + 1 >= argc) {
        rc = cli_usage_error("sweep", "%s needs a file name", a);
        goto done;
      }
      output = argv[++i];
      continue;
    }
    if (strncmp(a, "--output=", 9) == 0) {
      output = a + 9;
      continue;
    }
    int r = cli_vary_opt("sweep", argc, argv, &i, vary, &n_vary);
    if (r == 0)
      r = cli_scn_opt("sweep", argc, argv, &i, &o);
    if (r < 0) {
      rc = CLI_EXIT_USAGE;
      goto done;
    }
    if (r == 0) {
      rc = cli_usage_error("sweep", "unknown option '%s'", a);
      goto done;
    }
  }
  if (o.path == NULL) {
    rc = cli_usage_error("sweep", "a scenario file is required");
    goto done;
  }
  if (n_vary == 0) {
    rc = cli_usage_error("sweep", "at least one --vary SECTION.KEY=VALUES is "
                                  "required (e.g. --vary "
                                  "cluster.nodes=1..16*2)");
    goto done;
  }

  dnn_error err;
  dnn_error_clear(&err);
  dnn_outfile *of = NULL;
  dnn_status st = DNN_OK;
  if (output)
    st = dnn_outfile_open(output, &of, &err);
  if (st) {
    rc = cli_fail(&err, st);
    goto done;
  }
  sweep_out out = {of ? dnn_outfile_stream(of) : stdout,
                   o.format == CLI_FORMAT_JSON ? CLI_FORMAT_JSON
                                               : CLI_FORMAT_CSV,
                   vary, n_vary, prediction_columns()};
  if (out.format == CLI_FORMAT_CSV) {
    for (size_t i = 0; i < n_vary; i++)
      fprintf(out.fp, "%s.%s,", vary[i].section, vary[i].key);
    cli_prediction_csv_header(out.fp);
    fputs(",error\n", out.fp);
  }
  size_t failed = 0;
  st = cli_sweep_run(&o, vary, n_vary, strict, "sweep", write_row, &out,
                     &failed, &err);
  if (st == DNN_OK && of) {
    st = dnn_outfile_commit(of, &err);
    of = NULL;
  }
  dnn_outfile_abort(of);
  if (st) {
    rc = cli_fail(&err, st);
    goto done;
  }
  fflush(stdout);
  if (failed)
    fprintf(stderr,
            "dnnsim sweep: %zu configuration%s failed (see the 'error' "
            "%s; --strict stops at the first)\n",
            failed, failed == 1 ? "" : "s",
            out.format == CLI_FORMAT_JSON ? "field" : "column");
  if (output)
    fprintf(stderr, "dnnsim sweep: wrote %s\n", output);
done:
  for (size_t i = 0; i < n_vary; i++)
    dnn_plot_vary_free(&vary[i]);
  return rc;
}
