/*
 * measure/ private declarations: the plain C reference kernels that every
 * back end verifies against, the verification metrics, the helpers the
 * oneDNN and cuDNN back ends share (per-layer cost lookup, row filling,
 * resume checks) and the names of comm.h's enumerations (expanded from its
 * X-macro lists, so that measure/ needs no link dependency on
 * parallelism/).
 *
 * Invariant: the reference kernels compute in double precision on plain
 * layouts (NCHW activations, OIHW / GOIHW weights) and never allocate more
 * than their output.
 */
#ifndef DNNSIM_MEASURE_INTERNAL_H
#define DNNSIM_MEASURE_INTERNAL_H

#include "core/internal.h"
#include "dnnsim/measure.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- comm.h names ------------------------------------------------------- */

const char *dnn__meas_op_name(dnn_comm_op op);
const char *dnn__meas_algo_name(dnn_comm_algo a); /* "-" for COUNT */
/* Index of `name` in the op / algo names; false when unknown. */
bool dnn__meas_op_parse(const char *name, dnn_comm_op *out);
bool dnn__meas_algo_parse(const char *name, dnn_comm_algo *out);

/* ---- MPI helpers (mpi.c; MPI builds only) ------------------------------- */

/* DNN_EMPI "WHAT failed: " and MPI's text for return code `rc`. */
dnn_status dnn__meas_mpi_fail(dnn_error *err, int rc, const char *what);

/* In a function with `dnn_status st`, `dnn_error *err` and a `fail:`
 * label: on an MPI error, dnn__meas_mpi_fail naming the call, then fail. */
#define DNN__MEAS_MPI_TRY(call)                                                \
  do {                                                                         \
    int rc_ = (call);                                                          \
    if (rc_ != MPI_SUCCESS) {                                                  \
      st = dnn__meas_mpi_fail(err, rc_, #call);                                \
      goto fail;                                                               \
    }                                                                          \
  } while (0)

/* Sets the int-valued MPI_T control variable `name` (MPI_T initialised);
 * DNN_EMPI saying which step failed (`err` may be NULL). */
dnn_status dnn__meas_mpi_cvar_write(const char *name, int value,
                                    dnn_error *err);

/* ---- Verification metrics ----------------------------------------------- */

/* ||got - ref||_2 / ||ref||_2 (absolute when ref is 0) and
 * max|got - ref| / max|ref|, over n floats against n doubles. */
void dnn__meas_compare(const float *got, const double *ref, size_t n,
                       double *rel_l2, double *max_rel);

/* The factor dnn_meas_verify_perturb set for (kind, pass), 1 by default. */
double dnn__meas_perturb(dnn_layer_kind kind, dnn_pass pass);

/* Deterministic pseudo-random fill in [-1, 1) (splitmix64 of seed + i). */
void dnn__meas_fill(float *x, size_t n, unsigned long long seed);

/*
 * Directional-derivative check of an LSTM gradient, for the back ends'
 * LSTM backward kernels (ref.c has no LSTM backward). With the loss
 * L = sum(y * r) over dnn__ref_lstm_fwd's output y[T][n][h], it compares
 * the central difference of L along a fixed random direction v of the
 * tensor `p` (`np` floats; p is in[0] = x or in[1] = wx, restored on
 * return) with v . g, g being the kernel's gradient of that tensor.
 * `in` holds x, wx, wh and b in ref.c's layouts; `step` scales the
 * difference step to the tensor's fan-in (1 for x, 1/sqrt(c) for wx).
 * Returns the relative error, INFINITY when out of memory.
 */
/* Scales LSTM verification weights (wx[c][4][h], wh[h][4][h], filled in
 * [-1, 1)) by min(0.5, 1/sqrt(fan-in)) (Glorot's scaling), so that the
 * gates stay out of saturation at any width. */
void dnn__meas_lstm_scale_weights(size_t c, size_t h, float *wx, float *wh);

double dnn__meas_lstm_dir_check(size_t T, size_t n, size_t c, size_t h,
                                float *const in[4], float *p, size_t np,
                                const float *g, const float *r, double step);

/* ---- Reference kernels (double precision, plain layouts) ---------------- */

/* A 2-D convolution problem (groups divide ic and oc). */
typedef struct dnn__conv_shape {
  size_t n, ic, ih, iw, oc, oh, ow, kh, kw;
  size_t sh, sw, ph, pw, dh, dw; /* stride, padding, dilation (>= 1) */
  size_t groups;
} dnn__conv_shape;

/* y[n][oc][oh][ow] = sum x * w (+ b, when b != NULL). */
void dnn__ref_conv_fwd(const dnn__conv_shape *s, const float *x, const float *w,
                       const float *b, double *y);
/* dx = conv_transpose(dy, w). */
void dnn__ref_conv_bwd_data(const dnn__conv_shape *s, const float *dy,
                            const float *w, double *dx);
/* dw = correlate(x, dy); db = sum dy (db may be NULL). */
void dnn__ref_conv_bwd_weights(const dnn__conv_shape *s, const float *x,
                               const float *dy, double *dw, double *db);

/* Inner product: y[n][o] = sum_i x[n][i] w[o][i] + b[o]. */
void dnn__ref_ip_fwd(size_t n, size_t in, size_t out, const float *x,
                     const float *w, const float *b, double *y);
void dnn__ref_ip_bwd_data(size_t n, size_t in, size_t out, const float *dy,
                          const float *w, double *dx);
void dnn__ref_ip_bwd_weights(size_t n, size_t in, size_t out, const float *x,
                             const float *dy, double *dw, double *db);

/* Pooling on NCHW (avg excludes padding from the divisor). */
typedef struct dnn__pool_shape {
  size_t n, c, ih, iw, oh, ow, kh, kw, sh, sw, ph, pw;
  bool max;
} dnn__pool_shape;
void dnn__ref_pool_fwd(const dnn__pool_shape *s, const float *x, double *y);
void dnn__ref_pool_bwd(const dnn__pool_shape *s, const float *x,
                       const float *dy, double *dx);

/* Batch norm over (n, h*w) per channel, training mode, scale and shift. */
void dnn__ref_bnorm_fwd(size_t n, size_t c, size_t hw, const float *x,
                        const float *gamma, const float *beta, double eps,
                        double *y);
/* Gradients with respect to x, gamma and beta. */
void dnn__ref_bnorm_bwd(size_t n, size_t c, size_t hw, const float *x,
                        const float *gamma, const float *dy, double eps,
                        double *dx, double *dgamma, double *dbeta);
/* Layer norm over the last dimension `c` of `rows` rows. */
void dnn__ref_lnorm_fwd(size_t rows, size_t c, const float *x,
                        const float *gamma, const float *beta, double eps,
                        double *y);
void dnn__ref_lnorm_bwd(size_t rows, size_t c, const float *x,
                        const float *gamma, const float *dy, double eps,
                        double *dx, double *dgamma, double *dbeta);

/* Elementwise activation and its gradient (gelu: tanh approximation). */
void dnn__ref_act_fwd(dnn_act a, const float *x, size_t n, double *y);
void dnn__ref_act_bwd(dnn_act a, const float *x, const float *dy, size_t n,
                      double *dx);

/* Softmax over the last dimension `c` of `rows` rows. */
void dnn__ref_softmax_fwd(size_t rows, size_t c, const float *x, double *y);
/* dx from the forward output y and dy. */
void dnn__ref_softmax_bwd(size_t rows, size_t c, const float *y,
                          const float *dy, double *dx);

/*
 * LSTM over T steps, batch n, input c, hidden h, zero initial state. Gate
 * order i, f, g, o (oneDNN's); weights wx[c][4][h], wh[h][4][h], bias
 * b[4][h]; output y[T][n][h] (every step's hidden state). `scratch` holds
 * 6 h doubles.
 */
void dnn__ref_lstm_fwd(size_t T, size_t n, size_t c, size_t h, const float *x,
                       const float *wx, const float *wh, const float *b,
                       double *scratch, double *y);

/* ---- Shared helpers of the kernel back ends ----------------------------- */

/* Fills the identity, cost and signature of a row for layer `i`. */
void dnn__meas_row_init(dnn_meas_kernel_row *r, const char *backend,
                        const dnn_net *net, size_t i, dnn_pass pass,
                        dnn_conv_algo algo, size_t batch, dnn_dtype dtype);

/* True when `p->done` already holds this row's key. */
bool dnn__meas_row_done(const dnn_meas_kernel_params *p,
                        const dnn_meas_kernel_row *r);

/* Checks kernel parameters: DNN_EINVAL naming the field. */
dnn_status dnn__meas_kernel_params_check(const dnn_meas_kernel_params *p,
                                         dnn_error *err);

/* The convolution shape of layer `i` at `batch`. */
void dnn__meas_conv_shape(const dnn_net *net, size_t i, size_t batch,
                          dnn__conv_shape *s);

/* Pooling window of layer `i` (maxpool, avgpool, adaptive and global). */
void dnn__meas_pool_shape(const dnn_net *net, size_t i, size_t batch,
                          dnn__pool_shape *s);

/* Share of a fused backward time that belongs to `pass`: the model's
 * FLOPs (or bytes when neither has FLOPs) of that pass over both. */
double dnn__meas_bwd_share(const dnn_net *net, size_t i, size_t batch,
                           dnn_dtype dtype, dnn_pass pass);

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_MEASURE_INTERNAL_H */
