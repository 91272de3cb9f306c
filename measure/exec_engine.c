/*
 * The executor's engine choice (exec_internal.h): oneDNN on the CPU or
 * cuDNN on a GPU, behind one operations table.
 */
#include "exec_internal.h"

dnn_status dnn__xeng_alloc(const dnn__xeng_params *p, dnn__xeng **out,
                           dnn_error *err) {
  *out = NULL;
  DNN_ASSERT(p->slots >= 1 && p->slots <= DNN__XENG_MAX_SLOTS);
  DNN_ASSERT(p->count >= 1 && p->mbs >= 1 && p->copies >= 1);
  switch (p->kind) {
  case DNN__XENG_DNNL:
    return dnn__xeng_dnnl_alloc(p, out, err);
  case DNN__XENG_CUDNN:
    return dnn__xeng_cudnn_alloc(p, out, err);
  }
  return DNN_FAIL(err, DNN_EINVAL, "unknown executor engine %d", (int)p->kind);
}
