/* butlerd -M: a shared-memory key-value store copied into Redis (kv_migrate.h).
 * The source is read with kv.c's own dump (the snapshot file through a private
 * segment loaded by kv_snapshot.c), the target written through kv_redis_ops, so
 * the limits and the layout are exactly those the daemon uses. */
#include "kv_migrate.h"
#include "butlerd.h"
#include "cfg.h"
#include "kv.h"
#include "kv_redis.h"
#include "kv_snapshot.h"
#include "log.h"
#include "redis_conn.h"
#include "shm.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The first key under the prefix in Redis, as a malloc'd string in *FOUND (NULL if
 * none). 0, or -1 if Redis failed. */
static int first_key(char **found)
{
    const char *p = redis_prefix();
    /* the prefix is a glob pattern for SCAN MATCH: escape its special characters */
    char *pat = xmalloc(2 * strlen(p) + 2), *q = pat;
    for (; *p; p++) {
        if (strchr("*?[]\\", *p))
            *q++ = '\\';
        *q++ = *p;
    }
    *q++ = '*';
    *q = '\0';
    char cursor[32] = "0";
    int rc = 0;
    *found = NULL;
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", pat, "COUNT", "1000"};
        size_t len[6];
        for (int i = 0; i < 6; i++)
            len[i] = strlen(argv[i]);
        int why;
        redisReply *r = redis_cmd("SCAN", 6, argv, len, &why);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            if (r)
                freeReplyObject(r);
            rc = -1;
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        if (r->element[1]->elements)
            *found = xstrdup(r->element[1]->element[0]->str);
        freeReplyObject(r);
    } while (!*found && strcmp(cursor, "0"));
    free(pat);
    return rc;
}

/* Maps the running instance's segment for reading and writing (kv_dump takes the
 * stripe locks). 1 if attached, 0 if no instance runs, -1 (printed) if one runs
 * but cannot be read. WHAT describes the source. */
static int attach_running(const struct cfg *c, char *what, size_t whatlen)
{
    if (shm_attach_readonly(c) < 0) {
        if (errno == ENOENT)
            return 0;
        /* not "no instance": falling back to an older snapshot would be wrong */
        fprintf(stderr, "butlerd: cannot read shared memory %s: %s\n", shm.name,
                errno == EPROTO ? "not made by this version of butlerd" : strerror(errno));
        return -1;
    }
    pid_t pid = (pid_t)shm.hdr->master_pid;
    int alive = pid > 0 && !(kill(pid, 0) < 0 && errno == ESRCH);
    struct shm_geometry g;
    shm_geometry_from_cfg(c, &g);
    int same = !memcmp(&shm.hdr->geo, &g, sizeof g);
    munmap(shm.base, shm.size);
    shm.base = NULL;
    shm.hdr = NULL;
    if (!alive)
        return 0;
    if (!same) {
        /* shm_open_region would replace it: never touch a running instance's segment */
        fprintf(stderr,
                "butlerd: the running butlerd (pid %ld) uses shared memory %s with another "
                "geometry than %s (butlerd.shm settings changed?); run -M with the "
                "configuration it was started with\n",
                (long)pid, shm.name, c->file);
        return -1;
    }
    int rc = shm_open_region(c);
    if (rc < 0)
        return -1;
    if (rc == 0) { /* it went away meanwhile: this one is new and empty */
        shm_unlink_region();
        return 0;
    }
    snprintf(what, whatlen, "the running butlerd (pid %ld, shared memory %s)", (long)pid,
             shm.name);
    return 1;
}

/* Loads the snapshot file into a private segment of this process. 0, or -1
 * (printed). */
static int load_snapshot(struct cfg *c, char *what, size_t whatlen)
{
    const char *file = c->kvPersistence.file;
    if (!*file) {
        fprintf(stderr, "butlerd: no running butlerd for %s and no snapshot file "
                        "(butlerd.kvPersistence.file): nothing to copy\n",
                c->file);
        return -1;
    }
    if (access(file, R_OK) < 0) {
        fprintf(stderr, "butlerd: no running butlerd for %s, and snapshot file %s: %s\n",
                c->file, file, strerror(errno));
        return -1;
    }
    free(c->shm.name);
    c->shm.name = xasprintf("/butlerd-migrate-%ld", (long)getpid());
    if (shm_open_region(c) < 0)
        return -1;
    kv_set_limits(c->kvs.maxKeysPerNamespace);
    long n = kv_snapshot_load(file, kv_snapshot_uid(c));
    if (n < 0) {
        shm_unlink_region();
        fprintf(stderr, "butlerd: snapshot file %s cannot be loaded (see above)\n", file);
        return -1;
    }
    snprintf(what, whatlen, "snapshot file %s", file);
    return 0;
}

/* Makes namespace NS exist on Redis with no keys: kv_redis_ops creates namespaces
 * only with a key, so one is written and deleted. 0 or a kv_rc. */
static int make_empty_ns(const char *ns, size_t nslen)
{
    static const char tmp[] = "butlerd -M: empty namespace";
    struct kv_list l;
    int rc = kv_redis_ops.keys(ns, nslen, &l);
    if (rc == KV_OK) {
        kv_list_free(&l);
        return KV_OK; /* there already (-F) */
    }
    if (rc != KV_NO_NS)
        return rc;
    rc = kv_redis_ops.put(ns, nslen, tmp, sizeof tmp - 1, "", 0, 0);
    if (rc == KV_OK)
        rc = kv_redis_ops.del(ns, nslen, tmp, sizeof tmp - 1);
    return rc;
}

static const char *rc_text(int rc)
{
    switch (rc) {
    case KV_FULL_NS: return "Butler.keyValueStore.maxKeysPerNamespace reached";
    case KV_FULL_KEYS: return "butlerd.shm.kvMaxKeys reached";
    case KV_FULL_NSTAB: return "butlerd.shm.kvMaxNamespaces reached";
    case KV_UNAVAIL: return "Redis cannot be reached";
    default: return "Redis refused it (see above)";
    }
}

/* Writes dump D to Redis. Returns the exit code. */
static int copy(const struct kv_dump *d, const char *what)
{
    size_t copied = 0, expired = 0, refused = 0, empty = 0;
    int64_t now = kv_now_ms();
    for (size_t i = 0; i < d->nns; i++) {
        const struct kv_dump_ns *ns = &d->ns[i];
        if (!ns->count) {
            int rc = make_empty_ns(ns->name, ns->len);
            if (rc == KV_UNAVAIL || rc == KV_ERROR)
                goto failed;
            empty += rc == KV_OK;
            continue;
        }
        for (size_t k = ns->first; k < ns->first + ns->count; k++) {
            const struct kv_dump_key *e = &d->keys[k];
            int64_t ttl = 0;
            if (e->expires) {
                ttl = e->expires - now;
                if (ttl <= 0) {
                    expired++;
                    continue;
                }
            }
            int rc = kv_redis_ops.put(ns->name, ns->len, e->key, e->klen, e->value, e->vlen, ttl);
            if (rc == KV_OK) {
                copied++;
                continue;
            }
            if (rc == KV_UNAVAIL || rc == KV_ERROR) {
                fprintf(stderr, "butlerd: key \"%.*s\" of namespace \"%.*s\": %s\n",
                        (int)e->klen, e->key, (int)ns->len, ns->name, rc_text(rc));
                goto failed;
            }
            if (refused++ < 10)
                fprintf(stderr, "butlerd: key \"%.*s\" of namespace \"%.*s\" not copied: %s\n",
                        (int)e->klen, e->key, (int)ns->len, ns->name, rc_text(rc));
        }
    }
    printf("copied %zu keys in %zu namespaces (%zu of them empty) from %s to Redis (%s), "
           "key prefix \"%s\"\n",
           copied, d->nns, empty, what, redis_where(), redis_prefix());
    if (expired)
        printf("%zu keys expired before they were copied\n", expired);
    if (refused) {
        fprintf(stderr, "butlerd: %zu keys not copied: the limits of the configuration refused "
                        "them\n",
                refused);
        return EXIT_FATAL;
    }
    return EXIT_OK;
failed:
    fprintf(stderr, "butlerd: copy from %s stopped after %zu keys: Redis (%s) failed\n", what,
            copied, redis_where());
    return EXIT_FATAL;
}

int kv_migrate(struct cfg *c, int force)
{
    /* What it did goes to stdout; the modules' lifecycle lines (shared memory
     * created, store on Redis) would only blur it: warnings and errors only. */
    log_set_role("migrate");
    log_configure(LOG_DEST_STDERR, LOG_LV_WARN, NULL, NULL, 0);
    kv_redis_configure(c);
    kv_redis_ops.set_limits(c->kvs.maxKeysPerNamespace);
    char why[300];
    if (redis_ping(why, sizeof why) < 0) {
        fprintf(stderr, "butlerd: %s; nothing copied\n", why);
        return EXIT_FATAL;
    }
    char *found;
    if (first_key(&found) < 0) {
        fprintf(stderr, "butlerd: Redis (%s) failed to list keys; nothing copied\n",
                redis_where());
        return EXIT_FATAL;
    }
    if (found && !force) {
        fprintf(stderr,
                "butlerd: Redis (%s) already holds keys under the prefix \"%s\" (%s, ...); "
                "nothing copied (-F copies over them)\n",
                redis_where(), redis_prefix(), found);
        free(found);
        return EXIT_FATAL;
    }
    free(found);

    char what[400];
    int from_snapshot = 0;
    int rc = attach_running(c, what, sizeof what);
    if (rc < 0)
        return EXIT_FATAL;
    if (rc == 0) {
        if (load_snapshot(c, what, sizeof what) < 0)
            return EXIT_FATAL;
        from_snapshot = 1;
    }
    struct kv_dump d;
    kv_dump(&d);
    if (from_snapshot)
        shm_unlink_region();
    rc = copy(&d, what);
    kv_dump_free(&d);
    return rc;
}
