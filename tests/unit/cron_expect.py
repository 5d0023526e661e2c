#!/usr/bin/env python3
"""Prints tests/unit/cron_cases.h: the expected values of tests/unit/test_cron.c,
worked out with Python's zoneinfo (the same system tz database, read by another
implementation) and a small cron matcher of its own, so that the C code under test
computes none of its own expectations.

    python3 tests/unit/cron_expect.py > tests/unit/cron_cases.h

Semantics, as spec 2.10.2 and src/common/cron.h say: wall-clock time of the zone;
a wall time that does not exist (a jump forward) does not fire; one that exists
twice (a jump back) fires once, at its first occurrence; day-of-month OR
day-of-week when both fields are restricted, a field being unrestricted when its
text starts with "*" (Vixie cron); no firing within 2922 days of the local date
of the start instant = none."""
import datetime as dt
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc
HORIZON_DAYS = 2922
MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
DAYS = "sun mon tue wed thu fri sat".split()


def parse_field(text, lo, hi, names=None, names_base=0):
    def val(s):
        s = s.lower()
        if names and s in names:
            return names.index(s) + names_base
        v = int(s)
        assert lo <= v <= hi, text
        return v

    out = set()
    for part in text.split(","):
        base, _, step = part.partition("/")
        step = int(step) if step else 1
        if base == "*":
            a, b = lo, hi
        elif "-" in base:
            a, b = (val(x) for x in base.split("-"))
        else:
            a = val(base)
            b = hi if step != 1 or "/" in part else a
        out.update(range(a, b + 1, step))
    return out


class Cron:
    def __init__(self, expr):
        f = expr.split()
        if len(f) == 5:
            f = ["0"] + f
        self.sec = parse_field(f[0], 0, 59)
        self.min = parse_field(f[1], 0, 59)
        self.hour = parse_field(f[2], 0, 23)
        self.dom = parse_field(f[3], 1, 31)
        self.mon = parse_field(f[4], 1, 12, MONTHS, 1)
        self.dow = {d % 7 for d in parse_field(f[5], 0, 7, DAYS, 0)}
        self.either = not f[3].startswith("*") and not f[5].startswith("*")

    def day(self, d):
        if d.month not in self.mon:
            return False
        dom, dow = d.day in self.dom, (d.isoweekday() % 7) in self.dow
        return (dom or dow) if self.either else (dom and dow)


def occurrences(naive, zone):
    """The UTC instants whose wall-clock time in ZONE is NAIVE, ascending."""
    got = set()
    for fold in (0, 1):
        u = naive.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if u.astimezone(zone).replace(tzinfo=None) == naive:
            got.add(u)
    return sorted(got)


def next_fire(c, zone, after):
    d0 = after.astimezone(zone).date()
    for k in range(HORIZON_DAYS + 1):
        d = d0 + dt.timedelta(days=k)
        if not c.day(d):
            continue
        for h in sorted(c.hour):
            for m in sorted(c.min):
                for s in sorted(c.sec):
                    occ = occurrences(dt.datetime(d.year, d.month, d.day, h, m, s), zone)
                    if occ and occ[0] > after:
                        return occ[0]
    return None


def ts(u):
    return int(u.timestamp())


def iso(u):
    return u.strftime("%Y-%m-%dT%H:%M:%SZ")


def utc(s):
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


# expression, zone, start (UTC), how many successive firings, what it shows
NEXT = [
    # Europe/Stockholm: 2026-03-29 02:00 CET -> 03:00 CEST, 2026-10-25 03:00 CEST -> 02:00 CET
    ("30 2 * * *", "Europe/Stockholm", "2026-03-27T12:00:00Z", 3, "no 02:30 on the spring-forward day"),
    ("30 2 * * *", "Europe/Stockholm", "2026-10-24T12:00:00Z", 3, "02:30 once on the fall-back day"),
    ("*/15 * * * *", "Europe/Stockholm", "2026-03-29T00:20:00Z", 5, "quarters across the gap"),
    ("*/20 2 * * *", "Europe/Stockholm", "2026-10-24T23:30:00Z", 5, "02:xx in the fold: first pass only"),
    ("0 * * * *", "Europe/Stockholm", "2026-10-24T23:30:00Z", 4, "hourly across the fold"),
    ("0 * * * *", "Europe/Stockholm", "2026-10-25T01:10:00Z", 2, "start inside the second pass"),
    ("0 2 * * *", "Europe/Stockholm", "2026-03-28T12:00:00Z", 2, "02:00 does not exist"),
    ("0 3 * * *", "Europe/Stockholm", "2026-03-28T12:00:00Z", 2, "03:00 is the first CEST wall time"),
    ("*/30 * * * * *", "Europe/Stockholm", "2026-10-25T00:59:00Z", 4, "6 fields: seconds in the fold"),
    ("* * * * * *", "Europe/Stockholm", "2026-03-29T00:59:58Z", 4, "6 fields: every second across the gap"),
    ("30 2 * * *", "Europe/Stockholm", "2040-03-24T12:00:00Z", 3, "footer rule (after 2037), spring"),
    ("30 2 * * *", "Europe/Stockholm", "2040-10-27T12:00:00Z", 3, "footer rule (after 2037), fall"),
    ("0 12 1 7 *", "Europe/Stockholm", "2099-12-31T00:00:00Z", 1, "footer rule, year 2100"),
    # America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT, 2026-11-01 02:00 EDT -> 01:00 EST
    ("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", 3, "no 02:30 on the spring-forward day"),
    ("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 3, "01:30 once on the fall-back day"),
    ("59 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 2, "01:59 once"),
    ("0,30 * * * *", "America/New_York", "2026-11-01T04:45:00Z", 5, "half hours across the fold"),
    ("0 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", 2, "02:00 does not exist"),
    ("30 2 * * *", "America/New_York", "2045-03-11T12:00:00Z", 3, "footer rule, spring 2045"),
    ("30 1 * * *", "America/New_York", "2045-11-04T12:00:00Z", 3, "footer rule, fall 2045"),
    ("0 9 * * 1-5", "America/New_York", "2026-12-04T20:00:00Z", 3, "weekdays"),
    # other zones: half-hour DST shift, southern hemisphere, no DST
    ("15 2 * * *", "Australia/Lord_Howe", "2026-10-03T00:00:00Z", 3, "30-minute jump forward"),
    ("45 1 * * *", "Australia/Lord_Howe", "2026-04-04T00:00:00Z", 3, "30-minute jump back"),
    ("30 2 * * *", "Australia/Sydney", "2050-10-01T00:00:00Z", 3, "southern footer rule, spring"),
    ("30 2 * * *", "Australia/Sydney", "2050-04-01T00:00:00Z", 3, "southern footer rule, fall"),
    ("0 9 * * *", "Asia/Kolkata", "2026-06-01T00:00:00Z", 2, "fixed +05:30"),
    # 6 fields, UTC
    ("* * * * * *", "UTC", "2026-12-06T08:59:59Z", 3, "every second"),
    ("*/7 * * * * *", "UTC", "2026-12-06T08:59:50Z", 4, "step 7 over seconds"),
    ("15 30 9 * * *", "UTC", "2026-12-06T10:00:00Z", 2, "second 15"),
    # Feb 29
    ("0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z", 2, "next leap years"),
    ("0 0 29 2 *", "UTC", "2096-02-29T00:00:00Z", 1, "2100 is no leap year: 8 years minus a day"),
    ("30 12 29 2 *", "Europe/Stockholm", "2027-06-01T00:00:00Z", 1, "leap day in a zone"),
    ("0 0 29 2 1", "UTC", "2026-02-01T00:00:00Z", 3, "Feb 29 or Mondays in February"),
    # day-of-month and day-of-week
    ("0 0 13 * 5", "UTC", "2026-02-01T00:00:00Z", 6, "13th OR Friday"),
    ("0 0 * * 1", "UTC", "2026-12-01T00:00:00Z", 2, "Mondays"),
    ("0 0 */1 * 1", "UTC", "2026-12-01T00:00:00Z", 2, "star step: AND, so Mondays"),
    ("0 0 */2 * 1", "UTC", "2026-12-01T00:00:00Z", 3, "star step: odd days that are Mondays"),
    ("0 0 1-31 * 1", "UTC", "2026-12-01T00:00:00Z", 3, "1-31 is restricted: OR, every day"),
    ("0 0 1 * */3", "UTC", "2026-12-01T00:00:00Z", 3, "day 1 AND star-step weekday"),
    ("0 0 15 * 0-7", "UTC", "2026-12-01T00:00:00Z", 2, "0-7 is restricted: every day"),
    # names, steps, lists
    ("0 9 * jan,jul mon-fri", "Europe/Stockholm", "2026-06-30T12:00:00Z", 3, "names"),
    ("0 0 1 JAN SUN", "UTC", "2026-12-01T00:00:00Z", 3, "upper-case names, OR"),
    ("0 0 * * 7", "UTC", "2026-12-01T00:00:00Z", 2, "7 is Sunday"),
    ("0 0 * * 5-7", "UTC", "2026-12-01T00:00:00Z", 4, "5-7: Fri, Sat, Sun"),
    ("5/15 * * * *", "UTC", "2026-12-06T08:00:00Z", 5, "a/s"),
    ("10-40/10 8-10 * * *", "UTC", "2026-12-06T09:35:00Z", 5, "a-b/s"),
    ("0 0 1/10 * *", "UTC", "2026-12-25T00:00:00Z", 4, "day 1/10"),
    ("0 0,12 1,15 * *", "UTC", "2026-12-01T06:00:00Z", 4, "lists"),
    ("0 0 1 */5 *", "UTC", "2026-12-01T06:00:00Z", 3, "months 1, 6, 11"),
    ("59 23 31 12 *", "America/New_York", "2026-12-31T23:00:00Z", 2, "year end"),
    # no firing within 8 years
    ("0 0 31 2 *", "UTC", "2026-01-01T00:00:00Z", 1, "Feb 31: none"),
    ("0 0 30 2 *", "Europe/Stockholm", "2026-01-01T00:00:00Z", 1, "Feb 30: none"),
    ("0 0 31 4,6,9,11 *", "UTC", "2026-01-01T00:00:00Z", 1, "31st of 30-day months: none"),
    ("30 2 29 3 0", "Europe/Stockholm", "2026-01-01T00:00:00Z", 2, "OR: Sundays in March"),
]



def transitions(zone, start, end):
    """UTC instants (seconds) where ZONE's offset changes, START <= t < END."""
    z, out, prev, t = ZoneInfo(zone), [], None, start
    off = lambda u: dt.datetime.fromtimestamp(u, UTC).astimezone(z).utcoffset()
    while t < end:
        o = off(t)
        if prev is not None and o != prev:
            lo, hi = t - 6 * 3600, t
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if off(mid) == o else (mid, hi)
            out.append(hi)
        prev, t = o, t + 6 * 3600
    return out


def dst_nights(seed, count, lo, hi, what):
    """Random starts from LO to HI seconds around a transition (2026-2045, so also
    years where only the TZ footer rule applies) in zones whose rules are settled,
    with schedules that land in the gap or the fold."""
    import random
    r = random.Random(seed)
    zones = ["Europe/Stockholm", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe",
             "Europe/Dublin", "America/St_Johns", "Pacific/Chatham"]
    exprs = ["30 2 * * *", "0 * * * *", "*/15 * * * *", "0,30 1-3 * * *", "*/20 * 0-4 * * *",
             "59 * * * *", "15 2 * * *", "45 1 * * *", "0 1 * * *", "*/7 * * * *", "1-5 2 * * *",
             "30 2-3 * * *", "0 0 * * *", "*/10 * 1-3 * * *", "* * * * * *", "*/13 * * * * *"]
    trans = {z: transitions(z, 1767225600, 2398377600) for z in zones}
    out = []
    for _ in range(count):
        z = r.choice(zones)
        start = r.choice(trans[z]) + r.randint(lo, hi)
        out.append((r.choice(exprs), z, iso(dt.datetime.fromtimestamp(start, UTC)), 3, what))
    return out


NEXT += dst_nights(13, 40, -4 * 3600, 0, "random DST night")
NEXT += dst_nights(14, 30, -1800, 5400, "random start just before or after a transition")

# instants whose offset and wall-clock time are checked (tz_utc_to_local)
LOCAL = [
    ("Europe/Stockholm", t) for t in (
        "2026-03-29T00:59:59Z", "2026-03-29T01:00:00Z", "2026-10-25T00:59:59Z",
        "2026-10-25T01:00:00Z", "2037-07-01T00:00:00Z", "2038-03-28T01:00:00Z",
        "2045-10-29T00:59:59Z", "2045-10-29T01:00:00Z", "2100-02-28T23:30:00Z", "1950-06-01T00:00:00Z")
] + [
    ("America/New_York", t) for t in (
        "2026-03-08T06:59:59Z", "2026-03-08T07:00:00Z", "2026-11-01T05:59:59Z",
        "2026-11-01T06:00:00Z", "2050-03-13T07:00:00Z", "2050-11-06T05:30:00Z", "1900-01-01T12:00:00Z")
] + [
    ("Australia/Sydney", "2060-01-15T00:00:00Z"), ("Australia/Lord_Howe", "2026-10-04T00:00:00Z"),
    ("Asia/Kolkata", "2026-06-01T00:00:00Z"), ("UTC", "2026-06-01T00:00:00Z"),
]

# wall-clock times mapped back to UTC (tz_local_to_utc): 0, 1 or 2 instants
WALL = [
    ("Europe/Stockholm", "2026-03-29T02:30:00"), ("Europe/Stockholm", "2026-03-29T03:00:00"),
    ("Europe/Stockholm", "2026-03-29T01:59:59"), ("Europe/Stockholm", "2026-10-25T02:30:00"),
    ("Europe/Stockholm", "2026-10-25T03:00:00"), ("Europe/Stockholm", "2026-10-25T01:59:59"),
    ("Europe/Stockholm", "2050-03-27T02:00:00"), ("Europe/Stockholm", "2050-10-30T02:00:00"),
    ("America/New_York", "2026-03-08T02:00:00"), ("America/New_York", "2026-11-01T01:00:00"),
    ("America/New_York", "2026-11-01T02:00:00"), ("America/New_York", "2060-11-07T01:30:00"),
    ("Australia/Lord_Howe", "2026-10-04T02:10:00"), ("Australia/Lord_Howe", "2026-04-05T01:40:00"),
    ("UTC", "2026-06-01T12:00:00"),
]


def main():
    print("/* Generated by tests/unit/cron_expect.py (Python %s zoneinfo); do not edit. */"
          % ".".join(map(str, __import__("sys").version_info[:3])))
    print("struct next_case {\n    const char *expr, *zone;\n    int64_t after;\n    int n; /* expected"
          " firings; 0: none within the horizon */\n    int64_t want[8];\n};")
    print("static const struct next_case next_cases[] = {")
    for expr, zone, start, count, what in NEXT:
        z = ZoneInfo(zone)
        c = Cron(expr)
        t = utc(start)
        got = []
        for _ in range(count):
            t = next_fire(c, z, t)
            if t is None:
                break
            got.append(t)
        print("    /* %s; from %s: %s */" % (what.replace("*/", "*\\/"), start,
                                              ", ".join("%s (%s)" % (iso(u), u.astimezone(z).strftime("%m-%d %H:%M:%S %Z")) for u in got) or "none"))
        print('    {"%s", "%s", %d, %d, {%s}},' % (expr, zone, ts(utc(start)), len(got),
                                                 ", ".join(str(ts(u)) for u in got)))
    print("};\n")
    print("struct local_case {\n    const char *zone;\n    int64_t t;\n    int off, isdst, year, mon, mday,"
          " hour, min, sec, wday;\n};")
    print("static const struct local_case local_cases[] = {")
    for zone, s in LOCAL:
        u = utc(s)
        lt = u.astimezone(ZoneInfo(zone))
        off = int(lt.utcoffset().total_seconds())
        isdst = int(bool(lt.dst()))
        print('    {"%s", %d, %d, %d, %d, %d, %d, %d, %d, %d, %d}, /* %s = %s */' % (
            zone, ts(u), off, isdst, lt.year, lt.month, lt.day, lt.hour, lt.minute, lt.second,
            lt.isoweekday() % 7, s, lt.isoformat()))
    print("};\n")
    print("struct wall_case {\n    const char *zone;\n    int64_t local; /* wall time as seconds since"
          " 1970-01-01 00:00:00 */\n    int n;\n    int64_t t[2];\n};")
    print("static const struct wall_case wall_cases[] = {")
    for zone, s in WALL:
        naive = dt.datetime.fromisoformat(s)
        occ = occurrences(naive, ZoneInfo(zone))
        local = int((naive - dt.datetime(1970, 1, 1)).total_seconds())
        if not occ:  # a gap: the first instant whose wall time lies after it
            z, lo, hi = ZoneInfo(zone), local - 2 * 86400, local + 2 * 86400
            while hi - lo > 1:
                mid = (lo + hi) // 2
                w = dt.datetime.fromtimestamp(mid, UTC).astimezone(z).replace(tzinfo=None)
                lo, hi = (lo, mid) if w > naive else (mid, hi)
            occ = [dt.datetime.fromtimestamp(hi, UTC)]
            gap = 1
        else:
            gap = 0
        print('    {"%s", %d, %d, {%s}}, /* %s: %s */' % (
            zone, local, 0 if gap else len(occ), ", ".join(str(ts(u)) for u in occ), s,
            ("gap, ends at " if gap else "") + ", ".join(iso(u) for u in occ)))
    print("};")


if __name__ == "__main__":
    main()
