/*
 * The discrete-event simulator (sim.h): tasks on FIFO streams with
 * dependencies, transfers on links shared by processor sharing, and a
 * binary min-heap of pending events keyed on (time, insertion sequence).
 *
 * Invariants:
 * - Every task has at most one pending event (the end of its fixed part,
 *   or the end of its transfer), so the event pool is the per-task runtime
 *   array and the heap never holds more entries than there are tasks:
 *   both are allocated once, when the graph is prepared (first init), and
 *   the event loop never allocates.
 * - A heap entry carries its key (time, sequence), the task and, for the
 *   end of a transfer, the transfer; the transfer carries its heap
 *   position (the intrusive back-link that lets a link re-time a flow in
 *   O(log n)). Only transfers are ever re-keyed, so other moves write
 *   nothing outside the heap, and keeping keys in the heap array rather
 *   than behind pointers keeps sift loops in cache.
 * - A task starts when its dependency count reaches zero; a stream is a
 *   chain of implicit dependencies in the order tasks were added.
 * - On a link of bandwidth B with active flows of total weight W every flow
 *   runs at min(cap, B / W) (equal shares, the processor-sharing model of
 *   a fair network; docs/models.md §9). When a flow joins or leaves, every
 *   flow's remaining bytes are brought up to date and its end re-keyed.
 *
 * Layout: tasks are added in any order (a builder walks one device after
 * another), but they run as a wavefront across all devices. Preparing the
 * graph renumbers them internally in a topological order (Kahn's, FIFO),
 * which follows that wavefront, and the event loop works on compact arrays
 * in that order; the API keeps the caller's ids. Graphs of 4096 tasks or
 * more are then renumbered once more by the start times of a first run
 * (ties in topological order), so the loop sweeps its arrays almost
 * sequentially: on the 64-stage bench pipeline (600 k tasks) this takes
 * the engine from 5 to over 10 million events per second, since large
 * graphs are bound by cache misses, not by arithmetic. Re-timing keeps
 * the order; it stays close as long as durations change smoothly.
 *
 * Ties: events at equal times fire in the order they were (re)scheduled;
 * tasks without dependencies start in id order, successors of a task in the
 * order their dependencies were added, then its stream successor. Nothing
 * depends on pointer values or hashing, so two runs are identical.
 */
#include "internal.h"
#include "dnnsim/sim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NONE32 UINT32_MAX
#define MAX_TASKS (UINT32_MAX - 1)
#define NAME_MAX_LEN 96

enum { PH_WAIT, PH_FIXED, PH_LINK, PH_DONE };

/* A task as added, in the caller's numbering (cold). */
typedef struct bdef {
  double dur_s;
  const char *name;
  const char *layer;
  size_t microbatch;
  double data_bytes;    /* shown in traces when there is no transfer */
  uint32_t stream_next; /* caller's id, or NONE32 */
  uint32_t xfer;        /* index into xfers[], or NONE32 */
  uint32_t n_deps;      /* dependencies incl. the stream predecessor */
  uint32_t stream;
  uint8_t cat;
} bdef;

/* What the event loop reads, in internal (prepared) order: 24 bytes. */
typedef struct tdef {
  double dur_s;
  uint32_t stream_next; /* internal, or NONE32 */
  uint32_t succ_off;    /* into succ[] */
  uint32_t n_succ;
  uint32_t xfer; /* index into xfers[], or NONE32 */
} tdef;

/* Runtime state of a task, internal order: the event pool. */
typedef struct trt {
  double start_s, end_s;
  uint32_t deps_left;
  uint32_t blocker; /* internal id of the dependency that finished last */
  uint32_t phase;
} trt;

/* A transfer's bytes, link and flow state. */
typedef struct txfer {
  double bytes;
  double weight;
  double remaining; /* bytes left on the link */
  double rate;      /* bytes/s, while on the link */
  uint32_t link;
  uint32_t task;       /* internal id, set when prepared */
  uint32_t prev, next; /* active flows of the link (xfer indices) */
  uint32_t heap_pos;   /* of its pending transfer end, or NONE32 */
} txfer;

/* A pending event. Only a transfer's end can be re-keyed (when its link's
 * share changes), so only transfers keep their heap position: `flow` names
 * the transfer, and moving any other entry writes nothing else. */
typedef struct hent {
  double t;
  uint64_t seq;
  uint32_t task;
  uint32_t flow; /* xfer index for a transfer's end, else NONE32 */
} hent;

typedef struct sdevice {
  char name[NAME_MAX_LEN];
  size_t trace_id;
} sdevice;

typedef struct sstream {
  char name[NAME_MAX_LEN];
  uint32_t device;
  uint32_t first, last; /* caller's ids, NONE32 when empty */
  uint32_t ifirst;      /* internal id of the first, when prepared */
} sstream;

typedef struct slink {
  char name[NAME_MAX_LEN];
  double bw_Bps, cap_Bps;
  double t_last;       /* remaining bytes are exact at this time */
  double wsum;         /* weight of the active flows */
  uint32_t head, tail; /* xfer indices */
} slink;

typedef struct dedge {
  uint32_t before, after; /* caller's ids */
} dedge;

struct dnn_sim {
  bdef *defs;
  size_t n_tasks, cap_defs;
  txfer *xfers;
  size_t n_xfers, cap_xfers;
  dedge *edges;
  size_t n_edges, cap_edges;
  sdevice *devices;
  size_t n_devices, cap_devices;
  sstream *streams;
  size_t n_streams, cap_streams;
  slink *links;
  size_t n_links, cap_links;

  /* Prepared by the first init (and again after more was added). */
  bool prepared;
  tdef *tasks;       /* internal order */
  uint32_t *n_deps;  /* internal order */
  uint32_t *succ;    /* internal ids */
  trt *rt;           /* internal order */
  hent *heap;        /* n_tasks */
  uint32_t *ext2int; /* caller's id -> internal */
  uint32_t *int2ext; /* internal -> caller's id */

  /* Run state. */
  size_t heap_n;
  bool top_free; /* heap[0] was popped; the next push may take its place */
  uint64_t seq;
  uint64_t events;
  size_t n_done;
  double makespan_s;
  bool ran;
};

static const char *const cat_names[] = {
#define DNN_SIM_CAT_NAME_(id, name, comm) name,
    DNN_SIM_CAT_LIST(DNN_SIM_CAT_NAME_)
#undef DNN_SIM_CAT_NAME_
};
static const bool cat_comm[] = {
#define DNN_SIM_CAT_COMM_(id, name, comm) comm,
    DNN_SIM_CAT_LIST(DNN_SIM_CAT_COMM_)
#undef DNN_SIM_CAT_COMM_
};

const char *dnn_sim_cat_name(dnn_sim_cat c) {
  return (unsigned)c < DNN_SIM_CAT_COUNT ? cat_names[c] : "?";
}

bool dnn_sim_cat_is_comm(dnn_sim_cat c) {
  return (unsigned)c < DNN_SIM_CAT_COUNT && cat_comm[c];
}

/* ---- Building ------------------------------------------------------------ */

dnn_status dnn_sim_alloc(dnn_sim **out, dnn_error *err) {
  *out = dnn_calloc(1, sizeof **out);
  if (*out == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory allocating a simulator");
  return DNN_OK;
}

static void unprepare(dnn_sim *s) {
  dnn_free(s->tasks);
  dnn_free(s->n_deps);
  dnn_free(s->succ);
  dnn_free(s->rt);
  dnn_free(s->heap);
  dnn_free(s->ext2int);
  dnn_free(s->int2ext);
  s->tasks = NULL;
  s->n_deps = NULL;
  s->succ = NULL;
  s->rt = NULL;
  s->heap = NULL;
  s->ext2int = s->int2ext = NULL;
  s->prepared = false;
  s->ran = false;
}

void dnn_sim_free(dnn_sim *s) {
  if (s == NULL)
    return;
  unprepare(s);
  dnn_free(s->defs);
  dnn_free(s->xfers);
  dnn_free(s->edges);
  dnn_free(s->devices);
  dnn_free(s->streams);
  dnn_free(s->links);
  dnn_free(s);
}

dnn_sim_task dnn_sim_default_task(void) {
  dnn_sim_task t;
  memset(&t, 0, sizeof t);
  t.stream = 0;
  t.cat = DNN_SIM_FWD;
  t.link = DNN_SIM_NONE;
  t.weight = 1;
  t.microbatch = DNN_SIM_NONE;
  return t;
}

dnn_status dnn_sim_reserve(dnn_sim *s, size_t tasks, size_t deps,
                           dnn_error *err) {
  if (!dnn__grow((void **)&s->defs, &s->cap_defs, tasks, sizeof *s->defs) ||
      !dnn__grow((void **)&s->edges, &s->cap_edges, deps, sizeof *s->edges))
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory reserving %zu tasks",
                    tasks);
  return DNN_OK;
}

static void copy_name(char *dst, const char *src) {
  snprintf(dst, NAME_MAX_LEN, "%s", src ? src : "");
}

dnn_status dnn_sim_add_device(dnn_sim *s, const char *name, size_t trace_id,
                              size_t *id, dnn_error *err) {
  if (!dnn__grow((void **)&s->devices, &s->cap_devices, s->n_devices + 1,
                 sizeof *s->devices))
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory adding a device");
  sdevice *d = &s->devices[s->n_devices];
  copy_name(d->name, name);
  d->trace_id = trace_id;
  if (id)
    *id = s->n_devices;
  s->n_devices++;
  return DNN_OK;
}

dnn_status dnn_sim_add_stream(dnn_sim *s, size_t device, const char *name,
                              size_t *id, dnn_error *err) {
  if (device >= s->n_devices)
    return DNN_FAIL(err, DNN_EINVAL, "stream '%s': no device %zu (%zu added)",
                    name ? name : "", device, s->n_devices);
  if (!dnn__grow((void **)&s->streams, &s->cap_streams, s->n_streams + 1,
                 sizeof *s->streams))
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory adding a stream");
  sstream *st = &s->streams[s->n_streams];
  copy_name(st->name, name);
  st->device = (uint32_t)device;
  st->first = st->last = st->ifirst = NONE32;
  if (id)
    *id = s->n_streams;
  s->n_streams++;
  return DNN_OK;
}

static bool rate_ok(double v) {
  return isfinite(v) && v > 0;
}

dnn_status dnn_sim_add_link(dnn_sim *s, const char *name, double bandwidth_Bps,
                            double flow_cap_Bps, size_t *id, dnn_error *err) {
  if (!rate_ok(bandwidth_Bps) || !rate_ok(flow_cap_Bps))
    return DNN_FAIL(err, DNN_EINVAL,
                    "link '%s': bandwidth %g B/s and flow cap %g B/s must be "
                    "positive and finite",
                    name ? name : "", bandwidth_Bps, flow_cap_Bps);
  if (!dnn__grow((void **)&s->links, &s->cap_links, s->n_links + 1,
                 sizeof *s->links))
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory adding a link");
  slink *l = &s->links[s->n_links];
  memset(l, 0, sizeof *l);
  copy_name(l->name, name);
  l->bw_Bps = bandwidth_Bps;
  l->cap_Bps = flow_cap_Bps;
  l->head = l->tail = NONE32;
  if (id)
    *id = s->n_links;
  s->n_links++;
  return DNN_OK;
}

static bool amount_ok(double v) {
  return isfinite(v) && v >= 0;
}

dnn_status dnn_sim_add_task(dnn_sim *s, const dnn_sim_task *t, size_t *id,
                            dnn_error *err) {
  const char *nm = t->name ? t->name : dnn_sim_cat_name(t->cat);
  if (t->stream >= s->n_streams)
    return DNN_FAIL(err, DNN_EINVAL, "task '%s': no stream %zu (%zu added)", nm,
                    t->stream, s->n_streams);
  if ((unsigned)t->cat >= DNN_SIM_CAT_COUNT)
    return DNN_FAIL(err, DNN_EINVAL, "task '%s': unknown category %d", nm,
                    (int)t->cat);
  if (!amount_ok(t->duration_s) || !amount_ok(t->bytes) ||
      !amount_ok(t->data_bytes))
    return DNN_FAIL(err, DNN_EINVAL,
                    "task '%s': duration %g s and bytes %g (data %g) must be "
                    "finite and >= 0",
                    nm, t->duration_s, t->bytes, t->data_bytes);
  if (t->link != DNN_SIM_NONE && t->link >= s->n_links)
    return DNN_FAIL(err, DNN_EINVAL, "task '%s': no link %zu (%zu added)", nm,
                    t->link, s->n_links);
  if (t->bytes > 0 && t->link == DNN_SIM_NONE)
    return DNN_FAIL(err, DNN_EINVAL,
                    "task '%s': %g bytes to move but no link to move them on",
                    nm, t->bytes);
  if (!(t->weight >= 1) || !isfinite(t->weight))
    return DNN_FAIL(err, DNN_EINVAL, "task '%s': weight %g must be >= 1", nm,
                    t->weight);
  if (s->n_tasks >= MAX_TASKS)
    return DNN_FAIL(err, DNN_EINVAL, "task '%s': more than %lu tasks", nm,
                    (unsigned long)MAX_TASKS);
  if (!dnn__grow((void **)&s->defs, &s->cap_defs, s->n_tasks + 1,
                 sizeof *s->defs) ||
      (t->link != DNN_SIM_NONE && !dnn__grow((void **)&s->xfers, &s->cap_xfers,
                                             s->n_xfers + 1, sizeof *s->xfers)))
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory adding task '%s'", nm);
  uint32_t k = (uint32_t)s->n_tasks;
  bdef *d = &s->defs[k];
  d->dur_s = t->duration_s;
  d->name = t->name;
  d->layer = t->layer;
  d->microbatch = t->microbatch;
  d->data_bytes = t->data_bytes;
  d->stream_next = NONE32;
  d->xfer = NONE32;
  d->n_deps = 0;
  d->stream = (uint32_t)t->stream;
  d->cat = (uint8_t)t->cat;
  if (t->link != DNN_SIM_NONE) {
    txfer *x = &s->xfers[s->n_xfers];
    memset(x, 0, sizeof *x);
    x->bytes = t->bytes;
    x->weight = t->weight;
    x->link = (uint32_t)t->link;
    x->task = x->prev = x->next = NONE32;
    d->xfer = (uint32_t)s->n_xfers++;
  }
  sstream *st = &s->streams[t->stream];
  if (st->last != NONE32) {
    s->defs[st->last].stream_next = k;
    d->n_deps = 1;
  } else {
    st->first = k;
  }
  st->last = k;
  if (id)
    *id = k;
  s->n_tasks++;
  if (s->prepared)
    unprepare(s);
  return DNN_OK;
}

dnn_status dnn_sim_add_dep(dnn_sim *s, size_t before, size_t after,
                           dnn_error *err) {
  if (before >= s->n_tasks || after >= s->n_tasks || before == after)
    return DNN_FAIL(err, DNN_EINVAL,
                    "dependency %zu -> %zu: tasks must differ and exist (%zu "
                    "added)",
                    before, after, s->n_tasks);
  if (!dnn__grow((void **)&s->edges, &s->cap_edges, s->n_edges + 1,
                 sizeof *s->edges))
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory adding a dependency");
  s->edges[s->n_edges].before = (uint32_t)before;
  s->edges[s->n_edges].after = (uint32_t)after;
  s->n_edges++;
  s->defs[after].n_deps++;
  if (s->prepared)
    unprepare(s);
  return DNN_OK;
}

void dnn_sim_task_retime(dnn_sim *s, size_t task, double duration_s,
                         double bytes) {
  DNN_ASSERT(task < s->n_tasks);
  DNN_ASSERT(amount_ok(duration_s) && amount_ok(bytes));
  bdef *d = &s->defs[task];
  DNN_ASSERT(bytes <= 0 || d->xfer != NONE32);
  d->dur_s = duration_s;
  if (s->prepared)
    s->tasks[s->ext2int[task]].dur_s = duration_s;
  if (d->xfer != NONE32)
    s->xfers[d->xfer].bytes = bytes;
}

void dnn_sim_link_retime(dnn_sim *s, size_t link, double bandwidth_Bps,
                         double flow_cap_Bps) {
  DNN_ASSERT(link < s->n_links);
  DNN_ASSERT(rate_ok(bandwidth_Bps) && rate_ok(flow_cap_Bps));
  s->links[link].bw_Bps = bandwidth_Bps;
  s->links[link].cap_Bps = flow_cap_Bps;
}

/* ---- Preparing: order, successor lists, event pool, heap --------------- */

static const char *task_name(const dnn_sim *s, size_t ext) {
  const bdef *d = &s->defs[ext];
  return d->name ? d->name : dnn_sim_cat_name((dnn_sim_cat)d->cat);
}

/*
 * Kahn's algorithm (FIFO) over dependencies and stream order in the
 * caller's numbering, with successor lists `off`/`list`. Fills int2ext
 * with the order; returns a task left on a cycle, or NONE32. `left` has a
 * slot per task.
 */
static uint32_t topo_order(dnn_sim *s, const uint32_t *off,
                           const uint32_t *list, uint32_t *left) {
  size_t n = s->n_tasks, head = 0, tail = 0;
  uint32_t *q = s->int2ext;
  for (size_t k = 0; k < n; k++) {
    left[k] = s->defs[k].n_deps;
    if (left[k] == 0)
      q[tail++] = (uint32_t)k;
  }
  while (head < tail) {
    uint32_t k = q[head++];
    for (uint32_t e = off[k]; e < off[k + 1]; e++)
      if (--left[list[e]] == 0)
        q[tail++] = list[e];
    uint32_t nx = s->defs[k].stream_next;
    if (nx != NONE32 && --left[nx] == 0)
      q[tail++] = nx;
  }
  if (tail == n)
    return NONE32;
  for (size_t k = 0; k < n; k++)
    if (left[k] > 0)
      return (uint32_t)k;
  return NONE32;
}

/* Fills the loop's arrays in the internal order int2ext, from the
 * caller's successor lists `off`/`list`. */
static void build_internal(dnn_sim *s, const uint32_t *off,
                           const uint32_t *list) {
  size_t n = s->n_tasks;
  for (size_t i = 0; i < n; i++)
    s->ext2int[s->int2ext[i]] = (uint32_t)i;
  uint32_t at = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t k = s->int2ext[i];
    const bdef *d = &s->defs[k];
    tdef *t = &s->tasks[i];
    t->dur_s = d->dur_s;
    t->stream_next =
        d->stream_next == NONE32 ? NONE32 : s->ext2int[d->stream_next];
    t->xfer = d->xfer;
    t->succ_off = at;
    t->n_succ = off[k + 1] - off[k];
    for (uint32_t e = off[k]; e < off[k + 1]; e++)
      s->succ[at++] = s->ext2int[list[e]];
    s->n_deps[i] = d->n_deps;
    if (d->xfer != NONE32)
      s->xfers[d->xfer].task = (uint32_t)i;
  }
  for (size_t i = 0; i < s->n_streams; i++) {
    sstream *st = &s->streams[i];
    st->ifirst = st->first == NONE32 ? NONE32 : s->ext2int[st->first];
  }
}

typedef struct okey {
  double start_s;
  uint32_t id;
} okey;

static int okey_cmp(const void *a, const void *b) {
  const okey *x = a, *y = b;
  if (x->start_s != y->start_s)
    return x->start_s < y->start_s ? -1 : 1;
  return (x->id > y->id) - (x->id < y->id);
}

/* Graphs smaller than this stay in cache whatever their order. */
#define REORDER_MIN_TASKS 4096

static dnn_status prepare(dnn_sim *s, dnn_error *err) {
  unprepare(s);
  size_t n = s->n_tasks, ne = s->n_edges, n1 = n ? n : 1;
  uint32_t *off = dnn_calloc(n + 1, sizeof *off);
  uint32_t *list = dnn_malloc((ne ? ne : 1) * sizeof *list);
  okey *keys = NULL;
  s->tasks = dnn_malloc(n1 * sizeof *s->tasks);
  s->n_deps = dnn_malloc(n1 * sizeof *s->n_deps);
  s->succ = dnn_malloc((ne ? ne : 1) * sizeof *s->succ);
  s->rt = dnn_calloc(n1, sizeof *s->rt);
  s->heap = dnn_malloc(n1 * sizeof *s->heap);
  s->ext2int = dnn_malloc(n1 * sizeof *s->ext2int);
  s->int2ext = dnn_malloc(n1 * sizeof *s->int2ext);
  if (n >= REORDER_MIN_TASKS)
    keys = dnn_malloc(n * sizeof *keys);
  if (!off || !list || !s->tasks || !s->n_deps || !s->succ || !s->rt ||
      !s->heap || !s->ext2int || !s->int2ext ||
      (n >= REORDER_MIN_TASKS && !keys)) {
    dnn_free(off);
    dnn_free(list);
    dnn_free(keys);
    unprepare(s);
    return DNN_FAIL(err, DNN_ENOMEM,
                    "out of memory preparing a simulation of %zu tasks", n);
  }
  /* Successor lists in the caller's numbering: a counting sort of the
   * edges by `before`, stable in insertion order. */
  for (size_t e = 0; e < ne; e++)
    off[s->edges[e].before + 1]++;
  for (size_t k = 0; k < n; k++)
    off[k + 1] += off[k];
  uint32_t *fill = s->ext2int; /* scratch until the order is known */
  for (size_t k = 0; k < n; k++)
    fill[k] = off[k];
  for (size_t e = 0; e < ne; e++)
    list[fill[s->edges[e].before]++] = s->edges[e].after;
  uint32_t bad = topo_order(s, off, list, s->ext2int);
  if (bad != NONE32) {
    const char *nm = task_name(s, bad);
    dnn_free(off);
    dnn_free(list);
    dnn_free(keys);
    unprepare(s);
    return DNN_FAIL(err, DNN_EINVAL,
                    "the dependencies and stream orders form a cycle: task "
                    "%lu ('%s') can never start",
                    (unsigned long)bad, nm);
  }
  build_internal(s, off, list);
  s->prepared = true;
  if (keys) {
    /* Renumber by start time in a first run (ties in topological order):
     * the loop then sweeps its arrays nearly sequentially. */
    dnn_sim_run(s, NULL);
    for (size_t i = 0; i < n; i++) {
      keys[i].start_s = s->rt[i].start_s;
      keys[i].id = (uint32_t)i;
    }
    qsort(keys, n, sizeof *keys, okey_cmp);
    uint32_t *old = s->n_deps; /* scratch: the old order */
    for (size_t i = 0; i < n; i++)
      old[i] = s->int2ext[i];
    for (size_t i = 0; i < n; i++)
      s->int2ext[i] = old[keys[i].id];
    build_internal(s, off, list);
    s->ran = false;
  }
  dnn_free(off);
  dnn_free(list);
  dnn_free(keys);
  return DNN_OK;
}

/* ---- The heap ------------------------------------------------------------ */

/* A 4-ary heap: half the levels of a binary one, and a node's children
 * share a cache line or two, which matters more than the extra compares
 * (tested on the bench pipeline). */
#define HEAP_ARITY 4

static inline bool hless(const hent *a, const hent *b) {
  return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static inline void placed(dnn_sim *s, const hent *e, size_t i) {
  if (e->flow != NONE32)
    s->xfers[e->flow].heap_pos = (uint32_t)i;
}

static void sift_up(dnn_sim *s, size_t i) {
  hent *h = s->heap;
  hent e = h[i];
  while (i > 0) {
    size_t p = (i - 1) / HEAP_ARITY;
    if (!hless(&e, &h[p]))
      break;
    h[i] = h[p];
    placed(s, &h[i], i);
    i = p;
  }
  h[i] = e;
  placed(s, &e, i);
}

static void sift_down(dnn_sim *s, size_t i) {
  hent *h = s->heap;
  size_t n = s->heap_n;
  hent e = h[i];
  for (;;) {
    size_t c = HEAP_ARITY * i + 1;
    if (c >= n)
      break;
    size_t end = c + HEAP_ARITY < n ? c + HEAP_ARITY : n, m = c;
    for (size_t j = c + 1; j < end; j++)
      if (hless(&h[j], &h[m]))
        m = j;
    if (!hless(&h[m], &e))
      break;
    h[i] = h[m];
    placed(s, &h[i], i);
    i = m;
  }
  h[i] = e;
  placed(s, &e, i);
}

/* Completes the removal of a popped top that no push has replaced. */
static void settle(dnn_sim *s) {
  if (!s->top_free)
    return;
  s->top_free = false;
  if (--s->heap_n > 0) {
    s->heap[0] = s->heap[s->heap_n];
    sift_down(s, 0);
  }
}

/* Adds an event. Right after a pop the new entry takes the root's place
 * and sinks once, instead of the last entry sinking and the new one
 * rising: most events schedule their successor's end this way. */
static void push(dnn_sim *s, uint32_t k, uint32_t flow, double t) {
  hent e = {t, s->seq++, k, flow};
  if (s->top_free) {
    s->top_free = false;
    s->heap[0] = e;
    sift_down(s, 0);
    return;
  }
  size_t i = s->heap_n++;
  s->heap[i] = e;
  sift_up(s, i);
}

/* Schedules the end of task k's fixed part at time t. */
static void schedule(dnn_sim *s, uint32_t k, double t) {
  push(s, k, NONE32, t);
}

/* Schedules (or re-schedules) the end of transfer f at time t. */
static void schedule_flow(dnn_sim *s, uint32_t f, double t) {
  txfer *x = &s->xfers[f];
  if (x->heap_pos == NONE32) {
    push(s, x->task, f, t);
    return;
  }
  settle(s);
  hent *e = &s->heap[x->heap_pos];
  bool earlier = t < e->t;
  e->t = t;
  e->seq = s->seq++;
  if (earlier)
    sift_up(s, x->heap_pos);
  else
    sift_down(s, x->heap_pos);
}

/* ---- Links: processor sharing -------------------------------------------- */

/* Brings every active flow's remaining bytes up to time t. */
static void link_advance(dnn_sim *s, slink *l, double t) {
  double dt = t - l->t_last;
  if (dt > 0)
    for (uint32_t f = l->head; f != NONE32; f = s->xfers[f].next)
      s->xfers[f].remaining -= s->xfers[f].rate * dt;
  l->t_last = t;
}

/* Gives every active flow its equal share and re-keys its end. */
static void link_rerate(dnn_sim *s, slink *l, double t) {
  if (l->head == NONE32)
    return;
  double share = fmin(l->cap_Bps, l->bw_Bps / l->wsum);
  for (uint32_t f = l->head; f != NONE32; f = s->xfers[f].next) {
    txfer *x = &s->xfers[f];
    x->rate = share;
    double rem = x->remaining > 0 ? x->remaining : 0;
    schedule_flow(s, f, t + rem / share);
  }
}

static void link_join(dnn_sim *s, uint32_t k, double t) {
  uint32_t f = s->tasks[k].xfer;
  txfer *x = &s->xfers[f];
  slink *l = &s->links[x->link];
  link_advance(s, l, t);
  s->rt[k].phase = PH_LINK;
  x->remaining = x->bytes;
  x->next = NONE32;
  x->prev = l->tail;
  if (l->tail != NONE32)
    s->xfers[l->tail].next = f;
  else
    l->head = f;
  l->tail = f;
  l->wsum += x->weight;
  link_rerate(s, l, t);
}

static void link_leave(dnn_sim *s, uint32_t k, double t) {
  uint32_t f = s->tasks[k].xfer;
  txfer *x = &s->xfers[f];
  slink *l = &s->links[x->link];
  link_advance(s, l, t);
  if (x->prev != NONE32)
    s->xfers[x->prev].next = x->next;
  else
    l->head = x->next;
  if (x->next != NONE32)
    s->xfers[x->next].prev = x->prev;
  else
    l->tail = x->prev;
  l->wsum = l->head == NONE32 ? 0 : l->wsum - x->weight;
  x->remaining = 0;
  link_rerate(s, l, t);
}

static bool has_bytes(const dnn_sim *s, const tdef *d) {
  return d->xfer != NONE32 && s->xfers[d->xfer].bytes > 0;
}

/* ---- The event loop -------------------------------------------------------
 */

/* Cache hint (a no-op where the compiler has none). */
#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)0)
#endif

static void start(dnn_sim *s, uint32_t k, double t, uint32_t blocker) {
  const tdef *d = &s->tasks[k];
  trt *r = &s->rt[k];
  r->start_s = t;
  r->blocker = blocker;
  /* The stream successor is touched when this task ends, after the other
   * streams' events in between: fetch it now, so that the loop does not
   * wait on memory for it. */
  if (d->stream_next != NONE32) {
    PREFETCH(&s->rt[d->stream_next]);
    PREFETCH(&s->tasks[d->stream_next]);
  }
  if (d->dur_s <= 0 && has_bytes(s, d)) {
    link_join(s, k, t);
    return;
  }
  r->phase = PH_FIXED;
  schedule(s, k, t + d->dur_s);
}

static void complete(dnn_sim *s, uint32_t k, double t) {
  const tdef *d = &s->tasks[k];
  trt *r = &s->rt[k];
  r->end_s = t;
  r->phase = PH_DONE;
  s->n_done++;
  if (t > s->makespan_s)
    s->makespan_s = t;
  const uint32_t *sc = s->succ + d->succ_off;
  for (uint32_t e = 0; e < d->n_succ; e++) {
    uint32_t j = sc[e];
    if (--s->rt[j].deps_left == 0)
      start(s, j, t, k);
  }
  uint32_t nx = d->stream_next;
  if (nx != NONE32 && --s->rt[nx].deps_left == 0)
    start(s, nx, t, k);
}

dnn_status dnn_sim_init(dnn_sim *s, dnn_error *err) {
  if (!s->prepared) {
    dnn_status st = prepare(s, err);
    if (st)
      return st;
  }
  size_t n = s->n_tasks;
  for (size_t k = 0; k < n; k++) {
    trt *r = &s->rt[k];
    r->deps_left = s->n_deps[k];
    r->blocker = NONE32;
    r->phase = PH_WAIT;
  }
  for (size_t i = 0; i < s->n_links; i++) {
    slink *l = &s->links[i];
    l->t_last = 0;
    l->wsum = 0;
    l->head = l->tail = NONE32;
  }
  for (size_t i = 0; i < s->n_xfers; i++)
    s->xfers[i].heap_pos = NONE32;
  s->heap_n = 0;
  s->top_free = false;
  s->seq = 0;
  s->events = 0;
  s->n_done = 0;
  s->makespan_s = 0;
  s->ran = true;
  /* Tasks without dependencies come first in the internal order, in the
   * caller's order. */
  for (size_t k = 0; k < n && s->n_deps[k] == 0; k++)
    start(s, (uint32_t)k, 0, NONE32);
  return DNN_OK;
}

bool dnn_sim_step(dnn_sim *s, dnn_sim_event *ev) {
  if (s->heap_n == 0)
    return false;
  hent top = s->heap[0];
  s->top_free = true;
  if (top.flow != NONE32)
    s->xfers[top.flow].heap_pos = NONE32;
  uint32_t k = top.task;
  trt *r = &s->rt[k];
  s->events++;
  dnn_sim_event_kind kind = DNN_SIM_EV_DONE;
  if (r->phase == PH_FIXED && has_bytes(s, &s->tasks[k])) {
    link_join(s, k, top.t);
    kind = DNN_SIM_EV_LATENCY;
  } else {
    if (r->phase == PH_LINK)
      link_leave(s, k, top.t);
    complete(s, k, top.t);
  }
  settle(s);
  if (ev) {
    ev->time_s = top.t;
    ev->task = s->int2ext[k];
    ev->kind = kind;
  }
  return true;
}

bool dnn_sim_done(const dnn_sim *s) {
  return s->ran && s->n_done == s->n_tasks;
}

dnn_status dnn_sim_run(dnn_sim *s, dnn_error *err) {
  dnn_status st = dnn_sim_init(s, err);
  if (st)
    return st;
  while (dnn_sim_step(s, NULL)) {
  }
  DNN_ASSERT(s->n_done == s->n_tasks);
  return DNN_OK;
}

/* ---- Results ------------------------------------------------------------- */

size_t dnn_sim_task_count(const dnn_sim *s) {
  return s->n_tasks;
}

size_t dnn_sim_device_count(const dnn_sim *s) {
  return s->n_devices;
}

size_t dnn_sim_stream_count(const dnn_sim *s) {
  return s->n_streams;
}

dnn_sim_task dnn_sim_task_get(const dnn_sim *s, size_t task) {
  DNN_ASSERT(task < s->n_tasks);
  const bdef *d = &s->defs[task];
  dnn_sim_task t = dnn_sim_default_task();
  t.stream = d->stream;
  t.cat = (dnn_sim_cat)d->cat;
  t.duration_s = d->dur_s;
  if (d->xfer != NONE32) {
    const txfer *x = &s->xfers[d->xfer];
    t.bytes = x->bytes;
    t.link = x->link;
    t.weight = x->weight;
  }
  t.name = d->name;
  t.layer = d->layer;
  t.microbatch = d->microbatch;
  t.data_bytes = d->data_bytes;
  return t;
}

/* The bytes a trace shows: the task's data bytes when it names them (a
 * collective moved as an equivalent transfer names its gradient bytes),
 * else its transfer's. */
static double task_bytes(const dnn_sim *s, size_t ext) {
  uint32_t x = s->defs[ext].xfer;
  if (x == NONE32 || s->defs[ext].data_bytes > 0)
    return s->defs[ext].data_bytes;
  return s->xfers[x].bytes;
}

void dnn_sim_task_times(const dnn_sim *s, size_t task, double *start_s,
                        double *end_s) {
  DNN_ASSERT(task < s->n_tasks);
  const trt *r = s->prepared && s->ran ? &s->rt[s->ext2int[task]] : NULL;
  bool started = r && r->phase != PH_WAIT;
  if (start_s)
    *start_s = started ? r->start_s : (double)NAN;
  if (end_s)
    *end_s = r && r->phase == PH_DONE ? r->end_s : (double)NAN;
}

size_t dnn_sim_stream_device(const dnn_sim *s, size_t stream) {
  DNN_ASSERT(stream < s->n_streams);
  return s->streams[stream].device;
}

double dnn_sim_makespan(const dnn_sim *s) {
  return s->makespan_s;
}

uint64_t dnn_sim_events(const dnn_sim *s) {
  return s->events;
}

/* Category of internal task i. */
static dnn_sim_cat icat(const dnn_sim *s, uint32_t i) {
  return (dnn_sim_cat)s->defs[s->int2ext[i]].cat;
}

/* Walks the gap [g0, g1] of a stream of device `dev` back along the
 * chain of blockers from task b. */
static void attribute_gap(const dnn_sim *s, uint32_t dev, double g0, double g1,
                          uint32_t b, dnn_sim_breakdown *out) {
  while (g1 > g0 && b != NONE32) {
    const trt *r = &s->rt[b];
    double from = fmax(g0, r->start_s);
    if (dnn_sim_cat_is_comm(icat(s, b))) {
      out->comm_exposed_s += g1 - from;
      if (s->streams[s->defs[s->int2ext[b]].stream].device != dev)
        out->comm_waited_s += g1 - from;
    } else {
      out->idle_s += g1 - from;
    }
    g1 = from;
    b = r->blocker;
  }
  if (g1 > g0)
    out->idle_s += g1 - g0;
}

void dnn_sim_stream_breakdown(const dnn_sim *s, size_t stream,
                              dnn_sim_breakdown *out) {
  DNN_ASSERT(stream < s->n_streams);
  DNN_ASSERT(dnn_sim_done(s));
  memset(out, 0, sizeof *out);
  double prev = 0;
  uint32_t dev = s->streams[stream].device;
  for (uint32_t k = s->streams[stream].ifirst; k != NONE32;
       k = s->tasks[k].stream_next) {
    const trt *r = &s->rt[k];
    out->busy_s[icat(s, k)] += r->end_s - r->start_s;
    if (r->start_s > prev)
      attribute_gap(s, dev, prev, r->start_s, r->blocker, out);
    prev = r->end_s;
  }
  out->end_s = prev;
  for (size_t i = 0; i < s->n_streams; i++) {
    if (s->streams[i].device != dev)
      continue;
    for (uint32_t k = s->streams[i].ifirst; k != NONE32;
         k = s->tasks[k].stream_next)
      if (dnn_sim_cat_is_comm(icat(s, k)))
        out->comm_s += s->rt[k].end_s - s->rt[k].start_s;
  }
}

/* ---- Chrome trace --------------------------------------------------------
 */

/* Writes a JSON string literal. */
static void json_str(FILE *fp, const char *a, const char *b) {
  fputc('"', fp);
  for (int part = 0; part < 2; part++) {
    const char *p = part ? b : a;
    if (p == NULL)
      continue;
    if (part && a)
      fputc(' ', fp);
    for (; *p; p++) {
      unsigned char c = (unsigned char)*p;
      if (c == '"' || c == '\\')
        fprintf(fp, "\\%c", c);
      else if (c < 0x20)
        fprintf(fp, "\\u%04x", c);
      else
        fputc(c, fp);
    }
  }
  fputc('"', fp);
}

static void meta(FILE *fp, bool *first, const char *what, size_t pid,
                 size_t tid, const char *key, const char *sval, size_t ival) {
  fputs(*first ? "\n" : ",\n", fp);
  *first = false;
  fprintf(fp, "{\"ph\":\"M\",\"pid\":%zu,\"tid\":%zu,\"name\":\"%s\",", pid,
          tid, what);
  fprintf(fp, "\"args\":{\"%s\":", key);
  if (sval)
    json_str(fp, sval, NULL);
  else
    fprintf(fp, "%zu", ival);
  fputs("}}", fp);
}

dnn_status dnn_sim_trace_write(const dnn_sim *s, FILE *fp,
                               const dnn_sim_trace_params *p, dnn_error *err) {
  if (!dnn_sim_done(s))
    return DNN_FAIL(err, DNN_EINVAL,
                    "no complete simulation to trace; run it first");
  size_t ndev = s->n_devices;
  if (p && p->max_devices > 0 && p->max_devices < ndev)
    ndev = p->max_devices;
  fputs("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[", fp);
  bool first = true;
  for (size_t dv = 0; dv < ndev; dv++) {
    const sdevice *d = &s->devices[dv];
    meta(fp, &first, "process_name", d->trace_id, 0, "name", d->name, 0);
    meta(fp, &first, "process_sort_index", d->trace_id, 0, "sort_index", NULL,
         dv);
    size_t tid = 0;
    for (size_t i = 0; i < s->n_streams; i++) {
      if (s->streams[i].device != dv)
        continue;
      meta(fp, &first, "thread_name", d->trace_id, tid, "name",
           s->streams[i].name, 0);
      meta(fp, &first, "thread_sort_index", d->trace_id, tid, "sort_index",
           NULL, tid);
      tid++;
    }
  }
  for (size_t dv = 0; dv < ndev; dv++) {
    size_t tid = 0;
    for (size_t i = 0; i < s->n_streams; i++) {
      if (s->streams[i].device != dv)
        continue;
      for (uint32_t k = s->streams[i].ifirst; k != NONE32;
           k = s->tasks[k].stream_next) {
        const bdef *lb = &s->defs[s->int2ext[k]];
        const trt *r = &s->rt[k];
        dnn_sim_cat cat = (dnn_sim_cat)lb->cat;
        const char *cn = dnn_sim_cat_name(cat);
        bool pass = cat == DNN_SIM_FWD || cat == DNN_SIM_BWD ||
                    cat == DNN_SIM_RECOMPUTE;
        fputs(",\n{\"name\":", fp);
        json_str(fp, lb->name ? lb->name : cn, lb->name && pass ? cn : NULL);
        fprintf(fp,
                ",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":%zu,\"tid\":%zu,"
                "\"ts\":%.3f,\"dur\":%.3f,\"args\":{",
                cn, s->devices[dv].trace_id, tid, r->start_s * 1e6,
                (r->end_s - r->start_s) * 1e6);
        if (lb->layer) {
          fputs("\"layer\":", fp);
          json_str(fp, lb->layer, NULL);
          fputc(',', fp);
        }
        fprintf(fp, "\"pass\":\"%s\",", cn);
        if (lb->microbatch != DNN_SIM_NONE)
          fprintf(fp, "\"microbatch\":%zu,", lb->microbatch);
        fprintf(fp, "\"bytes\":%.0f}}", task_bytes(s, s->int2ext[k]));
      }
      tid++;
    }
  }
  fputs("\n]}\n", fp);
  if (ferror(fp))
    return DNN_FAIL(err, DNN_EIO, "error writing the trace");
  return DNN_OK;
}
