/* The key-value store's one interface (butlerd(8), KEY-VALUE STORE; "Several
 * instances"): the REST handlers and start-task items call kvstore->op(...); the
 * backend is chosen once, by the master before it forks, from butlerd.store.backend.
 * The shared-memory backend is kv.c as it is; the Redis backend is kv_redis.c.
 * Return codes and lists are kv.h's. */
#ifndef KVSTORE_H
#define KVSTORE_H

#include "kv.h"

struct cfg;

struct kvstore_ops {
    const char *name;
    int (*put)(const char *ns, size_t nslen, const char *key, size_t klen, const char *val,
               size_t vlen, int64_t ttl_ms);
    int (*get)(const char *ns, size_t nslen, const char *key, size_t klen, struct kv_value *out);
    int (*del)(const char *ns, size_t nslen, const char *key, size_t klen);
    int (*del_ns)(const char *ns, size_t nslen);
    int (*namespaces)(struct kv_list *out);
    int (*keys)(const char *ns, size_t nslen, struct kv_list *out);
    /* The next page of a namespace's keys (kv.h, struct kv_page); the page is
     * released with kv_page_free whatever the backend. */
    int (*keys_page)(const char *ns, size_t nslen, struct kv_page *p);
    /* The reloadable limit (Butler.keyValueStore.maxKeysPerNamespace). */
    void (*set_limits)(int max_keys_per_ns);
};

/* The shared-memory backend: kv.c's operations. */
extern const struct kvstore_ops kv_shm_ops;

/* The backend in use; the shared-memory one until kvstore_select (kv_backend.h)
 * says otherwise. */
extern const struct kvstore_ops *kvstore;

/* 1 if the Redis backend is in use: the shared-memory store and its snapshot file
 * are then left alone. */
int kvstore_is_redis(void);

#endif
