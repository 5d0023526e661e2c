/* The key-value store's namespace table: records of a fixed size after a header
 * with its lock, sized and initialised here for shm.c, used by kv.c. */
#include "kv_ns.h"

#define ALIGN64(x) (((x) + 63) & ~(uint64_t)63)

static uint32_t rec_size(uint32_t name_max)
{
    return (uint32_t)ALIGN64(sizeof(struct kv_ns) + name_max);
}

size_t kv_ns_bytes(uint32_t max_ns, uint32_t name_max)
{
    return ALIGN64(sizeof(struct kv_nstable)) + (size_t)max_ns * rec_size(name_max);
}

void kv_ns_init(void *at, uint32_t max_ns, uint32_t name_max)
{
    struct kv_nstable *n = at;
    shm_mutex_init(&n->lock);
    n->max_ns = max_ns;
    n->rec_size = rec_size(name_max);
    n->next_id = 1;
}

struct kv_ns *kv_ns_rec(struct kv_nstable *n, uint32_t i)
{
    return (struct kv_ns *)((unsigned char *)n + ALIGN64(sizeof *n) + (uint64_t)i * n->rec_size);
}
