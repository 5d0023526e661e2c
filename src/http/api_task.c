/* The start-task endpoints (butlerd-api(7), start task and /v2/senseStartTask) and the apps list:
 * they parse the request, call task.c or apps.c and render. Everything here waits on QRS, so
 * the handlers run on job threads. */
#include "api.h"
#include "apps.h"
#include "cfg.h"
#include "http.h"
#include "log.h"
#include "schema.h"
#include "task.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void start_job(struct req *r)
{
    const struct cfg *c = r->cfg;
    json_object *items;
    size_t tlen;
    char *url_id = http_param(r, 0, &tlen), *verr;
    if (!url_id)
        return;
    items = task_items_validate(r->body, c->startTaskMaxItems, &verr);
    if (!items) {
        http_reply_error(r, 400, "FST_ERR_VALIDATION", "%s", verr);
        free(verr);
        free(url_id);
        return;
    }
    static const struct sch_prop qp[] = {{"allTaskIdsMustExist", SCH_BOOLEAN, 0, 0, NULL},
                                         {NULL, 0, 0, 0, NULL}};
    json_object *q = http_query(r, qp), *qv;
    if (!q)
        goto out;
    int must_exist = json_object_object_get_ex(q, "allTaskIdsMustExist", &qv) &&
                     json_object_get_boolean(qv);
    if (tlen == 0) {
        http_reply_error(r, 400, NULL,
                         "Required parameter (task ID) missing. Should be a task ID or \"-\" if "
                         "task info is passed in body");
        goto out;
    }
    char err[128];
    int status = 500;
    json_object *o = task_start_run(c, url_id, items, must_exist, &status, err, sizeof err);
    if (!o) {
        log_errorx("start task: QRS lookup failed (%s), no task started", err);
        if (status == 502) /* the reply passed butlerd.qrs.maxReplyBytes */
            http_reply_error(r, 502, NULL, "QRS request failed: %s", err);
        else
            http_reply_error(r, 500, NULL, "Failed starting task");
    } else {
        http_reply_json(r, 200, o);
    }
out:
    json_object_put(items);
    free(url_id);
}

void api_task_start(struct req *r) { http_defer(r, start_job); }

/* ----------------------------------------------------------- /v2/senseStartTask */

static void v2_start_job(struct req *r)
{
    static const struct sch_prop qp[] = {{"taskId", SCH_STRING, 1, 0, NULL},
                                         {NULL, 0, 0, 0, NULL}};
    json_object *q = http_query(r, qp);
    if (!q)
        return;
    const char *x = json_object_get_string(json_object_object_get(q, "taskId"));
    char id[37], msg[200];
    switch (task_start_checked(r->cfg, x, id, msg, sizeof msg)) {
    case TASK_STARTED: {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "taskId", json_object_new_string(id));
        http_reply_json(r, 200, o);
        break;
    }
    case TASK_BAD_ID: http_reply_error(r, 400, NULL, "Invalid task ID: %s", x); break;
    case TASK_DENIED:
        http_reply_error(r, 403, NULL, "Task ID %s is not allowed by the start task filter", id);
        break;
    case TASK_NOT_FOUND: http_reply_error(r, 404, NULL, "Task not found: %s", id); break;
    case TASK_QRS_FAILED:
    case TASK_START_FAILED: http_reply_error(r, 502, NULL, "%s", msg); break;
    }
}

void api_v2_start_task(struct req *r) { http_defer(r, v2_start_job); }

/* ------------------------------------------------------------------ apps list */

static void apps_job(struct req *r)
{
    struct buf out = {0};
    char err[128];
    switch (apps_list(r->cfg, &out, err, sizeof err)) {
    case APPS_OK: http_reply_json_buf(r, 200, &out); break;
    case APPS_TOO_LARGE: http_reply_error(r, 502, NULL, "QRS request failed: %s", err); break;
    case APPS_FAILED: http_reply_error(r, 500, NULL, "Failed getting list of Sense apps"); break;
    }
    buf_free(&out);
}

void api_apps_list(struct req *r) { http_defer(r, apps_job); }
