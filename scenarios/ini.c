/*
 * The INI reader behind every parser in scenarios/. inih does the
 * tokenising; this file adds what inih's stock build lacks: the line
 * number of each key and section header (through a counting reader), a
 * clean stop at the first error, a clear message for over-long lines, and
 * strict value parsers.
 */
#include "internal.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct reader {
  const char *pos;                    /* next unread character of the text */
  const char *name;                   /* file name for messages */
  int line;                           /* line most recently handed to inih */
  char section[DNN_SCN_NAME_MAX * 2]; /* of the last header reported */
  bool after_pair; /* a key = value line came since the last header */
  dnn__ini_fn fn;
  void *user;
  dnn_error *err;
  dnn_status st; /* first failure; stops the reader */
} reader;

size_t dnn__ini_max_line(void) {
  /* inih needs room for "\r\n\0" in its buffer. */
  return (size_t)(ini_max_line > 3 ? ini_max_line - 3 : 0);
}

dnn_status dnn__ini_fail(dnn_error *err, dnn_status code, const char *src,
                         int src_line, const char *name, int line,
                         const char *section, const char *key, const char *fmt,
                         ...) {
  char msg[DNN_ERROR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (section && key)
    return dnn__fail(err, code, src, src_line, "%s:%d: [%s] %s: %s", name, line,
                     section, key, msg);
  if (section)
    return dnn__fail(err, code, src, src_line, "%s:%d: [%s]: %s", name, line,
                     section, msg);
  return dnn__fail(err, code, src, src_line, "%s:%d: %s", name, line, msg);
}

/* inih's MAX_SECTION (ini.c of inih r55): it keeps at most 49 characters
 * of a section name, so the names this reader reports are cut the same. */
#define INIH_MAX_SECTION 50

/* inih's idea of a blank (isspace, in the C locale inih runs in). */
static bool blank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
         c == '\r';
}

/*
 * How inih will read one line, decided the way inih r55 decides it (its
 * ini_parse_stream), so that the headers this reader reports are exactly
 * the sections inih gives the pairs that follow: a UTF-8 byte-order mark
 * on line 1 and blanks are skipped, ';' or '#' starts a comment, a
 * non-blank line indented after a key = value line continues that value
 * (so an indented "[x]" there is a value, not a header), and a header's
 * name is the text between '[' and the first ']' not inside an inline
 * comment, untrimmed and cut to INIH_MAX_SECTION - 1 characters.
 */
typedef enum line_kind {
  L_BLANK,    /* nothing but blanks */
  L_COMMENT,  /* ; or # first */
  L_HEADER,   /* [section] */
  L_PAIR,     /* name = value or name: value */
  L_CONTINUE, /* an indented line after a pair: more of its value */
  L_ERROR     /* anything else: inih reports the line */
} line_kind;

/* inih's find_chars_or_comment: the first of `chars` not inside an inline
 * comment (a ';' after a blank), or the end. */
static size_t find_chars(const char *s, size_t from, size_t len,
                         const char *chars) {
  bool was_blank = false;
  size_t j = from;
  while (j < len && !strchr(chars, s[j]) && !(was_blank && s[j] == ';')) {
    was_blank = blank(s[j]);
    j++;
  }
  return j;
}

static line_kind classify(const char *line, size_t len, int lineno,
                          bool after_pair, char *sec, size_t n) {
  size_t i = 0;
  if (lineno == 1 && len >= 3 && (unsigned char)line[0] == 0xEF &&
      (unsigned char)line[1] == 0xBB && (unsigned char)line[2] == 0xBF)
    i = 3;
  while (i < len && blank(line[i]))
    i++;
  if (i == len)
    return L_BLANK;
  if (line[i] == ';' || line[i] == '#')
    return L_COMMENT;
  if (after_pair && i > 0)
    return L_CONTINUE;
  if (line[i] == '[') {
    size_t j = find_chars(line, i + 1, len, "]");
    if (j >= len || line[j] != ']')
      return L_ERROR;
    size_t k = j - (i + 1);
    if (k > INIH_MAX_SECTION - 1)
      k = INIH_MAX_SECTION - 1;
    if (k >= n)
      k = n - 1;
    memcpy(sec, line + i + 1, k);
    sec[k] = '\0';
    return L_HEADER;
  }
  size_t j = find_chars(line, i, len, "=:");
  return j < len && (line[j] == '=' || line[j] == ':') ? L_PAIR : L_ERROR;
}

/* fgets-like reader over the text: counts lines, reports section headers,
 * blanks comment lines (so long comments are fine) and rejects over-long
 * lines instead of letting inih split them. */
static char *read_line(char *str, int num, void *stream) {
  reader *r = stream;
  if (r->st != DNN_OK || *r->pos == '\0')
    return NULL;
  const char *nl = strchr(r->pos, '\n');
  size_t len = nl ? (size_t)(nl - r->pos) : strlen(r->pos);
  r->line++;
  const char *line = r->pos;
  r->pos = nl ? nl + 1 : line + len;
  size_t content = len;
  if (content > 0 && line[content - 1] == '\r')
    content--;
  char sec[sizeof r->section];
  line_kind kind =
      classify(line, content, r->line, r->after_pair, sec, sizeof sec);
  if (kind == L_COMMENT) {
    str[0] = '\n';
    str[1] = '\0';
    return str;
  }
  if (num < 3 || content > (size_t)num - 3) {
    r->st = DNN__INI_FAIL(r->err, DNN_EPARSE, r->name, r->line, NULL, NULL,
                          "line too long (%zu characters; at most %zu)",
                          content, dnn__ini_max_line());
    return NULL;
  }
  if (kind == L_HEADER) {
    r->after_pair = false;
    memcpy(r->section, sec, sizeof sec);
    dnn_status st = r->fn(r->user, sec, NULL, NULL, r->line, r->err);
    if (st != DNN_OK) {
      r->st = st;
      return NULL;
    }
  } else if (kind == L_PAIR) {
    r->after_pair = true;
  }
  memcpy(str, line, content);
  str[content] = '\n';
  str[content + 1] = '\0';
  return str;
}

static int on_pair(void *user, const char *section, const char *name,
                   const char *value) {
  reader *r = user;
  if (r->st != DNN_OK)
    return 0;
  if (strcmp(section, r->section) != 0) {
    /* Should classify() and inih ever disagree, the parsers still see a
     * header before the section's first pair (never a pair of a section
     * they were not told about). */
    snprintf(r->section, sizeof r->section, "%s", section);
    dnn_status st = r->fn(r->user, section, NULL, NULL, r->line, r->err);
    if (st != DNN_OK) {
      r->st = st;
      return 0;
    }
  }
  dnn_status st =
      r->fn(r->user, section, name, value ? value : "", r->line, r->err);
  if (st != DNN_OK) {
    r->st = st;
    return 0;
  }
  return 1;
}

dnn_status dnn__ini_parse(const char *text, const char *name, dnn__ini_fn fn,
                          void *user, dnn_error *err) {
  reader r = {.pos = text, .name = name, .fn = fn, .user = user, .err = err};
  int rc = ini_parse_stream(read_line, &r, on_pair, &r);
  if (r.st != DNN_OK)
    return r.st;
  if (rc > 0)
    return DNN__INI_FAIL(err, DNN_EPARSE, name, rc, NULL, NULL,
                         "expected '[section]', 'key = value' or a comment");
  if (rc < 0)
    return DNN_FAIL(err, DNN_ENOMEM, "%s: out of memory while parsing", name);
  return DNN_OK;
}

dnn_status dnn__ini_parse_file(const char *path, dnn__ini_fn fn, void *user,
                               dnn_error *err) {
  char *text;
  dnn_status st = dnn_file_read_all(path, &text, NULL, err);
  if (st)
    return st;
  st = dnn__ini_parse(text, path, fn, user, err);
  dnn_free(text);
  return st;
}

/* ---- Value parsers ----------------------------------------------------- */

dnn_status dnn__parse_size(const char *text, size_t *out, dnn_error *err) {
  const char *p = text;
  while (*p == ' ')
    p++;
  if (*p < '0' || *p > '9')
    return DNN_FAIL(err, DNN_EINVAL,
                    "expected a non-negative integer, got '%s'", text);
  errno = 0;
  char *end;
  unsigned long long v = strtoull(p, &end, 10);
  while (*end == ' ')
    end++;
  if (*end != '\0')
    return DNN_FAIL(err, DNN_EINVAL,
                    "expected a non-negative integer, got '%s'", text);
  if (errno == ERANGE || v > (unsigned long long)SIZE_MAX)
    return DNN_FAIL(err, DNN_ERANGE, "integer '%s' is too large", text);
  *out = (size_t)v;
  return DNN_OK;
}

dnn_status dnn__parse_double(const char *text, double *out, dnn_error *err) {
  errno = 0;
  char *end;
  double v = strtod(text, &end);
  if (end == text)
    return DNN_FAIL(err, DNN_EINVAL, "expected a number, got '%s'", text);
  while (*end == ' ')
    end++;
  if (*end != '\0')
    return DNN_FAIL(err, DNN_EINVAL, "expected a number, got '%s'", text);
  if (!isfinite(v) || errno == ERANGE)
    return DNN_FAIL(err, DNN_ERANGE, "number '%s' is not finite", text);
  *out = v;
  return DNN_OK;
}

dnn_status dnn__parse_bool(const char *text, bool *out, dnn_error *err) {
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};
  for (size_t i = 0; i < 4; i++) {
    if (strcmp(text, yes[i]) == 0) {
      *out = true;
      return DNN_OK;
    }
    if (strcmp(text, no[i]) == 0) {
      *out = false;
      return DNN_OK;
    }
  }
  return DNN_FAIL(err, DNN_EINVAL, "expected true or false, got '%s'", text);
}

dnn_status dnn__parse_choice(const char *text, const char *const *choices,
                             int *out, dnn_error *err) {
  for (int i = 0; choices[i]; i++) {
    if (strcmp(text, choices[i]) == 0) {
      *out = i;
      return DNN_OK;
    }
  }
  dnn__buf b;
  dnn__buf_init(&b);
  for (int i = 0; choices[i]; i++)
    dnn__buf_appendf(&b, "%s%s", i ? "|" : "", choices[i]);
  const char *near = dnn_nearest_name(text, choices);
  dnn_status st;
  if (near)
    st = DNN_FAIL(err, DNN_EINVAL,
                  "expected one of %s, got '%s' (did you "
                  "mean '%s'?)",
                  b.data ? b.data : "", text, near);
  else
    st = DNN_FAIL(err, DNN_EINVAL, "expected one of %s, got '%s'",
                  b.data ? b.data : "", text);
  dnn__buf_free(&b);
  return st;
}

void dnn__path_join(const char *dir, const char *path, char *out, size_t n) {
  if (path[0] == '/' || dir == NULL || dir[0] == '\0' || path[0] == '\0')
    snprintf(out, n, "%s", path);
  else
    snprintf(out, n, "%s/%s", dir, path);
}
