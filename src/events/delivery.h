/* The delivery process (butlerd(8), "Outbox"): one role in the master's process
 * table that owns the spool directory's queue. It loads every queued entry, sends
 * each with libcurl's multi interface (at most butlerd.notifications.maxConcurrent
 * at once, so one slow destination does not hold up the others), removes it when
 * the destination accepted it, reschedules it with backoff on a transient failure
 * and moves it to dead/ on a permanent one or when it is too old.
 *
 * How an entry's request becomes a transfer, and how the outcome is classified,
 * is one entry per destination in xfer.c's table (HTTP for Slack, Teams and
 * webhooks; e-mail adds its own). */
#ifndef DELIVERY_H
#define DELIVERY_H

#include <json-c/json.h>

#include <stddef.h>

struct cfg;

/* Master, at start: creates the spool directory, takes its lock and starts the
 * process when any alert destination is enabled. -1 (logged) if the directory
 * cannot be used or another butlerd holds it. */
int delivery_start(const struct cfg *c, unsigned gen);
/* Master, after a reload: starts the process if alerts were just enabled, or
 * replaces a running one (the new one starts when the old one has exited). */
void delivery_reload(const struct cfg *c, unsigned gen);
void delivery_stop(void);

/* One attempt of ENTRY right now, without the outbox and without retry (an entry
 * the events process could not write to the spool). 0 if the destination
 * accepted it, else -1 with the reason in ERR. Blocking: a job thread only. */
int delivery_send_now(const struct cfg *c, json_object *entry, char *err, size_t errlen);

#endif
