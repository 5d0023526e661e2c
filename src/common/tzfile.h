/* Time zones read from the system tz database (TZif files, RFC 8536), without
 * the process-global TZ, localtime() or tzset(): a loaded zone is immutable and
 * may be shared by any number of threads. Only what the scheduler needs: UTC to
 * wall-clock time, and wall-clock time back to UTC (0, 1 or 2 instants). */
#ifndef TZFILE_H
#define TZFILE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define TZ_DIR "/usr/share/zoneinfo"

struct tz;

/* Loads zone NAME from TZ_DIR. NAME must be relative, without a ".." anywhere,
 * of letters, digits and "/_+-." only, and name a TZif file; "UTC" is always
 * valid, with or without a file. NULL and a message in ERR on failure. */
struct tz *tz_load(const char *name, char *err, size_t errsz);
/* The same below directory DIR (tests, fuzzing). */
struct tz *tz_load_dir(const char *dir, const char *name, char *err, size_t errsz);
/* A zone from the bytes of a TZif file (version 1, or 2+ with its 64-bit data and
 * POSIX TZ footer). Zones with leap-second records ("right/...") are refused. */
struct tz *tz_parse(const void *data, size_t len, const char *name, char *err, size_t errsz);
void tz_free(struct tz *tz);
const char *tz_name(const struct tz *tz);

/* UT offset in seconds (local = UTC + offset) in effect at instant T. */
int32_t tz_offset(const struct tz *tz, int64_t t);

/* Wall-clock time at T: fills OUT (tm_year..tm_sec, tm_wday, tm_yday, tm_isdst,
 * tm_gmtoff; tm_zone is NULL) and *UTCOFF (may be NULL). -1 if T is
 * outside years 1..9999. */
int tz_utc_to_local(const struct tz *tz, time_t t, struct tm *out, int *utcoff);

/* The instants whose wall-clock time is LOCAL, a count of seconds since
 * 1970-01-01 00:00:00 read as wall-clock time (days_from_civil * 86400 + h/m/s).
 * Returns 1 (OUT[0]), 2 in a fold where the wall clock went back (OUT[0] <
 * OUT[1]), or 0 in a gap where it jumped forward; then OUT[0] is the first
 * instant after the gap (the transition). Assumes no two transitions of the
 * zone lie within 4 days of each other (it looks 2 days either side), which
 * holds for the rules of every zone in use; a zone that breaks it gets answers
 * that are still real instants of that wall time, possibly not all of them. */
int tz_local_to_utc(const struct tz *tz, int64_t local, int64_t out[2]);

/* Civil calendar helpers (proleptic Gregorian, any year). */
int64_t tz_days_from_civil(int64_t y, unsigned m, unsigned d);
void tz_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);
int tz_is_leap(int64_t y);
unsigned tz_month_days(int64_t y, unsigned m);

#endif
