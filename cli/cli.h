/*
 * Shared pieces of the dnnsim command: exit codes, option parsing helpers,
 * scenario loading with --set overrides, output formats and the JSON/table
 * rendering of a prediction. Only cli/ prints or exits.
 */
#ifndef DNNSIM_CLI_H
#define DNNSIM_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "dnnsim.h"

/* Exit codes (documented in `dnnsim --help` and docs/cli.md). */
enum {
  CLI_EXIT_OK = 0,
  CLI_EXIT_RUNTIME = 1,    /* a failure while running (I/O, tools, MPI) */
  CLI_EXIT_USAGE = 2,      /* bad command line */
  CLI_EXIT_INPUT = 3,      /* bad scenario, network, profile or data file */
  CLI_EXIT_UNAVAILABLE = 4 /* no device, or not built into this binary */
};

typedef enum cli_format {
  CLI_FORMAT_TABLE,
  CLI_FORMAT_CSV,
  CLI_FORMAT_JSON
} cli_format;

#define CLI_MAX_SETS 64

/* Options every scenario command shares. */
typedef struct cli_scn_opts {
  const char *path;
  const char *sets[CLI_MAX_SETS];
  size_t n_sets;
  cli_format format;
  int engine; /* -1: from the scenario */
} cli_scn_opts;

/* A subcommand: argv[0] is the subcommand's name. */
typedef int (*cli_cmd_fn)(int argc, char **argv);

typedef struct cli_cmd {
  const char *name;
  cli_cmd_fn fn;
  const char *summary;
} cli_cmd;

/* Prints "dnnsim: <msg>" for an error and returns its exit code. */
int cli_fail(const dnn_error *err, dnn_status st);
/* Prints "dnnsim CMD: <fmt>" plus a --help hint; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* The exit code for a status. */
int cli_exit_code(dnn_status st);

/* Parses --format's value; false when unknown. */
bool cli_parse_format(const char *s, cli_format *out);

/*
 * Handles one shared scenario option at argv[*i] (--set, --format,
 * --engine, or the scenario path). Returns 1 when consumed (advancing *i
 * past any value), 0 when not a shared option, -1 on a usage error (already
 * printed).
 */
int cli_scn_opt(const char *cmd, int argc, char **argv, int *i,
                cli_scn_opts *o);

/* Loads the scenario with its overrides and validates it. */
dnn_status cli_scn_load(const cli_scn_opts *o, dnn_scenario *scn,
                        dnn_error *err);

/*
 * Everything a prediction reads, resolved from a scenario: network,
 * profile and cluster. cli_world_free releases it.
 */
typedef struct cli_world {
  dnn_scenario scn;
  dnn_net *net;
  dnn_hw *hw;
  dnn_cluster cluster;
} cli_world;

dnn_status cli_world_load(const cli_scn_opts *o, cli_world *w, dnn_error *err);
/* Rebuilds the parts that depend on the (edited) scenario. */
dnn_status cli_world_refresh(cli_world *w, bool net_changed, bool hw_changed,
                             dnn_error *err);
void cli_world_free(cli_world *w);
dnn_strat_input cli_world_input(const cli_world *w);

/* A prediction as a JSON object (new reference). */
json_t *cli_prediction_json(const cli_world *w, const dnn_prediction *p);
/* Prints a prediction as a human-readable report. */
void cli_prediction_table(FILE *fp, const cli_world *w,
                          const dnn_prediction *p);
/* The operator choices behind a prediction (convolution algorithms and
 * workspace under [hardware] workspace_MB, the tensor group's splits):
 * a summary for the table, every convolution and split layer in JSON. */
void cli_operators_table(FILE *fp, const cli_world *w, const dnn_prediction *p);
json_t *cli_operators_json(const cli_world *w, const dnn_prediction *p);

/* What the scenario's training techniques do (mixed sizes, batch
 * augmentation, updates, inference cost, sparse gradients, consistency,
 * compression): lines for the table (only the techniques in use and the
 * inference cost), every field in JSON. */
void cli_techniques_table(FILE *fp, const cli_world *w,
                          const dnn_prediction *p);
json_t *cli_techniques_json(const cli_world *w, const dnn_prediction *p);

/* CSV header and row of a prediction (no newline at the end). */
void cli_prediction_csv_header(FILE *fp);
void cli_prediction_csv_row(FILE *fp, const dnn_prediction *p);

/* Human-readable quantities: "12.3 ms", "1.50 GiB", "3.21 TFLOP/s". */
const char *cli_fmt_time(double s, char *buf, size_t n);
const char *cli_fmt_bytes(double b, char *buf, size_t n);
const char *cli_fmt_rate(double v, const char *unit, char *buf, size_t n);
const char *cli_fmt_count(double v, char *buf, size_t n);

/* Dumps JSON to stdout with a trailing newline; returns an exit code. */
int cli_print_json(json_t *j);

/* Progress on stderr when it is a terminal: cli_progress(done, total,
 * label); a final call with done == total ends the line. */
void cli_progress(size_t done, size_t total, const char *label);

/* Subcommands. */
int cli_cmd_predict(int argc, char **argv);
int cli_cmd_trace(int argc, char **argv);
int cli_cmd_describe(int argc, char **argv);
int cli_cmd_models(int argc, char **argv);
int cli_cmd_profiles(int argc, char **argv);
int cli_cmd_links(int argc, char **argv);
int cli_cmd_keys(int argc, char **argv);
int cli_cmd_errors(int argc, char **argv);
int cli_cmd_microbatch(int argc, char **argv);
int cli_cmd_sweep(int argc, char **argv);
int cli_cmd_plot(int argc, char **argv);
int cli_cmd_search(int argc, char **argv);
int cli_cmd_calibrate(int argc, char **argv);
int cli_cmd_validate(int argc, char **argv);

#endif /* DNNSIM_CLI_H */
