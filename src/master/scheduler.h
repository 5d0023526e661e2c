/* The scheduler process (butlerd(8), "Scheduler"): a role of the process table that
 * fires the running schedules of the shared list (sched_list.h) and starts their tasks
 * through the start-task code (task.h), on a few threads of its own so that a slow
 * or dead QRS never delays another schedule. */
#ifndef SCHEDULER_H
#define SCHEDULER_H

struct cfg;

/* Master: starts the scheduler process when Butler.scheduler.enable is on. */
void scheduler_start(const struct cfg *c, unsigned gen);
/* Master, after a reload: a new process with the new configuration takes over; the
 * old one finishes the starts it has begun. Firing seconds are claimed in shared
 * memory, so the overlap never fires a second twice. */
void scheduler_reload(const struct cfg *c, unsigned gen);
void scheduler_stop(void);

#endif
