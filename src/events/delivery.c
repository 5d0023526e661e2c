/* The delivery process (see delivery.h; butlerd(8), "Outbox"). */
#include "delivery.h"
#include "butlerd.h"
#include "cfg.h"
#include "log.h"
#include "notify.h"
#include "outbox.h"
#include "proc.h"
#include "stats.h"
#include "util.h"
#include "xfer.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RESCAN_MS 60000
#define TMP_STALE_S 60       /* tmp/ files older than this are leftovers */
#define STOP_GRACE_MS 5000   /* in-flight attempts at SIGTERM */
#define ERR_MAX XFER_ERR_MAX

static const struct cfg *dv_cfg;
static int lock_fd = -1;

/* ------------------------------------------------------------ one entry */

struct item {
    struct item *next;
    char name[128];  /* file name in queue/ */
    char target[256]; /* the entry's target (destination URL without its query) */
    int64_t due_ms;  /* wall clock */
    int seen;        /* found by the last scan */
    CURL *h;         /* in flight */
    struct xfer x;   /* what the transfer holds (xfer.h) */
    json_object *entry;
};

static struct {
    struct item *items;
    CURLM *multi;
    int inflight;
    struct item *flying[64]; /* the items in flight (maxConcurrent is at most 64) */
    int ninflight;
    int in_fd; /* inotify on queue/ */
} dq;

/* Frees IT's transfer (not in the multi handle any more). */
static void release(struct item *it)
{
    curl_easy_cleanup(it->h);
    xfer_free(&it->x);
    it->h = NULL;
}

static const char *jget(json_object *o, const char *k)
{
    json_object *v;
    return o && json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

/* One attempt from memory, for an entry that could not be spooled. */
int delivery_send_now(const struct cfg *c, json_object *entry, char *err, size_t errlen)
{
    const struct xfer_kind *k = xfer_kind_of(outbox_dest_of(jget(entry, "destination")));
    json_object *req;
    struct item it = {0};
    char why[XFER_ERR_MAX] = "entry of an unknown destination";
    it.x.retry_after_s = -1;
    it.h = curl_easy_init();
    int outcome = XFER_PERMANENT;
    if (it.h && k && json_object_object_get_ex(entry, "request", &req) &&
        k->easy(it.h, &it.x, req, c, why) == 0) {
        curl_easy_setopt(it.h, CURLOPT_NOSIGNAL, 1L);
        outcome = k->classify(it.h, curl_easy_perform(it.h), why);
    }
    release(&it);
    snprintf(err, errlen, "%s", why);
    return outcome == XFER_ACCEPTED ? 0 : -1;
}

/* ------------------------------------------------------------ outcomes */

static const char *spool(void) { return dv_cfg->notify.spoolDirectory; }

static int entry_int(json_object *e, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(e, k, &v) ? json_object_get_int(v) : 0;
}

static void set_str(json_object *e, const char *k, const char *v)
{
    json_object_object_add(e, k, json_object_new_string(v));
}

static void counters(json_object *e, int which)
{
    outbox_count(outbox_dest_of(jget(e, "destination")), outbox_kind_of(jget(e, "kind")), which);
}

static void to_dead(struct item *it, const char *reason)
{
    char t[32], err[ERR_MAX];
    const char *id = jget(it->entry, "id");
    outbox_time(now_real_ms(), t);
    set_str(it->entry, "deadReason", reason);
    set_str(it->entry, "deadAt", t);
    if (outbox_write(spool(), "dead", it->entry, 0, err, sizeof err) != 0) {
        log_errorx("notify: cannot write dead letter %s: %s (kept in the queue)", id, err);
        it->due_ms = now_real_ms() + (int64_t)dv_cfg->notify.retryMaxSeconds * 1000;
        return;
    }
    outbox_remove(spool(), "queue", id);
    counters(it->entry, OBC_DEAD);
    log_errorx("notify dead id=%s dest=%s target=%s: %s", id, jget(it->entry, "destination"),
               jget(it->entry, "target"), reason);
    it->due_ms = INT64_MAX; /* forgotten at the next scan */
}

static int64_t backoff_ms(int n, long retry_after)
{
    const struct cfg *c = dv_cfg;
    double d = c->notify.retryInitialSeconds * pow(2.0, n - 1);
    if (d > c->notify.retryMaxSeconds)
        d = c->notify.retryMaxSeconds;
    unsigned r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r)
        r = (unsigned)now_ms();
    d *= 0.9 + 0.2 * (r / 4294967295.0);
    if (retry_after >= 0)
        d = retry_after < c->notify.retryMaxSeconds ? retry_after : c->notify.retryMaxSeconds;
    return (int64_t)(d * 1000);
}

static void retry(struct item *it, const char *why, long code)
{
    int n = entry_int(it->entry, "attempts");
    long ra = code == 429 || code == 503 ? it->x.retry_after_s : -1;
    int64_t next = now_real_ms() + backoff_ms(n, ra);
    int64_t created = outbox_parse_time(jget(it->entry, "created"));
    if (created >= 0 && next > created + (int64_t)dv_cfg->notify.maxAgeSeconds * 1000) {
        char *r = xasprintf("expired after %d attempts: %s", n, why);
        to_dead(it, r);
        free(r);
        return;
    }
    char t[32], err[ERR_MAX];
    outbox_time(next, t);
    set_str(it->entry, "nextAttempt", t);
    if (outbox_write(spool(), "queue", it->entry, 0, err, sizeof err) != 0)
        log_errorx("notify: cannot update %s: %s", jget(it->entry, "id"), err);
    it->due_ms = next;
    counters(it->entry, OBC_RETRIED);
    log_warnx("notify retry id=%s in %llds: %s", jget(it->entry, "id"),
              (long long)((next - now_real_ms() + 999) / 1000), why);
}

static void finish(struct item *it, CURLcode rc)
{
    char why[ERR_MAX] = "";
    long code = 0;
    const struct xfer_kind *k = xfer_kind_of(outbox_dest_of(jget(it->entry, "destination")));
    int outcome = k->classify(it->h, rc, why);
    curl_easy_getinfo(it->h, CURLINFO_RESPONSE_CODE, &code);
    json_object_object_add(it->entry, "attempts",
                           json_object_new_int(entry_int(it->entry, "attempts") + 1));
    set_str(it->entry, "lastError", outcome ? why : "");
    if (outcome == XFER_ACCEPTED) {
        outbox_remove(spool(), "queue", jget(it->entry, "id"));
        counters(it->entry, OBC_DELIVERED);
        log_info("notify delivered id=%s attempts=%d", jget(it->entry, "id"),
                 entry_int(it->entry, "attempts"));
        it->due_ms = INT64_MAX;
    } else if (outcome == XFER_PERMANENT) {
        to_dead(it, why);
    } else {
        retry(it, why, code);
    }
    curl_multi_remove_handle(dq.multi, it->h);
    release(it);
    dq.inflight--;
    for (int i = 0; i < dq.ninflight; i++)
        if (dq.flying[i] == it) {
            dq.flying[i] = dq.flying[--dq.ninflight];
            break;
        }
}

/* ------------------------------------------------------------ attempts */

static void start(struct item *it)
{
    char err[ERR_MAX];
    json_object_put(it->entry);
    it->entry = outbox_read(spool(), "queue", it->name);
    if (!it->entry) { /* gone (moved by an operator) or unreadable */
        it->due_ms = INT64_MAX;
        return;
    }
    const struct xfer_kind *k = xfer_kind_of(outbox_dest_of(jget(it->entry, "destination")));
    json_object *req;
    if (!k || !json_object_object_get_ex(it->entry, "request", &req)) {
        to_dead(it, "entry of an unknown destination");
        return;
    }
    it->h = curl_easy_init();
    it->x.retry_after_s = -1;
    snprintf(err, sizeof err, "cannot create a transfer");
    if (it->h) {
        curl_easy_setopt(it->h, CURLOPT_PRIVATE, it);
        curl_easy_setopt(it->h, CURLOPT_NOSIGNAL, 1L);
    }
    if (!it->h || k->easy(it->h, &it->x, req, dv_cfg, err) < 0) {
        release(it);
        to_dead(it, err);
        return;
    }
    curl_multi_add_handle(dq.multi, it->h);
    dq.inflight++;
    dq.flying[dq.ninflight++] = it;
}

/* Starts due entries, oldest name first, up to the limit; ms to the next due one. */
/* One target gets at most half the places (all of them when there is one), so a
 * destination that hangs cannot take every place from the others. */
static int target_full(const struct item *it)
{
    int max = dv_cfg->notify.maxConcurrent, cap = max > 1 ? (max + 1) / 2 : 1, n = 0;
    for (int i = 0; i < dq.ninflight; i++)
        n += !strcmp(dq.flying[i]->target, it->target);
    return n >= cap;
}

static int64_t start_due(int stopping)
{
    int64_t now = now_real_ms(), next = INT64_MAX;
    for (struct item *it = dq.items; it; it = it->next) {
        if (it->h || it->due_ms == INT64_MAX)
            continue;
        if (it->due_ms <= now && !stopping && dq.inflight < dv_cfg->notify.maxConcurrent &&
            !target_full(it))
            start(it);
        else if (it->due_ms <= now && !stopping && next > now + 50)
            next = now + 50; /* waiting for a place */
        else if (it->due_ms < next)
            next = it->due_ms;
    }
    return next == INT64_MAX ? RESCAN_MS : next - now;
}

static void reap(void)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(dq.multi, &left)))
        if (m->msg == CURLMSG_DONE) {
            struct item *it = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&it);
            finish(it, m->data.result);
        }
}

/* ------------------------------------------------------------ the queue */

/* An operator moved a dead letter back: it starts over (butlerd(8), "Outbox"). */
static void requeue(json_object *e, const char *name)
{
    char t[32], err[ERR_MAX];
    outbox_time(now_real_ms(), t);
    json_object_object_del(e, "deadReason");
    json_object_object_del(e, "deadAt");
    json_object_object_add(e, "attempts", json_object_new_int(0));
    set_str(e, "lastError", "");
    set_str(e, "created", t);
    set_str(e, "nextAttempt", t);
    if (outbox_write(spool(), "queue", e, 0, err, sizeof err) != 0)
        log_errorx("notify: cannot re-queue %s: %s", name, err);
    else
        log_info("notify re-queued id=%s", jget(e, "id"));
}

static struct item *find(const char *name)
{
    for (struct item *it = dq.items; it; it = it->next)
        if (!strcmp(it->name, name))
            return it;
    return NULL;
}

/* A file that is in queue/ again (moved back by an operator) while its item,
 * done with, waits for the next scan to be forgotten: it starts over. */
static struct item *find_live(const char *name)
{
    struct item *it = find(name);
    if (it && !it->h && it->due_ms == INT64_MAX) {
        snprintf(it->name, sizeof it->name, "%s", ".gone");
        return NULL;
    }
    return it;
}

static void add_file(const char *name)
{
    json_object *e = outbox_read(spool(), "queue", name), *v;
    if (!e) {
        log_warnx("notify: %s/queue/%s is not an outbox entry; left alone", spool(), name);
        return;
    }
    char want[140];
    snprintf(want, sizeof want, "%s.json", jget(e, "id") ? jget(e, "id") : "");
    if (strcmp(want, name) != 0) {
        log_warnx("notify: %s/queue/%s: its id does not match the file name; left alone", spool(),
                  name);
        json_object_put(e);
        return;
    }
    if (json_object_object_get_ex(e, "deadReason", &v))
        requeue(e, name);
    struct item *it = xcalloc(1, sizeof *it);
    snprintf(it->name, sizeof it->name, "%s", name);
    int64_t due = outbox_parse_time(jget(e, "nextAttempt"));
    it->due_ms = due < 0 ? now_real_ms() : due;
    it->seen = 1;
    snprintf(it->target, sizeof it->target, "%s", jget(e, "target") ? jget(e, "target") : "");
    it->next = dq.items;
    dq.items = it;
    json_object_put(e);
}

static int is_entry_name(const char *n)
{
    size_t l = strlen(n);
    return n[0] != '.' && l > 5 && l < 120 && !strcmp(n + l - 5, ".json");
}

static void scan(void)
{
    char *qdir = xasprintf("%s/queue", spool());
    DIR *d = opendir(qdir);
    free(qdir);
    if (!d)
        return;
    for (struct item *it = dq.items; it; it = it->next)
        it->seen = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (!is_entry_name(de->d_name))
            continue;
        struct item *it = find_live(de->d_name);
        if (it)
            it->seen = 1;
        else
            add_file(de->d_name);
    }
    closedir(d);
    /* Forget entries that left the queue (delivered, dead, moved away). */
    for (struct item **pp = &dq.items; *pp;) {
        struct item *it = *pp;
        if (!it->h && (!it->seen || it->due_ms == INT64_MAX)) {
            *pp = it->next;
            json_object_put(it->entry);
            free(it);
        } else {
            pp = &it->next;
        }
    }
}

/* Leftovers: tmp/ files of a writer that died, dead letters past their age. */
static void clean_dir(const char *sub, int64_t max_age_s)
{
    char *dir = xasprintf("%s/%s", spool(), sub);
    DIR *d = opendir(dir);
    time_t now = time(NULL);
    for (struct dirent *de; d && (de = readdir(d));) {
        if (de->d_name[0] == '.')
            continue;
        char *p = xasprintf("%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && now - st.st_mtime > max_age_s)
            unlink(p);
        free(p);
    }
    if (d)
        closedir(d);
    free(dir);
}

static void clean(void)
{
    clean_dir("tmp", TMP_STALE_S);
    if (dv_cfg->notify.deadLetterMaxAgeDays > 0)
        clean_dir("dead", (int64_t)dv_cfg->notify.deadLetterMaxAgeDays * 86400);
}

/* ------------------------------------------------------------ summary */

/* Once a minute: what changed in the counters of each destination and kind. */
static void summary(void)
{
    static uint64_t last[OB_NDEST][OB_NKIND][OBC_N];
    static int primed;
    for (int d = 0; d < OB_NDEST; d++)
        for (int k = 0; k < OB_NKIND; k++) {
            char line[400];
            size_t n = 0;
            for (int c = 0; c < OBC_N; c++) {
                uint64_t v = __atomic_load_n(&stats()->notify[d][k][c], __ATOMIC_RELAXED);
                if (primed && v != last[d][k][c] && n < sizeof line)
                    n += (size_t)snprintf(line + n, sizeof line - n, " %s %llu",
                                          outbox_counter_names[c],
                                          (unsigned long long)(v - last[d][k][c]));
                last[d][k][c] = v;
            }
            if (n)
                log_info("alerts %s %s, last minute:%s", outbox_dest_names[d],
                         outbox_kind_names[k], line);
        }
    primed = 1;
}

/* ------------------------------------------------------------ the process */

static volatile sig_atomic_t term, hup, usr1;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        hup = 1;
    else if (sig == SIGUSR1)
        usr1 = 1;
    else
        term = 1;
}

/* New files in queue/: added without a rescan of the whole directory. */
static void drain_inotify(void)
{
    char b[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    while ((n = read(dq.in_fd, b, sizeof b)) > 0)
        for (char *p = b; p < b + n;) {
            struct inotify_event *ev = (struct inotify_event *)(void *)p;
            if (ev->len && is_entry_name(ev->name) && !find_live(ev->name))
                add_file(ev->name);
            if (ev->mask & IN_Q_OVERFLOW)
                scan();
            p += sizeof *ev + ev->len;
        }
}

static void __attribute__((noreturn)) delivery_main(const struct proc *p, int fd)
{
    (void)p;
    (void)fd;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    dq.multi = curl_multi_init();
    char *qdir = xasprintf("%s/queue", spool());
    dq.in_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (dq.in_fd >= 0 && inotify_add_watch(dq.in_fd, qdir, IN_MOVED_TO | IN_CLOSE_WRITE) < 0)
        log_warn("inotify on %s: new alerts are found by the 60 s rescan only", qdir);
    free(qdir);
    clean();
    scan();
    int64_t last_scan = now_ms(), last_clean = now_ms(), last_sum = now_ms(), stop_at = 0;
    summary();
    while (!stop_at || (dq.inflight && now_ms() < stop_at)) {
        if (term && !stop_at)
            stop_at = now_ms() + STOP_GRACE_MS;
        if (usr1) {
            usr1 = 0;
            log_reopen();
        }
        if (hup || now_ms() - last_scan >= RESCAN_MS) {
            hup = 0;
            scan();
            last_scan = now_ms();
        }
        if (now_ms() - last_sum >= 60000) {
            summary();
            last_sum = now_ms();
        }
        if (now_ms() - last_clean >= 86400000) {
            clean();
            last_clean = now_ms();
        }
        int running;
        curl_multi_perform(dq.multi, &running);
        reap();
        int64_t wait = start_due(stop_at != 0);
        curl_multi_perform(dq.multi, &running);
        struct curl_waitfd wf = {dq.in_fd, CURL_WAIT_POLLIN, 0};
        int n = 0;
        if (wait > 1000)
            wait = 1000;
        curl_multi_poll(dq.multi, dq.in_fd >= 0 ? &wf : NULL, dq.in_fd >= 0 ? 1 : 0,
                        wait < 0 ? 0 : (int)wait, &n);
        if (dq.in_fd >= 0 && wf.revents)
            drain_inotify();
    }
    if (dq.inflight)
        log_warnx("delivery process exiting with %d attempts unfinished (kept in the queue)",
                  dq.inflight);
    _exit(EXIT_OK);
}

static int on_exit_(struct proc *p, int status, char *note, size_t notelen);

/* Respawned 1 s after an exit, doubling to 30 s for a process that keeps dying. */
static const struct proc_role delivery_role = {
    .name = "delivery",
    .label = "delivery process",
    .policy = PROC_RESPAWN,
    .backoff_min_ms = 1000,
    .backoff_max_ms = 30000,
    .stable_ms = 60000,
    .after_stable_ms = 1000,
    .after_clean_ms = 1000,
    .child_main = delivery_main,
    .on_exit = on_exit_,
};

/* After a reload the new process starts only once the old one is gone, so that
 * no message is sent by both (0: none waiting). */
static unsigned next_gen;

static int on_exit_(struct proc *p, int status, char *note, size_t notelen)
{
    (void)status;
    (void)note;
    (void)notelen;
    if (p->draining && next_gen) {
        unsigned gen = next_gen;
        next_gen = 0;
        proc_start(&delivery_role, 1, gen);
    }
    return 0;
}

static int prepare(const struct cfg *c)
{
    char err[400];
    if (lock_fd >= 0)
        return 0;
    if (outbox_prepare(c->notify.spoolDirectory, err, sizeof err) < 0 ||
        (lock_fd = outbox_lock(c->notify.spoolDirectory, err, sizeof err)) < 0) {
        log_errorx("%s", err);
        return -1;
    }
    return 0;
}

int delivery_start(const struct cfg *c, unsigned gen)
{
    dv_cfg = c;
    if (!notify_any(c))
        return 0;
    if (prepare(c) < 0)
        return -1;
    proc_start(&delivery_role, 1, gen);
    return 0;
}

void delivery_reload(const struct cfg *c, unsigned gen)
{
    dv_cfg = c; /* for a respawn; the old configuration is freed */
    if (!notify_any(c))
        return; /* a running process keeps delivering what is queued */
    if (!proc_count(&delivery_role)) {
        if (prepare(c) == 0)
            proc_start(&delivery_role, 1, gen);
        return;
    }
    /* The running process stops (in-flight attempts get 5 s) and one with the new
     * settings takes over when it is gone. */
    next_gen = gen;
    for (struct proc *p = proc_next(&delivery_role, NULL); p; p = proc_next(&delivery_role, p))
        if (!p->draining)
            proc_drain(p, SIGTERM, (STOP_GRACE_MS + 5000));
}

void delivery_stop(void)
{
    next_gen = 0; /* shutting down: no successor */
    for (struct proc *p = proc_next(&delivery_role, NULL); p; p = proc_next(&delivery_role, p))
        kill(p->pid, SIGTERM);
}
