/* The schedule list (see sched_list.h; butlerd-api(7), Scheduler). */
#include "sched_list.h"
#include "cfg.h"
#include "cron.h"
#include "guid.h"
#include "log.h"
#include "newfile.h"
#include "shm_lock.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
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
    char path[4096];    /* the schedule file */
    /* two buffers of cap bytes follow */
};

static struct sched_shared *area;
static int wake_fd = -1;

/* This process's parsed copy of the committed list; only touched under the lock,
 * which excludes this process's other threads too. */
static json_object *cache;
static uint64_t cache_gen;

static char *buffer(unsigned i) { return (char *)(area + 1) + (size_t)i * area->cap; }

static const char *const members[] = {"id",       "created",         "name",
                                      "cronSchedule", "timezone",     "qlikSenseTaskId",
                                      "startupState", "tags",         "lastKnownState"};
#define NMEMBERS (sizeof members / sizeof members[0])

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
    struct tz *tz = tz_load(zone, err, sizeof err);
    if (!tz) {
        snprintf(why, whysz, "Invalid timezone: %s", zone);
        return 0;
    }
    time_t next;
    int ok = cron_next(&c, tz, time(NULL), &next) == 0;
    tz_free(tz);
    if (!ok) {
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

static void put_array(struct buf *b, json_object *list)
{
    size_t n = json_object_array_length(list);
    put(b, "[");
    for (size_t i = 0; i < n; i++) {
        put(b, i ? "," : "");
        put_schedule(b, json_object_array_get_idx(list, i), 0, 0);
    }
    put(b, "]");
}

static void put_file(struct buf *b, json_object *list)
{
    size_t n = json_object_array_length(list);
    put(b, "{\n  \"butlerSchedule\": [");
    for (size_t i = 0; i < n; i++) {
        put(b, i ? ",\n    " : "\n    ");
        put_schedule(b, json_object_array_get_idx(list, i), 1, 4);
    }
    put(b, n ? "\n  ]\n}\n" : "]\n}\n");
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
        for (size_t k = 0; s && k < json_object_array_length(out); k++)
            if (!strcmp(sched_str(json_object_array_get_idx(out, k), "id"), sched_str(s, "id"))) {
                snprintf(why, sizeof why, "id %.60s is used twice", sched_str(s, "id"));
                json_object_put(s);
                s = NULL;
            }
        if (!s) {
            snprintf(err, errsz, "%s: schedule %zu: %s", path, i + 1, why);
            json_object_put(out);
            json_object_put(root);
            return -1;
        }
        json_object_array_add(out, s);
    }
    json_object_put(root);
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

/* Brings this process's copy up to the committed list (lock held). */
static void refresh(void)
{
    if (cache && cache_gen == area->gen)
        return;
    json_object_put(cache);
    const char *p = buffer(area->active);
    json_tokener *tok = json_tokener_new();
    cache = json_tokener_parse_ex(tok, p, (int)area->len[area->active]);
    json_tokener_free(tok);
    if (!json_object_is_type(cache, json_type_array)) { /* cannot happen: we wrote it */
        json_object_put(cache);
        cache = json_object_new_array();
    }
    cache_gen = area->gen;
}

static void wake(void)
{
    uint64_t one = 1;
    if (write(wake_fd, &one, sizeof one) < 0) {
        /* the counter is saturated: the scheduler has a wake-up pending anyway */
    }
}

/* Writes LIST to the schedule file: temporary file, fsync, rename (lock held). */
static int write_file(json_object *list)
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
    struct buf b = {0};
    put_file(&b, list);
    struct newfile nf;
    int rc = -1;
    if (newfile_open(&nf, dirfd, NULL, 0644) == 0) {
        size_t off = 0;
        while (off < b.len) {
            ssize_t w = write(nf.fd, b.p + off, b.len - off);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        if (off == b.len && fsync(nf.fd) == 0 && newfile_commit(&nf, base, 1) == 0) {
            fsync(dirfd);
            rc = 0;
        } else {
            newfile_abort(&nf);
        }
    }
    buf_free(&b);
    close(dirfd);
    return rc;
}

/* Makes LIST (taken) the committed list: file first, then the inactive buffer and
 * one store of its index (lock held). SCHED_FULL if it does not fit the budget. */
static enum sched_rc commit(json_object *list, int write)
{
    struct buf b = {0};
    put_array(&b, list);
    enum sched_rc rc = SCHED_OK;
    if (json_object_array_length(list) > area->max || b.len > area->cap)
        rc = SCHED_FULL;
    else if (write && write_file(list) < 0)
        rc = SCHED_IO;
    if (rc != SCHED_OK) {
        buf_free(&b);
        json_object_put(list);
        return rc;
    }
    unsigned next = area->active ^ 1u;
    memcpy(buffer(next), b.p, b.len);
    area->len[next] = b.len;
    SHM_STEP(61);
    __atomic_store_n(&area->active, next, __ATOMIC_RELEASE);
    area->count = (uint32_t)json_object_array_length(list);
    __atomic_add_fetch(&area->gen, 1, __ATOMIC_RELEASE);
    buf_free(&b);
    json_object_put(cache);
    cache = list;
    cache_gen = area->gen;
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
    area->cap = cap;
    area->max = (unsigned)c->scheduler.maxSchedules;
    if (strlen(c->scheduler.configfile) >= sizeof area->path ||
        shm_mutex_init(&area->lock) < 0) {
        log_errorx("schedule file name too long or mutex setup failed");
        return -1;
    }
    snprintf(area->path, sizeof area->path, "%s", c->scheduler.configfile);
    struct strlist errs = {0}, warns = {0};
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
    strlist_free(&errs);
    size_t n = json_object_array_length(list);
    lock();
    enum sched_rc rc = commit(list, 0);
    unlock();
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

static json_object *find(json_object *list, const char *id, size_t *idx)
{
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *s = json_object_array_get_idx(list, i);
        if (!strcmp(sched_str(s, "id"), id)) {
            if (idx)
                *idx = i;
            return s;
        }
    }
    return NULL;
}

enum sched_rc sched_get(const char *id, struct buf *out)
{
    enum sched_rc rc = SCHED_OK;
    lock();
    if (!id) {
        buf_append(out, buffer(area->active), area->len[area->active]);
    } else {
        refresh();
        json_object *s = find(cache, id, NULL);
        if (s) {
            put(out, "[");
            put_schedule(out, s, 0, 0);
            put(out, "]");
        } else {
            rc = SCHED_NOT_FOUND;
        }
    }
    unlock();
    return rc;
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

/* A copy of LIST sharing its schedules (new references). */
static json_object *list_copy(json_object *list)
{
    json_object *out = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(list); i++)
        json_object_array_add(out, json_object_get(json_object_array_get_idx(list, i)));
    return out;
}

enum sched_rc sched_create(const struct cfg *c, json_object *body, json_object **out, char *err,
                           size_t errsz)
{
    (void)c;
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
    lock();
    refresh();
    json_object *list = list_copy(cache);
    json_object_array_add(list, json_object_get(s));
    enum sched_rc rc = commit(list, 1);
    *out = NULL;
    if (rc == SCHED_OK)
        json_object_deep_copy(s, out, NULL);
    unlock();
    json_object_put(s);
    if (rc == SCHED_OK)
        wake();
    return rc;
}

enum sched_rc sched_delete(const char *id)
{
    lock();
    refresh();
    size_t idx;
    enum sched_rc rc = SCHED_NOT_FOUND;
    if (find(cache, id, &idx)) {
        json_object *list = json_object_new_array();
        for (size_t i = 0; i < json_object_array_length(cache); i++)
            if (i != idx)
                json_object_array_add(list, json_object_get(json_object_array_get_idx(cache, i)));
        rc = commit(list, 1);
    }
    unlock();
    if (rc == SCHED_OK)
        wake();
    return rc;
}

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

enum sched_rc sched_set_running(const char *id, int on, struct buf *out)
{
    const char *state = on ? "started" : "stopped";
    lock();
    refresh();
    size_t idx = 0, n = json_object_array_length(cache);
    enum sched_rc rc = SCHED_OK;
    if (id && !find(cache, id, &idx))
        rc = SCHED_NOT_FOUND;
    else if (id && on && !sched_runnable(json_object_array_get_idx(cache, idx), NULL, 0))
        rc = SCHED_INVALID;
    int changed = 0;
    json_object *list = NULL;
    if (rc == SCHED_OK) {
        list = json_object_new_array();
        for (size_t i = 0; i < n; i++) {
            json_object *s = json_object_array_get_idx(cache, i);
            int mine = id ? i == idx : (!on || sched_runnable(s, NULL, 0));
            json_object *t = mine ? with_state(s, state) : json_object_get(s);
            changed |= t != s;
            json_object_array_add(list, t);
        }
        /* Starting a running schedule changes nothing, and writes nothing. */
        if (changed)
            rc = commit(list, 1);
        else
            json_object_put(list);
    }
    if (rc == SCHED_OK) {
        if (id) {
            put(out, "[");
            put_schedule(out, json_object_array_get_idx(cache, idx), 0, 0);
            put(out, "]");
        } else {
            buf_append(out, buffer(area->active), area->len[area->active]);
        }
    }
    unlock();
    if (rc == SCHED_OK && changed)
        wake();
    return rc;
}

void sched_status_text(struct buf *out)
{
    lock();
    refresh();
    put(out, "{\n");
    for (size_t i = 0; i < json_object_array_length(cache); i++) {
        json_object *s = json_object_array_get_idx(cache, i);
        put(out, "'");
        put(out, sched_str(s, "id"));
        put(out, "': ");
        put(out, sched_str(s, "cronSchedule"));
        put(out, running(s) ? " status: Running\n" : " status: Stopped\n");
    }
    put(out, "}\n");
    unlock();
}

/* ------------------------------------------------------------ the scheduler */

json_object *sched_snapshot(uint64_t *gen)
{
    /* A deep copy: the cache's objects have their references changed under the
     * lock only. */
    json_object *deep = NULL;
    lock();
    refresh();
    *gen = cache_gen;
    json_object_deep_copy(cache, &deep, NULL);
    unlock();
    return deep;
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

int sched_claim(int64_t t)
{
    int64_t w = __atomic_load_n(&area->watermark, __ATOMIC_ACQUIRE);
    while (w < t)
        if (__atomic_compare_exchange_n(&area->watermark, &w, t, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return 1;
    return 0;
}
