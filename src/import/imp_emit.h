/* Writes the Butler group of the libconfig output from the YAML tree: known keys in
 * the type butlerd expects (imp_keys.c), everything else carried over as it is,
 * comments kept in place, and every key accounted for in the report. */
#ifndef IMP_EMIT_H
#define IMP_EMIT_H

#include "imp_comment.h"
#include "imp_report.h"
#include "imp_yaml.h"

#include <stdio.h>

struct imp_emit {
    FILE *out;
    const char *file;          /* the YAML file, for file:line */
    struct imp_comments cm;
    struct imp_report *rep;
};

/* "Butler = { ... };" from map BUTLER (may be NULL: an empty group). */
void imp_emit_butler(struct imp_emit *e, const struct imp_node *butler, int line);
/* S as a libconfig string literal (UTF-8 as is, '\' and '"' and controls escaped). */
void imp_emit_string(FILE *out, const char *s);

#endif
