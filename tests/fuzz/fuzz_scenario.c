/*
 * Fuzz target: scenario INI text, the whole path to a prediction.
 *
 *   dnn_scn_load_string -> write/reload round trip -> dnn_scn_validate
 *   -> dnn_scn_build_net -> dnn_scn_load_hw -> dnn_scn_cluster
 *   -> dnn_strat_predict
 *
 * Relative paths resolve against the source tree's scenarios/, so the
 * seed scenarios (and their network and profile files) load as they are;
 * a path outside scenarios/ is skipped (fuzz.h, fuzz_path_allowed).
 * Oracles: every error is well formed; writing a loaded scenario and
 * loading the text back writes the same text; a prediction is finite,
 * positive and its parts add up.
 */
#define _GNU_SOURCE /* open_memstream */
#include "fuzz.h"

#include "dnnsim/scenario.h"
#include "dnnsim/strat.h"

/* dnn_scn_write with every key (or only non-defaults) into a string. */
static char *written(const dnn_scenario *scn, bool all) {
  char *buf = NULL;
  size_t len = 0;
  FILE *fp = open_memstream(&buf, &len);
  if (fp == NULL)
    abort();
  dnn_error e;
  dnn_error_clear(&e);
  dnn_status st = dnn_scn_write(scn, fp, all, &e);
  fclose(fp);
  fuzz_check_error(st, &e);
  if (st != DNN_OK) {
    free(buf);
    return NULL;
  }
  return buf;
}

/* Writing, reloading and writing again gives the same text. */
static void check_round_trip(const dnn_scenario *scn) {
  for (int all = 0; all < 2; all++) {
    char *a = written(scn, all);
    if (a == NULL)
      continue; /* a value too long for one INI line: reported cleanly */
    dnn_scenario *back = malloc(sizeof *back);
    if (back == NULL)
      abort();
    dnn_scn_init(back);
    dnn_error e;
    dnn_error_clear(&e);
    dnn_status st =
        dnn_scn_load_string(a, "written.ini", fuzz_scenarios_dir(), back, &e);
    FUZZ_CHECK(st == DNN_OK, "written scenario does not load: %s\n%s", e.msg,
               a);
    char *b = written(back, all);
    FUZZ_CHECK(b != NULL && strcmp(a, b) == 0,
               "round trip changed the scenario:\n%s\n---\n%s", a,
               b ? b : "(null)");
    free(a);
    free(b);
    free(back);
  }
}

/* A part of the breakdown: finite and not negative. A part computed as a
 * difference (the pipeline bubble) once came out a rounding error below
 * 0 (tests/fuzz/regressions/scenario/negative-bubble.ini; the prediction
 * now clamps it). A rounding error below 0 is still tolerated unless
 * DNNSIM_FUZZ_STRICT is set in the environment, so that fuzzing goes on
 * past such a defect once it is reported. */
static void check_part(double x, double total, const char *what) {
  static int strict = -1;
  if (strict < 0)
    strict = getenv("DNNSIM_FUZZ_STRICT") != NULL;
  if (!strict && x < 0 && x >= -1e-9 * total)
    return;
  FUZZ_CHECK_QTY(x, what);
}

static void check_prediction(const dnn_prediction *p, const dnn_scenario *scn) {
  FUZZ_CHECK(isfinite(p->iteration_s) && p->iteration_s > 0, "iteration_s = %g",
             p->iteration_s);
  FUZZ_CHECK(isfinite(p->throughput_samples_per_s) &&
                 p->throughput_samples_per_s > 0,
             "throughput = %g", p->throughput_samples_per_s);
  const dnn_breakdown *b = &p->breakdown;
  double T = p->iteration_s;
  check_part(b->forward_s, T, "forward_s");
  check_part(b->backward_s, T, "backward_s");
  check_part(b->recompute_s, T, "recompute_s");
  check_part(b->comm_s, T, "comm_s");
  check_part(b->comm_exposed_s, T, "comm_exposed_s");
  check_part(b->bubble_s, T, "bubble_s");
  check_part(b->optimizer_s, T, "optimizer_s");
  FUZZ_CHECK(b->comm_exposed_s <= b->comm_s * (1 + 1e-12) + 1e-300,
             "exposed %g > total comm %g", b->comm_exposed_s, b->comm_s);
  double sum = b->forward_s + b->backward_s + b->recompute_s +
               b->comm_exposed_s + b->bubble_s + b->optimizer_s;
  FUZZ_CHECK(dnn_close(sum, p->iteration_s, 1e-9),
             "parts %g do not add up to %g", sum, p->iteration_s);
  const dnn_memory *m = &p->memory;
  FUZZ_CHECK_QTY(m->total_bytes, "memory total");
  FUZZ_CHECK_QTY(m->activations_bytes, "memory activations");
  FUZZ_CHECK_QTY(m->workspace_bytes, "memory workspace");
  FUZZ_CHECK_QTY(p->flops_per_device_per_s, "flops per device");
  FUZZ_CHECK(isfinite(p->scaling_efficiency) && p->scaling_efficiency > 0 &&
                 p->scaling_efficiency <= 1 + 1e-12,
             "scaling efficiency %g", p->scaling_efficiency);
  FUZZ_CHECK(p->devices == dnn_scn_devices(scn), "devices %zu", p->devices);
  FUZZ_CHECK(p->local_batch * p->data == scn->model.batch, "local batch");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > FUZZ_MAX_INPUT)
    return 0;
  char *text = fuzz_text(data, size);
  dnn_scenario *scn = malloc(sizeof *scn);
  if (scn == NULL)
    abort();
  dnn_scn_init(scn);
  dnn_error e;
  dnn_error_clear(&e);
  dnn_net *net = NULL;
  dnn_hw *hw = NULL;
  dnn_status st =
      dnn_scn_load_string(text, "fuzz.ini", fuzz_scenarios_dir(), scn, &e);
  fuzz_check_error(st, &e);
  if (st != DNN_OK)
    goto done;
  check_round_trip(scn);
  st = dnn_scn_validate(scn, &e);
  fuzz_check_error(st, &e);
  if (st != DNN_OK)
    goto done;
  if (scn->model.file[0] && !fuzz_path_allowed(scn->model.file))
    goto done;
  if ((strchr(scn->hardware.profile, '/') ||
       strstr(scn->hardware.profile, ".ini")) &&
      !fuzz_path_allowed(scn->hardware.profile))
    goto done;
  st = dnn_scn_build_net(scn, 0, &net, &e);
  fuzz_check_error(st, &e);
  if (st == DNN_OK)
    st = dnn_scn_load_hw(scn, &hw, &e);
  fuzz_check_error(st, &e);
  dnn_cluster cluster;
  if (st == DNN_OK)
    st = dnn_scn_cluster(scn, &cluster, &e);
  fuzz_check_error(st, &e);
  if (st != DNN_OK)
    goto done;
  dnn_strat_input in = {scn, net, hw, cluster};
  dnn_prediction p;
  st = dnn_strat_predict(&in, &p, &e);
  fuzz_check_error(st, &e);
  if (st == DNN_OK)
    check_prediction(&p, scn);
done:
  dnn_net_free(net);
  dnn_hw_free(hw);
  free(scn);
  free(text);
  return 0;
}
