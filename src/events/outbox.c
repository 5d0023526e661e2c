/* The outbox's files (see outbox.h; butlerd(8), "Outbox"). */
#include "outbox.h"
#include "stats.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *const outbox_dest_names[OB_NDEST] = {"slack", "teams", "webhook", "email"};
const char *const outbox_kind_names[OB_NKIND] = {"reloadTaskFailure", "reloadTaskAborted",
                                                 "reloadTaskSuccess"};
const char *const outbox_counter_names[OBC_N] = {"queued", "delivered", "retried", "dead",
                                                 "rate_limited", "render_failed", "dropped"};

static int index_of(const char *const *v, int n, const char *s)
{
    for (int i = 0; s && i < n; i++)
        if (!strcmp(v[i], s))
            return i;
    return -1;
}

int outbox_dest_of(const char *name) { return index_of(outbox_dest_names, OB_NDEST, name); }
int outbox_kind_of(const char *name) { return index_of(outbox_kind_names, OB_NKIND, name); }

void outbox_count(int dest, int kind, int counter)
{
    if (dest >= 0 && dest < OB_NDEST && kind >= 0 && kind < OB_NKIND && counter >= 0 &&
        counter < OBC_N)
        STAT_INC(notify[dest][kind][counter]);
}

json_object *outbox_stats_json(const struct stats *st)
{
    json_object *o = json_object_new_object();
    for (int d = 0; d < OB_NDEST; d++) {
        json_object *dj = json_object_new_object();
        for (int k = 0; k < OB_NKIND; k++) {
            json_object *kj = json_object_new_object();
            for (int n = 0; n < OBC_N; n++)
                json_object_object_add(kj, outbox_counter_names[n],
                                       json_object_new_int64((int64_t)st->notify[d][k][n]));
            json_object_object_add(dj, outbox_kind_names[k], kj);
        }
        json_object_object_add(o, outbox_dest_names[d], dj);
    }
    return o;
}

int outbox_prepare(const char *dir, char *err, size_t errlen)
{
    static const char *const subs[] = {"", "/tmp", "/queue", "/dead"};
    for (int i = 0; i < 4; i++) {
        char *p = xasprintf("%s%s", dir, subs[i]);
        struct stat st;
        if (mkdir(p, 0700) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create %s: %s", p, strerror(errno));
            free(p);
            return -1;
        }
        if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode) || access(p, W_OK | X_OK) < 0) {
            snprintf(err, errlen, "%s is not a writable directory", p);
            free(p);
            return -1;
        }
        free(p);
    }
    return 0;
}

int outbox_lock(const char *dir, char *err, size_t errlen)
{
    char *p = xasprintf("%s/lock", dir);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(p);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s/lock: %s", dir, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            snprintf(err, errlen, "spool directory %s is in use by another butlerd", dir);
        else
            snprintf(err, errlen, "cannot lock %s/lock: %s", dir, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

void outbox_time(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 32, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", (unsigned)(tm.tm_year + 1900) % 10000,
             (unsigned)tm.tm_mon % 13 + 1, (unsigned)tm.tm_mday % 32, (unsigned)tm.tm_hour % 24,
             (unsigned)tm.tm_min % 60, (unsigned)tm.tm_sec % 61, (unsigned)(ms % 1000));
}

int64_t outbox_parse_time(const char *s)
{
    struct tm tm = {0};
    int ms = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static void add_s(json_object *o, const char *k, const char *v)
{
    json_object_object_add(o, k, json_object_new_string(v ? v : ""));
}

json_object *outbox_new(int dest, int kind, const char *task, const char *exec,
                        const char *target, json_object *request)
{
    int64_t now = now_real_ms();
    char t[32], compact[32], id[64];
    unsigned char rnd[8];
    if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd)
        for (int i = 0; i < 8; i++)
            rnd[i] = (unsigned char)(now_ms() * 131 + i * 7 + getpid());
    outbox_time(now, t);
    /* 2026-11-22T22:48:10.123Z -> 20261122T224810.123Z */
    snprintf(compact, sizeof compact, "%.4s%.2s%.2sT%.2s%.2s%.2s.%.3sZ", t, t + 5, t + 8, t + 11,
             t + 14, t + 17, t + 20);
    snprintf(id, sizeof id, "%s-%02x%02x%02x%02x%02x%02x%02x%02x", compact, rnd[0], rnd[1], rnd[2],
             rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    json_object *e = json_object_new_object();
    json_object_object_add(e, "v", json_object_new_int(1));
    add_s(e, "id", id);
    add_s(e, "created", t);
    add_s(e, "nextAttempt", t);
    add_s(e, "kind", outbox_kind_names[kind]);
    add_s(e, "destination", outbox_dest_names[dest]);
    add_s(e, "taskId", task);
    add_s(e, "executionId", exec);
    add_s(e, "target", target);
    json_object_object_add(e, "attempts", json_object_new_int(0));
    add_s(e, "lastError", "");
    json_object_object_add(e, "request", request);
    return e;
}

static int sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static long count_files(const char *path)
{
    DIR *d = opendir(path);
    long n = 0;
    if (!d)
        return 0;
    for (struct dirent *de; (de = readdir(d));)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static const char *entry_id(json_object *e)
{
    json_object *v;
    const char *id = json_object_object_get_ex(e, "id", &v) ? json_object_get_string(v) : NULL;
    /* The id names a file: letters, digits, '-', '.', '_' only. */
    if (!id || !*id || strlen(id) > 100)
        return NULL;
    for (const char *p = id; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              *p == '-' || *p == '.' || *p == '_'))
            return NULL;
    return id;
}

int outbox_write(const char *dir, const char *sub, json_object *e, int queue_max, char *err,
                 size_t errlen)
{
    const char *id = entry_id(e);
    if (!id) {
        snprintf(err, errlen, "entry without a valid id");
        return -1;
    }
    char *qdir = xasprintf("%s/%s", dir, sub);
    if (queue_max > 0 && count_files(qdir) >= queue_max) {
        free(qdir);
        snprintf(err, errlen, "the queue holds butlerd.notifications.maxQueueEntries (%d) messages",
                 queue_max);
        return 1;
    }
    char *tmp = xasprintf("%s/tmp/%s.json", dir, id), *dst = xasprintf("%s/%s.json", qdir, id);
    size_t len;
    const char *js = json_object_to_json_string_length(
        e, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    int rc = -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
    } else if (write_all(fd, js, len) < 0 || fsync(fd) < 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
    } else if (close(fd) < 0 || (fd = -1, rename(tmp, dst) < 0)) {
        snprintf(err, errlen, "cannot rename %s: %s", tmp, strerror(errno));
    } else {
        sync_dir(qdir);
        rc = 0;
    }
    if (fd >= 0)
        close(fd);
    if (rc < 0)
        unlink(tmp);
    free(tmp);
    free(dst);
    free(qdir);
    return rc;
}

int outbox_remove(const char *dir, const char *sub, const char *id)
{
    char *p = xasprintf("%s/%s/%s.json", dir, sub, id), *d = xasprintf("%s/%s", dir, sub);
    int rc = unlink(p);
    if (rc == 0 || errno == ENOENT)
        sync_dir(d);
    free(p);
    free(d);
    return rc;
}

json_object *outbox_read(const char *dir, const char *sub, const char *name)
{
    char *p = xasprintf("%s/%s/%s", dir, sub, name);
    json_object *o = json_object_from_file(p);
    free(p);
    if (o && !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        o = NULL;
    }
    return o;
}
