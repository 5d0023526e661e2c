/* Cron expressions: the parser (one bit mask per field) and the next-firing search,
 * which walks the calendar fields (month, day, hour, minute, second) in the
 * zone's wall-clock time and maps each candidate to UTC through tzfile.c, so a
 * year without a match costs a few dozen steps, not millions of seconds. The
 * semantics decisions are in cron.h. */
#include "cron.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define CRON_MIN_T (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define CRON_MAX_T 221845392000LL   /* 9000-01-01T00:00:00Z */
#define NUM_MAX 65535               /* a number above this is "too large" */

struct field {
    const char *name;
    int lo, hi;
    const char *const *names; /* names[i] is value lo + i */
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const struct field fields[6] = {
    {"second", 0, 59, NULL},      {"minute", 0, 59, NULL}, {"hour", 0, 23, NULL},
    {"day-of-month", 1, 31, NULL}, {"month", 1, 12, month_names},
    {"day-of-week", 0, 7, day_names},
};

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* An error about field F: "minute field: ...". Always returns -1. */
__attribute__((format(printf, 4, 5))) static int ferr(char *err, size_t errsz,
                                                      const struct field *f, const char *fmt, ...)
{
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(err, errsz, "%s field: %s", f->name, msg);
    return -1;
}

/* What is wrong at P (a character the grammar does not allow there). */
static int unexpected(char *err, size_t errsz, const struct field *f, const char *p, const char *end)
{
    if (p >= end)
        return ferr(err, errsz, f, "unexpected end of field");
    if (*p == '?' || *p == '#' || *p == 'L' || *p == 'W' || *p == 'l' || *p == 'w')
        return ferr(err, errsz, f, "'%c' is not supported", *p);
    if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
        return ferr(err, errsz, f, "unexpected byte 0x%02x", (unsigned char)*p);
    return ferr(err, errsz, f, "unexpected '%c'", *p);
}

/* A number or (month and day-of-week fields) a name at *PP, in the field's range. */
static int value(const char **pp, const char *end, const struct field *f, int *out, char *err,
                 size_t errsz)
{
    const char *p = *pp, *s = p;
    if (p < end && is_digit(*p)) {
        long v = 0;
        while (p < end && is_digit(*p)) {
            if (v <= NUM_MAX)
                v = v * 10 + (*p - '0');
            p++;
        }
        if (v > NUM_MAX)
            return ferr(err, errsz, f, "number %.*s%s too large", (int)(p - s > 20 ? 20 : p - s), s,
                        p - s > 20 ? "..." : "");
        if (v < f->lo || v > f->hi)
            return ferr(err, errsz, f, "value %ld out of range %d-%d", v, f->lo, f->hi);
        *out = (int)v;
        *pp = p;
        return 0;
    }
    if (p < end && is_alpha(*p)) {
        while (p < end && is_alpha(*p))
            p++;
        size_t n = (size_t)(p - s);
        int onlylw = 1;
        for (size_t i = 0; i < n; i++)
            onlylw &= lower(s[i]) == 'l' || lower(s[i]) == 'w';
        if (onlylw && n <= 2)
            return ferr(err, errsz, f, "'%.*s' is not supported", (int)n, s);
        if (f->names && n == 3)
            for (int i = 0; f->names[i]; i++)
                if (lower(s[0]) == f->names[i][0] && lower(s[1]) == f->names[i][1] &&
                    lower(s[2]) == f->names[i][2]) {
                    *out = f->lo + i;
                    if (f->names == day_names)
                        *out = i; /* sun is 0 */
                    *pp = p;
                    return 0;
                }
        if (!f->names)
            return ferr(err, errsz, f, "names are not allowed here ('%.*s')", (int)(n > 20 ? 20 : n), s);
        return ferr(err, errsz, f, "unknown name '%.*s'", (int)(n > 20 ? 20 : n), s);
    }
    return unexpected(err, errsz, f, p, end);
}

/* One field, S..END (no blanks inside), into *MASK. */
static int parse_field(const char *s, const char *end, const struct field *f, uint64_t *mask,
                       char *err, size_t errsz)
{
    const char *p = s;
    *mask = 0;
    for (;;) {
        if (p >= end || *p == ',')
            return ferr(err, errsz, f, "empty list element");
        int a, b, step = 1, single = 0;
        if (*p == '*') {
            p++;
            a = f->lo;
            b = f->hi;
        } else {
            if (value(&p, end, f, &a, err, errsz) < 0)
                return -1;
            b = a;
            single = 1;
            if (p < end && *p == '-') {
                p++;
                if (value(&p, end, f, &b, err, errsz) < 0)
                    return -1;
                if (a > b)
                    return ferr(err, errsz, f, "range %.*s has its start after its end",
                                (int)(p - s > 40 ? 40 : p - s), s);
                single = 0;
            }
        }
        if (p < end && *p == '/') {
            const char *n = ++p;
            long v = 0;
            while (p < end && is_digit(*p)) {
                if (v <= NUM_MAX)
                    v = v * 10 + (*p - '0');
                p++;
            }
            if (p == n)
                return p < end ? unexpected(err, errsz, f, p, end)
                               : ferr(err, errsz, f, "step missing after '/'");
            if (v > NUM_MAX)
                return ferr(err, errsz, f, "step %.*s%s too large", (int)(p - n > 20 ? 20 : p - n), n,
                            p - n > 20 ? "..." : "");
            if (v == 0)
                return ferr(err, errsz, f, "step 0");
            step = (int)v;
            if (single)
                b = f->hi; /* a/s: from a to the maximum */
        }
        for (int v = a; v <= b; v += step)
            *mask |= UINT64_C(1) << v;
        if (p >= end)
            return 0;
        if (*p != ',')
            return unexpected(err, errsz, f, p, end);
        p++;
    }
}

int cron_parse(const char *expr, struct cron *out, char *err, size_t errsz)
{
    const char *tok[7], *tend[7];
    int n = 0;
    memset(out, 0, sizeof *out);
    if (!expr) {
        snprintf(err, errsz, "no expression");
        return -1;
    }
    for (const char *p = expr;;) {
        while (is_blank(*p))
            p++;
        if (!*p)
            break;
        const char *s = p;
        while (*p && !is_blank(*p))
            p++;
        if (n < 7) {
            tok[n] = s;
            tend[n] = p;
        }
        n++;
    }
    if (n == 0) {
        snprintf(err, errsz, "empty expression");
        return -1;
    }
    if (*tok[0] == '@') {
        snprintf(err, errsz, "macros such as @daily are not supported");
        return -1;
    }
    if (n != 5 && n != 6) {
        snprintf(err, errsz, "expected 5 or 6 fields, got %d", n);
        return -1;
    }
    uint64_t m[6];
    int first = 6 - n;
    m[0] = 1; /* 5 fields: second 0 */
    for (int i = 0; i < n; i++)
        if (parse_field(tok[i], tend[i], &fields[first + i], &m[first + i], err, errsz) < 0)
            return -1;
    out->sec = m[0];
    out->min = m[1];
    out->hour = (uint32_t)m[2];
    out->mday = (uint32_t)m[3];
    out->mon = (uint16_t)m[4];
    out->wday = (uint8_t)((m[5] | m[5] >> 7) & 0x7f); /* 7 is Sunday */
    out->dom_star = *tok[n - 3] == '*';
    out->dow_star = *tok[n - 1] == '*';
    out->nfields = (uint8_t)n;
    return 0;
}

/* ---- the next firing ------------------------------------------------------ */

static int64_t floordiv(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static int weekday(int64_t days)
{
    return (int)(((days % 7) + 11) % 7);
}

/* Lowest bit >= FROM of MASK, or -1. */
static int next_bit(uint64_t mask, int from)
{
    if (from > 63)
        return -1;
    mask &= ~UINT64_C(0) << from;
    return mask ? __builtin_ctzll(mask) : -1;
}

static int day_match(const struct cron *c, unsigned d, int64_t days)
{
    int dom = (c->mday >> d) & 1, dow = (c->wday >> weekday(days)) & 1;
    return c->dom_star || c->dow_star ? dom && dow : dom || dow;
}

int cron_match_tm(const struct cron *c, const struct tm *tm)
{
    int64_t days = tz_days_from_civil(tm->tm_year + 1900LL, (unsigned)tm->tm_mon + 1, (unsigned)tm->tm_mday);
    return (c->sec >> tm->tm_sec & 1) && (c->min >> tm->tm_min & 1) && (c->hour >> tm->tm_hour & 1) &&
           (c->mon >> (tm->tm_mon + 1) & 1) && day_match(c, (unsigned)tm->tm_mday, days);
}

/* The first wall-clock time >= FROM (seconds since 1970 read as wall time) that
 * matches C, or -1 if it would lie on a day after LIMIT_DAYS. */
static int64_t wall_search(const struct cron *c, int64_t from, int64_t limit_days)
{
    int64_t days = floordiv(from, 86400), y;
    int sod = (int)(from - days * 86400);
    unsigned m, d;
    int h = sod / 3600, mi = sod / 60 % 60, s = sod % 60;
    tz_civil_from_days(days, &y, &m, &d);
    for (;;) {
        /* carry the fields a step below overflowed */
        if (s > 59)
            s = 0, mi++;
        if (mi > 59)
            mi = 0, h++;
        if (h > 23)
            h = 0, d++;
        if (d > tz_month_days(y, m))
            d = 1, m++;
        if (m > 12)
            m = 1, y++;
        days = tz_days_from_civil(y, m, d);
        if (days > limit_days)
            return -1;
        if (!(c->mon >> m & 1)) {
            int m2 = next_bit(c->mon, (int)m + 1);
            if (m2 < 0 || m2 > 12)
                y++, m2 = next_bit(c->mon, 1);
            m = (unsigned)m2, d = 1, h = mi = s = 0;
            continue;
        }
        if (!day_match(c, d, days)) {
            unsigned md = tz_month_days(y, m);
            while (d <= md && !day_match(c, d, days))
                d++, days++;
            h = mi = s = 0;
            continue; /* past the month's end: the carry moves on */
        }
        int h2 = next_bit(c->hour, h);
        if (h2 < 0) {
            d++, h = mi = s = 0;
            continue;
        }
        if (h2 > h)
            h = h2, mi = s = 0;
        int mi2 = next_bit(c->min, mi);
        if (mi2 < 0) {
            h++, mi = s = 0;
            continue;
        }
        if (mi2 > mi)
            mi = mi2, s = 0;
        int s2 = next_bit(c->sec, s);
        if (s2 < 0 || s2 > 59) {
            mi++, s = 0;
            continue;
        }
        return days * 86400 + h * 3600 + mi * 60 + s2;
    }
}

int cron_next(const struct cron *c, const struct tz *tz, time_t after, time_t *next)
{
    if ((int64_t)after < CRON_MIN_T || (int64_t)after > CRON_MAX_T || !c->mon || !c->hour ||
        !c->min || !c->sec)
        return -1;
    int64_t l0 = (int64_t)after + (tz ? tz_offset(tz, after) : 0);
    int64_t limit = floordiv(l0, 86400) + CRON_HORIZON_DAYS;
    int64_t w = l0 + 1;
    for (;;) {
        w = wall_search(c, w, limit);
        if (w < 0)
            return -1;
        int64_t t[2];
        int n = tz ? tz_local_to_utc(tz, w, t) : (t[0] = w, 1);
        if (n >= 1 && t[0] > (int64_t)after) {
            *next = (time_t)t[0]; /* in a fold, the first occurrence only */
            return 0;
        }
        int64_t w2 = w + 1;
        if (n == 0) { /* skipped by a jump forward: go on after the gap */
            w2 = t[0] + tz_offset(tz, t[0]);
        } else if (n == 2) {
            /* a repeat of a wall time that fired in the first pass: so are all
             * wall times up to AFTER's in the first pass, as far as the fold goes
             * (it ends at the transition plus the old offset) */
            int32_t old = (int32_t)(w - t[0]);
            int64_t lo = t[0], hi = t[1];
            while (hi - lo > 1) {
                int64_t mid = lo + (hi - lo) / 2;
                if (tz_offset(tz, mid) == old)
                    lo = mid;
                else
                    hi = mid;
            }
            w2 = (int64_t)after + old + 1;
            if (w2 > hi + old)
                w2 = hi + old;
        }
        w = w2 > w ? w2 : w + 1;
    }
}
