/*
 * MPI back end (include/dnnsim/measure.h): sweeps of collectives over
 * message sizes, communicator sizes and OpenMPI algorithms, plus the LogGP
 * probes (ping-pong, send overhead, message gap) and the reduction cost
 * gamma (MPI_Reduce_local).
 *
 * Method (OSU micro-benchmarks and nccl-tests conventions; Deep500's
 * repeated samples, REFERENCE.md §5.2): for each point, a barrier, then
 * `runs` back-to-back operations timed with MPI_Wtime on every rank; the
 * sample is the maximum over ranks (MPI_Allreduce MAX, outside the timed
 * region) divided by `runs`. Every rank feeds the same samples to its own
 * deterministic sampler, so all ranks stop together without extra
 * messages. LogGP (Alexandrov et al., SPAA 1995; measurement after
 * Kielmann, Bal & Verstoep, IPDPS 2000): the half round trip of a
 * ping-pong is L + 2o + (m-1)G; o is the sender's CPU time of a small
 * eager send into a pre-posted receive; g the time per message of a
 * stream of small messages.
 *
 * Forcing an algorithm: OpenMPI's coll tuned component reads
 * coll_tuned_<op>_algorithm when a communicator is created, and only when
 * coll_tuned_use_dynamic_rules was on at MPI_Init (its MPI_T control
 * variable cannot be set later: MPI_T_ERR_CVAR_SET_NEVER in OpenMPI 4.1).
 * So each (ranks, op, algorithm) group writes the control variable
 * through MPI_T and then creates its communicator with MPI_Comm_split.
 *
 * Invariant: every rank runs the same sequence of world-level collectives
 * (split, sleeping barrier, status broadcast) whatever its role, so a
 * sweep cannot deadlock on a rank that sits a group out. Ranks outside a
 * group wait in MPI_Ibarrier + MPI_Test + nanosleep instead of spinning,
 * which matters when ranks oversubscribe cores.
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* What can be measured (independent of MPI being built in)                 */
/* ------------------------------------------------------------------------ */

/*
 * OpenMPI 4.1 coll_tuned algorithm numbers (`ompi_info --param coll tuned
 * --level 9`) and the comm.h model each realises, following the ids of
 * parallelism/comm.c (docs/measure.md has the table): "nonoverlapping" is
 * reduce + broadcast (the tree model); broadcast's scatter + allgather
 * variants are comm.h's recursive-doubling and Rabenseifner ids; Bruck's
 * all-to-all is the recursive-doubling id. OpenMPI's unsegmented chain is
 * left out: comm.h's chain is pipelined.
 */
static const dnn_meas_mpi_algo ALGOS[] = {
    {DNN_COMM_ALLREDUCE, "nonoverlapping", 2, DNN_COMM_ALGO_BINOMIAL_TREE},
    {DNN_COMM_ALLREDUCE, "recursive_doubling", 3,
     DNN_COMM_ALGO_RECURSIVE_DOUBLING},
    {DNN_COMM_ALLREDUCE, "ring", 4, DNN_COMM_ALGO_RING},
    {DNN_COMM_ALLREDUCE, "rabenseifner", 6, DNN_COMM_ALGO_RABENSEIFNER},
    {DNN_COMM_REDUCE_SCATTER, "recursive_halving", 2,
     DNN_COMM_ALGO_RECURSIVE_DOUBLING},
    {DNN_COMM_REDUCE_SCATTER, "ring", 3, DNN_COMM_ALGO_RING},
    {DNN_COMM_ALLGATHER, "recursive_doubling", 3,
     DNN_COMM_ALGO_RECURSIVE_DOUBLING},
    {DNN_COMM_ALLGATHER, "ring", 4, DNN_COMM_ALGO_RING},
    {DNN_COMM_BROADCAST, "binomial", 6, DNN_COMM_ALGO_BINOMIAL_TREE},
    {DNN_COMM_BROADCAST, "scatter_allgather", 8,
     DNN_COMM_ALGO_RECURSIVE_DOUBLING},
    {DNN_COMM_BROADCAST, "scatter_allgather_ring", 9,
     DNN_COMM_ALGO_RABENSEIFNER},
    {DNN_COMM_ALLTOALL, "pairwise", 2, DNN_COMM_ALGO_DIRECT},
    {DNN_COMM_ALLTOALL, "modified_bruck", 3, DNN_COMM_ALGO_RECURSIVE_DOUBLING},
};

const dnn_meas_mpi_algo *dnn_meas_mpi_algos(size_t *count) {
  *count = DNN_ARRAY_LEN(ALGOS);
  return ALGOS;
}

static const size_t SIZES_FULL[] = {
    4,        8,        12,       16,        32,       64,      128,
    192,      256,      512,      1024,      2048,     3072,    4096,
    8192,     16384,    32768,    49152,     65536,    131072,  262144,
    524288,   786432,   1048576,  2097152,   4194304,  8388608, 12582912,
    16777216, 33554432, 67108864, 134217728, 268435456};
static const size_t SIZES_QUICK[] = {4,      64,      1024,   16384,
                                     131072, 1048576, 4194304};

const size_t *dnn_meas_mpi_default_sizes(bool quick, size_t *n) {
  if (quick) {
    *n = DNN_ARRAY_LEN(SIZES_QUICK);
    return SIZES_QUICK;
  }
  *n = DNN_ARRAY_LEN(SIZES_FULL);
  return SIZES_FULL;
}

dnn_meas_mpi_params dnn_meas_mpi_default_params(void) {
  dnn_meas_mpi_params p;
  memset(&p, 0, sizeof p);
  p.ops = DNN_MEAS_OP_BIT(DNN_COMM_ALLREDUCE) |
          DNN_MEAS_OP_BIT(DNN_COMM_REDUCE_SCATTER) |
          DNN_MEAS_OP_BIT(DNN_COMM_ALLGATHER) |
          DNN_MEAS_OP_BIT(DNN_COMM_BROADCAST) |
          DNN_MEAS_OP_BIT(DNN_COMM_ALLTOALL) | DNN_MEAS_OP_BIT(DNN_COMM_P2P) |
          DNN_MEAS_OP_BIT(DNN_COMM_REDUCE);
  p.per_algorithm = true;
  p.repeat = dnn_meas_repeat_default_params();
  /* Large collectives are slow under oversubscription; five samples of a
   * stable operation already give a tight interval. */
  p.repeat.warmup_runs = 1;
  p.repeat.min_samples = 5;
  p.repeat.max_samples = 50;
  p.repeat.max_total_s = 2;
  return p;
}

#if !DNNSIM_HAVE_MPI
/* ------------------------------------------------------------------------ */
/* Without MPI                                                              */
/* ------------------------------------------------------------------------ */

struct dnn_meas_mpi {
  int unused;
};

#define NO_MPI                                                                 \
  "this dnnsim was built without MPI (install libopenmpi-dev and rebuild "     \
  "with -DDNNSIM_WITH_MPI=ON)"

dnn_status dnn_meas_mpi_init(int *argc, char ***argv, dnn_meas_mpi **out,
                             dnn_error *err) {
  (void)argc;
  (void)argv;
  *out = NULL;
  return DNN_FAIL(err, DNN_EUNSUPPORTED, "%s", NO_MPI);
}
void dnn_meas_mpi_finalize(dnn_meas_mpi *m) {
  (void)m;
}
size_t dnn_meas_mpi_rank(const dnn_meas_mpi *m) {
  (void)m;
  return 0;
}
size_t dnn_meas_mpi_size(const dnn_meas_mpi *m) {
  (void)m;
  return 1;
}
size_t dnn_meas_mpi_nodes(const dnn_meas_mpi *m) {
  (void)m;
  return 1;
}
bool dnn_meas_mpi_can_force(const dnn_meas_mpi *m) {
  (void)m;
  return false;
}
const char *dnn_meas_mpi_library(const dnn_meas_mpi *m) {
  (void)m;
  return "none";
}
void dnn_meas_mpi_abort(dnn_meas_mpi *m, int code) {
  (void)m;
  (void)code;
}
dnn_status dnn_meas_mpi_barrier(dnn_meas_mpi *m, dnn_error *err) {
  (void)m;
  return DNN_FAIL(err, DNN_EUNSUPPORTED, "%s", NO_MPI);
}
dnn_status dnn_meas_mpi_agree(dnn_meas_mpi *m, dnn_status st, dnn_error *err) {
  (void)m;
  (void)err;
  return st;
}
dnn_status dnn_meas_mpi_run(dnn_meas_mpi *m, const dnn_meas_mpi_params *p,
                            dnn_error *err) {
  (void)m;
  (void)p;
  return DNN_FAIL(err, DNN_EUNSUPPORTED, "%s", NO_MPI);
}

#else
/* ------------------------------------------------------------------------ */
/* With MPI                                                                 */
/* ------------------------------------------------------------------------ */

#include <mpi.h>

struct dnn_meas_mpi {
  int rank, size;
  int nodes;      /* hosts of MPI_COMM_WORLD (shared-memory domains) */
  bool own_init;  /* we called MPI_Init, so we finalize */
  bool t_init;    /* MPI_T initialised */
  bool can_force; /* dynamic rules on and the algorithm cvars exist */
  char library[MPI_MAX_LIBRARY_VERSION_STRING];
};

dnn_status dnn__meas_mpi_fail(dnn_error *err, int rc, const char *what) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS)
    snprintf(msg, sizeof msg, "error %d", rc);
  return DNN_FAIL(err, DNN_EMPI, "%s failed: %s", what, msg);
}

/* ---- MPI_T control variables --------------------------------------------- */

/* Reads an int-valued control variable; false when it does not exist. */
static bool cvar_read(const char *name, int *value) {
  int idx = -1;
  if (MPI_T_cvar_get_index(name, &idx) != MPI_SUCCESS)
    return false;
  MPI_T_cvar_handle h;
  int count = 0;
  if (MPI_T_cvar_handle_alloc(idx, NULL, &h, &count) != MPI_SUCCESS)
    return false;
  int v = 0;
  bool ok = count == 1 && MPI_T_cvar_read(h, &v) == MPI_SUCCESS;
  MPI_T_cvar_handle_free(&h);
  if (ok)
    *value = v;
  return ok;
}

dnn_status dnn__meas_mpi_cvar_write(const char *name, int value,
                                    dnn_error *err) {
  int idx = -1;
  if (MPI_T_cvar_get_index(name, &idx) != MPI_SUCCESS)
    return DNN_FAIL(err, DNN_EMPI, "MPI_T control variable %s not found", name);
  MPI_T_cvar_handle h;
  int count = 0;
  int rc = MPI_T_cvar_handle_alloc(idx, NULL, &h, &count);
  if (rc != MPI_SUCCESS)
    return DNN_FAIL(err, DNN_EMPI, "MPI_T handle for %s: error %d", name, rc);
  rc = MPI_T_cvar_write(h, &value);
  MPI_T_cvar_handle_free(&h);
  if (rc != MPI_SUCCESS)
    return DNN_FAIL(err, DNN_EMPI, "setting %s = %d through MPI_T: error %d",
                    name, value, rc);
  return DNN_OK;
}

/* The coll_tuned control variable of `op`, or NULL. */
static const char *algo_cvar(dnn_comm_op op) {
  switch (op) {
  case DNN_COMM_ALLREDUCE:
    return "coll_tuned_allreduce_algorithm";
  case DNN_COMM_REDUCE_SCATTER:
    return "coll_tuned_reduce_scatter_algorithm";
  case DNN_COMM_ALLGATHER:
    return "coll_tuned_allgather_algorithm";
  case DNN_COMM_BROADCAST:
    return "coll_tuned_bcast_algorithm";
  case DNN_COMM_ALLTOALL:
    return "coll_tuned_alltoall_algorithm";
  default:
    return NULL;
  }
}

/* ---- Set-up ----------------------------------------------------------------
 */

dnn_status dnn_meas_mpi_init(int *argc, char ***argv, dnn_meas_mpi **out,
                             dnn_error *err) {
  *out = NULL;
  dnn_meas_mpi *m = dnn_calloc(1, sizeof *m);
  if (m == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory");
  dnn_status st = DNN_OK;
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int rc = MPI_Init(argc, argv);
    if (rc != MPI_SUCCESS) {
      dnn_free(m);
      return DNN_FAIL(err, DNN_EMPI, "MPI_Init failed (error %d)", rc);
    }
    m->own_init = true;
  }
  DNN__MEAS_MPI_TRY(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  DNN__MEAS_MPI_TRY(MPI_Comm_rank(MPI_COMM_WORLD, &m->rank));
  DNN__MEAS_MPI_TRY(MPI_Comm_size(MPI_COMM_WORLD, &m->size));
  int len = 0;
  MPI_Get_library_version(m->library, &len);
  /* The first phrase ("Open MPI v4.1.4"): the rest is build detail. */
  char *nl = strchr(m->library, '\n');
  if (nl)
    *nl = '\0';
  char *cut = strpbrk(m->library, ",;");
  if (cut)
    *cut = '\0';
  char *gap = strstr(m->library, "  ");
  if (gap)
    *gap = '\0';
  int provided = 0;
  if (MPI_T_init_thread(MPI_THREAD_SINGLE, &provided) == MPI_SUCCESS) {
    m->t_init = true;
    int dyn = 0, alg = 0;
    m->can_force = cvar_read("coll_tuned_use_dynamic_rules", &dyn) && dyn &&
                   cvar_read("coll_tuned_allreduce_algorithm", &alg);
  }
  /* Every rank must agree, or a forced group would mix algorithms. */
  int f = m->can_force ? 1 : 0, all = 0;
  DNN__MEAS_MPI_TRY(
      MPI_Allreduce(&f, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
  m->can_force = all == 1;
  /* Nodes: the shared-memory domains (MPI-3 split type); each domain's
   * first rank counts one. */
  MPI_Comm shm = MPI_COMM_NULL;
  int lead = 0;
  DNN__MEAS_MPI_TRY(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0,
                                        MPI_INFO_NULL, &shm));
  int shm_rank = 0;
  int rc = MPI_Comm_rank(shm, &shm_rank);
  MPI_Comm_free(&shm);
  DNN__MEAS_MPI_TRY(rc);
  lead = shm_rank == 0 ? 1 : 0;
  DNN__MEAS_MPI_TRY(
      MPI_Allreduce(&lead, &m->nodes, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
  *out = m;
  return DNN_OK;
fail:
  dnn_meas_mpi_finalize(m);
  return st;
}

void dnn_meas_mpi_finalize(dnn_meas_mpi *m) {
  if (m == NULL)
    return;
  /* MPI_T before MPI_Finalize: the other order crashes OpenMPI 4.1. */
  if (m->t_init)
    MPI_T_finalize();
  if (m->own_init) {
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin)
      MPI_Finalize();
  }
  dnn_free(m);
}

size_t dnn_meas_mpi_rank(const dnn_meas_mpi *m) {
  return (size_t)m->rank;
}

size_t dnn_meas_mpi_size(const dnn_meas_mpi *m) {
  return (size_t)m->size;
}

size_t dnn_meas_mpi_nodes(const dnn_meas_mpi *m) {
  return m->nodes > 0 ? (size_t)m->nodes : 1;
}

bool dnn_meas_mpi_can_force(const dnn_meas_mpi *m) {
  return m->can_force;
}

const char *dnn_meas_mpi_library(const dnn_meas_mpi *m) {
  return m->library;
}

void dnn_meas_mpi_abort(dnn_meas_mpi *m, int code) {
  (void)m;
  MPI_Abort(MPI_COMM_WORLD, code);
}

/* A barrier that sleeps between tests instead of spinning. */
static int sleepy_barrier(MPI_Comm comm) {
  MPI_Request req;
  int rc = MPI_Ibarrier(comm, &req);
  if (rc != MPI_SUCCESS)
    return rc;
  for (;;) {
    int flag = 0;
    rc = MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS || flag)
      return rc;
    struct timespec ts = {0, 200000}; /* 0.2 ms */
    nanosleep(&ts, NULL);
  }
}

dnn_status dnn_meas_mpi_barrier(dnn_meas_mpi *m, dnn_error *err) {
  (void)m;
  dnn_status st = DNN_OK;
  DNN__MEAS_MPI_TRY(sleepy_barrier(MPI_COMM_WORLD));
fail:
  return st;
}

dnn_status dnn_meas_mpi_agree(dnn_meas_mpi *m, dnn_status st, dnn_error *err) {
  int code = (int)st;
  if (MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
    return DNN_FAIL(err, DNN_EMPI, "MPI_Bcast of the status failed");
  if (code == DNN_OK)
    return DNN_OK;
  char msg[DNN_ERROR_MSG_MAX];
  memset(msg, 0, sizeof msg);
  if (m->rank == 0 && err)
    snprintf(msg, sizeof msg, "%s", err->msg);
  if (MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, 0, MPI_COMM_WORLD) !=
      MPI_SUCCESS)
    return DNN_FAIL(err, DNN_EMPI, "MPI_Bcast of the message failed");
  if (m->rank != 0)
    return DNN_FAIL(err, (dnn_status)code, "%s", msg);
  return (dnn_status)code;
}

/* ---- One group: (ranks, op, algorithm) ----------------------------------- */

/* What the sweep is doing; shared by every point. */
typedef struct sweep {
  dnn_meas_mpi *m;
  const dnn_meas_mpi_params *p;
  dnn_meas_sampler *s;
  MPI_Comm comm; /* the group's communicator (MPI_COMM_NULL outside) */
  int crank, csize;
  float *sbuf, *rbuf; /* buffers of the group */
  size_t buf_floats;
  MPI_Request *reqs;  /* max_runs receive requests (overhead probe) */
  size_t done, total; /* progress */
} sweep;

/* Kinds of points. */
typedef enum probe {
  PROBE_COLL,     /* a collective */
  PROBE_PINGPONG, /* half round trip */
  PROBE_OVERHEAD, /* sender CPU time of a small send */
  PROBE_GAP,      /* time per message in a stream */
  PROBE_LOCAL     /* MPI_Reduce_local */
} probe;

/* Floats each rank's send / receive buffer needs for `count` total. */
static void buffer_floats(dnn_comm_op op, size_t count, size_t P, size_t *send,
                          size_t *recv) {
  switch (op) {
  case DNN_COMM_REDUCE_SCATTER:
    *send = count;
    *recv = count / P;
    break;
  case DNN_COMM_ALLGATHER:
    *send = count / P;
    *recv = count;
    break;
  default:
    *send = count;
    *recv = count;
  }
}

/* The element count actually used for `size_bytes` (ops that split the
 * vector over ranks need a multiple of P; 0 when the size is too small). */
static size_t op_count(dnn_comm_op op, size_t size_bytes, size_t P) {
  size_t count = size_bytes / sizeof(float);
  if (op == DNN_COMM_REDUCE_SCATTER || op == DNN_COMM_ALLGATHER ||
      op == DNN_COMM_ALLTOALL)
    count -= count % P;
  return count;
}

/* One operation of a group. */
static int run_op(sweep *w, dnn_comm_op op, size_t count) {
  int n = (int)count, per = (int)(count / (size_t)w->csize);
  switch (op) {
  case DNN_COMM_ALLREDUCE:
    return MPI_Allreduce(w->sbuf, w->rbuf, n, MPI_FLOAT, MPI_SUM, w->comm);
  case DNN_COMM_REDUCE_SCATTER: {
    /* Equal counts; at most a few ranks, so a small stack array. */
    int counts[1024];
    for (int i = 0; i < w->csize && i < 1024; i++)
      counts[i] = per;
    return MPI_Reduce_scatter(w->sbuf, w->rbuf, counts, MPI_FLOAT, MPI_SUM,
                              w->comm);
  }
  case DNN_COMM_ALLGATHER:
    return MPI_Allgather(w->sbuf, per, MPI_FLOAT, w->rbuf, per, MPI_FLOAT,
                         w->comm);
  case DNN_COMM_BROADCAST:
    return MPI_Bcast(w->sbuf, n, MPI_FLOAT, 0, w->comm);
  case DNN_COMM_ALLTOALL:
    return MPI_Alltoall(w->sbuf, per, MPI_FLOAT, w->rbuf, per, MPI_FLOAT,
                        w->comm);
  default:
    return MPI_ERR_OP;
  }
}

/* Runs `runs` repetitions of a probe; the rank's elapsed time in *t. */
static int run_probe(sweep *w, probe kind, dnn_comm_op op, size_t count,
                     size_t runs, double *t) {
  int rc = MPI_SUCCESS;
  int n = (int)count;
  double t0 = 0;
  switch (kind) {
  case PROBE_COLL:
    t0 = MPI_Wtime();
    for (size_t r = 0; r < runs && rc == MPI_SUCCESS; r++)
      rc = run_op(w, op, count);
    *t = MPI_Wtime() - t0;
    return rc;
  case PROBE_PINGPONG:
    t0 = MPI_Wtime();
    for (size_t r = 0; r < runs && rc == MPI_SUCCESS; r++) {
      if (w->crank == 0) {
        rc = MPI_Send(w->sbuf, n, MPI_FLOAT, 1, 7, w->comm);
        if (rc == MPI_SUCCESS)
          rc =
              MPI_Recv(w->rbuf, n, MPI_FLOAT, 1, 7, w->comm, MPI_STATUS_IGNORE);
      } else {
        rc = MPI_Recv(w->rbuf, n, MPI_FLOAT, 0, 7, w->comm, MPI_STATUS_IGNORE);
        if (rc == MPI_SUCCESS)
          rc = MPI_Send(w->sbuf, n, MPI_FLOAT, 0, 7, w->comm);
      }
    }
    *t = (MPI_Wtime() - t0) / 2; /* half round trips */
    return rc;
  case PROBE_OVERHEAD:
    /* The receiver pre-posts every receive, so each send finds its match
     * and returns after its local work: the sender's overhead o. */
    if (w->crank == 1)
      for (size_t r = 0; r < runs && rc == MPI_SUCCESS; r++)
        rc = MPI_Irecv(w->rbuf + r, 1, MPI_FLOAT, 0, 8, w->comm, &w->reqs[r]);
    if (rc == MPI_SUCCESS)
      rc = MPI_Barrier(w->comm);
    t0 = MPI_Wtime();
    if (w->crank == 0)
      for (size_t r = 0; r < runs && rc == MPI_SUCCESS; r++)
        rc = MPI_Send(w->sbuf + r, 1, MPI_FLOAT, 1, 8, w->comm);
    *t = MPI_Wtime() - t0;
    if (w->crank == 1 && rc == MPI_SUCCESS) {
      rc = MPI_Waitall((int)runs, w->reqs, MPI_STATUSES_IGNORE);
      *t = 0; /* only the sender's time is o */
    }
    return rc;
  case PROBE_GAP:
    t0 = MPI_Wtime();
    if (w->crank == 0) {
      for (size_t r = 0; r < runs && rc == MPI_SUCCESS; r++)
        rc = MPI_Send(w->sbuf, n, MPI_FLOAT, 1, 9, w->comm);
      if (rc == MPI_SUCCESS)
        rc = MPI_Recv(w->rbuf, 1, MPI_FLOAT, 1, 10, w->comm, MPI_STATUS_IGNORE);
    } else {
      for (size_t r = 0; r < runs && rc == MPI_SUCCESS; r++)
        rc = MPI_Recv(w->rbuf, n, MPI_FLOAT, 0, 9, w->comm, MPI_STATUS_IGNORE);
      if (rc == MPI_SUCCESS)
        rc = MPI_Send(w->sbuf, 1, MPI_FLOAT, 0, 10, w->comm);
    }
    *t = MPI_Wtime() - t0;
    return rc;
  case PROBE_LOCAL:
    t0 = MPI_Wtime();
    for (size_t r = 0; r < runs && rc == MPI_SUCCESS; r++)
      rc = MPI_Reduce_local(w->sbuf, w->rbuf, n, MPI_FLOAT, MPI_SUM);
    *t = MPI_Wtime() - t0;
    return rc;
  }
  return MPI_ERR_OTHER;
}

/* Actions rank 0 broadcasts before each point. */
enum { ACT_MEASURE = 0, ACT_SKIP = 1, ACT_STOP = 2 };

/*
 * Measures one point on the group's communicator; every member calls it.
 * `st0` is rank 0's pending status (a stop request or an on_row failure),
 * which is broadcast so the whole group stops together.
 */
static dnn_status point(sweep *w, probe kind, dnn_comm_op op,
                        const dnn_meas_mpi_algo *algo, size_t size_bytes,
                        dnn_status *st0, dnn_error *err) {
  dnn_status st = DNN_OK;
  size_t P = (size_t)w->csize;
  size_t count = kind == PROBE_COLL ? op_count(op, size_bytes, P)
                                    : size_bytes / sizeof(float);
  if (count == 0)
    count = 1;
  size_t bytes = count * sizeof(float);
  dnn_meas_coll_row row;
  memset(&row, 0, sizeof row);
  row.op = op;
  row.ranks = kind == PROBE_LOCAL ? 1 : P;
  row.size_bytes = bytes;
  row.count = count;
  row.mpi_id = algo ? algo->mpi_id : 0;
  row.model = algo ? algo->model : DNN_COMM_ALGO_AUTO;
  const char *name = algo ? algo->name : "default";
  if (kind == PROBE_PINGPONG)
    name = "pingpong";
  else if (kind == PROBE_OVERHEAD)
    name = "overhead";
  else if (kind == PROBE_GAP)
    name = "gap";
  else if (kind == PROBE_LOCAL)
    name = "local";
  if (kind != PROBE_COLL)
    row.model =
        kind == PROBE_LOCAL ? DNN_COMM_ALGO_COUNT : DNN_COMM_ALGO_DIRECT;
  snprintf(row.algorithm, sizeof row.algorithm, "%s", name);

  /* Rank 0 decides: measure, skip (already measured) or stop. */
  int act = ACT_MEASURE;
  if (w->crank == 0) {
    char label[96];
    snprintf(label, sizeof label, "%s/%s P=%zu %zu B", dnn__meas_op_name(op),
             name, row.ranks, bytes);
    if (*st0 == DNN_OK && w->p->progress &&
        w->p->progress(w->p->progress_ud, w->done, w->total, label))
      *st0 = DNN_FAIL(err, DNN_EINTERRUPTED, "measurement interrupted");
    if (*st0 != DNN_OK)
      act = ACT_STOP;
    else if (w->p->done &&
             dnn_meas_coll_table_find(w->p->done, op, name, row.ranks, bytes))
      act = ACT_SKIP;
  }
  if (kind != PROBE_LOCAL)
    DNN__MEAS_MPI_TRY(MPI_Bcast(&act, 1, MPI_INT, 0, w->comm));
  w->done++;
  if (act != ACT_MEASURE)
    return act == ACT_STOP ? DNN_EINTERRUPTED : DNN_OK;

  const dnn_meas_repeat_params *rp = &w->p->repeat;
  size_t runs_cap = rp->max_runs;
  double t = 0, tmax = 0;
  /* Warm-up, which also sizes the samples. */
  size_t warm = rp->warmup_runs ? rp->warmup_runs : 1;
  if (warm > runs_cap)
    warm = runs_cap;
  if (kind != PROBE_LOCAL)
    DNN__MEAS_MPI_TRY(MPI_Barrier(w->comm));
  DNN__MEAS_MPI_TRY(run_probe(w, kind, op, count, warm, &t));
  if (kind != PROBE_LOCAL)
    DNN__MEAS_MPI_TRY(
        MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, w->comm));
  else
    tmax = t;
  size_t runs = dnn_meas_repeat_runs(rp, tmax / dnn__d(warm));
  dnn_meas_sampler_reset(w->s, runs);
  while (!dnn_meas_sampler_done(w->s)) {
    if (kind != PROBE_LOCAL)
      DNN__MEAS_MPI_TRY(MPI_Barrier(w->comm));
    DNN__MEAS_MPI_TRY(run_probe(w, kind, op, count, runs, &t));
    if (kind != PROBE_LOCAL)
      DNN__MEAS_MPI_TRY(
          MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, w->comm));
    else
      tmax = t;
    dnn_meas_sampler_add(w->s, tmax / dnn__d(runs));
  }
  dnn_meas_sampler_stats(w->s, &row.t);
  if (w->crank == 0) {
    double f = kind == PROBE_COLL ? dnn_meas_busbw_factor(op, P) : 1;
    row.algbw_GBps =
        row.t.median_s > 0 ? dnn__d(bytes) / row.t.median_s / 1e9 : 0;
    row.busbw_GBps = row.algbw_GBps * f;
    if (w->p->on_row && *st0 == DNN_OK)
      *st0 = w->p->on_row(w->p->row_ud, &row, err);
  }
  return DNN_OK;
fail:
  return st;
}

/* Allocates the group's buffers (every member), filled with data that
 * keeps sums finite. */
static dnn_status group_buffers(sweep *w, size_t floats, dnn_error *err) {
  dnn_free(w->sbuf);
  dnn_free(w->rbuf);
  w->sbuf = dnn_malloc(floats * sizeof(float));
  w->rbuf = dnn_malloc(floats * sizeof(float));
  if (w->sbuf == NULL || w->rbuf == NULL)
    return DNN_FAIL(err, DNN_ENOMEM,
                    "out of memory for two buffers of %zu bytes",
                    floats * sizeof(float));
  for (size_t i = 0; i < floats; i++) {
    w->sbuf[i] = 1e-3f * (float)(i % 1000);
    w->rbuf[i] = 0;
  }
  w->buf_floats = floats;
  return DNN_OK;
}

/*
 * One group on the first `P` world ranks. Every world rank calls it; ranks
 * >= P only take part in the split and the closing barrier.
 */
static dnn_status group(sweep *w, size_t P, probe kind, dnn_comm_op op,
                        const dnn_meas_mpi_algo *algo, const size_t *sizes,
                        size_t n_sizes, dnn_status *st0, dnn_error *err) {
  dnn_status st = DNN_OK;
  dnn_meas_mpi *m = w->m;
  const char *cv = algo_cvar(op);
  if (kind == PROBE_COLL && m->can_force && cv) {
    if ((st = dnn__meas_mpi_cvar_write(cv, algo ? algo->mpi_id : 0, err)))
      goto fail;
  }
  int color = (size_t)m->rank < P ? 0 : MPI_UNDEFINED;
  DNN__MEAS_MPI_TRY(MPI_Comm_split(MPI_COMM_WORLD, color, m->rank, &w->comm));
  if (w->comm != MPI_COMM_NULL) {
    DNN__MEAS_MPI_TRY(MPI_Comm_set_errhandler(w->comm, MPI_ERRORS_RETURN));
    DNN__MEAS_MPI_TRY(MPI_Comm_rank(w->comm, &w->crank));
    DNN__MEAS_MPI_TRY(MPI_Comm_size(w->comm, &w->csize));
    size_t need = 1;
    for (size_t i = 0; i < n_sizes; i++) {
      size_t s = 0, r = 0;
      size_t count = sizes[i] / sizeof(float);
      buffer_floats(op, count, P, &s, &r);
      if (s > need)
        need = s;
      if (r > need)
        need = r;
    }
    if (need < w->p->repeat.max_runs)
      need = w->p->repeat.max_runs; /* the overhead probe's receives */
    if ((st = group_buffers(w, need, err)))
      goto fail;
    for (size_t i = 0; i < n_sizes && st == DNN_OK; i++) {
      if (kind == PROBE_COLL && op_count(op, sizes[i], P) == 0)
        continue;
      st = point(w, kind, op, algo, sizes[i], st0, err);
    }
    if (st == DNN_EINTERRUPTED)
      st = DNN_OK; /* carried in *st0 on rank 0 */
    if (st)
      goto fail;
  }
fail:
  if (w->comm != MPI_COMM_NULL) {
    MPI_Comm_free(&w->comm);
    w->comm = MPI_COMM_NULL;
  }
  /* Everyone meets here; a failure anywhere becomes rank 0's status (a
   * rank that failed alone cannot continue, so it aborts the job). */
  int bad = st != DNN_OK, any = 0;
  if (MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD) !=
      MPI_SUCCESS)
    return DNN_FAIL(err, DNN_EMPI, "MPI_Allreduce of the group status failed");
  if (sleepy_barrier(MPI_COMM_WORLD) != MPI_SUCCESS)
    return DNN_FAIL(err, DNN_EMPI, "barrier after a group failed");
  if (any) {
    if (m->rank == 0 && st == DNN_OK)
      st = DNN_FAIL(err, DNN_EMPI, "an MPI call failed on another rank");
    return dnn_meas_mpi_agree(m, m->rank == 0 ? st : DNN_EMPI, err);
  }
  /* Rank 0's stop request (or on_row failure) ends the sweep everywhere. */
  return dnn_meas_mpi_agree(m, m->rank == 0 ? *st0 : DNN_OK, err);
}

/* Number of points of a group (for the progress total). */
static size_t group_points(probe kind, dnn_comm_op op, size_t P,
                           const size_t *sizes, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (kind != PROBE_COLL || op_count(op, sizes[i], P) > 0)
      k++;
  return k;
}

static dnn_status check_params(const dnn_meas_mpi *m,
                               const dnn_meas_mpi_params *p, dnn_error *err) {
  if (m->size < 2)
    return DNN_FAIL(err, DNN_EINVAL,
                    "collective calibration needs at least 2 MPI ranks (got "
                    "%d): run it under mpirun -np N with N >= 2",
                    m->size);
  dnn_status st = dnn_meas_repeat_params_check(&p->repeat, err);
  if (st)
    return st;
  if (p->repeat.max_runs > 100000)
    return DNN_FAIL(err, DNN_EINVAL, "repeat max_runs above 100000");
  for (size_t i = 0; i < p->n_ranks; i++)
    if (p->ranks[i] < 2 || p->ranks[i] > (size_t)m->size)
      return DNN_FAIL(err, DNN_EINVAL,
                      "communicator size %zu is outside [2, %d] (the number "
                      "of MPI ranks)",
                      p->ranks[i], m->size);
  for (size_t i = 0; i < p->n_sizes; i++)
    if (p->sizes[i] < sizeof(float) || p->sizes[i] > ((size_t)1 << 34))
      return DNN_FAIL(err, DNN_EINVAL,
                      "message size %zu B is outside [4 B, 16 GiB]",
                      p->sizes[i]);
  if (p->ops == 0)
    return DNN_FAIL(err, DNN_EINVAL, "no operation to measure");
  return DNN_OK;
}

dnn_status dnn_meas_mpi_run(dnn_meas_mpi *m, const dnn_meas_mpi_params *p,
                            dnn_error *err) {
  dnn_status st = check_params(m, p, err);
  if (st)
    return dnn_meas_mpi_agree(m, st, err);
  sweep w;
  memset(&w, 0, sizeof w);
  w.m = m;
  w.p = p;
  w.comm = MPI_COMM_NULL;
  const size_t *sizes = p->sizes;
  size_t n_sizes = p->n_sizes;
  if (sizes == NULL)
    sizes = dnn_meas_mpi_default_sizes(false, &n_sizes);
  /* Sizes beyond the buffer limit are dropped on every rank alike. */
  size_t *kept = dnn_calloc(n_sizes ? n_sizes : 1, sizeof *kept);
  size_t ranks[64], n_ranks = 0;
  if (p->ranks) {
    for (size_t i = 0; i < p->n_ranks && n_ranks < 64; i++)
      ranks[n_ranks++] = p->ranks[i];
  } else {
    for (size_t r = 2; r <= (size_t)m->size && n_ranks < 63; r *= 2)
      ranks[n_ranks++] = r;
    if (ranks[n_ranks - 1] != (size_t)m->size)
      ranks[n_ranks++] = (size_t)m->size;
  }
  if ((st = dnn_meas_sampler_alloc(&p->repeat, &w.s, err)))
    goto fail;
  w.reqs = dnn_calloc(p->repeat.max_runs, sizeof *w.reqs);
  if (kept == NULL || w.reqs == NULL) {
    st = DNN_FAIL(err, DNN_ENOMEM, "out of memory");
    goto fail;
  }
  size_t nk = 0;
  for (size_t i = 0; i < n_sizes; i++)
    if (!(p->max_buffer_bytes > 0) || dnn__d(sizes[i]) <= p->max_buffer_bytes)
      kept[nk++] = sizes[i];

  static const dnn_comm_op COLLS[] = {
      DNN_COMM_ALLREDUCE, DNN_COMM_REDUCE_SCATTER, DNN_COMM_ALLGATHER,
      DNN_COMM_BROADCAST, DNN_COMM_ALLTOALL};
  size_t n_algos = 0;
  const dnn_meas_mpi_algo *algos = dnn_meas_mpi_algos(&n_algos);
  bool force = p->per_algorithm && m->can_force;
  bool p2p = p->ops & DNN_MEAS_OP_BIT(DNN_COMM_P2P);
  bool local = p->ops & DNN_MEAS_OP_BIT(DNN_COMM_REDUCE);
  size_t small[1] = {sizeof(float) * 2};

  /* Count the points for progress. */
  for (size_t r = 0; r < n_ranks; r++)
    for (size_t o = 0; o < DNN_ARRAY_LEN(COLLS); o++) {
      if (!(p->ops & DNN_MEAS_OP_BIT(COLLS[o])))
        continue;
      size_t k = group_points(PROBE_COLL, COLLS[o], ranks[r], kept, nk);
      w.total += k;
      for (size_t a = 0; force && a < n_algos; a++)
        if (algos[a].op == COLLS[o])
          w.total += k;
    }
  if (p2p)
    w.total += nk + 2;
  if (local)
    w.total += nk;

  dnn_status st0 = DNN_OK; /* rank 0's stop request or on_row failure */
  for (size_t r = 0; r < n_ranks && st == DNN_OK; r++)
    for (size_t o = 0; o < DNN_ARRAY_LEN(COLLS) && st == DNN_OK; o++) {
      if (!(p->ops & DNN_MEAS_OP_BIT(COLLS[o])))
        continue;
      st = group(&w, ranks[r], PROBE_COLL, COLLS[o], NULL, kept, nk, &st0, err);
      for (size_t a = 0; force && a < n_algos && st == DNN_OK; a++)
        if (algos[a].op == COLLS[o])
          st = group(&w, ranks[r], PROBE_COLL, COLLS[o], &algos[a], kept, nk,
                     &st0, err);
    }
  if (p2p && st == DNN_OK)
    st = group(&w, 2, PROBE_PINGPONG, DNN_COMM_P2P, NULL, kept, nk, &st0, err);
  if (p2p && st == DNN_OK)
    st = group(&w, 2, PROBE_OVERHEAD, DNN_COMM_P2P, NULL, small, 1, &st0, err);
  if (p2p && st == DNN_OK)
    st = group(&w, 2, PROBE_GAP, DNN_COMM_P2P, NULL, small, 1, &st0, err);
  if (local && st == DNN_OK)
    st = group(&w, 1, PROBE_LOCAL, DNN_COMM_REDUCE, NULL, kept, nk, &st0, err);
  /* Leave the defaults in place for whatever runs after us. */
  if (m->can_force)
    for (size_t o = 0; o < DNN_ARRAY_LEN(COLLS); o++)
      dnn__meas_mpi_cvar_write(algo_cvar(COLLS[o]), 0, NULL);
  if (st == DNN_OK && m->rank == 0 && p->progress)
    p->progress(p->progress_ud, w.total, w.total, "done");
fail:
  dnn_free(kept);
  dnn_free(w.reqs);
  dnn_free(w.sbuf);
  dnn_free(w.rbuf);
  dnn_meas_sampler_free(w.s);
  return dnn_meas_mpi_agree(m, st, err);
}

#endif /* DNNSIM_HAVE_MPI */
