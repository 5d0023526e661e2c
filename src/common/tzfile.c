/* TZif reader (RFC 8536) and the two conversions the scheduler needs, UTC to wall
 * clock and back. Instants after the last transition of the file follow its POSIX
 * TZ footer (for example "CET-1CEST,M3.5.0,M10.5.0/3"): zic writes explicit
 * transitions only up to 2037, or none at all in "slim" files. Nothing here reads
 * TZ or calls tzset(), so a zone is pure data once loaded. */
#include "tzfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TZ_MAX_FILE (1 << 20)
#define TZ_MAX_OFF (26 * 3600) /* |UT offset| above this is refused */
#define TZ_MIN_T (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define TZ_MAX_T 253402300799LL   /* 9999-12-31T23:59:59Z */

struct tzrule {
    char kind; /* 'J' (1-365, no Feb 29), 'N' (0-365), 'M' (month.week.day) */
    int n, m, w, d;
    int32_t time; /* seconds after local midnight, may be negative or > 24 h */
};

struct tz {
    char *name;
    size_t ntrans, ntypes;
    int64_t *trans;   /* ascending */
    uint8_t *tidx;    /* type of each transition */
    int32_t *utoff;   /* per type */
    uint8_t *isdst;   /* per type */
    int has_rule;     /* footer parsed: applies after the last transition */
    int rule_dst;     /* the footer has a daylight-saving part */
    int32_t std_off, dst_off;
    struct tzrule start, end;
};

/* ---- civil calendar (H. Hinnant's algorithms) ---------------------------- */

int64_t tz_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void tz_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

int tz_is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

unsigned tz_month_days(int64_t y, unsigned m)
{
    static const unsigned char md[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 ? 28u + (unsigned)tz_is_leap(y) : md[m - 1];
}

static int64_t floordiv(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* 0 = Sunday */
static int weekday(int64_t days)
{
    return (int)(((days % 7) + 11) % 7);
}

/* ---- the POSIX TZ footer ------------------------------------------------- */

static const char *parse_abbr(const char *p)
{
    const char *s = p;
    if (*p == '<') {
        for (p++; *p && *p != '>'; p++)
            if (!(*p >= 'A' && *p <= 'Z') && !(*p >= 'a' && *p <= 'z') &&
                !(*p >= '0' && *p <= '9') && *p != '+' && *p != '-')
                return NULL;
        return *p == '>' && p - s >= 4 ? p + 1 : NULL;
    }
    while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
        p++;
    return p - s >= 3 ? p : NULL;
}

/* [+-]hh[:mm[:ss]] with hh <= MAXH, into seconds. */
static const char *parse_hms(const char *p, int maxh, int32_t *out)
{
    int sign = 1, part[3] = {0, 0, 0};
    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    for (int i = 0; i < 3; i++) {
        if (i && *p != ':')
            break;
        if (i)
            p++;
        if (*p < '0' || *p > '9')
            return NULL;
        int v = 0, n = 0;
        while (*p >= '0' && *p <= '9' && n < 3)
            v = v * 10 + (*p++ - '0'), n++;
        if (*p >= '0' && *p <= '9')
            return NULL;
        if ((i == 0 && v > maxh) || (i > 0 && v > 59))
            return NULL;
        part[i] = v;
    }
    *out = sign * (part[0] * 3600 + part[1] * 60 + part[2]);
    return p;
}

static const char *parse_num(const char *p, int lo, int hi, int *out)
{
    if (*p < '0' || *p > '9')
        return NULL;
    int v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p++ - '0');
        if (v > hi)
            return NULL;
    }
    if (v < lo)
        return NULL;
    *out = v;
    return p;
}

static const char *parse_rule(const char *p, struct tzrule *r)
{
    memset(r, 0, sizeof *r);
    if (*p == 'J') {
        r->kind = 'J';
        p = parse_num(p + 1, 1, 365, &r->n);
    } else if (*p == 'M') {
        r->kind = 'M';
        if (!(p = parse_num(p + 1, 1, 12, &r->m)) || *p++ != '.' ||
            !(p = parse_num(p, 1, 5, &r->w)) || *p++ != '.')
            return NULL;
        p = parse_num(p, 0, 6, &r->d);
    } else {
        r->kind = 'N';
        p = parse_num(p, 0, 365, &r->n);
    }
    if (!p)
        return NULL;
    r->time = 7200;
    if (*p == '/')
        p = parse_hms(p + 1, 167, &r->time); /* RFC 8536 extension: -167..167 h */
    return p;
}

static int parse_footer(struct tz *tz, const char *s)
{
    const char *p;
    int32_t off;
    if (!*s)
        return 0; /* no rule: the last transition's type stays in effect */
    if (!(p = parse_abbr(s)) || !(p = parse_hms(p, 24, &off)))
        return -1;
    tz->std_off = -off; /* POSIX offsets count west of Greenwich */
    tz->dst_off = tz->std_off + 3600;
    tz->has_rule = 1;
    if (!*p)
        return 0;
    if (!(p = parse_abbr(p)))
        return -1;
    tz->rule_dst = 1;
    if (*p && *p != ',') {
        if (!(p = parse_hms(p, 24, &off)))
            return -1;
        tz->dst_off = -off;
    }
    if (!*p) { /* no rule given: the US rule, as glibc assumes */
        tz->start = (struct tzrule){'M', 0, 3, 2, 0, 7200};
        tz->end = (struct tzrule){'M', 0, 11, 1, 0, 7200};
        return 0;
    }
    if (*p++ != ',' || !(p = parse_rule(p, &tz->start)) || *p++ != ',' ||
        !(p = parse_rule(p, &tz->end)) || *p)
        return -1;
    if (tz->std_off < -TZ_MAX_OFF || tz->std_off > TZ_MAX_OFF || tz->dst_off < -TZ_MAX_OFF ||
        tz->dst_off > TZ_MAX_OFF)
        return -1;
    return 0;
}

/* Day number (since 1970-01-01) on which rule R falls in year Y. */
static int64_t rule_day(const struct tzrule *r, int64_t y)
{
    int64_t jan1 = tz_days_from_civil(y, 1, 1);
    switch (r->kind) {
    case 'J':
        return jan1 + r->n - 1 + (tz_is_leap(y) && r->n >= 60);
    case 'N':
        return jan1 + r->n;
    default: {
        int64_t first = tz_days_from_civil(y, (unsigned)r->m, 1);
        int day = (r->d - weekday(first) + 7) % 7 + (r->w - 1) * 7;
        while (day >= (int)tz_month_days(y, (unsigned)r->m))
            day -= 7;
        return first + day;
    }
    }
}

static int32_t rule_offset(const struct tz *tz, int64_t t, int *isdst)
{
    *isdst = 0;
    if (!tz->rule_dst)
        return tz->std_off;
    int64_t y;
    unsigned m, d;
    tz_civil_from_days(floordiv(t + tz->std_off, 86400), &y, &m, &d);
    /* a rule's time is wall-clock time of the offset in effect before it */
    int64_t s = rule_day(&tz->start, y) * 86400 + tz->start.time - tz->std_off;
    int64_t e = rule_day(&tz->end, y) * 86400 + tz->end.time - tz->dst_off;
    int dst = s < e ? (t >= s && t < e) : (t < e || t >= s);
    *isdst = dst;
    return dst ? tz->dst_off : tz->std_off;
}

static int32_t lookup(const struct tz *tz, int64_t t, int *isdst)
{
    int dummy;
    if (!isdst)
        isdst = &dummy;
    if (tz->ntrans == 0 || t < tz->trans[0]) {
        if (tz->ntrans == 0 && tz->has_rule)
            return rule_offset(tz, t, isdst);
        *isdst = tz->isdst[0];
        return tz->utoff[0];
    }
    if (t >= tz->trans[tz->ntrans - 1] && tz->has_rule)
        return rule_offset(tz, t, isdst);
    size_t lo = 0, hi = tz->ntrans; /* trans[lo] <= t < trans[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    *isdst = tz->isdst[tz->tidx[lo]];
    return tz->utoff[tz->tidx[lo]];
}

int32_t tz_offset(const struct tz *tz, int64_t t)
{
    return lookup(tz, t, NULL);
}

int tz_utc_to_local(const struct tz *tz, time_t t, struct tm *out, int *utcoff)
{
    if ((int64_t)t < TZ_MIN_T || (int64_t)t > TZ_MAX_T)
        return -1;
    int isdst;
    int32_t off = lookup(tz, t, &isdst);
    int64_t local = (int64_t)t + off, days = floordiv(local, 86400), secs = local - days * 86400;
    int64_t y;
    unsigned m, d;
    tz_civil_from_days(days, &y, &m, &d);
    memset(out, 0, sizeof *out);
    out->tm_year = (int)(y - 1900);
    out->tm_mon = (int)m - 1;
    out->tm_mday = (int)d;
    out->tm_hour = (int)(secs / 3600);
    out->tm_min = (int)(secs / 60 % 60);
    out->tm_sec = (int)(secs % 60);
    out->tm_wday = weekday(days);
    out->tm_yday = (int)(days - tz_days_from_civil(y, 1, 1));
    out->tm_isdst = isdst;
    out->tm_gmtoff = off; /* tm_zone stays NULL */
    if (utcoff)
        *utcoff = off;
    return 0;
}

int tz_local_to_utc(const struct tz *tz, int64_t local, int64_t out[2])
{
    const int64_t win = 2 * 86400;
    int32_t offs[3] = {tz_offset(tz, local - win), tz_offset(tz, local), tz_offset(tz, local + win)};
    int64_t got[3];
    int n = 0;
    for (int i = 0; i < 3; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++)
            seen |= offs[j] == offs[i];
        if (seen)
            continue;
        int64_t t = local - offs[i];
        if (tz_offset(tz, t) == offs[i])
            got[n++] = t;
    }
    if (n == 0) {
        /* a gap: the first instant whose offset is the one after it */
        int64_t lo = local - win, hi = local + win;
        int32_t after = offs[2];
        while (hi - lo > 1) {
            int64_t mid = lo + (hi - lo) / 2;
            if (tz_offset(tz, mid) == after)
                hi = mid;
            else
                lo = mid;
        }
        out[0] = hi;
        return 0;
    }
    int64_t a = got[0], b = got[0];
    for (int i = 1; i < n; i++) {
        if (got[i] < a)
            a = got[i];
        if (got[i] > b)
            b = got[i];
    }
    out[0] = a;
    out[1] = b;
    return a == b ? 1 : 2;
}

/* ---- loading ------------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct tzhead {
    uint32_t isut, isstd, leap, time, type, chars;
};

static int read_head(const unsigned char *p, size_t len, struct tzhead *h, int *ver)
{
    if (len < 44 || memcmp(p, "TZif", 4) != 0)
        return -1;
    *ver = p[4];
    uint32_t *v[6] = {&h->isut, &h->isstd, &h->leap, &h->time, &h->type, &h->chars};
    for (int i = 0; i < 6; i++)
        if ((*v[i] = be32(p + 20 + 4 * i)) > 100000)
            return -1;
    return 0;
}

static size_t block_len(const struct tzhead *h, int tsize)
{
    return (size_t)h->time * (tsize + 1) + (size_t)h->type * 6 + h->chars +
           (size_t)h->leap * (tsize + 4) + h->isstd + h->isut;
}

void tz_free(struct tz *tz)
{
    if (!tz)
        return;
    free(tz->name);
    free(tz->trans);
    free(tz->tidx);
    free(tz->utoff);
    free(tz->isdst);
    free(tz);
}

const char *tz_name(const struct tz *tz)
{
    return tz->name;
}

static struct tz *tz_new(const char *name, size_t ntrans, size_t ntypes)
{
    struct tz *tz = calloc(1, sizeof *tz);
    if (!tz)
        return NULL;
    tz->name = strdup(name);
    tz->trans = malloc((ntrans ? ntrans : 1) * sizeof *tz->trans);
    tz->tidx = malloc(ntrans ? ntrans : 1);
    tz->utoff = malloc(ntypes * sizeof *tz->utoff);
    tz->isdst = malloc(ntypes);
    if (!tz->name || !tz->trans || !tz->tidx || !tz->utoff || !tz->isdst) {
        tz_free(tz);
        return NULL;
    }
    tz->ntrans = ntrans;
    tz->ntypes = ntypes;
    return tz;
}

static struct tz *tz_utc(void)
{
    struct tz *tz = tz_new("UTC", 0, 1);
    if (tz) {
        tz->utoff[0] = 0;
        tz->isdst[0] = 0;
    }
    return tz;
}

struct tz *tz_parse(const void *data, size_t len, const char *name, char *err, size_t errsz)
{
    const unsigned char *p = data, *end = p + len;
    struct tzhead h;
    int ver, tsize = 4;
    if (read_head(p, len, &h, &ver) < 0 || block_len(&h, 4) > len - 44) {
        snprintf(err, errsz, "time zone %s: not a TZif file", name);
        return NULL;
    }
    p += 44;
    const char *footer = NULL;
    size_t footer_len = 0;
    if (ver >= '2') { /* skip the 32-bit data: the 64-bit block follows */
        p += block_len(&h, 4);
        if (read_head(p, (size_t)(end - p), &h, &ver) < 0 ||
            block_len(&h, 8) > (size_t)(end - p) - 44) {
            snprintf(err, errsz, "time zone %s: bad TZif version 2+ data", name);
            return NULL;
        }
        p += 44;
        tsize = 8;
        const unsigned char *f = p + block_len(&h, 8);
        if (f >= end || *f != '\n') {
            snprintf(err, errsz, "time zone %s: TZif footer missing", name);
            return NULL;
        }
        const unsigned char *nl = memchr(f + 1, '\n', (size_t)(end - f - 1));
        if (!nl) {
            snprintf(err, errsz, "time zone %s: TZif footer missing", name);
            return NULL;
        }
        footer = (const char *)f + 1;
        footer_len = (size_t)(nl - f - 1);
    }
    if (h.type == 0 || (h.isstd && h.isstd != h.type) || (h.isut && h.isut != h.type)) {
        snprintf(err, errsz, "time zone %s: bad TZif counts", name);
        return NULL;
    }
    if (h.leap) {
        snprintf(err, errsz, "time zone %s: leap-second zones are not supported", name);
        return NULL;
    }
    if (h.type > 256) {
        snprintf(err, errsz, "time zone %s: bad TZif counts", name);
        return NULL;
    }
    struct tz *tz = tz_new(name, h.time, h.type);
    if (!tz) {
        snprintf(err, errsz, "time zone %s: out of memory", name);
        return NULL;
    }
    const unsigned char *tp = p, *ip = tp + (size_t)h.time * tsize, *yp = ip + h.time;
    const char *why = NULL;
    for (size_t i = 0; i < h.time && !why; i++) {
        int64_t t = tsize == 8 ? be64(tp + i * 8) : (int32_t)be32(tp + i * 4);
        tz->trans[i] = t;
        tz->tidx[i] = ip[i];
        if (ip[i] >= h.type)
            why = "transition type out of range";
        else if (t < -(INT64_C(1) << 60) || t > (INT64_C(1) << 60))
            why = "transition time out of range";
        else if (i && t <= tz->trans[i - 1])
            why = "transitions not in order";
    }
    for (size_t i = 0; i < h.type && !why; i++) {
        int32_t off = (int32_t)be32(yp + i * 6);
        tz->utoff[i] = off;
        tz->isdst[i] = yp[i * 6 + 4] != 0;
        if (off < -TZ_MAX_OFF || off > TZ_MAX_OFF)
            why = "UT offset out of range";
    }
    if (!why && footer) {
        char buf[128];
        if (footer_len >= sizeof buf || memchr(footer, '\0', footer_len))
            why = "bad TZ footer";
        else {
            memcpy(buf, footer, footer_len);
            buf[footer_len] = '\0';
            if (parse_footer(tz, buf) < 0)
                why = "bad TZ footer";
        }
    }
    if (why) {
        snprintf(err, errsz, "time zone %s: %s", name, why);
        tz_free(tz);
        return NULL;
    }
    return tz;
}

static int name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 255 || name[0] == '/' || strstr(name, ".."))
        return 0;
    for (const char *p = name; *p; p++)
        if (!(*p >= 'A' && *p <= 'Z') && !(*p >= 'a' && *p <= 'z') && !(*p >= '0' && *p <= '9') &&
            !strchr("/_+-.", *p))
            return 0;
    return 1;
}

struct tz *tz_load_dir(const char *dir, const char *name, char *err, size_t errsz)
{
    if (!name_ok(name)) {
        snprintf(err, errsz, "invalid time zone name");
        return NULL;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > TZ_MAX_FILE) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        if (!strcmp(name, "UTC"))
            return tz_utc();
        if (fd < 0 && e != ENOENT && e != ENOTDIR)
            snprintf(err, errsz, "time zone %s: open(%s) failed: %s", name, path, strerror(e));
        else
            snprintf(err, errsz, "unknown time zone %s", name);
        return NULL;
    }
    size_t len = (size_t)st.st_size, got = 0;
    unsigned char *data = malloc(len ? len : 1);
    while (data && got < len) {
        ssize_t r = read(fd, data + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    struct tz *tz = NULL;
    if (!data)
        snprintf(err, errsz, "time zone %s: out of memory", name);
    else if (got != len)
        snprintf(err, errsz, "time zone %s: short read of %s", name, path);
    else
        tz = tz_parse(data, len, name, err, errsz);
    free(data);
    if (!tz && !strcmp(name, "UTC"))
        return tz_utc();
    return tz;
}

struct tz *tz_load(const char *name, char *err, size_t errsz)
{
    return tz_load_dir(TZ_DIR, name, err, errsz);
}
