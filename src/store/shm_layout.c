/* The geometry and layout of the shared region: how many stripes and slots the
 * configured limits need, and where the header, the namespace table, the KV table,
 * the active users and the counters sit. Pure arithmetic, shared by shm.c (which
 * creates the segment) and cfg.c (which checks its size). */
#include "shm_layout.h"
#include "kv_ns.h"
#include "ratelimit.h"
#include "shm_table.h"
#include "stats.h"

#include <math.h>
#include <string.h>

#define ALIGN64(x) (((x) + 63) & ~(uint64_t)63)

uint32_t shm_pow2_at_least(uint64_t n)
{
    uint32_t p = 1;
    while (p < n && p < (1u << 30))
        p <<= 1;
    return p;
}

void shm_geometry_make(struct shm_geometry *g, uint32_t kv_max_keys, uint32_t kv_key_bytes,
                       uint32_t kv_value_bytes, uint32_t kv_max_ns, uint32_t users_max)
{
    memset(g, 0, sizeof *g);
    g->kv_max_keys = kv_max_keys;
    g->kv_key_bytes = kv_key_bytes;
    g->kv_value_bytes = kv_value_bytes;
    g->kv_max_ns = kv_max_ns;
    g->users_max = users_max;
    uint32_t stripes = shm_pow2_at_least(g->kv_max_keys / 32 + 1);
    if (stripes > 1024)
        stripes = 1024;
    g->kv_stripes = stripes;
    /* Keys spread unevenly: leave four standard deviations of slack per stripe, plus
     * the spare slot a replacement needs. Unused slots cost address space only. */
    uint32_t per = (g->kv_max_keys + stripes - 1) / stripes;
    g->kv_slots_per_stripe = per + (uint32_t)(4 * sqrt((double)per)) + 9;
    g->kv_buckets_per_stripe = shm_pow2_at_least(g->kv_slots_per_stripe);
    shm_geometry_ratelimit(g, 1);
}

void shm_geometry_ratelimit(struct shm_geometry *g, uint32_t max_clients)
{
    /* Up to 256 clients per stripe: eviction scans one stripe for the client seen
     * least recently, which must stay cheap when a flood of addresses fills it. */
    uint32_t stripes = shm_pow2_at_least((max_clients + 255) / 256);
    if (stripes > 1024)
        stripes = 1024;
    g->rl_max_clients = max_clients;
    g->rl_stripes = stripes;
    g->rl_slots_per_stripe = (max_clients + stripes - 1) / stripes + 1; /* + the spare */
    g->rl_buckets_per_stripe = shm_pow2_at_least(g->rl_slots_per_stripe);
}

uint32_t shm_users_slots(const struct shm_geometry *g) { return g->users_max + 1; }

void shm_layout_for(const struct shm_geometry *g, struct shm_layout *l)
{
    l->ns_off = ALIGN64(sizeof(struct shm_header));
    l->table_off = ALIGN64(l->ns_off + kv_ns_bytes(g->kv_max_ns, g->kv_key_bytes));
    l->users_off = ALIGN64(l->table_off + shm_table_bytes(g->kv_stripes, g->kv_slots_per_stripe,
                                                          g->kv_buckets_per_stripe,
                                                          8 + g->kv_key_bytes, g->kv_value_bytes));
    l->stats_off = ALIGN64(l->users_off + shm_table_bytes(1, shm_users_slots(g),
                                                          shm_pow2_at_least(shm_users_slots(g)),
                                                          USERS_KEY_MAX, sizeof(int64_t)));
    l->rl_off = ALIGN64(l->stats_off + sizeof(struct stats));
    l->total = ALIGN64(l->rl_off + shm_table_bytes(g->rl_stripes, g->rl_slots_per_stripe,
                                                   g->rl_buckets_per_stripe, RL_KEY_MAX,
                                                   RL_VALUE_BYTES));
}

uint64_t shm_layout_size(const struct shm_geometry *g)
{
    struct shm_layout l;
    shm_layout_for(g, &l);
    return l.total;
}
