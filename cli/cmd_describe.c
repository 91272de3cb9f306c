/*
 * dnnsim describe: a network's layers with their shapes, parameters,
 * FLOPs and activation memory, and (with --profile) each layer's predicted
 * time and chosen convolution algorithm, and the network's forward
 * (inference) and training time: compare --image sizes to see what a
 * smaller test size saves (mixed-size training, docs/models.md §16).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void help(void) {
  printf(
      "usage: dnnsim describe NETWORK [OPTIONS]\n"
      "\n"
      "NETWORK is a zoo name ('dnnsim models') or a network INI file.\n"
      "\n"
      "Options:\n"
      "  --batch N                 samples (default 1)\n"
      "  --image S                 input image side in pixels (default 224)\n"
      "  --classes K               output classes of zoo networks (default:\n"
      "                            the entry's own, 1000 for ImageNet)\n"
      "  --dtype fp32|tf32|fp16|bf16   element type (default fp32)\n"
      "  --profile P               add predicted per-layer times on\n"
      "                            hardware profile P (name or file)\n"
      "  --workspace-MB W          convolution workspace limit (64)\n"
      "  --tensor T                split every layer over a tensor group\n"
      "                            of T devices (needs --profile): Megatron\n"
      "                            roles for transformers, channel, spatial\n"
      "                            or batch splits for the others\n"
      "  --tensor-split S          auto|channel|spatial|batch (auto)\n"
      "  --sequence-parallel       Megatron sequence parallelism\n"
      "  --link L                  the tensor group's link (nvlink3)\n"
      "  -f, --format table|csv|json   output format (default table)\n"
      "  -h, --help                this help\n");
}

static void shape_str(const dnn_shape *s, size_t batch, char *buf, size_t n) {
  int k = snprintf(buf, n, "%zu", batch);
  for (size_t i = 0; i < s->rank && k > 0 && (size_t)k < n; i++)
    k += snprintf(buf + k, n - (size_t)k, "x%zu", s->dim[i]);
}

static bool parse_num(const char *s, size_t *out) {
  char *end;
  if (s[0] < '0' || s[0] > '9') /* strtoull would negate "-5" */
    return false;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (end == s || *end != '\0' || v == 0 || errno == ERANGE ||
      v > (unsigned long long)SIZE_MAX)
    return false;
  *out = (size_t)v;
  return true;
}

int cli_cmd_describe(int argc, char **argv) {
  const char *netname = NULL, *profile = NULL, *link = "nvlink3";
  size_t batch = 1, image = 224, classes = 0, tensor = 1;
  int split = DNN_TENSOR_SPLIT_AUTO;
  bool seq_par = false;
  double ws_MB = 64;
  dnn_dtype dtype = DNN_DTYPE_FP32;
  cli_format fmt = CLI_FORMAT_TABLE;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      help();
      return CLI_EXIT_OK;
    } else if (strcmp(a, "--batch") == 0 && v) {
      if (!parse_num(v, &batch))
        return cli_usage_error("describe", "--batch needs a positive integer");
      i++;
    } else if (strcmp(a, "--image") == 0 && v) {
      if (!parse_num(v, &image))
        return cli_usage_error("describe", "--image needs a positive integer");
      i++;
    } else if (strcmp(a, "--classes") == 0 && v) {
      if (!parse_num(v, &classes))
        return cli_usage_error("describe",
                               "--classes needs a positive integer");
      i++;
    } else if (strcmp(a, "--dtype") == 0 && v) {
      dnn_error e;
      if (dnn_dtype_parse(v, &dtype, &e))
        return cli_usage_error("describe", "--dtype: %s", e.msg);
      i++;
    } else if (strcmp(a, "--profile") == 0 && v) {
      profile = v;
      i++;
    } else if (strcmp(a, "--workspace-MB") == 0 && v) {
      char *end;
      ws_MB = strtod(v, &end);
      if (end == v || *end != '\0' || !(ws_MB >= 0 && ws_MB <= 1e9))
        return cli_usage_error("describe", "--workspace-MB needs a number "
                                           "in [0, 1e9]");
      i++;
    } else if (strcmp(a, "--tensor") == 0 && v) {
      if (!parse_num(v, &tensor) || tensor > 1024)
        return cli_usage_error("describe",
                               "--tensor needs an integer in [1, 1024]");
      i++;
    } else if (strcmp(a, "--tensor-split") == 0 && v) {
      static const char *const names[] = {"auto", "channel", "spatial",
                                          "batch"};
      split = -1;
      for (int k = 0; k < 4; k++)
        if (strcmp(v, names[k]) == 0)
          split = k;
      if (split < 0)
        return cli_usage_error("describe", "--tensor-split must be auto, "
                                           "channel, spatial or batch");
      i++;
    } else if (strcmp(a, "--sequence-parallel") == 0) {
      seq_par = true;
    } else if (strcmp(a, "--link") == 0 && v) {
      link = v;
      i++;
    } else if ((strcmp(a, "--format") == 0 || strcmp(a, "-f") == 0) && v) {
      if (!cli_parse_format(v, &fmt))
        return cli_usage_error("describe", "--format must be table, csv or "
                                           "json");
      i++;
    } else if (a[0] == '-') {
      return cli_usage_error("describe",
                             "unknown option '%s' (or missing "
                             "value)",
                             a);
    } else if (netname == NULL) {
      netname = a;
    } else {
      return cli_usage_error("describe", "one network expected");
    }
  }
  if (netname == NULL)
    return cli_usage_error("describe", "a network name or file is required");
  if (tensor > 1 && profile == NULL)
    return cli_usage_error("describe", "--tensor needs --profile");

  dnn_error err;
  dnn_error_clear(&err);
  dnn_net *net = NULL;
  dnn_hw *hw = NULL;
  dnn_status st;
  if (strchr(netname, '/') || strstr(netname, ".ini")) {
    st = dnn_scn_load_net(netname, image, &net, &err);
  } else {
    dnn_zoo_params zp = dnn_zoo_default_params();
    zp.image = image;
    if (classes)
      zp.classes = classes;
    st = dnn_zoo_build(netname, &zp, &net, &err);
  }
  if (st == DNN_OK && profile)
    st = dnn_hw_load(profile, &hw, &err);
  if (st) {
    dnn_net_free(net);
    return cli_fail(&err, st);
  }

  size_t n = dnn_net_layer_count(net);
  dnn_scenario scn;
  dnn_scn_init(&scn);
  scn.model.dtype = dtype;
  scn.hardware.workspace_MB = ws_MB;
  dnn_layer_time *times = NULL;
  if (hw) {
    times = calloc(n, sizeof *times);
    if (times == NULL) {
      dnn_net_free(net);
      dnn_hw_free(hw);
      fprintf(stderr, "dnnsim: out of memory\n");
      return CLI_EXIT_RUNTIME;
    }
    /* A tensor group: T devices of one node on the given link. */
    dnn_cluster cl;
    memset(&cl, 0, sizeof cl);
    cl.nodes = 1;
    cl.devices_per_node = tensor;
    cl.nics_per_node = 1;
    if (tensor > 1 && (st = dnn_hw_link_builtin(link, &cl.intra, &err))) {
      free(times);
      dnn_net_free(net);
      dnn_hw_free(hw);
      return cli_fail(&err, st);
    }
    scn.cluster.devices_per_node = tensor;
    scn.parallelism.tensor = tensor;
    scn.parallelism.tensor_split = split;
    scn.parallelism.sequence_parallel = seq_par;
    dnn_strat_input in = {&scn, net, hw, cl};
    dnn_strat_layer_times(&in, batch, times);
  }

  json_t *jl = fmt == CLI_FORMAT_JSON ? json_array() : NULL;
  char a[64], b[64], c[64], d[64], shp[64];
  if (fmt == CLI_FORMAT_TABLE) {
    printf("%s: batch %zu, image %zu, %s\n\n", dnn_net_name(net), batch, image,
           dnn_dtype_name(dtype));
    printf("%-22s %-16s %-18s %10s %10s %10s %11s", "layer", "kind", "output",
           "params", "fwd FLOP", "bwd FLOP", "activations");
    if (hw && tensor > 1)
      printf(" %-10s %10s %10s %10s", "split", "fwd time", "bwd time", "comm");
    else if (hw)
      printf(" %10s %10s", "fwd time", "bwd time");
    if (hw)
      printf("  %s", "conv algorithm (fwd/bwd data/bwd weights)");
    printf("\n");
  } else if (fmt == CLI_FORMAT_CSV) {
    printf("layer,kind,output,params,fwd_flops,bwd_data_flops,"
           "bwd_weights_flops,activation_bytes%s\n",
           hw ? ",fwd_s,bwd_data_s,bwd_weights_s,fwd_algo,workspace_bytes,"
                "bwd_data_algo,bwd_weights_algo,split,comm_s"
              : "");
  }
  for (size_t i = 0; i < n; i++) {
    const dnn_layer *l = dnn_net_layer(net, i);
    dnn_cost cf, cd, cw;
    dnn_layer_cost(net, i, DNN_PASS_FWD, batch, dtype, &cf);
    dnn_layer_cost(net, i, DNN_PASS_BWD_DATA, batch, dtype, &cd);
    dnn_layer_cost(net, i, DNN_PASS_BWD_WEIGHTS, batch, dtype, &cw);
    double act = dnn_layer_activation_bytes(net, i, batch, dtype);
    shape_str(&l->out, batch, shp, sizeof shp);
    const char *algo = "";
    if (times && times[i].algo[DNN_PASS_FWD] != DNN_CONV_ALGO_COUNT)
      algo = dnn_conv_algo_name(times[i].algo[DNN_PASS_FWD]);
    if (fmt == CLI_FORMAT_TABLE) {
      printf("%-22s %-16s %-18s %10s %10s %10s %11s", l->name,
             dnn_layer_kind_name(l->kind), shp,
             cli_fmt_count((double)l->params, a, sizeof a),
             cli_fmt_count(cf.flops, b, sizeof b),
             cli_fmt_count(cd.flops + cw.flops, c, sizeof c),
             cli_fmt_bytes(act, d, sizeof d));
      if (times) {
        const dnn_layer_time *lt = &times[i];
        if (tensor > 1)
          printf(" %-10s", dnn_split_name(lt->split));
        printf(" %10s %10s", cli_fmt_time(lt->time_s[0], a, sizeof a),
               cli_fmt_time(lt->time_s[1] + lt->time_s[2], b, sizeof b));
        if (tensor > 1)
          printf(" %10s",
                 cli_fmt_time(lt->comm_s[0] + lt->comm_s[1] + lt->comm_s[2], c,
                              sizeof c));
        printf("  %s", algo);
        for (int k = 1; algo[0] && k < DNN_PASS_COUNT; k++)
          printf("/%s", lt->algo[k] == DNN_CONV_ALGO_COUNT
                            ? "-"
                            : dnn_conv_algo_name(lt->algo[k]));
        if (lt->workspace_bytes > 0)
          printf(" (ws %s)", cli_fmt_bytes(lt->workspace_bytes, c, sizeof c));
      }
      printf("\n");
    } else if (fmt == CLI_FORMAT_CSV) {
      printf("%s,%s,%s,%zu,%.9g,%.9g,%.9g,%.9g", l->name,
             dnn_layer_kind_name(l->kind), shp, l->params, cf.flops, cd.flops,
             cw.flops, act);
      if (times) {
        const dnn_layer_time *lt = &times[i];
        printf(",%.9g,%.9g,%.9g,%s,%.9g,%s,%s,%s,%.9g", lt->time_s[0],
               lt->time_s[1], lt->time_s[2], algo, lt->workspace_bytes,
               lt->algo[1] == DNN_CONV_ALGO_COUNT
                   ? ""
                   : dnn_conv_algo_name(lt->algo[1]),
               lt->algo[2] == DNN_CONV_ALGO_COUNT
                   ? ""
                   : dnn_conv_algo_name(lt->algo[2]),
               dnn_split_name(lt->split),
               lt->comm_s[0] + lt->comm_s[1] + lt->comm_s[2]);
      }
      printf("\n");
    } else {
      json_t *o = json_object();
      json_object_set_new(o, "name", json_string(l->name));
      json_object_set_new(o, "kind", json_string(dnn_layer_kind_name(l->kind)));
      json_object_set_new(o, "output", json_string(shp));
      json_object_set_new(o, "params", json_integer((json_int_t)l->params));
      json_object_set_new(o, "fwd_flops", json_real(cf.flops));
      json_object_set_new(o, "bwd_data_flops", json_real(cd.flops));
      json_object_set_new(o, "bwd_weights_flops", json_real(cw.flops));
      json_object_set_new(o, "activation_bytes", json_real(act));
      if (times) {
        json_object_set_new(o, "fwd_s", json_real(times[i].time_s[0]));
        json_object_set_new(o, "bwd_data_s", json_real(times[i].time_s[1]));
        json_object_set_new(o, "bwd_weights_s", json_real(times[i].time_s[2]));
        if (algo[0])
          json_object_set_new(o, "fwd_algo", json_string(algo));
        for (int k = 1; k < DNN_PASS_COUNT; k++)
          if (times[i].algo[k] != DNN_CONV_ALGO_COUNT)
            json_object_set_new(
                o, k == 1 ? "bwd_data_algo" : "bwd_weights_algo",
                json_string(dnn_conv_algo_name(times[i].algo[k])));
        json_object_set_new(o, "split",
                            json_string(dnn_split_name(times[i].split)));
        json_object_set_new(o, "comm_s",
                            json_real(times[i].comm_s[0] + times[i].comm_s[1] +
                                      times[i].comm_s[2]));
        json_object_set_new(o, "workspace_bytes",
                            json_real(times[i].workspace_bytes));
      }
      json_array_append_new(jl, o);
    }
  }
  dnn_net_totals t;
  dnn_net_totals_get(net, batch, dtype, &t);
  /* The inference cost: the forward pass alone (compare --image sizes). */
  double fwd_s = 0, bwd_s = 0;
  for (size_t i = 0; times && i < n; i++) {
    fwd_s += times[i].time_s[DNN_PASS_FWD] + times[i].comm_s[DNN_PASS_FWD];
    bwd_s += times[i].time_s[DNN_PASS_BWD_DATA] +
             times[i].time_s[DNN_PASS_BWD_WEIGHTS] +
             times[i].comm_s[DNN_PASS_BWD_DATA] +
             times[i].comm_s[DNN_PASS_BWD_WEIGHTS];
  }
  int rc = CLI_EXIT_OK;
  if (fmt == CLI_FORMAT_TABLE) {
    printf("\ntotal: %zu layers, %zu parameters, forward %s FLOP (%s MAC in "
           "conv+fc), backward %s FLOP, activations %s\n",
           t.layers, t.params,
           cli_fmt_count(t.flops[DNN_PASS_FWD], a, sizeof a),
           cli_fmt_count(t.fwd_macs_conv_fc, b, sizeof b),
           cli_fmt_count(t.flops[DNN_PASS_BWD_DATA] +
                             t.flops[DNN_PASS_BWD_WEIGHTS],
                         c, sizeof c),
           cli_fmt_bytes(t.activation_bytes, d, sizeof d));
    if (times)
      printf("time: forward (inference) %s per batch of %zu, %s per sample; "
             "forward + backward %s\n",
             cli_fmt_time(fwd_s, a, sizeof a), batch,
             cli_fmt_time(fwd_s / (double)batch, b, sizeof b),
             cli_fmt_time(fwd_s + bwd_s, c, sizeof c));
  } else if (fmt == CLI_FORMAT_JSON) {
    json_t *o = json_object();
    json_object_set_new(o, "network", json_string(dnn_net_name(net)));
    json_object_set_new(o, "batch", json_integer((json_int_t)batch));
    json_object_set_new(o, "image", json_integer((json_int_t)image));
    json_object_set_new(o, "dtype", json_string(dnn_dtype_name(dtype)));
    json_object_set_new(o, "params", json_integer((json_int_t)t.params));
    json_object_set_new(o, "fwd_flops", json_real(t.flops[DNN_PASS_FWD]));
    json_object_set_new(
        o, "bwd_flops",
        json_real(t.flops[DNN_PASS_BWD_DATA] + t.flops[DNN_PASS_BWD_WEIGHTS]));
    json_object_set_new(o, "fwd_macs_conv_fc", json_real(t.fwd_macs_conv_fc));
    json_object_set_new(o, "activation_bytes", json_real(t.activation_bytes));
    if (times) {
      json_object_set_new(o, "fwd_s", json_real(fwd_s));
      json_object_set_new(o, "bwd_s", json_real(bwd_s));
    }
    json_object_set_new(o, "layers", jl);
    rc = cli_print_json(o);
  }
  free(times);
  dnn_hw_free(hw);
  dnn_net_free(net);
  return rc;
}
