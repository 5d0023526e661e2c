/* App dump (butlerd-api(7), app dump, /v2/senseAppDump) and app reload (butlerd-api(7), app
 * reload): the handlers parse
 * the request, call appdump.c or appreload.c and render. Both start on job threads;
 * a reload's DoReload continues on a thread of its own after the 201. */
#include "api.h"
#include "appdump.h"
#include "appreload.h"
#include "cfg.h"
#include "http.h"
#include "schema.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------- dump */

/* What a domain module's callback needs to answer. */
struct app_reply {
    struct req *r;
    const char *app;
};

static void dump_done(void *arg, enum appdump_rc rc, struct buf *out)
{
    struct app_reply *d = arg;
    if (rc == APPDUMP_OK)
        http_reply_json_buf(d->r, 200, out);
    else if (rc == APPDUMP_NOT_FOUND)
        http_reply_error(d->r, 404, NULL, "App not found: %s", d->app);
    else
        http_reply_error(d->r, 500, NULL, "Failed dumping app");
}

static void dump_and_reply(struct req *r, const char *app)
{
    struct app_reply d = {r, app};
    appdump_run(r->cfg, app, dump_done, &d);
}

static void dump_job(struct req *r)
{
    size_t len;
    char *app = http_param(r, 0, &len);
    if (!app)
        return;
    dump_and_reply(r, app);
    free(app);
}

static void v2_dump_job(struct req *r)
{
    static const struct sch_prop qp[] = {{"appId", SCH_STRING, 1, 0, NULL},
                                         {NULL, 0, 0, 0, NULL}};
    json_object *q = http_query(r, qp);
    if (q)
        dump_and_reply(r, json_object_get_string(json_object_object_get(q, "appId")));
}

void api_app_dump(struct req *r) { http_defer(r, dump_job); }
void api_v2_app_dump(struct req *r) { http_defer(r, v2_dump_job); }

/* ----------------------------------------------------------------- reload */

static json_object *member(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) ? v : NULL;
}

static void reload_done(void *arg, enum appreload_rc rc, const char *why)
{
    struct app_reply *d = arg;
    switch (rc) {
    case APPRELOAD_STARTED: {
        json_object *res = json_object_new_object();
        json_object_object_add(res, "appId", json_object_new_string(d->app));
        http_reply_json(d->r, 201, res);
        break;
    }
    case APPRELOAD_NOT_FOUND:
        http_reply_error(d->r, 404, NULL, "App not found: %s", d->app);
        break;
    case APPRELOAD_FAILED:
        http_reply_error(d->r, 500, NULL, "Failed getting list of Sense apps");
        break;
    case APPRELOAD_NO_THREAD:
        http_reply_error(d->r, 500, NULL, "Cannot start the reload: %s", why);
        break;
    }
}

/* One of the two task lists: an array (a scalar becomes one) of strings. */
static int task_list(struct req *r, json_object *body, const char *name, struct strlist *out)
{
    json_object *v = member(body, name);
    for (size_t i = 0; v && i < json_object_array_length(v); i++) {
        json_object *s = sch_coerce(json_object_array_get_idx(v, i), SCH_STRING);
        if (!s) {
            http_reply_error(r, 400, "FST_ERR_VALIDATION", "body/%s/%zu must be string", name, i);
            return -1;
        }
        strlist_add(out, xstrdup(json_object_get_string(s)));
        json_object_put(s);
    }
    return 0;
}

static void reload_job(struct req *r)
{
    static const struct sch_prop bp[] = {{"reloadMode", SCH_INTEGER, 0, 0, NULL},
                                         {"partialReload", SCH_BOOLEAN, 0, 0, NULL},
                                         {"startQSEoWTaskOnSuccess", SCH_ARRAY, 0, 0, NULL},
                                         {"startQSEoWTaskOnFailure", SCH_ARRAY, 0, 0, NULL},
                                         {NULL, 0, 0, 0, NULL}};
    size_t len;
    char *app = http_param(r, 0, &len);
    if (!app)
        return;
    if (!r->body) /* no body is the same as {} (butlerd-api(7), app reload) */
        r->body = json_object_new_object();
    struct appreload_opts o = {0};
    json_object *b = http_body(r, bp), *v;
    if (!b || task_list(r, b, "startQSEoWTaskOnSuccess", &o.on_success) < 0 ||
        task_list(r, b, "startQSEoWTaskOnFailure", &o.on_failure) < 0)
        goto out;
    if ((v = member(b, "reloadMode")) != NULL) {
        int64_t m = json_object_get_int64(v);
        o.mode = m >= 0 && m <= 2 ? (int)m : 0;
    }
    o.partial = (v = member(b, "partialReload")) != NULL && json_object_get_boolean(v);
    struct app_reply rep = {r, app};
    appreload_start(r->cfg, app, &o, http_background_add, reload_done, &rep);
out:
    strlist_free(&o.on_success);
    strlist_free(&o.on_failure);
    free(app);
}

void api_app_reload(struct req *r) { http_defer(r, reload_job); }
