/*
 * Profile derivation (include/dnnsim/calibrate.h): a profile for a device
 * B one cannot measure, from a profile calibrated on device A and B's
 * datasheet.
 *
 * Method, after Habitat's kernel-varying scaling (Yu, Gao, Golikov &
 * Pekhimenko, "Habitat: A Runtime-Based Computational Performance
 * Predictor for Deep Neural Network Training", USENIX ATC 2021): a kernel
 * measured on A is bound either by arithmetic or by memory traffic (the
 * larger of A's two roofline terms for its FLOPs and bytes). Its measured
 * time above the launch overhead is scaled by the ratio of A's to B's rate
 * for that resource - the dtype's peak FLOP/s or the memory bandwidth -
 * and is never taken below B's roofline of the other resource (a kernel
 * compute-bound on A may be memory-bound on B). B keeps A's fitted
 * efficiencies: the same kernels on the same kind of device reach the
 * same fraction of their roof.
 *
 * Limits (docs/calibration.md): the same library and algorithms are
 * assumed on B; cache sizes, occupancy and Habitat's wave quantisation
 * (SM counts are not in profiles) are ignored; tensor-core and CUDA-core
 * rates are only as good as the datasheet's per-dtype peaks; a CPU
 * profile cannot be derived from a GPU one.
 *
 * Invariant: the derived profile passes dnn_hw_params_check; `from` and
 * `to` are never modified.
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <math.h>
#include <string.h>

dnn_status dnn_calib_derive(const dnn_hw *from,
                            const dnn_meas_kernel_table *raw, const dnn_hw *to,
                            const char *calibrated, dnn_hw **out,
                            dnn_calib_derive_report *rep, dnn_error *err) {
  *out = NULL;
  dnn_calib_derive_report local;
  if (rep == NULL)
    rep = &local;
  memset(rep, 0, sizeof *rep);
  const dnn_hw_params *a = dnn_hw_get(from), *b = dnn_hw_get(to);
  if (strcmp(a->kind, b->kind) != 0)
    return DNN_FAIL(err, DNN_EINVAL,
                    "cannot derive a %s profile ('%s') from a %s one ('%s')",
                    b->kind, b->name, a->kind, a->name);
  dnn_hw_params q = *b;
  for (size_t c = 0; c < DNN_OPCLASS_COUNT; c++) {
    q.eff_compute[c] = a->eff_compute[c];
    q.eff_memory[c] = a->eff_memory[c];
    q.half_flops[c] = a->half_flops[c];
  }
  for (size_t k = 0; k < DNN_CONV_ALGO_COUNT; k++)
    q.eff_conv_algo[k] = a->eff_conv_algo[k];
  if (!(q.launch_overhead_s > 0))
    q.launch_overhead_s = a->launch_overhead_s;
  snprintf(q.source, sizeof q.source,
           "derived: rates of %s, efficiencies and scaled kernel times of "
           "%s",
           b->name, a->name);
  snprintf(q.calibrated, sizeof q.calibrated, "%s",
           calibrated && calibrated[0] ? calibrated : "derived");
  dnn_hw *hw = NULL;
  dnn_status st = dnn_hw_alloc(&q, &hw, err);
  if (st)
    return st;
  rep->rows_dropped = dnn_hw_kernel_count(from);
  if (raw == NULL) {
    *out = hw;
    return DNN_OK;
  }
  size_t n = dnn_meas_kernel_table_count(raw);
  for (size_t i = 0; i < n; i++) {
    const dnn_meas_kernel_row *r = dnn_meas_kernel_table_get(raw, i);
    dnn_conv_algo algo =
        r->kind == DNN_LAYER_CONV2D ? r->algo : DNN_CONV_ALGO_COUNT;
    double t_a = NAN;
    /* Only what A's profile kept (its table is the calibrated truth). */
    if (!dnn_hw_kernel_lookup(from, r->signature, r->pass, algo, r->dtype,
                              r->batch, &t_a) ||
        !(a->peak_flops[r->dtype] > 0) || !(b->peak_flops[r->dtype] > 0))
      continue;
    dnn_opclass cls = dnn_layer_kind_opclass(r->kind);
    double eff = cls == DNN_OP_CONV && (unsigned)algo < DNN_CONV_ALGO_COUNT
                     ? a->eff_conv_algo[algo]
                     : a->eff_compute[cls];
    if (!(eff > 0))
      continue;
    double tc_a = r->flops > 0 ? (r->flops + a->half_flops[cls]) /
                                     (a->peak_flops[r->dtype] * eff)
                               : 0;
    double tm_a = r->bytes / (a->mem_bandwidth_Bps * a->eff_memory[cls]);
    bool compute = tc_a >= tm_a;
    double ratio = compute ? a->peak_flops[r->dtype] / b->peak_flops[r->dtype]
                           : a->mem_bandwidth_Bps / b->mem_bandwidth_Bps;
    double body = t_a - a->launch_overhead_s;
    if (body < 0)
      body = 0;
    double t_b = q.launch_overhead_s + body * ratio;
    /* Never faster than B's roof of the other resource. */
    double other = compute
                       ? r->bytes / (q.mem_bandwidth_Bps * q.eff_memory[cls])
                       : (r->flops > 0 ? (r->flops + q.half_flops[cls]) /
                                             (q.peak_flops[r->dtype] * eff)
                                       : 0);
    if (q.launch_overhead_s + other > t_b)
      t_b = q.launch_overhead_s + other;
    if (!(t_b > 0) || !isfinite(t_b))
      continue;
    dnn_hw_kernel_row k;
    memset(&k, 0, sizeof k);
    k.signature = r->signature;
    k.pass = r->pass;
    k.algo = algo;
    k.dtype = r->dtype;
    k.batch = r->batch;
    k.time_s = t_b;
    k.workspace_bytes = r->workspace_bytes;
    if ((st = dnn_hw_kernel_add(hw, &k, err))) {
      dnn_hw_free(hw);
      return st;
    }
    rep->rows_scaled++;
    if (compute)
      rep->compute_bound++;
    else
      rep->memory_bound++;
  }
  rep->rows_dropped = dnn_hw_kernel_count(from) > rep->rows_scaled
                          ? dnn_hw_kernel_count(from) - rep->rows_scaled
                          : 0;
  *out = hw;
  return DNN_OK;
}
