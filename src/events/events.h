/* The events process as the master sees it: a child that does the work which waits
 * on Qlik Sense, so the master's loop never does. It starts tasks asked for over
 * MQTT and enriches task failed/aborted events from QRS before they fan out to
 * their destinations. This side is its role in the process table, job submission
 * and the queue accounting; the child's side is events_child.h. */
#ifndef EVENTS_H
#define EVENTS_H

/* The job kinds, and events_publish for the modules that still include this header
 * from code that runs in the events process. */
#include "events_child.h"

#include <stddef.h>

struct cfg;

/* Starts the events process for generation GEN. */
void events_start(const struct cfg *cfg, unsigned gen);
/* New configuration: the running child finishes its jobs and a new one starts. */
void events_reload(const struct cfg *cfg, unsigned gen);
/* Queues a job; -1 if the child is not running. */
int events_submit(enum ev_kind kind, const void *data, size_t len);
/* Jobs of KIND handed over and not yet finished. */
unsigned events_outstanding(enum ev_kind kind);
int events_running(void);
/* Orderly stop: TERM to every events process (each finishes its jobs). */
void events_stop(void);

#endif
