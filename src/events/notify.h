/* The alert pipeline in the events process (butlerd(8), Alerts): for one failed,
 * aborted or (e-mail only) successful reload whose task and app QRS lookups are
 * done, gather the rest of the context (alertctx.c), then for each enabled
 * destination, independently: rate
 * limit, render, one outbox entry per message (outbox.c). Delivery is the
 * delivery process's business (delivery.c).
 *
 * A destination is one entry of the table in notify.c: whether it is enabled for a
 * kind, its script-log line counts, and how its messages are made from the context.
 * E-mail is one more entry there, made in notify_mail.c. */
#ifndef NOTIFY_H
#define NOTIFY_H

#include <json-c/json.h>

struct cfg;
struct task_event;
struct alert_info;

/* What a destination makes its messages from. */
struct msg_env {
    const struct cfg *c;
    struct task_event *e;
    const struct alert_info *a;
    int kind; /* OB_FAILED, OB_ABORTED, OB_SUCCESS */
};

/* 1 if any destination is enabled for events of KIND (OB_* of outbox.h). */
int notify_wanted(const struct cfg *c, int kind);
/* 1 if any destination is enabled at all (the events process must run). */
int notify_any(const struct cfg *c);
/* Runs the pipeline for E (task and app lookups done or failed, see taskevent.c). */
void notify_event(const struct cfg *c, struct task_event *e);

/* For destinations that make several messages per event (e-mail, one per
 * recipient): the rate limit of one KEY (1 passes and opens the window; 0 is
 * dropped, counted and logged) ... */
int notify_rate_pass(int dest, int kind, const char *key, int window_s);
/* ... and one message into the outbox: REQ (taken) for TARGET, written to queue/
 * (or to dead/ with DEAD_REASON), counted and logged; a full queue or a failed
 * write is counted as dropped. */
void notify_spool(const struct cfg *c, const struct task_event *e, int kind, int dest,
                  const char *target, json_object *req, const char *dead_reason);

/* The e-mail destination (notify_mail.c): enabled for KIND, its script-log line
 * counts, and its messages, one per recipient. */
int notify_mail_on(const struct cfg *c, int kind);
int notify_mail_lines(const struct cfg *c, int kind, int tail);
void notify_mail_make(const struct msg_env *m);

#endif
