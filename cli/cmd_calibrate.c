/*
 * dnnsim calibrate: measure this machine and fit profiles from it.
 *
 *   calibrate mpi     collectives under mpirun -> comm profile (alpha-beta
 *                     per algorithm and communicator size, LogGP, gamma)
 *   calibrate cpu     oneDNN kernels of a network -> hardware profile
 *   calibrate gpu     cuDNN/cuBLAS kernels (CUPTI times) -> hardware profile
 *   calibrate derive  a profile for another device from a calibrated one
 *   calibrate fit     refit profiles from raw measurement CSVs
 *   calibrate check   error of a profile against raw measurements
 *
 * Every run keeps its raw measurements next to the output (OUT.meas.csv).
 * While measuring, each row is appended to OUT.meas.csv.part at once, so
 * an interrupted run (SIGINT, a hung collective) loses nothing: --resume
 * skips what the .part file already holds. The profile and the final CSV
 * are written atomically, so the previous output survives any
 * interruption. Only this file prints; on MPI only rank 0 does.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* ------------------------------------------------------------------------ */
/* Signals and the watchdog                                                 */
/* ------------------------------------------------------------------------ */

static volatile sig_atomic_t interrupted;
static unsigned watchdog_s; /* re-armed at every measured point (0: off) */

static void on_sigint(int sig) {
  (void)sig;
  interrupted = 1;
}

static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] =
      "dnnsim: calibrate: no progress for the --timeout period (a collective "
      "or kernel hung, or a rank died); aborting. Measured rows are kept in "
      "the .part file: rerun with --resume.\n";
  ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)w;
  _exit(CLI_EXIT_RUNTIME);
}

static void signals_install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
}

/* Progress hook: the bar, the watchdog, and the stop request. */
static int progress(void *ud, size_t done, size_t total, const char *label) {
  (void)ud;
  if (watchdog_s)
    alarm(watchdog_s);
  char buf[64];
  snprintf(buf, sizeof buf, "%-40.40s", label);
  cli_progress(done, total, buf);
  return interrupted ? 1 : 0;
}

/* ------------------------------------------------------------------------ */
/* Option helpers                                                           */
/* ------------------------------------------------------------------------ */

#define MAX_LIST 64

static bool parse_size(const char *s, size_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (end == s || errno || v == 0)
    return false;
  if (*end == 'K' || *end == 'k')
    v <<= 10, end++;
  else if (*end == 'M')
    v <<= 20, end++;
  else if (*end == 'G')
    v <<= 30, end++;
  if (*end != '\0')
    return false;
  *out = (size_t)v;
  return true;
}

/* "1,8,32" (sizes may carry K, M, G). */
static bool parse_list(const char *s, size_t *out, size_t *n) {
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", s);
  *n = 0;
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
    if (*n >= MAX_LIST || !parse_size(tok, &out[*n]))
      return false;
    (*n)++;
  }
  return *n > 0;
}

/* OUT with ".ini" replaced by `suffix`. */
static void sibling(const char *out, const char *suffix, char *buf, size_t n) {
  size_t len = strlen(out);
  if (len >= 4 && strcmp(out + len - 4, ".ini") == 0)
    len -= 4;
  snprintf(buf, n, "%.*s%s", (int)len, out, suffix);
}

/* The command line, for provenance. */
static void command_line(int argc, char **argv, const char *prefix, char *buf,
                         size_t n) {
  size_t k = (size_t)snprintf(buf, n, "%s", prefix);
  for (int i = 0; i < argc && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, " %s", argv[i]);
}

static bool file_exists(const char *path) {
  return access(path, F_OK) == 0;
}

/* ------------------------------------------------------------------------ */
/* The .part file: raw rows appended as they are measured                   */
/* ------------------------------------------------------------------------ */

typedef struct part {
  FILE *fp;
  bool kernels; /* kernel rows, else collective rows */
  dnn_meas_coll_table *coll;
  dnn_meas_kernel_table *kern;
  size_t new_rows;
} part;

/*
 * Opens OUT.meas.csv.part: with `resume`, loads the rows it holds into the
 * tables and appends; otherwise starts it afresh.
 */
static dnn_status part_open(part *p, const char *path, bool resume,
                            dnn_error *err) {
  dnn_status st = DNN_OK;
  bool have = resume && file_exists(path);
  if (have) {
    st = p->kernels ? dnn_meas_kernel_csv_read(path, p->kern, err)
                    : dnn_meas_coll_csv_read(path, p->coll, err);
    if (st) {
      dnn_error_prefix(err, "--resume");
      return st;
    }
  }
  p->fp = fopen(path, have ? "a" : "w");
  if (p->fp == NULL)
    return DNN_FAIL(err, DNN_EIO, "cannot write %s: %s", path, strerror(errno));
  if (!have) {
    fprintf(p->fp,
            "# partial measurements of a dnnsim calibration "
            "(resume with --resume)\n%s\n",
            p->kernels ? dnn_meas_kernel_csv_header()
                       : dnn_meas_coll_csv_header());
    fflush(p->fp);
  }
  return DNN_OK;
}

/* Keeps one measured row (a collective's or a kernel's, the other NULL):
 * adds it to the table and appends it to the .part file at once, so an
 * interrupted calibration resumes after the last point measured. */
static dnn_status keep_row(part *p, const dnn_meas_coll_row *coll,
                           const dnn_meas_kernel_row *kern, dnn_error *err) {
  dnn_status st = coll ? dnn_meas_coll_table_add(p->coll, coll, err)
                       : dnn_meas_kernel_table_add(p->kern, kern, err);
  if (st)
    return st;
  if (coll)
    dnn_meas_coll_csv_write_row(p->fp, coll);
  else
    dnn_meas_kernel_csv_write_row(p->fp, kern);
  p->new_rows++;
  if (fflush(p->fp) != 0)
    return DNN_FAIL(err, DNN_EIO, "writing the .part file failed");
  return DNN_OK;
}

static dnn_status on_coll_row(void *ud, const dnn_meas_coll_row *row,
                              dnn_error *err) {
  return keep_row(ud, row, NULL, err);
}

static dnn_status on_kernel_row(void *ud, const dnn_meas_kernel_row *row,
                                dnn_error *err) {
  return keep_row(ud, NULL, row, err);
}

static void part_close(part *p) {
  if (p->fp)
    fclose(p->fp);
  p->fp = NULL;
}

/* ------------------------------------------------------------------------ */
/* Reports                                                                  */
/* ------------------------------------------------------------------------ */

static void print_comm(const dnn_comm_profile *cp) {
  const dnn_comm_profile_info *in = dnn_hw_comm_profile_info(cp);
  printf("%-15s %-24s %5s %4s %9s %10s %9s %7s %8s %s\n", "op", "algorithm",
         "ranks", "segs", "alpha_us", "beta_GBps", "r2", "med_rel", "max_rel",
         "flag");
  size_t poor = 0;
  for (size_t i = 0; i < dnn_hw_comm_profile_count(cp); i++) {
    const dnn_comm_fit *f = dnn_hw_comm_profile_get(cp, i);
    char a[32] = "-", b[32] = "-";
    if (f->has_link) {
      snprintf(a, sizeof a, "%.3g", f->alpha_s * 1e6);
      snprintf(b, sizeof b, "%.3g",
               f->beta_s_per_byte > 0 ? 1e-9 / f->beta_s_per_byte : 0.0);
    }
    printf("%-15s %-24s %5zu %4zu %9s %10s %9.5f %7.3f %8.3f %s\n",
           dnn_comm_op_name((dnn_comm_op)f->op), f->mpi_algorithm, f->ranks,
           f->n_segments, a, b, f->r2, f->median_rel_residual,
           f->max_rel_residual, f->poor ? "POOR" : "");
    poor += f->poor;
  }
  if (in->has_loggp)
    printf("LogGP: L = %.3g us, o = %.3g us, g = %.3g us, G = %.3g ns/B "
           "(%.3g GB/s), P = %zu\n",
           in->loggp_L_s * 1e6, in->loggp_o_s * 1e6, in->loggp_g_s * 1e6,
           in->loggp_G_s_per_byte * 1e9,
           in->loggp_G_s_per_byte > 0 ? 1e-9 / in->loggp_G_s_per_byte : 0.0,
           in->loggp_P);
  if (in->gamma_s_per_byte > 0)
    printf("gamma (MPI_Reduce_local, float sum): %.3g ns/B (%.3g GB/s)\n",
           in->gamma_s_per_byte * 1e9, 1e-9 / in->gamma_s_per_byte);
  size_t nodes = in->nodes ? in->nodes : 1;
  printf("measured on %zu node%s: prices groups %s (the links price the "
         "others)\n",
         nodes, nodes == 1 ? "" : "s",
         nodes == 1 ? "inside one node" : "that cross nodes");
  if (poor)
    printf("%zu fit(s) flagged POOR: their R^2 or relative residuals exceed "
           "the limits; see docs/calibration.md\n",
           poor);
}

static void print_kernel(const dnn_hw *hw, const dnn_calib_kernel_report *r) {
  const dnn_hw_params *p = dnn_hw_get(hw);
  printf("profile %s (%s): fp32 peak %.3g GFLOP/s", p->name, p->kind,
         p->peak_flops[DNN_DTYPE_FP32] / 1e9);
  if (p->peak_flops[DNN_DTYPE_BF16] > 0)
    printf(", bf16 %.3g GFLOP/s", p->peak_flops[DNN_DTYPE_BF16] / 1e9);
  printf(", bandwidth %.3g GB/s, launch overhead %.3g us\n",
         p->mem_bandwidth_Bps / 1e9, p->launch_overhead_s * 1e6);
  printf("%-10s %6s %9s %9s %12s %9s\n", "class", "rows", "eff_comp", "eff_mem",
         "n_half_GF", "med_rel");
  for (size_t c = 0; c < DNN_OPCLASS_COUNT; c++) {
    if (r->class_rows[c] == 0)
      continue;
    printf("%-10s %6zu %9.3f %9.3f %12.4g %9.3f%s\n",
           dnn_opclass_name((dnn_opclass)c), r->class_rows[c],
           p->eff_compute[c], p->eff_memory[c], p->half_flops[c] / 1e9,
           r->class_median_rel[c], r->sets_peak[c] ? "  (sets the peak)" : "");
  }
  if (r->peak_raised_flops > 0 || r->bandwidth_raised_Bps > 0)
    printf("(a class out-ran the benchmarks: peak and bandwidth are the "
           "fastest class's rates)\n");
  printf("fit: %zu kernels, median relative error %.3f, worst %.3f; %zu "
         "measured rows kept\n",
         r->rows, r->median_rel, r->max_rel, dnn_hw_kernel_count(hw));
}

/* ------------------------------------------------------------------------ */
/* calibrate mpi                                                            */
/* ------------------------------------------------------------------------ */

static void help_mpi(void) {
  printf(
      "usage: mpirun -np N dnnsim calibrate mpi [OPTIONS] -o PROFILE.ini\n"
      "\n"
      "Measures collectives (allreduce, reduce-scatter, allgather, "
      "broadcast,\nall-to-all), each OpenMPI algorithm as well as the "
      "default, on\ncommunicators of 2, 4, ... and N ranks, plus "
      "ping-pong/LogGP and\nMPI_Reduce_local, and fits a comm profile "
      "(alpha, beta, gamma per\nalgorithm and rank count). Raw data go to "
      "PROFILE.meas.csv.\n"
      "\n"
      "Options:\n"
      "  -o, --output FILE   comm profile to write (required)\n"
      "  --quick             coarse sweep (7 sizes up to 4 MiB, few "
      "repeats)\n"
      "  --sizes LIST        message sizes, e.g. 4,1K,64K,1M (K, M, G)\n"
      "  --max-size BYTES    drop sizes above this (default 256M)\n"
      "  --ranks LIST        communicator sizes (default 2,4,...,N)\n"
      "  --ops LIST          of allreduce,reduce_scatter,allgather,"
      "broadcast,\n"
      "                      alltoall,p2p,reduce (reduce: MPI_Reduce_local)\n"
      "  --default-only      only each operation's default algorithm\n"
      "  --pow2-fit          fit power-of-two sizes only (others held back)\n"
      "  --realtime          measure at real-time priority (SCHED_FIFO; root "
      "or\n"
      "                      CAP_SYS_NICE), undisturbed by other work\n"
      "  --resume            skip points already in PROFILE.meas.csv.part\n"
      "  --timeout S         abort when a point makes no progress for S "
      "seconds\n"
      "                      (default 300; 0 disables)\n"
      "  -h, --help          this help\n");
}

static bool parse_ops(const char *s, unsigned *ops) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", s);
  *ops = 0;
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
    dnn_comm_op op;
    if (dnn_comm_op_parse(tok, &op, NULL) != DNN_OK)
      return false;
    *ops |= DNN_MEAS_OP_BIT(op);
  }
  return *ops != 0;
}

static int cmd_mpi(int argc, char **argv) {
  const char *out = NULL;
  bool quick = false, resume = false, default_only = false, pow2 = false;
  bool realtime = false;
  size_t sizes[MAX_LIST], n_sizes = 0, ranks[MAX_LIST], n_ranks = 0;
  size_t max_size = (size_t)256 << 20;
  unsigned ops = 0;
  watchdog_s = 300;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      help_mpi();
      return CLI_EXIT_OK;
    } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && v) {
      out = v;
      i++;
    } else if (strcmp(a, "--quick") == 0) {
      quick = true;
    } else if (strcmp(a, "--resume") == 0) {
      resume = true;
    } else if (strcmp(a, "--default-only") == 0) {
      default_only = true;
    } else if (strcmp(a, "--pow2-fit") == 0) {
      pow2 = true;
    } else if (strcmp(a, "--realtime") == 0) {
      realtime = true;
    } else if (strcmp(a, "--sizes") == 0 && v) {
      if (!parse_list(v, sizes, &n_sizes))
        return cli_usage_error("calibrate mpi",
                               "--sizes needs sizes like 4,1K,1M");
      i++;
    } else if (strcmp(a, "--max-size") == 0 && v) {
      if (!parse_size(v, &max_size))
        return cli_usage_error("calibrate mpi", "--max-size needs a size");
      i++;
    } else if (strcmp(a, "--ranks") == 0 && v) {
      if (!parse_list(v, ranks, &n_ranks))
        return cli_usage_error("calibrate mpi",
                               "--ranks needs rank counts like 2,4");
      i++;
    } else if (strcmp(a, "--ops") == 0 && v) {
      if (!parse_ops(v, &ops))
        return cli_usage_error("calibrate mpi",
                               "--ops: unknown operation in '%s'", v);
      i++;
    } else if (strcmp(a, "--timeout") == 0 && v) {
      char *end;
      long t = strtol(v, &end, 10);
      if (*end || t < 0)
        return cli_usage_error("calibrate mpi", "--timeout needs seconds");
      watchdog_s = (unsigned)t;
      i++;
    } else {
      return cli_usage_error("calibrate mpi", "unknown option '%s'", a);
    }
  }
  if (out == NULL)
    return cli_usage_error("calibrate mpi", "-o PROFILE is required");

  /* coll_tuned reads this at MPI_Init; an mpirun --mca setting wins. */
  setenv("OMPI_MCA_coll_tuned_use_dynamic_rules", "1", 0);
  dnn_error err;
  dnn_error_clear(&err);
  dnn_meas_mpi *m = NULL;
  dnn_status st = dnn_meas_mpi_init(NULL, NULL, &m, &err);
  if (st)
    return cli_fail(&err, st);
  bool root = dnn_meas_mpi_rank(m) == 0;
  signals_install();

  part p;
  memset(&p, 0, sizeof p);
  char part_path[1100], raw_path[1100];
  sibling(out, ".meas.csv.part", part_path, sizeof part_path);
  sibling(out, ".meas.csv", raw_path, sizeof raw_path);
  if ((st = dnn_meas_coll_table_alloc(&p.coll, &err)))
    goto agree;
  if (root)
    st = part_open(&p, part_path, resume, &err);
agree:
  st = dnn_meas_mpi_agree(m, st, &err);
  if (st)
    goto done;

  dnn_meas_mpi_params mp = dnn_meas_mpi_default_params();
  if (quick)
    mp.repeat = dnn_meas_repeat_quick_params();
  size_t def_n = 0;
  const size_t *def = dnn_meas_mpi_default_sizes(quick, &def_n);
  if (n_sizes == 0) {
    for (size_t i = 0; i < def_n && n_sizes < MAX_LIST; i++)
      if (def[i] <= max_size)
        sizes[n_sizes++] = def[i];
  }
  mp.sizes = sizes;
  mp.n_sizes = n_sizes;
  if (n_ranks) {
    mp.ranks = ranks;
    mp.n_ranks = n_ranks;
  } else if (quick) {
    /* Quick: the largest power of two that fits, and all ranks. */
    size_t w = dnn_meas_mpi_size(m), r = 2;
    while (r * 2 <= w)
      r *= 2;
    ranks[n_ranks++] = r;
    if (r != w)
      ranks[n_ranks++] = w;
    mp.ranks = ranks;
    mp.n_ranks = n_ranks;
  }
  if (ops)
    mp.ops = ops;
  mp.per_algorithm = !default_only;
  if (root) {
    mp.progress = progress;
    mp.on_row = on_coll_row;
    mp.row_ud = &p;
    mp.done = p.coll;
  }
  if (root && !dnn_meas_mpi_can_force(m) && !default_only)
    fprintf(stderr, "dnnsim: note: this MPI cannot force coll_tuned algorithms "
                    "(not OpenMPI, or coll_tuned_use_dynamic_rules is off): "
                    "measuring the default algorithms only\n");
  if (root && watchdog_s)
    alarm(watchdog_s);
  double t0 = dnn_meas_now_s();
  /* Real-time priority only while measuring: MPI start-up and shutdown
   * need mpirun's daemons, which real-time ranks would starve. */
  struct sched_param rt = {.sched_priority = 10},
                     normal = {.sched_priority = 0};
  bool rt_on = realtime && sched_setscheduler(0, SCHED_FIFO, &rt) == 0;
  if (realtime && !rt_on && root)
    fprintf(stderr, "dnnsim: note: --realtime: cannot set SCHED_FIFO (%s)\n",
            strerror(errno));
  st = dnn_meas_mpi_run(m, &mp, &err);
  if (rt_on)
    sched_setscheduler(0, SCHED_OTHER, &normal);
  alarm(0);
  part_close(&p);
  if (st == DNN_OK && root) {
    char cmd[512], prov[DNN_HW_TEXT_MAX];
    command_line(argc, argv, "dnnsim calibrate", cmd, sizeof cmd);
    char device[160];
    snprintf(device, sizeof device, "%zu MPI ranks", dnn_meas_mpi_size(m));
    dnn_calib_provenance(device, dnn_meas_mpi_library(m), cmd, prov,
                         sizeof prov);
    dnn_comm_profile_info info;
    memset(&info, 0, sizeof info);
    dnn_meas_sysinfo si;
    dnn_meas_sysinfo_get(&si);
    snprintf(info.name, sizeof info.name, "%s", si.host);
    snprintf(info.source, sizeof info.source, "measured: %.160s",
             dnn_meas_mpi_library(m));
    snprintf(info.calibrated, sizeof info.calibrated, "%s", prov);
    info.nodes = dnn_meas_mpi_nodes(m);
    dnn_calib_params cp = dnn_calib_default_params();
    cp.pow2_only = pow2;
    dnn_comm_profile *prof = NULL;
    if ((st = dnn_meas_coll_csv_write(raw_path, p.coll, prov, &err)) ==
            DNN_OK &&
        (st = dnn_calib_comm_fit(p.coll, &cp, &info, &prof, &err)) == DNN_OK &&
        (st = dnn_hw_comm_profile_save(prof, out, &err)) == DNN_OK) {
      remove(part_path);
      print_comm(prof);
      printf("measured %zu points (%zu new) in %.1f s; wrote %s and %s\n",
             dnn_meas_coll_table_count(p.coll), p.new_rows,
             dnn_meas_now_s() - t0, out, raw_path);
    }
    dnn_hw_comm_profile_free(prof);
  } else if (st == DNN_EINTERRUPTED && root) {
    fprintf(stderr,
            "dnnsim: interrupted; %zu measured points are kept in %s: rerun "
            "with --resume to continue (%s is unchanged)\n",
            dnn_meas_coll_table_count(p.coll), part_path, out);
  }
  st = dnn_meas_mpi_agree(m, st, &err);
done:
  part_close(&p);
  dnn_meas_coll_table_free(p.coll);
  dnn_meas_mpi_finalize(m);
  if (st)
    return root ? cli_fail(&err, st) : cli_exit_code(st);
  return CLI_EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* calibrate cpu | gpu                                                      */
/* ------------------------------------------------------------------------ */

static void help_kernels(bool gpu) {
  printf(
      "usage: dnnsim calibrate %s [OPTIONS] -o PROFILE.ini\n"
      "\n"
      "Measures every layer of a network with %s (forward,\n"
      "backward-data and backward-weights; %s), after\n"
      "verifying each kernel against a C reference, and fits the roofline\n"
      "efficiencies of a hardware profile; the measured times are kept as\n"
      "the profile's kernel table (PROFILE.kernels.csv) and the raw data in\n"
      "PROFILE.meas.csv.\n"
      "\n"
      "Options:\n"
      "  -o, --output FILE   profile to write (required)\n"
      "  --network NETS      zoo networks or network INI files, comma-"
      "separated\n"
      "                      (default resnet18)\n"
      "  --image S           input image side (default 224; --quick: 32)\n"
      "  --batch LIST        batch sizes (default 1,8; --quick: 2)\n"
      "  --dtype T           fp32%s (default fp32)\n"
      "%s"
      "  --quick             small network input and few repeats\n"
      "  --resume            skip kernels already in PROFILE.meas.csv.part\n"
      "  --no-verify         skip the verification (not recommended)\n"
      "%s"
      "  -h, --help          this help\n",
      gpu ? "gpu" : "cpu", gpu ? "cuDNN and cuBLAS on GPU 0" : "oneDNN",
      gpu ? "every cuDNN algorithm, CUPTI kernel times" : "wall-clock times",
      gpu ? ", tf32, fp16, bf16" : ", bf16",
      gpu ? "  --base PROFILE      datasheet profile for the peak rates "
            "(default:\n"
            "                      measured with cuBLAS and a device copy)\n"
            "  --workspace-MB W    skip algorithms needing more (default "
            "1024)\n"
          : "  --threads N         oneDNN threads (default: all cores)\n",
      gpu ? ""
          : "  --in-situ           time each layer inside real training "
            "iterations\n"
            "                      (dnnsim validate's executor) instead of "
            "alone, and\n"
            "                      the optimizer update "
            "(docs/validation.md)\n");
}

/* A zoo network, or a network INI file (a path or a name ending .ini). */
static dnn_status build_net(const char *name, size_t image, dnn_net **out,
                            dnn_error *err) {
  size_t n = strlen(name);
  if (strchr(name, '/') || (n > 4 && strcmp(name + n - 4, ".ini") == 0))
    return dnn_scn_load_net(name, image, out, err);
  dnn_zoo_params zp = dnn_zoo_default_params();
  zp.image = image;
  return dnn_zoo_build(name, &zp, out, err);
}

static int cmd_kernels(int argc, char **argv, bool gpu) {
  const char *cmd = gpu ? "calibrate gpu" : "calibrate cpu";
  const char *out = NULL, *network = "resnet18", *base = NULL;
  bool quick = false, resume = false, verify = true, insitu = false;
  size_t image = 0, batches[MAX_LIST], n_batches = 0, threads = 0;
  double ws_MB = 1024;
  dnn_dtype dtype = DNN_DTYPE_FP32;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      help_kernels(gpu);
      return CLI_EXIT_OK;
    } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && v) {
      out = v;
      i++;
    } else if (strcmp(a, "--network") == 0 && v) {
      network = v;
      i++;
    } else if (strcmp(a, "--image") == 0 && v) {
      if (!parse_size(v, &image))
        return cli_usage_error(cmd, "--image needs a positive integer");
      i++;
    } else if (strcmp(a, "--batch") == 0 && v) {
      if (!parse_list(v, batches, &n_batches))
        return cli_usage_error(cmd, "--batch needs sizes like 1,8");
      i++;
    } else if (strcmp(a, "--dtype") == 0 && v) {
      dnn_error e;
      if (dnn_dtype_parse(v, &dtype, &e))
        return cli_usage_error(cmd, "--dtype: %s", e.msg);
      i++;
    } else if (!gpu && strcmp(a, "--threads") == 0 && v) {
      if (!parse_size(v, &threads))
        return cli_usage_error(cmd, "--threads needs a positive integer");
      i++;
    } else if (gpu && strcmp(a, "--base") == 0 && v) {
      base = v;
      i++;
    } else if (gpu && strcmp(a, "--workspace-MB") == 0 && v) {
      ws_MB = atof(v);
      if (!(ws_MB >= 0))
        return cli_usage_error(cmd, "--workspace-MB needs a number >= 0");
      i++;
    } else if (strcmp(a, "--quick") == 0) {
      quick = true;
    } else if (strcmp(a, "--resume") == 0) {
      resume = true;
    } else if (!gpu && strcmp(a, "--in-situ") == 0) {
      insitu = true;
    } else if (strcmp(a, "--no-verify") == 0) {
      verify = false;
    } else {
      return cli_usage_error(cmd, "unknown option '%s'", a);
    }
  }
  if (out == NULL)
    return cli_usage_error(cmd, "-o PROFILE is required");
  if (insitu && resume)
    return cli_usage_error(cmd, "--resume does not combine with --in-situ");
  dnn_error err;
  dnn_error_clear(&err);
  dnn_status st;
  if (gpu && (st = dnn_meas_gpu_available(&err)))
    return cli_fail(&err, st);
  if (image == 0)
    image = quick ? 32 : 224;
  if (n_batches == 0) {
    if (quick) {
      batches[n_batches++] = 2;
    } else {
      batches[n_batches++] = 1;
      batches[n_batches++] = 8;
    }
  }
  dnn_net *net = NULL;
  dnn_hw *basehw = NULL, *hw = NULL;
  char nets[512];
  snprintf(nets, sizeof nets, "%s", network);
  part p;
  memset(&p, 0, sizeof p);
  p.kernels = true;
  char part_path[1100], raw_path[1100];
  sibling(out, ".meas.csv.part", part_path, sizeof part_path);
  sibling(out, ".meas.csv", raw_path, sizeof raw_path);
  /* Every network must build before anything is measured. */
  for (char *tok = strtok(nets, ","); tok; tok = strtok(NULL, ",")) {
    if ((st = build_net(tok, image, &net, &err)))
      goto done;
    dnn_net_free(net);
    net = NULL;
  }
  snprintf(nets, sizeof nets, "%s", network);
  if ((st = dnn_meas_kernel_table_alloc(&p.kern, &err)) ||
      (st = part_open(&p, part_path, resume, &err)))
    goto done;
  signals_install();
  double t0 = dnn_meas_now_s();

  /* Peak rates: measured, or a datasheet profile's (GPU --base). */
  dnn_meas_peaks pk;
  memset(&pk, 0, sizeof pk);
  dnn_hw_params bp = dnn_hw_default_params();
  if (base) {
    if ((st = dnn_hw_load(base, &basehw, &err)))
      goto done;
    bp = *dnn_hw_get(basehw);
  }
  if (!base) {
    st = gpu ? dnn_meas_gpu_peaks(quick, &pk, &err)
             : dnn_meas_cpu_peaks(quick, threads, &pk, &err);
    if (st)
      goto done;
    for (size_t t = 0; t < DNN_DTYPE_COUNT; t++)
      bp.peak_flops[t] = pk.flops[t];
    bp.mem_bandwidth_Bps = pk.mem_bandwidth_Bps;
    bp.mem_capacity_bytes = pk.mem_capacity_bytes;
    bp.mem_reserved_bytes = 0;
    bp.launch_overhead_s = pk.launch_overhead_s;
    dnn_meas_sysinfo si;
    dnn_meas_sysinfo_get(&si);
    snprintf(bp.name, sizeof bp.name, "%s-%s", gpu ? "gpu" : "cpu", si.host);
    snprintf(bp.kind, sizeof bp.kind, "%s", gpu ? "gpu" : "cpu");
    snprintf(bp.source, sizeof bp.source,
             "measured: %s | %s | %s | peaks from a large GEMM and a "
             "streaming copy",
             pk.device, pk.library, pk.isa);
    for (char *c = bp.source; *c; c++)
      if (*c == ';')
        *c = ',';
    /* An INI line holds about 197 characters. */
    if (strlen(bp.source) > DNN_CALIB_PROVENANCE_MAX)
      bp.source[DNN_CALIB_PROVENANCE_MAX] = '\0';
  }
  if (!(bp.peak_flops[dtype] > 0)) {
    st = DNN_FAIL(&err, DNN_EUNSUPPORTED,
                  "this %s has no %s arithmetic to calibrate (its peak is 0)",
                  gpu ? "GPU" : "CPU", dnn_dtype_name(dtype));
    goto done;
  }

  dnn_meas_kernel_params kp = dnn_meas_kernel_default_params();
  kp.batches = batches;
  kp.n_batches = n_batches;
  kp.dtype = dtype;
  kp.threads = threads;
  if (quick)
    kp.repeat = dnn_meas_repeat_quick_params();
  kp.verify = verify;
  if (dtype != DNN_DTYPE_FP32) {
    kp.verify_rel_l2 = 2e-2;
    kp.verify_max_rel = 1e-1;
  } else if (gpu) {
    kp.verify_rel_l2 = 1e-3; /* FFT and Winograd round differently */
    kp.verify_max_rel = 1e-2;
  }
  kp.workspace_limit_bytes = ws_MB * 1024 * 1024;
  kp.progress = progress;
  kp.on_row = on_kernel_row;
  kp.row_ud = &p;
  kp.done = p.kern;
  /* In situ: the kernels are verified alone (quickly, rows dropped), then
   * timed inside training iterations; the largest network's SGD update
   * calibrates the optimizer class. */
  double upd_s = 0, upd_params = 0;
  for (char *tok = strtok(nets, ","); tok && st == DNN_OK;
       tok = strtok(NULL, ",")) {
    if ((st = build_net(tok, image, &net, &err)))
      break;
    if (insitu) {
      dnn_meas_kernel_params vp = kp;
      size_t one = 1;
      vp.batches = &one;
      vp.n_batches = 1;
      vp.repeat = dnn_meas_repeat_quick_params();
      vp.repeat.max_total_s = 0.05;
      vp.on_row = NULL;
      vp.done = NULL;
      dnn_meas_stats upd;
      dnn_net_totals tot;
      dnn_net_totals_get(net, 1, dtype, &tot);
      if ((st = dnn_meas_cpu_kernels(net, &vp, &err)) == DNN_OK &&
          (st = dnn_meas_cpu_insitu(net, &kp, &upd, &err)) == DNN_OK &&
          (double)tot.params > upd_params && upd.median_s > 0) {
        upd_params = (double)tot.params;
        upd_s = upd.median_s;
      }
    } else {
      st = gpu ? dnn_meas_gpu_kernels(net, &kp, &err)
               : dnn_meas_cpu_kernels(net, &kp, &err);
    }
    dnn_net_free(net);
    net = NULL;
  }
  part_close(&p);
  if (st == DNN_EINTERRUPTED) {
    fprintf(stderr,
            "dnnsim: interrupted; %zu measured kernels are kept in %s: rerun "
            "with --resume to continue (%s is unchanged)\n",
            dnn_meas_kernel_table_count(p.kern), part_path, out);
    goto done;
  }
  if (st)
    goto done;

  char cmdline[512];
  command_line(argc, argv, "dnnsim calibrate", cmdline, sizeof cmdline);
  /* Device and libraries are in `source`; date, host and command here. */
  dnn_calib_provenance(NULL, NULL, cmdline, bp.calibrated,
                       sizeof bp.calibrated);
  dnn_calib_params cp = dnn_calib_default_params();
  dnn_calib_kernel_report rep;
  if ((st = dnn_meas_kernel_csv_write(raw_path, p.kern, bp.calibrated, &err)) ||
      (st = dnn_calib_kernel_fit(p.kern, &bp, dtype, &cp, true, &hw, &rep,
                                 &err)))
    goto done;
  if (upd_s > 0) {
    /* The optimizer class from the measured update (SGD: read w and g,
     * write w, 12 bytes a parameter; the model's optimizer_cost), against
     * the fitted bandwidth; the refit keeps it (no kernel row has the
     * class) and is otherwise the same. */
    double bw = dnn_hw_get(hw)->mem_bandwidth_Bps;
    double eff = 12.0 * upd_params / (upd_s * bw);
    bp.eff_memory[DNN_OP_OPTIMIZER] = eff < 1 ? (eff > 1e-6 ? eff : 1e-6) : 1;
    dnn_hw_free(hw);
    hw = NULL;
    if ((st = dnn_calib_kernel_fit(p.kern, &bp, dtype, &cp, true, &hw, &rep,
                                   &err)))
      goto done;
  }
  if ((st = dnn_hw_save(hw, out, &err)))
    goto done;
  remove(part_path);
  print_kernel(hw, &rep);
  printf("measured %zu kernels (%zu new) of %s in %.1f s; wrote %s and %s\n",
         dnn_meas_kernel_table_count(p.kern), p.new_rows, network,
         dnn_meas_now_s() - t0, out, raw_path);
done:
  part_close(&p);
  dnn_meas_kernel_table_free(p.kern);
  dnn_hw_free(hw);
  dnn_hw_free(basehw);
  dnn_net_free(net);
  return st ? cli_fail(&err, st) : CLI_EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* calibrate derive                                                         */
/* ------------------------------------------------------------------------ */

static int cmd_derive(int argc, char **argv) {
  const char *from = NULL, *to = NULL, *out = NULL, *raw = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      printf("usage: dnnsim calibrate derive --from A.ini --to B -o OUT.ini\n"
             "\n"
             "A profile for device B (a built-in name or datasheet profile) "
             "from\nprofile A calibrated on another device: B's peak rates and "
             "bandwidth,\nA's fitted efficiencies, and A's measured kernel "
             "times scaled by the\nratio of the rate that bounds each kernel "
             "(compute or memory), after\nHabitat (USENIX ATC 2021); see "
             "docs/calibration.md for the limits.\n"
             "\n"
             "Options:\n"
             "  --from FILE   calibrated profile of device A\n"
             "  --to NAME     datasheet profile of device B (name or file)\n"
             "  --raw CSV     A's raw measurements (default: A.meas.csv next "
             "to A)\n"
             "  -o FILE       profile to write\n");
      return CLI_EXIT_OK;
    } else if (strcmp(a, "--from") == 0 && v) {
      from = v;
      i++;
    } else if (strcmp(a, "--to") == 0 && v) {
      to = v;
      i++;
    } else if (strcmp(a, "--raw") == 0 && v) {
      raw = v;
      i++;
    } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && v) {
      out = v;
      i++;
    } else {
      return cli_usage_error("calibrate derive", "unknown option '%s'", a);
    }
  }
  if (!from || !to || !out)
    return cli_usage_error("calibrate derive",
                           "--from, --to and -o are required");
  dnn_error err;
  dnn_error_clear(&err);
  dnn_hw *a = NULL, *b = NULL, *hw = NULL;
  dnn_meas_kernel_table *t = NULL;
  char raw_path[1100];
  if (raw == NULL) {
    sibling(from, ".meas.csv", raw_path, sizeof raw_path);
    if (file_exists(raw_path))
      raw = raw_path;
  }
  dnn_status st;
  if ((st = dnn_hw_load(from, &a, &err)) || (st = dnn_hw_load(to, &b, &err)))
    goto done;
  if (raw && ((st = dnn_meas_kernel_table_alloc(&t, &err)) ||
              (st = dnn_meas_kernel_csv_read(raw, t, &err))))
    goto done;
  char cmdline[512], prov[DNN_HW_TEXT_MAX];
  command_line(argc, argv, "dnnsim calibrate", cmdline, sizeof cmdline);
  dnn_calib_provenance("derived, not measured", NULL, cmdline, prov,
                       sizeof prov);
  dnn_calib_derive_report rep;
  if ((st = dnn_calib_derive(a, t, b, prov, &hw, &rep, &err)) ||
      (st = dnn_hw_save(hw, out, &err)))
    goto done;
  printf("derived %s for %s from %s: %zu kernel times scaled (%zu "
         "compute-bound, %zu memory-bound), %zu dropped%s\n",
         out, dnn_hw_get(b)->name, dnn_hw_get(a)->name, rep.rows_scaled,
         rep.compute_bound, rep.memory_bound, rep.rows_dropped,
         raw ? "" : " (no raw measurements: efficiencies only)");
done:
  dnn_hw_free(a);
  dnn_hw_free(b);
  dnn_hw_free(hw);
  dnn_meas_kernel_table_free(t);
  return st ? cli_fail(&err, st) : CLI_EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* calibrate fit | check                                                    */
/* ------------------------------------------------------------------------ */

static bool verbose_points;

static void print_point(void *ud, const char *what, double measured,
                        double predicted) {
  (void)ud;
  if (verbose_points)
    printf("  %-60s measured %10.4g s  predicted %10.4g s  %+7.1f%%\n", what,
           measured, predicted, 100 * (predicted - measured) / measured);
}

static void print_error(const char *what, const dnn_calib_error *e) {
  if (e->n == 0)
    printf("%-34s no points\n", what);
  else
    printf("%-34s %5zu points: median %.1f%%, mean %.1f%%, worst %.1f%%\n",
           what, e->n, 100 * e->median_rel, 100 * e->mean_rel,
           100 * e->max_rel);
}

static void help_fit_check(void) {
  printf("usage: dnnsim calibrate fit --csv RAW.csv [--csv ...] [--pow2-fit] "
         "[--nodes N] -o COMM.ini\n"
         "       dnnsim calibrate fit --kernels RAW.csv --base PROFILE -o "
         "OUT.ini\n"
         "       dnnsim calibrate check --comm-profile COMM.ini --csv RAW.csv\n"
         "       dnnsim calibrate check --profile P.ini --kernels RAW.csv "
         "[--model-only]\n"
         "\n"
         "fit refits profiles from raw measurement CSVs (several --csv merge,\n"
         "e.g. runs with different rank counts); check prints the relative\n"
         "error of a profile against measurements (--points lists each).\n"
         "  --dtype T   kernel rows of this dtype (default fp32)\n"
         "  --nodes N   the nodes the measured ranks ran on (default 1): a\n"
         "              one-node profile prices only groups inside a node\n");
}

static int cmd_fit_check(int argc, char **argv, bool check) {
  const char *cmd = check ? "calibrate check" : "calibrate fit";
  const char *csvs[16], *kernels = NULL, *base = NULL, *out = NULL;
  const char *comm = NULL, *profile = NULL;
  size_t n_csv = 0, nodes = 1;
  bool pow2 = false, model_only = false;
  dnn_dtype dtype = DNN_DTYPE_FP32;
  verbose_points = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      help_fit_check();
      return CLI_EXIT_OK;
    } else if (strcmp(a, "--csv") == 0 && v && n_csv < 16) {
      csvs[n_csv++] = v;
      i++;
    } else if (strcmp(a, "--kernels") == 0 && v) {
      kernels = v;
      i++;
    } else if (strcmp(a, "--base") == 0 && v) {
      base = v;
      i++;
    } else if (strcmp(a, "--comm-profile") == 0 && v) {
      comm = v;
      i++;
    } else if (strcmp(a, "--profile") == 0 && v) {
      profile = v;
      i++;
    } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && v) {
      out = v;
      i++;
    } else if (strcmp(a, "--dtype") == 0 && v) {
      dnn_error e;
      if (dnn_dtype_parse(v, &dtype, &e))
        return cli_usage_error(cmd, "--dtype: %s", e.msg);
      i++;
    } else if (strcmp(a, "--pow2-fit") == 0) {
      pow2 = true;
    } else if (strcmp(a, "--nodes") == 0 && v) {
      if (!parse_size(v, &nodes) || nodes < 1)
        return cli_usage_error(cmd,
                               "--nodes needs a positive integer, not "
                               "'%s'",
                               v);
      i++;
    } else if (strcmp(a, "--model-only") == 0) {
      model_only = true;
    } else if (strcmp(a, "--points") == 0) {
      verbose_points = true;
    } else {
      return cli_usage_error(cmd, "unknown option '%s'", a);
    }
  }
  bool coll = n_csv > 0;
  if (coll == (kernels != NULL))
    return cli_usage_error(cmd, "give either --csv (collectives) or "
                                "--kernels (kernels)");
  if (!check && !out)
    return cli_usage_error(cmd, "-o is required");
  if (!check && kernels && !base)
    return cli_usage_error(cmd, "--kernels needs --base PROFILE (peaks)");
  if (check && coll && !comm)
    return cli_usage_error(cmd, "--csv needs --comm-profile");
  if (check && kernels && !profile)
    return cli_usage_error(cmd, "--kernels needs --profile");
  dnn_error err;
  dnn_error_clear(&err);
  dnn_status st = DNN_OK;
  dnn_meas_coll_table *ct = NULL;
  dnn_meas_kernel_table *kt = NULL;
  dnn_comm_profile *cp = NULL;
  dnn_hw *hw = NULL, *bh = NULL;
  if (coll) {
    if ((st = dnn_meas_coll_table_alloc(&ct, &err)))
      goto done;
    for (size_t i = 0; i < n_csv; i++)
      if ((st = dnn_meas_coll_csv_read(csvs[i], ct, &err)))
        goto done;
  } else if ((st = dnn_meas_kernel_table_alloc(&kt, &err)) ||
             (st = dnn_meas_kernel_csv_read(kernels, kt, &err))) {
    goto done;
  }
  dnn_calib_params par = dnn_calib_default_params();
  par.pow2_only = pow2;
  if (check && coll) {
    dnn_calib_error ex, ot;
    if ((st = dnn_hw_comm_profile_load(comm, &cp, &err)) ||
        (st = dnn_calib_comm_evaluate(cp, ct, &ex, &ot, print_point, NULL,
                                      &err)))
      goto done;
    print_error("fitted rank counts:", &ex);
    print_error("other rank counts (scaled):", &ot);
  } else if (check) {
    dnn_calib_error e;
    if ((st = dnn_hw_load(profile, &hw, &err)) ||
        (st = dnn_calib_kernel_evaluate(hw, kt, dtype, model_only, &e,
                                        print_point, NULL, &err)))
      goto done;
    print_error(model_only ? "roofline model:" : "profile (table + model):",
                &e);
  } else if (coll) {
    char cmdline[512];
    command_line(argc, argv, "dnnsim calibrate", cmdline, sizeof cmdline);
    dnn_comm_profile_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.name, sizeof info.name, "refit");
    info.nodes = nodes;
    snprintf(info.source, sizeof info.source, "fitted from %s%s", csvs[0],
             n_csv > 1 ? " and others" : "");
    dnn_calib_provenance(NULL, NULL, cmdline, info.calibrated,
                         sizeof info.calibrated);
    if ((st = dnn_calib_comm_fit(ct, &par, &info, &cp, &err)) ||
        (st = dnn_hw_comm_profile_save(cp, out, &err)))
      goto done;
    print_comm(cp);
  } else {
    dnn_calib_kernel_report rep;
    if ((st = dnn_hw_load(base, &bh, &err)))
      goto done;
    dnn_hw_params bp = *dnn_hw_get(bh);
    char cmdline[512];
    command_line(argc, argv, "dnnsim calibrate", cmdline, sizeof cmdline);
    dnn_calib_provenance(NULL, NULL, cmdline, bp.calibrated,
                         sizeof bp.calibrated);
    if ((st = dnn_calib_kernel_fit(kt, &bp, dtype, &par, true, &hw, &rep,
                                   &err)) ||
        (st = dnn_hw_save(hw, out, &err)))
      goto done;
    print_kernel(hw, &rep);
  }
done:
  dnn_meas_coll_table_free(ct);
  dnn_meas_kernel_table_free(kt);
  dnn_hw_comm_profile_free(cp);
  dnn_hw_free(hw);
  dnn_hw_free(bh);
  return st ? cli_fail(&err, st) : CLI_EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                 */
/* ------------------------------------------------------------------------ */

static void help(void) {
  printf("usage: dnnsim calibrate mpi|cpu|gpu|derive|fit|check [OPTIONS]\n"
         "\n"
         "Measures this machine and fits profiles (docs/calibration.md):\n"
         "  mpi      collectives (run under mpirun -np N) -> comm profile\n"
         "  cpu      oneDNN kernels of a network -> hardware profile\n"
         "  gpu      cuDNN/cuBLAS kernels, CUPTI times -> hardware profile\n"
         "  derive   a profile for another device from a calibrated one\n"
         "  fit      refit profiles from raw measurement CSVs\n"
         "  check    error of a profile against raw measurements\n"
         "\n"
         "Run 'dnnsim calibrate SUBCOMMAND --help' for its options.\n"
         "Exit codes: 0 ok, 1 runtime error or interruption, 2 usage, 3 bad "
         "input,\n4 unavailable (no CUDA device, or not in this build).\n");
}

int cli_cmd_calibrate(int argc, char **argv) {
  if (argc < 2) {
    help();
    return CLI_EXIT_USAGE;
  }
  const char *sub = argv[1];
  if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0) {
    help();
    return CLI_EXIT_OK;
  }
  if (strcmp(sub, "mpi") == 0)
    return cmd_mpi(argc - 1, argv + 1);
  if (strcmp(sub, "cpu") == 0)
    return cmd_kernels(argc - 1, argv + 1, false);
  if (strcmp(sub, "gpu") == 0)
    return cmd_kernels(argc - 1, argv + 1, true);
  if (strcmp(sub, "derive") == 0)
    return cmd_derive(argc - 1, argv + 1);
  if (strcmp(sub, "fit") == 0)
    return cmd_fit_check(argc - 1, argv + 1, false);
  if (strcmp(sub, "check") == 0)
    return cmd_fit_check(argc - 1, argv + 1, true);
  static const char *const subs[] = {"mpi", "cpu",   "gpu", "derive",
                                     "fit", "check", NULL};
  const char *near = dnn_nearest_name(sub, subs);
  return cli_usage_error("calibrate", "unknown subcommand '%s'%s%s%s", sub,
                         near ? " (did you mean '" : "", near ? near : "",
                         near ? "'?)" : "");
}
