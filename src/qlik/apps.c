/* The list of apps (butlerd-api(7), apps list): the id and name of every app QRS knows. Knows
 * nothing about HTTP. */
#include "apps.h"
#include "log.h"
#include "qrs.h"
#include "util.h"

#include <json-c/json.h>
#include <stdio.h>

static const char *str_member(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

/* Each app is rendered as it is read, so a list of many apps costs about its text,
 * not a parse tree per app. */
static void app_entry(json_object *a, void *arg)
{
    struct buf *out = arg;
    json_object *e = json_object_new_object();
    const char *id = str_member(a, "id"), *name = str_member(a, "name");
    json_object_object_add(e, "id", json_object_new_string(id ? id : ""));
    json_object_object_add(e, "name", json_object_new_string(name ? name : ""));
    size_t len;
    const char *js = json_object_to_json_string_length(
        e, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    buf_append(out, out->len > 1 ? "," : "", out->len > 1);
    buf_append(out, js, len);
    json_object_put(e);
}

enum apps_rc apps_list(const struct cfg *c, struct buf *out, char *err, size_t errsz)
{
    struct qrs_resp q;
    long n = -1;
    enum apps_rc rc;
    buf_append(out, "[", 1);
    if (qrs_call(c, "GET", "app", NULL, NULL, &q) == 0 && q.status == 200)
        n = jsonarr_each(q.body.p, q.body.len, app_entry, out);
    if (q.too_large) {
        log_errorx("apps list: QRS %s", q.error);
        snprintf(err, errsz, "%s", q.error);
        rc = APPS_TOO_LARGE;
    } else if (n < 0) {
        log_warnx("apps list: QRS answered %s", q.status ? "without an app list" : q.error);
        rc = APPS_FAILED;
    } else {
        qrs_resp_free(&q);
        buf_append(out, "]", 1);
        return APPS_OK;
    }
    qrs_resp_free(&q);
    return rc;
}
