/* Active users on Redis (users_redis.h).
 *
 * Layout under the prefix P (butlerd.conf(5), butlerd.store.redis.keyPrefix):
 *   P u:seq    counter: creation numbers
 *   P u:order  sorted set: entries "host\0dir\0user" scored by creation number
 *   P u:seen   sorted set: the same entries scored by last-seen time (Redis TIME, ms)
 * Every change is one Lua script, so butlerd.shm.maxActiveUsers holds across all
 * instances and two instances expiring at once remove an entry once. Times are
 * Redis's own clock, so the instances' clocks need not agree. */
#include "users_redis.h"
#include "cfg.h"
#include "log.h"
#include "redis_conn.h"
#include "shm_region.h"
#include "stats.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define QCAP 16384       /* queued session events before they are dropped */
#define BATCH 256        /* events taken off the queue at a time */
#define REFRESH_MS 100   /* the master's copy is refreshed at most this often */
#define TICK_MS 1000     /* idle expiry and a refresh at least this often */
#define RETRY_MS 100     /* queued events are tried again this often while Redis is away */

/* ARGV: P entry max. Returns 1 added, 0 refreshed, -1 full. */
static struct redis_script add_lua = {
    "local P, m, max = ARGV[1], ARGV[2], tonumber(ARGV[3])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "if redis.call('ZSCORE', P .. 'u:order', m) then\n"
    "  redis.call('ZADD', P .. 'u:seen', now, m)\n"
    "  return 0\n"
    "end\n"
    "if redis.call('ZCARD', P .. 'u:order') >= max then return -1 end\n"
    "redis.call('ZADD', P .. 'u:order', redis.call('INCR', P .. 'u:seq'), m)\n"
    "redis.call('ZADD', P .. 'u:seen', now, m)\n"
    "return 1\n",
    ""};

/* ARGV: P entry. Returns 1 if it was there. */
static struct redis_script del_lua = {
    "local P, m = ARGV[1], ARGV[2]\n"
    "redis.call('ZREM', P .. 'u:seen', m)\n"
    "return redis.call('ZREM', P .. 'u:order', m)\n",
    ""};

/* ARGV: P idle_ms. Removes entries not seen for idle_ms; returns how many. */
static struct redis_script expire_lua = {
    "local P, idle = ARGV[1], tonumber(ARGV[2])\n"
    "local t = redis.call('TIME')\n"
    "local cut = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - idle\n"
    "local dead = redis.call('ZRANGEBYSCORE', P .. 'u:seen', '-inf', '(' .. cut)\n"
    "for _, m in ipairs(dead) do redis.call('ZREM', P .. 'u:order', m) end\n"
    "if #dead > 0 then redis.call('ZREMRANGEBYSCORE', P .. 'u:seen', '-inf', '(' .. cut) end\n"
    "return #dead\n",
    ""};

struct op {
    int op; /* 1 add, -1 remove */
    size_t klen;
    char *key;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct op q[QCAP];
    unsigned head, n;
    pid_t master;             /* the process that configured us: the master */
    pid_t owner;              /* the process that runs the thread */
    int idle_s, max_users;
    unsigned dropped;         /* queue overflow since the last report */
    struct users_raw snap;    /* the master's copy */
    int have_snap;
} ur = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
static atomic_uint expired;
static atomic_int changed;
static int64_t full_warned_at;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void users_redis_configure(const struct cfg *c)
{
    pthread_mutex_lock(&ur.mu);
    ur.master = getpid();
    ur.idle_s = c->activeUsersMaxIdleSeconds;
    ur.max_users = c->shm.maxActiveUsers;
    pthread_mutex_unlock(&ur.mu);
}

static void ensure_thread(void);

void users_redis_queue(int op, const char *key, size_t klen)
{
    ensure_thread();
    pthread_mutex_lock(&ur.mu);
    if (ur.n == QCAP) {
        if (!ur.dropped++)
            log_warnx("active users: the queue of session events for Redis is full (%d): "
                      "events are dropped until it drains", QCAP);
        pthread_mutex_unlock(&ur.mu);
        return;
    }
    struct op *o = &ur.q[(ur.head + ur.n++) % QCAP];
    o->op = op;
    o->klen = klen;
    o->key = xmalloc(klen);
    memcpy(o->key, key, klen);
    pthread_cond_signal(&ur.cv);
    pthread_mutex_unlock(&ur.mu);
}

void users_redis_raw_free(struct users_raw *r)
{
    free(r->keys);
    free(r->seq);
    free(r->off);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------------ reading */

/* ZRANGE u:order WITHSCORES straight from Redis. */
static int fetch(struct users_raw *out)
{
    memset(out, 0, sizeof *out);
    char *key = xasprintf("%su:order", redis_prefix());
    const char *argv[] = {"ZRANGE", key, "0", "-1", "WITHSCORES"};
    size_t len[] = {6, strlen(key), 1, 2, 10};
    int rc;
    redisReply *r = redis_cmd("active users", 5, argv, len, &rc);
    free(key);
    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return -1;
    }
    size_t n = r->elements / 2;
    struct buf b = {0};
    out->seq = xcalloc(n + 1, sizeof *out->seq);
    out->off = xcalloc(n + 1, sizeof *out->off);
    for (size_t i = 0; i < n; i++) {
        redisReply *m = r->element[2 * i], *s = r->element[2 * i + 1];
        if (m->type != REDIS_REPLY_STRING || m->len > USERS_KEY_MAX)
            continue;
        out->off[out->n] = b.len;
        out->seq[out->n] = s->type == REDIS_REPLY_STRING ? strtoull(s->str, NULL, 10) : 0;
        buf_append(&b, m->str, m->len);
        buf_append(&b, "\0\0\0", 3); /* a damaged entry still yields three strings */
        out->n++;
    }
    freeReplyObject(r);
    out->keys = b.p;
    out->klen = b.len;
    return 0;
}

static void raw_copy(struct users_raw *to, const struct users_raw *from)
{
    to->n = from->n;
    to->klen = from->klen;
    to->keys = xmalloc(from->klen + 1);
    if (from->klen)
        memcpy(to->keys, from->keys, from->klen);
    to->seq = xcalloc(from->n + 1, sizeof *to->seq);
    to->off = xcalloc(from->n + 1, sizeof *to->off);
    if (from->n) {
        memcpy(to->seq, from->seq, from->n * sizeof *to->seq);
        memcpy(to->off, from->off, from->n * sizeof *to->off);
    }
}

static int raw_equal(const struct users_raw *a, const struct users_raw *b)
{
    return a->n == b->n && a->klen == b->klen && (!a->klen || !memcmp(a->keys, b->keys, a->klen)) &&
           (!a->n || !memcmp(a->seq, b->seq, a->n * sizeof *a->seq));
}

int users_redis_read(struct users_raw *r)
{
    memset(r, 0, sizeof *r);
    if (ur.master == getpid()) {
        /* The master must not wait on Redis: its thread's copy. */
        ensure_thread();
        pthread_mutex_lock(&ur.mu);
        if (ur.have_snap)
            raw_copy(r, &ur.snap);
        pthread_mutex_unlock(&ur.mu);
        if (!r->keys) {
            r->seq = xcalloc(1, sizeof *r->seq);
            r->off = xcalloc(1, sizeof *r->off);
        }
        return 0;
    }
    if (fetch(r) < 0) {
        r->seq = xcalloc(1, sizeof *r->seq);
        r->off = xcalloc(1, sizeof *r->off);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ the thread */

/* 0 done (or refused by Redis with an error, which redis_conn.c logs), -1 when
 * Redis cannot be reached: the event is kept and tried again. */
static int apply(const struct op *o, int max_users)
{
    char num[24];
    int rc, n = snprintf(num, sizeof num, "%d", max_users);
    const char *args[] = {o->key, num};
    size_t lens[] = {o->klen, (size_t)n};
    redisReply *r = o->op > 0 ? redis_script("active users", &add_lua, 2, args, lens, &rc)
                              : redis_script("active users", &del_lua, 1, args, lens, &rc);
    if (!r)
        return rc == RS_UNAVAIL ? -1 : 0;
    if (r->type == REDIS_REPLY_INTEGER && r->integer < 0 && o->op > 0) {
        STAT_INC(users_full);
        int64_t now = mono_ms();
        if (!full_warned_at || now - full_warned_at >= 60000) {
            log_warnx("active users full (butlerd.shm.maxActiveUsers = %d across the instances "
                      "sharing Redis): new sessions are not counted", max_users);
            full_warned_at = now;
        }
    }
    freeReplyObject(r);
    return 0;
}

static void refresh(void)
{
    struct users_raw fresh;
    if (fetch(&fresh) < 0)
        return;
    pthread_mutex_lock(&ur.mu);
    int same = ur.have_snap && raw_equal(&fresh, &ur.snap);
    if (!same) {
        users_redis_raw_free(&ur.snap);
        ur.snap = fresh;
        ur.have_snap = 1;
    }
    pthread_mutex_unlock(&ur.mu);
    if (same)
        users_redis_raw_free(&fresh);
    else
        atomic_store(&changed, 1);
}

/* Applies the queue in order, expires idle entries and refreshes the master's
 * copy. While Redis cannot be reached the events wait in the queue (tried again
 * every RETRY_MS) until it is full; then new ones are dropped. */
static void *thread_main(void *arg)
{
    (void)arg;
    struct op batch[BATCH];
    unsigned k = 0, done = 0; /* batch[done..k) not applied yet */
    int64_t next_tick = mono_ms(), last_refresh = 0, retry_at = 0;
    int pending = 1;
    for (;;) {
        pthread_mutex_lock(&ur.mu);
        for (;;) {
            int64_t now = mono_ms();
            int64_t due = next_tick;
            if (pending && last_refresh + REFRESH_MS < due)
                due = last_refresh + REFRESH_MS;
            if (done < k && retry_at < due)
                due = retry_at;
            if ((done == k && ur.n) || now >= due)
                break;
            struct timespec ts; /* the condition variable runs on CLOCK_MONOTONIC */
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t ns = ts.tv_nsec + (due - now) * 1000000;
            ts.tv_sec += ns / 1000000000;
            ts.tv_nsec = ns % 1000000000;
            int e = pthread_cond_timedwait(&ur.cv, &ur.mu, &ts);
            if (e && e != ETIMEDOUT)
                break;
        }
        if (done == k) {
            k = done = 0;
            while (ur.n && k < BATCH) {
                batch[k++] = ur.q[ur.head];
                ur.head = (ur.head + 1) % QCAP;
                ur.n--;
            }
        }
        if (ur.dropped && !ur.n) {
            log_warnx("active users: %u session events were dropped (queue full)", ur.dropped);
            ur.dropped = 0;
        }
        int idle = ur.idle_s, max_users = ur.max_users;
        pthread_mutex_unlock(&ur.mu);

        int64_t now = mono_ms();
        if (done < k && now >= retry_at) {
            while (done < k && apply(&batch[done], max_users) == 0)
                free(batch[done++].key);
            if (done < k)
                retry_at = mono_ms() + RETRY_MS;
            pending = 1;
        }
        if (now >= next_tick) {
            next_tick = now + TICK_MS;
            if (idle > 0) {
                char num[24];
                int rc, n = snprintf(num, sizeof num, "%lld", (long long)idle * 1000);
                const char *args[] = {num};
                size_t lens[] = {(size_t)n};
                redisReply *r = redis_script("active users", &expire_lua, 1, args, lens, &rc);
                if (r && r->type == REDIS_REPLY_INTEGER && r->integer > 0)
                    atomic_fetch_add(&expired, (unsigned)r->integer);
                if (r)
                    freeReplyObject(r);
            }
            pending = 1; /* other instances change the list too */
        }
        if (pending && now - last_refresh >= REFRESH_MS) {
            refresh();
            last_refresh = now;
            pending = 0;
        }
    }
    return NULL;
}

/* The thread, in the master, started on first use (after the first workers are
 * forked, so they never inherit a process with two threads). */
static void ensure_thread(void)
{
    if (ur.owner == getpid())
        return;
    /* Waits time out on the monotonic clock: a step of the wall clock must not
     * stall the thread. No other thread exists yet to use the variable. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_destroy(&ur.cv);
    pthread_cond_init(&ur.cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int e = pthread_create(&t, &a, thread_main, NULL);
    pthread_attr_destroy(&a);
    if (e) {
        errno = e;
        log_warn("pthread_create(active users) failed");
        return;
    }
    ur.owner = getpid();
}

unsigned users_redis_tick(int *chg)
{
    ensure_thread();
    *chg = atomic_exchange(&changed, 0);
    return atomic_exchange(&expired, 0);
}
