/* The schedule list (see sched_list.h; butlerd-api(7), Scheduler). */
#include "sched_list.h"
#include "cfg.h"
#include "cron.h"
#include "guid.h"
#include "jsonarr.h"
#include "log.h"
#include "newfile.h"
#include "redis_conn.h"
#include "sched_redis.h"
#include "shm_lock.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Bytes of the compact list a schedule may take on average; the budget of the list
 * is maxSchedules times this. Field limits (api_sched.c) keep one schedule well
 * below it unless its text is mostly escaped control characters. */
#define BYTES_PER_SCHEDULE 2048

struct sched_shared {
    struct shm_mutex lock;
    uint64_t gen;       /* committed generation; moves with every change */
    int64_t watermark;  /* every firing second <= this was handled */
    uint32_t active;    /* buffer holding the committed list */
    uint32_t count;     /* schedules in the committed list */
    uint64_t len[2];
    uint64_t cap;       /* bytes of each buffer */
    unsigned max;       /* butlerd.scheduler.maxSchedules */
    uint64_t rver;      /* on Redis: the version of the list copied here; 0: none */
    char path[4096];    /* the schedule file */
    /* two buffers of cap bytes follow */
};

static struct sched_shared *area;
static int wake_fd = -1;
static int on_redis; /* butlerd.store.backend = "redis" (sched_redis.h) */

static char *buffer(unsigned i) { return (char *)(area + 1) + (size_t)i * area->cap; }

const char *const sched_members[SCHED_NMEMBERS] = {
    "id",           "created", "name",        "cronSchedule",  "timezone",
    "qlikSenseTaskId", "startupState", "tags", "lastKnownState"};
#define members sched_members
#define NMEMBERS SCHED_NMEMBERS

const char *sched_str(json_object *s, const char *member)
{
    json_object *v;
    if (!json_object_object_get_ex(s, member, &v) || !json_object_is_type(v, json_type_string))
        return "";
    return json_object_get_string(v);
}

static int str_eq(json_object *s, const char *member, const char *value)
{
    return !strcmp(sched_str(s, member), value);
}

static int starts_up(json_object *s)
{
    return str_eq(s, "startupState", "start") || str_eq(s, "startupState", "started");
}

static int running(json_object *s) { return str_eq(s, "lastKnownState", "started"); }

/* ------------------------------------------------------------ validity */

/* Zones this process loaded: a zone is immutable once loaded, so they are kept
 * for the life of the process (there are about 600) and shared by its threads. */
#define ZONES_MAX 1024
static struct tz *zones[ZONES_MAX];
static size_t nzones;
static pthread_mutex_t zones_mu = PTHREAD_MUTEX_INITIALIZER;

const struct tz *sched_zone(const char *name)
{
    const struct tz *found = NULL;
    pthread_mutex_lock(&zones_mu);
    for (size_t i = 0; i < nzones && !found; i++)
        if (!strcmp(tz_name(zones[i]), name))
            found = zones[i];
    if (!found) {
        char err[160];
        struct tz *tz = tz_load(name, err, sizeof err);
        if (tz && nzones < ZONES_MAX)
            found = zones[nzones++] = tz;
        else if (tz)
            tz_free(tz); /* cannot happen with the tz database's zone names */
    }
    pthread_mutex_unlock(&zones_mu);
    return found;
}

int sched_runnable(json_object *s, char *why, size_t whysz)
{
    char err[160], dummy[1];
    if (!why) {
        why = dummy;
        whysz = sizeof dummy;
    }
    const char *expr = sched_str(s, "cronSchedule"), *zone = sched_str(s, "timezone");
    struct cron c;
    if (cron_parse(expr, &c, err, sizeof err) < 0) {
        snprintf(why, whysz, "Invalid cron expression: %s", expr);
        return 0;
    }
    const struct tz *tz = sched_zone(zone);
    if (!tz) {
        snprintf(why, whysz, "Invalid timezone: %s", zone);
        return 0;
    }
    time_t next;
    if (cron_next(&c, tz, time(NULL), &next) < 0) {
        snprintf(why, whysz, "Invalid cron expression: %s", expr);
        return 0;
    }
    if (!guid_task_id(sched_str(s, "qlikSenseTaskId"), NULL)) {
        snprintf(why, whysz, "Invalid task ID: %s", sched_str(s, "qlikSenseTaskId"));
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------ text forms */

static void put(struct buf *b, const char *s) { buf_append(b, s, strlen(s)); }

static void put_json_string(struct buf *b, const char *s)
{
    json_object *o = json_object_new_string(s);
    put(b, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}

/* One schedule as JSON: compact, or pretty at INDENT spaces (the file's form, as
 * JSON.stringify(x, null, 2) writes it, so Butler reads it back unchanged). */
static void put_schedule(struct buf *b, json_object *s, int pretty, int indent)
{
    char pad[64];
    int first = 1;
    snprintf(pad, sizeof pad, "\n%*s", indent + 2, "");
    put(b, "{");
    for (size_t i = 0; i < NMEMBERS; i++) {
        json_object *v;
        if (!json_object_object_get_ex(s, members[i], &v))
            continue;
        put(b, first ? "" : ",");
        first = 0;
        if (pretty)
            put(b, pad);
        put_json_string(b, members[i]);
        put(b, pretty ? ": " : ":");
        if (!json_object_is_type(v, json_type_array)) {
            put_json_string(b, json_object_get_string(v));
            continue;
        }
        size_t n = json_object_array_length(v);
        put(b, "[");
        for (size_t k = 0; k < n; k++) {
            put(b, k ? "," : "");
            if (pretty)
                buf_append(b, pad, strlen(pad)), put(b, "  ");
            put_json_string(b, json_object_get_string(json_object_array_get_idx(v, k)));
        }
        if (pretty && n)
            put(b, pad);
        put(b, "]");
    }
    if (pretty && !first)
        buf_append(b, pad, (size_t)indent + 1);
    put(b, "}");
}

/* A new list in its two forms, built one schedule at a time: the compact array
 * (the shared buffer) and the schedule file's text. */
struct lists {
    struct buf compact, file;
    size_t n;
};

static void lists_add(struct lists *l, json_object *s)
{
    if (!l->n) {
        put(&l->compact, "[");
        put(&l->file, "{\n  \"butlerSchedule\": [");
    }
    put(&l->compact, l->n ? "," : "");
    put_schedule(&l->compact, s, 0, 0);
    put(&l->file, l->n ? ",\n    " : "\n    ");
    put_schedule(&l->file, s, 1, 4);
    l->n++;
}

static void lists_end(struct lists *l)
{
    if (!l->n) {
        put(&l->compact, "[]");
        put(&l->file, "{\n  \"butlerSchedule\": []\n}\n");
    } else {
        put(&l->compact, "]");
        put(&l->file, "\n  ]\n}\n");
    }
}

void sched_file_text(json_object *list, struct buf *out)
{
    size_t n = json_object_array_length(list);
    put(out, n ? "{\n  \"butlerSchedule\": [" : "{\n  \"butlerSchedule\": []\n}\n");
    for (size_t i = 0; i < n; i++) {
        put(out, i ? ",\n    " : "\n    ");
        put_schedule(out, json_object_array_get_idx(list, i), 1, 4);
    }
    if (n)
        put(out, "\n  ]\n}\n");
}

static void lists_free(struct lists *l)
{
    buf_free(&l->compact);
    buf_free(&l->file);
}

/* ------------------------------------------------------------ loading */

/* Schedule S of the file in canonical form (members in order, lastKnownState from
 * startupState), or NULL with the reason in WHY when it breaks the file's shape. */
static json_object *canonical(json_object *s, char *why, size_t whysz)
{
    if (!json_object_is_type(s, json_type_object)) {
        snprintf(why, whysz, "not an object");
        return NULL;
    }
    json_object *out = json_object_new_object();
    for (size_t i = 0; i < NMEMBERS; i++) {
        json_object *v;
        if (!strcmp(members[i], "lastKnownState") ||
            !json_object_object_get_ex(s, members[i], &v))
            continue;
        if (!strcmp(members[i], "tags")) {
            int ok = json_object_is_type(v, json_type_array);
            for (size_t k = 0; ok && k < json_object_array_length(v); k++)
                ok = json_object_is_type(json_object_array_get_idx(v, k), json_type_string);
            if (!ok) {
                snprintf(why, whysz, "tags is not an array of strings");
                json_object_put(out);
                return NULL;
            }
        } else if (!json_object_is_type(v, json_type_string)) {
            snprintf(why, whysz, "%s is not a string", members[i]);
            json_object_put(out);
            return NULL;
        }
        json_object_object_add(out, members[i], json_object_get(v));
    }
    if (!*sched_str(out, "id")) {
        snprintf(why, whysz, "no id");
        json_object_put(out);
        return NULL;
    }
    return out;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* An id that two schedules of LIST share, or NULL. */
static const char *duplicate_id(json_object *list)
{
    size_t n = json_object_array_length(list);
    const char **ids = xcalloc(n ? n : 1, sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = sched_str(json_object_array_get_idx(list, i), "id");
    qsort(ids, n, sizeof *ids, cmp_str);
    const char *dup = NULL;
    for (size_t i = 1; i < n && !dup; i++)
        if (!strcmp(ids[i - 1], ids[i]))
            dup = ids[i];
    free(ids);
    return dup;
}

/* Reads the schedule file: the list in canonical form (lastKnownState not yet set)
 * into *LIST, or -1 with the reason in ERR. A missing file is an empty list. */
static int read_file(const char *path, json_object **list, char *err, size_t errsz)
{
    *list = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        *list = json_object_new_array();
        return 0;
    }
    struct buf b = {0};
    char chunk[65536];
    ssize_t n = 0;
    while (fd >= 0 && (n = read(fd, chunk, sizeof chunk)) > 0)
        buf_append(&b, chunk, (size_t)n);
    if (fd < 0 || n < 0) {
        snprintf(err, errsz, "cannot read %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        buf_free(&b);
        return -1;
    }
    close(fd);
    json_tokener *tok = json_tokener_new();
    json_object *root = json_tokener_parse_ex(tok, b.p ? b.p : "", (int)b.len);
    int bad = json_tokener_get_error(tok) != json_tokener_success;
    size_t used = (size_t)tok->char_offset;
    json_tokener_free(tok);
    while (!bad && used < b.len && strchr(" \t\r\n", b.p[used]))
        used++;
    bad = bad || used != b.len;
    buf_free(&b);
    json_object *arr;
    if (bad || !json_object_is_type(root, json_type_object) ||
        !json_object_object_get_ex(root, "butlerSchedule", &arr) ||
        !json_object_is_type(arr, json_type_array)) {
        snprintf(err, errsz, "%s is not a schedule file: it must be JSON of the form "
                             "{\"butlerSchedule\": [...]}", path);
        json_object_put(root);
        return -1;
    }
    json_object *out = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        char why[100];
        json_object *s = canonical(json_object_array_get_idx(arr, i), why, sizeof why);
        if (!s) {
            snprintf(err, errsz, "%s: schedule %zu: %s", path, i + 1, why);
            json_object_put(out);
            json_object_put(root);
            return -1;
        }
        json_object_array_add(out, s);
    }
    json_object_put(root);
    const char *dup = duplicate_id(out);
    if (dup) {
        snprintf(err, errsz, "%s: the id %.60s is used twice", path, dup);
        json_object_put(out);
        return -1;
    }
    *list = out;
    return 0;
}

/* Sets lastKnownState of each loaded schedule (butlerd-api(7), Persistence); the
 * schedules that cannot run go to WARNS. */
static void set_start_states(json_object *list, struct strlist *warns)
{
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *s = json_object_array_get_idx(list, i);
        char why[400];
        int ok = sched_runnable(s, why, sizeof why);
        if (!ok) {
            char line[600];
            snprintf(line, sizeof line, "schedule %.100s will not run: %s", sched_str(s, "id"),
                     why);
            strlist_add(warns, xstrdup(line));
        }
        json_object_object_add(s, "lastKnownState",
                               json_object_new_string(ok && starts_up(s) ? "started" : "stopped"));
    }
}

int sched_check_file(const struct cfg *c, struct strlist *errs, struct strlist *warns)
{
    if (!c->scheduler.enable)
        return 0;
    json_object *list;
    char err[600], path[4200];
    /* -t runs in the directory it was started in; butlerd itself in workingDirectory. */
    const char *f = c->scheduler.configfile, *wd = c->workingDirectory;
    if (*f != '/' && *wd)
        snprintf(path, sizeof path, "%s/%s", wd, f);
    else
        snprintf(path, sizeof path, "%s", f);
    if (read_file(path, &list, err, sizeof err) < 0) {
        strlist_add(errs, xstrdup(err));
        return -1;
    }
    set_start_states(list, warns);
    int rc = 0;
    if (json_object_array_length(list) > (size_t)c->scheduler.maxSchedules) {
        snprintf(err, sizeof err, "%s holds %zu schedules, more than "
                                  "butlerd.scheduler.maxSchedules (%d)",
                 c->scheduler.configfile, json_object_array_length(list),
                 c->scheduler.maxSchedules);
        strlist_add(errs, xstrdup(err));
        rc = -1;
    }
    json_object_put(list);
    return rc;
}

/* ------------------------------------------------------------ the shared list */

static int no_repair(void *arg)
{
    (void)arg;
    return 0; /* a commit is one store of the buffer index: nothing to repair */
}

static void lock(void) { shm_lock(&area->lock, no_repair, NULL); }
static void unlock(void) { shm_unlock(&area->lock); }

/* Calls FN for each schedule of the committed list, parsed one at a time (lock
 * held): no process keeps a parsed copy of the whole list. */
static void each(void (*fn)(json_object *, void *), void *arg)
{
    jsonarr_each(buffer(area->active), area->len[area->active], fn, arg);
}

static void wake(void)
{
    uint64_t one = 1;
    if (write(wake_fd, &one, sizeof one) < 0) {
        /* the counter is saturated: the scheduler has a wake-up pending anyway */
    }
}

/* Writes TEXT as the schedule file: temporary file, fsync, rename (lock held). */
static int write_file(const struct buf *text)
{
    const char *path = area->path;
    char dir[4096];
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return -1;
    struct newfile nf;
    int rc = -1;
    if (newfile_open(&nf, dirfd, NULL, 0644) == 0) {
        size_t off = 0;
        while (off < text->len) {
            ssize_t w = write(nf.fd, text->p + off, text->len - off);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        if (off == text->len && fsync(nf.fd) == 0 && newfile_commit(&nf, base, 1) == 0) {
            fsync(dirfd);
            rc = 0;
        } else {
            newfile_abort(&nf);
        }
    }
    close(dirfd);
    return rc;
}

/* Makes L (ended) the committed list: the file first (unless WRITE is 0), then
 * the inactive buffer and one store of its index (lock held). */
static enum sched_rc commit(const struct lists *l, int write)
{
    if (l->n > area->max || l->compact.len > area->cap)
        return SCHED_FULL;
    if (write && write_file(&l->file) < 0)
        return SCHED_IO;
    unsigned next = area->active ^ 1u;
    memcpy(buffer(next), l->compact.p, l->compact.len);
    area->len[next] = l->compact.len;
    SHM_STEP(61);
    __atomic_store_n(&area->active, next, __ATOMIC_RELEASE);
    area->count = (uint32_t)l->n;
    __atomic_add_fetch(&area->gen, 1, __ATOMIC_RELEASE);
    return SCHED_OK;
}

int sched_init(const struct cfg *c)
{
    if (!c->scheduler.enable)
        return 0;
    size_t cap = ((size_t)c->scheduler.maxSchedules * BYTES_PER_SCHEDULE + 4095) & ~(size_t)4095;
    size_t size = sizeof(struct sched_shared) + 2 * cap;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) {
        log_error("cannot map %zu bytes for the schedule list", size);
        return -1;
    }
    wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0) {
        log_error("eventfd");
        munmap(p, size);
        return -1;
    }
    area = p;
    on_redis = c->store.backend && !strcmp(c->store.backend, "redis");
    area->cap = cap;
    area->max = (unsigned)c->scheduler.maxSchedules;
    if (strlen(c->scheduler.configfile) >= sizeof area->path ||
        shm_mutex_init(&area->lock) < 0) {
        log_errorx("schedule file name too long or mutex setup failed");
        return -1;
    }
    snprintf(area->path, sizeof area->path, "%s", c->scheduler.configfile);
    struct strlist warns = {0};
    json_object *list;
    char err[600];
    if (read_file(c->scheduler.configfile, &list, err, sizeof err) < 0) {
        log_errorx("%s", err);
        return -1;
    }
    set_start_states(list, &warns);
    for (size_t i = 0; i < warns.n; i++)
        log_errorx("%s", warns.v[i]);
    strlist_free(&warns);
    struct lists l = {0};
    for (size_t i = 0; i < json_object_array_length(list); i++)
        lists_add(&l, json_object_array_get_idx(list, i));
    lists_end(&l);
    json_object_put(list);
    lock();
    enum sched_rc rc = commit(&l, 0);
    unlock();
    size_t n = l.n;
    lists_free(&l);
    if (rc != SCHED_OK) {
        log_errorx("%s holds %zu schedules, more than butlerd.scheduler.maxSchedules (%d) or "
                   "their budget (%zu bytes)",
                   c->scheduler.configfile, n, c->scheduler.maxSchedules, cap);
        return -1;
    }
    log_info("loaded %zu schedules from %s", n, c->scheduler.configfile);
    return 0;
}

int sched_available(void) { return area != NULL; }

/* ------------------------------------------------------------ the routes */

/* One pass over the committed list that builds the next one: what a change does
 * to each schedule. */
enum op { OP_KEEP, OP_DELETE, OP_SET };

struct pass {
    enum op op;
    const char *id;    /* the schedule changed; NULL: every schedule (OP_SET only) */
    const char *state; /* OP_SET: "started" or "stopped" */
    int found, changed, cannot_run;
    struct lists next;
    struct buf one; /* the schedule ID after the change, compact */
};

/* S with lastKnownState STATE: S itself (a new reference) if it has it already. */
static json_object *with_state(json_object *s, const char *state)
{
    if (str_eq(s, "lastKnownState", state))
        return json_object_get(s);
    json_object *n = json_object_new_object();
    json_object_object_foreach(s, k, v)
    {
        if (strcmp(k, "lastKnownState"))
            json_object_object_add(n, k, json_object_get(v));
    }
    json_object_object_add(n, "lastKnownState", json_object_new_string(state));
    return n;
}

static void pass_step(json_object *s, void *arg)
{
    struct pass *ps = arg;
    if (!s)
        return; /* cannot happen: only objects are written */
    int mine = !ps->id || !strcmp(sched_str(s, "id"), ps->id);
    if (mine && ps->id)
        ps->found = 1;
    json_object *t = json_object_get(s);
    if (mine && ps->op == OP_DELETE) {
        json_object_put(t);
        ps->changed = 1;
        return;
    }
    if (mine && ps->op == OP_SET) {
        int on = !strcmp(ps->state, "started");
        if (on && !sched_runnable(s, NULL, 0)) {
            ps->cannot_run |= ps->id != NULL; /* start-all skips it */
        } else {
            json_object_put(t);
            t = with_state(s, ps->state);
        }
        ps->changed |= t != s;
        if (ps->id)
            put_schedule(&ps->one, t, 0, 0);
    }
    lists_add(&ps->next, t);
    json_object_put(t);
}

/* Runs PS over the list and commits the result if anything changed (lock held). */
static enum sched_rc run_pass(struct pass *ps, json_object *add)
{
    each(pass_step, ps);
    if (add) {
        lists_add(&ps->next, add);
        ps->changed = 1;
    }
    lists_end(&ps->next);
    if (ps->id && !ps->found)
        return SCHED_NOT_FOUND;
    if (ps->cannot_run)
        return SCHED_INVALID;
    return ps->changed ? commit(&ps->next, 1) : SCHED_OK;
}

static void pass_free(struct pass *ps)
{
    lists_free(&ps->next);
    buf_free(&ps->one);
}

/* ------------------------------------------------------------ on Redis */

int sched_on_redis(void) { return on_redis; }

static enum sched_rc from_rs(int rc) { return rc == RS_UNAVAIL ? SCHED_UNAVAIL : SCHED_IO; }

/* Makes the list Redis answered (R: {version, item...}) this instance's copy, and
 * writes the schedule file as its backup; the scheduler process is woken. HAVE is
 * the copy's version when the list was asked for: another process of this
 * instance may have put a newer one meanwhile, which an older answer must not
 * replace (versions only grow, except after Redis lost its data and was seeded
 * again: that older one is taken only if nobody changed the copy meanwhile). */
static void cache_put(redisReply *r, uint64_t have)
{
    uint64_t ver = (uint64_t)r->element[0]->integer;
    struct lists l = {0};
    for (size_t i = 1; i < r->elements; i++) {
        json_object *s = r->element[i]->type == REDIS_REPLY_STRING
                             ? json_tokener_parse(r->element[i]->str)
                             : NULL;
        if (s && json_object_is_type(s, json_type_object))
            lists_add(&l, s);
        json_object_put(s);
    }
    lists_end(&l);
    enum sched_rc rc = SCHED_OK, wrc = SCHED_OK;
    lock();
    if (area->rver != ver && (ver > area->rver || area->rver == have)) {
        rc = wrc = commit(&l, 1);
        if (rc == SCHED_IO) /* the copy in memory matters more than its backup */
            rc = commit(&l, 0);
        if (rc == SCHED_OK)
            area->rver = ver;
    }
    unlock();
    if (wrc == SCHED_IO)
        log_warnx("cannot write the backup copy of the shared schedule list to %s", area->path);
    /* Said once per version refused: the scheduler process asks again every
     * second while the shared list stays too big. */
    static uint64_t full_ver;
    if (rc == SCHED_FULL && full_ver != ver)
        log_errorx("the shared schedule list (%zu schedules, %zu bytes) exceeds this instance's "
                   "butlerd.scheduler.maxSchedules (%u) or its budget: keeping the old copy",
                   l.n, l.compact.len, area->max);
    if (rc == SCHED_FULL)
        full_ver = ver;
    else if (rc == SCHED_OK)
        wake();
    lists_free(&l);
}

struct seeding {
    struct buf items, runs;
};

static void seed_step(json_object *s, void *arg)
{
    struct seeding *sd = arg;
    if (!s)
        return;
    if (sd->items.len)
        put(&sd->items, "\n"); /* compact JSON has no raw newline */
    put_schedule(&sd->items, s, 0, 0);
    put(&sd->runs, sched_runnable(s, NULL, 0) ? "1" : "0");
}

/* Puts this instance's copy into Redis if Redis holds no list (a first start, or
 * a Redis that lost its data): the first instance to ask seeds it. */
static enum sched_rc seed(uint64_t have)
{
    struct buf list = {0};
    struct seeding sd = {{0}, {0}};
    lock();
    buf_append(&list, buffer(area->active), area->len[area->active]);
    unlock();
    jsonarr_each(list.p, list.len, seed_step, &sd);
    buf_free(&list);
    int rc = sched_redis_seed(sd.items.p ? sd.items.p : "", sd.items.len,
                              sd.runs.p ? sd.runs.p : "", have);
    buf_free(&sd.items);
    buf_free(&sd.runs);
    return rc == RS_OK ? SCHED_OK : from_rs(rc);
}

/* Brings the copy up to date with Redis (see sched_refresh). */
static enum sched_rc sync_list(void)
{
    for (int tries = 0; tries < 3; tries++) {
        uint64_t have = __atomic_load_n(&area->rver, __ATOMIC_ACQUIRE);
        redisReply *r;
        int rc = sched_redis_fetch(have, &r);
        if (rc != RS_OK)
            return from_rs(rc);
        uint64_t ver = (uint64_t)r->element[0]->integer;
        if (ver && ver != have)
            cache_put(r, have);
        freeReplyObject(r);
        if (ver)
            return SCHED_OK;
        enum sched_rc src = seed(have);
        if (src != SCHED_OK)
            return src;
    }
    return SCHED_IO; /* cannot happen: a seeded list stays unless Redis is flushed again */
}

enum sched_rc sched_refresh(uint64_t ver)
{
    if (!on_redis || (ver && ver == __atomic_load_n(&area->rver, __ATOMIC_ACQUIRE)))
        return SCHED_OK;
    return sync_list();
}

/* A change in Redis: OP with ID and ARG (the new item, or the state). On success
 * *OUT is the script's reply ({version, ...}) and this instance's copy shows the
 * change. A Redis that lost the list is seeded from the copy first. */
static enum sched_rc redis_change(enum op op, const char *id, const char *arg, redisReply **out)
{
    *out = NULL;
    for (int tries = 0; tries < 2; tries++) {
        redisReply *r;
        int rc = op == OP_KEEP     ? sched_redis_add(arg, area->max, &r)
                 : op == OP_DELETE ? sched_redis_delete(id, &r)
                                   : sched_redis_set(id, arg, &r);
        if (rc != RS_OK)
            return from_rs(rc);
        long long v = r->element[0]->integer;
        if (v == SR_NO_LIST) {
            freeReplyObject(r);
            enum sched_rc src = sync_list();
            if (src != SCHED_OK)
                return src;
            continue;
        }
        if (v <= 0) {
            freeReplyObject(r);
            return v == SR_NOT_FOUND    ? SCHED_NOT_FOUND
                   : v == SR_CANNOT_RUN ? SCHED_INVALID
                   : v == SR_FULL       ? SCHED_FULL
                                        : SCHED_IO;
        }
        *out = r;
        sync_list(); /* the instance that made a change sees it at once */
        return SCHED_OK;
    }
    return SCHED_IO;
}

/* The items of R from index FROM as a JSON array, appended to OUT. */
static void put_items(struct buf *out, redisReply *r, size_t from)
{
    put(out, "[");
    for (size_t i = from; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING)
            continue;
        put(out, i > from ? "," : "");
        buf_append(out, r->element[i]->str, r->element[i]->len);
    }
    put(out, "]");
}


struct find {
    const char *id;
    struct buf *out;
    int found;
};

static void find_step(json_object *s, void *arg)
{
    struct find *f = arg;
    if (s && !f->found && !strcmp(sched_str(s, "id"), f->id)) {
        f->found = 1;
        put(f->out, "[");
        put_schedule(f->out, s, 0, 0);
        put(f->out, "]");
    }
}

enum sched_rc sched_get(const char *id, struct buf *out)
{
    struct find f = {id, out, 0};
    enum sched_rc rc = sched_refresh(0);
    if (rc != SCHED_OK)
        return rc;
    lock();
    if (!id)
        buf_append(out, buffer(area->active), area->len[area->active]);
    else
        each(find_step, &f);
    unlock();
    return !id || f.found ? SCHED_OK : SCHED_NOT_FOUND;
}

static void uuid4(char out[37])
{
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        for (size_t i = 0; i < sizeof r; i++) /* cannot happen after boot */
            r[i] = (unsigned char)(random() >> 7);
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[r[i] >> 4];
        *o++ = hex[r[i] & 15];
    }
    *o = '\0';
}

static void iso_now(char out[64])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000));
}

enum sched_rc sched_create(const struct cfg *c, json_object *body, json_object **out, char *err,
                           size_t errsz)
{
    (void)c;
    *out = NULL;
    json_object *s = json_object_new_object();
    char id[37], created[64], task[GUID_LEN + 1];
    uuid4(id);
    iso_now(created);
    json_object_object_add(s, "id", json_object_new_string(id));
    json_object_object_add(s, "created", json_object_new_string(created));
    static const char *const copied[] = {"name", "cronSchedule", "timezone", "qlikSenseTaskId",
                                         "startupState", "tags"};
    for (size_t i = 0; i < sizeof copied / sizeof copied[0]; i++) {
        json_object *v;
        if (json_object_object_get_ex(body, copied[i], &v))
            json_object_object_add(s, copied[i], json_object_get(v));
    }
    if (!sched_runnable(s, err, errsz)) {
        json_object_put(s);
        return SCHED_INVALID;
    }
    guid_task_id(sched_str(s, "qlikSenseTaskId"), task);
    json_object_object_add(s, "qlikSenseTaskId", json_object_new_string(task));
    json_object_object_add(s, "lastKnownState",
                           json_object_new_string(starts_up(s) ? "started" : "stopped"));
    enum sched_rc rc;
    if (on_redis) {
        struct buf item = {0};
        redisReply *r;
        put_schedule(&item, s, 0, 0);
        rc = redis_change(OP_KEEP, NULL, item.p, &r);
        buf_free(&item);
        if (r)
            freeReplyObject(r);
        if (rc == SCHED_OK)
            *out = s;
        else
            json_object_put(s);
        return rc;
    }
    struct pass ps = {.op = OP_KEEP};
    lock();
    rc = area->count >= area->max ? SCHED_FULL : run_pass(&ps, s);
    unlock();
    pass_free(&ps);
    if (rc == SCHED_OK) {
        *out = s;
        wake();
    } else {
        json_object_put(s);
    }
    return rc;
}

enum sched_rc sched_delete(const char *id)
{
    if (on_redis) {
        redisReply *r;
        enum sched_rc rc = redis_change(OP_DELETE, id, NULL, &r);
        if (r)
            freeReplyObject(r);
        return rc;
    }
    struct pass ps = {.op = OP_DELETE, .id = id};
    lock();
    enum sched_rc rc = run_pass(&ps, NULL);
    unlock();
    pass_free(&ps);
    if (rc == SCHED_OK)
        wake();
    return rc;
}

enum sched_rc sched_set_running(const char *id, int on, struct buf *out)
{
    if (on_redis) {
        redisReply *r;
        enum sched_rc rc = redis_change(OP_SET, id, on ? "started" : "stopped", &r);
        if (r)
            put_items(out, r, 1);
        if (r)
            freeReplyObject(r);
        return rc;
    }
    struct pass ps = {.op = OP_SET, .id = id, .state = on ? "started" : "stopped"};
    lock();
    enum sched_rc rc = run_pass(&ps, NULL);
    if (rc == SCHED_OK && !id)
        buf_append(out, buffer(area->active), area->len[area->active]);
    unlock();
    if (rc == SCHED_OK && id)
        buf_append(out, "[", 1), buf_append(out, ps.one.p, ps.one.len), buf_append(out, "]", 1);
    int changed = ps.changed;
    pass_free(&ps);
    if (rc == SCHED_OK && changed)
        wake();
    return rc;
}

static void status_step(json_object *s, void *arg)
{
    struct buf *out = arg;
    if (!s)
        return;
    put(out, "'");
    put(out, sched_str(s, "id"));
    put(out, "': ");
    put(out, sched_str(s, "cronSchedule"));
    put(out, running(s) ? " status: Running\n" : " status: Stopped\n");
}

enum sched_rc sched_status_text(struct buf *out)
{
    enum sched_rc rc = sched_refresh(0);
    if (rc != SCHED_OK)
        return rc;
    put(out, "{\n");
    lock();
    each(status_step, out);
    unlock();
    put(out, "}\n");
    return SCHED_OK;
}

/* ------------------------------------------------------------ the scheduler */

void sched_snapshot(struct buf *out, uint64_t *gen)
{
    lock();
    buf_append(out, buffer(area->active), area->len[area->active]);
    *gen = area->gen;
    unlock();
}

uint64_t sched_generation(void) { return __atomic_load_n(&area->gen, __ATOMIC_ACQUIRE); }
int sched_wake_fd(void) { return wake_fd; }

void sched_wake_drain(void)
{
    uint64_t v;
    while (read(wake_fd, &v, sizeof v) > 0) {
    }
}

int64_t sched_watermark(void) { return __atomic_load_n(&area->watermark, __ATOMIC_ACQUIRE); }

int sched_claim(int64_t t, int64_t *prev)
{
    int64_t w = __atomic_load_n(&area->watermark, __ATOMIC_ACQUIRE);
    while (w < t)
        if (__atomic_compare_exchange_n(&area->watermark, &w, t, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            if (prev)
                *prev = w;
            return 1;
        }
    return 0;
}
