/*
 * The built-in zoo: AlexNet, VGG-16 and ResNet-18/34/50/101/152 as
 * torchvision defines them (AlexNet: the single-GPU "one weird trick"
 * variant with 64-192-384-256-256 channels and AdaptiveAvgPool(6,6);
 * VGG-16: configuration D without batch norm; ResNets: v1.5, the stride of
 * a bottleneck on its 3x3 convolution, batch norm after every convolution,
 * no convolution bias), parameterised by image size and classes, each
 * ending in a softmax cross-entropy loss.
 *
 * Invariant: at 224x224 and 1000 classes the parameter counts equal
 * torchvision's exactly (AlexNet 61,100,840; VGG-16 138,357,544; ResNet-18
 * 11,689,512; ResNet-34 21,797,672; ResNet-50 25,557,032; ResNet-101
 * 44,549,160; ResNet-152 60,192,808) and the forward conv+fc MACs match its
 * documented GFLOPS (tests/model/test_zoo.c). Names follow torchvision's
 * module paths for ResNets ("layer2.0.conv1") and the classic Caffe names
 * for AlexNet and VGG ("conv1", "fc6"), which the µ-cuDNN benchmarks use.
 *
 * Adding a network means one builder and one line of ZOO_LIST; sequence
 * models read the sequence fields of dnn_zoo_params. The transformers
 * (gpt, bert-large) and the NCC / inst2vec networks are built by
 * model/zoo_seq.c through build_seq (docs/models.md §11-§12).
 */
#include "internal.h"

#include <string.h>

/* ---- Builder helpers ----------------------------------------------------- */

/* A chain builder: each layer reads the previous one unless told
 * otherwise; the first failure sticks and later adds do nothing. */
typedef struct zb {
  dnn_net *net;
  dnn_error *err;
  dnn_status st;
  char prev[64]; /* name of the last layer added */
} zb;

static void add(zb *b, dnn_layer_spec *sp, const char *name) {
  if (b->st)
    return;
  sp->name = name;
  if (sp->kind != DNN_LAYER_INPUT && sp->n_inputs == 0) {
    sp->inputs[0] = b->prev;
    sp->n_inputs = 1;
  }
  char copy[64];
  snprintf(copy, sizeof copy, "%s", name); /* name may alias b->prev */
  b->st = dnn_net_add(b->net, sp, NULL, b->err);
  if (b->st == DNN_OK)
    snprintf(b->prev, sizeof b->prev, "%s", copy);
}

static void image_input(zb *b, size_t image) {
  dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_INPUT);
  sp.input_shape = (dnn_shape){.rank = 3, .dim = {3, image, image}};
  add(b, &sp, "data");
}

static void conv(zb *b, const char *name, size_t out, size_t k, size_t stride,
                 size_t pad, bool bias) {
  dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_CONV2D);
  sp.p.conv.out_channels = out;
  sp.p.conv.kernel_h = sp.p.conv.kernel_w = k;
  sp.p.conv.stride_h = sp.p.conv.stride_w = stride;
  sp.p.conv.pad_h = sp.p.conv.pad_w = pad;
  sp.p.conv.bias = bias;
  add(b, &sp, name);
}

static void simple(zb *b, dnn_layer_kind kind, const char *name) {
  dnn_layer_spec sp = dnn_layer_default_spec(kind);
  add(b, &sp, name);
}

static void maxpool(zb *b, const char *name, size_t k, size_t stride,
                    size_t pad) {
  dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_MAXPOOL);
  sp.p.pool.kernel_h = sp.p.pool.kernel_w = k;
  sp.p.pool.stride_h = sp.p.pool.stride_w = stride;
  sp.p.pool.pad_h = sp.p.pool.pad_w = pad;
  add(b, &sp, name);
}

static void adaptive_pool(zb *b, const char *name, size_t out) {
  dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_ADAPTIVE_AVGPOOL);
  sp.p.pool.out_h = sp.p.pool.out_w = out;
  add(b, &sp, name);
}

static void fc(zb *b, const char *name, size_t out) {
  dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_FC);
  sp.p.fc.out_features = out;
  add(b, &sp, name);
}

static void dropout(zb *b, const char *name) {
  simple(b, DNN_LAYER_DROPOUT, name); /* p = 0.5, torchvision's default */
}

static void relu(zb *b, const char *name) {
  simple(b, DNN_LAYER_ACTIVATION, name); /* the default activation */
}

/* ---- AlexNet and VGG-16 -------------------------------------------------- */

static void build_alexnet(zb *b, const dnn_zoo_params *zp) {
  image_input(b, zp->image);
  conv(b, "conv1", 64, 11, 4, 2, true);
  relu(b, "relu1");
  maxpool(b, "pool1", 3, 2, 0);
  conv(b, "conv2", 192, 5, 1, 2, true);
  relu(b, "relu2");
  maxpool(b, "pool2", 3, 2, 0);
  conv(b, "conv3", 384, 3, 1, 1, true);
  relu(b, "relu3");
  conv(b, "conv4", 256, 3, 1, 1, true);
  relu(b, "relu4");
  conv(b, "conv5", 256, 3, 1, 1, true);
  relu(b, "relu5");
  maxpool(b, "pool5", 3, 2, 0);
  adaptive_pool(b, "avgpool", 6);
  simple(b, DNN_LAYER_FLATTEN, "flatten");
  dropout(b, "drop6");
  fc(b, "fc6", 4096);
  relu(b, "relu6");
  dropout(b, "drop7");
  fc(b, "fc7", 4096);
  relu(b, "relu7");
  fc(b, "fc8", zp->classes);
  simple(b, DNN_LAYER_SOFTMAX_XENT, "loss");
}

static void build_vgg16(zb *b, const dnn_zoo_params *zp) {
  static const size_t convs[5] = {2, 2, 3, 3, 3};
  image_input(b, zp->image);
  size_t ch = 64;
  char name[32];
  for (size_t s = 1; s <= 5; s++) {
    for (size_t j = 1; j <= convs[s - 1]; j++) {
      snprintf(name, sizeof name, "conv%zu_%zu", s, j);
      conv(b, name, ch, 3, 1, 1, true);
      snprintf(name, sizeof name, "relu%zu_%zu", s, j);
      relu(b, name);
    }
    snprintf(name, sizeof name, "pool%zu", s);
    maxpool(b, name, 2, 2, 0);
    if (ch < 512)
      ch *= 2;
  }
  adaptive_pool(b, "avgpool", 7);
  simple(b, DNN_LAYER_FLATTEN, "flatten");
  fc(b, "fc6", 4096);
  relu(b, "relu6");
  dropout(b, "drop6");
  fc(b, "fc7", 4096);
  relu(b, "relu7");
  dropout(b, "drop7");
  fc(b, "fc8", zp->classes);
  simple(b, DNN_LAYER_SOFTMAX_XENT, "loss");
}

/* ---- ResNets ------------------------------------------------------------- */

typedef struct resnet_cfg {
  bool bottleneck;
  size_t blocks[4];
} resnet_cfg;

/* conv (no bias) + batch norm, named PREFIX.convK / PREFIX.bnK. */
static void conv_bn(zb *b, const char *prefix, const char *cname,
                    const char *bname, size_t out, size_t k, size_t stride,
                    size_t pad) {
  char name[64];
  snprintf(name, sizeof name, "%s.%s", prefix, cname);
  conv(b, name, out, k, stride, pad, false);
  snprintf(name, sizeof name, "%s.%s", prefix, bname);
  simple(b, DNN_LAYER_BATCHNORM, name);
}

/* One residual block reading `in` (in_ch channels); returns its out_ch. */
static size_t resnet_block(zb *b, const char *prefix, const char *in,
                           size_t in_ch, size_t planes, size_t stride,
                           bool bottleneck) {
  char name[64], main_out[64], short_out[64];
  size_t out_ch = bottleneck ? 4 * planes : planes;
  if (bottleneck) {
    conv_bn(b, prefix, "conv1", "bn1", planes, 1, 1, 0);
    snprintf(name, sizeof name, "%s.relu1", prefix);
    relu(b, name);
    conv_bn(b, prefix, "conv2", "bn2", planes, 3, stride, 1);
    snprintf(name, sizeof name, "%s.relu2", prefix);
    relu(b, name);
    conv_bn(b, prefix, "conv3", "bn3", out_ch, 1, 1, 0);
  } else {
    conv_bn(b, prefix, "conv1", "bn1", planes, 3, stride, 1);
    snprintf(name, sizeof name, "%s.relu1", prefix);
    relu(b, name);
    conv_bn(b, prefix, "conv2", "bn2", planes, 3, 1, 1);
  }
  snprintf(main_out, sizeof main_out, "%s", b->prev);
  snprintf(short_out, sizeof short_out, "%s", in);
  if (stride != 1 || in_ch != out_ch) {
    snprintf(name, sizeof name, "%s.downsample.0", prefix);
    dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_CONV2D);
    sp.p.conv.out_channels = out_ch;
    sp.p.conv.stride_h = sp.p.conv.stride_w = stride;
    sp.p.conv.bias = false;
    sp.inputs[0] = in;
    sp.n_inputs = 1;
    add(b, &sp, name);
    snprintf(name, sizeof name, "%s.downsample.1", prefix);
    simple(b, DNN_LAYER_BATCHNORM, name);
    snprintf(short_out, sizeof short_out, "%s", b->prev);
  }
  dnn_layer_spec sp = dnn_layer_default_spec(DNN_LAYER_ADD);
  sp.inputs[0] = main_out;
  sp.inputs[1] = short_out;
  sp.n_inputs = 2;
  snprintf(name, sizeof name, "%s.add", prefix);
  add(b, &sp, name);
  snprintf(name, sizeof name, "%s.relu", prefix);
  relu(b, name);
  return out_ch;
}

static void build_resnet(zb *b, const dnn_zoo_params *zp,
                         const resnet_cfg *cfg) {
  image_input(b, zp->image);
  conv(b, "conv1", 64, 7, 2, 3, false);
  simple(b, DNN_LAYER_BATCHNORM, "bn1");
  relu(b, "relu");
  maxpool(b, "maxpool", 3, 2, 1);
  size_t ch = 64;
  for (size_t s = 0; s < 4; s++) {
    for (size_t j = 0; j < cfg->blocks[s]; j++) {
      char prefix[32], in[64];
      snprintf(prefix, sizeof prefix, "layer%zu.%zu", s + 1, j);
      snprintf(in, sizeof in, "%s", b->prev);
      size_t stride = s > 0 && j == 0 ? 2 : 1;
      ch = resnet_block(b, prefix, in, ch, (size_t)64 << s, stride,
                        cfg->bottleneck);
    }
  }
  adaptive_pool(b, "avgpool", 1);
  simple(b, DNN_LAYER_FLATTEN, "flatten");
  fc(b, "fc", zp->classes);
  simple(b, DNN_LAYER_SOFTMAX_XENT, "loss");
}

/* ---- Sequence models (model/zoo_seq.c picks the entry by the net's name) */

static void build_seq(zb *b, const dnn_zoo_params *zp) {
  b->st = dnn__zoo_seq_build(b->net, zp, b->err);
}

static const resnet_cfg rn18 = {false, {2, 2, 2, 2}};
static const resnet_cfg rn34 = {false, {3, 4, 6, 3}};
static const resnet_cfg rn50 = {true, {3, 4, 6, 3}};
static const resnet_cfg rn101 = {true, {3, 4, 23, 3}};
static const resnet_cfg rn152 = {true, {3, 8, 36, 3}};

static void build_resnet18(zb *b, const dnn_zoo_params *zp) {
  build_resnet(b, zp, &rn18);
}
static void build_resnet34(zb *b, const dnn_zoo_params *zp) {
  build_resnet(b, zp, &rn34);
}
static void build_resnet50(zb *b, const dnn_zoo_params *zp) {
  build_resnet(b, zp, &rn50);
}
static void build_resnet101(zb *b, const dnn_zoo_params *zp) {
  build_resnet(b, zp, &rn101);
}
static void build_resnet152(zb *b, const dnn_zoo_params *zp) {
  build_resnet(b, zp, &rn152);
}

/* ---- The table ----------------------------------------------------------- */

/* name, description, builder, needs an image */
/* ImageNet-1k, the classes of every CNN in the zoo unless asked otherwise. */
#define ZOO_IMAGENET_CLASSES 1000

#define ZOO_LIST(X)                                                            \
  X("alexnet", "AlexNet (torchvision), 61.1 M parameters", build_alexnet,      \
    true)                                                                      \
  X("vgg16", "VGG-16 without batch norm (torchvision), 138.4 M parameters",    \
    build_vgg16, true)                                                         \
  X("resnet18", "ResNet-18 (torchvision), 11.7 M parameters", build_resnet18,  \
    true)                                                                      \
  X("resnet34", "ResNet-34 (torchvision), 21.8 M parameters", build_resnet34,  \
    true)                                                                      \
  X("resnet50", "ResNet-50 v1.5 (torchvision), 25.6 M parameters",             \
    build_resnet50, true)                                                      \
  X("resnet101", "ResNet-101 v1.5 (torchvision), 44.5 M parameters",           \
    build_resnet101, true)                                                     \
  X("resnet152", "ResNet-152 v1.5 (torchvision), 60.2 M parameters",           \
    build_resnet152, true)                                                     \
  X("gpt",                                                                     \
    "GPT, pre-LN (layers, hidden, heads, seq, vocab, ffn_hidden); default "    \
    "12 x 768, 12 heads, seq 1024, vocab 51200: 125.2 M parameters",           \
    build_seq, false)                                                          \
  X("gpt-1.7b", "GPT 24 x 2304, 24 heads (Narayanan SC'21), 1.65 B",           \
    build_seq, false)                                                          \
  X("gpt-3.6b", "GPT 30 x 3072, 32 heads (Narayanan SC'21), 3.56 B",           \
    build_seq, false)                                                          \
  X("gpt-7.5b", "GPT 36 x 4096, 32 heads (Narayanan SC'21), 7.47 B",           \
    build_seq, false)                                                          \
  X("gpt-18b", "GPT 40 x 6144, 48 heads (Narayanan SC'21), 18.4 B", build_seq, \
    false)                                                                     \
  X("gpt-39b", "GPT 48 x 8192, 64 heads (Narayanan SC'21), 39.1 B", build_seq, \
    false)                                                                     \
  X("gpt-76b", "GPT 60 x 10240, 80 heads (Narayanan SC'21), 76.1 B",           \
    build_seq, false)                                                          \
  X("gpt-145b", "GPT 80 x 12288, 96 heads (Narayanan SC'21), 145.6 B",         \
    build_seq, false)                                                          \
  X("gpt-175b", "GPT-3 96 x 12288, 96 heads, seq 2048, 174.6 B", build_seq,    \
    false)                                                                     \
  X("gpt-310b", "GPT 96 x 16384, 128 heads (Narayanan SC'21), 310.1 B",        \
    build_seq, false)                                                          \
  X("gpt-530b", "GPT 105 x 20480, 128 heads (Narayanan SC'21), 529.6 B",       \
    build_seq, false)                                                          \
  X("gpt-1t", "GPT 128 x 25600, 160 heads (Narayanan SC'21), 1008.0 B",        \
    build_seq, false)                                                          \
  X("bert-large",                                                              \
    "BERT-large pre-training (24 x 1024, 16 heads, seq 512, MLM + NSP), "      \
    "336.2 M parameters",                                                      \
    build_seq, false)                                                          \
  X("inst2vec",                                                                \
    "inst2vec skip-gram (NCC), vocab 8565, dim 200, full softmax, 3.43 M "     \
    "parameters",                                                              \
    build_seq, false)                                                          \
  X("inst2vec-nce", "inst2vec skip-gram with NCE, 60 negatives", build_seq,    \
    false)                                                                     \
  X("ncc",                                                                     \
    "NCC classifyapp: frozen inst2vec, 2 x LSTM(200), BN, dense 32, 104 "      \
    "classes; 651,864 trainable parameters",                                   \
    build_seq, false)                                                          \
  X("ncc-devmap",                                                              \
    "NCC device mapping: 2 x LSTM(200) + 2 auxiliary inputs, 2 heads; "        \
    "648,968 trainable parameters",                                            \
    build_seq, false)

typedef void (*zoo_builder)(zb *b, const dnn_zoo_params *zp);

static const dnn_zoo_entry zoo_entries[] = {
#define X_(name, desc, fn, img) {name, desc},
    ZOO_LIST(X_)
#undef X_
};

static const char *const zoo_names[] = {
#define X_(name, desc, fn, img) name,
    ZOO_LIST(X_)
#undef X_
        NULL};

static const zoo_builder zoo_builders[] = {
#define X_(name, desc, fn, img) fn,
    ZOO_LIST(X_)
#undef X_
};

static const bool zoo_image[] = {
#define X_(name, desc, fn, img) img,
    ZOO_LIST(X_)
#undef X_
};

const dnn_zoo_entry *dnn_zoo_list(size_t *count) {
  *count = DNN_ARRAY_LEN(zoo_entries);
  return zoo_entries;
}

dnn_zoo_params dnn_zoo_default_params(void) {
  dnn_zoo_params zp;
  memset(&zp, 0, sizeof zp);
  zp.image = 224;
  zp.classes = 0; /* the entry's own: 1000 (ImageNet) for CNNs, 104 for ncc */
  return zp;
}

dnn_status dnn_zoo_build(const char *name, const dnn_zoo_params *params,
                         dnn_net **out, dnn_error *err) {
  *out = NULL;
  size_t k = 0;
  while (zoo_names[k] && strcmp(zoo_names[k], name) != 0)
    k++;
  if (zoo_names[k] == NULL) {
    const char *near = dnn_nearest_name(name, zoo_names);
    return DNN_FAIL(err, DNN_ENOTFOUND, "unknown zoo network '%s'%s%s%s", name,
                    near ? " (did you mean '" : "", near ? near : "",
                    near ? "'?)" : "; `dnnsim zoo` lists them");
  }
  dnn_zoo_params zp = *params;
  if (zp.classes == 0 && zoo_image[k])
    zp.classes = ZOO_IMAGENET_CLASSES;
  if (zoo_image[k] && params->image == 0)
    return DNN_FAIL(err, DNN_EINVAL, "%s: image size must be >= 1", name);

  zb b;
  memset(&b, 0, sizeof b);
  b.err = err;
  b.st = dnn_net_alloc(name, &b.net, err);
  if (b.st)
    return b.st;
  zoo_builders[k](&b, &zp);
  if (b.st) {
    if (b.st == DNN_EINVAL && zoo_image[k])
      dnn_error_prefix(err, "%s: image %zux%zu is too small", name,
                       params->image, params->image);
    else
      dnn_error_prefix(err, "%s", name);
    dnn_net_free(b.net);
    return b.st;
  }
  *out = b.net;
  return DNN_OK;
}
