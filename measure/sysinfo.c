/*
 * Machine information recorded as provenance in calibrated profiles: host,
 * date, CPU model, core count, memory and operating system.
 *
 * Invariant: never fails; what cannot be found is "unknown", and every
 * text is safe to store in an INI value or CSV comment (no control
 * characters, commas or semicolons).
 */
#define _DEFAULT_SOURCE
#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static void clean(char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == ',' || *s == ';')
      *s = ' ';
}

static void cpu_model(char *out, size_t n) {
  snprintf(out, n, "unknown");
  FILE *fp = fopen("/proc/cpuinfo", "r");
  if (fp == NULL)
    return;
  char line[512];
  while (fgets(line, sizeof line, fp)) {
    if (strncmp(line, "model name", 10) == 0) {
      const char *colon = strchr(line, ':');
      if (colon) {
        colon++;
        while (*colon == ' ' || *colon == '\t')
          colon++;
        snprintf(out, n, "%s", colon);
        size_t len = strlen(out);
        while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == ' '))
          out[--len] = '\0';
      }
      break;
    }
  }
  fclose(fp);
}

void dnn_meas_sysinfo_get(dnn_meas_sysinfo *out) {
  memset(out, 0, sizeof *out);
  if (gethostname(out->host, sizeof out->host - 1) != 0 || !out->host[0])
    snprintf(out->host, sizeof out->host, "unknown");
  time_t now = time(NULL);
  struct tm tm;
  if (gmtime_r(&now, &tm))
    strftime(out->date, sizeof out->date, "%Y-%m-%dT%H:%M:%SZ", &tm);
  else
    snprintf(out->date, sizeof out->date, "unknown");
  cpu_model(out->cpu, sizeof out->cpu);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  out->cpus = cpus > 0 ? (size_t)cpus : 1;
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  out->mem_bytes = pages > 0 && page > 0 ? (double)pages * (double)page : 0;
  struct utsname u;
  if (uname(&u) == 0)
    snprintf(out->os, sizeof out->os, "%s %s %s", u.sysname, u.release,
             u.machine);
  else
    snprintf(out->os, sizeof out->os, "unknown");
  clean(out->host);
  clean(out->cpu);
  clean(out->os);
}
