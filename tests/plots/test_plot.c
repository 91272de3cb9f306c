/* Tests of plots/plot.c and plots/script.c: chart kinds and formats, the
 * numbers in each kind's data file (speedup, efficiency and ideal scaling
 * by hand), the script's key lines, every error path, gnuplot runs (skipped
 * without gnuplot) and allocation failures. */
#include "plot_test.h"

#include <math.h>
#include <string.h>

/* A prediction with the fields the charts read. */
static dnn_prediction pred(size_t devices, double throughput, double eff) {
  dnn_prediction p;
  memset(&p, 0, sizeof p);
  p.devices = devices;
  p.throughput_samples_per_s = throughput;
  p.iteration_s = 1536.0 / throughput;
  p.scaling_efficiency = eff;
  p.breakdown.forward_s = 0.3719 * p.iteration_s;
  p.breakdown.backward_s = 0.5113 * p.iteration_s;
  p.breakdown.comm_exposed_s = 0.0871 * p.iteration_s;
  p.breakdown.optimizer_s = 0.0297 * p.iteration_s;
  return p;
}

static void test_names(void **state) {
  (void)state;
  dnn_plot_kind k;
  dnn_error e;
  for (int i = 0; i < DNN_PLOT_KIND_COUNT; i++) {
    assert_ok(dnn_plot_kind_parse(dnn_plot_kind_name((dnn_plot_kind)i), &k, &e),
              &e);
    assert_int_equal(k, i);
  }
  assert_string_equal(dnn_plot_kind_name(DNN_PLOT_KIND_COUNT), "?");
  assert_int_equal(dnn_plot_kind_parse("efficency", &k, &e), DNN_EINVAL);
  assert_contains(e.msg, "unknown chart kind 'efficency' (did you mean "
                         "efficiency?)");
  dnn_plot_format f;
  assert_ok(dnn_plot_format_of("out/a.b/chart.png", &f, &e), &e);
  assert_int_equal(f, DNN_PLOT_PNG);
  assert_ok(dnn_plot_format_of("chart.SVG", &f, &e), &e);
  assert_int_equal(f, DNN_PLOT_SVG);
  assert_ok(dnn_plot_format_of("c.pdf", &f, &e), &e);
  assert_int_equal(f, DNN_PLOT_PDF);
  const char *bad[] = {"chart.jpg", "chart", "dir.png/chart", "chart."};
  for (size_t i = 0; i < 4; i++) {
    assert_int_equal(dnn_plot_format_of(bad[i], &f, &e), DNN_EINVAL);
    assert_contains(e.msg, "must end in .png, .svg or .pdf");
  }
  dnn_plot_params pp = dnn_plot_default_params(DNN_PLOT_BREAKDOWN);
  assert_int_equal(pp.kind, DNN_PLOT_BREAKDOWN);
  assert_close(pp.band, 0.1, 1e-12);
  assert_true(pp.font_pt > 8);
}

static dnn_plot *new_plot(dnn_plot_kind kind) {
  dnn_plot_params pp = dnn_plot_default_params(kind);
  snprintf(pp.title, sizeof pp.title, "ResNet \"50\" \\ test");
  dnn_plot *pl;
  dnn_error e;
  assert_ok(dnn_plot_alloc(&pp, &pl, &e), &e);
  return pl;
}

static void test_scaling_numbers(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  dnn_plot *pl = new_plot(DNN_PLOT_SCALING);
  dnn_error e;
  /* Added out of order: the data is sorted by devices. */
  dnn_prediction p32 = pred(32, 24817.3, 0.7113);
  dnn_prediction p2 = pred(2, 1893.71, 0.9431);
  dnn_prediction p8 = pred(8, 7012.9, 0.8719);
  assert_ok(dnn_plot_add_prediction(pl, "ring", "nodes=4", &p32, &e), &e);
  assert_ok(dnn_plot_add_prediction(pl, "ring", "nodes=1", &p2, &e), &e);
  assert_ok(dnn_plot_add_prediction(pl, "ring", "nodes=\"2\"", &p8, &e), &e);
  assert_int_equal(dnn_plot_points(pl), 3);
  dnn_plot_files f;
  assert_ok(dnn_plot_write(pl, test_join(dir, "chart.png"), &f, &e), &e);
  assert_string_equal(f.data, test_join(dir, "chart.dat"));
  assert_string_equal(f.script, test_join(dir, "chart.gp"));
  char *dat = test_read(f.data);
  double v[3 * 7];
  assert_int_equal(test_dat_rows(dat, v, 3, 7), 3);
  /* X1 = X(P1) / (P1 e1), from the 2-device configuration. */
  double x1 = 1893.71 / (2 * 0.9431);
  const double devices[] = {2, 8, 32}, thr[] = {1893.71, 7012.9, 24817.3};
  for (size_t i = 0; i < 3; i++) {
    assert_close(v[i * 7 + 0], devices[i], 1e-12);
    assert_close(v[i * 7 + 1], thr[i], 1e-8);
    assert_close(v[i * 7 + 2], thr[i] / x1, 1e-8);                    /* S */
    assert_close(v[i * 7 + 3], 100 * thr[i] / x1 / devices[i], 1e-8); /* E */
    assert_close(v[i * 7 + 4], x1 * devices[i], 1e-8); /* ideal */
    assert_close(v[i * 7 + 5], 1536.0 / thr[i], 1e-8);
  }
  assert_close(v[3], 94.31, 1e-8);       /* first point: the model's own */
  assert_contains(dat, "\"nodes='2'\""); /* quotes sanitised */
  char *gp = test_read(f.script);
  assert_contains(gp, "set terminal pngcairo size 1400,520");
  assert_contains(gp, "set output dir . \"chart.png\"");
  assert_contains(gp, "data = dir . \"chart.dat\"");
  assert_contains(gp, "set logscale x 2");
  assert_contains(gp, "title \"ResNet '50' / test\"");
  assert_contains(gp, "title \"ideal linear scaling\"");
  assert_contains(gp, "data index 0 using 1:3 with linespoints lt 1 "
                      "title \"ring\"");
  assert_contains(gp, "set ylabel \"throughput (samples/s)\"");
  assert_contains(gp, "set ylabel \"speedup over one device\"");
  dnn_free(dat);
  dnn_free(gp);

  /* A second series with another X1 draws one ideal line per series. */
  dnn_prediction q = pred(4, 2971.3, 0.9);
  assert_ok(dnn_plot_add_prediction(pl, "tree", "nodes=2", &q, &e), &e);
  assert_ok(dnn_plot_write(pl, test_join(dir, "chart.svg"), &f, &e), &e);
  gp = test_read(f.script);
  assert_contains(gp, "set terminal svg size");
  assert_contains(gp, "NaN with lines @ideal title \"ideal linear scaling\"");
  assert_contains(gp, "data index 1 using 1:5 with lines dt 2");
  dnn_free(gp);
  dnn_plot_free(pl);
  test_rmdir(dir);
}

static void test_efficiency_breakdown(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  dnn_error e;
  dnn_plot *pl = new_plot(DNN_PLOT_EFFICIENCY);
  dnn_prediction a = pred(1, 913.7, 1), b = pred(4, 3719.0, 1.02);
  assert_ok(dnn_plot_add_prediction(pl, "s", "1", &a, &e), &e);
  assert_ok(dnn_plot_add_prediction(pl, "s", "4", &b, &e), &e);
  dnn_plot_files f;
  assert_ok(dnn_plot_write(pl, test_join(dir, "e.pdf"), &f, &e), &e);
  char *gp = test_read(f.script);
  assert_contains(gp, "set terminal pdfcairo size");
  assert_contains(gp, "set ylabel \"parallel efficiency (%)\"");
  assert_contains(gp, "using 1:4 with linespoints");
  /* Superlinear: 3719 / 913.7 / 4 = 101.76 %, the axis goes above it. */
  assert_contains(gp, "set yrange [0:106.8");
  dnn_free(gp);
  dnn_plot_free(pl);

  pl = new_plot(DNN_PLOT_BREAKDOWN);
  dnn_prediction c = pred(8, 1536.0 / 0.0412, 0.8);
  c.breakdown.bubble_s = 0;
  assert_ok(dnn_plot_add_prediction(pl, "ring", "8", &c, &e), &e);
  assert_ok(dnn_plot_add_prediction(pl, "tree", "8", &c, &e), &e);
  assert_ok(dnn_plot_write(pl, test_join(dir, "b.png"), &f, &e), &e);
  char *dat = test_read(f.data);
  double v[2 * 8];
  assert_int_equal(test_dat_rows(dat + 0, v, 2, 1), 2);
  /* Rows start with a quoted label: parse the numbers after it. */
  const char *row = strstr(dat, "\"8\" ");
  assert_non_null(row);
  double fwd, bwd, comm, bubble, rec, opt, total;
  assert_int_equal(sscanf(row + 4, "%lf %lf %lf %lf %lf %lf %lf", &fwd, &bwd,
                          &comm, &bubble, &rec, &opt, &total),
                   7);
  assert_close(fwd, 0.3719 * 41.2, 1e-8); /* milliseconds */
  assert_close(bwd, 0.5113 * 41.2, 1e-8);
  assert_close(comm, 0.0871 * 41.2, 1e-8);
  assert_close(opt, 0.0297 * 41.2, 1e-8);
  assert_close(total, (0.3719 + 0.5113 + 0.0871 + 0.0297) * 41.2, 1e-8);
  assert_contains(dat, "times in ms");
  gp = test_read(f.script);
  assert_contains(gp, "set style histogram rowstacked");
  assert_contains(gp, "newhistogram \"tree\"");
  assert_contains(gp, "title \"exposed communication\"");
  assert_contains(gp, "set ylabel \"time per iteration (ms)\"");
  /* Components that are zero everywhere are left out of the legend. */
  assert_null(strstr(gp, "pipeline bubble"));
  assert_null(strstr(gp, "\"recompute\""));
  dnn_free(gp);
  dnn_free(dat);
  dnn_plot_free(pl);
  test_rmdir(dir);
}

static void test_validation_timeline(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  dnn_error e;
  dnn_plot *pl = new_plot(DNN_PLOT_VALIDATION);
  assert_ok(dnn_plot_add_measurement(pl, "dp", "r1", 0.4127, 0.3981, &e), &e);
  assert_int_equal(dnn_plot_add_measurement(pl, "dp", "r2", -1, 0.3, &e),
                   DNN_EINVAL);
  assert_contains(e.msg, "must be positive");
  assert_int_equal(dnn_plot_add_measurement(pl, "dp", "r2", 0.3, NAN, &e),
                   DNN_EINVAL);
  dnn_plot_files f;
  assert_ok(dnn_plot_write(pl, test_join(dir, "v.png"), &f, &e), &e);
  char *dat = test_read(f.data);
  double v[4];
  assert_int_equal(test_dat_rows(dat, v, 1, 3), 1);
  assert_close(v[0], 412.7, 1e-9);
  assert_close(v[1], 398.1, 1e-9);
  assert_close(v[2], 100 * (0.3981 - 0.4127) / 0.4127, 1e-5);
  char *gp = test_read(f.script);
  assert_contains(gp, "band = 0.1");
  assert_contains(gp, "x with lines");
  assert_contains(gp, "set size square");
  dnn_free(dat);
  dnn_free(gp);
  dnn_plot_free(pl);

  pl = new_plot(DNN_PLOT_TIMELINE);
  dnn_plot_span s = {"GPU 1", "compute", "forward", 0.0013, 0.0021};
  assert_ok(dnn_plot_add_span(pl, &s, &e), &e);
  dnn_plot_span t = {"GPU 0", "comm", "allreduce", 0.0031, 0.0007};
  assert_ok(dnn_plot_add_span(pl, &t, &e), &e);
  s.start_s = 0.0041;
  assert_ok(dnn_plot_add_span(pl, &s, &e), &e);
  dnn_plot_span bad = {"GPU 0", "comm", "x", -1e-3, 1e-3};
  assert_int_equal(dnn_plot_add_span(pl, &bad, &e), DNN_EINVAL);
  assert_contains(e.msg, "negative or non-finite");
  assert_int_equal(dnn_plot_points(pl), 3);
  assert_ok(dnn_plot_write(pl, test_join(dir, "t.png"), &f, &e), &e);
  dat = test_read(f.data);
  double r[3 * 3];
  assert_int_equal(test_dat_rows(dat, r, 3, 3), 3);
  /* Category blocks in first-use order; rows in first-span order. */
  assert_close(r[0], 0, 0);
  assert_close(r[1], 1.3, 1e-9);
  assert_close(r[2], 3.4, 1e-9);
  assert_close(r[3], 0, 0);
  assert_close(r[4], 4.1, 1e-9);
  assert_close(r[6], 1, 0);
  assert_close(r[7], 3.1, 1e-9);
  gp = test_read(f.script);
  assert_contains(gp, "set ytics scale 0 (\"GPU 1 · compute\" 0, "
                      "\"GPU 0 · comm\" 1)");
  assert_contains(gp, "with boxxyerror");
  assert_contains(gp, "set xlabel \"time (ms)\"");
  dnn_free(dat);
  dnn_free(gp);
  dnn_plot_free(pl);
  test_rmdir(dir);
}

static void test_write_errors(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  dnn_error e;
  dnn_plot *pl = new_plot(DNN_PLOT_SCALING);
  assert_int_equal(dnn_plot_write(pl, test_join(dir, "x.png"), NULL, &e),
                   DNN_EINVAL);
  assert_contains(e.msg, "nothing to plot");
  dnn_prediction p = pred(2, 1000, 0.9);
  assert_ok(dnn_plot_add_prediction(pl, "s", "2", &p, &e), &e);
  assert_int_equal(dnn_plot_write(pl, test_join(dir, "x.jpg"), NULL, &e),
                   DNN_EINVAL);
  assert_contains(e.msg, "x.jpg: the chart's file name must end in .png");
  assert_int_equal(
      dnn_plot_write(pl, test_join(dir, "missing/x.png"), NULL, &e), DNN_EIO);
  assert_contains(e.msg, "missing/x.dat: cannot create");
  dnn_prediction q = pred(2, 1000, 0.9);
  q.iteration_s = INFINITY;
  assert_int_equal(dnn_plot_add_prediction(pl, "s", "3", &q, &e), DNN_EINVAL);
  assert_contains(e.msg, "no finite iteration time");
  dnn_plot_free(pl);
  dnn_plot_free(NULL);
  test_rmdir(dir);
}

static void test_render_missing(void **state) {
  (void)state;
  dnn_error e;
  assert_int_equal(dnn_plot_render("/nonexistent/gnuplot", "x.gp", &e),
                   DNN_EUNSUPPORTED);
  assert_contains(e.msg, "gnuplot not found at '/nonexistent/gnuplot'");
  assert_contains(e.msg, "gnuplot x.gp");
  assert_int_equal(dnn_plot_render("/tmp", "x.gp", &e), DNN_EUNSUPPORTED);
  /* A tool that fails: the exit status is reported. */
  if (access("/bin/false", X_OK) == 0) {
    assert_int_equal(dnn_plot_render("/bin/false", "x.gp", &e), DNN_ETOOLFAIL);
    assert_contains(e.msg, "gnuplot failed on x.gp (exit 1)");
  }
}

static const unsigned char png_magic[] = {0x89, 'P', 'N', 'G'};

static void test_render_gnuplot(void **state) {
  (void)state;
  char gnuplot[512];
  if (test_gnuplot(gnuplot, sizeof gnuplot) == NULL) {
    print_message("gnuplot is not on PATH: rendering not tested\n");
    skip();
  }
  const char *dir = test_tmpdir();
  dnn_error e;
  dnn_plot_files f;
  const dnn_plot_kind kinds[] = {DNN_PLOT_SCALING, DNN_PLOT_EFFICIENCY,
                                 DNN_PLOT_BREAKDOWN};
  const char *ext[] = {"png", "svg", "pdf"};
  for (size_t k = 0; k < 3; k++) {
    dnn_plot *pl = new_plot(kinds[k]);
    for (size_t i = 0; i < 5; i++) {
      dnn_prediction p =
          pred((size_t)1 << (2 * i), 913.7 * pow(3.3, (double)i), 0.97);
      char label[16];
      snprintf(label, sizeof label, "%zu", i);
      assert_ok(dnn_plot_add_prediction(pl, "ring", label, &p, &e), &e);
      p.throughput_samples_per_s *= 0.83;
      assert_ok(dnn_plot_add_prediction(pl, "tree", label, &p, &e), &e);
    }
    char name[32];
    snprintf(name, sizeof name, "k%zu.%s", k, ext[k]);
    assert_ok(dnn_plot_write(pl, test_join(dir, name), &f, &e), &e);
    assert_ok(dnn_plot_render(gnuplot, f.script, &e), &e);
    assert_true(test_file_size(f.image) > 1000);
    char head[256] = {0};
    FILE *fp = fopen(f.image, "rb");
    assert_non_null(fp);
    assert_true(fread(head, 1, sizeof head - 1, fp) > 16);
    fclose(fp);
    if (k == 0)
      assert_memory_equal(head, png_magic, 4);
    else if (k == 1)
      assert_contains(head, "<svg");
    else
      assert_memory_equal(head, "%PDF", 4);
    dnn_plot_free(pl);
  }

  /* A script gnuplot rejects: its message comes back. */
  test_write(test_join(dir, "bad.gp"), "set terminal pngcairo\nplot [\n");
  assert_int_equal(dnn_plot_render(gnuplot, test_join(dir, "bad.gp"), &e),
                   DNN_ETOOLFAIL);
  assert_contains(e.msg, "gnuplot failed on");
  assert_contains(e.msg, "bad.gp");
  test_rmdir(dir);
}

static void test_alloc_failures(void **state) {
  (void)state;
  const char *dir = test_tmpdir();
  test_alloc_state s;
  dnn_prediction p = pred(4, 3719, 0.9);
  for (long fail_at = 0;; fail_at++) {
    dnn_error e;
    dnn_plot *pl = NULL;
    test_alloc_install(&s, fail_at);
    dnn_plot_params pp = dnn_plot_default_params(DNN_PLOT_SCALING);
    dnn_status st = dnn_plot_alloc(&pp, &pl, &e);
    if (st == DNN_OK)
      st = dnn_plot_add_prediction(pl, "a", "1", &p, &e);
    if (st == DNN_OK)
      st = dnn_plot_add_prediction(pl, "b", "1", &p, &e);
    if (st == DNN_OK)
      st = dnn_plot_write(pl, test_join(dir, "a.png"), NULL, &e);
    test_alloc_restore();
    dnn_plot_free(pl);
    if (st == DNN_OK)
      break;
    assert_int_equal(st, DNN_ENOMEM);
    assert_true(fail_at < 200);
  }
  test_rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_scaling_numbers),
      cmocka_unit_test(test_efficiency_breakdown),
      cmocka_unit_test(test_validation_timeline),
      cmocka_unit_test(test_write_errors),
      cmocka_unit_test(test_render_missing),
      cmocka_unit_test(test_render_gnuplot),
      cmocka_unit_test(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
