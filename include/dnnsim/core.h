/*
 * dnnsim core: status codes, error records, the allocator hook and atomic
 * file output. Every other module builds on these.
 *
 * Invariant: a fallible function returns a dnn_status (DNN_OK == 0) and, on
 * failure, fills the caller's dnn_error (when non-NULL) with a message that
 * names the user's file, line, section and key where the failure came from
 * user input. The library never prints, exits or reads the environment.
 */
#ifndef DNNSIM_CORE_H
#define DNNSIM_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Status codes                                                              */
/* ------------------------------------------------------------------------ */

/*
 * The one list of status codes: name and message. The enum,
 * dnn_status_name() and dnn_strerror() are all expanded from it, and
 * docs/errors.md is generated from it (`dnnsim errors --format markdown`).
 */
#define DNN_STATUS_LIST(X)                                                     \
  X(OK, "success")                                                             \
  X(EINVAL, "invalid argument or value")                                       \
  X(ENOMEM, "out of memory")                                                   \
  X(EIO, "input/output error")                                                 \
  X(EPARSE, "syntax error in input")                                           \
  X(ERANGE, "value out of range")                                              \
  X(ENOTFOUND, "not found")                                                    \
  X(EUNSUPPORTED, "not supported by this build")                               \
  X(ENODEVICE, "no device")                                                    \
  X(EMPI, "MPI error")                                                         \
  X(ENUMERIC, "numerical failure")                                             \
  X(EVERIFY, "result verification failed")                                     \
  X(ENOFIT, "does not fit in memory")                                          \
  X(ETOOLFAIL, "external tool failed")                                         \
  X(EINTERRUPTED, "interrupted")                                               \
  X(ETIMEOUT, "timed out")

typedef enum dnn_status {
#define DNN_STATUS_ENUM_(name, msg) DNN_##name,
  DNN_STATUS_LIST(DNN_STATUS_ENUM_)
#undef DNN_STATUS_ENUM_
      DNN_STATUS_COUNT_
} dnn_status;

/* The code's identifier without the DNN_ prefix, e.g. "EPARSE".
 * Unknown codes give "UNKNOWN". Never NULL. */
const char *dnn_status_name(dnn_status code);

/* A one-line human description of the code. Never NULL. */
const char *dnn_strerror(dnn_status code);

/* ------------------------------------------------------------------------ */
/* Error records                                                             */
/* ------------------------------------------------------------------------ */

#define DNN_ERROR_MSG_MAX 768

/*
 * Filled by a failing function. Caller-owned, usually on the stack; pass
 * NULL where the detail is not wanted. `msg` is one line without a trailing
 * newline; for user-input errors it starts with "FILE:LINE: ".
 */
typedef struct dnn_error {
  dnn_status code;             /* same as the function's return value */
  const char *src_file;        /* dnnsim source file that failed (static) */
  int src_line;                /* line in src_file */
  char msg[DNN_ERROR_MSG_MAX]; /* what went wrong, for the user */
} dnn_error;

/*
 * Records a failure in `err` (if non-NULL) and returns `code`. All failure
 * reports go through here, so one breakpoint catches every error.
 */
dnn_status dnn__fail(dnn_error *err, dnn_status code, const char *src_file,
                     int src_line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* The same, with a va_list. */
dnn_status dnn__vfail(dnn_error *err, dnn_status code, const char *src_file,
                      int src_line, const char *fmt, va_list ap);

/* Report a failure: `return DNN_FAIL(err, DNN_EINVAL, "bad %s", x);` */
#define DNN_FAIL(err, code, ...)                                               \
  dnn__fail((err), (code), __FILE__, __LINE__, __VA_ARGS__)

/* Clears `err` to DNN_OK with an empty message. */
void dnn_error_clear(dnn_error *err);

/*
 * Prepends "prefix: " to an existing error message (used to add context
 * such as the scenario path). Does nothing when err is NULL.
 */
void dnn_error_prefix(dnn_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ------------------------------------------------------------------------ */
/* Allocator hook                                                            */
/* ------------------------------------------------------------------------ */

/*
 * All library allocation goes through this hook so that tests can inject
 * failures and count bytes. `realloc_fn(ud, NULL, n)` must behave as malloc;
 * `free_fn(ud, NULL)` must do nothing.
 */
typedef struct dnn_allocator {
  void *(*malloc_fn)(void *ud, size_t size);
  void *(*realloc_fn)(void *ud, void *ptr, size_t size);
  void (*free_fn)(void *ud, void *ptr);
  void *ud; /* passed back to every call */
} dnn_allocator;

/*
 * Replaces the process-wide allocator (NULL restores the C library's). Not
 * thread-safe: call it before any other dnnsim function and never while
 * objects allocated by the previous allocator are alive.
 */
void dnn_allocator_set(const dnn_allocator *alloc);

/* The allocator in use. Never NULL. */
const dnn_allocator *dnn_allocator_get(void);

/* Allocation through the hook. Overflow-checked; NULL on failure. */
void *dnn_malloc(size_t size);
void *dnn_calloc(size_t count, size_t size);
void *dnn_realloc(void *ptr, size_t size);
void dnn_free(void *ptr);
/* A copy of `s` (NULL on failure). */
char *dnn_strdup(const char *s);

/* ------------------------------------------------------------------------ */
/* Atomic output files                                                       */
/* ------------------------------------------------------------------------ */

/*
 * Writes go to "PATH.tmp.PID" and only a successful commit renames it over
 * PATH, so an interrupted or failed run never leaves a half-written file.
 */
typedef struct dnn_outfile dnn_outfile;

/* Opens a temporary file next to `path`. DNN_EIO when it cannot. */
dnn_status dnn_outfile_open(const char *path, dnn_outfile **out,
                            dnn_error *err);

/* The stream to write to (borrowed; valid until commit or abort). */
FILE *dnn_outfile_stream(dnn_outfile *f);

/*
 * Flushes, syncs and renames the temporary file to its final path, then
 * frees `f`. DNN_EIO when a write failed earlier or the rename fails (the
 * temporary file is removed then).
 */
dnn_status dnn_outfile_commit(dnn_outfile *f, dnn_error *err);

/* Removes the temporary file and frees `f`. NULL does nothing. */
void dnn_outfile_abort(dnn_outfile *f);

/* Writes `len` bytes to `path` atomically. */
dnn_status dnn_file_write_atomic(const char *path, const void *data, size_t len,
                                 dnn_error *err);

/*
 * Reads the whole file into a NUL-terminated buffer owned by the caller
 * (free with dnn_free). DNN_EIO when it cannot be read.
 */
dnn_status dnn_file_read_all(const char *path, char **out, size_t *len,
                             dnn_error *err);

/* ------------------------------------------------------------------------ */
/* Misc helpers                                                              */
/* ------------------------------------------------------------------------ */

/* The library version, "MAJOR.MINOR.PATCH". */
const char *dnn_version(void);

/*
 * Levenshtein distance between two strings, capped at 255. Used for
 * "did you mean" suggestions on unknown names.
 */
unsigned dnn_edit_distance(const char *a, const char *b);

/*
 * The candidate nearest to `name`: the shortest one that `name` (3
 * characters or more) is a proper prefix of, else the nearest by edit
 * distance (at most max(2, len/3)), or NULL when none is near enough.
 * `candidates` is NULL-terminated.
 */
const char *dnn_nearest_name(const char *name, const char *const *candidates);

/*
 * Relative comparison used throughout tests and model checks: true when
 * |a - b| <= rel * max(|a|, |b|), or both are zero, or both are the same
 * infinity, or both are NaN.
 */
int dnn_close(double a, double b, double rel);

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_CORE_H */
