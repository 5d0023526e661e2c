/* The key-value store endpoints (butlerd-api(7), Key-value store): parse and validate, call
 * the key-value store (kvstore.h), render. */
#include "api.h"
#include "cfg.h"
#include "http.h"
#include "kvstore.h"
#include "log.h"
#include "util.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const struct sch_prop key_query[] = {{"key", SCH_STRING, 1, 0, NULL},
                                            {NULL, 0, 0, 0, NULL}};

static json_object *str(const char *s, size_t n)
{
    return json_object_new_string_len(s, (int)n);
}

/* Answers the errors every KV operation shares; returns 1 if it replied. */
static int kv_error(struct req *r, int rc, const char *ns, size_t nslen, const char *key,
                    size_t klen)
{
    const struct cfg *c = r->cfg;
    switch (rc) {
    case KV_OK:
        return 0;
    case KV_NO_NS:
        http_reply_error(r, 400, NULL, "Namespace not found: %.*s", (int)nslen, ns);
        break;
    case KV_NO_KEY:
        http_reply_error(r, 400, NULL, "Key '%.*s' not found in namespace: %.*s", (int)klen, key,
                         (int)nslen, ns);
        break;
    case KV_FULL_NS:
        http_reply_error(r, 507, NULL, "Namespace %.*s is full (max %d keys)", (int)nslen, ns,
                         c->kvs.maxKeysPerNamespace);
        break;
    case KV_FULL_KEYS:
        http_reply_error(r, 507, NULL, "Key-value store is full (max %d keys)", c->shm.kvMaxKeys);
        break;
    case KV_FULL_NSTAB:
        http_reply_error(r, 507, NULL, "Key-value store is full (max %d namespaces)",
                         c->shm.kvMaxNamespaces);
        break;
    case KV_UNAVAIL:
        http_reply_error(r, 503, NULL, "Key-value store unavailable: its Redis server cannot be "
                                       "reached, try again later");
        break;
    default:
        http_reply_error(r, 500, NULL, "Key-value store error");
    }
    return 1;
}

/* On Redis an operation waits for the network: it runs on a "store" job thread, so
 * the MHD thread goes on serving the worker's other connections, even while Redis
 * hangs (butlerd(8), SEVERAL INSTANCES). The shared-memory store answers at once,
 * on the MHD thread as always. */
static void run(struct req *r, api_handler fn)
{
    if (kvstore_is_redis())
        http_defer(r, fn);
    else
        fn(r);
}

static json_object *entry(const char *ns, size_t nslen, const char *key, size_t klen,
                          const struct kv_value *v)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "namespace", str(ns, nslen));
    json_object_object_add(o, "key", str(key, klen));
    json_object_object_add(o, "value", str(v->value, v->len));
    if (v->ttl_left >= 0)
        json_object_object_add(o, "ttl", json_object_new_int64(v->ttl_left > 0 ? v->ttl_left : 1));
    return o;
}

/* The same object as entry(), without its closing brace, written straight into B:
 * GET and POST answer this way on every request (butlerd(8), PERFORMANCE). */
static void entry_buf(struct buf *b, const char *ns, size_t nslen, const char *key,
                      size_t klen, const char *value, size_t vlen)
{
    buf_append(b, "{\"namespace\":", 13);
    http_json_str(b, ns, nslen);
    buf_append(b, ",\"key\":", 7);
    http_json_str(b, key, klen);
    buf_append(b, ",\"value\":", 9);
    http_json_str(b, value, vlen);
}

static void ttl_buf(struct buf *b, int64_t ttl)
{
    char t[32];
    char *e = t + sizeof t, *p = e;
    uint64_t u = ttl < 0 ? 0 - (uint64_t)ttl : (uint64_t)ttl;
    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (ttl < 0)
        *--p = '-';
    buf_append(b, ",\"ttl\":", 7);
    buf_append(b, p, (size_t)(e - p));
}

static void namespaces_job(struct req *r)
{
    struct kv_list l;
    if (kv_error(r, kvstore->namespaces(&l), NULL, 0, NULL, 0))
        return;
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < l.n; i++)
        json_object_array_add(a, str(l.s[i], l.len[i]));
    kv_list_free(&l);
    http_reply_json(r, 200, a);
}

/* "?key=K" and nothing else, K not empty and without '%', '+' or any byte outside
 * printable ASCII: what nearly every GET sends. Such a K reads the same decoded
 * or not, so it is taken as it is, without the general query parser (butlerd(8),
 * PERFORMANCE). Returns K's length, or 0 for any other query. */
static size_t plain_key_query(const struct req *r, const char **key)
{
    const char *q = r->target + r->pathlen;
    if (strncmp(q, "?key=", 5) != 0)
        return 0;
    q += 5;
    size_t n = 0;
    for (; q[n]; n++) {
        unsigned char c = (unsigned char)q[n];
        if (c <= ' ' || c >= 0x7f || strchr("%+&=;#", c))
            return 0;
    }
    *key = q;
    return n;
}

static void get_or_exists(struct req *r, int exists)
{
    size_t nslen;
    char *ns = http_param(r, 0, &nslen);
    if (!ns)
        return;
    const char *key = NULL;
    size_t klen = exists ? 0 : plain_key_query(r, &key);
    json_object *q = klen ? NULL : http_query(r, key_query);
    if (q) {
        json_object *k = json_object_object_get(q, "key");
        key = json_object_get_string(k);
        klen = (size_t)json_object_get_string_len(k);
    }
    if (key) {
        struct kv_value v;
        int rc = kvstore->get(ns, nslen, key, klen, &v);
        if (exists && rc == KV_NO_KEY) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "keyExists", json_object_new_boolean(0));
            json_object_object_add(o, "keyValue", json_object_new_object());
            http_reply_json(r, 200, o);
        } else if (!kv_error(r, rc, ns, nslen, key, klen)) {
            if (!exists) {
                /* the hot path: rendered straight into the reply, no json-c tree */
                struct buf b = {0};
                entry_buf(&b, ns, nslen, key, klen, v.value, v.len);
                if (v.ttl_left >= 0)
                    ttl_buf(&b, v.ttl_left > 0 ? v.ttl_left : 1);
                buf_append(&b, "}", 1);
                free(v.value);
                http_reply_json_buf(r, 200, &b);
            } else {
                json_object *e = entry(ns, nslen, key, klen, &v);
                free(v.value);
                json_object *o = json_object_new_object();
                json_object_object_add(o, "keyExists", json_object_new_boolean(1));
                json_object_object_add(o, "keyValue", e);
                http_reply_json(r, 200, o);
            }
        }
    }
    free(ns);
}

static void get_job(struct req *r) { get_or_exists(r, 0); }
static void exists_job(struct req *r) { get_or_exists(r, 1); }

static void post_job(struct req *r)
{
    static const struct sch_prop props[] = {{"key", SCH_STRING, 0, 0, NULL},
                                            {"value", SCH_STRING, 0, 0, NULL},
                                            {"ttl", SCH_NUMBER, 0, 0, NULL},
                                            {NULL, 0, 0, 0, NULL}};
    const struct cfg *c = r->cfg;
    size_t nslen;
    char *ns = http_param(r, 0, &nslen);
    if (!ns)
        return;
    const char *key, *val;
    size_t klen, vlen;
    int has_v;
    int64_t ttl = 0;
    if (r->kvbody.ok) {
        /* the flat body, read without json-c (http.c, kv_member) */
        key = r->kvbody.key;
        klen = key ? r->kvbody.klen : 0;
        val = r->kvbody.value;
        vlen = val ? r->kvbody.vlen : 0;
        has_v = val != NULL;
        if (r->kvbody.has_ttl)
            ttl = r->kvbody.ttl;
    } else {
        json_object *b = http_body(r, props), *k, *v, *t;
        if (!b)
            goto out;
        int has_k = json_object_object_get_ex(b, "key", &k);
        has_v = json_object_object_get_ex(b, "value", &v);
        klen = has_k ? (size_t)json_object_get_string_len(k) : 0;
        key = has_k ? json_object_get_string(k) : NULL;
        vlen = has_v ? (size_t)json_object_get_string_len(v) : 0;
        val = has_v ? json_object_get_string(v) : NULL;
        if (json_object_object_get_ex(b, "ttl", &t)) {
            double d = trunc(json_object_get_double(t));
            ttl = d > 9e15 ? (int64_t)9e15 : d < -9e15 ? (int64_t)-9e15 : (int64_t)d;
        }
    }
    if (!klen || !has_v || !nslen) {
        http_reply_error(r, 400, NULL, "Required parameter is missing");
        goto out;
    }
    if (nslen > (size_t)c->shm.kvMaxKeyBytes) {
        http_reply_error(r, 400, NULL, "Namespace too long (max %d bytes)", c->shm.kvMaxKeyBytes);
        goto out;
    }
    if (klen > (size_t)c->shm.kvMaxKeyBytes) {
        http_reply_error(r, 400, NULL, "Key too long (max %d bytes)", c->shm.kvMaxKeyBytes);
        goto out;
    }
    if (vlen > (size_t)c->shm.kvMaxValueBytes) {
        http_reply_error(r, 413, NULL, "Value too large (max %d bytes)", c->shm.kvMaxValueBytes);
        goto out;
    }
    int rc = kvstore->put(ns, nslen, key, klen, val, vlen, ttl);
    if (!kv_error(r, rc, ns, nslen, key, klen)) {
        struct buf o = {0};
        entry_buf(&o, ns, nslen, key, klen, val, vlen);
        ttl_buf(&o, ttl);
        buf_append(&o, "}", 1);
        http_reply_json_buf(r, 201, &o);
    }
out:
    free(ns);
}

static void del_job(struct req *r)
{
    size_t nslen, klen;
    char *ns = http_param(r, 0, &nslen), *key = NULL;
    if (!ns)
        return;
    key = http_param(r, 1, &klen);
    if (key) {
        if (!klen)
            http_reply_error(r, 400, NULL, "Required parameter is missing");
        else if (!kv_error(r, kvstore->del(ns, nslen, key, klen), ns, nslen, key, klen))
            http_reply_empty(r, 204);
    }
    free(ns);
    free(key);
}

static void del_ns_job(struct req *r)
{
    size_t nslen;
    char *ns = http_param(r, 0, &nslen);
    if (!ns)
        return;
    if (!kv_error(r, kvstore->del_ns(ns, nslen), ns, nslen, NULL, 0))
        http_reply_empty(r, 204);
    free(ns);
}

/* ------------------------------------------------------------------ keylist */

/* butlerd(8), KEY-VALUE STORE, "Long key lists": a namespace can hold a million
 * keys, so its list is made as the client reads it, a page of keys at a time
 * (kvstore->keys_page), never all of it at once. The bytes are those json-c made
 * when the list was built whole: {"namespace":NS,"keys":[{"key":K},...]}. */
struct keylist {
    char *ns;
    size_t nslen;
    struct kv_page page;
    size_t next;  /* the page's next key */
    int state;    /* KL_KEYS: keys to come; KL_TAIL: "]}" to come; KL_END */
    int first;    /* no key written yet */
    char *pend;   /* bytes made, not yet handed out: [off, len) */
    size_t off, len, cap;
    int rc;       /* of the store's last failure */
};
enum { KL_KEYS, KL_TAIL, KL_END };
#define WHOLE (1u << 20)

static void kl_room(struct keylist *k, size_t n)
{
    if (k->len + n > k->cap) {
        k->cap = (k->len + n) * 2;
        k->pend = xrealloc(k->pend, k->cap);
    }
}

static void kl_put(struct keylist *k, const char *s, size_t n)
{
    kl_room(k, n);
    memcpy(k->pend + k->len, s, n);
    k->len += n;
}

/* A JSON string as json-c writes it with JSON_C_TO_STRING_NOSLASHESCAPE: the
 * two-character escapes, \u00xx for other control bytes, every other byte as is. */
static void kl_string(struct keylist *k, const char *s, size_t n)
{
    kl_room(k, n * 6 + 2);
    char *o = k->pend + k->len;
    *o++ = '"';
    o += http_json_escape(o, s, n);
    *o++ = '"';
    k->len = (size_t)(o - k->pend);
}

/* Makes at least WANT bytes (or all that remain); -1 if the store failed. */
static int kl_make(struct keylist *k, size_t want)
{
    while (k->len - k->off < want && k->state != KL_END) {
        if (k->state == KL_TAIL) {
            kl_put(k, "]}", 2);
            k->state = KL_END;
            break;
        }
        if (k->next == k->page.n) {
            if ((k->rc = kvstore->keys_page(k->ns, k->nslen, &k->page)) != KV_OK)
                return -1;
            k->next = 0;
            if (!k->page.n) {
                k->state = KL_TAIL;
                continue;
            }
        }
        kl_put(k, k->first ? "{\"key\":" : ",{\"key\":", k->first ? 7 : 8);
        k->first = 0;
        kl_string(k, k->page.s[k->next], k->page.len[k->next]);
        kl_put(k, "}", 1);
        k->next++;
    }
    return 0;
}

static long kl_fill(void *cls, char *buf, size_t max)
{
    struct keylist *k = cls;
    if (k->off == k->len) /* all handed out: start the buffer again */
        k->off = k->len = 0;
    if (kl_make(k, max) < 0) {
        log_warnx("key list of namespace %.*s cut short: the key-value store failed",
                  (int)k->nslen, k->ns);
        return -1;
    }
    size_t n = k->len - k->off < max ? k->len - k->off : max;
    memcpy(buf, k->pend + k->off, n);
    k->off += n;
    if (k->off == k->len)
        k->off = k->len = 0;
    return (long)n;
}

static void kl_done(void *cls)
{
    struct keylist *k = cls;
    kv_page_free(&k->page);
    free(k->ns);
    free(k->pend);
    free(k);
}

/* Runs on a job thread: the first page answers whether the namespace exists (on
 * Redis a round trip), the rest is made on the MHD thread as the client reads. */
static void keylist_job(struct req *r)
{
    size_t nslen;
    char *ns = http_param(r, 0, &nslen);
    if (!ns)
        return;
    struct keylist *k = xcalloc(1, sizeof *k);
    int rc = kvstore->keys_page(ns, nslen, &k->page);
    if (kv_error(r, rc, ns, nslen, NULL, 0)) {
        kv_page_free(&k->page);
        free(k);
        free(ns);
        return;
    }
    k->ns = ns;
    k->nslen = nslen;
    k->first = 1;
    k->state = k->page.n ? KL_KEYS : KL_TAIL;
    kl_put(k, "{\"namespace\":", 13);
    kl_string(k, ns, nslen);
    kl_put(k, ",\"keys\":[", 9);
    /* A list that ends within WHOLE bytes goes out in one piece, with its length, as
     * every other reply; only a longer one is streamed (chunked). */
    int made = kl_make(k, WHOLE);
    if (made < 0) {
        kv_error(r, k->rc, k->ns, k->nslen, NULL, 0);
        kl_done(k);
        return;
    }
    if (k->state == KL_END) {
        struct buf b = {0};
        buf_append(&b, k->pend, k->len);
        kl_done(k);
        http_reply_json_buf(r, 200, &b);
        return;
    }
    http_reply_stream(r, 200, NULL, kl_fill, kl_done, k);
}

void api_kv_keylist(struct req *r) { http_defer(r, keylist_job); }
void api_kv_namespaces(struct req *r) { run(r, namespaces_job); }
void api_kv_get(struct req *r) { run(r, get_job); }
void api_kv_exists(struct req *r) { run(r, exists_job); }
void api_kv_post(struct req *r) { run(r, post_job); }
void api_kv_del(struct req *r) { run(r, del_job); }
void api_kv_del_ns(struct req *r) { run(r, del_ns_job); }
