/* Choosing the key-value store's backend (kv_backend.h). */
#include "kv_backend.h"
#include "cfg.h"
#include "kv_redis.h"
#include "kvstore.h"

#include <string.h>

void kvstore_select(const struct cfg *c)
{
    if (!strcmp(c->store.backend, "redis")) {
        kv_redis_configure(c);
        kvstore = &kv_redis_ops;
    } else {
        kvstore = &kv_shm_ops;
    }
    kvstore->set_limits(c->kvs.maxKeysPerNamespace);
}
