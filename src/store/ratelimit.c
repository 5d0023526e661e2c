/* Rate-limit counters in shared memory. Each client address has one slot holding
 * its window start, its count and when it was last seen. A change is always a
 * complete new value put into the table (shm_table_put swaps a fresh slot in with
 * one store), so a worker killed at any instant leaves either the old or the new
 * count and never a damaged table; the stripe lock is robust (shm_lock.c). The
 * table's size is butlerd.rateLimit.maxClients (butlerd.conf(5)); when a stripe is
 * full its least recently seen client is dropped. Small tables (up to 256 clients)
 * have one stripe, so there the dropped entry is exactly the least recently seen.
 *
 * With butlerd.store.backend = "redis" the window is kept in Redis instead
 * (rl_redis.c), shared by every instance; when Redis cannot be reached the request
 * is served (fail open; redis_conn.c logs the outage once). */
#include "ratelimit.h"
#include "redis_conn.h"
#include "rl_redis.h"
#include "shm_region.h"
#include "shm_table.h"

#include <string.h>
#include <time.h>

struct rl_entry {
    int64_t start_ms; /* window start */
    int64_t seen_ns;  /* last counted request (CLOCK_MONOTONIC ns: no ties in practice) */
    uint32_t count;   /* requests counted in this window */
    uint32_t pad;
};

_Static_assert(sizeof(struct rl_entry) == RL_VALUE_BYTES, "RL_VALUE_BYTES");

static struct shm_table *tbl(void) { return shm_ptr(shm.hdr->rl_off); }

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t (*rl_clock_ns)(void) = mono_ns;

struct oldest {
    int64_t seen;
    uint32_t klen;
    unsigned char key[RL_KEY_MAX];
    int found;
};

static int oldest_cb(struct shm_slot *sl, void *arg)
{
    struct oldest *o = arg;
    struct rl_entry e;
    if (sl->vlen != sizeof e || sl->klen > RL_KEY_MAX)
        return 1; /* cannot be ours: drop it */
    memcpy(&e, sl->data + sl->klen, sizeof e);
    if (!o->found || e.seen_ns < o->seen) {
        o->found = 1;
        o->seen = e.seen_ns;
        o->klen = sl->klen;
        memcpy(o->key, sl->data, sl->klen);
    }
    return 0;
}

void rl_hit(const void *key, size_t klen, int max, int window_s, struct rl_verdict *v)
{
    if (redis_in_use()) {
        long long count, left;
        if (rl_redis_hit(key, klen, window_s, &count, &left) == 0) {
            v->limit = max;
            v->remaining = count >= max ? 0 : max - (int)count;
            v->limited = count > max;
            v->reset_s = (int)((left + 999) / 1000);
            if (v->reset_s < 1)
                v->reset_s = 1;
            return;
        }
        v->limit = max; /* fail open (butlerd-api(7), "Rate limiting") */
        v->remaining = max;
        v->limited = 0;
        v->reset_s = window_s > 0 ? window_s : 1;
        return;
    }
    struct shm_table *t = tbl();
    uint32_t h = shm_hash(key, klen, shm.hdr->hash_seed);
    uint32_t s = shm_table_stripe_of(t, h);
    int64_t window = (int64_t)window_s * 1000;

    shm_table_lock(t, s);
    /* The clock is read with the stripe held. Read before it, a worker that waited
     * for the lock could hold an earlier time than the window another worker has
     * just opened, take that window for one from before a reboot and start the
     * count again: more than maxRequests in a window. */
    int64_t now_ns = rl_clock_ns();
    int64_t now = now_ns / 1000000;
    struct rl_entry e = {now, now_ns, 0, 0};
    struct shm_slot *sl = shm_table_find(t, s, h, key, (uint32_t)klen);
    if (sl && sl->vlen == sizeof e) {
        memcpy(&e, sl->data + sl->klen, sizeof e);
        /* A window that ended, or one that cannot be (a segment from before a
         * reboot), starts again with this request. */
        if (now >= e.start_ms + window || e.start_ms > now) {
            e.start_ms = now;
            e.count = 0;
        }
    }
    if (e.count < UINT32_MAX)
        e.count++;
    e.seen_ns = now_ns;
    int rc = shm_table_put(t, s, h, key, (uint32_t)klen, &e, sizeof e, 0, 0, 1);
    if (rc < 0) {
        /* Full: drop the client seen least recently, then try once more. */
        struct oldest o = {0};
        shm_table_visit(t, s, oldest_cb, &o);
        if (o.found)
            shm_table_del(t, s, shm_hash(o.key, o.klen, shm.hdr->hash_seed), o.key, o.klen);
        shm_table_put(t, s, h, key, (uint32_t)klen, &e, sizeof e, 0, 0, 1);
    }
    shm_table_unlock(t, s);

    v->limit = max;
    v->remaining = e.count >= (uint32_t)max ? 0 : max - (int)e.count;
    v->limited = e.count > (uint32_t)max;
    int64_t left = e.start_ms + window - now;
    v->reset_s = (int)((left + 999) / 1000);
    if (v->reset_s < 1)
        v->reset_s = 1;
}

uint32_t rl_clients(void)
{
    struct shm_table *t = tbl();
    uint32_t n = 0;
    for (uint32_t s = 0; s < t->nstripes; s++)
        n += __atomic_load_n(&shm_table_stripe(t, s)->count, __ATOMIC_RELAXED);
    return n;
}

int rl_check(void)
{
    struct shm_table *t = tbl();
    int bad = 0;
    for (uint32_t s = 0; s < t->nstripes; s++) {
        shm_table_lock(t, s);
        bad |= shm_table_check(t, s) != 0;
        shm_table_unlock(t, s);
    }
    return bad ? -1 : 0;
}
