/*
 * The built `dnnsim` on bad inputs: each case writes a scenario (and maybe
 * a network, profile or kernel file) into a fresh directory, runs the
 * command there and checks the exit code (cli/main.c help, docs/errors.md:
 * 1 runtime, 2 usage, 3 input, 4 unavailable) and that stderr names the
 * file, line, section and key with the expected message. The table is the
 * list docs/robustness.md reports; run this test with DNNSIM_BAD_LIST=1 in
 * the environment to print what each case prints.
 */
#include "test_util.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_run.h"

/* Lines: 1 [model] 2 name 3 batch 4 image 5 [hardware] 6 profile
 * 7 [cluster] 8 nodes 9 devices_per_node 10 intra_link 11 inter_link */
#define HEAD_MODEL "[model]\nname = resnet18\n"
#define HEAD_REST                                                              \
  "image = 64\n[hardware]\nprofile = v100-sxm2\n[cluster]\n"                   \
  "nodes = 4\ndevices_per_node = 8\nintra_link = nvlink2\n"                    \
  "inter_link = ib-edr\n"
#define BASE HEAD_MODEL "batch = 64\n" HEAD_REST

/* A network-file scenario: 1 [model] 2 file 3 batch 4 image 5 [hardware]
 * 6 profile. */
#define NET_SCN(profile)                                                       \
  "[model]\nfile = net.ini\nbatch = 8\nimage = 8\n[hardware]\n"                \
  "profile = " profile "\n"

/* VGG-16 at 2048 samples per device (119 GiB on a 32 GB V100). */
#define VGG_SCN                                                                \
  "[model]\nname = vgg16\nbatch = 65536\nimage = 224\n[hardware]\n"            \
  "profile = v100-sxm2\n[cluster]\nnodes = 4\ndevices_per_node = 8\n"          \
  "intra_link = nvlink2\ninter_link = ib-edr\n"

#define NET_HEAD "[layer.a]\ntype = input\nshape = 3,8,8\n"

#define PROFILE_HEAD                                                           \
  "[device]\nname = bad\nkind = gpu\n[compute]\npeak_fp32_TFLOPS = 15.7\n"     \
  "peak_tf32_TFLOPS = 0\npeak_fp16_TFLOPS = 125\npeak_bf16_TFLOPS = 0\n"       \
  "launch_overhead_us = 5\n[memory]\n"

typedef struct bad_case {
  const char *what;    /* the bad input, for the report */
  const char *scn;     /* bad.ini, or NULL */
  size_t scn_len;      /* bytes of scn to write (0: strlen) */
  const char *net;     /* net.ini, or NULL */
  const char *profile; /* prof.ini, or NULL */
  const char *kernels; /* k.csv, or NULL */
  const char *args[8]; /* after "dnnsim" */
  int code;            /* expected exit code */
  const char *msg[3];  /* expected in stderr */
} bad_case;

static const bad_case cases[] = {
    /* ---- Values out of range ------------------------------------------ */
    {"zero nodes",
     HEAD_MODEL "batch = 64\nimage = 64\n[hardware]\nprofile = "
                "v100-sxm2\n[cluster]\nnodes = 0\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:8: [cluster] nodes: 0 is out of range [1, 1048576]"}},
    {"zero devices per node",
     HEAD_MODEL "batch = 64\nimage = 64\n[hardware]\nprofile = v100-sxm2\n"
                "[cluster]\nnodes = 4\ndevices_per_node = 0\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:9: [cluster] devices_per_node: 0 is out of range [1, 1024]"}},
    {"zero batch",
     HEAD_MODEL "batch = 0\n" HEAD_REST,
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:3: [model] batch: 0 is out of range"}},
    {"batch above 1e12",
     HEAD_MODEL "batch = 1000000000001\n" HEAD_REST,
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:3: [model] batch: 1000000000001 is out of range"}},
    {"integer overflow",
     HEAD_MODEL "batch = 99999999999999999999999\n" HEAD_REST,
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:3: [model] batch: integer '99999999999999999999999' is too "
      "large"}},
    {"negative batch",
     HEAD_MODEL "batch = -5\n" HEAD_REST,
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:3: [model] batch: expected a non-negative integer, got '-5'"}},
    {"trailing garbage",
     HEAD_MODEL "batch = 12abc\n" HEAD_REST,
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"expected a non-negative integer, got '12abc'"}},
    {"image too small",
     HEAD_MODEL "batch = 64\nimage = 7\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:4: [model] image: 7 is out of range [8, 16384]"}},
    {"negative bandwidth",
     BASE "inter_bandwidth_GBps = -12.5\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:12: [cluster] inter_bandwidth_GBps: -12.5 is out of range "
      "[0, 1000000]"}},
    {"absurdly high bandwidth",
     BASE "inter_bandwidth_GBps = 1e300\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:12: [cluster] inter_bandwidth_GBps: 1e+300 is out of range"}},
    {"absurdly low bandwidth",
     BASE "inter_bandwidth_GBps = 1e-300\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:12: [cluster] inter_bandwidth_GBps: 1e-300 GB/s is below "
      "1e-06 GB/s"}},
    {"NaN latency",
     BASE "intra_latency_us = nan\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:12: [cluster] intra_latency_us: number 'nan' is not finite"}},
    {"infinite latency",
     BASE "intra_latency_us = inf\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:12: [cluster] intra_latency_us: number 'inf' is not finite"}},

    /* ---- Strategy against the cluster --------------------------------- */
    {"batch smaller than the data-parallel degree",
     HEAD_MODEL "batch = 16\n" HEAD_REST,
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:3: [model] batch: batch 16 must be a multiple of the "
      "data-parallel degree 32"}},
    {"degree product mismatch",
     BASE "[parallelism]\ndata = 3\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:13: [parallelism] data: data 3 x tensor 1 x pipeline 1 = 3, "
      "but the cluster has 32 devices"}},
    {"tensor degree not dividing the devices",
     BASE "[parallelism]\ntensor = 3\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:13: [parallelism] tensor: tensor 3 x pipeline 1 = 3 does not "
      "divide the 32 devices"}},
    {"micro-batches not dividing the local batch",
     BASE "[parallelism]\nmicrobatches = 3\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:13: [parallelism] microbatches: 3 micro-batches do not divide "
      "the local batch 2"}},
    {"no intra-node link",
     HEAD_MODEL "batch = 64\nimage = 64\n[hardware]\nprofile = v100-sxm2\n"
                "[cluster]\nnodes = 4\ndevices_per_node = 8\n"
                "inter_link = ib-edr\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini: [cluster] intra_link (default): missing; 8 devices per node "
      "need an intra-node link"}},
    {"ssp without a staleness bound",
     BASE "[training]\nconsistency = ssp\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini: [training] staleness (default): consistency = ssp needs a "
      "staleness bound >= 1"}},
    {"probabilities not summing to 1",
     BASE "[training]\nsizes = 64:0.5\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:13: [training] sizes: probabilities sum to 0.5, not 1"}},

    /* ---- Names --------------------------------------------------------- */
    {"unknown key",
     BASE "node = 4\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:12: [cluster] node: unknown key (did you mean 'nodes'?)"}},
    {"unknown section",
     BASE "[clustr]\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:12: [clustr]: unknown section (did you mean [cluster]?)"}},
    {"key before any section",
     "name = resnet18\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:1: 'name' appears before any [section] header"}},
    {"unknown zoo network",
     "[model]\nname = resnet5\n[hardware]\nprofile = v100-sxm2\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:2: [model] name: unknown zoo network 'resnet5' (did you mean "
      "'resnet50'?)"}},
    {"unknown profile",
     HEAD_MODEL "[hardware]\nprofile = v100\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:4: [hardware] profile: unknown hardware profile 'v100'"}},
    {"missing profile",
     HEAD_MODEL,
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini: [hardware] profile (default): missing"}},
    {"unknown link",
     HEAD_MODEL "batch = 64\nimage = 64\n[hardware]\n"
                "profile = v100-sxm2\n[cluster]\n"
                "devices_per_node = 2\nintra_link = nvlink9\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:9: [cluster] intra_link: unknown link 'nvlink9' (did you mean "
      "'nvlink1'?)"}},
    {"both a zoo name and a file",
     BASE "[model]\nfile = net.ini\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"give exactly one of [model] name"}},
    {"dtype the profile has no peak for",
     HEAD_MODEL "dtype = bf16\n[hardware]\nprofile = p100-sxm2\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:3: [model] dtype: bf16 has no peak in hardware profile "
      "'p100-sxm2'"}},

    /* ---- Syntax ---------------------------------------------------------- */
    {"a line that is not INI",
     BASE "garbage\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:12: expected '[section]', 'key = value' or a comment"}},
    {"a NUL byte",
     "[model]\0name = resnet18\n",
     24,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini: binary data (NUL byte) in file"}},
    {"a line over 197 characters",
     "[model]\nname = "
     "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr"
     "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr"
     "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:2: line too long (213 characters; at most 197)"}},
    {"a value that would not write back",
     BASE "[model]\nname =;x\n",
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:13: [model] name: value ';x' contains a ';' at its start"}},

    /* ---- Memory ---------------------------------------------------------- */
    {"a batch that does not fit",
     VGG_SCN,
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:3: [model] batch: does not fit:",
      "per device at 2048 samples per replica; reduce the batch or add "
      "devices"}},
    {"a network that fits on no device (weights alone)",
     NET_SCN("v100-sxm2"),
     0,
     "[layer.a]\ntype = input\nshape = 4096\n[layer.fc]\ntype = fc\n"
     "out_features = 2000000\n",
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:2: [model] file: does not fit: weights, gradients, optimizer "
      "state and reserve alone need"}},

    /* ---- Network files --------------------------------------------------- */
    {"a cycle",
     NET_SCN("v100-sxm2"),
     0,
     NET_HEAD "[layer.b]\ntype = conv2d\nout_channels = 4\nkernel = 3\n"
              "input = c\n[layer.c]\ntype = relu\ninput = b\n",
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:2: [model] file: net.ini:8: [layer.b] input: the inputs form "
      "a cycle"}},
    {"an unknown input",
     NET_SCN("v100-sxm2"),
     0,
     NET_HEAD "[layer.b]\ntype = conv2d\nout_channels = 4\nkernel = 3\n"
              "input = c9\n[layer.c1]\ntype = relu\n",
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"net.ini:8: [layer.b] input: no layer named 'c9' (did you mean 'c1'?)"}},
    {"a kernel larger than its input",
     NET_SCN("v100-sxm2"),
     0,
     NET_HEAD "[layer.b]\ntype = conv2d\nout_channels = 4\nkernel = 9\n",
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"net.ini:4: [layer.b]: layer 'b' (conv2d): kernel 9x9 (dilated 9x9) is "
      "larger than the padded input 8x8"}},
    {"a layer without a type",
     NET_SCN("v100-sxm2"),
     0,
     NET_HEAD "[layer.b]\nout_channels = 4\n",
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"net.ini:4: [layer.b] type: missing; every layer needs a type"}},
    {"an output of more than 2^64 elements",
     NET_SCN("v100-sxm2"),
     0,
     NET_HEAD "[layer.c]\ntype = conv2d\nout_channels = 4\nkernel = 5\n"
              "padding = 24294967296\n",
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"net.ini:4: [layer.c]: layer 'c' (conv2d): output shape too large"}},
    {"a network with nothing to compute",
     NET_SCN("v100-sxm2"),
     0,
     NET_HEAD "[layer.f]\ntype = flatten\n",
     NULL,
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:2: [model] file: network", "has no layer that computes"}},

    /* ---- Profiles and kernel tables ------------------------------------ */
    {"a negative memory bandwidth",
     NET_SCN("prof.ini"),
     0,
     NET_HEAD "[layer.f]\ntype = fc\nout_features = 3\n",
     PROFILE_HEAD "bandwidth_GBps = -1\ncapacity_GB = 32\n",
     NULL,
     {"predict", "bad.ini"},
     3,
     {"bad.ini:6: [hardware] profile: prof.ini:11: [memory] bandwidth_GBps: "
      "-1 is out of range (0, 1e+06]"}},
    {"an absurdly small peak",
     NET_SCN("prof.ini"),
     0,
     NET_HEAD "[layer.f]\ntype = fc\nout_features = 3\n",
     "[device]\nname = bad\nkind = gpu\n[compute]\npeak_fp32_TFLOPS = 1e-300\n",
     NULL,
     {"predict", "bad.ini"},
     3,
     {"prof.ini:5: [compute] peak_fp32_TFLOPS: 1e-300 is below 1e-06"}},
    {"a missing required profile key",
     NET_SCN("prof.ini"),
     0,
     NET_HEAD "[layer.f]\ntype = fc\nout_features = 3\n",
     PROFILE_HEAD "bandwidth_GBps = 900\n",
     NULL,
     {"predict", "bad.ini"},
     3,
     {"prof.ini:10: [memory] capacity_GB: required key missing"}},
    {"a measured time of 1e300 s",
     NET_SCN("prof.ini"),
     0,
     NET_HEAD "[layer.f]\ntype = fc\nout_features = 3\n",
     PROFILE_HEAD "bandwidth_GBps = 900\ncapacity_GB = 32\n[kernels]\n"
                  "file = k.csv\n",
     "signature,pass,algo,dtype,batch,time_s,workspace_bytes\n"
     "fc:192:o3:b1,fwd,-,fp32,8,1e300,0\n",
     {"predict", "bad.ini"},
     3,
     {"prof.ini:14: [kernels] file: k.csv:2: time_s must be finite and > 0"}},

    /* ---- Command line ---------------------------------------------------- */
    {"no scenario",
     NULL,
     0,
     NULL,
     NULL,
     NULL,
     {"predict"},
     2,
     {"dnnsim predict: a scenario file is required"}},
    {"an unknown option",
     BASE,
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini", "--frobnicate"},
     2,
     {"dnnsim predict: unknown option '--frobnicate'"}},
    {"an unknown command",
     NULL,
     0,
     NULL,
     NULL,
     NULL,
     {"predcit", "bad.ini"},
     2,
     {"dnnsim: unknown command 'predcit' (did you mean 'predict'?)"}},
    {"an unknown format",
     BASE,
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini", "--format", "yaml"},
     2,
     {"--format must be table, csv or json, not 'yaml'"}},
    {"a negative workspace",
     NULL,
     0,
     NULL,
     NULL,
     NULL,
     {"describe", "resnet18", "--workspace-MB", "-5", "--profile", "v100-sxm2"},
     2,
     {"dnnsim describe: --workspace-MB needs a number in [0, 1e9]"}},
    {"a negative batch for describe",
     NULL,
     0,
     NULL,
     NULL,
     NULL,
     {"describe", "resnet18", "--batch", "-1"},
     2,
     {"dnnsim describe: --batch needs a positive integer"}},
    {"--set without '='",
     BASE,
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini", "--set", "model.batch"},
     3,
     {"--set model.batch: expected section.key=value"}},
    {"--set of an unknown key",
     BASE,
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini", "--set", "model.bacth=4"},
     3,
     {"--set model.bacth: unknown key (did you mean model.batch?)"}},
    {"--set out of range",
     BASE,
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "bad.ini", "--set", "cluster.nodes=2000000"},
     3,
     {"--set cluster.nodes=2000000: 2000000 is out of range [1, 1048576]"}},
    {"a missing scenario file",
     NULL,
     0,
     NULL,
     NULL,
     NULL,
     {"predict", "missing.ini"},
     1,
     {"dnnsim: missing.ini: cannot open: No such file or directory"}},
};

static void write_in(const char *dir, const char *name, const char *text,
                     size_t len) {
  char p[256];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *fp = fopen(p, "wb");
  assert_non_null(fp);
  fwrite(text, 1, len ? len : strlen(text), fp);
  fclose(fp);
}

static void remove_in(const char *dir) {
  const char *names[] = {"bad.ini", "net.ini", "prof.ini", "k.csv"};
  for (size_t i = 0; i < 4; i++) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    remove(p);
  }
}

static void run_case(const bad_case *c, bool list) {
  char dir[] = "/tmp/dnnsim-bad-XXXXXX";
  assert_non_null(mkdtemp(dir));
  if (c->scn)
    write_in(dir, "bad.ini", c->scn, c->scn_len);
  if (c->net)
    write_in(dir, "net.ini", c->net, 0);
  if (c->profile)
    write_in(dir, "prof.ini", c->profile, 0);
  if (c->kernels)
    write_in(dir, "k.csv", c->kernels, 0);
  const char *argv[10] = {"dnnsim"};
  for (size_t i = 0; i < 8 && c->args[i]; i++)
    argv[i + 1] = c->args[i];
  cli_result r = cli_run(argv, dir);
  remove_in(dir);
  rmdir(dir);
  if (list) {
    char *nl = strchr(r.err, '\n');
    printf("- %s: exit %d: `%.*s`\n", c->what, r.code,
           nl ? (int)(nl - r.err) : (int)strlen(r.err), r.err);
  }
  if (r.code != c->code)
    fail_msg("%s: exit %d, expected %d; stderr: %s", c->what, r.code, c->code,
             r.err);
  for (size_t i = 0; i < 3 && c->msg[i]; i++)
    if (strstr(r.err, c->msg[i]) == NULL)
      fail_msg("%s: stderr\n%s\ndoes not contain\n%s", c->what, r.err,
               c->msg[i]);
  /* One "dnnsim" line for the error (usage errors add a hint line), and
   * never a crash or sanitizer report. */
  assert_true(strstr(r.err, "Sanitizer") == NULL);
  assert_true(strstr(r.err, "Assertion") == NULL);
  cli_result_free(&r);
}

static void test_bad_inputs(void **state) {
  (void)state;
  bool list = getenv("DNNSIM_BAD_LIST") != NULL;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    run_case(&cases[i], list);
}

/* A configuration that does not fit still prints its prediction (the
 * numbers explain why) before failing. */
static void test_not_fitting_prints_prediction(void **state) {
  (void)state;
  char dir[] = "/tmp/dnnsim-bad-XXXXXX";
  assert_non_null(mkdtemp(dir));
  write_in(dir, "bad.ini", VGG_SCN, 0);
  const char *argv[] = {"dnnsim", "predict", "bad.ini", "-f", "json", NULL};
  cli_result r = cli_run(argv, dir);
  remove_in(dir);
  rmdir(dir);
  assert_int_equal(r.code, 3);
  assert_contains(r.out, "\"fits_in_memory\": false");
  cli_result_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_inputs),
      cmocka_unit_test(test_not_fitting_prints_prediction),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
