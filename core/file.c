/*
 * Atomic output files and whole-file reads (core.h). Output goes to a
 * temporary file in the same directory, which is fsync'ed and renamed over
 * the destination only on commit: readers see the old file or the new one,
 * never a torn one, even when the process is killed mid-write.
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct dnn_outfile {
  FILE *fp;
  char *path;
  char *tmp;
};

dnn_status dnn_outfile_open(const char *path, dnn_outfile **out,
                            dnn_error *err) {
  *out = NULL;
  dnn_outfile *f = dnn_calloc(1, sizeof *f);
  if (f == NULL)
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory opening %s", path);
  size_t n = strlen(path) + 32;
  f->path = dnn_strdup(path);
  f->tmp = dnn_malloc(n);
  if (f->path == NULL || f->tmp == NULL) {
    dnn_outfile_abort(f);
    return DNN_FAIL(err, DNN_ENOMEM, "out of memory opening %s", path);
  }
  snprintf(f->tmp, n, "%s.tmp.%ld", path, (long)getpid());
  f->fp = fopen(f->tmp, "wb");
  if (f->fp == NULL) {
    int e = errno;
    dnn_outfile_abort(f);
    return DNN_FAIL(err, DNN_EIO, "%s: cannot create: %s", path, strerror(e));
  }
  *out = f;
  return DNN_OK;
}

FILE *dnn_outfile_stream(dnn_outfile *f) {
  return f->fp;
}

dnn_status dnn_outfile_commit(dnn_outfile *f, dnn_error *err) {
  dnn_status st = DNN_OK;
  int bad = ferror(f->fp);
  if (fflush(f->fp) != 0)
    bad = 1;
  if (!bad && fsync(fileno(f->fp)) != 0 && errno != EINVAL)
    bad = 1;
  int e = errno;
  if (fclose(f->fp) != 0)
    bad = 1;
  f->fp = NULL;
  if (bad) {
    st = DNN_FAIL(err, DNN_EIO, "%s: write failed: %s", f->path, strerror(e));
  } else if (rename(f->tmp, f->path) != 0) {
    st = DNN_FAIL(err, DNN_EIO, "%s: cannot rename temporary file: %s", f->path,
                  strerror(errno));
  }
  dnn_outfile_abort(f);
  return st;
}

void dnn_outfile_abort(dnn_outfile *f) {
  if (f == NULL)
    return;
  if (f->fp)
    fclose(f->fp);
  if (f->tmp)
    remove(f->tmp); /* after a successful rename this finds nothing */
  dnn_free(f->path);
  dnn_free(f->tmp);
  dnn_free(f);
}

dnn_status dnn_file_write_atomic(const char *path, const void *data, size_t len,
                                 dnn_error *err) {
  dnn_outfile *f;
  dnn_status st = dnn_outfile_open(path, &f, err);
  if (st)
    return st;
  if (len && fwrite(data, 1, len, f->fp) != len) {
    dnn_outfile_abort(f);
    return DNN_FAIL(err, DNN_EIO, "%s: write failed", path);
  }
  return dnn_outfile_commit(f, err);
}

dnn_status dnn_file_read_all(const char *path, char **out, size_t *len,
                             dnn_error *err) {
  *out = NULL;
  FILE *fp = fopen(path, "rb");
  if (fp == NULL)
    return DNN_FAIL(err, DNN_EIO, "%s: cannot open: %s", path, strerror(errno));
  dnn__buf b;
  dnn__buf_init(&b);
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk - 1, fp)) > 0) {
    chunk[n] = '\0';
    if (memchr(chunk, '\0', n)) {
      fclose(fp);
      dnn__buf_free(&b);
      return DNN_FAIL(err, DNN_EPARSE, "%s: binary data (NUL byte) in file",
                      path);
    }
    dnn__buf_append(&b, chunk);
  }
  int rerr = ferror(fp);
  fclose(fp);
  if (rerr || b.failed) {
    dnn__buf_free(&b);
    return DNN_FAIL(err, rerr ? DNN_EIO : DNN_ENOMEM, "%s: cannot read", path);
  }
  if (b.data == NULL) {
    b.data = dnn_strdup("");
    if (b.data == NULL)
      return DNN_FAIL(err, DNN_ENOMEM, "%s: out of memory", path);
  }
  *out = b.data;
  if (len)
    *len = b.len;
  return DNN_OK;
}
