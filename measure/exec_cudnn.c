/*
 * The executor's cuDNN engine (exec_internal.h). Being written: until it
 * lands, asking for it is DNN_EUNSUPPORTED.
 */
#include "exec_internal.h"

dnn_status dnn__xeng_cudnn_alloc(const dnn__xeng_params *p, dnn__xeng **out,
                                 dnn_error *err) {
  (void)p;
  *out = NULL;
  return DNN_FAIL(err, DNN_EUNSUPPORTED,
                  "the executor's GPU engine is not in this build");
}
