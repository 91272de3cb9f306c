/*
 * Plain C reference kernels that the oneDNN and cuDNN back ends are
 * verified against before any of their times is used (Deep500's
 * verifiable benchmarking, REFERENCE.md §5.3): direct convolution and its
 * two gradients, inner product, pooling, batch and layer normalisation,
 * activations, softmax and an LSTM forward pass.
 *
 * Formulas: the textbook definitions (Goodfellow, Bengio & Courville,
 * "Deep Learning", 2016, ch. 9 for convolution and pooling; Ioffe &
 * Szegedy 2015 for batch norm and its gradient; Ba et al. 2016 for layer
 * norm; Hochreiter & Schmidhuber 1997 for the LSTM, with oneDNN's gate
 * order i, f, g, o). GELU is the tanh approximation (Hendrycks & Gimpel
 * 2016), which oneDNN calls gelu_tanh.
 *
 * Invariant: double-precision accumulation on plain layouts (NCHW, OIHW
 * with groups folded into O); outputs are overwritten, never accumulated
 * into, so callers need not clear them; nothing here allocates (the LSTM
 * takes its state as caller scratch).
 */
#include "internal.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Convolution                                                              */
/* ------------------------------------------------------------------------ */

#define X_AT(s, n, c, h, w)                                                    \
  ((((n) * (s)->ic + (c)) * (s)->ih + (h)) * (s)->iw + (w))
#define Y_AT(s, n, c, h, w)                                                    \
  ((((n) * (s)->oc + (c)) * (s)->oh + (h)) * (s)->ow + (w))
#define W_AT(s, o, c, h, w)                                                    \
  ((((o) * ((s)->ic / (s)->groups) + (c)) * (s)->kh + (h)) * (s)->kw + (w))

/* Calls `body` for every (n, o, oy, ox, c, ky, kx) whose input pixel
 * (iy, ix) lies inside the image; `ci` is the input channel. */
#define CONV_LOOP(s, body)                                                     \
  do {                                                                         \
    size_t icg_ = (s)->ic / (s)->groups, ocg_ = (s)->oc / (s)->groups;         \
    for (size_t n = 0; n < (s)->n; n++)                                        \
      for (size_t o = 0; o < (s)->oc; o++) {                                   \
        size_t g_ = o / ocg_;                                                  \
        for (size_t oy = 0; oy < (s)->oh; oy++)                                \
          for (size_t ox = 0; ox < (s)->ow; ox++)                              \
            for (size_t c = 0; c < icg_; c++) {                                \
              size_t ci = g_ * icg_ + c;                                       \
              for (size_t ky = 0; ky < (s)->kh; ky++) {                        \
                long iy = (long)(oy * (s)->sh + ky * (s)->dh) - (long)(s)->ph; \
                if (iy < 0 || iy >= (long)(s)->ih)                             \
                  continue;                                                    \
                for (size_t kx = 0; kx < (s)->kw; kx++) {                      \
                  long ix =                                                    \
                      (long)(ox * (s)->sw + kx * (s)->dw) - (long)(s)->pw;     \
                  if (ix < 0 || ix >= (long)(s)->iw)                           \
                    continue;                                                  \
                  body;                                                        \
                }                                                              \
              }                                                                \
            }                                                                  \
      }                                                                        \
  } while (0)

void dnn__ref_conv_fwd(const dnn__conv_shape *s, const float *x, const float *w,
                       const float *b, double *y) {
  size_t ny = s->n * s->oc * s->oh * s->ow;
  for (size_t i = 0; i < ny; i++)
    y[i] = 0;
  CONV_LOOP(s, y[Y_AT(s, n, o, oy, ox)] +=
               (double)x[X_AT(s, n, ci, (size_t)iy, (size_t)ix)] *
               (double)w[W_AT(s, o, c, ky, kx)]);
  if (b)
    for (size_t n = 0; n < s->n; n++)
      for (size_t o = 0; o < s->oc; o++)
        for (size_t k = 0; k < s->oh * s->ow; k++)
          y[Y_AT(s, n, o, 0, 0) + k] += (double)b[o];
}

void dnn__ref_conv_bwd_data(const dnn__conv_shape *s, const float *dy,
                            const float *w, double *dx) {
  size_t nx = s->n * s->ic * s->ih * s->iw;
  for (size_t i = 0; i < nx; i++)
    dx[i] = 0;
  CONV_LOOP(s, dx[X_AT(s, n, ci, (size_t)iy, (size_t)ix)] +=
               (double)dy[Y_AT(s, n, o, oy, ox)] *
               (double)w[W_AT(s, o, c, ky, kx)]);
}

void dnn__ref_conv_bwd_weights(const dnn__conv_shape *s, const float *x,
                               const float *dy, double *dw, double *db) {
  size_t nw = s->oc * (s->ic / s->groups) * s->kh * s->kw;
  for (size_t i = 0; i < nw; i++)
    dw[i] = 0;
  CONV_LOOP(s, dw[W_AT(s, o, c, ky, kx)] +=
               (double)x[X_AT(s, n, ci, (size_t)iy, (size_t)ix)] *
               (double)dy[Y_AT(s, n, o, oy, ox)]);
  if (db) {
    for (size_t o = 0; o < s->oc; o++) {
      double sum = 0;
      for (size_t n = 0; n < s->n; n++)
        for (size_t k = 0; k < s->oh * s->ow; k++)
          sum += (double)dy[Y_AT(s, n, o, 0, 0) + k];
      db[o] = sum;
    }
  }
}

/* ------------------------------------------------------------------------ */
/* Inner product                                                            */
/* ------------------------------------------------------------------------ */

void dnn__ref_ip_fwd(size_t n, size_t in, size_t out, const float *x,
                     const float *w, const float *b, double *y) {
  for (size_t i = 0; i < n; i++)
    for (size_t o = 0; o < out; o++) {
      double sum = b ? (double)b[o] : 0;
      for (size_t k = 0; k < in; k++)
        sum += (double)x[i * in + k] * (double)w[o * in + k];
      y[i * out + o] = sum;
    }
}

void dnn__ref_ip_bwd_data(size_t n, size_t in, size_t out, const float *dy,
                          const float *w, double *dx) {
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < in; k++) {
      double sum = 0;
      for (size_t o = 0; o < out; o++)
        sum += (double)dy[i * out + o] * (double)w[o * in + k];
      dx[i * in + k] = sum;
    }
}

void dnn__ref_ip_bwd_weights(size_t n, size_t in, size_t out, const float *x,
                             const float *dy, double *dw, double *db) {
  for (size_t o = 0; o < out; o++) {
    for (size_t k = 0; k < in; k++) {
      double sum = 0;
      for (size_t i = 0; i < n; i++)
        sum += (double)dy[i * out + o] * (double)x[i * in + k];
      dw[o * in + k] = sum;
    }
    if (db) {
      double sum = 0;
      for (size_t i = 0; i < n; i++)
        sum += (double)dy[i * out + o];
      db[o] = sum;
    }
  }
}

/* ------------------------------------------------------------------------ */
/* Pooling                                                                  */
/* ------------------------------------------------------------------------ */

/* The window of output (oy, ox), clipped to the image; false if empty. */
static bool window(const dnn__pool_shape *s, size_t oy, size_t ox, size_t *y0,
                   size_t *y1, size_t *x0, size_t *x1) {
  long a = (long)(oy * s->sh) - (long)s->ph, b = a + (long)s->kh;
  long c = (long)(ox * s->sw) - (long)s->pw, d = c + (long)s->kw;
  if (a < 0)
    a = 0;
  if (c < 0)
    c = 0;
  if (b > (long)s->ih)
    b = (long)s->ih;
  if (d > (long)s->iw)
    d = (long)s->iw;
  if (a >= b || c >= d)
    return false;
  *y0 = (size_t)a;
  *y1 = (size_t)b;
  *x0 = (size_t)c;
  *x1 = (size_t)d;
  return true;
}

void dnn__ref_pool_fwd(const dnn__pool_shape *s, const float *x, double *y) {
  for (size_t nc = 0; nc < s->n * s->c; nc++) {
    const float *xi = x + nc * s->ih * s->iw;
    double *yo = y + nc * s->oh * s->ow;
    for (size_t oy = 0; oy < s->oh; oy++)
      for (size_t ox = 0; ox < s->ow; ox++) {
        size_t y0, y1, x0, x1;
        double v = 0;
        if (window(s, oy, ox, &y0, &y1, &x0, &x1)) {
          v = s->max ? -INFINITY : 0;
          for (size_t iy = y0; iy < y1; iy++)
            for (size_t ix = x0; ix < x1; ix++) {
              double e = (double)xi[iy * s->iw + ix];
              v = s->max ? (e > v ? e : v) : v + e;
            }
          if (!s->max)
            v /= (double)((y1 - y0) * (x1 - x0));
        }
        yo[oy * s->ow + ox] = v;
      }
  }
}

void dnn__ref_pool_bwd(const dnn__pool_shape *s, const float *x,
                       const float *dy, double *dx) {
  for (size_t i = 0; i < s->n * s->c * s->ih * s->iw; i++)
    dx[i] = 0;
  for (size_t nc = 0; nc < s->n * s->c; nc++) {
    const float *xi = x + nc * s->ih * s->iw;
    const float *g = dy + nc * s->oh * s->ow;
    double *d = dx + nc * s->ih * s->iw;
    for (size_t oy = 0; oy < s->oh; oy++)
      for (size_t ox = 0; ox < s->ow; ox++) {
        size_t y0, y1, x0, x1;
        if (!window(s, oy, ox, &y0, &y1, &x0, &x1))
          continue;
        double gv = (double)g[oy * s->ow + ox];
        if (s->max) {
          size_t best = y0 * s->iw + x0;
          for (size_t iy = y0; iy < y1; iy++)
            for (size_t ix = x0; ix < x1; ix++)
              if (xi[iy * s->iw + ix] > xi[best])
                best = iy * s->iw + ix;
          d[best] += gv;
        } else {
          double share = gv / (double)((y1 - y0) * (x1 - x0));
          for (size_t iy = y0; iy < y1; iy++)
            for (size_t ix = x0; ix < x1; ix++)
              d[iy * s->iw + ix] += share;
        }
      }
  }
}

/* ------------------------------------------------------------------------ */
/* Normalisation                                                            */
/* ------------------------------------------------------------------------ */

/* Element (i, k) of a normalisation group: batch norm groups channel c
 * over (n, hw); layer norm groups a row over its c features. */
typedef struct norm_view {
  size_t groups, members; /* groups and elements per group */
  size_t n, c, hw;        /* batch norm: layout NCHW */
  bool batch;             /* batch norm (true) or layer norm */
} norm_view;

static size_t norm_at(const norm_view *v, size_t g, size_t k) {
  if (v->batch) {
    size_t n = k / v->hw, p = k % v->hw;
    return (n * v->c + g) * v->hw + p;
  }
  return g * v->c + k;
}

/* The parameter index of element (g, k): the channel for batch norm, the
 * feature for layer norm. */
static size_t norm_param(const norm_view *v, size_t g, size_t k) {
  return v->batch ? g : k;
}

static void norm_fwd(const norm_view *v, const float *x, const float *gamma,
                     const float *beta, double eps, double *y) {
  for (size_t g = 0; g < v->groups; g++) {
    double mean = 0, var = 0;
    for (size_t k = 0; k < v->members; k++)
      mean += (double)x[norm_at(v, g, k)];
    mean /= (double)v->members;
    for (size_t k = 0; k < v->members; k++) {
      double d = (double)x[norm_at(v, g, k)] - mean;
      var += d * d;
    }
    var /= (double)v->members;
    double inv = 1 / sqrt(var + eps);
    for (size_t k = 0; k < v->members; k++) {
      size_t i = norm_at(v, g, k), q = norm_param(v, g, k);
      y[i] = (double)gamma[q] * ((double)x[i] - mean) * inv + (double)beta[q];
    }
  }
}

/* Gradients; dgamma/dbeta are accumulated over groups, so cleared first. */
static void norm_bwd(const norm_view *v, size_t params, const float *x,
                     const float *gamma, const float *dy, double eps,
                     double *dx, double *dgamma, double *dbeta) {
  for (size_t q = 0; q < params; q++)
    dgamma[q] = dbeta[q] = 0;
  for (size_t g = 0; g < v->groups; g++) {
    double m = (double)v->members, mean = 0, var = 0;
    for (size_t k = 0; k < v->members; k++)
      mean += (double)x[norm_at(v, g, k)];
    mean /= m;
    for (size_t k = 0; k < v->members; k++) {
      double d = (double)x[norm_at(v, g, k)] - mean;
      var += d * d;
    }
    var /= m;
    double inv = 1 / sqrt(var + eps);
    /* With u = gamma * dy: dx = inv (u - mean(u) - xhat mean(u xhat)). */
    double su = 0, sux = 0;
    for (size_t k = 0; k < v->members; k++) {
      size_t i = norm_at(v, g, k), q = norm_param(v, g, k);
      double xhat = ((double)x[i] - mean) * inv;
      double u = (double)gamma[q] * (double)dy[i];
      su += u;
      sux += u * xhat;
      dgamma[q] += (double)dy[i] * xhat;
      dbeta[q] += (double)dy[i];
    }
    for (size_t k = 0; k < v->members; k++) {
      size_t i = norm_at(v, g, k), q = norm_param(v, g, k);
      double xhat = ((double)x[i] - mean) * inv;
      double u = (double)gamma[q] * (double)dy[i];
      dx[i] = inv * (u - su / m - xhat * sux / m);
    }
  }
}

void dnn__ref_bnorm_fwd(size_t n, size_t c, size_t hw, const float *x,
                        const float *gamma, const float *beta, double eps,
                        double *y) {
  norm_view v = {c, n * hw, n, c, hw, true};
  norm_fwd(&v, x, gamma, beta, eps, y);
}

void dnn__ref_bnorm_bwd(size_t n, size_t c, size_t hw, const float *x,
                        const float *gamma, const float *dy, double eps,
                        double *dx, double *dgamma, double *dbeta) {
  norm_view v = {c, n * hw, n, c, hw, true};
  norm_bwd(&v, c, x, gamma, dy, eps, dx, dgamma, dbeta);
}

void dnn__ref_lnorm_fwd(size_t rows, size_t c, const float *x,
                        const float *gamma, const float *beta, double eps,
                        double *y) {
  norm_view v = {rows, c, rows, c, 1, false};
  norm_fwd(&v, x, gamma, beta, eps, y);
}

void dnn__ref_lnorm_bwd(size_t rows, size_t c, const float *x,
                        const float *gamma, const float *dy, double eps,
                        double *dx, double *dgamma, double *dbeta) {
  norm_view v = {rows, c, rows, c, 1, false};
  norm_bwd(&v, c, x, gamma, dy, eps, dx, dgamma, dbeta);
}

/* ------------------------------------------------------------------------ */
/* Activations and softmax                                                  */
/* ------------------------------------------------------------------------ */

/* sqrt(2 / pi), the GELU tanh approximation's constant. */
#define GELU_K 0.7978845608028654
#define GELU_C 0.044715

static double act(dnn_act a, double x) {
  switch (a) {
  case DNN_ACT_RELU:
    return x > 0 ? x : 0;
  case DNN_ACT_GELU:
    return 0.5 * x * (1 + tanh(GELU_K * (x + GELU_C * x * x * x)));
  case DNN_ACT_TANH:
    return tanh(x);
  case DNN_ACT_SIGMOID:
    return 1 / (1 + exp(-x));
  default:
    return x;
  }
}

static double act_grad(dnn_act a, double x) {
  switch (a) {
  case DNN_ACT_RELU:
    return x > 0 ? 1 : 0;
  case DNN_ACT_GELU: {
    double t = tanh(GELU_K * (x + GELU_C * x * x * x));
    return 0.5 * (1 + t) +
           0.5 * x * (1 - t * t) * GELU_K * (1 + 3 * GELU_C * x * x);
  }
  case DNN_ACT_TANH: {
    double t = tanh(x);
    return 1 - t * t;
  }
  case DNN_ACT_SIGMOID: {
    double s = 1 / (1 + exp(-x));
    return s * (1 - s);
  }
  default:
    return 1;
  }
}

void dnn__ref_act_fwd(dnn_act a, const float *x, size_t n, double *y) {
  for (size_t i = 0; i < n; i++)
    y[i] = act(a, (double)x[i]);
}

void dnn__ref_act_bwd(dnn_act a, const float *x, const float *dy, size_t n,
                      double *dx) {
  for (size_t i = 0; i < n; i++)
    dx[i] = (double)dy[i] * act_grad(a, (double)x[i]);
}

void dnn__ref_softmax_fwd(size_t rows, size_t c, const float *x, double *y) {
  for (size_t r = 0; r < rows; r++) {
    const float *xr = x + r * c;
    double *yr = y + r * c;
    double mx = -INFINITY, sum = 0;
    for (size_t k = 0; k < c; k++)
      mx = (double)xr[k] > mx ? (double)xr[k] : mx;
    for (size_t k = 0; k < c; k++) {
      yr[k] = exp((double)xr[k] - mx);
      sum += yr[k];
    }
    for (size_t k = 0; k < c; k++)
      yr[k] /= sum;
  }
}

void dnn__ref_softmax_bwd(size_t rows, size_t c, const float *y,
                          const float *dy, double *dx) {
  for (size_t r = 0; r < rows; r++) {
    double dot = 0;
    for (size_t k = 0; k < c; k++)
      dot += (double)dy[r * c + k] * (double)y[r * c + k];
    for (size_t k = 0; k < c; k++)
      dx[r * c + k] = (double)y[r * c + k] * ((double)dy[r * c + k] - dot);
  }
}

/* ------------------------------------------------------------------------ */
/* LSTM                                                                     */
/* ------------------------------------------------------------------------ */

static double sigm(double x) {
  return 1 / (1 + exp(-x));
}

void dnn__ref_lstm_fwd(size_t T, size_t n, size_t c, size_t h, const float *x,
                       const float *wx, const float *wh, const float *b,
                       double *scratch, double *y) {
  /* State of one sample at a time: h_prev, c_prev and the four gates. */
  size_t H = h;
  double *hp = scratch, *cp = scratch + h, *gate = scratch + 2 * h;
  for (size_t s = 0; s < n; s++) {
    for (size_t k = 0; k < H; k++)
      hp[k] = cp[k] = 0;
    for (size_t t = 0; t < T; t++) {
      const float *xt = x + (t * n + s) * c;
      for (size_t g = 0; g < 4; g++)
        for (size_t k = 0; k < H; k++) {
          double sum = (double)b[g * h + k];
          for (size_t i = 0; i < c; i++)
            sum += (double)xt[i] * (double)wx[(i * 4 + g) * h + k];
          for (size_t j = 0; j < H; j++)
            sum += hp[j] * (double)wh[(j * 4 + g) * h + k];
          gate[g * H + k] = sum;
        }
      for (size_t k = 0; k < H; k++) {
        double ig = sigm(gate[k]), fg = sigm(gate[H + k]);
        double gg = tanh(gate[2 * H + k]), og = sigm(gate[3 * H + k]);
        cp[k] = fg * cp[k] + ig * gg;
        hp[k] = og * tanh(cp[k]);
      }
      for (size_t k = 0; k < H; k++)
        y[(t * n + s) * h + k] = hp[k];
    }
  }
}
