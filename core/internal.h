/*
 * Library-internal helpers shared by every module (never by cli/ or by
 * users): the arena that backs a network's layers and names, a growable
 * string buffer and small numeric helpers.
 *
 * Invariant: everything here allocates only through the dnn_allocator hook
 * (core.h), so allocation-failure injection reaches it.
 */
#ifndef DNNSIM_CORE_INTERNAL_H
#define DNNSIM_CORE_INTERNAL_H

#include "dnnsim/core.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(DNNSIM_DEBUG_ASSERT) && DNNSIM_DEBUG_ASSERT
#include <assert.h>
/* For broken invariants and API misuse only; compiled in for Debug/CI. */
#define DNN_ASSERT(cond) assert(cond)
#else
#define DNN_ASSERT(cond) ((void)0)
#endif

#define DNN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- Arena: bump allocation in chunks, released in one call. ---------- */

typedef struct dnn__arena_chunk dnn__arena_chunk;

typedef struct dnn__arena {
  dnn__arena_chunk *head; /* newest chunk */
  size_t chunk_bytes;     /* default size of a new chunk */
  size_t used_bytes;      /* total handed out, for statistics */
} dnn__arena;

/* Initialises an empty arena; no allocation until the first request. */
void dnn__arena_init(dnn__arena *a, size_t chunk_bytes);
/* Zeroed, max-aligned memory that lives until dnn__arena_release. */
void *dnn__arena_alloc(dnn__arena *a, size_t size);
/* A copy of `s` in the arena. */
char *dnn__arena_strdup(dnn__arena *a, const char *s);
/* Frees every chunk. The arena can be reused afterwards. */
void dnn__arena_release(dnn__arena *a);

/* ---- Growable string buffer. ------------------------------------------- */

typedef struct dnn__buf {
  char *data; /* NUL-terminated; NULL until first append */
  size_t len; /* bytes before the NUL */
  size_t cap;
  bool failed; /* an allocation failed; further appends are ignored */
} dnn__buf;

void dnn__buf_init(dnn__buf *b);
void dnn__buf_append(dnn__buf *b, const char *s);
void dnn__buf_appendf(dnn__buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void dnn__buf_free(dnn__buf *b);

/* ---- Growable arrays (for builders, never the hot path). --------------- */

/*
 * Makes room for at least `need` elements of `elem` bytes in *data
 * (capacity in *cap). Returns false (and leaves *data alone) on failure.
 */
bool dnn__grow(void **data, size_t *cap, size_t need, size_t elem);

/* ---- Embedded data files (cmake/embed.cmake). ---------------------- */

/* One text file compiled into the library: its name without extension and
 * its NUL-terminated text. Arrays of these end with {NULL, NULL}. */
typedef struct dnn__embedded {
  const char *name;
  const char *text;
} dnn__embedded;

/* ---- Numeric helpers. --------------------------------------------------- */

/* size_t -> double, with the conversion written once. */
static inline double dnn__d(size_t x) {
  return (double)x;
}
/* ceil(log2(x)) for x >= 1; 0 for x <= 1. */
unsigned dnn__ceil_log2(size_t x);
/* floor(log2(x)) for x >= 1; 0 for x == 0. */
unsigned dnn__floor_log2(size_t x);
/* true when x is a power of two (x >= 1). */
static inline bool dnn__is_pow2(size_t x) {
  return x != 0 && (x & (x - 1)) == 0;
}
/* ceil(a / b) for b > 0, for every a (a + b - 1 could wrap). */
static inline size_t dnn__div_ceil(size_t a, size_t b) {
  return a / b + (a % b != 0 ? 1u : 0u);
}
/* a * b with overflow detection; false on overflow. */
static inline bool dnn__mul_ok(size_t a, size_t b, size_t *out) {
  if (a != 0 && b > SIZE_MAX / a)
    return false;
  *out = a * b;
  return true;
}

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_CORE_INTERNAL_H */
