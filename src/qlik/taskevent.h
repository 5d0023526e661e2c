/* Reload task failed/aborted events (butlerd-api(7), Task events) in the events process: QRS
 * lookups,
 * then fan-out to every destination that wants the event. MQTT is the destination
 * today; e-mail, Slack, Teams and webhooks are entries to add to the table. */
#ifndef TASKEVENT_H
#define TASKEVENT_H

#include <json-c/json.h>

struct cfg;

/* One failed or aborted reload event being handled. */
struct task_event {
    int aborted;
    int success;       /* a successful reload (e-mail only, butlerd(8), Alerts) */
    const char *f[11]; /* the UDP fields, IDs normalised */
    json_object *task; /* QRS task/full element, NULL if unknown */
    json_object *app;  /* QRS app/full element, NULL if unknown */
    int noanswer;      /* a QRS call got no answer: the event's remaining calls are skipped */
};

/* JOB is {"outcome": "failed"|"aborted"|"success", "fields": [11 sanitised strings]} with the
 * task ID (field 5) and app ID (field 6) already normalised. */
/* [o.MEMBER[].name] and [{name: o.customProperties[].definition.name, value}] of a
 * QRS task or app (new arrays; empty when O is NULL or lacks them). */
json_object *taskevent_names(json_object *o, const char *member);
json_object *taskevent_custom_props(json_object *o);

void taskevent_handle(const struct cfg *cfg, const char *job);

#endif
