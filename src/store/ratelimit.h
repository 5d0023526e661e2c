/* The REST rate limit's counters (butlerd-api(7), "Rate limiting"): one fixed window
 * per client address, in a striped shared-memory table so every worker applies the
 * same budget. Knows nothing about HTTP: the caller passes the address bytes. */
#ifndef RATELIMIT_H
#define RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

/* Longest client key: an address family byte and an IPv6 address. */
#define RL_KEY_MAX 17
/* Bytes of one client's counters (struct rl_entry in ratelimit.c). */
#define RL_VALUE_BYTES 24

struct rl_verdict {
    int limited;   /* over the budget: answer 429 */
    int limit;     /* the budget per window */
    int remaining; /* budget left in this window, not below 0 */
    int reset_s;   /* whole seconds until the window ends, rounded up (at least 1) */
};

/* Counts one request of client KEY (KLEN bytes, at most RL_KEY_MAX) now against MAX
 * requests per WINDOW_S seconds. When the table is full the entry seen least
 * recently (in KEY's stripe) is dropped to make room. */
void rl_hit(const void *key, size_t klen, int max, int window_s, struct rl_verdict *v);
/* The clock rl_hit reads, under the stripe lock (CLOCK_MONOTONIC in ns); unit tests
 * put their own in its place. */
extern int64_t (*rl_clock_ns)(void);
/* Number of clients in the table (for tests and butlerd -S). */
uint32_t rl_clients(void);
/* Locks every stripe in turn (repairing one a dead process left) and checks its
 * structure; 0 if all are sound (for tests). */
int rl_check(void);

#endif
