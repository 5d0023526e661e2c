/* The key-value store on Redis (butlerd(8), "Several instances"): the same
 * semantics as kv.c, shared by every butlerd that uses the same Redis and key
 * prefix. */
#ifndef KV_REDIS_H
#define KV_REDIS_H

#include "kvstore.h"

extern const struct kvstore_ops kv_redis_ops;

/* Takes the butlerd.store.redis settings and the restart-only limits of C; the
 * master, before it forks. Connections are made later, one per thread. */
void kv_redis_configure(const struct cfg *c);
/* Hands the butlerd.store.redis settings of C to the connection layer
 * (redis_conn.h) only: for the command-line tools that ask Redis once. */
void kv_redis_settings(const struct cfg *c);

#endif
