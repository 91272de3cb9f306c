/*
 * Shared test helpers: the one relative float comparison (STYLE.md §7),
 * with a message that prints both operands and the expression, and a
 * failure-injecting allocator.
 */
#ifndef DNNSIM_TEST_UTIL_H
#define DNNSIM_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dnnsim/core.h"

/* Fails unless a and b agree within `rel` (dnn_close semantics). */
#define assert_close(a, b, rel)                                                \
  do {                                                                         \
    double a_ = (double)(a), b_ = (double)(b);                                 \
    if (!dnn_close(a_, b_, (rel)))                                             \
      fail_msg("%s = %.10g, %s = %.10g: not within rel %.3g (%s:%d)", #a, a_,  \
               #b, b_, (double)(rel), __FILE__, __LINE__);                     \
  } while (0)

static inline const char *test_err_msg(const dnn_error *e) {
  return e ? e->msg : "";
}

/* Fails unless a dnn_status is DNN_OK, printing the error message. */
#define assert_ok(expr, errp)                                                  \
  do {                                                                         \
    dnn_status st_ = (expr);                                                   \
    if (st_ != DNN_OK)                                                         \
      fail_msg("%s failed: %s: %s", #expr, dnn_status_name(st_),               \
               test_err_msg(errp));                                            \
  } while (0)

/* Fails unless `haystack` contains `needle`. */
#define assert_contains(haystack, needle)                                      \
  do {                                                                         \
    const char *h_ = (haystack), *n_ = (needle);                               \
    if (h_ == NULL || strstr(h_, n_) == NULL)                                  \
      fail_msg("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_);      \
  } while (0)

/* ---- Failure injection: the Nth allocation from now fails. ------------ */

typedef struct test_alloc_state {
  long countdown; /* allocations left before failing; < 0: never fail */
  long count;     /* allocations made */
} test_alloc_state;

static inline void *test_alloc_malloc(void *ud, size_t n) {
  test_alloc_state *s = ud;
  s->count++;
  if (s->countdown == 0)
    return NULL;
  if (s->countdown > 0)
    s->countdown--;
  return malloc(n);
}
static inline void *test_alloc_realloc(void *ud, void *p, size_t n) {
  test_alloc_state *s = ud;
  s->count++;
  if (s->countdown == 0)
    return NULL;
  if (s->countdown > 0)
    s->countdown--;
  return realloc(p, n);
}
static inline void test_alloc_free(void *ud, void *p) {
  (void)ud;
  free(p);
}
/* Installs the injecting allocator: allocation number `fail_at` (0-based)
 * and all after it fail; -1 never fails. */
static inline void test_alloc_install(test_alloc_state *s, long fail_at) {
  s->countdown = fail_at;
  s->count = 0;
  dnn_allocator a = {test_alloc_malloc, test_alloc_realloc, test_alloc_free, s};
  dnn_allocator_set(&a);
}
static inline void test_alloc_restore(void) {
  dnn_allocator_set(NULL);
}

/* Path of a file in the source tree (static buffer). */
static inline const char *test_src_path(const char *rel) {
  static char buf[4096];
  snprintf(buf, sizeof buf, "%s/%s", DNNSIM_SOURCE_DIR, rel);
  return buf;
}

#endif /* DNNSIM_TEST_UTIL_H */
