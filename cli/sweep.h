/*
 * The sweep driver shared by `dnnsim sweep` and `dnnsim plot`
 * (cmd_sweep.c): runs one prediction per configuration of a cartesian
 * product of --vary lists, re-resolving only what each row changes.
 */
#ifndef DNNSIM_CLI_SWEEP_H
#define DNNSIM_CLI_SWEEP_H

#include "cli.h"

/* One configuration of a sweep, handed to the row callback. */
typedef struct cli_sweep_row {
  size_t index, total;       /* row index in [0, total) */
  const char *const *values; /* the row's value of each --vary (as given) */
  const dnn_scenario *scn;   /* the row's scenario */
  const cli_world *w;        /* resolved world; valid when p != NULL */
  const dnn_prediction *p;   /* NULL when the configuration failed */
  dnn_status status;         /* why it failed (DNN_OK otherwise) */
  const dnn_error *err;      /* the failure's message */
} cli_sweep_row;

/* Called once per row, in order. A non-OK return stops the sweep with it. */
typedef dnn_status (*cli_sweep_fn)(void *ud, const cli_sweep_row *row,
                                   dnn_error *err);

/*
 * Loads the scenario of `o` (with its --set overrides, not yet validated:
 * each row is validated with its own values) and predicts every row of the
 * sweep over vary[0..n). A failing row is passed to `fn` with p == NULL and
 * counted in *failed, unless `strict`, which stops at it with its status and
 * message ("configuration R of N (key=value, ...): ..."). `label` names the
 * progress bar.
 */
dnn_status cli_sweep_run(const cli_scn_opts *o, const dnn_plot_vary *vary,
                         size_t n, bool strict, const char *label,
                         cli_sweep_fn fn, void *ud, size_t *failed,
                         dnn_error *err);

/*
 * Handles --vary at argv[*i]: parses it into vary[*n] (printing a usage
 * error naming `cmd` on failure: a bad --vary is a usage error). Returns 1
 * when consumed, 0 when argv[*i] is not --vary, -1 on error.
 */
int cli_vary_opt(const char *cmd, int argc, char **argv, int *i,
                 dnn_plot_vary *vary, size_t *n);

/* "k=v, k2=v2" (key names without section) of a row into buf. */
const char *cli_sweep_row_text(const dnn_plot_vary *vary, size_t n,
                               const char *const *values, char *buf,
                               size_t len);

#endif /* DNNSIM_CLI_SWEEP_H */
