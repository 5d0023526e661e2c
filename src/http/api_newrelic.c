/* POST /v4/newrelic/event and POST /v4/newrelic/metric (butlerd-api(7), New Relic):
 * the body is checked here, newrelic.c posts it to the configured accounts, and the
 * outcome becomes 202, 502 or 503. The handlers wait on New Relic, so they run on job
 * threads. */
#include "api.h"
#include "http.h"
#include "newrelic.h"

#include <stdlib.h>

static void post_and_reply(struct req *r, enum nr_kind kind, const struct sch_prop *props)
{
    json_object *body = http_body(r, props);
    if (!body)
        return;
    char *err;
    if (nr_check_attributes(body, kind, &err) < 0) {
        http_reply_error(r, 400, "FST_ERR_VALIDATION", "%s", err);
        free(err);
        return;
    }
    struct nr_outcome o;
    switch (nr_post(r->cfg, kind, body, &o)) {
    case NR_SENT: {
        json_object *res = json_object_new_object();
        json_object_object_add(res, "newRelicResultCode", json_object_new_int64(o.status));
        json_object_object_add(res, "newRelicResultText", json_object_new_string(o.reason));
        http_reply_json(r, 202, res);
        break;
    }
    case NR_NO_ACCOUNT:
        http_reply_error(r, 503, NULL, "No New Relic destination account is configured");
        break;
    case NR_FAILED:
        http_reply_error(r, 502, NULL, "%s", o.message);
        break;
    }
}

static void event_job(struct req *r)
{
    static const struct sch_prop props[] = {
        {"eventType", SCH_STRING, 1, NR_NAME_MAX, NULL},
        {"timestamp", SCH_NUMBER, 0, 0, NULL},
        {"attributes", SCH_ARRAY, 0, 0, NULL},
        {NULL, 0, 0, 0, NULL}};
    post_and_reply(r, NR_EVENT, props);
}

static void metric_job(struct req *r)
{
    static const char *const types[] = {"gauge", NULL};
    static const struct sch_prop props[] = {
        {"name", SCH_STRING, 1, NR_NAME_MAX, NULL},
        {"type", SCH_STRING, 1, 0, types},
        {"value", SCH_NUMBER, 1, 0, NULL},
        {"timestamp", SCH_NUMBER, 0, 0, NULL},
        {"interval", SCH_NUMBER, 0, 0, NULL},
        {"attributes", SCH_ARRAY, 0, 0, NULL},
        {NULL, 0, 0, 0, NULL}};
    post_and_reply(r, NR_METRIC, props);
}

void api_newrelic_event(struct req *r) { http_defer(r, event_job); }
void api_newrelic_metric(struct req *r) { http_defer(r, metric_job); }
