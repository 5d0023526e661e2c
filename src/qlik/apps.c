/* The list of apps (butlerd-api(7), apps list): the id and name of every app QRS knows. Knows
 * nothing about HTTP. */
#include "apps.h"
#include "jsonarr.h"
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

/* QRS's reply is read as it arrives: each app is rendered once complete and its
 * bytes dropped, so a worker holds one app object and the answer (about 80 bytes an
 * app), not the reply of a few KB an app (butlerd(8), PERFORMANCE). The answer is
 * still built whole before it is sent, so a reply that fails half way gives the same
 * error as one that fails at once. A reply that is not an array is read to its end
 * without parsing, as before, so QRS's connection stays usable. */
static int on_chunk(void *arg, const char *p, size_t len)
{
    jsonarr_feed(arg, p, len);
    return 0;
}

enum apps_rc apps_list(const struct cfg *c, struct buf *out, char *err, size_t errsz)
{
    struct qrs_resp q;
    struct jsonarr arr;
    long n;
    enum apps_rc rc;
    buf_append(out, "[", 1);
    jsonarr_init(&arr, app_entry, out);
    int called = qrs_get_list(c, "app", NULL, on_chunk, &arr, &q);
    n = jsonarr_end(&arr);
    if (called != 0 || q.status != 200)
        n = -1;
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
