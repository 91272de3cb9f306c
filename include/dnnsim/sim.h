/*
 * dnnsim sim: the discrete-event simulator (DES) that times one training
 * iteration as a task graph on devices, streams and shared links.
 *
 * A *task* is a piece of work with a fixed part (compute time, or the
 * latency alpha of a message) and, for a transfer, a number of bytes that
 * then move over one *link*. A *stream* executes its tasks one at a time in
 * the order they were added (a CUDA stream, an MPI progress thread); a
 * task starts as soon as its stream predecessor and every task it depends
 * on have finished. A *device* groups streams (compute, collectives,
 * point-to-point sends) for breakdowns and traces. A *link* has a
 * bandwidth that the transfers on it share fairly: with flows of total
 * weight W active, each runs at min(flow cap, bandwidth / W) bytes/s, and
 * every start or end of a flow re-times the others (processor sharing).
 * Models and sources: docs/models.md §9.
 *
 * The engine is a binary min-heap keyed on (time, insertion sequence), so
 * events at equal times fire in the order they were scheduled and runs are
 * deterministic. The graph is built once; dnn_sim_init allocates the event
 * pool and heap on its first call only, and dnn_sim_step never allocates,
 * so a graph can be re-timed (dnn_sim_task_retime) and re-run cheaply.
 *
 * Usage:
 *   dnn_sim_alloc -> add devices, streams, links, tasks, deps
 *   -> dnn_sim_init -> while (dnn_sim_step(...)) ... (or dnn_sim_run)
 *   -> read times, dnn_sim_stream_breakdown, dnn_sim_trace_write.
 */
#ifndef DNNSIM_SIM_H
#define DNNSIM_SIM_H

#include "dnnsim/core.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "No stream, link, layer or micro-batch". */
#define DNN_SIM_NONE ((size_t)-1)

/*
 * Task categories: identifier, name (in traces), and whether the task is
 * communication (1) or compute (0). Breakdowns sum busy time per category.
 */
#define DNN_SIM_CAT_LIST(X)                                                    \
  X(FWD, "fwd", 0)                                                             \
  X(BWD, "bwd", 0)                                                             \
  X(RECOMPUTE, "recompute", 0)                                                 \
  X(OPTIMIZER, "optimizer", 0)                                                 \
  X(SEND, "send", 1)                                                           \
  X(COLLECTIVE, "collective", 1)

typedef enum dnn_sim_cat {
#define DNN_SIM_CAT_ENUM_(id, name, comm) DNN_SIM_##id,
  DNN_SIM_CAT_LIST(DNN_SIM_CAT_ENUM_)
#undef DNN_SIM_CAT_ENUM_
      DNN_SIM_CAT_COUNT
} dnn_sim_cat;

/* "fwd", "bwd", ... ("?" for an unknown value). */
const char *dnn_sim_cat_name(dnn_sim_cat c);
/* Whether tasks of the category are communication. */
bool dnn_sim_cat_is_comm(dnn_sim_cat c);

typedef struct dnn_sim dnn_sim;

/* What happened in one step. */
typedef enum dnn_sim_event_kind {
  DNN_SIM_EV_LATENCY, /* a transfer's fixed part ended; its bytes start */
  DNN_SIM_EV_DONE     /* a task finished */
} dnn_sim_event_kind;

typedef struct dnn_sim_event {
  double time_s;
  size_t task;
  dnn_sim_event_kind kind;
} dnn_sim_event;

/* A task to add (dnn_sim_default_task gives the defaults). */
typedef struct dnn_sim_task {
  size_t stream;     /* executes on this stream, in the order added */
  dnn_sim_cat cat;   /* for breakdowns and traces */
  double duration_s; /* fixed part, >= 0: compute time or latency */
  double bytes;      /* > 0: then moves this many bytes over `link` */
  size_t link;       /* DNN_SIM_NONE when bytes == 0 */
  double weight;     /* >= 1: identical flows this transfer stands for */
  /* Labels for traces, borrowed: they must outlive the simulator. */
  const char *name;  /* e.g. a layer name, "send activations" */
  const char *layer; /* the layer it belongs to, or NULL */
  size_t microbatch; /* or DNN_SIM_NONE */
  double data_bytes; /* bytes the task stands for, for traces (a collective
                        at its closed-form time, or moved as an equivalent
                        transfer); 0: a transfer's own bytes; >= 0 */
} dnn_sim_task;

/* Time of one device's critical stream, split so that the parts add up to
 * `end_s` (busy_s over all categories + comm_exposed_s + idle_s). */
typedef struct dnn_sim_breakdown {
  double busy_s[DNN_SIM_CAT_COUNT]; /* the stream's tasks, per category */
  double comm_exposed_s;            /* idle while waiting for communication */
  double idle_s; /* other idle time (waiting for other devices) */
  double end_s;  /* when the stream's last task ends */
  double comm_s; /* communication tasks of the device, hidden or not */
  /* The part of comm_exposed_s spent waiting for other devices'
   * communication tasks. */
  double comm_waited_s;
} dnn_sim_breakdown;

/* Trace options. */
typedef struct dnn_sim_trace_params {
  size_t max_devices; /* the first N devices only; 0: all */
} dnn_sim_trace_params;

/* ------------------------------------------------------------------------ */
/* Building                                                                  */
/* ------------------------------------------------------------------------ */

/* An empty simulator. DNN_ENOMEM. */
dnn_status dnn_sim_alloc(dnn_sim **out, dnn_error *err);

/* Frees it. NULL does nothing. */
void dnn_sim_free(dnn_sim *s);

/* stream 0, compute category, no bytes, no link, weight 1, no labels. */
dnn_sim_task dnn_sim_default_task(void);

/*
 * Reserves room for `tasks` tasks and `deps` dependencies so that adding
 * them does not reallocate. Optional. DNN_ENOMEM.
 */
dnn_status dnn_sim_reserve(dnn_sim *s, size_t tasks, size_t deps,
                           dnn_error *err);

/*
 * Adds a device named `name` (copied) that traces show as process
 * `trace_id`. Its index goes to *id (may be NULL). DNN_ENOMEM.
 */
dnn_status dnn_sim_add_device(dnn_sim *s, const char *name, size_t trace_id,
                              size_t *id, dnn_error *err);

/* Adds a stream of `device` named `name` (copied). DNN_EINVAL for an
 * unknown device; DNN_ENOMEM. */
dnn_status dnn_sim_add_stream(dnn_sim *s, size_t device, const char *name,
                              size_t *id, dnn_error *err);

/*
 * Adds a link of `bandwidth_Bps` shared by its flows, each flow capped at
 * `flow_cap_Bps` (>= bandwidth for no cap). DNN_EINVAL unless both are
 * > 0 and finite; DNN_ENOMEM.
 */
dnn_status dnn_sim_add_link(dnn_sim *s, const char *name, double bandwidth_Bps,
                            double flow_cap_Bps, size_t *id, dnn_error *err);

/*
 * Adds a task; its index (0, 1, ... in order) goes to *id (may be NULL).
 * DNN_EINVAL for an unknown stream or link, a negative or non-finite
 * duration or byte count, bytes without a link, a weight below 1, or more
 * than 2^32 - 2 tasks; DNN_ENOMEM.
 */
dnn_status dnn_sim_add_task(dnn_sim *s, const dnn_sim_task *t, size_t *id,
                            dnn_error *err);

/* `after` starts only once `before` has finished. DNN_EINVAL for unknown
 * or equal tasks; DNN_ENOMEM. */
dnn_status dnn_sim_add_dep(dnn_sim *s, size_t before, size_t after,
                           dnn_error *err);

/*
 * Changes a task's fixed part and bytes (re-timing a built graph); takes
 * effect at the next dnn_sim_init. Never allocates. `bytes` > 0 needs a
 * task created with a link.
 */
void dnn_sim_task_retime(dnn_sim *s, size_t task, double duration_s,
                         double bytes);

/* Changes a link's bandwidth and flow cap (as dnn_sim_add_link); takes
 * effect at the next dnn_sim_init. */
void dnn_sim_link_retime(dnn_sim *s, size_t link, double bandwidth_Bps,
                         double flow_cap_Bps);

/* ------------------------------------------------------------------------ */
/* Running: init / step / done, or run                                       */
/* ------------------------------------------------------------------------ */

/*
 * Resets the simulation to time 0 and schedules the tasks that can start.
 * The first call after building (or after adding more) prepares the graph
 * (for a large graph this includes one run, to lay tasks out in the order
 * they execute) and allocates the event pool and heap: DNN_ENOMEM, or
 * DNN_EINVAL when the dependencies and stream orders form a cycle (the
 * message names a task on it). Later calls never allocate.
 */
dnn_status dnn_sim_init(dnn_sim *s, dnn_error *err);

/*
 * Processes the next event and describes it in *ev (may be NULL). Returns
 * false, doing nothing, when no event is left. Never allocates.
 */
bool dnn_sim_step(dnn_sim *s, dnn_sim_event *ev);

/* True when every task has finished. */
bool dnn_sim_done(const dnn_sim *s);

/* dnn_sim_init, then dnn_sim_step until no event is left. Errors as
 * dnn_sim_init. */
dnn_status dnn_sim_run(dnn_sim *s, dnn_error *err);

/* ------------------------------------------------------------------------ */
/* Results (valid after a run, until the next init)                          */
/* ------------------------------------------------------------------------ */

size_t dnn_sim_task_count(const dnn_sim *s);
size_t dnn_sim_device_count(const dnn_sim *s);
size_t dnn_sim_stream_count(const dnn_sim *s);

/* The task as added (labels borrowed). */
dnn_sim_task dnn_sim_task_get(const dnn_sim *s, size_t task);

/* When the task started and ended, in seconds (NaN before it did). */
void dnn_sim_task_times(const dnn_sim *s, size_t task, double *start_s,
                        double *end_s);

/* The device a stream belongs to. */
size_t dnn_sim_stream_device(const dnn_sim *s, size_t stream);

/* End of the last task: the simulated time of the graph, in seconds. */
double dnn_sim_makespan(const dnn_sim *s);

/* Events processed since the last init. */
uint64_t dnn_sim_events(const dnn_sim *s);

/*
 * Splits the time of `stream` from 0 to the end of its last task into its
 * tasks' busy time per category and its idle gaps. Each gap is walked back
 * along the chain of tasks that held it up (for each task, the dependency
 * that finished last): time covered by a communication task is exposed
 * communication, the rest is idle (in a pipeline, the bubble). comm_s sums
 * the durations of every communication task on the streams of the
 * stream's device; comm_waited_s is the exposed time spent on other
 * devices' communication, so comm_exposed_s <= comm_s + comm_waited_s.
 * Never allocates.
 */
void dnn_sim_stream_breakdown(const dnn_sim *s, size_t stream,
                              dnn_sim_breakdown *out);

/*
 * Writes the simulated timeline in the Chrome trace event format
 * (docs/traces.md; loadable in Perfetto and chrome://tracing): one process
 * per device (pid = its trace_id), one thread per stream, one complete
 * event (ph "X", ts and dur in microseconds) per task with its layer, pass,
 * micro-batch and bytes in args. The output depends only on the graph and
 * its times, so equal runs give byte-identical files. DNN_EINVAL before a
 * complete run; DNN_EIO on a write error.
 */
dnn_status dnn_sim_trace_write(const dnn_sim *s, FILE *fp,
                               const dnn_sim_trace_params *p, dnn_error *err);

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_SIM_H */
