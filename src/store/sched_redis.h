/* The schedule list and the firing lease on Redis (butlerd(8), SCHEDULER, "Several
 * instances"), with butlerd.store.backend = "redis".
 *
 * Layout under the prefix P (butlerd.conf(5), butlerd.store.redis.keyPrefix):
 *   P sched         list: the schedules, one compact JSON object each, in order
 *   P schedver      counter: the list's version, moved by every change
 *   P sched:norun   set: ids of schedules that cannot run (from a schedule file)
 *   P sched:lease   string: the token of the scheduler process that fires, PX lease
 *   P sched:epoch   counter: taken by each new lease (fencing)
 *   P sched:fired   hash: schedule id -> the last second fired
 * Every change is one Lua script that checks and changes in Redis, so instances
 * changing schedules together lose nothing. These functions only talk to Redis;
 * sched_list.c keeps each instance's copy of the list, scheduler.c fires. All
 * return an RS_* code of redis_conn.h. */
#ifndef SCHED_REDIS_H
#define SCHED_REDIS_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

/* Rc values in the first element of a change's reply. */
enum { SR_NOT_FOUND = -1, SR_NO_LIST = -2, SR_CANNOT_RUN = -3, SR_FULL = -4 };

/* The list if its version is not HAVE: *R = {version} (unchanged), {version,
 * item...} or {0} (Redis holds no list). */
int sched_redis_fetch(uint64_t have, redisReply **r);
/* Puts ITEMS (NUL-free compact objects joined by '\n') as the list if Redis has
 * none; RUNS holds '1' or '0' for each item (can it run). The version becomes
 * HAVE + 1, so every instance's copy looks out of date. */
int sched_redis_seed(const char *items, size_t len, const char *runs, uint64_t have);
/* Changes: *R = {version or SR_*, ...}. Add ITEM if fewer than MAX. */
int sched_redis_add(const char *item, unsigned max, redisReply **r);
int sched_redis_delete(const char *id, redisReply **r);
/* Sets lastKnownState of ID (NULL: all) to STATE: {version, item} or {version,
 * item...} for all. */
int sched_redis_set(const char *id, const char *state, redisReply **r);

/* ---- the firing lease (the scheduler process) */

/* Renews the lease held with TOKEN, or takes it if nobody holds it. *EPOCH = the
 * lease's fencing number if this process holds it, else 0; *VER = the list's
 * version (0: none). */
int sched_redis_lease(const char *token, int lease_ms, int64_t *epoch, uint64_t *ver);
/* Gives the lease up if TOKEN holds it. */
void sched_redis_release(const char *token);
/* Claims firings: PAIRS is a JSON array [id, "second", ...]. *FLAGS gets one
 * '1' (fire it) or '0' (fired already) per pair, or NULL if TOKEN/EPOCH no longer
 * hold the lease (the caller frees it). */
int sched_redis_claim(const char *token, int64_t epoch, const char *pairs, char **flags);

#endif
