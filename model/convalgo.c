/*
 * Convolution algorithms (cuDNN's eight forward algorithms, and the same
 * families for the two backward passes): applicability, arithmetic, bytes
 * moved including workspace traffic, and workspace size (REFERENCE §1.3).
 *
 *   implicit_gemm          the direct MACs, no workspace
 *   implicit_precomp_gemm  the direct MACs, an int32 offset table of
 *                          Cg*R*S + P*Q entries (independent of the batch)
 *   gemm                   explicit im2col: the lowered matrix of one group,
 *                          Cg*R*S x N*P*Q elements (grows with the batch)
 *   direct                 the reference (what dnn_layer_cost reports)
 *   fft                    whole-image real FFTs of size the next power of
 *                          two >= H + 2p; 2.5 n log2 n FLOPs per real
 *                          transform of n points (half of 5 n log2 n) plus 8
 *                          FLOPs per complex MAC over Fh*(Fw/2+1) bins;
 *                          workspace: every transformed input, filter and
 *                          output (grows with the batch)
 *   fft_tiling             the same on 32x32 tiles (overlap-save), one sample
 *                          at a time, so the workspace is bounded
 *   winograd               fused F(2x2,3x3): 16 multiplies per 2x2 tile and
 *                          channel pair instead of 36; workspace = the
 *                          transformed filters only
 *   winograd_nonfused      F(4x4,3x3) or F(2x2,5x5) (both use 6x6 tiles):
 *                          36 multiplies per tile and channel pair, workspace
 *                          = transformed filters + input and output tiles
 *                          (grows with the batch)
 * FFT and Winograd need stride 1, dilation 1 and no groups; Winograd needs
 * a square 3x3 (or, non-fused, 5x5) kernel. Grouped convolutions run only
 * with the two implicit GEMMs, gemm and direct. The backward passes use the
 * same families with the tensors' roles swapped (bwd_data correlates dy with
 * the flipped filters over the input grid; bwd_weights correlates x with dy
 * and reduces over the batch).
 *
 * Invariant: the direct algorithm's numbers equal dnn_layer_cost's, and the
 * non-MAC parts of a pass (bias, gradient accumulation) are the same for
 * every algorithm. Does not allocate. docs/models.md §2 derives each count.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

/* Tile edge of fft_tiling (cuDNN's FFT_TILING uses 32x32 tiles). */
#define FFT_TILE 32

/*
 * A Winograd variant F(m x m, r x r) with alpha = m + r - 1, and its
 * transform costs counted from the matrices of Lavin & Gray (arXiv
 * 1509.09308) as (nonzeros - 1) additions plus one multiply per coefficient
 * other than +-1 per row, applied to the rows then the columns of a tile:
 *   in_ops   B^T d B, per tile and input channel
 *   out_ops  A^T M A, per tile and output channel
 *   filt_ops G g G^T, per filter (output channel x input channel)
 */
typedef struct wino {
  size_t m, r, alpha;
  double in_ops, out_ops, filt_ops;
} wino;

static const wino wino_2x3 = {2, 3, 4, 32, 24, 70};
static const wino wino_4x3 = {4, 3, 6, 336, 200, 189};
static const wino wino_2x5 = {2, 5, 6, 336, 80, 407};

/* The smallest power of two >= x, as a double: above 2^63 a size_t
 * would wrap to 0 and the loop never end. */
static double next_pow2(size_t x) {
  size_t p = 1;
  while (p < x) {
    if (p > SIZE_MAX / 2)
      return 2.0 * dnn__d(p);
    p <<= 1;
  }
  return dnn__d(p);
}

/* Whether `algo` can compute `pass` of conv layer `l`. */
static bool applicable(const dnn_layer *l, dnn_pass pass, dnn_conv_algo algo) {
  const dnn_conv_params *p = &l->p.conv;
  bool plain = p->groups == 1 && p->stride_h == 1 && p->stride_w == 1 &&
               p->dilation_h == 1 && p->dilation_w == 1;
  bool square = p->kernel_h == p->kernel_w;
  /* bwd_data as a stride-1 convolution of dy padded by r - 1 - p. */
  bool pad_ok = pass != DNN_PASS_BWD_DATA ||
                (p->pad_h < p->kernel_h && p->pad_w < p->kernel_w);
  switch (algo) {
  case DNN_CONV_IMPLICIT_GEMM:
  case DNN_CONV_IMPLICIT_PRECOMP_GEMM:
  case DNN_CONV_GEMM:
  case DNN_CONV_DIRECT:
    return true;
  case DNN_CONV_FFT:
    return plain;
  case DNN_CONV_FFT_TILING:
    return plain && p->kernel_h <= FFT_TILE && p->kernel_w <= FFT_TILE;
  case DNN_CONV_WINOGRAD:
    return plain && square && p->kernel_h == 3 && pad_ok;
  case DNN_CONV_WINOGRAD_NONFUSED:
    return plain && square && (p->kernel_h == 3 || p->kernel_h == 5) && pad_ok;
  case DNN_CONV_ALGO_COUNT:
    break;
  }
  return false;
}

void dnn_conv_algo_cost_get(const dnn_net *net, size_t i, dnn_pass pass,
                            dnn_conv_algo algo, size_t batch, dnn_dtype dtype,
                            dnn_conv_algo_cost *out) {
  DNN_ASSERT((unsigned)pass < DNN_PASS_COUNT);
  memset(out, 0, sizeof *out);
  const dnn__layer *r = dnn__net_rec(net, i);
  const dnn_layer *l = &r->pub;
  if (l->kind != DNN_LAYER_CONV2D || !applicable(l, pass, algo))
    return;
  out->applicable = true;
  if (batch == 0 || !dnn__pass_runs(l, pass))
    return; /* a pass the layer does not have costs nothing */

  double N = dnn__d(batch), s = dnn__d(dnn_dtype_bytes(dtype));
  dnn_cost d;
  double macs;
  dnn__conv_direct_cost(net, r, pass, N, s, &d, &macs);
  out->flops = d.flops;
  out->bytes_read = d.bytes_read;
  out->bytes_written = d.bytes_written;

  const dnn_conv_params *p = &l->p.conv;
  double g = dnn__d(p->groups);
  double C = dnn__d(l->in.dim[0]), K = dnn__d(p->out_channels);
  double H = dnn__d(l->in.dim[1]), W = dnn__d(l->in.dim[2]);
  double P = dnn__d(l->out.dim[1]), Q = dnn__d(l->out.dim[2]);
  double RS = dnn__d(p->kernel_h * p->kernel_w);
  double other = d.flops - 2 * macs; /* bias and accumulation */
  double ws = 0, traffic = 0;        /* workspace bytes; its traffic */

  switch (algo) {
  case DNN_CONV_IMPLICIT_GEMM:
  case DNN_CONV_DIRECT:
  case DNN_CONV_ALGO_COUNT:
    break;
  case DNN_CONV_IMPLICIT_PRECOMP_GEMM:
    ws = (C / g * RS + P * Q) * DNN__OFFSET_BYTES;
    traffic = ws;
    break;
  case DNN_CONV_GEMM: {
    /* One group's lowered matrix (or, for bwd_data, its column buffer
     * that col2im scatter-adds into dx); every group passes through it. */
    double lowered = C / g * RS * N * P * Q;
    ws = lowered * s;
    traffic = g * lowered * s;
    if (pass == DNN_PASS_BWD_DATA)
      out->flops += g * lowered; /* col2im additions */
    break;
  }
  case DNN_CONV_FFT: {
    double fh = next_pow2(l->in.dim[1] + 2 * p->pad_h);
    double fw = next_pow2(l->in.dim[2] + 2 * p->pad_w);
    double n = fh * fw, bins = fh * (floor(fw / 2) + 1);
    /* Transformed tensors: inputs N*C, filters K*C, outputs N*K (the same
     * three, roles swapped, in every pass). */
    double tensors = N * C + K * C + N * K;
    out->flops = other + tensors * 2.5 * n * log2(n) + 8 * N * K * C * bins;
    ws = tensors * bins * 2 * s;
    traffic = ws;
    break;
  }
  case DNN_CONV_FFT_TILING: {
    double n = FFT_TILE * FFT_TILE, bins = FFT_TILE * (FFT_TILE / 2 + 1);
    double gh = pass == DNN_PASS_BWD_DATA ? H : P;
    double gw = pass == DNN_PASS_BWD_DATA ? W : Q;
    double th = ceil(gh / dnn__d(FFT_TILE - p->kernel_h + 1));
    double tw = ceil(gw / dnn__d(FFT_TILE - p->kernel_w + 1));
    double nt = th * tw; /* tiles per image */
    double tensors = N * nt * (C + K) + K * C;
    out->flops =
        other + tensors * 2.5 * n * log2(n) + 8 * N * K * C * nt * bins;
    ws = (nt * (C + K) + K * C) * bins * 2 * s; /* one sample at a time */
    traffic = tensors * bins * 2 * s;
    break;
  }
  case DNN_CONV_WINOGRAD:
  case DNN_CONV_WINOGRAD_NONFUSED: {
    const wino *v = algo == DNN_CONV_WINOGRAD ? &wino_2x3
                    : p->kernel_h == 5        ? &wino_2x5
                                              : &wino_4x3;
    double m = dnn__d(v->m), a2 = dnn__d(v->alpha * v->alpha);
    double gh = pass == DNN_PASS_BWD_DATA ? H : P;
    double gw = pass == DNN_PASS_BWD_DATA ? W : Q;
    double T = N * ceil(gh / m) * ceil(gw / m); /* tiles */
    /* Source and destination channels of the tile transforms. */
    double src = pass == DNN_PASS_BWD_DATA ? K : C;
    double dst = pass == DNN_PASS_BWD_DATA ? C : K;
    out->flops = other + 2 * T * C * K * a2 + T * src * v->in_ops +
                 T * dst * v->out_ops + K * C * v->filt_ops;
    if (algo == DNN_CONV_WINOGRAD)
      ws = K * C * a2 * s;
    else
      ws = (K * C + T * (C + K)) * a2 * s;
    traffic = ws;
    break;
  }
  }
  out->workspace_bytes = ws;
  out->bytes_read += traffic;
  out->bytes_written += traffic;
}
