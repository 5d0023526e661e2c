/* App dump (butlerd-api(7), app dump, /v2/senseAppDump) through the Qlik Engine: the app's
 * properties, script and lineage, then every object list, fetched DUMP_WINDOW items
 * at a time. The dump is written as JSON text while the answers come in, one object
 * at a time, so a large app costs about its reply size in memory rather than a whole
 * parsed tree. Knows nothing about HTTP: the caller gets the text through a callback. */
#include "appdump.h"
#include "cfg.h"
#include "engine.h"
#include "log.h"
#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* Items whose objects are fetched at once. A bookmark has two calls in flight, and
 * the DestroySessionObject of earlier lists may still be unanswered: keep room. */
#define DUMP_WINDOW 32
_Static_assert(2 * DUMP_WINDOW + 16 <= ENGINE_MAX_INFLIGHT, "dump window too large");

static json_object *member(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) ? v : NULL;
}

static json_object *qid_params(const char *key, const char *id)
{
    json_object *p = json_object_new_object();
    json_object_object_add(p, key, json_object_new_string(id));
    return p;
}

enum list_kind { K_TREE, K_PROPS, K_BOOKMARK, K_VARIABLE, K_MEDIA, K_FIELDS, K_CONNECTIONS };

struct list_def {
    const char *member;  /* of the dump, in the documented order */
    enum list_kind kind;
    const char *def;     /* the properties (qProp) of CreateSessionObject */
    const char *list;    /* the qLayout member holding qItems */
    const char *getter;  /* opens one item by qId */
};

#define OBJ_LIST(id, type)                                                                   \
    "{\"qInfo\":{\"qId\":\"butlerd-" id "\",\"qType\":\"" id "List\"},"                    \
    "\"qAppObjectListDef\":{\"qType\":\"" type "\",\"qData\":{\"id\":\"/qInfo/qId\"}}}"

static const struct list_def lists[] = {
    {"sheets", K_TREE, OBJ_LIST("Sheet", "sheet"), "qAppObjectList", "GetObject"},
    {"stories", K_TREE, OBJ_LIST("Story", "story"), "qAppObjectList", "GetObject"},
    {"masterobjects", K_TREE, OBJ_LIST("MasterObject", "masterobject"), "qAppObjectList",
     "GetObject"},
    {"appprops", K_TREE, OBJ_LIST("AppProps", "appprops"), "qAppObjectList", "GetObject"},
    {"dimensions", K_PROPS,
     "{\"qInfo\":{\"qId\":\"butlerd-DimensionList\",\"qType\":\"DimensionList\"},"
     "\"qDimensionListDef\":{\"qType\":\"dimension\",\"qData\":{\"title\":\"/title\","
     "\"tags\":\"/tags\"}}}",
     "qDimensionList", "GetDimension"},
    {"measures", K_PROPS,
     "{\"qInfo\":{\"qId\":\"butlerd-MeasureList\",\"qType\":\"MeasureList\"},"
     "\"qMeasureListDef\":{\"qType\":\"measure\",\"qData\":{\"title\":\"/title\","
     "\"tags\":\"/tags\"}}}",
     "qMeasureList", "GetMeasure"},
    {"bookmarks", K_BOOKMARK,
     "{\"qInfo\":{\"qId\":\"butlerd-BookmarkList\",\"qType\":\"BookmarkList\"},"
     "\"qBookmarkListDef\":{\"qType\":\"bookmark\",\"qData\":{\"title\":\"/qMetaDef/title\"}}}",
     "qBookmarkList", "GetBookmark"},
    {"embeddedmedia", K_MEDIA,
     "{\"qInfo\":{\"qId\":\"butlerd-MediaList\",\"qType\":\"MediaList\"},\"qMediaListDef\":{}}",
     "qMediaList", NULL},
    {"snapshots", K_PROPS,
     "{\"qInfo\":{\"qId\":\"butlerd-SnapshotList\",\"qType\":\"SnapshotList\"},"
     "\"qBookmarkListDef\":{\"qType\":\"snapshot\",\"qData\":{\"title\":\"/qMetaDef/title\"}}}",
     "qBookmarkList", "GetBookmark"},
    {"fields", K_FIELDS,
     "{\"qInfo\":{\"qId\":\"butlerd-FieldList\",\"qType\":\"FieldList\"},\"qFieldListDef\":"
     "{\"qShowSystem\":true,\"qShowHidden\":true,\"qShowSrcTables\":true,"
     "\"qShowSemantic\":true}}",
     "qFieldList", NULL},
    {"dataconnections", K_CONNECTIONS, NULL, NULL, NULL},
    {"variables", K_VARIABLE,
     "{\"qInfo\":{\"qId\":\"butlerd-VariableList\",\"qType\":\"VariableList\"},"
     "\"qVariableListDef\":{\"qType\":\"variable\",\"qShowReserved\":true,"
     "\"qShowConfig\":true,\"qData\":{\"tags\":\"/tags\"}}}",
     "qVariableList", "GetVariableById"},
};

struct dump {
    const struct cfg *c;
    struct engine *e;
    int doc;
    struct buf out;
    struct engine_err err;
    char tag[17]; /* random, appended to every list object's qId */
};

/* The qId of list L in this dump ("butlerd-Sheet-<tag>", "butlerd-DimensionList-<tag>",
 * ...). The engine shares one session among all connections of the same user to the
 * same app (several butlerd workers or instances dumping one app at once), so a fixed
 * qId could be created twice, or destroyed by another dump while this one reads it. */
static void list_qid(const struct dump *d, const struct list_def *L, char *out, size_t n)
{
    const char *b = strstr(L->def, "butlerd-");
    snprintf(out, n, "%.*s-%s", (int)strcspn(b, "\""), b, d->tag);
}

static void put_raw(struct dump *d, const char *s) { buf_append(&d->out, s, strlen(s)); }

static void put_json(struct dump *d, json_object *o)
{
    size_t n;
    const char *s = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    buf_append(&d->out, s, n);
}

static void put_key(struct dump *d, const char *key)
{
    put_raw(d, d->out.len > 1 ? ",\"" : "\"");
    put_raw(d, key);
    put_raw(d, "\":");
}

static json_object *call(struct dump *d, int handle, const char *method, json_object *params)
{
    return engine_call(d->e, handle, method, params, d->c->engineTimeoutMs, &d->err);
}

static json_object *wait_id(struct dump *d, int id)
{
    return id < 0 ? NULL : engine_wait(d->e, id, d->c->engineTimeoutMs, &d->err);
}

/* The items of a session list object: CreateSessionObject, GetLayout, and the
 * object destroyed again without waiting. Returns the layout (items inside) or NULL. */
static json_object *list_layout(struct dump *d, const struct list_def *L, json_object **items)
{
    char qid[64];
    json_object *def = json_tokener_parse(L->def);
    list_qid(d, L, qid, sizeof qid);
    json_object_object_add(member(def, "qInfo"), "qId", json_object_new_string(qid));
    /* Params by name: the properties are the value of qProp, not the params object. */
    json_object *p = json_object_new_object();
    json_object_object_add(p, "qProp", def);
    json_object *res = call(d, d->doc, "CreateSessionObject", p);
    int h = engine_handle_of(res);
    json_object_put(res);
    if (h < 0) {
        if (res)
            snprintf(d->err.msg, sizeof d->err.msg, "CreateSessionObject for %s gave no handle",
                     L->member);
        return NULL;
    }
    json_object *lay = call(d, h, "GetLayout", NULL);
    if (!lay)
        return NULL;
    json_object *in = member(member(member(lay, "qLayout"), L->list), "qItems");
    *items = in && json_object_is_type(in, json_type_array) ? in : NULL;
    return lay;
}

static void destroy_list(struct dump *d, const struct list_def *L)
{
    char id[64];
    list_qid(d, L, id, sizeof id);
    engine_post(d->e, d->doc, "DestroySessionObject", qid_params("qId", id), &d->err);
}

static const char *const var_flags[] = {"qIsScriptCreated", "qIsReserved", "qIsConfig"};

/* What dump_items needs of a list item, so the list's layout can be freed before
 * the objects are fetched: its qId and, for variables, which flags are true. */
struct item_ref {
    char *qid; /* NULL: the item has none */
    unsigned flags;
};

static struct item_ref *item_refs(json_object *items, size_t *n)
{
    *n = items ? json_object_array_length(items) : 0;
    struct item_ref *refs = xcalloc(*n ? *n : 1, sizeof *refs);
    for (size_t i = 0; i < *n; i++) {
        json_object *it = json_object_array_get_idx(items, i);
        json_object *v = member(member(it, "qInfo"), "qId");
        if (v && json_object_is_type(v, json_type_string))
            refs[i].qid = xstrdup(json_object_get_string(v));
        for (int f = 0; f < 3; f++)
            if ((v = member(it, var_flags[f])) != NULL && json_object_get_boolean(v))
                refs[i].flags |= 1u << f;
    }
    return refs;
}

static void item_refs_free(struct item_ref *refs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(refs[i].qid);
    free(refs);
}

/* Adds the list item's qIsScriptCreated, qIsReserved and qIsConfig when true. */
static void variable_flags(json_object *props, unsigned flags)
{
    for (int f = 0; f < 3; f++)
        if (flags & (1u << f))
            json_object_object_add(props, var_flags[f], json_object_new_boolean(1));
}

/* The layout's qBookmark goes to properties.qData.qBookMark (as Butler does). */
static void bookmark_data(json_object *props, json_object *layout)
{
    json_object *bm = member(member(layout, "qLayout"), "qBookmark");
    if (!bm || !json_object_is_type(props, json_type_object))
        return;
    json_object *qd = member(props, "qData");
    if (!qd || !json_object_is_type(qd, json_type_object)) {
        qd = json_object_new_object();
        json_object_object_add(props, "qData", qd);
    }
    json_object_object_add(qd, "qBookMark", json_object_get(bm));
}

/* Fetches every item of ITEMS (getter, then GetFullPropertyTree or GetProperties, and
 * GetLayout for bookmarks), DUMP_WINDOW items in flight at a time, and writes them in
 * list order. */
static int dump_items(struct dump *d, const struct list_def *L, const struct item_ref *items,
                      size_t n)
{
    const char *prop = L->kind == K_TREE ? "GetFullPropertyTree" : "GetProperties";
    const char *key = L->kind == K_TREE ? "qPropEntry" : "qProp";
    int first = 1, rc = 0;
    put_raw(d, "[");
    for (size_t base = 0; base < n && rc == 0; base += DUMP_WINDOW) {
        size_t cnt = n - base < DUMP_WINDOW ? n - base : DUMP_WINDOW;
        int gid[DUMP_WINDOW], pid[DUMP_WINDOW], lid[DUMP_WINDOW];
        for (size_t i = 0; i < cnt; i++) {
            const char *q = items[base + i].qid;
            gid[i] = pid[i] = lid[i] = -1;
            if (!q) {
                log_warnx("app dump: a %s item without qInfo.qId skipped", L->member);
                continue;
            }
            if ((gid[i] = engine_send(d->e, d->doc, L->getter, qid_params("qId", q), &d->err)) < 0)
                return -1;
        }
        for (size_t i = 0; i < cnt; i++) {
            if (gid[i] < 0)
                continue;
            json_object *res = wait_id(d, gid[i]);
            int h = engine_handle_of(res);
            json_object_put(res);
            if (!res)
                return -1;
            if (h < 0) {
                log_warnx("app dump: %s %s could not be opened, skipped", L->member,
                          items[base + i].qid);
                continue;
            }
            if ((pid[i] = engine_send(d->e, h, prop, NULL, &d->err)) < 0)
                return -1;
            if (L->kind == K_BOOKMARK && (lid[i] = engine_send(d->e, h, "GetLayout", NULL,
                                                               &d->err)) < 0)
                return -1;
        }
        for (size_t i = 0; i < cnt && rc == 0; i++) {
            if (pid[i] < 0)
                continue;
            json_object *res = wait_id(d, pid[i]), *lay = NULL;
            if (res && L->kind == K_BOOKMARK && !(lay = wait_id(d, lid[i])))
                rc = -1;
            json_object *p = member(res, key);
            if (!res) {
                rc = -1;
            } else if (rc == 0) {
                if (L->kind == K_BOOKMARK)
                    bookmark_data(p, lay);
                else if (L->kind == K_VARIABLE && json_object_is_type(p, json_type_object))
                    variable_flags(p, items[base + i].flags);
                if (!first)
                    put_raw(d, ",");
                first = 0;
                put_json(d, p);
            }
            json_object_put(res);
            json_object_put(lay);
        }
    }
    put_raw(d, "]");
    return rc;
}

static int dump_media(struct dump *d, json_object *items)
{
    int first = 1;
    put_raw(d, "[");
    for (size_t i = 0; items && i < json_object_array_length(items); i++) {
        json_object *it = json_object_array_get_idx(items, i);
        json_object *u = member(it, "qUrlDef");
        if (!u || !json_object_is_type(u, json_type_string) ||
            strncmp(json_object_get_string(u), "/media/", 7) != 0)
            continue;
        if (!first)
            put_raw(d, ",");
        first = 0;
        put_json(d, it);
    }
    put_raw(d, "]");
    return 0;
}

static int dump_connections(struct dump *d)
{
    json_object *res = call(d, d->doc, "GetConnections", NULL);
    if (!res)
        return -1;
    json_object *list = member(res, "qConnections");
    size_t n = list && json_object_is_type(list, json_type_array)
                   ? json_object_array_length(list)
                   : 0;
    int first = 1, rc = 0;
    put_raw(d, "[");
    for (size_t base = 0; base < n && rc == 0; base += DUMP_WINDOW) {
        size_t cnt = n - base < DUMP_WINDOW ? n - base : DUMP_WINDOW;
        int id[DUMP_WINDOW];
        for (size_t i = 0; i < cnt && rc == 0; i++) {
            const char *q = NULL;
            json_object *v = member(json_object_array_get_idx(list, base + i), "qId");
            if (v && json_object_is_type(v, json_type_string))
                q = json_object_get_string(v);
            id[i] = q ? engine_send(d->e, d->doc, "GetConnection",
                                    qid_params("qConnectionId", q), &d->err)
                      : -1;
            if (q && id[i] < 0)
                rc = -1;
        }
        for (size_t i = 0; i < cnt && rc == 0; i++) {
            if (id[i] < 0)
                continue;
            json_object *c = wait_id(d, id[i]);
            if (!c) {
                rc = -1;
                break;
            }
            if (!first)
                put_raw(d, ",");
            first = 0;
            put_json(d, member(c, "qConnection"));
            json_object_put(c);
        }
    }
    put_raw(d, "]");
    json_object_put(res);
    return rc;
}

static int dump_list(struct dump *d, const struct list_def *L)
{
    put_key(d, L->member);
    if (L->kind == K_CONNECTIONS)
        return dump_connections(d);
    json_object *items = NULL;
    json_object *lay = list_layout(d, L, &items);
    if (!lay)
        return -1;
    int rc = 0;
    if (L->kind == K_MEDIA) {
        rc = dump_media(d, items);
    } else if (L->kind == K_FIELDS) {
        if (items)
            put_json(d, items);
        else
            put_raw(d, "[]"); /* a list without qItems is empty */
    } else {
        size_t n;
        struct item_ref *refs = item_refs(items, &n);
        json_object_put(lay); /* a long list's layout is not kept while its objects come */
        lay = NULL;
        rc = dump_items(d, L, refs, n);
        item_refs_free(refs, n);
    }
    json_object_put(lay);
    if (rc == 0)
        destroy_list(d, L);
    return rc;
}

/* The dump of butlerd-api(7), app dump into D->out. Returns 0, or -1 with D->err set. */
static int dump_app(struct dump *d, const char *app)
{
    const struct cfg *c = d->c;
    int ids[3] = {-1, -1, -1};
    static const char *const first[] = {"GetAppProperties", "GetScript", "GetLineage"};
    for (int i = 0; i < 3; i++)
        if ((ids[i] = engine_send(d->e, d->doc, first[i], NULL, &d->err)) < 0)
            return -1;
    json_object *props = wait_id(d, ids[0]);
    json_object *script = props ? wait_id(d, ids[1]) : NULL;
    struct engine_err lerr = {0};
    json_object *lineage = script ? engine_wait(d->e, ids[2], c->engineTimeoutMs, &lerr) : NULL;
    int rc = -1;
    if (!script)
        goto out;
    if (!lineage && lerr.kind != ENGINE_ERPC) {
        d->err = lerr; /* an error answer just leaves lineage out; a lost session does not */
        goto out;
    }
    put_raw(d, "{");
    put_key(d, "properties");
    put_json(d, member(props, "qProp"));
    put_key(d, "loadScript");
    put_json(d, member(script, "qScript"));
    if (lineage && member(lineage, "qLineage")) {
        put_key(d, "lineage");
        put_json(d, member(lineage, "qLineage"));
    }
    json_object_put(props);
    json_object_put(script);
    json_object_put(lineage);
    props = script = lineage = NULL;
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
        if (dump_list(d, &lists[i]) < 0)
            goto out;
    put_key(d, "appId");
    json_object *a = json_object_new_string(app);
    put_json(d, a);
    json_object_put(a);
    put_raw(d, "}");
    rc = 0;
out:
    json_object_put(props);
    json_object_put(script);
    json_object_put(lineage);
    return rc;
}

void appdump_run(const struct cfg *c, const char *app, appdump_done_fn done, void *arg)
{
    struct dump d = {c, NULL, -1, {0}, {0}, ""};
    int64_t t0 = now_ms();
    unsigned char rnd[8];
    if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd) {
        uint64_t x = (uint64_t)t0 * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid() << 32 ^
                     (uint64_t)(uintptr_t)&d;
        memcpy(rnd, &x, sizeof rnd);
    }
    for (int i = 0; i < 8; i++)
        snprintf(d.tag + 2 * i, 3, "%02x", rnd[i]);
    d.e = engine_open(c, app, &d.err);
    if (d.e)
        d.doc = engine_open_doc(d.e, c, app, 1, &d.err);
    if (d.doc < 0) {
        engine_close(d.e);
        done(arg, engine_app_missing(&d.err) ? APPDUMP_NOT_FOUND : APPDUMP_FAILED, NULL);
        return;
    }
    if (dump_app(&d, app) < 0) {
        log_warnx("app dump of %s failed: %s", app, d.err.msg);
        buf_free(&d.out);
        done(arg, APPDUMP_FAILED, NULL);
    } else {
        log_info("app %s dumped: %zu bytes in %lld ms", app, d.out.len,
                 (long long)(now_ms() - t0));
        done(arg, APPDUMP_OK, &d.out);
    }
    engine_close(d.e);
}
