/*
 * ZeRO (Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training
 * Trillion Parameter Models", SC'20, §5): the model state of a data-
 * parallel group sharded over its d replicas, and what that costs.
 *
 * Memory per device for Psi parameters of s bytes and K bytes of
 * optimizer state per parameter (docs/models.md §7: K = 12 for mixed-
 * precision Adam), the paper's Figure 1:
 *   stage 0:            s Psi weights + s Psi gradients + K Psi state;
 *   stage 1 (P_os):     s Psi + s Psi + K Psi / d;
 *   stage 2 (P_os+g):   s Psi + (s + K) Psi / d;
 *   stage 3 (P_os+g+p): (2 s + K) Psi / d, plus the whole parameters of the
 *                       largest layer, gathered while it computes.
 * Communication (stage.c, docs/models.md §14): gradients are reduce-
 * scattered instead of allreduced (each replica keeps its shard), the
 * updated shards allgathered after the step (stages 1, 2: the volume of
 * one allreduce, as the paper states), and stage 3 gathers every layer's
 * parameters before its forward and again before its backward
 * (prefetched behind the previous layer): 1.5x the volume of stage 0.
 * Psi is this device's share: tensor parallelism divides it first, and a
 * pipeline rank holds only its stages.
 *
 * Invariant: pure arithmetic on the stage model, no allocation.
 */
#include "internal.h"

#include <math.h>

void dnn__zero_state_memory(const dnn__stage_model *sm, size_t r,
                            dnn_memory *m) {
  const dnn_scenario *scn = sm->in.scn;
  dnn_dtype dtype = scn->model.dtype;
  double eb = dnn__d(dnn_dtype_bytes(dtype));
  double pr = dnn__stage_device_params(sm, r);
  double d = sm->d > 1 ? dnn__d(sm->d) : 1;
  size_t z = sm->d > 1 ? sm->zero : 0;
  double largest = 0;
  for (size_t c = 0; c < sm->v; c++)
    largest = fmax(largest, sm->stages[c * sm->p + r].max_layer_params);
  m->weights_bytes = pr * eb / (z >= 3 ? d : 1);
  if (z >= 3)
    m->weights_bytes += largest * eb;
  m->gradients_bytes = pr * eb / (z >= 2 ? d : 1);
  m->optimizer_bytes =
      dnn__strat_optimizer_state_bytes(scn->training.optimizer, dtype, pr) /
      (z >= 1 ? d : 1);
}
