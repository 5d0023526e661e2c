/* The key-value store's backend table (kvstore.h): a const table per backend, picked
 * once (kv_backend.c), so a call costs one indirect jump and no lookups. */
#include "kvstore.h"

const struct kvstore_ops kv_shm_ops = {
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

const struct kvstore_ops *kvstore = &kv_shm_ops;

int kvstore_is_redis(void) { return kvstore != &kv_shm_ops; }
