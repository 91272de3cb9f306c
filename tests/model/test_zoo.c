/* Tests of model/zoo.c: exact torchvision parameter counts, forward
 * conv+fc MACs within 2% of torchvision's documented GFLOPS, layer shapes
 * and names at a few places, parameterisation, errors for unknown names and
 * images too small, and allocation-failure injection in the builder. */
#include "test_fixtures.h"

#include "dnnsim/model.h"

static dnn_net *build(const char *name, size_t image, size_t classes) {
  dnn_zoo_params zp = dnn_zoo_default_params();
  zp.image = image;
  zp.classes = classes;
  dnn_net *net = test_zoo_net(name, &zp);
  assert_non_null(net);
  return net;
}

static void assert_out(const dnn_net *net, const char *name, size_t c, size_t h,
                       size_t w) {
  const dnn_layer *l = test_layer(net, name);
  assert_int_equal(l->out.rank, 3);
  if (l->out.dim[0] != c || l->out.dim[1] != h || l->out.dim[2] != w)
    fail_msg("%s: (%zu, %zu, %zu), want (%zu, %zu, %zu)", name, l->out.dim[0],
             l->out.dim[1], l->out.dim[2], c, h, w);
}

/* torchvision's parameter counts and GFLOPS (multiply-adds) at 224x224. */
static const struct {
  const char *name;
  size_t params;
  double gmacs;
} known[] = {
    {"alexnet", 61100840, 0.71},    {"vgg16", 138357544, 15.47},
    {"resnet18", 11689512, 1.81},   {"resnet34", 21797672, 3.66},
    {"resnet50", 25557032, 4.09},   {"resnet101", 44549160, 7.80},
    {"resnet152", 60192808, 11.51},
};

static void test_params_and_macs(void **state) {
  (void)state;
  for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
    dnn_net *net = build(known[k].name, 224, 1000);
    dnn_net_totals t;
    dnn_net_totals_get(net, 1, DNN_DTYPE_FP32, &t);
    if (t.params != known[k].params)
      fail_msg("%s: %zu parameters, want %zu", known[k].name, t.params,
               known[k].params);
    assert_close(t.fwd_macs_conv_fc / 1e9, known[k].gmacs, 0.02);
    /* Linear in the batch. */
    dnn_net_totals t8;
    dnn_net_totals_get(net, 8, DNN_DTYPE_FP32, &t8);
    assert_close(t8.fwd_macs_conv_fc, 8 * t.fwd_macs_conv_fc, 1e-12);
    assert_close(t8.flops[DNN_PASS_FWD], 8 * t.flops[DNN_PASS_FWD], 1e-12);
    assert_true(t.flops[DNN_PASS_BWD_WEIGHTS] > 0);
    assert_true(t.activation_bytes > 0);
    assert_string_equal(dnn_net_name(net), known[k].name);
    dnn_net_free(net);
  }
}

static void test_alexnet_shapes(void **state) {
  (void)state;
  dnn_net *net = build("alexnet", 224, 1000);
  assert_out(net, "data", 3, 224, 224);
  assert_out(net, "conv1", 64, 55, 55);
  assert_out(net, "pool1", 64, 27, 27);
  assert_out(net, "conv2", 192, 27, 27);
  assert_out(net, "pool2", 192, 13, 13);
  assert_out(net, "conv5", 256, 13, 13);
  assert_out(net, "pool5", 256, 6, 6);
  assert_out(net, "avgpool", 256, 6, 6);
  assert_int_equal(test_layer(net, "fc6")->params, 9216 * 4096 + 4096);
  assert_int_equal(test_layer(net, "fc8")->out.dim[0], 1000);
  /* The first convolution needs no input gradient; the rest do. */
  assert_false(test_layer(net, "conv1")->needs_input_grad);
  assert_true(test_layer(net, "conv2")->needs_input_grad);
  /* The last layer is the loss. */
  size_t n = dnn_net_layer_count(net);
  assert_int_equal(dnn_net_layer(net, n - 1)->kind, DNN_LAYER_SOFTMAX_XENT);
  dnn_net_free(net);
  /* Small images: the adaptive pool still gives 6x6 (it repeats). */
  net = build("alexnet", 63, 10);
  assert_out(net, "pool5", 256, 1, 1);
  assert_out(net, "avgpool", 256, 6, 6);
  dnn_net_totals t;
  dnn_net_totals_get(net, 1, DNN_DTYPE_FP32, &t);
  assert_int_equal(t.params, 61100840 - 4096 * 990 - 990);
  dnn_net_free(net);
}

static void test_vgg_and_resnet_shapes(void **state) {
  (void)state;
  dnn_net *net = build("vgg16", 224, 1000);
  assert_out(net, "conv1_1", 64, 224, 224);
  assert_out(net, "pool3", 256, 28, 28);
  assert_out(net, "conv5_3", 512, 14, 14);
  assert_out(net, "pool5", 512, 7, 7);
  assert_int_equal(test_layer(net, "fc6")->params, 25088 * 4096 + 4096);
  dnn_net_free(net);

  net = build("resnet50", 224, 1000);
  assert_out(net, "conv1", 64, 112, 112);
  assert_out(net, "maxpool", 64, 56, 56);
  assert_out(net, "layer1.0.conv3", 256, 56, 56);
  assert_out(net, "layer1.0.downsample.0", 256, 56, 56);
  /* v1.5: the stride sits on the 3x3 convolution. */
  assert_out(net, "layer2.0.conv1", 128, 56, 56);
  assert_out(net, "layer2.0.conv2", 128, 28, 28);
  assert_out(net, "layer4.2.conv3", 2048, 7, 7);
  assert_out(net, "layer4.2.relu", 2048, 7, 7);
  assert_int_equal(test_layer(net, "layer3.5.add")->n_inputs, 2);
  assert_int_equal(test_layer(net, "conv1")->params, 64 * 3 * 49);
  assert_int_equal(test_layer(net, "bn1")->params, 128);
  /* The max pool feeds the first block's conv1 and its downsample. */
  assert_int_equal(test_layer(net, "maxpool")->consumers, 2);
  assert_int_equal(test_layer(net, "fc")->in.dim[0], 2048);
  dnn_net_free(net);

  net = build("resnet18", 224, 1000);
  assert_out(net, "layer1.1.conv2", 64, 56, 56);
  assert_out(net, "layer3.0.downsample.0", 256, 14, 14);
  assert_int_equal(test_layer(net, "layer1.1.relu")->consumers, 2);
  size_t i;
  assert_int_equal(dnn_net_find(net, "layer1.0.downsample.0", &i),
                   DNN_ENOTFOUND);
  dnn_net_free(net);

  /* Classes change only the classifier. */
  net = build("resnet18", 224, 10);
  dnn_net_totals t;
  dnn_net_totals_get(net, 1, DNN_DTYPE_FP32, &t);
  assert_int_equal(t.params, 11689512 - 512 * 990 - 990);
  dnn_net_free(net);
  /* ResNets run on small images (CIFAR-sized). */
  net = build("resnet152", 32, 100);
  assert_out(net, "layer4.2.conv3", 2048, 1, 1);
  dnn_net_free(net);
}

static void test_errors(void **state) {
  (void)state;
  dnn_zoo_params zp = dnn_zoo_default_params();
  assert_int_equal(zp.image, 224);
  assert_int_equal(zp.classes, 0); /* each entry's own default */
  assert_int_equal(zp.seq_len, 0);
  dnn_net *net = (dnn_net *)&zp; /* must be reset to NULL on failure */
  dnn_error e;
  assert_int_equal(dnn_zoo_build("resnet5", &zp, &net, &e), DNN_ENOTFOUND);
  assert_null(net);
  assert_string_equal(
      e.msg, "unknown zoo network 'resnet5' (did you mean 'resnet50'?)");
  assert_int_equal(dnn_zoo_build("inception", &zp, &net, &e), DNN_ENOTFOUND);
  assert_contains(e.msg, "unknown zoo network 'inception'");

  zp.image = 62; /* AlexNet needs 63: pool5 would see 2x2 */
  assert_int_equal(dnn_zoo_build("alexnet", &zp, &net, &e), DNN_EINVAL);
  assert_null(net);
  assert_contains(e.msg, "alexnet: image 62x62 is too small: layer 'pool5' "
                         "(maxpool): kernel 3x3 is larger than the padded "
                         "input 2x2");
  zp.image = 31;
  assert_int_equal(dnn_zoo_build("vgg16", &zp, &net, &e), DNN_EINVAL);
  assert_contains(e.msg, "vgg16: image 31x31 is too small: layer 'pool5'");
  zp.image = 0;
  assert_int_equal(dnn_zoo_build("resnet18", &zp, &net, &e), DNN_EINVAL);
  assert_contains(e.msg, "resnet18: image size must be >= 1");
  zp.image = 224;
  zp.classes = 0; /* the ImageNet default */
  assert_ok(dnn_zoo_build("resnet18", &zp, &net, &e), &e);
  assert_int_equal(dnn_net_layer(net, dnn_net_layer_count(net) - 2)->out.dim[0],
                   1000);
  dnn_net_free(net);
}

static void test_list(void **state) {
  (void)state;
  size_t n = 0;
  const dnn_zoo_entry *z = dnn_zoo_list(&n);
  assert_int_equal(n, 24);
  /* The CNNs; the sequence models (entries 7 on) are tested in
   * test_transformer.c and test_ncc.c. */
  for (size_t i = 0; i < 7; i++) {
    assert_true(strlen(z[i].name) > 0);
    assert_true(strlen(z[i].description) > 10);
    dnn_net *net = build(z[i].name, 64, 7);
    assert_true(dnn_net_layer_count(net) > 10);
    dnn_net_free(net);
  }
  assert_string_equal(z[0].name, "alexnet");
}

/* Every allocation of the builder fails once (and all after it): the
 * result is DNN_ENOMEM, no network, no leak (ASan/LSan). */
static void test_alloc_failures(void **state) {
  (void)state;
  const char *names[] = {"resnet50", "alexnet"};
  for (size_t k = 0; k < 2; k++) {
    dnn_zoo_params zp = dnn_zoo_default_params();
    long fail_at = test_zoo_alloc_sweep(names[k], &zp, 10000);
    /* The struct, the first arena chunk, and for ResNet-50 more chunks. */
    assert_true(fail_at >= (k == 0 ? 4 : 2));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_params_and_macs),
      cmocka_unit_test(test_alexnet_shapes),
      cmocka_unit_test(test_vgg_and_resnet_shapes),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_list),
      cmocka_unit_test(test_alloc_failures),
  };
  return cmocka_run_group_tests_name("model/zoo", tests, NULL, NULL);
}
