/* Tests of model/names.c: enumeration names, sizes, opclasses and the
 * parsers with their "did you mean" suggestions. */
#include "test_util.h"

#include "dnnsim/model.h"

static void test_names_and_sizes(void **state) {
  (void)state;
  assert_string_equal(dnn_dtype_name(DNN_DTYPE_BF16), "bf16");
  assert_int_equal(dnn_dtype_bytes(DNN_DTYPE_FP32), 4);
  assert_int_equal(dnn_dtype_bytes(DNN_DTYPE_TF32), 4);
  assert_int_equal(dnn_dtype_bytes(DNN_DTYPE_FP16), 2);
  assert_int_equal(dnn_dtype_bytes(DNN_DTYPE_BF16), 2);
  assert_string_equal(dnn_pass_name(DNN_PASS_FWD), "fwd");
  assert_string_equal(dnn_pass_name(DNN_PASS_BWD_DATA), "bwd_data");
  assert_string_equal(dnn_pass_name(DNN_PASS_BWD_WEIGHTS), "bwd_weights");
  assert_string_equal(dnn_layer_kind_name(DNN_LAYER_SOFTMAX_XENT),
                      "softmax_xent");
  assert_string_equal(dnn_layer_kind_name(DNN_LAYER_ADAPTIVE_AVGPOOL),
                      "adaptive_avgpool");
  assert_string_equal(dnn_opclass_name(DNN_OP_OPTIMIZER), "optimizer");
  assert_string_equal(dnn_act_name(DNN_ACT_SIGMOID), "sigmoid");
  assert_string_equal(dnn_conv_algo_name(DNN_CONV_WINOGRAD_NONFUSED),
                      "winograd_nonfused");
  assert_string_equal(dnn_conv_algo_name(DNN_CONV_IMPLICIT_PRECOMP_GEMM),
                      "implicit_precomp_gemm");
  /* Out-of-range values never give NULL. */
  assert_string_equal(dnn_dtype_name((dnn_dtype)77), "unknown");
  assert_string_equal(dnn_layer_kind_name((dnn_layer_kind)77), "unknown");
  assert_string_equal(dnn_conv_algo_name(DNN_CONV_ALGO_COUNT), "unknown");
}

static void test_opclasses(void **state) {
  (void)state;
  assert_int_equal(dnn_layer_kind_opclass(DNN_LAYER_CONV2D), DNN_OP_CONV);
  assert_int_equal(dnn_layer_kind_opclass(DNN_LAYER_FC), DNN_OP_GEMM);
  assert_int_equal(dnn_layer_kind_opclass(DNN_LAYER_LSTM), DNN_OP_RNN);
  assert_int_equal(dnn_layer_kind_opclass(DNN_LAYER_BATCHNORM), DNN_OP_NORM);
  assert_int_equal(dnn_layer_kind_opclass(DNN_LAYER_MAXPOOL), DNN_OP_POOL);
  assert_int_equal(dnn_layer_kind_opclass(DNN_LAYER_EMBEDDING), DNN_OP_EMBED);
  assert_int_equal(dnn_layer_kind_opclass(DNN_LAYER_CONCAT), DNN_OP_COPY);
  assert_int_equal(dnn_layer_kind_opclass(DNN_LAYER_SOFTMAX_XENT),
                   DNN_OP_SOFTMAX);
}

/* Every name parses back to its value. */
static void test_round_trips(void **state) {
  (void)state;
  dnn_error e;
  for (int i = 0; i < DNN_DTYPE_COUNT; i++) {
    dnn_dtype v;
    assert_ok(dnn_dtype_parse(dnn_dtype_name((dnn_dtype)i), &v, &e), &e);
    assert_int_equal(v, i);
  }
  for (int i = 0; i < DNN_PASS_COUNT; i++) {
    dnn_pass v;
    assert_ok(dnn_pass_parse(dnn_pass_name((dnn_pass)i), &v, &e), &e);
    assert_int_equal(v, i);
  }
  for (int i = 0; i < DNN_LAYER_KIND_COUNT; i++) {
    dnn_layer_kind v;
    assert_ok(
        dnn_layer_kind_parse(dnn_layer_kind_name((dnn_layer_kind)i), &v, &e),
        &e);
    assert_int_equal(v, i);
  }
  for (int i = 0; i < DNN_OPCLASS_COUNT; i++) {
    dnn_opclass v;
    assert_ok(dnn_opclass_parse(dnn_opclass_name((dnn_opclass)i), &v, &e), &e);
    assert_int_equal(v, i);
  }
  for (int i = 0; i < DNN_ACT_COUNT; i++) {
    dnn_act v;
    assert_ok(dnn_act_parse(dnn_act_name((dnn_act)i), &v, &e), &e);
    assert_int_equal(v, i);
  }
  for (int i = 0; i < DNN_CONV_ALGO_COUNT; i++) {
    dnn_conv_algo v;
    assert_ok(dnn_conv_algo_parse(dnn_conv_algo_name((dnn_conv_algo)i), &v, &e),
              &e);
    assert_int_equal(v, i);
  }
}

static void test_parse_errors(void **state) {
  (void)state;
  dnn_error e;
  dnn_dtype t = DNN_DTYPE_FP16;
  assert_int_equal(dnn_dtype_parse("fp33", &t, &e), DNN_ENOTFOUND);
  assert_int_equal(e.code, DNN_ENOTFOUND);
  assert_string_equal(e.msg, "unknown dtype 'fp33' (did you mean 'fp32'?)");
  assert_int_equal(t, DNN_DTYPE_FP16); /* untouched */

  dnn_layer_kind k;
  assert_int_equal(dnn_layer_kind_parse("conv", &k, &e), DNN_ENOTFOUND);
  assert_contains(e.msg, "did you mean 'conv2d'?");
  assert_int_equal(dnn_layer_kind_parse("transformer", &k, &e), DNN_ENOTFOUND);
  assert_contains(e.msg, "unknown layer type 'transformer' (valid: input, "
                         "conv2d, maxpool");
  assert_contains(e.msg, "slice)");

  dnn_pass p;
  assert_int_equal(dnn_pass_parse("bwd_weight", &p, &e), DNN_ENOTFOUND);
  assert_contains(e.msg, "'bwd_weights'");
  dnn_opclass c;
  assert_int_equal(dnn_opclass_parse("gem", &c, &e), DNN_ENOTFOUND);
  assert_contains(e.msg, "unknown operation class 'gem' (did you mean "
                         "'gemm'?)");
  dnn_act a;
  assert_int_equal(dnn_act_parse("Relu", &a, &e), DNN_ENOTFOUND);
  assert_contains(e.msg, "'relu'");
  dnn_conv_algo g;
  assert_int_equal(dnn_conv_algo_parse("winograd_nonfuse", &g, &e),
                   DNN_ENOTFOUND);
  assert_contains(e.msg, "convolution algorithm 'winograd_nonfuse' (did you "
                         "mean 'winograd_nonfused'?)");
  /* NULL error records are fine. */
  assert_int_equal(dnn_conv_algo_parse("", &g, NULL), DNN_ENOTFOUND);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names_and_sizes),
      cmocka_unit_test(test_opclasses),
      cmocka_unit_test(test_round_trips),
      cmocka_unit_test(test_parse_errors),
  };
  return cmocka_run_group_tests_name("model/names", tests, NULL, NULL);
}
