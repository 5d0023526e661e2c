/* The key-value store (spec section 4) on the shared-memory table: namespaces in
 * creation order, keys in creation order, TTLs, limits, and the snapshot file.
 * Knows nothing about HTTP. */
#ifndef KV_H
#define KV_H

#include "shm_lock.h"

#include <stddef.h>
#include <stdint.h>

struct cfg;
struct shm_geometry;

/* One namespace record; the name is stored inline after the struct. */
struct kv_ns {
    uint32_t used;
    uint32_t name_len;
    uint64_t id;   /* unique per creation: keys carry it, so a re-created namespace
                      never sees the keys of a deleted one */
    uint64_t seq;  /* creation order */
    uint32_t count; /* linked keys, expired ones included until reclaimed */
    uint32_t pad;
    char name[];
};

struct kv_nstable {
    struct shm_mutex lock; /* taken before any stripe lock, by every write */
    uint32_t max_ns, rec_size;
    uint32_t total;        /* keys in the whole store */
    uint32_t op;           /* nonzero while a namespace is being deleted */
    uint32_t hwm;          /* records [0, hwm) have been used: scans stop there */
    uint32_t pad;
    uint64_t next_id;
    /* max_ns records of rec_size bytes follow */
};

size_t kv_ns_bytes(const struct shm_geometry *g);
void kv_init_region(uint64_t ns_off, const struct shm_geometry *g);

enum kv_rc {
    KV_OK,
    KV_NO_NS,       /* Namespace not found */
    KV_NO_KEY,      /* Key not found (or expired) */
    KV_FULL_NS,     /* namespace reached maxKeysPerNamespace */
    KV_FULL_KEYS,   /* store reached kvMaxKeys (or the key's stripe is full) */
    KV_FULL_NSTAB,  /* kvMaxNamespaces reached */
};

struct kv_value {
    char *value; /* malloc'd, NUL-terminated */
    size_t len;
    int64_t ttl_left; /* ms, -1 if the key has no TTL */
};

/* Sets the limits that come from the reloadable part of the configuration. */
void kv_set_limits(int max_keys_per_ns);

int kv_put(const char *ns, size_t nslen, const char *key, size_t klen, const char *val,
           size_t vlen, int64_t ttl_ms);
int kv_get(const char *ns, size_t nslen, const char *key, size_t klen, struct kv_value *out);
int kv_ns_exists(const char *ns, size_t nslen);
int kv_del(const char *ns, size_t nslen, const char *key, size_t klen);
int kv_del_ns(const char *ns, size_t nslen);

/* Lists: arrays of malloc'd strings (with lengths), in creation order. */
struct kv_list {
    size_t n;
    char **s;
    size_t *len;
};
void kv_list_free(struct kv_list *l);
int kv_namespaces(struct kv_list *out);
int kv_keys(const char *ns, size_t nslen, struct kv_list *out);

/* Removes expired keys; returns how many. Run by the master at least once a second. */
unsigned kv_sweep(void);
uint64_t kv_mutations(void);

/* Snapshot file (spec 4.7). save: temp file, fsync, rename, mode 0600. */
int kv_snapshot_save(const char *path);
/* Loads PATH into an empty store; a file that cannot be parsed is renamed to
 * PATH.bad. Returns the number of keys loaded, or -1. */
long kv_snapshot_load(const char *path);

/* Structural check of the whole store (tests): 0 if every invariant holds. */
int kv_check(void);

int64_t kv_now_ms(void);

#endif
