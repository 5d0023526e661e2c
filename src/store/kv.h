/* The key-value store (butlerd(8), KEY-VALUE STORE) on the shared-memory table: namespaces in
 * creation order, keys in creation order, TTLs and limits; dump and restore for the
 * snapshot file (kv_snapshot.h).
 * Knows nothing about HTTP. */
#ifndef KV_H
#define KV_H

#include <stddef.h>
#include <stdint.h>

struct cfg;

enum kv_rc {
    KV_OK,
    KV_NO_NS,       /* Namespace not found */
    KV_NO_KEY,      /* Key not found (or expired) */
    KV_FULL_NS,     /* namespace reached maxKeysPerNamespace */
    KV_FULL_KEYS,   /* store reached kvMaxKeys (or the key's stripe is full) */
    KV_FULL_NSTAB,  /* kvMaxNamespaces reached */
    KV_UNAVAIL,     /* the backend (Redis) cannot be reached: try again later */
    KV_ERROR,       /* the backend refused the operation (logged) */
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

/* A namespace's keys one page at a time, for listings of any length
 * (butlerd(8), KEY-VALUE STORE, "Long key lists"). Start with a zeroed page; each
 * call replaces the page with the next keys in creation order after the cursor
 * (ID, AFTER), N == 0 at the end. A key created during the listing appears (new
 * keys come after the cursor), a key deleted before its page is read does not, an
 * overwritten key keeps its place; only a key deleted and created again after its
 * page can appear twice (it is a new key). If the namespace is deleted meanwhile,
 * the listing ends. KV_NO_NS only on the first page. S[i] are not NUL-terminated;
 * they stay valid until the next call or kv_page_free. */
struct kv_page {
    uint64_t id, after; /* the cursor: namespace id, creation number of the last key */
    size_t n;
    const char **s;
    size_t *len;
    size_t cap;  /* of this backend's buffers */
    void *priv;
    char *bytes;
};
int kv_keys_page(const char *ns, size_t nslen, struct kv_page *p);
void kv_page_free(struct kv_page *p);

/* Removes expired keys; returns how many. Run by the master at least once a second. */
unsigned kv_sweep(void);
uint64_t kv_mutations(void);
/* What GET /metrics reports: live keys, namespaces, and the bytes of their names
 * and values, counted stripe by stripe (each under its own lock, briefly). */
void kv_usage(uint64_t *keys, uint64_t *namespaces, uint64_t *bytes);

/* The whole store, for the snapshot file (kv_snapshot.c): namespaces in creation
 * order, each with its live keys in creation order. The strings are not
 * NUL-terminated; they point into buffers kv_dump_free releases. */
struct kv_dump_key {
    const char *key, *value;
    uint32_t klen, vlen;
    int64_t expires; /* ms since the epoch, 0 = no TTL */
};
struct kv_dump_ns {
    const char *name;
    uint32_t len;
    size_t first, count; /* its keys: keys[first .. first + count - 1] */
};
struct kv_dump {
    size_t nns, nkeys;
    struct kv_dump_ns *ns;
    struct kv_dump_key *keys;
    char *bytes;
    void *names;
};
void kv_dump(struct kv_dump *d);
void kv_dump_free(struct kv_dump *d);

/* Writes a key read back from a snapshot, with its absolute expiry (0 = none), in
 * the order of the file; KEY NULL only creates the namespace. The limits of kv_put
 * apply. */
int kv_restore(const char *ns, size_t nslen, const char *key, size_t klen, const char *val,
               size_t vlen, int64_t expires);

/* Writes NK keys read back from a snapshot into namespace NS (made with kv_restore)
 * under one hold of the namespace lock, with creation order as in KEYS, one stripe
 * after another. Returns how many were written; the others broke a limit (no
 * expired key is reclaimed for them: the store is new). */
size_t kv_restore_keys(const char *ns, size_t nslen, const struct kv_dump_key *keys, size_t nk);

/* Loading NKEYS keys into a new store: a helper thread pre-faults the shared memory
 * the keys will almost surely occupy, so that the kernel's page faults overlap
 * with the loading instead of interrupting it. NULL if not worth it. Only while
 * nothing else uses the store (the master before it forks). */
struct kv_prefault *kv_prefault_start(size_t nkeys);
void kv_prefault_end(struct kv_prefault *p);

/* The longest key name and value the table holds. */
size_t kv_key_max(void);
size_t kv_value_max(void);

/* Structural check of the whole store (tests): 0 if every invariant holds. */
int kv_check(void);

int64_t kv_now_ms(void);

#endif
