/* The key-value store on shared memory.
 *
 * Keys live in the striped table under a composite key: the 8-byte id of their
 * namespace followed by the key name. Namespaces live in a small table with its own
 * robust mutex, taken before any stripe lock by every operation that changes counts
 * (writes, deletes, the sweep), so per-namespace and total key counts stay exact.
 * If a process dies holding the namespace lock, the repair recounts every stripe
 * and drops keys whose namespace no longer exists (an interrupted namespace delete).
 * Nothing allocates, logs or makes a system call while a lock is held: buffers are
 * sized from the geometry beforehand. */
#include "kv.h"
#include "kv_ns.h"
#include "log.h"
#include "shm_region.h"
#include "shm_table.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int max_per_ns = 1000;

void kv_set_limits(int n) { max_per_ns = n; }

int64_t kv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct kv_nstable *nst(void) { return shm_ptr(shm.hdr->kv_ns_off); }
static struct shm_table *tbl(void) { return shm_ptr(shm.hdr->kv_table_off); }

static struct kv_ns *rec(struct kv_nstable *n, uint32_t i) { return kv_ns_rec(n, i); }

static uint64_t next_seq(void)
{
    return __atomic_add_fetch(&shm.hdr->seq, 1, __ATOMIC_RELAXED);
}

static void changed(void)
{
    __atomic_add_fetch(&shm.hdr->mutations, 1, __ATOMIC_RELAXED);
}

uint64_t kv_mutations(void)
{
    return __atomic_load_n(&shm.hdr->mutations, __ATOMIC_RELAXED);
}

static int find_ns(struct kv_nstable *n, const char *name, size_t len)
{
    for (uint32_t i = 0; i < n->hwm; i++) {
        struct kv_ns *r = rec(n, i);
        if (r->used && r->name_len == len && memcmp(r->name, name, len) == 0)
            return (int)i;
    }
    return -1;
}

static struct kv_ns *find_ns_id(struct kv_nstable *n, uint64_t id)
{
    for (uint32_t i = 0; i < n->hwm; i++) {
        struct kv_ns *r = rec(n, i);
        if (r->used && r->id == id)
            return r;
    }
    return NULL;
}

static uint64_t slot_ns_id(const struct shm_slot *sl)
{
    uint64_t id;
    memcpy(&id, sl->data, sizeof id);
    return id;
}

/* ------------------------------------------------------ namespace-lock repair */

struct recount {
    struct kv_nstable *n;
    uint32_t total;
};

static int recount_cb(struct shm_slot *sl, void *arg)
{
    struct recount *rc = arg;
    struct kv_ns *r = sl->klen >= 8 ? find_ns_id(rc->n, slot_ns_id(sl)) : NULL;
    if (!r)
        return 1; /* orphan of an interrupted namespace delete */
    r->count++;
    rc->total++;
    return 0;
}

static int ns_repair(void *arg)
{
    struct kv_nstable *n = arg;
    struct shm_table *t = tbl();
    int rebuilt = 0;
    uint32_t hwm = 0;
    for (uint32_t i = 0; i < n->max_ns; i++) {
        struct kv_ns *r = rec(n, i);
        if (r->used > 1 || r->name_len > t->key_max - 8) {
            r->used = 0;
            rebuilt = 1;
        }
        if (r->used)
            hwm = i + 1;
        r->count = 0;
    }
    if (hwm > n->hwm)
        rebuilt = 1;
    n->hwm = hwm > n->hwm ? hwm : n->hwm;
    struct recount rc = {n, 0};
    for (uint32_t s = 0; s < t->nstripes; s++) {
        shm_table_lock(t, s);
        shm_table_visit(t, s, recount_cb, &rc);
        shm_table_unlock(t, s);
    }
    n->total = rc.total;
    n->op = 0;
    return rebuilt;
}

static struct kv_nstable *lock_ns(void)
{
    struct kv_nstable *n = nst();
    shm_lock(&n->lock, ns_repair, n);
    return n;
}

static void unlock_ns(struct kv_nstable *n)
{
    shm_unlock(&n->lock);
    shm_log_repairs();
}

/* --------------------------------------------------------------- reclaiming */

struct sweep {
    struct kv_nstable *n;
    int64_t now;
    unsigned removed;
};

static int expired_cb(struct shm_slot *sl, void *arg)
{
    struct sweep *sw = arg;
    if (!sl->expires || sl->expires > sw->now)
        return 0;
    struct kv_ns *r = find_ns_id(sw->n, slot_ns_id(sl));
    if (r && r->count)
        r->count--;
    if (sw->n->total)
        sw->n->total--;
    sw->removed++;
    return 1;
}

/* With the namespace lock held. */
static unsigned reclaim_locked(struct kv_nstable *n, int64_t now)
{
    struct shm_table *t = tbl();
    struct sweep sw = {n, now, 0};
    for (uint32_t s = 0; s < t->nstripes; s++) {
        if (!shm_table_stripe(t, s)->ttl_count)
            continue;
        shm_table_lock(t, s);
        shm_table_visit(t, s, expired_cb, &sw);
        shm_table_unlock(t, s);
    }
    if (sw.removed)
        changed();
    return sw.removed;
}

unsigned kv_sweep(void)
{
    int64_t now = kv_now_ms();
    struct kv_nstable *n = lock_ns();
    unsigned r = reclaim_locked(n, now);
    unlock_ns(n);
    return r;
}

/* --------------------------------------------------------------- operations */

static char *compose(uint64_t id, const char *key, size_t klen, size_t *len)
{
    char *k = xmalloc(8 + klen);
    memcpy(k, &id, 8);
    memcpy(k + 8, key, klen);
    *len = 8 + klen;
    return k;
}

static int expired(const struct shm_slot *sl, int64_t now)
{
    return sl->expires && sl->expires <= now;
}

static int count_used(struct kv_nstable *n)
{
    uint32_t c = 0;
    for (uint32_t i = 0; i < n->hwm; i++)
        c += rec(n, i)->used != 0;
    return (int)c;
}

/* With the namespace lock held: writes the key whose composite form (namespace id,
 * then name) is CK into namespace record R, with an absolute expiry (0 = none).
 * KV_OK, or the limit it breaks. */
static int put_locked(struct kv_nstable *n, struct kv_ns *r, const char *ck, size_t cklen,
                      const char *val, size_t vlen, int64_t expires, int64_t now)
{
    struct shm_table *t = tbl();
    uint32_t h = shm_hash(ck, cklen, shm.hdr->hash_seed);
    uint32_t s = shm_table_stripe_of(t, h);
    for (int attempt = 0;; attempt++) {
        shm_table_lock(t, s);
        struct shm_slot *sl = shm_table_find(t, s, h, ck, (uint32_t)cklen);
        if (sl) {
            /* An expired key written again counts as new: it moves to the end. */
            int keep = !expired(sl, now);
            shm_table_put(t, s, h, ck, (uint32_t)cklen, val, (uint32_t)vlen, expires,
                          next_seq(), keep);
            shm_table_unlock(t, s);
            changed();
            return KV_OK;
        }
        int full = r->count >= (uint32_t)max_per_ns ? KV_FULL_NS
                   : n->total >= shm.hdr->geo.kv_max_keys || shm_table_room(t, s) < 2
                       ? KV_FULL_KEYS
                       : KV_OK;
        if (full == KV_OK) {
            shm_table_put(t, s, h, ck, (uint32_t)cklen, val, (uint32_t)vlen, expires,
                          next_seq(), 0);
            SHM_STEP(32);
            r->count++;
            n->total++;
            shm_table_unlock(t, s);
            changed();
            return KV_OK;
        }
        shm_table_unlock(t, s);
        /* Expired keys never count towards a limit: reclaim them, then try once more. */
        if (attempt > 0 || !reclaim_locked(n, now))
            return full;
    }
}

/* Creates or overwrites KEY in NS with an absolute expiry (0 = none). KEY NULL only
 * makes sure the namespace exists. */
static int put_abs(const char *ns, size_t nslen, const char *key, size_t klen, const char *val,
                   size_t vlen, int64_t expires)
{
    int64_t now = kv_now_ms();
    char *ck = key ? xmalloc(8 + klen) : NULL; /* no allocation under the lock */
    int rc = KV_OK;
    struct kv_nstable *n = lock_ns();
    int i = find_ns(n, ns, nslen);
    int created_ns = 0;
    if (i < 0) {
        if (count_used(n) >= (int)n->max_ns) {
            rc = KV_FULL_NSTAB;
            goto out;
        }
        if (key && n->total >= shm.hdr->geo.kv_max_keys && !reclaim_locked(n, now)) {
            rc = KV_FULL_KEYS;
            goto out;
        }
        for (i = 0; i < (int)n->hwm && rec(n, (uint32_t)i)->used; i++) {
        }
        struct kv_ns *r = rec(n, (uint32_t)i);
        if ((uint32_t)i == n->hwm)
            n->hwm++; /* before publishing: a crash leaves at most an unused record */
        r->id = n->next_id++;
        r->seq = next_seq();
        r->count = 0;
        r->name_len = (uint32_t)nslen;
        memcpy(r->name, ns, nslen);
        SHM_STEP(31);
        __atomic_store_n(&r->used, 1, __ATOMIC_RELEASE);
        created_ns = 1;
        changed();
    }
    if (!key)
        goto out;
    struct kv_ns *r = rec(n, (uint32_t)i);
    memcpy(ck, &r->id, 8);
    memcpy(ck + 8, key, klen);
    rc = put_locked(n, r, ck, 8 + klen, val, vlen, expires, now);
    if (rc != KV_OK && created_ns) /* a failed write changes nothing */
        __atomic_store_n(&r->used, 0, __ATOMIC_RELEASE);
out:
    unlock_ns(n);
    free(ck);
    return rc;
}

int kv_put(const char *ns, size_t nslen, const char *key, size_t klen, const char *val,
           size_t vlen, int64_t ttl_ms)
{
    return put_abs(ns, nslen, key, klen, val, vlen, ttl_ms > 0 ? kv_now_ms() + ttl_ms : 0);
}

/* Looks up NS's id; returns 0 if absent. */
static uint64_t ns_id(const char *ns, size_t nslen)
{
    struct kv_nstable *n = lock_ns();
    int i = find_ns(n, ns, nslen);
    uint64_t id = i < 0 ? 0 : rec(n, (uint32_t)i)->id;
    unlock_ns(n);
    return id;
}

int kv_ns_exists(const char *ns, size_t nslen) { return ns_id(ns, nslen) != 0; }

int kv_get(const char *ns, size_t nslen, const char *key, size_t klen, struct kv_value *out)
{
    struct shm_table *t = tbl();
    uint64_t id = ns_id(ns, nslen);
    if (!id)
        return KV_NO_NS;
    size_t cklen;
    char *ck = compose(id, key, klen, &cklen);
    char *buf = xmalloc(t->value_max + 1);
    int64_t now = kv_now_ms();
    uint32_t h = shm_hash(ck, cklen, shm.hdr->hash_seed);
    uint32_t s = shm_table_stripe_of(t, h);
    int rc = KV_NO_KEY;
    shm_table_lock(t, s);
    struct shm_slot *sl = shm_table_find(t, s, h, ck, (uint32_t)cklen);
    if (sl && !expired(sl, now)) {
        memcpy(buf, sl->data + sl->klen, sl->vlen);
        buf[sl->vlen] = '\0';
        out->len = sl->vlen;
        out->ttl_left = sl->expires ? sl->expires - now : -1;
        rc = KV_OK;
    }
    shm_table_unlock(t, s);
    shm_log_repairs();
    free(ck);
    if (rc == KV_OK)
        out->value = buf;
    else
        free(buf);
    return rc;
}

int kv_del(const char *ns, size_t nslen, const char *key, size_t klen)
{
    struct shm_table *t = tbl();
    int64_t now = kv_now_ms();
    int rc = KV_NO_KEY;
    char *ck = NULL;
    struct kv_nstable *n = lock_ns();
    int i = find_ns(n, ns, nslen);
    if (i < 0) {
        rc = KV_NO_NS;
        goto out;
    }
    struct kv_ns *r = rec(n, (uint32_t)i);
    size_t cklen;
    ck = compose(r->id, key, klen, &cklen);
    uint32_t h = shm_hash(ck, cklen, shm.hdr->hash_seed);
    uint32_t s = shm_table_stripe_of(t, h);
    shm_table_lock(t, s);
    struct shm_slot *sl = shm_table_find(t, s, h, ck, (uint32_t)cklen);
    if (sl) {
        /* An expired key is removed too, but reported as not found. */
        rc = expired(sl, now) ? KV_NO_KEY : KV_OK;
        shm_table_del(t, s, h, ck, (uint32_t)cklen);
        SHM_STEP(33);
        r->count--;
        n->total--;
    }
    shm_table_unlock(t, s);
    if (sl)
        changed();
out:
    unlock_ns(n);
    free(ck);
    return rc;
}

struct del_ns {
    uint64_t id;
    uint32_t removed;
};

static int del_ns_cb(struct shm_slot *sl, void *arg)
{
    struct del_ns *d = arg;
    if (slot_ns_id(sl) != d->id)
        return 0;
    d->removed++;
    return 1;
}

int kv_del_ns(const char *ns, size_t nslen)
{
    struct shm_table *t = tbl();
    struct kv_nstable *n = lock_ns();
    int i = find_ns(n, ns, nslen);
    if (i < 0) {
        unlock_ns(n);
        return KV_NO_NS;
    }
    struct kv_ns *r = rec(n, (uint32_t)i);
    struct del_ns d = {r->id, 0};
    n->op = 1;
    __atomic_store_n(&r->used, 0, __ATOMIC_RELEASE);
    SHM_STEP(34);
    for (uint32_t s = 0; s < t->nstripes; s++) {
        shm_table_lock(t, s);
        shm_table_visit(t, s, del_ns_cb, &d);
        shm_table_unlock(t, s);
    }
    n->total -= d.removed;
    n->op = 0;
    changed();
    unlock_ns(n);
    return KV_OK;
}

/* -------------------------------------------------------------------- lists */

void kv_list_free(struct kv_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->s[i]);
    free(l->s);
    free(l->len);
    memset(l, 0, sizeof *l);
}

struct item {
    uint64_t seq;
    uint64_t id;
    int64_t expires;
    char *key;
    size_t klen;
    char *val;
    size_t vlen;
};

static int by_seq(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Copies the live namespaces (id, seq, name) in creation order. */
static size_t ns_snapshot(struct item **out)
{
    struct kv_nstable *n = nst();
    uint32_t keymax = tbl()->key_max - 8;
    uint32_t cap = __atomic_load_n(&n->hwm, __ATOMIC_RELAXED) + 8;
    struct item *it;
    char *names;
    size_t cnt;
    for (;;) { /* buffers sized before locking; retried if the table grew meanwhile */
        it = xcalloc(cap, sizeof *it);
        names = xmalloc((size_t)cap * keymax + 1);
        cnt = 0;
        n = lock_ns();
        if (n->hwm <= cap)
            break;
        cap = n->hwm + 8;
        unlock_ns(n);
        free(it);
        free(names);
    }
    for (uint32_t i = 0; i < n->hwm; i++) {
        struct kv_ns *r = rec(n, i);
        if (!r->used)
            continue;
        it[cnt].seq = r->seq;
        it[cnt].id = r->id;
        it[cnt].key = names + (size_t)cnt * keymax;
        it[cnt].klen = r->name_len;
        memcpy(it[cnt].key, r->name, r->name_len);
        cnt++;
    }
    unlock_ns(n);
    for (size_t i = 0; i < cnt; i++) { /* own copies, so the caller can free each */
        char *k = xmalloc(it[i].klen + 1);
        memcpy(k, it[i].key, it[i].klen);
        k[it[i].klen] = '\0';
        it[i].key = k;
    }
    free(names);
    qsort(it, cnt, sizeof *it, by_seq);
    *out = it;
    return cnt;
}

/* Moves the names of N items into OUT and frees the item array. */
static void to_list(struct item *it, size_t n, struct kv_list *out)
{
    out->n = n;
    out->s = xcalloc(n + 1, sizeof *out->s);
    out->len = xcalloc(n + 1, sizeof *out->len);
    for (size_t i = 0; i < n; i++) {
        out->s[i] = it[i].key;
        out->len[i] = it[i].klen;
    }
    free(it);
}

int kv_namespaces(struct kv_list *out)
{
    struct item *it;
    size_t n = ns_snapshot(&it);
    to_list(it, n, out);
    return KV_OK;
}

struct collect {
    const struct shm_table *t;
    uint64_t id;
    int with_values;
    int64_t now;
    unsigned char *buf;
    size_t got;
};

static int collect_cb(struct shm_slot *sl, void *arg)
{
    struct collect *c = arg;
    if (expired(sl, c->now) || (c->id && slot_ns_id(sl) != c->id))
        return 0;
    size_t sz = sizeof *sl + sl->klen + (c->with_values ? sl->vlen : 0);
    memcpy(c->buf + c->got * c->t->slot_size, sl, sz);
    c->got++;
    return 0;
}

/* Collects the live keys of namespace ID (all namespaces if ID is 0), with values if
 * WITH_VALUES, stripe by stripe through a buffer filled under the stripe lock. */
static size_t collect(uint64_t id, int with_values, struct item **out)
{
    struct shm_table *t = tbl();
    size_t cap = 64, n = 0;
    struct item *items = xmalloc(cap * sizeof *items);
    struct collect c = {t, id, with_values, kv_now_ms(),
                        xmalloc((size_t)t->slots_per_stripe * t->slot_size), 0};
    for (uint32_t s = 0; s < t->nstripes; s++) {
        c.got = 0;
        shm_table_lock(t, s);
        shm_table_visit(t, s, collect_cb, &c);
        shm_table_unlock(t, s);
        for (size_t g = 0; g < c.got; g++) {
            struct shm_slot *sl = (struct shm_slot *)(c.buf + g * t->slot_size);
            if (n == cap)
                items = xrealloc(items, (cap *= 2) * sizeof *items);
            struct item *it = &items[n++];
            it->seq = sl->seq;
            it->id = slot_ns_id(sl);
            it->expires = sl->expires;
            it->klen = sl->klen - 8;
            it->key = xmalloc(it->klen + 1);
            memcpy(it->key, sl->data + 8, it->klen);
            it->key[it->klen] = '\0';
            it->val = NULL;
            it->vlen = 0;
            if (with_values) {
                it->vlen = sl->vlen;
                it->val = xmalloc(sl->vlen + 1);
                memcpy(it->val, sl->data + sl->klen, sl->vlen);
                it->val[sl->vlen] = '\0';
            }
        }
    }
    shm_log_repairs();
    free(c.buf);
    qsort(items, n, sizeof *items, by_seq);
    *out = items;
    return n;
}

int kv_keys(const char *ns, size_t nslen, struct kv_list *out)
{
    uint64_t id = ns_id(ns, nslen);
    if (!id)
        return KV_NO_NS;
    struct item *it;
    size_t n = collect(id, 0, &it);
    to_list(it, n, out);
    return KV_OK;
}

/* ------------------------------------------------------------- key pages */

/* butlerd(8), KEY-VALUE STORE, "Long key lists": a page is a run of a namespace's
 * live keys in creation order after the cursor, picked in one pass over the
 * stripes into at most MAX fixed cells, so the memory of a listing does not grow
 * with the namespace. The pass keeps every candidate below a limit; when the cells
 * are full, the larger half is dropped and the limit comes down to the smallest
 * creation number dropped, so the page holds exactly the keys between the cursor
 * and the limit: between MAX/2 and MAX of them, or the rest. A candidate costs O(1)
 * (a heap would cost O(log MAX) cache misses each, most of a page's time). */
#define PAGE_BYTES (16u << 20)
#define PAGE_MAX 262144u

struct pick {
    uint64_t seq;
    uint32_t klen, cell;
};

struct page_scan {
    uint64_t id, after, limit; /* candidates: after < seq < limit */
    int64_t now;
    struct pick *picks;
    uint32_t *free_cells;
    size_t n, max, nfree;
    char *cells;
    size_t cell_size;
};

/* Moves the K smallest picks of P[0..N) to the front (quickselect). */
static void select_smallest(struct pick *p, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint64_t piv = p[lo + (hi - lo) / 2].seq;
        size_t i = lo, j = hi;
        while (i <= j) {
            while (p[i].seq < piv)
                i++;
            while (p[j].seq > piv)
                j--;
            if (i <= j) {
                struct pick t = p[i];
                p[i++] = p[j];
                p[j] = t;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return;
    }
}

static void halve(struct page_scan *c)
{
    size_t keep = c->max / 2;
    select_smallest(c->picks, c->n, keep);
    uint64_t lim = c->picks[keep].seq;
    for (size_t i = keep; i < c->n; i++) {
        if (c->picks[i].seq < lim)
            lim = c->picks[i].seq;
        c->free_cells[c->nfree++] = c->picks[i].cell;
    }
    c->n = keep;
    c->limit = lim;
}

static int page_cb(struct shm_slot *sl, void *arg)
{
    struct page_scan *c = arg;
    if (sl->seq <= c->after || sl->seq >= c->limit || expired(sl, c->now) ||
        slot_ns_id(sl) != c->id)
        return 0;
    if (c->n == c->max) {
        halve(c);
        if (sl->seq >= c->limit)
            return 0;
    }
    struct pick *k = &c->picks[c->n++];
    k->seq = sl->seq;
    k->klen = sl->klen - 8;
    k->cell = c->free_cells[--c->nfree];
    memcpy(c->cells + (size_t)k->cell * c->cell_size, sl->data + 8, k->klen);
    return 0;
}

static int pick_by_seq(const void *a, const void *b)
{
    const struct pick *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void kv_page_free(struct kv_page *p)
{
    free(p->s);
    free(p->len);
    free(p->priv);
    free(p->bytes);
    memset(p, 0, sizeof *p);
}

int kv_keys_page(const char *ns, size_t nslen, struct kv_page *p)
{
    struct shm_table *t = tbl();
    if (!p->id && !(p->id = ns_id(ns, nslen)))
        return KV_NO_NS;
    size_t cell = t->key_max - 8;
    size_t max = PAGE_BYTES / (cell + sizeof(struct pick) + sizeof(uint32_t));
    max = max < 256 ? 256 : max > PAGE_MAX ? PAGE_MAX : max;
    if (!p->cap) {
        p->cap = max;
        p->s = xcalloc(max, sizeof *p->s);
        p->len = xcalloc(max, sizeof *p->len);
        p->priv = xcalloc(max, sizeof(struct pick) + sizeof(uint32_t));
        p->bytes = xmalloc(max * cell + 1);
    }
    struct page_scan c = {p->id, p->after, UINT64_MAX, kv_now_ms(), p->priv, NULL, 0,
                          p->cap, 0, p->bytes, cell};
    c.free_cells = (uint32_t *)(c.picks + p->cap);
    for (size_t i = 0; i < p->cap; i++)
        c.free_cells[c.nfree++] = (uint32_t)(p->cap - 1 - i);
    for (uint32_t s = 0; s < t->nstripes; s++) {
        shm_table_lock(t, s);
        shm_table_visit(t, s, page_cb, &c);
        shm_table_unlock(t, s);
    }
    shm_log_repairs();
    qsort(c.picks, c.n, sizeof *c.picks, pick_by_seq);
    for (size_t i = 0; i < c.n; i++) {
        p->s[i] = c.cells + (size_t)c.picks[i].cell * cell;
        p->len[i] = c.picks[i].klen;
    }
    p->n = c.n;
    if (c.n)
        p->after = c.picks[c.n - 1].seq;
    return KV_OK;
}

/* ------------------------------------------------------- dump and restore */

struct dkey {
    uint64_t seq;
    uint32_t rank; /* of its namespace in creation order */
    uint32_t klen, vlen;
    int64_t expires;
    size_t off; /* key then value in the byte buffer */
};

struct idrank {
    uint64_t id;
    uint32_t rank;
};

static int by_id(const void *a, const void *b)
{
    const struct idrank *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int by_rank_seq(const void *a, const void *b)
{
    const struct dkey *x = a, *y = b;
    if (x->rank != y->rank)
        return x->rank < y->rank ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void kv_dump(struct kv_dump *d)
{
    struct shm_table *t = tbl();
    struct item *nss;
    memset(d, 0, sizeof *d);
    size_t nns = ns_snapshot(&nss);
    struct idrank *ids = xcalloc(nns + 1, sizeof *ids);
    for (size_t i = 0; i < nns; i++)
        ids[i] = (struct idrank){nss[i].id, (uint32_t)i};
    qsort(ids, nns, sizeof *ids, by_id);

    /* Live keys stripe by stripe, copied out under the stripe lock as kv_keys does;
     * keys and values go to one growing buffer rather than two allocations each. */
    size_t cap = 1024, n = 0, bcap = 65536, blen = 0;
    struct dkey *dk = xmalloc(cap * sizeof *dk);
    char *bytes = xmalloc(bcap);
    struct collect c = {t, 0, 1, kv_now_ms(),
                        xmalloc((size_t)t->slots_per_stripe * t->slot_size), 0};
    for (uint32_t s = 0; s < t->nstripes; s++) {
        c.got = 0;
        shm_table_lock(t, s);
        shm_table_visit(t, s, collect_cb, &c);
        shm_table_unlock(t, s);
        for (size_t g = 0; g < c.got; g++) {
            struct shm_slot *sl = (struct shm_slot *)(c.buf + g * t->slot_size);
            struct idrank key = {slot_ns_id(sl), 0};
            const struct idrank *r = bsearch(&key, ids, nns, sizeof *ids, by_id);
            if (!r) /* its namespace was created or deleted since the list was taken */
                continue;
            if (n == cap)
                dk = xrealloc(dk, (cap *= 2) * sizeof *dk);
            size_t sz = (size_t)(sl->klen - 8) + sl->vlen;
            while (blen + sz > bcap)
                bytes = xrealloc(bytes, bcap *= 2);
            dk[n++] = (struct dkey){sl->seq, r->rank, sl->klen - 8, sl->vlen, sl->expires, blen};
            memcpy(bytes + blen, sl->data + 8, sz);
            blen += sz;
        }
    }
    shm_log_repairs();
    free(c.buf);
    free(ids);
    qsort(dk, n, sizeof *dk, by_rank_seq);

    d->nns = nns;
    d->ns = xcalloc(nns + 1, sizeof *d->ns);
    d->nkeys = n;
    d->keys = xcalloc(n + 1, sizeof *d->keys);
    d->bytes = bytes;
    d->names = nss;
    for (size_t i = 0; i < nns; i++) {
        d->ns[i].name = nss[i].key;
        d->ns[i].len = (uint32_t)nss[i].klen;
    }
    for (size_t k = n; k-- > 0;) { /* first = the lowest index of the rank */
        d->ns[dk[k].rank].first = k;
        d->ns[dk[k].rank].count++;
    }
    for (size_t k = 0; k < n; k++)
        d->keys[k] = (struct kv_dump_key){bytes + dk[k].off, bytes + dk[k].off + dk[k].klen,
                                          dk[k].klen, dk[k].vlen, dk[k].expires};
    free(dk);
}

void kv_dump_free(struct kv_dump *d)
{
    struct item *nss = d->names;
    for (size_t i = 0; i < d->nns; i++)
        free(nss[i].key);
    free(nss);
    free(d->ns);
    free(d->keys);
    free(d->bytes);
    memset(d, 0, sizeof *d);
}

int kv_restore(const char *ns, size_t nslen, const char *key, size_t klen, const char *val,
               size_t vlen, int64_t expires)
{
    return put_abs(ns, nslen, key, klen, val, vlen, expires);
}

size_t kv_restore_keys(const char *ns, size_t nslen, const struct kv_dump_key *keys, size_t nk)
{
    struct shm_table *t = tbl();
    uint32_t *hash = xmalloc((nk + 1) * sizeof *hash), *order = xmalloc((nk + 1) * sizeof *order);
    uint32_t *first = xcalloc(t->nstripes + 1, sizeof *first);
    char *ck = xmalloc(t->key_max);
    int64_t now = kv_now_ms();
    size_t done = 0;
    struct kv_nstable *n = lock_ns();
    int i = find_ns(n, ns, nslen);
    if (i < 0)
        goto out;
    struct kv_ns *r = rec(n, (uint32_t)i);
    memcpy(ck, &r->id, 8);
    /* Keys grouped by stripe, in file order within each (a counting sort), so each
     * stripe's lock is taken once and its buckets and slots are written in a run
     * rather than in a random order over the whole table. */
    for (size_t k = 0; k < nk; k++) {
        /* a key too long is skipped below; its hash only has to be some stripe's */
        size_t kl = keys[k].klen <= t->key_max - 8 ? keys[k].klen : 0;
        memcpy(ck + 8, keys[k].key, kl);
        hash[k] = shm_hash(ck, 8 + kl, shm.hdr->hash_seed);
        first[shm_table_stripe_of(t, hash[k]) + 1]++;
    }
    for (uint32_t s = 0; s < t->nstripes; s++)
        first[s + 1] += first[s];
    for (size_t k = 0; k < nk; k++)
        order[first[shm_table_stripe_of(t, hash[k])]++] = (uint32_t)k;
    /* Creation order is file order: the batch's sequence numbers are taken at once. */
    uint64_t seq0 = __atomic_fetch_add(&shm.hdr->seq, (uint64_t)nk, __ATOMIC_RELAXED) + 1;
    for (size_t a = 0; a < nk;) {
        uint32_t s = shm_table_stripe_of(t, hash[order[a]]);
        shm_table_lock(t, s);
        for (; a < nk && shm_table_stripe_of(t, hash[order[a]]) == s; a++) {
            const struct kv_dump_key *e = &keys[order[a]];
            uint32_t cklen = 8 + e->klen, h = hash[order[a]];
            if (e->klen > t->key_max - 8 || e->vlen > t->value_max)
                continue;
            memcpy(ck + 8, e->key, e->klen);
            struct shm_slot *sl = shm_table_find(t, s, h, ck, cklen);
            if (sl) { /* written twice in the file: the later value wins */
                shm_table_put(t, s, h, ck, cklen, e->value, e->vlen, e->expires,
                              seq0 + order[a], !expired(sl, now));
                done++;
            } else if (r->count < (uint32_t)max_per_ns &&
                       n->total < shm.hdr->geo.kv_max_keys && shm_table_room(t, s) >= 2) {
                shm_table_put(t, s, h, ck, cklen, e->value, e->vlen, e->expires,
                              seq0 + order[a], 0);
                SHM_STEP(32);
                r->count++;
                n->total++;
                done++;
            }
        }
        shm_table_unlock(t, s);
    }
    if (done)
        changed();
out:
    unlock_ns(n);
    free(ck);
    free(first);
    free(order);
    free(hash);
    return done;
}

/* ------------------------------------------------------------ pre-faulting */

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; older kernels answer EINVAL: no harm */
#endif

struct kv_prefault {
    pthread_t thread;
    uint32_t slots; /* per stripe */
    int stripes;    /* also the stripe headers and buckets */
};

static void populate(void *from, void *to)
{
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)from + pg - 1) & ~(pg - 1), b = (uintptr_t)to & ~(pg - 1);
    if (b > a)
        madvise((void *)a, b - a, MADV_POPULATE_WRITE);
}

static void *prefault_main(void *arg)
{
    struct kv_prefault *p = arg;
    struct shm_table *t = tbl();
    if (p->stripes)
        populate(shm.base + t->stripes_off, shm.base + t->slots_off);
    /* slots 1..p->slots of every stripe are one run (shm_table.h) */
    populate(shm_table_slot(t, 0, 1),
             (unsigned char *)shm_table_slot(t, t->nstripes - 1, p->slots) + t->slot_size);
    return NULL;
}

struct kv_prefault *kv_prefault_start(size_t nkeys)
{
    struct shm_table *t = tbl();
    double avg = (double)nkeys / t->nstripes;
    double sure = avg - 3 * sqrt(avg); /* a stripe gets fewer keys once in 700 */
    long pg = sysconf(_SC_PAGESIZE);
    if (sure * t->slot_size < 4.0 * pg)
        return NULL;
    struct kv_prefault *p = xcalloc(1, sizeof *p);
    p->slots = sure < t->slots_per_stripe - 1 ? (uint32_t)sure : t->slots_per_stripe - 1;
    /* the headers and buckets: when there are keys enough for most of their pages */
    p->stripes = (double)nkeys >= 8.0 * ((double)(t->slots_off - t->stripes_off) / pg + 1);
    if (pthread_create(&p->thread, NULL, prefault_main, p) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

void kv_prefault_end(struct kv_prefault *p)
{
    if (!p)
        return;
    pthread_join(p->thread, NULL);
    free(p);
}

size_t kv_key_max(void) { return tbl()->key_max - 8; }
size_t kv_value_max(void) { return tbl()->value_max; }

struct check {
    struct kv_nstable *n;
    uint32_t *counts; /* per namespace record */
    uint32_t total;
    int bad;
};

static int check_cb(struct shm_slot *sl, void *arg)
{
    struct check *c = arg;
    struct kv_ns *r = find_ns_id(c->n, slot_ns_id(sl));
    if (!r)
        c->bad++;
    else
        c->counts[((unsigned char *)r - (unsigned char *)rec(c->n, 0)) / c->n->rec_size]++;
    c->total++;
    return 0;
}

int kv_check(void)
{
    struct shm_table *t = tbl();
    struct check c = {nst(), xcalloc(nst()->max_ns, sizeof(uint32_t)), 0, 0};
    struct kv_nstable *n = lock_ns();
    for (uint32_t s = 0; s < t->nstripes; s++) {
        shm_table_lock(t, s);
        if (shm_table_check(t, s) != 0)
            c.bad++;
        shm_table_visit(t, s, check_cb, &c);
        shm_table_unlock(t, s);
    }
    uint32_t sum = 0;
    for (uint32_t i = 0; i < n->max_ns; i++)
        if (rec(n, i)->used) {
            sum += rec(n, i)->count;
            if (rec(n, i)->count != c.counts[i])
                c.bad++;
        }
    if (sum != n->total || c.total != n->total || n->op)
        c.bad++;
    unlock_ns(n);
    free(c.counts);
    return c.bad ? -1 : 0;
}

struct usage {
    int64_t now;
    uint64_t keys, bytes;
};

static int usage_cb(struct shm_slot *sl, void *arg)
{
    struct usage *u = arg;
    if (!expired(sl, u->now)) {
        u->keys++;
        u->bytes += (uint64_t)(sl->klen - 8) + sl->vlen;
    }
    return 0;
}

void kv_usage(uint64_t *keys, uint64_t *namespaces, uint64_t *bytes)
{
    struct shm_table *t = tbl();
    struct usage u = {kv_now_ms(), 0, 0};
    for (uint32_t s = 0; s < t->nstripes; s++) {
        shm_table_lock(t, s);
        shm_table_visit(t, s, usage_cb, &u);
        shm_table_unlock(t, s);
    }
    shm_log_repairs();
    struct kv_nstable *n = lock_ns();
    *namespaces = (uint64_t)count_used(n);
    unlock_ns(n);
    *keys = u.keys;
    *bytes = u.bytes;
}
