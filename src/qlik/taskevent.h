/* Reload task failed/aborted events (butlerd-api(7), Task events) in the events process: QRS
 * lookups,
 * then fan-out to every destination that wants the event. MQTT is the destination
 * today; e-mail, Slack, Teams and webhooks are entries to add to the table. */
#ifndef TASKEVENT_H
#define TASKEVENT_H

struct cfg;

/* JOB is {"outcome": "failed"|"aborted", "fields": [11 sanitised strings]} with the
 * task ID (field 5) and app ID (field 6) already normalised. */
void taskevent_handle(const struct cfg *cfg, const char *job);

#endif
