/* Rate limits and de-duplication on Redis, shared by every instance with the same
 * Redis and key prefix (butlerd(8), "Several instances"): the REST rate limit's
 * window per client address (butlerd-api(7), "Rate limiting"), the alert rate
 * limits (butlerd(8), Alerts) and the UDP execution IDs (butlerd-api(7), UDP EVENTS).
 * Each call is one round trip with the command timeout; none may run in the master. */
#ifndef RL_REDIS_H
#define RL_REDIS_H

#include <stddef.h>
#include <stdint.h>

/* Counts one request of client KEY (at most 32 bytes used) in its fixed window of
 * WINDOW_S seconds, which starts with the client's first request: 0 with *COUNT,
 * the requests in the window so far, and *LEFT_MS, what is left of it; -1 when
 * Redis cannot be reached (the caller fails open). */
int rl_redis_hit(const void *key, size_t klen, int window_s, long long *count,
                 long long *left_ms);

/* SET P c:KIND:KEY 1 NX PX TTL_MS: 1 if this call set it (the first across all
 * instances within TTL_MS), 0 if it was set already, -1 when Redis cannot be
 * reached. */
int rl_redis_claim(const char *kind, const char *key, int64_t ttl_ms);

#endif
