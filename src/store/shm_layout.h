/* The geometry and layout of the shared region (shm_layout.c): pure arithmetic on
 * the configured limits, no mapping and no configuration object. */
#ifndef SHM_LAYOUT_H
#define SHM_LAYOUT_H

#include "shm_region.h"

#include <stdint.h>

/* Where each part of the region starts, and its whole size. */
struct shm_layout {
    uint64_t ns_off, table_off, users_off, stats_off, rl_off, total;
};

/* The geometry for these limits: stripes, slots and buckets per stripe. */
void shm_geometry_make(struct shm_geometry *g, uint32_t kv_max_keys, uint32_t kv_key_bytes,
                       uint32_t kv_value_bytes, uint32_t kv_max_ns, uint32_t users_max);
/* Sets the rate-limit table's part of G for MAX_CLIENTS clients (shm_geometry_make
 * sets it for one). */
void shm_geometry_ratelimit(struct shm_geometry *g, uint32_t max_clients);
void shm_layout_for(const struct shm_geometry *g, struct shm_layout *l);
/* Bytes of address space geometry G needs. */
uint64_t shm_layout_size(const struct shm_geometry *g);
/* Slots of the active-user table (one spare for a replacement). */
uint32_t shm_users_slots(const struct shm_geometry *g);
uint32_t shm_pow2_at_least(uint64_t n);

#endif
