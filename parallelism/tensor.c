/*
 * The tensor-parallel strategy (Megatron-LM's intra-layer split, the
 * survey's model parallelism, REFERENCE §1.4): not modelled yet. It is in
 * the registry so that a scenario with tensor > 1 fails cleanly, naming
 * the key, instead of being predicted as something else. Its stage model
 * will divide each layer's time by t and add the layer's tensor-group
 * collectives to the stage's critical path; hybrid d x t x p then needs no
 * change in the engines.
 *
 * Invariant: never builds a stage model (it always fails).
 */
#include "internal.h"

#include <string.h>

static bool matches(const dnn_scenario *scn) {
  return scn->parallelism.tensor > 1;
}

static dnn_status build(const dnn_strat_input *in, const size_t *first,
                        dnn__stage_model *sm, dnn_error *err) {
  (void)first;
  char where[DNN_SCN_PATH_MAX + 64];
  memset(sm, 0, sizeof *sm);
  return DNN_FAIL(
      err, DNN_EUNSUPPORTED,
      "%s: tensor parallelism (tensor = %zu) is not modelled by "
      "this build yet; set tensor = 1",
      dnn_scn_key_origin(in->scn, "parallelism", "tensor", where, sizeof where),
      in->scn->parallelism.tensor);
}

static const dnn__strat_type tensor_type = {
    "tensor", "tensor (intra-layer) parallelism: not modelled yet", matches,
    build};

const dnn__strat_type *const dnn__strat_tensor = &tensor_type;
