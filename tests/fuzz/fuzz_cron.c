/* Cron expressions and time zones (src/common/cron.c, tzfile.c), as the scheduler
 * gets them from a schedule body or file. The first byte picks the mode:
 *   0x00-0x7f  an expression (the rest) in one of the zones below (low 3 bits), from
 *              a start instant given by bytes 1-4 (2026 +- 4000 years);
 *   0x80-0xbf  a TZif file (the rest) through tz_parse, then every query on it;
 *   0xc0-0xff  a zone name (the rest) through tz_load.
 * Checked: a parsed expression's masks hold only in-range bits; a firing lies after
 * the start and within the horizon, matches the expression in wall-clock time, and
 * is also the next firing from any instant between the start and it; wall times
 * map back to the same wall time; a name with ".." or a leading "/" is refused. */
#include "cron.h"
#include "fuzz.h"
#include "tzfile.h"

static const char *const zone_names[8] = {
    "UTC", "Europe/Stockholm", "America/New_York", "Australia/Lord_Howe",
    "Asia/Kolkata", "Pacific/Chatham", "America/Sao_Paulo", "Africa/Casablanca",
};
static struct tz *zones[8];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];
    fuzz_quiet_log();
    for (int i = 0; i < 8; i++)
        if (!(zones[i] = tz_load(zone_names[i], err, sizeof err))) {
            fprintf(stderr, "%s\n", err);
            abort();
        }
    return 0;
}

/* STRICT: the zone is a real one (a fuzzed file may break the assumption of
 * tz_local_to_utc that transitions are days apart). */
static void check_firing(const struct cron *c, const struct tz *tz, time_t after, int strict)
{
    time_t next, again;
    if (cron_next(c, tz, after, &next) < 0)
        return;
    FUZZ_ASSERT(next > after);
    FUZZ_ASSERT(next - after <= (time_t)(CRON_HORIZON_DAYS + 2) * 86400);
    struct tm tm;
    FUZZ_ASSERT(tz_utc_to_local(tz, next, &tm, NULL) == 0);
    FUZZ_ASSERT(cron_match_tm(c, &tm));
    if (!strict)
        return;
    FUZZ_ASSERT(cron_next(c, tz, next - 1, &again) == 0 && again == next);
    FUZZ_ASSERT(cron_next(c, tz, after + (next - after) / 2, &again) == 0 && again == next);
    /* the one after: later still */
    if (cron_next(c, tz, next, &again) == 0)
        FUZZ_ASSERT(again > next);
}

static void fuzz_expr(const uint8_t *data, size_t size)
{
    if (size < 5 || size > 512)
        return;
    const struct tz *tz = zones[data[0] & 7];
    int32_t k = (int32_t)((uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 8 | data[4]);
    time_t after = (time_t)(1767225600LL + (int64_t)k * 59); /* 2026-01-01 +- 4000 years */
    char *expr = fuzz_str(data + 5, size - 5);
    char err[128] = "";
    struct cron c;
    if (cron_parse(expr, &c, err, sizeof err) == 0) {
        FUZZ_ASSERT(c.nfields == 5 || c.nfields == 6);
        FUZZ_ASSERT(c.sec && c.sec < (UINT64_C(1) << 60) && c.min && c.min < (UINT64_C(1) << 60));
        FUZZ_ASSERT(c.hour && c.hour < (1u << 24) && c.mday && !(c.mday & 1));
        FUZZ_ASSERT(c.mon && !(c.mon & 1) && c.mon < (1u << 13) && c.wday && c.wday < (1u << 7));
        FUZZ_ASSERT(c.nfields == 6 || c.sec == 1);
        check_firing(&c, tz, after, 1);
    } else {
        FUZZ_ASSERT(err[0] != '\0');
    }
    free(expr);
}

static void fuzz_tzif(const uint8_t *data, size_t size)
{
    char err[256];
    struct tz *tz = tz_parse(data, size, "fuzz", err, sizeof err);
    if (!tz) {
        FUZZ_ASSERT(err[0] != '\0');
        return;
    }
    static const int64_t probes[] = {-5000000000LL, -1, 0, 1000000000, 1774746000, 2200000000LL,
                                     4200000000LL, 253402300799LL};
    for (size_t i = 0; i < sizeof probes / sizeof *probes; i++) {
        struct tm tm;
        int off;
        FUZZ_ASSERT(tz_utc_to_local(tz, (time_t)probes[i], &tm, &off) == 0);
        FUZZ_ASSERT(off == tz_offset(tz, probes[i]) && off >= -26 * 3600 && off <= 26 * 3600);
        int64_t local = probes[i] + off, t[2];
        int n = tz_local_to_utc(tz, local, t);
        for (int j = 0; j < n; j++)
            FUZZ_ASSERT(t[j] + tz_offset(tz, t[j]) == local);
    }
    struct cron c;
    FUZZ_ASSERT(cron_parse("0 0 1 1,7 *", &c, err, sizeof err) == 0);
    check_firing(&c, tz, (time_t)1767225600, 0);
    tz_free(tz);
}

static void fuzz_name(const uint8_t *data, size_t size)
{
    if (size > 300 || memchr(data, '\0', size)) /* a C string, as the caller passes */
        return;
    char *name = fuzz_str(data, size);
    char err[256];
    struct tz *tz = tz_load(name, err, sizeof err);
    if (tz) {
        FUZZ_ASSERT(!strstr(name, "..") && name[0] != '/');
        tz_free(tz);
    } else {
        FUZZ_ASSERT(err[0] != '\0');
    }
    free(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] < 0x80)
        fuzz_expr(data, size);
    else if (data[0] < 0xc0)
        fuzz_tzif(data + 1, size - 1);
    else
        fuzz_name(data + 1, size - 1);
    return 0;
}
