/* The schedule list and the firing lease on Redis (see sched_redis.h). Each
 * operation is one Lua script: the check and the change happen in Redis, never a
 * read here and a write later. */
#include "sched_redis.h"
#include "log.h"
#include "redis_conn.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Schedules are written by butlerd only, in the member order of sched_list.c,
 * so lastKnownState always ends an item: '"lastKnownState":"started"}' (27
 * bytes, "stopped" as long). A start or stop rewrites that tail. */
#define LUA_HEAD                                                                         \
    "local P = ARGV[1]\n"                                                                \
    "local L, V = P .. 'sched', P .. 'schedver'\n"                                       \
    "local function id_of(it) local ok, o = pcall(cjson.decode, it)\n"                   \
    "  if ok and type(o) == 'table' and type(o.id) == 'string' then return o.id end\n"   \
    "  return '' end\n"

/* ARGV: P have. */
static struct redis_script fetch_lua = {
    "local P = ARGV[1]\n"
    "local v = redis.call('GET', P .. 'schedver')\n"
    "if not v then return {0} end\n"
    "if v == ARGV[2] then return {tonumber(v)} end\n"
    "local r = redis.call('LRANGE', P .. 'sched', 0, -1)\n"
    "table.insert(r, 1, tonumber(v))\n"
    "return r\n",
    ""};

/* ARGV: P items runs have. Returns 1 if it seeded, 0 if a list was there. */
static struct redis_script seed_lua = {
    LUA_HEAD
    "if redis.call('EXISTS', V) == 1 then return 0 end\n"
    "redis.call('DEL', L, P .. 'sched:norun', P .. 'sched:fired')\n"
    "local items, runs, i, pos = ARGV[2], ARGV[3], 1, 1\n"
    "while pos <= #items do\n"
    "  local e = string.find(items, '\\n', pos, true) or (#items + 1)\n"
    "  local it = string.sub(items, pos, e - 1)\n"
    "  redis.call('RPUSH', L, it)\n"
    "  if string.sub(runs, i, i) == '0' then redis.call('SADD', P .. 'sched:norun', id_of(it)) end\n"
    "  i = i + 1\n"
    "  pos = e + 1\n"
    "end\n"
    "redis.call('SET', V, tonumber(ARGV[4]) + 1)\n"
    "return 1\n",
    ""};

/* ARGV: P item max. */
static struct redis_script add_lua = {
    "local P = ARGV[1]\n"
    "if not redis.call('GET', P .. 'schedver') then return {-2} end\n"
    "if redis.call('LLEN', P .. 'sched') >= tonumber(ARGV[3]) then return {-4} end\n"
    "redis.call('RPUSH', P .. 'sched', ARGV[2])\n"
    "return {redis.call('INCR', P .. 'schedver')}\n",
    ""};

/* ARGV: P id. */
static struct redis_script delete_lua = {
    LUA_HEAD
    "if not redis.call('GET', V) then return {-2} end\n"
    "for _, it in ipairs(redis.call('LRANGE', L, 0, -1)) do\n"
    "  if id_of(it) == ARGV[2] then\n"
    "    redis.call('LREM', L, 1, it)\n"
    "    redis.call('SREM', P .. 'sched:norun', ARGV[2])\n"
    "    redis.call('HDEL', P .. 'sched:fired', ARGV[2])\n"
    "    return {redis.call('INCR', V)}\n"
    "  end\n"
    "end\n"
    "return {-1}\n",
    ""};

/* ARGV: P id all state. A schedule that cannot run is never started: start-all
 * leaves it, starting it by id is refused (butlerd-api(7), Scheduler). */
static struct redis_script set_lua = {
    LUA_HEAD
    "if not redis.call('GET', V) then return {-2} end\n"
    "local id, all, state = ARGV[2], ARGV[3] == '1', ARGV[4]\n"
    "local tail = '\"lastKnownState\":\"' .. state .. '\"}'\n"
    "local l = redis.call('LRANGE', L, 0, -1)\n"
    "local changed, one = false, nil\n"
    "for i, it in ipairs(l) do\n"
    "  local sid = id_of(it)\n"
    "  if all or sid == id then\n"
    "    if state == 'started' and redis.call('SISMEMBER', P .. 'sched:norun', sid) == 1 then\n"
    "      if not all then return {-3} end\n"
    "    elseif string.sub(it, -#tail) ~= tail and\n"
    "           string.sub(it, -27, -11) == '\"lastKnownState\":' then\n"
    "      it = string.sub(it, 1, -11) .. '\"' .. state .. '\"}'\n"
    "      redis.call('LSET', L, i - 1, it)\n"
    "      l[i] = it\n"
    "      changed = true\n"
    "    end\n"
    "    if not all then one = it break end\n"
    "  end\n"
    "end\n"
    "if not all and not one then return {-1} end\n"
    "local v = changed and redis.call('INCR', V) or tonumber(redis.call('GET', V))\n"
    "if not all then return {v, one} end\n"
    "table.insert(l, 1, v)\n"
    "return l\n",
    ""};

/* ARGV: P token leaseMs. SET NX PX for a new holder, with the next fencing
 * number; compare-and-PEXPIRE for the holder. */
static struct redis_script lease_lua = {
    "local P = ARGV[1]\n"
    "local lk, ek = P .. 'sched:lease', P .. 'sched:epoch'\n"
    "local v = tonumber(redis.call('GET', P .. 'schedver') or '0')\n"
    "local cur = redis.call('GET', lk)\n"
    "if cur == ARGV[2] then\n"
    "  redis.call('PEXPIRE', lk, ARGV[3])\n"
    "  return {tonumber(redis.call('GET', ek) or '0'), v}\n"
    "end\n"
    "if cur then return {0, v} end\n"
    "redis.call('SET', lk, ARGV[2], 'NX', 'PX', ARGV[3])\n"
    "return {redis.call('INCR', ek), v}\n",
    ""};

/* ARGV: P token. */
static struct redis_script release_lua = {
    "local lk = ARGV[1] .. 'sched:lease'\n"
    "if redis.call('GET', lk) == ARGV[2] then redis.call('DEL', lk) return 1 end\n"
    "return 0\n",
    ""};

/* ARGV: P token epoch pairs. The lease must still be the caller's (token) and
 * nobody may have taken it since (epoch): a holder that was paused past its lease
 * fires nothing. A second is fired once: it must be after the schedule's last
 * fired second. */
static struct redis_script claim_lua = {
    "local P = ARGV[1]\n"
    "if redis.call('GET', P .. 'sched:lease') ~= ARGV[2] or\n"
    "   redis.call('GET', P .. 'sched:epoch') ~= ARGV[3] then return {0} end\n"
    "local a, f, out = cjson.decode(ARGV[4]), P .. 'sched:fired', {}\n"
    "for i = 1, #a - 1, 2 do\n"
    "  local last = tonumber(redis.call('HGET', f, a[i]) or '-1')\n"
    "  if tonumber(a[i + 1]) > last then\n"
    "    redis.call('HSET', f, a[i], a[i + 1])\n"
    "    out[#out + 1] = '1'\n"
    "  else\n"
    "    out[#out + 1] = '0'\n"
    "  end\n"
    "end\n"
    "return {1, table.concat(out)}\n",
    ""};

static int run(const char *what, struct redis_script *s, int n, const char **args,
               redisReply **out)
{
    size_t lens[8];
    for (int i = 0; i < n; i++)
        lens[i] = strlen(args[i]);
    int rc;
    *out = redis_script(what, s, n, args, lens, &rc);
    if (*out && ((*out)->type != REDIS_REPLY_ARRAY || !(*out)->elements ||
                 (*out)->element[0]->type != REDIS_REPLY_INTEGER)) {
        log_warnx("Redis %s: unexpected reply", what); /* cannot happen: our scripts */
        freeReplyObject(*out);
        *out = NULL;
        return RS_ERROR;
    }
    return *out ? RS_OK : rc;
}

int sched_redis_fetch(uint64_t have, redisReply **r)
{
    char h[24];
    snprintf(h, sizeof h, "%" PRIu64, have);
    const char *a[] = {h};
    return run("schedule list read", &fetch_lua, 1, a, r);
}

int sched_redis_seed(const char *items, size_t len, const char *runs, uint64_t have)
{
    char h[24];
    snprintf(h, sizeof h, "%" PRIu64, have);
    const char *a[] = {items, runs, h};
    size_t lens[] = {len, strlen(runs), strlen(h)};
    int rc;
    redisReply *r = redis_script("schedule list seed", &seed_lua, 3, a, lens, &rc);
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1)
        log_info("seeded the shared schedule list in Redis (%s) from this instance's copy",
                 redis_where());
    if (r)
        freeReplyObject(r);
    return r ? RS_OK : rc;
}

int sched_redis_add(const char *item, unsigned max, redisReply **r)
{
    char m[16];
    snprintf(m, sizeof m, "%u", max);
    const char *a[] = {item, m};
    return run("schedule add", &add_lua, 2, a, r);
}

int sched_redis_delete(const char *id, redisReply **r)
{
    const char *a[] = {id};
    return run("schedule delete", &delete_lua, 1, a, r);
}

int sched_redis_set(const char *id, const char *state, redisReply **r)
{
    const char *a[] = {id ? id : "", id ? "0" : "1", state};
    return run("schedule start/stop", &set_lua, 3, a, r);
}

int sched_redis_lease(const char *token, int lease_ms, int64_t *epoch, uint64_t *ver)
{
    char ms[16];
    snprintf(ms, sizeof ms, "%d", lease_ms);
    const char *a[] = {token, ms};
    redisReply *r;
    int rc = run("scheduler lease", &lease_lua, 2, a, &r);
    *epoch = 0;
    if (rc != RS_OK)
        return rc;
    if (r->elements == 2 && r->element[1]->type == REDIS_REPLY_INTEGER) {
        *epoch = r->element[0]->integer;
        *ver = (uint64_t)r->element[1]->integer;
    }
    freeReplyObject(r);
    return RS_OK;
}

void sched_redis_release(const char *token)
{
    const char *a[] = {token};
    size_t lens[] = {strlen(token)};
    int rc;
    redisReply *r = redis_script("scheduler lease release", &release_lua, 1, a, lens, &rc);
    if (r)
        freeReplyObject(r);
}

int sched_redis_claim(const char *token, int64_t epoch, const char *pairs, char **flags)
{
    char e[24];
    snprintf(e, sizeof e, "%" PRId64, epoch);
    const char *a[] = {token, e, pairs};
    redisReply *r;
    *flags = NULL;
    int rc = run("schedule firing claim", &claim_lua, 3, a, &r);
    if (rc != RS_OK)
        return rc;
    if (r->element[0]->integer == 1 && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING)
        *flags = xstrdup(r->element[1]->str);
    freeReplyObject(r);
    return RS_OK;
}
