/* Runs butlerd's own configuration loader (the one `butlerd -t` runs) on the
 * converted file, and brings the report in line with what this butlerd reads. */
#ifndef IMP_CHECK_H
#define IMP_CHECK_H

#include "imp_report.h"

/* 0 if butlerd accepts FILE, -1 if it reports errors (added to the report as
 * notes: they are about this host, such as a missing certificate file). SHOWN is
 * the name messages use for FILE. */
int imp_check_conf(const char *file, const char *shown, struct imp_report *rep);

#endif
