/* Rate limits and de-duplication on Redis (rl_redis.h).
 *
 * Layout under the prefix P (butlerd.conf(5), butlerd.store.redis.keyPrefix):
 *   P rl:ADDR      the REST request count of client ADDR (hex) in its window; the
 *                  key expires with the window
 *   P c:KIND:KEY   a claim (alert windows, execution IDs), expiring after its TTL
 * Claims are SET NX PX, so of two instances claiming at once exactly one wins. */
#include "rl_redis.h"
#include "redis_conn.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RL_WAIT_MS 100

/* ARGV: P addr window_ms. Returns {count, ms left in the window}. */
static struct redis_script hit_lua = {
    "local k, w = ARGV[1] .. 'rl:' .. ARGV[2], tonumber(ARGV[3])\n"
    "local n = redis.call('INCR', k)\n"
    "local left = redis.call('PTTL', k)\n"
    "if n == 1 or left < 0 then\n" /* a new window, or one left without expiry */
    "  redis.call('PEXPIRE', k, w)\n"
    "  left = w\n"
    "end\n"
    "return {n, left}\n",
    ""};

int rl_redis_hit(const void *key, size_t klen, int window_s, long long *count,
                 long long *left_ms)
{
    static const char hex[] = "0123456789abcdef";
    char addr[2 * 32 + 1], win[24];
    const unsigned char *p = key;
    if (klen > 32)
        klen = 32;
    for (size_t i = 0; i < klen; i++) {
        addr[2 * i] = hex[p[i] >> 4];
        addr[2 * i + 1] = hex[p[i] & 15];
    }
    int wn = snprintf(win, sizeof win, "%lld", (long long)window_s * 1000);
    const char *args[] = {addr, win};
    size_t lens[] = {2 * klen, (size_t)wn};
    int rc;
    /* The MHD thread asks, for every request: a hung Redis may hold it up
     * RL_WAIT_MS at most, about once a second (the reconnect backoff). */
    redis_thread_limit(RL_WAIT_MS);
    redisReply *r = redis_script("rate limit", &hit_lua, 2, args, lens, &rc);
    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(r);
        return -1;
    }
    *count = r->element[0]->integer;
    *left_ms = r->element[1]->integer;
    freeReplyObject(r);
    return 0;
}

int rl_redis_claim(const char *kind, const char *key, int64_t ttl_ms)
{
    char *k = xasprintf("%sc:%s:%s", redis_prefix(), kind, key), ttl[24];
    int tn = snprintf(ttl, sizeof ttl, "%lld", (long long)(ttl_ms > 0 ? ttl_ms : 1));
    const char *argv[] = {"SET", k, "1", "NX", "PX", ttl};
    size_t len[] = {3, strlen(k), 1, 2, 2, (size_t)tn};
    int rc;
    redisReply *r = redis_cmd("claim", 6, argv, len, &rc);
    free(k);
    if (!r)
        return -1;
    int won = r->type == REDIS_REPLY_STATUS;  /* +OK; nil when it was set */
    int bad = r->type == REDIS_REPLY_ERROR;
    freeReplyObject(r);
    return bad ? -1 : won;
}
