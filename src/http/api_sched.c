/* The scheduler endpoints (butlerd-api(7), Scheduler): parse and validate, call
 * sched.c, render. They run on a job thread: a change writes the schedule file and
 * waits for fsync, and on Redis every route waits for Redis. */
#include "api.h"
#include "cfg.h"
#include "http.h"
#include "sched_list.h"
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

/* Limits of a new schedule (butlerd-api(7), Scheduler); Butler has none. */
#define NAME_MAX_CP 1024
#define FIELD_MAX_CP 256
#define TAGS_MAX 100

static const char *const states[] = {"start", "started", "stop", "stopped", NULL};

static const struct sch_prop create_body[] = {
    {"name", SCH_STRING, 1, NAME_MAX_CP, NULL},
    {"cronSchedule", SCH_STRING, 1, FIELD_MAX_CP, NULL},
    {"timezone", SCH_STRING, 1, FIELD_MAX_CP, NULL},
    {"qlikSenseTaskId", SCH_STRING, 1, FIELD_MAX_CP, NULL},
    {"startupState", SCH_STRING, 1, 0, states},
    {"tags", SCH_ARRAY, 0, 0, NULL},
    {NULL, 0, 0, 0, NULL}};

static const struct sch_prop id_query[] = {{"id", SCH_STRING, 0, 0, NULL},
                                           {NULL, 0, 0, 0, NULL}};

/* Checks what the schema cannot: the tags' items, and strings without NUL (a
 * schedule's strings are C strings from here on). 1 if it replied. */
static int check_more(struct req *r, json_object *b)
{
    json_object *v;
    json_object_object_foreach(b, k, val)
    {
        if (json_object_is_type(val, json_type_string) &&
            strlen(json_object_get_string(val)) != (size_t)json_object_get_string_len(val)) {
            http_reply_error(r, 400, "FST_ERR_VALIDATION", "body/%s must not contain U+0000", k);
            return 1;
        }
    }
    if (!json_object_object_get_ex(b, "tags", &v))
        return 0;
    size_t n = json_object_array_length(v);
    if (n > TAGS_MAX) {
        http_reply_error(r, 400, "FST_ERR_VALIDATION", "body/tags must NOT have more than %d items",
                         TAGS_MAX);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        /* Items are coerced as any string is (butlerd-api(7), Validation): 1 -> "1". */
        json_object *t = sch_coerce(json_object_array_get_idx(v, i), SCH_STRING);
        if (!t) {
            http_reply_error(r, 400, "FST_ERR_VALIDATION", "body/tags/%zu must be string", i);
            return 1;
        }
        json_object_array_put_idx(v, i, t);
        const char *s = json_object_get_string(t);
        size_t len = (size_t)json_object_get_string_len(t);
        if (strlen(s) != len) {
            http_reply_error(r, 400, "FST_ERR_VALIDATION", "body/tags/%zu must not contain U+0000",
                             i);
            return 1;
        }
        if (utf8_count(s, len) > FIELD_MAX_CP) {
            http_reply_error(r, 400, "FST_ERR_VALIDATION",
                             "body/tags/%zu must NOT have more than %d characters", i,
                             FIELD_MAX_CP);
            return 1;
        }
    }
    return 0;
}

static void reply_full(struct req *r)
{
    http_reply_error(r, 400, NULL, "Too many schedules (limit %d)", r->cfg->scheduler.maxSchedules);
}

/* butlerd.store.backend "redis" and Redis cannot be reached: nothing changed
 * (butlerd(8), SCHEDULER, "Several instances"). */
static void reply_unavail(struct req *r)
{
    http_reply_error(r, 503, NULL, "Scheduler unavailable: its Redis server cannot be reached, "
                                   "try again later");
}

static void get_job(struct req *r)
{
    json_object *q = http_query(r, id_query), *idv;
    if (!q)
        return;
    const char *id = json_object_object_get_ex(q, "id", &idv) ? json_object_get_string(idv) : NULL;
    struct buf b = {0};
    enum sched_rc rc = sched_get(id, &b);
    if (rc == SCHED_OK) {
        http_reply_json_buf(r, 200, &b);
        return;
    }
    buf_free(&b);
    if (rc == SCHED_UNAVAIL)
        reply_unavail(r);
    else if (rc == SCHED_NOT_FOUND)
        http_reply_error(r, 400, NULL, "REST SCHEDULER: Schedule ID %s not found.", id);
    else
        http_reply_error(r, 500, NULL, "Failed reading schedules");
}

static void create_job(struct req *r)
{
    json_object *b = http_body(r, create_body), *out = NULL;
    if (!b || check_more(r, b))
        return;
    char err[400];
    switch (sched_create(r->cfg, b, &out, err, sizeof err)) {
    case SCHED_OK:
        http_reply_json(r, 201, out);
        break;
    case SCHED_INVALID:
        http_reply_error(r, 400, NULL, "%s", err);
        break;
    case SCHED_FULL:
        reply_full(r);
        break;
    case SCHED_UNAVAIL:
        reply_unavail(r);
        break;
    default:
        http_reply_error(r, 500, NULL, "Failed adding new schedule");
    }
}

static void delete_job(struct req *r)
{
    size_t len;
    char *id = http_param(r, 0, &len);
    if (!id)
        return;
    switch (sched_delete(id)) {
    case SCHED_OK:
        http_reply_empty(r, 204);
        break;
    case SCHED_NOT_FOUND:
        http_reply_error(r, 400, NULL, "REST SCHEDULER: Delete for schedule ID %s failed.", id);
        break;
    case SCHED_UNAVAIL:
        reply_unavail(r);
        break;
    default:
        http_reply_error(r, 500, NULL, "Failed deleting schedule");
    }
    free(id);
}

/* Start or stop one schedule (ID from the path) or all (ALL). */
static void set_running(struct req *r, int on, int all)
{
    size_t len;
    char *id = all ? NULL : http_param(r, 0, &len);
    if (!all && !id)
        return;
    struct buf b = {0};
    enum sched_rc rc = sched_set_running(id, on, &b);
    const char *verb = on ? "starting" : "stopping";
    if (rc == SCHED_OK) {
        http_reply_json_buf(r, 200, &b);
    } else {
        buf_free(&b);
        if (rc == SCHED_NOT_FOUND || rc == SCHED_INVALID)
            http_reply_error(r, 400, NULL, "REST SCHEDULER: Failed %s schedule ID %s.", verb, id);
        else if (rc == SCHED_FULL)
            reply_full(r);
        else if (rc == SCHED_UNAVAIL)
            reply_unavail(r);
        else
            http_reply_error(r, 500, NULL, "Failed %s schedule", verb);
    }
    free(id);
}

static void start_job(struct req *r) { set_running(r, 1, 0); }
static void stop_job(struct req *r) { set_running(r, 0, 0); }
static void startall_job(struct req *r) { set_running(r, 1, 1); }
static void stopall_job(struct req *r) { set_running(r, 0, 1); }

static void status_job(struct req *r)
{
    struct buf b = {0};
    enum sched_rc rc = sched_status_text(&b);
    if (rc == SCHED_OK)
        http_reply_text(r, 200, b.p);
    else if (rc == SCHED_UNAVAIL)
        reply_unavail(r);
    else
        http_reply_error(r, 500, NULL, "Failed reading schedules");
    buf_free(&b);
}

void api_sched_get(struct req *r) { http_defer(r, get_job); }
void api_sched_create(struct req *r) { http_defer(r, create_job); }
void api_sched_delete(struct req *r) { http_defer(r, delete_job); }
void api_sched_start(struct req *r) { http_defer(r, start_job); }
void api_sched_stop(struct req *r) { http_defer(r, stop_job); }
void api_sched_startall(struct req *r) { http_defer(r, startall_job); }
void api_sched_stopall(struct req *r) { http_defer(r, stopall_job); }
void api_sched_status(struct req *r) { http_defer(r, status_job); }
