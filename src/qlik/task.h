/* Starting Qlik Sense tasks (spec 3): shared by the REST handlers and the events
 * process (tasks started from MQTT). Everything here blocks on QRS. */
#ifndef TASK_H
#define TASK_H

#include <json-c/json.h>
#include <stddef.h>

struct cfg;

/* Lower-cases a loose GUID (spec 1.11) into OUT; 1 if S is one. */
int task_loose_id(const char *s, char out[37]);
/* True if ID is in Butler.startTaskFilter.allowed.taskId. */
int task_allowed_id(const struct cfg *c, const char *id);
/* POST /qrs/task/ID/start: 0 accepted, else *STATUS (0 = no answer) and MSG set.
 * An ID that is not a loose GUID is refused without a QRS call. */
int task_start_one(const struct cfg *c, const char *id, long *status, char *msg, size_t msz);
/* Checks a start-task body (spec 3.1) with at most MAX_ITEMS items: the item array
 * (a new reference), or NULL and *ERR (malloc'd, the validation message). */
json_object *task_items_validate(json_object *body, int max_items, char **err);
/* Spec 3.2 for URL_ID ("-" or NULL: none) and ITEMS: the response object, or NULL if
 * a QRS lookup failed (nothing started; the reason in ERR; *ERRSTATUS, if not NULL,
 * 502 when a reply passed butlerd.qrs.maxReplyBytes, else 500). */
json_object *task_start_run(const struct cfg *c, const char *url_id, json_object *items,
                            int must_exist, int *errstatus, char *err, size_t errsz);

#endif
