/* The deliberate differences between Butler and butlerd (butlerd-import(8),
 * DIFFERENCES) that matter for one configuration: each is reported only when the
 * file turns on what it concerns. */
#ifndef IMP_DIFF_H
#define IMP_DIFF_H

#include "imp_report.h"
#include "imp_yaml.h"

/* Is the key at dotted PATH below map BUTLER the boolean true? */
int imp_diff_true(const struct imp_node *butler, const char *path);
void imp_diff_report(const struct imp_node *butler, struct imp_report *rep);

#endif
