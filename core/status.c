/*
 * Status codes and error records (core.h). The enum, the names and the
 * messages all expand from DNN_STATUS_LIST so they can never drift apart.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static const char *const status_names[] = {
#define DNN_STATUS_NAME_(name, msg) #name,
    DNN_STATUS_LIST(DNN_STATUS_NAME_)
#undef DNN_STATUS_NAME_
};

static const char *const status_msgs[] = {
#define DNN_STATUS_MSG_(name, msg) msg,
    DNN_STATUS_LIST(DNN_STATUS_MSG_)
#undef DNN_STATUS_MSG_
};

const char *dnn_status_name(dnn_status code) {
  if ((unsigned)code >= (unsigned)DNN_STATUS_COUNT_)
    return "UNKNOWN";
  return status_names[code];
}

const char *dnn_strerror(dnn_status code) {
  if ((unsigned)code >= (unsigned)DNN_STATUS_COUNT_)
    return "unknown status";
  return status_msgs[code];
}

dnn_status dnn__vfail(dnn_error *err, dnn_status code, const char *src_file,
                      int src_line, const char *fmt, va_list ap) {
  if (err == NULL)
    return code;
  err->code = code;
  err->src_file = src_file;
  err->src_line = src_line;
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  /* Keep messages one line: a newline inside would break "FILE:LINE: msg"
   * parsing by editors and by the tests. */
  for (char *p = err->msg; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  return code;
}

dnn_status dnn__fail(dnn_error *err, dnn_status code, const char *src_file,
                     int src_line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  dnn__vfail(err, code, src_file, src_line, fmt, ap);
  va_end(ap);
  return code;
}

void dnn_error_clear(dnn_error *err) {
  if (err == NULL)
    return;
  err->code = DNN_OK;
  err->src_file = NULL;
  err->src_line = 0;
  err->msg[0] = '\0';
}

void dnn_error_prefix(dnn_error *err, const char *fmt, ...) {
  if (err == NULL)
    return;
  char prefix[DNN_ERROR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  char old[DNN_ERROR_MSG_MAX];
  memcpy(old, err->msg, sizeof old);
  snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
}

const char *dnn_version(void) {
  return DNNSIM_VERSION_STRING;
}
