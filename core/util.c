/*
 * Small helpers shared by every module: name suggestions (edit distance),
 * integer logarithms and the one relative float comparison.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

unsigned dnn_edit_distance(const char *a, const char *b) {
  /* Two-row Levenshtein; names are short so the 64-byte cap is generous. */
  enum { MAXN = 64 };
  size_t la = strlen(a), lb = strlen(b);
  if (la > MAXN || lb > MAXN)
    return 255;
  unsigned prev[MAXN + 1], cur[MAXN + 1];
  for (size_t j = 0; j <= lb; j++)
    prev[j] = (unsigned)j;
  for (size_t i = 1; i <= la; i++) {
    cur[0] = (unsigned)i;
    for (size_t j = 1; j <= lb; j++) {
      unsigned sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0u : 1u);
      unsigned del = prev[j] + 1, ins = cur[j - 1] + 1;
      unsigned m = sub < del ? sub : del;
      cur[j] = m < ins ? m : ins;
    }
    memcpy(prev, cur, sizeof(unsigned) * (lb + 1));
  }
  return prev[lb] > 255 ? 255 : prev[lb];
}

const char *dnn_nearest_name(const char *name, const char *const *candidates) {
  size_t len = strlen(name);
  /* A name cut short ("v100" for "v100-sxm2") is nearer to what it starts
   * than to a same-length neighbour ("h200"): the shortest candidate it
   * begins wins, from 3 characters on. */
  const char *prefixed = NULL;
  for (size_t i = 0; len >= 3 && candidates[i]; i++)
    if (strncmp(candidates[i], name, len) == 0 && candidates[i][len] &&
        (prefixed == NULL || strlen(candidates[i]) < strlen(prefixed)))
      prefixed = candidates[i];
  if (prefixed)
    return prefixed;
  unsigned limit = (unsigned)(len / 3 > 2 ? len / 3 : 2);
  const char *best = NULL;
  unsigned best_d = limit + 1;
  for (size_t i = 0; candidates[i]; i++) {
    unsigned d = dnn_edit_distance(name, candidates[i]);
    if (d < best_d) {
      best_d = d;
      best = candidates[i];
    }
  }
  return best_d <= limit ? best : NULL;
}

unsigned dnn__ceil_log2(size_t x) {
  unsigned k = 0;
  size_t v = 1;
  while (v < x) {
    if (v > SIZE_MAX / 2) /* x > 2^(bits-1): v would wrap to 0 */
      return k + 1;
    v <<= 1;
    k++;
  }
  return k;
}

unsigned dnn__floor_log2(size_t x) {
  unsigned k = 0;
  while (x > 1) {
    x >>= 1;
    k++;
  }
  return k;
}

int dnn_close(double a, double b, double rel) {
  if (isnan(a) || isnan(b))
    return isnan(a) && isnan(b);
  if (isinf(a) || isinf(b))
    return a == b;
  if (a == b)
    return 1;
  double m = fmax(fabs(a), fabs(b));
  return fabs(a - b) <= rel * m;
}
