/*
 * Listing commands: models (the zoo), profiles, links, keys (the scenario
 * key table; `--format markdown` writes docs/scenario.md) and errors (the
 * status list; `--format markdown` writes docs/errors.md). Every list
 * comes from the library's one table of that fact.
 */
#include <string.h>

#include "cli.h"

/* Parses the only options of a listing command: --help and --format. */
static int list_opts(const char *cmd, int argc, char **argv, bool *markdown,
                     cli_format *fmt, const char *helptext) {
  *markdown = false;
  *fmt = CLI_FORMAT_TABLE;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      printf("%s", helptext);
      return CLI_EXIT_OK + 100;
    }
    if ((strcmp(argv[i], "--format") == 0 || strcmp(argv[i], "-f") == 0) &&
        i + 1 < argc) {
      i++;
      if (strcmp(argv[i], "markdown") == 0)
        *markdown = true;
      else if (!cli_parse_format(argv[i], fmt))
        return cli_usage_error(cmd, "unknown format '%s'", argv[i]);
      continue;
    }
    return cli_usage_error(cmd, "unknown argument '%s'", argv[i]);
  }
  return -1;
}

#define LIST_OPTS(cmd, help)                                                   \
  bool markdown;                                                               \
  cli_format fmt;                                                              \
  int rc_ = list_opts(cmd, argc, argv, &markdown, &fmt, help);                 \
  if (rc_ >= 100)                                                              \
    return CLI_EXIT_OK;                                                        \
  if (rc_ >= 0)                                                                \
    return rc_;

int cli_cmd_models(int argc, char **argv) {
  LIST_OPTS("models", "usage: dnnsim models [--format table|json]\n\n"
                      "Lists the built-in networks.\n")
  (void)markdown;
  size_t n;
  const dnn_zoo_entry *z = dnn_zoo_list(&n);
  if (fmt == CLI_FORMAT_JSON) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
      json_array_append_new(a, json_pack("{s:s,s:s}", "name", z[i].name,
                                         "description", z[i].description));
    return cli_print_json(a);
  }
  for (size_t i = 0; i < n; i++)
    printf("%-16s %s\n", z[i].name, z[i].description);
  return CLI_EXIT_OK;
}

int cli_cmd_profiles(int argc, char **argv) {
  LIST_OPTS("profiles", "usage: dnnsim profiles [--format table|json]\n\n"
                        "Lists the built-in hardware profiles.\n")
  (void)markdown;
  const char *const *names = dnn_hw_builtin_list();
  json_t *a = fmt == CLI_FORMAT_JSON ? json_array() : NULL;
  if (!a)
    printf("%-16s %10s %10s %10s %10s %9s  %s\n", "name", "fp32", "tf32",
           "fp16", "bf16", "memory", "bandwidth");
  for (size_t i = 0; names[i]; i++) {
    dnn_hw *hw;
    dnn_error err;
    dnn_status st = dnn_hw_load(names[i], &hw, &err);
    if (st) {
      json_decref(a);
      return cli_fail(&err, st);
    }
    const dnn_hw_params *p = dnn_hw_get(hw);
    if (a) {
      json_array_append_new(
          a, json_pack("{s:s,s:f,s:f,s:f,s:f,s:f,s:f,s:s}", "name", p->name,
                       "peak_fp32_flops", p->peak_flops[DNN_DTYPE_FP32],
                       "peak_tf32_flops", p->peak_flops[DNN_DTYPE_TF32],
                       "peak_fp16_flops", p->peak_flops[DNN_DTYPE_FP16],
                       "peak_bf16_flops", p->peak_flops[DNN_DTYPE_BF16],
                       "memory_bytes", p->mem_capacity_bytes, "bandwidth_Bps",
                       p->mem_bandwidth_Bps, "source", p->source));
    } else {
      char m[32], b[32];
      printf("%-16s %7.1f TF %7.1f TF %7.1f TF %7.1f TF %9s  %s\n", p->name,
             p->peak_flops[DNN_DTYPE_FP32] / 1e12,
             p->peak_flops[DNN_DTYPE_TF32] / 1e12,
             p->peak_flops[DNN_DTYPE_FP16] / 1e12,
             p->peak_flops[DNN_DTYPE_BF16] / 1e12,
             cli_fmt_bytes(p->mem_capacity_bytes, m, sizeof m),
             cli_fmt_rate(p->mem_bandwidth_Bps, "B/s", b, sizeof b));
    }
    dnn_hw_free(hw);
  }
  return a ? cli_print_json(a) : CLI_EXIT_OK;
}

int cli_cmd_links(int argc, char **argv) {
  LIST_OPTS("links", "usage: dnnsim links [--format table|json]\n\n"
                     "Lists the built-in links (latency and bandwidth per\n"
                     "direction).\n")
  (void)markdown;
  const char *const *names = dnn_hw_link_list();
  json_t *a = fmt == CLI_FORMAT_JSON ? json_array() : NULL;
  if (!a)
    printf("%-12s %12s %14s\n", "name", "latency", "bandwidth");
  for (size_t i = 0; names[i]; i++) {
    dnn_link l;
    dnn_error err;
    dnn_status st = dnn_hw_link_builtin(names[i], &l, &err);
    if (st) {
      json_decref(a);
      return cli_fail(&err, st);
    }
    char t[32], b[32];
    if (a)
      json_array_append_new(a, json_pack("{s:s,s:f,s:f}", "name", l.name,
                                         "latency_s", l.latency_s,
                                         "bandwidth_Bps", l.bandwidth_Bps));
    else
      printf("%-12s %12s %14s\n", l.name,
             cli_fmt_time(l.latency_s, t, sizeof t),
             cli_fmt_rate(l.bandwidth_Bps, "B/s", b, sizeof b));
  }
  return a ? cli_print_json(a) : CLI_EXIT_OK;
}

static const char *type_name(const dnn_scn_key *k) {
  switch (k->type) {
  case DNN_SCN_INT:
    return "integer";
  case DNN_SCN_FLOAT:
    return "number";
  case DNN_SCN_BOOL:
    return "boolean";
  case DNN_SCN_ENUM:
    return "choice";
  case DNN_SCN_STRING:
    return "name";
  case DNN_SCN_PATH:
    return "path";
  case DNN_SCN_CUSTOM:
    return "text";
  }
  return "?";
}

/* The values a key takes; `sep` joins choices ("\\|" inside Markdown
 * tables, where a bare '|' would end the cell). */
static void key_values(const dnn_scn_key *k, const char *sep, char *buf,
                       size_t n) {
  if (k->type == DNN_SCN_ENUM) {
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; k->choices[i] && used < n; i++)
      used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? sep : "",
                               k->choices[i]);
  } else if (k->type == DNN_SCN_INT || k->type == DNN_SCN_FLOAT) {
    snprintf(buf, n, "%g..%g", k->min, k->max);
  } else {
    snprintf(buf, n, "%s", type_name(k));
  }
}

int cli_cmd_keys(int argc, char **argv) {
  LIST_OPTS("keys",
            "usage: dnnsim keys [--format table|json|markdown]\n\n"
            "Lists every scenario key: section, name, values, default, unit\n"
            "and meaning. '--format markdown' prints docs/scenario.md.\n")
  size_t n;
  const dnn_scn_key *keys = dnn_scn_keys(&n);
  json_t *a = fmt == CLI_FORMAT_JSON && !markdown ? json_array() : NULL;
  if (markdown) {
    printf("# Scenario keys\n\n"
           "Generated by `dnnsim keys --format markdown` from the key table "
           "(scenarios/keys.c);\ndo not edit by hand. Units are part of the "
           "key names where they matter.\n");
  }
  const char *section = NULL;
  for (size_t i = 0; i < n; i++) {
    const dnn_scn_key *k = &keys[i];
    char vals[256];
    key_values(k, markdown ? "\\|" : "|", vals, sizeof vals);
    if (a) {
      json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "section",
                                         k->section, "key", k->name, "type",
                                         type_name(k), "values", vals,
                                         "default", k->def, "help", k->help));
      continue;
    }
    if (markdown) {
      if (section == NULL || strcmp(section, k->section) != 0) {
        printf("\n## [%s]\n\n| key | values | default | unit | meaning |\n"
               "|---|---|---|---|---|\n",
               k->section);
        section = k->section;
      }
      printf("| `%s` | %s | `%s` | %s | %s |\n", k->name, vals,
             k->def[0] ? k->def : "(none)", k->unit ? k->unit : "", k->help);
      continue;
    }
    printf("%-12s %-22s %-28s default %-10s %s\n", k->section, k->name, vals,
           k->def[0] ? k->def : "-", k->help);
  }
  return a ? cli_print_json(a) : CLI_EXIT_OK;
}

int cli_cmd_errors(int argc, char **argv) {
  LIST_OPTS("errors",
            "usage: dnnsim errors [--format table|markdown]\n\n"
            "Lists the library's status codes and the command's exit codes.\n"
            "'--format markdown' prints docs/errors.md.\n")
  (void)fmt;
  if (markdown)
    printf("# Status and exit codes\n\n"
           "Generated by `dnnsim errors --format markdown` from "
           "DNN_STATUS_LIST in\ninclude/dnnsim/core.h; do not edit by "
           "hand.\n\n## Library status codes\n\n"
           "| code | name | meaning | exit code |\n|---|---|---|---|\n");
  for (int c = 0; c < DNN_STATUS_COUNT_; c++) {
    dnn_status st = (dnn_status)c;
    if (markdown)
      printf("| %d | `DNN_%s` | %s | %d |\n", c, dnn_status_name(st),
             dnn_strerror(st), cli_exit_code(st));
    else
      printf("%3d  DNN_%-14s exit %d  %s\n", c, dnn_status_name(st),
             cli_exit_code(st), dnn_strerror(st));
  }
  if (markdown)
    printf("\n## Exit codes of `dnnsim`\n\n| exit | meaning |\n|---|---|\n"
           "| 0 | success |\n"
           "| 1 | runtime error (I/O, MPI, an external tool) |\n"
           "| 2 | usage error (bad command line) |\n"
           "| 3 | bad input: a scenario, network, profile or data file, or "
           "a value out of range |\n"
           "| 4 | unavailable: no device, or a back end not in this build |\n");
  return CLI_EXIT_OK;
}
