/*
 * The data-parallel strategy: d replicas of the whole network, one stage
 * (V = 1), gradients allreduced among the replicas (docs/models.md §6;
 * REFERENCE §1.4). Micro-batches > 1 are gradient accumulation: the
 * schedule runs them one after the other on the single stage.
 *
 * Invariant: builds its stage model without allocating.
 */
#include "internal.h"

#include <string.h>

static bool matches(const dnn_scenario *scn) {
  return scn->parallelism.tensor == 1 && scn->parallelism.pipeline == 1;
}

static dnn_status build(const dnn_strat_input *in, const dnn_comm_profile *cp,
                        const size_t *first, dnn__stage_model *sm,
                        dnn_error *err) {
  const dnn_scenario *scn = in->scn;
  memset(sm, 0, sizeof *sm);
  if (scn->parallelism.virtual_stages > 1) {
    char where[DNN_SCN_PATH_MAX + 64];
    return DNN_FAIL(err, DNN_EINVAL,
                    "%s: %zu virtual stages need a pipeline (pipeline > 1)",
                    dnn_scn_key_origin(scn, "parallelism", "virtual_stages",
                                       where, sizeof where),
                    scn->parallelism.virtual_stages);
  }
  return dnn__stage_model_build(in, cp, 1, 1, first, sm, err);
}

static const dnn__strat_type data_type = {
    "data", "data parallelism: replicas, bucketed gradient allreduce", matches,
    build};

const dnn__strat_type *const dnn__strat_data = &data_type;
