/*
 * The replaceable allocator hook (core.h), the arena and the string buffer
 * (internal.h). Every allocation of the library funnels through
 * dnn_malloc/dnn_realloc/dnn_free so tests can inject failures.
 */
#include "internal.h"

#include <stdalign.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void *std_malloc(void *ud, size_t size) {
  (void)ud;
  return malloc(size);
}
static void *std_realloc(void *ud, void *ptr, size_t size) {
  (void)ud;
  return realloc(ptr, size);
}
static void std_free(void *ud, void *ptr) {
  (void)ud;
  free(ptr);
}

static const dnn_allocator std_allocator = {std_malloc, std_realloc, std_free,
                                            NULL};
static dnn_allocator current = {std_malloc, std_realloc, std_free, NULL};

void dnn_allocator_set(const dnn_allocator *alloc) {
  current = alloc ? *alloc : std_allocator;
}

const dnn_allocator *dnn_allocator_get(void) {
  return &current;
}

void *dnn_malloc(size_t size) {
  return current.malloc_fn(current.ud, size ? size : 1);
}

void *dnn_calloc(size_t count, size_t size) {
  size_t total;
  if (!dnn__mul_ok(count, size, &total))
    return NULL;
  void *p = dnn_malloc(total);
  if (p)
    memset(p, 0, total ? total : 1);
  return p;
}

void *dnn_realloc(void *ptr, size_t size) {
  return current.realloc_fn(current.ud, ptr, size ? size : 1);
}

void dnn_free(void *ptr) {
  if (ptr)
    current.free_fn(current.ud, ptr);
}

char *dnn_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = dnn_malloc(n);
  if (p)
    memcpy(p, s, n);
  return p;
}

/* ---- Arena ------------------------------------------------------------- */

struct dnn__arena_chunk {
  dnn__arena_chunk *next;
  size_t cap;
  size_t used;
  alignas(max_align_t) unsigned char data[];
};

void dnn__arena_init(dnn__arena *a, size_t chunk_bytes) {
  a->head = NULL;
  a->chunk_bytes = chunk_bytes ? chunk_bytes : 16384;
  a->used_bytes = 0;
}

void *dnn__arena_alloc(dnn__arena *a, size_t size) {
  const size_t align = alignof(max_align_t);
  size_t need = (size + align - 1) / align * align;
  if (need < size)
    return NULL;
  dnn__arena_chunk *c = a->head;
  if (c == NULL || c->cap - c->used < need) {
    size_t cap = need > a->chunk_bytes ? need : a->chunk_bytes;
    if (cap > SIZE_MAX - sizeof(dnn__arena_chunk))
      return NULL;
    c = dnn_malloc(sizeof(dnn__arena_chunk) + cap);
    if (c == NULL)
      return NULL;
    c->next = a->head;
    c->cap = cap;
    c->used = 0;
    a->head = c;
  }
  void *p = c->data + c->used;
  c->used += need;
  a->used_bytes += need;
  memset(p, 0, size);
  return p;
}

char *dnn__arena_strdup(dnn__arena *a, const char *s) {
  size_t n = strlen(s) + 1;
  char *p = dnn__arena_alloc(a, n);
  if (p)
    memcpy(p, s, n);
  return p;
}

void dnn__arena_release(dnn__arena *a) {
  dnn__arena_chunk *c = a->head;
  while (c) {
    dnn__arena_chunk *next = c->next;
    dnn_free(c);
    c = next;
  }
  a->head = NULL;
  a->used_bytes = 0;
}

/* ---- String buffer ----------------------------------------------------- */

void dnn__buf_init(dnn__buf *b) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->failed = false;
}

static bool buf_reserve(dnn__buf *b, size_t extra) {
  if (b->failed)
    return false;
  size_t need = b->len + extra + 1;
  if (need <= b->cap)
    return true;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need)
    cap *= 2;
  char *p = dnn_realloc(b->data, cap);
  if (p == NULL) {
    b->failed = true;
    return false;
  }
  b->data = p;
  b->cap = cap;
  return true;
}

void dnn__buf_append(dnn__buf *b, const char *s) {
  size_t n = strlen(s);
  if (!buf_reserve(b, n))
    return;
  memcpy(b->data + b->len, s, n + 1);
  b->len += n;
}

void dnn__buf_appendf(dnn__buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n >= 0 && buf_reserve(b, (size_t)n))
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2), b->len += (size_t)n;
  va_end(ap2);
}

void dnn__buf_free(dnn__buf *b) {
  dnn_free(b->data);
  dnn__buf_init(b);
}

bool dnn__grow(void **data, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap)
    return true;
  size_t n = *cap ? *cap : 8;
  while (n < need) {
    if (n > SIZE_MAX / 2)
      return false;
    n *= 2;
  }
  size_t bytes;
  if (!dnn__mul_ok(n, elem, &bytes))
    return false;
  void *p = dnn_realloc(*data, bytes);
  if (p == NULL)
    return false;
  *data = p;
  *cap = n;
  return true;
}
