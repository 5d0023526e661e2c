/* Collects the report's lines by section and prints them (butlerd-import(8),
 * REPORT). */
#include "imp_report.h"

#include <stdarg.h>
#include <string.h>

static const char *const titles[IR_NSECTIONS] = {
    "Mapped (butlerd reads these keys)",
    "Accepted, takes effect when alerts land (butlerd -t accepts them; this butlerd does not "
    "send alerts yet)",
    "Accepted and ignored by butlerd",
    "Could not map",
    "Secrets carried over (values not shown)",
    "Differences from Butler that affect this file",
    "Notes",
    "Errors",
};

void imp_report_secret(struct imp_report *r, const char *v)
{
    if (strlen(v) >= 4) /* shorter ones would blank out ordinary words */
        strlist_add(&r->secret_values, xstrdup(v));
}

/* Lines can quote values (messages of butlerd's loader do): secrets become "***". */
static void redact(const struct imp_report *r, char *text)
{
    for (size_t i = 0; i < r->secret_values.n; i++) {
        const char *v = r->secret_values.v[i];
        size_t n = strlen(v);
        for (char *p = strstr(text, v); p; p = strstr(p + 3, v)) {
            memcpy(p, "***", 3);
            memmove(p + 3, p + n, strlen(p + n) + 1);
        }
    }
}

void imp_report_add(struct imp_report *r, enum imp_section s, const char *fmt, ...)
{
    char text[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    redact(r, text);
    strlist_add(&r->s[s], xstrdup(text));
}

int imp_report_has(const struct imp_report *r, enum imp_section s, const char *line)
{
    for (size_t i = 0; i < r->s[s].n; i++)
        if (!strcmp(r->s[s].v[i], line))
            return 1;
    return 0;
}

void imp_report_print(const struct imp_report *r, FILE *out)
{
    int failed = r->s[IR_ERROR].n > 0; /* then the errors are all that matters */
    for (int s = 0; s < IR_NSECTIONS; s++) {
        if (!r->s[s].n || (failed && s != IR_ERROR))
            continue;
        const char *t = s == IR_MAPPED && r->mapped_title ? r->mapped_title : titles[s];
        fprintf(out, "%s (%zu):\n", t, r->s[s].n);
        for (size_t i = 0; i < r->s[s].n; i++)
            fprintf(out, "  %s\n", r->s[s].v[i]);
    }
}

void imp_report_free(struct imp_report *r)
{
    for (int s = 0; s < IR_NSECTIONS; s++)
        strlist_free(&r->s[s]);
    strlist_free(&r->secret_values);
}
