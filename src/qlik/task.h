/* Starting Qlik Sense tasks (butlerd-api(7), start task): one implementation (task.c) shared
 * by the REST
 * handlers, the events process (tasks started from MQTT) and app reload's follow-up
 * tasks. Knows nothing about HTTP; everything here blocks on QRS. */
#ifndef TASK_H
#define TASK_H

#include <json-c/json.h>
#include <stddef.h>

struct cfg;

/* guid_loose() (guid.h), for callers that know task.h only. */
int task_loose_id(const char *s, char out[37]);
/* True if ID is in Butler.startTaskFilter.allowed.taskId. */
int task_allowed_id(const struct cfg *c, const char *id);
/* POST /qrs/task/ID/start: 0 accepted, else *STATUS (0 = no answer) and MSG set.
 * An ID that is not a loose GUID is refused without a QRS call. */
int task_start_one(const struct cfg *c, const char *id, long *status, char *msg, size_t msz);
/* Checks a start-task body (butlerd-api(7), start task) with at most MAX_ITEMS items: the item
 * array
 * (a new reference), or NULL and *ERR (malloc'd, the validation message). */
json_object *task_items_validate(json_object *body, int max_items, char **err);
/* Spec 3.2 for URL_ID ("-" or NULL: none) and ITEMS: the response object, or NULL if
 * a QRS lookup failed (nothing started; the reason in ERR; *ERRSTATUS, if not NULL,
 * 502 when a reply passed butlerd.qrs.maxReplyBytes, else 500). */
json_object *task_start_run(const struct cfg *c, const char *url_id, json_object *items,
                            int must_exist, int *errstatus, char *err, size_t errsz);

/* /v2/senseStartTask: one task by ID, checked (loose GUID, start-task filter, exists
 * in QRS) before it is started. */
enum task_rc {
    TASK_STARTED,
    TASK_BAD_ID,       /* X is not a GUID */
    TASK_DENIED,       /* not allowed by Butler.startTaskFilter */
    TASK_NOT_FOUND,    /* QRS knows no such task */
    TASK_QRS_FAILED,   /* the lookup got no answer or an error status: MSG says which */
    TASK_START_FAILED, /* the start was refused: MSG says why */
};
/* ID gets X lower-cased (when it is a GUID). */
enum task_rc task_start_checked(const struct cfg *c, const char *x, char id[37], char *msg,
                                size_t msz);

#endif
