/* Cron expressions of schedules (the rules are below): parsing, and the next firing time evaluated in
 * the wall-clock time of a time zone (tzfile.h). Pure code: a parsed expression
 * and a loaded zone are immutable, so any number of threads may share them.
 *
 * Syntax. 5 fields "minute hour day-of-month month day-of-week" (the second is
 * then 0) or 6 fields with the second first, separated by blanks (spaces, tabs;
 * blanks before the first and after the last field are allowed). Each field is a
 * comma list of `*`, `n`, `a-b` (a <= b), or `*`, `a-b` or `a` followed by `/s`
 * (s >= 1; `a/s` runs from a to the field maximum). Ranges: second and minute
 * 0-59, hour 0-23, day-of-month 1-31, month 1-12 or jan-dec, day-of-week 0-7 or
 * sun-sat (0 and 7 are Sunday), names case-insensitive, also in ranges
 * (`mon-fri`). Refused: `?`, `L`, `W`, `#`, `@` macros, empty fields or list
 * elements, numbers out of range (also huge ones), step 0, a > b, anything else.
 *
 * Day-of-month and day-of-week (decision). As Vixie cron and cronie do, a field
 * counts as unrestricted when its text starts with a star: `*`, or `*`/2 and other
 * star steps. When both fields are restricted, a day matches if either matches;
 * otherwise it must match both (a plain `*` matches every day, so this is the
 * usual AND; a star step is then a real filter). So "0 0 1-31 * mon" fires every
 * day (1-31 is restricted and matches every day), "0 0 * * mon" and
 * "0 0 `*`/1 * mon" on Mondays only, and "0 0 `*`/2 * mon" on odd-numbered days
 * that are Mondays. (The backquotes only keep the comment open.)
 *
 * Firing (cron_next). Wall-clock time of the zone: a wall time skipped by a jump
 * forward does not fire; a wall time that occurs twice after a jump back fires
 * once, at its first occurrence. Validity: an expression with no firing within
 * CRON_HORIZON_DAYS after a given instant is invalid (8 years: 2922 days
 * cover any 8 calendar years, so "0 0 29 2 *" is always valid). */
#ifndef CRON_H
#define CRON_H

#include "tzfile.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define CRON_HORIZON_DAYS 2922 /* 8 x 365.25 */

struct cron {
    uint64_t sec;   /* bit n: second n (0-59) */
    uint64_t min;   /* bit n: minute n (0-59) */
    uint32_t hour;  /* bit n: hour n (0-23) */
    uint32_t mday;  /* bit n: day n (1-31) */
    uint16_t mon;   /* bit n: month n (1-12) */
    uint8_t wday;   /* bit n: weekday n (0-6, Sunday 0; 7 is folded into 0) */
    uint8_t dom_star, dow_star; /* the field's text started with '*' */
    uint8_t nfields; /* 5 or 6 */
};

/* Parses EXPR into OUT. 0, or -1 with a message naming the field in ERR (for
 * example "day-of-month field: value 32 out of range 1-31"). */
int cron_parse(const char *expr, struct cron *out, char *err, size_t errsz);

/* The first firing strictly after AFTER in the wall-clock time of TZ (NULL: UTC)
 * into *NEXT: 0, or -1 if there is none within CRON_HORIZON_DAYS (or AFTER is
 * outside years 1-9000). Searches by calendar fields, not by seconds. */
int cron_next(const struct cron *c, const struct tz *tz, time_t after, time_t *next);

/* Does the wall-clock time TM (tm_mon 0-11, tm_wday 0-6) match C's fields? */
int cron_match_tm(const struct cron *c, const struct tm *tm);

#endif
