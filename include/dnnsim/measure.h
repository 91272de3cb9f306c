/*
 * dnnsim measure: real measurements of collectives (MPI), CPU kernels
 * (oneDNN) and GPU kernels (cuDNN + CUPTI), with the statistics of repeats
 * and the raw CSV files that calibrate/ fits profiles from.
 *
 * Method (Deep500, Ben-Nun et al., IPDPS 2019; ../shared/REFERENCE.md §5):
 * warm-up runs first, then timed samples until the 95% confidence interval
 * of the median is within `ci_rel` of the median or a cap is hit. A sample
 * is the mean of `runs` back-to-back runs (Deep500 times blocks of 10 runs
 * and takes the median of the block means); `runs` grows so that a sample
 * lasts at least `min_sample_s`, which keeps timer resolution out of short
 * kernels. The interval is distribution-free: order statistics of the
 * sorted samples whose coverage follows from the binomial distribution
 * (docs/measure.md). Every kernel is verified against a plain C reference
 * on its own shape before it is timed (Deep500's verifiable benchmarking);
 * a kernel that fails is never used for calibration.
 *
 * Back ends are optional at build time (DNNSIM_WITH_MPI, _DNNL, _CUDA): a
 * build without one still links and its functions return
 * DNN_EUNSUPPORTED saying what is missing. The GPU back end returns
 * DNN_ENODEVICE ("no CUDA device") on a machine without a GPU.
 */
#ifndef DNNSIM_MEASURE_H
#define DNNSIM_MEASURE_H

#include "dnnsim/comm.h"
#include "dnnsim/core.h"
#include "dnnsim/model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Opaque types                                                              */
/* ------------------------------------------------------------------------ */

typedef struct dnn_meas_sampler dnn_meas_sampler;
typedef struct dnn_meas_coll_table dnn_meas_coll_table;
typedef struct dnn_meas_kernel_table dnn_meas_kernel_table;
typedef struct dnn_meas_mpi dnn_meas_mpi;
/* A measurement session on GPU 0 (cuDNN, cuBLAS and CUPTI handles). */
typedef struct dnn_meas_gpu dnn_meas_gpu;

/* ------------------------------------------------------------------------ */
/* Hooks                                                                     */
/* ------------------------------------------------------------------------ */

/*
 * Progress: `done` of `total` measurement points finished, `label` names
 * the current one. Returning non-zero stops the measurement with
 * DNN_EINTERRUPTED (the CLI does this after SIGINT). With MPI it is called
 * on rank 0 only and the stop is broadcast.
 */
typedef int (*dnn_meas_progress_fn)(void *ud, size_t done, size_t total,
                                    const char *label);

/*
 * A kernel a sweep could not measure and left out (cuDNN refused an
 * algorithm, an allocation failed, no algorithm or kernel passed
 * verification): layer `layer`, pass `pass` (DNN_PASS_COUNT: every
 * pass), convolution algorithm `algo` (DNN_CONV_ALGO_COUNT: not one
 * algorithm), batch `batch` (0: every batch), and why. The sweep goes on;
 * the kernel has no row.
 */
typedef void (*dnn_meas_skip_fn)(void *ud, const char *layer, dnn_pass pass,
                                 dnn_conv_algo algo, size_t batch,
                                 const char *why);

/* ------------------------------------------------------------------------ */
/* Statistics of repeats                                                     */
/* ------------------------------------------------------------------------ */

/* Summary of the samples of one measurement. Times in seconds. */
typedef struct dnn_meas_stats {
  size_t samples;    /* timed samples */
  size_t runs;       /* runs averaged into each sample */
  double min_s;      /* smallest sample */
  double median_s;   /* median sample: the reported time */
  double max_s;      /* largest sample */
  double mean_s;     /* arithmetic mean of the samples */
  double ci_lo_s;    /* confidence interval of the median, lower end */
  double ci_hi_s;    /* upper end */
  double confidence; /* coverage of [ci_lo_s, ci_hi_s], in (0, 1) */
  bool converged;    /* half-width <= ci_rel * median before a cap */
} dnn_meas_stats;

/*
 * Median and distribution-free confidence interval of the median of `n`
 * samples (any order; not modified). The interval is [x_(k), x_(n+1-k)]
 * of the sorted samples with the largest k whose binomial coverage
 * 1 - 2 P(Bin(n, 1/2) <= k-1) is at least `confidence`; with too few
 * samples for that coverage it is [min, max] and `confidence` reports the
 * smaller coverage actually reached. `converged` is left false.
 * DNN_EINVAL for n == 0, a non-finite sample or confidence outside (0, 1).
 */
dnn_status dnn_meas_stats_compute(const double *x, size_t n, double confidence,
                                  dnn_meas_stats *out, dnn_error *err);

/* Half-width of the interval relative to the median (INFINITY if the
 * median is 0). */
double dnn_meas_stats_rel_halfwidth(const dnn_meas_stats *s);

/* How a measurement repeats. */
typedef struct dnn_meas_repeat_params {
  size_t warmup_runs;  /* untimed runs before the first sample */
  size_t min_samples;  /* samples before the stopping test, >= 1 */
  size_t max_samples;  /* cap on samples, >= min_samples */
  size_t max_runs;     /* cap on runs per sample, >= 1 */
  double ci_rel;       /* stop when half-width <= ci_rel * median */
  double confidence;   /* of the interval, in (0, 1) */
  double min_sample_s; /* a sample lasts at least this long, >= 0 */
  double max_total_s;  /* time budget of one measurement (0: none) */
} dnn_meas_repeat_params;

/*
 * Deep500-like defaults: 2 warm-up runs, 10 to 100 samples, 95% interval
 * within 5% of the median, samples of at least 1 ms, at most 1000 runs per
 * sample and 5 s per measurement.
 */
dnn_meas_repeat_params dnn_meas_repeat_default_params(void);

/* The coarse setting of --quick: 1 warm-up, 5 to 15 samples, 10%. */
dnn_meas_repeat_params dnn_meas_repeat_quick_params(void);

/* DNN_EINVAL naming the first field out of range. */
dnn_status dnn_meas_repeat_params_check(const dnn_meas_repeat_params *p,
                                        dnn_error *err);

/* Runs per sample for a run that takes `run_s` (clamped to [1, max_runs]). */
size_t dnn_meas_repeat_runs(const dnn_meas_repeat_params *p, double run_s);

/*
 * The stopping rule as an object: add samples until dnn_meas_sampler_done.
 * Deterministic, so MPI ranks that add the same samples stop together.
 * DNN_EINVAL (bad parameters), DNN_ENOMEM.
 */
dnn_status dnn_meas_sampler_alloc(const dnn_meas_repeat_params *p,
                                  dnn_meas_sampler **out, dnn_error *err);
void dnn_meas_sampler_free(dnn_meas_sampler *s);
/* Forgets the samples (for the next measurement); `runs` per sample. */
void dnn_meas_sampler_reset(dnn_meas_sampler *s, size_t runs);
/* Records one sample, the mean time of one run in it (seconds). Samples
 * beyond max_samples are ignored. */
void dnn_meas_sampler_add(dnn_meas_sampler *s, double sample_s);
/* True when the interval is narrow enough (after min_samples), the cap is
 * hit, or the time budget is spent. */
bool dnn_meas_sampler_done(dnn_meas_sampler *s);
/* The statistics so far (all zero before the first sample). */
void dnn_meas_sampler_stats(dnn_meas_sampler *s, dnn_meas_stats *out);

/*
 * One timed sample: run the kernel `runs` times back to back and return
 * the elapsed wall-clock (or device) time in *elapsed_s. A failing status
 * stops the measurement and is returned.
 */
typedef dnn_status (*dnn_meas_run_fn)(void *ud, size_t runs, double *elapsed_s,
                                      dnn_error *err);

/*
 * The convenience driver: warm-up, sizing of runs per sample from the
 * warm-up, then samples until the sampler is done.
 */
dnn_status dnn_meas_repeat_run(const dnn_meas_repeat_params *p,
                               dnn_meas_run_fn fn, void *ud,
                               dnn_meas_stats *out, dnn_error *err);

/* Monotonic wall-clock time in seconds (arbitrary origin). */
double dnn_meas_now_s(void);

/* ------------------------------------------------------------------------ */
/* Collective measurements                                                   */
/* ------------------------------------------------------------------------ */

#define DNN_MEAS_NAME_MAX 32

/*
 * One measured point in the nccl-tests/OSU spirit. `size_bytes` follows
 * comm.h (allreduce buffer, reduce-scatter input, allgather output,
 * broadcast message, all-to-all bytes per rank, p2p message). The time of
 * a sample is the maximum over ranks of that sample.
 *
 * Besides the collectives the table holds the LogGP and gamma probes:
 * op p2p with algorithm "pingpong" (half round trip), "overhead" (sender
 * CPU time of a send) and "gap" (time per message in a stream); op reduce
 * with algorithm "local" and ranks 1 (MPI_Reduce_local, the reduction
 * cost gamma).
 */
typedef struct dnn_meas_coll_row {
  dnn_comm_op op;
  char algorithm[DNN_MEAS_NAME_MAX]; /* as the MPI library names it, or
                                        "default" for its own choice */
  int mpi_id;          /* coll_tuned forced-algorithm number, 0: default */
  dnn_comm_algo model; /* comm.h algorithm it realises; AUTO for "default";
                          DNN_COMM_ALGO_COUNT for none */
  size_t ranks;        /* communicator size */
  size_t size_bytes;   /* message size, comm.h convention */
  size_t count;        /* elements of 4 bytes (float) */
  dnn_meas_stats t;    /* time of one operation */
  double algbw_GBps;   /* size_bytes / median, 1e9 B/s */
  double busbw_GBps;   /* algbw times the nccl-tests bus factor */
} dnn_meas_coll_row;

/* nccl-tests bus-bandwidth factor of `op` on `ranks` ranks: allreduce
 * 2(P-1)/P, reduce-scatter, allgather and all-to-all (P-1)/P, others 1. */
double dnn_meas_busbw_factor(dnn_comm_op op, size_t ranks);

/* Tables of rows (growable; rows are copied in). DNN_ENOMEM. */
dnn_status dnn_meas_coll_table_alloc(dnn_meas_coll_table **out, dnn_error *err);
void dnn_meas_coll_table_free(dnn_meas_coll_table *t);
dnn_status dnn_meas_coll_table_add(dnn_meas_coll_table *t,
                                   const dnn_meas_coll_row *row,
                                   dnn_error *err);
size_t dnn_meas_coll_table_count(const dnn_meas_coll_table *t);
/* Borrowed; valid until the next add or free. `i` < count. */
const dnn_meas_coll_row *dnn_meas_coll_table_get(const dnn_meas_coll_table *t,
                                                 size_t i);
/* The row with this key (op, algorithm, ranks, size), or NULL. */
const dnn_meas_coll_row *dnn_meas_coll_table_find(const dnn_meas_coll_table *t,
                                                  dnn_comm_op op,
                                                  const char *algorithm,
                                                  size_t ranks,
                                                  size_t size_bytes);

/*
 * CSV of collective rows: one header line (dnn_meas_coll_csv_header), then
 * one line per row; lines starting with '#' are comments. Reading appends
 * to `t`; a bad line is DNN_EPARSE "PATH:LINE: column NAME: ..." (or
 * DNN_ERANGE for a value out of range), a missing file DNN_EIO. Writing is
 * atomic (temporary file, then rename).
 */
const char *dnn_meas_coll_csv_header(void);
void dnn_meas_coll_csv_write_row(FILE *fp, const dnn_meas_coll_row *row);
dnn_status dnn_meas_coll_csv_read(const char *path, dnn_meas_coll_table *t,
                                  dnn_error *err);
dnn_status dnn_meas_coll_csv_write(const char *path,
                                   const dnn_meas_coll_table *t,
                                   const char *comment, dnn_error *err);

/* ------------------------------------------------------------------------ */
/* MPI back end                                                              */
/* ------------------------------------------------------------------------ */

/*
 * MPI's state for a measurement run. dnn_meas_mpi_init calls MPI_Init;
 * dnn_meas_mpi_finalize calls MPI_Finalize (once per process). Forcing an
 * OpenMPI algorithm needs coll_tuned_use_dynamic_rules=1 before MPI_Init
 * (environment OMPI_MCA_coll_tuned_use_dynamic_rules=1 or `mpirun --mca`;
 * the dnnsim CLI sets it); each algorithm is then chosen through the MPI_T
 * control variable coll_tuned_<op>_algorithm on a freshly duplicated
 * communicator, because coll_tuned reads it when a communicator is made.
 * DNN_EUNSUPPORTED in a build without MPI; DNN_EMPI when MPI_Init fails.
 */
dnn_status dnn_meas_mpi_init(int *argc, char ***argv, dnn_meas_mpi **out,
                             dnn_error *err);
/* MPI_T_finalize, MPI_Finalize and free. NULL does nothing. */
void dnn_meas_mpi_finalize(dnn_meas_mpi *m);
size_t dnn_meas_mpi_rank(const dnn_meas_mpi *m);
size_t dnn_meas_mpi_size(const dnn_meas_mpi *m);
/* The nodes (hosts: shared-memory domains) the ranks run on, >= 1. */
size_t dnn_meas_mpi_nodes(const dnn_meas_mpi *m);
/* True when coll_tuned's forced algorithms can be used. */
bool dnn_meas_mpi_can_force(const dnn_meas_mpi *m);
/* The MPI library's version line (static storage of `m`). */
const char *dnn_meas_mpi_library(const dnn_meas_mpi *m);
/* MPI_Abort on MPI_COMM_WORLD (for the CLI's watchdog). */
void dnn_meas_mpi_abort(dnn_meas_mpi *m, int code);
/* A barrier on MPI_COMM_WORLD (DNN_EMPI on failure). */
dnn_status dnn_meas_mpi_barrier(dnn_meas_mpi *m, dnn_error *err);
/* Broadcasts a status and message from rank 0 so that every rank reports
 * the same outcome; returns the broadcast status. */
dnn_status dnn_meas_mpi_agree(dnn_meas_mpi *m, dnn_status st, dnn_error *err);

/* An MPI algorithm that can be forced, with the comm.h model it realises. */
typedef struct dnn_meas_mpi_algo {
  dnn_comm_op op;
  const char *name;    /* OpenMPI's name, e.g. "ring" */
  int mpi_id;          /* coll_tuned_<op>_algorithm value */
  dnn_comm_algo model; /* DNN_COMM_ALGO_COUNT when comm.h has none */
} dnn_meas_mpi_algo;

/* The forced algorithms measured (static table; `*count` entries). */
const dnn_meas_mpi_algo *dnn_meas_mpi_algos(size_t *count);

/* Bit of `op` in dnn_meas_mpi_params.ops. */
#define DNN_MEAS_OP_BIT(op) (1u << (unsigned)(op))

/* What a collective sweep measures. */
typedef struct dnn_meas_mpi_params {
  const size_t *sizes; /* message sizes in bytes (NULL: the default) */
  size_t n_sizes;
  const size_t *ranks; /* communicator sizes (NULL: 2, 4, ... and world) */
  size_t n_ranks;
  unsigned ops;       /* DNN_MEAS_OP_BIT of each op; P2P runs the LogGP
                         probes, REDUCE the MPI_Reduce_local probe */
  bool per_algorithm; /* each forced algorithm as well as the default */
  dnn_meas_repeat_params repeat;
  double max_buffer_bytes;       /* skip points whose buffers exceed this per
                                    rank (0: no limit) */
  dnn_meas_progress_fn progress; /* rank 0 only; may be NULL */
  void *progress_ud;
  /* Each new row, on rank 0 only (may be NULL). A failing status stops
   * the sweep on every rank. */
  dnn_status (*on_row)(void *ud, const dnn_meas_coll_row *row, dnn_error *err);
  void *row_ud;
  /* Rows already measured (rank 0's table, e.g. from --resume): their
   * points are skipped. May be NULL. */
  const dnn_meas_coll_table *done;
} dnn_meas_mpi_params;

/* All ops, per algorithm, default sizes and repeats. */
dnn_meas_mpi_params dnn_meas_mpi_default_params(void);

/*
 * Default sizes: 4 B to 256 MiB in powers of two plus 3*2^k in between
 * (quick: a coarse subset up to 4 MiB). Static storage, `*n` entries.
 */
const size_t *dnn_meas_mpi_default_sizes(bool quick, size_t *n);

/*
 * Runs the sweep; collective over MPI_COMM_WORLD (every rank calls it with
 * the same parameters). Ranks outside a smaller communicator wait without
 * spinning. DNN_EINVAL (fewer than 2 ranks, bad parameters), DNN_EMPI,
 * DNN_EINTERRUPTED (progress hook), or a status from on_row; every rank
 * returns the same status.
 */
dnn_status dnn_meas_mpi_run(dnn_meas_mpi *m, const dnn_meas_mpi_params *p,
                            dnn_error *err);

/* ------------------------------------------------------------------------ */
/* Kernel measurements                                                       */
/* ------------------------------------------------------------------------ */

#define DNN_MEAS_SIG_MAX 512

/* One measured kernel: a layer of a network, one pass, one algorithm. */
typedef struct dnn_meas_kernel_row {
  char backend[16];                 /* "onednn", "cudnn", "cublas" */
  char network[DNN_MEAS_NAME_MAX];  /* network it came from */
  char layer[64];                   /* layer name */
  char signature[DNN_MEAS_SIG_MAX]; /* dnn_layer_signature */
  dnn_layer_kind kind;
  dnn_pass pass;
  dnn_conv_algo algo; /* DNN_CONV_ALGO_COUNT for non-convolutions */
  dnn_dtype dtype;
  size_t batch;
  double flops;           /* model arithmetic of this pass and algorithm */
  double bytes;           /* model bytes read + written */
  double workspace_bytes; /* GPU: per-layer convolution workspace limit
                             (the fastest algorithm within it runs) */
  dnn_meas_stats t;       /* kernel time */
  double verify_rel_l2;   /* relative L2 error against the reference
                             (NaN when not verified) */
  double verify_max_rel;  /* max-norm error / max |reference| */
} dnn_meas_kernel_row;

dnn_status dnn_meas_kernel_table_alloc(dnn_meas_kernel_table **out,
                                       dnn_error *err);
void dnn_meas_kernel_table_free(dnn_meas_kernel_table *t);
dnn_status dnn_meas_kernel_table_add(dnn_meas_kernel_table *t,
                                     const dnn_meas_kernel_row *row,
                                     dnn_error *err);
size_t dnn_meas_kernel_table_count(const dnn_meas_kernel_table *t);
const dnn_meas_kernel_row *
dnn_meas_kernel_table_get(const dnn_meas_kernel_table *t, size_t i);
/* The row with key (network, layer, pass, algo, dtype, batch), or NULL. */
const dnn_meas_kernel_row *
dnn_meas_kernel_table_find(const dnn_meas_kernel_table *t, const char *network,
                           const char *layer, dnn_pass pass, dnn_conv_algo algo,
                           dnn_dtype dtype, size_t batch);

/* CSV of kernel rows; same conventions as the collective CSV. */
const char *dnn_meas_kernel_csv_header(void);
void dnn_meas_kernel_csv_write_row(FILE *fp, const dnn_meas_kernel_row *row);
dnn_status dnn_meas_kernel_csv_read(const char *path, dnn_meas_kernel_table *t,
                                    dnn_error *err);
dnn_status dnn_meas_kernel_csv_write(const char *path,
                                     const dnn_meas_kernel_table *t,
                                     const char *comment, dnn_error *err);

/* What a kernel sweep measures. */
typedef struct dnn_meas_kernel_params {
  const size_t *batches; /* batch sizes, each >= 1 */
  size_t n_batches;
  dnn_dtype dtype;
  dnn_meas_repeat_params repeat;
  bool verify;                  /* check each kernel against the C reference */
  double verify_rel_l2;         /* largest accepted relative L2 error */
  double verify_max_rel;        /* largest accepted max-norm error */
  size_t verify_batch;          /* batch of the verification run, >= 1 */
  bool all_algos;               /* every convolution algorithm offered */
  size_t threads;               /* CPU threads for oneDNN (0: OpenMP's default);
                                   one thread keeps timings stable on a machine
                                   shared with other work */
  double workspace_limit_bytes; /* skip algorithms needing more */
  dnn_meas_progress_fn progress;
  void *progress_ud;
  /* Each new row (may be NULL); a failing status stops the sweep. */
  dnn_status (*on_row)(void *ud, const dnn_meas_kernel_row *row,
                       dnn_error *err);
  void *row_ud;
  const dnn_meas_kernel_table *done; /* rows to skip (--resume), or NULL */
  /* Kernels left out (GPU back end; may be NULL). */
  dnn_meas_skip_fn on_skip;
  void *skip_ud;
} dnn_meas_kernel_params;

/* Batch 1 and 8, fp32, default repeats, verification on (fp32 tolerances
 * 1e-4 relative L2 and 1e-3 max-norm), every algorithm, 1 GiB workspace. */
dnn_meas_kernel_params dnn_meas_kernel_default_params(void);

/*
 * A reference hook for tests: replaces the C reference of one layer kind
 * and pass with a deliberately wrong one (it scales the reference output
 * by `factor`), so that a test can see verification fail. factor 1
 * restores the reference. Not thread-safe; tests only.
 */
void dnn_meas_verify_perturb(dnn_layer_kind kind, dnn_pass pass, double factor);

/* ---- Machine information for provenance --------------------------------- */

typedef struct dnn_meas_sysinfo {
  char host[64];    /* gethostname */
  char date[32];    /* UTC, ISO 8601 */
  char cpu[128];    /* CPU model name */
  size_t cpus;      /* online logical CPUs */
  double mem_bytes; /* physical memory */
  char os[128];     /* uname sysname, release, machine */
} dnn_meas_sysinfo;

/* Fills what it can; never fails (unknown fields are "unknown"). */
void dnn_meas_sysinfo_get(dnn_meas_sysinfo *out);

/* ---- oneDNN CPU back end ------------------------------------------------ */

/* Peak rates measured on this machine (the profile's "peak" values). */
typedef struct dnn_meas_peaks {
  double flops[DNN_DTYPE_COUNT]; /* FLOP/s of a large GEMM; 0: unsupported */
  double mem_bandwidth_Bps;      /* read + write bytes/s of a large stream */
  double mem_capacity_bytes;     /* device or host memory */
  double launch_overhead_s;      /* time of an empty-ish kernel */
  char device[128];              /* device name */
  char library[128];             /* library versions */
  char isa[64];                  /* CPU ISA oneDNN uses, or GPU arch */
} dnn_meas_peaks;

/*
 * Measures peak GEMM rates per dtype (fp32; bf16 when the CPU has it),
 * stream bandwidth and a small-kernel overhead with oneDNN on `threads`
 * threads (0: OpenMP's default). `quick` uses smaller problems.
 * DNN_EUNSUPPORTED without oneDNN.
 */
dnn_status dnn_meas_cpu_peaks(bool quick, size_t threads, dnn_meas_peaks *out,
                              dnn_error *err);

/*
 * Measures every layer of `net` that oneDNN implements (convolution
 * forward, backward-data and backward-weights; inner product; pooling;
 * batch and layer norm; eltwise; softmax; binary add; concat; LSTM) at
 * each batch, after verifying it. Fused backward primitives (batch norm,
 * layer norm, LSTM compute both gradients in one call) are split between
 * bwd_data and bwd_weights in proportion to the model's FLOPs of the two.
 * DNN_EUNSUPPORTED without oneDNN or for an unsupported dtype,
 * DNN_EVERIFY when a kernel fails verification (naming layer and pass),
 * DNN_EINTERRUPTED from the progress hook, DNN_ENOMEM.
 */
dnn_status dnn_meas_cpu_kernels(const dnn_net *net,
                                const dnn_meas_kernel_params *p,
                                dnn_error *err);

/* ---- cuDNN + CUPTI GPU back end ----------------------------------------- */

/*
 * DNN_OK when a CUDA device is usable; DNN_ENODEVICE "no CUDA device"
 * otherwise; DNN_EUNSUPPORTED in a build without CUDA.
 */
dnn_status dnn_meas_gpu_available(dnn_error *err);

/* Peak GEMM rates (cuBLAS: fp32, tf32, fp16, bf16), device-to-device copy
 * bandwidth, memory capacity and launch overhead of device 0. */
dnn_status dnn_meas_gpu_peaks(bool quick, dnn_meas_peaks *out, dnn_error *err);

/*
 * Measures on device 0, with kernel times from CUPTI activity records
 * (sum of end - start of the kernels of one call): every convolution
 * algorithm cuDNN offers for each convolution layer and pass (with its
 * workspace), fully connected layers as cuBLAS GEMMs, pooling, batch norm,
 * activations and softmax, at each batch. Verification compares each
 * convolution algorithm and each other kernel with the C reference.
 * A layer with the same signature and passes as an earlier one of the
 * same call is not measured again: the earlier layer's rows are emitted
 * under its name. A kernel that fails (cuDNN refuses it, an allocation
 * fails, it fails verification) is left out and reported through
 * on_skip; the sweep goes on. Errors: DNN_ENODEVICE, DNN_EINVAL (bad
 * parameters), DNN_EINTERRUPTED (progress hook), DNN_ENOMEM (host),
 * DNN_ETOOLFAIL when the device stops working (a sticky CUDA error), or a
 * status from on_row.
 */
dnn_status dnn_meas_gpu_kernels(const dnn_net *net,
                                const dnn_meas_kernel_params *p,
                                dnn_error *err);

/* ---- Micro-batched convolutions on the GPU (µ-cuDNN) -------------------- */

/* `count` micro-batches of `batch` samples each, run with `algo`. */
typedef struct dnn_meas_mb_part {
  size_t batch;       /* samples per micro-batch, >= 1 */
  size_t count;       /* micro-batches of this size and algorithm, >= 1 */
  dnn_conv_algo algo; /* model.h's algorithm; run as cuDNN's equivalent */
} dnn_meas_mb_part;

/* One schedule of a kernel (a convolution layer's pass) under one
 * per-layer workspace limit. */
typedef struct dnn_meas_mb_schedule {
  const dnn_meas_mb_part *parts; /* sum of count x batch = the batch */
  size_t n_parts;                /* >= 1 */
  double limit_bytes; /* per-layer workspace limit M of the baseline */
  dnn_conv_algo hint; /* an undivided algorithm timed among the baseline's
                         candidates (the plan's baseline), or
                         DNN_CONV_ALGO_COUNT */
} dnn_meas_mb_schedule;

/* How schedules are measured. */
typedef struct dnn_meas_mb_params {
  dnn_meas_repeat_params repeat;
  size_t base_candidates; /* undivided algorithms within the limit, fastest
                             first by cudnnFind, timed for the baseline
                             (>= 1) */
  double verify_rel_l2;   /* largest accepted ||y_mb - y|| / ||y|| of the
                             schedule's output y_mb against the undivided
                             baseline's y */
  double algo_rel_l2;     /* largest accepted distance of a baseline
                             candidate's output from implicit GEMM's: a
                             faster candidate that computes something else
                             is not a baseline */
} dnn_meas_mb_params;

/* Quick repeats, 3 baseline candidates, relative L2 1e-5 for schedules
 * and 1e-3 for candidates (fp32; µ-cuDNN's own check uses 1e-6; use
 * about 1e-2 and 5e-2 for fp16 and bf16). */
dnn_meas_mb_params dnn_meas_mb_default_params(void);

/* What one schedule measured. Times are per run of the whole kernel. */
typedef struct dnn_meas_mb_result {
  bool ran;                    /* the schedule was timed */
  dnn_meas_stats t;            /* schedule: CUPTI kernel time (or events) */
  double wall_s;               /* schedule: median CUDA-event time, launch
                                  gaps between micro-batches included */
  double workspace_bytes;      /* cuDNN's workspace of the schedule: its
                                  largest micro-batch's */
  bool over_limit;             /* workspace_bytes > limit_bytes */
  bool base_ran;               /* the baseline was timed */
  dnn_conv_algo base_algo;     /* fastest timed undivided algorithm within
                                  the limit (DNN_CONV_ALGO_COUNT: none) */
  dnn_meas_stats base_t;       /* its time, as t */
  double base_wall_s;          /* its median CUDA-event time */
  double base_workspace_bytes; /* its cuDNN workspace */
  double rel_l2;       /* schedule output against the undivided output of
                          base_algo (implicit GEMM without a baseline);
                          NaN: not compared */
  double split_rel_l2; /* the same division run with that algorithm
                          against its undivided output: isolates the
                          micro-batching from algorithm rounding; NaN:
                          not compared */
  bool verified;       /* rel_l2 <= verify_rel_l2 */
  bool cupti;          /* t and base_t are CUPTI kernel sums */
  char note[256];      /* what could not run and why; "" when all ran */
} dnn_meas_mb_result;

/*
 * Opens a session on GPU 0 for `dtype` (fp32, tf32, fp16 or bf16), with
 * CUPTI kernel timing when it can be enabled. DNN_ENODEVICE "no CUDA
 * device", DNN_EUNSUPPORTED (no CUDA in this build, or the dtype),
 * DNN_ETOOLFAIL, DNN_ENOMEM.
 */
dnn_status dnn_meas_gpu_alloc(dnn_dtype dtype, dnn_meas_gpu **out,
                              dnn_error *err);
/* Releases every handle and buffer. NULL does nothing. */
void dnn_meas_gpu_free(dnn_meas_gpu *g);
/* Device, driver and library versions (static storage of `g`). */
const char *dnn_meas_gpu_name(const dnn_meas_gpu *g);

/*
 * Runs micro-batched schedules of one kernel as µ-cuDNN executes them
 * (REFERENCE §2.2): the micro-batches one after another on one stream, at
 * offsets into x and y (dy and dx), each with its own algorithm, all with
 * one workspace buffer of the largest micro-batch's size; backward-weights
 * accumulates into dw (beta 1 after the first micro-batch). Layer `layer`
 * of `net` (a convolution), pass `pass`, `batch` samples; `n` schedules
 * (e.g. one per limit), out[i] for scheds[i].
 *
 * The baseline of each schedule is the fastest undivided algorithm whose
 * cuDNN workspace fits the schedule's limit: cudnnFind at the full batch
 * ranks the algorithms, and the first base_candidates that fit (plus the
 * hint) are timed with the sampler; a candidate whose output differs from
 * implicit GEMM's by more than algo_rel_l2 is rejected. Each schedule is timed
 * the same way (CUPTI kernel sum, plus CUDA-event wall time), then run once
 * more with its outputs poisoned (NaN) and compared with the baseline's
 * undivided output. Identical schedules and baseline candidates are measured
 * once.
 *
 * A schedule or baseline that cannot run (an algorithm cuDNN does not
 * have or refuses at a micro-batch size, an allocation that fails) is
 * recorded in out[i].note with ran / base_ran false, and the call still
 * returns DNN_OK. Errors: DNN_EINVAL (not a convolution, a pass the layer
 * does not run, parts that do not sum to `batch`), DNN_ENOMEM (host),
 * DNN_ETOOLFAIL when the device stops working, DNN_EUNSUPPORTED without
 * CUDA.
 */
dnn_status dnn_meas_gpu_microbatch(dnn_meas_gpu *g, const dnn_net *net,
                                   size_t layer, dnn_pass pass, size_t batch,
                                   const dnn_meas_mb_schedule *scheds, size_t n,
                                   const dnn_meas_mb_params *p,
                                   dnn_meas_mb_result *out, dnn_error *err);

/* ------------------------------------------------------------------------ */
/* Executor: real training iterations under a parallel strategy             */
/* ------------------------------------------------------------------------ */

/*
 * The executor runs real training iterations of a network on random data
 * with the oneDNN kernels (one process per device, MPI between them):
 * forward, backward-data and backward-weights of every layer in order,
 * the optimizer update, and the strategy's communication. Data
 * parallelism allreduces the gradients in buckets that fill in reverse
 * layer order (bucket_bytes, the predictor's rule): with `overlap` each
 * bucket's MPI_Iallreduce starts when the last micro-batch's backward
 * completes it and is progressed with MPI_Test between layers; without,
 * the buckets are allreduced with blocking calls after the backward
 * pass. Pipeline parallelism runs one stage per rank (rank = stage x data
 * + replica, the predictor's device numbering), sends activations and
 * gradients point to point and orders micro-batches by GPipe or 1F1B.
 * Each iteration starts at a barrier and is timed on every rank; its time
 * is the slowest rank's (docs/validation.md).
 */
typedef struct dnn_meas_exec dnn_meas_exec;

typedef enum dnn_meas_exec_schedule {
  DNN_MEAS_EXEC_GPIPE, /* all forwards, then all backwards */
  DNN_MEAS_EXEC_1F1B   /* PipeDream-Flush: warm-up, one forward one backward */
} dnn_meas_exec_schedule;

typedef enum dnn_meas_exec_optimizer {
  DNN_MEAS_EXEC_SGD,      /* w -= lr g */
  DNN_MEAS_EXEC_MOMENTUM, /* v = mu v + g; w -= lr v */
  DNN_MEAS_EXEC_ADAM      /* two moments, bias-corrected */
} dnn_meas_exec_optimizer;

/* Whose kernels the executor runs. */
typedef enum dnn_meas_exec_device {
  DNN_MEAS_EXEC_CPU, /* oneDNN on the CPU (`threads` per rank) */
  DNN_MEAS_EXEC_GPU  /* cuDNN and cuBLAS on CUDA device 0 (ranks on one
                        machine share it); SGD and momentum only */
} dnn_meas_exec_device;

/* Most augmented copies of a sample the executor computes. */
#define DNN_MEAS_EXEC_MAX_COPIES 1024

/* What the executor runs. */
typedef struct dnn_meas_exec_params {
  size_t data;         /* data-parallel replicas, >= 1 */
  size_t pipeline;     /* pipeline stages, >= 1 */
  size_t batch;        /* global batch; data x microbatches divides it */
  size_t microbatches; /* per replica and iteration, >= 1 */
  dnn_meas_exec_schedule schedule;
  /* First layer of each stage (`pipeline` increasing entries, the first
   * 0), or NULL for stages of equal layer counts. Borrowed until alloc
   * returns. */
  const size_t *stage_first;
  bool overlap;            /* allreduce buckets during the backward pass */
  double bucket_bytes;     /* bucket cap, > 0 */
  dnn_comm_algo allreduce; /* forced MPI algorithm (AUTO: the library's) */
  dnn_meas_exec_optimizer optimizer;
  double lr;               /* learning rate, > 0 */
  dnn_dtype dtype;         /* fp32 (the only one the executor runs) */
  size_t threads;          /* oneDNN threads per rank (0: OpenMP's default) */
  size_t warmup;           /* untimed iterations first */
  size_t repeats;          /* timed iterations, >= 1 */
  double confidence;       /* of the interval of the median, in (0, 1) */
  unsigned long long seed; /* of the random data */
  bool accumulate;         /* micro-batches after the first add their weight
                              gradients to the buffer (training); false overwrites
                              them, to measure what accumulation costs (a
                              diagnostic, not training) */
  size_t copies; /* batch augmentation: each sample computed this many times
                    (its copies, the odd ones mirrored, are consecutive
                    samples of the compute batch: copies x batch / (data x
                    microbatches) per micro-batch); gradients, buckets and
                    the update are those of one copy. >= 1 */
  dnn_meas_exec_device device; /* CPU (default) or GPU */
  double workspace_bytes;      /* GPU: per-layer convolution workspace limit
                                  (the fastest algorithm within it runs);
                                  0: 512 MiB */
} dnn_meas_exec_params;

/* One rank, global batch 8, one micro-batch, 1F1B, overlap with 25 MiB
 * buckets, SGD with lr 0.01, fp32, one thread, 2 warm-up and 10 timed
 * iterations, 95% confidence, gradients accumulated, one copy, the CPU
 * (a 512 MiB convolution workspace on a GPU). */
dnn_meas_exec_params dnn_meas_exec_default_params(void);

/* DNN_EINVAL naming the first bad field (a stage cut outside the
 * network, a batch the replicas and micro-batches do not divide, ...);
 * DNN_EUNSUPPORTED for a dtype other than fp32. */
dnn_status dnn_meas_exec_params_check(const dnn_meas_exec_params *p,
                                      const dnn_net *net, dnn_error *err);

/* Steps of one iteration on one rank, in the order they run. */
#define DNN_MEAS_STEP_LIST(X)                                                  \
  X(FWD, "fwd")                                                                \
  X(BWD_DATA, "bwd_data")                                                      \
  X(BWD_WEIGHTS, "bwd_weights")                                                \
  X(RECV_ACT, "recv_act")                                                      \
  X(SEND_ACT, "send_act")                                                      \
  X(RECV_GRAD, "recv_grad")                                                    \
  X(SEND_GRAD, "send_grad")                                                    \
  X(ALLREDUCE, "allreduce")                                                    \
  X(WAIT, "wait")                                                              \
  X(OPTIMIZER, "optimizer")

typedef enum dnn_meas_step_kind {
#define DNN_MEAS_STEP_ENUM_(id, name) DNN_MEAS_STEP_##id,
  DNN_MEAS_STEP_LIST(DNN_MEAS_STEP_ENUM_)
#undef DNN_MEAS_STEP_ENUM_
      DNN_MEAS_STEP_COUNT
} dnn_meas_step_kind;

/* "fwd", "allreduce", ... ("?" for an unknown value). */
const char *dnn_meas_step_name(dnn_meas_step_kind k);

/* "No layer, micro-batch, bucket or peer". */
#define DNN_MEAS_NONE ((size_t)-1)

/* One step. Tensor dims are those of the kernels as built, batch first
 * (the shapes `dnnsim describe` prints at the micro-batch size). */
typedef struct dnn_meas_exec_step {
  dnn_meas_step_kind kind;
  size_t layer;      /* layer index (passes, sends, receives), or NONE */
  size_t microbatch; /* or NONE (allreduce, wait, optimizer) */
  size_t bucket;     /* allreduce: its bucket, or NONE */
  bool blocking;     /* allreduce: a blocking call (overlap off) */
  double bytes;      /* messages: bytes sent, received or reduced */
  size_t peer;       /* sends and receives: the other world rank */
  size_t in_rank;    /* fwd: rank of the input tensor (0: none) */
  size_t in_dims[DNN_SHAPE_MAX_RANK + 1];
  size_t out_rank; /* fwd: rank of the output tensor */
  size_t out_dims[DNN_SHAPE_MAX_RANK + 1];
  size_t runs; /* times it ran in the last iteration */
} dnn_meas_exec_step;

/* Measured times. Components are medians over the timed iterations on the
 * critical rank (the one with the largest median iteration time); other_s
 * is what the iteration's median has beyond their sum (loop and timers,
 * and the medians' own mismatch), so that they add up to it. */
typedef struct dnn_meas_exec_result {
  dnn_meas_stats iteration; /* per iteration: the slowest rank's time */
  double forward_s;         /* forward passes of the layers */
  double backward_s;        /* backward-data and backward-weights */
  double comm_exposed_s;    /* blocking collectives, waits, MPI progress
                               calls and sends on the compute thread */
  double bubble_s;          /* waiting for a neighbour stage's message */
  double optimizer_s;       /* the update */
  double other_s;           /* the rest (loop, timers) */
  double glue_s;            /* of forward and backward: layout conversions
                               and gradient accumulation */
  size_t critical_rank;
  size_t ranks;
  size_t local_batch;     /* samples per replica */
  size_t microbatch;      /* samples per micro-batch */
  double grad_bytes;      /* gradient bytes allreduced by the critical rank */
  size_t buckets;         /* its buckets */
  bool forced_allreduce;  /* the requested MPI algorithm was forced */
  double bytes_per_param; /* gradient buffer bytes / parameters (oneDNN
                             pads blocked weight layouts) */
  size_t copies;          /* computed copies of each sample */
} dnn_meas_exec_result;

/*
 * Builds the executor on this process: its stage's kernels, tensors and
 * parameters, its communicators and its steps. With `mpi` (NULL: one
 * process, no MPI) it is collective over MPI_COMM_WORLD, whose size must
 * be data x pipeline (DNN_EINVAL naming both otherwise). Errors:
 * dnn_meas_exec_params_check's, DNN_EUNSUPPORTED (no oneDNN; a layer kind
 * the executor cannot run, naming the layer; MPI needed but not built
 * in), DNN_ETOOLFAIL (oneDNN), DNN_EMPI, DNN_ENOMEM; every rank returns
 * the same status.
 */
dnn_status dnn_meas_exec_alloc(const dnn_net *net,
                               const dnn_meas_exec_params *p, dnn_meas_mpi *mpi,
                               dnn_meas_exec **out, dnn_error *err);

/* Frees it (not collective). NULL does nothing. */
void dnn_meas_exec_free(dnn_meas_exec *x);

/*
 * Runs the warm-up and timed iterations (collective) and fills `out` on
 * every rank. DNN_ETOOLFAIL, DNN_EMPI, DNN_EINVAL (a non-finite time).
 */
dnn_status dnn_meas_exec_run(dnn_meas_exec *x, dnn_meas_exec_result *out,
                             dnn_error *err);

/*
 * After a run, rank `rank`'s own medians (the same on every rank):
 * components, glue_s, iteration.median_s (its median iteration; the other
 * statistics are 0), other_s, grad_bytes, buckets and bytes_per_param.
 * All zero before a run.
 */
void dnn_meas_exec_rank_result(const dnn_meas_exec *x, size_t rank,
                               dnn_meas_exec_result *out);

/*
 * The training loss on this rank: the mean over its micro-batch slots of
 * the cross-entropy -log p[label] of the stage's softmax_xent layer, after
 * the last run's first iteration (*first; NaN when unknown) and now
 * (*last). Labels are fixed per sample and the data per slot, so the
 * iterations train on one batch and the loss must fall: a check of the
 * kernels' numerics, which timing alone does not see. Not timed.
 * DNN_ENOTFOUND when this rank's stage has no loss layer or nothing ran
 * yet; DNN_ETOOLFAIL from a GPU copy.
 */
dnn_status dnn_meas_exec_loss(dnn_meas_exec *x, double *first, double *last,
                              dnn_error *err);

/* This rank's stage and replica. */
size_t dnn_meas_exec_stage(const dnn_meas_exec *x);
size_t dnn_meas_exec_replica(const dnn_meas_exec *x);

/* This rank's steps of one iteration (borrowed; valid until free). */
size_t dnn_meas_exec_step_count(const dnn_meas_exec *x);
const dnn_meas_exec_step *dnn_meas_exec_step_get(const dnn_meas_exec *x,
                                                 size_t i);

/*
 * Measured time of layer `i` per pass and micro-batch after a run: the
 * median over timed iterations, the largest over the replicas of the
 * layer's stage (the same on every rank). A fused backward call (batch
 * norm) is split between the passes in proportion to the model's FLOPs,
 * as the calibration splits it. Zero for a pass that does not run.
 */
void dnn_meas_exec_layer_time(const dnn_meas_exec *x, size_t i,
                              double time_s[DNN_PASS_COUNT]);

/* ---- Mixed-size training ------------------------------------------------ */

/*
 * A mixed-size run (Mix & Match, docs/models.md §16) trains one network
 * at several image sizes: each step draws its size from a distribution
 * and runs that size's network at that size's batch. The executor builds
 * one executor per size once (its network, kernels and buffers; all sizes
 * share one parameter, gradient and optimizer-state storage, as one model
 * trained at several sizes does), warms each up, then runs a schedule of
 * steps drawn with a seed and times every step as an iteration (barrier,
 * slowest rank).
 */
typedef struct dnn_meas_exec_mixed dnn_meas_exec_mixed;

/* One size of a mixed run. */
typedef struct dnn_meas_exec_size {
  const dnn_net *net; /* the network at this size (borrowed until free) */
  size_t image;       /* its image side, px (a label) */
  size_t batch;       /* global batch of a step at this size */
  size_t copies;      /* augmented copies of each sample, >= 1 */
  double probability; /* of a step drawing it, > 0 (normalised over sizes) */
} dnn_meas_exec_size;

/* The run as a whole. */
typedef struct dnn_meas_exec_mixed_result {
  size_t steps;        /* timed steps of the schedule */
  double total_s;      /* their sum: the run's time */
  double samples;      /* unique samples they consumed (global batches) */
  dnn_meas_stats step; /* per step (the slowest rank's time); mean_s is
                          total_s / steps */
} dnn_meas_exec_mixed_result;

/*
 * Fills out[0..steps) with size indices drawn independently with
 * probabilities prob[0..n) (normalised): the schedule of a mixed run,
 * the same on every rank and for every call with the same seed (a
 * splitmix64 stream, inverse CDF). DNN_EINVAL when n is 0 or a
 * probability is not finite and > 0.
 */
dnn_status dnn_meas_exec_size_schedule(const double *prob, size_t n,
                                       unsigned long long seed, size_t steps,
                                       size_t *out, dnn_error *err);

/*
 * Builds a mixed run of the n sizes (collective with `mpi`, as
 * dnn_meas_exec_alloc; the networks must have the same layers and
 * parameters). `p` is used for everything but batch and copies, which
 * come from each size: p->repeats is the number of timed steps of the
 * schedule (drawn with p->seed), p->warmup the untimed iterations of each
 * size before it. Errors: dnn_meas_exec_alloc's, each naming its size;
 * DNN_EINVAL for no size, a bad probability, or networks whose layer
 * counts or parameters differ.
 */
dnn_status dnn_meas_exec_mixed_alloc(const dnn_meas_exec_size *sizes, size_t n,
                                     const dnn_meas_exec_params *p,
                                     dnn_meas_mpi *mpi,
                                     dnn_meas_exec_mixed **out, dnn_error *err);

/* Frees it (not collective). NULL does nothing. */
void dnn_meas_exec_mixed_free(dnn_meas_exec_mixed *mx);

/*
 * Runs the warm-up and the schedule (collective) and fills `out`, and
 * per_size[k] (n entries, may be NULL) with size k's result over the
 * steps that drew it, as dnn_meas_exec_run reports one (samples 0 and
 * every field zero for a size no step drew). Errors as dnn_meas_exec_run.
 */
dnn_status dnn_meas_exec_mixed_run(dnn_meas_exec_mixed *mx,
                                   dnn_meas_exec_mixed_result *out,
                                   dnn_meas_exec_result *per_size,
                                   dnn_error *err);

/* Size k's executor (borrowed): its steps, layer times and rank results
 * over the steps that drew it. */
const dnn_meas_exec *dnn_meas_exec_mixed_exec(const dnn_meas_exec_mixed *mx,
                                              size_t k);

/* The size index of timed step `step` (< p->repeats). */
size_t dnn_meas_exec_mixed_size_at(const dnn_meas_exec_mixed *mx, size_t step);

/*
 * Kernel times in situ: each layer's passes timed inside real training
 * iterations of `net` on one process (the executor, data = pipeline = 1)
 * at each batch of `p`, rather than back to back on their own. They
 * include what a training step adds to an isolated kernel: operands that
 * the previous layers pushed out of the caches, the layout conversions
 * between kernels, gradient accumulation at fan-out points and the
 * once-per-call conversion of weights a backward kernel wants in another
 * layout. Rows (backend "onednn-train", convolutions as algorithm
 * "direct") go to p->on_row; the repeats are the timed iterations (at most
 * 10, at least min_samples), warm-up p->repeat.warmup_runs. Rows p->done
 * holds are skipped. `update` (may be NULL) receives the time of the SGD
 * update of all the network's parameters at the last batch. Verification
 * is dnn_meas_cpu_kernels's (the same kernels). Errors as
 * dnn_meas_exec_alloc and dnn_meas_exec_run, DNN_EINTERRUPTED.
 */
dnn_status dnn_meas_cpu_insitu(const dnn_net *net,
                               const dnn_meas_kernel_params *p,
                               dnn_meas_stats *update, dnn_error *err);

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_MEASURE_H */
