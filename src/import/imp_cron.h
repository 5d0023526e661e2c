/* Butler numbers cron months 0-11; butlerd, like every other cron, 1-12
 * (butlerd-api(7), "Cron expressions and time zones"). Pure code. */
#ifndef IMP_CRON_H
#define IMP_CRON_H

#include <stddef.h>

/* EXPR with every number in its month field raised by one, into OUT (fields
 * joined by one space). 0, or -1 with the reason in ERR (no month field, a month
 * outside 0-11, text that is not a number, range or step). */
int imp_cron_shift(const char *expr, char *out, size_t outsz, char *err, size_t errsz);

#endif
