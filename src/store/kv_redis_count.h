/* Counting the key-value store on Redis for GET /metrics and butlerd -S
 * (butlerd(8), MONITORING and SEVERAL INSTANCES): live keys and namespaces of
 * the whole shared store, not of one instance. */
#ifndef KV_REDIS_COUNT_H
#define KV_REDIS_COUNT_H

#include <stdint.h>

/* Live keys and namespaces under the key prefix, in one round trip that does not
 * walk the keys. 0, or -1 while Redis cannot be reached or fails. */
int kv_redis_usage(uint64_t *keys, uint64_t *namespaces);

#endif
