/*
 * measure/ private helpers of the CUDA back ends (cuda.c, exec_cudnn.c):
 * error mapping of CUDA, cuDNN and cuBLAS calls. CUDA builds only.
 *
 * Each macro needs a `dnn_status st`, a `dnn_error *err` and a `fail:`
 * label in the calling function: on failure it sets st to DNN_ETOOLFAIL
 * with the call's text and the library's message, and jumps there.
 */
#ifndef DNNSIM_MEASURE_CUDA_UTIL_H
#define DNNSIM_MEASURE_CUDA_UTIL_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#define CUDA_TRY(call)                                                         \
  do {                                                                         \
    cudaError_t e_ = (call);                                                   \
    if (e_ != cudaSuccess) {                                                   \
      st = DNN_FAIL(err, DNN_ETOOLFAIL, "%s: %s", #call,                       \
                    cudaGetErrorString(e_));                                   \
      goto fail;                                                               \
    }                                                                          \
  } while (0)

#define CUDNN_TRY(call)                                                        \
  do {                                                                         \
    cudnnStatus_t e_ = (call);                                                 \
    if (e_ != CUDNN_STATUS_SUCCESS) {                                          \
      st = DNN_FAIL(err, DNN_ETOOLFAIL, "%s: %s", #call,                       \
                    cudnnGetErrorString(e_));                                  \
      goto fail;                                                               \
    }                                                                          \
  } while (0)

#define CUBLAS_TRY(call)                                                       \
  do {                                                                         \
    cublasStatus_t e_ = (call);                                                \
    if (e_ != CUBLAS_STATUS_SUCCESS) {                                         \
      st = DNN_FAIL(err, DNN_ETOOLFAIL, "%s: cuBLAS status %d", #call,         \
                    (int)e_);                                                  \
      goto fail;                                                               \
    }                                                                          \
  } while (0)

#endif /* DNNSIM_MEASURE_CUDA_UTIL_H */
