/*
 * dnnsim hw: hardware profiles (one device), links and clusters, and the
 * per-operation time model every prediction uses.
 *
 * The time of one kernel is a roofline with efficiencies (docs/models.md,
 * "Per-layer time"):
 *
 *   t = launch_overhead_s
 *     + max( (flops + half_flops[c]) / (peak_flops[dtype] * eff_compute[c]),
 *            bytes / (mem_bandwidth_Bps * eff_memory[c]) )
 *
 * for operation class c (model.h). half_flops is Hockney's n_1/2: the work
 * at which a kernel reaches half its asymptotic rate, the small-size
 * correction calibration fits. Every constant lives in a profile INI file
 * (scenarios/profiles/), never in a .c file. A profile may also carry a
 * table of measured kernel times that takes precedence over the model.
 *
 * Profiles are opaque; their scalar parameters are a plain struct.
 */
#ifndef DNNSIM_HW_H
#define DNNSIM_HW_H

#include "dnnsim/core.h"
#include "dnnsim/model.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dnn_hw dnn_hw;

#define DNN_HW_TEXT_MAX 256

/*
 * Whether a device's collectives progress while its kernels run
 * ([device] comm_progress, docs/profiles.md): `engine` (a GPU's copy
 * engines and NCCL's kernels move the data beside compute), `host` (MPI
 * on a CPU moves a non-blocking collective only inside MPI calls on the
 * compute thread, so communication serialises with compute even when the
 * scenario asks for overlap), or `auto` (engine for kind gpu, host for
 * kind cpu).
 */
typedef enum dnn_hw_comm_progress {
  DNN_HW_PROGRESS_AUTO = 0,
  DNN_HW_PROGRESS_ENGINE,
  DNN_HW_PROGRESS_HOST
} dnn_hw_comm_progress;

/* Scalar parameters of one device. Units are SI. */
typedef struct dnn_hw_params {
  char name[64];                         /* e.g. "v100-sxm2" */
  char kind[16];                         /* "gpu" or "cpu" */
  char source[DNN_HW_TEXT_MAX];          /* where the numbers come from */
  char calibrated[DNN_HW_TEXT_MAX];      /* "no", or date/host/command */
  double peak_flops[DNN_DTYPE_COUNT];    /* FLOP/s, dense, per dtype */
  double mem_bandwidth_Bps;              /* device memory bandwidth */
  double mem_capacity_bytes;             /* device memory capacity */
  double mem_reserved_bytes;             /* taken by runtime/framework */
  double launch_overhead_s;              /* per kernel */
  double eff_compute[DNN_OPCLASS_COUNT]; /* (0, 1] of peak FLOP/s */
  double eff_memory[DNN_OPCLASS_COUNT];  /* (0, 1] of peak bandwidth */
  double half_flops[DNN_OPCLASS_COUNT];  /* n_1/2 in FLOPs, >= 0 */
  /* Per convolution algorithm, replaces eff_compute[CONV] (0: unusable). */
  double eff_conv_algo[DNN_CONV_ALGO_COUNT];
  int comm_progress; /* dnn_hw_comm_progress */
} dnn_hw_params;

/* True when the device's collectives can overlap its kernels
 * (comm_progress engine, or auto on a gpu). */
bool dnn_hw_comm_overlaps(const dnn_hw_params *p);

/* A point-to-point link under the alpha-beta model. */
typedef struct dnn_link {
  char name[32];        /* "nvlink2", "ib-edr", ... or "custom" */
  double latency_s;     /* alpha: per message */
  double bandwidth_Bps; /* 1/beta: per direction, per device or NIC */
} dnn_link;

/*
 * A cluster of `nodes` x `devices_per_node` identical devices. `intra` is
 * each device's link inside a node; `inter` each NIC's link between nodes,
 * with `nics_per_node` NICs shared by the node's devices.
 */
typedef struct dnn_cluster {
  size_t nodes;
  size_t devices_per_node;
  dnn_link intra;
  dnn_link inter;
  size_t nics_per_node;
} dnn_cluster;

/* ------------------------------------------------------------------------ */
/* Profiles                                                                  */
/* ------------------------------------------------------------------------ */

/* Parameters with every efficiency 1, no overheads and no name. Peaks,
 * bandwidth and capacity are 0: set them before dnn_hw_alloc. */
dnn_hw_params dnn_hw_default_params(void);

/*
 * Checks that every value is in range (peaks and bandwidths > 0,
 * efficiencies in (0, 1], ...; a nonzero peak, bandwidth or efficiency at
 * least 1e-6 in INI units; conv_algo.implicit_gemm or conv_algo.direct
 * > 0; texts that save on one INI line). DNN_ERANGE naming the first bad
 * field.
 */
dnn_status dnn_hw_params_check(const dnn_hw_params *p, dnn_error *err);

/* A profile from parameters (copied). DNN_ERANGE as dnn_hw_params_check. */
dnn_status dnn_hw_alloc(const dnn_hw_params *p, dnn_hw **out, dnn_error *err);

/*
 * Loads a profile: a built-in name ("v100-sxm2", see dnn_hw_builtin_list)
 * or a path to a profile INI file (a name with a '/' or ending in ".ini";
 * format in docs/profiles.md). Errors name file, line, section and key:
 * DNN_EPARSE, DNN_ERANGE, DNN_ENOTFOUND (unknown built-in, with a
 * suggestion), DNN_EIO.
 */
dnn_status dnn_hw_load(const char *name_or_path, dnn_hw **out, dnn_error *err);

/*
 * Loads a profile from INI text (for tests and fuzzing). `name` stands for
 * the file in messages; `dir` resolves a [kernels] file name (NULL: the
 * text may not name one, as for a built-in). Errors as dnn_hw_load.
 */
dnn_status dnn_hw_load_string(const char *text, const char *name,
                              const char *dir, dnn_hw **out, dnn_error *err);

/* Writes the profile as INI (atomically). DNN_EIO. */
dnn_status dnn_hw_save(const dnn_hw *hw, const char *path, dnn_error *err);

void dnn_hw_free(dnn_hw *hw);

/* Borrowed; valid until the profile is freed. */
const dnn_hw_params *dnn_hw_get(const dnn_hw *hw);

/* Names of built-in profiles, NULL-terminated (static storage). */
const char *const *dnn_hw_builtin_list(void);

/* The INI text of a built-in profile, or NULL for an unknown name. */
const char *dnn_hw_builtin_text(const char *name);

/* ------------------------------------------------------------------------ */
/* Time model                                                                */
/* ------------------------------------------------------------------------ */

/*
 * The roofline time of one kernel of class `cls` (formula above), in
 * seconds. `flops` and `bytes` >= 0. A kernel with no work costs 0 (no
 * launch). Does not allocate.
 */
double dnn_hw_kernel_time(const dnn_hw *hw, dnn_opclass cls, dnn_dtype dtype,
                          double flops, double bytes);

/*
 * Time of layer `i` of `net` for `pass` and `batch`: a measured time when
 * the profile has one for this layer signature (interpolated in batch),
 * else the roofline of its cost. Convolutions use the fastest applicable
 * algorithm whose workspace fits in `workspace_limit_bytes`; the chosen
 * algorithm and its workspace are returned through `algo` and
 * `workspace_bytes` (either may be NULL; for other layers they are
 * DNN_CONV_ALGO_COUNT and 0). Does not allocate.
 */
double dnn_hw_layer_time(const dnn_hw *hw, const dnn_net *net, size_t i,
                         dnn_pass pass, size_t batch, dnn_dtype dtype,
                         double workspace_limit_bytes, dnn_conv_algo *algo,
                         double *workspace_bytes);

/* Time of convolution layer `i` with a given algorithm (INFINITY when the
 * algorithm is not applicable or its efficiency is 0). */
double dnn_hw_conv_time(const dnn_hw *hw, const dnn_net *net, size_t i,
                        dnn_pass pass, dnn_conv_algo algo, size_t batch,
                        dnn_dtype dtype, double *workspace_bytes);

/* ------------------------------------------------------------------------ */
/* Measured kernel tables                                                    */
/* ------------------------------------------------------------------------ */

/* One measured kernel time. */
typedef struct dnn_hw_kernel_row {
  const char *signature; /* dnn_layer_signature of the layer */
  dnn_pass pass;
  dnn_conv_algo algo; /* DNN_CONV_ALGO_COUNT for non-convolutions */
  dnn_dtype dtype;
  size_t batch;
  double time_s;          /* median */
  double workspace_bytes; /* convolutions */
} dnn_hw_kernel_row;

/*
 * Adds a measured time to the profile (copied). A row with the same
 * signature, pass, algorithm, dtype and batch as an earlier one replaces
 * it. DNN_EINVAL for a row that cannot be stored or saved (empty signature
 * or one with a comma or control character, batch 0, time not > 0,
 * negative workspace); DNN_ENOMEM.
 */
dnn_status dnn_hw_kernel_add(dnn_hw *hw, const dnn_hw_kernel_row *row,
                             dnn_error *err);

/*
 * Looks up a measured time, interpolating in batch between the nearest
 * measured batch sizes (linearly in time) and extrapolating only
 * proportionally beyond the largest or below the smallest:
 * t(b) = t(b0) * b / b0 with b0 the nearest measured batch. Returns false
 * when the profile has no row for this signature, pass, algorithm and
 * dtype.
 */
bool dnn_hw_kernel_lookup(const dnn_hw *hw, const char *signature,
                          dnn_pass pass, dnn_conv_algo algo, dnn_dtype dtype,
                          size_t batch, double *time_s);

/* Number of measured rows. */
size_t dnn_hw_kernel_count(const dnn_hw *hw);

/* ------------------------------------------------------------------------ */
/* Links                                                                     */
/* ------------------------------------------------------------------------ */

/*
 * A built-in link by name ("pcie3", "pcie4", "pcie5", "nvlink1".."nvlink4",
 * "ib-edr", "ib-hdr", "ib-ndr", "eth-10g", "eth-25g", "eth-100g", "shm").
 * DNN_ENOTFOUND with a suggestion for an unknown name.
 */
dnn_status dnn_hw_link_builtin(const char *name, dnn_link *out, dnn_error *err);

/* Names of built-in links, NULL-terminated (static storage). */
const char *const *dnn_hw_link_list(void);

/* Total devices of a cluster. */
size_t dnn_cluster_devices(const dnn_cluster *c);

/* ------------------------------------------------------------------------ */
/* Calibrated collective fits (comm profiles)                                */
/* ------------------------------------------------------------------------ */

/*
 * A comm profile holds what `dnnsim calibrate mpi` fitted to measured
 * collectives (docs/calibration.md), for `[cluster] comm_profile`. One fit
 * covers one (operation, algorithm, communicator size): the measured time
 * as a piecewise-linear function of the message size (exact at that size
 * of communicator), and the link parameters alpha, beta and gamma that
 * reproduce it through the algorithm's cost formula in comm.h, which is
 * how other communicator sizes are predicted.
 */
typedef struct dnn_comm_profile dnn_comm_profile;

#define DNN_COMM_FIT_MAX_SEGMENTS 4

/* t(m) = latency_s + s_per_byte * m for lo_bytes <= m < the next lo. */
typedef struct dnn_comm_segment {
  double lo_bytes;   /* the segment starts at this message size */
  double latency_s;  /* intercept */
  double s_per_byte; /* slope */
} dnn_comm_segment;

/* One fitted collective. */
typedef struct dnn_comm_fit {
  int op;                 /* a dnn_comm_op (comm.h includes this header) */
  int algo;               /* a dnn_comm_algo; AUTO: the MPI library's own
                             choice; DNN_COMM_ALGO_COUNT: no comm.h model */
  char mpi_algorithm[32]; /* what ran, as the MPI library names it */
  size_t ranks;           /* communicator size it was measured on */
  size_t n_segments;      /* 1..DNN_COMM_FIT_MAX_SEGMENTS */
  dnn_comm_segment seg[DNN_COMM_FIT_MAX_SEGMENTS]; /* by increasing lo */
  double alpha_s;          /* link latency under the algorithm's formula */
  double beta_s_per_byte;  /* link time per byte */
  double gamma_s_per_byte; /* reduction time per byte (0: none) */
  bool has_link;           /* alpha/beta/gamma are defined (not for AUTO) */
  double min_bytes;        /* smallest and largest measured size */
  double max_bytes;
  size_t points;              /* measured sizes fitted */
  double r2;                  /* coefficient of determination of the times */
  double median_rel_residual; /* median |fit - measured| / measured */
  double max_rel_residual;    /* largest of those */
  bool poor;                  /* flagged: r2 or residuals above limits */
} dnn_comm_fit;

/* Whole-profile information. */
typedef struct dnn_comm_profile_info {
  char name[64];                    /* e.g. the host */
  char source[DNN_HW_TEXT_MAX];     /* MPI library and transport */
  char calibrated[DNN_HW_TEXT_MAX]; /* date, host and command line */
  double gamma_s_per_byte;          /* MPI_Reduce_local cost (0: unknown) */
  bool has_loggp;                   /* LogGP from ping-pong (Alexandrov 1995) */
  double loggp_L_s;                 /* latency */
  double loggp_o_s;                 /* per-message CPU overhead */
  double loggp_g_s;                 /* gap between messages */
  double loggp_G_s_per_byte;        /* gap per byte */
  size_t loggp_P;                   /* processes */
  /* Nodes the measured ranks ran on ([comm] nodes; 0 reads as 1). Fits
   * from one node price only groups inside a node, fits across nodes only
   * groups that cross nodes; the links price the others (docs/models.md
   * §5.8). */
  size_t nodes;
} dnn_comm_profile_info;

/* An empty profile with `info` (copied). DNN_ENOMEM. */
dnn_status dnn_hw_comm_profile_alloc(const dnn_comm_profile_info *info,
                                     dnn_comm_profile **out, dnn_error *err);

/* NULL does nothing. */
void dnn_hw_comm_profile_free(dnn_comm_profile *cp);

/*
 * Adds a fit (copied); a fit with the same op, mpi_algorithm and ranks is
 * replaced. DNN_EINVAL for an inconsistent fit (no segment, segments not
 * increasing, non-finite numbers, a name that cannot be saved),
 * DNN_ENOMEM.
 */
dnn_status dnn_hw_comm_profile_add(dnn_comm_profile *cp,
                                   const dnn_comm_fit *fit, dnn_error *err);

/* Borrowed; valid until the profile is freed. */
const dnn_comm_profile_info *
dnn_hw_comm_profile_info(const dnn_comm_profile *cp);
size_t dnn_hw_comm_profile_count(const dnn_comm_profile *cp);
const dnn_comm_fit *dnn_hw_comm_profile_get(const dnn_comm_profile *cp,
                                            size_t i);

/*
 * Reads a comm profile INI file. Errors name file, line, section and key:
 * DNN_EPARSE (syntax, unknown section or key, missing key), DNN_ERANGE
 * (value out of range), DNN_EIO.
 */
dnn_status dnn_hw_comm_profile_load(const char *path, dnn_comm_profile **out,
                                    dnn_error *err);

/* The same from text (`name` stands for the file in messages). */
dnn_status dnn_hw_comm_profile_load_string(const char *text, const char *name,
                                           dnn_comm_profile **out,
                                           dnn_error *err);

/* Writes the profile as INI, atomically. DNN_EIO. */
dnn_status dnn_hw_comm_profile_save(const dnn_comm_profile *cp,
                                    const char *path, dnn_error *err);

/*
 * The fit of (op, algo) on `ranks` ranks, or at the nearest communicator
 * size measured for that pair (ties go to the larger) when there is none
 * for `ranks`; NULL when the pair was not measured. *exact (may be NULL)
 * tells whether the communicator size matched. Use dnn_hw_comm_fit_time
 * for an exact match and the link parameters with comm.h's formula
 * otherwise. Does not allocate.
 */
const dnn_comm_fit *dnn_hw_comm_profile_lookup(const dnn_comm_profile *cp,
                                               int op, int algo, size_t ranks,
                                               bool *exact);

/*
 * The fits of (op, algo) that bracket `ranks`: *lo the one with the most
 * ranks below it, *hi the one with the fewest above (either NULL when
 * there is none; both NULL on an exact match, which lookup returns). Lets
 * a predictor interpolate between measured communicator sizes
 * (docs/calibration.md). Does not allocate.
 */
void dnn_hw_comm_profile_bracket(const dnn_comm_profile *cp, int op, int algo,
                                 size_t ranks, const dnn_comm_fit **lo,
                                 const dnn_comm_fit **hi);

/* The fitted time of `bytes` (>= 0) at the fit's own communicator size:
 * the segment whose range holds `bytes` (the first below its range, the
 * last above it). */
double dnn_hw_comm_fit_time(const dnn_comm_fit *fit, double bytes);

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_HW_H */
