/* The striped shared-memory hash table.
 *
 * Crash safety comes from the order of stores, not from logging every byte: a slot
 * is filled completely before the single store that links it, a replaced value goes
 * into a fresh slot that is swapped in with one store, and a deleted slot is unlinked
 * with one store before it is recycled. So whatever step a process dies at, the
 * bucket chains hold only complete slots. Repair walks the chains, validates every
 * slot, and rebuilds the free list and counters from what is reachable: a slot that
 * was being linked is either reachable (rolled forward) or freed (rolled back). The
 * op record says which operation was interrupted; the steps are numbered SHM_STEP(k)
 * so the crash-injection tests can kill a process at each one. */
#include "shm_table.h"
#include "shm_region.h"

#include <string.h>

#define MARK 0x80000000u
#define ALIGN64(x) (((x) + 63) & ~(uint64_t)63)

static uint32_t slot_size_for(uint32_t key_max, uint32_t value_max)
{
    return (uint32_t)ALIGN64(sizeof(struct shm_slot) + key_max + value_max);
}

#define STRIPE_STRIDE ALIGN64(sizeof(struct shm_stripe))

static uint64_t buckets_bytes(uint32_t nstripes, uint32_t nbuckets)
{
    return ALIGN64((uint64_t)nstripes * nbuckets * sizeof(uint32_t));
}

size_t shm_table_bytes(uint32_t nstripes, uint32_t spp, uint32_t nbuckets, uint32_t key_max,
                       uint32_t value_max)
{
    return ALIGN64(sizeof(struct shm_table)) + nstripes * STRIPE_STRIDE +
           buckets_bytes(nstripes, nbuckets) +
           (uint64_t)nstripes * spp * slot_size_for(key_max, value_max);
}

int shm_table_init(struct shm_table *t, uint64_t base_off, uint32_t nstripes, uint32_t spp,
                   uint32_t nbuckets, uint32_t key_max, uint32_t value_max)
{
    t->nstripes = nstripes;
    t->stripe_shift = (uint32_t)__builtin_ctz(nstripes);
    t->slots_per_stripe = spp;
    t->nbuckets = nbuckets;
    t->key_max = key_max;
    t->value_max = value_max;
    t->slot_size = slot_size_for(key_max, value_max);
    t->head_size = 0;
    t->stripes_off = base_off + ALIGN64(sizeof(struct shm_table));
    t->stripe_stride = STRIPE_STRIDE;
    t->buckets_off = t->stripes_off + nstripes * t->stripe_stride;
    t->slots_off = t->buckets_off + buckets_bytes(nstripes, nbuckets);
    for (uint32_t s = 0; s < nstripes; s++) {
        struct shm_stripe *st = shm_table_stripe(t, s);
        if (shm_mutex_init(&st->lock) < 0)
            return -1;
        /* Buckets and slots are left as the zero pages ftruncate gave us: slots are
         * touched only when first used, so memory grows with the data. */
    }
    return 0;
}

int shm_table_split(struct shm_table *t, uint32_t head)
{
    if (head % 64 || head <= sizeof(struct shm_slot) || head >= t->slot_size)
        return -1;
    t->head_size = head;
    return 0;
}

uint32_t shm_hash(const void *key, size_t len, uint64_t seed)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return (uint32_t)h;
}

struct shm_stripe *shm_table_stripe(const struct shm_table *t, uint32_t s)
{
    return (struct shm_stripe *)(shm.base + t->stripes_off + s * t->stripe_stride);
}

uint32_t *shm_table_buckets(const struct shm_table *t, uint32_t s)
{
    return (uint32_t *)(shm.base + t->buckets_off) + (uint64_t)s * t->nbuckets;
}

struct shm_slot *shm_table_slot(const struct shm_table *t, uint32_t s, uint32_t idx)
{
    uint64_t n = (uint64_t)(idx - 1) * t->nstripes + s; /* interleaved: shm_table.h */
    return (struct shm_slot *)(shm.base + t->slots_off +
                               n * (t->head_size ? t->head_size : t->slot_size));
}

/* Split slots (shm_table_split): data bytes [0, INLINE) are in the head, the rest
 * at the same position of the tail array, which follows all the heads. */
static uint32_t inline_bytes(const struct shm_table *t)
{
    return t->head_size ? t->head_size - (uint32_t)sizeof(struct shm_slot) : UINT32_MAX;
}

static unsigned char *tail_of(const struct shm_table *t, const struct shm_slot *sl)
{
    uint64_t all = (uint64_t)t->nstripes * t->slots_per_stripe;
    uint64_t n = ((const unsigned char *)sl - (shm.base + t->slots_off)) / t->head_size;
    return shm.base + t->slots_off + all * t->head_size + n * (t->slot_size - t->head_size);
}

void shm_slot_read(const struct shm_table *t, const struct shm_slot *sl, uint32_t off,
                   void *dst, uint32_t len)
{
    uint32_t in = inline_bytes(t);
    unsigned char *d = dst;
    if (off < in) {
        uint32_t k = len < in - off ? len : in - off;
        memcpy(d, sl->data + off, k);
        d += k;
        off += k;
        len -= k;
    }
    if (len)
        memcpy(d, tail_of(t, sl) + (off - in), len);
}

static void slot_write(const struct shm_table *t, struct shm_slot *sl, uint32_t off,
                       const void *src, uint32_t len)
{
    uint32_t in = inline_bytes(t);
    const unsigned char *p = src;
    if (off < in) {
        uint32_t k = len < in - off ? len : in - off;
        memcpy(sl->data + off, p, k);
        p += k;
        off += k;
        len -= k;
    }
    if (len)
        memcpy(tail_of(t, sl) + (off - in), p, len);
}

static int key_is(const struct shm_table *t, const struct shm_slot *sl, const void *key,
                  uint32_t klen)
{
    uint32_t in = inline_bytes(t);
    if (klen <= in)
        return memcmp(sl->data, key, klen) == 0;
    return memcmp(sl->data, key, in) == 0 &&
           memcmp(tail_of(t, sl), (const unsigned char *)key + in, klen - in) == 0;
}

static uint32_t bucket_of(const struct shm_table *t, uint32_t hash)
{
    return (hash >> t->stripe_shift) & (t->nbuckets - 1);
}

struct repair_arg {
    struct shm_table *t;
    uint32_t s;
};

static int repair_cb(void *arg)
{
    const struct repair_arg *a = arg;
    return shm_table_repair(a->t, a->s);
}

void shm_table_lock(struct shm_table *t, uint32_t s)
{
    struct repair_arg a = {t, s};
    shm_lock(&shm_table_stripe(t, s)->lock, repair_cb, &a);
}

void shm_table_unlock(struct shm_table *t, uint32_t s)
{
    shm_unlock(&shm_table_stripe(t, s)->lock);
}

/* Returns the link (bucket head or a slot's next field) that points at KEY's slot,
 * or NULL if absent. */
static uint32_t *find_link(const struct shm_table *t, uint32_t s, uint32_t hash, const void *key,
                           uint32_t klen)
{
    uint32_t *link = &shm_table_buckets(t, s)[bucket_of(t, hash)];
    while (*link) {
        struct shm_slot *sl = shm_table_slot(t, s, *link);
        if (sl->hash == hash && sl->klen == klen && key_is(t, sl, key, klen))
            return link;
        link = &sl->next;
    }
    return NULL;
}

struct shm_slot *shm_table_find(const struct shm_table *t, uint32_t s, uint32_t hash,
                                const void *key, uint32_t klen)
{
    uint32_t *link = find_link(t, s, hash, key, klen);
    return link ? shm_table_slot(t, s, *link) : NULL;
}

static uint32_t alloc_slot(const struct shm_table *t, uint32_t s, struct shm_stripe *st)
{
    uint32_t idx = st->free_head;
    if (idx) {
        st->free_head = shm_table_slot(t, s, idx)->next;
        return idx;
    }
    if (st->bump < t->slots_per_stripe)
        return ++st->bump;
    return 0;
}

static void free_slot(const struct shm_table *t, uint32_t s, struct shm_stripe *st, uint32_t idx)
{
    shm_table_slot(t, s, idx)->next = st->free_head;
    st->free_head = idx;
}

static void fill(const struct shm_table *t, struct shm_slot *sl, uint32_t hash, const void *key,
                 uint32_t klen, const void *val, uint32_t vlen, int64_t expires, uint64_t seq,
                 uint32_t next)
{
    sl->next = next;
    sl->hash = hash;
    sl->klen = klen;
    sl->vlen = vlen;
    sl->seq = seq;
    sl->expires = expires;
    slot_write(t, sl, 0, key, klen);
    if (vlen)
        slot_write(t, sl, klen, val, vlen);
}

uint32_t shm_table_room(const struct shm_table *t, uint32_t s)
{
    return t->slots_per_stripe - shm_table_stripe(t, s)->count;
}

int shm_table_put(struct shm_table *t, uint32_t s, uint32_t hash, const void *key,
                  uint32_t klen, const void *val, uint32_t vlen, int64_t expires, uint64_t seq,
                  int keep_seq)
{
    struct shm_stripe *st = shm_table_stripe(t, s);
    uint32_t *link = find_link(t, s, hash, key, klen);
    if (link) {
        /* One slot is always kept free for this: inserts stop one short of full. */
        uint32_t old = *link;
        struct shm_slot *os = shm_table_slot(t, s, old);
        st->op = (struct shm_op){OP_REPLACE, 0, old, 0};
        SHM_STEP(1);
        uint32_t idx = alloc_slot(t, s, st);
        if (!idx) {
            st->op.kind = OP_NONE;
            return -1;
        }
        st->op.slot = idx;
        SHM_STEP(2);
        fill(t, shm_table_slot(t, s, idx), hash, key, klen, val, vlen, expires,
             keep_seq ? os->seq : seq, os->next);
        SHM_STEP(3);
        __atomic_store_n(link, idx, __ATOMIC_RELEASE);
        SHM_STEP(4);
        st->ttl_count += (expires != 0) - (os->expires != 0);
        free_slot(t, s, st, old);
        SHM_STEP(5);
        st->op.kind = OP_NONE;
        return 0;
    }
    if (st->count + 1 >= t->slots_per_stripe)
        return -1;
    st->op = (struct shm_op){OP_INSERT, 0, 0, 0};
    SHM_STEP(11);
    uint32_t idx = alloc_slot(t, s, st);
    st->op.slot = idx;
    SHM_STEP(12);
    uint32_t *head = &shm_table_buckets(t, s)[bucket_of(t, hash)];
    fill(t, shm_table_slot(t, s, idx), hash, key, klen, val, vlen, expires, seq, *head);
    SHM_STEP(13);
    __atomic_store_n(head, idx, __ATOMIC_RELEASE);
    SHM_STEP(14);
    st->count++;
    st->ttl_count += expires != 0;
    SHM_STEP(15);
    st->op.kind = OP_NONE;
    return 1;
}

static void unlink_at(struct shm_table *t, uint32_t s, uint32_t *link)
{
    struct shm_stripe *st = shm_table_stripe(t, s);
    uint32_t idx = *link;
    struct shm_slot *sl = shm_table_slot(t, s, idx);
    st->op = (struct shm_op){OP_DELETE, idx, 0, 0};
    SHM_STEP(21);
    __atomic_store_n(link, sl->next, __ATOMIC_RELEASE);
    SHM_STEP(22);
    st->count--;
    st->ttl_count -= sl->expires != 0;
    free_slot(t, s, st, idx);
    SHM_STEP(23);
    st->op.kind = OP_NONE;
}

int shm_table_del(struct shm_table *t, uint32_t s, uint32_t hash, const void *key,
                  uint32_t klen)
{
    uint32_t *link = find_link(t, s, hash, key, klen);
    if (!link)
        return 0;
    unlink_at(t, s, link);
    return 1;
}

void shm_table_visit(struct shm_table *t, uint32_t s, shm_visit_fn fn, void *arg)
{
    uint32_t *b = shm_table_buckets(t, s);
    for (uint32_t i = 0; i < t->nbuckets; i++) {
        uint32_t *link = &b[i];
        while (*link) {
            struct shm_slot *sl = shm_table_slot(t, s, *link);
            if (fn(sl, arg))
                unlink_at(t, s, link); /* *link now names the next slot */
            else
                link = &sl->next;
        }
    }
}

/* Walks every chain; with FIX, cuts a chain at the first invalid link. Marks each
 * reachable slot. Returns the number of bad links found (-1 if not fixing). */
static int walk(struct shm_table *t, uint32_t s, int fix, uint32_t *count, uint32_t *ttl)
{
    struct shm_stripe *st = shm_table_stripe(t, s);
    uint32_t *b = shm_table_buckets(t, s);
    int bad = 0;
    *count = *ttl = 0;
    for (uint32_t i = 1; i <= st->bump; i++)
        shm_table_slot(t, s, i)->klen &= ~MARK;
    for (uint32_t i = 0; i < t->nbuckets; i++) {
        uint32_t *link = &b[i];
        while (*link) {
            uint32_t idx = *link;
            struct shm_slot *sl = idx <= st->bump ? shm_table_slot(t, s, idx) : NULL;
            if (!sl || (sl->klen & MARK) || sl->klen > t->key_max || sl->vlen > t->value_max ||
                bucket_of(t, sl->hash) != i || shm_table_stripe_of(t, sl->hash) != s) {
                bad++;
                if (!fix)
                    break;
                *link = 0;
                break;
            }
            sl->klen |= MARK;
            (*count)++;
            *ttl += sl->expires != 0;
            link = &sl->next;
        }
    }
    return bad;
}

int shm_table_repair(struct shm_table *t, uint32_t s)
{
    struct shm_stripe *st = shm_table_stripe(t, s);
    int rebuilt = 0;
    if (st->bump > t->slots_per_stripe) {
        st->bump = t->slots_per_stripe;
        rebuilt = 1;
    }
    uint32_t count, ttl;
    if (walk(t, s, 1, &count, &ttl) > 0)
        rebuilt = 1;
    /* Every slot handed out but not reachable is free, whatever step it was at. */
    st->free_head = 0;
    for (uint32_t i = st->bump; i >= 1; i--) {
        struct shm_slot *sl = shm_table_slot(t, s, i);
        if (sl->klen & MARK)
            sl->klen &= ~MARK;
        else
            free_slot(t, s, st, i);
    }
    st->count = count;
    st->ttl_count = ttl;
    st->op.kind = OP_NONE;
    return rebuilt;
}

int shm_table_check(const struct shm_table *t, uint32_t s)
{
    struct shm_table *mt = (struct shm_table *)t;
    struct shm_stripe *st = shm_table_stripe(t, s);
    uint32_t count, ttl;
    int bad = walk(mt, s, 0, &count, &ttl);
    uint32_t nfree = 0;
    for (uint32_t i = st->free_head; i && nfree <= st->bump; i = shm_table_slot(t, s, i)->next) {
        struct shm_slot *sl = shm_table_slot(t, s, i);
        if (i > st->bump || (sl->klen & MARK))
            bad++;
        nfree++;
    }
    for (uint32_t i = 1; i <= st->bump; i++)
        shm_table_slot(t, s, i)->klen &= ~MARK;
    if (bad || count != st->count || ttl != st->ttl_count || count + nfree != st->bump ||
        st->op.kind != OP_NONE)
        return -1;
    return 0;
}
