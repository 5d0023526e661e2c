/* The POSIX shared-memory region: header, geometry, and offset helpers. Created by
 * the master before the first fork; workers inherit the mapping. */
#ifndef SHM_H
#define SHM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SHM_MAGIC "BUTLERD"
#define SHM_FORMAT 3

struct cfg;

/* Everything that fixes the layout; a segment is re-attached only if it matches. */
struct shm_geometry {
    uint32_t kv_max_keys, kv_key_bytes, kv_value_bytes, kv_max_ns;
    uint32_t users_max;
    uint32_t kv_stripes, kv_slots_per_stripe, kv_buckets_per_stripe;
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

/* Opens the segment named after butlerd.shm.name and the REST port: re-attaches an
 * existing one whose header matches CFG's geometry, else creates a new one.
 * Returns 1 if re-attached, 0 if created, -1 on error (logged). */
int shm_open_region(const struct cfg *cfg);
/* Gives the segment to the user butlerd switches to, so it can remove it later. */
int shm_chown_region(uid_t uid, gid_t gid);
/* Removes the segment name (orderly shutdown); the mapping stays valid. */
void shm_unlink_region(void);
/* Empties the active-user table and zeroes the counters (master, before forking:
 * both are memory-only and start empty with every master). */
void shm_reset_volatile(void);
/* Maps the running instance's segment read-only (butlerd -S); 0 or -1. */
int shm_attach_readonly(const struct cfg *cfg);
void shm_geometry_from_cfg(const struct cfg *cfg, struct shm_geometry *g);
/* Bytes of address space the configuration's geometry needs. */
uint64_t shm_region_size(const struct cfg *cfg);

static inline void *shm_ptr(uint64_t off) { return off ? shm.base + off : NULL; }

#endif
