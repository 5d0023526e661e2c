/* The jobs the events process runs (see events_jobs.h). */
#include "events_jobs.h"
#include "cfg.h"
#include "log.h"
#include "redis_conn.h"
#include "rl_redis.h"
#include "stats.h"
#include "task.h"
#include "taskevent.h"

#include <stdlib.h>
#include <string.h>

/* A message on the start topic: a bare task ID, or a start-task body (butlerd-api(7),
 * MQTT, Start topic). The start-task filter applies either way (Butler skipped it on
 * this path). */
static void start_from_mqtt(const struct cfg *c, char *p, size_t len)
{
    while (len && (p[len - 1] == ' ' || (p[len - 1] >= '\t' && p[len - 1] <= '\r')))
        p[--len] = '\0';
    while (*p == ' ' || (*p >= '\t' && *p <= '\r'))
        p++;
    if (*p == '[' || *p == '{') {
        json_tokener *tok = json_tokener_new();
        json_object *body = json_tokener_parse_ex(tok, p, (int)strlen(p));
        int bad = json_tokener_get_error(tok) != json_tokener_success ||
                  tok->char_offset != (int)strlen(p);
        json_tokener_free(tok);
        char *verr = NULL, err[128];
        json_object *items = bad ? NULL : task_items_validate(body, c->startTaskMaxItems, &verr);
        json_object_put(body);
        if (!items) {
            log_warnx("MQTT start task: invalid message: %s", verr ? verr : "not valid JSON");
            free(verr);
            return;
        }
        json_object *res = task_start_run(c, "-", items, 0, NULL, err, sizeof err);
        json_object_put(items);
        if (!res) {
            log_errorx("MQTT start task: QRS lookup failed (%s), no task started", err);
            return;
        }
        log_info("MQTT start task: %s",
                 json_object_to_json_string_ext(res, JSON_C_TO_STRING_PLAIN |
                                                         JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(res);
        return;
    }
    char id[37], msg[200];
    long st;
    if (!task_loose_id(p, id)) {
        log_warnx("MQTT start task: Invalid task ID: %.100s", p);
        return;
    }
    if (c->startTaskFilter.enable && !task_allowed_id(c, id)) {
        log_warnx("MQTT start task: task %s is not allowed by the start task filter", id);
        return;
    }
    if (task_start_one(c, id, &st, msg, sizeof msg) == 0)
        log_info("MQTT start task: started task %s", id);
    else
        log_warnx("MQTT start task: starting task %s failed: %s", id, msg);
}

/* With several instances on one Redis, each may get the same task event (Qlik
 * Sense sends to every Butler): its execution ID is claimed with SET NX PX for the
 * de-duplication TTL, and only the instance that claims it handles it (butlerd-api(7),
 * UDP EVENTS). The master's own ring already dropped this instance's repeats; the
 * claim is made here because the master must not wait on Redis. 1 = handle it. */
static int claim_execution(const struct cfg *c, const char *job)
{
    if (!redis_in_use() || !c->udp.dedupEnable)
        return 1;
    json_object *j = json_tokener_parse(job), *fields;
    const char *id = NULL;
    if (j && json_object_object_get_ex(j, "fields", &fields) &&
        json_object_array_length(fields) > 9)
        id = json_object_get_string(json_object_array_get_idx(fields, 9));
    int rc = 1;
    if (id && *id) {
        rc = rl_redis_claim("exec", id, (int64_t)c->udp.dedupTtlMinutes * 60000);
        if (rc == 0)
            log_info("UDP task event, execution %s: handled by another instance", id);
        rc = rc != 0; /* Redis unreachable: handle it (an alert twice beats none) */
    }
    json_object_put(j);
    return rc;
}

void events_jobs_run(const struct cfg *c, int kind, char *data, size_t len)
{
    if (kind == EV_START_TASK) {
        STAT_INC(mqtt_task_starts);
        start_from_mqtt(c, data, len);
    } else if (kind == EV_TASK_EVENT) {
        if (claim_execution(c, data))
            taskevent_handle(c, data);
    }
}
