/* The jobs the events process runs, by kind (enum ev_kind): a task start asked for
 * over MQTT, and a failed or aborted reload event looked up in QRS (taskevent.c).
 * Kept apart from the process's queue and threads (events_child.c), so that the
 * domain modules, which publish through events_child.c, form no circle with it. */
#ifndef EVENTS_JOBS_H
#define EVENTS_JOBS_H

#include "ipc.h" /* enum ev_kind */

#include <stddef.h>

struct cfg;

/* Runs one job of KIND on one of the events process's threads. DATA is
 * NUL-terminated at LEN and may be modified. */
void events_jobs_run(const struct cfg *c, int kind, char *data, size_t len);

#endif
