/*
 * The pipeline strategy (d x p): the network cut into p stages (p x v
 * chunks for the interleaved schedule), micro-batches flowing through them
 * under GPipe, 1F1B or interleaved 1F1B, activations and their gradients
 * sent between neighbouring stages, and each stage's gradients allreduced
 * among its d replicas (docs/models.md §8; REFERENCE §1.4; Huang et al.
 * 2019, Narayanan et al. 2021).
 *
 * Invariant: the stage model it builds satisfies the schedule's
 * preconditions (interleaving needs m to be a multiple of p, as in
 * Megatron-LM), so the schedule functions never fail.
 */
#include "internal.h"

#include <string.h>

static bool matches(const dnn_scenario *scn) {
  return scn->parallelism.tensor == 1 && scn->parallelism.pipeline > 1;
}

static dnn_status build(const dnn_strat_input *in, const dnn_comm_profile *cp,
                        const size_t *first, dnn__stage_model *sm,
                        dnn_error *err) {
  const dnn_scenario *scn = in->scn;
  size_t p = scn->parallelism.pipeline, v = scn->parallelism.virtual_stages;
  size_t m = scn->parallelism.microbatches;
  memset(sm, 0, sizeof *sm);
  if (scn->parallelism.schedule == DNN_SCHEDULE_INTERLEAVED && v > 1 &&
      m % p != 0) {
    char where[DNN_SCN_PATH_MAX + 64];
    return DNN_FAIL(err, DNN_EINVAL,
                    "%s: the interleaved schedule needs micro-batches (%zu) "
                    "to be a multiple of the pipeline stages (%zu)",
                    dnn_scn_key_origin(scn, "parallelism", "microbatches",
                                       where, sizeof where),
                    m, p);
  }
  return dnn__stage_model_build(in, cp, p, v, first, sm, err);
}

static const dnn__strat_type pipeline_type = {
    "pipeline",
    "pipeline parallelism (GPipe, 1F1B, interleaved) with data parallelism",
    matches, build};

const dnn__strat_type *const dnn__strat_pipeline = &pipeline_type;
