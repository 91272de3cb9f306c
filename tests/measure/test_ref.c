/* Tests of measure/ref.c, the C reference kernels every back end is
 * verified against: hand-computed values, and each backward kernel
 * against central differences of its forward kernel. */
#include "test_util.h"

#include <math.h>

#include "measure/internal.h"

static void test_conv_known_answer(void **state) {
  (void)state;
  /* 1 channel 3x3 image, 2x2 kernel, stride 1, no padding: 2x2 output. */
  dnn__conv_shape s = {.n = 1,
                       .ic = 1,
                       .ih = 3,
                       .iw = 3,
                       .oc = 1,
                       .oh = 2,
                       .ow = 2,
                       .kh = 2,
                       .kw = 2,
                       .sh = 1,
                       .sw = 1,
                       .ph = 0,
                       .pw = 0,
                       .dh = 1,
                       .dw = 1,
                       .groups = 1};
  const float x[9] = {1.5f, -2.0f, 0.25f, 3.0f, 0.5f, -1.0f, 2.0f, 4.0f, 1.0f};
  const float w[4] = {0.5f, -1.0f, 2.0f, 0.25f};
  const float b[1] = {0.125f};
  double y[4];
  dnn__ref_conv_fwd(&s, x, w, b, y);
  /* y00 = 1.5*0.5 + (-2)(-1) + 3*2 + 0.5*0.25 + 0.125 = 9.0 */
  assert_close(y[0], 9.0, 1e-12);
  /* y01 = -2*0.5 + 0.25*(-1) + 0.5*2 + (-1)*0.25 + 0.125 = -0.375 */
  assert_close(y[1], -0.375, 1e-12);
  /* y10 = 3*0.5 + 0.5*(-1) + 2*2 + 4*0.25 + 0.125 = 6.125 */
  assert_close(y[2], 6.125, 1e-12);
  /* y11 = 0.5*0.5 + (-1)(-1) + 4*2 + 1*0.25 + 0.125 = 9.625 */
  assert_close(y[3], 9.625, 1e-12);
}

/* <dy, conv(x)> is bilinear: its gradient in x is bwd_data(dy) and in w
 * bwd_weights(x, dy); checked along random directions. */
static void test_conv_gradients(void **state) {
  (void)state;
  dnn__conv_shape s = {.n = 2,
                       .ic = 4,
                       .ih = 7,
                       .iw = 6,
                       .oc = 6,
                       .oh = 4,
                       .ow = 3,
                       .kh = 3,
                       .kw = 3,
                       .sh = 2,
                       .sw = 2,
                       .ph = 1,
                       .pw = 1,
                       .dh = 1,
                       .dw = 1,
                       .groups = 2};
  size_t nx = 2 * 4 * 7 * 6, ny = 2 * 6 * 4 * 3, nw = 6 * 2 * 3 * 3;
  float *x = malloc(nx * 4), *w = malloc(nw * 4), *dy = malloc(ny * 4);
  double *y = malloc(ny * 8), *dx = malloc(nx * 8), *dw = malloc(nw * 8);
  double db[6];
  dnn__meas_fill(x, nx, 3);
  dnn__meas_fill(w, nw, 4);
  dnn__meas_fill(dy, ny, 5);
  dnn__ref_conv_bwd_data(&s, dy, w, dx);
  dnn__ref_conv_bwd_weights(&s, x, dy, dw, db);
  /* Linear in x: <dy, conv(e_i)> = dx_i for a unit vector e_i. */
  float *e = calloc(nx, 4);
  for (size_t i = 0; i < nx; i += 17) {
    memset(e, 0, nx * 4);
    e[i] = 1;
    dnn__ref_conv_fwd(&s, e, w, NULL, y);
    double dot = 0;
    for (size_t k = 0; k < ny; k++)
      dot += y[k] * (double)dy[k];
    assert_close(dot, dx[i], 1e-9);
  }
  free(e);
  float *u = calloc(nw, 4);
  for (size_t i = 0; i < nw; i += 7) {
    memset(u, 0, nw * 4);
    u[i] = 1;
    dnn__ref_conv_fwd(&s, x, u, NULL, y);
    double dot = 0;
    for (size_t k = 0; k < ny; k++)
      dot += y[k] * (double)dy[k];
    assert_close(dot, dw[i], 1e-9);
  }
  free(u);
  double sum0 = 0;
  for (size_t n = 0; n < 2; n++)
    for (size_t k = 0; k < 12; k++)
      sum0 += (double)dy[n * 72 + k];
  assert_close(db[0], sum0, 1e-12);
  free(x);
  free(w);
  free(dy);
  free(y);
  free(dx);
  free(dw);
}

static void test_ip(void **state) {
  (void)state;
  const float x[6] = {1.5f, -2.0f, 0.5f, 3.0f, 0.25f, -1.0f}; /* 2 x 3 */
  const float w[6] = {0.5f, 1.0f, -2.0f, 0.25f, 0.75f, 1.5f}; /* 2 x 3 */
  const float b[2] = {0.125f, -0.5f};
  double y[4], dx[6], dw[6], db[2];
  dnn__ref_ip_fwd(2, 3, 2, x, w, b, y);
  assert_close(y[0], 0.75 - 2.0 - 1.0 + 0.125, 1e-12);
  assert_close(y[3], 0.75 + 0.1875 - 1.5 - 0.5, 1e-12);
  const float dy[4] = {1.0f, -0.5f, 2.0f, 0.25f};
  dnn__ref_ip_bwd_data(2, 3, 2, dy, w, dx);
  assert_close(dx[0], 0.5 - 0.125, 1e-12);
  assert_close(dx[5], 2.0 * -2.0 + 0.25 * 1.5, 1e-12);
  dnn__ref_ip_bwd_weights(2, 3, 2, x, dy, dw, db);
  assert_close(dw[0], 1.5 + 2.0 * 3.0, 1e-12);
  assert_close(db[1], -0.25, 1e-12);
}

static void test_pool(void **state) {
  (void)state;
  /* 4x4 image, 3x3 window, stride 2, padding 1: 2x2 output. */
  dnn__pool_shape s = {.n = 1,
                       .c = 1,
                       .ih = 4,
                       .iw = 4,
                       .oh = 2,
                       .ow = 2,
                       .kh = 3,
                       .kw = 3,
                       .sh = 2,
                       .sw = 2,
                       .ph = 1,
                       .pw = 1,
                       .max = true};
  float x[16];
  for (int i = 0; i < 16; i++)
    x[i] = (float)((i * 7) % 16) - 7.5f;
  double y[4], dx[16];
  dnn__ref_pool_fwd(&s, x, y);
  /* Window (0,0) covers rows 0-1, cols 0-1: x0 = -7.5, x1 = -0.5,
   * x4 = 4.5, x5 = -4.5. */
  assert_close(y[0], 4.5, 1e-12);
  s.max = false;
  dnn__ref_pool_fwd(&s, x, y);
  assert_close(y[0], (-7.5 - 0.5 + 4.5 - 4.5) / 4, 1e-12);
  const float dy[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  s.max = true;
  dnn__ref_pool_bwd(&s, x, dy, dx);
  double total = 0;
  for (int i = 0; i < 16; i++)
    total += dx[i];
  assert_close(total, 10, 1e-12);
  assert_close(dx[4], 1.0, 1e-12); /* x4 is window (0,0)'s max only */
}

static void test_norms(void **state) {
  (void)state;
  float x[2 * 3 * 4], g[3] = {1.5f, 0.5f, 2.0f}, b[3] = {0.25f, -1.0f, 0.0f};
  dnn__meas_fill(x, 24, 9);
  double y[24], dx[24], dg[3], dbeta[3];
  dnn__ref_bnorm_fwd(2, 3, 4, x, g, b, 0, y);
  /* Channel 1 over (n, hw): mean beta, variance gamma^2. */
  double m = 0, v = 0;
  for (size_t n = 0; n < 2; n++)
    for (size_t k = 0; k < 4; k++)
      m += y[(n * 3 + 1) * 4 + k] / 8;
  for (size_t n = 0; n < 2; n++)
    for (size_t k = 0; k < 4; k++)
      v += (y[(n * 3 + 1) * 4 + k] - m) * (y[(n * 3 + 1) * 4 + k] - m) / 8;
  assert_close(m, -1.0, 1e-9);
  assert_close(v, 0.25, 1e-9);
  /* Backward against central differences of <dy, bnorm(x)>. */
  float dy[24];
  dnn__meas_fill(dy, 24, 10);
  dnn__ref_bnorm_bwd(2, 3, 4, x, g, dy, 1e-5, dx, dg, dbeta);
  for (size_t i = 0; i < 24; i += 5) {
    float xp[24], xm[24];
    memcpy(xp, x, sizeof xp);
    memcpy(xm, x, sizeof xm);
    xp[i] += 1e-3f;
    xm[i] -= 1e-3f;
    double yp[24], ym[24], lp = 0, lm = 0;
    dnn__ref_bnorm_fwd(2, 3, 4, xp, g, b, 1e-5, yp);
    dnn__ref_bnorm_fwd(2, 3, 4, xm, g, b, 1e-5, ym);
    for (size_t k = 0; k < 24; k++) {
      lp += yp[k] * (double)dy[k];
      lm += ym[k] * (double)dy[k];
    }
    double h = (double)xp[i] - (double)xm[i];
    assert_close((lp - lm) / h, dx[i], 2e-3);
  }
  /* Layer norm of one row: zero mean, unit variance times gamma. */
  float row[3] = {1.0f, 2.0f, 4.0f}, one[3] = {1, 1, 1}, zero[3] = {0, 0, 0};
  double ly[3];
  dnn__ref_lnorm_fwd(1, 3, row, one, zero, 0, ly);
  assert_true(fabs(ly[0] + ly[1] + ly[2]) < 1e-12);
  assert_close(ly[0] * ly[0] + ly[1] * ly[1] + ly[2] * ly[2], 3, 1e-9);
  double ldx[3], ldg[3], ldb[3];
  const float ldy[3] = {0.5f, -1.0f, 2.0f};
  dnn__ref_lnorm_bwd(1, 3, row, one, ldy, 0, ldx, ldg, ldb);
  assert_true(fabs(ldx[0] + ldx[1] + ldx[2]) < 1e-12);
  assert_close(ldb[2], 2.0, 1e-12);
}

static void test_act_softmax(void **state) {
  (void)state;
  const float x[4] = {-1.25f, 0.0f, 0.5f, 2.0f};
  double y[4], dx[4];
  dnn__ref_act_fwd(DNN_ACT_RELU, x, 4, y);
  assert_close(y[0], 0, 1e-12);
  assert_close(y[3], 2.0, 1e-12);
  /* Every activation's gradient against a central difference. */
  for (int a = 0; a < DNN_ACT_COUNT; a++) {
    const float xs[3] = {-1.25f, 0.5f, 2.0f}, ones[3] = {1, 1, 1};
    dnn__ref_act_bwd((dnn_act)a, xs, ones, 3, dx);
    for (int i = 0; i < 3; i++) {
      float p = xs[i] + 1e-3f, m = xs[i] - 1e-3f;
      double yp, ym;
      dnn__ref_act_fwd((dnn_act)a, &p, 1, &yp);
      dnn__ref_act_fwd((dnn_act)a, &m, 1, &ym);
      assert_close((yp - ym) / ((double)p - (double)m), dx[i], 1e-5);
    }
  }
  dnn__ref_softmax_fwd(1, 4, x, y);
  assert_close(y[0] + y[1] + y[2] + y[3], 1, 1e-12);
  assert_close(y[3] / y[2], exp(1.5), 1e-12);
  float yf[4], dy[4] = {1.0f, 1.0f, 1.0f, 1.0f};
  for (int i = 0; i < 4; i++)
    yf[i] = (float)y[i];
  dnn__ref_softmax_bwd(1, 4, yf, dy, dx);
  /* A constant upstream gradient has no effect through softmax. */
  for (int i = 0; i < 4; i++)
    assert_true(fabs(dx[i]) < 1e-7);
}

static void test_lstm(void **state) {
  (void)state;
  /* One step, one sample, input 1, hidden 1: with zero weights and bias
   * b = (i, f, g, o) the state is c = sig(bi) tanh(bg), h = sig(bo)
   * tanh(c). */
  const float x[1] = {0.75f}, wx[4] = {0, 0, 0, 0}, wh[4] = {0, 0, 0, 0};
  const float b[4] = {0.5f, -0.25f, 1.5f, 0.125f};
  double y[1], scratch[6];
  dnn__ref_lstm_fwd(1, 1, 1, 1, x, wx, wh, b, scratch, y);
  double c = 1 / (1 + exp(-0.5)) * tanh(1.5);
  assert_close(y[0], 1 / (1 + exp(-0.125)) * tanh(c), 1e-12);
}

static void test_compare(void **state) {
  (void)state;
  const float got[3] = {1.0f, 2.0f, 2.5f};
  const double ref[3] = {1.0, 2.0, 3.0};
  double l2, mx;
  dnn__meas_compare(got, ref, 3, &l2, &mx);
  assert_close(l2, 0.5 / sqrt(14.0), 1e-12);
  assert_close(mx, 0.5 / 3.0, 1e-12);
  const double zero[3] = {0, 0, 0};
  dnn__meas_compare(got, zero, 3, &l2, &mx);
  assert_close(mx, 2.5, 1e-12);
  float bad[1] = {NAN};
  const double one[1] = {1};
  dnn__meas_compare(bad, one, 1, &l2, &mx);
  assert_true(isinf(l2) && isinf(mx));
  dnn_meas_verify_perturb(DNN_LAYER_CONV2D, DNN_PASS_FWD, 1.5);
  assert_close(dnn__meas_perturb(DNN_LAYER_CONV2D, DNN_PASS_FWD), 1.5, 0);
  dnn_meas_verify_perturb(DNN_LAYER_CONV2D, DNN_PASS_FWD, 1);
  assert_close(dnn__meas_perturb(DNN_LAYER_CONV2D, DNN_PASS_FWD), 1, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_conv_known_answer),
      cmocka_unit_test(test_conv_gradients),
      cmocka_unit_test(test_ip),
      cmocka_unit_test(test_pool),
      cmocka_unit_test(test_norms),
      cmocka_unit_test(test_act_softmax),
      cmocka_unit_test(test_lstm),
      cmocka_unit_test(test_compare),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
