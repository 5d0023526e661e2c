/* Converts a Butler schedule file (YAML, {butlerSchedule: [...]}) into butlerd's
 * JSON schedule file (butlerd-api(7), "Persistence"), renumbering cron months and
 * reporting every schedule whose meaning changes. */
#ifndef IMP_SCHED_H
#define IMP_SCHED_H

#include "imp_report.h"
#include "imp_yaml.h"
#include "util.h"

/* The JSON text into OUT: 0, or -1 with errors in the report (nothing usable). */
int imp_sched_convert(const char *file, const struct imp_node *root, struct buf *out,
                      struct imp_report *rep);

#endif
