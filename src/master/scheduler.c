/* The scheduler process (see scheduler.h).
 *
 * Firing (butlerd(8), "Scheduler"). The process keeps, for each running schedule,
 * its parsed expression, its zone and its next firing second. It sleeps until the
 * earliest (at most a second, to notice clock steps), or until the list changes
 * (the eventfd of sched_list.h). When a second S is due it claims S in shared memory;
 * only the claimant fires S, so no second fires twice, whether two scheduler
 * processes overlap after a reload or a respawned one starts where a killed one
 * stopped. A new process starts with the next second (after the last claimed one):
 * firings missed while no scheduler ran are not made up. Firings found late while
 * the process ran (a busy machine, the process stopped, the machine suspended, the
 * clock stepped forward) all fire if at most LATE_ALL_S late; after a longer stall
 * only the latest one at most LATE_ONE_S late fires, once, and the others are
 * skipped with a warning: never a burst.
 *
 * A firing is a job for the start threads: POST /qrs/task/<id>/start, the result
 * logged. The loop never waits on QRS: a slow QRS makes starts wait for a thread,
 * but every firing is still decided on time and claimed once. A thread is added
 * whenever every thread is busy, up to START_THREADS; each keeps its QRS
 * connection, so a burst does not cost a TLS handshake per start (bench/sched.py:
 * 64 threads made a burst of 200 starts slower, not faster, and cost 30 MB).
 *
 * On Redis (butlerd.store.backend = "redis"; butlerd(8), SCHEDULER, "Several
 * instances") every instance runs this process, but only the one holding the
 * firing lease in Redis fires: it renews the lease every third of
 * butlerd.store.redis.leaseMs, the others try to take it at the same pace, so
 * when the holder dies another fires within the lease time. The holder claims each
 * second's firings in Redis in one script, which checks that its lease (token and
 * fencing epoch) is still current and that each schedule's second is after the
 * last one fired: a holder paused past its lease fires nothing when it wakes. The
 * others go on computing next firings without firing, so a new holder starts
 * with the next due second. The same tick reads the list's version and brings
 * this instance's copy up to date (sched_refresh). */
#include "scheduler.h"
#include "butlerd.h"
#include "cfg.h"
#include "cron.h"
#include "jsonarr.h"
#include "log.h"
#include "proc.h"
#include "qrs.h"
#include "redis_conn.h"
#include "sched_list.h"
#include "sched_redis.h"
#include "stats.h"
#include "task.h"
#include "util.h"

#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LATE_ALL_S 5       /* firings at most this late all fire (see fire_entry) */
#define LATE_ONE_S 60      /* else the latest one at most this late fires, once */
#define START_THREADS 8    /* most concurrent QRS start requests; threads start on demand */
#define QUEUE_MAX 100000   /* firings waiting for a thread; beyond: skipped, logged */

static const struct cfg *sc_cfg;

/* The firing lease on Redis (see above). */
static struct {
    char token[33];  /* random, this process's */
    int64_t epoch;   /* fencing number of the lease held; 0: not the holder */
    int64_t next_ms; /* monotonic time of the next renewal or attempt */
    int lease_ms, period_ms;
} lease;

/* ------------------------------------------------------------ start threads */

struct firing {
    struct firing *next;
    int64_t planned_ms;
    char task[40];
    char id[];
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv, idle;
    struct firing *head, *tail;
    unsigned queued, busy, nthreads;
    pthread_t th[START_THREADS];
    int stop;
} fq = {.mu = PTHREAD_MUTEX_INITIALIZER,
        .cv = PTHREAD_COND_INITIALIZER,
        .idle = PTHREAD_COND_INITIALIZER};

static void fire(const struct firing *f)
{
    long st;
    char msg[200];
    int64_t delay = now_real_ms() - f->planned_ms;
    STAT_ADD(sched_delay_ms_sum, (uint64_t)(delay > 0 ? delay : 0));
    log_debug("schedule %s: start of task %s sent %lld ms after its firing time", f->id, f->task,
              (long long)delay);
    char at[32];
    struct tm tm;
    time_t planned = (time_t)(f->planned_ms / 1000);
    gmtime_r(&planned, &tm);
    strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (task_start_one(sc_cfg, f->task, &st, msg, sizeof msg) == 0) {
        STAT_INC(sched_fired);
        log_info("schedule %s fired at %s: started task %s", f->id, at, f->task);
    } else {
        STAT_INC(sched_failed);
        log_warnx("schedule %s fired at %s: starting task %s failed: %s", f->id, at, f->task,
                  msg);
    }
}

static void *start_thread(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_mutex_lock(&fq.mu);
    for (;;) {
        while (!fq.head && !fq.stop)
            pthread_cond_wait(&fq.cv, &fq.mu);
        if (!fq.head)
            break;
        struct firing *f = fq.head;
        fq.head = f->next;
        if (!fq.head)
            fq.tail = NULL;
        fq.queued--;
        fq.busy++;
        pthread_mutex_unlock(&fq.mu);
        fire(f);
        free(f);
        pthread_mutex_lock(&fq.mu);
        fq.busy--;
        if (!fq.head && !fq.busy)
            pthread_cond_broadcast(&fq.idle);
    }
    pthread_mutex_unlock(&fq.mu);
    return NULL;
}

/* A thread more if every thread is busy (fq.mu held). */
static void grow(void)
{
    if (fq.queued + fq.busy <= fq.nthreads || fq.nthreads >= START_THREADS)
        return;
    if (pthread_create(&fq.th[fq.nthreads], NULL, start_thread, NULL) == 0)
        fq.nthreads++;
    else if (!fq.nthreads) /* no thread at all: the firing waits for the next try */
        log_errorx("cannot start a task start thread");
}

static void enqueue(const char *id, const char *task, int64_t planned_s)
{
    size_t n = strlen(id) + 1;
    struct firing *f = xmalloc(sizeof *f + n);
    f->next = NULL;
    f->planned_ms = planned_s * 1000;
    snprintf(f->task, sizeof f->task, "%s", task);
    memcpy(f->id, id, n);
    pthread_mutex_lock(&fq.mu);
    int full = fq.queued >= QUEUE_MAX;
    if (!full) {
        if (fq.tail)
            fq.tail->next = f;
        else
            fq.head = f;
        fq.tail = f;
        fq.queued++;
        grow();
        pthread_cond_signal(&fq.cv);
    }
    pthread_mutex_unlock(&fq.mu);
    if (full) {
        STAT_INC(sched_skipped);
        log_errorx("schedule %s: firing skipped, %d task starts are already waiting for QRS",
                   id, QUEUE_MAX);
        free(f);
    }
}

/* ------------------------------------------------------------ the running list */

struct entry;
static void want(struct entry *e, int64_t t);

struct entry {
    char *id, *task;
    struct cron cron;
    const struct tz *tz;
    int64_t next; /* next firing second */
};

static struct {
    struct entry *v;
    size_t n;
    uint64_t gen;
} run;

static int by_id(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->id, ((const struct entry *)b)->id);
}

static int64_t next_after(const struct entry *e, int64_t after)
{
    time_t t;
    return cron_next(&e->cron, e->tz, (time_t)after, &t) == 0 ? (int64_t)t : INT64_MAX;
}

/* The list being built from the shared one, and the one it replaces. */
struct build {
    struct entry *v, *old;
    size_t n, cap, nold;
    int64_t base;
};

static void add_entry(json_object *s, void *arg)
{
    struct build *b = arg;
    char err[160];
    struct entry e = {0};
    if (!s || strcmp(sched_str(s, "lastKnownState"), "started") ||
        cron_parse(sched_str(s, "cronSchedule"), &e.cron, err, sizeof err) < 0 ||
        !(e.tz = sched_zone(sched_str(s, "timezone"))))
        return;
    e.id = xstrdup(sched_str(s, "id"));
    e.task = xstrdup(sched_str(s, "qlikSenseTaskId"));
    struct entry *o = b->nold ? bsearch(&e, b->old, b->nold, sizeof *b->old, by_id) : NULL;
    if (o && !strcmp(o->task, e.task) && o->tz == e.tz && !memcmp(&o->cron, &e.cron, sizeof e.cron))
        e.next = o->next;
    else
        e.next = next_after(&e, b->base);
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->v = xrealloc(b->v, b->cap * sizeof *b->v);
    }
    b->v[b->n++] = e;
}

/* Rebuilds the running list from the shared one, read one schedule at a time. A
 * schedule that was running and is unchanged keeps its next firing; the others
 * start after BASE. */
static void rebuild(int64_t base)
{
    struct buf list = {0};
    uint64_t gen;
    sched_snapshot(&list, &gen);
    struct build b = {.old = run.v, .nold = run.n, .base = base};
    if (b.nold)
        qsort(b.old, b.nold, sizeof *b.old, by_id);
    jsonarr_each(list.p, list.len, add_entry, &b);
    buf_free(&list);
    for (size_t i = 0; i < b.nold; i++) {
        free(b.old[i].id);
        free(b.old[i].task);
    }
    free(b.old);
    run.v = b.v;
    run.n = b.n;
    run.gen = gen;
    malloc_trim(0); /* the copy of the list is gone: give its pages back */
    log_debug("%zu running schedules (list generation %llu)", b.n, (unsigned long long)gen);
}

/* The firings of E due at NOW (seconds) that the process was late for: every one at
 * most LATE_ALL_S late fires; if none is that recent, the latest one at most
 * LATE_ONE_S late fires, once; the others are skipped (counted, one warning). So a
 * wake-up a second or two late loses nothing, and a long stall never ends in a
 * burst. */
static void fire_entry(struct entry *e, int64_t now, int claimed, int64_t prev)
{
    int64_t t = e->next > prev ? e->next : next_after(e, prev), latest_old = -1, skipped = 0;
    int recent = 0;
    if (t < now - LATE_ONE_S) { /* long ago: look only at the last LATE_ONE_S seconds */
        skipped++;
        t = next_after(e, now - LATE_ONE_S - 1);
    }
    for (; t <= now; t = next_after(e, t)) {
        if (now - t <= LATE_ALL_S) {
            recent++;
            if (claimed)
                want(e, t);
        } else {
            skipped += latest_old >= 0;
            latest_old = t;
        }
    }
    if (latest_old >= 0 && recent)
        skipped++;
    else if (latest_old >= 0 && claimed)
        want(e, latest_old);
    if (skipped) {
        STAT_ADD(sched_skipped, (uint64_t)skipped);
        log_warnx("schedule %s: %lld firing(s) skipped, the scheduler was %lld s late", e->id,
                  (long long)skipped, (long long)(now - e->next));
    }
    e->next = next_after(e, now);
}

/* ---- firings claimed in Redis */

static struct {
    struct entry **e;
    int64_t *t;
    size_t n, cap;
} batch;

static void lease_lost(const char *why)
{
    if (lease.epoch)
        log_warnx("this instance no longer fires the schedules: %s", why);
    lease.epoch = 0;
}

/* Takes or renews the lease, and brings the list up to date. */
static void lease_tick(void)
{
    int64_t epoch;
    uint64_t ver = 0;
    lease.next_ms = now_ms() + lease.period_ms;
    int rc = sched_redis_lease(lease.token, lease.lease_ms, &epoch, &ver);
    if (rc != RS_OK) {
        lease_lost(rc == RS_UNAVAIL ? "Redis cannot be reached" : "Redis answered an error");
        return;
    }
    if (epoch && !lease.epoch)
        log_info("this instance fires the schedules (firing lease epoch %lld)", (long long)epoch);
    else if (!epoch)
        lease_lost("another instance holds the firing lease");
    lease.epoch = epoch;
    sched_refresh(ver);
}

/* The firing of E at second T, on Redis: claimed with the others of this pass. */
static void want(struct entry *e, int64_t t)
{
    if (!sched_on_redis()) {
        enqueue(e->id, e->task, t);
        return;
    }
    if (batch.n == batch.cap) {
        batch.cap = batch.cap ? 2 * batch.cap : 64;
        batch.e = xrealloc(batch.e, batch.cap * sizeof *batch.e);
        batch.t = xrealloc(batch.t, batch.cap * sizeof *batch.t);
    }
    batch.e[batch.n] = e;
    batch.t[batch.n++] = t;
}

/* Claims the firings of this pass in Redis and starts those this holder won. */
static void claim_batch(void)
{
    if (!batch.n)
        return;
    json_object *a = json_object_new_array();
    char sec[24];
    for (size_t i = 0; i < batch.n; i++) {
        snprintf(sec, sizeof sec, "%lld", (long long)batch.t[i]);
        json_object_array_add(a, json_object_new_string(batch.e[i]->id));
        json_object_array_add(a, json_object_new_string(sec));
    }
    char *flags;
    int rc = sched_redis_claim(lease.token, lease.epoch,
                               json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN), &flags);
    json_object_put(a);
    if (rc != RS_OK)
        lease_lost(rc == RS_UNAVAIL ? "Redis cannot be reached" : "Redis answered an error");
    else if (!flags)
        lease_lost("its firing lease was taken over");
    for (size_t i = 0; flags && i < batch.n && flags[i]; i++)
        if (flags[i] == '1')
            enqueue(batch.e[i]->id, batch.e[i]->task, batch.t[i]);
    free(flags);
    batch.n = 0;
}

/* Fires what is due at NOW (seconds); returns the earliest next firing. */
static int64_t fire_due(int64_t now)
{
    int64_t earliest = INT64_MAX;
    int claimed = sched_on_redis() ? lease.epoch != 0 : -1; /* -1: not asked yet */
    int64_t prev = 0; /* seconds after this one are ours to fire */
    for (size_t i = 0; i < run.n; i++) {
        struct entry *e = &run.v[i];
        if (e->next <= now) {
            if (claimed < 0)
                claimed = sched_claim(now, &prev);
            fire_entry(e, now, claimed, prev);
        }
        if (e->next < earliest)
            earliest = e->next;
    }
    claim_batch();
    return earliest;
}

/* ------------------------------------------------------------ the process */

static volatile sig_atomic_t term, usr1;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        usr1 = 1;
    else
        term = 1;
}

static void __attribute__((noreturn)) scheduler_main(const struct proc *p, int fd)
{
    (void)p;
    (void)fd;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    /* Start with the next second (and after the last one handled): a firing time
     * that began before this process existed is not made up, even if no process
     * fired it (butlerd-api(7), Scheduler). */
    int64_t now = now_real_ms() / 1000, w = sched_watermark();
    rebuild(w > now ? w : now);
    int64_t earliest = INT64_MIN;
    if (sched_on_redis()) {
        unsigned char r[16];
        if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
            for (size_t i = 0; i < sizeof r; i++) /* cannot happen after boot */
                r[i] = (unsigned char)(random() ^ getpid());
        for (size_t i = 0; i < sizeof r; i++)
            snprintf(lease.token + 2 * i, 3, "%02x", r[i]);
        lease.lease_ms = sc_cfg->store.leaseMs;
        lease.period_ms = lease.lease_ms / 3 < 1000 ? lease.lease_ms / 3 : 1000;
    }
    while (!term) {
        if (usr1) {
            usr1 = 0;
            log_reopen();
        }
        if (sched_on_redis() && now_ms() >= lease.next_ms)
            lease_tick();
        if (sched_generation() != run.gen) {
            sched_wake_drain();
            now = now_real_ms() / 1000;
            w = sched_watermark();
            rebuild(w > now ? w : now); /* a new or changed schedule: from the next second */
            earliest = INT64_MIN;
        }
        int64_t ms = now_real_ms();
        if (earliest <= ms / 1000)
            earliest = fire_due(ms / 1000);
        ms = now_real_ms();
        int64_t wait = earliest == INT64_MAX ? 1000 : earliest * 1000 - ms;
        if (sched_on_redis() && lease.next_ms - now_ms() < wait)
            wait = lease.next_ms - now_ms();
        struct pollfd pf = {sched_wake_fd(), POLLIN, 0};
        poll(&pf, 1, wait < 0 ? 0 : wait > 1000 ? 1000 : (int)wait);
    }
    /* Told to stop: finish the starts already begun, drop the rest. */
    pthread_mutex_lock(&fq.mu);
    unsigned dropped = fq.queued;
    while (fq.head) {
        struct firing *f = fq.head;
        fq.head = f->next;
        free(f);
    }
    fq.tail = NULL;
    fq.queued = 0;
    fq.stop = 1;
    pthread_cond_broadcast(&fq.cv);
    pthread_mutex_unlock(&fq.mu);
    if (dropped)
        log_warnx("stopping: %u scheduled task starts not sent", dropped);
    if (sched_on_redis() && lease.epoch)
        sched_redis_release(lease.token); /* another instance need not wait for it to expire */
    for (unsigned i = 0; i < fq.nthreads; i++)
        pthread_join(fq.th[i], NULL);
    _exit(EXIT_OK);
}

/* Respawned 0.5 s after any exit at first, doubling to 30 s for a process that
 * keeps dying; one that ran a minute starts over. */
static const struct proc_role scheduler_role = {
    .name = "scheduler",
    .label = "scheduler process",
    .policy = PROC_RESPAWN,
    .backoff_min_ms = 500,
    .backoff_max_ms = 30000,
    .stable_ms = 60000,
    .after_stable_ms = 500,
    .after_clean_ms = 500,
    .child_main = scheduler_main,
};

void scheduler_start(const struct cfg *c, unsigned gen)
{
    sc_cfg = c;
    if (c->scheduler.enable && sched_available())
        proc_start(&scheduler_role, 1, gen);
}

void scheduler_reload(const struct cfg *c, unsigned gen)
{
    sc_cfg = c;
    if (!sched_available())
        return;
    for (struct proc *p = proc_next(&scheduler_role, NULL); p;
         p = proc_next(&scheduler_role, p)) {
        if (p->draining) { /* a third generation: the oldest gets no more time */
            kill(p->pid, SIGKILL);
            log_warnx("scheduler process pid %ld killed: reloaded again before it finished",
                      (long)p->pid);
        } else {
            proc_drain(p, SIGTERM, (c->shutdownTimeout + 5) * 1000);
        }
    }
    proc_start(&scheduler_role, 1, gen);
}

void scheduler_stop(void)
{
    for (struct proc *p = proc_next(&scheduler_role, NULL); p;
         p = proc_next(&scheduler_role, p))
        kill(p->pid, SIGTERM);
}
