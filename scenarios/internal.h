/*
 * scenarios/ private declarations: the line-tracking INI reader every
 * parser here uses (scenarios, networks, profiles, links), value parsers
 * and the embedded built-in data.
 *
 * Invariant: every error from user input is "NAME:LINE: [section] key:
 * what was expected", so users fix the INI, not the code.
 */
#ifndef DNNSIM_SCENARIOS_INTERNAL_H
#define DNNSIM_SCENARIOS_INTERNAL_H

#include "core/internal.h"
#include "dnnsim/hw.h"
#include "dnnsim/scenario.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Called for every `key = value` (section "" before the first header) and,
 * with key and value NULL, for every `[section]` header. Return DNN_OK to
 * go on; any other status stops the parse and is returned. `err` already
 * carries nothing; fill it with DNN__INI_FAIL so the message has the
 * position.
 */
typedef dnn_status (*dnn__ini_fn)(void *user, const char *section,
                                  const char *key, const char *value, int line,
                                  dnn_error *err);

/*
 * Parses INI text. `name` is the file name used in messages. Syntax errors
 * (a line that is neither a header, a comment nor key = value; a line over
 * DNN__INI_MAX_LINE characters) are DNN_EPARSE with the position.
 */
dnn_status dnn__ini_parse(const char *text, const char *name, dnn__ini_fn fn,
                          void *user, dnn_error *err);

/* Reads `path` and parses it as above. DNN_EIO when it cannot be read. */
dnn_status dnn__ini_parse_file(const char *path, dnn__ini_fn fn, void *user,
                               dnn_error *err);

/* Longest accepted line, in characters (inih's line buffer, less 3). */
size_t dnn__ini_max_line(void);

/* "NAME:LINE: [section] key: " + message, for errors about a value. */
#define DNN__INI_FAIL(err, code, name, line, section, key, ...)                \
  dnn__ini_fail((err), (code), __FILE__, __LINE__, (name), (line), (section),  \
                (key), __VA_ARGS__)
dnn_status dnn__ini_fail(dnn_error *err, dnn_status code, const char *src,
                         int src_line, const char *name, int line,
                         const char *section, const char *key, const char *fmt,
                         ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 9, 10)))
#endif
    ;

/* ---- Value parsers: strict, whole-string, with clear messages. ---------- */

/* Each returns DNN_EINVAL with a message like "expected an integer, got
 * 'x'" (no position: callers prefix it). */
dnn_status dnn__parse_size(const char *text, size_t *out, dnn_error *err);
dnn_status dnn__parse_double(const char *text, double *out, dnn_error *err);
dnn_status dnn__parse_bool(const char *text, bool *out, dnn_error *err);
/* Index of `text` in the NULL-terminated `choices` (with a suggestion). */
dnn_status dnn__parse_choice(const char *text, const char *const *choices,
                             int *out, dnn_error *err);

/* Joins dir and path unless path is absolute or dir is empty. */
void dnn__path_join(const char *dir, const char *path, char *out, size_t n);

/* ---- Custom scenario keys (scenario.c), used by the key table. -------- */
dnn_status dnn__scn_parse_sizes(const dnn_scn_key *key, const char *text,
                                dnn_scenario *scn, dnn_error *err);
dnn_status dnn__scn_parse_compression(const dnn_scn_key *key, const char *text,
                                      dnn_scenario *scn, dnn_error *err);
dnn_status dnn__scn_parse_partition(const dnn_scn_key *key, const char *text,
                                    dnn_scenario *scn, dnn_error *err);

/* ---- Embedded data (generated from profiles/ *.ini and links.ini). ---- */
extern const dnn__embedded dnn__embedded_profiles[];
extern const dnn__embedded dnn__embedded_links[];

#ifdef __cplusplus
}
#endif

#endif /* DNNSIM_SCENARIOS_INTERNAL_H */
