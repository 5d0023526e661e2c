/* Starting Qlik Sense tasks (spec 2.14, 3, and /v2/senseStartTask) and the apps
 * list. Everything here waits on QRS, so the handlers run on job threads. */
#include "api.h"
#include "cfg.h"
#include "http.h"
#include "kv.h"
#include "log.h"
#include "qrs.h"
#include "task.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Lower-cases S into OUT (37 bytes) if it matches PAT, where x is a hex digit, 5 is
 * 0-5, 8 is 8/9/a/b and - is itself (spec 1.11). */
static int guid_match(const char *s, const char *pat, char out[37])
{
    if (strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        char c = (char)tolower((unsigned char)s[i]);
        int ok = pat[i] == '-' ? c == '-'
                 : pat[i] == '5' ? (c >= '0' && c <= '5')
                 : pat[i] == '8' ? (c == '8' || c == '9' || c == 'a' || c == 'b')
                                 : isxdigit((unsigned char)c) != 0;
        if (!ok)
            return 0;
        out[i] = c;
    }
    out[36] = '\0';
    return 1;
}

static int strict_id(const char *s, char out[37])
{
    return guid_match(s, "xxxxxxxx-xxxx-5xxx-8xxx-xxxxxxxxxxxx", out);
}

int task_loose_id(const char *s, char out[37])
{
    return guid_match(s, "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", out);
}

int task_allowed_id(const struct cfg *c, const char *id)
{
    for (size_t i = 0; i < c->startTaskFilter.taskId.n; i++)
        if (!strcasecmp(c->startTaskFilter.taskId.v[i], id))
            return 1;
    return 0;
}

static json_object *task_obj(const char *id, const char *name)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "taskId", json_object_new_string(id));
    if (name)
        json_object_object_add(o, "taskName", json_object_new_string(name));
    return o;
}

static const char *str_member(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

/* Runs a QRS task lookup; appends {taskId, taskName} for each element to OUT.
 * FIRST_ONLY takes element 0 only. Returns 0, or -1 if QRS gave no HTTP answer. */
static int lookup(const struct cfg *c, const char *path, const char *filter, int first_only,
                  json_object *out, char *err, size_t errsz)
{
    struct qrs_resp q;
    if (qrs_call(c, "GET", path, filter, NULL, &q) < 0) {
        snprintf(err, errsz, "%s", q.error);
        qrs_resp_free(&q);
        return -1;
    }
    json_object *arr = q.status == 200 ? json_tokener_parse(q.body.p) : NULL;
    if (!arr || !json_object_is_type(arr, json_type_array)) {
        log_warnx("QRS lookup %s for \"%s\" answered HTTP %ld without a task list", path, filter,
                  q.status);
    } else {
        size_t n = json_object_array_length(arr);
        for (size_t i = 0; i < n && (!first_only || i == 0); i++) {
            json_object *t = json_object_array_get_idx(arr, i);
            const char *id = str_member(t, "id"), *name = str_member(t, "name");
            if (!id)
                continue;
            char low[64];
            snprintf(low, sizeof low, "%s", id);
            for (char *p = low; *p; p++)
                *p = (char)tolower((unsigned char)*p);
            json_object_array_add(out, task_obj(low, name ? name : ""));
        }
    }
    json_object_put(arr);
    qrs_resp_free(&q);
    return 0;
}

/* Starts one task: 0 accepted, else fills status (0 = no answer) and message. */
int task_start_one(const struct cfg *c, const char *id, long *status, char *msg, size_t msz)
{
    char path[96];
    struct qrs_resp q;
    snprintf(path, sizeof path, "task/%s/start", id);
    int rc = qrs_call(c, "POST", path, NULL, "{}", &q);
    *status = q.status;
    if (rc < 0)
        snprintf(msg, msz, "QRS request failed: %s", q.error);
    else if (q.status < 200 || q.status > 299)
        snprintf(msg, msz, "QRS responded with HTTP %ld", q.status);
    qrs_resp_free(&q);
    return rc == 0 && q.status >= 200 && q.status <= 299 ? 0 : -1;
}

/* ------------------------------------------------------------ body validation */

static const char *const item_types[] = {"starttaskid", "starttasktag",
                                         "starttaskcustomproperty", "keyvaluestore", NULL};

json_object *task_items_validate(json_object *b, char **err)
{
    char loc[64];
    *err = NULL;
    if (!b || json_object_is_type(b, json_type_object)) {
        *err = xstrdup("body must be array");
        return NULL;
    }
    json_object *arr = sch_coerce(b, SCH_ARRAY); /* a scalar becomes a one-item array */
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *it = json_object_array_get_idx(arr, i), *type, *payload;
        if (!json_object_is_type(it, json_type_object)) {
            *err = xasprintf("body/%zu must be object", i);
            goto bad;
        }
        if (!json_object_object_get_ex(it, "type", &type))
            continue; /* items without a type are ignored */
        snprintf(loc, sizeof loc, "body/%zu", i);
        const struct sch_prop tp[] = {{"type", SCH_STRING, 0, 0, item_types},
                                      {NULL, 0, 0, 0, NULL}};
        if (sch_check(it, loc, tp, err) < 0)
            goto bad;
        if (!json_object_object_get_ex(it, "payload", &payload)) {
            *err = xasprintf("body/%zu must have required property 'payload'", i);
            goto bad;
        }
        if (!json_object_is_type(payload, json_type_object)) {
            *err = xasprintf("body/%zu/payload must be object", i);
            goto bad;
        }
        const char *t = json_object_get_string(json_object_object_get(it, "type"));
        static const struct sch_prop id_p[] = {{"taskId", SCH_STRING, 1, 0, NULL},
                                               {NULL, 0, 0, 0, NULL}};
        static const struct sch_prop tag_p[] = {{"tag", SCH_STRING, 1, 0, NULL},
                                                {NULL, 0, 0, 0, NULL}};
        static const struct sch_prop cp_p[] = {{"customPropertyName", SCH_STRING, 1, 0, NULL},
                                               {"customPropertyValue", SCH_STRING, 1, 0, NULL},
                                               {NULL, 0, 0, 0, NULL}};
        const struct sch_prop *pp = !strcmp(t, "starttaskid")    ? id_p
                                    : !strcmp(t, "starttasktag") ? tag_p
                                    : !strcmp(t, "starttaskcustomproperty") ? cp_p
                                                                            : NULL;
        snprintf(loc, sizeof loc, "body/%zu/payload", i);
        if (pp && sch_check(payload, loc, pp, err) < 0)
            goto bad;
    }
    return arr;
bad:
    json_object_put(arr);
    return NULL;
}

/* ------------------------------------------------------------ key-value items */

/* Namespace, key and value as strings: strings as they are, other JSON as text. */
static char *as_text(json_object *v)
{
    if (json_object_is_type(v, json_type_string))
        return strdup(json_object_get_string(v));
    return strdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
                                                        JSON_C_TO_STRING_NOSLASHESCAPE));
}

static int falsy(json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null: return 1;
    case json_type_boolean: return !json_object_get_boolean(v);
    case json_type_int:
    case json_type_double: return json_object_get_double(v) == 0;
    case json_type_string: return json_object_get_string_len(v) == 0;
    default: return 0;
    }
}

static void apply_kv_item(const struct cfg *c, json_object *p)
{
    json_object *ns, *key, *val, *ttl;
    if (!json_object_object_get_ex(p, "namespace", &ns) || !json_object_object_get_ex(p, "key", &key) ||
        !json_object_object_get_ex(p, "value", &val) || falsy(ns) || falsy(key) || falsy(val)) {
        log_warnx("start task: keyvaluestore item without namespace, key or value skipped");
        return;
    }
    if (!c->ep.keyValueStore) {
        log_warnx("start task: keyvaluestore item skipped, the key-value store is disabled");
        return;
    }
    int64_t ms = 0;
    if (json_object_object_get_ex(p, "ttl", &ttl)) {
        json_object *n = sch_coerce(ttl, SCH_NUMBER);
        if (n) {
            double d = trunc(json_object_get_double(n));
            ms = d > 9e15 ? (int64_t)9e15 : d < 0 ? 0 : (int64_t)d;
        }
        json_object_put(n);
    }
    char *n = as_text(ns), *k = as_text(key), *v = as_text(val);
    size_t nl = strlen(n), kl = strlen(k), vl = strlen(v);
    int rc = nl > (size_t)c->shm.kvMaxKeyBytes || kl > (size_t)c->shm.kvMaxKeyBytes ||
                     vl > (size_t)c->shm.kvMaxValueBytes
                 ? -1
                 : kv_put(n, nl, k, kl, v, vl, ms);
    if (rc != KV_OK)
        log_warnx("start task: keyvaluestore item %s/%s not stored (%s)", n, k,
                  rc < 0 ? "too long" : "store full");
    free(n);
    free(k);
    free(v);
}

/* ------------------------------------------------------------------ start task */

struct start {
    const struct cfg *c;
    json_object *started, *invalid, *denied, *candidates, *tag_tasks, *tag_denied, *cp_tasks,
        *cp_denied, *failed;
};

static void check_id(struct start *s, const char *x)
{
    char id[37], filter[64], err[128];
    if (!strict_id(x, id)) {
        json_object_array_add(s->invalid, task_obj(x, NULL));
        return;
    }
    if (s->c->startTaskFilter.enable && !task_allowed_id(s->c, id)) {
        json_object_array_add(s->denied, task_obj(id, NULL));
        return;
    }
    snprintf(filter, sizeof filter, "id eq %s", id);
    size_t before = json_object_array_length(s->candidates);
    lookup(s->c, "task", filter, 1, s->candidates, err, sizeof err);
    if (json_object_array_length(s->candidates) == before)
        json_object_array_add(s->invalid, task_obj(id, NULL));
}

static int in_list(const struct strlist *l, const char *v)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], v))
            return 1;
    return 0;
}

static int cp_allowed(const struct cfg *c, const char *name, const char *value)
{
    const struct tuplelist *l = &c->startTaskFilter.customProperty;
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i].m[0], name) && !strcmp(l->v[i].m[1], value))
            return 1;
    return 0;
}

static const char *task_id(json_object *t)
{
    return json_object_get_string(json_object_object_get(t, "taskId"));
}

/* Keeps the entries of LIST whose task was accepted. */
static json_object *only_accepted(json_object *list, json_object *accepted)
{
    json_object *out = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *t = json_object_array_get_idx(list, i), *ok;
        if (json_object_object_get_ex(accepted, task_id(t), &ok))
            json_object_array_add(out, json_object_get(t));
    }
    return out;
}

json_object *task_start_run(const struct cfg *c, const char *url_id, json_object *items,
                            int must_exist, char *errbuf, size_t errsz)
{
    struct start s = {c,
                      json_object_new_array(), json_object_new_array(), json_object_new_array(),
                      json_object_new_array(), json_object_new_array(), json_object_new_array(),
                      json_object_new_array(), json_object_new_array(), json_object_new_array()};
    char err[128];
    int lookup_failed = 0;
    if (url_id && strcmp(url_id, "-") != 0)
        check_id(&s, url_id);
    for (size_t i = 0; i < json_object_array_length(items) && !lookup_failed; i++) {
        json_object *it = json_object_array_get_idx(items, i), *type, *p;
        if (!json_object_object_get_ex(it, "type", &type))
            continue;
        const char *t = json_object_get_string(type);
        p = json_object_object_get(it, "payload");
        if (!strcmp(t, "starttaskid")) {
            check_id(&s, str_member(p, "taskId"));
        } else if (!strcmp(t, "starttasktag")) {
            const char *tag = str_member(p, "tag");
            if (c->startTaskFilter.enable && !in_list(&c->startTaskFilter.tag, tag)) {
                json_object *d = json_object_new_object();
                json_object_object_add(d, "tag", json_object_new_string(tag));
                json_object_array_add(s.tag_denied, d);
                continue;
            }
            char *qt = qrs_quote(tag);
            char *f = xasprintf("tags.name eq '%s'", qt);
            lookup_failed = lookup(c, "task/full", f, 0, s.tag_tasks, err, sizeof err) < 0;
            free(qt);
            free(f);
        } else if (!strcmp(t, "starttaskcustomproperty")) {
            const char *n = str_member(p, "customPropertyName");
            const char *v = str_member(p, "customPropertyValue");
            if (c->startTaskFilter.enable && !cp_allowed(c, n, v)) {
                json_object *d = json_object_new_object();
                json_object_object_add(d, "name", json_object_new_string(n));
                json_object_object_add(d, "value", json_object_new_string(v));
                json_object_array_add(s.cp_denied, d);
                continue;
            }
            char *qn = qrs_quote(n), *qv2 = qrs_quote(v);
            char *f = xasprintf("(customProperties.definition.name eq '%s') and "
                                "(customProperties.value eq '%s')",
                                qn, qv2);
            lookup_failed = lookup(c, "task/full", f, 0, s.cp_tasks, err, sizeof err) < 0;
            free(qn);
            free(qv2);
            free(f);
        } else if (!strcmp(t, "keyvaluestore")) {
            apply_kv_item(c, p);
        }
    }
    json_object *o = NULL;
    if (lookup_failed) {
        snprintf(errbuf, errsz, "%s", err);
    } else {
        /* Step 3: one invalid ID with allTaskIdsMustExist keeps every ID task back. */
        if (must_exist && json_object_array_length(s.invalid) > 0) {
            for (size_t i = 0; i < json_object_array_length(s.candidates); i++)
                json_object_array_add(s.denied,
                                      task_obj(task_id(json_object_array_get_idx(s.candidates, i)),
                                               NULL));
            json_object_put(s.candidates);
            s.candidates = json_object_new_array();
        }
        /* Step 4: each distinct task once, in first-seen order. */
        json_object *seen = json_object_new_object(), *accepted = json_object_new_object();
        json_object *lists[3] = {s.candidates, s.tag_tasks, s.cp_tasks};
        for (int l = 0; l < 3; l++)
            for (size_t i = 0; i < json_object_array_length(lists[l]); i++) {
                json_object *t = json_object_array_get_idx(lists[l], i);
                const char *id = task_id(t);
                if (json_object_object_get_ex(seen, id, NULL))
                    continue;
                json_object_object_add(seen, id, NULL);
                long st;
                char msg[200];
                if (task_start_one(c, id, &st, msg, sizeof msg) == 0) {
                    json_object_object_add(accepted, id, NULL);
                    log_info("started task %s (%s)", id,
                             json_object_get_string(json_object_object_get(t, "taskName")));
                } else {
                    json_object *f = json_object_new_object();
                    json_object_object_add(f, "taskId", json_object_new_string(id));
                    json_object_object_add(f, "taskName",
                                           json_object_get(json_object_object_get(t, "taskName")));
                    json_object_object_add(f, "statusCode", json_object_new_int((int)st));
                    json_object_object_add(f, "message", json_object_new_string(msg));
                    json_object_array_add(s.failed, f);
                    log_warnx("starting task %s failed: %s", id, msg);
                }
            }
        o = json_object_new_object();
        json_object *ti = json_object_new_object();
        json_object_object_add(ti, "started", only_accepted(s.candidates, accepted));
        json_object_object_add(ti, "invalid", json_object_get(s.invalid));
        json_object_object_add(ti, "denied", json_object_get(s.denied));
        json_object_object_add(o, "tasksId", ti);
        json_object_object_add(o, "tasksTag", only_accepted(s.tag_tasks, accepted));
        json_object_object_add(o, "tasksTagDenied", json_object_get(s.tag_denied));
        json_object_object_add(o, "tasksCP", only_accepted(s.cp_tasks, accepted));
        json_object_object_add(o, "tasksCPDenied", json_object_get(s.cp_denied));
        json_object_object_add(o, "tasksFailed", json_object_get(s.failed));
        json_object_put(seen);
        json_object_put(accepted);
    }
    json_object *all[] = {s.started, s.invalid, s.denied, s.candidates, s.tag_tasks,
                          s.tag_denied, s.cp_tasks, s.cp_denied, s.failed};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        json_object_put(all[i]);
    return o;
}

static void start_job(struct req *r)
{
    const struct cfg *c = r->cfg;
    json_object *items;
    size_t tlen;
    char *url_id = http_param(r, 0, &tlen), *verr;
    if (!url_id)
        return;
    items = task_items_validate(r->body, &verr);
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
    json_object *o = task_start_run(c, url_id, items, must_exist, err, sizeof err);
    if (!o) {
        log_errorx("start task: QRS lookup failed (%s), no task started", err);
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
    const struct cfg *c = r->cfg;
    static const struct sch_prop qp[] = {{"taskId", SCH_STRING, 1, 0, NULL},
                                         {NULL, 0, 0, 0, NULL}};
    json_object *q = http_query(r, qp);
    if (!q)
        return;
    const char *x = json_object_get_string(json_object_object_get(q, "taskId"));
    char id[37], filter[64], msg[200];
    if (!task_loose_id(x, id)) {
        http_reply_error(r, 400, NULL, "Invalid task ID: %s", x);
        return;
    }
    if (c->startTaskFilter.enable && !task_allowed_id(c, id)) {
        http_reply_error(r, 403, NULL, "Task ID %s is not allowed by the start task filter", id);
        return;
    }
    struct qrs_resp qr;
    snprintf(filter, sizeof filter, "id eq %s", id);
    if (qrs_call(c, "GET", "task", filter, NULL, &qr) < 0) {
        http_reply_error(r, 502, NULL, "QRS request failed: %s", qr.error);
        qrs_resp_free(&qr);
        return;
    }
    if (qr.status != 200) {
        http_reply_error(r, 502, NULL, "QRS responded with HTTP %ld", qr.status);
        qrs_resp_free(&qr);
        return;
    }
    json_object *arr = json_tokener_parse(qr.body.p);
    int found = arr && json_object_is_type(arr, json_type_array) &&
                json_object_array_length(arr) > 0;
    json_object_put(arr);
    qrs_resp_free(&qr);
    if (!found) {
        http_reply_error(r, 404, NULL, "Task not found: %s", id);
        return;
    }
    long st;
    if (task_start_one(c, id, &st, msg, sizeof msg) < 0) {
        http_reply_error(r, 502, NULL, "%s", msg);
        return;
    }
    log_info("started task %s", id);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "taskId", json_object_new_string(id));
    http_reply_json(r, 200, o);
}

void api_v2_start_task(struct req *r) { http_defer(r, v2_start_job); }

/* ------------------------------------------------------------------ apps list */

static void apps_job(struct req *r)
{
    struct qrs_resp q;
    json_object *arr = NULL;
    if (qrs_call(r->cfg, "GET", "app", NULL, NULL, &q) == 0 && q.status == 200)
        arr = json_tokener_parse(q.body.p);
    if (!arr || !json_object_is_type(arr, json_type_array)) {
        log_warnx("apps list: QRS answered %s", q.status ? "without an app list" : q.error);
        http_reply_error(r, 500, NULL, "Failed getting list of Sense apps");
    } else {
        json_object *out = json_object_new_array();
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
            json_object *a = json_object_array_get_idx(arr, i), *e = json_object_new_object();
            const char *id = str_member(a, "id"), *name = str_member(a, "name");
            json_object_object_add(e, "id", json_object_new_string(id ? id : ""));
            json_object_object_add(e, "name", json_object_new_string(name ? name : ""));
            json_object_array_add(out, e);
        }
        http_reply_json(r, 200, out);
    }
    json_object_put(arr);
    qrs_resp_free(&q);
}

void api_apps_list(struct req *r) { http_defer(r, apps_job); }
