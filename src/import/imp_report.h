/* The report butlerd-import prints on standard error: what was mapped, what is
 * accepted but ignored and why, what could not be mapped, secrets carried over
 * (named, never shown), and the differences from Butler that matter for this
 * file. Values are never printed, so no secret can leak through it. */
#ifndef IMP_REPORT_H
#define IMP_REPORT_H

#include "util.h"

#include <stdio.h>

enum imp_section {
    IR_MAPPED,
    IR_ALERT,     /* accepted, takes effect when alerts land */
    IR_IGNORED,
    IR_UNMAPPED,
    IR_SECRET,
    IR_DIFF,
    IR_NOTE,
    IR_ERROR,     /* the conversion fails */
    IR_NSECTIONS
};

struct imp_report {
    struct strlist s[IR_NSECTIONS];
    const char *mapped_title; /* NULL: the configuration's wording */
    struct strlist secret_values; /* never printed: imp_report_add blanks them out */
};

/* Remembers secret value V, so that no later report line can show it. */
void imp_report_secret(struct imp_report *r, const char *v);
void imp_report_add(struct imp_report *r, enum imp_section s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Is LINE (exactly) already in section S? */
int imp_report_has(const struct imp_report *r, enum imp_section s, const char *line);
/* Every section, or only the errors when there are any. */
void imp_report_print(const struct imp_report *r, FILE *out);
void imp_report_free(struct imp_report *r);

#endif
