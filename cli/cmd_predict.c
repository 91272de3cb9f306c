/*
 * dnnsim predict: one scenario in, iteration time, breakdown, throughput,
 * memory and scaling out (table, CSV or JSON).
 */
#include <string.h>

#include "cli.h"

static void help(void) {
  printf(
      "usage: dnnsim predict SCENARIO.ini [OPTIONS]\n"
      "\n"
      "Predicts one training iteration of the scenario: its time and\n"
      "breakdown, throughput, memory per device and scaling efficiency.\n"
      "\n"
      "Options:\n"
      "  -s, --set SECTION.KEY=VALUE   override a scenario key (repeatable;\n"
      "                                'dnnsim keys' lists them)\n"
      "  -f, --format table|csv|json   output format (default table)\n"
      "  --engine auto|analytic|des    force a prediction engine\n"
      "  -h, --help                    this help\n"
      "\n"
      "A configuration that does not fit in device memory is printed and\n"
      "exits with code 3, naming the scenario key to change.\n"
      "\n"
      "Example:\n"
      "  dnnsim predict scenarios/resnet50-v100.ini --set cluster.nodes=8\n");
}

/*
 * A configuration that does not fit in device memory is still predicted
 * (the numbers are printed), but the command fails with the input exit
 * code and names the key to change: [model] name or file when the model
 * state alone overflows a device (no batch fits), else [model] batch.
 */
static int not_fit(const cli_world *w, const dnn_prediction *p) {
  const dnn_memory *m = &p->memory;
  double state = m->weights_bytes + m->gradients_bytes + m->optimizer_bytes +
                 m->reserved_bytes;
  char where[DNN_SCN_PATH_MAX + 64], a[32], b[32], c[32];
  cli_fmt_bytes(m->total_bytes, a, sizeof a);
  cli_fmt_bytes(m->capacity_bytes, b, sizeof b);
  if (state >= m->capacity_bytes) {
    const char *key = w->scn.model.file[0] ? "file" : "name";
    fprintf(stderr,
            "dnnsim: %s: does not fit: weights, gradients, optimizer state "
            "and reserve alone need %s of the %s per device (%s in all); "
            "no batch fits; shard the model (tensor, pipeline, zero) or use a "
            "larger device\n",
            dnn_scn_key_origin(&w->scn, "model", key, where, sizeof where),
            cli_fmt_bytes(state, c, sizeof c), b, a);
  } else {
    fprintf(stderr,
            "dnnsim: %s: does not fit: %s of the %s per device at %zu "
            "samples per replica; reduce the batch or add devices\n",
            dnn_scn_key_origin(&w->scn, "model", "batch", where, sizeof where),
            a, b, p->local_batch);
  }
  return cli_exit_code(DNN_ENOFIT);
}

int cli_cmd_predict(int argc, char **argv) {
  cli_scn_opts o = {.engine = -1};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      help();
      return CLI_EXIT_OK;
    }
    int r = cli_scn_opt("predict", argc, argv, &i, &o);
    if (r < 0)
      return CLI_EXIT_USAGE;
    if (r == 0)
      return cli_usage_error("predict", "unknown option '%s'", argv[i]);
  }
  if (o.path == NULL)
    return cli_usage_error("predict", "a scenario file is required");
  dnn_error err;
  dnn_error_clear(&err);
  cli_world w;
  dnn_status st = cli_world_load(&o, &w, &err);
  dnn_prediction p;
  if (st == DNN_OK) {
    dnn_strat_input in = cli_world_input(&w);
    st = dnn_strat_predict(&in, &p, &err);
  }
  if (st) {
    cli_world_free(&w);
    return cli_fail(&err, st);
  }
  int rc = CLI_EXIT_OK;
  switch (o.format) {
  case CLI_FORMAT_TABLE:
    cli_prediction_table(stdout, &w, &p);
    break;
  case CLI_FORMAT_CSV:
    cli_prediction_csv_header(stdout);
    fputc('\n', stdout);
    cli_prediction_csv_row(stdout, &p);
    fputc('\n', stdout);
    break;
  case CLI_FORMAT_JSON:
    rc = cli_print_json(cli_prediction_json(&w, &p));
    break;
  }
  if (rc == CLI_EXIT_OK && !p.fits_in_memory)
    rc = not_fit(&w, &p);
  cli_world_free(&w);
  return rc;
}
