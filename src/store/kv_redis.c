/* The key-value store on Redis (kv_redis.h). Every operation is one server-side Lua
 * script (EVALSHA, EVAL when Redis does not know it yet), so limits hold across all
 * instances with no read-then-write from here, and a namespace goes in one step.
 *
 * Layout under the prefix P (butlerd.conf(5), butlerd.store.redis.keyPrefix):
 *   P ns        hash: namespace name -> its id (a number, unique per creation)
 *   P nsord     sorted set: namespace names scored by id = creation order
 *   P seq       counter: ids and key creation numbers
 *   P n         counter: keys in the whole store, expired ones until reclaimed
 *   P o:ID      sorted set: the keys of namespace ID scored by creation number
 *   P v:ID:KEY  string: the value, with a Redis expiry when the key has a TTL
 *   P x         sorted set: "ID:KEY" of keys with a TTL, scored by expiry (ms)
 * Names and keys are only ever members, fields or the tail after "v:ID:" (ID has
 * no ':'), so any bytes map to distinct Redis keys. Expired keys vanish by Redis
 * expiry; their index entries are reclaimed a few at every write, and all of them
 * before a count limit is reported.
 *
 * Connections, Sentinels, timeouts and outages are redis_conn.c's: while Redis
 * cannot be reached every operation answers KV_UNAVAIL at once. */
#include "kv_redis.h"
#include "cfg.h"
#include "log.h"

#include "redis_conn.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long long max_ns, max_keys;
static atomic_int max_per_ns = 1000;

/* ------------------------------------------------------------------ scripts */

#define LUA_COMMON                                                                              \
    "local P = ARGV[1]\n"                                                                       \
    "local function now() local t = redis.call('TIME')\n"                                       \
    "  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) end\n"                  \
    "local function vkey(id, k) return P .. 'v:' .. id .. ':' .. k end\n"                       \
    "local function count() return tonumber(redis.call('GET', P .. 'n') or '0') end\n"         \
    "local function reclaim(t, most)\n"                                                         \
    "  local dead\n"                                                                            \
    "  if most then dead = redis.call('ZRANGEBYSCORE', P .. 'x', '-inf', t, 'LIMIT', 0, most)\n"\
    "  else dead = redis.call('ZRANGEBYSCORE', P .. 'x', '-inf', t) end\n"                      \
    "  for _, m in ipairs(dead) do\n"                                                           \
    "    local c = string.find(m, ':', 1, true)\n"                                              \
    "    local id, k = string.sub(m, 1, c - 1), string.sub(m, c + 1)\n"                         \
    "    redis.call('DEL', vkey(id, k))\n"                                                      \
    "    if redis.call('ZREM', P .. 'o:' .. id, k) == 1 then redis.call('DECR', P .. 'n') end\n" \
    "    redis.call('ZREM', P .. 'x', m)\n"                                                     \
    "  end\n"                                                                                   \
    "end\n"

/* ARGV: P ns key value ttl maxNamespaces maxKeysPerNamespace maxKeys. Returns a
 * kv_rc. The limits are checked before anything changes, in the order of
 * butlerd(8), KEY-VALUE STORE, "Limits". */
static const char put_lua[] =
    LUA_COMMON
    "local ns, k, ttl = ARGV[2], ARGV[3], tonumber(ARGV[5])\n"
    "local maxns, maxper, maxkeys = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])\n"
    "local t = now()\n"
    "reclaim(t, 8)\n" /* a few at every write keep the indexes from filling with the dead */
    "local id = redis.call('HGET', P .. 'ns', ns)\n"
    "local fresh = true\n"
    "if not id then\n"
    "  if redis.call('ZCARD', P .. 'nsord') >= maxns then return 5 end\n"
    "  if maxper < 1 then return 3 end\n"
    "  if count() >= maxkeys then reclaim(t); if count() >= maxkeys then return 4 end end\n"
    "  id = tostring(redis.call('INCR', P .. 'seq'))\n"
    "  redis.call('HSET', P .. 'ns', ns, id)\n"
    "  redis.call('ZADD', P .. 'nsord', id, ns)\n"
    "else\n"
    "  local o = P .. 'o:' .. id\n"
    "  if redis.call('ZSCORE', o, k) then\n"
    "    if redis.call('EXISTS', vkey(id, k)) == 1 then fresh = false\n"
    "    else\n"
    "      redis.call('ZREM', o, k); redis.call('DECR', P .. 'n')\n"
    "      redis.call('ZREM', P .. 'x', id .. ':' .. k)\n"
    "    end\n"
    "  end\n"
    "  if fresh then\n"
    "    if redis.call('ZCARD', o) >= maxper then\n"
    "      reclaim(t); if redis.call('ZCARD', o) >= maxper then return 3 end\n"
    "    end\n"
    "    if count() >= maxkeys then reclaim(t); if count() >= maxkeys then return 4 end end\n"
    "  end\n"
    "end\n"
    "if fresh then\n"
    "  redis.call('ZADD', P .. 'o:' .. id, redis.call('INCR', P .. 'seq'), k)\n"
    "  redis.call('INCR', P .. 'n')\n"
    "end\n"
    "local vk, xm = vkey(id, k), id .. ':' .. k\n"
    "if ttl > 0 then\n"
    "  redis.call('SET', vk, ARGV[4], 'PX', ARGV[5])\n"
    "  redis.call('ZADD', P .. 'x', t + ttl, xm)\n"
    "else\n"
    "  redis.call('SET', vk, ARGV[4])\n"
    "  redis.call('ZREM', P .. 'x', xm)\n"
    "end\n"
    "return 0\n";

/* ARGV: P ns key. Returns {rc} or {0, value, pttl}. */
static const char get_lua[] =
    "local P = ARGV[1]\n"
    "local id = redis.call('HGET', P .. 'ns', ARGV[2])\n"
    "if not id then return {1} end\n"
    "local vk = P .. 'v:' .. id .. ':' .. ARGV[3]\n"
    "local v = redis.call('GET', vk)\n"
    "if not v then return {2} end\n"
    "return {0, v, redis.call('PTTL', vk)}\n";

/* ARGV: P ns key. Returns a kv_rc. */
static const char del_lua[] =
    LUA_COMMON
    "local ns, k = ARGV[2], ARGV[3]\n"
    "local id = redis.call('HGET', P .. 'ns', ns)\n"
    "if not id then return 1 end\n"
    "local had = redis.call('DEL', vkey(id, k))\n"
    "if redis.call('ZREM', P .. 'o:' .. id, k) == 1 then redis.call('DECR', P .. 'n') end\n"
    "redis.call('ZREM', P .. 'x', id .. ':' .. k)\n"
    "if had == 0 then return 2 end\n"
    "return 0\n";

/* ARGV: P ns. The namespace and all its keys, in one script: atomic. */
static const char delns_lua[] =
    LUA_COMMON
    "local ns = ARGV[2]\n"
    "local id = redis.call('HGET', P .. 'ns', ns)\n"
    "if not id then return 1 end\n"
    "local o = P .. 'o:' .. id\n"
    "local ks = redis.call('ZRANGE', o, 0, -1)\n"
    "for _, k in ipairs(ks) do\n"
    "  redis.call('DEL', vkey(id, k))\n"
    "  redis.call('ZREM', P .. 'x', id .. ':' .. k)\n"
    "end\n"
    "if #ks > 0 then redis.call('DECRBY', P .. 'n', #ks) end\n"
    "redis.call('DEL', o)\n"
    "redis.call('HDEL', P .. 'ns', ns)\n"
    "redis.call('ZREM', P .. 'nsord', ns)\n"
    "return 0\n";

/* ARGV: P ns. Returns {rc, live keys in creation order...}. */
static const char keys_lua[] =
    "local P = ARGV[1]\n"
    "local id = redis.call('HGET', P .. 'ns', ARGV[2])\n"
    "if not id then return {1} end\n"
    "local out = {0}\n"
    "local pre = P .. 'v:' .. id .. ':'\n"
    "for _, k in ipairs(redis.call('ZRANGE', P .. 'o:' .. id, 0, -1)) do\n"
    "  if redis.call('EXISTS', pre .. k) == 1 then out[#out + 1] = k end\n"
    "end\n"
    "return out\n";

/* ARGV: P ns id after max. A page of namespace ID's keys (ID "" = look NS up) with
 * creation numbers after AFTER: {rc, id, creation number of the last key looked
 * at, live keys...}; an expired key moves the cursor on but is not listed. */
static const char keypage_lua[] =
    "local P, id = ARGV[1], ARGV[3]\n"
    "if id == '' then\n"
    "  id = redis.call('HGET', P .. 'ns', ARGV[2])\n"
    "  if not id then return {1} end\n"
    "end\n"
    "local out = {0, id, ARGV[4]}\n"
    "local pre = P .. 'v:' .. id .. ':'\n"
    "local got = redis.call('ZRANGEBYSCORE', P .. 'o:' .. id, '(' .. ARGV[4], '+inf',\n"
    "                       'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[5]))\n"
    "for i = 1, #got, 2 do\n"
    "  if redis.call('EXISTS', pre .. got[i]) == 1 then out[#out + 1] = got[i] end\n"
    "  out[3] = got[i + 1]\n"
    "end\n"
    "return out\n";

/* ARGV: P. The namespaces in creation order. */
static const char nslist_lua[] = "return redis.call('ZRANGE', ARGV[1] .. 'nsord', 0, -1)\n";

enum { S_PUT, S_GET, S_DEL, S_DELNS, S_KEYS, S_NSLIST, S_KEYPAGE, S_N };
static struct redis_script scripts[S_N] = {
    {put_lua, ""},  {get_lua, ""},    {del_lua, ""},     {delns_lua, ""},
    {keys_lua, ""}, {nslist_lua, ""}, {keypage_lua, ""}};

/* Runs script S with ARGV = prefix, then the N arguments. Returns the reply, or NULL
 * with *RC set to KV_UNAVAIL or KV_ERROR. */
static redisReply *run(int s, int n, const char **args, const size_t *lens, int *rc)
{
    int why;
    redisReply *r = redis_script("key-value script", &scripts[s], n, args, lens, &why);
    if (!r)
        *rc = why == RS_UNAVAIL ? KV_UNAVAIL : KV_ERROR;
    return r;
}

/* An integer reply (or the first element of an array one) as a kv_rc. */
static int reply_rc(const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER)
        return (int)r->integer;
    if (r->type == REDIS_REPLY_ARRAY && r->elements && r->element[0]->type == REDIS_REPLY_INTEGER)
        return (int)r->element[0]->integer;
    return KV_ERROR;
}

static char *dup_bytes(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* ------------------------------------------------------------------ operations */

/* Runs script S, whose answer is a kv_rc. */
static int run_rc(int s, int n, const char **args, const size_t *lens)
{
    int rc;
    redisReply *r = run(s, n, args, lens, &rc);
    if (!r)
        return rc;
    rc = reply_rc(r);
    freeReplyObject(r);
    return rc;
}

static int r_put(const char *ns, size_t nslen, const char *key, size_t klen, const char *val,
                 size_t vlen, int64_t ttl_ms)
{
    char ttl[24], mns[24], mper[24], mkeys[24];
    snprintf(ttl, sizeof ttl, "%lld", (long long)(ttl_ms > 0 ? ttl_ms : 0));
    snprintf(mns, sizeof mns, "%lld", max_ns);
    snprintf(mper, sizeof mper, "%d", atomic_load(&max_per_ns));
    snprintf(mkeys, sizeof mkeys, "%lld", max_keys);
    const char *a[] = {ns, key, val, ttl, mns, mper, mkeys};
    size_t l[] = {nslen, klen, vlen, strlen(ttl), strlen(mns), strlen(mper), strlen(mkeys)};
    return run_rc(S_PUT, 7, a, l);
}

static int r_get(const char *ns, size_t nslen, const char *key, size_t klen, struct kv_value *out)
{
    const char *a[] = {ns, key};
    size_t l[] = {nslen, klen};
    int rc;
    redisReply *r = run(S_GET, 2, a, l, &rc);
    if (!r)
        return rc;
    rc = reply_rc(r);
    if (rc == KV_OK) {
        if (r->elements == 3 && r->element[1]->type == REDIS_REPLY_STRING &&
            r->element[2]->type == REDIS_REPLY_INTEGER) {
            out->len = r->element[1]->len;
            out->value = dup_bytes(r->element[1]->str, out->len);
            long long pttl = r->element[2]->integer;
            /* PTTL: -1 no expiry; -2 gone in between (cannot happen in one script) */
            out->ttl_left = pttl == -1 ? -1 : pttl < 1 ? 1 : pttl;
            if (!out->value)
                rc = KV_ERROR;
        } else {
            rc = KV_ERROR;
        }
    }
    freeReplyObject(r);
    return rc;
}

static int r_del(const char *ns, size_t nslen, const char *key, size_t klen)
{
    const char *a[] = {ns, key};
    size_t l[] = {nslen, klen};
    return run_rc(S_DEL, 2, a, l);
}

static int r_del_ns(const char *ns, size_t nslen)
{
    const char *a[] = {ns};
    size_t l[] = {nslen};
    return run_rc(S_DELNS, 1, a, l);
}

/* Copies the string elements of R from FIRST on into OUT. */
static int to_list(const redisReply *r, size_t first, struct kv_list *out)
{
    size_t n = r->elements > first ? r->elements - first : 0;
    out->n = 0;
    out->s = calloc(n ? n : 1, sizeof *out->s);
    out->len = calloc(n ? n : 1, sizeof *out->len);
    if (!out->s || !out->len) {
        kv_list_free(out);
        return KV_ERROR;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[first + i];
        if (e->type != REDIS_REPLY_STRING || !(out->s[out->n] = dup_bytes(e->str, e->len))) {
            kv_list_free(out);
            return KV_ERROR;
        }
        out->len[out->n++] = e->len;
    }
    return KV_OK;
}

static int r_namespaces(struct kv_list *out)
{
    memset(out, 0, sizeof *out);
    int rc;
    redisReply *r = run(S_NSLIST, 0, NULL, NULL, &rc);
    if (!r)
        return rc;
    rc = r->type == REDIS_REPLY_ARRAY ? to_list(r, 0, out) : KV_ERROR;
    freeReplyObject(r);
    return rc;
}

static int r_keys(const char *ns, size_t nslen, struct kv_list *out)
{
    memset(out, 0, sizeof *out);
    const char *a[] = {ns};
    size_t l[] = {nslen};
    int rc;
    redisReply *r = run(S_KEYS, 1, a, l, &rc);
    if (!r)
        return rc;
    rc = reply_rc(r);
    if (rc == KV_OK)
        rc = to_list(r, 1, out);
    freeReplyObject(r);
    return rc;
}

/* Keys per page: one script run holds Redis for about a millisecond per thousand. */
#define PAGE_KEYS 10000

static int page_once(const char *ns, size_t nslen, struct kv_page *p)
{
    char id[24], after[24], max[24];
    if (p->id)
        snprintf(id, sizeof id, "%llu", (unsigned long long)p->id);
    else
        id[0] = 0;
    snprintf(after, sizeof after, "%llu", (unsigned long long)p->after);
    snprintf(max, sizeof max, "%d", PAGE_KEYS);
    const char *a[] = {ns, id, after, max};
    size_t l[] = {nslen, strlen(id), strlen(after), strlen(max)};
    int rc;
    redisReply *r = run(S_KEYPAGE, 4, a, l, &rc);
    if (!r)
        return rc;
    rc = reply_rc(r);
    if (rc != KV_OK)
        goto out;
    size_t n = r->elements > 3 ? r->elements - 3 : 0, total = 1;
    if (r->elements < 3 || n > PAGE_KEYS) {
        rc = KV_ERROR;
        goto out;
    }
    for (size_t i = 0; i < 3 + n; i++) {
        const redisReply *e = r->element[i];
        if (i && e->type != REDIS_REPLY_STRING) {
            rc = KV_ERROR;
            goto out;
        }
        if (i >= 3)
            total += e->len;
    }
    if (!p->cap) {
        p->cap = PAGE_KEYS;
        p->s = calloc(PAGE_KEYS, sizeof *p->s);
        p->len = calloc(PAGE_KEYS, sizeof *p->len);
    }
    char *bytes = realloc(p->bytes, total);
    if (!p->s || !p->len || !bytes) {
        rc = KV_ERROR;
        goto out;
    }
    p->bytes = bytes;
    p->id = strtoull(r->element[1]->str, NULL, 10);
    p->after = strtoull(r->element[2]->str, NULL, 10);
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[3 + i];
        memcpy(bytes, e->str, e->len);
        p->s[i] = bytes;
        p->len[i] = e->len;
        bytes += e->len;
    }
    p->n = n;
out:
    freeReplyObject(r);
    return rc;
}

static int r_keys_page(const char *ns, size_t nslen, struct kv_page *p)
{
    for (;;) {
        uint64_t was = p->after;
        int rc = page_once(ns, nslen, p);
        /* A page of expired keys only is empty but not the end: go on past it. */
        if (rc != KV_OK || p->n || p->after == was)
            return rc;
    }
}

static void r_set_limits(int max_keys_per_ns) { atomic_store(&max_per_ns, max_keys_per_ns); }

const struct kvstore_ops kv_redis_ops = {
    .name = "redis",
    .put = r_put,
    .get = r_get,
    .del = r_del,
    .del_ns = r_del_ns,
    .namespaces = r_namespaces,
    .keys = r_keys,
    .keys_page = r_keys_page,
    .set_limits = r_set_limits,
};

void kv_redis_settings(const struct cfg *c)
{
    struct redis_settings s = {
        .in_use = !strcmp(c->store.backend, "redis"),
        .host = c->store.host,
        .port = c->store.port,
        .sentinels = c->store.sentinels.v,
        .nsentinels = c->store.sentinels.n,
        .master_name = c->store.masterName,
        .password = c->store.password,
        .sentinel_password = c->store.sentinelPassword,
        .prefix = c->store.keyPrefix,
        .database = c->store.database,
        .connect_ms = c->store.connectTimeoutMs,
        .command_ms = c->store.commandTimeoutMs,
    };
    redis_configure(&s);
}

void kv_redis_configure(const struct cfg *c)
{
    kv_redis_settings(c);
    max_ns = c->shm.kvMaxNamespaces;
    max_keys = c->shm.kvMaxKeys;
    log_info("key-value store on Redis (%s), database %d, key prefix \"%s\"", redis_where(),
             c->store.database, redis_prefix());
}
