/* The shared-memory region as every table sees it: the header at its start (magic,
 * format, geometry, where each table lives), the mapping this process uses, and the
 * offset helper. Creating and attaching the segment is shm.c's; the tables
 * (shm_table.c, kv.c, users.c, stats.h) need only this. */
#ifndef SHM_REGION_H
#define SHM_REGION_H

#include <stddef.h>
#include <stdint.h>

#define SHM_MAGIC "BUTLERD"
#define SHM_FORMAT 5


/* Everything that fixes the layout; a segment is re-attached only if it matches. */
struct shm_geometry {
    uint32_t kv_max_keys, kv_key_bytes, kv_value_bytes, kv_max_ns;
    uint32_t users_max;
    uint32_t kv_stripes, kv_slots_per_stripe, kv_buckets_per_stripe;
    uint32_t rl_max_clients, rl_stripes, rl_slots_per_stripe, rl_buckets_per_stripe;
};

struct shm_header {
    char magic[8];
    uint32_t format;
    uint32_t header_size;
    uint64_t total_size;
    struct shm_geometry geo;
    uint64_t kv_ns_off;    /* struct kv_nstable */
    uint64_t kv_table_off; /* struct shm_table */
    uint64_t users_off;    /* struct shm_table of active-user entries */
    uint64_t stats_off;    /* struct stats */
    uint64_t rl_off;       /* struct shm_table of rate-limit counters (ratelimit.c) */
    uint64_t hash_seed;
    uint64_t seq;          /* creation order of keys and namespaces (atomic) */
    uint64_t mutations;    /* bumped by every KV write; the snapshot compares it */
    uint32_t ready;        /* set last: a segment without it is half-built */
    int32_t master_pid;    /* the master using the segment (butlerd -S checks it) */
};

/* Active-user entries: key "host\0dir\0user", value the last-seen time. */
#define USERS_KEY_MAX 768

struct shm_region {
    unsigned char *base;
    size_t size;
    struct shm_header *hdr;
    char name[256];
};

/* The region this process uses (set by shm_open_region, inherited by workers). */
extern struct shm_region shm;

static inline void *shm_ptr(uint64_t off) { return off ? shm.base + off : NULL; }

#endif
