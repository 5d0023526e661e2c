/* The key-value store's namespace table in the shared region: its records, its size
 * for a geometry, and its initialisation. A leaf: shm.c lays the region out with it
 * and kv.c works on it, so neither needs the other. */
#ifndef KV_NS_H
#define KV_NS_H

#include "shm_lock.h"

#include <stddef.h>
#include <stdint.h>

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

/* Bytes of the table for MAX_NS namespaces with names of up to NAME_MAX bytes. */
size_t kv_ns_bytes(uint32_t max_ns, uint32_t name_max);
/* Initialises the table at AT (zeroed shared memory; the master, before forking). */
void kv_ns_init(void *at, uint32_t max_ns, uint32_t name_max);
/* Record I of table N. */
struct kv_ns *kv_ns_rec(struct kv_nstable *n, uint32_t i);

#endif
