/* Tests of scenarios/scenario.c, keys.c and ini.c: defaults, parsing,
 * every error path with its FILE:LINE, --set, round trips, validation. */
#include "test_util.h"

#include <string.h>

#include "dnnsim/scenario.h"

static dnn_scenario scn;

static dnn_status load(const char *text, dnn_error *e) {
  dnn_scn_init(&scn);
  dnn_error_clear(e);
  return dnn_scn_load_string(text, "s.ini", NULL, &scn, e);
}

static void test_defaults_parse(void **state) {
  (void)state;
  size_t n;
  const dnn_scn_key *keys = dnn_scn_keys(&n);
  assert_true(n > 40);
  dnn_scn_init(&scn);
  for (size_t i = 0; i < n; i++) {
    /* Every default is itself valid (init asserts too, in debug). */
    dnn_error e;
    assert_ok(dnn_scn_set_value(&scn, keys[i].section, keys[i].name,
                                keys[i].def, 1, &e),
              &e);
    assert_non_null(keys[i].help);
    assert_true(strlen(keys[i].help) > 10);
  }
  dnn_scn_init(&scn);
  assert_int_equal(scn.model.batch, 256);
  assert_int_equal(scn.model.image, 224);
  assert_int_equal(scn.model.dtype, DNN_DTYPE_FP32);
  assert_true(scn.parallelism.overlap);
  assert_close(scn.parallelism.bucket_MB, 25.0, 1e-12);
  assert_int_equal(scn.training.seed, 1);
}

static void test_load_values(void **state) {
  (void)state;
  dnn_error e;
  const char *text = "; a comment\n"
                     "[model]\n"
                     "name = resnet50   ; inline comment\n"
                     "batch = 1024\n"
                     "dtype = fp16\n"
                     "\n"
                     "[cluster]\n"
                     "nodes = 4\n"
                     "devices_per_node = 8\n"
                     "intra_link = nvlink2\n"
                     "inter_link = ib-edr\n"
                     "inter_bandwidth_GBps = 11.37\n"
                     "[parallelism]\n"
                     "allreduce = rabenseifner\n"
                     "overlap = no\n"
                     "[training]\n"
                     "sizes = 128:0.3, 224:0.4, 288:0.3\n"
                     "compression = topk:0.013\n"
                     "seed = 18446744073709551615\n";
  assert_ok(load(text, &e), &e);
  assert_string_equal(scn.model.name, "resnet50");
  assert_int_equal(scn.model.batch, 1024);
  assert_int_equal(scn.model.dtype, DNN_DTYPE_FP16);
  assert_int_equal(scn.cluster.nodes, 4);
  assert_close(scn.cluster.inter_bandwidth_GBps, 11.37, 1e-15);
  assert_int_equal(scn.parallelism.allreduce, 3); /* rabenseifner */
  assert_false(scn.parallelism.overlap);
  assert_int_equal(scn.training.n_sizes, 3);
  assert_int_equal(scn.training.sizes[2].size, 288);
  assert_close(scn.training.sizes[1].probability, 0.4, 1e-15);
  assert_int_equal(scn.training.compression, DNN_COMPRESSION_TOPK);
  assert_close(scn.training.compression_density, 0.013, 1e-15);
  assert_true(scn.training.seed == UINT64_MAX);
  assert_int_equal(dnn_scn_devices(&scn), 32);
  assert_int_equal(dnn_scn_data_degree(&scn), 32);
  char where[256];
  assert_string_equal(
      dnn_scn_key_origin(&scn, "model", "batch", where, sizeof where),
      "s.ini:4: [model] batch");
  assert_contains(
      dnn_scn_key_origin(&scn, "model", "image", where, sizeof where),
      "(default)");
}

/* Each error names file, line, section, key and what was expected. */
static void test_errors(void **state) {
  (void)state;
  dnn_error e;
  struct {
    const char *text;
    dnn_status code;
    const char *msg;
  } cases[] = {
      {"[model]\nbatsh = 3\n", DNN_EPARSE,
       "s.ini:2: [model] batsh: unknown key (did you mean 'batch'?)"},
      {"[modle]\nbatch = 3\n", DNN_EPARSE,
       "s.ini:1: [modle]: unknown section (did you mean [model]?)"},
      {"batch = 3\n", DNN_EPARSE, "s.ini:1: 'batch' appears before any"},
      {"[model]\n\nbatch = -3\n", DNN_EINVAL,
       "s.ini:3: [model] batch: expected a non-negative integer, got '-3'"},
      {"[model]\nbatch = 0\n", DNN_ERANGE,
       "s.ini:2: [model] batch: 0 is out of range [1, "},
      {"[model]\nbatch = 12abc\n", DNN_EINVAL, "got '12abc'"},
      {"[model]\nbatch = 99999999999999999999999\n", DNN_ERANGE, "too large"},
      {"[hardware]\nworkspace_MB = fast\n", DNN_EINVAL,
       "s.ini:2: [hardware] workspace_MB: expected a number, got 'fast'"},
      {"[hardware]\nworkspace_MB = 1e999\n", DNN_ERANGE, "not finite"},
      {"[model]\ndtype = fp15\n", DNN_EINVAL,
       "expected one of fp32|tf32|fp16|bf16, got 'fp15' (did you mean "
       "'fp16'?)"},
      {"[parallelism]\noverlap = maybe\n", DNN_EINVAL,
       "[parallelism] overlap: expected true or false"},
      {"[training]\nsizes = 128:0.5, 224:0.6\n", DNN_EINVAL,
       "[training] sizes: probabilities sum to 1.1, not 1"},
      {"[training]\nsizes = 128\n", DNN_EINVAL, "expected size:probability"},
      {"[training]\ncompression = topk:2\n", DNN_EINVAL,
       "topk density '2' must be in (0, 1]"},
      {"[training]\ncompression = zip\n", DNN_EINVAL,
       "expected none, fp16, topk:DENSITY or 1bit"},
      {"[parallelism]\npartition = 3,x\n", DNN_EINVAL,
       "[parallelism] partition: expected balanced"},
      {"[model]\nthis line has no equals sign\n", DNN_EPARSE,
       "s.ini:2: expected '[section]', 'key = value' or a comment"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    dnn_status st = load(cases[i].text, &e);
    if (st != cases[i].code)
      fail_msg("case %zu: got %s (%s), want %s", i, dnn_status_name(st), e.msg,
               dnn_status_name(cases[i].code));
    assert_contains(e.msg, cases[i].msg);
  }
  /* A line too long for inih's buffer is reported, not split. */
  char longline[1024];
  memset(longline, 'x', sizeof longline);
  memcpy(longline, "[model]\nname = ", 15);
  longline[sizeof longline - 1] = '\0';
  assert_int_equal(load(longline, &e), DNN_EPARSE);
  assert_contains(e.msg, "s.ini:2: line too long");
  /* A long comment is fine. */
  memset(longline, 'x', sizeof longline);
  memcpy(longline, "; ", 2);
  longline[sizeof longline - 1] = '\0';
  assert_ok(load(longline, &e), &e);
}

static void test_set_overrides(void **state) {
  (void)state;
  dnn_error e;
  assert_ok(load("[model]\nname = vgg16\n", &e), &e);
  assert_ok(dnn_scn_set(&scn, "model.batch=96", &e), &e);
  assert_int_equal(scn.model.batch, 96);
  char where[256];
  assert_string_equal(
      dnn_scn_key_origin(&scn, "model", "batch", where, sizeof where),
      "--set model.batch");
  assert_int_equal(dnn_scn_set(&scn, "model.batch", &e), DNN_EINVAL);
  assert_contains(e.msg, "expected section.key=value");
  assert_int_equal(dnn_scn_set(&scn, "model.bacth=3", &e), DNN_EPARSE);
  assert_contains(e.msg, "--set model.bacth: unknown key (did you mean "
                         "model.batch");
  assert_int_equal(dnn_scn_set(&scn, "clustr.nodes=3", &e), DNN_EPARSE);
  assert_contains(e.msg, "unknown section (did you mean cluster?)");
  assert_int_equal(dnn_scn_set(&scn, "cluster.nodes=0", &e), DNN_ERANGE);
  assert_contains(e.msg, "--set cluster.nodes=0: 0 is out of range");
}

static void test_round_trip(void **state) {
  (void)state;
  dnn_error e;
  assert_ok(load("[model]\nname = resnet18\nbatch = 48\ndtype = bf16\n"
                 "[cluster]\nnodes=3\ndevices_per_node=2\nintra_link=pcie4\n"
                 "inter_link=eth-25g\ninter_latency_us=7.19\n"
                 "[training]\nsizes = 160:0.25,224:0.75\noptimizer=adam\n"
                 "jitter=0.0731\n",
                 &e),
            &e);
  char *buf = NULL;
  size_t len = 0;
  FILE *fp = open_memstream(&buf, &len);
  assert_ok(dnn_scn_write(&scn, fp, false, &e), &e);
  fclose(fp);
  assert_contains(buf, "[model]\nname = resnet18\nbatch = 48\n");
  assert_null(strstr(buf, "image")); /* defaults left out */
  dnn_scenario first = scn;
  dnn_scn_init(&scn);
  assert_ok(dnn_scn_load_string(buf, "rt.ini", NULL, &scn, &e), &e);
  free(buf);
  size_t n;
  const dnn_scn_key *keys = dnn_scn_keys(&n);
  for (size_t i = 0; i < n; i++) {
    char a[1024], b[1024];
    dnn_scn_get_value(&first, keys[i].section, keys[i].name, a, sizeof a);
    dnn_scn_get_value(&scn, keys[i].section, keys[i].name, b, sizeof b);
    if (strcmp(a, b) != 0)
      fail_msg("[%s] %s: %s != %s", keys[i].section, keys[i].name, a, b);
  }
  assert_close(scn.training.sizes[0].probability, 0.25, 0);
  /* Writing all keys also round-trips. */
  fp = open_memstream(&buf, &len);
  assert_ok(dnn_scn_write(&scn, fp, true, &e), &e);
  fclose(fp);
  dnn_scn_init(&scn);
  assert_ok(dnn_scn_load_string(buf, "rt2.ini", NULL, &scn, &e), &e);
  free(buf);
  assert_close(scn.cluster.inter_latency_us, 7.19, 0);
  assert_close(scn.training.jitter, 0.0731, 0);
}

static void test_validate(void **state) {
  (void)state;
  dnn_error e;
  struct {
    const char *text;
    const char *msg;
  } cases[] = {
      {"[hardware]\nprofile = v100-sxm2\n",
       "[model] name (default): give exactly one of"},
      {"[model]\nname = a\nfile = b.ini\n[hardware]\nprofile = p\n",
       "s.ini:3: [model] file: give exactly one of"},
      {"[model]\nname = a\n", "[hardware] profile (default): missing"},
      {"[model]\nname=a\n[hardware]\nprofile=p\n[cluster]\nnodes=2\n"
       "devices_per_node=4\nintra_link=nvlink2\ninter_link=ib-hdr\n"
       "[parallelism]\ndata=3\n",
       "s.ini:11: [parallelism] data: data 3 x tensor 1 x pipeline 1 = 3, "
       "but the cluster has 8 devices"},
      {"[model]\nname=a\n[hardware]\nprofile=p\n[cluster]\nnodes=3\n"
       "inter_link=ib-hdr\n[parallelism]\npipeline=2\n",
       "s.ini:9: [parallelism] pipeline: tensor 1 x pipeline 2 = 2 does not "
       "divide the 3 devices"},
      {"[model]\nname=a\nbatch=100\n[hardware]\nprofile=p\n[cluster]\n"
       "devices_per_node=8\nintra_link=pcie4\n",
       "s.ini:3: [model] batch: batch 100 must be a multiple of the "
       "data-parallel degree 8"},
      {"[model]\nname=a\nbatch=64\n[hardware]\nprofile=p\n[cluster]\n"
       "devices_per_node=8\nintra_link=pcie4\n[parallelism]\nmicrobatches=3\n",
       "s.ini:10: [parallelism] microbatches: 3 micro-batches do not divide "
       "the local batch 8"},
      {"[model]\nname=a\n[hardware]\nprofile=p\n[cluster]\n"
       "devices_per_node=2\n",
       "[cluster] intra_link (default): missing; 2 devices per node need"},
      {"[model]\nname=a\n[hardware]\nprofile=p\n[cluster]\nnodes=2\n",
       "[cluster] inter_link (default): missing; 2 nodes need"},
      {"[model]\nname=a\n[hardware]\nprofile=p\n[parallelism]\n"
       "virtual_stages=2\n",
       "s.ini:6: [parallelism] virtual_stages: virtual stages need schedule "
       "= interleaved"},
      {"[model]\nname=a\n[hardware]\nprofile=p\n[training]\n"
       "consistency=ssp\n",
       "[training] staleness (default): consistency = ssp needs"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_ok(load(cases[i].text, &e), &e);
    dnn_status st = dnn_scn_validate(&scn, &e);
    if (st != DNN_EINVAL)
      fail_msg("case %zu: got %s, want EINVAL", i, dnn_status_name(st));
    assert_contains(e.msg, cases[i].msg);
  }
  assert_ok(load("[model]\nname=a\nbatch=512\n[hardware]\nprofile=p\n"
                 "[cluster]\nnodes=4\ndevices_per_node=8\nintra_link=nvlink2"
                 "\ninter_link=ib-hdr\n[parallelism]\ntensor=2\npipeline=4\n"
                 "microbatches=16\n",
                 &e),
            &e);
  assert_ok(dnn_scn_validate(&scn, &e), &e);
  assert_int_equal(dnn_scn_data_degree(&scn), 4);
}

static void test_paths_resolved(void **state) {
  (void)state;
  dnn_error e;
  dnn_scn_init(&scn);
  assert_ok(dnn_scn_load_string("[model]\nfile = nets/tiny.ini\n[hardware]\n"
                                "profile = v100-sxm2\n",
                                "x.ini", "/base/dir", &scn, &e),
            &e);
  assert_string_equal(scn.model.file, "/base/dir/nets/tiny.ini");
  assert_string_equal(scn.hardware.profile, "v100-sxm2"); /* a name */
  assert_ok(dnn_scn_set(&scn, "hardware.profile=my.ini", &e), &e);
  assert_string_equal(scn.hardware.profile, "/base/dir/my.ini");
  assert_ok(dnn_scn_set(&scn, "hardware.profile=/abs/p.ini", &e), &e);
  assert_string_equal(scn.hardware.profile, "/abs/p.ini");
}

static void test_network_file_image(void **state) {
  (void)state;
  dnn_error e;
  dnn_net *net;
  /* The file says 32x32; the scenario's default image (224) must not
   * replace it, an explicit one does. */
  dnn_scn_init(&scn);
  assert_ok(dnn_scn_load_string("[model]\nfile = networks/tiny-cnn.ini\n",
                                "x.ini", test_src_path("scenarios"), &scn, &e),
            &e);
  assert_ok(dnn_scn_build_net(&scn, 0, &net, &e), &e);
  assert_int_equal(dnn_net_layer(net, 0)->out.dim[1], 32);
  dnn_net_free(net);
  assert_ok(dnn_scn_build_net(&scn, 48, &net, &e), &e);
  assert_int_equal(dnn_net_layer(net, 0)->out.dim[1], 48);
  dnn_net_free(net);
  assert_ok(dnn_scn_set(&scn, "model.image=40", &e), &e);
  assert_ok(dnn_scn_build_net(&scn, 0, &net, &e), &e);
  assert_int_equal(dnn_net_layer(net, 0)->out.dim[1], 40);
  dnn_net_free(net);
}

static void test_load_file_errors(void **state) {
  (void)state;
  dnn_error e;
  dnn_scn_init(&scn);
  assert_int_equal(dnn_scn_load("/nonexistent/s.ini", &scn, &e), DNN_EIO);
  assert_contains(e.msg, "/nonexistent/s.ini: cannot open");
}

static void test_shipped_scenarios_load(void **state) {
  (void)state;
  const char *files[] = {"scenarios/default.ini", "scenarios/resnet50-v100.ini",
                         "scenarios/vgg16-a100.ini"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    dnn_error e;
    dnn_scn_init(&scn);
    assert_ok(dnn_scn_load(test_src_path(files[i]), &scn, &e), &e);
    assert_ok(dnn_scn_validate(&scn, &e), &e);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults_parse),
      cmocka_unit_test(test_load_values),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_set_overrides),
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_validate),
      cmocka_unit_test(test_paths_resolved),
      cmocka_unit_test(test_network_file_image),
      cmocka_unit_test(test_load_file_errors),
      cmocka_unit_test(test_shipped_scenarios_load),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
