/* Active users in shared memory. One stripe: the master is the only writer and the
 * table is small (butlerd.shm.maxActiveUsers), so readers copy it out under the lock
 * and do the sorting and de-duplication outside it. With butlerd.store.backend =
 * "redis" every call branches to users_redis.c (the flag is set before any fork);
 * the view is built from its entries by the same code. */
#include "users.h"
#include "redis_conn.h"
#include "shm_layout.h"
#include "shm_region.h"
#include "shm_table.h"
#include "users_redis.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static struct shm_table *tbl(void) { return shm_ptr(shm.hdr->users_off); }

/* Builds "host\0dir\0user" into K; returns its length, or 0 if it does not fit. */
static size_t make_key(char k[USERS_KEY_MAX], const char *host, const char *dir,
                       const char *user)
{
    size_t hl = strlen(host), dl = strlen(dir), ul = strlen(user);
    size_t n = hl + dl + ul + 2;
    if (n > USERS_KEY_MAX)
        return 0;
    memcpy(k, host, hl + 1);
    memcpy(k + hl + 1, dir, dl + 1);
    memcpy(k + hl + dl + 2, user, ul);
    return n;
}

static int changed;        /* Redis: the list changed since the last users_poll */
static unsigned gone_later; /* Redis: expired entries seen by users_poll */

void users_configure(const struct cfg *c)
{
    if (redis_in_use())
        users_redis_configure(c);
}

int users_poll(void)
{
    if (!redis_in_use())
        return 0;
    int c = 0;
    gone_later += users_redis_tick(&c);
    c |= changed;
    changed = 0;
    return c;
}

/* New entries go to slots never used before until the table has been full once,
 * and the first write to each page of them is a page fault: with a stream of new
 * users about half of the master's time per datagram went to those faults (one
 * per few slots; bench/README.md, "udp_cost.py"). So the slot area ahead of the
 * next new slot is populated a quarter megabyte at a time with one madvise(2),
 * before the lock is taken (no syscalls under a stripe lock). The master is the
 * only writer of the table, so its unlocked look at the stripe's bump counter is
 * its own last value. Memory still grows with the data, a chunk ahead at most.
 * Even a populated page costs microseconds at its first touch on a virtual machine
 * that shadows the page tables, so the slots are split (USERS_SLOT_HEAD, set up by
 * shm_reset_volatile): 32 slot heads share a page instead of 5 whole slots, and
 * keys longer than the head's share write a tail elsewhere (butlerd(8),
 * PERFORMANCE). */
#define POPULATE_CHUNK (256u * 1024)

static void populate_ahead(struct shm_table *t)
{
    static uint64_t done;   /* offset (from the region's base) populated up to */
    static int unsupported; /* the kernel lacks MADV_POPULATE_WRITE (before 5.14) */
    const struct shm_stripe *st = shm_table_stripe(t, 0);
    if (unsupported || st->free_head || st->bump >= t->slots_per_stripe)
        return; /* a recycled slot, or no fresh one left: nothing to fault */
    uint64_t stride = t->head_size ? t->head_size : t->slot_size; /* the heads only */
    uint64_t need = t->slots_off + ((uint64_t)st->bump + 1) * stride;
    if (need <= done)
        return;
    uint64_t end = t->slots_off + (uint64_t)t->slots_per_stripe * stride;
    uint64_t from = done > t->slots_off ? done : t->slots_off;
    long pg = sysconf(_SC_PAGESIZE);
    from &= ~(uint64_t)(pg - 1);
    uint64_t to = need - 1 + POPULATE_CHUNK;
    to = to > end ? end : to;
    to = (to + (uint64_t)pg - 1) & ~(uint64_t)(pg - 1);
#ifdef MADV_POPULATE_WRITE
    if (madvise(shm.base + from, to - from, MADV_POPULATE_WRITE) == 0) {
        done = to;
        return;
    }
#endif
    unsupported = 1; /* the pages are then faulted one by one, as before */
}

void users_table_init(void)
{
    const struct shm_geometry *g = &shm.hdr->geo;
    uint32_t n = shm_users_slots(g);
    struct shm_table *t = tbl();
    shm_table_init(t, shm.hdr->users_off, 1, n, shm_pow2_at_least(n), USERS_KEY_MAX,
                   sizeof(int64_t));
    struct shm_stripe *st = shm_table_stripe(t, 0);
    if (st->bump) { /* a re-attached region: its chains may use another slot layout */
        memset(st, 0, t->stripe_stride);
        memset(shm.base + t->buckets_off, 0, (size_t)t->nbuckets * sizeof(uint32_t));
        shm_table_init(t, shm.hdr->users_off, 1, n, shm_pow2_at_least(n), USERS_KEY_MAX,
                       sizeof(int64_t));
    }
    shm_table_split(t, USERS_SLOT_HEAD);
}

int users_add(const char *host, const char *dir, const char *user, int64_t now)
{
    char k[USERS_KEY_MAX];
    size_t n = make_key(k, host, dir, user);
    if (!n)
        return USERS_TOO_LONG;
    if (redis_in_use()) {
        users_redis_queue(1, k, n);
        return USERS_QUEUED;
    }
    struct shm_table *t = tbl();
    populate_ahead(t);
    uint32_t h = shm_hash(k, n, shm.hdr->hash_seed);
    uint64_t seq = __atomic_add_fetch(&shm.hdr->seq, 1, __ATOMIC_RELAXED);
    shm_table_lock(t, 0);
    int rc = shm_table_put(t, 0, h, k, (uint32_t)n, &now, sizeof now, 0, seq, 1);
    shm_table_unlock(t, 0);
    return rc == 1 ? USERS_NEW : rc == 0 ? USERS_REFRESHED : USERS_FULL;
}

int users_remove(const char *host, const char *dir, const char *user)
{
    char k[USERS_KEY_MAX];
    size_t n = make_key(k, host, dir, user);
    if (!n)
        return 0;
    if (redis_in_use()) {
        users_redis_queue(-1, k, n);
        return 0;
    }
    struct shm_table *t = tbl();
    uint32_t h = shm_hash(k, n, shm.hdr->hash_seed);
    shm_table_lock(t, 0);
    int rc = shm_table_del(t, 0, h, k, (uint32_t)n);
    shm_table_unlock(t, 0);
    return rc;
}

struct expire_arg {
    int64_t cutoff;
    unsigned n;
};

static int expire_cb(struct shm_slot *sl, void *arg)
{
    struct expire_arg *a = arg;
    int64_t seen;
    shm_slot_read(tbl(), sl, sl->klen, &seen, sizeof seen);
    if (seen >= a->cutoff)
        return 0;
    a->n++;
    return 1;
}

unsigned users_expire(int64_t cutoff)
{
    if (redis_in_use()) {
        int c = 0;
        unsigned gone = users_redis_tick(&c) + gone_later; /* the thread expires them */
        gone_later = 0;
        changed |= c;
        return gone;
    }
    struct expire_arg a = {cutoff, 0};
    struct shm_table *t = tbl();
    shm_table_lock(t, 0);
    shm_table_visit(t, 0, expire_cb, &a);
    shm_table_unlock(t, 0);
    return a.n;
}

/* ------------------------------------------------------------------ reading */

/* The master builds the view ten times a second at most while users come and go,
 * over every entry (butlerd(8), ACTIVE USERS): so it is linear apart from one sort
 * of integers, and makes a few allocations, not a few per entry. */

struct entry {
    const char *host, *dir, *user; /* into the copied key bytes */
    uint64_t seq;
    size_t dlen, ulen;
};

struct copy_arg {
    struct entry *e;
    size_t n, cap;
    struct buf keys; /* key bytes, NUL-terminated, one after another */
    size_t *off;     /* offset of each entry's key in KEYS */
};

static void reserve(struct copy_arg *a, size_t n)
{
    if (n <= a->cap)
        return;
    a->cap = n;
    a->e = xrealloc(a->e, a->cap * sizeof *a->e);
    a->off = xrealloc(a->off, a->cap * sizeof *a->off);
}

static int copy_cb(struct shm_slot *sl, void *arg)
{
    struct copy_arg *a = arg;
    if (a->n == a->cap)
        reserve(a, a->cap ? 2 * a->cap : 64);
    uint32_t klen = sl->klen < USERS_KEY_MAX ? sl->klen : USERS_KEY_MAX;
    if (a->keys.cap - a->keys.len < klen + 3) {
        /* as buf_append would, but with room for the rest of the table's keys */
        a->keys.cap = 2 * (a->keys.cap + klen + 3);
        a->keys.p = xrealloc(a->keys.p, a->keys.cap);
    }
    a->off[a->n] = a->keys.len;
    a->e[a->n].seq = sl->seq;
    shm_slot_read(tbl(), sl, 0, a->keys.p + a->keys.len, klen);
    memcpy(a->keys.p + a->keys.len + klen, "\0\0\0", 3); /* a damaged key still yields three strings */
    a->keys.len += klen + 3;
    a->n++;
    return 0;
}

/* In order of creation; equal seqs (only across Redis instances) by (dir, user). */
static int by_seq(const void *x, const void *y)
{
    const struct entry *a = x, *b = y;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    int c = strcmp(a->dir, b->dir);
    return c ? c : strcmp(a->user, b->user);
}

static uint64_t pair_hash(const struct entry *e)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < e->dlen; i++)
        h = (h ^ (unsigned char)e->dir[i]) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL; /* the separator: no byte of a C string */
    for (size_t i = 0; i < e->ulen; i++)
        h = (h ^ (unsigned char)e->user[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

static int same_pair(const struct entry *a, const struct entry *b)
{
    return a->dlen == b->dlen && a->ulen == b->ulen && !memcmp(a->dir, b->dir, a->dlen) &&
           !memcmp(a->user, b->user, a->ulen);
}

/* Distinct pairs of the N entries (keys in A->keys, seq in A->e), each with its
 * earliest entry, then in order of that entry: the entries in order of creation,
 * each kept unless an earlier one has the same pair (an open-addressing set). */
static void build(struct users_view *v, struct copy_arg *a)
{
    v->nentries = a->n;
    v->hosts = xcalloc(a->n + 1, sizeof *v->hosts);
    for (size_t i = 0; i < a->n; i++) {
        const char *k = a->keys.p + a->off[i];
        struct entry *e = &a->e[i];
        e->host = k;
        e->dir = k + strlen(k) + 1;
        e->dlen = strlen(e->dir);
        e->user = e->dir + e->dlen + 1;
        e->ulen = strlen(e->user);
        v->hosts[i] = (char *)e->host;
    }
    /* With no entry a->e is NULL, which qsort(3) must not get even for 0 elements. */
    size_t m = 0, bytes = 0;
    if (a->n > 0) {
        qsort(a->e, a->n, sizeof *a->e, by_seq);
        size_t cap = 16;
        while (cap < 2 * a->n)
            cap *= 2;
        uint32_t *set = xcalloc(cap, sizeof *set); /* 1-based indexes of kept entries */
        for (size_t i = 0; i < a->n; i++) {
            size_t j = (size_t)pair_hash(&a->e[i]) & (cap - 1);
            while (set[j] && !same_pair(&a->e[set[j] - 1], &a->e[i]))
                j = (j + 1) & (cap - 1);
            if (set[j])
                continue; /* an earlier entry of the same pair */
            a->e[m] = a->e[i];
            set[j] = (uint32_t)++m;
            bytes += a->e[i].dlen + a->e[i].ulen + 2;
        }
        free(set);
    }
    v->nusers = m;
    v->names = xcalloc(m + 1, sizeof *v->names);
    char *p = xmalloc(bytes + 1);
    v->names_mem = p;
    for (size_t i = 0; i < m; i++) { /* "dir/user", all in one block */
        const struct entry *e = &a->e[i];
        v->names[i] = p;
        memcpy(p, e->dir, e->dlen);
        p[e->dlen] = '/';
        memcpy(p + e->dlen + 1, e->user, e->ulen + 1);
        p += e->dlen + e->ulen + 2;
    }
    free(a->e);
    free(a->off);
    v->mem = a->keys.p; /* hosts point into it */
}

static int view_redis(struct users_view *v)
{
    struct users_raw r;
    int rc = users_redis_read(&r);
    struct copy_arg a = {0};
    a.n = r.n;
    a.e = r.n ? xcalloc(r.n, sizeof *a.e) : NULL;
    for (size_t i = 0; i < r.n; i++)
        a.e[i].seq = r.seq[i];
    a.off = r.off;
    a.keys.p = r.keys;
    a.keys.len = r.klen;
    free(r.seq);
    build(v, &a);
    return rc;
}

int users_view(struct users_view *v)
{
    memset(v, 0, sizeof *v);
    if (redis_in_use())
        return view_redis(v);
    struct copy_arg a = {0};
    struct shm_table *t = tbl();
    uint32_t count = __atomic_load_n(&shm_table_stripe(t, 0)->count, __ATOMIC_RELAXED);
    reserve(&a, count + 1); /* outside the lock: a hint, the copy still grows if needed */
    a.keys.cap = ((size_t)count + 1) * 32;
    a.keys.p = xmalloc(a.keys.cap);
    shm_table_lock(t, 0);
    shm_table_visit(t, 0, copy_cb, &a);
    shm_table_unlock(t, 0);
    build(v, &a);
    return 0;
}

void users_view_free(struct users_view *v)
{
    free(v->names_mem);
    free(v->names);
    free(v->hosts);
    free(v->mem);
    memset(v, 0, sizeof *v);
}

static int by_str(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

void users_view_host_counts(const struct users_view *v, const char *const *hosts, size_t n,
                            size_t *counts)
{
    /* The N hosts sorted (there are few), then one binary search per entry, or none
     * when it has the host of the entry before: O(e log n + n log n). */
    const char **sorted = xmalloc((n + 1) * sizeof *sorted);
    size_t *per = xcalloc(n + 1, sizeof *per);
    memcpy(sorted, hosts, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, by_str);
    const char *last = NULL;
    size_t at = n; /* index in SORTED of LAST's host, n = none */
    for (size_t e = 0; e < v->nentries; e++) {
        const char *h = v->hosts[e];
        if (!last || strcmp(h, last)) {
            size_t lo = 0, hi = n;
            while (lo < hi) { /* first host >= h */
                size_t mid = (lo + hi) / 2;
                if (strcmp(sorted[mid], h) < 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            at = lo < n && !strcmp(sorted[lo], h) ? lo : n;
            last = h;
        }
        per[at]++;
    }
    for (size_t i = 0; i < n; i++) { /* a host given twice gets its count twice */
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (strcmp(sorted[mid], hosts[i]) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        counts[i] = per[lo];
    }
    free(per);
    free(sorted);
}

json_object *users_view_json(const struct users_view *v)
{
    json_object *a = json_object_new_array_ext((int)v->nusers);
    for (size_t i = 0; i < v->nusers; i++)
        json_object_array_add(a, json_object_new_string(v->names[i]));
    return a;
}

char *users_view_json_text(const struct users_view *v, size_t *len)
{
    size_t cap = 3;
    for (size_t i = 0; i < v->nusers; i++)
        cap += 6 * strlen(v->names[i]) + 3; /* the worst case: every byte as \u00XX */
    char *out = xmalloc(cap), *p = out;
    static const char hex[] = "0123456789abcdef";
    *p++ = '[';
    for (size_t i = 0; i < v->nusers; i++) {
        if (i)
            *p++ = ',';
        *p++ = '"';
        for (const unsigned char *c = (const unsigned char *)v->names[i]; *c; c++) {
            const char *esc = *c == '"' ? "\\\"" : *c == '\\' ? "\\\\" : *c == '\b' ? "\\b"
                            : *c == '\f' ? "\\f" : *c == '\n' ? "\\n" : *c == '\r' ? "\\r"
                            : *c == '\t' ? "\\t" : NULL;
            if (esc) {
                memcpy(p, esc, 2);
                p += 2;
            } else if (*c < 0x20) {
                memcpy(p, "\\u00", 4);
                p[4] = hex[*c >> 4];
                p[5] = hex[*c & 15];
                p += 6;
            } else {
                *p++ = (char)*c;
            }
        }
        *p++ = '"';
    }
    *p++ = ']';
    *p = '\0';
    *len = (size_t)(p - out);
    return out;
}
