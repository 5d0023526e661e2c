/* Counting the key-value store on Redis (kv_redis_count.h), from the counters
 * of kv_redis.c's layout: P n counts the keys of every namespace index, expired
 * ones too until a write reclaims them; those are exactly the members of P x
 * whose expiry has passed, so live = n - ZCOUNT(x, -inf, now). */
#include "kv_redis_count.h"
#include "redis_conn.h"

#include <stddef.h>

static struct redis_script usage_lua = {
    "local P = ARGV[1]\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local n = tonumber(redis.call('GET', P .. 'n') or '0')\n"
    "local dead = redis.call('ZCOUNT', P .. 'x', '-inf', now)\n"
    "local live = n - dead\n"
    "if live < 0 then live = 0 end\n"
    "return {live, redis.call('ZCARD', P .. 'nsord')}\n",
    ""};

int kv_redis_usage(uint64_t *keys, uint64_t *namespaces)
{
    int rc;
    redisReply *r = redis_script("key-value count", &usage_lua, 0, NULL, NULL, &rc);
    if (!r)
        return -1;
    int ok = r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
             r->element[0]->type == REDIS_REPLY_INTEGER &&
             r->element[1]->type == REDIS_REPLY_INTEGER;
    if (ok) {
        *keys = (uint64_t)r->element[0]->integer;
        *namespaces = (uint64_t)r->element[1]->integer;
    }
    freeReplyObject(r);
    return ok ? 0 : -1;
}
