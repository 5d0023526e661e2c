/* The key-value store's backend table (kvstore.h): a const table per backend, picked
 * once, so a call costs one indirect jump and no lookups. */
#include "kvstore.h"
#include "cfg.h"
#include "kv_redis.h"

#include <string.h>

static const struct kvstore_ops shm_ops = {
    .name = "shm",
    .put = kv_put,
    .get = kv_get,
    .del = kv_del,
    .del_ns = kv_del_ns,
    .namespaces = kv_namespaces,
    .keys = kv_keys,
    .keys_page = kv_keys_page,
    .set_limits = kv_set_limits,
};

const struct kvstore_ops *kvstore = &shm_ops;

void kvstore_select(const struct cfg *c)
{
    if (!strcmp(c->store.backend, "redis")) {
        kv_redis_configure(c);
        kvstore = &kv_redis_ops;
    } else {
        kvstore = &shm_ops;
    }
    kvstore->set_limits(c->kvs.maxKeysPerNamespace);
}

int kvstore_is_redis(void) { return kvstore != &shm_ops; }
