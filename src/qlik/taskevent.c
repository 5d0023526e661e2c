/* Task failed/aborted events: enrichment from QRS and fan-out (butlerd-api(7), Full task-event
 * payload; butlerd-api(7), Task events). */
#include "taskevent.h"
#include "cfg.h"
#include "events_child.h"
#include "log.h"
#include "notify.h"
#include "outbox.h"
#include "qrs.h"
#include "stats.h"
#include "util.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ destinations */

static int mqtt_wants(const struct cfg *c, const struct task_event *e)
{
    return c->mqtt.enable;
}

json_object *taskevent_names(json_object *o, const char *member)
{
    json_object *out = json_object_new_array(), *arr, *name;
    if (json_object_object_get_ex(o, member, &arr) && json_object_is_type(arr, json_type_array))
        for (size_t i = 0; i < json_object_array_length(arr); i++)
            if (json_object_object_get_ex(json_object_array_get_idx(arr, i), "name", &name))
                json_object_array_add(out, json_object_get(name));
    return out;
}

json_object *taskevent_custom_props(json_object *o)
{
    json_object *out = json_object_new_array(), *arr;
    if (!json_object_object_get_ex(o, "customProperties", &arr) ||
        !json_object_is_type(arr, json_type_array))
        return out;
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *cp = json_object_array_get_idx(arr, i), *def, *name = NULL, *val = NULL;
        if (json_object_object_get_ex(cp, "definition", &def))
            json_object_object_get_ex(def, "name", &name);
        json_object_object_get_ex(cp, "value", &val);
        json_object *p = json_object_new_object();
        json_object_object_add(p, "name", json_object_get(name));
        json_object_object_add(p, "value", json_object_get(val));
        json_object_array_add(out, p);
    }
    return out;
}

/* "INTERNAL\\sa_scheduler" as logged becomes INTERNAL\sa_scheduler. */
static char *collapse_backslashes(const char *s)
{
    char *out = xstrdup(s), *d = out;
    for (const char *p = s; *p; p++) {
        *d++ = *p;
        if (p[0] == '\\' && p[1] == '\\')
            p++;
    }
    *d = '\0';
    return out;
}

static void add_str(json_object *o, const char *k, const char *v)
{
    json_object_object_add(o, k, json_object_new_string(v));
}

static void mqtt_send(const struct cfg *c, const struct task_event *e)
{
    const char *topic = e->aborted ? c->mqtt.taskAbortedTopic : c->mqtt.taskFailureTopic;
    const char *full = e->aborted ? c->mqtt.taskAbortedFullTopic : c->mqtt.taskFailureFullTopic;
    int send_full = e->aborted ? c->mqtt.taskAbortedSendFull : c->mqtt.taskFailureSendFull;
    events_publish(topic, e->f[2], strlen(e->f[2]));
    if (!send_full)
        return;
    json_object *o = json_object_new_object();
    char *user = collapse_backslashes(e->f[4]);
    add_str(o, "hostName", e->f[1]);
    add_str(o, "user", user);
    add_str(o, "taskName", e->f[2]);
    add_str(o, "taskId", e->f[5]);
    add_str(o, "appName", e->f[3]);
    add_str(o, "appId", e->f[6]);
    add_str(o, "logTimeStamp", e->f[7]);
    add_str(o, "logLevel", e->f[8]);
    add_str(o, "executionId", e->f[9]);
    add_str(o, "logMessage", e->f[10]);
    json_object_object_add(o, "qs_appTags", taskevent_names(e->app, "tags"));
    json_object_object_add(o, "qs_appCustomProperties", taskevent_custom_props(e->app));
    json_object_object_add(o, "qs_taskTags", taskevent_names(e->task, "tags"));
    json_object_object_add(o, "qs_taskCustomProperties", taskevent_custom_props(e->task));
    if (e->aborted)
        json_object_object_add(o, "qs_appMetadata", json_object_get(e->app));
    json_object_object_add(o, "qs_taskMetadata", json_object_get(e->task));
    size_t len;
    const char *js = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    events_publish(full, js, len);
    json_object_put(o);
    free(user);
}

static const struct destination {
    const char *name;
    int (*wants)(const struct cfg *, const struct task_event *);
    void (*send)(const struct cfg *, const struct task_event *);
} destinations[] = {
    {"MQTT", mqtt_wants, mqtt_send},
};
#define NDEST (sizeof destinations / sizeof destinations[0])

/* ------------------------------------------------------------ QRS lookups */

struct first {
    json_object *arr; /* element 0 only */
    size_t n;         /* elements in the answer */
};

static void keep_first(json_object *o, void *arg)
{
    struct first *f = arg;
    if (f->n++ == 0)
        json_object_array_add(f->arr, o ? json_object_get(o) : NULL);
}

/* GET /qrs/PATH?filter=id eq ID; returns an array with element 0 of the answer (the
 * answer is read one element at a time, see jsonarr_each) and its length in *N,
 * or NULL (logged). */
static json_object *qrs_array(const struct cfg *c, struct task_event *e, const char *path,
                              const char *id, const char *what, size_t *n)
{
    char filter[64];
    snprintf(filter, sizeof filter, "id eq %s", id);
    struct qrs_resp q;
    struct first f = {json_object_new_array(), 0};
    if (e->noanswer)
        return NULL; /* the circuit breaker (butlerd(8), Alerts) */
    if (qrs_call(c, "GET", path, filter, NULL, &q) < 0) {
        e->noanswer = 1;
        log_errorx("%s: QRS request failed: %s", what, q.error);
    } else if (q.status != 200) {
        log_errorx("%s: QRS responded with HTTP %ld", what, q.status);
    } else if (jsonarr_each(q.body.p, q.body.len, keep_first, &f) >= 0) {
        qrs_resp_free(&q);
        *n = f.n;
        return f.arr;
    } else {
        log_errorx("%s: QRS answer is not a JSON array", what);
    }
    qrs_resp_free(&q);
    json_object_put(f.arr);
    return NULL;
}

static const char *const task_types[] = {"reload", "external program", "user sync",
                                         "distribute", "preload"};

/* Calls 1 and 2: the task. 1 known (E->task set), 0 unknown to Sense or not a
 * reload task (no alert), -1 the lookup failed. */
static int lookup_task(const struct cfg *c, struct task_event *e, const char *what,
                       json_object **tasks, json_object **full)
{
    size_t n;
    *tasks = qrs_array(c, e, "task", e->f[5], what, &n);
    if (!*tasks)
        return -1;
    if (n == 0) {
        log_warnx("Task ID %s does not exist in Sense", e->f[5]);
        return 0;
    }
    *full = qrs_array(c, e, "task/full", e->f[5], what, &n);
    if (!*full)
        return -1;
    if (n != 1) {
        log_errorx("%s: QRS returned %zu full tasks for %s", what, n, e->f[5]);
        return -1;
    }
    e->task = json_object_array_get_idx(*full, 0);
    json_object *tt;
    int type = json_object_object_get_ex(e->task, "taskType", &tt) ? json_object_get_int(tt) : 0;
    if (type != 0) {
        log_info("%s %s (%s) is a %s task: no notifications", what, e->f[5], e->f[2],
                 type > 0 && type < 5 ? task_types[type] : "unknown type of");
        return 0;
    }
    return 1;
}

/* Call 3: the app (E->app set, or left NULL). */
static json_object *lookup_app(const struct cfg *c, struct task_event *e, const char *what)
{
    size_t n;
    if (!*e->f[6]) {
        log_warnx("%s %s (%s): the event has no app ID", what, e->f[5], e->f[2]);
        return NULL;
    }
    json_object *apps = qrs_array(c, e, "app/full", e->f[6], what, &n);
    if (apps && n == 0)
        log_warnx("%s %s: app %s does not exist in Sense", what, e->f[5], e->f[6]);
    else if (apps)
        e->app = json_object_array_get_idx(apps, 0);
    return apps;
}

void taskevent_handle(const struct cfg *c, const char *job)
{
    json_object *j = json_tokener_parse(job), *fields, *outcome;
    if (!j || !json_object_object_get_ex(j, "fields", &fields) ||
        !json_object_object_get_ex(j, "outcome", &outcome) ||
        json_object_array_length(fields) != 11) {
        log_errorx("task event: bad job from the master");
        json_object_put(j);
        return;
    }
    struct task_event e = {0};
    e.aborted = !strcmp(json_object_get_string(outcome), "aborted");
    e.success = !strcmp(json_object_get_string(outcome), "success");
    for (int i = 0; i < 11; i++)
        e.f[i] = json_object_get_string(json_object_array_get_idx(fields, i));
    const char *what = e.success ? "succeeded task" : e.aborted ? "aborted task" : "failed task";

    int mqtt = 0, alerts = notify_wanted(c, e.success ? OB_SUCCESS : e.aborted ? OB_ABORTED
                                                                                : OB_FAILED);
    for (size_t i = 0; i < NDEST && !e.success; i++) /* MQTT: failed and aborted only */
        mqtt |= destinations[i].wants(c, &e);
    json_object *tasks = NULL, *full = NULL, *apps = NULL;
    int ok = 0, known = 0;
    if (!mqtt && !alerts)
        goto out;
    known = lookup_task(c, &e, what, &tasks, &full);
    if (known == 0) {
        ok = 1;
        goto out;
    }
    apps = lookup_app(c, &e, what);
    if (known > 0 && e.app) {
        ok = 1;
        for (size_t i = 0; i < NDEST; i++)
            if (destinations[i].wants(c, &e))
                destinations[i].send(c, &e);
    }
    /* Alerts degrade instead (butlerd(8), Alerts): without the task they need the
     * event's app ID. */
    if (alerts && (known > 0 || *e.f[6])) {
        if (known < 0)
            e.task = NULL;
        notify_event(c, &e);
        ok = 1;
    }
out:
    if (mqtt || alerts)
        STAT_INC(events_done);
    if ((mqtt || alerts) && !ok)
        STAT_INC(events_failed);
    json_object_put(tasks);
    json_object_put(full);
    json_object_put(apps);
    json_object_put(j);
}
