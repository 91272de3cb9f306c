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
      "Example:\n"
      "  dnnsim predict scenarios/resnet50-v100.ini --set cluster.nodes=8\n");
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
  cli_world_free(&w);
  return rc;
}
