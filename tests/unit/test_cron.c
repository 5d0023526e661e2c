/* Cron expressions and time zones (cron.c, tzfile.c). Every expected firing time,
 * offset and wall-clock mapping comes from cron_cases.h, written by
 * cron_expect.py with Python's zoneinfo; the parse errors, masks and zone-name
 * rules below are worked out by hand. `test_cron --bench` times cron_next over
 * 10,000 schedules instead. */
#include "cron.h"
#include "tzfile.h"
#include "unit.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "cron_cases.h"

#define NZONES 16
static struct tz *zones[NZONES];

static const struct tz *zone(const char *name)
{
    char err[256];
    for (int i = 0; i < NZONES; i++) {
        if (zones[i] && !strcmp(tz_name(zones[i]), name))
            return zones[i];
        if (!zones[i]) {
            zones[i] = tz_load(name, err, sizeof err);
            if (!zones[i]) {
                fprintf(stderr, "tz_load(%s): %s\n", name, err);
                exit(2);
            }
            return zones[i];
        }
    }
    abort();
}

static void test_next(void)
{
    char err[256];
    for (size_t i = 0; i < sizeof next_cases / sizeof *next_cases; i++) {
        const struct next_case *k = &next_cases[i];
        struct cron c;
        int rc = cron_parse(k->expr, &c, err, sizeof err);
        CHECK(rc == 0);
        if (rc) {
            fprintf(stderr, "  %s: %s\n", k->expr, err);
            continue;
        }
        time_t t = (time_t)k->after, next = 0;
        if (k->n == 0) {
            rc = cron_next(&c, zone(k->zone), t, &next);
            CHECK(rc == -1);
            if (rc != -1)
                fprintf(stderr, "  case %zu \"%s\" %s: want none, got %lld\n", i, k->expr, k->zone,
                        (long long)next);
            continue;
        }
        for (int j = 0; j < k->n; j++) {
            rc = cron_next(&c, zone(k->zone), t, &next);
            CHECK(rc == 0 && (int64_t)next == k->want[j]);
            if (rc != 0 || (int64_t)next != k->want[j]) {
                fprintf(stderr, "  case %zu \"%s\" %s firing %d after %lld: rc %d got %lld want %lld\n",
                        i, k->expr, k->zone, j, (long long)t, rc, (long long)next,
                        (long long)k->want[j]);
                break;
            }
            t = next;
        }
        /* any start between two firings gives the later one */
        if (k->n >= 2) {
            time_t mid = (time_t)(k->want[0] + (k->want[1] - k->want[0]) / 2);
            CHECK(cron_next(&c, zone(k->zone), mid, &next) == 0 && (int64_t)next == k->want[1]);
            CHECK(cron_next(&c, zone(k->zone), (time_t)k->want[1] - 1, &next) == 0 &&
                  (int64_t)next == k->want[1]);
        }
    }
}

static void test_local(void)
{
    for (size_t i = 0; i < sizeof local_cases / sizeof *local_cases; i++) {
        const struct local_case *k = &local_cases[i];
        struct tm tm;
        int off = 12345;
        CHECK(tz_utc_to_local(zone(k->zone), (time_t)k->t, &tm, &off) == 0);
        CHECK(tz_offset(zone(k->zone), k->t) == k->off);
        int ok = off == k->off && tm.tm_isdst == k->isdst && tm.tm_year + 1900 == k->year &&
                 tm.tm_mon + 1 == k->mon && tm.tm_mday == k->mday && tm.tm_hour == k->hour &&
                 tm.tm_min == k->min && tm.tm_sec == k->sec && tm.tm_wday == k->wday;
        CHECK(ok);
        if (!ok)
            fprintf(stderr, "  %s %lld: got %04d-%02d-%02d %02d:%02d:%02d wday %d off %d dst %d\n",
                    k->zone, (long long)k->t, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                    tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_wday, off, tm.tm_isdst);
    }
    struct tm tm;
    CHECK(tz_utc_to_local(zone("UTC"), (time_t)300000000000LL, &tm, NULL) == -1);
}

static void test_wall(void)
{
    for (size_t i = 0; i < sizeof wall_cases / sizeof *wall_cases; i++) {
        const struct wall_case *k = &wall_cases[i];
        int64_t t[2] = {0, 0};
        int n = tz_local_to_utc(zone(k->zone), k->local, t);
        int ok = n == k->n && t[0] == k->t[0] && (n < 2 || t[1] == k->t[1]);
        CHECK(ok);
        if (!ok)
            fprintf(stderr, "  %s wall %lld: got %d %lld %lld, want %d %lld %lld\n", k->zone,
                    (long long)k->local, n, (long long)t[0], (long long)t[1], k->n,
                    (long long)k->t[0], (long long)k->t[1]);
    }
}

/* Bad expressions and a substring of the message each must give. */
static const struct {
    const char *expr, *want;
} bad[] = {
    {"", "empty expression"},
    {"   \t ", "empty expression"},
    {"* * * *", "expected 5 or 6 fields, got 4"},
    {"* * * * * * *", "expected 5 or 6 fields, got 7"},
    {"@daily", "macros such as @daily are not supported"},
    {"@reboot", "macros"},
    {"60 * * * *", "minute field: value 60 out of range 0-59"},
    {"* 24 * * *", "hour field: value 24 out of range 0-23"},
    {"* * 0 * *", "day-of-month field: value 0 out of range 1-31"},
    {"* * 32 * *", "day-of-month field: value 32 out of range 1-31"},
    {"* * * 0 *", "month field: value 0 out of range 1-12"},
    {"* * * 13 *", "month field: value 13 out of range 1-12"},
    {"* * * * 8", "day-of-week field: value 8 out of range 0-7"},
    {"60 * * * * *", "second field: value 60 out of range 0-59"},
    {"* * ? * *", "day-of-month field: '?' is not supported"},
    {"* * * * ?", "day-of-week field: '?' is not supported"},
    {"* * L * *", "day-of-month field: 'L' is not supported"},
    {"* * 15W * *", "day-of-month field: 'W' is not supported"},
    {"* * LW * *", "'LW' is not supported"},
    {"* * * * 5L", "day-of-week field: 'L' is not supported"},
    {"* * * * 5#2", "day-of-week field: '#' is not supported"},
    {"* * * * fri#2", "'#' is not supported"},
    {"1,,2 * * * *", "minute field: empty list element"},
    {"1, * * * *", "minute field: empty list element"},
    {",1 * * * *", "minute field: empty list element"},
    {"5x * * * *", "minute field: unexpected 'x'"},
    {"5-x * * * *", "minute field: names are not allowed here ('x')"},
    {"*x * * * *", "minute field: unexpected 'x'"},
    {"1-2-3 * * * *", "minute field: unexpected '-'"},
    {"-1 * * * *", "minute field: unexpected '-'"},
    {"5- * * * *", "minute field: unexpected end of field"},
    {"*/ * * * *", "minute field: step missing after '/'"},
    {"*/x * * * *", "minute field: unexpected 'x'"},
    {"*/0 * * * *", "minute field: step 0"},
    {"1-5/0 * * * *", "minute field: step 0"},
    {"*/5/2 * * * *", "minute field: unexpected '/'"},
    {"99999999999999999999 * * * *", "minute field: number 99999999999999999999 too large"},
    {"*/99999999999999999999 * * * *", "minute field: step 99999999999999999999 too large"},
    {"4294967296 * * * *", "too large"},
    {"30-10 * * * *", "minute field: range 30-10 has its start after its end"},
    {"* * * dec-jan *", "month field: range dec-jan has its start after its end"},
    {"* * * * fri-sun", "day-of-week field: range fri-sun has its start after its end"},
    {"* * * * 6-1", "start after its end"},
    {"* * * foo *", "month field: unknown name 'foo'"},
    {"* * * january *", "month field: unknown name 'january'"},
    {"* * * * monday", "day-of-week field: unknown name 'monday'"},
    {"* * * * jan", "day-of-week field: unknown name 'jan'"},
    {"* * * mon *", "month field: unknown name 'mon'"},
    {"mon * * * *", "minute field: names are not allowed here ('mon')"},
    {"mon * * * * *", "second field: names are not allowed here ('mon')"}, /* 6 fields */
    {"0 0 0 * mon *", "month field: unknown name 'mon'"},
    {"* * * * *\n", "day-of-week field: unexpected byte 0x0a"},
    {"* * * * \xc3\xa9", "day-of-week field: unexpected byte 0xc3"},
    {"* * * * * # comment", "expected 5 or 6 fields"},
    {"*,? * * * *", "minute field: '?' is not supported"},
    {"0 0 * * 1 extra words", "expected 5 or 6 fields, got 7"},
};

static void test_parse_errors(void)
{
    char err[256];
    struct cron c;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        strcpy(err, "(none)");
        int rc = cron_parse(bad[i].expr, &c, err, sizeof err);
        CHECK(rc == -1);
        CHECK(strstr(err, bad[i].want) != NULL);
        if (rc != -1 || !strstr(err, bad[i].want))
            fprintf(stderr, "  \"%s\": rc %d, message \"%s\", want \"%s\"\n", bad[i].expr, rc, err,
                    bad[i].want);
    }
    /* a short buffer is cut, not overrun */
    char small[8];
    memset(small, 'z', sizeof small);
    CHECK(cron_parse("99 * * * *", &c, small, 6) == -1 && strlen(small) == 5 && small[7] == 'z');
}

#define B(n) (UINT64_C(1) << (n))
static void test_parse_masks(void)
{
    char err[256];
    struct cron c;
    CHECK(cron_parse("* * * * *", &c, err, sizeof err) == 0);
    CHECK(c.sec == B(0) && c.min == (B(60) - 1) && c.hour == (B(24) - 1) && c.mday == (B(32) - 2) &&
          c.mon == 0x1ffe && c.wday == 0x7f && c.dom_star && c.dow_star && c.nfields == 5);
    CHECK(cron_parse(" \t*/15  0-6/3\t1,15 JAN-mar,Dec Sun,sat ", &c, err, sizeof err) == 0);
    CHECK(c.min == (B(0) | B(15) | B(30) | B(45)) && c.hour == (B(0) | B(3) | B(6)));
    CHECK(c.mday == (B(1) | B(15)) && c.mon == (B(1) | B(2) | B(3) | B(12)));
    CHECK(c.wday == (B(0) | B(6)) && !c.dom_star && !c.dow_star);
    CHECK(cron_parse("0 0 * * 7", &c, err, sizeof err) == 0 && c.wday == B(0));
    CHECK(cron_parse("0 0 * * 0-7", &c, err, sizeof err) == 0 && c.wday == 0x7f && !c.dow_star);
    CHECK(cron_parse("0 0 * * 1/2", &c, err, sizeof err) == 0 &&
          c.wday == (B(1) | B(3) | B(5) | B(0))); /* 1 to 7 by 2: 7 is Sunday */
    CHECK(cron_parse("0 0 */2 * *", &c, err, sizeof err) == 0 && c.dom_star &&
          c.mday == 0xAAAAAAAAu);
    CHECK(cron_parse("0 0 1-31 * *", &c, err, sizeof err) == 0 && !c.dom_star);
    CHECK(cron_parse("58/5 * * * *", &c, err, sizeof err) == 0 && c.min == B(58));
    CHECK(cron_parse("*/100 * * * *", &c, err, sizeof err) == 0 && c.min == B(0));
    CHECK(cron_parse("7 */20 * * * *", &c, err, sizeof err) == 0 && c.sec == B(7) &&
          c.min == (B(0) | B(20) | B(40)) && c.nfields == 6);
    CHECK(cron_parse("00 07 01 01 00", &c, err, sizeof err) == 0 && c.hour == B(7) && c.wday == B(0));
    CHECK(cron_parse("0 0 * * MON-FRI", &c, err, sizeof err) == 0 && c.wday == 0x3e);
    CHECK(cron_parse("0,1,2,3,5,8,13,21,34,55 * * * *", &c, err, sizeof err) == 0 &&
          c.min == (B(0) | B(1) | B(2) | B(3) | B(5) | B(8) | B(13) | B(21) | B(34) | B(55)));
}

static void test_zones(void)
{
    char err[256];
    static const char *const badnames[] = {
        "", "/etc/passwd", "../../etc/passwd", "Europe/../../../etc/passwd", "Europe/..",
        "..", "No/Such_Zone", "Europe", "America/", "zone.tab", "Europe/Stockholm ", "Europe\\Oslo",
        "Europe/Stockholm\n", "posix/../UTC",
    };
    for (size_t i = 0; i < sizeof badnames / sizeof *badnames; i++) {
        strcpy(err, "");
        struct tz *tz = tz_load(badnames[i], err, sizeof err);
        CHECK(tz == NULL && *err);
        if (tz) {
            fprintf(stderr, "  zone \"%s\" was accepted\n", badnames[i]);
            tz_free(tz);
        }
    }
    CHECK(tz_load("No/Such_Zone", err, sizeof err) == NULL && !strcmp(err, "unknown time zone No/Such_Zone"));
    CHECK(tz_load("../x", err, sizeof err) == NULL && !strcmp(err, "invalid time zone name"));
    CHECK(tz_load("zone.tab", err, sizeof err) == NULL && strstr(err, "not a TZif file"));
    struct tz *tz = tz_load_dir("/nonexistent", "UTC", err, sizeof err);
    CHECK(tz && tz_offset(tz, 0) == 0 && !strcmp(tz_name(tz), "UTC"));
    tz_free(tz);
    tz = tz_load("Etc/UTC", err, sizeof err);
    CHECK(tz && tz_offset(tz, 1800000000) == 0);
    tz_free(tz);
    CHECK(tz_load("right/UTC", err, sizeof err) == NULL); /* leap seconds, or not installed */

    /* every cut of a real file is refused cleanly; the whole file loads */
    FILE *f = fopen(TZ_DIR "/America/New_York", "rb");
    CHECK(f != NULL);
    if (f) {
        static unsigned char data[1 << 16];
        size_t n = fread(data, 1, sizeof data, f);
        fclose(f);
        int ok = 1;
        for (size_t len = 0; len < n; len++) {
            struct tz *t = tz_parse(data, len, "cut", err, sizeof err);
            if (t) {
                ok = 0;
                tz_free(t);
            }
        }
        CHECK(ok);
        struct tz *t = tz_parse(data, n, "whole", err, sizeof err);
        CHECK(t != NULL);
        tz_free(t);
    }
}

/* Validity: "0 0 29 2 *" finds a firing from every start; Feb 30 from none. */
static void test_horizon(void)
{
    char err[256];
    struct cron leap, feb30;
    CHECK(cron_parse("0 0 29 2 *", &leap, err, sizeof err) == 0);
    CHECK(cron_parse("0 0 30 2 *", &feb30, err, sizeof err) == 0);
    int ok = 1;
    time_t next;
    for (time_t t = 3944678400; t < 4260000000; t += 86400 * 5) { /* 2095 to 2104 */
        ok &= cron_next(&leap, zone("Europe/Stockholm"), t, &next) == 0 && next > t &&
              next - t <= (time_t)CRON_HORIZON_DAYS * 86400;
        ok &= cron_next(&feb30, zone("Europe/Stockholm"), t, &next) == -1;
    }
    CHECK(ok);
    /* NULL zone is UTC; out-of-range starts give -1 */
    struct cron c;
    CHECK(cron_parse("0 0 * * *", &c, err, sizeof err) == 0);
    CHECK(cron_next(&c, NULL, 0, &next) == 0 && next == 86400);
    CHECK(cron_next(&c, NULL, (time_t)300000000000LL, &next) == -1);
    CHECK(cron_next(&c, NULL, (time_t)-70000000000LL, &next) == -1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* 10,000 schedules, a mix of expressions and zones; each is advanced through its
 * next 20 firings as the scheduler would. */
static int bench(void)
{
    static const char *const exprs[] = {
        "0 6 * * 1-5", "0,30 6 * * 1-5", "*/5 * * * *", "0 0 1 * *", "15 2 * * *", "30 2 * * *",
        "0 */2 * * *", "0 9 * jan,jul mon-fri", "0 0 13 * 5", "0 0 29 2 *", "*/10 * * * * *",
        "0 0 * * 0", "5/15 8-18 * * *", "0 12 1,15 * *", "59 23 31 12 *", "0 0 L * *",
    };
    static const char *const zn[] = {"UTC", "Europe/Stockholm", "America/New_York",
                                     "Australia/Sydney", "Asia/Kolkata", "Australia/Lord_Howe"};
    enum { N = 10000, ROUNDS = 20 };
    static struct cron cs[N];
    static const struct tz *tzs[N];
    char err[256];
    size_t ne = sizeof exprs / sizeof *exprs - 1; /* the last one is invalid */
    for (int i = 0; i < N; i++) /* zones are loaded once and shared, as the scheduler will */
        tzs[i] = zone(zn[(i / ne) % (sizeof zn / sizeof *zn)]);
    double t0 = now_s();
    for (int i = 0; i < N; i++)
        if (cron_parse(exprs[i % ne], &cs[i], err, sizeof err) < 0)
            return 2;
    double t1 = now_s();
    long calls = 0, fails = 0;
    time_t start = 1796547600; /* 2026-12-06T09:00:00Z */
    for (int i = 0; i < N; i++) {
        time_t t = start + i % 3600, next;
        for (int r = 0; r < ROUNDS; r++, calls++) {
            if (cron_next(&cs[i], tzs[i], t, &next) < 0) {
                fails++;
                break;
            }
            t = next;
        }
    }
    double t2 = now_s();
    printf("cron bench: %d schedules, %zu expressions, %zu zones\n", N, ne, sizeof zn / sizeof *zn);
    printf("  cron_parse: %.3f us per call\n", (t1 - t0) * 1e6 / N);
    printf("  cron_next:  %.3f us per call (%ld calls, %ld without a firing, %.1f ms in all)\n",
           (t2 - t1) * 1e6 / (double)calls, calls, fails, (t2 - t1) * 1e3);
    printf("  first firing of all %d schedules: ", N);
    double t3 = now_s();
    for (int i = 0; i < N; i++) {
        time_t next;
        cron_next(&cs[i], tzs[i], start, &next);
    }
    printf("%.2f ms\n", (now_s() - t3) * 1e3);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--bench"))
        return bench();
    test_parse_errors();
    test_parse_masks();
    test_zones();
    test_local();
    test_wall();
    test_next();
    test_horizon();
    printf("%zu firing cases, %zu offset cases, %zu wall-time cases, %zu parse errors\n",
           sizeof next_cases / sizeof *next_cases, sizeof local_cases / sizeof *local_cases,
           sizeof wall_cases / sizeof *wall_cases, sizeof bad / sizeof *bad);
    for (int i = 0; i < NZONES; i++)
        tz_free(zones[i]);
    return UNIT_DONE();
}
