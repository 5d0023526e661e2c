/* A striped hash table of fixed-size slots in shared memory. Each stripe has its own
 * robust mutex, buckets, slots, free list and "operation in progress" record, so a
 * process killed inside a critical section damages at most one stripe, which the
 * next locker repairs. Slots are referenced by 1-based index (0 = none). */
#ifndef SHM_TABLE_H
#define SHM_TABLE_H

#include "shm_lock.h"

#include <stddef.h>
#include <stdint.h>

struct shm_slot {
    uint32_t next;   /* next slot in the bucket chain or the free list */
    uint32_t hash;
    uint32_t klen;
    uint32_t vlen;
    uint64_t seq;    /* creation order */
    int64_t expires; /* CLOCK_REALTIME ms, 0 = never */
    unsigned char data[]; /* key bytes, then value bytes */
};

enum shm_op_kind { OP_NONE, OP_INSERT, OP_REPLACE, OP_DELETE };

struct shm_op {
    uint32_t kind;
    uint32_t slot; /* slot being linked or unlinked */
    uint32_t old;  /* OP_REPLACE: slot being replaced */
    uint32_t pad;
};

struct shm_stripe {
    struct shm_mutex lock;
    struct shm_op op;
    uint32_t free_head; /* free list of recycled slots */
    uint32_t bump;      /* slots [1, bump] have been handed out at least once */
    uint32_t count;     /* linked slots */
    uint32_t ttl_count; /* linked slots with an expiry */
};

struct shm_table {
    uint32_t nstripes, stripe_shift; /* nstripes is a power of two */
    uint32_t slots_per_stripe, nbuckets; /* nbuckets is a power of two */
    uint32_t key_max, value_max;
    uint32_t slot_size;
    uint32_t head_size; /* 0, or split slots: see shm_table_split */
    /* The stripe headers (locks and counters) side by side, then every stripe's
     * buckets, then the slots, interleaved: slot IDX of stripe S is number
     * (IDX - 1) * nstripes + S. A stripe takes its slots from the lowest numbers up, so
     * the slots in use fill the area from its start, whatever the stripe, and the
     * pages of the slack (slots no stripe has reached yet) are never touched: the
     * memory in use follows the keys stored, not the slots configured (butlerd(8),
     * PERFORMANCE). */
    uint64_t stripes_off;
    uint64_t stripe_stride; /* bytes per stripe header */
    uint64_t buckets_off;
    uint64_t slots_off;
};

/* Layout helpers used when the region is sized and built. */
size_t shm_table_bytes(uint32_t nstripes, uint32_t slots_per_stripe, uint32_t nbuckets,
                       uint32_t key_max, uint32_t value_max);
int shm_table_init(struct shm_table *t, uint64_t base_off, uint32_t nstripes,
                   uint32_t slots_per_stripe, uint32_t nbuckets, uint32_t key_max,
                   uint32_t value_max);

/* Splits every slot of a fresh table (before any slot is used) into a head of HEAD
 * bytes (a multiple of 64: the slot header and the first data bytes), kept with
 * the other heads in one dense array, and a tail of the remaining bytes in a
 * second array, touched only by keys and values that do not fit in the head. The
 * total size is that of shm_table_bytes. A table of short keys under a large key
 * limit then touches a few pages instead of many (butlerd(8), PERFORMANCE).
 * Returns -1 if HEAD does not fit the geometry. */
int shm_table_split(struct shm_table *t, uint32_t head);
/* Copies LEN data bytes (the key, then the value) of SL from offset OFF into DST;
 * the only way to read a split slot's data (sl->data holds just the head's part). */
void shm_slot_read(const struct shm_table *t, const struct shm_slot *sl, uint32_t off,
                   void *dst, uint32_t len);

uint32_t shm_hash(const void *key, size_t len, uint64_t seed);
static inline uint32_t shm_table_stripe_of(const struct shm_table *t, uint32_t hash)
{
    return hash & (t->nstripes - 1);
}

struct shm_stripe *shm_table_stripe(const struct shm_table *t, uint32_t s);
struct shm_slot *shm_table_slot(const struct shm_table *t, uint32_t s, uint32_t idx);
/* Stripe S's bucket array (nbuckets chain heads, 0 = empty). */
uint32_t *shm_table_buckets(const struct shm_table *t, uint32_t s);

/* All of the following require the stripe lock, and neither allocate nor log. */
void shm_table_lock(struct shm_table *t, uint32_t s);
void shm_table_unlock(struct shm_table *t, uint32_t s);
/* Returns the slot for KEY or NULL (expired slots are returned too). */
struct shm_slot *shm_table_find(const struct shm_table *t, uint32_t s, uint32_t hash,
                                const void *key, uint32_t klen);
/* Inserts KEY or replaces its slot with a fresh copy (so a reader never sees a torn
 * value). SEQ is used for a new key; a replacement keeps the old seq unless KEEP_SEQ
 * is 0. Returns 1 if the key was new, 0 if replaced, -1 if the stripe has no room. */
int shm_table_put(struct shm_table *t, uint32_t s, uint32_t hash, const void *key,
                  uint32_t klen, const void *val, uint32_t vlen, int64_t expires, uint64_t seq,
                  int keep_seq);
/* Unlinks KEY; returns 1 if it was there. */
int shm_table_del(struct shm_table *t, uint32_t s, uint32_t hash, const void *key,
                  uint32_t klen);
/* Calls FN for every linked slot; FN returns 1 to unlink the slot. */
typedef int (*shm_visit_fn)(struct shm_slot *sl, void *arg);
void shm_table_visit(struct shm_table *t, uint32_t s, shm_visit_fn fn, void *arg);
/* Free slots of a stripe (recycled plus never used). */
uint32_t shm_table_room(const struct shm_table *t, uint32_t s);
/* Full structural check of one stripe (for tests); returns 0 if valid. */
int shm_table_check(const struct shm_table *t, uint32_t s);
/* The repair routine (also run by the lock wrapper on EOWNERDEAD). */
int shm_table_repair(struct shm_table *t, uint32_t s);

#endif
