/* Month-field renumbering. Names (jan-dec) and steps keep their meaning; only the
 * numbers of values and ranges move: "0-5/2" becomes "1-6/2". */
#include "imp_cron.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define MAXF 8

/* Appends number-or-name token T (shifted if a number) to OUT; -1 if bad. */
static int shift_value(const char *t, size_t n, char *out, size_t outsz, char *err, size_t errsz)
{
    static const char names[] = "jan feb mar apr may jun jul aug sep oct nov dec";
    if (n && isalpha((unsigned char)t[0])) {
        char low[4] = "";
        for (size_t i = 0; i < 3 && n == 3; i++)
            low[i] = (char)tolower((unsigned char)t[i]);
        if (n != 3 || !strstr(names, low)) {
            snprintf(err, errsz, "month field: \"%.*s\" is not a month", (int)n, t);
            return -1;
        }
        snprintf(out + strlen(out), outsz - strlen(out), "%.*s", (int)n, t);
        return 0;
    }
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)t[i]) || v > 1000) {
            snprintf(err, errsz, "month field: \"%.*s\" is not a month", (int)n, t);
            return -1;
        }
        v = v * 10 + (t[i] - '0');
    }
    if (!n || v > 11) {
        snprintf(err, errsz, "month field: %d is outside Butler's months 0-11", v);
        return -1;
    }
    snprintf(out + strlen(out), outsz - strlen(out), "%d", v + 1);
    return 0;
}

/* One list element: "*", "a", "a-b", each optionally "/s". */
static int shift_elem(const char *e, size_t n, char *out, size_t outsz, char *err, size_t errsz)
{
    const char *slash = memchr(e, '/', n);
    size_t base = slash ? (size_t)(slash - e) : n;
    if (base == 1 && e[0] == '*') {
        strncat(out, "*", outsz - strlen(out) - 1);
    } else {
        const char *dash = memchr(e, '-', base);
        size_t a = dash ? (size_t)(dash - e) : base;
        if (shift_value(e, a, out, outsz, err, errsz) < 0)
            return -1;
        if (dash) {
            strncat(out, "-", outsz - strlen(out) - 1);
            if (shift_value(dash + 1, base - a - 1, out, outsz, err, errsz) < 0)
                return -1;
        }
    }
    if (slash)
        snprintf(out + strlen(out), outsz - strlen(out), "%.*s", (int)(n - base), slash);
    return 0;
}

static int shift_field(const char *f, char *out, size_t outsz, char *err, size_t errsz)
{
    const char *p = f;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (!n) {
            snprintf(err, errsz, "month field: empty list element");
            return -1;
        }
        if (shift_elem(p, n, out, outsz, err, errsz) < 0)
            return -1;
        if (!comma)
            return 0;
        strncat(out, ",", outsz - strlen(out) - 1);
        p = comma + 1;
    }
}

int imp_cron_shift(const char *expr, char *out, size_t outsz, char *err, size_t errsz)
{
    char buf[512], *f[MAXF], *save;
    int nf = 0;
    snprintf(buf, sizeof buf, "%s", expr);
    for (char *t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        if (nf == MAXF)
            break;
        f[nf++] = t;
    }
    if (nf != 5 && nf != 6) {
        snprintf(err, errsz, "%d fields (5 or 6 expected)", nf);
        return -1;
    }
    int mon = nf == 6 ? 4 : 3;
    out[0] = '\0';
    for (int i = 0; i < nf; i++) {
        if (i)
            strncat(out, " ", outsz - strlen(out) - 1);
        if (i != mon)
            strncat(out, f[i], outsz - strlen(out) - 1);
        else if (shift_field(f[i], out, outsz, err, errsz) < 0)
            return -1;
    }
    return 0;
}
