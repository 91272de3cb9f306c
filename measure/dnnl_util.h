/*
 * measure/ private oneDNN helpers shared by the kernel sweep (dnnl.c) and
 * the executor's engine (exec_dnnl.c): the status check, memory
 * descriptors, a layer's dims with the batch in front, the activation
 * kinds, the geometry of convolutions and pooling windows, and oneDNN's
 * OpenMP thread count.
 *
 * Invariant: nothing here creates or owns a oneDNN object; the functions
 * convert shapes into oneDNN's terms, and the thread count is set and
 * restored by the caller. Padding follows oneDNN's convention: the right
 * padding is what makes (out - 1) * stride + (kernel - 1) * dilation + 1
 * cover the padded input (dilation counted from 1, as dnnsim stores it;
 * oneDNN counts it from 0). Only compiled with oneDNN.
 */
#ifndef DNNSIM_MEASURE_DNNL_UTIL_H
#define DNNSIM_MEASURE_DNNL_UTIL_H

#include "internal.h"

#include <dnnl.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* In a function with `dnn_status st`, `dnn_error *err` and a `fail:`
 * label: on a oneDNN error, DNN_ETOOLFAIL naming `what`, then fail. */
#define DNN__MEAS_DNNL_TRY(call, what)                                         \
  do {                                                                         \
    dnnl_status_t s_ = (call);                                                 \
    if (s_ != dnnl_success) {                                                  \
      st = DNN_FAIL(err, DNN_ETOOLFAIL, "oneDNN %s failed (status %d)", what,  \
                    (int)s_);                                                  \
      goto fail;                                                               \
    }                                                                          \
  } while (0)

/* Creates a CPU engine, a stream on it and an attribute asking for a
 * user-owned scratchpad (the scratchpad is the kernel's workspace, so its
 * size can be read). DNN_ETOOLFAIL naming the failing call; what was made
 * is in the out-parameters either way, for the caller to destroy. */
dnn_status dnn__meas_dnnl_open(dnnl_engine_t *eng, dnnl_stream_t *stream,
                               dnnl_primitive_attr_t *attr, dnn_error *err);

/* A memory descriptor of `nd` dims of type `dt` in format `tag` (all
 * zeros when oneDNN refuses it). */
dnnl_memory_desc_t dnn__meas_md(int nd, const int64_t *dims,
                                dnnl_data_type_t dt, dnnl_format_tag_t tag);

/* The plain (row-major) format of `nd` dims (undef outside 1..5). */
dnnl_format_tag_t dnn__meas_plain_tag(int nd);

/* The plain f32 layout of a descriptor's dims. */
dnnl_memory_desc_t dnn__meas_md_plain(const dnnl_memory_desc_t *md);

/* A per-sample shape with the batch in front, as oneDNN dims in `d`
 * (rank + 1 entries); returns their count. */
int dnn__meas_batch_dims(const dnn_shape *s, size_t batch, int64_t *d);

/* The eltwise algorithm of an activation (ReLU for the others). */
dnnl_alg_kind_t dnn__meas_act_alg(dnn_act a);

/* A convolution in oneDNN's terms (NCHW dims, weights with and without
 * the group dimension, dilation from 0, left and right padding). */
typedef struct dnn__meas_conv_geom {
  int64_t src[4], dst[4], w5[5], w4[4], bias[1];
  int64_t groups;
  dnnl_dims_t strides, dil, pl, pr;
} dnn__meas_conv_geom;

void dnn__meas_conv_geom_of(const dnn__conv_shape *s, dnn__meas_conv_geom *g);

/* A pooling window in oneDNN's terms (NCHW dims, no dilation). */
typedef struct dnn__meas_pool_geom {
  int64_t src[4], dst[4];
  dnnl_dims_t strides, kernel, dil, pl, pr;
  dnnl_alg_kind_t alg; /* max, or average without the padding */
} dnn__meas_pool_geom;

void dnn__meas_pool_geom_of(const dnn__pool_shape *s, dnn__meas_pool_geom *g);

/* A fully connected layer in oneDNN's terms: on an image (rank 3) the
 * 4-d source and weights; otherwise 2-d, with the rows of a sequence
 * (rank 2) folded into the batch. `nd` is 4 or 2; dst is rows x out. */
typedef struct dnn__meas_fc_geom {
  int64_t src[4], w[4], bias[1], dst[2];
  int nd;
} dnn__meas_fc_geom;

void dnn__meas_fc_geom_of(const dnn_layer *l, size_t batch,
                          dnn__meas_fc_geom *g);

/* Sets oneDNN's OpenMP thread count (0 keeps it); returns the previous
 * one for dnn__meas_threads_restore (without OpenMP: 0, no effect). */
int dnn__meas_threads(size_t threads);
void dnn__meas_threads_restore(int prev);

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_MEASURE_DNNL_UTIL_H */
