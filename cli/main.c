/*
 * dnnsim: the command. Dispatches to one subcommand per file (cmd_*.c).
 * Only the CLI prints and exits; the library reports through dnn_status.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const cli_cmd commands[] = {
    {"predict", cli_cmd_predict,
     "predict iteration time, breakdown, memory and scaling of a scenario"},
    {"trace", cli_cmd_trace, "write a simulated iteration as a Chrome trace"},
    {"describe", cli_cmd_describe,
     "per-layer shapes, parameters, FLOPs and memory of a network"},
    {"models", cli_cmd_models, "list the built-in networks (the zoo)"},
    {"profiles", cli_cmd_profiles, "list the built-in hardware profiles"},
    {"links", cli_cmd_links, "list the built-in interconnect links"},
    {"keys", cli_cmd_keys, "list every scenario key with its default"},
    {"errors", cli_cmd_errors, "list the status codes and exit codes"},
    {"microbatch", cli_cmd_microbatch,
     "micro-batched convolutions under a workspace limit (u-cuDNN)"},
    {"search", cli_cmd_search,
     "the fastest parallel configurations of a model on N devices"},
    {"sweep", cli_cmd_sweep,
     "predict every configuration of --vary lists (CSV, JSON)"},
    {"plot", cli_cmd_plot,
     "gnuplot charts of sweeps, validation results and traces"},
    {"calibrate", cli_cmd_calibrate, "measure this machine, fit profiles"},
    {"validate", cli_cmd_validate,
     "run a scenario for real, compare with its prediction"},
};

static void usage(FILE *fp) {
  fprintf(fp, "usage: dnnsim COMMAND [OPTIONS]\n"
              "\n"
              "Predicts how fast deep-learning training runs on many devices.\n"
              "\n"
              "Commands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(fp, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(fp,
          "\n"
          "Run 'dnnsim COMMAND --help' for a command's options.\n"
          "\n"
          "Exit codes: 0 success, 1 runtime error, 2 usage error, 3 bad input\n"
          "file or value, 4 unavailable (no device, or not in this build).\n"
          "\n"
          "Options:\n"
          "  -h, --help     this help\n"
          "  --version      print the version\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return CLI_EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 ||
      strcmp(cmd, "help") == 0) {
    usage(stdout);
    return CLI_EXIT_OK;
  }
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
    printf("dnnsim %s\n", dnn_version());
    return CLI_EXIT_OK;
  }
  const char *names[sizeof commands / sizeof commands[0] + 1];
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
    if (strcmp(cmd, commands[i].name) == 0)
      return commands[i].fn(argc - 1, argv + 1);
    names[i] = commands[i].name;
  }
  names[sizeof commands / sizeof commands[0]] = NULL;
  const char *near = dnn_nearest_name(cmd, names);
  fprintf(stderr, "dnnsim: unknown command '%s'%s%s%s\n", cmd,
          near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
  fprintf(stderr, "Run 'dnnsim --help' for the list of commands.\n");
  return CLI_EXIT_USAGE;
}
