/* Tests of scenarios/netfile.c: network INI files, any section order,
 * default inputs, image override, and every error with FILE:LINE. */
#include "test_util.h"

#include <string.h>

#include "dnnsim/scenario.h"

static dnn_status load(const char *text, size_t image, dnn_net **net,
                       dnn_error *e) {
  dnn_error_clear(e);
  return dnn_scn_load_net_string(text, "n.ini", image, net, e);
}

static void test_shipped_example(void **state) {
  (void)state;
  dnn_error e;
  dnn_net *net;
  assert_ok(dnn_scn_load_net(test_src_path("scenarios/networks/tiny-cnn.ini"),
                             0, &net, &e),
            &e);
  assert_string_equal(dnn_net_name(net), "tiny-cnn");
  assert_int_equal(dnn_net_layer_count(net), 12);
  size_t i;
  assert_ok(dnn_net_find(net, "res", &i), &e);
  const dnn_layer *res = dnn_net_layer(net, i);
  assert_int_equal(res->kind, DNN_LAYER_ADD);
  assert_int_equal(res->n_inputs, 2);
  assert_ok(dnn_net_find(net, "pool", &i), &e);
  const dnn_layer *pool = dnn_net_layer(net, i);
  assert_int_equal(pool->out.dim[0], 32);
  assert_int_equal(pool->out.dim[1], 16);
  assert_int_equal(pool->out.dim[2], 16);
  dnn_net_totals t;
  dnn_net_totals_get(net, 1, DNN_DTYPE_FP32, &t);
  /* conv1 864 + bn1 64 + conv2 9216 + bn2 64 + fc 330 */
  assert_int_equal(t.params, 864 + 64 + 9216 + 64 + 330);
  dnn_net_free(net);
}

static void test_order_and_image(void **state) {
  (void)state;
  dnn_error e;
  dnn_net *net;
  /* Sections out of order; conv reads 'in' explicitly. */
  const char *text = "[layer.fc]\ntype = fc\ninput = conv\nout_features = 7\n"
                     "[layer.conv]\ntype = conv2d\ninput = in\n"
                     "out_channels = 5\nkernel = 3x5\nstride = 2\n"
                     "padding = 1,2\n"
                     "[layer.in]\ntype = input\nshape = 3,13,13\n";
  assert_ok(load(text, 0, &net, &e), &e);
  const dnn_layer *conv = dnn_net_layer(net, 1);
  assert_string_equal(conv->name, "conv");
  assert_int_equal(conv->p.conv.kernel_h, 3);
  assert_int_equal(conv->p.conv.kernel_w, 5);
  assert_int_equal(conv->p.conv.pad_w, 2);
  assert_int_equal(conv->out.dim[1], 7); /* (13+2-3)/2+1 */
  assert_int_equal(conv->out.dim[2], 7); /* (13+4-5)/2+1 */
  dnn_net_free(net);
  assert_ok(load(text, 29, &net, &e), &e);
  assert_int_equal(dnn_net_layer(net, 0)->out.dim[1], 29);
  assert_int_equal(dnn_net_layer(net, 1)->out.dim[1], 15);
  dnn_net_free(net);
}

static void test_sequence_net(void **state) {
  (void)state;
  dnn_error e;
  dnn_net *net;
  const char *text = "[layer.tok]\ntype = input\ntokens = 97\n"
                     "[layer.emb]\ntype = embedding\nvocab = 8565\ndim = 200\n"
                     "[layer.lstm1]\ntype = lstm\nhidden = 200\n"
                     "return_sequences = true\n"
                     "[layer.lstm2]\ntype = lstm\nhidden = 200\n"
                     "[layer.out]\ntype = fc\nout_features = 104\n";
  assert_ok(load(text, 0, &net, &e), &e);
  assert_int_equal(dnn_net_layer(net, 1)->params, 8565 * 200);
  assert_int_equal(dnn_net_layer(net, 2)->params, 320800);
  assert_int_equal(dnn_net_layer(net, 3)->out.rank, 1);
  dnn_net_free(net);
}

static void test_errors(void **state) {
  (void)state;
  dnn_error e;
  dnn_net *net;
  struct {
    const char *text;
    dnn_status code;
    const char *msg;
  } cases[] = {
      {"[layer.a]\ntype = input\nshape = 3,8,8\n[layer.b]\ntype = conv\n",
       DNN_EPARSE, "n.ini:5: [layer.b] type: "},
      {"[layer.a]\ntype = input\nshape = 3,8,8\n[layer.b]\ntype = fc\n"
       "out_featurs = 3\n",
       DNN_EPARSE,
       "n.ini:6: [layer.b] out_featurs: unknown key (did you mean "
       "'out_features'?)"},
      {"[layer.a]\ntype = input\nshape = 3,8,8\n[layer.b]\ntype = fc\n"
       "kernel = 3\n",
       DNN_EPARSE, "n.ini:6: [layer.b] kernel: not a key of a fc layer"},
      {"[layer.a]\ntype = input\nshape = 3,8,8\n[layer.b]\ntype = fc\n"
       "out_features = many\n",
       DNN_EPARSE, "n.ini:6: [layer.b] out_features: expected a"},
      {"[layer.a]\ntype = input\n", DNN_EPARSE,
       "n.ini:1: [layer.a] shape: missing"},
      {"[layer.a]\nshape = 3\n", DNN_EPARSE,
       "n.ini:1: [layer.a] type: missing"},
      {"[layer.a]\ntype = input\nshape = 3,8,8\n[layer.b]\ntype = relu\n"
       "input = c\n",
       DNN_EINVAL, "n.ini:6: [layer.b] input: no layer named 'c'"},
      {"[layer.a]\ntype = input\nshape = 3,8,8\n[layer.b]\ntype = relu\n"
       "input = a1\n",
       DNN_EINVAL, "no layer named 'a1' (did you mean 'a'?)"},
      {"[layer.a]\ntype = input\nshape = 3,8,8\n[layer.b]\ntype = add\n"
       "input = a, c\n[layer.c]\ntype = relu\ninput = b\n",
       DNN_EINVAL, "the inputs form a cycle"},
      {"[layer.a]\ntype = input\nshape = 3,8,8\n[layer.a]\ntype = relu\n",
       DNN_EPARSE, "n.ini:4: [layer.a]: layer defined twice (first at line 1)"},
      {"[layers.a]\ntype = input\n", DNN_EPARSE,
       "n.ini:1: [layers.a]: unknown section"},
      {"[layer.a]\ntype = input\ntype = input\n", DNN_EPARSE,
       "n.ini:3: [layer.a] type: given twice"},
      {"[network]\nnam = x\n", DNN_EPARSE, "[network] nam: unknown key"},
      {"; only a comment\n", DNN_EPARSE, "no [layer.NAME] sections"},
      {"[layer.a]\ntype = input\nshape = 3,8,8\n[layer.b]\ntype = conv2d\n"
       "out_channels = 4\nkernel = 11\n",
       DNN_EINVAL, "n.ini:4: [layer.b]: "},
      {"[layer.a]\ntype = input\nshape = 3,8,8\n[layer.b]\ntype = dropout\n"
       "p = 1.5\n",
       DNN_ERANGE, "n.ini:6: [layer.b] p: p must be in [0, 1)"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    net = (dnn_net *)&e; /* must be reset to NULL on failure */
    dnn_status st = load(cases[i].text, 0, &net, &e);
    if (st != cases[i].code)
      fail_msg("case %zu: got %s (%s), want %s", i, dnn_status_name(st), e.msg,
               dnn_status_name(cases[i].code));
    assert_null(net);
    assert_contains(e.msg, cases[i].msg);
  }
}

static void test_alloc_failures(void **state) {
  (void)state;
  const char *text = "[layer.a]\ntype = input\nshape = 3,8,8\n[layer.b]\n"
                     "type = conv2d\nout_channels = 4\nkernel = 3\n"
                     "[layer.c]\ntype = relu\n[layer.d]\ntype = fc\n"
                     "out_features = 3\n";
  for (long k = 0; k < 200; k++) {
    test_alloc_state s;
    test_alloc_install(&s, k);
    dnn_net *net;
    dnn_error e;
    dnn_status st = dnn_scn_load_net_string(text, "n.ini", 0, &net, &e);
    test_alloc_restore();
    if (st == DNN_OK) {
      dnn_net_free(net);
      assert_true(k > 3);
      return; /* every earlier allocation failed cleanly */
    }
    assert_int_equal(st, DNN_ENOMEM);
    assert_null(net);
  }
  fail_msg("never succeeded");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shipped_example),
      cmocka_unit_test(test_order_and_image),
      cmocka_unit_test(test_sequence_net),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
