/* Starting Qlik Sense tasks (butlerd-api(7), start task, /v2/senseStartTask): the start-task
 * body check,
 * the batched QRS lookups of task IDs, tags and custom properties, the start-task
 * filter, the starts and the result object. Called by the REST handlers
 * (api_task.c), the MQTT start topic (events.c) and the follow-up tasks of an app
 * reload (appreload.c). Knows nothing about HTTP; everything here blocks on QRS. */
#include "task.h"
#include "cfg.h"
#include "guid.h"
#include "kvstore.h"
#include "log.h"
#include "qrs.h"
#include "schema.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int task_loose_id(const char *s, char out[37]) { return guid_loose(s, out); }

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

#define BAD_ID_MSG "QRS returned a task ID that is not a GUID; not started"

static const char *str_member(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

/* Starts one task: 0 accepted, else fills status (0 = no answer) and message. ID goes
 * into the URL, so anything but a GUID is refused here, whoever passes it. */
int task_start_one(const struct cfg *c, const char *id, long *status, char *msg, size_t msz)
{
    char low[37], path[96];
    struct qrs_resp q;
    if (!guid_loose(id, low)) {
        *status = 0;
        snprintf(msg, msz, "%s", BAD_ID_MSG);
        log_warnx("task ID \"%.100s\" is not a GUID, not started", id);
        return -1;
    }
    snprintf(path, sizeof path, "task/%s/start", low);
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

json_object *task_items_validate(json_object *b, int max_items, char **err)
{
    char loc[64];
    *err = NULL;
    if (!b || json_object_is_type(b, json_type_object)) {
        *err = xstrdup("body must be array");
        return NULL;
    }
    json_object *arr = sch_coerce(b, SCH_ARRAY); /* a scalar becomes a one-item array */
    if (json_object_array_length(arr) > (size_t)max_items) {
        /* Each item can cost QRS calls and task starts (doc/butlerd.8, Start task). */
        *err = xasprintf("body must NOT have more than %d items", max_items);
        goto bad;
    }
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
        double d = n ? trunc(json_object_get_double(n)) : 0;
        json_object_put(n);
        if (!isfinite(d)) { /* NaN or Infinity: the MQTT start topic's parser takes them */
            log_warnx("start task: keyvaluestore item with a ttl that is not a number skipped");
            return;
        }
        ms = d > 9e15 ? (int64_t)9e15 : d < 0 ? 0 : (int64_t)d;
    }
    char *n = as_text(ns), *k = as_text(key), *v = as_text(val);
    size_t nl = strlen(n), kl = strlen(k), vl = strlen(v);
    int rc = nl > (size_t)c->shm.kvMaxKeyBytes || kl > (size_t)c->shm.kvMaxKeyBytes ||
                     vl > (size_t)c->shm.kvMaxValueBytes
                 ? -1
                 : kvstore->put(n, nl, k, kl, v, vl, ms);
    if (rc != KV_OK)
        log_warnx("start task: keyvaluestore item %s/%s not stored (%s)", n, k,
                  rc < 0 ? "too long" : rc == KV_UNAVAIL ? "store unavailable" : "store full");
    free(n);
    free(k);
    free(v);
}

/* ------------------------------------------------------------------ start task */

/* A request may name thousands of task IDs, tags and custom properties. Each kind
 * is looked up with one filter for many values ("tags.name eq 'a' or tags.name eq
 * 'b'"), in chunks that keep the URL short, and the answer is split back per value
 * by making the filter's comparison here: strings compare case-insensitively and a
 * comparison on tags or customProperties holds when any element matches. If QRS
 * returns a task that matches none of the chunk's values here (say a non-ASCII
 * tag that QRS folds and we do not), the chunk is asked again one value at a
 * time. The lists come out as if each value had been looked up alone
 * (doc/butlerd.8, Start task). */
#define CHUNK_TERMS 100
#define CHUNK_BYTES 4096 /* the percent-encoded filter */

enum kind { K_ID, K_TAG, K_CP, K_KV };

struct key { /* one distinct value to look up */
    enum kind kind;
    const char *a, *b; /* lower-case task ID | tag | name and value */
    char *term;        /* its filter */
    size_t enc_len;    /* the length of TERM percent-encoded */
    json_object *tasks; /* [{taskId, taskName}] in QRS order */
    int done;           /* looked up (an error status counts) */
};

struct sel { /* one selector or KV item, in request order */
    enum kind kind;
    enum { SEL_INVALID, SEL_DENIED, SEL_LOOKUP } st;
    const char *raw; /* task ID as received; the tag; the KV payload (as text) */
    const char *b;   /* custom property value */
    json_object *kv; /* KV payload */
    char id[37];
    size_t key;
};

struct start {
    const struct cfg *c;
    struct sel *sel;
    size_t nsel;
    struct key *keys;
    size_t nkeys;
    json_object *key_index; /* "<kind><len>:<a><b>" -> key number */
    json_object *bad, *bad_seen; /* tasksFailed entries for task IDs from QRS that are no GUID */
    int too_large;               /* a QRS reply passed butlerd.qrs.maxReplyBytes */
    char err[128];               /* why a lookup got no answer */
};

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

/* The length of S percent-encoded as qrs_call() does (RFC 3986 unreserved stay). */
static size_t enc_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        n += (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '.' || c == '_' || c == '~'
                 ? 1
                 : 3;
    }
    return n;
}

static size_t add_key(struct start *s, enum kind kind, const char *a, const char *b)
{
    char *ik = xasprintf("%d%zu:%s%s", (int)kind, strlen(a), a, b ? b : "");
    json_object *v;
    size_t k;
    if (json_object_object_get_ex(s->key_index, ik, &v)) {
        k = (size_t)json_object_get_int64(v);
        free(ik);
        return k;
    }
    k = s->nkeys++;
    s->keys = xrealloc(s->keys, s->nkeys * sizeof *s->keys);
    struct key *key = &s->keys[k];
    memset(key, 0, sizeof *key);
    key->kind = kind;
    key->a = a;
    key->b = b;
    if (kind == K_ID) {
        key->term = xasprintf("id eq %s", a);
    } else {
        char *qa = qrs_quote(a), *qb = b ? qrs_quote(b) : NULL;
        key->term = kind == K_TAG ? xasprintf("tags.name eq '%s'", qa)
                                  : xasprintf("(customProperties.definition.name eq '%s') and "
                                              "(customProperties.value eq '%s')",
                                              qa, qb);
        free(qa);
        free(qb);
    }
    key->enc_len = enc_len(key->term);
    key->tasks = json_object_new_array();
    json_object_object_add(s->key_index, ik, json_object_new_int64((int64_t)k));
    free(ik);
    return k;
}

static struct sel *add_sel(struct start *s, enum kind kind)
{
    s->sel = xrealloc(s->sel, (s->nsel + 1) * sizeof *s->sel);
    struct sel *x = &s->sel[s->nsel++];
    memset(x, 0, sizeof *x);
    x->kind = kind;
    return x;
}

/* checkId of butlerd-api(7), start task up to the existence check, which is batched. */
static void select_id(struct start *s, const char *x)
{
    struct sel *e = add_sel(s, K_ID);
    e->raw = x;
    if (!guid_task_id(x, e->id))
        e->st = SEL_INVALID;
    else if (s->c->startTaskFilter.enable && !task_allowed_id(s->c, e->id))
        e->st = SEL_DENIED;
    else
        e->st = SEL_LOOKUP;
}

static int ascii_casecmp(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        int x = (unsigned char)*a, y = (unsigned char)*b;
        x = x >= 'A' && x <= 'Z' ? x + 32 : x;
        y = y >= 'A' && y <= 'Z' ? y + 32 : y;
        if (x != y)
            return 1;
    }
    return *a != *b;
}

/* Any element of ARRAY whose string at PATH (one or two member names) equals V. */
static int any_equal(json_object *arr, const char *m1, const char *m2, const char *v)
{
    if (!json_object_is_type(arr, json_type_array))
        return 0;
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *o = json_object_array_get_idx(arr, i);
        if (m2 && !json_object_object_get_ex(o, m2, &o))
            continue;
        const char *x = str_member(o, m1);
        if (x && !ascii_casecmp(x, v))
            return 1;
    }
    return 0;
}

static int matches(const struct key *k, json_object *t, const char *low_id)
{
    json_object *l = NULL;
    switch (k->kind) {
    case K_ID:
        return !strcmp(low_id, k->a);
    case K_TAG:
        json_object_object_get_ex(t, "tags", &l);
        return any_equal(l, "name", NULL, k->a);
    case K_CP:
        json_object_object_get_ex(t, "customProperties", &l);
        return any_equal(l, "name", "definition", k->a) && any_equal(l, "value", NULL, k->b);
    default:
        return 0;
    }
}

/* A task ID from QRS goes into a URL later: one that is no GUID is left out, logged
 * and reported once under tasksFailed. */
static void bad_id(struct start *s, const char *id, const char *name)
{
    log_warnx("start task: QRS returned the task ID \"%.100s\", which is not a GUID; "
              "task not started", id);
    if (json_object_object_get_ex(s->bad_seen, id, NULL))
        return;
    json_object_object_add(s->bad_seen, id, NULL);
    json_object *f = json_object_new_object();
    json_object_object_add(f, "taskId", json_object_new_string(id));
    json_object_object_add(f, "taskName", json_object_new_string(name ? name : ""));
    json_object_object_add(f, "statusCode", json_object_new_int(0));
    json_object_object_add(f, "message", json_object_new_string(BAD_ID_MSG));
    json_object_array_add(s->bad, f);
}

struct chunk { /* one lookup's answer being read */
    struct start *s;
    const size_t *ks;
    size_t n;
    enum kind kind;
    size_t seen;   /* elements so far */
    int unmatched; /* a task matched none of the keys */
};

static void chunk_task(json_object *t, void *arg)
{
    struct chunk *c = arg;
    /* Looked up alone, an ID takes element 0 of the answer (butlerd(8), Starting tasks). */
    if (c->n == 1 && c->kind == K_ID && c->seen++ > 0)
        return;
    const char *id = str_member(t, "id"), *name = str_member(t, "name");
    char low[37];
    if (!id)
        return;
    if (!guid_loose(id, low)) {
        bad_id(c->s, id, name);
        return;
    }
    int hit = 0;
    for (size_t j = 0; j < c->n; j++) {
        struct key *k = &c->s->keys[c->ks[j]];
        if (c->n > 1 && !matches(k, t, low))
            continue;
        hit = 1;
        if (c->kind != K_ID || json_object_array_length(k->tasks) == 0)
            json_object_array_add(k->tasks, task_obj(low, name ? name : ""));
    }
    c->unmatched |= !hit;
}

static void clear_tasks(struct start *s, const size_t *ks, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        json_object_put(s->keys[ks[j]].tasks);
        s->keys[ks[j]].tasks = json_object_new_array();
    }
}

/* Takes back the not-a-GUID reports (bad_id) made since S->bad had N0 entries. */
static void drop_bad_since(struct start *s, size_t n0)
{
    size_t n = json_object_array_length(s->bad);
    for (size_t i = n0; i < n; i++) {
        json_object *f = json_object_array_get_idx(s->bad, i);
        json_object_object_del(s->bad_seen,
                               json_object_get_string(json_object_object_get(f, "taskId")));
    }
    if (n > n0)
        json_object_array_del_idx(s->bad, n0, n - n0);
}

static int feed_tasks(void *arg, const char *p, size_t len)
{
    jsonarr_feed(arg, p, len);
    return 0;
}

/* Looks up keys KS[0..N) with one filter. Returns 0 if QRS answered (an error
 * status or a body that is no array means: nothing found), -1 if not. QRS's list
 * is read as it arrives, one task at a time (butlerd(8), PERFORMANCE): a tag on
 * thousands of tasks costs their IDs and names, not the whole task/full reply.
 * What was read of a list whose call then fails is dropped (found tasks and
 * not-a-GUID reports), so a partial list starts nothing and an ID it named stays
 * unchecked. */
static int lookup_chunk(struct start *s, const size_t *ks, size_t n)
{
    enum kind kind = s->keys[ks[0]].kind;
    struct buf f = {0};
    for (size_t i = 0; i < n; i++) {
        const char *t = s->keys[ks[i]].term;
        if (i)
            buf_append(&f, " or ", 4);
        if (n > 1 && kind == K_CP)
            buf_append(&f, "(", 1);
        buf_append(&f, t, strlen(t));
        if (n > 1 && kind == K_CP)
            buf_append(&f, ")", 1);
    }
    struct qrs_resp q;
    const char *path = kind == K_ID ? "task" : "task/full";
    struct chunk ch = {s, ks, n, kind, 0, 0};
    struct jsonarr arr;
    size_t bad0 = json_object_array_length(s->bad);
    jsonarr_init(&arr, chunk_task, &ch);
    int called = qrs_get_list(s->c, path, f.p, feed_tasks, &arr, &q);
    long got = jsonarr_end(&arr);
    if (called < 0) {
        clear_tasks(s, ks, n);
        drop_bad_since(s, bad0);
        snprintf(s->err, sizeof s->err, "%s", q.error);
        s->too_large |= q.too_large;
        qrs_resp_free(&q);
        buf_free(&f);
        return -1;
    }
    if (q.status != 200 || got < 0) {
        log_warnx("QRS lookup %s for \"%.200s\" answered HTTP %ld without a task list", path,
                  f.p, q.status);
        /* as before this change: a list that is not an array counts as empty */
        clear_tasks(s, ks, n);
        ch.unmatched = 0;
    }
    int unmatched = ch.unmatched;
    qrs_resp_free(&q);
    if (unmatched) {
        log_info("QRS lookup %s for %zu values returned a task that matches none of them "
                 "here; asking for each value alone", path, n);
        clear_tasks(s, ks, n);
        for (size_t j = 0; j < n; j++)
            if (lookup_chunk(s, &ks[j], 1) < 0) {
                buf_free(&f);
                return -1;
            }
    }
    buf_free(&f);
    for (size_t j = 0; j < n; j++)
        s->keys[ks[j]].done = 1;
    return 0;
}

/* Looks up every key, kind by kind, in chunks. Returns 0, or -1 when a tag or
 * custom-property lookup (or any reply too large) got no answer. */
static int lookup_all(struct start *s)
{
    size_t *ks = xmalloc((s->nkeys + 1) * sizeof *ks);
    int rc = 0;
    for (int kind = K_ID; kind <= K_CP && rc == 0; kind++) {
        size_t n = 0, bytes = 0;
        for (size_t k = 0; k <= s->nkeys && rc == 0; k++) {
            struct key *key = k < s->nkeys ? &s->keys[k] : NULL;
            if (key && (int)key->kind != kind)
                continue;
            size_t add = key ? key->enc_len + (n ? 8 : 0) + (kind == K_CP ? 6 : 0) : 0;
            if (n && (!key || n == CHUNK_TERMS || bytes + add > CHUNK_BYTES)) {
                if (lookup_chunk(s, ks, n) < 0 && (kind != K_ID || s->too_large))
                    rc = -1; /* an ID that cannot be checked is invalid */
                n = bytes = 0;
                add = key ? key->enc_len + (kind == K_CP ? 6 : 0) : 0;
            }
            if (key) {
                ks[n++] = k;
                bytes += add;
            }
        }
    }
    free(ks);
    return rc;
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

static void start_free(struct start *s)
{
    for (size_t i = 0; i < s->nkeys; i++) {
        free(s->keys[i].term);
        json_object_put(s->keys[i].tasks);
    }
    free(s->keys);
    free(s->sel);
    json_object_put(s->key_index);
    json_object_put(s->bad);
    json_object_put(s->bad_seen);
}

json_object *task_start_run(const struct cfg *c, const char *url_id, json_object *items,
                            int must_exist, int *errstatus, char *errbuf, size_t errsz)
{
    struct start s = {.c = c,
                      .key_index = json_object_new_object(),
                      .bad = json_object_new_array(),
                      .bad_seen = json_object_new_object()};
    /* Step 1 and 2 of butlerd-api(7), start task: the selectors in request order; lookups
     * batched. */
    if (url_id && strcmp(url_id, "-") != 0)
        select_id(&s, url_id);
    for (size_t i = 0; i < json_object_array_length(items); i++) {
        json_object *it = json_object_array_get_idx(items, i), *type, *p;
        if (!json_object_object_get_ex(it, "type", &type))
            continue;
        const char *t = json_object_get_string(type);
        p = json_object_object_get(it, "payload");
        if (!strcmp(t, "starttaskid")) {
            select_id(&s, str_member(p, "taskId"));
        } else if (!strcmp(t, "starttasktag")) {
            struct sel *e = add_sel(&s, K_TAG);
            e->raw = str_member(p, "tag");
            e->st = c->startTaskFilter.enable && !in_list(&c->startTaskFilter.tag, e->raw)
                        ? SEL_DENIED
                        : SEL_LOOKUP;
        } else if (!strcmp(t, "starttaskcustomproperty")) {
            struct sel *e = add_sel(&s, K_CP);
            e->raw = str_member(p, "customPropertyName");
            e->b = str_member(p, "customPropertyValue");
            e->st = c->startTaskFilter.enable && !cp_allowed(c, e->raw, e->b) ? SEL_DENIED
                                                                              : SEL_LOOKUP;
        } else if (!strcmp(t, "keyvaluestore")) {
            add_sel(&s, K_KV)->kv = p;
        }
    }
    for (size_t i = 0; i < s.nsel; i++)
        if (s.sel[i].st == SEL_LOOKUP && s.sel[i].kind != K_KV)
            s.sel[i].key = add_key(&s, s.sel[i].kind,
                                   s.sel[i].kind == K_ID ? s.sel[i].id : s.sel[i].raw,
                                   s.sel[i].b);
    int failed = lookup_all(&s) < 0;
    /* KV items are stored before any start; when a lookup failed, those before the
     * first selector that could not be looked up (as if processed one by one). */
    for (size_t i = 0; i < s.nsel; i++) {
        struct sel *e = &s.sel[i];
        if (failed && e->kind != K_KV && e->kind != K_ID && e->st == SEL_LOOKUP &&
            !s.keys[e->key].done)
            break;
        if (e->kind == K_KV)
            apply_kv_item(c, e->kv);
    }
    if (failed) {
        snprintf(errbuf, errsz, "%s", s.err);
        if (errstatus)
            *errstatus = s.too_large ? 502 : 500;
        start_free(&s);
        return NULL;
    }

    json_object *invalid = json_object_new_array(), *denied = json_object_new_array(),
                *candidates = json_object_new_array(), *tag_tasks = json_object_new_array(),
                *tag_denied = json_object_new_array(), *cp_tasks = json_object_new_array(),
                *cp_denied = json_object_new_array(), *failed_l = json_object_get(s.bad);
    for (size_t i = 0; i < s.nsel; i++) {
        struct sel *e = &s.sel[i];
        json_object *found = e->st == SEL_LOOKUP && e->kind != K_KV ? s.keys[e->key].tasks : NULL;
        if (e->kind == K_ID) {
            if (e->st == SEL_INVALID)
                json_object_array_add(invalid, task_obj(e->raw, NULL));
            else if (e->st == SEL_DENIED)
                json_object_array_add(denied, task_obj(e->id, NULL));
            else if (json_object_array_length(found) == 0)
                json_object_array_add(invalid, task_obj(e->id, NULL));
            else
                json_object_array_add(candidates,
                                      json_object_get(json_object_array_get_idx(found, 0)));
        } else if (e->kind == K_TAG || e->kind == K_CP) {
            json_object *list = e->kind == K_TAG ? tag_tasks : cp_tasks;
            if (e->st == SEL_DENIED) {
                json_object *d = json_object_new_object();
                if (e->kind == K_TAG) {
                    json_object_object_add(d, "tag", json_object_new_string(e->raw));
                } else {
                    json_object_object_add(d, "name", json_object_new_string(e->raw));
                    json_object_object_add(d, "value", json_object_new_string(e->b));
                }
                json_object_array_add(e->kind == K_TAG ? tag_denied : cp_denied, d);
            } else {
                for (size_t j = 0; j < json_object_array_length(found); j++)
                    json_object_array_add(list,
                                          json_object_get(json_object_array_get_idx(found, j)));
            }
        }
    }
    /* Step 3: one invalid ID with allTaskIdsMustExist keeps every ID task back. */
    if (must_exist && json_object_array_length(invalid) > 0) {
        for (size_t i = 0; i < json_object_array_length(candidates); i++)
            json_object_array_add(denied,
                                  task_obj(task_id(json_object_array_get_idx(candidates, i)),
                                           NULL));
        json_object_put(candidates);
        candidates = json_object_new_array();
    }
    /* Step 4: each distinct task once, in first-seen order. */
    json_object *seen = json_object_new_object(), *accepted = json_object_new_object();
    json_object *lists[3] = {candidates, tag_tasks, cp_tasks};
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
                json_object_array_add(failed_l, f);
                log_warnx("starting task %s failed: %s", id, msg);
            }
        }
    json_object *o = json_object_new_object();
    json_object *ti = json_object_new_object();
    json_object_object_add(ti, "started", only_accepted(candidates, accepted));
    json_object_object_add(ti, "invalid", invalid);
    json_object_object_add(ti, "denied", denied);
    json_object_object_add(o, "tasksId", ti);
    json_object_object_add(o, "tasksTag", only_accepted(tag_tasks, accepted));
    json_object_object_add(o, "tasksTagDenied", tag_denied);
    json_object_object_add(o, "tasksCP", only_accepted(cp_tasks, accepted));
    json_object_object_add(o, "tasksCPDenied", cp_denied);
    json_object_object_add(o, "tasksFailed", failed_l);
    json_object_put(seen);
    json_object_put(accepted);
    json_object_put(candidates);
    json_object_put(tag_tasks);
    json_object_put(cp_tasks);
    start_free(&s);
    return o;
}

/* ----------------------------------------------------------- /v2/senseStartTask */

static void count_only(json_object *o, void *arg) {}

enum task_rc task_start_checked(const struct cfg *c, const char *x, char id[37], char *msg,
                                size_t msz)
{
    char filter[64];
    *msg = '\0';
    if (!guid_loose(x, id))
        return TASK_BAD_ID;
    if (c->startTaskFilter.enable && !task_allowed_id(c, id))
        return TASK_DENIED;
    struct qrs_resp qr;
    snprintf(filter, sizeof filter, "id eq %s", id);
    if (qrs_call(c, "GET", "task", filter, NULL, &qr) < 0) {
        snprintf(msg, msz, "QRS request failed: %s", qr.error);
        qrs_resp_free(&qr);
        return TASK_QRS_FAILED;
    }
    if (qr.status != 200) {
        snprintf(msg, msz, "QRS responded with HTTP %ld", qr.status);
        qrs_resp_free(&qr);
        return TASK_QRS_FAILED;
    }
    int found = jsonarr_each(qr.body.p, qr.body.len, count_only, NULL) > 0;
    qrs_resp_free(&qr);
    if (!found)
        return TASK_NOT_FOUND;
    long st;
    if (task_start_one(c, id, &st, msg, msz) < 0)
        return TASK_START_FAILED;
    log_info("started task %s", id);
    return TASK_STARTED;
}
